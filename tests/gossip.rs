//! The ring every member agrees on, with real nodes in one process whose
//! links a test can cut: a member cut off while the ring changes catches up
//! by gossip alone once the link is back, and reports the same ring version
//! as the others; a member removed while it was cut off learns it by gossip
//! and stops at once; a joiner or a remove that cannot reach a holder still
//! restores every copy or says so; `--remove-after` in a partition removes
//! only the minority; a member whose clock is far off is flagged.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::faults::{self, Net, cfg, start_one};
use common::{held, status, wait_until};
use mydht_node::NodeHandle;
use mydht_proto::Held;
use mydht_ring::NodeId;

async fn start(net: &Arc<Net>, size: usize) -> Vec<NodeHandle> {
    faults::start(net, size, cfg).await
}

async fn ring_version(node: &NodeId) -> String {
    status(node).await.ring_version
}

use faults::shutdown;

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

/// A joiner that cannot reach one holder (its own link to it is cut) gets
/// every key it gains anyway: the holders it asks know whom it asked, and a
/// key whose first holder was not asked is sent by the next. Before, the
/// others saw that first holder alive, left the key to it, and the join
/// finished without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_that_cannot_reach_a_holder_gets_its_keys_from_the_others() {
    let net = Net::new();
    let mut nodes = start(&net, 4).await;
    let names: Vec<NodeId> = nodes.iter().map(|n| n.name().clone()).collect();
    let client = common::Cluster {
        nodes: Vec::new(),
        names: names.clone(),
    }
    .client(1);
    let keys: Vec<String> = (0..300).map(|i| format!("key-{i}")).collect();
    for k in &keys {
        client.put(k, k.clone()).await.expect("put");
    }
    // The joiner is node 4: its dials to node 0 fail from the start.
    net.cut_from(4, names[0].as_str());
    let joiner = start_one(&net, 4, cfg(Some(&names[1]))).await;
    let e = joiner.name().clone();
    nodes.push(joiner);
    wait_until("the joiner up", Duration::from_secs(30), || {
        let (b, e) = (names[1].clone(), e.clone());
        async move {
            status(&b)
                .await
                .member(e.as_str())
                .is_some_and(|m| m.state == "up")
        }
    })
    .await;
    let mut owned = 0;
    for k in &keys {
        let owners = client.whereis(k).await.expect("whereis");
        if owners.contains(&e) {
            owned += 1;
            assert!(
                matches!(held(&e, k).await, Held::Value(_)),
                "{k} (owners {owners:?}) did not reach the joiner"
            );
        }
    }
    assert!(owned > 50, "the joiner owns {owned} keys");
    shutdown(nodes).await;
}

/// A member that left and comes back with a wiped data dir (same name) is
/// a new incarnation every member agrees on: joining one version above its
/// removal, then up, at one ring version everywhere. (Before versions, one
/// member could list it joining and another removed, forever.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_left_and_returns_wiped_is_a_new_incarnation_everyone_agrees_on() {
    let net = Net::new();
    let mut nodes = start(&net, 3).await;
    let names: Vec<NodeId> = nodes.iter().map(|n| n.name().clone()).collect();
    let leaver = nodes.pop().expect("three nodes");
    let c = leaver.name().clone();
    leaver
        .leave(Duration::from_secs(30))
        .await
        .expect("the leave hands off");
    leaver.shutdown().await;
    let removed_at = status(&names[0])
        .await
        .member(c.as_str())
        .map(|m| (m.state.clone(), m.version))
        .expect("listed");
    assert_eq!(removed_at.0, "removed");

    // Back, same name, nothing on disk.
    let mut back_cfg = cfg(Some(&names[0]));
    back_cfg.port = common::port_of(&c);
    nodes.push(start_one(&net, 3, back_cfg).await);
    wait_until(
        "every member lists the new incarnation up, at one ring version",
        Duration::from_secs(30),
        || {
            let names = names.clone();
            let c = c.clone();
            async move {
                let mut versions = Vec::new();
                for n in &names {
                    let s = status(n).await;
                    match s.member(c.as_str()) {
                        Some(m) if m.state == "up" && m.version > removed_at.1 => {}
                        _ => return false,
                    }
                    versions.push(s.ring_version);
                }
                versions.windows(2).all(|w| w[0] == w[1])
            }
        },
    )
    .await;
    shutdown(nodes).await;
}

