//! Credentials for a resolution: the [`CredentialSource`] trait, the AssumeRole request a mapping
//! decision needs, the [`cache::CredentialCache`] in front of the source, and [`Broker`], the one entry
//! point a proxy calls (resolve, then fetch the decision's credentials).
//!
//! SEMANTICS §5: a `mapping` decision is served by STS AssumeRole on the mapping's role; a `fallback`
//! decision by the base credentials (on EMR, the instance profile) without AssumeRole. A failed
//! AssumeRole fails the request: it never falls through to a later mapping or to the fallback role.
//!
//! Secrets (secret access keys, session tokens) are zeroed when dropped and never appear in `Debug` or
//! `Display` output, nor in error messages.

pub mod cache;
pub mod clock;
mod session_name;
#[cfg(feature = "sts")]
pub mod sts;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use zeroize::Zeroizing;

use crate::compile::PreparedPrincipal;
use crate::config::RoleArn;
use crate::resolve::Resolution;
use crate::s3path::S3Path;

pub use cache::{CacheConfig, CacheStats, CredentialCache, Origin};
pub use clock::{Clock, CoarseClock, ManualClock, SystemClock};
pub use session_name::{SessionName, SessionNameTemplate, TemplateError};

/// A secret string: zeroed on drop, redacted in `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }

    /// The secret itself; handle with care.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"** redacted **\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("** redacted **")
    }
}

/// AWS credentials: an access key, its secret, an optional session token and expiration.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Option<Secret>,
    expiration: Option<SystemTime>,
}

impl Credentials {
    /// Credentials from their parts; `expiration` is `None` for long-term keys.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
        expiration: Option<SystemTime>,
    ) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: Secret::new(secret_access_key),
            session_token: session_token.map(Secret::new),
            expiration,
        }
    }

    /// The access key ID (not a secret: it appears in CloudTrail).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The secret access key.
    pub fn secret_access_key(&self) -> &Secret {
        &self.secret_access_key
    }

    /// The session token of temporary credentials.
    pub fn session_token(&self) -> Option<&Secret> {
        self.session_token.as_ref()
    }

    /// When the credentials stop working, if they are temporary.
    pub fn expiration(&self) -> Option<SystemTime> {
        self.expiration
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .field("expiration", &self.expiration)
            .finish()
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "credentials {} (secret redacted)", self.access_key_id)
    }
}

/// One STS AssumeRole call: everything that makes its credentials differ, so also the cache key.
///
/// It borrows its parts, so that building one per proxied request costs nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AssumeRoleRequest<'a> {
    /// The role to assume.
    pub role_arn: &'a RoleArn,
    /// The role session name (valid for STS by construction).
    pub session_name: SessionName,
    /// The session duration in seconds, 900 to 43200.
    pub duration_seconds: u32,
    /// The external ID the role's trust policy may require.
    pub external_id: Option<&'a str>,
    /// The source identity recorded in CloudTrail (the Hadoop user), if enabled.
    pub source_identity: Option<&'a str>,
}

/// What a credential source is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialRequest<'a> {
    /// The base credentials (the instance profile on EMR), for a fallback decision.
    Base,
    /// Temporary credentials of a role, for a mapping decision.
    AssumeRole(AssumeRoleRequest<'a>),
}

/// The broad kind of a failure to get credentials; decides retrying and caching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// STS refused: the base identity may not assume the role (`AccessDenied`). Remembered briefly.
    AccessDenied,
    /// STS asked to slow down (`Throttling`). Transient.
    Throttling,
    /// The call timed out. Transient.
    Timeout,
    /// No connection to the endpoint. Transient.
    Connection,
    /// STS answered with a server error (5xx). Transient.
    ServerError,
    /// STS rejected the request as invalid (a 4xx other than throttling and access denied).
    InvalidRequest,
    /// The base credentials could not be loaded.
    BaseCredentials,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Whether trying again later may succeed; transient errors are never cached.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Throttling | ErrorKind::Timeout | ErrorKind::Connection | ErrorKind::ServerError)
    }

    /// A short lowercase name, for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::AccessDenied => "access_denied",
            ErrorKind::Throttling => "throttling",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::ServerError => "server_error",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::BaseCredentials => "base_credentials",
            ErrorKind::Other => "other",
        }
    }

    /// Every kind, in a fixed order (for counters).
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::AccessDenied,
        ErrorKind::Throttling,
        ErrorKind::Timeout,
        ErrorKind::Connection,
        ErrorKind::ServerError,
        ErrorKind::InvalidRequest,
        ErrorKind::BaseCredentials,
        ErrorKind::Other,
    ];
}

