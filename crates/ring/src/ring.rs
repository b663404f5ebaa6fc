//! The ring itself: tokens, per-token placement tables and replica sets.
//!
//! Building a ring sorts every member's tokens and precomputes, for each
//! token, the first N distinct eligible members walking clockwise from it,
//! once for the *current* placement (members that hold complete data: up and
//! leaving) and once for the *target* placement (members that will own data
//! once pending moves finish: up and joining). A lookup is then one binary
//! search and a slice copy, with no allocation, which is what lets a node ask
//! the ring on every request. Rebuilding is cheap enough (milliseconds for a
//! hundred members) to happen on every membership change.

use std::fmt;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::{Member, MemberState, NodeId, Position, RingError, token_position};

/// The replication level a new cluster gets (the seed's default).
pub const DEFAULT_REPLICAS: usize = 3;
/// The largest replication level supported.
pub const MAX_REPLICAS: usize = 16;
/// Virtual nodes per member by default.
///
/// Chosen by measurement (`cargo run --release -p mydht-ring --example
/// balance`): with N = 3 over 1,000 random clusters of each size, V = 512
/// kept every member within 0.91–1.10× of its fair share at 10 members and
/// 0.89–1.11× at 100 members (median busiest 1.04× and 1.06×); V = 256 left
/// 2 of 1,000 hundred-member clusters outside 0.85–1.15×, and the seed's 3
/// points gave a median busiest of 1.49× at 10 members. See README.md.
pub const DEFAULT_VNODES: u32 = 512;
/// The largest virtual-node count supported.
pub const MAX_VNODES: u32 = 4096;
/// The most members (removed ones included) one view may list.
pub const MAX_MEMBERS: usize = 65_536;
/// The most tokens (members with tokens times V) one ring may hold: about
/// 2,000 members at the default V, and a bound on what one view received
/// from the network can make a node build (tens of MB at most).
pub const MAX_TOKENS: usize = 1 << 20;

/// The ring's configuration: replication level N and virtual nodes per
/// member V, and while N changes, the N the data is complete under
/// (`previous`). Every member of a cluster must use the same V.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RingParams {
    replicas: usize,
    vnodes: u32,
    /// While N changes: the N every key's data is complete under. The
    /// current placement uses it (reads, `whereis`), the target one the
    /// new N, and a write must reach both, as while members join or leave.
    #[serde(default)]
    previous: Option<usize>,
}

impl RingParams {
    /// Checks N in `1..=MAX_REPLICAS` and V in `1..=MAX_VNODES`.
    pub fn new(replicas: usize, vnodes: u32) -> Result<Self, RingError> {
        if !(1..=MAX_REPLICAS).contains(&replicas) {
            return Err(RingError::InvalidReplicas {
                replicas,
                max: MAX_REPLICAS,
            });
        }
        if !(1..=MAX_VNODES).contains(&vnodes) {
            return Err(RingError::InvalidVnodes {
                vnodes,
                max: MAX_VNODES,
            });
        }
        Ok(Self {
            replicas,
            vnodes,
            previous: None,
        })
    }

    /// These parameters while N changes from `previous` to this N; no
    /// change when they are equal.
    pub fn changing_from(self, previous: usize) -> Result<Self, RingError> {
        if !(1..=MAX_REPLICAS).contains(&previous) {
            return Err(RingError::InvalidReplicas {
                replicas: previous,
                max: MAX_REPLICAS,
            });
        }
        Ok(Self {
            previous: (previous != self.replicas).then_some(previous),
            ..self
        })
    }

    /// The N data is complete under while N changes, if it does.
    pub fn previous(&self) -> Option<usize> {
        self.previous
    }

    /// These parameters with no change of N under way.
    pub fn settled(self) -> Self {
        Self {
            previous: None,
            ..self
        }
    }

    /// The configured replication level N (the new one while N changes).
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// Virtual nodes per member.
    pub fn vnodes(&self) -> u32 {
        self.vnodes
    }
}

impl Default for RingParams {
    fn default() -> Self {
        Self {
            replicas: DEFAULT_REPLICAS,
            vnodes: DEFAULT_VNODES,
            previous: None,
        }
    }
}

