//! SIGKILL crash test: a child process writes and deletes (small and large
//! values) and is killed at random moments, 20 rounds, some of them in the
//! middle of a large value; after each kill the store must open without
//! repair, hold every acknowledged operation (or a later one in flight),
//! show no partial value and leak no value file.

mod common;

use std::time::Duration;

use common::child::{self, ChildGuard, Rng};
use mydht_store::{DiskStore, SyncPolicy};

/// Kills per run; raise it for a stress run:
/// `MYDHT_CRASH_ROUNDS=200 cargo test -p mydht-store --test crash`.
fn rounds() -> u64 {
    std::env::var("MYDHT_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20)
}

#[test]
#[ignore = "the writer process of the crash tests, started by them"]
fn crash_child_writer() {
    child::child_main();
}

#[test]
fn sigkill_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_dir = dir.path().join("store");
    let mut rng = Rng::seeded();
    let mut acked = Vec::new();
    let mut killed_mid_large = 0;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rounds = rounds();
    for round in 0..rounds {
        let start = (round + 1) * 1_000_000;
        let mut c = ChildGuard::spawn("crash_child_writer", &store_dir, start, "always", true);
        let during_big = round % 3 == 1;
        let min_acks = 5 + rng.below(40) as usize;
        c.wait_for("first acknowledgements", Duration::from_secs(60), |c| {
            c.ack_count() >= min_acks
        });
        if during_big {
            let seen = c.bigs.lock().expect("lock").len();
            c.wait_for("a large value to start", Duration::from_secs(60), |c| {
                c.bigs.lock().expect("lock").len() > seen
            });
            std::thread::sleep(Duration::from_millis(rng.below(15)));
        } else {
            std::thread::sleep(Duration::from_millis(rng.below(200)));
        }
        let bigs = c.bigs.clone();
        let acks = c.kill();
        assert!(!acks.is_empty());
        if bigs.lock().expect("lock").iter().any(|b| !acks.contains(b)) {
            killed_mid_large += 1;
        }
        acked.extend(acks);
        let newest = child::newest_acked(&acked);
        rt.block_on(async {
            let store = DiskStore::open(&store_dir, child::options(SyncPolicy::Always))
                .expect("store opens after SIGKILL without repair");
            let verdict = child::verify(&store, &newest, true).await;
            assert!(
                verdict.lost.is_empty(),
                "round {round}: acknowledged writes lost: {:?}",
                verdict.lost
            );
            child::assert_no_leaked_files(&store).await;
        });
    }
    eprintln!(
        "{} acknowledged operations checked over {rounds} kills, {killed_mid_large} with a large value in flight",
        acked.len()
    );
    assert!(
        killed_mid_large >= 3,
        "only {killed_mid_large} kills hit a large value in flight"
    );
}
