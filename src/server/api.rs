//! The HTTP API: routing, who may ask for whom, request bodies, and the JSON answers and errors.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, Request as HttpRequest, Response, StatusCode};
use serde::Serialize;
use serde_json::json;

use super::metrics::Endpoint;
use super::peer::{self, Caller, IdentityError};
use super::store::Generation;
use super::tokens::{self, Refusal};
use super::{App, FallbackCredentials};
use crate::credentials::{
    Access, CredentialError, CredentialSource, Credentials, ErrorKind, format_rfc3339 as rfc3339,
};
use crate::diagnostics::Escaped;
use crate::{IdentifierType, Request, RequestSpec, Resolution, RoleArn, S3Path};

/// The body of every answer.
pub(crate) type Body = Full<Bytes>;

/// An error answer: `{"error": {"code", "message", "help"?}}` with a status code.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    help: Option<String>,
    /// The request's principal, path and generation, for the audit log (never in the answer).
    context: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), help: None, context: None }
    }

    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    fn context(mut self, context: String) -> Self {
        self.context = Some(context);
        self
    }

    /// Writes the refusal to the audit log, at most once per caller, code and minute, and counts it.
    fn audit<S>(&self, app: &App<S>, caller: Caller, endpoint: Endpoint) {
        app.metrics.refused(self.code);
        let Some(left_out) = app.audit.refusal(caller, self.code, Instant::now()) else { return };
        let context = self.context.as_deref().map_or(String::new(), |c| format!(" {c}"));
        let left_out = match left_out {
            0 => String::new(),
            n => format!(" ({n} more refusal(s) of this caller with this code were not logged since the last line)"),
        };
        tracing::warn!(
            target: "emrfs_rolemap::audit",
            "refused: caller={caller} endpoint={}{context} status={} code={}: {}{left_out}",
            endpoint.label(),
            self.status.as_u16(),
            self.code,
            Escaped(&self.message),
        );
    }

    /// The answer: `{"error": {...}}`, or for the container-credentials endpoint the flat
    /// `{"code", "message", "help"}` that the AWS SDKs print when they fail.
    fn into_response(self, endpoint: Endpoint) -> Response<Body> {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(help) = self.help {
            error["help"] = help.into();
        }
        let body = if endpoint == Endpoint::ContainerCredentials { error } else { json!({ "error": error }) };
        let mut response = json_response(self.status, &body);
        let headers = response.headers_mut();
        match self.status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"emrfs-rolemap\""));
            }
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

/// Answers one request; never fails (errors are answers) and records the metrics.
pub(crate) async fn handle<S: CredentialSource>(
    app: Arc<App<S>>,
    caller: Caller,
    request: HttpRequest<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let started = Instant::now();
    let (endpoint, allowed) = route(request.uri().path());
    let response = if !allowed.contains(request.method()) {
        let error = if endpoint == Endpoint::Other {
            ApiError::new(StatusCode::NOT_FOUND, "not-found", format!("no endpoint `{}`", request.uri().path())).help(
                "the endpoints are POST /v1/resolve, /v1/explain, /v1/credentials, /v1/tokens, /v1/tokens/revoke and \
                 GET /v1/container-credentials, /healthz, /readyz, /metrics",
            )
        } else {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                format!("`{}` does not answer {}", request.uri().path(), request.method()),
            )
        };
        let mut response = error.into_response(endpoint);
        let allow = allowed.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
        if let Ok(allow) = HeaderValue::from_str(&allow)
            && !allowed.is_empty()
        {
            response.headers_mut().insert(ALLOW, allow);
        }
        response
    } else {
        let timeout = app.options.request_timeout;
        let outcome =
            tokio::time::timeout(timeout, dispatch(&app, caller, endpoint, request)).await.unwrap_or_else(|_| {
                Err(ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "timeout",
                    format!("the request took longer than {} ms", timeout.as_millis()),
                ))
            });
        match outcome {
            Ok(response) => response,
            Err(error) => {
                if matches!(endpoint, Endpoint::Credentials | Endpoint::ContainerCredentials | Endpoint::Tokens)
                    || error.status == StatusCode::UNAUTHORIZED
                {
                    error.audit(&app, caller, endpoint);
                }
                error.into_response(endpoint)
            }
        }
    };
    app.metrics.record(endpoint, response.status().as_u16(), started.elapsed());
    Ok(response)
}

