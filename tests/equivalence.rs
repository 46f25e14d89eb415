//! The compiled [`Resolver`] equals the [`ReferenceResolver`] on generated configurations and requests.
//!
//! Configurations are generated as JSON text and read with [`SecurityConfiguration::from_json`], so the
//! parser and the validator run on every case. Names, buckets and key segments come from tiny alphabets
//! so that identifiers collide, repeat and share prefixes; requests are built mostly by mutating a real
//! identifier of the configuration, so most of them hit (`generated_requests_mostly_hit` proves it).
//!
//! Invalid globs (`[ab`, `u{1`, ...) are generated on purpose in a few configurations: with globs on,
//! both resolvers and the validator must then reject the configuration with the same error; with globs
//! off they are ordinary characters and the configuration resolves like any other.

mod support;

use emrfs_rolemap::{
    Explanation, IdentifierType, PrefixMatch, ReferenceResolver, Request, Resolution, ResolverBuilder, ResolverOptions,
    RoleArn, S3Path, SecurityConfiguration, Verdict, check,
};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use support::generators::{self, Pools, kind};

// ---------------------------------------------------------------------------------------------------
// Configurations

/// Alphabets where identifiers collide, and mostly literal identifiers, so that requests hit.
fn pools() -> Pools<prop::bool::Weighted> {
    Pools {
        users: &["u0", "u1", "u2", "u3", "u4", "u5", "U1", "u1x", "g0"],
        user_globs: &["u*", "u?", "U?", "[ab]*", "u[0-2]", "{u1,u4}", "g*"],
        groups: &["g0", "g1", "g2", "g3", "g4", "g5", "G1", "g1x", "u0"],
        group_globs: &["g?", "g*", "G?", "[ab]*", "g[3-5]", "{g1,u1}", "u*"],
        schemes: &["s3", "s3", "s3a", "s3n", "S3A"],
        buckets: &["b", "ba", "bar", "barn"],
        segments: &["a", "ab", "abc", "x", ""],
        prefix_globs: &[
            "s3://ba*/a",
            "s3://b/{a,x}/",
            "s3://ba?",
            "s3://bar/a*",
            "s3://bar/*/x",
            "s3://b*",
            "s3://bar/[ab]*",
            "s3://bar/a?c",
            "s3a://ba[rn]/ab",
        ],
        trailing_slash: prop::bool::weighted(0.3),
        keyed_prefix_weight: 6,
        literal_name_weight: 10,
        literal_prefix_weight: 12,
        max_identifiers: 5,
    }
}

/// Each is an invalid glob when globs are on, and a valid literal identifier of its type when off.
const INVALID_NAME_GLOBS: &[&str] = &["[ab", "u{1", "g[z-a]"];
const INVALID_PREFIX_GLOBS: &[&str] = &["s3://b/[a", "s3://bar/{a", "s3://ba[/x"];

/// How the configuration document wraps its `RoleMappings` (SEMANTICS §1).
#[derive(Debug, Clone, Copy)]
enum Form {
    RoleMappings,
    EmrFs,
    Full,
    Describe,
}

#[derive(Debug, Clone)]
struct MappingSpec {
    kind: IdentifierType,
    role: u8,
    identifiers: Vec<String>,
}

#[derive(Debug, Clone)]
struct ConfigSpec {
    mappings: Vec<MappingSpec>,
    form: Form,
    /// Write `/` as `\/` and `a` as `\u0061` in every string, and pretty-print.
    escaped: bool,
}

fn mapping() -> impl Strategy<Value = MappingSpec> {
    kind().prop_flat_map(|kind| {
        (0..6u8, pools().identifiers(kind)).prop_map(move |(role, identifiers)| MappingSpec { kind, role, identifiers })
    })
}

/// Edits applied to the generated mappings: copy an identifier into a later mapping of the same type
/// (duplicates across mappings), or plant an invalid glob.
#[derive(Debug, Clone)]
enum Edit {
    Copy { from: Index, to: Index, which: Index },
    InvalidGlob { at: Index, which: Index },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        24 => (any::<Index>(), any::<Index>(), any::<Index>()).prop_map(|(from, to, which)| Edit::Copy { from, to, which }),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(at, which)| Edit::InvalidGlob { at, which }),
    ]
}

