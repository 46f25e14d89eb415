//! A compressed prefix trie (radix tree) over `BUCKET/KEY` strings that finds the best identifier
//! whose string is a prefix of a request's `BUCKET/KEY`.
//!
//! Every literal `Prefix` identifier `s3://B/K` is stored as the string `B/K` (`B/` for a bare bucket).
//! Because a bucket never contains `/`, a request string starts with `B/K` exactly when its bucket is
//! `B` and its key starts with `K`, so one trie serves every bucket, and its first levels are the
//! buckets. A node where a stored string ends carries that identifier's rank (its position in
//! first-match order, smaller wins); every node also carries the smallest rank in its subtree, so a
//! lookup stops as soon as nothing below can beat what the request already has.
//!
//! The nodes live in one array, children contiguous and sorted by first byte, labels in one byte
//! buffer: a lookup is a loop over at most one node per byte of the request, with no recursion and no
//! allocation.

/// The rank of "no identifier": larger than every real rank.
pub(crate) const NO_RANK: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Node {
    label_start: u32,
    label_len: u32,
    first_child: u32,
    child_count: u32,
    /// The smallest rank of the identifiers whose string ends exactly here, or [`NO_RANK`].
    rank: u32,
    /// The smallest rank in this node's subtree, itself included.
    subtree_rank: u32,
}

/// The compiled trie; see the module documentation.
#[derive(Debug, Clone, Default)]
pub(crate) struct PrefixTrie {
    nodes: Vec<Node>,
    /// `first_bytes[i]` is the first byte of node `i`'s label, so children are scanned in one cache line.
    first_bytes: Vec<u8>,
    labels: Vec<u8>,
}

impl PrefixTrie {
    /// Builds the trie from `(string, rank)` pairs; a repeated string keeps its smallest rank.
    ///
    /// The strings are sorted, so that every node is a range of them sharing the node's path, and
    /// the nodes are laid out breadth-first straight from those ranges, children contiguous and in
    /// byte order: no intermediate tree, no allocation per node.
    pub(crate) fn build<'s>(entries: impl IntoIterator<Item = (&'s [u8], u32)>) -> PrefixTrie {
        let mut entries: Vec<(&[u8], u32)> = entries.into_iter().collect();
        entries.sort_unstable();
        entries.dedup_by_key(|(string, _)| *string);
        let mut trie = PrefixTrie::default();
        // Each pending node: its range of entries, and where its label starts and ends in them.
        let mut pending = vec![(0..entries.len(), 0usize, 0usize)];
        let mut next = 0;
        while let Some((range, start, end)) = pending.get(next).cloned() {
            next += 1;
            let (mut lo, hi) = (range.start, range.end);
            let mut rank = NO_RANK;
            if let Some((_, r)) = entries.get(lo).filter(|(string, _)| string.len() == end) {
                rank = *r;
                lo += 1;
            }
            let first_child = pending.len();
            while lo < hi {
                let byte = entries[lo].0[end];
                let group_end = lo + entries[lo..hi].partition_point(|(string, _)| string[end] == byte);
                let (first, last) = (entries[lo].0, entries[group_end - 1].0);
                let common =
                    end + 1 + first[end + 1..].iter().zip(&last[end + 1..]).take_while(|(a, b)| a == b).count();
                pending.push((lo..group_end, end, common));
                lo = group_end;
            }
            let label = entries.get(range.start).map_or(&[][..], |(string, _)| &string[start..end]);
            trie.nodes.push(Node {
                label_start: to_u32(trie.labels.len()),
                label_len: to_u32(label.len()),
                first_child: to_u32(first_child),
                child_count: to_u32(pending.len() - first_child),
                rank,
                subtree_rank: rank,
            });
            trie.first_bytes.push(label.first().copied().unwrap_or(0));
            trie.labels.extend_from_slice(label);
        }
        for i in (0..trie.nodes.len()).rev() {
            let Node { first_child, child_count, .. } = trie.nodes[i];
            let below = (first_child..first_child + child_count)
                .map(|c| trie.nodes[c as usize].subtree_rank)
                .min()
                .unwrap_or(NO_RANK);
            trie.nodes[i].subtree_rank = trie.nodes[i].subtree_rank.min(below);
        }
        trie.nodes.shrink_to_fit();
        trie.first_bytes.shrink_to_fit();
        trie.labels.shrink_to_fit();
        trie
    }

    /// The smallest rank below `best` among stored strings that are a prefix of `request`, or `best`.
    ///
    /// With `segment` set, a stored string that does not end in `/` only counts where the request
    /// ends right after it or continues with `/` (SEMANTICS §3, segment mode).
    #[inline]
    pub(crate) fn best_rank(&self, request: &[u8], mut best: u32, segment: bool) -> u32 {
        let Some(mut node) = self.nodes.first() else { return best };
        let mut pos = 0usize;
        loop {
            if node.subtree_rank >= best {
                return best;
            }
            if node.rank < best
                && (!segment
                    || pos == request.len()
                    || request[pos] == b'/'
                    || self.labels[(node.label_start + node.label_len) as usize - 1] == b'/')
            {
                best = node.rank;
            }
            let Some(&next) = request.get(pos) else { return best };
            let first = node.first_child as usize;
            let children = &self.first_bytes[first..first + node.child_count as usize];
            let Some(i) = children.iter().position(|&b| b == next) else { return best };
            let child = &self.nodes[first + i];
            let label = &self.labels[child.label_start as usize..(child.label_start + child.label_len) as usize];
            // The first byte matched among the children: a one-byte label (common where many
            // identifiers branch, digit by digit) needs no comparison.
            if label.len() > 1 && !request[pos..].starts_with(label) {
                return best;
            }
            pos += label.len();
            node = child;
        }
    }

    /// The heap memory the trie holds, in bytes.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * size_of::<Node>() + self.first_bytes.capacity() + self.labels.capacity()
    }
}

