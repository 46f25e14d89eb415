//! `emrfs-rolemap serve`: the HTTP server for proxies written in other languages (see
//! `emrfs_rolemap::server`). Prints one `listening tcp ADDRESS` / `listening unix PATH` line per
//! listener on standard output once it accepts connections; logs go to standard error
//! (`EMRFS_ROLEMAP_LOG` sets the filter, default `info`).
//!
//! Exit status: 0 after a drain on SIGTERM or SIGINT, 2 when it cannot start (unusable configuration,
//! token or address).

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use emrfs_rolemap::Escaped;
use emrfs_rolemap::credentials::{Broker, CacheConfig, CredentialCache, SettingsError, StsSource};
use emrfs_rolemap::server::{
    BearerToken, ConfigStore, FallbackCredentials, FileCheck, Listener, Server, ServerOptions, run_until_signalled,
};

use super::credentials_cmd::{StsArgs, runtime};
use super::{ConfigArgs, Unusable};

/// The address used when neither --listen nor --socket is given.
const DEFAULT_LISTEN: &str = "127.0.0.1:9944";

/// Where to listen, who may ask, and the server's limits.
#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    sts: StsArgs,
    /// Listen on this TCP address (default 127.0.0.1:9944 when --socket is not given). TCP callers must
    /// send `Authorization: Bearer <token>`.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Listen on a Unix socket at PATH; callers are identified by their uid.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// The Unix socket's permissions, in octal.
    #[arg(long, value_name = "MODE", default_value = "666", value_parser = parse_mode)]
    socket_mode: u32,
    /// The file holding the bearer token for TCP callers (one line, at least 16 characters); read again
    /// on SIGHUP.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The key that signs per-user tokens (a secret file of at least 32 bytes, e.g. from
    /// `openssl rand -hex 32 > FILE; chmod 600 FILE`), so that tokens survive a restart; revocations are
    /// kept beside it in FILE.revoked. Without it, a random key: tokens die with the process.
    #[arg(long, value_name = "FILE", conflicts_with = "no_user_tokens")]
    token_key_file: Option<PathBuf>,
    /// The longest lifetime of a per-user token: seconds, or a number followed by s, m, h or d.
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = super::token_cmd::parse_duration)]
    token_max_ttl: Duration,
    /// Issue no per-user tokens (`emrfs-rolemap token`) and accept none.
    #[arg(long)]
    no_user_tokens: bool,
    /// A Unix-socket uid that may ask for any user and supply groups, like root (repeat for several).
    #[arg(long = "allow-uid", value_name = "UID")]
    allow_uid: Vec<u32>,
    /// Who gets the server's base credentials when no mapping matches: `refuse` (nobody: 403
    /// fallback-not-served) or `trusted` (root, --allow-uid and the TCP token; others get 403). The
    /// base credentials may assume every mapped role.
    #[arg(long, value_enum, value_name = "WHO", default_value_t = FallbackArg::Refuse)]
    fallback_credentials: FallbackArg,
    /// Use a configuration or token file that others could change (or read, for the token), or in a
    /// directory others can write, with a warning instead of refusing it. For tests and development.
    #[arg(long)]
    insecure_files: bool,
    /// Share the credential cache with the other nodes of a fleet through Redis or Valkey at URL
    /// (`redis://HOST[:PORT][/DB]`, `rediss://` for TLS): one AssumeRole per role and session for the
    /// whole fleet. Needs --shared-cache-key-file. Give the password with --shared-cache-password-file,
    /// not in the URL (a command line is visible to every local user).
    #[arg(long, value_name = "URL", requires = "shared_cache_key_file")]
    shared_cache: Option<String>,
    /// The fleet key that seals shared entries: a secret file of at least 32 bytes, the same on every
    /// node (e.g. `openssl rand -hex 32`).
    #[arg(long, value_name = "FILE", requires = "shared_cache")]
    shared_cache_key_file: Option<PathBuf>,
    /// The previous fleet key, still accepted for reading while the fleet rotates to a new one.
    #[arg(long, value_name = "FILE", requires = "shared_cache")]
    shared_cache_previous_key_file: Option<PathBuf>,
    /// A secret file holding the Redis password (AUTH), which replaces the URL's.
    #[arg(long, value_name = "FILE", requires = "shared_cache")]
    shared_cache_password_file: Option<PathBuf>,
    /// Milliseconds a call to the shared cache may take before the request goes on without it.
    #[arg(long, value_name = "MS", default_value_t = CacheConfig::DEFAULT_SHARED_CALL_TIMEOUT.as_millis() as u64, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    shared_cache_timeout: u64,
    /// How long the OS's user name and groups of a uid are reused, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = Seconds(ServerOptions::DEFAULT_IDENTITY_TTL), value_parser = Seconds::any)]
    group_cache_ttl: Seconds,
    /// Seconds a request waits for the OS's user and group databases (NSS) before 503.
    #[arg(long, value_name = "SECONDS", default_value_t = Seconds(ServerOptions::DEFAULT_IDENTITY_TIMEOUT), value_parser = Seconds::positive)]
    identity_lookup_timeout: Seconds,
    /// The largest request body, in bytes; larger bodies get 413.
    #[arg(long, value_name = "BYTES", default_value_t = ServerOptions::DEFAULT_BODY_LIMIT)]
    body_limit: usize,
    /// Seconds a client may take to send a request head (also the keep-alive idle time).
    #[arg(long, value_name = "SECONDS", default_value_t = Seconds(ServerOptions::DEFAULT_HEADER_TIMEOUT), value_parser = Seconds::positive)]
    header_timeout: Seconds,
    /// Seconds a client may take to send a request body; then 408.
    #[arg(long, value_name = "SECONDS", default_value_t = Seconds(ServerOptions::DEFAULT_BODY_TIMEOUT), value_parser = Seconds::positive)]
    body_timeout: Seconds,
    /// Seconds a request may take in all, STS included; then 504.
    #[arg(long, value_name = "SECONDS", default_value_t = Seconds(ServerOptions::DEFAULT_REQUEST_TIMEOUT), value_parser = Seconds::positive)]
    request_timeout: Seconds,
    /// Seconds to wait for requests in flight after SIGTERM.
    #[arg(long, value_name = "SECONDS", default_value_t = Seconds(ServerOptions::DEFAULT_DRAIN_TIMEOUT), value_parser = Seconds::any)]
    drain_timeout: Seconds,
    /// Connections served at once on each listener kind (TCP and the Unix socket each have this many);
    /// when full, the connection idle the longest makes room; lowered at start to what the process
    /// may open.
    #[arg(long, value_name = "N", default_value_t = ServerOptions::DEFAULT_MAX_CONNECTIONS, value_parser = at_least_one)]
    max_connections: usize,
    /// Connections one uid may hold open on the Unix socket (root and --allow-uid exempt); more get 429.
    #[arg(long, value_name = "N", default_value_t = ServerOptions::DEFAULT_MAX_CONNECTIONS_PER_UID, value_parser = at_least_one)]
    max_connections_per_uid: usize,
    /// Seconds an answer may take to leave once the client stops reading (the whole answer, not each
    /// write); then the connection is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = Seconds(ServerOptions::DEFAULT_WRITE_TIMEOUT), value_parser = Seconds::positive)]
    write_timeout: Seconds,
    /// Seconds between checks of the configuration file for changes; 0 reloads on SIGHUP only.
    #[arg(long, value_name = "SECONDS", default_value_t = Seconds(ServerOptions::DEFAULT_WATCH_INTERVAL), value_parser = Seconds::any)]
    watch_interval: Seconds,
    /// The most credentials the cache keeps (one per role, session name and source identity); the
    /// least recently used go first.
    #[arg(long, value_name = "N", default_value_t = CacheConfig::DEFAULT_MAX_ENTRIES, value_parser = at_least_one)]
    cache_max_entries: usize,
    /// Seconds before expiry at which cached credentials are refreshed in the background; shorter than
    /// --duration.
    #[arg(long, value_name = "SECONDS", default_value_t = Seconds(CacheConfig::DEFAULT_REFRESH_BEFORE_EXPIRY), value_parser = Seconds::any)]
    cache_refresh_before: Seconds,
    /// After a transient failure of their refresh, cached credentials are still served while they have
    /// more than this many seconds left; then the request fails.
    #[arg(long, value_name = "SECONDS", default_value_t = Seconds(CacheConfig::DEFAULT_STALE_MIN_REMAINING), value_parser = Seconds::any)]
    cache_stale_min_remaining: Seconds,
    /// Seconds an STS AccessDenied is remembered before the role is asked again.
    #[arg(long, value_name = "SECONDS", default_value_t = Seconds(CacheConfig::DEFAULT_ACCESS_DENIED_TTL), value_parser = Seconds::any)]
    cache_access_denied_ttl: Seconds,
}

