//! What credentials are and where they come from: [`Credentials`], the [`CredentialRequest`] a source
//! is asked, the [`CredentialSource`] trait, and [`SourceError`], whose kind decides retrying, caching
//! and revocation.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use zeroize::Zeroizing;

use super::error::SettingsError;
use super::session_name::SessionName;
use crate::config::RoleArn;

/// A secret string: zeroed on drop, redacted in `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(Zeroizing<String>);

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
#[derive(Clone)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Option<Secret>,
    expiration: Option<SystemTime>,
    /// Whether they were read from the fleet's shared cache tier (not part of equality).
    pub(crate) from_shared_tier: bool,
}

impl PartialEq for Credentials {
    fn eq(&self, other: &Self) -> bool {
        (&self.access_key_id, &self.secret_access_key, &self.session_token, self.expiration)
            == (&other.access_key_id, &other.secret_access_key, &other.session_token, other.expiration)
    }
}

impl Eq for Credentials {}

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
            from_shared_tier: false,
        }
    }

    /// The access key ID (not a secret: it appears in CloudTrail).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The secret access key; handle with care (`Debug` and `Display` of the credentials redact it).
    pub fn secret_access_key(&self) -> &str {
        self.secret_access_key.expose()
    }

    /// The session token of temporary credentials; handle with care.
    pub fn session_token(&self) -> Option<&str> {
        self.session_token.as_ref().map(Secret::expose)
    }

    /// When the credentials stop working, if they are temporary.
    pub fn expiration(&self) -> Option<SystemTime> {
        self.expiration
    }

    /// The expiration as RFC 3339 in UTC with whole seconds (`2030-01-02T03:04:05Z`), the form of STS
    /// and of the `credential_process` output; `None` for long-term keys.
    pub fn expiration_rfc3339(&self) -> Option<String> {
        self.expiration.map(format_rfc3339)
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

/// The valid range of `DurationSeconds` (STS; role chaining caps sessions at one hour).
pub(crate) const DURATION_RANGE: std::ops::RangeInclusive<u32> = 900..=43_200;

/// What a credential source is asked for: the base credentials (on EMR the instance profile, for a
/// fallback decision), or one STS AssumeRole call, whose parts all make the credentials differ and so
/// also form the cache key. It borrows its parts, so that building one per proxied request costs
/// nothing.
///
/// ```
/// use emrfs_rolemap::RoleArn;
/// use emrfs_rolemap::credentials::CredentialRequest;
/// let role = RoleArn::parse("arn:aws:iam::123456789012:role/analysts")?;
/// let request = CredentialRequest::assume_role(&role, "emrfs-alice", 3600)?.with_source_identity("alice");
/// assert_eq!((request.session_name(), request.source_identity()), (Some("emrfs-alice"), Some("alice")));
/// assert!(CredentialRequest::base().role_arn().is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CredentialRequest<'a>(pub(crate) RequestKind<'a>);

/// The two kinds of [`CredentialRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum RequestKind<'a> {
    Base,
    AssumeRole(AssumeRoleRequest<'a>),
}

/// The parts of an AssumeRole call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct AssumeRoleRequest<'a> {
    pub(crate) role_arn: &'a RoleArn,
    /// Valid for STS by construction.
    pub(crate) session_name: SessionName,
    pub(crate) duration_seconds: u32,
    pub(crate) external_id: Option<&'a str>,
    pub(crate) source_identity: Option<&'a str>,
}

impl<'a> CredentialRequest<'a> {
    /// The base credentials, for a fallback decision.
    pub fn base() -> Self {
        CredentialRequest(RequestKind::Base)
    }

    /// AssumeRole on `role_arn` with session `session_name` for `duration_seconds`. Fails when the name
    /// is not 2 to 64 characters of `A-Za-z0-9+=,.@_-` or the duration is outside 900 to 43200 s.
    pub fn assume_role(
        role_arn: &'a RoleArn,
        session_name: &str,
        duration_seconds: u32,
    ) -> Result<Self, SettingsError> {
        let session_name = SessionName::new(session_name).ok_or(SettingsError::SessionName)?;
        if !DURATION_RANGE.contains(&duration_seconds) {
            return Err(SettingsError::Duration(duration_seconds));
        }
        let request =
            AssumeRoleRequest { role_arn, session_name, duration_seconds, external_id: None, source_identity: None };
        Ok(CredentialRequest(RequestKind::AssumeRole(request)))
    }

    /// With the external ID the role's trust policy requires (AssumeRole only).
    pub fn with_external_id(mut self, external_id: &'a str) -> Self {
        if let RequestKind::AssumeRole(r) = &mut self.0 {
            r.external_id = Some(external_id);
        }
        self
    }

