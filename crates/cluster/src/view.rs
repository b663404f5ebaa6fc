//! The membership view as a pure value, and the one rule by which it
//! changes.
//!
//! A [`View`] is what the ring is built from: the replication level N and
//! the virtual-node count V with their version, and every member with its
//! versioned state. Every change to membership, whether this node decides
//! it or hears it from another member, is a [`Change`] passed to
//! [`View::merge`], which says whether the view changes and into what. It
//! does no I/O and takes no lock, so every rule is unit- and
//! property-tested here; the async shell that persists and publishes views
//! is `manager`.
//!
//! The rule is a per-entry maximum: of two entries for one member, the one
//! that [supersedes](Member::supersedes) the other wins, and of two
//! versions of N and V, the higher. Merging views is therefore commutative,
//! associative and idempotent, so members that have heard the same entries
//! in any order, from any number of gossip rounds, hold the same view, and
//! an old entry arriving late never rolls a newer one back. Only two kinds
//! of change raise a version: a member deciding a state ([`Change::Decided`],
//! its own, or an admin's remove of another), and a member admitting a
//! joiner ([`Change::Join`]), which readmits a removed member as a new
//! incarnation one version above its removal.

use mydht_proto::Members;
use mydht_ring::{Member, MemberState, NodeId, Ring, RingParams, RingVersion};

use crate::error::ViewError;

/// A membership view: N and V with their version, and every member with its
/// versioned state, sorted by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    params: RingParams,
    params_version: u64,
    members: Vec<Member>,
}

/// One change to membership, as it reaches [`View::merge`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// `node` asks this member to admit it: added as joining at version 1
    /// if unknown; a removed member comes back as joining one version above
    /// its removal (a removed node refuses to start on its old data dir, so
    /// its asking again means the dir was wiped: a new incarnation).
    Join {
        /// The joining node.
        node: NodeId,
    },
    /// This node decides `node`'s state (its own joins and leaves, or an
    /// admin's remove), one version above the one it holds. `node` must be
    /// a member, and a removed one comes back only by [`Change::Join`].
    Decided {
        /// The member.
        node: NodeId,
        /// Its new state.
        state: MemberState,
    },
    /// Another member's view, by gossip or an announcement: merged entry
    /// by entry, the newer of each winning.
    Gossip {
        /// The view heard.
        view: View,
    },
    /// The view the member a node joined through answered with replaces
    /// this one (a joiner's own one-member ring is not a view to merge),
    /// with `me` added as joining if it does not list this node.
    Adopt {
        /// The view learned.
        view: View,
        /// This node.
        me: NodeId,
    },
}

/// What [`View::merge`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Merged {
    /// The change is already part of the view.
    Unchanged,
    /// The view it becomes.
    Changed(View),
}

impl View {
    /// A view of `members`, with N and V at `params_version`. A member
    /// listed twice keeps its superseding entry.
    pub fn new(params: RingParams, params_version: u64, mut members: Vec<Member>) -> Self {
        members.sort_by(|a, b| a.id().cmp(b.id()));
        members.dedup_by(|later, kept| {
            if later.id() != kept.id() {
                return false;
            }
            if later.supersedes(kept) {
                std::mem::swap(later, kept);
            }
            true
        });
        Self {
            params,
            params_version,
            members,
        }
    }

    /// A new ring of one member, `me`, up; every version at 1.
    pub fn first(me: NodeId, params: RingParams) -> Self {
        Self::new(params, 1, vec![Member::new(me, MemberState::Up).at(1)])
    }

    /// A view as it travels on the wire.
    pub fn from_wire(m: Members) -> Result<Self, ViewError> {
        let mut params = RingParams::new(usize::from(m.replicas), m.vnodes)?;
        if let Some(previous) = m.previous_replicas {
            params = params.changing_from(usize::from(previous))?;
        }
        Ok(Self::new(params, m.params_version, m.members))
    }

    /// The view as it travels on the wire. N travels as a byte; a larger N
    /// is sent as 255 (the ring allows far less).
    pub fn to_wire(&self) -> Members {
        Members {
            version: self.version().0,
            epoch: self.epoch(),
            replicas: u8::try_from(self.params.replicas()).unwrap_or(u8::MAX),
            vnodes: self.params.vnodes(),
            params_version: self.params_version,
            previous_replicas: self
                .params
                .previous()
                .map(|p| u8::try_from(p).unwrap_or(u8::MAX)),
            members: self.members.clone(),
        }
    }

