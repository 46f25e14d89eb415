//! Positions in a document: byte offsets turned into lines and columns in linear time, the extent of
//! the JSON value at a position, and the excerpt of a source line shown under a diagnostic.

use super::{Escaped, Location};

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
    pub(crate) fn excerpt(&mut self, at: Location, width: usize) -> Option<(usize, Excerpt<'t>)> {
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
        Some((offset, Excerpt { text: &text[start..end], start, cut_left, cut_right }))
    }

    /// Where the JSON value (or key) at `at` ends: the location just after its last character. At a
    /// position that starts no value (such as the character a syntax error is about), the end of that
    /// one character. `None` for line 0.
    pub(crate) fn end_of_value(&mut self, at: Location) -> Option<Location> {
        let offset = self.offset_of(at)?;
        let end = value_end(self.text, offset);
        Some(self.locate(end))
    }
}

/// The byte offset just after the JSON value that starts at `start` in `text`: a string to its closing
/// quote (or the end of its line, when it has none), an array or object to its closing bracket (or the
/// end of the text), a number or keyword to its last character; any other character is a value of one
/// character. Reads the value once, whatever its size.
fn value_end(text: &str, start: usize) -> usize {
    let bytes = text.as_bytes();
    let string_end = |mut i: usize| {
        i += 1;
        while let Some(&b) = bytes.get(i) {
            match b {
                b'"' => return i + 1,
                b'\\' => i += 2,
                b'\n' | b'\r' => return i,
                _ => i += 1,
            }
        }
        bytes.len()
    };
    match bytes.get(start) {
        None => start,
        Some(b'"') => string_end(start),
        Some(b'{' | b'[') => {
            let (mut i, mut depth) = (start, 0usize);
            while let Some(&b) = bytes.get(i) {
                match b {
                    b'"' => {
                        i = string_end(i);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            bytes.len()
        }
        Some(b) if b.is_ascii_alphanumeric() || *b == b'-' => {
            let run =
                bytes[start..].iter().take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.'));
            start + run.count()
        }
        Some(_) => start + text[start..].chars().next().map_or(0, char::len_utf8),
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

/// How many columns of a source line a rendered diagnostic shows at most.
pub(crate) const EXCERPT_WIDTH: usize = 100;

/// The part of a source line shown under a diagnostic.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Excerpt<'t> {
    text: &'t str,
    /// The document offset where `text` starts.
    start: usize,
    /// Whether the line goes on before `text`, and after it.
    cut_left: bool,
    cut_right: bool,
}

impl Excerpt<'_> {
    /// Whether the excerpt shows the character at document offset `offset` (or ends there).
    pub(crate) fn shows(&self, offset: usize) -> bool {
        (self.start..=self.end()).contains(&offset)
    }

    /// The document offset where the excerpt ends.
    pub(crate) fn end(&self) -> usize {
        self.start + self.text.len()
    }

    /// The document offset of `column` of the excerpt's line, counting from document offset `offset` at
    /// `at_column`; clamped to the excerpt.
    pub(crate) fn offset_of_column(&self, offset: usize, at_column: u32, column: u32) -> usize {
        let from = offset.clamp(self.start, self.end());
        let wanted = column.saturating_sub(at_column) as usize;
        let skipped: usize = self.text[from - self.start..].chars().take(wanted).map(char::len_utf8).sum();
        from + skipped
    }

    /// The text to print: through [`Escaped`], with `…` where the line was cut.
    pub(crate) fn shown(&self) -> String {
        let left = if self.cut_left { "…" } else { "" };
        let right = if self.cut_right { "…" } else { "" };
        format!("{left}{}{right}", Escaped(self.text))
    }

    /// The byte offset in [`shown`](Self::shown) of document offset `offset`, clamped to the excerpt.
    pub(crate) fn shown_offset(&self, offset: usize) -> usize {
        let left = if self.cut_left { "…".len() } else { 0 };
        let raw = offset.clamp(self.start, self.end()) - self.start;
        let before = &self.text[..raw];
        left + before.chars().map(|c| if Escaped::escapes(c) { Escaped::width(c) } else { c.len_utf8() }).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The excerpt of the line of `at` as shown, and the caret's column in it.
    fn shown(locator: &mut Locator<'_>, at: Location) -> (String, usize) {
        let (offset, excerpt) = locator.excerpt(at, 100).unwrap();
        let text = excerpt.shown();
        let caret = text[..excerpt.shown_offset(offset)].chars().count();
        (text, caret)
    }

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
    fn excerpts_measure_escaped_characters_by_their_shown_width() {
        let line = "\u{1b}".repeat(300);
        let mut locator = Locator::new(&line);
        let (shown, caret) = shown(&mut locator, Location { line: 1, column: 200 });
        assert_eq!(shown, format!("…{}…", r"\u{1b}".repeat(16)));
        assert_eq!(caret, 49, "after `…` and 8 escapes of 6 columns");
    }

    #[test]
    fn long_lines_are_clipped_around_the_caret() {
        let line = "x".repeat(300);
        let mut locator = Locator::new(&line);
        let (text, caret) = shown(&mut locator, Location { line: 1, column: 200 });
        assert_eq!(text.chars().count(), 102);
        assert_eq!(caret, 51);
        let short = "ab\tc\r\nde";
        let mut locator = Locator::new(short);
        assert_eq!(shown(&mut locator, Location { line: 1, column: 4 }), (r"ab\tc".to_owned(), 4));
        assert_eq!(shown(&mut locator, Location { line: 2, column: 2 }), ("de".to_owned(), 1));
        assert_eq!(shown(&mut locator, Location { line: 2, column: 9 }), ("de".to_owned(), 2), "past the end");
        assert_eq!(locator.excerpt(Location { line: 0, column: 0 }, 100), None);
    }

    #[test]
    fn values_end_after_their_last_character() {
        let text = "{\"a\": [\"x\\\"]\", {\"b\": null}], \"c\": -1.5e3, \"d\": tru";
        let end_at = |s: &str| value_end(text, text.find(s).unwrap());
        assert_eq!(&text[..end_at("[")], "{\"a\": [\"x\\\"]\", {\"b\": null}]", "brackets in strings do not count");
        assert_eq!(&text[text.find("\"x").unwrap()..end_at("\"x")], "\"x\\\"]\"");
        assert_eq!(&text[text.find("-1").unwrap()..end_at("-1")], "-1.5e3");
        assert_eq!(end_at("{"), text.len(), "an object that is never closed ends with the text");
        assert_eq!(value_end("\"open\nx", 0), 5, "an unterminated string ends with its line");
        assert_eq!(value_end("'é", 0), 1);
        assert_eq!(value_end("é", 0), 2);
        let mut locator = Locator::new("[\n  {\"k\": 1},\n  \"v\"]");
        assert_eq!(locator.end_of_value(Location { line: 2, column: 3 }), Some(Location { line: 2, column: 11 }));
        assert_eq!(locator.end_of_value(Location { line: 1, column: 1 }), Some(Location { line: 3, column: 7 }));
        assert_eq!(locator.end_of_value(Location { line: 0, column: 0 }), None);
    }
}
