//! The compiled resolver: [`ResolverBuilder`] turns a configuration into an immutable [`Resolver`].
//!
//! Every identifier gets a *rank*, its position in first-match order (mapping by mapping, identifiers
//! in the order written), so the first match is simply the matching identifier of smallest rank.
//! Literal users and groups go into hash maps from name to their smallest rank; literal prefixes go
//! into one prefix trie (`trie.rs`); glob identifiers (when enabled) go into `globset` sets that are only
//! consulted when they could still beat the best rank found. A [`PreparedPrincipal`] holds the best
//! rank of a user and groups, computed once, so the per-request work is one trie walk.

pub(crate) mod glob;
pub(crate) mod trie;

use std::sync::Arc;

use globset::{Candidate, GlobMatcher, GlobSet, GlobSetBuilder};
use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use std::hash::BuildHasher;

use crate::config::{IdentifierType, RoleArn, SecurityConfiguration};
use crate::diagnostics::Escaped;
use crate::reference::ReferenceResolver;
use crate::resolve::{Explanation, MappingMatch, Request, Resolution};
use crate::s3path::S3Path;
use trie::{NO_RANK, PathTrie};

/// How a literal `Prefix` identifier matches a key (SEMANTICS §3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PrefixMatch {
    /// Plain string prefix, as EMRFS does: `s3://b/abc` matches `s3://b/abcdef`.
    #[default]
    String,
    /// Whole key segments only: `s3://b/abc` matches `abc` and `abc/...`, not `abcdef`.
    Segment,
}

/// Options shared by the compiled and the reference resolver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolverOptions {
    /// String-prefix (default) or segment matching of `Prefix` identifiers.
    pub prefix_match: PrefixMatch,
    /// Whether identifiers holding `*`, `?`, `[` or `{` are globs (SEMANTICS §4); off by default.
    pub globs: bool,
    /// The instance-profile role to report on a fallback, for display only.
    pub fallback_role: Option<RoleArn>,
}

/// Why a configuration could not be compiled; the message shows the text it quotes through [`Escaped`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// Globs are enabled and an identifier is not a valid glob.
    #[error("identifier `{}` at `{}` ({line}:{column}) is not a valid glob: {}", Escaped(.identifier), Escaped(.pointer), Escaped(.message))]
    InvalidGlob {
        /// The identifier as written.
        identifier: String,
        /// Its JSON pointer.
        pointer: String,
        /// Its line.
        line: u32,
        /// Its column.
        column: u32,
        /// What `globset` said.
        message: String,
    },
    /// The glob identifiers compile one by one but not together (the combined matcher is too large).
    #[error("the glob identifiers are too large to compile together: {}", Escaped(.0))]
    GlobSetTooLarge(String),
}

impl BuildError {
    pub(crate) fn invalid_glob(
        config: &SecurityConfiguration,
        index: usize,
        position: usize,
        error: globset::Error,
    ) -> Self {
        let identifier = &config.mappings()[index].identifiers()[position];
        BuildError::InvalidGlob {
            identifier: identifier.as_str().to_owned(),
            pointer: config.identifier_pointer(index, position),
            line: identifier.location().line,
            column: identifier.location().column,
            message: error.kind().to_string(),
        }
    }
}

/// Configures and builds a [`Resolver`].
///
/// ```
/// use emrfs_rolemap::{PrefixMatch, Request, ResolverBuilder, S3Path, SecurityConfiguration};
/// let config = SecurityConfiguration::from_json(r#"{"RoleMappings": [
///   {"Role": "arn:aws:iam::123456789012:role/raw", "IdentifierType": "Prefix", "Identifiers": ["s3://lake/raw"]}
/// ]}"#)?;
/// let resolver = ResolverBuilder::new().prefix_match(PrefixMatch::Segment).build(&config)?;
/// let path = S3Path::parse("s3://lake/raw-backup/x")?;
/// assert!(resolver.resolve(&Request::new().path(path)).mapping().is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ResolverBuilder {
    options: ResolverOptions,
}

impl ResolverBuilder {
    /// A builder with the default options: string prefixes, no globs, no fallback role.
    pub fn new() -> Self {
        ResolverBuilder::default()
    }

