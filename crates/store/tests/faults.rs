//! Bad conditions: a full disk and an I/O error give typed errors, never a
//! panic, a hang or an acknowledgement of something not synced; after the
//! disk is freed the store serves again with every acknowledged write
//! intact. Skips, saying why, where mounting is impossible.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::mount::{Mount, skip};
use common::{Got, got, ver};
use mydht_store::{DiskOptions, DiskStore, Store, StoreError};

/// Bounds every call: the store must never retry forever.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("store call hung")
}

fn opts() -> DiskOptions {
    DiskOptions::default()
        .large_value_threshold(64 << 10)
        .max_memtable_bytes(1 << 20)
        .cache_bytes(4 << 20)
}

fn value(i: u64, len: usize) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|j| (i as usize * 13 + j) as u8)
            .collect::<Vec<_>>(),
    )
}

async fn check(store: &DiskStore, acked: &[(Vec<u8>, u64, usize)], when: &str) {
    let mut missing = Vec::new();
    for (key, i, len) in acked {
        // Compared without printing: values are large.
        if got(store, key).await != Got::Value(ver(i + 1, "a:1"), value(*i, *len)) {
            missing.push(*i);
        }
    }
    assert!(
        missing.is_empty(),
        "{when}: {} of {} acknowledged writes missing or wrong: {missing:?}; stats {:?}",
        missing.len(),
        acked.len(),
        store.stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_is_a_typed_error_and_the_store_recovers_when_freed() {
    let m = match Mount::tmpfs(16) {
        Ok(m) => m,
        Err(why) => {
            skip("full-disk", &why);
            return;
        }
    };
    // Space the test frees later.
    let filler = m.path().join("filler");
    std::fs::write(&filler, vec![0u8; 4 << 20]).expect("filler");
    let dir = m.path().join("store");
    let store = DiskStore::open(&dir, opts()).expect("open");
    let mut acked = Vec::new();
    let mut errors = Vec::new();
    let mut failing_in_a_row = 0;
    // Alternate small and large values until even small writes fail for a
    // while: a large value can fail for space while small ones still fit.
    for i in 0..20_000u64 {
        let len = if i % 4 == 0 { 200 << 10 } else { 2_000 };
        let key = format!("k{i}").into_bytes();
        match bounded(store.put(&key, ver(i + 1, "a:1"), value(i, len))).await {
            Ok(o) => {
                assert!(o.applied());
                acked.push((key, i, len));
                failing_in_a_row = 0;
            }
            Err(e) => {
                assert!(
                    matches!(e, StoreError::DiskFull { .. } | StoreError::Reopening),
                    "a full disk gives DiskFull (or Reopening while the engine restarts), got {e:?}"
                );
                errors.push(e);
                failing_in_a_row += 1;
                if failing_in_a_row == 8 {
                    break;
                }
            }
        }
    }
    assert_eq!(failing_in_a_row, 8, "the 16 MiB disk never filled up");
    assert!(
        errors.iter().any(StoreError::is_disk_full),
        "no DiskFull among {errors:?}"
    );
    eprintln!(
        "{} writes acknowledged, {} refused on a full disk",
        acked.len(),
        errors.len()
    );
    std::fs::remove_file(&filler).expect("free space");
    // The store serves again once space is back (it reopens the engine).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match bounded(store.put(b"after", ver(2_000_000, "a:1"), value(7, 100))).await {
            Ok(o) => {
                assert!(o.applied());
                break;
            }
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "store did not recover after space was freed: {e}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    check(&store, &acked, "after space was freed").await;
    drop(store);
    let store = DiskStore::open(&dir, opts()).expect("reopen");
    check(&store, &acked, "after a restart").await;
    assert_eq!(
        got(&store, b"after").await,
        Got::Value(ver(2_000_000, "a:1"), value(7, 100))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn io_error_is_typed_and_acknowledged_writes_survive() {
    if let Err(why) = Mount::check_xfs_io() {
        skip("I/O-error", &why);
        return;
    }
    let mut m = match Mount::ext4(64) {
        Ok(m) => m,
        Err(why) => {
            skip("I/O-error", &why);
            return;
        }
    };
    let dir = m.path().join("store");
    let store = DiskStore::open(&dir, opts()).expect("open");
    for i in 0..50u64 {
        let len = if i % 10 == 0 { 100 << 10 } else { 500 };
        assert!(
            bounded(store.put(&i.to_be_bytes(), ver(i + 1, "a:1"), value(i, len)))
                .await
                .expect("put")
                .applied()
        );
    }
    // Every I/O after this fails with EIO.
    m.power_cut();
    for i in 0..5u64 {
        let small = bounded(store.put(b"x", ver(100 + i, "a:1"), value(i, 100))).await;
        assert!(
            matches!(
                small,
                Err(StoreError::Io { .. } | StoreError::Reopening | StoreError::Engine { .. })
            ),
            "expected a typed I/O failure, got {small:?}"
        );
        let big = bounded(store.put(b"y", ver(100 + i, "a:1"), value(i, 200 << 10))).await;
        assert!(
            matches!(
                big,
                Err(StoreError::Io { .. } | StoreError::Reopening | StoreError::Engine { .. })
            ),
            "got {big:?}"
        );
        let del = bounded(store.delete(b"0", ver(100 + i, "a:1"))).await;
        assert!(del.is_err(), "a delete cannot be acknowledged after EIO");
    }
    drop(store);
    m.remount();
    let store = DiskStore::open(&dir, opts()).expect("reopen after remount");
    for i in 0..50u64 {
        let len = if i % 10 == 0 { 100 << 10 } else { 500 };
        assert_eq!(
            got(&store, &i.to_be_bytes()).await,
            Got::Value(ver(i + 1, "a:1"), value(i, len))
        );
    }
    assert_eq!(got(&store, b"x").await, Got::Absent);
}
