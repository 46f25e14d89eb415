//! `bench --server`: how much of an answer over HTTP is the server's own work, measured against a bare
//! hyper server in the same process, in the same run.
//!
//! Two servers run side by side on one multi-threaded runtime (the one `serve` builds): the real
//! [`Server`], with an in-process credential source ([`BenchSource`]) so that no STS is involved, and
//! a *bare* hyper server with the same HTTP settings that reads each request body and answers with a
//! fixed body as long as the real server's resolve answers. One client, on a runtime of its own (hyper,
//! keep-alive connections over the same transport, kept from slot to slot), drives both:
//!
//! 1. **verification**: every request of the corpus once to `/v1/resolve`, and every request a mapping
//!    decides once to `/v1/credentials` (which also fills the credential cache); each answer's decision
//!    is compared with the in-process resolver's, and each answer is kept;
//! 2. **rounds**: in each, one slot of time per workload — with one client, the real server's
//!    `/v1/resolve`, the bare server, and the real server's `/v1/credentials` (cache hits); with N
//!    clients, the real server's `/v1/resolve` and the bare server — in an order that rotates from
//!    round to round.
//!
//! Every timed answer must be 200 and byte for byte the verified one (the bare server's: its fixed
//! body); anything else counts as an error, and so does a credential-cache miss after verification.
//! Each ratio is taken within a round and the report gives the median over the rounds; the times are
//! the medians of the rounds' percentiles. Neither server runs under the counting allocator: it counts
//! only inside `counting_alloc::counted`, which nothing here calls.

use std::convert::Infallible;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1 as server_http1;
use hyper::service::service_fn;
use hyper::{Method, Request as HttpRequest, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

use emrfs_rolemap::credentials::{
    AssumeRoleSettings, Broker, CacheConfig, CredentialCache, CredentialRequest, CredentialSource, Credentials,
    SourceError,
};
use emrfs_rolemap::server::{BearerToken, ConfigStore, FileCheck, Listener, Server, ServerOptions};
use emrfs_rolemap::synth::RequestGenerator;
use emrfs_rolemap::{
    Escaped, Request, RequestSpec, Resolution, Resolver, ResolverBuilder, ResolverOptions, SecurityConfiguration,
};

use crate::bench::{BenchError, SYNTHESISED_REQUESTS, median};

/// The most requests of a corpus used: each is verified once per endpoint before the timed rounds.
pub const MAX_REQUESTS: usize = 10_000;

/// The fewest rounds; each ratio is the median over the rounds.
pub const MIN_ROUNDS: usize = 5;

/// About how long one slot lasts: a round has a slot per workload, and a run as many rounds as fit, so
/// that the servers alternate several times a second and a busy machine's swings hit both alike.
const SLOT: Duration = Duration::from_millis(100);

/// The seed of synthesised requests, the same as the in-process bench's.
const SYNTHESIS_SEED: u64 = 1;

/// The length of the session tokens the bench's credential source hands out: about what STS gives for
/// an AssumeRole without session tags (600 to 1,000 characters), so that a credentials answer is as
/// long as a real one.
const SESSION_TOKEN_BYTES: usize = 800;

/// The bearer token of the TCP transport; the bench's own, living as long as the run.
const TOKEN: &str = "emrfs-rolemap-bench-token-0123456789";

/// The transport both servers listen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A Unix socket in a private temporary directory; the bench's uid is allow-listed.
    Unix,
    /// TCP on 127.0.0.1, with the server's bearer token.
    Tcp,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Transport::Unix => "unix",
            Transport::Tcp => "tcp",
        }
    }
}

/// What to measure and for how long.
#[derive(Debug, Clone)]
pub struct ServerBenchSettings {
    /// The time budget of the timed rounds, in seconds; verification comes on top.
    pub seconds: f64,
    /// Clients of the throughput phase.
    pub clients: usize,
    /// The transport.
    pub transport: Transport,
    /// The resolver's options, the server's included.
    pub options: ResolverOptions,
}

