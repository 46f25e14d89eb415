//! The credential surface of `serve`, tried as an adversarial local user would: the built binary, real
//! signals, `curl` run as `nobody` (the tests run as root in CI), and the moto STS emulator. Each test
//! pins one defect that was found, and is named after what must hold instead:
//!
//! 1. a fallback decision never hands the base credentials to an untrusted caller;
//! 2. configuration and token files that others can write are refused, at start and on reload;
//! 3. a token file that would block (a FIFO) never stops the server or its reloads;
//! 4. (in `tests/cache.rs`) a refused refresh evicts at once and is never served stale;
//! 5. untrusted callers see only their own answer in `/readyz` and `/v1/explain`;
//! 6. the audit log holds a line per new grant, not per cache hit, and few per refusal.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::moto::{self, BASE_ACCESS_KEY_ID, BASE_SECRET_ACCESS_KEY, Moto};
use support::server::{Client, Served, TOKEN, Target, TempDir, own_uid, unprivileged_uid};

/// A user mapping, a prefix mapping, and nothing that `nobody` or its groups match: an unmapped path
/// is a fallback for `nobody`.
const CONFIG: &str = r#"{"RoleMappings": [
  {"Role": "arn:aws:iam::123456789012:role/analysts", "IdentifierType": "User", "Identifiers": ["alice"]},
  {"Role": "arn:aws:iam::123456789012:role/lake-reader", "IdentifierType": "Prefix", "Identifiers": ["s3://lake/raw/"]}
]}"#;

/// `CONFIG` with alice mapped to another role.
const CONFIG_B: &str = r#"{"RoleMappings": [
  {"Role": "arn:aws:iam::123456789012:role/scientists", "IdentifierType": "User", "Identifiers": ["alice"]}
]}"#;

/// An STS endpoint nobody listens on.
const NO_STS: &str = "http://127.0.0.1:9";

const UNMAPPED: &str = r#"{"path": "s3://not-mapped/x"}"#;

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series `{series}` in:\n{text}"))
}

