//! Data movement between replicas: restoring N copies after a remove or a
//! join, a leave's hand-off, purge and a change of N.
//!
//! Every kind of movement is one [`Pass`] over this node's own store in
//! ring order, a page at a time ([`engine`]). For each entry the pure
//! [`plan`] says who must hold the key; for each such member this node asks
//! what it holds (a metadata-only probe) and sends its own version only
//! when the member's is older or absent, with the version unchanged, so the
//! newer version always wins and a tombstone travels like a value: a delete
//! a replica missed cannot come back. Passes are started and owned by the
//! [`MovementQueue`](queue::MovementQueue), which runs them as background
//! work under one node-wide budget of keys and bytes in motion, keeps
//! their progress and their summaries, and cancels a pass whose handle is
//! dropped. Comparing replicas and collecting tombstones is `antientropy`;
//! deciding membership is the cluster's.

pub(crate) mod engine;
pub(crate) mod plan;
pub(crate) mod queue;

use std::collections::BTreeMap;
use std::sync::Arc;

use mydht_ring::{NodeId, Ring};

/// What a pass does with each entry.
#[derive(Clone, Debug)]
pub(crate) enum Pass {
    /// After a membership change from `before`: send each key to the members
    /// that gained it, from its first surviving holder.
    Restore {
        /// The ring before the change.
        before: Arc<Ring>,
        /// The holders that were asked to run this pass too, when not every
        /// member was (a join asks only the members it sees alive): only
        /// they may be elected to send a key, so a key whose first holder
        /// was never asked is sent by another that was. Sorted.
        senders: Option<Arc<[NodeId]>>,
    },
    /// Drop each key this node no longer owns, once every owner holds the
    /// same or a newer version (sent first if not).
    Purge,
    /// This node is leaving: send each key to the members that hold it in
    /// `after` (the ring without this node) but not now.
    Leave {
        /// The ring once this node is gone.
        after: Arc<Ring>,
    },
    /// While N changes: send each key this node replicates now to the
    /// key's replicas under the new N that lack it, from its first
    /// replica among `senders` (the members asked to run this too).
    Spread {
        /// The members running this pass. Sorted.
        senders: Arc<[NodeId]>,
    },
}

impl Pass {
    /// A restore run by the members in `asked` only (in any order): only
    /// they may be elected to send a key.
    pub fn restore_by(before: Arc<Ring>, mut asked: Vec<NodeId>) -> Self {
        asked.sort();
        asked.dedup();
        Self::Restore {
            before,
            senders: Some(Arc::from(asked)),
        }
    }

    /// A spread run by the members in `asked` only.
    pub fn spread_by(mut asked: Vec<NodeId>) -> Self {
        asked.sort();
        asked.dedup();
        Self::Spread {
            senders: Arc::from(asked),
        }
    }

    /// The pass's name on the status page.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Restore { .. } => "restore",
            Self::Purge => "purge",
            Self::Leave { .. } => "leave",
            Self::Spread { .. } => "replicas",
        }
    }
}

/// What a pass did.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Entries looked at.
    pub scanned: u64,
    /// Versions sent to another member (anti-entropy: taken from one).
    pub sent: u64,
    /// Value bytes sent.
    pub bytes: u64,
    /// Keys dropped (purge) or tombstones collected (balance).
    pub dropped: u64,
    /// Metadata probes made (one per key and member compared).
    pub probes: u64,
    /// Digest calls made (anti-entropy).
    pub digests: u64,
    /// Keys found held in the same version with different bytes
    /// (anti-entropy): reported, never changed.
    pub conflicts: u64,
    /// Members that could not be brought up to date, with the first reason.
    pub failed: BTreeMap<NodeId, String>,
}

impl Report {
    /// The failures in one line, for an error reply.
    pub fn failures(&self) -> Option<String> {
        if self.failed.is_empty() {
            return None;
        }
        Some(failure_list(
            self.failed
                .iter()
                .map(|(n, why)| (n.as_str(), why.as_str())),
        ))
    }

    /// Notes `node`'s failure, keeping the first reason.
    pub fn fail(&mut self, node: &NodeId, why: impl ToString) {
        self.failed
            .entry(node.clone())
            .or_insert_with(|| why.to_string());
    }
}

/// Members with why each failed, in one line: `a:1 (down), b:1 (...)`.
pub(crate) fn failure_list<'a>(failed: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let list: Vec<String> = failed.map(|(n, why)| format!("{n} ({why})")).collect();
    list.join(", ")
}
