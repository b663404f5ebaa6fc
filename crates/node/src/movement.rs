//! Data movement between replicas: restoring N copies after a remove,
//! balance (anti-entropy) and purge, with progress for the status page.
//!
//! Every kind of movement is one pass over this node's own store in ring
//! order, a page at a time. For each entry the ring says who must hold the
//! key; for each such member this node asks what it holds (a metadata-only
//! `ReplicaProbe`) and sends its own version only when the member's is older
//! or absent, with the version unchanged, so the newer version always wins
//! and a tombstone travels like a value: a delete a replica missed cannot
//! come back. Work runs at most [`IN_FLIGHT`] keys at a time, which is what
//! keeps it from starving client requests.
//!
//! Balance first compares a digest per range with each other replica of it
//! (count and XOR of a hash per entry, recomputed from the store's metadata
//! listing: no bookkeeping on the write path) and goes key by key only
//! through the ranges that differ; in a range every replica agrees on, it
//! collects tombstones past their grace period without asking again. It does
//! not decide membership (that is `membership` and the handlers).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use mydht_proto::Version;
use mydht_ring::{NodeId, Placement, Position, Ring, TokenRange};
use mydht_store::{EntryMeta, Purge, PurgeRequest, Stamp, Store};
use tokio::task::JoinSet;

use crate::shared::Shared;

/// Keys worked on at once by one pass.
const IN_FLIGHT: usize = 32;
/// What one key in motion may hold in memory at most: a stream window of
/// chunks plus the queues around it.
const STREAM_COST: u64 = 4 << 20;
/// Memory all keys in motion may hold together.
const BUDGET: u64 = 8 << 20;
/// Entries read from the store per page.
const PAGE: usize = 256;

/// What a pass does with each entry.
#[derive(Clone)]
pub(crate) enum Pass {
    /// Send each key this node replicates to the other replicas that lack
    /// it, and collect tombstones every replica holds past the grace period.
    Balance,
    /// After a membership change from `before`: send each key to the members
    /// that gained it, from its first surviving holder.
    Restore {
        /// The ring before the change.
        before: Arc<Ring>,
    },
    /// Drop each key this node no longer owns, once every owner holds the
    /// same or a newer version (sent first if not).
    Purge,
    /// In ranges whose digests agree on every replica: collect the
    /// tombstones past their grace period (every replica holds them).
    Collect,
    /// This node is leaving: send each key to the members that hold it in
    /// `after` (the ring without this node) but not now.
    Leave {
        /// The ring once this node is gone.
        after: Arc<Ring>,
    },
}

impl Pass {
    fn name(&self) -> &'static str {
        match self {
            Self::Balance => "balance",
            Self::Restore { .. } => "restore",
            Self::Purge => "purge",
            Self::Leave { .. } => "hand-off",
            Self::Collect => "collect",
        }
    }
}

/// What a pass did.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Entries looked at.
    pub scanned: u64,
    /// Versions sent to another member.
    pub sent: u64,
    /// Value bytes sent.
    pub bytes: u64,
    /// Keys dropped (purge) or tombstones collected (balance).
    pub dropped: u64,
    /// Metadata probes made (one per key and member compared).
    pub probes: u64,
    /// Range digests compared (balance).
    pub digests: u64,
    /// Members that could not be brought up to date, with the first reason.
    pub failed: BTreeMap<NodeId, String>,
}

impl Report {
    /// The failures in one line, for an error reply.
    pub fn failures(&self) -> Option<String> {
        if self.failed.is_empty() {
            return None;
        }
        let list: Vec<String> = self
            .failed
            .iter()
            .map(|(n, why)| format!("{n} ({why})"))
            .collect();
        Some(list.join(", "))
    }
}

