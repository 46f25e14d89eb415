//! The index that finds the second half of a two-part witness: among the candidates of one kind (users,
//! groups or paths), those whose new rank is below a bound and whose old rank is above another, in
//! increasing new rank, optionally only those whose new role differs from a given one.
//!
//! The entries are sorted by new rank; a segment tree over them keeps, for each range, the largest old
//! rank, that entry's role, and the largest old rank among entries of any other role. A query walks down
//! only into ranges that hold a qualifying entry, so it costs `O((k + 1) log n)` for `k` answers, however
//! many entries of the excluded role lie in between.

/// One entry: a candidate with a new rank (the key), its old rank and the role of its new rank.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    /// Its rank in the new configuration (finite).
    pub(super) new: u32,
    /// Its rank in the old configuration ([`crate::trie::NO_RANK`] when nothing matches it there).
    pub(super) old: u32,
    /// The interned role of the new configuration's identifier of rank `new`.
    pub(super) role: u32,
    /// The candidate (an index into the diff's candidates).
    pub(super) candidate: u32,
}

/// What a range of entries holds, for the walk.
#[derive(Debug, Clone, Copy)]
struct Summit {
    /// The largest old rank in the range (0 for an empty range: no bound is below it).
    old: u32,
    /// The role of that entry.
    role: u32,
    /// The largest old rank among the entries whose role is not `role` (0 when there is none).
    other: u32,
}

/// No role has this id.
const NO_ROLE: u32 = u32::MAX;

const EMPTY: Summit = Summit { old: 0, role: NO_ROLE, other: 0 };

impl Summit {
    fn join(a: Summit, b: Summit) -> Summit {
        let (high, low) = if a.old >= b.old { (a, b) } else { (b, a) };
        let low_other = if low.role != high.role { low.old } else { low.other };
        Summit { old: high.old, role: high.role, other: high.other.max(low_other) }
    }

    /// Whether the range holds an entry with an old rank above `old`, of a role other than `except`.
    fn holds(&self, old: u32, except: Option<u32>) -> bool {
        match except {
            Some(role) if role == self.role => self.other > old,
            _ => self.old > old,
        }
    }
}

/// The entries of one kind, sorted by new rank, and the tree over them.
#[derive(Debug, Clone, Default)]
pub(super) struct CrossIndex {
    entries: Vec<Entry>,
    /// A complete binary tree in an array: node 1 is the root, node `i` has children `2i` and `2i + 1`,
    /// and the leaves start at `width`.
    tree: Vec<Summit>,
    width: usize,
}

impl CrossIndex {
    /// The index over `entries`, whose new ranks must be distinct.
    pub(super) fn new(mut entries: Vec<Entry>) -> CrossIndex {
        entries.sort_unstable_by_key(|e| e.new);
        let width = entries.len().next_power_of_two();
        let mut tree = vec![EMPTY; 2 * width];
        for (i, e) in entries.iter().enumerate() {
            tree[width + i] = Summit { old: e.old, role: e.role, other: 0 };
        }
        for i in (1..width).rev() {
            tree[i] = Summit::join(tree[2 * i], tree[2 * i + 1]);
        }
        CrossIndex { entries, tree, width }
    }

    /// At most `limit` entries with a new rank below `new_below` and an old rank above `old_above`, of
    /// a role other than `except` when given, in increasing new rank.
    pub(super) fn find(&self, old_above: u32, new_below: u32, except: Option<u32>, limit: usize) -> Vec<Entry> {
        let end = self.entries.partition_point(|e| e.new < new_below);
        let mut found = Vec::new();
        // Nodes to visit, with the first leaf position they cover and how many leaves; the left child
        // is pushed last so that it is visited first.
        let mut stack = vec![(1usize, 0usize, self.width)];
        while let Some((node, start, span)) = stack.pop() {
            if found.len() >= limit {
                break;
            }
            if start >= end || !self.tree.get(node).is_some_and(|s| s.holds(old_above, except)) {
                continue;
            }
            if span == 1 {
                found.extend(self.entries.get(start).copied());
                continue;
            }
            let half = span / 2;
            stack.push((2 * node + 1, start + half, half));
            stack.push((2 * node, start, half));
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index answers as a filter over every entry, for every bound and excluded role.
    #[test]
    fn finds_what_a_scan_finds() {
        let mut rng = crate::rng::SplitMix64::new(5);
        for size in [0, 1, 2, 3, 7, 64, 100] {
            let mut news: Vec<u32> = (0..size as u32 * 3).collect();
            let entries: Vec<Entry> = (0..size)
                .map(|i| {
                    let new = news.swap_remove(rng.below(news.len()));
                    let old = if rng.below(5) == 0 { crate::trie::NO_RANK } else { rng.below(300) as u32 };
                    Entry { new, old, role: rng.below(3) as u32, candidate: i as u32 }
                })
                .collect();
            let index = CrossIndex::new(entries.clone());
            for _ in 0..300 {
                let (old_above, new_below) = (rng.below(300) as u32, rng.below(size * 3 + 2) as u32);
                let except = [None, Some(0), Some(1), Some(2)][rng.below(4)];
                let limit = [usize::MAX, 1, 3][rng.below(3)];
                let mut expected: Vec<u32> = entries
                    .iter()
                    .filter(|e| e.new < new_below && e.old > old_above && except != Some(e.role))
                    .map(|e| e.new)
                    .collect();
                expected.sort_unstable();
                expected.truncate(limit);
                let found: Vec<u32> = index.find(old_above, new_below, except, limit).iter().map(|e| e.new).collect();
                assert_eq!(found, expected, "size {size}, old > {old_above}, new < {new_below}, except {except:?}");
            }
        }
    }
}
