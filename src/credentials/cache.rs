//! The credential cache in front of a [`CredentialSource`], built for the hit path of a proxy.
//!
//! - **Keyed by the whole request** (role, session name, duration, external ID, source identity; or the
//!   base credentials). A lookup borrows the request: a hit allocates nothing and takes no lock. Each
//!   shard's table sits behind an `ArcSwap` (readers load it without writing shared memory) and is
//!   copied on write; misses are rare and pay an STS call anyway. The table holds each entry's state
//!   (its credentials or remembered error, and their times) beside the entry, so a hit reads everything
//!   from that one load; a fill or refresh copies the shard's table once more.
//! - **Refresh ahead**: from `refresh_before_expiry` (plus a random jitter of up to `refresh_jitter` of
//!   that window, fixed per fill) before expiry, the first caller starts one background refresh while
//!   every caller keeps getting the still-valid credentials.
//! - **Single flight**: concurrent callers for a missing or unusable entry share one source call and its
//!   result or error. The call runs in its own task, so a caller that gives up does not cancel it.
//! - **Stale if error, for transient errors only**: when a refresh fails with throttling, a timeout, a
//!   connection failure or a 5xx answer ([`ErrorKind::is_transient`]) and the credentials have more than
//!   `stale_min_remaining` left, callers keep getting them and the refresh is retried with exponential
//!   backoff.
//! - **Revocation takes effect at once**: when a refresh is *refused* — `AccessDenied` (the role's trust
//!   policy no longer allows it, an SCP, `RegionDisabledException`), the base credentials rejected
//!   (`InvalidClientTokenId`, `ExpiredToken`, `SignatureDoesNotMatch`), an invalid request
//!   (`MalformedPolicyDocument`, any other 4xx that is not throttling), or any other non-transient
//!   failure — the entry is evicted and its credentials are never served again.
//! - **Errors**: transient ones are never cached; `AccessDenied` is remembered for `access_denied_ttl` so
//!   a broken mapping does not flood STS; other refusals are not remembered.
//! - **Bounded**: at most `max_entries`, least-recently-used evicted first (exactly within a shard).
//! - **Observable**: [`CacheStats`] counters; an injectable [`Clock`] so tests never sleep.
//! - **Time** is read once per lookup, in whole milliseconds ([`Clock::now_millis`]); by default from a
//!   [`CoarseClock`], so that a hit reads an atomic instead of calling the system clock.
//!
//! Background work needs a tokio runtime; without one, fetches run inline and refresh-ahead is skipped.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures_util::future::{Either, FutureExt, Shared};
use hashbrown::HashTable;

use super::clock::{Clock, CoarseClock, duration_millis, millis};
use super::error::SettingsError;
use super::session_name::SessionName;
use super::shared::{FleetTier, SharedTier, Timings};
use super::source::{
    AssumeRoleRequest, CredentialRequest, CredentialSource, Credentials, ErrorKind, RequestKind, SourceError,
};
use crate::config::RoleArn;
use crate::rng::SplitMix64;

/// The cache's tunables. [`Default`] gives the `DEFAULT_*` values; change fields on it:
///
/// ```
/// use emrfs_rolemap::credentials::CacheConfig;
/// let mut config = CacheConfig::default();
/// config.max_entries = 500;
/// config.validate(3600)?;
/// assert_eq!(config.refresh_before_expiry, CacheConfig::DEFAULT_REFRESH_BEFORE_EXPIRY);
/// # Ok::<(), emrfs_rolemap::credentials::SettingsError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Start refreshing this long before expiry ([`Self::DEFAULT_REFRESH_BEFORE_EXPIRY`]).
    pub refresh_before_expiry: Duration,
    /// Add a random share, up to this fraction of `refresh_before_expiry`, to spread refreshes
    /// ([`Self::DEFAULT_REFRESH_JITTER`]).
    pub refresh_jitter: f64,
    /// Serve stale credentials after a transient failure of their refresh only while they have more
    /// than this left ([`Self::DEFAULT_STALE_MIN_REMAINING`]).
    pub stale_min_remaining: Duration,
    /// Remember `AccessDenied` this long ([`Self::DEFAULT_ACCESS_DENIED_TTL`]).
    pub access_denied_ttl: Duration,
    /// The most entries kept ([`Self::DEFAULT_MAX_ENTRIES`]).
    pub max_entries: usize,
    /// The first retry delay after a failed refresh; it doubles per failure
    /// ([`Self::DEFAULT_RETRY_BACKOFF_INITIAL`]).
    pub retry_backoff_initial: Duration,
    /// The longest retry delay ([`Self::DEFAULT_RETRY_BACKOFF_MAX`]).
    pub retry_backoff_max: Duration,
    /// Seed of the jitter generator; `None` seeds from the clock.
    pub jitter_seed: Option<u64>,
    /// With a shared tier: the bound on every call to it ([`Self::DEFAULT_SHARED_CALL_TIMEOUT`]).
    pub shared_call_timeout: Duration,
    /// With a shared tier: how long a node waits for the entry another node is fetching before it calls
    /// the source itself ([`Self::DEFAULT_SHARED_LOCK_WAIT`]).
    pub shared_lock_wait: Duration,
    /// With a shared tier: how long the fleet's lock on one request lasts at most
    /// ([`Self::DEFAULT_SHARED_LOCK_TTL`]).
    pub shared_lock_ttl: Duration,
    /// With a shared tier: consecutive failures after which the cache stops asking it until it answers
    /// a probe again ([`Self::DEFAULT_SHARED_BREAKER_FAILURES`]).
    pub shared_breaker_failures: u32,
    /// With a shared tier: how often the open breaker probes it ([`Self::DEFAULT_SHARED_BREAKER_PROBE`]).
    pub shared_breaker_probe: Duration,
}

