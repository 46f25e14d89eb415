//! The STS credential source: [`StsSource`] serves a mapping decision with STS `AssumeRole` and a
//! fallback decision with the base credentials, through `aws-sdk-sts` and `aws-config`.
//!
//! It owns the SDK client's configuration (region, endpoint, timeouts, retries), where the base
//! credentials come from, and the translation of SDK failures into an [`ErrorKind`] and a message that
//! says which endpoint, which role and what STS said, without ever quoting a secret.
//!
//! # Never hanging where there is no instance metadata service
//!
//! On EMR the base credentials are the instance profile's, which the default chain reads from the
//! instance metadata service (IMDS). Elsewhere (a laptop, CI, a container) the chain would try IMDS
//! and wait for its timeouts before giving up. [`StsSource`] bounds that wait (connect and read
//! timeouts of [`StsSourceConfig::imds_timeout`], 2 attempts), and the following environment removes
//! it altogether, which is what the tests do:
//!
//! - `AWS_EC2_METADATA_DISABLED=true`: the chain never contacts IMDS;
//! - an explicit region ([`StsSourceConfig::region`] is required, so the region is never looked up);
//! - explicit credentials: [`BaseCredentials::Static`], or `AWS_ACCESS_KEY_ID` and
//!   `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) in the environment, which the chain tries first;
//! - `AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null` to keep a developer's profiles
//!   out of the picture.
//!
//! Every STS call is bounded too: a connect timeout, a per-attempt timeout and a total timeout, with
//! the SDK's standard retry mode (exponential backoff with jitter) in between.

use std::error::Error as StdError;
use std::fmt;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::config::retry::RetryConfig;
use aws_sdk_sts::config::timeout::TimeoutConfig;
use aws_sdk_sts::config::{BehaviorVersion, Region};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::RequestId;
use aws_types::service_config::ServiceConfigKey;

use super::error::SettingsError;
use super::source::{
    AssumeRoleRequest, CredentialRequest, CredentialSource, Credentials, ErrorKind, RequestKind, SourceError,
};

/// Attempts at the instance metadata service (the SDK's default is 4).
const IMDS_ATTEMPTS: u32 = 2;

/// Where the base credentials come from: they serve fallback decisions and sign `AssumeRole`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BaseCredentials {
    /// The SDK's default chain: environment, profile, web identity token, container, then instance
    /// metadata (on EMR: the instance profile).
    DefaultChain,
    /// A named profile of the shared configuration files (`~/.aws/config`, `~/.aws/credentials`).
    Profile(String),
    /// Fixed credentials, for tests and for embedding in a process that has its own.
    Static(Credentials),
}

impl fmt::Display for BaseCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BaseCredentials::DefaultChain => f.write_str("the default credential chain"),
            BaseCredentials::Profile(name) => write!(f, "profile `{}`", crate::diagnostics::Escaped(name)),
            BaseCredentials::Static(_) => f.write_str("the static credentials"),
        }
    }
}

/// How to reach STS and with which base credentials. [`StsSourceConfig::new`] gives the defaults; the
/// base credentials are the SDK's default chain unless [`with_profile`](Self::with_profile) or
/// [`with_credentials`](Self::with_credentials) says otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StsSourceConfig {
    /// The AWS region whose STS endpoint is called, such as `us-east-1` (required).
    pub region: String,
    /// An endpoint URL instead of the region's (a VPC endpoint, a test emulator).
    pub endpoint_url: Option<String>,
    base_credentials: BaseCredentials,
    /// Connect timeout of an STS call ([`Self::DEFAULT_CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
    /// Timeout of one attempt ([`Self::DEFAULT_ATTEMPT_TIMEOUT`]).
    pub attempt_timeout: Duration,
    /// Timeout of a whole call, retries included, and of loading the base credentials
    /// ([`Self::DEFAULT_OPERATION_TIMEOUT`]).
    pub operation_timeout: Duration,
    /// Attempts per call, standard retry mode ([`Self::DEFAULT_MAX_ATTEMPTS`]; 1 disables retries).
    pub max_attempts: u32,
    /// First retry delay before jitter, doubling per retry ([`Self::DEFAULT_INITIAL_BACKOFF`]).
    pub initial_backoff: Duration,
    /// Connect and read timeout of the instance metadata service in the default chain
    /// ([`Self::DEFAULT_IMDS_TIMEOUT`]).
    pub imds_timeout: Duration,
}

