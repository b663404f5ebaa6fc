//! The requesting side of a binary connection, multiplexed.
//!
//! A [`Connection`] runs the preface and hello exchange, then owns two
//! tasks: a writer that batches outgoing frames into few writes, and a reader
//! that routes each incoming frame to the [`Exchange`] waiting for its request
//! id. Many requests can be in flight at once on one connection; each gets a
//! bounded channel, so a slow consumer of a streamed value slows its sender
//! instead of filling memory. Dropping an unfinished exchange tells the peer
//! to cancel it.
//!
//! Clients and nodes (for replica calls) both use it. The answering side of a
//! connection is the node's business and lives there. Timeouts are the
//! caller's: wrap calls in `tokio::time::timeout`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use mydht_ring::NodeId;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::io::{FrameReader, FrameWriter, IoError, connect_preface, write_frames};
use crate::{
    Body, Chunk, ChunkAssembler, ErrorReply, Frame, Hello, Limited, Limits, Payload, Request,
    RequestId, Response, StreamError, WINDOW, split_chunks,
};

/// Frames buffered per exchange: a full window of chunks plus the response
/// and room for acknowledgements. A peer that sends beyond its window breaks
/// the protocol and its exchange is dropped; the reader never waits on a
/// slow consumer, so one stream cannot stall the others on the connection.
const EXCHANGE_QUEUE: usize = WINDOW as usize + 8;
/// Frames queued for the writer task.
const OUTGOING_QUEUE: usize = 1024;

/// Why a request on a connection failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConnError {
    /// The transport, preface or framing failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The peer refused the connection during the handshake.
    #[error("peer refused the connection: {0}")]
    Refused(ErrorReply),
    /// The connection closed before the request was answered.
    #[error("connection closed")]
    Closed,
    /// The peer cancelled the request.
    #[error("peer cancelled the request")]
    Cancelled,
    /// The peer sent something the protocol does not allow here.
    #[error("protocol violation: {reason}")]
    Protocol {
        /// What arrived instead of what was expected.
        reason: &'static str,
    },
    /// A streamed value broke its announcement (order, size, length).
    #[error("bad value stream: {0}")]
    Stream(#[from] StreamError),
    /// The peer answered before taking the whole request body; the answer
    /// is what [`Exchange::response`] returns next.
    #[error("the peer answered before the whole value was sent")]
    Answered,
}

type Pending = Mutex<HashMap<u64, mpsc::Sender<Body>>>;

struct Inner {
    out: mpsc::Sender<Frame>,
    pending: Pending,
    next_id: AtomicU64,
    closed: CancellationToken,
    peer: NodeId,
    version: u16,
}

/// A multiplexed connection to a node. Cheap to clone; the tasks stop when
/// the peer closes or the last clone is dropped.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

/// Whether `body` ends its request's traffic in the peer-to-requester
/// direction (a response not followed by chunks, a final chunk, a cancel).
fn is_terminal(body: &Body) -> bool {
    match body {
        Body::Response(r) => !r.streams(),
        Body::Chunk(c) => c.last,
        Body::Ack(_) => false,
        _ => true,
    }
}

/// How a value of this size travels: inline up to the chunk size, else
/// announced with its length and sent as chunks.
pub fn payload_for(value: &Bytes, chunk_size: usize) -> Payload {
    if value.len() <= chunk_size {
        Payload::Inline(value.clone())
    } else {
        Payload::Streamed {
            len: Some(value.len() as u64),
        }
    }
}

