//! The binary protocol's door: [`route`] sends each request to the room
//! that carries it out and turns the outcome into a [`Reply`], which the
//! session writes as frames. One module per group of requests:
//! [`kv`] (put, get, del, through the coordinator), [`local`] (haskey and
//! whereis, answered from this node alone), [`members`] (join and the
//! announcements, through the cluster), [`admin`] (balance, remove, purge),
//! [`gained`] (a joining member asking for its keys) and [`replica`] (the
//! serving side of replica calls).

pub(crate) mod admin;
pub(crate) mod digests;
mod gained;
mod kv;
mod local;
mod members;
mod replica;
mod replicas;

use mydht_proto::{ErrorReply, Request, Response};
use mydht_store::Store;

use crate::node::Node;
use crate::value::{BodyIn, ValueStream};

/// A request's answer.
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

/// Carries out one request. `body` carries the chunks of a streamed value.
pub(crate) async fn route<S: Store>(
    node: &Node<S>,
    request: Request,
    body: Option<BodyIn>,
) -> Reply {
    if let Some(key) = request.key()
        && let Err(e) = node.cfg.limits.check_key(key)
    {
        return Reply::error(e);
    }
    match request {
        Request::Put(put) => kv::put(node, put, body).await,
        Request::Del(del) => kv::del(node, del).await,
        Request::Get(get) => kv::get(node, get).await,
        Request::HasKey { key } => local::haskey(node, &key).await,
        Request::Whereis { key } => local::whereis(node, &key),
        Request::Members => members::members(node),
        Request::Join { node: joiner } => Box::pin(members::join(node, joiner)).await,
        Request::Gossip(view) => Box::pin(members::gossip(node, view)).await,
        Request::SyncRing {
            node: from,
            version,
            clock_ms,
        } => members::sync_ring(node, &from, version, clock_ms),
        Request::SendGained {
            node: joiner,
            asked,
        } => Box::pin(gained::send_gained(node, joiner, asked)).await,
        Request::ReplicaStore {
            key,
            version,
            value,
            write_id,
        } => replica::serve_store(node, key, version, value, write_id, body).await,
        Request::ReplicaRecall { key, write_id } => Reply::Plain(mydht_proto::Response::Recalled(
            node.replicas.recall_local(write_id, &key),
        )),
        Request::ReplicaFetch { key } => replica::serve_fetch(node, &key).await,
        Request::ReplicaProbe { key } => replica::serve_probe(node, &key).await,
        Request::ReplicaDigest { start, end } => {
            Box::pin(replica::serve_digest(node, start, end)).await
        }
        Request::ReplicaParts { cover } => Box::pin(digests::serve_parts(node, cover)).await,
        Request::ReplicaLeaves { cover, parts } => {
            Box::pin(digests::serve_leaves(node, cover, parts)).await
        }
        Request::ReplicaEntries { cover, asks } => {
            Box::pin(digests::serve_entries(node, cover, asks)).await
        }
        Request::Purge => Box::pin(admin::purge(node)).await,
        Request::Balance { forwarded } => Box::pin(admin::balance(node, forwarded)).await,
        Request::Remove {
            node: target,
            forwarded,
            asked,
        } => Box::pin(admin::remove(node, target, forwarded.then_some(asked))).await,
        Request::Replicas { n } => Box::pin(replicas::replicas(node, n)).await,
        Request::Reshape { asked } => Box::pin(replicas::reshape(node, asked)).await,
    }
}

/// A failure of this node (its store, its membership), as it travels:
/// nothing was acknowledged.
pub(crate) fn failed(e: &impl std::fmt::Display) -> ErrorReply {
    ErrorReply::Internal {
        reason: e.to_string(),
    }
}
