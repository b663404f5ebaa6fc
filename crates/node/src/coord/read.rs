//! get, coordinated: ask the read set at once, answer with the newest
//! version once R replicas answered, and repair stale replicas in the
//! background with that version, unchanged.
//!
//! Small values come back whole from every replica asked; a large one is
//! announced by each and streamed only from the replica chosen, relayed
//! piece by piece to the client (the others are cancelled as their answers
//! are dropped). A stale replica of a large value is repaired by a streamed
//! copy from the chosen one.

use bytes::Bytes;
use mydht_proto::Version;
use mydht_ring::{NodeId, Position};
use mydht_store::Store;

use super::quorum::QuorumTracker;
use super::{Answers, CoordError, Coordinator, Read, quorum_of, until_decided};
use crate::replication::{Found, ReplicaError};

impl<S: Store> Coordinator<S> {
    /// Reads `key` from its replicas.
    pub async fn read(&self, key: Bytes, r: Option<u8>) -> Result<Read, CoordError> {
        let c = &self.0;
        let ring = c.cluster.ring();
        let quorum = ring.quorum();
        let r = quorum_of(r, quorum.r(), quorum.n(), "r")?;
        let pos = Position::of_key(&key);
        let mut tracker = QuorumTracker::new().require(ring.preference_list(pos).iter(), r, |n| {
            c.cluster.is_down(n)
        });
        let me = c.cluster.me();
        let local = tracker.targets().any(|n| n == me);
        let remote = tracker
            .targets()
            .filter(|n| *n != me)
            .map(|n| (n.clone(), ()));
        let mut rx = self.call_each(remote, tracker.targets().count(), || {
            let (replicas, k) = (c.replicas.clone(), key.clone());
            move |node: NodeId, ()| async move { replicas.fetch(&node, k).await }
        });
        let mut answers: Vec<(NodeId, Option<Found>)> = Vec::new();
        // This node's own copy is read here, while the remote reads run.
        if local {
            let result = c.replicas.fetch(me, key.clone()).await;
            tracker.record(me, &result);
            match result {
                Ok(f) => answers.push((me.clone(), f)),
                Err(e) => tracing::warn!(error = %e, "local read failed"),
            }
        }
        until_decided(&mut tracker, &mut rx, |node, result| {
            if let Ok(f) = result {
                answers.push((node, f));
            }
        })
        .await;
        if !tracker.reached() {
            return Err(CoordError::Unavailable {
                answered: tracker.shortfall().0,
                required: r,
                nodes: tracker.missed(),
            });
        }
        let newest = answers
            .iter()
            .enumerate()
            .filter_map(|(i, (_, f))| f.as_ref().map(|f| (i, f.version.clone())))
            .max_by(|a, b| a.1.cmp(&b.1));
        let Some((chosen, version)) = newest else {
            return Err(CoordError::NotFound);
        };
        let holder = answers[chosen].0.clone();
        let value = answers[chosen].1.as_mut().and_then(|f| f.value.take());
        // Only versions go to the background: unchosen streams are dropped
        // (and so cancelled) now.
        let held: Vec<(NodeId, Option<Version>)> = answers
            .into_iter()
            .map(|(n, f)| (n, f.map(|f| f.version)))
            .collect();
        let small = match &value {
            None => Some(None),
            Some(v) => v.in_memory().map(|b| Some(b.clone())),
        };
        self.repair_later(key, version.clone(), holder, small, held, rx);
        match value {
            None => Err(CoordError::NotFound),
            Some(value) => Ok(Read { version, value }),
        }
    }

    /// Waits for late answers, then brings every stale replica to `version`:
    /// small values and tombstones directly, large values by a streamed
    /// copy from `holder`.
    fn repair_later(
        &self,
        key: Bytes,
        version: Version,
        holder: NodeId,
        small: Option<Option<Bytes>>,
        mut held: Vec<(NodeId, Option<Version>)>,
        mut rx: Answers<Option<Found>, ReplicaError>,
    ) {
        let replicas = self.0.replicas.clone();
        self.0.tasks.spawn(async move {
            while let Some((node, result)) = rx.recv().await {
                if let Ok(f) = result {
                    held.push((node, f.map(|f| f.version)));
                }
            }
            for (node, v) in held {
                if v.as_ref().is_some_and(|v| *v >= version) {
                    continue;
                }
                let result = match &small {
                    Some(value) => replicas
                        .store(&node, key.clone(), version.clone(), value.clone(), None)
                        .await
                        .map(|s| s.applied),
                    None => Box::pin(replicas.copy(&holder, &node, key.clone())).await,
                };
                match result {
                    Ok(_) => tracing::debug!(%node, "read repair"),
                    Err(e) => tracing::debug!(%node, error = %e, "read repair failed"),
                }
            }
        });
    }
}
