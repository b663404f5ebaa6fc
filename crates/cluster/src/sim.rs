//! A deterministic network of [`Detector`]s: simulated time, a seeded RNG,
//! message loss and delays, crashes and pauses. The detector tests and
//! `examples/gossip_sim.rs` measure with it how fast a join, a ring change
//! and a crash reach every member, how many members are falsely declared
//! down, and what SWIM costs in bytes at rest.
//!
//! Nothing here touches a socket or a clock: every event is a datagram
//! delivery or a detector's timer, taken from one queue in time order (ties
//! in the order they were made), so one seed always gives one history.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::time::Duration;

use mydht_ring::{Member, NodeId};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use crate::detector::{Detector, DetectorConfig, Incarnated};

/// The network a simulation runs on.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The chance that any one datagram is lost.
    pub loss: f64,
    /// Each datagram takes between these two.
    pub min_delay: Duration,
    /// See `min_delay`.
    pub max_delay: Duration,
    /// The detectors' settings.
    pub detector: DetectorConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            loss: 0.0,
            min_delay: Duration::from_micros(100),
            max_delay: Duration::from_millis(2),
            detector: DetectorConfig::default(),
        }
    }
}

/// What a simulated member is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    Up,
    /// Stopped for good: its datagrams are lost, its timers never fire.
    Crashed,
    /// Stopped until then: datagrams wait in its socket buffer.
    Paused(Duration),
}

struct SimNode {
    name: NodeId,
    detector: Detector,
    run: Run,
    /// Datagrams that arrived while paused.
    buffered: Vec<Vec<u8>>,
    /// The ring entries this member holds (its own and those heard).
    entries: HashMap<NodeId, Member>,
    /// Its alive set as of its last change.
    alive: BTreeSet<NodeId>,
}

enum Event {
    Deliver { to: usize, packet: Vec<u8> },
    Timer { node: usize },
    Resume { node: usize },
}

/// A simulated cluster. See the module docs.
pub struct Sim {
    cfg: SimConfig,
    now: Duration,
    seq: u64,
    rng: SmallRng,
    nodes: Vec<SimNode>,
    index: HashMap<NodeId, usize>,
    queue: BinaryHeap<Reverse<(Duration, u64, usize)>>,
    events: HashMap<u64, Event>,
    sent_bytes: u64,
    sent_packets: u64,
    /// Members that lost a member that was never crashed (false deaths),
    /// counted once per (observer, member) episode.
    false_deaths: u64,
    seed: u64,
}

impl Sim {
    /// `members` members that already know each other (a cluster at rest),
    /// seeded with `seed`.
    pub fn new(members: usize, cfg: SimConfig, seed: u64) -> Self {
        let mut sim = Self {
            cfg,
            now: Duration::ZERO,
            seq: 0,
            rng: SmallRng::seed_from_u64(seed),
            nodes: Vec::new(),
            index: HashMap::new(),
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            sent_bytes: 0,
            sent_packets: 0,
            false_deaths: 0,
            seed,
        };
        for _ in 0..members {
            sim.add_node(members);
        }
        let everyone: Vec<Incarnated> = sim
            .nodes
            .iter()
            .map(|n| Incarnated {
                node: n.name.clone(),
                incarnation: 1,
            })
            .collect();
        for i in 0..members {
            let now = sim.now;
            let others: Vec<Incarnated> = everyone
                .iter()
                .filter(|m| m.node != sim.nodes[i].name)
                .cloned()
                .collect();
            sim.nodes[i].detector.learn(&others, now);
            sim.nodes[i].detector.take_changed();
            sim.nodes[i].alive = sim.nodes[i].detector.alive();
            sim.settle(i);
        }
        sim
    }

