//! Failure detection and ring-entry dissemination by SWIM, sans-IO.
//!
//! A [`Detector`] wraps one foca instance (SWIM: each probe period a random
//! member is pinged, directly then through others; one that does not answer
//! is suspected, and declared down unless it refutes the suspicion in time),
//! a queue of its timers and the datagrams it wants sent. It never touches
//! a socket or a clock: the caller hands it datagrams and the time (a
//! `Duration` since any fixed origin), fires its due timers, and sends what
//! it queued. The same code runs under tokio in a node and in a
//! deterministic simulation (`examples/gossip_sim.rs`).
//!
//! It also carries the ring's versioned member entries as SWIM piggyback
//! (foca's custom broadcasts): an entry this node publishes rides on the
//! next probes and gossip, and every node that learns something new from it
//! passes it on, so a change spreads epidemically without any one node
//! telling everyone. Only entries newer than the best one seen for their
//! member are taken and passed on. What was heard is handed back
//! ([`Detector::drain_heard`]) for the caller to merge into the view.
//!
//! Identities are the member's name and an incarnation (the start time in
//! milliseconds): a restarted member is a new identity that wins over its
//! old, down one, and a member declared down while it was only paused
//! renews its incarnation by one and comes back. Liveness is per name.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::num::{NonZeroU8, NonZeroU32, NonZeroUsize};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use foca::{
    BroadcastHandler, Config, Foca, Identity, Invalidates, Notification, PeriodicParams,
    PostcardCodec, Runtime, State, Timer,
};
use mydht_ring::{Member, NodeId};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::{Deserialize, Serialize};

/// Every datagram starts with this, so a stray packet on the port (or one
/// from an incompatible release) is dropped before it is decoded.
pub const MAGIC: [u8; 4] = *b"MDS1";

/// One incarnation of a member, as SWIM knows it.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Incarnated {
    /// The member's name (`host:port`; SWIM uses UDP on the same port).
    pub node: NodeId,
    /// Grows with every start (and every renewal after a false death).
    pub incarnation: u64,
}

impl std::fmt::Debug for Incarnated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.node, self.incarnation)
    }
}

impl Identity for Incarnated {
    type Addr = NodeId;

    fn renew(&self) -> Option<Self> {
        self.incarnation.checked_add(1).map(|incarnation| Self {
            node: self.node.clone(),
            incarnation,
        })
    }

    fn addr(&self) -> NodeId {
        self.node.clone()
    }

    fn win_addr_conflict(&self, other: &Self) -> bool {
        self.incarnation > other.incarnation
    }
}

/// How SWIM runs. The defaults suit a LAN of 3 to 1,000 members: a crashed
/// member is seen down by all within about 5–8 s, and a member paused for
/// 2 s is not declared down (measured in `examples/gossip_sim.rs`).
#[derive(Clone, Debug)]
pub struct DetectorConfig {
    /// One member is probed this often.
    pub probe_period: Duration,
    /// A probe not answered within this is retried through others.
    pub probe_rtt: Duration,
    /// How many others retry a probe (and how many members a gossip
    /// round reaches).
    pub indirect_probes: usize,
    /// A suspected member that has not refuted within this is down.
    pub suspect_to_down_after: Duration,
    /// Each update is piggybacked at least this many times (more in large
    /// clusters): fewer lets a short pause turn into a false death.
    pub min_transmissions: u8,
    /// Pending updates are pushed to a few members this often.
    pub gossip_period: Duration,
    /// Members seen down are asked to rejoin this often (healing a
    /// partition).
    pub announce_to_down_period: Duration,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            probe_period: Duration::from_millis(800),
            probe_rtt: Duration::from_millis(400),
            indirect_probes: 5,
            suspect_to_down_after: Duration::from_secs(4),
            min_transmissions: 12,
            gossip_period: Duration::from_millis(200),
            announce_to_down_period: Duration::from_secs(2),
        }
    }
}

impl DetectorConfig {
    fn foca(&self, cluster_size: usize) -> Config {
        let size = u32::try_from(cluster_size.max(1)).unwrap_or(u32::MAX);
        let mut c = Config::new_lan(NonZeroU32::new(size).unwrap_or(NonZeroU32::MIN));
        c.probe_period = self.probe_period;
        c.probe_rtt = self.probe_rtt;
        c.num_indirect_probes =
            NonZeroUsize::new(self.indirect_probes).unwrap_or(NonZeroUsize::MIN);
        c.suspect_to_down_after = self.suspect_to_down_after;
        // Down members are remembered for good (one per name, so bounded
        // by the ring): forgetting them after a day would let a partition
        // longer than that never heal, and foca's own issue #19 shows a
        // short expiry feeding back forgotten members as new.
        c.remove_down_after = None;
        let min = NonZeroU8::new(self.min_transmissions).unwrap_or(NonZeroU8::MIN);
        c.max_transmissions = c.max_transmissions.max(min);
        c.periodic_gossip = Some(PeriodicParams {
            frequency: self.gossip_period,
            num_members: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
        });
        c.periodic_announce_to_down_members = Some(PeriodicParams {
            frequency: self.announce_to_down_period,
            num_members: NonZeroUsize::MIN,
        });
        c
    }
}

