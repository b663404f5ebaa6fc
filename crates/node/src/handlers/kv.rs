//! put, get and del through the binary protocol: the request becomes a
//! coordinator call, and its outcome the response (a streamed value's
//! chunks follow it).

use mydht_proto::{Del, ErrorReply, Get, Payload, Put, Response};
use mydht_store::Store;

use super::Reply;
use crate::coord::{CoordError, Write, Written};
use crate::node::Node;
use crate::value::{BodyIn, ValueStream};

fn written(r: Result<Written, CoordError>) -> Reply {
    match r {
        Ok(Written {
            version,
            deleted: false,
        }) => Reply::Plain(Response::Stored { version }),
        Ok(Written {
            version,
            deleted: true,
        }) => Reply::Plain(Response::Deleted { version }),
        Err(e) => Reply::error(e.into()),
    }
}

pub(crate) async fn put<S: Store>(node: &Node<S>, put: Put, body: Option<BodyIn>) -> Reply {
    let limits = &node.cfg.limits;
    let write = match put.value {
        Payload::Inline(value) => {
            if let Err(e) = limits.check_inline_value(&value) {
                return Reply::error(e);
            }
            Write::Value(value)
        }
        Payload::Streamed { len } => {
            let Some(body) = body else {
                return Reply::error(ErrorReply::BadRequest {
                    reason: "streamed value without a body".into(),
                });
            };
            match ValueStream::body(
                body,
                len,
                node.cfg.max_value_len,
                limits.chunk_size,
                node.cfg.request_timeout,
            ) {
                Ok(v) => Write::Stream(v),
                Err(e) => return Reply::error(CoordError::from(e).into()),
            }
        }
    };
    written(
        node.coord
            .write(put.key, write, put.write_id, put.seen, put.w, put.retry)
            .await,
    )
}

pub(crate) async fn del<S: Store>(node: &Node<S>, del: Del) -> Reply {
    written(
        node.coord
            .write(
                del.key,
                Write::Tombstone,
                del.write_id,
                del.seen,
                del.w,
                del.retry,
            )
            .await,
    )
}

pub(crate) async fn get<S: Store>(node: &Node<S>, get: Get) -> Reply {
    match node.coord.read(get.key, get.r).await {
        Ok(read) => match read.value.in_memory() {
            // Whole values are at most one chunk (larger ones stream).
            Some(b) => Reply::Plain(Response::Value {
                version: read.version,
                value: Payload::Inline(b.clone()),
            }),
            None => Reply::Stream(
                Response::Value {
                    version: read.version,
                    value: Payload::Streamed {
                        len: read.value.len(),
                    },
                },
                read.value,
            ),
        },
        Err(e) => Reply::error(e.into()),
    }
}
