//! `diff` of a synthetic configuration against a copy with random edits (moves, deletions, role
//! changes; `synth::edited_json`): N = 10,000 with 100 edits, listing the default 1,000 transitions,
//! beside compiling the two configurations alone (the floor of any diff that asks the resolvers); and
//! N = 1,000 with 10 edits, listing every transition, beside the naive baseline that resolves every
//! request of one or two candidates (every pair of identifiers of both sides). Run with
//! `cargo bench --bench diff`.

use std::collections::HashSet;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use emrfs_rolemap::synth;
use emrfs_rolemap::{
    Diff, IdentifierType, Request, Resolution, Resolver, ResolverBuilder, ResolverOptions, S3Path,
    SecurityConfiguration,
};

/// A configuration of `n` mappings and its copy after `edits` edits.
fn pair(n: usize, edits: usize) -> (SecurityConfiguration, SecurityConfiguration) {
    let text = synth::config_json(n, 42);
    let edited = synth::edited_json(&text, edits, 7).expect("a synthetic document");
    let parse = |t: &str| SecurityConfiguration::from_json(t).expect("synthetic config is valid");
    (parse(&text), parse(&edited))
}

/// Every transition of a request of one identifier of either side, or of two of parts that go together
/// (not two users, not two paths), found by resolving each such request with both compiled resolvers.
fn naive(old: &SecurityConfiguration, new: &SecurityConfiguration, options: &ResolverOptions) -> usize {
    let build = |c: &SecurityConfiguration| ResolverBuilder::with_options(options.clone()).build(c).expect("builds");
    let (old_resolver, new_resolver): (Resolver, Resolver) = (build(old), build(new));
    let mut parts: Vec<(IdentifierType, &str)> = [old, new]
        .iter()
        .flat_map(|c| c.mappings())
        .flat_map(|m| m.identifiers().iter().map(move |i| (m.identifier_type(), i.as_str())))
        .collect();
    parts.sort_unstable();
    parts.dedup();
    let key = |r: &Resolution<'_>| {
        let role = r.role().map(|role| role.as_str().to_owned());
        (r.decision(), role, r.mapping_index(), r.mapping().map(|m| m.identifier.to_owned()))
    };
    let mut seen = HashSet::new();
    let mut ask = |request: &Request<'_>| {
        let (o, n) = (old_resolver.resolve(request), new_resolver.resolve(request));
        if o.decision() != n.decision() || o.role() != n.role() {
            seen.insert((key(&o), key(&n)));
        }
    };
    for (i, &first) in parts.iter().enumerate() {
        for &second in std::iter::once(&first).chain(&parts[i + 1..]) {
            if first != second && first.0 == second.0 && first.0 != IdentifierType::Group {
                continue;
            }
            let both = [first, second];
            let of = |kind: IdentifierType| both.into_iter().filter(move |(k, _)| *k == kind).map(|(_, t)| t);
            let mut groups: Vec<String> = of(IdentifierType::Group).map(str::to_owned).collect();
            groups.dedup();
            let path = of(IdentifierType::Prefix).next().map(|p| S3Path::parse(p).expect("identifiers parse"));
            ask(&Request { user: of(IdentifierType::User).next(), groups: &groups, path });
        }
    }
    seen.len()
}

fn diff(c: &mut Criterion) {
    let options = ResolverOptions::default();
    let mut group = c.benchmark_group("diff");
    group.measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1)).sample_size(10);

    let (old, new) = pair(10_000, 100);
    let listed = Diff::between(&old, &new, &options).expect("builds").changes().len();
    println!("diff/10000: {listed} transitions listed (the default maximum)");
    group.bench_function(BenchmarkId::new("diff_first_1000", "10000_100_edits"), |b| {
        b.iter(|| Diff::between(black_box(&old), black_box(&new), &options).expect("builds").changes().len())
    });
    group.bench_function(BenchmarkId::new("compile_both", "10000_100_edits"), |b| {
        b.iter(|| {
            let build = |c| ResolverBuilder::new().build(c).expect("builds");
            (build(black_box(&old)), build(black_box(&new)))
        })
    });

    let (old, new) = pair(1_000, 10);
    let all = Diff::between(&old, &new, &options).expect("builds").with_max_changes(usize::MAX);
    let found = naive(&old, &new, &options);
    println!("diff/1000: {found} transitions in all");
    assert_eq!(all.changes().len(), found, "the diff and the naive baseline find the same transitions");
    group.bench_function(BenchmarkId::new("diff_all", "1000_10_edits"), |b| {
        b.iter(|| {
            let diff = Diff::between(black_box(&old), black_box(&new), &options).expect("builds");
            diff.with_max_changes(usize::MAX).changes().len()
        })
    });
    group.bench_function(BenchmarkId::new("naive_pairs", "1000_10_edits"), |b| {
        b.iter(|| naive(black_box(&old), black_box(&new), &options))
    });
    group.finish();
}

criterion_group!(benches, diff);
criterion_main!(benches);
