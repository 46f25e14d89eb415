//! Who is asking: the bearer token of TCP callers, the uid of Unix-socket callers, and the user name and
//! groups the operating system gives a uid (cached for a TTL, like Hadoop's group cache).

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::Shared;

use subtle::ConstantTimeEq;

use super::ServerError;
use super::files::{FileCheck, read_secret};
use crate::credentials::Secret;

/// The caller of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    /// A TCP client; it must present the bearer token.
    Tcp,
    /// A Unix-socket client, identified by the kernel (`SO_PEERCRED`).
    Unix {
        /// The client process's user id.
        uid: u32,
    },
    /// A TCP client that presented a per-user token: the uid the token was issued to, never trusted.
    UserToken {
        /// The uid the token is bound to.
        uid: u32,
    },
}

impl std::fmt::Display for Caller {
    /// `tcp` or `uid N`, for logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Caller::Tcp => f.write_str("tcp"),
            Caller::Unix { uid } => write!(f, "uid {uid}"),
            Caller::UserToken { uid } => write!(f, "token of uid {uid}"),
        }
    }
}

/// The shared secret TCP callers present as `Authorization: Bearer <token>`. Compared in constant time;
/// never printed.
#[derive(Debug, Clone)]
pub struct BearerToken(Secret);

impl BearerToken {
    /// The shortest bearer token accepted, in bytes.
    pub const MIN_BYTES: usize = 16;
    /// The largest token file read, in bytes.
    pub const MAX_FILE_BYTES: usize = 4096;

    /// A token of visible ASCII characters, at least [`Self::MIN_BYTES`] long; the error says what is
    /// wrong, never quoting the token.
    pub fn new(token: &str) -> Result<Self, String> {
        if token.len() < Self::MIN_BYTES {
            return Err(format!(
                "it has {} bytes, fewer than {}; generate one with `openssl rand -hex 32`",
                token.len(),
                Self::MIN_BYTES
            ));
        }
        if let Some(position) = token.bytes().position(|b| !b.is_ascii_graphic()) {
            return Err(format!(
                "byte {} is not a visible ASCII character; a bearer token is one line without spaces",
                position + 1
            ));
        }
        Ok(BearerToken(Secret::new(token)))
    }

    /// Reads the token from `path`, a trusted secret file (see [`FileCheck`]) of at most
    /// [`Self::MAX_FILE_BYTES`] holding one line (a trailing newline is ignored). Opening never blocks:
    /// a FIFO or device is refused. Call it off the async runtime: it reads a file.
    pub fn from_file(path: &Path, check: FileCheck) -> Result<Self, ServerError> {
        let unusable = |reason: String| ServerError::UnusableToken { path: super::files::shown(path), reason };
        let bytes = read_secret(path, check, Self::MAX_FILE_BYTES)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| unusable("it is not UTF-8 text".to_owned()))?;
        let token = text.strip_suffix('\n').map_or(text, |t| t.strip_suffix('\r').unwrap_or(t));
        BearerToken::new(token).map_err(unusable)
    }

    /// Whether an `Authorization` header value carries this token, as `Bearer <token>` or the token
    /// alone (what the AWS SDKs send from `AWS_CONTAINER_AUTHORIZATION_TOKEN`). The comparison runs over
    /// the whole token whatever is presented, so its time says nothing about the token: neither the
    /// first differing byte nor the token's length.
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let Some(value) = authorization else { return false };
        let presented = presented_token(value);
        let expected = self.0.expose().as_bytes();
        let mut equal = (presented.len() as u64).ct_eq(&(expected.len() as u64));
        for (i, byte) in expected.iter().enumerate() {
            equal &= presented.get(i).copied().unwrap_or(0).ct_eq(byte);
        }
        bool::from(equal)
    }
}

/// The token in an `Authorization` value: the credentials part of `Bearer <credentials>` (the scheme
/// is case-insensitive, RFC 9110 §11.1), or the whole value when it names no scheme.
pub(crate) fn presented_token(value: &[u8]) -> &[u8] {
    match value.split_at_checked(7) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"bearer ") => rest.trim_ascii(),
        _ => value.trim_ascii(),
    }
}

