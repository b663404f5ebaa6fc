//! Versions: what orders two writes of the same key.
//!
//! A [`Version`] is a hybrid-logical-clock [`Timestamp`] and the name of the
//! node that stamped it, compared in that order, so no two different writes
//! tie. The clock that issues timestamps lives with the store and the node;
//! this module only defines the values that travel and are stored. A
//! [`WriteId`] names one client write so that a retry is recognised.

use mydht_ring::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A hybrid-logical-clock reading: the top 48 bits are milliseconds since the
/// Unix epoch, the low 16 bits a counter that orders events within one
/// millisecond.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The zero timestamp, older than every real one.
    pub const ZERO: Self = Self(0);
    /// Bits given to the logical counter.
    pub const COUNTER_BITS: u32 = 16;
    /// The largest millisecond value a timestamp can carry.
    pub const MAX_MILLIS: u64 = (1 << (64 - Self::COUNTER_BITS)) - 1;

    /// From milliseconds since the epoch (cut to 48 bits) and a counter.
    pub fn from_parts(millis: u64, counter: u16) -> Self {
        Self(((millis & Self::MAX_MILLIS) << Self::COUNTER_BITS) | u64::from(counter))
    }

    /// From the packed 64-bit form.
    pub fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// The packed 64-bit form.
    pub fn raw(self) -> u64 {
        self.0
    }

    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> u64 {
        self.0 >> Self::COUNTER_BITS
    }

    /// The logical counter within the millisecond.
    pub fn counter(self) -> u16 {
        // The mask makes the narrowing exact.
        (self.0 & 0xffff) as u16
    }

    /// Seconds since the epoch, as the seed's `haskey` printed them.
    pub fn as_secs_f64(self) -> f64 {
        self.millis() as f64 / 1000.0
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({}ms+{})", self.millis(), self.counter())
    }
}

/// The version of one write: compared by timestamp, then by node name.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct Version {
    /// When the coordinator stamped the write.
    pub timestamp: Timestamp,
    /// The coordinator that stamped it.
    pub node: NodeId,
}

/// Names one client write, so that a coordinator seeing it again (a retry
/// after a timeout) answers with the first outcome instead of stamping a
/// second version. `client` is chosen at random by each client instance;
/// `seq` counts its writes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct WriteId {
    /// A random identifier of the client instance.
    pub client: u64,
    /// The write's number within that client.
    pub seq: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_packs_millis_and_counter() {
        let t = Timestamp::from_parts(1_300_386_351_670, 7);
        assert_eq!(t.millis(), 1_300_386_351_670);
        assert_eq!(t.counter(), 7);
        assert!((t.as_secs_f64() - 1_300_386_351.67).abs() < 1e-6);
        assert!(Timestamp::from_parts(5, 0) > Timestamp::from_parts(4, u16::MAX));
        assert!(Timestamp::from_parts(5, 1) > Timestamp::from_parts(5, 0));
    }

    #[test]
    fn versions_order_by_time_then_node() {
        let node = |n: &str| NodeId::new(n).expect("valid");
        let v = |ms, n: &str| Version {
            timestamp: Timestamp::from_parts(ms, 0),
            node: node(n),
        };
        assert!(v(2, "a:1") > v(1, "z:1"));
        assert!(v(1, "b:1") > v(1, "a:1"));
        assert_ne!(v(1, "b:1"), v(1, "a:1"));
    }
}
