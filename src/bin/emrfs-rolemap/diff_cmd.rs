//! The `diff` command: which requests change role or decision between two configurations.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use emrfs_rolemap::{Diff, Escaped};

use crate::{OptionArgs, Unusable, display_name, read_config_bytes, usable};

#[derive(Args)]
pub(crate) struct DiffArgs {
    /// The configuration before the change (any accepted form); `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    old: String,
    /// The configuration after the change (any accepted form); `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    new: String,
    #[command(flatten)]
    options: OptionArgs,
    /// List at most N transitions, the first by old mapping index.
    #[arg(long, value_name = "N", default_value_t = Diff::DEFAULT_MAX_CHANGES)]
    max_changes: usize,
    /// Also list requests that keep their role and decision through another mapping or identifier.
    #[arg(long)]
    include_same_role: bool,
    #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
    format: DiffFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DiffFormat {
    Text,
    Json,
    Markdown,
}

/// Prints the diff; exits 0 when no request changes, 1 when some do.
pub(crate) fn run(args: &DiffArgs) -> Result<ExitCode, Unusable> {
    if args.old == "-" && args.new == "-" {
        return Err(Unusable("--old and --new cannot both read standard input".into()));
    }
    let options = args.options.options()?;
    let old = usable(&read_config_bytes(&args.old)?, &options, display_name(&args.old))?;
    let new = usable(&read_config_bytes(&args.new)?, &options, display_name(&args.new))?;
    let diff = Diff::between(&old, &new, &options)
        .map_err(|e| {
            Unusable(format!(
                "cannot compare `{}` and `{}`: {e}",
                Escaped(display_name(&args.old)),
                Escaped(display_name(&args.new))
            ))
        })?
        .with_max_changes(args.max_changes)
        .with_same_role(args.include_same_role);
    let mut out = io::stdout().lock();
    match args.format {
        DiffFormat::Text => write!(out, "{diff}")?,
        DiffFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &diff)?;
            writeln!(out)?;
        }
        DiffFormat::Markdown => write!(out, "{}", diff.markdown())?,
    }
    let changed = !diff.changes().is_empty() || diff.truncated();
    Ok(if changed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
