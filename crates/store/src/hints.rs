//! Hints: which member missed which version of which key, kept for the
//! coordinator that saw it miss the write, so the version can be brought
//! to it once it answers again.
//!
//! A hint holds no value, only `(target, key, version, when)`: the value is
//! read back at replay from whichever replica holds that version or a newer
//! one (the write reached W of them), so a hint costs the size of its key
//! whatever the value's size. Per target and key only the newest version is
//! kept. The store persists hints beside its entries; bounding them, and
//! replaying them, is the caller's business.

use mydht_proto::{Timestamp, Version};
use mydht_ring::NodeId;

use crate::StoreError;

/// One missed write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hint {
    /// The member that missed it.
    pub target: NodeId,
    /// The key.
    pub key: Vec<u8>,
    /// The version it missed.
    pub version: Version,
    /// When the hint was first kept, in milliseconds since the Unix epoch
    /// (for its age bound).
    pub at_ms: u64,
}

impl Hint {
    /// Roughly what the hint costs to keep, in bytes.
    pub fn size(&self) -> u64 {
        (self.key.len() + self.target.as_str().len() + self.version.node.as_str().len() + 32) as u64
    }
}

/// The engine key of a hint: `target length (2) ‖ target ‖ key`.
pub(crate) fn hint_key(target: &NodeId, key: &[u8]) -> Vec<u8> {
    let t = target.as_str().as_bytes();
    let len = u16::try_from(t.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(2 + t.len() + key.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&t[..usize::from(len)]);
    out.extend_from_slice(key);
    out
}

/// A hint's record: `timestamp (8) ‖ node length (2) ‖ node ‖ when (8)`.
pub(crate) fn encode_hint(version: &Version, at_ms: u64) -> Vec<u8> {
    let node = version.node.as_str().as_bytes();
    let len = u16::try_from(node.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(18 + node.len());
    out.extend_from_slice(&version.timestamp.raw().to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&node[..usize::from(len)]);
    out.extend_from_slice(&at_ms.to_be_bytes());
    out
}

/// The hint stored under `ekey` with record `value`.
pub(crate) fn decode_hint(ekey: &[u8], value: &[u8]) -> Result<Hint, StoreError> {
    let corrupt = || StoreError::Corrupt { what: "hint" };
    let node = |b: &[u8]| {
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| NodeId::new(s).ok())
            .ok_or_else(corrupt)
    };
    let (tlen, rest) = ekey.split_first_chunk::<2>().ok_or_else(corrupt)?;
    let tlen = usize::from(u16::from_be_bytes(*tlen));
    if rest.len() < tlen {
        return Err(corrupt());
    }
    let (target, key) = rest.split_at(tlen);
    let (ts, rest) = value.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let (nlen, rest) = rest.split_first_chunk::<2>().ok_or_else(corrupt)?;
    let nlen = usize::from(u16::from_be_bytes(*nlen));
    if rest.len() != nlen + 8 {
        return Err(corrupt());
    }
    let (vnode, at) = rest.split_at(nlen);
    let at: [u8; 8] = at.try_into().map_err(|_| corrupt())?;
    Ok(Hint {
        target: node(target)?,
        key: key.to_vec(),
        version: Version {
            timestamp: Timestamp::from_raw(u64::from_be_bytes(*ts)),
            node: node(vnode)?,
        },
        at_ms: u64::from_be_bytes(at),
    })
}

/// The version a hint record holds, without decoding the rest.
pub(crate) fn hint_version(ekey: &[u8], value: &[u8]) -> Result<Version, StoreError> {
    decode_hint(ekey, value).map(|h| h.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_round_trips_and_a_torn_record_is_corrupt() {
        let hint = Hint {
            target: NodeId::new("b:2").expect("name"),
            key: b"some key".to_vec(),
            version: Version {
                timestamp: Timestamp::from_parts(1_700_000_000_000, 3),
                node: NodeId::new("a:1").expect("name"),
            },
            at_ms: 42,
        };
        let (k, v) = (
            hint_key(&hint.target, &hint.key),
            encode_hint(&hint.version, hint.at_ms),
        );
        assert_eq!(decode_hint(&k, &v).expect("decodes"), hint);
        assert!(decode_hint(&k, &v[..v.len() - 1]).is_err());
        assert!(decode_hint(&k[..1], &v).is_err());
    }
}
