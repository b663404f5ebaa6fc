//! One replica pair's exchange: this node compares the digests of what it
//! shares with one peer, top down, and takes from the peer every version
//! it lacks or holds older.
//!
//! The walk: the [`PARTS`] part digests (one call, a few KiB whatever the
//! key count); for each part that differs, its leaves' digests (one call
//! per [`MAX_LEAF_PARTS`] parts); for each leaf that differs, the entries.
//! A leaf where the peer holds exactly one entry more, whose hash the two
//! leaves' XOR names, is asked for that entry alone; any other differing
//! leaf is asked for every entry whose hash is not among this node's own
//! (8 bytes an entry). Either way what comes back is what this node lacks
//! or holds in another version, with values when small, so a replica that
//! missed writes is repaired for little more than the bytes it missed.
//!
//! The exchange only pulls. What this node holds newer, the peer takes in
//! its own round (every replica runs them), so two rounds at once never
//! send a version twice. A tombstone past the grace period for a key this
//! node holds nothing of is not taken (it has nothing to cover, and this
//! node may have collected it). Two copies of one version with different
//! bytes cannot be ordered: they are reported and counted, not changed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mydht_proto::{LeafAsk, LeafEntry, MAX_ASKS, MAX_LEAF_PARTS, Want};
use mydht_ring::NodeId;
use mydht_store::{
    Cover, EntryMeta, HybridClock, LEAVES, LEAVES_PER_PART, PARTS, Store, hash_prefix,
    leaf_digests, leaf_entries, parts_of, past_grace,
};
use tokio::task::JoinSet;

use crate::replication::Replicas;

/// Asks sent per entries call (the answer may cover fewer).
const ASKS_PER_CALL: usize = MAX_ASKS;
/// Hashes an entries call carries at most (8 bytes each).
const HASHES_PER_CALL: usize = 16 * 1024;
/// Hashes one ask carries at most.
const MAX_EXCEPT: usize = HASHES_PER_CALL;
/// Large values fetched from the peer at once.
const FETCHES_IN_FLIGHT: usize = 8;

/// What one exchange did.
#[derive(Debug, Default)]
pub(crate) struct Exchanged {
    /// Calls made to the peer.
    pub calls: u64,
    /// Parts whose digests differed when compared.
    pub differing: Vec<u8>,
    /// Leaves whose digests differed when compared.
    pub leaves: Vec<u16>,
    /// Versions taken from the peer.
    pub pulled: u64,
    /// Value bytes taken.
    pub bytes: u64,
    /// Keys held in the same version with different bytes.
    pub conflicts: u64,
}

/// What an exchange needs from its node.
pub(crate) struct Ctx<'a, S> {
    pub store: &'a Arc<S>,
    pub replicas: &'a Replicas<S>,
    pub me: &'a NodeId,
    pub clock: &'a HybridClock,
    pub grace: Duration,
}

