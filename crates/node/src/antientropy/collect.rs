//! Tombstone collection at the end of a round, leaf by leaf: a tombstone
//! past its grace period goes once every other replica of its key holds it
//! (or a newer version), or holds nothing, which past the grace means it
//! may have collected it already.
//!
//! In a leaf whose digest agreed with every other replica's, every replica
//! holds the same entries, so its tombstones go without asking. In a leaf
//! that differed, each is asked about first: once one replica has
//! collected a tombstone the others no longer agree with it there, and
//! only this check lets them collect theirs. Leaf by leaf, so that writes
//! going on elsewhere in a part or range never hold a tombstone back. A
//! replica that could not be compared, or is down, holds back every
//! tombstone it replicates; so do members joining or leaving. Nothing here
//! sends or takes a version: the exchange does that.

use std::collections::{BTreeSet, HashSet};

use mydht_ring::{NodeId, ReplicatedRange, Ring};
use mydht_store::{
    Cover, LEAVES, Purge, PurgeRequest, Stamp, Store, leaf_digests, leaf_entries, past_grace,
};

use super::AntiEntropy;
use crate::movement::Report;
use crate::movement::plan::settled;

/// What the round learnt that collection depends on.
pub(super) struct Compared<'a> {
    /// The ranges this node replicates.
    pub mine: &'a [ReplicatedRange],
    /// Leaves whose digests differed with some replica.
    pub differed: &'a BTreeSet<u16>,
    /// Replicas that could not be compared.
    pub unsure: &'a HashSet<NodeId>,
}

impl<S: Store> AntiEntropy<S> {
    /// Collects what it can, counting into `report`.
    pub(super) async fn collect(&self, ring: &Ring, seen: &Compared<'_>, report: &mut Report) {
        if !settled(ring) {
            return;
        }
        let me = self.cluster.me();
        let cover = Cover::of(seen.mine.iter().map(ReplicatedRange::range));
        let kept = match leaf_digests(&*self.store, &cover, 0..LEAVES).await {
            Ok(k) => k,
            Err(e) => return report.fail(me, format!("reading the store: {e}")),
        };
        for (leaf, digest) in (0u16..=u16::MAX).zip(&kept) {
            if digest.tombstones == 0 {
                continue;
            }
            let agreed = !seen.differed.contains(&leaf);
            let entries = match leaf_entries(&*self.store, &cover, usize::from(leaf)).await {
                Ok(e) => e,
                Err(e) => return report.fail(me, format!("reading the store: {e}")),
            };
            'entries: for meta in entries {
                let Stamp::Tombstone(version) = &meta.stamp else {
                    continue;
                };
                if !past_grace(self.clock.now(), version, self.grace) {
                    continue;
                }
                let Some(range) = seen.mine.iter().find(|r| r.range().contains(meta.position))
                else {
                    continue;
                };
                let others = range.replicas().iter().filter(|n| *n != me);
                if others.clone().any(|n| seen.unsure.contains(n)) {
                    continue;
                }
                if !agreed {
                    for node in others {
                        if self.cluster.is_down(node) {
                            continue 'entries;
                        }
                        report.probes += 1;
                        match self.replicas.probe(node, meta.key.clone()).await {
                            Ok(Some(held)) if held >= *version => {}
                            Ok(None) => {}
                            // Older there: it takes this tombstone in its
                            // own round first.
                            Ok(Some(_)) => continue 'entries,
                            Err(e) => {
                                report.fail(node, e.to_string());
                                continue 'entries;
                            }
                        }
                    }
                }
                // The ring may have begun to change meanwhile.
                if !settled(&self.cluster.ring()) {
                    return;
                }
                let req = PurgeRequest {
                    version: version.clone(),
                    held_by_all_replicas: true,
                    now: self.clock.now(),
                    grace: self.grace,
                };
                match self.store.purge_tombstone(&meta.key, req).await {
                    Ok(Purge::Removed) => report.dropped += 1,
                    Ok(_) => {}
                    Err(e) => return report.fail(me, format!("collecting a tombstone: {e}")),
                }
            }
        }
    }
}
