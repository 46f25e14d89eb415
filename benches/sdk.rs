//! What a proxy pays per S3 request to sign with the decided role, in the two ways the README shows, beside
//! the SDK's own cost with fixed credentials (the baseline): a whole `GetObject` (serialisation, endpoint,
//! identity, SigV4 signing, the answer parsed) against an in-process HTTP stub, so no network is
//! measured. Run with `cargo bench --bench sdk`.
//!
//! - `static_credentials`: one client with fixed credentials; the SDK alone.
//! - `config_override`: one shared client, and per request `Broker::provider` passed with
//!   `customize().config_override(...)`, with the SDK's identity cache off (the broker's cache answers
//!   every call, as in `examples/s3_proxy.rs`) or on (its default: one cache partition per provider).
//! - `client_per_principal_role`: one client per (user, decided mapping), built ahead and found in a map
//!   per request (each with its provider and the SDK's identity cache).
//! - `build/*`: the one-time costs: a client, a provider, the override's config builder.
//!
//! Everything runs on the bench's thread (a current-thread runtime, the stub in process), and each
//! figure is that thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time: on the shared machine,
//! other jobs' compiles took the cores for a third of the wall time and moved wall-time medians by
//! ±40 % from run to run, while they do not enter a thread's CPU time.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::{BehaviorVersion, IdentityCache, Region, SharedHttpClient};
use criterion::{Criterion, criterion_group, criterion_main};
use emrfs_rolemap::credentials::{
    AssumeRoleSettings, Broker, CacheConfig, CredentialCache, CredentialRequest, CredentialSource, Credentials,
    SourceError,
};
use emrfs_rolemap::{ResolverBuilder, S3Path, SecurityConfiguration};

const CONFIG: &str = r#"{"RoleMappings": [
  {"Role": "arn:aws:iam::123456789012:role/pii", "IdentifierType": "Prefix", "Identifiers": ["s3://lake/pii/"]},
  {"Role": "arn:aws:iam::123456789012:role/analysts", "IdentifierType": "Group", "Identifiers": ["analysts"]}
]}"#;

/// Times `iters` runs of `f` in this thread's CPU time.
fn cpu_time<T>(iters: u64, mut f: impl FnMut() -> T) -> Duration {
    let now = || {
        let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).expect("a thread CPU clock");
        Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
    };
    let start = now();
    for _ in 0..iters {
        black_box(f());
    }
    now() - start
}

struct FixedSource;

impl CredentialSource for FixedSource {
    async fn fetch(&self, _: &CredentialRequest<'_>) -> Result<Credentials, SourceError> {
        let expiration = SystemTime::now() + Duration::from_secs(3600);
        Ok(Credentials::new("ASIAFIXED", "secret", Some("token".into()), Some(expiration)))
    }
}

/// An HTTP client that answers every request with a small object, in process.
fn stub() -> SharedHttpClient {
    aws_smithy_http_client::test_util::infallible_client_fn(|_| {
        http::Response::builder().status(200).header("content-length", "5").body("hello").expect("a response")
    })
}

fn config(http: &SharedHttpClient) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url("http://s3.stub")
        .force_path_style(true)
        .http_client(http.clone())
}

fn sdk(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let resolver =
        ResolverBuilder::new().build(&SecurityConfiguration::from_json(CONFIG).expect("valid")).expect("compiles");
    let cache = CredentialCache::new(FixedSource, CacheConfig::default());
    let broker = Broker::new(cache, AssumeRoleSettings::default()).expect("valid settings");
    let alice = resolver.prepare(Some("alice"), &["staff", "analysts"]);
    let path = S3Path::parse("s3://lake/curated/t/part-0").expect("a path");
    let http = stub();
    let get = |client: &aws_sdk_s3::Client| client.get_object().bucket(path.bucket()).key(path.key());

    let fixed = aws_credential_types::Credentials::new("ASIAFIXED", "secret", Some("token".into()), None, "bench");
    let static_client = aws_sdk_s3::Client::from_conf(config(&http).credentials_provider(fixed).build());
    let shared_no_cache =
        aws_sdk_s3::Client::from_conf(config(&http).identity_cache(IdentityCache::no_cache()).build());
    let shared_lazy_cache = aws_sdk_s3::Client::from_conf(config(&http).build());
    // Built ahead: the client of alice's decided mapping, as a proxy would keep it after her first request.
    let mut per_role: HashMap<(String, Option<usize>), aws_sdk_s3::Client> = HashMap::new();
    let provider = broker.provider(&alice, Some(&path)).expect("a mapping");
    let key = (alice.user().unwrap_or_default().to_owned(), alice.resolve(Some(&path)).mapping_index());
    per_role.insert(key, aws_sdk_s3::Client::from_conf(config(&http).credentials_provider(provider).build()));
    // Fill the broker's cache.
    runtime.block_on(broker.access(&alice, Some(&path))).expect("credentials");

    let mut group = c.benchmark_group("sdk");
    group.bench_function("get_object/static_credentials", |b| {
        b.iter_custom(|n| cpu_time(n, || runtime.block_on(get(&static_client).send()).expect("answered")));
    });
    for (name, client) in [("no_identity_cache", &shared_no_cache), ("lazy_identity_cache", &shared_lazy_cache)] {
        group.bench_function(format!("get_object/config_override/{name}"), |b| {
            b.iter_custom(|n| {
                cpu_time(n, || {
                    let provider = broker.provider(&alice, Some(&path)).expect("a mapping");
                    let credentials = aws_sdk_s3::Config::builder().credentials_provider(provider);
                    runtime.block_on(get(client).customize().config_override(credentials).send()).expect("answered")
                })
            });
        });
    }
    group.bench_function("get_object/client_per_principal_role", |b| {
        b.iter_custom(|n| {
            cpu_time(n, || {
                let key = (alice.user().unwrap_or_default().to_owned(), alice.resolve(Some(&path)).mapping_index());
                let client = per_role.get(&key).expect("built ahead");
                runtime.block_on(get(client).send()).expect("answered")
            })
        });
    });
    group.bench_function("build/client", |b| {
        b.iter_custom(|n| {
            cpu_time(n, || {
                let provider = broker.provider(&alice, Some(&path)).expect("a mapping");
                aws_sdk_s3::Client::from_conf(config(&http).credentials_provider(provider).build())
            })
        });
    });
    group.bench_function("build/provider", |b| {
        b.iter_custom(|n| cpu_time(n, || broker.provider(black_box(&alice), Some(&path))));
    });
    group.bench_function("build/override_config", |b| {
        b.iter_custom(|n| {
            cpu_time(n, || {
                let provider = broker.provider(&alice, Some(&path)).expect("a mapping");
                aws_sdk_s3::Config::builder().credentials_provider(provider)
            })
        });
    });
    group.finish();
}

criterion_group!(benches, sdk);
criterion_main!(benches);
