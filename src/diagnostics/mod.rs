//! Diagnostics: what is wrong with a security configuration, where, and how to fix it.
//!
//! A [`Diagnostic`] carries a stable [`Code`], a [`Severity`], a message, the JSON pointer of the value
//! it is about, where that value starts and ends, help text, and sometimes a second place it involves
//! (the identifier that shadows this one, the first of a duplicate key). [`Diagnostics`] is the error
//! type of parsing: every problem of a document at once, plus the source text needed to render them
//! the way rustc does (`render.rs`: the source line with the value underlined). The codes and what
//! they mean are in `code.rs`; positions and excerpts of the source in `source.rs`.
//!
//! Text that comes from the input (documents, requests, file names, command-line values) is shown to
//! people through [`Escaped`], whatever carries it: rendered diagnostics and their excerpts, the
//! one-line form of errors, explanations, and the command line's text output. JSON output carries the
//! text as it is (JSON escapes control characters itself).

mod code;
mod render;
mod source;

use std::fmt;

use serde::Serialize;

pub use code::Code;
pub(crate) use code::closest;
pub(crate) use source::Locator;

/// Text from the input, shown so that it cannot act on a terminal or reorder what is around it.
///
/// These characters are written as escapes, and every other character as it is:
/// - the C0 controls U+0000 to U+001F, DEL U+007F and the C1 controls U+0080 to U+009F: they move the
///   cursor, ring the bell, start escape sequences (ESC, CSI U+009B) or break a one-line message
///   into several;
/// - the bidirectional controls U+061C, U+200E, U+200F, U+202A to U+202E and U+2066 to U+2069: they
///   reorder the text shown after them.
///
/// The escape is the one of Rust's `char::escape_default`: `\t`, `\n` and `\r` for TAB, LF and CR,
/// otherwise `\u{`, the code point in lower-case hex without leading zeros, and `}` (ESC is `\u{1b}`,
/// a right-to-left override `\u{202e}`). Backslashes are not doubled, so escaping text twice changes
/// nothing, and a message that quotes an escaped error is escaped once. Writing allocates nothing,
/// and text without such characters is written in one piece.
///
/// ```
/// use emrfs_rolemap::Escaped;
/// assert_eq!(Escaped("bob\u{1b}[2J\u{202e}").to_string(), r"bob\u{1b}[2J\u{202e}");
/// assert_eq!(Escaped("a\tb\n").to_string(), r"a\tb\n");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escaped<'a>(pub &'a str);

impl Escaped<'_> {
    /// Whether `c` is shown escaped.
    pub fn escapes(c: char) -> bool {
        matches!(
            c,
            '\u{0}'..='\u{1f}'
                | '\u{7f}'..='\u{9f}'
                | '\u{61c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
    }

    /// How many columns `c` takes once shown: the length of its escape, or 1.
    pub(crate) fn width(c: char) -> usize {
        if Self::escapes(c) { c.escape_default().len() } else { 1 }
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, self.0, Self::escapes)
    }
}

/// Writes `text` with the characters that `escaped` selects written as [`Escaped`] writes them.
pub(crate) fn write_escaped(out: &mut impl fmt::Write, text: &str, escaped: impl Fn(char) -> bool) -> fmt::Result {
    let mut rest = text;
    while let Some((at, c)) = rest.char_indices().find(|&(_, c)| escaped(c)) {
        out.write_str(&rest[..at])?;
        write!(out, "{}", c.escape_default())?;
        rest = &rest[at + c.len_utf8()..];
    }
    out.write_str(rest)
}

/// How serious a diagnostic is. Only errors make a configuration unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The configuration cannot be used.
    Error,
    /// The configuration works, but probably not as its author meant.
    Warning,
    /// Information about how the configuration behaves.
    Note,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        })
    }
}

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub struct Location {
    /// The line, from 1.
    pub line: u32,
    /// The column in characters, from 1.
    pub column: u32,
}

