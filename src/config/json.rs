//! A strict JSON parser that keeps the byte offset of every value and key.
//!
//! `serde_json` discards source positions, but every diagnostic must point at a line and column, so the
//! security-configuration document is read into this small tree first. It follows RFC 8259 exactly (the
//! test suite checks it against `serde_json` on generated documents), accepts a leading UTF-8 byte-order
//! mark, limits nesting to [`MAX_DEPTH`] levels so that no input can exhaust the stack, and records
//! duplicate object keys instead of silently keeping one of them.

use std::fmt::Write as _;

/// The deepest nesting of arrays and objects accepted; deeper documents are rejected with an error.
pub const MAX_DEPTH: usize = 128;

/// A JSON value with the byte offset where it starts in the source text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) offset: usize,
    pub(crate) value: Value,
}

/// The value part of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    /// A number, kept as its source text (the configuration never needs its numeric value).
    Number(String),
    String(String),
    Array(Vec<Node>),
    /// Members in source order, duplicates included (see [`Parsed::duplicate_keys`]).
    Object(Vec<Member>),
}

/// One `"key": value` pair of an object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Member {
    pub(crate) key: String,
    pub(crate) key_offset: usize,
    pub(crate) value: Node,
}

impl Value {
    /// The JSON type name used in messages: `null`, `a boolean`, `a number`, ...
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

impl Node {
    /// The member named `key` of an object (the first one when the key is duplicated).
    pub(crate) fn get(&self, key: &str) -> Option<&Member> {
        match &self.value {
            Value::Object(members) => members.iter().find(|m| m.key == key),
            _ => None,
        }
    }
}

/// A parsed document: the root value and every duplicated key found, in source order.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) root: Node,
    /// `(pointer of the object, key, byte offset of the repeated key, byte offset of its first
    /// occurrence)`.
    pub(crate) duplicate_keys: Vec<(String, String, usize, usize)>,
}

/// Why a text is not JSON, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub(crate) offset: usize,
    pub(crate) message: String,
    pub(crate) help: &'static str,
}

/// Parses `text` as one JSON value surrounded by optional white space.
pub(crate) fn parse(text: &str) -> Result<Parsed, SyntaxError> {
    let mut parser = Parser { text, bytes: text.as_bytes(), pos: 0, duplicate_keys: Vec::new() };
    if text.starts_with('\u{feff}') {
        parser.pos = '\u{feff}'.len_utf8();
    }
    parser.skip_ws();
    if parser.pos == parser.bytes.len() {
        return Err(parser.error("the document is empty", "a security configuration is a JSON object"));
    }
    let mut pointer = String::new();
    let root = parser.value(0, &mut pointer)?;
    parser.skip_ws();
    if parser.pos != parser.bytes.len() {
        return Err(parser.error(
            "trailing characters after the JSON value",
            "a document holds exactly one JSON value; remove what follows it",
        ));
    }
    Ok(Parsed { root, duplicate_keys: parser.duplicate_keys })
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    duplicate_keys: Vec<(String, String, usize, usize)>,
}

