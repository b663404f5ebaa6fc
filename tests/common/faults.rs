//! A transport that can cut members off: every node of a test dials through
//! one [`Net`], which refuses new connections to or from a cut member, fails
//! reads and writes on the ones it already has, and drops its failure
//! detector's datagrams. A cut is both ways, like a pulled cable; clients
//! and HTTP (the test's own eyes) are not cut.

use std::collections::BTreeSet;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use std::time::Duration;

use mydht_cluster::net::{BoxFuture, Datagrams, Dialer, Stream, TcpDialer};
use mydht_node::{NodeConfig, NodeHandle, Transport};
use mydht_ring::NodeId;
use mydht_store::MemoryStore;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `size` nodes (memory stores) dialing through `net`, configured by
/// `cfg(seed)`; every node after the first joins through the first.
pub async fn start(
    net: &Arc<Net>,
    size: usize,
    cfg: impl Fn(Option<&NodeId>) -> NodeConfig,
) -> Vec<NodeHandle> {
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for i in 0..size {
        let seed = nodes.first().map(|n| n.name().clone());
        nodes.push(start_one(net, i, cfg(seed.as_ref())).await);
    }
    nodes
}

/// The test config, quick to notice a cut (N = 3).
pub fn cfg(seed: Option<&NodeId>) -> NodeConfig {
    let mut cfg = super::config(seed, 3);
    cfg.down_after = Duration::from_millis(500);
    cfg
}

/// Starts node `index` through `net`.
pub async fn start_one(net: &Arc<Net>, index: usize, cfg: NodeConfig) -> NodeHandle {
    let node = mydht_node::start_with_transport(cfg, MemoryStore::new(), net.transport(index))
        .await
        .expect("node starts");
    net.named(index, node.name().as_str());
    node
}

/// Shuts every node down, each within a deadline.
pub async fn shutdown(nodes: Vec<NodeHandle>) {
    for n in nodes {
        let name = n.name().clone();
        tokio::time::timeout(Duration::from_secs(15), n.shutdown())
            .await
            .unwrap_or_else(|_| panic!("{name} did not shut down"));
    }
}

/// Which members are cut off, shared by every node's dialer.
#[derive(Default)]
pub struct Net {
    /// Advertised names, by the index a dialer was made with.
    names: Mutex<Vec<Option<String>>>,
    cut: Mutex<BTreeSet<String>>,
    /// Links cut between two members, each pair in name order.
    links: Mutex<BTreeSet<(String, String)>>,
    /// One-way cuts: dials from a dialer's index to a name.
    one_way: Mutex<BTreeSet<(usize, String)>>,
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

    /// Both the dialer and the datagram layer for node `index`.
    pub fn transport(self: &Arc<Self>, index: usize) -> Transport {
        let net = self.clone();
        Transport {
            dialer: self.dialer(index),
            datagrams: Some(Box::new(move |inner| {
                Arc::new(FaultDatagrams { net, index, inner })
            })),
        }
    }

    /// Names node `index` once it has started (its port is known then).
    pub fn named(&self, index: usize, name: &str) {
        self.names.lock().expect("names")[index] = Some(name.to_string());
    }

    /// Cuts `name` off from every other member.
    pub fn cut(&self, name: &str) {
        self.cut.lock().expect("cut").insert(name.to_string());
    }

    /// Cuts the one link between `a` and `b`; each still reaches the rest.
    pub fn cut_link(&self, a: &str, b: &str) {
        self.links.lock().expect("links").insert(pair(a, b));
    }

    /// Cuts node `index`'s own connections to `to` (known before node
    /// `index` has a name); `to` still reaches it.
    pub fn cut_from(&self, index: usize, to: &str) {
        self.one_way
            .lock()
            .expect("one way")
            .insert((index, to.to_string()));
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.cut.lock().expect("cut").clear();
        self.links.lock().expect("links").clear();
        self.one_way.lock().expect("one way").clear();
    }

    fn is_cut(&self, index: usize, to: &str) -> bool {
        if self
            .one_way
            .lock()
            .expect("one way")
            .contains(&(index, to.to_string()))
        {
            return true;
        }
        let from = self.names.lock().expect("names")[index].clone();
        let cut = self.cut.lock().expect("cut");
        if cut.contains(to) || from.as_ref().is_some_and(|f| cut.contains(f)) {
            return true;
        }
        from.is_some_and(|f| self.links.lock().expect("links").contains(&pair(&f, to)))
    }
}

fn pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
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

/// A node's UDP socket, dropping datagrams over cut links.
struct FaultDatagrams {
    net: Arc<Net>,
    index: usize,
    inner: Arc<dyn Datagrams>,
}

impl Datagrams for FaultDatagrams {
    fn send_to<'a>(&'a self, to: &'a str, packet: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        if self.net.is_cut(self.index, to) {
            return Box::pin(async { Ok(()) });
        }
        self.inner.send_to(to, packet)
    }

    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, io::Result<usize>> {
        self.inner.recv(buf)
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
