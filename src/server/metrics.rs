//! The server's counters and latency histograms, and their Prometheus text exposition (format 0.0.4).
//! Recording is a few relaxed atomic additions (a grant also looks its role up in a map, under a read
//! lock); nothing is allocated until `/metrics` is rendered, but the first grant of a role.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use crate::credentials::{CacheStats, Origin};

use super::store::ConfigStore;

/// The routes the server counts requests by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Resolve,
    Explain,
    Credentials,
    ContainerCredentials,
    Tokens,
    TokensRevoke,
    Healthz,
    Readyz,
    Metrics,
    Other,
}

impl Endpoint {
    const ALL: [Endpoint; 10] = [
        Endpoint::Resolve,
        Endpoint::Explain,
        Endpoint::Credentials,
        Endpoint::ContainerCredentials,
        Endpoint::Tokens,
        Endpoint::TokensRevoke,
        Endpoint::Healthz,
        Endpoint::Readyz,
        Endpoint::Metrics,
        Endpoint::Other,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Endpoint::Resolve => "/v1/resolve",
            Endpoint::Explain => "/v1/explain",
            Endpoint::Credentials => "/v1/credentials",
            Endpoint::ContainerCredentials => "/v1/container-credentials",
            Endpoint::Tokens => "/v1/tokens",
            Endpoint::TokensRevoke => "/v1/tokens/revoke",
            Endpoint::Healthz => "/healthz",
            Endpoint::Readyz => "/readyz",
            Endpoint::Metrics => "/metrics",
            Endpoint::Other => "other",
        }
    }
}

