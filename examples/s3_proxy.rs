//! An S3 proxy that enforces EMRFS role mappings: how to embed `emrfs-rolemap` in a data-access proxy.
//!
//! It serves HTTP on a Unix socket. The kernel names the caller (the peer's uid); its user name and
//! groups come from the operating system, once per connection. Root and the uids given with
//! `--allow-uid` (the proxy's operators) may instead name a user in `X-Emrfs-User` and groups in
//! `X-Emrfs-Groups` (comma-separated); anyone else naming a user other than its own gets 403
//! `not-your-user`. Then, per request:
//!
//! - `GET /BUCKET/KEY` answers the object, and `PUT /BUCKET/KEY` (with `Content-Length`) stores the
//!   request's body, both streamed: an object of any size passes through in chunks, never whole;
//! - the request is resolved for the caller's principal and path, and the S3 call is signed with the
//!   decided role's credentials, fetched through the broker's cache by the credentials adapter
//!   ([`Broker::provider`]), passed to the shared S3 client for this one call (`config_override`);
//! - S3's own status and error code come back (`{"error": {"code": "AccessDenied", "message": ...,
//!   "origin": "s3"}}`), and the proxy's own refusals have the shape and codes of `emrfs-rolemap serve`
//!   (`"origin": "proxy"`): 403 `fallback-not-served`, `not-your-user`, `sts-access-denied`, 429, 502 or
//!   504 when STS fails (the request fails closed: it never falls through to another role).
//!
//! A request no mapping matches (a fallback) would be served by the proxy's own base credentials (on
//! EMR, the instance-profile role), which may assume every mapped role: as `serve` does, the proxy
//! refuses it (403 `fallback-not-served`) unless started with `--fallback-credentials trusted`, and
//! then serves it to root and `--allow-uid` callers only ([`Broker::trusted_provider`]).
//!
//! Run it against moto (`bash scripts/install-moto.sh`) as `tests/examples.rs` does — an IAM user whose
//! keys may only call `sts:AssumeRole` as the base credentials, a role per bucket — or against AWS:
//!
//! ```sh
//! cargo run --example s3_proxy -- --config examples/configs/multi-team.json \
//!     --socket /run/s3-proxy.sock --region us-east-1
//! curl --unix-socket /run/s3-proxy.sock http://localhost/acme-lake/curated/sales/part-0 -o part-0
//! curl --unix-socket /run/s3-proxy.sock -T part-0 http://localhost/acme-scratch/tmp/part-0
//! ```
//!
//! `--s3-endpoint URL` and `--sts-endpoint URL` replace the region's endpoints (path-style bucket
//! addressing with `--s3-endpoint`). The base credentials come from the SDK's default chain.

use std::collections::HashSet;
use std::convert::Infallible;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, IdentityCache, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use emrfs_rolemap::credentials::{
    AssumeRoleSettings, Broker, CacheConfig, CredentialCache, CredentialError, StsSource, StsSourceConfig,
};
use emrfs_rolemap::{Escaped, PreparedPrincipal, Resolver, ResolverBuilder, S3Path, SecurityConfiguration};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, ETAG, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::UnixListener;
use tokio::sync::OnceCell;

type Error = Box<dyn std::error::Error + Send + Sync>;
type Body = UnsyncBoxBody<Bytes, Error>;

/// The header in which a trusted caller names the user a request is for.
const USER_HEADER: &str = "x-emrfs-user";
/// The header in which a trusted caller names that user's groups, comma-separated.
const GROUPS_HEADER: &str = "x-emrfs-groups";

