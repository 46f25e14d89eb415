//! A compressed prefix trie (radix tree) over `BUCKET/KEY` strings that finds the best identifier
//! whose string is a prefix of a request's `BUCKET/KEY`.
//!
//! Every literal `Prefix` identifier `s3://B/K` is stored as the string `B/K` (`B/` for a bare bucket).
//! Because a bucket never contains `/`, a request string starts with `B/K` exactly when its bucket is
//! `B` and its key starts with `K`, so one trie serves every bucket. A node where a stored string ends
//! carries that identifier's rank (its position in first-match order, smaller wins); every node also
//! carries the smallest rank in its subtree, so a lookup stops as soon as nothing below can beat what
//! the request already has.
//!
//! The nodes live in one array, children contiguous and sorted by first byte, labels in one byte
//! buffer: a lookup is a loop over at most one node per byte of the request, with no recursion and no
//! allocation. [`PrefixTrie`] is the plain trie (the linter also uses it over other strings);
//! [`PathTrie`], the resolver's, makes the root's children whole `BUCKET/` labels found by one hash
//! probe, since a request's bucket must match exactly. Where numbered names make the trie branch digit
//! by digit, a node's children have consecutive first bytes, and the child for a byte is found at once
//! from its distance to the lowest of them, which the node keeps.

/// The rank of "no identifier": larger than every real rank.
pub(crate) const NO_RANK: u32 = u32::MAX;

/// The flag of [`Node::child_count`] saying that the children's first bytes are consecutive (as
/// where numbered names branch digit by digit), from the byte in the top 8 bits: the child for byte
/// `b` is the one at `b - that byte`, found without a scan and without reading the children.
const CONSECUTIVE: u32 = 1 << 23;

/// The bits of [`Node::child_count`] that hold the count (more than any input can make: the
/// document limit allows far fewer identifiers).
const COUNT_MASK: u32 = CONSECUTIVE - 1;

#[derive(Debug, Clone, Copy)]
struct Node {
    /// Where the label starts in `labels`; it ends where the next node's starts (labels are laid out in
    /// node order, and a last, empty node closes the array).
    label_start: u32,
    first_child: u32,
    /// The number of children (bits 0–22); [`CONSECUTIVE`] (bit 23) when their first bytes are
    /// consecutive, and then the lowest of them in bits 24–31.
    child_count: u32,
    /// The smallest rank of the identifiers whose string ends exactly here, or [`NO_RANK`].
    rank: u32,
    /// The smallest rank in this node's subtree, itself included.
    subtree_rank: u32,
}

