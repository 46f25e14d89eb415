//! The `generate` and `bench` commands: a synthetic corpus, and one configuration benchmarked.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use emrfs_rolemap::synth;
use emrfs_rolemap::{Escaped, RequestLines, RequestSpec};

use crate::bench::{self, BenchReport, BenchSettings};
#[cfg(all(feature = "server", unix))]
use crate::read_config_bytes;
use crate::{ConfigArgs, Format, Unusable, cannot_read, distinct_inputs, open, print, usable};

#[derive(Args)]
pub(crate) struct GenerateArgs {
    /// How many role mappings (40 % Prefix, 30 % Group, 30 % User, 1 to 5 identifiers each).
    #[arg(long, value_name = "N")]
    mappings: usize,
    /// How many requests, cycling through prefix hit, user hit, group hit and fallback.
    #[arg(long, value_name = "M", default_value_t = 1_000)]
    requests: usize,
    /// The seed; the same seed writes the same files.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The directory to write `config.json` and `requests.jsonl` into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Also write `config-edited.json`: the configuration after E random edits (mappings moved,
    /// deleted and given new roles), to compare with `diff`.
    #[arg(long, value_name = "E", default_value_t = 0)]
    edits: usize,
}

#[derive(Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Requests as JSON Lines (the `resolve --requests` format); without it, requests are
    /// synthesised from the configuration's own identifiers.
    #[arg(long, value_name = "FILE")]
    requests: Option<String>,
    /// The time budget of the whole run, in seconds.
    #[arg(long, value_name = "S", default_value_t = 5.0)]
    seconds: f64,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Benchmark `serve` instead: the real server in this process, as a trusted caller, against a bare
    /// hyper server that answers a fixed body, both driven by one client in alternation; /v1/resolve
    /// with one and with --clients clients, /v1/credentials from a warm cache (no STS). Exits 1 when
    /// an answer is wrong.
    #[cfg(all(feature = "server", unix))]
    #[arg(long)]
    server: bool,
    /// With --server: keep-alive clients of the throughput rounds, 1 to the server's connection budget
    /// (512).
    #[cfg(all(feature = "server", unix))]
    #[arg(long, value_name = "N", default_value_t = 64, requires = "server", value_parser = clients)]
    clients: usize,
    /// With --server: the transport of both servers, a Unix socket or TCP on 127.0.0.1.
    #[cfg(all(feature = "server", unix))]
    #[arg(long, value_enum, default_value_t = TransportArg::Unix, requires = "server")]
    transport: TransportArg,
    /// With --server: serve this configuration while the answers are checked against --config (for
    /// tests of the answer check).
    #[cfg(all(feature = "server", unix))]
    #[arg(long, value_name = "FILE", hide = true, requires = "server")]
    serve_config: Option<String>,
}

/// `--transport`.
#[cfg(all(feature = "server", unix))]
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TransportArg {
    Unix,
    Tcp,
}

/// `--clients`: at least one, and no more than the server's connection budget admits at once.
#[cfg(all(feature = "server", unix))]
fn clients(text: &str) -> Result<usize, String> {
    let most = emrfs_rolemap::server::ServerOptions::DEFAULT_MAX_CONNECTIONS;
    text.parse()
        .ok()
        .filter(|n| (1..=most).contains(n))
        .ok_or_else(|| format!("`{text}` is not a whole number from 1 to {most}"))
}

