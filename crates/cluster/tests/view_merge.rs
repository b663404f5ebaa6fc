//! Property tests of the membership rule, [`View::merge`]: what every change
//! may and may not do to a view, and that gossip converges: members that
//! heard the same versioned entries, in any order and any grouping, hold
//! the same ring, and no entry arriving late rolls a newer one back.

use mydht_cluster::{Change, Merged, View, ViewError};
use mydht_ring::{Member, MemberState, NodeId, RingParams};
use proptest::prelude::*;

const POOL: usize = 6;

fn id(i: usize) -> NodeId {
    NodeId::new(format!("n{i}:1")).expect("name")
}

fn params() -> RingParams {
    RingParams::new(3, 4).expect("params")
}

fn state() -> impl Strategy<Value = MemberState> {
    prop_oneof![
        Just(MemberState::Joining),
        Just(MemberState::Up),
        Just(MemberState::Leaving),
        Just(MemberState::Removed),
    ]
}

/// One versioned entry about one of the pool's members.
fn entry() -> impl Strategy<Value = Member> {
    (0..POOL, state(), 0u64..8, 0u64..2)
        .prop_map(|(i, s, v, inc)| Member::new(id(i), s).at(v).in_incarnation(inc))
}

/// A view of distinct members.
fn view() -> impl Strategy<Value = View> {
    prop::collection::btree_map(0..POOL, (state(), 0u64..8, 0u64..2), 1..=POOL).prop_map(
        |members| {
            let members = members
                .into_iter()
                .map(|(i, (s, v, inc))| Member::new(id(i), s).at(v).in_incarnation(inc))
                .collect();
            View::new(params(), 1, members)
        },
    )
}

/// A decided change (join or state) about one member.
fn decision() -> impl Strategy<Value = Change> {
    let node = (0..POOL).prop_map(id);
    prop_oneof![
        node.clone().prop_map(|node| Change::Join { node }),
        (node, state()).prop_map(|(node, state)| Change::Decided { node, state }),
    ]
}

fn gossip(view: &View, heard: &View) -> View {
    match view
        .merge(&Change::Gossip {
            view: heard.clone(),
        })
        .expect("gossip merges")
    {
        Merged::Changed(v) => v,
        Merged::Unchanged => view.clone(),
    }
}

