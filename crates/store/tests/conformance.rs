//! One conformance suite, run against every engine.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{Got, got, ver};
use mydht_proto::Timestamp;
use mydht_ring::{NodeId, Position, TokenRange};
use mydht_store::{
    DiskOptions, DiskStore, Hint, MAX_KEY_LEN, MemoryStore, Outcome, Purge, PurgeRequest, Stamp,
    Store, StoreError, StoreStats, SyncPolicy, haskey_text,
};

async fn test_suite<S: Store>(store: Arc<S>) {
    last_writer_wins(&*store).await;
    tombstones(&*store).await;
    streamed_values(&*store).await;
    bad_keys(&*store).await;
    listing(&*store).await;
    purging(&*store).await;
    dropping(&*store).await;
    digests(&*store).await;
    hints(&*store).await;
    racing_puts(store.clone()).await;
}

fn hint(target: &str, key: &[u8], t: u64, at_ms: u64) -> Hint {
    Hint {
        target: NodeId::new(target).expect("name"),
        key: key.to_vec(),
        version: ver(t, "a:1"),
        at_ms,
    }
}

async fn hints<S: Store>(s: &S) {
    s.put_hint(hint("b:1", b"k", 5, 100)).await.expect("hint");
    s.put_hint(hint("c:1", b"k", 5, 100)).await.expect("hint");
    // A newer version replaces the hint, keeping when it was first kept;
    // an older one changes nothing.
    s.put_hint(hint("b:1", b"k", 7, 200)).await.expect("hint");
    s.put_hint(hint("b:1", b"k", 6, 300)).await.expect("hint");
    let mut all = s.hints().await.expect("hints");
    all.sort_by(|x, y| x.target.cmp(&y.target));
    assert_eq!(
        all,
        vec![hint("b:1", b"k", 7, 100), hint("c:1", b"k", 5, 100)]
    );
    // Removal only of exactly the version named.
    let b = NodeId::new("b:1").expect("name");
    s.remove_hint(&b, b"k", &ver(5, "a:1"))
        .await
        .expect("remove");
    assert_eq!(s.hints().await.expect("hints").len(), 2);
    s.remove_hint(&b, b"k", &ver(7, "a:1"))
        .await
        .expect("remove");
    assert_eq!(
        s.hints().await.expect("hints"),
        vec![hint("c:1", b"k", 5, 100)]
    );
    // Hints are not entries.
    assert_eq!(got(s, b"k").await, Got::Absent);
}

async fn last_writer_wins<S: Store>(s: &S) {
    let k = b"lww";
    assert_eq!(got(s, k).await, Got::Absent);
    assert_eq!(s.version_of(k).await.expect("version_of"), None);
    assert_eq!(haskey_text(None), "0.0");
    let put = |v, val: &'static [u8]| s.put(k, v, Bytes::from_static(val));
    assert_eq!(
        put(ver(10, "a:1"), b"ten").await.expect("put"),
        Outcome::Applied
    );
    assert_eq!(
        put(ver(5, "a:1"), b"five").await.expect("put"),
        Outcome::Superseded
    );
    assert_eq!(
        put(ver(10, "a:1"), b"again").await.expect("put"),
        Outcome::Superseded
    );
    assert_eq!(
        got(s, k).await,
        Got::Value(ver(10, "a:1"), Bytes::from_static(b"ten"))
    );
    // Same millisecond: the node name breaks the tie.
    assert_eq!(
        put(ver(10, "b:1"), b"b").await.expect("put"),
        Outcome::Applied
    );
    assert_eq!(
        put(ver(10, "a:2"), b"a2").await.expect("put"),
        Outcome::Superseded
    );
    let stamp = s.version_of(k).await.expect("version_of");
    assert_eq!(stamp, Some(Stamp::Value(ver(10, "b:1"))));
    let v = mydht_proto::Version {
        timestamp: Timestamp::from_parts(1_300_386_351_670, 0),
        node: ver(0, "a:1").node,
    };
    assert_eq!(haskey_text(Some(&Stamp::Value(v))), "1300386351.67");
    assert_eq!(haskey_text(Some(&Stamp::Value(ver(2000, "a:1")))), "2.0");
}

