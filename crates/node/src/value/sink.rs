//! Where a [`ValueStream`] goes: this node's store ([`to_store`]), a peer
//! over an exchange under its window ([`to_peer`]), a binary session under
//! the client's acknowledgements ([`to_session`]), an HTTP body
//! ([`into_body_stream`]), or several of those at once ([`tee`]).
//!
//! Each sink gives up on a receiver that takes nothing for its deadline, so
//! one stuck disk or peer cannot hold a value (or the memory it occupies)
//! forever.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use mydht_proto::conn::{ConnError, Exchange};
use mydht_proto::{Body, Chunk, Frame, RequestId, Version, WINDOW};
use mydht_ring::NodeId;
use mydht_store::{Outcome, Store, StoreError};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;

use super::{Piece, ValueError, ValueStream};

type Step = Pin<Box<dyn Future<Output = (ValueStream, Result<Option<Bytes>, ValueError>)> + Send>>;

/// Reads a stream's next piece without borrowing it, so a poll-based
/// reader can hold the future.
fn step(mut stream: ValueStream) -> Step {
    Box::pin(async move {
        let r = stream.next().await;
        (stream, r)
    })
}

/// Why a value did not reach the store.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ToStoreError {
    /// The value broke off or broke its rules.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stores `stream` under `key` at `version` (unless the key holds a newer
/// one). When the store did not need the rest (it held something newer),
/// a stream whose sender waits on it is still read to its end, so the
/// sender finishes instead of waiting on its window; any other is dropped,
/// which cancels it. A stream that breaks stores nothing.
pub(crate) async fn to_store<S: Store>(
    store: &S,
    key: &[u8],
    version: Version,
    stream: ValueStream,
) -> Result<Outcome, ToStoreError> {
    if let Some(b) = stream.in_memory() {
        return Ok(store.put(key, version, b.clone()).await?);
    }
    let drain = stream.sender_waits();
    let mut reader = StreamReader::new(stream);
    let outcome = store.put_stream(key, version, &mut reader).await;
    reader.finish(drain).await?;
    Ok(outcome?)
}

/// A stream as an `AsyncRead`, for the store. The first error is kept for
/// [`finish`](Self::finish), which also reads whatever is left.
struct StreamReader {
    idle: Option<ValueStream>,
    reading: Option<Step>,
    cur: Bytes,
    done: bool,
    error: Option<ValueError>,
}

impl StreamReader {
    fn new(stream: ValueStream) -> Self {
        Self {
            idle: Some(stream),
            reading: None,
            cur: Bytes::new(),
            done: false,
            error: None,
        }
    }

    /// Returns the stream's first error, if any, after reading the rest of
    /// it when `drain`.
    async fn finish(mut self, drain: bool) -> Result<(), ValueError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if !drain {
            return Ok(());
        }
        let stream = match (self.idle.take(), self.reading.take()) {
            (Some(s), _) => Some(s),
            (None, Some(step)) => {
                let (s, r) = step.await;
                r?;
                Some(s)
            }
            (None, None) => None,
        };
        if let Some(mut s) = stream.filter(|_| !self.done) {
            while s.next().await?.is_some() {}
        }
        Ok(())
    }
}

impl AsyncRead for StreamReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        loop {
            if !me.cur.is_empty() {
                let n = me.cur.len().min(buf.remaining());
                buf.put_slice(&me.cur.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if me.done {
                return Poll::Ready(Ok(()));
            }
            if let Some(e) = &me.error {
                return Poll::Ready(Err(io::Error::other(e.to_string())));
            }
            let mut step = match (me.reading.take(), me.idle.take()) {
                (Some(step), _) => step,
                (None, Some(s)) => step(s),
                (None, None) => return Poll::Ready(Ok(())),
            };
            match step.as_mut().poll(cx) {
                Poll::Pending => {
                    me.reading = Some(step);
                    return Poll::Pending;
                }
                Poll::Ready((s, r)) => {
                    me.idle = Some(s);
                    match r {
                        Ok(Some(b)) => me.cur = b,
                        Ok(None) => me.done = true,
                        Err(e) => me.error = Some(e),
                    }
                }
            }
        }
    }
}

/// Why a value did not reach a peer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ToPeerError {
    /// The value broke off at its source.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// The peer took no chunk within the deadline.
    #[error("no progress within {0:?}")]
    Stalled(Duration),
    /// The exchange failed.
    #[error(transparent)]
    Conn(#[from] ConnError),
}

