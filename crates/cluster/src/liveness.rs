//! This node's view of which members answer.
//!
//! Two sources mark a member down, and it is down while either does. The
//! failure detector (SWIM, `detector`) declares a member down that stopped
//! answering probes, without any request touching it, and alive again once
//! it answers; that is what every member agrees on within seconds. Calls
//! are the fast path: a member that refuses a connection, or whose calls
//! keep failing for `down_after`, is marked down at once, and stays so
//! until a call or a recheck reaches it again. Either way it is this node's
//! own view and never changes the ring or its epoch. The set of members down is published on a `watch`
//! channel, so whoever needs to act when a member comes back (or goes) is
//! woken with the new set instead of polling. Time is tokio's, so tests can
//! pause and advance it.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use mydht_ring::NodeId;
use tokio::sync::watch;
use tokio::time::Instant;

/// The members this node considers down.
pub type DownSet = Arc<BTreeSet<NodeId>>;

/// A member going down or coming back, in this node's view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LivenessEvent {
    /// The member stopped answering.
    Down(NodeId),
    /// The member answers again.
    Up(NodeId),
}

/// The events that lead from one down set to the next.
pub fn events(old: &BTreeSet<NodeId>, new: &BTreeSet<NodeId>) -> Vec<LivenessEvent> {
    let down = new.difference(old).cloned().map(LivenessEvent::Down);
    let up = old.difference(new).cloned().map(LivenessEvent::Up);
    down.chain(up).collect()
}

/// How a member has been failing.
struct Failing {
    /// The first failure of the current run of failures.
    since: Instant,
    /// The latest failure; a run ends when none came for `down_after`.
    last: Instant,
}

/// Who is down by which source; one lock, so the union is always right.
#[derive(Default)]
struct Marks {
    failing: HashMap<NodeId, Failing>,
    /// Marked down by failed calls.
    by_calls: BTreeSet<NodeId>,
    /// Declared down by the failure detector.
    detected: BTreeSet<NodeId>,
    /// Times a member went down, all sources (false deaths show here).
    downs: u64,
}

