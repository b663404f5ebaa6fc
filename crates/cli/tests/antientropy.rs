//! Anti-entropy rounds walk the digests the stores keep: an in-sync round
//! is one call per peer, a replica takes exactly the versions it missed
//! (a new key, a newer value, a delete), and two copies of one version
//! with different bytes are reported and left alone. Real node processes;
//! hints and background rounds off, so `balance` runs each round shown.

mod common;

use common::{NodeProc, client, only, ring_size, runtime, status, stdout, temp_dir, wait_until};
use mydht_node::PassSummary;
use mydht_node::store::{DiskOptions, DiskStore, Lookup, Stamp, Store};

const FLAGS: [&str; 4] = ["--hint-max-bytes", "0", "--anti-entropy-interval", "off"];

fn with_seed(seed: &str) -> Vec<String> {
    ["-s", seed]
        .into_iter()
        .chain(FLAGS)
        .map(str::to_string)
        .collect()
}

fn last_balance(name: &str) -> PassSummary {
    status(name)
        .movement
        .last
        .into_iter()
        .find(|p| p.pass == "balance")
        .unwrap_or_else(|| panic!("{name} ran no balance round"))
}

fn balance(through: &NodeProc) {
    let o = client(&through.port_arg(), &["-c", "balance"]);
    assert_eq!(stdout(&o).trim(), "BALANCE ok", "{o:?}");
}

/// Waits until `node` is seen up by every one of `by`.
fn wait_seen_up(node: &NodeProc, by: &[&NodeProc]) {
    for n in by {
        wait_until("the restarted node seen up", || {
            status(&n.name)
                .members
                .iter()
                .any(|m| m.node == node.name && m.state == "up" && !m.down)
        });
    }
}

#[test]
fn a_round_takes_exactly_the_versions_a_replica_missed() {
    let dir = temp_dir();
    let a = NodeProc::start(0, &dir.path().join("a"), &FLAGS);
    let seeded = with_seed(&a.name);
    let args: Vec<&str> = seeded.iter().map(String::as_str).collect();
    let b = NodeProc::start(0, &dir.path().join("b"), &args);
    let mut c = NodeProc::start(0, &dir.path().join("c"), &args);
    for n in [&a, &b, &c] {
        wait_until("a ring of three", || ring_size(&n.name) == 3);
    }
    let keys: Vec<String> = (0..2000).map(|i| format!("ae-{i}")).collect();
    let rt = runtime();
    rt.block_on(async {
        let through_a = only(&a.name);
        for k in &keys {
            through_a.put(k, "v1").await.expect("put");
        }
    });
    // In sync: each node asks each of its two peers for their part digests
    // once, and takes nothing.
    balance(&a);
    for n in [&a, &b, &c] {
        let s = last_balance(&n.name);
        assert_eq!((s.sent, s.digests, s.conflicts), (0, 2, 0), "{s}");
    }

    // c misses a new key, a newer value and a delete.
    let c_port = c.port;
    c.kill();
    rt.block_on(async {
        let through_a = only(&a.name);
        through_a.put("ae-new", "fresh").await.expect("put");
        through_a.put(&keys[7], "v2").await.expect("put");
        through_a.delete(&keys[11]).await.expect("delete");
    });
    let c = NodeProc::start(c_port, &dir.path().join("c"), &FLAGS);
    wait_seen_up(&c, &[&a, &b]);
    balance(&a);
    let on_c = last_balance(&c.name);
    assert_eq!((on_c.sent, on_c.conflicts), (3, 0), "{on_c}");
    // Parts and leaves of a, the entries of three leaves, then parts of b
    // (in sync by then); one more should the new key share a leaf.
    assert!(on_c.digests <= 5, "{on_c}");
    for n in [&a, &b] {
        let s = last_balance(&n.name);
        assert_eq!(s.sent, 0, "{} took nothing: {s}", n.name);
    }
    rt.block_on(async {
        let (on_a, on_c) = (only(&a.name), only(&c.name));
        for k in ["ae-new", &keys[7], &keys[11], &keys[12]] {
            assert_eq!(
                on_c.haskey(k).await.expect("haskey on c"),
                on_a.haskey(k).await.expect("haskey on a"),
                "{k}"
            );
        }
        let v = on_c.get(&keys[7]).await.expect("get").expect("a value");
        assert_eq!(&v.bytes[..], b"v2");
        assert!(on_c.get(&keys[11]).await.expect("get").is_none());
    });
    // And in sync again.
    balance(&a);
    for n in [&a, &b, &c] {
        let s = last_balance(&n.name);
        assert_eq!((s.sent, s.digests), (0, 2), "{s}");
    }
}