    /// With a source identity, recorded in CloudTrail (AssumeRole only).
    pub fn with_source_identity(mut self, source_identity: &'a str) -> Self {
        if let RequestKind::AssumeRole(r) = &mut self.0 {
            r.source_identity = Some(source_identity);
        }
        self
    }

    fn assume(&self) -> Option<&AssumeRoleRequest<'a>> {
        match &self.0 {
            RequestKind::AssumeRole(r) => Some(r),
            RequestKind::Base => None,
        }
    }

    /// The role to assume; `None` for the base credentials.
    pub fn role_arn(&self) -> Option<&'a RoleArn> {
        self.assume().map(|r| r.role_arn)
    }

    /// The role session name.
    pub fn session_name(&self) -> Option<&str> {
        self.assume().map(|r| r.session_name.as_str())
    }

    /// The session duration in seconds, 900 to 43200.
    pub fn duration_seconds(&self) -> Option<u32> {
        self.assume().map(|r| r.duration_seconds)
    }

    /// The external ID, if any.
    pub fn external_id(&self) -> Option<&'a str> {
        self.assume().and_then(|r| r.external_id)
    }

    /// The source identity, if any.
    pub fn source_identity(&self) -> Option<&'a str> {
        self.assume().and_then(|r| r.source_identity)
    }
}

/// The broad kind of a failure to get credentials; decides retrying, caching and revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ErrorKind {
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
    /// The base credentials could not be loaded, or STS rejected them.
    BaseCredentials,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Whether trying again later may succeed; transient errors are never cached, and only they let
    /// still-valid credentials be served after a failed refresh.
    pub(crate) fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Throttling | ErrorKind::Timeout | ErrorKind::Connection | ErrorKind::ServerError)
    }

    /// A short lowercase name, for metrics labels.
    pub(crate) fn as_str(self) -> &'static str {
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
    pub(crate) const ALL: [ErrorKind; 8] = [
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
/// A source makes one with the constructor of its kind, which decides what the cache does with it.
///
/// ```
/// use emrfs_rolemap::credentials::SourceError;
/// let throttled = SourceError::throttling("STS said `Throttling`");
/// assert!(throttled.is_transient() && throttled.kind() == "throttling");
/// assert!(!SourceError::access_denied("the trust policy changed").is_transient());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
}

impl SourceError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        SourceError { kind, message: message.into() }
    }

    /// The caller may not have these credentials: `AccessDenied` from STS (the role's trust policy, an
    /// SCP, a disabled region). Remembered briefly; revokes cached credentials on a refresh.
    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AccessDenied, message)
    }

    /// The source asked to slow down. Transient.
    pub fn throttling(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Throttling, message)
    }

    /// The call timed out. Transient.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }

    /// The source could not be reached. Transient.
    pub fn connection(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Connection, message)
    }

    /// The source failed (a 5xx answer). Transient.
    pub fn server_error(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ServerError, message)
    }

    /// The source rejected the request as invalid (a 4xx other than throttling and access denied).
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// The base credentials could not be loaded, or were rejected (`InvalidClientTokenId`,
    /// `ExpiredToken`).
    pub fn base_credentials(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BaseCredentials, message)
    }

    /// Anything else. Not transient.
    pub fn other(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Other, message)
    }

    pub(crate) fn error_kind(&self) -> ErrorKind {
        self.kind
    }

    /// The kind's name: `access_denied`, `throttling`, `timeout`, `connection`, `server_error`,
    /// `invalid_request`, `base_credentials` or `other`.
    pub fn kind(&self) -> &'static str {
        self.kind.as_str()
    }

    /// Whether trying again later may succeed (throttling, timeouts, connection failures, 5xx).
    pub fn is_transient(&self) -> bool {
        self.kind.is_transient()
    }

    /// What went wrong: which endpoint, which role, what the source said.
    pub fn message(&self) -> &str {
        &self.message
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

/// An instant as RFC 3339 in UTC with whole seconds, `2030-01-02T03:04:05Z`: the form of STS expirations
/// and of the `credential_process` `Expiration`.
pub(crate) fn format_rfc3339(at: SystemTime) -> String {
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
mod secret_tests {
    use super::Secret;

    #[test]
    fn a_secret_never_shows_in_debug_or_display() {
        let secret = Secret::new("wJalrXUtnFEMI/SECRET");
        for shown in [format!("{secret:?}"), format!("{secret}"), format!("{:?}", Some(&secret))] {
            assert!(!shown.contains("SECRET") && shown.contains("redacted"), "{shown}");
        }
        assert_eq!(secret.expose(), "wJalrXUtnFEMI/SECRET");
    }
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
