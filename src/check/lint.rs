//! Lints: the warnings and notes that [`crate::check`] reports about a configuration without errors.
//!
//! The shadowing analysis is exact, in the active prefix mode and glob setting, and claims nothing it
//! cannot prove. An identifier *covers* another when it matches every request the other matches. Each
//! identifier gets the smallest rank (position in first-match order) of an identifier proven to cover
//! it, itself included; an identifier covered from an earlier mapping is *shadowed* (it never decides),
//! one covered from earlier in its own mapping is a duplicate or *redundant* (its mapping decides the
//! same requests without it).
//!
//! For a literal identifier this is decided exactly, from a single request: its *witness*, the user
//! alone, the group alone, or the path `s3://B/K` alone. Nothing but identifiers of its own type can
//! match a witness (a request may have no user, groups or path), and an identifier that matches the
//! witness covers the literal, with one exception below: a literal user or group is covered exactly by
//! the identifiers that match its name; a literal prefix by the literal prefixes that match `B/K` (in
//! either mode, matching the key `K` means matching every key the prefix matches) and by the prefix
//! globs that match `B/K` through `glob*` or `glob/*`. The exception, in segment mode with globs on: a
//! glob that does not end in `/` or `*` and matches a `B/K` that ends in `/` only through the glob
//! itself may miss longer keys, so it is not counted (and if several such globs together cover the
//! literal, that goes unreported).
//!
//! A glob identifier is claimed covered only when one of these proves it: an earlier identical glob
//! (same pattern over `BUCKET/KEY` for prefixes); a literal prefix that every string the glob can match
//! starts with (the glob's text before its first special character starts with `B/K`, and in segment
//! mode continues with `/` unless `K` is empty or ends in `/`); or a glob `LITERAL*` whose `LITERAL`
//! starts the glob's text. Anything else about globs (one glob's language inside another's, unions of
//! several identifiers) is not attempted.

use std::borrow::Cow;

use globset::{Candidate, GlobSet, GlobSetBuilder};
use rustc_hash::FxHashMap;

use crate::config::{IdentifierType, ResolverOptions, SecurityConfiguration};
use crate::diagnostics::{Code, Diagnostic, Escaped, Location, Severity, write_escaped};
use crate::matching::{self as glob, PrefixMatch};
use crate::trie::{NO_RANK, PrefixTrie};

/// How many other mappings or prefixes a message lists before it says how many more there are.
const LISTED: usize = 5;

/// Every warning and note about `config` under `options`, mapping by mapping, in source order.
pub(crate) fn lint(config: &SecurityConfiguration, options: &ResolverOptions) -> Vec<Diagnostic> {
    let entries = entries(config, options);
    let covers = covers(config, &entries, options);
    let duplicates = duplicates(&entries);
    let mut lints = Lints { config, items: Vec::new() };
    let mut first_rank = 0;
    // The prefix identifiers of earlier mappings that are not covered: the ones that decide paths.
    let mut deciding_prefixes: Vec<usize> = Vec::new();
    for (index, mapping) in config.mappings().iter().enumerate() {
        let ranks = first_rank..first_rank + mapping.identifiers().len();
        first_rank = ranks.end;
        let verdicts: Vec<Verdict> =
            ranks.clone().map(|rank| verdict(duplicates[rank], covers.get(rank).copied(), rank, ranks.start)).collect();
        let unreachable = !covers.is_empty() && ranks.clone().all(|rank| covers[rank] < ranks.start);
        if unreachable {
            lints.unreachable(index, ranks.clone().map(|rank| entries[covers[rank]].mapping));
        } else if mapping.identifier_type() != IdentifierType::Prefix
            && !deciding_prefixes.is_empty()
            && ranks.clone().zip(&verdicts).any(|(rank, v)| *v == Verdict::Open && !entries[rank].glob)
        {
            lints.partially_shadowed(index, &deciding_prefixes, &entries);
        }
        for (rank, verdict) in ranks.clone().zip(verdicts) {
            let entry = &entries[rank];
            match verdict {
                Verdict::Duplicate(of) => lints.duplicate(entry, &entries[of]),
                Verdict::Shadowed(by) if !unreachable => lints.shadowed(entry, &entries[by]),
                Verdict::Redundant(by) => lints.redundant(entry, &entries[by]),
                Verdict::Open if entry.kind == IdentifierType::Prefix => deciding_prefixes.push(rank),
                Verdict::Shadowed(_) | Verdict::Open => {}
            }
            lints.of_identifier(entry, options);
        }
    }
    lints.items
}