/// The results of one run. Times are in nanoseconds per request, from sending the request to holding
/// the whole answer; each is the median over the rounds of that round's percentile.
#[derive(Debug, Clone, Serialize)]
pub struct ServerBenchReport {
    /// `unix` or `tcp`.
    pub transport: &'static str,
    /// Requests of the corpus used.
    pub requests: usize,
    /// Whether the requests were synthesised from the configuration's identifiers.
    pub requests_synthesised: bool,
    /// Requests of the corpus that a mapping decides: those asked of `/v1/credentials`.
    pub credential_requests: usize,
    /// Clients of the throughput phase.
    pub clients: usize,
    /// Rounds: each has one slot per workload, in turn.
    pub rounds: usize,
    /// The length of the bare server's fixed answer: the mean of the real server's resolve answers.
    pub answer_bytes: usize,
    /// `/v1/resolve` of the real server, one client: median.
    pub server_p50_ns: f64,
    /// `/v1/resolve` of the real server, one client: 99th percentile.
    pub server_p99_ns: f64,
    /// The bare server, one client: median.
    pub baseline_p50_ns: f64,
    /// The bare server, one client: 99th percentile.
    pub baseline_p99_ns: f64,
    /// Real ÷ bare median, one client (median over the rounds of each round's ratio).
    pub latency_ratio: f64,
    /// Real server's `/v1/resolve` answers per second with `clients` clients.
    pub server_rps: f64,
    /// Bare server's answers per second with `clients` clients.
    pub baseline_rps: f64,
    /// Real ÷ bare requests per second (median over the rounds of each round's ratio).
    pub throughput_ratio: f64,
    /// Real ÷ bare CPU time of this process per answer with `clients` clients, the client's share
    /// included (median over the rounds): what the throughput ratio's inverse would be on two idle
    /// cores, and steadier than it on a busy machine, which takes CPU time from both alike.
    pub cpu_ratio: f64,
    /// `/v1/credentials` answered from the cache, one client: median; `null` when no request of the
    /// corpus is decided by a mapping.
    pub credentials_hit_p50_ns: Option<f64>,
    /// The same: 99th percentile.
    pub credentials_hit_p99_ns: Option<f64>,
    /// Credentials hit ÷ resolve median of the real server (median over the rounds).
    pub credentials_ratio: Option<f64>,
    /// Answers that were not 200 or differed from the verified answer (or from the in-process
    /// resolver's decision), requests that failed, and credential-cache misses after verification.
    pub errors: usize,
    /// The first few errors, described.
    pub error_examples: Vec<String>,
}

/// The most errors described in a report.
const ERROR_EXAMPLES: usize = 5;

/// Why a run could not measure.
#[derive(Debug, thiserror::Error)]
pub enum ServerBenchError {
    /// The configuration or the requests are unusable, as for the in-process bench.
    #[error(transparent)]
    Input(#[from] BenchError),
    /// A server or the client could not be set up.
    #[error("{0}")]
    Setup(String),
}

fn setup(what: &str) -> impl FnOnce(std::io::Error) -> ServerBenchError + '_ {
    move |e| ServerBenchError::Setup(format!("{what}: {e}"))
}

