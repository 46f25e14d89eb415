//! The semantic diff of two configurations (`emrfs-rolemap diff`): which requests change role or decision
//! between them, grouped by *transition* (old decision to new decision), each with a witness request.
//!
//! A request is a user, any number of groups and a path, each optional. Both resolvers rank every
//! identifier in first-match order, and a request's decision is the identifier of smallest rank among
//! those that match it; so each part of a request brings a pair of ranks (old, new), and the request's
//! pair is the smallest old and the smallest new among its parts. Each part is one *candidate*: a user
//! name, a group name, or a path class (see `paths.rs`); names and paths that no identifier lists
//! bring nothing. With literal identifiers the candidates are the identifiers of both configurations
//! themselves, so every pair any request has is made from at most two candidates of different parts
//! (the one with the smallest old rank and the one with the smallest new rank; two groups count as two
//! parts): one user, at most two groups and one path always suffice for a witness.
//!
//! The transitions are therefore the pairs of single candidates, and the pairs `(a, b)` where one
//! candidate has old rank `a` and new rank above `b` and another, of a part that may go with it, has
//! new rank `b` and old rank above `a`. They are listed by old rank: for each old rank `a`, an index of
//! each part (`cross.rs`) finds the partners of the candidate with the largest new rank, in increasing
//! new rank and, unless same-role transitions are asked for, only those whose new role differs from
//! the old one; so the first `N` transitions cost `O((n + N) log n)` after both configurations are
//! compiled, however many there are in all.
//!
//! With glob identifiers, the candidates are the literal identifiers and a few strings each glob
//! matches: every transition found is real, but some may be missed, and the diff says so.

mod cross;
mod paths;
mod render;

use std::borrow::Cow;
use std::sync::OnceLock;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

use crate::compile::{Resolver, ResolverBuilder};
use crate::config::{BuildError, IdentifierType, ResolverOptions, RoleArn, RoleMapping, SecurityConfiguration};
use crate::matching::{self, bucket_slash_key_pattern};
use crate::resolve::{MappingMatch, RequestSpec, Resolution};
use crate::s3path::S3Path;
use crate::trie::NO_RANK;

use cross::{CrossIndex, Entry};
use paths::Forest;

/// The requests whose role or decision differs between two configurations, grouped by transition and
/// each group with a witness request; see the `emrfs-rolemap diff` section of the README.
///
/// Both configurations are compiled with the same options. With literal identifiers the diff is exact:
/// every transition that any request undergoes is listed ([`complete`](Self::complete)). Transitions
/// come by old mapping index (the fallback last); beyond [`with_max_changes`](Self::with_max_changes)
/// of them the list stops and says it is [`truncated`](Self::truncated). The listing is computed on
/// first use. Its JSON form (`serde`) is `{"changes": [...], "complete", "truncated"}`; `Display` writes
/// it as text, [`markdown`](Self::markdown) as a table for a pull-request comment.
///
/// Some transitions need two groups: here `g` alone and `h` alone keep their roles, but a user in both
/// moves from the role of `g` to the role of `h`.
///
/// ```
/// use emrfs_rolemap::{Diff, ResolverOptions, SecurityConfiguration};
/// let config = |first: &str, second: &str| SecurityConfiguration::from_json(&format!(r#"{{"RoleMappings": [
///   {{"Role": "arn:aws:iam::123456789012:role/{first}", "IdentifierType": "Group", "Identifiers": ["{first}"]}},
///   {{"Role": "arn:aws:iam::123456789012:role/{second}", "IdentifierType": "Group", "Identifiers": ["{second}"]}}
/// ]}}"#));
/// let (old, new) = (config("g", "h")?, config("h", "g")?);
/// let options = ResolverOptions::default();
/// let diff = Diff::between(&old, &new, &options)?;
/// assert!(diff.complete() && !diff.truncated());
/// let [change] = diff.changes() else { panic!("one change") };
/// assert_eq!(change.witness.groups, ["g", "h"]);
/// assert_eq!((change.old.mapping_index(), change.new.mapping_index()), (Some(0), Some(0)));
/// assert_eq!(change.new.role().map(|r| r.name()), Some("h"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Diff<'c> {
    old: Side<'c>,
    new: Side<'c>,
    fallback_role: Option<&'c RoleArn>,
    /// Every role of both sides, the fallback role included, is in one partition and account: summaries
    /// name roles by `PATH/NAME`.
    one_account: bool,
    /// No glob identifier on either side: the candidates are every class of request.
    exact: bool,
    /// The candidates' texts by kind (`IdentifierType` order): user names and group names, distinct,
    /// and paths as `BUCKET/KEY`, sorted and distinct.
    texts: [Vec<Cow<'c, str>>; 3],
    /// The candidates, kind after kind (`first[kind]` is where each kind starts).
    candidates: Vec<Candidate>,
    first: [usize; 3],
    /// The candidates with an old rank, by old rank then new rank.
    by_old: Vec<u32>,
    /// The candidates with a new rank and none in the old configuration, by new rank.
    fallen: Vec<u32>,
    /// The path candidates with a new rank, by new rank.
    paths_by_new: Vec<u32>,
    /// The path classes' forest, for describing regions.
    forest: Forest,
    /// For each kind, its candidates with a new rank (paths: one per new rank), to find partners.
    partners: [CrossIndex; 3],
    max_changes: usize,
    same_role: bool,
    listing: OnceLock<Listing<'c>>,
}

