//! The broker as a credentials provider of the AWS SDK for Rust (`Broker::provider`,
//! `Broker::trusted_provider`): the decided role's credentials through the broker's cache, a fallback
//! refused unless the caller is trusted, failures that never let a chain fall through, and an S3 client
//! that signs with the role (against an in-process HTTP stub: no network).

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::provider::error::CredentialsError;
use emrfs_rolemap::credentials::{
    AssumeRoleSettings, Broker, CacheConfig, Clock, CredentialCache, CredentialError, CredentialRequest,
    CredentialSource, Credentials, SourceError,
};
use emrfs_rolemap::{Resolver, ResolverBuilder, S3Path, SecurityConfiguration};
use support::clock::ManualClock;

const LIFETIME: Duration = Duration::from_secs(3600);

fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000)
}

/// Answers `KEY-<role>-<session>-<n>` (the n-th call), valid for `LIFETIME` from the clock's now, or
/// refuses every AssumeRole once told to.
struct Source {
    clock: Arc<ManualClock>,
    calls: AtomicUsize,
    refuse: AtomicBool,
}

impl CredentialSource for Source {
    async fn fetch(&self, request: &CredentialRequest<'_>) -> Result<Credentials, SourceError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let Some(role) = request.role_arn() else {
            return Ok(Credentials::new("AKIABASE", "base-secret", None, None));
        };
        if self.refuse.load(Ordering::SeqCst) {
            return Err(SourceError::access_denied(format!("AccessDenied: not authorized to assume `{role}`")));
        }
        let key = format!("KEY-{}-{}-{n}", role.name(), request.session_name().unwrap_or_default());
        Ok(Credentials::new(key, "role-secret", Some("role-token".into()), Some(self.clock.now() + LIFETIME)))
    }
}

const CONFIG: &str = r#"{"RoleMappings": [
  {"Role": "arn:aws:iam::123456789012:role/pii", "IdentifierType": "Prefix", "Identifiers": ["s3://lake/pii/"]},
  {"Role": "arn:aws:iam::123456789012:role/analysts", "IdentifierType": "Group", "Identifiers": ["analysts"]},
  {"Role": "arn:aws:iam::123456789012:role/lake", "IdentifierType": "Prefix", "Identifiers": ["s3://lake/"]}
]}"#;

fn setup() -> (Resolver, Arc<ManualClock>, Arc<Source>, Broker<Arc<Source>>) {
    let resolver = ResolverBuilder::new().build(&SecurityConfiguration::from_json(CONFIG).unwrap()).unwrap();
    let clock = Arc::new(ManualClock::new(start()));
    let source =
        Arc::new(Source { clock: Arc::clone(&clock), calls: AtomicUsize::new(0), refuse: AtomicBool::new(false) });
    let cache = CredentialCache::with_clock(Arc::clone(&source), CacheConfig::default(), clock.clone());
    let broker = Broker::new(cache, AssumeRoleSettings::default()).unwrap();
    (resolver, clock, source, broker)
}

fn path(text: &str) -> S3Path<'_> {
    S3Path::parse(text).unwrap()
}

#[tokio::test]
async fn the_provider_serves_the_decided_role_through_the_broker_cache() {
    let (resolver, _, source, broker) = setup();
    let alice = resolver.prepare(Some("alice"), &["staff"]);
    let provider = broker.provider(&alice, Some(&path("s3://lake/curated/t"))).unwrap();
    let first = provider.provide_credentials().await.unwrap();
    assert_eq!(first.access_key_id(), "KEY-lake-emrfs-alice-1");
    assert_eq!(first.secret_access_key(), "role-secret");
    assert_eq!(first.session_token(), Some("role-token"));
    assert_eq!(first.expiry(), Some(start() + LIFETIME));
    for _ in 0..3 {
        assert_eq!(provider.provide_credentials().await.unwrap().access_key_id(), first.access_key_id());
    }
    // Another provider of the same decision shares the cache entry; another path decides another role.
    let again = broker.provider(&alice, Some(&path("s3://lake/raw/x"))).unwrap();
    assert_eq!(again.provide_credentials().await.unwrap().access_key_id(), first.access_key_id());
    let pii = broker.provider(&alice, Some(&path("s3://lake/pii/customers"))).unwrap();
    assert_eq!(pii.provide_credentials().await.unwrap().access_key_id(), "KEY-pii-emrfs-alice-2");
    assert_eq!(source.calls.load(Ordering::SeqCst), 2, "one source call per decision");
    let stats = broker.cache().stats();
    assert_eq!((stats.hits, stats.misses), (4, 2));

    // Secrets stay out of Debug; the decision and the user are there.
    let shown = format!("{provider:?}");
    assert!(shown.contains("alice") && shown.contains("role/lake"), "{shown}");
    assert!(!shown.contains("role-secret") && !shown.contains("role-token"), "{shown}");
}

