//! The moto STS emulator for tests: [`Moto::start`] runs `moto_server` on a free loopback port and
//! [`Drop`] kills it; [`aws_env`] keeps the AWS SDK away from the metadata service and real endpoints.
//!
//! `moto_server` is taken from `MOTO_SERVER`, else from `target/moto-venv` (where
//! `scripts/install-moto.sh` puts it), else from `PATH`. When it is nowhere, the test fails and says
//! how to install it: the STS tests never pass by skipping.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

/// moto's account for every identity.
pub const ACCOUNT: &str = "123456789012";
/// The region every test uses.
pub const REGION: &str = "us-east-1";
/// The base (long-term) credentials every test signs with; moto accepts any.
pub const BASE_ACCESS_KEY_ID: &str = "AKIAEMRFSROLEMAPTEST";
/// The secret of the base credentials.
pub const BASE_SECRET_ACCESS_KEY: &str = "base-secret-access-key-for-tests";

/// The environment under which the AWS SDK never contacts the instance metadata service (its link-local address)
/// nor reads a developer's profiles, and has an explicit region and static credentials.
pub const AWS_ENV: [(&str, &str); 6] = [
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("AWS_CONFIG_FILE", "/dev/null"),
    ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
    ("AWS_REGION", REGION),
    ("AWS_ACCESS_KEY_ID", BASE_ACCESS_KEY_ID),
    ("AWS_SECRET_ACCESS_KEY", BASE_SECRET_ACCESS_KEY),
];

const INSTALL_HELP: &str = "the STS tests need the moto STS emulator; install it with `bash scripts/install-moto.sh` \
    (a pinned virtual environment in target/moto-venv), or set MOTO_SERVER to a `moto_server` executable; \
    `bash scripts/test.sh` does both and runs the tests";

/// Sets [`AWS_ENV`] in this test process, once. Every test that builds an SDK client calls it first
/// ([`Moto::start`] does), so no test reads the environment while it is being changed.
pub fn aws_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(|n| n.starts_with("AWS_")) {
                // SAFETY: see below.
                unsafe { std::env::remove_var(name) };
            }
        }
        for (name, value) in AWS_ENV {
            // SAFETY: the tests of a binary reach this `Once` before touching the environment or
            // starting threads that read it, and the others wait here until it is done.
            unsafe { std::env::set_var(name, value) };
        }
    });
}

/// A command whose environment is [`AWS_ENV`] and no other `AWS_*` variable.
pub fn aws_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("AWS_")) {
            command.env_remove(name);
        }
    }
    command.envs(AWS_ENV);
    command
}

/// A running `moto_server`, killed on drop.
pub struct Moto {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Moto {
    /// Starts moto on a free port of 127.0.0.1 and waits until it answers. Panics with instructions
    /// when `moto_server` cannot be found or does not start.
    pub fn start() -> Moto {
        Moto::start_with_env(&[])
    }

    /// [`start`](Self::start) with these variables in moto's environment, such as
    /// `INITIAL_NO_AUTH_ACTION_COUNT` (the number of calls served before IAM is enforced).
    pub fn start_with_env(env: &[(&str, &str)]) -> Moto {
        aws_env();
        let program = moto_server();
        let mut failures = Vec::new();
        for _ in 0..5 {
            match Moto::spawn(&program, free_port(), env) {
                Ok(moto) => return moto,
                Err(why) => failures.push(why),
            }
        }
        panic!("`{}` did not start:\n{}\n({INSTALL_HELP})", program.display(), failures.join("\n"));
    }

    /// Starts moto on `port`; fails when it exits (the port was taken meanwhile) or never answers.
    pub fn start_on(program: &Path, port: u16) -> Result<Moto, String> {
        Moto::spawn(program, port, &[])
    }