/// What the operating system says about a uid: its user name and the names of its groups, primary
/// group first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsIdentity {
    /// The user name.
    pub user: String,
    /// The group names; groups without a name are left out.
    pub groups: Vec<String>,
}

/// Why a uid has no identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The user database has no entry for the uid.
    #[error("uid {0} has no entry in the user database")]
    UnknownUid(u32),
    /// The lookup itself failed.
    #[error("looking up uid {uid} failed: {message}")]
    Lookup {
        /// The uid.
        uid: u32,
        /// What the system said.
        message: String,
    },
    /// The user or group database did not answer in time (a directory service that hangs).
    #[error("looking up uid {uid} took longer than {} ms; the user or group database did not answer", .after.as_millis())]
    Timeout {
        /// The uid.
        uid: u32,
        /// How long the lookup was waited for.
        after: Duration,
    },
}

/// Where identities come from: the operating system's databases ([`SystemIdentities`]) in production.
/// Both calls may block for as long as the databases take; they run on the lookup threads.
pub trait IdentitySource: Send + Sync + 'static {
    /// The user name of `uid` alone (cheap: one `getpwuid`).
    fn user_name(&self, uid: u32) -> Result<String, IdentityError>;
    /// The user name and groups of `uid`.
    fn identity(&self, uid: u32) -> Result<OsIdentity, IdentityError>;
}

/// The operating system's user and group databases (NSS: files, LDAP, SSSD ...): `getpwuid_r`,
/// `getgrouplist` and `getgrgid_r`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemIdentities;

impl IdentitySource for SystemIdentities {
    fn user_name(&self, uid: u32) -> Result<String, IdentityError> {
        Ok(system_user(uid)?.name)
    }

    fn identity(&self, uid: u32) -> Result<OsIdentity, IdentityError> {
        use nix::unistd::{Group, getgrouplist};
        let failed = |e: nix::Error| IdentityError::Lookup { uid, message: e.to_string() };
        let user = system_user(uid)?;
        let name = std::ffi::CString::new(user.name.as_bytes())
            .map_err(|e| IdentityError::Lookup { uid, message: e.to_string() })?;
        let mut gids = getgrouplist(&name, user.gid).map_err(failed)?;
        // The primary group first, then the others once each, in the database's order.
        gids.retain(|g| *g != user.gid);
        gids.insert(0, user.gid);
        let mut groups = Vec::with_capacity(gids.len());
        for gid in gids {
            if let Some(group) = Group::from_gid(gid).map_err(failed)?
                && !groups.contains(&group.name)
            {
                groups.push(group.name);
            }
        }
        Ok(OsIdentity { user: user.name, groups })
    }
}

fn system_user(uid: u32) -> Result<nix::unistd::User, IdentityError> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .map_err(|e| IdentityError::Lookup { uid, message: e.to_string() })?
        .ok_or(IdentityError::UnknownUid(uid))
}

/// How often a cached identity's user name is checked against the database, so that a deleted user's
/// uid, given to a new user, is not taken for the old user for longer than this.
pub const NAME_RECHECK: Duration = Duration::from_secs(1);
/// How long "no such uid" is remembered.
pub const UNKNOWN_UID_TTL: Duration = Duration::from_secs(5);
/// Threads that run lookups. A hung directory service can block them all; then lookups time out, and
/// nothing else waits: reloads and the rest of the server use other threads.
const LOOKUP_THREADS: usize = 4;
/// A lookup still running after this long is given up, and the next request starts another.
const ABANDON_AFTER: Duration = Duration::from_secs(30);

type Outcome = Result<Arc<OsIdentity>, IdentityError>;
type Flight = Shared<Pin<Box<dyn Future<Output = Outcome> + Send>>>;

