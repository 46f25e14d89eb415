//! How a diff reads: each transition's summary for a reviewer, the text and Markdown forms, and JSON.
//!
//! Text from the configurations and the requests is quoted as Markdown code spans (with a longer run
//! of backticks when it holds some), so that the summary is safe in a pull-request comment, and shown
//! through [`Escaped`] in the text and Markdown forms.

use std::fmt;

use serde::Serialize;
use serde::ser::SerializeStruct;

use super::Diff;
use crate::config::{IdentifierType, RoleArn};
use crate::diagnostics::Escaped;
use crate::matching::is_glob;
use crate::resolve::{RequestSpec, Resolution};

/// How many regions, or exceptions of a region, a summary names before it says how many more there are.
const LISTED: usize = 5;

impl Diff<'_> {
    /// The sentence for the requests that move from old rank `a` to new rank `b`: who (users, groups),
    /// where (paths), and what happens to them.
    pub(super) fn summary(&self, a: u32, b: u32) -> String {
        let (old_kind, new_kind) = (self.old.kind(a), self.new.kind(b));
        let decisive = |kind: IdentifierType| -> Vec<(&str, bool)> {
            let mut names: Vec<(&str, bool)> = Vec::new();
            for (side, rank, k) in [(&self.old, a, old_kind), (&self.new, b, new_kind)] {
                if k == Some(kind)
                    && let Some((_, _, text)) = side.identifier(rank)
                    && !names.iter().any(|(n, _)| *n == text)
                {
                    names.push((text, !self.exact && is_glob(text)));
                }
            }
            names
        };
        let earlier = |kind: IdentifierType| self.old.first[kind as usize] < a || self.new.first[kind as usize] < b;
        let user = match decisive(IdentifierType::User).as_slice() {
            [] if earlier(IdentifierType::User) => "any other user".to_owned(),
            [] => "any user".to_owned(),
            names => named("user", "users", names),
        };
        let groups = match decisive(IdentifierType::Group).as_slice() {
            [] if earlier(IdentifierType::Group) => " in any other groups".to_owned(),
            [] => String::new(),
            names => format!(" in {}", named("group", "groups", names)),
        };
        let paths = if old_kind == Some(IdentifierType::Prefix) || new_kind == Some(IdentifierType::Prefix) {
            self.regions(a, b, old_kind == Some(IdentifierType::Prefix), new_kind == Some(IdentifierType::Prefix))
        } else if earlier(IdentifierType::Prefix) {
            " on any other path".to_owned()
        } else {
            " on any path".to_owned()
        };
        format!("requests by {user}{groups}{paths} {}", self.effect(a, b))
    }

    /// What happens to the requests: a new role, a fallback, or the same role through another mapping.
    fn effect(&self, a: u32, b: u32) -> String {
        let role = |role: &RoleArn| match role.as_str().split_once(":role/") {
            Some((_, path_and_name)) if self.one_account => code(path_and_name),
            _ => code(role.as_str()),
        };
        let fallback = match self.fallback_role {
            Some(fallback) => format!("the instance-profile role {}", role(fallback)),
            None => "the instance-profile role".to_owned(),
        };
        let (old, new) = (self.old.resolution(a, self.fallback_role), self.new.resolution(b, self.fallback_role));
        match (old.mapping(), new.mapping()) {
            (Some(o), Some(n)) if o.role != n.role => {
                format!("move from role {} to role {}", role(o.role), role(n.role))
            }
            (Some(o), Some(n)) => format!(
                "keep role {}, through mapping {} ({} {}) instead of mapping {} ({} {})",
                role(o.role),
                n.index,
                n.identifier_type,
                code(n.identifier),
                o.index,
                o.identifier_type,
                code(o.identifier)
            ),
            (Some(o), None) => format!("fall back to {fallback} instead of role {}", role(o.role)),
            (None, Some(n)) => format!("get role {} instead of falling back to {fallback}", role(n.role)),
            (None, None) => "are decided as before".to_owned(),
        }
    }

    /// ` on paths under ...`: the path classes decided by `a` (when `by_old`, else that `a` does not
    /// beat) and by `b` (likewise), as regions.
    fn regions(&self, a: u32, b: u32, by_old: bool, by_new: bool) -> String {
        let fits = |rank: u32, bound: u32, decides: bool| if decides { rank == bound } else { rank >= bound };
        let path = self.first[IdentifierType::Prefix as usize];
        let inside = |class: u32| {
            let c = self.candidate(path as u32 + class);
            fits(c.old, a, by_old) && fits(c.new, b, by_new)
        };
        // The path candidates decided by `a` in the old configuration, or by `b` in the new one: the
        // shorter list when both decide.
        let with_rank = |list: &[u32], rank: u32, old: bool| -> std::ops::Range<usize> {
            let rank_of = |i: u32| if old { self.candidate(i).old } else { self.candidate(i).new };
            let start = list.partition_point(|&i| rank_of(i) < rank);
            start..start + list[start..].partition_point(|&i| rank_of(i) == rank)
        };
        let old_range = by_old.then(|| with_rank(&self.by_old, a, true));
        let new_range = by_new.then(|| with_rank(&self.paths_by_new, b, false));
        let classes = match (old_range, new_range) {
            (Some(o), Some(n)) if n.len() < o.len() => &self.paths_by_new[n],
            (Some(o), _) => &self.by_old[o],
            (None, Some(n)) => &self.paths_by_new[n],
            (None, None) => &[][..],
        };
        let regions = self.forest.regions(classes.iter().map(|&i| i - path as u32), inside);
        let shown = |class: u32| code(&format!("s3://{}", self.texts[IdentifierType::Prefix as usize][class as usize]));
        if !self.exact {
            let roots: Vec<String> = regions.iter().take(LISTED).map(|r| shown(r.root)).collect();
            return format!(" on paths such as {}", and_more(roots, regions.len()));
        }
        let described: Vec<String> = regions
            .iter()
            .take(LISTED)
            .map(|r| match r.except.as_slice() {
                [] => shown(r.root),
                except => {
                    let listed: Vec<String> = except.iter().take(LISTED).map(|&c| shown(c)).collect();
                    format!("{} (except under {})", shown(r.root), and_more(listed, except.len()))
                }
            })
            .collect();
        format!(" on paths under {}", and_more(described, regions.len()))
    }

    /// The last line of the text and Markdown forms: how many changes, and how far the list is complete.
    fn verdict(&self) -> String {
        let (n, truncated, complete) = (self.changes().len(), self.truncated(), self.complete());
        let scope = if self.same_role { "resolution" } else { "role or decision" };
        let changes = if n == 1 { "change" } else { "changes" };
        let mut line = match (n, truncated, complete) {
            (0, false, true) => format!("no request changes {scope}"),
            (_, false, true) => format!("{n} {changes}; every request whose {scope} changes is in one of them"),
            (_, true, _) => {
                format!("the first {n} {changes} by old mapping index; more exist (a larger maximum lists them)")
            }
            (0, false, false) => "no change found".to_owned(),
            (_, false, false) => format!("{n} {changes} found"),
        };
        if !complete && self.exact {
            line.push_str(" (a witness did not confirm its change and was left out: this is a bug, please report it)");
        } else if !complete {
            line.push_str(" (glob identifiers: the analysis is not exhaustive)");
        }
        line
    }

    /// The diff as Markdown for a pull-request comment: a sentence, then a table of the transitions
    /// with their requests, old and new decisions, and witnesses.
    pub fn markdown(&self) -> String {
        let cell = |text: &str| Escaped(text).to_string().replace('|', "\\|");
        let mut out = format!("**emrfs-rolemap diff**: {}.\n", cell(&self.verdict()));
        if self.changes().is_empty() {
            return out;
        }
        out.push_str("\n| # | Requests | Old | New | Witness |\n|--:|---|---|---|---|\n");
        for (n, change) in self.changes().iter().enumerate() {
            let decision = |r: &Resolution<'_>| match r.mapping() {
                Some(m) => format!(
                    "mapping {} ({} {}): {}",
                    m.index,
                    m.identifier_type,
                    code(m.identifier),
                    code(m.role.as_str())
                ),
                None => match r.role() {
                    Some(role) => format!("fallback: {}", code(role.as_str())),
                    None => "fallback: the instance-profile role".to_owned(),
                },
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                n + 1,
                cell(&change.summary),
                cell(&decision(&change.old)),
                cell(&decision(&change.new)),
                cell(&witness(&change.witness))
            ));
        }
        out
    }
}

