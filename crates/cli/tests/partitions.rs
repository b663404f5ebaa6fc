//! The fault suite, on real partitions: five `mydht node` processes, each
//! in a network namespace of its own (see `common::netns`), N = 3, and
//! writers putting and deleting keys through every node while one fault
//! at a time is injected and healed:
//!
//! 1. a replica SIGKILLed, then restarted on its data dir;
//! 2. one node cut off (link down, connections broken) for longer than
//!    the request timeout, then healed;
//! 3. the cluster split 3 | 2 (nftables in each namespace), then joined;
//! 4. a node paused with SIGSTOP for 15 s.
//!
//! After each, every acknowledged write must read back with its last
//! acknowledged value (or a write whose outcome the writer could not know,
//! issued after it) through every node, no acknowledged delete may come
//! back, every replica of every key must hold the same version, and all
//! members must report one ring version. The time from healing to that
//! agreement is printed with the outcome table.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::netns::{self, Loss, Net};
use mydht_client::{Client, ClientOptions};

const NODES: usize = 5;
const KEYS_PER_WRITER: usize = 60;
const WRITERS: usize = 3;
/// Agreement must come within this after healing.
const CONVERGE: Duration = Duration::from_secs(60);

/// One write as the writer saw it.
#[derive(Clone, Debug)]
struct Op {
    /// The value put, or `None` for a delete.
    value: Option<String>,
    acked: bool,
    /// Not answered at all (no connection, or no answer in time): the
    /// request may still be carried out later, by a node that was paused
    /// or cut off while it held it, so it may land after later writes.
    late: bool,
}

/// An operation's record from its outcome.
fn op<T>(value: Option<String>, outcome: &Result<T, mydht_client::ClientError>) -> Op {
    Op {
        value,
        acked: outcome.is_ok(),
        late: matches!(outcome, Err(mydht_client::ClientError::Unreachable { .. })),
    }
}

fn client_of(name: &str) -> Client {
    let opts = ClientOptions {
        attempts: 1,
        learn_members: false,
        request_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(1),
        ..ClientOptions::default()
    };
    Client::with_options([name.to_string()], opts).expect("client")
}

/// Puts and deletes its own keys through every node in turn until told
/// to stop, recording every operation and whether it was acknowledged.
async fn writer(
    names: Arc<Vec<String>>,
    w: usize,
    round: usize,
    stop: Arc<AtomicBool>,
) -> BTreeMap<String, Vec<Op>> {
    let clients: Vec<Client> = names.iter().map(|n| client_of(n)).collect();
    let mut log: BTreeMap<String, Vec<Op>> = BTreeMap::new();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("w{w}-k{}", i % KEYS_PER_WRITER);
        // Each pass over the keys goes through the nodes in another order,
        // so no key is tied to one coordinator.
        let c = &clients[(i + i / KEYS_PER_WRITER + w) % clients.len()];
        let record = if i % 5 == 4 {
            op(None, &c.delete(&key).await)
        } else {
            let value = format!("r{round}-w{w}-{i}");
            let outcome = c.put(&key, value.clone()).await;
            op(Some(value), &outcome)
        };
        log.entry(key).or_default().push(record);
        i += 1;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    log
}

/// What a read of the key may return: the last acknowledged write, a
/// write after it whose outcome the writer did not learn, or a write never
/// answered at all (it may have been carried out late).
fn allowed(ops: &[Op]) -> Vec<Option<String>> {
    let last_acked = ops.iter().rposition(|o| o.acked);
    let from = last_acked.unwrap_or(0);
    let mut ok: Vec<Option<String>> = ops[from..].iter().map(|o| o.value.clone()).collect();
    ok.extend(
        ops[..from]
            .iter()
            .filter(|o| o.late)
            .map(|o| o.value.clone()),
    );
    if last_acked.is_none() {
        // Nothing acknowledged: it may also never have been written.
        ok.push(None);
    }
    ok
}

#[derive(Default, Debug)]
struct Outcome {
    acked: usize,
    lost: usize,
    resurrected: usize,
    stale: usize,
    converged_s: f64,
}

