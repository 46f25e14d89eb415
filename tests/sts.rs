//! The STS source against the moto STS emulator, through the real AWS SDK: AssumeRole and the identity
//! it yields, base credentials for a fallback, the cache in front of STS, and what happens when STS is
//! gone. Needs `moto_server` (`bash scripts/install-moto.sh`); fails, never skips, without it.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_sts::config::{BehaviorVersion, Region};
use emrfs_rolemap::credentials::{
    AssumeRoleSettings, Broker, CacheConfig, CredentialCache, Credentials, StsSource, StsSourceConfig,
};
use emrfs_rolemap::{Resolver, ResolverBuilder, S3Path, SecurityConfiguration};
use support::clock::ManualClock;
use support::moto::{self, ACCOUNT, BASE_ACCESS_KEY_ID, BASE_SECRET_ACCESS_KEY, Moto, REGION};

const CONFIG: &str = r#"{"RoleMappings": [
  {"Role": "arn:aws:iam::123456789012:role/analysts", "IdentifierType": "User", "Identifiers": ["alice", "carol smith"]},
  {"Role": "arn:aws:iam::123456789012:role/lake-reader", "IdentifierType": "Prefix", "Identifiers": ["s3://lake/"]}
]}"#;
const ANALYSTS: &str = "arn:aws:iam::123456789012:role/analysts";

fn resolver() -> Resolver {
    ResolverBuilder::new().build(&SecurityConfiguration::from_json(CONFIG).unwrap()).unwrap()
}

/// The source configuration of every test: explicit region, endpoint and static base credentials,
/// tiny retry backoff.
fn sts_config(endpoint: &str) -> StsSourceConfig {
    let base = Credentials::new(BASE_ACCESS_KEY_ID, BASE_SECRET_ACCESS_KEY, None, None);
    let mut config = StsSourceConfig::new(REGION).with_credentials(base);
    config.endpoint_url = Some(endpoint.to_owned());
    config.initial_backoff = Duration::from_millis(10);
    config
}

async fn broker(config: StsSourceConfig, settings: AssumeRoleSettings) -> Broker<StsSource> {
    let source = StsSource::new(config).await.unwrap();
    Broker::new(CredentialCache::new(source, CacheConfig::default()), settings).unwrap()
}

/// The ARN that `GetCallerIdentity`, signed with `credentials`, reports.
async fn caller_arn(moto: &Moto, credentials: &Credentials) -> String {
    let signing = aws_sdk_sts::config::Credentials::new(
        credentials.access_key_id(),
        credentials.secret_access_key(),
        credentials.session_token().map(str::to_owned),
        None,
        "test",
    );
    let config = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(moto.endpoint())
        .credentials_provider(signing)
        .build();
    let identity = aws_sdk_sts::Client::from_conf(config).get_caller_identity().send().await.unwrap();
    identity.arn().unwrap_or_default().to_owned()
}

fn seconds_from_now(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::now()) {
        Ok(ahead) => ahead.as_secs() as i64,
        Err(behind) => -(behind.duration().as_secs() as i64),
    }
}

#[tokio::test]
async fn assume_role_yields_credentials_whose_identity_is_the_role_session_from_the_template() {
    let moto = Moto::start();
    let mut settings = AssumeRoleSettings::default();
    settings.duration_seconds = 900;
    let broker = broker(sts_config(&moto.endpoint()), settings).await;
    let resolver = resolver();
    let path = S3Path::parse("s3://lake/sales/part-0").unwrap();
    // "carol smith" is not a valid session name: the space becomes `_` and a hash of the original follows.
    for (user, session) in [("alice", "emrfs-alice".to_owned()), ("carol smith", String::new())] {
        let principal = resolver.prepare(Some(user), &[] as &[&str]);
        let access = broker.access(&principal, Some(&path)).await.unwrap();
        assert_eq!(access.resolution.mapping_index(), Some(0));
        let credentials = &access.credentials;
        assert!(credentials.access_key_id().starts_with("ASIA"), "{credentials:?}");
        assert!(credentials.session_token().is_some_and(|t| !t.is_empty()));
        let expires_in = seconds_from_now(credentials.expiration().unwrap());
        assert!((800..=1000).contains(&expires_in), "DurationSeconds 900 gives {expires_in} s");
        let arn = caller_arn(&moto, credentials).await;
        let prefix = format!("arn:aws:sts::{ACCOUNT}:assumed-role/analysts/");
        let name = arn.strip_prefix(&prefix).unwrap_or_else(|| panic!("{arn} is not a session of `analysts`"));
        if session.is_empty() {
            assert!(name.starts_with("emrfs-carol_smith-") && name.len() == "emrfs-carol_smith-".len() + 8, "{name}");
        } else {
            assert_eq!(name, session);
        }
    }
}

