//! The conformance table: SEMANTICS §1–§4 as data, run against every way of resolving a request.
//!
//! Each `tests/conformance/*.json` file holds suites (a configuration, options, an optional fallback
//! role, and cases; see `tests/conformance/README.md`). For every case the reference resolver, the
//! compiled [`Resolver`], a [`PreparedPrincipal`](emrfs_rolemap::PreparedPrincipal) and
//! [`Resolver::explain`] must all give the expected resolution. All failures are reported together,
//! each naming its file, suite and case.

use std::path::{Path, PathBuf};

use emrfs_rolemap::cases::Case;
use emrfs_rolemap::{
    PrefixMatch, ReferenceResolver, Resolver, ResolverBuilder, ResolverOptions, RoleArn, S3Path, SecurityConfiguration,
    Verdict,
};
use serde::Deserialize;

/// Fewer files than this means the directory scan lost some.
const MIN_FILES: usize = 6;
/// Fewer cases than this means the directory scan or a file lost cases.
const MIN_CASES: usize = 250;

/// One `tests/conformance/*.json` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    suites: Vec<Suite>,
}

/// A configuration, how to resolve against it, and what each request must resolve to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Suite {
    name: String,
    description: String,
    /// Any accepted form of security configuration, as a JSON value.
    config: serde_json::Value,
    #[serde(default)]
    options: Options,
    #[serde(default)]
    fallback_role: Option<String>,
    /// The [`emrfs_rolemap::InputForm`] the configuration must be read as, when given.
    #[serde(default)]
    form: Option<String>,
    /// The cases, as JSON: each is read as a [`Case`], and its `expect` must pin every field.
    cases: Vec<serde_json::Value>,
    /// Request paths that are not S3 locations, with the error they must give (SEMANTICS §2).
    #[serde(default)]
    invalid_paths: Vec<InvalidPath>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default)]
    prefix_match: Mode,
    #[serde(default)]
    globs: bool,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    String,
    Segment,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InvalidPath {
    path: String,
    error: String,
}

#[test]
fn conformance_table() {
    let files = suite_files();
    let mut failures = Vec::new();
    let mut cases = 0;
    for file in &files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("?").to_owned();
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{name}: cannot read: {e}"));
        let suites: SuiteFile = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: not a suite file: {e}"));
        assert!(!suites.suites.is_empty(), "{name}: the file has no suites");
        for suite in &suites.suites {
            cases += run_suite(&name, suite, &mut failures);
        }
    }
    assert!(failures.is_empty(), "{} conformance failure(s):\n\n{}", failures.len(), failures.join("\n\n"));
    assert!(files.len() >= MIN_FILES, "expected at least {MIN_FILES} suite files, found {files:?}");
    assert!(cases >= MIN_CASES, "only {cases} cases ran; expected at least {MIN_CASES}");
}

/// Every `*.json` file of `tests/conformance/`, sorted.
fn suite_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("conformance");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

/// Runs one suite, appending a message per failure; returns how many cases (and invalid paths) it ran.
fn run_suite(file: &str, suite: &Suite, failures: &mut Vec<String>) -> usize {
    let at = format!("{file} / suite `{}`", suite.name);
    assert!(!suite.description.trim().is_empty(), "{at}: the suite has no description");
    assert!(!suite.cases.is_empty(), "{at}: the suite has no cases");
    let Some((config, options)) = setup(&at, suite, failures) else { return 0 };
    let built = ReferenceResolver::new(&config, &options)
        .and_then(|reference| Ok((reference, ResolverBuilder::with_options(options.clone()).build(&config)?)));
    let (reference, resolver) = match built {
        Ok(built) => built,
        Err(e) => {
            failures.push(format!("{at}: the resolvers cannot be built: {e}"));
            return 0;
        }
    };
    for (position, raw) in suite.cases.iter().enumerate() {
        let case: Case = match serde_json::from_value(raw.clone()) {
            Ok(case) => case,
            Err(e) => {
                failures.push(format!("{at} / case {position}: not a case: {e}"));
                continue;
            }
        };
        let at = format!("{at} / case `{}`", case.display_name(position));
        run_case(&at, raw, &case, &reference, &resolver, failures);
    }
    for invalid in &suite.invalid_paths {
        match S3Path::parse(&invalid.path) {
            Ok(path) => failures.push(format!(
                "{at} / invalid path `{}`: parsed as bucket `{}`, key `{}`",
                invalid.path,
                path.bucket(),
                path.key()
            )),
            Err(e) if e.to_string() != invalid.error => failures
                .push(format!("{at} / invalid path `{}`: expected error `{}`, got `{e}`", invalid.path, invalid.error)),
            Err(_) => {}
        }
    }
    suite.cases.len() + suite.invalid_paths.len()
}

