//! Store benchmarks: small puts and gets on both engines, durable puts from
//! 1 and 64 concurrent writers (group commit), and a 1 GiB value streamed in
//! and out of `DiskStore` next to `dd ... conv=fsync` on the same disk.
//!
//! ```text
//! cargo bench -p mydht-store --bench store
//! MYDHT_BENCH_DIR=/path/on/the/disk cargo bench -p mydht-store --bench store -- large
//! ```
//!
//! Data goes under `MYDHT_BENCH_DIR` (default: the system temp dir), so the
//! large-value figures and the `dd` baseline measure the same disk.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use divan::counter::{BytesCount, ItemsCount};
use divan::{Bencher, black_box};
use mydht_proto::{Timestamp, Version};
use mydht_ring::NodeId;
use mydht_store::{DiskOptions, DiskStore, Lookup, MemoryStore, Store, SyncPolicy};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::runtime::Runtime;

fn main() {
    divan::main();
}

const GIB: u64 = 1 << 30;

fn bench_dir() -> tempfile::TempDir {
    let base = std::env::var_os("MYDHT_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    tempfile::tempdir_in(base).expect("bench dir")
}

fn rt() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

static CLOCK: AtomicU64 = AtomicU64::new(1);

fn next_version() -> Version {
    Version {
        timestamp: Timestamp::from_parts(CLOCK.fetch_add(1, Ordering::Relaxed), 0),
        node: NodeId::new("bench:1").expect("valid"),
    }
}

fn key(i: u64) -> Vec<u8> {
    format!("key-{:08}", i % 10_000).into_bytes()
}

fn disk(sync: SyncPolicy) -> (tempfile::TempDir, DiskStore) {
    let dir = bench_dir();
    let store =
        DiskStore::open(dir.path().join("store"), DiskOptions::default().sync(sync)).expect("open");
    (dir, store)
}

/// 100-byte values, one writer: for `DiskStore` each put waits for its fsync.
mod small {
    use super::*;

    fn put<S: Store>(b: Bencher, store: &S) {
        let rt = rt();
        let value = Bytes::from(vec![7u8; 100]);
        let mut i = 0;
        b.counter(ItemsCount::new(1usize)).bench_local(|| {
            i += 1;
            rt.block_on(store.put(&key(i), next_version(), value.clone()))
                .expect("put")
        });
    }

    fn get<S: Store>(b: Bencher, store: &S) {
        let rt = rt();
        rt.block_on(async {
            for i in 0..10_000 {
                let _ = store
                    .put(&key(i), next_version(), Bytes::from(vec![7u8; 100]))
                    .await
                    .expect("put");
            }
        });
        let mut i = 0;
        b.counter(ItemsCount::new(1usize)).bench_local(|| {
            i += 1;
            match rt.block_on(store.get(&key(i))).expect("get") {
                Lookup::Value(v) => black_box(v.len()),
                other => panic!("expected a value, got {other:?}"),
            }
        });
    }

    #[divan::bench]
    fn put_memory(b: Bencher) {
        put(b, &MemoryStore::new());
    }

    #[divan::bench(sample_count = 30)]
    fn put_disk_sync_always(b: Bencher) {
        let (_dir, store) = disk(SyncPolicy::Always);
        put(b, &store);
    }

    #[divan::bench]
    fn put_disk_sync_none(b: Bencher) {
        let (_dir, store) = disk(SyncPolicy::None);
        put(b, &store);
    }

    #[divan::bench]
    fn get_memory(b: Bencher) {
        get(b, &MemoryStore::new());
    }

    #[divan::bench]
    fn get_disk(b: Bencher) {
        let (_dir, store) = disk(SyncPolicy::None);
        get(b, &store);
    }
}

/// Durable 100-byte puts from concurrent writers sharing fsyncs.
mod durable {
    use super::*;

    const PER_WRITER: u64 = 40;

    fn writers(b: Bencher, n: u64) {
        let rt = rt();
        let (_dir, store) = disk(SyncPolicy::Always);
        let store = Arc::new(store);
        let value = Bytes::from(vec![7u8; 100]);
        b.counter(ItemsCount::new(n * PER_WRITER)).bench_local(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..n)
                    .map(|w| {
                        let (store, value) = (store.clone(), value.clone());
                        tokio::spawn(async move {
                            for i in 0..PER_WRITER {
                                let _ = store
                                    .put(&key(w * PER_WRITER + i), next_version(), value.clone())
                                    .await
                                    .expect("put");
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("writer");
                }
            });
        });
    }

    #[divan::bench(sample_count = 10)]
    fn puts_1_writer(b: Bencher) {
        writers(b, 1);
    }

    #[divan::bench(sample_count = 10)]
    fn puts_64_writers(b: Bencher) {
        writers(b, 64);
    }
}

/// A pattern stream of `left` bytes.
struct Pattern {
    left: u64,
    block: Vec<u8>,
}

impl AsyncRead for Pattern {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let n = (buf.remaining() as u64)
            .min(me.left)
            .min(me.block.len() as u64) as usize;
        buf.put_slice(&me.block[..n]);
        me.left -= n as u64;
        Poll::Ready(Ok(()))
    }
}

fn pattern(len: u64) -> Pattern {
    Pattern {
        left: len,
        block: vec![0x5a; 1 << 16],
    }
}

/// One 1 GiB value, streamed, against `dd` on the same disk.
mod large {
    use super::*;

    #[divan::bench(sample_count = 3, sample_size = 1)]
    fn dd_1gib_conv_fsync(b: Bencher) {
        let dir = bench_dir();
        let out = dir.path().join("dd.out");
        b.counter(BytesCount::new(GIB)).bench_local(|| {
            let status = std::process::Command::new("dd")
                .arg("if=/dev/zero")
                .arg(format!("of={}", out.display()))
                .args(["bs=1M", "count=1024", "conv=fsync", "status=none"])
                .status()
                .expect("dd runs");
            assert!(status.success());
            std::fs::remove_file(&out).expect("remove dd output");
        });
    }

    #[divan::bench(sample_count = 3, sample_size = 1)]
    fn put_1gib_disk(b: Bencher) {
        let rt = rt();
        let (_dir, store) = disk(SyncPolicy::Always);
        b.counter(BytesCount::new(GIB)).bench_local(|| {
            // Each put replaces the last, whose file is then removed.
            rt.block_on(store.put_stream(b"big", next_version(), pattern(GIB)))
                .expect("put")
        });
    }

    #[divan::bench(sample_count = 5, sample_size = 1)]
    fn get_1gib_disk_warm(b: Bencher) {
        let rt = rt();
        let (_dir, store) = disk(SyncPolicy::Always);
        let _ = rt
            .block_on(store.put_stream(b"big", next_version(), pattern(GIB)))
            .expect("put");
        let mut buf = vec![0u8; 1 << 20];
        b.counter(BytesCount::new(GIB)).bench_local(|| {
            rt.block_on(async {
                let Lookup::Value(v) = store.get(b"big").await.expect("get") else {
                    panic!("value missing");
                };
                let mut r = v.into_reader();
                let mut total = 0u64;
                loop {
                    let n = r.read(&mut buf).await.expect("read");
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                }
                assert_eq!(total, GIB);
            });
        });
    }
}