impl StsSourceConfig {
    /// Default connect timeout of an STS call.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
    /// Default timeout of one attempt of an STS call.
    pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default timeout of a whole STS call, retries included (also bounds loading the base credentials).
    pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(15);
    /// Default number of attempts of an STS call (the SDK's standard retry mode).
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
    /// Default first retry delay (before jitter); it doubles per retry.
    pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
    /// Default connect and read timeout of the instance metadata service.
    pub const DEFAULT_IMDS_TIMEOUT: Duration = Duration::from_secs(1);

    /// The defaults for `region`: the default credential chain, 3 s connect timeout, 5 s per attempt,
    /// 15 s in all, 3 attempts with a 1 s initial backoff, 1 s IMDS timeouts.
    pub fn new(region: impl Into<String>) -> Self {
        StsSourceConfig {
            region: region.into(),
            endpoint_url: None,
            base_credentials: BaseCredentials::DefaultChain,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            attempt_timeout: Self::DEFAULT_ATTEMPT_TIMEOUT,
            operation_timeout: Self::DEFAULT_OPERATION_TIMEOUT,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            initial_backoff: Self::DEFAULT_INITIAL_BACKOFF,
            imds_timeout: Self::DEFAULT_IMDS_TIMEOUT,
        }
    }

    /// With the base credentials of a named profile of the shared configuration files
    /// (`~/.aws/config`, `~/.aws/credentials`). Profiles that need SSO or `credential_process` are not
    /// supported (those SDK features are off).
    pub fn with_profile(mut self, name: impl Into<String>) -> Self {
        self.base_credentials = BaseCredentials::Profile(name.into());
        self
    }

    /// With fixed base credentials, for tests and for a process that has its own.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.base_credentials = BaseCredentials::Static(credentials);
        self
    }

    /// Checks what the SDK would only reject at the first call.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let region_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if self.region.is_empty() || !self.region.chars().all(region_char) {
            return Err(SettingsError::Region(self.region.clone()));
        }
        if let Some(url) = &self.endpoint_url {
            let host = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
            if !host.is_some_and(|h| !h.is_empty() && !h.starts_with('/') && !h.contains(char::is_whitespace)) {
                return Err(SettingsError::EndpointUrl(url.clone()));
            }
        }
        if self.max_attempts == 0 {
            return Err(SettingsError::MaxAttempts);
        }
        Ok(())
    }
}

/// A [`CredentialSource`] on STS: `AssumeRole` for a mapping decision, the base credentials for a
/// fallback. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct StsSource {
    client: aws_sdk_sts::Client,
    base: SharedCredentialsProvider,
    calls: Calls,
}

impl fmt::Debug for StsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StsSource")
            .field("endpoint", &self.calls.service())
            .field("base_credentials", &self.calls.base_label)
            .field("operation_timeout", &self.calls.operation_timeout)
            .finish_non_exhaustive()
    }
}

impl StsSource {
    /// A source for `config`. Builds the base credentials provider and the STS client without any
    /// network call; fails only when the configuration is invalid ([`StsSourceConfig::validate`]).
    pub async fn new(config: StsSourceConfig) -> Result<Self, SettingsError> {
        config.validate()?;
        let base = base_provider(&config).await;
        let shared = shared_config(&config, base.clone()).await;
        let (client_config, calls) = client_config(&config, &shared);
        Ok(StsSource { client: aws_sdk_sts::Client::from_conf(client_config.build()), base, calls })
    }

    /// How errors name the endpoint: ``STS at `URL` `` or ``STS in region `REGION` ``.
    pub fn endpoint(&self) -> &str {
        self.calls.service()
    }