impl CacheConfig {
    /// Refresh this long before expiry, unless set: 5 minutes.
    pub const DEFAULT_REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);
    /// The refresh jitter, as a fraction of the refresh window, unless set.
    pub const DEFAULT_REFRESH_JITTER: f64 = 0.5;
    /// Serve stale credentials only while this much is left, unless set: 60 s.
    pub const DEFAULT_STALE_MIN_REMAINING: Duration = Duration::from_secs(60);
    /// How long `AccessDenied` is remembered, unless set: 30 s.
    pub const DEFAULT_ACCESS_DENIED_TTL: Duration = Duration::from_secs(30);
    /// The most entries, unless set.
    pub const DEFAULT_MAX_ENTRIES: usize = 10_000;
    /// The first retry delay after a failed refresh, unless set: 1 s.
    pub const DEFAULT_RETRY_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
    /// The longest retry delay, unless set: 60 s.
    pub const DEFAULT_RETRY_BACKOFF_MAX: Duration = Duration::from_secs(60);
    /// The bound on a call to the shared tier, unless set: 50 ms.
    pub const DEFAULT_SHARED_CALL_TIMEOUT: Duration = Duration::from_millis(50);
    /// How long a node waits for another node's fetch, unless set: 3 s.
    pub const DEFAULT_SHARED_LOCK_WAIT: Duration = Duration::from_secs(3);
    /// The longest the fleet's lock on one request lasts, unless set: 10 s.
    pub const DEFAULT_SHARED_LOCK_TTL: Duration = Duration::from_secs(10);
    /// Consecutive shared-tier failures that open the breaker, unless set.
    pub const DEFAULT_SHARED_BREAKER_FAILURES: u32 = 3;
    /// How often an open breaker probes the shared tier, unless set: 1 s.
    pub const DEFAULT_SHARED_BREAKER_PROBE: Duration = Duration::from_secs(1);

    /// Checks the configuration for sessions of `duration_seconds`: the cache holds an entry, and
    /// refreshes credentials some time after it got them, not at once.
    pub fn validate(&self, duration_seconds: u32) -> Result<(), SettingsError> {
        if self.max_entries == 0 {
            return Err(SettingsError::NoEntries);
        }
        if self.refresh_before_expiry >= Duration::from_secs(u64::from(duration_seconds)) {
            return Err(SettingsError::RefreshWindow { refresh_before: self.refresh_before_expiry, duration_seconds });
        }
        Ok(())
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            refresh_before_expiry: Self::DEFAULT_REFRESH_BEFORE_EXPIRY,
            refresh_jitter: Self::DEFAULT_REFRESH_JITTER,
            stale_min_remaining: Self::DEFAULT_STALE_MIN_REMAINING,
            access_denied_ttl: Self::DEFAULT_ACCESS_DENIED_TTL,
            max_entries: Self::DEFAULT_MAX_ENTRIES,
            retry_backoff_initial: Self::DEFAULT_RETRY_BACKOFF_INITIAL,
            retry_backoff_max: Self::DEFAULT_RETRY_BACKOFF_MAX,
            jitter_seed: None,
            shared_call_timeout: Self::DEFAULT_SHARED_CALL_TIMEOUT,
            shared_lock_wait: Self::DEFAULT_SHARED_LOCK_WAIT,
            shared_lock_ttl: Self::DEFAULT_SHARED_LOCK_TTL,
            shared_breaker_failures: Self::DEFAULT_SHARED_BREAKER_FAILURES,
            shared_breaker_probe: Self::DEFAULT_SHARED_BREAKER_PROBE,
        }
    }
}

