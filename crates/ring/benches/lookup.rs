//! Preference-list lookups on a 100-member ring (N = 3, default V), given
//! the key's position, and with the MD5 of a 16-byte key included.
//!
//! `cargo bench -p mydht-ring --bench lookup`

use divan::{Bencher, black_box, counter::ItemsCount};
use mydht_ring::{Member, MemberState, NodeId, Position, Ring, RingParams};

fn main() {
    divan::main();
}

fn ring() -> Ring {
    let members = (0..100).map(|i| {
        Member::new(
            NodeId::new(format!("10.0.{}.{}:50140", i / 256, i % 256)).expect("valid"),
            MemberState::Up,
        )
    });
    Ring::new(RingParams::default(), 1, members).expect("ring")
}

const BATCH: usize = 4096;

fn keys() -> Vec<[u8; 16]> {
    (0..BATCH as u64)
        .map(|i| {
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
            k[8..].copy_from_slice(&i.to_be_bytes());
            k
        })
        .collect()
}

#[divan::bench]
fn preference_list_given_position(bencher: Bencher) {
    let ring = ring();
    let positions: Vec<Position> = keys().iter().map(|k| Position::of_key(k)).collect();
    bencher.counter(ItemsCount::new(BATCH)).bench_local(|| {
        let mut acc = 0usize;
        for &p in &positions {
            let set = ring.preference_list(black_box(p));
            acc += set.len();
        }
        acc
    });
}

#[divan::bench]
fn preference_list_with_md5_of_16_byte_key(bencher: Bencher) {
    let ring = ring();
    let keys = keys();
    bencher.counter(ItemsCount::new(BATCH)).bench_local(|| {
        let mut acc = 0usize;
        for k in &keys {
            let set = ring.preference_list(Position::of_key(black_box(k)));
            acc += set.len();
        }
        acc
    });
}

#[divan::bench]
fn build_100_member_ring() -> Ring {
    ring()
}
