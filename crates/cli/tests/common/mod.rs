//! Runs the real `mydht` binary: nodes as child processes (killed when
//! dropped) on 127.0.0.1 with ports the system picks, and one-shot client
//! commands.

#![allow(dead_code)]

pub mod netns;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mydht_client::{Client, ClientOptions};

pub const BIN: &str = env!("CARGO_BIN_EXE_mydht");
const START_DEADLINE: Duration = Duration::from_secs(20);

/// A node process; killed (SIGKILL) when dropped.
pub struct NodeProc {
    pub child: Child,
    /// The advertised name, `127.0.0.1:PORT`.
    pub name: String,
    pub port: u16,
}

impl NodeProc {
    /// Starts `mydht node -h 127.0.0.1 -p PORT --data-dir DIR EXTRA...` and
    /// waits for its "listening" line.
    pub fn start(port: u16, data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_env(port, data_dir, extra, &[])
    }

    /// Like [`start`](Self::start), with `env` added to the node's
    /// environment.
    pub fn start_env(port: u16, data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let port_arg = port.to_string();
        let mut args = vec![
            "node",
            "-h",
            "127.0.0.1",
            "-p",
            &port_arg,
            "--data-dir",
            data_dir.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra);
        Self::spawn_env(&args, env).unwrap_or_else(|e| panic!("node did not start: {e}"))
    }

    /// Spawns `mydht ARGS` as a node; `Err` with its stderr if it exits or
    /// stays silent past the deadline.
    pub fn spawn(args: &[&str]) -> Result<Self, String> {
        Self::spawn_env(args, &[])
    }

    fn spawn_env(args: &[&str], env: &[(&str, &str)]) -> Result<Self, String> {
        let mut child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(START_DEADLINE) {
            Ok(line) if line.starts_with("mydht node ") => {
                let name = line
                    .split_whitespace()
                    .nth(2)
                    .ok_or("no name in the line")?
                    .to_string();
                let port = name
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or("no port in the name")?;
                Ok(Self { child, name, port })
            }
            _ => {
                let _ = child.kill();
                let out = child.wait_with_output().map_err(|e| e.to_string())?;
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        }
    }

    pub fn port_arg(&self) -> String {
        self.port.to_string()
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGINT, then the exit status within a deadline.
    pub fn interrupt(&mut self) -> std::process::ExitStatus {
        self.signal("-INT")
    }

    /// Sends `signal` (`-TERM`), then the exit status within a deadline.
    pub fn signal(&mut self, signal: &str) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s;
            }
            assert!(Instant::now() < deadline, "node did not stop on {signal}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `mydht ARGS` to completion.
pub fn mydht(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("mydht runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `mydht client -h 127.0.0.1 -p PORT ARGS...`
pub fn client(port: &str, args: &[&str]) -> Output {
    let mut all = vec!["client", "-h", "127.0.0.1", "-p", port];
    all.extend_from_slice(args);
    mydht(&all)
}

/// The replicas `mydht client -c whereis` prints for `key`, asked of `node`.
pub fn whereis(node: &NodeProc, key: &str) -> Vec<String> {
    let out = client(&node.port_arg(), &["-c", "whereis", "-k", key]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .trim()
        .split(", ")
        .map(str::to_string)
        .collect()
}

/// The node's status, or `None` when it does not answer in time.
pub fn status_of(name: &str) -> Option<mydht_node::NodeStatus> {
    let mut s = TcpStream::connect_timeout(&name.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(
        s,
        "GET /status.json HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut page = String::new();
    s.read_to_string(&mut page).ok()?;
    let body = page.split_once("\r\n\r\n")?.1;
    serde_json::from_str(body).ok()
}

/// The node's status, as `/status.json` serves it.
pub fn status(name: &str) -> mydht_node::NodeStatus {
    let page = get_path(name, "/status.json");
    let body = page.split_once("\r\n\r\n").expect("a body").1;
    serde_json::from_str(body).unwrap_or_else(|e| panic!("status JSON: {e}: {body}"))
}

/// Members of the node's ring that are not removed.
pub fn ring_size(name: &str) -> usize {
    status(name).ring_size
}

/// The body of `GET /` from a node, over a plain socket.
pub fn status_page(name: &str) -> String {
    get_path(name, "/")
}

/// The whole response to `GET path` from a node, over a plain socket.
fn get_path(name: &str, path: &str) -> String {
    let mut s = TcpStream::connect(name).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut page = String::new();
    s.read_to_string(&mut page).expect("response");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    page
}

/// Polls `check` until it holds or the deadline passes.
pub fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

pub fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// Deterministic pseudo-random bytes (xorshift), so a failure reproduces.
pub fn random_bytes(len: usize, mut x: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A client of `node` alone, one attempt: each node's own answer.
pub fn only(node: &str) -> Client {
    let opts = ClientOptions {
        attempts: 1,
        learn_members: false,
        ..ClientOptions::default()
    };
    Client::with_options([node.to_string()], opts).expect("client")
}

/// Checks that every key has a live copy on each of its N owners (as
/// `seed` places it), polling until `deadline`; none may be on `gone`.
pub fn wait_for_n_copies(seed: &str, gone: &str, keys: &[String], deadline: Duration) {
    let rt = runtime();
    rt.block_on(async {
        let c = only(seed);
        let mut clients: HashMap<String, Client> = HashMap::new();
        let until = Instant::now() + deadline;
        let mut pending: Vec<String> = keys.to_vec();
        while !pending.is_empty() {
            let mut still = Vec::new();
            for k in &pending {
                let owners = c.whereis(k).await.expect("whereis");
                assert_eq!(owners.len(), 3, "{k}: {owners:?}");
                assert!(!owners.iter().any(|o| o.as_str() == gone), "{k}");
                let mut live = 0;
                for o in &owners {
                    let oc = clients
                        .entry(o.to_string())
                        .or_insert_with(|| only(o.as_str()));
                    if oc.haskey(k).await.expect("haskey").is_some() {
                        live += 1;
                    }
                }
                if live < 3 {
                    still.push(k.clone());
                }
            }
            pending = still;
            assert!(
                pending.is_empty() || Instant::now() < until,
                "{} keys still short of 3 copies, e.g. {}",
                pending.len(),
                pending[0]
            );
        }
    });
}
