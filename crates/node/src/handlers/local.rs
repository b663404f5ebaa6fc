//! Requests answered from this node alone: haskey (its own copy, never
//! forwarded, as the seed's was) and whereis (the key's preference list in
//! this node's ring).

use mydht_proto::Response;
use mydht_ring::Position;
use mydht_store::{Stamp, Store};

use super::{Reply, failed};
use crate::node::Node;

pub(crate) async fn haskey<S: Store>(node: &Node<S>, key: &[u8]) -> Reply {
    match node.store.version_of(key).await {
        Ok(Some(Stamp::Value(v))) => Reply::Plain(Response::HasKey {
            timestamp: Some(v.timestamp),
        }),
        Ok(Some(Stamp::Tombstone(_)) | None) => Reply::Plain(Response::HasKey { timestamp: None }),
        Err(e) => Reply::error(failed(&e)),
    }
}

pub(crate) fn whereis<S: Store>(node: &Node<S>, key: &[u8]) -> Reply {
    let ring = node.cluster.ring();
    let nodes = ring.preference_list(Position::of_key(key)).to_vec();
    Reply::Plain(Response::Whereis { nodes })
}