pub(crate) fn generate(args: &GenerateArgs) -> Result<ExitCode, Unusable> {
    if args.mappings == 0 {
        return Err(Unusable("invalid --mappings `0`: a configuration needs at least one mapping".into()));
    }
    let corpus = synth::corpus(args.mappings, args.requests, args.seed)
        .map_err(|e| Unusable(format!("the generated configuration does not read back: {e}")))?;
    let out = &args.out;
    let shown = |path: &std::path::Path| Escaped(&path.to_string_lossy()).to_string();
    std::fs::create_dir_all(out).map_err(|e| Unusable(format!("cannot create `{}`: {e}", shown(out))))?;
    let mut files = vec![("config.json", corpus.config.clone()), ("requests.jsonl", corpus.requests_jsonl)];
    if args.edits > 0 {
        let edited = synth::edited_json(&corpus.config, args.edits, args.seed)
            .map_err(|e| Unusable(format!("the generated configuration cannot be edited: {e}")))?;
        files.push(("config-edited.json", edited));
    }
    for (name, text) in &files {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| Unusable(format!("cannot write `{}`: {e}", shown(&path))))?;
    }
    let edits = if args.edits > 0 { format!(", {} edit(s)", args.edits) } else { String::new() };
    writeln!(
        io::stdout(),
        "{}: {} mapping(s), {} request(s){edits}, seed {}",
        shown(out),
        args.mappings,
        args.requests,
        args.seed
    )?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run(args: &BenchArgs) -> Result<ExitCode, Unusable> {
    if !(args.seconds.is_finite() && args.seconds >= 0.0) {
        return Err(Unusable(format!("invalid --seconds `{}`: a number of seconds, 0 or more", args.seconds)));
    }
    distinct_inputs(&args.config, "--requests", args.requests.as_deref())?;
    let document = args.config.source.document()?;
    let options = args.config.options(&document)?;
    let bytes = document.bytes;
    // Errors are rendered with their positions, as `check` shows them, before anything is measured.
    usable(&bytes, &options, &document.name)?;
    let requests = match &args.requests {
        Some(file) => Some(read_requests(file)?),
        None => None,
    };
    // Progress is for people watching a terminal: never `\r` lines into a file or a pipe.
    let show = args.seconds > 1.0 && io::stderr().is_terminal();
    let mut progress = |fraction: f64| {
        if show {
            let _ = write!(io::stderr(), "\rbenchmarking: {:3.0} %", fraction * 100.0);
            if fraction >= 1.0 {
                let _ = writeln!(io::stderr());
            }
        }
    };
    #[cfg(all(feature = "server", unix))]
    if args.server {
        return run_server(args, &bytes, requests.as_deref(), options, &mut progress);
    }
    let settings = BenchSettings { seconds: args.seconds, options };
    let count = |work: &mut dyn FnMut()| crate::counting_alloc::counted(work).1;
    let report = bench::run(&bytes, requests.as_deref(), &settings, Some(&count), &mut progress)?;
    print(args.format, &report, |out| write_text(out, &report))
}

/// Reads a JSON Lines request file; a bad line (an over-long one included) makes the input unusable,
/// naming the line.
fn read_requests(file: &str) -> Result<Vec<RequestSpec>, Unusable> {
    RequestLines::new(open(file)?)
        .map(|line| {
            let (number, spec) = line.map_err(|e| cannot_read(file, &e))?;
            spec.map_err(|problem| Unusable(format!("`{}` line {number}: {}", Escaped(file), Escaped(&problem))))
        })
        .collect()
}

/// `bench --server`: the report, then exit 1 with the errors described when an answer was wrong.
#[cfg(all(feature = "server", unix))]
fn run_server(
    args: &BenchArgs,
    bytes: &[u8],
    requests: Option<&[RequestSpec]>,
    options: emrfs_rolemap::ResolverOptions,
    progress: &mut dyn FnMut(f64),
) -> Result<ExitCode, Unusable> {
    use crate::bench_server::{self, ServerBenchSettings, Transport};
    let served = match &args.serve_config {
        Some(file) => {
            let served = read_config_bytes(file)?;
            usable(&served, &options, file)?;
            served
        }
        None => bytes.to_vec(),
    };
    let transport = match args.transport {
        TransportArg::Unix => Transport::Unix,
        TransportArg::Tcp => Transport::Tcp,
    };
    let settings = ServerBenchSettings { seconds: args.seconds, clients: args.clients, transport, options };
    let report = bench_server::run(bytes, &served, requests, &settings, progress)?;
    let printed = print(args.format, &report, |out| write_server_text(out, &report))?;
    if report.errors == 0 {
        return Ok(printed);
    }
    let mut stderr = io::stderr().lock();
    let _ = writeln!(stderr, "error: {} wrong or failed answer(s); the first:", report.errors);
    for example in &report.error_examples {
        let _ = writeln!(stderr, "  {}", Escaped(example));
    }
    Ok(ExitCode::from(1))
}

