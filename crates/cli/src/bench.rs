//! `mydht bench`: a load generator in the spirit of redis-benchmark, with
//! its flags where they overlap (`-c`, `-n`, `-d`, `-t`, `-r`, `-P`,
//! `--csv`). Each connection is its own client; `-P` requests run at once on
//! each. Per test it prints ops/s and p50/p99/p99.9 latency.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mydht_client::{Client, ClientOptions};

use crate::args::BenchArgs;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Test {
    Put,
    Get,
}

/// A seeded xorshift, one per worker, for random keys.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub async fn run(args: BenchArgs) -> ExitCode {
    let mut tests = Vec::new();
    for t in args
        .tests
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        match t.to_ascii_lowercase().as_str() {
            "put" | "set" => tests.push(Test::Put),
            "get" => tests.push(Test::Get),
            other => {
                eprintln!("mydht: unknown test {other:?} (put, get)");
                return ExitCode::from(2);
            }
        }
    }
    if args.connections == 0 || args.pipeline == 0 || args.requests == 0 {
        eprintln!("mydht: -c, -P and -n must be at least 1");
        return ExitCode::from(2);
    }
    let opts = ClientOptions {
        learn_members: false,
        attempts: 1,
        ..ClientOptions::default()
    };
    let mut clients = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        match Client::with_options([args.target.addr()], opts.clone()) {
            Ok(c) => clients.push(c),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        }
    }
    let value = Bytes::from(vec![b'x'; args.size]);
    if args.csv {
        println!("\"test\",\"rps\",\"p50_ms\",\"p99_ms\",\"p999_ms\"");
    }
    for test in tests {
        let name = if test == Test::Put { "PUT" } else { "GET" };
        let issued = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut workers = Vec::new();
        for (c, client) in clients.iter().enumerate() {
            for p in 0..args.pipeline {
                let (client, value, issued) = (client.clone(), value.clone(), issued.clone());
                let (total, keyspace, from) = (args.requests, args.keyspace, args.sequential_from);
                let seed = 0x9e37_79b9_7f4a_7c15u64 ^ ((c * 131 + p) as u64 + 1);
                workers.push(tokio::spawn(async move {
                    let mut rng = Rng(seed);
                    let mut latencies = Vec::new();
                    let mut errors = 0usize;
                    loop {
                        let n = issued.fetch_add(1, Ordering::Relaxed);
                        if n >= total {
                            break;
                        }
                        let key = match (from, keyspace) {
                            (Some(start), _) => format!("key:{:012}", start + n as u64),
                            (None, Some(r)) if r > 0 => format!("key:{:012}", rng.next() % r),
                            _ => "key:000000000000".to_string(),
                        };
                        let t = Instant::now();
                        let ok = match test {
                            Test::Put => client.put(&key, value.clone()).await.is_ok(),
                            // A missing key is an answer, as in redis-benchmark.
                            Test::Get => client.get(&key).await.is_ok(),
                        };
                        latencies.push(t.elapsed());
                        if !ok {
                            errors += 1;
                        }
                    }
                    (latencies, errors)
                }));
            }
        }
        let mut all = Vec::with_capacity(args.requests);
        let mut errors = 0;
        for w in workers {
            if let Ok((l, e)) = w.await {
                all.extend(l);
                errors += e;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        all.sort_unstable();
        let rps = all.len() as f64 / secs;
        let (p50, p99, p999) = (
            ms(percentile(&all, 0.5)),
            ms(percentile(&all, 0.99)),
            ms(percentile(&all, 0.999)),
        );
        if args.csv {
            println!("\"{name}\",\"{rps:.2}\",\"{p50:.3}\",\"{p99:.3}\",\"{p999:.3}\"");
        } else {
            println!(
                "{name}: {rps:.2} requests per second, p50={p50:.3} msec, p99={p99:.3} msec, p99.9={p999:.3} msec ({} requests, {} connections, pipeline {}, {} bytes)",
                all.len(),
                args.connections,
                args.pipeline,
                args.size
            );
        }
        if errors > 0 {
            eprintln!("mydht: {errors} of {} {name} requests failed", all.len());
            return ExitCode::from(3);
        }
    }
    ExitCode::SUCCESS
}
