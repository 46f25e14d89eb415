//! Unmodified AWS SDKs get each user's mapped role from `serve`: the AWS CLI v1 and boto3 (installed by
//! `scripts/install-moto.sh` beside moto) read `GET /v1/container-credentials` through
//! `AWS_CONTAINER_CREDENTIALS_FULL_URI` and `AWS_CONTAINER_AUTHORIZATION_TOKEN` (or `_FILE`), and then
//! call moto's STS with what they got: `aws sts get-caller-identity` names the role they hold.
//!
//! Per-user tokens are fetched with `emrfs-rolemap token` run as another uid (`nobody` when the tests
//! run as root), and then used by an SDK process: the token, not the process's uid, is what the server
//! sees over TCP.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use support::moto::{self, Moto};
use support::server::{Client, Served, TOKEN, Target, TempDir, own_uid, unprivileged_uid};

const ACCOUNT: &str = "123456789012";
/// An STS endpoint nobody listens on, for servers that never fetch credentials.
const NO_STS: &str = "http://127.0.0.1:9";

/// The user name and primary group of `uid`.
fn os_user(uid: u32) -> (String, String) {
    let id = |flag: &str| {
        let out = Command::new("id").args([flag, &uid.to_string()]).output().unwrap();
        assert!(out.status.success(), "id {flag} {uid}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    (id("-un"), id("-gn"))
}

/// The mappings: a prefix first, then the unprivileged user's primary group (so that dropping that
/// group would give its user mapping, a broader role), then users.
fn config() -> String {
    let (user, group) = os_user(unprivileged_uid());
    format!(
        r#"{{"RoleMappings": [
  {{"Role": "arn:aws:iam::{ACCOUNT}:role/finance-data", "IdentifierType": "Prefix", "Identifiers": ["s3://finance/"]}},
  {{"Role": "arn:aws:iam::{ACCOUNT}:role/restricted", "IdentifierType": "Group", "Identifiers": ["{group}"]}},
  {{"Role": "arn:aws:iam::{ACCOUNT}:role/alice-role", "IdentifierType": "User", "Identifiers": ["alice"]}},
  {{"Role": "arn:aws:iam::{ACCOUNT}:role/broad", "IdentifierType": "User", "Identifiers": ["{user}"]}}
]}}"#
    )
}