/// A ring entry's key in the broadcast backlog: a newer entry for a
/// member replaces an older one still waiting to be sent.
struct EntryKey(Member);

impl Invalidates for EntryKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.0.id() == other.0.id() && !other.0.supersedes(&self.0)
    }
}

/// A broadcast that is not a ring entry.
#[derive(Debug, thiserror::Error)]
#[error("not a ring entry: {0}")]
struct BadEntry(postcard::Error);

/// Takes ring entries off SWIM messages: new ones are kept (and passed
/// on), stale ones dropped.
struct Entries {
    best: HashMap<NodeId, Member>,
    heard: Arc<Mutex<Vec<Member>>>,
}

impl BroadcastHandler<Incarnated> for Entries {
    type Key = EntryKey;
    type Error = BadEntry;

    fn receive_item(
        &mut self,
        data: &[u8],
        sender: Option<&Incarnated>,
    ) -> Result<Option<EntryKey>, BadEntry> {
        let entry: Member = postcard::from_bytes(data).map_err(BadEntry)?;
        let newer = self
            .best
            .get(entry.id())
            .is_none_or(|known| entry.supersedes(known));
        // This node's own publications are always sent, even again.
        if !newer && sender.is_some() {
            return Ok(None);
        }
        if newer {
            self.best.insert(entry.id().clone(), entry.clone());
        }
        if sender.is_some() {
            self.heard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(entry.clone());
        }
        Ok(Some(EntryKey(entry)))
    }
}

/// A timer and when it is due; ordered by time, then by foca's own order
/// (indirect probes before the next probe, as foca wants when late).
type Due = Reverse<(Duration, Timer<Incarnated>)>;

type Swim = Foca<Incarnated, PostcardCodec, SmallRng, Entries>;

/// One node's SWIM state. See the module docs.
pub struct Detector {
    me: Incarnated,
    foca: Swim,
    cfg: DetectorConfig,
    size: usize,
    timers: BinaryHeap<Due>,
    outbox: Vec<(NodeId, Vec<u8>)>,
    heard: Arc<Mutex<Vec<Member>>>,
    changed: bool,
    idle: bool,
}

/// The side effects of one call into foca.
struct Effects<'a> {
    now: Duration,
    me: &'a mut Incarnated,
    timers: &'a mut BinaryHeap<Due>,
    outbox: &'a mut Vec<(NodeId, Vec<u8>)>,
    changed: &'a mut bool,
    idle: &'a mut bool,
}

impl Runtime<Incarnated> for Effects<'_> {
    fn notify(&mut self, n: Notification<'_, Incarnated>) {
        match n {
            Notification::MemberUp(_) | Notification::MemberDown(_) | Notification::Rename(..) => {
                *self.changed = true;
            }
            Notification::Idle => {
                *self.idle = true;
                *self.changed = true;
            }
            Notification::Active => *self.idle = false,
            Notification::Rejoin(id) => {
                tracing::info!(identity = ?id, "declared down while alive: rejoined as a new incarnation");
                *self.me = id.clone();
            }
            Notification::Defunct => {
                tracing::warn!("declared down and out of incarnations");
                *self.changed = true;
            }
        }
    }

    fn send_to(&mut self, to: Incarnated, data: &[u8]) {
        let mut packet = Vec::with_capacity(MAGIC.len() + data.len());
        packet.extend_from_slice(&MAGIC);
        packet.extend_from_slice(data);
        self.outbox.push((to.node, packet));
    }

    fn submit_after(&mut self, timer: Timer<Incarnated>, after: Duration) {
        self.timers.push(Reverse((self.now + after, timer)));
    }
}

impl Detector {
    /// A detector for `me` at `incarnation`, in a cluster of about
    /// `cluster_size` members; `seed` makes its random choices repeatable.
    pub fn new(
        me: NodeId,
        incarnation: u64,
        cfg: DetectorConfig,
        cluster_size: usize,
        seed: u64,
    ) -> Self {
        let me = Incarnated {
            node: me,
            incarnation,
        };
        let heard = Arc::new(Mutex::new(Vec::new()));
        let handler = Entries {
            best: HashMap::new(),
            heard: heard.clone(),
        };
        let foca = Foca::with_custom_broadcast(
            me.clone(),
            cfg.foca(cluster_size),
            SmallRng::seed_from_u64(seed),
            PostcardCodec,
            handler,
        );
        Self {
            me,
            foca,
            cfg,
            size: cluster_size,
            timers: BinaryHeap::new(),
            outbox: Vec::new(),
            heard,
            changed: false,
            idle: true,
        }
    }

    /// This node's identity now.
    pub fn identity(&self) -> &Incarnated {
        &self.me
    }

