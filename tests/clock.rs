//! The coarse clock's ticker thread: one for the whole process however many caches there are, gone once
//! the last cache is dropped, and back with the next one. The only test of its binary, so that no other
//! test's cache is alive meanwhile. Threads are counted by name in `/proc`, hence Linux only.
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use emrfs_rolemap::credentials::SourceError;
use emrfs_rolemap::credentials::{CacheConfig, CredentialCache, CredentialRequest, CredentialSource, Credentials};

struct NoSource;

impl CredentialSource for NoSource {
    async fn fetch(&self, _: &CredentialRequest<'_>) -> Result<Credentials, SourceError> {
        Err(SourceError::other("no source"))
    }
}

/// The threads of this process named like the ticker.
fn tickers() -> usize {
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc is mounted");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "rolemap-clock")
        .count()
}

/// Waits (bounded, for a busy machine) until there are `n` ticker threads.
fn expect_tickers(n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tickers() != n {
        assert!(Instant::now() < deadline, "{} ticker threads, expected {n}", tickers());
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn one_ticker_serves_every_cache_and_stops_with_the_last() {
    assert_eq!(tickers(), 0, "no cache, no ticker");
    let caches: Vec<_> = (0..100).map(|_| CredentialCache::new(NoSource, CacheConfig::default())).collect();
    expect_tickers(1);
    let clones: Vec<_> = caches.iter().take(10).cloned().collect();
    drop(caches);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(tickers(), 1, "clones keep the ticker");
    drop(clones);
    expect_tickers(0);
    let again = CredentialCache::new(NoSource, CacheConfig::default());
    expect_tickers(1);
    drop(again);
    expect_tickers(0);
}
