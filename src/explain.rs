//! Explanations: every mapping's verdict on a request, in order — decisive, shadowed, or why it does not
//! match — from a scan of its own over the configuration a [`Resolver`] was built from (the compiled
//! tables only know the best match). The test suite checks that its decisive mapping is the compiled
//! resolver's on generated configurations, so explanations are checked independently of the reference
//! resolver.

use crate::compile::Resolver;
use crate::config::{IdentifierType, RoleMapping};
use crate::matching::{PrefixMiss, prefix_miss};
use crate::resolve::{Explanation, MappingMatch, MappingTrace, Request, Resolution, Verdict};
use crate::s3path::S3Path;

impl Resolver {
    /// Every mapping's verdict on the request, and the resolution.
    pub fn explain(&self, request: &Request<'_>) -> Explanation<'_> {
        self.trace(request, true)
    }

    /// The resolution and the verdicts of the mappings that match the request (the decisive one and
    /// those it shadows), without the others: what a caller may see of a configuration that is not its
    /// own.
    pub fn explain_matches(&self, request: &Request<'_>) -> Explanation<'_> {
        self.trace(request, false)
    }

    fn trace(&self, request: &Request<'_>, every_mapping: bool) -> Explanation<'_> {
        let (config, mode) = (self.config(), self.options().prefix_match());
        let mut resolution = Resolution::Fallback { role: self.options().fallback_role() };
        let mut mappings = Vec::with_capacity(if every_mapping { config.mappings().len() } else { 2 });
        for (index, mapping) in config.mappings().iter().enumerate() {
            let kind = mapping.identifier_type();
            let first = mapping
                .identifiers()
                .iter()
                .enumerate()
                .find(|(position, identifier)| {
                    request.is_matched_by(kind, identifier.as_str(), self.glob(index, *position), mode)
                })
                .map(|(_, identifier)| identifier.as_str());
            let verdict = match first {
                Some(identifier) if resolution.mapping().is_none() => {
                    resolution = Resolution::Mapping(MappingMatch::of(index, mapping, identifier));
                    Verdict::Decisive { identifier }
                }
                Some(identifier) => Verdict::Shadowed { identifier },
                None if every_mapping => Verdict::NoMatch { reason: self.no_match_reason(index, mapping, request) },
                None => continue,
            };
            let pointer = config.mapping_pointer(index);
            mappings.push(MappingTrace { index, pointer, role: mapping.role(), identifier_type: kind, verdict });
        }
        Explanation { resolution, mappings }
    }

    /// Why no identifier of the mapping matches, in words.
    fn no_match_reason(&self, index: usize, mapping: &RoleMapping, request: &Request<'_>) -> String {
        let is_glob = |position: usize| self.glob(index, position).is_some();
        let has_globs = (0..mapping.identifiers().len()).any(is_glob);
        let globs_too = if has_globs { " (globs included)" } else { "" };
        match (mapping.identifier_type(), request) {
            (IdentifierType::User, Request { user: None, .. }) => "the request has no user".to_owned(),
            (IdentifierType::User, Request { user: Some(user), .. }) => {
                format!("user `{user}` is not listed{globs_too}")
            }
            (IdentifierType::Group, Request { groups: [], .. }) => "the request has no groups".to_owned(),
            (IdentifierType::Group, Request { groups, .. }) => {
                format!("none of the request's {} group(s) is listed{globs_too}", groups.len())
            }
            (IdentifierType::Prefix, Request { path: None, .. }) => "the request has no path".to_owned(),
            (IdentifierType::Prefix, Request { path: Some(path), .. }) => {
                let mode = self.options().prefix_match();
                let mut reasons: Vec<String> = mapping
                    .identifiers()
                    .iter()
                    .enumerate()
                    .filter(|(position, _)| !is_glob(*position))
                    .filter_map(|(_, identifier)| {
                        let prefix = identifier.s3_path()?;
                        let miss = prefix_miss(&prefix, path, mode)?;
                        Some(describe(miss, identifier.as_str(), &prefix, path))
                    })
                    .collect();
                if has_globs {
                    reasons.push("no prefix glob matches".to_owned());
                }
                reasons.join("; ")
            }
        }
    }
}

/// Why a literal prefix does not match a path, in words.
fn describe(miss: PrefixMiss, identifier: &str, prefix: &S3Path<'_>, path: &S3Path<'_>) -> String {
    let (k, key) = (prefix.key(), path.key());
    match miss {
        PrefixMiss::Bucket => format!("`{identifier}` is in bucket `{}`, not `{}`", prefix.bucket(), path.bucket()),
        PrefixMiss::Key => format!("key `{key}` does not start with `{k}`"),
        PrefixMiss::Boundary => format!("key `{key}` starts with `{k}` but not at a `/` boundary (segment mode)"),
    }
}
