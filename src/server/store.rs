//! The configuration a server answers from: read from a trusted file or from Amazon EMR, compiled, and
//! swapped in atomically when the file or what EMR holds changes. Each swap starts a new *generation*; a
//! request holds one generation from start to end, so it is answered wholly by one configuration.
//!
//! Wherever a document comes from, one path publishes it ([`ConfigStore::publish`]): a document that is
//! the served one (the same bytes under the same name and fallback role) changes nothing, a new valid one
//! becomes the next generation, and any failure — an unreadable file, an AWS error, an invalid document —
//! keeps the served generation and is recorded for `/readyz`.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};

use super::files::{FileCheck, FileError, FileKind, open_trusted, shown};
#[cfg(feature = "emr")]
use crate::aws::EmrConfiguration;
use crate::config::read_document;
#[cfg(feature = "emr")]
use crate::credentials::{ErrorKind, SourceError};
use crate::{
    Diagnostic, Escaped, Resolver, ResolverBuilder, ResolverOptions, RoleArn, SecurityConfiguration, Severity,
};

/// One loaded configuration: its number, the compiled resolver and what it was made from.
#[derive(Debug)]
pub struct Generation {
    number: u64,
    resolver: Resolver,
    loaded_at: SystemTime,
    source: String,
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

    /// Where it was read: the file, or `security configuration NAME (of cluster ID) (from EMR)`.
    pub fn source(&self) -> &str {
        &self.source
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
        /// The file (for a document from EMR, its [`Generation::source`]).
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
        /// The file (for a document from EMR, its [`Generation::source`]).
        path: String,
        /// The builder's error.
        message: String,
    },
    /// The document could not be read from AWS (EMR, IAM): not found, access denied, throttled,
    /// unreachable, or a cluster without a security configuration or role mappings.
    #[error("{message}")]
    Fetch {
        /// `aws-access-denied`, `aws-throttled`, `aws-timeout`, `aws-unreachable`, `aws-server-error`,
        /// `aws-invalid-request` (not found, no security configuration, no role mappings),
        /// `aws-base-credentials` or `aws-failed`; `not-a-file` for [`ConfigStore::reload`] of a
        /// configuration from EMR.
        code: &'static str,
        /// What failed, naming the service, the call, the name or cluster ID, and what AWS said.
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
            LoadError::Fetch { code, .. } => code,
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

/// Where a store reads its configuration.
#[derive(Debug)]
enum Origin {
    /// A trusted file, checked as `check` says; `stamp` is the file's when it was last read, held by
    /// the reload in progress.
    File { path: PathBuf, check: FileCheck, stamp: Mutex<Option<FileStamp>> },
    /// Amazon EMR: `source` reads it again; `polling` is held by the poll in progress.
    #[cfg(feature = "emr")]
    Emr { source: EmrConfiguration, poll_interval: Option<Duration>, polling: tokio::sync::Mutex<()> },
}

/// A document to publish: its bytes, what it is called, and the fallback role it comes with (the
/// role of a cluster's instance profile).
struct Candidate {
    bytes: Vec<u8>,
    source: String,
    fallback_role: Option<RoleArn>,
}

/// The served configuration and its reload history. Reloads are serialised by a lock that only
/// reloads take; what readers see (the generation, the last failure, the counters) is published
/// atomically, so a request, `/readyz` or `/metrics` never waits for a reload, however long it reads,
/// fetches or compiles.
#[derive(Debug)]
pub struct ConfigStore {
    origin: Origin,
    options: ResolverOptions,
    current: ArcSwap<Generation>,
    last_failure: ArcSwapOption<ReloadFailure>,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
}

impl ConfigStore {
    /// How often a configuration from EMR is read again, unless set.
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(60);

    /// Loads generation 1 from `path`; fails when the file cannot be read, is not trusted (under
    /// [`FileCheck::Enforce`]) or is invalid. Every reload checks the file the same way.
    pub fn open(path: impl Into<PathBuf>, options: ResolverOptions, check: FileCheck) -> Result<Self, LoadError> {
        let path = path.into();
        let stamp = FileStamp::of(&path);
        let candidate = read(&path, check)?;
        let generation = compile(candidate, &options, 1)?;
        Ok(ConfigStore::new(Origin::File { path, check, stamp: Mutex::new(stamp) }, options, generation))
    }

    /// Serves generation 1 from `fetched`, a security configuration read from EMR, with the role of
    /// its cluster's instance profile as the fallback role unless `options` names one. Fails when the
    /// document is invalid. [`refresh`](Self::refresh) reads it again (every `poll_interval` under
    /// [`run_until_signalled`](super::run_until_signalled); `None`: on `SIGHUP` only): a changed
    /// document, another security configuration for the cluster or another instance-profile role is a
    /// new generation; an AWS error keeps the served one.
    #[cfg(feature = "emr")]
    pub fn from_emr(
        fetched: EmrConfiguration,
        options: ResolverOptions,
        poll_interval: Option<Duration>,
    ) -> Result<Self, LoadError> {
        let generation = compile(Candidate::from_emr(&fetched), &options, 1)?;
        let origin = Origin::Emr { source: fetched, poll_interval, polling: tokio::sync::Mutex::new(()) };
        Ok(ConfigStore::new(origin, options, generation))
    }

    fn new(origin: Origin, options: ResolverOptions, generation: Generation) -> Self {
        ConfigStore {
            origin,
            options,
            current: ArcSwap::from_pointee(generation),
            last_failure: ArcSwapOption::empty(),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
        }
    }

    /// The generation being served. Hold it for the whole of a request.
    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// The configuration file; `None` for a configuration from EMR.
    pub fn path(&self) -> Option<&Path> {
        match &self.origin {
            Origin::File { path, .. } => Some(path),
            #[cfg(feature = "emr")]
            Origin::Emr { .. } => None,
        }
    }

    /// Where the served configuration was read: the file, or what EMR called it
    /// ([`Generation::source`]).
    pub fn describe(&self) -> String {
        self.current.load().source.clone()
    }

    /// How often the configuration is checked for changes: `file_watch` for a file, the poll interval
    /// for EMR; `None`: on `SIGHUP` only.
    pub(super) fn check_interval(&self, file_watch: Option<Duration>) -> Option<Duration> {
        match &self.origin {
            Origin::File { .. } => file_watch,
            #[cfg(feature = "emr")]
            Origin::Emr { poll_interval, .. } => *poll_interval,
        }
    }

    /// Reads the configuration again and serves it when it is valid and differs from the served one:
    /// [`reload`](Self::reload) for a file, a new read from EMR (then a compile on the blocking pool)
    /// for a configuration from EMR. Never blocks the async runtime.
    pub async fn refresh(self: &Arc<Self>) -> Result<ReloadOutcome, LoadError> {
        self.refresh_when(false).await
    }

    /// [`refresh`](Self::refresh); with `if_modified`, a file is read only when it changed on disk.
    pub(super) async fn refresh_when(self: &Arc<Self>, if_modified: bool) -> Result<ReloadOutcome, LoadError> {
        let failed = |e: tokio::task::JoinError| LoadError::Build {
            path: Escaped(&self.describe()).to_string(),
            message: format!("the reload task failed: {e}"),
        };
        match &self.origin {
            Origin::File { .. } => {
                let store = Arc::clone(self);
                let reload = move || if if_modified { store.reload_if_modified() } else { store.reload() };
                tokio::task::spawn_blocking(reload).await.map_err(failed)?
            }
            #[cfg(feature = "emr")]
            Origin::Emr { source, polling, .. } => {
                let _polling = polling.lock().await;
                let fetched = source.refresh().await;
                let store = Arc::clone(self);
                let publish = move || store.publish(fetched.as_ref().map(Candidate::from_emr).map_err(fetch_error));
                tokio::task::spawn_blocking(publish).await.map_err(failed)?
            }
        }
    }

    /// Reads the file again and serves it when it is valid and differs from the served one. An invalid
    /// file changes nothing but the recorded failure. Blocks on file I/O and compilation: call it from a
    /// blocking context. For a configuration from EMR, use [`refresh`](Self::refresh): this reads
    /// nothing and says so.
    pub fn reload(&self) -> Result<ReloadOutcome, LoadError> {
        match &self.origin {
            Origin::File { path, check, stamp } => {
                let mut stamp = lock(stamp);
                *stamp = FileStamp::of(path);
                self.publish(read(path, *check))
            }
            #[cfg(feature = "emr")]
            Origin::Emr { .. } => Err(LoadError::Fetch {
                code: "not-a-file",
                message: format!("`{}` is read from EMR, not from a file", Escaped(&self.describe())),
            }),
        }
    }

    /// Like [`reload`](Self::reload), but only when the file's size, times or inode changed since it was
    /// last read; otherwise [`ReloadOutcome::NotModified`]. A file that disappears fails once, not on
    /// every call.
    pub fn reload_if_modified(&self) -> Result<ReloadOutcome, LoadError> {
        let (path, check, stamp) = match &self.origin {
            Origin::File { path, check, stamp } => (path, check, stamp),
            #[cfg(feature = "emr")]
            Origin::Emr { .. } => return self.reload(),
        };
        let mut stamp = lock(stamp);
        let now = FileStamp::of(path);
        if now == *stamp {
            return Ok(ReloadOutcome::NotModified);
        }
        *stamp = now;
        self.publish(read(path, *check))
    }

    /// Publishes what a reload read (under the reload lock of its origin, held by the caller): the
    /// served generation stays when the document is the served one; a new valid document becomes the
    /// next generation; a failure is recorded and keeps the served generation.
    fn publish(&self, read: Result<Candidate, LoadError>) -> Result<ReloadOutcome, LoadError> {
        let outcome = read.and_then(|candidate| {
            let current = self.current.load();
            if candidate.fingerprint() == current.fingerprint {
                return Ok(ReloadOutcome::Unchanged);
            }
            let next = compile(candidate, &self.options, current.number + 1)?;
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
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Candidate {
    #[cfg(feature = "emr")]
    fn from_emr(fetched: &EmrConfiguration) -> Candidate {
        Candidate {
            bytes: fetched.document().to_vec(),
            source: fetched.label(),
            fallback_role: fetched.instance_profile_role().cloned(),
        }
    }

    /// What tells two documents apart: their bytes, their names and their fallback roles.
    fn fingerprint(&self) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (&self.bytes, &self.source, self.fallback_role.as_ref().map(RoleArn::as_str)).hash(&mut hasher);
        hasher.finish()
    }
}

/// An AWS failure as a [`LoadError`], with a code for `/readyz`.
#[cfg(feature = "emr")]
fn fetch_error(error: &SourceError) -> LoadError {
    let code = match error.kind {
        ErrorKind::AccessDenied => "aws-access-denied",
        ErrorKind::Throttling => "aws-throttled",
        ErrorKind::Timeout => "aws-timeout",
        ErrorKind::Connection => "aws-unreachable",
        ErrorKind::ServerError => "aws-server-error",
        ErrorKind::InvalidRequest => "aws-invalid-request",
        ErrorKind::BaseCredentials => "aws-base-credentials",
        ErrorKind::Other => "aws-failed",
    };
    LoadError::Fetch { code, message: Escaped(&error.to_string()).to_string() }
}

/// Reads the trusted file, within the document size limit.
fn read(path: &Path, check: FileCheck) -> Result<Candidate, LoadError> {
    let file = open_trusted(path, FileKind::Configuration, check)?;
    let bytes = read_document(file)
        .map_err(|e| LoadError::File(FileError::Unreadable { path: shown(path), message: e.to_string() }))?;
    Ok(Candidate { bytes, source: path.to_string_lossy().into_owned(), fallback_role: None })
}

/// Compiles `candidate` with `options` (its fallback role unless `options` names one) into generation
/// `number`.
fn compile(candidate: Candidate, options: &ResolverOptions, number: u64) -> Result<Generation, LoadError> {
    let fingerprint = candidate.fingerprint();
    let Candidate { bytes, source, fallback_role } = candidate;
    let name = Escaped(&source).to_string();
    let options = match (options.fallback_role(), fallback_role) {
        (None, Some(role)) => options.clone().with_fallback_role(Some(role)),
        _ => options.clone(),
    };
    let bytes = bytes.as_slice();
    let config = SecurityConfiguration::from_slice_with(bytes, &options).map_err(|diagnostics| LoadError::Invalid {
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
    let resolver = ResolverBuilder::with_options(options)
        .build(&config)
        .map_err(|e| LoadError::Build { path: name, message: e.to_string() })?;
    Ok(Generation { number, resolver, loaded_at: SystemTime::now(), source, fingerprint })
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

    fn candidate(text: &str, source: &str, fallback_role: Option<&str>) -> Result<Candidate, LoadError> {
        let fallback_role = fallback_role.map(|r| RoleArn::parse(r).unwrap());
        Ok(Candidate { bytes: text.as_bytes().to_vec(), source: source.to_owned(), fallback_role })
    }

    /// What a document from elsewhere (EMR) goes through: the same document under the same name and
    /// fallback role changes nothing; another name (a cluster moved to another security
    /// configuration) or another fallback role is a new generation, as is another document; a failure
    /// keeps the generation until a read succeeds.
    #[test]
    fn published_documents_are_new_generations_only_when_something_differs() {
        let file = std::env::temp_dir().join(format!("emrfs-rolemap-publish-{}.json", std::process::id()));
        std::fs::write(&file, ONE).unwrap();
        let store = ConfigStore::open(&file, ResolverOptions::default(), FileCheck::WarnOnly).unwrap();
        std::fs::remove_file(&file).unwrap();
        let cluster_role = "arn:aws:iam::123456789012:role/EMR_EC2_Lake";
        let outcomes = [
            store.publish(candidate(ONE, "security configuration a (from EMR)", Some(cluster_role))),
            store.publish(candidate(ONE, "security configuration a (from EMR)", Some(cluster_role))),
            store.publish(candidate(ONE, "security configuration b (from EMR)", Some(cluster_role))),
            store.publish(candidate(ONE, "security configuration b (from EMR)", None)),
            store.publish(candidate(TWO, "security configuration b (from EMR)", None)),
        ];
        let generations: Vec<_> = outcomes.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            generations,
            [
                ReloadOutcome::Reloaded { generation: 2 },
                ReloadOutcome::Unchanged,
                ReloadOutcome::Reloaded { generation: 3 },
                ReloadOutcome::Reloaded { generation: 4 },
                ReloadOutcome::Reloaded { generation: 5 },
            ]
        );
        assert_eq!(store.describe(), "security configuration b (from EMR)");
        assert!(role(&store).ends_with("/two"));

        let refused = LoadError::Fetch { code: "aws-access-denied", message: "EMR refused".into() };
        assert_eq!(store.publish(Err(refused)).unwrap_err().code(), "aws-access-denied");
        assert_eq!(store.current().number(), 5);
        assert_eq!(store.last_failure().map(|f| f.error.code()), Some("aws-access-denied"));
        assert_eq!(
            store.publish(candidate(TWO, "security configuration b (from EMR)", None)).unwrap(),
            ReloadOutcome::Unchanged
        );
        assert!(store.last_failure().is_none());
        assert_eq!((store.reloads(), store.reload_failures()), (4, 1));
    }

    #[test]
    fn a_cluster_role_is_the_fallback_unless_the_options_name_one() {
        let fallback = |options: ResolverOptions| {
            let candidate = candidate(ONE, "emr", Some("arn:aws:iam::123456789012:role/cluster")).unwrap();
            let generation = compile(candidate, &options, 1).unwrap();
            let resolution = generation.resolver().resolve(&crate::Request::new().user("bob"));
            resolution.role().map(|r| r.name().to_owned())
        };
        assert_eq!(fallback(ResolverOptions::default()).as_deref(), Some("cluster"));
        let chosen = RoleArn::parse("arn:aws:iam::123456789012:role/chosen").unwrap();
        assert_eq!(fallback(ResolverOptions::default().with_fallback_role(Some(chosen))).as_deref(), Some("chosen"));
    }
}
