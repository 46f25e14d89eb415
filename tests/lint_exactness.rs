//! The shadowing analysis of `check` is exact, checked against the reference resolver on generated
//! configurations, in both prefix modes, with globs off and on:
//!
//! - **sound**: an identifier reported shadowed (alone, or as part of an unreachable mapping) matches
//!   no request that its mapping decides; a duplicate or redundant identifier matches no request that
//!   it is the deciding identifier of. Requests are built to hit the identifier: its own name or path,
//!   extended, shortened, with another scheme, glob syntax instantiated, plus unrelated users, groups
//!   and paths beside it.
//! - **complete for literals**: every literal identifier not reported has a witness request that it
//!   decides (its name alone, or its path alone, extended when an earlier glob matches the path itself
//!   but not its extensions); a redundant one has a witness its mapping decides through an earlier
//!   identifier.
//! - **partial shadowing**: a `User` or `Group` mapping with a deciding literal identifier is noted
//!   exactly when an earlier prefix decides some path, and then that prefix wins over it.
//!
//! Configurations come from tiny alphabets (three buckets, a few key segments, a few names, globs over
//! them) and copy identifiers into later mappings, so that shadowing is frequent
//! (`generated_configurations_shadow_often` proves it).

mod support;

use std::collections::BTreeSet;

use emrfs_rolemap::{
    Code, IdentifierType, PrefixMatch, ReferenceResolver, ResolverOptions, S3Path, SecurityConfiguration, check,
};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use support::generators::{self, Pools, RequestText, kind};

// ---------------------------------------------------------------------------------------------------
// Configurations

/// Alphabets where identifiers collide, with more globs than `equivalence` has, so that shadowing is
/// frequent.
fn pools() -> Pools<prop::bool::Any> {
    Pools {
        users: &["u0", "u1", "u2", "U1", "u1x", "g0"],
        user_globs: &["u*", "u?", "[ab]*", "u[0-2]", "{u1,u4}", "*", "u1*"],
        groups: &["g0", "g1", "g2", "G1", "g1x", "u0"],
        group_globs: &["g?", "g*", "[ab]*", "g[1-3]", "{g1,u1}", "*", "g1*"],
        schemes: &["s3", "s3", "s3a", "S3A"],
        buckets: &["b", "ba", "bar"],
        segments: &["a", "ab", "abc", "x", ""],
        prefix_globs: &[
            "s3://ba*/a",
            "s3://b/{a,x}/",
            "s3://ba?",
            "s3://bar/a*",
            "s3://bar/*",
            "s3://b*",
            "s3://bar/a?",
            "s3://bar/a?/",
            "s3a://ba[rn]/ab",
            "s3://b/a/*",
            "s3://b/ab*",
            "s3://b?/a/",
        ],
        trailing_slash: prop::bool::ANY,
        keyed_prefix_weight: 5,
        literal_name_weight: 6,
        literal_prefix_weight: 8,
        max_identifiers: 4,
    }
}

#[derive(Debug, Clone)]
struct MappingSpec {
    kind: IdentifierType,
    identifiers: Vec<String>,
}

fn mapping() -> impl Strategy<Value = MappingSpec> {
    kind()
        .prop_flat_map(|kind| pools().identifiers(kind).prop_map(move |identifiers| MappingSpec { kind, identifiers }))
}

/// Mappings, with identifiers copied into later mappings of the same type (exact shadowing), and
/// extended copies (shadowing by a shorter prefix).
fn config() -> impl Strategy<Value = Vec<MappingSpec>> {
    let copy = (any::<Index>(), any::<Index>(), any::<Index>(), select(&["", "", "x", "/", "/x", "a/"][..]));
    (prop::collection::vec(mapping(), 1..=8), prop::collection::vec(copy, 0..=4)).prop_map(|(mut mappings, copies)| {
        for (from, to, which, suffix) in copies {
            let (from, to) = (from.index(mappings.len()), to.index(mappings.len()));
            if from < to && mappings[from].kind == mappings[to].kind {
                let mut copied = which.get(&mappings[from].identifiers).clone();
                if mappings[to].kind == IdentifierType::Prefix {
                    copied.push_str(suffix);
                }
                mappings[to].identifiers.push(copied);
            }
        }
        mappings
    })
}

