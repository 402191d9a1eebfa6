//! The packet indices a reassembly report names as missing.

use std::ops::RangeInclusive;

use serde::Serialize;

/// The packet indices a group never received, as inclusive ranges (one per gap) and their count.
///
/// Ranges, not a list: a group declares up to 65,535 packets, so a hostile stream of one-packet
/// groups would otherwise make every report 65,534 indices long (460 KB of input once gave 7.65 GB
/// of JSON). A report is linear in the packets received, never in the declared total. Serialised
/// as `"missing": [[2, 5], [9, 9]], "missing_count": 5`.
#[derive(Clone, PartialEq, Eq, Default, Serialize)]
pub struct Missing {
    /// The gaps, ascending and disjoint, never adjacent.
    #[serde(rename = "missing", serialize_with = "ser_ranges")]
    ranges: Vec<RangeInclusive<u16>>,
    /// Indices in all the gaps.
    #[serde(rename = "missing_count")]
    count: u32,
}

impl Missing {
    /// From indices in any order (duplicates ignored).
    pub fn from_indices(indices: impl IntoIterator<Item = u16>) -> Missing {
        let mut all: Vec<u16> = indices.into_iter().collect();
        all.sort_unstable();
        all.dedup();
        let mut m = Missing::default();
        for i in all {
            m.push(i..=i);
        }
        m
    }

    /// Adds a gap above every gap held (merged with the last one when adjacent).
    pub(super) fn push(&mut self, gap: RangeInclusive<u16>) {
        if gap.is_empty() {
            return;
        }
        self.count += u32::from(gap.end() - gap.start()) + 1;
        match self.ranges.last_mut() {
            Some(last) if last.end().checked_add(1) == Some(*gap.start()) => *last = *last.start()..=*gap.end(),
            _ => self.ranges.push(gap),
        }
    }

    /// The gaps as inclusive ranges, ascending.
    pub fn ranges(&self) -> &[RangeInclusive<u16>] {
        &self.ranges
    }

    /// How many indices are missing.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Nothing is missing.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether `index` is missing.
    pub fn contains(&self, index: u16) -> bool {
        let at = self.ranges.partition_point(|r| *r.end() < index);
        self.ranges.get(at).is_some_and(|r| r.contains(&index))
    }

    /// Every missing index, ascending (lazily: the count may be large).
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.ranges.iter().flat_map(|r| r.clone())
    }

    /// The missing indices in lists of at most `n` (`n` >= 1), ascending: one list per 0x8003
    /// request, whose count field limits how many it can name.
    pub fn chunks(&self, n: usize) -> impl Iterator<Item = Vec<u16>> + '_ {
        let n = n.max(1);
        let mut it = self.iter();
        std::iter::from_fn(move || {
            let chunk: Vec<u16> = it.by_ref().take(n).collect();
            (!chunk.is_empty()).then_some(chunk)
        })
    }
}

/// Compact: single indices as `5`, gaps as `2..=4`, so a debug print stays as short as the JSON.
impl std::fmt::Debug for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut l = f.debug_list();
        for r in &self.ranges {
            if r.start() == r.end() {
                l.entry(r.start());
            } else {
                l.entry(r);
            }
        }
        l.finish()
    }
}

/// Compares the indices (for tests and callers holding a list).
impl<const N: usize> PartialEq<[u16; N]> for Missing {
    fn eq(&self, other: &[u16; N]) -> bool {
        self.len() == N && self.iter().eq(other.iter().copied())
    }
}

/// Each gap as a two-element array `[first, last]`.
fn ser_ranges<S: serde::Serializer>(ranges: &[RangeInclusive<u16>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(ranges.iter().map(|r| [*r.start(), *r.end()]))
}