/// The endpoint of a path and the methods it answers.
fn route(path: &str) -> (Endpoint, &'static [Method]) {
    const POST: &[Method] = &[Method::POST];
    const GET: &[Method] = &[Method::GET, Method::HEAD];
    match path {
        "/v1/resolve" => (Endpoint::Resolve, POST),
        "/v1/explain" => (Endpoint::Explain, POST),
        "/v1/credentials" => (Endpoint::Credentials, POST),
        "/v1/container-credentials" => (Endpoint::ContainerCredentials, &[Method::GET]),
        "/v1/tokens" => (Endpoint::Tokens, POST),
        "/v1/tokens/revoke" => (Endpoint::TokensRevoke, POST),
        "/healthz" => (Endpoint::Healthz, GET),
        "/readyz" => (Endpoint::Readyz, GET),
        "/metrics" => (Endpoint::Metrics, GET),
        _ => (Endpoint::Other, &[]),
    }
}

async fn dispatch<S: CredentialSource>(
    app: &App<S>,
    caller: Caller,
    endpoint: Endpoint,
    request: HttpRequest<Incoming>,
) -> Result<Response<Body>, ApiError> {
    if endpoint == Endpoint::Healthz {
        return Ok(json_response(StatusCode::OK, &json!({"status": "ok"})));
    }
    // Over TCP, the token names the caller: the server's own (a trusted proxy) or a per-user token.
    let (caller, token_user) = match caller {
        Caller::Tcp => authenticate(app, &request)?,
        other => (other, None),
    };
    let token_user = token_user.as_deref();
    match endpoint {
        Endpoint::Readyz => Ok(readyz(app, caller)),
        Endpoint::Metrics => {
            let text = app.metrics.render(&app.store, &app.broker.cache().stats(), app.trusts(caller));
            let mut response = Response::new(Full::new(Bytes::from(text)));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
            Ok(response)
        }
        Endpoint::ContainerCredentials => {
            let generation = app.store.current();
            let query = ContainerQuery::parse(request.uri().query().unwrap_or(""))?;
            let principal = principal(app, caller, token_user, query.user, query.groups).await?;
            let path = query.path.as_deref().map(parse_path).transpose()?;
            grant(app, caller, &generation, &principal, path.as_ref(), |access| {
                json_response(StatusCode::OK, &container_credentials(access))
            })
            .await
        }
        Endpoint::Tokens => issue_token(app, caller, request).await,
        Endpoint::TokensRevoke => revoke_tokens(app, caller, token_user, request).await,
        _ => {
            let body = read_body(app, request).await?;
            // One generation answers the whole request, whatever reloads happen meanwhile.
            let generation = app.store.current();
            let spec = RequestSpec::from_json(&body).map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid-json", format!("invalid request body: {e}"))
                    .help(r#"send a JSON object {"user": "...", "groups": ["..."], "path": "s3://bucket/key"}; every field is optional"#)
            })?;
            // An empty list is no groups given, as before tokens existed.
            let groups = Some(spec.groups).filter(|groups| !groups.is_empty());
            let principal = principal(app, caller, token_user, spec.user, groups).await?;
            let path = spec.path.as_deref().map(parse_path).transpose()?;
            match endpoint {
                Endpoint::Resolve => {
                    let request = principal.request(path);
                    let resolution = generation.resolver().resolve(&request);
                    Ok(answer(&generation, &principal, &resolution))
                }
                Endpoint::Explain => {
                    let request = principal.request(path);
                    let resolver = generation.resolver();
                    // An untrusted caller gets only its own answer: the mappings that matched its request.
                    let explanation = if app.trusts(caller) {
                        resolver.explain(&request)
                    } else {
                        resolver.explain_matches(&request)
                    };
                    Ok(answer(&generation, &principal, &explanation))
                }
                _ => credentials(app, caller, &generation, &principal, path.as_ref()).await,
            }
        }
    }
}