/// Which placement a question is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Placement {
    /// Members that hold complete data now (up and leaving): reads, `whereis`.
    Current,
    /// Members that will hold the data once pending moves finish (up and
    /// joining).
    Target,
}

/// Effective replication level and the default write and read quorums.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Quorum {
    n: usize,
    w: usize,
    r: usize,
}

impl Quorum {
    /// Majorities of `n` (at least 1).
    fn majority(n: usize) -> Self {
        let majority = (n / 2 + 1).max(1);
        Self {
            n,
            w: majority,
            r: majority,
        }
    }

    /// The effective N: the configured N, or fewer if fewer members hold data.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Default write quorum: a majority of the effective N (at least 1, so an
    /// empty placement can never acknowledge anything).
    pub fn w(&self) -> usize {
        self.w
    }

    /// Default read quorum: a majority of the effective N (at least 1).
    pub fn r(&self) -> usize {
        self.r
    }
}

/// Two tokens at the same position. Both are kept; keys at that exact
/// position go to the member whose name sorts first, and the other token's
/// range is empty. Reported so that operators can see it (with MD5 over 64
/// bits it should never happen in practice).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TokenCollision {
    /// Where the tokens collide.
    pub position: Position,
    /// The member that wins the position.
    pub winner: NodeId,
    /// The member whose token there owns nothing.
    pub loser: NodeId,
}

#[derive(Clone, Debug, Default)]
struct Table {
    /// Entries per token: min(N, eligible members).
    n: usize,
    /// `n` member indices per token, in walk order.
    lists: Vec<u32>,
}

/// Names one ring: a 64-bit digest (MD5, cut) of N, V, their version and
/// every member's name, state and version in name order. Shown as 16 hex
/// digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RingVersion(pub u64);

impl RingVersion {
    /// The version of a view: N and V at `params_version`, and `members`
    /// sorted by name (as a ring and a view keep them).
    pub fn of_sorted(params: RingParams, params_version: u64, members: &[Member]) -> Self {
        let mut h = Md5::new();
        h.update((params.replicas as u64).to_be_bytes());
        h.update(params.vnodes.to_be_bytes());
        h.update(params_version.to_be_bytes());
        // Absent in a settled ring, so its version is what it was before N
        // could change.
        if let Some(p) = params.previous {
            h.update(b"previous");
            h.update((p as u64).to_be_bytes());
        }
        for m in members {
            // The length first, so no two lists of names hash alike.
            h.update((m.id().as_str().len() as u64).to_be_bytes());
            h.update(m.id().as_str().as_bytes());
            h.update([m.state() as u8]);
            h.update(m.version().to_be_bytes());
            h.update(m.incarnation().to_be_bytes());
        }
        let mut b = [0u8; 8];
        b.copy_from_slice(&h.finalize()[..8]);
        Self(u64::from_be_bytes(b))
    }
}

impl fmt::Display for RingVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A consistent-hash ring built from one membership view. See the crate docs.
#[derive(Clone, Debug)]
pub struct Ring {
    params: RingParams,
    params_version: u64,
    version: RingVersion,
    members: Vec<Member>,
    tokens: Vec<u64>,
    owners: Vec<u32>,
    current: Table,
    target: Table,
    collisions: Vec<TokenCollision>,
}

impl Ring {
    /// Builds the ring of a membership view: N and V at `params_version`,
    /// and the members with their versioned states. Members may come in any
    /// order; the result depends only on the set. A name given twice is an
    /// error.
    pub fn new(
        params: RingParams,
        params_version: u64,
        members: impl IntoIterator<Item = Member>,
    ) -> Result<Self, RingError> {
        let mut members: Vec<Member> = members.into_iter().collect();
        members.sort_by(|a, b| a.id().cmp(b.id()));
        if let Some(w) = members.windows(2).find(|w| w[0].id() == w[1].id()) {
            return Err(RingError::DuplicateMember {
                id: w[0].id().to_string(),
            });
        }
        if members.len() > MAX_MEMBERS {
            return Err(RingError::TooManyMembers {
                count: members.len(),
                max: MAX_MEMBERS,
            });
        }
        let with_tokens = members.iter().filter(|m| m.state().has_tokens()).count();
        let tokens = with_tokens.saturating_mul(params.vnodes as usize);
        if tokens > MAX_TOKENS {
            return Err(RingError::TooManyTokens {
                tokens,
                max: MAX_TOKENS,
            });
        }
        let mut points: Vec<(u64, u32)> = Vec::with_capacity(tokens);
        for (idx, m) in (0u32..).zip(&members) {
            if m.state().has_tokens() {
                points.extend((0..params.vnodes).map(|v| (token_position(m.id(), v).0, idx)));
            }
        }
        Ok(Self::from_points(params, params_version, members, points))
    }

