//! Calls to other members: the one place that opens them, bounds them in
//! time, notes what they say about the member's liveness, and decodes the
//! answer into the type the caller expects.
//!
//! [`Rpc::call`] sends one request and decodes one response as a
//! [`FromResponse`] type; [`Rpc::request`] starts an exchange whose value
//! streams (the replication client drives those, and reports their
//! failures back through [`Rpc::failed`]); [`Rpc::broadcast`] calls many
//! members at once with one deadline and gives up on all of them when the
//! node stops. An error answer from the member, an answer of the wrong
//! kind, a timeout and a broken connection each come back as their own
//! [`RpcError`].

use std::sync::Arc;
use std::time::Duration;

use mydht_proto::conn::{ConnError, Connection, Exchange};
use mydht_proto::{
    Held, LeafDigest, LeafEntry, Members, PartDigest, ReplicaEntry, Request, Response, Version,
};
use mydht_ring::NodeId;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use crate::error::RpcError;
use crate::liveness::Liveness;
use crate::pool::{OpenError, Pool};

/// A response kind a call expects, decoded from the wire's [`Response`].
pub trait FromResponse: Sized + Send + 'static {
    /// The kind's name, for an error when another kind arrives.
    const EXPECTED: &'static str;

    /// `Ok` with the decoded answer, or the response back when it is of
    /// another kind. [`Response::Error`] never reaches this.
    fn from_response(r: Response) -> Result<Self, Response>;
}

/// Decodes `response` from `node` as `T`.
pub fn decode<T: FromResponse>(node: &NodeId, response: Response) -> Result<T, RpcError> {
    match response {
        Response::Error(error) => Err(RpcError::Remote {
            node: node.clone(),
            error,
        }),
        other => T::from_response(other).map_err(|r| RpcError::Unexpected {
            node: node.clone(),
            expected: T::EXPECTED,
            got: r.kind(),
        }),
    }
}

/// The answer to a request that only reports it finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done;

impl FromResponse for Done {
    const EXPECTED: &'static str = "Done";
    fn from_response(r: Response) -> Result<Self, Response> {
        match r {
            Response::Done => Ok(Done),
            other => Err(other),
        }
    }
}

impl FromResponse for Members {
    const EXPECTED: &'static str = "Members";
    fn from_response(r: Response) -> Result<Self, Response> {
        match r {
            Response::Members(m) => Ok(m),
            other => Err(other),
        }
    }
}

/// The answer to gossip: `None` when the other side holds the same ring.
impl FromResponse for Option<Members> {
    const EXPECTED: &'static str = "Members or Done";
    fn from_response(r: Response) -> Result<Self, Response> {
        match r {
            Response::Members(m) => Ok(Some(m)),
            Response::Done => Ok(None),
            other => Err(other),
        }
    }
}

impl FromResponse for Held {
    const EXPECTED: &'static str = "Held";
    fn from_response(r: Response) -> Result<Self, Response> {
        match r {
            Response::Held(h) => Ok(h),
            other => Err(other),
        }
    }
}

/// A replica's answer to a store: whether it applied the version (`false`
/// when it already held that version or a newer one), and if not, what it
/// holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Whether the version was applied.
    pub applied: bool,
    /// The version held instead, when not applied.
    pub held: Option<Version>,
}

impl FromResponse for Stored {
    const EXPECTED: &'static str = "ReplicaStored";
    fn from_response(r: Response) -> Result<Self, Response> {
        match r {
            Response::ReplicaStored { applied, held } => Ok(Stored { applied, held }),
            other => Err(other),
        }
    }
}

/// A replica's answer to a recall: the version it applied for a client
/// write, if it remembers one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recalled(pub Option<Version>);

impl FromResponse for Recalled {
    const EXPECTED: &'static str = "Recalled";
    fn from_response(r: Response) -> Result<Self, Response> {
        match r {
            Response::Recalled(v) => Ok(Recalled(v)),
            other => Err(other),
        }
    }
}

/// A replica's part digests (see [`Request::ReplicaParts`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parts(pub Vec<PartDigest>);

