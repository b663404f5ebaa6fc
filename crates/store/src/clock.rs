//! The hybrid logical clock that stamps a coordinator's writes.
//!
//! A reading is physical milliseconds plus a 16-bit counter packed in a
//! [`Timestamp`]. Readings never go backwards, even when the wall clock does;
//! [`HybridClock::observe`] moves the clock past every version received, so a
//! client's next write through any node sorts after what it has seen; and a
//! version too far ahead of the wall clock (bad clock, bad peer) is refused
//! instead of dragging the clock into the future. The store itself never
//! stamps: the node owns a clock and passes versions in.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mydht_proto::Timestamp;
use thiserror::Error;

/// The default bound on how far ahead of the wall clock a received version
/// may be.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(60);

/// A received timestamp was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClockError {
    /// The timestamp is further ahead of the local wall clock than allowed.
    #[error(
        "timestamp is {ahead_ms} ms ahead of the local clock, more than the {max_ms} ms allowed"
    )]
    TooFarAhead {
        /// How far ahead it was.
        ahead_ms: u64,
        /// The allowed skew.
        max_ms: u64,
    },
}

type Physical = Arc<dyn Fn() -> u64 + Send + Sync>;

/// A hybrid logical clock, safe to share between tasks.
pub struct HybridClock {
    last: AtomicU64,
    max_skew_ms: u64,
    physical: Physical,
}

impl std::fmt::Debug for HybridClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HybridClock")
            .field(
                "last",
                &Timestamp::from_raw(self.last.load(Ordering::Acquire)),
            )
            .field("max_skew_ms", &self.max_skew_ms)
            .finish_non_exhaustive()
    }
}

impl Default for HybridClock {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_SKEW)
    }
}