    fn add_node(&mut self, size: usize) -> usize {
        let i = self.nodes.len();
        let name = NodeId::new(format!("10.0.{}.{}:50140", i / 250, i % 250))
            .unwrap_or_else(|_| unreachable!("a valid name"));
        let detector = Detector::new(
            name.clone(),
            1,
            self.cfg.detector.clone(),
            size,
            self.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        self.index.insert(name.clone(), i);
        self.nodes.push(SimNode {
            name,
            detector,
            run: Run::Up,
            buffered: Vec::new(),
            entries: HashMap::new(),
            alive: BTreeSet::new(),
        });
        i
    }

    /// Simulated time now.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Member `i`'s name.
    pub fn name(&self, i: usize) -> &NodeId {
        &self.nodes[i].name
    }

    /// How many members there are (crashed ones included).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Datagrams and bytes sent so far.
    pub fn sent(&self) -> (u64, u64) {
        (self.sent_packets, self.sent_bytes)
    }

    /// Times a member lost a member that had not crashed.
    pub fn false_deaths(&self) -> u64 {
        self.false_deaths
    }

    fn push(&mut self, at: Duration, event: Event) {
        self.seq += 1;
        self.events.insert(self.seq, event);
        self.queue.push(Reverse((at, self.seq, 0)));
    }

    /// Sends what member `i` queued and schedules its next timer.
    fn settle(&mut self, i: usize) {
        let outbox = self.nodes[i].detector.drain_outbox();
        for (to, packet) in outbox {
            self.sent_packets += 1;
            self.sent_bytes += packet.len() as u64;
            if self.rng.random_bool(self.cfg.loss.clamp(0.0, 1.0)) {
                continue;
            }
            let Some(&to) = self.index.get(&to) else {
                continue;
            };
            let span = self.cfg.max_delay.saturating_sub(self.cfg.min_delay);
            let jitter = span.mul_f64(self.rng.random::<f64>());
            let at = self.now + self.cfg.min_delay + jitter;
            self.push(at, Event::Deliver { to, packet });
        }
        if let Some(due) = self.nodes[i].detector.next_due() {
            self.push(due.max(self.now), Event::Timer { node: i });
        }
        for entry in self.nodes[i].detector.drain_heard() {
            let node = &mut self.nodes[i];
            let newer = node
                .entries
                .get(entry.id())
                .is_none_or(|known| entry.supersedes(known));
            if newer {
                node.entries.insert(entry.id().clone(), entry);
            }
        }
        if self.nodes[i].detector.take_changed() {
            let alive = self.nodes[i].detector.alive();
            let lost: Vec<usize> = self.nodes[i]
                .alive
                .difference(&alive)
                .filter_map(|n| self.index.get(n).copied())
                .collect();
            for j in lost {
                if self.nodes[j].run != Run::Crashed {
                    self.false_deaths += 1;
                }
            }
            self.nodes[i].alive = alive;
        }
    }

    /// Runs until `until` (simulated).
    pub fn run_until(&mut self, until: Duration) {
        while let Some(Reverse((at, seq, _))) = self.queue.peek().copied() {
            if at > until {
                break;
            }
            self.queue.pop();
            let Some(event) = self.events.remove(&seq) else {
                continue;
            };
            self.now = at;
            match event {
                Event::Deliver { to, packet } => match self.nodes[to].run {
                    Run::Up => {
                        self.nodes[to].detector.receive(&packet, at);
                        self.settle(to);
                    }
                    Run::Paused(_) => self.nodes[to].buffered.push(packet),
                    Run::Crashed => {}
                },
                Event::Timer { node } => {
                    let due = self.nodes[node].detector.next_due();
                    if self.nodes[node].run == Run::Up && due.is_some_and(|d| d <= at) {
                        self.nodes[node].detector.tick(at);
                        self.settle(node);
                    }
                }
                Event::Resume { node } => {
                    if let Run::Paused(until) = self.nodes[node].run
                        && until <= at
                    {
                        self.nodes[node].run = Run::Up;
                        // The socket buffer first, then the late timers.
                        for packet in std::mem::take(&mut self.nodes[node].buffered) {
                            self.nodes[node].detector.receive(&packet, at);
                        }
                        self.nodes[node].detector.tick(at);
                        self.settle(node);
                    }
                }
            }
        }
        self.now = self.now.max(until);
    }

    /// Runs until `done` holds (checked every `step`) or `limit` passes;
    /// returns how long it took, or `None`.
    pub fn run_until_true(
        &mut self,
        step: Duration,
        limit: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        while self.now - start < limit {
            if done(self) {
                return Some(self.now - start);
            }
            let next = self.now + step;
            self.run_until(next);
        }
        done(self).then(|| self.now - start)
    }

    /// Crashes member `i`.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].run = Run::Crashed;
    }

    /// Pauses member `i` (SIGSTOP) for `length`.
    pub fn pause(&mut self, i: usize, length: Duration) {
        let until = self.now + length;
        self.nodes[i].run = Run::Paused(until);
        self.push(until, Event::Resume { node: i });
    }

