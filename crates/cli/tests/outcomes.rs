//! Every row of DESIGN.md's CLI outcome table that this release serves,
//! through the real binary: stdout, stderr and exit code.

mod common;

use common::*;

#[test]
fn data_commands_print_the_seed_answers() {
    let dir = temp_dir();
    let node = NodeProc::start(0, &dir.path().join("n"), &["--memory"]);
    let p = node.port_arg();

    // put stored: `PUT OK <key>`, exit 0 (both spellings).
    let o = client(&p, &["-c", "put", "-k", "k1", "-val", "v1"]);
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("PUT OK k1\n", Some(0))
    );
    let o = mydht(&["put", "k2", "v2", "-h", "127.0.0.1", "-p", &p]);
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("PUT OK k2\n", Some(0))
    );

    // get found: the value, exit 0.
    let o = mydht(&["get", "k2", "-h", "127.0.0.1", "-p", &p]);
    assert_eq!((stdout(&o).as_str(), o.status.code()), ("v2", Some(0)));

    // get with -o: nothing printed, the file holds the value.
    let out = dir.path().join("k1.out");
    let o = client(
        &p,
        &["-c", "get", "-k", "k1", "-o", out.to_str().expect("utf-8")],
    );
    assert_eq!((stdout(&o).as_str(), o.status.code()), ("", Some(0)));
    assert_eq!(std::fs::read(&out).expect("written"), b"v1");

    // haskey: seconds with a fraction; 0.0 when absent.
    let o = client(&p, &["-c", "haskey", "-k", "k1"]);
    let secs: f64 = stdout(&o).trim().parse().expect("a number");
    assert!(secs > 1.7e9, "{secs}");
    assert_eq!(stdout(&o).trim().split('.').nth(1).map(str::len), Some(2));
    let o = client(&p, &["-c", "haskey", "-k", "nope"]);
    assert_eq!((stdout(&o).as_str(), o.status.code()), ("0.0\n", Some(0)));

    // whereis: the preference list.
    let o = client(&p, &["-c", "whereis", "-k", "k1"]);
    assert_eq!(stdout(&o), format!("{}\n", node.name));

    // del: `DEL OK <key>`, also of a missing key.
    let o = client(&p, &["-c", "del", "-k", "k1"]);
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("DEL OK k1\n", Some(0))
    );
    let o = client(&p, &["-c", "del", "-k", "never"]);
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("DEL OK never\n", Some(0))
    );

    // get of a deleted or missing key: ERR_VALUE_NOT_FOUND, exit 1.
    for key in ["k1", "never"] {
        let o = client(&p, &["-c", "get", "-k", key]);
        assert_eq!(stdout(&o), "");
        assert_eq!(stderr(&o), "ERR_VALUE_NOT_FOUND\n");
        assert_eq!(o.status.code(), Some(1));
    }
    let o = client(&p, &["-c", "haskey", "-k", "k1"]);
    assert_eq!(stdout(&o), "0.0\n", "a deleted key has no timestamp");
}

#[test]
fn no_reachable_node_is_err_unreachable() {
    // A port nothing listens on: bind one, note it, close it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port().to_string()
    };
    let o = client(&port, &["-c", "get", "-k", "k"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(stderr(&o), format!("ERR_UNREACHABLE: 127.0.0.1:{port}\n"));
}

#[test]
fn bad_usage_is_clap_exit_2() {
    let o = mydht(&["client", "-c", "put"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = mydht(&["client", "-k", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--command"), "{}", stderr(&o));
    let o = mydht(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!stderr(&o).contains("panicked"));
}

#[test]
fn too_few_replicas_is_err_quorum_exit_3() {
    let dir = temp_dir();
    let a = NodeProc::start(0, &dir.path().join("a"), &["--memory"]);
    let mut b = NodeProc::start(0, &dir.path().join("b"), &["--memory", "-s", &a.name]);
    let mut c = NodeProc::start(0, &dir.path().join("c"), &["--memory", "-s", &a.name]);
    let p = a.port_arg();
    wait_until("a to list 3 members", || ring_size(&a.name) == 3);
    let o = client(&p, &["-c", "put", "-k", "q", "-val", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    b.kill();
    c.kill();
    let o = client(&p, &["-c", "put", "-k", "q", "-val", "2"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        stderr(&o),
        "ERR_QUORUM: 1 of 2 replicas acknowledged; the write may be partly applied\n"
    );
}

#[test]
fn startup_errors_are_one_line() {
    let dir = temp_dir();
    let a = NodeProc::start(0, &dir.path().join("a"), &["--memory"]);
    // The port is taken.
    let taken = NodeProc::spawn(&["node", "-h", "127.0.0.1", "-p", &a.port_arg(), "--memory"]);
    let err = taken.err().expect("a second node on the same port fails");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("mydht: cannot listen on 127.0.0.1:"),
        "{err}"
    );
    // The join target is unreachable.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port().to_string()
    };
    let seed = format!("127.0.0.1:{port}");
    let lonely = NodeProc::spawn(&[
        "node",
        "-h",
        "127.0.0.1",
        "-p",
        "0",
        "--memory",
        "-s",
        &seed,
    ]);
    let err = lonely.err().expect("joining nobody fails");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("mydht: cannot join through {seed}")),
        "{err}"
    );
}

#[test]
fn bench_prints_one_csv_line_per_test() {
    let dir = temp_dir();
    let node = NodeProc::start(0, &dir.path().join("n"), &["--memory"]);
    let o = mydht(&[
        "bench",
        "-h",
        "127.0.0.1",
        "-p",
        &node.port_arg(),
        "-c",
        "4",
        "-n",
        "400",
        "-d",
        "100",
        "-r",
        "50",
        "-P",
        "2",
        "-t",
        "put,get",
        "--csv",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "\"test\",\"rps\",\"p50_ms\",\"p99_ms\",\"p999_ms\""
    );
    assert_eq!(lines.len(), 3, "{out}");
    for (line, test) in lines[1..].iter().zip(["PUT", "GET"]) {
        let fields: Vec<&str> = line.split(',').map(|f| f.trim_matches('"')).collect();
        assert_eq!(fields[0], test);
        let numbers: Vec<f64> = fields[1..]
            .iter()
            .map(|f| f.parse().expect("a number"))
            .collect();
        assert!(numbers[0] > 0.0, "{line}");
        assert!(
            numbers[1] <= numbers[2] && numbers[2] <= numbers[3],
            "{line}"
        );
    }
    // The keys it wrote are there.
    let o = mydht(&[
        "haskey",
        "key:000000000007",
        "-h",
        "127.0.0.1",
        "-p",
        &node.port_arg(),
    ]);
    assert!(o.status.success());
}
