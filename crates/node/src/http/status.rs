//! The status page, and the same snapshot as JSON (`/status.json`).
//!
//! Both render one [`NodeStatus`](crate::obs::status::NodeStatus); the page
//! adds a paged table of this node's keys, read one page at a time from the
//! store's cursor listing: never the whole keyspace, never a scan per page.
//! Members link to their own pages; keys link to their download and to the
//! replicas that hold them.

use std::fmt::Write;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::Html;
use mydht_store::{ScanCursor, Stamp, Store};

use super::kv::{PageQuery, key_url};
use crate::node::Node;
use crate::obs::ring::{RingReport, report};
use crate::obs::status::{NodeStatus, snapshot};

/// Keys per page of the table.
const PAGE: usize = 50;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

pub(crate) async fn json<S: Store>(State(node): State<Node<S>>) -> Json<NodeStatus> {
    Json(snapshot(&node))
}

pub(crate) async fn ring<S: Store>(State(node): State<Node<S>>) -> Json<RingReport> {
    Json(report(&node))
}

/// The node, its ring, its members and what is moving.
fn summary(out: &mut String, status: &NodeStatus) {
    let me = escape(&status.node);
    let noun = if status.ring_size == 1 {
        "node"
    } else {
        "nodes"
    };
    let r = &status.replication;
    let _ = write!(
        out,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>mydht {me}</title>\
         <style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;text-align:left}}</style>\
         </head><body><h1>mydht node {me}</h1>\
         <p>The ring consists of {} {noun} (epoch {}, version {}). N={} (configured {}), W={}, R={}.</p>\
         <p>Keys: {} ({} tombstones). Size: {} bytes.</p><h2>Members</h2><ul>",
        status.ring_size,
        status.epoch,
        status.ring_version,
        r.n,
        r.configured,
        r.w,
        r.r,
        status.store.live_keys,
        status.store.tombstones,
        status.store.value_bytes,
    );
    for m in &status.members {
        let name = escape(&m.node);
        let differs = match (m.ring_differs, m.clock_skewed) {
            (true, true) => " (holds another ring version; its clock is off the others')",
            (true, false) => " (holds another ring version)",
            (false, true) => " (its clock is off the others')",
            (false, false) => "",
        };
        let _ = write!(
            out,
            "<li><a href=\"http://{name}/\">{name}</a> {}{differs}</li>",
            m.status
        );
    }
    out.push_str("</ul><h2>Data movement</h2><ul>");
    for p in &status.movement.running {
        let pct = p
            .scanned
            .saturating_mul(100)
            .checked_div(p.total)
            .map_or(100, |x| x.min(100));
        let _ = write!(
            out,
            "<li>{}: {} of about {} keys checked ({pct}%), {} sent ({} bytes), for {:.1} s</li>",
            p.pass, p.scanned, p.total, p.sent, p.bytes, p.seconds,
        );
    }
    if status.movement.running.is_empty() {
        out.push_str("<li>nothing is moving</li>");
    }
    for last in &status.movement.last {
        let _ = write!(out, "<li>last finished: {}</li>", escape(&last.to_string()));
    }
    out.push_str("</ul>");
    if !status.workers.is_empty() {
        out.push_str("<h2>Workers</h2><ul>");
        for w in &status.workers {
            let _ = write!(
                out,
                "<li>{}: {:?} {}{}</li>",
                escape(&w.name),
                w.state,
                escape(&w.status),
                w.last_error
                    .as_ref()
                    .map(|e| format!(" (last error: {})", escape(e)))
                    .unwrap_or_default()
            );
        }
        out.push_str("</ul>");
    }
}

pub(crate) async fn page<S: Store>(
    State(node): State<Node<S>>,
    Query(q): Query<PageQuery>,
) -> Html<String> {
    let status = snapshot(&node);
    let ring = node.cluster.ring();
    let mut out = String::new();
    summary(&mut out, &status);
    out.push_str("<h2>Keys</h2>");
    let after = q
        .after
        .as_deref()
        .and_then(unhex)
        .map(|b| ScanCursor::from_bytes(&b));
    match node.store.list_keys(after.as_ref(), PAGE).await {
        Ok(page) => {
            out.push_str(
                "<table><tr><th>key</th><th>size</th><th>timestamp</th>\
                 <th>position</th><th>replicas</th></tr>",
            );
            for e in &page.entries {
                let name = escape(&String::from_utf8_lossy(&e.key));
                let url = key_url(&e.key);
                let (ts, deleted) = match &e.stamp {
                    Stamp::Value(v) => (v.timestamp, false),
                    Stamp::Tombstone(v) => (v.timestamp, true),
                };
                let replicas: Vec<String> = ring
                    .preference_list(e.position)
                    .iter()
                    .map(|n| {
                        let n = escape(n.as_str());
                        format!("<a href=\"http://{n}/\">{n}</a>")
                    })
                    .collect();
                let key_cell = if deleted {
                    format!("<s>{name}</s> (deleted)")
                } else {
                    format!("<a href=\"{url}\">{name}</a>")
                };
                let _ = write!(
                    out,
                    "<tr><td>{key_cell}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td></tr>",
                    e.size,
                    ts.as_secs_f64(),
                    e.position,
                    replicas.join(", ")
                );
            }
            out.push_str("</table>");
            if let Some(next) = page.next {
                let _ = write!(
                    out,
                    "<p><a href=\"/?after={}\">next {PAGE} keys</a></p>",
                    hex(next.as_bytes())
                );
            }
        }
        Err(e) => {
            let _ = write!(
                out,
                "<p>The key list is unavailable: {}</p>",
                escape(&e.to_string())
            );
        }
    }
    out.push_str("</body></html>");
    Html(out)
}
