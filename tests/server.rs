//! `emrfs-rolemap serve` end to end: the built binary as a child process, a real HTTP client over TCP
//! and over the Unix socket, real signals, and the moto STS emulator for credentials.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use emrfs_rolemap::credentials::Credentials;
use serde_json::{Value, json};
use support::moto::{self, BASE_ACCESS_KEY_ID, BASE_SECRET_ACCESS_KEY, Moto};
use support::server::{Client, Served, TOKEN, Target};

const CONFIG: &str = r#"{"RoleMappings": [
  {"Role": "arn:aws:iam::123456789012:role/analysts", "IdentifierType": "User", "Identifiers": ["alice"]},
  {"Role": "arn:aws:iam::123456789012:role/nobodies", "IdentifierType": "Group", "Identifiers": ["nogroup", "nobody"]},
  {"Role": "arn:aws:iam::123456789012:role/lake-reader", "IdentifierType": "Prefix", "Identifiers": ["s3://lake/raw/"]}
]}"#;

/// `CONFIG` with alice mapped to another role.
const CONFIG_B: &str = r#"{"RoleMappings": [
  {"Role": "arn:aws:iam::123456789012:role/scientists", "IdentifierType": "User", "Identifiers": ["alice"]}
]}"#;

/// An STS endpoint nobody listens on: tests that never fetch credentials point the server there.
const NO_STS: &str = "http://127.0.0.1:9";

const ALICE_RAW: &str = r#"{"user": "alice", "groups": ["staff"], "path": "s3://lake/raw/2026/part-0"}"#;

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series `{series}` in:\n{text}"))
}

