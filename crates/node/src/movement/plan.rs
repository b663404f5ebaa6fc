//! What a pass does with one entry, decided from the ring alone.
//!
//! [`plan`] is a pure function of the pass, the ring, this node's name, the
//! entry's position and kind, and which members this node considers down:
//! it names the members that must hold the entry's version (the engine
//! probes each and sends only where the copy is missing or older), an
//! elected sender to check first, and what to do with this node's own copy
//! once every member holds it. Every "who sends what to whom" rule of data
//! movement lives here, where it is unit- and property-tested without a
//! network.

use mydht_ring::{MemberState, NodeId, Placement, Position, Ring};

use super::Pass;

/// What to do with this node's copy once every member in
/// [`Plan::ensure`] holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Then {
    /// Keep it.
    Keep,
    /// Drop it (this node no longer owns the key).
    Drop,
}

/// One entry's work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Ask this member (the elected sender) first; go on only if its copy
    /// is missing or older than this node's (it missed a write or a
    /// delete), since otherwise it sends.
    pub check_sender: Option<NodeId>,
    /// Members that must hold this node's version or a newer one.
    pub ensure: Vec<NodeId>,
    /// Then, if all of them do.
    pub then: Then,
}

impl Plan {
    fn nothing() -> Self {
        Self {
            check_sender: None,
            ensure: Vec::new(),
            then: Then::Keep,
        }
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.ensure.is_empty() && self.then == Then::Keep
    }
}

/// Whether no member is joining or leaving: only then do the current owners
/// of a range hold everything a tombstone must cover.
pub(crate) fn settled(ring: &Ring) -> bool {
    ring.params().previous().is_none()
        && ring
            .members()
            .iter()
            .all(|m| matches!(m.state(), MemberState::Up | MemberState::Removed))
}

