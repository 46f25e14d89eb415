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
use emrfs_rolemap::credentials::sts::StsSource;
use emrfs_rolemap::credentials::{Broker, CacheConfig, CredentialCache};
use emrfs_rolemap::diagnostics::Escaped;
use emrfs_rolemap::server::files::FileCheck;
use emrfs_rolemap::server::peer::BearerToken;
use emrfs_rolemap::server::store::ConfigStore;
use emrfs_rolemap::server::{FallbackCredentials, Listener, Server, ServerOptions, run_until_signalled};

use super::credentials_cmd::StsArgs;
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
    /// How long the OS's user name and groups of a uid are reused, in seconds.
    #[arg(long, value_name = "SECONDS", default_value = "300", value_parser = parse_seconds)]
    group_cache_ttl: Duration,
    /// Seconds a request waits for the OS's user and group databases (NSS) before 503.
    #[arg(long, value_name = "SECONDS", default_value = "2", value_parser = parse_positive_seconds)]
    identity_lookup_timeout: Duration,
    /// The largest request body, in bytes; larger bodies get 413.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    body_limit: usize,
    /// Seconds a client may take to send a request head (also the keep-alive idle time).
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_positive_seconds)]
    header_timeout: Duration,
    /// Seconds a client may take to send a request body; then 408.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_positive_seconds)]
    body_timeout: Duration,
    /// Seconds a request may take in all, STS included; then 504.
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_positive_seconds)]
    request_timeout: Duration,
    /// Seconds to wait for requests in flight after SIGTERM.
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_seconds)]
    drain_timeout: Duration,
    /// Connections served at once on each listener kind (TCP and the Unix socket each have this many);
    /// lowered at start to what the process may open.
    #[arg(long, value_name = "N", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Connections one uid may hold open on the Unix socket (root and --allow-uid exempt); more get 429.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections_per_uid: u32,
    /// Seconds an answer may take to leave once the client stops reading (the whole answer, not each
    /// write); then the connection is closed.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_positive_seconds)]
    write_timeout: Duration,
    /// Seconds between checks of the configuration file for changes; 0 reloads on SIGHUP only.
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = parse_seconds)]
    watch_interval: Duration,
    /// The most credentials the cache keeps (one per role, session name and source identity); the
    /// least recently used go first. Default: the library's (10,000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    cache_max_entries: Option<u32>,
    /// Seconds before expiry at which cached credentials are refreshed in the background; shorter than
    /// --duration. Default: the library's (300).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    cache_refresh_before: Option<Duration>,
    /// After a failed refresh, cached credentials are still served while they have more than this many
    /// seconds left; then the request fails. Default: the library's (60).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    cache_stale_min_remaining: Option<Duration>,
    /// Seconds an STS AccessDenied is remembered before the role is asked again. Default: the
    /// library's (30).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    cache_access_denied_ttl: Option<Duration>,
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

    /// The credential cache's configuration; its refresh margin must leave the session some life.
    fn cache_config(&self, duration_seconds: u32) -> Result<CacheConfig, Unusable> {
        let defaults = CacheConfig::default();
        let config = CacheConfig {
            max_entries: self.cache_max_entries.map_or(defaults.max_entries, |n| n as usize),
            refresh_before_expiry: self.cache_refresh_before.unwrap_or(defaults.refresh_before_expiry),
            stale_min_remaining: self.cache_stale_min_remaining.unwrap_or(defaults.stale_min_remaining),
            access_denied_ttl: self.cache_access_denied_ttl.unwrap_or(defaults.access_denied_ttl),
            ..defaults
        };
        if config.refresh_before_expiry >= Duration::from_secs(u64::from(duration_seconds)) {
            return Err(Unusable(format!(
                "--cache-refresh-before ({} s) must be shorter than the session --duration ({} s), or every \
                 request would refresh its credentials",
                config.refresh_before_expiry.as_secs_f64(),
                duration_seconds
            )));
        }
        Ok(config)
    }
}

fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|mode| *mode <= 0o777)
        .ok_or_else(|| format!("`{text}` is not an octal permission mode such as 666 or 660"))
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("`{text}` is not a number of seconds between 0 and 86400"))
}

fn parse_positive_seconds(text: &str) -> Result<Duration, String> {
    parse_seconds(text)
        .ok()
        .filter(|d| d.as_millis() >= 1)
        .ok_or_else(|| format!("`{text}` is not a number of seconds between 0.001 and 86400"))
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
    let token = match (&args.token_file, listen) {
        (Some(file), _) => Some(BearerToken::from_file(file, args.file_check())?),
        (None, Some(address)) => {
            return Err(Unusable(format!(
                "listening on TCP {address} needs --token-file FILE (a bearer token of at least 16 characters, \
                 e.g. from `openssl rand -hex 32`); or give only --socket PATH"
            )));
        }
        (None, None) => None,
    };
    let options = ServerOptions {
        body_limit: args.body_limit,
        header_timeout: args.header_timeout,
        body_timeout: args.body_timeout,
        request_timeout: args.request_timeout,
        max_connections: args.max_connections as usize,
        max_connections_per_uid: args.max_connections_per_uid as usize,
        write_timeout: args.write_timeout,
        drain_timeout: args.drain_timeout,
        watch_interval: Some(args.watch_interval).filter(|i| !i.is_zero()),
        allowed_uids: args.allow_uid.clone(),
        identity_ttl: args.group_cache_ttl,
        identity_timeout: args.identity_lookup_timeout,
        fallback_credentials: match args.fallback_credentials {
            FallbackArg::Refuse => FallbackCredentials::Refuse,
            FallbackArg::Trusted => FallbackCredentials::Trusted,
        },
        file_check: args.file_check(),
    };
    let store = ConfigStore::open(&args.config.config, args.config.options()?, args.file_check())?;
    tracing::info!(
        "loaded `{}`: generation 1, {} role mapping(s)",
        Escaped(&args.config.config),
        store.current().resolver().config().mappings().len()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Unusable(format!("cannot start the async runtime: {e}")))?;
    let served = runtime.block_on(async {
        let source = StsSource::new(source_config).await?;
        let broker = Broker::new(CredentialCache::new(source, cache_config), settings)?;
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

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EMRFS_ROLEMAP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