fn json(mappings: &[MappingSpec]) -> String {
    let mappings: Vec<serde_json::Value> = mappings
        .iter()
        .enumerate()
        .map(|(i, m)| {
            serde_json::json!({
                "Role": format!("arn:aws:iam::123456789012:role/r{i}"),
                "IdentifierType": m.kind.as_str(),
                "Identifiers": m.identifiers,
            })
        })
        .collect();
    serde_json::json!({ "RoleMappings": mappings }).to_string()
}

// ---------------------------------------------------------------------------------------------------
// Requests

/// Unrelated users, groups and paths to put beside a request that hits an identifier.
#[derive(Debug, Clone)]
struct Noise {
    user: Option<&'static str>,
    groups: Vec<&'static str>,
    path: Option<String>,
}

fn noise() -> impl Strategy<Value = Noise> {
    let names = &["u0", "u1", "U1", "g0", "g1", "nobody", "a"][..];
    let path = (select(pools().schemes), select(&["b", "ba", "bar", "barn", "c"][..]), select(pools().segments))
        .prop_map(|(s, b, k)| format!("{s}://{b}/{k}"));
    (
        prop::option::weighted(0.5, select(names)),
        prop::collection::vec(select(names), 0..=2),
        prop::option::weighted(0.5, path),
    )
        .prop_map(|(user, groups, path)| Noise { user, groups, path })
}

/// Replaces glob syntax by text it may match: `*` by nothing, `r`, `a` or `a/x`, `?` by `r`, `a` or
/// `/`, a class by one of its characters, an alternation by one of its branches (`seed` picks).
fn instantiate(text: &str, seed: usize) -> String {
    generators::instantiate(text, seed, &["", "r", "a", "a/x"], &['r', 'a', '/'])
}

/// Requests built to hit an identifier: for names, the name (and instantiations of its glob syntax);
/// for prefixes, the path (and instantiations) with extensions, a character less and another scheme.
fn hitting(kind: IdentifierType, text: &str) -> Vec<RequestText> {
    let instances = if text.contains(['*', '?', '[', '{']) { 6 } else { 0 };
    let bases = std::iter::once(text.to_owned()).chain((0..instances).map(|seed| instantiate(text, seed)));
    let mut out = BTreeSet::new();
    for base in bases {
        match kind {
            IdentifierType::User | IdentifierType::Group => {
                out.insert(RequestText::alone(kind, &base));
            }
            IdentifierType::Prefix => {
                let rest = base.split_once("://").map_or(base.as_str(), |(_, rest)| rest);
                let mut paths = vec![format!("s3n://{rest}"), base[..base.len() - 1].to_owned()];
                for suffix in ["", "x", "/", "/x", "a", "a/b", "/a/", "abc"] {
                    paths.push(format!("{base}{suffix}"));
                }
                for path in paths.into_iter().filter(|p| S3Path::parse(p).is_ok()) {
                    out.insert(RequestText::alone(kind, &path));
                }
            }
        }
    }
    out.into_iter().collect()
}

/// `request` with the noise's user, groups and path where the request has none.
fn noisy(request: &RequestText, noise: &Noise) -> RequestText {
    let mut out = request.clone();
    if out.user.is_none() {
        out.user = noise.user.map(str::to_owned);
    }
    out.groups.extend(noise.groups.iter().map(|g| (*g).to_owned()));
    if out.path.is_none() {
        out.path = noise.path.clone();
    }
    out
}

// ---------------------------------------------------------------------------------------------------
// What check reports

/// The shadowing diagnostics of one configuration, by mapping and identifier position.
#[derive(Debug, Default)]
struct Reported {
    shadowed: BTreeSet<(usize, usize)>,
    unreachable: BTreeSet<usize>,
    duplicate: BTreeSet<(usize, usize)>,
    redundant: BTreeSet<(usize, usize)>,
    partial: BTreeSet<usize>,
}

