//! Benchmarks one configuration in one run: what the `bench` command measures and reports.
//!
//! Every figure is timed with [`Instant`] over batches of calls (a sample is one batch, its time divided
//! by its calls), and summarised by the median and the 99th percentile over the samples:
//!
//! - the compiled resolver with a prepared principal, resolving each request's path;
//! - the reference scan on the same requests, within its share of the time budget (at least
//!   [`MIN_SAMPLES`] single calls however slow they are);
//! - the *limit* baseline: one lookup of the whole path string in a `HashMap` of N keys (N = mappings),
//!   roughly the least any exact resolver must do;
//! - compile time: parse, validate and build, from the document's bytes;
//! - resolver memory: the heap bytes that building the resolver leaves allocated, when the caller can
//!   count them (the CLI's counting allocator), otherwise the compiled tables' own estimate.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::Serialize;

use emrfs_rolemap::synth::RequestGenerator;
use emrfs_rolemap::{
    BuildError, Diagnostics, Escaped, ReferenceResolver, Request, RequestSpec, ResolverBuilder, ResolverOptions,
    S3PathError, SecurityConfiguration,
};

/// The fewest samples taken of any measurement, whatever the time budget.
pub const MIN_SAMPLES: usize = 3;

/// How many requests are synthesised when the caller gives none.
pub const SYNTHESISED_REQUESTS: usize = 1_000;

/// The seed of synthesised requests, so that two runs measure the same requests.
const SYNTHESIS_SEED: u64 = 1;

/// How long one batch of calls should take at least, so that the clock's resolution does not matter.
const MIN_BATCH_TIME: Duration = Duration::from_micros(50);

/// The most calls in one batch.
const MAX_BATCH: usize = 1_000;

/// Runs the work it is handed and returns the heap bytes the work left allocated.
pub type Counter<'a> = &'a dyn Fn(&mut dyn FnMut()) -> isize;

/// What to measure and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchSettings {
    /// The total time budget in seconds (default 5); the compiled resolver and the reference get 35 %
    /// each, the baseline 20 %, compiling 10 %.
    pub seconds: f64,
    /// The resolver's options.
    pub options: ResolverOptions,
}

impl Default for BenchSettings {
    fn default() -> Self {
        BenchSettings { seconds: 5.0, options: ResolverOptions::default() }
    }
}

/// The results of one run; every time is in nanoseconds per call unless its name says otherwise.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// Mappings in the configuration.
    pub mappings: usize,
    /// Identifiers in the configuration.
    pub identifiers: usize,
    /// The total length in bytes of the identifiers' text.
    pub identifier_bytes: usize,
    /// Requests measured.
    pub requests: usize,
    /// Whether the requests were synthesised from the configuration's identifiers.
    pub requests_synthesised: bool,
    /// Median of the compiled resolver, prepared principal.
    pub compiled_ns_median: f64,
    /// 99th percentile of the compiled resolver.
    pub compiled_ns_p99: f64,
    /// Compiled resolves per second on one thread (from the median).
    pub compiled_per_second: f64,
    /// Median of the reference scan.
    pub reference_ns_median: f64,
    /// 99th percentile of the reference scan.
    pub reference_ns_p99: f64,
    /// Reference samples taken (each a batch of calls, or one call when they are slow).
    pub reference_samples: usize,
    /// Median of the limit baseline (one `HashMap` lookup of the path string).
    pub baseline_ns_median: f64,
    /// Reference median ÷ compiled median.
    pub speedup: f64,
    /// Compiled median ÷ baseline median.
    pub baseline_ratio: f64,
    /// Median time to parse, validate and build, in milliseconds.
    pub compile_ms: f64,
    /// Heap bytes of the resolver (the configuration copy it keeps included).
    pub memory_bytes: usize,
    /// Whether `memory_bytes` was counted by an allocator (`false`: the compiled tables' estimate).
    pub memory_counted: bool,
    /// `(memory_bytes - identifier_bytes) / identifiers`: the resolver's cost per identifier beyond
    /// the identifier's own text.
    pub bytes_per_identifier: f64,
}

/// Why a run could not measure; the message shows the text it quotes through [`Escaped`].
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The configuration has errors.
    #[error("the configuration has {} error(s)", .0.error_count())]
    Config(Diagnostics),
    /// The configuration does not compile.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A given request's path is not an S3 location.
    #[error("request {number}: invalid path `{}`: {error}", Escaped(.path))]
    Request {
        /// The request's number, from 1.
        number: usize,
        /// The path as given.
        path: String,
        /// Why it is not an S3 location.
        error: S3PathError,
    },
    /// There is nothing to measure: no requests were given, or none could be synthesised.
    #[error("no requests to measure")]
    NoRequests,
}

/// The median and 99th percentile of per-call times.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Summary {
    median: f64,
    p99: f64,
    samples: usize,
}

