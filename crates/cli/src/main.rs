//! The `mydht` command: `mydht node` runs a node, `mydht client` talks to a
//! cluster.
//!
//! Neither exists yet: the node and the client arrive with the
//! working-cluster issue. Until then the command says so and exits with the
//! usage status, rather than pretending to run.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "mydht {}: `mydht node` and `mydht client` are not built yet; see README.md",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(2)
}
