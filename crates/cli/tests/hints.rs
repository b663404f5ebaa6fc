//! Hinted handoff with real processes: a replica SIGKILLed while writes go
//! on gets every write it missed back from the coordinator's hints once it
//! restarts, with no command run, even when the coordinator itself was
//! restarted in between (hints are kept in its store).

mod common;

use std::time::{Duration, Instant};

use common::*;

const KEYS: usize = 300;

#[test]
fn a_killed_replica_gets_every_missed_write_back_from_hints_after_a_restart() {
    let dir = temp_dir();
    let (da, db, dc) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    // No background anti-entropy: only hints can repair c here.
    let off = ["--anti-entropy-interval", "off"];
    let mut a = NodeProc::start(0, &da, &off);
    let b = NodeProc::start(0, &db, &["-s", &a.name, off[0], off[1]]);
    let mut c = NodeProc::start(0, &dc, &["-s", &a.name, off[0], off[1]]);
    for n in [&a, &b, &c] {
        wait_until("a ring of three", || ring_size(&n.name) == 3);
    }
    let rt = runtime();
    let keys: Vec<String> = (0..KEYS).map(|i| format!("hinted-{i}")).collect();
    // Ten keys c holds before it is killed, and which are deleted while it
    // is down: their tombstones are hinted too.
    let (deleted, written) = keys.split_at(10);
    rt.block_on(async {
        let (through_a, on_c) = (only(&a.name), only(&c.name));
        for k in deleted {
            through_a.put(k, "doomed").await.expect("put");
            while on_c.haskey(k).await.expect("haskey").is_none() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    let c_port = c.port;
    c.kill();
    rt.block_on(async {
        let through_a = only(&a.name);
        for k in written {
            through_a
                .put(k, format!("value of {k}"))
                .await
                .unwrap_or_else(|e| panic!("{k}: {e}"));
        }
        for k in deleted {
            through_a
                .delete(k)
                .await
                .unwrap_or_else(|e| panic!("{k}: {e}"));
        }
    });
    wait_until("a hint for every key missed", || {
        status(&a.name).hints.pending == KEYS as u64
    });

    // The coordinator stops and starts again: its hints were kept.
    let a_port = a.port;
    let exit = a.signal("-TERM");
    assert!(exit.success(), "{exit:?}");
    let a = NodeProc::start(a_port, &da, &off);
    assert_eq!(status(&a.name).hints.pending, KEYS as u64);

    let restarted = Instant::now();
    let c = NodeProc::start(c_port, &dc, &off);
    // Every key on c holds what a and b hold, version for version (c held
    // the deleted keys' values before it was killed: haskey on c answers
    // 0.0 for them only once it holds their tombstones).
    rt.block_on(async {
        let (on_a, on_b, on_c) = (only(&a.name), only(&b.name), only(&c.name));
        let deadline = restarted + Duration::from_secs(30);
        let mut pending = keys.clone();
        while !pending.is_empty() {
            let mut still = Vec::new();
            for k in pending {
                let want = on_a.haskey(&k).await.expect("haskey on a");
                assert_eq!(on_b.haskey(&k).await.expect("haskey on b"), want, "{k}");
                if on_c.haskey(&k).await.expect("haskey on c") != want {
                    still.push(k);
                }
            }
            pending = still;
            assert!(
                pending.is_empty() || Instant::now() < deadline,
                "{} keys still differ on the restarted replica after 30 s, e.g. {}",
                pending.len(),
                pending[0]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    eprintln!(
        "every missed write on the restarted replica {:.1} s after it started",
        restarted.elapsed().as_secs_f64()
    );
    let s = status(&a.name);
    assert_eq!((s.hints.pending, s.hints.dropped), (0, 0), "{:?}", s.hints);
    assert!(s.hints.delivered >= KEYS as u64, "{:?}", s.hints);
}

#[test]
fn with_hints_dropped_the_background_anti_entropy_round_repairs_a_replica() {
    let dir = temp_dir();
    // No room for hints at all: each one is dropped (and counted), so only
    // anti-entropy can bring c what it missed.
    let flags = ["--hint-max-bytes", "0", "--anti-entropy-interval", "2s"];
    let seed_flags = |seed: &str| -> Vec<String> {
        ["-s", seed]
            .into_iter()
            .chain(flags)
            .map(str::to_string)
            .collect()
    };
    let a = NodeProc::start(0, &dir.path().join("a"), &flags);
    let b_flags = seed_flags(&a.name);
    let b_args: Vec<&str> = b_flags.iter().map(String::as_str).collect();
    let b = NodeProc::start(0, &dir.path().join("b"), &b_args);
    let mut c = NodeProc::start(0, &dir.path().join("c"), &b_args);
    for n in [&a, &b, &c] {
        wait_until("a ring of three", || ring_size(&n.name) == 3);
    }
    let c_port = c.port;
    c.kill();
    let keys: Vec<String> = (0..100).map(|i| format!("repaired-{i}")).collect();
    let rt = runtime();
    rt.block_on(async {
        let through_a = only(&a.name);
        for k in &keys {
            through_a
                .put(k, "v")
                .await
                .unwrap_or_else(|e| panic!("{k}: {e}"));
        }
    });
    let s = status(&a.name);
    assert_eq!(
        (s.hints.pending, s.hints.dropped),
        (0, 100),
        "{:?}",
        s.hints
    );

    let restarted = Instant::now();
    let c = NodeProc::start(c_port, &dir.path().join("c"), &flags);
    rt.block_on(async {
        let (on_a, on_c) = (only(&a.name), only(&c.name));
        let mut pending = keys.clone();
        while !pending.is_empty() {
            let mut still = Vec::new();
            for k in pending {
                let want = on_a.haskey(&k).await.expect("haskey on a");
                if on_c.haskey(&k).await.expect("haskey on c") != want {
                    still.push(k);
                }
            }
            pending = still;
            assert!(
                pending.is_empty() || restarted.elapsed() < Duration::from_secs(30),
                "{} keys still stale on the restarted replica after 30 s",
                pending.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    eprintln!(
        "anti-entropy repaired the restarted replica {:.1} s after it started",
        restarted.elapsed().as_secs_f64()
    );
    drop(b);
}
