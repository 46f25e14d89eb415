//! The broker, the one call a proxy makes: resolve, then fetch the decision's credentials. A mapping
//! decision is served by AssumeRole with the configured session name, duration, external ID and source
//! identity; a fallback by the base credentials; a failed AssumeRole fails the request (fail closed).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use emrfs_rolemap::credentials::{
    AssumeRoleSettings, Broker, CacheConfig, CredentialCache, CredentialRequest, CredentialSource, Credentials,
    SettingsError, SourceError,
};
use emrfs_rolemap::{ResolverBuilder, S3Path, SecurityConfiguration};

/// Records every request as text and answers with credentials named after it, or fails for roles
/// whose name starts with `denied`.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<String>>,
}

impl CredentialSource for Recorder {
    async fn fetch(&self, request: &CredentialRequest<'_>) -> Result<Credentials, SourceError> {
        let text = match request.role_arn() {
            None => "base".to_owned(),
            Some(role) => format!(
                "{} {} {} {:?} {:?}",
                role.name(),
                request.session_name().unwrap_or_default(),
                request.duration_seconds().unwrap_or_default(),
                request.external_id(),
                request.source_identity()
            ),
        };
        self.seen.lock().unwrap().push(text.clone());
        if text.starts_with("denied") {
            return Err(SourceError::access_denied("AccessDenied: not authorized to perform sts:AssumeRole"));
        }
        let expiration = SystemTime::now() + Duration::from_secs(3600);
        Ok(Credentials::new(format!("KEY {text}"), "secret", Some("token".into()), Some(expiration)))
    }
}

const CONFIG: &str = r#"{"RoleMappings": [
  {"Role": "arn:aws:iam::123456789012:role/denied-etl", "IdentifierType": "User", "Identifiers": ["etl"]},
  {"Role": "arn:aws:iam::123456789012:role/analysts", "IdentifierType": "Group", "Identifiers": ["analysts"]},
  {"Role": "arn:aws:iam::123456789012:role/lake", "IdentifierType": "Prefix", "Identifiers": ["s3://lake/"]}
]}"#;

fn broker(settings: AssumeRoleSettings) -> (Arc<Recorder>, Broker<Arc<Recorder>>) {
    let recorder = Arc::new(Recorder::default());
    let cache = CredentialCache::new(Arc::clone(&recorder), CacheConfig::default());
    (recorder, Broker::new(cache, settings).expect("valid settings"))
}

#[tokio::test]
async fn a_mapping_decision_assumes_the_role_with_the_configured_request() {
    let resolver = ResolverBuilder::new().build(&SecurityConfiguration::from_json(CONFIG).unwrap()).unwrap();
    let mut settings = AssumeRoleSettings::default().with_session_name("emrfs-{user}-{group}").unwrap();
    settings.duration_seconds = 900;
    settings.external_id = Some("ext-42".to_owned());
    settings.source_identity = true;
    let (recorder, broker) = broker(settings);
    let principal = resolver.prepare(Some("alice"), &["staff", "analysts"]);
    let path = S3Path::parse("s3://lake/t/part-0").unwrap();
    let access = broker.access(&principal, Some(&path)).await.unwrap();
    assert_eq!(access.resolution.mapping_index(), Some(1));
    assert_eq!(
        access.credentials.access_key_id(),
        "KEY analysts emrfs-alice-analysts 900 Some(\"ext-42\") Some(\"alice\")"
    );
    // The second access is a cache hit.
    broker.access(&principal, Some(&path)).await.unwrap();
    assert_eq!(recorder.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_fallback_is_served_by_the_base_credentials() {
    let resolver = ResolverBuilder::new().build(&SecurityConfiguration::from_json(CONFIG).unwrap()).unwrap();
    let (recorder, broker) = broker(AssumeRoleSettings::default());
    let principal = resolver.prepare(Some("bob"), &["staff"]);
    let path = S3Path::parse("s3://elsewhere/x").unwrap();
    let access = broker.access(&principal, Some(&path)).await.unwrap();
    assert_eq!(access.resolution.decision(), "fallback");
    assert_eq!(access.credentials.access_key_id(), "KEY base");
    assert_eq!(*recorder.seen.lock().unwrap(), vec!["base".to_owned()]);
}

#[tokio::test]
async fn a_failed_assume_role_fails_closed() {
    let resolver = ResolverBuilder::new().build(&SecurityConfiguration::from_json(CONFIG).unwrap()).unwrap();
    let (recorder, broker) = broker(AssumeRoleSettings::default());
    // `etl` matches mapping 0, whose role is denied; mapping 2 (the path) and the fallback also apply.
    let principal = resolver.prepare(Some("etl"), &["analysts"]);
    let path = S3Path::parse("s3://lake/t").unwrap();
    let err = broker.access(&principal, Some(&path)).await.unwrap_err();
    assert_eq!(err.source_error().map(|e| e.kind()), Some("access_denied"));
    let message = err.to_string();
    assert!(message.starts_with("mapping 0 decided role `arn:aws:iam::123456789012:role/denied-etl`"), "{message}");
    assert!(message.contains("not authorized"), "{message}");
    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "no other role and no base credentials were tried: {seen:?}");
}

#[test]
fn settings_outside_sts_limits_are_refused() {
    let recorder = Arc::new(Recorder::default());
    let cache = CredentialCache::new(recorder, CacheConfig::default());
    let with = |change: &dyn Fn(&mut AssumeRoleSettings)| {
        let mut settings = AssumeRoleSettings::default();
        change(&mut settings);
        settings
    };
    for (settings, expected) in [
        (with(&|s| s.duration_seconds = 899), SettingsError::Duration(899)),
        (with(&|s| s.duration_seconds = 43_201), SettingsError::Duration(43_201)),
        (with(&|s| s.external_id = Some("x".into())), SettingsError::ExternalId),
        (with(&|s| s.external_id = Some("has space".into())), SettingsError::ExternalId),
    ] {
        assert_eq!(Broker::new(cache.clone(), settings).unwrap_err(), expected);
    }
}

#[test]
fn secrets_never_show_in_debug_or_display() {
    let credentials = Credentials::new("ASIAEXAMPLE", "wJalrXUtnFEMI/SECRET", Some("FwoGZXIvYXdzTOKEN".into()), None);
    for text in [format!("{credentials:?}"), format!("{credentials}"), format!("{:?}", Arc::new(credentials.clone()))] {
        assert!(!text.contains("SECRET") && !text.contains("TOKEN"), "{text}");
        assert!(text.contains("ASIAEXAMPLE"), "{text}");
    }
    assert_eq!(credentials.secret_access_key(), "wJalrXUtnFEMI/SECRET");
}