/// A snapshot of the cache's counters.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct CacheStats {
    /// Lookups answered from the cache (credentials or a remembered `AccessDenied`).
    pub hits: u64,
    /// Lookups that had to wait for the source.
    pub misses: u64,
    /// Background refreshes started.
    pub refreshes: u64,
    /// Calls made to the source.
    pub source_calls: u64,
    /// Failed refreshes after which the still-valid credentials kept being served.
    pub stale_served: u64,
    /// Entries evicted to respect `max_entries`.
    pub evictions: u64,
    /// Entries dropped because a refresh was refused (revocation), not served stale.
    pub revoked: u64,
    /// Entries currently held.
    pub entries: u64,
    /// Source errors by kind (as [`SourceError::kind`] names them), every kind listed.
    pub errors: Vec<(String, u64)>,
    /// Whether a shared tier is configured; the `shared_*` counters are 0 without one.
    pub shared: bool,
    /// Local misses answered by the shared tier (credentials, or a shared `AccessDenied`).
    pub shared_hits: u64,
    /// Local misses the shared tier could not answer.
    pub shared_misses: u64,
    /// Entries written to the shared tier.
    pub shared_writes: u64,
    /// Misses that found another node fetching, and waited for its entry.
    pub shared_lock_waits: u64,
    /// Calls to the shared tier that failed or timed out.
    pub shared_errors: u64,
    /// Entries read from the shared tier and not served: altered, sealed with another key, made for
    /// another request, or expired.
    pub shared_rejected: u64,
    /// Whether the breaker is open: the shared tier failed, and the cache works alone until it answers.
    pub shared_breaker_open: bool,
}

/// See the module documentation. Cloning shares the cache.
pub struct CredentialCache<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for CredentialCache<S> {
    fn clone(&self) -> Self {
        CredentialCache { inner: Arc::clone(&self.inner) }
    }
}

impl<S> std::fmt::Debug for CredentialCache<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache").field("config", &self.inner.config).field("entries", &self.len()).finish()
    }
}

struct Inner<S> {
    source: S,
    config: CacheConfig,
    clock: Arc<dyn Clock>,
    shards: Box<[Shard]>,
    per_shard: usize,
    rng: Mutex<SplitMix64>,
    counters: Counters,
    /// The fleet's shared tier, if any.
    shared: Option<FleetTier>,
}

struct Shard {
    table: ArcSwap<HashTable<Slot>>,
    /// Serialises writers (insertions, evictions and state changes); readers never take it.
    write: Mutex<()>,
}

/// An entry as one snapshot of its shard's table has it.
#[derive(Clone)]
struct Slot {
    entry: Arc<Entry>,
    state: State,
}

type FetchResult = Result<Arc<Credentials>, SourceError>;
type Flight = Shared<Pin<Box<dyn Future<Output = FetchResult> + Send>>>;

struct Entry {
    key: OwnedKey,
    hash: u64,
    /// The time of the last lookup, for eviction.
    last_used: AtomicU64,
    /// The source call in progress, if any.
    flight: Mutex<Option<Flight>>,
    /// Consecutive failed refreshes, for the backoff.
    refresh_failures: AtomicU32,
}

/// Clears its entry's flight when dropped: at the end of a fetch, after its state is stored.
struct Landed(Arc<Entry>);

impl Drop for Landed {
    fn drop(&mut self) {
        *lock(&self.0.flight) = None;
    }
}

/// What an entry answers. Times are [`Clock::now_millis`] values: milliseconds since the epoch.
#[derive(Clone)]
enum State {
    Empty,
    Ready { credentials: Arc<Credentials>, refresh_at: u64, usable_until: u64 },
    Denied { error: Arc<SourceError>, until: u64 },
}

impl State {
    /// Whether the state answers at `now` without calling the source.
    fn usable(&self, now: u64) -> bool {
        match self {
            State::Ready { usable_until, .. } => now < *usable_until,
            State::Denied { until, .. } => now < *until,
            State::Empty => false,
        }
    }
}

/// The owned form of a [`CredentialRequest`], stored in entries.
enum OwnedKey {
    Base,
    AssumeRole {
        role_arn: RoleArn,
        session_name: SessionName,
        duration_seconds: u32,
        external_id: Option<String>,
        source_identity: Option<String>,
    },
}