/// Benchmarks the configuration `bytes` on `requests` (or on [`SYNTHESISED_REQUESTS`] requests
/// synthesised from its identifiers when `None`).
///
/// `counter`, when given, runs what it is handed and returns the heap bytes it left allocated (a
/// counting allocator), which makes the memory figure a count. `progress` is called with the fraction
/// done, from 0 to 1.
pub fn run(
    bytes: &[u8],
    requests: Option<&[RequestSpec]>,
    settings: &BenchSettings,
    counter: Option<Counter<'_>>,
    progress: &mut dyn FnMut(f64),
) -> Result<BenchReport, BenchError> {
    let budget = Duration::from_secs_f64(settings.seconds.max(0.0));
    let builder = ResolverBuilder::with_options(settings.options.clone());
    progress(0.0);

    // Compile: parse, validate, build; the median of as many runs as fit in 10 % of the budget.
    let mut compile_times = Vec::new();
    let compile_start = Instant::now();
    let (config, resolver) = loop {
        let start = Instant::now();
        let config = SecurityConfiguration::from_slice_with(bytes, &settings.options).map_err(BenchError::Config)?;
        let resolver = builder.build(&config)?;
        compile_times.push(start.elapsed().as_secs_f64() * 1e3);
        if compile_times.len() >= MIN_SAMPLES || compile_start.elapsed() >= budget.mul_f64(0.1) {
            break (config, resolver);
        }
    };
    let compile_ms = median(&mut compile_times);
    drop(resolver);

    let (memory_bytes, resolver) = match counter {
        Some(count) => {
            let mut built = None;
            let bytes = count(&mut || built = Some(builder.build(&config)));
            let resolver = built.unwrap_or_else(|| builder.build(&config))?;
            (usize::try_from(bytes).unwrap_or(0), resolver)
        }
        None => {
            let resolver = builder.build(&config)?;
            (resolver.compiled_heap_bytes(), resolver)
        }
    };
    let reference = ReferenceResolver::new(&config, &settings.options)?;
    progress(0.1);

    let synthesised;
    let specs = match requests {
        Some(given) => given,
        None => {
            synthesised = RequestGenerator::new(&config).mixed(SYNTHESISED_REQUESTS, SYNTHESIS_SEED);
            &synthesised
        }
    };
    if specs.is_empty() {
        return Err(BenchError::NoRequests);
    }
    let parsed = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            spec.request().map_err(|error| BenchError::Request {
                number: i + 1,
                path: spec.path.clone().unwrap_or_default(),
                error,
            })
        })
        .collect::<Result<Vec<Request<'_>>, _>>()?;
    let prepared: Vec<_> = parsed.iter().map(|r| (resolver.prepare(r.user, r.groups), r.path)).collect();

    let compiled = measure(budget.mul_f64(0.35), prepared.len(), |i| {
        let (principal, path) = &prepared[i];
        principal.resolve(black_box(path.as_ref())).mapping_index()
    });
    progress(0.45);
    let reference_summary =
        measure(budget.mul_f64(0.35), parsed.len(), |i| reference.resolve(black_box(&parsed[i])).mapping_index());
    progress(0.8);

    // The limit: every request's path string among N keys in all.
    let paths: Vec<&str> = specs.iter().map(|s| s.path.as_deref().unwrap_or_default()).collect();
    let mut limit: HashMap<String, usize> = paths.iter().enumerate().map(|(i, p)| ((*p).to_owned(), i)).collect();
    let filler = paths.first().copied().unwrap_or_default();
    let mut i = 0;
    while limit.len() < config.mappings().len() {
        limit.insert(format!("{filler}#{i}"), i);
        i += 1;
    }
    let baseline = measure(budget.mul_f64(0.2), paths.len(), |i| limit.get(black_box(paths[i])).copied());
    progress(1.0);

    let identifiers = config.identifier_count();
    let identifier_bytes: usize =
        config.mappings().iter().flat_map(|m| m.identifiers()).map(|i| i.as_str().len()).sum();
    Ok(BenchReport {
        mappings: config.mappings().len(),
        identifiers,
        identifier_bytes,
        requests: specs.len(),
        requests_synthesised: requests.is_none(),
        compiled_ns_median: compiled.median,
        compiled_ns_p99: compiled.p99,
        compiled_per_second: 1e9 / compiled.median,
        reference_ns_median: reference_summary.median,
        reference_ns_p99: reference_summary.p99,
        reference_samples: reference_summary.samples,
        baseline_ns_median: baseline.median,
        speedup: reference_summary.median / compiled.median,
        baseline_ratio: compiled.median / baseline.median,
        compile_ms,
        memory_bytes,
        memory_counted: counter.is_some(),
        bytes_per_identifier: memory_bytes.saturating_sub(identifier_bytes) as f64 / identifiers.max(1) as f64,
    })
}