/// Sizes inside the trie are bounded by the input size, which the parser limits far below 4 GiB.
fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trie(entries: &[(&str, u32)]) -> PrefixTrie {
        PrefixTrie::build(entries.iter().map(|(s, r)| (s.as_bytes(), *r)))
    }

    #[test]
    fn finds_the_smallest_rank_among_prefixes() {
        let t = trie(&[("b/", 5), ("b/abc", 2), ("b/ab", 3), ("c/x", 0), ("b/abd", 1)]);
        assert_eq!(t.best_rank(b"b/abcdef", NO_RANK, false), 2);
        assert_eq!(t.best_rank(b"b/abd", NO_RANK, false), 1);
        assert_eq!(t.best_rank(b"b/a", NO_RANK, false), 5);
        assert_eq!(t.best_rank(b"bb/abc", NO_RANK, false), NO_RANK);
        assert_eq!(t.best_rank(b"c/xy", NO_RANK, false), 0);
        assert_eq!(t.best_rank(b"b/abcdef", 4, false), 2, "improves on a given best");
        assert_eq!(t.best_rank(b"b/abcdef", 1, false), 1, "never worsens a given best");
    }

    #[test]
    fn segment_mode_needs_a_boundary() {
        let t = trie(&[("b/abc", 0), ("b/", 9), ("b/abc/d/", 1)]);
        assert_eq!(t.best_rank(b"b/abcdef", NO_RANK, true), 9);
        assert_eq!(t.best_rank(b"b/abc", NO_RANK, true), 0);
        assert_eq!(t.best_rank(b"b/abc/x", NO_RANK, true), 0);
        assert_eq!(t.best_rank(b"b/abcdef", NO_RANK, false), 0);
        assert_eq!(t.best_rank(b"b/abc/d/e", 5, true), 0);
    }

    #[test]
    fn an_empty_trie_matches_nothing() {
        assert_eq!(trie(&[]).best_rank(b"b/k", 7, false), 7);
    }

    #[test]
    fn repeated_strings_keep_the_smallest_rank() {
        let t = trie(&[("b/k", 4), ("b/k", 2), ("b/k", 3)]);
        assert_eq!(t.best_rank(b"b/k", NO_RANK, false), 2);
    }
}