impl fmt::Display for Diff<'_> {
    /// Each transition as a numbered summary with its old and new decisions and its witness, then a
    /// line saying how many there are and whether that is all; input shown through [`Escaped`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, change) in self.changes().iter().enumerate() {
            writeln!(f, "{}. {}", n + 1, Escaped(&change.summary))?;
            writeln!(f, "   old: {}", change.old)?;
            writeln!(f, "   new: {}", change.new)?;
            writeln!(f, "   witness: {}", Escaped(&witness(&change.witness)))?;
            writeln!(f)?;
        }
        writeln!(f, "{}", self.verdict())
    }
}

impl Serialize for Diff<'_> {
    /// `{"changes": [...], "complete": ..., "truncated": ...}`.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Diff", 3)?;
        s.serialize_field("changes", self.changes())?;
        s.serialize_field("complete", &self.complete())?;
        s.serialize_field("truncated", &self.truncated())?;
        s.end()
    }
}

/// `user `alice``, `groups `g` and `h``, or with globs `users matching `a*``.
fn named(one: &str, many: &str, names: &[(&str, bool)]) -> String {
    let quoted: Vec<String> = names.iter().map(|(n, _)| code(n)).collect();
    match (names.iter().any(|(_, glob)| *glob), quoted.as_slice()) {
        (true, _) => format!("{many} matching {}", quoted.join(" and ")),
        (false, [single]) => format!("{one} {single}"),
        (false, _) => format!("{many} {}", quoted.join(" and ")),
    }
}

