//! Deletes stay deleted, even through old copies: a former owner that was
//! down while keys were deleted and their tombstones collected (a short
//! `--tombstone-grace`) comes back with its old copies; purge, leave and
//! balance then run, and no deleted key comes back on any member.

mod common;

use std::time::{Duration, Instant};

use common::*;

const GRACE: &str = "2s";

fn flags(seed: Option<&str>) -> Vec<&str> {
    let mut f = vec![
        "--tombstone-grace",
        GRACE,
        // Rounds run when the test says, so it knows what each did.
        "--anti-entropy-interval",
        "off",
    ];
    if let Some(s) = seed {
        f.extend(["-s", s]);
    }
    f
}

fn ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        stdout(out),
        stderr(out)
    );
}

#[test]
fn a_former_owner_back_after_the_grace_brings_no_deleted_key_back() {
    let dir = temp_dir();
    let a = NodeProc::start(0, &dir.path().join("a"), &flags(None));
    let b = NodeProc::start(0, &dir.path().join("b"), &flags(Some(&a.name)));
    let mut c = NodeProc::start(0, &dir.path().join("c"), &flags(Some(&a.name)));
    for n in [&a, &b, &c] {
        wait_until("a ring of three", || ring_size(&n.name) == 3);
    }
    let keys: Vec<String> = (0..60).map(|i| format!("doomed-{i}")).collect();
    for k in &keys {
        ok(
            &client(&a.port_arg(), &["-c", "put", "-k", k, "-val", "old"]),
            "put",
        );
    }
    // d joins: c no longer owns some keys, and keeps its copies (no purge).
    let d = NodeProc::start(0, &dir.path().join("d"), &flags(Some(&a.name)));
    for n in [&a, &b, &c, &d] {
        wait_until("a ring of four, every member up", || {
            let s = status(&n.name);
            s.ring_size == 4 && s.members.iter().all(|m| m.state == "up")
        });
    }
    let moved: Vec<&String> = keys
        .iter()
        .filter(|k| !whereis(&a, k).contains(&c.name))
        .collect();
    assert!(!moved.is_empty(), "no key moved off c");
    check_held(&c, &moved, true);

    // The former owner stops; the keys it no longer owns are deleted, and
    // once the grace is past, balance collects their tombstones.
    let c_port = c.port;
    assert!(c.signal("-TERM").success());
    for k in &moved {
        ok(&client(&a.port_arg(), &["-c", "del", "-k", k]), "del");
    }
    std::thread::sleep(Duration::from_secs(3));
    // Balance names c (down) for the ranges c replicates; the ranges of the
    // deleted keys, where c is no longer a replica, are settled.
    let out = client(&a.port_arg(), &["-c", "balance"]);
    assert!(
        out.status.success() || stderr(&out).contains(&format!("{} (down)", c.name)),
        "{}",
        stderr(&out)
    );
    for n in [&a, &b, &d] {
        assert_eq!(status(&n.name).store.tombstones, 0, "{} collected", n.name);
    }

    // It comes back with its old copies, and every way they could travel
    // back is tried: purge on it, balance, then its leave.
    let mut c = NodeProc::start(c_port, &dir.path().join("c"), &flags(None));
    for n in [&a, &b, &d] {
        wait_until("every member to see c up again", || {
            status(&n.name)
                .member(&c.name)
                .is_some_and(|m| m.state == "up" && !m.down)
        });
    }
    ok(&client(&c.port_arg(), &["-c", "purge"]), "purge on c");
    check_held(&c, &moved, false);
    ok(&client(&a.port_arg(), &["-c", "balance"]), "balance");
    assert!(c.interrupt().success(), "c leaves");
    for n in [&a, &b, &d] {
        wait_until("c gone from every ring", || ring_size(&n.name) == 3);
    }
    ok(&client(&a.port_arg(), &["-c", "balance"]), "balance");
    let started = Instant::now();
    for n in [&a, &b, &d] {
        for k in &moved {
            let out = client(&n.port_arg(), &["-c", "get", "-k", k]);
            assert_eq!(
                stderr(&out).trim(),
                "ERR_VALUE_NOT_FOUND",
                "{k} read through {}: {}",
                n.name,
                stdout(&out)
            );
        }
        check_held(n, &moved, false);
    }
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// Whether `node`'s own store holds a value for each key (`haskey`).
fn check_held(node: &NodeProc, keys: &[&String], held: bool) {
    for k in keys {
        let out = client(&node.port_arg(), &["-c", "haskey", "-k", k]);
        assert!(out.status.success(), "{}", stderr(&out));
        let has = stdout(&out).trim() != "0.0";
        assert_eq!(has, held, "{k} on {}: {}", node.name, stdout(&out));
    }
}