/// One transition: requests that the old configuration decides as `old` and the new one as `new`.
///
/// Its JSON form is `{"old", "new", "witness", "summary"}`, `old` and `new` as `resolve --format json`
/// prints a resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Change<'c> {
    /// How the old configuration decides these requests.
    pub old: Resolution<'c>,
    /// How the new configuration decides them.
    pub new: Resolution<'c>,
    /// One request that undergoes this transition (one user, at most two groups, one path), checked
    /// with both compiled resolvers before it is listed.
    pub witness: RequestSpec,
    /// The requests for a reviewer: which users, groups and paths, and what happens to them.
    pub summary: String,
}

/// One configuration of the two, compiled, with what the listing asks of it.
#[derive(Debug)]
struct Side<'c> {
    config: &'c SecurityConfiguration,
    resolver: Resolver,
    /// The interned role of each mapping.
    roles: Vec<u32>,
    /// The smallest rank of an identifier of each type ([`NO_RANK`] when there is none).
    first: [u32; 3],
}

/// A user, a group or a path class, with its rank in each configuration ([`NO_RANK`]: nothing matches).
#[derive(Debug, Clone, Copy)]
struct Candidate {
    kind: IdentifierType,
    old: u32,
    new: u32,
}

/// The transitions listed, with their changes.
#[derive(Debug)]
struct Listing<'c> {
    changes: Vec<Change<'c>>,
    truncated: bool,
    /// A witness did not confirm its transition with the compiled resolvers (a bug), and was left out.
    unconfirmed: bool,
}

/// The candidates that make a transition's witness: one, or two of different parts.
#[derive(Debug, Clone, Copy)]
enum Witness {
    One(u32),
    Two(u32, u32),
}

const KINDS: [IdentifierType; 3] = [IdentifierType::User, IdentifierType::Group, IdentifierType::Prefix];

/// No role has this id.
const NO_ROLE: u32 = u32::MAX;

impl<'c> Diff<'c> {
    /// The number of transitions listed unless [`with_max_changes`](Self::with_max_changes) says
    /// otherwise: 1,000.
    pub const DEFAULT_MAX_CHANGES: usize = 1_000;

