//! Replica calls, both directions: serving `ReplicaStore`, `ReplicaFetch`
//! and `ReplicaProbe` from this node's store, and making them to any replica
//! (this node's store directly, another node over its connection).
//!
//! Small values travel inline; larger ones stream in chunks under the
//! stream window and are never held whole. Versions travel unchanged: a
//! replica never restamps. A replica refuses a version stamped too far ahead
//! of its own clock, so that one node's bad clock cannot pin a key forever.

use std::sync::Arc;

use bytes::Bytes;
use mydht_proto::conn::{Exchange, payload_for};
use mydht_proto::{
    Chunk, ChunkAssembler, ErrorReply, Held, Payload, ReplicaEntry, Request, Response, Version,
};
use mydht_ring::NodeId;
use mydht_store::{Lookup, Stamp, Store, StoredValue};
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::{Reply, internal};
use crate::shared::Shared;
use crate::stream::{BodyIn, Incoming, Piece, PieceReader, Source};

/// A value as one replica holds it.
pub(crate) enum Val {
    /// Small enough to have come whole.
    Bytes(Bytes),
    /// In this node's store, to be streamed.
    Local(StoredValue),
    /// Streaming in from another node; its announced length.
    Remote(Exchange, Option<u64>),
}

impl Val {
    /// The value as a source of chunks, with its length if known.
    pub fn into_source(self, max: u64, chunk_size: usize) -> Result<(Option<u64>, Source), String> {
        Ok(match self {
            Self::Bytes(b) => (Some(b.len() as u64), Source::Memory(b)),
            Self::Local(stored) => {
                let len = stored.len();
                let reader = stored.into_reader();
                (
                    Some(len),
                    Source::Local {
                        reader,
                        remaining: len,
                    },
                )
            }
            Self::Remote(exchange, len) => {
                let check = ChunkAssembler::new(len, max, chunk_size).map_err(|e| e.to_string())?;
                (len, Source::Remote { exchange, check })
            }
        })
    }
}

/// What a replica holds of a key: a version and its value, `None` for a
/// tombstone.
pub(crate) struct Found {
    pub version: Version,
    pub value: Option<Val>,
}

/// Nothing, or what was found.
pub(crate) type Fetched = Option<Found>;

/// Serves `ReplicaStore`.
pub(crate) async fn serve_store<S: Store>(
    sh: &Arc<Shared<S>>,
    key: Bytes,
    version: Version,
    value: Option<Payload>,
    body: Option<BodyIn>,
) -> Reply {
    if let Err(e) = sh.clock.observe(version.timestamp) {
        return Reply::error(ErrorReply::BadRequest {
            reason: e.to_string(),
        });
    }
    let outcome = match value {
        None => sh.store.delete(&key, version).await,
        Some(Payload::Inline(b)) => {
            if let Err(e) = sh.cfg.limits.check_inline_value(&b) {
                return Reply::error(e);
            }
            sh.store.put(&key, version, b).await
        }
        Some(Payload::Streamed { len }) => {
            let Some(body) = body else {
                return Reply::error(ErrorReply::BadRequest {
                    reason: "streamed value without a body".into(),
                });
            };
            let incoming =
                match Incoming::new(body, len, sh.cfg.max_value_len, sh.cfg.limits.chunk_size) {
                    Ok(i) => i,
                    Err(e) => return Reply::error(e),
                };
            let (tx, rx) = mpsc::channel(2);
            let pump = sh.tasks.spawn(pump(incoming, tx));
            let outcome = sh
                .store
                .put_stream(&key, version, PieceReader::new(rx))
                .await;
            if let Ok(Err(e)) = pump.await {
                return Reply::error(e);
            }
            outcome
        }
    };
    match outcome {
        Ok(o) => Reply::Plain(Response::ReplicaStored {
            applied: o.applied(),
        }),
        Err(e) => Reply::error(internal(&e)),
    }
}

/// Moves a request body into pieces for a store. If the store stops reading
/// (it already holds something newer), the rest is still consumed, so the
/// sender finishes instead of waiting on its window.
async fn pump(mut incoming: Incoming, tx: mpsc::Sender<Piece>) -> Result<(), ErrorReply> {
    let mut listening = true;
    loop {
        let piece = match incoming.next().await? {
            Some(b) => Piece::Data(b),
            None => Piece::End,
        };
        let end = matches!(piece, Piece::End);
        if listening && tx.send(piece).await.is_err() {
            listening = false;
        }
        if end {
            return Ok(());
        }
    }
}

