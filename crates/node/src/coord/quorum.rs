//! Counting a quorum: which targets a replicated call went to, what each
//! answered, and whether enough have (or can no longer) acknowledged.
//!
//! The coordinator sends to its targets at once and feeds each answer to a
//! [`QuorumTracker`]; it answers the client as soon as the tracker is
//! decided: `reached` (every required set has its quorum) or `impossible`
//! (so many members of some set failed or were skipped as down that its
//! quorum can no longer be reached, so there is no point waiting for the
//! rest). A write requires two sets while members join or leave (the old
//! replicas and the new ones, as Garage counts a quorum in every live
//! layout version), one otherwise; a read one. An answer counts toward
//! every set its member is in. Every target's outcome stays recorded,
//! which is what a later hint for a missed replica needs. The acknowledgements reported on failure are
//! those in when the coordinator answered; targets still running may yet
//! apply the write (it "may be partly applied").

use std::fmt::Display;

use mydht_ring::NodeId;

/// What one target did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TargetOutcome {
    /// Asked; no answer yet.
    Pending,
    /// Acknowledged.
    Acked,
    /// Failed, with why.
    Failed(String),
    /// Not asked: this node considers it down.
    Skipped,
}

/// One set of members that must acknowledge, and how many of them.
#[derive(Debug)]
struct Set {
    /// Bit `i` stands for the tracker's member `i`.
    members: u64,
    size: usize,
    quorum: usize,
    acked: usize,
    failed: usize,
}

/// The most members one call can involve: a key's old and new replica
/// sets together are at most twice the largest N.
const MAX_MEMBERS: usize = 64;

impl Set {
    fn reached(&self) -> bool {
        self.acked >= self.quorum
    }

    fn impossible(&self) -> bool {
        self.failed + self.quorum > self.size
    }
}

/// A quorum count over one call's targets.
#[derive(Debug)]
pub(crate) struct QuorumTracker {
    /// The targets asked, then the members of a set skipped as down; each
    /// with its outcome.
    nodes: Vec<NodeId>,
    outcomes: Vec<TargetOutcome>,
    /// The required sets: the first two inline (a write needs at most an
    /// old and a new one), so a call allocates nothing for them.
    sets: Sets,
}

#[derive(Debug, Default)]
struct Sets {
    first: Option<Set>,
    second: Option<Set>,
    more: Vec<Set>,
}

