//! How a client behaves: attempts, timeouts and limits.

use std::time::Duration;

use mydht_proto::Limits;

/// A client's settings. The defaults follow the seed's client: three
/// attempts, each on the next known node.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Attempts per call before giving up with `ERR_UNREACHABLE`.
    pub attempts: usize,
    /// How long to wait for a TCP connection and handshake.
    pub connect_timeout: Duration,
    /// How long to wait for one attempt's answer.
    pub request_timeout: Duration,
    /// Frame and key limits; must match the cluster's.
    pub limits: Limits,
    /// Whether to ask the first node reached for the member list, so that
    /// later calls can fall back on other nodes.
    pub learn_members: bool,
    /// How long to wait for an admin call (purge, balance, remove), which
    /// answers only once the cluster has moved the data it concerns.
    pub admin_timeout: Duration,
    /// The largest value [`Client::get`](crate::Client::get) gathers in
    /// memory; larger values are refused there and read with
    /// [`Client::get_to_writer`](crate::Client::get_to_writer) or
    /// [`Client::get_to_file`](crate::Client::get_to_file) instead.
    pub max_in_memory: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            attempts: 3,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            limits: Limits::default(),
            learn_members: true,
            admin_timeout: Duration::from_secs(600),
            max_in_memory: 256 << 20,
        }
    }
}

/// Per-write settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteOptions {
    /// Replicas that must acknowledge; the cluster's default (a majority)
    /// when `None`.
    pub w: Option<u8>,
}

/// Per-read settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadOptions {
    /// Replicas to hear from; the cluster's default (a majority) when `None`.
    pub r: Option<u8>,
}