#[derive(Parser)]
struct Args {
    /// The security configuration, in any form `emrfs-rolemap check` accepts.
    #[arg(long)]
    config: PathBuf,
    /// The Unix socket to serve (created with mode 666: the uid rules are the gate).
    #[arg(long)]
    socket: PathBuf,
    /// The S3 endpoint URL (an emulator, a VPC endpoint); default: the region's.
    #[arg(long, value_name = "URL")]
    s3_endpoint: Option<String>,
    /// The STS endpoint URL; default: the region's.
    #[arg(long, value_name = "URL")]
    sts_endpoint: Option<String>,
    /// The AWS region; default: `AWS_REGION`.
    #[arg(long)]
    region: Option<String>,
    /// A uid trusted to name the user of a request (root always is); repeatable.
    #[arg(long = "allow-uid", value_name = "UID")]
    allow_uids: Vec<u32>,
    /// Who may have a request no mapping matches served with the proxy's base credentials.
    #[arg(long, value_enum, default_value_t = FallbackCredentials::Refuse)]
    fallback_credentials: FallbackCredentials,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FallbackCredentials {
    /// Nobody: 403 `fallback-not-served`.
    Refuse,
    /// Root and `--allow-uid` callers.
    Trusted,
}

/// What every connection shares.
struct App {
    resolver: Resolver,
    broker: Broker<StsSource>,
    s3: aws_sdk_s3::Client,
    allow_uids: HashSet<u32>,
    fallback: FallbackCredentials,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<(), Error> {
    // Once per process: compile the configuration, build the broker (STS behind the credential cache)
    // and one S3 client, which has no credentials of its own: each call gets its request's provider.
    let shown = args.config.display().to_string();
    let bytes = read_config(&args.config).map_err(|e| format!("cannot read `{}`: {e}", Escaped(&shown)))?;
    let config = SecurityConfiguration::from_slice(&bytes).map_err(|d| d.render(&shown))?;
    let resolver = ResolverBuilder::new().build(&config)?;
    let region = args.region.or_else(|| std::env::var("AWS_REGION").ok()).ok_or("no region: give --region")?;
    let mut sts = StsSourceConfig::new(region.clone());
    sts.endpoint_url = args.sts_endpoint;
    let cache = CredentialCache::new(StsSource::new(sts).await?, CacheConfig::default());
    let broker = Broker::new(cache, AssumeRoleSettings::default())?;
    let mut s3 = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        // The broker's cache is the only one: each call asks it (a hit costs nanoseconds), so a revoked
        // role stops being used at once and no per-request provider lingers in the SDK's cache.
        .identity_cache(IdentityCache::no_cache());
    if let Some(url) = args.s3_endpoint {
        s3 = s3.endpoint_url(url).force_path_style(true);
    }
    let app = Arc::new(App {
        resolver,
        broker,
        s3: aws_sdk_s3::Client::from_conf(s3.build()),
        allow_uids: args.allow_uids.into_iter().collect(),
        fallback: args.fallback_credentials,
    });

    let listener = UnixListener::bind(&args.socket)
        .map_err(|e| format!("cannot listen on `{}`: {e}", Escaped(&args.socket.display().to_string())))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&args.socket, std::fs::Permissions::from_mode(0o666))?;
    println!("listening unix {}", args.socket.display());
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                eprintln!("accept: {error}");
                continue;
            }
        };
        let uid = match stream.peer_cred() {
            Ok(credentials) => credentials.uid(),
            Err(error) => {
                eprintln!("no peer credentials: {error}");
                continue;
            }
        };
        let app = Arc::clone(&app);
        // The caller's own principal, looked up and prepared once per connection, when first needed (a
        // failed lookup is tried again by the next request).
        let own = Arc::new(OnceCell::new());
        let service = hyper::service::service_fn(move |request| {
            let (app, own) = (Arc::clone(&app), Arc::clone(&own));
            async move { Ok::<_, Infallible>(handle(&app, uid, &own, request).await) }
        });
        tokio::spawn(async move {
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("uid {uid}: {error}");
            }
        });
    }
}

