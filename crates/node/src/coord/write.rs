//! put and del, coordinated: stamp once, send to the whole write set at
//! once, answer when W replicas acknowledged, W of the old replica set and
//! W of the new one while members join or leave.
//!
//! A delete is a write of a tombstone. Replicas that have not answered when
//! the quorum is decided keep going in the background; a replica that
//! fails is left to read repair (and, later, hinted handoff and
//! anti-entropy). A large value streams: each piece from the client goes to
//! every replica as it arrives, through a small per-replica queue; a
//! replica that cannot take a piece within the request deadline is cut off
//! (its partial value never becomes visible there) and the upload goes on
//! with the others, so one slow disk cannot stall it or make this node
//! buffer without bound.

use bytes::Bytes;
use mydht_proto::{Version, WriteId};
use mydht_ring::{NodeId, Position};
use mydht_store::Store;

use super::dedup::Claim;
use super::quorum::QuorumTracker;
use super::{CoordError, Coordinator, Write, Written, quorum_of, until_decided};
use crate::value::ValueStream;
use crate::value::sink::tee;

/// Pieces queued per replica of a streamed write before the fan-out waits.
const PER_REPLICA_QUEUE: usize = 4;

impl<S: Store> Coordinator<S> {
    /// Writes `key` (a value, or a tombstone) through its replicas.
    pub async fn write(
        &self,
        key: Bytes,
        write: Write,
        write_id: WriteId,
        seen: Option<Version>,
        w: Option<u8>,
    ) -> Result<Written, CoordError> {
        let c = &self.0;
        let ring = c.cluster.ring();
        let quorum = ring.quorum();
        let w = quorum_of(w, quorum.w(), quorum.n(), "w")?;
        let stamp = || {
            if let Some(seen) = &seen {
                c.clock
                    .observe(seen.timestamp)
                    .map_err(|e| CoordError::BadRequest {
                        reason: e.to_string(),
                    })?;
            }
            Ok(Version {
                timestamp: c.clock.now(),
                node: c.cluster.me().clone(),
            })
        };
        let driving = match c.dedup.claim(write_id, stamp).await? {
            Claim::Answer(written) => return Ok(written),
            Claim::Drive(d) => d,
        };
        let version = driving.version.clone();
        let pos = Position::of_key(&key);
        // While members join or leave, a key has an old replica set (who
        // holds complete data now, and answers reads) and a new one (who
        // will once the change is done): both receive the write, and W of
        // each must apply it, so that it is readable now and stays so after
        // the change, whichever members it moves.
        let (now, next) = ring.owner_sets(pos);
        let down = |n: &NodeId| c.cluster.is_down(n);
        let mut tracker = QuorumTracker::new().require(now.iter(), w, down);
        if let Some(next) = next {
            tracker = tracker.require(next.iter(), w, down);
        }
        let deleted = matches!(write, Write::Tombstone);
        match write {
            Write::Value(v) => self.replicate(&key, &version, Some(v), &mut tracker).await,
            Write::Tombstone => self.replicate(&key, &version, None, &mut tracker).await,
            Write::Stream(value) => {
                // Boxed: only large values stream, and every write's task
                // would otherwise carry the fan-out's state.
                if let Err(e) = Box::pin(self.fan_out(&key, &version, value, &mut tracker)).await {
                    driving.finish(None);
                    return Err(e);
                }
            }
        }
        if tracker.reached() {
            let written = Written { version, deleted };
            driving.finish(Some(&written));
            Ok(written)
        } else {
            driving.finish(None);
            let (acked, required) = tracker.shortfall();
            Err(CoordError::Quorum { acked, required })
        }
    }

    /// Sends the version to every target at once, this node's own copy
    /// inline; returns once the quorum is decided.
    async fn replicate(
        &self,
        key: &Bytes,
        version: &Version,
        value: Option<Bytes>,
        tracker: &mut QuorumTracker,
    ) {
        let c = &self.0;
        let me = c.cluster.me();
        let local = tracker.targets().any(|n| n == me);
        let remote = tracker
            .targets()
            .filter(|n| *n != me)
            .map(|n| (n.clone(), ()));
        let mut answers = self.call_each(remote, tracker.targets().count(), || {
            let (replicas, k, v, val) = (
                c.replicas.clone(),
                key.clone(),
                version.clone(),
                value.clone(),
            );
            move |node: NodeId, ()| async move { replicas.store(&node, k, v, val).await }
        });
        // This node's own copy is written here, while the remote writes run.
        if local {
            let result = c
                .replicas
                .store(me, key.clone(), version.clone(), value)
                .await;
            if let Err(e) = &result {
                tracing::warn!(error = %e, "local write failed");
            }
            tracker.record(me, &result);
        }
        until_decided(tracker, &mut answers, |_, _| {}).await;
    }

    /// Streams the incoming value to every target at once; returns once
    /// the quorum is decided. A client stream that breaks fails the write.
    async fn fan_out(
        &self,
        key: &Bytes,
        version: &Version,
        value: ValueStream,
        tracker: &mut QuorumTracker,
    ) -> Result<(), CoordError> {
        let c = &self.0;
        let targets: Vec<NodeId> = tracker.targets().cloned().collect();
        let (feed, branches) = tee(value, &targets, PER_REPLICA_QUEUE, c.request_timeout);
        let mut answers =
            self.call_each(branches.into_iter(), targets.len(), || {
                let (replicas, k, v) = (c.replicas.clone(), key.clone(), version.clone());
                move |node: NodeId, branch| async move {
                    replicas.store_stream(&node, k, v, branch).await
                }
            });
        feed.run().await?;
        until_decided(tracker, &mut answers, |_, _| {}).await;
        Ok(())
    }
}
