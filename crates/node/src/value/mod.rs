//! Values in motion through a node, never held whole: one type,
//! [`ValueStream`], for every value going anywhere, whatever it comes from
//! (memory, this node's store, another node's answer, a binary request body
//! acknowledged as it is consumed, an HTTP body, or one branch of a
//! [`tee`](sink::tee)), and the sinks it goes to (`sink`): the store, a
//! peer, a binary session under the peer's window, an HTTP body.
//!
//! Every source is read with [`ValueStream::next`], a piece of at most a
//! chunk at a time, and checked as it passes (announced length, size cap,
//! order); what goes wrong is a typed [`ValueError`]. A stream that stops
//! before its end is an error, so no sink ever commits part of a value.

pub(crate) mod sink;

use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use mydht_cluster::{Rpc, RpcError};
use mydht_proto::conn::Exchange;
use mydht_proto::{Body, Chunk, ChunkAssembler, Frame, RequestId, StreamError};
use mydht_ring::NodeId;
use mydht_store::{StoreError, StoredValue, ValueReader};
use thiserror::Error;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

/// Why a value could not be carried to its end.
#[derive(Debug, Error)]
pub(crate) enum ValueError {
    /// It is larger than allowed (or than announced).
    #[error("value of {size} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Bytes received (or announced).
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Its sender broke the stream's rules (order, length, a gap) or ended
    /// it early.
    #[error("{reason}")]
    BadStream {
        /// What went wrong.
        reason: String,
    },
    /// Its sender sent nothing for too long.
    #[error("no body data within {after:?}")]
    Stalled {
        /// The deadline.
        after: std::time::Duration,
    },
    /// It was abandoned before its end (a tee's source failed, or the
    /// writer gave up on this branch).
    #[error("the value was abandoned before its end")]
    Abandoned,
    /// Reading it from this node's store failed.
    #[error("reading a stored value: {0}")]
    Read(std::io::Error),
    /// This node's store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Relaying it from another node failed.
    #[error(transparent)]
    Peer(#[from] RpcError),
}

impl ValueError {
    fn of_stream(e: StreamError) -> Self {
        match e {
            StreamError::TooLong { received, max } => Self::TooLarge {
                size: received,
                max,
            },
            other => Self::BadStream {
                reason: other.to_string(),
            },
        }
    }
}

/// The chunks of a binary request's value as the session hands them over,
/// with the connection's outgoing frames for acknowledgements.
pub(crate) struct BodyIn {
    pub id: RequestId,
    pub rx: mpsc::Receiver<Chunk>,
    pub out: mpsc::Sender<Frame>,
}

/// One piece handed to a branch of a tee; `End` marks a complete value.
pub(crate) enum Piece {
    Data(Bytes),
    End,
}

/// A source of pieces some other module adapts (an HTTP body): each item is
/// at most a chunk, and the stream ends after the last.
pub(crate) type External = Pin<Box<dyn Stream<Item = Result<Bytes, ValueError>> + Send>>;

enum Source {
    Memory(Bytes),
    Store {
        reader: ValueReader,
        remaining: u64,
    },
    // The large sources are boxed, so a stream stays small to move.
    Peer(Box<PeerSource>),
    Body(Box<BodySource>),
    External(External),
    Piped {
        rx: mpsc::Receiver<Piece>,
        ended: bool,
    },
}

struct PeerSource {
    rpc: Rpc,
    node: NodeId,
    exchange: Exchange,
    check: ChunkAssembler,
}

struct BodySource {
    body: BodyIn,
    check: ChunkAssembler,
    consumed: u32,
    /// Each chunk must arrive within this, as an HTTP body's pieces must.
    deadline: std::time::Duration,
}

/// A value on its way somewhere, read a piece at a time.
pub(crate) struct ValueStream {
    len: Option<u64>,
    chunk: usize,
    source: Source,
}

impl ValueStream {
    /// A value already in memory.
    pub fn memory(value: Bytes, chunk: usize) -> Self {
        Self {
            len: Some(value.len() as u64),
            chunk,
            source: Source::Memory(value),
        }
    }

    /// A value in this node's store.
    pub fn stored(value: StoredValue, chunk: usize) -> Self {
        let len = value.len();
        Self {
            len: Some(len),
            chunk,
            source: Source::Store {
                reader: value.into_reader(),
                remaining: len,
            },
        }
    }

    /// A value streaming in from `node`'s answer on `exchange`, announced
    /// as `len` bytes, at most `max`.
    pub fn peer(
        rpc: Rpc,
        node: NodeId,
        exchange: Exchange,
        len: Option<u64>,
        max: u64,
        chunk: usize,
    ) -> Result<Self, ValueError> {
        let check = ChunkAssembler::new(len, max, chunk).map_err(ValueError::of_stream)?;
        Ok(Self {
            len,
            chunk,
            source: Source::Peer(Box::new(PeerSource {
                rpc,
                node,
                exchange,
                check,
            })),
        })
    }

