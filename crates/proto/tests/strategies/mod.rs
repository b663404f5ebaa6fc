//! proptest strategies generating every message type.

use bytes::Bytes;
use mydht_proto::*;
use mydht_ring::{Member, MemberState, NodeId};
use proptest::prelude::*;

pub fn node_id() -> impl Strategy<Value = NodeId> {
    "[a-z0-9.-]{1,24}:[0-9]{1,5}".prop_map(|s| NodeId::new(s).expect("valid by construction"))
}

pub fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

pub fn key() -> impl Strategy<Value = Bytes> {
    bytes(64)
}

pub fn timestamp() -> impl Strategy<Value = Timestamp> {
    any::<u64>().prop_map(Timestamp::from_raw)
}

pub fn version() -> impl Strategy<Value = Version> {
    (timestamp(), node_id()).prop_map(|(timestamp, node)| Version { timestamp, node })
}

pub fn write_id() -> impl Strategy<Value = WriteId> {
    (any::<u64>(), any::<u64>()).prop_map(|(client, seq)| WriteId { client, seq })
}

pub fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        bytes(300).prop_map(Payload::Inline),
        any::<Option<u64>>().prop_map(|len| Payload::Streamed { len }),
    ]
}

pub fn member() -> impl Strategy<Value = Member> {
    (node_id(), member_state(), any::<u64>())
        .prop_map(|(id, state, version)| Member::new(id, state).at(version))
}

pub fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (
            key(),
            payload(),
            write_id(),
            prop::option::of(version()),
            any::<Option<u8>>(),
            any::<bool>()
        )
            .prop_map(|(key, value, write_id, seen, w, retry)| Request::Put(Put {
                key,
                value,
                write_id,
                seen,
                w,
                retry
            })),
        (key(), any::<Option<u8>>()).prop_map(|(key, r)| Request::Get(Get { key, r })),
        (
            key(),
            write_id(),
            prop::option::of(version()),
            any::<Option<u8>>(),
            any::<bool>()
        )
            .prop_map(|(key, write_id, seen, w, retry)| Request::Del(Del {
                key,
                write_id,
                seen,
                w,
                retry
            })),
        key().prop_map(|key| Request::HasKey { key }),
        key().prop_map(|key| Request::Whereis { key }),
        Just(Request::Purge),
        any::<bool>().prop_map(|forwarded| Request::Balance { forwarded }),
        (
            node_id(),
            any::<bool>(),
            prop::collection::vec(node_id(), 0..4)
        )
            .prop_map(|(node, forwarded, asked)| Request::Remove {
                node,
                forwarded,
                asked
            }),
        node_id().prop_map(|node| Request::Join { node }),
        (
            key(),
            version(),
            prop::option::of(payload()),
            prop::option::of(write_id())
        )
            .prop_map(|(key, version, value, write_id)| Request::ReplicaStore {
                key,
                version,
                value,
                write_id,
            }),
        key().prop_map(|key| Request::ReplicaFetch { key }),
        key().prop_map(|key| Request::ReplicaProbe { key }),
        Just(Request::Members),
        (node_id(), prop::collection::vec(node_id(), 0..4))
            .prop_map(|(node, asked)| Request::SendGained { node, asked }),
        (any::<u64>(), any::<u64>()).prop_map(|(start, end)| Request::ReplicaDigest { start, end }),
        members().prop_map(Request::Gossip),
        (node_id(), any::<u64>(), any::<u64>()).prop_map(|(node, version, clock_ms)| {
            Request::SyncRing {
                node,
                version,
                clock_ms,
            }
        }),
        (key(), write_id()).prop_map(|(key, write_id)| Request::ReplicaRecall { key, write_id }),
        any::<u8>().prop_map(|n| Request::Replicas { n }),
        prop::collection::vec(node_id(), 0..4).prop_map(|asked| Request::Reshape { asked }),
    ]
}

pub fn members() -> impl Strategy<Value = Members> {
    (
        (any::<u64>(), any::<u64>(), any::<u64>()),
        (any::<u8>(), any::<Option<u8>>()),
        any::<u32>(),
        prop::collection::vec(member(), 0..5),
    )
        .prop_map(
            |((version, epoch, params_version), (replicas, previous_replicas), vnodes, members)| {
                Members {
                    version,
                    epoch,
                    replicas,
                    vnodes,
                    params_version,
                    previous_replicas,
                    members,
                }
            },
        )
}

