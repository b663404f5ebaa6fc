//! The multiplexed connection against a scripted peer on 127.0.0.1:0:
//! answers routed by id whatever their order, streamed answers, version
//! refusal, closed connections and cancellation.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mydht_proto::conn::{ConnError, Connection};
use mydht_proto::io::{FrameReader, FrameWriter, IoError, accept_preface};
use mydht_proto::*;
use mydht_ring::NodeId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(10);

type Server = (FrameReader<OwnedReadHalf>, FrameWriter<OwnedWriteHalf>);

/// Accepts one connection and completes the handshake as a node would.
async fn accept(listener: &TcpListener) -> Server {
    let (stream, _) = listener.accept().await.expect("accept");
    let (mut r, mut w) = stream.into_split();
    accept_preface(&mut r, &mut w).await.expect("preface");
    let mut reader = FrameReader::new(r, Limits::default(), BytesMut::new());
    let mut writer = FrameWriter::new(w, Limits::default());
    let hello = reader.next().await.expect("reads").expect("a hello");
    assert!(matches!(hello.body, Body::Hello(_)), "{hello:?}");
    let welcome = Welcome {
        node: NodeId::new("server:1").expect("valid"),
        version: MAX_PROTOCOL_VERSION,
        challenge: None,
    };
    writer
        .send(&Frame::new(RequestId(0), Body::Welcome(welcome)))
        .await
        .expect("welcome");
    (reader, writer)
}

async fn pair() -> (Connection, Server) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { accept(&listener).await });
    let (r, w) = TcpStream::connect(addr)
        .await
        .expect("connect")
        .into_split();
    let hello = Hello {
        peer: Peer::Client,
        nonce: [7; 16],
    };
    let conn = Connection::open(r, w, hello, Limits::default())
        .await
        .expect("handshake");
    (conn, server.await.expect("server task"))
}

fn haskey(key: &str) -> Request {
    Request::HasKey {
        key: Bytes::copy_from_slice(key.as_bytes()),
    }
}

#[tokio::test]
async fn answers_reach_their_requests_in_any_order() {
    let (conn, (mut reader, mut writer)) = pair().await;
    assert_eq!(conn.peer().as_str(), "server:1");
    let calls: Vec<_> = (0..50u64)
        .map(|i| {
            let conn = conn.clone();
            tokio::spawn(async move { (i, conn.call(haskey(&i.to_string())).await) })
        })
        .collect();
    // Collect all 50 requests, then answer them in reverse order, each with
    // a timestamp naming its own key.
    let mut got = Vec::new();
    while got.len() < 50 {
        let f = timeout(DEADLINE, reader.next())
            .await
            .expect("in time")
            .expect("reads")
            .expect("frame");
        let Body::Request(Request::HasKey { key }) = f.body else {
            panic!("{f:?}")
        };
        let n: u64 = std::str::from_utf8(&key)
            .expect("utf8")
            .parse()
            .expect("number");
        got.push((f.id, n));
    }
    for (id, n) in got.into_iter().rev() {
        let answer = Response::HasKey {
            timestamp: Some(Timestamp::from_parts(n, 0)),
        };
        writer
            .feed(&Frame::new(id, Body::Response(answer)))
            .expect("feed");
    }
    writer.flush().await.expect("flush");
    for call in calls {
        let (i, answer) = timeout(DEADLINE, call)
            .await
            .expect("in time")
            .expect("task");
        assert_eq!(
            answer.expect("answered"),
            Response::HasKey {
                timestamp: Some(Timestamp::from_parts(i, 0))
            }
        );
    }
}

#[tokio::test]
async fn streamed_answers_arrive_whole_and_in_order() {
    let (conn, (mut reader, mut writer)) = pair().await;
    let data = Bytes::from((0..200_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let expected = data.clone();
    let server = tokio::spawn(async move {
        let f = reader.next().await.expect("reads").expect("frame");
        let version = Version {
            timestamp: Timestamp::from_parts(1, 0),
            node: NodeId::new("server:1").expect("valid"),
        };
        let head = Response::Value {
            version,
            value: Payload::Streamed {
                len: Some(data.len() as u64),
            },
        };
        writer
            .send(&Frame::new(f.id, Body::Response(head)))
            .await
            .expect("head");
        // Keep to the window: chunk i goes out once i < acked + WINDOW.
        let chunks: Vec<Chunk> = split_chunks(data, 7_000).collect();
        let total = chunks.len() as u32;
        let mut acked = 0u32;
        for (i, c) in (0u32..).zip(chunks) {
            while i >= acked + WINDOW {
                let ack = reader.next().await.expect("reads").expect("an ack");
                let Body::Ack(n) = ack.body else {
                    panic!("{ack:?}")
                };
                assert_eq!(ack.id, f.id);
                acked = n;
            }
            writer
                .send(&Frame::new(f.id, Body::Chunk(c)))
                .await
                .expect("chunk");
        }
        // The final chunk is not acknowledged; the others all are.
        while acked + 1 < total {
            let ack = reader.next().await.expect("reads").expect("an ack");
            let Body::Ack(n) = ack.body else {
                panic!("{ack:?}")
            };
            acked = n;
        }
        (reader, writer)
    });
    let mut ex = conn
        .request(Request::Get(Get {
            key: Bytes::from_static(b"big"),
            r: None,
        }))
        .await
        .expect("sent");
    let head = timeout(DEADLINE, ex.response())
        .await
        .expect("in time")
        .expect("head");
    let Response::Value {
        value: Payload::Streamed { len: Some(len) },
        ..
    } = head
    else {
        panic!("{head:?}")
    };
    let mut asm = ChunkAssembler::new(Some(len), len, 7_000).expect("fits");
    let mut got = Vec::new();
    while !ex.is_done() {
        let c = timeout(DEADLINE, ex.chunk())
            .await
            .expect("in time")
            .expect("chunk");
        asm.push(&c).expect("in order");
        got.extend_from_slice(&c.data);
    }
    assert_eq!(got, expected);
    // The connection still serves requests afterwards.
    let (mut reader, mut writer) = server.await.expect("server");
    let pending = tokio::spawn({
        let conn = conn.clone();
        async move { conn.call(Request::Purge).await }
    });
    let f = reader.next().await.expect("reads").expect("frame");
    writer
        .send(&Frame::new(f.id, Body::Response(Response::Done)))
        .await
        .expect("done");
    assert_eq!(
        pending.await.expect("task").expect("answered"),
        Response::Done
    );
}

#[tokio::test]
async fn a_peer_of_another_version_gets_a_typed_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut theirs = [0u8; PREFACE_LEN];
        s.read_exact(&mut theirs).await.expect("their preface");
        s.write_all(&Preface { min: 7, max: 9 }.encode())
            .await
            .expect("ours");
    });
    let (r, w) = TcpStream::connect(addr)
        .await
        .expect("connect")
        .into_split();
    let hello = Hello {
        peer: Peer::Client,
        nonce: [0; 16],
    };
    let err = Connection::open(r, w, hello, Limits::default())
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(
            err,
            ConnError::Io(IoError::Preface(PrefaceError::Unsupported { .. }))
        ),
        "{err}"
    );
    server.await.expect("server");
}

