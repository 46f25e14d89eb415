//! `emrfs-rolemap test`: runs a cases file and reports as text, JSON or JUnit XML.

use std::io::{self, Write};
use std::process::ExitCode;

use emrfs_rolemap::cases::CaseFile;
use emrfs_rolemap::{Escaped, Resolver};
use serde_json::json;

use crate::{TestFormat, Unusable};

/// The outcome of one case.
struct Outcome {
    name: String,
    /// Every unmet expectation, or the reason the case could not run.
    failures: Vec<String>,
    resolution: serde_json::Value,
    /// The explain trace, for failed cases.
    explanation: Option<(String, serde_json::Value)>,
}

pub(crate) fn run(resolver: &Resolver, file: &CaseFile, format: TestFormat) -> Result<ExitCode, Unusable> {
    let outcomes: Vec<Outcome> = file
        .cases
        .iter()
        .enumerate()
        .map(|(position, case)| {
            let name = case.display_name(position);
            let spec = case.spec();
            let request = spec.as_ref().map_err(Clone::clone).and_then(|spec| {
                spec.request().map_err(|e| format!("invalid path `{}`: {e}", case.path.as_deref().unwrap_or_default()))
            });
            match request {
                Err(failure) => {
                    Outcome { name, failures: vec![failure], resolution: serde_json::Value::Null, explanation: None }
                }
                Ok(request) => {
                    let resolution = resolver.resolve(&request);
                    let failures = case.mismatches(&resolution);
                    let explanation = (!failures.is_empty()).then(|| {
                        let e = resolver.explain(&request);
                        (e.to_string(), serde_json::to_value(&e).unwrap_or_default())
                    });
                    let resolution = serde_json::to_value(resolution).unwrap_or_default();
                    Outcome { name, failures, resolution, explanation }
                }
            }
        })
        .collect();
    let failed = outcomes.iter().filter(|o| !o.failures.is_empty()).count();
    let passed = outcomes.len() - failed;
    let mut out = io::stdout().lock();
    match format {
        TestFormat::Text => {
            for o in &outcomes {
                writeln!(out, "{}  {}", if o.failures.is_empty() { "ok  " } else { "FAIL" }, Escaped(&o.name))?;
                for failure in &o.failures {
                    writeln!(out, "        {}", Escaped(failure))?;
                }
                if let Some((trace, _)) = &o.explanation {
                    for line in trace.lines() {
                        writeln!(out, "        | {line}")?;
                    }
                }
            }
            writeln!(out, "test result: {passed} passed, {failed} failed")?;
        }
        TestFormat::Json => {
            let cases: Vec<_> = outcomes
                .iter()
                .map(|o| {
                    json!({
                        "name": o.name,
                        "passed": o.failures.is_empty(),
                        "failures": o.failures,
                        "resolution": o.resolution,
                        "explanation": o.explanation.as_ref().map(|(_, json)| json),
                    })
                })
                .collect();
            let report = json!({"passed": passed, "failed": failed, "cases": cases});
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
        TestFormat::Junit => write_junit(&mut out, &outcomes, failed)?,
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn write_junit(out: &mut impl Write, outcomes: &[Outcome], failed: usize) -> io::Result<()> {
    let total = outcomes.len();
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(out, r#"<testsuites name="emrfs-rolemap" tests="{total}" failures="{failed}" errors="0">"#)?;
    writeln!(out, r#"  <testsuite name="emrfs-rolemap" tests="{total}" failures="{failed}" errors="0" skipped="0">"#)?;
    for o in outcomes {
        let name = xml_escape(&o.name);
        if o.failures.is_empty() {
            writeln!(out, r#"    <testcase classname="emrfs-rolemap" name="{name}"/>"#)?;
            continue;
        }
        let message = xml_escape(&o.failures.join("; "));
        let body = match &o.explanation {
            Some((trace, _)) => format!("{}\n\n{trace}", o.failures.join("\n")),
            None => o.failures.join("\n"),
        };
        writeln!(out, r#"    <testcase classname="emrfs-rolemap" name="{name}">"#)?;
        writeln!(out, r#"      <failure message="{message}" type="expectation">{}</failure>"#, xml_escape(&body))?;
        writeln!(out, "    </testcase>")?;
    }
    writeln!(out, "  </testsuite>")?;
    writeln!(out, "</testsuites>")
}

/// Escapes text for XML attributes and content; drops characters XML 1.0 cannot carry.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}