/// Who a TCP request comes from: the holder of the server's bearer token, or of a per-user token
/// (then also the user name it was issued to). Both are accepted as `Bearer TOKEN` or as the bare
/// value, which is what the AWS SDKs send.
fn authenticate<S>(app: &App<S>, request: &HttpRequest<Incoming>) -> Result<(Caller, Option<String>), ApiError> {
    let Some(presented) = request.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing-token",
            "this endpoint needs an `Authorization` header over TCP: the server's token or a per-user token",
        )
        .help("send `Authorization: Bearer TOKEN` (the SDKs send AWS_CONTAINER_AUTHORIZATION_TOKEN), get a per-user token with `emrfs-rolemap token`, or connect through the Unix socket"));
    };
    if app.token.load().as_ref().is_some_and(|token| token.accepts(Some(presented))) {
        return Ok((Caller::Tcp, None));
    }
    let token = peer::presented_token(presented);
    if !token.starts_with(tokens::PREFIX.as_bytes()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong-token",
            "the token is neither the server's nor a per-user token",
        )
        .help("get a per-user token with `emrfs-rolemap token --socket PATH`"));
    }
    let keys = app.token_keys.load();
    let keys = match keys.as_ref() {
        Some(keys) if app.options.user_tokens => keys,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "user-tokens-disabled",
                "this server does not accept per-user tokens",
            )
            .help("the server runs with --no-user-tokens; ask its operator"));
        }
    };
    match keys.verify(token, now_ms()) {
        Ok(claims) => Ok((Caller::UserToken { uid: claims.uid }, Some(claims.user))),
        Err(refusal) => {
            let code = match refusal {
                Refusal::Expired(_) => "expired-token",
                Refusal::Revoked(_) => "revoked-token",
                Refusal::Malformed | Refusal::Forged => "invalid-token",
            };
            Err(ApiError::new(StatusCode::UNAUTHORIZED, code, refusal.to_string())
                .help("get a new token with `emrfs-rolemap token --socket PATH`"))
        }
    }
}

/// Milliseconds since the Unix epoch, by the system clock.
fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn parse_path(text: &str) -> Result<S3Path<'_>, ApiError> {
    S3Path::parse(text).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid-path", format!("invalid path `{text}`: {e}"))
            .help("give an S3 location such as `s3://bucket/key` (also s3a:// or s3n://)")
    })
}

/// Reads a body of at most the configured limit within the body timeout.
async fn read_body<S>(app: &App<S>, request: HttpRequest<Incoming>) -> Result<Bytes, ApiError> {
    let limit = app.options.body_limit;
    let too_large = || {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body-too-large", format!("the body is over {limit} bytes"))
            .help("a request is one small JSON object; the limit is the server's --body-limit")
    };
    let declared = request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let timeout = app.options.body_timeout;
    match tokio::time::timeout(timeout, Limited::new(request.into_body(), limit).collect()).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body-timeout",
            format!("the body did not arrive within {} ms", timeout.as_millis()),
        )),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => {
            Err(ApiError::new(StatusCode::BAD_REQUEST, "unreadable-body", format!("cannot read the body: {e}")))
        }
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// The user and groups a request is resolved for, after the caller's rights are applied.
#[derive(Debug, Serialize)]
struct Principal {
    user: Option<String>,
    groups: Vec<String>,
    /// `request` when the caller supplied the groups, `os` when they were looked up for its uid.
    groups_from: &'static str,
}

impl Principal {
    fn request<'a>(&'a self, path: Option<S3Path<'a>>) -> Request<'a> {
        Request { user: self.user.as_deref(), groups: &self.groups, path }
    }
}

/// Applies the rules of who may ask for whom: TCP callers with the server's token, root and
/// allow-listed uids ask for anyone; any other Unix-socket caller only for its own user, with its groups
/// from the OS; a per-user token only for the user it was issued to, with the groups the OS gives now
/// (`token_user`: that user's name, which must still be the uid's).
async fn principal<S>(
    app: &App<S>,
    caller: Caller,
    token_user: Option<&str>,
    user: Option<String>,
    groups: Option<Vec<String>>,
) -> Result<Principal, ApiError> {
    let (uid, fresh) = match caller {
        Caller::UserToken { uid } => (uid, true),
        Caller::Unix { uid } if !app.trusts(caller) => (uid, false),
        _ => return Ok(Principal { user, groups: groups.unwrap_or_default(), groups_from: "request" }),
    };
    let identity = if fresh { app.identities.lookup_fresh(uid).await } else { app.identities.lookup(uid).await };
    let identity = identity.map_err(|e| {
        app.metrics.identity_lookup_failed();
        match e {
            IdentityError::UnknownUid(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "unknown-caller", format!("cannot name the caller: {e}"))
            }
            IdentityError::Timeout { .. } | IdentityError::Lookup { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "identity-lookup-failed",
                format!("cannot name the caller: {e}"),
            )
            .help("the OS's user and group databases (NSS: files, LDAP, SSSD) did not answer; try again"),
        }
    })?;
    if let Some(issued_to) = token_user.filter(|name| *name != identity.user) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "stale-token",
            format!("the token was issued to `{issued_to}`, and uid {uid} is now `{}`", identity.user),
        )
        .help("get a new token with `emrfs-rolemap token --socket PATH`"));
    }
    if let Some(asked) = user.as_deref().filter(|asked| *asked != identity.user) {
        let how = match caller {
            Caller::UserToken { .. } => "a per-user token",
            _ => "this uid",
        };
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not-your-user",
            format!(
                "{caller} (`{}`) may ask only for its own user, not `{asked}`: {how} is not trusted to ask for others",
                identity.user
            ),
        )
        .help(
            "leave `user` out, or ask through the server's token or an allow-listed uid (the server's --allow-uid)",
        ));
    }
    if groups.is_some() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "groups-not-accepted",
            format!("{caller} (`{}`) may not supply groups; they are looked up from the OS", identity.user),
        )
        .help("leave `groups` out"));
    }
    Ok(Principal { user: Some(identity.user.clone()), groups: identity.groups.clone(), groups_from: "os" })
}

