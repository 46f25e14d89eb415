//! The matching vocabulary (SEMANTICS §3 and §4): the kinds of identifiers, how a literal prefix
//! matches a path in either [`PrefixMatch`] mode, and what glob identifiers mean. Validation, the lints,
//! the compiled resolver, explanations and the reference resolver all take these rules from here.
//!
//! A `User` or `Group` glob must match the whole name. A `Prefix` glob is written against
//! `BUCKET/KEY` (a bare `s3://bucket` is `bucket/`) and matches when it matches some prefix of the
//! request's `BUCKET/KEY`: it compiles to the glob followed by `*`. In segment mode the matched prefix
//! must end where a key segment ends: the glob followed by `*` when it ends in `/`, otherwise the glob
//! itself or the glob followed by `/*`. `*` and `?` match any character, `/` included; `\` escapes.

use std::fmt;

use globset::{Glob, GlobBuilder};
use serde::Serialize;

use crate::s3path::S3Path;

/// The kind of identifiers a role mapping lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub enum IdentifierType {
    /// Hadoop user names, matched exactly against the request's user.
    User,
    /// Hadoop group names, matched exactly against each of the request's groups.
    Group,
    /// S3 locations `s3://bucket[/key-prefix]`, matched against the request's path.
    Prefix,
}

impl IdentifierType {
    /// The spelling used in security configurations: `User`, `Group` or `Prefix`.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentifierType::User => "User",
            IdentifierType::Group => "Group",
            IdentifierType::Prefix => "Prefix",
        }
    }
}

impl fmt::Display for IdentifierType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a literal `Prefix` identifier matches a key (SEMANTICS §3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PrefixMatch {
    /// Plain string prefix, as EMRFS does: `s3://b/abc` matches `s3://b/abcdef`.
    #[default]
    String,
    /// Whole key segments only: `s3://b/abc` matches `abc` and `abc/...`, not `abcdef`.
    Segment,
}

/// Why a literal `Prefix` identifier does not match a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrefixMiss {
    /// The buckets differ.
    Bucket,
    /// The key does not start with the identifier's key.
    Key,
    /// Segment mode: the key starts with the identifier's key, but not at a `/` boundary.
    Boundary,
}

/// SEMANTICS §3 for a literal prefix: `None` when `prefix` matches `path` in `mode`, else why not.
pub(crate) fn prefix_miss(prefix: &S3Path<'_>, path: &S3Path<'_>, mode: PrefixMatch) -> Option<PrefixMiss> {
    let (k, key) = (prefix.key(), path.key());
    if prefix.bucket() != path.bucket() {
        Some(PrefixMiss::Bucket)
    } else if !key.starts_with(k) {
        Some(PrefixMiss::Key)
    } else if mode == PrefixMatch::Segment
        && !(k.is_empty() || key == k || k.ends_with('/') || key[k.len()..].starts_with('/'))
    {
        Some(PrefixMiss::Boundary)
    } else {
        None
    }
}

/// A glob identifier compiled for one [`PrefixMatch`] mode: the globs whose union is its meaning
/// ([`compile`]), and their matchers. Compiled once, when the configuration is validated.
#[derive(Debug, Clone)]
pub(crate) struct CompiledGlob {
    globs: Vec<Glob>,
    matchers: Vec<globset::GlobMatcher>,
}

impl PartialEq for CompiledGlob {
    /// The same globs (the matchers follow from them).
    fn eq(&self, other: &Self) -> bool {
        self.globs == other.globs
    }
}

impl Eq for CompiledGlob {}

impl CompiledGlob {
    /// Compiles `identifier` of `kind` for `mode`; fails when it is not a valid glob.
    pub(crate) fn new(identifier: &str, kind: IdentifierType, mode: PrefixMatch) -> Result<Self, globset::Error> {
        let globs = compile(identifier, kind, mode)?;
        let matchers = globs.iter().map(Glob::compile_matcher).collect();
        Ok(CompiledGlob { globs, matchers })
    }

    /// The globs, for a set that tests many at once.
    pub(crate) fn globs(&self) -> &[Glob] {
        &self.globs
    }

    /// Whether it matches `candidate`: a name, or for a `Prefix` identifier the request's `BUCKET/KEY`.
    pub(crate) fn is_match(&self, candidate: &globset::Candidate<'_>) -> bool {
        self.matchers.iter().any(|m| m.is_match_candidate(candidate))
    }
}

/// The characters that make an identifier a glob when globs are enabled.
pub(crate) const GLOB_CHARS: [char; 4] = ['*', '?', '[', '{'];

