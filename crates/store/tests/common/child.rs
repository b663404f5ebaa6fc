//! A writer process for crash tests, and the checks run after it died.
//!
//! The test binary re-runs itself with `MYDHT_STORE_CHILD` set; the child
//! writes and deletes in a loop from a few tasks and prints `ACK <op>` for
//! every acknowledged operation (and `BIG <op>` when a large value starts
//! streaming), so the parent knows exactly what must have survived. Every
//! operation is a pure function of its number: key, kind, version and value.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mydht_proto::{Timestamp, Version};
use mydht_ring::NodeId;
use mydht_store::{DiskOptions, DiskStore, Lookup, Stamp, Store, SyncPolicy};

pub const ENV_DIR: &str = "MYDHT_STORE_CHILD";
pub const ENV_START: &str = "MYDHT_STORE_CHILD_START";
pub const ENV_SYNC: &str = "MYDHT_STORE_CHILD_SYNC";
pub const ENV_BIG: &str = "MYDHT_STORE_CHILD_BIG";
pub const KEYS: u64 = 24;
pub const THRESHOLD: usize = 64 << 10;
const WRITERS: u64 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    Put(usize),
    Delete,
}

pub fn key(op: u64) -> Vec<u8> {
    format!("key-{}", op % KEYS).into_bytes()
}

pub fn kind(op: u64, big: bool) -> OpKind {
    if op % 7 == 3 {
        OpKind::Delete
    } else if big && op % 5 == 1 {
        OpKind::Put(THRESHOLD + (op as usize * 7919) % (2 << 20))
    } else {
        OpKind::Put((op % 100) as usize)
    }
}

pub fn version(op: u64) -> Version {
    Version {
        timestamp: Timestamp::from_parts(op + 1, 0),
        node: NodeId::new("crash:1").expect("valid"),
    }
}

pub fn op_of(v: &Version) -> u64 {
    v.timestamp.millis() - 1
}

pub fn value(op: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (op as usize * 31 + i) as u8).collect()
}

pub fn options(sync: SyncPolicy) -> DiskOptions {
    DiskOptions::default()
        .sync(sync)
        .large_value_threshold(THRESHOLD)
        .max_memtable_bytes(2 << 20)
}