#[tokio::test]
async fn a_fallback_gets_the_configured_base_credentials_without_assume_role() {
    let moto = Moto::start();
    let broker = broker(sts_config(&moto.endpoint()), AssumeRoleSettings::default()).await;
    let principal = resolver().prepare(Some("bob"), &["staff"]);
    let access = broker.access(&principal, Some(&S3Path::parse("s3://other/x").unwrap())).await.unwrap();
    assert_eq!(access.resolution.decision(), "fallback");
    assert_eq!(access.credentials.access_key_id(), BASE_ACCESS_KEY_ID);
    assert_eq!(access.credentials.secret_access_key(), BASE_SECRET_ACCESS_KEY);
    assert_eq!((access.credentials.session_token(), access.credentials.expiration()), (None, None));
    assert!(moto.assumed_roles().is_empty(), "a fallback never calls AssumeRole");
    assert_eq!(caller_arn(&moto, &access.credentials).await, format!("arn:aws:sts::{ACCOUNT}:user/moto"));
}

#[tokio::test]
async fn the_cache_serves_the_second_request_without_calling_sts() {
    let moto = Moto::start();
    let broker = broker(sts_config(&moto.endpoint()), AssumeRoleSettings::default()).await;
    let principal = resolver().prepare(Some("bob"), &[] as &[&str]);
    let first_path = S3Path::parse("s3://lake/a").unwrap();
    let second_path = S3Path::parse("s3a://lake/b/c").unwrap();
    let first = broker.access(&principal, Some(&first_path)).await.unwrap();
    let second = broker.access(&principal, Some(&second_path)).await.unwrap();
    assert_eq!(first.resolution.role().map(|r| r.name()), Some("lake-reader"));
    assert!(Arc::ptr_eq(&first.credentials, &second.credentials), "the same cached credentials");
    let stats = broker.cache().stats();
    assert_eq!((stats.source_calls, stats.misses, stats.hits), (1, 1, 1), "{stats:?}");
    let calls = moto.assumed_roles();
    assert_eq!(calls.len(), 1, "moto served one AssumeRole: {calls:?}");
    assert_eq!(calls[0]["role_arn"], "arn:aws:iam::123456789012:role/lake-reader");
    assert_eq!(calls[0]["session_name"], "emrfs-bob");
}

#[tokio::test]
async fn a_stopped_sts_gives_a_connection_error_naming_endpoint_and_role_within_a_bound() {
    let mut moto = Moto::start();
    let endpoint = moto.endpoint();
    let broker = broker(sts_config(&endpoint), AssumeRoleSettings::default()).await;
    moto.stop();
    let principal = resolver().prepare(Some("alice"), &[] as &[&str]);
    let started = Instant::now();
    let error = broker.access(&principal, None).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_eq!(error.source_error().map(|e| e.kind()), Some("connection"), "{error}");
    let message = error.to_string();
    assert!(message.contains(&format!("STS at `{endpoint}`")) && message.contains(ANALYSTS), "{message}");
    assert!(!message.contains(BASE_SECRET_ACCESS_KEY), "{message}");
    assert_eq!(broker.cache().stats().source_calls, 1);
}

