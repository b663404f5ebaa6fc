//! Storage engines for a mydht node, behind one trait.
//!
//! [`Store`] keeps, per key, the newest version written (last-writer-wins by
//! [`Version`](mydht_proto::Version)) as a value or a tombstone, lists keys
//! by ring range in position order, and counts keys and bytes as it goes.
//! [`MemoryStore`] is the seed's in-memory behaviour; [`DiskStore`] is the
//! durable default (fjall for metadata and small values, files beside it for
//! large values, fsync with group commit before acknowledging). The
//! [`HybridClock`] that stamps a coordinator's writes lives here too, but the
//! store never stamps: versions come from its caller. This crate knows
//! nothing of the network, replication or the ring's members.

mod clock;
mod disk;
mod entry;
mod error;
mod layout;
mod memory;
mod store;

pub use clock::{ClockError, DEFAULT_MAX_SKEW, HybridClock};
pub use disk::{DiskOptions, DiskStore, SyncPolicy, UnknownSyncPolicy};
pub use entry::{
    EntryMeta, Lookup, MAX_KEY_LEN, Outcome, Purge, PurgeRequest, ScanCursor, ScanPage, Stamp,
    StoreStats, StoredValue, ValueReader, haskey_text,
};
pub use error::StoreError;
pub use memory::MemoryStore;
pub use store::Store;
