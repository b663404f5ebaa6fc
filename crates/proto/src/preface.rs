//! The first bytes of a connection: what protocol it speaks, and which
//! versions of ours.
//!
//! One port serves both the binary protocol and HTTP, so the node peeks at a
//! connection's first bytes and [`classify`]s them. A binary connection opens
//! with a [`Preface`]: the 4-byte [`MAGIC`] (its first byte is not ASCII, so
//! no HTTP request starts with it) and the lowest and highest protocol
//! versions the sender speaks. The accepting side answers with its own
//! preface; both then speak the highest version in both ranges, or the
//! accepting side answers [`ErrorReply::UnsupportedVersion`](crate::ErrorReply)
//! and closes.

use thiserror::Error;

/// The magic that opens a binary connection.
pub const MAGIC: [u8; 4] = [0xF0, b'M', b'D', b'H'];
/// The lowest protocol version this release speaks. Protocol 2 gave every
/// member entry a version and replaced one-shot announcements with gossip;
/// a protocol-1 node would misread its member lists, so it is refused.
/// Protocol 3 has a replica name the version it holds when it does not
/// apply a write; a protocol-2 node would misread that answer. Protocol 4
/// adds the digest-tree replica calls of anti-entropy; a protocol-3 node
/// answers them as unknown requests (its anti-entropy rounds with newer
/// members then fail and are reported, until it is upgraded too).
pub const MIN_PROTOCOL_VERSION: u16 = 3;
/// The highest protocol version this release speaks.
pub const MAX_PROTOCOL_VERSION: u16 = 4;
/// Bytes in a preface.
pub const PREFACE_LEN: usize = 8;

/// What a connection's first bytes say it speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// The mydht binary protocol.
    Binary,
    /// An HTTP/1.x request, or the HTTP/2 cleartext preface.
    Http,
    /// Neither: close the connection.
    Unknown,
    /// Too few bytes to tell yet.
    NeedMore,
}

/// Request lines an HTTP client can open with (and `PRI`, the HTTP/2
/// cleartext preface).
const HTTP_STARTS: [&[u8]; 10] = [
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"TRACE ",
    b"CONNECT ",
    b"PRI ",
];

/// Tells from a connection's first bytes what protocol it speaks.
pub fn classify(first: &[u8]) -> Protocol {
    let mut undecided = false;
    for start in std::iter::once(&MAGIC[..]).chain(HTTP_STARTS) {
        let n = first.len().min(start.len());
        if first[..n] == start[..n] {
            if n == start.len() {
                return if start == MAGIC {
                    Protocol::Binary
                } else {
                    Protocol::Http
                };
            }
            undecided = true;
        }
    }
    if undecided {
        Protocol::NeedMore
    } else {
        Protocol::Unknown
    }
}

/// The versions one side speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preface {
    /// The lowest version spoken.
    pub min: u16,
    /// The highest version spoken.
    pub max: u16,
}

/// Why bytes are not an acceptable preface.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PrefaceError {
    /// More bytes are needed; not a failure.
    #[error("incomplete preface: {needed} more bytes needed")]
    Incomplete {
        /// This many more bytes.
        needed: usize,
    },
    /// The connection does not start with the magic.
    #[error("not a mydht connection (first bytes {found:02x?})")]
    BadMagic {
        /// The first four bytes seen.
        found: [u8; 4],
    },
    /// The announced range is empty (min above max).
    #[error("invalid version range {min}..={max}")]
    BadRange {
        /// The announced lowest version.
        min: u16,
        /// The announced highest version.
        max: u16,
    },
    /// The two sides share no version.
    #[error("peer speaks protocol {}..={}, this side {}..={}", theirs.min, theirs.max, ours.min, ours.max)]
    Unsupported {
        /// The peer's range.
        theirs: Preface,
        /// This side's range.
        ours: Preface,
    },
}

impl Preface {
    /// The versions this release speaks.
    pub const CURRENT: Self = Self {
        min: MIN_PROTOCOL_VERSION,
        max: MAX_PROTOCOL_VERSION,
    };

