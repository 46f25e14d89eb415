//! The fleet's shared tier: a second cache level behind each node's [`CredentialCache`], on a store
//! every node reaches ([`SharedTier`]; Redis or Valkey in `redis_tier.rs`), so that STS sees one
//! AssumeRole per request for the whole fleet.
//!
//! - **Sealed entries.** A value is the credentials encrypted and authenticated with
//!   ChaCha20-Poly1305 under a key derived from the fleet key; the associated data binds the format,
//!   the store key the value sits under, the whole AssumeRole request and the expiration, so an entry
//!   that was altered, moved to another key, made for another request or sealed with another key does not
//!   open. The store key is an HMAC of the request under a second derived key: a reader of the store
//!   learns neither users nor roles. A previous key is accepted for reading, for rotation.
//! - **One AssumeRole per request for the fleet.** On a local miss, a node reads the store; when the
//!   entry is missing it takes a short lock in the store (`SET NX PX` with a random token, released only
//!   by its holder), calls the source and writes the entry; nodes that find the lock taken poll the store
//!   for the entry up to a bound, then call the source themselves (the holder may have died). An
//!   `AccessDenied` is written as a sealed marker for the cache's `access_denied_ttl`.
//! - **The store may fail without failing a request.** Every call is bounded by a short timeout; after
//!   consecutive failures a circuit breaker opens and the node works from its local tier alone, while a
//!   background probe waits for the store to answer again.
//!
//! Base credentials (fallback decisions) are never shared: they are each node's own.
//!
//! [`CredentialCache`]: super::CredentialCache

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{KeyInit, Mac};
use zeroize::Zeroizing;

use super::clock::{duration_millis, millis};
use super::error::SettingsError;
use super::source::{AssumeRoleRequest, CredentialSource, Credentials, ErrorKind, SourceError};

/// A future of a [`SharedTier`] call.
pub(crate) type TierFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SourceError>> + Send + 'a>>;

/// A key-value store that the nodes of a fleet share, under the credential cache: Redis or Valkey
/// ([`CredentialCache::with_redis`](super::CredentialCache::with_redis)), or any store that offers these
/// four calls ([`CredentialCache::with_shared_tier`](super::CredentialCache::with_shared_tier)).
///
/// It only ever sees keyed hashes and sealed bytes. The cache bounds every call with its own timeout
/// and treats an error as "the store is unavailable": a request never fails because of the store.
pub trait SharedTier: Send + Sync + 'static {
    /// The values under `keys`, in order, `None` where there is none (Redis `MGET`).
    #[allow(clippy::type_complexity)]
    fn get<'a>(
        &'a self,
        keys: &'a [String],
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Option<Vec<u8>>>, SourceError>> + Send + 'a>>;
    /// Stores `value` under `key` for `ttl`, replacing what is there (`SET key value PX ttl`).
    fn put<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<(), SourceError>> + Send + 'a>>;
    /// Takes the lock `key` with `token` for `ttl` unless someone holds it; whether it was taken
    /// (`SET key token NX PX ttl`).
    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        ttl: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<bool, SourceError>> + Send + 'a>>;
    /// Releases the lock `key` if `token` still holds it, and only then.
    fn unlock<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), SourceError>> + Send + 'a>>;
}

/// The shortest fleet key accepted, in bytes.
pub(crate) const MIN_KEY_BYTES: usize = 32;
/// The version tag at the start of every sealed value, also bound into its associated data.
const MAGIC: &[u8; 4] = b"ERS1";
const NONCE_BYTES: usize = 12;
/// Store keys start with this, so that an operator sees whose keys they are.
const NAMESPACE: &str = "emrfs-rolemap:v1";

/// What a store key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Sealed credentials.
    Credentials,
    /// A sealed `AccessDenied` marker.
    Denied,
    /// A lock's token (not sealed: it is only a random token).
    Lock,
}

impl Kind {
    fn tag(self) -> char {
        match self {
            Kind::Credentials => 'c',
            Kind::Denied => 'd',
            Kind::Lock => 'l',
        }
    }
}

/// Keys derived from one fleet key: one seals, one names store keys.
struct DerivedKeys {
    seal: Zeroizing<[u8; 32]>,
    name: Zeroizing<[u8; 32]>,
}