#[tokio::test]
async fn a_silent_sts_gives_a_timeout_within_the_configured_bound() {
    moto::aws_env();
    // Connections are accepted by the kernel's backlog, and nothing ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let mut config = sts_config(&endpoint);
    config.attempt_timeout = Duration::from_millis(300);
    config.operation_timeout = Duration::from_secs(1);
    let broker = broker(config, AssumeRoleSettings::default()).await;
    let principal = resolver().prepare(Some("alice"), &[] as &[&str]);
    let started = Instant::now();
    let error = broker.access(&principal, None).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(4), "took {elapsed:?}");
    assert_eq!(error.source_error().map(|e| e.kind()), Some("timeout"), "{error}");
    assert!(error.to_string().contains(&endpoint) && error.to_string().contains(ANALYSTS), "{error}");
}

#[tokio::test]
async fn stale_credentials_are_served_when_sts_fails_in_the_refresh_window() {
    let mut moto = Moto::start();
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let source = StsSource::new(sts_config(&moto.endpoint())).await.unwrap();
    let cache = CredentialCache::with_clock(source, CacheConfig::default(), clock.clone());
    let mut settings = AssumeRoleSettings::default();
    settings.duration_seconds = 900;
    let broker = Broker::new(cache, settings).unwrap();
    let principal = resolver().prepare(Some("alice"), &[] as &[&str]);

    let fresh = broker.access(&principal, None).await.unwrap().credentials;
    let expiration = fresh.expiration().unwrap();
    moto.stop();

    // 2 minutes left: inside the refresh window (5 minutes plus jitter), above the 1-minute stale floor.
    clock.set(expiration - Duration::from_secs(120));
    let served = broker.access(&principal, None).await.unwrap().credentials;
    assert!(Arc::ptr_eq(&fresh, &served));
    let waited = Instant::now();
    while broker.cache().stats().stale_served == 0 {
        assert!(waited.elapsed() < Duration::from_secs(10), "the refresh never failed: {:?}", broker.cache().stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let again = broker.access(&principal, None).await.unwrap().credentials;
    assert!(Arc::ptr_eq(&fresh, &again), "still the stale credentials after the failed refresh");
    let stats = broker.cache().stats();
    assert_eq!((stats.source_calls, stats.stale_served), (2, 1), "{stats:?}");
    assert!(stats.errors.contains(&("connection".to_owned(), 1)), "{stats:?}");

    // 30 seconds left: too close to expiry to serve; the clear error comes through.
    clock.set(expiration - Duration::from_secs(30));
    let error = broker.access(&principal, None).await.unwrap_err();
    assert_eq!(error.source_error().map(|e| e.kind()), Some("connection"), "{error}");
    assert!(error.to_string().contains(&moto.endpoint()), "{error}");
}

#[tokio::test]
async fn external_id_reaches_sts_and_source_identity_is_accepted() {
    let moto = Moto::start();
    let mut settings = AssumeRoleSettings::default();
    settings.external_id = Some("emrfs-ext-123".to_owned());
    settings.source_identity = true;
    let broker = broker(sts_config(&moto.endpoint()), settings).await;
    let principal = resolver().prepare(Some("alice"), &[] as &[&str]);
    let access = broker.access(&principal, None).await.unwrap();
    let calls = moto.assumed_roles();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["external_id"], "emrfs-ext-123");
    assert_eq!(calls[0]["access_key_id"], access.credentials.access_key_id());
    // moto 5.2 neither stores nor echoes SourceIdentity; that it is sent is checked against the SDK's
    // request in the source's unit tests. Here: STS accepts the call that carries it.
    assert!(calls[0].get("source_identity").is_none_or(|v| v == "alice"), "{calls:?}");
}

#[test]
fn the_harness_never_takes_another_process_on_its_port_for_its_own_moto() {
    let first = Moto::start();
    let error = Moto::start_on(&moto::moto_server(), first.port()).err().expect("a second moto on a taken port fails");
    assert!(error.contains("exited"), "{error}");
    assert_eq!(first.get("/moto-api/").map(|(status, _)| status), Ok(200), "the first moto is unharmed");
}