/// Times `call(i)` over `0..count` cyclically, in batches, for about `budget` (at least
/// [`MIN_SAMPLES`] batches); per-call nanoseconds, never zero.
fn measure<R>(budget: Duration, count: usize, mut call: impl FnMut(usize) -> R) -> Summary {
    let mut next = 0;
    let mut batch_of = |calls: usize, call: &mut dyn FnMut(usize) -> R| {
        let start = Instant::now();
        for _ in 0..calls {
            black_box(call(next));
            next = (next + 1) % count;
        }
        start.elapsed()
    };
    // Calibrate: double the batch until it takes long enough to time, or until it is full.
    let mut calls = 1;
    let started = Instant::now();
    while calls < MAX_BATCH && batch_of(calls, &mut call) < MIN_BATCH_TIME {
        calls *= 2;
    }
    let mut per_call = Vec::new();
    while per_call.len() < MIN_SAMPLES || started.elapsed() < budget {
        let elapsed = batch_of(calls, &mut call);
        per_call.push((elapsed.as_nanos() as f64 / calls as f64).max(f64::MIN_POSITIVE));
    }
    let samples = per_call.len();
    let median = median(&mut per_call);
    let p99 = per_call[((samples - 1) * 99).div_ceil(100)];
    Summary { median, p99, samples }
}

/// Sorts `values` (not empty) and returns their median.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use emrfs_rolemap::synth;

    fn quick() -> BenchSettings {
        BenchSettings { seconds: 0.05, ..BenchSettings::default() }
    }

    #[test]
    fn a_run_reports_consistent_positive_figures() {
        let corpus = synth::corpus(200, 20, 3).unwrap();
        let mut fractions = Vec::new();
        let report = run(corpus.config.as_bytes(), None, &quick(), None, &mut |f| fractions.push(f)).unwrap();
        assert_eq!((report.mappings, report.requests), (200, SYNTHESISED_REQUESTS));
        assert!(report.requests_synthesised && !report.memory_counted);
        for figure in [
            report.compiled_ns_median,
            report.reference_ns_median,
            report.baseline_ns_median,
            report.compile_ms,
            report.memory_bytes as f64,
        ] {
            assert!(figure > 0.0 && figure.is_finite(), "{report:?}");
        }
        assert!(report.compiled_ns_p99 >= report.compiled_ns_median);
        assert!(report.reference_ns_p99 >= report.reference_ns_median);
        assert!(report.reference_samples >= MIN_SAMPLES);
        assert_eq!(report.speedup, report.reference_ns_median / report.compiled_ns_median);
        assert_eq!(report.baseline_ratio, report.compiled_ns_median / report.baseline_ns_median);
        assert_eq!(fractions.first(), Some(&0.0));
        assert_eq!(fractions.last(), Some(&1.0));
        assert!(fractions.windows(2).all(|w| w[0] <= w[1]), "{fractions:?}");
    }

    #[test]
    fn given_requests_and_a_counter_are_used() {
        let corpus = synth::corpus(50, 8, 4).unwrap();
        let specs: Vec<RequestSpec> =
            corpus.requests_jsonl.lines().map(|l| RequestSpec::from_json(l.as_bytes()).unwrap()).collect();
        let counter = |work: &mut dyn FnMut()| {
            work();
            12_345
        };
        let report = run(corpus.config.as_bytes(), Some(&specs), &quick(), Some(&counter), &mut |_| ()).unwrap();
        assert_eq!(report.requests, 8);
        assert!(!report.requests_synthesised && report.memory_counted);
        assert_eq!(report.memory_bytes, 12_345, "the counter's figure");
    }

    #[test]
    fn bad_inputs_are_errors() {
        let settings = quick();
        let err = run(b"{", None, &settings, None, &mut |_| ()).unwrap_err();
        assert!(matches!(err, BenchError::Config(_)), "{err}");
        let config = synth::config_json(5, 1);
        let err = run(config.as_bytes(), Some(&[]), &settings, None, &mut |_| ()).unwrap_err();
        assert!(matches!(err, BenchError::NoRequests), "{err}");
        let bad = RequestSpec { path: Some("not-a-uri".into()), ..RequestSpec::default() };
        let err =
            run(config.as_bytes(), Some(&[RequestSpec::default(), bad]), &settings, None, &mut |_| ()).unwrap_err();
        assert_eq!(err.to_string(), "request 2: invalid path `not-a-uri`: not an S3 URI: no `://` after a scheme");
    }

    #[test]
    fn medians_and_percentiles() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        let summary = measure(Duration::ZERO, 3, |i| i);
        assert_eq!(summary.samples, MIN_SAMPLES);
        assert!(summary.p99 >= summary.median && summary.median > 0.0);
    }
}