    /// Compiles `old` and `new` with `options` and prepares their diff; the listing is computed on first
    /// use. Fails only when a configuration cannot be compiled with `options` (with globs on, an
    /// identifier that is not a valid glob, or globs too many to compile together).
    pub fn between(
        old: &'c SecurityConfiguration,
        new: &'c SecurityConfiguration,
        options: &'c ResolverOptions,
    ) -> Result<Self, BuildError> {
        let mut roles = FxHashMap::default();
        let old_side = Side::new(old, options, &mut roles)?;
        let new_side = Side::new(new, options, &mut roles)?;
        let exact = !options.globs()
            || ![old, new]
                .iter()
                .flat_map(|c| c.mappings())
                .flat_map(RoleMapping::identifiers)
                .any(|i| matching::is_glob(i.as_str()));
        let texts = candidate_texts([old, new], options);
        let mut candidates = Vec::with_capacity(texts.iter().map(Vec::len).sum());
        let mut first = [0; 3];
        for kind in KINDS {
            first[kind as usize] = candidates.len();
            for text in &texts[kind as usize] {
                candidates.push(Candidate {
                    kind,
                    old: old_side.rank_of(kind, text),
                    new: new_side.rank_of(kind, text),
                });
            }
        }
        let indices = |keep: &dyn Fn(&Candidate) -> bool| -> Vec<u32> {
            (0..candidates.len() as u32).filter(|&i| keep(&candidates[i as usize])).collect()
        };
        let mut by_old = indices(&|c| c.old != NO_RANK);
        by_old.sort_unstable_by_key(|&i| (candidates[i as usize].old, candidates[i as usize].new, i));
        let mut fallen = indices(&|c| c.old == NO_RANK && c.new != NO_RANK);
        fallen.sort_unstable_by_key(|&i| (candidates[i as usize].new, i));
        let mut paths_by_new = indices(&|c| c.kind == IdentifierType::Prefix && c.new != NO_RANK);
        paths_by_new.sort_unstable_by_key(|&i| (candidates[i as usize].new, i));
        let partners = KINDS.map(|kind| partner_index(&candidates, kind, &new_side));
        let classes = texts[IdentifierType::Prefix as usize].iter().map(|t| t.as_ref());
        let forest = Forest::new(classes, options.prefix_match());
        Ok(Diff {
            old: old_side,
            new: new_side,
            fallback_role: options.fallback_role(),
            one_account: one_account([old, new], options),
            exact,
            texts,
            candidates,
            first,
            by_old,
            fallen,
            paths_by_new,
            forest,
            partners,
            max_changes: Self::DEFAULT_MAX_CHANGES,
            same_role: false,
            listing: OnceLock::new(),
        })
    }

    /// Lists at most `max` transitions (the first by old mapping index), then says the list is
    /// [`truncated`](Self::truncated).
    pub fn with_max_changes(mut self, max: usize) -> Self {
        self.max_changes = max;
        self.listing = OnceLock::new();
        self
    }

    /// With `include`, also lists the requests that keep their role and decision through another
    /// mapping or identifier (whose resolution, as `resolve` prints it, still differs).
    pub fn with_same_role(mut self, include: bool) -> Self {
        self.same_role = include;
        self.listing = OnceLock::new();
        self
    }

    /// The transitions, by old mapping index (the fallback last), then by new mapping index.
    pub fn changes(&self) -> &[Change<'c>] {
        &self.listing().changes
    }

    /// Whether more transitions exist than are listed.
    pub fn truncated(&self) -> bool {
        self.listing().truncated
    }

    /// Whether every transition that any request undergoes was found: true unless glob identifiers are
    /// on and present (then the listed ones are real, but others may exist). A listing cut short by
    /// [`with_max_changes`](Self::with_max_changes) is still complete; [`truncated`](Self::truncated)
    /// says that it was cut.
    pub fn complete(&self) -> bool {
        self.exact && !self.listing().unconfirmed
    }

