//! Role session names: a template such as `emrfs-{user}` rendered into a name STS accepts.
//!
//! STS wants 2 to 64 characters of `A-Za-z0-9+=,.@_-`. A rendered name that already fits is used as
//! is. Otherwise every other character becomes `_`, the name is cut to 55 characters, and `-` plus 8
//! hexadecimal digits of a hash of the unaltered name are appended, so two users whose names rewrite
//! alike still get different sessions. Rendering happens on every proxied request, so it writes into a
//! fixed 64-byte buffer and never allocates.

use std::fmt;

use super::error::SettingsError;
use crate::config::arn::is_iam_name_char;
use crate::resolve::MappingMatch;

/// The longest role session name STS accepts.
const MAX_LEN: usize = 64;
/// How much of a rewritten name is kept before the hash suffix (`-` and 8 hex digits).
const KEPT_WHEN_REWRITTEN: usize = MAX_LEN - 9;

/// A role session name that STS accepts: 2 to 64 characters of `A-Za-z0-9+=,.@_-`. `Copy`, no heap.
#[derive(Clone, Copy)]
pub(crate) struct SessionName {
    bytes: [u8; MAX_LEN],
    len: u8,
}

impl SessionName {
    /// The name `text` if STS accepts it as is (2 to 64 characters of `A-Za-z0-9+=,.@_-`).
    pub fn new(text: &str) -> Option<SessionName> {
        if !(2..=MAX_LEN).contains(&text.len()) || !text.chars().all(is_iam_name_char) {
            return None;
        }
        let mut name = SessionName { bytes: [0; MAX_LEN], len: text.len() as u8 };
        name.bytes[..text.len()].copy_from_slice(text.as_bytes());
        Some(name)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever written.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

// Equality and hashing look at the name only, not at the unused rest of the buffer: cheaper on the
// credential cache's hit path, where every lookup hashes and compares one.
impl PartialEq for SessionName {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for SessionName {}

impl std::hash::Hash for SessionName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for SessionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionName({:?})", self.as_str())
    }
}

impl fmt::Display for SessionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    User,
    Group,
}

/// The session name template unless one is set.
pub(crate) const DEFAULT_TEMPLATE: &str = "emrfs-{user}";

/// A role session name template with the placeholders `{user}` (the Hadoop user, empty when unknown)
/// and `{group}` (the group that matched, for a `Group` mapping; empty otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionNameTemplate {
    text: String,
    pieces: Vec<Piece>,
}

impl Default for SessionNameTemplate {
    fn default() -> Self {
        SessionNameTemplate::parse(DEFAULT_TEMPLATE)
            .unwrap_or(SessionNameTemplate { text: String::new(), pieces: Vec::new() })
    }
}

impl SessionNameTemplate {
    /// Parses a template; fails on unknown placeholders and unclosed braces.
    pub fn parse(text: &str) -> Result<Self, SettingsError> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            let close = rest[open..].find('}').ok_or(SettingsError::UnclosedPlaceholder)? + open;
            pieces.push(match &rest[open + 1..close] {
                "user" => Piece::User,
                "group" => Piece::Group,
                other => return Err(SettingsError::UnknownPlaceholder(other.to_owned())),
            });
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(SessionNameTemplate { text: text.to_owned(), pieces })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Renders the name for `user` and the mapping that decided.
    pub fn render(&self, user: Option<&str>, decided_by: &MappingMatch<'_>) -> SessionName {
        let group = match decided_by.identifier_type {
            crate::config::IdentifierType::Group => decided_by.identifier,
            _ => "",
        };
        let mut writer = Writer::default();
        for piece in &self.pieces {
            writer.push(match piece {
                Piece::Text(text) => text,
                Piece::User => user.unwrap_or_default(),
                Piece::Group => group,
            });
        }
        writer.finish()
    }
}

/// Streams characters into the name buffer while hashing the unaltered text (FNV-1a, 64 bits).
struct Writer {
    name: SessionName,
    rewritten: bool,
    hash: u64,
}