    fn spawn(program: &Path, port: u16, env: &[(&str, &str)]) -> Result<Moto, String> {
        let mut child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run `{}`: {e} ({INSTALL_HELP})", program.display()))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            // Drain moto's log (one line per request) so that it never blocks on a full pipe.
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    log.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            });
        }
        let mut moto = Moto { child, port, log };
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(format!("port {port}: moto exited ({status}): {}", moto.log_text()));
            }
            // werkzeug prints this line once *this* process has bound the port: another process
            // answering on the port cannot fake it.
            let bound = moto.log_text().contains(&format!("Running on http://127.0.0.1:{port}"));
            if bound && moto.get("/moto-api/").is_ok_and(|(status, _)| status == 200) {
                return Ok(moto);
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(format!("port {port}: moto did not answer within 30 s: {}", moto.log_text()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The port moto listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The endpoint URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A GET request to moto: the status and the body.
    pub fn get(&self, path: &str) -> Result<(u16, String), String> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", self.port)
            .map_err(|e| e.to_string())?;
        let mut response = String::new();
        stream.read_to_string(&mut response).map_err(|e| e.to_string())?;
        let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or("no HTTP status line")?;
        let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        Ok((status, body.to_owned()))
    }

    /// The AssumeRole calls moto has served, from its state dump (`/moto-api/data.json`): one object
    /// per call, with `role_arn`, `session_name`, `external_id`, `access_key_id`.
    pub fn assumed_roles(&self) -> Vec<serde_json::Value> {
        let (status, body) = self.get("/moto-api/data.json").unwrap_or_else(|e| panic!("moto's state: {e}"));
        assert_eq!(status, 200, "moto's state: {body}");
        let state: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("moto's state: {e}"));
        state["sts"]["AssumedRole"].as_array().cloned().unwrap_or_default()
    }

    /// Sets up EMR and IAM in this moto through boto3 (`tests/support/moto_emr.py`: roles, instance
    /// profiles, security configurations, created or replaced, and clusters); returns the cluster IDs by
    /// the names `spec` gave them.
    pub fn emr_setup(&self, mut spec: serde_json::Value) -> std::collections::HashMap<String, String> {
        spec["endpoint"] = self.endpoint().into();
        let python = python();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/moto_emr.py");
        let mut child = aws_command(&python)
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{}`: {e} ({INSTALL_HELP})", python.display()));
        child.stdin.take().unwrap().write_all(spec.to_string().as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "the EMR set-up in moto failed ({INSTALL_HELP}): {stderr}");
        let made: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let clusters = made["clusters"].as_object().cloned().unwrap_or_default();
        clusters.into_iter().map(|(name, id)| (name, id.as_str().unwrap_or_default().to_owned())).collect()
    }

    /// Stops moto now (it is also stopped on drop).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port nobody listened on a moment ago (moto may still lose it to a race: then it
/// exits and [`Moto::start`] tries another).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free loopback port");
    listener.local_addr().expect("a bound address").port()
}

/// The Python beside `moto_server`, with boto3 and jsonschema (the virtual environment of
/// `scripts/install-moto.sh`).
pub fn python() -> PathBuf {
    venv_program("python3")
}

/// Where `moto_server` is: `MOTO_SERVER`, the project's virtual environment, or `PATH`.
pub fn moto_server() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "MOTO_SERVER is `{}`, which is not a file; {INSTALL_HELP}", path.display());
        return path;
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/moto-venv/bin/moto_server");
    if venv.is_file() {
        return venv;
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("moto_server")).find(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!("`moto_server` not found (MOTO_SERVER unset, no {}, none on PATH): {INSTALL_HELP}", venv.display())
        })
}

/// A program installed beside `moto_server` by `scripts/install-moto.sh`: `aws` (the AWS CLI v1) or
/// `python3` (with boto3 and jsonschema).
pub fn venv_program(name: &str) -> PathBuf {
    let program = moto_server().with_file_name(name);
    assert!(
        program.is_file(),
        "`{}` is missing: `bash scripts/install-moto.sh` installs it beside moto_server with moto, boto3, \
         the AWS CLI and jsonschema (rerun it; `bash scripts/test.sh` does)",
        program.display()
    );
    program
}
