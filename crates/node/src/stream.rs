//! Values in motion through a node, never held whole: a request body
//! arriving as chunks ([`Incoming`], acknowledged as it is consumed so the
//! sender keeps to its window), a value leaving as chunks ([`Source`]: from
//! memory, from this node's store, or relayed from another node), and
//! [`PieceReader`], which feeds pieces from a channel to a store's
//! `put_stream` and fails (so nothing becomes visible) if the pieces stop
//! before their end. [`ValueIn`] puts a binary request body and an HTTP
//! request body behind one interface, so the coordinator streams both the
//! same way.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use mydht_proto::conn::Exchange;
use mydht_proto::{
    Body, Chunk, ChunkAssembler, ErrorReply, Frame, Limited, RequestId, StreamError,
};
use mydht_store::ValueReader;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::sync::mpsc;

/// The chunks of a request's value as the session hands them over.
pub(crate) struct BodyIn {
    pub id: RequestId,
    pub rx: mpsc::Receiver<Chunk>,
    /// The connection's outgoing frames, for acknowledgements.
    pub out: mpsc::Sender<Frame>,
}

/// A request body being consumed: checked chunk by chunk, acknowledged.
pub(crate) struct Incoming {
    body: BodyIn,
    check: ChunkAssembler,
    consumed: u32,
}

fn stream_error(e: StreamError) -> ErrorReply {
    match e {
        StreamError::TooLong { received, max } => ErrorReply::TooLarge {
            what: Limited::Value,
            size: received,
            max,
        },
        other => ErrorReply::BadRequest {
            reason: other.to_string(),
        },
    }
}

impl Incoming {
    /// Expects `len` bytes if announced, at most `max`, in chunks of at most
    /// `chunk_size`.
    pub fn new(
        body: BodyIn,
        len: Option<u64>,
        max: u64,
        chunk_size: usize,
    ) -> Result<Self, ErrorReply> {
        let check = ChunkAssembler::new(len, max, chunk_size).map_err(stream_error)?;
        Ok(Self {
            body,
            check,
            consumed: 0,
        })
    }

    /// The next piece of the value, `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Bytes>, ErrorReply> {
        if self.check.is_done() {
            return Ok(None);
        }
        let chunk = self
            .body
            .rx
            .recv()
            .await
            .ok_or_else(|| ErrorReply::BadRequest {
                reason: "the value stream ended early".into(),
            })?;
        self.check.push(&chunk).map_err(stream_error)?;
        self.consumed += 1;
        if !chunk.last {
            let ack = Frame::new(self.body.id, Body::Ack(self.consumed));
            // The connection is going away if this fails; the next recv says so.
            let _ = self.body.out.send(ack).await;
        }
        Ok(Some(chunk.data))
    }
}

/// One piece handed to a replica writer; `End` marks a complete value.
pub(crate) enum Piece {
    Data(Bytes),
    End,
}

/// Reads pieces from a channel as bytes. A channel closed before `End`
/// (the value was abandoned) is an error, so the store commits nothing.
pub(crate) struct PieceReader {
    rx: mpsc::Receiver<Piece>,
    cur: Bytes,
    ended: bool,
}

impl PieceReader {
    pub fn new(rx: mpsc::Receiver<Piece>) -> Self {
        Self {
            rx,
            cur: Bytes::new(),
            ended: false,
        }
    }
}

