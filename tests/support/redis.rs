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
}

impl Redis {
    /// Starts Redis on a free port of 127.0.0.1 and waits until it answers `PING`.
    pub fn start() -> Redis {
        for _ in 0..5 {
            let mut redis = Redis { child: None, port: free_port() };
            if redis.run().is_ok() {
                return redis;
            }
        }
        panic!("`{}` did not start on a free port; {INSTALL_HELP}", redis_server().display());
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn run(&mut self) -> Result<(), String> {
        let child = Command::new(redis_server())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
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
            if self.connection().and_then(|mut c| redis::cmd("PING").query::<String>(&mut c).ok()).is_some() {
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
