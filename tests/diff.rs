//! `Diff` is exact for literal identifiers, checked against the reference resolver on generated pairs
//! of configurations: a configuration, and a copy of it with mappings moved, deleted, inserted and
//! given other roles, and identifiers cut, extended, dropped and copied; in both prefix modes.
//!
//! - **sound**: every listed change's witness (one user, at most two groups, one path) resolves, by the
//!   reference resolver of each side, to exactly the change's old and new resolutions, which differ in
//!   decision or role (or, with same-role transitions, at all); no transition is listed twice, and the
//!   list is in old mapping order.
//! - **complete**: for requests aimed at every identifier of both sides — every user and none, every
//!   group and every pair of groups and none, every prefix with paths just inside and outside it and
//!   none, in every combination — plus random requests, every transition the reference resolvers show
//!   is listed, and the diff says it is complete.
//! - **truncated**: a shorter maximum lists the first transitions of the full list, and says so.
//!
//! With glob identifiers the diff is sound and says it is not complete.
//!
//! Roles come from a pool of four, so that transitions between mappings of one role (not changes) are
//! frequent; `generated_pairs_change_often_and_need_two_part_witnesses` proves the pairs are rich.

mod support;

use std::collections::BTreeSet;

use emrfs_rolemap::{
    Change, Diff, IdentifierType, PrefixMatch, ReferenceResolver, Resolution, ResolverOptions, RoleArn, S3Path,
    SecurityConfiguration,
};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use support::generators::{self, Pools, RequestText, kind};

// ---------------------------------------------------------------------------------------------------
// Pairs of configurations

/// Alphabets where identifiers collide and share prefixes; globs only matter where globs are on.
fn pools() -> Pools<prop::bool::Any> {
    Pools {
        users: &["u0", "u1", "u2", "U1", "u1x"],
        user_globs: &["u*", "u?", "u1*"],
        groups: &["g0", "g1", "g2", "g3", "G1", "g1x"],
        group_globs: &["g*", "g?", "g[1-3]"],
        schemes: &["s3", "s3a", "S3"],
        buckets: &["b", "ba", "bar"],
        segments: &["a", "ab", "abc", "x", ""],
        prefix_globs: &["s3://ba*/a", "s3://b/{a,x}/", "s3://bar/a*", "s3://b?/"],
        trailing_slash: prop::bool::ANY,
        keyed_prefix_weight: 5,
        literal_name_weight: 8,
        literal_prefix_weight: 10,
        max_identifiers: 3,
    }
}

#[derive(Debug, Clone)]
struct MappingSpec {
    kind: IdentifierType,
    role: u8,
    identifiers: Vec<String>,
}

fn mapping() -> impl Strategy<Value = MappingSpec> {
    kind().prop_flat_map(|kind| {
        (0..4u8, pools().identifiers(kind)).prop_map(move |(role, identifiers)| MappingSpec { kind, role, identifiers })
    })
}

/// One edit that turns the old configuration into the new one.
#[derive(Debug, Clone)]
enum Edit {
    Move {
        from: Index,
        to: Index,
    },
    Delete(Index),
    Insert {
        at: Index,
        mapping: MappingSpec,
    },
    Role {
        at: Index,
        role: u8,
    },
    /// An identifier loses its last character (a prefix keeps its bucket).
    Cut {
        at: Index,
        which: Index,
    },
    /// An identifier gets a suffix.
    Extend {
        at: Index,
        which: Index,
        suffix: &'static str,
    },
    /// An identifier is dropped (when its mapping has another).
    Drop {
        at: Index,
        which: Index,
    },
    /// An identifier of a mapping is copied into another mapping of the same type.
    Copy {
        from: Index,
        to: Index,
        which: Index,
    },
}

fn edit() -> impl Strategy<Value = Edit> {
    let index = || any::<Index>();
    prop_oneof![
        3 => (index(), index()).prop_map(|(from, to)| Edit::Move { from, to }),
        2 => index().prop_map(Edit::Delete),
        2 => (index(), mapping()).prop_map(|(at, mapping)| Edit::Insert { at, mapping }),
        3 => (index(), 0..4u8).prop_map(|(at, role)| Edit::Role { at, role }),
        2 => (index(), index()).prop_map(|(at, which)| Edit::Cut { at, which }),
        2 => (index(), index(), select(&["x", "/", "/x", "a", "1"][..]))
            .prop_map(|(at, which, suffix)| Edit::Extend { at, which, suffix }),
        2 => (index(), index()).prop_map(|(at, which)| Edit::Drop { at, which }),
        2 => (index(), index(), index()).prop_map(|(from, to, which)| Edit::Copy { from, to, which }),
    ]
}

