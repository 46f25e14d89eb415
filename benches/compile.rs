//! Compile time (parse, validate, build) at N = 1,000 and 100,000 mappings beside plain
//! `serde_json::from_str::<Value>` of the same text, and the memory of a compiled resolver per
//! identifier at N = 100,000, counted by a counting global allocator. Run with
//! `cargo bench --bench compile`.

#[path = "../src/bin/emrfs-rolemap/counting_alloc.rs"]
mod counting_alloc;

use std::hint::black_box;
use std::time::Duration;

use counting_alloc::{CountingAllocator, counted};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use emrfs_rolemap::synth;
use emrfs_rolemap::{ResolverBuilder, SecurityConfiguration};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500)).sample_size(10);
    for n in [1_000, 100_000] {
        let text = synth::config_json(n, 42);
        group.bench_function(BenchmarkId::new("parse_validate_build", n), |b| {
            b.iter(|| {
                let config = SecurityConfiguration::from_json(black_box(&text)).expect("synthetic config is valid");
                ResolverBuilder::new().build(&config).expect("builds")
            })
        });
        group.bench_function(BenchmarkId::new("serde_json_value", n), |b| {
            b.iter(|| serde_json::from_str::<serde_json::Value>(black_box(&text)).expect("valid JSON"))
        });
    }
    group.finish();
}

/// Not a timing: prints the resolver's counted heap bytes per identifier beyond the identifiers' text.
fn memory(_: &mut Criterion) {
    let n = 100_000;
    let config = SecurityConfiguration::from_json(&synth::config_json(n, 42)).expect("synthetic config is valid");
    let (resolver, bytes) = counted(|| ResolverBuilder::new().build(&config).expect("builds"));
    let bytes = usize::try_from(bytes).expect("building allocates");
    let identifiers = config.identifier_count();
    let own: usize = config.mappings().iter().flat_map(|m| m.identifiers()).map(|i| i.as_str().len()).sum();
    println!(
        "memory/resolver/{n}: {bytes} bytes for {identifiers} identifiers ({own} bytes of identifier text): \
         {:.1} bytes per identifier beyond its own text (compiled tables alone, estimated: {:.1})",
        (bytes - own) as f64 / identifiers as f64,
        resolver.compiled_heap_bytes() as f64 / identifiers as f64,
    );
    black_box(resolver);
}

criterion_group!(benches, compile, memory);
criterion_main!(benches);
