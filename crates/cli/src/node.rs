//! `mydht node`: open the store, start the node, run until a signal: SIGINT
//! leaves the ring, SIGTERM stops as a member (`--on-signal` makes both do
//! one of them), or until the node stops by itself (removed by others).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use mydht_node::store::{DiskOptions, DiskStore, MemoryStore, SyncPolicy};
use mydht_node::{HintConfig, NodeConfig, NodeHandle};
use tracing_subscriber::EnvFilter;

use crate::args::NodeArgs;

pub async fn run(args: NodeArgs) -> ExitCode {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,fjall=warn,lsm_tree=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let leave_deadline = std::time::Duration::from_secs(args.leave_timeout);
    let on_signal = args.on_signal.clone();
    match start(args).await {
        Ok(node) => {
            // The one line scripts and tests wait for.
            println!(
                "mydht node {} listening on {}",
                node.name(),
                node.local_addr()
            );
            let leaves = match (wait_for_signal(&node).await, on_signal.as_deref()) {
                (None, _) => false,
                (Some(_), Some(choice)) => choice == "leave",
                (Some(signal), None) => signal == Signal::Interrupt,
            };
            if leaves {
                return leave(node, leave_deadline).await;
            }
            let removed = node.removed();
            node.shutdown().await;
            if removed {
                eprintln!(
                    "mydht: another member removed this node from the ring; it stopped (wipe its data directory to join again)"
                );
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mydht: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn start(args: NodeArgs) -> anyhow::Result<NodeHandle> {
    let sync: SyncPolicy = args.sync.parse()?;
    let data_dir = match (&args.data_dir, args.memory) {
        (Some(d), _) => Some(d.clone()),
        (None, true) => None,
        (None, false) => Some(PathBuf::from(format!("mydht-{}-{}", args.host, args.port))),
    };
    let mut cfg = NodeConfig::new(args.host, args.port);
    cfg.bind = args.bind;
    cfg.seed = args.server;
    cfg.replicas = args.replicas;
    cfg.remove_after = args.remove_after;
    cfg.anti_entropy_interval = args.anti_entropy_interval.0;
    cfg.tombstone_grace = args.tombstone_grace;
    cfg.hints = HintConfig {
        max_bytes: args.hint_max_bytes,
        max_age: args.hint_max_age,
        per_second: args.hint_rate,
    };
    cfg.data_dir = data_dir.clone();
    if args.memory {
        Ok(mydht_node::start(cfg, MemoryStore::new()).await?)
    } else {
        let dir = data_dir.unwrap_or_default().join("store");
        let store = DiskStore::open(&dir, DiskOptions::default().sync(sync))
            .with_context(|| format!("cannot open the store in {}", dir.display()))?;
        Ok(mydht_node::start(cfg, store).await?)
    }
}

/// Hands the node's keys off and exits 0; past the deadline or on a second
/// Ctrl-C, exits 1 saying what was not handed off.
async fn leave(node: NodeHandle, deadline: std::time::Duration) -> ExitCode {
    tracing::info!("leaving the ring (Ctrl-C again to stop at once)");
    let outcome = tokio::select! {
        r = node.leave(deadline) => r.map_err(|e| e.to_string()),
        _ = tokio::signal::ctrl_c() => Err(format!(
            "interrupted: the hand-off did not finish ({}); the keys not handed off are only on this node's data dir and their other replicas",
            node.leave_progress()
        )),
    };
    node.shutdown().await;
    match outcome {
        Ok(report) => {
            tracing::info!(
                checked = report.checked,
                sent = report.sent,
                "left the ring"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mydht: leave: {e}");
            ExitCode::from(1)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signal {
    Interrupt,
    Terminate,
}

/// Waits for SIGINT or SIGTERM, or for the node to stop by itself (`None`).
async fn wait_for_signal(node: &NodeHandle) -> Option<Signal> {
    let term = async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Some(Signal::Interrupt),
        () = term => Some(Signal::Terminate),
        () = node.stopped() => None,
    }
}