/// Compares what this node and `peer` hold within `cover` and takes what
/// this node lacks. An error stops the exchange with the first reason.
pub(crate) async fn exchange<S: Store>(
    ctx: &Ctx<'_, S>,
    peer: &NodeId,
    cover: &Cover,
) -> Result<Exchanged, String> {
    let store = &**ctx.store;
    let mut out = Exchanged::default();
    // Every leaf once: the parts are their sums, and the leaves of the
    // parts that differ are compared below.
    let my_leaves = leaf_digests(store, cover, 0..LEAVES).await.map_err(local)?;
    let mine = parts_of(&my_leaves);
    let theirs = ctx
        .replicas
        .parts(peer, cover)
        .await
        .map_err(|e| e.to_string())?
        .0;
    out.calls += 1;
    if theirs.len() != PARTS {
        return Err(format!("{} part digests, not {PARTS}", theirs.len()));
    }
    out.differing = (0..=u8::MAX)
        .zip(mine.iter().zip(&theirs))
        .filter(|(_, (m, t))| m.count != t.count || m.hash.to_le_bytes() != t.hash)
        .map(|(p, _)| p)
        .collect();
    let mut asks = Vec::new();
    for batch in out.differing.chunks(MAX_LEAF_PARTS) {
        let theirs = ctx
            .replicas
            .leaves(peer, cover, batch.to_vec())
            .await
            .map_err(|e| e.to_string())?
            .0;
        out.calls += 1;
        if theirs.len() != batch.len() * LEAVES_PER_PART {
            return Err(format!(
                "{} leaf digests for {} parts",
                theirs.len(),
                batch.len()
            ));
        }
        for (part, theirs) in batch.iter().zip(theirs.chunks(LEAVES_PER_PART)) {
            let first = usize::from(*part) * LEAVES_PER_PART;
            let mine = &my_leaves[first..first + LEAVES_PER_PART];
            for (i, (m, t)) in mine.iter().zip(theirs).enumerate() {
                let x = hash_prefix(m.hash);
                let diff = [
                    x[0] ^ t.hash[0],
                    x[1] ^ t.hash[1],
                    x[2] ^ t.hash[2],
                    x[3] ^ t.hash[3],
                ];
                if m.count == t.count && diff == [0; 4] {
                    continue;
                }
                // Leaves number at most 2^16: the index fits.
                let leaf = u16::try_from(first + i).unwrap_or(u16::MAX);
                out.leaves.push(leaf);
                if t.count == m.count + 1 {
                    asks.push(LeafAsk {
                        leaf,
                        want: Want::One(diff),
                    });
                    continue;
                }
                let mine = hashes(store, cover, leaf).await?;
                if m.count == t.count + 1 && mine.iter().any(|h| h[..4] == diff) {
                    // One entry more here and nothing else differs: the
                    // peer takes it in its own round.
                    continue;
                }
                asks.push(LeafAsk {
                    leaf,
                    want: Want::Except(mine),
                });
            }
        }
    }
    let mut fetches = JoinSet::new();
    while !asks.is_empty() {
        let batch = next_batch(&asks);
        let got = ctx
            .replicas
            .entries(peer, cover, batch.clone())
            .await
            .map_err(|e| e.to_string())?;
        out.calls += 1;
        let answered = usize::try_from(got.answered).unwrap_or(usize::MAX);
        if answered > batch.len() || (answered == 0 && got.entries.is_empty()) {
            return Err(format!("{answered} of {} asks answered", batch.len()));
        }
        let mut listed: HashMap<u32, Vec<LeafEntry>> = HashMap::new();
        for (i, e) in got.entries {
            listed.entry(i).or_default().push(e);
        }
        let mut again = Vec::new();
        // The asks answered in full, and the one cut short, if any.
        let cut_short = u32::try_from(answered).is_ok_and(|a| listed.contains_key(&a));
        let seen = (answered + usize::from(cut_short)).min(batch.len());
        for (i, ask) in (0u32..).zip(&batch[..seen]) {
            let entries = listed.remove(&i).unwrap_or_default();
            let cut = usize::try_from(i).is_ok_and(|i| i == answered);
            let held: HashMap<Bytes, EntryMeta> = leaf_entries(store, cover, usize::from(ask.leaf))
                .await
                .map_err(local)?
                .into_iter()
                .map(|m| (m.key.clone(), m))
                .collect();
            // What came back first: should the list be cut to its bound,
            // it still moves the next answer past these.
            let mut known: Vec<[u8; 8]> = entries.iter().map(|e| e.hash).collect();
            known.extend(held.values().map(|m| m.entry_hash().to_le_bytes()));
            let mut new = false;
            for e in entries {
                let mine = held.get(&e.key);
                new |= take(ctx, peer, e, mine, &mut out, &mut fetches).await?;
            }
            // Cut short: ask for the rest, past what is known now. One
            // entry more that was not (another entry's hash starts the
            // same, or more differs): ask for all this node lacks.
            if cut || (matches!(ask.want, Want::One(_)) && !new) {
                known.truncate(MAX_EXCEPT);
                again.push(LeafAsk {
                    leaf: ask.leaf,
                    want: Want::Except(known),
                });
            }
        }
        asks.drain(..seen);
        asks.extend(again);
    }
    while let Some(done) = fetches.join_next().await {
        finish_fetch(done, &mut out)?;
    }
    Ok(out)
}

