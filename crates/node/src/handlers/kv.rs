//! put, get and del through the binary protocol: the request becomes a
//! coordinator call, and its outcome the response (a streamed value's
//! chunks follow it).

use mydht_proto::{Del, ErrorReply, Get, Payload, Put, Response};
use mydht_store::Store;

use super::Reply;
use crate::coord::{Coordinator, Write, Written};
use crate::value::{BodyIn, ValueStream};

fn written(r: Result<Written, crate::coord::CoordError>) -> Reply {
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

pub(crate) async fn put<S: Store>(
    coord: &Coordinator<S>,
    put: Put,
    body: Option<BodyIn>,
    limits: &mydht_proto::Limits,
    max_value_len: u64,
) -> Reply {
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
            match ValueStream::body(body, len, max_value_len, limits.chunk_size) {
                Ok(v) => Write::Stream(v),
                Err(e) => return Reply::error(crate::coord::CoordError::from(e).into()),
            }
        }
    };
    written(
        coord
            .write(put.key, write, put.write_id, put.seen, put.w)
            .await,
    )
}

pub(crate) async fn del<S: Store>(coord: &Coordinator<S>, del: Del) -> Reply {
    written(
        coord
            .write(del.key, Write::Tombstone, del.write_id, del.seen, del.w)
            .await,
    )
}

pub(crate) async fn get<S: Store>(coord: &Coordinator<S>, get: Get) -> Reply {
    match coord.read(get.key, get.r).await {
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