/// `{"generation", "principal", ...answer}`.
fn answer<T: Serialize>(generation: &Generation, principal: &Principal, answer: &T) -> Response<Body> {
    #[derive(Serialize)]
    struct Answered<'a, T> {
        generation: u64,
        principal: &'a Principal,
        #[serde(flatten)]
        answer: &'a T,
    }
    json_response(StatusCode::OK, &Answered { generation: generation.number(), principal, answer })
}

/// Resolves and fetches the credentials. A fallback is served only to callers the server trusts, and
/// only with `--fallback-credentials trusted`: the base credentials may assume every mapped role. The
/// first grant of each set of credentials to a caller goes to the audit log (target
/// `emrfs_rolemap::audit`) with the caller, the principal, the decision and the access key ID — never a
/// secret; every grant is counted by role in the metrics.
async fn credentials<S: CredentialSource>(
    app: &App<S>,
    caller: Caller,
    generation: &Generation,
    principal: &Principal,
    path: Option<&S3Path<'_>>,
) -> Result<Response<Body>, ApiError> {
    grant(app, caller, generation, principal, path, |access| {
        json_response(
            StatusCode::OK,
            &CredentialsAnswer {
                generation: generation.number(),
                principal,
                resolution: &access.resolution,
                credentials: GrantedCredentials::of(&access.credentials),
                matched_grant_target: matched_target(&access.resolution),
            },
        )
    })
    .await
}

/// The answer of `/v1/credentials`, serialised straight from the grant (its fields in this order, as
/// they always were): no copy of the secret or of the session token into a JSON tree first.
#[derive(Serialize)]
struct CredentialsAnswer<'a> {
    generation: u64,
    principal: &'a Principal,
    resolution: &'a Resolution<'a>,
    #[serde(rename = "Credentials")]
    credentials: GrantedCredentials<'a>,
    #[serde(rename = "MatchedGrantTarget")]
    matched_grant_target: Option<String>,
}

/// The `Credentials` object of S3 Access Grants' GetDataAccess. Holds the secret: no `Debug`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GrantedCredentials<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    session_token: Option<&'a str>,
    expiration: Option<String>,
}

impl<'a> GrantedCredentials<'a> {
    fn of(credentials: &'a Credentials) -> Self {
        GrantedCredentials {
            access_key_id: credentials.access_key_id(),
            secret_access_key: credentials.secret_access_key(),
            session_token: credentials.session_token(),
            expiration: credentials.expiration().map(rfc3339),
        }
    }
}