    /// Builds from members sorted by name and their tokens as
    /// `(position, member index)`.
    fn from_points(
        params: RingParams,
        params_version: u64,
        members: Vec<Member>,
        mut points: Vec<(u64, u32)>,
    ) -> Self {
        // Members are sorted by name, so sorting by (position, index) breaks
        // ties by name: deterministic whatever order the view came in.
        points.sort_unstable();
        let mut collisions = Vec::new();
        for w in points.windows(2) {
            if w[0].0 == w[1].0 {
                collisions.push(TokenCollision {
                    position: Position(w[0].0),
                    winner: members[w[0].1 as usize].id().clone(),
                    loser: members[w[1].1 as usize].id().clone(),
                });
            }
        }
        let (tokens, owners): (Vec<u64>, Vec<u32>) = points.into_iter().unzip();
        let version = RingVersion::of_sorted(params, params_version, &members);
        let mut ring = Self {
            params,
            params_version,
            version,
            members,
            tokens,
            owners,
            current: Table::default(),
            target: Table::default(),
            collisions,
        };
        let (now, next) = (
            ring.params.previous.unwrap_or(ring.params.replicas),
            ring.params.replicas,
        );
        ring.current = ring.build_table(MemberState::holds_data, now);
        ring.target = ring.build_table(MemberState::is_target, next);
        ring
    }

    fn build_table(&self, eligible: fn(MemberState) -> bool, replicas: usize) -> Table {
        let is_eligible = |idx: u32| eligible(self.members[idx as usize].state());
        let count = self
            .members
            .iter()
            .filter(|m| m.state().has_tokens() && eligible(m.state()))
            .count();
        let n = replicas.min(count);
        let t = self.tokens.len();
        let mut lists = Vec::with_capacity(t * n);
        if n > 0 {
            let mut found = [0u32; MAX_REPLICAS];
            for i in 0..t {
                let mut len = 0;
                let mut j = i;
                // Terminates: `count >= n` eligible members own tokens.
                while len < n {
                    let owner = self.owners[j];
                    if is_eligible(owner) && !found[..len].contains(&owner) {
                        found[len] = owner;
                        len += 1;
                    }
                    j = if j + 1 == t { 0 } else { j + 1 };
                }
                lists.extend_from_slice(&found[..n]);
            }
        }
        Table { n, lists }
    }

    /// The configuration this ring was built with.
    pub fn params(&self) -> RingParams {
        self.params
    }

    /// The version of N and V.
    pub fn params_version(&self) -> u64 {
        self.params_version
    }

    /// How far this ring has come, for people: the version of N and V plus
    /// every member's version. Every change a member decides raises it by
    /// one; it can fall when a removal overrides versions of the removed
    /// member nobody else saw, and two different rings may share it: only
    /// [`Ring::version`] tells rings apart.
    pub fn epoch(&self) -> u64 {
        self.members
            .iter()
            .fold(self.params_version, |e, m| e.saturating_add(m.version()))
    }

    /// A digest of everything the ring is built from: two rings have the
    /// same version exactly when they hold the same versioned entries (up
    /// to a 64-bit digest collision).
    pub fn version(&self) -> RingVersion {
        self.version
    }

    /// Every member of the view (removed ones included), sorted by name.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The member with this name, if it is in the view.
    pub fn member(&self, id: &NodeId) -> Option<&Member> {
        self.members
            .binary_search_by(|m| m.id().cmp(id))
            .ok()
            .map(|i| &self.members[i])
    }

