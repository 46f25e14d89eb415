//! The options that decide how identifiers match, shared by validation, the lints and the resolvers.

use super::RoleArn;
use crate::matching::PrefixMatch;

/// How identifiers match, for validation, the lints and both resolvers: the [`PrefixMatch`] mode,
/// whether glob identifiers are on (SEMANTICS §4), and the instance-profile role a fallback reports.
///
/// ```
/// use emrfs_rolemap::{PrefixMatch, ResolverOptions};
/// let options = ResolverOptions::new().with_prefix_match(PrefixMatch::Segment).with_globs(true);
/// assert!(options.globs() && options.fallback_role().is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResolverOptions {
    prefix_match: PrefixMatch,
    globs: bool,
    fallback_role: Option<RoleArn>,
}

impl ResolverOptions {
    /// The defaults: string prefixes (as EMRFS), no globs, no fallback role.
    pub fn new() -> Self {
        ResolverOptions::default()
    }

    /// With `Prefix` identifiers matching in `mode`.
    pub fn with_prefix_match(mut self, mode: PrefixMatch) -> Self {
        self.prefix_match = mode;
        self
    }

    /// With glob identifiers on or off.
    pub fn with_globs(mut self, enabled: bool) -> Self {
        self.globs = enabled;
        self
    }

    /// With `role` reported on a fallback (for display only: a fallback uses the base credentials).
    pub fn with_fallback_role(mut self, role: Option<RoleArn>) -> Self {
        self.fallback_role = role;
        self
    }

    /// How literal `Prefix` identifiers match keys; [`PrefixMatch::String`] unless set.
    pub fn prefix_match(&self) -> PrefixMatch {
        self.prefix_match
    }

    /// Whether identifiers holding `*`, `?`, `[` or `{` are globs; off unless set.
    pub fn globs(&self) -> bool {
        self.globs
    }

    /// The instance-profile role a fallback reports, if known.
    pub fn fallback_role(&self) -> Option<&RoleArn> {
        self.fallback_role.as_ref()
    }
}