impl AsyncRead for PieceReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        loop {
            if !me.cur.is_empty() {
                let n = me.cur.len().min(buf.remaining());
                buf.put_slice(&me.cur.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if me.ended {
                return Poll::Ready(Ok(()));
            }
            match me.rx.poll_recv(cx) {
                Poll::Ready(Some(Piece::Data(b))) => me.cur = b,
                Poll::Ready(Some(Piece::End)) => me.ended = true,
                Poll::Ready(None) => {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the value was abandoned before its end",
                    )));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Where the bytes of an outgoing value come from.
pub(crate) enum Source {
    /// Already in memory.
    Memory(Bytes),
    /// This node's store; `remaining` bytes left to read.
    Local { reader: ValueReader, remaining: u64 },
    /// Relayed from another node's answer, checked as it passes.
    Remote {
        exchange: Exchange,
        check: ChunkAssembler,
    },
}

impl Source {
    /// The next piece of at most `chunk_size` bytes, `None` at the end.
    pub async fn next(&mut self, chunk_size: usize) -> Result<Option<Bytes>, String> {
        match self {
            Self::Memory(b) => {
                if b.is_empty() {
                    Ok(None)
                } else {
                    Ok(Some(b.split_to(b.len().min(chunk_size))))
                }
            }
            Self::Local { reader, remaining } => {
                if *remaining == 0 {
                    return Ok(None);
                }
                let want = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(chunk_size);
                let mut buf = BytesMut::with_capacity(want);
                while buf.len() < want {
                    let n = reader
                        .read_buf(&mut buf)
                        .await
                        .map_err(|e| format!("reading a stored value: {e}"))?;
                    if n == 0 {
                        return Err("a stored value ended early".into());
                    }
                }
                *remaining -= buf.len() as u64;
                Ok(Some(buf.freeze()))
            }
            Self::Remote { exchange, check } => {
                if check.is_done() {
                    return Ok(None);
                }
                let chunk = exchange.chunk().await.map_err(|e| e.to_string())?;
                check.push(&chunk).map_err(|e| e.to_string())?;
                if chunk.data.is_empty() && check.is_done() {
                    return Ok(None);
                }
                Ok(Some(chunk.data))
            }
        }
    }
}

/// An HTTP request body, cut into pieces of at most a chunk, each awaited
/// within a deadline (a client that stalls is cut off), the total checked
/// against the announced length and the size cap.
pub(crate) struct HttpIn {
    pub body: axum::body::BodyDataStream,
    pub pending: Bytes,
    pub chunk_size: usize,
    pub received: u64,
    pub len: Option<u64>,
    pub max: u64,
    pub deadline: std::time::Duration,
    pub ended: bool,
}

impl HttpIn {
    async fn next(&mut self) -> Result<Option<Bytes>, ErrorReply> {
        use futures_core::Stream;
        while self.pending.is_empty() && !self.ended {
            let frame = std::future::poll_fn(|cx| Pin::new(&mut self.body).poll_next(cx));
            match tokio::time::timeout(self.deadline, frame).await {
                Err(_) => {
                    return Err(ErrorReply::BadRequest {
                        reason: format!("no body data within {:?}", self.deadline),
                    });
                }
                Ok(None) => self.ended = true,
                Ok(Some(Err(e))) => {
                    return Err(ErrorReply::BadRequest {
                        reason: format!("reading the body: {e}"),
                    });
                }
                Ok(Some(Ok(b))) => {
                    self.received += b.len() as u64;
                    let cap = self.len.unwrap_or(self.max).min(self.max);
                    if self.received > cap {
                        return Err(ErrorReply::TooLarge {
                            what: Limited::Value,
                            size: self.received,
                            max: cap,
                        });
                    }
                    self.pending = b;
                }
            }
        }
        if self.pending.is_empty() {
            if let Some(len) = self.len
                && self.received != len
            {
                return Err(ErrorReply::BadRequest {
                    reason: format!("body ended after {} of {len} bytes", self.received),
                });
            }
            return Ok(None);
        }
        let n = self.pending.len().min(self.chunk_size);
        Ok(Some(self.pending.split_to(n)))
    }
}

/// A value arriving from a client, over either protocol.
pub(crate) enum ValueIn {
    Binary(Incoming),
    Http(Box<HttpIn>),
}

impl ValueIn {
    /// The next piece of at most a chunk, `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Bytes>, ErrorReply> {
        match self {
            Self::Binary(i) => i.next().await,
            Self::Http(h) => h.next().await,
        }
    }
}
