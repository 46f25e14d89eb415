//! Trusted files: the configuration, the bearer token and any key file the server reads, checked as
//! OpenSSH checks its own files, and opened so that no file can block the server.
//!
//! Whoever can write the configuration decides every caller's role, and whoever can read the token is a
//! trusted caller, so a file is **trusted** only when:
//! - it is a regular file (not a FIFO, device, socket or directory), after following symlinks;
//! - it is owned by root or by the server's own (effective) user;
//! - neither its group nor others may write it; a [`FileKind::Secret`] may not be read by them either;
//! - every directory from `/` down to it, along the path as given and along its real path (symlinks
//!   resolved), is owned by root or the server's user and is writable by nobody else, unless it is
//!   sticky (as the system's temporary directory is: others may create files there but not replace ours).
//!
//! [`open_trusted`] checks the type before opening (so opening never waits for a FIFO's writer or wakes a
//! device), opens without blocking and checks the opened handle again (so a file swapped in between is
//! caught). [`FileCheck::WarnOnly`] (the server's `--insecure-files`) logs a trust violation instead of
//! refusing the file; a file that is not regular is refused either way.

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::diagnostics::Escaped;

/// `path` as messages show it: through [`Escaped`], so that a name cannot act on a terminal.
pub(crate) fn shown(path: &Path) -> String {
    Escaped(&path.to_string_lossy()).to_string()
}

/// What a file holds, which decides who else may read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A configuration: others may read it, nobody but its owner may write it.
    Configuration,
    /// A secret (token, key): nobody but its owner may read or write it.
    Secret,
}

/// Whether files that are not trusted are refused or only logged.
///
/// A file the server reads (the configuration, the bearer token) is **trusted** only when it is a
/// regular file (not a FIFO, device, socket or directory, after following symlinks); owned by root or
/// by the server's own user; not writable by group or others (a secret such as the token not readable
/// by them either); in directories, from `/` down along its path as given and along its real path, that
/// only root or the server's user can change, unless sticky (like `/tmp`). A file that is not regular is
/// refused under either check, without being opened for reading, so that it can never block the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FileCheck {
    /// Refuse files that are not trusted (the default).
    #[default]
    Enforce,
    /// Log a warning and use the file anyway (`--insecure-files`: tests and development only). A file
    /// that is not a regular file is still refused.
    WarnOnly,
}

impl FileCheck {
    /// Reads the trusted secret file `path` (owned by root or the server's user, readable and writable
    /// by nobody else, in directories nobody else can change) of at most `limit` bytes, into a buffer
    /// zeroed when dropped. Opening never blocks: a FIFO or device is refused. For key files of the
    /// embedding program, checked as the server checks its own.
    pub fn read_secret(self, path: &Path, limit: usize) -> Result<Zeroizing<Vec<u8>>, FileError> {
        read_secret(path, self, limit)
    }
}

/// Why a file was not read. Messages name the file and never quote its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The operating system could not open or read it.
    #[error("cannot read `{path}`: {message}")]
    Unreadable {
        /// The file.
        path: String,
        /// What the operating system said.
        message: String,
    },
    /// It is a FIFO, a device, a socket or a directory.
    #[error("`{path}` is not a regular file ({what}); give the path of a regular file")]
    NotRegular {
        /// The file.
        path: String,
        /// What it is instead, such as `a FIFO`.
        what: &'static str,
    },
    /// Someone besides root and the server's user could change it, or read a secret.
    #[error("{reason}; {help}")]
    Untrusted {
        /// The file.
        path: String,
        /// What makes it untrusted, naming the file or directory.
        reason: String,
        /// How to fix it.
        help: String,
    },
    /// It holds more than the reader accepts.
    #[error("`{path}` is larger than {limit} bytes")]
    TooLarge {
        /// The file.
        path: String,
        /// The most bytes accepted.
        limit: usize,
    },
}

impl FileError {
    /// A stable code for the error, shown where the message may not be (`/readyz` to untrusted callers).
    pub fn code(&self) -> &'static str {
        match self {
            FileError::Unreadable { .. } => "unreadable-file",
            FileError::NotRegular { .. } => "not-a-regular-file",
            FileError::Untrusted { .. } => "untrusted-file",
            FileError::TooLarge { .. } => "file-too-large",
        }
    }
}

