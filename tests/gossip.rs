//! The ring every member agrees on, with real nodes in one process whose
//! links a test can cut: a member cut off while the ring changes catches up
//! by gossip alone once the link is back, and reports the same ring version
//! as the others; a member removed while it was cut off learns it by gossip
//! and stops at once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::faults::Net;
use common::{config, status, wait_until};
use mydht_node::{NodeConfig, NodeHandle};
use mydht_ring::NodeId;
use mydht_store::MemoryStore;

/// `size` nodes dialing through `net`; every node after the first joins
/// through the first.
async fn start(net: &Arc<Net>, size: usize) -> Vec<NodeHandle> {
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for i in 0..size {
        let seed = nodes.first().map(|n| n.name().clone());
        nodes.push(start_one(net, i, cfg(seed.as_ref())).await);
    }
    nodes
}

fn cfg(seed: Option<&NodeId>) -> NodeConfig {
    let mut cfg = config(seed, 3);
    // Quick to notice a cut, so the test is quick.
    cfg.down_after = Duration::from_millis(500);
    cfg
}

async fn start_one(net: &Arc<Net>, index: usize, cfg: NodeConfig) -> NodeHandle {
    let node = mydht_node::start_with_dialer(cfg, MemoryStore::new(), net.dialer(index))
        .await
        .expect("node starts");
    net.named(index, node.name().as_str());
    node
}

async fn ring_version(node: &NodeId) -> String {
    status(node).await.ring_version
}

async fn shutdown(nodes: Vec<NodeHandle>) {
    for n in nodes {
        let name = n.name().clone();
        tokio::time::timeout(Duration::from_secs(15), n.shutdown())
            .await
            .unwrap_or_else(|_| panic!("{name} did not shut down"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cut_off_during_a_join_catches_up_by_gossip_once_the_link_is_back() {
    let net = Net::new();
    let mut nodes = start(&net, 3).await;
    let names: Vec<NodeId> = nodes.iter().map(|n| n.name().clone()).collect();
    let cut = names[2].clone();
    net.cut(cut.as_str());
    // A fourth node joins while the third cannot hear of it; the join's
    // spread of the new view fails to reach the third.
    let joiner = start_one(&net, 3, cfg(Some(&names[0]))).await;
    let d = joiner.name().clone();
    nodes.push(joiner);
    wait_until(
        "the joiner up on the first node",
        Duration::from_secs(30),
        || {
            let (a, d) = (names[0].clone(), d.clone());
            async move {
                status(&a)
                    .await
                    .member(d.as_str())
                    .is_some_and(|m| m.state == "up")
            }
        },
    )
    .await;
    assert!(
        status(&cut).await.member(d.as_str()).is_none(),
        "the cut member heard of the join"
    );
    assert_ne!(ring_version(&cut).await, ring_version(&names[0]).await);

    // No announcement is sent again: only gossip rounds can repair it.
    net.heal();
    let all: Vec<NodeId> = names.iter().cloned().chain([d.clone()]).collect();
    wait_until(
        "the cut member lists the joiner up, at the others' ring version",
        Duration::from_secs(30),
        || {
            let (all, cut, d) = (all.clone(), cut.clone(), d.clone());
            async move {
                let listed = status(&cut)
                    .await
                    .member(d.as_str())
                    .is_some_and(|m| m.state == "up");
                let mut versions = Vec::new();
                for n in &all {
                    versions.push(ring_version(n).await);
                }
                listed && versions.windows(2).all(|w| w[0] == w[1])
            }
        },
    )
    .await;
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_while_cut_off_learns_it_by_gossip_and_stops() {
    let net = Net::new();
    let mut nodes = start(&net, 3).await;
    let names: Vec<NodeId> = nodes.iter().map(|n| n.name().clone()).collect();
    let cut = names[2].clone();
    net.cut(cut.as_str());
    let removed = nodes.pop().expect("three nodes");
    common::Cluster {
        nodes: Vec::new(),
        names: names.clone(),
    }
    .client(0)
    .remove(&cut)
    .await
    .expect("remove");
    assert!(!removed.removed(), "it cannot have heard yet");
    assert_eq!(
        status(&cut)
            .await
            .member(cut.as_str())
            .expect("listed")
            .state,
        "up"
    );

    net.heal();
    tokio::time::timeout(Duration::from_secs(30), removed.stopped())
        .await
        .expect("the removed member stopped by itself within 30 s");
    assert!(removed.removed(), "it says why it stopped");
    assert!(
        tokio::net::TcpStream::connect(cut.as_str()).await.is_err(),
        "its port is closed: it acknowledges nothing more"
    );
    removed.shutdown().await;
    shutdown(nodes).await;
}
