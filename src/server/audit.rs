//! What the audit log (target `emrfs_rolemap::audit`) records, kept small enough to read under load:
//!
//! - **Grants**: one line the first time a caller receives a given set of credentials for a user — on a
//!   miss (STS was called) and after every refresh (new credentials, so a new access key ID) — and none
//!   for the cache hits in between, which `/metrics` counts by role. Every access key ID that reaches a
//!   caller is thus in the log with the caller that first got it.
//! - **Refusals**: at most one line per (caller, code) per [`REFUSAL_WINDOW`]; the next line says how
//!   many were left out since. `/metrics` counts every refusal by code.
//!
//! Both memories are bounded: when full, they forget (so a line may repeat), never grow.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::peer::Caller;

/// The shortest time between two refusal lines for one caller and code.
pub(crate) const REFUSAL_WINDOW: Duration = Duration::from_secs(60);

/// The most grants remembered; then the memory starts afresh.
const MAX_GRANTS: usize = 65_536;

/// The most (caller, code) windows kept; then windows that have ended are dropped, or all of them.
const MAX_WINDOWS: usize = 4_096;

/// The memories behind the audit log's volume rules.
#[derive(Debug, Default)]
pub(crate) struct Audit {
    /// Keyed hashes of (caller, user, access key ID) already logged.
    grants: Mutex<HashSet<u64>>,
    /// A random hash key, so that nobody can make two grants collide on purpose.
    hasher: std::hash::RandomState,
    refusals: Mutex<HashMap<(Caller, &'static str), Window>>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    left_out: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Audit {
    /// Whether `caller` gets the credentials `access_key_id` for `user` for the first time, so the grant
    /// is to be logged.
    pub(crate) fn first_grant(&self, caller: Caller, user: &str, access_key_id: &str) -> bool {
        let key = self.hasher.hash_one((caller, user, access_key_id));
        let mut grants = lock(&self.grants);
        if grants.len() >= MAX_GRANTS {
            grants.clear();
        }
        grants.insert(key)
    }

    /// Whether a refusal of `caller` with `code` at `now` is to be logged: `Some(n)` with the number of
    /// such refusals left out since the last line, `None` to leave this one out.
    pub(crate) fn refusal(&self, caller: Caller, code: &'static str, now: Instant) -> Option<u64> {
        let mut windows = lock(&self.refusals);
        if let Some(window) = windows.get_mut(&(caller, code)) {
            if now.duration_since(window.started) < REFUSAL_WINDOW {
                window.left_out += 1;
                return None;
            }
            let left_out = window.left_out;
            *window = Window { started: now, left_out: 0 };
            return Some(left_out);
        }
        if windows.len() >= MAX_WINDOWS {
            windows.retain(|_, w| now.duration_since(w.started) < REFUSAL_WINDOW);
            if windows.len() >= MAX_WINDOWS {
                windows.clear();
            }
        }
        windows.insert((caller, code), Window { started: now, left_out: 0 });
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_is_logged_once_per_caller_user_and_key() {
        let audit = Audit::default();
        let alice = Caller::Unix { uid: 1000 };
        assert!(audit.first_grant(alice, "alice", "ASIA1"));
        assert!(!audit.first_grant(alice, "alice", "ASIA1"));
        assert!(audit.first_grant(alice, "alice", "ASIA2"), "refreshed credentials are a new grant");
        assert!(audit.first_grant(Caller::Tcp, "alice", "ASIA2"), "another caller is a new grant");
        assert!(audit.first_grant(Caller::Tcp, "bob", "ASIA2"));
    }

    #[test]
    fn refusals_are_logged_once_a_window_with_the_count_left_out() {
        let audit = Audit::default();
        let (nobody, t0) = (Caller::Unix { uid: 65_534 }, Instant::now());
        assert_eq!(audit.refusal(nobody, "fallback-not-served", t0), Some(0));
        for _ in 0..1_000 {
            assert_eq!(audit.refusal(nobody, "fallback-not-served", t0 + Duration::from_secs(59)), None);
        }
        assert_eq!(audit.refusal(nobody, "not-your-user", t0), Some(0), "another code has its own window");
        assert_eq!(audit.refusal(nobody, "fallback-not-served", t0 + REFUSAL_WINDOW), Some(1_000));
        assert_eq!(audit.refusal(nobody, "fallback-not-served", t0 + REFUSAL_WINDOW), None);
    }

    #[test]
    fn the_memories_stay_bounded() {
        let audit = Audit::default();
        for uid in 0..(2 * MAX_WINDOWS as u32) {
            audit.refusal(Caller::Unix { uid }, "x", Instant::now());
        }
        assert!(lock(&audit.refusals).len() <= MAX_WINDOWS);
        for n in 0..(MAX_GRANTS + 10) {
            audit.first_grant(Caller::Tcp, "u", &n.to_string());
        }
        assert!(lock(&audit.grants).len() <= MAX_GRANTS);
    }
}