/// `(mapping, Some(position))` from `/RoleMappings/I/Identifiers/P`, `(mapping, None)` from
/// `/RoleMappings/I`.
fn parse_pointer(pointer: &str) -> (usize, Option<usize>) {
    let parts: Vec<&str> = pointer.trim_start_matches("/RoleMappings/").split('/').collect();
    let number = |s: &str| s.parse::<usize>().unwrap_or_else(|_| panic!("pointer {pointer}"));
    match parts[..] {
        [mapping] => (number(mapping), None),
        [mapping, "Identifiers", position] => (number(mapping), Some(number(position))),
        _ => panic!("unexpected pointer {pointer}"),
    }
}

fn reported(json: &str, options: &ResolverOptions) -> Result<(SecurityConfiguration, Reported), TestCaseError> {
    let checked = check(json.as_bytes(), options);
    let Some(config) = checked.config else {
        return Err(TestCaseError::fail(format!("generated configuration rejected: {}\n{json}", checked.diagnostics)));
    };
    let mut out = Reported::default();
    for d in checked.diagnostics.iter() {
        let at = parse_pointer(d.pointer());
        match (d.code(), at) {
            (Code::ShadowedIdentifier, (i, Some(p))) => out.shadowed.insert((i, p)),
            (Code::DuplicateIdentifier, (i, Some(p))) => out.duplicate.insert((i, p)),
            (Code::RedundantIdentifier, (i, Some(p))) => out.redundant.insert((i, p)),
            (Code::UnreachableMapping, (i, None)) => out.unreachable.insert(i),
            (Code::PartiallyShadowedMapping, (i, None)) => out.partial.insert(i),
            _ => true,
        };
    }
    Ok((config, out))
}

// ---------------------------------------------------------------------------------------------------
// The properties

fn options(prefix_match: PrefixMatch, globs: bool) -> ResolverOptions {
    ResolverOptions::new().with_prefix_match(prefix_match).with_globs(globs)
}

fn is_glob(text: &str, options: &ResolverOptions) -> bool {
    options.globs() && text.contains(['*', '?', '[', '{'])
}

/// A resolver for one identifier alone: it decides a request exactly when the identifier matches it.
fn alone(kind: IdentifierType, text: &str, options: &ResolverOptions) -> ReferenceResolver {
    let json = json(&[MappingSpec { kind, identifiers: vec![text.to_owned()] }]);
    let config = SecurityConfiguration::from_json(&json).expect("one valid identifier");
    ReferenceResolver::new(&config, options).expect("a glob valid in its configuration is valid alone")
}

/// `(mapping index, position of the deciding identifier in its mapping)` of a request.
fn decided(reference: &ReferenceResolver, request: &RequestText) -> Option<(usize, usize)> {
    request.with(|r| {
        let resolution = reference.resolve(r);
        let m = resolution.mapping()?;
        let identifiers = reference.config().mappings()[m.index].identifiers();
        let position = identifiers.iter().position(|i| i.as_str() == m.identifier)?;
        Some((m.index, position))
    })
}

/// Witness requests of a literal identifier: the identifier alone, then for prefixes its extensions.
fn witnesses(kind: IdentifierType, text: &str) -> Vec<RequestText> {
    let mut out = vec![RequestText::alone(kind, text)];
    if kind == IdentifierType::Prefix {
        out.extend(["z", "/z", "z/z"].iter().map(|s| RequestText::alone(kind, &format!("{text}{s}"))));
    }
    out
}

/// Counts of what the properties exercised.
#[derive(Debug, Default)]
struct Exercised {
    configurations: usize,
    shadowed: usize,
    unreachable: usize,
    redundant: usize,
    duplicate: usize,
    partial: usize,
    /// Requests that hit a reported identifier, each checked to be decided elsewhere.
    hits_checked: usize,
    /// Literal identifiers not reported, each with a witness it decides.
    witnesses: usize,
}