    /// The view of a built ring.
    pub fn of_ring(ring: &Ring) -> Self {
        Self::new(
            ring.params(),
            ring.params_version(),
            ring.members().to_vec(),
        )
    }

    /// Builds the ring this view describes.
    pub fn to_ring(&self) -> Result<Ring, ViewError> {
        Ok(Ring::new(
            self.params,
            self.params_version,
            self.members.clone(),
        )?)
    }

    /// N and V.
    pub fn params(&self) -> RingParams {
        self.params
    }

    /// The version of N and V.
    pub fn params_version(&self) -> u64 {
        self.params_version
    }

    /// The sum of every version in the view, for people (see
    /// [`Ring::epoch`]).
    pub fn epoch(&self) -> u64 {
        self.members
            .iter()
            .fold(self.params_version, |e, m| e.saturating_add(m.version()))
    }

    /// The ring version this view builds (see [`RingVersion`]).
    pub fn version(&self) -> RingVersion {
        RingVersion::of_sorted(self.params, self.params_version, &self.members)
    }

    /// Every member with its state, removed ones included, by name.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// `node`'s entry, if it is a member (removed included).
    pub fn member(&self, node: &NodeId) -> Option<&Member> {
        self.members
            .binary_search_by(|m| m.id().cmp(node))
            .ok()
            .map(|i| &self.members[i])
    }

    /// `node`'s state, if it is a member (removed included).
    pub fn state_of(&self, node: &NodeId) -> Option<MemberState> {
        self.member(node).map(Member::state)
    }

    /// Every member that is not removed, but `me`: whom a member tells
    /// about a change or asks for anything cluster-wide.
    pub fn others(&self, me: &NodeId) -> Vec<NodeId> {
        others(&self.members, me)
    }

    /// This view with `node` in `state`, versions untouched: the view
    /// before or after a change, for planning what the change moves.
    pub fn with_state(&self, node: &NodeId, state: MemberState) -> Self {
        let members = self
            .members
            .iter()
            .map(|m| {
                if m.id() == node {
                    Member::new(node.clone(), state)
                        .at(m.version())
                        .in_incarnation(m.incarnation())
                } else {
                    m.clone()
                }
            })
            .collect();
        Self::new(self.params, self.params_version, members)
    }

    /// Applies `change`: the one place membership rules live.
    pub fn merge(&self, change: &Change) -> Result<Merged, ViewError> {
        let next = match change {
            Change::Join { node } => match self.member(node) {
                None => self.with_entry(Member::new(node.clone(), MemberState::Joining).at(1)),
                Some(m) if m.state() == MemberState::Removed => self.with_entry(
                    Member::new(node.clone(), MemberState::Joining)
                        .at(m.version() + 1)
                        .in_incarnation(m.incarnation() + 1),
                ),
                Some(_) => return Ok(Merged::Unchanged),
            },
            Change::Decided { node, state } => match self.member(node) {
                None => return Err(ViewError::NotMember { node: node.clone() }),
                Some(m) if m.state() == *state => return Ok(Merged::Unchanged),
                Some(m) if m.state() == MemberState::Removed => {
                    return Err(ViewError::Removed { node: node.clone() });
                }
                Some(m) => self.with_entry(
                    Member::new(node.clone(), *state)
                        .at(m.version() + 1)
                        .in_incarnation(m.incarnation()),
                ),
            },
            Change::Gossip { view } => self.joined_with(view),
            Change::Adopt { view, me } => {
                if view.member(me).is_some() {
                    view.clone()
                } else {
                    view.with_entry(Member::new(me.clone(), MemberState::Joining).at(1))
                }
            }
        };
        Ok(if next == *self {
            Merged::Unchanged
        } else {
            Merged::Changed(next)
        })
    }

    /// Refuses `other` when its V differs from this view's (another
    /// cluster, or a forgery: see [`ViewError::OtherParams`]). N may
    /// differ: it changes live, and the merge takes the N with the higher
    /// version.
    pub fn same_params(&self, other: &View) -> Result<(), ViewError> {
        if self.params.vnodes() == other.params.vnodes() {
            return Ok(());
        }
        Err(ViewError::OtherParams {
            ours_n: self.params.replicas(),
            ours_v: self.params.vnodes(),
            ours_version: self.params_version,
            theirs_n: other.params.replicas(),
            theirs_v: other.params.vnodes(),
            theirs_version: other.params_version,
        })
    }

    /// This view with `entry` in place of its member's entry (or added).
    fn with_entry(&self, entry: Member) -> Self {
        let mut members = self.members.clone();
        match members.binary_search_by(|m| m.id().cmp(entry.id())) {
            Ok(i) => members[i] = entry,
            Err(i) => members.insert(i, entry),
        }
        Self {
            params: self.params,
            params_version: self.params_version,
            members,
        }
    }

