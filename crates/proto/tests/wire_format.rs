//! Pins the wire encoding of every enum variant. postcard encodes a variant
//! by its index, so reordering or removing a variant would silently break
//! talking to the previous release: such a change must fail here. New
//! variants are appended (and added to these lists).

use bytes::Bytes;
use mydht_proto::*;
use mydht_ring::NodeId;

fn tag<T: serde::Serialize>(v: &T) -> u8 {
    postcard::to_allocvec(v).expect("serializes")[0]
}

fn node() -> NodeId {
    NodeId::new("a:1").expect("valid")
}

fn version() -> Version {
    Version {
        timestamp: Timestamp::from_parts(1, 2),
        node: node(),
    }
}

fn members() -> Members {
    Members {
        version: 9,
        epoch: 1,
        replicas: 3,
        vnodes: 512,
        params_version: 1,
        previous_replicas: None,
        members: vec![],
    }
}

#[test]
fn body_variant_indices_are_stable() {
    let bodies = [
        Body::Hello(Hello {
            peer: Peer::Client,
            nonce: [0; 16],
        }),
        Body::Welcome(Welcome {
            node: node(),
            version: 1,
            challenge: None,
        }),
        Body::Request(Request::Purge),
        Body::Response(Response::Done),
        Body::Chunk(Chunk {
            seq: 0,
            data: Bytes::new(),
            last: true,
        }),
        Body::Cancel,
        Body::Ack(3),
    ];
    let tags: Vec<u8> = bodies.iter().map(tag).collect();
    assert_eq!(tags, [0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(BODY_KINDS, 7);
}

#[test]
fn request_variant_indices_are_stable() {
    let key = Bytes::from_static(b"k");
    let wid = WriteId { client: 1, seq: 2 };
    let requests = [
        Request::Put(Put {
            key: key.clone(),
            value: Payload::Inline(Bytes::new()),
            write_id: wid,
            seen: None,
            w: None,
            retry: false,
        }),
        Request::Get(Get {
            key: key.clone(),
            r: None,
        }),
        Request::Del(Del {
            key: key.clone(),
            write_id: wid,
            seen: None,
            w: None,
            retry: false,
        }),
        Request::HasKey { key: key.clone() },
        Request::Whereis { key: key.clone() },
        Request::Purge,
        Request::Balance { forwarded: false },
        Request::Remove {
            node: node(),
            forwarded: false,
            asked: vec![],
        },
        Request::Join { node: node() },
        Request::ReplicaStore {
            key: key.clone(),
            version: version(),
            value: None,
            write_id: None,
        },
        Request::ReplicaFetch { key: key.clone() },
        Request::ReplicaProbe { key },
        Request::Members,
        Request::SendGained {
            node: node(),
            asked: vec![node()],
        },
        Request::ReplicaDigest { start: 1, end: 2 },
        Request::Gossip(members()),
        Request::SyncRing {
            node: node(),
            version: 7,
            clock_ms: 1,
        },
        Request::ReplicaRecall {
            key: Bytes::from_static(b"k"),
            write_id: wid,
        },
        Request::Replicas { n: 5 },
        Request::Reshape { asked: vec![] },
        Request::ReplicaParts { cover: vec![] },
        Request::ReplicaLeaves {
            cover: vec![],
            parts: vec![],
        },
        Request::ReplicaEntries {
            cover: vec![(0, 1)],
            asks: vec![LeafAsk {
                leaf: 3,
                want: Want::Except(vec![]),
            }],
        },
    ];
    let tags: Vec<u8> = requests.iter().map(tag).collect();
    assert_eq!(tags, (0..23).collect::<Vec<u8>>());
    assert_eq!(REQUEST_KINDS, 23);
}

#[test]
fn response_and_error_variant_indices_are_stable() {
    let responses = [
        Response::Stored { version: version() },
        Response::Deleted { version: version() },
        Response::Value {
            version: version(),
            value: Payload::Streamed { len: None },
        },
        Response::HasKey { timestamp: None },
        Response::Whereis { nodes: vec![] },
        Response::Done,
        Response::Members(members()),
        Response::ReplicaStored {
            applied: true,
            held: None,
        },
        Response::Held(Held::Absent),
        Response::Entry(None),
        Response::Error(ErrorReply::NotFound),
        Response::Digest { count: 1, hash: 2 },
        Response::Recalled(None),
        Response::Parts(vec![]),
        Response::Leaves(vec![]),
        Response::Entries {
            answered: 0,
            entries: vec![],
        },
    ];
    let tags: Vec<u8> = responses.iter().map(tag).collect();
    assert_eq!(tags, (0..16).collect::<Vec<u8>>());

    let errors = [
        ErrorReply::NotFound,
        ErrorReply::Quorum {
            acked: 0,
            required: 1,
        },
        ErrorReply::Unavailable {
            answered: 0,
            required: 1,
            nodes: vec![],
        },
        ErrorReply::TooLarge {
            what: Limited::Key,
            size: 1,
            max: 0,
        },
        ErrorReply::BadRequest {
            reason: String::new(),
        },
        ErrorReply::UnknownRequest,
        ErrorReply::UnsupportedVersion {
            their_min: 0,
            their_max: 0,
            min: 1,
            max: 1,
        },
        ErrorReply::Internal {
            reason: String::new(),
        },
        ErrorReply::ClockAhead {
            ahead_ms: 1,
            bound_ms: 0,
        },
        ErrorReply::FutureVersion {
            node: node(),
            ahead_ms: 1,
        },
    ];
    let tags: Vec<u8> = errors.iter().map(tag).collect();
    assert_eq!(tags, (0..10).collect::<Vec<u8>>());
    let codes: Vec<u16> = errors.iter().map(|e| e.code() as u16).collect();
    assert_eq!(codes, (1..=10).collect::<Vec<u16>>());
}

#[test]
fn a_whole_frame_has_the_documented_layout() {
    // 4-byte big-endian length, varint id, Body::Request (2), Request::Purge (5).
    let mut buf = bytes::BytesMut::new();
    encode_frame(
        &Frame::new(RequestId(300), Body::Request(Request::Purge)),
        &mut buf,
        &Limits::default(),
    )
    .expect("encodes");
    assert_eq!(&buf[..], [0, 0, 0, 4, 0xac, 0x02, 2, 5]);
}

#[test]
fn the_most_leaves_one_call_may_ask_fit_in_a_frame() {
    // Counts as large as a store of billions of keys per leaf would have.
    let leaves = vec![
        LeafDigest {
            count: u64::from(u32::MAX),
            hash: [0xff; 4],
        };
        MAX_LEAF_PARTS * 256
    ];
    let frame = Frame::new(
        RequestId(u64::MAX),
        Body::Response(Response::Leaves(leaves)),
    );
    let mut wire = bytes::BytesMut::new();
    encode_frame(&frame, &mut wire, &Limits::default()).expect("fits the default frame limit");
    assert!(wire.len() < DEFAULT_MAX_FRAME_LEN, "{} bytes", wire.len());
    // A typical leaf (a few entries) is about 5 bytes.
    let one = postcard::to_allocvec(&LeafDigest {
        count: 15,
        hash: [1, 2, 3, 4],
    })
    .expect("encodes");
    assert_eq!(one.len(), 5);
}