/// Sends `stream` as the chunks of a request body on `ex`, each only once
/// the peer's window has room, within `deadline` each. A peer that answers
/// before taking the whole value (a refusal, or it held something newer)
/// ends the sending; its answer is the exchange's response.
pub(crate) async fn to_peer(
    ex: &mut Exchange,
    mut stream: ValueStream,
    deadline: Duration,
) -> Result<(), ToPeerError> {
    let mut seq = 0u32;
    // One piece held back, so the last one can be marked as such.
    let mut held = stream.next().await?;
    loop {
        let next = match &held {
            Some(_) => stream.next().await?,
            None => None,
        };
        let last = next.is_none();
        let data = held.take().unwrap_or_default();
        let sent = timeout(deadline, ex.send_chunk(Chunk { seq, data, last }))
            .await
            .map_err(|_| ToPeerError::Stalled(deadline))?;
        match sent {
            Ok(()) => {}
            Err(ConnError::Answered) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        if last {
            return Ok(());
        }
        seq += 1;
        held = next;
    }
}

/// Why a streamed reply stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ToSessionError {
    /// The value broke off at its source.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// The client acknowledged nothing within the deadline.
    #[error("no acknowledgement within {0:?}")]
    Stalled(Duration),
    /// The client cancelled the request.
    #[error("cancelled by the peer")]
    Cancelled,
    /// The connection closed.
    #[error("connection closed")]
    Closed,
}

/// Sends `stream` as the chunks of request `id`'s reply, each only once
/// the client's acknowledgements (`acked`) leave room in the window; a
/// client that stops acknowledging for `deadline` is given up on.
pub(crate) async fn to_session(
    tx: &mpsc::Sender<Frame>,
    id: RequestId,
    mut stream: ValueStream,
    acked: &mut watch::Receiver<u32>,
    deadline: Duration,
) -> Result<(), ToSessionError> {
    let mut next = stream.next().await?;
    let mut seq = 0u32;
    loop {
        let data = next.take().unwrap_or_default();
        next = if data.is_empty() {
            None
        } else {
            stream.next().await?
        };
        let last = next.is_none();
        timeout(
            deadline,
            acked.wait_for(|&a| seq < a.saturating_add(WINDOW)),
        )
        .await
        .map_err(|_| ToSessionError::Stalled(deadline))?
        .map_err(|_| ToSessionError::Cancelled)?;
        let chunk = Chunk { seq, data, last };
        tx.send(Frame::new(id, Body::Chunk(chunk)))
            .await
            .map_err(|_| ToSessionError::Closed)?;
        if last {
            return Ok(());
        }
        seq += 1;
    }
}

/// `stream` as a `futures` stream of pieces, for an HTTP response body. A
/// failure ends the body with an error (the client sees a cut response).
pub(crate) fn into_body_stream(
    stream: ValueStream,
) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    BodyStream {
        idle: Some(stream),
        reading: None,
    }
}

struct BodyStream {
    idle: Option<ValueStream>,
    reading: Option<Step>,
}

impl Stream for BodyStream {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let me = self.get_mut();
        let mut step = match (me.reading.take(), me.idle.take()) {
            (Some(step), _) => step,
            (None, Some(s)) => step(s),
            (None, None) => return Poll::Ready(None),
        };
        let Poll::Ready((s, r)) = step.as_mut().poll(cx) else {
            me.reading = Some(step);
            return Poll::Pending;
        };
        Poll::Ready(match r {
            Ok(Some(b)) => {
                me.idle = Some(s);
                Some(Ok(b))
            }
            Ok(None) => None,
            Err(e) => Some(Err(io::Error::other(e.to_string()))),
        })
    }
}

/// Splits `source` into one stream per target, each fed through a queue of
/// `queue` pieces. [`Tee::run`] reads the source and feeds every branch; a
/// branch that takes no piece for `deadline` is cut off (its receiver sees
/// the value abandoned, so nothing partial is committed there) and the
/// others go on.
pub(crate) fn tee(
    source: ValueStream,
    targets: &[NodeId],
    queue: usize,
    deadline: Duration,
) -> (Tee, Vec<(NodeId, ValueStream)>) {
    let (len, chunk) = (source.len(), source.chunk_size());
    let mut feeds = Vec::with_capacity(targets.len());
    let mut branches = Vec::with_capacity(targets.len());
    for node in targets {
        let (tx, rx) = mpsc::channel(queue);
        feeds.push((node.clone(), tx));
        branches.push((node.clone(), ValueStream::piped(rx, len, chunk)));
    }
    (
        Tee {
            source,
            feeds,
            deadline,
        },
        branches,
    )
}

