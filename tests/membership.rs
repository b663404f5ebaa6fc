//! Membership operations with real nodes in one process: down marking,
//! remove (N copies restored, the removed node refused on restart), balance
//! (a missed delete does not come back, a missed put arrives) and purge
//! (never the last copy).
//!
//! Nodes that restart keep their data in a `DiskStore` under a temporary
//! directory, with `membership.json` beside it, as `mydht node` does.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use common::{Cluster, config, raw};
use mydht_client::ClientError;
use mydht_node::store::{DiskOptions, DiskStore};
use mydht_node::{NodeError, NodeHandle};
use mydht_proto::{ErrorReply, Held, Request, Response};
use mydht_ring::{MemberState, NodeId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Waits for `cond` with a deadline, polling.
async fn wait_until<F, Fut>(what: &str, limit: Duration, mut cond: F)
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

/// The node's status page.
async fn status_page(node: &NodeId) -> String {
    let mut s = TcpStream::connect(node.as_str()).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("response");
    String::from_utf8_lossy(&out).into_owned()
}

/// How `node`'s status page shows `member`.
async fn shown_as(node: &NodeId, member: &NodeId) -> String {
    let page = status_page(node).await;
    let marker = format!("{member}</a> ");
    let at = page.find(&marker).expect("member listed");
    page[at + marker.len()..]
        .split('<')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// What `node` holds of `key`, told apart (absent, value, tombstone).
async fn held(node: &NodeId, key: &str) -> Held {
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
async fn start_in(
    dir: &Path,
    port: u16,
    seed: Option<&NodeId>,
    replicas: usize,
) -> Result<NodeHandle, NodeError> {
    let mut cfg = config(seed, replicas);
    cfg.port = port;
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
async fn disk_cluster(root: &Path, count: usize, replicas: usize) -> (Cluster, Vec<PathBuf>) {
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

fn port_of(node: &NodeId) -> u16 {
    node.as_str()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("host:port")
}

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
    let page = status_page(&cluster.names[0]).await;
    // Every range digest agrees: no key is compared one by one.
    assert!(
        page.contains("balance of 0 keys in 0 differing ranges")
            && page.contains(": 0 sent (0 bytes)")
            && page.contains(" 0 probes compared"),
        "{page}"
    );
    // With a replica down, balance names it.
    cluster.stop(1).await;
    let e = c0.balance().await.expect_err("a replica is down");
    let text = e.to_string();
    assert!(text.contains(cluster.names[1].as_str()), "{text}");
    cluster.shutdown().await;
}

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
                })
                .await
                .expect("replica store");
            assert_eq!(r, Response::ReplicaStored { applied: true });
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

/// Copies sent by the latest finished pass of `kind` on `node`, from its
/// status page.
async fn last_sent(node: &NodeId, kind: &str) -> u64 {
    let page = status_page(node).await;
    let marker = format!("last finished: {kind} of ");
    let Some(at) = page.find(&marker) else {
        return 0;
    };
    let rest = &page[at + marker.len()..];
    let after = &rest[rest.find(": ").expect("summary") + 2..];
    after
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a count")
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
        let page = status_page(name).await;
        let at = page.find("last finished: balance").expect("summary");
        eprintln!(
            "{took:?} {name}: {}",
            &page[at..at + 110.min(page.len() - at)]
        );
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
async fn balance_collects_a_tombstone_only_once_every_replica_holds_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dirs: Vec<PathBuf> = (0..3).map(|i| tmp.path().join(i.to_string())).collect();
    // No grace period, so that only "every replica holds it" is tested.
    let start = |i: usize, port: u16, seed: Option<NodeId>| {
        let dir = dirs[i].clone();
        async move {
            let mut cfg = config(seed.as_ref(), 3);
            cfg.port = port;
            cfg.data_dir = Some(dir.clone());
            cfg.tombstone_grace = Duration::ZERO;
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
            mydht_node::start(cfg, store).await.expect("start")
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
    // It never became removed: the others still list it (as leaving).
    let m = c0.members().await.expect("members");
    let state = m
        .members
        .iter()
        .find(|x| x.id() == &cluster.names[3])
        .map(|x| x.state());
    assert_eq!(state, Some(MemberState::Leaving));
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
