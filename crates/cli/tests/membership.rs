//! Membership with real processes on their data dirs: a replica killed with
//! SIGKILL and removed gets N live copies of its keys back and is refused
//! when it restarts; SIGINT makes a node hand off every key and exit 0.
//!
//! The key count is `MYDHT_TEST_KEYS` (default 2,000 so CI stays fast); the
//! issue's 10,000-key runs are
//! `MYDHT_TEST_KEYS=10000 cargo test -p mydht --test membership -- --nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use std::process::Command;

use mydht_client::Client;

fn key_count() -> usize {
    std::env::var("MYDHT_TEST_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

/// Four nodes with N=3, all joined through the first, holding `count`
/// 100-byte values.
fn four_nodes(dir: &std::path::Path, count: usize) -> (Vec<NodeProc>, Vec<String>) {
    let a = NodeProc::start(0, &dir.join("a"), &["-r", "3"]);
    let mut nodes = vec![];
    let seed = a.name.clone();
    nodes.push(a);
    for n in ["b", "c", "d"] {
        nodes.push(NodeProc::start(0, &dir.join(n), &["-s", &seed]));
    }
    wait_until("4 members", || ring_size(&seed) == 4);
    let keys: Vec<String> = (0..count).map(|i| format!("key-{i}")).collect();
    let rt = runtime();
    rt.block_on(async {
        let client = Client::new([seed.clone()]).expect("client");
        let mut tasks = tokio::task::JoinSet::new();
        for chunk in keys.chunks(count.div_ceil(16).max(1)) {
            let (client, chunk) = (client.clone(), chunk.to_vec());
            tasks.spawn(async move {
                for k in chunk {
                    client.put(&k, vec![b'v'; 100]).await.expect("put");
                }
            });
        }
        while let Some(t) = tasks.join_next().await {
            t.expect("loader");
        }
    });
    (nodes, keys)
}

#[test]
fn a_killed_replica_removed_gets_its_keys_copied_again_and_is_refused_back() {
    let dir = temp_dir();
    let count = key_count();
    let (mut nodes, keys) = four_nodes(dir.path(), count);
    let dead = nodes[3].name.clone();
    let dead_port = nodes[3].port;
    nodes[3].kill();
    let started = Instant::now();
    let o = client(&nodes[1].port_arg(), &["-c", "remove", "-k", &dead]);
    assert_eq!(stdout(&o), "REMOVE ok\n", "{}", stderr(&o));
    let remove_took = started.elapsed();
    wait_for_n_copies(&nodes[0].name, &dead, &keys, Duration::from_secs(30));
    eprintln!(
        "remove of a node of 4 (N=3) holding about {} of {count} keys: REMOVE ok after {remove_took:?}, N copies after {:?}",
        count * 3 / 4,
        started.elapsed()
    );
    let port = dead_port.to_string();
    let refused = NodeProc::spawn(&[
        "node",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "--data-dir",
        dir.path().join("d").to_str().expect("utf-8"),
    ]);
    match refused {
        Ok(_) => panic!("a removed node restarted on its data dir"),
        Err(stderr) => assert!(stderr.contains("was removed from the ring"), "{stderr}"),
    }
    // The CLI's other admin answers.
    let o = client(&nodes[0].port_arg(), &["-c", "balance"]);
    assert_eq!(stdout(&o), "BALANCE ok\n", "{}", stderr(&o));
    let o = client(&nodes[0].port_arg(), &["-c", "purge"]);
    assert_eq!(stdout(&o), "PURGE ok\n", "{}", stderr(&o));
}

#[test]
fn sigint_hands_every_key_off_and_exits_zero() {
    let dir = temp_dir();
    let count = key_count();
    let (mut nodes, keys) = four_nodes(dir.path(), count);
    let leaver = nodes[3].name.clone();
    let started = Instant::now();
    let exit = nodes[3].interrupt();
    let took = started.elapsed();
    assert!(exit.success(), "{exit:?}");
    eprintln!(
        "leave of a node of 4 (N=3) holding about {} of {count} keys: {took:?}",
        count * 3 / 4
    );
    // Nothing more to wait for: the hand-off finished before the exit.
    wait_for_n_copies(&nodes[0].name, &leaver, &keys, Duration::ZERO);
    let seen = status(&nodes[0].name);
    let member = seen.member(&leaver).expect("listed");
    assert_eq!(member.status, "removed", "{seen:?}");
}

/// Four nodes (N = 3) holding 300 keys; the last one started with
/// `leaver_args` too.
fn four_nodes_with_keys(dir: &std::path::Path, leaver_args: &[&str]) -> Vec<NodeProc> {
    let a = NodeProc::start(0, &dir.join("a"), &["-r", "3"]);
    let seed = a.name.clone();
    let mut nodes = vec![a];
    for n in ["b", "c"] {
        nodes.push(NodeProc::start(0, &dir.join(n), &["-s", &seed]));
    }
    let mut args = vec!["-s", seed.as_str()];
    args.extend_from_slice(leaver_args);
    nodes.push(NodeProc::start(0, &dir.join("d"), &args));
    wait_until("4 members", || ring_size(&seed) == 4);
    runtime().block_on(async {
        let c = Client::new([seed.clone()]).expect("client");
        for i in 0..300 {
            c.put(format!("key-{i}"), "v").await.expect("put");
        }
    });
    nodes
}

/// Everything a stopped node wrote to stderr.
fn stderr_of(node: &mut NodeProc) -> String {
    use std::io::Read;
    let mut err = String::new();
    node.child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    err
}

#[test]
fn a_leave_past_its_deadline_exits_non_zero_saying_what_was_not_handed_off() {
    let dir = temp_dir();
    // The leaver gives itself no time at all.
    let mut nodes = four_nodes_with_keys(dir.path(), &["--leave-timeout", "0"]);
    let status = nodes[3].interrupt();
    assert_eq!(status.code(), Some(1), "{status:?}");
    let err = stderr_of(&mut nodes[3]);
    assert!(
        err.contains("the hand-off did not finish within 0ns"),
        "{err}"
    );
    assert!(err.contains("keys checked"), "{err}");
}

#[test]
fn a_second_ctrl_c_stops_a_leave_and_says_so() {
    let dir = temp_dir();
    let mut nodes = four_nodes_with_keys(dir.path(), &[]);
    let seed = nodes[0].name.clone();
    // A receiver that accepts connections but never answers keeps the
    // hand-off from finishing, so the second Ctrl-C lands mid-leave.
    let signal = |sig: &str, pid: u32| {
        Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill runs")
            .success()
    };
    assert!(signal("-STOP", nodes[1].child.id()));
    let leaver = nodes[3].child.id();
    assert!(signal("-INT", leaver));
    wait_until("the leaver to mark itself leaving", || {
        status(&seed).members.iter().any(|m| m.status == "leaving")
    });
    assert!(signal("-INT", leaver));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(s) = nodes[3].child.try_wait().expect("wait") {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "leaver did not stop");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1), "{status:?}");
    let err = stderr_of(&mut nodes[3]);
    assert!(
        err.contains("interrupted: the hand-off did not finish"),
        "{err}"
    );
    signal("-CONT", nodes[1].child.id());
}