/// A failure to get credentials from a source: its kind and what the source said (never a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    /// The kind, which decides retrying and caching.
    pub kind: ErrorKind,
    /// What went wrong: which endpoint, which role, what STS said.
    pub message: String,
}

impl SourceError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        SourceError { kind, message: message.into() }
    }
}

/// Where credentials come from: STS in production, a fake in unit tests.
pub trait CredentialSource: Send + Sync + 'static {
    /// Fetches credentials for one request: AssumeRole for a mapping, the base credentials for a fallback.
    fn fetch(&self, request: &CredentialRequest<'_>) -> impl Future<Output = Result<Credentials, SourceError>> + Send;
}

impl<S: CredentialSource> CredentialSource for Arc<S> {
    fn fetch(&self, request: &CredentialRequest<'_>) -> impl Future<Output = Result<Credentials, SourceError>> + Send {
        S::fetch(self, request)
    }
}

/// How the broker turns a mapping decision into an AssumeRole request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRoleSettings {
    /// The role session name template (default `emrfs-{user}`).
    pub session_name: SessionNameTemplate,
    /// The session duration in seconds (default 3600; 900 to 43200).
    pub duration_seconds: u32,
    /// The external ID to pass, if the roles' trust policies require one.
    pub external_id: Option<String>,
    /// Whether to set SourceIdentity to the Hadoop user (for CloudTrail).
    pub source_identity: bool,
}

impl Default for AssumeRoleSettings {
    fn default() -> Self {
        AssumeRoleSettings {
            session_name: SessionNameTemplate::default(),
            duration_seconds: 3600,
            external_id: None,
            source_identity: false,
        }
    }
}

/// The valid range of `DurationSeconds` (STS; role chaining caps sessions at one hour).
pub const DURATION_RANGE: std::ops::RangeInclusive<u32> = 900..=43_200;

/// Why [`AssumeRoleSettings`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// The duration is outside 900 to 43200 seconds.
    #[error("session duration {0} s is outside the range STS accepts, 900 to 43200 s")]
    Duration(u32),
    /// The external ID is not 2 to 1224 characters of `A-Za-z0-9+=,.@:/-`.
    #[error("the external ID must be 2 to 1224 characters of letters, digits and `+=,.@:/-`")]
    ExternalId,
}

impl AssumeRoleSettings {
    /// Checks the settings against STS's limits.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !DURATION_RANGE.contains(&self.duration_seconds) {
            return Err(SettingsError::Duration(self.duration_seconds));
        }
        if let Some(id) = &self.external_id {
            let valid_char = |c: char| c.is_ascii_alphanumeric() || "+=,.@:/-_".contains(c);
            if !(2..=1224).contains(&id.len()) || !id.chars().all(valid_char) {
                return Err(SettingsError::ExternalId);
            }
        }
        Ok(())
    }

    /// The request that serves `resolution` for `user`: AssumeRole for a mapping, base credentials for a
    /// fallback. Builds nothing on the heap.
    pub fn request_for<'a>(&'a self, resolution: &Resolution<'a>, user: Option<&'a str>) -> CredentialRequest<'a> {
        match resolution.mapping() {
            None => CredentialRequest::Base,
            Some(m) => CredentialRequest::AssumeRole(AssumeRoleRequest {
                role_arn: m.role,
                session_name: self.session_name.render(user, m),
                duration_seconds: self.duration_seconds,
                external_id: self.external_id.as_deref(),
                source_identity: user.filter(|u| self.source_identity && !u.is_empty()),
            }),
        }
    }
}

/// Why a proxy request got no credentials. The request fails: it never falls through (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// A mapping decided, and its role could not be assumed.
    #[error("mapping {mapping} decided role `{role}`, which could not be assumed: {source}")]
    AssumeRole {
        /// The deciding mapping's index.
        mapping: usize,
        /// Its role ARN.
        role: String,
        /// What the source said.
        #[source]
        source: SourceError,
    },
    /// No mapping matched, and the base credentials could not be had.
    #[error("no mapping matched, and the base credentials could not be loaded: {source}")]
    Base {
        /// What the source said.
        #[source]
        source: SourceError,
    },
}

