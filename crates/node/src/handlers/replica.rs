//! The serving side of replica calls from other nodes: `ReplicaStore`,
//! `ReplicaFetch`, `ReplicaProbe` and `ReplicaDigest`, answered from this
//! node's store. (The calling side is `replication`.)
//!
//! Versions travel unchanged: a replica never restamps. A replica refuses a
//! version stamped too far ahead of the members' clocks, so that one
//! node's bad clock cannot pin a key forever; a write it does not apply is
//! answered with the version it holds, so that the coordinator can stamp
//! above it.

use bytes::Bytes;
use mydht_cluster::Stored;
use mydht_proto::{ErrorReply, Held, Payload, ReplicaEntry, Response, Version, WriteId};
use mydht_ring::{Position, TokenRange};
use mydht_store::{Stamp, Store};

use super::{Reply, failed};
use crate::node::Node;
use crate::replication::Found;
use crate::value::sink::{ToStoreError, to_store};
use crate::value::{BodyIn, ValueStream};

/// Serves `ReplicaStore`.
pub(crate) async fn serve_store<S: Store>(
    node: &Node<S>,
    key: Bytes,
    version: Version,
    value: Option<Payload>,
    write_id: Option<WriteId>,
    body: Option<BodyIn>,
) -> Reply {
    // A node whose clock runs behind the others' counts the skew from
    // their present, so it still takes their writes; a version far ahead
    // of the members' clocks is refused either way.
    let behind = node
        .cluster
        .clock_behind_ms()
        .map_or(0, |b| u64::try_from(b).unwrap_or(0));
    if let Err(e) = node.clock.observe_behind(version.timestamp, behind) {
        return Reply::error(ErrorReply::BadRequest {
            reason: e.to_string(),
        });
    }
    let outcome = match value {
        None => node
            .store
            .delete(&key, version.clone())
            .await
            .map_err(ToStoreError::from),
        Some(Payload::Inline(b)) => {
            if let Err(e) = node.cfg.limits.check_inline_value(&b) {
                return Reply::error(e);
            }
            node.store
                .put(&key, version.clone(), b)
                .await
                .map_err(ToStoreError::from)
        }
        Some(Payload::Streamed { len }) => {
            let Some(body) = body else {
                return Reply::error(ErrorReply::BadRequest {
                    reason: "streamed value without a body".into(),
                });
            };
            match ValueStream::body(
                body,
                len,
                node.cfg.max_value_len,
                node.cfg.limits.chunk_size,
                node.cfg.request_timeout,
            ) {
                Ok(value) => to_store(&*node.store, &key, version.clone(), value).await,
                Err(e) => Err(ToStoreError::Value(e)),
            }
        }
    };
    // Not applied: say what is held, so that a coordinator whose version
    // lost to a later-stamped one can stamp above it.
    let answer = match outcome {
        Ok(o) if o.applied() => Ok((true, None)),
        Ok(_) => match node.store.version_of(&key).await {
            Ok(held) => Ok((false, held.map(|s| s.version().clone()))),
            Err(e) => Err(ToStoreError::Store(e)),
        },
        Err(e) => Err(e),
    };
    match answer {
        Ok((applied, held)) => {
            let stored = Stored { applied, held };
            node.replicas.note_write(write_id, &key, &version, &stored);
            Reply::Plain(Response::ReplicaStored {
                applied: stored.applied,
                held: stored.held,
            })
        }
        Err(ToStoreError::Store(e)) => Reply::error(failed(&e)),
        Err(ToStoreError::Value(e)) => Reply::error(crate::coord::CoordError::Value(e).into()),
    }
}

/// Serves `ReplicaFetch`.
pub(crate) async fn serve_fetch<S: Store>(node: &Node<S>, key: &[u8]) -> Reply {
    match node.replicas.fetch_local(key).await {
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
            value: Some(value),
        })) => match value.in_memory() {
            Some(b) => Reply::Plain(Response::Entry(Some(ReplicaEntry {
                version,
                value: Some(Payload::Inline(b.clone())),
            }))),
            None => Reply::Stream(
                Response::Entry(Some(ReplicaEntry {
                    version,
                    value: Some(Payload::Streamed { len: value.len() }),
                })),
                value,
            ),
        },
        Err(e) => Reply::error(failed(&e)),
    }
}

/// Serves `ReplicaProbe`: metadata only.
pub(crate) async fn serve_probe<S: Store>(node: &Node<S>, key: &[u8]) -> Reply {
    match node.store.version_of(key).await {
        Ok(None) => Reply::Plain(Response::Held(Held::Absent)),
        Ok(Some(Stamp::Value(v))) => Reply::Plain(Response::Held(Held::Value(v))),
        Ok(Some(Stamp::Tombstone(v))) => Reply::Plain(Response::Held(Held::Tombstone(v))),
        Err(e) => Reply::error(failed(&e)),
    }
}

/// Serves `ReplicaDigest`: this node's digest of a range.
pub(crate) async fn serve_digest<S: Store>(node: &Node<S>, start: u64, end: u64) -> Reply {
    let range = TokenRange::new(Position(start), Position(end));
    match node.store.digest(range).await {
        Ok(d) => Reply::Plain(Response::Digest {
            count: d.count,
            hash: d.hash,
        }),
        Err(e) => Reply::error(failed(&e)),
    }
}
