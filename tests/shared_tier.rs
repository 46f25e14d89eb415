//! The fleet's shared tier on an in-process store (`Store`, behind the public `SharedTier` trait): several
//! caches ("nodes") over one store and one counting source. One source call per request for the fleet,
//! in turn and at once; a dead lock holder; a shared `AccessDenied`; altered, moved and foreign entries
//! never served; key rotation; a failing store that never fails a request, and the breaker. The same
//! behaviour against a real Redis and real `serve` processes is in `tests/shared_cache.rs`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use emrfs_rolemap::RoleArn;
use emrfs_rolemap::credentials::{
    CacheConfig, CredentialCache, CredentialRequest, CredentialSource, Credentials, SettingsError, SharedTier,
    SourceError,
};

type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, SourceError>> + Send + 'a>>;

/// A store in memory with expiries; `failing` makes every call fail, `calls` counts them.
#[derive(Default)]
struct Store {
    values: Mutex<HashMap<String, (Vec<u8>, Instant)>>,
    failing: AtomicBool,
    calls: AtomicUsize,
}

impl Store {
    fn check(&self) -> Result<(), SourceError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(SourceError::connection("the store is down"));
        }
        Ok(())
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Vec<u8>, Instant)>> {
        let mut values = self.values.lock().unwrap();
        let now = Instant::now();
        values.retain(|_, (_, until)| *until > now);
        values
    }

    /// The keys holding credentials.
    fn credential_keys(&self) -> Vec<String> {
        self.live().keys().filter(|k| k.contains(":c:")).cloned().collect()
    }
}

impl SharedTier for Store {
    fn get<'a>(&'a self, keys: &'a [String]) -> Call<'a, Vec<Option<Vec<u8>>>> {
        Box::pin(async move {
            self.check()?;
            let values = self.live();
            Ok(keys.iter().map(|k| values.get(k).map(|(v, _)| v.clone())).collect())
        })
    }

    fn put<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> Call<'a, ()> {
        Box::pin(async move {
            self.check()?;
            self.live().insert(key.to_owned(), (value.to_vec(), Instant::now() + ttl));
            Ok(())
        })
    }

    fn try_lock<'a>(&'a self, key: &'a str, token: &'a str, ttl: Duration) -> Call<'a, bool> {
        Box::pin(async move {
            self.check()?;
            let mut values = self.live();
            if values.contains_key(key) {
                return Ok(false);
            }
            values.insert(key.to_owned(), (token.as_bytes().to_vec(), Instant::now() + ttl));
            Ok(true)
        })
    }

    fn unlock<'a>(&'a self, key: &'a str, token: &'a str) -> Call<'a, ()> {
        Box::pin(async move {
            self.check()?;
            let mut values = self.live();
            if values.get(key).is_some_and(|(v, _)| v == token.as_bytes()) {
                values.remove(key);
            }
            Ok(())
        })
    }
}

/// A source that counts calls and takes `delay` to answer; `deny` makes it refuse.
#[derive(Default)]
struct Source {
    calls: AtomicUsize,
    delay: Duration,
    deny: AtomicBool,
}

impl CredentialSource for Source {
    async fn fetch(&self, request: &CredentialRequest<'_>) -> Result<Credentials, SourceError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(self.delay).await;
        if self.deny.load(Ordering::SeqCst) {
            return Err(SourceError::access_denied("not authorized to perform sts:AssumeRole"));
        }
        let role = request.role_arn().map_or("base", |r| r.name());
        let expiration = SystemTime::now() + Duration::from_secs(3600);
        Ok(Credentials::new(
            format!("ASIA{role}{n}"),
            format!("secret-{n}"),
            Some(format!("token-{n}")),
            Some(expiration),
        ))
    }
}

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const OTHER_KEY: &[u8] = b"fedcba9876543210fedcba9876543210";

