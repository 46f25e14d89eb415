//! S3 locations: `SCHEME://BUCKET/KEY` parsed once, without copying, into scheme, bucket and key.
//!
//! The rules are those of SEMANTICS §2: the scheme is `s3`, `s3a` or `s3n` in any ASCII case, the bucket
//! runs to the first `/` and must not be empty, and the key is everything after that `/`, taken
//! literally (no percent-decoding, no `.`/`..` or `//` normalisation: S3 keys are opaque).

use std::fmt;

/// The longest key S3 accepts, in bytes; longer keys are rejected rather than matched.
pub(crate) const MAX_KEY_BYTES: usize = 1024;

/// The URI scheme of an S3 location. All three name the same objects; matching ignores the scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Scheme {
    /// `s3://`, as EMRFS writes it.
    S3,
    /// `s3a://`, Hadoop's S3A connector.
    S3a,
    /// `s3n://`, Hadoop's old native connector.
    S3n,
}

impl Scheme {
    /// The scheme in lower case, without `://`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::S3 => "s3",
            Scheme::S3a => "s3a",
            Scheme::S3n => "s3n",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed S3 location that borrows the text it was parsed from; parsing never allocates.
///
/// ```
/// use emrfs_rolemap::S3Path;
/// let path = S3Path::parse("s3a://my-bucket/data/2024/part-0.parquet")?;
/// assert_eq!(path.bucket(), "my-bucket");
/// assert_eq!(path.key(), "data/2024/part-0.parquet");
/// # Ok::<(), emrfs_rolemap::S3PathError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct S3Path<'a> {
    scheme: Scheme,
    /// Everything after `://`: the bucket, then either nothing or `/` and the key.
    rest: &'a str,
    bucket_len: usize,
}

impl<'a> S3Path<'a> {
    /// The longest key accepted, in bytes: S3's own maximum.
    pub const MAX_KEY_BYTES: usize = MAX_KEY_BYTES;

    /// Parses `SCHEME://BUCKET[/KEY]`.
    ///
    /// Fails when the text has no `://`, when the scheme is not `s3`, `s3a` or `s3n` (in any ASCII
    /// case), or when the bucket is empty.
    pub fn parse(text: &'a str) -> Result<Self, S3PathError> {
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(S3PathError::MissingScheme);
        };
        let scheme = if scheme.eq_ignore_ascii_case("s3") {
            Scheme::S3
        } else if scheme.eq_ignore_ascii_case("s3a") {
            Scheme::S3a
        } else if scheme.eq_ignore_ascii_case("s3n") {
            Scheme::S3n
        } else {
            return Err(S3PathError::UnsupportedScheme);
        };
        let bucket_len = rest.find('/').unwrap_or(rest.len());
        if bucket_len == 0 {
            return Err(S3PathError::EmptyBucket);
        }
        if rest.len().saturating_sub(bucket_len + 1) > MAX_KEY_BYTES {
            return Err(S3PathError::KeyTooLong);
        }
        Ok(S3Path { scheme, rest, bucket_len })
    }

    /// The scheme as written, in lower case: `s3`, `s3a` or `s3n` (it never takes part in matching).
    pub fn scheme(&self) -> &'static str {
        self.scheme.as_str()
    }

    /// The bucket: everything between `://` and the first `/` after it.
    pub fn bucket(&self) -> &'a str {
        &self.rest[..self.bucket_len]
    }

    /// The key: everything after the first `/` that follows the bucket; empty for `s3://b` and `s3://b/`.
    pub fn key(&self) -> &'a str {
        self.rest.get(self.bucket_len + 1..).unwrap_or("")
    }

    /// The bucket's length in bytes, where the `/` of `BUCKET/KEY` is.
    pub(crate) fn bucket_len(&self) -> usize {
        self.bucket_len
    }

    /// `BUCKET/KEY` when the text has the `/` after the bucket, `None` for a bare `s3://bucket`.
    ///
    /// Glob identifiers match against `BUCKET/KEY`; a bare bucket stands for `BUCKET/`.
    pub(crate) fn bucket_slash_key(&self) -> Option<&'a str> {
        (self.rest.len() > self.bucket_len).then_some(self.rest)
    }
}

impl fmt::Display for S3Path<'_> {
    /// Writes the location in a canonical form, `SCHEME://BUCKET/KEY`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}/{}", self.scheme, self.bucket(), self.key())
    }
}

/// Why a text is not an S3 location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum S3PathError {
    /// No `://` separates a scheme from the rest.
    #[error("not an S3 URI: no `://` after a scheme")]
    MissingScheme,
    /// The scheme is not `s3`, `s3a` or `s3n`.
    #[error("unsupported scheme: expected `s3://`, `s3a://` or `s3n://`")]
    UnsupportedScheme,
    /// Nothing between `://` and the first `/`.
    #[error("the bucket is empty")]
    EmptyBucket,
    /// The key is longer than S3 allows.
    #[error("the key is longer than 1024 bytes, the most S3 allows")]
    KeyTooLong,
}

impl S3PathError {
    /// How to fix the path.
    pub fn help(self) -> &'static str {
        match self {
            S3PathError::MissingScheme => "write the location as `s3://bucket/key`",
            S3PathError::UnsupportedScheme => {
                "EMRFS reads `s3://`, `s3a://` and `s3n://` locations; other schemes are not S3"
            }
            S3PathError::EmptyBucket => "write the bucket right after `://`, as in `s3://bucket/key`",
            S3PathError::KeyTooLong => "S3 object keys are at most 1024 bytes of UTF-8; no object has this key",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_bucket_and_key_at_the_first_slash() {
        let cases = [
            ("s3://b", "b", ""),
            ("s3://b/", "b", ""),
            ("s3://b/k/", "b", "k/"),
            ("s3://b//k", "b", "/k"),
            ("S3A://b/a/../c%20", "b", "a/../c%20"),
            ("s3n://b.c-d/x", "b.c-d", "x"),
        ];
        for (text, bucket, key) in cases {
            let path = S3Path::parse(text).unwrap();
            assert_eq!((path.bucket(), path.key()), (bucket, key), "{text}");
        }
    }

    #[test]
    fn rejects_other_schemes_and_empty_buckets() {
        assert_eq!(S3Path::parse("bucket/key"), Err(S3PathError::MissingScheme));
        assert_eq!(S3Path::parse("hdfs://nn/x"), Err(S3PathError::UnsupportedScheme));
        assert_eq!(S3Path::parse("s3:///key"), Err(S3PathError::EmptyBucket));
        assert_eq!(S3Path::parse("s3://"), Err(S3PathError::EmptyBucket));
        let longest = format!("s3://b/{}", "k".repeat(MAX_KEY_BYTES));
        assert_eq!(S3Path::parse(&longest).map(|p| p.key().len()), Ok(MAX_KEY_BYTES));
        assert_eq!(S3Path::parse(&format!("{longest}k")), Err(S3PathError::KeyTooLong));
    }

    #[test]
    fn bucket_slash_key_is_absent_only_for_a_bare_bucket() {
        assert_eq!(S3Path::parse("s3://b").unwrap().bucket_slash_key(), None);
        assert_eq!(S3Path::parse("s3://b/").unwrap().bucket_slash_key(), Some("b/"));
        assert_eq!(S3Path::parse("s3://b/k").unwrap().bucket_slash_key(), Some("b/k"));
        assert_eq!(S3Path::parse("s3a://b/k").unwrap().to_string(), "s3a://b/k");
    }
}