/// A view of exactly one entry.
fn single(entry: &Member) -> View {
    View::new(params(), 1, vec![entry.clone()])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn gossip_is_commutative_associative_and_idempotent(a in view(), b in view(), c in view()) {
        prop_assert_eq!(gossip(&a, &b), gossip(&b, &a));
        prop_assert_eq!(gossip(&gossip(&a, &b), &c), gossip(&a, &gossip(&b, &c)));
        prop_assert_eq!(gossip(&a, &a), a.clone());
        prop_assert_eq!(gossip(&a, &b).version(), gossip(&b, &a).version());
    }

    #[test]
    fn any_interleaving_of_the_same_updates_gives_every_member_the_same_ring(
        start in view(),
        updates in prop::collection::vec(entry(), 1..24),
        order in any::<u64>(),
        split in 0usize..24,
    ) {
        // Member one hears the updates in the order they were made.
        let one = updates.iter().fold(start.clone(), |v, e| gossip(&v, &single(e)));
        // Member two hears them shuffled, in two batches, and batch two
        // through a third member that started from nothing.
        let mut shuffled = updates.clone();
        let mut seed = order;
        for i in (1..shuffled.len()).rev() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (seed >> 33) as usize % (i + 1));
        }
        let (first, second) = shuffled.split_at(split.min(shuffled.len()));
        let two = first.iter().fold(start.clone(), |v, e| gossip(&v, &single(e)));
        let three = second
            .iter()
            .fold(View::new(params(), 1, vec![]), |v, e| gossip(&v, &single(e)));
        let two = gossip(&two, &three);
        prop_assert_eq!(&one, &two);
        prop_assert_eq!(one.version(), two.version());
    }

    #[test]
    fn an_entry_arriving_late_never_rolls_a_newer_one_back(v in view(), late in entry()) {
        let merged = gossip(&v, &single(&late));
        let before = v.member(late.id());
        let after = merged.member(late.id()).expect("the member is listed");
        match before {
            Some(held) if !late.supersedes(held) => prop_assert_eq!(after, held),
            _ => prop_assert_eq!(after, &late),
        }
        // Every other entry is untouched.
        for m in v.members().iter().filter(|m| m.id() != late.id()) {
            prop_assert_eq!(merged.member(m.id()), Some(m));
        }
    }

    #[test]
    fn within_an_incarnation_a_removal_beats_every_other_state(
        removed_at in 0u64..8,
        other in entry(),
    ) {
        let removed = Member::new(other.id().clone(), MemberState::Removed)
            .at(removed_at)
            .in_incarnation(other.incarnation());
        let merged = gossip(&single(&other), &single(&removed));
        let kept = merged.member(other.id()).expect("listed");
        prop_assert_eq!(kept.state(), MemberState::Removed);
    }

    #[test]
    fn a_view_listing_a_member_twice_keeps_the_newer_entry(a in entry(), b in entry()) {
        let b = Member::new(a.id().clone(), b.state()).at(b.version()).in_incarnation(b.incarnation());
        let v = View::new(params(), 1, vec![a.clone(), b.clone()]);
        prop_assert_eq!(v.members().len(), 1);
        let want = if b.supersedes(&a) { b } else { a };
        prop_assert_eq!(&v.members()[0], &want);
    }

    #[test]
    fn a_decision_raises_one_members_version_by_one_and_nothing_else(
        v in view(),
        c in decision(),
    ) {
        let node = match &c {
            Change::Join { node } | Change::Decided { node, .. } => node.clone(),
            _ => unreachable!("not generated"),
        };
        let before = v.member(&node).cloned();
        match (v.merge(&c), before) {
            (Ok(Merged::Changed(next)), before) => {
                let after = next.member(&node).expect("listed");
                prop_assert_eq!(after.version(), before.as_ref().map_or(1, |m| m.version() + 1));
                prop_assert!(before.as_ref().is_none_or(|b| after.supersedes(b)));
                prop_assert_eq!(next.epoch(), v.epoch() + after.version() - before.map_or(0, |b| b.version()));
                for m in v.members().iter().filter(|m| m.id() != &node) {
                    prop_assert_eq!(next.member(m.id()), Some(m));
                }
                // Gossip of the decided view wins everywhere it arrives.
                prop_assert_eq!(gossip(&v, &next), next.clone());
            }
            (Ok(Merged::Unchanged), _) => {}
            (Err(ViewError::NotMember { .. }), None) => {
                prop_assert!(matches!(c, Change::Decided { .. }), "only a decision");
            }
            (Err(ViewError::Removed { .. }), Some(b)) => {
                prop_assert_eq!(b.state(), MemberState::Removed);
                prop_assert!(matches!(c, Change::Decided { .. }), "only a decision");
            }
            (other, before) => prop_assert!(false, "unexpected {other:?} for {before:?}"),
        }
    }

    #[test]
    fn a_removed_member_comes_back_only_as_a_new_incarnation(v in view(), late in entry()) {
        for m in v.members().iter().filter(|m| m.state() == MemberState::Removed) {
            let rejoined = match v.merge(&Change::Join { node: m.id().clone() }).expect("join") {
                Merged::Changed(next) => next,
                Merged::Unchanged => return Err(TestCaseError::fail("a removed member's join changes the view")),
            };
            let back = rejoined.member(m.id()).expect("listed");
            prop_assert_eq!(back.state(), MemberState::Joining);
            prop_assert_eq!(back.version(), m.version() + 1);
            prop_assert_eq!(back.incarnation(), m.incarnation() + 1);
            // Any entry of the old incarnation, arriving late, whatever its
            // version, changes nothing.
            if late.id() == m.id() && late.incarnation() <= m.incarnation() {
                let after = gossip(&rejoined, &single(&late));
                prop_assert_eq!(after.member(m.id()), Some(back));
            }
        }
    }
}