fn check_exactness(
    mappings: &[MappingSpec],
    noise: &[Noise],
    prefix_match: PrefixMatch,
    globs: bool,
    exercised: &mut Exercised,
) -> Result<(), TestCaseError> {
    let json = json(mappings);
    let options = options(prefix_match, globs);
    let (config, reported) = reported(&json, &options)?;
    let reference = ReferenceResolver::new(&config, &options).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let context = || format!("\nconfig: {json}\noptions: {options:?}\nreported: {reported:?}");
    exercised.configurations += 1;
    exercised.shadowed += reported.shadowed.len();
    exercised.unreachable += reported.unreachable.len();
    exercised.redundant += reported.redundant.len();
    exercised.duplicate += reported.duplicate.len();
    exercised.partial += reported.partial.len();

    // Which identifiers are open (not reported), and which mappings have an open literal.
    let mut open = BTreeSet::new();
    for (i, m) in config.mappings().iter().enumerate() {
        let shadowed_here = (0..m.identifiers().len()).filter(|&p| reported.shadowed.contains(&(i, p))).count();
        prop_assert!(
            !(reported.unreachable.contains(&i) && shadowed_here > 0),
            "an unreachable mapping also has shadowed identifiers{}",
            context()
        );
        prop_assert!(
            shadowed_here < m.identifiers().len(),
            "every identifier of mapping {i} is shadowed, but it is not reported unreachable{}",
            context()
        );
        for p in 0..m.identifiers().len() {
            let listed = [&reported.shadowed, &reported.duplicate, &reported.redundant];
            if !reported.unreachable.contains(&i) && !listed.iter().any(|s| s.contains(&(i, p))) {
                open.insert((i, p));
            }
        }
    }

    for (i, m) in config.mappings().iter().enumerate() {
        let kind = m.identifier_type();
        for (p, identifier) in m.identifiers().iter().enumerate() {
            let text = identifier.as_str();
            let shadowed = reported.unreachable.contains(&i) || reported.shadowed.contains(&(i, p));
            let within = reported.duplicate.contains(&(i, p)) || reported.redundant.contains(&(i, p));
            // Soundness: no request it matches is decided by it.
            if shadowed || within {
                let matcher = alone(kind, text, &options);
                for base in hitting(kind, text) {
                    for request in std::iter::once(base.clone()).chain(noise.iter().map(|n| noisy(&base, n))) {
                        if decided(&matcher, &request).is_none() {
                            continue;
                        }
                        exercised.hits_checked += 1;
                        let decision = decided(&reference, &request);
                        let ok = match decision {
                            Some((j, _)) if shadowed => j < i,
                            Some((j, q)) => j < i || (j == i && q < p),
                            None => false,
                        };
                        prop_assert!(
                            ok,
                            "`{text}` (mapping {i}, identifier {p}) is reported {} but {request:?} is decided by {decision:?}{}",
                            if shadowed { "shadowed" } else { "duplicate or redundant" },
                            context()
                        );
                    }
                }
            }
            // Completeness for literals: a witness it decides (or, when redundant, its mapping decides).
            if is_glob(text, &options) || shadowed || reported.duplicate.contains(&(i, p)) {
                continue;
            }
            let redundant = reported.redundant.contains(&(i, p));
            let found = witnesses(kind, text).iter().any(|w| match decided(&reference, w) {
                Some((j, q)) if j == i => {
                    if redundant {
                        q < p
                    } else {
                        q == p
                    }
                }
                _ => false,
            });
            prop_assert!(
                found,
                "no witness for `{text}` (mapping {i}, identifier {p}), which is not reported{}",
                context()
            );
            exercised.witnesses += 1;
        }
    }

    // Partial shadowing: a User or Group mapping with an open literal, below an open literal prefix.
    for (i, m) in config.mappings().iter().enumerate().filter(|(_, m)| m.identifier_type() != IdentifierType::Prefix) {
        let open_literal = (0..m.identifiers().len())
            .find(|&p| open.contains(&(i, p)) && !is_glob(m.identifiers()[p].as_str(), &options));
        let earlier_open_prefixes: Vec<(usize, usize)> = open
            .iter()
            .copied()
            .filter(|&(j, _)| j < i && config.mappings()[j].identifier_type() == IdentifierType::Prefix)
            .collect();
        let expected = open_literal.is_some() && !earlier_open_prefixes.is_empty();
        prop_assert_eq!(reported.partial.contains(&i), expected, "partial shadowing of mapping {}{}", i, context());
        let Some(p) = open_literal else { continue };
        for (j, q) in earlier_open_prefixes {
            let prefix = config.mappings()[j].identifiers()[q].as_str();
            let mut request = RequestText::alone(m.identifier_type(), m.identifiers()[p].as_str());
            request.path = Some(if is_glob(prefix, &options) { instantiate(prefix, 0) } else { prefix.to_owned() });
            if S3Path::parse(request.path.as_deref().unwrap_or_default()).is_err() {
                continue;
            }
            let decision = decided(&reference, &request);
            let by_prefix = decision
                .is_some_and(|(k, _)| k <= j && config.mappings()[k].identifier_type() == IdentifierType::Prefix);
            // A glob prefix's instantiation need not match the glob; a literal's path always does.
            prop_assert!(
                by_prefix || is_glob(prefix, &options),
                "{request:?} should be decided by a prefix mapping up to {j}, not {decision:?}{}",
                context()
            );
        }
    }
    Ok(())
}