impl Location {
    /// The location of byte `offset` in `text` (clamped to the end of the text).
    #[cfg(test)]
    pub(crate) fn of_offset(text: &str, offset: usize) -> Location {
        Locator::new(text).locate(offset)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One problem (or remark) about a security configuration.
///
/// As JSON: `{"code", "severity", "message", "pointer", "line", "column", "end_line", "end_column",
/// "help", "related"}`, plus `"embedded_in"` for the describe form; the positions are `null` for a
/// diagnostic about no place in the document (such as an instance profile named on the command
/// line), and `related` is `null` or `{"message", "pointer", "line", "column", "end_line",
/// "end_column"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    code: Code,
    severity: Severity,
    message: String,
    pointer: String,
    location: Option<Location>,
    /// Filled in by [`Diagnostics`] from the document, for a diagnostic with a location.
    end: Option<Location>,
    help: String,
    embedded_in: Option<String>,
    related: Option<Box<Diagnostic>>,
}

impl Diagnostic {
    /// A diagnostic about no place in the document; [`at`](Self::at) places it.
    pub(crate) fn new(code: Code, severity: Severity, message: impl Into<String>, help: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity,
            message: message.into(),
            pointer: String::new(),
            location: None,
            end: None,
            help: help.into(),
            embedded_in: None,
            related: None,
        }
    }

    /// The diagnostic placed at the value at `pointer` and `location`, inside the document embedded at
    /// `embedded_in` for the describe form. Where the value ends is found when the diagnostic joins
    /// [`Diagnostics`].
    pub(crate) fn at(mut self, pointer: impl Into<String>, location: Location, embedded_in: Option<String>) -> Self {
        self.pointer = pointer.into();
        self.location = Some(location);
        self.embedded_in = embedded_in;
        self
    }

    /// The diagnostic with a second place it involves, in the same document: the value at `pointer`
    /// and `location`, which `label` describes (lowercase, no trailing period).
    pub(crate) fn with_related(
        mut self,
        pointer: impl Into<String>,
        location: Location,
        label: impl Into<String>,
    ) -> Self {
        let place =
            Diagnostic::new(self.code, Severity::Note, label, "").at(pointer, location, self.embedded_in.clone());
        self.related = Some(Box::new(place));
        self
    }

    /// What kind of problem this is.
    pub fn code(&self) -> Code {
        self.code
    }

    /// How serious it is: the code's own [`Code::severity`], unless changed by
    /// [`Diagnostics::set_severity`].
    pub fn severity(&self) -> Severity {
        self.severity
    }

    /// What is wrong, in one lowercase sentence without a trailing period.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The JSON pointer (RFC 6901) of the value concerned; `""` is the whole document, and a diagnostic
    /// about no place in the document.
    pub fn pointer(&self) -> &str {
        &self.pointer
    }

    /// The line and column where the value concerned starts; `None` for a diagnostic about no place in
    /// the document.
    pub fn location(&self) -> Option<Location> {
        self.location
    }

    /// The line and column just after the value's last character (for a syntax error, after the
    /// character it is about): with [`location`](Self::location), the span a renderer underlines and
    /// SARIF's region (its end column is exclusive too). `None` without a location, and for a
    /// diagnostic that is not (yet) in a [`Diagnostics`], which finds the end in the document.
    pub fn end(&self) -> Option<Location> {
        self.end
    }

    /// How to fix it.
    pub fn help(&self) -> &str {
        &self.help
    }

    /// For the output of `aws emr describe-security-configuration`: the pointer of the string that holds
    /// the document. The pointer and location are then positions inside that embedded document.
    pub fn embedded_in(&self) -> Option<&str> {
        self.embedded_in.as_deref()
    }

    /// A second place this diagnostic involves, in the same document: for `shadowed-identifier` and
    /// `redundant-identifier` the identifier that matches first, for `duplicate-identifier` and
    /// `duplicate-key` the first occurrence, for `unreachable-mapping` the first mapping that shadows
    /// it, for `partially-shadowed-mapping` the first prefix that decides before it. It is given as a
    /// diagnostic of severity [`Severity::Note`] whose [`message`](Self::message) labels the place
    /// (such as "comes first and matches every request this one matches"), with its pointer, location
    /// and end, and no help.
    pub fn related(&self) -> Option<&Diagnostic> {
        self.related.as_deref()
    }
}

