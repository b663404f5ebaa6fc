//! The transport seam: how this node reaches another member ([`Dialer`]),
//! how it takes connections ([`Listener`]), and the datagrams the failure
//! detector speaks ([`Datagrams`], UDP on the node's port number).
//!
//! TCP implements both today ([`TcpDialer`], [`TcpAcceptor`]); TLS and a
//! simulated network for fault tests implement the same two traits later,
//! and nothing above this module names a socket type. A connection travels
//! as its two halves ([`Stream`]), which is what the framing layer wants
//! and costs a split TCP stream no lock. [`Rewind`] gives back bytes already
//! read (a connection is told binary from HTTP by its first bytes, which
//! also works where the bytes cannot be peeked, as under TLS), and
//! [`Joined`] serves two halves as one stream for HTTP.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A boxed future, for the transport traits (they are used as objects).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// The receiving half of a connection.
pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// The sending half of a connection.
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// A connected byte stream, as its two halves.
pub struct Stream {
    /// Bytes from the peer.
    pub read: BoxRead,
    /// Bytes to the peer.
    pub write: BoxWrite,
}

impl Stream {
    /// A stream over two halves.
    pub fn new(
        read: impl AsyncRead + Send + Unpin + 'static,
        write: impl AsyncWrite + Send + Unpin + 'static,
    ) -> Self {
        Self {
            read: Box::new(read),
            write: Box::new(write),
        }
    }
}

/// Opens connections to other members by their advertised `host:port`.
pub trait Dialer: Send + Sync + 'static {
    /// A connected stream to `addr`; the caller bounds the time it takes.
    fn dial<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Stream>>;
}

/// Takes incoming connections.
pub trait Listener: Send + 'static {
    /// The next connection, with the peer's address as text.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(Stream, String)>>;

    /// The address it listens on.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// Plain TCP, with Nagle off (small requests go out at once).
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpDialer;

impl Dialer for TcpDialer {
    fn dial<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Stream>> {
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (r, w) = stream.into_split();
            Ok(Stream::new(r, w))
        })
    }
}

/// A TCP listener.
pub struct TcpAcceptor(TcpListener);

impl TcpAcceptor {
    /// Listens on `addr` (`host:port`; port 0 takes any free one).
    pub async fn bind(addr: &str) -> io::Result<Self> {
        Ok(Self(TcpListener::bind(addr).await?))
    }
}

impl Listener for TcpAcceptor {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(Stream, String)>> {
        Box::pin(async move {
            let (stream, peer) = self.0.accept().await?;
            // Best effort: a connection without it still works, later.
            let _ = stream.set_nodelay(true);
            let (r, w) = stream.into_split();
            Ok((Stream::new(r, w), peer.to_string()))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// Datagrams to and from other members, by name.
pub trait Datagrams: Send + Sync + 'static {
    /// Sends one datagram to member `to` (`host:port`). Best-effort: a
    /// datagram may be lost, as on any network.
    fn send_to<'a>(&'a self, to: &'a str, packet: &'a [u8]) -> BoxFuture<'a, io::Result<()>>;
    /// The next datagram, into `buf`; its length.
    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, io::Result<usize>>;
}

/// A UDP socket; names are resolved once each and remembered.
pub struct UdpDatagrams {
    socket: tokio::net::UdpSocket,
    resolved: std::sync::Mutex<std::collections::HashMap<String, SocketAddr>>,
}

impl UdpDatagrams {
    /// Binds `addr` (`host:port`).
    pub async fn bind(addr: &str) -> io::Result<Self> {
        Ok(Self {
            socket: tokio::net::UdpSocket::bind(addr).await?,
            resolved: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// The address it is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    async fn resolve(&self, to: &str) -> io::Result<SocketAddr> {
        let known = self
            .resolved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(to)
            .copied();
        if let Some(addr) = known {
            return Ok(addr);
        }
        let addr = match to.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => tokio::net::lookup_host(to)
                .await?
                .next()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?,
        };
        let mut resolved = self
            .resolved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Bounded: one entry per member name ever heard of, and a cluster
        // names at most MAX_MEMBERS; forget all past that.
        if resolved.len() >= mydht_ring::MAX_MEMBERS {
            resolved.clear();
        }
        resolved.insert(to.to_string(), addr);
        Ok(addr)
    }
}

impl Datagrams for UdpDatagrams {
    fn send_to<'a>(&'a self, to: &'a str, packet: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            let addr = self.resolve(to).await?;
            // Never wait on a full socket buffer: a lost probe is what SWIM
            // is built for, a stalled detector is not.
            match self.socket.try_send_to(packet, addr) {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
                Err(e) => Err(e),
            }
        })
    }

    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, io::Result<usize>> {
        Box::pin(async move { Ok(self.socket.recv_from(buf).await?.0) })
    }
}

/// A reader that first gives back `prefix` (bytes already read off it).
pub struct Rewind<R> {
    prefix: bytes::Bytes,
    inner: R,
}

impl<R> Rewind<R> {
    /// `inner`, with `prefix` in front.
    pub fn new(prefix: bytes::Bytes, inner: R) -> Self {
        Self { prefix, inner }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Rewind<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

/// Two halves served as one stream.
pub struct Joined {
    read: BoxRead,
    write: BoxWrite,
}

impl Joined {
    /// One stream over `read` and `write`.
    pub fn new(read: BoxRead, write: BoxWrite) -> Self {
        Self { read, write }
    }
}

impl AsyncRead for Joined {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for Joined {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.write).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.write).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.write).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.write).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.write.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn tcp_dials_and_accepts_and_rewind_gives_the_first_bytes_back() {
        let mut listener = TcpAcceptor::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let dialing = tokio::spawn(async move {
            let mut s = TcpDialer.dial(&addr).await.expect("dial");
            s.write.write_all(b"hello world").await.expect("write");
            s.write.shutdown().await.expect("shutdown");
        });
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut first = [0u8; 5];
        s.read.read_exact(&mut first).await.expect("read");
        let mut all = Vec::new();
        Rewind::new(bytes::Bytes::copy_from_slice(&first), s.read)
            .read_to_end(&mut all)
            .await
            .expect("read");
        assert_eq!(all, b"hello world");
        dialing.await.expect("dialer");
    }
}