impl OwnedKey {
    fn of(request: &CredentialRequest<'_>) -> Self {
        match request {
            CredentialRequest(RequestKind::Base) => OwnedKey::Base,
            CredentialRequest(RequestKind::AssumeRole(r)) => OwnedKey::AssumeRole {
                role_arn: r.role_arn.clone(),
                session_name: r.session_name,
                duration_seconds: r.duration_seconds,
                external_id: r.external_id.map(str::to_owned),
                source_identity: r.source_identity.map(str::to_owned),
            },
        }
    }

    fn request(&self) -> CredentialRequest<'_> {
        match self {
            OwnedKey::Base => CredentialRequest::base(),
            OwnedKey::AssumeRole { role_arn, session_name, duration_seconds, external_id, source_identity } => {
                CredentialRequest(RequestKind::AssumeRole(AssumeRoleRequest {
                    role_arn,
                    session_name: *session_name,
                    duration_seconds: *duration_seconds,
                    external_id: external_id.as_deref(),
                    source_identity: source_identity.as_deref(),
                }))
            }
        }
    }
}

fn hash_of(request: &CredentialRequest<'_>) -> u64 {
    let mut hasher = rustc_hash::FxHasher::default();
    request.hash(&mut hasher);
    hasher.finish()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<S: CredentialSource> CredentialCache<S> {
    /// A cache over `source` with the system clock, read from an atomic that one background thread per
    /// process refreshes every 10 ms (so that a hit does not call the system clock).
    pub fn new(source: S, config: CacheConfig) -> Self {
        Self::with_clock(source, config, Arc::new(CoarseClock::new()))
    }

    /// A cache over `source` reading time from `clock`.
    pub fn with_clock(source: S, config: CacheConfig, clock: Arc<dyn Clock>) -> Self {
        let max_entries = config.max_entries.max(1);
        let shards = (max_entries / 256).clamp(1, 16).next_power_of_two().min(16);
        let shards = if max_entries / shards == 0 { 1 } else { shards };
        let seed = config.jitter_seed.unwrap_or_else(|| clock.now_millis());
        let inner = Inner {
            source,
            per_shard: max_entries / shards,
            shards: (0..shards)
                .map(|_| Shard { table: ArcSwap::from_pointee(HashTable::new()), write: Mutex::new(()) })
                .collect(),
            rng: Mutex::new(SplitMix64::new(seed)),
            config,
            clock,
            counters: Counters::default(),
            shared: None,
        };
        CredentialCache { inner: Arc::new(inner) }
    }

    /// This cache with a second tier behind it that the nodes of a fleet share (see [`SharedTier`]):
    /// on a local miss the tier is read before the source, and what the source gives is written to it,
    /// sealed under the fleet key `key` (at least 32 secret bytes, the same on every node; `previous`
    /// is still accepted for reading during a rotation). Call it right after creating the cache.
    ///
    /// The tier's calls are bounded and its failures never fail a request; the `shared_*` fields of
    /// [`CacheConfig`] tune it.
    pub fn with_shared_tier(
        mut self,
        tier: Arc<dyn SharedTier>,
        key: &[u8],
        previous: Option<&[u8]>,
    ) -> Result<Self, SettingsError> {
        let config = &self.inner.config;
        let timings = Timings {
            call_timeout: config.shared_call_timeout,
            lock_ttl: config.shared_lock_ttl,
            lock_wait: config.shared_lock_wait,
            breaker_failures: config.shared_breaker_failures,
            breaker_probe: config.shared_breaker_probe,
        };
        let shared = FleetTier::new(tier, key, previous, timings)?;
        let inner = Arc::get_mut(&mut self.inner).ok_or(SettingsError::SharedCacheInUse)?;
        inner.shared = Some(shared);
        Ok(self)
    }

    /// [`with_shared_tier`](Self::with_shared_tier) on Redis or Valkey at `url` (`redis://HOST[:PORT][/DB]`,
    /// or `rediss://` for TLS; `password`, when given, replaces the URL's, so that it need not appear
    /// on a command line). It connects on first use and again after a failure, never blocking a request
    /// for longer than the call timeout.
    #[cfg(feature = "redis")]
    pub fn with_redis(
        self,
        url: &str,
        password: Option<&str>,
        key: &[u8],
        previous: Option<&[u8]>,
    ) -> Result<Self, SettingsError> {
        let connect_timeout = self.inner.config.shared_call_timeout.max(Duration::from_millis(500));
        let tier = super::redis_tier::RedisTier::new(url, password, connect_timeout)?;
        self.with_shared_tier(Arc::new(tier), key, previous)
    }

    /// The credentials for `request`: from the cache when usable, otherwise from the source (one call
    /// shared by all concurrent callers). Fails with the source's error, or with a remembered
    /// `AccessDenied`.
    ///
    /// A hit is answered when the future is created, and the future is then a small ready value; only
    /// a miss builds (and boxes) the future that waits for the source.
    pub fn get(&self, request: &CredentialRequest<'_>) -> impl Future<Output = FetchResult> {
        self.lookup(request)
    }

    /// [`get`](Self::get), as the concrete future, which tells whether the answer needs the source.
    pub(crate) fn lookup(&self, request: &CredentialRequest<'_>) -> Lookup<impl Future<Output = FetchResult>> {
        let inner = &self.inner;
        let now = inner.clock.now_millis();
        let hash = hash_of(request);
        let shard = inner.shard(hash);
        let found = {
            let table = shard.table.load();
            match table.find(hash, |s| s.entry.key.request() == *request) {
                Some(Slot { entry, state }) => {
                    entry.touch(now);
                    if let Some(answer) = inner.answer_from(entry, state, now) {
                        inner.counters.hits.add(1);
                        return Lookup::Hit(Some(answer));
                    }
                    Some(Arc::clone(entry))
                }
                None => None,
            }
        };
        Lookup::Miss(Box::pin(async move {
            let entry = match found {
                Some(entry) => entry,
                None => inner.insert(shard, hash, request, now),
            };
            inner.counters.misses.add(1);
            Inner::load(inner, &entry, now).await
        }))
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        let c = &self.inner.counters;
        CacheStats {
            hits: c.hits.sum(),
            misses: c.misses.sum(),
            refreshes: c.refreshes.load(Ordering::Relaxed),
            source_calls: c.source_calls.load(Ordering::Relaxed),
            stale_served: c.stale_served.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
            revoked: c.revoked.load(Ordering::Relaxed),
            entries: self.len() as u64,
            errors: ErrorKind::ALL
                .iter()
                .zip(&c.errors)
                .map(|(kind, n)| (kind.as_str().to_owned(), n.load(Ordering::Relaxed)))
                .collect(),
            ..self.shared_stats()
        }
    }

    fn shared_stats(&self) -> CacheStats {
        let Some(shared) = &self.inner.shared else { return CacheStats::default() };
        let c = &shared.counters;
        CacheStats {
            shared: true,
            shared_hits: c.hits.load(Ordering::Relaxed),
            shared_misses: c.misses.load(Ordering::Relaxed),
            shared_writes: c.writes.load(Ordering::Relaxed),
            shared_lock_waits: c.lock_waits.load(Ordering::Relaxed),
            shared_errors: c.errors.load(Ordering::Relaxed),
            shared_rejected: c.rejected.load(Ordering::Relaxed),
            shared_breaker_open: shared.breaker_open(),
            ..CacheStats::default()
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// The credential source.
    pub fn source(&self) -> &S {
        &self.inner.source
    }
}

/// The future of [`CredentialCache::get`]: the answer itself on a hit, the boxed wait on a miss.
pub(crate) enum Lookup<F> {
    Hit(Option<FetchResult>),
    Miss(Pin<Box<F>>),
}

impl<F> Lookup<F> {
    /// Where the answer comes from: the cache (a hit, credentials or a remembered refusal) or the
    /// source (a miss, which waits for the source call, its own or one in progress).
    pub(crate) fn origin(&self) -> Origin {
        match self {
            Lookup::Hit(_) => Origin::Cache,
            Lookup::Miss(_) => Origin::Source,
        }
    }
}

/// Where a credential lookup's answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The cache held usable credentials (or a remembered `AccessDenied`).
    Cache,
    /// The lookup waited for a call to the source (STS or the base chain).
    Source,
    /// The lookup waited, and the fleet's shared tier had the credentials.
    Shared,
}

impl Origin {
    /// `cache` or `sts`, for metrics labels.
    #[cfg(feature = "server")]
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Cache => "cache",
            Origin::Source => "sts",
            Origin::Shared => "shared",
        }
    }
}