/// Benchmarks the server on `bytes` (served from `served`, normally the same bytes) with `requests`, or
/// with requests synthesised from the configuration. `progress` is called with the fraction of the timed rounds done, from 0 to 1.
pub fn run(
    bytes: &[u8],
    served: &[u8],
    requests: Option<&[RequestSpec]>,
    settings: &ServerBenchSettings,
    progress: &mut dyn FnMut(f64),
) -> Result<ServerBenchReport, ServerBenchError> {
    let config = SecurityConfiguration::from_slice_with(bytes, &settings.options).map_err(BenchError::Config)?;
    let resolver = ResolverBuilder::with_options(settings.options.clone()).build(&config).map_err(BenchError::from)?;
    let synthesised;
    let specs = match requests {
        Some(given) => &given[..given.len().min(MAX_REQUESTS)],
        None => {
            synthesised = RequestGenerator::new(&config).mixed(SYNTHESISED_REQUESTS, SYNTHESIS_SEED);
            &synthesised[..]
        }
    };
    let corpus = Corpus::new(&resolver, specs)?;
    progress(0.0);

    let directory = PrivateDir::new()?;
    let config_path = directory.path().join("config.json");
    write_private(&config_path, served).map_err(setup("cannot write the configuration"))?;
    let store = ConfigStore::open(&config_path, settings.options.clone(), FileCheck::Enforce)
        .map_err(|e| ServerBenchError::Setup(e.report()))?;

    let servers = runtime("bench-servers")?;
    let clients = runtime("bench-client")?;
    let calls = Arc::new(AtomicU64::new(0));
    let mut cache = CacheConfig::default();
    cache.max_entries = cache.max_entries.max(corpus.credentials.len());
    let broker =
        Broker::new(CredentialCache::new(BenchSource { calls: calls.clone() }, cache), AssumeRoleSettings::default())
            .map_err(|e| ServerBenchError::Setup(e.to_string()))?;
    let mut options = ServerOptions::default();
    options.allowed_uids.push(nix::unistd::getuid().as_raw());
    options.watch_interval = None;
    let header_timeout = options.header_timeout;
    let token = match settings.transport {
        Transport::Tcp => Some(BearerToken::new(TOKEN).map_err(ServerBenchError::Setup)?),
        Transport::Unix => None,
    };
    let server = Server::new(Arc::new(store), broker, token, options);

    let (stop, stopped) = oneshot::channel::<()>();
    let (real, bare, bare_listener, running) = servers.block_on(async {
        let (real, listener) = bind(settings.transport, &directory.path().join("server.sock")).await?;
        let (bare, bare_listener) = bind(settings.transport, &directory.path().join("bare.sock")).await?;
        let running = tokio::spawn(async move {
            server
                .run(vec![listener], async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok::<_, ServerBenchError>((real, bare, bare_listener, running))
    })?;

    let outcome = clients.block_on(async {
        let verified = verify(&real, &corpus).await?;
        let bare_body = Bytes::from(fixed_body(verified.answer_bytes));
        servers.spawn(serve_bare(bare_listener, bare_body.clone(), header_timeout));
        let workloads = Workloads {
            resolve: Workload::new(&real, "/v1/resolve", corpus.resolve_bodies(), Answers::Each(verified.resolve)),
            bare: Workload::new(&bare, "/v1/resolve", corpus.resolve_bodies(), Answers::Fixed(bare_body)),
            credentials: (!corpus.credentials.is_empty()).then(|| {
                Workload::new(&real, "/v1/credentials", corpus.credential_bodies(), Answers::Each(verified.credentials))
            }),
        };
        let calls_after_verification = calls.load(Ordering::Relaxed);
        let mut errors = verified.errors;
        let measured = measure(workloads, settings, &mut errors, progress).await;
        let misses = calls.load(Ordering::Relaxed) - calls_after_verification;
        if misses > 0 {
            errors.add(format!("the credential cache asked its source {misses} time(s) after it was filled"));
        }
        Ok::<_, ServerBenchError>((verified.answer_bytes, measured, errors))
    });
    let _ = stop.send(());
    let _ = servers.block_on(async { tokio::time::timeout(Duration::from_secs(5), running).await });
    servers.shutdown_timeout(Duration::ZERO);
    clients.shutdown_timeout(Duration::ZERO);
    let (answer_bytes, measured, errors) = outcome?;

    Ok(ServerBenchReport {
        transport: settings.transport.as_str(),
        requests: specs.len(),
        requests_synthesised: requests.is_none(),
        credential_requests: corpus.credentials.len(),
        clients: settings.clients,
        rounds: measured.rounds,
        answer_bytes,
        server_p50_ns: measured.server_p50,
        server_p99_ns: measured.server_p99,
        baseline_p50_ns: measured.baseline_p50,
        baseline_p99_ns: measured.baseline_p99,
        latency_ratio: measured.latency_ratio,
        server_rps: measured.server_rps,
        baseline_rps: measured.baseline_rps,
        throughput_ratio: measured.throughput_ratio,
        cpu_ratio: measured.cpu_ratio,
        credentials_hit_p50_ns: measured.credentials.map(|c| c.0),
        credentials_hit_p99_ns: measured.credentials.map(|c| c.1),
        credentials_ratio: measured.credentials.map(|c| c.2),
        errors: errors.count,
        error_examples: errors.examples,
    })
}

/// A runtime as `serve` builds it (multi-threaded, a worker per core), its threads named `name` so
/// that a profile tells the servers from the client.
fn runtime(name: &str) -> Result<tokio::runtime::Runtime, ServerBenchError> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(setup("cannot start an async runtime"))
}

/// What every answer of the corpus must say, and the request bodies.
struct Corpus {
    /// Per request: its body and the in-process decision.
    resolve: Vec<(Bytes, Expected)>,
    /// The requests a mapping decides, with their decision.
    credentials: Vec<(Bytes, Expected)>,
}

/// A decision as the server's JSON gives it.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    decision: &'static str,
    mapping_index: Option<usize>,
    role: Option<String>,
}

impl Expected {
    fn of(resolution: &Resolution<'_>) -> Expected {
        Expected {
            decision: resolution.decision(),
            mapping_index: resolution.mapping_index(),
            role: resolution.role().map(|r| r.as_str().to_owned()),
        }
    }

    /// Whether the JSON `resolution` (the object with `decision`, `mapping_index` and `role`) says this.
    fn matches(&self, resolution: &Value) -> bool {
        resolution["decision"] == self.decision
            && resolution["mapping_index"].as_u64().map(|i| i as usize) == self.mapping_index
            && resolution["role"].as_str() == self.role.as_deref()
    }
}

impl Corpus {
    fn new(resolver: &Resolver, specs: &[RequestSpec]) -> Result<Corpus, BenchError> {
        if specs.is_empty() {
            return Err(BenchError::NoRequests);
        }
        let mut corpus = Corpus { resolve: Vec::with_capacity(specs.len()), credentials: Vec::new() };
        for (i, spec) in specs.iter().enumerate() {
            let request: Request<'_> = spec.request().map_err(|error| BenchError::Request {
                number: i + 1,
                path: spec.path.clone().unwrap_or_default(),
                error,
            })?;
            let expected = Expected::of(&resolver.resolve(&request));
            let body = Bytes::from(serde_json::to_vec(spec).unwrap_or_default());
            if expected.mapping_index.is_some() {
                corpus.credentials.push((body.clone(), expected.clone()));
            }
            corpus.resolve.push((body, expected));
        }
        Ok(corpus)
    }

    fn resolve_bodies(&self) -> Arc<[Bytes]> {
        self.resolve.iter().map(|(body, _)| body.clone()).collect()
    }

    fn credential_bodies(&self) -> Arc<[Bytes]> {
        self.credentials.iter().map(|(body, _)| body.clone()).collect()
    }
}