fn is_rfc3339_utc(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_over_tcp_with_the_token() {
    let moto = Moto::start();
    let served = Served::start(CONFIG, &moto.endpoint(), &["--fallback-credentials", "trusted"]);
    let client = served.tcp_client(true);

    let health = client.get("/healthz").await;
    assert_eq!((health.status, health.json()), (200, json!({"status": "ok"})));

    let resolved = client.post("/v1/resolve", ALICE_RAW).await;
    assert_eq!(resolved.status, 200, "{}", resolved.body);
    assert_eq!(resolved.headers["content-type"], "application/json");
    assert_eq!(
        resolved.json(),
        json!({
            "generation": 1,
            "principal": {"user": "alice", "groups": ["staff"], "groups_from": "request"},
            "decision": "mapping",
            "role": "arn:aws:iam::123456789012:role/analysts",
            "mapping_index": 0,
            "identifier_type": "User",
            "identifier": "alice",
        })
    );

    let explained = client.post("/v1/explain", ALICE_RAW).await.json();
    assert_eq!(explained["generation"], 1);
    assert_eq!(explained["resolution"]["mapping_index"], 0);
    let statuses: Vec<&str> =
        explained["mappings"].as_array().unwrap().iter().map(|m| m["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["decisive", "no-match", "shadowed"]);

    // Credentials: AssumeRole through moto, then the cache.
    let first = client.post("/v1/credentials", ALICE_RAW).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let first = first.json();
    let credentials = &first["Credentials"];
    assert!(credentials["AccessKeyId"].as_str().unwrap().starts_with("ASIA"), "{first}");
    assert!(!credentials["SecretAccessKey"].as_str().unwrap().is_empty());
    assert!(!credentials["SessionToken"].as_str().unwrap().is_empty());
    let expiration = credentials["Expiration"].as_str().unwrap();
    assert!(is_rfc3339_utc(expiration), "{expiration}");
    assert!(
        // The same RFC 3339 form, for now: later text is a later time.
        expiration > Credentials::new("now", "-", None, Some(SystemTime::now())).expiration_rfc3339().unwrap().as_str(),
        "{expiration} is in the past"
    );
    assert_eq!(first["MatchedGrantTarget"], "s3://*");
    assert_eq!(first["resolution"]["role"], "arn:aws:iam::123456789012:role/analysts");
    assert_eq!(first["generation"], 1);
    let second = client.post("/v1/credentials", ALICE_RAW).await.json();
    assert_eq!(second["Credentials"]["AccessKeyId"], credentials["AccessKeyId"], "the second answer is cached");
    let assumed = moto.assumed_roles();
    assert_eq!(assumed.len(), 1, "{assumed:?}");
    assert_eq!(assumed[0]["session_name"], "emrfs-alice");

    let prefix = client.post("/v1/credentials", r#"{"user": "bob", "path": "s3://lake/raw/x"}"#).await.json();
    assert_eq!(prefix["MatchedGrantTarget"], "s3://lake/raw/*");
    assert_eq!(prefix["resolution"]["role"], "arn:aws:iam::123456789012:role/lake-reader");

    let fallback = client.post("/v1/credentials", r#"{"user": "bob", "path": "s3://other/x"}"#).await.json();
    assert_eq!(fallback["resolution"]["decision"], "fallback");
    assert_eq!(fallback["Credentials"]["AccessKeyId"], BASE_ACCESS_KEY_ID);
    assert_eq!(fallback["MatchedGrantTarget"], Value::Null);
    assert_eq!(moto.assumed_roles().len(), 2, "a fallback is served without AssumeRole");

    let ready = client.get("/readyz").await;
    assert_eq!(ready.status, 200);
    let ready = ready.json();
    assert_eq!((ready["ready"].clone(), ready["generation"].clone()), (json!(true), json!(1)));
    assert_eq!((ready["mappings"].clone(), ready["identifiers"].clone()), (json!(3), json!(4)));
    assert_eq!(ready["last_reload_error"], Value::Null);

    let metrics = client.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.headers["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = &metrics.body;
    assert_eq!(metric(text, r#"emrfs_rolemap_requests_total{endpoint="/v1/resolve",status="200"}"#), 1.0);
    assert_eq!(metric(text, r#"emrfs_rolemap_requests_total{endpoint="/v1/credentials",status="200"}"#), 4.0);
    assert_eq!(metric(text, r#"emrfs_rolemap_request_duration_seconds_count{endpoint="/v1/credentials"}"#), 4.0);
    assert_eq!(metric(text, r#"emrfs_rolemap_request_duration_seconds_bucket{endpoint="/v1/resolve",le="+Inf"}"#), 1.0);
    assert_eq!(metric(text, "emrfs_rolemap_credential_cache_hits_total"), 1.0);
    assert_eq!(metric(text, "emrfs_rolemap_credential_cache_source_calls_total"), 3.0);
    assert_eq!(metric(text, "emrfs_rolemap_config_generation"), 1.0);
    assert_eq!(metric(text, r#"emrfs_rolemap_sts_errors_total{kind="access_denied"}"#), 0.0);

    let key = first["Credentials"]["AccessKeyId"].as_str().unwrap();
    let granted = format!(
        r#"granted: caller=tcp user="alice" groups_from=request path="s3://lake/raw/2026/part-0" generation=1 decision=mapping role=arn:aws:iam::123456789012:role/analysts origin=sts access_key_id={key}"#
    );
    let log = served.log_containing(&granted);
    assert!(log.contains(&granted), "no audit line `{granted}` in:\n{log}");
    let secret = first["Credentials"]["SecretAccessKey"].as_str().unwrap();
    for hidden in [TOKEN, secret, BASE_SECRET_ACCESS_KEY] {
        assert!(!log.contains(hidden), "the log shows a secret:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_callers_need_the_token() {
    let served = Served::start(CONFIG, NO_STS, &[]);
    let anonymous = served.tcp_client(false);
    for (method, path) in
        [("POST", "/v1/resolve"), ("POST", "/v1/credentials"), ("GET", "/readyz"), ("GET", "/metrics")]
    {
        let reply = anonymous.connect().await.send(method, path, Some(ALICE_RAW)).await;
        assert_eq!((reply.status, reply.error_code()), (401, "missing-token".to_owned()), "{path}");
        assert_eq!(reply.headers["www-authenticate"], "Bearer realm=\"emrfs-rolemap\"");
    }
    assert_eq!(anonymous.get("/healthz").await.status, 200, "probes need no token");
    let wrong = Client { target: Target::Tcp(served.tcp.unwrap()), token: Some(format!("{TOKEN}x")) };
    let reply = wrong.post("/v1/resolve", ALICE_RAW).await;
    assert_eq!((reply.status, reply.error_code()), (401, "wrong-token".to_owned()));
    let prefix = Client { target: Target::Tcp(served.tcp.unwrap()), token: Some(TOKEN[..TOKEN.len() - 1].to_owned()) };
    assert_eq!(prefix.post("/v1/resolve", ALICE_RAW).await.status, 401);
    assert_eq!(served.tcp_client(true).post("/v1/resolve", ALICE_RAW).await.status, 200);
    assert!(!served.log().contains(TOKEN));
}

#[test]
fn serve_refuses_tcp_without_a_token_and_a_bad_configuration() {
    let dir = support::server::TempDir::new("refuse");
    let config = dir.path().join("config.json");
    std::fs::write(&config, CONFIG).unwrap();
    let run = |args: &[&str]| {
        let output = moto::aws_command(env!("CARGO_BIN_EXE_emrfs-rolemap"))
            .arg("serve")
            .args(args)
            .args(["--sts-endpoint", NO_STS, "--region", moto::REGION])
            .output()
            .unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let config = config.to_str().unwrap();
    let (code, stderr) = run(&["--config", config, "--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("needs --token-file"), "{stderr}");

    let short = dir.path().join("short");
    std::fs::write(&short, "abc\n").unwrap();
    std::fs::set_permissions(&short, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (code, stderr) = run(&["--config", config, "--token-file", short.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("fewer than 16"), "{stderr}");
    assert!(!stderr.contains("abc"), "the token is never shown: {stderr}");

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"RoleMappings\": [\n  {\"Role\": \"arn:aws:iam::123:role/x\", \"IdentifierType\": \"User\", \"Identifiers\": [\"a\"]}\n]}").unwrap();
    let socket = dir.path().join("s.sock");
    let (code, stderr) = run(&["--config", bad.to_str().unwrap(), "--socket", socket.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("error[invalid-role-arn]") && stderr.contains("bad.json:2:"), "{stderr}");

    let socket = socket.to_str().unwrap();
    let (code, stderr) =
        run(&["--config", config, "--socket", socket, "--duration", "900", "--cache-refresh-before", "900"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("--cache-refresh-before (900 s) must be shorter than the session --duration (900 s)"),
        "{stderr}"
    );
    let (code, stderr) = run(&["--config", config, "--socket", socket, "--cache-max-entries", "0"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--cache-max-entries"), "{stderr}");
}

/// The cache flags reach the cache: with room for one entry, bob's credentials evict alice's, and her
/// next request goes to STS again (with the default size it would be a hit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_flags_reach_the_credential_cache() {
    let moto = Moto::start();
    let served =
        Served::start(CONFIG, &moto.endpoint(), &["--cache-max-entries", "1", "--cache-refresh-before", "120"]);
    let client = served.tcp_client(true);
    for body in [ALICE_RAW, r#"{"user": "bob", "path": "s3://lake/raw/x"}"#, ALICE_RAW] {
        let answer = client.post("/v1/credentials", body).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let assumed: Vec<Value> = moto.assumed_roles().iter().map(|a| a["role_arn"].clone()).collect();
    assert_eq!(assumed.len(), 3, "alice's credentials were evicted and fetched again: {assumed:?}");
    let metrics = client.get("/metrics").await.body;
    assert!(metric(&metrics, "emrfs_rolemap_credential_cache_evictions_total") >= 1.0, "{metrics}");
    assert_eq!(metric(&metrics, "emrfs_rolemap_credential_cache_hits_total"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_an_answer_and_never_takes_the_server_down() {
    // Fallbacks served to the token's holder, so that a well-formed body is answered with 200 everywhere.
    let served = Served::start(CONFIG, NO_STS, &["--fallback-credentials", "trusted"]);
    let client = served.tcp_client(true);
    let cases: [(&str, u16, &str, &str); 10] = [
        ("{", 400, "invalid-json", "EOF while parsing"),
        ("", 400, "invalid-json", "expected a JSON object"),
        ("[]", 400, "invalid-json", "expected a JSON object"),
        (r#"{"user": 7}"#, 400, "invalid-json", "invalid type: integer `7`, expected a string at line 1 column 10"),
        (r#"{"usr": "alice"}"#, 400, "invalid-json", "unknown field `usr`, expected one of `user`, `groups`, `path`"),
        (r#"{"groups": "admins"}"#, 400, "invalid-json", "expected a sequence"),
        (r#"{"path": "http://lake/raw/x"}"#, 400, "invalid-path", "invalid path `http://lake/raw/x`"),
        (r#"{"path": "s3://"}"#, 400, "invalid-path", "invalid path `s3://`"),
        ("{\"user\": \"al\u{0}ice\"}", 400, "invalid-json", "control character"),
        (r#"{"user": "al\u0000ice", "groups": ["\u00e9quipe"]}"#, 200, "", ""),
    ];
    for endpoint in ["/v1/resolve", "/v1/explain", "/v1/credentials"] {
        for (body, status, code, message) in cases {
            let reply = client.post(endpoint, body).await;
            assert_eq!(reply.status, status, "{endpoint} {body}: {}", reply.body);
            if status != 200 {
                let json = reply.json();
                assert_eq!(json["error"]["code"], code, "{body}");
                assert!(json["error"]["message"].as_str().unwrap().contains(message), "{body}: {json}");
                assert!(json["error"]["help"].is_string());
            }
        }
    }

    // Over the limit: declared, or streamed in chunks without a length.
    let big = format!(r#"{{"user": "{}"}}"#, "a".repeat(64 * 1024));
    let reply = client.post("/v1/resolve", &big).await;
    assert_eq!((reply.status, reply.error_code()), (413, "body-too-large".to_owned()));
    let chunked = raw_exchange(&served, |stream| {
        write!(
            stream,
            "POST /v1/resolve HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n"
        )?;
        for _ in 0..20 {
            write!(stream, "1000\r\n{}\r\n", "a".repeat(0x1000))?;
        }
        stream.write_all(b"0\r\n\r\n")
    });
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");
    let not_utf8 = raw_exchange(&served, |stream| {
        write!(
            stream,
            "POST /v1/resolve HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 4\r\n\r\n"
        )?;
        stream.write_all(b"\xff\xfe{}")
    });
    assert!(not_utf8.starts_with("HTTP/1.1 400") && not_utf8.contains("invalid-json"), "{not_utf8}");
    let garbage =
        raw_exchange(&served, |stream| stream.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"));
    assert!(garbage.is_empty() || garbage.starts_with("HTTP/1.1 400"), "{garbage}");

    let missing = client.get("/v2/resolve").await;
    assert_eq!((missing.status, missing.error_code()), (404, "not-found".to_owned()));
    assert!(!missing.headers.contains_key("allow"));
    let wrong_method = client.get("/v1/resolve").await;
    assert_eq!((wrong_method.status, wrong_method.error_code()), (405, "method-not-allowed".to_owned()));
    assert_eq!(wrong_method.headers["allow"], "POST");
    let post_health = client.post("/healthz", "{}").await;
    assert_eq!((post_health.status, post_health.headers["allow"].to_str().unwrap()), (405, "GET, HEAD"));

    // Still serving, and it counted what it answered.
    assert_eq!(client.post("/v1/resolve", ALICE_RAW).await.status, 200);
    let metrics = client.get("/metrics").await.body;
    assert_eq!(metric(&metrics, r#"emrfs_rolemap_requests_total{endpoint="/v1/resolve",status="413"}"#), 2.0);
    assert_eq!(metric(&metrics, r#"emrfs_rolemap_requests_total{endpoint="other",status="404"}"#), 1.0);
}

/// Writes with `send` on a fresh TCP connection and reads the answer until the server closes or 5 s.
fn raw_exchange(served: &Served, send: impl FnOnce(&mut TcpStream) -> std::io::Result<()>) -> String {
    let mut stream = TcpStream::connect(served.tcp.unwrap()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = send(&mut stream);
    let mut answer = Vec::new();
    let mut buffer = [0; 4096];
    // The first answer only: stop at the end of its body or when the server closes.
    while let Ok(n) = stream.read(&mut buffer) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|l| l.strip_prefix("content-length: ")?.parse::<usize>().ok());
            if length.is_some_and(|length| body.len() >= length) {
                break;
            }
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn slow_clients_are_cut_off() {
    let served = Served::start(CONFIG, NO_STS, &["--header-timeout", "0.5", "--body-timeout", "0.5"]);
    let connect = || {
        let stream = TcpStream::connect(served.tcp.unwrap()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream
    };
    // A head that never ends: the connection is closed after the header timeout.
    let mut stream = connect();
    let started = Instant::now();
    stream.write_all(b"POST /v1/resolve HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(400) && waited < Duration::from_secs(4), "{waited:?}");

    // A body that stops halfway: 408 after the body timeout.
    let mut stream = connect();
    let started = Instant::now();
    write!(
        stream,
        "POST /v1/resolve HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 40\r\n\r\n{{\"user\""
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body-timeout"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(400));

    // An idle keep-alive connection is closed too.
    let mut stream = connect();
    write!(stream, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(400) && waited < Duration::from_secs(4), "{waited:?}");

    // And the server still answers.
    let mut stream = connect();
    write!(stream, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// `id -un UID` and `id -Gn UID`: what the OS says, asked independently of the server.
fn os_identity(uid: u32) -> (String, Vec<String>) {
    let id = |flag: &str| {
        let out = Command::new("id").args([flag, &uid.to_string()]).output().unwrap();
        assert!(out.status.success(), "id {flag} {uid}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    (id("-un"), id("-Gn").split_whitespace().map(str::to_owned).collect())
}

/// What `resolve` of the CLI says for a principal: the oracle for answers from OS groups.
fn cli_resolve(user: &str, groups: &[String], path: &str) -> Value {
    let mut args = vec!["resolve", "--config", "-", "--format", "json", "--user", user, "--path", path];
    for group in groups {
        args.extend(["--group", group]);
    }
    serde_json::from_slice(&support::cli::run_with_input(&args, CONFIG).stdout).unwrap()
}

fn without_principal(mut answer: Value) -> Value {
    let object = answer.as_object_mut().unwrap();
    object.remove("principal");
    object.remove("generation");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_callers_get_what_their_uid_allows() {
    let me = support::server::own_uid();
    let other = support::server::unprivileged_uid();
    let served = Served::start(CONFIG, NO_STS, &[]);
    let (user, groups) = os_identity(other);

    // Asking as an unprivileged uid: `other` is nobody when the tests run as root, else the test itself.
    let (status, own) = ask_as(other, &served, r#"{"path": "s3://other/x"}"#).await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["principal"], json!({"user": user, "groups": groups, "groups_from": "os"}));
    assert_eq!(without_principal(own), cli_resolve(&user, &groups, "s3://other/x"));
    let (status, by_name) = ask_as(other, &served, &format!(r#"{{"user": "{user}"}}"#)).await;
    assert_eq!((status, by_name["principal"]["user"].clone()), (200, json!(user)));
    let (status, alice) = ask_as(other, &served, r#"{"user": "alice"}"#).await;
    assert_eq!((status, alice["error"]["code"].clone()), (403, json!("not-your-user")), "{alice}");
    assert!(alice["error"]["message"].as_str().unwrap().contains(&format!("uid {other} (`{user}`)")));
    let (status, grouped) = ask_as(other, &served, r#"{"groups": ["admins"]}"#).await;
    assert_eq!((status, grouped["error"]["code"].clone()), (403, json!("groups-not-accepted")), "{grouped}");

    // Root (when the tests run as root) asks for anyone.
    if me == 0 {
        let reply = served.unix_client().post("/v1/resolve", ALICE_RAW).await.json();
        assert_eq!(reply["principal"], json!({"user": "alice", "groups": ["staff"], "groups_from": "request"}));
        assert_eq!(reply["mapping_index"], 0);
    }

    // An allow-listed uid asks for anyone and supplies groups.
    let listed = Served::start(CONFIG, NO_STS, &["--allow-uid", &other.to_string()]);
    let (status, reply) = ask_as(other, &listed, ALICE_RAW).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["principal"], json!({"user": "alice", "groups": ["staff"], "groups_from": "request"}));
    assert_eq!(reply["role"], "arn:aws:iam::123456789012:role/analysts");
}

/// `POST /v1/resolve` over the Unix socket as `uid`.
async fn ask_as(uid: u32, served: &Served, body: &str) -> (u16, Value) {
    served.json_as(uid, "POST", "/v1/resolve", Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_changes_reload_and_invalid_files_keep_the_old_generation() {
    let served = Served::start(CONFIG, NO_STS, &["--watch-interval", "0.05"]);
    let client = served.unix_client();
    let alice = r#"{"user": "alice"}"#;
    assert_eq!(client.post("/v1/resolve", alice).await.json()["role"], "arn:aws:iam::123456789012:role/analysts");

    served.replace_config(CONFIG_B);
    served.wait_ready(|r| r["generation"] == 2).await;
    let reply = client.post("/v1/resolve", alice).await.json();
    assert_eq!(
        (reply["generation"].clone(), reply["role"].clone()),
        (json!(2), json!("arn:aws:iam::123456789012:role/scientists"))
    );

    // A broken file: rejected with its diagnostics; generation 2 keeps serving.
    served.replace_config("{\"RoleMappings\": [\n  {\"Role\": \"arn:aws:iam::123456789012:role/x\", \"IdentifierType\": \"Users\", \"Identifiers\": [\"a\"]}\n]}");
    let ready = served.wait_ready(|r| !r["last_reload_error"].is_null()).await;
    assert_eq!(ready["generation"], 2);
    assert_eq!(ready["ready"], true);
    let failure = &ready["last_reload_error"];
    assert_eq!(failure["diagnostics"][0]["code"], "unknown-identifier-type", "{failure}");
    assert_eq!(failure["diagnostics"][0]["line"], 2);
    assert!(failure["message"].as_str().unwrap().contains("error[unknown-identifier-type]"));
    let reply = client.post("/v1/resolve", alice).await.json();
    assert_eq!(
        (reply["generation"].clone(), reply["role"].clone()),
        (json!(2), json!("arn:aws:iam::123456789012:role/scientists"))
    );
    let log = served.log_containing("error[unknown-identifier-type]");
    assert!(log.contains("reload rejected; still serving generation 2"), "{log}");
    assert!(log.contains("error[unknown-identifier-type]"), "{log}");

    // A half-written file, then the whole one: the failure clears with the next good version.
    served.replace_config(&CONFIG[..40]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    served.replace_config(CONFIG);
    let ready = served.wait_ready(|r| r["generation"] == 3).await;
    assert_eq!(ready["last_reload_error"], Value::Null);
    assert_eq!(client.post("/v1/resolve", alice).await.json()["role"], "arn:aws:iam::123456789012:role/analysts");
    let metrics = client.get("/metrics").await.body;
    assert_eq!(metric(&metrics, "emrfs_rolemap_config_reloads_total"), 2.0);
    assert_eq!(metric(&metrics, "emrfs_rolemap_config_reload_failures_total"), 2.0);
    assert_eq!(metric(&metrics, "emrfs_rolemap_config_generation"), 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_configuration_and_the_token() {
    let served = Served::start(CONFIG, NO_STS, &["--watch-interval", "0"]);
    served.replace_config(CONFIG_B);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(served.wait_ready(|_| true).await["generation"], 1, "no watching: nothing changes by itself");
    served.signal("HUP");
    served.wait_ready(|r| r["generation"] == 2).await;
    served.signal("HUP");
    let started = Instant::now();
    while !served.log().contains("is unchanged; still serving generation 2") {
        assert!(started.elapsed() < Duration::from_secs(10), "{}", served.log());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(served.wait_ready(|_| true).await["generation"], 2);

    // SIGHUP also reads the token file again: the new token works, the old one no longer does; an
    // unusable file keeps the current token.
    let rotated = "rotated-token-fedcba9876543210";
    std::fs::write(served.dir.path().join("token"), format!("{rotated}\n")).unwrap();
    served.signal("HUP");
    let tcp = Target::Tcp(served.tcp.unwrap());
    let client = Client { target: tcp.clone(), token: Some(rotated.to_owned()) };
    let started = Instant::now();
    while client.post("/v1/resolve", ALICE_RAW).await.status != 200 {
        assert!(started.elapsed() < Duration::from_secs(10), "the rotated token is never accepted: {}", served.log());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(served.tcp_client(true).post("/v1/resolve", ALICE_RAW).await.status, 401);
    std::fs::write(served.dir.path().join("token"), "short\n").unwrap();
    served.signal("HUP");
    let started = Instant::now();
    while !served.log().contains("kept the current bearer token") {
        assert!(started.elapsed() < Duration::from_secs(10), "{}", served.log());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(client.post("/v1/resolve", ALICE_RAW).await.status, 200);
    assert!(!served.log().contains(rotated) && !served.log().contains("short"));
}

#[test]
fn sigterm_drains_requests_in_flight_and_exits() {
    let mut served = Served::start(CONFIG, NO_STS, &[]);
    let socket = served.socket.clone().unwrap();
    // A request whose body is still arriving when SIGTERM comes.
    let body = ALICE_RAW.as_bytes();
    let mut stream = TcpStream::connect(served.tcp.unwrap()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "POST /v1/resolve HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    served.signal("TERM");
    let started = Instant::now();
    while socket.exists() {
        assert!(started.elapsed() < Duration::from_secs(5), "the socket file stays after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(TcpStream::connect(served.tcp.unwrap()).is_err(), "no new connections while draining");
    stream.write_all(&body[10..]).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""role":"arn:aws:iam::123456789012:role/analysts""#), "{answer}");
    assert_eq!(served.wait_exit(Duration::from_secs(10)), Some(0));
    let log = served.log_containing("drained");
    assert!(log.contains("SIGTERM received") && log.contains("drained"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_fail_closed_when_sts_is_unreachable() {
    let served = Served::start(CONFIG, NO_STS, &["--fallback-credentials", "trusted"]);
    let client = served.tcp_client(true);
    let started = Instant::now();
    let reply = client.post("/v1/credentials", ALICE_RAW).await;
    assert_eq!((reply.status, reply.error_code()), (502, "sts-unavailable".to_owned()), "{}", reply.body);
    let message = reply.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("mapping 0 decided role `arn:aws:iam::123456789012:role/analysts`"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let refused = r#"refused: caller=tcp endpoint=/v1/credentials user="alice" path="s3://lake/raw/2026/part-0" generation=1 status=502 code=sts-unavailable"#;
    let log = served.log_containing(refused);
    assert!(log.contains(refused), "no `{refused}` in:\n{log}");
    // A fallback needs no STS: the base credentials serve it (to a trusted caller, when allowed).
    let fallback = client.post("/v1/credentials", r#"{"user": "bob", "path": "s3://other/x"}"#).await;
    assert_eq!(fallback.status, 200, "{}", fallback.body);
    let metrics = client.get("/metrics").await.body;
    assert_eq!(metric(&metrics, r#"emrfs_rolemap_requests_total{endpoint="/v1/credentials",status="502"}"#), 1.0);
    assert!(metric(&metrics, r#"emrfs_rolemap_sts_errors_total{kind="connection"}"#) >= 1.0, "{metrics}");
}

/// `examples/server-client/client.py` with the standard library's HTTP client, over both sockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_client_talks_to_both_sockets() {
    let moto = Moto::start();
    let served = Served::start(CONFIG, &moto.endpoint(), &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/server-client/client.py");
    let python = |args: &[&str]| {
        let output = Command::new("python3").arg(script).args(args).output().unwrap_or_else(|e| {
            panic!("this test runs the Python example client and needs python3 (apt-get install python3): {e}")
        });
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.code(), stdout, String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let socket = served.socket.as_ref().unwrap().to_str().unwrap().to_owned();
    let (code, stdout, stderr) = python(&["--socket", &socket, "--user", "bob", "--path", "s3://lake/raw/x"]);
    assert_eq!(code, Some(0), "{stderr}");
    let answer: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(answer["role"], "arn:aws:iam::123456789012:role/lake-reader");

    let tcp = served.tcp.unwrap().to_string();
    let token = served.dir.path().join("token");
    let token = token.to_str().unwrap();
    let (code, stdout, stderr) = python(&[
        "--tcp",
        &tcp,
        "--token-file",
        token,
        "--endpoint",
        "credentials",
        "--user",
        "alice",
        "--path",
        "s3://lake/raw/x",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let answer: Value = serde_json::from_str(&stdout).unwrap();
    assert!(answer["Credentials"]["AccessKeyId"].as_str().unwrap().starts_with("ASIA"));
    assert_eq!(answer["Credentials"]["SecretAccessKey"], "<redacted>");
    assert_eq!(answer["resolution"]["role"], "arn:aws:iam::123456789012:role/analysts");

    let wrong = served.dir.path().join("wrong-token");
    std::fs::write(&wrong, "not-the-token-of-this-server\n").unwrap();
    let (code, _, stderr) = python(&["--tcp", &tcp, "--token-file", wrong.to_str().unwrap(), "--user", "alice"]);
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("error 401 wrong-token"), "{stderr}");
}

/// A full budget closes the connection idle the longest to let a new client in, and never one with a
/// request in progress: then the new client waits for a request to end.
#[test]
fn a_full_budget_closes_idle_connections_and_waits_for_busy_ones() {
    let served = Served::start(CONFIG, NO_STS, &["--max-connections", "2", "--body-timeout", "1.5"]);
    let address = served.tcp.unwrap();
    let healthz = || {
        let started = Instant::now();
        let mut stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(stream, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        started.elapsed()
    };
    // Two silent connections fill the budget; a third client is served at once, and one of the silent
    // connections is closed to make room.
    let mut idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(address).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(100));
    assert!(healthz() < Duration::from_secs(1));
    let closed = idle
        .iter_mut()
        .map(|stream| {
            stream.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
            matches!(stream.read(&mut [0u8; 1]), Ok(0))
        })
        .filter(|closed| *closed)
        .count();
    assert_eq!(closed, 1, "exactly one idle connection made room");
    drop(idle);

    // Two requests whose bodies are still arriving are busy: a third client waits until the body
    // timeout ends one of them.
    let busy: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = TcpStream::connect(address).unwrap();
            write!(
                stream,
                "POST /v1/resolve HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 50\r\n\r\n{{"
            )
            .unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let waited = healthz();
    assert!(waited >= Duration::from_millis(1_000), "served after {waited:?}, while both connections were busy");
    drop(busy);
}