impl Node {
    /// The number of children.
    fn children(&self) -> u32 {
        self.child_count & COUNT_MASK
    }
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
        PrefixTrie::build_nodes(entries, false)
    }

    /// [`PrefixTrie::build`], except that with `bucket_root` the root's children are whole
    /// `BUCKET/` labels (everything up to and including each string's first `/`) instead of single
    /// bytes, for [`PathTrie`] to find by hashing. `entries` must be sorted.
    fn build_nodes(mut entries: Vec<(&[u8], u32)>, bucket_root: bool) -> PrefixTrie {
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
            while bucket_root && end == 0 && lo < hi {
                // Strings sharing a `BUCKET/` start are contiguous in sorted order: anything sorting
                // between two of them starts with the same `BUCKET/`.
                let string = entries[lo].0;
                let bucket = &string[..string.iter().position(|&b| b == b'/').map_or(string.len(), |slash| slash + 1)];
                let group_end = lo + entries[lo..hi].partition_point(|(string, _)| string.starts_with(bucket));
                pending.push((lo..group_end, 0, bucket.len()));
                lo = group_end;
            }
            let (mut low, mut high) = (u8::MAX, 0u8);
            while lo < hi {
                let byte = entries[lo].0[end];
                (low, high) = (low.min(byte), high.max(byte));
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
                first_child: to_u32(first_child),
                child_count: match to_u32(pending.len() - first_child).min(COUNT_MASK) {
                    count if count >= 2 && !(bucket_root && end == 0) && u32::from(high - low) + 1 == count => {
                        count | CONSECUTIVE | u32::from(low) << 24
                    }
                    count => count,
                },
                rank,
                subtree_rank: rank,
            });
            trie.first_bytes.push(label.first().copied().unwrap_or(0));
            trie.labels.extend_from_slice(label);
        }
        for i in (0..trie.nodes.len()).rev() {
            let (first_child, child_count) = (trie.nodes[i].first_child, trie.nodes[i].children());
            let below = (first_child..first_child + child_count)
                .map(|c| trie.nodes[c as usize].subtree_rank)
                .min()
                .unwrap_or(NO_RANK);
            trie.nodes[i].subtree_rank = trie.nodes[i].subtree_rank.min(below);
        }
        // Closes the last real node's label; no node points at it.
        trie.nodes.push(Node {
            label_start: to_u32(trie.labels.len()),
            first_child: 0,
            child_count: 0,
            rank: NO_RANK,
            subtree_rank: NO_RANK,
        });
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
    pub(crate) fn best_rank(&self, request: &[u8], best: u32, segment: bool) -> u32 {
        if self.nodes.is_empty() {
            return best;
        }
        self.walk(0, 0, request, best, segment)
    }

    /// [`PrefixTrie::best_rank`] from node `index`, whose path is `request[..pos]`.
    #[inline]
    fn walk(&self, index: usize, mut pos: usize, request: &[u8], mut best: u32, segment: bool) -> u32 {
        let Some(mut node) = self.nodes.get(index) else { return best };
        loop {
            if node.subtree_rank >= best {
                return best;
            }
            if node.rank < best
                && (!segment
                    || pos == request.len()
                    || request[pos] == b'/'
                    || pos.checked_sub(1).and_then(|end| request.get(end)) == Some(&b'/'))
            {
                best = node.rank;
            }
            let Some(&next) = request.get(pos) else { return best };
            let first = node.first_child as usize;
            let count = node.children() as usize;
            let i = if node.child_count & CONSECUTIVE != 0 {
                let i = usize::from(next.wrapping_sub((node.child_count >> 24) as u8));
                if i >= count {
                    return best;
                }
                i
            } else {
                let children = &self.first_bytes[first..first + count];
                let Some(i) = children.iter().position(|&b| b == next) else { return best };
                i
            };
            let child = &self.nodes[first + i];
            let label = &self.labels[child.label_start as usize..self.nodes[first + i + 1].label_start as usize];
            // The first byte matched among the children: a one-byte label (common where many
            // identifiers branch, digit by digit) needs no comparison.
            if label.len() > 1 && !request.get(pos..pos + label.len()).is_some_and(|r| same_bytes(r, label)) {
                return best;
            }
            pos += label.len();
            node = child;
        }
    }

    /// The label of node `index`.
    fn label(&self, index: u32) -> &[u8] {
        let index = index as usize;
        let (Some(node), Some(next)) = (self.nodes.get(index), self.nodes.get(index + 1)) else { return &[] };
        self.labels.get(node.label_start as usize..next.label_start as usize).unwrap_or(&[])
    }

    /// The heap memory the trie holds, in bytes.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * size_of::<Node>() + self.first_bytes.capacity() + self.labels.capacity()
    }
}

/// A [`PrefixTrie`] over `BUCKET/KEY` strings whose first level, when there are many buckets, is a
/// hash table of buckets.
///
/// A request's bucket is known before the walk starts, and a bucket either matches exactly or not
/// at all, so one hash probe replaces the byte-by-byte levels that would tell hundreds of similar
/// bucket names apart; the walk then starts at the bucket's node, right after its `/`. With few
/// buckets those levels are few and cheaper than hashing, so the plain trie serves.
#[derive(Debug, Clone, Default)]
pub(crate) struct PathTrie {
    trie: PrefixTrie,
    /// The buckets (the root's children) by hash of their `BUCKET/` label: open addressing with linear
    /// probing, at most half full; a slot holds the hash's high 32 bits and the node index plus one
    /// (zero: empty), so that a probe reads one word before it compares a label. Empty when there
    /// are fewer than [`BUCKET_TABLE_MIN`] buckets.
    slots: Box<[u64]>,
    /// Bit `b` set when a bucket starts with byte `b`: most requests for a bucket that no identifier
    /// names are turned away before any hashing.
    bucket_first_bytes: [u64; 4],
    /// Bit `n` set when a `BUCKET/` label is `n` bytes long (bit 63: 63 or more).
    bucket_lengths: u64,
}

/// The number of buckets from which [`PathTrie`] finds them by hashing.
const BUCKET_TABLE_MIN: usize = 64;