impl DerivedKeys {
    fn new(material: &[u8]) -> Result<Self, SettingsError> {
        if material.len() < MIN_KEY_BYTES {
            return Err(SettingsError::SharedCacheKey(material.len()));
        }
        let derive = |label: &[u8]| {
            let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(material)
                .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
            mac.update(label);
            Zeroizing::new(<[u8; 32]>::from(mac.finalize().into_bytes()))
        };
        Ok(DerivedKeys {
            seal: derive(b"emrfs-rolemap shared cache: sealing key v1"),
            name: derive(b"emrfs-rolemap shared cache: naming key v1"),
        })
    }

    /// The store key of `kind` for the request whose canonical bytes are `request`.
    fn store_key(&self, kind: Kind, request: &[u8]) -> String {
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&*self.name)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(request);
        let digest = mac.finalize().into_bytes();
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("{NAMESPACE}:{}:{hex}", kind.tag())
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(&Key::from(*self.seal))
    }
}

/// The request's canonical bytes: every part that makes its credentials differ, length-prefixed.
fn canonical(request: &AssumeRoleRequest<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    let mut field = |bytes: Option<&[u8]>| match bytes {
        None => out.push(0),
        Some(bytes) => {
            out.push(1);
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(bytes);
        }
    };
    field(Some(b"assume-role"));
    field(Some(request.role_arn.as_str().as_bytes()));
    field(Some(request.session_name.as_str().as_bytes()));
    field(Some(&request.duration_seconds.to_be_bytes()));
    field(request.external_id.map(str::as_bytes));
    field(request.source_identity.map(str::as_bytes));
    out
}

/// What a sealed value opened to.
#[derive(Debug)]
enum Opened {
    Credentials(Credentials),
    Denied { message: String },
}

/// Why a value was not served; each is counted as a rejected entry.
#[derive(Debug, PartialEq, Eq)]
enum Rejected {
    /// It does not open: altered, moved to another key, for another request, or another key's.
    Unopened,
    /// It opened, and has expired.
    Expired,
}

/// The fleet key, and the previous one during a rotation.
struct Sealer {
    current: DerivedKeys,
    previous: Option<DerivedKeys>,
}

impl Sealer {
    fn associated_data(kind: Kind, store_key: &str, request: &[u8], expires_ms: u64) -> Vec<u8> {
        let mut aad = Vec::with_capacity(store_key.len() + request.len() + 16);
        aad.extend_from_slice(MAGIC);
        aad.push(kind.tag() as u8);
        aad.extend_from_slice(&(store_key.len() as u32).to_be_bytes());
        aad.extend_from_slice(store_key.as_bytes());
        aad.extend_from_slice(request);
        aad.extend_from_slice(&expires_ms.to_be_bytes());
        aad
    }

    /// `plaintext` of `kind` sealed under the current key for `store_key`, `request` and `expires_ms`.
    fn seal(
        &self,
        kind: Kind,
        store_key: &str,
        request: &[u8],
        expires_ms: u64,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SourceError> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce)
            .map_err(|e| SourceError::new(ErrorKind::Other, format!("no random bytes for a nonce: {e}")))?;
        let aad = Self::associated_data(kind, store_key, request, expires_ms);
        let sealed = self
            .current
            .cipher()
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad: &aad })
            .map_err(|_| SourceError::new(ErrorKind::Other, "sealing a shared cache entry failed"))?;
        let mut value = Vec::with_capacity(MAGIC.len() + NONCE_BYTES + 8 + sealed.len());
        value.extend_from_slice(MAGIC);
        value.extend_from_slice(&nonce);
        value.extend_from_slice(&expires_ms.to_be_bytes());
        value.extend_from_slice(&sealed);
        Ok(value)
    }

    /// Opens `value`, found under `store_key` (named by `keys`), for `request` at `now_ms`.
    fn open(
        keys: &DerivedKeys,
        store_key: &str,
        request: &[u8],
        value: &[u8],
        kind: Kind,
        now_ms: u64,
    ) -> Result<Opened, Rejected> {
        let header = MAGIC.len() + NONCE_BYTES + 8;
        if value.len() < header || &value[..MAGIC.len()] != MAGIC {
            return Err(Rejected::Unopened);
        }
        let nonce = Nonce::try_from(&value[MAGIC.len()..MAGIC.len() + NONCE_BYTES]).map_err(|_| Rejected::Unopened)?;
        let mut expires = [0u8; 8];
        expires.copy_from_slice(&value[MAGIC.len() + NONCE_BYTES..header]);
        let expires_ms = u64::from_be_bytes(expires);
        let aad = Self::associated_data(kind, store_key, request, expires_ms);
        let plaintext = Zeroizing::new(
            keys.cipher()
                .decrypt(&nonce, Payload { msg: &value[header..], aad: &aad })
                .map_err(|_| Rejected::Unopened)?,
        );
        if expires_ms <= now_ms {
            return Err(Rejected::Expired);
        }
        let expiration = UNIX_EPOCH + Duration::from_millis(expires_ms);
        match kind {
            Kind::Credentials => decode_credentials(&plaintext, expiration).map(Opened::Credentials),
            Kind::Denied => String::from_utf8(plaintext.to_vec())
                .map(|message| Opened::Denied { message })
                .map_err(|_| Rejected::Unopened),
            Kind::Lock => Err(Rejected::Unopened),
        }
    }
}

