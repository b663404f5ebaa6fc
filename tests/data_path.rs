//! The data path with real nodes in one process: every data operation on
//! clusters of 1 and 4 nodes, a replica down, too few replicas, read
//! repair, retries and ordering across coordinators, and the client's
//! failover.

mod common;

use bytes::Bytes;
use common::{Cluster, put_request, raw, value_of};
use mydht_client::ClientError;
use mydht_proto::{ErrorReply, Held, Payload, Request, Response, WriteId};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_node_ring_stores_reads_and_deletes() {
    let cluster = Cluster::start(1, 3).await;
    let c = cluster.client(0);
    let v = c
        .put("mykey", "myvalue")
        .await
        .expect("put on a one-node ring");
    let got = c.get("mykey").await.expect("get").expect("found");
    assert_eq!(&got.bytes[..], b"myvalue");
    assert_eq!(got.version, v);
    assert_eq!(
        c.whereis("mykey").await.expect("whereis"),
        vec![cluster.names[0].clone()]
    );
    assert_eq!(c.haskey("mykey").await.expect("haskey"), Some(v.timestamp));
    c.delete("mykey").await.expect("delete");
    assert_eq!(c.get("mykey").await.expect("get"), None);
    assert_eq!(c.haskey("mykey").await.expect("haskey"), None);
    // Deletes are idempotent: a missing key deletes fine.
    c.delete("never-written")
        .await
        .expect("delete of a missing key");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_nodes_replicate_to_the_preference_list_only() {
    let cluster = Cluster::start(4, 3).await;
    let (key, replicas) = cluster.key_where(|_| true).await;
    assert_eq!(replicas.len(), 3);
    // Every node gives the same preference list.
    for i in 0..4 {
        assert_eq!(
            cluster.client(i).whereis(&key).await.expect("whereis"),
            replicas
        );
    }
    let outsider = (0..4)
        .find(|&i| !replicas.contains(&cluster.names[i]))
        .expect("one node is not a replica");
    // Written through the non-replica: it coordinates but stores nothing.
    let version = cluster.client(outsider).put(&key, "v1").await.expect("put");
    for i in 0..4 {
        let held = cluster.client(i).haskey(&key).await.expect("haskey");
        if i == outsider {
            assert_eq!(held, None, "the coordinator is not a replica");
        } else {
            // W = 2 acknowledged at once; the third copy may land just after.
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
            let mut held = held;
            while held.is_none() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                held = cluster.client(i).haskey(&key).await.expect("haskey");
            }
            assert_eq!(
                held,
                Some(version.timestamp),
                "replica {}",
                cluster.names[i]
            );
        }
    }
    // Readable and deletable through any node.
    for i in 0..4 {
        let got = cluster
            .client(i)
            .get(&key)
            .await
            .expect("get")
            .expect("found");
        assert_eq!(&got.bytes[..], b"v1");
    }
    cluster
        .client(replicas.len() % 4)
        .delete(&key)
        .await
        .expect("delete");
    for i in 0..4 {
        assert_eq!(cluster.client(i).get(&key).await.expect("get"), None);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_writes_go_on_with_one_replica_down() {
    let mut cluster = Cluster::start(4, 3).await;
    let (key, replicas) = cluster.key_where(|_| true).await;
    cluster.client(0).put(&key, "before").await.expect("put");
    let down = cluster.index_of(&replicas[2]);
    cluster.stop(down).await;
    let alive: Vec<usize> = (0..4).filter(|&i| i != down).collect();
    for &i in &alive {
        let got = cluster
            .client(i)
            .get(&key)
            .await
            .expect("get with a replica down");
        assert_eq!(&got.expect("found").bytes[..], b"before");
    }
    cluster
        .client(alive[0])
        .put(&key, "after")
        .await
        .expect("put with a replica down");
    for &i in &alive {
        let got = cluster
            .client(i)
            .get(&key)
            .await
            .expect("get")
            .expect("found");
        assert_eq!(&got.bytes[..], b"after");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_replicas_is_a_quorum_error() {
    let mut cluster = Cluster::start(4, 3).await;
    let (key, replicas) = cluster.key_where(|_| true).await;
    let coordinator = cluster.index_of(&replicas[0]);
    cluster.stop(cluster.index_of(&replicas[1])).await;
    cluster.stop(cluster.index_of(&replicas[2])).await;
    let err = cluster
        .client(coordinator)
        .put(&key, "v")
        .await
        .expect_err("one replica of three cannot make W = 2");
    assert!(
        matches!(
            err,
            ClientError::Remote(ErrorReply::Quorum {
                acked: 1,
                required: 2
            })
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "ERR_QUORUM: 1 of 2 replicas acknowledged; the write may be partly applied"
    );
    let err = cluster
        .client(coordinator)
        .get(&key)
        .await
        .expect_err("R = 2 of 1");
    assert!(
        matches!(
            err,
            ClientError::Remote(ErrorReply::Unavailable {
                answered: 1,
                required: 2,
                ..
            })
        ),
        "{err:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_put_does_not_overwrite_a_newer_one() {
    let cluster = Cluster::start(3, 3).await;
    let a = raw(&cluster.names[0]).await;
    let b = raw(&cluster.names[1]).await;
    let first = WriteId { client: 7, seq: 1 };
    let Response::Stored { version: v1 } = a
        .call(put_request("k", "old", first, None))
        .await
        .expect("put")
    else {
        panic!("first put failed")
    };
    let second = WriteId { client: 7, seq: 2 };
    let Response::Stored { version: v2 } = b
        .call(put_request("k", "new", second, Some(v1.clone())))
        .await
        .expect("put")
    else {
        panic!("second put failed")
    };
    assert!(v2 > v1);
    // The first put is retried (its answer was "lost"): it gets its first
    // outcome back and stamps nothing new.
    let retry = a
        .call(put_request("k", "old", first, None))
        .await
        .expect("retry");
    assert_eq!(retry, Response::Stored { version: v1 });
    for node in &cluster.names {
        assert_eq!(&value_of(&raw(node).await, "k").await[..], b"new");
    }
    cluster.shutdown().await;
}

/// A put marked as a retry.
fn retried(req: Request) -> Request {
    match req {
        Request::Put(mut p) => {
            p.retry = true;
            Request::Put(p)
        }
        other => other,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_retried_through_another_node_completes_the_first_version() {
    let cluster = Cluster::start(3, 3).await;
    let (a, b, c) = (
        raw(&cluster.names[0]).await,
        raw(&cluster.names[1]).await,
        raw(&cluster.names[2]).await,
    );
    let first = WriteId { client: 9, seq: 1 };
    let Response::Stored { version: v1 } = a
        .call(put_request("k", "once", first, None))
        .await
        .expect("put")
    else {
        panic!("first put failed")
    };
    // Its answer was "lost": the client retries through b, which never saw
    // it. The replicas remember the write id: b completes that version and
    // stamps no second one.
    let retry = b
        .call(retried(put_request("k", "once", first, None)))
        .await
        .expect("retry");
    assert_eq!(
        retry,
        Response::Stored {
            version: v1.clone()
        }
    );
    for node in &cluster.names {
        let held = common::held(node, "k").await;
        assert_eq!(held, Held::Value(v1.clone()), "{node}");
    }
    // A later write, then one more retry of the first through c: it is
    // answered with its first outcome and does not overwrite the later one.
    let second = WriteId { client: 9, seq: 2 };
    let Response::Stored { version: v2 } = a
        .call(put_request("k", "later", second, Some(v1.clone())))
        .await
        .expect("put")
    else {
        panic!("second put failed")
    };
    let again = c
        .call(retried(put_request("k", "once", first, None)))
        .await
        .expect("retry");
    assert_eq!(again, Response::Stored { version: v1 });
    for node in &cluster.names {
        assert_eq!(
            common::held(node, "k").await,
            Held::Value(v2.clone()),
            "{node}"
        );
        assert_eq!(&value_of(&raw(node).await, "k").await[..], b"later");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_puts_through_two_nodes_keep_their_order() {
    // N = 1 and coordinators that are not the key's replica: their clocks
    // learn of each other's writes only through the version the client
    // carries (`seen`), which is what this test is about.
    let cluster = Cluster::start(4, 1).await;
    let conns = [
        raw(&cluster.names[0]).await,
        raw(&cluster.names[1]).await,
        raw(&cluster.names[2]).await,
        raw(&cluster.names[3]).await,
    ];
    let mut seen = None;
    for round in 0..200u64 {
        let key = format!("order-{}", round % 10);
        let replica = cluster.client(0).whereis(&key).await.expect("whereis")[0].clone();
        let coordinators: Vec<usize> = (0..4).filter(|&i| cluster.names[i] != replica).collect();
        // Alternate which coordinator goes first, so that a tie broken by
        // node name would lose in half the rounds.
        let (x, y) = if round % 2 == 0 { (0, 1) } else { (1, 0) };
        let (first, second) = (&conns[coordinators[x]], &conns[coordinators[y]]);
        let id = |seq| WriteId { client: 9, seq };
        let Response::Stored { version } = first
            .call(put_request(&key, "first", id(2 * round), seen.clone()))
            .await
            .expect("put")
        else {
            panic!("put failed")
        };
        let Response::Stored { version: later } = second
            .call(put_request(
                &key,
                "second",
                id(2 * round + 1),
                Some(version.clone()),
            ))
            .await
            .expect("put")
        else {
            panic!("put failed")
        };
        assert!(
            later > version,
            "round {round}: {later:?} is not after {version:?}"
        );
        assert_eq!(&value_of(first, &key).await[..], b"second", "round {round}");
        seen = Some(later);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_repairs_a_stale_replica_with_the_same_version() {
    let cluster = Cluster::start(3, 3).await;
    let a = raw(&cluster.names[0]).await;
    let Response::Stored { version: old } = a
        .call(put_request("r", "old", WriteId { client: 3, seq: 1 }, None))
        .await
        .expect("put")
    else {
        panic!("put failed")
    };
    // A newer version reaches two replicas only (as if the third missed it).
    let newer = mydht_proto::Version {
        timestamp: mydht_proto::Timestamp::from_parts(old.timestamp.millis() + 1, 0),
        node: cluster.names[0].clone(),
    };
    for node in &cluster.names[..2] {
        let reply = raw(node)
            .await
            .call(Request::ReplicaStore {
                key: Bytes::from_static(b"r"),
                version: newer.clone(),
                value: Some(Payload::Inline(Bytes::from_static(b"new"))),
                write_id: None,
            })
            .await
            .expect("replica store");
        assert_eq!(
            reply,
            Response::ReplicaStored {
                applied: true,
                held: None
            }
        );
    }
    // Sent again, it is not applied, and the replica says what it holds.
    let again = raw(&cluster.names[0])
        .await
        .call(Request::ReplicaStore {
            key: Bytes::from_static(b"r"),
            version: old.clone(),
            value: Some(Payload::Inline(Bytes::from_static(b"old"))),
            write_id: None,
        })
        .await
        .expect("replica store");
    assert_eq!(
        again,
        Response::ReplicaStored {
            applied: false,
            held: Some(newer.clone())
        }
    );
    let stale = cluster.client(2);
    assert_eq!(
        stale.haskey("r").await.expect("haskey"),
        Some(old.timestamp)
    );
    // A read through the stale replica returns the newest version...
    let got = stale.get("r").await.expect("get").expect("found");
    assert_eq!((&got.bytes[..], &got.version), (&b"new"[..], &newer));
    // ...and repairs it in the background with that version, unchanged.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while stale.haskey("r").await.expect("haskey") != Some(newer.timestamp) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stale replica never repaired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_moves_to_another_node_but_haskey_does_not() {
    let cluster = Cluster::start(2, 2).await;
    // A node address nothing listens on, listed first.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let opts = mydht_client::ClientOptions {
        learn_members: false,
        ..mydht_client::ClientOptions::default()
    };
    let client = mydht_client::Client::with_options(
        [dead.clone(), cluster.names[1].to_string()],
        opts.clone(),
    )
    .expect("client");
    client
        .put("f", "v")
        .await
        .expect("put moves on to the live node");
    let got = client.get("f").await.expect("get").expect("found");
    assert_eq!(&got.bytes[..], b"v");
    // haskey asks one node about its own copy: never another.
    let err = client
        .haskey("f")
        .await
        .expect_err("the first node is dead");
    match err {
        ClientError::Unreachable { nodes, .. } => assert_eq!(nodes, vec![dead.clone()]),
        other => panic!("expected Unreachable, got {other:?}"),
    }
    // With every node dead, three attempts and ERR_UNREACHABLE naming them.
    let lonely = mydht_client::Client::with_options([dead.clone()], opts).expect("client");
    let err = lonely.put("f", "v").await.expect_err("nobody to talk to");
    assert!(
        err.to_string()
            .starts_with(&format!("ERR_UNREACHABLE: {dead}")),
        "{err}"
    );
    cluster.shutdown().await;
}