/// Which members answer, as this node sees it.
pub struct Liveness {
    me: NodeId,
    down_after: Duration,
    retry_every: Duration,
    failing: Mutex<Marks>,
    /// Entries in `failing`, read without the lock: answers from members
    /// that are not failing (nearly all of them) cost no lock.
    failing_count: AtomicUsize,
    down: watch::Sender<DownSet>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Single map operations: a poisoned map is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Liveness {
    /// Marks a member down after `down_after` of failures; members down are
    /// rechecked every `retry_every`.
    pub fn new(me: NodeId, down_after: Duration, retry_every: Duration) -> Self {
        let (down, _) = watch::channel(DownSet::default());
        Self {
            me,
            down_after,
            retry_every,
            failing: Mutex::new(Marks::default()),
            failing_count: AtomicUsize::new(0),
            down,
        }
    }

    /// Whether this node considers `node` down. Never itself.
    pub fn is_down(&self, node: &NodeId) -> bool {
        let down = self.down.borrow();
        !down.is_empty() && down.contains(node)
    }

    /// The members this node considers down.
    pub fn down_nodes(&self) -> Vec<NodeId> {
        self.down.borrow().iter().cloned().collect()
    }

    /// Wakes whenever a member goes down or comes back; the value is the
    /// whole down set, and [`events`] tells what changed.
    pub fn watch(&self) -> watch::Receiver<DownSet> {
        self.down.subscribe()
    }

    /// How often members down are tried again.
    pub fn retry_interval(&self) -> Duration {
        self.retry_every
    }

    /// Notes a failure. A refused connection is conclusive and marks the
    /// member down at once; other failures (timeouts, broken connections)
    /// do once they have gone on for `down_after`.
    pub fn record_failure(&self, node: &NodeId, conclusive: bool) {
        if node == &self.me {
            return;
        }
        let now = Instant::now();
        let mut marks = lock(&self.failing);
        // Runs that ended without marking anyone down are forgotten, so a
        // member that failed once and was never called again does not keep
        // every answer on the locked path.
        let Marks {
            failing, by_calls, ..
        } = &mut *marks;
        failing.retain(|n, f| {
            n == node || by_calls.contains(n) || now.duration_since(f.last) <= self.down_after
        });
        let f = failing.entry(node.clone()).or_insert(Failing {
            since: now,
            last: now,
        });
        if now.duration_since(f.last) > self.down_after {
            f.since = now;
        }
        f.last = now;
        let due = conclusive || now.duration_since(f.since) >= self.down_after;
        self.failing_count.store(failing.len(), Ordering::Relaxed);
        if due && by_calls.insert(node.clone()) {
            self.publish(&mut marks);
            tracing::info!(%node, "member marked down");
        }
    }

    /// Notes that `node` answered: its run of failures ends.
    pub fn record_success(&self, node: &NodeId) {
        if self.failing_count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut marks = lock(&self.failing);
        let had = marks.failing.remove(node).is_some();
        self.failing_count
            .store(marks.failing.len(), Ordering::Relaxed);
        if had && marks.by_calls.remove(node) {
            self.publish(&mut marks);
            tracing::info!(%node, "member answers again");
        }
    }

    /// The members the failure detector declares down now.
    pub fn set_detected(&self, detected: BTreeSet<NodeId>) {
        let mut marks = lock(&self.failing);
        if marks.detected != detected {
            for n in detected.difference(&marks.detected) {
                tracing::info!(node = %n, "failure detector: member down");
            }
            for n in marks.detected.difference(&detected) {
                tracing::info!(node = %n, "failure detector: member alive again");
            }
            marks.detected = detected;
            self.publish(&mut marks);
        }
    }

    /// Whether the failure detector (not just this node's calls) declares
    /// `node` down: the verdict the cluster shares, which decisions that
    /// outlast a glitch (automatic removal) rest on.
    pub fn detected_down(&self, node: &NodeId) -> bool {
        lock(&self.failing).detected.contains(node)
    }

    /// How many times a member went down in this node's view.
    pub fn downs(&self) -> u64 {
        lock(&self.failing).downs
    }

    /// Publishes the union of both sources, if it changed.
    fn publish(&self, marks: &mut Marks) {
        let union: BTreeSet<NodeId> = marks.by_calls.union(&marks.detected).cloned().collect();
        let current = self.down.borrow().clone();
        if *current != union {
            marks.downs += union.difference(&current).count() as u64;
            self.down.send_replace(Arc::new(union));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).expect("name")
    }

    fn liveness(down_after: Duration) -> Liveness {
        Liveness::new(id("me:1"), down_after, Duration::from_secs(1))
    }

    #[tokio::test(start_paused = true)]
    async fn failures_that_go_on_for_down_after_mark_a_member_down_until_it_answers() {
        let l = liveness(Duration::from_millis(100));
        let mut watch = l.watch();
        let other = id("other:1");
        l.record_failure(&other, false);
        assert!(!l.is_down(&other), "one timeout is not enough");
        tokio::time::advance(Duration::from_millis(60)).await;
        l.record_failure(&other, false);
        assert!(!l.is_down(&other), "failing for 60 ms of 100");
        tokio::time::advance(Duration::from_millis(60)).await;
        l.record_failure(&other, false);
        assert!(l.is_down(&other), "failing for 120 ms");
        assert_eq!(l.down_nodes(), vec![other.clone()]);
        assert!(watch.has_changed().expect("open"));
        let seen = watch.borrow_and_update().clone();
        assert_eq!(
            events(&BTreeSet::new(), &seen),
            vec![LivenessEvent::Down(other.clone())]
        );
        l.record_success(&other);
        assert!(!l.is_down(&other));
        assert!(l.down_nodes().is_empty());
        let now = watch.borrow_and_update().clone();
        assert_eq!(events(&seen, &now), vec![LivenessEvent::Up(other)]);
    }

    #[tokio::test(start_paused = true)]
    async fn isolated_failures_do_not_add_up_and_a_refusal_is_conclusive() {
        let l = liveness(Duration::from_millis(50));
        let other = id("other:1");
        for _ in 0..3 {
            l.record_failure(&other, false);
            // Longer than down_after between failures: each starts a new run.
            tokio::time::advance(Duration::from_millis(70)).await;
        }
        assert!(!l.is_down(&other));
        l.record_failure(&other, true);
        assert!(l.is_down(&other));
        // This node is never down in its own view.
        l.record_failure(&id("me:1"), true);
        assert!(!l.is_down(&id("me:1")));
    }
}
