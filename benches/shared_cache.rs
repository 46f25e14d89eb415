//! The fleet's shared tier on a real Redis (`redis-server`, started here on a free loopback port; set
//! REDIS_SERVER or put it on PATH: `bash scripts/install-redis.sh`). Four numbers from one run:
//!
//! - a local hit without a shared tier, and with one: the tier must cost a hit nothing;
//! - a shared hit (a local miss that Redis answers: one `MGET`, opening the sealed entry, filling the
//!   local entry), and the bare round trip it contains: the same `MGET` of two keys on the same kind of
//!   connection, with nothing else.
//!
//! Run with `cargo bench --bench shared_cache`.

use std::hint::black_box;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use emrfs_rolemap::RoleArn;
use emrfs_rolemap::credentials::{
    CacheConfig, CredentialCache, CredentialRequest, CredentialSource, Credentials, SourceError,
};
use futures_util::FutureExt;

/// Requests the shared-hit bench cycles through; the local cache holds far fewer, so each is a local miss.
const REQUESTS: usize = 2_000;
const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

struct FixedSource;

impl CredentialSource for FixedSource {
    async fn fetch(&self, _: &CredentialRequest<'_>) -> Result<Credentials, SourceError> {
        let expiration = SystemTime::now() + Duration::from_secs(3600);
        Ok(Credentials::new("ASIAFIXED", "secret-access-key-0123456789", Some("token".repeat(200)), Some(expiration)))
    }
}

/// `redis-server` on a free port, killed on drop.
struct Redis(Child, u16);

impl Redis {
    fn start() -> Redis {
        let program = std::env::var_os("REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new(&program)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {program:?}: {e}; install Redis with `bash scripts/install-redis.sh` or set REDIS_SERVER")
            });
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis(child, port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn request<'a>(role: &'a RoleArn, session: &str) -> CredentialRequest<'a> {
    CredentialRequest::assume_role(role, session, 3600).expect("a valid session name")
}

fn shared_tier(c: &mut Criterion) {
    let redis = Redis::start();
    let url = format!("redis://127.0.0.1:{}", redis.1);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let _entered = runtime.enter();
    let role = RoleArn::parse("arn:aws:iam::123456789012:role/analysts").expect("valid");
    let sessions: Vec<String> = (0..REQUESTS).map(|i| format!("emrfs-user{i}")).collect();
    let mut config = CacheConfig::default();
    config.shared_call_timeout = Duration::from_secs(1);

    let local = CredentialCache::new(FixedSource, config.clone());
    let shared = CredentialCache::new(FixedSource, config.clone()).with_redis(&url, None, KEY, None).expect("redis");
    for cache in [&local, &shared] {
        runtime.block_on(cache.get(&request(&role, &sessions[0]))).expect("fills");
    }
    let mut group = c.benchmark_group("shared_tier");
    group.bench_function("local hit, no shared tier", |b| {
        b.iter(|| black_box(local.get(&request(&role, &sessions[0])).now_or_never()))
    });
    group.bench_function("local hit, shared tier", |b| {
        b.iter(|| black_box(shared.get(&request(&role, &sessions[0])).now_or_never()))
    });

    // Fill Redis through one node, then read through a node that keeps 16 entries: every lookup of the
    // cycle is a local miss that Redis answers.
    for session in &sessions {
        runtime.block_on(shared.get(&request(&role, session))).expect("fills");
    }
    config.max_entries = 16;
    let reader = CredentialCache::new(FixedSource, config).with_redis(&url, None, KEY, None).expect("redis");
    let mut next = 0;
    group.bench_function("shared hit (local miss, Redis answers)", |b| {
        b.iter(|| {
            next = (next + 1) % REQUESTS;
            black_box(runtime.block_on(reader.get(&request(&role, &sessions[next]))).expect("a shared hit"))
        })
    });
    let stats = reader.stats();
    assert_eq!(stats.source_calls, 0, "every lookup was a shared hit: {stats:?}");

    let client = redis::Client::open(url.as_str()).expect("client");
    let mut connection = runtime.block_on(redis::aio::ConnectionManager::new(client)).expect("connection");
    let keys =
        vec!["emrfs-rolemap:v1:c:00000000000000000000000000000000".to_owned(), "emrfs-rolemap:v1:d:0".to_owned()];
    let _: () = runtime
        .block_on(redis::cmd("SET").arg(&keys[0]).arg(vec![7u8; 1100]).query_async(&mut connection))
        .expect("set");
    group.bench_function("bare Redis MGET of two keys", |b| {
        b.iter(|| {
            let mut connection = connection.clone();
            let values: Vec<Option<Vec<u8>>> =
                runtime.block_on(redis::cmd("MGET").arg(&keys).query_async(&mut connection)).expect("mget");
            black_box(values)
        })
    });
    group.finish();
}

criterion_group!(benches, shared_tier);
criterion_main!(benches);
