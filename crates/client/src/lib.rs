//! The async client library that programs embed to talk to a mydht cluster.
//!
//! ```no_run
//! use mydht_client::Client;
//!
//! # async fn demo() -> Result<(), mydht_client::ClientError> {
//! // Any node of the cluster will do; others are learned from it.
//! let client = Client::new(["localhost:50140"])?;
//! client.put("mykey", "myvalue").await?;
//! let value = client.get("mykey").await?.expect("just written");
//! assert_eq!(&value.bytes[..], b"myvalue");
//! println!("stored on {:?}", client.whereis("mykey").await?);
//! client.delete("mykey").await?;
//! assert!(client.get("mykey").await?.is_none());
//! # Ok(()) }
//! ```
//!
//! A [`Client`] talks to one node at a time over one multiplexed connection
//! (many calls in flight at once). A call that fails in transport (the node
//! is down, the connection drops, no answer in time) is tried again, up to
//! three attempts in all, each on the next known node, as the seed's client
//! did; an answer from a node (not found, quorum shortfall) is returned as it
//! is. Every write carries a write id, the same on every attempt, so a retry
//! can never stamp a second version; and the highest version the client has
//! seen, so one client's writes stay in order even through different nodes.
//! `haskey` asks one node about its own copy and is never moved to another.
//!
//! Values of any size stream: [`Client::put_file`], [`Client::put_reader`],
//! [`Client::get_to_writer`] and [`Client::get_to_file`] move a value chunk
//! by chunk under the protocol's flow control, never holding it whole. A
//! streamed put is retried only when its source can be read again (a file,
//! not a reader).
//!
//! This crate depends only on the ring and the wire protocol: it compiles no
//! storage engine and no web framework.

mod admin;
mod client;
mod error;
mod files;
mod options;

pub use client::{Client, Value};
pub use error::ClientError;
pub use mydht_proto::{Members, Timestamp, Version};
pub use mydht_ring::NodeId;
pub use options::{ClientOptions, ReadOptions, WriteOptions};