impl Serialize for Diagnostic {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Diagnostic", 11)?;
        s.serialize_field("code", &self.code)?;
        s.serialize_field("severity", &self.severity)?;
        s.serialize_field("message", &self.message)?;
        s.serialize_field("pointer", &self.pointer)?;
        s.serialize_field("line", &self.location.map(|l| l.line))?;
        s.serialize_field("column", &self.location.map(|l| l.column))?;
        s.serialize_field("end_line", &self.end.map(|l| l.line))?;
        s.serialize_field("end_column", &self.end.map(|l| l.column))?;
        s.serialize_field("help", &self.help)?;
        s.serialize_field("related", &self.related.as_deref().map(RelatedJson))?;
        if let Some(embedded_in) = &self.embedded_in {
            s.serialize_field("embedded_in", embedded_in)?;
        }
        s.end()
    }
}

/// The JSON of [`Diagnostic::related`]: the place and its label.
struct RelatedJson<'a>(&'a Diagnostic);

impl Serialize for RelatedJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let d = self.0;
        let mut s = serializer.serialize_struct("Related", 6)?;
        s.serialize_field("message", &d.message)?;
        s.serialize_field("pointer", &d.pointer)?;
        s.serialize_field("line", &d.location.map(|l| l.line))?;
        s.serialize_field("column", &d.location.map(|l| l.column))?;
        s.serialize_field("end_line", &d.end.map(|l| l.line))?;
        s.serialize_field("end_column", &d.end.map(|l| l.column))?;
        s.end()
    }
}

/// Every diagnostic of one document, with the text they point into; the error type of parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
    /// The text of the document, which positions refer to.
    document: String,
    /// The embedded document of the describe form, which positions of diagnostics with `embedded_in`
    /// refer to.
    embedded: Option<String>,
}

impl Diagnostics {
    pub(crate) fn new(items: Vec<Diagnostic>, document: String, embedded: Option<String>) -> Self {
        let mut diagnostics = Diagnostics { items: Vec::new(), document, embedded };
        diagnostics.extend(items);
        diagnostics
    }

    /// Adds diagnostics found by a later stage (such as glob compilation), finds where the values they
    /// are about end, and keeps source order.
    pub(crate) fn extend(&mut self, more: impl IntoIterator<Item = Diagnostic>) {
        let first_new = self.items.len();
        self.items.extend(more);
        let mut document = Locator::new(&self.document);
        let mut embedded = self.embedded.as_deref().map(Locator::new);
        let mut find_end = |place: &mut Diagnostic| {
            let source = match (&place.embedded_in, embedded.as_mut()) {
                (Some(_), Some(embedded)) => embedded,
                _ => &mut document,
            };
            place.end = place.location.and_then(|at| source.end_of_value(at));
        };
        for d in &mut self.items[first_new..] {
            find_end(d);
            if let Some(related) = d.related.as_deref_mut() {
                find_end(related);
            }
        }
        self.items.sort_by_key(|d| (d.embedded_in.is_some(), d.location));
    }

