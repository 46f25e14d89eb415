//! Per-user tokens: what lets an unmodified AWS SDK ask the server for its own user's credentials, over
//! TCP, through the container-credentials endpoint.
//!
//! A user gets a token by asking over the Unix socket, where the kernel names the caller: the token is
//! bound to that uid and user name, and expires (12 hours by default, at most the server's maximum).
//! It is `emrfs1.` followed by the hex of the claims (uid, issue and expiry times in milliseconds since
//! the Unix epoch, user name), `.`, and
//! the hex of their HMAC-SHA256 under the server's token key: anyone can read it, nobody can make or
//! alter one without the key. The key comes from a trusted secret file (so tokens survive a restart),
//! or is random per process (tokens die with it).
//!
//! A per-user token is an *untrusted* caller wherever it is used: it resolves for its own user only,
//! with the groups the OS gives at each use. Revoking a user's tokens refuses every token of that user
//! issued up to that millisecond; with a key file, revocations are kept in `KEYFILE.revoked` (written by the
//! server, mode 0600) and survive restarts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hmac::{KeyInit, Mac};
use zeroize::Zeroizing;

use super::ServerError;
use super::files::{FileCheck, FileError, read_secret, shown};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The prefix of every token; a bearer token of the server never starts with it by construction.
pub(crate) const PREFIX: &str = "emrfs1.";
/// Bound into every MAC, so that a tag made for anything else never verifies as a token.
const CONTEXT: &[u8] = b"emrfs-rolemap per-user token v1\0";
/// The shortest key accepted, in bytes.
const MIN_KEY_BYTES: usize = 32;
/// The largest key file read, in bytes.
const MAX_KEY_FILE_BYTES: usize = 4096;
/// The largest revocation file read, in bytes.
const MAX_REVOCATIONS_BYTES: usize = 16 * 1024 * 1024;

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claims {
    /// The uid the token was issued to.
    pub(crate) uid: u32,
    /// That uid's user name when the token was issued.
    pub(crate) user: String,
    /// When it was issued, in milliseconds since the Unix epoch.
    pub(crate) issued_ms: u64,
    /// When it expires, in milliseconds since the Unix epoch.
    pub(crate) expires_ms: u64,
}

/// Why a token was refused; never quotes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("the token is not one this server issues")]
    Malformed,
    #[error("the token's signature does not verify: it was altered, or made with another key")]
    Forged,
    #[error("the token expired {} s ago; get a new one with `emrfs-rolemap token`", .0 / 1000)]
    Expired(u64),
    #[error("the tokens of `{0}` were revoked; get a new one with `emrfs-rolemap token`")]
    Revoked(String),
}

/// The token key and the revocations.
pub(crate) struct TokenKeys {
    key: Zeroizing<Vec<u8>>,
    /// User name to the last millisecond whose tokens are revoked.
    revoked: Mutex<BTreeMap<String, u64>>,
    /// Where revocations are kept, with a key file.
    revocations_file: Option<PathBuf>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("key", &"** redacted **")
            .field("revocations_file", &self.revocations_file)
            .finish()
    }
}

impl TokenKeys {
    /// A random key, for tokens that die with the process.
    pub(crate) fn random() -> Result<Self, ServerError> {
        let mut key = Zeroizing::new(vec![0u8; MIN_KEY_BYTES]);
        getrandom::fill(&mut key).map_err(|e| ServerError::UnusableTokenKey {
            path: "(random)".to_owned(),
            reason: format!("the operating system gave no random bytes: {e}"),
        })?;
        Ok(TokenKeys { key, revoked: Mutex::default(), revocations_file: None })
    }