/// The feeding half of a [`tee`].
pub(crate) struct Tee {
    source: ValueStream,
    feeds: Vec<(NodeId, mpsc::Sender<Piece>)>,
    deadline: Duration,
}

impl Tee {
    /// Feeds every branch to the source's end, or until every branch is
    /// gone. A source that breaks drops every feed: no branch keeps a
    /// partial value.
    pub async fn run(mut self) -> Result<(), ValueError> {
        let deadline = self.deadline;
        loop {
            let piece = self.source.next().await?;
            let end = piece.is_none();
            let mut live = Vec::with_capacity(self.feeds.len());
            for (node, tx) in self.feeds {
                let piece = match &piece {
                    Some(b) => Piece::Data(b.clone()),
                    None => Piece::End,
                };
                match timeout(deadline, tx.send(piece)).await {
                    Ok(Ok(())) => live.push((node, tx)),
                    Ok(Err(_)) => tracing::debug!(%node, "replica stream failed"),
                    Err(_) => {
                        tracing::warn!(%node, "replica cut off: no progress within {deadline:?}");
                    }
                }
            }
            self.feeds = live;
            if end || self.feeds.is_empty() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).expect("name")
    }

    async fn collect(mut s: ValueStream) -> Result<Vec<u8>, ValueError> {
        let mut out = Vec::new();
        while let Some(b) = s.next().await? {
            assert!(b.len() <= s.chunk_size());
            out.extend_from_slice(&b);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn a_tee_gives_every_branch_the_whole_value_in_chunks() {
        let value: Bytes = (0..10_000u32).map(|i| i as u8).collect();
        let source = ValueStream::memory(value.clone(), 1000);
        let (tee, branches) = tee(source, &[id("a:1"), id("b:1")], 2, Duration::from_secs(5));
        let feeding = tokio::spawn(tee.run());
        let readers: Vec<_> = branches
            .into_iter()
            .map(|(_, b)| tokio::spawn(collect(b)))
            .collect();
        for r in readers {
            assert_eq!(r.await.expect("task").expect("whole"), value);
        }
        feeding.await.expect("task").expect("fed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_branch_that_takes_nothing_is_cut_off_and_sees_the_value_abandoned() {
        let value = Bytes::from(vec![7u8; 10_000]);
        let source = ValueStream::memory(value.clone(), 1000);
        let (tee, mut branches) = tee(
            source,
            &[id("a:1"), id("b:1")],
            1,
            Duration::from_millis(100),
        );
        let (_, stuck) = branches.pop().expect("b");
        let (_, reading) = branches.pop().expect("a");
        let feeding = tokio::spawn(tee.run());
        assert_eq!(collect(reading).await.expect("a reads it all"), value);
        feeding.await.expect("task").expect("fed");
        assert!(matches!(collect(stuck).await, Err(ValueError::Abandoned)));
    }

    #[tokio::test]
    async fn the_store_gets_a_streamed_value_and_a_broken_one_stores_nothing() {
        let store = mydht_store::MemoryStore::new();
        let v = |ms| Version {
            timestamp: mydht_proto::Timestamp::from_parts(ms, 0),
            node: id("a:1"),
        };
        let value = Bytes::from(vec![1u8; 5000]);
        let (tee, mut branches) = tee(
            ValueStream::memory(value.clone(), 1000),
            &[id("a:1")],
            2,
            Duration::from_secs(5),
        );
        let (_, branch) = branches.pop().expect("one");
        let (fed, stored) = tokio::join!(tee.run(), to_store(&store, b"k", v(10), branch));
        fed.expect("fed");
        assert!(stored.expect("stored").applied());
        // A branch whose feeder is gone before the end commits nothing.
        let (tx, rx) = mpsc::channel(4);
        tx.send(Piece::Data(Bytes::from_static(b"part")))
            .await
            .expect("send");
        drop(tx);
        let broken = ValueStream::piped(rx, None, 1000);
        let err = to_store(&store, b"k", v(20), broken)
            .await
            .expect_err("abandoned");
        assert!(
            matches!(err, ToStoreError::Value(ValueError::Abandoned)),
            "{err}"
        );
        match store.get(b"k").await.expect("get") {
            mydht_store::Lookup::Value(s) => assert_eq!(s.version(), &v(10)),
            _ => panic!("the first value stays"),
        }
    }
}