async fn tombstones<S: Store>(s: &S) {
    let k = b"tomb";
    assert!(
        s.put(k, ver(10, "a:1"), Bytes::from_static(b"x"))
            .await
            .expect("put")
            .applied()
    );
    assert_eq!(
        s.delete(k, ver(9, "a:1")).await.expect("delete"),
        Outcome::Superseded
    );
    assert_eq!(
        s.delete(k, ver(11, "a:1")).await.expect("delete"),
        Outcome::Applied
    );
    assert_eq!(got(s, k).await, Got::Tombstone(ver(11, "a:1")));
    assert_eq!(
        s.version_of(k).await.expect("v"),
        Some(Stamp::Tombstone(ver(11, "a:1")))
    );
    assert_eq!(haskey_text(Some(&Stamp::Tombstone(ver(11, "a:1")))), "0.0");
    // An older put cannot resurrect the key; a newer one can.
    let old = s
        .put(k, ver(10, "z:9"), Bytes::from_static(b"old"))
        .await
        .expect("put");
    assert_eq!(old, Outcome::Superseded);
    assert_eq!(got(s, k).await, Got::Tombstone(ver(11, "a:1")));
    let new = s
        .put(k, ver(12, "a:1"), Bytes::from_static(b"new"))
        .await
        .expect("put");
    assert_eq!(new, Outcome::Applied);
    assert_eq!(
        got(s, k).await,
        Got::Value(ver(12, "a:1"), Bytes::from_static(b"new"))
    );
    // Deleting a key never written leaves a tombstone too.
    assert!(
        s.delete(b"never", ver(3, "a:1"))
            .await
            .expect("delete")
            .applied()
    );
    assert_eq!(got(s, b"never").await, Got::Tombstone(ver(3, "a:1")));
}

async fn streamed_values<S: Store>(s: &S) {
    // Larger than the disk engine's test threshold, so it goes to a file.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let k = b"big";
    let o = s
        .put_stream(k, ver(20, "a:1"), &big[..])
        .await
        .expect("put_stream");
    assert_eq!(o, Outcome::Applied);
    assert_eq!(
        got(s, k).await,
        Got::Value(ver(20, "a:1"), Bytes::from(big.clone()))
    );
    // A stale stream is refused without reading it.
    let mut unread = &b"never read"[..];
    let o = s
        .put_stream(k, ver(19, "a:1"), &mut unread)
        .await
        .expect("put_stream");
    assert_eq!(o, Outcome::Superseded);
    assert_eq!(unread.len(), 10, "a superseded stream is not consumed");
    // Replacing a large value by a small one and back.
    assert!(
        s.put(k, ver(21, "a:1"), Bytes::from_static(b"small"))
            .await
            .expect("put")
            .applied()
    );
    assert_eq!(
        got(s, k).await,
        Got::Value(ver(21, "a:1"), Bytes::from_static(b"small"))
    );
    assert!(
        s.put(k, ver(22, "a:1"), Bytes::from(big.clone()))
            .await
            .expect("put")
            .applied()
    );
    assert_eq!(
        got(s, k).await,
        Got::Value(ver(22, "a:1"), Bytes::from(big))
    );
    let empty = s
        .put_stream(b"empty", ver(1, "a:1"), &b""[..])
        .await
        .expect("put");
    assert_eq!(empty, Outcome::Applied);
    assert_eq!(
        got(s, b"empty").await,
        Got::Value(ver(1, "a:1"), Bytes::new())
    );
}