fn encode_credentials(credentials: &Credentials) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(1024));
    for part in [Some(credentials.access_key_id()), Some(credentials.secret_access_key()), credentials.session_token()]
    {
        match part {
            None => out.push(0),
            Some(text) => {
                out.push(1);
                out.extend_from_slice(&(text.len() as u32).to_be_bytes());
                out.extend_from_slice(text.as_bytes());
            }
        }
    }
    out
}

fn decode_credentials(bytes: &[u8], expiration: SystemTime) -> Result<Credentials, Rejected> {
    let mut rest = bytes;
    let mut next = || -> Result<Option<Zeroizing<String>>, Rejected> {
        let (&tag, tail) = rest.split_first().ok_or(Rejected::Unopened)?;
        if tag == 0 {
            rest = tail;
            return Ok(None);
        }
        let (length, tail) = tail.split_at_checked(4).ok_or(Rejected::Unopened)?;
        let length = u32::from_be_bytes(length.try_into().map_err(|_| Rejected::Unopened)?) as usize;
        let (text, tail) = tail.split_at_checked(length).ok_or(Rejected::Unopened)?;
        rest = tail;
        let text = std::str::from_utf8(text).map_err(|_| Rejected::Unopened)?;
        Ok(Some(Zeroizing::new(text.to_owned())))
    };
    let access_key_id = next()?.ok_or(Rejected::Unopened)?;
    let secret = next()?.ok_or(Rejected::Unopened)?;
    let token = next()?;
    Ok(Credentials::new(
        access_key_id.as_str(),
        secret.as_str(),
        token.as_ref().map(|t| t.as_str().to_owned()),
        Some(expiration),
    ))
}

/// The timings of the shared tier.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timings {
    /// The bound on every call to the store.
    pub(crate) call_timeout: Duration,
    /// How long a lock is held at most (its expiry in the store).
    pub(crate) lock_ttl: Duration,
    /// How long a node waits for another node's entry before it calls the source itself.
    pub(crate) lock_wait: Duration,
    /// Consecutive store failures that open the breaker.
    pub(crate) breaker_failures: u32,
    /// How often an open breaker probes the store.
    pub(crate) breaker_probe: Duration,
}

/// The circuit breaker: closed (the store is used), or open (it is not, and a probe waits for it).
#[derive(Default)]
struct Breaker {
    open: AtomicBool,
    failures: Mutex<u32>,
    probing: AtomicBool,
}

/// The shared tier's counters.
#[derive(Default)]
pub(crate) struct SharedCounters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) lock_waits: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) rejected: AtomicU64,
}

/// The shared tier as the cache uses it: the store, the keys, the breaker and the counters.
pub(crate) struct FleetTier {
    tier: Arc<dyn SharedTier>,
    sealer: Sealer,
    timings: Timings,
    breaker: Arc<Breaker>,
    pub(crate) counters: SharedCounters,
}

/// What a fetch through the shared tier gave: the credentials, and whether the store had them.
pub(crate) struct Obtained {
    pub(crate) credentials: Credentials,
    pub(crate) from_store: bool,
}

impl FleetTier {
    /// The tier `tier` under the fleet key `key` (and `previous`, for reading during a rotation).
    pub(crate) fn new(
        tier: Arc<dyn SharedTier>,
        key: &[u8],
        previous: Option<&[u8]>,
        timings: Timings,
    ) -> Result<Self, SettingsError> {
        let sealer = Sealer { current: DerivedKeys::new(key)?, previous: previous.map(DerivedKeys::new).transpose()? };
        Ok(FleetTier { tier, sealer, timings, breaker: Arc::default(), counters: SharedCounters::default() })
    }

