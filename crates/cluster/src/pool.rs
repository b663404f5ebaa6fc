//! One multiplexed connection per member, opened on first use through the
//! [`Dialer`] and replaced when it fails. The pool only opens and forgets
//! connections; what a failure means for the member's liveness is the RPC
//! layer's business.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use mydht_proto::conn::{ConnError, Connection};
use mydht_proto::io::IoError;
use mydht_proto::{Hello, Limits, Peer};
use mydht_ring::NodeId;
use tokio::time::timeout;

use crate::net::Dialer;

/// Why a connection could not be opened.
pub(crate) enum OpenError {
    /// Dialing or the handshake failed.
    Failed(ConnError),
    /// Nothing within the connect deadline.
    Timeout(Duration),
}

pub(crate) struct Pool {
    me: NodeId,
    dialer: Arc<dyn Dialer>,
    limits: Limits,
    connect_timeout: Duration,
    conns: Mutex<HashMap<NodeId, Connection>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Single map operations: a poisoned map is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pool {
    pub fn new(
        me: NodeId,
        dialer: Arc<dyn Dialer>,
        limits: Limits,
        connect_timeout: Duration,
    ) -> Self {
        Self {
            me,
            dialer,
            limits,
            connect_timeout,
            conns: Mutex::new(HashMap::new()),
        }
    }

    /// An open connection to `node`, and whether it was opened just now.
    pub async fn get(&self, node: &NodeId) -> Result<(Connection, bool), OpenError> {
        if let Some(c) = lock(&self.conns).get(node)
            && !c.is_closed()
        {
            return Ok((c.clone(), false));
        }
        // Boxed: opening is rare, and every call's future would otherwise
        // carry the dial and handshake state.
        let opened = timeout(
            self.connect_timeout,
            Box::pin(async {
                let stream = self
                    .dialer
                    .dial(node.as_str())
                    .await
                    .map_err(|e| ConnError::Io(IoError::Io(e)))?;
                let hello = Hello {
                    peer: Peer::Node(self.me.clone()),
                    nonce: [0; 16],
                };
                Connection::open(stream.read, stream.write, hello, self.limits).await
            }),
        )
        .await;
        match opened {
            Ok(Ok(conn)) => {
                lock(&self.conns).insert(node.clone(), conn.clone());
                Ok((conn, true))
            }
            Ok(Err(e)) => Err(OpenError::Failed(e)),
            Err(_) => Err(OpenError::Timeout(self.connect_timeout)),
        }
    }

    /// Drops the connection to `node`, so the next call reconnects.
    pub fn forget(&self, node: &NodeId) {
        lock(&self.conns).remove(node);
    }
}
