//! Diagnostics: what is wrong with a security configuration, where, and how to fix it.
//!
//! A [`Diagnostic`] carries a stable [`Code`], a [`Severity`], a message, the JSON pointer of the value
//! it is about, its 1-based line and column, and help text. [`Diagnostics`] is the error type of
//! parsing: every problem of a document at once, plus the source text needed to render them the way
//! rustc does (the source line with a caret under the position).
//!
//! Text that comes from the input (documents, requests, file names, command-line values) is shown to
//! people through [`Escaped`], whatever carries it: rendered diagnostics and their excerpts, the
//! one-line form of errors, explanations, and the command line's text output. JSON output carries the
//! text as it is (JSON escapes control characters itself).

use std::fmt;

use serde::Serialize;

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

/// The stable identity of a kind of diagnostic; its kebab-case name is part of the JSON output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    // Warnings and notes about a valid configuration (`check` reports them beside the errors).
    /// An identifier never decides: an earlier mapping matches every request it matches.
    ShadowedIdentifier,
    /// A mapping never decides: every one of its identifiers is shadowed.
    UnreachableMapping,
    /// An identifier repeats an earlier identifier of the same mapping.
    DuplicateIdentifier,
    /// An earlier identifier of the same mapping matches every request this one matches (note).
    RedundantIdentifier,
    /// A `User` or `Group` mapping loses, for some paths, to an earlier `Prefix` mapping (note).
    PartiallyShadowedMapping,
    /// A `Prefix` key does not end in `/`, so it also matches sibling keys.
    PrefixBoundary,
    /// A `Prefix` names a bucket that no current S3 bucket can have.
    InvalidBucketName,
    /// An identifier holds glob characters while globs are off, so they are matched literally.
    LiteralGlobCharacters,
    /// An identifier holds non-ASCII, look-alike or invisible characters.
    SuspiciousCharacters,
    /// A `User` identifier looks like a Kerberos principal (`user@REALM`).
    KerberosPrincipal,
    /// The instance profile and the role given for it cannot belong together (error).
    InstanceProfileMismatch,
    // Errors.
    /// The input is not valid UTF-8.
    InvalidUtf8,
    /// The input is not JSON.
    JsonSyntax,
    /// An object has the same key twice; JSON readers disagree on which one wins.
    DuplicateKey,
    /// The document is not one of the accepted forms of a security configuration.
    UnrecognizedDocument,
    /// No `RoleMappings` array where the form of the document needs one.
    MissingRoleMappings,
    /// `RoleMappings` is an empty array.
    EmptyRoleMappings,
    /// A value has the wrong JSON type.
    WrongType,
    /// A role mapping has a key other than `Role`, `IdentifierType` and `Identifiers`.
    UnknownKey,
    /// A role mapping lacks one of its three keys.
    MissingKey,
    /// `Role` is not an IAM role ARN.
    InvalidRoleArn,
    /// `IdentifierType` is not `User`, `Group` or `Prefix`.
    UnknownIdentifierType,
    /// `Identifiers` is an empty array.
    EmptyIdentifiers,
    /// An identifier is the empty string.
    EmptyIdentifier,
    /// An identifier starts or ends with white space.
    PaddedIdentifier,
    /// A `Prefix` identifier is not an `s3://`, `s3a://` or `s3n://` URI with a bucket.
    InvalidPrefix,
    /// An identifier is not a valid glob while globs are enabled.
    InvalidGlob,
    /// The document is larger than [`SecurityConfiguration::MAX_BYTES`](crate::SecurityConfiguration::MAX_BYTES).
    DocumentTooLarge,
    /// An identifier contains a control character such as NUL.
    ControlCharacter,
}

impl Code {
    /// The kebab-case name, such as `invalid-role-arn`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::ShadowedIdentifier => "shadowed-identifier",
            Code::UnreachableMapping => "unreachable-mapping",
            Code::DuplicateIdentifier => "duplicate-identifier",
            Code::RedundantIdentifier => "redundant-identifier",
            Code::PartiallyShadowedMapping => "partially-shadowed-mapping",
            Code::PrefixBoundary => "prefix-boundary",
            Code::InvalidBucketName => "invalid-bucket-name",
            Code::LiteralGlobCharacters => "literal-glob-characters",
            Code::SuspiciousCharacters => "suspicious-characters",
            Code::KerberosPrincipal => "kerberos-principal",
            Code::InstanceProfileMismatch => "instance-profile-mismatch",
            Code::InvalidUtf8 => "invalid-utf8",
            Code::JsonSyntax => "json-syntax",
            Code::DuplicateKey => "duplicate-key",
            Code::UnrecognizedDocument => "unrecognized-document",
            Code::MissingRoleMappings => "missing-role-mappings",
            Code::EmptyRoleMappings => "empty-role-mappings",
            Code::WrongType => "wrong-type",
            Code::UnknownKey => "unknown-key",
            Code::MissingKey => "missing-key",
            Code::InvalidRoleArn => "invalid-role-arn",
            Code::UnknownIdentifierType => "unknown-identifier-type",
            Code::EmptyIdentifiers => "empty-identifiers",
            Code::EmptyIdentifier => "empty-identifier",
            Code::PaddedIdentifier => "padded-identifier",
            Code::InvalidPrefix => "invalid-prefix",
            Code::InvalidGlob => "invalid-glob",
            Code::DocumentTooLarge => "document-too-large",
            Code::ControlCharacter => "control-character",
        }
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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

