//! Signals that can never lose the cluster, with real processes: SIGINT
//! (or SIGTERM) sent to every node of a four-node cluster at once, then all
//! four restarted on their data dirs. Every member comes back up and every
//! acknowledged key reads back: a leave that finds no member to take its
//! keys does not leave (exit 1, saying so), and SIGTERM stops a node as a
//! member.

mod common;

use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use common::*;
use mydht_client::Client;

const KEYS: usize = 300;

/// Four nodes (N = 3) holding `KEYS` acknowledged keys.
fn four_nodes(dir: &std::path::Path) -> Vec<NodeProc> {
    let a = NodeProc::start(0, &dir.join("0"), &["-r", "3"]);
    let seed = a.name.clone();
    let mut nodes = vec![a];
    for i in 1..4 {
        nodes.push(NodeProc::start(0, &dir.join(i.to_string()), &["-s", &seed]));
    }
    wait_until("4 members", || ring_size(&seed) == 4);
    put_keys(&seed);
    nodes
}

/// Writes `KEYS` keys through `node`, each acknowledged.
fn put_keys(node: &str) {
    runtime().block_on(async {
        let c = Client::new([node.to_string()]).expect("client");
        for i in 0..KEYS {
            c.put(format!("key-{i}"), format!("value-{i}"))
                .await
                .expect("put acknowledged");
        }
    });
}

/// Sends `signal` to every node in one `kill`, then waits for every exit.
fn signal_all(nodes: &mut [NodeProc], signal: &str) -> Vec<(ExitStatus, String)> {
    let mut args = vec![signal.to_string()];
    args.extend(nodes.iter().map(|n| n.child.id().to_string()));
    assert!(
        Command::new("kill")
            .args(&args)
            .status()
            .expect("kill")
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    nodes
        .iter_mut()
        .map(|n| {
            let status = loop {
                if let Some(s) = n.child.try_wait().expect("wait") {
                    break s;
                }
                assert!(Instant::now() < deadline, "{} did not exit", n.name);
                std::thread::sleep(Duration::from_millis(20));
            };
            let mut err = String::new();
            if let Some(mut e) = n.child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            (status, err)
        })
        .collect()
}

/// Restarts each node on its data dir and port; those that left the ring
/// are refused (and say so). Returns the ones running.
fn restart_all(dir: &std::path::Path, ports: &[u16]) -> Vec<NodeProc> {
    let mut running = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let port = port.to_string();
        let data = dir.join(i.to_string());
        let args = [
            "node",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "--data-dir",
            data.to_str().expect("utf-8"),
        ];
        match NodeProc::spawn(&args) {
            Ok(n) => running.push(n),
            Err(stderr) => assert!(
                stderr.contains("was removed from the ring"),
                "node {i} failed to restart: {stderr}"
            ),
        }
    }
    running
}

/// Every member of the ring is up on every running node, the running
/// nodes are exactly the members, and every key reads back through each.
fn cluster_whole(running: &[NodeProc]) {
    assert!(!running.is_empty(), "no member is left");
    let names: std::collections::BTreeSet<String> =
        running.iter().map(|n| n.name.clone()).collect();
    for n in running {
        wait_until("every member up, and only the running nodes", || {
            let s = status(&n.name);
            let members: std::collections::BTreeSet<String> = s
                .members
                .iter()
                .filter(|m| m.state != "removed")
                .map(|m| m.node.clone())
                .collect();
            members == names
                && s.members
                    .iter()
                    .filter(|m| m.state != "removed")
                    .all(|m| m.status == "up")
        });
    }
    runtime().block_on(async {
        for n in running {
            let c = only(&n.name);
            for i in 0..KEYS {
                let got = c.get(format!("key-{i}")).await.expect("get");
                let got = got.unwrap_or_else(|| panic!("key-{i} lost (read through {})", n.name));
                assert_eq!(got.bytes, format!("value-{i}").as_bytes());
            }
        }
    });
}

#[test]
fn sigint_to_every_node_at_once_then_a_restart_loses_no_member_and_no_key() {
    let dir = temp_dir();
    let mut nodes = four_nodes(dir.path());
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    let exits = signal_all(&mut nodes, "-INT");
    let stayed = exits.iter().filter(|(s, _)| !s.success()).count();
    assert!(stayed >= 1, "every node left: {exits:?}");
    for (status, err) in &exits {
        if !status.success() {
            assert_eq!(status.code(), Some(1), "{err}");
            assert!(
                err.contains("mydht: leave:"),
                "says why it did not leave: {err}"
            );
        }
    }
    drop(nodes);
    let running = restart_all(dir.path(), &ports);
    assert_eq!(
        running.len(),
        stayed,
        "the nodes that did not leave came back"
    );
    cluster_whole(&running);
}

#[test]
fn sigterm_to_every_node_at_once_stops_them_as_members() {
    let dir = temp_dir();
    let mut nodes = four_nodes(dir.path());
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    for (status, err) in signal_all(&mut nodes, "-TERM") {
        assert!(status.success(), "{status:?}: {err}");
    }
    drop(nodes);
    let running = restart_all(dir.path(), &ports);
    assert_eq!(running.len(), 4, "every node is still a member");
    cluster_whole(&running);
}

#[test]
fn a_lone_leaver_with_no_member_to_take_its_keys_stays_a_member() {
    let dir = temp_dir();
    let a = NodeProc::start(0, &dir.path().join("a"), &[]);
    let mut b = NodeProc::start(0, &dir.path().join("b"), &["-s", &a.name]);
    wait_until("2 members", || ring_size(&a.name) == 2);
    put_keys(&a.name);
    // The only other member is gone: b has nobody to hand off to.
    let (a_port, b_port) = (a.port, b.port);
    drop(a);
    let exits = signal_all(std::slice::from_mut(&mut b), "-INT");
    let (status, err) = &exits[0];
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("no member can take this node's keys"), "{err}");
    drop(b);
    // Both come back as members, each on its own data dir.
    let a = NodeProc::start(a_port, &dir.path().join("a"), &[]);
    let b = NodeProc::start(b_port, &dir.path().join("b"), &[]);
    cluster_whole(&[a, b]);
}