    /// The key in the trusted secret file `path` (at least 32 bytes; a final newline is not part of
    /// it), and the revocations kept beside it in `PATH.revoked`.
    pub(crate) fn from_file(path: &Path, check: FileCheck) -> Result<Self, ServerError> {
        let unusable = |reason: String| ServerError::UnusableTokenKey { path: shown(path), reason };
        let mut key = read_secret(path, check, MAX_KEY_FILE_BYTES)?;
        if key.last() == Some(&b'\n') {
            key.pop();
        }
        if key.len() < MIN_KEY_BYTES {
            return Err(unusable(format!(
                "it has {} bytes, fewer than {MIN_KEY_BYTES}; make one with `openssl rand -hex 32`",
                key.len()
            )));
        }
        let revocations_file = revocations_path(path);
        let revoked = match read_secret(&revocations_file, check, MAX_REVOCATIONS_BYTES) {
            Ok(text) => serde_json::from_slice(&text).map_err(|e| {
                unusable(format!(
                    "its revocations `{}` are not a JSON object of user names and times: {e}; the server writes \
                     that file, remove it to forget every revocation",
                    shown(&revocations_file)
                ))
            })?,
            Err(FileError::Unreadable { .. }) if std::fs::symlink_metadata(&revocations_file).is_err() => {
                BTreeMap::new()
            }
            Err(e) => return Err(e.into()),
        };
        Ok(TokenKeys {
            key: Zeroizing::new(key.to_vec()),
            revoked: Mutex::new(revoked),
            revocations_file: Some(revocations_file),
        })
    }

    fn mac(&self, payload: &[u8]) -> HmacSha256 {
        // HMAC takes a key of any length.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(CONTEXT);
        mac.update(payload);
        mac
    }

    /// A token for `uid` and `user`, issued at `now_ms` and valid for `ttl_ms` (milliseconds).
    pub(crate) fn issue(&self, uid: u32, user: &str, now_ms: u64, ttl_ms: u64) -> String {
        let mut payload = Vec::with_capacity(20 + user.len());
        payload.extend_from_slice(&uid.to_be_bytes());
        payload.extend_from_slice(&now_ms.to_be_bytes());
        payload.extend_from_slice(&now_ms.saturating_add(ttl_ms).to_be_bytes());
        payload.extend_from_slice(user.as_bytes());
        let tag = self.mac(&payload).finalize().into_bytes();
        format!("{PREFIX}{}.{}", hex(&payload), hex(&tag))
    }

    /// The claims of `token` when it is one of ours, unaltered, unexpired at `now_ms` and not revoked.
    pub(crate) fn verify(&self, token: &[u8], now_ms: u64) -> Result<Claims, Refusal> {
        let token = std::str::from_utf8(token).map_err(|_| Refusal::Malformed)?;
        let (payload, tag) = token
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('.'))
            .and_then(|(payload, tag)| Some((unhex(payload)?, unhex(tag)?)))
            .ok_or(Refusal::Malformed)?;
        // In constant time: the comparison says nothing about where a forged tag differs.
        self.mac(&payload).verify_slice(&tag).map_err(|_| Refusal::Forged)?;
        if payload.len() < 20 {
            return Err(Refusal::Malformed);
        }
        let number = |range: std::ops::Range<usize>| payload[range].iter().fold(0u64, |n, b| n << 8 | u64::from(*b));
        let user = String::from_utf8(payload[20..].to_vec()).map_err(|_| Refusal::Malformed)?;
        let claims = Claims { uid: number(0..4) as u32, issued_ms: number(4..12), expires_ms: number(12..20), user };
        if now_ms >= claims.expires_ms {
            return Err(Refusal::Expired(now_ms - claims.expires_ms));
        }
        if self.lock().get(&claims.user).is_some_and(|last| claims.issued_ms <= *last) {
            return Err(Refusal::Revoked(claims.user));
        }
        Ok(claims)
    }

    /// Refuses every token of `user` issued up to `now_ms`, and keeps that with the key file.
    pub(crate) fn revoke(&self, user: &str, now_ms: u64) -> std::io::Result<()> {
        let mut revoked = self.lock();
        revoked.insert(user.to_owned(), now_ms);
        let Some(file) = &self.revocations_file else { return Ok(()) };
        let text = serde_json::to_string_pretty(&*revoked).map_err(std::io::Error::other)?;
        write_private(file, text.as_bytes())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.revoked.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// `KEYFILE.revoked`.
fn revocations_path(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".revoked");
    PathBuf::from(name)
}