impl CredentialError {
    /// The kind of the underlying failure.
    pub fn kind(&self) -> ErrorKind {
        self.source_error().kind
    }

    /// What the source said.
    pub fn source_error(&self) -> &SourceError {
        match self {
            CredentialError::AssumeRole { source, .. } | CredentialError::Base { source } => source,
        }
    }
}

/// A resolution with the credentials that serve it.
#[derive(Debug, Clone)]
pub struct Access<'p> {
    /// The decision, for audit logs.
    pub resolution: Resolution<'p>,
    /// The credentials of the decided role.
    pub credentials: Arc<Credentials>,
    /// Whether they came from the cache or needed a source call.
    pub origin: Origin,
}

/// The entry point for a proxy: resolve a prepared principal and a path, then fetch the credentials.
pub struct Broker<S> {
    cache: CredentialCache<S>,
    settings: AssumeRoleSettings,
}

impl<S> Clone for Broker<S> {
    fn clone(&self) -> Self {
        Broker { cache: self.cache.clone(), settings: self.settings.clone() }
    }
}

impl<S> fmt::Debug for Broker<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker").field("cache", &self.cache).field("settings", &self.settings).finish()
    }
}

impl<S: CredentialSource> Broker<S> {
    /// A broker over `cache`; fails when `settings` break STS limits.
    pub fn new(cache: CredentialCache<S>, settings: AssumeRoleSettings) -> Result<Self, SettingsError> {
        settings.validate()?;
        Ok(Broker { cache, settings })
    }

    /// Resolves the request of `principal` for `path` and fetches the credentials; the principal's user
    /// names the session and is its source identity.
    ///
    /// A mapping decision is served by AssumeRole through the cache; a fallback by the base credentials.
    /// A failure is returned as is: it never falls through to another role.
    pub async fn access<'p>(
        &'p self,
        principal: &'p PreparedPrincipal,
        path: Option<&S3Path<'_>>,
    ) -> Result<Access<'p>, CredentialError> {
        self.serve(principal.resolve(path), principal.user()).await
    }

    /// Fetches the credentials that serve `resolution`, a decision already made for `user` (who names
    /// the session and is its source identity): for a caller that must look at the decision first, such
    /// as a server that refuses fallbacks to some callers. Fails as [`access`](Self::access) does.
    pub async fn serve<'r>(
        &'r self,
        resolution: Resolution<'r>,
        user: Option<&'r str>,
    ) -> Result<Access<'r>, CredentialError> {
        let request = self.settings.request_for(&resolution, user);
        let lookup = self.cache.lookup(&request);
        let origin = lookup.origin();
        match lookup.await {
            Ok(credentials) => Ok(Access { resolution, credentials, origin }),
            Err(source) => Err(match resolution.mapping() {
                Some(m) => CredentialError::AssumeRole { mapping: m.index, role: m.role.to_string(), source },
                None => CredentialError::Base { source },
            }),
        }
    }

    /// The cache, for its statistics.
    pub fn cache(&self) -> &CredentialCache<S> {
        &self.cache
    }

    /// The AssumeRole settings.
    pub fn settings(&self) -> &AssumeRoleSettings {
        &self.settings
    }
}

/// An instant as RFC 3339 in UTC with whole seconds, `2030-01-02T03:04:05Z`: the form of STS expirations
/// and of the `credential_process` `Expiration`.
pub fn format_rfc3339(at: SystemTime) -> String {
    let seconds = match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest / 60 % 60, rest % 60)
}

#[cfg(test)]
mod rfc3339_tests {
    use super::format_rfc3339;
    use std::time::{Duration, SystemTime};

    #[test]
    fn known_instants() {
        let at = |s: u64| format_rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(at(1_893_456_000), "2030-01-01T00:00:00Z");
        assert_eq!(at(4_102_444_800), "2100-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(SystemTime::UNIX_EPOCH - Duration::from_secs(1)), "1969-12-31T23:59:59Z");
    }
}
