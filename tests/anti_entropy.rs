//! Anti-entropy (balance) with real nodes in one process: a delete missed
//! by a down replica does not come back, a missed put arrives, an in-sync
//! cluster compares digests only, and a tombstone is collected only once
//! every replica holds it.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{
    Cluster, config, disk_cluster, held, port_of, shown_as, start_in, start_with, status,
    wait_until,
};
use mydht_proto::Held;
use mydht_ring::NodeId;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_missed_by_a_down_replica_does_not_come_back_after_balance() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut cluster, dirs) = disk_cluster(tmp.path(), 3, 3).await;
    let c0 = cluster.client(0);
    c0.put("deleted", "old value").await.expect("put");
    c0.put("updated", "first").await.expect("put");
    let c = cluster.names[2].clone();
    cluster.stop(2).await;
    c0.delete("deleted").await.expect("delete with W=2");
    c0.put("updated", "second").await.expect("put with W=2");
    c0.put("new", "only two have it")
        .await
        .expect("put with W=2");
    let back = start_in(&dirs[2], port_of(&c), None, 3)
        .await
        .expect("restart");
    cluster.nodes[2] = Some(back);
    // The returning replica still has the old value and lacks the rest.
    assert!(matches!(held(&c, "deleted").await, Held::Value(_)));
    assert_eq!(held(&c, "new").await, Held::Absent);
    // Node 0 may still see it down for up to a second.
    wait_until("node 0 to reach node 2", Duration::from_secs(10), || {
        let (a, c) = (cluster.names[0].clone(), c.clone());
        async move { shown_as(&a, &c).await == "up" }
    })
    .await;
    c0.balance().await.expect("BALANCE ok");
    for i in 0..3 {
        let ci = cluster.client(i);
        assert_eq!(
            ci.haskey("deleted").await.expect("haskey"),
            None,
            "node {i}"
        );
        let name = &cluster.names[i];
        assert!(
            matches!(held(name, "deleted").await, Held::Tombstone(_)),
            "node {i} holds the tombstone"
        );
        assert!(
            ci.haskey("new").await.expect("haskey").is_some(),
            "node {i}"
        );
        let got = ci.get("updated").await.expect("get").expect("found");
        assert_eq!(&got.bytes[..], b"second");
        assert_eq!(ci.get("deleted").await.expect("get"), None);
    }
    assert_eq!(
        held(&c, "updated").await,
        held(&cluster.names[0], "updated").await
    );
    // A second balance of an in-sync cluster sends nothing and still
    // answers ok.
    c0.balance().await.expect("BALANCE ok again");
    let last = status(&cluster.names[0]).await.movement.last;
    let summary = last
        .iter()
        .find(|s| s.pass == "balance")
        .expect("a balance summary");
    // Every range digest agrees: no key is compared one by one.
    assert_eq!(
        (
            summary.scanned,
            summary.ranges.map(|r| r.differing),
            summary.sent,
            summary.bytes,
            summary.probes
        ),
        (0, Some(0), 0, 0, 0),
        "{summary}"
    );
    // With a replica down, balance names it.
    cluster.stop(1).await;
    let e = c0.balance().await.expect_err("a replica is down");
    let text = e.to_string();
    assert!(text.contains(cluster.names[1].as_str()), "{text}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balance_collects_a_tombstone_only_once_every_replica_holds_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dirs: Vec<PathBuf> = (0..3).map(|i| tmp.path().join(i.to_string())).collect();
    // No grace period, so that only "every replica holds it" is tested.
    let start = |i: usize, port: u16, seed: Option<NodeId>| {
        let dir = dirs[i].clone();
        async move {
            let mut cfg = config(seed.as_ref(), 3);
            cfg.port = port;
            cfg.tombstone_grace = Duration::ZERO;
            start_with(&dir, cfg).await.expect("start")
        }
    };
    let a = start(0, 0, None).await;
    let seed = a.name().clone();
    let b = start(1, 0, Some(seed.clone())).await;
    let c = start(2, 0, Some(seed.clone())).await;
    let mut cluster = Cluster {
        names: vec![seed.clone(), b.name().clone(), c.name().clone()],
        nodes: vec![Some(a), Some(b), Some(c)],
    };
    cluster.wait_for_members(3).await;
    let c0 = cluster.client(0);
    c0.put("gone", "value").await.expect("put");
    let c_name = cluster.names[2].clone();
    cluster.stop(2).await;
    c0.delete("gone").await.expect("delete with W=2");
    // A replica lacks the tombstone: balance keeps it on the other two.
    c0.balance().await.expect_err("a replica is down");
    for name in &cluster.names[..2] {
        assert!(matches!(held(name, "gone").await, Held::Tombstone(_)));
    }
    cluster.nodes[2] = Some(start(2, port_of(&c_name), None).await);
    wait_until("node 0 to reach node 2", Duration::from_secs(10), || {
        let (a, c) = (cluster.names[0].clone(), c_name.clone());
        async move { shown_as(&a, &c).await == "up" }
    })
    .await;
    wait_until("node 1 to reach node 2", Duration::from_secs(10), || {
        let (b, c) = (cluster.names[1].clone(), c_name.clone());
        async move { shown_as(&b, &c).await == "up" }
    })
    .await;
    // The first balance gives the returning replica the tombstone; by the
    // end of the second every replica has confirmed it and collected it.
    c0.balance().await.expect("BALANCE ok");
    c0.balance().await.expect("BALANCE ok again");
    for name in &cluster.names {
        assert_eq!(held(name, "gone").await, Held::Absent, "on {name}");
    }
    assert_eq!(c0.get("gone").await.expect("get"), None);
    cluster.shutdown().await;
}