async fn bad_keys<S: Store>(s: &S) {
    let long = vec![b'k'; MAX_KEY_LEN + 1];
    let err = s
        .put(&long, ver(1, "a:1"), Bytes::new())
        .await
        .expect_err("too long");
    assert!(
        matches!(err, StoreError::KeyTooLong { len, max } if len == MAX_KEY_LEN + 1 && max == MAX_KEY_LEN)
    );
    assert!(matches!(
        s.get(&long).await,
        Err(StoreError::KeyTooLong { .. })
    ));
    assert!(matches!(
        s.delete(&long, ver(1, "a:1")).await,
        Err(StoreError::KeyTooLong { .. })
    ));
    let max = vec![b'k'; MAX_KEY_LEN];
    assert!(
        s.put(&max, ver(1, "a:1"), Bytes::from_static(b"ok"))
            .await
            .expect("a key at the cap is fine")
            .applied()
    );
    assert!(
        s.delete(&max, ver(2, "a:1"))
            .await
            .expect("delete")
            .applied()
    );
}

async fn listing<S: Store>(s: &S) {
    // Fresh keys in their own namespace; earlier steps left others.
    let keys: Vec<Vec<u8>> = (0..40).map(|i| format!("list-{i}").into_bytes()).collect();
    for (i, k) in keys.iter().enumerate() {
        assert!(
            s.put(k, ver(100 + i as u64, "a:1"), Bytes::from(vec![1u8; i]))
                .await
                .expect("put")
                .applied()
        );
    }
    let mut positions: Vec<u64> = keys.iter().map(|k| Position::of_key(k).0).collect();
    positions.sort_unstable();
    // A wrapping range from the 30th key's position to the 10th's.
    let range = TokenRange::new(Position(positions[30]), Position(positions[10]));
    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let page = s.scan(range, after.as_ref(), 3).await.expect("scan");
        assert!(page.entries.len() <= 3);
        listed.extend(page.entries);
        match page.next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    assert!(
        listed.iter().all(|e| range.contains(e.position)),
        "only positions in range"
    );
    assert!(
        listed
            .iter()
            .all(|e| Position::of_key(&e.key) == e.position)
    );
    let ours: Vec<u64> = listed
        .iter()
        .filter(|e| e.key.starts_with(b"list-"))
        .map(|e| e.position.0)
        .collect();
    let expect: Vec<u64> = positions[31..]
        .iter()
        .chain(&positions[..=10])
        .copied()
        .collect();
    assert_eq!(
        ours, expect,
        "ring order from the range's start, all of them"
    );
    // The whole listing in pages.
    let mut all = 0;
    let mut after = None;
    loop {
        let page = s.list_keys(after.as_ref(), 7).await.expect("list");
        all += page.entries.len();
        let Some(c) = page.next else { break };
        after = Some(c);
    }
    let st = s.stats();
    assert_eq!(
        all as u64,
        st.live_keys + st.tombstones,
        "listing and counters agree"
    );
}

async fn purging<S: Store>(s: &S) {
    let k = b"purge";
    let before = s.stats();
    assert!(
        s.delete(k, ver(1_000, "a:1"))
            .await
            .expect("delete")
            .applied()
    );
    let req = |held, now_ms| PurgeRequest {
        version: ver(1_000, "a:1"),
        held_by_all_replicas: held,
        now: Timestamp::from_parts(now_ms, 0),
        grace: Duration::from_secs(10),
    };
    // Age alone collects nothing.
    assert_eq!(
        s.purge_tombstone(k, req(false, 1_000_000))
            .await
            .expect("p"),
        Purge::NotHeldEverywhere
    );
    assert_eq!(
        s.purge_tombstone(k, req(true, 5_000)).await.expect("p"),
        Purge::TooRecent
    );
    assert_eq!(got(s, k).await, Got::Tombstone(ver(1_000, "a:1")));
    let mut other = req(true, 1_000_000);
    other.version = ver(999, "a:1");
    assert_eq!(
        s.purge_tombstone(k, other).await.expect("p"),
        Purge::Changed
    );
    assert_eq!(
        s.purge_tombstone(k, req(true, 11_000)).await.expect("p"),
        Purge::Removed
    );
    assert_eq!(got(s, k).await, Got::Absent);
    assert_eq!(s.stats(), before, "counters back to where they were");
    // A live value is never purged.
    assert!(
        s.put(k, ver(2_000, "a:1"), Bytes::from_static(b"v"))
            .await
            .expect("put")
            .applied()
    );
    let mut live = req(true, 1_000_000);
    live.version = ver(2_000, "a:1");
    assert_eq!(s.purge_tombstone(k, live).await.expect("p"), Purge::Changed);
}

