//! How the membership layer behaves at scale, in a deterministic
//! simulation (simulated time, seeded RNG, message loss and delays): how
//! long until every member knows of a join, of a ring change and of a
//! crash (median and p99 over seeds), how many members are falsely
//! declared down (over the whole run, five 2 s pauses per seed included),
//! and the bytes each member sends per second at rest.
//!
//! `cargo run --release -p mydht-cluster --example gossip_sim -- --members 1000`
//! (also `--loss 0.2`, `--seeds 20`, `--rest 30`, `--pauses 5`, `--suspect-ms 3000`).

use std::time::Duration;

use mydht_cluster::sim::{Sim, SimConfig};
use mydht_ring::{Member, MemberState};

struct Args {
    members: usize,
    loss: f64,
    seeds: u64,
    rest: u64,
    pauses: usize,
    suspect_ms: Option<u64>,
}

fn args() -> Args {
    let mut a = Args {
        members: 100,
        loss: 0.0,
        seeds: 10,
        rest: 30,
        pauses: 5,
        suspect_ms: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        let bad = || -> ! {
            eprintln!(
                "usage: gossip_sim [--members N] [--loss P] [--seeds K] [--rest SECONDS] [--pauses N] [--suspect-ms MS]"
            );
            std::process::exit(2)
        };
        match flag.as_str() {
            "--members" => a.members = value.parse().unwrap_or_else(|_| bad()),
            "--loss" => a.loss = value.parse().unwrap_or_else(|_| bad()),
            "--seeds" => a.seeds = value.parse().unwrap_or_else(|_| bad()),
            "--rest" => a.rest = value.parse().unwrap_or_else(|_| bad()),
            "--pauses" => a.pauses = value.parse().unwrap_or_else(|_| bad()),
            "--suspect-ms" => a.suspect_ms = Some(value.parse().unwrap_or_else(|_| bad())),
            _ => bad(),
        }
    }
    a
}

fn quantile(xs: &mut [f64], q: f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    let i = ((xs.len() as f64 - 1.0) * q).round() as usize;
    xs.get(i).copied().unwrap_or(f64::NAN)
}

fn main() {
    let a = args();
    let mut cfg = SimConfig {
        loss: a.loss,
        ..SimConfig::default()
    };
    if let Some(ms) = a.suspect_ms {
        cfg.detector.suspect_to_down_after = Duration::from_millis(ms);
    }
    let limit = Duration::from_secs(60);
    let step = Duration::from_millis(10);
    let (mut join, mut change, mut crash) = (Vec::new(), Vec::new(), Vec::new());
    let (mut false_deaths, mut bytes_per_s, mut packets_per_s) = (0, Vec::new(), Vec::new());
    let mut pause_deaths = 0;
    let mut missed = 0;
    for seed in 0..a.seeds {
        let mut sim = Sim::new(a.members, cfg.clone(), seed);
        // At rest: what SWIM costs with nothing happening.
        sim.run_until(Duration::from_secs(5));
        let (p0, b0) = sim.sent();
        let rest = Duration::from_secs(a.rest);
        let now = sim.now();
        sim.run_until(now + rest);
        let (p1, b1) = sim.sent();
        let per_member = (a.members as f64) * rest.as_secs_f64();
        bytes_per_s.push((b1 - b0) as f64 / per_member);
        packets_per_s.push((p1 - p0) as f64 / per_member);

        // A ring change: one member publishes a new entry.
        let who = (seed as usize * 7919) % a.members;
        let entry = Member::new(sim.name(who).clone(), MemberState::Leaving).at(2);
        sim.publish(who, entry.clone());
        match sim.run_until_true(step, limit, |s| s.all_hold(&entry)) {
            Some(t) => change.push(t.as_secs_f64()),
            None => missed += 1,
        }

        // A join: a new member announces itself to three members.
        let joiner = sim.join(3);
        match sim.run_until_true(step, limit, |s| s.all_see_alive(joiner)) {
            Some(t) => join.push(t.as_secs_f64()),
            None => missed += 1,
        }

        // A crash.
        let victim = (seed as usize * 104_729 + 1) % a.members;
        sim.crash(victim);
        match sim.run_until_true(step, limit, |s| s.none_see_alive(victim)) {
            Some(t) => crash.push(t.as_secs_f64()),
            None => missed += 1,
        }
        // Pauses of 2 s (SIGSTOP), one after another: none may cost a
        // member its life.
        let rest_deaths = sim.false_deaths();
        for k in 0..a.pauses {
            let paused = (seed as usize * 31 + k * 17 + 2) % a.members;
            if paused == victim {
                continue;
            }
            sim.pause(paused, Duration::from_secs(2));
            let now = sim.now();
            sim.run_until(now + Duration::from_secs(8));
        }
        pause_deaths += sim.false_deaths() - rest_deaths;
        false_deaths += rest_deaths;
    }
    println!(
        "{} members, {:.0} % loss, {} seeds, delays 0.1-2 ms",
        a.members,
        a.loss * 100.0,
        a.seeds
    );
    for (what, xs) in [
        ("ring change known to all", &mut change),
        ("join known to all", &mut join),
        ("crash known to all", &mut crash),
    ] {
        println!(
            "  {what:26} median {:6.2} s   p99 {:6.2} s",
            quantile(xs, 0.5),
            quantile(xs, 0.99)
        );
    }
    println!(
        "  at rest, per member        median {:6.0} B/s   {:.1} datagrams/s",
        quantile(&mut bytes_per_s, 0.5),
        quantile(&mut packets_per_s, 0.5)
    );
    println!("  false deaths, no pause         {false_deaths}");
    println!(
        "  false deaths, {} pauses of 2 s  {pause_deaths}",
        a.pauses * a.seeds as usize
    );
    if missed > 0 {
        println!("  runs that did not converge within {limit:?}: {missed}");
    }
}
