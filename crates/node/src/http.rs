//! HTTP on the node's port: for now the status page at `/`.
//!
//! Served with hyper's HTTP/1.1 on a connection the listener already
//! classified as HTTP, through an axum router; a client that does not send
//! its headers within the handshake timeout is cut off. The REST API and
//! metrics come with the files-and-HTTP work.

use std::fmt::Write;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use mydht_ring::MemberStatus;
use mydht_store::Store;
use tokio::net::TcpStream;

use crate::shared::Shared;

pub(crate) async fn serve<S: Store>(sh: Arc<Shared<S>>, stream: TcpStream) {
    let router = Router::new()
        .route("/", get(status::<S>))
        .with_state(sh.clone());
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(sh.cfg.handshake_timeout)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "http connection failed");
            }
        }
        () = sh.stop.cancelled() => conn.as_mut().graceful_shutdown(),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn status<S: Store>(State(sh): State<Arc<Shared<S>>>) -> Html<String> {
    let ring = sh.members.ring();
    let q = ring.quorum();
    let stats = sh.store.stats();
    let me = escape(sh.members.me().as_str());
    let count = ring
        .members()
        .iter()
        .filter(|m| m.state() != mydht_ring::MemberState::Removed)
        .count();
    let noun = if count == 1 { "node" } else { "nodes" };
    let mut page = String::new();
    let _ = write!(
        page,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>mydht {me}</title></head><body>\
         <h1>mydht node {me}</h1>\
         <p>The ring consists of {count} {noun} (epoch {}). N={} (configured {}), W={}, R={}.</p>\
         <p>Keys: {} ({} tombstones). Size: {} bytes.</p><h2>Members</h2><ul>",
        ring.epoch(),
        q.n(),
        ring.params().replicas(),
        q.w(),
        q.r(),
        stats.live_keys,
        stats.tombstones,
        stats.value_bytes,
    );
    for m in ring.members() {
        let name = escape(m.id().as_str());
        let status = MemberStatus::of(m.state(), sh.peers.is_down(m.id()));
        let _ = write!(
            page,
            "<li><a href=\"http://{name}/\">{name}</a> {status}</li>"
        );
    }
    page.push_str("</ul>");
    page.push_str(&sh.movement.status_html());
    page.push_str("</body></html>");
    Html(page)
}