/// A key a node no longer owns goes only while it holds exactly the stamp
/// the caller checked: a newer write in between keeps it.
async fn dropping<S: Store>(s: &S) {
    let k = b"not-mine";
    let before = s.stats();
    let put = |ms| s.put(k, ver(ms, "a:1"), Bytes::from_static(b"value"));
    assert!(put(100).await.expect("put").applied());
    assert_eq!(
        s.drop_entry(k, &Stamp::Value(ver(99, "a:1")))
            .await
            .expect("drop"),
        Purge::Changed
    );
    assert_eq!(
        s.drop_entry(k, &Stamp::Tombstone(ver(100, "a:1")))
            .await
            .expect("drop"),
        Purge::Changed
    );
    assert_eq!(
        got(s, k).await,
        Got::Value(ver(100, "a:1"), Bytes::from_static(b"value"))
    );
    assert_eq!(
        s.drop_entry(k, &Stamp::Value(ver(100, "a:1")))
            .await
            .expect("drop"),
        Purge::Removed
    );
    assert_eq!(got(s, k).await, Got::Absent);
    assert_eq!(s.stats(), before, "counters back to where they were");
    assert!(s.delete(k, ver(200, "a:1")).await.expect("del").applied());
    assert_eq!(
        s.drop_entry(k, &Stamp::Tombstone(ver(200, "a:1")))
            .await
            .expect("drop"),
        Purge::Removed
    );
    assert_eq!(got(s, k).await, Got::Absent);
    assert_eq!(s.stats(), before);
}

