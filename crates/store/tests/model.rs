//! Both engines against a `BTreeMap` model of last-writer-wins: random puts,
//! deletes, drops, purges and gets with random versions must agree, step by
//! step, on outcome, value, tombstone, counters and the digests the store
//! keeps (every leaf, whole and clipped to a random cover).

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::{Got, got, ver};
use mydht_proto::Version;
use mydht_ring::{Position, TokenRange};
use mydht_store::{
    Cover, DiskOptions, DiskStore, LEAVES, MemoryStore, Outcome, Purge, PurgeRequest, RangeDigest,
    Stamp, Store, StoreStats, ValueHash, entry_hash, leaf_digests, leaf_of, value_hash,
};
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
    /// Drop whatever the key holds (a former owner's purge).
    Drop {
        key: u8,
    },
    /// Collect the key's tombstone, if it holds one.
    Purge {
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
        2 => key.clone().prop_map(|key| Step::Get { key }),
        1 => key.clone().prop_map(|key| Step::Drop { key }),
        1 => key.prop_map(|key| Step::Purge { key }),
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

    /// Every leaf's digest, as the store should keep it, with only the keys
    /// `cover` covers.
    fn leaves(&self, cover: &Cover) -> Vec<RangeDigest> {
        let mut out = vec![RangeDigest::default(); LEAVES];
        for (key, (v, val)) in &self.0 {
            let position = Position::of_key(&[*key]);
            if !cover.contains(position) {
                continue;
            }
            let (stamp, hash) = match val {
                Some(b) => (Stamp::Value(v.clone()), value_hash(b)),
                None => (Stamp::Tombstone(v.clone()), ValueHash::default()),
            };
            let d = &mut out[leaf_of(position)];
            d.count += 1;
            d.tombstones += u64::from(stamp.is_tombstone());
            d.hash ^= entry_hash(&[*key], &stamp, &hash);
        }
        out
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
    cover: (u8, u8, i64),
    reopen: impl Fn(S) -> S,
) -> Result<(), TestCaseError> {
    let whole = Cover::of([TokenRange::new(Position(0), Position(0))]);
    // From near one key to another: the cover cuts through leaves that
    // hold keys, so the clipped digests are scanned, not kept.
    let from = Position::of_key(&[cover.0]).0.wrapping_add_signed(cover.2);
    let to = Position::of_key(&[cover.1]);
    let range = TokenRange::new(Position(from), to);
    let part = Cover::of([range]);
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
            Step::Drop { key } => {
                if let Some(stamp) = store.version_of(&[key]).await.expect("version") {
                    let out = store.drop_entry(&[key], &stamp).await.expect("drop");
                    prop_assert_eq!(out, Purge::Removed);
                    model.0.remove(&key);
                }
            }
            Step::Purge { key } => {
                if let Some(Stamp::Tombstone(version)) =
                    store.version_of(&[key]).await.expect("version")
                {
                    let req = PurgeRequest {
                        version,
                        held_by_all_replicas: true,
                        now: mydht_proto::Timestamp::from_parts(1 << 40, 0),
                        grace: std::time::Duration::ZERO,
                    };
                    let out = store.purge_tombstone(&[key], req).await.expect("purge");
                    prop_assert_eq!(out, Purge::Removed);
                    model.0.remove(&key);
                }
            }
        }
        prop_assert_eq!(store.stats(), model.stats());
        let kept = leaf_digests(&store, &whole, 0..LEAVES)
            .await
            .expect("digests");
        prop_assert!(kept == model.leaves(&whole), "leaves differ after {:?}", s);
    }
    let clipped = leaf_digests(&store, &part, 0..LEAVES)
        .await
        .expect("digests");
    prop_assert!(clipped == model.leaves(&part), "clipped leaves differ");
    // A range's digest counts each entry once, also when it wraps round
    // from and to the same leaf.
    let mut want = RangeDigest::default();
    model.leaves(&part).iter().for_each(|l| want.merge(l));
    prop_assert_eq!(store.digest(range).await.expect("digest"), want);
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
    fn memory_store_matches_the_model(
        steps in prop::collection::vec(step(), 1..60),
        cover in (0u8..6, 0u8..6, -2i64..=2),
    ) {
        runtime().block_on(run(MemoryStore::new(), &steps, cover, |s| s))?;
    }

    #[test]
    fn disk_store_matches_the_model(
        steps in prop::collection::vec(step(), 1..60),
        cover in (0u8..6, 0u8..6, -2i64..=2),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        // A tiny threshold so that some values go to files.
        let opts = DiskOptions::default().large_value_threshold(512);
        let store = DiskStore::open(dir.path(), opts.clone()).expect("open");
        let reopen = |s: DiskStore| {
            drop(s);
            DiskStore::open(dir.path(), opts.clone()).expect("reopen")
        };
        runtime().block_on(run(store, &steps, cover, reopen))?;
    }
}
