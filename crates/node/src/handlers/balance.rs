//! balance: every replica of every range compares what it holds with the
//! others and sends what they lack (see `movement`). The node asked forwards
//! the request, flagged, to every other member, runs its own pass at the
//! same time, and answers once all have finished, naming any that failed.

use std::sync::Arc;

use mydht_proto::{ErrorReply, Request, Response};
use mydht_store::Store;

use super::Reply;
use crate::movement;
use crate::shared::Shared;

pub(crate) async fn balance<S: Store>(sh: &Arc<Shared<S>>, forwarded: bool) -> Reply {
    let others = if forwarded {
        Vec::new()
    } else {
        sh.cluster.others()
    };
    let request = Request::Balance { forwarded: true };
    let (report, theirs) = tokio::join!(
        movement::balance(sh),
        sh.cluster.tell(others, &request, sh.cfg.admin_timeout)
    );
    let mut failed = Vec::new();
    if let Some(f) = report.failures() {
        failed.push(format!("{}: {f}", sh.cluster.me()));
    }
    failed.extend(theirs.iter().map(ToString::to_string));
    answer("balance", failed)
}

/// `Done`, or an error naming what failed.
pub(super) fn answer(what: &str, failed: Vec<String>) -> Reply {
    if failed.is_empty() {
        Reply::Plain(Response::Done)
    } else {
        Reply::error(ErrorReply::Internal {
            reason: format!("{what} did not finish on: {}", failed.join("; ")),
        })
    }
}