    /// A binary request's body, announced as `len` bytes, at most `max`,
    /// acknowledged chunk by chunk as it is consumed so the sender keeps to
    /// its window. A sender that sends no chunk for `deadline` fails the
    /// stream ([`ValueError::Stalled`]): a client (or a coordinator) that
    /// stops mid-value must not hold the write, its replica streams and
    /// its write id forever.
    pub fn body(
        body: BodyIn,
        len: Option<u64>,
        max: u64,
        chunk: usize,
        deadline: std::time::Duration,
    ) -> Result<Self, ValueError> {
        let check = ChunkAssembler::new(len, max, chunk).map_err(ValueError::of_stream)?;
        Ok(Self {
            len,
            chunk,
            source: Source::Body(Box::new(BodySource {
                body,
                check,
                consumed: 0,
                deadline,
            })),
        })
    }

    /// Pieces from an adapted source of `len` bytes (if known).
    pub fn external(stream: External, len: Option<u64>, chunk: usize) -> Self {
        Self {
            len,
            chunk,
            source: Source::External(stream),
        }
    }

    fn piped(rx: mpsc::Receiver<Piece>, len: Option<u64>, chunk: usize) -> Self {
        Self {
            len,
            chunk,
            source: Source::Piped { rx, ended: false },
        }
    }

    /// The value's length, when known in advance.
    pub fn len(&self) -> Option<u64> {
        self.len
    }

    /// The most a piece holds.
    pub fn chunk_size(&self) -> usize {
        self.chunk
    }

    /// Whether the sender waits for this stream to be read to its end: a
    /// request body (its sender keeps to a window) or a tee's branch (the
    /// tee waits on every branch). A value fetched from a peer or read from
    /// a store is better dropped, which cancels it.
    pub fn sender_waits(&self) -> bool {
        matches!(self.source, Source::Body(_) | Source::Piped { .. })
    }

    /// The whole value, if it is in memory.
    pub fn in_memory(&self) -> Option<&Bytes> {
        match &self.source {
            Source::Memory(b) => Some(b),
            _ => None,
        }
    }

    /// The next piece (at most a chunk), `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Bytes>, ValueError> {
        let chunk = self.chunk;
        match &mut self.source {
            Source::Memory(b) => Ok((!b.is_empty()).then(|| b.split_to(b.len().min(chunk)))),
            Source::Store { reader, remaining } => {
                if *remaining == 0 {
                    return Ok(None);
                }
                let want = usize::try_from(*remaining).unwrap_or(usize::MAX).min(chunk);
                let mut buf = BytesMut::with_capacity(want);
                while buf.len() < want {
                    let n = reader.read_buf(&mut buf).await.map_err(ValueError::Read)?;
                    if n == 0 {
                        return Err(ValueError::BadStream {
                            reason: "a stored value ended early".into(),
                        });
                    }
                }
                *remaining -= buf.len() as u64;
                Ok(Some(buf.freeze()))
            }
            Source::Peer(p) => {
                let PeerSource {
                    rpc,
                    node,
                    exchange,
                    check,
                } = &mut **p;
                if check.is_done() {
                    return Ok(None);
                }
                let chunk = exchange.chunk().await.map_err(|e| rpc.failed(node, e))?;
                check.push(&chunk).map_err(ValueError::of_stream)?;
                if chunk.data.is_empty() && check.is_done() {
                    return Ok(None);
                }
                Ok(Some(chunk.data))
            }
            Source::Body(b) => {
                let BodySource {
                    body,
                    check,
                    consumed,
                    deadline,
                } = &mut **b;
                if check.is_done() {
                    return Ok(None);
                }
                let after = *deadline;
                let chunk = tokio::time::timeout(after, body.rx.recv())
                    .await
                    .map_err(|_| ValueError::Stalled { after })?
                    .ok_or_else(|| ValueError::BadStream {
                        reason: "the value stream ended early".into(),
                    })?;
                check.push(&chunk).map_err(ValueError::of_stream)?;
                *consumed += 1;
                if !chunk.last {
                    let ack = Frame::new(body.id, Body::Ack(*consumed));
                    // The connection is going away if this fails; the next
                    // recv says so.
                    let _ = body.out.send(ack).await;
                }
                Ok(Some(chunk.data))
            }
            Source::External(s) => {
                match std::future::poll_fn(|cx| s.as_mut().poll_next(cx)).await {
                    Some(Ok(b)) => Ok(Some(b)),
                    Some(Err(e)) => Err(e),
                    None => Ok(None),
                }
            }
            Source::Piped { rx, ended } => {
                if *ended {
                    return Ok(None);
                }
                match rx.recv().await {
                    Some(Piece::Data(b)) => Ok(Some(b)),
                    Some(Piece::End) => {
                        *ended = true;
                        Ok(None)
                    }
                    None => Err(ValueError::Abandoned),
                }
            }
        }
    }
}
