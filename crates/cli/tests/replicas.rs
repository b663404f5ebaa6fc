//! Changing N on a running ring, with real processes: six nodes and 10,000
//! keys, N 3 → 5 then 5 → 2, while a writer goes on putting and reading
//! keys through every node. After each change every key is listed on N
//! replicas by `whereis` and each of them holds it; after lowering, no
//! other node does; no write acknowledged during the changes is lost.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use mydht_client::Client;

const KEYS: usize = 10_000;

/// Puts and reads keys through every node until told to stop; returns the
/// keys whose put was acknowledged, with their values.
async fn writer(nodes: Vec<String>, stop: Arc<AtomicBool>, round: u32) -> Vec<(String, String)> {
    let clients: Vec<Client> = nodes.iter().map(|n| only(n)).collect();
    let mut acked = Vec::new();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("live-{round}-{i}");
        let value = format!("value {i}");
        let c = &clients[i % clients.len()];
        if c.put(&key, value.clone()).await.is_ok() {
            // Read back at once through another node.
            let r = &clients[(i + 1) % clients.len()];
            let got = r.get(&key).await.expect("read after an acknowledged put");
            assert_eq!(
                got.map(|v| v.bytes.to_vec()),
                Some(value.clone().into_bytes()),
                "{key} read back during the change"
            );
            acked.push((key, value));
        }
        // And a key written before the change reads back too.
        let old = format!("key-{}", (i * 7919) % KEYS);
        let got = clients[(i + 2) % clients.len()]
            .get(&old)
            .await
            .expect("read of an older key during the change");
        assert_eq!(
            got.map(|v| v.bytes.to_vec()),
            Some(format!("v-{old}").into_bytes()),
            "{old} read during the change"
        );
        i += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    acked
}