    async fn base_credentials(&self) -> Result<Credentials, SourceError> {
        let (base_label, operation_timeout) = (&self.calls.base_label, self.calls.operation_timeout);
        let loaded = tokio::time::timeout(operation_timeout, self.base.provide_credentials()).await;
        let loaded = match loaded {
            Ok(result) => result,
            Err(_) => {
                return Err(SourceError::new(
                    ErrorKind::Timeout,
                    format!(
                        "loading the base credentials from {base_label} took longer than {} s",
                        operation_timeout.as_secs_f64()
                    ),
                ));
            }
        };
        match loaded {
            Ok(c) => Ok(Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                c.session_token().map(str::to_owned),
                c.expiry(),
            )),
            Err(error) => Err(SourceError::new(
                credentials_error_kind(&error),
                format!("cannot load the base credentials from {base_label}: {}", chain(&error)),
            )),
        }
    }

    async fn assume_role(&self, request: &AssumeRoleRequest<'_>) -> Result<Credentials, SourceError> {
        let result = self
            .client
            .assume_role()
            .role_arn(request.role_arn.as_str())
            .role_session_name(request.session_name.as_str())
            .duration_seconds(i32::try_from(request.duration_seconds).unwrap_or(i32::MAX))
            .set_external_id(request.external_id.map(str::to_owned))
            .set_source_identity(request.source_identity.map(str::to_owned))
            .send()
            .await;
        let what = || format!("AssumeRole on role `{}` (session `{}`)", request.role_arn, request.session_name);
        let output = result.map_err(|error| self.calls.classify(&error, &what()))?;
        // The SDK fills missing required fields with empty values: check that none is missing.
        let credentials = output.credentials();
        let missing: Vec<&str> = [
            ("AccessKeyId", credentials.is_none_or(|c| c.access_key_id().is_empty())),
            ("SecretAccessKey", credentials.is_none_or(|c| c.secret_access_key().is_empty())),
            ("SessionToken", credentials.is_none_or(|c| c.session_token().is_empty())),
            ("Expiration", credentials.is_none_or(|c| c.expiration().secs() <= 0)),
        ]
        .into_iter()
        .filter_map(|(field, missing)| missing.then_some(field))
        .collect();
        let (Some(credentials), true) = (credentials, missing.is_empty()) else {
            return Err(SourceError::new(
                ErrorKind::Other,
                format!(
                    "{} answered {} without usable credentials: no {}",
                    self.calls.service,
                    what(),
                    missing.join(", ")
                ),
            ));
        };
        let expiration = SystemTime::try_from(*credentials.expiration()).map_err(|_| {
            SourceError::new(
                ErrorKind::Other,
                format!(
                    "{} answered {} with an unusable expiration `{}`",
                    self.calls.service,
                    what(),
                    credentials.expiration()
                ),
            )
        })?;
        Ok(Credentials::new(
            credentials.access_key_id(),
            credentials.secret_access_key(),
            Some(credentials.session_token().to_owned()),
            Some(expiration),
        ))
    }
}

/// How the failed calls to one AWS service are told: the service and its endpoint, where the base
/// credentials come from, and the bounds a timeout message quotes.
#[derive(Debug, Clone)]
pub(crate) struct Calls {
    /// ``STS at `URL` ``, ``EMR in region `REGION` ``.
    service: String,
    base_label: String,
    operation_timeout: Duration,
    attempt_timeout: Duration,
    max_attempts: u32,
}

impl Calls {
    /// The calls to the service named `name` (`STS`, `EMR`, `IAM`) at `endpoint` (`None`: the region's),
    /// made under `config`.
    pub(crate) fn new(name: &str, endpoint: Option<&str>, config: &StsSourceConfig) -> Self {
        let service = match endpoint {
            Some(url) => format!("{name} at `{}`", crate::diagnostics::Escaped(url)),
            None => format!("{name} in region `{}`", config.region),
        };
        Calls {
            service,
            base_label: config.base_credentials.to_string(),
            operation_timeout: config.operation_timeout,
            attempt_timeout: config.attempt_timeout,
            max_attempts: config.max_attempts,
        }
    }

    /// How errors name the service and its endpoint.
    pub(crate) fn service(&self) -> &str {
        &self.service
    }

