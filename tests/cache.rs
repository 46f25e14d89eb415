//! The credential cache on a fake source and a manual clock: single flight, refresh ahead with jitter,
//! stale-if-error, the AccessDenied memory, no caching of transient errors, LRU eviction, and a
//! contention run that never sees expired credentials. No test sleeps: time moves by `ManualClock`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use emrfs_rolemap::RoleArn;
use emrfs_rolemap::credentials::{
    CacheConfig, Clock, CredentialCache, CredentialRequest, CredentialSource, Credentials, SourceError,
};
use futures_util::FutureExt;
use support::clock::ManualClock;

mod support;

/// The kinds of source failure, each made by its `SourceError` constructor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    AccessDenied,
    Throttling,
    Timeout,
    Connection,
    ServerError,
    InvalidRequest,
    BaseCredentials,
    Other,
}

impl ErrorKind {
    fn error(self, message: String) -> SourceError {
        match self {
            ErrorKind::AccessDenied => SourceError::access_denied(message),
            ErrorKind::Throttling => SourceError::throttling(message),
            ErrorKind::Timeout => SourceError::timeout(message),
            ErrorKind::Connection => SourceError::connection(message),
            ErrorKind::ServerError => SourceError::server_error(message),
            ErrorKind::InvalidRequest => SourceError::invalid_request(message),
            ErrorKind::BaseCredentials => SourceError::base_credentials(message),
            ErrorKind::Other => SourceError::other(message),
        }
    }

    /// The kind's name, as `SourceError::kind` gives it.
    fn name(self) -> &'static str {
        self.error(String::new()).kind()
    }
}
use tokio::sync::Semaphore;

const LIFETIME: Duration = Duration::from_secs(3600);

/// A source that counts calls, hands out credentials valid for `LIFETIME` from the clock's now, and
/// can be told to fail or to hold every call until released.
struct Fake {
    clock: Arc<ManualClock>,
    calls: AtomicUsize,
    failure: Mutex<Option<ErrorKind>>,
    gate: Option<Arc<Semaphore>>,
    panic_next: std::sync::atomic::AtomicBool,
}

impl Fake {
    fn new(clock: &Arc<ManualClock>) -> Self {
        Fake {
            clock: Arc::clone(clock),
            calls: AtomicUsize::new(0),
            failure: Mutex::new(None),
            gate: None,
            panic_next: false.into(),
        }
    }

    fn fail_with(&self, kind: Option<ErrorKind>) {
        *self.failure.lock().unwrap() = kind;
    }
}

impl CredentialSource for Fake {
    async fn fetch(&self, request: &CredentialRequest<'_>) -> Result<Credentials, SourceError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.panic_next.swap(false, Ordering::SeqCst) {
            panic!("a credential source that panics");
        }
        if let Some(gate) = &self.gate {
            let _permit = gate.acquire().await.map_err(|_| SourceError::other("gate closed"))?;
        }
        if let Some(kind) = *self.failure.lock().unwrap() {
            return Err(kind.error(format!("fake {kind:?}")));
        }
        let role = request.role_arn().map_or_else(|| "base".to_owned(), |r| r.name().to_owned());
        Ok(Credentials::new(
            format!("ASIA{role}{n}"),
            "secret",
            Some("token".to_owned()),
            Some(self.clock.now() + LIFETIME),
        ))
    }
}

fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn config() -> CacheConfig {
    with(|c| c.jitter_seed = Some(7))
}

/// The defaults with one change.
fn with(change: impl FnOnce(&mut CacheConfig)) -> CacheConfig {
    let mut config = CacheConfig::default();
    change(&mut config);
    config
}

fn role(name: &str) -> RoleArn {
    RoleArn::parse(&format!("arn:aws:iam::123456789012:role/{name}")).unwrap()
}

fn request(role: &RoleArn) -> CredentialRequest<'_> {
    CredentialRequest::assume_role(role, "emrfs-alice", 3600).unwrap()
}

