//! The mydht wire protocol: the words nodes and clients say to each other,
//! and how those words travel over one TCP connection.
//!
//! A connection opens with a [`Preface`] (a magic and the protocol versions
//! the sender speaks); [`classify`] tells it apart from HTTP on the same port.
//! After the preface both sides exchange length-prefixed postcard frames
//! ([`MessageCodec`], with a hard size limit): first a [`Hello`] and a
//! [`Welcome`], then [`Request`]s and [`Response`]s, each carrying a
//! [`RequestId`] so that many can share a connection, and [`Chunk`]s that
//! carry values too large for one frame, so no side ever holds a whole large
//! value in memory. Failures travel as typed [`ErrorReply`] values with
//! stable codes.
//!
//! [`io`] reads and writes frames on any tokio `AsyncRead`/`AsyncWrite` and
//! runs the preface exchange; [`conn`] is the requesting side of a
//! connection, multiplexed, which clients and nodes (for replica calls) share.
//!
//! This crate says nothing about what a node does with a request (that is
//! `mydht-node`) and opens no sockets itself: callers hand it connected
//! streams. The frame functions work on plain byte slices, which is what the
//! fuzzer drives.
//!
//! Compatibility: enum variants are only ever appended, never reordered or
//! removed, since postcard encodes a variant by its index; a test pins the
//! encoding of every variant. New message kinds are gated by the negotiated
//! protocol version.

mod chunk;
mod codec;
pub mod conn;
mod error;
mod frame;
pub mod io;
mod limits;
mod message;
mod preface;
mod version;

pub use chunk::{ChunkAssembler, StreamError, split_chunks};
pub use codec::{CodecError, MessageCodec};
pub use error::{ErrorCode, ErrorReply, Limited};
pub use frame::{
    BODY_KINDS, Frame, FrameError, REQUEST_KINDS, decode_frame, encode_frame, frame_len,
};
pub use limits::{
    DEFAULT_CHUNK_SIZE, DEFAULT_MAX_FRAME_LEN, Limits, MAX_ASKS, MAX_KEY_LEN, MAX_LEAF_PARTS,
    WINDOW,
};
pub use message::{
    Body, Chunk, Del, Get, Held, Hello, LeafAsk, LeafDigest, LeafEntry, Members, PartDigest,
    Payload, Peer, Put, ReplicaEntry, Request, RequestId, Response, Want, Welcome,
};
pub use preface::{
    MAGIC, MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION, PREFACE_LEN, Preface, PrefaceError,
    Protocol, classify,
};
pub use version::{Timestamp, Version, WriteId};
