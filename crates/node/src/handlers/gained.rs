//! A joining member asks this node for the keys it gained (`SendGained`):
//! this node runs a restore pass against the ring without the joiner and
//! answers once every key it is the first holder of (or whose first holder
//! lacks it) is there.

use std::sync::Arc;

use mydht_cluster::{Change, View};
use mydht_ring::{MemberState, NodeId};
use mydht_store::Store;

use super::admin::answer;
use super::{Reply, failed};
use crate::movement::Pass;
use crate::node::Node;

pub(crate) async fn send_gained<S: Store>(node: &Node<S>, joiner: NodeId) -> Reply {
    // The joiner may ask before the seed's announcement arrived.
    let change = Change::Joined {
        node: joiner.clone(),
        epoch: 0,
    };
    let ring = match node.cluster.apply(&change).await {
        Ok(applied) => applied.after,
        Err(e) => return Reply::error(failed(&e)),
    };
    let before = match View::of_ring(&ring)
        .with_state(&joiner, MemberState::Removed)
        .to_ring()
    {
        Ok(r) => Arc::new(r),
        Err(e) => return Reply::error(failed(&e)),
    };
    let pass = node.movement.start(Pass::Restore { before });
    let Some(report) = node.unless_stopping(pass.finished()).await else {
        return answer(
            "sending the gained keys",
            vec!["this node is stopping".into()],
        );
    };
    let failures = report
        .failures()
        .map(|f| vec![format!("{}: {f}", node.cluster.me())])
        .unwrap_or_default();
    answer("sending the gained keys", failures)
}
