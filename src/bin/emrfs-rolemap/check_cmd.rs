//! `emrfs-rolemap check`: every diagnostic of one or more configurations, as text (rendered like
//! rustc, in colour on a terminal), JSON, SARIF or GitHub workflow commands; levels per code as clippy
//! sets them.
//!
//! Exit status: the worst of the files: 2 for a file that cannot be read, 1 for a file with an error
//! (a code raised with `--deny` included, or a warning with `--deny-warnings`), 0 otherwise.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use emrfs_rolemap::{Code, Diagnostic, Diagnostics, Escaped, Severity, check};
use serde::Serialize;

use crate::{OptionArgs, Unusable, ci_formats, policy_cmd, read_config_bytes};

#[derive(Args)]
pub(crate) struct CheckArgs {
    /// Security configurations to check (any accepted form); `-` reads standard input.
    #[arg(value_name = "FILE", required_unless_present = "configs")]
    files: Vec<String>,
    /// A security configuration to check, like FILE (repeat for several; these come first).
    #[arg(long = "config", value_name = "FILE")]
    configs: Vec<String>,
    #[command(flatten)]
    options: OptionArgs,
    #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
    format: CheckFormat,
    /// Exit 1 when there is a warning, not only an error (notes never fail unless denied).
    #[arg(long)]
    deny_warnings: bool,
    /// Leave out the diagnostics of CODE, a warning or note (repeat for several).
    #[arg(long, value_name = "CODE", value_parser = parse_code)]
    allow: Vec<Code>,
    /// Report the diagnostics of CODE as warnings (a note then fails with --deny-warnings).
    #[arg(long, value_name = "CODE", value_parser = parse_code)]
    warn: Vec<Code>,
    /// Report the diagnostics of CODE as errors: they fail the run, whatever their default severity.
    #[arg(long, value_name = "CODE", value_parser = parse_code)]
    deny: Vec<Code>,
    /// When to colour the text output: `auto` on a terminal unless `NO_COLOR` is set (or `TERM` is
    /// `dumb`).
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    #[command(flatten)]
    instance_profile: policy_cmd::InstanceProfileArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CheckFormat {
    /// Rendered like rustc, with a summary line per file.
    Text,
    /// One JSON array of every diagnostic, each with its `file`.
    Json,
    /// SARIF 2.1.0, for code-scanning dashboards.
    Sarif,
    /// GitHub Actions workflow commands (`::error file=...::message`), for annotations.
    Github,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// `--allow`, `--warn` and `--deny` values: a code's name, or an error that suggests the nearest one.
fn parse_code(name: &str) -> Result<Code, String> {
    Code::from_name(name).ok_or_else(|| {
        let suggestion = Code::closest(name).map(|c| format!("did you mean `{c}`? ")).unwrap_or_default();
        format!(
            "unknown code `{}`; {suggestion}the codes are listed in the README's table of diagnostics",
            Escaped(name)
        )
    })
}

/// One checked file: its name as shown, and its diagnostics with their levels applied.
pub(crate) struct Checked {
    pub(crate) name: String,
    pub(crate) diagnostics: Diagnostics,
    /// Role mappings and identifiers, for a configuration without errors.
    counts: Option<(usize, usize)>,
}

impl CheckArgs {
    /// The files in the order they are checked: `--config` ones first.
    fn files(&self) -> impl Iterator<Item = &String> {
        self.configs.iter().chain(&self.files)
    }

    /// Applies `--allow`, `--warn` and `--deny` to `diagnostics`; a code given two levels, or a level an
    /// error cannot have, is a usage error.
    fn apply_levels(&self, diagnostics: &mut Diagnostics) -> Result<(), Unusable> {
        let levels = [("--allow", &self.allow), ("--warn", &self.warn), ("--deny", &self.deny)];
        for (i, (flag, codes)) in levels.iter().enumerate() {
            for (other, other_codes) in &levels[i + 1..] {
                if let Some(code) = codes.iter().find(|c| other_codes.contains(c)) {
                    return Err(Unusable(format!("`{code}` is given both {flag} and {other}; give it one level")));
                }
            }
        }
        for &code in &self.allow {
            diagnostics.allow(code).map_err(|e| Unusable(format!("invalid --allow: {e}")))?;
        }
        for &code in &self.warn {
            diagnostics.set_severity(code, Severity::Warning).map_err(|e| Unusable(format!("invalid --warn: {e}")))?;
        }
        for &code in &self.deny {
            diagnostics.set_severity(code, Severity::Error).map_err(|e| Unusable(format!("invalid --deny: {e}")))?;
        }
        Ok(())
    }

    fn colour(&self) -> bool {
        match self.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
            }
        }
    }
}

