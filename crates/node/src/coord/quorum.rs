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
//! missed replica needs. The acknowledgements reported on failure are
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

/// A quorum count over one call's targets.
#[derive(Debug)]
pub(crate) struct QuorumTracker {
    /// The targets asked, then the counted members skipped as down; each
    /// with its outcome and whether it counts.
    nodes: Vec<NodeId>,
    outcomes: Vec<(TargetOutcome, bool)>,
    counted: usize,
    quorum: usize,
    acked: usize,
    failed: usize,
}

impl QuorumTracker {
    /// A call sent to `targets`, needing `quorum` acknowledgements from
    /// `counted`. Counted members that are not targets were skipped as down
    /// and count as failed.
    pub fn new<'a>(
        targets: Vec<NodeId>,
        counted: impl IntoIterator<Item = &'a NodeId>,
        quorum: usize,
    ) -> Self {
        let mut outcomes = vec![(TargetOutcome::Pending, false); targets.len()];
        let mut nodes = targets;
        let (mut n_counted, mut failed) = (0, 0);
        for c in counted {
            n_counted += 1;
            match nodes.iter().position(|n| n == c) {
                Some(i) => outcomes[i].1 = true,
                None => {
                    nodes.push(c.clone());
                    outcomes.push((TargetOutcome::Skipped, true));
                    failed += 1;
                }
            }
        }
        Self {
            nodes,
            outcomes,
            counted: n_counted,
            quorum,
            acked: 0,
            failed,
        }
    }

    /// The members asked (the skipped ones follow them in [`Self::missed`]).
    pub fn targets(&self) -> impl Iterator<Item = &NodeId> {
        self.nodes
            .iter()
            .zip(&self.outcomes)
            .filter(|(_, (o, _))| *o != TargetOutcome::Skipped)
            .map(|(n, _)| n)
    }

    /// Records `node`'s answer.
    pub fn record<T, E: Display>(&mut self, node: &NodeId, result: &Result<T, E>) {
        let Some(i) = self.nodes.iter().position(|n| n == node) else {
            return;
        };
        let (outcome, counts) = &mut self.outcomes[i];
        if *outcome != TargetOutcome::Pending {
            return;
        }
        match result {
            Ok(_) => {
                *outcome = TargetOutcome::Acked;
                self.acked += usize::from(*counts);
            }
            Err(e) => {
                *outcome = TargetOutcome::Failed(e.to_string());
                self.failed += usize::from(*counts);
            }
        }
    }

    /// Enough counted members acknowledged.
    pub fn reached(&self) -> bool {
        self.acked >= self.quorum
    }

    /// So many counted members failed that the quorum cannot be reached.
    pub fn impossible(&self) -> bool {
        self.failed + self.quorum > self.counted
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

    /// Members that were skipped or failed.
    pub fn missed(&self) -> Vec<NodeId> {
        let skipped = self
            .nodes
            .iter()
            .zip(&self.outcomes)
            .filter(|(_, (o, _))| *o == TargetOutcome::Skipped);
        let failed = self
            .nodes
            .iter()
            .zip(&self.outcomes)
            .filter(|(_, (o, _))| matches!(o, TargetOutcome::Failed(_)));
        skipped.chain(failed).map(|(n, _)| n.clone()).collect()
    }

    /// Every member's outcome so far.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn outcomes(&self) -> impl Iterator<Item = (&NodeId, &TargetOutcome)> {
        self.nodes.iter().zip(self.outcomes.iter().map(|(o, _)| o))
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
            vec![a.clone(), b.clone(), c.clone(), l.clone()],
            &[a.clone(), b.clone(), c.clone()],
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
            t.outcomes().find(|(n, _)| **n == c).map(|(_, o)| o),
            Some(&TargetOutcome::Pending)
        );
    }

    #[test]
    fn quorum_is_impossible_once_too_many_counted_members_fail_or_are_down() {
        let (a, b, c) = (id("a:1"), id("b:1"), id("c:1"));
        // c is down: skipped, and one failure more makes W = 2 of 3 impossible.
        let mut t = QuorumTracker::new(
            vec![a.clone(), b.clone()],
            &[a.clone(), b.clone(), c.clone()],
            2,
        );
        assert_eq!(t.targets().count(), 2);
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