#[test]
fn copies_of_one_version_with_other_bytes_are_reported_and_left_alone() {
    let dir = temp_dir();
    let a = NodeProc::start(0, &dir.path().join("a"), &FLAGS);
    let seeded = with_seed(&a.name);
    let args: Vec<&str> = seeded.iter().map(String::as_str).collect();
    let mut b = NodeProc::start(0, &dir.path().join("b"), &args);
    for n in [&a, &b] {
        wait_until("a ring of two", || ring_size(&n.name) == 2);
    }
    let rt = runtime();
    rt.block_on(async { only(&a.name).put("twin", "one").await.expect("put") });
    let b_port = b.port;
    b.kill();
    // b's copy: the same version, other bytes (what a bit flip or a bug
    // would leave).
    rt.block_on(async {
        let store = DiskStore::open(dir.path().join("b").join("store"), DiskOptions::default())
            .expect("open b's store");
        let Some(Stamp::Value(v)) = store.version_of(b"twin").await.expect("version") else {
            panic!("b holds no value for twin");
        };
        let held = Stamp::Value(v.clone());
        store.drop_entry(b"twin", &held).await.expect("drop");
        let put = store.put(b"twin", v, "two".into()).await.expect("put");
        assert!(put.applied());
    });
    let b = NodeProc::start(b_port, &dir.path().join("b"), &FLAGS);
    wait_seen_up(&b, &[&a]);
    balance(&a);
    for n in [&a, &b] {
        let s = last_balance(&n.name);
        assert_eq!((s.sent, s.conflicts), (0, 1), "{}: {s}", n.name);
    }
    // Each replica's own copy is as it was: stopped, then read from its
    // store (a node holds its store's lock).
    drop((a, b));
    for (name, want) in [("a", &b"one"[..]), ("b", &b"two"[..])] {
        rt.block_on(async {
            let store =
                DiskStore::open(dir.path().join(name).join("store"), DiskOptions::default())
                    .expect("open the store");
            let Lookup::Value(v) = store.get(b"twin").await.expect("get") else {
                panic!("{name} holds no value for twin");
            };
            assert_eq!(
                &v.into_bytes(1024).await.expect("bytes")[..],
                want,
                "{name}"
            );
        });
    }
}

#[test]
fn a_tombstone_one_replica_collected_first_is_collected_by_the_others_too() {
    let dir = temp_dir();
    let grace = ["--tombstone-grace", "1s"];
    let quiet: Vec<&str> = FLAGS.iter().copied().chain(grace).collect();
    let a = NodeProc::start(0, &dir.path().join("a"), &quiet);
    let mut seeded: Vec<&str> = vec!["-s", &a.name];
    seeded.extend(&quiet);
    let b = NodeProc::start(0, &dir.path().join("b"), &seeded);
    // c runs rounds by itself, a and b only when asked.
    let c_flags = [
        "-s",
        &a.name,
        "--hint-max-bytes",
        "0",
        "--anti-entropy-interval",
        "1s",
        "--tombstone-grace",
        "1s",
    ];
    let c = NodeProc::start(0, &dir.path().join("c"), &c_flags);
    for n in [&a, &b, &c] {
        wait_until("a ring of three", || ring_size(&n.name) == 3);
    }
    let keys: Vec<String> = (0..50).map(|i| format!("gone-{i}")).collect();
    let rt = runtime();
    rt.block_on(async {
        let through_a = only(&a.name);
        for k in &keys {
            through_a.put(k, "v").await.expect("put");
            through_a.delete(k).await.expect("delete");
        }
    });
    // Past the grace, c's own rounds collect its tombstones first.
    wait_until("c to collect its tombstones", || {
        status(&c.name).store.tombstones == 0
    });
    for n in [&a, &b] {
        assert_eq!(status(&n.name).store.tombstones, 50, "{}", n.name);
    }
    // a and b find c holding nothing where they hold a tombstone past the
    // grace: they collect theirs, and take nothing back.
    balance(&a);
    for n in [&a, &b, &c] {
        let s = status(&n.name);
        assert_eq!(
            (s.store.tombstones, s.store.live_keys),
            (0, 0),
            "{}",
            n.name
        );
    }
    balance(&a);
    for n in [&a, &b] {
        let s = last_balance(&n.name);
        assert_eq!((s.sent, s.digests), (0, 2), "in sync again: {s}");
    }
    rt.block_on(async {
        for n in [&a, &b, &c] {
            for k in &keys {
                assert_eq!(only(&n.name).get(k).await.expect("get"), None, "{k}");
            }
        }
    });
}
