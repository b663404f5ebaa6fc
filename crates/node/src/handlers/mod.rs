//! One module per kind of request: parse, apply, reply. [`handle`] routes a
//! request to its handler; each returns a [`Reply`] that the session turns
//! into frames.

mod admin;
mod balance;
mod get;
mod purge;
mod remove;
pub(crate) mod replica;
mod state;
mod write;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use mydht_proto::{
    Chunk, ChunkAssembler, ErrorReply, Limited, Limits, MAX_IN_MEMORY_VALUE, Payload, Request,
    Response,
};
use mydht_store::{Store, StoreError};
use tokio::sync::mpsc;

use crate::shared::Shared;

/// A handler's answer.
pub(crate) enum Reply {
    /// One response frame.
    Plain(Response),
    /// A response announcing a value, then the value's chunks when the
    /// announcement is `Payload::Streamed`.
    WithValue(Response, Bytes),
}

impl Reply {
    pub fn error(e: ErrorReply) -> Self {
        Self::Plain(Response::Error(e))
    }
}

/// Whether a request's value follows it as chunks.
pub(crate) fn has_body(request: &Request) -> bool {
    matches!(
        request,
        Request::Put(mydht_proto::Put {
            value: Payload::Streamed { .. },
            ..
        }) | Request::ReplicaStore {
            value: Some(Payload::Streamed { .. }),
            ..
        }
    )
}

/// Handles one request. `body` carries the chunks of a streamed value.
pub(crate) async fn handle<S: Store>(
    sh: &Arc<Shared<S>>,
    request: Request,
    body: Option<mpsc::Receiver<Chunk>>,
) -> Reply {
    if let Some(key) = key_of(&request)
        && let Err(e) = sh.cfg.limits.check_key(key)
    {
        return Reply::error(e);
    }
    match request {
        Request::Put(put) => write::put(sh, put, body).await,
        Request::Del(del) => write::del(sh, del).await,
        Request::Get(get) => get::get(sh, get).await,
        Request::HasKey { key } => admin::haskey(sh, &key).await,
        Request::Whereis { key } => admin::whereis(sh, &key),
        Request::Members => Reply::Plain(Response::Members(sh.members.snapshot())),
        Request::Join { node } => admin::join(sh, node).await,
        Request::AddNode { node, epoch } => admin::add_node(sh, node, epoch).await,
        Request::ReplicaStore {
            key,
            version,
            value,
        } => replica::serve_store(sh, key, version, value, body).await,
        Request::ReplicaFetch { key } => replica::serve_fetch(sh, &key).await,
        Request::ReplicaProbe { key } => replica::serve_probe(sh, &key).await,
        Request::Purge => purge::purge(sh).await,
        Request::Balance { forwarded } => balance::balance(sh, forwarded).await,
        Request::Remove { node, forwarded } => remove::remove(sh, node, forwarded).await,
        Request::Leave { node } => state::leave(sh, node).await,
        Request::SetState { node, state, epoch } => state::set_state(sh, node, state, epoch).await,
        Request::Handoff { node } => state::handoff(sh, node).await,
    }
}

fn key_of(request: &Request) -> Option<&[u8]> {
    match request {
        Request::Put(p) => Some(&p.key),
        Request::Get(g) => Some(&g.key),
        Request::Del(d) => Some(&d.key),
        Request::HasKey { key }
        | Request::Whereis { key }
        | Request::ReplicaStore { key, .. }
        | Request::ReplicaFetch { key }
        | Request::ReplicaProbe { key } => Some(key),
        _ => None,
    }
}

/// The value a request carries: inline, or gathered from its chunks, up to
/// [`MAX_IN_MEMORY_VALUE`].
pub(crate) async fn collect_incoming(
    payload: Payload,
    body: Option<mpsc::Receiver<Chunk>>,
    limits: &Limits,
) -> Result<Bytes, ErrorReply> {
    match payload {
        Payload::Inline(b) => limits.check_inline_value(&b).map(|()| b),
        Payload::Streamed { len } => {
            let too_large = |size: u64| ErrorReply::TooLarge {
                what: Limited::Value,
                size,
                max: MAX_IN_MEMORY_VALUE,
            };
            let bad = |e: &dyn std::fmt::Display| ErrorReply::BadRequest {
                reason: e.to_string(),
            };
            let mut check = ChunkAssembler::new(len, MAX_IN_MEMORY_VALUE, limits.chunk_size)
                .map_err(|_| too_large(len.unwrap_or(0)))?;
            let mut body = body.ok_or_else(|| bad(&"streamed value without a body"))?;
            let capacity = usize::try_from(len.unwrap_or(0)).unwrap_or(0);
            let mut buf = BytesMut::with_capacity(capacity);
            while !check.is_done() {
                let chunk = body
                    .recv()
                    .await
                    .ok_or_else(|| bad(&"the value stream ended early"))?;
                check.push(&chunk).map_err(|e| match e {
                    mydht_proto::StreamError::TooLong { received, .. } => too_large(received),
                    other => bad(&other),
                })?;
                buf.extend_from_slice(&chunk.data);
            }
            Ok(buf.freeze())
        }
    }
}

/// A store failure as it travels: nothing was acknowledged.
pub(crate) fn internal(e: &StoreError) -> ErrorReply {
    ErrorReply::Internal {
        reason: e.to_string(),
    }
}
