//! The one owner of data movement on a node: every pass is started here,
//! runs as background work under the engine's node-wide budget, and is
//! seen here while it runs and summed up once it ends.
//!
//! [`MovementQueue::start`] returns a [`PassHandle`]; awaiting
//! [`PassHandle::finished`] gives the pass's report, and dropping the handle
//! cancels the pass (it stops at its next page and lets the keys in motion
//! finish). Progress and summaries are typed ([`PassStatus`],
//! [`PassSummary`]): the status page and `/status.json` render them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use mydht_ring::{Position, TokenRange};
use mydht_store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio_util::sync::DropGuard;

use super::engine::{Engine, Progress};
use super::{Pass, Report};
use crate::tasks::Phase;

/// A pass running now, as the status page shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PassStatus {
    /// `restore`, `purge`, `leave` or `replicas`; an anti-entropy round
    /// records itself as `balance` or `anti-entropy`.
    pub pass: String,
    /// Entries looked at so far.
    pub scanned: u64,
    /// Entries in the store when it began.
    pub total: u64,
    /// Versions sent so far.
    pub sent: u64,
    /// Value bytes sent so far.
    pub bytes: u64,
    /// Seconds since it began.
    pub seconds: f64,
}

/// A member a pass could not bring up to date, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassFailure {
    /// The member (this node for a local failure).
    pub node: String,
    /// The first reason.
    pub reason: String,
}

/// For a balance: how many of the ranges this node replicates differed from
/// another replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeCount {
    /// Ranges whose digests differed somewhere.
    pub differing: u64,
    /// Ranges this node replicates.
    pub owned: u64,
}

/// What a finished pass did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PassSummary {
    /// The kind of pass.
    pub pass: String,
    /// Entries looked at.
    pub scanned: u64,
    /// Versions sent.
    pub sent: u64,
    /// Value bytes sent.
    pub bytes: u64,
    /// Keys dropped or tombstones collected.
    pub dropped: u64,
    /// Metadata probes made.
    pub probes: u64,
    /// Digest calls made (balance).
    pub digests: u64,
    /// Keys found in the same version with different bytes (balance).
    #[serde(default)]
    pub conflicts: u64,
    /// For a balance, the ranges compared.
    pub ranges: Option<RangeCount>,
    /// How long it took.
    pub seconds: f64,
    /// Members it could not bring up to date.
    pub failed: Vec<PassFailure>,
}

impl PassSummary {
    pub(crate) fn of(pass: &str, report: &Report, seconds: f64) -> Self {
        Self {
            pass: pass.to_string(),
            scanned: report.scanned,
            sent: report.sent,
            bytes: report.bytes,
            dropped: report.dropped,
            probes: report.probes,
            digests: report.digests,
            conflicts: report.conflicts,
            ranges: None,
            seconds,
            failed: report
                .failed
                .iter()
                .map(|(n, why)| PassFailure {
                    node: n.to_string(),
                    reason: why.clone(),
                })
                .collect(),
        }
    }
}

impl fmt::Display for PassSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ranges {
            Some(r) => write!(
                f,
                "{} round: {} of {} ranges differed, {} versions taken ({} bytes), {} with other bytes in the same version, {} digest calls; {} tombstones collected ({} keys, {} probes)",
                self.pass,
                r.differing,
                r.owned,
                self.sent,
                self.bytes,
                self.conflicts,
                self.digests,
                self.dropped,
                self.scanned,
                self.probes
            )?,
            None => write!(
                f,
                "{} of {} keys: {} sent ({} bytes), {} dropped, {} probes, in {:.1} s",
                self.pass,
                self.scanned,
                self.sent,
                self.bytes,
                self.dropped,
                self.probes,
                self.seconds
            )?,
        }
        if !self.failed.is_empty() {
            let failed = self
                .failed
                .iter()
                .map(|x| (x.node.as_str(), x.reason.as_str()));
            write!(f, "; failed: {}", super::failure_list(failed))?;
        }
        Ok(())
    }
}

/// Data movement on a node, as the status page shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MovementStatus {
    /// Passes running now.
    pub running: Vec<PassStatus>,
    /// The latest finished pass of each kind.
    pub last: Vec<PassSummary>,
}