    /// All diagnostics, in source order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.items.iter()
    }

    /// How many diagnostics there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many diagnostics have [`Severity::Error`].
    pub fn error_count(&self) -> usize {
        self.count(Severity::Error)
    }

    /// How many diagnostics have `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.items.iter().filter(|d| d.severity == severity).count()
    }

    /// Adds a diagnostic, such as one about the command line, keeping source order (those about no place
    /// in the document come first).
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.extend([diagnostic]);
    }

    /// The diagnostics as a slice.
    pub fn as_slice(&self) -> &[Diagnostic] {
        &self.items
    }

    /// Leaves out every diagnostic of `code`, as clippy's `--allow` does.
    ///
    /// Fails, changing nothing, for a code whose [`Code::severity`] is [`Severity::Error`]: such a
    /// document cannot be used, so its errors cannot be allowed.
    pub fn allow(&mut self, code: Code) -> Result<(), String> {
        self.lowerable(code)?;
        self.items.retain(|d| d.code != code);
        Ok(())
    }

    /// Gives every diagnostic of `code` the severity `severity`, as clippy's `--warn` and `--deny` do:
    /// a note or a warning raised to [`Severity::Error`] fails a check like an error (but does not make
    /// the document unusable: [`Checked::config`](crate::Checked::config) stays), and a note raised to
    /// a warning fails one that denies warnings.
    ///
    /// Fails, changing nothing, when `severity` is lower than an error for a code whose
    /// [`Code::severity`] is [`Severity::Error`]: errors stay errors.
    ///
    /// ```
    /// use emrfs_rolemap::{Code, ResolverOptions, Severity, check};
    /// let text = br#"{"RoleMappings": [{"Role": "arn:aws:iam::123456789012:role/r", "IdentifierType": "Prefix",
    ///     "Identifiers": ["s3://lake/", "s3://lake/raw/"]}]}"#;
    /// let mut diagnostics = check(text, &ResolverOptions::default()).diagnostics;
    /// assert_eq!(diagnostics.count(Severity::Note), 1); // `s3://lake/raw/` is redundant
    /// diagnostics.set_severity(Code::RedundantIdentifier, Severity::Error)?;
    /// assert_eq!(diagnostics.error_count(), 1);
    /// diagnostics.allow(Code::RedundantIdentifier)?;
    /// assert!(diagnostics.is_empty());
    /// assert!(diagnostics.allow(Code::InvalidRoleArn).is_err());
    /// # Ok::<(), String>(())
    /// ```
    pub fn set_severity(&mut self, code: Code, severity: Severity) -> Result<(), String> {
        if severity != Severity::Error {
            self.lowerable(code)?;
        }
        for d in self.items.iter_mut().filter(|d| d.code == code) {
            d.severity = severity;
        }
        Ok(())
    }

    /// Refuses to lower the level of an error code.
    fn lowerable(&self, code: Code) -> Result<(), String> {
        match code.severity() {
            Severity::Error => {
                Err(format!("`{code}` is an error: a configuration with it cannot be used, so it can only be denied"))
            }
            Severity::Warning | Severity::Note => Ok(()),
        }
    }

    /// Renders every diagnostic like rustc, as plain text: the header, the location, the source line
    /// with the value underlined and labelled with its JSON pointer, the related place with its label
    /// (under the same line when it is on it), and the help.
    ///
    /// `file_name` is the name shown in the location line (`--> config.json:3:12`). Every text from the
    /// input (the file name included) is shown through [`Escaped`], and a long line is shown around
    /// the value, at most 100 columns of it, with `…` where it is cut: rendering takes time in
    /// proportion to the diagnostics, not to the length of the lines they point into.
    pub fn render(&self, file_name: &str) -> String {
        render::render(self, file_name, false)
    }

    /// Like [`render`](Self::render), with ANSI colours (as rustc colours its diagnostics on a
    /// terminal): for a terminal that shows them, never for a file or a pipe.
    pub fn render_ansi(&self, file_name: &str) -> String {
        render::render(self, file_name, true)
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors = self.error_count();
        match self.items.iter().find(|d| d.severity == Severity::Error) {
            Some(first) => {
                write!(f, "{}", Escaped(&first.message))?;
                if let Some(location) = first.location {
                    write!(f, " at {location} (`{}`)", Escaped(&first.pointer))?;
                }
                if errors > 1 {
                    write!(f, ", and {} more error{}", errors - 1, if errors == 2 { "" } else { "s" })?;
                }
                Ok(())
            }
            None => write!(f, "no errors"),
        }
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_shows_exactly_controls_and_bidirectional_controls_as_escapes() {
        let escaped = |c: char| matches!(c as u32, 0..=0x1f | 0x7f..=0x9f | 0x61c | 0x200e | 0x200f | 0x202a..=0x202e | 0x2066..=0x2069);
        for c in ('\0'..='\u{2100}').chain(['\u{feff}', '\u{fffd}', '😀']) {
            let text = c.to_string();
            let shown = Escaped(&text).to_string();
            if escaped(c) {
                assert_eq!(shown, c.escape_default().to_string());
                assert!(shown.bytes().all(|b| b.is_ascii_graphic()), "{shown}");
                assert_eq!(Escaped::width(c), shown.len());
            } else {
                assert_eq!(shown, text);
                assert_eq!(Escaped::width(c), 1);
            }
            assert_eq!(Escaped(&shown).to_string(), shown, "escaping twice changes nothing");
        }
        assert_eq!(
            Escaped("a\u{1b}[0m\u{7}b\u{9b}\u{7f}\u{202e}\r\n").to_string(),
            r"a\u{1b}[0m\u{7}b\u{9b}\u{7f}\u{202e}\r\n"
        );
    }
}
