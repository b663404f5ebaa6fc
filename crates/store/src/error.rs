//! The one error type of the store, with the cause kept as structured fields.
//!
//! Callers branch on the variant (a full disk is answered differently from a
//! stale write or a bad key); they never parse messages. The store does not
//! retry on its own beyond the bounded reopen described in `disk`.

use std::io;
use thiserror::Error;

/// What went wrong in a store operation.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The key is longer than [`MAX_KEY_LEN`](crate::MAX_KEY_LEN).
    #[error("key of {len} bytes is longer than the limit of {max} bytes")]
    KeyTooLong {
        /// The key's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The disk holding the store has no space left; nothing was acknowledged.
    #[error("no space left on the device while {op}")]
    DiskFull {
        /// What the store was doing.
        op: &'static str,
    },
    /// An I/O error other than a full disk; nothing was acknowledged.
    #[error("I/O error while {op}: {source}")]
    Io {
        /// What the store was doing.
        op: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The embedded engine failed.
    #[error("storage engine error while {op}: {detail}")]
    Engine {
        /// What the store was doing.
        op: &'static str,
        /// The engine's description of the failure.
        detail: String,
    },
    /// The engine is being reopened after a failed write (see `disk`); the
    /// operation may be tried again.
    #[error("the store is reopening after a failed write")]
    Reopening,
    /// The store has been shut down.
    #[error("the store is closed")]
    Closed,
    /// Bytes on disk do not decode; the store refuses to guess.
    #[error("corrupt {what} in the store")]
    Corrupt {
        /// Which record failed to decode.
        what: &'static str,
    },
    /// A large value's file is missing although its metadata names it.
    #[error("value file {id:016x} is missing")]
    MissingValueFile {
        /// The file's number.
        id: u64,
    },
    /// A value was larger than the caller allowed it to be.
    #[error("value of {len} bytes exceeds the limit of {max} bytes")]
    ValueTooLarge {
        /// The value's length.
        len: u64,
        /// The caller's limit.
        max: u64,
    },
}

impl StoreError {
    /// An I/O error, turned into [`StoreError::DiskFull`] when it is one.
    pub(crate) fn io(op: &'static str, source: io::Error) -> Self {
        if matches!(
            source.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        ) {
            Self::DiskFull { op }
        } else {
            Self::Io { op, source }
        }
    }

    /// An engine error, unwrapping the I/O errors it carries so that a full
    /// disk and EIO keep their own variants.
    pub(crate) fn engine(op: &'static str, err: fjall::Error) -> Self {
        match err {
            fjall::Error::Io(source) => Self::io(op, source),
            fjall::Error::Storage(fjall::LsmError::Io(source)) => Self::io(op, source),
            other => Self::Engine {
                op,
                detail: format!("{other:?}"),
            },
        }
    }

    /// Whether this is a full disk.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Self::DiskFull { .. })
    }
}
