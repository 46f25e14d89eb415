//! The examples end to end against the moto STS emulator: `examples/proxy.rs` over TCP and in its
//! `--demo` mode, and the `credential_process` profile of `examples/credential-process/` through boto3.
//! Needs `moto_server` and the Python of its virtual environment, which has boto3
//! (`bash scripts/install-moto.sh`); fails, never skips, without them.
//!
//! `cargo test` builds the examples; `cargo test --test examples` alone does not, so build the proxy
//! first: `cargo build --example proxy && cargo test --test examples`.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::moto::{self, BASE_ACCESS_KEY_ID, BASE_SECRET_ACCESS_KEY, Moto, REGION};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/configs/multi-team.json");
const ETL: &str = "arn:aws:iam::111122223333:role/emrfs/etl-service";
const PII: &str = "arn:aws:iam::111122223333:role/emrfs/pii-readers";
const FINANCE: &str = "arn:aws:iam::111122223333:role/emrfs/finance";
const RAW: &str = "arn:aws:iam::111122223333:role/emrfs/raw-zone";

/// The built example `name`, `target/PROFILE/examples/NAME`: this test runs from `target/PROFILE/deps`.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(Path::parent).unwrap().join("examples").join(name);
    let source = Path::new(MANIFEST_DIR).join(format!("examples/{name}.rs"));
    let built = path.metadata().and_then(|m| m.modified()).ok();
    let fresh = built.is_some_and(|built| source.metadata().and_then(|m| m.modified()).is_ok_and(|s| s <= built));
    assert!(
        fresh,
        "`{}` is missing or older than `{}`: `cargo test` builds the examples, `cargo test --test examples` \
         alone does not; run `cargo build --example {name}` first",
        path.display(),
        source.display()
    );
    path
}

/// The proxy example serving a free loopback port, killed on drop.
struct Proxy {
    child: Child,
    address: String,
}

impl Proxy {
    fn start(moto: &Moto) -> Proxy {
        let mut child = moto::aws_command(example("proxy"))
            .args(["--config", CONFIG, "--listen", "127.0.0.1:0", "--sts-endpoint", &moto.endpoint()])
            .args(["--region", REGION])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let address = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("proxy said {line:?}"));
        Proxy { address: address.to_owned(), child }
    }

    fn connect(&self) -> Connection {
        let stream = TcpStream::connect(&self.address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Connection { reader: BufReader::new(stream.try_clone().unwrap()), stream }
    }

    /// A new connection that sends `lines` one at a time, each answered before the next is sent.
    fn conversation(&self, lines: &[&str]) -> Vec<Value> {
        let mut connection = self.connect();
        lines.iter().map(|line| connection.send(format!("{line}\n").as_bytes())).collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Connection {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Connection {
    /// Sends `bytes` and reads one answer line.
    fn send(&mut self, bytes: &[u8]) -> Value {
        self.stream.write_all(bytes).unwrap();
        let mut answer = String::new();
        self.reader.read_line(&mut answer).unwrap();
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("answer {answer:?}: {e}"))
    }
}

/// Checks a credentials answer (exactly these fields: never a secret) and returns its access key ID.
fn credentials_answer(answer: &Value, role: &str, mapping_index: usize) -> String {
    let mut fields: Vec<&str> = answer.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["access_key_id", "decision", "expiration", "mapping_index", "role"], "{answer}");
    assert_eq!((&answer["decision"], &answer["role"]), (&json!("mapping"), &json!(role)), "{answer}");
    assert_eq!(answer["mapping_index"], mapping_index, "{answer}");
    assert!(answer["expiration"].as_str().is_some_and(|e| e.ends_with('Z')), "{answer}");
    let key = answer["access_key_id"].as_str().unwrap();
    assert!(key.starts_with("ASIA"), "{answer}");
    key.to_owned()
}

fn error_answer(answer: &Value) -> &str {
    answer["error"].as_str().unwrap_or_else(|| panic!("not an error: {answer}"))
}

#[test]
fn the_proxy_prepares_the_principal_once_per_connection_and_assumes_each_role_once() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto);

    let alice = proxy.conversation(&[
        "hello",
        "user alice groups finance,staff",
        "s3://acme-lake/curated/sales/part-0",
        "s3://acme-lake/curated/sales/part-1",
        "s3://acme-lake/pii/customers/part-0",
        "s3:/nowhere",
        "s3://acme-scratch/tmp/x",
    ]);
    assert!(error_answer(&alice[0]).contains("expected `user NAME [groups G1,G2,...]`, got `hello`"));
    assert_eq!(alice[1], json!({"user": "alice", "groups": ["finance", "staff"]}));
    let finance = credentials_answer(&alice[2], FINANCE, 3);
    assert_eq!(credentials_answer(&alice[3], FINANCE, 3), finance, "a second path of the same role");
    let pii = credentials_answer(&alice[4], PII, 1);
    assert!(error_answer(&alice[5]).starts_with("invalid path `s3:/nowhere`"), "{}", alice[5]);
    assert_eq!(
        credentials_answer(&alice[6], FINANCE, 3),
        finance,
        "the group mapping comes before `s3://acme-scratch/`"
    );

    // The cache is shared by all connections: alice's next session reuses the same credentials.
    let again = proxy.conversation(&["user alice groups finance", "s3://acme-lake/curated/x"]);
    assert_eq!(credentials_answer(&again[1], FINANCE, 3), finance);

    let bob = proxy.conversation(&["user bob", "s3://elsewhere/x", "s3://acme-lake/raw/2026/x"]);
    let fallback = json!({"decision": "fallback", "role": null, "mapping_index": null,
                          "access_key_id": BASE_ACCESS_KEY_ID, "expiration": null});
    assert_eq!(bob[1], fallback, "no mapping: the base credentials, without AssumeRole");
    let raw = credentials_answer(&bob[2], RAW, 5);

    let calls: Vec<_> =
        moto.assumed_roles().iter().map(|c| (c["role_arn"].clone(), c["session_name"].clone())).collect();
    assert_eq!(
        calls,
        [(json!(FINANCE), json!("emrfs-alice")), (json!(PII), json!("emrfs-alice")), (json!(RAW), json!("emrfs-bob"))],
        "one AssumeRole per role and session, over 7 credentials answers"
    );
    let keys: Vec<_> = moto.assumed_roles().iter().map(|c| c["access_key_id"].clone()).collect();
    assert_eq!(keys, [json!(finance), json!(pii), json!(raw)]);
}