impl<F: Future<Output = FetchResult>> Future for Lookup<F> {
    type Output = FetchResult;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<FetchResult> {
        match self.get_mut() {
            Lookup::Hit(answer) => std::task::Poll::Ready(answer.take().unwrap_or_else(|| {
                Err(SourceError::new(ErrorKind::Other, "the credential lookup was polled after it completed"))
            })),
            Lookup::Miss(wait) => wait.as_mut().poll(cx),
        }
    }
}

impl<S> CredentialCache<S> {
    /// How many entries the cache holds.
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| s.table.load().len()).sum()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Entry {
    fn touch(&self, now: u64) {
        if self.last_used.load(Ordering::Relaxed) != now {
            self.last_used.store(now, Ordering::Relaxed);
        }
    }
}

impl<S> Inner<S> {
    fn shard(&self, hash: u64) -> &Shard {
        &self.shards[(hash as usize) & (self.shards.len() - 1)]
    }

    /// The state of `entry` in its shard's current table; `Empty` once it has been evicted.
    fn state_of(&self, entry: &Arc<Entry>) -> State {
        let table = self.shard(entry.hash).table.load();
        table.find(entry.hash, |s| Arc::ptr_eq(&s.entry, entry)).map_or(State::Empty, |s| s.state.clone())
    }