impl Parser<'_> {
    fn error(&self, message: impl Into<String>, help: &'static str) -> SyntaxError {
        SyntaxError { offset: self.pos, message: message.into(), help }
    }

    fn unexpected(&self, expected: &str) -> SyntaxError {
        match self.text[self.pos..].chars().next() {
            None => SyntaxError {
                offset: self.pos,
                message: format!("unexpected end of input, expected {expected}"),
                help: "the document is truncated; check that every `{`, `[` and `\"` is closed",
            },
            Some(c) => SyntaxError {
                offset: self.pos,
                message: format!("unexpected {}, expected {expected}", describe_char(c)),
                help: "JSON allows no comments, trailing commas or single quotes",
            },
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn value(&mut self, depth: usize, pointer: &mut String) -> Result<Node, SyntaxError> {
        let offset = self.pos;
        let value = match self.bytes.get(self.pos) {
            Some(b'{') => self.object(depth + 1, pointer)?,
            Some(b'[') => self.array(depth + 1, pointer)?,
            Some(b'"') => Value::String(self.string()?),
            Some(b't') => self.keyword("true", Value::Bool(true))?,
            Some(b'f') => self.keyword("false", Value::Bool(false))?,
            Some(b'n') => self.keyword("null", Value::Null)?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            _ => return Err(self.unexpected("a JSON value")),
        };
        Ok(Node { offset, value })
    }

    fn enter(&self, depth: usize) -> Result<(), SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.error(
                format!("arrays and objects are nested more than {MAX_DEPTH} levels deep"),
                "a security configuration needs only a few levels; this input is not one",
            ));
        }
        Ok(())
    }

    fn object(&mut self, depth: usize, pointer: &mut String) -> Result<Value, SyntaxError> {
        self.enter(depth)?;
        self.pos += 1;
        let mut members: Vec<Member> = Vec::new();
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(self.unexpected("a `\"` starting an object key"));
            }
            let key_offset = self.pos;
            let key = self.string()?;
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b':') {
                return Err(self.unexpected("`:` after an object key"));
            }
            self.pos += 1;
            self.skip_ws();
            let parent_len = pointer.len();
            push_pointer_token(pointer, &key);
            let value = self.value(depth, pointer)?;
            pointer.truncate(parent_len);
            if let Some(first) = members.iter().find(|m| m.key == key) {
                self.duplicate_keys.push((pointer.clone(), key.clone(), key_offset, first.key_offset));
            }
            members.push(Member { key, key_offset, value });
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.comma(b'}')?,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.unexpected("`,` or `}` after an object member")),
            }
        }
    }

    fn array(&mut self, depth: usize, pointer: &mut String) -> Result<Value, SyntaxError> {
        self.enter(depth)?;
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            let parent_len = pointer.len();
            let _ = write!(pointer, "/{}", items.len());
            items.push(self.value(depth, pointer)?);
            pointer.truncate(parent_len);
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.comma(b']')?,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.unexpected("`,` or `]` after an array element")),
            }
        }
    }

    /// Consumes a `,` and rejects a `close` right after it (a trailing comma), pointing at the comma.
    fn comma(&mut self, close: u8) -> Result<(), SyntaxError> {
        let comma = self.pos;
        self.pos += 1;
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&close) {
            return Err(SyntaxError {
                offset: comma,
                message: format!("trailing comma before `{}`", close as char),
                help: "JSON allows no trailing commas; remove this one",
            });
        }
        Ok(())
    }

    fn keyword(&mut self, word: &'static str, value: Value) -> Result<Value, SyntaxError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.unexpected("a JSON value"))
        }
    }

    fn number(&mut self) -> Result<Value, SyntaxError> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let from = p.pos;
            while let Some(b'0'..=b'9') = p.bytes.get(p.pos) {
                p.pos += 1;
            }
            p.pos - from
        };
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match self.bytes.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(self.unexpected("a digit")),
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                return Err(self.unexpected("a digit after the decimal point"));
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(self.unexpected("a digit in the exponent"));
            }
        }
        Ok(Value::Number(self.text[start..self.pos].to_owned()))
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        self.pos += 1; // the opening quote
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(&b) = self.bytes.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.text[run_start..self.pos]);
            match self.bytes.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    out.push(self.escape()?);
                }
                Some(_) => {
                    return Err(self.error(
                        "control character inside a string",
                        "write control characters as escapes such as `\\n` or `\\u0000`",
                    ));
                }
                None => {
                    return Err(
                        self.error("unterminated string", "the document is truncated or a closing `\"` is missing")
                    );
                }
            }
        }
    }

    fn escape(&mut self) -> Result<char, SyntaxError> {
        let c = match self.bytes.get(self.pos) {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                return self.unicode_escape();
            }
            _ => {
                return Err(self.error(
                    "invalid escape in a string",
                    "valid escapes are `\\\"`, `\\\\`, `\\/`, `\\b`, `\\f`, `\\n`, `\\r`, `\\t` and `\\uXXXX`",
                ));
            }
        };
        self.pos += 1;
        Ok(c)
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let digits = self.bytes.get(self.pos..self.pos + 4).and_then(|h| std::str::from_utf8(h).ok());
        match digits.and_then(|h| u32::from_str_radix(h, 16).ok().filter(|_| h.bytes().all(|b| b.is_ascii_hexdigit())))
        {
            Some(v) => {
                self.pos += 4;
                Ok(v)
            }
            None => Err(self.error("`\\u` must be followed by four hexadecimal digits", "write for example `\\u00e9`")),
        }
    }

    fn unicode_escape(&mut self) -> Result<char, SyntaxError> {
        let first = self.hex4()?;
        let lone = "lone surrogate in a `\\u` escape";
        let lone_help =
            "a character outside the Basic Multilingual Plane needs a surrogate pair such as `\\ud83d\\ude00`";
        let code = match first {
            0xD800..=0xDBFF => {
                if !self.bytes[self.pos..].starts_with(b"\\u") {
                    return Err(self.error(lone, lone_help));
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.error(lone, lone_help));
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.error(lone, lone_help)),
            other => other,
        };
        char::from_u32(code).ok_or_else(|| self.error(lone, lone_help))
    }
}

