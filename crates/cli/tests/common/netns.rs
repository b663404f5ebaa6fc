//! Real partitions for the fault suite: each node in a network namespace
//! of its own, joined by a veth pair to a bridge this test makes, so links
//! can go down, connections be broken (`ss -K`) and traffic be dropped by
//! nftables inside one namespace, while the test process reaches every
//! node over the bridge. Everything made is removed when the [`Net`] is
//! dropped, also when the test fails. Needs root, iproute2 and nftables;
//! under CI (`CI=true`) their absence fails the test instead of skipping.

#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// The port every node listens on inside its namespace.
pub const PORT: u16 = 7000;

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Why this machine cannot run the suite, if it cannot.
pub fn unavailable() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"));
    if !root {
        return Some("not running as root".into());
    }
    for (tool, args) in [
        ("ip", &["-V"][..]),
        ("nft", &["--version"][..]),
        ("ss", &["-V"][..]),
    ] {
        if run(tool, args).is_err() {
            return Some(format!("{tool} is missing (iproute2, nftables)"));
        }
    }
    None
}

/// Skips (or, under CI, fails) when the suite cannot run here.
pub fn present() -> bool {
    let Some(why) = unavailable() else {
        return true;
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the fault suite cannot run under CI: {why}"
    );
    eprintln!("SKIPPED fault suite: {why}");
    false
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Packet loss one node suffers.
#[derive(Clone, Copy, Debug)]
pub enum Loss {
    /// Everything it sends is dropped; what it receives arrives.
    Outbound,
    /// One packet in this many, each way, at random.
    OneIn(u32),
}

/// A bridge and one namespace per node.
pub struct Net {
    id: u32,
    count: usize,
}

impl Net {
    /// `count` namespaces on a bridge of their own.
    pub fn new(count: usize) -> Self {
        // Distinct per process and per net, so parallel runs do not meet.
        let id = (std::process::id() % 50) * 4 + NEXT.fetch_add(1, Ordering::Relaxed) % 4 + 20;
        let net = Net { id, count };
        let br = net.bridge();
        net.must(&["link", "add", &br, "type", "bridge"]);
        net.must(&[
            "addr",
            "add",
            &format!("{}.254/24", net.prefix()),
            "dev",
            &br,
        ]);
        net.must(&["link", "set", &br, "up"]);
        for i in 0..count {
            let ns = net.ns(i);
            let (host, peer) = (format!("mdv{}n{i}", net.id), format!("mdp{}n{i}", net.id));
            net.must(&["netns", "add", &ns]);
            net.must(&["-n", &ns, "link", "set", "lo", "up"]);
            net.must(&["link", "add", &host, "type", "veth", "peer", "name", &peer]);
            net.must(&["link", "set", &peer, "netns", &ns]);
            net.must(&["-n", &ns, "link", "set", &peer, "name", "eth0"]);
            net.must(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", net.ip(i)),
                "dev",
                "eth0",
            ]);
            net.must(&["-n", &ns, "link", "set", "eth0", "up"]);
            net.must(&["link", "set", &host, "master", &br]);
            net.must(&["link", "set", &host, "up"]);
        }
        net
    }

    fn must(&self, args: &[&str]) {
        if let Err(e) = run("ip", args) {
            panic!("setting up the test network: {e}");
        }
    }

    fn prefix(&self) -> String {
        format!("10.77.{}", self.id)
    }

    fn bridge(&self) -> String {
        format!("mdb{}", self.id)
    }

    /// Node `i`'s namespace.
    pub fn ns(&self, i: usize) -> String {
        format!("mdn{}n{i}", self.id)
    }

    /// Node `i`'s address.
    pub fn ip(&self, i: usize) -> String {
        format!("{}.{}", self.prefix(), i + 1)
    }

    /// Node `i`'s name (`ip:port`).
    pub fn name(&self, i: usize) -> String {
        format!("{}:{PORT}", self.ip(i))
    }

    fn in_ns(&self, i: usize, program: &str, args: &[&str]) -> Result<(), String> {
        let ns = self.ns(i);
        let mut all = vec!["netns", "exec", ns.as_str(), program];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Breaks every TCP connection node `i` has (both ends see it reset).
    pub fn break_connections(&self, i: usize) {
        let _ = self.in_ns(i, "ss", &["-K", "-t", "state", "established"]);
    }

    /// Takes node `i`'s link down and breaks its connections.
    pub fn cut(&self, i: usize) {
        self.must(&["-n", &self.ns(i), "link", "set", "eth0", "down"]);
        self.break_connections(i);
    }

    /// Brings node `i`'s link back.
    pub fn heal(&self, i: usize) {
        self.must(&["-n", &self.ns(i), "link", "set", "eth0", "up"]);
    }

    /// Drops all traffic between the nodes of `a` and those of `b` (both
    /// ways, in each node's own namespace), and breaks their connections.
    pub fn split(&self, a: &[usize], b: &[usize]) {
        for (side, other) in [(a, b), (b, a)] {
            let addrs: Vec<String> = other.iter().map(|&j| self.ip(j)).collect();
            let set = addrs.join(", ");
            for &i in side {
                let commands = [
                    "add table inet mydhtsplit".to_string(),
                    "add chain inet mydhtsplit out { type filter hook output priority 0; }"
                        .to_string(),
                    format!("add rule inet mydhtsplit out ip daddr {{ {set} }} drop"),
                    "add chain inet mydhtsplit in { type filter hook input priority 0; }"
                        .to_string(),
                    format!("add rule inet mydhtsplit in ip saddr {{ {set} }} drop"),
                ];
                for c in &commands {
                    if let Err(e) = self.in_ns(i, "nft", &[c]) {
                        panic!("splitting: {e}");
                    }
                }
            }
        }
        for i in a.iter().chain(b) {
            self.break_connections(*i);
        }
    }

    /// Node `i` drops every packet it sends (`outbound`) or, with
    /// `one_in`, one packet in that many each way, at random.
    pub fn lose(&self, i: usize, loss: Loss) {
        let rules: Vec<String> = match loss {
            Loss::Outbound => vec!["add rule inet mydhtsplit out oifname eth0 drop".into()],
            Loss::OneIn(k) => vec![
                format!("add rule inet mydhtsplit out numgen random mod {k} 0 drop"),
                format!("add rule inet mydhtsplit in numgen random mod {k} 0 drop"),
            ],
        };
        let commands = [
            "add table inet mydhtsplit".to_string(),
            "add chain inet mydhtsplit out { type filter hook output priority 0; }".to_string(),
            "add chain inet mydhtsplit in { type filter hook input priority 0; }".to_string(),
        ];
        for c in commands.iter().chain(&rules) {
            if let Err(e) = self.in_ns(i, "nft", &[c]) {
                panic!("adding loss: {e}");
            }
        }
    }

    /// Removes every split and loss.
    pub fn unsplit(&self) {
        for i in 0..self.count {
            let _ = self.in_ns(i, "nft", &["delete", "table", "inet", "mydhtsplit"]);
        }
    }

    /// Starts `mydht node` as node `i` in its namespace, with its data in
    /// `dir` and its log in `dir/node.log`; waits for its "listening" line.
    pub fn start(&self, i: usize, dir: &Path, extra: &[&str]) -> Child {
        std::fs::create_dir_all(dir).expect("data dir");
        let log = File::create(dir.join("node.log")).expect("log file");
        let (ip, port) = (self.ip(i), PORT.to_string());
        let ns = self.ns(i);
        let data = dir.join("data");
        let mut args: Vec<&str> = vec![
            "netns",
            "exec",
            &ns,
            super::BIN,
            "node",
            "-h",
            &ip,
            "-p",
            &port,
            "--data-dir",
            data.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra);
        let mut child = Command::new("ip")
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("ip netns exec runs");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.starts_with("mydht node ") => child,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(dir.join("node.log")).unwrap_or_default();
                panic!("node {i} did not start ({other:?}): {log}");
            }
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for i in 0..self.count {
            let _ = run("ip", &["netns", "del", &self.ns(i)]);
        }
        let _ = run("ip", &["link", "del", &self.bridge()]);
    }
}
