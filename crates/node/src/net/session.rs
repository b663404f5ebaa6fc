//! The answering side of one binary connection.
//!
//! After the preface and hello, every request runs in its own task (so a
//! slow request never holds up the ones behind it) and its reply goes to a
//! writer task that batches frames. Chunks of a streamed request value are
//! routed to that request's bounded channel: a slow handler slows the
//! sender. A malformed or oversized frame is answered with a typed error and
//! the connection is closed; a request of a kind this release does not know
//! is answered with `ERR_UNKNOWN_COMMAND` and the connection goes on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use mydht_cluster::net::{BoxRead, BoxWrite};
use mydht_proto::io::{FrameReader, FrameWriter, IoError, accept_preface, write_frames};
use mydht_proto::{
    Body, Chunk, CodecError, ErrorReply, Frame, FrameError, Limited, MAX_PROTOCOL_VERSION,
    MIN_PROTOCOL_VERSION, PrefaceError, RequestId, Response, WINDOW, Welcome,
};
use mydht_store::Store;
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use crate::handlers::{self, Reply};
use crate::node::Node;
use crate::value::BodyIn;
use crate::value::sink::to_session;

/// Frames queued for the writer before handlers wait.
const OUTGOING_QUEUE: usize = 1024;
/// Chunks buffered per streamed request value: the sender's window, with
/// room to spare.
const BODY_QUEUE: usize = WINDOW as usize + 4;

pub(crate) async fn serve<S: Store>(node: Node<S>, mut r: BoxRead, mut w: BoxWrite) {
    let limits = node.cfg.limits;
    let version = match timeout(node.cfg.handshake_timeout, accept_preface(&mut r, &mut w)).await {
        Ok(Ok(v)) => v,
        Ok(Err(IoError::Preface(PrefaceError::Unsupported { theirs, .. }))) => {
            let reply = ErrorReply::UnsupportedVersion {
                their_min: theirs.min,
                their_max: theirs.max,
                min: MIN_PROTOCOL_VERSION,
                max: MAX_PROTOCOL_VERSION,
            };
            let mut writer = FrameWriter::new(w, limits);
            let frame = Frame::new(RequestId(0), Body::Response(Response::Error(reply)));
            let _ = writer.send(&frame).await;
            let _ = writer.shutdown().await;
            return;
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "preface failed");
            return;
        }
        Err(_) => return,
    };
    let mut reader = FrameReader::new(r, limits, BytesMut::new());
    let mut writer = FrameWriter::new(w, limits);
    match timeout(node.cfg.handshake_timeout, reader.next()).await {
        Ok(Ok(Some(Frame {
            body: Body::Hello(_),
            ..
        }))) => {}
        _ => return,
    }
    let welcome = Welcome {
        node: node.cluster.me().clone(),
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

    let (tx, rx) = mpsc::channel::<Frame>(OUTGOING_QUEUE);
    let done = CancellationToken::new();
    node.tasks
        .intake
        .spawn(write_frames(writer, rx, done.clone(), |frame, e| {
            // A reply over the frame limit: answer with the error instead.
            let reply = ErrorReply::Internal {
                reason: format!("the reply could not be sent: {e}"),
            };
            Some(error_frame(frame.id, reply))
        }));

    let mut bodies: HashMap<u64, mpsc::Sender<Chunk>> = HashMap::new();
    let credits = Credits::default();
    loop {
        let next = tokio::select! {
            () = node.tasks.intake.stopping() => break,
            () = done.cancelled() => break,
            f = reader.next() => f,
        };
        match next {
            Ok(Some(Frame {
                id,
                body: Body::Request(request),
            })) => {
                let body = if request.has_body() {
                    let (btx, brx) = mpsc::channel(BODY_QUEUE);
                    bodies.insert(id.0, btx);
                    Some(BodyIn {
                        id,
                        rx: brx,
                        out: tx.clone(),
                    })
                } else {
                    None
                };
                // A reply that may stream gets its window now, so that a
                // cancel arriving before the reply is ready still stops it.
                let window = if request.reply_may_stream() {
                    credits.open(id)
                } else {
                    None
                };
                let (serving, tx, credits) = (node.clone(), tx.clone(), credits.clone());
                node.tasks.intake.spawn(async move {
                    let reply = handlers::route(&serving, request, body).await;
                    send_reply(&tx, id, reply, serving.cfg.request_timeout, window).await;
                    credits.revoke(id);
                });
            }
            Ok(Some(Frame {
                id,
                body: Body::Chunk(chunk),
            })) => {
                let last = chunk.last;
                if let Some(btx) = bodies.get(&id.0)
                    && btx.try_send(chunk).is_err()
                {
                    // The handler is gone (it answered already), or the
                    // sender ignored its window: either way the rest of
                    // this value has nowhere to go.
                    bodies.remove(&id.0);
                }
                if last {
                    bodies.remove(&id.0);
                }
            }
            Ok(Some(Frame {
                id,
                body: Body::Ack(n),
            })) => credits.grant(id, n),
            Ok(Some(Frame {
                id,
                body: Body::Cancel,
            })) => {
                bodies.remove(&id.0);
                credits.revoke(id);
            }
            Ok(Some(Frame { id, .. })) => {
                let reply = ErrorReply::BadRequest {
                    reason: "only requests, chunks, acks and cancels are accepted here".into(),
                };
                let _ = tx.send(error_frame(id, reply)).await;
            }
            Ok(None) => break,
            Err(IoError::Codec(CodecError::Frame(FrameError::UnknownKind { id, .. }))) => {
                let _ = tx.send(error_frame(id, ErrorReply::UnknownRequest)).await;
            }
            Err(IoError::Codec(CodecError::Frame(FrameError::Malformed { id, reason }))) => {
                let id = id.unwrap_or(RequestId(0));
                let _ = tx
                    .send(error_frame(id, ErrorReply::BadRequest { reason }))
                    .await;
                break;
            }
            Err(IoError::Codec(CodecError::Frame(FrameError::TooLarge { len, max }))) => {
                let reply = ErrorReply::TooLarge {
                    what: Limited::Frame,
                    size: len as u64,
                    max: max as u64,
                };
                let _ = tx.send(error_frame(RequestId(0), reply)).await;
                break;
            }
            Err(e) => {
                tracing::debug!(error = %e, "connection failed");
                break;
            }
        }
    }
    // Streams still being sent stop; the writer finishes once every
    // in-flight handler has replied and dropped its sender.
    credits.close();
}