    /// The per-entry maximum of this view and `other`.
    fn joined_with(&self, other: &View) -> Self {
        let (params, params_version) = if (other.params_version, params_key(other.params))
            > (self.params_version, params_key(self.params))
        {
            (other.params, other.params_version)
        } else {
            (self.params, self.params_version)
        };
        // Both lists are sorted by name: one merge walk.
        let mut members = Vec::with_capacity(self.members.len().max(other.members.len()));
        let (mut a, mut b) = (
            self.members.iter().peekable(),
            other.members.iter().peekable(),
        );
        loop {
            let next = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (Some(x), Some(y)) => match x.id().cmp(y.id()) {
                    std::cmp::Ordering::Less => a.next(),
                    std::cmp::Ordering::Greater => b.next(),
                    std::cmp::Ordering::Equal => {
                        let (x, y) = (a.next(), b.next());
                        match (x, y) {
                            (Some(x), Some(y)) if y.supersedes(x) => Some(y),
                            (x, _) => x,
                        }
                    }
                },
            };
            members.extend(next.cloned());
        }
        Self {
            params,
            params_version,
            members,
        }
    }
}

/// Orders two settings of one version (only views of two clusters that
/// were never one disagree so): any fixed order keeps merging convergent.
fn params_key(p: RingParams) -> (usize, u32, Option<usize>) {
    (p.replicas(), p.vnodes(), p.previous())
}

