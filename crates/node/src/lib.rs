//! A running mydht node.
//!
//! [`start`] binds the node's one TCP port, loads (or creates) its view of
//! the ring, joins through a seed node if asked, and serves: the listener
//! tells the binary protocol from HTTP by a connection's first bytes; every
//! binary request runs in its own task. The node coordinates client writes
//! (stamp once with its hybrid logical clock, send to the key's whole write
//! set at once, answer at W acknowledgements) and reads (ask the read set,
//! answer with the newest version at R answers, repair stale replicas in the
//! background), answers replica calls from other nodes, keeps its membership
//! on disk, and serves a status page at `/`. Membership operations move data
//! so that nothing is lost: a joining node is sent the keys it gains before
//! it serves reads, [`NodeHandle::leave`] hands every key off, remove
//! restores N copies of a dead member's keys, balance exchanges what
//! replicas lack (tombstones included) and purge drops keys a node no longer
//! owns once their owners hold them. A member that stops answering is
//! skipped until it answers again. Every task it starts is owned by the node
//! and ends with [`NodeHandle::shutdown`].
//!
//! It does not parse command lines (that is `mydht`) and holds no client
//! logic for other programs (that is `mydht-client`). The store is opened by
//! the caller, which picks the engine. Gossip and automatic failure detection
//! (SWIM) arrive with later work. Values larger
//! than a chunk stream through the node under a per-stream window and are
//! never held whole.

mod config;
mod coord;
mod error;
mod handlers;
mod http;
mod lifecycle;
mod movement;
mod node;
mod replication;
mod server;
mod session;
mod shared;
mod value;

pub use config::NodeConfig;
pub use error::NodeError;
pub use lifecycle::{LeaveError, LeaveReport};
pub use node::{NodeHandle, start};

/// The storage engines a node runs on, re-exported so that programs that
/// start nodes pick an engine without depending on the store crate.
pub mod store {
    pub use mydht_store::{DiskOptions, DiskStore, MemoryStore, Store, StoreError, SyncPolicy};
}
