//! The admin calls: purge, balance, remove and replicas.
//!
//! Each answers only once the cluster has finished the data movement it
//! starts, so it waits up to [`ClientOptions::admin_timeout`] rather than the
//! ordinary request timeout. purge and balance act on the node asked (and
//! balance forwards itself to every member), so they are pinned to the first
//! node; remove may be answered by any member. Leave and join stay internal,
//! as in the seed.
//!
//! [`ClientOptions::admin_timeout`]: crate::ClientOptions::admin_timeout

use mydht_proto::{Request, Response};
use mydht_ring::NodeId;
use std::sync::PoisonError;

use crate::error::Attempt;
use crate::{Client, ClientError};

impl Client {
    /// Asks the first node to drop the keys it no longer owns, once their
    /// owners hold the same or a newer version (it pushes them first
    /// otherwise). Never drops the last copy.
    pub async fn purge(&self) -> Result<(), ClientError> {
        self.admin(true, Request::Purge).await
    }

    /// Has every member compare what it holds with the other replicas of its
    /// ranges and exchange what differs (the newer version wins, tombstones
    /// included). Fails naming the members that did not finish.
    pub async fn balance(&self) -> Result<(), ClientError> {
        self.admin(true, Request::Balance { forwarded: false })
            .await
    }

    /// Takes a dead member out of the ring; the cluster then restores N
    /// copies of every key it held before this answers.
    pub async fn remove(&self, node: &NodeId) -> Result<(), ClientError> {
        let request = Request::Remove {
            node: node.clone(),
            forwarded: false,
            asked: Vec::new(),
        };
        self.admin(false, request).await
    }

    /// Sets N for the whole ring; answers once every alive member holds
    /// the new N. Keys then move to their new replicas in the background
    /// (raising N copies each key to its new replicas; lowering it drops
    /// extra copies only once the remaining N hold the same or a newer
    /// version), and writes meanwhile reach both the old and the new ones.
    pub async fn set_replicas(&self, n: u8) -> Result<(), ClientError> {
        self.admin(false, Request::Replicas { n }).await
    }

    async fn admin(&self, pinned: bool, request: Request) -> Result<(), ClientError> {
        // A client of its own, so that each attempt may last the admin
        // deadline instead of the request timeout.
        let nodes = self
            .inner
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut opts = self.inner.opts.clone();
        opts.request_timeout = opts.admin_timeout;
        opts.learn_members = false;
        let admin = Client::with_options(nodes, opts)?;
        let response = admin
            .failover(pinned, |conn| {
                let request = request.clone();
                async move { Ok::<_, Attempt>(conn.call(request).await?) }
            })
            .await?;
        match response {
            Response::Done => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }
}
