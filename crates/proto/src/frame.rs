//! One frame on the wire: a 4-byte big-endian length, then the postcard
//! encoding of the request id followed by the [`Body`].
//!
//! The id is decoded on its own first, so that a body this side cannot read
//! (garbage, or a kind from a newer release) can still be answered under the
//! right id. Decoding works on a plain byte slice and reports "need more
//! bytes" as [`FrameError::Incomplete`], which is what lets the codec, the
//! fuzzer and the property tests share it.

use bytes::{BufMut, BytesMut};
use postcard::ser_flavors::Flavor;
use thiserror::Error;

use crate::{Body, Limits, RequestId};

/// Bytes of the length prefix.
pub const PREFIX_LEN: usize = 4;

/// A decoded frame.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Frame {
    /// The request this frame belongs to (0 for the handshake).
    pub id: RequestId,
    /// What it carries.
    pub body: Body,
}

impl Frame {
    /// A frame of `body` for request `id`.
    pub fn new(id: RequestId, body: Body) -> Self {
        Self { id, body }
    }
}

/// Why bytes are not (yet) a frame.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// More bytes are needed; not a failure.
    #[error("incomplete frame: {needed} more bytes needed")]
    Incomplete {
        /// At least this many more bytes.
        needed: usize,
    },
    /// The length prefix announces a frame over the limit. The stream cannot
    /// be resynchronised: close the connection after answering.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A well-formed frame of a kind this release does not know (sent by a
    /// newer peer): answer it with
    /// [`ErrorReply::UnknownRequest`](crate::ErrorReply) and carry on.
    #[error("request {} is of an unknown {what} kind {tag}", id.0)]
    UnknownKind {
        /// The request id.
        id: RequestId,
        /// Which enum had no such variant (`body` or `request`).
        what: &'static str,
        /// The variant index received.
        tag: u64,
    },
    /// The frame's bytes are not a valid message. Framing is intact, so the
    /// stream could continue, but a peer sending garbage is not trusted.
    #[error("malformed frame{}: {reason}", id.map(|i| format!(" for request {}", i.0)).unwrap_or_default())]
    Malformed {
        /// The request id, when it could be read.
        id: Option<RequestId>,
        /// What the decoder reported.
        reason: String,
    },
}

/// The length of the first frame in `buf`, prefix included, once the prefix
/// is there; checks it against the limit.
pub fn frame_len(buf: &[u8], limits: &Limits) -> Result<usize, FrameError> {
    let Some(prefix) = buf.first_chunk::<PREFIX_LEN>() else {
        return Err(FrameError::Incomplete {
            needed: PREFIX_LEN - buf.len(),
        });
    };
    let len = u32::from_be_bytes(*prefix) as usize;
    if len > limits.max_frame_len {
        return Err(FrameError::TooLarge {
            len,
            max: limits.max_frame_len,
        });
    }
    Ok(PREFIX_LEN + len)
}

/// Decodes the first frame of `buf`, returning it and the bytes it used.
pub fn decode_frame(buf: &[u8], limits: &Limits) -> Result<(Frame, usize), FrameError> {
    let total = frame_len(buf, limits)?;
    if buf.len() < total {
        return Err(FrameError::Incomplete {
            needed: total - buf.len(),
        });
    }
    let bytes = &buf[PREFIX_LEN..total];
    let (id, rest) =
        postcard::take_from_bytes::<u64>(bytes).map_err(|e| FrameError::Malformed {
            id: None,
            reason: e.to_string(),
        })?;
    let id = RequestId(id);
    let malformed = |reason: String| FrameError::Malformed {
        id: Some(id),
        reason,
    };
    let (body, rest) = postcard::take_from_bytes::<Body>(rest)
        .map_err(|e| unknown_kind(id, rest).unwrap_or_else(|| malformed(e.to_string())))?;
    if !rest.is_empty() {
        return Err(malformed(format!("{} trailing bytes", rest.len())));
    }
    Ok((Frame { id, body }, total))
}

/// Appends the encoding of `frame` to `dst`. A frame that would exceed the
/// limit is refused and `dst` is left as it was: the peer would only reject it.
pub fn encode_frame(frame: &Frame, dst: &mut BytesMut, limits: &Limits) -> Result<(), FrameError> {
    let start = dst.len();
    dst.put_u32(0);
    let result = postcard::serialize_with_flavor(&frame.id.0, Appender(dst))
        .and_then(|()| postcard::serialize_with_flavor(&frame.body, Appender(dst)));
    if let Err(e) = result {
        dst.truncate(start);
        return Err(FrameError::Malformed {
            id: Some(frame.id),
            reason: e.to_string(),
        });
    }
    let len = dst.len() - start - PREFIX_LEN;
    if len > limits.max_frame_len {
        dst.truncate(start);
        return Err(FrameError::TooLarge {
            len,
            max: limits.max_frame_len,
        });
    }
    // In range: the limit check above bounds `len` far below u32::MAX in
    // any sane configuration, and a larger limit is caught here.
    let Ok(len32) = u32::try_from(len) else {
        dst.truncate(start);
        return Err(FrameError::TooLarge {
            len,
            max: u32::MAX as usize,
        });
    };
    dst[start..start + PREFIX_LEN].copy_from_slice(&len32.to_be_bytes());
    Ok(())
}

/// A postcard output that appends to a `BytesMut` with whole-slice copies
/// (postcard's `Extend` flavor pushes byte by byte).
struct Appender<'a>(&'a mut BytesMut);

impl Flavor for Appender<'_> {
    type Output = ();

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.put_u8(data);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Variants of [`Body`] this release knows (the wire-format test pins it).
pub const BODY_KINDS: u64 = 7;
/// Variants of [`Request`](crate::Request) this release knows.
pub const REQUEST_KINDS: u64 = 23;
const BODY_REQUEST_TAG: u64 = 2;

/// Tells a body from a newer release (an unknown body or request variant)
/// apart from garbage, by its leading variant indices.
fn unknown_kind(id: RequestId, body: &[u8]) -> Option<FrameError> {
    let (tag, rest) = postcard::take_from_bytes::<u64>(body).ok()?;
    if tag >= BODY_KINDS {
        return Some(FrameError::UnknownKind {
            id,
            what: "body",
            tag,
        });
    }
    if tag == BODY_REQUEST_TAG {
        let (req, _) = postcard::take_from_bytes::<u64>(rest).ok()?;
        if req >= REQUEST_KINDS {
            return Some(FrameError::UnknownKind {
                id,
                what: "request",
                tag: req,
            });
        }
    }
    None
}