/// Waits until every node lists `n` replicas for a probe key (the change
/// is settled everywhere), then checks every key: `whereis` lists `n`
/// nodes and each holds it; with `exclusive`, no other node does. Returns
/// the seconds until settled and until every key was in place.
async fn check_placement(
    nodes: &[String],
    keys: &[String],
    n: usize,
    exclusive: bool,
) -> (f64, f64) {
    let started = Instant::now();
    let clients: Arc<Vec<Client>> = Arc::new(nodes.iter().map(|m| only(m)).collect());
    let deadline = started + Duration::from_secs(120);
    loop {
        let mut settled = true;
        for c in clients.iter() {
            let owners = c.whereis(&keys[0]).await.expect("whereis");
            settled &= owners.len() == n;
        }
        if settled {
            break;
        }
        assert!(Instant::now() < deadline, "N={n} not settled everywhere");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let settled = started.elapsed().as_secs_f64();
    let names: Arc<Vec<String>> = Arc::new(nodes.to_vec());
    let mut pending: Vec<String> = keys.to_vec();
    while !pending.is_empty() {
        // 32 checkers at once, each taking every 32nd key.
        let pending_now = Arc::new(std::mem::take(&mut pending));
        let mut set = tokio::task::JoinSet::new();
        for part in 0..32 {
            let (clients, names, keys) = (clients.clone(), names.clone(), pending_now.clone());
            set.spawn(async move {
                let mut misplaced = Vec::new();
                for k in keys.iter().skip(part).step_by(32) {
                    let owners = clients[0].whereis(k).await.expect("whereis");
                    assert_eq!(owners.len(), n, "{k}: {owners:?}");
                    for (c, name) in clients.iter().zip(names.iter()) {
                        let has = c.haskey(k).await.expect("haskey").is_some();
                        let owner = owners.iter().any(|o| o.as_str() == name.as_str());
                        if (owner && !has) || (exclusive && !owner && has) {
                            misplaced.push(k.clone());
                            break;
                        }
                    }
                }
                misplaced
            });
        }
        while let Some(part) = set.join_next().await {
            pending.extend(part.expect("checker"));
        }
        assert!(
            pending.is_empty() || Instant::now() < deadline,
            "{} keys not on exactly their {n} replicas, e.g. {}",
            pending.len(),
            pending[0]
        );
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    (settled, started.elapsed().as_secs_f64())
}

#[test]
fn n_changes_live_from_3_to_5_and_to_2_losing_nothing() {
    let dir = temp_dir();
    let off = ["--anti-entropy-interval", "off"];
    let first = NodeProc::start(0, &dir.path().join("0"), &off);
    let mut nodes = vec![first];
    for i in 1..6 {
        let seed = nodes[0].name.clone();
        nodes.push(NodeProc::start(
            0,
            &dir.path().join(i.to_string()),
            &["-s", &seed, off[0], off[1]],
        ));
    }
    for n in &nodes {
        wait_until("a ring of six, every member up", || {
            let s = status(&n.name);
            s.ring_size == 6 && s.members.iter().all(|m| m.state == "up")
        });
    }
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let keys: Vec<String> = (0..KEYS).map(|i| format!("key-{i}")).collect();
    let rt = runtime();
    rt.block_on(async {
        let clients: Arc<Vec<Client>> = Arc::new(names.iter().map(|n| only(n)).collect());
        let keys = Arc::new(keys.clone());
        let mut set = tokio::task::JoinSet::new();
        for part in 0..32 {
            let (clients, keys) = (clients.clone(), keys.clone());
            set.spawn(async move {
                for (i, k) in keys.iter().enumerate().skip(part).step_by(32) {
                    let c = &clients[i % clients.len()];
                    c.put(k, format!("v-{k}")).await.expect("put");
                }
            });
        }
        while let Some(done) = set.join_next().await {
            done.expect("writer");
        }
    });

    let mut acked_all = Vec::new();
    for (round, (n, exclusive)) in [(5usize, false), (2usize, true)].into_iter().enumerate() {
        let stop = Arc::new(AtomicBool::new(false));
        let writing = rt.spawn(writer(names.clone(), stop.clone(), round as u32));
        let asked = Instant::now();
        let out = client(
            &nodes[round].port_arg(),
            &["-c", "replicas", "-k", &n.to_string()],
        );
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        assert_eq!(stdout(&out).trim(), "REPLICAS ok");
        let answered = asked.elapsed().as_secs_f64();
        if n == 5 {
            // One change at a time: another N is refused while this one is
            // under way, saying how to go on.
            let other = client(&nodes[3].port_arg(), &["-c", "replicas", "-k", "4"]);
            assert_eq!(other.status.code(), Some(2), "{}", stderr(&other));
            assert!(
                stderr(&other).contains("N is already changing from 3 to 5"),
                "{}",
                stderr(&other)
            );
        }
        let (settled, placed) = rt.block_on(check_placement(&names, &keys, n, exclusive));
        stop.store(true, Ordering::Relaxed);
        let acked = rt.block_on(writing).expect("writer");
        assert!(!acked.is_empty(), "the writer got nothing through");
        eprintln!(
            "N -> {n}: REPLICAS ok after {answered:.2} s; settled on every node {settled:.1} s later; every key checked in place {placed:.1} s later; {} writes acknowledged during the change",
            acked.len()
        );
        acked_all.extend(acked);
    }
    // Every write acknowledged during the changes reads back, through
    // every node.
    rt.block_on(async {
        let clients: Vec<Client> = names.iter().map(|n| only(n)).collect();
        for (k, v) in &acked_all {
            for c in &clients {
                let got = c.get(k).await.expect("get").map(|v| v.bytes.to_vec());
                assert_eq!(got, Some(v.clone().into_bytes()), "{k}");
            }
        }
        let sample = &keys[..50];
        for k in sample {
            let got = clients[0]
                .get(k)
                .await
                .expect("get")
                .map(|v| v.bytes.to_vec());
            assert_eq!(got, Some(format!("v-{k}").into_bytes()), "{k}");
        }
    });
}