/// The configuration file: a regular file only (a FIFO would hold the start forever), read up to the
/// largest document the library accepts (a larger one is refused with its message, not read whole).
fn read_config(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    if !std::fs::metadata(path)?.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(SecurityConfiguration::MAX_BYTES as u64 + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// One request, answered and logged (with its decision, once made).
async fn handle(app: &App, uid: u32, own: &OnceCell<PreparedPrincipal>, request: Request<Incoming>) -> Response<Body> {
    let line = format!("uid {uid}: {} {}", request.method(), Escaped(request.uri().path()));
    let mut decision = String::new();
    let response = proxy(app, uid, own, request, &mut decision).await.unwrap_or_else(ProxyError::into_response);
    eprintln!("{line}{decision} -> {}", response.status().as_u16());
    response
}

/// Resolves, fetches the credentials through the adapter and makes the S3 call.
async fn proxy(
    app: &App,
    uid: u32,
    own: &OnceCell<PreparedPrincipal>,
    request: Request<Incoming>,
    decision: &mut String,
) -> Result<Response<Body>, ProxyError> {
    let (request, body) = request.into_parts();
    if request.method != Method::GET && request.method != Method::PUT {
        let mut response = ProxyError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            format!("the proxy answers GET and PUT, not {}", request.method),
        )
        .into_response();
        response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, PUT"));
        return Ok(response);
    }
    let (bucket, key) = bucket_and_key(request.uri.path())?;
    let location = format!("s3://{bucket}/{key}");
    let path = S3Path::parse(&location).map_err(|e| {
        ProxyError::new(StatusCode::BAD_REQUEST, "invalid-path", format!("invalid path `{}`: {e}", Escaped(&location)))
    })?;

    let trusted = uid == 0 || app.allow_uids.contains(&uid);
    let (named_user, named_groups) = (header(&request.headers, USER_HEADER)?, header(&request.headers, GROUPS_HEADER)?);
    let named;
    let principal = match named_user {
        Some(user) if trusted => {
            let groups: Vec<&str> =
                named_groups.into_iter().flat_map(|g| g.split(',')).map(str::trim).filter(|g| !g.is_empty()).collect();
            named = app.resolver.prepare(Some(user), &groups);
            &named
        }
        asked => {
            if named_groups.is_some() {
                return Err(match trusted {
                    true => ProxyError::new(
                        StatusCode::BAD_REQUEST,
                        "groups-without-user",
                        "name the user of the groups in `X-Emrfs-User`",
                    ),
                    false => ProxyError::new(
                        StatusCode::FORBIDDEN,
                        "groups-not-accepted",
                        format!("uid {uid} may not supply groups; they are looked up from the OS"),
                    ),
                });
            }
            let own = own.get_or_try_init(|| own_principal(app, uid)).await?;
            if let Some(asked) = asked.filter(|asked| Some(*asked) != own.user()) {
                return Err(ProxyError::new(
                    StatusCode::FORBIDDEN,
                    "not-your-user",
                    format!("uid {uid} may ask only for its own user, not `{}`", Escaped(asked)),
                ));
            }
            own
        }
    };
    let resolution = principal.resolve(Some(&path));
    let user = principal.user().map_or("(none)".to_owned(), |u| format!("`{}`", Escaped(u)));
    *decision = format!(" user {user} {}: {resolution}", Escaped(&location));

    // The adapter: the decided role's credentials, through the broker's cache, for this call only.
    let provider = if trusted && app.fallback == FallbackCredentials::Trusted {
        app.broker.trusted_provider(principal, Some(&path))
    } else {
        app.broker.provider(principal, Some(&path)).map_err(|e| credential_error(&e))?
    };
    let credentials = aws_sdk_s3::Config::builder().credentials_provider(provider);

    let response = if request.method == Method::GET {
        let output = app.s3.get_object().bucket(bucket).key(&key).customize().config_override(credentials).send();
        let output = output.await.map_err(s3_error)?;
        let mut response = Response::new(output.body.into_inner().map_err(Error::from).boxed_unsync());
        let headers = response.headers_mut();
        for (name, value) in [
            (CONTENT_LENGTH, output.content_length.map(|n| n.to_string())),
            (CONTENT_TYPE, output.content_type),
            (ETAG, output.e_tag),
        ] {
            if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(name, value);
            }
        }
        response
    } else {
        let length = header(&request.headers, CONTENT_LENGTH.as_str())?.and_then(|n| n.parse::<i64>().ok());
        let Some(length) = length else {
            return Err(ProxyError::new(
                StatusCode::LENGTH_REQUIRED,
                "length-required",
                "a PUT needs a Content-Length (S3 takes no chunked upload of unknown length)",
            ));
        };
        let body = ByteStream::from_body_1_x(body);
        let call = app.s3.put_object().bucket(bucket).key(&key).content_length(length).body(body);
        let output = call.customize().config_override(credentials).send().await.map_err(s3_error)?;
        let mut response = Response::new(empty());
        if let Some(etag) = output.e_tag.and_then(|v| HeaderValue::from_str(&v).ok()) {
            response.headers_mut().insert(ETAG, etag);
        }
        response
    };
    Ok(response)
}

/// The caller's own user and groups from the operating system's databases (NSS), prepared.
async fn own_principal(app: &App, uid: u32) -> Result<PreparedPrincipal, ProxyError> {
    let lookup = tokio::task::spawn_blocking(move || os_identity(uid)).await;
    let (user, groups) = lookup.map_err(|e| e.to_string()).and_then(|found| found).map_err(|message| {
        ProxyError::new(StatusCode::FORBIDDEN, "unknown-caller", format!("cannot name uid {uid}: {message}"))
    })?;
    Ok(app.resolver.prepare(Some(&user), &groups))
}