    /// The kind and message of a failed call; `what` names the call and what it was about.
    pub(crate) fn classify<E>(&self, error: &SdkError<E, HttpResponse>, what: &str) -> SourceError
    where
        E: ProvideErrorMetadata + RequestId + StdError + 'static,
    {
        let sts = &self.service;
        // A successful answer holds credentials: never quote what was read of it.
        let unreadable = |status: u16, detail: String| {
            let kind = if status >= 500 { ErrorKind::ServerError } else { ErrorKind::Other };
            SourceError::new(kind, format!("{sts} gave an unreadable answer to {what} (HTTP {status}): {detail}"))
        };
        match error {
            SdkError::ServiceError(service) if service.raw().status().is_success() => {
                unreadable(service.raw().status().as_u16(), "its content is not shown".to_owned())
            }
            SdkError::ServiceError(service) => {
                let err = service.err();
                let status = service.raw().status().as_u16();
                let mut message = match err.code() {
                    Some(code) => format!("{sts} refused {what}: `{code}` (HTTP {status})"),
                    None => format!("{sts} refused {what} with HTTP {status} and no error code"),
                };
                if let Some(text) = err.message() {
                    message.push_str(": ");
                    message.push_str(text);
                }
                if let Some(id) = err.request_id() {
                    message.push_str(&format!(" [request ID {id}]"));
                }
                SourceError::new(service_error_kind(err.code(), status), message)
            }
            SdkError::TimeoutError(_) => SourceError::new(
                ErrorKind::Timeout,
                format!(
                    "{sts} did not answer {what} in time ({} attempt(s) of at most {} s, {} s in all): {}",
                    self.max_attempts,
                    self.attempt_timeout.as_secs_f64(),
                    self.operation_timeout.as_secs_f64(),
                    chain(error)
                ),
            ),
            SdkError::DispatchFailure(failure) => {
                if let Some(base) = find_source::<CredentialsError>(error) {
                    return SourceError::new(
                        credentials_error_kind(base),
                        format!(
                            "cannot load the base credentials from {} for {what}: {}",
                            self.base_label,
                            chain(base)
                        ),
                    );
                }
                let timed_out = failure.is_timeout();
                let kind = if timed_out { ErrorKind::Timeout } else { ErrorKind::Connection };
                let verb = if timed_out { "timed out reaching" } else { "cannot reach" };
                SourceError::new(kind, format!("{verb} {sts} for {what}: {}", chain(error)))
            }
            SdkError::ResponseError(response) => {
                let status = response.raw().status();
                let detail = if status.is_success() { "its content is not shown".to_owned() } else { chain(error) };
                unreadable(status.as_u16(), detail)
            }
            _ => SourceError::new(ErrorKind::Other, format!("{what} at {sts} failed: {}", chain(error))),
        }
    }
}

impl CredentialSource for StsSource {
    async fn fetch(&self, request: &CredentialRequest<'_>) -> Result<Credentials, SourceError> {
        match request {
            CredentialRequest(RequestKind::Base) => self.base_credentials().await,
            CredentialRequest(RequestKind::AssumeRole(r)) => self.assume_role(r).await,
        }
    }
}

/// The base credentials provider `config` asks for; IMDS timeouts bounded for the default chain.
pub(crate) async fn base_provider(config: &StsSourceConfig) -> SharedCredentialsProvider {
    let region = Region::new(config.region.clone());
    match &config.base_credentials {
        BaseCredentials::Static(c) => SharedCredentialsProvider::new(aws_credential_types::Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            c.session_token().map(str::to_owned),
            c.expiration(),
            "emrfs-rolemap-static",
        )),
        BaseCredentials::Profile(name) => SharedCredentialsProvider::new(
            ProfileFileCredentialsProvider::builder()
                .profile_name(name)
                .configure(&ProviderConfig::default().with_region(Some(region)))
                .build(),
        ),
        BaseCredentials::DefaultChain => {
            let imds = aws_config::imds::Client::builder()
                .connect_timeout(config.imds_timeout)
                .read_timeout(config.imds_timeout)
                .max_attempts(IMDS_ATTEMPTS)
                .operation_timeout(config.operation_timeout)
                .build();
            SharedCredentialsProvider::new(
                DefaultCredentialsChain::builder().region(region).imds_client(imds).build().await,
            )
        }
    }
}

/// The SDK configuration that every AWS client of a run starts from: the region, the base credentials,
/// the timeouts and the retries of `config`, whatever the environment or a profile says; the endpoints
/// as the SDK finds them ([`endpoint_url`]). Makes no network call.
pub(crate) async fn shared_config(config: &StsSourceConfig, base: SharedCredentialsProvider) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(config.connect_timeout)
        .operation_attempt_timeout(config.attempt_timeout)
        .operation_timeout(config.operation_timeout)
        .build();
    let retries =
        RetryConfig::standard().with_max_attempts(config.max_attempts).with_initial_backoff(config.initial_backoff);
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(config.region.clone()))
        .credentials_provider(base)
        .timeout_config(timeouts)
        .retry_config(retries);
    if let BaseCredentials::Profile(name) = &config.base_credentials {
        loader = loader.profile_name(name);
    }
    loader.load().await
}

