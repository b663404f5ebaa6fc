//! A transport that can cut members off: every node of a test dials through
//! one [`Net`], which refuses new connections to or from a cut member and
//! fails reads and writes on the ones it already has. A cut is both ways,
//! like a pulled cable; clients and HTTP (the test's own eyes) are not cut.

use std::collections::BTreeSet;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use mydht_cluster::net::{BoxFuture, Dialer, Stream, TcpDialer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Which members are cut off, shared by every node's dialer.
#[derive(Default)]
pub struct Net {
    /// Advertised names, by the index a dialer was made with.
    names: Mutex<Vec<Option<String>>>,
    cut: Mutex<BTreeSet<String>>,
}

impl Net {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A dialer for the node that will be known as `index`.
    pub fn dialer(self: &Arc<Self>, index: usize) -> Arc<dyn Dialer> {
        let mut names = self.names.lock().expect("names");
        if names.len() <= index {
            names.resize(index + 1, None);
        }
        Arc::new(FaultDialer {
            net: self.clone(),
            index,
        })
    }

    /// Names node `index` once it has started (its port is known then).
    pub fn named(&self, index: usize, name: &str) {
        self.names.lock().expect("names")[index] = Some(name.to_string());
    }

    /// Cuts `name` off from every other member.
    pub fn cut(&self, name: &str) {
        self.cut.lock().expect("cut").insert(name.to_string());
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.cut.lock().expect("cut").clear();
    }

    fn is_cut(&self, from: usize, to: &str) -> bool {
        let cut = self.cut.lock().expect("cut");
        let from = self.names.lock().expect("names")[from].clone();
        cut.contains(to) || from.is_some_and(|f| cut.contains(&f))
    }
}

struct FaultDialer {
    net: Arc<Net>,
    index: usize,
}

fn cut_off() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionRefused, "cut off by the test")
}

impl Dialer for FaultDialer {
    fn dial<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Stream>> {
        Box::pin(async move {
            if self.net.is_cut(self.index, addr) {
                return Err(cut_off());
            }
            let s = TcpDialer.dial(addr).await?;
            let link = Link {
                net: self.net.clone(),
                from: self.index,
                to: addr.to_string(),
            };
            Ok(Stream::new(
                Faulty {
                    inner: s.read,
                    link: link.clone(),
                },
                Faulty {
                    inner: s.write,
                    link,
                },
            ))
        })
    }
}

#[derive(Clone)]
struct Link {
    net: Arc<Net>,
    from: usize,
    to: String,
}

impl Link {
    fn check(&self) -> io::Result<()> {
        if self.net.is_cut(self.from, &self.to) {
            Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "cut off by the test",
            ))
        } else {
            Ok(())
        }
    }
}

/// One half of a dialed connection that fails once its link is cut.
struct Faulty<T> {
    inner: T,
    link: Link,
}

impl<T: AsyncRead + Unpin> AsyncRead for Faulty<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.link.check()?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Faulty<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.link.check()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.link.check()?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
