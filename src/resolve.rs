//! Requests and their answers: [`Request`], [`Resolution`] and the [`Explanation`] trace.
//!
//! A resolution says which role serves a request and why: the deciding mapping's index, identifier
//! type and the identifier that matched, or the fallback to the instance-profile role. An explanation
//! adds every mapping's verdict in order, including the later ones that matched but were shadowed.

use std::fmt;

use serde::Serialize;
use serde::ser::SerializeStruct;

use globset::Candidate;

use crate::config::{IdentifierType, RoleArn, RoleMapping};
use crate::diagnostics::Escaped;
use crate::matching::{CompiledGlob, PrefixMatch, prefix_miss, with_bucket_slash_key};
use crate::s3path::{S3Path, S3PathError};

/// One S3 request as EMRFS sees it: the Hadoop user, the user's groups, and the S3 location.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Request<'a> {
    /// The Hadoop user name, if known.
    pub user: Option<&'a str>,
    /// The user's Hadoop groups (may be empty).
    pub groups: &'a [String],
    /// The S3 location, if the request has one.
    pub path: Option<S3Path<'a>>,
}

impl<'a> Request<'a> {
    /// A request with no user, no groups and no path; it resolves to the fallback.
    pub fn new() -> Self {
        Request::default()
    }

    /// A request from its parts as text; fails when `path` is not an S3 location.
    pub fn parse(user: Option<&'a str>, groups: &'a [String], path: Option<&'a str>) -> Result<Self, S3PathError> {
        Ok(Request { user, groups, path: path.map(S3Path::parse).transpose()? })
    }

    /// Sets the Hadoop user.
    pub fn user(mut self, user: &'a str) -> Self {
        self.user = Some(user);
        self
    }

    /// Sets the user's groups.
    pub fn groups(mut self, groups: &'a [String]) -> Self {
        self.groups = groups;
        self
    }

    /// Sets the S3 location.
    pub fn path(mut self, path: S3Path<'a>) -> Self {
        self.path = Some(path);
        self
    }

    /// SEMANTICS §3 and §4 for one identifier of `kind`, as written: whether it matches this request in
    /// prefix mode `mode`. `glob` is its compiled glob, when globs are on and it is one.
    pub(crate) fn is_matched_by(
        &self,
        kind: IdentifierType,
        identifier: &str,
        glob: Option<&CompiledGlob>,
        mode: PrefixMatch,
    ) -> bool {
        let name_matches = |name: &str| match glob {
            Some(glob) => glob.is_match(&Candidate::new(name)),
            None => identifier == name,
        };
        match kind {
            IdentifierType::User => self.user.is_some_and(name_matches),
            IdentifierType::Group => self.groups.iter().any(|group| name_matches(group)),
            IdentifierType::Prefix => self.path.as_ref().is_some_and(|path| match glob {
                Some(glob) => with_bucket_slash_key(path, |s| glob.is_match(&Candidate::new(s))),
                None => S3Path::parse(identifier).is_ok_and(|prefix| prefix_miss(&prefix, path, mode).is_none()),
            }),
        }
    }
}

/// A request as JSON, `{"user": ..., "groups": [...], "path": ...}`, every field optional: the format
/// of `resolve --requests` and `bench --requests` lines ([`RequestLines`]) and of server request bodies,
/// all read by [`from_json`](Self::from_json).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RequestSpec {
    /// The Hadoop user.
    pub user: Option<String>,
    /// The user's groups.
    pub groups: Vec<String>,
    /// The S3 location, as text.
    pub path: Option<String>,
}

/// The fields of a [`RequestSpec`] as serde reads them; only [`RequestSpec::from_json`] uses it, so that
/// nothing reads a request any other way.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestFields {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    path: Option<String>,
}

impl RequestSpec {
    /// Reads a request from JSON text. Only an object is accepted: `["alice"]` is not a request, though
    /// serde would read the fields from an array.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(r#"expected a JSON object such as {"user": "alice", "path": "s3://bucket/key"}"#.into());
        }
        let RequestFields { user, groups, path } = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        Ok(RequestSpec { user, groups, path })
    }

    /// The user `user` (or, without one, the user this process runs as) with its groups from the
    /// operating system's databases (NSS), primary group first, as the server looks up its Unix-socket
    /// callers; no path. Fails, naming the user, when the database has no such user or the lookup fails,
    /// and everywhere but on Unix. The lookup may block for as long as the databases take.
    pub fn from_os(user: Option<&str>) -> Result<Self, String> {
        #[cfg(unix)]
        {
            let (found, who) = match user {
                Some(name) => (crate::os::identity_of_name(name), format!("user `{}`", Escaped(name))),
                None => {
                    let uid = crate::os::current_uid();
                    (crate::os::identity_of_uid(uid), format!("uid {uid} (this process's user)"))
                }
            };
            match found {
                Ok(Some(identity)) => {
                    Ok(RequestSpec { user: Some(identity.user), groups: identity.groups, path: None })
                }
                Ok(None) => Err(format!("the operating system's user database has no {who}")),
                Err(e) => Err(format!("looking up the groups of {who} failed: {}", e.0)),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = user;
            Err("looking up groups in the operating system's databases needs Unix".to_owned())
        }
    }

    /// The request these fields describe; fails when `path` is not an S3 location.
    pub fn request(&self) -> Result<Request<'_>, S3PathError> {
        Request::parse(self.user.as_deref(), &self.groups, self.path.as_deref())
    }
}

