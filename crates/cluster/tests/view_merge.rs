//! Property tests of the membership rule, [`View::merge`]: what every change
//! may and may not do to a view, whatever the view and the change.

use std::collections::BTreeMap;

use mydht_cluster::{Change, Merged, View, ViewError};
use mydht_ring::{Member, MemberState, NodeId, RingParams};
use proptest::prelude::*;

const POOL: usize = 6;

fn id(i: usize) -> NodeId {
    NodeId::new(format!("n{i}:1")).expect("name")
}

fn state() -> impl Strategy<Value = MemberState> {
    prop_oneof![
        Just(MemberState::Joining),
        Just(MemberState::Up),
        Just(MemberState::Leaving),
        Just(MemberState::Removed),
    ]
}

fn view() -> impl Strategy<Value = View> {
    (
        prop::collection::btree_map(0..POOL, state(), 1..=POOL),
        1u64..100,
    )
        .prop_map(|(members, epoch)| {
            let members = members
                .into_iter()
                .map(|(i, s)| Member::new(id(i), s))
                .collect();
            View::new(RingParams::new(3, 4).expect("params"), epoch, members)
        })
}

/// A change about one member (every kind but a whole-view adopt).
fn change() -> impl Strategy<Value = Change> {
    let node = (0..POOL).prop_map(id);
    prop_oneof![
        node.clone().prop_map(|node| Change::Join { node }),
        (node.clone(), 0u64..200).prop_map(|(node, epoch)| Change::Joined { node, epoch }),
        (node.clone(), state()).prop_map(|(node, state)| Change::Decided { node, state }),
        (node, state(), 0u64..200).prop_map(|(node, state, epoch)| Change::Announced {
            node,
            state,
            epoch
        }),
    ]
}

fn subject(change: &Change) -> (&NodeId, u64) {
    match change {
        Change::Join { node } | Change::Decided { node, .. } => (node, 0),
        Change::Joined { node, epoch } | Change::Announced { node, epoch, .. } => (node, *epoch),
        Change::Adopt { .. } => unreachable!("not generated"),
    }
}

fn states(v: &View) -> BTreeMap<NodeId, MemberState> {
    v.members()
        .iter()
        .map(|m| (m.id().clone(), m.state()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A change applied twice changes the view once: an announcement that
    /// arrives again (a retry, a duplicate) does nothing.
    #[test]
    fn a_change_applied_twice_changes_the_view_once(v in view(), c in change()) {
        if let Ok(Merged::Changed(next)) = v.merge(&c) {
            prop_assert_eq!(next.merge(&c), Ok(Merged::Unchanged));
        }
    }

    /// A change touches its own member only, keeps every other member as it
    /// was, and moves the epoch forward past both the view's and the
    /// announcer's.
    #[test]
    fn a_change_touches_its_member_only_and_moves_the_epoch_forward(
        v in view(),
        c in change(),
    ) {
        let (node, min) = subject(&c);
        if let Ok(Merged::Changed(next)) = v.merge(&c) {
            let (mut before, mut after) = (states(&v), states(&next));
            prop_assert!(after.contains_key(node));
            before.remove(node);
            after.remove(node);
            prop_assert_eq!(before, after);
            prop_assert!(next.epoch() > v.epoch());
            prop_assert!(next.epoch() >= min);
            prop_assert!(next.to_ring().is_ok());
        }
    }

    /// A removed member is never brought back by what other members say:
    /// only its own join (its data dir was wiped) or this node's decision
    /// changes it.
    #[test]
    fn what_others_say_never_brings_a_removed_member_back(v in view(), c in change()) {
        let (node, _) = subject(&c);
        if v.state_of(node) != Some(MemberState::Removed) {
            return Ok(());
        }
        match &c {
            Change::Joined { .. } => {
                prop_assert_eq!(v.merge(&c), Err(ViewError::Removed { node: node.clone() }));
            }
            Change::Announced { .. } => prop_assert_eq!(v.merge(&c), Ok(Merged::Unchanged)),
            Change::Join { .. } => {
                let Ok(Merged::Changed(next)) = v.merge(&c) else {
                    return Err(TestCaseError::fail("a removed member's own join re-adds it"));
                };
                prop_assert_eq!(next.state_of(node), Some(MemberState::Joining));
            }
            Change::Decided { .. } | Change::Adopt { .. } => {}
        }
    }

    /// Announcements about different members give the same member states
    /// in whichever order they arrive.
    #[test]
    fn announcements_about_different_members_commute(
        v in view(),
        a in (0..POOL, state(), 0u64..200),
        b in (0..POOL, state(), 0u64..200),
    ) {
        prop_assume!(a.0 != b.0);
        let ca = Change::Announced { node: id(a.0), state: a.1, epoch: a.2 };
        let cb = Change::Announced { node: id(b.0), state: b.1, epoch: b.2 };
        let apply = |v: &View, c: &Change| match v.merge(c) {
            Ok(Merged::Changed(n)) => n,
            _ => v.clone(),
        };
        let ab = apply(&apply(&v, &ca), &cb);
        let ba = apply(&apply(&v, &cb), &ca);
        prop_assert_eq!(states(&ab), states(&ba));
    }
}