/// Errors counted, the first few described.
#[derive(Debug, Default)]
struct Errors {
    count: usize,
    examples: Vec<String>,
}

impl Errors {
    fn add(&mut self, description: String) {
        self.count += 1;
        if self.examples.len() < ERROR_EXAMPLES {
            self.examples.push(description);
        }
    }

    fn extend(&mut self, other: Errors) {
        self.count += other.count;
        let room = ERROR_EXAMPLES.saturating_sub(self.examples.len());
        self.examples.extend(other.examples.into_iter().take(room));
    }
}

/// The credential source of the bench: answers at once, with credentials that name the role in their
/// access key ID (so that the answer can be checked) and expire in 12 hours (so that no refresh starts
/// during a run). Counts its calls, so that the bench can tell every timed request was a cache hit.
struct BenchSource {
    calls: Arc<AtomicU64>,
}

impl CredentialSource for BenchSource {
    fn fetch(&self, request: &CredentialRequest<'_>) -> impl Future<Output = Result<Credentials, SourceError>> + Send {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let role = request.role_arn().map(|r| r.as_str());
        let token = "F".repeat(SESSION_TOKEN_BYTES);
        let expires = SystemTime::now() + Duration::from_secs(12 * 3600);
        std::future::ready(Ok(Credentials::new(
            access_key_id(role),
            "bench-secret-access-key",
            Some(token),
            Some(expires),
        )))
    }
}

/// `ASIA` and 16 letters and digits that follow from the role ARN (`None`: the base credentials).
fn access_key_id(role: Option<&str>) -> String {
    // FNV-1a: stable across runs and builds, unlike the standard library's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in role.unwrap_or("base").bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    const DIGITS: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut key = String::from("ASIA");
    for i in 0..16 {
        key.push(char::from(DIGITS[((hash >> ((i * 4) % 60)) & 31) as usize]));
    }
    key
}

/// A directory only this process's user can enter, removed with everything in it on drop.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn new() -> Result<PrivateDir, ServerBenchError> {
        use std::os::unix::fs::DirBuilderExt;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("emrfs-rolemap-bench-{}-{n}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&path).map_err(|e| {
            ServerBenchError::Setup(format!("cannot create `{}`: {e}", Escaped(&path.to_string_lossy())))
        })?;
        Ok(PrivateDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?.write_all(bytes)
}

