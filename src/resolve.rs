//! Requests and their answers: [`Request`], [`Resolution`] and the [`Explanation`] trace.
//!
//! A resolution says which role serves a request and why: the deciding mapping's index, identifier
//! type and the identifier that matched, or the fallback to the instance-profile role. An explanation
//! adds every mapping's verdict in order, including the later ones that matched but were shadowed.

use std::fmt;

use serde::Serialize;
use serde::ser::SerializeStruct;

use crate::config::{IdentifierType, RoleArn};
use crate::diagnostics::Escaped;
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
}

/// A request as JSON, `{"user": ..., "groups": [...], "path": ...}`, every field optional; the format
/// of `resolve --requests` lines and of server request bodies.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// The Hadoop user.
    #[serde(default)]
    pub user: Option<String>,
    /// The user's groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The S3 location, as text.
    #[serde(default)]
    pub path: Option<String>,
}

impl RequestSpec {
    /// Reads a request from JSON text. Only an object is accepted: serde would also take the fields as
    /// an array (`["alice"]`), which no client means.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(r#"expected a JSON object such as {"user": "alice", "path": "s3://bucket/key"}"#.into());
        }
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    /// The request these fields describe; fails when `path` is not an S3 location.
    pub fn request(&self) -> Result<Request<'_>, S3PathError> {
        Request::parse(self.user.as_deref(), &self.groups, self.path.as_deref())
    }
}

/// The longest line of a JSON Lines request file accepted, in bytes (1 MiB, its `\n` not counted);
/// a request is a few hundred bytes, and S3 keys are at most 1024.
pub const MAX_REQUEST_LINE_BYTES: usize = 1024 * 1024;

/// A line of a request file was longer than [`MAX_REQUEST_LINE_BYTES`]; it was read to its end and
/// dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the line is over 1 MiB ({MAX_REQUEST_LINE_BYTES} bytes), the longest request line accepted; a request is a few hundred bytes"
)]
pub struct LineTooLong;

/// The lines of a JSON Lines request file (`resolve --requests`, `bench --requests`), read in bounded
/// chunks: never more than [`MAX_REQUEST_LINE_BYTES`] of a line is held, however long it is or if it
/// never ends.
///
/// ```
/// use emrfs_rolemap::resolve::{LineTooLong, MAX_REQUEST_LINE_BYTES, RequestLine, RequestLines};
/// let long = "x".repeat(MAX_REQUEST_LINE_BYTES + 1);
/// let input = format!("{{\"user\": \"alice\"}}\n{long}\n{{}}");
/// let mut lines = RequestLines::new(input.as_bytes());
/// assert_eq!(lines.next_line()?, Some(RequestLine { number: 1, text: Ok(br#"{"user": "alice"}"#) }));
/// assert_eq!(lines.next_line()?, Some(RequestLine { number: 2, text: Err(LineTooLong) }));
/// assert_eq!(lines.next_line()?, Some(RequestLine { number: 3, text: Ok(b"{}") }));
/// assert_eq!(lines.next_line()?, None);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct RequestLines<R> {
    reader: R,
    line: Vec<u8>,
    number: usize,
}

impl<R: std::io::BufRead> RequestLines<R> {
    /// Lines read from `reader`.
    pub fn new(reader: R) -> Self {
        RequestLines { reader, line: Vec::new(), number: 0 }
    }

    /// The next line, or `None` at the end of the input; a line over the limit is read to its end and
    /// dropped, so that the next call returns the line after it. Fails only when reading fails.
    pub fn next_line(&mut self) -> std::io::Result<Option<RequestLine<'_>>> {
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
            if !too_long && needed > MAX_REQUEST_LINE_BYTES {
                too_long = true;
                self.line.clear();
            } else if !too_long {
                if needed > self.line.capacity() {
                    // Grow as `Vec` does, but never past the limit.
                    let target = needed.max(2 * self.line.capacity()).min(MAX_REQUEST_LINE_BYTES);
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
        if !read_any {
            return Ok(None);
        }
        self.number += 1;
        Ok(Some(RequestLine { number: self.number, text: if too_long { Err(LineTooLong) } else { Ok(&self.line) } }))
    }
}

/// One line of a request file, as [`RequestLines`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLine<'a> {
    /// The line's number, from 1 (blank lines count).
    pub number: usize,
    /// The line without its `\n` (a `\r` before it stays: JSON reads it as white space), or
    /// [`LineTooLong`].
    pub text: Result<&'a [u8], LineTooLong>,
}

/// Whether a mapping decided the request or EMRFS fell back to the instance-profile role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// A role mapping matched; its role is assumed through STS AssumeRole.
    Mapping,
    /// No mapping matched; the cluster's EC2 instance-profile role serves the request.
    Fallback,
}

impl Decision {
    /// `mapping` or `fallback`.
    pub fn as_str(self) -> &'static str {
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
    /// Mapping or fallback.
    pub fn decision(&self) -> Decision {
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

    /// Every line of `input` read through a buffer of `capacity` bytes: its number and text, or `None`
    /// when it was too long.
    fn read_all(input: &[u8], capacity: usize) -> Vec<(usize, Option<Vec<u8>>)> {
        let mut lines = RequestLines::new(BufReader::with_capacity(capacity, input));
        let mut out = Vec::new();
        while let Some(line) = lines.next_line().expect("reading a slice never fails") {
            out.push((line.number, line.text.ok().map(<[u8]>::to_vec)));
        }
        out
    }

    #[test]
    fn request_lines_accept_the_limit_and_skip_longer_lines_whatever_the_chunks() {
        let longest = "x".repeat(MAX_REQUEST_LINE_BYTES);
        // Over the limit: by one byte (a `\r` counts, only `\n` does not), and at the end of the input.
        let input = format!("{longest}\r\n\n{longest}\n{{}}\r\ny{longest}");
        for capacity in [1, 7, 8192, 3 * MAX_REQUEST_LINE_BYTES] {
            assert_eq!(
                read_all(input.as_bytes(), capacity),
                [
                    (1, None),
                    (2, Some(Vec::new())),
                    (3, Some(longest.clone().into_bytes())),
                    (4, Some(b"{}\r".to_vec())),
                    (5, None)
                ],
                "a buffer of {capacity} bytes"
            );
        }
        assert_eq!(read_all(b"", 8), []);
        assert_eq!(read_all(b"\n", 8), [(1, Some(Vec::new()))]);
    }
}