/// One identifier, in first-match order (its index in the list is its rank).
struct Entry<'c> {
    mapping: usize,
    position: usize,
    kind: IdentifierType,
    text: &'c str,
    location: Location,
    /// Globs are on and the identifier holds glob characters.
    glob: bool,
    /// What the identifier is matched against: the name itself for users and groups, `BUCKET/KEY` for
    /// prefixes (`bucket/` for a bare bucket; for a glob, the pattern over `BUCKET/KEY`). Two
    /// identifiers of one type with the same text here match the same requests.
    text_matched: Cow<'c, str>,
}

fn entries<'c>(config: &'c SecurityConfiguration, options: &ResolverOptions) -> Vec<Entry<'c>> {
    let mut entries = Vec::with_capacity(config.identifier_count());
    for (mapping, m) in config.mappings().iter().enumerate() {
        for (position, identifier) in m.identifiers().iter().enumerate() {
            let text = identifier.as_str();
            let kind = m.identifier_type();
            let glob = options.globs() && glob::is_glob(text);
            let text_matched = match (kind, glob, identifier.s3_path()) {
                (IdentifierType::Prefix, true, _) => Cow::Owned(glob::bucket_slash_key_pattern(text)),
                (IdentifierType::Prefix, false, Some(path)) => {
                    Cow::Owned(glob::with_bucket_slash_key(&path, str::to_owned))
                }
                _ => Cow::Borrowed(text),
            };
            entries.push(Entry { mapping, position, kind, text, location: identifier.location(), glob, text_matched });
        }
    }
    entries
}

/// What the analysis concludes about one identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Not proven covered by anything before it: a literal decides its witness.
    Open,
    /// The identifier of this rank, in an earlier mapping, covers it.
    Shadowed(usize),
    /// The identifier of this rank, earlier in the same mapping, is the same identifier.
    Duplicate(usize),
    /// The identifier of this rank, earlier in the same mapping, covers it.
    Redundant(usize),
}

/// The verdict on the identifier of `rank`, given the earlier identical identifier of its mapping, if
/// any, and its cover (none when the analysis did not run).
fn verdict(duplicate: Option<usize>, cover: Option<usize>, rank: usize, mapping_start: usize) -> Verdict {
    let cover = cover.unwrap_or(rank);
    match duplicate {
        Some(of) => Verdict::Duplicate(of),
        None if cover < mapping_start => Verdict::Shadowed(cover),
        None if cover < rank => Verdict::Redundant(cover),
        None => Verdict::Open,
    }
}

