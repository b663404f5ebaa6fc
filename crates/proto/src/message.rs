//! The messages themselves: handshake, requests, responses and chunks.
//!
//! Every frame is a [`Frame`](crate::Frame): a [`RequestId`] and a [`Body`].
//! The id ties responses and chunks to their request, so one connection can
//! carry many requests at once; handshake frames use id 0. Request kinds
//! mirror the seed's commands (put, get, del, haskey, whereis, purge,
//! balance, remove, leave, join, addnode) plus the node-to-node replica calls.
//! Variants are only ever appended: postcard encodes an enum by its index.

use bytes::Bytes;
use mydht_ring::{Member, NodeId};
use serde::{Deserialize, Serialize};

use crate::{ErrorReply, Timestamp, Version, WriteId};

/// Ties a response or chunk to its request; chosen by the requester, unique
/// among its requests in flight on one connection.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct RequestId(pub u64);

/// What a frame carries.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Body {
    /// The first frame a connecting side sends, right after the prefaces.
    Hello(Hello),
    /// The accepting side's answer to [`Hello`].
    Welcome(Welcome),
    /// A request; the answer comes as a [`Body::Response`] with the same id.
    Request(Request),
    /// The answer to the request with the same id.
    Response(Response),
    /// A piece of a streamed value for the request with the same id.
    Chunk(Chunk),
    /// The sender abandons the request or stream with this id (a timeout, or
    /// a lagging replica cut off); the receiver drops what it had of it.
    Cancel,
    /// Flow control for the stream with this id: the receiver has consumed
    /// this many of its chunks (a running count). A sender keeps at most
    /// [`WINDOW`](crate::WINDOW) chunks beyond the last count it received in
    /// flight, so a receiver never has to buffer more than that and one slow
    /// stream never blocks the connection it shares with others.
    Ack(u32),
}

/// Who is connecting.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Peer {
    /// A client program.
    Client,
    /// Another member of the cluster, by its advertised name.
    Node(NodeId),
}

/// The connecting side's introduction.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Hello {
    /// Who is connecting.
    pub peer: Peer,
    /// A fresh random value; the cluster-secret handshake (a later release)
    /// binds its proof to it so that proofs cannot be replayed.
    pub nonce: [u8; 16],
}

/// The accepting side's answer to a [`Hello`].
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Welcome {
    /// The accepting node's advertised name.
    pub node: NodeId,
    /// The protocol version both sides now speak.
    pub version: u16,
    /// When the cluster requires its secret, a challenge the connecting side
    /// must answer with a keyed MAC before any request; `None` while no
    /// secret is configured (the only mode of this release).
    pub challenge: Option<[u8; 32]>,
}

/// A value as it travels: inline in the frame, or announced here and carried
/// by [`Chunk`] frames with the same request id.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Payload {
    /// The whole value (at most the chunk size).
    Inline(Bytes),
    /// The value follows as chunks; its length if known in advance.
    Streamed {
        /// Total length in bytes, when the sender knows it.
        len: Option<u64>,
    },
}

/// One piece of a streamed value.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Chunk {
    /// Position of this chunk in the stream, from 0.
    pub seq: u32,
    /// The bytes (at most the chunk size).
    pub data: Bytes,
    /// Whether this is the final chunk.
    pub last: bool,
}

/// Store a value under a key (the seed's PUT).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Put {
    /// The key (at most [`MAX_KEY_LEN`](crate::MAX_KEY_LEN) bytes).
    pub key: Bytes,
    /// The value.
    pub value: Payload,
    /// Names this write, so a retry is answered with the first outcome.
    pub write_id: WriteId,
    /// The newest version the client has seen; the coordinator stamps a
    /// newer one so one client's writes stay in order across nodes.
    pub seen: Option<Version>,
    /// Replicas that must acknowledge; the ring's default when `None`.
    pub w: Option<u8>,
    /// Whether this may be a retry of a write sent before (to this node
    /// or another): the coordinator first asks the replicas whether they
    /// applied this write id, and if one did, completes that version
    /// instead of stamping a second one.
    pub retry: bool,
}

/// Read a key (the seed's GET).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Get {
    /// The key.
    pub key: Bytes,
    /// Replicas to ask; the ring's default when `None`.
    pub r: Option<u8>,
}

/// Delete a key (the seed's DEL): writes a tombstone.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Del {
    /// The key.
    pub key: Bytes,
    /// Names this write, as for [`Put`].
    pub write_id: WriteId,
    /// As for [`Put`].
    pub seen: Option<Version>,
    /// As for [`Put`].
    pub w: Option<u8>,
    /// As for [`Put`].
    pub retry: bool,
}

