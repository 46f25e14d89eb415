//! Who is asking: the bearer token of TCP callers, the uid of Unix-socket callers, and the user name and
//! groups the operating system gives a uid (cached for a TTL, like Hadoop's group cache).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use super::files::{FileCheck, FileError, read_secret};
use crate::credentials::Secret;

/// The shortest bearer token accepted, in bytes.
pub const MIN_TOKEN_BYTES: usize = 16;

/// The caller of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    /// A TCP client; it must present the bearer token.
    Tcp,
    /// A Unix-socket client, identified by the kernel (`SO_PEERCRED`).
    Unix {
        /// The client process's user id.
        uid: u32,
    },
}

impl std::fmt::Display for Caller {
    /// `tcp` or `uid N`, for logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Caller::Tcp => f.write_str("tcp"),
            Caller::Unix { uid } => write!(f, "uid {uid}"),
        }
    }
}

/// The shared secret TCP callers present as `Authorization: Bearer <token>`. Compared in constant time;
/// never printed.
#[derive(Debug, Clone)]
pub struct BearerToken(Secret);

/// Why a token file cannot be used. Neither variant ever quotes the file's content.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read, or is not a trusted file.
    #[error(transparent)]
    File(#[from] FileError),
    /// The token is too short or holds characters a header cannot carry.
    #[error("the token in `{path}` is unusable: {reason}")]
    Unusable {
        /// The file.
        path: String,
        /// What is wrong with it (never the token itself).
        reason: String,
    },
}

/// The largest token file read, in bytes.
pub const MAX_TOKEN_FILE_BYTES: usize = 4096;

impl BearerToken {
    /// A token of visible ASCII characters, at least [`MIN_TOKEN_BYTES`] long.
    pub fn new(token: &str) -> Result<Self, String> {
        if token.len() < MIN_TOKEN_BYTES {
            return Err(format!(
                "it has {} bytes, fewer than {MIN_TOKEN_BYTES}; generate one with `openssl rand -hex 32`",
                token.len()
            ));
        }
        if let Some(position) = token.bytes().position(|b| !b.is_ascii_graphic()) {
            return Err(format!(
                "byte {} is not a visible ASCII character; a bearer token is one line without spaces",
                position + 1
            ));
        }
        Ok(BearerToken(Secret::new(token)))
    }

    /// Reads the token from `path`, a trusted secret file (see [`super::files`]) of at most
    /// [`MAX_TOKEN_FILE_BYTES`] holding one line (a trailing newline is ignored). Opening never blocks:
    /// a FIFO or device is refused. Call it off the async runtime: it reads a file.
    pub fn from_file(path: &Path, check: FileCheck) -> Result<Self, TokenError> {
        let unusable = |reason: String| TokenError::Unusable { path: path.display().to_string(), reason };
        let bytes = read_secret(path, check, MAX_TOKEN_FILE_BYTES)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| unusable("it is not UTF-8 text".to_owned()))?;
        let token = text.strip_suffix('\n').map_or(text, |t| t.strip_suffix('\r').unwrap_or(t));
        BearerToken::new(token).map_err(unusable)
    }

    /// Whether an `Authorization` header value carries this token. The comparison runs over the whole
    /// token whatever is presented, so its time says nothing about the token: neither the first differing
    /// byte nor the token's length.
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let Some(value) = authorization else { return false };
        let Some(presented) = strip_bearer(value) else { return false };
        let expected = self.0.expose().as_bytes();
        let mut equal = (presented.len() as u64).ct_eq(&(expected.len() as u64));
        for (i, byte) in expected.iter().enumerate() {
            equal &= presented.get(i).copied().unwrap_or(0).ct_eq(byte);
        }
        bool::from(equal)
    }
}

/// The credentials part of `Bearer <credentials>`; the scheme is case-insensitive (RFC 9110 §11.1).
fn strip_bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| rest.trim_ascii())
}

/// What the operating system says about a uid: its user name and the names of its groups, primary
/// group first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsIdentity {
    /// The user name.
    pub user: String,
    /// The group names; groups without a name are left out.
    pub groups: Vec<String>,
}

