//! Values of any size: puts from files and readers, gets into writers and
//! files, chunk by chunk, with progress reported as bytes move.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mydht_proto::conn::{ConnError, Exchange};
use mydht_proto::{
    Chunk, ChunkAssembler, ErrorReply, Get, Payload, Put, Request, Response, Version,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::Attempt;
use crate::{Client, ClientError, ReadOptions, WriteOptions};

/// Called with the bytes moved so far.
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);

fn local(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClientError {
    let what = what.into();
    move |source| ClientError::Local { what, source }
}

/// Bounds one step of a streamed transfer: a peer that makes no progress
/// for `deadline` is given up on (the transfer itself may take any time).
async fn idle<T>(
    deadline: Duration,
    step: impl std::future::Future<Output = Result<T, ConnError>>,
) -> Result<T, Attempt> {
    match tokio::time::timeout(deadline, step).await {
        Ok(r) => r.map_err(Attempt::from),
        Err(_) => Err(Attempt::Transport(format!(
            "no progress within {deadline:?}"
        ))),
    }
}

/// Reads up to `size` bytes (fewer only at the end of the stream).
async fn read_chunk<R: AsyncRead + Unpin>(r: &mut R, size: usize) -> std::io::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(size);
    while buf.len() < size {
        if r.read_buf(&mut buf).await? == 0 {
            break;
        }
    }
    Ok(buf.freeze())
}

/// Sends what `reader` yields as the chunks of `ex`'s request body. A read
/// failure is final (the caller's source is broken); a connection failure is
/// the transport's.
async fn send_body<R: AsyncRead + Unpin>(
    ex: &mut Exchange,
    reader: &mut R,
    chunk_size: usize,
    deadline: Duration,
    progress: Progress<'_>,
) -> Result<(), Attempt> {
    let read = |e| Attempt::Final(local("reading the value")(e));
    let mut next = read_chunk(reader, chunk_size).await.map_err(read)?;
    let (mut seq, mut sent) = (0u32, 0u64);
    loop {
        let data = std::mem::take(&mut next);
        if !data.is_empty() {
            next = read_chunk(reader, chunk_size).await.map_err(read)?;
        }
        let last = next.is_empty();
        sent += data.len() as u64;
        match tokio::time::timeout(deadline, ex.send_chunk(Chunk { seq, data, last })).await {
            Ok(Ok(())) => {}
            // The node refused the value early; its answer follows.
            Ok(Err(ConnError::Answered)) => return Ok(()),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                return Err(Attempt::Transport(format!(
                    "no progress within {deadline:?}"
                )));
            }
        }
        progress(sent);
        if last {
            return Ok(());
        }
        seq += 1;
    }
}

impl Client {
    /// Stores the file at `path` under `key`, streaming it. Retried on
    /// another node on transport failures: the file is read again from the
    /// start each time.
    pub async fn put_file(
        &self,
        key: impl AsRef<[u8]>,
        path: impl AsRef<Path>,
        opts: WriteOptions,
        progress: Progress<'_>,
    ) -> Result<Version, ClientError> {
        let key = self.key(key.as_ref())?;
        let path = path.as_ref();
        let write_id = self.next_write_id();
        let chunk_size = self.inner.opts.limits.chunk_size;
        let deadline = self.inner.opts.request_timeout;
        let tries = AtomicU32::new(0);
        let response = self
            .failover_within(false, None, |conn| {
                let key = key.clone();
                let seen = self.seen();
                let retry = tries.fetch_add(1, Ordering::Relaxed) > 0;
                async move {
                    let what = format!("reading {}", path.display());
                    let mut file = tokio::fs::File::open(path)
                        .await
                        .map_err(|e| Attempt::Final(local(what.clone())(e)))?;
                    let len = file
                        .metadata()
                        .await
                        .map_err(|e| Attempt::Final(local(what.clone())(e)))?
                        .len();
                    let value = if len <= chunk_size as u64 {
                        let bytes = read_chunk(&mut file, chunk_size)
                            .await
                            .map_err(|e| Attempt::Final(local(what)(e)))?;
                        Payload::Inline(bytes)
                    } else {
                        Payload::Streamed { len: Some(len) }
                    };
                    let inline = matches!(value, Payload::Inline(_));
                    let put = Put {
                        key,
                        value,
                        write_id,
                        seen,
                        w: opts.w,
                        retry,
                    };
                    let mut ex = idle(deadline, conn.request(Request::Put(put))).await?;
                    if inline {
                        progress(len);
                    } else {
                        send_body(&mut ex, &mut file, chunk_size, deadline, progress).await?;
                    }
                    idle(deadline, ex.response()).await
                }
            })
            .await?;
        match response {
            Response::Stored { version } => Ok(self.saw(version)),
            other => Err(self.unexpected(other)),
        }
    }

    /// Stores what `reader` yields under `key`, streaming it. Asked of the
    /// first node only and never retried: a reader cannot be read again.
    pub async fn put_reader<R: AsyncRead + Unpin + Send>(
        &self,
        key: impl AsRef<[u8]>,
        mut reader: R,
        opts: WriteOptions,
        progress: Progress<'_>,
    ) -> Result<Version, ClientError> {
        let key = self.key(key.as_ref())?;
        let node = self.primary();
        let unreachable = |last: String| ClientError::Unreachable {
            nodes: vec![node.clone()],
            last,
        };
        let conn = self.connection(&node).await.map_err(unreachable)?;
        let put = Put {
            key,
            value: Payload::Streamed { len: None },
            write_id: self.next_write_id(),
            seen: self.seen(),
            w: opts.w,
            retry: false,
        };
        let chunk_size = self.inner.opts.limits.chunk_size;
        let deadline = self.inner.opts.request_timeout;
        let attempt = async {
            let mut ex = idle(deadline, conn.request(Request::Put(put))).await?;
            send_body(&mut ex, &mut reader, chunk_size, deadline, progress).await?;
            idle(deadline, ex.response()).await
        };
        let response = match attempt.await {
            Ok(r) => r,
            Err(Attempt::Final(e)) => return Err(e),
            Err(Attempt::Transport(why)) => return Err(unreachable(why)),
        };
        match response {
            Response::Stored { version } => Ok(self.saw(version)),
            other => Err(self.unexpected(other)),
        }
    }