/// Opens `path` for reading after checking that it is a trusted file of `kind` (see the module
/// documentation); under [`FileCheck::WarnOnly`] a trust violation is logged instead.
pub fn open_trusted(path: &Path, kind: FileKind, check: FileCheck) -> Result<File, FileError> {
    let shown = shown(path);
    let unreadable = |e: std::io::Error| FileError::Unreadable { path: shown.clone(), message: e.to_string() };
    let before = std::fs::metadata(path).map_err(unreadable)?;
    regular(&before, &shown)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits() | nix::fcntl::OFlag::O_NOCTTY.bits())
        .open(path)
        .map_err(unreadable)?;
    let opened = file.metadata().map_err(unreadable)?;
    regular(&opened, &shown)?;
    if (opened.dev(), opened.ino()) != (before.dev(), before.ino()) {
        return Err(FileError::Unreadable {
            path: shown,
            message: "the file was replaced while it was being opened; try again".to_owned(),
        });
    }
    if let Err(error) = trusted(path, &opened, kind) {
        match check {
            FileCheck::Enforce => return Err(error),
            FileCheck::WarnOnly => tracing::warn!("using an untrusted file (--insecure-files): {error}"),
        }
    }
    Ok(file)
}

/// Reads a trusted secret of at most `limit` bytes, in a buffer that is zeroed when dropped.
pub fn read_secret(path: &Path, check: FileCheck, limit: usize) -> Result<Zeroizing<Vec<u8>>, FileError> {
    let file = open_trusted(path, FileKind::Secret, check)?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FileError::Unreadable { path: shown(path), message: e.to_string() })?;
    if bytes.len() > limit {
        return Err(FileError::TooLarge { path: shown(path), limit });
    }
    Ok(bytes)
}

fn regular(meta: &Metadata, path: &str) -> Result<(), FileError> {
    let kind = meta.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "not a file"
    };
    Err(FileError::NotRegular { path: path.to_owned(), what })
}

/// The override every trust refusal mentions.
const OVERRIDE_HELP: &str = "or start the server with --insecure-files (tests and development only)";

/// Checks the opened file's owner and mode, then the directories along its given and its real path.
fn trusted(path: &Path, file: &Metadata, kind: FileKind) -> Result<(), FileError> {
    let me = nix::unistd::geteuid().as_raw();
    let shown = shown(path);
    let untrusted = |reason: String, help: String| FileError::Untrusted { path: shown.clone(), reason, help };
    let mode = file.mode() & 0o7777;
    if file.uid() != 0 && file.uid() != me {
        return Err(untrusted(
            format!("`{shown}` is owned by uid {}, not by root or the server's user (uid {me})", file.uid()),
            format!("`chown` it to root or to uid {me}, {OVERRIDE_HELP}"),
        ));
    }
    let forbidden = match kind {
        FileKind::Configuration => 0o022,
        FileKind::Secret => 0o077,
    };
    if mode & forbidden != 0 {
        let who = match (kind, mode & 0o020 != 0, mode & 0o002 != 0) {
            (_, _, true) => "writable by others",
            (_, true, false) => "writable by group",
            (FileKind::Secret, false, false) => "readable by group or others, and it holds a secret",
            (FileKind::Configuration, false, false) => "writable by group",
        };
        let fixed = mode & !forbidden & 0o777;
        return Err(untrusted(
            format!("`{shown}` is {who} (mode {:o})", mode & 0o777),
            format!("`chmod {fixed:o} {shown}`, {OVERRIDE_HELP}"),
        ));
    }
    let real = std::fs::canonicalize(path)
        .map_err(|e| FileError::Unreadable { path: shown.clone(), message: e.to_string() })?;
    directories_trusted(&shown, &parent(path))?;
    directories_trusted(&shown, &parent(&real))
}

/// The directory holding `path` (`.` for a bare name).
fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Checks that the directory that holds (or will hold) `entry`, and every directory above it along its
/// absolute and its real path, can be changed only by root or the server's user, unless sticky. Under
/// [`FileCheck::WarnOnly`] a violation is logged instead.
pub(crate) fn check_directories(entry: &Path, check: FileCheck) -> Result<(), FileError> {
    match (directories_trusted(&shown(entry), &parent(entry)), check) {
        (Err(error @ FileError::Untrusted { .. }), FileCheck::WarnOnly) => {
            tracing::warn!("using an untrusted directory (--insecure-files): {error}");
            Ok(())
        }
        (outcome, _) => outcome,
    }
}