/// Turns byte offsets into locations in time proportional to the text, not to text × queries.
///
/// Queries in increasing order (as a document walk makes them) continue from the previous answer; an
/// earlier offset restarts from the nearest checkpoint (one every [`Locator::STRIDE`] bytes), so even a
/// minified one-line document answers any query in bounded time. A leading byte-order mark is not a
/// column: editors do not show it.
#[derive(Debug, Clone)]
pub(crate) struct Locator<'t> {
    text: &'t str,
    /// `(offset, location)` at character boundaries about every `STRIDE` bytes, the first after any BOM.
    checkpoints: Vec<(usize, Location)>,
    /// The last answer: its offset and location.
    cursor: (usize, Location),
}

impl<'t> Locator<'t> {
    const STRIDE: usize = 4096;

    pub(crate) fn new(text: &'t str) -> Self {
        let first = if text.starts_with('\u{feff}') { '\u{feff}'.len_utf8() } else { 0 };
        let start = (first, Location { line: 1, column: 1 });
        let mut checkpoints = vec![start];
        let mut at = start;
        while at.0 + Self::STRIDE < text.len() {
            let mut next = at.0 + Self::STRIDE;
            while !text.is_char_boundary(next) {
                next += 1;
            }
            at = (next, advance(text, at, next));
            checkpoints.push(at);
        }
        Locator { text, checkpoints, cursor: start }
    }

    /// The location of byte `offset` (clamped to the text, and back to the start of a character).
    pub(crate) fn locate(&mut self, offset: usize) -> Location {
        let mut offset = offset.min(self.text.len()).max(self.checkpoints[0].0);
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let from = if offset >= self.cursor.0 {
            self.cursor
        } else {
            self.checkpoints[self.checkpoints.partition_point(|&(o, _)| o <= offset) - 1]
        };
        let location = advance(self.text, from, offset);
        self.cursor = (offset, location);
        location
    }
}

impl<'t> Locator<'t> {
    /// The byte offset of `at` (clamped to the end of its line), or `None` for line 0.
    fn offset_of(&mut self, at: Location) -> Option<usize> {
        if at.line == 0 {
            return None;
        }
        let key = |l: Location| (l.line, l.column);
        let mut from = self.checkpoints[self.checkpoints.partition_point(|&(_, l)| key(l) <= key(at)).max(1) - 1];
        if key(self.cursor.1) <= key(at) && self.cursor.0 > from.0 {
            from = self.cursor;
        }
        let (mut offset, mut location) = from;
        let bytes = self.text.as_bytes();
        while offset < bytes.len() && key(location) < key(at) {
            let b = bytes[offset];
            if b == b'\n' {
                if location.line == at.line {
                    break;
                }
                location = Location { line: location.line.saturating_add(1), column: 1 };
            } else if b & 0xC0 != 0x80 {
                if key(location) >= key(at) {
                    break;
                }
                location.column = location.column.saturating_add(1);
            }
            offset += 1;
            while offset < bytes.len() && bytes[offset] & 0xC0 == 0x80 {
                offset += 1;
            }
        }
        self.cursor = (offset, location);
        Some(offset)
    }

    /// The part of the line of `at` around it that fits in `width` columns once shown through [`Escaped`]
    /// (the whole line when it fits, otherwise about half before it), without reading the rest of a long
    /// line.
    pub(crate) fn excerpt(&mut self, at: Location, width: usize) -> Option<Excerpt<'t>> {
        let offset = self.offset_of(at)?;
        let text = self.text;
        let line_floor = self.checkpoints[0].0;
        let ends_line = |c: char| c == '\n' || c == '\r';
        // The characters from `from` on that fit in `budget` columns: where they end, and their width.
        let fill = |from: usize, budget: usize| {
            let (mut end, mut used) = (from, 0);
            for c in text[from..].chars().take_while(|&c| !ends_line(c)) {
                if used + Escaped::width(c) > budget {
                    break;
                }
                used += Escaped::width(c);
                end += c.len_utf8();
            }
            (end, used)
        };
        let (_, after) = fill(offset, width);
        let left_budget = width - after.min(width / 2);
        let (mut start, mut before) = (offset, 0);
        for (i, c) in text[line_floor..offset].char_indices().rev() {
            if c == '\n' || before + Escaped::width(c) > left_budget {
                break;
            }
            start = line_floor + i;
            before += Escaped::width(c);
        }
        let cut_left = start > line_floor && !text[..start].ends_with('\n');
        let (end, _) = fill(offset, width - before);
        let cut_right = text[end..].chars().next().is_some_and(|c| !ends_line(c));
        Some(Excerpt { text: &text[start..end], caret: before, cut_left, cut_right })
    }
}