/// The members that are not removed, but `me`.
pub(crate) fn others(members: &[Member], me: &NodeId) -> Vec<NodeId> {
    members
        .iter()
        .filter(|m| m.state() != MemberState::Removed && m.id() != me)
        .map(|m| m.id().clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).expect("name")
    }

    fn view(members: &[(&str, MemberState, u64)]) -> View {
        View::new(
            RingParams::new(3, 8).expect("params"),
            1,
            members
                .iter()
                .map(|(n, s, v)| Member::new(id(n), *s).at(*v))
                .collect(),
        )
    }

    fn changed(m: Merged) -> View {
        match m {
            Merged::Changed(v) => v,
            Merged::Unchanged => panic!("expected a change"),
        }
    }

    fn entry(v: &View, n: &str) -> (MemberState, u64) {
        let m = v.member(&id(n)).expect("member");
        (m.state(), m.version())
    }

    use MemberState::{Joining, Leaving, Removed, Up};

    #[test]
    fn a_join_adds_a_new_member_or_readmits_a_removed_one_one_version_up() {
        let v = view(&[("a:1", Up, 3), ("b:1", Removed, 7)]);
        let joined = changed(v.merge(&Change::Join { node: id("c:1") }).expect("merge"));
        assert_eq!(entry(&joined, "c:1"), (Joining, 1));
        assert_eq!(joined.epoch(), v.epoch() + 1);
        let back = changed(v.merge(&Change::Join { node: id("b:1") }).expect("merge"));
        assert_eq!(entry(&back, "b:1"), (Joining, 8));
        assert_eq!(
            back.member(&id("b:1")).map(Member::incarnation),
            Some(1),
            "a new incarnation"
        );
        assert_eq!(back.members().len(), 2, "the old entry is replaced");
        assert_eq!(
            v.merge(&Change::Join { node: id("a:1") }).expect("merge"),
            Merged::Unchanged,
            "joining twice is harmless"
        );
    }

    #[test]
    fn a_decision_raises_its_members_version_and_never_revives_a_removed_one() {
        let v = view(&[("a:1", Up, 4), ("b:1", Removed, 2)]);
        assert_eq!(
            v.merge(&Change::Decided {
                node: id("x:1"),
                state: Removed,
            }),
            Err(ViewError::NotMember { node: id("x:1") })
        );
        assert_eq!(
            v.merge(&Change::Decided {
                node: id("a:1"),
                state: Up,
            })
            .expect("merge"),
            Merged::Unchanged
        );
        assert_eq!(
            v.merge(&Change::Decided {
                node: id("b:1"),
                state: Up,
            }),
            Err(ViewError::Removed { node: id("b:1") })
        );
        let leaving = changed(
            v.merge(&Change::Decided {
                node: id("a:1"),
                state: Leaving,
            })
            .expect("merge"),
        );
        assert_eq!(entry(&leaving, "a:1"), (Leaving, 5));
        assert_eq!(leaving.epoch(), v.epoch() + 1);
    }

    #[test]
    fn gossip_takes_the_newer_entry_of_each_member_and_never_an_older_one() {
        let mine = view(&[("a:1", Up, 3), ("b:1", Leaving, 2), ("c:1", Up, 1)]);
        let theirs = view(&[
            ("a:1", Joining, 1),
            ("b:1", Removed, 3),
            ("d:1", Joining, 1),
        ]);
        let merged = changed(
            mine.merge(&Change::Gossip {
                view: theirs.clone(),
            })
            .expect("merge"),
        );
        assert_eq!(entry(&merged, "a:1"), (Up, 3), "an old state never wins");
        assert_eq!(entry(&merged, "b:1"), (Removed, 3));
        assert_eq!(entry(&merged, "c:1"), (Up, 1), "kept though not heard of");
        assert_eq!(entry(&merged, "d:1"), (Joining, 1));
        let other_way = changed(theirs.merge(&Change::Gossip { view: mine }).expect("merge"));
        assert_eq!(merged, other_way, "the same view whichever side merges");
        assert_eq!(
            merged
                .merge(&Change::Gossip {
                    view: merged.clone()
                })
                .expect("merge"),
            Merged::Unchanged
        );
    }

    #[test]
    fn a_removal_is_final_for_its_incarnation_whatever_the_versions() {
        // Cut off, the member left, failed, and turned back up (v4) where
        // nobody saw; meanwhile the others removed it at the version they
        // knew (v3). Its later, unseen versions do not bring it back.
        let removed = view(&[("a:1", Removed, 3)]);
        let its_own = view(&[("a:1", Up, 4)]);
        let merged = changed(
            its_own
                .merge(&Change::Gossip { view: removed })
                .expect("merge"),
        );
        assert_eq!(entry(&merged, "a:1"), (Removed, 3));
    }

    #[test]
    fn at_one_version_a_remove_beats_the_members_own_change() {
        let removed = view(&[("a:1", Removed, 4)]);
        let leaving = view(&[("a:1", Leaving, 4)]);
        let merged = changed(
            leaving
                .merge(&Change::Gossip { view: removed })
                .expect("merge"),
        );
        assert_eq!(entry(&merged, "a:1"), (Removed, 4));
    }

    #[test]
    fn the_newer_version_of_n_and_v_wins() {
        let mine = view(&[("a:1", Up, 1)]);
        let newer = View::new(RingParams::new(2, 8).expect("params"), 2, vec![]);
        let merged = changed(mine.merge(&Change::Gossip { view: newer }).expect("merge"));
        assert_eq!(
            (merged.params().replicas(), merged.params_version()),
            (2, 2)
        );
        assert_eq!(entry(&merged, "a:1"), (Up, 1));
    }

    #[test]
    fn adopting_a_view_replaces_a_joiners_own_and_adds_it_when_missing() {
        let mine = View::first(id("me:1"), RingParams::new(3, 8).expect("params"));
        let theirs = view(&[("a:1", Up, 1), ("b:1", Up, 1)]);
        let adopted = changed(
            mine.merge(&Change::Adopt {
                view: theirs.clone(),
                me: id("me:1"),
            })
            .expect("merge"),
        );
        assert_eq!(entry(&adopted, "me:1"), (Joining, 1));
        assert_eq!(adopted.epoch(), theirs.epoch() + 1);
        let listed = view(&[("a:1", Up, 1), ("me:1", Joining, 6)]);
        let adopted = changed(
            mine.merge(&Change::Adopt {
                view: listed.clone(),
                me: id("me:1"),
            })
            .expect("merge"),
        );
        assert_eq!(adopted, listed, "the seed's entry for me, not my own Up");
    }

    #[test]
    fn the_wire_form_round_trips_and_names_the_ring() {
        let v = view(&[("b:1", Leaving, 2), ("a:1", Up, 1)]);
        let wire = v.to_wire();
        assert_eq!(wire.version, v.to_ring().expect("ring").version().0);
        assert_eq!(wire.epoch, v.to_ring().expect("ring").epoch());
        assert_eq!(View::from_wire(wire).expect("valid"), v);
        assert_eq!(v.others(&id("a:1")), vec![id("b:1")]);
        let bumped = view(&[("b:1", Leaving, 3), ("a:1", Up, 1)]);
        assert_ne!(v.version(), bumped.version(), "a version is part of it");
        let moved = view(&[("b:1", Up, 2), ("a:1", Up, 1)]);
        assert_ne!(v.version(), moved.version(), "a state is part of it");
    }
}