fn wall_millis() -> u64 {
    // A wall clock before 1970 reads as 0; the logical part keeps order.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl HybridClock {
    /// A clock on the system's wall clock, refusing versions more than
    /// `max_skew` ahead of it.
    pub fn new(max_skew: Duration) -> Self {
        Self::with_physical(max_skew, Arc::new(wall_millis))
    }

    /// A clock reading physical milliseconds from `physical` (for tests that
    /// move time by hand).
    pub fn with_physical(max_skew: Duration, physical: Arc<dyn Fn() -> u64 + Send + Sync>) -> Self {
        Self {
            last: AtomicU64::new(0),
            max_skew_ms: u64::try_from(max_skew.as_millis()).unwrap_or(u64::MAX),
            physical,
        }
    }

    /// A new timestamp, later than every one issued or observed before.
    pub fn now(&self) -> Timestamp {
        let floor = Timestamp::from_parts((self.physical)(), 0).raw();
        let mut cur = self.last.load(Ordering::Acquire);
        loop {
            // One tick past the last reading carries a full counter into the
            // next millisecond, because the counter is the low bits.
            let next = floor.max(cur.saturating_add(1));
            match self
                .last
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Timestamp::from_raw(next),
                Err(seen) => cur = seen,
            }
        }
    }

    /// Moves the clock past a received timestamp, so that the next
    /// [`now`](Self::now) is later; refuses one more than the allowed skew
    /// ahead of the wall clock, leaving the clock unchanged.
    pub fn observe(&self, ts: Timestamp) -> Result<(), ClockError> {
        self.observe_behind(ts, 0)
    }

    /// Like [`observe`](Self::observe) for a clock known to run `behind_ms`
    /// behind the clocks `ts` comes from: the allowed skew is counted from
    /// their present, so a slow member still takes their writes (and its
    /// clock catches up with them) while a version from a far-ahead clock
    /// is still refused.
    pub fn observe_behind(&self, ts: Timestamp, behind_ms: u64) -> Result<(), ClockError> {
        self.check_behind(ts, behind_ms)?;
        self.last.fetch_max(ts.raw(), Ordering::AcqRel);
        Ok(())
    }

    /// Whether `ts` is within the allowed skew of the wall clock, without
    /// moving the clock.
    pub fn check(&self, ts: Timestamp) -> Result<(), ClockError> {
        self.check_behind(ts, 0)
    }

    fn check_behind(&self, ts: Timestamp, behind_ms: u64) -> Result<(), ClockError> {
        let present = (self.physical)().saturating_add(behind_ms);
        let ahead_ms = ts.millis().saturating_sub(present);
        if ahead_ms > self.max_skew_ms {
            return Err(ClockError::TooFarAhead {
                ahead_ms,
                max_ms: self.max_skew_ms,
            });
        }
        Ok(())
    }

    /// The allowed skew.
    pub fn max_skew(&self) -> Duration {
        Duration::from_millis(self.max_skew_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        /// Set the wall clock (it may jump backwards).
        Wall(u64),
        Now,
        Observe(u64, u16),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (1_000_000u64..1_000_500).prop_map(Step::Wall),
            Just(Step::Now),
            (999_900u64..1_000_700, any::<u16>()).prop_map(|(m, c)| Step::Observe(m, c)),
        ]
    }

    proptest! {
        #[test]
        fn never_backwards_always_past_observed_and_bounded(steps in prop::collection::vec(step(), 1..200)) {
            let wall = Arc::new(AtomicU64::new(1_000_000));
            let w = wall.clone();
            let clock = HybridClock::with_physical(Duration::from_millis(100), Arc::new(move || w.load(Ordering::SeqCst)));
            let mut last_issued = Timestamp::ZERO;
            let mut highest_seen = Timestamp::ZERO;
            for s in steps {
                match s {
                    Step::Wall(ms) => wall.store(ms, Ordering::SeqCst),
                    Step::Now => {
                        let t = clock.now();
                        prop_assert!(t > last_issued, "{t:?} not after {last_issued:?}");
                        prop_assert!(t > highest_seen, "{t:?} not after observed {highest_seen:?}");
                        prop_assert!(t.millis() >= wall.load(Ordering::SeqCst));
                        last_issued = t;
                    }
                    Step::Observe(ms, c) => {
                        let ts = Timestamp::from_parts(ms, c);
                        let ahead = ms.saturating_sub(wall.load(Ordering::SeqCst));
                        let r = clock.observe(ts);
                        if ahead > 100 {
                            prop_assert_eq!(r, Err(ClockError::TooFarAhead { ahead_ms: ahead, max_ms: 100 }));
                        } else {
                            prop_assert!(r.is_ok());
                            highest_seen = highest_seen.max(ts);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_clock_known_to_be_behind_takes_versions_from_the_others_present() {
        let clock = HybridClock::with_physical(Duration::from_secs(60), Arc::new(|| 1_000_000));
        // Five minutes ahead of this clock: refused, unless this clock is
        // known to be five minutes behind the others.
        let theirs = Timestamp::from_parts(1_300_000, 0);
        assert!(clock.observe(theirs).is_err());
        clock
            .observe_behind(theirs, 300_000)
            .expect("their present");
        assert!(clock.now() > theirs);
        // Still bounded: a minute and more past their present is refused.
        let far = Timestamp::from_parts(1_361_000, 0);
        assert!(clock.observe_behind(far, 300_000).is_err());
    }

    #[test]
    fn full_counter_carries_into_next_millisecond() {
        let clock = HybridClock::with_physical(Duration::from_secs(60), Arc::new(|| 5_000));
        clock
            .observe(Timestamp::from_parts(5_000, u16::MAX))
            .expect("within skew");
        let t = clock.now();
        assert_eq!((t.millis(), t.counter()), (5_001, 0));
    }

    #[test]
    fn racing_threads_get_distinct_increasing_stamps() {
        let clock = Arc::new(HybridClock::default());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let c = clock.clone();
                std::thread::spawn(move || (0..10_000).map(|_| c.now()).collect::<Vec<_>>())
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            let v = h.join().expect("thread");
            assert!(v.windows(2).all(|w| w[0] < w[1]));
            all.extend(v);
        }
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "two threads got the same stamp");
    }
}