/// What `pass` does on `me` with an entry at `position` in `ring`.
pub(crate) fn plan(
    pass: &Pass,
    ring: &Ring,
    me: &NodeId,
    position: Position,
    is_down: impl Fn(&NodeId) -> bool,
) -> Plan {
    let owners = ring.write_set(position, |_| false).to_vec();
    let mine = owners.contains(me);
    match pass {
        Pass::Restore { before, senders } => {
            let old = before.write_set(position, |_| false).to_vec();
            let gained: Vec<NodeId> = owners.into_iter().filter(|n| !old.contains(n)).collect();
            if gained.is_empty() {
                return Plan::nothing();
            }
            // One survivor sends, so a value does not travel once per copy:
            // the first old holder still in the ring that this node does not
            // consider down.
            let asked = |n: &NodeId| senders.as_ref().is_none_or(|s| s.binary_search(n).is_ok());
            let sender = old.iter().find(|n| {
                ring.member(n).is_some_and(|m| m.state().has_tokens()) && !is_down(n) && asked(n)
            });
            match sender {
                Some(s) if s == me => Plan {
                    check_sender: None,
                    ensure: gained,
                    then: Then::Keep,
                },
                // Another holder sends, unless its copy is missing or older
                // than this one: then this node sends too, and the newest
                // version wins at the target.
                Some(s) if old.contains(me) => Plan {
                    check_sender: Some(s.clone()),
                    ensure: gained,
                    then: Then::Keep,
                },
                _ => Plan::nothing(),
            }
        }
        Pass::Leave { after } => {
            let now = ring.placement(Placement::Current, position).to_vec();
            let next = after.write_set(position, |_| false).to_vec();
            Plan {
                check_sender: None,
                ensure: next
                    .into_iter()
                    .filter(|n| !now.contains(n) && n != me)
                    .collect(),
                then: Then::Keep,
            }
        }
        Pass::Spread { senders } => {
            let current = ring.placement(Placement::Current, position).to_vec();
            if !current.contains(me) {
                return Plan::nothing();
            }
            let target: Vec<NodeId> = ring
                .placement(Placement::Target, position)
                .to_vec()
                .into_iter()
                .filter(|n| n != me)
                .collect();
            if target.is_empty() {
                return Plan::nothing();
            }
            // One current replica sends, as in a restore: the first that
            // runs this pass and is not down. The others check it holds
            // their version, and send too when it does not.
            let sender = current
                .iter()
                .find(|n| !is_down(n) && senders.binary_search(n).is_ok());
            match sender {
                Some(s) if s == me => Plan {
                    check_sender: None,
                    ensure: target,
                    then: Then::Keep,
                },
                Some(s) => Plan {
                    check_sender: Some(s.clone()),
                    ensure: target,
                    then: Then::Keep,
                },
                None => Plan {
                    check_sender: None,
                    ensure: target,
                    then: Then::Keep,
                },
            }
        }
        Pass::Purge => {
            // An empty owner list means nobody else could take the key:
            // keep it, whatever the ring says.
            if mine || owners.is_empty() {
                return Plan::nothing();
            }
            Plan {
                check_sender: None,
                ensure: owners,
                then: Then::Drop,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mydht_ring::{Member, RingParams};
    use proptest::prelude::*;

    use super::*;

    fn id(i: usize) -> NodeId {
        NodeId::new(format!("n{i}:1")).expect("name")
    }

    fn ring(n: usize, members: &[(usize, MemberState)]) -> Ring {
        let members: Vec<Member> = members
            .iter()
            .map(|&(i, s)| Member::new(id(i), s))
            .collect();
        Ring::new(RingParams::new(n, 8).expect("params"), 1, members).expect("ring")
    }

    fn up(count: usize) -> Vec<(usize, MemberState)> {
        (0..count).map(|i| (i, MemberState::Up)).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// After a join, for every position exactly one old holder sends
        /// unconditionally, it sends to exactly the members that gained the
        /// position, and only old holders plan anything.
        #[test]
        fn after_a_join_one_old_holder_sends_each_gained_copy(
            members in 2usize..7,
            n in 1usize..4,
            positions in prop::collection::vec(any::<u64>(), 16),
        ) {
            let mut before_members = up(members);
            let joiner = members;
            before_members.push((joiner, MemberState::Removed));
            let before = Arc::new(ring(n, &before_members));
            let mut after_members = up(members);
            after_members.push((joiner, MemberState::Joining));
            let after = ring(n, &after_members);
            let pass = Pass::Restore { before: before.clone(), senders: None };
            for p in positions {
                let pos = Position(p);
                let old = before.write_set(pos, |_| false).to_vec();
                let gained: Vec<NodeId> = after
                    .write_set(pos, |_| false)
                    .iter()
                    .filter(|n| !old.contains(n))
                    .cloned()
                    .collect();
                let mut senders = 0;
                for i in 0..=members {
                    let me = id(i);
                    let plan = plan(&pass, &after, &me, pos, |_| false);
                    if !old.contains(&me) {
                        prop_assert!(plan.is_empty());
                        continue;
                    }
                    if gained.is_empty() {
                        prop_assert!(plan.is_empty());
                        continue;
                    }
                    prop_assert_eq!(&plan.ensure, &gained);
                    if plan.check_sender.is_none() {
                        senders += 1;
                        prop_assert_eq!(&me, &old[0], "the first old holder is elected");
                    }
                }
                prop_assert_eq!(senders, usize::from(!gained.is_empty()));
            }
        }

        /// Purge drops only keys this node does not own, and only after
        /// every owner holds them.
        #[test]
        fn purge_never_drops_an_owned_key_and_ensures_every_owner_first(
            members in 1usize..7,
            n in 1usize..4,
            me in 0usize..8,
            p in any::<u64>(),
        ) {
            let r = ring(n, &up(members));
            let me = id(me);
            let pos = Position(p);
            let owners = r.write_set(pos, |_| false).to_vec();
            let plan = plan(&Pass::Purge, &r, &me, pos, |_| false);
            if owners.contains(&me) {
                prop_assert!(plan.is_empty());
            } else {
                prop_assert_eq!(plan.then, Then::Drop);
                prop_assert_eq!(plan.ensure, owners);
            }
        }

        /// A leaving node sends each key to exactly the members that hold it
        /// once it is gone but not now.
        #[test]
        fn a_leave_sends_to_the_members_that_gain_the_key(
            members in 2usize..7,
            n in 1usize..4,
            p in any::<u64>(),
        ) {
            let mut now = up(members);
            now[0].1 = MemberState::Leaving;
            let ring_now = ring(n, &now);
            let mut gone = up(members);
            gone[0].1 = MemberState::Removed;
            let after = Arc::new(ring(n, &gone));
            let pos = Position(p);
            let plan = plan(&Pass::Leave { after: after.clone() }, &ring_now, &id(0), pos, |_| false);
            let current = ring_now.placement(Placement::Current, pos).to_vec();
            let expected: Vec<NodeId> = after
                .write_set(pos, |_| false)
                .iter()
                .filter(|n| !current.contains(n))
                .cloned()
                .collect();
            prop_assert_eq!(plan.ensure, expected);
        }
    }

    #[test]
    fn a_restore_elects_the_next_holder_when_the_first_is_down() {
        let before = Arc::new(ring(3, &up(4)));
        let mut now = up(4);
        now[3].1 = MemberState::Removed;
        let after = ring(3, &now);
        let pass = Pass::Restore {
            before: before.clone(),
            senders: None,
        };
        let pos = (0..10_000u64)
            .map(|i| Position(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
            .find(|&p| {
                let old = before.write_set(p, |_| false).to_vec();
                old.contains(&id(3)) && old[0] != id(3)
            })
            .expect("a position the removed member held");
        let old = before.write_set(pos, |_| false).to_vec();
        let first = old[0].clone();
        let second = old
            .iter()
            .find(|n| **n != first && **n != id(3))
            .expect("a third holder")
            .clone();
        let waits = plan(&pass, &after, &second, pos, |_| false);
        assert_eq!(waits.check_sender, Some(first.clone()));
        assert!(!waits.ensure.is_empty());
        let sends = plan(&pass, &after, &second, pos, |n| *n == first);
        assert_eq!(
            sends.check_sender, None,
            "the next live holder sends itself"
        );
        assert_eq!(sends.ensure, waits.ensure);

        // A joiner that did not ask the first holder: the next holder it
        // asked sends, whatever this holder thinks of the first's health.
        let asked: Arc<[NodeId]> = (0..4).map(id).filter(|n| *n != first).collect();
        let pass = Pass::Restore {
            before: before.clone(),
            senders: Some(asked),
        };
        let sends = plan(&pass, &after, &second, pos, |_| false);
        assert_eq!(
            sends.check_sender, None,
            "a holder never asked is never counted on"
        );
        assert_eq!(sends.ensure, waits.ensure);
    }
}
