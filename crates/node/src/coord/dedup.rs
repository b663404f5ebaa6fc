//! Remembers client writes by write id, so that a retry is answered with the
//! first outcome instead of stamping a second version.
//!
//! A slot remembers the version stamped for a write id and, once the write
//! reached its quorum, the answer. A retry that arrives while the first
//! attempt is still running waits for it (without holding any lock across
//! the network calls): it takes the answer if that attempt succeeds, and
//! drives the write itself otherwise. Every attempt uses the same version,
//! which can never overwrite a newer write. The cache is bounded: the oldest
//! ids are forgotten first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use mydht_proto::{Version, WriteId};
use tokio::sync::watch;

use super::{CoordError, Written};

/// Write ids remembered; at a few hundred bytes each, about 50 MiB at most.
const CAPACITY: usize = 100_000;

enum State {
    Idle,
    InFlight(watch::Receiver<Option<Written>>),
    Done(Written),
}

struct Slot {
    version: Option<Version>,
    state: State,
}

#[derive(Default)]
struct Table {
    slots: HashMap<WriteId, Arc<Mutex<Slot>>>,
    order: VecDeque<WriteId>,
}

#[derive(Default)]
pub(crate) struct Dedup {
    table: Mutex<Table>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Critical sections are plain field updates: a poisoned lock is usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a write should do, as decided by its slot.
pub(crate) enum Claim {
    /// Answer this (the first attempt's outcome).
    Answer(Written),
    /// Drive the write with this version (the same one on every attempt),
    /// then report the outcome through [`Driving::finish`].
    Drive(Driving),
}

pub(crate) struct Driving {
    slot: Arc<Mutex<Slot>>,
    tx: watch::Sender<Option<Written>>,
    pub version: Version,
}

impl Driving {
    /// Records the outcome. A success is remembered for retries and handed
    /// to any retry waiting meanwhile; after a failure (`None`) a waiting
    /// retry drives the write again itself (same version, its own body).
    pub fn finish(self, written: Option<&Written>) {
        match written {
            Some(w) => {
                lock(&self.slot).state = State::Done(w.clone());
                let _ = self.tx.send(Some(w.clone()));
            }
            None => lock(&self.slot).state = State::Idle,
        }
    }
}

impl Drop for Driving {
    fn drop(&mut self) {
        // An attempt abandoned before finishing leaves the slot for a retry.
        let mut slot = lock(&self.slot);
        if matches!(slot.state, State::InFlight(_)) {
            slot.state = State::Idle;
        }
    }
}

impl Dedup {
    /// Claims the slot of `id`; `stamp` is called for the version only the
    /// first time.
    pub async fn claim(
        &self,
        id: WriteId,
        stamp: impl FnOnce() -> Result<Version, CoordError>,
    ) -> Result<Claim, CoordError> {
        let slot = self.slot(id);
        let mut stamp = Some(stamp);
        loop {
            let mut rx = {
                let mut s = lock(&slot);
                match &s.state {
                    State::Done(r) => return Ok(Claim::Answer(r.clone())),
                    State::InFlight(rx) => rx.clone(),
                    State::Idle => {
                        let version = match (&s.version, stamp.take()) {
                            (Some(v), _) => v.clone(),
                            (None, Some(f)) => f()?,
                            (None, None) => {
                                return Err(CoordError::Internal {
                                    reason: "write slot lost its version".into(),
                                });
                            }
                        };
                        s.version = Some(version.clone());
                        let (tx, rx) = watch::channel(None);
                        s.state = State::InFlight(rx);
                        return Ok(Claim::Drive(Driving {
                            slot: slot.clone(),
                            tx,
                            version,
                        }));
                    }
                }
            };
            // Another attempt of the same write is running: take its answer
            // if it succeeds.
            if let Ok(answer) = rx.wait_for(Option::is_some).await
                && let Some(r) = answer.as_ref()
            {
                return Ok(Claim::Answer(r.clone()));
            }
            // It failed or was abandoned; look again (and drive it).
        }
    }

    fn slot(&self, id: WriteId) -> Arc<Mutex<Slot>> {
        let mut t = lock(&self.table);
        if let Some(s) = t.slots.get(&id) {
            return s.clone();
        }
        let s = Arc::new(Mutex::new(Slot {
            version: None,
            state: State::Idle,
        }));
        t.slots.insert(id, s.clone());
        t.order.push_back(id);
        while t.order.len() > CAPACITY {
            if let Some(old) = t.order.pop_front() {
                t.slots.remove(&old);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mydht_proto::Timestamp;
    use mydht_ring::NodeId;

    fn id(seq: u64) -> WriteId {
        WriteId { client: 7, seq }
    }

    fn version(ms: u64) -> Version {
        Version {
            timestamp: Timestamp::from_parts(ms, 0),
            node: NodeId::new("a:1").expect("name"),
        }
    }

    fn drive(claim: Claim) -> Driving {
        match claim {
            Claim::Drive(d) => d,
            Claim::Answer(_) => panic!("expected to drive the write"),
        }
    }

    #[tokio::test]
    async fn a_retry_after_success_gets_the_first_answer_without_a_new_stamp() {
        let d = Dedup::default();
        let first = drive(d.claim(id(1), || Ok(version(10))).await.expect("claim"));
        let written = Written {
            version: first.version.clone(),
            deleted: false,
        };
        first.finish(Some(&written));
        let again = d
            .claim(id(1), || panic!("a retry must not stamp again"))
            .await
            .expect("claim");
        assert!(matches!(again, Claim::Answer(w) if w == written));
    }

    #[tokio::test]
    async fn a_retry_after_failure_drives_the_write_again_with_the_same_version() {
        let d = Dedup::default();
        let first = drive(d.claim(id(2), || Ok(version(10))).await.expect("claim"));
        first.finish(None);
        let second = drive(d.claim(id(2), || Ok(version(99))).await.expect("claim"));
        assert_eq!(second.version, version(10));
        // An attempt dropped without finishing frees the slot too.
        drop(second);
        let third = drive(d.claim(id(2), || Ok(version(99))).await.expect("claim"));
        assert_eq!(third.version, version(10));
    }

    #[tokio::test]
    async fn a_retry_during_the_first_attempt_waits_for_its_answer() {
        let d = std::sync::Arc::new(Dedup::default());
        let first = drive(d.claim(id(3), || Ok(version(10))).await.expect("claim"));
        let waiting = {
            let d = d.clone();
            tokio::spawn(async move { d.claim(id(3), || Ok(version(99))).await })
        };
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "the retry waits for the first attempt"
        );
        let written = Written {
            version: version(10),
            deleted: true,
        };
        first.finish(Some(&written));
        let answer = waiting.await.expect("task").expect("claim");
        assert!(matches!(answer, Claim::Answer(w) if w == written));
    }
}
