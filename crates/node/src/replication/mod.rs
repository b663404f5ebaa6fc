//! The replication client: this node asking any replica of a key, itself
//! included, to store, stream, fetch, probe, digest or copy a version.
//!
//! A replica is named by its node; this node's own store is served
//! directly and every other through one RPC call (or a streamed exchange
//! for values over a chunk). Versions travel unchanged: a replica never
//! restamps. Every step has a deadline; a replica that takes no chunk for
//! it is cut off and its partial value is never made visible. The serving
//! side of these calls is `handlers::replica`.

pub(crate) mod hints;
pub(crate) mod writes;

use std::sync::Arc;

use bytes::Bytes;
use mydht_cluster::{Cluster, Entries, Leaves, Parts, Recalled, RpcError, Stored, decode};
use mydht_proto::conn::payload_for;
use mydht_proto::{Held, LeafAsk, Payload, ReplicaEntry, Request, Version, WriteId};
use mydht_ring::NodeId;
use mydht_store::{Cover, Lookup, Outcome, Store, StoreError};
use thiserror::Error;
use tokio::time::timeout;

use crate::value::ValueStream;
use crate::value::sink::{ToPeerError, ToStoreError, to_peer, to_store};
use writes::WriteLog;

/// Why a replica call failed.
#[derive(Debug, Error)]
pub(crate) enum ReplicaError {
    /// The call to another member failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// This node's own store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The value broke off or broke its rules.
    #[error(transparent)]
    Value(#[from] crate::value::ValueError),
    /// The replica took no chunk within the deadline and was cut off.
    #[error("{node}: no progress within {after:?}")]
    Stalled {
        /// The replica.
        node: NodeId,
        /// The deadline.
        after: std::time::Duration,
    },
}

impl From<ToStoreError> for ReplicaError {
    fn from(e: ToStoreError) -> Self {
        match e {
            ToStoreError::Value(v) => Self::Value(v),
            ToStoreError::Store(s) => Self::Store(s),
        }
    }
}

/// What a replica holds of a key: a version, and its value (`None` for a
/// tombstone).
pub(crate) struct Found {
    pub version: Version,
    pub value: Option<ValueStream>,
}

/// Replica calls from this node. Cheap to clone.
pub(crate) struct Replicas<S> {
    store: Arc<S>,
    cluster: Cluster,
    chunk: usize,
    max_value_len: u64,
    /// The client writes this node applied as a replica.
    writes: Arc<WriteLog>,
}

impl<S> Clone for Replicas<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            cluster: self.cluster.clone(),
            chunk: self.chunk,
            max_value_len: self.max_value_len,
            writes: self.writes.clone(),
        }
    }
}

impl<S: Store> Replicas<S> {
    pub fn new(store: Arc<S>, cluster: Cluster, chunk: usize, max_value_len: u64) -> Self {
        Self {
            store,
            cluster,
            chunk,
            max_value_len,
            writes: Arc::default(),
        }
    }

    /// Remembers that this node, as a replica, holds `version` of `key`
    /// for the client write `id` (applied now, or held already).
    pub fn note_write(&self, id: Option<WriteId>, key: &[u8], version: &Version, stored: &Stored) {
        if let Some(id) = id
            && (stored.applied || stored.held.as_ref() == Some(version))
        {
            self.writes.remember(id, key, version);
        }
    }

    /// The version `node` applied of `key` for the client write `id`, if
    /// it remembers one.
    pub async fn recall(
        &self,
        node: &NodeId,
        id: WriteId,
        key: Bytes,
    ) -> Result<Option<Version>, ReplicaError> {
        if self.is_me(node) {
            return Ok(self.writes.recall(id, &key));
        }
        let request = Request::ReplicaRecall { key, write_id: id };
        let recalled: Recalled = self.cluster.rpc().call(node, request).await?;
        Ok(recalled.0)
    }

    /// What this node remembers of the client write `id` on `key`.
    pub fn recall_local(&self, id: WriteId, key: &[u8]) -> Option<Version> {
        self.writes.recall(id, key)
    }

    fn is_me(&self, node: &NodeId) -> bool {
        node == self.cluster.me()
    }