/// Where a client connects.
#[derive(Debug, Clone)]
enum Address {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

/// A listener of the real server (the [`Listener`]) or of the bare one (the same socket, unwrapped),
/// and where to reach it.
async fn bind(transport: Transport, socket: &Path) -> Result<(Address, Listener), ServerBenchError> {
    match transport {
        Transport::Tcp => {
            let listener =
                tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.map_err(setup("cannot listen on 127.0.0.1"))?;
            let address = listener.local_addr().map_err(setup("cannot listen on 127.0.0.1"))?;
            Ok((Address::Tcp(address), Listener::Tcp(listener)))
        }
        Transport::Unix => {
            let listener = Listener::bind_unix(socket, 0o600, FileCheck::Enforce)
                .await
                .map_err(setup("cannot listen on a Unix socket"))?;
            Ok((Address::Unix(socket.to_owned()), listener))
        }
    }
}

/// The bare server: for each connection, hyper with the real server's HTTP settings (its header
/// timeout and timer), a service that reads the body and answers `body` as JSON, and nothing else.
async fn serve_bare(listener: Listener, body: Bytes, header_timeout: Duration) {
    loop {
        match &listener {
            Listener::Tcp(l) => match l.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(bare_connection(stream, body.clone(), header_timeout));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Listener::Unix(l, _) => match l.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(bare_connection(stream, body.clone(), header_timeout));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

async fn bare_connection<I>(io: I, body: Bytes, header_timeout: Duration)
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let service = service_fn(move |request: HttpRequest<Incoming>| {
        let body = body.clone();
        async move {
            let _ = request.into_body().collect().await;
            let mut response = Response::new(Full::new(body));
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok::<_, Infallible>(response)
        }
    });
    let _ = server_http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// A JSON object of exactly `bytes` bytes (at least the 11 of `{"pad":""}` and a newline), ending
/// with a newline as the real server's answers do.
fn fixed_body(bytes: usize) -> Vec<u8> {
    let padding = bytes.saturating_sub(11);
    let mut body = Vec::with_capacity(bytes.max(11));
    body.extend_from_slice(b"{\"pad\":\"");
    body.resize(body.len() + padding, b'x');
    body.extend_from_slice(b"\"}\n");
    body
}

/// One keep-alive client connection.
struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    authorization: Option<HeaderValue>,
}

impl Connection {
    async fn open(address: &Address) -> Result<Connection, String> {
        let (sender, authorization) = match address {
            Address::Tcp(address) => {
                let stream = tokio::net::TcpStream::connect(address).await.map_err(|e| e.to_string())?;
                let _ = stream.set_nodelay(true);
                (handshake(stream).await?, HeaderValue::from_str(&format!("Bearer {TOKEN}")).ok())
            }
            Address::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path).await.map_err(|e| e.to_string())?;
                (handshake(stream).await?, None)
            }
        };
        Ok(Connection { sender, authorization })
    }

    /// Sends one POST and returns the status and the whole body.
    async fn post(&mut self, path: &'static str, body: Bytes) -> Result<(StatusCode, Bytes), String> {
        let mut request = HttpRequest::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = hyper::Uri::from_static(path);
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(authorization) = &self.authorization {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let response = self.sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((status, body))
    }
}

async fn handshake<I>(io: I) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String>
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

/// The real server's verified answers.
struct Verified {
    resolve: Arc<[Bytes]>,
    credentials: Arc<[Bytes]>,
    /// The mean length of the resolve answers.
    answer_bytes: usize,
    errors: Errors,
}

/// Asks the real server every request once per endpoint, checks each decision against the in-process
/// resolver's (and each credential's access key against the decided role's), and keeps the answers.
async fn verify(address: &Address, corpus: &Corpus) -> Result<Verified, ServerBenchError> {
    let mut connection = Connection::open(address).await.map_err(ServerBenchError::Setup)?;
    let mut errors = Errors::default();
    let mut ask = async |path: &'static str, requests: &[(Bytes, Expected)], errors: &mut Errors| {
        let mut answers = Vec::with_capacity(requests.len());
        for (i, (body, expected)) in requests.iter().enumerate() {
            let answer = match connection.post(path, body.clone()).await {
                Ok((StatusCode::OK, answer)) => answer,
                Ok((status, answer)) => {
                    errors.add(format!("{path} request {}: status {status}: {}", i + 1, text(&answer)));
                    answers.push(answer);
                    continue;
                }
                Err(e) => return Err(ServerBenchError::Setup(format!("the server did not answer {path}: {e}"))),
            };
            let json: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
            let right = match path {
                "/v1/resolve" => expected.matches(&json),
                _ => {
                    expected.matches(&json["resolution"])
                        && json["Credentials"]["AccessKeyId"] == access_key_id(expected.role.as_deref())
                }
            };
            if !right {
                errors.add(format!(
                    "{path} request {}: {} answered {}, the in-process resolver decided {} (mapping {:?}, role {:?})",
                    i + 1,
                    text(body),
                    text(&answer),
                    expected.decision,
                    expected.mapping_index,
                    expected.role.as_deref().unwrap_or("none"),
                ));
            }
            answers.push(answer);
        }
        Ok(answers)
    };
    let resolve = ask("/v1/resolve", &corpus.resolve, &mut errors).await?;
    let credentials = ask("/v1/credentials", &corpus.credentials, &mut errors).await?;
    let answer_bytes = resolve.iter().map(Bytes::len).sum::<usize>() / resolve.len().max(1);
    Ok(Verified { resolve: resolve.into(), credentials: credentials.into(), answer_bytes, errors })
}

/// Text from an answer or a request for an error message: escaped, at most 300 bytes.
fn text(bytes: &[u8]) -> String {
    let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]);
    format!("{}{}", Escaped(shown.trim_end()), if bytes.len() > 300 { "…" } else { "" })
}