/// For each identifier, the rank of the first identical identifier of its mapping when that is an
/// earlier one.
fn duplicates(entries: &[Entry<'_>]) -> Vec<Option<usize>> {
    let mut first: FxHashMap<(usize, &str), usize> = FxHashMap::default();
    entries
        .iter()
        .enumerate()
        .map(|(rank, e)| {
            let first = *first.entry((e.mapping, &e.text_matched)).or_insert(rank);
            (first < rank).then_some(first)
        })
        .collect()
}

/// For each identifier, the smallest rank of an identifier proven to cover it (at most its own rank);
/// empty when there are too many identifiers to rank.
fn covers(config: &SecurityConfiguration, entries: &[Entry<'_>], options: &ResolverOptions) -> Vec<usize> {
    if entries.len() >= NO_RANK as usize {
        return Vec::new();
    }
    let segment = options.prefix_match() == PrefixMatch::Segment;
    let mut first: FxHashMap<(IdentifierType, &str), usize> = FxHashMap::default();
    for (rank, e) in entries.iter().enumerate() {
        first.entry((e.kind, &e.text_matched)).or_insert(rank);
    }
    let literal_prefixes = PrefixTrie::build(
        entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind == IdentifierType::Prefix && !e.glob)
            .map(|(rank, e)| (e.text_matched.as_bytes(), rank as u32)),
    );
    // Globs `LITERAL*`, stored as the type's tag byte followed by `LITERAL`. (A glob whose text before
    // the final `*` has glob syntax is stored too, but never found: no literal part starts with it.)
    let stars: Vec<(Vec<u8>, u32)> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.glob)
        .filter_map(|(rank, e)| Some((tagged(e.kind, e.text_matched.strip_suffix('*')?), rank as u32)))
        .collect();
    let stars = PrefixTrie::build(stars.iter().map(|(s, r)| (s.as_slice(), *r)));
    let globs = GlobIndex::build(config, entries, options);
    entries
        .iter()
        .enumerate()
        .map(|(rank, e)| {
            let mut cover = first.get(&(e.kind, &*e.text_matched)).copied().unwrap_or(rank);
            let matched = e.text_matched.as_bytes();
            if e.glob {
                let literal = literal_part(&e.text_matched);
                let star = stars.best_rank(&tagged(e.kind, literal), NO_RANK, false);
                cover = cover.min(star as usize);
                if e.kind == IdentifierType::Prefix {
                    // Every string the glob matches continues after `literal`, so in segment mode a
                    // literal prefix equal to `literal` only counts when it ends in `/`: the 0xFF byte,
                    // which no UTF-8 text holds, stands for the continuation.
                    let mut continued = literal.as_bytes().to_vec();
                    continued.push(0xFF);
                    cover = cover.min(literal_prefixes.best_rank(&continued, NO_RANK, segment) as usize);
                }
            } else if e.kind == IdentifierType::Prefix {
                cover = cover.min(literal_prefixes.best_rank(matched, NO_RANK, segment) as usize);
                cover = cover.min(globs.best_prefix_cover(&e.text_matched));
            } else {
                cover = cover.min(globs.best_name_cover(e.kind, &e.text_matched));
            }
            cover.min(rank)
        })
        .collect()
}

/// The type's tag byte followed by `text`, so that one trie holds the `LITERAL*` globs of every type.
fn tagged(kind: IdentifierType, text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 1);
    out.push(kind as u8);
    out.extend_from_slice(text.as_bytes());
    out
}

/// The text of a glob before its first character with a meaning in glob syntax: every string the glob
/// matches starts with it.
fn literal_part(pattern: &str) -> &str {
    let end = pattern.find(['*', '?', '[', ']', '{', '}', '\\', ',']).unwrap_or(pattern.len());
    &pattern[..end]
}

/// Which strings a compiled glob of a glob identifier matches (see `compile::glob`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// The glob's strings and, for prefixes, all their extensions: a match covers every extension.
    Closed,
    /// Segment mode, a prefix glob not ending in `/`: exactly the glob's strings.
    Exact,
    /// Segment mode, a prefix glob not ending in `/`: the glob's strings followed by `/` and anything.
    Slash,
}

/// One compiled glob of a glob identifier.
#[derive(Debug, Clone, Copy)]
struct GlobPart {
    /// The identifier's rank.
    rank: usize,
    part: Part,
    /// The identifier's pattern ends in `*`: its own strings are closed under extension.
    starred: bool,
}

/// The glob identifiers of one type: one set, and what each of its globs stands for.
struct TypeGlobs {
    set: GlobSet,
    parts: Vec<GlobPart>,
}

/// The glob identifiers of each type (in `IdentifierType` order).
struct GlobIndex {
    types: [Option<TypeGlobs>; 3],
}

