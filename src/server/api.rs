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
use super::peer::{Caller, IdentityError};
use super::store::Generation;
use super::{App, FallbackCredentials};
use crate::credentials::{CredentialError, CredentialSource, Credentials, ErrorKind, format_rfc3339 as rfc3339};
use crate::diagnostics::Escaped;
use crate::{IdentifierType, Request, RequestSpec, Resolution, S3Path};

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

    fn into_response(self) -> Response<Body> {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(help) = self.help {
            error["help"] = help.into();
        }
        let mut response = json_response(self.status, &json!({ "error": error }));
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
                "the endpoints are POST /v1/resolve, /v1/explain, /v1/credentials and GET /healthz, /readyz, /metrics",
            )
        } else {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                format!("`{}` does not answer {}", request.uri().path(), request.method()),
            )
        };
        let mut response = error.into_response();
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
                if endpoint == Endpoint::Credentials || error.status == StatusCode::UNAUTHORIZED {
                    error.audit(&app, caller, endpoint);
                }
                error.into_response()
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
    if caller == Caller::Tcp {
        authenticate(app, &request)?;
    }
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
        _ => {
            let body = read_body(app, request).await?;
            // One generation answers the whole request, whatever reloads happen meanwhile.
            let generation = app.store.current();
            let spec = RequestSpec::from_json(&body).map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid-json", format!("invalid request body: {e}"))
                    .help(r#"send a JSON object {"user": "...", "groups": ["..."], "path": "s3://bucket/key"}; every field is optional"#)
            })?;
            let principal = principal(app, caller, spec.user, spec.groups).await?;
            let path = match spec.path.as_deref() {
                None => None,
                Some(text) => Some(S3Path::parse(text).map_err(|e| {
                    ApiError::new(StatusCode::BAD_REQUEST, "invalid-path", format!("invalid path `{text}`: {e}"))
                        .help("give an S3 location such as `s3://bucket/key` (also s3a:// or s3n://)")
                })?),
            };
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

fn authenticate<S>(app: &App<S>, request: &HttpRequest<Incoming>) -> Result<(), ApiError> {
    let presented = request.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes);
    match &*app.token.load() {
        Some(token) if token.accepts(presented) => Ok(()),
        _ if presented.is_none() => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing-token",
            "this endpoint needs `Authorization: Bearer <token>` over TCP",
        )
        .help("send the token from the server's --token-file, or connect through its Unix socket")),
        _ => Err(ApiError::new(StatusCode::UNAUTHORIZED, "wrong-token", "the bearer token is not the server's")),
    }
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

/// Applies the rules of who may ask for whom: TCP callers (token holders), root and allow-listed uids
/// ask for anyone; any other Unix-socket caller only for its own user, with its groups from the OS.
async fn principal<S>(
    app: &App<S>,
    caller: Caller,
    user: Option<String>,
    groups: Vec<String>,
) -> Result<Principal, ApiError> {
    let uid = match caller {
        Caller::Unix { uid } if !app.trusts(caller) => uid,
        _ => return Ok(Principal { user, groups, groups_from: "request" }),
    };
    let identity = app.identities.lookup(uid).await.map_err(|e| {
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
    if let Some(asked) = user.as_deref().filter(|asked| *asked != identity.user) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not-your-user",
            format!("uid {uid} (`{}`) may ask only for its own user, not `{asked}`", identity.user),
        )
        .help("leave `user` out, or ask through a token or an allow-listed uid (the server's --allow-uid)"));
    }
    if !groups.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "groups-not-accepted",
            format!("uid {uid} (`{}`) may not supply groups; they are looked up from the OS", identity.user),
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
    let prepared = generation.resolver().prepare(principal.user.as_deref(), &principal.groups);
    let user = principal.user.as_deref().unwrap_or("");
    let location = path.map(ToString::to_string).unwrap_or_default();
    let context = || format!("user={user:?} path={location:?} generation={}", generation.number());
    let resolution = prepared.resolve(path);
    if resolution.mapping().is_none() && !app.serves_fallback_to(caller) {
        return Err(fallback_refused(app, &location).context(context()));
    }
    let access =
        app.broker.serve(resolution, prepared.user()).await.map_err(|e| credential_error(e).context(context()))?;
    let role = access.resolution.role().map_or("fallback", |r| r.as_str());
    app.metrics.granted(role, access.origin());
    if app.audit.first_grant(caller, user, access.credentials.access_key_id()) {
        tracing::info!(
            target: "emrfs_rolemap::audit",
            "granted: caller={caller} user={user:?} groups_from={} path={location:?} generation={} decision={} role={} origin={} access_key_id={}",
            principal.groups_from,
            generation.number(),
            access.resolution.decision(),
            access.resolution.role().map_or("instance-profile", |r| r.as_str()),
            access.origin().as_str(),
            access.credentials.access_key_id(),
        );
    }
    let body = json!({
        "generation": generation.number(),
        "principal": principal,
        "resolution": access.resolution,
        "Credentials": credentials_json(&access.credentials),
        "MatchedGrantTarget": matched_target(&access.resolution),
    });
    Ok(json_response(StatusCode::OK, &body))
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

/// The `Credentials` object of S3 Access Grants' GetDataAccess.
fn credentials_json(credentials: &Credentials) -> serde_json::Value {
    json!({
        "AccessKeyId": credentials.access_key_id(),
        "SecretAccessKey": credentials.secret_access_key(),
        "SessionToken": credentials.session_token(),
        "Expiration": credentials.expiration().map(rfc3339),
    })
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
        "config": app.store.path().to_string_lossy(),
        "mappings": config.mappings().len(),
        "identifiers": config.identifier_count(),
        "reloads": app.store.reloads(),
        "reload_failures": app.store.reload_failures(),
        "last_reload_error": failure,
    });
    json_response(if draining { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK }, &body)
}

fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let mut bytes = serde_json::to_vec(value).unwrap_or_else(|e| {
        // Serialising our own answer types cannot fail; say so plainly if it ever does.
        format!(r#"{{"error": {{"code": "internal", "message": "cannot serialise the answer: {e}"}}}}"#).into_bytes()
    });
    bytes.push(b'\n');
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