/// Resolves `principal` and `path` and fetches the decided role's credentials, under the fallback
/// rule; audits and counts the grant, and answers what `render` makes of it. The location is put into
/// words only for the audit log and for errors, not for every cache hit.
async fn grant<S: CredentialSource>(
    app: &App<S>,
    caller: Caller,
    generation: &Generation,
    principal: &Principal,
    path: Option<&S3Path<'_>>,
    render: impl FnOnce(&Access<'_>) -> Response<Body>,
) -> Result<Response<Body>, ApiError> {
    let prepared = generation.resolver().prepare(principal.user.as_deref(), &principal.groups);
    let user = principal.user.as_deref().unwrap_or("");
    let location = || path.map(ToString::to_string).unwrap_or_default();
    let context = || format!("user={user:?} path={:?} generation={}", location(), generation.number());
    let resolution = prepared.resolve(path);
    if resolution.mapping().is_none() && !app.serves_fallback_to(caller) {
        return Err(fallback_refused(app, &location()).context(context()));
    }
    let access =
        app.broker.serve(resolution, prepared.user()).await.map_err(|e| credential_error(e).context(context()))?;
    let role = access.resolution.role().map_or("fallback", |r| r.as_str());
    app.metrics.granted(role, access.origin());
    if app.audit.first_grant(caller, user, access.credentials.access_key_id()) {
        tracing::info!(
            target: "emrfs_rolemap::audit",
            "granted: caller={caller} user={user:?} groups_from={} path={:?} generation={} decision={} role={} origin={} access_key_id={}",
            principal.groups_from,
            location(),
            generation.number(),
            access.resolution.decision(),
            access.resolution.role().map_or("instance-profile", |r| r.as_str()),
            access.origin().as_str(),
            access.credentials.access_key_id(),
        );
    }
    Ok(render(&access))
}

/// How far ahead the `Expiration` of credentials that never expire (static base keys) is put: the SDKs
/// require one, and fetch again before it.
const NO_EXPIRY_REFETCH: std::time::Duration = std::time::Duration::from_secs(3600);

/// What the AWS SDKs' container-credentials provider reads: `AccessKeyId`, `SecretAccessKey`, `Token`,
/// `Expiration` (RFC 3339; an hour ahead for credentials that never expire), and the `RoleArn` and
/// `AccountId` when the decided role is known.
fn container_credentials<'a>(access: &'a Access<'_>) -> ContainerCredentials<'a> {
    let credentials = &access.credentials;
    let expiration = credentials.expiration().unwrap_or_else(|| std::time::SystemTime::now() + NO_EXPIRY_REFETCH);
    let role = access.resolution.role();
    ContainerCredentials {
        access_key_id: credentials.access_key_id(),
        secret_access_key: credentials.secret_access_key(),
        token: credentials.session_token(),
        expiration: rfc3339(expiration),
        role_arn: role.map(RoleArn::as_str),
        account_id: role.map(RoleArn::account).filter(|account| !account.is_empty()),
    }
}

/// The answer of `GET /v1/container-credentials`, serialised straight from the grant as
/// `/v1/credentials` is. Holds the secret: no `Debug`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerCredentials<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    token: Option<&'a str>,
    expiration: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    role_arn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
}

/// The query of `GET /v1/container-credentials`: `path`, `user` and `groups` (comma-separated), each
/// at most once and percent-decoded once (RFC 3986: `+` is a plus sign).
#[derive(Debug, Default)]
struct ContainerQuery {
    path: Option<String>,
    user: Option<String>,
    /// `None` when the query has no `groups`; `groups=` is the empty list.
    groups: Option<Vec<String>>,
}

impl ContainerQuery {
    fn parse(query: &str) -> Result<ContainerQuery, ApiError> {
        let bad = |code: &'static str, message: String| {
            ApiError::new(StatusCode::BAD_REQUEST, code, message).help(
                "the query takes `path` (an S3 location), and for trusted callers `user` and `groups` \
                 (comma-separated), each once and percent-encoded: ?path=s3%3A%2F%2Fbucket%2Fkey&user=alice",
            )
        };
        let mut parsed = ContainerQuery::default();
        let mut seen = [false; 3];
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(name).map_err(|e| bad("invalid-query", format!("a parameter name {e}")))?;
            let value = percent_decode(value).map_err(|e| bad("invalid-query", format!("`{name}` {e}")))?;
            let slot = match name.as_str() {
                "path" => 0,
                "user" => 1,
                "groups" => 2,
                _ => return Err(bad("unknown-parameter", format!("unknown query parameter `{}`", Escaped(&name)))),
            };
            if std::mem::replace(&mut seen[slot], true) {
                return Err(bad("duplicate-parameter", format!("`{name}` is given more than once")));
            }
            match slot {
                0 if value.is_empty() => return Err(bad("invalid-query", "`path` is empty".to_owned())),
                0 => parsed.path = Some(value),
                1 if value.is_empty() => return Err(bad("invalid-query", "`user` is empty".to_owned())),
                1 => parsed.user = Some(value),
                _ if value.is_empty() => parsed.groups = Some(Vec::new()),
                _ => {
                    let groups: Vec<String> = value.split(',').map(str::to_owned).collect();
                    if groups.iter().any(String::is_empty) {
                        return Err(bad("invalid-query", format!("`groups` has an empty name: `{}`", Escaped(&value))));
                    }
                    parsed.groups = Some(groups);
                }
            }
        }
        Ok(parsed)
    }
}