/// A range digest counts entries and tombstones and changes with any
/// version; an older write that does not apply leaves it as it was.
async fn digests<S: Store>(s: &S) {
    let whole = TokenRange::new(Position(0), Position(0));
    let before = s.digest(whole).await.expect("digest");
    let k = b"digest-a";
    assert!(
        s.put(k, ver(10, "a:1"), Bytes::from_static(b"x"))
            .await
            .expect("put")
            .applied()
    );
    let one = s.digest(whole).await.expect("digest");
    assert_eq!(one.count, before.count + 1);
    assert_eq!(one.tombstones, before.tombstones);
    assert_ne!(one.hash, before.hash);
    assert!(
        !s.put(k, ver(9, "a:1"), Bytes::from_static(b"older"))
            .await
            .expect("put")
            .applied()
    );
    assert_eq!(s.digest(whole).await.expect("digest"), one);
    assert!(s.delete(k, ver(11, "a:1")).await.expect("delete").applied());
    let deleted = s.digest(whole).await.expect("digest");
    assert_eq!(deleted.count, one.count);
    assert_eq!(deleted.tombstones, one.tombstones + 1);
    assert_ne!(deleted.hash, one.hash);
    let pos = Position::of_key(k);
    let only = TokenRange::new(Position(pos.0.wrapping_sub(1)), pos);
    let d = s.digest(only).await.expect("digest");
    assert_eq!((d.count, d.tombstones), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_engines_digest_the_same_entries_alike() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = DiskStore::open(dir.path(), DiskOptions::default()).expect("open");
    let memory = MemoryStore::new();
    for i in 0..50u64 {
        let key = format!("d-{i}").into_bytes();
        let v = ver(100 + i, "n:1");
        for s in [&disk as &dyn DigestProbe, &memory] {
            s.write(&key, v.clone(), i % 3 == 0).await;
        }
    }
    let whole = TokenRange::new(Position(0), Position(0));
    let a = disk.digest(whole).await.expect("digest");
    let b = memory.digest(whole).await.expect("digest");
    assert_eq!(a, b);
    assert_eq!((a.count, a.tombstones), (50, 17));
    // The same version with other bytes is another entry: digests cover
    // the value, so such copies are found.
    let v = ver(500, "n:1");
    let _ = disk
        .put(b"same", v.clone(), Bytes::from_static(b"one"))
        .await;
    let _ = memory.put(b"same", v, Bytes::from_static(b"two")).await;
    let (a, b) = (disk.digest(whole).await, memory.digest(whole).await);
    let (a, b) = (a.expect("digest"), b.expect("digest"));
    assert_eq!(a.count, b.count);
    assert_ne!(a.hash, b.hash);
}

/// Writes through either engine in one loop.
trait DigestProbe {
    fn write<'a>(
        &'a self,
        key: &'a [u8],
        v: mydht_proto::Version,
        tombstone: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;
}

impl<S: Store> DigestProbe for S {
    fn write<'a>(
        &'a self,
        key: &'a [u8],
        v: mydht_proto::Version,
        tombstone: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>> {
        Box::pin(async move {
            if tombstone {
                assert!(self.delete(key, v).await.expect("delete").applied());
            } else {
                let stored = self.put(key, v, Bytes::from_static(b"v")).await;
                assert!(stored.expect("put").applied());
            }
        })
    }
}

/// Two writers race on the same keys with different versions, in both
/// orders; the newer version must always be what stays.
async fn racing_puts<S: Store>(s: Arc<S>) {
    let mut tasks = Vec::new();
    for round in 0..200u64 {
        let key = format!("race-{round}").into_bytes();
        for (ms, node) in [(50, "b:1"), (50, "a:1"), (49, "z:1"), (51, "a:1")] {
            let s = s.clone();
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                s.put(&key, ver(ms, node), Bytes::from(format!("{ms}{node}")))
                    .await
                    .expect("put")
            }));
        }
    }
    let mut applied = 0;
    for t in tasks {
        applied += usize::from(t.await.expect("task").applied());
    }
    assert!(
        applied >= 200,
        "at least the newest write of each key applied"
    );
    for round in 0..200u64 {
        let key = format!("race-{round}").into_bytes();
        assert_eq!(
            got(&*s, &key).await,
            Got::Value(ver(51, "a:1"), Bytes::from_static(b"51a:1"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_the_suite() {
    test_suite(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disk_store_passes_the_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = DiskOptions::default().large_value_threshold(64 << 10);
    let store = Arc::new(DiskStore::open(dir.path(), opts.clone()).expect("open"));
    test_suite(store.clone()).await;
    // Everything, counters included, survives a reopen.
    let stats: StoreStats = store.stats();
    let big = got(&*store, b"big").await;
    drop(store);
    let store = DiskStore::open(dir.path(), opts).expect("reopen");
    assert_eq!(store.stats(), stats);
    assert_eq!(got(&store, b"big").await, big);
    assert_eq!(
        got(&store, b"tomb").await,
        Got::Value(ver(12, "a:1"), Bytes::from_static(b"new"))
    );
    assert_eq!(
        store.hints().await.expect("hints"),
        vec![hint("c:1", b"k", 5, 100)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disk_store_passes_the_suite_under_every_sync_policy() {
    for policy in [
        SyncPolicy::Periodic(Duration::from_millis(5)),
        SyncPolicy::None,
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = DiskOptions::default()
            .large_value_threshold(64 << 10)
            .sync(policy);
        let store = Arc::new(DiskStore::open(dir.path(), opts.clone()).expect("open"));
        test_suite(store.clone()).await;
        let stats = store.stats();
        drop(store);
        // A clean shutdown syncs whatever the policy left unsynced.
        let store = DiskStore::open(dir.path(), opts).expect("reopen");
        assert_eq!(store.stats(), stats, "{policy:?}");
        assert_eq!(
            got(&store, b"race-7").await,
            Got::Value(ver(51, "a:1"), Bytes::from_static(b"51a:1"))
        );
    }
}