pub fn member_state() -> impl Strategy<Value = MemberState> {
    prop_oneof![
        Just(MemberState::Joining),
        Just(MemberState::Up),
        Just(MemberState::Leaving),
        Just(MemberState::Removed),
    ]
}

pub fn error_reply() -> impl Strategy<Value = ErrorReply> {
    let limited = prop_oneof![
        Just(Limited::Key),
        Just(Limited::InlineValue),
        Just(Limited::Value),
        Just(Limited::Frame),
    ];
    prop_oneof![
        Just(ErrorReply::NotFound),
        (any::<u8>(), any::<u8>())
            .prop_map(|(acked, required)| ErrorReply::Quorum { acked, required }),
        (
            any::<u8>(),
            any::<u8>(),
            prop::collection::vec(node_id(), 0..4)
        )
            .prop_map(|(answered, required, nodes)| ErrorReply::Unavailable {
                answered,
                required,
                nodes
            }),
        (limited, any::<u64>(), any::<u64>()).prop_map(|(what, size, max)| ErrorReply::TooLarge {
            what,
            size,
            max
        }),
        ".{0,40}".prop_map(|reason| ErrorReply::BadRequest { reason }),
        Just(ErrorReply::UnknownRequest),
        (any::<u16>(), any::<u16>(), any::<u16>(), any::<u16>()).prop_map(
            |(their_min, their_max, min, max)| ErrorReply::UnsupportedVersion {
                their_min,
                their_max,
                min,
                max
            }
        ),
        ".{0,40}".prop_map(|reason| ErrorReply::Internal { reason }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(ahead_ms, bound_ms)| ErrorReply::ClockAhead { ahead_ms, bound_ms }),
        (node_id(), any::<u64>())
            .prop_map(|(node, ahead_ms)| ErrorReply::FutureVersion { node, ahead_ms }),
    ]
}

pub fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        version().prop_map(|version| Response::Stored { version }),
        version().prop_map(|version| Response::Deleted { version }),
        (version(), payload()).prop_map(|(version, value)| Response::Value { version, value }),
        prop::option::of(timestamp()).prop_map(|timestamp| Response::HasKey { timestamp }),
        prop::collection::vec(node_id(), 0..5).prop_map(|nodes| Response::Whereis { nodes }),
        Just(Response::Done),
        members().prop_map(Response::Members),
        (any::<bool>(), proptest::option::of(version()))
            .prop_map(|(applied, held)| Response::ReplicaStored { applied, held }),
        prop_oneof![
            Just(Held::Absent),
            version().prop_map(Held::Value),
            version().prop_map(Held::Tombstone),
        ]
        .prop_map(Response::Held),
        prop::option::of((version(), prop::option::of(payload()))).prop_map(|e| Response::Entry(
            e.map(|(version, value)| ReplicaEntry { version, value })
        )),
        error_reply().prop_map(Response::Error),
        (any::<u64>(), any::<u64>()).prop_map(|(count, hash)| Response::Digest { count, hash }),
        prop::option::of(version()).prop_map(Response::Recalled),
    ]
}

pub fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (
            prop_oneof![Just(Peer::Client), node_id().prop_map(Peer::Node)],
            any::<[u8; 16]>()
        )
            .prop_map(|(peer, nonce)| Body::Hello(Hello { peer, nonce })),
        (node_id(), any::<u16>(), any::<Option<[u8; 32]>>()).prop_map(
            |(node, version, challenge)| Body::Welcome(Welcome {
                node,
                version,
                challenge
            })
        ),
        request().prop_map(Body::Request),
        response().prop_map(Body::Response),
        (any::<u32>(), bytes(600), any::<bool>())
            .prop_map(|(seq, data, last)| Body::Chunk(Chunk { seq, data, last })),
        Just(Body::Cancel),
        any::<u32>().prop_map(Body::Ack),
    ]
}

pub fn frame() -> impl Strategy<Value = Frame> {
    (any::<u64>(), body()).prop_map(|(id, body)| Frame::new(RequestId(id), body))
}
