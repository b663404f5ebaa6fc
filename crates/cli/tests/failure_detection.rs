//! Failure detection with real processes, no request touching the member:
//! one of five nodes paused with SIGSTOP is seen not alive by every other
//! member within 10 s, and alive again within 10 s of SIGCONT; a pause of
//! 2 s declares nobody dead; and with `--remove-after 5s` a SIGKILLed
//! member is removed and its keys have N live copies again, with no
//! command run.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use mydht_client::Client;

fn signal(sig: &str, node: &NodeProc) {
    let ok = Command::new("kill")
        .args([sig, &node.child.id().to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill {sig}");
}

fn five(dir: &std::path::Path, extra: &[&str]) -> Vec<NodeProc> {
    let mut args = vec!["-r", "3"];
    args.extend_from_slice(extra);
    let a = NodeProc::start(0, &dir.join("0"), &args);
    let seed = a.name.clone();
    let mut nodes = vec![a];
    for i in 1..5 {
        let mut args = vec!["-s", seed.as_str()];
        args.extend_from_slice(extra);
        nodes.push(NodeProc::start(0, &dir.join(i.to_string()), &args));
    }
    wait_until("5 members", || ring_size(&seed) == 5);
    nodes
}

/// Whether `observer` sees `member` alive.
fn sees_alive(observer: &NodeProc, member: &NodeProc) -> bool {
    status(&observer.name)
        .member(&member.name)
        .is_some_and(|m| !m.down)
}

/// Waits until `cond` holds on every node but `subject`; how long it took.
fn until_all(
    nodes: &[NodeProc],
    subject: usize,
    limit: Duration,
    cond: impl Fn(&NodeProc) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        if nodes
            .iter()
            .enumerate()
            .all(|(i, n)| i == subject || cond(n))
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "not on every member within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn downs(nodes: &[NodeProc]) -> u64 {
    nodes.iter().map(|n| status(&n.name).downs).sum()
}

#[test]
fn a_paused_member_is_seen_not_alive_by_all_within_10s_and_alive_again_within_10s() {
    let dir = temp_dir();
    let nodes = five(dir.path(), &[]);
    let limit = Duration::from_secs(10);
    until_all(&nodes, 4, limit, |n| sees_alive(n, &nodes[4]));
    signal("-STOP", &nodes[4]);
    let down = until_all(&nodes, 4, limit, |n| !sees_alive(n, &nodes[4]));
    signal("-CONT", &nodes[4]);
    let back = until_all(&nodes, 4, limit, |n| sees_alive(n, &nodes[4]));
    eprintln!("SIGSTOP seen by all 4 others after {down:?}; SIGCONT after {back:?}");
}

#[test]
fn a_two_second_pause_declares_nobody_dead() {
    let dir = temp_dir();
    let nodes = five(dir.path(), &[]);
    until_all(&nodes, 4, Duration::from_secs(10), |n| {
        sees_alive(n, &nodes[4])
    });
    let before = downs(&nodes);
    for round in 0..3 {
        let paused = &nodes[round + 2];
        signal("-STOP", paused);
        // The pause is the scenario, not a wait for a condition.
        std::thread::sleep(Duration::from_secs(2));
        signal("-CONT", paused);
        // Long enough for a suspicion to run out (4 s) and spread.
        let watch_until = Instant::now() + Duration::from_secs(7);
        while Instant::now() < watch_until {
            for n in &nodes {
                for m in &nodes {
                    assert!(
                        n.name == m.name || sees_alive(n, m),
                        "{} declared {} dead after a 2 s pause",
                        n.name,
                        m.name
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert_eq!(downs(&nodes), before, "a member went down in some view");
}

#[test]
fn remove_after_removes_a_killed_member_and_restores_n_copies() {
    let dir = temp_dir();
    let mut nodes = five(dir.path(), &["--remove-after", "5s"]);
    let seed = nodes[0].name.clone();
    let keys: Vec<String> = (0..300).map(|i| format!("key-{i}")).collect();
    let rt = runtime();
    rt.block_on(async {
        let c = Client::new([seed.clone()]).expect("client");
        for k in &keys {
            c.put(k, k.clone()).await.expect("put");
        }
    });
    let dead = nodes[4].name.clone();
    let started = Instant::now();
    nodes[4].kill();
    let limit = Duration::from_secs(30);
    // Removed on every survivor, by itself.
    loop {
        let removed = nodes[..4].iter().all(|n| {
            status(&n.name)
                .member(&dead)
                .is_some_and(|m| m.state == "removed")
        });
        if removed {
            break;
        }
        assert!(started.elapsed() < limit, "{dead} not removed within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let removed_after = started.elapsed();
    // Every key has 3 live copies on its owners, none of them the dead one.
    wait_for_n_copies(&seed, &dead, &keys, limit.saturating_sub(started.elapsed()));
    eprintln!(
        "--remove-after 5s: removed on all after {removed_after:?}, N copies after {:?}",
        started.elapsed()
    );
}

#[test]
fn balance_with_a_paused_member_finishes_within_seconds_and_names_it() {
    let dir = temp_dir();
    let nodes = five(dir.path(), &[]);
    let rt = runtime();
    rt.block_on(async {
        let c = Client::new([nodes[0].name.clone()]).expect("client");
        for i in 0..100 {
            c.put(format!("key-{i}"), "v").await.expect("put");
        }
    });
    let ok = client(&nodes[0].port_arg(), &["-c", "balance"]);
    assert_eq!(stdout(&ok), "BALANCE ok\n", "{}", stderr(&ok));
    // Paused: it accepts connections (the kernel does) but answers nothing.
    signal("-STOP", &nodes[3]);
    let started = Instant::now();
    let out = client(&nodes[0].port_arg(), &["-c", "balance"]);
    let took = started.elapsed();
    signal("-CONT", &nodes[3]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&nodes[3].name),
        "the answer names the member not reached: {}",
        stderr(&out)
    );
    // Bounded by failure detection (seconds), not the 10-minute admin
    // deadline it waited out before.
    assert!(took < Duration::from_secs(60), "balance took {took:?}");
    eprintln!("balance with a paused member answered after {took:?}");
}
