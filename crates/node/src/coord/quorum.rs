//! Counting a quorum: which targets a replicated call went to, what each
//! answered, and whether enough have (or can no longer) acknowledged.
//!
//! The coordinator sends to its targets at once and feeds each answer to a
//! [`QuorumTracker`]; it answers the client as soon as the tracker is
//! decided: `reached` (W acknowledgements from the counted members) or
//! `impossible` (so many counted members failed or were skipped as down
//! that W can no longer be reached, so there is no point waiting for the
//! rest). Only counted members' answers count: a member about to lose the
//! range (leaving) receives the write but does not vouch for it. Every
//! target's outcome stays recorded, which is what a later hint for a
//! missed replica needs.

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

/// A quorum count over one call's targets.
#[derive(Debug)]
pub(crate) struct QuorumTracker {
    counted: Vec<NodeId>,
    quorum: usize,
    acked: usize,
    failed: usize,
    outcomes: Vec<(NodeId, TargetOutcome)>,
}

impl QuorumTracker {
    /// A call sent to `targets`, needing `quorum` acknowledgements from
    /// `counted`. Counted members that are not targets were skipped as down
    /// and count as failed.
    pub fn new(targets: &[NodeId], counted: Vec<NodeId>, quorum: usize) -> Self {
        let mut outcomes: Vec<(NodeId, TargetOutcome)> = counted
            .iter()
            .filter(|n| !targets.contains(n))
            .map(|n| (n.clone(), TargetOutcome::Skipped))
            .collect();
        let failed = outcomes.len();
        outcomes.extend(targets.iter().map(|n| (n.clone(), TargetOutcome::Pending)));
        Self {
            counted,
            quorum,
            acked: 0,
            failed,
            outcomes,
        }
    }

    fn set(&mut self, node: &NodeId, outcome: TargetOutcome) -> bool {
        match self
            .outcomes
            .iter_mut()
            .find(|(n, o)| n == node && *o == TargetOutcome::Pending)
        {
            Some((_, o)) => {
                *o = outcome;
                true
            }
            None => false,
        }
    }

    /// Records `node`'s answer.
    pub fn record<T, E: Display>(&mut self, node: &NodeId, result: &Result<T, E>) {
        let counted = self.counted.contains(node);
        match result {
            Ok(_) => {
                if self.set(node, TargetOutcome::Acked) && counted {
                    self.acked += 1;
                }
            }
            Err(e) => {
                if self.set(node, TargetOutcome::Failed(e.to_string())) && counted {
                    self.failed += 1;
                }
            }
        }
    }

    /// Enough counted members acknowledged.
    pub fn reached(&self) -> bool {
        self.acked >= self.quorum
    }

    /// So many counted members failed that the quorum cannot be reached.
    pub fn impossible(&self) -> bool {
        self.failed + self.quorum > self.counted.len()
    }

    /// Reached or impossible: waiting longer changes nothing.
    pub fn decided(&self) -> bool {
        self.reached() || self.impossible()
    }

    /// Acknowledgements from counted members so far.
    pub fn acked(&self) -> usize {
        self.acked
    }

    /// The quorum needed.
    pub fn quorum(&self) -> usize {
        self.quorum
    }

    /// Members that failed or were skipped, in the order that was learned.
    pub fn missed(&self) -> Vec<NodeId> {
        self.outcomes
            .iter()
            .filter(|(_, o)| matches!(o, TargetOutcome::Failed(_) | TargetOutcome::Skipped))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Every target's outcome so far.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn outcomes(&self) -> &[(NodeId, TargetOutcome)] {
        &self.outcomes
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

    #[test]
    fn a_quorum_is_reached_by_counted_members_only() {
        let (a, b, c, l) = (id("a:1"), id("b:1"), id("c:1"), id("leaving:1"));
        let mut t = QuorumTracker::new(
            &[a.clone(), b.clone(), c.clone(), l.clone()],
            vec![a.clone(), b.clone(), c.clone()],
            2,
        );
        t.record(&l, &ok());
        assert!(!t.reached(), "a leaving member's ack does not count");
        t.record(&a, &ok());
        assert!(!t.decided());
        t.record(&b, &ok());
        assert!(t.reached());
        assert_eq!(t.acked(), 2);
        assert_eq!(
            t.outcomes().iter().find(|(n, _)| n == &c).map(|(_, o)| o),
            Some(&TargetOutcome::Pending)
        );
    }

    #[test]
    fn quorum_is_impossible_once_too_many_counted_members_fail_or_are_down() {
        let (a, b, c) = (id("a:1"), id("b:1"), id("c:1"));
        // c is down: skipped, and one failure more makes W = 2 of 3 impossible.
        let mut t = QuorumTracker::new(
            &[a.clone(), b.clone()],
            vec![a.clone(), b.clone(), c.clone()],
            2,
        );
        assert!(!t.impossible());
        t.record(&b, &err());
        assert!(t.impossible() && t.decided() && !t.reached());
        assert_eq!(t.missed(), vec![c, b]);
        // An answer counts once, however often it is recorded.
        t.record(&a, &ok());
        t.record(&a, &ok());
        assert_eq!(t.acked(), 1);
    }
}