    /// Whether the breaker is open (the store is not being used).
    pub(crate) fn breaker_open(&self) -> bool {
        self.breaker.open.load(Ordering::Relaxed)
    }

    /// The credentials for `request`: from the store when it holds an entry with more than `fresh_for`
    /// left, else from `source` — under the fleet's lock, or after waiting for its holder — and then
    /// written to the store for `keep_until_before` less than their lifetime.
    pub(crate) async fn obtain<S: CredentialSource + ?Sized>(
        &self,
        request: &AssumeRoleRequest<'_>,
        source: &S,
        source_call: impl Fn(),
        fresh_for: Duration,
        keep_until_before: Duration,
        denied_ttl: Duration,
    ) -> Result<Obtained, SourceError> {
        let call_source = || async {
            source_call();
            source.fetch(&super::source::CredentialRequest(super::source::RequestKind::AssumeRole(*request))).await
        };
        if self.breaker_open() {
            return call_source().await.map(|credentials| Obtained { credentials, from_store: false });
        }
        let canonical = canonical(request);
        match self.read(&canonical, fresh_for, true).await {
            Some(Ok(found)) => return found,
            Some(Err(())) => return call_source().await.map(|credentials| Obtained { credentials, from_store: false }),
            None => {}
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        let lock_key = self.sealer.current.store_key(Kind::Lock, &canonical);
        let token = random_token();
        let locked = match &token {
            Some(token) => self.call(self.tier.try_lock(&lock_key, token, self.timings.lock_ttl)).await,
            None => Err(()),
        };
        if locked == Ok(false) {
            // Another node is fetching: wait for its entry, polling, then fetch ourselves.
            self.counters.lock_waits.fetch_add(1, Ordering::Relaxed);
            let started = tokio::time::Instant::now();
            let mut pause = Duration::from_millis(10);
            while started.elapsed() < self.timings.lock_wait {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(100));
                match self.read(&canonical, fresh_for, false).await {
                    Some(Ok(found)) => return found,
                    Some(Err(())) => break,
                    None => {}
                }
            }
        }
        if locked == Ok(true) {
            // Another node may have written the entry and let the lock go between our read and our lock.
            if let Some(Ok(found)) = self.read(&canonical, fresh_for, false).await {
                if let Some(token) = &token {
                    let _ = self.call(self.tier.unlock(&lock_key, token)).await;
                }
                return found;
            }
        }
        let fetched = call_source().await;
        if !self.breaker_open() {
            match &fetched {
                Ok(credentials) => self.write_credentials(&canonical, credentials, keep_until_before).await,
                Err(error) if error.error_kind() == ErrorKind::AccessDenied => {
                    self.write_denied(&canonical, error, denied_ttl).await;
                }
                Err(_) => {}
            }
            if let (Ok(true), Some(token)) = (locked, &token) {
                let _ = self.call(self.tier.unlock(&lock_key, token)).await;
            }
        }
        fetched.map(|credentials| Obtained { credentials, from_store: false })
    }

