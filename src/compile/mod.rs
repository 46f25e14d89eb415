//! The compiled resolver: [`ResolverBuilder`] turns a configuration into an immutable [`Resolver`].
//!
//! Every identifier gets a *rank*, its position in first-match order (mapping by mapping, identifiers
//! in the order written), so the first match is simply the matching identifier of smallest rank.
//! Literal users and groups go into hash maps from name to their smallest rank; literal prefixes go
//! into one prefix trie (`trie.rs`); glob identifiers (when enabled) go into `globset` sets that are only
//! consulted when they could still beat the best rank found. A [`PreparedPrincipal`] holds the best
//! rank of a user and groups, computed once, so the per-request work is one trie walk.

use std::hash::BuildHasher;
use std::sync::Arc;

use globset::{Candidate, GlobSet, GlobSetBuilder};
use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use crate::config::{BuildError, IdentifierType, ResolverOptions, RoleArn, SecurityConfiguration};
use crate::matching::{CompiledGlob, PrefixMatch, with_bucket_slash_key};
use crate::resolve::{MappingMatch, Request, Resolution};
use crate::s3path::S3Path;
use crate::trie::{NO_RANK, PathTrie};

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
        self.options = self.options.with_prefix_match(mode);
        self
    }

    /// Enables or disables glob identifiers.
    pub fn globs(mut self, enabled: bool) -> Self {
        self.options = self.options.with_globs(enabled);
        self
    }

    /// Sets the instance-profile role that fallback resolutions report.
    pub fn fallback_role(mut self, role: RoleArn) -> Self {
        self.options = self.options.with_fallback_role(Some(role));
        self
    }

    /// The options so far.
    pub fn options(&self) -> &ResolverOptions {
        &self.options
    }

    /// Compiles `config`. With globs on, the globs compiled when the configuration was validated with
    /// these options serve; fails only when globs are on and an identifier is not a valid glob (it was
    /// validated with globs off), or the globs are too many to compile together.
    pub fn build(&self, config: &SecurityConfiguration) -> Result<Resolver, BuildError> {
        let mut ranks = Vec::with_capacity(config.identifier_count());
        let mut first_ranks = Vec::with_capacity(config.mappings().len());
        let mut users = NameIndex::default();
        let mut groups = NameIndex::default();
        let mut prefixes: Vec<(String, u32)> = Vec::new();
        for (index, mapping) in config.mappings().iter().enumerate() {
            first_ranks.push(ranks.len());
            for position in 0..mapping.identifiers().len() {
                ranks.push(IdentifierRef { mapping: to_rank(index), position: to_rank(position) });
            }
        }
        // The glob identifiers, in rank order.
        let mut globs = Vec::new();
        config.for_each_glob(&self.options, |index, position, glob| {
            globs.push((to_rank(first_ranks[index] + position), glob));
        })?;
        let mut glob_sets = [GlobIndexBuilder::default(), GlobIndexBuilder::default(), GlobIndexBuilder::default()];
        let mut next_glob = globs.iter().peekable();
        for (rank, &IdentifierRef { mapping, position }) in ranks.iter().enumerate() {
            let mapping = &config.mappings()[mapping as usize];
            let identifier = &mapping.identifiers()[position as usize];
            let (rank, text) = (to_rank(rank), identifier.as_str());
            if let Some((_, glob)) = next_glob.next_if(|(glob_rank, _)| *glob_rank == rank) {
                glob_sets[mapping.identifier_type() as usize].add(glob, rank);
                continue;
            }
            match mapping.identifier_type() {
                IdentifierType::User => users.insert_first(text, rank, |r| text_of(config, &ranks, r)),
                IdentifierType::Group => groups.insert_first(text, rank, |r| text_of(config, &ranks, r)),
                IdentifierType::Prefix => {
                    if let Some(path) = identifier.s3_path() {
                        prefixes.push((with_bucket_slash_key(&path, str::to_owned), rank));
                    }
                }
            }
        }
        let prefixes = PathTrie::build(prefixes.iter().map(|(s, r)| (s.as_bytes(), *r)));
        let [user_globs, group_globs, prefix_globs] = glob_sets.map(GlobIndexBuilder::build);
        Ok(Resolver {
            inner: Arc::new(Compiled {
                config: config.clone(),
                options: self.options.clone(),
                ranks,
                users,
                groups,
                prefixes,
                user_globs: user_globs?,
                group_globs: group_globs?,
                prefix_globs: prefix_globs?,
                globs,
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
    matchers: Vec<(Arc<CompiledGlob>, u32)>,
}

impl Default for GlobIndexBuilder {
    fn default() -> Self {
        GlobIndexBuilder { set: GlobSetBuilder::new(), matchers: Vec::new() }
    }
}

impl GlobIndexBuilder {
    fn add(&mut self, glob: &Arc<CompiledGlob>, rank: u32) {
        for g in glob.globs() {
            self.set.add(g.clone());
        }
        self.matchers.push((glob.clone(), rank));
    }

    fn build(self) -> Result<Option<GlobIndex>, BuildError> {
        if self.matchers.is_empty() {
            return Ok(None);
        }
        let set = self.set.build().map_err(|e| BuildError::glob_set_too_large(e.to_string()))?;
        let min_rank = self.matchers.iter().map(|(_, r)| *r).min().unwrap_or(NO_RANK);
        Ok(Some(GlobIndex { set, matchers: self.matchers, min_rank }))
    }
}

/// Globs of one identifier type: a set to reject quickly, and the compiled globs in rank order.
#[derive(Debug, Clone)]
struct GlobIndex {
    set: GlobSet,
    matchers: Vec<(Arc<CompiledGlob>, u32)>,
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
            .find(|(glob, _)| glob.is_match(&candidate))
            .map_or(best, |(_, rank)| *rank)
    }
}

fn glob_rank(index: &Option<GlobIndex>, candidate: &str, best: u32) -> u32 {
    index.as_ref().map_or(best, |g| g.best_rank(candidate, best))
}

/// The compiled tables; shared behind an `Arc` by every clone of a [`Resolver`].
#[derive(Debug)]
struct Compiled {
    config: SecurityConfiguration,
    options: ResolverOptions,
    ranks: Vec<IdentifierRef>,
    users: NameIndex,
    groups: NameIndex,
    prefixes: PathTrie,
    user_globs: Option<GlobIndex>,
    group_globs: Option<GlobIndex>,
    prefix_globs: Option<GlobIndex>,
    /// The glob identifiers' compiled globs, in rank order (for explanations).
    globs: Vec<(u32, Arc<CompiledGlob>)>,
}

/// An immutable, compiled set of role mappings. `Send + Sync`; cloning is one reference-count increment.
///
/// Its answers equal those of the [`ReferenceResolver`](crate::ReferenceResolver) for every request (the
/// test suite checks this on generated configurations), in time that does not grow with the number of
/// mappings.
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

    /// The configuration this resolver was built from.
    pub fn config(&self) -> &SecurityConfiguration {
        &self.inner.config
    }

    /// The options it was built with.
    pub fn options(&self) -> &ResolverOptions {
        &self.inner.options
    }

    /// The compiled glob of identifier `position` of mapping `index`, when it is one (for explanations).
    pub(crate) fn glob(&self, index: usize, position: usize) -> Option<&CompiledGlob> {
        let c = &self.inner;
        if c.globs.is_empty() {
            return None;
        }
        let rank = to_rank(c.ranks.partition_point(|r| (r.mapping as usize) < index) + position);
        let found = c.globs.binary_search_by_key(&rank, |(r, _)| *r).ok()?;
        Some(&c.globs[found].1)
    }

    /// The heap memory of the compiled tables (the configuration itself excluded), in bytes.
    pub fn compiled_heap_bytes(&self) -> usize {
        let c = &self.inner;
        c.ranks.capacity() * size_of::<IdentifierRef>()
            + c.users.heap_bytes()
            + c.groups.heap_bytes()
            + c.prefixes.heap_bytes()
    }

    /// The smallest rank among the identifiers that match `user` or one of `groups` (literal or glob), or
    /// [`NO_RANK`].
    pub(crate) fn principal_rank<G: AsRef<str>>(&self, user: Option<&str>, groups: &[G]) -> u32 {
        let c = &self.inner;
        let text = |rank| text_of(&c.config, &c.ranks, rank);
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
        with_bucket_slash_key(path, |s| self.bucket_slash_key_rank(s, path.bucket_len(), best))
    }

    /// The smallest rank below `best` among the `Prefix` identifiers that match a path whose
    /// `BUCKET/KEY` is `text`, its `/` at `bucket_len`, or `best`.
    #[inline]
    pub(crate) fn bucket_slash_key_rank(&self, text: &str, bucket_len: usize, best: u32) -> u32 {
        let c = &self.inner;
        let segment = self.options().prefix_match() == PrefixMatch::Segment;
        let best = c.prefixes.best_rank(text.as_bytes(), bucket_len, best, segment);
        glob_rank(&c.prefix_globs, text, best)
    }

    /// The mapping index and position of the identifier of `rank` (first-match order), if there is one.
    pub(crate) fn identifier_at(&self, rank: u32) -> Option<(usize, usize)> {
        self.inner.ranks.get(rank as usize).map(|r| (r.mapping as usize, r.position as usize))
    }

    fn resolution(&self, rank: u32) -> Resolution<'_> {
        let config = self.config();
        let Some(&IdentifierRef { mapping, position }) = self.inner.ranks.get(rank as usize) else {
            return Resolution::Fallback { role: self.options().fallback_role() };
        };
        let m = &config.mappings()[mapping as usize];
        Resolution::Mapping(MappingMatch::of(mapping as usize, m, m.identifiers()[position as usize].as_str()))
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

    /// This principal with `path` resolved into it: its answer for no path is its answer for `path`
    /// (for a credentials provider bound to one path, which resolves on each call without the path).
    #[cfg(feature = "sts")]
    pub(crate) fn with_path(&self, path: Option<&S3Path<'_>>) -> PreparedPrincipal {
        let rank = self.resolver.path_rank(path, self.rank);
        PreparedPrincipal { resolver: self.resolver.clone(), rank, user: self.user.clone() }
    }
}