/// `emrfs-rolemap`, copied where every user may run it: the test's target directory may sit in a
/// private directory (a fresh clone in `mktemp -d`).
fn shared_binary(dir: &Path) -> PathBuf {
    let copy = dir.join("emrfs-rolemap");
    if !copy.exists() {
        std::fs::copy(env!("CARGO_BIN_EXE_emrfs-rolemap"), &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        wait_until_executable(&copy);
    }
    copy
}

/// Waits until `binary` runs. A process that another test thread forked while the copy was open for
/// writing holds that descriptor until it execs, and meanwhile an exec of the copy fails with "Text
/// file busy" (ETXTBSY); once one exec succeeds, no such descriptor is left.
fn wait_until_executable(binary: &Path) {
    for _ in 0..200 {
        match Command::new(binary).arg("--version").output() {
            Ok(out) => {
                assert!(out.status.success(), "{} --version failed", binary.display());
                return;
            }
            Err(e) if e.raw_os_error() == Some(ETXTBSY) => std::thread::sleep(Duration::from_millis(25)),
            Err(e) => panic!("cannot run {}: {e}", binary.display()),
        }
    }
    panic!("{} stayed busy for 5 s", binary.display());
}

/// `ETXTBSY` on Linux.
const ETXTBSY: i32 = 26;

/// `emrfs-rolemap token --socket SOCKET ARGS` run as `uid`.
fn token_as(served: &Served, uid: u32, args: &[&str]) -> Output {
    let mut command = Command::new(shared_binary(served.dir.path()));
    command.arg("token").arg("--socket").arg(served.socket.as_ref().unwrap()).args(args);
    if uid != own_uid() {
        command.uid(uid).gid(uid).current_dir("/");
    }
    command.output().unwrap()
}

/// A per-user token for `uid`, as `emrfs-rolemap token` prints it.
fn token_for(served: &Served, uid: u32, args: &[&str]) -> String {
    let out = token_as(served, uid, args);
    assert!(out.status.success(), "token as uid {uid}: {}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(printed.ends_with('\n') && printed.trim_end().starts_with("emrfs1."), "{printed:?}");
    printed.trim_end().to_owned()
}

/// How an SDK process presents its token.
enum Auth<'a> {
    Value(&'a str),
    File(&'a Path),
}

/// An SDK process's environment: nothing of the test's AWS settings, no proxy, the container provider
/// pointed at `served` with `query`.
fn sdk_command(program: &Path, served: &Served, query: &str, auth: &Auth<'_>) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy().to_ascii_lowercase();
        if name_text.starts_with("aws_") || name_text.ends_with("_proxy") {
            command.env_remove(&name);
        }
    }
    let uri = format!("http://{}/v1/container-credentials{query}", served.tcp.unwrap());
    command
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_REGION", moto::REGION)
        // botocore reads this one.
        .env("AWS_DEFAULT_REGION", moto::REGION)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri);
    match auth {
        Auth::Value(token) => command.env("AWS_CONTAINER_AUTHORIZATION_TOKEN", token),
        Auth::File(path) => command.env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", path),
    };
    command
}

/// `aws sts get-caller-identity` through the container provider: the ARN it prints, or its error.
fn aws_identity(moto: &Moto, served: &Served, query: &str, auth: Auth<'_>) -> Result<String, String> {
    let out = sdk_command(&moto::venv_program("aws"), served, query, &auth)
        .args(["sts", "get-caller-identity", "--output", "json", "--endpoint-url", &moto.endpoint()])
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    Ok(answer["Arn"].as_str().unwrap().to_owned())
}

fn assumed(role: &str) -> String {
    format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/")
}

#[track_caller]
fn assert_role(identity: Result<String, String>, role: &str) {
    let arn = identity.unwrap_or_else(|e| panic!("the AWS CLI failed for {role}: {e}"));
    assert!(arn.starts_with(&assumed(role)), "{arn} is not {role}");
}

/// The AWS CLI refuses, and says why: the status and the server's code.
#[track_caller]
fn assert_refused(identity: Result<String, String>, status: u16, code: &str) {
    let error = identity.expect_err("the AWS CLI must fail");
    assert!(error.contains(&format!("Received non 200 response {status}")), "{error}");
    assert!(error.contains(&format!("\"code\":\"{code}\"")), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_gets_the_mapped_role_for_the_server_token_a_prefix_and_a_per_user_token() {
    let moto = Moto::start();
    let served = Served::start(&config(), &moto.endpoint(), &["--fallback-credentials", "trusted"]);
    let nobody = unprivileged_uid();

    // A trusted proxy (the server's token) names the user; the path decides first when a prefix matches.
    assert_role(aws_identity(&moto, &served, "?user=alice", Auth::Value(TOKEN)), "alice-role");
    // The answer itself: the fields the SDKs read, in this order, and the decided role and its account.
    let reply = served.tcp_client(true).get("/v1/container-credentials?user=alice").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = reply.json();
    let fields: Vec<&str> = answer.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(fields, ["AccessKeyId", "SecretAccessKey", "Token", "Expiration", "RoleArn", "AccountId"]);
    assert_eq!(answer["RoleArn"].as_str(), Some(format!("arn:aws:iam::{ACCOUNT}:role/alice-role").as_str()));
    assert_eq!(answer["AccountId"].as_str(), Some(ACCOUNT));
    assert!(answer["Token"].as_str().is_some_and(|t| !t.is_empty()), "{answer}");
    let prefix = "?path=s3%3A%2F%2Ffinance%2Fq1%2Fledger.csv&user=alice";
    assert_role(aws_identity(&moto, &served, prefix, Auth::Value(TOKEN)), "finance-data");
    let bearer = format!("Bearer {TOKEN}");
    assert_role(aws_identity(&moto, &served, "?user=alice", Auth::Value(&bearer)), "alice-role");

    // A per-user token fetched as another uid: its own group's role, and nothing else.
    let token = token_for(&served, nobody, &[]);
    assert_role(aws_identity(&moto, &served, "", Auth::Value(&token)), "restricted");
    let refusals = [
        ("?user=alice", 403, "not-your-user"),
        // Dropping its group would reach its user mapping, a broader role.
        ("?groups=", 403, "groups-not-accepted"),
        ("?groups=staff", 403, "groups-not-accepted"),
        ("?role=admin", 400, "unknown-parameter"),
    ];
    // Each refused CLI run takes seconds (botocore retries); run them side by side.
    std::thread::scope(|scope| {
        let runs: Vec<_> = refusals
            .iter()
            .map(|(query, status, code)| {
                let (moto, served, token) = (&moto, &served, &token);
                scope
                    .spawn(move || assert_refused(aws_identity(moto, served, query, Auth::Value(token)), *status, code))
            })
            .collect();
        for run in runs {
            run.join().unwrap();
        }
    });

    // The token file `--out` writes, as the SDKs read it: mode 0600, the user's own, no line break.
    let home = TempDir::new("home");
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let own_dir = home.path().join("run");
    std::fs::create_dir(&own_dir).unwrap();
    std::os::unix::fs::chown(&own_dir, Some(nobody), Some(nobody)).unwrap();
    let file = own_dir.join("emrfs-token");
    let out = token_as(&served, nobody, &["--out", file.to_str().unwrap(), "--ttl", "1h"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "the token goes to the file only");
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.uid()), (0o600, nobody));
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.starts_with("emrfs1.") && !written.contains('\n'), "{written:?}");
    assert_role(aws_identity(&moto, &served, "", Auth::File(&file)), "restricted");

    // A `~/.aws/config` profile per data area: `credential_process` asks the socket as the user who runs
    // the SDK.
    let aws_config = home.path().join("config");
    let profile = format!(
        "[profile finance]\ncredential_process = {} fetch --socket {} --path s3://finance/q1/\n",
        shared_binary(served.dir.path()).display(),
        served.socket.as_ref().unwrap().display()
    );
    std::fs::write(&aws_config, profile).unwrap();
    let mut aws = sdk_command(&moto::venv_program("aws"), &served, "", &Auth::Value(""));
    aws.env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI").env_remove("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    let out = aws
        .env("AWS_CONFIG_FILE", &aws_config)
        .args([
            "sts",
            "get-caller-identity",
            "--profile",
            "finance",
            "--output",
            "json",
            "--endpoint-url",
            &moto.endpoint(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "the profile: {}", String::from_utf8_lossy(&out.stderr));
    let arn = serde_json::from_slice::<Value>(&out.stdout).unwrap()["Arn"].as_str().unwrap().to_owned();
    assert!(arn.starts_with(&assumed("finance-data")), "{arn}");

    // The base credentials: a trusted proxy may have them (--fallback-credentials trusted); a per-user
    // token never, not even root's.
    let base = aws_identity(&moto, &served, "?user=bob", Auth::Value(TOKEN)).unwrap();
    assert!(!base.contains("assumed-role"), "{base}");
    if own_uid() == 0 {
        let roots = token_for(&served, 0, &[]);
        assert_refused(aws_identity(&moto, &served, "", Auth::Value(&roots)), 403, "fallback-not-served");
    }
    assert!(!served.log().contains(&token), "a token never reaches the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_altered_and_expired_tokens_are_refused_and_the_cli_says_so() {
    let moto = Moto::start();
    let served = Served::start(&config(), &moto.endpoint(), &[]);
    let nobody = unprivileged_uid();
    let token = token_for(&served, nobody, &[]);
    let mut altered = token.clone().into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'0' { b'1' } else { b'0' };
    let altered = String::from_utf8(altered).unwrap();
    let short = token_for(&served, nobody, &["--ttl", "1s"]);
    std::thread::sleep(Duration::from_millis(1100));
    let cases = [
        ("made-up", "emrfs1.00112233.44556677".to_owned(), "invalid-token"),
        ("not a token at all", "let-me-in-please-0123".to_owned(), "wrong-token"),
        ("altered", altered, "invalid-token"),
        ("expired", short, "expired-token"),
    ];
    std::thread::scope(|scope| {
        let runs: Vec<_> = cases
            .iter()
            .map(|(what, token, code)| {
                let (moto, served) = (&moto, &served);
                scope.spawn(move || {
                    let outcome = aws_identity(moto, served, "", Auth::Value(token));
                    let error = outcome.as_ref().expect_err(what).clone();
                    assert!(error.contains("Error when retrieving credentials from container-role"), "{what}: {error}");
                    assert_refused(outcome, 401, code);
                })
            })
            .collect();
        for run in runs {
            run.join().unwrap();
        }
    });
    assert_role(aws_identity(&moto, &served, "", Auth::Value(&token)), "restricted");
}

/// botocore refreshes credentials 15 minutes before their `Expiration` (10 minutes at the latest): with
/// 900-second sessions it must fetch again at its next use, long before they expire, and it reads the
/// `Expiration` the server gave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_refreshes_before_expiration() {
    let moto = Moto::start();
    let served = Served::start(&config(), &moto.endpoint(), &["--duration", "900"]);
    let token = token_for(&served, unprivileged_uid(), &[]);
    let script = r#"
import datetime, json, sys
import boto3
session = boto3.Session()
credentials = session.get_credentials()
assert credentials.method == "container-role", credentials.method
sts = session.client("sts", endpoint_url=sys.argv[1])
arns = [sts.get_caller_identity()["Arn"] for _ in range(3)]
print(json.dumps({
    "arns": arns,
    "expiry": credentials._expiry_time.timestamp(),
    "now": datetime.datetime.now(datetime.timezone.utc).timestamp(),
}))
"#;
    let started = SystemTime::now();
    let out = sdk_command(&moto::venv_program("python"), &served, "", &Auth::Value(&token))
        .args(["-c", script, &moto.endpoint()])
        .output()
        .unwrap();
    assert!(out.status.success(), "boto3: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    for arn in report["arns"].as_array().unwrap() {
        assert!(arn.as_str().unwrap().starts_with(&assumed("restricted")), "{arn}");
    }
    let (expiry, now) = (report["expiry"].as_f64().unwrap(), report["now"].as_f64().unwrap());
    let issued = started.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((expiry - issued - 900.0).abs() < 60.0, "boto3 read the server's Expiration: {expiry} vs {issued} + 900");
    assert!(expiry - now > 800.0, "the credentials were far from expiry when boto3 fetched again");
    // The server's count: the first fetch, and at least one refresh before Expiration.
    let metrics =
        Client { target: Target::Tcp(served.tcp.unwrap()), token: Some(TOKEN.to_owned()) }.get("/metrics").await;
    let fetched = metrics
        .body
        .lines()
        .find_map(|line| {
            line.strip_prefix(r#"emrfs_rolemap_requests_total{endpoint="/v1/container-credentials",status="200"} "#)
        })
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(fetched >= 2, "boto3 fetched {fetched} time(s): {}", metrics.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_revoked_by_command_and_survive_a_restart_with_a_key_file() {
    let keys = TempDir::new("token-key");
    let key_file = keys.path().join("token.key");
    std::fs::write(&key_file, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n").unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let key_args = ["--token-key-file", key_file.to_str().unwrap()];
    let nobody = unprivileged_uid();
    let (user, _) = os_user(nobody);
    let resolve = |served: &Served, token: &str| {
        let client = Client { target: Target::Tcp(served.tcp.unwrap()), token: Some(token.to_owned()) };
        async move { client.post("/v1/resolve", "{}").await }
    };

    let served = Served::start(&config(), NO_STS, &key_args);
    let old = token_for(&served, nobody, &[]);
    let reply = resolve(&served, &old).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        (reply.json()["principal"]["user"].as_str(), reply.json()["principal"]["groups_from"].as_str()),
        (Some(user.as_str()), Some("os"))
    );
    // An untrusted caller everywhere: `/v1/explain` shows only the mappings that matched its request
    // (decisive and shadowed), not the prefix or alice's.
    let client = Client { target: Target::Tcp(served.tcp.unwrap()), token: Some(old.clone()) };
    let explained = client.post("/v1/explain", "{}").await.json();
    let shown: Vec<_> = explained["mappings"].as_array().unwrap().iter().map(|m| m["index"].clone()).collect();
    assert_eq!(shown, [serde_json::json!(1), serde_json::json!(3)], "its group's and its user's: {explained}");
    let trusted = Client { target: Target::Tcp(served.tcp.unwrap()), token: Some(TOKEN.to_owned()) };
    assert_eq!(trusted.post("/v1/explain", "{}").await.json()["mappings"].as_array().unwrap().len(), 4);
    // Over the Unix socket the uid decides, on the container endpoint too (no STS here: 502, flat).
    let (status, body) = served.request_as(nobody, "GET", "/v1/container-credentials", None).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, body["code"].as_str()), (502, Some("sts-unavailable")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("role/restricted"), "{body}");
    let (status, body) = served.request_as(nobody, "GET", "/v1/container-credentials?user=alice", None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not-your-user"), "{body}");

    // Tokens come from the Unix socket only, and an untrusted user revokes only its own.
    let tcp = Client { target: Target::Tcp(served.tcp.unwrap()), token: Some(TOKEN.to_owned()) };
    assert_eq!(tcp.post("/v1/tokens", "{}").await.error_code(), "tokens-need-the-socket");
    let out = token_as(&served, nobody, &["--revoke", "alice"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not-your-user"), "{}", String::from_utf8_lossy(&out.stderr));
    drop(served);

    // The same key after a restart: the token still works; then its user revokes every earlier token.
    let served = Served::start(&config(), NO_STS, &key_args);
    assert_eq!(resolve(&served, &old).await.status, 200, "the token outlived the restart");
    let out = token_as(&served, nobody, &["--revoke"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(resolve(&served, &old).await.error_code(), "revoked-token");
    let new = token_for(&served, nobody, &[]);
    assert_eq!(resolve(&served, &new).await.status, 200, "a token issued after the revocation works");
    drop(served);

    let served = Served::start(&config(), NO_STS, &key_args);
    assert_eq!(resolve(&served, &old).await.error_code(), "revoked-token", "the revocation outlived the restart");
    assert_eq!(resolve(&served, &new).await.status, 200);
    drop(served);

    // Without a key file the key is random: tokens die with the process.
    let served = Served::start(&config(), NO_STS, &[]);
    assert_eq!(resolve(&served, &new).await.error_code(), "invalid-token");
    drop(served);

    // Limits: the server's maximum lifetime, and a server that issues none.
    let served = Served::start(&config(), NO_STS, &["--token-max-ttl", "1h"]);
    let out = token_as(&served, nobody, &["--ttl", "2h"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid-ttl"), "{}", String::from_utf8_lossy(&out.stderr));
    drop(served);
    let served = Served::start(&config(), NO_STS, &["--no-user-tokens"]);
    let out = token_as(&served, nobody, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("user-tokens-disabled"));
}