    /// What this node's store holds of `key`; a value of at most a chunk
    /// comes whole, a larger one as a stream from the store.
    pub async fn fetch_local(&self, key: &[u8]) -> Result<Option<Found>, StoreError> {
        Ok(match self.store.get(key).await? {
            Lookup::Absent => None,
            Lookup::Tombstone(version) => Some(Found {
                version,
                value: None,
            }),
            Lookup::Value(stored) => {
                let version = stored.version().clone();
                let chunk = self.chunk as u64;
                let value = if stored.len() <= chunk {
                    ValueStream::memory(stored.into_bytes(chunk).await?, self.chunk)
                } else {
                    ValueStream::stored(stored, self.chunk)
                };
                Some(Found {
                    version,
                    value: Some(value),
                })
            }
        })
    }

    /// What `node` holds of `key`, with the value (streaming if large).
    pub async fn fetch(&self, node: &NodeId, key: Bytes) -> Result<Option<Found>, ReplicaError> {
        if self.is_me(node) {
            return Ok(self.fetch_local(&key).await?);
        }
        let rpc = self.cluster.rpc();
        let deadline = rpc.request_timeout();
        let call = async {
            let mut ex = rpc.request(node, Request::ReplicaFetch { key }).await?;
            let response = ex.response().await.map_err(|e| rpc.failed(node, e))?;
            Ok::<_, RpcError>((ex, response))
        };
        let (ex, response) = timeout(deadline, call)
            .await
            .map_err(|_| rpc.timed_out(node, deadline))??;
        rpc.answered(node);
        let Some(ReplicaEntry { version, value }) = decode::<Option<ReplicaEntry>>(node, response)?
        else {
            return Ok(None);
        };
        let value = match value {
            None => None,
            Some(Payload::Inline(b)) => Some(ValueStream::memory(b, self.chunk)),
            Some(Payload::Streamed { len }) => Some(ValueStream::peer(
                rpc.clone(),
                node.clone(),
                ex,
                len,
                self.max_value_len,
                self.chunk,
            )?),
        };
        Ok(Some(Found { version, value }))
    }

    /// What this node's store answered, as a replica answers: when the
    /// write was not applied, the version it holds instead.
    async fn stored_locally(&self, key: &[u8], outcome: Outcome) -> Result<Stored, StoreError> {
        if outcome.applied() {
            return Ok(Stored {
                applied: true,
                held: None,
            });
        }
        // Read after the write: a version at least as new as the one that
        // superseded it.
        let held = self.store.version_of(key).await?;
        Ok(Stored {
            applied: false,
            held: held.map(|s| s.version().clone()),
        })
    }

    /// Stores a small value, or a tombstone (`None`), on `node`; answers
    /// once it is there, or what newer (or equal) version was.
    pub async fn store(
        &self,
        node: &NodeId,
        key: Bytes,
        version: Version,
        value: Option<Bytes>,
        write_id: Option<WriteId>,
    ) -> Result<Stored, ReplicaError> {
        if self.is_me(node) {
            let outcome = match value {
                Some(v) => self.store.put(&key, version.clone(), v).await?,
                None => self.store.delete(&key, version.clone()).await?,
            };
            let stored = self.stored_locally(&key, outcome).await?;
            self.note_write(write_id, &key, &version, &stored);
            return Ok(stored);
        }
        let rpc = self.cluster.rpc();
        let deadline = rpc.request_timeout();
        let payload = value.as_ref().map(|v| payload_for(v, self.chunk));
        let request = Request::ReplicaStore {
            key,
            version,
            value: payload,
            write_id,
        };
        let call = async {
            let mut ex = rpc.request(node, request).await?;
            if let Some(v) = &value {
                ex.send_value(v, self.chunk)
                    .await
                    .map_err(|e| rpc.failed(node, e))?;
            }
            ex.response().await.map_err(|e| rpc.failed(node, e))
        };
        let response = timeout(deadline, call)
            .await
            .map_err(|_| rpc.timed_out(node, deadline))??;
        rpc.answered(node);
        Ok(decode::<Stored>(node, response)?)
    }

