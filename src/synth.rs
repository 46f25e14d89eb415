//! Synthetic security configurations and requests, reproducible from a seed, for benchmarks.
//!
//! The mix imitates a large real deployment: about 40 % `Prefix`, 30 % `Group` and 30 % `User`
//! mappings with 1 to 5 identifiers each; prefixes 1 to 4 key segments deep over a few hundred buckets.
//! Requests are built from the configuration's own identifiers so that they hit what they aim at.

use std::fmt::Write as _;

use crate::config::{IdentifierType, SecurityConfiguration};
use crate::diagnostics::Diagnostics;
use crate::resolve::RequestSpec;
pub use crate::rng::SplitMix64;

/// How many buckets a configuration of `mappings` mappings spreads its prefixes over.
fn bucket_count(mappings: usize) -> usize {
    (mappings / 100).clamp(3, 300)
}

/// A `{"RoleMappings": [...]}` document of `mappings` mappings in the realistic mix.
pub fn config_json(mappings: usize, seed: u64) -> String {
    let mut rng = SplitMix64::new(seed);
    let buckets = bucket_count(mappings);
    let mut out = String::from("{\"RoleMappings\": [\n");
    for index in 0..mappings {
        let kind = match rng.below(10) {
            0..=3 => "Prefix",
            4..=6 => "Group",
            _ => "User",
        };
        let count = 1 + rng.below(5);
        let identifiers: Vec<String> = (0..count)
            .map(|_| match kind {
                "Prefix" => {
                    let mut prefix = format!("s3://data-bucket-{}/", rng.below(buckets));
                    for depth in 0..1 + rng.below(4) {
                        let _ = write!(prefix, "{}-{}/", ["team", "zone", "table", "part"][depth], rng.below(mappings));
                    }
                    prefix
                }
                "Group" => format!("group-{}", rng.below(mappings * 2)),
                _ => format!("user-{}", rng.below(mappings * 2)),
            })
            .collect();
        let _ = write!(
            out,
            "  {{\"Role\": \"arn:aws:iam::123456789012:role/synthetic/role-{index}\", \"IdentifierType\": \"{kind}\", \"Identifiers\": {}}}{}",
            serde_json::Value::from(identifiers),
            if index + 1 == mappings { "" } else { "," }
        );
        out.push('\n');
    }
    out.push_str("]}\n");
    out
}

/// `config`, a `{"RoleMappings": [...]}` document, after `edits` random edits reproducible from `seed`:
/// mappings moved, deleted (while more than one is left) and given new roles, in equal shares; what the
/// `diff` benchmark compares a configuration with. Fails when `config` is not such a document.
pub fn edited_json(config: &str, edits: usize, seed: u64) -> Result<String, String> {
    let mut document: serde_json::Value = serde_json::from_str(config).map_err(|e| e.to_string())?;
    let Some(mappings) = document.get_mut("RoleMappings").and_then(serde_json::Value::as_array_mut) else {
        return Err("not a `{\"RoleMappings\": [...]}` document".to_owned());
    };
    let mut rng = SplitMix64::new(seed);
    for edit in 0..edits {
        let at = rng.below(mappings.len());
        match rng.below(3) {
            0 => {
                let moved = mappings.remove(at);
                mappings.insert(rng.below(mappings.len() + 1), moved);
            }
            1 if mappings.len() > 1 => {
                mappings.remove(at);
            }
            _ => mappings[at]["Role"] = format!("arn:aws:iam::123456789012:role/synthetic/edited-{edit}").into(),
        }
    }
    Ok(document.to_string())
}

/// The kinds of request a benchmark asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// A deep path under one of the configuration's prefixes, by a user no mapping names.
    PrefixHit,
    /// A user a `User` mapping names, on a path no prefix covers.
    UserHit,
    /// A user in 8 groups, one of which a `Group` mapping names, on a path no prefix covers.
    GroupHit,
    /// Nothing matches.
    Fallback,
}

/// A request as owned parts: user, groups, path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticRequest {
    /// The user.
    pub user: String,
    /// The groups.
    pub groups: Vec<String>,
    /// The S3 location.
    pub path: String,
}