/// Decodes `%XX` escapes once; everything else, `+` included, stands for itself. The result must be
/// UTF-8; the error completes "`NAME` ...".
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or_else(|| {
                format!("has `%` at byte {} not followed by two hexadecimal digits; write a percent sign as %25", i + 1)
            })?;
            decoded.push(byte);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded).map_err(|_| "is not UTF-8 once percent-decoded".to_owned())
}

/// `POST /v1/tokens`: a per-user token for the Unix-socket caller's uid and user name, with the
/// lifetime asked for (`{"ttl_seconds": N}`, else [`ServerOptions::DEFAULT_TOKEN_TTL`]) up to the
/// server's maximum. The kernel names the caller, so nobody gets a token for another uid.
///
/// [`ServerOptions::DEFAULT_TOKEN_TTL`]: super::ServerOptions::DEFAULT_TOKEN_TTL
async fn issue_token<S>(
    app: &App<S>,
    caller: Caller,
    request: HttpRequest<Incoming>,
) -> Result<Response<Body>, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Asked {
        ttl_seconds: Option<u64>,
    }
    let Caller::Unix { uid } = caller else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "tokens-need-the-socket",
            "per-user tokens are issued over the Unix socket only, where the kernel names the caller's uid",
        )
        .help("run `emrfs-rolemap token --socket PATH` as the user the token is for"));
    };
    let keys = app.token_keys.load_full().filter(|_| app.options.user_tokens).ok_or_else(|| {
        ApiError::new(StatusCode::FORBIDDEN, "user-tokens-disabled", "this server does not issue per-user tokens")
            .help("the server runs with --no-user-tokens, or the OS gave it no random key (see its log)")
    })?;
    let body = read_body(app, request).await?;
    let asked: Asked = if body.trim_ascii().is_empty() {
        Asked { ttl_seconds: None }
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid-json", format!("invalid request body: {e}"))
                .help(r#"send nothing, or {"ttl_seconds": N}"#)
        })?
    };
    let max = app.options.token_max_ttl.as_secs();
    let ttl = asked.ttl_seconds.unwrap_or(super::ServerOptions::DEFAULT_TOKEN_TTL.as_secs().min(max));
    if ttl == 0 || ttl > max {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-ttl",
            format!("a token may live from 1 to {max} seconds, not {ttl}"),
        )
        .help("ask for a shorter --ttl; the server's --token-max-ttl sets the maximum"));
    }
    let identity = app.identities.lookup_fresh(uid).await.map_err(|e| {
        app.metrics.identity_lookup_failed();
        let status = match e {
            IdentityError::UnknownUid(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, "unknown-caller", format!("cannot name the caller: {e}"))
    })?;
    let now = now_ms();
    let token = keys.issue(uid, &identity.user, now, ttl.saturating_mul(1000));
    let expires = std::time::UNIX_EPOCH + std::time::Duration::from_millis(now.saturating_add(ttl * 1000));
    tracing::info!(
        target: "emrfs_rolemap::audit",
        "issued a per-user token: caller={caller} user={:?} expires={}",
        identity.user,
        rfc3339(expires),
    );
    let body = json!({
        "token": token,
        "uid": uid,
        "user": identity.user,
        "expires": rfc3339(expires),
        "ttl_seconds": ttl,
    });
    Ok(json_response(StatusCode::OK, &body))
}