/// Why a uid has no identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The user database has no entry for the uid.
    #[error("uid {0} has no entry in the user database")]
    UnknownUid(u32),
    /// The lookup itself failed.
    #[error("looking up uid {uid} failed: {message}")]
    Lookup {
        /// The uid.
        uid: u32,
        /// What the system said.
        message: String,
    },
}

/// Looks up uids in the operating system's user and group databases (NSS: files, LDAP, SSSD ...), and
/// remembers each answer for a TTL. Lookups run on tokio's blocking pool; failures are not remembered.
#[derive(Debug)]
pub struct OsIdentities {
    ttl: Duration,
    cache: Mutex<HashMap<u32, (Instant, Arc<OsIdentity>)>>,
}

impl OsIdentities {
    /// A cache whose answers live for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        OsIdentities { ttl, cache: Mutex::new(HashMap::new()) }
    }

    /// The identity of `uid`, from the cache when younger than the TTL.
    pub async fn lookup(&self, uid: u32) -> Result<Arc<OsIdentity>, IdentityError> {
        if let Some((at, identity)) = self.lock().get(&uid)
            && at.elapsed() < self.ttl
        {
            return Ok(identity.clone());
        }
        let identity = tokio::task::spawn_blocking(move || lookup_uid(uid))
            .await
            .map_err(|e| IdentityError::Lookup { uid, message: e.to_string() })??;
        let identity = Arc::new(identity);
        let mut cache = self.lock();
        let now = Instant::now();
        cache.retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
        cache.insert(uid, (now, identity.clone()));
        Ok(identity)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, (Instant, Arc<OsIdentity>)>> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// `getpwuid_r`, `getgrouplist` and `getgrgid_r`.
fn lookup_uid(uid: u32) -> Result<OsIdentity, IdentityError> {
    use nix::unistd::{Group, Uid, User, getgrouplist};
    let failed = |e: nix::Error| IdentityError::Lookup { uid, message: e.to_string() };
    let user = User::from_uid(Uid::from_raw(uid)).map_err(failed)?.ok_or(IdentityError::UnknownUid(uid))?;
    let name = std::ffi::CString::new(user.name.as_bytes())
        .map_err(|e| IdentityError::Lookup { uid, message: e.to_string() })?;
    let mut gids = getgrouplist(&name, user.gid).map_err(failed)?;
    // The primary group first, then the others once each, in the database's order.
    gids.retain(|g| *g != user.gid);
    gids.insert(0, user.gid);
    let mut groups = Vec::with_capacity(gids.len());
    for gid in gids {
        if let Some(group) = Group::from_gid(gid).map_err(failed)?
            && !groups.contains(&group.name)
        {
            groups.push(group.name);
        }
    }
    Ok(OsIdentity { user: user.name, groups })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_and_compared_whole() {
        assert!(BearerToken::new("short").unwrap_err().contains("fewer than 16"));
        assert!(BearerToken::new("0123456789abcdef 0").unwrap_err().contains("byte 17"));
        let token = BearerToken::new("0123456789abcdef").unwrap();
        assert!(token.accepts(Some(b"Bearer 0123456789abcdef")));
        assert!(token.accepts(Some(b"bearer  0123456789abcdef ")));
        assert!(!token.accepts(Some(b"Bearer 0123456789abcdeF")));
        assert!(!token.accepts(Some(b"Bearer 0123456789abcde")));
        assert!(!token.accepts(Some(b"Basic 0123456789abcdef")));
        assert!(!token.accepts(Some(b"0123456789abcdef")));
        assert!(!token.accepts(None));
        assert!(!format!("{token:?}").contains("0123"));
    }

    #[tokio::test]
    async fn root_is_in_the_user_database() {
        let identities = OsIdentities::new(Duration::from_secs(300));
        let root = identities.lookup(0).await.unwrap();
        assert_eq!(root.user, "root");
        assert_eq!(root.groups.first().map(String::as_str), Some("root"));
        assert!(Arc::ptr_eq(&root, &identities.lookup(0).await.unwrap()), "the second lookup is cached");
        assert_eq!(identities.lookup(4_000_000_000).await, Err(IdentityError::UnknownUid(4_000_000_000)));
    }
}
