//! `mydht client` and the plain data subcommands: one call, the seed's
//! output, DESIGN.md's exit codes.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use mydht_client::{Client, ClientError, ReadOptions, WriteOptions};
use mydht_proto::ErrorReply;

use crate::args::{Command, Target};

/// Values longer than this are not printed to a terminal (the seed's rule).
const TERMINAL_MAX: usize = 1024;

enum Op {
    Put { key: String, value: Source },
    Get { key: String, out: Option<PathBuf> },
    Del { key: String },
    HasKey { key: String },
    Whereis { key: String },
    Purge,
    Balance,
    Remove { node: mydht_client::NodeId },
    Replicas { n: u8 },
    Ring { json: bool },
}

enum Source {
    Text(String),
    File(PathBuf),
}

/// Usage errors exit 2, like clap's.
fn usage(msg: &str) -> ExitCode {
    eprintln!("mydht: {msg}");
    ExitCode::from(2)
}

pub async fn run(command: Command) -> ExitCode {
    let (op, target) = match parse(command) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let client = match Client::new([target.addr()]) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    match op {
        Op::Put { key, value } => {
            let result = match value {
                Source::Text(t) => client.put(&key, Bytes::from(t)).await,
                Source::File(path) => {
                    let len = std::fs::metadata(&path).map(|m| m.len()).ok();
                    let bar = progress_bar(len);
                    let result = client
                        .put_file(&key, &path, WriteOptions::default(), &|n| {
                            bar.set_position(n)
                        })
                        .await;
                    bar.finish_and_clear();
                    result
                }
            };
            match result {
                Ok(_) => say(&format!("PUT OK {key}")),
                Err(e) => fail(&e),
            }
        }
        Op::Get {
            key,
            out: Some(path),
        } => {
            let bar = progress_bar(None);
            let result = client
                .get_to_file(&key, &path, ReadOptions::default(), &|n| {
                    bar.set_position(n)
                })
                .await;
            bar.finish_and_clear();
            match result {
                Ok(Some(_)) => ExitCode::SUCCESS,
                Ok(None) => fail(&ClientError::Remote(ErrorReply::NotFound)),
                Err(e) => fail(&e),
            }
        }
        Op::Get { key, out: None } if !std::io::stdout().is_terminal() => {
            // Into a pipe or file: byte for byte, streamed.
            let mut stdout = tokio::io::stdout();
            match client
                .get_to_writer(&key, &mut stdout, ReadOptions::default(), &|_| {})
                .await
            {
                Ok(Some(_)) => ExitCode::SUCCESS,
                Ok(None) => fail(&ClientError::Remote(ErrorReply::NotFound)),
                Err(e) => fail(&e),
            }
        }
        Op::Get { key, out: None } => match client.get(&key).await {
            Ok(Some(v)) => write_value(&v.bytes),
            Ok(None) => fail(&ClientError::Remote(ErrorReply::NotFound)),
            Err(e) => fail(&e),
        },
        Op::Del { key } => match client.delete(&key).await {
            Ok(_) => say(&format!("DEL OK {key}")),
            Err(e) => fail(&e),
        },
        Op::HasKey { key } => match client.haskey(&key).await {
            Ok(Some(ts)) => say(&format!("{:.2}", ts.as_secs_f64())),
            Ok(None) => say("0.0"),
            Err(e) => fail(&e),
        },
        Op::Whereis { key } => match client.whereis(&key).await {
            Ok(nodes) => {
                let names: Vec<&str> = nodes.iter().map(|n| n.as_str()).collect();
                say(&names.join(", "))
            }
            Err(e) => fail(&e),
        },
        Op::Purge => admin("PURGE", client.purge().await),
        Op::Balance => admin("BALANCE", client.balance().await),
        Op::Remove { node } => admin("REMOVE", client.remove(&node).await),
        Op::Replicas { n } => admin("REPLICAS", client.set_replicas(n).await),
        // Over HTTP on the same port: the ring report is the node's view,
        // liveness included, not a data-path call.
        Op::Ring { json } => crate::ring::run(&target.addr(), json).await,
    }
}

/// The seed's answer to an admin command.
fn admin(what: &str, outcome: Result<(), ClientError>) -> ExitCode {
    match outcome {
        Ok(()) => say(&format!("{what} ok")),
        Err(e) => fail(&e),
    }
}