/// What a workload's answers must be.
#[derive(Clone)]
enum Answers {
    /// The verified answer of each request.
    Each(Arc<[Bytes]>),
    /// One body for every request (the bare server).
    Fixed(Bytes),
}

/// Requests to one endpoint of one server, and the answers they must get.
#[derive(Clone)]
struct Workload {
    address: Address,
    path: &'static str,
    bodies: Arc<[Bytes]>,
    answers: Answers,
}

impl Workload {
    fn new(address: &Address, path: &'static str, bodies: Arc<[Bytes]>, answers: Answers) -> Workload {
        Workload { address: address.clone(), path, bodies, answers }
    }

    fn expected(&self, i: usize) -> &Bytes {
        match &self.answers {
            Answers::Each(answers) => &answers[i],
            Answers::Fixed(body) => body,
        }
    }
}

struct Workloads {
    resolve: Workload,
    bare: Workload,
    credentials: Option<Workload>,
}

/// One slot of one workload: per-request latencies, the answer rate, and the process's CPU time.
struct Slot {
    latencies_ns: Vec<u64>,
    answered: usize,
    elapsed: Duration,
    /// CPU time of the whole process (servers and client) during the slot.
    cpu: Duration,
    errors: Errors,
}

impl Slot {
    fn percentile(&mut self, p: usize) -> f64 {
        self.latencies_ns.sort_unstable();
        let n = self.latencies_ns.len();
        if n == 0 {
            return f64::NAN;
        }
        self.latencies_ns[((n - 1) * p).div_ceil(100)] as f64
    }

    fn per_second(&self) -> f64 {
        self.answered as f64 / self.elapsed.as_secs_f64()
    }

    fn cpu_per_answer(&self) -> f64 {
        self.cpu.as_secs_f64() / self.answered as f64
    }
}

/// The CPU time this process has used, its threads together.
fn cpu_time() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    let Ok(usage) = getrusage(UsageWho::RUSAGE_SELF) else { return Duration::ZERO };
    let micros =
        |t: nix::sys::time::TimeVal| Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64);
    micros(usage.user_time()) + micros(usage.system_time())
}

/// A workload and its keep-alive connections, opened when a slot first needs them and kept for the
/// slots after it, as a proxy keeps its connections.
struct Pool {
    workload: Workload,
    connections: Vec<Connection>,
}

impl Pool {
    fn new(workload: Workload) -> Pool {
        Pool { workload, connections: Vec::new() }
    }

    /// Runs `clients` clients for `duration`, each on its own connection and starting at its own place
    /// in the corpus; the clock starts once every connection is open.
    async fn slot(&mut self, clients: usize, duration: Duration) -> Slot {
        let mut errors = Errors::default();
        while self.connections.len() < clients {
            match Connection::open(&self.workload.address).await {
                Ok(connection) => self.connections.push(connection),
                Err(e) => {
                    errors.add(format!("cannot connect: {e}"));
                    break;
                }
            }
        }
        let count = self.workload.bodies.len();
        let cpu = cpu_time();
        let started = Instant::now();
        let deadline = started + duration;
        let tasks: Vec<_> = self
            .connections
            .drain(..clients.min(self.connections.len()))
            .enumerate()
            .map(|(c, connection)| {
                let workload = self.workload.clone();
                tokio::spawn(client(workload, connection, c * count / clients, deadline))
            })
            .collect();
        let mut result = Slot { latencies_ns: Vec::new(), answered: 0, elapsed: duration, cpu, errors };
        let mut last = started;
        for task in tasks {
            match task.await {
                Ok(ran) => {
                    result.answered += ran.latencies_ns.len();
                    result.latencies_ns.extend(ran.latencies_ns);
                    result.errors.extend(ran.errors);
                    last = last.max(ran.ended);
                    self.connections.extend(ran.connection);
                }
                Err(e) => result.errors.add(format!("a client failed: {e}")),
            }
        }
        result.elapsed = last - started;
        result.cpu = cpu_time().saturating_sub(cpu);
        result
    }
}

