//! Reading and writing frames on async byte streams.
//!
//! [`FrameReader`] and [`FrameWriter`] wrap the two halves of a connection
//! with the [`MessageCodec`]; the writer batches frames into one buffer and
//! writes them with one call, which is what makes pipelined small requests
//! cheap. [`connect_preface`] and [`accept_preface`] run the preface exchange
//! that opens every binary connection.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::sync::CancellationToken;

use crate::{CodecError, Frame, Limits, MessageCodec, PREFACE_LEN, Preface, PrefaceError};

/// Why a connection failed at the transport or framing level.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IoError {
    /// The stream carried something that is not a valid frame.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The opening preface was wrong or named no common version.
    #[error(transparent)]
    Preface(#[from] PrefaceError),
    /// The transport failed.
    #[error("connection I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed mid-frame ({buffered} bytes of a frame buffered)")]
    Truncated {
        /// Bytes of the unfinished frame.
        buffered: usize,
    },
}

/// Reads frames from the receiving half of a connection.
pub struct FrameReader<R> {
    io: R,
    buf: BytesMut,
    codec: MessageCodec,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads with `limits`, starting with bytes already taken off the stream.
    pub fn new(io: R, limits: Limits, already_read: BytesMut) -> Self {
        Self {
            io,
            buf: already_read,
            codec: MessageCodec::new(limits),
        }
    }

    /// The next frame, or `None` when the peer closed cleanly between frames.
    pub async fn next(&mut self) -> Result<Option<Frame>, IoError> {
        loop {
            if let Some(frame) = self.codec.decode(&mut self.buf)? {
                return Ok(Some(frame));
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(16 * 1024);
            }
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(IoError::Truncated {
                        buffered: self.buf.len(),
                    })
                };
            }
        }
    }
}

/// Writes frames to the sending half of a connection, batching them.
pub struct FrameWriter<W> {
    io: W,
    buf: BytesMut,
    codec: MessageCodec,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Writes with `limits`.
    pub fn new(io: W, limits: Limits) -> Self {
        Self {
            io,
            buf: BytesMut::with_capacity(16 * 1024),
            codec: MessageCodec::new(limits),
        }
    }

    /// Adds a frame to the batch without writing it yet. A frame over the
    /// limit is refused and the batch is unchanged.
    pub fn feed(&mut self, frame: &Frame) -> Result<(), IoError> {
        self.codec.encode(frame, &mut self.buf)?;
        Ok(())
    }

    /// Bytes waiting in the batch.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Writes the batch out and flushes the transport.
    pub async fn flush(&mut self) -> Result<(), IoError> {
        if !self.buf.is_empty() {
            self.io.write_all(&self.buf).await?;
            self.buf.clear();
        }
        self.io.flush().await?;
        Ok(())
    }

    /// Feeds one frame and flushes.
    pub async fn send(&mut self, frame: &Frame) -> Result<(), IoError> {
        self.feed(frame)?;
        self.flush().await
    }

    /// Shuts the sending direction down after flushing.
    pub async fn shutdown(&mut self) -> Result<(), IoError> {
        self.flush().await?;
        self.io.shutdown().await?;
        Ok(())
    }
}

/// Flush a batch once it grows past this, even if more frames are queued.
const MAX_BATCH: usize = 256 * 1024;

/// Writes the frames arriving on `rx` until every sender is gone, `stop` is
/// cancelled or the transport fails, batching whatever is queued into one
/// write. A frame that cannot be encoded (over the frame limit) is handed to
/// `refused`, which may return a frame to send in its place (an error
/// answer). Cancels `stop` when it ends, so the reading side learns that the
/// connection is finished.
pub async fn write_frames<W: AsyncWrite + Unpin>(
    mut writer: FrameWriter<W>,
    mut rx: mpsc::Receiver<Frame>,
    stop: CancellationToken,
    mut refused: impl FnMut(&Frame, IoError) -> Option<Frame>,
) {
    loop {
        let first = tokio::select! {
            () = stop.cancelled() => break,
            f = rx.recv() => f,
        };
        let Some(first) = first else { break };
        let mut next = Some(first);
        while let Some(frame) = next.take() {
            if let Err(e) = writer.feed(&frame)
                && let Some(instead) = refused(&frame, e)
            {
                // An error answer is small; should even it fail, give up on it.
                let _ = writer.feed(&instead);
            }
            if writer.buffered() >= MAX_BATCH {
                break;
            }
            next = rx.try_recv().ok();
        }
        if writer.flush().await.is_err() {
            break;
        }
    }
    stop.cancel();
    let _ = writer.shutdown().await;
}

/// The connecting side's preface exchange: sends ours, reads theirs, and
/// returns the version both speak.
pub async fn connect_preface<R, W>(r: &mut R, w: &mut W) -> Result<u16, IoError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    w.write_all(&Preface::CURRENT.encode()).await?;
    w.flush().await?;
    let mut theirs = [0u8; PREFACE_LEN];
    r.read_exact(&mut theirs).await?;
    let theirs = Preface::parse(&theirs)?;
    Ok(Preface::CURRENT.negotiate(&theirs)?)
}

/// The accepting side's preface exchange: reads the peer's preface, always
/// answers with ours (so a peer of another release learns what we speak),
/// and returns the version both speak.
pub async fn accept_preface<R, W>(r: &mut R, w: &mut W) -> Result<u16, IoError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut theirs = [0u8; PREFACE_LEN];
    r.read_exact(&mut theirs).await?;
    let theirs = Preface::parse(&theirs)?;
    w.write_all(&Preface::CURRENT.encode()).await?;
    w.flush().await?;
    Ok(Preface::CURRENT.negotiate(&theirs)?)
}
