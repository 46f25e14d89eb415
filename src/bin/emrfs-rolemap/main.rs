//! The `emrfs-rolemap` command line: argument parsing and output only; all logic lives in the library.
//!
//! Exit status: 0 success, 1 a negative answer (errors found, cases failed, bad request lines, STS
//! refused or failed), 2 a usage error or unusable input.

mod bench;
mod bench_cmd;
#[cfg(all(feature = "server", unix))]
mod bench_server;
mod check_cmd;
mod ci_formats;
mod counting_alloc;
#[cfg(feature = "sts")]
mod credentials_cmd;
mod diff_cmd;
mod test_cmd;

mod policy_cmd;
#[cfg(all(feature = "sts", feature = "server", unix))]
mod serve_cmd;
mod source;
#[cfg(all(feature = "server", unix))]
mod token_cmd;

use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use emrfs_rolemap::{
    Escaped, PrefixMatch, Request, RequestLines, RequestSpec, Resolver, ResolverBuilder, ResolverOptions, RoleArn,
    SecurityConfiguration,
};

/// Counts only what `bench` measures, on the thread that measures it (see `counting_alloc.rs`).
#[global_allocator]
static ALLOCATOR: counting_alloc::CountingAllocator = counting_alloc::CountingAllocator;

/// Decide which IAM role an EMRFS S3 request uses, from a security configuration's role mappings.
#[derive(Parser)]
#[command(name = "emrfs-rolemap", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate security configurations and print every diagnostic: errors, warnings and notes.
    Check(Box<check_cmd::CheckArgs>),
    /// Print the IAM policies the mapped roles, the instance-profile role and cluster creators need.
    Policy {
        #[command(subcommand)]
        policy: policy_cmd::PolicyCommand,
    },
    /// Resolve one request, or a JSON Lines file of requests with --requests.
    Resolve {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        request: RequestArgs,
        /// Read requests as JSON Lines (`{"user", "groups", "path"}`) from FILE (`-` for standard input)
        /// and write one JSON line per request.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["user", "group", "os_groups", "path"])]
        requests: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show every mapping's verdict on one request, and which one decides.
    Explain {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        request: RequestArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run a file of expected resolutions against the configuration (for CI).
    Test {
        #[command(flatten)]
        config: ConfigArgs,
        /// The cases file: `{"fallback_role"?, "cases": [{"name", "user", "groups", "path", "expect"}]}`.
        #[arg(long, value_name = "FILE")]
        cases: String,
        #[arg(long, value_enum, default_value_t = TestFormat::Text)]
        format: TestFormat,
    },
    /// Show which requests change role or decision between two configurations, grouped by transition,
    /// each with a witness request; exits 1 when some do.
    Diff(Box<diff_cmd::DiffArgs>),
    /// Write a synthetic configuration and a request corpus for it, reproducible from a seed.
    Generate(bench_cmd::GenerateArgs),
    /// Benchmark a configuration: compiled versus reference resolve times, compile time and memory.
    Bench(bench_cmd::BenchArgs),
    /// Resolve one request and print the decided role's credentials in the AWS `credential_process`
    /// format: AssumeRole for a mapping, the base credentials for a fallback.
    #[cfg(feature = "sts")]
    Credentials {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        request: RequestArgs,
        #[command(flatten)]
        sts: credentials_cmd::StsArgs,
    },
    /// Serve resolve, explain and credentials over HTTP on a TCP address and/or a Unix socket, reloading
    /// the configuration on SIGHUP and when the file changes; SIGTERM drains and exits.
    #[cfg(all(feature = "sts", feature = "server", unix))]
    Serve(Box<serve_cmd::ServeArgs>),
    /// Get a per-user token from `serve` over its Unix socket, for the AWS SDKs' container-credentials
    /// provider (AWS_CONTAINER_AUTHORIZATION_TOKEN); or revoke tokens with --revoke.
    #[cfg(all(feature = "server", unix))]
    Token(token_cmd::TokenArgs),
    /// Ask `serve` over its Unix socket for your own user's credentials, printed in the AWS
    /// `credential_process` format: a `~/.aws/config` profile per data area.
    #[cfg(all(feature = "server", unix))]
    Fetch(token_cmd::FetchArgs),
    /// Print a completion script for SHELL on standard output (see the README's "Install").
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on standard output: `emrfs-rolemap man > emrfs-rolemap.1`.
    Man,
}

#[derive(Args)]
struct ConfigArgs {
    #[command(flatten)]
    source: source::SourceArgs,
    #[command(flatten)]
    options: OptionArgs,
}

/// The options that change how a configuration is read and resolved.
#[derive(Args)]
struct OptionArgs {
    /// How `Prefix` identifiers match keys.
    #[arg(long, value_enum, default_value_t = PrefixMatchArg::String)]
    prefix_match: PrefixMatchArg,
    /// Treat identifiers with `*`, `?`, `[` or `{` as globs.
    #[arg(long)]
    globs: bool,
    /// The instance-profile role ARN to report on a fallback (default with --cluster-id: the role of the
    /// cluster's instance profile).
    #[arg(long, value_name = "ARN")]
    fallback_role: Option<String>,
}

#[derive(Args)]
struct RequestArgs {
    /// The Hadoop user.
    #[arg(long)]
    user: Option<String>,
    /// A Hadoop group of the user (repeat for several).
    #[arg(long = "group", value_name = "GROUP")]
    group: Vec<String>,
    /// Look the user's groups up in the operating system (NSS, as the server does), primary group
    /// first; without --user, this process's user and groups.
    #[arg(long, conflicts_with = "group")]
    os_groups: bool,
    /// The S3 location, `s3://bucket/key`.
    #[arg(long)]
    path: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TestFormat {
    Text,
    Json,
    Junit,
}

#[derive(Clone, Copy, ValueEnum)]
enum PrefixMatchArg {
    String,
    Segment,
}

/// Why the command could not do its work: exit status 2, with a message on standard error (printed
/// through [`EscapedLines`]; text from the input is quoted through [`Escaped`] where the message is made).
///
/// The one message that is empty says that standard output was closed by its reader (`check ... | head
/// -1`): the command then ends quietly with status 0, as ripgrep does.
struct Unusable(String);

impl<E: std::fmt::Display + 'static> From<E> for Unusable {
    fn from(e: E) -> Self {
        let any = &e as &dyn std::any::Any;
        let kind = any
            .downcast_ref::<io::Error>()
            .map(io::Error::kind)
            .or_else(|| any.downcast_ref::<serde_json::Error>().and_then(serde_json::Error::io_error_kind));
        if kind == Some(io::ErrorKind::BrokenPipe) {
            return Unusable(String::new());
        }
        Unusable(e.to_string())
    }
}

/// A message of several lines, each shown through [`Escaped`]: its line breaks stay, so that errors
/// that render diagnostics keep their layout, and nothing else can act on the terminal.
struct EscapedLines<'a>(&'a str);