    fn listing(&self) -> &Listing<'c> {
        self.listing.get_or_init(|| self.list())
    }

    fn candidate(&self, i: u32) -> Candidate {
        self.candidates[i as usize]
    }

    fn text(&self, i: u32) -> &str {
        let c = self.candidate(i);
        &self.texts[c.kind as usize][i as usize - self.first[c.kind as usize]]
    }

    /// The transitions in order, at most one more than the maximum, then their changes.
    fn list(&self) -> Listing<'c> {
        let limit = self.max_changes.saturating_add(1);
        let mut found: Vec<(u32, u32, Witness)> = Vec::new();
        let mut at = 0;
        while at < self.by_old.len() && found.len() < limit {
            let a = self.candidate(self.by_old[at]).old;
            let end = at + self.by_old[at..].partition_point(|&i| self.candidate(i).old == a);
            let same = &self.by_old[at..end];
            at = end;
            let mut next: Vec<(u32, Witness)> =
                same.iter().map(|&i| (self.candidate(i).new, Witness::One(i))).collect();
            // The candidate with the largest new rank (they are sorted by it) leaves its partners the
            // most room: a partner must beat it in the new configuration and lose to it in the old one.
            let Some(&widest) = same.last() else { continue };
            let lead = self.candidate(widest);
            let except = (!self.same_role).then(|| self.old.role(a));
            for partner in partner_kinds(lead.kind) {
                let wanted = limit - found.len();
                for entry in self.partners[*partner as usize].find(a, lead.new, except, wanted) {
                    next.push((entry.new, Witness::Two(widest, entry.candidate)));
                }
            }
            next.sort_by_key(|(b, _)| *b);
            next.dedup_by_key(|(b, _)| *b);
            for (b, witness) in next {
                if found.len() == limit {
                    break;
                }
                if self.listed(a, b) {
                    found.push((a, b, witness));
                }
            }
        }
        for &i in &self.fallen {
            let b = self.candidate(i).new;
            if found.len() == limit {
                break;
            }
            if found.last().is_none_or(|&(a, last, _)| (a, last) != (NO_RANK, b)) {
                found.push((NO_RANK, b, Witness::One(i)));
            }
        }
        let truncated = found.len() > self.max_changes;
        found.truncate(self.max_changes);
        let mut changes = Vec::with_capacity(found.len());
        let mut unconfirmed = false;
        for (a, b, witness) in found {
            let change = Change {
                old: self.old.resolution(a, self.fallback_role),
                new: self.new.resolution(b, self.fallback_role),
                witness: self.witness(witness),
                summary: self.summary(a, b),
            };
            if self.confirms(&change) {
                changes.push(change);
            } else {
                unconfirmed = true;
            }
        }
        Listing { changes, truncated, unconfirmed }
    }

    /// Whether the transition from rank `a` to rank `b` is listed: the decision or the role differs
    /// or, with same-role transitions, anything of the resolution.
    fn listed(&self, a: u32, b: u32) -> bool {
        match (a == NO_RANK, b == NO_RANK) {
            (true, true) => false,
            (true, false) | (false, true) => true,
            (false, false) => {
                self.old.role(a) != self.new.role(b)
                    || (self.same_role
                        && self.old.resolution(a, self.fallback_role) != self.new.resolution(b, self.fallback_role))
            }
        }
    }

    /// The request made of the witness's candidates.
    fn witness(&self, witness: Witness) -> RequestSpec {
        let mut spec = RequestSpec::default();
        let parts = match witness {
            Witness::One(i) => [Some(i), None],
            Witness::Two(i, j) => [Some(i), Some(j)],
        };
        for i in parts.into_iter().flatten() {
            let text = self.text(i);
            match self.candidate(i).kind {
                IdentifierType::User => spec.user = Some(text.to_owned()),
                IdentifierType::Group => spec.groups.push(text.to_owned()),
                IdentifierType::Prefix => spec.path = Some(format!("s3://{text}")),
            }
        }
        spec
    }

    /// Whether both compiled resolvers decide the change's witness as the change says.
    fn confirms(&self, change: &Change<'_>) -> bool {
        change.witness.request().is_ok_and(|request| {
            self.old.resolver.resolve(&request) == change.old && self.new.resolver.resolve(&request) == change.new
        })
    }
}

