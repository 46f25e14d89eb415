//! The HTTP server mode: the engine and the credential cache behind a local socket, for proxies written
//! in other languages.
//!
//! - `store.rs`: the served configuration ([`ConfigStore`]), its generations and hot reload;
//! - `files.rs`: trusted files, opened so that none can block the server ([`FileCheck`]);
//! - `peer.rs`: who is asking (the [`BearerToken`] over TCP, the `SO_PEERCRED` uid over a Unix socket)
//!   and the OS's user and group database, asked on threads of its own;
//! - `budget.rs`, `deadline.rs`: connection budgets that idle clients cannot exhaust, and the write
//!   deadline of answers;
//! - `tokens.rs`: per-user tokens, which let an unmodified AWS SDK ask over TCP for its own user's
//!   credentials;
//! - `api.rs`: the endpoints `POST /v1/resolve`, `/v1/explain`, `/v1/credentials`, `/v1/tokens`,
//!   `/v1/tokens/revoke` and `GET /v1/container-credentials`, `/healthz`, `/readyz`, `/metrics`;
//!   `audit.rs`: what the audit log records; `metrics.rs`: the counters.
//!
//! [`Server::run`] accepts connections on every [`Listener`] until its shutdown future completes, then
//! stops accepting and drains: requests in flight finish (within [`ServerOptions::drain_timeout`]),
//! idle keep-alive connections close. [`run_until_signalled`] adds the process's signals: `SIGHUP`
//! reloads the configuration, `SIGTERM` and `SIGINT` drain and return, and the file is watched for
//! changes.
//!
//! Bad input never takes the server down: every request error is a JSON answer with a status code, a
//! slow client is cut off by the header and body timeouts, and connections are bounded.

mod api;
mod audit;
mod budget;
mod deadline;
mod files;
mod metrics;
mod peer;
mod store;
mod tokens;

pub use files::{FileCheck, FileError};
pub use peer::BearerToken;
pub use store::{ConfigStore, Generation, LoadError, ReloadFailure, ReloadOutcome};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

use crate::credentials::{Broker, CredentialSource};
use audit::Audit;
use budget::Budget;
use deadline::WriteDeadline;
use metrics::Metrics;
use peer::{Caller, OsIdentities};
use tokens::TokenKeys;

/// The limits and timeouts of a server. [`Default`] gives the `DEFAULT_*` values, which suit a proxy on
/// the same host; change fields on it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerOptions {
    /// The largest request body accepted; larger ones get 413 ([`Self::DEFAULT_BODY_LIMIT`]).
    pub body_limit: usize,
    /// How long a client may take to send a request's head, and how long an idle keep-alive connection
    /// stays open ([`Self::DEFAULT_HEADER_TIMEOUT`]).
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body; then 408 ([`Self::DEFAULT_BODY_TIMEOUT`]).
    pub body_timeout: Duration,
    /// How long a request may take in all (STS included); then 504 ([`Self::DEFAULT_REQUEST_TIMEOUT`]).
    pub request_timeout: Duration,
    /// Connections served at once on each kind of listener — TCP and the Unix socket have a budget of
    /// this size each, so that a flood on one never shuts out the other (0 counts as 1); more wait in the
    /// listen backlog. Lowered at start, with a log line, to what the process may open ([`Self::DEFAULT_MAX_CONNECTIONS`]).
    pub max_connections: usize,
    /// Connections one uid may hold open at once on the Unix socket, root and `allowed_uids` exempt;
    /// more are answered 429 `too-many-connections` and closed ([`Self::DEFAULT_MAX_CONNECTIONS_PER_UID`]).
    pub max_connections_per_uid: usize,
    /// How long an answer may take to leave once the client stops reading, whole answer included;
    /// then the connection is closed ([`Self::DEFAULT_WRITE_TIMEOUT`]).
    pub write_timeout: Duration,
    /// How long shutdown waits for requests in flight ([`Self::DEFAULT_DRAIN_TIMEOUT`]).
    pub drain_timeout: Duration,
    /// How often the configuration file is checked for changes; `None` watches nothing ([`Self::DEFAULT_WATCH_INTERVAL`]).
    pub watch_interval: Option<Duration>,
    /// Unix-socket uids that may ask for any user and supply groups, besides root.
    pub allowed_uids: Vec<u32>,
    /// How long the OS's answer for a uid (user name and groups) is reused ([`Self::DEFAULT_IDENTITY_TTL`]).
    pub identity_ttl: Duration,
    /// How long a request waits for the OS's user and group databases before 503 ([`Self::DEFAULT_IDENTITY_TIMEOUT`]).
    pub identity_timeout: Duration,
    /// Who may receive the base credentials for a fallback decision. Default: nobody.
    pub fallback_credentials: FallbackCredentials,
    /// Whether untrusted token files are refused (the default) or only warned about. The configuration
    /// store is given its own check when it is opened.
    pub file_check: FileCheck,
    /// Whether Unix-socket callers may get per-user tokens (`POST /v1/tokens`) and TCP callers may
    /// present them. On by default.
    pub user_tokens: bool,
    /// The longest lifetime a per-user token may be given ([`Self::DEFAULT_TOKEN_MAX_TTL`]).
    pub token_max_ttl: Duration,
}