    /// A builder with the given options.
    pub fn with_options(options: ResolverOptions) -> Self {
        ResolverBuilder { options }
    }

    /// Sets how `Prefix` identifiers match keys.
    pub fn prefix_match(mut self, mode: PrefixMatch) -> Self {
        self.options.prefix_match = mode;
        self
    }

    /// Enables or disables glob identifiers.
    pub fn globs(mut self, enabled: bool) -> Self {
        self.options.globs = enabled;
        self
    }

    /// Sets the instance-profile role that fallback resolutions report.
    pub fn fallback_role(mut self, role: RoleArn) -> Self {
        self.options.fallback_role = Some(role);
        self
    }

    /// The options so far.
    pub fn options(&self) -> &ResolverOptions {
        &self.options
    }

    /// Compiles `config`. Fails only when globs are enabled and an identifier is not a valid glob.
    pub fn build(&self, config: &SecurityConfiguration) -> Result<Resolver, BuildError> {
        let reference = ReferenceResolver::new(config, &self.options)?;
        let mut ranks = Vec::with_capacity(config.identifier_count());
        let mut users = NameIndex::default();
        let mut groups = NameIndex::default();
        let mut prefixes: Vec<(String, u32)> = Vec::new();
        let mut user_globs = GlobIndexBuilder::default();
        let mut group_globs = GlobIndexBuilder::default();
        let mut prefix_globs = GlobIndexBuilder::default();
        for (index, mapping) in config.mappings().iter().enumerate() {
            for (position, identifier) in mapping.identifiers().iter().enumerate() {
                let rank = to_rank(ranks.len());
                ranks.push(IdentifierRef { mapping: to_rank(index), position: to_rank(position) });
                let text = identifier.as_str();
                let kind = mapping.identifier_type();
                if self.options.globs && glob::is_glob(text) {
                    let globs = glob::compile(text, kind, self.options.prefix_match)
                        .map_err(|e| BuildError::invalid_glob(config, index, position, e))?;
                    let target = match kind {
                        IdentifierType::User => &mut user_globs,
                        IdentifierType::Group => &mut group_globs,
                        IdentifierType::Prefix => &mut prefix_globs,
                    };
                    target.add(globs, rank);
                    continue;
                }
                match kind {
                    IdentifierType::User => users.insert_first(text, rank, |r| text_of(config, &ranks, r)),
                    IdentifierType::Group => groups.insert_first(text, rank, |r| text_of(config, &ranks, r)),
                    IdentifierType::Prefix => {
                        if let Some(path) = identifier.s3_path() {
                            let string = glob::with_bucket_slash_key(&path, str::to_owned);
                            prefixes.push((string, rank));
                        }
                    }
                }
            }
        }
        let prefixes = PathTrie::build(prefixes.iter().map(|(s, r)| (s.as_bytes(), *r)));
        Ok(Resolver {
            inner: Arc::new(Compiled {
                reference,
                ranks,
                users,
                groups,
                prefixes,
                user_globs: user_globs.build()?,
                group_globs: group_globs.build()?,
                prefix_globs: prefix_globs.build()?,
            }),
        })
    }
}

/// The text of the identifier of `rank`.
fn text_of<'c>(config: &'c SecurityConfiguration, ranks: &[IdentifierRef], rank: u32) -> &'c str {
    let IdentifierRef { mapping, position } = ranks[rank as usize];
    config.mappings()[mapping as usize].identifiers()[position as usize].as_str()
}

/// Literal user or group names, each with its smallest rank. A slot holds only the rank: the name is
/// read from the configuration the resolver keeps, so names are stored once, not copied.
#[derive(Debug, Clone, Default)]
struct NameIndex {
    table: HashTable<u32>,
}

