//! Crash semantics with real processes: a node killed with SIGKILL and
//! restarted on its data directory serves what it acknowledged and rejoins
//! its ring without `-s`; SIGINT stops a node cleanly.

mod common;

use common::*;

#[test]
fn a_killed_node_restarts_with_its_data_and_its_ring() {
    let dir = temp_dir();
    let a = NodeProc::start(0, &dir.path().join("a"), &["-r", "2"]);
    let mut b = NodeProc::start(0, &dir.path().join("b"), &["-s", &a.name]);
    wait_until("a to list 2 members", || ring_size(&a.name) == 2);
    // N = 2, W = 2: every acknowledged put is on b's disk too.
    let keys: Vec<String> = (0..20).map(|i| format!("durable-{i}")).collect();
    for k in &keys {
        let o = client(
            &a.port_arg(),
            &["-c", "put", "-k", k, "-val", &format!("value of {k}")],
        );
        assert_eq!(stdout(&o), format!("PUT OK {k}\n"), "{}", stderr(&o));
    }
    let port = b.port_arg();
    b.kill();

    // Same port and data directory, no -s.
    let b = NodeProc::start(port.parse().expect("port"), &dir.path().join("b"), &[]);
    let rejoined = status(&b.name);
    assert_eq!(rejoined.ring_size, 2, "rejoined: {rejoined:?}");
    for k in &keys {
        // haskey is b's own copy: acknowledged, so there.
        let o = client(&port, &["-c", "haskey", "-k", k]);
        assert_ne!(stdout(&o), "0.0\n", "{k} lost on b");
        let o = client(&port, &["-c", "get", "-k", k]);
        assert_eq!(stdout(&o), format!("value of {k}"));
    }
    // And the ring works both ways again.
    let o = client(&port, &["-c", "put", "-k", "after", "-val", "x"]);
    assert_eq!(stdout(&o), "PUT OK after\n", "{}", stderr(&o));
    let o = client(&a.port_arg(), &["-c", "get", "-k", "after"]);
    assert_eq!(stdout(&o), "x");

    // Restarting on the data directory *with* -s is harmless too.
    let before = status(&a.name).epoch;
    let mut b = b;
    b.kill();
    let b = NodeProc::start(
        port.parse().expect("port"),
        &dir.path().join("b"),
        &["-s", &a.name],
    );
    assert_eq!(ring_size(&b.name), 2);
    assert_eq!(status(&a.name).epoch, before, "no membership change");
    let o = client(&port, &["-c", "get", "-k", "durable-3"]);
    assert_eq!(stdout(&o), "value of durable-3");
}

#[test]
fn sigint_stops_a_node_cleanly() {
    let dir = temp_dir();
    let mut a = NodeProc::start(0, &dir.path().join("a"), &[]);
    let o = client(&a.port_arg(), &["-c", "put", "-k", "k", "-val", "v"]);
    assert!(o.status.success());
    let status = a.interrupt();
    assert!(status.success(), "{status:?}");
}

#[test]
fn on_signal_stop_keeps_the_node_a_member_so_a_whole_cluster_can_restart() {
    let dir = temp_dir();
    let mut a = NodeProc::start(0, &dir.path().join("a"), &["--on-signal", "stop"]);
    let mut b = NodeProc::start(
        0,
        &dir.path().join("b"),
        &["-s", &a.name, "--on-signal", "stop"],
    );
    wait_until("2 members", || ring_size(&a.name) == 2);
    let o = client(&a.port_arg(), &["-c", "put", "-k", "kept", "-val", "v"]);
    assert_eq!(stdout(&o), "PUT OK kept\n", "{}", stderr(&o));
    // Stop the whole cluster with SIGINT: nobody leaves.
    let (pa, pb) = (a.port, b.port);
    assert!(a.interrupt().success());
    assert!(b.interrupt().success());
    // Both come back on their data dirs, still a ring of two, data intact.
    let a = NodeProc::start(pa, &dir.path().join("a"), &[]);
    let b = NodeProc::start(pb, &dir.path().join("b"), &[]);
    assert_eq!(ring_size(&a.name), 2);
    for node in [&a, &b] {
        let o = client(&node.port_arg(), &["-c", "haskey", "-k", "kept"]);
        assert_ne!(stdout(&o), "0.0\n", "lost on {}", node.name);
    }
}
