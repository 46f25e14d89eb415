//! The reference resolver: SEMANTICS §3 and §4 as an obvious top-down scan.
//!
//! It checks each mapping in order and each identifier of a mapping in order, with one small function
//! per identifier type, and stops at the first match. It is slow on purpose and simple on purpose: it
//! is the oracle that the compiled [`crate::Resolver`] is tested against, the baseline it is
//! benchmarked against, and the source of [`Explanation`]s.

use globset::GlobMatcher;
use rustc_hash::FxHashMap;

use crate::compile::{BuildError, PrefixMatch, ResolverOptions, glob};
use crate::config::{IdentifierType, RoleMapping, SecurityConfiguration};
use crate::resolve::{Explanation, MappingMatch, MappingTrace, Request, Resolution, Verdict};
use crate::s3path::S3Path;

/// A top-down resolver over a configuration; see the module documentation.
#[derive(Debug, Clone)]
pub struct ReferenceResolver {
    config: SecurityConfiguration,
    options: ResolverOptions,
    /// The compiled globs of each glob identifier (globs on), by mapping index and position; nothing
    /// for the others, so that a configuration without globs pays nothing per identifier.
    globs: FxHashMap<(usize, usize), Vec<GlobMatcher>>,
}

impl ReferenceResolver {
    /// Prepares the configuration for top-down resolution with `options`.
    ///
    /// Fails only when globs are enabled and an identifier is not a valid glob.
    pub fn new(config: &SecurityConfiguration, options: &ResolverOptions) -> Result<Self, BuildError> {
        let mut globs = FxHashMap::default();
        for (index, mapping) in config.mappings().iter().enumerate() {
            for (position, identifier) in mapping.identifiers().iter().enumerate() {
                let text = identifier.as_str();
                if options.globs && glob::is_glob(text) {
                    let compiled = glob::compile(text, mapping.identifier_type(), options.prefix_match)
                        .map_err(|e| BuildError::invalid_glob(config, index, position, e))?;
                    globs.insert((index, position), compiled.iter().map(|g| g.compile_matcher()).collect());
                }
            }
        }
        Ok(ReferenceResolver { config: config.clone(), options: options.clone(), globs })
    }

    /// The configuration this resolver answers for.
    pub fn config(&self) -> &SecurityConfiguration {
        &self.config
    }

    /// The options it resolves with.
    pub fn options(&self) -> &ResolverOptions {
        &self.options
    }

