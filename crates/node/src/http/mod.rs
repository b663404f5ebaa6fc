//! HTTP on the node's port: the status page (and the same snapshot as
//! `/status.json`), the REST API for keys, the seed's download links and a
//! health check.
//!
//! Served with hyper's HTTP/1.1 on a connection the listener already
//! classified as HTTP, through an axum router. `/v1/kv/KEY` takes `PUT`
//! (raw bytes, streamed to the replicas as they arrive), `GET` (streamed
//! back), `HEAD` (size, `ETag` from the version, `Last-Modified` from its
//! timestamp) and `DELETE`; errors map to 404, 503, 400, 413 and 500. Any
//! other path `GET /KEY` serves that key, as the seed's links did. Slow
//! clients are cut off: headers must arrive within the handshake timeout and
//! each piece of a body within the request timeout. The listener's
//! connection cap covers HTTP too.

use axum::Router;
use axum::routing::get;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use mydht_cluster::net::Joined;
use mydht_store::Store;

use crate::node::Node;

mod body;
mod kv;
mod status;

pub(crate) async fn serve<S: Store>(node: Node<S>, stream: Joined) {
    let router = Router::new()
        .route("/", get(status::page::<S>))
        .route("/status.json", get(status::json::<S>))
        .route("/v1/ring", get(status::ring::<S>))
        .route("/health", get(|| async { "ok\n" }))
        .route(
            "/v1/kv/{*key}",
            get(kv::get::<S>).put(kv::put::<S>).delete(kv::delete::<S>),
        )
        .fallback(kv::seed_download::<S>)
        .with_state(node.clone());
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(node.cfg.handshake_timeout)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "http connection failed");
            }
        }
        () = node.tasks.intake.stopping() => {
            // Let requests in flight finish (a put that reached its quorum
            // must say so), within a deadline.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(node.cfg.request_timeout, conn.as_mut()).await;
        }
    }
}