impl PathTrie {
    /// Builds the trie from `(BUCKET/KEY, rank)` pairs; every string holds the `/` after its bucket.
    pub(crate) fn build<'s>(entries: impl IntoIterator<Item = (&'s [u8], u32)>) -> PathTrie {
        let mut entries: Vec<(&[u8], u32)> = entries.into_iter().collect();
        entries.sort_unstable();
        let bucket_of = |string: &'s [u8]| string.split(|&b| b == b'/').next().unwrap_or_default();
        let mut bucket_count = 0;
        let mut previous: Option<&[u8]> = None;
        for (string, _) in &entries {
            let bucket = bucket_of(string);
            if previous != Some(bucket) {
                bucket_count += 1;
                previous = Some(bucket);
            }
        }
        if bucket_count < BUCKET_TABLE_MIN {
            return PathTrie { trie: PrefixTrie::build_nodes(entries, false), ..PathTrie::default() };
        }
        let trie = PrefixTrie::build_nodes(entries, true);
        let buckets = trie.nodes.first().map_or(0..0, |root| root.first_child..root.first_child + root.children());
        let mut slots = vec![0u64; (buckets.len() * 2).next_power_of_two()].into_boxed_slice();
        let (mut bucket_first_bytes, mut bucket_lengths) = ([0u64; 4], 0u64);
        let mask = slots.len() - 1;
        for index in buckets {
            let label = trie.label(index);
            let hash = bucket_hash(label);
            let mut at = hash as usize & mask;
            while slots[at] != 0 {
                at = (at + 1) & mask;
            }
            slots[at] = (hash & !0xFFFF_FFFF) | u64::from(index + 1);
            let first = label.first().copied().unwrap_or(0);
            bucket_first_bytes[usize::from(first >> 6)] |= 1 << (first & 63);
            bucket_lengths |= 1 << label.len().min(63);
        }
        PathTrie { trie, slots, bucket_first_bytes, bucket_lengths }
    }

    /// The node of `bucket` (a `BUCKET/` label), if a stored string has it.
    #[inline]
    fn bucket_node(&self, bucket: &[u8]) -> Option<usize> {
        let hash = bucket_hash(bucket);
        let mask = self.slots.len().wrapping_sub(1);
        let mut at = hash as usize & mask;
        loop {
            let slot = *self.slots.get(at)?;
            if slot == 0 {
                return None;
            }
            let index = (slot & 0xFFFF_FFFF) as u32 - 1;
            if slot >> 32 == hash >> 32 {
                let label = self.trie.label(index);
                if label.len() == bucket.len() && same_bytes(label, bucket) {
                    return Some(index as usize);
                }
            }
            at = (at + 1) & mask;
        }
    }

    /// The smallest rank below `best` among stored strings that are a prefix of `request`, or `best`.
    ///
    /// `request` is `BUCKET/KEY` and `request[bucket_len]` its first `/`; `segment` as for
    /// [`PrefixTrie::best_rank`].
    #[inline]
    pub(crate) fn best_rank(&self, request: &[u8], bucket_len: usize, best: u32, segment: bool) -> u32 {
        match self.trie.nodes.first() {
            Some(root) if root.subtree_rank < best => {}
            _ => return best,
        }
        let (start, pos) = if self.slots.is_empty() {
            (0, 0)
        } else {
            let Some(bucket) = request.get(..=bucket_len) else { return best };
            let first = bucket[0];
            if self.bucket_first_bytes[usize::from(first >> 6)] & 1 << (first & 63) == 0
                || self.bucket_lengths & 1 << bucket.len().min(63) == 0
            {
                return best;
            }
            let Some(index) = self.bucket_node(bucket) else { return best };
            (index, bucket.len())
        };
        self.trie.walk(start, pos, request, best, segment)
    }

    /// The heap memory the trie and its bucket table hold, in bytes.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.trie.heap_bytes() + self.slots.len() * size_of::<u64>()
    }
}