/// Appends `/token` to a JSON pointer, escaping `~` and `/` as RFC 6901 requires.
pub(crate) fn push_pointer_token(pointer: &mut String, token: &str) {
    pointer.push('/');
    for c in token.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

fn describe_char(c: char) -> String {
    match c {
        '\'' => "`'` (JSON strings use double quotes)".to_owned(),
        '/' | '#' => format!("`{c}` (JSON has no comments)"),
        c if c.is_control() => format!("control character U+{:04X}", c as u32),
        c => format!("`{c}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_offsets_of_values_and_keys() {
        let parsed = parse(r#" {"a": [1, "x"], "b": null}"#).unwrap();
        assert_eq!(parsed.root.offset, 1);
        let a = parsed.root.get("a").unwrap();
        assert_eq!(a.key_offset, 2);
        assert_eq!(a.value.offset, 7);
        let Value::Array(items) = &a.value.value else { panic!("not an array") };
        assert_eq!(items[1].offset, 11);
        assert_eq!(items[1].value, Value::String("x".into()));
    }

    #[test]
    fn records_duplicate_keys_with_their_object_pointer() {
        let parsed = parse(r#"{"m": {"k": 1, "k": 2}}"#).unwrap();
        assert_eq!(parsed.duplicate_keys, vec![("/m".to_owned(), "k".to_owned(), 15, 7)]);
    }

    #[test]
    fn decodes_escapes_and_surrogate_pairs() {
        let parsed = parse(r#""a\n\u00e9\ud83d\ude00\/""#).unwrap();
        assert_eq!(parsed.root.value, Value::String("a\né😀/".into()));
    }

    #[test]
    fn rejects_what_rfc_8259_rejects() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "'a'",
            "01",
            "1.",
            "-",
            "\"\\ud800\"",
            "\"a\u{1}\"",
            "nul",
            "{} x",
            "// c\n{}",
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn limits_nesting_depth() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let err = parse(&deep).unwrap_err();
        assert!(err.message.contains("nested more than 128"), "{}", err.message);
        assert_eq!(err.offset, MAX_DEPTH);
    }

    #[test]
    fn accepts_a_byte_order_mark() {
        let parsed = parse("\u{feff}{}").unwrap();
        assert_eq!(parsed.root.offset, 3);
    }

    /// Differential tests against `serde_json` on generated documents and corrupted variants of them.
    ///
    /// Both parsers must accept the same texts and read the same values, except where they differ on
    /// purpose: a leading byte-order mark (we accept it), nesting of 128 levels or more (`serde_json`
    /// stops at 127, we at 128), and a number too large for an `f64` (`serde_json` rejects it; RFC 8259
    /// §9 lets a parser limit ranges, and ours keeps numbers as text). Duplicate keys are no exception:
    /// both accept them, and the last one wins in the converted value as in `serde_json`'s.
    mod differential {
        use proptest::prelude::*;
        use proptest::sample::{Index, select};
        use serde_json::Value as Serde;

        use super::*;

        fn to_serde(node: &Node) -> Serde {
            match &node.value {
                Value::Null => Serde::Null,
                Value::Bool(b) => Serde::Bool(*b),
                Value::Number(text) => serde_json::from_str(text).expect("an accepted number parses alone"),
                Value::String(s) => Serde::String(s.clone()),
                Value::Array(items) => Serde::Array(items.iter().map(to_serde).collect()),
                Value::Object(members) => {
                    let mut map = serde_json::Map::new();
                    for m in members {
                        map.insert(m.key.clone(), to_serde(&m.value));
                    }
                    Serde::Object(map)
                }
            }
        }

        /// Every recorded offset points at the text of its value or key.
        fn check_offsets(text: &str, node: &Node) -> Result<(), TestCaseError> {
            let at = &text[node.offset..];
            let starts = match &node.value {
                Value::Null => at.starts_with("null"),
                Value::Bool(b) => at.starts_with(if *b { "true" } else { "false" }),
                Value::Number(number) => at.starts_with(number.as_str()),
                Value::String(_) => at.starts_with('"'),
                Value::Array(_) => at.starts_with('['),
                Value::Object(_) => at.starts_with('{'),
            };
            prop_assert!(starts, "offset {} of {:?} in {:?}", node.offset, node.value, text);
            match &node.value {
                Value::Array(items) => items.iter().try_for_each(|item| check_offsets(text, item)),
                Value::Object(members) => members.iter().try_for_each(|m| {
                    prop_assert!(text[m.key_offset..].starts_with('"'), "key offset {} in {:?}", m.key_offset, text);
                    check_offsets(text, &m.value)
                }),
                _ => Ok(()),
            }
        }

        /// The deepest nesting of `[` and `{` outside strings (an upper bound of what a parser reaches).
        fn nesting(text: &str) -> usize {
            let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
            for b in text.bytes() {
                match (in_string, escaped, b) {
                    (true, true, _) => escaped = false,
                    (true, false, b'\\') => escaped = true,
                    (true, false, b'"') | (false, _, b'"') => in_string = !in_string,
                    (false, _, b'[' | b'{') => {
                        depth += 1;
                        deepest = deepest.max(depth);
                    }
                    (false, _, b']' | b'}') => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
            deepest
        }

        /// Whether both parsers agree on `text`: same acceptance, same value, right offsets.
        fn agrees_with_serde_json(text: &str) -> Result<(), TestCaseError> {
            if text.starts_with('\u{feff}') || nesting(text) >= 128 {
                return Ok(());
            }
            match (parse(text), serde_json::from_str::<Serde>(text)) {
                (Ok(ours), Ok(theirs)) => {
                    prop_assert_eq!(to_serde(&ours.root), theirs, "values differ for {:?}", text);
                    check_offsets(text, &ours.root)
                }
                (Err(_), Err(_)) => Ok(()),
                (Ok(_), Err(e)) if e.to_string().starts_with("number out of range") => Ok(()),
                (ours, theirs) => Err(TestCaseError::fail(format!(
                    "parsers disagree on {text:?}: ours {:?}, serde_json {:?}",
                    ours.map(|p| p.root.value).err(),
                    theirs.err().map(|e| e.to_string())
                ))),
            }
        }

        const SPECIAL_CHARS: &[char] =
            &['"', '\\', '/', '\0', '\u{1f}', '\u{7f}', 'é', '\u{2028}', '\u{feff}', '\u{ffff}', '😀', 'u'];

        /// A string literal: each character raw, as a short escape, or as `\uXXXX` (a surrogate pair
        /// above the Basic Multilingual Plane) in either case of hex digits.
        fn string_literal() -> impl Strategy<Value = String> {
            let c = prop_oneof![3 => any::<char>(), 1 => select(SPECIAL_CHARS)];
            prop::collection::vec((c, 0u8..5), 0..8).prop_map(|chars| {
                let mut out = String::from('"');
                for (c, style) in chars {
                    let short = match c {
                        '"' => Some("\\\""),
                        '\\' => Some("\\\\"),
                        '/' => Some("\\/"),
                        '\u{8}' => Some("\\b"),
                        '\u{c}' => Some("\\f"),
                        '\n' => Some("\\n"),
                        '\r' => Some("\\r"),
                        '\t' => Some("\\t"),
                        _ => None,
                    };
                    let must_escape = c == '"' || c == '\\' || c < ' ';
                    match (style, short) {
                        (0 | 1, _) if !must_escape => out.push(c),
                        (0..=2, Some(short)) => out.push_str(short),
                        _ => {
                            for unit in c.encode_utf16(&mut [0; 2]) {
                                let _ = if style == 4 {
                                    write!(out, "\\u{unit:04X}")
                                } else {
                                    write!(out, "\\u{unit:04x}")
                                };
                            }
                        }
                    }
                }
                out.push('"');
                out
            })
        }

        /// Numbers in every form of the grammar; exponents stay below the range of `f64`.
        fn number() -> impl Strategy<Value = String> {
            prop::string::string_regex("-?(0|[1-9][0-9]{0,24})(\\.[0-9]{1,24})?([eE][+-]?[0-9]{1,2})?").unwrap()
        }

        fn ws() -> impl Strategy<Value = String> {
            prop_oneof![3 => Just(String::new()), 1 => prop::string::string_regex("[ \t\n\r]{1,3}").unwrap()]
        }

        fn key() -> impl Strategy<Value = String> {
            prop_oneof![2 => string_literal(), 1 => select(&["\"a\"", "\"b\"", "\"\\u0061\""][..]).prop_map(str::to_owned)]
        }

        /// A valid JSON document of nesting depth at most 6.
        fn document() -> impl Strategy<Value = String> {
            let leaf = prop_oneof![
                Just("null".to_owned()),
                Just("true".to_owned()),
                Just("false".to_owned()),
                number(),
                string_literal(),
            ];
            let value = leaf.prop_recursive(6, 48, 4, |inner| {
                let item = (ws(), inner.clone(), ws()).prop_map(|(a, v, b)| format!("{a}{v}{b}"));
                let member = (ws(), key(), ws(), ws(), inner, ws())
                    .prop_map(|(a, k, b, c, v, d)| format!("{a}{k}{b}:{c}{v}{d}"));
                prop_oneof![
                    (ws(), prop::collection::vec(item, 0..4)).prop_map(|(w, items)| if items.is_empty() {
                        format!("[{w}]")
                    } else {
                        format!("[{}]", items.join(","))
                    }),
                    (ws(), prop::collection::vec(member, 0..4)).prop_map(|(w, ms)| if ms.is_empty() {
                        format!("{{{w}}}")
                    } else {
                        format!("{{{}}}", ms.join(","))
                    }),
                ]
            });
            (ws(), value, ws()).prop_map(|(a, v, b)| format!("{a}{v}{b}"))
        }

        #[derive(Debug, Clone)]
        enum Edit {
            Truncate(Index),
            Insert(Index, u8),
            Delete(Index),
            Replace(Index, u8),
        }

        const BYTES: &[u8] =
            b"{}[],:\"\\/0123456789-+.eEtrufalsn \t\n\r\x0b\x0c\x00\x1f\x7f\x80\xbf\xc3\xa9\xed\xa0\xef\xbb\xff";

        fn byte() -> impl Strategy<Value = u8> {
            prop_oneof![3 => select(BYTES), 1 => any::<u8>()]
        }

        fn edit() -> impl Strategy<Value = Edit> {
            prop_oneof![
                1 => any::<Index>().prop_map(Edit::Truncate),
                3 => (any::<Index>(), byte()).prop_map(|(i, b)| Edit::Insert(i, b)),
                3 => any::<Index>().prop_map(Edit::Delete),
                3 => (any::<Index>(), byte()).prop_map(|(i, b)| Edit::Replace(i, b)),
            ]
        }

        /// A valid document with one to three byte edits, read back as UTF-8 (invalid bytes replaced).
        fn corrupted() -> impl Strategy<Value = String> {
            (document(), prop::collection::vec(edit(), 1..=3)).prop_map(|(doc, edits)| {
                let mut bytes = doc.into_bytes();
                for edit in edits {
                    let len = bytes.len();
                    match edit {
                        Edit::Truncate(i) => bytes.truncate(i.index(len + 1)),
                        Edit::Insert(i, b) => bytes.insert(i.index(len + 1), b),
                        Edit::Delete(i) if len > 0 => drop(bytes.remove(i.index(len))),
                        Edit::Replace(i, b) if len > 0 => bytes[i.index(len)] = b,
                        Edit::Delete(_) | Edit::Replace(..) => {}
                    }
                }
                String::from_utf8_lossy(&bytes).into_owned()
            })
        }

        const TOKENS: &[&str] = &[
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "\"",
            "\"a\"",
            "\"\\u",
            "\\ud800",
            "\\udc00",
            "\\uDBFF\\uDFFF",
            "\\u0041",
            "\\u00e9",
            "\\",
            "\\n",
            "\\x",
            "\\u12",
            "0",
            "-",
            "1",
            "9",
            ".",
            "e",
            "E",
            "+",
            "00",
            "-0",
            "1.5e-3",
            "true",
            "fals",
            "null",
            "nul",
            " ",
            "\n",
            "\t",
            "\r",
            "\u{b}",
            "\u{c}",
            "\u{a0}",
            "\u{feff}",
            "é",
            "\u{1}",
            "\u{7f}",
            "/",
            "//",
            "/*",
            "'",
            "NaN",
            "Infinity",
        ];

        /// Concatenated JSON-ish tokens: mostly invalid, sometimes valid, often at a boundary of the grammar.
        fn token_soup() -> impl Strategy<Value = String> {
            prop::collection::vec(select(TOKENS), 0..12).prop_map(|tokens| tokens.concat())
        }

        /// Number-like text with the grammar's parts often missing or doubled (`-`, `00`, `1.`, `1e+-5`),
        /// alone or as an array element.
        fn number_soup() -> impl Strategy<Value = String> {
            let number = "-{0,2}[0-9]{0,3}\\.?[0-9]{0,2}([eE][+-]{0,2}[0-9]{0,2})?[.eE]?";
            (prop::string::string_regex(number).unwrap(), any::<bool>())
                .prop_map(|(n, in_array)| if in_array { format!("[{n}]") } else { n })
        }

        const STRING_PARTS: &[&str] = &[
            "a", "é", " ", "'", "\"", "\\", "\\/", "\\b", "\\x", "\\u", "\\u00", "\\u0041", "\\ud800", "\\udbff",
            "\\udc00", "\\udfff", "\\uD83D", "\\uDE00", "\u{0}", "\u{1f}", "\u{7f}", "\t",
        ];

        /// A quoted run of escape fragments and raw characters: surrogates paired or not, cut escapes,
        /// raw control characters.
        fn string_soup() -> impl Strategy<Value = String> {
            prop::collection::vec(select(STRING_PARTS), 0..5).prop_map(|parts| format!("\"{}\"", parts.concat()))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4000))]

            #[test]
            fn valid_documents_read_as_serde_json_reads_them(text in document()) {
                prop_assert!(parse(&text).is_ok(), "rejected the valid document {:?}", text);
                agrees_with_serde_json(&text)?;
            }

            #[test]
            fn accepts_exactly_what_serde_json_accepts(
                text in prop_oneof![3 => corrupted(), 2 => token_soup(), 1 => number_soup(), 1 => string_soup()]
            ) {
                agrees_with_serde_json(&text)?;
            }
        }
    }
}