fn apply(mut mappings: Vec<MappingSpec>, edits: &[Edit]) -> Vec<MappingSpec> {
    for edit in edits {
        let len = mappings.len();
        match edit {
            Edit::Move { from, to } => {
                let moved = mappings.remove(from.index(len));
                mappings.insert(to.index(len), moved);
            }
            Edit::Delete(at) if len > 1 => {
                mappings.remove(at.index(len));
            }
            Edit::Delete(_) => {}
            Edit::Insert { at, mapping } => mappings.insert(at.index(len + 1), mapping.clone()),
            Edit::Role { at, role } => at.get_mut(&mut mappings).role = *role,
            Edit::Cut { at, which } => {
                let mapping = at.get_mut(&mut mappings);
                let kind = mapping.kind;
                let identifier = which.get_mut(&mut mapping.identifiers);
                let mut cut = identifier.clone();
                cut.pop();
                let keeps_bucket = S3Path::parse(&cut).is_ok();
                if !cut.is_empty() && (kind != IdentifierType::Prefix || keeps_bucket) {
                    *identifier = cut;
                }
            }
            Edit::Extend { at, which, suffix } => {
                let mapping = at.get_mut(&mut mappings);
                which.get_mut(&mut mapping.identifiers).push_str(suffix);
            }
            Edit::Drop { at, which } => {
                let mapping = at.get_mut(&mut mappings);
                if mapping.identifiers.len() > 1 {
                    mapping.identifiers.remove(which.index(mapping.identifiers.len()));
                }
            }
            Edit::Copy { from, to, which } => {
                let (from, to) = (from.index(len), to.index(len));
                if mappings[from].kind == mappings[to].kind {
                    let copied = which.get(&mappings[from].identifiers).clone();
                    mappings[to].identifiers.push(copied);
                }
            }
        }
    }
    mappings
}

#[derive(Debug, Clone)]
struct Pair {
    old: Vec<MappingSpec>,
    new: Vec<MappingSpec>,
}

fn pair() -> impl Strategy<Value = Pair> {
    (prop::collection::vec(mapping(), 1..=6), prop::collection::vec(edit(), 1..=4)).prop_map(|(old, edits)| {
        let new = apply(old.clone(), &edits);
        Pair { old, new }
    })
}

fn json(mappings: &[MappingSpec]) -> String {
    let mappings: Vec<serde_json::Value> = mappings
        .iter()
        .map(|m| {
            serde_json::json!({
                "Role": format!("arn:aws:iam::123456789012:role/r{}", m.role),
                "IdentifierType": m.kind.as_str(),
                "Identifiers": m.identifiers,
            })
        })
        .collect();
    serde_json::json!({ "RoleMappings": mappings }).to_string()
}

// ---------------------------------------------------------------------------------------------------
// Requests

/// Random parts to add to the aimed requests.
#[derive(Debug, Clone)]
struct Noise {
    user: Option<&'static str>,
    groups: Vec<&'static str>,
    path: Option<String>,
}

fn noise() -> impl Strategy<Value = Noise> {
    let names = &["u0", "u1", "U1", "g0", "g1", "g2", "nobody"][..];
    let path = (select(pools().schemes), select(&["b", "ba", "bar", "barn", "c"][..]), pools().key())
        .prop_map(|(s, b, k)| format!("{s}://{b}/{k}"));
    (prop::option::of(select(names)), prop::collection::vec(select(names), 0..=3), prop::option::of(path))
        .prop_map(|(user, groups, path)| Noise { user, groups, path })
}

