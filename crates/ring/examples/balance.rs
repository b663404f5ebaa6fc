//! Measures ownership balance for a choice of virtual-node counts: over many
//! random clusters of 10 and of 100 members with N = 3, how much of its fair
//! share (N / members of the circle) the busiest and the idlest member
//! replicate. This is the measurement behind `DEFAULT_VNODES`.
//!
//! `cargo run --release -p mydht-ring --example balance -- [CLUSTERS] [V...]`
//! (defaults: 1000 clusters, V = 3 128 256 512 1024). Run it in release: a
//! debug build takes minutes.

use mydht_ring::{Member, MemberState, NodeId, Placement, Ring, RingParams};

/// splitmix64: a tiny, seeded generator, so runs are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn random_cluster(rng: &mut Rng, size: usize) -> Vec<Member> {
    let mut names = std::collections::BTreeSet::new();
    while names.len() < size {
        let x = rng.next();
        names.insert(format!(
            "10.{}.{}.{}:{}",
            x & 0xff,
            (x >> 8) & 0xff,
            (x >> 16) & 0xff,
            1024 + (x >> 32) % 60000
        ));
    }
    names
        .into_iter()
        .map(|n| Member::new(NodeId::new(n).expect("valid"), MemberState::Up))
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let clusters: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let vnodes: Vec<u32> = if args.len() > 1 {
        args[1..].iter().filter_map(|a| a.parse().ok()).collect()
    } else {
        vec![3, 128, 256, 512, 1024]
    };
    println!("clusters={clusters} N=3; ratios are share / fair share");
    println!("size     V  busiest:median   p99  worst   idlest:worst  outside[0.85,1.15]");
    for size in [10usize, 100] {
        for &v in &vnodes {
            let mut rng = Rng(0x6d79_6468_7400 + size as u64);
            let params = RingParams::new(3, v).expect("params");
            let fair = 3.0 / size as f64;
            let (mut busiest, mut idlest, mut outside) = (Vec::new(), Vec::new(), 0);
            for _ in 0..clusters {
                let ring = Ring::new(params, 1, random_cluster(&mut rng, size)).expect("ring");
                let ratios: Vec<f64> = ring
                    .ownership(Placement::Current)
                    .into_iter()
                    .map(|(_, s)| s / fair)
                    .collect();
                let hi = ratios.iter().copied().fold(f64::MIN, f64::max);
                let lo = ratios.iter().copied().fold(f64::MAX, f64::min);
                if !(0.85..=1.15).contains(&hi) || !(0.85..=1.15).contains(&lo) {
                    outside += 1;
                }
                busiest.push(hi);
                idlest.push(lo);
            }
            busiest.sort_by(f64::total_cmp);
            idlest.sort_by(f64::total_cmp);
            println!(
                "{size:>4} {v:>5}  {:>13.3} {:>5.3} {:>6.3}  {:>12.3}  {outside:>6} of {clusters}",
                percentile(&busiest, 0.5),
                percentile(&busiest, 0.99),
                busiest[busiest.len() - 1],
                idlest[0],
            );
        }
    }
}