impl GlobIndex {
    /// The index of the glob identifiers of `config` among `entries` (one per identifier, in rank
    /// order), from the globs compiled when the configuration was validated.
    fn build(config: &SecurityConfiguration, entries: &[Entry<'_>], options: &ResolverOptions) -> GlobIndex {
        let mut builders: [(GlobSetBuilder, Vec<GlobPart>); 3] =
            std::array::from_fn(|_| (GlobSetBuilder::new(), Vec::new()));
        let mut first_ranks = Vec::with_capacity(config.mappings().len());
        let mut rank = 0;
        for mapping in config.mappings() {
            first_ranks.push(rank);
            rank += mapping.identifiers().len();
        }
        // A configuration checked with these options has compiled its globs; if not, nothing is proved.
        let _ = config.for_each_glob(options, |index, position, compiled| {
            let rank = first_ranks[index] + position;
            let e = &entries[rank];
            let globs = compiled.globs();
            let parts: &[Part] = if globs.len() == 2 { &[Part::Exact, Part::Slash] } else { &[Part::Closed] };
            let starred = e.text_matched.ends_with('*') && !e.text_matched.ends_with("\\*");
            let (builder, type_parts) = &mut builders[e.kind as usize];
            for (g, &part) in globs.iter().zip(parts) {
                builder.add(g.clone());
                type_parts.push(GlobPart { rank, part, starred });
            }
        });
        // A set that does not build (too large) proves nothing: no glob is then counted as covering.
        let types = builders.map(|(builder, parts)| {
            if parts.is_empty() {
                return None;
            }
            builder.build().ok().map(|set| TypeGlobs { set, parts })
        });
        GlobIndex { types }
    }

    /// The smallest rank of a glob that matches `name` (a user or group name matched whole), or
    /// `usize::MAX`.
    fn best_name_cover(&self, kind: IdentifierType, name: &str) -> usize {
        self.matching(kind, name).iter().map(|g| g.rank).min().unwrap_or(usize::MAX)
    }

    /// The smallest rank of a prefix glob that matches every request the literal prefix whose
    /// `BUCKET/KEY` is `matched` matches, or `usize::MAX`.
    fn best_prefix_cover(&self, matched: &str) -> usize {
        let literal_has_extensions = matched.ends_with('/');
        self.matching(IdentifierType::Prefix, matched)
            .iter()
            .filter(|g| g.part != Part::Exact || !literal_has_extensions || g.starred)
            .map(|g| g.rank)
            .min()
            .unwrap_or(usize::MAX)
    }

    /// The globs of type `kind` that match `text`.
    fn matching(&self, kind: IdentifierType, text: &str) -> Vec<GlobPart> {
        match &self.types[kind as usize] {
            Some(globs) => {
                globs.set.matches_candidate(&Candidate::new(text)).into_iter().map(|i| globs.parts[i]).collect()
            }
            None => Vec::new(),
        }
    }
}

/// The diagnostics found so far, and how to phrase them.
struct Lints<'c> {
    config: &'c SecurityConfiguration,
    items: Vec<Diagnostic>,
}

