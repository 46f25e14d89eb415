//! Rendering diagnostics like rustc, through `codespan-reporting`: the header, the location, the
//! source line with the value underlined and labelled, the related place, and the help.
//!
//! The renderer is given excerpts, never the document: each place is shown as the excerpt of its line
//! that [`Locator::excerpt`] cuts (at most [`EXCERPT_WIDTH`] columns, found without reading the rest of
//! a long line), already shown through [`Escaped`], as a file of one line whose line and column
//! numbers (codespan's `Files` trait asks for them) are the document's. So the renderer writes text
//! that can no longer act on a terminal, exactly as the escaping rule shows it, and a diagnostic costs
//! the same on a minified one-line document of 10 MB as on a short line.

use std::ops::Range;

use codespan_reporting::diagnostic::{Diagnostic as Report, Label, Severity as Level};
use codespan_reporting::files::{Error, Files};
use codespan_reporting::term::termcolor::Buffer;
use codespan_reporting::term::{self, Chars, Config, Styles, StylesWriter};

use super::source::{EXCERPT_WIDTH, Excerpt, Locator};
use super::{Diagnostic, Diagnostics, Escaped, Location, Severity};

/// Renders every diagnostic of `diagnostics`, plain or with ANSI colours.
pub(super) fn render(diagnostics: &Diagnostics, file_name: &str, colour: bool) -> String {
    let config = Config { chars: Chars::ascii(), ..Config::default() };
    let styles = Styles::default();
    let mut document = Locator::new(&diagnostics.document);
    let mut embedded = diagnostics.embedded.as_deref().map(Locator::new);
    let mut out = String::new();
    for d in &diagnostics.items {
        let source = match (&d.embedded_in, embedded.as_mut()) {
            (Some(_), Some(embedded)) => embedded,
            _ => &mut document,
        };
        let (files, report) = report(d, source, file_name);
        let rendered = if colour {
            let mut buffer = Buffer::ansi();
            term::emit_to_write_style(&mut StylesWriter::new(&mut buffer, &styles), &config, &files, &report)
                .map(|()| String::from_utf8_lossy(buffer.as_slice()).into_owned())
        } else {
            term::emit_into_string(&config, &files, &report)
        };
        match rendered {
            // The renderer pads some lines under labels with spaces; nothing is lost without them.
            Ok(text) => {
                for line in text.lines() {
                    out.push_str(line.trim_end_matches(' '));
                    out.push('\n');
                }
            }
            // The excerpts answer every question the renderer asks; should one still fail, the header
            // and the help remain.
            Err(_) => {
                out.push_str(&format!("{}[{}]: {}\n", d.severity, d.code, Escaped(&d.message)));
                if !d.help.is_empty() {
                    out.push_str(&format!("  = help: {}\n", Escaped(&d.help)));
                }
                out.push('\n');
            }
        }
    }
    out
}

/// The report of one diagnostic, and the excerpts its labels point into.
fn report<'t>(d: &Diagnostic, source: &mut Locator<'t>, file_name: &str) -> (Excerpts<'t>, Report<usize>) {
    let level = match d.severity {
        Severity::Error => Level::Error,
        Severity::Warning => Level::Warning,
        Severity::Note => Level::Note,
    };
    let name = match &d.embedded_in {
        Some(outer) => format!("{} (document embedded in `{}`)", Escaped(file_name), Escaped(outer)),
        None => Escaped(file_name).to_string(),
    };
    let mut files = Excerpts { name, shown: Vec::new() };
    let mut labels = Vec::new();
    if let Some(at) = d.location {
        let pointer = if d.pointer.is_empty() { "(document root)" } else { d.pointer.as_str() };
        labels.extend(files.label(source, at, d.end, true).map(|l| l.with_message(Escaped(pointer).to_string())));
        if let Some(related) = d.related.as_deref()
            && let Some(at) = related.location
        {
            let label = files.label(source, at, related.end, false);
            labels.extend(label.map(|l| l.with_message(Escaped(&related.message).to_string())));
        }
    }
    let mut report =
        Report::new(level).with_code(d.code.as_str()).with_message(Escaped(&d.message).to_string()).with_labels(labels);
    if !d.help.is_empty() {
        report = report.with_notes(vec![format!("help: {}", Escaped(&d.help))]);
    }
    (files, report)
}

/// The excerpts of one diagnostic, each a one-line file for the renderer, all with the same name.
struct Excerpts<'t> {
    name: String,
    shown: Vec<Shown<'t>>,
}

/// One excerpt: as cut from its line, as shown, and the column of each label that starts in it.
struct Shown<'t> {
    excerpt: Excerpt<'t>,
    text: String,
    line: u32,
    /// Where a label starts in `text`, and the document column there.
    starts: Vec<(usize, u32)>,
}

impl<'t> Excerpts<'t> {
    /// A label on the value from `at` to `end` (clipped to the excerpt of its line; one character when
    /// it has no extent): in the excerpt already shown that holds `at` when there is one (the related
    /// place on the line of the diagnostic, near it), otherwise in a new one.
    fn label(
        &mut self,
        source: &mut Locator<'t>,
        at: Location,
        end: Option<Location>,
        primary: bool,
    ) -> Option<Label<usize>> {
        let (offset, excerpt) = source.excerpt(at, EXCERPT_WIDTH)?;
        let id = match self.shown.iter().position(|s| s.line == at.line && s.excerpt.shows(offset)) {
            Some(id) => id,
            None => {
                let text = excerpt.shown();
                self.shown.push(Shown { excerpt, text, line: at.line, starts: Vec::new() });
                self.shown.len() - 1
            }
        };
        let shown = &mut self.shown[id];
        let end_offset = match end {
            Some(end) if end.line == at.line => shown.excerpt.offset_of_column(offset, at.column, end.column),
            _ => shown.excerpt.end(),
        };
        let start = shown.excerpt.shown_offset(offset);
        let mut stop = shown.excerpt.shown_offset(end_offset);
        if stop <= start {
            stop = shown.text[start..].chars().next().map_or(start, |c| start + c.len_utf8());
        }
        shown.starts.push((start, at.column));
        Some(if primary { Label::primary(id, start..stop) } else { Label::secondary(id, start..stop) })
    }
}

impl<'a> Files<'a> for Excerpts<'_> {
    type FileId = usize;
    type Name = &'a str;
    type Source = &'a str;

    fn name(&'a self, _: usize) -> Result<&'a str, Error> {
        Ok(&self.name)
    }

    fn source(&'a self, id: usize) -> Result<&'a str, Error> {
        self.shown.get(id).map(|s| s.text.as_str()).ok_or(Error::FileMissing)
    }

    fn line_index(&'a self, _: usize, _: usize) -> Result<usize, Error> {
        Ok(0)
    }

    fn line_number(&'a self, id: usize, _: usize) -> Result<usize, Error> {
        self.shown.get(id).map(|s| s.line as usize).ok_or(Error::FileMissing)
    }

    fn column_number(&'a self, id: usize, _: usize, byte_index: usize) -> Result<usize, Error> {
        let shown = self.shown.get(id).ok_or(Error::FileMissing)?;
        let column = shown.starts.iter().find(|(start, _)| *start == byte_index).or(shown.starts.first());
        Ok(column.map_or(1, |(_, column)| *column as usize))
    }

    fn line_range(&'a self, id: usize, line_index: usize) -> Result<Range<usize>, Error> {
        let shown = self.shown.get(id).ok_or(Error::FileMissing)?;
        match line_index {
            0 => Ok(0..shown.text.len()),
            _ => Err(Error::LineTooLarge { given: line_index, max: 0 }),
        }
    }
}