/// Every user and none, every group set of at most two and none, every path aimed at a prefix and
/// none, in every combination; then the random ones.
fn requests(pair: &Pair, noise: &[Noise]) -> Vec<RequestText> {
    let of = |kind: IdentifierType| -> BTreeSet<String> {
        pair.old
            .iter()
            .chain(&pair.new)
            .filter(|m| m.kind == kind)
            .flat_map(|m| m.identifiers.iter().cloned())
            .collect()
    };
    let mut users: Vec<Option<String>> = vec![None, Some("nobody".to_owned())];
    users.extend(of(IdentifierType::User).into_iter().map(Some));
    let groups: Vec<String> = of(IdentifierType::Group).into_iter().collect();
    let mut group_sets: Vec<Vec<String>> = vec![vec![], vec!["nogroup".to_owned()]];
    for (i, g) in groups.iter().enumerate() {
        group_sets.push(vec![g.clone()]);
        for h in &groups[i + 1..] {
            group_sets.push(vec![g.clone(), h.clone()]);
        }
    }
    let mut paths: BTreeSet<Option<String>> = [None, Some("s3://c/x".to_owned())].into_iter().collect();
    for prefix in of(IdentifierType::Prefix) {
        let inside_and_outside = ["", "x", "/", "/x", "a/b"].iter().map(|s| format!("{prefix}{s}"));
        let shorter = prefix[..prefix.len() - 1].to_owned();
        for path in inside_and_outside.chain([shorter]).filter(|p| S3Path::parse(p).is_ok()) {
            paths.insert(Some(path));
        }
    }
    let mut out = Vec::with_capacity(users.len() * group_sets.len() * paths.len() + noise.len());
    for user in &users {
        for groups in &group_sets {
            for path in &paths {
                out.push(RequestText { user: user.clone(), groups: groups.clone(), path: path.clone() });
            }
        }
    }
    out.extend(noise.iter().map(|n| RequestText {
        user: n.user.map(str::to_owned),
        groups: n.groups.iter().map(|g| (*g).to_owned()).collect(),
        path: n.path.clone(),
    }));
    out
}

// ---------------------------------------------------------------------------------------------------
// The properties

fn options(prefix_match: PrefixMatch, globs: bool, fallback: bool) -> ResolverOptions {
    let role = fallback.then(|| RoleArn::parse("arn:aws:iam::123456789012:role/instance-profile").expect("valid"));
    ResolverOptions::new().with_prefix_match(prefix_match).with_globs(globs).with_fallback_role(role)
}

/// Whether a request that the old side resolves as `old` and the new one as `new` is a change to list.
fn is_listed(old: &Resolution<'_>, new: &Resolution<'_>, same_role: bool) -> bool {
    old.decision() != new.decision() || old.role() != new.role() || (same_role && old != new)
}

/// A transition as text, to compare across resolvers.
fn key(old: &Resolution<'_>, new: &Resolution<'_>) -> String {
    serde_json::to_string(&(old, new)).expect("resolutions serialize")
}

/// The order of the listing: old mapping index (the fallback last), then its identifier's position, then
/// the same of the new mapping.
fn order(config: [&SecurityConfiguration; 2], change: &Change<'_>) -> (usize, usize, usize, usize) {
    let place = |config: &SecurityConfiguration, r: &Resolution<'_>| match r.mapping() {
        Some(m) => {
            let position = config.mappings()[m.index].identifiers().iter().position(|i| i.as_str() == m.identifier);
            (m.index, position.expect("the identifier is the mapping's"))
        }
        None => (usize::MAX, 0),
    };
    let (old, new) = (place(config[0], &change.old), place(config[1], &change.new));
    (old.0, old.1, new.0, new.1)
}

fn check_diff(
    pair: &Pair,
    noise: &[Noise],
    prefix_match: PrefixMatch,
    globs: bool,
    fallback: bool,
    cut: Index,
) -> Result<(), TestCaseError> {
    let options = options(prefix_match, globs, fallback);
    let (old_json, new_json) = (json(&pair.old), json(&pair.new));
    let context = || format!("\nold: {old_json}\nnew: {new_json}\noptions: {options:?}");
    let (old, new) =
        match [&old_json, &new_json].map(|j| SecurityConfiguration::from_slice_with(j.as_bytes(), &options)) {
            [Ok(old), Ok(new)] => (old, new),
            // A cut can leave a glob unclosed (`g[1-3`): valid only with globs off.
            _ if globs => return Ok(()),
            [old, new] => {
                return Err(TestCaseError::fail(format!("invalid: {:?} {:?}{}", old.err(), new.err(), context())));
            }
        };
    let old_reference = ReferenceResolver::new(&old, &options).expect("builds");
    let new_reference = ReferenceResolver::new(&new, &options).expect("builds");
    let has_globs = globs
        && [&pair.old, &pair.new]
            .iter()
            .any(|m| m.iter().flat_map(|m| &m.identifiers).any(|i| i.contains(['*', '?', '[', '{'])));
    let requests = requests(pair, noise);
    for same_role in [false, true] {
        let diff =
            Diff::between(&old, &new, &options).expect("builds").with_max_changes(usize::MAX).with_same_role(same_role);
        let changes = diff.changes();
        prop_assert!(!diff.truncated());
        prop_assert_eq!(diff.complete(), !has_globs, "complete exactly without globs{}", context());
        let mut listed = BTreeSet::new();
        for change in changes {
            let witness = RequestText {
                user: change.witness.user.clone(),
                groups: change.witness.groups.clone(),
                path: change.witness.path.clone(),
            };
            prop_assert!(witness.groups.len() <= 2, "{witness:?}");
            let (old_seen, new_seen) = witness.with(|r| (old_reference.resolve(r), new_reference.resolve(r)));
            prop_assert_eq!(old_seen, change.old, "old side of {:?}{}", witness, context());
            prop_assert_eq!(new_seen, change.new, "new side of {:?}{}", witness, context());
            prop_assert!(is_listed(&change.old, &change.new, same_role), "not a change: {change:?}{}", context());
            prop_assert!(listed.insert(key(&change.old, &change.new)), "listed twice: {change:?}{}", context());
        }
        let orders: Vec<_> = changes.iter().map(|c| order([&old, &new], c)).collect();
        prop_assert!(orders.windows(2).all(|w| w[0] < w[1]), "not in order: {orders:?}{}", context());
        if !has_globs {
            for request in &requests {
                let (o, n) = request.with(|r| (old_reference.resolve(r), new_reference.resolve(r)));
                if is_listed(&o, &n, same_role) {
                    prop_assert!(
                        listed.contains(&key(&o, &n)),
                        "{request:?} goes from {o} to {n}, which is not listed (same role: {same_role}){}",
                        context()
                    );
                }
            }
        }
        let max = cut.index(changes.len() + 1);
        let shorter =
            Diff::between(&old, &new, &options).expect("builds").with_max_changes(max).with_same_role(same_role);
        prop_assert_eq!(shorter.changes(), &changes[..max], "the first {} of the full list{}", max, context());
        prop_assert_eq!(shorter.truncated(), max < changes.len());
    }
    Ok(())
}

