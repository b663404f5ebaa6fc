//! HTTP on the node's port: the status page, the REST API for keys, the
//! seed's download links and a health check.
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

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::get;
use bytes::Bytes;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use mydht_cluster::net::Joined;
use mydht_proto::{ErrorReply, Get, Payload, Response, Version, WriteId};
use mydht_store::Store;
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use tokio::sync::mpsc;

use crate::handlers::{Reply, get as get_handler, write};
use crate::shared::Shared;
use crate::stream::{HttpIn, Source, ValueIn};

mod status;

pub(crate) async fn serve<S: Store>(sh: Arc<Shared<S>>, stream: Joined) {
    let router = Router::new()
        .route("/", get(status::page::<S>))
        .route("/health", get(|| async { "ok\n" }))
        .route(
            "/v1/kv/{*key}",
            get(kv_get::<S>).put(kv_put::<S>).delete(kv_delete::<S>),
        )
        .fallback(seed_download::<S>)
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
        () = sh.stop.cancelled() => {
            // Let requests in flight finish (a put that reached its quorum
            // must say so), within a deadline.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(sh.cfg.request_timeout, conn.as_mut()).await;
        }
    }
}

/// A key as it appears in a URL.
pub(crate) fn key_url(key: &[u8]) -> String {
    let text = String::from_utf8_lossy(key);
    format!("/v1/kv/{}", utf8_percent_encode(&text, NON_ALPHANUMERIC))
}

fn error_response(e: &ErrorReply) -> HttpResponse {
    let status = match e {
        ErrorReply::NotFound => StatusCode::NOT_FOUND,
        ErrorReply::Quorum { .. } | ErrorReply::Unavailable { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ErrorReply::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorReply::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    (status, format!("{e}\n")).into_response()
}

fn version_headers(version: &Version, headers: &mut HeaderMap) {
    let etag = format!("\"{:016x}-{}\"", version.timestamp.raw(), version.node);
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    let when = UNIX_EPOCH + Duration::from_millis(version.timestamp.millis());
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(when)) {
        headers.insert(header::LAST_MODIFIED, v);
    }
}

/// A random write id: HTTP clients send none, and do not retry through us.
fn http_write_id() -> WriteId {
    let mut h = RandomState::new().build_hasher();
    h.write_u8(0);
    let client = h.finish();
    let mut h = RandomState::new().build_hasher();
    h.write_u8(1);
    WriteId {
        client,
        seq: h.finish(),
    }
}

async fn kv_get<S: Store>(
    State(sh): State<Arc<Shared<S>>>,
    Path(key): Path<String>,
    method: Method,
) -> HttpResponse {
    serve_key(&sh, Bytes::from(key), method == Method::HEAD).await
}

async fn seed_download<S: Store>(
    State(sh): State<Arc<Shared<S>>>,
    method: Method,
    uri: Uri,
) -> HttpResponse {
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let path = uri.path().trim_start_matches('/');
    let key: Vec<u8> = percent_decode_str(path).collect();
    if key.is_empty() {
        return StatusCode::NOT_FOUND.into_response();
    }
    serve_key(&sh, Bytes::from(key), method == Method::HEAD).await
}

async fn serve_key<S: Store>(sh: &Arc<Shared<S>>, key: Bytes, head: bool) -> HttpResponse {
    if let Err(e) = sh.cfg.limits.check_key(&key) {
        return error_response(&e);
    }
    let reply = get_handler::get(sh, Get { key, r: None }).await;
    let (version, len, body) = match reply {
        Reply::Plain(Response::Value {
            version,
            value: Payload::Inline(b),
        }) => (version, Some(b.len() as u64), Body::from(b)),
        Reply::Stream(
            Response::Value {
                version,
                value: Payload::Streamed { len },
            },
            source,
        ) => {
            let body = if head {
                Body::empty()
            } else {
                stream_body(source, sh.cfg.limits.chunk_size)
            };
            (version, len, body)
        }
        Reply::Plain(Response::Error(e)) => return error_response(&e),
        _ => {
            return error_response(&ErrorReply::Internal {
                reason: "unexpected answer to a get".into(),
            });
        }
    };
    let mut response = if head {
        Body::empty().into_response()
    } else {
        body.into_response()
    };
    let headers = response.headers_mut();
    version_headers(&version, headers);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(len) = len {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    response
}

/// Feeds a response body from a value source, a chunk at a time.
fn stream_body(mut source: Source, chunk_size: usize) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        loop {
            let item = match source.next(chunk_size).await {
                Ok(Some(b)) => Ok(b),
                Ok(None) => return,
                Err(e) => Err(std::io::Error::other(e)),
            };
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    Body::from_stream(Receiver(rx))
}

struct Receiver(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_core::Stream for Receiver {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

async fn kv_put<S: Store>(
    State(sh): State<Arc<Shared<S>>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> HttpResponse {
    let key = Bytes::from(key);
    if let Err(e) = sh.cfg.limits.check_key(&key) {
        return error_response(&e);
    }
    let len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let value = ValueIn::Http(Box::new(HttpIn {
        body: body.into_data_stream(),
        pending: Bytes::new(),
        chunk_size: sh.cfg.limits.chunk_size,
        received: 0,
        len,
        max: sh.cfg.max_value_len,
        deadline: sh.cfg.request_timeout,
        ended: false,
    }));
    let name = String::from_utf8_lossy(&key).into_owned();
    match write::put_http(&sh, key, len, value, http_write_id()).await {
        Response::Stored { version } => {
            let mut response = format!("PUT OK {name}\n").into_response();
            version_headers(&version, response.headers_mut());
            response
        }
        Response::Error(e) => error_response(&e),
        _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn kv_delete<S: Store>(
    State(sh): State<Arc<Shared<S>>>,
    Path(key): Path<String>,
) -> HttpResponse {
    let key = Bytes::from(key);
    if let Err(e) = sh.cfg.limits.check_key(&key) {
        return error_response(&e);
    }
    let name = String::from_utf8_lossy(&key).into_owned();
    match write::del_http(&sh, key, http_write_id()).await {
        Response::Deleted { .. } => format!("DEL OK {name}\n").into_response(),
        Response::Error(e) => error_response(&e),
        _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The status page's query: where the key table continues.
#[derive(serde::Deserialize)]
pub(crate) struct PageQuery {
    after: Option<String>,
}