/// Polls, asking each replica for its own copy only (`haskey`, which
/// repairs nothing), until every replica of every key holds the same
/// version and every member reports one ring version; then reads every
/// key through every node and counts what is wrong. Reads repair, so they
/// come only once the replicas agreed by themselves.
async fn converge(names: &[String], log: &BTreeMap<String, Vec<Op>>, healed: Instant) -> Outcome {
    let clients: Vec<Client> = names.iter().map(|n| client_of(n)).collect();
    let mut out = Outcome::default();
    loop {
        let mut stale = 0;
        for key in log.keys() {
            let owners = clients[0].whereis(key).await.unwrap_or_default();
            let mut held = Vec::new();
            for o in &owners {
                if let Some(i) = names.iter().position(|n| n == o.as_str()) {
                    held.push(clients[i].haskey(key).await.ok());
                }
            }
            if held.len() != 3
                || held.iter().any(Option::is_none)
                || held.windows(2).any(|w| w[0] != w[1])
            {
                stale += 1;
            }
        }
        let versions: Vec<String> = names
            .iter()
            .map(|n| common::status_of(n).map_or_else(String::new, |s| s.ring_version))
            .collect();
        let one_ring = versions.windows(2).all(|w| w[0] == w[1]) && !versions[0].is_empty();
        if stale == 0 && one_ring {
            out.converged_s = healed.elapsed().as_secs_f64();
            break;
        }
        if healed.elapsed() > CONVERGE {
            out.stale = stale.max(usize::from(!one_ring));
            out.converged_s = f64::NAN;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for (key, ops) in log {
        let ok = allowed(ops);
        let last_acked = ops.iter().rev().find(|o| o.acked);
        for c in &clients {
            let got = match c.get(key).await {
                Ok(v) => v.map(|v| String::from_utf8_lossy(&v.bytes).into_owned()),
                Err(_) => {
                    out.lost += 1;
                    continue;
                }
            };
            if !ok.contains(&got) {
                match (last_acked.map(|o| &o.value), &got) {
                    (Some(None), Some(_)) => out.resurrected += 1,
                    _ => out.lost += 1,
                }
            }
        }
    }
    out
}

/// One fault of the suite.
enum Fault {
    Kill(usize),
    Cut(usize),
    Split,
    Lose(usize, Loss),
    Pause(usize),
    /// A sixth node joins, then N goes 3 -> 5 -> 3, all under load.
    JoinAndChangeN,
}

/// Sets N through `via` and waits until every node in `names` places a
/// probe key on `n` replicas (the change settled everywhere).
fn set_n(via: &str, names: &[String], n: usize) {
    let (host, port) = via.rsplit_once(':').expect("host:port");
    let out = common::mydht(&[
        "client",
        "-h",
        host,
        "-p",
        port,
        "-c",
        "replicas",
        "-k",
        &n.to_string(),
    ]);
    assert!(
        out.status.success(),
        "replicas {n}: {}",
        common::stderr(&out)
    );
    let rt = common::runtime();
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(60);
        for name in names {
            let c = client_of(name);
            while c.whereis("probe").await.map(|o| o.len()).ok() != Some(n) {
                assert!(Instant::now() < deadline, "N={n} not settled on {name}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
}

#[test]
fn the_fault_suite_loses_nothing_acknowledged_on_real_partitions() {
    if !netns::present() {
        return;
    }
    // One namespace more than nodes: the sixth joins in the last scenario.
    let net = Net::new(NODES + 1);
    let dir = common::temp_dir();
    let flags = ["--anti-entropy-interval", "5s"];
    let node_dir = |i: usize| dir.path().join(format!("n{i}"));
    let mut nodes = Procs(vec![net.start(0, &node_dir(0), &flags)]);
    let seed = net.name(0);
    for i in 1..NODES {
        let mut f = flags.to_vec();
        f.extend(["-s", &seed]);
        nodes.0.push(net.start(i, &node_dir(i), &f));
    }
    let names: Arc<Vec<String>> = Arc::new((0..NODES).map(|i| net.name(i)).collect());
    for n in names.iter() {
        common::wait_until("a ring of five, every member up", || {
            common::status_of(n).is_some_and(|s| {
                s.ring_size == NODES && s.members.iter().all(|m| m.state == "up" && !m.down)
            })
        });
    }
    let rt = common::runtime();
    let mut table = Vec::new();
    // Every operation of every round: a key's history carries over.
    let mut history: BTreeMap<String, Vec<Op>> = BTreeMap::new();
    let scenarios = [
        (
            "SIGKILL a replica, restart it",
            Fault::Kill(2),
            Duration::from_secs(4),
        ),
        (
            "cut one node off 12 s",
            Fault::Cut(1),
            Duration::from_secs(12),
        ),
        ("split 3/2 for 8 s", Fault::Split, Duration::from_secs(8)),
        (
            "SIGSTOP one node 15 s",
            Fault::Pause(3),
            Duration::from_secs(15),
        ),
        (
            "one node's outbound traffic dropped 8 s",
            Fault::Lose(4, Loss::Outbound),
            Duration::from_secs(8),
        ),
        (
            "20 % random loss on one node 8 s",
            Fault::Lose(0, Loss::OneIn(5)),
            Duration::from_secs(8),
        ),
        (
            "a join, then N 3 -> 5 -> 3",
            Fault::JoinAndChangeN,
            Duration::ZERO,
        ),
    ];
    let mut all_names: Vec<String> = names.to_vec();
    for (round, (what, fault, lasting)) in scenarios.into_iter().enumerate() {
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| rt.spawn(writer(names.clone(), w, round, stop.clone())))
            .collect();
        std::thread::sleep(Duration::from_secs(1));
        match fault {
            Fault::Kill(i) => {
                let _ = nodes.0[i].kill();
                let _ = nodes.0[i].wait();
            }
            Fault::Cut(i) => net.cut(i),
            Fault::Split => net.split(&[0, 1, 2], &[3, 4]),
            Fault::Lose(i, loss) => net.lose(i, loss),
            Fault::Pause(i) => signal(&nodes.0[i], "-STOP"),
            Fault::JoinAndChangeN => {
                let mut f = flags.to_vec();
                f.extend(["-s", &seed]);
                nodes.0.push(net.start(NODES, &node_dir(NODES), &f));
                all_names.push(net.name(NODES));
                for n in &all_names {
                    common::wait_until("the joiner up everywhere", || {
                        common::status_of(n).is_some_and(|s| {
                            s.ring_size == NODES + 1 && s.members.iter().all(|m| m.state == "up")
                        })
                    });
                }
                set_n(&seed, &all_names, 5);
                set_n(&net.name(2), &all_names, 3);
            }
        }
        std::thread::sleep(lasting);
        match fault {
            Fault::Kill(i) => {
                let mut f = flags.to_vec();
                f.extend(["-s", &seed]);
                nodes.0[i] = net.start(i, &node_dir(i), &f);
            }
            Fault::Cut(i) => net.heal(i),
            Fault::Split | Fault::Lose(..) => net.unsplit(),
            Fault::Pause(i) => signal(&nodes.0[i], "-CONT"),
            Fault::JoinAndChangeN => {}
        }
        let healed = Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        let mut acked = 0;
        for w in writers {
            for (key, ops) in rt.block_on(w).expect("writer") {
                acked += ops.iter().filter(|o| o.acked).count();
                history.entry(key).or_default().extend(ops);
            }
        }
        let mut outcome = rt.block_on(converge(&all_names, &history, healed));
        outcome.acked = acked;
        table.push((what, outcome));
    }
    eprintln!("| scenario | acked ops | lost | resurrected | stale | agreement after healing |");
    eprintln!("|---|---|---|---|---|---|");
    for (what, o) in &table {
        eprintln!(
            "| {what} | {} | {} | {} | {} | {:.1} s |",
            o.acked, o.lost, o.resurrected, o.stale, o.converged_s
        );
    }
    for (what, o) in &table {
        assert!(o.acked > 0, "{what}: nothing was acknowledged");
        assert_eq!(
            (o.lost, o.resurrected, o.stale),
            (0, 0, 0),
            "{what}: {o:?} (node logs in {})",
            dir.path().display()
        );
    }
}

/// The node processes, killed when dropped (before the namespaces go),
/// also when the test fails.
struct Procs(Vec<std::process::Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for n in &mut self.0 {
            let _ = n.kill();
            let _ = n.wait();
        }
    }
}

fn signal(child: &std::process::Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill {sig}");
}
