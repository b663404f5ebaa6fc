//! An in-process cluster harness: real nodes (memory stores) on
//! 127.0.0.1:0 in one test process, started, stopped and talked to by name.

#![allow(dead_code)]

use std::time::Duration;

use mydht_client::{Client, ClientOptions};
use mydht_node::{NodeConfig, NodeHandle};
use mydht_proto::conn::Connection;
use mydht_proto::{Hello, Limits, Peer};
use mydht_ring::{NodeId, Position};
use mydht_store::MemoryStore;
use tokio::net::TcpStream;

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