impl NameIndex {
    /// Adds `name` with `rank` unless it is already there (ranks arrive in increasing order, so the
    /// first is the smallest). `text` gives the name of a stored rank.
    fn insert_first<'c>(&mut self, name: &str, rank: u32, text: impl Fn(u32) -> &'c str) {
        let hash = FxBuildHasher.hash_one(name);
        if self.table.find(hash, |&r| text(r) == name).is_none() {
            self.table.insert_unique(hash, rank, |&r| FxBuildHasher.hash_one(text(r)));
        }
    }

    /// The rank of `name`, or [`NO_RANK`]; `text` gives the name of a stored rank.
    #[inline]
    fn rank<'c>(&self, name: &str, text: impl Fn(u32) -> &'c str) -> u32 {
        if self.table.is_empty() {
            return NO_RANK;
        }
        let hash = FxBuildHasher.hash_one(name);
        self.table.find(hash, |&r| text(r) == name).copied().unwrap_or(NO_RANK)
    }

    /// The heap bytes of the table: a rank and a control byte per bucket.
    fn heap_bytes(&self) -> usize {
        self.table.capacity() * (size_of::<u32>() + 1)
    }
}

/// Ranks and positions fit in `u32`: the input size limits keep them far below.
fn to_rank(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(NO_RANK - 1)
}

/// Where the identifier of a rank is: mapping index and position inside the mapping.
#[derive(Debug, Clone, Copy)]
struct IdentifierRef {
    mapping: u32,
    position: u32,
}

struct GlobIndexBuilder {
    set: GlobSetBuilder,
    matchers: Vec<(GlobMatcher, u32)>,
}

impl Default for GlobIndexBuilder {
    fn default() -> Self {
        GlobIndexBuilder { set: GlobSetBuilder::new(), matchers: Vec::new() }
    }
}

impl GlobIndexBuilder {
    fn add(&mut self, globs: Vec<globset::Glob>, rank: u32) {
        for g in globs {
            self.matchers.push((g.compile_matcher(), rank));
            self.set.add(g);
        }
    }

    fn build(self) -> Result<Option<GlobIndex>, BuildError> {
        if self.matchers.is_empty() {
            return Ok(None);
        }
        let set = self.set.build().map_err(|e| BuildError::GlobSetTooLarge(e.to_string()))?;
        let min_rank = self.matchers.iter().map(|(_, r)| *r).min().unwrap_or(NO_RANK);
        Ok(Some(GlobIndex { set, matchers: self.matchers, min_rank }))
    }
}

/// Globs of one identifier type: a set to reject quickly, and the matchers in rank order.
#[derive(Debug, Clone)]
struct GlobIndex {
    set: GlobSet,
    matchers: Vec<(GlobMatcher, u32)>,
    min_rank: u32,
}

impl GlobIndex {
    /// The smallest rank below `best` among globs that match `candidate`, or `best`.
    fn best_rank(&self, candidate: &str, best: u32) -> u32 {
        if self.min_rank >= best {
            return best;
        }
        let candidate = Candidate::new(candidate);
        if !self.set.is_match_candidate(&candidate) {
            return best;
        }
        self.matchers
            .iter()
            .take_while(|(_, rank)| *rank < best)
            .find(|(m, _)| m.is_match_candidate(&candidate))
            .map_or(best, |(_, rank)| *rank)
    }
}

fn glob_rank(index: &Option<GlobIndex>, candidate: &str, best: u32) -> u32 {
    index.as_ref().map_or(best, |g| g.best_rank(candidate, best))
}

/// The compiled tables; shared behind an `Arc` by every clone of a [`Resolver`].
#[derive(Debug)]
struct Compiled {
    reference: ReferenceResolver,
    ranks: Vec<IdentifierRef>,
    users: NameIndex,
    groups: NameIndex,
    prefixes: PathTrie,
    user_globs: Option<GlobIndex>,
    group_globs: Option<GlobIndex>,
    prefix_globs: Option<GlobIndex>,
}

/// An immutable, compiled set of role mappings. `Send + Sync`; cloning is one reference-count increment.
///
/// Its answers equal those of the [`ReferenceResolver`] for every request (the test suite checks this
/// on generated configurations), in time that does not grow with the number of mappings.
#[derive(Debug, Clone)]
pub struct Resolver {
    inner: Arc<Compiled>,
}