    /// Number of tokens on the circle.
    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    /// Token collisions found while building (normally none).
    pub fn token_collisions(&self) -> &[TokenCollision] {
        &self.collisions
    }

    /// The effective N and default quorums, from the current placement.
    pub fn quorum(&self) -> Quorum {
        Quorum::majority(self.current.n)
    }

    /// The quorum of the target placement: what a write needs of the
    /// replicas a key will have once members joining or leaving, or a
    /// change of N, are done (the same as [`quorum`](Self::quorum) in a
    /// settled ring).
    pub fn target_quorum(&self) -> Quorum {
        Quorum::majority(self.target.n)
    }

    /// The index of the token that owns `pos`: the first at or after it,
    /// wrapping past the top of the circle.
    fn token_index(&self, pos: Position) -> Option<usize> {
        if self.tokens.is_empty() {
            return None;
        }
        let i = self.tokens.partition_point(|&t| t < pos.0);
        Some(if i == self.tokens.len() { 0 } else { i })
    }

    fn table(&self, placement: Placement) -> &Table {
        match placement {
            Placement::Current => &self.current,
            Placement::Target => &self.target,
        }
    }

    fn list_at(&self, placement: Placement, token: usize) -> &[u32] {
        let t = self.table(placement);
        &t.lists[token * t.n..(token + 1) * t.n]
    }

    /// The members a placement puts `pos` on, in preference order.
    pub fn placement(&self, placement: Placement, pos: Position) -> ReplicaSet<'_> {
        let mut set = ReplicaSet::empty(self);
        if let Some(i) = self.token_index(pos) {
            for &m in self.list_at(placement, i) {
                set.push(m);
            }
        }
        set
    }

    /// The key's replicas now (who holds complete data) and, while members
    /// join or leave and the two differ, the replicas it will have once the
    /// change is done: a write must reach a quorum in each. One lookup.
    pub fn owner_sets(&self, pos: Position) -> (ReplicaSet<'_>, Option<ReplicaSet<'_>>) {
        let mut current = ReplicaSet::empty(self);
        let mut target = ReplicaSet::empty(self);
        if let Some(i) = self.token_index(pos) {
            for &m in self.list_at(Placement::Current, i) {
                current.push(m);
            }
            for &m in self.list_at(Placement::Target, i) {
                target.push(m);
            }
        }
        let same = current.len == target.len
            && target.idx[..target.len]
                .iter()
                .all(|&m| current.contains_index(m));
        (current, (!same).then_some(target))
    }

    /// The key's preference list: the first effective-N distinct members
    /// holding data, walking clockwise from `pos`. This is what `whereis`
    /// prints.
    pub fn preference_list(&self, pos: Position) -> ReplicaSet<'_> {
        self.placement(Placement::Current, pos)
    }

    /// Who may answer a read of `pos`: the current placement less members
    /// the caller considers down.
    pub fn read_set(&self, pos: Position, is_down: impl Fn(&NodeId) -> bool) -> ReplicaSet<'_> {
        let mut set = ReplicaSet::empty(self);
        if let Some(i) = self.token_index(pos) {
            for &m in self.list_at(Placement::Current, i) {
                if !is_down(self.members[m as usize].id()) {
                    set.push(m);
                }
            }
        }
        set
    }

    /// Who must receive a write of `pos`: the current placement and the
    /// target placement together (so data reaches joining members and the
    /// successors of leaving ones), less members the caller considers down.
    /// Current members come first, in preference order.
    pub fn write_set(&self, pos: Position, is_down: impl Fn(&NodeId) -> bool) -> ReplicaSet<'_> {
        let mut set = ReplicaSet::empty(self);
        if let Some(i) = self.token_index(pos) {
            let current = self.list_at(Placement::Current, i);
            let target = self.list_at(Placement::Target, i);
            for &m in current.iter().chain(target) {
                if !set.contains_index(m) && !is_down(self.members[m as usize].id()) {
                    set.push(m);
                }
            }
        }
        set
    }

    /// The share of the circle each member replicates under a placement,
    /// as a fraction of the whole circle (the shares add up to the effective
    /// N). Members without data in that placement are listed with 0.
    pub fn ownership(&self, placement: Placement) -> Vec<(NodeId, f64)> {
        let mut owned = vec![0u128; self.members.len()];
        for i in 0..self.tokens.len() {
            // A token sharing its position with the one before owns nothing;
            // the first token at a position owns back to the previous one.
            let len = if i > 0 && self.tokens[i] == self.tokens[i - 1] {
                0
            } else {
                range_len(self.prev_token(i), self.tokens[i])
            };
            for &m in self.list_at(placement, i) {
                owned[m as usize] += len;
            }
        }
        let circle = 2f64.powi(64);
        self.members
            .iter()
            .zip(owned)
            .map(|(m, o)| (m.id().clone(), o as f64 / circle))
            .collect()
    }

    pub(crate) fn prev_token(&self, i: usize) -> u64 {
        if i == 0 {
            self.tokens[self.tokens.len() - 1]
        } else {
            self.tokens[i - 1]
        }
    }

    pub(crate) fn tokens(&self) -> &[u64] {
        &self.tokens
    }
}