/// `directory` and the directories above it, along its absolute and its real path; `shown` names the
/// entry they hold, for the message.
fn directories_trusted(entry: &str, directory: &Path) -> Result<(), FileError> {
    let me = nix::unistd::geteuid().as_raw();
    let unreadable = |d: &Path, e: std::io::Error| FileError::Unreadable { path: shown(d), message: e.to_string() };
    let absolute = std::path::absolute(directory).map_err(|e| unreadable(directory, e))?;
    let real = std::fs::canonicalize(directory).map_err(|e| unreadable(directory, e))?;
    for directory in absolute.ancestors().chain(real.ancestors()) {
        let meta = std::fs::metadata(directory).map_err(|e| unreadable(directory, e))?;
        let dir = Escaped(&directory.to_string_lossy()).to_string();
        let mode = meta.mode() & 0o7777;
        let untrusted = |reason: String, help: String| FileError::Untrusted { path: entry.to_owned(), reason, help };
        if meta.uid() != 0 && meta.uid() != me {
            return Err(untrusted(
                format!(
                    "the directory `{dir}` of `{entry}` is owned by uid {}, not by root or the server's user (uid {me})",
                    meta.uid()
                ),
                format!("use a directory that only root or uid {me} can change, {OVERRIDE_HELP}"),
            ));
        }
        let sticky = mode & 0o1000 != 0;
        if mode & 0o022 != 0 && !sticky {
            let who = if mode & 0o002 != 0 { "others" } else { "group" };
            return Err(untrusted(
                format!("the directory `{dir}` of `{entry}` is writable by {who} (mode {:o})", mode & 0o7777),
                format!("`chmod go-w {dir}`, {OVERRIDE_HELP}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn modes_owners_and_kinds_decide_trust() {
        let dir = std::env::temp_dir().join(format!("emrfs-rolemap-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        chmod(&dir, 0o755);
        let file = dir.join("f");
        std::fs::write(&file, "x").unwrap();
        let open = |kind| open_trusted(&file, kind, FileCheck::Enforce);
        for (mode, configuration, secret) in [
            (0o600, true, true),
            (0o644, true, false),
            (0o640, true, false),
            (0o664, false, false),
            (0o646, false, false),
        ] {
            chmod(&file, mode);
            assert_eq!(open(FileKind::Configuration).is_ok(), configuration, "{mode:o}");
            assert_eq!(open(FileKind::Secret).is_ok(), secret, "{mode:o}");
        }
        chmod(&file, 0o666);
        assert!(open_trusted(&file, FileKind::Configuration, FileCheck::WarnOnly).is_ok());
        let error = open(FileKind::Configuration).unwrap_err();
        assert_eq!(error.code(), "untrusted-file");
        assert!(error.to_string().contains("chmod 644"), "{error}");
        chmod(&file, 0o600);

        chmod(&dir, 0o757);
        assert!(open(FileKind::Secret).unwrap_err().to_string().contains("is writable by others (mode 757)"));
        chmod(&dir, 0o1777);
        assert!(open(FileKind::Secret).is_ok());
        chmod(&dir, 0o755);

        // A symlink from a trusted place into an untrusted one: the real path is checked too.
        let open_dir = dir.join("open");
        std::fs::create_dir_all(&open_dir).unwrap();
        chmod(&open_dir, 0o777);
        let target = open_dir.join("target");
        std::fs::write(&target, "x").unwrap();
        chmod(&target, 0o600);
        let link = dir.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let error = open_trusted(&link, FileKind::Secret, FileCheck::Enforce).unwrap_err();
        assert!(error.to_string().contains("open` of"), "{error}");

        let too_large = read_secret(&file, FileCheck::Enforce, 0).unwrap_err();
        assert_eq!(too_large.code(), "file-too-large");
        assert_eq!(&*read_secret(&file, FileCheck::Enforce, 1).unwrap(), b"x");
        assert_eq!(open_trusted(&dir, FileKind::Secret, FileCheck::WarnOnly).unwrap_err().code(), "not-a-regular-file");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