fn setup(config: CacheConfig) -> (Arc<ManualClock>, Arc<Fake>, CredentialCache<Arc<Fake>>) {
    let clock = Arc::new(ManualClock::new(start()));
    let fake = Arc::new(Fake::new(&clock));
    let cache = CredentialCache::with_clock(Arc::clone(&fake), config, clock.clone());
    (clock, fake, cache)
}

/// Lets background tasks run until `done` holds. Bounded by wall-clock time (scheduling on a busy
/// machine, not cache time), so a broken cache fails instead of hanging.
async fn settle(done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        drain().await;
        if done() {
            return;
        }
    }
    panic!("background work did not finish");
}

/// Gives spawned tasks the chance to run to completion.
async fn drain() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_hit_needs_no_second_source_call() {
    let (_, fake, cache) = setup(config());
    let r = role("analysts");
    let first = cache.get(&request(&r)).await.unwrap();
    let second = cache.get(&request(&r)).await.unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.source_calls, stats.entries), (1, 1, 1, 1));
}

#[tokio::test]
async fn keys_differ_by_every_part_of_the_request() {
    let (_, fake, cache) = setup(config());
    let r = role("analysts");
    let other = role("admins");
    let assume = |role, session, duration| CredentialRequest::assume_role(role, session, duration).unwrap();
    let variants = [
        assume(&r, "emrfs-alice", 3600),
        assume(&other, "emrfs-alice", 3600),
        assume(&r, "emrfs-bob", 3600),
        assume(&r, "emrfs-alice", 900),
        assume(&r, "emrfs-alice", 3600).with_external_id("ext-1"),
        assume(&r, "emrfs-alice", 3600).with_source_identity("alice"),
        CredentialRequest::base(),
    ];
    let mut keys = HashSet::new();
    for v in variants {
        keys.insert(cache.get(&v).await.unwrap().access_key_id().to_owned());
    }
    assert_eq!(keys.len(), 7);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 7);
    assert_eq!(cache.len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_share_one_source_call() {
    let clock = Arc::new(ManualClock::new(start()));
    let gate = Arc::new(Semaphore::new(0));
    let fake = Arc::new(Fake { gate: Some(Arc::clone(&gate)), ..Fake::new(&clock) });
    let cache = CredentialCache::with_clock(Arc::clone(&fake), config(), clock);
    let r = Arc::new(role("analysts"));
    let callers: Vec<_> = (0..150)
        .map(|_| {
            let (cache, r) = (cache.clone(), Arc::clone(&r));
            tokio::spawn(async move { cache.get(&request(&r)).await })
        })
        .collect();
    settle(|| cache.stats().misses == 150).await;
    gate.add_permits(1000);
    let mut keys = HashSet::new();
    for caller in callers {
        keys.insert(caller.await.unwrap().unwrap().access_key_id().to_owned());
    }
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1, "150 concurrent callers, one source call");
    assert_eq!(keys.len(), 1, "all callers got the same credentials");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_share_one_error() {
    let clock = Arc::new(ManualClock::new(start()));
    let gate = Arc::new(Semaphore::new(0));
    let fake = Arc::new(Fake { gate: Some(Arc::clone(&gate)), ..Fake::new(&clock) });
    fake.fail_with(Some(ErrorKind::Throttling));
    let cache = CredentialCache::with_clock(Arc::clone(&fake), config(), clock);
    let r = Arc::new(role("analysts"));
    let callers: Vec<_> = (0..120)
        .map(|_| {
            let (cache, r) = (cache.clone(), Arc::clone(&r));
            tokio::spawn(async move { cache.get(&request(&r)).await })
        })
        .collect();
    settle(|| cache.stats().misses == 120).await;
    gate.add_permits(1000);
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap_err().kind(), ErrorKind::Throttling.name());
    }
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_caller_that_gives_up_does_not_cancel_the_shared_call() {
    let clock = Arc::new(ManualClock::new(start()));
    let gate = Arc::new(Semaphore::new(0));
    let fake = Arc::new(Fake { gate: Some(Arc::clone(&gate)), ..Fake::new(&clock) });
    let cache = CredentialCache::with_clock(Arc::clone(&fake), config(), clock);
    let r = Arc::new(role("analysts"));
    let impatient = {
        let (cache, r) = (cache.clone(), Arc::clone(&r));
        tokio::spawn(async move { cache.get(&request(&r)).await })
    };
    settle(|| fake.calls.load(Ordering::SeqCst) == 1).await;
    impatient.abort();
    assert!(impatient.await.unwrap_err().is_cancelled());
    gate.add_permits(10);
    settle(|| cache.get(&request(&r)).now_or_never().is_some_and(|r| r.is_ok())).await;
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1, "the call went on and filled the cache");
}