/// One pass in progress, as the status page shows it.
struct Running {
    id: u64,
    pass: &'static str,
    started: Instant,
    total: u64,
    scanned: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

/// The passes running on this node and the last one finished.
#[derive(Default)]
pub(crate) struct Movement {
    next: AtomicU64,
    running: Mutex<Vec<Running>>,
    /// The latest finished pass of each kind, summed up.
    last: Mutex<BTreeMap<&'static str, String>>,
    /// Keys the latest pass to end (finished or abandoned) had looked at.
    last_scanned: AtomicU64,
}

/// Takes a pass off the running list however it ends, a dropped future
/// (a deadline) included.
struct Listed<'a> {
    movement: &'a Movement,
    id: u64,
    scanned: Arc<AtomicU64>,
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        self.movement
            .last_scanned
            .store(self.scanned.load(Ordering::Relaxed), Ordering::Relaxed);
        self.movement
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|r| r.id != self.id);
    }
}

impl Movement {
    /// An HTML fragment for the status page: what is moving, with progress.
    pub(crate) fn status_html(&self) -> String {
        let mut out = String::from("<h2>Data movement</h2><ul>");
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        for r in running.iter() {
            let scanned = r.scanned.load(Ordering::Relaxed);
            let pct = scanned
                .saturating_mul(100)
                .checked_div(r.total)
                .map_or(100, |p| p.min(100));
            out.push_str(&format!(
                "<li>{}: {scanned} of about {} keys checked ({pct}%), {} sent ({} bytes), for {:.1} s</li>",
                r.pass,
                r.total,
                r.sent.load(Ordering::Relaxed),
                r.bytes.load(Ordering::Relaxed),
                r.started.elapsed().as_secs_f64(),
            ));
        }
        if running.is_empty() {
            out.push_str("<li>nothing is moving</li>");
        }
        drop(running);
        for summary in self
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            out.push_str(&format!("<li>last finished: {summary}</li>"));
        }
        out.push_str("</ul>");
        out
    }

    fn finish(&self, pass: &'static str, summary: String) {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(pass, summary);
    }

    /// Keys looked at by the pass running now, or by the latest to end.
    pub(crate) fn checked(&self) -> u64 {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running.last().map_or_else(
            || self.last_scanned.load(Ordering::Relaxed),
            |r| r.scanned.load(Ordering::Relaxed),
        )
    }
}

/// Runs one pass over this node's whole store against the current ring.
pub(crate) async fn run<S: Store>(sh: &Arc<Shared<S>>, pass: Pass) -> Report {
    run_in(sh, pass, vec![TokenRange::new(Position(0), Position(0))]).await
}

