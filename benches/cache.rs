//! Credential-cache hit latency and throughput at 1, 2, 8 and 32 threads, beside `moka` doing the same
//! lookups, a `HashMap` behind a read lock (the least a shared cache must do), and the same `HashMap`
//! read with no lock at all (no shared writes: what this harness and machine give at each thread count,
//! the floor for the scaling from 2 to 32 threads). Run with `cargo bench --bench cache`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Barrier, RwLock};
use std::time::{Duration, Instant, SystemTime};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use emrfs_rolemap::RoleArn;
use emrfs_rolemap::credentials::{
    CacheConfig, CredentialCache, CredentialRequest, CredentialSource, Credentials, SourceError,
};
use futures_util::FutureExt;

const KEYS: usize = 1_000;
const THREADS: [usize; 4] = [1, 2, 8, 32];

struct FixedSource;

impl CredentialSource for FixedSource {
    async fn fetch(&self, _: &CredentialRequest<'_>) -> Result<Credentials, SourceError> {
        let expiration = SystemTime::now() + Duration::from_secs(3600);
        Ok(Credentials::new("ASIAFIXED", "secret", Some("token".into()), Some(expiration)))
    }
}

fn request<'a>(role: &'a RoleArn, session: &str) -> CredentialRequest<'a> {
    CredentialRequest::assume_role(role, session, 3600).expect("a valid session name")
}

/// Runs `lookup(thread, i)` `iters` times in all, spread over `threads` threads; the wall time from
/// the first thread starting its lookups to the last one finishing. Threads are created and wait at a
/// barrier first, so that creating them is not counted; each notes its own start and end, so that no
/// thread outside the work (the spawner) needs to be scheduled on time.
fn run_threads(threads: usize, iters: u64, lookup: &(dyn Fn(usize, u64) + Sync)) -> Duration {
    let per_thread = iters.div_ceil(threads as u64);
    let ready = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let ready = &ready;
                s.spawn(move || {
                    ready.wait();
                    let start = Instant::now();
                    for i in 0..per_thread {
                        lookup(t, i);
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a lookup thread panicked")).collect()
    });
    let first = spans.iter().map(|(start, _)| *start).min();
    let last = spans.iter().map(|(_, end)| *end).max();
    first.zip(last).map_or(Duration::ZERO, |(first, last)| last - first)
}

fn cache_hits(c: &mut Criterion) {
    let roles: Vec<RoleArn> = (0..KEYS)
        .map(|i| RoleArn::parse(&format!("arn:aws:iam::123456789012:role/team-{i}")).expect("valid"))
        .collect();
    let session = "emrfs-alice";
    let ours = CredentialCache::new(FixedSource, CacheConfig::default());
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    for role in &roles {
        runtime.block_on(ours.get(&request(role, session))).expect("fills");
    }
    let credentials = Arc::new(Credentials::new("ASIAFIXED", "secret", Some("token".into()), None));
    let owned_key = |i: usize| (roles[i].as_str().to_owned(), session.to_owned(), 3600u32);
    let moka: moka::sync::Cache<(String, String, u32), Arc<Credentials>> = moka::sync::Cache::new(10_000);
    let locked: RwLock<HashMap<(String, String, u32), Arc<Credentials>>> = RwLock::new(HashMap::new());
    let keys: Vec<(String, String, u32)> = (0..KEYS).map(owned_key).collect();
    for key in &keys {
        moka.insert(key.clone(), Arc::clone(&credentials));
        locked.write().expect("lock").insert(key.clone(), Arc::clone(&credentials));
    }

    let unlocked = locked.read().expect("lock").clone();
    let mut group = c.benchmark_group("cache_hit");
    group.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    for threads in THREADS {
        let index = |t: usize, i: u64| (t * 7919 + i as usize) % KEYS;
        group.bench_function(BenchmarkId::new("emrfs_rolemap", threads), |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, &|t, i| {
                    let hit = ours.get(&request(&roles[index(t, i)], session)).now_or_never();
                    black_box(hit.map(|r| r.map(|c| c.expiration())).is_some());
                })
            })
        });
        group.bench_function(BenchmarkId::new("moka_sync", threads), |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, &|t, i| {
                    black_box(moka.get(&keys[index(t, i)]));
                })
            })
        });
        group.bench_function(BenchmarkId::new("hashmap_unlocked", threads), |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, &|t, i| {
                    black_box(unlocked.get(&keys[index(t, i)]).map(|c| c.expiration()));
                })
            })
        });
        group.bench_function(BenchmarkId::new("hashmap_rwlock", threads), |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, &|t, i| {
                    let map = locked.read().expect("lock");
                    black_box(map.get(&keys[index(t, i)]).map(Arc::clone));
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, cache_hits);
criterion_main!(benches);