impl Sets {
    fn iter(&self) -> impl Iterator<Item = &Set> {
        self.first.iter().chain(&self.second).chain(&self.more)
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Set> {
        self.first
            .iter_mut()
            .chain(&mut self.second)
            .chain(&mut self.more)
    }

    fn push(&mut self, set: Set) {
        if self.first.is_none() {
            self.first = Some(set);
        } else if self.second.is_none() {
            self.second = Some(set);
        } else {
            self.more.push(set);
        }
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

impl QuorumTracker {
    /// A call with nobody to ask yet; [`require`](Self::require) adds the
    /// sets that must acknowledge, and their members are who it asks.
    pub fn new() -> Self {
        Self {
            nodes: Vec::new(),
            outcomes: Vec::new(),
            sets: Sets::default(),
        }
    }

    /// `quorum` of `members` must acknowledge (at most all of them). Each
    /// member is asked once, in the order first required, unless `is_down`
    /// says this node considers it down: then it is skipped and counts as
    /// failed. A set equal to one already required is not counted twice.
    pub fn require<'a>(
        mut self,
        members: impl IntoIterator<Item = &'a NodeId>,
        quorum: usize,
        is_down: impl Fn(&NodeId) -> bool,
    ) -> Self {
        let mut mask = 0u64;
        let mut failed = 0;
        for m in members {
            let i = match self.nodes.iter().position(|n| n == m) {
                Some(i) => i,
                None => {
                    self.nodes.push(m.clone());
                    self.outcomes.push(if is_down(m) {
                        TargetOutcome::Skipped
                    } else {
                        TargetOutcome::Pending
                    });
                    self.nodes.len() - 1
                }
            };
            if i >= MAX_MEMBERS {
                // More members than a ring can give one key: count the set
                // as one that cannot be reached rather than miscount it.
                failed = usize::MAX / 2;
                continue;
            }
            let bit = 1u64 << i;
            if mask & bit == 0 {
                mask |= bit;
                failed += usize::from(self.outcomes[i] == TargetOutcome::Skipped);
            }
        }
        if mask == 0 || self.sets.iter().any(|s| s.members == mask) {
            return self;
        }
        let size = mask.count_ones() as usize;
        self.sets.push(Set {
            members: mask,
            size,
            quorum: quorum.min(size),
            acked: 0,
            failed,
        });
        self
    }

    /// The members asked (the skipped ones follow them in [`Self::missed`]).
    pub fn targets(&self) -> impl Iterator<Item = &NodeId> {
        self.nodes
            .iter()
            .zip(&self.outcomes)
            .filter(|(_, o)| **o != TargetOutcome::Skipped)
            .map(|(n, _)| n)
    }

    /// Records `node`'s answer.
    pub fn record<T, E: Display>(&mut self, node: &NodeId, result: &Result<T, E>) {
        let Some(i) = self.nodes.iter().position(|n| n == node) else {
            return;
        };
        if self.outcomes[i] != TargetOutcome::Pending {
            return;
        }
        let ok = result.is_ok();
        self.outcomes[i] = match result {
            Ok(_) => TargetOutcome::Acked,
            Err(e) => TargetOutcome::Failed(e.to_string()),
        };
        let bit = if i < MAX_MEMBERS { 1u64 << i } else { 0 };
        for set in self.sets.iter_mut().filter(|s| s.members & bit != 0) {
            if ok {
                set.acked += 1;
            } else {
                set.failed += 1;
            }
        }
    }

    /// Every set has its quorum (and there is one: a call nobody must
    /// acknowledge is never done).
    pub fn reached(&self) -> bool {
        !self.sets.is_empty() && self.sets.iter().all(Set::reached)
    }

    /// Some set can no longer reach its quorum, or there is none.
    pub fn impossible(&self) -> bool {
        self.sets.is_empty() || self.sets.iter().any(Set::impossible)
    }

    /// Reached or impossible: waiting longer changes nothing.
    pub fn decided(&self) -> bool {
        self.reached() || self.impossible()
    }

    /// Acknowledgements so far and the quorum, of the set furthest from
    /// its quorum (what a failed write reports).
    pub fn shortfall(&self) -> (usize, usize) {
        self.sets
            .iter()
            .filter(|s| !s.reached())
            .min_by_key(|s| (s.acked, std::cmp::Reverse(s.quorum)))
            .or(self.sets.first.as_ref())
            .map_or((0, 0), |s| (s.acked, s.quorum))
    }

    /// Members skipped as down.
    pub fn skipped(&self) -> impl Iterator<Item = &NodeId> {
        self.nodes
            .iter()
            .zip(&self.outcomes)
            .filter(|(_, o)| **o == TargetOutcome::Skipped)
            .map(|(n, _)| n)
    }

    /// Members that were skipped or failed, the skipped first.
    pub fn missed(&self) -> Vec<NodeId> {
        let pick = |f: fn(&TargetOutcome) -> bool| {
            self.nodes
                .iter()
                .zip(&self.outcomes)
                .filter(move |(_, o)| f(o))
                .map(|(n, _)| n.clone())
        };
        pick(|o| *o == TargetOutcome::Skipped)
            .chain(pick(|o| matches!(o, TargetOutcome::Failed(_))))
            .collect()
    }

    /// Every member's outcome so far.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn outcomes(&self) -> impl Iterator<Item = (&NodeId, &TargetOutcome)> {
        self.nodes.iter().zip(&self.outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).expect("name")
    }

    fn ok() -> Result<(), String> {
        Ok(())
    }

    fn err() -> Result<(), String> {
        Err("refused".into())
    }

    fn up(_: &NodeId) -> bool {
        false
    }

    #[test]
    fn only_members_of_a_required_set_count() {
        let (a, b, c, l) = (id("a:1"), id("b:1"), id("c:1"), id("leaving:1"));
        // l is asked too (say, by another set) but counts for none here.
        let mut t = QuorumTracker::new()
            .require(&[a.clone(), b.clone(), c.clone()], 2, up)
            .require(std::slice::from_ref(&l), 0, up);
        t.record(&l, &ok());
        assert!(
            !t.reached(),
            "a member outside every required set does not count"
        );
        t.record(&a, &ok());
        assert!(!t.decided());
        t.record(&b, &ok());
        assert!(t.reached());
        assert_eq!(t.shortfall(), (2, 2));
        assert_eq!(
            t.outcomes().find(|(n, _)| **n == c).map(|(_, o)| o),
            Some(&TargetOutcome::Pending)
        );
    }

    #[test]
    fn quorum_is_impossible_once_too_many_counted_members_fail_or_are_down() {
        let (a, b, c) = (id("a:1"), id("b:1"), id("c:1"));
        // c is down: skipped, and one failure more makes W = 2 of 3 impossible.
        let down = |n: &NodeId| *n == c;
        let mut t = QuorumTracker::new().require(&[a.clone(), b.clone(), c.clone()], 2, down);
        assert_eq!(t.targets().count(), 2);
        assert!(!t.impossible());
        t.record(&b, &err());
        assert!(t.impossible() && t.decided() && !t.reached());
        assert_eq!(t.missed(), vec![c, b]);
        // An answer counts once, however often it is recorded.
        t.record(&a, &ok());
        t.record(&a, &ok());
        assert_eq!(t.shortfall(), (1, 2));
    }

    #[test]
    fn during_a_change_both_replica_sets_must_reach_their_quorum() {
        // Old owners x, y, z; z loses the range to the joiner d.
        let (x, y, z, d) = (id("x:1"), id("y:1"), id("z:1"), id("d:1"));
        let old = [x.clone(), y.clone(), z.clone()];
        let new = [x.clone(), y.clone(), d.clone()];
        // x and y are down: only z and d are asked.
        let down = |n: &NodeId| *n == x || *n == y;
        let mut t = QuorumTracker::new()
            .require(&old, 2, down)
            .require(&new, 2, down);
        t.record(&z, &ok());
        t.record(&d, &ok());
        assert!(!t.reached(), "z and d make two acks, but one per set");
        assert!(t.impossible());
        assert_eq!(t.shortfall(), (1, 2));
        // With everyone up, W of each set is enough.
        let mut t = QuorumTracker::new()
            .require(&old, 2, up)
            .require(&new, 2, up);
        t.record(&z, &ok());
        t.record(&d, &ok());
        t.record(&x, &ok());
        assert!(t.reached(), "x is in both sets");
        // The same set required twice counts once; a set smaller than the
        // quorum needs all its members.
        let t = QuorumTracker::new()
            .require(std::slice::from_ref(&x), 2, up)
            .require(std::slice::from_ref(&x), 2, up);
        assert_eq!(t.shortfall(), (0, 1));
        // Nobody to acknowledge is never a success.
        let t = QuorumTracker::new().require(&[], 1, up);
        assert!(!t.reached() && t.impossible());
    }
}
