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
    /// `(pointer of the object, key, byte offset of the repeated key)`.
    pub(crate) duplicate_keys: Vec<(String, String, usize)>,
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
    duplicate_keys: Vec<(String, String, usize)>,
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
            if members.iter().any(|m| m.key == key) {
                self.duplicate_keys.push((pointer.clone(), key.clone(), key_offset));
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
        assert_eq!(parsed.duplicate_keys, vec![("/m".to_owned(), "k".to_owned(), 15)]);
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
}