impl Resolver {
    /// Resolves one request.
    pub fn resolve(&self, request: &Request<'_>) -> Resolution<'_> {
        let principal = self.principal_rank(request.user, request.groups);
        self.resolution(self.path_rank(request.path.as_ref(), principal))
    }

    /// Resolves the user and groups once, for any number of later requests by the same principal.
    ///
    /// The prepared principal keeps this resolver alive and the user's name (for the session name and
    /// source identity of its credentials); after a configuration reload, prepare again.
    pub fn prepare<G: AsRef<str>>(&self, user: Option<&str>, groups: &[G]) -> PreparedPrincipal {
        PreparedPrincipal { resolver: self.clone(), rank: self.principal_rank(user, groups), user: user.map(Arc::from) }
    }

    /// Every mapping's verdict on the request, and the resolution (computed by the reference scan).
    pub fn explain(&self, request: &Request<'_>) -> Explanation<'_> {
        self.inner.reference.explain(request)
    }

    /// The configuration this resolver was built from.
    pub fn config(&self) -> &SecurityConfiguration {
        self.inner.reference.config()
    }

    /// The options it was built with.
    pub fn options(&self) -> &ResolverOptions {
        self.inner.reference.options()
    }

    /// The heap memory of the compiled tables (the configuration itself excluded), in bytes.
    pub fn compiled_heap_bytes(&self) -> usize {
        let c = &self.inner;
        c.ranks.capacity() * size_of::<IdentifierRef>()
            + c.users.heap_bytes()
            + c.groups.heap_bytes()
            + c.prefixes.heap_bytes()
    }

    fn principal_rank<G: AsRef<str>>(&self, user: Option<&str>, groups: &[G]) -> u32 {
        let c = &self.inner;
        let text = |rank| text_of(c.reference.config(), &c.ranks, rank);
        let mut best = NO_RANK;
        if let Some(user) = user {
            best = best.min(c.users.rank(user, text));
            best = glob_rank(&c.user_globs, user, best);
        }
        for group in groups {
            let group = group.as_ref();
            best = best.min(c.groups.rank(group, text));
            best = glob_rank(&c.group_globs, group, best);
        }
        best
    }

    fn path_rank(&self, path: Option<&S3Path<'_>>, best: u32) -> u32 {
        let Some(path) = path else { return best };
        let c = &self.inner;
        let segment = self.options().prefix_match == PrefixMatch::Segment;
        let bucket_len = path.bucket_len();
        glob::with_bucket_slash_key(path, |s| {
            let best = c.prefixes.best_rank(s.as_bytes(), bucket_len, best, segment);
            glob_rank(&c.prefix_globs, s, best)
        })
    }

    fn resolution(&self, rank: u32) -> Resolution<'_> {
        let config = self.config();
        let Some(&IdentifierRef { mapping, position }) = self.inner.ranks.get(rank as usize) else {
            return Resolution::Fallback { role: self.options().fallback_role.as_ref() };
        };
        let m = &config.mappings()[mapping as usize];
        Resolution::Mapping(MappingMatch {
            index: mapping as usize,
            role: m.role(),
            identifier_type: m.identifier_type(),
            identifier: m.identifiers()[position as usize].as_str(),
        })
    }
}

/// A user and groups resolved once against one [`Resolver`]; resolving a path with it does not allocate.
///
/// ```
/// use emrfs_rolemap::{ResolverBuilder, S3Path, SecurityConfiguration};
/// let config = SecurityConfiguration::from_json(r#"{"RoleMappings": [
///   {"Role": "arn:aws:iam::123456789012:role/admins", "IdentifierType": "Group", "Identifiers": ["admins"]}
/// ]}"#)?;
/// let resolver = ResolverBuilder::new().build(&config)?;
/// let alice = resolver.prepare(Some("alice"), &["staff", "admins"]);
/// let path = S3Path::parse("s3://bucket/key")?;
/// assert_eq!(alice.resolve(Some(&path)).mapping_index(), Some(0));
/// assert_eq!(alice.user(), Some("alice"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct PreparedPrincipal {
    resolver: Resolver,
    rank: u32,
    user: Option<Arc<str>>,
}

impl PreparedPrincipal {
    /// Resolves a request of this principal for `path` (or for no path).
    #[inline]
    pub fn resolve(&self, path: Option<&S3Path<'_>>) -> Resolution<'_> {
        self.resolver.resolution(self.resolver.path_rank(path, self.rank))
    }

    /// The resolver this principal was prepared against.
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// The user it was prepared for.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }
}