#[tokio::test]
async fn refresh_starts_in_the_jittered_window_and_serves_the_old_credentials_meanwhile() {
    let (clock, fake, cache) = setup(config());
    let r = role("analysts");
    let first = cache.get(&request(&r)).await.unwrap();
    // Window 300 s, jitter up to 50 %: the refresh starts between 450 s and 300 s before expiry.
    clock.set(start() + LIFETIME - Duration::from_secs(451));
    assert!(Arc::ptr_eq(&cache.get(&request(&r)).await.unwrap(), &first));
    drain().await;
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1, "no refresh before the jittered window");

    clock.set(start() + LIFETIME - Duration::from_secs(300));
    let during = cache.get(&request(&r)).await.unwrap();
    assert!(Arc::ptr_eq(&during, &first), "callers keep the still-valid credentials while refreshing");
    settle(|| fake.calls.load(Ordering::SeqCst) == 2).await;
    settle(|| cache.stats().refreshes == 1).await;
    let mut refreshed = None;
    for _ in 0..1000 {
        let now = cache.get(&request(&r)).await.unwrap();
        if !Arc::ptr_eq(&now, &first) {
            refreshed = Some(now);
            break;
        }
        tokio::task::yield_now().await;
    }
    let refreshed = refreshed.expect("the refreshed credentials replace the old ones");
    assert_eq!(refreshed.expiration(), Some(clock.now() + LIFETIME));
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2, "exactly one refresh");
}

#[tokio::test]
async fn jitter_spreads_refreshes_within_the_window() {
    let (clock, fake, cache) = setup(config());
    let roles: Vec<RoleArn> = (0..100).map(|i| role(&format!("r{i}"))).collect();
    for r in &roles {
        cache.get(&request(r)).await.unwrap();
    }
    let expiry = start() + LIFETIME;
    let refreshed_at = |seconds_before: u64| {
        let cache = cache.clone();
        let clock = Arc::clone(&clock);
        let fake = Arc::clone(&fake);
        let roles = roles.clone();
        async move {
            clock.set(expiry - Duration::from_secs(seconds_before));
            let before = fake.calls.load(Ordering::SeqCst);
            for r in &roles {
                cache.get(&request(r)).await.unwrap();
            }
            drain().await;
            fake.calls.load(Ordering::SeqCst) - before
        }
    };
    assert_eq!(refreshed_at(451).await, 0, "none before 450 s");
    let middle = refreshed_at(375).await;
    assert!((10..=90).contains(&middle), "about half start by the middle of the jitter range, got {middle}");
    settle(|| fake.calls.load(Ordering::SeqCst) == 100 + middle).await;
    let rest = refreshed_at(299).await;
    assert_eq!(middle + rest, 100, "all have started by 300 s before expiry");
}

