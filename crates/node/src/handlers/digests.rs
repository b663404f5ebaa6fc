//! The serving side of the digest-tree replica calls: `ReplicaParts`,
//! `ReplicaLeaves` and `ReplicaEntries`, answered from the digests this
//! node's store keeps (see `mydht_store::DigestTree`) and, for entries, a
//! scan of the leaves asked. (The calling side is `antientropy`.)
//!
//! Answers are bounded: a leaves call names at most
//! [`MAX_LEAF_PARTS`] parts, and an entries answer stops taking asks, then
//! inline values, then entries at a byte budget (the caller asks again for
//! the rest, or fetches a value on its own), so no answer outgrows a frame.

use mydht_proto::{
    ErrorReply, LeafAsk, LeafDigest, LeafEntry, MAX_ASKS, MAX_LEAF_PARTS, PartDigest, Response,
    Want,
};
use mydht_store::{
    Cover, LEAVES_PER_PART, Lookup, Stamp, Store, hash_prefix, leaf_digests, leaf_entries,
    part_digests,
};

use super::{Reply, failed};
use crate::node::Node;

/// An entries answer stops growing past this many bytes: with the one
/// entry that may pass it (a key and an inline value at most), it stays
/// well within a frame.
const ENTRIES_BUDGET: usize = 192 * 1024;

/// An entries answer takes no further ask once it has scanned this many
/// entries (of leaves made large on purpose, say).
const SCAN_BUDGET: usize = 64 * 1024;

/// Values up to this size come inline with their entry; larger ones the
/// caller fetches on their own (streamed).
const INLINE_VALUE_MAX: u64 = 16 * 1024;

/// Serves `ReplicaParts`.
pub(crate) async fn serve_parts<S: Store>(node: &Node<S>, cover: Vec<(u64, u64)>) -> Reply {
    let cover = Cover::from_intervals(cover);
    match part_digests(&*node.store, &cover).await {
        Ok(parts) => Reply::Plain(Response::Parts(
            parts
                .into_iter()
                .map(|d| PartDigest {
                    count: d.count,
                    hash: d.hash.to_le_bytes(),
                })
                .collect(),
        )),
        Err(e) => Reply::error(failed(&e)),
    }
}

/// Serves `ReplicaLeaves`.
pub(crate) async fn serve_leaves<S: Store>(
    node: &Node<S>,
    cover: Vec<(u64, u64)>,
    parts: Vec<u8>,
) -> Reply {
    if parts.len() > MAX_LEAF_PARTS {
        return Reply::error(ErrorReply::BadRequest {
            reason: format!("{} parts asked, at most {MAX_LEAF_PARTS}", parts.len()),
        });
    }
    let cover = Cover::from_intervals(cover);
    let mut out = Vec::with_capacity(parts.len() * LEAVES_PER_PART);
    for part in parts {
        let first = usize::from(part) * LEAVES_PER_PART;
        match leaf_digests(&*node.store, &cover, first..first + LEAVES_PER_PART).await {
            Ok(leaves) => out.extend(leaves.into_iter().map(|d| LeafDigest {
                count: d.count,
                hash: hash_prefix(d.hash),
            })),
            Err(e) => return Reply::error(failed(&e)),
        }
    }
    Reply::Plain(Response::Leaves(out))
}

/// Serves `ReplicaEntries`.
pub(crate) async fn serve_entries<S: Store>(
    node: &Node<S>,
    cover: Vec<(u64, u64)>,
    asks: Vec<LeafAsk>,
) -> Reply {
    if asks.len() > MAX_ASKS {
        return Reply::error(ErrorReply::BadRequest {
            reason: format!("{} asks, at most {MAX_ASKS}", asks.len()),
        });
    }
    let cover = Cover::from_intervals(cover);
    let mut entries = Vec::new();
    let mut bytes = 0usize;
    let mut scanned = 0usize;
    let mut answered = 0u32;
    'asks: for (i, ask) in (0u32..).zip(asks) {
        if i > 0 && (bytes >= ENTRIES_BUDGET || scanned >= SCAN_BUDGET) {
            break;
        }
        let listed = match leaf_entries(&*node.store, &cover, usize::from(ask.leaf)).await {
            Ok(l) => l,
            Err(e) => return Reply::error(failed(&e)),
        };
        scanned += listed.len();
        let want = match ask.want {
            Want::One(prefix) => Wanted::One(prefix),
            Want::Except(mut have) => {
                have.sort_unstable();
                Wanted::Except(have)
            }
        };
        let mut sent = 0usize;
        for meta in listed {
            let hash = meta.entry_hash();
            let wanted = match &want {
                Wanted::One(prefix) => hash_prefix(hash) == *prefix,
                Wanted::Except(have) => have.binary_search(&hash.to_le_bytes()).is_err(),
            };
            if !wanted {
                continue;
            }
            // Cut here: the caller asks again for the rest of this leaf.
            // The first entry of the first ask always goes, so each answer
            // moves the caller on.
            if bytes >= ENTRIES_BUDGET && (i > 0 || sent > 0) {
                break 'asks;
            }
            let mut entry = LeafEntry {
                key: meta.key.clone(),
                version: meta.stamp.version().clone(),
                tombstone: meta.stamp.is_tombstone(),
                hash: hash.to_le_bytes(),
                size: meta.size,
                value: None,
            };
            let room = usize::try_from(meta.size)
                .is_ok_and(|size| bytes.saturating_add(size) <= ENTRIES_BUDGET);
            if !entry.tombstone
                && meta.size <= INLINE_VALUE_MAX
                && room
                && let Some(value) = inline_value(node, &meta.key, &meta.stamp).await
            {
                entry.value = Some(value);
            }
            bytes += entry.key.len()
                + entry.version.node.as_str().len()
                + entry.value.as_ref().map_or(0, |v| v.len())
                + 40;
            entries.push((i, entry));
            sent += 1;
        }
        answered = i + 1;
    }
    Reply::Plain(Response::Entries { answered, entries })
}

enum Wanted {
    One([u8; 4]),
    Except(Vec<[u8; 8]>),
}

/// The value the key holds, if it still holds exactly `stamp`'s version
/// and is small.
async fn inline_value<S: Store>(node: &Node<S>, key: &[u8], stamp: &Stamp) -> Option<bytes::Bytes> {
    match node.store.get(key).await.ok()? {
        Lookup::Value(v) if v.version() == stamp.version() => {
            v.into_bytes(INLINE_VALUE_MAX).await.ok()
        }
        _ => None,
    }
}
