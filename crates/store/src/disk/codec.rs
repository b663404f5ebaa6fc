//! The byte layout of the disk engine's metadata records.
//!
//! A metadata record is `kind (1) ‖ timestamp (8) ‖ node length (2) ‖ node ‖
//! length (8) [‖ file number (8)] [‖ value hash (16)]`, all big-endian. It
//! is small and fixed so that `version_of`, listings and digests read it
//! without the value. Values are written with their hash (kinds 3 and 4);
//! records of kinds 0 and 2, from before values were hashed, still read,
//! with a hash of zeros. Counters are three big-endian u64s.

use mydht_proto::{Timestamp, Version};
use mydht_ring::NodeId;

use crate::{Stamp, StoreError, StoreStats, ValueHash};

/// Where a live value's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// In the engine's data keyspace.
    Inline,
    /// In the value file with this number.
    File(u64),
}

/// One key's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub stamp: Stamp,
    pub len: u64,
    /// `None` for a tombstone.
    pub place: Option<Place>,
    /// The value's hash (zeros for a tombstone).
    pub hash: ValueHash,
}

const INLINE: u8 = 0;
const TOMBSTONE: u8 = 1;
const FILE: u8 = 2;
const INLINE_HASHED: u8 = 3;
const FILE_HASHED: u8 = 4;

impl Meta {
    pub fn encode(&self) -> Vec<u8> {
        let v = self.stamp.version();
        let node = v.node.as_str().as_bytes();
        let mut out = Vec::with_capacity(43 + node.len());
        out.push(match self.place {
            None => TOMBSTONE,
            Some(Place::Inline) => INLINE_HASHED,
            Some(Place::File(_)) => FILE_HASHED,
        });
        out.extend_from_slice(&v.timestamp.raw().to_be_bytes());
        // Node ids are short host:port names; the wire protocol bounds them.
        let node_len = u16::try_from(node.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&node_len.to_be_bytes());
        out.extend_from_slice(&node[..usize::from(node_len)]);
        out.extend_from_slice(&self.len.to_be_bytes());
        if let Some(Place::File(id)) = self.place {
            out.extend_from_slice(&id.to_be_bytes());
        }
        if self.place.is_some() {
            out.extend_from_slice(&self.hash);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = || StoreError::Corrupt {
            what: "metadata record",
        };
        let mut r = Reader(bytes);
        let kind = r.take::<1>().ok_or_else(corrupt)?[0];
        let ts = Timestamp::from_raw(r.u64().ok_or_else(corrupt)?);
        let node_len = r.take::<2>().map(u16::from_be_bytes).ok_or_else(corrupt)?;
        let node = r.slice(usize::from(node_len)).ok_or_else(corrupt)?;
        let node = std::str::from_utf8(node)
            .ok()
            .and_then(|s| NodeId::new(s).ok())
            .ok_or(StoreError::Corrupt { what: "node id" })?;
        let len = r.u64().ok_or_else(corrupt)?;
        let version = Version {
            timestamp: ts,
            node,
        };
        let (stamp, place) = match kind {
            INLINE | INLINE_HASHED => (Stamp::Value(version), Some(Place::Inline)),
            TOMBSTONE => (Stamp::Tombstone(version), None),
            FILE | FILE_HASHED => {
                let id = r.u64().ok_or_else(corrupt)?;
                (Stamp::Value(version), Some(Place::File(id)))
            }
            _ => return Err(corrupt()),
        };
        let hash = if matches!(kind, INLINE_HASHED | FILE_HASHED) {
            r.take::<16>().ok_or_else(corrupt)?
        } else {
            ValueHash::default()
        };
        Ok(Self {
            stamp,
            len,
            place,
            hash,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn slice(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.slice(N).and_then(|s| s.try_into().ok())
    }

    fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_be_bytes)
    }
}

pub(crate) fn encode_stats(s: &StoreStats) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..8].copy_from_slice(&s.live_keys.to_be_bytes());
    out[8..16].copy_from_slice(&s.tombstones.to_be_bytes());
    out[16..].copy_from_slice(&s.value_bytes.to_be_bytes());
    out
}

pub(crate) fn decode_stats(bytes: &[u8]) -> Result<StoreStats, StoreError> {
    let mut r = Reader(bytes);
    let mut next = || r.u64().ok_or(StoreError::Corrupt { what: "counters" });
    Ok(StoreStats {
        live_keys: next()?,
        tombstones: next()?,
        value_bytes: next()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_garbage_is_refused() {
        let v = Version {
            timestamp: Timestamp::from_parts(1_700_000_000_000, 3),
            node: NodeId::new("10.0.0.1:4000").expect("valid"),
        };
        for meta in [
            Meta {
                stamp: Stamp::Value(v.clone()),
                len: 5,
                place: Some(Place::Inline),
                hash: [7; 16],
            },
            Meta {
                stamp: Stamp::Value(v.clone()),
                len: 1 << 33,
                place: Some(Place::File(42)),
                hash: [9; 16],
            },
            Meta {
                stamp: Stamp::Tombstone(v.clone()),
                len: 0,
                place: None,
                hash: ValueHash::default(),
            },
        ] {
            let bytes = meta.encode();
            assert_eq!(Meta::decode(&bytes).expect("decodes"), meta);
            for cut in 0..bytes.len() {
                assert!(
                    Meta::decode(&bytes[..cut]).is_err(),
                    "prefix of {cut} bytes decoded"
                );
            }
        }
        // A record from before values were hashed reads with zeros.
        let mut old = vec![INLINE];
        old.extend_from_slice(&v.timestamp.raw().to_be_bytes());
        old.extend_from_slice(&13u16.to_be_bytes());
        old.extend_from_slice(b"10.0.0.1:4000");
        old.extend_from_slice(&5u64.to_be_bytes());
        let m = Meta::decode(&old).expect("an unhashed record decodes");
        assert_eq!((m.len, m.hash), (5, ValueHash::default()));
        let s = StoreStats {
            live_keys: 1,
            tombstones: 2,
            value_bytes: 3,
        };
        assert_eq!(decode_stats(&encode_stats(&s)).expect("decodes"), s);
    }
}