/// The location of `to`, counting from the known location of an earlier offset.
fn advance(text: &str, (from, mut location): (usize, Location), to: usize) -> Location {
    for &b in &text.as_bytes()[from..to] {
        if b == b'\n' {
            location = Location { line: location.line.saturating_add(1), column: 1 };
        } else if b & 0xC0 != 0x80 {
            location.column = location.column.saturating_add(1);
        }
    }
    location
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One problem (or remark) about a security configuration.
///
/// As JSON: `{"code", "severity", "message", "pointer", "line", "column", "help"}`, plus
/// `"embedded_in"` for the describe form; `line` and `column` are `null` for a diagnostic about no
/// place in the document (such as an instance profile named on the command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    code: Code,
    severity: Severity,
    message: String,
    pointer: String,
    location: Option<Location>,
    help: String,
    embedded_in: Option<String>,
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
            help: help.into(),
            embedded_in: None,
        }
    }

    /// The diagnostic placed at `pointer` and `location`, inside the document embedded at `embedded_in`
    /// for the describe form.
    pub(crate) fn at(mut self, pointer: impl Into<String>, location: Location, embedded_in: Option<String>) -> Self {
        self.pointer = pointer.into();
        self.location = Some(location);
        self.embedded_in = embedded_in;
        self
    }

    /// What kind of problem this is.
    pub fn code(&self) -> Code {
        self.code
    }

    /// How serious it is.
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

    /// The line and column of the value concerned; `None` for a diagnostic about no place in the
    /// document.
    pub fn location(&self) -> Option<Location> {
        self.location
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
}