fn lock(p: &Pending) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::Sender<Body>>> {
    // A panic while holding this lock cannot leave the map inconsistent
    // (single inserts and removes), so a poisoned lock is still usable.
    p.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Connection {
    /// Opens a connection over the two halves of a stream: preface, hello,
    /// welcome, then starts the reader and writer tasks on the current tokio
    /// runtime.
    pub async fn open<R, W>(
        mut reader: R,
        mut writer: W,
        hello: Hello,
        limits: Limits,
    ) -> Result<Self, ConnError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let version = connect_preface(&mut reader, &mut writer).await?;
        let mut reader = FrameReader::new(reader, limits, BytesMut::new());
        let mut writer = FrameWriter::new(writer, limits);
        writer
            .send(&Frame::new(RequestId(0), Body::Hello(hello)))
            .await?;
        let welcome = match reader.next().await? {
            Some(Frame {
                body: Body::Welcome(w),
                ..
            }) => w,
            Some(Frame {
                body: Body::Response(Response::Error(e)),
                ..
            }) => return Err(ConnError::Refused(e)),
            Some(_) => {
                return Err(ConnError::Protocol {
                    reason: "expected a welcome",
                });
            }
            None => return Err(ConnError::Closed),
        };
        let (out, rx) = mpsc::channel(OUTGOING_QUEUE);
        let inner = Arc::new(Inner {
            out,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closed: CancellationToken::new(),
            peer: welcome.node,
            version: version.min(welcome.version),
        });
        let weak = Arc::downgrade(&inner);
        tokio::spawn(write_frames(
            writer,
            rx,
            inner.closed.clone(),
            move |f, e| {
                refuse(&weak, f, &e);
                None
            },
        ));
        tokio::spawn(read_loop(
            reader,
            Arc::downgrade(&inner),
            inner.closed.clone(),
        ));
        Ok(Self { inner })
    }

    /// The peer's advertised name, from its welcome.
    pub fn peer(&self) -> &NodeId {
        &self.inner.peer
    }

    /// The protocol version in use.
    pub fn version(&self) -> u16 {
        self.inner.version
    }

    /// Whether the connection has failed or closed.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled()
    }

    /// Waits until the connection fails or closes.
    pub async fn closed(&self) {
        self.inner.closed.cancelled().await;
    }

    /// Sends a request and returns the exchange that receives its answer
    /// (and carries its streamed body, if any).
    pub async fn request(&self, request: Request) -> Result<Exchange, ConnError> {
        if self.is_closed() {
            return Err(ConnError::Closed);
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(EXCHANGE_QUEUE);
        lock(&self.inner.pending).insert(id, tx);
        // The reader may have closed the connection (and cleared the map)
        // between the check above and the insert: nobody would ever answer.
        if self.is_closed() {
            lock(&self.inner.pending).remove(&id);
            return Err(ConnError::Closed);
        }
        let exchange = Exchange {
            conn: self.clone(),
            id: RequestId(id),
            rx,
            done: false,
            sent: 0,
            acked: 0,
            consumed: 0,
            early: None,
        };
        self.send(Frame::new(RequestId(id), Body::Request(request)))
            .await?;
        Ok(exchange)
    }

    /// Sends a request whose answer is one response (not a streamed value)
    /// and waits for it.
    pub async fn call(&self, request: Request) -> Result<Response, ConnError> {
        self.request(request).await?.response().await
    }

    async fn send(&self, frame: Frame) -> Result<(), ConnError> {
        self.inner
            .out
            .send(frame)
            .await
            .map_err(|_| ConnError::Closed)
    }
}

/// One request in flight: receives its response and any chunks, and sends
/// the chunks of a streamed request body, both under the stream window.
pub struct Exchange {
    conn: Connection,
    id: RequestId,
    rx: mpsc::Receiver<Body>,
    done: bool,
    /// Chunks of the request body sent so far.
    sent: u32,
    /// Chunks of the request body the peer has consumed.
    acked: u32,
    /// Chunks of the response body consumed here.
    consumed: u32,
    /// A response that arrived while sending the body (an early refusal).
    early: Option<Response>,
}

impl Exchange {
    /// The request's id on its connection.
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// Sends the next chunk of this request's streamed value, first waiting
    /// until the peer's acknowledgements leave room in the window. If the
    /// peer answers before taking the whole value (a refusal), sending stops
    /// with [`ConnError::Answered`] and [`response`](Self::response) returns
    /// that answer.
    pub async fn send_chunk(&mut self, chunk: Chunk) -> Result<(), ConnError> {
        while self.sent >= self.acked.saturating_add(WINDOW) {
            match self.recv().await? {
                Body::Ack(n) => self.acked = self.acked.max(n),
                Body::Response(r) => {
                    self.early = Some(r);
                    return Err(ConnError::Answered);
                }
                Body::Cancel => return Err(ConnError::Cancelled),
                _ => {
                    return Err(ConnError::Protocol {
                        reason: "expected an acknowledgement",
                    });
                }
            }
        }
        self.sent += 1;
        self.conn
            .send(Frame::new(self.id, Body::Chunk(chunk)))
            .await
    }

    /// The next frame body for this request.
    pub async fn recv(&mut self) -> Result<Body, ConnError> {
        if self.done {
            return Err(ConnError::Protocol {
                reason: "read past the end of an answer",
            });
        }
        let body = self.rx.recv().await.ok_or(ConnError::Closed)?;
        self.done = is_terminal(&body);
        Ok(body)
    }

