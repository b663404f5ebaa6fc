//! A view kept on disk: `membership.json` in the data directory.
//!
//! Written atomically (temporary file, fsync, rename, fsync of the
//! directory) so that a crash leaves the old view or the new one, never a
//! mix, and a node restarted without `-s` rejoins the ring it belonged to.
//! The file names the node it belongs to, so a data directory moved to
//! another name is refused rather than joined under the wrong identity.

use std::path::{Path, PathBuf};

use mydht_ring::{Member, NodeId, RingParams};
use serde::{Deserialize, Serialize};

use crate::error::PersistError;
use crate::view::View;

/// The file's name inside the data directory.
pub const FILE: &str = "membership.json";

/// Files from before versioned entries load with every version 0 (their
/// `epoch` is ignored): the first decision or gossip round raises them.
#[derive(Serialize, Deserialize)]
struct Persisted {
    node: NodeId,
    /// For people reading the file; derived from the versions on load.
    epoch: u64,
    /// The ring version, likewise.
    #[serde(default)]
    version: String,
    replicas: usize,
    vnodes: u32,
    #[serde(default)]
    params_version: u64,
    /// While N changes, the N the data is complete under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_replicas: Option<usize>,
    members: Vec<Member>,
}

/// Where one node keeps its view; `None` keeps nothing (`--memory`).
#[derive(Clone, Debug)]
pub(crate) struct ViewFile {
    me: NodeId,
    path: Option<PathBuf>,
}

impl ViewFile {
    pub fn new(me: NodeId, dir: Option<&Path>) -> Self {
        Self {
            me,
            path: dir.map(|d| d.join(FILE)),
        }
    }

    /// The saved view, if there is one.
    pub fn load(&self) -> Result<Option<View>, PersistError> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        if !path.exists() {
            return Ok(None);
        }
        let invalid = |reason: String| PersistError::Invalid {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read(path).map_err(|source| PersistError::Io {
            path: path.clone(),
            source,
        })?;
        let saved: Persisted = serde_json::from_slice(&text).map_err(|e| invalid(e.to_string()))?;
        if saved.node != self.me {
            return Err(PersistError::Foreign {
                path: path.clone(),
                owner: saved.node,
                me: self.me.clone(),
            });
        }
        let mut params =
            RingParams::new(saved.replicas, saved.vnodes).map_err(|e| invalid(e.to_string()))?;
        if let Some(previous) = saved.previous_replicas {
            params = params
                .changing_from(previous)
                .map_err(|e| invalid(e.to_string()))?;
        }
        let view = View::new(params, saved.params_version, saved.members);
        view.to_ring().map_err(|e| invalid(e.to_string()))?;
        Ok(Some(view))
    }

    /// Replaces the saved view with `view`.
    pub async fn save(&self, view: &View) -> Result<(), PersistError> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        let saved = Persisted {
            node: self.me.clone(),
            epoch: view.epoch(),
            version: view.version().to_string(),
            replicas: view.params().replicas(),
            vnodes: view.params().vnodes(),
            params_version: view.params_version(),
            previous_replicas: view.params().previous(),
            members: view.members().to_vec(),
        };
        let text = serde_json::to_vec_pretty(&saved).map_err(|e| PersistError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let target = path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&target, &text))
            .await
            .map_err(|e| PersistError::Io {
                path: path.clone(),
                source: std::io::Error::other(e),
            })?
            .map_err(|source| PersistError::Io { path, source })
    }
}

/// Replaces `path` with `data` so that a crash leaves the old or the new
/// file, never a mix.
fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mydht_ring::MemberState;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).expect("name")
    }

    #[tokio::test]
    async fn a_saved_view_loads_back_and_belongs_to_its_node() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = ViewFile::new(id("a:1"), Some(dir.path()));
        assert!(file.load().expect("load").is_none());
        let view = View::new(
            RingParams::new(2, 4).expect("params"),
            7,
            vec![
                Member::new(id("a:1"), MemberState::Up).at(3),
                Member::new(id("b:1"), MemberState::Leaving).at(5),
            ],
        );
        file.save(&view).await.expect("save");
        assert_eq!(file.load().expect("load"), Some(view));
        // A file from before versions: every version 0, the epoch ignored.
        std::fs::write(
            dir.path().join(FILE),
            r#"{"node":"a:1","epoch":9,"replicas":2,"vnodes":4,
                "members":[{"id":"a:1","state":"Up"},{"id":"b:1","state":"Joining"}]}"#,
        )
        .expect("write");
        let old = file.load().expect("load").expect("a view");
        assert_eq!(old.epoch(), 0);
        assert_eq!(old.state_of(&id("b:1")), Some(MemberState::Joining));
        let other = ViewFile::new(id("b:1"), Some(dir.path()));
        assert!(matches!(other.load(), Err(PersistError::Foreign { .. })));
        assert!(
            ViewFile::new(id("a:1"), None)
                .load()
                .expect("none")
                .is_none()
        );
    }
}