    /// Writes the key's newest value into `writer` as it arrives; `None`
    /// (nothing written) if the key is absent or deleted. Finding the value
    /// is retried on other nodes; once bytes flow, a failure is returned.
    pub async fn get_to_writer<W: AsyncWrite + Unpin + Send>(
        &self,
        key: impl AsRef<[u8]>,
        writer: &mut W,
        opts: ReadOptions,
        progress: Progress<'_>,
    ) -> Result<Option<Version>, ClientError> {
        let Some((version, payload, mut ex)) = self.get_head(key.as_ref(), opts).await? else {
            return Ok(None);
        };
        let chunk_size = self.inner.opts.limits.chunk_size;
        let deadline = self.inner.opts.request_timeout;
        copy_body(&mut ex, payload, writer, chunk_size, deadline, progress)
            .await
            .map_err(|e| match e {
                Attempt::Final(e) => e,
                Attempt::Transport(last) => ClientError::Unreachable {
                    nodes: vec![],
                    last,
                },
            })?;
        Ok(Some(self.saw(version)))
    }

    /// Saves the key's newest value at `path`: written to a temporary file
    /// beside it and renamed into place only when complete, so `path` never
    /// holds half a value. Retried on other nodes on transport failures.
    /// `None` (and no file) if the key is absent or deleted.
    pub async fn get_to_file(
        &self,
        key: impl AsRef<[u8]>,
        path: impl AsRef<Path>,
        opts: ReadOptions,
        progress: Progress<'_>,
    ) -> Result<Option<Version>, ClientError> {
        let key = self.key(key.as_ref())?;
        let path = path.as_ref();
        let tmp = path.with_file_name(format!(
            ".{}.mydht-part",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("download")
        ));
        let chunk_size = self.inner.opts.limits.chunk_size;
        let deadline = self.inner.opts.request_timeout;
        let result = self
            .failover_within(false, None, |conn| {
                let (key, tmp) = (key.clone(), tmp.clone());
                async move {
                    let get = Request::Get(Get { key, r: opts.r });
                    let mut ex = idle(deadline, conn.request(get)).await?;
                    let (version, payload) = match idle(deadline, ex.response()).await? {
                        Response::Value { version, value } => (version, value),
                        Response::Error(ErrorReply::NotFound) => return Ok(None),
                        other => return Err(Attempt::Final(self.unexpected(other))),
                    };
                    let what = format!("writing {}", tmp.display());
                    let mut file = tokio::fs::File::create(&tmp)
                        .await
                        .map_err(|e| Attempt::Final(local(what.clone())(e)))?;
                    copy_body(&mut ex, payload, &mut file, chunk_size, deadline, progress).await?;
                    file.sync_all()
                        .await
                        .map_err(|e| Attempt::Final(local(what)(e)))?;
                    Ok(Some(version))
                }
            })
            .await;
        match result {
            Ok(Some(version)) => {
                tokio::fs::rename(&tmp, path)
                    .await
                    .map_err(local(format!("saving {}", path.display())))?;
                Ok(Some(self.saw(version)))
            }
            other => {
                let _ = tokio::fs::remove_file(&tmp).await;
                other
            }
        }
    }

    /// Asks for the key's value and returns its version, payload and the
    /// exchange its chunks will arrive on.
    async fn get_head(
        &self,
        key: &[u8],
        opts: ReadOptions,
    ) -> Result<Option<(Version, Payload, Exchange)>, ClientError> {
        let key = self.key(key)?;
        self.failover(false, |conn| {
            let key = key.clone();
            async move {
                let mut ex = conn.request(Request::Get(Get { key, r: opts.r })).await?;
                match ex.response().await? {
                    Response::Value { version, value } => Ok(Some((version, value, ex))),
                    Response::Error(ErrorReply::NotFound) => Ok(None),
                    other => Err(Attempt::Final(self.unexpected(other))),
                }
            }
        })
        .await
    }
}

/// Writes a value announced by `payload` (inline, or chunks on `ex`) into
/// `writer`, checking the chunks as they pass.
async fn copy_body<W: AsyncWrite + Unpin>(
    ex: &mut Exchange,
    payload: Payload,
    writer: &mut W,
    chunk_size: usize,
    deadline: Duration,
    progress: Progress<'_>,
) -> Result<(), Attempt> {
    let write = |e| Attempt::Final(local("writing the value")(e));
    match payload {
        Payload::Inline(b) => {
            writer.write_all(&b).await.map_err(write)?;
            progress(b.len() as u64);
        }
        Payload::Streamed { len } => {
            let mut check = ChunkAssembler::new(len, u64::MAX, chunk_size)
                .map_err(|e| Attempt::Transport(e.to_string()))?;
            while !check.is_done() {
                let chunk = idle(deadline, ex.chunk()).await?;
                check
                    .push(&chunk)
                    .map_err(|e| Attempt::Transport(e.to_string()))?;
                writer.write_all(&chunk.data).await.map_err(write)?;
                progress(check.received());
            }
        }
    }
    writer.flush().await.map_err(write)
}
