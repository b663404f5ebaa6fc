//! HTTP on the node's port under a slow client: it is cut off at its
//! deadline while others are served.

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_http_client_is_cut_off_while_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut cfg = common::config(None, 1);
    cfg.handshake_timeout = std::time::Duration::from_millis(500);
    let node = mydht_node::start(cfg, mydht_store::MemoryStore::new())
        .await
        .expect("node");
    let addr = node.local_addr();
    // Half a request line, then nothing.
    let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHo")
        .await
        .expect("write");
    // Meanwhile a whole request is answered at once.
    let mut quick = tokio::net::TcpStream::connect(addr).await.expect("connect");
    quick
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        quick.read_to_string(&mut answer),
    )
    .await
    .expect("served while the slow one waits")
    .expect("read");
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n"),
        "{answer}"
    );
    // The slow one is closed by the node (end of stream or reset) once the
    // header deadline passes, not before.
    let started = tokio::time::Instant::now();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        slow.read_to_end(&mut rest),
    )
    .await
    .expect("the node closes the slow connection");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(300),
        "closed before its deadline"
    );
    tokio::time::timeout(std::time::Duration::from_secs(10), node.shutdown())
        .await
        .expect("shuts down");
}