#[tokio::test]
async fn the_provider_refreshes_through_the_cache_and_stops_when_a_refresh_is_refused() {
    let (resolver, clock, source, broker) = setup();
    let bob = resolver.prepare(Some("bob"), &["analysts"]);
    let provider = broker.provider(&bob, None).unwrap();
    assert_eq!(provider.provide_credentials().await.unwrap().access_key_id(), "KEY-analysts-emrfs-bob-1");

    // Past the expiry, the same provider gets the cache's new credentials.
    clock.advance(LIFETIME + Duration::from_secs(1));
    let renewed = provider.provide_credentials().await.unwrap();
    assert_eq!(renewed.access_key_id(), "KEY-analysts-emrfs-bob-2");
    assert_eq!(renewed.expiry(), Some(clock.now() + LIFETIME));

    // The role's trust is removed: the next fetch is refused, and so is the provider's call.
    source.refuse.store(true, Ordering::SeqCst);
    clock.advance(LIFETIME + Duration::from_secs(1));
    let error = provider.provide_credentials().await.unwrap_err();
    // A provider error (a chain stops there), never `CredentialsNotLoaded` (a chain would try the next
    // provider: a fall-through to other credentials).
    assert!(matches!(error, CredentialsError::ProviderError(_)), "{error:?}");
    let cause = std::error::Error::source(&error).and_then(|e| e.downcast_ref::<CredentialError>());
    match cause {
        Some(CredentialError::AssumeRole { mapping: 1, role, source }) => {
            assert_eq!(role, "arn:aws:iam::123456789012:role/analysts");
            assert_eq!(source.kind(), "access_denied");
        }
        other => panic!("not the broker's refusal: {other:?} ({error})"),
    }
}

#[tokio::test]
async fn a_fallback_is_refused_unless_the_caller_is_trusted() {
    let (resolver, _, source, broker) = setup();
    let carol = resolver.prepare(Some("carol"), &["staff"]);
    let elsewhere = path("s3://elsewhere/x");
    let refused = broker.provider(&carol, Some(&elsewhere)).unwrap_err();
    assert_eq!(refused, CredentialError::FallbackRefused);
    assert!(refused.source_error().is_none());
    assert!(refused.to_string().contains("may assume every mapped role"), "{refused}");
    assert_eq!(source.calls.load(Ordering::SeqCst), 0, "nothing was fetched");

    // The embedder trusts this caller with the base credentials: they serve the fallback, without
    // AssumeRole.
    let trusted = broker.trusted_provider(&carol, Some(&elsewhere));
    let base = trusted.provide_credentials().await.unwrap();
    assert_eq!((base.access_key_id(), base.session_token()), ("AKIABASE", None));

    // A trusted provider of a mapping decision is the same as the other.
    let lake = broker.trusted_provider(&carol, Some(&path("s3://lake/x")));
    assert_eq!(lake.provide_credentials().await.unwrap().access_key_id(), "KEY-lake-emrfs-carol-2");
}

/// The provider in the S3 client, as a proxy uses it: the request is signed with the decided role's
/// access key and session token. An in-process HTTP client answers; nothing leaves the process.
#[tokio::test]
async fn an_s3_client_signs_with_the_decided_role() {
    let (resolver, _, _, broker) = setup();
    let seen: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let recorded = Arc::clone(&seen);
    let http = aws_smithy_http_client::test_util::infallible_client_fn(move |request| {
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let uri = request.uri().to_string();
        recorded.lock().unwrap().push((uri, header("authorization"), header("x-amz-security-token")));
        http::Response::builder().status(200).body("hello").unwrap()
    });
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url("http://s3.stub")
            .force_path_style(true)
            .http_client(http)
            .build(),
    );
    let alice = resolver.prepare(Some("alice"), &["staff"]);
    for (location, key) in [("s3://lake/pii/a", "KEY-pii-emrfs-alice-1"), ("s3://lake/b", "KEY-lake-emrfs-alice-2")] {
        let path = path(location);
        let provider = broker.provider(&alice, Some(&path)).unwrap();
        let credentials = aws_sdk_s3::Config::builder().credentials_provider(provider);
        let request = s3.get_object().bucket(path.bucket()).key(path.key());
        let output = request.customize().config_override(credentials).send().await.unwrap();
        assert_eq!(output.body.collect().await.unwrap().into_bytes().as_ref(), b"hello");
        let (uri, authorization, token) = seen.lock().unwrap().pop().unwrap();
        assert_eq!(uri, format!("http://s3.stub/{}/{}?x-id=GetObject", path.bucket(), path.key()));
        assert!(authorization.starts_with(&format!("AWS4-HMAC-SHA256 Credential={key}/")), "{authorization}");
        assert_eq!(token, "role-token");
    }
}