/// Parses the suite's configuration (serialized back to text) and builds its options.
fn setup(at: &str, suite: &Suite, failures: &mut Vec<String>) -> Option<(SecurityConfiguration, ResolverOptions)> {
    let text = serde_json::to_string_pretty(&suite.config).expect("a JSON value serializes");
    let config = match SecurityConfiguration::from_json(&text) {
        Ok(config) => config,
        Err(diagnostics) => {
            failures.push(format!("{at}: the config is invalid:\n{}", diagnostics.render("config")));
            return None;
        }
    };
    if let Some(form) = &suite.form
        && format!("{:?}", config.form()) != *form
    {
        failures.push(format!("{at}: the config was read as {:?}, expected {form}", config.form()));
    }
    let fallback_role = match suite.fallback_role.as_deref().map(RoleArn::parse).transpose() {
        Ok(role) => role,
        Err(e) => {
            failures.push(format!("{at}: the fallback role is not a role ARN: {e}"));
            return None;
        }
    };
    let prefix_match = match suite.options.prefix_match {
        Mode::String => PrefixMatch::String,
        Mode::Segment => PrefixMatch::Segment,
    };
    Some((
        config,
        ResolverOptions::new()
            .with_prefix_match(prefix_match)
            .with_globs(suite.options.globs)
            .with_fallback_role(fallback_role),
    ))
}

/// Checks one case against every engine, and the explanation's trace against its resolution.
fn run_case(
    at: &str,
    raw: &serde_json::Value,
    case: &Case,
    reference: &ReferenceResolver,
    resolver: &Resolver,
    failures: &mut Vec<String>,
) {
    let unpinned: Vec<&str> = ["decision", "role", "mapping_index", "identifier_type", "identifier"]
        .into_iter()
        .filter(|field| raw["expect"].get(field).is_none())
        .collect();
    if !unpinned.is_empty() {
        failures.push(format!("{at}: `expect` must pin every field; missing {}", unpinned.join(", ")));
    }
    let request = match case.request() {
        Ok(request) => request,
        Err(e) => {
            failures.push(format!("{at}: the path is not an S3 location: {e}"));
            return;
        }
    };
    let prepared = resolver.prepare(request.user, request.groups);
    let explanation = resolver.explain(&request);
    let answers = [
        ("reference", reference.resolve(&request)),
        ("compiled", resolver.resolve(&request)),
        ("prepared", prepared.resolve(request.path.as_ref())),
        ("explain", explanation.resolution),
    ];
    for (engine, resolution) in answers {
        let mismatches = case.mismatches(&resolution);
        if !mismatches.is_empty() {
            failures.push(format!("{at} [{engine}]: got {resolution}\n    {}", mismatches.join("\n    ")));
        }
    }
    let decisive: Vec<usize> = explanation
        .mappings
        .iter()
        .filter(|m| matches!(m.verdict, Verdict::Decisive { .. }))
        .map(|m| m.index)
        .collect();
    let expected: Vec<usize> = explanation.resolution.mapping_index().into_iter().collect();
    if explanation.mappings.len() != resolver.config().mappings().len() || decisive != expected {
        failures.push(format!(
            "{at} [explain]: the trace has {} entries with decisive mapping(s) {decisive:?}, but the resolution is {}",
            explanation.mappings.len(),
            explanation.resolution
        ));
    }
}