/// Waits up to 10 s for the server's log to contain `text`.
async fn wait_log(served: &Served, text: &str) -> String {
    let started = Instant::now();
    loop {
        let log = served.log();
        if log.contains(text) {
            return log;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no `{text}` in the log:\n{log}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Defect 1: with the socket open to every local user, `nobody` posted an unmapped path and received the
/// server's own access key and secret, which may assume every mapped role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_caller_never_gets_the_base_credentials_through_a_fallback() {
    let moto = Moto::start();
    let nobody = unprivileged_uid();
    let mut bodies_for_nobody = Vec::new();

    // By default nobody gets a fallback's credentials, trusted or not.
    let served = Served::start(CONFIG, &moto.endpoint(), &[]);
    let (status, body) = served.request_as(nobody, "POST", "/v1/credentials", Some(UNMAPPED)).await;
    let refusal: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, refusal["error"]["code"].clone()), (403, json!("fallback-not-served")), "{body}");
    let help = refusal["error"]["help"].as_str().unwrap();
    assert!(help.contains("--fallback-credentials trusted"), "the help names the way to allow it: {help}");
    bodies_for_nobody.push(body);
    let tcp = served.tcp_client(true).post("/v1/credentials", UNMAPPED).await;
    assert_eq!((tcp.status, tcp.error_code()), (403, "fallback-not-served".to_owned()), "{}", tcp.body);
    if own_uid() == 0 {
        let root = served.unix_client().post("/v1/credentials", UNMAPPED).await;
        assert_eq!((root.status, root.error_code()), (403, "fallback-not-served".to_owned()), "{}", root.body);
    }
    let log = wait_log(&served, "fallback-not-served").await;
    assert!(log.contains(&format!("refused: caller=uid {nobody}")), "{log}");

    // Opted in: trusted callers (the token, root, allow-listed uids) get it; nobody still does not.
    let served = Served::start(CONFIG, &moto.endpoint(), &["--fallback-credentials", "trusted"]);
    let (status, body) = served.request_as(nobody, "POST", "/v1/credentials", Some(UNMAPPED)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("fallback-not-served"), "{body}");
    bodies_for_nobody.push(body);
    let tcp = served.tcp_client(true).post("/v1/credentials", UNMAPPED).await;
    assert_eq!(tcp.status, 200, "{}", tcp.body);
    assert_eq!(tcp.json()["Credentials"]["AccessKeyId"], BASE_ACCESS_KEY_ID);
    if own_uid() == 0 {
        let root = served.unix_client().post("/v1/credentials", UNMAPPED).await;
        assert_eq!((root.status, root.json()["resolution"]["decision"].clone()), (200, json!("fallback")));
    }

    // What nobody may have: the roles its own requests map to, here by EMRFS's own semantics a `Prefix`
    // role for a path under it. Not another user's role.
    let (status, body) =
        served.request_as(nobody, "POST", "/v1/credentials", Some(r#"{"path": "s3://lake/raw/x"}"#)).await;
    assert_eq!(status, 200, "{body}");
    let granted: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(granted["resolution"]["role"], "arn:aws:iam::123456789012:role/lake-reader");
    assert!(granted["Credentials"]["AccessKeyId"].as_str().unwrap().starts_with("ASIA"));
    bodies_for_nobody.push(body);
    let (status, body) = served.request_as(nobody, "POST", "/v1/credentials", Some(r#"{"user": "alice"}"#)).await;
    assert_eq!(status, 403, "{body}");
    bodies_for_nobody.push(body);

    for body in &bodies_for_nobody {
        assert!(!body.contains(BASE_ACCESS_KEY_ID) && !body.contains(BASE_SECRET_ACCESS_KEY), "{body}");
    }
    let assumed = moto.assumed_roles();
    assert!(
        assumed.iter().all(|a| a["role_arn"] != "arn:aws:iam::123456789012:role/analysts"),
        "nobody made the server assume alice's role: {assumed:?}"
    );
}

/// Runs `serve` with `args` until it prints its listening line or exits: the exit code (`None` when it
/// started, and was then stopped) and its standard error.
fn try_serve(args: &[&str]) -> (Option<i32>, String) {
    let mut child = moto::aws_command(env!("CARGO_BIN_EXE_emrfs-rolemap"))
        .arg("serve")
        .args(args)
        .args(["--sts-endpoint", NO_STS, "--region", moto::REGION])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 9];
    let started = std::io::Read::read_exact(&mut stdout, &mut first).is_ok() && &first == b"listening";
    if started {
        let _ = child.kill();
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (if started { None } else { output.status.code() }, stderr)
}

/// Defect 2, at start: whoever can write the configuration maps themselves to any role, and nothing
/// checked the owner or mode of the configuration, its directories or the token file.
#[test]
fn files_that_others_can_write_are_refused_at_start() {
    let dir = TempDir::new("untrusted");
    chmod(dir.path(), 0o755);
    let config = dir.path().join("config.json");
    std::fs::write(&config, CONFIG).unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    chmod(&token, 0o600);
    let socket = dir.path().join("s.sock");
    let (config, token, socket) = (config.to_str().unwrap(), token.to_str().unwrap(), socket.to_str().unwrap());
    let unix = ["--config", config, "--socket", socket];
    let tcp = ["--config", config, "--listen", "127.0.0.1:0", "--token-file", token];

    assert_eq!(try_serve(&unix).0, None, "a trusted file serves");
    chmod(Path::new(config), 0o666);
    let (code, stderr) = try_serve(&unix);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&format!("`{config}` is writable by others (mode 666)")), "{stderr}");
    assert!(stderr.contains("--insecure-files"), "the error says how to override it: {stderr}");
    chmod(Path::new(config), 0o664);
    let (code, stderr) = try_serve(&unix);
    assert_eq!(code, Some(2), "group-writable is refused too: {stderr}");

    // Overridden for tests and development, with a warning.
    let insecure = ["--config", config, "--socket", socket, "--insecure-files"];
    let (code, stderr) = try_serve(&insecure);
    assert_eq!(code, None, "{stderr}");
    assert!(stderr.contains("WARN") && stderr.contains("is writable by group"), "{stderr}");
    chmod(Path::new(config), 0o644);

    chmod(Path::new(token), 0o622);
    let (code, stderr) = try_serve(&tcp);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&format!("`{token}` is writable by others")), "{stderr}");
    chmod(Path::new(token), 0o600);
    assert_eq!(try_serve(&tcp).0, None);

    // A directory on the way that others can write, and that is not sticky.
    chmod(dir.path(), 0o777);
    let (code, stderr) = try_serve(&unix);
    assert_eq!(code, Some(2), "{stderr}");
    let directory = format!("the directory `{}` of `{config}` is writable by others (mode 777)", dir.path().display());
    assert!(stderr.contains(&directory), "{stderr}");
    chmod(dir.path(), 0o1777);
    assert_eq!(try_serve(&unix).0, None, "a sticky directory (like /tmp) is accepted");
    chmod(dir.path(), 0o755);

    // Owned by another user (only root can arrange that).
    if own_uid() == 0 {
        std::os::unix::fs::chown(config, Some(65_534), None).unwrap();
        let (code, stderr) = try_serve(&unix);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("owned by uid 65534"), "{stderr}");
        std::os::unix::fs::chown(config, Some(0), None).unwrap();
    }

    // Not a regular file.
    let fifo = dir.path().join("fifo.json");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let (code, stderr) = try_serve(&["--config", fifo.to_str().unwrap(), "--socket", socket]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("is not a regular file (a FIFO)"), "{stderr}");
}