impl std::fmt::Display for EscapedLines<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (n, line) in self.0.split('\n').enumerate() {
            if n > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}", Escaped(line))?;
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    let cli = Cli::try_parse().unwrap_or_else(|e| {
        // clap quotes the arguments it refuses, raw in its coloured output: when an argument holds
        // what `Escaped` escapes, the error is printed plain, escaped.
        let hostile = std::env::args_os().any(|arg| arg.to_string_lossy().contains(Escaped::escapes));
        if e.use_stderr() && hostile {
            let _ = write!(io::stderr(), "{}", EscapedLines(&e.render().to_string()));
            std::process::exit(e.exit_code());
        }
        e.exit()
    });
    match run(cli.command) {
        Ok(code) => code,
        Err(Unusable(message)) if message.is_empty() => ExitCode::SUCCESS,
        Err(Unusable(message)) => {
            let _ = writeln!(io::stderr(), "error: {}", EscapedLines(&message));
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<ExitCode, Unusable> {
    match command {
        Command::Check(args) => check_cmd::run(&args),
        Command::Policy { policy } => policy_cmd::run(policy),
        Command::Resolve { config, requests: Some(file), .. } => {
            distinct_inputs(&config, "--requests", Some(&file))?;
            let document = config.source.document()?;
            let resolver = load(&document, config.options(&document)?)?;
            resolve_batch(&resolver, open(&file)?)
        }
        Command::Resolve { config, request, requests: None, format } => {
            let spec = request.spec()?;
            let request = RequestArgs::parse(&spec)?;
            let document = config.source.document()?;
            let resolver = load(&document, config.options(&document)?)?;
            let resolution = resolver.resolve(&request);
            print(format, &resolution, |out| writeln!(out, "{resolution}"))
        }
        Command::Explain { config, request, format } => {
            let spec = request.spec()?;
            let request = RequestArgs::parse(&spec)?;
            let document = config.source.document()?;
            let resolver = load(&document, config.options(&document)?)?;
            let explanation = resolver.explain(&request);
            print(format, &explanation, |out| writeln!(out, "{explanation}"))
        }
        Command::Test { config, cases, format } => test_cmd::run(&config, &cases, format),
        Command::Diff(args) => diff_cmd::run(&args),
        Command::Generate(args) => bench_cmd::generate(&args),
        Command::Bench(args) => bench_cmd::run(&args),
        #[cfg(feature = "sts")]
        Command::Credentials { config, request, sts } => credentials_cmd::run(&config, &request, &sts),
        #[cfg(all(feature = "sts", feature = "server", unix))]
        Command::Serve(args) => serve_cmd::run(*args),
        #[cfg(all(feature = "server", unix))]
        Command::Token(args) => token_cmd::run(args),
        #[cfg(all(feature = "server", unix))]
        Command::Fetch(args) => token_cmd::fetch(args),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "emrfs-rolemap", &mut out);
            io::stdout().lock().write_all(&out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            io::stdout().lock().write_all(&out)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

impl RequestArgs {
    /// The request's fields: as given, or with the groups from the operating system (`--os-groups`).
    fn spec(&self) -> Result<RequestSpec, Unusable> {
        let (user, groups) = if self.os_groups {
            let found =
                RequestSpec::from_os(self.user.as_deref()).map_err(|e| Unusable(format!("--os-groups: {e}")))?;
            (found.user, found.groups)
        } else {
            (self.user.clone(), self.group.clone())
        };
        Ok(RequestSpec { user, groups, path: self.path.clone() })
    }

    /// The request of `spec`; an invalid path is an invalid `--path`.
    fn parse(spec: &RequestSpec) -> Result<Request<'_>, Unusable> {
        spec.request().map_err(|e| {
            Unusable(format!("invalid --path `{}`: {e}", Escaped(spec.path.as_deref().unwrap_or_default())))
        })
    }
}

impl ConfigArgs {
    /// The options of the flags, for `document`: the fallback role is `--fallback-role`, else the role of
    /// the instance profile of the cluster the document was read through.
    fn options(&self, document: &source::Document) -> Result<ResolverOptions, Unusable> {
        self.options.options_for(document)
    }

    /// The source of the fallback role, when it is the cluster's (no `--fallback-role`): `cluster ID`.
    fn cluster_role(&self, document: &source::Document) -> Option<String> {
        #[cfg(feature = "emr")]
        if self.options.fallback_role.is_none() {
            let cluster = document.emr.as_ref().and_then(|emr| emr.cluster_id());
            return cluster.map(|id| format!("cluster `{}`", Escaped(id)));
        }
        let _ = document;
        None
    }
}

/// How a file argument is named in messages: `<stdin>` for `-`.
fn display_name(file: &str) -> &str {
    if file == "-" { "<stdin>" } else { file }
}

impl OptionArgs {
    /// The options of the flags, for `document`: the fallback role is `--fallback-role`, else the role of
    /// the instance profile of the cluster the document was read through.
    fn options_for(&self, document: &source::Document) -> Result<ResolverOptions, Unusable> {
        let options = self.options()?;
        Ok(match (options.fallback_role(), document.instance_profile_role()) {
            (None, Some(role)) => options.clone().with_fallback_role(Some(role.clone())),
            _ => options,
        })
    }

    /// The options the flags give.
    fn options(&self) -> Result<ResolverOptions, Unusable> {
        let fallback_role = match &self.fallback_role {
            None => None,
            Some(text) => Some(
                RoleArn::parse(text)
                    .map_err(|e| Unusable(format!("invalid --fallback-role `{}`: {e}; {}", Escaped(text), e.help())))?,
            ),
        };
        let prefix_match = match self.prefix_match {
            PrefixMatchArg::String => PrefixMatch::String,
            PrefixMatchArg::Segment => PrefixMatch::Segment,
        };
        Ok(ResolverOptions::new()
            .with_prefix_match(prefix_match)
            .with_globs(self.globs)
            .with_fallback_role(fallback_role))
    }
}

/// Opens an input file, or standard input for `-`.
fn open(file: &str) -> Result<Box<dyn BufRead>, Unusable> {
    if file == "-" {
        return Ok(Box::new(io::BufReader::new(io::stdin())));
    }
    let f = std::fs::File::open(file).map_err(|e| cannot_read(file, &e))?;
    Ok(Box::new(io::BufReader::new(f)))
}

/// Reads a configuration or a cases file, but never more than one byte past the largest accepted
/// document, so that a huge file is rejected (by `check`, or by [`read_cases`]) without being read into
/// memory.
fn read_config_bytes(file: &str) -> Result<Vec<u8>, Unusable> {
    SecurityConfiguration::read_bytes(open(file)?).map_err(|e| cannot_read(file, &e))
}

/// Refuses a second input (`flag`, such as `--requests`) that would read standard input with the
/// configuration.
fn distinct_inputs(config: &ConfigArgs, flag: &str, input: Option<&str>) -> Result<(), Unusable> {
    if input == Some("-") && config.source.is_stdin() {
        return Err(Unusable(format!("--config and {flag} cannot both read standard input")));
    }
    Ok(())
}

/// `cannot read `FILE`: ERROR`.
fn cannot_read(file: &str, error: &io::Error) -> Unusable {
    Unusable(format!("cannot read `{}`: {error}", Escaped(file)))
}

/// Reads a cases file, which may be as large as a configuration ([`SecurityConfiguration::MAX_BYTES`])
/// and no larger.
fn read_cases(file: &str) -> Result<String, Unusable> {
    let bytes = read_config_bytes(file)?;
    if bytes.len() > SecurityConfiguration::MAX_BYTES {
        return Err(Unusable(format!(
            "the cases file `{}` is larger than the {} MiB accepted (the limit of configurations)",
            Escaped(file),
            SecurityConfiguration::MAX_BYTES >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        Unusable(format!("invalid cases file `{}`: not valid UTF-8 (invalid byte at offset {at})", Escaped(file)))
    })
}

/// Checks and compiles the configuration `document` with `options`; any error makes the input unusable.
fn load(document: &source::Document, options: ResolverOptions) -> Result<Resolver, Unusable> {
    let config = usable(&document.bytes, &options, &document.name)?;
    Ok(ResolverBuilder::with_options(options).build(&config)?)
}

/// The configuration in `bytes` when it has no errors (its warnings are `check`'s business); errors
/// make the input unusable and are shown with their positions, as `check` shows them.
fn usable(bytes: &[u8], options: &ResolverOptions, display_name: &str) -> Result<SecurityConfiguration, Unusable> {
    SecurityConfiguration::from_slice_with(bytes, options).map_err(|diagnostics| {
        Unusable(format!(
            "the configuration `{}` has {} error(s):\n\n{}",
            Escaped(display_name),
            diagnostics.error_count(),
            diagnostics.render(display_name).trim_end()
        ))
    })
}

/// Resolves each JSON line of `input`, writing one JSON line per request; bad lines (over-long ones
/// included) get an error line.
fn resolve_batch(resolver: &Resolver, input: Box<dyn BufRead>) -> Result<ExitCode, Unusable> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut failed = false;
    for line in RequestLines::new(input) {
        let (number, spec) = line?;
        let outcome = spec.and_then(|spec| {
            let request = spec.request().map_err(|e| format!("invalid path: {e}"))?;
            serde_json::to_string(&resolver.resolve(&request)).map_err(|e| e.to_string())
        });
        match outcome {
            Ok(json) => writeln!(out, "{json}")?,
            Err(message) => {
                failed = true;
                let error = serde_json::json!({"error": {"line": number, "message": message}});
                writeln!(out, "{error}")?;
            }
        }
    }
    out.flush()?;
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Prints `value` as pretty JSON or through `text`: the one output path of the commands that have both.
fn print<T: serde::Serialize>(
    format: Format,
    value: &T,
    text: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<ExitCode, Unusable> {
    let mut out = io::stdout().lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, value)?;
            writeln!(out)?;
        }
        Format::Text => text(&mut out)?,
    }
    Ok(ExitCode::SUCCESS)
}
