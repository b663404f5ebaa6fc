//! The node's one port: the listener accepts connections under a cap, and
//! tells the binary protocol ([`session`]) from HTTP by the first bytes of
//! each.
//!
//! The first bytes are read, not peeked, and handed back in front of the
//! stream ([`Rewind`]), so telling them apart works on any transport behind
//! the [`Listener`] seam, TLS included.

pub(crate) mod session;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use mydht_cluster::net::{Listener, Rewind, Stream};
use mydht_proto::{Protocol, classify};
use mydht_store::Store;
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep, timeout_at};

use crate::http;
use crate::node::Node;

/// Bytes read to tell the protocols apart; the longest prefix `classify`
/// needs.
const CLASSIFY_LEN: usize = 16;

pub(crate) async fn accept_loop<S: Store>(node: Node<S>, mut listener: Box<dyn Listener>) {
    let slots = Arc::new(Semaphore::new(node.cfg.max_connections));
    loop {
        // The slot is taken before accepting: at the cap, new connections
        // wait in the kernel's backlog instead of being served half-way.
        let permit = tokio::select! {
            () = node.tasks.intake.stopping() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = node.tasks.intake.stopping() => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors and the like: back off, go on.
                tracing::warn!(error = %e, "accept failed");
                sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let served = node.clone();
        node.tasks.intake.spawn(async move {
            serve_connection(served, stream).await;
            drop(permit);
        });
    }
}

async fn serve_connection<S: Store>(node: Node<S>, stream: Stream) {
    let Stream { mut read, write } = stream;
    let deadline = Instant::now() + node.cfg.handshake_timeout;
    let mut first = BytesMut::with_capacity(CLASSIFY_LEN);
    let protocol = loop {
        match classify(&first) {
            Protocol::NeedMore if first.len() < CLASSIFY_LEN => {}
            p => break p,
        }
        let mut buf = [0u8; CLASSIFY_LEN];
        let want = CLASSIFY_LEN - first.len();
        match timeout_at(deadline, read.read(&mut buf[..want])).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(n)) => first.extend_from_slice(&buf[..n]),
        }
    };
    let read = Box::new(Rewind::new(first.freeze(), read));
    match protocol {
        Protocol::Binary => session::serve(node, read, write).await,
        Protocol::Http => http::serve(node, mydht_cluster::net::Joined::new(read, write)).await,
        Protocol::Unknown | Protocol::NeedMore => {
            tracing::debug!("closing a connection that speaks neither protocol");
        }
    }
}
