//! Later writes win, whatever the clocks: three real nodes, one with its
//! clock five minutes behind and one five minutes ahead (libfaketime).
//!
//! A put, then a later put or delete through each skewed node: through the
//! slow one it is acknowledged and stays (its version loses to the earlier
//! write's, so it is stamped above it and written again); through the fast
//! one it is refused with `ERR_CLOCK_AHEAD`, never acknowledged and then
//! lost. Reads through every node return the last acknowledged write, and
//! every acknowledged delete stays deleted.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Where Debian puts libfaketime (the `faketime` package, which `.ci/run`
/// installs).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The environment that runs a node `offset` off the real clock (`+5m`,
/// `-5m`); its monotonic clock (timers, deadlines) stays real.
fn skewed(offset: &'static str) -> [(&'static str, &'static str); 3] {
    [
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME", offset),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ]
}

/// Whether libfaketime is here; under CI its absence fails the test
/// instead of skipping it.
fn faketime_present() -> bool {
    if Path::new(LIBFAKETIME).exists() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{LIBFAKETIME} is missing: install the faketime package"
    );
    eprintln!("SKIPPED: {LIBFAKETIME} is missing (apt-get install faketime)");
    false
}

fn ring_json(node: &NodeProc) -> serde_json::Value {
    let out = client(&node.port_arg(), &["-c", "ring", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

/// Every other member's clock offset as `node` heard it, in seconds.
fn offsets_s(node: &NodeProc) -> Vec<i64> {
    ring_json(node)["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter(|m| m["node"] != node.name.as_str())
        .filter_map(|m| m["clock_offset_ms"].as_i64())
        .map(|ms| (ms as f64 / 1000.0).round() as i64)
        .collect()
}

fn put(node: &NodeProc, key: &str, value: &str) -> std::process::Output {
    client(&node.port_arg(), &["-c", "put", "-k", key, "-val", value])
}

fn del(node: &NodeProc, key: &str) -> std::process::Output {
    client(&node.port_arg(), &["-c", "del", "-k", key])
}

/// What a get of `key` through `node` prints (or its error line).
fn get(node: &NodeProc, key: &str) -> String {
    let out = client(&node.port_arg(), &["-c", "get", "-k", key]);
    if out.status.success() {
        stdout(&out).trim().to_string()
    } else {
        stderr(&out).trim().to_string()
    }
}

fn acked(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        stdout(out),
        stderr(out)
    );
}

/// Every node reads `expected` for `key`.
fn all_read(nodes: &[&NodeProc], key: &str, expected: &str) {
    for n in nodes {
        assert_eq!(get(n, key), expected, "{key} read through {}", n.name);
    }
}

/// A value large enough that HTTP streams it (more than a chunk).
const LARGE: usize = 300 * 1024;

fn http_put_large(node: &NodeProc, key: &str, seed: u64, dir: &Path) -> Vec<u8> {
    let body = random_bytes(LARGE, seed);
    let file = dir.join(format!("{key}-{seed}"));
    std::fs::write(&file, &body).expect("write the body");
    let out = Command::new("curl")
        .args(["-sS", "-f", "-X", "PUT", "--data-binary"])
        .arg(format!("@{}", file.display()))
        .arg(format!("http://{}/v1/kv/{key}", node.name))
        .output()
        .expect("curl runs");
    acked(&out, "streamed put through the slow node");
    body
}

fn http_get(node: &NodeProc, key: &str) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sS", "-f"])
        .arg(format!("http://{}/v1/kv/{key}", node.name))
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "{}", stderr(&out));
    out.stdout
}

/// Keys whose replicas do not include `node`.
fn keys_not_on(via: &NodeProc, node: &str) -> Vec<String> {
    (0..200)
        .map(|i| format!("elsewhere-{i}"))
        .filter(|k| !whereis(via, k).iter().any(|n| n == node))
        .take(4)
        .collect()
}

/// A key `node` replicates.
fn keys_on(via: &NodeProc, node: &str) -> String {
    (0..200)
        .map(|i| format!("mine-{i}"))
        .find(|k| whereis(via, k).iter().any(|n| n == node))
        .expect("a key on the node")
}

#[test]
fn later_writes_win_through_a_slow_clock_and_a_fast_clock_refuses_them() {
    if !faketime_present() {
        return;
    }
    let dir = temp_dir();
    let a = NodeProc::start(0, &dir.path().join("a"), &["--memory"]);
    let b = NodeProc::start(0, &dir.path().join("b"), &["--memory", "-s", &a.name]);
    let slow = NodeProc::start_env(
        0,
        &dir.path().join("slow"),
        &["--memory", "-s", &a.name],
        &skewed("-5m"),
    );
    let fast = NodeProc::start_env(
        0,
        &dir.path().join("fast"),
        &["--memory", "-s", &a.name],
        &skewed("+5m"),
    );
    let nodes = [&a, &b, &slow, &fast];
    // Each node learns the others' clocks from their gossip rounds (one a
    // second, to the next member in turn).
    let deadline = Instant::now() + Duration::from_secs(30);
    let near = |s: i64, want: i64| (s - want).abs() <= 2;
    loop {
        let (oa, os, of) = (offsets_s(&a), offsets_s(&slow), offsets_s(&fast));
        let heard = oa.len() == 3
            && os.len() == 3
            && of.len() == 3
            && of.iter().all(|&o| o < -200)
            && os.iter().all(|&o| o > 200);
        if heard {
            let mut oa = oa.clone();
            oa.sort_unstable();
            assert!(
                near(oa[0], -300) && near(oa[1], 0) && near(oa[2], 300),
                "{oa:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "clocks not heard: a {oa:?}, slow {os:?}, fast {of:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Every member flags the two skewed clocks, and only them (each is
    // judged when heard, against the offsets known by then).
    let flags_right = |n: &NodeProc| {
        ring_json(n)["members"]
            .as_array()
            .expect("members")
            .iter()
            .filter(|m| m["node"] != n.name.as_str())
            .all(|m| {
                let skewed = m["node"] == slow.name.as_str() || m["node"] == fast.name.as_str();
                m["clock_skewed"] == skewed
            })
    };
    loop {
        if nodes.iter().all(|n| flags_right(n)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "skewed clocks not flagged: {:?}",
            nodes.map(ring_json)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Through the slow node: its clock stamps the later write five minutes
    // before the earlier one, which must not win. On keys it does not
    // replicate, it has not seen the earlier version (had it, its clock
    // would have moved past it): a replica's answer is what tells it.
    let elsewhere = keys_not_on(&a, &slow.name);
    let [k1, k2, k3, big] = [0, 1, 2, 3].map(|i| elsewhere[i].as_str());
    acked(&put(&a, k1, "first"), "put through a");
    acked(&put(&slow, k1, "second"), "later put through the slow node");
    all_read(&nodes, k1, "second");
    acked(&del(&slow, k1), "later delete through the slow node");
    all_read(&nodes, k1, "ERR_VALUE_NOT_FOUND");
    // And a write through a correct clock after the slow node's still wins.
    acked(&put(&slow, k2, "slow"), "put through the slow node");
    acked(&put(&a, k2, "after"), "later put through a");
    all_read(&nodes, k2, "after");
    // A streamed value cannot be sent twice: the slow node asks what the
    // replicas hold first and stamps above it.
    acked(&put(&a, big, "small first"), "put through a");
    let body = http_put_large(&slow, big, 7, dir.path());
    for n in nodes {
        assert!(http_get(n, big) == body, "{big} read through {}", n.name);
    }
    // On a key it replicates, it took b's version as a replica (counting
    // the skew bound from the members' present), and its clock moved past
    // it: the later write wins without a second round.
    let mine = keys_on(&a, &slow.name);
    acked(&put(&b, &mine, "first"), "put through b");
    acked(
        &put(&slow, &mine, "second"),
        "later put through the slow node",
    );
    all_read(&nodes, &mine, "second");

    // Through the fast node: refused, with the reason, and nothing changes.
    acked(&put(&a, k3, "kept"), "put through a");
    for out in [put(&fast, k3, "lost?"), del(&fast, k3)] {
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert!(
            stderr(&out).starts_with("ERR_CLOCK_AHEAD: this node's clock is "),
            "{}",
            stderr(&out)
        );
    }
    all_read(&nodes, k3, "kept");
    // Its reads still answer, and it still stores what the others write.
    acked(&del(&a, k3), "delete through a");
    all_read(&nodes, k3, "ERR_VALUE_NOT_FOUND");
}
