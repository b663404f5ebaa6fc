//! Keys over HTTP: `/v1/kv/KEY` (`PUT` streamed to the replicas as it
//! arrives, `GET` streamed back, `HEAD`, `DELETE`) and the seed's download
//! links (`GET /KEY`). Each handler is a thin door onto the coordinator; a
//! failure is turned into the wire's error once and mapped to a status
//! code (404, 503, 400, 413, 500). `PUT` and `DELETE` take an
//! `Idempotency-Key` header: a retry with the same key (for the same
//! `KEY`) is answered with the first attempt's outcome instead of writing a
//! second version.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use bytes::Bytes;
use mydht_proto::{ErrorReply, Version, WriteId};
use mydht_store::Store;
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::body::HttpBody;
use crate::coord::{CoordError, Write, Written};
use crate::node::Node;
use crate::value::ValueStream;
use crate::value::sink::into_body_stream;

/// A key as it appears in a URL.
pub(crate) fn key_url(key: &[u8]) -> String {
    let text = String::from_utf8_lossy(key);
    format!("/v1/kv/{}", utf8_percent_encode(&text, NON_ALPHANUMERIC))
}

fn error_response(e: &ErrorReply) -> HttpResponse {
    let status = match e {
        ErrorReply::NotFound => StatusCode::NOT_FOUND,
        ErrorReply::Quorum { .. }
        | ErrorReply::Unavailable { .. }
        | ErrorReply::ClockAhead { .. }
        | ErrorReply::FutureVersion { .. } => StatusCode::SERVICE_UNAVAILABLE,
        ErrorReply::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorReply::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    (status, format!("{e}\n")).into_response()
}

fn coord_error(e: CoordError) -> HttpResponse {
    error_response(&ErrorReply::from(e))
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

/// The longest `Idempotency-Key` taken.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The write id of an HTTP write: from its `Idempotency-Key` header if it
/// has one (the same header on the same key is the same write, on any
/// node: a digest, not a per-process hash), else a random one. A header
/// that is too long or not visible ASCII is a bad request.
fn http_write_id(headers: &HeaderMap, key: &[u8]) -> Result<WriteId, ErrorReply> {
    use md5::{Digest, Md5};
    let Some(given) = headers.get("idempotency-key") else {
        return Ok(random_write_id());
    };
    let given = given.as_bytes();
    if given.is_empty()
        || given.len() > MAX_IDEMPOTENCY_KEY
        || !given.iter().all(|b| b.is_ascii_graphic() || *b == b' ')
    {
        return Err(ErrorReply::BadRequest {
            reason: format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
            ),
        });
    }
    let mut h = Md5::new();
    h.update(b"mydht http idempotency\0");
    h.update((key.len() as u64).to_be_bytes());
    h.update(key);
    h.update(given);
    let d = h.finalize();
    let half = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[i..i + 8]);
        u64::from_be_bytes(b)
    };
    Ok(WriteId {
        client: half(0),
        seq: half(8),
    })
}

/// A random write id, for a write without an `Idempotency-Key`.
fn random_write_id() -> WriteId {
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

/// The key of a request, checked against the key limit.
fn checked_key<S>(node: &Node<S>, key: impl Into<Bytes>) -> Result<Bytes, ErrorReply> {
    let key = key.into();
    node.cfg.limits.check_key(&key)?;
    Ok(key)
}

pub(crate) async fn get<S: Store>(
    State(node): State<Node<S>>,
    Path(key): Path<String>,
    method: Method,
) -> HttpResponse {
    serve_key(&node, Bytes::from(key), method == Method::HEAD).await
}

pub(crate) async fn seed_download<S: Store>(
    State(node): State<Node<S>>,
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
    serve_key(&node, Bytes::from(key), method == Method::HEAD).await
}

async fn serve_key<S: Store>(node: &Node<S>, key: Bytes, head: bool) -> HttpResponse {
    let key = match checked_key(node, key) {
        Ok(k) => k,
        Err(e) => return error_response(&e),
    };
    let read = match node.coord.read(key, None).await {
        Ok(r) => r,
        Err(e) => return coord_error(e),
    };
    let len = read.value.len();
    let mut response = if head {
        Body::empty().into_response()
    } else {
        body_of(read.value).into_response()
    };
    let headers = response.headers_mut();
    version_headers(&read.version, headers);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(len) = len {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    response
}

fn body_of(value: ValueStream) -> Body {
    match value.in_memory() {
        Some(b) => Body::from(b.clone()),
        None => Body::from_stream(into_body_stream(value)),
    }
}

pub(crate) async fn put<S: Store>(
    State(node): State<Node<S>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> HttpResponse {
    let key = match checked_key(&node, key) {
        Ok(k) => k,
        Err(e) => return error_response(&e),
    };
    let len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunk = node.cfg.limits.chunk_size;
    let stream = HttpBody::new(
        body.into_data_stream(),
        len,
        node.cfg.max_value_len,
        chunk,
        node.cfg.request_timeout,
    );
    let write_id = match http_write_id(&headers, &key) {
        Ok(id) => id,
        Err(e) => return error_response(&e),
    };
    let mut value = ValueStream::external(Box::pin(stream), len, chunk);
    // A body of at most a chunk is read whole first: the write is then a
    // plain one (no streaming fan-out, and no round asking the replicas
    // what they hold, which only a stream needs).
    let write = if len.is_some_and(|n| n <= chunk as u64) {
        let mut whole = bytes::BytesMut::new();
        loop {
            match value.next().await {
                Ok(Some(piece)) => whole.extend_from_slice(&piece),
                Ok(None) => break Write::Value(whole.freeze()),
                Err(e) => return coord_error(e.into()),
            }
        }
    } else {
        Write::Stream(value)
    };
    let name = String::from_utf8_lossy(&key).into_owned();
    // With an Idempotency-Key, any request may be a retry.
    let retry = headers.contains_key("idempotency-key");
    match node
        .coord
        .write(key, write, write_id, None, None, retry)
        .await
    {
        Ok(Written { version, .. }) => {
            let mut response = format!("PUT OK {name}\n").into_response();
            version_headers(&version, response.headers_mut());
            response
        }
        Err(e) => coord_error(e),
    }
}

pub(crate) async fn delete<S: Store>(
    State(node): State<Node<S>>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> HttpResponse {
    let key = match checked_key(&node, key) {
        Ok(k) => k,
        Err(e) => return error_response(&e),
    };
    let write_id = match http_write_id(&headers, &key) {
        Ok(id) => id,
        Err(e) => return error_response(&e),
    };
    let name = String::from_utf8_lossy(&key).into_owned();
    match node
        .coord
        .write(
            key,
            Write::Tombstone,
            write_id,
            None,
            None,
            headers.contains_key("idempotency-key"),
        )
        .await
    {
        Ok(_) => format!("DEL OK {name}\n").into_response(),
        Err(e) => coord_error(e),
    }
}

/// The status page's query: where the key table continues.
#[derive(serde::Deserialize)]
pub(crate) struct PageQuery {
    pub after: Option<String>,
}