/// Defect 2, on reload: a configuration made writable by others is refused, with the old generation
/// serving; so is a token file on SIGHUP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_that_others_can_write_are_refused_on_reload() {
    let served = Served::start(CONFIG, NO_STS, &["--watch-interval", "0.05"]);
    let alice = r#"{"user": "alice"}"#;
    let config = served.config_path();
    std::fs::write(&config, CONFIG_B).unwrap();
    chmod(&config, 0o666);
    let ready = served.wait_ready(|r| !r["last_reload_error"].is_null()).await;
    assert_eq!(ready["generation"], 1, "{ready}");
    assert_eq!(ready["last_reload_error"]["code"], "untrusted-file", "{ready}");
    let reply = served.unix_client().post("/v1/resolve", alice).await.json();
    assert_eq!(reply["role"], "arn:aws:iam::123456789012:role/analysts", "the old generation serves");
    wait_log(&served, "is writable by others (mode 666)").await;

    chmod(&config, 0o644);
    let ready = served.wait_ready(|r| r["generation"] == 2).await;
    assert_eq!(ready["last_reload_error"], Value::Null);

    let token = served.dir.path().join("token");
    std::fs::write(&token, "a-new-token-that-others-wrote-0123\n").unwrap();
    chmod(&token, 0o666);
    served.signal("HUP");
    wait_log(&served, "kept the current bearer token").await;
    assert_eq!(served.tcp_client(true).post("/v1/resolve", alice).await.status, 200, "the old token still works");
    let planted =
        Client { target: Target::Tcp(served.tcp.unwrap()), token: Some("a-new-token-that-others-wrote-0123".into()) };
    assert_eq!(planted.post("/v1/resolve", alice).await.status, 401, "the planted token is not accepted");
}

