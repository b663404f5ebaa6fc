//! The listener: accepts connections under a cap, and tells binary protocol
//! from HTTP by the first bytes of each.

use std::sync::Arc;
use std::time::Duration;

use mydht_proto::{Protocol, classify};
use mydht_store::Store;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep, timeout_at};

use crate::shared::Shared;
use crate::{http, session};

pub(crate) async fn accept_loop<S: Store>(sh: Arc<Shared<S>>, listener: TcpListener) {
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
        let _ = stream.set_nodelay(true);
        let sh2 = sh.clone();
        sh.tasks.spawn(async move {
            serve_connection(sh2, stream).await;
            drop(permit);
        });
    }
}

async fn serve_connection<S: Store>(sh: Arc<Shared<S>>, stream: TcpStream) {
    let deadline = Instant::now() + sh.cfg.handshake_timeout;
    let mut buf = [0u8; 16];
    let mut seen = 0;
    let protocol = loop {
        let n = match timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => return,
        };
        match classify(&buf[..n]) {
            Protocol::NeedMore if n == 0 => return,
            Protocol::NeedMore => {
                // Peek returns what is there at once: wait a moment for more
                // rather than spinning on the same bytes.
                if n == seen {
                    sleep(Duration::from_millis(2)).await;
                }
                seen = n;
                if Instant::now() >= deadline {
                    return;
                }
            }
            p => break p,
        }
    };
    match protocol {
        Protocol::Binary => session::serve(sh, stream).await,
        Protocol::Http => http::serve(sh, stream).await,
        Protocol::Unknown | Protocol::NeedMore => {
            tracing::debug!("closing a connection that speaks neither protocol");
        }
    }
}