/// `--remove-after` in a partition longer than it: only the side that sees
/// a majority alive removes the other; the minority removes nobody. Without
/// that rule each side removed the other, and once the partition healed
/// every member learned it was removed and stopped: the cluster gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_after_in_a_partition_removes_only_the_minority() {
    let net = Net::new();
    let with_remove = |seed: Option<&NodeId>| {
        let mut c = cfg(seed);
        c.remove_after = Some(Duration::from_secs(2));
        c
    };
    let nodes = faults::start(&net, 5, with_remove).await;
    let names: Vec<NodeId> = nodes.iter().map(|n| n.name().clone()).collect();
    // Nodes 3 and 4 are cut off from everyone (each other included).
    net.cut(names[3].as_str());
    net.cut(names[4].as_str());
    wait_until(
        "the majority removes the two",
        Duration::from_secs(40),
        || {
            let names = names.clone();
            async move {
                let s = status(&names[0]).await;
                [3, 4].iter().all(|&i| {
                    s.member(names[i].as_str())
                        .is_some_and(|m| m.state == "removed")
                })
            }
        },
    )
    .await;
    // The minority removed nobody, though it sees the majority not alive
    // for far longer than 2 s: wait until it sees them all down, then give
    // its remove-after clock time to run out (an absence is watched for a
    // while, not waited on).
    wait_until(
        "the minority sees the majority down",
        Duration::from_secs(30),
        || {
            let names = names.clone();
            async move {
                let s = status(&names[3]).await;
                (0..3).all(|j| s.member(names[j].as_str()).is_some_and(|m| m.down))
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    for i in [3, 4] {
        let s = status(&names[i]).await;
        for j in 0..3 {
            let m = s.member(names[j].as_str()).expect("listed");
            assert_ne!(m.state, "removed", "{} removed {}", names[i], names[j]);
        }
    }
    net.heal();
    let (mut majority, mut minority) = (Vec::new(), Vec::new());
    for (i, n) in nodes.into_iter().enumerate() {
        if i < 3 {
            majority.push(n);
        } else {
            minority.push(n);
        }
    }
    for n in &minority {
        tokio::time::timeout(Duration::from_secs(30), n.stopped())
            .await
            .expect("a removed member stops once it hears");
    }
    for n in &majority {
        let s = status(n.name()).await;
        for name in &names[..3] {
            assert_eq!(s.member(name.as_str()).expect("listed").state, "up");
        }
    }
    shutdown(majority).await;
    shutdown(minority).await;
}

/// A remove asked of a member that sees one holder down (a cut link) is
/// honest: it answers ok only once every key has N copies again, and
/// otherwise names the member it could not finish with; after the link is
/// back, asking again restores every copy. (The members it tells are told
/// whom it told, so none leaves a key to a holder that was not.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remove_with_a_holder_cut_off_is_honest_and_a_retry_restores_every_copy() {
    let net = Net::new();
    let mut nodes = start(&net, 5).await;
    let names: Vec<NodeId> = nodes.iter().map(|n| n.name().clone()).collect();
    let cluster = common::Cluster {
        nodes: Vec::new(),
        names: names.clone(),
    };
    let keys: Vec<String> = (0..300).map(|i| format!("key-{i}")).collect();
    for k in &keys {
        cluster.client(2).put(k, k.clone()).await.expect("put");
    }
    let dead = names[4].clone();
    let e = nodes.pop().expect("five nodes");
    e.shutdown().await;
    net.cut_link(names[0].as_str(), names[1].as_str());
    wait_until("node 0 sees node 1 down", Duration::from_secs(30), || {
        let (a, b) = (names[0].clone(), names[1].clone());
        async move { status(&a).await.member(b.as_str()).is_some_and(|m| m.down) }
    })
    .await;
    let answered = cluster.client(0).remove(&dead).await;
    match &answered {
        Ok(()) => assert_eq!(short_of_three(&cluster, &keys, &dead).await, 0),
        Err(e) => assert!(e.to_string().contains(names[1].as_str()), "{e}"),
    }
    net.heal();
    wait_until("node 0 sees node 1 again", Duration::from_secs(30), || {
        let (a, b) = (names[0].clone(), names[1].clone());
        async move { status(&a).await.member(b.as_str()).is_some_and(|m| !m.down) }
    })
    .await;
    cluster
        .client(0)
        .remove(&dead)
        .await
        .expect("remove, asked again");
    assert_eq!(short_of_three(&cluster, &keys, &dead).await, 0);
    shutdown(nodes).await;
}

/// Keys with fewer than 3 live copies on their owners.
async fn short_of_three(cluster: &common::Cluster, keys: &[String], dead: &NodeId) -> usize {
    let mut short = 0;
    for k in keys {
        let owners = cluster.client(2).whereis(k).await.expect("whereis");
        assert!(!owners.contains(dead));
        let mut copies = 0;
        for o in &owners {
            if matches!(held(o, k).await, Held::Value(_)) {
                copies += 1;
            }
        }
        if copies < 3 {
            short += 1;
        }
    }
    short
}

/// Members learn each other's clock offsets from gossip rounds (liveness
/// data: the ring version does not move), and one more than a second off
/// the others' median is flagged in `/v1/ring` and on the status page. A
/// member 5 minutes ahead is simulated by a gossip round carrying its name
/// and a clock 5 minutes ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_clock_is_far_off_is_flagged_without_moving_the_ring() {
    use mydht_proto::Request;
    let net = Net::new();
    let nodes = start(&net, 3).await;
    let names: Vec<NodeId> = nodes.iter().map(|n| n.name().clone()).collect();
    let (a, c) = (names[0].clone(), names[2].clone());
    wait_until(
        "every offset heard, none flagged",
        Duration::from_secs(30),
        || {
            let a = a.clone();
            async move {
                let r = common::ring(&a).await;
                r.members
                    .iter()
                    .all(|m| m.clock_offset_ms.is_some_and(|o| o.abs() < 1_000) && !m.clock_skewed)
            }
        },
    )
    .await;
    let version = common::ring(&a).await.version;
    let conn = common::raw(&a).await;
    // The real c gossips too, with its true clock: repeat until a read
    // sees the skewed round (each takes milliseconds, rounds come every
    // second or two).
    wait_until("c flagged", Duration::from_secs(30), || {
        let (conn, a, c) = (&conn, a.clone(), c.clone());
        async move {
            let round = Request::SyncRing {
                node: c.clone(),
                version: 0,
                clock_ms: mydht_cluster::wall_clock_ms() + 5 * 60 * 1_000,
            };
            conn.call(round).await.expect("a gossip round");
            let r = common::ring(&a).await;
            let m = r
                .members
                .iter()
                .find(|m| m.node == c.as_str())
                .expect("listed");
            m.clock_skewed
                && m.clock_offset_ms
                    .is_some_and(|o| (o - 300_000).abs() < 5_000)
        }
    })
    .await;
    assert!(
        common::status(&a)
            .await
            .member(c.as_str())
            .expect("listed")
            .clock_skewed
    );
    let r = common::ring(&a).await;
    assert_eq!(r.version, version, "a clock offset is not part of the ring");
    let me = r
        .members
        .iter()
        .find(|m| m.node == a.as_str())
        .expect("listed");
    assert_eq!((me.clock_offset_ms, me.clock_skewed), (Some(0), false));
    shutdown(nodes).await;
}
