//! Real clusters of 1 and 4 nodes in one process: every data operation, a
//! replica down, too few replicas, retries and ordering across nodes.

mod common;

use bytes::Bytes;
use common::{Cluster, raw};
use mydht_client::ClientError;
use mydht_proto::{ErrorReply, Get, Payload, Put, Request, Response, WriteId};

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

fn put(key: &str, value: &str, write_id: WriteId, seen: Option<mydht_proto::Version>) -> Request {
    Request::Put(Put {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Payload::Inline(Bytes::copy_from_slice(value.as_bytes())),
        write_id,
        seen,
        w: None,
    })
}

fn get(key: &str) -> Request {
    Request::Get(Get {
        key: Bytes::copy_from_slice(key.as_bytes()),
        r: None,
    })
}

async fn value_of(conn: &mydht_proto::conn::Connection, key: &str) -> Bytes {
    match conn.call(get(key)).await.expect("get") {
        Response::Value {
            value: Payload::Inline(b),
            ..
        } => b,
        other => panic!("expected a value, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_put_does_not_overwrite_a_newer_one() {
    let cluster = Cluster::start(3, 3).await;
    let a = raw(&cluster.names[0]).await;
    let b = raw(&cluster.names[1]).await;
    let first = WriteId { client: 7, seq: 1 };
    let Response::Stored { version: v1 } = a.call(put("k", "old", first, None)).await.expect("put")
    else {
        panic!("first put failed")
    };
    let second = WriteId { client: 7, seq: 2 };
    let Response::Stored { version: v2 } = b
        .call(put("k", "new", second, Some(v1.clone())))
        .await
        .expect("put")
    else {
        panic!("second put failed")
    };
    assert!(v2 > v1);
    // The first put is retried (its answer was "lost"): it gets its first
    // outcome back and stamps nothing new.
    let retry = a.call(put("k", "old", first, None)).await.expect("retry");
    assert_eq!(retry, Response::Stored { version: v1 });
    for node in &cluster.names {
        assert_eq!(&value_of(&raw(node).await, "k").await[..], b"new");
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
            .call(put(&key, "first", id(2 * round), seen.clone()))
            .await
            .expect("put")
        else {
            panic!("put failed")
        };
        let Response::Stored { version: later } = second
            .call(put(
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
async fn bad_input_gets_typed_errors() {
    let cluster = Cluster::start(1, 3).await;
    let c = cluster.client(0);
    let long_key = "k".repeat(2000);
    let err = c.put(&long_key, "v").await.expect_err("key over 1 KiB");
    assert!(
        matches!(err, ClientError::Invalid(ErrorReply::TooLarge { .. })),
        "{err:?}"
    );
    // The node enforces it too, whatever the client does.
    let conn = raw(&cluster.names[0]).await;
    let reply = conn
        .call(put(&long_key, "v", WriteId { client: 1, seq: 1 }, None))
        .await
        .expect("answered");
    assert!(
        matches!(reply, Response::Error(ErrorReply::TooLarge { .. })),
        "{reply:?}"
    );
    // The connection and node survive all of this.
    c.put("after", "ok").await.expect("still serving");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_repairs_a_stale_replica_with_the_same_version() {
    let cluster = Cluster::start(3, 3).await;
    let a = raw(&cluster.names[0]).await;
    let Response::Stored { version: old } = a
        .call(put("r", "old", WriteId { client: 3, seq: 1 }, None))
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
            })
            .await
            .expect("replica store");
        assert_eq!(reply, Response::ReplicaStored { applied: true });
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_stream_through_every_replica() {
    let cluster = Cluster::start(3, 3).await;
    // Several chunks each way, through a coordinator and two other replicas.
    let value = Bytes::from(
        (0..3_000_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>(),
    );
    let version = cluster
        .client(0)
        .put("big", value.clone())
        .await
        .expect("streamed put");
    for i in 0..3 {
        let got = cluster
            .client(i)
            .get("big")
            .await
            .expect("get")
            .expect("found");
        assert_eq!(got.version, version);
        assert!(got.bytes == value, "node {i} returned different bytes");
    }
    // Files both ways, with progress reported.
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src.bin");
    std::fs::write(&src, &value[..2_500_000]).expect("write");
    let moved = std::sync::atomic::AtomicU64::new(0);
    let report = |n: u64| moved.store(n, std::sync::atomic::Ordering::Relaxed);
    cluster
        .client(1)
        .put_file("file", &src, mydht_client::WriteOptions::default(), &report)
        .await
        .expect("put_file");
    assert_eq!(moved.load(std::sync::atomic::Ordering::Relaxed), 2_500_000);
    let dst = dir.path().join("dst.bin");
    let found = cluster
        .client(2)
        .get_to_file("file", &dst, mydht_client::ReadOptions::default(), &|_| {})
        .await
        .expect("get_to_file");
    assert!(found.is_some());
    assert!(std::fs::read(&dst).expect("read") == value[..2_500_000]);
    let missing = dir.path().join("missing.bin");
    let none = cluster
        .client(2)
        .get_to_file(
            "nope",
            &missing,
            mydht_client::ReadOptions::default(),
            &|_| {},
        )
        .await
        .expect("get_to_file");
    assert!(none.is_none() && !missing.exists());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_over_the_node_limit_is_refused_early() {
    let mut cfg = common::config(None, 1);
    cfg.max_value_len = 1 << 20;
    let node = mydht_node::start(cfg, mydht_store::MemoryStore::new())
        .await
        .expect("node");
    let client = mydht_client::Client::new([node.name().to_string()]).expect("client");
    let big = Bytes::from(vec![7u8; 3 << 20]);
    let err = client.put("big", big).await.expect_err("over the limit");
    assert!(
        matches!(err, ClientError::Remote(ErrorReply::TooLarge { .. })),
        "{err:?}"
    );
    // The refusal came before the whole value was sent, and the node and
    // the connection still serve.
    client.put("small", "ok").await.expect("still serving");
    assert_eq!(
        &client
            .get("small")
            .await
            .expect("get")
            .expect("found")
            .bytes[..],
        b"ok"
    );
    tokio::time::timeout(std::time::Duration::from_secs(10), node.shutdown())
        .await
        .expect("shuts down");
}

/// Yields `len` bytes of a pattern, stopping at `pause` until released, so a
/// test can act in the middle of an upload.
struct Gated {
    left: usize,
    pos: usize,
    pause: usize,
    gate: std::sync::Arc<std::sync::Mutex<(bool, Option<std::task::Waker>)>>,
    reached: Option<tokio::sync::oneshot::Sender<()>>,
}

impl tokio::io::AsyncRead for Gated {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let me = self.get_mut();
        if me.pos >= me.pause {
            let mut gate = me.gate.lock().expect("gate");
            if !gate.0 {
                gate.1 = Some(cx.waker().clone());
                if let Some(tx) = me.reached.take() {
                    let _ = tx.send(());
                }
                return std::task::Poll::Pending;
            }
        }
        let limit = if me.pos < me.pause {
            me.pause - me.pos
        } else {
            usize::MAX
        };
        let n = me.left.min(buf.remaining()).min(64 * 1024).min(limit);
        let bytes: Vec<u8> = (me.pos..me.pos + n).map(|i| (i % 249) as u8).collect();
        buf.put_slice(&bytes);
        me.left -= n;
        me.pos += n;
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stopped_mid_upload_does_not_fail_the_put() {
    let mut cluster = Cluster::start(3, 3).await;
    let (key, replicas) = cluster.key_where(|_| true).await;
    let coordinator = cluster.index_of(&replicas[0]);
    let victim = cluster.index_of(&replicas[2]);
    const LEN: usize = 24 << 20;
    let gate = std::sync::Arc::new(std::sync::Mutex::new((false, None)));
    let (reached_tx, reached) = tokio::sync::oneshot::channel();
    let reader = Gated {
        left: LEN,
        pos: 0,
        pause: LEN / 3,
        gate: gate.clone(),
        reached: Some(reached_tx),
    };
    let client = cluster.client(coordinator);
    let upload = tokio::spawn({
        let (client, key) = (client.clone(), key.clone());
        async move {
            client
                .put_reader(&key, reader, mydht_client::WriteOptions::default(), &|_| {})
                .await
        }
    });
    // A third of the value is on its way to every replica; stop one.
    reached.await.expect("the upload reached the pause");
    cluster.stop(victim).await;
    let waker = {
        let mut g = gate.lock().expect("gate");
        g.0 = true;
        g.1.take()
    };
    if let Some(w) = waker {
        w.wake();
    }
    let version = upload
        .await
        .expect("task")
        .expect("W = 2 replicas still took it all");
    let got = client.get(&key).await.expect("get").expect("found");
    assert_eq!(got.version, version);
    assert_eq!(got.bytes.len(), LEN);
    assert!(
        got.bytes
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i % 249) as u8)
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_http_client_is_cut_off_while_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut cfg = common::config(None, 1);
    cfg.handshake_timeout = std::time::Duration::from_millis(500);
    let node = mydht_node::start(cfg, mydht_store::MemoryStore::new())
        .await
        .expect("node");
    let addr = node.local_addr();
    // Half a request line, then nothing.
    let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHo")
        .await
        .expect("write");
    // Meanwhile a whole request is answered at once.
    let mut quick = tokio::net::TcpStream::connect(addr).await.expect("connect");
    quick
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        quick.read_to_string(&mut answer),
    )
    .await
    .expect("served while the slow one waits")
    .expect("read");
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n"),
        "{answer}"
    );
    // The slow one is closed by the node (end of stream or reset) once the
    // header deadline passes, not before.
    let started = tokio::time::Instant::now();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        slow.read_to_end(&mut rest),
    )
    .await
    .expect("the node closes the slow connection");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(300),
        "closed before its deadline"
    );
    tokio::time::timeout(std::time::Duration::from_secs(10), node.shutdown())
        .await
        .expect("shuts down");
}

/// A writer that accepts `budget` bytes, then stalls forever: a download
/// whose reader stopped reading.
struct Stalled {
    budget: usize,
}

impl tokio::io::AsyncWrite for Stalled {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.budget == 0 {
            return std::task::Poll::Pending;
        }
        let n = buf.len().min(self.budget);
        self.budget -= n;
        std::task::Poll::Ready(Ok(n))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_large_transfer_does_not_block_small_requests() {
    let cluster = Cluster::start(3, 3).await;
    // One client: one connection to the node, shared by everything below.
    let client = cluster.client(0);
    let big = Bytes::from(vec![5u8; 16 << 20]);
    client.put("big", big).await.expect("put");
    let download = tokio::spawn({
        let client = client.clone();
        async move {
            let mut sink = Stalled { budget: 1 << 20 };
            client
                .get_to_writer(
                    "big",
                    &mut sink,
                    mydht_client::ReadOptions::default(),
                    &|_| {},
                )
                .await
        }
    });
    // The download has stalled mid-value; small requests on the same
    // connection, through the same node and its replica connections, go on.
    for i in 0..20 {
        let key = format!("small-{i}");
        tokio::time::timeout(std::time::Duration::from_secs(5), client.put(&key, "v"))
            .await
            .expect("a small put is not stuck behind the large get")
            .expect("put");
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), client.get(&key))
            .await
            .expect("a small get is not stuck behind the large get")
            .expect("get");
        assert_eq!(&got.expect("found").bytes[..], b"v");
    }
    assert!(
        !download.is_finished(),
        "the large transfer is still stalled"
    );
    download.abort();
    cluster.shutdown().await;
}