impl Lints<'_> {
    fn push(&mut self, code: Code, severity: Severity, pointer: String, at: Location, message: String, help: String) {
        let embedded_in = self.config.embedded_in().map(str::to_owned);
        self.items.push(Diagnostic::new(code, severity, message, help).at(pointer, at, embedded_in));
    }

    /// Gives the last diagnostic a related place: the identifier `entry`, which `label` describes.
    fn relate_to_identifier(&mut self, entry: &Entry<'_>, label: &str) {
        let pointer = self.identifier_pointer(entry);
        if let Some(last) = self.items.pop() {
            self.items.push(last.with_related(pointer, entry.location, label));
        }
    }

    /// `mapping 3 (`/RoleMappings/3`)`.
    fn mapping(&self, index: usize) -> String {
        format!("mapping {index} (`{}`)", self.config.mapping_pointer(index))
    }

    fn identifier_pointer(&self, entry: &Entry<'_>) -> String {
        self.config.identifier_pointer(entry.mapping, entry.position)
    }

    fn at_identifier(&mut self, entry: &Entry<'_>, code: Code, severity: Severity, message: String, help: String) {
        let pointer = self.identifier_pointer(entry);
        self.push(code, severity, pointer, entry.location, message, help);
    }

    fn at_mapping(&mut self, index: usize, code: Code, severity: Severity, message: String, help: String) {
        let at = self.config.mappings()[index].location();
        self.push(code, severity, self.config.mapping_pointer(index), at, message, help);
    }

    fn shadowed(&mut self, entry: &Entry<'_>, by: &Entry<'_>) {
        let message = format!(
            "`{}` can never decide: `{}` in {} comes first and matches every request it matches",
            entry.text,
            by.text,
            self.mapping(by.mapping)
        );
        let help = format!(
            "the first matching mapping decides; remove this identifier, or move mapping {} above mapping {} if its role should win",
            entry.mapping, by.mapping
        );
        self.at_identifier(entry, Code::ShadowedIdentifier, Severity::Warning, message, help);
        self.relate_to_identifier(by, "comes first and matches every request this one matches");
    }

    fn unreachable(&mut self, index: usize, shadowing: impl Iterator<Item = usize>) {
        let mut by: Vec<usize> = shadowing.collect();
        by.sort_unstable();
        by.dedup();
        let names: Vec<String> = by.iter().take(LISTED).map(|&j| self.mapping(j)).collect();
        let message = format!(
            "mapping {index} can never decide: every one of its identifiers is shadowed, by {}",
            listed(&names, by.len(), "mapping")
        );
        let role = self.config.mappings()[index].role();
        let first = by.first().copied().unwrap_or_default();
        let help = format!(
            "its role `{role}` is never assumed through this mapping; remove the mapping, or move it above mapping {first}"
        );
        self.at_mapping(index, Code::UnreachableMapping, Severity::Warning, message, help);
        let (pointer, at) = (self.config.mapping_pointer(first), self.config.mappings()[first].location());
        if let Some(last) = self.items.pop() {
            self.items.push(last.with_related(pointer, at, format!("mapping {first} comes first")));
        }
    }

    fn duplicate(&mut self, entry: &Entry<'_>, of: &Entry<'_>) {
        let same_text = if entry.text == of.text { String::new() } else { format!(" `{}`", of.text) };
        let message = format!(
            "`{}` repeats identifier {}{same_text} (`{}`) of the same mapping",
            entry.text,
            of.position,
            self.identifier_pointer(of)
        );
        let help = "remove the repetition; if another name was meant, write that one".to_owned();
        self.at_identifier(entry, Code::DuplicateIdentifier, Severity::Warning, message, help);
        self.relate_to_identifier(of, "first written here");
    }

    fn redundant(&mut self, entry: &Entry<'_>, by: &Entry<'_>) {
        let message = format!(
            "`{}` adds nothing to its mapping: identifier {} `{}` (`{}`) already matches every request it matches",
            entry.text,
            by.position,
            by.text,
            self.identifier_pointer(by)
        );
        let help =
            "the mapping decides the same requests without it; remove it, or keep it as documentation".to_owned();
        self.at_identifier(entry, Code::RedundantIdentifier, Severity::Note, message, help);
        self.relate_to_identifier(by, "matches every request this one matches");
    }

    fn partially_shadowed(&mut self, index: usize, prefixes: &[usize], entries: &[Entry<'_>]) {
        // The first few prefixes, grouped by the mapping that lists them (they come in mapping order).
        let mut groups: Vec<(usize, Vec<String>)> = Vec::new();
        for &rank in prefixes.iter().take(LISTED) {
            let (mapping, text) = (entries[rank].mapping, format!("`{}`", entries[rank].text));
            match groups.last_mut() {
                Some((last, texts)) if *last == mapping => texts.push(text),
                _ => groups.push((mapping, vec![text])),
            }
        }
        let mut list: Vec<String> =
            groups.iter().map(|(mapping, texts)| format!("{}: {}", self.mapping(*mapping), texts.join(", "))).collect();
        if prefixes.len() > LISTED {
            list.push(format!("and {} more", prefixes.len() - LISTED));
        }
        let kind = self.config.mappings()[index].identifier_type();
        let message = format!(
            "requests that mapping {index} matches are decided by an earlier `Prefix` mapping when their path is under one of its prefixes: {}",
            list.join("; ")
        );
        let help = format!(
            "the first matching mapping decides whatever its identifier type, so this `{kind}` mapping does not apply to those paths; move it above them if its role should win there"
        );
        self.at_mapping(index, Code::PartiallyShadowedMapping, Severity::Note, message, help);
        if let Some(&first) = prefixes.first() {
            self.relate_to_identifier(&entries[first], "decides first for paths under it");
        }
    }

    /// The lints that look at one identifier alone.
    fn of_identifier(&mut self, entry: &Entry<'_>, options: &ResolverOptions) {
        let text = entry.text;
        if !options.globs()
            && let Some(c) = text.chars().find(|c| glob::GLOB_CHARS.contains(c))
        {
            let message = format!("`{text}` contains `{c}`, which is matched literally because globs are off");
            let help = "EMRFS matches identifiers literally, so only that exact text matches; globs (`*`, `?`, `[`, `{`) are an extension of this tool that must be turned on".to_owned();
            self.at_identifier(entry, Code::LiteralGlobCharacters, Severity::Warning, message, help);
        }
        let path = (entry.kind == IdentifierType::Prefix).then(|| crate::S3Path::parse(text).ok()).flatten();
        if let Some(path) = path {
            self.prefix_boundary(entry, options, path.key());
            let bucket = path.bucket();
            if !(entry.glob && glob::is_glob(bucket))
                && let Some(rule) = bucket_name_problem(bucket)
            {
                let message = format!("`{bucket}` in `{text}` is not a valid S3 bucket name: {rule}");
                let help = "EMRFS compares buckets exactly, so this prefix likely never matches; bucket names are 3 to 63 lower-case letters, digits, `.` and `-`, starting and ending with a letter or digit (only some buckets created in us-east-1 before March 2018 break these rules)".to_owned();
                self.at_identifier(entry, Code::InvalidBucketName, Severity::Warning, message, help);
            }
            self.suspicious(entry, path.key());
        } else {
            self.suspicious(entry, text);
        }
        if entry.kind == IdentifierType::User
            && let Some((name, realm)) = text.split_once('@')
            && !name.is_empty()
            && !realm.is_empty()
        {
            let short = name.split('/').next().unwrap_or(name);
            let message = format!("user `{text}` looks like a Kerberos principal, not a Hadoop user name");
            let help = format!(
                "Hadoop maps principals to short user names (`hadoop.security.auth_to_local`), so EMRFS most likely sees `{short}`; write that unless your rules keep the realm"
            );
            self.at_identifier(entry, Code::KerberosPrincipal, Severity::Warning, message, help);
        }
    }

    fn prefix_boundary(&mut self, entry: &Entry<'_>, options: &ResolverOptions, key: &str) {
        let text = entry.text;
        if options.prefix_match() != PrefixMatch::String
            || key.is_empty()
            || text.ends_with('/')
            || (entry.glob && text.ends_with('*'))
        {
            return;
        }
        let message = format!("`{text}` does not end in `/`, so it also matches sibling keys such as `{key}-old/`");
        let help = format!(
            "write `{text}/` to match only the keys under `{key}/`; keep it as it is only if every key that starts with `{key}` belongs to this mapping"
        );
        self.at_identifier(entry, Code::PrefixBoundary, Severity::Warning, message, help);
    }

    /// Invisible characters anywhere; look-alike characters mixed with ASCII letters; for users and
    /// groups, any non-ASCII character. `checked` is the identifier, or the key of a prefix (its bucket
    /// is checked against the bucket naming rules).
    fn suspicious(&mut self, entry: &Entry<'_>, checked: &str) {
        let shown = escape_invisible(entry.text);
        let (message, help) = if let Some(c) = checked.chars().find(|&c| is_invisible(c)) {
            (
                format!("`{shown}` contains the invisible character U+{:04X}", c as u32),
                "EMRFS compares identifiers byte for byte, so the identifier only matches text with that same character; retype it without it".to_owned(),
            )
        } else if let Some((c, ascii)) = checked
            .chars()
            .any(|c| c.is_ascii_alphabetic())
            .then(|| checked.chars().find_map(|c| look_alike(c).map(|a| (c, a))))
            .flatten()
        {
            let meant: String = entry.text.chars().map(|c| look_alike(c).unwrap_or(c)).collect();
            (
                format!("`{}` mixes scripts: `{c}` (U+{:04X}) looks like the ASCII `{ascii}`", entry.text, c as u32),
                format!(
                    "EMRFS compares identifiers byte for byte, so this does not match `{meant}`; retype it in ASCII if that was meant"
                ),
            )
        } else if let Some(c) = checked.chars().find(|c| !c.is_ascii()).filter(|_| entry.kind != IdentifierType::Prefix)
        {
            (
                format!("{} `{}` contains the non-ASCII character `{c}` (U+{:04X})", kind_word(entry.kind), entry.text, c as u32),
                "Hadoop user and group names are usually ASCII; check that this is byte for byte the name the cluster's operating system or directory reports (the same character can be written in several Unicode forms)".to_owned(),
            )
        } else {
            return;
        };
        self.at_identifier(entry, Code::SuspiciousCharacters, Severity::Warning, message, help);
    }
}

