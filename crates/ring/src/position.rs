//! Positions on the 64-bit circle, for keys and for member tokens.
//!
//! Both come from MD5, as in the seed: a key's position is the first 8 bytes
//! (big-endian) of MD5 of its raw bytes; a member's token for virtual node `i`
//! is the same of its name, a zero byte and `i` as 4 big-endian bytes. The
//! zero byte keeps `("a:1", 23)` and `("a:12", 3)` apart, since node names
//! never contain one. MD5 is used for spread, not for security.

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::NodeId;

/// A point on the ring's 64-bit circle.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position(pub u64);

impl Position {
    /// The position of a key: MD5 of its raw bytes.
    pub fn of_key(key: &[u8]) -> Self {
        Self(first_u64(&Md5::digest(key)))
    }
}

impl fmt::Debug for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Position({:#018x})", self.0)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The token of a member's virtual node `vnode`.
pub fn token_position(node: &NodeId, vnode: u32) -> Position {
    let mut h = Md5::new();
    h.update(node.as_str().as_bytes());
    h.update([0u8]);
    h.update(vnode.to_be_bytes());
    Position(first_u64(&h.finalize()))
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_position_is_md5_prefix() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(Position::of_key(b"").0, 0xd41d_8cd9_8f00_b204);
        // MD5("mykey") = 9adbe0b3033881f88ebd825bcf763b43
        assert_eq!(Position::of_key(b"mykey").0, 0x9adb_e0b3_0338_81f8);
    }

    #[test]
    fn tokens_of_concatenation_lookalikes_differ() {
        let a = NodeId::new("a:1").expect("valid");
        let b = NodeId::new("a:12").expect("valid");
        assert_ne!(token_position(&a, 23), token_position(&b, 3));
        assert_ne!(token_position(&a, 0), token_position(&a, 1));
    }
}