/// Serves `ReplicaFetch`.
pub(crate) async fn serve_fetch<S: Store>(sh: &Arc<Shared<S>>, key: &[u8]) -> Reply {
    match fetch_local(sh, key).await {
        Ok(None) => Reply::Plain(Response::Entry(None)),
        Ok(Some(Found {
            version,
            value: None,
        })) => Reply::Plain(Response::Entry(Some(ReplicaEntry {
            version,
            value: None,
        }))),
        Ok(Some(Found {
            version,
            value: Some(val),
        })) => {
            let chunk_size = sh.cfg.limits.chunk_size;
            match val.into_source(sh.cfg.max_value_len, chunk_size) {
                Ok((_, Source::Memory(b))) => Reply::Plain(Response::Entry(Some(ReplicaEntry {
                    version,
                    value: Some(Payload::Inline(b)),
                }))),
                Ok((len, source)) => Reply::Stream(
                    Response::Entry(Some(ReplicaEntry {
                        version,
                        value: Some(Payload::Streamed { len }),
                    })),
                    source,
                ),
                Err(reason) => Reply::error(ErrorReply::Internal { reason }),
            }
        }
        Err(e) => Reply::error(e),
    }
}

/// Serves `ReplicaProbe`: metadata only.
pub(crate) async fn serve_probe<S: Store>(sh: &Arc<Shared<S>>, key: &[u8]) -> Reply {
    match sh.store.version_of(key).await {
        Ok(None) => Reply::Plain(Response::Held(Held::Absent)),
        Ok(Some(Stamp::Value(v))) => Reply::Plain(Response::Held(Held::Value(v))),
        Ok(Some(Stamp::Tombstone(v))) => Reply::Plain(Response::Held(Held::Tombstone(v))),
        Err(e) => Reply::error(internal(&e)),
    }
}

async fn fetch_local<S: Store>(sh: &Arc<Shared<S>>, key: &[u8]) -> Result<Fetched, ErrorReply> {
    match sh.store.get(key).await.map_err(|e| internal(&e))? {
        Lookup::Absent => Ok(None),
        Lookup::Tombstone(version) => Ok(Some(Found {
            version,
            value: None,
        })),
        Lookup::Value(stored) => {
            let version = stored.version().clone();
            let chunk_size = sh.cfg.limits.chunk_size as u64;
            let value = if stored.len() <= chunk_size {
                Val::Bytes(
                    stored
                        .into_bytes(chunk_size)
                        .await
                        .map_err(|e| internal(&e))?,
                )
            } else {
                Val::Local(stored)
            };
            Ok(Some(Found {
                version,
                value: Some(value),
            }))
        }
    }
}

/// Stores a small value or a tombstone on `node`; `Ok(applied)` once it is
/// there (or something newer is).
pub(crate) async fn store_on<S: Store>(
    sh: &Arc<Shared<S>>,
    node: &NodeId,
    key: Bytes,
    version: Version,
    value: Option<Bytes>,
) -> Result<bool, String> {
    if node == sh.cluster.me() {
        let outcome = match value {
            Some(v) => sh.store.put(&key, version, v).await,
            None => sh.store.delete(&key, version).await,
        };
        return outcome.map(|o| o.applied()).map_err(|e| e.to_string());
    }
    let chunk_size = sh.cfg.limits.chunk_size;
    let payload = value.as_ref().map(|v| payload_for(v, chunk_size));
    let request = Request::ReplicaStore {
        key,
        version,
        value: payload,
    };
    let call = async {
        let mut ex = sh
            .cluster
            .rpc()
            .request(node, request)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(v) = &value {
            ex.send_value(v, chunk_size)
                .await
                .map_err(|e| sh.cluster.rpc().failed(node, e).to_string())?;
        }
        ex.response()
            .await
            .map_err(|e| sh.cluster.rpc().failed(node, e).to_string())
    };
    stored_answer(
        node,
        timeout(sh.cluster.rpc().request_timeout(), call).await,
        sh,
    )
}

fn stored_answer<S>(
    node: &NodeId,
    answer: Result<Result<Response, String>, tokio::time::error::Elapsed>,
    sh: &Shared<S>,
) -> Result<bool, String> {
    match answer {
        Ok(Ok(Response::ReplicaStored { applied })) => Ok(applied),
        Ok(Ok(Response::Error(e))) => Err(format!("{node}: {e}")),
        Ok(Ok(other)) => Err(format!("{node}: unexpected answer {other:?}")),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!(
            "{node}: no answer within {:?}",
            sh.cluster.rpc().request_timeout()
        )),
    }
}