/// Whether `identifier` holds glob syntax.
pub(crate) fn is_glob(identifier: &str) -> bool {
    identifier.contains(GLOB_CHARS)
}

/// The globs whose union is the identifier's meaning; fails when the identifier is not a valid glob.
pub(crate) fn compile(identifier: &str, kind: IdentifierType, mode: PrefixMatch) -> Result<Vec<Glob>, globset::Error> {
    let build = |pattern: &str| GlobBuilder::new(pattern).literal_separator(false).backslash_escape(true).build();
    let whole = |pattern: &str| match kind {
        IdentifierType::Prefix => bucket_slash_key_pattern(pattern),
        IdentifierType::User | IdentifierType::Group => pattern.to_owned(),
    };
    let pattern = whole(identifier);
    let exact = build(&pattern)?;
    match (kind, mode) {
        (IdentifierType::User | IdentifierType::Group, _) => Ok(vec![exact]),
        (IdentifierType::Prefix, PrefixMatch::Segment) if !pattern.ends_with('/') => {
            Ok(vec![exact, build(&format!("{pattern}/*"))?])
        }
        (IdentifierType::Prefix, _) => Ok(vec![build(&format!("{pattern}*"))?]),
    }
}

/// `BUCKET/KEY` of a prefix identifier (validated to parse), `bucket/` for a bare bucket.
pub(crate) fn bucket_slash_key_pattern(identifier: &str) -> String {
    match S3Path::parse(identifier) {
        Ok(path) => match path.bucket_slash_key() {
            Some(text) => text.to_owned(),
            None => format!("{}/", path.bucket()),
        },
        Err(_) => identifier.to_owned(),
    }
}

/// Calls `f` with the request's `BUCKET/KEY` (`bucket/` for a bare bucket) without allocating for any
/// bucket of up to 255 bytes.
pub(crate) fn with_bucket_slash_key<R>(path: &S3Path<'_>, f: impl FnOnce(&str) -> R) -> R {
    if let Some(text) = path.bucket_slash_key() {
        return f(text);
    }
    let bucket = path.bucket();
    let mut buffer = [0u8; 256];
    if bucket.len() < buffer.len() {
        buffer[..bucket.len()].copy_from_slice(bucket.as_bytes());
        buffer[bucket.len()] = b'/';
        // The bytes are a `str` followed by an ASCII `/`.
        match std::str::from_utf8(&buffer[..=bucket.len()]) {
            Ok(text) => f(text),
            Err(_) => f(&format!("{bucket}/")),
        }
    } else {
        f(&format!("{bucket}/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(identifier: &str, kind: IdentifierType, mode: PrefixMatch, candidate: &str) -> bool {
        compile(identifier, kind, mode).unwrap().iter().any(|g| g.compile_matcher().is_match(candidate))
    }

    #[test]
    fn prefix_globs_match_a_prefix_of_bucket_slash_key() {
        let p = IdentifierType::Prefix;
        assert!(matches("s3://logs-*/app/", p, PrefixMatch::String, "logs-eu/app/2024/x"));
        assert!(!matches("s3://logs-*/app/", p, PrefixMatch::String, "logs-eu/apps/x"));
        assert!(matches("s3://ba?", p, PrefixMatch::String, "bar/x"));
        assert!(!matches("s3://ba?", p, PrefixMatch::String, "barn/x"), "a bare bucket glob ends at the bucket");
        assert!(matches("s3://b/a?c", p, PrefixMatch::String, "b/abcdef"));
        assert!(!matches("s3://b/a?c", p, PrefixMatch::Segment, "b/abcdef"));
        assert!(matches("s3://b/a?c", p, PrefixMatch::Segment, "b/abc"));
        assert!(matches("s3://b/a?c", p, PrefixMatch::Segment, "b/abc/def"));
    }

    #[test]
    fn name_globs_match_whole_names() {
        assert!(matches("team-*", IdentifierType::Group, PrefixMatch::String, "team-a"));
        assert!(!matches("team-?", IdentifierType::Group, PrefixMatch::String, "team-ab"));
        assert!(compile("[a", IdentifierType::User, PrefixMatch::String).is_err());
    }

    #[test]
    fn bare_buckets_read_as_bucket_slash() {
        let path = S3Path::parse("s3://bucket").unwrap();
        assert_eq!(with_bucket_slash_key(&path, str::to_owned), "bucket/");
        let long = format!("s3://{}", "b".repeat(300));
        let path = S3Path::parse(&long).unwrap();
        assert_eq!(with_bucket_slash_key(&path, str::len), 301);
    }
}
