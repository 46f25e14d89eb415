//! The classes of paths, and how a set of them reads as regions: "under `s3://b/k/` except under
//! `s3://b/k/x/`".
//!
//! With literal prefixes, a path is decided, in both configurations, by the same identifiers as the
//! longest stored `BUCKET/KEY` of either configuration that matches it (its *class*): every stored
//! string that matches a path is a prefix of it that also matches that longest one (in segment mode
//! too, since a `/` after a prefix of the path is a `/` after the same prefix of any longer prefix of
//! it). So the stored strings themselves, as paths, are one witness per class, and the classes form a
//! forest: a class's parent is the longest other stored string that matches it. The paths under a class
//! are the paths of the classes in its subtree.

use crate::matching::PrefixMatch;

/// No parent.
const ROOT: u32 = u32::MAX;

/// The forest of path classes, over their `BUCKET/KEY` strings in sorted order.
#[derive(Debug, Clone, Default)]
pub(super) struct Forest {
    parent: Vec<u32>,
    /// The children of class `i` are `children[child_start[i]..child_start[i + 1]]`, in order.
    child_start: Vec<u32>,
    children: Vec<u32>,
}

/// A region of paths: those under `root`, except those under each of `except`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Region {
    pub(super) root: u32,
    pub(super) except: Vec<u32>,
}

impl Forest {
    /// The forest of `classes`, `BUCKET/KEY` strings sorted and distinct, matched in `mode`.
    pub(super) fn new<'s>(classes: impl ExactSizeIterator<Item = &'s str>, mode: PrefixMatch) -> Forest {
        let mut parent = Vec::with_capacity(classes.len());
        // The classes that are prefixes of the current one, shortest first: sorted order keeps every
        // prefix of a string on the stack until a string it does not start comes.
        let mut stack: Vec<(u32, &str)> = Vec::new();
        for (i, class) in classes.enumerate() {
            while stack.last().is_some_and(|(_, top)| !class.starts_with(top)) {
                stack.pop();
            }
            let matching = stack.iter().rev().find(|(_, prefix)| {
                mode == PrefixMatch::String
                    || prefix.ends_with('/')
                    || class.as_bytes().get(prefix.len()) == Some(&b'/')
            });
            parent.push(matching.map_or(ROOT, |(p, _)| *p));
            stack.push((i as u32, class));
        }
        let mut counts = vec![0u32; parent.len() + 1];
        for &p in parent.iter().filter(|&&p| p != ROOT) {
            counts[p as usize + 1] += 1;
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let child_start = counts.clone();
        let mut children = vec![0u32; child_start.last().copied().unwrap_or(0) as usize];
        for (i, &p) in parent.iter().enumerate().filter(|(_, p)| **p != ROOT) {
            children[counts[p as usize] as usize] = i as u32;
            counts[p as usize] += 1;
        }
        Forest { parent, child_start, children }
    }

    fn parent(&self, class: u32) -> Option<u32> {
        self.parent.get(class as usize).copied().filter(|&p| p != ROOT)
    }

    fn children(&self, class: u32) -> &[u32] {
        let (start, end) = (self.child_start[class as usize], self.child_start[class as usize + 1]);
        &self.children[start as usize..end as usize]
    }

    /// The regions that make up the classes for which `inside` holds, given `some`, the classes among
    /// which are all of them: each region's root is a class whose parent is outside, its exceptions the
    /// outside children of the classes inside it. Roots and exceptions in sorted order.
    pub(super) fn regions(&self, some: impl Iterator<Item = u32>, inside: impl Fn(u32) -> bool) -> Vec<Region> {
        let mut regions: Vec<Region> = Vec::new();
        let mut members: Vec<(u32, u32)> = some
            .filter(|&c| inside(c))
            .map(|c| {
                let mut root = c;
                while let Some(p) = self.parent(root).filter(|&p| inside(p)) {
                    root = p;
                }
                (root, c)
            })
            .collect();
        members.sort_unstable();
        members.dedup();
        for (root, class) in members {
            if regions.last().is_none_or(|r| r.root != root) {
                regions.push(Region { root, except: Vec::new() });
            }
            if let Some(region) = regions.last_mut() {
                region.except.extend(self.children(class).iter().filter(|&&c| !inside(c)));
            }
        }
        for region in &mut regions {
            region.except.sort_unstable();
        }
        regions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forest(classes: &[&str], mode: PrefixMatch) -> Forest {
        Forest::new(classes.iter().copied(), mode)
    }

    #[test]
    fn a_class_hangs_under_the_longest_stored_string_that_matches_it() {
        let classes = ["b/", "b/a", "b/ab", "b/ab/x", "b/abc", "c/"];
        let string = forest(&classes, PrefixMatch::String);
        assert_eq!(string.parent, [ROOT, 0, 1, 2, 2, ROOT]);
        let segment = forest(&classes, PrefixMatch::Segment);
        assert_eq!(segment.parent, [ROOT, 0, 0, 2, 0, ROOT], "`b/a` does not match `b/ab` in segment mode");
        assert_eq!(segment.children(0), [1, 2, 4]);
    }

    #[test]
    fn regions_are_roots_inside_with_their_outside_children() {
        let classes = ["b/", "b/a/", "b/a/x/", "b/a/x/y/", "b/c/"];
        let f = forest(&classes, PrefixMatch::String);
        let inside = |c: u32| [0, 1, 3, 4].contains(&c);
        let regions = f.regions(0..5, inside);
        assert_eq!(
            regions,
            [Region { root: 0, except: vec![2] }, Region { root: 3, except: vec![] }],
            "`b/` except under `b/a/x/`, and `b/a/x/y/` again"
        );
    }
}
