//! get, coordinated: ask the read set at once, answer with the newest
//! version once R replicas answered, and repair stale replicas in the
//! background with that version, unchanged.
//!
//! Small values come back whole from every replica asked; a large one is
//! announced by each and streamed only from the replica chosen, relayed
//! chunk by chunk to the client (the others are cancelled). A stale replica
//! of a large value is repaired by a streamed copy from the chosen one.

use std::sync::Arc;

use mydht_proto::{ErrorReply, Get, Payload, Response, Version};
use mydht_ring::{NodeId, Position};
use mydht_store::Store;
use tokio::sync::mpsc;

use super::Reply;
use super::replica::{Fetched, Found, Val, copy_value, fetch_from, store_on};
use crate::shared::Shared;

pub(crate) async fn get<S: Store>(sh: &Arc<Shared<S>>, get: Get) -> Reply {
    let ring = sh.cluster.ring();
    let quorum = ring.quorum();
    let r = match get.r.map(usize::from) {
        None => quorum.r(),
        Some(r) if (1..=quorum.n().max(1)).contains(&r) => r,
        Some(r) => {
            return Reply::error(ErrorReply::BadRequest {
                reason: format!("r={r} is outside 1..={} (the effective N)", quorum.n()),
            });
        }
    };
    let pos = Position::of_key(&get.key);
    let targets = ring.read_set(pos, |n| sh.cluster.is_down(n)).to_vec();
    let mut failed: Vec<NodeId> = ring
        .preference_list(pos)
        .iter()
        .filter(|n| !targets.contains(n))
        .cloned()
        .collect();
    let (tx, mut rx) = mpsc::channel(targets.len().max(1));
    let me = sh.cluster.me();
    let local = targets.contains(me);
    for node in targets.into_iter().filter(|n| n != me) {
        let (sh2, tx, key) = (sh.clone(), tx.clone(), get.key.clone());
        sh.tasks.spawn(async move {
            let result = fetch_from(&sh2, &node, key).await;
            let _ = tx.send((node, result)).await;
        });
    }
    drop(tx);
    let mut answers: Vec<(NodeId, Fetched)> = Vec::new();
    // This node's own copy is read here, while the remote reads run.
    if local {
        match fetch_from(sh, me, get.key.clone()).await {
            Ok(f) => answers.push((me.clone(), f)),
            Err(e) => {
                tracing::warn!(error = %e, "local read failed");
                failed.push(me.clone());
            }
        }
    }
    while answers.len() < r {
        match rx.recv().await {
            Some((node, Ok(f))) => answers.push((node, f)),
            Some((node, Err(e))) => {
                tracing::debug!(%node, error = %e, "replica read failed");
                failed.push(node);
            }
            None => break,
        }
    }
    if answers.len() < r {
        return Reply::error(ErrorReply::Unavailable {
            answered: u8::try_from(answers.len()).unwrap_or(u8::MAX),
            required: u8::try_from(r).unwrap_or(u8::MAX),
            nodes: failed,
        });
    }
    let newest = answers
        .iter()
        .enumerate()
        .filter_map(|(i, (_, f))| f.as_ref().map(|f| (i, f.version.clone())))
        .max_by(|a, b| a.1.cmp(&b.1));
    let Some((chosen, version)) = newest else {
        return Reply::error(ErrorReply::NotFound);
    };
    let holder = answers[chosen].0.clone();
    let value = answers[chosen].1.as_mut().and_then(|f| f.value.take());
    // Only versions go to the background: unchosen streams are dropped (and
    // so cancelled) now.
    let held: Vec<(NodeId, Option<Version>)> = answers
        .into_iter()
        .map(|(n, f)| (n, f.map(|f| f.version)))
        .collect();
    let small = match &value {
        Some(Val::Bytes(b)) => Some(Some(b.clone())),
        None => Some(None),
        _ => None,
    };
    repair_later(
        sh,
        get.key.clone(),
        version.clone(),
        holder,
        small,
        held,
        rx,
    );
    let chunk_size = sh.cfg.limits.chunk_size;
    match value {
        None => Reply::error(ErrorReply::NotFound),
        // Whole values are at most one chunk (larger ones stream).
        Some(Val::Bytes(b)) => Reply::Plain(Response::Value {
            version,
            value: Payload::Inline(b),
        }),
        Some(val) => match val.into_source(sh.cfg.max_value_len, chunk_size) {
            Ok((len, source)) => Reply::Stream(
                Response::Value {
                    version,
                    value: Payload::Streamed { len },
                },
                source,
            ),
            Err(reason) => Reply::error(ErrorReply::Internal { reason }),
        },
    }
}

/// Waits for late answers, then brings every stale replica to `version`:
/// small values and tombstones directly, large values by a streamed copy
/// from `holder`.
fn repair_later<S: Store>(
    sh: &Arc<Shared<S>>,
    key: bytes::Bytes,
    version: Version,
    holder: NodeId,
    small: Option<Option<bytes::Bytes>>,
    mut held: Vec<(NodeId, Option<Version>)>,
    mut rx: mpsc::Receiver<(NodeId, Result<Fetched, String>)>,
) {
    let sh2 = sh.clone();
    sh.tasks.spawn(async move {
        while let Some((node, result)) = rx.recv().await {
            if let Ok(f) = result {
                held.push((node, f.map(|Found { version, .. }| version)));
            }
        }
        for (node, v) in held {
            if v.as_ref().is_some_and(|v| *v >= version) {
                continue;
            }
            let result = match &small {
                Some(value) => {
                    store_on(&sh2, &node, key.clone(), version.clone(), value.clone()).await
                }
                None => copy_value(&sh2, &holder, &node, key.clone()).await,
            };
            match result {
                Ok(_) => tracing::debug!(%node, "read repair"),
                Err(e) => tracing::debug!(%node, error = %e, "read repair failed"),
            }
        }
    });
}