fn kind_word(kind: IdentifierType) -> &'static str {
    match kind {
        IdentifierType::User => "user",
        IdentifierType::Group => "group",
        IdentifierType::Prefix => "prefix",
    }
}

/// `a`, `a or b`, `a, b or c`, or, when `first` holds only the first of `total` items, those and how
/// many more `noun`s there are.
fn listed(first: &[String], total: usize, noun: &str) -> String {
    match first {
        [] => String::new(),
        [one] if total == 1 => one.clone(),
        [head @ .., last] if total == first.len() => format!("{} or {last}", head.join(", ")),
        _ => {
            let more = total.saturating_sub(first.len());
            format!("{}, or {more} more {noun}{}", first.join(", "), if more == 1 { "" } else { "s" })
        }
    }
}

/// The first rule of the S3 bucket naming rules that `bucket` breaks, in words.
fn bucket_name_problem(bucket: &str) -> Option<String> {
    let length = bucket.chars().count();
    let is_ip = {
        let parts: Vec<&str> = bucket.split('.').collect();
        parts.len() == 4 && parts.iter().all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    };
    let problem = if let Some(c) = bucket.chars().find(char::is_ascii_uppercase) {
        format!("it has the upper-case letter `{c}`, and bucket names have none")
    } else if let Some(c) =
        bucket.chars().find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-'))
    {
        format!(
            "it has `{}`, and bucket names only have lower-case letters, digits, `.` and `-`",
            escape_invisible(c.encode_utf8(&mut [0; 4]))
        )
    } else if !(3..=63).contains(&length) {
        format!("it has {length} characters, and bucket names have 3 to 63")
    } else if !bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !bucket.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        "bucket names start and end with a letter or a digit".to_owned()
    } else if bucket.contains("..") {
        "bucket names have no two adjacent periods".to_owned()
    } else if is_ip {
        "bucket names are not formatted as IP addresses".to_owned()
    } else {
        return None;
    };
    Some(problem)
}