/// Runs one pass over the entries of this node's store in `ranges`.
async fn run_in<S: Store>(sh: &Arc<Shared<S>>, pass: Pass, ranges: Vec<TokenRange>) -> Report {
    let stats = sh.store.stats();
    let scanned = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let id = sh.movement.next.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    sh.movement
        .running
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Running {
            id,
            pass: pass.name(),
            started,
            total: stats.live_keys + stats.tombstones,
            scanned: scanned.clone(),
            sent: sent.clone(),
            bytes: bytes.clone(),
        });
    let _listed = Listed {
        movement: &sh.movement,
        id,
        scanned: scanned.clone(),
    };
    let mut report = Report::default();
    let ring = sh.cluster.ring();
    let mut work: JoinSet<Outcome> = JoinSet::new();
    let mut costs: std::collections::HashMap<tokio::task::Id, u64> =
        std::collections::HashMap::new();
    let mut in_flight = 0u64;
    'ranges: for range in ranges {
        let mut cursor = None;
        loop {
            if sh.stop.is_cancelled() {
                report
                    .failed
                    .insert(sh.cluster.me().clone(), "the node is stopping".into());
                break 'ranges;
            }
            let page = match sh.store.scan(range, cursor.as_ref(), PAGE).await {
                Ok(p) => p,
                Err(e) => {
                    report
                        .failed
                        .insert(sh.cluster.me().clone(), format!("reading the store: {e}"));
                    break 'ranges;
                }
            };
            for meta in page.entries {
                // Bounded by keys and by memory: a large value in motion
                // holds up to a stream window, small ones far less.
                let cost = meta.size.clamp(1, STREAM_COST);
                while work.len() >= IN_FLIGHT || (!work.is_empty() && in_flight + cost > BUDGET) {
                    match work.join_next_with_id().await {
                        Some(done) => {
                            let id = match &done {
                                Ok((id, _)) => *id,
                                Err(e) => e.id(),
                            };
                            in_flight -= costs.remove(&id).unwrap_or(0);
                            let done = done.map(|(_, outcome)| outcome);
                            absorb(sh.cluster.me(), &mut report, done, &sent, &bytes);
                        }
                        None => break,
                    }
                }
                scanned.fetch_add(1, Ordering::Relaxed);
                report.scanned += 1;
                let (sh, ring, pass) = (sh.clone(), ring.clone(), pass.clone());
                let handle = work.spawn(async move { entry(&sh, &ring, &pass, meta).await });
                costs.insert(handle.id(), cost);
                in_flight += cost;
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    while let Some(done) = work.join_next().await {
        absorb(sh.cluster.me(), &mut report, done, &sent, &bytes);
    }
    let summary = format!(
        "{} of {} keys: {} sent ({} bytes), {} dropped, {} probes, in {:.1} s{}",
        pass.name(),
        report.scanned,
        report.sent,
        report.bytes,
        report.dropped,
        report.probes,
        started.elapsed().as_secs_f64(),
        report
            .failures()
            .map(|f| format!("; failed: {f}"))
            .unwrap_or_default(),
    );
    tracing::info!(%summary, "data movement finished");
    sh.movement.finish(pass.name(), summary);
    report
}

fn absorb(
    me: &NodeId,
    report: &mut Report,
    done: Result<Outcome, tokio::task::JoinError>,
    sent: &AtomicU64,
    bytes: &AtomicU64,
) {
    match done {
        Ok(o) => {
            report.sent += o.sent;
            report.probes += o.probes;
            report.bytes += o.bytes;
            report.dropped += u64::from(o.dropped);
            sent.fetch_add(o.sent, Ordering::Relaxed);
            bytes.fetch_add(o.bytes, Ordering::Relaxed);
            for (node, why) in o.failed {
                report.failed.entry(node).or_insert(why);
            }
        }
        Err(e) => {
            report
                .failed
                .entry(me.clone())
                .or_insert_with(|| format!("a movement task failed: {e}"));
        }
    }
}

/// What one entry's work did.
#[derive(Default)]
struct Outcome {
    probes: u64,
    sent: u64,
    bytes: u64,
    dropped: bool,
    failed: Vec<(NodeId, String)>,
}

async fn entry<S: Store>(
    sh: &Arc<Shared<S>>,
    ring: &Ring,
    pass: &Pass,
    meta: EntryMeta,
) -> Outcome {
    let me = sh.cluster.me();
    let owners = ring.write_set(meta.position, |_| false).to_vec();
    let mine = owners.contains(me);
    let mut out = Outcome::default();
    match pass {
        Pass::Balance => {
            if !mine {
                return out;
            }
            let others: Vec<&NodeId> = owners.iter().filter(|n| *n != me).collect();
            let mut all_hold = true;
            for node in others {
                if let Err(e) = ensure(sh, node, &meta, &mut out).await {
                    all_hold = false;
                    out.failed.push((node.clone(), e));
                }
            }
            if all_hold
                && settled(ring)
                && let Stamp::Tombstone(version) = &meta.stamp
            {
                let req = PurgeRequest {
                    version: version.clone(),
                    held_by_all_replicas: true,
                    now: sh.clock.now(),
                    grace: sh.cfg.tombstone_grace,
                };
                if let Ok(Purge::Removed) = sh.store.purge_tombstone(&meta.key, req).await {
                    out.dropped = true;
                }
            }
        }
        Pass::Restore { before } => {
            let old = before.write_set(meta.position, |_| false).to_vec();
            let gained: Vec<&NodeId> = owners.iter().filter(|n| !old.contains(n)).collect();
            if gained.is_empty() {
                return out;
            }
            // One survivor sends, so a value does not travel once per copy:
            // the first old holder still in the ring that this node does not
            // consider down.
            let sender = old.iter().find(|n| {
                ring.member(n).is_some_and(|m| m.state().has_tokens()) && !sh.cluster.is_down(n)
            });
            match sender {
                Some(s) if s == me => {}
                // Another holder sends, unless its copy is missing or older
                // than this one (it missed a write or a delete): then this
                // node sends too, and the newest version wins at the target.
                Some(s) if old.contains(me) => {
                    out.probes += 1;
                    match probe(sh, s, meta.key.clone()).await {
                        Ok(Some(held)) if held >= *meta.stamp.version() => return out,
                        Ok(_) => {}
                        Err(e) => {
                            out.failed.push((s.clone(), e));
                        }
                    }
                }
                _ => return out,
            }
            for node in gained {
                if let Err(e) = ensure(sh, node, &meta, &mut out).await {
                    out.failed.push((node.clone(), e));
                }
            }
        }
        Pass::Collect => {
            if let Stamp::Tombstone(version) = &meta.stamp {
                let req = PurgeRequest {
                    version: version.clone(),
                    held_by_all_replicas: true,
                    now: sh.clock.now(),
                    grace: sh.cfg.tombstone_grace,
                };
                if let Ok(Purge::Removed) = sh.store.purge_tombstone(&meta.key, req).await {
                    out.dropped = true;
                }
            }
        }
        Pass::Leave { after } => {
            let now = ring.placement(Placement::Current, meta.position).to_vec();
            let next = after.write_set(meta.position, |_| false).to_vec();
            for node in next.iter().filter(|n| !now.contains(n) && *n != me) {
                if let Err(e) = ensure(sh, node, &meta, &mut out).await {
                    out.failed.push((node.clone(), e));
                }
            }
        }
        Pass::Purge => {
            // An empty owner list means nobody else could take the key:
            // keep it, whatever the ring says.
            if mine || owners.is_empty() {
                return out;
            }
            let mut all_hold = true;
            for node in &owners {
                if let Err(e) = ensure(sh, node, &meta, &mut out).await {
                    all_hold = false;
                    out.failed.push((node.clone(), e));
                }
            }
            if all_hold {
                match sh.store.drop_entry(&meta.key, &meta.stamp).await {
                    Ok(Purge::Removed) => out.dropped = true,
                    Ok(_) => {}
                    Err(e) => out.failed.push((me.clone(), e.to_string())),
                }
            }
        }
    }
    out
}

/// Whether no member is joining or leaving: only then do the current owners
/// of a range hold everything a tombstone must cover.
fn settled(ring: &Ring) -> bool {
    ring.members().iter().all(|m| {
        matches!(
            m.state(),
            mydht_ring::MemberState::Up | mydht_ring::MemberState::Removed
        )
    })
}

/// Makes sure `node` holds this entry's version or a newer one, sending it
/// when it does not.
async fn ensure<S: Store>(
    sh: &Arc<Shared<S>>,
    node: &NodeId,
    meta: &EntryMeta,
    out: &mut Outcome,
) -> Result<(), String> {
    if sh.cluster.is_down(node) {
        return Err("down".into());
    }
    let mine = meta.stamp.version();
    out.probes += 1;
    match probe(sh, node, meta.key.clone()).await? {
        Some(held) if held >= *mine => return Ok(()),
        // A member holding nothing has nothing a tombstone must cover. Past
        // the grace period, nothing may also mean it already collected this
        // tombstone: sending it back would undo that, forever.
        None if meta.stamp.is_tombstone() && past_grace(sh, mine) => return Ok(()),
        _ => {}
    }
    // Streams large values in bounded memory; a key gone from this store
    // since the scan (a purge raced it) sends nothing.
    sh.replicas
        .copy(sh.cluster.me(), node, meta.key.clone())
        .await
        .map_err(|e| e.to_string())?;
    let len = if meta.stamp.is_tombstone() {
        0
    } else {
        meta.size
    };
    out.sent += 1;
    out.bytes += len;
    Ok(())
}

fn past_grace<S: Store>(sh: &Shared<S>, version: &Version) -> bool {
    let grace = u64::try_from(sh.cfg.tombstone_grace.as_millis()).unwrap_or(u64::MAX);
    sh.clock
        .now()
        .millis()
        .saturating_sub(version.timestamp.millis())
        >= grace
}

/// The version `node` holds of `key` (value or tombstone), if any.
async fn probe<S: Store>(
    sh: &Arc<Shared<S>>,
    node: &NodeId,
    key: Bytes,
) -> Result<Option<Version>, String> {
    sh.replicas
        .probe(node, key)
        .await
        .map_err(|e| e.to_string())
}

/// `node`'s digest of `range`.
async fn remote_digest<S: Store>(
    sh: &Arc<Shared<S>>,
    node: &NodeId,
    range: TokenRange,
) -> Result<(u64, u64), String> {
    let d = sh
        .replicas
        .digest(node, range)
        .await
        .map_err(|e| e.to_string())?;
    Ok((d.count, d.hash))
}

/// Balance on this node: per range it replicates, compare digests with the
/// other replicas; go key by key through the ranges that differ, and
/// collect tombstones in the ranges that agree.
pub(crate) async fn balance<S: Store>(sh: &Arc<Shared<S>>) -> Report {
    let me = sh.cluster.me().clone();
    let ring = sh.cluster.ring();
    let mut report = Report::default();
    let ranges = ring.ranges();
    let (mut differ, mut agree) = (Vec::new(), Vec::new());
    let mut digests = 0u64;
    let owned = ranges.iter().filter(|c| c.replicas().contains(&me)).count();
    for change in ranges.iter().filter(|c| c.replicas().contains(&me)) {
        let range = change.range();
        let mine = match sh.store.digest(range).await {
            Ok(d) => d,
            Err(e) => {
                report
                    .failed
                    .insert(me.clone(), format!("reading the store: {e}"));
                return report;
            }
        };
        let mut same = true;
        for node in change.replicas().iter().filter(|n| **n != me) {
            digests += 1;
            if sh.cluster.is_down(node) {
                report
                    .failed
                    .entry(node.clone())
                    .or_insert_with(|| "down".into());
                same = false;
                continue;
            }
            match remote_digest(sh, node, range).await {
                Ok(theirs) if theirs == (mine.count, mine.hash) => {}
                Ok(_) => same = false,
                Err(e) => {
                    report.failed.entry(node.clone()).or_insert(e);
                    same = false;
                }
            }
        }
        if !same {
            differ.push(range);
        } else if mine.tombstones > 0 {
            agree.push(range);
        }
    }
    let (differing, mine) = (differ.len(), owned);
    let mut keyed = run_in(sh, Pass::Balance, differ).await;
    // Digests were compared with the current owners only: while members
    // join or leave, the future owners have not been asked, so no
    // tombstone may go yet.
    if !settled(&ring) {
        agree.clear();
    }
    let collected = run_in(sh, Pass::Collect, agree).await;
    keyed.dropped += collected.dropped;
    keyed.digests = digests;
    for (node, why) in report.failed.into_iter().chain(collected.failed) {
        keyed.failed.entry(node).or_insert(why);
    }
    // One line for the whole balance, in place of its key-by-key part's.
    sh.movement.finish(
        "balance",
        format!(
            "balance of {} keys in {differing} differing ranges of {mine}: {} sent ({} bytes), {} tombstones collected, {digests} range digests and {} probes compared{}",
            keyed.scanned,
            keyed.sent,
            keyed.bytes,
            keyed.dropped,
            keyed.probes,
            keyed
                .failures()
                .map(|f| format!("; failed: {f}"))
                .unwrap_or_default(),
        ),
    );
    keyed
}