/// Who may receive the server's base credentials (on EMR, the instance-profile role) when no mapping
/// matches a request. They may call AssumeRole on every mapped role, so handing them out is handing out
/// every role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FallbackCredentials {
    /// Nobody: a fallback decision on a credentials endpoint is refused with 403 `fallback-not-served`.
    #[default]
    Refuse,
    /// Trusted callers only (the TCP token, root, allow-listed uids); others get 403.
    Trusted,
}

impl ServerOptions {
    /// The largest request body, unless set: 64 KiB.
    pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
    /// How long a request head (and an idle keep-alive connection) may take, unless set.
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// How long a request body may take, unless set.
    pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
    /// How long a whole request may take, STS included, unless set.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    /// How long an answer may take to leave once the client stops reading, unless set.
    pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
    /// The connection budget of each listener kind, unless set.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
    /// The connections one Unix-socket uid may hold, unless set.
    pub const DEFAULT_MAX_CONNECTIONS_PER_UID: usize = 32;
    /// How long shutdown waits for requests in flight, unless set.
    pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
    /// How often the configuration file is checked for changes, unless set.
    pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(1);
    /// How long the OS's answer for a uid is reused, unless set (Hadoop's group cache default).
    pub const DEFAULT_IDENTITY_TTL: Duration = Duration::from_secs(300);
    /// How long a request waits for the OS's user and group databases, unless set.
    pub const DEFAULT_IDENTITY_TIMEOUT: Duration = Duration::from_secs(2);
    /// The lifetime of a per-user token when the caller asks for none: 12 hours.
    pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);
    /// The longest lifetime of a per-user token, unless set: 7 days.
    pub const DEFAULT_TOKEN_MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            body_limit: Self::DEFAULT_BODY_LIMIT,
            header_timeout: Self::DEFAULT_HEADER_TIMEOUT,
            body_timeout: Self::DEFAULT_BODY_TIMEOUT,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_uid: Self::DEFAULT_MAX_CONNECTIONS_PER_UID,
            write_timeout: Self::DEFAULT_WRITE_TIMEOUT,
            drain_timeout: Self::DEFAULT_DRAIN_TIMEOUT,
            watch_interval: Some(Self::DEFAULT_WATCH_INTERVAL),
            allowed_uids: Vec::new(),
            identity_ttl: Self::DEFAULT_IDENTITY_TTL,
            identity_timeout: Self::DEFAULT_IDENTITY_TIMEOUT,
            fallback_credentials: FallbackCredentials::default(),
            file_check: FileCheck::default(),
            user_tokens: true,
            token_max_ttl: Self::DEFAULT_TOKEN_MAX_TTL,
        }
    }
}

