//! `emrfs-rolemap serve` as a child process for tests ([`Served`]), and a real HTTP/1.1 client (hyper)
//! over TCP and Unix sockets ([`Client`]).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::moto;
pub use super::tempdir::TempDir;

/// The bearer token every served test uses.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A running `emrfs-rolemap serve`, killed on drop.
pub struct Served {
    child: Child,
    pub dir: TempDir,
    pub tcp: Option<SocketAddr>,
    pub socket: Option<PathBuf>,
    log: Arc<Mutex<String>>,
}

impl Served {
    /// Writes `config` to `DIR/config.json` and the token to `DIR/token`, then runs `serve` on
    /// 127.0.0.1:0 and `DIR/serve.sock` with the STS endpoint `sts` and `extra` arguments, and waits
    /// for its `listening` lines.
    pub fn start(config: &str, sts: &str, extra: &[&str]) -> Served {
        Self::start_with_env(config, sts, extra, &[])
    }

    /// [`start`](Self::start) with `env` added to the server's environment.
    pub fn start_with_env(config: &str, sts: &str, extra: &[&str], env: &[(&str, &str)]) -> Served {
        let dir = TempDir::new("serve");
        let config_path = dir.path().join("config.json");
        std::fs::write(&config_path, config).unwrap();
        let token_path = dir.path().join("token");
        std::fs::write(&token_path, format!("{TOKEN}\n")).unwrap();
        // A secret: the server refuses a token file that others can read.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let socket = dir.path().join("serve.sock");
        let mut command = moto::aws_command(env!("CARGO_BIN_EXE_emrfs-rolemap"));
        command
            .args(["serve", "--config"])
            .arg(&config_path)
            .args(["--listen", "127.0.0.1:0", "--socket"])
            .arg(&socket)
            .arg("--token-file")
            .arg(&token_path)
            .args(["--sts-endpoint", sts, "--region", moto::REGION])
            .args(extra)
            .envs(env.iter().copied())
            .env("EMRFS_ROLEMAP_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot run emrfs-rolemap serve: {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let stdout = child.stdout.take().unwrap();
        let (mut tcp, mut unix) = (None, None);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(address) = line.strip_prefix("listening tcp ") {
                tcp = Some(address.parse().unwrap());
            } else if let Some(path) = line.strip_prefix("listening unix ") {
                unix = Some(PathBuf::from(path));
            }
            if tcp.is_some() && unix.is_some() {
                break;
            }
        }
        let mut served = Served { child, dir, tcp, socket: unix, log };
        assert!(served.tcp.is_some() && served.socket.is_some(), "serve did not start: {}", served.log());
        // Let other users reach the socket inside the private directory (the uid tests).
        std::fs::set_permissions(served.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(served.child.try_wait().unwrap().is_none());
        served
    }

    /// The configuration file being served.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.json")
    }

    /// Replaces the configuration file atomically (write and rename, as deployment tools do).
    pub fn replace_config(&self, text: &str) {
        let next = self.dir.path().join("config.json.next");
        std::fs::write(&next, text).unwrap();
        std::fs::rename(&next, self.config_path()).unwrap();
    }

