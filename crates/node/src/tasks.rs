//! Who owns the work a node does, and how it stops.
//!
//! Every task the node starts runs in one of three [`Phase`]s, each a
//! cancellation token and a task tracker: **intake** (the listener, the
//! connections and the requests they carry, with the replica calls a
//! request leaves running after its answer), **background** (workers and
//! data movement) and **cluster** (announcements and calls to other members
//! made on the cluster's behalf). [`Tasks::shutdown`] stops them in that
//! order and waits for each, at most [`EXIT_DEADLINE`] apiece: first no new
//! work comes in and what came in finishes, then background work stops at
//! its next step, and only then do calls to other members stop, since the
//! phases before may still need them.
//!
//! Long-running background work is a [`Worker`] (the shape of Garage's): a
//! step of work, a wait for more, and a status line, run by [`Workers`],
//! which keeps each worker's state and errors for the status page.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long shutdown waits for a phase before going on without it (intake
/// waits at least a request's deadline).
pub(crate) const EXIT_DEADLINE: Duration = Duration::from_secs(8);

/// One phase of a node's work: stopped together, waited for together.
#[derive(Clone, Default)]
pub(crate) struct Phase {
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl Phase {
    /// Runs `fut` in this phase.
    pub fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(fut);
    }

    /// Cancelled when this phase stops.
    pub fn token(&self) -> &CancellationToken {
        &self.stop
    }

    /// The tracker its tasks run on (for parts that spawn on their own).
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Waits until this phase stops.
    pub async fn stopping(&self) {
        self.stop.cancelled().await;
    }

    async fn stop_and_wait(&self, name: &str, deadline: Duration) {
        self.stop.cancel();
        self.tracker.close();
        if tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                phase = name,
                left = self.tracker.len(),
                "tasks did not stop within {deadline:?}; going on without them"
            );
        }
    }
}

/// The three phases of a node's work.
#[derive(Clone, Default)]
pub(crate) struct Tasks {
    pub intake: Phase,
    pub background: Phase,
    pub cluster: Phase,
    /// How long requests in flight may take to finish: intake waits this
    /// much longer than the other phases.
    pub request_timeout: Duration,
}

impl Tasks {
    /// Phases for a node whose requests finish within `request_timeout`.
    pub fn new(request_timeout: Duration) -> Self {
        Self {
            request_timeout,
            ..Self::default()
        }
    }

    /// Stops intake, then background work, then cluster calls, waiting for
    /// each. Intake waits long enough for a request in flight to finish
    /// (an HTTP put that reached its quorum still says so).
    pub async fn shutdown(&self) {
        let intake = EXIT_DEADLINE.max(self.request_timeout + Duration::from_secs(1));
        self.intake.stop_and_wait("intake", intake).await;
        self.background
            .stop_and_wait("background", EXIT_DEADLINE)
            .await;
        self.cluster.stop_and_wait("cluster", EXIT_DEADLINE).await;
    }

    /// Waits until a shutdown has begun and every phase has finished.
    pub async fn stopped(&self) {
        self.intake.stopping().await;
        for phase in [&self.intake, &self.background, &self.cluster] {
            phase.tracker.close();
            phase.tracker.wait().await;
        }
    }
}

/// What a worker is doing, as its last step left it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    /// It has work: its next step runs at once.
    Busy,
    /// It waits for work.
    Idle,
    /// It waits this long before its next step (after an error).
    Throttled(Duration),
    /// It has finished for good.
    Done,
}

/// Background work run step by step.
pub(crate) trait Worker: Send + 'static {
    /// Why a step fails.
    type Error: std::fmt::Display + Send;

    /// The worker's name on the status page.
    fn name(&self) -> String;

    /// One line on what it is doing.
    fn status(&self) -> String {
        String::new()
    }

    /// One step of work; says what to do next. An error is recorded and
    /// the step is tried again after a pause.
    fn work(&mut self) -> impl Future<Output = Result<WorkerState, Self::Error>> + Send;

    /// Waits for work (may be cut short when the phase stops).
    fn wait_for_work(&mut self) -> impl Future<Output = WorkerState> + Send;
}

/// A worker as the status page shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Its name.
    pub name: String,
    /// What it is doing.
    pub state: WorkerState,
    /// Its own status line.
    pub status: String,
    /// Steps that failed.
    pub errors: u64,
    /// The latest failure.
    pub last_error: Option<String>,
}

/// Runs workers and keeps their status.
#[derive(Clone, Default)]
pub(crate) struct Workers {
    next: Arc<AtomicU64>,
    info: Arc<Mutex<BTreeMap<u64, WorkerInfo>>>,
}

