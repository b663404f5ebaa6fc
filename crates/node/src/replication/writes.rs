//! Which client write each version a replica applied carried out, for a
//! while: so that a client retrying a write through another coordinator
//! (its first attempt's answer lost) completes the first version instead of
//! creating a second one.
//!
//! A replica remembers `write id → (key position, version)` when it applies
//! a version that carries a write id, or already holds exactly it. The
//! memory is bounded in count and age (a retry comes within seconds; the
//! client gives up long before the age bound) and not persisted: a replica
//! that restarted has forgotten, and a retry then asks the others. The
//! coordinator's own table (`coord::dedup`) answers retries that come back
//! to the same node without asking anyone.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use mydht_proto::{Version, WriteId};
use mydht_ring::Position;
use tokio::time::Instant;

/// Write ids remembered at most (about 100 bytes each).
const CAPACITY: usize = 100_000;

/// How long a write id is remembered.
const MAX_AGE: Duration = Duration::from_secs(600);

#[derive(Default)]
struct Table {
    by_id: HashMap<WriteId, (Position, Version)>,
    /// In the order remembered, with when.
    order: VecDeque<(WriteId, Instant)>,
}

/// The write ids this node applied as a replica.
#[derive(Default)]
pub(crate) struct WriteLog {
    table: Mutex<Table>,
}

impl WriteLog {
    /// Remembers that `version` of `key` carried out `id`.
    pub fn remember(&self, id: WriteId, key: &[u8], version: &Version) {
        let now = Instant::now();
        let mut t = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if t.by_id
            .insert(id, (Position::of_key(key), version.clone()))
            .is_none()
        {
            t.order.push_back((id, now));
        }
        while t.order.len() > CAPACITY
            || t.order
                .front()
                .is_some_and(|(_, at)| now.duration_since(*at) > MAX_AGE)
        {
            if let Some((old, _)) = t.order.pop_front() {
                t.by_id.remove(&old);
            }
        }
    }

    /// The version applied for `id` on `key`, if remembered (a write id
    /// seen with another key is not the same write).
    pub fn recall(&self, id: WriteId, key: &[u8]) -> Option<Version> {
        let t = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let (pos, version) = t.by_id.get(&id)?;
        (*pos == Position::of_key(key)).then(|| version.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mydht_proto::Timestamp;
    use mydht_ring::NodeId;

    fn v(t: u64) -> Version {
        Version {
            timestamp: Timestamp::from_parts(t, 0),
            node: NodeId::new("a:1").expect("name"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_id_is_recalled_for_its_key_only_and_forgotten_with_age() {
        let log = WriteLog::default();
        let id = WriteId { client: 1, seq: 1 };
        log.remember(id, b"k", &v(5));
        assert_eq!(log.recall(id, b"k"), Some(v(5)));
        assert_eq!(log.recall(id, b"other"), None);
        assert_eq!(log.recall(WriteId { client: 1, seq: 2 }, b"k"), None);
        tokio::time::advance(MAX_AGE + Duration::from_secs(1)).await;
        log.remember(WriteId { client: 2, seq: 1 }, b"k", &v(6));
        assert_eq!(log.recall(id, b"k"), None, "forgotten past its age");
    }
}