    /// Sends `signal` (e.g. `HUP`, `TERM`) to the server.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the server to exit and returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("serve did not exit within {within:?}: {}", self.log());
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The log once it contains `text` (the server's standard error is read by a thread, so a line the
    /// server wrote before answering may arrive after the answer), waiting at most 10 s; the log as it
    /// is then, whether it does or not.
    pub fn log_containing(&self, text: &str) -> String {
        let started = Instant::now();
        loop {
            let log = self.log();
            if log.contains(text) || started.elapsed() > Duration::from_secs(10) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A client over TCP (sending the token when `authorized`).
    pub fn tcp_client(&self, authorized: bool) -> Client {
        Client { target: Target::Tcp(self.tcp.unwrap()), token: authorized.then(|| TOKEN.to_owned()) }
    }

    /// A client over the Unix socket.
    pub fn unix_client(&self) -> Client {
        Client { target: Target::Unix(self.socket.clone().unwrap()), token: None }
    }

    /// `METHOD PATH` with `body` over the Unix socket as `uid`: through `curl` run as that uid when it is
    /// not the test's own (the tests run as root; `nobody` is 65534), else through [`Client`]. The status
    /// and the body as text.
    pub async fn request_as(&self, uid: u32, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        if uid == own_uid() {
            let reply = self.unix_client().connect().await.send(method, path, body).await;
            return (reply.status, reply.body);
        }
        use std::os::unix::process::CommandExt;
        let mut command = std::process::Command::new("curl");
        command.args(["-sS", "--max-time", "10", "--unix-socket"]).arg(self.socket.as_ref().unwrap());
        command.args(["-X", method, "-w", "\n%{http_code}"]);
        if let Some(body) = body {
            command.args(["-H", "content-type: application/json", "--data-binary", body]);
        }
        command.arg(format!("http://localhost{path}")).uid(uid).gid(uid);
        let output = command.output().unwrap_or_else(|e| {
            panic!("this test runs `curl` as another user and needs it: install curl (apt-get install curl): {e}")
        });
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, status) = text
            .rsplit_once('\n')
            .unwrap_or_else(|| panic!("curl: {text} {}", String::from_utf8_lossy(&output.stderr)));
        (status.parse().unwrap_or_else(|_| panic!("curl printed no status: {text}")), body.to_owned())
    }

    /// [`request_as`](Self::request_as) with the body parsed as JSON.
    pub async fn json_as(&self, uid: u32, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let (status, text) = self.request_as(uid, method, path, body).await;
        (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
    }

    /// Polls `/readyz` over the socket until `until` holds, for at most 10 s.
    pub async fn wait_ready(&self, until: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let ready = self.unix_client().get("/readyz").await.json();
            if until(&ready) {
                return ready;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "readyz never got there: {ready}\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The uid the tests run as.
pub fn own_uid() -> u32 {
    let out = std::process::Command::new("id").arg("-u").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
}

/// An unprivileged uid to ask as: `nobody` (65534) when the tests run as root, else the tests' own uid.
pub fn unprivileged_uid() -> u32 {
    match own_uid() {
        0 => 65_534,
        me => me,
    }
}

/// Where a client connects.
#[derive(Debug, Clone)]
pub enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// An answer: status, headers and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The `error.code` of an error answer.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
    }
}

/// A real HTTP/1.1 client (hyper). Each call opens a connection; [`Client::connect`] keeps one.
#[derive(Debug, Clone)]
pub struct Client {
    pub target: Target,
    pub token: Option<String>,
}

/// One kept-alive connection.
pub struct Connection {
    sender: http1::SendRequest<Full<Bytes>>,
    token: Option<String>,
}

impl Client {
    pub async fn connect(&self) -> Connection {
        let sender = match &self.target {
            Target::Tcp(address) => handshake(tokio::net::TcpStream::connect(address).await.unwrap()).await,
            Target::Unix(path) => handshake(tokio::net::UnixStream::connect(path).await.unwrap()).await,
        };
        Connection { sender, token: self.token.clone() }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.connect().await.send("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: &str) -> Reply {
        self.connect().await.send("POST", path, Some(body)).await
    }
}

async fn handshake<T>(stream: T) -> http1::SendRequest<Full<Bytes>>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    sender
}

impl Connection {
    /// Sends one request on this connection.
    pub async fn send(&mut self, method: &str, path: &str, body: Option<&str>) -> Reply {
        self.try_send(method, path, body).await.unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub async fn try_send(&mut self, method: &str, path: &str, body: Option<&str>) -> Result<Reply, String> {
        let mut request = hyper::Request::builder().method(method).uri(path).header("host", "localhost");
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(Full::new(Bytes::from(body.unwrap_or_default().to_owned()))).unwrap();
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let response = self.sender.send_request(request).await.map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}
