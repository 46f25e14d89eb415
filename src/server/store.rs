//! The configuration a server answers from: read from a file, compiled, and swapped in atomically
//! when the file changes. Each swap starts a new *generation*; a request holds one generation from start
//! to end, so it is answered wholly by one configuration.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use arc_swap::{ArcSwap, ArcSwapOption};

use super::files::{FileCheck, FileError, FileKind, open_trusted, shown};
use crate::config::read_document;
use crate::{Diagnostic, Escaped, Resolver, ResolverBuilder, ResolverOptions, SecurityConfiguration, Severity};

/// One loaded configuration: its number, the compiled resolver and what it was made from.
#[derive(Debug)]
pub struct Generation {
    number: u64,
    resolver: Resolver,
    loaded_at: SystemTime,
    fingerprint: u64,
}

impl Generation {
    /// The generation number: 1 for the configuration loaded at start, one more for each reload that
    /// changed it.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The compiled configuration.
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// When this generation was loaded.
    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }
}

/// Why a configuration file could not be loaded. Reloading keeps the old generation.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read, is not a regular file, or is not trusted (see [`FileCheck`]).
    #[error(transparent)]
    File(#[from] FileError),
    /// The file is not a valid security configuration. The message names the first error;
    /// [`report`](LoadError::report) renders them all.
    #[error("the configuration `{path}` has {count} error(s); the first: {first}")]
    Invalid {
        /// The file.
        path: String,
        /// How many errors.
        count: usize,
        /// The first error, in one line, with its place.
        first: String,
        /// The errors, rendered with source excerpts.
        rendered: String,
        /// The errors.
        diagnostics: Vec<Diagnostic>,
    },
    /// The configuration could not be compiled.
    #[error("the configuration `{path}` cannot be compiled: {message}")]
    Build {
        /// The file.
        path: String,
        /// The builder's error.
        message: String,
    },
}

impl LoadError {
    /// A stable code for the error: the [`FileError`]'s, `invalid-configuration` or `build-failed`.
    pub fn code(&self) -> &'static str {
        match self {
            LoadError::File(error) => error.code(),
            LoadError::Invalid { .. } => "invalid-configuration",
            LoadError::Build { .. } => "build-failed",
        }
    }

    /// The message, followed for an invalid file by every error rendered with its source excerpt (several
    /// lines): what a log or a trusted caller is shown.
    pub fn report(&self) -> String {
        match self {
            LoadError::Invalid { rendered, .. } => format!("{self}\n\n{rendered}"),
            _ => self.to_string(),
        }
    }

    /// The diagnostics of an invalid file; empty for other errors.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            LoadError::Invalid { diagnostics, .. } => diagnostics,
            _ => &[],
        }
    }
}

/// A failed reload, kept until the next successful one (or until the file again holds the served
/// configuration) and shown by `/readyz`.
#[derive(Debug, Clone)]
pub struct ReloadFailure {
    /// When the reload was tried.
    pub at: SystemTime,
    /// Why it failed.
    pub error: LoadError,
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The file held a new valid configuration, now served as this generation.
    Reloaded {
        /// The new generation's number.
        generation: u64,
    },
    /// The file holds the configuration already served; nothing changed.
    Unchanged,
    /// The file did not change on disk since it was last read (file watching only).
    NotModified,
}

/// What identifies a version of the file on disk without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
    device: u64,
    changed_nanos: i64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode: meta.ino(),
            device: meta.dev(),
            changed_nanos: meta.ctime().saturating_mul(1_000_000_000).saturating_add(meta.ctime_nsec()),
        })
    }
}

/// The served configuration and its reload history. Reloads are serialised by a lock that only
/// reloads take; what readers see (the generation, the last failure, the counters) is published
/// atomically, so a request, `/readyz` or `/metrics` never waits for a reload, however long it reads or
/// compiles.
#[derive(Debug)]
pub struct ConfigStore {
    path: PathBuf,
    options: ResolverOptions,
    check: FileCheck,
    current: ArcSwap<Generation>,
    /// The stamp of the file when it was last read; held by the reload in progress.
    reloading: Mutex<Option<FileStamp>>,
    last_failure: ArcSwapOption<ReloadFailure>,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
}

impl ConfigStore {
    /// Loads generation 1 from `path`; fails when the file cannot be read, is not trusted (under
    /// [`FileCheck::Enforce`]) or is invalid. Every reload checks the file the same way.
    pub fn open(path: impl Into<PathBuf>, options: ResolverOptions, check: FileCheck) -> Result<Self, LoadError> {
        let path = path.into();
        let stamp = FileStamp::of(&path);
        let bytes = read(&path, check)?;
        let generation = compile(&path, &options, &bytes, 1)?;
        Ok(ConfigStore {
            path,
            options,
            check,
            current: ArcSwap::from_pointee(generation),
            reloading: Mutex::new(stamp),
            last_failure: ArcSwapOption::empty(),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
        })
    }

    /// The generation being served. Hold it for the whole of a request.
    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// The configuration file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file again and serves it when it is valid and differs from the served one. An invalid
    /// file changes nothing but the recorded failure. Blocks on file I/O and compilation: call it from a
    /// blocking context.
    pub fn reload(&self) -> Result<ReloadOutcome, LoadError> {
        let mut stamp = self.lock_reloading();
        *stamp = FileStamp::of(&self.path);
        self.reload_locked()
    }

