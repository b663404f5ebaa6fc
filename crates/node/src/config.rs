//! How a node is set up: its name, where it listens, where its data lives,
//! whom it joins, and its limits and timeouts.

use std::path::PathBuf;
use std::time::Duration;

use mydht_cluster::detector::DetectorConfig;
use mydht_proto::Limits;
use mydht_ring::{DEFAULT_REPLICAS, DEFAULT_VNODES};

use crate::replication::hints::HintConfig;

/// A node's settings. [`NodeConfig::new`] gives the seed's defaults.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The host part of the advertised name (`-h`).
    pub host: String,
    /// The port part of the advertised name (`-p`); 0 takes the port the
    /// listener was given, which is what tests use.
    pub port: u16,
    /// The address to listen on when it differs from `host` (`--bind`).
    pub bind: Option<String>,
    /// Where membership is kept (`membership.json`); `None` keeps nothing
    /// on disk. The store is opened by the caller and handed to the node.
    pub data_dir: Option<PathBuf>,
    /// A member to join through (`-s host:port`).
    pub seed: Option<String>,
    /// Replication level N for a new ring (`-r`); joiners learn the ring's.
    pub replicas: usize,
    /// Virtual nodes per member for a new ring.
    pub vnodes: u32,
    /// Frame, key and chunk limits.
    pub limits: Limits,
    /// Connection attempts to other nodes give up after this.
    pub connect_timeout: Duration,
    /// A replica call, or a join, gives up after this.
    pub request_timeout: Duration,
    /// A new connection must send its first bytes and handshake within this.
    pub handshake_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// How often a member marked down is tried again; it is skipped until
    /// it answers.
    pub down_backoff: Duration,
    /// A member whose calls keep failing (timeouts, broken connections) for
    /// this long is marked down; a refused connection marks it at once.
    pub down_after: Duration,
    /// Remove a member not alive for this long, as an admin's remove does
    /// (`--remove-after`); `None` (the default) never removes by itself.
    pub remove_after: Option<Duration>,
    /// The failure detector (SWIM over UDP on the node's port number).
    pub detector: DetectorConfig,
    /// How often this node compares ring versions with another member (a
    /// gossip round), so a change it missed reaches it anyway.
    pub gossip_interval: Duration,
    /// An admin request (remove, balance, purge) forwarded to every member
    /// waits this long for each one to finish its data movement.
    pub admin_timeout: Duration,
    /// How long after a delete its tombstone is kept even once every replica
    /// holds it (balance collects it after that), so that a write in flight
    /// from before the delete cannot land on a replica that forgot it. As
    /// with Cassandra's gc_grace, a node that holds an old copy of the key
    /// outside the replica set (a former owner not yet purged) must be purged
    /// within this time, or its copy can come back.
    pub tombstone_grace: Duration,
    /// The largest value accepted, in bytes.
    pub max_value_len: u64,
    /// How hints for missed replicas are bounded and replayed.
    pub hints: HintConfig,
    /// How often an anti-entropy round runs by itself (`None`: only on
    /// `balance`).
    pub anti_entropy_interval: Option<Duration>,
}

impl NodeConfig {
    /// The seed's defaults on `host:port`.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            bind: None,
            data_dir: None,
            seed: None,
            replicas: DEFAULT_REPLICAS,
            vnodes: DEFAULT_VNODES,
            limits: Limits::default(),
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 4096,
            down_backoff: Duration::from_secs(1),
            down_after: Duration::from_secs(3),
            remove_after: None,
            detector: DetectorConfig::default(),
            gossip_interval: Duration::from_secs(1),
            admin_timeout: Duration::from_secs(600),
            tombstone_grace: Duration::from_secs(24 * 3600),
            max_value_len: 1 << 40,
            hints: HintConfig::default(),
            anti_entropy_interval: Some(Duration::from_secs(60)),
        }
    }
}