/// What one client did in a slot, and its connection (unless it broke and could not be opened again).
struct Ran {
    latencies_ns: Vec<u64>,
    errors: Errors,
    ended: Instant,
    connection: Option<Connection>,
}

/// Sends the workload's requests in turn from `first` until `deadline`, each answer checked.
async fn client(workload: Workload, mut connection: Connection, first: usize, deadline: Instant) -> Ran {
    let mut ran =
        Ran { latencies_ns: Vec::with_capacity(4096), errors: Errors::default(), ended: deadline, connection: None };
    let count = workload.bodies.len();
    let mut i = first % count;
    while Instant::now() < deadline {
        let sent = Instant::now();
        let answer = connection.post(workload.path, workload.bodies[i].clone()).await;
        let took = sent.elapsed();
        match answer {
            Ok((StatusCode::OK, body)) if body == workload.expected(i) => ran.latencies_ns.push(took.as_nanos() as u64),
            Ok((status, body)) => ran.errors.add(format!(
                "{} request {}: status {status}, and not the verified answer: {}",
                workload.path,
                i + 1,
                text(&body)
            )),
            Err(e) => {
                ran.errors.add(format!("{} request {}: {e}", workload.path, i + 1));
                match Connection::open(&workload.address).await {
                    Ok(again) => connection = again,
                    Err(_) => {
                        ran.ended = Instant::now();
                        return ran;
                    }
                }
            }
        }
        i = (i + 1) % count;
    }
    ran.ended = Instant::now();
    ran.connection = Some(connection);
    ran
}

/// The figures of the timed rounds.
struct Measured {
    rounds: usize,
    server_p50: f64,
    server_p99: f64,
    baseline_p50: f64,
    baseline_p99: f64,
    latency_ratio: f64,
    server_rps: f64,
    baseline_rps: f64,
    throughput_ratio: f64,
    cpu_ratio: f64,
    /// Credentials hit p50, p99, and ratio to the resolve p50.
    credentials: Option<(f64, f64, f64)>,
}