/// A socket the server accepts connections on.
#[derive(Debug)]
pub enum Listener {
    /// TCP; every endpoint but `/healthz` needs the bearer token or a per-user token.
    Tcp(TcpListener),
    /// A Unix domain socket; callers are identified by uid. The file is removed at shutdown.
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds a Unix socket at `path` with permissions `mode` (e.g. `0o666`: any local user may connect and
    /// gets only its own user's answers). A stale socket file nobody listens on is replaced; a live one is
    /// an error, and so is anything else at `path`.
    ///
    /// The directory must be trusted as the configuration's is (see [`FileCheck`]): otherwise another user
    /// could replace the socket or redirect it. The socket is bound and given its mode inside a fresh
    /// directory only this process can enter, then renamed into place: no other user ever sees it with
    /// another mode, and no symlink is followed. The staging path is `DIR/.emrfs-rolemap-PID-N/s`, which
    /// must fit the 107 bytes a socket path may have.
    pub async fn bind_unix(path: &Path, mode: u32, check: FileCheck) -> std::io::Result<Listener> {
        use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
        files::check_directories(path, check)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.to_string()))?;
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("`{}` exists and is not a socket", files::shown(path)),
                ));
            }
            if tokio::net::UnixStream::connect(path).await.is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("another server is listening on `{}`", files::shown(path)),
                ));
            }
        }
        static STAGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = STAGED.fetch_add(1, Ordering::Relaxed);
        let directory = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let private = directory.join(format!(".emrfs-rolemap-{}-{n}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&private)?;
        let staged = private.join("s");
        let bound = UnixListener::bind(&staged).and_then(|listener| {
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))?;
            // Replaces a stale socket in one step.
            std::fs::rename(&staged, path)?;
            Ok(listener)
        });
        let _ = std::fs::remove_file(&staged);
        let _ = std::fs::remove_dir(&private);
        Ok(Listener::Unix(bound?, path.to_owned()))
    }

    /// Whether a server with a TCP listener (`tcp`), a Unix socket (`unix`) and a bearer token (`token`)
    /// can run: it needs a listener, and TCP needs the token, since nothing else names a TCP caller.
    pub fn check_set(tcp: bool, unix: bool, token: bool) -> Result<(), ServerError> {
        match (tcp, unix, token) {
            (false, false, _) => Err(ServerError::NoListener),
            (true, _, false) => Err(ServerError::TcpWithoutToken),
            _ => Ok(()),
        }
    }

    /// Where the listener listens: `tcp ADDRESS` or `unix PATH`.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(address) => format!("tcp {address}"),
                Err(e) => format!("tcp (unknown address: {e})"),
            },
            Listener::Unix(_, path) => format!("unix {}", files::shown(path)),
        }
    }
}

/// What the request handlers share.
pub(crate) struct App<S> {
    store: Arc<ConfigStore>,
    broker: Broker<S>,
    token: ArcSwapOption<BearerToken>,
    options: ServerOptions,
    identities: Arc<OsIdentities>,
    /// The key of per-user tokens, and their revocations; `None` when the OS gave no random key.
    token_keys: ArcSwapOption<TokenKeys>,
    metrics: Metrics,
    audit: Audit,
    draining: AtomicBool,
    uid_connections: UidConnections,
}

impl<S> App<S> {
    /// Whether the operator trusts `caller` to ask for anyone: the TCP token's holder, root, and the
    /// allow-listed uids.
    fn trusts(&self, caller: Caller) -> bool {
        match caller {
            Caller::Tcp => true,
            Caller::Unix { uid } => uid == 0 || self.options.allowed_uids.contains(&uid),
            Caller::UserToken { .. } => false,
        }
    }

    /// Whether a fallback decision may be served to `caller` with the base credentials.
    fn serves_fallback_to(&self, caller: Caller) -> bool {
        self.options.fallback_credentials == FallbackCredentials::Trusted && self.trusts(caller)
    }
}

/// An HTTP server over a [`ConfigStore`] and a credential [`Broker`].
pub struct Server<S> {
    app: Arc<App<S>>,
}

impl<S> std::fmt::Debug for Server<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("config", &self.app.store.path()).field("options", &self.app.options).finish()
    }
}

/// Why a server could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A TCP listener without a token: TCP callers could not be authenticated.
    #[error(
        "listening on TCP needs --token-file FILE, a bearer token of at least 16 characters (e.g. from `openssl rand -hex 32`); or listen only on a Unix socket (--socket PATH)"
    )]
    TcpWithoutToken,
    /// No listener at all.
    #[error("no listener: give a TCP address, a Unix socket, or both")]
    NoListener,
    /// A file the server reads (the token's) could not be read or is not trusted.
    #[error(transparent)]
    File(#[from] FileError),
    /// The token file holds no usable token.
    #[error("the token in `{path}` is unusable: {reason}")]
    UnusableToken {
        /// The file.
        path: String,
        /// What is wrong with it (never the token itself).
        reason: String,
    },
    /// The key of per-user tokens could not be made or read.
    #[error("the per-user token key `{path}` is unusable: {reason}")]
    UnusableTokenKey {
        /// The key file, or `(random)`.
        path: String,
        /// What is wrong with it (never the key itself).
        reason: String,
    },
}

