//! The live membership view: one change at a time, saved before it is
//! seen, and published to whoever watches the ring.
//!
//! Readers take the current [`Ring`] as an `Arc` without waiting on
//! writers. A change goes through [`View::merge`](crate::View::merge), then
//! the new view is saved, and only then swapped in and published on a
//! `watch` channel, so no reader ever acts on a view a crash would forget.
//! The lock that serialises changes is held only around that local work,
//! never across a network call.

use std::path::Path;
use std::sync::Arc;

use mydht_ring::{NodeId, Ring, RingParams};
use tokio::sync::{Mutex, watch};

use crate::error::MembershipError;
use crate::persist::ViewFile;
use crate::view::{Change, Merged, View};

/// The ring before and after a change, and whether it changed.
#[derive(Clone, Debug)]
pub struct Applied {
    /// The ring the change was applied to.
    pub before: Arc<Ring>,
    /// The ring now (the same as `before` when nothing changed).
    pub after: Arc<Ring>,
    /// Whether the view changed.
    pub changed: bool,
}

pub(crate) struct ViewManager {
    file: ViewFile,
    /// The view; its lock serialises changes.
    view: Mutex<View>,
    ring: watch::Sender<Arc<Ring>>,
}

impl ViewManager {
    /// The view saved in `dir`, or a new one-member ring of `me` (not yet
    /// saved). Says whether a saved view was found.
    pub fn open(
        me: NodeId,
        dir: Option<&Path>,
        params: RingParams,
    ) -> Result<(Self, bool), MembershipError> {
        let file = ViewFile::new(me.clone(), dir);
        let (view, restored) = match file.load()? {
            Some(v) => (v, true),
            None => (View::first(me, params), false),
        };
        let ring = Arc::new(view.to_ring()?);
        let (tx, _) = watch::channel(ring);
        Ok((
            Self {
                file,
                view: Mutex::new(view),
                ring: tx,
            },
            restored,
        ))
    }

    /// The current ring.
    pub fn ring(&self) -> Arc<Ring> {
        self.ring.borrow().clone()
    }

    /// Wakes on every change of the ring.
    pub fn watch(&self) -> watch::Receiver<Arc<Ring>> {
        self.ring.subscribe()
    }

    /// Saves the current view (a fresh node saves its one-member ring).
    pub async fn save(&self) -> Result<(), MembershipError> {
        let view = self.view.lock().await;
        Ok(self.file.save(&view).await?)
    }

    /// Applies `change`: merged, saved, then published.
    pub async fn apply(&self, change: &Change) -> Result<Applied, MembershipError> {
        let mut view = self.view.lock().await;
        let before = self.ring();
        match view.merge(change)? {
            Merged::Unchanged => Ok(Applied {
                after: before.clone(),
                before,
                changed: false,
            }),
            Merged::Changed(next) => {
                let ring = Arc::new(next.to_ring()?);
                self.file.save(&next).await?;
                *view = next;
                self.ring.send_replace(ring.clone());
                Ok(Applied {
                    before,
                    after: ring,
                    changed: true,
                })
            }
        }
    }
}
