//! An in-process cluster harness: real nodes on 127.0.0.1:0 in one test
//! process (memory stores, or disk stores under a temporary directory for
//! nodes that restart), started, stopped and talked to by name; what a node
//! holds of a key, read by a replica probe; and its status, read as JSON
//! from `/status.json`.

#![allow(dead_code)]

pub mod faults;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use mydht_client::{Client, ClientOptions};
use mydht_node::store::{DiskOptions, DiskStore};
use mydht_node::{NodeConfig, NodeError, NodeHandle, NodeStatus};
use mydht_proto::conn::Connection;
use mydht_proto::{Get, Held, Hello, Limits, Payload, Peer, Put, Request, Response, WriteId};
use mydht_ring::{NodeId, Position};
use mydht_store::MemoryStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

pub struct Cluster {
    pub nodes: Vec<Option<NodeHandle>>,
    pub names: Vec<NodeId>,
}

pub fn config(seed: Option<&NodeId>, replicas: usize) -> NodeConfig {
    let mut cfg = NodeConfig::new("127.0.0.1", 0);
    cfg.seed = seed.map(|s| s.to_string());
    cfg.replicas = replicas;
    // Fail fast on stopped nodes so tests stay quick.
    cfg.connect_timeout = Duration::from_secs(2);
    cfg.request_timeout = Duration::from_secs(5);
    // Each test here shows one mechanism (balance, read repair, movement)
    // repairing a replica it made stale on purpose: hints and background
    // anti-entropy rounds, which would repair it first, are shown by the
    // binary's tests (`crates/cli/tests/hints.rs`) and stay off here.
    cfg.hints.max_bytes = 0;
    cfg.anti_entropy_interval = None;
    cfg
}

impl Cluster {
    /// `size` nodes with replication level `replicas`; every node after the
    /// first joins through the first.
    pub async fn start(size: usize, replicas: usize) -> Self {
        let first = mydht_node::start(config(None, replicas), MemoryStore::new())
            .await
            .expect("first node starts");
        let seed = first.name().clone();
        let mut names = vec![seed.clone()];
        let mut nodes = vec![Some(first)];
        for _ in 1..size {
            let n = mydht_node::start(config(Some(&seed), replicas), MemoryStore::new())
                .await
                .expect("node joins");
            names.push(n.name().clone());
            nodes.push(Some(n));
        }
        let cluster = Self { nodes, names };
        cluster.wait_for_members(size).await;
        cluster
    }