fn config() -> impl Strategy<Value = ConfigSpec> {
    let form = prop_oneof![4 => Just(Form::RoleMappings), 1 => Just(Form::EmrFs), 1 => Just(Form::Full), 1 => Just(Form::Describe)];
    (prop::collection::vec(mapping(), 1..=40), prop::collection::vec(edit(), 0..=3), form, prop::bool::weighted(0.2))
        .prop_map(|(mut mappings, edits, form, escaped)| {
            for edit in edits {
                match edit {
                    Edit::Copy { from, to, which } => {
                        let (from, to) = (from.index(mappings.len()), to.index(mappings.len()));
                        if mappings[from].kind == mappings[to].kind {
                            let copied = which.get(&mappings[from].identifiers).clone();
                            mappings[to].identifiers.push(copied);
                        }
                    }
                    Edit::InvalidGlob { at, which } => {
                        let mapping = at.get_mut(&mut mappings);
                        let pool = match mapping.kind {
                            IdentifierType::Prefix => INVALID_PREFIX_GLOBS,
                            IdentifierType::User | IdentifierType::Group => INVALID_NAME_GLOBS,
                        };
                        *which.get_mut(&mut mapping.identifiers) = which.get(pool).to_string();
                    }
                }
            }
            ConfigSpec { mappings, form, escaped }
        })
}