/// The requests of a JSON Lines file (`resolve --requests`, `bench --requests`): each non-blank line
/// read by [`RequestSpec::from_json`], with its line number from 1. A line that cannot be used — longer
/// than [`RequestLines::MAX_LINE_BYTES`], not UTF-8, not a request — is an error message for that line,
/// and the lines after it are read as usual. Lines are read in bounded chunks: never more than the limit
/// of a line is held, however long it is or if it never ends.
///
/// ```
/// use emrfs_rolemap::RequestLines;
/// let long = "x".repeat(RequestLines::<&[u8]>::MAX_LINE_BYTES + 1);
/// let input = format!("{{\"user\": \"alice\"}}\n\n{long}\n[\"bob\"]\n");
/// let lines: Vec<_> = RequestLines::new(input.as_bytes()).collect::<Result<_, _>>()?;
/// assert_eq!(lines[0].0, 1);
/// assert_eq!(lines[0].1.as_ref().unwrap().user.as_deref(), Some("alice"));
/// assert!(lines[1].1.as_ref().unwrap_err().contains("over 1 MiB"), "line 3");
/// assert_eq!(lines[2].0, 4);
/// assert!(lines[2].1.is_err(), "an array is not a request");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct RequestLines<R> {
    reader: R,
    line: Vec<u8>,
    number: usize,
}

impl<R> RequestLines<R> {
    /// The longest line accepted, in bytes (1 MiB, its `\n` not counted); a request is a few hundred
    /// bytes, and S3 keys are at most 1024.
    pub const MAX_LINE_BYTES: usize = 1024 * 1024;
}

impl<R: std::io::BufRead> RequestLines<R> {
    /// The requests of the lines read from `reader`.
    pub fn new(reader: R) -> Self {
        RequestLines { reader, line: Vec::new(), number: 0 }
    }

    /// Reads the next line into `self.line`: `Ok(None)` at the end of the input, `Ok(Some(false))` for a
    /// line over the limit, which is read to its end and dropped.
    fn read_line(&mut self) -> std::io::Result<Option<bool>> {
        self.line.clear();
        let (mut read_any, mut too_long) = (false, false);
        loop {
            let available = match self.reader.fill_buf() {
                Ok(available) => available,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                break;
            }
            read_any = true;
            let end = available.iter().position(|&b| b == b'\n');
            let part = &available[..end.unwrap_or(available.len())];
            let needed = self.line.len() + part.len();
            if !too_long && needed > Self::MAX_LINE_BYTES {
                too_long = true;
                self.line.clear();
            } else if !too_long {
                if needed > self.line.capacity() {
                    // Grow as `Vec` does, but never past the limit.
                    let target = needed.max(2 * self.line.capacity()).min(Self::MAX_LINE_BYTES);
                    self.line.reserve_exact(target - self.line.len());
                }
                self.line.extend_from_slice(part);
            }
            let used = part.len() + usize::from(end.is_some());
            self.reader.consume(used);
            if end.is_some() {
                break;
            }
        }
        self.number += usize::from(read_any);
        Ok(read_any.then_some(!too_long))
    }
}

impl<R: std::io::BufRead> Iterator for RequestLines<R> {
    /// A line's number and its request, or why the line is not one; `Err` only when reading fails.
    type Item = std::io::Result<(usize, Result<RequestSpec, String>)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let fits = match self.read_line() {
                Err(e) => return Some(Err(e)),
                Ok(None) => return None,
                Ok(Some(fits)) => fits,
            };
            let request = if !fits {
                Err(format!(
                    "the line is over 1 MiB ({} bytes), the longest request line accepted; a request is a few hundred bytes",
                    Self::MAX_LINE_BYTES
                ))
            } else {
                match std::str::from_utf8(&self.line) {
                    Err(e) => Err(format!("the line is not valid UTF-8 (byte {} of the line)", e.valid_up_to() + 1)),
                    Ok(text) if text.trim().is_empty() => continue,
                    Ok(text) => RequestSpec::from_json(text.as_bytes()),
                }
            };
            return Some(Ok((self.number, request)));
        }
    }
}