impl<S: CredentialSource> Server<S> {
    /// A server answering from `store`, fetching credentials through `broker`. `token` authenticates TCP
    /// callers.
    pub fn new(store: Arc<ConfigStore>, broker: Broker<S>, token: Option<BearerToken>, options: ServerOptions) -> Self {
        let identities = Arc::new(OsIdentities::new(options.identity_ttl, options.identity_timeout));
        let token = ArcSwapOption::from(token.map(Arc::new));
        let token_keys = match TokenKeys::random() {
            Ok(keys) => Some(Arc::new(keys)),
            Err(e) => {
                tracing::error!("per-user tokens are unavailable: {e}");
                None
            }
        };
        let app = App {
            store,
            broker,
            token,
            options,
            identities,
            token_keys: ArcSwapOption::from(token_keys),
            metrics: Metrics::default(),
            audit: Audit::default(),
            draining: false.into(),
            uid_connections: UidConnections::default(),
        };
        Server { app: Arc::new(app) }
    }

    /// Signs per-user tokens with the key in `path` (a trusted secret file of at least 32 bytes, such as
    /// `openssl rand -hex 32` writes) instead of a key made at random when the server was created, so
    /// that tokens outlive a restart; revocations are kept beside it in `PATH.revoked`. Tokens issued
    /// under the previous key stop verifying. Call it before [`Self::run`], off the async runtime: it
    /// reads files.
    pub fn use_token_key_file(&self, path: &Path) -> Result<(), ServerError> {
        let keys = TokenKeys::from_file(path, self.app.options.file_check)?;
        self.app.token_keys.store(Some(Arc::new(keys)));
        Ok(())
    }

    /// Replaces the bearer token; requests that arrive from now on must present the new one.
    pub fn replace_token(&self, token: BearerToken) {
        self.app.token.store(Some(Arc::new(token)));
    }

    /// The configuration being served.
    pub fn store(&self) -> &Arc<ConfigStore> {
        &self.app.store
    }

    /// Serves `listeners` until `shutdown` completes, then drains. Fails before serving when a TCP
    /// listener has no token or there is no listener.
    pub async fn run(
        &self,
        listeners: Vec<Listener>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServerError> {
        let tcp = listeners.iter().any(|l| matches!(l, Listener::Tcp(_)));
        Listener::check_set(tcp, listeners.len() > usize::from(tcp), self.app.token.load().is_some())?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let graceful = Arc::new(GracefulShutdown::new());
        let kinds = [
            listeners.iter().any(|l| matches!(l, Listener::Tcp(_))),
            listeners.iter().any(|l| matches!(l, Listener::Unix(..))),
        ];
        let budget = connection_budget(self.app.options.max_connections, kinds.iter().filter(|k| **k).count());
        // One budget per kind of listener: a flood of TCP clients never shuts out the Unix socket.
        let (tcp_budget, unix_budget) = (Budget::new(budget), Budget::new(budget));
        let mut accepting = Vec::new();
        let mut sockets = Vec::new();
        for listener in listeners {
            let budget = match &listener {
                Listener::Tcp(_) => tcp_budget.clone(),
                Listener::Unix(_, path) => {
                    sockets.push(path.clone());
                    unix_budget.clone()
                }
            };
            let (app, graceful, stop) = (self.app.clone(), graceful.clone(), stop_rx.clone());
            accepting.push(tokio::spawn(accept_loop(app, listener, graceful, budget, stop)));
        }
        shutdown.await;
        tracing::info!("shutting down: no new connections; draining requests in flight");
        self.app.draining.store(true, Ordering::Relaxed);
        let _ = stop_tx.send(true);
        for task in accepting {
            let _ = task.await;
        }
        for path in sockets {
            let _ = std::fs::remove_file(path);
        }
        let graceful = Arc::try_unwrap(graceful).unwrap_or_else(|_| GracefulShutdown::new());
        match tokio::time::timeout(self.app.options.drain_timeout, graceful.shutdown()).await {
            Ok(()) => tracing::info!("drained"),
            Err(_) => tracing::warn!(
                "drain timeout ({} ms) reached; closing the remaining connections",
                self.app.options.drain_timeout.as_millis()
            ),
        }
        Ok(())
    }
}

async fn accept_loop<S: CredentialSource>(
    app: Arc<App<S>>,
    listener: Listener,
    graceful: Arc<GracefulShutdown>,
    budget: Arc<Budget>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            accepted = accept(&app, &listener) => accepted,
        };
        let (io, caller, uid_slot) = match accepted {
            Ok(Some(accepted)) => accepted,
            Ok(None) => continue,
            Err(e) => {
                // Out of file descriptors and the like: keep serving the connections we have.
                tracing::warn!("accept failed on {}: {e}", listener.describe());
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Holds at most this one accepted connection while the budget makes room.
        let (place, evicted) = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            admitted = budget.admit() => admitted,
        };
        if evicted {
            app.metrics.connection_evicted();
        }
        app.metrics.connection_opened();
        let service = {
            let (app, place) = (app.clone(), place.tracked().clone());
            let clock = budget.clone();
            service_fn(move |request| {
                place.request_started(clock.now());
                let (handled, place, clock) = (api::handle(app.clone(), caller, request), place.clone(), clock.clone());
                async move {
                    let response = handled.await;
                    place.request_ended(clock.now());
                    response
                }
            })
        };
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(app.options.header_timeout)
            .serve_connection(io, service);
        let connection = graceful.watch(connection);
        let app = app.clone();
        tokio::spawn(async move {
            tokio::select! {
                ended = connection => if let Err(e) = ended {
                    tracing::debug!("connection ended: {e}");
                },
                () = place.tracked().closed() => tracing::debug!("closed an idle connection to make room for a new one"),
            }
            app.metrics.connection_closed();
            drop((place, uid_slot));
        });
    }
}