fn local(e: mydht_store::StoreError) -> String {
    format!("reading the store: {e}")
}

/// The hashes of this node's entries in `leaf` within `cover` (at most
/// [`MAX_EXCEPT`]: past that, the peer sends some this node holds).
async fn hashes<S: Store>(store: &S, cover: &Cover, leaf: u16) -> Result<Vec<[u8; 8]>, String> {
    Ok(leaf_entries(store, cover, usize::from(leaf))
        .await
        .map_err(local)?
        .iter()
        .take(MAX_EXCEPT)
        .map(|m| m.entry_hash().to_le_bytes())
        .collect())
}

/// The next asks to send: at most [`ASKS_PER_CALL`], and no more hashes
/// than [`HASHES_PER_CALL`] (but always one ask), so a call fits a frame.
fn next_batch(asks: &[LeafAsk]) -> Vec<LeafAsk> {
    let mut hashes = 0usize;
    let mut batch = Vec::new();
    for ask in asks.iter().take(ASKS_PER_CALL) {
        let n = match &ask.want {
            Want::One(_) => 1,
            Want::Except(h) => h.len(),
        };
        if !batch.is_empty() && hashes + n > HASHES_PER_CALL {
            break;
        }
        hashes += n;
        batch.push(ask.clone());
    }
    batch
}

type Fetch = Result<(bool, u64), String>;

/// Takes the peer's entry if it is newer than what this node holds.
/// Whether it differed from this node's at all.
async fn take<S: Store>(
    ctx: &Ctx<'_, S>,
    peer: &NodeId,
    e: LeafEntry,
    held: Option<&EntryMeta>,
    out: &mut Exchanged,
    fetches: &mut JoinSet<Fetch>,
) -> Result<bool, String> {
    if let Some(m) = held {
        let mine = m.stamp.version();
        if *mine > e.version {
            return Ok(true);
        }
        if *mine == e.version {
            if m.entry_hash().to_le_bytes() == e.hash {
                return Ok(false);
            }
            out.conflicts += 1;
            tracing::warn!(
                key = %String::from_utf8_lossy(&e.key),
                %peer,
                "a replica holds this version with other bytes; left as it is"
            );
            return Ok(true);
        }
    } else if e.tombstone && past_grace(ctx.clock.now(), &e.version, ctx.grace) {
        return Ok(true);
    }
    let store = &**ctx.store;
    let applied = if e.tombstone {
        store
            .delete(&e.key, e.version)
            .await
            .map_err(local)?
            .applied()
    } else if let Some(value) = e.value {
        let len = value.len() as u64;
        let applied = store
            .put(&e.key, e.version, value)
            .await
            .map_err(local)?
            .applied();
        out.bytes += if applied { len } else { 0 };
        applied
    } else {
        // Large: streamed from the peer, a few at once.
        while fetches.len() >= FETCHES_IN_FLIGHT {
            if let Some(done) = fetches.join_next().await {
                finish_fetch(done, out)?;
            }
        }
        let (replicas, peer, me, key, size) = (
            ctx.replicas.clone(),
            peer.clone(),
            ctx.me.clone(),
            e.key,
            e.size,
        );
        fetches.spawn(async move {
            let applied = replicas
                .copy(&peer, &me, key)
                .await
                .map_err(|err| err.to_string())?;
            Ok((applied, size))
        });
        return Ok(true);
    };
    out.pulled += u64::from(applied);
    Ok(true)
}

fn finish_fetch(
    done: Result<Fetch, tokio::task::JoinError>,
    out: &mut Exchanged,
) -> Result<(), String> {
    match done {
        Ok(Ok((applied, size))) => {
            if applied {
                out.pulled += 1;
                out.bytes += size;
            }
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        Err(e) => Err(format!("a fetch failed: {e}")),
    }
}