proptest! {
    #![proptest_config(generators::proptest_config(300))]

    #[test]
    fn diff_is_exact_with_string_prefixes(
        pair in pair(), noise in prop::collection::vec(noise(), 0..=20), fallback: bool, cut: Index,
    ) {
        check_diff(&pair, &noise, PrefixMatch::String, false, fallback, cut)?;
    }

    #[test]
    fn diff_is_exact_with_segment_prefixes(
        pair in pair(), noise in prop::collection::vec(noise(), 0..=20), fallback: bool, cut: Index,
    ) {
        check_diff(&pair, &noise, PrefixMatch::Segment, false, fallback, cut)?;
    }

    #[test]
    fn diff_is_sound_with_globs(pair in pair(), segment: bool, cut: Index) {
        let mode = if segment { PrefixMatch::Segment } else { PrefixMatch::String };
        check_diff(&pair, &[], mode, true, false, cut)?;
    }
}

// ---------------------------------------------------------------------------------------------------
// The generated pairs are rich

/// Not vacuous: most generated pairs change some requests, many changes need a witness of two parts,
/// some need two groups, and transitions between mappings of one role are frequent.
#[test]
fn generated_pairs_change_often_and_need_two_part_witnesses() {
    let mut runner = TestRunner::deterministic();
    let strategy = pair();
    let (mut pairs, mut changed, mut two_parts, mut two_groups, mut same_role_only) = (0, 0, 0, 0, 0);
    let options = ResolverOptions::default();
    for _ in 0..400 {
        let pair = strategy.new_tree(&mut runner).expect("the strategy generates").current();
        let old = SecurityConfiguration::from_json(&json(&pair.old)).expect("valid");
        let new = SecurityConfiguration::from_json(&json(&pair.new)).expect("valid");
        let diff = Diff::between(&old, &new, &options).expect("builds");
        pairs += 1;
        changed += usize::from(!diff.changes().is_empty());
        for change in diff.changes() {
            let w = &change.witness;
            let parts = usize::from(w.user.is_some()) + w.groups.len() + usize::from(w.path.is_some());
            two_parts += usize::from(parts == 2);
            two_groups += usize::from(w.groups.len() == 2);
        }
        let all = Diff::between(&old, &new, &options).expect("builds").with_same_role(true);
        same_role_only += usize::from(all.changes().len() > diff.changes().len());
    }
    eprintln!(
        "{pairs} pairs: {changed} changed, {two_parts} two-part witnesses ({two_groups} with two groups), {same_role_only} with same-role transitions"
    );
    assert!(changed * 10 >= pairs * 6, "only {changed} of {pairs} pairs change a request");
    assert!(two_parts >= pairs, "only {two_parts} two-part witnesses in {pairs} pairs");
    assert!(two_groups >= 20, "only {two_groups} witnesses with two groups");
    assert!(same_role_only * 4 >= pairs, "only {same_role_only} of {pairs} pairs have same-role transitions");
}