/// The user name of `uid` and the names of its groups, primary group first (like the server's
/// lookup: `getpwuid_r`, `getgrouplist`, `getgrgid_r`). Blocks for as long as the databases take.
fn os_identity(uid: u32) -> Result<(String, Vec<String>), String> {
    use nix::unistd::{Group, Uid, User, getgrouplist};
    let user = User::from_uid(Uid::from_raw(uid)).map_err(|e| e.to_string())?.ok_or("no such user")?;
    let name = std::ffi::CString::new(user.name.as_bytes()).map_err(|e| e.to_string())?;
    let mut gids = getgrouplist(&name, user.gid).map_err(|e| e.to_string())?;
    gids.retain(|g| *g != user.gid);
    gids.insert(0, user.gid);
    let mut groups = Vec::new();
    for gid in gids {
        if let Some(group) = Group::from_gid(gid).map_err(|e| e.to_string())?
            && !groups.contains(&group.name)
        {
            groups.push(group.name);
        }
    }
    Ok((user.name, groups))
}

/// `/BUCKET/KEY` with the key percent-decoded; both must be there.
fn bucket_and_key(target: &str) -> Result<(&str, String), ProxyError> {
    let invalid =
        |why: &str| ProxyError::new(StatusCode::BAD_REQUEST, "invalid-path", format!("`{}`: {why}", Escaped(target)));
    let (bucket, key) =
        target.strip_prefix('/').and_then(|t| t.split_once('/')).ok_or_else(|| invalid("expected /BUCKET/KEY"))?;
    if bucket.is_empty() || key.is_empty() {
        return Err(invalid("expected /BUCKET/KEY"));
    }
    Ok((bucket, percent_decode(key).ok_or_else(|| invalid("bad percent-encoding or not UTF-8"))?))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A header's value as text; a value that is not visible ASCII is refused.
fn header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ProxyError> {
    headers.get(name).map(|v| v.to_str()).transpose().map_err(|_| {
        ProxyError::new(StatusCode::BAD_REQUEST, "invalid-header", format!("`{name}` is not visible ASCII"))
    })
}

/// An answer the proxy gives instead of S3's: the error shape of `emrfs-rolemap serve`.
#[derive(Debug)]
struct ProxyError {
    status: StatusCode,
    code: String,
    message: String,
    origin: &'static str,
}

impl ProxyError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ProxyError { status, code: code.to_owned(), message: message.into(), origin: "proxy" }
    }

    fn into_response(self) -> Response<Body> {
        let body = json!({"error": {"code": self.code, "message": self.message, "origin": self.origin}});
        let mut response =
            Response::new(Full::new(Bytes::from(format!("{body}\n"))).map_err(Error::from).boxed_unsync());
        *response.status_mut() = self.status;
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}

/// The status and code `serve` answers a credentials failure with.
fn credential_error(error: &CredentialError) -> ProxyError {
    let (status, code) = match error.source_error().map(|e| e.kind()) {
        None => (StatusCode::FORBIDDEN, "fallback-not-served"),
        Some("access_denied") => (StatusCode::FORBIDDEN, "sts-access-denied"),
        Some("throttling") => (StatusCode::TOO_MANY_REQUESTS, "sts-throttling"),
        Some("timeout") => (StatusCode::GATEWAY_TIMEOUT, "sts-timeout"),
        Some("connection" | "server_error") => (StatusCode::BAD_GATEWAY, "sts-unavailable"),
        Some("base_credentials") => (StatusCode::INTERNAL_SERVER_ERROR, "base-credentials"),
        Some(_) => (StatusCode::BAD_GATEWAY, "sts-error"),
    };
    ProxyError::new(status, code, error.to_string())
}

/// S3's own status and code; a credentials failure as `serve` answers it; anything else 502.
fn s3_error<E: ProvideErrorMetadata + std::error::Error + 'static>(error: SdkError<E>) -> ProxyError {
    if let SdkError::ServiceError(service) = &error {
        let status = StatusCode::from_u16(service.raw().status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let code = service.err().code().unwrap_or("Unknown");
        let message = service.err().message().unwrap_or_default().to_owned();
        return ProxyError { status, code: code.to_owned(), message, origin: "s3" };
    }
    // The adapter's failure travels inside the SDK's error: find it.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = cause {
        if let Some(credentials) = e.downcast_ref::<CredentialError>() {
            return credential_error(credentials);
        }
        cause = e.source();
    }
    ProxyError::new(StatusCode::BAD_GATEWAY, "s3-unavailable", DisplayErrorContext(&error).to_string())
}

fn empty() -> Body {
    Full::new(Bytes::new()).map_err(Error::from).boxed_unsync()
}