impl Serialize for Diagnostic {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Diagnostic", 8)?;
        s.serialize_field("code", &self.code)?;
        s.serialize_field("severity", &self.severity)?;
        s.serialize_field("message", &self.message)?;
        s.serialize_field("pointer", &self.pointer)?;
        s.serialize_field("line", &self.location.map(|l| l.line))?;
        s.serialize_field("column", &self.location.map(|l| l.column))?;
        s.serialize_field("help", &self.help)?;
        if let Some(embedded_in) = &self.embedded_in {
            s.serialize_field("embedded_in", embedded_in)?;
        }
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
        Diagnostics { items, document, embedded }
    }

    /// Adds diagnostics found by a later stage (such as glob compilation) and keeps source order.
    pub(crate) fn extend(&mut self, more: impl IntoIterator<Item = Diagnostic>) {
        self.items.extend(more);
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
        self.items.iter().filter(|d| d.severity == Severity::Error).count()
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

    /// Renders every diagnostic like rustc: header, location, the source line and a caret.
    ///
    /// `file_name` is the name shown in the location line (`config.json:3:12`).
    pub fn render(&self, file_name: &str) -> String {
        let mut out = String::new();
        let mut document = Locator::new(&self.document);
        let mut embedded = self.embedded.as_deref().map(Locator::new);
        for d in &self.items {
            let source = match (&d.embedded_in, embedded.as_mut()) {
                (Some(_), Some(embedded)) => embedded,
                _ => &mut document,
            };
            render_one(&mut out, d, source, file_name);
        }
        out
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

fn render_one(out: &mut String, d: &Diagnostic, source: &mut Locator<'_>, file_name: &str) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "{}[{}]: {}", d.severity, d.code, Escaped(&d.message));
    if let Some(location) = d.location {
        render_place(out, d, location, source, file_name);
    }
    if !d.help.is_empty() {
        let _ = writeln!(out, "  = help: {}", Escaped(&d.help));
    }
    out.push('\n');
}

/// The location line, the source line and the caret under the column.
fn render_place(out: &mut String, d: &Diagnostic, at: Location, source: &mut Locator<'_>, file_name: &str) {
    use std::fmt::Write as _;
    let _ = write!(out, "  --> {}", Escaped(file_name));
    if let Some(outer) = &d.embedded_in {
        let _ = write!(out, " (document embedded in `{}`)", Escaped(outer));
    }
    let pointer = if d.pointer.is_empty() { "(document root)" } else { d.pointer.as_str() };
    let _ = writeln!(out, ":{at} at {}", Escaped(pointer));
    if let Some(excerpt) = source.excerpt(at, EXCERPT_WIDTH) {
        let number = at.line.to_string();
        let gutter = " ".repeat(number.len());
        let (shown, caret_at) = excerpt.shown();
        let _ = writeln!(out, "{gutter} |");
        let _ = writeln!(out, "{number} | {shown}");
        let _ = writeln!(out, "{gutter} | {}^", " ".repeat(caret_at));
    }
}

/// How many columns of a source line a rendered diagnostic shows at most.
const EXCERPT_WIDTH: usize = 100;

/// The part of a source line shown under a diagnostic.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Excerpt<'t> {
    text: &'t str,
    /// Columns that `text` before the location takes once shown.
    caret: usize,
    /// Whether the line goes on before `text`, and after it.
    cut_left: bool,
    cut_right: bool,
}

impl Excerpt<'_> {
    /// The text to print (through [`Escaped`], with `…` where the line was cut) and the caret's column in it.
    fn shown(&self) -> (String, usize) {
        let left = if self.cut_left { "…" } else { "" };
        let right = if self.cut_right { "…" } else { "" };
        (format!("{left}{}{right}", Escaped(self.text)), self.caret + usize::from(self.cut_left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_count_characters_from_one() {
        let text = "ab\nçd\n";
        assert_eq!(Location::of_offset(text, 0), Location { line: 1, column: 1 });
        assert_eq!(Location::of_offset(text, 3), Location { line: 2, column: 1 });
        assert_eq!(Location::of_offset(text, 5), Location { line: 2, column: 2 });
        assert_eq!(Location::of_offset(text, 4), Location { line: 2, column: 1 }, "inside a character");
        let bom = "\u{feff}[1]";
        assert_eq!(Location::of_offset(bom, 3), Location { line: 1, column: 1 }, "a byte-order mark is no column");
        assert_eq!(Location::of_offset(bom, 4), Location { line: 1, column: 2 });
    }

    #[test]
    fn locator_answers_queries_in_any_order() {
        let text = "\u{feff}{\"a\": \"é\",\n  \"b\": [1,\n\n 2]}";
        let naive = |offset: usize| {
            let before = &text[3..offset.max(3)];
            let line = before.matches('\n').count() as u32 + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() as u32 + 1;
            Location { line, column }
        };
        let offsets: Vec<usize> = (0..=text.len()).filter(|&o| text.is_char_boundary(o)).collect();
        let mut locator = Locator::new(text);
        assert_eq!(locator.checkpoints.len(), 1);
        for &o in offsets.iter().chain(offsets.iter().rev()).chain(offsets.iter().step_by(3)) {
            assert_eq!(locator.locate(o), naive(o), "offset {o}");
        }
    }

    #[test]
    fn checkpoints_serve_earlier_offsets_in_long_lines() {
        let text = format!("[{}\"é\"]", "1,".repeat(10_000));
        let mut locator = Locator::new(&text);
        assert!(locator.checkpoints.len() > 4);
        let end = text.len() - 1;
        assert_eq!(locator.locate(end), Location { line: 1, column: 20_005 });
        assert_eq!(locator.locate(9_001), Location { line: 1, column: 9_002 });
        assert_eq!(locator.locate(end), Location { line: 1, column: 20_005 });
    }

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

    #[test]
    fn excerpts_measure_escaped_characters_by_their_shown_width() {
        let line = "\u{1b}".repeat(300);
        let mut locator = Locator::new(&line);
        let (shown, caret) = locator.excerpt(Location { line: 1, column: 200 }, 100).unwrap().shown();
        assert_eq!(shown, format!("…{}…", r"\u{1b}".repeat(16)));
        assert_eq!(caret, 49, "after `…` and 8 escapes of 6 columns");
    }

    #[test]
    fn long_lines_are_clipped_around_the_caret() {
        let line = "x".repeat(300);
        let mut locator = Locator::new(&line);
        let excerpt = locator.excerpt(Location { line: 1, column: 200 }, 100).unwrap();
        let (shown, caret) = excerpt.shown();
        assert_eq!(shown.chars().count(), 102);
        assert_eq!(caret, 51);
        let short = "ab\tc\r\nde";
        let mut locator = Locator::new(short);
        assert_eq!(locator.excerpt(Location { line: 1, column: 4 }, 100).unwrap().shown(), (r"ab\tc".to_owned(), 4));
        assert_eq!(locator.excerpt(Location { line: 2, column: 2 }, 100).unwrap().shown(), ("de".to_owned(), 1));
        assert_eq!(
            locator.excerpt(Location { line: 2, column: 9 }, 100).unwrap().shown(),
            ("de".to_owned(), 2),
            "past the end"
        );
        assert_eq!(locator.excerpt(Location { line: 0, column: 0 }, 100), None);
    }
}