#[tokio::test]
async fn requests_in_flight_fail_when_the_peer_goes_away() {
    let (conn, (mut reader, writer)) = pair().await;
    let call = tokio::spawn({
        let conn = conn.clone();
        async move { conn.call(Request::Purge).await }
    });
    reader
        .next()
        .await
        .expect("reads")
        .expect("the request arrived");
    drop((reader, writer));
    let result = timeout(DEADLINE, call)
        .await
        .expect("in time")
        .expect("task");
    assert!(matches!(result, Err(ConnError::Closed)), "{result:?}");
    timeout(DEADLINE, conn.closed())
        .await
        .expect("closed in time");
    assert!(matches!(
        conn.call(Request::Purge).await,
        Err(ConnError::Closed)
    ));
}

#[tokio::test]
async fn dropping_an_unanswered_exchange_cancels_it() {
    let (conn, (mut reader, _writer)) = pair().await;
    let ex = conn.request(Request::Purge).await.expect("sent");
    let id = ex.id();
    drop(ex);
    let first = timeout(DEADLINE, reader.next())
        .await
        .expect("in time")
        .expect("reads")
        .expect("frame");
    assert_eq!(first.id, id);
    let second = timeout(DEADLINE, reader.next())
        .await
        .expect("in time")
        .expect("reads")
        .expect("frame");
    assert_eq!(second, Frame::new(id, Body::Cancel));
}

#[tokio::test]
async fn a_request_over_the_frame_limit_is_refused_not_hung() {
    let (conn, _server) = pair().await;
    let huge = Request::Put(Put {
        key: Bytes::from_static(b"k"),
        value: Payload::Inline(Bytes::from(vec![0u8; DEFAULT_MAX_FRAME_LEN + 1])),
        write_id: WriteId { client: 1, seq: 1 },
        seen: None,
        w: None,
        retry: false,
    });
    let answer = timeout(DEADLINE, conn.call(huge))
        .await
        .expect("in time")
        .expect("answered");
    assert!(
        matches!(
            answer,
            Response::Error(ErrorReply::TooLarge {
                what: Limited::Frame,
                ..
            })
        ),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_peer_ignoring_the_window_loses_only_that_stream() {
    let (conn, (mut reader, mut writer)) = pair().await;
    let mut flood = conn
        .request(Request::Get(Get {
            key: Bytes::from_static(b"big"),
            r: None,
        }))
        .await
        .expect("sent");
    let f = reader.next().await.expect("reads").expect("frame");
    let version = Version {
        timestamp: Timestamp::from_parts(1, 0),
        node: NodeId::new("server:1").expect("valid"),
    };
    let head = Response::Value {
        version,
        value: Payload::Streamed { len: None },
    };
    writer
        .feed(&Frame::new(f.id, Body::Response(head)))
        .expect("head");
    // Far more chunks than the window allows, with nobody reading them yet.
    for seq in 0..100 {
        let c = Chunk {
            seq,
            data: Bytes::from_static(b"x"),
            last: false,
        };
        writer
            .feed(&Frame::new(f.id, Body::Chunk(c)))
            .expect("chunk");
    }
    writer.flush().await.expect("flush");
    // Another request on the same connection is answered regardless.
    let other = tokio::spawn({
        let conn = conn.clone();
        async move { conn.call(Request::Purge).await }
    });
    let g = timeout(DEADLINE, reader.next())
        .await
        .expect("in time")
        .expect("reads")
        .expect("frame");
    writer
        .send(&Frame::new(g.id, Body::Response(Response::Done)))
        .await
        .expect("done");
    let answer = timeout(DEADLINE, other)
        .await
        .expect("not blocked")
        .expect("task");
    assert_eq!(answer.expect("answered"), Response::Done);
    // The flooding stream itself was dropped.
    let mut got = 0;
    let err = loop {
        match timeout(DEADLINE, flood.recv()).await.expect("in time") {
            Ok(_) => got += 1,
            Err(e) => break e,
        }
    };
    assert!(got <= WINDOW as usize + 8, "{got} frames buffered");
    assert!(matches!(err, ConnError::Closed), "{err:?}");
}
