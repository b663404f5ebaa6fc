//! purge: this node drops the keys it no longer owns, each only once every
//! owner holds the same or a newer version (sent to them first if not), so
//! purge never deletes the last copy. Acts on the node asked only.

use std::sync::Arc;

use mydht_store::Store;

use super::Reply;
use super::balance::answer;
use crate::movement::{self, Pass};
use crate::shared::Shared;

pub(crate) async fn purge<S: Store>(sh: &Arc<Shared<S>>) -> Reply {
    let report = movement::run(sh, Pass::Purge).await;
    let failed = report
        .failures()
        .map(|f| vec![format!("{}: {f}", sh.cluster.me())])
        .unwrap_or_default();
    answer("purge", failed)
}
