//! A joining member asks this node for the keys it gained (`SendGained`):
//! this node runs a restore pass against the ring without the joiner and
//! answers once every key it is the first holder of (or whose first holder
//! lacks it) is there.

use std::sync::Arc;

use mydht_cluster::View;
use mydht_proto::ErrorReply;
use mydht_ring::{MemberState, NodeId};
use mydht_store::Store;

use super::admin::answer;
use super::{Reply, failed};
use crate::movement::Pass;
use crate::node::Node;

pub(crate) async fn send_gained<S: Store>(
    node: &Node<S>,
    joiner: NodeId,
    asked: Vec<NodeId>,
) -> Reply {
    // The joiner pushes its view before it asks, so this node knows it;
    // an ask from a node this view does not list as joining is refused
    // rather than acted on with a guess at its version.
    let ring = node.cluster.ring();
    if ring.member(&joiner).map(|m| m.state()) != Some(MemberState::Joining) {
        return Reply::error(ErrorReply::BadRequest {
            reason: format!(
                "{joiner} is not joining in {}'s view of the ring",
                node.cluster.me()
            ),
        });
    }
    let before = match View::of_ring(&ring)
        .with_state(&joiner, MemberState::Removed)
        .to_ring()
    {
        Ok(r) => Arc::new(r),
        Err(e) => return Reply::error(failed(&e)),
    };
    let pass = node.movement.start(Pass::restore_by(before, asked));
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