/// A request of `kind` aimed at `config`'s identifiers (see [`RequestGenerator`] for many requests).
pub fn request(config: &SecurityConfiguration, kind: RequestKind, rng: &mut SplitMix64) -> SyntheticRequest {
    RequestGenerator::new(config).request(kind, rng)
}

impl RequestKind {
    /// Every kind, in the order a mixed corpus cycles through them.
    pub const ALL: [RequestKind; 4] =
        [RequestKind::PrefixHit, RequestKind::UserHit, RequestKind::GroupHit, RequestKind::Fallback];
}

/// Builds requests aimed at one configuration's identifiers, collected once so that each request
/// costs the same whatever the configuration's size.
#[derive(Debug, Clone)]
pub struct RequestGenerator<'c> {
    users: Vec<&'c str>,
    groups: Vec<&'c str>,
    prefixes: Vec<&'c str>,
}

impl<'c> RequestGenerator<'c> {
    /// Collects `config`'s literal identifiers by type.
    pub fn new(config: &'c SecurityConfiguration) -> Self {
        let of = |wanted: IdentifierType| -> Vec<&'c str> {
            config
                .mappings()
                .iter()
                .filter(|m| m.identifier_type() == wanted)
                .flat_map(|m| m.identifiers().iter().map(|i| i.as_str()))
                .collect()
        };
        RequestGenerator {
            users: of(IdentifierType::User),
            groups: of(IdentifierType::Group),
            prefixes: of(IdentifierType::Prefix),
        }
    }

    /// A request of `kind`; when the configuration has no identifier of the wanted type, the request
    /// misses instead.
    pub fn request(&self, kind: RequestKind, rng: &mut SplitMix64) -> SyntheticRequest {
        let pick = |candidates: &[&str], rng: &mut SplitMix64| -> Option<String> {
            (!candidates.is_empty()).then(|| candidates[rng.below(candidates.len())].to_owned())
        };
        let miss_path = format!("s3://unmapped-bucket/year=2024/month={}/part-0000.parquet", rng.below(12));
        let noise_groups = |rng: &mut SplitMix64, n: usize| -> Vec<String> {
            (0..n).map(|_| format!("unmapped-group-{}", rng.below(1000))).collect()
        };
        match kind {
            RequestKind::PrefixHit => SyntheticRequest {
                user: "unmapped-user".to_owned(),
                groups: noise_groups(rng, 8),
                path: pick(&self.prefixes, rng).map_or(miss_path, |p| {
                    let slash = if p.ends_with('/') { "" } else { "/" };
                    format!("{p}{slash}year=2024/month=06/day=15/part-00042.snappy.parquet")
                }),
            },
            RequestKind::UserHit => SyntheticRequest {
                user: pick(&self.users, rng).unwrap_or_default(),
                groups: noise_groups(rng, 8),
                path: miss_path,
            },
            RequestKind::GroupHit => {
                let mut groups = noise_groups(rng, 7);
                groups.insert(rng.below(8), pick(&self.groups, rng).unwrap_or_default());
                SyntheticRequest { user: "unmapped-user".to_owned(), groups, path: miss_path }
            }
            RequestKind::Fallback => {
                SyntheticRequest { user: "unmapped-user".to_owned(), groups: noise_groups(rng, 8), path: miss_path }
            }
        }
    }

    /// `count` requests cycling through the four kinds, reproducible from `seed`.
    pub fn mixed(&self, count: usize, seed: u64) -> Vec<RequestSpec> {
        let mut rng = SplitMix64::new(seed);
        (0..count)
            .map(|i| {
                let r = self.request(RequestKind::ALL[i % RequestKind::ALL.len()], &mut rng);
                RequestSpec { user: Some(r.user), groups: r.groups, path: Some(r.path) }
            })
            .collect()
    }
}

/// A generated corpus: a configuration and requests aimed at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corpus {
    /// The configuration document (`config_json`).
    pub config: String,
    /// The requests, one JSON object per line, in the `resolve --requests` format.
    pub requests_jsonl: String,
}

