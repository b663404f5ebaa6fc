//! Replica calls, both directions: serving `ReplicaStore`, `ReplicaFetch`
//! and `ReplicaProbe` from this node's store, and making them to any replica
//! (this node's store directly, another node over its connection).
//!
//! Versions travel unchanged: a replica never restamps. A replica refuses a
//! version stamped too far ahead of its own clock, so that one node's bad
//! clock cannot pin a key forever.

use std::sync::Arc;

use bytes::Bytes;
use mydht_proto::conn::payload_for;
use mydht_proto::{
    Chunk, ErrorReply, Held, MAX_IN_MEMORY_VALUE, Payload, ReplicaEntry, Request, Response, Version,
};
use mydht_ring::NodeId;
use mydht_store::{Lookup, Stamp, Store};
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::{Reply, collect_incoming, internal};
use crate::shared::Shared;

/// What a replica holds of a key: nothing, or a version with its value
/// (`None` for a tombstone).
pub(crate) type Fetched = Option<(Version, Option<Bytes>)>;

/// Serves `ReplicaStore`.
pub(crate) async fn serve_store<S: Store>(
    sh: &Arc<Shared<S>>,
    key: Bytes,
    version: Version,
    value: Option<Payload>,
    body: Option<mpsc::Receiver<Chunk>>,
) -> Reply {
    if let Err(e) = sh.clock.observe(version.timestamp) {
        return Reply::error(ErrorReply::BadRequest {
            reason: e.to_string(),
        });
    }
    let value = match value {
        Some(p) => match collect_incoming(p, body, &sh.cfg.limits).await {
            Ok(b) => Some(b),
            Err(e) => return Reply::error(e),
        },
        None => None,
    };
    match apply(sh, &key, version, value).await {
        Ok(applied) => Reply::Plain(Response::ReplicaStored { applied }),
        Err(e) => Reply::error(e),
    }
}

/// Serves `ReplicaFetch`.
pub(crate) async fn serve_fetch<S: Store>(sh: &Arc<Shared<S>>, key: &[u8]) -> Reply {
    match fetch_local(sh, key).await {
        Ok(None) => Reply::Plain(Response::Entry(None)),
        Ok(Some((version, None))) => Reply::Plain(Response::Entry(Some(ReplicaEntry {
            version,
            value: None,
        }))),
        Ok(Some((version, Some(bytes)))) => {
            let payload = payload_for(&bytes, sh.cfg.limits.chunk_size);
            Reply::WithValue(
                Response::Entry(Some(ReplicaEntry {
                    version,
                    value: Some(payload),
                })),
                bytes,
            )
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

async fn apply<S: Store>(
    sh: &Arc<Shared<S>>,
    key: &[u8],
    version: Version,
    value: Option<Bytes>,
) -> Result<bool, ErrorReply> {
    let outcome = match value {
        Some(v) => sh.store.put(key, version, v).await,
        None => sh.store.delete(key, version).await,
    };
    outcome.map(|o| o.applied()).map_err(|e| internal(&e))
}

async fn fetch_local<S: Store>(sh: &Arc<Shared<S>>, key: &[u8]) -> Result<Fetched, ErrorReply> {
    match sh.store.get(key).await.map_err(|e| internal(&e))? {
        Lookup::Absent => Ok(None),
        Lookup::Tombstone(v) => Ok(Some((v, None))),
        Lookup::Value(stored) => {
            let version = stored.version().clone();
            let bytes = stored
                .into_bytes(MAX_IN_MEMORY_VALUE)
                .await
                .map_err(|e| internal(&e))?;
            Ok(Some((version, Some(bytes))))
        }
    }
}

/// Stores a version (value or tombstone) on `node`; `Ok(applied)` once it
/// is there (or something newer is).
pub(crate) async fn store_on<S: Store>(
    sh: &Arc<Shared<S>>,
    node: &NodeId,
    key: Bytes,
    version: Version,
    value: Option<Bytes>,
) -> Result<bool, String> {
    if node == sh.members.me() {
        return apply(sh, &key, version, value)
            .await
            .map_err(|e| e.to_string());
    }
    let chunk_size = sh.cfg.limits.chunk_size;
    let payload = value.as_ref().map(|v| payload_for(v, chunk_size));
    let request = Request::ReplicaStore {
        key,
        version,
        value: payload,
    };
    let call = async {
        let mut ex = sh.peers.request(node, request).await?;
        if let Some(v) = &value {
            ex.send_value(v, chunk_size)
                .await
                .map_err(|e| sh.peers.failed(node, &e))?;
        }
        ex.response().await.map_err(|e| sh.peers.failed(node, &e))
    };
    match timeout(sh.peers.request_timeout(), call).await {
        Ok(Ok(Response::ReplicaStored { applied })) => Ok(applied),
        Ok(Ok(Response::Error(e))) => Err(format!("{node}: {e}")),
        Ok(Ok(other)) => Err(format!("{node}: unexpected answer {other:?}")),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!(
            "{node}: no answer within {:?}",
            sh.peers.request_timeout()
        )),
    }
}

/// What `node` holds of `key`, with the value.
pub(crate) async fn fetch_from<S: Store>(
    sh: &Arc<Shared<S>>,
    node: &NodeId,
    key: Bytes,
) -> Result<Fetched, String> {
    if node == sh.members.me() {
        return fetch_local(sh, &key).await.map_err(|e| e.to_string());
    }
    let chunk_size = sh.cfg.limits.chunk_size;
    let call = async {
        let mut ex = sh
            .peers
            .request(node, Request::ReplicaFetch { key })
            .await?;
        match ex.response().await.map_err(|e| sh.peers.failed(node, &e))? {
            Response::Entry(None) => Ok(None),
            Response::Entry(Some(ReplicaEntry {
                version,
                value: None,
            })) => Ok(Some((version, None))),
            Response::Entry(Some(ReplicaEntry {
                version,
                value: Some(payload),
            })) => {
                let bytes = ex
                    .collect_value(payload, MAX_IN_MEMORY_VALUE, chunk_size)
                    .await
                    .map_err(|e| sh.peers.failed(node, &e))?;
                Ok(Some((version, Some(bytes))))
            }
            Response::Error(e) => Err(format!("{node}: {e}")),
            other => Err(format!("{node}: unexpected answer {other:?}")),
        }
    };
    match timeout(sh.peers.request_timeout(), call).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "{node}: no answer within {:?}",
            sh.peers.request_timeout()
        )),
    }
}
