//! The operating system's user and group databases (NSS: files, LDAP, SSSD ...), asked the way Hadoop's
//! shell group mapping asks them: a user's groups are its primary group first, then the others once
//! each, in the database's order. The server asks here for its Unix-socket callers (by uid, on threads
//! of its own), and [`RequestSpec::from_os`](crate::RequestSpec::from_os) for the command line's
//! `--os-groups` and the `"groups_from": "os"` of test cases (by name).
//!
//! Every call may block for as long as the databases take.

/// What the operating system says about a user: its name and the names of its groups, primary group
/// first (groups without a name are left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsIdentity {
    /// The user name.
    pub user: String,
    /// The group names.
    pub groups: Vec<String>,
}

/// Why a user has no identity: the database has no such user (`None` from the lookup functions), or the
/// lookup failed (this error, with what the system said).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupError(pub String);

#[cfg(unix)]
mod unix {
    use nix::unistd::{Group, Uid, User, getgrouplist};

    use super::{LookupError, OsIdentity};

    fn failed(e: impl std::fmt::Display) -> LookupError {
        LookupError(e.to_string())
    }

    /// The user name of `uid` alone (one `getpwuid_r`); `None` when the database has no such uid.
    #[cfg(feature = "server")]
    pub fn user_name(uid: u32) -> Result<Option<String>, LookupError> {
        Ok(User::from_uid(Uid::from_raw(uid)).map_err(failed)?.map(|user| user.name))
    }

    /// The user of `uid` and its groups; `None` when the database has no such uid.
    pub fn identity_of_uid(uid: u32) -> Result<Option<OsIdentity>, LookupError> {
        User::from_uid(Uid::from_raw(uid)).map_err(failed)?.map(identity).transpose()
    }

    /// The user `name` and its groups; `None` when the database has no such user.
    pub fn identity_of_name(name: &str) -> Result<Option<OsIdentity>, LookupError> {
        if name.contains('\0') {
            return Ok(None);
        }
        User::from_name(name).map_err(failed)?.map(identity).transpose()
    }

    /// The user id this process runs as.
    pub fn current_uid() -> u32 {
        nix::unistd::getuid().as_raw()
    }

    /// `user`'s groups (`getgrouplist`, then `getgrgid_r` for each name), primary group first.
    fn identity(user: User) -> Result<OsIdentity, LookupError> {
        let name = std::ffi::CString::new(user.name.as_bytes()).map_err(failed)?;
        let mut gids = getgrouplist(&name, user.gid).map_err(failed)?;
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
}

#[cfg(all(unix, feature = "server"))]
pub use unix::user_name;
#[cfg(unix)]
pub use unix::{current_uid, identity_of_name, identity_of_uid};

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn root_by_uid_and_by_name_agree() {
        let by_uid = identity_of_uid(0).unwrap().unwrap();
        assert_eq!(by_uid.user, "root");
        assert_eq!(by_uid.groups.first().map(String::as_str), Some("root"));
        assert_eq!(identity_of_name("root").unwrap(), Some(by_uid));
    }

    #[test]
    fn unknown_users_are_none() {
        assert_eq!(identity_of_uid(4_000_000_000).unwrap(), None);
        assert_eq!(identity_of_name("no-such-user-emrfs-rolemap").unwrap(), None);
        assert_eq!(identity_of_name("ro\0ot").unwrap(), None);
    }
}
