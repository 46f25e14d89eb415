//! The examples end to end against moto: `examples/s3_proxy.rs` serving clients of other uids (through
//! `setpriv`) against moto's S3, STS and IAM with IAM enforced, and the `credential_process` profile of
//! `examples/credential-process/` through boto3. Needs `moto_server` and the Python of its virtual
//! environment, which has boto3 (`bash scripts/install-moto.sh`), `setpriv` and `curl`, and root for the
//! S3 proxy's clients; fails, never skips, without them.
//!
//! `cargo test` builds the examples; `cargo test --test examples` alone does not, so build the proxy
//! first: `cargo build --example s3_proxy && cargo test --test examples`.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use support::moto::{self, BASE_SECRET_ACCESS_KEY, Moto, REGION};
use support::tempdir::TempDir;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/configs/multi-team.json");
const FINANCE: &str = "arn:aws:iam::111122223333:role/emrfs/finance";

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

/// The roles of the S3 tests, in moto's account: each may read and write one bucket.
const READER_A: &str = "arn:aws:iam::123456789012:role/reader-a";
const READER_B: &str = "arn:aws:iam::123456789012:role/reader-b";

/// `daemon` (uid 1) by its user name, `bin` (uid 2) by its primary group; `nobody` matches nothing.
const MAPPINGS: &str = r#"{"RoleMappings": [
  {"Role": "arn:aws:iam::123456789012:role/reader-a", "IdentifierType": "User", "Identifiers": ["daemon"]},
  {"Role": "arn:aws:iam::123456789012:role/reader-b", "IdentifierType": "Group", "Identifiers": ["bin"]}
]}"#;
/// The same mappings with the roles swapped: the proxy given the wrong role for each user.
const SWAPPED: &str = r#"{"RoleMappings": [
  {"Role": "arn:aws:iam::123456789012:role/reader-b", "IdentifierType": "User", "Identifiers": ["daemon"]},
  {"Role": "arn:aws:iam::123456789012:role/reader-a", "IdentifierType": "Group", "Identifiers": ["bin"]}
]}"#;

const DAEMON: u32 = 1;
const BIN: u32 = 2;
const NOBODY: u32 = 65_534;

/// The calls of [`SETUP`], each one of moto's actions: moto serves exactly these unauthenticated, then
/// enforces IAM on every later call.
const SETUP_CALLS: usize = 11;

/// Run by boto3 before IAM is enforced: the IAM user `proxy`, whose keys may only call
/// `sts:AssumeRole` (the proxy's base credentials); for each of `bucket-a` and `bucket-b` a role that
/// trusts that user and may use only that bucket, the bucket, and `hello.txt` in it. Prints the user's
/// access key.
const SETUP: &str = r#"
import json, sys
import boto3

endpoint, expected = sys.argv[1], int(sys.argv[2])
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
calls = 0

def call(operation, **parameters):
    global calls
    calls += 1
    return operation(**parameters)

def policy(statement):
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})

call(iam.create_user, UserName="proxy")
call(iam.put_user_policy, UserName="proxy", PolicyName="assume-only",
     PolicyDocument=policy({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}))
key = call(iam.create_access_key, UserName="proxy")["AccessKey"]
trust = policy({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:user/proxy"},
                "Action": "sts:AssumeRole"})
for role, bucket in [("reader-a", "bucket-a"), ("reader-b", "bucket-b")]:
    call(iam.create_role, RoleName=role, AssumeRolePolicyDocument=trust)
    call(iam.put_role_policy, RoleName=role, PolicyName="one-bucket", PolicyDocument=policy(
        {"Effect": "Allow", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}))
    call(s3.create_bucket, Bucket=bucket)
    call(s3.put_object, Bucket=bucket, Key="hello.txt", Body=f"hello from {bucket}".encode())