impl FromResponse for Parts {
    const EXPECTED: &'static str = "Parts";
    fn from_response(r: Response) -> Result<Self, Response> {
        match r {
            Response::Parts(p) => Ok(Parts(p)),
            other => Err(other),
        }
    }
}

/// A replica's leaf digests (see [`Request::ReplicaLeaves`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaves(pub Vec<LeafDigest>);

impl FromResponse for Leaves {
    const EXPECTED: &'static str = "Leaves";
    fn from_response(r: Response) -> Result<Self, Response> {
        match r {
            Response::Leaves(l) => Ok(Leaves(l)),
            other => Err(other),
        }
    }
}

/// A replica's entries of some leaves (see [`Request::ReplicaEntries`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entries {
    /// How many of the asks (the first ones) were answered.
    pub answered: u32,
    /// (ask index, entry), in ask order.
    pub entries: Vec<(u32, LeafEntry)>,
}

impl FromResponse for Entries {
    const EXPECTED: &'static str = "Entries";
    fn from_response(r: Response) -> Result<Self, Response> {
        match r {
            Response::Entries { answered, entries } => Ok(Entries { answered, entries }),
            other => Err(other),
        }
    }
}

impl FromResponse for Option<ReplicaEntry> {
    const EXPECTED: &'static str = "Entry";
    fn from_response(r: Response) -> Result<Self, Response> {
        match r {
            Response::Entry(e) => Ok(e),
            other => Err(other),
        }
    }
}

/// Calls to other members. Cheap to clone.
#[derive(Clone)]
pub struct Rpc(Arc<Inner>);

struct Inner {
    pool: Pool,
    liveness: Arc<Liveness>,
    request_timeout: Duration,
    stop: CancellationToken,
}

impl Rpc {
    pub(crate) fn new(
        pool: Pool,
        liveness: Arc<Liveness>,
        request_timeout: Duration,
        stop: CancellationToken,
    ) -> Self {
        Self(Arc::new(Inner {
            pool,
            liveness,
            request_timeout,
            stop,
        }))
    }

    /// The deadline of one replica call.
    pub fn request_timeout(&self) -> Duration {
        self.0.request_timeout
    }

    /// A connection to `node`, opened if needed. A member that cannot be
    /// reached is marked down at once. An open connection says nothing of
    /// whether the member answers: only answers do ([`Self::answered`]).
    pub async fn connect(&self, node: &NodeId) -> Result<Connection, RpcError> {
        match self.0.pool.get(node).await {
            Ok((conn, _)) => Ok(conn),
            Err(e) => {
                self.0.liveness.record_failure(node, true);
                self.0.pool.forget(node);
                Err(match e {
                    OpenError::Failed(source) => RpcError::Connect {
                        node: node.clone(),
                        source,
                    },
                    OpenError::Timeout(after) => RpcError::ConnectTimeout {
                        node: node.clone(),
                        after,
                    },
                })
            }
        }
    }

    /// Sends `request` to `node` and returns its exchange, for answers or
    /// bodies that stream. The caller bounds its steps in time and reports
    /// failures through [`failed`](Self::failed) and
    /// [`timed_out`](Self::timed_out).
    pub async fn request(&self, node: &NodeId, request: Request) -> Result<Exchange, RpcError> {
        let conn = self.connect(node).await?;
        conn.request(request)
            .await
            .map_err(|e| self.failed(node, e))
    }

    /// Notes that `node` answered an exchange: a run of failures ends.
    pub fn answered(&self, node: &NodeId) {
        self.0.liveness.record_success(node);
    }

    /// Notes an exchange with `node` that failed: a broken connection is
    /// dropped (the next call reconnects) and counts against the member.
    pub fn failed(&self, node: &NodeId, e: ConnError) -> RpcError {
        if matches!(e, ConnError::Closed | ConnError::Io(_)) {
            self.0.pool.forget(node);
            self.0.liveness.record_failure(node, false);
        }
        RpcError::Conn {
            node: node.clone(),
            source: e,
        }
    }

    /// Notes an exchange with `node` that got no answer within `after`. The
    /// connection stays: other exchanges on it may be fine, and a member
    /// that answers on it again (it was paused, or cut off without a reset)
    /// is seen by the next answer.
    pub fn timed_out(&self, node: &NodeId, after: Duration) -> RpcError {
        self.0.liveness.record_failure(node, false);
        RpcError::Timeout {
            node: node.clone(),
            after,
        }
    }