/// Defect 3: the token file was read on SIGHUP with `read_to_string` inside the async reloader, so a
/// FIFO there blocked it (and a runtime worker) for good: no reload ever ran again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_as_token_file_on_sighup_keeps_the_server_serving() {
    let mut served = Served::start(CONFIG, NO_STS, &["--watch-interval", "0.05"]);
    let token = served.dir.path().join("token");
    std::fs::remove_file(&token).unwrap();
    assert!(Command::new("mkfifo").arg(&token).status().unwrap().success());
    served.signal("HUP");
    let log = wait_log(&served, "kept the current bearer token").await;
    assert!(log.contains("is not a regular file (a FIFO)"), "{log}");
    assert_eq!(served.tcp_client(true).post("/v1/resolve", r#"{"user": "alice"}"#).await.status, 200);

    // Reloads go on.
    served.replace_config(CONFIG_B);
    let ready = served.wait_ready(|r| r["generation"] == 2).await;
    assert_eq!(ready["last_reload_error"], Value::Null);
    served.signal("TERM");
    assert_eq!(served.wait_exit(Duration::from_secs(10)), Some(0));
}

/// Defect 5: `/readyz` quoted the first line of a file that failed to load (here a symlink to a
/// root-only file), and `/v1/explain` gave every socket caller every mapping's role and identifiers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_callers_see_only_their_own_answer() {
    let served = Served::start(CONFIG, NO_STS, &["--watch-interval", "0.05"]);
    let nobody = unprivileged_uid();
    let (status, explained) =
        served.json_as(nobody, "POST", "/v1/explain", Some(r#"{"path": "s3://lake/raw/x"}"#)).await;
    assert_eq!(status, 200, "{explained}");
    assert_eq!(explained["resolution"]["mapping_index"], 1);
    let mappings = explained["mappings"].as_array().unwrap();
    assert_eq!(mappings.len(), 1, "only the mapping that matched: {explained}");
    assert_eq!((mappings[0]["index"].clone(), mappings[0]["status"].clone()), (json!(1), json!("decisive")));
    let text = explained.to_string();
    assert!(!text.contains("alice") && !text.contains("analysts"), "another user's mapping shows: {text}");
    let (_, missed) = served.json_as(nobody, "POST", "/v1/explain", Some(UNMAPPED)).await;
    assert_eq!(missed["mappings"], json!([]), "{missed}");
    if own_uid() == 0 {
        let full = served.unix_client().post("/v1/explain", r#"{"path": "s3://lake/raw/x"}"#).await.json();
        assert_eq!(full["mappings"].as_array().unwrap().len(), 2, "trusted callers keep the full trace");
    }

    // The configuration becomes a symlink to a root-only file whose first line is a secret.
    let secret = served.dir.path().join("secret");
    std::fs::write(&secret, "TOP-SECRET-first-line\n{}\n").unwrap();
    chmod(&secret, 0o600);
    let link = served.dir.path().join("config.link");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    std::fs::rename(&link, served.config_path()).unwrap();
    served.wait_ready(|r| !r["last_reload_error"].is_null()).await;
    let (status, ready) = served.json_as(nobody, "GET", "/readyz", None).await;
    assert_eq!(status, 200);
    let failure = &ready["last_reload_error"];
    assert!(!ready.to_string().contains("TOP-SECRET"), "the file's content shows: {ready}");
    assert_eq!(failure["code"], "invalid-configuration", "{ready}");
    assert_eq!(failure["diagnostics"][0]["code"], "json-syntax", "{ready}");
    assert_eq!(
        (failure["diagnostics"][0]["line"].clone(), failure["diagnostics"][0]["column"].clone()),
        (json!(1), json!(1))
    );
    if own_uid() == 0 {
        let full = served.unix_client().get("/readyz").await.json();
        assert!(full["last_reload_error"]["message"].as_str().unwrap().contains("TOP-SECRET"), "{full}");
    }
}

/// Sends `count` copies of `body` to `/v1/credentials` over `connections` keep-alive TCP connections;
/// returns how many answers had each status.
async fn flood(served: &Served, body: &'static str, count: usize, connections: usize) -> Vec<(u16, usize)> {
    let client = served.tcp_client(true);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let client = client.clone();
        let share = count / connections + usize::from(c < count % connections);
        tasks.push(tokio::spawn(async move {
            let mut connection = client.connect().await;
            let mut statuses = std::collections::BTreeMap::new();
            for _ in 0..share {
                let reply = connection.send("POST", "/v1/credentials", Some(body)).await;
                *statuses.entry(reply.status).or_insert(0) += 1;
            }
            statuses
        }));
    }
    let mut total = std::collections::BTreeMap::new();
    for task in tasks {
        for (status, n) in task.await.unwrap() {
            *total.entry(status).or_insert(0) += n;
        }
    }
    total.into_iter().collect()
}

/// Defect 6: the audit log wrote a line per request, cache hits included (641,000 lines in two minutes
/// of load), and refusals, which any caller can trigger, the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_has_no_line_per_cache_hit_and_few_per_refusal() {
    let moto = Moto::start();
    let served = Served::start(CONFIG, &moto.endpoint(), &[]);
    let alice = r#"{"user": "alice", "path": "s3://lake/raw/x"}"#;
    let audit_lines = |kind: &str| {
        let log = served.log();
        log.lines()
            .filter(|l| l.contains("emrfs_rolemap::audit") && l.contains(kind))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(flood(&served, alice, 100_000, 8).await, [(200, 100_000)]);
    assert_eq!(moto.assumed_roles().len(), 1);
    let granted = audit_lines("granted:");
    assert_eq!(
        granted.len(),
        1,
        "one line for the grant that called STS, none for 99,999 hits:\n{}",
        granted[..granted.len().min(5)].join("\n")
    );

    let flooding = Instant::now();
    assert_eq!(flood(&served, UNMAPPED, 100_000, 8).await, [(403, 100_000)]);
    // One line per minute at most, and the first at once: on a loaded machine the flood takes longer.
    let minutes = flooding.elapsed().as_secs() / 60;
    let refused = audit_lines("refused:");
    assert!(
        (1..=2 + minutes as usize).contains(&refused.len()),
        "at most a line per caller and code a minute:\n{}",
        refused[..refused.len().min(5)].join("\n")
    );
    let log = served.log();
    assert!(log.len() < 64 * 1024, "the log grew to {} bytes", log.len());

    let metrics = served.tcp_client(true).get("/metrics").await.body;
    let role = "arn:aws:iam::123456789012:role/analysts";
    let series = |origin: &str| format!(r#"emrfs_rolemap_credential_grants_total{{role="{role}",origin="{origin}"}}"#);
    // The connections' first requests may all wait for the one STS call (single flight).
    let (cached, fetched) = (metric(&metrics, &series("cache")), metric(&metrics, &series("sts")));
    assert!((1.0..=8.0).contains(&fetched) && cached + fetched == 100_000.0, "{metrics}");
    let (_, untrusted) = served.request_as(unprivileged_uid(), "GET", "/metrics", None).await;
    assert!(untrusted.contains("emrfs_rolemap_credential_refusals_total") && !untrusted.contains(role), "{untrusted}");
    let refusals = r#"emrfs_rolemap_credential_refusals_total{code="fallback-not-served"}"#;
    assert_eq!(metric(&metrics, refusals), 100_000.0);
}