/// A fast hash of a `BUCKET/` label for the bucket table: every byte counted, the length mixed in,
/// one folded 64 × 64 → 128-bit product (as in wyhash) for labels of up to 16 bytes. Bucket names come
/// from the configuration, so the table needs speed and spread, not resistance to flooding.
#[inline]
fn bucket_hash(bytes: &[u8]) -> u64 {
    #[cfg(test)]
    if tests::COLLIDING_HASH.with(std::cell::Cell::get) {
        // Every bucket of a length in one probe run with one tag: only the label comparison decides.
        return (bytes.len() as u64) << 40;
    }
    const K0: u64 = 0xa076_1d64_78bd_642f;
    const K1: u64 = 0xe703_7ed1_a0b4_28db;
    const K2: u64 = 0x8ebc_6af0_9c88_c6e3;
    let fold = |a: u64, b: u64| {
        let product = u128::from(a) * u128::from(b);
        (product as u64) ^ ((product >> 64) as u64)
    };
    let load8 = |at| word8(bytes, at);
    let load4 = |at| word4(bytes, at);
    let len = bytes.len();
    let mut state = K0 ^ len as u64;
    let (head, tail) = if len >= 8 {
        // The words between the first and the last 8 bytes, which overlap them at most.
        let mut at = 8;
        while at + 8 < len {
            state = fold(load8(at) ^ K1, state ^ K2);
            at += 8;
        }
        (load8(0), load8(len - 8))
    } else if len >= 4 {
        (u64::from(load4(0)), u64::from(load4(len - 4)))
    } else {
        let byte = |at: usize| u64::from(bytes.get(at).copied().unwrap_or(0));
        (byte(0) | byte(len / 2) << 8 | byte(len.saturating_sub(1)) << 16, 0)
    };
    fold(head ^ K1, tail ^ state)
}

/// The 8 bytes of `bytes` from `at`, little-endian (0 past the end).
#[inline]
fn word8(bytes: &[u8], at: usize) -> u64 {
    bytes.get(at..at + 8).and_then(|w| w.try_into().ok()).map_or(0, u64::from_le_bytes)
}

/// The 4 bytes of `bytes` from `at`, little-endian (0 past the end).
#[inline]
fn word4(bytes: &[u8], at: usize) -> u32 {
    bytes.get(at..at + 4).and_then(|w| w.try_into().ok()).map_or(0, u32::from_le_bytes)
}

