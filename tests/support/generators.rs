//! Proptest generators of role-mapping identifiers from tiny alphabets, so that generated identifiers
//! collide, repeat and share prefixes. Each property test passes its own [`Pools`]: its alphabets and
//! weights, which keep its distribution (and so its persisted regression seeds) its own.

use emrfs_rolemap::{IdentifierType, Request, S3Path};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::FileFailurePersistence;

/// The configuration of a property test over generated configurations: `cases` cases, and failures
/// persisted beside the test source (`proptest-regressions/`), so that they replay first next time.
pub fn proptest_config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    }
}

/// The alphabets identifiers are drawn from, and the weights of their shapes.
#[derive(Debug, Clone, Copy)]
pub struct Pools<Slash> {
    pub users: &'static [&'static str],
    pub user_globs: &'static [&'static str],
    pub groups: &'static [&'static str],
    pub group_globs: &'static [&'static str],
    pub schemes: &'static [&'static str],
    pub buckets: &'static [&'static str],
    /// Key segments, joined by `/`.
    pub segments: &'static [&'static str],
    pub prefix_globs: &'static [&'static str],
    /// Whether a key ends in `/`.
    pub trailing_slash: Slash,
    /// The weight of `s3://BUCKET/KEY` against `s3://BUCKET` and `s3://BUCKET/` (1 each).
    pub keyed_prefix_weight: u32,
    /// The weight of a literal name against a name from the glob pool (1).
    pub literal_name_weight: u32,
    /// The weight of a literal prefix against one from the glob pool and a mutated one (1 each).
    pub literal_prefix_weight: u32,
    /// The most identifiers a mapping is generated with, before an optional duplicate of one of them.
    pub max_identifiers: usize,
}

/// The identifier type of a mapping: `Prefix` twice as often as `User` or `Group`.
pub fn kind() -> impl Strategy<Value = IdentifierType> {
    prop_oneof![
        Just(IdentifierType::User),
        Just(IdentifierType::Group),
        Just(IdentifierType::Prefix),
        Just(IdentifierType::Prefix),
    ]
}

/// A string of `pool`.
pub fn one_of(pool: &'static [&'static str]) -> impl Strategy<Value = String> {
    select(pool).prop_map(str::to_owned)
}

impl<Slash: Strategy<Value = bool> + Copy + 'static> Pools<Slash> {
    /// A key of one to three segments, maybe with a trailing `/`.
    pub fn key(self) -> impl Strategy<Value = String> {
        (prop::collection::vec(select(self.segments), 1..=3), self.trailing_slash).prop_map(|(segments, slash)| {
            let mut key = segments.join("/");
            if slash {
                key.push('/');
            }
            key
        })
    }

    /// A literal `s3://BUCKET[/KEY]`: bare buckets, `BUCKET/`, and keys of shared segments.
    pub fn literal_prefix(self) -> impl Strategy<Value = String> {
        let key = prop_oneof![1 => Just(None), 1 => Just(Some(String::new())), self.keyed_prefix_weight => self.key().prop_map(Some)];
        (select(self.schemes), select(self.buckets), key).prop_map(|(scheme, bucket, key)| match key {
            None => format!("{scheme}://{bucket}"),
            Some(key) => format!("{scheme}://{bucket}/{key}"),
        })
    }

    /// A literal prefix with one character after `://` turned into `*` or `?`.
    pub fn mutated_prefix_glob(self) -> impl Strategy<Value = String> {
        (self.literal_prefix(), any::<Index>(), select(&["*", "?"][..])).prop_map(|(prefix, at, glob)| {
            let start = prefix.find("://").map_or(0, |i| i + 3);
            let at = start + at.index(prefix.len() - start);
            let mut out = prefix;
            out.replace_range(at..=at, glob);
            out
        })
    }

    /// A name from the pools of `kind` or, for `Prefix`, a literal, listed or mutated prefix.
    pub fn identifier(self, kind: IdentifierType) -> BoxedStrategy<String> {
        let name = |names, globs| prop_oneof![self.literal_name_weight => one_of(names), 1 => one_of(globs)].boxed();
        match kind {
            IdentifierType::User => name(self.users, self.user_globs),
            IdentifierType::Group => name(self.groups, self.group_globs),
            IdentifierType::Prefix => prop_oneof![
                self.literal_prefix_weight => self.literal_prefix(),
                1 => one_of(self.prefix_globs),
                1 => self.mutated_prefix_glob(),
            ]
            .boxed(),
        }
    }

    /// The identifiers of one mapping, sometimes with one of them repeated at the end.
    pub fn identifiers(self, kind: IdentifierType) -> impl Strategy<Value = Vec<String>> {
        let identifiers = prop::collection::vec(self.identifier(kind), 1..=self.max_identifiers);
        (identifiers, prop::option::weighted(0.15, any::<Index>())).prop_map(|(mut identifiers, duplicate)| {
            if let Some(i) = duplicate {
                identifiers.push(i.get(&identifiers).clone());
            }
            identifiers
        })
    }
}

/// Replaces glob syntax in `text` by text it may match: `*` by one of `stars`, `?` by one of
/// `questions`, a class by one of its characters, an alternation by one of its branches (`seed` picks).
pub fn instantiate(text: &str, seed: usize, stars: &[&str], questions: &[char]) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    let mut n = seed;
    while let Some(c) = chars.next() {
        n = n.wrapping_mul(7).wrapping_add(3);
        match c {
            '*' => out.push_str(stars[n % stars.len()]),
            '?' => out.push(questions[n % questions.len()]),
            '[' | '{' => {
                let close = if c == '[' { ']' } else { '}' };
                let body: String = chars.by_ref().take_while(|&d| d != close).collect();
                if c == '[' {
                    let options: Vec<char> = body.chars().filter(|&d| d != '-').collect();
                    out.extend(options.get(n % options.len().max(1)));
                } else {
                    let options: Vec<&str> = body.split(',').collect();
                    out.push_str(options[n % options.len()]);
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// One request as owned text, so that generated requests can be kept, sorted and deduplicated.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestText {
    pub user: Option<String>,
    pub groups: Vec<String>,
    pub path: Option<String>,
}

impl RequestText {
    /// Calls `f` with the request this text describes; the path must parse.
    pub fn with<R>(&self, f: impl FnOnce(&Request<'_>) -> R) -> R {
        let path = self.path.as_deref().map(|p| S3Path::parse(p).expect("generated paths parse"));
        f(&Request { user: self.user.as_deref(), groups: &self.groups, path })
    }

    /// The request that names only `text`, as the identifier kind `kind` reads it.
    pub fn alone(kind: IdentifierType, text: &str) -> RequestText {
        match kind {
            IdentifierType::User => RequestText { user: Some(text.to_owned()), ..RequestText::default() },
            IdentifierType::Group => RequestText { groups: vec![text.to_owned()], ..RequestText::default() },
            IdentifierType::Prefix => RequestText { path: Some(text.to_owned()), ..RequestText::default() },
        }
    }
}
