//! The hot path does not allocate: parsing an [`S3Path`], [`PreparedPrincipal::resolve`] and
//! [`Resolver::resolve`], on a realistic configuration, for every kind of outcome.
//!
//! A counting global allocator wraps the system allocator and counts allocations (and reallocations)
//! per thread, so the tests of this file, which the harness runs on parallel threads, do not see each
//! other's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

use emrfs_rolemap::{
    IdentifierType, PreparedPrincipal, Request, Resolver, ResolverBuilder, S3Path, SecurityConfiguration,
};

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with` because a thread may allocate while its thread-locals are being torn down.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: `ptr` was allocated by `System` through this allocator with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` through this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f` and returns its result with the number of allocations it made on this thread.
fn allocations<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let before = ALLOCATIONS.with(Cell::get);
    let result = f();
    let after = ALLOCATIONS.with(Cell::get);
    (result, after - before)
}

/// How many times each measured call runs.
const CALLS: usize = 1000;

const BUCKETS: [&str; 5] = ["lake-raw", "lake-curated", "analytics-prod", "logs-eu-west-1", "ml-models"];

/// A configuration shaped like a real one: an admin user first, then 320 prefixes in 160 mappings
/// over five buckets (team and dataset directories, some down to partitions), then 20 group mappings,
/// 20 user mappings and a bare bucket for everyone. With `globs`, glob identifiers are added after
/// the admin: a user glob, a group glob and two prefix globs.
fn realistic_config(globs: bool) -> SecurityConfiguration {
    let role = |name: &str| format!("arn:aws:iam::123456789012:role/{name}");
    let mapping = |name: &str, kind: &str, identifiers: &[String]| {
        let identifiers: Vec<String> = identifiers.iter().map(|i| format!("\"{i}\"")).collect();
        format!(
            "{{\"Role\": \"{}\", \"IdentifierType\": \"{kind}\", \"Identifiers\": [{}]}}",
            role(name),
            identifiers.join(", ")
        )
    };
    let mut mappings = vec![mapping("admin", "User", &["svc-admin".to_owned()])];
    if globs {
        mappings.push(mapping("etl", "User", &["etl-*".to_owned()]));
        mappings.push(mapping("team-admins", "Group", &["team-?-admins".to_owned()]));
        mappings.push(mapping(
            "app-logs",
            "Prefix",
            &["s3://logs-*/app/".to_owned(), "s3://lake-raw/*/tmp/".to_owned()],
        ));
    }
    for i in 0..160 {
        let bucket = BUCKETS[i % BUCKETS.len()];
        let (team, dataset) = (i / 10, i % 10);
        let identifiers = [
            format!("s3://{bucket}/team-{team}/dataset-{dataset}/year=2024/month=0{}/", 1 + i % 9),
            format!("s3a://{bucket}/team-{team}/dataset-{dataset}/"),
        ];
        mappings.push(mapping(&format!("data-{i}"), "Prefix", &identifiers));
    }
    for i in 0..20 {
        mappings.push(mapping(&format!("group-{i}"), "Group", &[format!("data-eng-{i}"), format!("analysts-{i}")]));
    }
    for i in 0..20 {
        mappings.push(mapping(&format!("user-{i}"), "User", &[format!("user-{i}")]));
    }
    mappings.push(mapping("shared", "Prefix", &["s3://shared-bucket".to_owned()]));
    let json = format!("{{\"RoleMappings\": [\n{}\n]}}", mappings.join(",\n"));
    SecurityConfiguration::from_json(&json).expect("the realistic configuration is valid")
}

/// One measured request: who, where, and what it must resolve to.
struct Case {
    what: &'static str,
    user: Option<&'static str>,
    groups: Vec<String>,
    path: &'static str,
    /// The identifier type and identifier that must decide, or `None` for a fallback.
    expected: Option<(IdentifierType, &'static str)>,
}

fn case(
    what: &'static str,
    user: Option<&'static str>,
    groups: &[&str],
    path: &'static str,
    expected: Option<(IdentifierType, &'static str)>,
) -> Case {
    Case { what, user, groups: groups.iter().map(|g| (*g).to_owned()).collect(), path, expected }
}

fn literal_cases() -> Vec<Case> {
    use IdentifierType::{Group, Prefix, User};
    let staff: &[&str] = &["staff", "users", "docker"];
    vec![
        case(
            "deep prefix hit",
            Some("nobody"),
            staff,
            "s3://lake-raw/team-3/dataset-0/year=2024/month=04/day=17/hour=09/part-00000-c000.snappy.parquet",
            Some((Prefix, "s3://lake-raw/team-3/dataset-0/year=2024/month=04/")),
        ),
        case(
            "shallower prefix hit",
            Some("nobody"),
            staff,
            "s3n://ml-models/team-0/dataset-4/checkpoints/epoch-12/model.bin",
            Some((Prefix, "s3a://ml-models/team-0/dataset-4/")),
        ),
        case("user hit", Some("svc-admin"), &[], "s3://lake-raw/team-3/dataset-0/x", Some((User, "svc-admin"))),
        case(
            "group hit",
            Some("nobody"),
            &["staff", "users", "analysts-7", "docker"],
            "s3://unmapped-bucket/some/key",
            Some((Group, "analysts-7")),
        ),
        case("user hit after the groups", Some("user-11"), staff, "s3://unmapped-bucket/k", Some((User, "user-11"))),
        case("fallback", Some("nobody"), staff, "s3://unmapped-bucket/team-3/dataset-0/", None),
        case("fallback on a near-miss key", Some("nobody"), staff, "s3://lake-raw/team-3/dataset-", None),
        case("bare bucket hit", Some("nobody"), staff, "s3://shared-bucket", Some((Prefix, "s3://shared-bucket"))),
        case("bare bucket fallback", None, &[], "s3://lake-raw", None),
    ]
}

fn glob_cases() -> Vec<Case> {
    use IdentifierType::{Group, Prefix, User};
    // The literal cases still hold: the globs, placed after the admin, match none of them.
    let mut cases = literal_cases();
    cases.extend([
        case("user glob hit", Some("etl-nightly"), &[], "s3://unmapped-bucket/k", Some((User, "etl-*"))),
        case("group glob hit", Some("nobody"), &["staff", "team-b-admins"], "s3://x/k", Some((Group, "team-?-admins"))),
        case(
            "prefix glob hit",
            Some("nobody"),
            &["staff"],
            "s3://logs-eu-west-1/app/2024/05/01/app.log",
            Some((Prefix, "s3://logs-*/app/")),
        ),
        case(
            "prefix glob hit in a bucket of literal prefixes",
            Some("nobody"),
            &["staff"],
            "s3://lake-raw/team-3/tmp/dataset-0/x",
            Some((Prefix, "s3://lake-raw/*/tmp/")),
        ),
        case(
            "literal prefix hit past the globs",
            Some("nobody"),
            &["staff"],
            "s3://lake-raw/team-3/dataset-0/year=2024/month=04/day=17/part-0.parquet",
            Some((Prefix, "s3://lake-raw/team-3/dataset-0/year=2024/month=04/")),
        ),
    ]);
    cases
}

fn decided_by<'r>(resolution: &emrfs_rolemap::Resolution<'r>) -> Option<(IdentifierType, &'r str)> {
    resolution.mapping().map(|m| (m.identifier_type, m.identifier))
}

/// Resolves every case `CALLS` times through both entry points; returns the allocations of each case.
fn measure(resolver: &Resolver, cases: &[Case]) -> Vec<(&'static str, u64, u64)> {
    let mut counts = Vec::new();
    for case in cases {
        let (path, parse_allocations) = allocations(|| S3Path::parse(black_box(case.path)).expect("the path parses"));
        assert_eq!(parse_allocations, 0, "parsing `{}` allocated", case.path);
        let principal: PreparedPrincipal = resolver.prepare(case.user, &case.groups);
        let request = Request { user: case.user, groups: &case.groups, path: Some(path) };

        let ((), prepared) = allocations(|| {
            for _ in 0..CALLS {
                let resolution = principal.resolve(black_box(Some(&path)));
                assert_eq!(decided_by(&resolution), case.expected, "{}", case.what);
            }
        });
        let ((), direct) = allocations(|| {
            for _ in 0..CALLS {
                let resolution = resolver.resolve(black_box(&request));
                assert_eq!(decided_by(&resolution), case.expected, "{}", case.what);
            }
        });
        counts.push((case.what, prepared, direct));
    }
    counts
}

#[test]
fn the_counter_sees_allocations_inside_a_measured_section() {
    let resolver = ResolverBuilder::new().build(&realistic_config(false)).unwrap();
    let path = S3Path::parse("s3://lake-raw/team-3/dataset-0/x").unwrap();
    let principal = resolver.prepare(Some("nobody"), &["staff"]);
    let (_, n) = allocations(|| {
        for _ in 0..CALLS {
            black_box(principal.resolve(Some(&path)));
        }
        black_box(Box::new(7u64));
        for _ in 0..CALLS {
            black_box(principal.resolve(Some(&path)));
        }
    });
    assert_eq!(n, 1, "one deliberate allocation among the resolutions");
    let (_, n) = allocations(|| black_box(format!("{}", black_box(42))));
    assert!(n >= 1, "formatting a `String` allocates");
}

#[test]
fn literal_resolution_does_not_allocate() {
    let resolver = ResolverBuilder::new().build(&realistic_config(false)).unwrap();
    for (what, prepared, direct) in measure(&resolver, &literal_cases()) {
        assert_eq!((prepared, direct), (0, 0), "{what}: allocations in {CALLS} prepared and {CALLS} direct calls");
    }
}

#[test]
fn glob_resolution_does_not_allocate_after_a_warm_up() {
    let resolver = ResolverBuilder::new().globs(true).build(&realistic_config(true)).unwrap();
    let cases = glob_cases();
    // The first glob match on a thread fills the regex engines' caches, which are then reused.
    for (what, prepared, direct) in measure(&resolver, &cases) {
        eprintln!(
            "warm-up, {what}: {prepared} allocations in {CALLS} prepared calls, {direct} in {CALLS} direct calls"
        );
    }
    for (what, prepared, direct) in measure(&resolver, &cases) {
        eprintln!("{what}: {prepared} allocations in {CALLS} prepared calls, {direct} in {CALLS} direct calls");
        assert_eq!((prepared, direct), (0, 0), "{what}: allocations in {CALLS} prepared and {CALLS} direct calls");
    }
}

/// A source that hands out the same temporary credentials for every request.
struct FixedSource;

impl emrfs_rolemap::credentials::CredentialSource for FixedSource {
    async fn fetch(
        &self,
        _: &emrfs_rolemap::credentials::CredentialRequest<'_>,
    ) -> Result<emrfs_rolemap::credentials::Credentials, emrfs_rolemap::credentials::SourceError> {
        let expiration = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        Ok(emrfs_rolemap::credentials::Credentials::new("ASIAFIXED", "secret", Some("token".into()), Some(expiration)))
    }
}

#[test]
fn a_credential_cache_hit_does_not_allocate() {
    use emrfs_rolemap::credentials::{AssumeRoleSettings, CacheConfig, CredentialCache};
    use futures_util::FutureExt;

    let resolver = ResolverBuilder::new().build(&realistic_config(false)).expect("builds");
    let cache = CredentialCache::new(FixedSource, CacheConfig::default());
    let mut settings = AssumeRoleSettings::default();
    settings.source_identity = true;
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    for case in literal_cases() {
        let path = S3Path::parse(case.path).expect("valid path");
        let principal = resolver.prepare(case.user, &case.groups);
        let lookup = || {
            let resolution = principal.resolve(Some(&path));
            let request = settings.request_for(&resolution, case.user);
            cache.get(&request).now_or_never().map(|r| r.map(|c| c.access_key_id().len()))
        };
        // The first lookup fills the cache (and allocates); every later one is a hit.
        runtime
            .block_on(async { cache.get(&settings.request_for(&principal.resolve(Some(&path)), case.user)).await })
            .expect("the fixed source never fails");
        let (answers, allocated) =
            allocations(|| (0..CALLS).map(|_| black_box(lookup())).filter(|a| a.is_some()).count());
        assert_eq!(answers, CALLS, "{}: every lookup is answered at once", case.what);
        assert_eq!(allocated, 0, "{}: resolve + session name + cache hit allocated {allocated} times", case.what);
    }
}