impl Default for Writer {
    fn default() -> Self {
        Writer { name: SessionName { bytes: [0; MAX_LEN], len: 0 }, rewritten: false, hash: 0xcbf2_9ce4_8422_2325 }
    }
}

impl Writer {
    fn push(&mut self, text: &str) {
        for b in text.bytes() {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        for c in text.chars() {
            let c = if is_iam_name_char(c) {
                c
            } else {
                self.rewritten = true;
                '_'
            };
            let len = usize::from(self.name.len);
            if len == MAX_LEN {
                self.rewritten = true;
                return;
            }
            self.name.bytes[len] = c as u8;
            self.name.len += 1;
        }
    }

    fn finish(mut self) -> SessionName {
        if usize::from(self.name.len) < 2 {
            self.rewritten = true;
        }
        if self.rewritten {
            let kept = usize::from(self.name.len).min(KEPT_WHEN_REWRITTEN);
            self.name.bytes[kept] = b'-';
            for (i, digit) in format_hex(self.hash as u32).into_iter().enumerate() {
                self.name.bytes[kept + 1 + i] = digit;
            }
            self.name.len = (kept + 9) as u8;
        }
        self.name
    }
}

fn format_hex(value: u32) -> [u8; 8] {
    let digits = b"0123456789abcdef";
    std::array::from_fn(|i| digits[((value >> (28 - 4 * i)) & 0xf) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{IdentifierType, RoleArn};

    fn render(template: &str, user: Option<&str>, kind: IdentifierType, identifier: &str) -> String {
        let role = RoleArn::parse("arn:aws:iam::123456789012:role/r").unwrap();
        let m = MappingMatch { index: 0, role: &role, identifier_type: kind, identifier };
        SessionNameTemplate::parse(template).unwrap().render(user, &m).to_string()
    }

    #[test]
    fn valid_names_are_kept() {
        assert_eq!(render("emrfs-{user}", Some("alice"), IdentifierType::User, "alice"), "emrfs-alice");
        assert_eq!(render("{user}@{group}", Some("bob"), IdentifierType::Group, "analysts"), "bob@analysts");
        assert_eq!(render("{user}-{group}", Some("bob"), IdentifierType::Prefix, "s3://b/"), "bob-");
    }

    #[test]
    fn rewritten_names_get_a_hash_of_the_original() {
        let a = render("emrfs-{user}", Some("alice smith"), IdentifierType::User, "x");
        let b = render("emrfs-{user}", Some("alice/smith"), IdentifierType::User, "x");
        assert!(a.starts_with("emrfs-alice_smith-") && a.len() == "emrfs-alice_smith-".len() + 8, "{a}");
        assert_ne!(a, b, "names that rewrite alike stay apart");
        let long = render("emrfs-{user}", Some(&"u".repeat(100)), IdentifierType::User, "x");
        assert_eq!(long.len(), 64);
        let short = render("{user}", Some("a"), IdentifierType::User, "x");
        assert_eq!(short.len(), 10, "{short}");
        assert!(render("{user}", Some("é"), IdentifierType::User, "x").starts_with("_-"));
    }

    #[test]
    fn every_rendered_name_is_valid_for_sts() {
        for user in ["", "a", "ünïcödé", "x y z", &"long".repeat(40), "ok.name@realm"] {
            let name = render("emrfs-{user}-{group}", Some(user), IdentifierType::Group, "g r");
            assert!((2..=64).contains(&name.len()), "{name}");
            assert!(name.chars().all(is_iam_name_char), "{name}");
        }
    }

    #[test]
    fn names_are_checked_when_given_directly() {
        assert_eq!(SessionName::new("etl-job").map(|n| n.to_string()), Some("etl-job".to_owned()));
        for bad in ["x", "a b", "é1", &"n".repeat(65)] {
            assert_eq!(SessionName::new(bad), None, "{bad}");
        }
    }

    #[test]
    fn templates_reject_unknown_placeholders() {
        assert_eq!(SessionNameTemplate::parse("{usr}"), Err(SettingsError::UnknownPlaceholder("usr".into())));
        assert_eq!(SessionNameTemplate::parse("a{user"), Err(SettingsError::UnclosedPlaceholder));
    }
}