/// The rounds: in each, one slot per workload with one client (real resolve, bare, real credentials)
/// and one per server with `clients` clients, in an order that rotates from round to round. As many
/// rounds as slots of [`SLOT`] fit in the time, and at least [`MIN_ROUNDS`].
async fn measure(
    workloads: Workloads,
    settings: &ServerBenchSettings,
    errors: &mut Errors,
    progress: &mut dyn FnMut(f64),
) -> Measured {
    #[derive(Clone, Copy)]
    enum Kind {
        Latency(usize),
        Throughput(usize),
    }
    let mut pools = vec![Pool::new(workloads.resolve), Pool::new(workloads.bare)];
    pools.extend(workloads.credentials.map(Pool::new));
    let mut kinds: Vec<Kind> = (0..pools.len()).map(Kind::Latency).collect();
    kinds.extend([Kind::Throughput(0), Kind::Throughput(1)]);
    let seconds = settings.seconds.max(0.0);
    let rounds = ((seconds / (kinds.len() as f64 * SLOT.as_secs_f64())) as usize).max(MIN_ROUNDS);
    let slot_time = Duration::from_secs_f64(seconds / (rounds * kinds.len()) as f64);

    // Per round: (p50, p99) of each pool with one client; (answers per second, CPU per answer) of each
    // server with `clients` clients.
    let mut latency: Vec<Vec<(f64, f64)>> = vec![Vec::new(); pools.len()];
    let mut throughput: Vec<Vec<(f64, f64)>> = vec![Vec::new(); 2];
    for round in 0..rounds {
        for k in 0..kinds.len() {
            match kinds[(round + k) % kinds.len()] {
                Kind::Latency(p) => {
                    let mut slot = pools[p].slot(1, slot_time).await;
                    latency[p].push((slot.percentile(50), slot.percentile(99)));
                    errors.extend(slot.errors);
                }
                Kind::Throughput(p) => {
                    let slot = pools[p].slot(settings.clients, slot_time).await;
                    throughput[p].push((slot.per_second(), slot.cpu_per_answer()));
                    errors.extend(slot.errors);
                }
            }
            progress((round * kinds.len() + k + 1) as f64 / (rounds * kinds.len()) as f64);
        }
    }

    let middle = |values: Vec<f64>| median(&mut values.into_iter().filter(|v| v.is_finite()).collect::<Vec<_>>());
    let column = |figures: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| middle(figures.iter().map(pick).collect());
    let ratios = |a: &[(f64, f64)], b: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| {
        middle(a.iter().zip(b).map(|(a, b)| pick(a) / pick(b)).collect())
    };
    Measured {
        rounds,
        server_p50: column(&latency[0], |f| f.0),
        server_p99: column(&latency[0], |f| f.1),
        baseline_p50: column(&latency[1], |f| f.0),
        baseline_p99: column(&latency[1], |f| f.1),
        latency_ratio: ratios(&latency[0], &latency[1], |f| f.0),
        server_rps: column(&throughput[0], |f| f.0),
        baseline_rps: column(&throughput[1], |f| f.0),
        throughput_ratio: ratios(&throughput[0], &throughput[1], |f| f.0),
        cpu_ratio: ratios(&throughput[0], &throughput[1], |f| f.1),
        credentials: latency.get(2).map(|credentials| {
            (column(credentials, |f| f.0), column(credentials, |f| f.1), ratios(credentials, &latency[0], |f| f.0))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_body_has_the_length_asked_for_and_is_json() {
        for bytes in [11, 12, 200, 1_000] {
            let body = fixed_body(bytes);
            assert_eq!(body.len(), bytes);
            let _: Value = serde_json::from_slice(&body).unwrap();
        }
        assert_eq!(fixed_body(3).len(), 11, "never shorter than the empty object");
    }

    #[test]
    fn access_keys_name_their_role_stably() {
        let a = access_key_id(Some("arn:aws:iam::123456789012:role/a"));
        assert_eq!(a, access_key_id(Some("arn:aws:iam::123456789012:role/a")));
        assert_ne!(a, access_key_id(Some("arn:aws:iam::123456789012:role/b")));
        assert_ne!(a, access_key_id(None));
        assert!(a.starts_with("ASIA") && a.len() == 20 && a.bytes().all(|b| b.is_ascii_alphanumeric()), "{a}");
    }

    #[test]
    fn a_decision_matches_only_its_own_json() {
        let expected = Expected { decision: "mapping", mapping_index: Some(2), role: Some("arn:r".into()) };
        assert!(expected.matches(&serde_json::json!({"decision": "mapping", "mapping_index": 2, "role": "arn:r"})));
        for wrong in [
            serde_json::json!({"decision": "mapping", "mapping_index": 1, "role": "arn:r"}),
            serde_json::json!({"decision": "mapping", "mapping_index": 2, "role": "arn:s"}),
            serde_json::json!({"decision": "fallback", "mapping_index": null, "role": null}),
            Value::Null,
        ] {
            assert!(!expected.matches(&wrong), "{wrong}");
        }
        let fallback = Expected { decision: "fallback", mapping_index: None, role: None };
        assert!(fallback.matches(&serde_json::json!({"decision": "fallback", "mapping_index": null, "role": null})));
    }

    /// The timed rounds check every answer byte for byte: the bare server's fixed body passes, any
    /// other body is an error.
    #[test]
    fn timed_answers_that_differ_from_the_verified_ones_are_errors() {
        let directory = PrivateDir::new().unwrap();
        let socket = directory.path().join("bare.sock");
        let runtime = runtime("bench-test").unwrap();
        runtime.block_on(async {
            let (address, listener) = bind(Transport::Unix, &socket).await.unwrap();
            tokio::spawn(serve_bare(listener, Bytes::from_static(b"{\"a\":1}\n"), Duration::from_secs(10)));
            let bodies: Arc<[Bytes]> = vec![Bytes::from_static(b"{}"); 3].into();
            for (answer, wrong) in [(&b"{\"a\":1}\n"[..], false), (&b"{\"a\":2}\n"[..], true)] {
                let answers = Answers::Fixed(Bytes::copy_from_slice(answer));
                let workload = Workload::new(&address, "/v1/resolve", bodies.clone(), answers);
                let measured = Pool::new(workload).slot(2, Duration::from_millis(50)).await;
                if wrong {
                    assert_eq!(measured.answered, 0);
                    assert!(measured.errors.count > 0);
                    assert!(measured.errors.examples[0].contains("not the verified answer"), "{:?}", measured.errors);
                } else {
                    assert!(measured.answered > 0);
                    assert_eq!(measured.errors.count, 0, "{:?}", measured.errors);
                }
            }
        });
        runtime.shutdown_timeout(Duration::ZERO);
    }
}
