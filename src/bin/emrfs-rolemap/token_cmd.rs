//! The commands that ask a running `serve` over its Unix socket, where the kernel tells the server who
//! is asking: `emrfs-rolemap token` gets a per-user token (`POST /v1/tokens`) or revokes tokens
//! (`POST /v1/tokens/revoke`); `emrfs-rolemap fetch` gets the caller's own credentials
//! (`POST /v1/credentials`) in the `credential_process` format, for `~/.aws/config` profiles.
//!
//! Exit status: 0 done, 1 the server refused (its message and help are printed), 2 the server could
//! not be asked.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use emrfs_rolemap::Escaped;
use serde_json::{Value, json};

use super::Unusable;

/// The largest answer read from the server.
const MAX_ANSWER_BYTES: u64 = 1024 * 1024;

/// Which server to ask, and for what.
#[derive(Args)]
pub struct TokenArgs {
    /// The server's Unix socket (its `serve --socket`).
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,
    /// How long the token lives: seconds, or a number followed by s, m, h or d. Default: the server's
    /// (12h); at most its --token-max-ttl (7d unless set).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    ttl: Option<Duration>,
    /// Write the token to FILE instead of standard output: created anew with mode 0600 and renamed into
    /// place, without a final newline (the AWS SDKs send a token file's content as it is, and refuse a
    /// line break). Point AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE at it.
    #[arg(long, value_name = "FILE", conflicts_with = "revoke")]
    out: Option<PathBuf>,
    /// Revoke instead: refuse from now on every per-user token of USER issued so far (your own user's
    /// when USER is left out; another user's needs root or the server's --allow-uid).
    #[arg(long, value_name = "USER", num_args = 0..=1, default_missing_value = "")]
    revoke: Option<String>,
    /// Seconds to wait for the server's answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    timeout: u64,
}

/// Which server to ask, and for which location.
#[derive(Args)]
pub struct FetchArgs {
    /// The server's Unix socket (its `serve --socket`).
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,
    /// The S3 location the credentials are for, so that `Prefix` mappings apply (`s3://bucket/key`).
    #[arg(long)]
    path: Option<String>,
    /// Seconds to wait for the server's answer (STS included).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    timeout: u64,
}

/// `fetch`: the caller's own credentials from the server, printed as `credential_process` output.
pub fn fetch(args: FetchArgs) -> Result<ExitCode, Unusable> {
    let body = args.path.as_ref().map_or(json!({}), |path| json!({ "path": path }));
    let (status, answer) = post(&args.socket, "/v1/credentials", &body, Duration::from_secs(args.timeout.max(1)))?;
    if status != 200 {
        return Ok(refused(status, &answer));
    }
    let credentials = &answer["Credentials"];
    let process = json!({
        "Version": 1,
        "AccessKeyId": credentials["AccessKeyId"],
        "SecretAccessKey": credentials["SecretAccessKey"],
        "SessionToken": credentials["SessionToken"],
        "Expiration": credentials["Expiration"],
    });
    println!("{process}");
    Ok(ExitCode::SUCCESS)
}

/// Prints the server's error (`{"error": {"code", "message", "help"?}}`) on standard error: exit 1.
fn refused(status: u16, answer: &Value) -> ExitCode {
    let error = &answer["error"];
    let text = |key: &str| error[key].as_str().unwrap_or("").to_owned();
    let mut out = std::io::stderr().lock();
    let _ = writeln!(out, "error: the server refused ({status} {}): {}", text("code"), Escaped(&text("message")));
    if !text("help").is_empty() {
        let _ = writeln!(out, "help: {}", Escaped(&text("help")));
    }
    ExitCode::from(1)
}

/// A duration on the command line: `3600`, `90s`, `30m`, `12h` or `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    number
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0 && scale > 0)
        .and_then(|n| n.checked_mul(scale))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is not a duration such as 3600, 90s, 30m, 12h or 7d"))
}

pub fn run(args: TokenArgs) -> Result<ExitCode, Unusable> {
    let (path, body) = match &args.revoke {
        Some(user) if user.is_empty() => ("/v1/tokens/revoke", json!({})),
        Some(user) => ("/v1/tokens/revoke", json!({ "user": user })),
        None => ("/v1/tokens", args.ttl.map_or(json!({}), |ttl| json!({ "ttl_seconds": ttl.as_secs() }))),
    };
    let (status, answer) = post(&args.socket, path, &body, Duration::from_secs(args.timeout.max(1)))?;
    if status != 200 {
        return Ok(refused(status, &answer));
    }
    let field = |key: &str| answer[key].as_str().map(str::to_owned);
    if args.revoke.is_some() {
        let user = field("revoked").unwrap_or_default();
        let until = field("issued_until").unwrap_or_default();
        eprintln!("revoked every per-user token of `{}` issued until {until}", Escaped(&user));
        return Ok(ExitCode::SUCCESS);
    }
    let token = field("token").ok_or_else(|| Unusable("the server's answer has no token".to_owned()))?;
    let (user, expires) = (field("user").unwrap_or_default(), field("expires").unwrap_or_default());
    match &args.out {
        None => println!("{token}"),
        Some(file) => {
            write_private(file, token.as_bytes())
                .map_err(|e| Unusable(format!("cannot write `{}`: {e}", Escaped(&file.to_string_lossy()))))?;
            eprintln!(
                "wrote a token for `{}` (expires {expires}) to `{}`",
                Escaped(&user),
                Escaped(&file.to_string_lossy())
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `POST path` with a JSON body over the Unix socket at `socket`: the status and the JSON answer.
fn post(socket: &Path, path: &str, body: &Value, timeout: Duration) -> Result<(u16, Value), Unusable> {
    let shown = Escaped(&socket.to_string_lossy()).to_string();
    let failed = |e: std::io::Error| Unusable(format!("cannot ask the server on `{shown}`: {e}"));
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        Unusable(format!("cannot connect to `{shown}`: {e}; is `emrfs-rolemap serve --socket {shown}` running?"))
    })?;
    stream.set_read_timeout(Some(timeout)).map_err(failed)?;
    stream.set_write_timeout(Some(timeout)).map_err(failed)?;
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).map_err(failed)?;
    let mut answer = Vec::new();
    stream.take(MAX_ANSWER_BYTES).read_to_end(&mut answer).map_err(failed)?;
    let not_http = || Unusable(format!("`{shown}` did not answer as an emrfs-rolemap server does"));
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(not_http)?;
    let head = std::str::from_utf8(&answer[..split]).map_err(|_| not_http())?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|_| head.starts_with("HTTP/1."))
        .ok_or_else(not_http)?;
    let json = serde_json::from_slice(&answer[split + 4..]).map_err(|_| not_http())?;
    Ok((status, json))
}

/// Writes `bytes` to `path` in one step: a new file of mode 0600 beside it (never an existing file or
/// a symlink), then renamed over `path`.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut staged = path.as_os_str().to_owned();
    staged.push(format!(".{}.tmp", std::process::id()));
    let staged = PathBuf::from(staged);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staged)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&staged, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&staged);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("3600"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        for bad in ["", "0", "h", "1.5h", "12 h", "1w", "-1", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
