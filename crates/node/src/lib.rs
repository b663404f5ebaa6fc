//! A running mydht node: the data plane over the cluster plane.
//!
//! [`start`] binds the node's one port, opens its cluster plane (its view
//! of the ring, liveness, connections to the other members: the
//! `mydht-cluster` crate), joins through a seed node if asked, and serves.
//! The listener tells the binary protocol from HTTP by a connection's first
//! bytes; both are thin doors onto the same rooms:
//!
//! - **coord**: the coordinator. A write is stamped once with the node's
//!   hybrid logical clock, sent to the key's whole write set at once and
//!   answered at W acknowledgements; a read asks the read set, answers with
//!   the newest version at R answers and repairs stale replicas in the
//!   background. Both fail early once the quorum cannot be reached.
//! - **replication**: calls to any replica (this node included) to store,
//!   stream, fetch, probe, digest or copy a version; its serving side is in
//!   the handlers.
//! - **value**: one stream type for values in motion, never held whole,
//!   and its sinks (store, peer, session, HTTP body, tee).
//! - **movement**: passes over the store that send keys where they belong
//!   (a join's restore, a remove's, a leave's hand-off, purge), planned by
//!   a pure function and owned by one queue with a node-wide budget.
//! - **antientropy**: balance and background rounds, walking the digests
//!   the stores keep current.
//! - **lifecycle**: this node's own join and leave.
//! - **obs**: the typed status snapshot ([`NodeStatus`]) the status page,
//!   `/status.json` and [`NodeHandle::status`] show.
//! - **tasks**: who owns each task (intake, background, cluster phases)
//!   and the [`Worker`](tasks) shape of background work.
//!
//! Membership operations lose nothing: a joining node is sent the keys it
//! gains before it serves reads, [`NodeHandle::leave`] hands every key off,
//! remove restores N copies of a dead member's keys, balance exchanges what
//! replicas lack (tombstones included) and purge drops keys a node no longer
//! owns once their owners hold them. Every task the node starts is owned by
//! one of its phases and ends with [`NodeHandle::shutdown`].
//!
//! It does not parse command lines (that is `mydht`) and holds no client
//! logic for other programs (that is `mydht-client`). The store is opened by
//! the caller, which picks the engine. Gossip and automatic failure
//! detection (SWIM) arrive with later work, in the cluster crate.

mod antientropy;
mod config;
mod coord;
mod error;
mod handle;
mod handlers;
mod http;
mod lifecycle;
mod movement;
mod net;
mod node;
mod obs;
mod replication;
mod start;
mod tasks;
mod value;

pub use config::NodeConfig;
pub use error::NodeError;
pub use handle::NodeHandle;
pub use lifecycle::leave::{LeaveError, LeaveReport};
pub use movement::queue::{MovementStatus, PassFailure, PassStatus, PassSummary, RangeCount};
pub use mydht_cluster::detector::DetectorConfig;
pub use obs::ring::{RingMember, RingReport};
pub use obs::status::{HintsView, MemberView, NodeStatus, Replication, StoreView};
pub use replication::hints::HintConfig;
pub use start::{Transport, WrapDatagrams, start, start_with_transport};
pub use tasks::{WorkerInfo, WorkerState};

/// The storage engines a node runs on, re-exported so that programs that
/// start nodes pick an engine without depending on the store crate.
pub mod store {
    pub use mydht_store::{
        DiskOptions, DiskStore, Lookup, MemoryStore, Stamp, Store, StoreError, SyncPolicy,
    };
}