/// A request. Within a protocol version variants are only appended;
/// protocol 2 retired the one-shot announcements `Left`, `AddNode` and
/// `SetState` for versioned [`Request::Gossip`] and [`Request::SyncRing`].
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Request {
    /// Store a value; any node coordinates.
    Put(Put),
    /// Read a value; any node coordinates.
    Get(Get),
    /// Delete a value; any node coordinates.
    Del(Del),
    /// The timestamp of the asked node's own copy, never forwarded.
    HasKey {
        /// The key.
        key: Bytes,
    },
    /// The key's preference list.
    Whereis {
        /// The key.
        key: Bytes,
    },
    /// Drop keys this node no longer owns, once their owners hold them.
    Purge,
    /// Compare replicas and exchange what differs, on every node.
    Balance {
        /// Set when one node forwards the request to the others, so it is
        /// not forwarded again.
        forwarded: bool,
    },
    /// Take a dead member out of the ring.
    Remove {
        /// The member to remove.
        node: NodeId,
        /// As for [`Request::Balance`].
        forwarded: bool,
        /// When forwarded: every member the removal was sent to (the node
        /// asked included). Only they run a restore pass, so only they may
        /// be counted on to send a key; empty from a client.
        asked: Vec<NodeId>,
    },
    /// The named node asks to join; answered with the member list.
    Join {
        /// The joining node's advertised name.
        node: NodeId,
    },
    /// Replica call: store this version of a key (a value or a tombstone),
    /// unless a newer one is already held. The version is never restamped.
    ReplicaStore {
        /// The key.
        key: Bytes,
        /// The version, as the coordinator stamped it.
        version: Version,
        /// The value, or `None` for a tombstone.
        value: Option<Payload>,
        /// The client write this version carries out, if any: the replica
        /// remembers it for a while (see [`Request::ReplicaRecall`]).
        write_id: Option<WriteId>,
    },
    /// Replica call: send the version this node holds, with its value.
    ReplicaFetch {
        /// The key.
        key: Bytes,
    },
    /// Replica call: say what this node holds of a key, metadata only.
    ReplicaProbe {
        /// The key.
        key: Bytes,
    },
    /// The ring's member list, without joining: how a client learns other
    /// nodes to fall back on. Answered with [`Response::Members`].
    Members,
    /// Send `node` (a joining member) the keys it gained by joining, from
    /// this node's store; answered with [`Response::Done`] once they are
    /// there. Of a key's holders, only those in `asked` (every member the
    /// joiner asks) may be counted on to send it. (Once named `Handoff`.)
    SendGained {
        /// The joining member.
        node: NodeId,
        /// The members the joiner asks.
        asked: Vec<NodeId>,
    },
    /// Replica call: a digest of every entry this node holds whose position
    /// lies in `(start, end]` (the whole circle when they are equal), so two
    /// replicas can tell whether a range differs without listing it.
    /// Answered with [`Response::Digest`].
    ReplicaDigest {
        /// The exclusive lower end of the range.
        start: u64,
        /// The inclusive upper end.
        end: u64,
    },
    /// A member's view of the ring, pushed: merge it entry by entry (the
    /// newer version of each member wins). Answered with
    /// [`Response::Members`] carrying the merged view when it differs from
    /// the one sent, else with [`Response::Done`], so one call is a
    /// push-pull.
    Gossip(Members),
    /// The cheap half of anti-entropy: the caller's ring version. Answered
    /// with [`Response::Done`] when the receiver holds the same ring, else
    /// with [`Response::Members`] (its view, for the caller to merge and
    /// push back with [`Request::Gossip`]).
    SyncRing {
        /// The calling member.
        node: NodeId,
        /// The caller's [`Members::version`].
        version: u64,
        /// The caller's wall clock when it sent this, in milliseconds since
        /// the Unix epoch: how members learn each other's clock offsets
        /// (liveness data, never part of the ring).
        clock_ms: u64,
    },
    /// Replica call: which version of `key` this node applied for the
    /// client write `write_id`, if it remembers one. Answered with
    /// [`Response::Recalled`].
    ReplicaRecall {
        /// The key.
        key: Bytes,
        /// The client write.
        write_id: WriteId,
    },
    /// Admin: set N for the whole ring. Answered with [`Response::Done`]
    /// once every alive member holds the new N; the data then moves to the
    /// new replicas in the background.
    Replicas {
        /// The new N.
        n: u8,
    },
    /// Member call, while N changes: copy every key this node replicates
    /// to the key's new replicas (only the members in `asked`, which run
    /// this too, may be elected to send a key). Answered with
    /// [`Response::Done`] once done.
    Reshape {
        /// The members asked to run it.
        asked: Vec<NodeId>,
    },
    /// Replica call: the digests of the parts of the circle (its top 8
    /// bits), counting only entries whose position `cover` covers (the
    /// ranges caller and callee both replicate, as inclusive intervals).
    /// Answered with [`Response::Parts`], one per part in order.
    ReplicaParts {
        /// Inclusive position intervals.
        cover: Vec<(u64, u64)>,
    },
    /// Replica call: the digests of every leaf (top 16 bits) of each part
    /// named, clipped to `cover`. Answered with [`Response::Leaves`]: for
    /// each part in the order asked, its leaves in order.
    ReplicaLeaves {
        /// Inclusive position intervals.
        cover: Vec<(u64, u64)>,
        /// The parts.
        parts: Vec<u8>,
    },
    /// Replica call: entries of some leaves, clipped to `cover`, chosen by
    /// each ask's [`Want`]. Answered with [`Response::Entries`], which may
    /// answer only the first asks (the rest are asked again).
    ReplicaEntries {
        /// Inclusive position intervals.
        cover: Vec<(u64, u64)>,
        /// The leaves, and for each which entries.
        asks: Vec<LeafAsk>,
    },
}