/// Writes `bytes` to `path` in one step: a new file of mode 0600 beside it, then renamed over it.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut staged = path.as_os_str().to_owned();
    staged.push(format!(".{}.tmp", std::process::id()));
    let staged = PathBuf::from(staged);
    let _ = std::fs::remove_file(&staged);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&staged)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&staged, path)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::random().unwrap()
    }

    #[test]
    fn a_token_carries_its_claims_and_nothing_else_verifies() {
        let keys = keys();
        let token = keys.issue(65_534, "nobody", 1_000, 3_600);
        assert!(token.starts_with(PREFIX));
        assert_eq!(
            keys.verify(token.as_bytes(), 1_001),
            Ok(Claims { uid: 65_534, user: "nobody".to_owned(), issued_ms: 1_000, expires_ms: 4_600 })
        );
        assert_eq!(keys.verify(token.as_bytes(), 4_600), Err(Refusal::Expired(0)));
        assert_eq!(keys.verify(keys.issue(1, "x", 0, 10).as_bytes(), 20), Err(Refusal::Expired(10)));
        // Any change to the claims or the tag: refused.
        let (claims, tag) = token.rsplit_once('.').unwrap();
        let flipped = |s: &str, at: usize| {
            let mut bytes = s.as_bytes().to_vec();
            bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
            String::from_utf8(bytes).unwrap()
        };
        assert_eq!(keys.verify(format!("{}.{tag}", flipped(claims, 9)).as_bytes(), 1_001), Err(Refusal::Forged));
        assert_eq!(keys.verify(format!("{claims}.{}", flipped(tag, 3)).as_bytes(), 1_001), Err(Refusal::Forged));
        assert_eq!(TokenKeys::random().unwrap().verify(token.as_bytes(), 1_001), Err(Refusal::Forged), "another key");
        for made_up in ["", "emrfs1.", "emrfs1.zz.00", "Bearer abc", "emrfs1.00.00"] {
            assert!(keys.verify(made_up.as_bytes(), 1_001).is_err(), "{made_up}");
        }
    }

    #[test]
    fn revocation_refuses_the_user_s_earlier_tokens_only() {
        let keys = keys();
        let old = keys.issue(1000, "alice", 100, 3_600);
        let other = keys.issue(1001, "bob", 100, 3_600);
        keys.revoke("alice", 150).unwrap();
        assert_eq!(keys.verify(old.as_bytes(), 200), Err(Refusal::Revoked("alice".to_owned())));
        assert!(keys.verify(other.as_bytes(), 200).is_ok());
        assert!(keys.verify(keys.issue(1000, "alice", 151, 3_600).as_bytes(), 200).is_ok(), "a later token works");
    }

    #[test]
    fn a_key_file_keeps_tokens_and_revocations_across_restarts() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("emrfs-rolemap-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let key = dir.join("token.key");
        std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let first = TokenKeys::from_file(&key, FileCheck::Enforce).unwrap();
        let token = first.issue(7, "carol", 10, 100);
        let kept = first.issue(8, "dave", 10, 100);
        first.revoke("carol", 20).unwrap();
        let revocations = std::fs::metadata(revocations_path(&key)).unwrap();
        assert_eq!(revocations.permissions().mode() & 0o777, 0o600);
        let restarted = TokenKeys::from_file(&key, FileCheck::Enforce).unwrap();
        assert_eq!(restarted.verify(token.as_bytes(), 30), Err(Refusal::Revoked("carol".to_owned())));
        assert_eq!(restarted.verify(kept.as_bytes(), 30).map(|c| c.user), Ok("dave".to_owned()));
        std::fs::write(&key, "too short").unwrap();
        let error = TokenKeys::from_file(&key, FileCheck::Enforce).unwrap_err().to_string();
        assert!(error.contains("fewer than 32") && !error.contains("too short"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