fn parse(command: Command) -> Result<(Op, Target), ExitCode> {
    Ok(match command {
        Command::Client(c) => {
            let key = |what: &str| {
                c.key
                    .clone()
                    .ok_or_else(|| usage(&format!("{what} needs a key (-k KEY)")))
            };
            let op = match c.command.as_str() {
                "put" => {
                    let value = match (c.value.clone(), c.file.clone()) {
                        (Some(v), None) => Source::Text(v),
                        (None, Some(f)) => Source::File(f),
                        _ => return Err(usage("put needs exactly one of -val VALUE or -f FILE")),
                    };
                    Op::Put {
                        key: key("put")?,
                        value,
                    }
                }
                "get" => Op::Get {
                    key: key("get")?,
                    out: c.outfile.clone(),
                },
                "del" => Op::Del { key: key("del")? },
                "haskey" => Op::HasKey {
                    key: key("haskey")?,
                },
                "whereis" => Op::Whereis {
                    key: key("whereis")?,
                },
                "purge" => Op::Purge,
                "ring" => Op::Ring { json: c.json },
                "balance" => Op::Balance,
                "remove" => {
                    let name = key("remove")?;
                    match mydht_client::NodeId::new(name) {
                        Ok(node) => Op::Remove { node },
                        Err(e) => return Err(usage(&format!("remove -k host:port: {e}"))),
                    }
                }
                "replicas" => {
                    let n = key("replicas")?;
                    match n.parse::<u8>() {
                        Ok(n) if n >= 1 => Op::Replicas { n },
                        _ => {
                            return Err(usage(&format!(
                                "replicas -k N: {n:?} is not a number from 1 to 255"
                            )));
                        }
                    }
                }
                "leave" | "join" | "addnode" => {
                    return Err(usage(&format!(
                        "{} is internal: nodes send it to each other",
                        c.command
                    )));
                }
                other => return Err(usage(&format!("unknown command {other:?}"))),
            };
            (op, c.target)
        }
        Command::Put {
            key,
            value,
            file,
            target,
        } => {
            let value = match (value, file) {
                (Some(v), None) => Source::Text(v),
                (None, Some(f)) => Source::File(f),
                _ => return Err(usage("put needs exactly one of VALUE or -f FILE")),
            };
            (Op::Put { key, value }, target)
        }
        Command::Get {
            key,
            outfile,
            target,
        } => (Op::Get { key, out: outfile }, target),
        Command::Del { key, target } => (Op::Del { key }, target),
        Command::Haskey { key, target } => (Op::HasKey { key }, target),
        Command::Whereis { key, target } => (Op::Whereis { key }, target),
        Command::Node(_) | Command::Bench(_) => return Err(usage("not a client command")),
    })
}

fn say(line: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// A value for a terminal: printed with a newline, as the seed did, unless
/// it is too long to read there.
fn write_value(bytes: &[u8]) -> ExitCode {
    if bytes.len() > TERMINAL_MAX {
        eprintln!(
            "mydht: the value is {} bytes; use -o FILE to save it",
            bytes.len()
        );
        return ExitCode::SUCCESS;
    }
    let mut out = std::io::stdout().lock();
    let newline = !bytes.ends_with(b"\n");
    let written = out
        .write_all(bytes)
        .and_then(|()| {
            if newline {
                out.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| out.flush());
    if written.is_err() {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// A progress bar with rate and ETA on a terminal; hidden elsewhere.
fn progress_bar(len: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    let style = ProgressStyle::with_template(
        "{bytes}/{total_bytes} {wide_bar} {binary_bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// One line on stderr, and DESIGN.md's exit code.
fn fail(e: &ClientError) -> ExitCode {
    eprintln!("{e}");
    let code = match e {
        ClientError::Remote(ErrorReply::NotFound) => 1,
        ClientError::Remote(
            ErrorReply::Quorum { .. }
            | ErrorReply::Unavailable { .. }
            | ErrorReply::Internal { .. }
            | ErrorReply::ClockAhead { .. }
            | ErrorReply::FutureVersion { .. },
        )
        | ClientError::Unreachable { .. }
        | ClientError::Unexpected { .. } => 3,
        _ => 2,
    };
    ExitCode::from(code)
}
