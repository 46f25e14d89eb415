//! The reference resolver: SEMANTICS §3 and §4 as an obvious top-down scan.
//!
//! It checks each mapping in order and each identifier of a mapping in order, and stops at the first
//! match. It is slow on purpose and simple on purpose: it is the oracle that the compiled
//! [`crate::Resolver`] is tested against, and the baseline it is benchmarked against. It shares nothing
//! with the engine it checks but the configuration model and the matching rules of one identifier.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::config::{BuildError, ResolverOptions, SecurityConfiguration};
use crate::matching::CompiledGlob;
use crate::resolve::{MappingMatch, Request, Resolution};

/// A top-down resolver over a configuration; see the module documentation.
#[derive(Debug, Clone)]
pub struct ReferenceResolver {
    config: SecurityConfiguration,
    options: ResolverOptions,
    /// The compiled glob of each glob identifier (globs on), by mapping index and position; nothing
    /// for the others, so that a configuration without globs pays nothing per identifier.
    globs: FxHashMap<(usize, usize), Arc<CompiledGlob>>,
}

impl ReferenceResolver {
    /// Prepares the configuration for top-down resolution with `options`.
    ///
    /// Fails only when globs are enabled and an identifier is not a valid glob.
    pub fn new(config: &SecurityConfiguration, options: &ResolverOptions) -> Result<Self, BuildError> {
        let mut globs = FxHashMap::default();
        config.for_each_glob(options, |index, position, glob| {
            globs.insert((index, position), glob);
        })?;
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
        let mode = self.options.prefix_match();
        for (index, mapping) in self.config.mappings().iter().enumerate() {
            let kind = mapping.identifier_type();
            let first = mapping.identifiers().iter().enumerate().find(|(position, identifier)| {
                let glob = self.globs.get(&(index, *position)).map(Arc::as_ref);
                request.is_matched_by(kind, identifier.as_str(), glob, mode)
            });
            if let Some((_, identifier)) = first {
                return Resolution::Mapping(MappingMatch::of(index, mapping, identifier.as_str()));
            }
        }
        Resolution::Fallback { role: self.options.fallback_role() }
    }
}