/// A number of seconds on the command line (fractions allowed, at most a day), shown in seconds.
#[derive(Clone, Copy)]
struct Seconds(Duration);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.as_secs_f64())
    }
}

impl Seconds {
    fn any(text: &str) -> Result<Seconds, String> {
        text.parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 86_400.0)
            .map(|s| Seconds(Duration::from_secs_f64(s)))
            .ok_or_else(|| format!("`{text}` is not a number of seconds between 0 and 86400"))
    }

    fn positive(text: &str) -> Result<Seconds, String> {
        Self::any(text)
            .ok()
            .filter(|s| s.0.as_millis() >= 1)
            .ok_or_else(|| format!("`{text}` is not a number of seconds between 0.001 and 86400"))
    }
}

fn at_least_one(text: &str) -> Result<usize, String> {
    text.parse().ok().filter(|n| *n >= 1).ok_or_else(|| format!("`{text}` is not a whole number of at least 1"))
}

/// `--fallback-credentials`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FallbackArg {
    Refuse,
    Trusted,
}

impl ServeArgs {
    fn file_check(&self) -> FileCheck {
        if self.insecure_files { FileCheck::WarnOnly } else { FileCheck::Enforce }
    }

    /// The credential cache's configuration, checked for sessions of `duration_seconds`.
    fn cache_config(&self, duration_seconds: u32) -> Result<CacheConfig, Unusable> {
        let mut config = CacheConfig::default();
        config.max_entries = self.cache_max_entries;
        config.refresh_before_expiry = self.cache_refresh_before.0;
        config.stale_min_remaining = self.cache_stale_min_remaining.0;
        config.access_denied_ttl = self.cache_access_denied_ttl.0;
        config.shared_call_timeout = Duration::from_millis(self.shared_cache_timeout);
        config.validate(duration_seconds).map_err(|e| match e {
            SettingsError::RefreshWindow { refresh_before, duration_seconds } => Unusable(format!(
                "--cache-refresh-before ({} s) must be shorter than the session --duration ({duration_seconds} s), or \
                 every request would refresh its credentials",
                refresh_before.as_secs_f64()
            )),
            other => Unusable(other.to_string()),
        })?;
        Ok(config)
    }
}

fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|mode| *mode <= 0o777)
        .ok_or_else(|| format!("`{text}` is not an octal permission mode such as 666 or 660"))
}

/// Checks everything the user can get wrong, loads the configuration, then serves until SIGTERM.
pub fn run(args: ServeArgs) -> Result<ExitCode, Unusable> {
    if args.config.config == "-" {
        return Err(Unusable("serve reloads its configuration from a file; --config cannot be `-`".into()));
    }
    let settings = args.sts.settings()?;
    let cache_config = args.cache_config(settings.duration_seconds)?;
    let source_config = args.sts.source_config()?;
    let listen = match (args.listen, &args.socket) {
        (None, None) => Some(DEFAULT_LISTEN.parse().map_err(|e| Unusable(format!("{e}")))?),
        (listen, _) => listen,
    };
    init_logging();
    if let Some(address) = listen.filter(|a| !a.ip().is_loopback()) {
        tracing::warn!(
            "listening on {address}, which is not a loopback address: TCP is not encrypted, so the bearer token \
             and the credentials cross the network in clear; keep TCP on 127.0.0.1 or ::1, or put TLS in front"
        );
    }
    Listener::check_set(listen.is_some(), args.socket.is_some(), args.token_file.is_some())?;
    let token = args.token_file.as_deref().map(|file| BearerToken::from_file(file, args.file_check())).transpose()?;
    let mut options = ServerOptions::default();
    options.body_limit = args.body_limit;
    options.header_timeout = args.header_timeout.0;
    options.body_timeout = args.body_timeout.0;
    options.request_timeout = args.request_timeout.0;
    options.max_connections = args.max_connections;
    options.max_connections_per_uid = args.max_connections_per_uid;
    options.write_timeout = args.write_timeout.0;
    options.drain_timeout = args.drain_timeout.0;
    options.watch_interval = Some(args.watch_interval.0).filter(|i| !i.is_zero());
    options.allowed_uids = args.allow_uid.clone();
    options.identity_ttl = args.group_cache_ttl.0;
    options.identity_timeout = args.identity_lookup_timeout.0;
    options.fallback_credentials = match args.fallback_credentials {
        FallbackArg::Refuse => FallbackCredentials::Refuse,
        FallbackArg::Trusted => FallbackCredentials::Trusted,
    };
    options.file_check = args.file_check();
    options.user_tokens = !args.no_user_tokens;
    options.token_max_ttl = args.token_max_ttl;
    let store = ConfigStore::open(&args.config.config, args.config.options()?, args.file_check())
        .map_err(|e| Unusable(e.report()))?;
    tracing::info!(
        "loaded `{}`: generation 1, {} role mapping(s)",
        Escaped(&args.config.config),
        store.current().resolver().config().mappings().len()
    );

    let runtime = runtime(tokio::runtime::Builder::new_multi_thread())?;
    let served = runtime.block_on(async {
        let source = StsSource::new(source_config).await?;
        let cache = shared_cache(&args, CredentialCache::new(source, cache_config))?;
        let broker = Broker::new(cache, settings)?;
        let mut listeners = Vec::new();
        if let Some(address) = listen {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .map_err(|e| Unusable(format!("cannot listen on {address}: {e}")))?;
            listeners.push(Listener::Tcp(listener));
        }
        if let Some(path) = &args.socket {
            let listener = Listener::bind_unix(path, args.socket_mode, args.file_check())
                .await
                .map_err(|e| Unusable(format!("cannot listen on `{}`: {e}", Escaped(&path.to_string_lossy()))))?;
            listeners.push(listener);
        }
        let server = Server::new(Arc::new(store), broker, token, options);
        match (&args.token_key_file, args.no_user_tokens) {
            (_, true) => tracing::info!("per-user tokens are off (--no-user-tokens)"),
            (Some(file), _) => {
                tokio::task::block_in_place(|| server.use_token_key_file(file))?;
                tracing::info!("per-user tokens are signed with the key in `{}`", Escaped(&file.to_string_lossy()));
            }
            (None, _) => tracing::info!(
                "per-user tokens are signed with a random key: they stop working when the server stops \
                 (--token-key-file keeps them)"
            ),
        }
        let mut out = std::io::stdout().lock();
        for listener in &listeners {
            tracing::info!("listening on {}", listener.describe());
            writeln!(out, "listening {}", listener.describe())?;
        }
        out.flush()?;
        drop(out);
        run_until_signalled(&server, listeners, args.token_file.as_deref()).await.map_err(|e| Unusable(e.to_string()))
    });
    // Whatever a reload or an OS lookup is still doing on a blocking thread, exit now: the drain is over.
    runtime.shutdown_timeout(Duration::ZERO);
    served?;
    Ok(ExitCode::SUCCESS)
}

