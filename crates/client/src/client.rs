//! The client: connections, failover and the calls themselves.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use mydht_proto::conn::{Connection, payload_for};
use mydht_proto::{
    Del, ErrorReply, Get, Hello, Members, Peer, Put, Request, Response, Timestamp, Version, WriteId,
};
use mydht_ring::NodeId;
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::error::Attempt;
use crate::{ClientError, ClientOptions, ReadOptions, WriteOptions};

/// A value read from the cluster, with the version it was written with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// The bytes.
    pub bytes: Bytes,
    /// The version.
    pub version: Version,
}

/// A handle on a cluster. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) opts: ClientOptions,
    /// Known nodes, the ones given first.
    pub(crate) nodes: Mutex<Vec<String>>,
    conns: Mutex<HashMap<String, Connection>>,
    id: u64,
    seq: AtomicU64,
    seen: Mutex<Option<Version>>,
    learned: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a single read or write of plain data.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// 64 random bits from the standard library's per-process random keys.
fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

impl Client {
    /// A client of the cluster these nodes (`host:port`) belong to, with
    /// default options. Connects lazily, on the first call.
    pub fn new<I, S>(nodes: I) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_options(nodes, ClientOptions::default())
    }

    /// As [`new`](Self::new), with options.
    pub fn with_options<I, S>(nodes: I, opts: ClientOptions) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let nodes: Vec<String> = nodes.into_iter().map(Into::into).collect();
        if nodes.is_empty() {
            return Err(ClientError::Invalid(ErrorReply::BadRequest {
                reason: "no node given".into(),
            }));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                opts,
                nodes: Mutex::new(nodes),
                conns: Mutex::new(HashMap::new()),
                id: random_u64(),
                seq: AtomicU64::new(1),
                seen: Mutex::new(None),
                learned: AtomicBool::new(false),
            }),
        })
    }

    /// Stores `value` under `key` once a write quorum acknowledged it;
    /// returns the version the coordinator stamped.
    pub async fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
    ) -> Result<Version, ClientError> {
        self.put_with(key, value, WriteOptions::default()).await
    }

    /// As [`put`](Self::put), with a write quorum of your choosing.
    pub async fn put_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
        opts: WriteOptions,
    ) -> Result<Version, ClientError> {
        let key = self.key(key.as_ref())?;
        let value: Bytes = value.into();
        let write_id = self.next_write_id();
        let chunk_size = self.inner.opts.limits.chunk_size;
        let tries = AtomicU32::new(0);
        let response = self
            .failover(false, |conn| {
                let (key, value) = (key.clone(), value.clone());
                let seen = self.seen();
                // After the first attempt, the write may have been applied
                // through another node: the coordinator asks first.
                let retry = tries.fetch_add(1, Ordering::Relaxed) > 0;
                async move {
                    let put = Put {
                        key,
                        value: payload_for(&value, chunk_size),
                        write_id,
                        seen,
                        w: opts.w,
                        retry,
                    };
                    let mut ex = conn.request(Request::Put(put)).await?;
                    ex.send_value(&value, chunk_size).await?;
                    Ok(ex.response().await?)
                }
            })
            .await?;
        match response {
            Response::Stored { version } => Ok(self.saw(version)),
            other => Err(self.unexpected(other)),
        }
    }

    /// The key's newest value, or `None` if it is absent or deleted.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>, ClientError> {
        self.get_with(key, ReadOptions::default()).await
    }

    /// As [`get`](Self::get), with a read quorum of your choosing.
    pub async fn get_with(
        &self,
        key: impl AsRef<[u8]>,
        opts: ReadOptions,
    ) -> Result<Option<Value>, ClientError> {
        let key = self.key(key.as_ref())?;
        let chunk_size = self.inner.opts.limits.chunk_size;
        let max_in_memory = self.inner.opts.max_in_memory;
        let result = self
            .failover(false, |conn| {
                let key = key.clone();
                async move {
                    let mut ex = conn.request(Request::Get(Get { key, r: opts.r })).await?;
                    match ex.response().await? {
                        Response::Value { version, value } => {
                            let bytes = ex.collect_value(value, max_in_memory, chunk_size).await?;
                            Ok(Some(Value { bytes, version }))
                        }
                        Response::Error(ErrorReply::NotFound) => Ok(None),
                        other => Err(Attempt::Final(self.unexpected(other))),
                    }
                }
            })
            .await?;
        if let Some(v) = &result {
            self.saw(v.version.clone());
        }
        Ok(result)
    }

    /// Deletes the key (writes a tombstone) once a write quorum acknowledged
    /// it. Deleting a missing key succeeds: deletes are idempotent.
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> Result<Version, ClientError> {
        self.delete_with(key, WriteOptions::default()).await
    }

    /// As [`delete`](Self::delete), with a write quorum of your choosing.
    pub async fn delete_with(
        &self,
        key: impl AsRef<[u8]>,
        opts: WriteOptions,
    ) -> Result<Version, ClientError> {
        let key = self.key(key.as_ref())?;
        let write_id = self.next_write_id();
        let tries = AtomicU32::new(0);
        let response = self
            .failover(false, |conn| {
                let del = Del {
                    key: key.clone(),
                    write_id,
                    seen: self.seen(),
                    w: opts.w,
                    retry: tries.fetch_add(1, Ordering::Relaxed) > 0,
                };
                async move { Ok(conn.call(Request::Del(del)).await?) }
            })
            .await?;
        match response {
            Response::Deleted { version } => Ok(self.saw(version)),
            other => Err(self.unexpected(other)),
        }
    }

    /// The timestamp of the first node's own copy of the key (`None` when it
    /// holds nothing or a tombstone). Never asked of another node.
    pub async fn haskey(&self, key: impl AsRef<[u8]>) -> Result<Option<Timestamp>, ClientError> {
        let key = self.key(key.as_ref())?;
        let response = self
            .failover(true, |conn| {
                let key = key.clone();
                async move { Ok(conn.call(Request::HasKey { key }).await?) }
            })
            .await?;
        match response {
            Response::HasKey { timestamp } => Ok(timestamp),
            other => Err(self.unexpected(other)),
        }
    }

    /// The key's preference list: the nodes it should be stored on.
    pub async fn whereis(&self, key: impl AsRef<[u8]>) -> Result<Vec<NodeId>, ClientError> {
        let key = self.key(key.as_ref())?;
        let response = self
            .failover(false, |conn| {
                let key = key.clone();
                async move { Ok(conn.call(Request::Whereis { key }).await?) }
            })
            .await?;
        match response {
            Response::Whereis { nodes } => Ok(nodes),
            other => Err(self.unexpected(other)),
        }
    }

    /// The first known node.
    pub(crate) fn primary(&self) -> String {
        lock(&self.inner.nodes).first().cloned().unwrap_or_default()
    }

    /// The ring's members as a node sees them.
    pub async fn members(&self) -> Result<Members, ClientError> {
        let response = self
            .failover(false, |conn| async move {
                Ok(conn.call(Request::Members).await?)
            })
            .await?;
        match response {
            Response::Members(m) => {
                self.learn(&m);
                Ok(m)
            }
            other => Err(self.unexpected(other)),
        }
    }

    pub(crate) fn key(&self, key: &[u8]) -> Result<Bytes, ClientError> {
        self.inner
            .opts
            .limits
            .check_key(key)
            .map_err(ClientError::Invalid)?;
        Ok(Bytes::copy_from_slice(key))
    }

    pub(crate) fn next_write_id(&self) -> WriteId {
        WriteId {
            client: self.inner.id,
            seq: self.inner.seq.fetch_add(1, Ordering::Relaxed),
        }
    }

    pub(crate) fn seen(&self) -> Option<Version> {
        lock(&self.inner.seen).clone()
    }

    pub(crate) fn saw(&self, version: Version) -> Version {
        let mut seen = lock(&self.inner.seen);
        if seen.as_ref().is_none_or(|s| *s < version) {
            *seen = Some(version.clone());
        }
        version
    }

    pub(crate) fn unexpected(&self, response: Response) -> ClientError {
        match response {
            Response::Error(e) => ClientError::Remote(e),
            other => ClientError::Unexpected {
                node: lock(&self.inner.nodes).first().cloned().unwrap_or_default(),
                what: format!("{other:?}"),
            },
        }
    }

    fn learn(&self, members: &Members) {
        let mut nodes = lock(&self.inner.nodes);
        for m in &members.members {
            let name = m.id().as_str();
            if m.state() != mydht_ring::MemberState::Removed && !nodes.iter().any(|n| n == name) {
                nodes.push(name.to_string());
            }
        }
    }

    /// Runs `call` on the first known node, moving to the next on transport
    /// failures, for at most `attempts` attempts. With `pinned`, every
    /// attempt goes to the first node.
    pub(crate) async fn failover<T, F, Fut>(&self, pinned: bool, call: F) -> Result<T, ClientError>
    where
        F: Fn(Connection) -> Fut,
        Fut: Future<Output = Result<T, Attempt>>,
    {
        let deadline = self.inner.opts.request_timeout;
        self.failover_within(pinned, Some(deadline), call).await
    }

    /// As [`failover`](Self::failover), with `deadline` on each whole
    /// attempt, or none: streamed transfers take as long as they take and
    /// bound each step instead.
    pub(crate) async fn failover_within<T, F, Fut>(
        &self,
        pinned: bool,
        deadline: Option<Duration>,
        call: F,
    ) -> Result<T, ClientError>
    where
        F: Fn(Connection) -> Fut,
        Fut: Future<Output = Result<T, Attempt>>,
    {
        let attempts = self.inner.opts.attempts.max(1);
        let mut tried = Vec::new();
        let mut last = String::new();
        for attempt in 0..attempts {
            let node = {
                let nodes = lock(&self.inner.nodes);
                let i = if pinned { 0 } else { attempt % nodes.len() };
                nodes[i].clone()
            };
            let outcome = match self.connection(&node).await {
                Ok(conn) => match deadline {
                    None => call(conn).await,
                    Some(d) => match timeout(d, call(conn)).await {
                        Ok(result) => result,
                        Err(_) => Err(Attempt::Transport(format!("no answer within {d:?}"))),
                    },
                },
                Err(e) => Err(Attempt::Transport(e)),
            };
            match outcome {
                Ok(v) => return Ok(v),
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Transport(why)) => {
                    tracing::debug!(node = %node, attempt, %why, "attempt failed");
                    lock(&self.inner.conns).remove(&node);
                    if !tried.contains(&node) {
                        tried.push(node);
                    }
                    last = why;
                }
            }
        }
        Err(ClientError::Unreachable { nodes: tried, last })
    }

    pub(crate) async fn connection(&self, node: &str) -> Result<Connection, String> {
        if let Some(c) = lock(&self.inner.conns).get(node)
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let opts = &self.inner.opts;
        let conn = timeout(opts.connect_timeout, async {
            let stream = TcpStream::connect(node).await.map_err(|e| e.to_string())?;
            // Small requests must not wait for Nagle's algorithm.
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let (r, w) = stream.into_split();
            let hello = Hello {
                peer: Peer::Client,
                nonce: random_u64()
                    .to_le_bytes()
                    .repeat(2)
                    .try_into()
                    .unwrap_or([0; 16]),
            };
            Connection::open(r, w, hello, opts.limits)
                .await
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|_| format!("no connection within {:?}", opts.connect_timeout))??;
        lock(&self.inner.conns).insert(node.to_string(), conn.clone());
        if opts.learn_members && !self.inner.learned.swap(true, Ordering::Relaxed) {
            let client = self.clone();
            let conn = conn.clone();
            tokio::spawn(async move {
                if let Ok(Response::Members(m)) = conn.call(Request::Members).await {
                    client.learn(&m);
                }
            });
        }
        Ok(conn)
    }
}