    /// Waits (with a deadline) until every running node sees `count` members.
    pub async fn wait_for_members(&self, count: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        for (i, name) in self.names.iter().enumerate() {
            if self.nodes[i].is_none() {
                continue;
            }
            loop {
                let members = self.client(i).members().await.expect("members");
                if members.members.len() == count {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{name} sees {} members, not {count}",
                    members.members.len()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// A client that talks to node `i` only, with one attempt: tests see
    /// each node's own answer.
    pub fn client(&self, i: usize) -> Client {
        let opts = ClientOptions {
            attempts: 1,
            learn_members: false,
            request_timeout: Duration::from_secs(10),
            ..ClientOptions::default()
        };
        Client::with_options([self.names[i].to_string()], opts).expect("client")
    }

    pub fn index_of(&self, name: &NodeId) -> usize {
        self.names.iter().position(|n| n == name).expect("a member")
    }

    /// Stops node `i` as a crash would look to the others: its port closes.
    pub async fn stop(&mut self, i: usize) {
        if let Some(n) = self.nodes[i].take() {
            let name = n.name().clone();
            tokio::time::timeout(Duration::from_secs(10), n.shutdown())
                .await
                .unwrap_or_else(|_| panic!("{name} did not shut down within 10 s"));
        }
    }

    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i).await;
        }
    }

    /// A key whose preference list (as node 0 sees the ring) is returned
    /// with it; `pick` chooses among candidate keys.
    pub async fn key_where(&self, pick: impl Fn(&[NodeId]) -> bool) -> (String, Vec<NodeId>) {
        let client = self.client(0);
        for i in 0..10_000 {
            let key = format!("key-{i}");
            let nodes = client.whereis(&key).await.expect("whereis");
            if pick(&nodes) {
                return (key, nodes);
            }
        }
        panic!("no key fits");
    }
}

/// A raw protocol connection to a node, for tests that need to control
/// write ids and versions exactly.
pub async fn raw(node: &NodeId) -> Connection {
    let stream = TcpStream::connect(node.as_str()).await.expect("connect");
    let (r, w) = stream.into_split();
    let hello = Hello {
        peer: Peer::Client,
        nonce: [1; 16],
    };
    Connection::open(r, w, hello, Limits::default())
        .await
        .expect("handshake")
}

/// The key's position, for tests that reason about placement.
pub fn position(key: &str) -> Position {
    Position::of_key(key.as_bytes())
}

/// Waits for `cond` with a deadline, polling.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if cond().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The node's status, as `/status.json` serves it.
pub async fn status(node: &NodeId) -> NodeStatus {
    get_json(node, "/status.json").await
}

/// The node's ring, as `/v1/ring` serves it.
pub async fn ring(node: &NodeId) -> mydht_node::RingReport {
    get_json(node, "/v1/ring").await
}

async fn get_json<T: serde::de::DeserializeOwned>(node: &NodeId, path: &str) -> T {
    let mut s = TcpStream::connect(node.as_str()).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("response");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body = text.split_once("\r\n\r\n").expect("a body").1;
    serde_json::from_str(body).unwrap_or_else(|e| panic!("status JSON: {e}: {body}"))
}

/// How `node` shows `member` (`up`, `down`, `joining`, ...).
pub async fn shown_as(node: &NodeId, member: &NodeId) -> String {
    status(node)
        .await
        .member(member.as_str())
        .expect("member listed")
        .status
        .clone()
}

/// Copies sent by the latest finished pass of `kind` on `node`.
pub async fn last_sent(node: &NodeId, kind: &str) -> u64 {
    status(node)
        .await
        .movement
        .last
        .iter()
        .find(|s| s.pass == kind)
        .map_or(0, |s| s.sent)
}

/// What `node` holds of `key`, told apart (absent, value, tombstone).
pub async fn held(node: &NodeId, key: &str) -> Held {
    let conn = raw(node).await;
    let r = conn
        .call(Request::ReplicaProbe {
            key: Bytes::copy_from_slice(key.as_bytes()),
        })
        .await
        .expect("probe");
    match r {
        Response::Held(h) => h,
        other => panic!("unexpected {other:?}"),
    }
}

/// Starts a node keeping its data in `dir`, on `port` (0 for any).
pub async fn start_in(
    dir: &Path,
    port: u16,
    seed: Option<&NodeId>,
    replicas: usize,
) -> Result<NodeHandle, NodeError> {
    let mut cfg = config(seed, replicas);
    cfg.port = port;
    start_with(dir, cfg).await
}

/// Starts a node with `cfg`, keeping its data in `dir`.
pub async fn start_with(dir: &Path, mut cfg: NodeConfig) -> Result<NodeHandle, NodeError> {
    cfg.data_dir = Some(dir.to_path_buf());
    // The previous run's store may take a moment to release its lock.
    let deadline = Instant::now() + Duration::from_secs(10);
    let store = loop {
        match DiskStore::open(dir.join("store"), DiskOptions::default()) {
            Ok(s) => break s,
            Err(e) => {
                assert!(Instant::now() < deadline, "store did not reopen: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    mydht_node::start(cfg, store).await
}

/// `count` nodes on disk in `root/<i>`; all join through the first.
pub async fn disk_cluster(root: &Path, count: usize, replicas: usize) -> (Cluster, Vec<PathBuf>) {
    let dirs: Vec<PathBuf> = (0..count).map(|i| root.join(i.to_string())).collect();
    let first = start_in(&dirs[0], 0, None, replicas)
        .await
        .expect("first node");
    let seed = first.name().clone();
    let mut nodes = vec![Some(first)];
    let mut names = vec![seed.clone()];
    for dir in &dirs[1..] {
        let n = start_in(dir, 0, Some(&seed), replicas)
            .await
            .expect("node joins");
        names.push(n.name().clone());
        nodes.push(Some(n));
    }
    let cluster = Cluster { nodes, names };
    cluster.wait_for_members(count).await;
    (cluster, dirs)
}

/// The port of a `host:port` name, for a restart on the same one.
pub fn port_of(node: &NodeId) -> u16 {
    node.as_str()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("host:port")
}

/// A put of `value` under `key`, as a raw protocol request.
pub fn put_request(
    key: &str,
    value: &str,
    write_id: WriteId,
    seen: Option<mydht_proto::Version>,
) -> Request {
    Request::Put(Put {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Payload::Inline(Bytes::copy_from_slice(value.as_bytes())),
        write_id,
        seen,
        w: None,
        retry: false,
    })
}

/// A get of `key`, as a raw protocol request.
pub fn get_request(key: &str) -> Request {
    Request::Get(Get {
        key: Bytes::copy_from_slice(key.as_bytes()),
        r: None,
    })
}

/// The value `key` holds as `conn`'s node answers a get.
pub async fn value_of(conn: &mydht_proto::conn::Connection, key: &str) -> Bytes {
    match conn.call(get_request(key)).await.expect("get") {
        Response::Value {
            value: Payload::Inline(b),
            ..
        } => b,
        other => panic!("expected a value, got {other:?}"),
    }
}
