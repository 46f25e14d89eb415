//! Resolve latency: the compiled resolver beside the reference scan and a hash-map "limit" baseline,
//! at several configuration sizes. Run with `cargo bench --bench resolve`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use emrfs_rolemap::synth::{self, RequestKind, SplitMix64};
use emrfs_rolemap::{ReferenceResolver, Request, ResolverBuilder, S3Path, SecurityConfiguration};

const SIZES: [usize; 3] = [10, 1_000, 100_000];
const KINDS: [(RequestKind, &str); 4] = [
    (RequestKind::PrefixHit, "prefix_hit"),
    (RequestKind::UserHit, "user_hit"),
    (RequestKind::GroupHit, "group_hit_8_groups"),
    (RequestKind::Fallback, "fallback"),
];

fn resolve(c: &mut Criterion) {
    for (kind, kind_name) in KINDS {
        let mut group = c.benchmark_group(format!("resolve/{kind_name}"));
        group.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
        for n in SIZES {
            let config =
                SecurityConfiguration::from_json(&synth::config_json(n, 42)).expect("synthetic config is valid");
            let resolver = ResolverBuilder::new().build(&config).expect("builds");
            let reference = ReferenceResolver::new(&config, &Default::default()).expect("builds");
            let request = synth::request(&config, kind, &mut SplitMix64::new(n as u64));
            let path = S3Path::parse(&request.path).expect("valid path");
            let req = Request { user: Some(&request.user), groups: &request.groups, path: Some(path) };
            let prepared = resolver.prepare(Some(&request.user), &request.groups);
            // The limit: one lookup of the whole path string in a hash map of n keys.
            let limit: HashMap<String, usize> =
                (0..n).map(|i| (format!("{}{i}", request.path), i)).chain([(request.path.clone(), n)]).collect();

            group.bench_function(BenchmarkId::new("compiled_prepared", n), |b| {
                b.iter(|| prepared.resolve(black_box(Some(&path))).mapping_index())
            });
            group.bench_function(BenchmarkId::new("compiled_fresh_principal", n), |b| {
                b.iter(|| resolver.resolve(black_box(&req)).mapping_index())
            });
            group.bench_function(BenchmarkId::new("limit_hashmap_lookup", n), |b| {
                b.iter(|| limit.get(black_box(request.path.as_str())).copied())
            });
            if n <= 1_000 || kind != RequestKind::Fallback {
                group.bench_function(BenchmarkId::new("reference", n), |b| {
                    b.iter(|| reference.resolve(black_box(&req)).mapping_index())
                });
            }
        }
        group.finish();
    }
}

/// Prefix hits on 1,000 different deep paths in turn, so that the branch predictor cannot learn one
/// path's walk (as real traffic does not let it): the single-path group above flatters changes that the
/// predictor can learn.
fn resolve_varied(c: &mut Criterion) {
    let mut group = c.benchmark_group("resolve/prefix_hit_1000_paths");
    group.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    for n in SIZES {
        let config = SecurityConfiguration::from_json(&synth::config_json(n, 42)).expect("synthetic config is valid");
        let resolver = ResolverBuilder::new().build(&config).expect("builds");
        let generator = synth::RequestGenerator::new(&config);
        let mut rng = SplitMix64::new(n as u64);
        let texts: Vec<String> = (0..1000).map(|_| generator.request(RequestKind::PrefixHit, &mut rng).path).collect();
        let paths: Vec<S3Path<'_>> = texts.iter().map(|t| S3Path::parse(t).expect("valid path")).collect();
        let prepared = resolver.prepare(Some("unmapped-user"), &[] as &[&str]);
        // The limit: the same paths among N keys in all, as in the single-path group.
        let filler: Vec<String> = (texts.len()..n.max(texts.len())).map(|i| format!("{}#{i}", texts[0])).collect();
        let limit: HashMap<&str, usize> =
            texts.iter().chain(&filler).enumerate().map(|(i, t)| (t.as_str(), i)).collect();
        group.bench_function(BenchmarkId::new("compiled_prepared", n), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % paths.len();
                prepared.resolve(black_box(Some(&paths[i]))).mapping_index()
            })
        });
        group.bench_function(BenchmarkId::new("limit_hashmap_lookup", n), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % texts.len();
                limit.get(black_box(texts[i].as_str())).copied()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, resolve, resolve_varied);
criterion_main!(benches);
