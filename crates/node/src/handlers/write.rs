//! put and del, coordinated: stamp once, send to the whole write set at
//! once, answer when W read-set replicas acknowledged.
//!
//! A delete is a write of a tombstone. The write id makes retries safe
//! (see `dedup`). Replicas that have not answered when the quorum is reached
//! keep going in the background; a replica that fails is left to read repair
//! (and, later, hinted handoff and anti-entropy).

use std::sync::Arc;

use bytes::Bytes;
use mydht_proto::{Chunk, Del, ErrorReply, Put, Response, Version, WriteId};
use mydht_ring::{NodeId, Position};
use mydht_store::Store;
use tokio::sync::mpsc;

use super::replica::store_on;
use super::{Reply, collect_incoming};
use crate::dedup::Claim;
use crate::shared::Shared;

pub(crate) async fn put<S: Store>(
    sh: &Arc<Shared<S>>,
    put: Put,
    body: Option<mpsc::Receiver<Chunk>>,
) -> Reply {
    let value = match collect_incoming(put.value, body, &sh.cfg.limits).await {
        Ok(v) => v,
        Err(e) => return Reply::error(e),
    };
    Reply::Plain(coordinate(sh, put.key, Some(value), put.write_id, put.seen, put.w).await)
}

pub(crate) async fn del<S: Store>(sh: &Arc<Shared<S>>, del: Del) -> Reply {
    Reply::Plain(coordinate(sh, del.key, None, del.write_id, del.seen, del.w).await)
}

async fn coordinate<S: Store>(
    sh: &Arc<Shared<S>>,
    key: Bytes,
    value: Option<Bytes>,
    write_id: WriteId,
    seen: Option<Version>,
    w: Option<u8>,
) -> Response {
    let ring = sh.members.ring();
    let quorum = ring.quorum();
    let w = match w.map(usize::from) {
        None => quorum.w(),
        Some(w) if (1..=quorum.n().max(1)).contains(&w) => w,
        Some(w) => {
            return Response::Error(ErrorReply::BadRequest {
                reason: format!("w={w} is outside 1..={} (the effective N)", quorum.n()),
            });
        }
    };
    let stamp = || {
        if let Some(seen) = &seen {
            sh.clock.observe(seen.timestamp).map_err(|e| {
                Response::Error(ErrorReply::BadRequest {
                    reason: e.to_string(),
                })
            })?;
        }
        Ok(Version {
            timestamp: sh.clock.now(),
            node: sh.members.me().clone(),
        })
    };
    let driving = match sh.dedup.claim(write_id, stamp).await {
        Ok(Claim::Answer(r)) | Err(r) => return r,
        Ok(Claim::Drive(d)) => d,
    };
    let version = driving.version.clone();
    let pos = Position::of_key(&key);
    let targets = ring.write_set(pos, |n| sh.peers.is_down(n)).to_vec();
    let counted = ring.preference_list(pos).to_vec();
    let tombstone = value.is_none();
    let acked = replicate(sh, &key, &version, value, targets, &counted, w).await;
    let response = if acked >= w {
        if tombstone {
            Response::Deleted { version }
        } else {
            Response::Stored { version }
        }
    } else {
        Response::Error(ErrorReply::Quorum {
            acked: u8::try_from(acked).unwrap_or(u8::MAX),
            required: u8::try_from(w).unwrap_or(u8::MAX),
        })
    };
    driving.finish(&response, acked >= w);
    response
}

/// Sends the version to every target at once; returns once `w` of the
/// `counted` replicas acknowledged, or every target answered.
pub(crate) async fn replicate<S: Store>(
    sh: &Arc<Shared<S>>,
    key: &Bytes,
    version: &Version,
    value: Option<Bytes>,
    targets: Vec<NodeId>,
    counted: &[NodeId],
    w: usize,
) -> usize {
    let (tx, mut rx) = mpsc::channel(targets.len().max(1));
    for node in targets {
        let (sh2, tx, key, version, value) = (
            sh.clone(),
            tx.clone(),
            key.clone(),
            version.clone(),
            value.clone(),
        );
        sh.tasks.spawn(async move {
            let result = store_on(&sh2, &node, key, version, value).await;
            let _ = tx.send((node, result)).await;
        });
    }
    drop(tx);
    let mut acked = 0;
    while let Some((node, result)) = rx.recv().await {
        match result {
            Ok(_) if counted.contains(&node) => {
                acked += 1;
                if acked >= w {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(%node, error = %e, "replica write failed"),
        }
    }
    acked
}