/// One part's digest: entry count and the XOR of their hashes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PartDigest {
    /// Entries, values and tombstones.
    pub count: u64,
    /// The XOR of the entries' hashes, little-endian.
    pub hash: [u8; 8],
}

/// One leaf's digest: entry count and the first 4 bytes of the XOR of
/// their hashes (a whole circle of leaves stays near 5 bytes a leaf).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct LeafDigest {
    /// Entries, values and tombstones.
    pub count: u64,
    /// The first 4 bytes (little-endian) of the XOR of the entries' hashes.
    pub hash: [u8; 4],
}

/// Which entries of a leaf a [`Request::ReplicaEntries`] wants.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct LeafAsk {
    /// The leaf (top 16 bits of a position).
    pub leaf: u16,
    /// Which of its entries.
    pub want: Want,
}

/// The entries of a leaf an ask wants, each sent with its value when small.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Want {
    /// The entry whose hash starts with these 4 bytes: the caller lacks
    /// one entry the leaf holds and knows its hash from the leaves' XOR.
    One([u8; 4]),
    /// Every entry whose hash (little-endian) is not among these, the
    /// hashes of the caller's own entries of the leaf: what the caller
    /// lacks, or holds in another version.
    Except(Vec<[u8; 8]>),
}

/// An entry listed by [`Response::Entries`].
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct LeafEntry {
    /// The key.
    pub key: Bytes,
    /// Its version.
    pub version: Version,
    /// Whether it is a tombstone.
    pub tombstone: bool,
    /// The entry's hash (key, kind, version and value bytes), as leaves
    /// XOR them, little-endian.
    pub hash: [u8; 8],
    /// The value's length (0 for a tombstone).
    pub size: u64,
    /// The value when small; `None` for a tombstone or a value to fetch
    /// on its own (large, or past the answer's byte budget).
    pub value: Option<Bytes>,
}

/// What a node holds of a key: told apart, unlike haskey's `0.0`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Held {
    /// Nothing at all.
    Absent,
    /// A value with this version.
    Value(Version),
    /// A tombstone with this version.
    Tombstone(Version),
}

/// A fetched replica entry: the version and the value, or a tombstone.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ReplicaEntry {
    /// The stored version.
    pub version: Version,
    /// The value, or `None` for a tombstone.
    pub value: Option<Payload>,
}

/// A ring's membership: what a joining node learns and what gossip
/// carries.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Members {
    /// The ring version (a digest of everything below; see
    /// `mydht_ring::RingVersion`), so a receiver can tell at once whether
    /// it holds the same ring.
    pub version: u64,
    /// The ring epoch: the sum of every version below, for people.
    pub epoch: u64,
    /// Replication level N.
    pub replicas: u8,
    /// Virtual nodes per member.
    pub vnodes: u32,
    /// The version of N and V.
    pub params_version: u64,
    /// While N changes: the N every key's data is complete under (reads
    /// use it until the change is done).
    pub previous_replicas: Option<u8>,
    /// Every member with its state and version, removed ones included.
    pub members: Vec<Member>,
}

