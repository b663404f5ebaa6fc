//! The `mydht` command: `mydht node` runs a node, `mydht client` (or the
//! plain subcommands `put`, `get`, `del`, `haskey`, `whereis`) talks to a
//! cluster, and `mydht bench` loads it.
//!
//! It accepts the seed's flags and prints the seed's answers, so the seed
//! README's walkthrough works with `python mydhtserver.py` replaced by
//! `mydht node` and `python mydhtclient.py` by `mydht client`. As in the
//! seed, `-h` is the host, so help is `--help` only, and the seed's `-val`
//! spelling is rewritten to `--value` before parsing. Errors are one line on
//! stderr; exit codes follow DESIGN.md's outcome table. All the work is done
//! by `mydht-node` and `mydht-client`; this is a thin layer over them.

mod args;
mod bench;
mod client;
mod node;
mod ring;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse_from(args::rewrite_seed_flags(std::env::args_os()));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mydht: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Node(args) => node::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            other => client::run(other).await,
        }
    })
}
