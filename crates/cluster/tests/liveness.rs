//! Liveness against a real (fake) member over TCP: a member whose
//! connection stays open but which stops answering is marked down, and is
//! seen up again once it answers, even though no connection ever broke.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use mydht_cluster::net::TcpDialer;
use mydht_cluster::{Cluster, ClusterConfig};
use mydht_proto::io::{FrameReader, FrameWriter, accept_preface};
use mydht_proto::{Body, Frame, Limits, Members, Request, RequestId, Response, Welcome};
use mydht_ring::{NodeId, RingParams};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A member that completes the handshake, then answers `Members` only while
/// `answering` is set and otherwise swallows requests without a word (a
/// paused process, a partition that drops packets without a reset).
async fn fake_member(answering: Arc<AtomicBool>) -> NodeId {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let name = NodeId::new(listener.local_addr().expect("addr").to_string()).expect("name");
    let me = name.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (answering, me) = (answering.clone(), me.clone());
            tokio::spawn(async move {
                let (mut r, mut w) = stream.into_split();
                let Ok(version) = accept_preface(&mut r, &mut w).await else {
                    return;
                };
                let mut reader = FrameReader::new(r, Limits::default(), BytesMut::new());
                let mut writer = FrameWriter::new(w, Limits::default());
                let Ok(Some(_hello)) = reader.next().await else {
                    return;
                };
                let welcome = Welcome {
                    node: me.clone(),
                    version,
                    challenge: None,
                };
                if writer
                    .send(&Frame::new(RequestId(0), Body::Welcome(welcome)))
                    .await
                    .is_err()
                {
                    return;
                }
                while let Ok(Some(frame)) = reader.next().await {
                    if !answering.load(Ordering::SeqCst) {
                        continue;
                    }
                    if let Body::Request(Request::Members) = frame.body {
                        let view = Members {
                            version: 0,
                            epoch: 1,
                            replicas: 1,
                            vnodes: 1,
                            params_version: 1,
                            previous_replicas: None,
                            members: vec![],
                        };
                        let answer = Frame::new(frame.id, Body::Response(Response::Members(view)));
                        if writer.send(&answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_answering_on_an_open_connection_is_down_until_it_answers() {
    let answering = Arc::new(AtomicBool::new(true));
    let peer = fake_member(answering.clone()).await;
    let cfg = ClusterConfig {
        me: NodeId::new("127.0.0.1:1").expect("name"),
        data_dir: None,
        params: RingParams::new(1, 8).expect("params"),
        limits: Limits::default(),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_millis(200),
        down_after: Duration::from_millis(300),
        down_backoff: Duration::from_millis(100),
    };
    let stop = CancellationToken::new();
    let (cluster, _) =
        Cluster::open(cfg, Arc::new(TcpDialer), TaskTracker::new(), stop.clone()).expect("open");
    let rpc = cluster.rpc();
    let _: Members = rpc.call(&peer, Request::Members).await.expect("answers");
    assert!(!cluster.is_down(&peer));
    // It goes quiet: calls time out until it has been failing for down_after.
    answering.store(false, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cluster.is_down(&peer) {
        assert!(tokio::time::Instant::now() < deadline, "never marked down");
        let r: Result<Members, _> = rpc.call(&peer, Request::Members).await;
        assert!(r.is_err(), "a quiet member does not answer");
    }
    // It answers again: a recheck sees it, with no connection having broken.
    answering.store(true, Ordering::SeqCst);
    cluster.recheck_down().await;
    assert!(!cluster.is_down(&peer), "up again once it answers");
}