/// The endpoint URL of the service whose SDK ID is `service_id` (`STS`, `EMR`, `IAM`), as the AWS CLI
/// picks it: `explicit` (`--endpoint-url`), else `AWS_ENDPOINT_URL_<SERVICE>`, `AWS_ENDPOINT_URL`, the
/// profile's `services` section or `endpoint_url` (none of these with
/// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`); `None` for the region's own endpoint.
pub(crate) fn endpoint_url(shared: &SdkConfig, service_id: &str, explicit: Option<&str>) -> Option<String> {
    if let Some(url) = explicit {
        return Some(url.to_owned());
    }
    let key =
        ServiceConfigKey::builder().service_id(service_id).env("AWS_ENDPOINT_URL").profile("endpoint_url").build();
    key.ok()
        .and_then(|key| shared.service_config().and_then(|c| c.load_config(key)))
        .or_else(|| shared.endpoint_url().map(str::to_owned))
}

/// The STS client configuration from the run's `shared` one, with the endpoint of `config` (else the
/// configured one, else the region's), and how its failures are told.
fn client_config(config: &StsSourceConfig, shared: &SdkConfig) -> (aws_sdk_sts::config::Builder, Calls) {
    let endpoint = endpoint_url(shared, "STS", config.endpoint_url.as_deref());
    let mut builder = aws_sdk_sts::config::Builder::from(shared);
    builder.set_endpoint_url(endpoint.clone());
    (builder, Calls::new("STS", endpoint.as_deref(), config))
}

/// STS error codes meaning the caller may not do this (the role's trust policy, an SCP, a disabled
/// region). They are remembered briefly by the cache.
const ACCESS_DENIED_CODES: &[&str] =
    &["AccessDenied", "AccessDeniedException", "NotAuthorized", "UnauthorizedOperation", "RegionDisabledException"];
/// STS error codes meaning the base credentials themselves were rejected.
const BAD_BASE_CREDENTIALS_CODES: &[&str] = &[
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "ExpiredToken",
    "ExpiredTokenException",
];
/// STS error codes asking the caller to slow down.
const THROTTLING_CODES: &[&str] =
    &["Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException", "SlowDown"];

/// The kind of an error answer with `code` and HTTP `status`.
fn service_error_kind(code: Option<&str>, status: u16) -> ErrorKind {
    let is = |codes: &[&str]| code.is_some_and(|c| codes.contains(&c));
    if is(THROTTLING_CODES) || status == 429 {
        ErrorKind::Throttling
    } else if is(ACCESS_DENIED_CODES) {
        ErrorKind::AccessDenied
    } else if is(BAD_BASE_CREDENTIALS_CODES) {
        ErrorKind::BaseCredentials
    } else if status >= 500 {
        ErrorKind::ServerError
    } else if status >= 400 {
        ErrorKind::InvalidRequest
    } else {
        ErrorKind::Other
    }
}

/// The kind of a failure to load the base credentials: a timeout is transient, the rest is not.
fn credentials_error_kind(error: &CredentialsError) -> ErrorKind {
    match error {
        CredentialsError::ProviderTimedOut(_) => ErrorKind::Timeout,
        _ => ErrorKind::BaseCredentials,
    }
}

