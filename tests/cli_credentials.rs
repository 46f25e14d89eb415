//! `emrfs-rolemap credentials` end to end: the built binary against the moto STS emulator, under an
//! environment that keeps the AWS SDK off the metadata service (`support::moto::aws_command`).

mod support;

use std::io::Write;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::moto::{self, BASE_ACCESS_KEY_ID, BASE_SECRET_ACCESS_KEY, Moto};

const CONFIG: &str = r#"{"RoleMappings": [
  {"Role": "arn:aws:iam::123456789012:role/analysts", "IdentifierType": "User", "Identifiers": ["alice"]},
  {"Role": "arn:aws:iam::123456789012:role/lake-reader", "IdentifierType": "Prefix", "Identifiers": ["s3://lake/"]}
]}"#;

/// Runs `credentials --config - ARGS` with the configuration on standard input.
fn credentials(args: &[&str], env: &[(&str, &str)], env_remove: &[&str]) -> Output {
    let mut command = moto::aws_command(env!("CARGO_BIN_EXE_emrfs-rolemap"));
    command.args(["credentials", "--config", "-"]).args(args).envs(env.iter().copied());
    for name in env_remove {
        command.env_remove(name);
    }
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Unusable flags are refused before the configuration is read: the command may exit without
    // reading its input, and the write then fails with a broken pipe.
    let written = child.stdin.take().unwrap().write_all(CONFIG.as_bytes());
    assert!(written.as_ref().map_or_else(|e| e.kind() == std::io::ErrorKind::BrokenPipe, |_| true), "{written:?}");
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Seconds since the epoch of an RFC 3339 UTC time `YYYY-MM-DDTHH:MM:SSZ`.
fn epoch_seconds(rfc3339: &str) -> i64 {
    let b = rfc3339.as_bytes();
    assert!(rfc3339.len() == 20 && b[4] == b'-' && b[10] == b'T' && b[19] == b'Z', "not RFC 3339 UTC: {rfc3339}");
    let n = |range: std::ops::Range<usize>| rfc3339[range].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

#[test]
fn a_mapped_user_gets_assumed_role_credentials_in_credential_process_format() {
    let moto = Moto::start();
    let endpoint = moto.endpoint();
    let output = credentials(
        &["--user", "alice", "--path", "s3://lake/x", "--sts-endpoint", &endpoint, "--duration", "1800"],
        &[],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(text(&output.stderr), "");
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["Version"], 1);
    assert!(json["AccessKeyId"].as_str().unwrap().starts_with("ASIA"), "{json}");
    assert!(!json["SecretAccessKey"].as_str().unwrap().is_empty());
    assert!(!json["SessionToken"].as_str().unwrap().is_empty());
    let expires_in = epoch_seconds(json["Expiration"].as_str().unwrap()) - now();
    assert!((1700..=1900).contains(&expires_in), "--duration 1800 gives {expires_in} s");
    let calls = moto.assumed_roles();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["role_arn"], "arn:aws:iam::123456789012:role/analysts");
    assert_eq!(calls[0]["session_name"], "emrfs-alice");
    assert_eq!(calls[0]["access_key_id"], json["AccessKeyId"]);
}

#[test]
fn options_shape_the_assume_role_call() {
    let moto = Moto::start();
    let endpoint = moto.endpoint();
    let args = [
        "--user",
        "bob",
        "--path",
        "s3://lake/x",
        "--sts-endpoint",
        &endpoint,
        "--region",
        "eu-west-1",
        "--session-name",
        "proxy-{user}",
        "--external-id",
        "ext-42",
        "--source-identity",
    ];
    let output = credentials(&args, &[], &["AWS_REGION"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let calls = moto.assumed_roles();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["role_arn"], "arn:aws:iam::123456789012:role/lake-reader");
    assert_eq!(calls[0]["session_name"], "proxy-bob");
    assert_eq!(calls[0]["external_id"], "ext-42");
    assert_eq!(calls[0]["region_name"], "eu-west-1");
}

#[test]
fn a_fallback_prints_the_base_credentials() {
    let moto = Moto::start();
    let output =
        credentials(&["--user", "bob", "--path", "s3://other/x", "--sts-endpoint", &moto.endpoint()], &[], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["AccessKeyId"], BASE_ACCESS_KEY_ID);
    assert_eq!(json["SecretAccessKey"], BASE_SECRET_ACCESS_KEY);
    assert!(json.get("SessionToken").is_none() && json.get("Expiration").is_none(), "long-term keys: {json}");
    assert!(moto.assumed_roles().is_empty());
}

#[test]
fn unusable_input_exits_2_before_calling_sts() {
    moto::aws_env();
    let cases: [(&[&str], &[&str], &str); 5] = [
        (&["--duration", "100"], &[], "900 to 43200"),
        (&["--duration", "50000"], &[], "50000 s is outside"),
        (&["--session-name", "emrfs-{usr}"], &[], "unknown placeholder `{usr}`"),
        (&["--sts-endpoint", "127.0.0.1:5000"], &[], "invalid endpoint URL `127.0.0.1:5000`"),
        (&[], &["AWS_REGION", "AWS_DEFAULT_REGION"], "no AWS region"),
    ];
    for (extra, env_remove, expected) in cases {
        let mut args = vec!["--user", "alice", "--path", "s3://lake/x"];
        args.extend_from_slice(extra);
        let output = credentials(&args, &[], env_remove);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.starts_with("error: ") && stderr.contains(expected), "{extra:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{extra:?}");
    }
}

#[test]
fn an_unreachable_sts_exits_1_naming_the_endpoint_and_the_role() {
    moto::aws_env();
    let endpoint = format!("http://127.0.0.1:{}", moto::free_port());
    let started = Instant::now();
    let output = credentials(&["--user", "alice", "--path", "s3://lake/x", "--sts-endpoint", &endpoint], &[], &[]);
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("STS at `{endpoint}`")), "{stderr}");
    assert!(stderr.contains("arn:aws:iam::123456789012:role/analysts"), "{stderr}");
    assert!(!stderr.contains(BASE_SECRET_ACCESS_KEY), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn profile_takes_the_base_credentials_from_that_profile() {
    let moto = Moto::start();
    let file = std::env::temp_dir().join(format!("emrfs-rolemap-credentials-{}", std::process::id()));
    std::fs::write(
        &file,
        "[emrfs-test]\naws_access_key_id = AKIAPROFILETEST\naws_secret_access_key = profile-secret\n",
    )
    .unwrap();
    let env = [("AWS_SHARED_CREDENTIALS_FILE", file.to_str().unwrap())];
    let fallback = ["--user", "bob", "--path", "s3://other/x", "--sts-endpoint", &moto.endpoint()];
    let chosen = credentials(&[&fallback[..], &["--profile", "emrfs-test"]].concat(), &env, &[]);
    let unknown = credentials(&[&fallback[..], &["--profile", "nope"]].concat(), &env, &[]);
    std::fs::remove_file(&file).unwrap();

    assert_eq!(chosen.status.code(), Some(0), "{}", text(&chosen.stderr));
    let json: Value = serde_json::from_slice(&chosen.stdout).unwrap();
    assert_eq!((&json["AccessKeyId"], &json["SecretAccessKey"]), (&"AKIAPROFILETEST".into(), &"profile-secret".into()));
    let stderr = text(&unknown.stderr);
    assert_eq!(unknown.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot load the base credentials from profile `nope`"), "{stderr}");
}
