//! Storage engines for a mydht node, behind one trait.
//!
//! This crate will hold the `Store` trait with an in-memory engine (the seed's
//! behaviour, `--memory`) and a durable on-disk engine, both keeping a
//! last-writer-wins version and tombstones per key, and files beside the
//! engine for values too large to hold in memory. It does not know about the
//! network, the ring's membership or replication: versions come from its
//! caller. The engines arrive with the storage issue; until then the crate is
//! empty on purpose.