/// File descriptors kept for everything but connections: the configuration, STS, logs.
const RESERVED_FILES: u64 = 64;

/// The per-listener budget: `wanted`, or less when `kinds` budgets of that size would not fit in the
/// files the process may open (`RLIMIT_NOFILE`), which is logged.
fn connection_budget(wanted: usize, kinds: usize) -> usize {
    let wanted = wanted.max(1);
    let Ok((soft, _)) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE) else {
        return wanted;
    };
    let fits = (soft.saturating_sub(RESERVED_FILES) / kinds.max(1) as u64).max(1);
    if wanted as u64 <= fits {
        return wanted;
    }
    tracing::warn!(
        "lowered --max-connections from {wanted} to {fits} per listener: the process may open {soft} files \
         (RLIMIT_NOFILE), {RESERVED_FILES} of them kept for other uses; raise the limit (ulimit -n) to serve more"
    );
    fits as usize
}

/// Raises the soft limit on open files to the hard limit, so that the connection budgets fit; returns
/// the limit now in force.
fn raise_open_files_limit() -> std::io::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(hard.max(soft))
}

/// Connections open per Unix-socket uid, for [`ServerOptions::max_connections_per_uid`].
#[derive(Debug, Default)]
struct UidConnections(Mutex<HashMap<u32, usize>>);

/// One open connection of a uid; dropping it gives the slot back.
struct UidSlot<S> {
    app: Arc<App<S>>,
    uid: u32,
}

impl<S> Drop for UidSlot<S> {
    fn drop(&mut self) {
        let mut counts = self.app.uid_connections.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.uid) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.uid);
            }
        }
    }
}

impl<S> App<S> {
    /// Takes a connection slot of `uid`, or `None` when it holds its limit already.
    fn take_uid_slot(self: &Arc<Self>, uid: u32) -> Option<UidSlot<S>> {
        let mut counts = self.uid_connections.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(uid).or_default();
        if *count >= self.options.max_connections_per_uid.max(1) {
            return None;
        }
        *count += 1;
        Some(UidSlot { app: self.clone(), uid })
    }
}

/// A boxed connection, so that TCP and Unix connections share one service type.
trait Connection: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Connection for T {}

/// An accepted connection: its stream (with the write deadline), its caller, and for a Unix-socket
/// caller that is not trusted, its uid's slot.
type Accepted<S> = (TokioIo<Box<dyn Connection>>, Caller, Option<UidSlot<S>>);

/// The next connection; `None` when it was refused at once (a Unix peer without credentials, or a uid
/// over its connection limit, which is told so).
async fn accept<S>(app: &Arc<App<S>>, listener: &Listener) -> std::io::Result<Option<Accepted<S>>> {
    let limit = app.options.write_timeout;
    match listener {
        Listener::Tcp(l) => {
            let (stream, _) = l.accept().await?;
            let _ = stream.set_nodelay(true);
            Ok(Some((TokioIo::new(Box::new(WriteDeadline::new(stream, limit))), Caller::Tcp, None)))
        }
        Listener::Unix(l, _) => {
            let (stream, _) = l.accept().await?;
            let uid = match stream.peer_cred() {
                Ok(credentials) => credentials.uid(),
                Err(e) => {
                    tracing::warn!("refused a Unix-socket connection without peer credentials: {e}");
                    return Ok(None);
                }
            };
            let caller = Caller::Unix { uid };
            let slot = if app.trusts(caller) {
                None
            } else {
                match app.take_uid_slot(uid) {
                    Some(slot) => Some(slot),
                    None => {
                        refuse_connection(app, caller, &stream);
                        return Ok(None);
                    }
                }
            };
            Ok(Some((TokioIo::new(Box::new(WriteDeadline::new(stream, limit))), caller, slot)))
        }
    }
}

