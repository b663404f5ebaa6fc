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
use mydht_cluster::Stored;
use mydht_proto::{Timestamp, Version, WriteId};
use mydht_ring::{NodeId, Position};
use mydht_store::{ClockError, Store};

use super::dedup::Claim;
use super::quorum::QuorumTracker;
use super::{CoordError, Coordinator, Write, Written, quorum_of, until_decided};
use crate::replication::ReplicaError;
use crate::value::ValueStream;
use crate::value::sink::tee;

/// Pieces queued per replica of a streamed write before the fan-out waits.
const PER_REPLICA_QUEUE: usize = 4;

impl<S: Store> Coordinator<S> {
    /// Writes `key` (a value, or a tombstone) through its replicas.
    /// `retry`: the client may have sent this write before, to this node
    /// or another.
    pub async fn write(
        &self,
        key: Bytes,
        write: Write,
        write_id: WriteId,
        seen: Option<Version>,
        w: Option<u8>,
        retry: bool,
    ) -> Result<Written, CoordError> {
        let c = &self.0;
        let ring = c.cluster.ring();
        let quorum = ring.quorum();
        let asked_w = w;
        let w = quorum_of(w, quorum.w(), quorum.n(), "w")?;
        // The new replica set's own majority (it has another size while N
        // changes), or the w asked, at most its size.
        let target = ring.target_quorum();
        let w_next = asked_w.map_or(target.w(), |k| usize::from(k).min(target.n().max(1)));
        // Only a new write is refused for a clock far ahead: a retry of one
        // already made gets its first answer.
        let stamp = || {
            self.refuse_if_clock_ahead()?;
            if let Some(seen) = &seen {
                c.clock
                    .observe_behind(seen.timestamp, self.clock_behind_ms())
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
        let mut version = driving.version.clone();
        let pos = Position::of_key(&key);
        // While members join or leave, a key has an old replica set (who
        // holds complete data now, and answers reads) and a new one (who
        // will once the change is done): both receive the write, and W of
        // each must apply it, so that it is readable now and stays so after
        // the change, whichever members it moves.
        let (now, next) = ring.owner_sets(pos);
        let down = |n: &NodeId| c.cluster.is_down(n);
        let tracker_for = || {
            let tracker = QuorumTracker::new().require(now.iter(), w, down);
            match &next {
                Some(next) => tracker.require(next.iter(), w_next, down),
                None => tracker,
            }
        };
        let deleted = matches!(write, Write::Tombstone);
        // A retry may have been applied by replicas through another
        // coordinator, its answer lost: that version is completed (brought
        // to W replicas, never stamped above anything) rather than a second
        // version stamped. Asking costs a round trip, so only retries ask.
        let recalled = if retry {
            self.recall(&key, write_id, tracker_for()).await
        } else {
            None
        };
        let id = Some(write_id);
        let done = match (write, recalled) {
            (write, Some(first)) => {
                version = first;
                let mut tracker = tracker_for();
                match write {
                    Write::Value(v) => {
                        self.replicate(&key, &version, Some(v), &mut tracker, id)
                            .await;
                        Ok(tracker)
                    }
                    Write::Tombstone => {
                        self.replicate(&key, &version, None, &mut tracker, id).await;
                        Ok(tracker)
                    }
                    Write::Stream(value) => {
                        Box::pin(self.fan_out(&key, &version, value, &mut tracker, id))
                            .await
                            .map(|()| tracker)
                    }
                }
            }
            (Write::Value(v), None) => {
                self.replicate_newest(&key, &mut version, Some(v), tracker_for, id)
                    .await
            }
            (Write::Tombstone, None) => {
                self.replicate_newest(&key, &mut version, None, tracker_for, id)
                    .await
            }
            // Boxed: only large values stream, and every write's task
            // would otherwise carry the fan-out's state.
            (Write::Stream(value), None) => {
                Box::pin(self.stream_newest(&key, &mut version, value, tracker_for, id)).await
            }
        };
        let tracker = match done {
            Ok(tracker) => tracker,
            Err(e) => {
                driving.finish(None);
                return Err(e);
            }
        };
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

    /// A node whose clock is far ahead of the other members' would stamp
    /// versions that outlive writes made after them elsewhere (or that
    /// replicas refuse after this node stored its own copy): it refuses
    /// writes, before stamping anything, until its clock is fixed. Half
    /// the skew a replica allows, so that a write stamped above one of its
    /// versions elsewhere is still within what replicas take.
    fn refuse_if_clock_ahead(&self) -> Result<(), CoordError> {
        let c = &self.0;
        let bound_ms = u64::try_from(c.clock.max_skew().as_millis() / 2).unwrap_or(u64::MAX);
        match c.cluster.clock_ahead_ms().map(u64::try_from) {
            Some(Ok(ahead_ms)) if ahead_ms > bound_ms => {
                Err(CoordError::ClockAhead { ahead_ms, bound_ms })
            }
            _ => Ok(()),
        }
    }

    /// Keeps a hint for each target skipped as down (the calls themselves
    /// keep one for each that fails).
    fn hint_skipped(&self, key: &Bytes, version: &Version, tracker: &QuorumTracker) {
        let skipped: Vec<NodeId> = tracker.skipped().cloned().collect();
        if skipped.is_empty() {
            return;
        }
        let (hints, key, version) = (self.0.hints.clone(), key.clone(), version.clone());
        self.0.tasks.spawn(async move {
            for node in skipped {
                hints.keep(&node, &key, &version).await;
            }
        });
    }

    /// How far this node's clock is behind the other members', if it is.
    pub(super) fn clock_behind_ms(&self) -> u64 {
        self.0
            .cluster
            .clock_behind_ms()
            .map_or(0, |b| u64::try_from(b).unwrap_or(0))
    }

    /// A version of this node above `held`: a replica holds `held`, stamped
    /// later than this write by a clock ahead of this node's (or by a write
    /// racing this one). Acknowledging this write below it would let an
    /// earlier write win: the write acknowledged last must be the one that
    /// stays.
    ///
    /// A `held` version further ahead of the members' clocks than replicas
    /// allow (stamped by a far-ahead clock before its node knew to refuse)
    /// cannot be written above: a version above it would be refused by
    /// every replica but the ones that hold it, so the write fails at once,
    /// saying why, instead of being stored where the skew bound was
    /// bypassed.
    fn stamp_above(&self, held: &Version) -> Result<Version, CoordError> {
        let c = &self.0;
        // Moving the clock past it makes this node's next writes sort after
        // it too.
        if let Err(ClockError::TooFarAhead { ahead_ms, .. }) = c
            .clock
            .observe_behind(held.timestamp, self.clock_behind_ms())
        {
            return Err(CoordError::FutureVersion {
                node: held.node.clone(),
                ahead_ms,
            });
        }
        let above = Timestamp::from_raw(held.timestamp.raw().saturating_add(1));
        Ok(Version {
            timestamp: c.clock.now().max(above),
            node: c.cluster.me().clone(),
        })
    }

    /// Replicates a small value or a tombstone; when a replica answers
    /// with a newer version than this write's, stamps above it and writes
    /// again, once. W + W > N makes every write acknowledged before this
    /// one began show up among the first round's W answers, so one
    /// restamp puts this write above all of them; a newer version seen in
    /// the second round belongs to a write that overlapped this one, and
    /// either order is then right. The second round trip happens only
    /// when clocks (or racing writes) disagree.
    async fn replicate_newest(
        &self,
        key: &Bytes,
        version: &mut Version,
        value: Option<Bytes>,
        tracker_for: impl Fn() -> QuorumTracker,
        id: Option<WriteId>,
    ) -> Result<QuorumTracker, CoordError> {
        let mut tracker = tracker_for();
        let newer = self
            .replicate(key, version, value.clone(), &mut tracker, id)
            .await;
        let Some(held) = newer.filter(|_| tracker.reached()) else {
            return Ok(tracker);
        };
        let before = std::mem::replace(version, self.stamp_above(&held)?);
        tracing::debug!(?before, after = ?version, ?held, "a replica held a later-stamped version: stamped above it");
        let mut tracker = tracker_for();
        self.replicate(key, version, value, &mut tracker, id).await;
        Ok(tracker)
    }

    /// A streamed value cannot be sent twice, so the replicas are asked
    /// what they hold first (W of each set, so the answers meet every
    /// acknowledged write) and the write is stamped above anything newer.
    async fn stream_newest(
        &self,
        key: &Bytes,
        version: &mut Version,
        value: ValueStream,
        tracker_for: impl Fn() -> QuorumTracker,
        id: Option<WriteId>,
    ) -> Result<QuorumTracker, CoordError> {
        let mut probes = tracker_for();
        let newest = self.newest_held(key, &mut probes).await;
        if !probes.reached() {
            return Ok(probes);
        }
        if let Some(held) = newest.filter(|h| *h > *version) {
            *version = self.stamp_above(&held)?;
        }
        let mut tracker = tracker_for();
        self.fan_out(key, version, value, &mut tracker, id).await?;
        Ok(tracker)
    }

    /// The version the tracker's targets applied for the client write
    /// `id`, once the quorum of answers is decided (W of each set, so the
    /// answers meet every replica set an acknowledged attempt reached).
    async fn recall(
        &self,
        key: &Bytes,
        id: WriteId,
        mut tracker: QuorumTracker,
    ) -> Option<Version> {
        let c = &self.0;
        let targets = tracker.targets().map(|n| (n.clone(), ()));
        let mut answers = self.call_each(targets, tracker.targets().count(), || {
            let (replicas, k) = (c.replicas.clone(), key.clone());
            move |node: NodeId, ()| async move { replicas.recall(&node, id, k).await }
        });
        let mut first: Option<Version> = None;
        until_decided(&mut tracker, &mut answers, |_, recalled| {
            if let Ok(Some(v)) = recalled {
                first = first.take().max(Some(v));
            }
        })
        .await;
        first
    }

    /// The newest version the tracker's targets hold of `key`, once the
    /// quorum of answers is decided.
    async fn newest_held(&self, key: &Bytes, tracker: &mut QuorumTracker) -> Option<Version> {
        let c = &self.0;
        let targets = tracker.targets().map(|n| (n.clone(), ()));
        let mut answers = self.call_each(targets, tracker.targets().count(), || {
            let (replicas, k) = (c.replicas.clone(), key.clone());
            move |node: NodeId, ()| async move { replicas.probe(&node, k).await }
        });
        let mut newest: Option<Version> = None;
        until_decided(tracker, &mut answers, |_, held| {
            if let Ok(Some(v)) = held {
                newest = newest.take().max(Some(v));
            }
        })
        .await;
        newest
    }

    /// Sends the version to every target at once, this node's own copy
    /// inline; returns once the quorum is decided, with the newest version
    /// a replica held instead of applying this one, if newer.
    async fn replicate(
        &self,
        key: &Bytes,
        version: &Version,
        value: Option<Bytes>,
        tracker: &mut QuorumTracker,
        id: Option<WriteId>,
    ) -> Option<Version> {
        let c = &self.0;
        let me = c.cluster.me();
        let local = tracker.targets().any(|n| n == me);
        let remote = tracker
            .targets()
            .filter(|n| *n != me)
            .map(|n| (n.clone(), ()));
        self.hint_skipped(key, version, tracker);
        let mut answers = self.call_each(remote, tracker.targets().count(), || {
            let (replicas, hints, k, v, val) = (
                c.replicas.clone(),
                c.hints.clone(),
                key.clone(),
                version.clone(),
                value.clone(),
            );
            move |node: NodeId, ()| async move {
                let stored = replicas.store(&node, k.clone(), v.clone(), val, id).await;
                if stored.is_err() {
                    hints.keep(&node, &k, &v).await;
                }
                stored
            }
        });
        let mut newer: Option<Version> = None;
        let mut note = |result: &Result<Stored, ReplicaError>| {
            if let Ok(Stored {
                held: Some(held), ..
            }) = result
                && held > version
            {
                newer = newer.take().max(Some(held.clone()));
            }
        };
        // This node's own copy is written here, while the remote writes run.
        if local {
            let result = c
                .replicas
                .store(me, key.clone(), version.clone(), value, id)
                .await;
            if let Err(e) = &result {
                tracing::warn!(error = %e, "local write failed");
            }
            note(&result);
            tracker.record(me, &result);
        }
        until_decided(tracker, &mut answers, |_, result| note(&result)).await;
        newer
    }

    /// Streams the incoming value to every target at once; returns once
    /// the quorum is decided. A client stream that breaks fails the write.
    async fn fan_out(
        &self,
        key: &Bytes,
        version: &Version,
        value: ValueStream,
        tracker: &mut QuorumTracker,
        id: Option<WriteId>,
    ) -> Result<(), CoordError> {
        let c = &self.0;
        let targets: Vec<NodeId> = tracker.targets().cloned().collect();
        let (feed, branches) = tee(value, &targets, PER_REPLICA_QUEUE, c.request_timeout);
        let me = c.cluster.me().clone();
        let mut answers = self.call_each(branches.into_iter(), targets.len(), || {
            let (replicas, hints, k, v) = (
                c.replicas.clone(),
                c.hints.clone(),
                key.clone(),
                version.clone(),
            );
            move |node: NodeId, branch| async move {
                let stored = replicas
                    .store_stream(&node, k.clone(), v.clone(), branch, id)
                    .await;
                // A client stream that broke off fails every branch alike:
                // nothing was acknowledged, so nothing is owed to anyone.
                if stored
                    .as_ref()
                    .is_err_and(|e| !matches!(e, ReplicaError::Value(_)))
                    && node != me
                {
                    hints.keep(&node, &k, &v).await;
                }
                stored
            }
        });
        feed.run().await?;
        // Only once the whole value came in is anything owed to the
        // replicas skipped.
        self.hint_skipped(key, version, tracker);
        until_decided(tracker, &mut answers, |_, _| {}).await;
        Ok(())
    }
}