pub(crate) fn run(args: &CheckArgs) -> Result<ExitCode, Unusable> {
    let options = args.options.options()?;
    if args.files().filter(|f| *f == "-").count() > 1 {
        return Err(Unusable("standard input (`-`) can be checked once per run".into()));
    }
    let mismatches = args.instance_profile.mismatches()?;
    // The levels are checked once before any file is read, on the diagnostics of an empty document.
    args.apply_levels(&mut check(b"", &options).diagnostics)?;
    let mut status = 0;
    let mut checked = Vec::new();
    for file in args.files() {
        let name = if file == "-" { "<stdin>".to_owned() } else { file.clone() };
        let bytes = match read_config_bytes(file) {
            Ok(bytes) => bytes,
            Err(Unusable(message)) => {
                let _ = writeln!(io::stderr(), "error: {message}");
                status = 2;
                continue;
            }
        };
        let result = check(&bytes, &options);
        let mut diagnostics = result.diagnostics;
        for mismatch in &mismatches {
            diagnostics.push(mismatch.clone());
        }
        args.apply_levels(&mut diagnostics)?;
        let failed = diagnostics.error_count() > 0 || (args.deny_warnings && diagnostics.count(Severity::Warning) > 0);
        status = status.max(u8::from(failed));
        let counts = result
            .config
            .filter(|_| diagnostics.error_count() == 0)
            .map(|c| (c.mappings().len(), c.identifier_count()));
        checked.push(Checked { name, diagnostics, counts });
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    match args.format {
        CheckFormat::Text => write_text(&mut out, &checked, args.colour())?,
        CheckFormat::Json => {
            let all: Vec<FileDiagnostic<'_>> = checked
                .iter()
                .flat_map(|c| c.diagnostics.iter().map(|diagnostic| FileDiagnostic { file: &c.name, diagnostic }))
                .collect();
            serde_json::to_writer_pretty(&mut out, &all)?;
            writeln!(out)?;
        }
        CheckFormat::Sarif => ci_formats::write_sarif(&mut out, &checked)?,
        CheckFormat::Github => ci_formats::write_github(&mut out, &checked)?,
    }
    out.flush()?;
    Ok(ExitCode::from(status))
}

/// A diagnostic in the JSON output: `{"file", ...the diagnostic's own fields}`.
#[derive(Serialize)]
struct FileDiagnostic<'a> {
    file: &'a str,
    #[serde(flatten)]
    diagnostic: &'a Diagnostic,
}

/// Each file's rendered diagnostics and summary line.
fn write_text(out: &mut impl Write, checked: &[Checked], colour: bool) -> io::Result<()> {
    for c in checked {
        let d = &c.diagnostics;
        write!(out, "{}", if colour { d.render_ansi(&c.name) } else { d.render(&c.name) })?;
        let (errors, warnings, notes) = (d.error_count(), d.count(Severity::Warning), d.count(Severity::Note));
        let counts = format!("{warnings} warning(s), {notes} note(s)");
        let name = Escaped(&c.name);
        match c.counts {
            Some((mappings, identifiers)) if errors == 0 => {
                writeln!(out, "{name}: ok, {mappings} role mapping(s), {identifiers} identifier(s), {counts}")?
            }
            _ => writeln!(out, "{name}: {errors} error(s), {counts}")?,
        }
    }
    Ok(())
}
