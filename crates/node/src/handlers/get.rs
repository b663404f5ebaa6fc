//! get, coordinated: ask the read set at once, answer with the newest
//! version once R replicas answered, and repair stale replicas in the
//! background with that version, unchanged.

use std::sync::Arc;

use mydht_proto::conn::payload_for;
use mydht_proto::{ErrorReply, Get, Response, Version};
use mydht_ring::{NodeId, Position};
use mydht_store::Store;
use tokio::sync::mpsc;

use super::Reply;
use super::replica::{Fetched, fetch_from, store_on};
use crate::shared::Shared;

pub(crate) async fn get<S: Store>(sh: &Arc<Shared<S>>, get: Get) -> Reply {
    let ring = sh.members.ring();
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
    let targets = ring.read_set(pos, |n| sh.peers.is_down(n)).to_vec();
    let mut failed: Vec<NodeId> = ring
        .preference_list(pos)
        .iter()
        .filter(|n| !targets.contains(n))
        .cloned()
        .collect();
    let (tx, mut rx) = mpsc::channel(targets.len().max(1));
    for node in targets {
        let (sh2, tx, key) = (sh.clone(), tx.clone(), get.key.clone());
        sh.tasks.spawn(async move {
            let result = fetch_from(&sh2, &node, key).await;
            let _ = tx.send((node, result)).await;
        });
    }
    drop(tx);
    let mut answers: Vec<(NodeId, Fetched)> = Vec::new();
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
    let newest = newest(&answers);
    if let Some((version, value)) = newest.clone() {
        // Late answers are waited for in the background, then every stale
        // replica gets the newest version.
        let (sh2, key) = (sh.clone(), get.key.clone());
        sh.tasks.spawn(async move {
            while let Some((node, result)) = rx.recv().await {
                if let Ok(f) = result {
                    answers.push((node, f));
                }
            }
            for (node, held) in answers {
                let stale = held.as_ref().is_none_or(|(v, _)| *v < version);
                if stale {
                    let result =
                        store_on(&sh2, &node, key.clone(), version.clone(), value.clone()).await;
                    match result {
                        Ok(_) => tracing::debug!(%node, "read repair"),
                        Err(e) => tracing::debug!(%node, error = %e, "read repair failed"),
                    }
                }
            }
        });
    }
    match newest {
        Some((version, Some(bytes))) => {
            let value = payload_for(&bytes, sh.cfg.limits.chunk_size);
            Reply::WithValue(Response::Value { version, value }, bytes)
        }
        _ => Reply::error(ErrorReply::NotFound),
    }
}

fn newest(answers: &[(NodeId, Fetched)]) -> Option<(Version, Option<bytes::Bytes>)> {
    answers
        .iter()
        .filter_map(|(_, f)| f.clone())
        .max_by(|a, b| a.0.cmp(&b.0))
}
