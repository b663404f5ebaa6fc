//! The members' clocks as gossip hears them: how far each is off this
//! node's, which are off the median, and how far this node's own clock is
//! ahead of or behind the others'.
//!
//! Offsets are liveness data (what a caller's wall clock said, off by at
//! most the one-way delay), never part of the ring or its version. This
//! module only computes with them; the coordinator decides what a skewed
//! clock may still do (refuse writes when far ahead, accept versions from
//! the members' present when far behind).

use std::sync::atomic::{AtomicI64, Ordering};

/// A member whose clock is further than this from the median of the
/// members' clocks is flagged (status page, `/v1/ring`, the log).
pub const CLOCK_BOUND_MS: i64 = 1_000;

/// This node's wall clock, in milliseconds since the Unix epoch.
pub fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether a member's clock `offset` (its clock minus this node's) lies
/// further than [`CLOCK_BOUND_MS`] from the median of every clock: the
/// `others`' offsets, this node's own (0) and its own.
pub(crate) fn off_the_median(offset: i64, others: &[i64]) -> bool {
    let mut all: Vec<i64> = others.iter().copied().chain([0, offset]).collect();
    all.sort_unstable();
    let median = all[all.len() / 2];
    offset.saturating_sub(median).abs() > CLOCK_BOUND_MS
}

/// This node's clock against the other members', kept current as offsets
/// are heard so that a write reads it without a lock.
#[derive(Debug)]
pub(crate) struct OwnClock {
    /// How far this clock is ahead of the others' (the upper median of
    /// their offsets, negated): an even split never counts as ahead.
    ahead_ms: AtomicI64,
    /// How far it is behind them (the lower median of their offsets).
    behind_ms: AtomicI64,
}

/// No member has called yet.
const UNKNOWN: i64 = i64::MIN;

impl Default for OwnClock {
    fn default() -> Self {
        Self {
            ahead_ms: AtomicI64::new(UNKNOWN),
            behind_ms: AtomicI64::new(UNKNOWN),
        }
    }
}

impl OwnClock {
    /// Recomputes from every other member's offset (its clock minus this
    /// node's).
    pub fn update(&self, mut offsets: Vec<i64>) {
        if offsets.is_empty() {
            self.ahead_ms.store(UNKNOWN, Ordering::Relaxed);
            self.behind_ms.store(UNKNOWN, Ordering::Relaxed);
            return;
        }
        offsets.sort_unstable();
        let upper = offsets[offsets.len() / 2];
        let lower = offsets[(offsets.len() - 1) / 2];
        self.ahead_ms
            .store(upper.saturating_neg().max(UNKNOWN + 1), Ordering::Relaxed);
        self.behind_ms
            .store(lower.max(UNKNOWN + 1), Ordering::Relaxed);
    }

    /// How far ahead of the others this clock is (negative: behind), if
    /// any member's offset is known.
    pub fn ahead_ms(&self) -> Option<i64> {
        known(self.ahead_ms.load(Ordering::Relaxed))
    }

    /// How far behind the others this clock is (negative: ahead), if any
    /// member's offset is known.
    pub fn behind_ms(&self) -> Option<i64> {
        known(self.behind_ms.load(Ordering::Relaxed))
    }
}

fn known(v: i64) -> Option<i64> {
    (v != UNKNOWN).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_clock_is_judged_by_the_others_medians() {
        let c = OwnClock::default();
        assert_eq!((c.ahead_ms(), c.behind_ms()), (None, None));
        // Both others 5 minutes behind this node: it is ahead.
        c.update(vec![-300_000, -300_000]);
        assert_eq!(c.ahead_ms(), Some(300_000));
        assert_eq!(c.behind_ms(), Some(-300_000));
        // One ahead, one behind: neither ahead nor behind counts.
        c.update(vec![300_000, -300_000]);
        assert_eq!(c.ahead_ms(), Some(-300_000));
        assert_eq!(c.behind_ms(), Some(-300_000));
        // A two-member ring: each side sees the other's skew, and only
        // the one whose clock is ahead is ahead.
        c.update(vec![-300_000]);
        assert_eq!(c.ahead_ms(), Some(300_000));
        c.update(vec![300_000]);
        assert_eq!(
            (c.ahead_ms(), c.behind_ms()),
            (Some(-300_000), Some(300_000))
        );
        c.update(vec![]);
        assert_eq!(c.ahead_ms(), None);
    }

    #[test]
    fn a_member_off_the_median_is_flagged() {
        assert!(off_the_median(300_000, &[0, 10]));
        assert!(!off_the_median(500, &[0, 10]));
    }
}
