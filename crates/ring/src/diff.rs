//! Which key ranges change replicas between two placements.
//!
//! This is what data movement is planned from: on a join the new member
//! gains ranges, on a leave or remove the departing member's ranges go to
//! their next owners, and a change of N widens or narrows every list. The
//! answer is exact: the circle is cut at every token of both rings, and each
//! piece compares the replica sets the two placements give it.

use crate::ring::range_len;
use crate::{NodeId, Placement, Position, Ring};

/// A range of the circle, `(start, end]`, wrapping past the top. When
/// `start == end` it is the whole circle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenRange {
    start: Position,
    end: Position,
}

impl TokenRange {
    /// The range `(start, end]`.
    pub fn new(start: Position, end: Position) -> Self {
        Self { start, end }
    }

    /// The exclusive lower end.
    pub fn start(&self) -> Position {
        self.start
    }

    /// The inclusive upper end.
    pub fn end(&self) -> Position {
        self.end
    }

    /// Whether the range is the whole circle.
    pub fn is_full(&self) -> bool {
        self.start == self.end
    }

    /// Whether `pos` falls in the range.
    pub fn contains(&self, pos: Position) -> bool {
        let (s, e, p) = (self.start.0, self.end.0, pos.0);
        if s == e {
            true
        } else if s < e {
            s < p && p <= e
        } else {
            p > s || p <= e
        }
    }

    /// How many positions the range covers (up to 2^64).
    pub fn len(&self) -> u128 {
        range_len(self.start.0, self.end.0)
    }

    /// A range always holds at least one position.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// One range whose replicas differ between two placements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeChange {
    range: TokenRange,
    before: Vec<NodeId>,
    after: Vec<NodeId>,
}

impl RangeChange {
    /// The keys concerned.
    pub fn range(&self) -> TokenRange {
        self.range
    }

    /// Replicas before, in preference order.
    pub fn before(&self) -> &[NodeId] {
        &self.before
    }

    /// Replicas after, in preference order.
    pub fn after(&self) -> &[NodeId] {
        &self.after
    }

    /// Members that must receive the range.
    pub fn gained(&self) -> impl Iterator<Item = &NodeId> {
        self.after.iter().filter(|n| !self.before.contains(n))
    }

    /// Members that no longer hold the range.
    pub fn lost(&self) -> impl Iterator<Item = &NodeId> {
        self.before.iter().filter(|n| !self.after.contains(n))
    }
}

impl Ring {
    /// Ranges whose current replicas differ from `old` to `new`.
    pub fn changes(old: &Ring, new: &Ring) -> Vec<RangeChange> {
        diff(old, Placement::Current, new, Placement::Current)
    }

    /// Ranges that pending moves will hand over: current placement against
    /// target placement of this ring (empty when nobody joins or leaves).
    pub fn pending_changes(&self) -> Vec<RangeChange> {
        diff(self, Placement::Current, self, Placement::Target)
    }

    /// Every range of the circle with its current replicas, adjacent ranges
    /// with the same replicas merged: what a member walks to compare each
    /// range it replicates with the range's other replicas. Empty when no
    /// member holds data.
    pub fn ranges(&self) -> Vec<ReplicatedRange> {
        diff_from(None, self, Placement::Current)
            .into_iter()
            .map(|c| ReplicatedRange {
                range: c.range,
                replicas: c.after,
            })
            .collect()
    }
}

/// A range of the circle and the members that replicate it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicatedRange {
    range: TokenRange,
    replicas: Vec<NodeId>,
}

impl ReplicatedRange {
    /// The keys concerned.
    pub fn range(&self) -> TokenRange {
        self.range
    }

    /// Its replicas, in preference order.
    pub fn replicas(&self) -> &[NodeId] {
        &self.replicas
    }
}

fn diff(a: &Ring, pa: Placement, b: &Ring, pb: Placement) -> Vec<RangeChange> {
    diff_from(Some((a, pa)), b, pb)
}

/// Ranges whose replicas differ from `a`'s placement (none at all when `a`
/// is `None`) to `b`'s.
fn diff_from(a: Option<(&Ring, Placement)>, b: &Ring, pb: Placement) -> Vec<RangeChange> {
    let a_tokens = a.map_or(&[][..], |(a, _)| a.tokens());
    let mut bounds: Vec<u64> = a_tokens.iter().chain(b.tokens()).copied().collect();
    bounds.sort_unstable();
    bounds.dedup();
    let mut out: Vec<RangeChange> = Vec::new();
    for (k, &end) in bounds.iter().enumerate() {
        let start = if k == 0 {
            bounds[bounds.len() - 1]
        } else {
            bounds[k - 1]
        };
        // No token of either ring lies strictly inside (start, end], so
        // every key there lands on the same token as `end` itself does.
        let before = a.map_or_else(Vec::new, |(a, pa)| a.placement(pa, Position(end)).to_vec());
        let after = b.placement(pb, Position(end)).to_vec();
        if same_set(&before, &after) {
            continue;
        }
        if let Some(last) = out.last_mut()
            && last.range.end.0 == start
            && last.before == before
            && last.after == after
        {
            last.range.end = Position(end);
            continue;
        }
        out.push(RangeChange {
            range: TokenRange::new(Position(start), Position(end)),
            before,
            after,
        });
    }
    // The first and last pieces may be one range across the top of the circle.
    if out.len() > 1 {
        let (first, last) = (&out[0], &out[out.len() - 1]);
        if last.range.end == first.range.start
            && last.before == first.before
            && last.after == first.after
        {
            let start = last.range.start;
            out[0].range.start = start;
            out.pop();
        }
    }
    out
}

fn same_set(a: &[NodeId], b: &[NodeId]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_wrap_past_the_top() {
        let r = TokenRange::new(Position(u64::MAX - 1), Position(5));
        assert!(r.contains(Position(u64::MAX)));
        assert!(r.contains(Position(0)));
        assert!(r.contains(Position(5)));
        assert!(!r.contains(Position(6)));
        assert!(!r.contains(Position(u64::MAX - 1)));
        assert_eq!(r.len(), 7);
        let full = TokenRange::new(Position(9), Position(9));
        assert!(full.is_full() && full.contains(Position(123)));
        assert_eq!(full.len(), 1u128 << 64);
    }
}