/// The acknowledgements of streamed replies in flight, by request id.
/// Closed when the connection ends: no window opens after that.
#[derive(Clone, Default)]
struct Credits(Arc<Mutex<Windows>>);

/// Open windows by request id, and whether the connection is closing.
type Windows = (HashMap<u64, watch::Sender<u32>>, bool);

impl Credits {
    fn lock(&self) -> std::sync::MutexGuard<'_, Windows> {
        // Single map operations: a poisoned map is still consistent.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A window for request `id`, or `None` once the connection is closing.
    fn open(&self, id: RequestId) -> Option<watch::Receiver<u32>> {
        let mut g = self.lock();
        if g.1 {
            return None;
        }
        let (tx, rx) = watch::channel(0);
        g.0.insert(id.0, tx);
        Some(rx)
    }

    fn grant(&self, id: RequestId, consumed: u32) {
        if let Some(tx) = self.lock().0.get(&id.0) {
            tx.send_modify(|c| *c = (*c).max(consumed));
        }
    }

    /// The peer cancelled (or the reply is done): its sender stops at its
    /// next chunk.
    fn revoke(&self, id: RequestId) {
        self.lock().0.remove(&id.0);
    }

    fn close(&self) {
        let mut g = self.lock();
        g.0.clear();
        g.1 = true;
    }
}

fn error_frame(id: RequestId, e: ErrorReply) -> Frame {
    Frame::new(id, Body::Response(Response::Error(e)))
}

async fn send_reply(
    tx: &mpsc::Sender<Frame>,
    id: RequestId,
    reply: Reply,
    deadline: Duration,
    window: Option<watch::Receiver<u32>>,
) {
    let (response, source) = match reply {
        Reply::Plain(r) => {
            let _ = tx.send(Frame::new(id, Body::Response(r))).await;
            return;
        }
        Reply::Stream(r, source) => (r, source),
    };
    // No window: the connection is closing, or the request never expected
    // a stream. Either way nobody would acknowledge the chunks.
    let Some(mut acked) = window else {
        let _ = tx.send(Frame::new(id, Body::Cancel)).await;
        return;
    };
    if acked.has_changed().is_err() {
        // Cancelled while the handler ran.
        return;
    }
    if tx
        .send(Frame::new(id, Body::Response(response)))
        .await
        .is_ok()
        && let Err(e) = to_session(tx, id, source, &mut acked, deadline).await
    {
        tracing::debug!(error = %e, "value stream abandoned");
        let _ = tx.send(Frame::new(id, Body::Cancel)).await;
    }
}