    /// Reads the entries of `canonical` (under the current key and the previous one, in one call):
    /// `Some(Ok(answer))` for usable credentials or a denial, `None` for nothing usable, `Some(Err(()))`
    /// when the store failed. Entries not served are counted when `count_rejected` (the first read of a
    /// miss; the reads that wait for another node would count the same entries again).
    async fn read(
        &self,
        canonical: &[u8],
        fresh_for: Duration,
        count_rejected: bool,
    ) -> Option<Result<Result<Obtained, SourceError>, ()>> {
        let mut keys = Vec::with_capacity(4);
        for derived in std::iter::once(&self.sealer.current).chain(&self.sealer.previous) {
            keys.push(derived.store_key(Kind::Credentials, canonical));
            keys.push(derived.store_key(Kind::Denied, canonical));
        }
        let values = match self.call(self.tier.get(&keys)).await {
            Ok(values) => values,
            Err(()) => return Some(Err(())),
        };
        let now = millis(SystemTime::now());
        let derived = std::iter::once(&self.sealer.current).chain(&self.sealer.previous);
        for ((pair, values), keys_of) in keys.chunks(2).zip(values.chunks(2)).zip(derived) {
            for ((store_key, value), kind) in pair.iter().zip(values).zip([Kind::Credentials, Kind::Denied]) {
                let Some(value) = value else { continue };
                match Sealer::open(keys_of, store_key, canonical, value, kind, now) {
                    Ok(Opened::Credentials(credentials)) => {
                        let left = credentials.expiration().map_or(u64::MAX, millis).saturating_sub(now);
                        if left > duration_millis(fresh_for) {
                            self.counters.hits.fetch_add(1, Ordering::Relaxed);
                            return Some(Ok(Ok(Obtained { credentials, from_store: true })));
                        }
                    }
                    Ok(Opened::Denied { message }) => {
                        self.counters.hits.fetch_add(1, Ordering::Relaxed);
                        return Some(Ok(Err(SourceError::access_denied(message))));
                    }
                    Err(Rejected::Unopened | Rejected::Expired) if count_rejected => {
                        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {}
                }
            }
        }
        None
    }

    async fn write_credentials(&self, canonical: &[u8], credentials: &Credentials, keep_until_before: Duration) {
        let Some(expiration) = credentials.expiration() else { return };
        let expires_ms = millis(expiration);
        let keep_until = expires_ms.saturating_sub(duration_millis(keep_until_before));
        let now = millis(SystemTime::now());
        if keep_until <= now {
            return;
        }
        let store_key = self.sealer.current.store_key(Kind::Credentials, canonical);
        let plaintext = encode_credentials(credentials);
        let Ok(value) = self.sealer.seal(Kind::Credentials, &store_key, canonical, expires_ms, &plaintext) else {
            return;
        };
        let ttl = Duration::from_millis(keep_until - now);
        if self.call(self.tier.put(&store_key, &value, ttl)).await.is_ok() {
            self.counters.writes.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn write_denied(&self, canonical: &[u8], error: &SourceError, ttl: Duration) {
        let now = millis(SystemTime::now());
        let until = now.saturating_add(duration_millis(ttl));
        let store_key = self.sealer.current.store_key(Kind::Denied, canonical);
        let Ok(value) = self.sealer.seal(Kind::Denied, &store_key, canonical, until, error.message().as_bytes()) else {
            return;
        };
        if !ttl.is_zero() && self.call(self.tier.put(&store_key, &value, ttl)).await.is_ok() {
            self.counters.writes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One store call under the timeout; a failure counts towards the breaker, a success resets it.
    async fn call<T>(&self, call: TierFuture<'_, T>) -> Result<T, ()> {
        let outcome = match tokio::time::timeout(self.timings.call_timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(error.message().to_owned()),
            Err(_) => Err(format!("no answer within {} ms", self.timings.call_timeout.as_millis())),
        };
        match outcome {
            Ok(value) => {
                *lock(&self.breaker.failures) = 0;
                Ok(value)
            }
            Err(message) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                self.failed(&message);
                Err(())
            }
        }
    }

    /// Counts a failure; opens the breaker at the threshold and starts the probe that closes it.
    fn failed(&self, message: &str) {
        let mut failures = lock(&self.breaker.failures);
        *failures += 1;
        if *failures < self.timings.breaker_failures.max(1) || self.breaker.open.swap(true, Ordering::Relaxed) {
            return;
        }
        drop(failures);
        log_breaker(&format!(
            "the shared cache tier failed {} times in a row ({message}); using the local cache alone until it answers again",
            self.timings.breaker_failures.max(1)
        ));
        self.start_probe();
    }

    /// Probes the store every `breaker_probe` until it answers, then closes the breaker.
    fn start_probe(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to probe from: close at once and let the next calls decide.
            self.breaker.open.store(false, Ordering::Relaxed);
            return;
        };
        if self.breaker.probing.swap(true, Ordering::Relaxed) {
            return;
        }
        let (tier, breaker, timings) = (Arc::clone(&self.tier), Arc::clone(&self.breaker), self.timings);
        runtime.spawn(async move {
            let probe_key = vec![format!("{NAMESPACE}:probe")];
            loop {
                tokio::time::sleep(timings.breaker_probe).await;
                if let Ok(Ok(_)) = tokio::time::timeout(timings.call_timeout, tier.get(&probe_key)).await {
                    *lock(&breaker.failures) = 0;
                    breaker.open.store(false, Ordering::Relaxed);
                    breaker.probing.store(false, Ordering::Relaxed);
                    log_breaker("the shared cache tier answers again; sharing resumes");
                    return;
                }
                // The breaker's owner is gone: stop probing.
                if Arc::strong_count(&breaker) == 1 {
                    return;
                }
            }
        });
    }
}

#[cfg(feature = "server")]
fn log_breaker(message: &str) {
    tracing::warn!("{message}");
}

#[cfg(not(feature = "server"))]
fn log_breaker(_message: &str) {}

/// A random lock token, or `None` when the OS gives no random bytes.
fn random_token() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RoleArn;
    use crate::credentials::session_name::SessionName;

    fn role() -> RoleArn {
        RoleArn::parse("arn:aws:iam::123456789012:role/analysts").unwrap()
    }

    fn request<'a>(role: &'a RoleArn, external_id: Option<&'a str>) -> AssumeRoleRequest<'a> {
        AssumeRoleRequest {
            role_arn: role,
            session_name: SessionName::new("emrfs-alice").unwrap(),
            duration_seconds: 3600,
            external_id,
            source_identity: Some("alice"),
        }
    }

    fn keys(byte: u8) -> DerivedKeys {
        DerivedKeys::new(&[byte; 32]).unwrap()
    }

    #[test]
    fn an_entry_opens_only_as_sealed() {
        let role = role();
        let canonical = canonical(&request(&role, None));
        let sealer = Sealer { current: keys(1), previous: None };
        let key = sealer.current.store_key(Kind::Credentials, &canonical);
        assert!(key.starts_with("emrfs-rolemap:v1:c:") && !key.contains("alice") && !key.contains("analysts"));
        let credentials = Credentials::new("ASIAEXAMPLE", "secret", Some("token".into()), None);
        let now = 1_000_000;
        let value =
            sealer.seal(Kind::Credentials, &key, &canonical, now + 60_000, &encode_credentials(&credentials)).unwrap();
        assert!(!value.windows(6).any(|w| w == b"secret"), "the secret is not in clear");
        let opened = Sealer::open(&sealer.current, &key, &canonical, &value, Kind::Credentials, now).unwrap();
        let Opened::Credentials(opened) = opened else { panic!("{opened:?}") };
        assert_eq!(
            (opened.access_key_id(), opened.secret_access_key(), opened.session_token()),
            ("ASIAEXAMPLE", "secret", Some("token"))
        );
        // Every byte flipped: refused.
        for at in 0..value.len() {
            let mut altered = value.clone();
            altered[at] ^= 0x20;
            let outcome = Sealer::open(&sealer.current, &key, &canonical, &altered, Kind::Credentials, now);
            assert_eq!(outcome.err(), Some(Rejected::Unopened), "byte {at}");
        }
        // Another key, another store key, another request, later than its expiry: refused.
        assert_eq!(
            Sealer::open(&keys(2), &key, &canonical, &value, Kind::Credentials, now).err(),
            Some(Rejected::Unopened)
        );
        let elsewhere = sealer.current.store_key(Kind::Credentials, b"another request");
        assert_eq!(
            Sealer::open(&sealer.current, &elsewhere, &canonical, &value, Kind::Credentials, now).err(),
            Some(Rejected::Unopened)
        );
        let other = canonical_of_other(&role);
        assert_eq!(
            Sealer::open(&sealer.current, &key, &other, &value, Kind::Credentials, now).err(),
            Some(Rejected::Unopened)
        );
        assert_eq!(
            Sealer::open(&sealer.current, &key, &canonical, &value, Kind::Denied, now).err(),
            Some(Rejected::Unopened)
        );
        assert_eq!(
            Sealer::open(&sealer.current, &key, &canonical, &value, Kind::Credentials, now + 60_000).err(),
            Some(Rejected::Expired)
        );
    }

    fn canonical_of_other(role: &RoleArn) -> Vec<u8> {
        canonical(&request(role, Some("another-external-id")))
    }

    #[test]
    fn keys_are_long_and_derived_apart() {
        assert_eq!(DerivedKeys::new(&[0; 31]).err(), Some(SettingsError::SharedCacheKey(31)));
        let derived = keys(7);
        assert_ne!(*derived.seal, *derived.name);
        let role = role();
        let (a, b) = (canonical(&request(&role, None)), canonical(&request(&role, Some("x1"))));
        assert_ne!(derived.store_key(Kind::Credentials, &a), derived.store_key(Kind::Credentials, &b));
        assert_ne!(derived.store_key(Kind::Credentials, &a), keys(8).store_key(Kind::Credentials, &a));
    }
}
