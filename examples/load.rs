//! A simple load loop against running nodes: C concurrent clients, each
//! with its own connection, doing sequential 100-byte puts, then gets of the
//! same keys. Prints ops/s and latency percentiles per phase. The real
//! benchmark tool (`mydht bench`) comes with the files-and-HTTP work; this
//! is the measurement behind the working-cluster figures.
//!
//! `cargo run --release --example load -- NODE[,NODE...] [CLIENTS] [REQUESTS] [SIZE]`
//! (defaults: 16 clients, 20000 requests in all, 100-byte values). Clients
//! are spread over the nodes given.

use std::time::{Duration, Instant};

use mydht_client::{Client, ClientOptions};

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn phase(name: &str, clients: &[Client], per_client: usize, size: usize, put: bool) {
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(c, client)| {
            let client = client.clone();
            let value = vec![b'x'; size];
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let key = format!("load-{c}-{i}");
                    let t = Instant::now();
                    if put {
                        client.put(&key, value.clone()).await.expect("put");
                    } else {
                        client.get(&key).await.expect("get").expect("found");
                    }
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort();
    println!(
        "{name:>4}: {:>8.0} ops/s  p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  ({} ops, {} clients)",
        all.len() as f64 / secs,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        percentile(&all, 0.999),
        all.len(),
        clients.len()
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(nodes) = args.first() else {
        eprintln!("usage: load NODE[,NODE...] [CLIENTS] [REQUESTS] [SIZE]");
        std::process::exit(2);
    };
    let nodes: Vec<String> = nodes.split(',').map(String::from).collect();
    let n_clients: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(16);
    let requests: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let size: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(100);
    let clients: Vec<Client> = (0..n_clients)
        .map(|i| {
            let opts = ClientOptions {
                learn_members: false,
                ..ClientOptions::default()
            };
            Client::with_options([nodes[i % nodes.len()].clone()], opts).expect("client")
        })
        .collect();
    let per_client = requests / n_clients;
    phase("put", &clients, per_client, size, true).await;
    phase("get", &clients, per_client, size, false).await;
}