/// The length of `(start, end]` on the circle; equal ends mean the whole
/// circle (a ring with one token).
pub(crate) fn range_len(start: u64, end: u64) -> u128 {
    if start == end {
        1u128 << 64
    } else {
        u128::from(end.wrapping_sub(start))
    }
}

/// A set of members for one key, in preference order, held inline: asking the
/// ring for one allocates nothing.
#[derive(Clone, Copy)]
pub struct ReplicaSet<'a> {
    ring: &'a Ring,
    idx: [u32; 2 * MAX_REPLICAS],
    len: usize,
}

impl<'a> ReplicaSet<'a> {
    fn empty(ring: &'a Ring) -> Self {
        Self {
            ring,
            idx: [0; 2 * MAX_REPLICAS],
            len: 0,
        }
    }

    fn push(&mut self, m: u32) {
        // Capacity holds: a set is at most N current plus N target members.
        if self.len < self.idx.len() {
            self.idx[self.len] = m;
            self.len += 1;
        }
    }

    fn contains_index(&self, m: u32) -> bool {
        self.idx[..self.len].contains(&m)
    }

    /// Number of members in the set.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The members, in preference order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a NodeId> + '_ {
        let ring = self.ring;
        self.idx[..self.len]
            .iter()
            .map(move |&m| ring.members[m as usize].id())
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: &NodeId) -> bool {
        self.iter().any(|m| m == id)
    }

    /// The members as owned names.
    pub fn to_vec(&self) -> Vec<NodeId> {
        self.iter().cloned().collect()
    }
}