#[cfg(all(feature = "server", unix))]
fn write_server_text(out: &mut dyn Write, r: &crate::bench_server::ServerBenchReport) -> io::Result<()> {
    let source = if r.requests_synthesised { "synthesised from its identifiers" } else { "given" };
    let us = |ns: f64| ns / 1e3;
    writeln!(out, "requests:   {} ({source}), {} decided by a mapping", r.requests, r.credential_requests)?;
    writeln!(
        out,
        "transport:  {}; {} rounds, the servers alternating; answers of {} bytes",
        r.transport, r.rounds, r.answer_bytes
    )?;
    writeln!(out, "{:<42}{:>12}{:>12}", "one client, µs per request", "p50", "p99")?;
    writeln!(out, "{:<42}{:>12.1}{:>12.1}", "server  /v1/resolve", us(r.server_p50_ns), us(r.server_p99_ns))?;
    writeln!(out, "{:<42}{:>12.1}{:>12.1}", "bare hyper server", us(r.baseline_p50_ns), us(r.baseline_p99_ns))?;
    match (r.credentials_hit_p50_ns, r.credentials_hit_p99_ns) {
        (Some(p50), Some(p99)) => {
            writeln!(out, "{:<42}{:>12.1}{:>12.1}", "server  /v1/credentials (cache hit)", us(p50), us(p99))?
        }
        _ => {
            writeln!(out, "{:<42}{:>12}", "server  /v1/credentials (cache hit)", "no request is decided by a mapping")?
        }
    }
    writeln!(
        out,
        "{} clients: server {:.0} requests/s, bare {:.0} requests/s",
        r.clients, r.server_rps, r.baseline_rps
    )?;
    writeln!(out, "latency ratio (server / bare, p50, one client):  {:.2}x", r.latency_ratio)?;
    writeln!(out, "throughput ratio (server / bare, {} clients):    {:.2}x", r.clients, r.throughput_ratio)?;
    writeln!(out, "CPU per answer (server / bare, {} clients):      {:.2}x", r.clients, r.cpu_ratio)?;
    if let Some(ratio) = r.credentials_ratio {
        writeln!(out, "credentials hit / resolve (p50, one client):     {ratio:.2}x")?;
    }
    writeln!(out, "errors: {}", r.errors)
}

fn write_text(out: &mut dyn Write, r: &BenchReport) -> io::Result<()> {
    let source = if r.requests_synthesised { "synthesised from its identifiers" } else { "given" };
    writeln!(out, "configuration: {} mapping(s), {} identifier(s)", r.mappings, r.identifiers)?;
    writeln!(out, "requests:      {} ({source})", r.requests)?;
    writeln!(out, "{:<28}{:>14}{:>14}", "ns per resolve", "median", "p99")?;
    writeln!(out, "{:<28}{:>14.1}{:>14.1}", "compiled (prepared)", r.compiled_ns_median, r.compiled_ns_p99)?;
    writeln!(out, "{:<28}{:>14.1}{:>14.1}", "reference scan", r.reference_ns_median, r.reference_ns_p99)?;
    writeln!(out, "{:<28}{:>14.1}", "limit (one hash lookup)", r.baseline_ns_median)?;
    writeln!(out, "speedup over the reference:  {:.1}x", r.speedup)?;
    writeln!(out, "compiled / limit:            {:.2}x", r.baseline_ratio)?;
    writeln!(out, "throughput (one thread):     {:.0} resolves/s", r.compiled_per_second)?;
    writeln!(out, "compile (parse+validate+build): {:.2} ms", r.compile_ms)?;
    let how = if r.memory_counted { "counted" } else { "estimated" };
    writeln!(
        out,
        "resolver memory: {} bytes ({how}), {:.1} bytes per identifier beyond its own text",
        r.memory_bytes, r.bytes_per_identifier
    )
}
