//! Streams one large value into a `DiskStore` and back out, to measure
//! memory and throughput: run it under `/usr/bin/time -v` and read
//! "Maximum resident set size".
//!
//! ```text
//! cargo run --release -p mydht-store --example big_value -- DIR [GIB] [cold]
//! ```
//!
//! With `cold`, the value file is dropped from the page cache before the
//! read (GNU `dd iflag=nocache`, which works where `drop_caches` is denied).
//!
//! The value is generated on the fly and checked on the way out (length and
//! a running sum), so the process never holds it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use mydht_proto::{Timestamp, Version};
use mydht_ring::NodeId;
use mydht_store::{DiskOptions, DiskStore, Lookup, Store};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// An endless-looking stream of `len` pattern bytes.
struct Pattern {
    left: u64,
    block: Vec<u8>,
}

impl Pattern {
    fn new(len: u64) -> Self {
        Self {
            left: len,
            block: (0..1 << 16).map(|i: u32| (i % 251) as u8).collect(),
        }
    }
}

impl AsyncRead for Pattern {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let n = (buf.remaining() as u64)
            .min(me.left)
            .min(me.block.len() as u64) as usize;
        buf.put_slice(&me.block[..n]);
        me.left -= n as u64;
        Poll::Ready(Ok(()))
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: big_value DIR [GIB]")?;
    let gib: f64 = args.next().map_or(Ok(4.0), |s| s.parse())?;
    let cold = args.next().is_some_and(|a| a == "cold");
    let len = (gib * f64::from(1u32 << 30)) as u64;
    let opts = DiskOptions::default();
    let store = DiskStore::open(&dir, opts)?;
    println!("opened: rss {} KiB", rss_kib());
    let version = Version {
        timestamp: Timestamp::from_parts(1, 0),
        node: NodeId::new("bench:1")?,
    };

    let t = Instant::now();
    let outcome = store.put_stream(b"big", version, Pattern::new(len)).await?;
    let put = t.elapsed();
    println!(
        "put {:?}: {} bytes in {:.2?} = {:.0} MB/s, rss {} KiB",
        outcome,
        len,
        put,
        len as f64 / put.as_secs_f64() / 1e6,
        rss_kib()
    );

    if cold {
        for entry in std::fs::read_dir(std::path::Path::new(&dir).join("values"))? {
            let path = entry?.path();
            let status = std::process::Command::new("dd")
                .arg(format!("if={}", path.display()))
                .args(["iflag=nocache", "count=0", "status=none"])
                .status()?;
            if !status.success() {
                return Err("dd iflag=nocache failed".into());
            }
        }
        println!("dropped the value file from the page cache");
    }

    let t = Instant::now();
    let Lookup::Value(v) = store.get(b"big").await? else {
        return Err("value missing after put".into());
    };
    let mut reader = v.into_reader();
    let mut buf = vec![0u8; 1 << 20];
    let (mut total, mut sum) = (0u64, 0u64);
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
        sum = sum
            .wrapping_add(u64::from(buf[0]))
            .wrapping_add(u64::from(buf[n - 1]));
    }
    let get = t.elapsed();
    if total != len {
        return Err(format!("read {total} bytes, wrote {len}").into());
    }
    println!(
        "get: {} bytes in {:.2?} = {:.0} MB/s (checksum {sum}), rss {} KiB",
        total,
        get,
        total as f64 / get.as_secs_f64() / 1e6,
        rss_kib()
    );
    Ok(())
}