    /// Like [`reload`](Self::reload), but only when the file's size, times or inode changed since it was
    /// last read; otherwise [`ReloadOutcome::NotModified`]. A file that disappears fails once, not on
    /// every call.
    pub fn reload_if_modified(&self) -> Result<ReloadOutcome, LoadError> {
        let mut stamp = self.lock_reloading();
        let now = FileStamp::of(&self.path);
        if now == *stamp {
            return Ok(ReloadOutcome::NotModified);
        }
        *stamp = now;
        self.reload_locked()
    }

    /// Reads and compiles under the reload lock (held by the caller), then publishes the outcome.
    fn reload_locked(&self) -> Result<ReloadOutcome, LoadError> {
        let outcome = read(&self.path, self.check).and_then(|bytes| {
            let current = self.current.load();
            if fingerprint(&bytes) == current.fingerprint {
                return Ok(ReloadOutcome::Unchanged);
            }
            let next = compile(&self.path, &self.options, &bytes, current.number + 1)?;
            let generation = next.number;
            self.current.store(Arc::new(next));
            self.reloads.fetch_add(1, Ordering::Relaxed);
            Ok(ReloadOutcome::Reloaded { generation })
        });
        match &outcome {
            Ok(_) => self.last_failure.store(None),
            Err(error) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                let failure = ReloadFailure { at: SystemTime::now(), error: error.clone() };
                self.last_failure.store(Some(Arc::new(failure)));
            }
        }
        outcome
    }

    /// The last failed reload, unless a later reload succeeded. Never waits for a reload.
    pub fn last_failure(&self) -> Option<Arc<ReloadFailure>> {
        self.last_failure.load_full()
    }

    /// Successful reloads that changed the configuration.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Reloads that failed.
    pub fn reload_failures(&self) -> u64 {
        self.reload_failures.load(Ordering::Relaxed)
    }

    fn lock_reloading(&self) -> MutexGuard<'_, Option<FileStamp>> {
        self.reloading.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Reads the trusted file, within the document size limit.
fn read(path: &Path, check: FileCheck) -> Result<Vec<u8>, LoadError> {
    let file = open_trusted(path, FileKind::Configuration, check)?;
    read_document(file)
        .map_err(|e| LoadError::File(FileError::Unreadable { path: shown(path), message: e.to_string() }))
}

fn compile(path: &Path, options: &ResolverOptions, bytes: &[u8], number: u64) -> Result<Generation, LoadError> {
    let name = shown(path);
    let config = SecurityConfiguration::from_slice_with(bytes, options).map_err(|diagnostics| LoadError::Invalid {
        count: diagnostics.error_count(),
        first: diagnostics
            .iter()
            .find(|d| d.severity() == Severity::Error)
            .map(|d| match d.location() {
                Some(at) => format!("{} at {at} (`{}`)", Escaped(d.message()), Escaped(d.pointer())),
                None => Escaped(d.message()).to_string(),
            })
            .unwrap_or_default(),
        rendered: diagnostics.render(&name).trim_end().to_owned(),
        diagnostics: diagnostics.as_slice().to_vec(),
        path: name.clone(),
    })?;
    let resolver = ResolverBuilder::with_options(options.clone())
        .build(&config)
        .map_err(|e| LoadError::Build { path: name, message: e.to_string() })?;
    Ok(Generation { number, resolver, loaded_at: SystemTime::now(), fingerprint: fingerprint(bytes) })
}

fn fingerprint(bytes: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"{"RoleMappings": [{"Role": "arn:aws:iam::123456789012:role/one", "IdentifierType": "User", "Identifiers": ["alice"]}]}"#;
    const TWO: &str = r#"{"RoleMappings": [{"Role": "arn:aws:iam::123456789012:role/two", "IdentifierType": "User", "Identifiers": ["alice"]}]}"#;

    fn role(store: &ConfigStore) -> String {
        let generation = store.current();
        let request = crate::Request::new().user("alice");
        generation.resolver().resolve(&request).role().map(|r| r.to_string()).unwrap_or_default()
    }

    #[test]
    fn reload_swaps_valid_files_and_keeps_the_old_one_on_errors() {
        let dir = std::env::temp_dir().join(format!("emrfs-rolemap-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("config.json");
        std::fs::write(&file, ONE).unwrap();
        let store = ConfigStore::open(&file, ResolverOptions::default(), FileCheck::Enforce).unwrap();
        assert_eq!(store.current().number(), 1);
        assert!(role(&store).ends_with("/one"));

        assert_eq!(store.reload().unwrap(), ReloadOutcome::Unchanged);
        std::fs::write(&file, TWO).unwrap();
        assert_eq!(store.reload().unwrap(), ReloadOutcome::Reloaded { generation: 2 });
        assert!(role(&store).ends_with("/two"));

        std::fs::write(&file, r#"{"RoleMappings": [{"Role": "nope"}]}"#).unwrap();
        let error = store.reload().unwrap_err();
        assert!(!error.diagnostics().is_empty(), "{error}");
        assert_eq!(store.current().number(), 2);
        assert!(role(&store).ends_with("/two"));
        assert!(store.last_failure().is_some());
        assert_eq!((store.reloads(), store.reload_failures()), (1, 1));

        // Putting the served configuration back clears the failure without a new generation.
        std::fs::write(&file, TWO).unwrap();
        assert_eq!(store.reload().unwrap(), ReloadOutcome::Unchanged);
        assert!(store.last_failure().is_none());
        assert_eq!(store.reload_if_modified().unwrap(), ReloadOutcome::NotModified);

        std::fs::remove_file(&file).unwrap();
        assert_eq!(store.reload_if_modified().unwrap_err().code(), "unreadable-file");
        assert_eq!(store.reload_if_modified().unwrap(), ReloadOutcome::NotModified);
        assert_eq!(store.current().number(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
