//! `mydht client -c ring [--json]`: the agreed ring as one node holds it,
//! read from its `GET /v1/ring` over the node's one port, printed as a
//! table (one member a line) or as the same JSON.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use mydht_node::RingReport;

/// A node that does not answer within this is reported unreachable.
const DEADLINE: Duration = Duration::from_secs(10);

/// Prints node `addr`'s ring; exits 3 when it cannot be read, as other
/// commands do for an unreachable node.
pub async fn run(addr: &str, json: bool) -> ExitCode {
    let body = match tokio::time::timeout(DEADLINE, fetch(addr)).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return fail(addr, &format!("{e:#}")),
        Err(_) => return fail(addr, &format!("no answer within {DEADLINE:?}")),
    };
    let report: RingReport = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return fail(addr, &format!("not a ring report: {e}")),
    };
    if json {
        // The node's JSON, re-encoded from the typed report so the output
        // is exactly one line whatever the node sent.
        match serde_json::to_string(&report) {
            Ok(line) => println!("{line}"),
            Err(e) => return fail(addr, &e.to_string()),
        }
    } else {
        print!("{}", report.table());
    }
    ExitCode::SUCCESS
}

fn fail(addr: &str, why: &str) -> ExitCode {
    eprintln!("mydht: cannot read the ring from {addr}: {why}");
    ExitCode::from(3)
}

async fn fetch(addr: &str) -> anyhow::Result<Bytes> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = hyper::Request::get("/v1/ring")
        .header(hyper::header::HOST, addr)
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!("HTTP {status}: {}", String::from_utf8_lossy(&body).trim());
    }
    Ok(body)
}