#[derive(Default)]
struct Registry {
    next: u64,
    running: BTreeMap<u64, Arc<Progress>>,
    last: BTreeMap<String, PassSummary>,
}

/// Starts, owns and reports every pass of one node. Cheap to clone.
pub(crate) struct MovementQueue<S> {
    engine: Arc<Engine<S>>,
    phase: Phase,
    registry: Arc<Mutex<Registry>>,
}

impl<S> Clone for MovementQueue<S> {
    fn clone(&self) -> Self {
        Self {
            engine: self.engine.clone(),
            phase: self.phase.clone(),
            registry: self.registry.clone(),
        }
    }
}

/// A pass started on the queue. Dropping it cancels the pass.
pub(crate) struct PassHandle {
    me: mydht_ring::NodeId,
    progress: Arc<Progress>,
    done: oneshot::Receiver<Report>,
    cancel: DropGuard,
}

impl PassHandle {
    /// How far the pass has got.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// Waits for the pass to end and returns what it did.
    pub async fn finished(self) -> Report {
        let Self {
            me, done, cancel, ..
        } = self;
        let report = done.await.unwrap_or_else(|_| {
            // The pass's task ended without a report: it was stopped
            // with its phase before it could send one.
            let mut r = Report::default();
            r.fail(&me, "the pass was abandoned");
            r
        });
        cancel.disarm();
        report
    }
}

fn lock(r: &Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
    // Plain map updates: a poisoned registry is still consistent.
    r.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S: Store> MovementQueue<S> {
    /// Runs passes with `engine` as work of `phase`.
    pub fn new(engine: Engine<S>, phase: Phase) -> Self {
        Self {
            engine: Arc::new(engine),
            phase,
            registry: Arc::default(),
        }
    }

    /// Starts `pass` over this node's whole store.
    pub fn start(&self, pass: Pass) -> PassHandle {
        self.start_in(pass, vec![TokenRange::new(Position(0), Position(0))])
    }

    /// Starts `pass` over the entries of this node's store in `ranges`.
    pub fn start_in(&self, pass: Pass, ranges: Vec<TokenRange>) -> PassHandle {
        let stats = self.engine.store.stats();
        let progress = Arc::new(Progress::new(
            pass.name(),
            stats.live_keys + stats.tombstones,
        ));
        let id = {
            let mut r = lock(&self.registry);
            r.next += 1;
            let id = r.next;
            r.running.insert(id, progress.clone());
            id
        };
        let stop = self.phase.token().child_token();
        let (tx, done) = oneshot::channel();
        let (engine, registry, running) =
            (self.engine.clone(), self.registry.clone(), progress.clone());
        let cancel = stop.clone().drop_guard();
        self.phase.spawn(async move {
            let report = engine.run(&pass, ranges, &running, &stop).await;
            let seconds = running.started.elapsed().as_secs_f64();
            let summary = PassSummary::of(pass.name(), &report, seconds);
            tracing::info!(summary = %summary, "data movement finished");
            {
                let mut r = lock(&registry);
                r.running.remove(&id);
                r.last.insert(summary.pass.clone(), summary);
            }
            let _ = tx.send(report);
        });
        PassHandle {
            me: self.engine.cluster.me().clone(),
            progress,
            done,
            cancel,
        }
    }

    /// Records `summary` as the latest of its kind (a balance sums up its
    /// digest comparison and its passes in one).
    pub fn record(&self, summary: PassSummary) {
        lock(&self.registry)
            .last
            .insert(summary.pass.clone(), summary);
    }

    /// What is moving and what moved last.
    pub fn status(&self) -> MovementStatus {
        let r = lock(&self.registry);
        MovementStatus {
            running: r
                .running
                .values()
                .map(|p| PassStatus {
                    pass: p.pass.to_string(),
                    scanned: p.scanned(),
                    total: p.total,
                    sent: p.sent.load(std::sync::atomic::Ordering::Relaxed),
                    bytes: p.bytes.load(std::sync::atomic::Ordering::Relaxed),
                    seconds: p.started.elapsed().as_secs_f64(),
                })
                .collect(),
            last: r.last.values().cloned().collect(),
        }
    }
}