/// Characters that show as nothing or as a plain space: format characters (zero-width spaces and
/// joiners, direction marks, the byte-order mark, the soft hyphen) and white space other than the space
/// (tabs and line breaks included).
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
        || (c.is_whitespace() && c != ' ')
}

/// `text` with invisible characters, besides those [`Escaped`] escapes, written as it writes them
/// (`\u{200b}`), so that the message shows which one the identifier holds.
fn escape_invisible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let _ = write_escaped(&mut out, text, |c| is_invisible(c) || Escaped::escapes(c));
    out
}

/// The ASCII character that `c` is easily mistaken for: Cyrillic and Greek look-alikes of Latin
/// letters, full-width forms, dotless i and dashes.
fn look_alike(c: char) -> Option<char> {
    /// Each character of `FROM` looks like the character at the same position in `TO`.
    const FROM: &str = "аеорсухіјѕԁһԛԝӏАВЕКМНОРСТХЅІЈҮΑΒΕΖΗΙΚΜΝΟΡΤΥΧονıɡ\u{2010}\u{2011}\u{2012}\u{2013}\u{2212}";
    const TO: &str = "aeopcyxijsdhqwlABEKMHOPCTXSIJYABEZHIKMNOPTYXovig-----";
    if ('\u{FF01}'..='\u{FF5E}').contains(&c) {
        return char::from_u32(c as u32 - 0xFEE0);
    }
    FROM.chars().zip(TO.chars()).find(|(from, _)| *from == c).map(|(_, to)| to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_rules_name_the_first_broken_rule() {
        for ok in ["abc", "my-bucket.v2", "a".repeat(63).as_str(), "1.2.3", "192.168.5.4x"] {
            assert_eq!(bucket_name_problem(ok), None, "{ok}");
        }
        let cases = [
            ("MyBucket", "upper-case letter `M`"),
            ("my_bucket", "has `_`"),
            ("ab", "2 characters"),
            ("-abc", "start and end"),
            ("abc.", "start and end"),
            ("a..b", "adjacent periods"),
            ("192.168.5.4", "IP addresses"),
            ("bücket", "has `ü`"),
        ];
        for (bucket, says) in cases {
            let problem = bucket_name_problem(bucket).unwrap_or_default();
            assert!(problem.contains(says), "{bucket}: {problem}");
        }
        assert!(bucket_name_problem(&"a".repeat(64)).is_some_and(|p| p.contains("64 characters")));
    }

    #[test]
    fn literal_parts_stop_at_any_glob_syntax() {
        assert_eq!(literal_part("bar/ab*"), "bar/ab");
        assert_eq!(literal_part("b/{a,x}/"), "b/");
        assert_eq!(literal_part("ba?/"), "ba");
        assert_eq!(literal_part("b/\\*x"), "b/");
        assert_eq!(literal_part("plain"), "plain");
    }

    #[test]
    fn lists_cap_at_five() {
        let items: Vec<String> = (0..5).map(|i| i.to_string()).collect();
        assert_eq!(listed(&items[..1], 1, "x"), "0");
        assert_eq!(listed(&items[..3], 3, "x"), "0, 1 or 2");
        assert_eq!(listed(&items, 6, "x"), "0, 1, 2, 3, 4, or 1 more x");
        assert_eq!(listed(&items, 7, "x"), "0, 1, 2, 3, 4, or 2 more xs");
    }

    #[test]
    fn look_alikes_and_invisible_characters() {
        assert_eq!(look_alike('а'), Some('a'));
        assert_eq!(look_alike('Ａ'), Some('A'));
        assert_eq!(look_alike('a'), None);
        assert_eq!(look_alike('\u{2212}'), Some('-'));
        assert!(is_invisible('\u{200B}') && is_invisible('\u{00A0}') && !is_invisible(' ') && !is_invisible('é'));
        assert_eq!(escape_invisible("a\u{200b}b"), "a\\u{200b}b");
    }
}