#[tokio::test]
async fn a_failed_refresh_keeps_serving_valid_credentials_and_retries_with_backoff() {
    let (clock, fake, cache) = setup(config());
    let r = role("analysts");
    let first = cache.get(&request(&r)).await.unwrap();
    fake.fail_with(Some(ErrorKind::Throttling));
    clock.set(start() + LIFETIME - Duration::from_secs(299));
    assert!(Arc::ptr_eq(&cache.get(&request(&r)).await.unwrap(), &first));
    settle(|| cache.stats().stale_served == 1).await;
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2);

    // Backoff 1 s after the first failure: no new attempt before it, one after it.
    assert!(Arc::ptr_eq(&cache.get(&request(&r)).await.unwrap(), &first));
    drain().await;
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2, "no retry inside the backoff");
    clock.advance(Duration::from_millis(1001));
    assert!(Arc::ptr_eq(&cache.get(&request(&r)).await.unwrap(), &first));
    settle(|| cache.stats().stale_served == 2).await;
    assert_eq!(fake.calls.load(Ordering::SeqCst), 3);
    // The second failure doubles the backoff to 2 s.
    clock.advance(Duration::from_millis(1500));
    cache.get(&request(&r)).await.unwrap();
    drain().await;
    assert_eq!(fake.calls.load(Ordering::SeqCst), 3, "the backoff doubled");

    // Under a minute left, stale credentials are no longer served: the caller waits for the source.
    clock.set(start() + LIFETIME - Duration::from_secs(59));
    let err = cache.get(&request(&r)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttling.name());
    fake.fail_with(None);
    let fresh = cache.get(&request(&r)).await.unwrap();
    assert!(!Arc::ptr_eq(&fresh, &first));
    assert_eq!(cache.stats().errors.iter().find(|(k, _)| k == "throttling").map(|(_, n)| *n), Some(3));
}

/// Revocation: when a refresh is refused (the trust relationship was removed, the base credentials were
/// revoked or expired, the request became invalid), the cached credentials stop being served at once.
/// Only transient failures (throttling, timeouts, connection failures, 5xx) keep them.
#[tokio::test]
async fn a_refused_refresh_evicts_at_once_and_is_never_served_stale() {
    for kind in [ErrorKind::AccessDenied, ErrorKind::BaseCredentials, ErrorKind::InvalidRequest, ErrorKind::Other] {
        assert!(!kind.error(String::new()).is_transient(), "{kind:?}");
        let (clock, fake, cache) = setup(config());
        let r = role("revoked");
        let first = cache.get(&request(&r)).await.unwrap();
        fake.fail_with(Some(kind));
        // In the refresh window: this hit starts the refresh, which the source refuses.
        clock.set(start() + LIFETIME - Duration::from_secs(299));
        assert!(Arc::ptr_eq(&cache.get(&request(&r)).await.unwrap(), &first));
        // The refresh has finished when the old credentials were served stale (the defect), the entry was
        // evicted, or the refusal is what a lookup now answers.
        settle(|| {
            cache.stats().stale_served > 0
                || cache.is_empty()
                || cache.get(&request(&r)).now_or_never().is_some_and(|answer| answer.is_err())
        })
        .await;
        let refused = cache.get(&request(&r)).await.unwrap_err();
        assert_eq!(refused.kind(), kind.name(), "{kind:?}: the refusal, not the old credentials");
        assert_eq!(cache.stats().stale_served, 0, "{kind:?} was served stale");
        if kind == ErrorKind::AccessDenied {
            assert_eq!(fake.calls.load(Ordering::SeqCst), 2, "the denial is remembered, not asked again");
        }
        fake.fail_with(None);
        clock.advance(Duration::from_secs(31));
        assert!(!Arc::ptr_eq(&cache.get(&request(&r)).await.unwrap(), &first), "{kind:?}: new credentials");
    }
}

