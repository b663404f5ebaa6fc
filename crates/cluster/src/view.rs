//! The membership view as a pure value, and the one rule by which it
//! changes.
//!
//! A [`View`] is what the ring is built from: the replication level N, the
//! virtual-node count V, an epoch and every member with its state. Every
//! change to membership, whether this node decides it or hears it from
//! another member, is a [`Change`] passed to [`View::merge`], which says
//! whether the view changes and into what. It does no I/O and takes no
//! lock, so every rule is unit- and property-tested here; the async shell
//! that persists and publishes views is `manager`.
//!
//! Today's changes carry no per-member version: the rules are the ones the
//! seed's announcements need (a removed member stays removed unless it joins
//! again itself; an announcement never resurrects it; the epoch grows with
//! every change). Versioned gossip replaces the announcement rules with a
//! per-member version comparison in this same function.

use mydht_proto::Members;
use mydht_ring::{Member, MemberState, NodeId, Ring, RingParams};

use crate::error::ViewError;

/// A membership view: N, V, an epoch and every member with its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    params: RingParams,
    epoch: u64,
    members: Vec<Member>,
}

/// One change to membership, as it reaches [`View::merge`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// `node` itself asks to join. A member removed earlier comes back as
    /// joining: a removed node refuses to start on its old data dir, so its
    /// own join means the dir was wiped.
    Join {
        /// The joining node.
        node: NodeId,
    },
    /// Another member says `node` joined (or `node` asks for its keys before
    /// that announcement arrived): added as joining if unknown, at an epoch
    /// of at least `epoch`. A removed member stays removed (an error).
    Joined {
        /// The new member.
        node: NodeId,
        /// The announcing member's epoch.
        epoch: u64,
    },
    /// This node decides `node`'s state: its own joins and leaves, or an
    /// admin's remove. `node` must be a member.
    Decided {
        /// The member.
        node: NodeId,
        /// Its new state.
        state: MemberState,
    },
    /// Another member announces `node`'s new state at its `epoch`. Applied
    /// unless `node` is removed here; an unknown `node` is added.
    Announced {
        /// The member.
        node: NodeId,
        /// Its new state.
        state: MemberState,
        /// The announcing member's epoch.
        epoch: u64,
    },
    /// A whole view learned from the ring (the answer to a join, or a newer
    /// view found on restart) replaces this one, with `me` added as joining
    /// if it does not list this node.
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
    /// A view of `members` at `epoch`.
    pub fn new(params: RingParams, epoch: u64, members: Vec<Member>) -> Self {
        Self {
            params,
            epoch,
            members,
        }
    }

    /// A new ring of one member, `me`, up (epoch 1).
    pub fn first(me: NodeId, params: RingParams) -> Self {
        Self::new(params, 1, vec![Member::new(me, MemberState::Up)])
    }

    /// A view as it travels on the wire.
    pub fn from_wire(m: Members) -> Result<Self, ViewError> {
        let params = RingParams::new(usize::from(m.replicas), m.vnodes)?;
        Ok(Self::new(params, m.epoch, m.members))
    }

    /// The view as it travels on the wire. N travels as a byte; a larger N
    /// is sent as 255 (the ring allows far less).
    pub fn to_wire(&self) -> Members {
        Members {
            epoch: self.epoch,
            replicas: u8::try_from(self.params.replicas()).unwrap_or(u8::MAX),
            vnodes: self.params.vnodes(),
            members: self.members.clone(),
        }
    }

    /// The view of a built ring.
    pub fn of_ring(ring: &Ring) -> Self {
        Self::new(ring.params(), ring.epoch(), ring.members().to_vec())
    }

    /// Builds the ring this view describes.
    pub fn to_ring(&self) -> Result<Ring, ViewError> {
        Ok(Ring::new(self.params, self.epoch, self.members.clone())?)
    }

    /// N and V.
    pub fn params(&self) -> RingParams {
        self.params
    }

    /// The epoch; it grows with every change.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Every member with its state, removed ones included.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// `node`'s state, if it is a member (removed included).
    pub fn state_of(&self, node: &NodeId) -> Option<MemberState> {
        self.members
            .iter()
            .find(|m| m.id() == node)
            .map(Member::state)
    }

    /// Every member that is not removed, but `me`: whom a member tells
    /// about a change or asks for anything cluster-wide.
    pub fn others(&self, me: &NodeId) -> Vec<NodeId> {
        others(&self.members, me)
    }

    /// This view with `node` in `state`, at the same epoch: the view before
    /// or after a change, for planning what the change moves.
    pub fn with_state(&self, node: &NodeId, state: MemberState) -> Self {
        let members = self
            .members
            .iter()
            .map(|m| {
                if m.id() == node {
                    Member::new(node.clone(), state)
                } else {
                    m.clone()
                }
            })
            .collect();
        Self::new(self.params, self.epoch, members)
    }

    /// Applies `change`: the one place membership rules live.
    pub fn merge(&self, change: &Change) -> Result<Merged, ViewError> {
        let bumped = |min: u64| (self.epoch + 1).max(min);
        match change {
            Change::Join { node } => match self.state_of(node) {
                None | Some(MemberState::Removed) => {
                    Ok(Merged::Changed(self.readded(node, bumped(0))))
                }
                Some(_) => Ok(Merged::Unchanged),
            },
            Change::Joined { node, epoch } => match self.state_of(node) {
                None => Ok(Merged::Changed(self.readded(node, bumped(*epoch)))),
                Some(MemberState::Removed) => Err(ViewError::Removed { node: node.clone() }),
                Some(_) => Ok(Merged::Unchanged),
            },
            Change::Decided { node, state } => match self.state_of(node) {
                None => Err(ViewError::NotMember { node: node.clone() }),
                Some(s) if s == *state => Ok(Merged::Unchanged),
                Some(_) => Ok(Merged::Changed(Self {
                    epoch: bumped(0),
                    ..self.with_state(node, *state)
                })),
            },
            Change::Announced { node, state, epoch } => match self.state_of(node) {
                Some(s) if s == *state || s == MemberState::Removed => Ok(Merged::Unchanged),
                Some(_) => Ok(Merged::Changed(Self {
                    epoch: bumped(*epoch),
                    ..self.with_state(node, *state)
                })),
                None => {
                    let mut members = self.members.clone();
                    members.push(Member::new(node.clone(), *state));
                    Ok(Merged::Changed(Self::new(
                        self.params,
                        bumped(*epoch),
                        members,
                    )))
                }
            },
            Change::Adopt { view, me } => {
                let mut next = view.clone();
                if next.state_of(me).is_none() {
                    next.members
                        .push(Member::new(me.clone(), MemberState::Joining));
                    next.epoch += 1;
                }
                if next == *self {
                    Ok(Merged::Unchanged)
                } else {
                    Ok(Merged::Changed(next))
                }
            }
        }
    }

    /// This view with `node` (re)added at the end as joining, at `epoch`.
    fn readded(&self, node: &NodeId, epoch: u64) -> Self {
        let mut members: Vec<Member> = self
            .members
            .iter()
            .filter(|m| m.id() != node)
            .cloned()
            .collect();
        members.push(Member::new(node.clone(), MemberState::Joining));
        Self::new(self.params, epoch, members)
    }
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

    fn view(members: &[(&str, MemberState)]) -> View {
        View::new(
            RingParams::new(3, 8).expect("params"),
            5,
            members
                .iter()
                .map(|(n, s)| Member::new(id(n), *s))
                .collect(),
        )
    }

    fn changed(m: Merged) -> View {
        match m {
            Merged::Changed(v) => v,
            Merged::Unchanged => panic!("expected a change"),
        }
    }

    use MemberState::{Joining, Leaving, Removed, Up};

    #[test]
    fn a_join_adds_a_new_member_or_brings_a_removed_one_back_as_joining() {
        let v = view(&[("a:1", Up), ("b:1", Removed)]);
        let joined = changed(v.merge(&Change::Join { node: id("c:1") }).expect("merge"));
        assert_eq!(joined.state_of(&id("c:1")), Some(Joining));
        assert_eq!(joined.epoch(), 6);
        let back = changed(v.merge(&Change::Join { node: id("b:1") }).expect("merge"));
        assert_eq!(back.state_of(&id("b:1")), Some(Joining));
        assert_eq!(back.members().len(), 2, "the old entry is replaced");
        assert_eq!(
            v.merge(&Change::Join { node: id("a:1") }).expect("merge"),
            Merged::Unchanged,
            "joining twice is harmless"
        );
    }

    #[test]
    fn an_announced_join_never_brings_a_removed_member_back() {
        let v = view(&[("a:1", Up), ("b:1", Removed)]);
        let late = Change::Joined {
            node: id("b:1"),
            epoch: 9,
        };
        assert_eq!(v.merge(&late), Err(ViewError::Removed { node: id("b:1") }));
        let new = changed(
            v.merge(&Change::Joined {
                node: id("c:1"),
                epoch: 9,
            })
            .expect("merge"),
        );
        assert_eq!(new.epoch(), 9, "at least the announcer's epoch");
        assert_eq!(new.state_of(&id("c:1")), Some(Joining));
    }

    #[test]
    fn an_announced_state_applies_unless_the_member_is_removed() {
        let v = view(&[("a:1", Up), ("b:1", Joining), ("c:1", Removed)]);
        let up = changed(
            v.merge(&Change::Announced {
                node: id("b:1"),
                state: Up,
                epoch: 2,
            })
            .expect("merge"),
        );
        assert_eq!(up.state_of(&id("b:1")), Some(Up));
        assert_eq!(up.epoch(), 6, "the epoch grows even past an older one");
        for state in [Joining, Up, Leaving] {
            assert_eq!(
                v.merge(&Change::Announced {
                    node: id("c:1"),
                    state,
                    epoch: 50,
                })
                .expect("merge"),
                Merged::Unchanged
            );
        }
        let unknown = changed(
            v.merge(&Change::Announced {
                node: id("d:1"),
                state: Leaving,
                epoch: 1,
            })
            .expect("merge"),
        );
        assert_eq!(unknown.state_of(&id("d:1")), Some(Leaving));
    }

    #[test]
    fn a_decision_needs_a_member_and_a_different_state() {
        let v = view(&[("a:1", Up)]);
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
        let leaving = changed(
            v.merge(&Change::Decided {
                node: id("a:1"),
                state: Leaving,
            })
            .expect("merge"),
        );
        assert_eq!(
            (leaving.epoch(), leaving.state_of(&id("a:1"))),
            (6, Some(Leaving))
        );
    }

    #[test]
    fn adopting_a_view_adds_this_node_as_joining_when_it_is_missing() {
        let mine = View::first(id("me:1"), RingParams::new(3, 8).expect("params"));
        let theirs = view(&[("a:1", Up), ("b:1", Up)]);
        let adopted = changed(
            mine.merge(&Change::Adopt {
                view: theirs.clone(),
                me: id("me:1"),
            })
            .expect("merge"),
        );
        assert_eq!(adopted.state_of(&id("me:1")), Some(Joining));
        assert_eq!(adopted.epoch(), theirs.epoch() + 1);
        assert_eq!(
            adopted
                .merge(&Change::Adopt {
                    view: adopted.clone(),
                    me: id("me:1"),
                })
                .expect("merge"),
            Merged::Unchanged
        );
    }

    #[test]
    fn the_wire_form_round_trips() {
        let v = view(&[("a:1", Up), ("b:1", Leaving)]);
        assert_eq!(View::from_wire(v.to_wire()).expect("valid"), v);
        assert_eq!(v.others(&id("a:1")), vec![id("b:1")]);
    }
}