    /// Asks `node` (known by name only) to let this node in.
    pub fn announce(&mut self, node: &NodeId, now: Duration) {
        let to = Incarnated {
            node: node.clone(),
            incarnation: 0,
        };
        let (foca, mut fx) = self.split(now);
        if let Err(e) = foca.announce(to, &mut fx) {
            tracing::debug!(%node, error = %e, "announce not sent");
        }
    }

    fn split(&mut self, now: Duration) -> (&mut Swim, Effects<'_>) {
        (
            &mut self.foca,
            Effects {
                now,
                me: &mut self.me,
                timers: &mut self.timers,
                outbox: &mut self.outbox,
                changed: &mut self.changed,
                idle: &mut self.idle,
            },
        )
    }

    /// Takes one datagram from the network. Anything that is not a SWIM
    /// message of this release is dropped.
    pub fn receive(&mut self, packet: &[u8], now: Duration) {
        let Some(data) = packet.strip_prefix(&MAGIC) else {
            return;
        };
        let (foca, mut fx) = self.split(now);
        if let Err(e) = foca.handle_data(data, &mut fx) {
            tracing::trace!(error = %e, "datagram ignored");
        }
    }

    /// When the next timer is due, if any.
    pub fn next_due(&self) -> Option<Duration> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Fires every timer due by `now`.
    pub fn tick(&mut self, now: Duration) {
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, timer))) = self.timers.pop() else {
                break;
            };
            let suspect = match &timer {
                Timer::ChangeSuspectToDown { member_id, .. } => Some(member_id.clone()),
                _ => None,
            };
            let mark = self.outbox.len();
            let (foca, mut fx) = self.split(now);
            if let Err(e) = foca.handle_timer(timer, &mut fx) {
                tracing::trace!(error = %e, "timer ignored");
            }
            // foca 2.0 tells a suspect it is down even when it refuted in
            // time; the suspect would then renew its identity for nothing.
            // A member still active was not declared down: drop the notice.
            if let Some(id) = suspect
                && self.foca.iter_members().any(|m| m.id() == &id)
            {
                self.outbox.truncate(mark);
            }
        }
    }

    /// Publishes this node's entry (or any entry it decided) to the cluster
    /// by piggyback.
    pub fn publish(&mut self, entry: &Member) {
        match postcard::to_allocvec(entry) {
            Ok(bytes) => {
                if let Err(e) = self.foca.add_broadcast(&bytes) {
                    tracing::debug!(error = %e, "ring entry not published");
                }
            }
            Err(e) => tracing::debug!(error = %e, "ring entry not encoded"),
        }
    }

    /// The datagrams to send, each to a member's name.
    pub fn drain_outbox(&mut self) -> Vec<(NodeId, Vec<u8>)> {
        std::mem::take(&mut self.outbox)
    }

    /// Ring entries heard from others since the last call, each newer
    /// than any seen before for its member.
    pub fn drain_heard(&mut self) -> Vec<Member> {
        std::mem::take(&mut *self.heard.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether the alive set may have changed since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Whether this node knows no other active member (it should announce
    /// itself to the members it knows of).
    pub fn is_idle(&self) -> bool {
        self.idle || self.foca.num_members() == 0
    }

    /// Members active now (alive or suspected), by name, this node not
    /// included.
    pub fn alive(&self) -> BTreeSet<NodeId> {
        self.foca
            .iter_members()
            .map(|m| m.id().node.clone())
            .collect()
    }

    /// Members SWIM declared down and that have not come back, by name.
    pub fn declared_down(&self) -> BTreeSet<NodeId> {
        let alive = self.alive();
        self.foca
            .iter_membership_state()
            .filter(|m| m.state() == State::Down && !alive.contains(&m.id().node))
            .map(|m| m.id().node.clone())
            .collect()
    }

    /// Adapts retransmissions to a cluster of about `size` members.
    pub fn resize(&mut self, size: usize) {
        if size == self.size {
            return;
        }
        self.size = size;
        if let Err(e) = self.foca.set_config(self.cfg.foca(size)) {
            tracing::debug!(error = %e, "detector config unchanged");
        }
    }

    /// Takes `members` as alive without asking them (a simulation's steady
    /// state, or a view already agreed by other means); nothing is spread.
    pub fn learn(&mut self, members: &[Incarnated], now: Duration) {
        let updates = members.iter().cloned().map(foca::Member::alive);
        let (foca, mut fx) = self.split(now);
        if let Err(e) = foca.apply_many(updates, false, &mut fx) {
            tracing::debug!(error = %e, "members not learned");
        }
    }

    /// Tells the cluster this node is going away, so it is not suspected.
    pub fn leave(&mut self, now: Duration) {
        let (foca, mut fx) = self.split(now);
        if let Err(e) = foca.leave_cluster(&mut fx) {
            tracing::debug!(error = %e, "leave not sent");
        }
    }
}
