//! Value files: large values written beside the engine as they stream in.
//!
//! A value above the threshold is written to `values/<number>.val`, fsynced
//! with its directory, and only then named in the engine's metadata, so a
//! reader sees either the previous version or the whole new one. A file the
//! index does not name is an orphan (a crash or failure mid-upload, or a
//! replaced value whose unlink did not happen) and is removed on open. This
//! module does not decide visibility; the writer's commit does.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::Shared;
use super::engine::Engine;
use crate::{StoreError, ValueHash, ValueHasher};

/// Size of the writes to a value file: the stream's small reads are
/// gathered so that each blocking write moves this much.
const CHUNK: usize = 4 << 20;

pub(crate) fn dir(root: &Path) -> PathBuf {
    root.join("values")
}

pub(crate) fn path(root: &Path, id: u64) -> PathBuf {
    dir(root).join(format!("{id:016x}.val"))
}

fn parse_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".val")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Removes value files the index does not name and returns the number to
/// give the next file.
pub(crate) fn clean_orphans(root: &Path, engine: &Engine) -> Result<u64, StoreError> {
    let values = dir(root);
    std::fs::create_dir_all(&values)
        .map_err(|e| StoreError::io("creating the values directory", e))?;
    let mut next = engine.max_file_id()?.map_or(0, |m| m.saturating_add(1));
    let listing =
        std::fs::read_dir(&values).map_err(|e| StoreError::io("listing value files", e))?;
    let mut removed = 0usize;
    for entry in listing {
        let entry = entry.map_err(|e| StoreError::io("listing value files", e))?;
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(parse_name) else {
            tracing::warn!(file = ?entry.path(), "unexpected file among value files, left alone");
            continue;
        };
        next = next.max(id.saturating_add(1));
        if !engine.file_is_referenced(id)? {
            remove(root, id).map_err(|e| StoreError::io("removing an orphan value file", e))?;
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(removed, "removed orphan value files");
        sync_dir(&values).map_err(|e| StoreError::io("syncing the values directory", e))?;
    }
    Ok(next)
}

pub(crate) fn remove(root: &Path, id: u64) -> io::Result<()> {
    match std::fs::remove_file(path(root, id)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// A value file being written: removed when dropped unless handed over,
/// so a failed or abandoned upload (the caller's future dropped mid-stream)
/// leaves nothing behind.
pub(crate) struct PendingFile {
    root: PathBuf,
    id: u64,
    armed: bool,
}

impl PendingFile {
    pub fn new(shared: &Shared) -> Self {
        Self {
            root: shared.dir.clone(),
            id: shared.next_file.fetch_add(1, Ordering::Relaxed),
            armed: true,
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The writer owns the file from now on (it names or removes it).
    pub fn hand_over(mut self) {
        self.armed = false;
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: an orphan left here is removed on the next open.
            if let Err(e) = remove(&self.root, self.id) {
                tracing::warn!(id = self.id, error = %e, "could not remove an unfinished value file");
            }
        }
    }
}

/// Writes `prefix` then the rest of `body` to the pending file, fsyncs it
/// and its directory, and returns its length and the value's hash.
pub(crate) async fn write<R>(
    shared: &Shared,
    file: &PendingFile,
    prefix: &[u8],
    body: &mut R,
) -> Result<(u64, ValueHash), StoreError>
where
    R: AsyncRead + Unpin + Send,
{
    write_file(shared, file.id, prefix, body).await
}

async fn write_file<R>(
    shared: &Shared,
    id: u64,
    prefix: &[u8],
    body: &mut R,
) -> Result<(u64, ValueHash), StoreError>
where
    R: AsyncRead + Unpin + Send,
{
    let path = path(&shared.dir, id);
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .await
        .map_err(|e| StoreError::io("creating a value file", e))?;
    // tokio writes in the background from its own buffer of this size while
    // the next chunk is gathered, so disk and stream overlap.
    file.set_max_buf_size(CHUNK);
    let wr = |e| StoreError::io("writing a value file", e);
    file.write_all(prefix).await.map_err(wr)?;
    let mut hasher = ValueHasher::default();
    hasher.update(prefix);
    let mut len = prefix.len() as u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let mut filled = 0;
        while filled < CHUNK {
            let n = body
                .read(&mut buf[filled..])
                .await
                .map_err(|e| StoreError::io("reading a value stream", e))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        file.write_all(&buf[..filled]).await.map_err(wr)?;
        hasher.update(&buf[..filled]);
        len += filled as u64;
    }
    file.flush().await.map_err(wr)?;
    file.sync_all()
        .await
        .map_err(|e| StoreError::io("syncing a value file", e))?;
    let values = dir(&shared.dir);
    tokio::task::spawn_blocking(move || sync_dir(&values))
        .await
        .map_err(|_| StoreError::Closed)?
        .map_err(|e| StoreError::io("syncing the values directory", e))?;
    Ok((len, hasher.finish()))
}

/// Opens a value file for reading, `None` if it is gone (replaced since the
/// metadata was read).
pub(crate) fn open(root: &Path, id: u64) -> Result<Option<std::fs::File>, StoreError> {
    match std::fs::File::open(path(root, id)) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("opening a value file", e)),
    }
}