/// The witness as `user `u`, groups `g`, `h`, path `s3://b/k``.
fn witness(spec: &RequestSpec) -> String {
    let mut parts = Vec::new();
    if let Some(user) = &spec.user {
        parts.push(format!("user {}", code(user)));
    }
    if !spec.groups.is_empty() {
        let groups: Vec<String> = spec.groups.iter().map(|g| code(g)).collect();
        parts.push(format!("group{} {}", if groups.len() == 1 { "" } else { "s" }, groups.join(", ")));
    }
    if let Some(path) = &spec.path {
        parts.push(format!("path {}", code(path)));
    }
    parts.join(", ")
}

/// `a`, `a and b`, `a, b and c`; or, when `shown` holds only the first of `total`, `a, b and 3 more`.
fn and_more(mut shown: Vec<String>, total: usize) -> String {
    if total > shown.len() {
        let more = total - shown.len();
        shown.push(format!("{more} more"));
    }
    match shown.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, head)) => format!("{} and {last}", head.join(", ")),
    }
}

/// `text` as a Markdown code span: in backticks, one more than the longest run of them inside, with
/// spaces inside when it starts or ends with one.
fn code(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') { " " } else { "" };
    format!("{fence}{pad}{text}{pad}{fence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_outlast_the_backticks_inside() {
        assert_eq!(code("alice"), "`alice`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`x``"), "``` `x`` ```");
    }

    #[test]
    fn lists_say_how_many_more() {
        let items = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(and_more(items(1), 1), "0");
        assert_eq!(and_more(items(2), 2), "0 and 1");
        assert_eq!(and_more(items(3), 3), "0, 1 and 2");
        assert_eq!(and_more(items(2), 7), "0, 1 and 5 more");
    }
}