const MODES: [(PrefixMatch, bool); 4] = [
    (PrefixMatch::String, false),
    (PrefixMatch::Segment, false),
    (PrefixMatch::String, true),
    (PrefixMatch::Segment, true),
];

fn case() -> impl Strategy<Value = (Vec<MappingSpec>, Vec<Noise>)> {
    (config(), prop::collection::vec(noise(), 1..=2))
}

proptest! {
    #![proptest_config(generators::proptest_config(300))]

    #[test]
    fn shadowing_is_exact_in_every_mode((mappings, noise) in case()) {
        for (prefix_match, globs) in MODES {
            check_exactness(&mappings, &noise, prefix_match, globs, &mut Exercised::default())?;
        }
    }
}

/// The generated configurations exercise every verdict in every mode.
#[test]
fn generated_configurations_shadow_often() {
    let mut runner = TestRunner::deterministic();
    let strategy = case();
    let mut counts: [Exercised; 4] = Default::default();
    for _ in 0..200 {
        let (mappings, noise) = strategy.new_tree(&mut runner).expect("the strategy generates").current();
        for (count, (prefix_match, globs)) in counts.iter_mut().zip(MODES) {
            check_exactness(&mappings, &noise, prefix_match, globs, count).expect("the properties hold");
        }
    }
    for (count, (prefix_match, globs)) in counts.iter().zip(MODES) {
        eprintln!("{prefix_match:?} prefixes, globs {globs}: {count:?}");
        let per = |n: usize| n as f64 / count.configurations as f64;
        assert!(per(count.shadowed) >= 0.5, "{prefix_match:?}/{globs}: too few shadowed identifiers: {count:?}");
        assert!(count.unreachable >= 20, "{prefix_match:?}/{globs}: too few unreachable mappings: {count:?}");
        assert!(count.redundant >= 20, "{prefix_match:?}/{globs}: too few redundant identifiers: {count:?}");
        assert!(count.duplicate >= 20, "{prefix_match:?}/{globs}: too few duplicates: {count:?}");
        assert!(count.partial >= 20, "{prefix_match:?}/{globs}: too few partial shadowings: {count:?}");
        assert!(per(count.hits_checked) >= 5.0, "{prefix_match:?}/{globs}: too few hits checked: {count:?}");
        assert!(per(count.witnesses) >= 3.0, "{prefix_match:?}/{globs}: too few witnesses: {count:?}");
    }
}
