//! Data movement with real nodes in one process: a joining node receives
//! exactly the keys it owns, a leaving node hands off every key, a leave
//! past its deadline says how far it got, and purge never loses a key.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{
    Cluster, config, disk_cluster, held, last_sent, port_of, raw, shown_as, start_in, status,
    wait_until,
};
use mydht_proto::{Held, Request, Response};
use mydht_ring::MemberState;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_after_a_join_never_loses_a_key() {
    // N=2 on two nodes: both hold everything. A third joins (and receives
    // its keys), then misses some writes; purge must push what the newcomer
    // owns but lacks before dropping it, and keep what it cannot confirm.
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut cluster, mut dirs) = disk_cluster(tmp.path(), 2, 2).await;
    let keys: Vec<String> = (0..200).map(|i| format!("key-{i}")).collect();
    let c1 = cluster.client(1);
    for k in &keys {
        c1.put(k, format!("value of {k}")).await.expect("put");
    }
    c1.delete("key-7").await.expect("delete");
    dirs.push(tmp.path().join("2"));
    let third = start_in(&dirs[2], 0, Some(&cluster.names[0]), 2)
        .await
        .expect("third joins");
    cluster.names.push(third.name().clone());
    cluster.nodes.push(Some(third));
    cluster.wait_for_members(3).await;
    let (a, b, new) = (
        cluster.names[0].clone(),
        cluster.names[1].clone(),
        cluster.names[2].clone(),
    );
    // Writes the newcomer missed (its replica copy failed, say): stored on
    // the two old nodes only.
    let mut keys = keys;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    for i in 0..100 {
        let k = format!("late-{i}");
        for n in [&a, &b] {
            let r = raw(n)
                .await
                .call(Request::ReplicaStore {
                    key: Bytes::from(k.clone()),
                    version: mydht_proto::Version {
                        timestamp: mydht_proto::Timestamp::from_parts(now_ms, 0),
                        node: a.clone(),
                    },
                    value: Some(mydht_proto::Payload::Inline(Bytes::from(format!(
                        "value of {k}"
                    )))),
                    write_id: None,
                })
                .await
                .expect("replica store");
            assert_eq!(
                r,
                Response::ReplicaStored {
                    applied: true,
                    held: None
                }
            );
        }
        keys.push(k);
    }
    let mut owners = std::collections::HashMap::new();
    for k in &keys {
        owners.insert(k.clone(), c1.whereis(k).await.expect("whereis"));
    }
    let not_b = keys.iter().filter(|k| !owners[*k].contains(&b)).count();
    assert!(not_b > 30, "node 1 owns all but {not_b} keys");
    let mut missing = 0;
    for k in keys.iter().filter(|k| owners[*k].contains(&new)) {
        if held(&new, k).await == Held::Absent {
            missing += 1;
        }
    }
    assert!(
        missing > 10,
        "the newcomer lacks only {missing} of its keys"
    );

    // Node 0 is down: node 1 may drop no key node 0 owns, and says so.
    cluster.stop(0).await;
    let e = c1.purge().await.expect_err("an owner is down");
    assert!(e.to_string().contains(a.as_str()), "{e}");
    for k in keys.iter().filter(|k| !owners[*k].contains(&b)) {
        assert_ne!(held(&b, k).await, Held::Absent, "{k} dropped from node 1");
        assert_ne!(
            held(&new, k).await,
            Held::Absent,
            "{k} not pushed to node 2"
        );
    }

    // Node 0 is back: both purges finish and every key sits exactly on its
    // owners, with what was written.
    let back = start_in(&dirs[0], port_of(&a), None, 2)
        .await
        .expect("restart");
    cluster.nodes[0] = Some(back);
    wait_until("node 1 to reach node 0", Duration::from_secs(10), || {
        let (b, a) = (b.clone(), a.clone());
        async move { shown_as(&b, &a).await == "up" }
    })
    .await;
    cluster.client(0).purge().await.expect("PURGE ok on node 0");
    c1.purge().await.expect("PURGE ok on node 1");
    for k in &keys {
        for (i, name) in cluster.names.iter().enumerate() {
            let h = held(name, k).await;
            if owners[k].contains(name) {
                if k == "key-7" {
                    assert!(matches!(h, Held::Tombstone(_)), "{k} on node {i}: {h:?}");
                } else {
                    assert!(matches!(h, Held::Value(_)), "{k} on node {i}: {h:?}");
                }
            } else {
                assert_eq!(h, Held::Absent, "{k} still on node {i}, not an owner");
            }
        }
        if k != "key-7" {
            let got = c1.get(k).await.expect("get").expect("found");
            assert_eq!(got.bytes, Bytes::from(format!("value of {k}")));
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_receives_the_keys_it_owns_and_only_those() {
    // MYDHT_TEST_KEYS=10000 for the measurement (see the
    // --nocapture output).
    let count: usize = std::env::var("MYDHT_TEST_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let mut cluster = Cluster::start(3, 3).await;
    let c0 = cluster.client(0);
    let keys: Vec<String> = (0..count).map(|i| format!("key-{i}")).collect();
    let mut load = tokio::task::JoinSet::new();
    for chunk in keys.chunks(count.div_ceil(8)) {
        let (c, chunk) = (c0.clone(), chunk.to_vec());
        load.spawn(async move {
            for k in chunk {
                c.put(&k, format!("value of {k}")).await.expect("put");
            }
        });
    }
    while let Some(t) = load.join_next().await {
        t.expect("loader");
    }
    let seed = cluster.names[0].clone();
    let joined = Instant::now();
    let node = mydht_node::start(
        config(Some(&seed), 3),
        mydht_node::store::MemoryStore::new(),
    )
    .await
    .expect("joins");
    let join_took = joined.elapsed();
    let new = node.name().clone();
    cluster.names.push(new.clone());
    cluster.nodes.push(Some(node));
    // Every member sees it up once its start returned.
    for i in 0..4 {
        let m = cluster.client(i).members().await.expect("members");
        let state = m.members.iter().find(|x| x.id() == &new).map(|x| x.state());
        assert_eq!(state, Some(MemberState::Up), "as node {i} sees it");
    }
    let mut owned = 0u64;
    for k in &keys {
        let owners = c0.whereis(k).await.expect("whereis");
        let h = held(&new, k).await;
        if owners.contains(&new) {
            owned += 1;
            assert!(matches!(h, Held::Value(_)), "{k} missing on the newcomer");
            let got = cluster.client(3).get(k).await.expect("get").expect("found");
            assert_eq!(got.bytes, Bytes::from(format!("value of {k}")));
        } else {
            assert_eq!(h, Held::Absent, "{k} sent to a non-owner");
        }
    }
    // Each gained copy travelled once: from its first holder only.
    let mut moved = 0;
    for name in &cluster.names[..3] {
        moved += last_sent(name, "restore").await;
    }
    assert_eq!(
        moved, owned,
        "copies moved against copies the newcomer owns"
    );
    let copies = keys.len() as f64 * 3.0;
    let fraction = moved as f64 / copies;
    eprintln!(
        "join into 3 nodes (N=3) holding {count} keys took {join_took:?}: moved {moved} of {copies} copies: {fraction:.3} (ideal 1/4 = 0.25)"
    );
    assert!((0.15..0.35).contains(&fraction), "moved {fraction}");
    // Balance of the now in-sync cluster sends no value.
    let started = Instant::now();
    c0.balance().await.expect("BALANCE ok");
    let took = started.elapsed();
    for name in &cluster.names {
        assert_eq!(last_sent(name, "balance").await, 0, "{name}");
        let last = status(name).await.movement.last;
        let summary = last.iter().find(|s| s.pass == "balance").expect("summary");
        eprintln!("{took:?} {name}: {summary}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_node_hands_off_every_key_before_it_goes() {
    let mut cluster = Cluster::start(4, 3).await;
    let c0 = cluster.client(0);
    let keys: Vec<String> = (0..600).map(|i| format!("key-{i}")).collect();
    for k in &keys {
        c0.put(k, format!("value of {k}")).await.expect("put");
    }
    c0.delete("key-3").await.expect("delete");
    let leaver = cluster.names[3].clone();
    let handle = cluster.nodes[3].take().expect("running");
    let report = handle
        .leave(Duration::from_secs(30))
        .await
        .expect("leave hands everything off");
    handle.shutdown().await;
    assert!(report.sent > 100, "{report:?}");
    for i in 0..3 {
        let m = cluster.client(i).members().await.expect("members");
        let state = m
            .members
            .iter()
            .find(|x| x.id() == &leaver)
            .map(|x| x.state());
        assert_eq!(state, Some(MemberState::Removed), "as node {i} sees it");
    }
    for k in &keys {
        let owners = c0.whereis(k).await.expect("whereis");
        assert_eq!(owners.len(), 3);
        if k == "key-3" {
            for o in &owners {
                assert!(matches!(held(o, k).await, Held::Tombstone(_)), "{k} on {o}");
            }
            continue;
        }
        let want = c0.get(k).await.expect("get").expect("found").version;
        for o in &owners {
            let i = cluster.index_of(o);
            let ts = cluster.client(i).haskey(k).await.expect("haskey");
            assert_eq!(ts, Some(want.timestamp), "{k} on {o}");
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leave_past_its_deadline_says_how_far_it_got() {
    let mut cluster = Cluster::start(4, 3).await;
    let c0 = cluster.client(0);
    for i in 0..400 {
        c0.put(format!("key-{i}"), "v").await.expect("put");
    }
    let handle = cluster.nodes[3].take().expect("running");
    let e = handle
        .leave(Duration::from_millis(1))
        .await
        .expect_err("no hand-off of hundreds of keys fits in 1 ms");
    handle.shutdown().await;
    let text = e.to_string();
    assert!(text.contains("did not finish within"), "{text}");
    assert!(text.contains("keys checked"), "{text}");
    // It never became removed, and turned back to up: still a member, with
    // its data, that a restart brings back.
    let m = c0.members().await.expect("members");
    let state = m
        .members
        .iter()
        .find(|x| x.id() == &cluster.names[3])
        .map(|x| x.state());
    assert_eq!(state, Some(MemberState::Up));
    cluster.shutdown().await;
}