fn json_string(text: &str, escaped: bool) -> String {
    let mut out = String::from('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if escaped => out.push_str("\\/"),
            'a' if escaped => out.push_str("\\u0061"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl ConfigSpec {
    fn json(&self) -> String {
        let (sep, indent) = if self.escaped { (",\n", "\n    ") } else { (", ", "") };
        let mappings: Vec<String> = self
            .mappings
            .iter()
            .map(|m| {
                let identifiers: Vec<String> = m.identifiers.iter().map(|i| json_string(i, self.escaped)).collect();
                let role = format!("arn:aws:iam::123456789012:role/r{}", m.role);
                format!(
                    "{indent}{{\"Role\": {}, \"IdentifierType\": \"{}\", \"Identifiers\": [{}]}}",
                    json_string(&role, self.escaped),
                    m.kind,
                    identifiers.join(sep)
                )
            })
            .collect();
        let role_mappings = format!("{{\"RoleMappings\": [{}]}}", mappings.join(sep));
        match self.form {
            Form::RoleMappings => role_mappings,
            Form::EmrFs => format!("{{\"EmrFsConfiguration\": {role_mappings}}}"),
            Form::Full => format!(
                "{{\"EncryptionConfiguration\": {{\"EnableInTransitEncryption\": false}},\n \"AuthorizationConfiguration\": {{\"EmrFsConfiguration\": {role_mappings}}}}}"
            ),
            Form::Describe => {
                let inner = format!("{{\"AuthorizationConfiguration\": {{\"EmrFsConfiguration\": {role_mappings}}}}}");
                format!(
                    "{{\"Name\": \"generated\", \"SecurityConfiguration\": {}, \"CreationDateTime\": 1.7e9}}",
                    serde_json::to_string(&inner).unwrap()
                )
            }
        }
    }

    fn identifiers_of(&self, kind: IdentifierType) -> Vec<&str> {
        self.mappings.iter().filter(|m| m.kind == kind).flat_map(|m| m.identifiers.iter().map(String::as_str)).collect()
    }
}

// ---------------------------------------------------------------------------------------------------
// Requests

/// A user or group name: a real identifier of the configuration (maybe instantiated or case-flipped),
/// or a name from the pool (which holds misses).
#[derive(Debug, Clone)]
enum NameChoice {
    FromConfig { which: Index, instantiate: Option<u8>, flip_case: bool },
    Pool(&'static str),
}

const NAME_POOL: &[&str] = &["u0", "u1", "u5", "U1", "g1", "g5", "G1", "nobody", "u9", "g9", "a", "*"];

fn name_choice() -> impl Strategy<Value = NameChoice> {
    prop_oneof![
        3 => (any::<Index>(), prop::option::weighted(0.5, any::<u8>()), prop::bool::weighted(0.1))
            .prop_map(|(which, instantiate, flip_case)| NameChoice::FromConfig { which, instantiate, flip_case }),
        2 => select(NAME_POOL).prop_map(NameChoice::Pool),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    AppendSlashX,
    AppendX,
    AppendChar(char),
    DropLast,
    FlipCase(Index),
    Scheme(&'static str),
    BareBucket,
    Instantiate(u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => Just(Mutation::AppendSlashX),
        2 => Just(Mutation::AppendX),
        2 => select(&['a', 'b', 'c', '/', 'x', '*'][..]).prop_map(Mutation::AppendChar),
        2 => Just(Mutation::DropLast),
        1 => any::<Index>().prop_map(Mutation::FlipCase),
        2 => select(&["s3", "s3a", "s3n", "S3", "S3A", "s3N"][..]).prop_map(Mutation::Scheme),
        1 => Just(Mutation::BareBucket),
        3 => any::<u8>().prop_map(Mutation::Instantiate),
    ]
}

#[derive(Debug, Clone)]
enum PathChoice {
    FromConfig { which: Index, mutations: Vec<Mutation> },
    Random(String),
}

fn path_choice() -> impl Strategy<Value = PathChoice> {
    let random = (
        select(pools().schemes),
        select(&["b", "ba", "bar", "barn", "bart", "c"][..]),
        prop::option::weighted(0.8, pools().key()),
    )
        .prop_map(|(scheme, bucket, key)| match key {
            None => PathChoice::Random(format!("{scheme}://{bucket}")),
            Some(key) => PathChoice::Random(format!("{scheme}://{bucket}/{key}")),
        });
    prop_oneof![
        5 => (any::<Index>(), prop::collection::vec(mutation(), 0..=2))
            .prop_map(|(which, mutations)| PathChoice::FromConfig { which, mutations }),
        1 => random,
    ]
}

#[derive(Debug, Clone)]
struct RequestSpec {
    user: Option<NameChoice>,
    groups: Vec<NameChoice>,
    path: Option<PathChoice>,
}

fn request() -> impl Strategy<Value = RequestSpec> {
    (
        prop::option::weighted(0.7, name_choice()),
        prop_oneof![2 => Just(0usize..1), 3 => Just(1usize..4), 1 => Just(4usize..9)]
            .prop_flat_map(|len| prop::collection::vec(name_choice(), len)),
        prop::option::weighted(0.9, path_choice()),
    )
        .prop_map(|(user, groups, path)| RequestSpec { user, groups, path })
}

/// Replaces glob syntax by text it matches: `*` by nothing, `r` or `a/x`, `?` by `r` or `a`, a class by one
/// of its characters, an alternation by one of its branches (`seed` picks).
fn instantiate(text: &str, seed: u8) -> String {
    generators::instantiate(text, usize::from(seed), &["", "r", "a/x"], &['r', 'a'])
}

fn flip_case_at(text: &str, at: usize) -> String {
    text.char_indices()
        .map(|(i, c)| {
            if i == at {
                if c.is_ascii_lowercase() { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }
            } else {
                c
            }
        })
        .collect()
}

fn mutate(path: &str, mutation: &Mutation) -> String {
    let (scheme, rest) = path.split_once("://").unwrap_or(("s3", path));
    match mutation {
        Mutation::AppendSlashX => format!("{path}/x"),
        Mutation::AppendX => format!("{path}x"),
        Mutation::AppendChar(c) => format!("{path}{c}"),
        Mutation::DropLast => path[..path.len() - 1].to_owned(),
        Mutation::FlipCase(at) => flip_case_at(path, at.index(path.len())),
        Mutation::Scheme(s) => format!("{s}://{rest}"),
        Mutation::BareBucket => format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest)),
        Mutation::Instantiate(seed) => instantiate(path, *seed),
    }
}

/// The request's strings; the path is guaranteed to parse.
#[derive(Debug, Clone)]
struct RequestText {
    user: Option<String>,
    groups: Vec<String>,
    path: Option<String>,
}

fn name(choice: &NameChoice, real: &[&str]) -> String {
    match choice {
        NameChoice::Pool(name) => (*name).to_owned(),
        NameChoice::FromConfig { which, .. } if real.is_empty() => which.get(NAME_POOL).to_string(),
        NameChoice::FromConfig { which, instantiate: seed, flip_case } => {
            let mut name = which.get(real).to_string();
            if let Some(seed) = seed {
                name = instantiate(&name, *seed);
            }
            if *flip_case {
                name = flip_case_at(&name, 0);
            }
            name
        }
    }
}

impl RequestSpec {
    fn text(&self, config: &ConfigSpec) -> RequestText {
        let users = config.identifiers_of(IdentifierType::User);
        let groups = config.identifiers_of(IdentifierType::Group);
        let prefixes = config.identifiers_of(IdentifierType::Prefix);
        let path = self.path.as_ref().map(|choice| match choice {
            PathChoice::Random(path) => path.clone(),
            PathChoice::FromConfig { which, .. } if prefixes.is_empty() => format!("s3://bar/{}", which.index(4)),
            PathChoice::FromConfig { which, mutations } => {
                mutations.iter().fold(which.get(&prefixes).to_string(), |path, m| {
                    let next = mutate(&path, m);
                    if S3Path::parse(&next).is_ok() { next } else { path }
                })
            }
        });
        RequestText {
            user: self.user.as_ref().map(|u| name(u, &users)),
            groups: self.groups.iter().map(|g| name(g, &groups)).collect(),
            path,
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The properties

/// The options of one mode; the fallback role is set so that fallbacks are compared by role too.
fn options(prefix_match: PrefixMatch, globs: bool) -> ResolverOptions {
    let fallback_role = RoleArn::parse("arn:aws:iam::123456789012:role/instance-profile").ok();
    ResolverOptions::new().with_prefix_match(prefix_match).with_globs(globs).with_fallback_role(fallback_role)
}

/// Checks the explanation's verdicts against its resolution.
fn check_explanation(explanation: &Explanation<'_>, mapping_count: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(explanation.mappings.len(), mapping_count);
    let decisive: Vec<_> =
        explanation.mappings.iter().filter(|m| matches!(m.verdict, Verdict::Decisive { .. })).collect();
    match explanation.resolution {
        Resolution::Mapping(m) => {
            prop_assert_eq!(decisive.len(), 1, "exactly one decisive verdict");
            prop_assert_eq!(decisive[0].index, m.index);
            prop_assert_eq!(&decisive[0].verdict, &Verdict::Decisive { identifier: m.identifier });
            prop_assert!(
                explanation.shadowed().all(|s| s.index > m.index),
                "a shadowed mapping precedes the decisive one"
            );
        }
        Resolution::Fallback { .. } => {
            prop_assert!(decisive.is_empty(), "a fallback has no decisive verdict");
            prop_assert_eq!(explanation.shadowed().count(), 0, "a fallback shadows nothing");
        }
    }
    for (i, trace) in explanation.mappings.iter().enumerate() {
        prop_assert_eq!(trace.index, i);
    }
    Ok(())
}

fn check_equivalence(
    spec: &ConfigSpec,
    requests: &[RequestSpec],
    prefix_match: PrefixMatch,
    globs: bool,
) -> Result<(), TestCaseError> {
    let json = spec.json();
    let config = match SecurityConfiguration::from_json(&json) {
        Ok(config) => config,
        Err(e) => return Err(TestCaseError::fail(format!("generated configuration rejected: {e}\n{json}"))),
    };
    prop_assert_eq!(config.mappings().len(), spec.mappings.len());
    let options = options(prefix_match, globs);
    let built = ResolverBuilder::with_options(options.clone()).build(&config);
    let reference = ReferenceResolver::new(&config, &options);
    let (resolver, reference) = match (built, reference) {
        (Ok(resolver), Ok(reference)) => (resolver, reference),
        (Err(compiled), Err(reference)) => {
            prop_assert!(globs, "only globs can make a build fail");
            prop_assert_eq!(&compiled, &reference);
            prop_assert!(
                check(json.as_bytes(), &options).config.is_none(),
                "validation accepts what the builders reject"
            );
            return Ok(());
        }
        (compiled, reference) => {
            return Err(TestCaseError::fail(format!(
                "builders disagree: compiled {:?}, reference {:?}\n{json}",
                compiled.err(),
                reference.err()
            )));
        }
    };
    for spec_request in requests {
        let text = spec_request.text(spec);
        let path = text.path.as_deref().map(|p| S3Path::parse(p).expect("generated paths parse"));
        let request = Request { user: text.user.as_deref(), groups: &text.groups, path };
        let expected = reference.resolve(&request);
        let context = || format!("\nconfig: {json}\nrequest: {text:?}\noptions: {options:?}");
        prop_assert_eq!(resolver.resolve(&request), expected, "Resolver::resolve{}", context());
        let principal = resolver.prepare(request.user, &text.groups);
        prop_assert_eq!(principal.resolve(path.as_ref()), expected, "PreparedPrincipal::resolve{}", context());
        // Explanations come from a scan of their own: checked against the compiled resolver itself.
        let compiled = resolver.resolve(&request);
        let explanation = resolver.explain(&request);
        prop_assert_eq!(
            explanation.resolution,
            compiled,
            "explain's decisive mapping is the compiled one{}",
            context()
        );
        check_explanation(&explanation, config.mappings().len())?;
        let matches = resolver.explain_matches(&request);
        prop_assert_eq!(matches.resolution, compiled, "explain_matches{}", context());
        let matched: Vec<_> =
            explanation.mappings.iter().filter(|m| !matches!(m.verdict, Verdict::NoMatch { .. })).collect();
        prop_assert_eq!(matches.mappings.iter().collect::<Vec<_>>(), matched, "explain_matches{}", context());
    }
    Ok(())
}

fn case() -> impl Strategy<Value = (ConfigSpec, Vec<RequestSpec>)> {
    (config(), prop::collection::vec(request(), 1..=8))
}

proptest! {
    #![proptest_config(generators::proptest_config(2000))]

    #[test]
    fn compiled_equals_reference_string_prefixes((spec, requests) in case()) {
        check_equivalence(&spec, &requests, PrefixMatch::String, false)?;
    }

    #[test]
    fn compiled_equals_reference_segment_prefixes((spec, requests) in case()) {
        check_equivalence(&spec, &requests, PrefixMatch::Segment, false)?;
    }

    #[test]
    fn compiled_equals_reference_string_prefixes_with_globs((spec, requests) in case()) {
        check_equivalence(&spec, &requests, PrefixMatch::String, true)?;
    }

    #[test]
    fn compiled_equals_reference_segment_prefixes_with_globs((spec, requests) in case()) {
        check_equivalence(&spec, &requests, PrefixMatch::Segment, true)?;
    }
}

#[test]
fn planted_invalid_globs_are_invalid_only_with_globs_on() {
    let pools = [(IdentifierType::User, INVALID_NAME_GLOBS), (IdentifierType::Prefix, INVALID_PREFIX_GLOBS)];
    for (kind, pool) in pools {
        for identifier in pool {
            let spec = ConfigSpec {
                mappings: vec![MappingSpec { kind, role: 0, identifiers: vec![(*identifier).to_owned()] }],
                form: Form::RoleMappings,
                escaped: false,
            };
            let config = SecurityConfiguration::from_json(&spec.json()).expect("valid with globs off");
            assert!(ResolverBuilder::new().build(&config).is_ok(), "{identifier}");
            assert!(ResolverBuilder::new().globs(true).build(&config).is_err(), "{identifier}");
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The bias toward hits

/// Counts requests, and those the reference resolves to a mapping and to a `Prefix` mapping.
#[derive(Debug, Default)]
struct HitCount {
    requests: usize,
    mapped: usize,
    by_prefix: usize,
}

impl HitCount {
    fn add(&mut self, reference: &ReferenceResolver, requests: &[RequestText]) {
        for text in requests {
            let path = text.path.as_deref().map(|p| S3Path::parse(p).unwrap());
            let request = Request { user: text.user.as_deref(), groups: &text.groups, path };
            self.requests += 1;
            if let Some(m) = reference.resolve(&request).mapping() {
                self.mapped += 1;
                self.by_prefix += usize::from(m.identifier_type == IdentifierType::Prefix);
            }
        }
    }
}

#[test]
fn generated_requests_mostly_hit() {
    const MODES: [(PrefixMatch, bool); 4] = [
        (PrefixMatch::String, false),
        (PrefixMatch::Segment, false),
        (PrefixMatch::String, true),
        (PrefixMatch::Segment, true),
    ];
    let mut runner = TestRunner::deterministic();
    let strategy = case();
    let mut counts: [HitCount; 4] = Default::default();
    let mut generated = 0;
    while generated < 5000 {
        let (spec, requests) = strategy.new_tree(&mut runner).expect("the strategy generates").current();
        let config = SecurityConfiguration::from_json(&spec.json()).expect("generated configurations are valid");
        let requests: Vec<RequestText> = requests.iter().map(|r| r.text(&spec)).collect();
        generated += requests.len();
        for (count, (prefix_match, globs)) in counts.iter_mut().zip(MODES) {
            if let Ok(reference) = ReferenceResolver::new(&config, &options(prefix_match, globs)) {
                count.add(&reference, &requests);
            }
        }
    }
    for (count, (prefix_match, globs)) in counts.iter().zip(MODES) {
        let mode = format!("{prefix_match:?} prefixes, globs {}", if globs { "on" } else { "off" });
        let share = |n: usize| n as f64 / count.requests as f64;
        let (mapped, by_prefix) = (share(count.mapped), share(count.by_prefix));
        eprintln!("{mode}: {} requests, {mapped:.3} to a mapping, {by_prefix:.3} to a Prefix mapping", count.requests);
        assert!(count.requests * 10 >= generated * 8, "{mode}: too few configurations build: {}", count.requests);
        assert!(mapped >= 0.6, "{mode}: only {mapped:.3} of the requests resolve to a mapping");
        assert!(by_prefix >= 0.2, "{mode}: only {by_prefix:.3} of the requests resolve to a Prefix mapping");
    }
}

/// The generated configurations above use a handful of buckets, while the compiled resolver finds
/// buckets by hashing from 64 on. Configurations of the benchmark mix (70 buckets at 7,000 mappings),
/// with deep paths under their prefixes that are cut short, moved to another bucket (existing or not)
/// or changed in one digit, resolve as the reference scan does, in both prefix modes.
#[test]
fn compiled_equals_reference_with_many_buckets() {
    use emrfs_rolemap::synth::{self, RequestKind, SplitMix64};
    let config = SecurityConfiguration::from_json(&synth::config_json(7_000, 7)).expect("synthetic config is valid");
    let generator = synth::RequestGenerator::new(&config);
    let mut rng = SplitMix64::new(5);
    let mut paths = Vec::new();
    for _ in 0..80 {
        let hit = generator.request(RequestKind::PrefixHit, &mut rng).path;
        let cut = hit[..6 + rng.below(hit.len() - 5)].to_owned();
        let bucket_end = hit[5..].find('/').map_or(hit.len(), |i| i + 5);
        let moved = format!("s3://data-bucket-{}{}", rng.below(60), &hit[bucket_end..]);
        let mut digit = hit.clone().into_bytes();
        let digits: Vec<usize> = (5..digit.len()).filter(|&i| digit[i].is_ascii_digit()).collect();
        let at = digits[rng.below(digits.len())];
        digit[at] = b'0' + (digit[at] - b'0' + 1 + rng.below(9) as u8) % 10;
        paths.extend([hit, cut, moved, String::from_utf8(digit).expect("ASCII")]);
    }
    let groups = ["unmapped-group".to_owned()];
    let mut decided_by_prefix = 0;
    for prefix_match in [PrefixMatch::String, PrefixMatch::Segment] {
        let options = options(prefix_match, false);
        let resolver = ResolverBuilder::with_options(options.clone()).build(&config).expect("builds");
        let reference = ReferenceResolver::new(&config, &options).expect("builds");
        let principal = resolver.prepare(Some("unmapped-user"), &groups);
        for text in &paths {
            let path = S3Path::parse(text).expect("valid path");
            let request = Request { user: Some("unmapped-user"), groups: &groups, path: Some(path) };
            let expected = reference.resolve(&request);
            assert_eq!(principal.resolve(Some(&path)), expected, "{text} ({prefix_match:?})");
            assert_eq!(resolver.resolve(&request), expected, "{text} ({prefix_match:?})");
            decided_by_prefix += usize::from(expected.mapping().is_some());
        }
    }
    // Not a vacuous comparison: many of the paths (every unchanged one, at least) hit a prefix.
    assert!(decided_by_prefix >= 2 * 80, "only {decided_by_prefix} of {} resolutions hit", 2 * paths.len());
}