    /// Drops `entry` from its shard's table, if it is still there.
    fn remove(&self, entry: &Arc<Entry>) {
        let shard = self.shard(entry.hash);
        let _writer = lock(&shard.write);
        let current = shard.table.load();
        let mut table = HashTable::clone(&current);
        if let Ok(slot) = table.find_entry(entry.hash, |s| Arc::ptr_eq(&s.entry, entry)) {
            slot.remove();
            shard.table.store(Arc::new(table));
        }
    }

    /// Replaces the state of `entry` by copying its shard's table; nothing to do once it has been evicted.
    fn set_state(&self, entry: &Arc<Entry>, state: State) {
        let shard = self.shard(entry.hash);
        let _writer = lock(&shard.write);
        let current = shard.table.load();
        if current.find(entry.hash, |s| Arc::ptr_eq(&s.entry, entry)).is_none() {
            return;
        }
        let mut table = HashTable::clone(&current);
        if let Some(slot) = table.find_mut(entry.hash, |s| Arc::ptr_eq(&s.entry, entry)) {
            slot.state = state;
        }
        shard.table.store(Arc::new(table));
    }
}

impl<S: CredentialSource> Inner<S> {
    /// The answer `entry` in `state` gives without calling the source, if it has one; starts a
    /// background refresh when the credentials are in their refresh window.
    fn answer_from(self: &Arc<Self>, entry: &Arc<Entry>, state: &State, now: u64) -> Option<FetchResult> {
        match state {
            State::Ready { credentials, refresh_at, usable_until } if now < *usable_until => {
                if now >= *refresh_at && tokio::runtime::Handle::try_current().is_ok() && self.start_refresh(entry) {
                    self.counters.refreshes.fetch_add(1, Ordering::Relaxed);
                }
                Some(Ok(Arc::clone(credentials)))
            }
            State::Denied { error, until } if now < *until => Some(Err(SourceError::clone(error))),
            _ => None,
        }
    }