/// The largest fleet key or password file read, in bytes.
#[cfg(feature = "redis")]
const MAX_SECRET_FILE_BYTES: usize = 4096;

/// `cache` as it is: this build has no Redis client (feature `redis`).
#[cfg(not(feature = "redis"))]
fn shared_cache<S: emrfs_rolemap::credentials::CredentialSource>(
    args: &ServeArgs,
    cache: CredentialCache<S>,
) -> Result<CredentialCache<S>, Unusable> {
    match &args.shared_cache {
        Some(_) => Err(Unusable("--shared-cache needs a build with the `redis` feature".into())),
        None => Ok(cache),
    }
}

/// `cache`, with the fleet's shared tier when `--shared-cache` is given: the key files and the password
/// file read as trusted secret files.
#[cfg(feature = "redis")]
fn shared_cache<S: emrfs_rolemap::credentials::CredentialSource>(
    args: &ServeArgs,
    cache: CredentialCache<S>,
) -> Result<CredentialCache<S>, Unusable> {
    let (Some(url), Some(key_file)) = (&args.shared_cache, &args.shared_cache_key_file) else {
        return Ok(cache);
    };
    let check = args.file_check();
    let read = |path: &PathBuf| -> Result<zeroize::Zeroizing<Vec<u8>>, Unusable> {
        let mut bytes = check.read_secret(path, MAX_SECRET_FILE_BYTES)?;
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        Ok(bytes)
    };
    let key = read(key_file)?;
    let previous = args.shared_cache_previous_key_file.as_ref().map(read).transpose()?;
    let password = args.shared_cache_password_file.as_ref().map(read).transpose()?;
    let password = password
        .as_ref()
        .map(|p| {
            std::str::from_utf8(p).map_err(|_| Unusable("the shared cache password file is not UTF-8 text".into()))
        })
        .transpose()?;
    if password.is_none()
        && url.split_once("://").is_some_and(|(_, rest)| rest.split('/').next().unwrap_or("").contains('@'))
    {
        tracing::warn!(
            "the --shared-cache URL carries credentials, and a command line is visible to every local user; \
             give the password with --shared-cache-password-file"
        );
    }
    let cache = cache.with_redis(url, password, &key, previous.as_deref().map(|p| &p[..]))?;
    tracing::info!(
        "sharing the credential cache through the shared tier (fleet key from `{}`{})",
        Escaped(&key_file.to_string_lossy()),
        if previous.is_some() { ", previous key accepted for reading" } else { "" }
    );
    Ok(cache)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EMRFS_ROLEMAP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