    /// Streams `value` to `node` under `version`. Each chunk waits at most
    /// the request deadline for the replica; a replica that falls further
    /// behind is cut off.
    pub async fn store_stream(
        &self,
        node: &NodeId,
        key: Bytes,
        version: Version,
        value: ValueStream,
        write_id: Option<WriteId>,
    ) -> Result<Stored, ReplicaError> {
        if self.is_me(node) {
            let outcome = to_store(&*self.store, &key, version.clone(), value).await?;
            let stored = self.stored_locally(&key, outcome).await?;
            self.note_write(write_id, &key, &version, &stored);
            return Ok(stored);
        }
        let rpc = self.cluster.rpc();
        let deadline = rpc.request_timeout();
        let request = Request::ReplicaStore {
            key,
            version,
            value: Some(Payload::Streamed { len: value.len() }),
            write_id,
        };
        // A replica that takes nothing for the deadline counts against it,
        // like one that does not answer.
        let stalled = || {
            rpc.timed_out(node, deadline);
            ReplicaError::Stalled {
                node: node.clone(),
                after: deadline,
            }
        };
        let mut ex = timeout(deadline, rpc.request(node, request))
            .await
            .map_err(|_| stalled())??;
        match to_peer(&mut ex, value, deadline).await {
            Ok(()) => {}
            Err(ToPeerError::Value(e)) => return Err(e.into()),
            Err(ToPeerError::Stalled(_)) => return Err(stalled()),
            Err(ToPeerError::Conn(e)) => return Err(rpc.failed(node, e).into()),
        }
        let response = timeout(deadline, ex.response())
            .await
            .map_err(|_| rpc.timed_out(node, deadline))?
            .map_err(|e| rpc.failed(node, e))?;
        rpc.answered(node);
        Ok(decode::<Stored>(node, response)?)
    }

    /// The version `node` holds of `key` (value or tombstone), if any.
    pub async fn probe(&self, node: &NodeId, key: Bytes) -> Result<Option<Version>, ReplicaError> {
        if self.is_me(node) {
            let held = self.store.version_of(&key).await?;
            return Ok(held.map(|s| s.version().clone()));
        }
        let held: Held = self
            .cluster
            .rpc()
            .call(node, Request::ReplicaProbe { key })
            .await?;
        Ok(match held {
            Held::Absent => None,
            Held::Value(v) | Held::Tombstone(v) => Some(v),
        })
    }

    /// `node`'s part digests, clipped to `cover`.
    pub async fn parts(&self, node: &NodeId, cover: &Cover) -> Result<Parts, ReplicaError> {
        let request = Request::ReplicaParts {
            cover: cover.intervals().to_vec(),
        };
        Ok(self.cluster.rpc().call(node, request).await?)
    }

    /// `node`'s leaf digests of `parts`, clipped to `cover`.
    pub async fn leaves(
        &self,
        node: &NodeId,
        cover: &Cover,
        parts: Vec<u8>,
    ) -> Result<Leaves, ReplicaError> {
        let request = Request::ReplicaLeaves {
            cover: cover.intervals().to_vec(),
            parts,
        };
        Ok(self.cluster.rpc().call(node, request).await?)
    }

    /// The entries `node` lists for `asks`, clipped to `cover`.
    pub async fn entries(
        &self,
        node: &NodeId,
        cover: &Cover,
        asks: Vec<LeafAsk>,
    ) -> Result<Entries, ReplicaError> {
        let request = Request::ReplicaEntries {
            cover: cover.intervals().to_vec(),
            asks,
        };
        Ok(self.cluster.rpc().call(node, request).await?)
    }

    /// Copies `holder`'s version of `key` to `target` (streaming a large
    /// value through this node); returns whether the target applied it. A
    /// key the holder no longer has sends nothing.
    pub async fn copy(
        &self,
        holder: &NodeId,
        target: &NodeId,
        key: Bytes,
    ) -> Result<bool, ReplicaError> {
        let Some(found) = self.fetch(holder, key.clone()).await? else {
            return Ok(false);
        };
        let stored = match found.value {
            None => self.store(target, key, found.version, None, None).await,
            Some(v) => match v.in_memory() {
                Some(b) => {
                    let b = b.clone();
                    self.store(target, key, found.version, Some(b), None).await
                }
                None => Box::pin(self.store_stream(target, key, found.version, v, None)).await,
            },
        };
        Ok(stored?.applied)
    }
}