    /// The bytes to send.
    pub fn encode(&self) -> [u8; PREFACE_LEN] {
        let mut out = [0u8; PREFACE_LEN];
        out[..4].copy_from_slice(&MAGIC);
        out[4..6].copy_from_slice(&self.min.to_be_bytes());
        out[6..8].copy_from_slice(&self.max.to_be_bytes());
        out
    }

    /// Reads a preface from the start of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Self, PrefaceError> {
        let magic_seen = buf.len().min(MAGIC.len());
        if buf[..magic_seen] != MAGIC[..magic_seen] {
            let mut found = [0u8; 4];
            found[..magic_seen].copy_from_slice(&buf[..magic_seen]);
            return Err(PrefaceError::BadMagic { found });
        }
        let Some(bytes) = buf.first_chunk::<PREFACE_LEN>() else {
            return Err(PrefaceError::Incomplete {
                needed: PREFACE_LEN - buf.len(),
            });
        };
        let min = u16::from_be_bytes([bytes[4], bytes[5]]);
        let max = u16::from_be_bytes([bytes[6], bytes[7]]);
        if min > max {
            return Err(PrefaceError::BadRange { min, max });
        }
        Ok(Self { min, max })
    }

    /// The version two sides speak: the highest in both ranges.
    pub fn negotiate(&self, theirs: &Preface) -> Result<u16, PrefaceError> {
        let version = self.max.min(theirs.max);
        if version < self.min.max(theirs.min) {
            return Err(PrefaceError::Unsupported {
                theirs: *theirs,
                ours: *self,
            });
        }
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_binary_http_and_junk() {
        let preface = Preface::CURRENT.encode();
        assert_eq!(classify(&preface), Protocol::Binary);
        assert_eq!(classify(&preface[..2]), Protocol::NeedMore);
        assert_eq!(classify(b""), Protocol::NeedMore);
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Protocol::Http);
        assert_eq!(classify(b"DELETE /v1/kv/x HTTP/1.1"), Protocol::Http);
        assert_eq!(classify(b"PRI * HTTP/2.0\r\n"), Protocol::Http);
        assert_eq!(classify(b"DEL"), Protocol::NeedMore);
        assert_eq!(classify(b"GETX"), Protocol::Unknown);
        assert_eq!(classify(b"\x16\x03\x01"), Protocol::Unknown, "TLS hello");
        assert_eq!(classify(b"put mykey"), Protocol::Unknown);
    }

    #[test]
    fn preface_round_trips_and_negotiates() {
        let p = Preface { min: 1, max: 3 };
        assert_eq!(Preface::parse(&p.encode()), Ok(p));
        assert_eq!(p.negotiate(&Preface { min: 2, max: 5 }), Ok(3));
        assert_eq!(
            Preface::CURRENT.negotiate(&Preface::CURRENT),
            Ok(MAX_PROTOCOL_VERSION)
        );
        let protocol_one = Preface { min: 1, max: 1 };
        assert!(
            matches!(
                Preface::CURRENT.negotiate(&protocol_one),
                Err(PrefaceError::Unsupported { .. })
            ),
            "a node without versioned member entries is refused"
        );
        let newer = Preface { min: 7, max: 9 };
        assert!(matches!(
            Preface::CURRENT.negotiate(&newer),
            Err(PrefaceError::Unsupported { .. })
        ));
    }

    #[test]
    fn bad_prefaces_are_typed_errors() {
        assert_eq!(
            Preface::parse(&MAGIC[..3]),
            Err(PrefaceError::Incomplete { needed: 5 })
        );
        assert!(matches!(
            Preface::parse(b"GET / HTTP/1.1"),
            Err(PrefaceError::BadMagic { .. })
        ));
        let mut backwards = Preface::CURRENT.encode();
        backwards[4..6].copy_from_slice(&9u16.to_be_bytes());
        assert_eq!(
            Preface::parse(&backwards),
            Err(PrefaceError::BadRange {
                min: 9,
                max: MAX_PROTOCOL_VERSION
            })
        );
    }
}