    /// One request, one response, within the request deadline.
    pub async fn call<T: FromResponse>(
        &self,
        node: &NodeId,
        request: Request,
    ) -> Result<T, RpcError> {
        self.call_within(node, request, self.0.request_timeout)
            .await
    }

    /// One request, one response, within `deadline` (admin calls that wait
    /// for data movement on the other side take longer than replica calls).
    pub async fn call_within<T: FromResponse>(
        &self,
        node: &NodeId,
        request: Request,
        deadline: Duration,
    ) -> Result<T, RpcError> {
        let conn = self.connect(node).await?;
        match timeout(deadline, conn.call(request)).await {
            Ok(Ok(r)) => {
                self.0.liveness.record_success(node);
                decode(node, r)
            }
            Ok(Err(e)) => Err(self.failed(node, e)),
            Err(_) => Err(self.timed_out(node, deadline)),
        }
    }

    /// Calls every one of `nodes` at once, each within `deadline`, and
    /// returns every answer. When this node stops, the calls still out are
    /// abandoned and reported as [`RpcError::Stopping`].
    pub async fn broadcast<T: FromResponse>(
        &self,
        nodes: Vec<NodeId>,
        request: &Request,
        deadline: Duration,
    ) -> Vec<(NodeId, Result<T, RpcError>)> {
        let mut set = JoinSet::new();
        let mut calling = std::collections::HashMap::new();
        for node in nodes {
            let (rpc, request) = (self.clone(), request.clone());
            let target = node.clone();
            let task = set.spawn(async move {
                let result = rpc.call_within::<T>(&target, request, deadline).await;
                (target, result)
            });
            calling.insert(task.id(), node);
        }
        let mut answers = Vec::with_capacity(calling.len());
        loop {
            let next = tokio::select! {
                () = self.0.stop.cancelled() => {
                    set.abort_all();
                    break;
                }
                next = set.join_next_with_id() => next,
            };
            match next {
                None => break,
                Some(Ok((id, answer))) => {
                    calling.remove(&id);
                    answers.push(answer);
                }
                Some(Err(e)) => {
                    if let Some(node) = calling.remove(&e.id()) {
                        answers.push((node.clone(), Err(RpcError::Lost { node })));
                    }
                }
            }
        }
        // Whatever is left was abandoned because this node is stopping.
        answers.extend(
            calling
                .into_values()
                .map(|node| (node, Err(RpcError::Stopping))),
        );
        answers
    }

    /// As [`broadcast`](Self::broadcast), to the members of `nodes` this
    /// node sees alive; a call whose member goes down while it waits is
    /// abandoned (`RpcError::Down`) instead of waiting out `deadline`, so a
    /// member that crashes or pauses mid-call costs seconds, not the whole
    /// deadline. Returns the answers and the members skipped as not alive.
    pub async fn broadcast_alive<T: FromResponse + Send + 'static>(
        &self,
        nodes: Vec<NodeId>,
        request: &Request,
        deadline: Duration,
    ) -> (Vec<(NodeId, Result<T, RpcError>)>, Vec<NodeId>) {
        let (skipped, alive): (Vec<NodeId>, Vec<NodeId>) =
            nodes.into_iter().partition(|n| self.0.liveness.is_down(n));
        let mut set = JoinSet::new();
        for node in alive {
            let (rpc, request) = (self.clone(), request.clone());
            set.spawn(async move {
                let mut down = rpc.0.liveness.watch();
                let gone = async {
                    loop {
                        if down.borrow_and_update().contains(&node) {
                            return;
                        }
                        if down.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                };
                let result = tokio::select! {
                    r = rpc.call_within::<T>(&node, request, deadline) => r,
                    () = gone => Err(RpcError::Down { node: node.clone() }),
                    () = rpc.0.stop.cancelled() => Err(RpcError::Stopping),
                };
                (node, result)
            });
        }
        let mut answers = Vec::new();
        while let Some(joined) = set.join_next().await {
            if let Ok(answer) = joined {
                answers.push(answer);
            }
        }
        (answers, skipped)
    }
}
