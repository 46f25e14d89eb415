//! The CI outputs of `check`: SARIF 2.1.0 for code-scanning dashboards, and GitHub Actions workflow
//! commands for annotations. Both are written from what the library's diagnostics carry (code,
//! severity, message, help, positions, the related place) and its table of codes.
//!
//! Positions inside the document embedded in `aws emr describe-security-configuration` output are not
//! positions in the file, so such a diagnostic names the file only, and its message says where in the
//! embedded document it is.

use std::io::{self, Write};

use emrfs_rolemap::{Code, Diagnostic, Escaped, Severity};
use serde_json::{Value, json};

use crate::check_cmd::Checked;

/// The official schema's address, which SARIF files name.
const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn sarif_level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

/// One SARIF log with one run: every code as a rule, every diagnostic as a result.
pub(crate) fn write_sarif(out: &mut impl Write, checked: &[Checked]) -> io::Result<()> {
    let rules: Vec<Value> = Code::ALL
        .iter()
        .map(|code| {
            json!({
                "id": code.as_str(),
                "shortDescription": {"text": code.description()},
                "help": {"text": code.help()},
                "defaultConfiguration": {"level": sarif_level(code.severity())},
            })
        })
        .collect();
    let results: Vec<Value> =
        checked.iter().flat_map(|c| c.diagnostics.iter().map(|d| sarif_result(&c.name, d))).collect();
    let log = json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "emrfs-rolemap",
                "version": env!("CARGO_PKG_VERSION"),
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    serde_json::to_writer_pretty(&mut *out, &log)?;
    writeln!(out)
}

fn sarif_result(file: &str, d: &Diagnostic) -> Value {
    let rule_index = Code::ALL.iter().position(|c| *c == d.code()).unwrap_or_default();
    let mut result = json!({
        "ruleId": d.code().as_str(),
        "ruleIndex": rule_index,
        "level": sarif_level(d.severity()),
        "message": {"text": message(d)},
        "locations": [sarif_location(file, d)],
        "properties": {"pointer": d.pointer(), "help": d.help()},
    });
    if let Some(related) = d.related() {
        let mut location = sarif_location(file, related);
        location["id"] = json!(0);
        location["message"] = json!({"text": related.message()});
        result["relatedLocations"] = json!([location]);
    }
    result
}

/// The diagnostic's message, with its place in the embedded document when it has one there.
fn message(d: &Diagnostic) -> String {
    match (d.embedded_in(), d.location()) {
        (Some(outer), Some(at)) => format!(
            "{} (at {}:{} of the document embedded in `{outer}`, `{}`)",
            d.message(),
            at.line,
            at.column,
            d.pointer()
        ),
        _ => d.message().to_owned(),
    }
}

/// A physical location: the file, and the region where the diagnostic has a position in it.
fn sarif_location(file: &str, d: &Diagnostic) -> Value {
    let mut physical = json!({"artifactLocation": {"uri": uri(file)}});
    if let (None, Some(at)) = (d.embedded_in(), d.location()) {
        let mut region = json!({"startLine": at.line, "startColumn": at.column});
        if let Some(end) = d.end() {
            region["endLine"] = json!(end.line);
            region["endColumn"] = json!(end.column);
        }
        physical["region"] = region;
    }
    json!({"physicalLocation": physical})
}

/// A file name as a URI reference: percent-encoded but for unreserved characters and `/`, absolute
/// paths as `file://` URIs.
fn uri(file: &str) -> String {
    let mut out = String::with_capacity(file.len());
    if file.starts_with('/') {
        out.push_str("file://");
    }
    for b in file.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One workflow command per diagnostic: `::error file=F,line=L,col=C,endLine=..,endColumn=..,title=CODE::
/// MESSAGE`, the help on a second line of the annotation.
pub(crate) fn write_github(out: &mut impl Write, checked: &[Checked]) -> io::Result<()> {
    for c in checked {
        for d in &c.diagnostics {
            let command = match d.severity() {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Note => "notice",
            };
            let mut properties = vec![("file", Escaped(&c.name).to_string())];
            if let (None, Some(at)) = (d.embedded_in(), d.location()) {
                properties.push(("line", at.line.to_string()));
                properties.push(("col", at.column.to_string()));
                if let Some(end) = d.end() {
                    properties.push(("endLine", end.line.to_string()));
                    properties.push(("endColumn", end.column.to_string()));
                }
            }
            properties.push(("title", d.code().to_string()));
            let properties: Vec<String> =
                properties.iter().map(|(name, value)| format!("{name}={}", encode_property(value))).collect();
            let mut data = Escaped(&message(d)).to_string();
            if !d.help().is_empty() {
                data = format!("{data}\nhelp: {}", Escaped(d.help()));
            }
            writeln!(out, "::{command} {}::{}", properties.join(","), encode_data(&data))?;
        }
    }
    Ok(())
}

/// The workflow-command encoding of a message: `%`, CR and LF, so that no text can end the command or
/// start another one.
fn encode_data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// The workflow-command encoding of a property value: the message's, and `:` and `,`, which end a
/// property.
fn encode_property(text: &str) -> String {
    encode_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_command_encoding() {
        assert_eq!(encode_data("100% a\r\n::error::x"), "100%25 a%0D%0A::error::x");
        assert_eq!(encode_property("a,b:c%\n"), "a%2Cb%3Ac%25%0A");
    }

    #[test]
    fn file_names_become_uri_references() {
        assert_eq!(uri("configs/prod sc.json"), "configs/prod%20sc.json");
        assert_eq!(uri("/etc/emrfs/sc#1.json"), "file:///etc/emrfs/sc%231.json");
        assert_eq!(uri("é.json"), "%C3%A9.json");
    }
}