#[test]
fn the_proxy_answers_bad_lines_with_errors_and_stays_up() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto);

    let mut connection = proxy.connect();
    assert_eq!(error_answer(&connection.send(b"user \xff\n")), "the line is not UTF-8");
    assert!(error_answer(&connection.send(b"user a b c\n")).starts_with("expected `user NAME"));
    assert_eq!(connection.send(b"user carol\n"), json!({"user": "carol", "groups": []}));
    assert!(error_answer(&connection.send(b"\n")).starts_with("invalid path ``"));
    assert!(error_answer(&connection.send(b"ftp://acme-lake/x\n")).contains("unsupported scheme"));
    let long = format!("s3://acme-lake/{}\n", "k".repeat(5000));
    assert_eq!(error_answer(&connection.send(long.as_bytes())), "line longer than 4096 bytes");
    assert!(error_answer(&connection.send(b"s3:/after-the-long-line\n")).contains("after-the-long-line"));

    let after = proxy.conversation(&["user etl", "s3://acme-scratch/x"]);
    credentials_answer(&after[1], ETL, 0);
    assert_eq!(moto.assumed_roles().len(), 1);
}

#[test]
fn the_proxy_demo_mode_is_its_own_client() {
    let moto = Moto::start();
    let run = |lines: &[&str]| {
        let output = moto::aws_command(example("proxy"))
            .args(["--config", CONFIG, "--sts-endpoint", &moto.endpoint(), "--region", REGION, "--demo"])
            .args(lines)
            .output()
            .unwrap();
        let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).unwrap();
        (output.status.code(), text(&output.stdout), text(&output.stderr))
    };

    let (status, stdout, stderr) = run(&["user etl groups finance", "s3://acme-lake/pii/x", "s3://acme-lake/raw/y"]);
    assert_eq!(status, Some(0), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 7, "{stdout}");
    assert!(lines[0].starts_with("listening on 127.0.0.1:"), "{stdout}");
    let answer = |line: &str| serde_json::from_str::<Value>(line.strip_prefix("< ").unwrap()).unwrap();
    assert_eq!(
        [lines[1], lines[3], lines[5]],
        ["> user etl groups finance", "> s3://acme-lake/pii/x", "> s3://acme-lake/raw/y"]
    );
    assert_eq!(answer(lines[2]), json!({"user": "etl", "groups": ["finance"]}));
    credentials_answer(&answer(lines[4]), ETL, 0);
    credentials_answer(&answer(lines[6]), ETL, 0);
    assert!(stderr.contains("credential cache: 1 hits, 1 STS calls"), "{stderr}");
    assert_eq!(moto.assumed_roles().len(), 1);

    let (status, stdout, _) = run(&["user etl", "s3:/x"]);
    assert_eq!(status, Some(1), "an error answer fails the demo: {stdout}");
}

#[test]
fn the_credential_process_profile_gives_boto3_the_assumed_role() {
    let moto = Moto::start();
    let python = moto::moto_server().with_file_name("python");
    assert!(
        python.is_file(),
        "no `{}` beside moto_server: install moto and boto3 with `bash scripts/install-moto.sh`",
        python.display()
    );

    // The profile of the example, pointed at the built binary, a real configuration and moto.
    let example = Path::new(MANIFEST_DIR).join("examples/credential-process");
    let snippet = std::fs::read_to_string(example.join("config")).unwrap();
    let binary = format!("\"{}\" credentials", env!("CARGO_BIN_EXE_emrfs-rolemap"));
    let profile: String = snippet
        .lines()
        .map(|line| match line.strip_prefix("credential_process = ") {
            Some(command) => format!(
                "credential_process = {} --sts-endpoint {}\n",
                command
                    .replace("emrfs-rolemap credentials", &binary)
                    .replace("/etc/emrfs/security-configuration.json", &format!("\"{CONFIG}\"")),
                moto.endpoint()
            ),
            None => format!("{line}\n"),
        })
        .collect();
    assert!(profile.contains(&binary) && profile.contains(CONFIG), "the example changed: {profile}");
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("credential-process-{}.config", moto.port()));
    std::fs::write(&file, &profile).unwrap();

    // boto3 reads the profile from AWS_CONFIG_FILE and runs the credential_process, which inherits
    // the rest of this environment: no metadata service, and the static base credentials (which
    // boto3 itself ignores, the profile being named explicitly).
    let output = moto::aws_command(&python)
        .arg(example.join("whoami.py"))
        .args(["emrfs-alice", "--endpoint-url", &moto.endpoint()])
        .env("AWS_CONFIG_FILE", &file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}\n(boto3 comes with `bash scripts/install-moto.sh`)");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.trim(), "arn:aws:sts::111122223333:assumed-role/finance/emrfs-alice");
    assert!(!stderr.contains(BASE_SECRET_ACCESS_KEY));

    let calls = moto.assumed_roles();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!((&calls[0]["role_arn"], &calls[0]["session_name"]), (&json!(FINANCE), &json!("emrfs-alice")));
    std::fs::remove_file(&file).unwrap();
}
