//! `emrfs-rolemap test`: runs a cases file and reports as text, JSON or JUnit XML.
//!
//! JUnit is what CI systems read: a `testsuite` named after the cases file with `tests`, `failures`,
//! `errors`, `time`, `timestamp` and `file`; one `testcase` per case with its `classname` (the cases
//! file's name without its extension) and `time`; a `<failure>` for an unmet expectation and an
//! `<error>` for a case that cannot run. When the configuration or the cases file is unusable, the
//! JUnit document still comes, with one errored case that says why (exit status 2), so CI shows it.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use emrfs_rolemap::cases::CaseFile;
use emrfs_rolemap::{Escaped, Resolver};
use serde_json::json;

use crate::{ConfigArgs, TestFormat, Unusable, distinct_inputs, load, read_cases};

/// The outcome of one case.
struct Outcome {
    name: String,
    /// Every unmet expectation, or the reason the case could not run.
    failures: Vec<String>,
    /// Why the case could not run, as a JUnit error type (`invalid-path`, `unusable-input`): an error
    /// rather than a failure.
    error: Option<&'static str>,
    resolution: serde_json::Value,
    /// The explain trace, for failed cases.
    explanation: Option<(String, serde_json::Value)>,
    time: Duration,
}

/// Runs `cases` against the configuration; with JUnit, an unusable input still yields a document.
pub(crate) fn run(config: &ConfigArgs, cases: &str, format: TestFormat) -> Result<ExitCode, Unusable> {
    let suite = Suite::new(cases);
    let loaded = (|| {
        distinct_inputs(config, "--cases", Some(cases))?;
        let file = CaseFile::from_json(&read_cases(cases)?)
            .map_err(|e| Unusable(format!("invalid cases file `{}`: {}", Escaped(cases), Escaped(&e.to_string()))))?;
        let options = file.options(&config.options()?).map_err(Unusable)?;
        Ok((load(config, options)?, file))
    })();
    let (resolver, file) = match loaded {
        Ok(loaded) => loaded,
        Err(Unusable(message)) if format == TestFormat::Junit => {
            let outcome = Outcome {
                name: "the configuration and the cases file can be used".to_owned(),
                failures: vec![message.clone()],
                error: Some("unusable-input"),
                resolution: serde_json::Value::Null,
                explanation: None,
                time: Duration::ZERO,
            };
            write_junit(&mut io::stdout().lock(), &suite, &[outcome])?;
            return Err(Unusable(message));
        }
        Err(unusable) => return Err(unusable),
    };
    report(&resolver, &file, format, &suite)
}

/// What the JUnit `testsuite` says about the run: its name, file and start.
struct Suite {
    /// The cases file's name without its extension (`-`: `stdin`).
    name: String,
    file: String,
    timestamp: String,
    started: Instant,
}

impl Suite {
    fn new(cases: &str) -> Suite {
        let name = match std::path::Path::new(cases).file_stem() {
            Some(stem) if cases != "-" => stem.to_string_lossy().into_owned(),
            _ => "stdin".to_owned(),
        };
        let now = time::OffsetDateTime::now_utc();
        let timestamp = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        Suite { name, file: cases.to_owned(), timestamp, started: Instant::now() }
    }
}

fn report(resolver: &Resolver, file: &CaseFile, format: TestFormat, suite: &Suite) -> Result<ExitCode, Unusable> {
    let outcomes: Vec<Outcome> = file
        .cases
        .iter()
        .enumerate()
        .map(|(position, case)| {
            let started = Instant::now();
            let name = case.display_name(position);
            let mut outcome = match case.request() {
                Err(e) => Outcome {
                    name,
                    failures: vec![format!("invalid path `{}`: {e}", case.path.as_deref().unwrap_or_default())],
                    error: Some("invalid-path"),
                    resolution: serde_json::Value::Null,
                    explanation: None,
                    time: Duration::ZERO,
                },
                Ok(request) => {
                    let resolution = resolver.resolve(&request);
                    let failures = case.mismatches(&resolution);
                    let explanation = (!failures.is_empty()).then(|| {
                        let e = resolver.explain(&request);
                        (e.to_string(), serde_json::to_value(&e).unwrap_or_default())
                    });
                    let resolution = serde_json::to_value(resolution).unwrap_or_default();
                    Outcome { name, failures, error: None, resolution, explanation, time: Duration::ZERO }
                }
            };
            outcome.time = started.elapsed();
            outcome
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
        TestFormat::Junit => write_junit(&mut out, suite, &outcomes)?,
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn write_junit(out: &mut impl Write, suite: &Suite, outcomes: &[Outcome]) -> io::Result<()> {
    let total = outcomes.len();
    let errors = outcomes.iter().filter(|o| o.error.is_some()).count();
    let failures = outcomes.iter().filter(|o| o.error.is_none() && !o.failures.is_empty()).count();
    let time = format!("{:.3}", suite.started.elapsed().as_secs_f64());
    let (name, file) = (xml_escape(&suite.name), xml_escape(&suite.file));
    let counts = format!(r#"tests="{total}" failures="{failures}" errors="{errors}" skipped="0" time="{time}""#);
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(out, r#"<testsuites name="emrfs-rolemap" {counts}>"#)?;
    writeln!(out, r#"  <testsuite name="{name}" {counts} timestamp="{}" file="{file}">"#, suite.timestamp)?;
    for o in outcomes {
        let case = format!(r#"name="{}" classname="{name}" time="{:.3}""#, xml_escape(&o.name), o.time.as_secs_f64());
        if o.failures.is_empty() {
            writeln!(out, "    <testcase {case}/>")?;
            continue;
        }
        // The attribute holds one line: the first of each failure (an unusable configuration's message
        // goes on with its rendered errors, which the element's text holds).
        let message =
            xml_escape(&o.failures.iter().map(|f| f.lines().next().unwrap_or_default()).collect::<Vec<_>>().join("; "));
        let body = match &o.explanation {
            Some((trace, _)) => format!("{}\n\n{trace}", o.failures.join("\n")),
            None => o.failures.join("\n"),
        };
        let (element, kind) = match o.error {
            Some(kind) => ("error", kind),
            None => ("failure", "expectation"),
        };
        writeln!(out, "    <testcase {case}>")?;
        writeln!(out, r#"      <{element} message="{message}" type="{kind}">{}</{element}>"#, xml_escape(&body))?;
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