    /// The response to the request.
    pub async fn response(&mut self) -> Result<Response, ConnError> {
        if let Some(r) = self.early.take() {
            return Ok(r);
        }
        loop {
            match self.recv().await? {
                Body::Response(r) => return Ok(r),
                // Late acknowledgements of a request body.
                Body::Ack(_) => continue,
                Body::Cancel => return Err(ConnError::Cancelled),
                _ => {
                    return Err(ConnError::Protocol {
                        reason: "expected a response",
                    });
                }
            }
        }
    }

    /// The next chunk of a streamed response; acknowledges it, which lets
    /// the peer send another.
    pub async fn chunk(&mut self) -> Result<Chunk, ConnError> {
        loop {
            match self.recv().await? {
                Body::Chunk(c) => {
                    self.consumed += 1;
                    if !c.last {
                        self.conn
                            .send(Frame::new(self.id, Body::Ack(self.consumed)))
                            .await?;
                    }
                    return Ok(c);
                }
                Body::Ack(_) => continue,
                Body::Cancel => return Err(ConnError::Cancelled),
                _ => {
                    return Err(ConnError::Protocol {
                        reason: "expected a chunk",
                    });
                }
            }
        }
    }

    /// Sends `value` as the chunks of a streamed request body (after a request
    /// whose payload [`payload_for`] made `Streamed`); a no-op for an inline
    /// value. If the peer answers before taking it all (a refusal), sending
    /// stops and [`response`](Self::response) returns that answer.
    pub async fn send_value(&mut self, value: &Bytes, chunk_size: usize) -> Result<(), ConnError> {
        if value.len() <= chunk_size {
            return Ok(());
        }
        for chunk in split_chunks(value.clone(), chunk_size) {
            match self.send_chunk(chunk).await {
                Ok(()) => {}
                Err(ConnError::Answered) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The value a response announced: inline, or gathered from the chunks
    /// that follow, refusing more than `max` bytes.
    pub async fn collect_value(
        &mut self,
        payload: Payload,
        max: u64,
        chunk_size: usize,
    ) -> Result<Bytes, ConnError> {
        match payload {
            Payload::Inline(b) => Ok(b),
            Payload::Streamed { len } => {
                let mut check = ChunkAssembler::new(len, max, chunk_size)?;
                let capacity = usize::try_from(len.unwrap_or(0).min(max)).unwrap_or(0);
                let mut buf = BytesMut::with_capacity(capacity);
                while !check.is_done() {
                    let chunk = self.chunk().await?;
                    check.push(&chunk)?;
                    buf.extend_from_slice(&chunk.data);
                }
                Ok(buf.freeze())
            }
        }
    }

    /// Whether everything the peer will send for this request has arrived.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if lock(&self.conn.inner.pending).remove(&self.id.0).is_some() && !self.done {
            // Best effort: a full queue means the connection is swamped, and
            // the peer's answer will simply be dropped on arrival.
            let _ = self
                .conn
                .inner
                .out
                .try_send(Frame::new(self.id, Body::Cancel));
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: FrameReader<R>,
    inner: std::sync::Weak<Inner>,
    closed: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            () = closed.cancelled() => break,
            f = reader.next() => f,
        };
        let Ok(Some(frame)) = frame else { break };
        let Some(shared) = inner.upgrade() else { break };
        let terminal = is_terminal(&frame.body);
        let tx = {
            let mut pending = lock(&shared.pending);
            if terminal {
                pending.remove(&frame.id.0)
            } else {
                pending.get(&frame.id.0).cloned()
            }
        };
        // An unknown id is an answer to a request already abandoned. A full
        // queue means the peer ignored the window: drop that exchange.
        if let Some(tx) = tx
            && let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(frame.body)
        {
            lock(&shared.pending).remove(&frame.id.0);
        }
    }
    closed.cancel();
    if let Some(inner) = inner.upgrade() {
        // Dropping the senders wakes every waiting exchange with `Closed`.
        lock(&inner.pending).clear();
    }
}

/// Answers a request whose frame could not be sent (over the frame limit)
/// with a typed error, so its caller does not wait forever.
fn refuse(inner: &std::sync::Weak<Inner>, frame: &Frame, error: &IoError) {
    let Some(inner) = inner.upgrade() else { return };
    let Some(tx) = lock(&inner.pending).remove(&frame.id.0) else {
        return;
    };
    let reply = match error {
        IoError::Codec(crate::CodecError::Frame(crate::FrameError::TooLarge { len, max })) => {
            ErrorReply::TooLarge {
                what: Limited::Frame,
                size: *len as u64,
                max: *max as u64,
            }
        }
        other => ErrorReply::BadRequest {
            reason: other.to_string(),
        },
    };
    let _ = tx.try_send(Body::Response(Response::Error(reply)));
}
