//! An HTTP request body as pieces for a [`ValueStream`](crate::value::ValueStream):
//! cut into pieces of at most a chunk, each awaited within a deadline (a
//! client that stalls is cut off), the total checked against the announced
//! length and the size cap.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::BodyDataStream;
use bytes::Bytes;
use futures_core::Stream;
use tokio::time::{Instant, Sleep, sleep};

use crate::value::ValueError;

pub(crate) struct HttpBody {
    body: BodyDataStream,
    pending: Bytes,
    chunk: usize,
    received: u64,
    len: Option<u64>,
    max: u64,
    deadline: Duration,
    timer: Pin<Box<Sleep>>,
    /// Whether the timer runs for the frame being awaited: it starts when
    /// the reader asks for more, not while the reader is busy elsewhere.
    waiting: bool,
    ended: bool,
    failed: bool,
}

impl HttpBody {
    /// `body`, announced as `len` bytes if known, at most `max`.
    pub fn new(
        body: BodyDataStream,
        len: Option<u64>,
        max: u64,
        chunk: usize,
        deadline: Duration,
    ) -> Self {
        Self {
            body,
            pending: Bytes::new(),
            chunk,
            received: 0,
            len,
            max,
            deadline,
            timer: Box::pin(sleep(deadline)),
            waiting: false,
            ended: false,
            failed: false,
        }
    }

    fn fail(&mut self, e: ValueError) -> Poll<Option<Result<Bytes, ValueError>>> {
        self.failed = true;
        Poll::Ready(Some(Err(e)))
    }
}

impl Stream for HttpBody {
    type Item = Result<Bytes, ValueError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let me = self.get_mut();
        if me.failed {
            return Poll::Ready(None);
        }
        while me.pending.is_empty() && !me.ended {
            if !me.waiting {
                let next = Instant::now() + me.deadline;
                me.timer.as_mut().reset(next);
                me.waiting = true;
            }
            match Pin::new(&mut me.body).poll_next(cx) {
                Poll::Ready(None) => {
                    me.ended = true;
                    me.waiting = false;
                }
                Poll::Ready(Some(Err(e))) => {
                    return me.fail(ValueError::BadStream {
                        reason: format!("reading the body: {e}"),
                    });
                }
                Poll::Ready(Some(Ok(b))) => {
                    me.received += b.len() as u64;
                    let cap = me.len.unwrap_or(me.max).min(me.max);
                    if me.received > cap {
                        let size = me.received;
                        return me.fail(ValueError::TooLarge { size, max: cap });
                    }
                    me.pending = b;
                    me.waiting = false;
                }
                Poll::Pending => {
                    if me.timer.as_mut().poll(cx).is_ready() {
                        let after = me.deadline;
                        return me.fail(ValueError::Stalled { after });
                    }
                    return Poll::Pending;
                }
            }
        }
        if me.pending.is_empty() {
            if let Some(len) = me.len
                && me.received != len
            {
                let received = me.received;
                return me.fail(ValueError::BadStream {
                    reason: format!("body ended after {received} of {len} bytes"),
                });
            }
            return Poll::Ready(None);
        }
        let n = me.pending.len().min(me.chunk);
        Poll::Ready(Some(Ok(me.pending.split_to(n))))
    }
}