enum Slot {
    /// The identity, when it was looked up (groups) and when its user name was last confirmed.
    Known { identity: Arc<OsIdentity>, looked_up: Instant, confirmed: Instant },
    /// No such uid, as of `at`.
    Unknown { at: Instant },
    /// A lookup in progress, shared by every caller that needs it: a whole lookup (`whole`), or a check
    /// of a known identity's user name.
    Pending { started: Instant, flight: Flight, whole: bool },
}

/// Looks up uids in the operating system's user and group databases, on threads of its own, each wait
/// bounded by a timeout. Each answer is kept for a TTL (its user name confirmed every
/// [`NAME_RECHECK`]); "no such uid" for [`UNKNOWN_UID_TTL`]; other failures and timeouts not at all.
/// Concurrent lookups of one uid share one call.
pub struct OsIdentities {
    ttl: Duration,
    timeout: Duration,
    source: Arc<dyn IdentitySource>,
    jobs: Mutex<std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>>,
    slots: Mutex<HashMap<u32, Slot>>,
}

impl std::fmt::Debug for OsIdentities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OsIdentities").field("ttl", &self.ttl).field("timeout", &self.timeout).finish()
    }
}

impl OsIdentities {
    /// The operating system's databases, answers kept for `ttl`, each lookup waited for at most
    /// `timeout`.
    pub fn new(ttl: Duration, timeout: Duration) -> Self {
        Self::with_source(Arc::new(SystemIdentities), ttl, timeout)
    }

