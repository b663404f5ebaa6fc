//! Helpers shared by the store's integration tests.

#![allow(dead_code)]

pub mod child;
pub mod mount;

use bytes::Bytes;
use mydht_proto::{Timestamp, Version};
use mydht_ring::NodeId;
use mydht_store::{Lookup, Store};

/// A version at `ms` milliseconds, stamped by `node`.
pub fn ver(ms: u64, node: &str) -> Version {
    Version {
        timestamp: Timestamp::from_parts(ms, 0),
        node: NodeId::new(node).expect("valid node id"),
    }
}

/// What `get` found, with the value read whole.
#[derive(Debug, PartialEq, Eq)]
pub enum Got {
    Absent,
    Tombstone(Version),
    Value(Version, Bytes),
}

pub async fn got<S: Store>(store: &S, key: &[u8]) -> Got {
    match store.get(key).await.expect("get") {
        Lookup::Absent => Got::Absent,
        Lookup::Tombstone(v) => Got::Tombstone(v),
        Lookup::Value(s) => {
            let v = s.version().clone();
            let len = s.len();
            let bytes = s.into_bytes(u64::MAX).await.expect("read value");
            assert_eq!(
                bytes.len() as u64,
                len,
                "length in metadata matches the value"
            );
            Got::Value(v, bytes)
        }
    }
}