/// `POST /v1/tokens/revoke` with `{"user": NAME}`: refuses from now on every per-user token of that
/// user issued until now. Trusted callers revoke anyone's; others only their own user's (`user` may be
/// left out).
async fn revoke_tokens<S>(
    app: &App<S>,
    caller: Caller,
    token_user: Option<&str>,
    request: HttpRequest<Incoming>,
) -> Result<Response<Body>, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Asked {
        user: Option<String>,
    }
    let body = read_body(app, request).await?;
    let asked: Asked = if body.trim_ascii().is_empty() {
        Asked { user: None }
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid-json", format!("invalid request body: {e}"))
                .help(r#"send {"user": "NAME"}, or nothing to revoke your own tokens"#)
        })?
    };
    let own = match caller {
        // Root and allow-listed uids revoke their own tokens when they name nobody.
        Caller::Unix { uid } if asked.user.is_none() => Some(app.identities.lookup(uid).await.map_err(|e| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unknown-caller", format!("cannot name the caller: {e}"))
        })?),
        _ => None,
    };
    let principal = principal(app, caller, token_user, asked.user, None).await?;
    let user = principal.user.or(own.map(|identity| identity.user.clone())).ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "user-required", "say whose tokens to revoke")
            .help(r#"send {"user": "NAME"}"#)
    })?;
    let keys = app.token_keys.load_full().ok_or_else(|| {
        ApiError::new(StatusCode::FORBIDDEN, "user-tokens-disabled", "this server has no per-user tokens")
    })?;
    let now = now_ms();
    let (revoking, name) = (keys.clone(), user.clone());
    tokio::task::spawn_blocking(move || revoking.revoke(&name, now))
        .await
        .map_err(std::io::Error::other)
        .and_then(|written| written)
        .map_err(|e| {
            tracing::error!("revoked the tokens of {user:?} until restart only: cannot keep the revocation: {e}");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "revocation-not-kept",
                format!("the tokens of `{user}` are refused until the server restarts, but the revocation could not be written: {e}"),
            )
            .help("check that the server may write beside its --token-key-file")
        })?;
    let before = std::time::UNIX_EPOCH + std::time::Duration::from_millis(now);
    tracing::info!(target: "emrfs_rolemap::audit", "revoked the per-user tokens of {user:?}: caller={caller} issued_until={}", rfc3339(before));
    Ok(json_response(StatusCode::OK, &json!({"revoked": user, "issued_until": rfc3339(before)})))
}

/// The refusal of a fallback decision: the base credentials are not for this caller.
fn fallback_refused<S>(app: &App<S>, location: &str) -> ApiError {
    let whom = match app.options.fallback_credentials {
        FallbackCredentials::Refuse => "any caller",
        FallbackCredentials::Trusted => "callers it does not trust",
    };
    let place = if location.is_empty() { String::new() } else { format!(" for `{location}`") };
    ApiError::new(
        StatusCode::FORBIDDEN,
        "fallback-not-served",
        format!(
            "no mapping matched this request{place}, and the server does not hand out its own base credentials (the instance-profile role) to {whom}"
        ),
    )
    .help(
        "the base credentials may assume every mapped role; add a mapping for this request, or start the server with `--fallback-credentials trusted` to serve them to trusted callers only (root, --allow-uid, the TCP token)",
    )
}

/// GetDataAccess's `MatchedGrantTarget`: the S3 scope of the deciding mapping — `s3://BUCKET/PREFIX*` for a
/// `Prefix` mapping, `s3://*` for a `User` or `Group` mapping (it covers every location); none for a
/// fallback.
fn matched_target(resolution: &Resolution<'_>) -> Option<String> {
    let m = resolution.mapping()?;
    Some(match m.identifier_type {
        // `s3a://bucket/key` and `s3n://...` name the same location as `s3://bucket/key`.
        IdentifierType::Prefix => {
            let location = m.identifier.split_once("://").map_or(m.identifier, |(_, rest)| rest);
            format!("s3://{location}*")
        }
        IdentifierType::User | IdentifierType::Group => "s3://*".to_owned(),
    })
}

fn credential_error(error: CredentialError) -> ApiError {
    let (status, code) = match error.kind() {
        Some(ErrorKind::AccessDenied) => (StatusCode::FORBIDDEN, "sts-access-denied"),
        Some(ErrorKind::Throttling) => (StatusCode::TOO_MANY_REQUESTS, "sts-throttling"),
        Some(ErrorKind::Timeout) => (StatusCode::GATEWAY_TIMEOUT, "sts-timeout"),
        Some(ErrorKind::Connection | ErrorKind::ServerError) => (StatusCode::BAD_GATEWAY, "sts-unavailable"),
        Some(ErrorKind::InvalidRequest | ErrorKind::Other) => (StatusCode::BAD_GATEWAY, "sts-error"),
        Some(ErrorKind::BaseCredentials) => (StatusCode::INTERNAL_SERVER_ERROR, "base-credentials"),
        None => (StatusCode::FORBIDDEN, "fallback-not-served"),
    };
    let help = match error {
        CredentialError::AssumeRole { .. } => {
            "the request fails closed: it never falls through to another role; check the role's trust policy"
        }
        CredentialError::Base { .. } => "check the server's base credentials (its AWS profile or environment)",
        CredentialError::FallbackRefused => "add a mapping for this request",
    };
    ApiError::new(status, code, error.to_string()).help(help)
}