/// Whether a mapping decided the request or EMRFS fell back to the instance-profile role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Decision {
    /// A role mapping matched; its role is assumed through STS AssumeRole.
    Mapping,
    /// No mapping matched; the cluster's EC2 instance-profile role serves the request.
    Fallback,
}

impl Decision {
    /// `mapping` or `fallback`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Decision::Mapping => "mapping",
            Decision::Fallback => "fallback",
        }
    }
}

/// The mapping that decided a request, and the identifier that made it match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MappingMatch<'c> {
    /// The mapping's 0-based position in `RoleMappings`.
    pub index: usize,
    /// The mapping's role.
    pub role: &'c RoleArn,
    /// The mapping's identifier type.
    pub identifier_type: IdentifierType,
    /// The first of the mapping's identifiers (in the order written) that matches the request.
    pub identifier: &'c str,
}

impl<'c> MappingMatch<'c> {
    /// Mapping `index` deciding by its identifier `identifier`.
    pub(crate) fn of(index: usize, mapping: &'c RoleMapping, identifier: &'c str) -> Self {
        MappingMatch { index, role: mapping.role(), identifier_type: mapping.identifier_type(), identifier }
    }
}

/// Which role serves a request (SEMANTICS §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resolution<'c> {
    /// The first matching mapping decides.
    Mapping(MappingMatch<'c>),
    /// No mapping matched; `role` is the fallback role ARN when the caller supplied one for display.
    Fallback {
        /// The configured fallback role, if any.
        role: Option<&'c RoleArn>,
    },
}

impl<'c> Resolution<'c> {
    /// `mapping` or `fallback`, as the JSON form and the logs write it.
    pub fn decision(&self) -> &'static str {
        self.decision_kind().as_str()
    }

    pub(crate) fn decision_kind(&self) -> Decision {
        match self {
            Resolution::Mapping(_) => Decision::Mapping,
            Resolution::Fallback { .. } => Decision::Fallback,
        }
    }

    /// The role that serves the request: the mapping's role, or the fallback role when known.
    pub fn role(&self) -> Option<&'c RoleArn> {
        match self {
            Resolution::Mapping(m) => Some(m.role),
            Resolution::Fallback { role } => *role,
        }
    }

    /// The deciding mapping, if any.
    pub fn mapping(&self) -> Option<&MappingMatch<'c>> {
        match self {
            Resolution::Mapping(m) => Some(m),
            Resolution::Fallback { .. } => None,
        }
    }

    /// The deciding mapping's index, if any.
    pub fn mapping_index(&self) -> Option<usize> {
        self.mapping().map(|m| m.index)
    }
}

impl Serialize for Resolution<'_> {
    /// The JSON form used by the CLI: `decision`, `role`, `mapping_index`, `identifier_type`, `identifier`.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mapping = self.mapping();
        let mut s = serializer.serialize_struct("Resolution", 5)?;
        s.serialize_field("decision", &self.decision())?;
        s.serialize_field("role", &self.role())?;
        s.serialize_field("mapping_index", &mapping.map(|m| m.index))?;
        s.serialize_field("identifier_type", &mapping.map(|m| m.identifier_type))?;
        s.serialize_field("identifier", &mapping.map(|m| m.identifier))?;
        s.end()
    }
}

impl fmt::Display for Resolution<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resolution::Mapping(m) => {
                write!(f, "mapping {} ({} `{}`): {}", m.index, m.identifier_type, Escaped(m.identifier), m.role)
            }
            Resolution::Fallback { role: Some(role) } => write!(f, "fallback: {role}"),
            Resolution::Fallback { role: None } => write!(f, "fallback: the instance-profile role"),
        }
    }
}

/// What one mapping made of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<'c> {
    /// The first matching mapping: it decides.
    Decisive {
        /// The first matching identifier.
        identifier: &'c str,
    },
    /// It matches too, but an earlier mapping decides.
    Shadowed {
        /// The first matching identifier.
        identifier: &'c str,
    },
    /// None of its identifiers matches.
    NoMatch {
        /// Why, in words (`user `bob` is not listed`).
        reason: String,
    },
}