impl std::fmt::Debug for ReplicaSet<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Lists members as the seed's `whereis` did: `a:1, b:2, c:3`.
impl std::fmt::Display for ReplicaSet<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, m) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(m.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, state: MemberState) -> Member {
        Member::new(NodeId::new(name).expect("valid"), state)
    }

    #[test]
    fn colliding_tokens_are_kept_and_reported() {
        let members = vec![
            member("a:1", MemberState::Up),
            member("b:1", MemberState::Up),
        ];
        let params = RingParams::new(1, 2).expect("params");
        // Both members put a token at 100; b sorts second and loses it.
        let ring = Ring::from_points(
            params,
            1,
            members,
            vec![(100, 1), (100, 0), (500, 1), (900, 0)],
        );
        assert_eq!(ring.token_count(), 4, "no token was dropped");
        assert_eq!(
            ring.token_collisions(),
            &[TokenCollision {
                position: Position(100),
                winner: NodeId::new("a:1").expect("valid"),
                loser: NodeId::new("b:1").expect("valid"),
            }]
        );
        let owner = |p| ring.preference_list(Position(p)).to_vec()[0].to_string();
        assert_eq!(owner(100), "a:1");
        assert_eq!(owner(101), "b:1");
        assert_eq!(owner(901), "a:1", "wraps to the lowest token");
        // b's colliding token owns an empty range: shares still add to 1.
        let total: f64 = ring
            .ownership(Placement::Current)
            .iter()
            .map(|(_, s)| s)
            .sum();
        assert!((total - 1.0).abs() < 1e-9);
    }

    #[test]
    fn while_n_changes_reads_keep_the_old_n_and_writes_reach_both() {
        let members: Vec<Member> = (0..6)
            .map(|i| member(&format!("n{i}:1"), MemberState::Up))
            .collect();
        let at = |n: usize, previous: Option<usize>| {
            let mut p = RingParams::new(n, 16).expect("params");
            if let Some(prev) = previous {
                p = p.changing_from(prev).expect("previous");
            }
            Ring::new(p, 2, members.clone()).expect("ring")
        };
        let (three, five, two) = (at(3, None), at(5, None), at(2, None));
        let raising = at(5, Some(3));
        let lowering = at(2, Some(5));
        assert_eq!(raising.params().previous(), Some(3));
        assert_ne!(
            raising.version(),
            five.version(),
            "the change is its own ring"
        );
        assert_eq!(
            at(3, Some(3)).params().previous(),
            None,
            "no change to the same N"
        );
        for p in [1u64, 1 << 40, u64::MAX / 3, u64::MAX - 7] {
            let pos = Position(p);
            // Raising: reads and whereis on the 3 that hold the data, writes
            // to the 5, the quorums those of each set.
            assert_eq!(
                raising.preference_list(pos).to_vec(),
                three.preference_list(pos).to_vec()
            );
            let (now, next) = raising.owner_sets(pos);
            assert_eq!(now.to_vec(), three.preference_list(pos).to_vec());
            assert_eq!(
                next.map(|s| s.to_vec()),
                Some(five.preference_list(pos).to_vec())
            );
            assert_eq!(raising.write_set(pos, |_| false).len(), 5);
            assert_eq!((raising.quorum().n(), raising.target_quorum().w()), (3, 3));
            // Lowering: reads on the 5 until the change is done, the new
            // replicas the first 2 of them.
            let (now, next) = lowering.owner_sets(pos);
            assert_eq!(now.to_vec(), five.preference_list(pos).to_vec());
            assert_eq!(
                next.map(|s| s.to_vec()),
                Some(two.preference_list(pos).to_vec())
            );
            assert_eq!(
                two.preference_list(pos).to_vec()[..],
                five.preference_list(pos).to_vec()[..2]
            );
            assert_eq!(
                (lowering.quorum().w(), lowering.target_quorum().w()),
                (3, 2)
            );
        }
    }

    #[test]
    fn one_node_ring_owns_everything() {
        let ring = Ring::new(
            RingParams::default(),
            1,
            [member("localhost:50140", MemberState::Up)],
        )
        .expect("ring");
        let q = ring.quorum();
        assert_eq!((q.n(), q.w(), q.r()), (1, 1, 1));
        let set = ring.preference_list(Position::of_key(b"mykey"));
        assert_eq!(set.to_string(), "localhost:50140");
    }

    #[test]
    fn empty_placement_can_never_reach_quorum() {
        let ring = Ring::new(
            RingParams::default(),
            1,
            [member("a:1", MemberState::Joining)],
        )
        .expect("ring");
        let q = ring.quorum();
        assert_eq!(q.n(), 0);
        assert!(q.w() > ring.read_set(Position(5), |_| false).len());
        assert_eq!(ring.write_set(Position(5), |_| false).len(), 1);
    }

    #[test]
    fn duplicate_members_and_bad_params_are_refused() {
        let dup = Ring::new(
            RingParams::default(),
            1,
            [
                member("a:1", MemberState::Up),
                member("a:1", MemberState::Joining),
            ],
        );
        assert!(matches!(dup, Err(RingError::DuplicateMember { .. })));
        assert!(matches!(
            RingParams::new(0, 8),
            Err(RingError::InvalidReplicas { .. })
        ));
        assert!(matches!(
            RingParams::new(MAX_REPLICAS + 1, 8),
            Err(RingError::InvalidReplicas { .. })
        ));
        assert!(matches!(
            RingParams::new(3, 0),
            Err(RingError::InvalidVnodes { .. })
        ));
    }
}
