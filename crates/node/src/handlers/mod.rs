//! One module per kind of request: parse, apply, reply. [`handle`] routes a
//! request to its handler; each returns a [`Reply`] that the session turns
//! into frames.

mod admin;
pub(crate) mod balance;
mod kv;
mod purge;
mod remove;
pub(crate) mod replica;
mod state;

use std::sync::Arc;

use mydht_proto::{ErrorReply, Request, Response};
use mydht_store::{Store, StoreError};

use crate::shared::Shared;
use crate::value::{BodyIn, ValueStream};

/// A handler's answer.
pub(crate) enum Reply {
    /// One response frame.
    Plain(Response),
    /// A response announcing a streamed value, then the value's chunks.
    Stream(Response, ValueStream),
}

impl Reply {
    pub fn error(e: ErrorReply) -> Self {
        Self::Plain(Response::Error(e))
    }
}

/// Handles one request. `body` carries the chunks of a streamed value.
pub(crate) async fn handle<S: Store>(
    sh: &Arc<Shared<S>>,
    request: Request,
    body: Option<BodyIn>,
) -> Reply {
    if let Some(key) = request.key()
        && let Err(e) = sh.cfg.limits.check_key(key)
    {
        return Reply::error(e);
    }
    match request {
        Request::Put(put) => {
            kv::put(&sh.coord, put, body, &sh.cfg.limits, sh.cfg.max_value_len).await
        }
        Request::Del(del) => kv::del(&sh.coord, del).await,
        Request::Get(get) => kv::get(&sh.coord, get).await,
        Request::HasKey { key } => admin::haskey(sh, &key).await,
        Request::Whereis { key } => admin::whereis(sh, &key),
        Request::Members => Reply::Plain(Response::Members(sh.cluster.members())),
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
        Request::Left { node } => state::left(sh, node).await,
        Request::SetState { node, state, epoch } => state::set_state(sh, node, state, epoch).await,
        Request::SendGained { node } => state::send_gained(sh, node).await,
        Request::ReplicaDigest { start, end } => replica::serve_digest(sh, start, end).await,
    }
}

/// A store failure as it travels: nothing was acknowledged.
pub(crate) fn internal(e: &StoreError) -> ErrorReply {
    ErrorReply::Internal {
        reason: e.to_string(),
    }
}