/// Streams a value arriving as `pieces` to `node` under `version`. Each
/// piece must wait at most the request deadline for the replica; a replica
/// that falls further behind is cut off (the caller drops `pieces`).
pub(crate) async fn store_stream_on<S: Store>(
    sh: &Arc<Shared<S>>,
    node: &NodeId,
    key: Bytes,
    version: Version,
    len: Option<u64>,
    mut pieces: mpsc::Receiver<Piece>,
) -> Result<bool, String> {
    if node == sh.cluster.me() {
        return sh
            .store
            .put_stream(&key, version, PieceReader::new(pieces))
            .await
            .map(|o| o.applied())
            .map_err(|e| e.to_string());
    }
    let request = Request::ReplicaStore {
        key,
        version,
        value: Some(Payload::Streamed { len }),
    };
    let deadline = sh.cluster.rpc().request_timeout();
    let late = || format!("{node}: no progress within {deadline:?}");
    let mut ex = timeout(deadline, sh.cluster.rpc().request(node, request))
        .await
        .map_err(|_| late())?
        .map_err(|e| e.to_string())?;
    let mut seq = 0u32;
    let mut held: Option<Bytes> = None;
    loop {
        let piece = pieces
            .recv()
            .await
            .ok_or_else(|| format!("{node}: the value was abandoned"))?;
        let (data, last) = match piece {
            Piece::Data(b) => match held.replace(b) {
                Some(prev) => (prev, false),
                None => continue,
            },
            Piece::End => (held.take().unwrap_or_default(), true),
        };
        // A replica that stops acknowledging (a stuck disk, a dead peer)
        // is given up on; dropping the exchange cancels it there.
        let sent = timeout(deadline, ex.send_chunk(Chunk { seq, data, last }))
            .await
            .map_err(|_| late())?;
        seq += 1;
        match sent {
            Ok(()) => {}
            // The replica answered early (a refusal): read it below.
            Err(mydht_proto::conn::ConnError::Answered) => break,
            Err(e) => return Err(sh.cluster.rpc().failed(node, e).to_string()),
        }
        if last {
            break;
        }
    }
    let answer = timeout(sh.cluster.rpc().request_timeout(), ex.response()).await;
    let answer = answer.map(|r| r.map_err(|e| sh.cluster.rpc().failed(node, e).to_string()));
    stored_answer(node, answer, sh)
}

/// What `node` holds of `key`, with the value (streaming if large).
pub(crate) async fn fetch_from<S: Store>(
    sh: &Arc<Shared<S>>,
    node: &NodeId,
    key: Bytes,
) -> Result<Fetched, String> {
    if node == sh.cluster.me() {
        return fetch_local(sh, &key).await.map_err(|e| e.to_string());
    }
    let call = async {
        let mut ex = sh
            .cluster
            .rpc()
            .request(node, Request::ReplicaFetch { key })
            .await
            .map_err(|e| e.to_string())?;
        let response = ex
            .response()
            .await
            .map_err(|e| sh.cluster.rpc().failed(node, e).to_string())?;
        Ok::<_, String>((ex, response))
    };
    let (ex, response) = timeout(sh.cluster.rpc().request_timeout(), call)
        .await
        .map_err(|_| {
            format!(
                "{node}: no answer within {:?}",
                sh.cluster.rpc().request_timeout()
            )
        })??;
    match response {
        Response::Entry(None) => Ok(None),
        Response::Entry(Some(ReplicaEntry { version, value })) => {
            let value = match value {
                None => None,
                Some(Payload::Inline(b)) => Some(Val::Bytes(b)),
                Some(Payload::Streamed { len }) => Some(Val::Remote(ex, len)),
            };
            Ok(Some(Found { version, value }))
        }
        Response::Error(e) => Err(format!("{node}: {e}")),
        other => Err(format!("{node}: unexpected answer {other:?}")),
    }
}

/// Copies `holder`'s copy of `key` to `target`, streaming; used to repair a
/// stale replica with a large value. Returns whether the target applied it.
pub(crate) async fn copy_value<S: Store>(
    sh: &Arc<Shared<S>>,
    holder: &NodeId,
    target: &NodeId,
    key: Bytes,
) -> Result<bool, String> {
    let Some(found) = fetch_from(sh, holder, key.clone()).await? else {
        return Ok(false);
    };
    let Some(val) = found.value else {
        return store_on(sh, target, key, found.version, None).await;
    };
    let chunk_size = sh.cfg.limits.chunk_size;
    let (len, mut source) = val.into_source(sh.cfg.max_value_len, chunk_size)?;
    if let Source::Memory(b) = source {
        return store_on(sh, target, key, found.version, Some(b)).await;
    }
    let (tx, rx) = mpsc::channel(2);
    let feed = async move {
        while let Some(b) = source.next(chunk_size).await? {
            if tx.send(Piece::Data(b)).await.is_err() {
                return Ok(());
            }
        }
        let _ = tx.send(Piece::End).await;
        Ok::<(), String>(())
    };
    let (fed, stored) = tokio::join!(
        feed,
        store_stream_on(sh, target, key, found.version, len, rx)
    );
    fed?;
    stored
}