/// The first error of type `T` in the source chain of `error`.
fn find_source<'a, T: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// An error and its sources, `outer: inner: innermost` (Display only, never Debug, so no request or
/// credential is quoted).
fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(e) = current {
        let next = e.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        current = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{IdentifierType, RoleArn};
    use crate::credentials::session_name::{SessionName, SessionNameTemplate};
    use crate::resolve::MappingMatch;
    use aws_credential_types::provider::future;
    use aws_sdk_sts::Client;
    use aws_sdk_sts::config::http::HttpResponse;
    use aws_sdk_sts::operation::assume_role::AssumeRoleOutput;
    use aws_sdk_sts::primitives::DateTime;
    use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
    use aws_smithy_types::body::SdkBody;

    #[test]
    fn base_credentials_never_show_their_secret() {
        let base = BaseCredentials::Static(Credentials::new("AKIDBASE", "base-SECRET", Some("TOKEN".into()), None));
        for shown in [format!("{base:?}"), format!("{base}")] {
            assert!(!shown.contains("SECRET") && !shown.contains("TOKEN"), "{shown}");
        }
    }

    const ROLE: &str = "arn:aws:iam::123456789012:role/analysts";
    const BASE_SECRET: &str = "base-secret-never-shown";
    const ROLE_SECRET: &str = "role-secret-never-shown";

    fn config() -> StsSourceConfig {
        StsSourceConfig {
            base_credentials: BaseCredentials::Static(Credentials::new("AKIDBASE", BASE_SECRET, None, None)),
            initial_backoff: Duration::from_millis(1),
            ..StsSourceConfig::new("us-east-1")
        }
    }

    /// A source whose STS answers come from `rules`, with the retry and timeout settings of `config()`.
    async fn source(base: SharedCredentialsProvider, rules: &[&Rule]) -> StsSource {
        let config = config();
        let interceptor =
            rules.iter().fold(MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny), |i, r| i.with_rule(r));
        let (client_config, calls) = client_config(&config, &shared_config(&config, base.clone()).await);
        let client_config = client_config.http_client(create_mock_http_client()).interceptor(interceptor);
        StsSource { client: Client::from_conf(client_config.build()), base, calls }
    }

    async fn static_base() -> SharedCredentialsProvider {
        base_provider(&config()).await
    }

    fn session_name(user: &str) -> SessionName {
        let role = RoleArn::parse(ROLE).unwrap();
        let decided = MappingMatch { index: 0, role: &role, identifier_type: IdentifierType::User, identifier: user };
        SessionNameTemplate::default().render(Some(user), &decided)
    }

    fn error_xml(code: &str, message: &str) -> String {
        format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
             <Code>{code}</Code><Message>{message}</Message></Error><RequestId>req-4711</RequestId></ErrorResponse>"
        )
    }

    /// An STS answer as it comes over the wire: the status, the request ID header and the XML body.
    fn http_answer(status: u16, body: String) -> HttpResponse {
        let status = status.try_into().unwrap();
        let mut response = HttpResponse::new(status, SdkBody::from(body));
        response.headers_mut().insert("x-amzn-RequestId", "req-4711");
        response
    }

    fn answering(status: u16, code: &'static str, message: &'static str) -> Rule {
        mock!(Client::assume_role)
            .sequence()
            .http_response(move || http_answer(status, error_xml(code, message)))
            .repeatedly()
            .build()
    }

    fn granted() -> AssumeRoleOutput {
        let credentials = aws_sdk_sts::types::Credentials::builder()
            .access_key_id("ASIAROLE")
            .secret_access_key(ROLE_SECRET)
            .session_token("role-token")
            .expiration(DateTime::from_secs(2_000_000_000))
            .build()
            .unwrap();
        AssumeRoleOutput::builder().credentials(credentials).build()
    }

    async fn assume(
        source: &StsSource,
        external_id: Option<&str>,
        source_identity: Option<&str>,
    ) -> Result<Credentials, SourceError> {
        let role = RoleArn::parse(ROLE).unwrap();
        let request = AssumeRoleRequest {
            role_arn: &role,
            session_name: session_name("alice"),
            duration_seconds: 900,
            external_id,
            source_identity,
        };
        source.fetch(&CredentialRequest(RequestKind::AssumeRole(request))).await
    }

    fn assert_no_secret(text: &str) {
        assert!(!text.contains(BASE_SECRET) && !text.contains(ROLE_SECRET), "a secret leaked: {text}");
    }

    #[tokio::test]
    async fn throttling_is_retried_three_times_then_classified_throttling() {
        let rule = answering(400, "Throttling", "Rate exceeded");
        let error = assume(&source(static_base().await, &[&rule]).await, None, None).await.unwrap_err();
        assert_eq!(rule.num_calls(), 3, "standard retry mode makes 3 attempts");
        assert_eq!(error.kind, ErrorKind::Throttling);
        for part in [
            "STS in region `us-east-1`",
            ROLE,
            "emrfs-alice",
            "`Throttling` (HTTP 400)",
            "Rate exceeded",
            "request ID req-4711",
        ] {
            assert!(error.message.contains(part), "`{part}` missing from: {}", error.message);
        }
        assert_no_secret(&error.message);
    }

    #[tokio::test]
    async fn a_retried_throttling_that_then_succeeds_returns_the_credentials() {
        let rule = mock!(Client::assume_role)
            .sequence()
            .http_status(400, Some(error_xml("Throttling", "Rate exceeded")))
            .output(granted)
            .build();
        let credentials = assume(&source(static_base().await, &[&rule]).await, None, None).await.unwrap();
        assert_eq!(rule.num_calls(), 2);
        assert_eq!(credentials.access_key_id(), "ASIAROLE");
        assert_eq!(credentials.secret_access_key(), ROLE_SECRET);
        assert_eq!(credentials.session_token(), Some("role-token"));
        assert_eq!(credentials.expiration(), Some(SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000)));
        assert_no_secret(&format!("{credentials:?} {credentials}"));
    }

    #[tokio::test]
    async fn access_denied_is_not_retried_and_classified_access_denied() {
        let said = "User: arn:aws:iam::123456789012:user/base is not authorized to perform: sts:AssumeRole";
        let rule = answering(403, "AccessDenied", said);
        let error = assume(&source(static_base().await, &[&rule]).await, None, None).await.unwrap_err();
        assert_eq!(rule.num_calls(), 1, "AccessDenied is not retried");
        assert_eq!(error.kind, ErrorKind::AccessDenied);
        assert!(error.message.contains(said) && error.message.contains(ROLE), "{}", error.message);
        assert!(error.message.contains("`AccessDenied` (HTTP 403)"), "{}", error.message);
        assert_no_secret(&error.message);
    }

    #[tokio::test]
    async fn a_5xx_is_retried_then_classified_server_error() {
        for (status, code) in [(500, "InternalFailure"), (503, "ServiceUnavailable")] {
            let rule = answering(status, code, "try again");
            let error = assume(&source(static_base().await, &[&rule]).await, None, None).await.unwrap_err();
            assert_eq!(rule.num_calls(), 3, "{code}");
            assert_eq!(error.kind, ErrorKind::ServerError, "{code}: {}", error.message);
            assert!(error.message.contains(&format!("(HTTP {status})")), "{}", error.message);
        }
    }

    #[tokio::test]
    async fn unreadable_or_incomplete_successful_answers_are_errors_that_quote_nothing() {
        let cases = [
            (format!("<Oops secret=\"{ROLE_SECRET}\">{ROLE_SECRET}</Oops>"), "unreadable answer"),
            (
                format!(
                    "<AssumeRoleResponse><AssumeRoleResult><Credentials><SecretAccessKey>{ROLE_SECRET}</SecretAccessKey></Credentials></AssumeRoleResult></AssumeRoleResponse>"
                ),
                "without usable credentials: no AccessKeyId, SessionToken, Expiration",
            ),
        ];
        for (body, expected) in cases {
            let rule =
                mock!(Client::assume_role).sequence().http_response(move || http_answer(200, body.clone())).build();
            let error = assume(&source(static_base().await, &[&rule]).await, None, None).await.unwrap_err();
            assert_eq!(error.kind, ErrorKind::Other, "{}", error.message);
            assert!(error.message.contains(expected) && error.message.contains(ROLE), "{}", error.message);
            assert_no_secret(&error.message);
        }
    }

    #[tokio::test]
    async fn another_4xx_is_an_invalid_request() {
        let rule = answering(400, "ValidationError", "1 validation error detected");
        let error = assume(&source(static_base().await, &[&rule]).await, None, None).await.unwrap_err();
        assert_eq!((rule.num_calls(), error.kind), (1, ErrorKind::InvalidRequest), "{}", error.message);
    }

    #[tokio::test]
    async fn the_request_carries_role_session_duration_external_id_and_source_identity() {
        let with_all = mock!(Client::assume_role)
            .match_requests(|r| {
                r.role_arn() == Some(ROLE)
                    && r.role_session_name() == Some("emrfs-alice")
                    && r.duration_seconds() == Some(900)
                    && r.external_id() == Some("ext-123")
                    && r.source_identity() == Some("alice")
            })
            .then_output(granted);
        let with_none = mock!(Client::assume_role)
            .match_requests(|r| r.external_id().is_none() && r.source_identity().is_none())
            .then_output(granted);
        let source = source(static_base().await, &[&with_all, &with_none]).await;
        assume(&source, Some("ext-123"), Some("alice")).await.unwrap();
        assume(&source, None, None).await.unwrap();
        assert_eq!((with_all.num_calls(), with_none.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn base_requests_return_the_base_credentials_without_calling_sts() {
        let rule = mock!(Client::assume_role).then_output(granted);
        let credentials = source(static_base().await, &[&rule]).await.fetch(&CredentialRequest::base()).await.unwrap();
        assert_eq!((credentials.access_key_id(), credentials.secret_access_key()), ("AKIDBASE", BASE_SECRET));
        assert_eq!((credentials.session_token(), credentials.expiration()), (None, None));
        assert_eq!(rule.num_calls(), 0);
    }

    #[derive(Debug)]
    struct NoCredentials;

    impl ProvideCredentials for NoCredentials {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            future::ProvideCredentials::ready(Err(CredentialsError::not_loaded("nothing configured in this test")))
        }
    }

    #[tokio::test]
    async fn failing_base_credentials_are_classified_base_credentials() {
        let success = "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>\
            <Credentials><AccessKeyId>ASIAROLE</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t\
            </SessionToken><Expiration>2033-05-18T03:33:20Z</Expiration></Credentials></AssumeRoleResult>\
            </AssumeRoleResponse>";
        let rule = mock!(Client::assume_role).sequence().http_response(|| http_answer(200, success.into())).build();
        let source = source(SharedCredentialsProvider::new(NoCredentials), &[&rule]).await;
        let base = source.fetch(&CredentialRequest::base()).await.unwrap_err();
        assert_eq!(base.kind, ErrorKind::BaseCredentials, "{}", base.message);
        assert!(base.message.contains("the static credentials"), "{}", base.message);
        let assumed = assume(&source, None, None).await.unwrap_err();
        assert_eq!(assumed.kind, ErrorKind::BaseCredentials, "{}", assumed.message);
        assert!(
            assumed.message.contains(ROLE) && assumed.message.contains("nothing configured"),
            "{}",
            assumed.message
        );
    }

    #[test]
    fn service_errors_are_classified_by_code_then_status() {
        let cases = [
            (Some("AccessDenied"), 403, ErrorKind::AccessDenied),
            (Some("RegionDisabledException"), 403, ErrorKind::AccessDenied),
            (Some("Throttling"), 400, ErrorKind::Throttling),
            (Some("ThrottlingException"), 400, ErrorKind::Throttling),
            (Some("RequestLimitExceeded"), 503, ErrorKind::Throttling),
            (None, 429, ErrorKind::Throttling),
            (Some("InvalidClientTokenId"), 403, ErrorKind::BaseCredentials),
            (Some("ExpiredToken"), 400, ErrorKind::BaseCredentials),
            (Some("InternalFailure"), 500, ErrorKind::ServerError),
            (None, 502, ErrorKind::ServerError),
            (Some("MalformedPolicyDocument"), 400, ErrorKind::InvalidRequest),
            (Some("Weird"), 302, ErrorKind::Other),
        ];
        for (code, status, kind) in cases {
            assert_eq!(service_error_kind(code, status), kind, "{code:?} {status}");
        }
    }

    #[test]
    fn configurations_are_checked() {
        let with = |f: fn(&mut StsSourceConfig)| {
            let mut config = config();
            f(&mut config);
            config.validate()
        };
        assert_eq!(with(|_| ()), Ok(()));
        assert_eq!(with(|c| c.endpoint_url = Some("http://127.0.0.1:5000".into())), Ok(()));
        assert!(matches!(with(|c| c.region = String::new()), Err(SettingsError::Region(_))));
        assert!(matches!(with(|c| c.region = "US East".into()), Err(SettingsError::Region(_))));
        assert!(matches!(with(|c| c.endpoint_url = Some("127.0.0.1:5000".into())), Err(SettingsError::EndpointUrl(_))));
        assert!(matches!(with(|c| c.endpoint_url = Some("https://".into())), Err(SettingsError::EndpointUrl(_))));
        assert_eq!(with(|c| c.max_attempts = 0), Err(SettingsError::MaxAttempts));
    }

    #[tokio::test]
    async fn debug_output_shows_no_secret() {
        let source = StsSource::new(config()).await.unwrap();
        assert_no_secret(&format!("{:?} {source:?}", config()));
        assert!(format!("{source:?}").contains("STS in region `us-east-1`"));
    }
}
