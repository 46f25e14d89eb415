//! A real `redis-server` for tests ([`Redis`]): started on a free loopback port with no persistence,
//! stopped on drop, and restartable on the same port.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::moto::free_port;

const INSTALL_HELP: &str = "the shared-cache tests need a Redis server: `bash scripts/install-redis.sh` installs \
    Debian's redis-server (`bash scripts/test.sh` does it), or set REDIS_SERVER to a `redis-server` (or \
    `valkey-server`) executable";

/// Where `redis-server` is: `REDIS_SERVER`, or `PATH`.
pub fn redis_server() -> PathBuf {
    if let Some(path) = std::env::var_os("REDIS_SERVER") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "REDIS_SERVER is `{}`, which is not a file; {INSTALL_HELP}", path.display());
        return path;
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("redis-server")).find(|p| p.is_file()))
        .unwrap_or_else(|| panic!("`redis-server` not found (REDIS_SERVER unset, none on PATH): {INSTALL_HELP}"))
}

/// A running `redis-server`, killed on drop.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    /// With TLS: the directory of its certificates (`ca.crt` signs `server.crt`, for 127.0.0.1).
    tls: Option<PathBuf>,
}

impl Redis {
    /// Starts Redis on a free port of 127.0.0.1 and waits until it answers `PING`.
    pub fn start() -> Redis {
        Self::start_in(None)
    }

    /// Starts Redis with TLS only, its certificates made with `openssl` in `dir`: a CA (`ca.crt`) and a
    /// server certificate for 127.0.0.1 that it signs.
    pub fn start_tls(dir: &std::path::Path) -> Redis {
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap_or_else(|e| {
                panic!("the TLS test makes certificates with `openssl`: install it (apt-get install openssl): {e}")
            });
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=emrfs-rolemap test CA",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        Self::start_in(Some(dir.to_owned()))
    }

    fn start_in(tls: Option<PathBuf>) -> Redis {
        for _ in 0..5 {
            let mut redis = Redis { child: None, port: free_port(), tls: tls.clone() };
            if redis.run().is_ok() {
                return redis;
            }
        }
        panic!("`{}` did not start on a free port; {INSTALL_HELP}", redis_server().display());
    }

    /// `redis://127.0.0.1:PORT`, or `rediss://` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn run(&mut self) -> Result<(), String> {
        let mut command = Command::new(redis_server());
        match &self.tls {
            None => command.args(["--port", &self.port.to_string()]),
            Some(dir) => command
                .args(["--port", "0", "--tls-port", &self.port.to_string(), "--tls-auth-clients", "no"])
                .arg("--tls-cert-file")
                .arg(dir.join("server.crt"))
                .arg("--tls-key-file")
                .arg(dir.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(dir.join("ca.crt")),
        };
        let child = command
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}; {INSTALL_HELP}"))?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(format!("redis-server exited: {status}"));
            }
            let answers = match &self.tls {
                None => self.connection().and_then(|mut c| redis::cmd("PING").query::<String>(&mut c).ok()).is_some(),
                // The test's plain client cannot speak TLS: a listening port will do.
                Some(_) => std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
            };
            if answers {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(10) {
                return Err("redis-server did not answer within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A plain connection, for the test to look at and change what the servers stored.
    pub fn connection(&self) -> Option<redis::Connection> {
        redis::Client::open(self.url()).ok()?.get_connection_with_timeout(Duration::from_secs(1)).ok()
    }

    /// Kills the server (its data is gone: no persistence).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let started = Instant::now();
        while let Err(why) = self.run() {
            assert!(started.elapsed() < Duration::from_secs(20), "redis-server did not restart: {why}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