impl<'c> Side<'c> {
    fn new(
        config: &'c SecurityConfiguration,
        options: &ResolverOptions,
        roles: &mut FxHashMap<&'c str, u32>,
    ) -> Result<Self, BuildError> {
        let resolver = ResolverBuilder::with_options(options.clone()).build(config)?;
        let mut first = [NO_RANK; 3];
        let mut mapping_roles = Vec::with_capacity(config.mappings().len());
        let mut rank = 0u32;
        for mapping in config.mappings() {
            let next = u32::try_from(roles.len()).unwrap_or(NO_ROLE - 1);
            mapping_roles.push(*roles.entry(mapping.role().as_str()).or_insert(next));
            let slot = &mut first[mapping.identifier_type() as usize];
            *slot = (*slot).min(rank);
            rank = rank.saturating_add(u32::try_from(mapping.identifiers().len()).unwrap_or(NO_RANK));
        }
        Ok(Side { config, resolver, roles: mapping_roles, first })
    }

    /// The rank of the first identifier that matches the candidate `text` of `kind` (alone; a path as
    /// `BUCKET/KEY`).
    fn rank_of(&self, kind: IdentifierType, text: &str) -> u32 {
        match kind {
            IdentifierType::User => self.resolver.principal_rank(Some(text), &[] as &[&str]),
            IdentifierType::Group => self.resolver.principal_rank(None, &[text]),
            IdentifierType::Prefix => match text.find('/') {
                Some(bucket_len) => self.resolver.bucket_slash_key_rank(text, bucket_len, NO_RANK),
                None => NO_RANK,
            },
        }
    }

    /// The identifier of `rank`: its mapping's index, the mapping, and its text.
    fn identifier(&self, rank: u32) -> Option<(usize, &'c RoleMapping, &'c str)> {
        let (index, position) = self.resolver.identifier_at(rank)?;
        let mapping = self.config.mappings().get(index)?;
        Some((index, mapping, mapping.identifiers().get(position)?.as_str()))
    }

    /// The identifier type of `rank`, `None` for the fallback.
    fn kind(&self, rank: u32) -> Option<IdentifierType> {
        self.identifier(rank).map(|(_, mapping, _)| mapping.identifier_type())
    }

    /// The interned role of `rank`'s mapping ([`NO_ROLE`] for the fallback).
    fn role(&self, rank: u32) -> u32 {
        self.identifier(rank).map_or(NO_ROLE, |(index, _, _)| self.roles[index])
    }

    fn resolution(&self, rank: u32, fallback_role: Option<&'c RoleArn>) -> Resolution<'c> {
        match self.identifier(rank) {
            Some((index, mapping, text)) => Resolution::Mapping(MappingMatch::of(index, mapping, text)),
            None => Resolution::Fallback { role: fallback_role },
        }
    }
}

/// The index of the candidates of `kind` with a new rank, to find partners among them. Path classes
/// may share a new rank: the one with the largest old rank partners best, and stands for them.
fn partner_index(candidates: &[Candidate], kind: IdentifierType, new: &Side<'_>) -> CrossIndex {
    let mut entries: Vec<Entry> = (0..candidates.len() as u32)
        .map(|i| (i, candidates[i as usize]))
        .filter(|(_, c)| c.kind == kind && c.new != NO_RANK)
        .map(|(i, c)| Entry { new: c.new, old: c.old, role: new.role(c.new), candidate: i })
        .collect();
    entries.sort_unstable_by_key(|e| (e.new, std::cmp::Reverse(e.old), e.candidate));
    entries.dedup_by_key(|e| e.new);
    CrossIndex::new(entries)
}

/// Whether every role of `configs`, and the fallback role, is in one partition and account.
fn one_account(configs: [&SecurityConfiguration; 2], options: &ResolverOptions) -> bool {
    let mut roles =
        configs.into_iter().flat_map(|c| c.mappings()).map(RoleMapping::role).chain(options.fallback_role());
    let first = roles.next().map(|r| (r.partition(), r.account()));
    roles.all(|r| Some((r.partition(), r.account())) == first)
}

/// The kinds whose candidates may go with a candidate of `kind` in one request: one user, one path,
/// and any number of groups.
fn partner_kinds(kind: IdentifierType) -> &'static [IdentifierType] {
    match kind {
        IdentifierType::User => &[IdentifierType::Group, IdentifierType::Prefix],
        IdentifierType::Group => &KINDS,
        IdentifierType::Prefix => &[IdentifierType::User, IdentifierType::Group],
    }
}

