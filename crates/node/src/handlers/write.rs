//! put and del, coordinated: stamp once, send to the whole write set at
//! once, answer when W read-set replicas acknowledged.
//!
//! A delete is a write of a tombstone. The write id makes retries safe
//! (see `dedup`). Replicas that have not answered when the quorum is reached
//! keep going in the background; a replica that fails is left to read repair
//! (and, later, hinted handoff and anti-entropy).
//!
//! A large value streams: each chunk from the client goes to every replica
//! as it arrives, through a small per-replica queue. A replica that cannot
//! take a chunk within the request deadline is cut off (its partial value
//! never becomes visible there) and the upload goes on with the others, so
//! one slow disk cannot stall it or make this node buffer without bound.

use std::sync::Arc;

use bytes::Bytes;
use mydht_proto::{Del, ErrorReply, Payload, Put, Response, Version, WriteId};
use mydht_ring::{NodeId, Position};
use mydht_store::Store;
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Chunks queued per replica of a streamed write before the fan-out waits.
const PER_REPLICA_QUEUE: usize = 4;

use super::Reply;
use super::replica::{store_on, store_stream_on};
use crate::dedup::Claim;
use crate::shared::Shared;
use crate::stream::{BodyIn, Incoming, Piece, ValueIn};

pub(crate) async fn put<S: Store>(sh: &Arc<Shared<S>>, put: Put, body: Option<BodyIn>) -> Reply {
    let len = match put.value {
        Payload::Inline(value) => {
            if let Err(e) = sh.cfg.limits.check_inline_value(&value) {
                return Reply::error(e);
            }
            let write = Write::Value(value);
            return Reply::Plain(
                coordinate(sh, put.key, write, put.write_id, put.seen, put.w).await,
            );
        }
        Payload::Streamed { len } => len,
    };
    let Some(body) = body else {
        return Reply::error(ErrorReply::BadRequest {
            reason: "streamed value without a body".into(),
        });
    };
    let incoming = match Incoming::new(body, len, sh.cfg.max_value_len, sh.cfg.limits.chunk_size) {
        Ok(i) => i,
        Err(e) => return Reply::error(e),
    };
    let write = Write::Stream(len, ValueIn::Binary(incoming));
    Reply::Plain(coordinate(sh, put.key, write, put.write_id, put.seen, put.w).await)
}

/// A put arriving over HTTP: streamed like a binary one; the node names the
/// write, since an HTTP client sends no write id.
pub(crate) async fn put_http<S: Store>(
    sh: &Arc<Shared<S>>,
    key: Bytes,
    len: Option<u64>,
    value: ValueIn,
    write_id: WriteId,
) -> Response {
    coordinate(sh, key, Write::Stream(len, value), write_id, None, None).await
}

/// A delete arriving over HTTP.
pub(crate) async fn del_http<S: Store>(
    sh: &Arc<Shared<S>>,
    key: Bytes,
    write_id: WriteId,
) -> Response {
    coordinate(sh, key, Write::Tombstone, write_id, None, None).await
}

/// What a write stores.
enum Write {
    Value(Bytes),
    Stream(Option<u64>, ValueIn),
    Tombstone,
}

pub(crate) async fn del<S: Store>(sh: &Arc<Shared<S>>, del: Del) -> Reply {
    Reply::Plain(coordinate(sh, del.key, Write::Tombstone, del.write_id, del.seen, del.w).await)
}