fn config() -> CacheConfig {
    let mut config = CacheConfig::default();
    // Generous: the tests run on a busy machine, and a timeout would open the breaker.
    config.shared_call_timeout = Duration::from_secs(2);
    config.shared_lock_wait = Duration::from_millis(600);
    config.shared_breaker_probe = Duration::from_millis(50);
    config
}

fn node(
    store: &Arc<Store>,
    source: &Arc<Source>,
    key: &[u8],
    previous: Option<&[u8]>,
    config: CacheConfig,
) -> CredentialCache<Arc<Source>> {
    CredentialCache::new(Arc::clone(source), config).with_shared_tier(store.clone(), key, previous).unwrap()
}

fn role(name: &str) -> RoleArn {
    RoleArn::parse(&format!("arn:aws:iam::123456789012:role/{name}")).unwrap()
}

fn user_request<'a>(role: &'a RoleArn, session: &'a str) -> CredentialRequest<'a> {
    CredentialRequest::assume_role(role, session, 3600).unwrap()
}

#[tokio::test]
async fn nodes_asked_in_turn_call_the_source_once_per_request() {
    let (store, source) = (Arc::new(Store::default()), Arc::new(Source::default()));
    let nodes: Vec<_> = (0..3).map(|_| node(&store, &source, KEY, None, config())).collect();
    let role = role("analysts");
    let sessions: Vec<String> = (0..20).map(|u| format!("emrfs-user{u}")).collect();
    let mut keys = std::collections::HashSet::new();
    for session in &sessions {
        for node in &nodes {
            let credentials = node.get(&user_request(&role, session)).await.unwrap();
            keys.insert(credentials.access_key_id().to_owned());
        }
    }
    assert_eq!(source.calls.load(Ordering::SeqCst), 20, "one source call per request for the fleet");
    assert_eq!(keys.len(), 20, "every node got the same credentials for a request");
    let stats = nodes[1].stats();
    assert_eq!((stats.shared_hits, stats.source_calls, stats.shared_rejected), (20, 0, 0), "{stats:?}");
    assert_eq!(nodes[0].stats().shared_writes, 20);
    assert_eq!(store.credential_keys().len(), 20);
    for key in store.credential_keys() {
        assert!(!key.contains("analysts") && !key.contains("user"), "no role or user in clear: {key}");
    }
    // A local hit never touches the store.
    let before = store.calls.load(Ordering::SeqCst);
    nodes[2].get(&user_request(&role, &sessions[0])).await.unwrap();
    assert_eq!(store.calls.load(Ordering::SeqCst), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_asked_at_once_share_one_source_call_through_the_lock() {
    let store = Arc::new(Store::default());
    let source = Arc::new(Source { delay: Duration::from_millis(100), ..Source::default() });
    let nodes: Vec<_> = (0..3).map(|_| node(&store, &source, KEY, None, config())).collect();
    let role = Arc::new(role("analysts"));
    let mut asks = Vec::new();
    for u in 0..10 {
        for node in &nodes {
            let (node, role) = (node.clone(), Arc::clone(&role));
            asks.push(tokio::spawn(async move {
                let session = format!("emrfs-user{u}");
                node.get(&user_request(&role, &session)).await.map(|c| c.access_key_id().to_owned())
            }));
        }
    }
    let mut keys = std::collections::HashSet::new();
    for ask in asks {
        keys.insert(ask.await.unwrap().unwrap());
    }
    assert_eq!(source.calls.load(Ordering::SeqCst), 10);
    assert_eq!(keys.len(), 10);
    let waits: u64 = nodes.iter().map(|n| n.stats().shared_lock_waits).sum();
    assert!(waits >= 10, "the other nodes waited for the lock holder: {waits}");
}

#[tokio::test]
async fn a_node_waits_for_a_dead_lock_holder_only_so_long() {
    let (store, source) = (Arc::new(Store::default()), Arc::new(Source::default()));
    let first = node(&store, &source, KEY, None, config());
    let role = role("analysts");
    first.get(&user_request(&role, "emrfs-alice")).await.unwrap();
    // Another node took the lock for bob and died: the lock stays, and nobody writes bob's entry.
    let all_locked = Arc::new(LockedStore(Arc::clone(&store)));
    let second = CredentialCache::new(Arc::clone(&source), config()).with_shared_tier(all_locked, KEY, None).unwrap();
    let started = Instant::now();
    second.get(&user_request(&role, "emrfs-bob")).await.unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(600) && waited < Duration::from_secs(3), "{waited:?}");
    assert_eq!(source.calls.load(Ordering::SeqCst), 2, "it called the source itself");
    assert_eq!(second.stats().shared_lock_waits, 1);
}

/// A store whose every lock is held by someone else.
struct LockedStore(Arc<Store>);

impl SharedTier for LockedStore {
    fn get<'a>(&'a self, keys: &'a [String]) -> Call<'a, Vec<Option<Vec<u8>>>> {
        self.0.get(keys)
    }
    fn put<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> Call<'a, ()> {
        self.0.put(key, value, ttl)
    }
    fn try_lock<'a>(&'a self, _key: &'a str, _token: &'a str, _ttl: Duration) -> Call<'a, bool> {
        Box::pin(async { Ok(false) })
    }
    fn unlock<'a>(&'a self, key: &'a str, token: &'a str) -> Call<'a, ()> {
        self.0.unlock(key, token)
    }
}