/// Every status code the server answers with.
const STATUSES: [u16; 14] = [200, 400, 401, 403, 404, 405, 408, 413, 429, 500, 502, 503, 504, 0];

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 16] =
    [0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// The most roles counted one by one; grants of further roles are counted under `role="other"`.
const MAX_ROLES: usize = 10_000;

/// The server's own counters; the cache and the configuration store keep theirs.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: [[AtomicU64; STATUSES.len()]; Endpoint::ALL.len()],
    latency: [Histogram; Endpoint::ALL.len()],
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    connections_refused: AtomicU64,
    connections_evicted: AtomicU64,
    identity_lookup_failures: AtomicU64,
    /// Credentials handed out, by role ARN (`fallback` for the base credentials): from the cache, from STS.
    grants: RwLock<HashMap<Box<str>, [AtomicU64; 3]>>,
    /// Refused credential requests and unauthenticated requests, by error code.
    refusals: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    /// Counts one answered request.
    pub(crate) fn record(&self, endpoint: Endpoint, status: u16, elapsed: Duration) {
        let e = endpoint as usize;
        let s = STATUSES.iter().position(|&c| c == status).unwrap_or(STATUSES.len() - 1);
        self.requests[e][s].fetch_add(1, Ordering::Relaxed);
        let histogram = &self.latency[e];
        let seconds = elapsed.as_secs_f64();
        if let Some(b) = BUCKETS.iter().position(|&bound| seconds <= bound) {
            histogram.buckets[b].fetch_add(1, Ordering::Relaxed);
        }
        histogram.count.fetch_add(1, Ordering::Relaxed);
        histogram.sum_nanos.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_evicted(&self) {
        self.connections_evicted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn identity_lookup_failed(&self) {
        self.identity_lookup_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts credentials handed out for `role` (`fallback` for the base credentials).
    pub(crate) fn granted(&self, role: &str, origin: Origin) {
        let slot = match origin {
            Origin::Cache => 0,
            Origin::Source => 1,
            Origin::Shared => 2,
        };
        if let Some(counts) = self.grants.read().unwrap_or_else(|p| p.into_inner()).get(role) {
            counts[slot].fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut grants = self.grants.write().unwrap_or_else(|p| p.into_inner());
        let role = if grants.len() >= MAX_ROLES && !grants.contains_key(role) { "other" } else { role };
        grants.entry(role.into()).or_default()[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refusal with `code`.
    pub(crate) fn refused(&self, code: &'static str) {
        *self.refusals.lock().unwrap_or_else(|p| p.into_inner()).entry(code).or_default() += 1;
    }

    /// The Prometheus text exposition of everything the server knows; the grants by role only with
    /// `by_role` (for trusted callers: the roles others use are not every caller's business).
    pub(crate) fn render(&self, store: &ConfigStore, cache: &CacheStats, by_role: bool) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);

        header(&mut out, "requests_total", "counter", "HTTP requests answered, by endpoint and status code.");
        for endpoint in Endpoint::ALL {
            for (s, status) in STATUSES.iter().enumerate() {
                let n = load(&self.requests[endpoint as usize][s]);
                if n > 0 {
                    let status = if *status == 0 { "other".to_owned() } else { status.to_string() };
                    let _ = writeln!(
                        out,
                        "emrfs_rolemap_requests_total{{endpoint=\"{}\",status=\"{status}\"}} {n}",
                        endpoint.label()
                    );
                }
            }
        }

        header(&mut out, "request_duration_seconds", "histogram", "Time from request head to response, by endpoint.");
        for endpoint in Endpoint::ALL {
            let histogram = &self.latency[endpoint as usize];
            let label = endpoint.label();
            let mut cumulative = 0;
            for (b, bound) in BUCKETS.iter().enumerate() {
                cumulative += load(&histogram.buckets[b]);
                let _ = writeln!(
                    out,
                    "emrfs_rolemap_request_duration_seconds_bucket{{endpoint=\"{label}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let count = load(&histogram.count);
            let sum = load(&histogram.sum_nanos) as f64 / 1e9;
            let _ = writeln!(
                out,
                "emrfs_rolemap_request_duration_seconds_bucket{{endpoint=\"{label}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(out, "emrfs_rolemap_request_duration_seconds_sum{{endpoint=\"{label}\"}} {sum}");
            let _ = writeln!(out, "emrfs_rolemap_request_duration_seconds_count{{endpoint=\"{label}\"}} {count}");
        }

        header(
            &mut out,
            "credential_grants_total",
            "counter",
            "Credentials handed out, by role and origin (cache, sts, or shared: the fleet's shared tier).",
        );
        let grants = self.grants.read().unwrap_or_else(|p| p.into_inner());
        let mut roles: Vec<_> = grants.iter().filter(|_| by_role).collect();
        roles.sort_unstable_by_key(|(role, _)| *role);
        // Role ARNs hold only `A-Za-z0-9+=,.@_-:/` (RoleArn::parse), nothing a label value must escape.
        for (role, counts) in roles {
            let origins = [(Origin::Cache, &counts[0]), (Origin::Source, &counts[1]), (Origin::Shared, &counts[2])];
            for (origin, count) in origins {
                let _ = writeln!(
                    out,
                    "emrfs_rolemap_credential_grants_total{{role=\"{}\",origin=\"{}\"}} {}",
                    role,
                    origin.as_str(),
                    load(count)
                );
            }
        }
        drop(grants);
        header(
            &mut out,
            "credential_refusals_total",
            "counter",
            "Refused credential requests and unauthenticated requests, by code.",
        );
        for (code, n) in self.refusals.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "emrfs_rolemap_credential_refusals_total{{code=\"{code}\"}} {n}");
        }

        let generation = store.current();
        let simple: [(&str, &str, &str, u64); 17] = [
            ("connections_open", "gauge", "Connections open now.", load(&self.connections_open)),
            ("connections_total", "counter", "Connections accepted.", load(&self.connections_total)),
            (
                "connections_evicted_total",
                "counter",
                "Idle connections closed to make room for a new one in a full connection budget.",
                load(&self.connections_evicted),
            ),
            (
                "connections_refused_total",
                "counter",
                "Unix-socket connections refused because their uid held --max-connections-per-uid.",
                load(&self.connections_refused),
            ),
            (
                "identity_lookup_failures_total",
                "counter",
                "Unix-socket callers whose uid the OS could not name.",
                load(&self.identity_lookup_failures),
            ),
            ("config_generation", "gauge", "The configuration generation being served.", generation.number()),
            ("config_reloads_total", "counter", "Reloads that swapped in a new configuration.", store.reloads()),
            (
                "config_reload_failures_total",
                "counter",
                "Reloads rejected; the previous configuration kept serving.",
                store.reload_failures(),
            ),
            (
                "config_mappings",
                "gauge",
                "Role mappings in the served configuration.",
                generation.resolver().config().mappings().len() as u64,
            ),
            ("credential_cache_hits_total", "counter", "Credential lookups answered from the cache.", cache.hits),
            ("credential_cache_misses_total", "counter", "Credential lookups that waited for STS.", cache.misses),
            ("credential_cache_refreshes_total", "counter", "Background refreshes started.", cache.refreshes),
            (
                "credential_cache_source_calls_total",
                "counter",
                "Calls made to STS or the base chain.",
                cache.source_calls,
            ),
            (
                "credential_cache_stale_served_total",
                "counter",
                "Failed refreshes after which still-valid credentials were served.",
                cache.stale_served,
            ),
            ("credential_cache_evictions_total", "counter", "Entries evicted by the size bound.", cache.evictions),
            (
                "credential_cache_revoked_total",
                "counter",
                "Entries dropped because STS refused their refresh (never served stale).",
                cache.revoked,
            ),
            ("credential_cache_entries", "gauge", "Entries in the credential cache.", cache.entries),
        ];
        let shared = [
            ("shared_cache_hits_total", "counter", "Local misses answered by the shared tier.", cache.shared_hits),
            (
                "shared_cache_misses_total",
                "counter",
                "Local misses the shared tier could not answer.",
                cache.shared_misses,
            ),
            ("shared_cache_writes_total", "counter", "Entries written to the shared tier.", cache.shared_writes),
            (
                "shared_cache_lock_waits_total",
                "counter",
                "Misses that waited for another node's fetch.",
                cache.shared_lock_waits,
            ),
            (
                "shared_cache_errors_total",
                "counter",
                "Shared tier calls that failed or timed out.",
                cache.shared_errors,
            ),
            (
                "shared_cache_rejected_total",
                "counter",
                "Shared tier entries not served: altered, another key's or request's, or expired.",
                cache.shared_rejected,
            ),
            (
                "shared_cache_breaker_open",
                "gauge",
                "1 while the shared tier is not used after failures (a probe waits for it), else 0.",
                u64::from(cache.shared_breaker_open),
            ),
        ];
        let simple = simple.into_iter().chain(shared.into_iter().filter(|_| cache.shared));
        for (name, kind, help, value) in simple {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "emrfs_rolemap_{name} {value}");
        }
        header(&mut out, "build_info", "gauge", "Always 1; the version is in the label.");
        let _ = writeln!(out, "emrfs_rolemap_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));

        header(&mut out, "sts_errors_total", "counter", "Credential source errors, by kind.");
        for (kind, n) in &cache.errors {
            let _ = writeln!(out, "emrfs_rolemap_sts_errors_total{{kind=\"{kind}\"}} {n}");
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP emrfs_rolemap_{name} {help}\n# TYPE emrfs_rolemap_{name} {kind}");
}
