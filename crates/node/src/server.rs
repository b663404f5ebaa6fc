//! The listener: accepts connections under a cap, and tells binary protocol
//! from HTTP by the first bytes of each.
//!
//! The first bytes are read, not peeked, and handed back in front of the
//! stream ([`Rewind`]), so classifying works on any transport, TLS included.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use mydht_cluster::net::{Listener, Rewind, Stream};
use mydht_proto::{Protocol, classify};
use mydht_store::Store;
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep, timeout_at};

use crate::shared::Shared;
use crate::{http, session};

/// Bytes read to tell the protocols apart; the longest prefix `classify`
/// needs.
const CLASSIFY_LEN: usize = 16;

pub(crate) async fn accept_loop<S: Store>(sh: Arc<Shared<S>>, mut listener: Box<dyn Listener>) {
    let slots = Arc::new(Semaphore::new(sh.cfg.max_connections));
    loop {
        // The slot is taken before accepting: at the cap, new connections
        // wait in the kernel's backlog instead of being served half-way.
        let permit = tokio::select! {
            () = sh.stop.cancelled() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = sh.stop.cancelled() => break,
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
        let sh2 = sh.clone();
        sh.tasks.spawn(async move {
            serve_connection(sh2, stream).await;
            drop(permit);
        });
    }
}

async fn serve_connection<S: Store>(sh: Arc<Shared<S>>, stream: Stream) {
    let Stream { mut read, write } = stream;
    let deadline = Instant::now() + sh.cfg.handshake_timeout;
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
        Protocol::Binary => session::serve(sh, read, write).await,
        Protocol::Http => http::serve(sh, mydht_cluster::net::Joined::new(read, write)).await,
        Protocol::Unknown | Protocol::NeedMore => {
            tracing::debug!("closing a connection that speaks neither protocol");
        }
    }
}