impl Workers {
    /// Runs `worker` in `phase` until it is done or the phase stops.
    pub fn spawn<W: Worker>(&self, phase: &Phase, mut worker: W, first: WorkerState) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let info = self.info.clone();
        let stop = phase.token().clone();
        let record = move |w: &W, state: WorkerState, error: Option<String>| {
            let mut all = info.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = all.entry(id).or_insert_with(|| WorkerInfo {
                name: w.name(),
                state,
                status: String::new(),
                errors: 0,
                last_error: None,
            });
            entry.state = state;
            entry.status = w.status();
            if let Some(e) = error {
                entry.errors += 1;
                entry.last_error = Some(e);
            }
        };
        phase.spawn(async move {
            let mut state = first;
            record(&worker, state, None);
            let mut failures = 0u32;
            loop {
                state = match state {
                    WorkerState::Done => break,
                    WorkerState::Busy => {
                        let step = tokio::select! {
                            () = stop.cancelled() => break,
                            s = worker.work() => s,
                        };
                        match step {
                            Ok(next) => {
                                failures = 0;
                                record(&worker, next, None);
                                next
                            }
                            Err(e) => {
                                tracing::warn!(worker = %worker.name(), error = %e, "worker step failed");
                                failures = failures.saturating_add(1);
                                // Back off: 1 s, doubling, at most a minute.
                                let pause = Duration::from_secs(1 << failures.min(6).saturating_sub(1));
                                let next = WorkerState::Throttled(pause);
                                record(&worker, next, Some(e.to_string()));
                                next
                            }
                        }
                    }
                    WorkerState::Idle => {
                        let next = tokio::select! {
                            () = stop.cancelled() => break,
                            s = worker.wait_for_work() => s,
                        };
                        record(&worker, next, None);
                        next
                    }
                    WorkerState::Throttled(pause) => {
                        tokio::select! {
                            () = stop.cancelled() => break,
                            () = tokio::time::sleep(pause) => {}
                        }
                        WorkerState::Busy
                    }
                };
            }
            record(&worker, WorkerState::Done, None);
        });
    }

    /// Every worker started, finished ones included.
    pub fn list(&self) -> Vec<WorkerInfo> {
        self.info
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails twice, then finishes.
    struct Flaky {
        steps: u32,
    }

    impl Worker for Flaky {
        type Error = String;

        fn name(&self) -> String {
            "flaky".into()
        }

        fn status(&self) -> String {
            format!("{} steps", self.steps)
        }

        async fn work(&mut self) -> Result<WorkerState, Self::Error> {
            self.steps += 1;
            if self.steps <= 2 {
                Err(format!("step {} failed", self.steps))
            } else {
                Ok(WorkerState::Done)
            }
        }

        async fn wait_for_work(&mut self) -> WorkerState {
            WorkerState::Busy
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_worker_backs_off_then_finishes_and_its_status_says_so() {
        let tasks = Tasks::default();
        let workers = Workers::default();
        workers.spawn(&tasks.background, Flaky { steps: 0 }, WorkerState::Busy);
        tasks.background.tracker().close();
        tasks.background.tracker().wait().await;
        let info = workers.list();
        assert_eq!(info.len(), 1);
        assert_eq!(info[0].state, WorkerState::Done);
        assert_eq!(info[0].errors, 2);
        assert_eq!(info[0].last_error.as_deref(), Some("step 2 failed"));
        assert_eq!(info[0].status, "3 steps");
    }

    /// Waits forever for work.
    struct Sleeper;

    impl Worker for Sleeper {
        type Error = std::convert::Infallible;

        fn name(&self) -> String {
            "sleeper".into()
        }

        async fn work(&mut self) -> Result<WorkerState, Self::Error> {
            Ok(WorkerState::Idle)
        }

        async fn wait_for_work(&mut self) -> WorkerState {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_the_phases_in_order_and_ends_idle_workers() {
        let tasks = Tasks::default();
        let workers = Workers::default();
        workers.spawn(&tasks.background, Sleeper, WorkerState::Busy);
        let order = Arc::new(Mutex::new(Vec::new()));
        for (name, phase) in [
            ("cluster", &tasks.cluster),
            ("background", &tasks.background),
            ("intake", &tasks.intake),
        ] {
            let (order, stop) = (order.clone(), phase.token().clone());
            phase.spawn(async move {
                stop.cancelled().await;
                order.lock().expect("lock").push(name);
            });
        }
        tasks.shutdown().await;
        assert_eq!(
            *order.lock().expect("lock"),
            vec!["intake", "background", "cluster"]
        );
        assert_eq!(workers.list()[0].state, WorkerState::Done);
    }
}
