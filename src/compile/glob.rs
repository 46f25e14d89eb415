//! Glob identifiers (SEMANTICS §4), shared by the compiled and the reference resolver.
//!
//! A `User` or `Group` glob must match the whole name. A `Prefix` glob is written against
//! `BUCKET/KEY` (a bare `s3://bucket` is `bucket/`) and matches when it matches some prefix of the
//! request's `BUCKET/KEY`: it compiles to the glob followed by `*`. In segment mode the matched prefix
//! must end where a key segment ends: the glob followed by `*` when it ends in `/`, otherwise the glob
//! itself or the glob followed by `/*`. `*` and `?` match any character, `/` included; `\` escapes.

use globset::{Glob, GlobBuilder};

use super::PrefixMatch;
use crate::config::IdentifierType;
use crate::s3path::S3Path;

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