/// A configuration of `mappings` mappings and `requests` requests mixing the four kinds, both fixed
/// by `seed`. Fails only if the generated document does not read back (a bug, reported not hidden).
pub fn corpus(mappings: usize, requests: usize, seed: u64) -> Result<Corpus, Diagnostics> {
    let config = config_json(mappings, seed);
    let parsed = SecurityConfiguration::from_json(&config)?;
    let mut requests_jsonl = String::new();
    for spec in RequestGenerator::new(&parsed).mixed(requests, seed ^ REQUEST_SEED) {
        // A `RequestSpec` of strings always serializes.
        let _ = writeln!(requests_jsonl, "{}", serde_json::to_string(&spec).unwrap_or_default());
    }
    Ok(Corpus { config, requests_jsonl })
}

/// Mixed into the seed of the requests so that they do not replay the configuration's random stream.
const REQUEST_SEED: u64 = 0xA076_1D64_78BD_642F;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ResolverBuilder, S3Path};

    #[test]
    fn configs_are_valid_reproducible_and_mixed() {
        let text = config_json(500, 7);
        assert_eq!(text, config_json(500, 7));
        let config = SecurityConfiguration::from_json(&text).unwrap();
        assert_eq!(config.mappings().len(), 500);
        let prefixes = config.mappings().iter().filter(|m| m.identifier_type() == IdentifierType::Prefix).count();
        assert!((150..250).contains(&prefixes), "{prefixes} prefix mappings");
    }

    #[test]
    fn edited_configs_are_valid_reproducible_and_edited() {
        let text = config_json(300, 3);
        let edited = edited_json(&text, 30, 5).unwrap();
        assert_eq!(edited, edited_json(&text, 30, 5).unwrap());
        let (before, after) =
            (SecurityConfiguration::from_json(&text).unwrap(), SecurityConfiguration::from_json(&edited).unwrap());
        let roles =
            |c: &SecurityConfiguration| c.mappings().iter().map(|m| m.role().as_str().to_owned()).collect::<Vec<_>>();
        let deleted = before.mappings().len() - after.mappings().len();
        let renamed = roles(&after).iter().filter(|r| r.contains("edited-")).count();
        assert!(
            (4..=16).contains(&deleted) && (4..=16).contains(&renamed),
            "{deleted} deleted, {renamed} roles changed"
        );
        assert_ne!(roles(&after)[..50], roles(&before)[..50], "mappings moved");
        assert!(edited_json("{}", 1, 1).is_err());
    }

    #[test]
    fn requests_hit_what_they_aim_at() {
        let config = SecurityConfiguration::from_json(&config_json(200, 1)).unwrap();
        let resolver = ResolverBuilder::new().build(&config).unwrap();
        let mut rng = SplitMix64::new(3);
        for (kind, expected) in [
            (RequestKind::PrefixHit, Some(IdentifierType::Prefix)),
            (RequestKind::UserHit, Some(IdentifierType::User)),
            (RequestKind::GroupHit, Some(IdentifierType::Group)),
            (RequestKind::Fallback, None),
        ] {
            for _ in 0..50 {
                let r = request(&config, kind, &mut rng);
                let path = S3Path::parse(&r.path).unwrap();
                let principal = resolver.prepare(Some(&r.user), &r.groups);
                let resolution = principal.resolve(Some(&path));
                assert_eq!(resolution.mapping().map(|m| m.identifier_type), expected, "{kind:?} {r:?}");
            }
        }
    }

    #[test]
    fn corpora_are_reproducible_and_mix_the_four_kinds() {
        let corpus = super::corpus(300, 40, 9).unwrap();
        assert_eq!(corpus, super::corpus(300, 40, 9).unwrap());
        assert_ne!(corpus.requests_jsonl, super::corpus(300, 40, 10).unwrap().requests_jsonl);
        let config = SecurityConfiguration::from_json(&corpus.config).unwrap();
        let resolver = ResolverBuilder::new().build(&config).unwrap();
        let lines: Vec<RequestSpec> =
            corpus.requests_jsonl.lines().map(|l| RequestSpec::from_json(l.as_bytes()).unwrap()).collect();
        assert_eq!(lines.len(), 40);
        let mut decided = [0usize; 4];
        for spec in &lines {
            let slot = match resolver.resolve(&spec.request().unwrap()).mapping().map(|m| m.identifier_type) {
                Some(IdentifierType::Prefix) => 0,
                Some(IdentifierType::User) => 1,
                Some(IdentifierType::Group) => 2,
                None => 3,
            };
            decided[slot] += 1;
        }
        assert_eq!(decided, [10, 10, 10, 10]);
    }
}