    /// The first mapping, in order, with an identifier that matches; otherwise the fallback.
    pub fn resolve(&self, request: &Request<'_>) -> Resolution<'_> {
        for (index, mapping) in self.config.mappings().iter().enumerate() {
            if let Some(identifier) = self.first_match(index, mapping, request) {
                return self.mapping_resolution(index, mapping, identifier);
            }
        }
        self.fallback()
    }

    /// Every mapping's verdict on the request, and the resolution.
    pub fn explain(&self, request: &Request<'_>) -> Explanation<'_> {
        let mut resolution = self.fallback();
        let mut mappings = Vec::with_capacity(self.config.mappings().len());
        for (index, mapping) in self.config.mappings().iter().enumerate() {
            let verdict = match self.first_match(index, mapping, request) {
                Some(identifier) if resolution.mapping().is_none() => {
                    resolution = self.mapping_resolution(index, mapping, identifier);
                    Verdict::Decisive { identifier }
                }
                Some(identifier) => Verdict::Shadowed { identifier },
                None => Verdict::NoMatch { reason: self.no_match_reason(index, mapping, request) },
            };
            mappings.push(MappingTrace {
                index,
                pointer: self.config.mapping_pointer(index),
                role: mapping.role(),
                identifier_type: mapping.identifier_type(),
                verdict,
            });
        }
        Explanation { resolution, mappings }
    }

    fn fallback(&self) -> Resolution<'_> {
        Resolution::Fallback { role: self.options.fallback_role.as_ref() }
    }

    fn mapping_resolution<'c>(&'c self, index: usize, mapping: &'c RoleMapping, identifier: &'c str) -> Resolution<'c> {
        Resolution::Mapping(MappingMatch {
            index,
            role: mapping.role(),
            identifier_type: mapping.identifier_type(),
            identifier,
        })
    }

    /// The mapping's first identifier, in the order written, that matches the request.
    fn first_match<'c>(&'c self, index: usize, mapping: &'c RoleMapping, request: &Request<'_>) -> Option<&'c str> {
        let kind = mapping.identifier_type();
        mapping
            .identifiers()
            .iter()
            .enumerate()
            .find(|(position, identifier)| {
                self.identifier_matches(kind, identifier.as_str(), self.globs_of(index, *position), request)
            })
            .map(|(_, identifier)| identifier.as_str())
    }

    /// The compiled globs of the identifier at `position` in mapping `index`, when it is a glob.
    fn globs_of(&self, index: usize, position: usize) -> Option<&[GlobMatcher]> {
        if self.globs.is_empty() {
            return None;
        }
        self.globs.get(&(index, position)).map(Vec::as_slice)
    }

    /// SEMANTICS §3 and §4 for one identifier.
    fn identifier_matches(
        &self,
        kind: IdentifierType,
        identifier: &str,
        globs: Option<&[GlobMatcher]>,
        request: &Request<'_>,
    ) -> bool {
        match kind {
            IdentifierType::User => request.user.is_some_and(|user| name_matches(identifier, globs, user)),
            IdentifierType::Group => request.groups.iter().any(|group| name_matches(identifier, globs, group)),
            IdentifierType::Prefix => request.path.as_ref().is_some_and(|path| match globs {
                Some(globs) => glob::with_bucket_slash_key(path, |s| globs.iter().any(|g| g.is_match(s))),
                None => S3Path::parse(identifier)
                    .is_ok_and(|prefix| prefix_miss(&prefix, path, self.options.prefix_match).is_none()),
            }),
        }
    }

    /// Why no identifier of the mapping matches, in words.
    fn no_match_reason(&self, index: usize, mapping: &RoleMapping, request: &Request<'_>) -> String {
        let has_globs = (0..mapping.identifiers().len()).any(|p| self.globs_of(index, p).is_some());
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
                let mut reasons: Vec<String> = mapping
                    .identifiers()
                    .iter()
                    .enumerate()
                    .filter(|(position, _)| self.globs_of(index, *position).is_none())
                    .filter_map(|(_, identifier)| {
                        let prefix = identifier.s3_path()?;
                        let miss = prefix_miss(&prefix, path, self.options.prefix_match)?;
                        Some(miss.describe(identifier.as_str(), &prefix, path))
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

/// Why a literal `Prefix` identifier does not match a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PrefixMiss {
    /// The buckets differ.
    Bucket,
    /// The key does not start with the identifier's key.
    Key,
    /// Segment mode: the key starts with the identifier's key, but not at a `/` boundary.
    Boundary,
}

impl PrefixMiss {
    fn describe(self, identifier: &str, prefix: &S3Path<'_>, path: &S3Path<'_>) -> String {
        let (k, key) = (prefix.key(), path.key());
        match self {
            PrefixMiss::Bucket => format!("`{identifier}` is in bucket `{}`, not `{}`", prefix.bucket(), path.bucket()),
            PrefixMiss::Key => format!("key `{key}` does not start with `{k}`"),
            PrefixMiss::Boundary => format!("key `{key}` starts with `{k}` but not at a `/` boundary (segment mode)"),
        }
    }
}

/// SEMANTICS §3 for a literal prefix: `None` when `prefix` matches `path`.
fn prefix_miss(prefix: &S3Path<'_>, path: &S3Path<'_>, mode: PrefixMatch) -> Option<PrefixMiss> {
    let (k, key) = (prefix.key(), path.key());
    if prefix.bucket() != path.bucket() {
        Some(PrefixMiss::Bucket)
    } else if !key.starts_with(k) {
        Some(PrefixMiss::Key)
    } else if mode == PrefixMatch::Segment
        && !(k.is_empty() || key == k || k.ends_with('/') || key[k.len()..].starts_with('/'))
    {
        Some(PrefixMiss::Boundary)
    } else {
        None
    }
}

/// A `User` or `Group` identifier against one name: exact, or a whole-name glob.
fn name_matches(identifier: &str, globs: Option<&[GlobMatcher]>, name: &str) -> bool {
    match globs {
        Some(globs) => globs.iter().any(|g| g.is_match(name)),
        None => identifier == name,
    }
}