#[tokio::test]
async fn access_denied_is_shared_for_its_short_ttl() {
    let (store, source) = (Arc::new(Store::default()), Arc::new(Source::default()));
    let mut short = config();
    short.access_denied_ttl = Duration::from_millis(300);
    let (a, b) = (node(&store, &source, KEY, None, short.clone()), node(&store, &source, KEY, None, short));
    let role = role("revoked");
    source.deny.store(true, Ordering::SeqCst);
    let denied = a.get(&user_request(&role, "emrfs-alice")).await.unwrap_err();
    assert_eq!(denied.kind(), "access_denied");
    let shared = b.get(&user_request(&role, "emrfs-alice")).await.unwrap_err();
    assert_eq!(shared.kind(), "access_denied");
    assert!(shared.message().contains("not authorized"), "{shared}");
    assert_eq!(source.calls.load(Ordering::SeqCst), 1, "node b took the fleet's answer");
    // After the TTL the role is asked again (it may have been fixed).
    source.deny.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let c = node(&store, &source, KEY, None, config());
    assert!(c.get(&user_request(&role, "emrfs-alice")).await.is_ok());
    assert_eq!(source.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn altered_moved_and_foreign_entries_are_never_served() {
    let (store, source) = (Arc::new(Store::default()), Arc::new(Source::default()));
    let writer = node(&store, &source, KEY, None, config());
    let role = role("analysts");
    let alice = writer.get(&user_request(&role, "emrfs-alice")).await.unwrap();
    writer.get(&user_request(&role, "emrfs-bob")).await.unwrap();
    let keys = store.credential_keys();
    assert_eq!(keys.len(), 2);

    // Altered: one byte of each entry flipped.
    for key in &keys {
        let mut values = store.live();
        let (value, _) = values.get_mut(key).unwrap();
        let last = value.len() - 1;
        value[last] ^= 1;
    }
    let reader = node(&store, &source, KEY, None, config());
    let fetched = reader.get(&user_request(&role, "emrfs-alice")).await.unwrap();
    assert_ne!(fetched.access_key_id(), alice.access_key_id(), "the altered entry was not served");
    assert_eq!(reader.stats().shared_rejected, 1);

    // Moved: bob's (fixed) entry copied under carol's key is another request's: not served.
    let (store2, source2) = (Arc::new(Store::default()), Arc::new(Source::default()));
    let writer = node(&store2, &source2, KEY, None, config());
    writer.get(&user_request(&role, "emrfs-bob")).await.unwrap();
    let bob_value = store2.live().values().find(|_| true).map(|(v, _)| v.clone()).unwrap();
    let carol = node(&store2, &source2, KEY, None, config());
    carol.get(&user_request(&role, "emrfs-carol")).await.unwrap();
    let carol_key = store2.credential_keys().into_iter().find(|k| store2.live()[k].0 != bob_value).unwrap();
    store2.live().get_mut(&carol_key).unwrap().0 = bob_value;
    let reader = node(&store2, &source2, KEY, None, config());
    let carols = reader.get(&user_request(&role, "emrfs-carol")).await.unwrap();
    assert_eq!(carols.access_key_id(), "ASIAanalysts3", "bob's credentials were not served for carol");
    assert_eq!(reader.stats().shared_rejected, 1);

    // Foreign: a node with another key finds nothing it can use, and writes its own.
    let foreign = node(&store2, &source2, OTHER_KEY, None, config());
    let calls = source2.calls.load(Ordering::SeqCst);
    foreign.get(&user_request(&role, "emrfs-bob")).await.unwrap();
    assert_eq!(source2.calls.load(Ordering::SeqCst), calls + 1);
    assert_eq!(foreign.stats().shared_hits, 0);
}

#[tokio::test]
async fn a_rotated_key_still_reads_what_the_previous_key_sealed() {
    let (store, source) = (Arc::new(Store::default()), Arc::new(Source::default()));
    let old = node(&store, &source, KEY, None, config());
    let role = role("analysts");
    let first = old.get(&user_request(&role, "emrfs-alice")).await.unwrap();
    let rotated = node(&store, &source, OTHER_KEY, Some(KEY), config());
    let read = rotated.get(&user_request(&role, "emrfs-alice")).await.unwrap();
    assert_eq!(read.access_key_id(), first.access_key_id());
    assert_eq!(source.calls.load(Ordering::SeqCst), 1);
    let without = node(&store, &source, OTHER_KEY, None, config());
    without.get(&user_request(&role, "emrfs-alice")).await.unwrap();
    assert_eq!(source.calls.load(Ordering::SeqCst), 2, "without the previous key, nothing to read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_fails_no_request_and_the_breaker_closes_when_it_heals() {
    let (store, source) = (Arc::new(Store::default()), Arc::new(Source::default()));
    let cache = node(&store, &source, KEY, None, config());
    let role = role("analysts");
    store.failing.store(true, Ordering::SeqCst);
    for u in 0..10 {
        let session = format!("emrfs-user{u}");
        assert!(cache.get(&user_request(&role, &session)).await.is_ok(), "the store never fails a request");
    }
    let stats = cache.stats();
    assert!(stats.shared_breaker_open, "{stats:?}");
    assert_eq!(stats.shared_errors, u64::from(CacheConfig::DEFAULT_SHARED_BREAKER_FAILURES), "then no more calls");
    assert_eq!(source.calls.load(Ordering::SeqCst), 10);
    store.failing.store(false, Ordering::SeqCst);
    let started = Instant::now();
    while cache.stats().shared_breaker_open {
        assert!(started.elapsed() < Duration::from_secs(5), "the probe never closed the breaker");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cache.get(&user_request(&role, "emrfs-new")).await.unwrap();
    assert_eq!(cache.stats().shared_writes, 1, "sharing resumed");
}

#[test]
fn a_short_key_and_a_late_tier_are_refused() {
    let source = Arc::new(Source::default());
    let store: Arc<Store> = Arc::default();
    let short = CredentialCache::new(Arc::clone(&source), config()).with_shared_tier(store.clone(), b"short", None);
    assert_eq!(short.err(), Some(SettingsError::SharedCacheKey(5)));
    let cache = CredentialCache::new(source, config());
    let _clone = cache.clone();
    assert_eq!(cache.with_shared_tier(store, KEY, None).err(), Some(SettingsError::SharedCacheInUse));
}