/// Answers a connection over its uid's limit with 429 `too-many-connections`, without waiting for the
/// client (the answer fits the empty socket buffer), and counts and audits it.
fn refuse_connection<S>(app: &App<S>, caller: Caller, stream: &tokio::net::UnixStream) {
    let limit = app.options.max_connections_per_uid.max(1);
    let body = serde_json::json!({"error": {
        "code": "too-many-connections",
        "message": format!("{caller} has {limit} connections open, the most one uid may have"),
        "help": "reuse a keep-alive connection, or close idle ones",
    }})
    .to_string();
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         retry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
    app.metrics.connection_refused();
    app.metrics.refused("too-many-connections");
    if let Some(left_out) = app.audit.refusal(caller, "too-many-connections", std::time::Instant::now()) {
        tracing::warn!(
            target: "emrfs_rolemap::audit",
            "refused: caller={caller} code=too-many-connections: {limit} connections open (--max-connections-per-uid); \
             {left_out} more refusal(s) like it not logged since the last line"
        );
    }
}

/// Runs `server` until `SIGTERM` or `SIGINT`, reloading the configuration on `SIGHUP` and when the file
/// changes (every [`ServerOptions::watch_interval`]), and the bearer token from `token_file` on `SIGHUP`.
/// Reload outcomes are logged; an invalid configuration's diagnostics go to the log and `/readyz`, and
/// the old configuration keeps serving; an unusable token file keeps the old token.
pub async fn run_until_signalled<S: CredentialSource>(
    server: &Server<S>,
    listeners: Vec<Listener>,
    token_file: Option<&Path>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use tokio::signal::unix::{SignalKind, signal};
    match raise_open_files_limit() {
        Ok(limit) => tracing::info!("the process may open {limit} files (RLIMIT_NOFILE)"),
        Err(e) => tracing::warn!("cannot raise the limit on open files: {e}"),
    }
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let store = server.store().clone();
    let watch_interval = server.app.options.watch_interval;
    let (app, token_file) = (server.app.clone(), token_file.map(Path::to_owned));
    let reloader = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(watch_interval.unwrap_or(Duration::from_secs(3600)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            let on_change = tokio::select! {
                Some(()) = hangup.recv() => false,
                _ = ticker.tick(), if watch_interval.is_some() => true,
                else => return,
            };
            if !on_change && let Some(file) = &token_file {
                let (path, check) = (file.clone(), app.options.file_check);
                match tokio::task::spawn_blocking(move || BearerToken::from_file(&path, check)).await {
                    Ok(Ok(token)) => {
                        app.token.store(Some(Arc::new(token)));
                        tracing::info!("reloaded the bearer token from `{}`", files::shown(file));
                    }
                    Ok(Err(e)) => tracing::error!("kept the current bearer token: {e}"),
                    Err(e) => tracing::error!("kept the current bearer token: the reading task failed: {e}"),
                }
            }
            reload(&store, on_change).await;
        }
    });
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
        }
    };
    let outcome = server.run(listeners, shutdown).await;
    reloader.abort();
    Ok(outcome?)
}

/// Reloads on the blocking pool and logs what happened; `on_change` skips an unmodified file.
async fn reload(store: &Arc<ConfigStore>, on_change: bool) {
    let task = store.clone();
    let outcome =
        tokio::task::spawn_blocking(move || if on_change { task.reload_if_modified() } else { task.reload() }).await;
    match outcome {
        Ok(Ok(ReloadOutcome::Reloaded { generation })) => {
            tracing::info!("reloaded `{}`: now serving generation {generation}", files::shown(store.path()));
        }
        Ok(Ok(ReloadOutcome::Unchanged)) if !on_change => {
            tracing::info!(
                "`{}` is unchanged; still serving generation {}",
                files::shown(store.path()),
                store.current().number()
            );
        }
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            tracing::error!(
                "reload rejected; still serving generation {}: {}",
                store.current().number(),
                error.report()
            )
        }
        Err(e) => tracing::error!("reload task failed: {e}"),
    }
}