/// One mapping's line in an explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingTrace<'c> {
    /// The mapping's index.
    pub index: usize,
    /// Its JSON pointer in the configuration.
    pub pointer: String,
    /// Its role.
    pub role: &'c RoleArn,
    /// Its identifier type.
    pub identifier_type: IdentifierType,
    /// What it made of the request.
    pub verdict: Verdict<'c>,
}

impl Serialize for MappingTrace<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (status, identifier, reason) = match &self.verdict {
            Verdict::Decisive { identifier } => ("decisive", Some(*identifier), None),
            Verdict::Shadowed { identifier } => ("shadowed", Some(*identifier), None),
            Verdict::NoMatch { reason } => ("no-match", None, Some(reason.as_str())),
        };
        let mut s = serializer.serialize_struct("MappingTrace", 8)?;
        s.serialize_field("index", &self.index)?;
        s.serialize_field("pointer", &self.pointer)?;
        s.serialize_field("role", self.role)?;
        s.serialize_field("identifier_type", &self.identifier_type)?;
        s.serialize_field("matched", &identifier.is_some())?;
        s.serialize_field("status", status)?;
        s.serialize_field("identifier", &identifier)?;
        s.serialize_field("reason", &reason)?;
        s.end()
    }
}

/// Every mapping's verdict on one request, in order, and the resolution they add up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation<'c> {
    /// The answer.
    pub resolution: Resolution<'c>,
    /// One entry per mapping, in order.
    pub mappings: Vec<MappingTrace<'c>>,
}

impl Explanation<'_> {
    /// The mappings that matched after the decisive one and so never apply to this request.
    pub fn shadowed(&self) -> impl Iterator<Item = &MappingTrace<'_>> {
        self.mappings.iter().filter(|m| matches!(m.verdict, Verdict::Shadowed { .. }))
    }
}

impl fmt::Display for Explanation<'_> {
    /// A table: one line per mapping (verdict, index, type, role, detail), then the resolution; text
    /// from the configuration and the request is shown through [`Escaped`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role_width = self.mappings.iter().map(|m| m.role.as_str().len()).max().unwrap_or(0);
        let index_width = self.mappings.len().saturating_sub(1).to_string().len();
        let decisive = self.resolution.mapping_index().unwrap_or(0);
        for m in &self.mappings {
            let (mark, detail) = match &m.verdict {
                Verdict::Decisive { identifier } => ("=> decisive", format!("matched `{}`", Escaped(identifier))),
                Verdict::Shadowed { identifier } => {
                    ("   shadowed", format!("matched `{}`, but mapping {decisive} decides first", Escaped(identifier)))
                }
                Verdict::NoMatch { reason } => ("   no match", Escaped(reason).to_string()),
            };
            writeln!(
                f,
                "{mark}  #{:<index_width$}  {:<6}  {:<role_width$}  {detail}",
                m.index,
                m.identifier_type.as_str(),
                m.role.as_str()
            )?;
        }
        write!(f, "resolution: {}", self.resolution)
    }
}

#[cfg(test)]
mod tests {
    use std::io::BufReader;

    use super::*;

    /// Every line of `input` read through a buffer of `capacity` bytes: its number and its length (the
    /// line is `{"path": "s3://b/xxx..."}`), or `None` when it was too long.
    fn read_all(input: &[u8], capacity: usize) -> Vec<(usize, Option<usize>)> {
        RequestLines::new(BufReader::with_capacity(capacity, input))
            .map(|line| {
                let (number, spec) = line.expect("reading a slice never fails");
                (number, spec.ok().map(|s| s.path.map_or(0, |p| p.len())))
            })
            .collect()
    }

    #[test]
    fn request_lines_accept_the_limit_and_skip_longer_lines_whatever_the_chunks() {
        type Lines<'a> = RequestLines<&'a [u8]>;
        // A request line of exactly the limit, and one byte more (a `\r` counts, only `\n` does not).
        let path = |len: usize| format!("s3://b/{}", "x".repeat(len - r#"{"path": "s3://b/"}"#.len()));
        let longest = format!(r#"{{"path": "{}"}}"#, path(Lines::MAX_LINE_BYTES));
        let input = format!("{longest}\r\n\n{longest}\n{{}}\r\ny{longest}");
        let path_len = path(Lines::MAX_LINE_BYTES).len();
        for capacity in [1, 7, 8192, 3 * Lines::MAX_LINE_BYTES] {
            assert_eq!(
                read_all(input.as_bytes(), capacity),
                [(1, None), (3, Some(path_len)), (4, Some(0)), (5, None)],
                "a buffer of {capacity} bytes (line 2 is blank)"
            );
        }
        assert_eq!(read_all(b"", 8), []);
        assert_eq!(read_all(b"\n", 8), []);
    }
}