    /// Identities from `source`, for tests.
    pub fn with_source(source: Arc<dyn IdentitySource>, ttl: Duration, timeout: Duration) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..LOOKUP_THREADS {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new().name(format!("emrfs-rolemap-nss-{n}")).spawn(move || {
                // Ends when the identities are dropped (the channel closes).
                while let Ok(job) = lock(&queue).recv() {
                    job();
                }
            });
            if let Err(e) = spawned {
                tracing::warn!("cannot start a user-lookup thread: {e}");
            }
        }
        OsIdentities { ttl, timeout, source, jobs: Mutex::new(jobs), slots: Mutex::new(HashMap::new()) }
    }

    /// The identity of `uid`: from the cache when it is fresh, else from the database (one call for all
    /// concurrent callers), waited for at most the timeout.
    pub async fn lookup(self: &Arc<Self>, uid: u32) -> Result<Arc<OsIdentity>, IdentityError> {
        self.lookup_with(uid, false).await
    }

    /// The identity of `uid` as the database gives it now, never from the cache: for callers whose
    /// groups must be current at each use (per-user tokens). Concurrent fresh lookups of one uid share
    /// one call, so an answer is never older than the request that is waiting for it, give or take that
    /// call. The answer refreshes the cache too.
    pub async fn lookup_fresh(self: &Arc<Self>, uid: u32) -> Result<Arc<OsIdentity>, IdentityError> {
        self.lookup_with(uid, true).await
    }

    async fn lookup_with(self: &Arc<Self>, uid: u32, fresh: bool) -> Result<Arc<OsIdentity>, IdentityError> {
        let now = Instant::now();
        let flight = {
            let mut slots = lock(&self.slots);
            // What to do: wait for a pending lookup (`Err`), or start one, rechecking a known identity.
            let next = match slots.get(&uid) {
                Some(Slot::Known { identity, looked_up, confirmed })
                    if !fresh && now.duration_since(*looked_up) < self.ttl =>
                {
                    if now.duration_since(*confirmed) < NAME_RECHECK {
                        return Ok(identity.clone());
                    }
                    Ok(Some((identity.clone(), *looked_up)))
                }
                Some(Slot::Unknown { at }) if !fresh && now.duration_since(*at) < UNKNOWN_UID_TTL => {
                    return Err(IdentityError::UnknownUid(uid));
                }
                // A whole lookup in flight serves everyone; a name check serves only cache readers.
                Some(Slot::Pending { started, flight, whole })
                    if (*whole || !fresh) && now.duration_since(*started) < ABANDON_AFTER =>
                {
                    Err(flight.clone())
                }
                _ => Ok(None),
            };
            match next {
                Err(pending) => pending,
                Ok(recheck) => {
                    let whole = recheck.is_none();
                    let flight = self.start(uid, recheck);
                    slots.insert(uid, Slot::Pending { started: now, flight: flight.clone(), whole });
                    flight
                }
            }
        };
        self.wait(uid, flight).await
    }

    async fn wait(&self, uid: u32, flight: Flight) -> Result<Arc<OsIdentity>, IdentityError> {
        tokio::time::timeout(self.timeout, flight)
            .await
            .unwrap_or(Err(IdentityError::Timeout { uid, after: self.timeout }))
    }

    /// Starts the lookup of `uid` on the lookup threads: a check of the user name of a known identity
    /// (`recheck`, with when its groups were looked up), or a whole lookup. The outcome is stored.
    fn start(self: &Arc<Self>, uid: u32, recheck: Option<(Arc<OsIdentity>, Instant)>) -> Flight {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let source = Arc::clone(&self.source);
        let job = Box::new(move || {
            let outcome = match recheck {
                Some((known, looked_up)) => match source.user_name(uid) {
                    Ok(name) if name == known.user => Ok((known, looked_up)),
                    Ok(_) => source.identity(uid).map(|i| (Arc::new(i), Instant::now())),
                    Err(e) => Err(e),
                },
                None => source.identity(uid).map(|i| (Arc::new(i), Instant::now())),
            };
            let _ = answer.send(outcome);
        });
        let queued = lock(&self.jobs).send(job).is_ok();
        let identities = Arc::downgrade(self);
        let flight: Pin<Box<dyn Future<Output = Outcome> + Send>> = Box::pin(async move {
            let outcome = match answered.await {
                Ok(outcome) if queued => outcome,
                _ => Err(IdentityError::Lookup { uid, message: "the user-lookup threads are gone".to_owned() }),
            };
            let now = Instant::now();
            if let Some(identities) = identities.upgrade() {
                let mut slots = lock(&identities.slots);
                match &outcome {
                    Ok((identity, looked_up)) => {
                        let slot = Slot::Known { identity: identity.clone(), looked_up: *looked_up, confirmed: now };
                        slots.insert(uid, slot);
                    }
                    Err(IdentityError::UnknownUid(_)) => {
                        slots.insert(uid, Slot::Unknown { at: now });
                    }
                    Err(_) => {
                        slots.remove(&uid);
                    }
                }
                let ttl = identities.ttl;
                slots.retain(|_, slot| match slot {
                    Slot::Known { looked_up, .. } => now.duration_since(*looked_up) < ttl,
                    Slot::Unknown { at } => now.duration_since(*at) < UNKNOWN_UID_TTL,
                    Slot::Pending { started, .. } => now.duration_since(*started) < ABANDON_AFTER,
                });
            }
            outcome.map(|(identity, _)| identity)
        });
        // Runs to the end even when every caller has stopped waiting, so that its outcome is stored.
        let task = tokio::spawn(flight);
        let joined: Pin<Box<dyn Future<Output = Outcome> + Send>> = Box::pin(async move {
            task.await.unwrap_or_else(|e| Err(IdentityError::Lookup { uid, message: e.to_string() }))
        });
        joined.shared()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_and_compared_whole() {
        assert!(BearerToken::new("short").unwrap_err().contains("fewer than 16"));
        assert!(BearerToken::new("0123456789abcdef 0").unwrap_err().contains("byte 17"));
        let token = BearerToken::new("0123456789abcdef").unwrap();
        assert!(token.accepts(Some(b"Bearer 0123456789abcdef")));
        assert!(token.accepts(Some(b"bearer  0123456789abcdef ")));
        assert!(!token.accepts(Some(b"Bearer 0123456789abcdeF")));
        assert!(!token.accepts(Some(b"Bearer 0123456789abcde")));
        assert!(!token.accepts(Some(b"Basic 0123456789abcdef")));
        assert!(token.accepts(Some(b"0123456789abcdef")), "the raw value, as the AWS SDKs send it");
        assert!(!token.accepts(Some(b"0123456789abcdef0")));
        assert!(!token.accepts(None));
        assert!(!format!("{token:?}").contains("0123"));
    }

    #[tokio::test]
    async fn root_is_in_the_user_database() {
        let identities = Arc::new(OsIdentities::new(Duration::from_secs(300), Duration::from_secs(2)));
        let root = identities.lookup(0).await.unwrap();
        assert_eq!(root.user, "root");
        assert_eq!(root.groups.first().map(String::as_str), Some("root"));
        assert!(Arc::ptr_eq(&root, &identities.lookup(0).await.unwrap()), "the second lookup is cached");
        assert_eq!(identities.lookup(4_000_000_000).await, Err(IdentityError::UnknownUid(4_000_000_000)));
    }

    /// A database whose answers the test changes, counting calls; `hang` makes every call wait until
    /// the test ends (a directory service that never answers).
    #[derive(Default)]
    struct Fake {
        users: Mutex<HashMap<u32, OsIdentity>>,
        names: std::sync::atomic::AtomicUsize,
        identities: std::sync::atomic::AtomicUsize,
        hang: std::sync::atomic::AtomicBool,
        released: std::sync::Condvar,
    }

    impl Fake {
        fn set(&self, uid: u32, user: &str, groups: &[&str]) {
            let identity = OsIdentity { user: user.to_owned(), groups: groups.iter().map(|g| g.to_string()).collect() };
            lock(&self.users).insert(uid, identity);
        }

        fn answer(&self, uid: u32) -> Result<OsIdentity, IdentityError> {
            let mut users = lock(&self.users);
            while self.hang.load(std::sync::atomic::Ordering::SeqCst) {
                users = self.released.wait(users).unwrap_or_else(|p| p.into_inner());
            }
            users.get(&uid).cloned().ok_or(IdentityError::UnknownUid(uid))
        }
    }

    impl IdentitySource for Fake {
        fn user_name(&self, uid: u32) -> Result<String, IdentityError> {
            self.names.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.answer(uid).map(|i| i.user)
        }

        fn identity(&self, uid: u32) -> Result<OsIdentity, IdentityError> {
            self.identities.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.answer(uid)
        }
    }

    /// Suspicion confirmed and fixed: a deleted user's uid given to a new user was taken for the old user
    /// for the whole group-cache TTL (300 s by default). Now the name is confirmed every NAME_RECHECK.
    #[tokio::test]
    async fn a_reused_uid_is_not_taken_for_its_old_user() {
        let fake = Arc::new(Fake::default());
        fake.set(5000, "alice", &["finance"]);
        let identities =
            Arc::new(OsIdentities::with_source(fake.clone(), Duration::from_secs(300), Duration::from_secs(2)));
        assert_eq!(identities.lookup(5000).await.unwrap().user, "alice");
        fake.set(5000, "mallory", &["staff"]);
        assert_eq!(identities.lookup(5000).await.unwrap().user, "alice", "within NAME_RECHECK the answer is cached");
        std::thread::sleep(NAME_RECHECK);
        let now = identities.lookup(5000).await.unwrap();
        assert_eq!((now.user.as_str(), now.groups.as_slice()), ("mallory", ["staff".to_owned()].as_slice()));
        // An unchanged name keeps the groups: only the cheap name lookup runs.
        std::thread::sleep(NAME_RECHECK);
        let before = fake.identities.load(std::sync::atomic::Ordering::SeqCst);
        assert!(Arc::ptr_eq(&now, &identities.lookup(5000).await.unwrap()));
        assert_eq!(fake.identities.load(std::sync::atomic::Ordering::SeqCst), before);
    }

    /// Per-user tokens: removing a user from a group takes effect at the next use, whatever the cache
    /// holds; concurrent fresh lookups share one call.
    #[tokio::test]
    async fn a_fresh_lookup_sees_a_group_change_at_once() {
        let fake = Arc::new(Fake::default());
        fake.set(6000, "erin", &["erin", "finance"]);
        let identities =
            Arc::new(OsIdentities::with_source(fake.clone(), Duration::from_secs(300), Duration::from_secs(2)));
        assert_eq!(identities.lookup(6000).await.unwrap().groups, ["erin", "finance"]);
        fake.set(6000, "erin", &["erin"]);
        assert_eq!(identities.lookup(6000).await.unwrap().groups, ["erin", "finance"], "the cache still has it");
        assert_eq!(identities.lookup_fresh(6000).await.unwrap().groups, ["erin"]);
        assert_eq!(identities.lookup(6000).await.unwrap().groups, ["erin"], "the fresh answer refreshed the cache");
        let before = fake.identities.load(std::sync::atomic::Ordering::SeqCst);
        fake.hang.store(true, std::sync::atomic::Ordering::SeqCst);
        let waits: Vec<_> = (0..20)
            .map(|_| {
                let identities = identities.clone();
                tokio::spawn(async move { identities.lookup_fresh(6000).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        fake.hang.store(false, std::sync::atomic::Ordering::SeqCst);
        fake.released.notify_all();
        for wait in waits {
            assert_eq!(wait.await.unwrap().unwrap().groups, ["erin"]);
        }
        assert_eq!(fake.identities.load(std::sync::atomic::Ordering::SeqCst) - before, 1, "one call for 20 uses");
    }

    /// A directory service that never answers: each lookup fails after the timeout, concurrent lookups
    /// share one call, and the threads tokio keeps for blocking work (reloads) stay free.
    #[test]
    fn a_hung_lookup_times_out_once_for_everyone_and_blocks_nothing_else() {
        // Two blocking threads only: lookups that ran on tokio's blocking pool would take them both.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(hung_lookups())));
        // Never wait for threads a hung lookup holds.
        runtime.shutdown_background();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    async fn hung_lookups() {
        let fake = Arc::new(Fake::default());
        fake.hang.store(true, std::sync::atomic::Ordering::SeqCst);
        let timeout = Duration::from_millis(300);
        let identities = Arc::new(OsIdentities::with_source(fake.clone(), Duration::from_secs(300), timeout));
        let started = std::time::Instant::now();
        let waits: Vec<_> = (0..100)
            .map(|_| {
                let identities = identities.clone();
                tokio::spawn(async move { identities.lookup(7).await })
            })
            .collect();
        for wait in waits {
            assert_eq!(wait.await.unwrap(), Err(IdentityError::Timeout { uid: 7, after: timeout }));
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(fake.identities.load(std::sync::atomic::Ordering::SeqCst), 1, "one call for 100 waiters");
        // Every lookup thread hangs on another uid; blocking work elsewhere still runs.
        for uid in 100..100 + LOOKUP_THREADS as u32 {
            assert!(identities.lookup(uid).await.is_err());
        }
        let reload = tokio::task::spawn_blocking(|| "reloaded");
        assert_eq!(tokio::time::timeout(Duration::from_secs(2), reload).await.unwrap().unwrap(), "reloaded");
        // The database comes back: the next lookup after the pending one is given up answers.
        fake.set(7, "bob", &[]);
        fake.hang.store(false, std::sync::atomic::Ordering::SeqCst);
        fake.released.notify_all();
        let started = std::time::Instant::now();
        loop {
            if let Ok(identity) = identities.lookup(7).await {
                assert_eq!(identity.user, "bob");
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(5));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn unknown_uids_are_remembered_briefly() {
        let fake = Arc::new(Fake::default());
        let identities =
            Arc::new(OsIdentities::with_source(fake.clone(), Duration::from_secs(300), Duration::from_secs(2)));
        for _ in 0..10 {
            assert_eq!(identities.lookup(9).await, Err(IdentityError::UnknownUid(9)));
        }
        assert_eq!(fake.identities.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