    /// A new member that announces itself to `contacts` members; returns
    /// its index.
    pub fn join(&mut self, contacts: usize) -> usize {
        let size = self.nodes.len() + 1;
        let i = self.add_node(size);
        let live: Vec<usize> = (0..i).filter(|&j| self.nodes[j].run == Run::Up).collect();
        for _ in 0..contacts.min(live.len()) {
            let to = live[self.rng.random_range(0..live.len())];
            let name = self.nodes[to].name.clone();
            let now = self.now;
            self.nodes[i].detector.announce(&name, now);
        }
        self.settle(i);
        i
    }

    /// Member `i` publishes a ring entry (as a member does when the ring
    /// changes).
    pub fn publish(&mut self, i: usize, entry: Member) {
        let held = &mut self.nodes[i].entries;
        if held
            .get(entry.id())
            .is_none_or(|known| entry.supersedes(known))
        {
            held.insert(entry.id().clone(), entry.clone());
        }
        self.nodes[i].detector.publish(&entry);
        // Published entries leave with the next message; gossip carries
        // them within a gossip period.
        self.settle(i);
    }

    /// Whether every member not crashed holds `entry` (or newer).
    pub fn all_hold(&self, entry: &Member) -> bool {
        self.live().all(|n| {
            n.entries
                .get(entry.id())
                .is_some_and(|e| e == entry || e.supersedes(entry))
        })
    }

    /// Whether every member not crashed (but `j`) sees `j` alive.
    pub fn all_see_alive(&self, j: usize) -> bool {
        let name = &self.nodes[j].name;
        self.live()
            .filter(|n| &n.name != name)
            .all(|n| n.alive.contains(name))
    }

    /// Whether every member not crashed sees `j` not alive.
    pub fn none_see_alive(&self, j: usize) -> bool {
        let name = &self.nodes[j].name;
        self.live()
            .filter(|n| &n.name != name)
            .all(|n| !n.alive.contains(name))
    }

    fn live(&self) -> impl Iterator<Item = &SimNode> {
        self.nodes.iter().filter(|n| n.run != Run::Crashed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mydht_ring::MemberState;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_crash_is_seen_by_every_member_within_ten_seconds_and_a_join_within_two() {
        let mut sim = Sim::new(20, SimConfig::default(), 7);
        sim.run_until(secs(5));
        assert!(
            (0..20).all(|j| sim.all_see_alive(j)),
            "everyone alive at rest"
        );
        sim.crash(3);
        let took = sim
            .run_until_true(Duration::from_millis(50), secs(10), |s| s.none_see_alive(3))
            .expect("the crash seen by all within 10 s");
        assert!(took > secs(1), "not before a probe could fail: {took:?}");
        let joiner = sim.join(1);
        sim.run_until_true(Duration::from_millis(50), secs(2), |s| {
            s.all_see_alive(joiner)
        })
        .expect("the joiner alive on all within 2 s");
        assert_eq!(sim.false_deaths(), 0);
    }

    #[test]
    fn a_member_paused_for_two_seconds_is_not_declared_down() {
        let mut sim = Sim::new(5, SimConfig::default(), 11);
        sim.run_until(secs(3));
        for round in 0..10 {
            sim.pause(round % 5, secs(2));
            let now = sim.now();
            sim.run_until(now + secs(8));
        }
        assert_eq!(sim.false_deaths(), 0, "a 2 s pause cost a member its life");
        assert!((0..5).all(|j| sim.all_see_alive(j)));
    }

    #[test]
    fn a_published_entry_reaches_every_member_under_loss() {
        let cfg = SimConfig {
            loss: 0.2,
            ..SimConfig::default()
        };
        let mut sim = Sim::new(50, cfg, 3);
        sim.run_until(secs(2));
        let entry = Member::new(sim.name(4).clone(), MemberState::Leaving).at(2);
        sim.publish(4, entry.clone());
        sim.run_until_true(Duration::from_millis(20), secs(5), |s| s.all_hold(&entry))
            .expect("every member holds the entry within 5 s at 20 % loss");
        // An older entry arriving later is not taken.
        let older = Member::new(sim.name(4).clone(), MemberState::Up).at(1);
        sim.publish(7, older);
        let now = sim.now();
        sim.run_until(now + secs(3));
        assert!(sim.all_hold(&entry));
    }
}