assert calls == expected, f"{calls} set-up calls, not {expected}"
print(json.dumps({"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}))
"#;

/// moto with IAM enforced after [`SETUP`], and the access key of its IAM user `proxy`.
struct IamMoto {
    moto: Moto,
    access_key_id: String,
    secret_access_key: String,
}

impl IamMoto {
    fn start() -> IamMoto {
        let moto = Moto::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", &SETUP_CALLS.to_string())]);
        let output = moto::aws_command(moto::python())
            .args(["-c", SETUP, &moto.endpoint(), &SETUP_CALLS.to_string()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "the set-up failed: {stderr}");
        let key: Value = serde_json::from_slice(&output.stdout).unwrap();
        let field = |name: &str| key[name].as_str().unwrap().to_owned();
        IamMoto { access_key_id: field("AccessKeyId"), secret_access_key: field("SecretAccessKey"), moto }
    }
}

/// `examples/s3_proxy.rs` on a socket in a private directory, with the IAM user's keys as its base
/// credentials; killed on drop.
struct S3Proxy {
    child: Child,
    dir: TempDir,
    socket: PathBuf,
    log: Arc<Mutex<String>>,
}

impl S3Proxy {
    fn start(iam: &IamMoto, mappings: &str, extra: &[&str]) -> S3Proxy {
        assert_eq!(
            nix::unistd::Uid::effective().as_raw(),
            0,
            "the S3 proxy test runs clients as `daemon`, `bin` and `nobody` through setpriv: run it as root (CI does)"
        );
        let dir = TempDir::new("s3-proxy");
        let config = dir.path().join("config.json");
        std::fs::write(&config, mappings).unwrap();
        let socket = dir.path().join("s3.sock");
        let mut child = moto::aws_command(example("s3_proxy"))
            .arg("--config")
            .arg(&config)
            .arg("--socket")
            .arg(&socket)
            .args(["--s3-endpoint", &iam.moto.endpoint(), "--sts-endpoint", &iam.moto.endpoint()])
            .args(["--region", REGION])
            .args(extra)
            .env("AWS_ACCESS_KEY_ID", &iam.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &iam.secret_access_key)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let collected = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = collected.lock().unwrap_or_else(|p| p.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let proxy = S3Proxy { child, dir, socket, log };
        assert_eq!(line.trim(), format!("listening unix {}", proxy.socket.display()), "{}", proxy.log());
        proxy
    }

    fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A request through `curl` run as `uid` (by setpriv, without supplementary groups): the status
    /// and the body.
    fn request(&self, uid: u32, method: &str, path: &str, headers: &[&str], upload: Option<&Path>) -> (u16, Vec<u8>) {
        let mut command = Command::new("setpriv");
        command.args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".to_owned()]);
        command.args(["curl", "-sS", "--max-time", "60", "--unix-socket"]).arg(&self.socket);
        command.args(["-X", method, "-w", "%{http_code}"]);
        for header in headers {
            command.args(["-H", header]);
        }
        if let Some(file) = upload {
            command.arg("-T").arg(file);
        }
        let output = command.arg(format!("http://localhost{path}")).output().unwrap_or_else(|e| {
            panic!("this test runs `setpriv` and `curl`: install them (apt-get install util-linux curl): {e}")
        });
        let text = output.stdout;
        assert!(text.len() >= 3, "curl: {}\n{}", String::from_utf8_lossy(&output.stderr), self.log());
        let (body, status) = text.split_at(text.len() - 3);
        (std::str::from_utf8(status).unwrap().parse().unwrap(), body.to_vec())
    }

    /// `GET` as `uid`: the status and the body as text.
    fn get(&self, uid: u32, path: &str, headers: &[&str]) -> (u16, String) {
        let (status, body) = self.request(uid, "GET", path, headers, None);
        (status, String::from_utf8(body).unwrap())
    }

    /// The peak resident memory of the proxy process so far, in bytes (`VmHWM`).
    fn peak_memory(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    }
}

impl Drop for S3Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An error answer's code and origin (`s3` or `proxy`).
fn error_of(status_and_body: &(u16, String)) -> (u16, String, String) {
    let (status, body) = status_and_body;
    let error: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{status}, not JSON ({e}): {body}"));
    let field = |name: &str| error["error"][name].as_str().unwrap_or_else(|| panic!("no {name}: {body}")).to_owned();
    (*status, field("code"), field("origin"))
}

fn access_denied_by_s3() -> (u16, String, String) {
    (403, "AccessDenied".to_owned(), "s3".to_owned())
}

fn fallback_not_served() -> (u16, String, String) {
    (403, "fallback-not-served".to_owned(), "proxy".to_owned())
}

/// 10 MB of varied bytes (nothing compresses them), world-readable for the clients.
fn ten_megabytes(dir: &Path) -> (PathBuf, Vec<u8>) {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let bytes: Vec<u8> = (0..10 * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let file = dir.join("object.bin");
    std::fs::write(&file, &bytes).unwrap();
    (file, bytes)
}

#[test]
fn the_s3_proxy_signs_each_callers_requests_with_its_mapped_role_only() {
    let iam = IamMoto::start();
    let proxy = S3Proxy::start(&iam, MAPPINGS, &[]);

    // daemon is mapped by its user name to reader-a: its bucket answers, the other one is S3's refusal.
    assert_eq!(proxy.get(DAEMON, "/bucket-a/hello.txt", &[]), (200, "hello from bucket-a".to_owned()));
    assert_eq!(error_of(&proxy.get(DAEMON, "/bucket-b/hello.txt", &[])), access_denied_by_s3(), "{}", proxy.log());
    // bin is mapped by its group, which the proxy found in the OS's group database.
    assert_eq!(proxy.get(BIN, "/bucket-b/hello.txt", &[]), (200, "hello from bucket-b".to_owned()));
    assert_eq!(error_of(&proxy.get(BIN, "/bucket-a/hello.txt", &[])), access_denied_by_s3());
    assert_eq!(error_of(&proxy.get(DAEMON, "/bucket-a/missing", &[])), (404, "NoSuchKey".to_owned(), "s3".to_owned()));

    // 10 MB up and down again, streamed: the proxy's peak memory grows by much less than the object.
    let (file, bytes) = ten_megabytes(proxy.dir.path());
    let before = proxy.peak_memory();
    let (status, body) = proxy.request(DAEMON, "PUT", "/bucket-a/big/object.bin", &[], Some(&file));
    assert_eq!(status, 200, "{}\n{}", String::from_utf8_lossy(&body), proxy.log());
    let (status, body) = proxy.request(DAEMON, "GET", "/bucket-a/big/object.bin", &[], None);
    assert_eq!(status, 200, "{}", proxy.log());
    assert!(body == bytes, "the object came back changed: {} bytes for {}", body.len(), bytes.len());
    let grown = proxy.peak_memory().saturating_sub(before);
    assert!(grown < bytes.len() as u64 / 2, "the proxy's peak memory grew by {grown} bytes for a 10 MB object");

    // nobody matches no mapping: the fallback (the proxy's base credentials) is refused, as serve refuses it.
    assert_eq!(error_of(&proxy.get(NOBODY, "/bucket-a/hello.txt", &[])), fallback_not_served());
    // Root names the user of a request; nobody may not.
    assert_eq!(proxy.get(0, "/bucket-a/hello.txt", &["X-Emrfs-User: daemon"]).0, 200);
    assert_eq!(error_of(&proxy.get(0, "/bucket-a/hello.txt", &["X-Emrfs-User: nobody"])), fallback_not_served());
    let named = error_of(&proxy.get(NOBODY, "/bucket-a/hello.txt", &["X-Emrfs-User: daemon"]));
    assert_eq!(named, (403, "not-your-user".to_owned(), "proxy".to_owned()));
    // Root names the groups too (here, of a user the OS does not know); nobody may not.
    let carol = ["X-Emrfs-User: carol", "X-Emrfs-Groups: staff, bin"];
    assert_eq!(proxy.get(0, "/bucket-b/hello.txt", &carol), (200, "hello from bucket-b".to_owned()));
    let groups = error_of(&proxy.get(NOBODY, "/bucket-b/hello.txt", &["X-Emrfs-Groups: bin"]));
    assert_eq!(groups, (403, "groups-not-accepted".to_owned(), "proxy".to_owned()));

    // Every request went through the broker's cache: one AssumeRole per role and session.
    let calls: Vec<_> =
        iam.moto.assumed_roles().iter().map(|c| (c["role_arn"].clone(), c["session_name"].clone())).collect();
    let expected = [("emrfs-daemon", READER_A), ("emrfs-bin", READER_B), ("emrfs-carol", READER_B)];
    assert_eq!(calls, expected.map(|(session, role)| (json!(role), json!(session))));
}

/// The control: with each user's role swapped, every answer of the test above turns over, so each one
/// depends on the role the proxy signed with. The base credentials, served to root for an unmapped user
/// with `--fallback-credentials trusted`, may call nothing but AssumeRole.
#[test]
fn the_s3_proxy_given_the_wrong_roles_gets_the_opposite_answers() {
    let iam = IamMoto::start();
    let proxy = S3Proxy::start(&iam, SWAPPED, &["--fallback-credentials", "trusted"]);

    assert_eq!(error_of(&proxy.get(DAEMON, "/bucket-a/hello.txt", &[])), access_denied_by_s3());
    assert_eq!(proxy.get(DAEMON, "/bucket-b/hello.txt", &[]), (200, "hello from bucket-b".to_owned()));
    assert_eq!(error_of(&proxy.get(BIN, "/bucket-b/hello.txt", &[])), access_denied_by_s3());
    assert_eq!(proxy.get(BIN, "/bucket-a/hello.txt", &[]), (200, "hello from bucket-a".to_owned()));
    let (file, _) = ten_megabytes(proxy.dir.path());
    let (status, body) = proxy.request(DAEMON, "PUT", "/bucket-a/big/object.bin", &[], Some(&file));
    assert_eq!(error_of(&(status, String::from_utf8(body).unwrap())), access_denied_by_s3());

    // Trusted with the fallback: root gets it served, and S3 refuses the base credentials themselves;
    // an untrusted caller still gets the proxy's refusal.
    let base = error_of(&proxy.get(0, "/bucket-a/hello.txt", &["X-Emrfs-User: nobody"]));
    assert_eq!(base, access_denied_by_s3(), "{}", proxy.log());
    assert_eq!(error_of(&proxy.get(NOBODY, "/bucket-a/hello.txt", &[])), fallback_not_served());
}

#[test]
fn the_credential_process_profile_gives_boto3_the_assumed_role() {
    let moto = Moto::start();

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
    let output = moto::aws_command(moto::python())
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