/// The candidates of both configurations, by kind: the literal identifiers, and for glob identifiers
/// a few strings they match; names distinct, in the order first seen, and paths as `BUCKET/KEY` (`B/`
/// for a bare bucket), sorted and distinct.
fn candidate_texts<'c>(configs: [&'c SecurityConfiguration; 2], options: &ResolverOptions) -> [Vec<Cow<'c, str>>; 3] {
    let mut texts: [Vec<Cow<'c, str>>; 3] = Default::default();
    let mut seen: [FxHashSet<Cow<'c, str>>; 2] = Default::default();
    let mut add = |kind: IdentifierType, text: Cow<'c, str>| match kind {
        IdentifierType::Prefix => texts[kind as usize].push(text),
        _ => {
            if seen[kind as usize].insert(text.clone()) {
                texts[kind as usize].push(text);
            }
        }
    };
    for mapping in configs.into_iter().flat_map(|c| c.mappings()) {
        let kind = mapping.identifier_type();
        for identifier in mapping.identifiers() {
            let text = identifier.as_str();
            match (kind, options.globs() && matching::is_glob(text)) {
                (IdentifierType::Prefix, false) => {
                    if let Some(path) = identifier.s3_path() {
                        let bucket_slash_key = match path.bucket_slash_key() {
                            Some(borrowed) => Cow::Borrowed(borrowed),
                            None => Cow::Owned(format!("{}/", path.bucket())),
                        };
                        add(kind, bucket_slash_key);
                    }
                }
                (IdentifierType::Prefix, true) => {
                    for instance in instances(&bucket_slash_key_pattern(text)) {
                        if S3Path::parse(&format!("s3://{instance}")).is_ok_and(|p| p.bucket_slash_key().is_some()) {
                            add(kind, Cow::Owned(instance));
                        }
                    }
                }
                (_, false) => add(kind, Cow::Borrowed(text)),
                (_, true) => instances(text).into_iter().for_each(|instance| add(kind, Cow::Owned(instance))),
            }
        }
    }
    let paths = &mut texts[IdentifierType::Prefix as usize];
    paths.sort_unstable();
    paths.dedup();
    texts
}

/// Two strings that the glob `pattern` (globset syntax) matches, or nearly: `*` as nothing and as `x`,
/// `?` as `x`, a class as its first character (`x` when negated), an alternation as its first and as its
/// last branch, `\c` as `c`. Whatever they are, the resolvers decide them as any request.
fn instances(pattern: &str) -> [String; 2] {
    [false, true].map(|last| {
        let mut out = String::new();
        let mut rest = pattern;
        while let Some((before, after)) = rest.split_once('{') {
            plain_instance(before, last, &mut out);
            let (body, tail) = after.split_once('}').unwrap_or((after, ""));
            let mut branches = body.split(',');
            let branch = if last { branches.next_back() } else { branches.next() };
            plain_instance(branch.unwrap_or_default(), last, &mut out);
            rest = tail;
        }
        plain_instance(rest, last, &mut out);
        out
    })
}

/// [`instances`] for a pattern part without alternations.
fn plain_instance(pattern: &str, last: bool, out: &mut String) {
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '*' if last => out.push('x'),
            '*' => {}
            '?' => out.push('x'),
            '[' => {
                let body: String = chars.by_ref().take_while(|&d| d != ']').collect();
                let negated = body.starts_with(['!', '^']);
                out.push(if negated { 'x' } else { body.chars().next().unwrap_or('x') });
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_instances_take_the_first_and_the_last_choices() {
        assert_eq!(instances("team-*"), ["team-".to_owned(), "team-x".to_owned()]);
        assert_eq!(instances("u[0-2]?"), ["u0x".to_owned(), "u0x".to_owned()]);
        assert_eq!(instances("b/{a,x*}/[!z]"), ["b/a/x".to_owned(), "b/xx/x".to_owned()]);
        assert_eq!(instances(r"a\*{b"), ["a*b".to_owned(), "a*b".to_owned()]);
    }
}
