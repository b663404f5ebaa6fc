//! Storage engines for a mydht node, behind one trait.
//!
//! [`Store`] keeps, per key, the newest version written (last-writer-wins by
//! [`Version`](mydht_proto::Version)) as a value or a tombstone, lists keys
//! by ring range in position order, keeps per-leaf digests of what it holds
//! current as writes apply (see [`DigestTree`]), and counts keys and bytes
//! as it goes.
//! [`MemoryStore`] is the seed's in-memory behaviour (`--memory`);
//! [`DiskStore`] is the durable default. The [`HybridClock`] that stamps a
//! coordinator's writes lives here too, but the store never stamps: versions
//! come from its caller. This crate knows nothing of the network,
//! replication or the ring's members, and collects a tombstone only when its
//! caller vouches that every replica holds it.
//!
//! # The disk engine
//! - **Layout.** fjall 3 holds metadata (`position ‖ key` → version, kind,
//!   length) apart from small values, so `version_of` and listings never
//!   read values. Values above [`DiskOptions::large_value_threshold`]
//!   (1 MiB by default) are streamed to `values/<n>.val` beside the engine,
//!   fsynced, and only then named in the metadata: a reader sees the old
//!   version or the whole new one, never a part. Files no entry names are
//!   removed on open.
//! - **Durability.** One writer thread applies writes as compare-and-set and
//!   commits everything queued as one batch with one fsync (group commit);
//!   see [`SyncPolicy`] for what `always` (default), `periodic` and `none`
//!   risk.
//! - **Faults.** A full disk is [`StoreError::DiskFull`], other I/O failures
//!   [`StoreError::Io`]; nothing failed is acknowledged. fjall refuses all
//!   writes after a failed journal write, so the writer reopens it (bounded
//!   wait) and the store serves again once the fault is gone.
//! - **Limits.** Keys are at most [`MAX_KEY_LEN`] (1 KiB) bytes. The engine
//!   methods use tokio's blocking pool and must run inside a tokio runtime.
//!   Memory stays bounded whatever the value size (a 4 GiB value goes in and
//!   out under 7 MiB resident, see `examples/big_value.rs`).

mod clock;
mod digest;
mod disk;
mod entry;
mod error;
mod hints;
mod layout;
mod memory;
mod store;

pub use clock::{ClockError, DEFAULT_MAX_SKEW, HybridClock};
pub use digest::{
    Cover, DigestTree, LEAF_BITS, LEAVES, LEAVES_PER_PART, PART_BITS, PARTS, RangeDigest,
    ValueHash, ValueHasher, entry_hash, hash_prefix, leaf_digests, leaf_entries, leaf_of,
    part_digests, parts_of, value_hash,
};
pub use disk::{DiskOptions, DiskStore, SyncPolicy, UnknownSyncPolicy};
pub use entry::{
    EntryMeta, Lookup, MAX_KEY_LEN, Outcome, Purge, PurgeRequest, ScanCursor, ScanPage, Stamp,
    StoreStats, StoredValue, ValueReader, haskey_text, past_grace,
};
pub use error::StoreError;
pub use hints::Hint;
pub use memory::MemoryStore;
pub use store::Store;