/// The server's state. A failed reload is shown whole to trusted callers; others get its code and the
/// codes and places of its diagnostics, never the messages, which may quote the file.
fn readyz<S>(app: &App<S>, caller: Caller) -> Response<Body> {
    let generation = app.store.current();
    let draining = app.draining.load(Ordering::Relaxed);
    let trusted = app.trusts(caller);
    let failure = app.store.last_failure().map(|f| {
        if trusted {
            json!({
                "at": rfc3339(f.at),
                "code": f.error.code(),
                "message": f.error.report(),
                "diagnostics": f.error.diagnostics(),
            })
        } else {
            let places: Vec<_> = f
                .error
                .diagnostics()
                .iter()
                .map(|d| {
                    let (line, column) = d.location().map(|at| (at.line, at.column)).unzip();
                    json!({"code": d.code(), "severity": d.severity(), "pointer": d.pointer(), "line": line, "column": column})
                })
                .collect();
            json!({"at": rfc3339(f.at), "code": f.error.code(), "diagnostics": places})
        }
    });
    let config = generation.resolver().config();
    let body = json!({
        "ready": !draining,
        "draining": draining,
        "generation": generation.number(),
        "loaded_at": rfc3339(generation.loaded_at()),
        "config": generation.source(),
        "mappings": config.mappings().len(),
        "identifiers": config.identifier_count(),
        "reloads": app.store.reloads(),
        "reload_failures": app.store.reload_failures(),
        "last_reload_error": failure,
    });
    json_response(if draining { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK }, &body)
}

/// The room an answer is serialised into: a resolve or an explain of a few mappings (300 to 600
/// bytes), a credentials answer with a session token as long as STS gives (1.5 to 2 KiB).
const ANSWER_CAPACITY: usize = 2048;

fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    // Written once into room for a whole answer, not grown from serde_json's 128 bytes by doubling.
    let mut bytes = Vec::with_capacity(ANSWER_CAPACITY);
    if let Err(e) = serde_json::to_writer(&mut bytes, value) {
        // Serialising our own answer types cannot fail; say so plainly if it ever does.
        bytes = format!(r#"{{"error": {{"code": "internal", "message": "cannot serialise the answer: {e}"}}}}"#)
            .into_bytes();
    }
    bytes.push(b'\n');
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_query_is_decoded_once_and_strictly() {
        let query = ContainerQuery::parse("path=s3%3A%2F%2Fb%2Fa+b%2525&user=al%69ce&groups=x,y").unwrap();
        assert_eq!(query.path.as_deref(), Some("s3://b/a+b%25"), "`+` stays, `%25` decodes once");
        assert_eq!(query.user.as_deref(), Some("alice"));
        assert_eq!(query.groups, Some(vec!["x".to_owned(), "y".to_owned()]));
        assert_eq!(ContainerQuery::parse("groups=").unwrap().groups, Some(vec![]));
        assert_eq!(ContainerQuery::parse("").unwrap().groups, None);
        for (bad, code) in [
            ("role=admin", "unknown-parameter"),
            ("user=a&user=b", "duplicate-parameter"),
            ("path=%zz", "invalid-query"),
            ("path=%", "invalid-query"),
            ("user=%ff", "invalid-query"),
            ("user=", "invalid-query"),
            ("groups=a,,b", "invalid-query"),
        ] {
            let error = ContainerQuery::parse(bad).unwrap_err();
            assert_eq!((error.status, error.code), (StatusCode::BAD_REQUEST, code), "{bad}");
        }
    }

    #[test]
    fn container_errors_are_flat_and_others_nested() {
        let error = || ApiError::new(StatusCode::UNAUTHORIZED, "invalid-token", "no").help("get one");
        let flat = error().into_response(Endpoint::ContainerCredentials);
        let body: serde_json::Value = serde_json::from_slice(&flat_bytes(flat)).unwrap();
        assert_eq!(body, json!({"code": "invalid-token", "message": "no", "help": "get one"}));
        let nested = error().into_response(Endpoint::Credentials);
        let body: serde_json::Value = serde_json::from_slice(&flat_bytes(nested)).unwrap();
        assert_eq!(body["error"]["code"], "invalid-token");
    }

    fn flat_bytes(response: Response<Body>) -> Bytes {
        let body = response.into_body();
        futures_util::FutureExt::now_or_never(body.collect()).unwrap().unwrap().to_bytes()
    }
}
