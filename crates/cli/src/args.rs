//! The command line, with the seed's flags.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// mydht: a distributed hash table for strings and files.
#[derive(Parser, Debug)]
#[command(name = "mydht", version, disable_help_flag = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Print help.
    #[arg(long = "help", action = ArgAction::Help, global = true)]
    help: Option<bool>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a node (the seed's mydhtserver.py).
    #[command(disable_help_flag = true)]
    Node(NodeArgs),
    /// Run one command against a node (the seed's mydhtclient.py).
    #[command(disable_help_flag = true)]
    Client(ClientArgs),
    /// Store a value: `mydht put KEY VALUE` or `mydht put KEY -f FILE`.
    #[command(disable_help_flag = true)]
    Put {
        key: String,
        /// The value, as a string.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        value: Option<String>,
        /// Store the contents of this file instead.
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// Print a value, or save it with `-o FILE`.
    #[command(disable_help_flag = true)]
    Get {
        key: String,
        /// Write the value to this file instead of printing it.
        #[arg(short = 'o', long = "outfile")]
        outfile: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a value.
    #[command(disable_help_flag = true)]
    Del {
        key: String,
        #[command(flatten)]
        target: Target,
    },
    /// Print the timestamp of the node's own copy (0.0 if none).
    #[command(disable_help_flag = true)]
    Haskey {
        key: String,
        #[command(flatten)]
        target: Target,
    },
    /// Print the nodes a key lives on.
    #[command(disable_help_flag = true)]
    Whereis {
        key: String,
        #[command(flatten)]
        target: Target,
    },
    /// Load a node like redis-benchmark: ops/s and latency per test.
    #[command(disable_help_flag = true)]
    Bench(BenchArgs),
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(flatten)]
    pub target: Target,
    /// Parallel connections.
    #[arg(short = 'c', default_value_t = 50)]
    pub connections: usize,
    /// Total requests per test.
    #[arg(short = 'n', default_value_t = 100_000)]
    pub requests: usize,
    /// Value size in bytes.
    #[arg(short = 'd', default_value_t = 3)]
    pub size: usize,
    /// Tests to run, comma separated: put, get.
    #[arg(short = 't', default_value = "put,get")]
    pub tests: String,
    /// Use random keys from 0 to KEYSPACE-1 (otherwise one key).
    #[arg(short = 'r')]
    pub keyspace: Option<u64>,
    /// Sequential keys from this number, each request a new key (START,
    /// START+1, ...), in place of random ones: loads an exact key set.
    #[arg(
        long = "sequential-from",
        value_name = "START",
        conflicts_with = "keyspace"
    )]
    pub sequential_from: Option<u64>,
    /// Requests in flight per connection.
    #[arg(short = 'P', default_value_t = 1)]
    pub pipeline: usize,
    /// One CSV line per test: "test","rps","p50_ms","p99_ms","p999_ms".
    #[arg(long = "csv")]
    pub csv: bool,
}

/// The node a command talks to.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// Host of the node to talk to.
    #[arg(short = 'h', long = "host", default_value = "localhost")]
    pub host: String,
    /// Port of the node to talk to.
    #[arg(short = 'p', long = "port", default_value_t = 50140)]
    pub port: u16,
}

impl Target {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// Host name other nodes and clients reach this node by; with the port
    /// it is the node's name in the ring, exactly as given.
    #[arg(short = 'h', long = "host", default_value = "localhost")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(short = 'p', long = "port", default_value_t = 50140)]
    pub port: u16,
    /// Join the ring of this node (host:port).
    #[arg(short = 's', long = "server")]
    pub server: Option<String>,
    /// Replication level N for a new ring (joiners learn the ring's).
    #[arg(short = 'r', long = "replicas", default_value_t = 3)]
    pub replicas: usize,
    /// Where to keep data and membership [default: ./mydht-HOST-PORT].
    #[arg(long = "data-dir")]
    pub data_dir: Option<PathBuf>,
    /// Keep everything in memory, as the seed did: a restart loses all data.
    #[arg(long = "memory")]
    pub memory: bool,
    /// Listen on this address instead of the host name.
    #[arg(long = "bind")]
    pub bind: Option<String>,
    /// When writes reach the disk: `always` (default: fsync before every
    /// acknowledgement, shared by concurrent writers) loses nothing to a
    /// crash or power cut; `periodic[:MS]` may lose the last interval's
    /// acknowledged writes to an OS crash or power cut; `none` may lose
    /// much more.
    #[arg(long = "sync", default_value = "always")]
    pub sync: String,
    /// On a leave, how long (seconds) the node may take to hand its keys to
    /// their next owners before it exits non-zero saying what it did not
    /// hand off.
    #[arg(long = "leave-timeout", default_value_t = 300)]
    pub leave_timeout: u64,
    /// What both SIGINT and SIGTERM do, overriding the defaults: SIGINT
    /// (Ctrl-C) leaves, as the seed did (hand the keys off and leave the
    /// ring for good); SIGTERM (systemd, `docker stop`, `kill`) stops and
    /// stays a member, so a restart on the same data dir rejoins with the
    /// data. `leave` makes both leave, `stop` makes both stop.
    #[arg(long = "on-signal", value_parser = ["leave", "stop"])]
    pub on_signal: Option<String>,
    /// Remove a member the cluster has seen not alive for this long (`90s`,
    /// `10m`), exactly as `-c remove` does: its keys get N live copies
    /// again. Off unless set: a member that was only cut off or paused
    /// comes back refused and must be wiped to rejoin.
    #[arg(long = "remove-after", value_parser = remove_after)]
    pub remove_after: Option<std::time::Duration>,
    /// How long a hint (a write a replica missed, kept by the node that
    /// coordinated it) waits for its replica before it is dropped and left
    /// to anti-entropy (`3h`, `30m`).
    #[arg(long = "hint-max-age", value_parser = humantime::parse_duration, default_value = "3h")]
    pub hint_max_age: std::time::Duration,
    /// The most bytes of hints kept for one replica (a hint holds a key and
    /// a version, not the value); past it, hints are dropped and counted.
    #[arg(long = "hint-max-bytes", default_value_t = 64 << 20)]
    pub hint_max_bytes: u64,
    /// Hints delivered per second at most, once their replica answers.
    #[arg(long = "hint-rate", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub hint_rate: u32,
    /// How often this node compares its ranges with their other replicas
    /// by itself and exchanges what differs (`60s`, `10m`; `off`: only on
    /// `-c balance`).
    #[arg(long = "anti-entropy-interval", default_value = "60s", value_parser = interval_or_off)]
    pub anti_entropy_interval: Interval,
    /// How long a delete's tombstone is kept once every replica holds it
    /// (`24h`, `10d`). A node away longer than this must be purged when it
    /// comes back; a copy it kept of a key deleted meanwhile that no owner
    /// holds is then dropped, never pushed back.
    #[arg(long = "tombstone-grace", value_parser = humantime::parse_duration, default_value = "24h")]
    pub tombstone_grace: std::time::Duration,
}