    /// Finds or creates the entry for `request`, evicting the least recently used one when full.
    fn insert(&self, shard: &Shard, hash: u64, request: &CredentialRequest<'_>, now: u64) -> Arc<Entry> {
        let _writer = lock(&shard.write);
        let current = shard.table.load();
        if let Some(slot) = current.find(hash, |s| s.entry.key.request() == *request) {
            return Arc::clone(&slot.entry);
        }
        let mut table = HashTable::clone(&current);
        if table.len() >= self.per_shard {
            let oldest = table.iter().map(|s| &s.entry).min_by_key(|e| e.last_used.load(Ordering::Relaxed)).cloned();
            if let Some(old) = oldest
                && let Ok(slot) = table.find_entry(old.hash, |s| Arc::ptr_eq(&s.entry, &old))
            {
                slot.remove();
                self.counters.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        let entry = Arc::new(Entry {
            key: OwnedKey::of(request),
            hash,
            last_used: AtomicU64::new(now),
            flight: Mutex::new(None),
            refresh_failures: AtomicU32::new(0),
        });
        table.insert_unique(hash, Slot { entry: Arc::clone(&entry), state: State::Empty }, |s| s.entry.hash);
        shard.table.store(Arc::new(table));
        entry
    }

    /// Waits for the entry's source call, starting it unless one is in progress or the entry has
    /// become usable meanwhile.
    async fn load(self: &Arc<Self>, entry: &Arc<Entry>, now: u64) -> FetchResult {
        let usable = {
            let mut flight = lock(&entry.flight);
            if let Some(flight) = &*flight {
                Either::Left(flight.clone())
            } else {
                // Under the flight lock, which a fetch takes to finish after storing its state: the state
                // of every finished fetch is seen here.
                let state = self.state_of(entry);
                if state.usable(self.clock.now_millis()) {
                    Either::Right(state)
                } else {
                    Either::Left(self.start_flight(entry, &mut flight))
                }
            }
        };
        match usable {
            Either::Left(flight) => flight.await,
            Either::Right(state) => self.answer_from(entry, &state, now).unwrap_or_else(|| {
                Err(SourceError::new(ErrorKind::Other, "the credential cache entry changed while loading; retry"))
            }),
        }
    }

    /// Starts a background refresh of `entry` unless a source call for it is in progress; whether it did.
    fn start_refresh(self: &Arc<Self>, entry: &Arc<Entry>) -> bool {
        let mut flight = lock(&entry.flight);
        let idle = flight.is_none();
        if idle {
            // Spawned on the runtime, so it runs without being awaited; callers that need it join it.
            drop(self.start_flight(entry, &mut flight));
        }
        idle
    }

    /// Starts the source call for `entry` and records it in `slot` (the entry's flight, locked).
    fn start_flight(self: &Arc<Self>, entry: &Arc<Entry>, slot: &mut Option<Flight>) -> Flight {
        let work = Arc::clone(self).fetch(Arc::clone(entry));
        let flight: Pin<Box<dyn Future<Output = FetchResult> + Send>> = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let task = runtime.spawn(work);
                Box::pin(async move {
                    task.await.unwrap_or_else(|e| {
                        Err(SourceError::new(ErrorKind::Other, format!("the credential fetch task failed: {e}")))
                    })
                })
            }
            Err(_) => Box::pin(work),
        };
        let flight = flight.shared();
        *slot = Some(flight.clone());
        flight
    }

    /// One source call for `entry`; stores its outcome and clears the flight.
    async fn fetch(self: Arc<Self>, entry: Arc<Entry>) -> FetchResult {
        // Clears the flight however the call ends: with an answer, or with a panic or a cancellation of
        // the task, after which the next lookup must call the source again rather than repeat an error.
        let _landed = Landed(Arc::clone(&entry));
        let result = self.obtain(&entry.key.request()).await;
        let now = self.clock.now_millis();
        match result {
            Ok(credentials) => {
                let credentials = Arc::new(credentials);
                entry.refresh_failures.store(0, Ordering::Relaxed);
                self.set_state(&entry, self.ready(Arc::clone(&credentials), now));
                Ok(credentials)
            }
            Err(error) => {
                if let Some(counter) = ErrorKind::ALL.iter().position(|k| *k == error.error_kind()) {
                    self.counters.errors[counter].fetch_add(1, Ordering::Relaxed);
                }
                match self.state_of(&entry) {
                    State::Ready { credentials, usable_until, .. } if error.is_transient() && now < usable_until => {
                        let failures = entry.refresh_failures.fetch_add(1, Ordering::Relaxed).min(30);
                        let backoff = self
                            .config
                            .retry_backoff_initial
                            .saturating_mul(1 << failures)
                            .min(self.config.retry_backoff_max);
                        let refresh_at = now.saturating_add(duration_millis(backoff));
                        self.set_state(
                            &entry,
                            State::Ready { credentials: Arc::clone(&credentials), refresh_at, usable_until },
                        );
                        self.counters.stale_served.fetch_add(1, Ordering::Relaxed);
                        Ok(credentials)
                    }
                    state => {
                        let revoked = matches!(state, State::Ready { .. }) && !error.is_transient();
                        if revoked {
                            self.counters.revoked.fetch_add(1, Ordering::Relaxed);
                        }
                        if error.error_kind() == ErrorKind::AccessDenied {
                            let until = now.saturating_add(duration_millis(self.config.access_denied_ttl));
                            self.set_state(&entry, State::Denied { error: Arc::new(error.clone()), until });
                        } else if revoked {
                            self.remove(&entry);
                        }
                        Err(error)
                    }
                }
            }
        }
    }

    /// The credentials for `request` from the shared tier or the source; base credentials (a node's own)
    /// always from the source.
    async fn obtain(&self, request: &CredentialRequest<'_>) -> Result<Credentials, SourceError> {
        let count = || {
            self.counters.source_calls.fetch_add(1, Ordering::Relaxed);
        };
        match (&self.shared, request) {
            (Some(shared), CredentialRequest(RequestKind::AssumeRole(assume))) => {
                let config = &self.config;
                // A shared entry is taken while it needs no refresh; a fresh one is kept until the
                // stale margin.
                let obtained = shared
                    .obtain(
                        assume,
                        &self.source,
                        count,
                        config.refresh_before_expiry,
                        config.stale_min_remaining,
                        config.access_denied_ttl,
                    )
                    .await?;
                let mut credentials = obtained.credentials;
                credentials.from_shared_tier = obtained.from_store;
                Ok(credentials)
            }
            _ => {
                count();
                self.source.fetch(request).await
            }
        }
    }

