//! The status page: the node, its ring and a paged table of its keys.
//!
//! The key table reads one page at a time from the store's cursor listing:
//! never the whole keyspace, never a scan per page. Members link to their
//! own pages; keys link to their download and to the replicas that hold
//! them.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Html;
use mydht_ring::{MemberState, MemberStatus};
use mydht_store::{ScanCursor, Stamp, Store};

use super::kv::{PageQuery, key_url};
use crate::shared::Shared;

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

pub(crate) async fn page<S: Store>(
    State(sh): State<Arc<Shared<S>>>,
    Query(q): Query<PageQuery>,
) -> Html<String> {
    let ring = sh.cluster.ring();
    let quorum = ring.quorum();
    let stats = sh.store.stats();
    let me = escape(sh.cluster.me().as_str());
    let count = ring
        .members()
        .iter()
        .filter(|m| m.state() != MemberState::Removed)
        .count();
    let noun = if count == 1 { "node" } else { "nodes" };
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>mydht {me}</title>\
         <style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;text-align:left}}</style>\
         </head><body><h1>mydht node {me}</h1>\
         <p>The ring consists of {count} {noun} (epoch {}). N={} (configured {}), W={}, R={}.</p>\
         <p>Keys: {} ({} tombstones). Size: {} bytes.</p><h2>Members</h2><ul>",
        ring.epoch(),
        quorum.n(),
        ring.params().replicas(),
        quorum.w(),
        quorum.r(),
        stats.live_keys,
        stats.tombstones,
        stats.value_bytes,
    );
    for m in ring.members() {
        let name = escape(m.id().as_str());
        let status = MemberStatus::of(m.state(), sh.cluster.is_down(m.id()));
        let _ = write!(
            out,
            "<li><a href=\"http://{name}/\">{name}</a> {status}</li>"
        );
    }
    out.push_str("</ul>");
    out.push_str(&sh.movement.status_html());
    out.push_str("<h2>Keys</h2>");
    let after = q
        .after
        .as_deref()
        .and_then(unhex)
        .map(|b| ScanCursor::from_bytes(&b));
    match sh.store.list_keys(after.as_ref(), PAGE).await {
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