/// A duration, or `off`.
#[derive(Clone, Copy, Debug)]
pub struct Interval(pub Option<std::time::Duration>);

fn interval_or_off(s: &str) -> Result<Interval, String> {
    if s == "off" {
        return Ok(Interval(None));
    }
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < std::time::Duration::from_secs(1) {
        return Err(format!("{s} is shorter than the 1 s minimum"));
    }
    Ok(Interval(Some(d)))
}

#[derive(Args, Debug)]
pub struct ClientArgs {
    /// put, get, del, haskey, whereis, purge, remove, balance, replicas or
    /// ring.
    #[arg(short = 'c', long = "command")]
    pub command: String,
    /// For ring: print JSON (as `GET /v1/ring` serves it) instead of a table.
    #[arg(long = "json")]
    pub json: bool,
    /// The key (for remove: the node to remove; for replicas: the new N).
    #[arg(short = 'k', long = "key")]
    pub key: Option<String>,
    /// The value to put (the seed spells it `-val`).
    #[arg(long = "value")]
    pub value: Option<String>,
    /// A file whose contents to put.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Where to save a value read with get.
    #[arg(short = 'o', long = "outfile")]
    pub outfile: Option<PathBuf>,
    #[command(flatten)]
    pub target: Target,
}

/// `--remove-after`: a duration of at least 5 s (below that, a member
/// whose suspicion has barely run out would be removed).
fn remove_after(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < std::time::Duration::from_secs(5) {
        return Err(format!("{s} is shorter than the 5 s minimum"));
    }
    Ok(d)
}

/// The seed spells the value flag `-val`, which clap cannot take as a short
/// flag: rewrite that one spelling to `--value` (and `-val=X` to
/// `--value=X`) before parsing.
pub fn rewrite_seed_flags(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter()
        .map(|a| match a.to_str() {
            Some("-val") => OsString::from("--value"),
            Some(s) if s.starts_with("-val=") => OsString::from(format!("--value={}", &s[5..])),
            _ => a,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(rewrite_seed_flags(args.iter().map(OsString::from)))
    }

    #[test]
    fn the_seed_client_flags_parse() {
        let cli = parse(&[
            "mydht", "client", "-c", "put", "-k", "mykey", "-val", "myvalue",
        ])
        .expect("parses");
        let Command::Client(c) = cli.command else {
            panic!("not a client command")
        };
        assert_eq!(c.command, "put");
        assert_eq!(c.key.as_deref(), Some("mykey"));
        assert_eq!(c.value.as_deref(), Some("myvalue"));
        assert_eq!(c.target.addr(), "localhost:50140");
    }

    #[test]
    fn dash_h_is_the_host_and_help_is_long_only() {
        let cli = parse(&[
            "mydht", "node", "-h", "10.0.0.5", "-p", "50141", "-s", "a:1",
        ])
        .expect("parses");
        let Command::Node(n) = cli.command else {
            panic!("not a node command")
        };
        assert_eq!((n.host.as_str(), n.port), ("10.0.0.5", 50141));
        assert_eq!(n.server.as_deref(), Some("a:1"));
        let help = parse(&["mydht", "node", "--help"]).expect_err("help exits");
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
    }

    #[test]
    fn bad_usage_is_a_clap_error() {
        let err = parse(&["mydht", "put"]).expect_err("key missing");
        assert_eq!(err.exit_code(), 2);
    }
}