/// A response. Variants are only appended.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Response {
    /// A put reached its write quorum.
    Stored {
        /// The version the coordinator stamped.
        version: Version,
    },
    /// A delete reached its write quorum.
    Deleted {
        /// The tombstone's version.
        version: Version,
    },
    /// A get found a value.
    Value {
        /// Its version.
        version: Version,
        /// The value.
        value: Payload,
    },
    /// haskey: the timestamp of the node's own copy; `None` when it holds
    /// nothing or a tombstone (printed `0.0`).
    HasKey {
        /// The timestamp, if a value is held.
        timestamp: Option<Timestamp>,
    },
    /// whereis: the preference list.
    Whereis {
        /// The replicas, in preference order.
        nodes: Vec<NodeId>,
    },
    /// An admin request (purge, balance, remove) or a member call finished.
    Done,
    /// The answer to a join or a members request.
    Members(Members),
    /// The answer to a replica store.
    ReplicaStored {
        /// `false` when a newer (or the same) version was already held.
        applied: bool,
        /// When not applied, the version the replica holds (protocol 3):
        /// a coordinator whose version lost to a later-stamped one stamps
        /// above it and writes again, so the write acknowledged last wins
        /// whatever the clocks.
        held: Option<Version>,
    },
    /// The answer to a replica probe.
    Held(Held),
    /// The answer to a replica fetch; `None` when nothing is held.
    Entry(Option<ReplicaEntry>),
    /// The request failed.
    Error(ErrorReply),
    /// The answer to a replica digest.
    Digest {
        /// Entries (values and tombstones) in the range.
        count: u64,
        /// XOR over those entries of a hash of key, version and kind.
        hash: u64,
    },
    /// The answer to a replica recall: the version applied for that write
    /// id, if remembered.
    Recalled(Option<Version>),
    /// The answer to [`Request::ReplicaParts`].
    Parts(Vec<PartDigest>),
    /// The answer to [`Request::ReplicaLeaves`].
    Leaves(Vec<LeafDigest>),
    /// The answer to [`Request::ReplicaEntries`].
    Entries {
        /// How many of the asks (the first ones) are answered in full.
        /// Entries of the ask after them, if any, are that ask's first
        /// ones: the answer was cut there, and the caller asks again for
        /// the rest (`Except` the hashes it now knows).
        answered: u32,
        /// The entries, grouped by ask in order: (ask index, entry).
        entries: Vec<(u32, LeafEntry)>,
    },
}

/// Which messages carry a value as chunks after them: the one table the
/// node's session, the requesting connection and the handlers all read, so a
/// new streamed message is added here once.
impl Request {
    /// Whether the request's value follows it as chunks.
    pub fn has_body(&self) -> bool {
        matches!(
            self,
            Request::Put(Put {
                value: Payload::Streamed { .. },
                ..
            }) | Request::ReplicaStore {
                value: Some(Payload::Streamed { .. }),
                ..
            }
        )
    }

    /// Whether the answer to this request may be a streamed value (so the
    /// answering side opens a flow-control window for it on arrival).
    pub fn reply_may_stream(&self) -> bool {
        matches!(self, Request::Get(_) | Request::ReplicaFetch { .. })
    }

    /// The key the request names, if it names one (for the key-length check
    /// every door makes before anything else).
    pub fn key(&self) -> Option<&[u8]> {
        match self {
            Request::Put(p) => Some(&p.key),
            Request::Get(g) => Some(&g.key),
            Request::Del(d) => Some(&d.key),
            Request::HasKey { key }
            | Request::Whereis { key }
            | Request::ReplicaStore { key, .. }
            | Request::ReplicaFetch { key }
            | Request::ReplicaProbe { key }
            | Request::ReplicaRecall { key, .. } => Some(key),
            _ => None,
        }
    }
}

impl Response {
    /// Whether the response announces a value that follows as chunks.
    pub fn streams(&self) -> bool {
        matches!(
            self,
            Response::Value {
                value: Payload::Streamed { .. },
                ..
            } | Response::Entry(Some(ReplicaEntry {
                value: Some(Payload::Streamed { .. }),
                ..
            }))
        )
    }

    /// The variant's name, for errors that report an answer of the wrong
    /// kind without printing its contents (a value may be large).
    pub fn kind(&self) -> &'static str {
        match self {
            Response::Stored { .. } => "Stored",
            Response::Deleted { .. } => "Deleted",
            Response::Value { .. } => "Value",
            Response::HasKey { .. } => "HasKey",
            Response::Whereis { .. } => "Whereis",
            Response::Done => "Done",
            Response::Members(_) => "Members",
            Response::ReplicaStored { .. } => "ReplicaStored",
            Response::Held(_) => "Held",
            Response::Entry(_) => "Entry",
            Response::Error(_) => "Error",
            Response::Digest { .. } => "Digest",
            Response::Recalled(_) => "Recalled",
            Response::Parts(_) => "Parts",
            Response::Leaves(_) => "Leaves",
            Response::Entries { .. } => "Entries",
        }
    }
}