/// Whether `a` and `b` hold the same bytes: of equal length and up to 16 bytes, in at most two pairs of
/// word loads, without a call to `memcmp` (most labels are that short).
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n > 16 || n != b.len() {
        a == b
    } else if n >= 8 {
        word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8)
    } else if n >= 4 {
        word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4)
    } else {
        a.iter().zip(b).all(|(x, y)| x == y)
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

    fn path_trie(entries: &[(String, u32)]) -> PathTrie {
        PathTrie::build(entries.iter().map(|(s, r)| (s.as_bytes(), *r)))
    }

    fn bucket_len(request: &str) -> usize {
        request.find('/').unwrap()
    }

    thread_local! {
        /// Makes this thread's bucket hashes collide, to test the label comparison behind the tag.
        pub(super) static COLLIDING_HASH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    #[test]
    fn the_bucket_table_finds_every_bucket_and_only_those() {
        bucket_table_finds_every_bucket_and_only_those();
    }

    #[test]
    fn the_bucket_table_compares_labels_when_hashes_collide() {
        COLLIDING_HASH.with(|c| c.set(true));
        bucket_table_finds_every_bucket_and_only_those();
        path_trie_answers_as_the_plain_trie(BUCKET_TABLE_MIN + 8);
    }

    fn bucket_table_finds_every_bucket_and_only_those() {
        // Enough buckets for long probe runs in the table, with names that differ in one byte.
        let entries: Vec<(String, u32)> = (0..3000).map(|i| (format!("bucket-{i}/k/"), i)).collect();
        let t = path_trie(&entries);
        for i in 0..3000 {
            let hit = format!("bucket-{i}/k/x");
            assert_eq!(t.best_rank(hit.as_bytes(), bucket_len(&hit), NO_RANK, false), i);
            for miss in [format!("bucket-0{i}/k/x"), format!("bucket-{i}x/k/x"), format!("bucket-{i}/j")] {
                assert_eq!(t.best_rank(miss.as_bytes(), bucket_len(&miss), NO_RANK, false), NO_RANK, "{miss}");
            }
        }
        for miss in ["bucket-/k/", "b/k/", "bucket-12345678901234567890/k/"] {
            assert_eq!(t.best_rank(miss.as_bytes(), bucket_len(miss), NO_RANK, false), NO_RANK, "{miss}");
        }
    }

    #[test]
    fn a_bare_bucket_is_a_node_of_the_bucket_level() {
        let entries = vec![("b/".to_owned(), 3), ("b/k".to_owned(), 1), ("bb/".to_owned(), 0)];
        let t = path_trie(&entries);
        assert_eq!(t.best_rank(b"b/", 1, NO_RANK, true), 3);
        assert_eq!(t.best_rank(b"b/kk", 1, NO_RANK, false), 1);
        assert_eq!(t.best_rank(b"b/kk", 1, NO_RANK, true), 3);
        assert_eq!(t.best_rank(b"bb/x", 2, NO_RANK, true), 0);
        assert_eq!(t.best_rank(b"b/kk", 1, 2, false), 1, "improves on a given best");
        assert_eq!(t.best_rank(b"b/kk", 1, 0, false), 0, "never worsens a given best");
        assert_eq!(path_trie(&[]).best_rank(b"b/k", 1, 7, false), 7);
    }

    /// The bucket table and the consecutive-children shortcut change how a lookup gets there, never
    /// what it finds: both tries answer as a scan of every stored string, for strings that branch digit
    /// by digit (consecutive children, with and without gaps) and for those that do not.
    #[test]
    fn the_path_trie_answers_as_the_plain_trie() {
        // Fewer buckets than make a bucket table, and more.
        for buckets in [BUCKET_TABLE_MIN / 4, BUCKET_TABLE_MIN + 8] {
            path_trie_answers_as_the_plain_trie(buckets);
        }
    }

    fn path_trie_answers_as_the_plain_trie(buckets: usize) {
        let mut rng = crate::rng::SplitMix64::new(11);
        let word = |rng: &mut crate::rng::SplitMix64| -> String {
            match rng.below(4) {
                0 => rng.below(1000).to_string(),
                1 => format!("t-{}", rng.below(60)),
                2 => ["a", "ab", "abc", "b", "z", "é"][rng.below(6)].to_owned(),
                _ => format!("{}{}", ["x", "y"][rng.below(2)], rng.below(30)),
            }
        };
        let mut entries = Vec::new();
        for rank in 0..4000u32 {
            let mut s = format!("bk{}/", rng.below(buckets));
            for _ in 0..rng.below(4) {
                s.push_str(&word(&mut rng));
                if rng.below(3) > 0 {
                    s.push('/');
                }
            }
            entries.push((s, rank));
        }
        let plain = PrefixTrie::build(entries.iter().map(|(s, r)| (s.as_bytes(), *r)));
        let path = path_trie(&entries);
        assert_eq!(
            path.slots.is_empty(),
            buckets < BUCKET_TABLE_MIN,
            "the bucket table is built from {BUCKET_TABLE_MIN} buckets"
        );
        for _ in 0..5_000 {
            let mut request = format!("bk{}/", rng.below(buckets + 5));
            for _ in 0..rng.below(5) {
                request.push_str(&word(&mut rng));
                if rng.below(4) > 0 {
                    request.push('/');
                }
            }
            let best = [NO_RANK, rng.below(4000) as u32][rng.below(2)];
            for segment in [false, true] {
                let scan = entries
                    .iter()
                    .filter(|(s, _)| {
                        request.starts_with(s.as_str())
                            && (!segment
                                || s.ends_with('/')
                                || matches!(request.as_bytes().get(s.len()), None | Some(b'/')))
                    })
                    .map(|(_, r)| *r)
                    .fold(best, u32::min);
                let r = request.as_bytes();
                assert_eq!(plain.best_rank(r, best, segment), scan, "{request} from {best}, segment {segment}");
                assert_eq!(path.best_rank(r, bucket_len(&request), best, segment), scan, "{request} (path trie)");
            }
        }
    }

    #[test]
    fn same_bytes_compares_every_length() {
        let text = b"0123456789abcdefghijklmnopqrstuv";
        for n in 0..=text.len() {
            let a = &text[..n];
            assert!(same_bytes(a, a));
            for flip in 0..n {
                let mut b = a.to_vec();
                b[flip] ^= 1;
                assert!(!same_bytes(a, &b), "length {n}, byte {flip}");
            }
        }
        assert!(!same_bytes(b"ab", b"abc"));
    }
}
