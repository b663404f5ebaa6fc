//! Membership with real nodes in one process: down marking, joining twice,
//! remove (N copies restored, the removed node refused on restart), a
//! member back with a wiped data dir, and the write quorum while a member
//! joins.
//!
//! Nodes that restart keep their data in a `DiskStore` under a temporary
//! directory, with `membership.json` beside it, as `mydht node` does.

mod common;

use std::time::Duration;

use common::{Cluster, disk_cluster, held, port_of, raw, shown_as, start_in, wait_until};
use mydht_client::ClientError;
use mydht_node::NodeError;
use mydht_proto::{ErrorReply, Held, Request, Response};
use mydht_ring::{MemberState, NodeId};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_answering_is_down_until_it_answers_again() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut cluster, dirs) = disk_cluster(tmp.path(), 3, 3).await;
    let (a, c) = (cluster.names[0].clone(), cluster.names[2].clone());
    assert_eq!(shown_as(&a, &c).await, "up");
    cluster.stop(2).await;
    // A write sends to every replica: the refused connection marks it down.
    cluster
        .client(0)
        .put("k", "v")
        .await
        .expect("put with one down");
    assert_eq!(shown_as(&a, &c).await, "down");
    // It stays down while it does not answer, though its backoff (1 s) has
    // passed several times: the node keeps trying it in the background.
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        assert_eq!(shown_as(&a, &c).await, "down");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let back = start_in(&dirs[2], port_of(&c), None, 3)
        .await
        .expect("restart");
    cluster.nodes[2] = Some(back);
    wait_until("the member to be up again", Duration::from_secs(10), || {
        let (a, c) = (a.clone(), c.clone());
        async move { shown_as(&a, &c).await == "up" }
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_twice_is_harmless() {
    let cluster = Cluster::start(2, 3).await;
    let before = cluster.client(0).members().await.expect("members");
    let conn = raw(&cluster.names[0]).await;
    let again = conn
        .call(Request::Join {
            node: cluster.names[1].clone(),
        })
        .await
        .expect("join again");
    let Response::Members(after) = again else {
        panic!("{again:?}")
    };
    assert_eq!(after.members.len(), 2);
    assert_eq!(after.epoch, before.epoch, "a repeated join changes nothing");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_restores_n_copies_and_the_removed_node_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut cluster, dirs) = disk_cluster(tmp.path(), 4, 3).await;
    let c0 = cluster.client(0);
    let keys: Vec<String> = (0..300).map(|i| format!("key-{i}")).collect();
    for k in &keys {
        c0.put(k, format!("value of {k}")).await.expect("put");
    }
    // Node 3 dies; every key it held now has two live copies.
    let dead = cluster.names[3].clone();
    let held_by_dead: Vec<String> = {
        let mut v = Vec::new();
        for k in &keys {
            if c0.whereis(k).await.expect("whereis").contains(&dead) {
                v.push(k.clone());
            }
        }
        v
    };
    assert!(
        held_by_dead.len() > 100,
        "the dead node held {} keys",
        held_by_dead.len()
    );
    cluster.stop(3).await;
    let epoch_before = c0.members().await.expect("members").epoch;
    let started = Instant::now();
    cluster.client(1).remove(&dead).await.expect("REMOVE ok");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(30), "remove took {took:?}");
    // Every member has the node removed, at the same new epoch.
    for i in 0..3 {
        let m = cluster.client(i).members().await.expect("members");
        assert!(m.epoch > epoch_before);
        assert_eq!(m.epoch, epoch_before + 1, "node {i}");
        let state = m
            .members
            .iter()
            .find(|x| x.id() == &dead)
            .expect("still listed")
            .state();
        assert_eq!(state, MemberState::Removed);
    }
    // N live copies of every key, each with the version that was written.
    for k in &keys {
        let owners = c0.whereis(k).await.expect("whereis");
        assert_eq!(owners.len(), 3);
        assert!(!owners.contains(&dead));
        let want = c0.get(k).await.expect("get").expect("found").version;
        for o in &owners {
            let i = cluster.index_of(o);
            let ts = cluster.client(i).haskey(k).await.expect("haskey");
            assert_eq!(ts, Some(want.timestamp), "{k} on {o}");
        }
    }
    // The removed node, restarted on its data dir, learns it was removed.
    match start_in(&dirs[3], port_of(&dead), None, 3).await {
        Err(NodeError::Removed { node, .. }) => assert_eq!(node, dead.to_string()),
        Err(other) => panic!("refused for the wrong reason: {other}"),
        Ok(_) => panic!("a removed node started on its old data dir"),
    }
    // Removing it again changes nothing and still answers ok; removing a
    // stranger is an error.
    cluster.client(2).remove(&dead).await.expect("remove again");
    let stranger = NodeId::new("127.0.0.1:1").expect("name");
    let e = cluster
        .client(0)
        .remove(&stranger)
        .await
        .expect_err("not a member");
    assert!(matches!(
        e,
        ClientError::Remote(ErrorReply::BadRequest { .. })
    ));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_back_with_a_wiped_data_dir_gets_its_keys_before_it_serves_reads() {
    let root = tempfile::tempdir().expect("tempdir");
    let (mut cluster, dirs) = disk_cluster(root.path(), 3, 3).await;
    let keys: Vec<String> = (0..40).map(|i| format!("wiped-{i}")).collect();
    for k in &keys {
        cluster.client(0).put(k, "v").await.expect("put");
    }
    let name = cluster.names[2].clone();
    cluster.stop(2).await;
    std::fs::remove_dir_all(&dirs[2]).expect("wipe");
    // Same name, empty store, joining through a member that lists it as up.
    let back = start_in(&dirs[2], port_of(&name), Some(&cluster.names[0]), 3)
        .await
        .expect("restart with a wiped dir");
    cluster.nodes[2] = Some(back);
    // N = 3 on three nodes: every key belongs on it, and comes back.
    wait_until(
        "every key back on the wiped member",
        Duration::from_secs(20),
        || {
            let (name, keys) = (name.clone(), keys.clone());
            async move {
                for k in &keys {
                    if !matches!(held(&name, k).await, Held::Value(_)) {
                        return false;
                    }
                }
                true
            }
        },
    )
    .await;
    let seed = cluster.names[0].clone();
    wait_until("the member to be up again", Duration::from_secs(10), || {
        let (seed, name) = (seed.clone(), name.clone());
        async move { shown_as(&seed, &name).await == "up" }
    })
    .await;
    cluster.shutdown().await;
}

/// While a member joins, a key has old owners and new ones; a write must be
/// applied by W of each. Here two of three members are down while a fourth
/// joins: a write through the third would once have counted the joiner and
/// the third (which may be about to lose the key to the joiner) as W = 2,
/// and become unreadable when the joiner died before the other owners
/// caught up. Now it is refused, and every write that was acknowledged
/// reads back after the joiner is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_during_a_join_needs_w_of_the_old_owners_and_w_of_the_new() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut cluster, dirs) = disk_cluster(tmp.path(), 3, 3).await;
    let (x, y, z) = (
        cluster.names[0].clone(),
        cluster.names[1].clone(),
        cluster.names[2].clone(),
    );
    let before: Vec<String> = (0..20).map(|i| format!("before-{i}")).collect();
    for k in &before {
        cluster.client(2).put(k, k.clone()).await.expect("put");
    }
    cluster.stop(0).await;
    cluster.stop(1).await;
    // A fourth node joins through the third; it stays joining while the
    // others are down (they cannot send it their keys).
    let joiner = start_in(&tmp.path().join("d"), 0, Some(&z), 3)
        .await
        .expect("joins");
    let d = joiner.name().clone();
    assert_eq!(shown_as(&z, &d).await, "joining");
    let mut acknowledged = Vec::new();
    for i in 0..30 {
        let key = format!("during-{i}");
        match cluster.client(2).put(&key, key.clone()).await {
            Ok(_) => acknowledged.push(key),
            Err(ClientError::Remote(ErrorReply::Quorum { acked, required })) => {
                assert!(acked < required, "{key}: {acked} of {required}");
            }
            Err(e) => panic!("{key}: {e}"),
        }
    }
    // Every key's old owners are x, y and z: with two of them down, no
    // write can have W = 2 of them.
    assert!(acknowledged.is_empty(), "acknowledged: {acknowledged:?}");
    // The two come back, the join finishes, and the joiner dies.
    cluster.nodes[0] = Some(
        start_in(&dirs[0], port_of(&x), None, 3)
            .await
            .expect("x back"),
    );
    cluster.nodes[1] = Some(
        start_in(&dirs[1], port_of(&y), None, 3)
            .await
            .expect("y back"),
    );
    wait_until("the joiner to be up", Duration::from_secs(30), || {
        let (x, d) = (x.clone(), d.clone());
        async move { shown_as(&x, &d).await == "up" }
    })
    .await;
    joiner.shutdown().await;
    for k in before.iter().chain(&acknowledged) {
        let got = cluster.client(0).get(k).await.expect("get");
        assert_eq!(
            got.map(|g| g.bytes),
            Some(bytes::Bytes::copy_from_slice(k.as_bytes())),
            "{k} read back after the joiner died"
        );
    }
    cluster.shutdown().await;
}