/// Suspicion confirmed and fixed: a fetch task that panicked (or was cancelled) left its flight in the
/// entry, so every later lookup got that one error until the entry was evicted.
#[tokio::test]
async fn a_fetch_that_panics_does_not_stick_to_its_entry() {
    let (_, fake, cache) = setup(config());
    fake.panic_next.store(true, Ordering::SeqCst);
    let r = role("analysts");
    let error = cache.get(&request(&r)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Other.name(), "{error}");
    assert!(cache.get(&request(&r)).await.is_ok(), "the next lookup calls the source again");
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn access_denied_is_remembered_briefly() {
    let (clock, fake, cache) = setup(config());
    fake.fail_with(Some(ErrorKind::AccessDenied));
    let r = role("broken");
    assert_eq!(cache.get(&request(&r)).await.unwrap_err().kind(), ErrorKind::AccessDenied.name());
    clock.advance(Duration::from_secs(29));
    assert_eq!(cache.get(&request(&r)).await.unwrap_err().kind(), ErrorKind::AccessDenied.name());
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1, "the denial is served from memory for 30 s");
    fake.fail_with(None);
    clock.advance(Duration::from_secs(2));
    assert!(cache.get(&request(&r)).await.is_ok(), "after 30 s the source is asked again");
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn transient_errors_are_never_cached() {
    for kind in [ErrorKind::Throttling, ErrorKind::Timeout, ErrorKind::Connection, ErrorKind::ServerError] {
        let (_, fake, cache) = setup(config());
        fake.fail_with(Some(kind));
        let r = role("analysts");
        assert_eq!(cache.get(&request(&r)).await.unwrap_err().kind(), kind.name());
        assert_eq!(cache.get(&request(&r)).await.unwrap_err().kind(), kind.name());
        assert_eq!(fake.calls.load(Ordering::SeqCst), 2, "{kind:?} must not be cached");
        fake.fail_with(None);
        assert!(cache.get(&request(&r)).await.is_ok());
    }
}

#[tokio::test]
async fn the_least_recently_used_entry_is_evicted_at_the_bound() {
    let (clock, fake, cache) = setup(with(|c| {
        c.jitter_seed = Some(7);
        c.max_entries = 3;
    }));
    let roles: Vec<RoleArn> = (0..4).map(|i| role(&format!("r{i}"))).collect();
    for r in &roles[..3] {
        cache.get(&request(r)).await.unwrap();
        clock.advance(Duration::from_secs(1));
    }
    cache.get(&request(&roles[0])).await.unwrap(); // r0 is now more recent than r1
    clock.advance(Duration::from_secs(1));
    cache.get(&request(&roles[3])).await.unwrap();
    assert_eq!(cache.len(), 3);
    assert_eq!(cache.stats().evictions, 1);
    let calls = fake.calls.load(Ordering::SeqCst);
    for r in [&roles[0], &roles[2], &roles[3]] {
        cache.get(&request(r)).await.unwrap();
    }
    assert_eq!(fake.calls.load(Ordering::SeqCst), calls, "r0, r2 and r3 are still cached");
    cache.get(&request(&roles[1])).await.unwrap();
    assert_eq!(fake.calls.load(Ordering::SeqCst), calls + 1, "r1 was the one evicted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_contention_no_caller_sees_expired_credentials() {
    let (clock, _fake, cache) = setup(with(|c| {
        c.jitter_seed = Some(7);
        c.refresh_before_expiry = Duration::from_secs(600);
    }));
    let roles: Arc<Vec<RoleArn>> = Arc::new((0..8).map(|i| role(&format!("r{i}"))).collect());
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let (cache, clock, roles) = (cache.clone(), Arc::clone(&clock), Arc::clone(&roles));
            tokio::spawn(async move {
                let mut served = 0u32;
                for i in 0..2_000usize {
                    let r = &roles[(i + w) % roles.len()];
                    let asked_at = clock.now();
                    if let Ok(credentials) = cache.get(&request(r)).await {
                        let expiration = credentials.expiration().expect("temporary credentials");
                        assert!(
                            expiration > asked_at,
                            "served credentials that expired at {expiration:?}, asked at {asked_at:?}"
                        );
                        served += 1;
                    }
                    if i % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                served
            })
        })
        .collect();
    let ticker = {
        let clock = Arc::clone(&clock);
        tokio::spawn(async move {
            for _ in 0..400 {
                clock.advance(Duration::from_secs(30));
                tokio::task::yield_now().await;
            }
        })
    };
    let mut served = 0;
    for w in workers {
        served += w.await.unwrap();
    }
    ticker.await.unwrap();
    assert!(served > 16_000, "most lookups succeed ({served})");
}
