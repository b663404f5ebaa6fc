//! Both engines against a `BTreeMap` model of last-writer-wins: random puts,
//! deletes and gets with random versions must agree, step by step, on
//! outcome, value, tombstone and counters.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::{Got, got, ver};
use mydht_proto::Version;
use mydht_store::{DiskOptions, DiskStore, MemoryStore, Outcome, Store, StoreStats};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Step {
    Put {
        key: u8,
        ms: u64,
        node: u8,
        len: usize,
    },
    Delete {
        key: u8,
        ms: u64,
        node: u8,
    },
    Get {
        key: u8,
    },
    /// Close and open the store again (the memory engine ignores it).
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    // Few keys, few timestamps and two nodes, so versions collide and tie.
    let key = 0u8..6;
    let ms = 0u64..12;
    let node = 0u8..2;
    prop_oneof![
        4 => (key.clone(), ms.clone(), node.clone(), prop_oneof![0usize..40, 1_000usize..3_000])
            .prop_map(|(key, ms, node, len)| Step::Put { key, ms, node, len }),
        2 => (key.clone(), ms, node).prop_map(|(key, ms, node)| Step::Delete { key, ms, node }),
        2 => key.prop_map(|key| Step::Get { key }),
        1 => Just(Step::Reopen),
    ]
}

fn version(ms: u64, node: u8) -> Version {
    ver(ms, &format!("n{node}:1"))
}

fn value(ms: u64, node: u8, len: usize) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u64 + ms * 7 + u64::from(node)) as u8)
            .collect::<Vec<_>>(),
    )
}

#[derive(Default)]
struct Model(BTreeMap<u8, (Version, Option<Bytes>)>);

impl Model {
    fn write(&mut self, key: u8, v: Version, val: Option<Bytes>) -> Outcome {
        match self.0.get(&key) {
            Some((cur, _)) if *cur >= v => Outcome::Superseded,
            _ => {
                self.0.insert(key, (v, val));
                Outcome::Applied
            }
        }
    }

    fn get(&self, key: u8) -> Got {
        match self.0.get(&key) {
            None => Got::Absent,
            Some((v, None)) => Got::Tombstone(v.clone()),
            Some((v, Some(b))) => Got::Value(v.clone(), b.clone()),
        }
    }

    fn stats(&self) -> StoreStats {
        let mut s = StoreStats::default();
        for (_, val) in self.0.values() {
            match val {
                Some(b) => {
                    s.live_keys += 1;
                    s.value_bytes += b.len() as u64;
                }
                None => s.tombstones += 1,
            }
        }
        s
    }
}

async fn run<S: Store>(
    mut store: S,
    steps: &[Step],
    reopen: impl Fn(S) -> S,
) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    for s in steps {
        match *s {
            Step::Reopen => store = reopen(store),
            Step::Put { key, ms, node, len } => {
                let (v, val) = (version(ms, node), value(ms, node, len));
                let want = model.write(key, v.clone(), Some(val.clone()));
                let have = store.put(&[key], v, val).await.expect("put");
                prop_assert_eq!(have, want, "{:?}", s);
            }
            Step::Delete { key, ms, node } => {
                let v = version(ms, node);
                let want = model.write(key, v.clone(), None);
                let have = store.delete(&[key], v).await.expect("delete");
                prop_assert_eq!(have, want, "{:?}", s);
            }
            Step::Get { key } => {
                prop_assert_eq!(got(&store, &[key]).await, model.get(key), "{:?}", s);
            }
        }
        prop_assert_eq!(store.stats(), model.stats());
    }
    for key in 0..6 {
        prop_assert_eq!(got(&store, &[key]).await, model.get(key));
    }
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn memory_store_matches_the_model(steps in prop::collection::vec(step(), 1..60)) {
        runtime().block_on(run(MemoryStore::new(), &steps, |s| s))?;
    }

    #[test]
    fn disk_store_matches_the_model(steps in prop::collection::vec(step(), 1..60)) {
        let dir = tempfile::tempdir().expect("tempdir");
        // A tiny threshold so that some values go to files.
        let opts = DiskOptions::default().large_value_threshold(512);
        let store = DiskStore::open(dir.path(), opts.clone()).expect("open");
        let reopen = |s: DiskStore| {
            drop(s);
            DiskStore::open(dir.path(), opts.clone()).expect("reopen")
        };
        runtime().block_on(run(store, &steps, reopen))?;
    }
}
