//! The tokio-util codec: [`Frame`]s over any `AsyncRead`/`AsyncWrite`.
//!
//! It adds nothing to the frame functions but buffering: it waits for whole
//! frames, never buffers past the frame limit, and turns
//! [`FrameError::Incomplete`] into "no frame yet".

use bytes::{Buf, BytesMut};
use thiserror::Error;
use tokio_util::codec::{Decoder, Encoder};

use crate::{Frame, FrameError, Limits, decode_frame, encode_frame, frame_len};

/// A failure of the framed stream.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes were not a valid frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The transport failed.
    #[error("connection I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Length-prefixed postcard frames with a hard size limit.
#[derive(Clone, Debug, Default)]
pub struct MessageCodec {
    limits: Limits,
}

impl MessageCodec {
    /// A codec enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self { limits }
    }

    /// The limits it enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

impl Decoder for MessageCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        match decode_frame(src, &self.limits) {
            Ok((frame, used)) => {
                src.advance(used);
                Ok(Some(frame))
            }
            Err(FrameError::Incomplete { .. }) => {
                // Reserve for the whole frame once its size is known, so a
                // large frame arrives in few reads.
                if let Ok(total) = frame_len(src, &self.limits) {
                    src.reserve(total.saturating_sub(src.len()));
                }
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl Encoder<Frame> for MessageCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode_frame(&frame, dst, &self.limits)?;
        Ok(())
    }
}

impl Encoder<&Frame> for MessageCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode_frame(frame, dst, &self.limits)?;
        Ok(())
    }
}
