//! A bounded load test of `emrfs-rolemap serve` on loopback: 64 keep-alive clients (half over TCP, half
//! over the Unix socket) send 100,000 resolve requests while the configuration is replaced halfway.
//! Every request must succeed and be answered wholly by one generation: generation 1 always names the
//! first configuration's role, generation 2 the second's, and no connection sees generation 1 again
//! after generation 2.
//!
//! Prints requests per second and latency percentiles, beside the in-process resolve time of the same
//! requests measured in the same run. For the figures in BENCHMARKS.md run it in release mode:
//! `cargo test --release --test server_load -- --nocapture`. `EMRFS_LOAD_REQUESTS` and `EMRFS_LOAD_CLIENTS` change the counts.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use emrfs_rolemap::{RequestSpec, ResolverBuilder, SecurityConfiguration};
use support::server::Served;

/// Clients by default; `EMRFS_LOAD_CLIENTS` changes it.
const CLIENTS: usize = 64;
const MAPPINGS: usize = 1_000;
const ROLE_A: &str = "arn:aws:iam::123456789012:role/generation-a";
const ROLE_B: &str = "arn:aws:iam::123456789012:role/generation-b";

/// A synthetic configuration of `MAPPINGS` mappings whose first mapping sends `loadtest` to `role`.
fn config(role: &str) -> String {
    let synthetic = emrfs_rolemap::synth::config_json(MAPPINGS, 7);
    let first = format!(r#"{{"Role": "{role}", "IdentifierType": "User", "Identifiers": ["loadtest"]}},"#);
    synthetic.replacen("{\"RoleMappings\": [\n", &format!("{{\"RoleMappings\": [\n{first}\n"), 1)
}

fn body(i: usize) -> String {
    format!(r#"{{"user": "loadtest", "groups": ["g{}"], "path": "s3://bucket-{}/data/{i}.parquet"}}"#, i % 8, i % 300)
}

#[derive(Default)]
struct Tally {
    latencies_ns: Vec<u64>,
    failures: Vec<String>,
    by_generation: [usize; 3],
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_with_a_reload_midway_fails_nothing_and_mixes_no_generations() {
    let from_env =
        |name: &str, default: usize| std::env::var(name).ok().and_then(|n| n.parse().ok()).unwrap_or(default);
    let total = from_env("EMRFS_LOAD_REQUESTS", 100_000);
    let client_count = from_env("EMRFS_LOAD_CLIENTS", CLIENTS).max(1);
    let served = Arc::new(Served::start(&config(ROLE_A), "http://127.0.0.1:9", &["--watch-interval", "0.05"]));
    let next = Arc::new(AtomicUsize::new(0));
    let reloaded = Arc::new(AtomicBool::new(false));

    let started = Instant::now();
    let mut clients = Vec::new();
    for c in 0..client_count {
        let (served, next) = (served.clone(), next.clone());
        clients.push(tokio::spawn(async move {
            let client = if c % 2 == 0 { served.tcp_client(true) } else { served.unix_client() };
            let mut connection = client.connect().await;
            let mut tally = Tally::default();
            let mut seen_two = false;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return tally;
                }
                let sent = Instant::now();
                let reply = connection.try_send("POST", "/v1/resolve", Some(&body(i))).await;
                tally.latencies_ns.push(sent.elapsed().as_nanos() as u64);
                let reply = match reply {
                    Ok(reply) if reply.status == 200 => reply.json(),
                    Ok(reply) => {
                        tally.failures.push(format!("request {i}: {} {}", reply.status, reply.body));
                        continue;
                    }
                    Err(e) => {
                        tally.failures.push(format!("request {i}: {e}"));
                        connection = client.connect().await;
                        continue;
                    }
                };
                let generation = reply["generation"].as_u64().unwrap_or(0) as usize;
                let expected = match generation {
                    1 => ROLE_A,
                    2 => ROLE_B,
                    _ => "",
                };
                if reply["role"] != expected || reply["mapping_index"] != 0 {
                    tally.failures.push(format!("request {i}: generation {generation} answered {reply}"));
                }
                if generation == 1 && seen_two {
                    tally.failures.push(format!("request {i}: generation 1 after generation 2 on one connection"));
                }
                seen_two |= generation == 2;
                tally.by_generation[generation.min(2)] += 1;
            }
        }));
    }
    // Halfway, replace the file; the watcher swaps it in while the clients keep going.
    while next.load(Ordering::Relaxed) < total / 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    served.replace_config(&config(ROLE_B));
    reloaded.store(true, Ordering::Relaxed);

    let mut all = Tally::default();
    for client in clients {
        let tally = client.await.unwrap();
        all.latencies_ns.extend(tally.latencies_ns);
        all.failures.extend(tally.failures);
        for g in 0..3 {
            all.by_generation[g] += tally.by_generation[g];
        }
    }
    let elapsed = started.elapsed();
    assert!(reloaded.load(Ordering::Relaxed));
    assert!(
        all.failures.is_empty(),
        "{} failed requests, e.g.:\n{}",
        all.failures.len(),
        all.failures[..all.failures.len().min(10)].join("\n")
    );
    assert_eq!(all.latencies_ns.len(), total);
    assert_eq!(all.by_generation[0], 0);
    assert!(all.by_generation[1] > 0 && all.by_generation[2] > 0, "both generations answered: {:?}", all.by_generation);
    let ready = served.wait_ready(|r| r["generation"] == 2).await;
    assert_eq!(ready["last_reload_error"], serde_json::Value::Null);

    // The same requests resolved in process, for the ratio.
    let resolver = ResolverBuilder::new().build(&SecurityConfiguration::from_json(&config(ROLE_A)).unwrap()).unwrap();
    let specs: Vec<RequestSpec> = (0..10_000).map(|i| RequestSpec::from_json(body(i).as_bytes()).unwrap()).collect();
    let in_process = Instant::now();
    let mut hits = 0;
    for spec in &specs {
        hits += usize::from(resolver.resolve(&spec.request().unwrap()).mapping_index() == Some(0));
    }
    let in_process_ns = in_process.elapsed().as_nanos() as f64 / specs.len() as f64;
    assert_eq!(hits, specs.len());

    all.latencies_ns.sort_unstable();
    let percentile = |p: f64| all.latencies_ns[((all.latencies_ns.len() - 1) as f64 * p) as usize] as f64 / 1e3;
    let rps = total as f64 / elapsed.as_secs_f64();
    eprintln!(
        "server load: {total} requests, {client_count} clients ({} TCP, {} Unix socket), {MAPPINGS} mappings, reload midway\n\
         generation 1: {} answers, generation 2: {} answers, 0 failed\n\
         {rps:.0} requests/s in {:.2} s; latency p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.0} µs\n\
         in-process resolve of the same requests (path parsing included): {in_process_ns:.0} ns, {:.0}x less than the HTTP p50",
        client_count.div_ceil(2),
        client_count / 2,
        all.by_generation[1],
        all.by_generation[2],
        elapsed.as_secs_f64(),
        percentile(0.50),
        percentile(0.99),
        percentile(0.999),
        percentile(1.0),
        percentile(0.50) * 1e3 / in_process_ns,
    );
}
