//! Connections from this node to the other members, for replica calls.
//!
//! One multiplexed connection per member, opened on first use and replaced
//! when it fails. A member that refuses a connection is treated as down for
//! a short backoff, so that coordinators skip it instead of paying a failed
//! connect on every request; that is this node's own liveness view and never
//! changes the ring. Every call has a deadline.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use mydht_proto::conn::{ConnError, Connection, Exchange};
use mydht_proto::{Hello, Limits, Peer, Request, Response};
use mydht_ring::NodeId;
use tokio::net::TcpStream;
use tokio::time::timeout;

pub(crate) struct Peers {
    me: NodeId,
    limits: Limits,
    connect_timeout: Duration,
    request_timeout: Duration,
    down_backoff: Duration,
    conns: Mutex<HashMap<NodeId, Connection>>,
    down_until: Mutex<HashMap<NodeId, Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Single map operations: a poisoned map is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Peers {
    pub fn new(
        me: NodeId,
        limits: Limits,
        connect_timeout: Duration,
        request_timeout: Duration,
        down_backoff: Duration,
    ) -> Self {
        Self {
            me,
            limits,
            connect_timeout,
            request_timeout,
            down_backoff,
            conns: Mutex::new(HashMap::new()),
            down_until: Mutex::new(HashMap::new()),
        }
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Whether this node currently considers `node` down.
    pub fn is_down(&self, node: &NodeId) -> bool {
        if node == &self.me {
            return false;
        }
        let mut down = lock(&self.down_until);
        match down.get(node) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                down.remove(node);
                false
            }
            None => false,
        }
    }

    fn mark_down(&self, node: &NodeId) {
        lock(&self.down_until).insert(node.clone(), Instant::now() + self.down_backoff);
        lock(&self.conns).remove(node);
    }

    /// A connection to `node`, opened if needed.
    pub async fn connection(&self, node: &NodeId) -> Result<Connection, String> {
        if let Some(c) = lock(&self.conns).get(node)
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let opened = timeout(self.connect_timeout, async {
            let stream = TcpStream::connect(node.as_str())
                .await
                .map_err(|e| e.to_string())?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let (r, w) = stream.into_split();
            let hello = Hello {
                peer: Peer::Node(self.me.clone()),
                nonce: [0; 16],
            };
            Connection::open(r, w, hello, self.limits)
                .await
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|_| Err(format!("no connection within {:?}", self.connect_timeout)));
        match opened {
            Ok(conn) => {
                lock(&self.conns).insert(node.clone(), conn.clone());
                lock(&self.down_until).remove(node);
                Ok(conn)
            }
            Err(e) => {
                self.mark_down(node);
                Err(e)
            }
        }
    }

    /// Sends a request to `node` and returns its exchange.
    pub async fn request(&self, node: &NodeId, request: Request) -> Result<Exchange, String> {
        let conn = self.connection(node).await?;
        conn.request(request)
            .await
            .map_err(|e| self.failed(node, &e))
    }

    /// A call with one response, within the request deadline.
    pub async fn call(&self, node: &NodeId, request: Request) -> Result<Response, String> {
        let conn = self.connection(node).await?;
        match timeout(self.request_timeout, conn.call(request)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(self.failed(node, &e)),
            Err(_) => Err(format!(
                "{node}: no answer within {:?}",
                self.request_timeout
            )),
        }
    }

    /// Notes a failed call: a closed connection is dropped so the next call
    /// reconnects.
    pub fn failed(&self, node: &NodeId, e: &ConnError) -> String {
        if matches!(e, ConnError::Closed | ConnError::Io(_)) {
            lock(&self.conns).remove(node);
        }
        format!("{node}: {e}")
    }
}