/// The child's body: write until killed.
pub fn child_main() {
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return;
    };
    let start: u64 = std::env::var(ENV_START)
        .expect("start")
        .parse()
        .expect("number");
    let sync: SyncPolicy = std::env::var(ENV_SYNC)
        .expect("sync")
        .parse()
        .expect("policy");
    let big = std::env::var(ENV_BIG).is_ok_and(|v| v == "1");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let store = Arc::new(DiskStore::open(&dir, options(sync)).expect("child opens the store"));
        let next = Arc::new(AtomicU64::new(start));
        let mut tasks = Vec::new();
        for _ in 0..WRITERS {
            let (store, next) = (store.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let op = next.fetch_add(1, Ordering::Relaxed);
                    let k = key(op);
                    let res = match kind(op, big) {
                        OpKind::Delete => store.delete(&k, version(op)).await,
                        OpKind::Put(len) if len > THRESHOLD => {
                            println!("BIG {op}");
                            let v = value(op, len);
                            store.put_stream(&k, version(op), &v[..]).await
                        }
                        OpKind::Put(len) => {
                            store
                                .put(&k, version(op), Bytes::from(value(op, len)))
                                .await
                        }
                    };
                    match res {
                        Ok(_) => println!("ACK {op} {}", now_nanos()),
                        Err(e) => {
                            println!("ERR {op} {e}");
                            return;
                        }
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

/// Wall-clock nanoseconds, comparable between the child and the parent.
pub fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Kills the child when dropped, so a failing test leaves no process.
pub struct ChildGuard {
    child: Child,
    pub acks: Arc<Mutex<Vec<u64>>>,
    pub bigs: Arc<Mutex<Vec<u64>>>,
    /// When each acknowledgement was printed (ns since the epoch).
    pub ack_times: Arc<Mutex<Vec<u128>>>,
}

impl ChildGuard {
    pub fn spawn(test_name: &str, dir: &Path, start: u64, sync: &str, big: bool) -> Self {
        let exe = std::env::current_exe().expect("test binary");
        let mut child = Command::new(exe)
            .args([
                "--exact",
                test_name,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV_DIR, dir)
            .env(ENV_START, start.to_string())
            .env(ENV_SYNC, sync)
            .env(ENV_BIG, if big { "1" } else { "0" })
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let out = child.stdout.take().expect("stdout");
        let acks = Arc::new(Mutex::new(Vec::new()));
        let bigs = Arc::new(Mutex::new(Vec::new()));
        let ack_times = Arc::new(Mutex::new(Vec::new()));
        let (a, b, t) = (acks.clone(), bigs.clone(), ack_times.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ACK ") {
                    let mut parts = rest.split(' ');
                    let op = parts
                        .next()
                        .and_then(|n| n.parse().ok())
                        .expect("op number");
                    let at = parts.next().and_then(|n| n.parse().ok()).expect("ack time");
                    a.lock().expect("lock").push(op);
                    t.lock().expect("lock").push(at);
                } else if let Some(n) = line.strip_prefix("BIG ") {
                    b.lock().expect("lock").push(n.parse().expect("op number"));
                }
            }
        });
        Self {
            child,
            acks,
            bigs,
            ack_times,
        }
    }

    pub fn ack_count(&self) -> usize {
        self.acks.lock().expect("lock").len()
    }

    /// Waits until `cond` holds or the deadline passes.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, cond: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond(self) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("child exited ({status}) while waiting for {what}");
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGKILL, then reap; returns the acknowledged operations.
    pub fn kill(mut self) -> Vec<u64> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The reader thread sees EOF once the pipe closes; take what it read.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&self.acks) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.acks.lock().expect("lock").clone()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small xorshift generator: reproducible random kill moments.
pub struct Rng(u64);

impl Rng {
    pub fn seeded() -> Self {
        let seed = std::env::var("MYDHT_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("random seed {seed} (set MYDHT_TEST_SEED to repeat)");
        Self(seed | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// The newest acknowledged operation per key.
pub fn newest_acked(acks: &[u64]) -> BTreeMap<Vec<u8>, u64> {
    let mut m = BTreeMap::new();
    for &op in acks {
        let e = m.entry(key(op)).or_insert(op);
        *e = (*e).max(op);
    }
    m
}

/// What a reopened store holds, checked against the acknowledgements.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Keys whose newest acknowledged operation is missing (an older state
    /// or nothing is stored).
    pub lost: Vec<(Vec<u8>, u64)>,
    /// Keys checked.
    pub keys: usize,
    /// The operation each key holds (`None` if nothing).
    pub stored: BTreeMap<Vec<u8>, Option<u64>>,
}

impl Verdict {
    /// Acknowledged operations whose effect is gone: newer than what their
    /// key holds.
    pub fn lost_ops(&self, acks: &[u64]) -> usize {
        acks.iter()
            .filter(|&&op| {
                self.stored
                    .get(&key(op))
                    .copied()
                    .flatten()
                    .is_none_or(|s| s < op)
            })
            .count()
    }
}

/// Checks every key: the stored operation is the newest acknowledged one or
/// a later (in-flight) one, and its content is exactly that operation's, so
/// no partial value is visible. Returns the keys that lost acknowledged
/// writes; content mismatches panic.
pub async fn verify(store: &DiskStore, newest: &BTreeMap<Vec<u8>, u64>, big: bool) -> Verdict {
    let mut verdict = Verdict::default();
    for k in 0..KEYS {
        let key = key(k);
        let floor = newest.get(&key).copied();
        let lookup = store.get(&key).await.expect("get after restart");
        let stored_op = match lookup {
            Lookup::Absent => None,
            Lookup::Tombstone(v) => {
                let op = op_of(&v);
                assert_eq!(
                    kind(op, big),
                    OpKind::Delete,
                    "tombstone for op {op} which was a put"
                );
                Some(op)
            }
            Lookup::Value(s) => {
                let op = op_of(s.version());
                let OpKind::Put(len) = kind(op, big) else {
                    panic!("value for op {op} which was a delete");
                };
                assert_eq!(s.len(), len as u64, "length of op {op}");
                let bytes = s.into_bytes(u64::MAX).await.expect("read value");
                assert!(
                    bytes[..] == value(op, len)[..],
                    "content of op {op} differs: partial or torn value"
                );
                Some(op)
            }
        };
        if let Some(op) = stored_op {
            assert_eq!(key_of(op), key, "op {op} stored under the wrong key");
        }
        verdict.keys += 1;
        verdict.stored.insert(key.clone(), stored_op);
        if let Some(floor) = floor
            && stored_op.is_none_or(|op| op < floor)
        {
            verdict.lost.push((key, floor));
        }
    }
    verdict
}

fn key_of(op: u64) -> Vec<u8> {
    key(op)
}

/// Value files on disk against live entries that need one: no leaks.
pub async fn assert_no_leaked_files(store: &DiskStore) {
    let files = std::fs::read_dir(store.dir().join("values"))
        .expect("values dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".val"))
        })
        .count();
    let mut large = 0;
    let mut after = None;
    loop {
        let page = store.list_keys(after.as_ref(), 100).await.expect("list");
        large += page
            .entries
            .iter()
            .filter(|e| matches!(e.stamp, Stamp::Value(_)) && e.size > THRESHOLD as u64)
            .count();
        match page.next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    assert_eq!(files, large, "value files on disk vs large values stored");
}
