//! Behaviour only the disk engine has: value files appear atomically, are
//! cleaned up when orphaned, and reads stay consistent while writes replace
//! a value between the engine and a file.

mod common;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use common::{Got, got, ver};
use mydht_store::{DiskOptions, DiskStore, Lookup, Store, StoreError};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};

const THRESHOLD: usize = 64 << 10;

fn opts() -> DiskOptions {
    DiskOptions::default().large_value_threshold(THRESHOLD)
}

fn value_files(store: &DiskStore) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(store.dir().join("values"))
        .expect("values dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn pattern(seed: u64, len: usize) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (seed as usize * 17 + i) as u8)
            .collect::<Vec<_>>(),
    )
}

#[tokio::test]
async fn orphan_value_files_are_removed_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = pattern(1, 200_000);
    {
        let store = DiskStore::open(dir.path(), opts()).expect("open");
        assert!(
            store
                .put(b"big", ver(1, "a:1"), big.clone())
                .await
                .expect("put")
                .applied()
        );
        assert_eq!(value_files(&store).len(), 1);
    }
    // What a crash mid-upload leaves: a file no entry names.
    let values = dir.path().join("values");
    std::fs::write(values.join("00000000000000ff.val"), b"half a value").expect("orphan");
    std::fs::write(values.join("notes.txt"), b"not ours").expect("stray");
    let store = DiskStore::open(dir.path(), opts()).expect("reopen");
    let files = value_files(&store);
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files.contains(&"notes.txt".to_string()),
        "files the store does not own are left alone"
    );
    assert!(
        !files.contains(&"00000000000000ff.val".to_string()),
        "the orphan is gone"
    );
    assert_eq!(
        got(&store, b"big").await,
        Got::Value(ver(1, "a:1"), big.clone())
    );
    // New files do not reuse the orphan's number while it could still exist.
    assert!(
        store
            .put(b"big2", ver(2, "a:1"), big)
            .await
            .expect("put")
            .applied()
    );
    assert!(
        value_files(&store)
            .iter()
            .any(|f| f.as_str() > "00000000000000ff.val")
    );
}

/// A stream that yields `good` bytes and then fails.
struct Failing {
    good: usize,
}

impl AsyncRead for Failing {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if me.good == 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "client went away",
            )));
        }
        let n = me.good.min(buf.remaining()).min(8192);
        buf.put_slice(&vec![1u8; n]);
        me.good -= n;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_broken_stream_changes_nothing_and_leaves_no_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = DiskStore::open(dir.path(), opts()).expect("open");
    let old = pattern(3, 100_000);
    assert!(
        store
            .put(b"k", ver(1, "a:1"), old.clone())
            .await
            .expect("put")
            .applied()
    );
    let err = store
        .put_stream(b"k", ver(2, "a:1"), Failing { good: 300_000 })
        .await
        .expect_err("a broken stream is an error");
    assert!(matches!(err, StoreError::Io { .. }), "got {err:?}");
    assert_eq!(got(&store, b"k").await, Got::Value(ver(1, "a:1"), old));
    assert_eq!(value_files(&store).len(), 1, "the partial file was removed");
    assert_eq!(store.stats().live_keys, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_the_previous_version_until_a_stream_completes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(DiskStore::open(dir.path(), opts()).expect("open"));
    assert!(
        store
            .put(b"k", ver(1, "a:1"), Bytes::from_static(b"old"))
            .await
            .expect("put")
            .applied()
    );
    let (mut tx, rx) = tokio::io::duplex(16 << 10);
    let s = store.clone();
    let upload = tokio::spawn(async move { s.put_stream(b"k", ver(2, "a:1"), rx).await });
    let new = pattern(9, 300_000);
    // Once this returns the store has taken in at least 200 KiB.
    tx.write_all(&new[..200_000]).await.expect("send");
    assert_eq!(
        got(&*store, b"k").await,
        Got::Value(ver(1, "a:1"), Bytes::from_static(b"old"))
    );
    tx.write_all(&new[200_000..]).await.expect("send");
    drop(tx);
    assert!(upload.await.expect("task").expect("put_stream").applied());
    assert_eq!(got(&*store, b"k").await, Got::Value(ver(2, "a:1"), new));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_racing_replacements_always_pair_a_version_with_its_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(DiskStore::open(dir.path(), opts()).expect("open"));
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 1..=300u64 {
                let v = ver(i, "a:1");
                let applied = match i % 3 {
                    0 => store.delete(b"k", v).await,
                    1 => store.put(b"k", v, pattern(i, 50)).await,
                    _ => store.put(b"k", v, pattern(i, THRESHOLD + 1_000)).await,
                };
                assert!(applied.expect("write").applied());
            }
        })
    };
    let mut seen = 0;
    while !writer.is_finished() {
        match store.get(b"k").await.expect("get never fails on a race") {
            Lookup::Absent | Lookup::Tombstone(_) => {}
            Lookup::Value(v) => {
                let i = v.version().timestamp.millis();
                let len = if i % 3 == 1 { 50 } else { THRESHOLD + 1_000 };
                assert_eq!(v.len(), len as u64, "length of version {i}");
                let bytes = v.into_bytes(u64::MAX).await.expect("read");
                assert!(
                    bytes == pattern(i, len),
                    "bytes of another version under version {i}"
                );
                seen += 1;
            }
        }
    }
    writer.await.expect("writer");
    assert!(seen > 0, "the reader saw at least one value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_upload_leaves_no_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(DiskStore::open(dir.path(), opts()).expect("open"));
    let (mut tx, rx) = tokio::io::duplex(16 << 10);
    let s = store.clone();
    let upload = tokio::spawn(async move { s.put_stream(b"k", ver(1, "a:1"), rx).await });
    // Once this returns the value file exists and is being written.
    tx.write_all(&pattern(1, 200_000)).await.expect("send");
    assert_eq!(value_files(&store).len(), 1);
    // The caller goes away mid-stream (a client timeout, a dropped request).
    upload.abort();
    assert!(upload.await.expect_err("aborted").is_cancelled());
    assert!(
        value_files(&store).is_empty(),
        "the unfinished file was removed"
    );
    assert_eq!(got(&*store, b"k").await, Got::Absent);
}
