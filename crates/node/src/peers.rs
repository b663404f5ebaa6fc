//! Connections from this node to the other members, for replica calls.
//!
//! One multiplexed connection per member, opened on first use and replaced
//! when it fails. A member that refuses a connection, or whose calls keep
//! failing for `down_after`, is marked down: coordinators skip it instead of
//! paying a failed call on every request, and it stays down until
//! [`watch_down`] reaches it again. That is this node's own liveness view and
//! never changes the ring or its epoch. Every call has a deadline.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use mydht_proto::conn::{ConnError, Connection, Exchange};
use mydht_proto::{Hello, Limits, Peer, Request, Response};
use mydht_ring::NodeId;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

/// How a member has been failing, in this node's view.
struct Failing {
    /// The first failure of the current run of failures.
    since: Instant,
    /// The latest failure; a run ends when none came for `down_after`.
    last: Instant,
    down: bool,
}

pub(crate) struct Peers {
    me: NodeId,
    limits: Limits,
    connect_timeout: Duration,
    request_timeout: Duration,
    down_backoff: Duration,
    down_after: Duration,
    conns: Mutex<HashMap<NodeId, Connection>>,
    failing: Mutex<HashMap<NodeId, Failing>>,
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
        down_after: Duration,
    ) -> Self {
        Self {
            me,
            limits,
            connect_timeout,
            request_timeout,
            down_backoff,
            down_after,
            conns: Mutex::new(HashMap::new()),
            failing: Mutex::new(HashMap::new()),
        }
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Whether this node currently considers `node` down.
    pub fn is_down(&self, node: &NodeId) -> bool {
        node != &self.me && lock(&self.failing).get(node).is_some_and(|f| f.down)
    }

    /// The members this node considers down.
    pub fn down_nodes(&self) -> Vec<NodeId> {
        lock(&self.failing)
            .iter()
            .filter(|(_, f)| f.down)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Notes a failure. A refused connection is conclusive and marks the
    /// member down at once; other failures (timeouts, broken connections)
    /// do once they have gone on for `down_after`.
    fn record_failure(&self, node: &NodeId, conclusive: bool) {
        let now = Instant::now();
        let mut failing = lock(&self.failing);
        let f = failing.entry(node.clone()).or_insert(Failing {
            since: now,
            last: now,
            down: false,
        });
        if now.duration_since(f.last) > self.down_after {
            f.since = now;
        }
        f.last = now;
        if !f.down && (conclusive || now.duration_since(f.since) >= self.down_after) {
            f.down = true;
            tracing::info!(%node, "member marked down");
        }
    }

    fn record_success(&self, node: &NodeId) {
        if let Some(f) = lock(&self.failing).remove(node)
            && f.down
        {
            tracing::info!(%node, "member answers again");
        }
    }

    fn mark_down(&self, node: &NodeId) {
        self.record_failure(node, true);
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
                self.record_success(node);
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
        self.call_within(node, request, self.request_timeout).await
    }

    /// A call with one response, within `deadline` (admin calls that wait
    /// for data movement on the other side take longer than replica calls).
    pub async fn call_within(
        &self,
        node: &NodeId,
        request: Request,
        deadline: Duration,
    ) -> Result<Response, String> {
        let conn = self.connection(node).await?;
        match timeout(deadline, conn.call(request)).await {
            Ok(Ok(r)) => {
                self.record_success(node);
                Ok(r)
            }
            Ok(Err(e)) => Err(self.failed(node, &e)),
            Err(_) => {
                self.record_failure(node, false);
                Err(format!("{node}: no answer within {deadline:?}"))
            }
        }
    }

    /// Notes a failed call: a closed connection is dropped so the next call
    /// reconnects.
    pub fn failed(&self, node: &NodeId, e: &ConnError) -> String {
        if matches!(e, ConnError::Closed | ConnError::Io(_)) {
            lock(&self.conns).remove(node);
            self.record_failure(node, false);
        }
        format!("{node}: {e}")
    }

    /// How often members marked down are tried again.
    pub fn retry_interval(&self) -> Duration {
        self.down_backoff
    }
}

/// Tries every member marked down each `retry_interval`, so that one that
/// answers again is no longer skipped, until `stop`.
pub(crate) async fn watch_down(peers: &Peers, stop: &CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(peers.retry_interval()) => {}
        }
        for node in peers.down_nodes() {
            if stop.is_cancelled() {
                return;
            }
            // A success clears the mark; a failure keeps it.
            let _ = peers.connection(&node).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(down_after: Duration) -> Peers {
        Peers::new(
            NodeId::new("me:1").expect("name"),
            Limits::default(),
            Duration::from_secs(1),
            Duration::from_secs(1),
            Duration::from_secs(1),
            down_after,
        )
    }

    #[test]
    fn failures_that_go_on_for_down_after_mark_a_member_down_until_it_answers() {
        let p = peers(Duration::from_millis(100));
        let other = NodeId::new("other:1").expect("name");
        p.record_failure(&other, false);
        assert!(!p.is_down(&other), "one timeout is not enough");
        std::thread::sleep(Duration::from_millis(60));
        p.record_failure(&other, false);
        assert!(!p.is_down(&other), "failing for 60 ms of 100");
        std::thread::sleep(Duration::from_millis(60));
        p.record_failure(&other, false);
        assert!(p.is_down(&other), "failing for 120 ms");
        assert_eq!(p.down_nodes(), vec![other.clone()]);
        p.record_success(&other);
        assert!(!p.is_down(&other));
        assert!(p.down_nodes().is_empty());
    }

    #[test]
    fn isolated_failures_do_not_add_up_and_a_refusal_is_conclusive() {
        let p = peers(Duration::from_millis(50));
        let other = NodeId::new("other:1").expect("name");
        for _ in 0..3 {
            p.record_failure(&other, false);
            // Longer than down_after between failures: each starts a new run.
            std::thread::sleep(Duration::from_millis(70));
        }
        assert!(!p.is_down(&other));
        p.record_failure(&other, true);
        assert!(p.is_down(&other));
        // This node is never down in its own view.
        p.record_failure(&NodeId::new("me:1").expect("name"), true);
        assert!(!p.is_down(&NodeId::new("me:1").expect("name")));
    }
}
