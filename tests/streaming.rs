//! Values larger than a chunk, end to end: streamed through every
//! replica, refused early when over the node's limit, completed when a
//! replica stops mid-upload, and never blocking small requests behind a
//! stalled transfer.

mod common;

use bytes::Bytes;
use common::Cluster;
use mydht_client::ClientError;
use mydht_proto::ErrorReply;

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

/// A client that stops sending in the middle of a streamed put is cut off
/// at the per-chunk deadline (the request deadline, as for HTTP bodies):
/// the put is refused, nothing of it is stored on any replica, the same
/// write id can be used again, and other requests on the node go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_put_whose_client_stops_sending_is_cut_off() {
    use mydht_proto::{Chunk, Held, Payload, Put, Request, Response, WriteId};
    let mut cluster = Cluster::start(3, 3).await;
    let node = cluster.names[0].clone();
    let conn = common::raw(&node).await;
    let write_id = WriteId { client: 77, seq: 1 };
    let mut exchange = conn
        .request(Request::Put(Put {
            key: Bytes::from_static(b"stalled"),
            value: Payload::Streamed { len: Some(3 << 20) },
            write_id,
            seen: None,
            w: None,
            retry: false,
        }))
        .await
        .expect("request sent");
    exchange
        .send_chunk(Chunk {
            seq: 0,
            data: Bytes::from(vec![1u8; mydht_proto::Limits::default().chunk_size]),
            last: false,
        })
        .await
        .expect("first chunk");
    // Then nothing, on a connection left open. Meanwhile the node serves
    // other requests.
    cluster
        .client(0)
        .put("other", "v")
        .await
        .expect("another put");
    let answer = tokio::time::timeout(std::time::Duration::from_secs(30), exchange.response())
        .await
        .expect("the put is answered within 30 s, not held forever")
        .expect("an answer");
    match answer {
        Response::Error(ErrorReply::BadRequest { reason }) => {
            assert!(reason.contains("no body data within"), "{reason}")
        }
        other => panic!("unexpected {other:?}"),
    }
    for n in &cluster.names {
        assert_eq!(common::held(n, "stalled").await, Held::Absent, "on {n}");
    }
    // The write id is free: the same id with a whole value is stored.
    let retry = conn
        .call(common::put_request("stalled", "whole", write_id, None))
        .await
        .expect("retry");
    assert!(matches!(retry, Response::Stored { .. }), "{retry:?}");
    cluster.stop(0).await;
    cluster.shutdown().await;
}