    /// The state for freshly fetched credentials: refresh at expiry minus the window minus a jitter.
    fn ready(&self, credentials: Arc<Credentials>, now: u64) -> State {
        let Some(expiration) = credentials.expiration().map(millis) else {
            return State::Ready { credentials, refresh_at: u64::MAX, usable_until: u64::MAX };
        };
        let window = self.config.refresh_before_expiry;
        let share = (lock(&self.rng).next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let jitter = window.mul_f64((self.config.refresh_jitter * share).clamp(0.0, 1.0));
        let refresh_at = expiration.checked_sub(duration_millis(window.saturating_add(jitter))).unwrap_or(now);
        let usable_until = expiration.checked_sub(duration_millis(self.config.stale_min_remaining)).unwrap_or(now);
        State::Ready { credentials, refresh_at, usable_until }
    }
}

/// The cache's counters. Hits and misses, touched on every lookup, are striped over cache lines so
/// that threads do not contend on one counter.
#[derive(Default)]
struct Counters {
    hits: Striped,
    misses: Striped,
    refreshes: AtomicU64,
    source_calls: AtomicU64,
    stale_served: AtomicU64,
    evictions: AtomicU64,
    revoked: AtomicU64,
    errors: [AtomicU64; ErrorKind::ALL.len()],
}

#[repr(align(64))]
#[derive(Default)]
struct Padded(AtomicU64);

/// A counter split into cache-line-sized stripes, so that threads do not contend on one line. A thread
/// that holds a [`StripeClaim`] is the only writer of its stripe and adds with a plain load and store
/// (no locked instruction); any other thread adds atomically to the shared stripe.
struct Striped {
    claimed: [Padded; STRIPES],
    shared: Padded,
}

/// How many threads at a time can own a stripe (process-wide, for every cache).
const STRIPES: usize = 64;

/// Which stripe indexes live threads own.
static CLAIMS: [AtomicBool; STRIPES] = [const { AtomicBool::new(false) }; STRIPES];

/// A thread's stripe index, claimed on its first count and released when it exits; `None` when all
/// were taken.
struct StripeClaim(Option<usize>);

impl StripeClaim {
    fn new() -> Self {
        // Acquire: see the counts of the thread that released the index before.
        StripeClaim(
            CLAIMS.iter().position(|c| c.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()),
        )
    }
}

impl Drop for StripeClaim {
    fn drop(&mut self) {
        if let Some(claim) = self.0.and_then(|i| CLAIMS.get(i)) {
            claim.store(false, Ordering::Release);
        }
    }
}

impl Default for Striped {
    fn default() -> Self {
        Striped { claimed: std::array::from_fn(|_| Padded::default()), shared: Padded::default() }
    }
}

impl Striped {
    fn add(&self, n: u64) {
        thread_local! {
            static STRIPE: StripeClaim = StripeClaim::new();
        }
        match STRIPE.try_with(|claim| claim.0).ok().flatten().and_then(|i| self.claimed.get(i)) {
            // Only this thread writes the stripe while it holds the claim.
            Some(mine) => mine.0.store(mine.0.load(Ordering::Relaxed) + n, Ordering::Relaxed),
            None => {
                self.shared.0.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    fn sum(&self) -> u64 {
        self.claimed.iter().chain([&self.shared]).map(|p| p.0.load(Ordering::Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_striped_count_is_exact_with_more_threads_than_stripes() {
        let threads = STRIPES + 16;
        let counter = Striped::default();
        let all_alive = std::sync::Barrier::new(threads);
        // Twice: the second round's threads claim the stripes the first round's released.
        for round in 1..=2 {
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| {
                        // Every thread counts while all are alive, so some find no stripe left to claim.
                        counter.add(1);
                        all_alive.wait();
                        for _ in 1..1_000 {
                            counter.add(1);
                        }
                    });
                }
            });
            assert!(counter.shared.0.load(Ordering::Relaxed) > 0, "some threads counted on the shared stripe");
            assert_eq!(counter.sum(), round * threads as u64 * 1_000);
        }
    }
}
