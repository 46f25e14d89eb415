//! Secrets never reach `Debug` or `Display` output: every credential-bearing type and every error that
//! can carry STS output is formatted both ways, and no secret access key or session token may appear.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use emrfs_rolemap::credentials::{
    Access, AssumeRoleSettings, Broker, CacheConfig, CredentialCache, CredentialError, CredentialRequest,
    CredentialSource, Credentials, SourceError, StsSource, StsSourceConfig,
};
use emrfs_rolemap::{ResolverBuilder, S3Path, SecurityConfiguration};

const SECRET: &str = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRETKEY";
const TOKEN: &str = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN";

fn credentials() -> Credentials {
    Credentials::new(
        "ASIAEXAMPLEKEYID",
        SECRET,
        Some(TOKEN.to_owned()),
        Some(SystemTime::now() + Duration::from_secs(3600)),
    )
}

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} shows the secret access key: {text}");
    assert!(!text.contains(TOKEN), "{what} shows the session token: {text}");
    assert!(!text.contains("SECRETKEY") && !text.contains("SESSIONTOKEN"), "{what} shows part of a secret: {text}");
}

fn both<T: std::fmt::Debug + std::fmt::Display>(what: &str, value: &T) {
    assert_clean(what, &format!("{value:?}"));
    assert_clean(what, &format!("{value:#?}"));
    assert_clean(what, &format!("{value}"));
}

/// A source that answers with the secret-laden credentials, or fails quoting "STS output".
struct Source {
    fail: bool,
}

impl CredentialSource for Source {
    async fn fetch(&self, _: &CredentialRequest<'_>) -> Result<Credentials, SourceError> {
        if self.fail {
            return Err(SourceError::access_denied("STS said AccessDenied: User is not authorized"));
        }
        Ok(credentials())
    }
}

#[test]
fn secrets_and_credentials() {
    both("Credentials", &credentials());
    assert_clean("Arc<Credentials>", &format!("{:?}", Arc::new(credentials())));
    assert_eq!(credentials().secret_access_key(), SECRET, "the secret is still there for those who ask");
}

#[tokio::test]
async fn the_broker_its_cache_and_what_they_return() {
    let config = SecurityConfiguration::from_json(
        r#"{"RoleMappings": [{"Role": "arn:aws:iam::123456789012:role/r", "IdentifierType": "User", "Identifiers": ["alice"]}]}"#,
    )
    .expect("valid");
    let resolver = ResolverBuilder::new().build(&config).expect("builds");
    let principal = resolver.prepare(Some("alice"), &[] as &[&str]);
    let path = S3Path::parse("s3://b/k").expect("valid");

    let broker = Broker::new(
        CredentialCache::new(Source { fail: false }, CacheConfig::default()),
        AssumeRoleSettings::default(),
    )
    .expect("valid settings");
    let access: Access<'_> = broker.access(&principal, Some(&path)).await.expect("served");
    assert_clean("Access", &format!("{access:?}"));
    assert_clean("Broker after a fill", &format!("{broker:?}"));
    assert_clean("CredentialCache after a fill", &format!("{:?}", broker.cache()));
    assert_clean("CacheStats", &format!("{:?}", broker.cache().stats()));

    let failing =
        Broker::new(CredentialCache::new(Source { fail: true }, CacheConfig::default()), AssumeRoleSettings::default())
            .expect("valid settings");
    let error: CredentialError = failing.access(&principal, Some(&path)).await.expect_err("denied");
    both("CredentialError", &error);
    both("SourceError", &SourceError::other("some STS output"));
}

#[tokio::test]
async fn the_sts_source_and_its_configuration() {
    let mut config = StsSourceConfig::new("us-east-1").with_credentials(credentials());
    config.endpoint_url = Some("http://127.0.0.1:9".to_owned());
    assert_clean("StsSourceConfig", &format!("{config:?}"));
    let source = StsSource::new(config).await.expect("a valid configuration");
    assert_clean("StsSource", &format!("{source:?}"));
    // A base-credentials fetch hands the secret back only through the credentials themselves.
    let base = source.fetch(&CredentialRequest::base()).await.expect("static base credentials");
    both("fetched base credentials", &base);
}