async fn coordinate<S: Store>(
    sh: &Arc<Shared<S>>,
    key: Bytes,
    write: Write,
    write_id: WriteId,
    seen: Option<Version>,
    w: Option<u8>,
) -> Response {
    let ring = sh.cluster.ring();
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
            node: sh.cluster.me().clone(),
        })
    };
    let driving = match sh.dedup.claim(write_id, stamp).await {
        Ok(Claim::Answer(r)) | Err(r) => return r,
        Ok(Claim::Drive(d)) => d,
    };
    let version = driving.version.clone();
    let pos = Position::of_key(&key);
    let targets = ring.write_set(pos, |n| sh.cluster.is_down(n)).to_vec();
    // Acks count from members that will keep the key: the current owners
    // but a leaving one (its copy goes with it), and the members taking
    // over a range.
    let counted: Vec<NodeId> = ring
        .write_set(pos, |_| false)
        .iter()
        .filter(|n| {
            ring.member(n)
                .is_some_and(|m| m.state() != mydht_ring::MemberState::Leaving)
        })
        .cloned()
        .collect();
    let tombstone = matches!(write, Write::Tombstone);
    let acked = match write {
        Write::Value(v) => replicate(sh, &key, &version, Some(v), targets, &counted, w).await,
        Write::Tombstone => replicate(sh, &key, &version, None, targets, &counted, w).await,
        Write::Stream(len, incoming) => {
            match fan_out(sh, &key, &version, len, incoming, targets, &counted, w).await {
                Ok(acked) => acked,
                Err(e) => {
                    let response = Response::Error(e);
                    driving.finish(&response, false);
                    return response;
                }
            }
        }
    };
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
    let me = sh.cluster.me();
    let local = targets.contains(me);
    for node in targets.into_iter().filter(|n| n != me) {
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
    // This node's own copy is written here, while the remote writes run.
    if local {
        match store_on(sh, me, key.clone(), version.clone(), value).await {
            Ok(_) if counted.contains(me) => acked += 1,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "local write failed"),
        }
    }
    while acked < w {
        let Some((node, result)) = rx.recv().await else {
            break;
        };
        match result {
            Ok(_) if counted.contains(&node) => acked += 1,
            Ok(_) => {}
            Err(e) => tracing::debug!(%node, error = %e, "replica write failed"),
        }
    }
    acked
}

/// Streams the incoming value to every target at once; returns once `w` of
/// the `counted` replicas acknowledged the whole value, or all finished.
#[allow(clippy::too_many_arguments)]
async fn fan_out<S: Store>(
    sh: &Arc<Shared<S>>,
    key: &Bytes,
    version: &Version,
    len: Option<u64>,
    mut incoming: ValueIn,
    targets: Vec<NodeId>,
    counted: &[NodeId],
    w: usize,
) -> Result<usize, ErrorReply> {
    let (results_tx, mut results) = mpsc::channel(targets.len().max(1));
    let mut feeds: Vec<(NodeId, mpsc::Sender<Piece>)> = Vec::new();
    for node in targets {
        let (tx, rx) = mpsc::channel(PER_REPLICA_QUEUE);
        feeds.push((node.clone(), tx));
        let (sh2, results_tx, key, version) =
            (sh.clone(), results_tx.clone(), key.clone(), version.clone());
        sh.tasks.spawn(async move {
            let result = store_stream_on(&sh2, &node, key, version, len, rx).await;
            let _ = results_tx.send((node, result)).await;
        });
    }
    drop(results_tx);
    let deadline = sh.cluster.rpc().request_timeout();
    loop {
        // A client stream that breaks drops every feed: no replica keeps a
        // partial value.
        let piece = match incoming.next().await? {
            Some(b) => Piece::Data(b),
            None => Piece::End,
        };
        let end = matches!(piece, Piece::End);
        let mut live = Vec::with_capacity(feeds.len());
        for (node, tx) in feeds {
            let piece = match &piece {
                Piece::Data(b) => Piece::Data(b.clone()),
                Piece::End => Piece::End,
            };
            match timeout(deadline, tx.send(piece)).await {
                Ok(Ok(())) => live.push((node, tx)),
                Ok(Err(_)) => tracing::debug!(%node, "replica stream failed"),
                Err(_) => tracing::warn!(%node, "replica cut off: no progress within {deadline:?}"),
            }
        }
        feeds = live;
        if end || feeds.is_empty() {
            break;
        }
    }
    drop(feeds);
    let mut acked = 0;
    while let Some((node, result)) = results.recv().await {
        match result {
            Ok(_) if counted.contains(&node) => {
                acked += 1;
                if acked >= w {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(%node, error = %e, "replica stream failed"),
        }
    }
    Ok(acked)
}
