//! Remembered 0x0200 item layouts: the decoder's fast path for the additional items.
//!
//! The items after the basic block are a chain (`id BYTE, length BYTE, value[length]`, JT808.md
//! §5.4): where item k+1 starts is known only once item k's length byte is read, so a walk is a
//! serial chain of dependent loads, and for a 12-item report it was most of the decode time. But a
//! terminal's firmware sends the same items with the same lengths in every report (the values
//! change, the layout does not). So a [`Decoder`](crate::codec::Decoder) remembers the last few
//! layouts it walked, and checks a new report against them with a byte mask: the total length,
//! then the id and length bytes at every remembered position, 8 bytes at a time with no
//! dependency between the steps. A match is exactly what the walk would have found (the walk is
//! determined by those bytes), so the report needs no walk; anything else takes the walk, which
//! also learns the layout.
//!
//! Only layouts without any [`issues`](super::Location::issues) are remembered, so the fast path
//! needs no duplicate or truncation bookkeeping: identical id and length bytes at identical places
//! give identical (empty) issues. The equivalence is checked by a property test in
//! `tests/codec_props.rs` on reports that differ from a remembered one in a few bytes or in length.

/// Longest item area a layout can remember (positions then fit a byte); a longer one always takes
/// the walk.
pub const MAX_AREA: usize = 255;

/// Layouts remembered per decoder (replaced round-robin): enough for the few firmware versions
/// that share one connection, small enough that a miss costs little.
pub const LAYOUTS: usize = 4;

/// A layout being recorded, as a byte mask over the item area: the id and length bytes of every
/// item are masked in with the values they must have, the value bytes masked out.
#[derive(Debug, Clone)]
struct Masks {
    /// 0xFF over each id and length byte, 0 elsewhere.
    mask: [u8; MAX_AREA + 1],
    /// The id and length bytes, 0 elsewhere.
    want: [u8; MAX_AREA + 1],
}

impl Masks {
    const EMPTY: Masks = Masks {
        mask: [0; MAX_AREA + 1],
        want: [0; MAX_AREA + 1],
    };
}

/// One remembered layout: the masks of an item area of `len` bytes, cut to that length (a
/// terminal's area is tens of bytes, the recording room is 512), mask then want. Checking a report
/// is then a few 8-byte AND/XOR steps with no dependency between them.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// `mask[..len]` then `want[..len]`; never empty (an empty area is not remembered).
    masks: Box<[u8]>,
}

impl Layout {
    /// Whether `area` has this layout: same length, and the same id and length bytes at every
    /// item position.
    #[inline(always)]
    fn matches(&self, area: &[u8]) -> bool {
        let n = area.len();
        if n * 2 != self.masks.len() || n == 0 {
            return false;
        }
        let (mask, want) = self.masks.split_at(n);
        if n < 8 {
            return area.iter().zip(mask).zip(want).all(|((a, m), w)| a & m == *w);
        }
        let word = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let differs = |i: usize| (word(area, i) & word(mask, i)) ^ word(want, i);
        // Whole words, then the last 8 bytes (overlapping the last whole word when `n` is not a
        // multiple of 8), so no byte is read past the area.
        let mut diff = differs(n - 8);
        let mut i = 0;
        while i + 8 < n {
            diff |= differs(i);
            i += 8;
        }
        diff == 0
    }
}

/// Records a layout while the walk goes, item by item; gives up when the area is too long to
/// remember.
#[derive(Debug)]
pub(crate) struct Recorder {
    masks: Masks,
    ok: bool,
}

impl Recorder {
    /// A recorder for an item area of `len` bytes.
    #[inline(always)]
    pub(crate) fn new(len: usize) -> Recorder {
        Recorder {
            masks: Masks::EMPTY,
            ok: len > 0 && len <= MAX_AREA,
        }
    }

    /// The walk found item `id` of `len` value bytes with its id byte at `at`.
    #[inline(always)]
    pub(crate) fn item(&mut self, at: usize, id: u8, len: usize) {
        if self.ok && at < MAX_AREA {
            self.masks.mask[at] = 0xFF;
            self.masks.mask[at + 1] = 0xFF;
            self.masks.want[at] = id;
            self.masks.want[at + 1] = len as u8;
        }
    }

    /// The finished layout of an area of `len` bytes, if it can be remembered.
    #[inline(always)]
    fn finish(self, len: usize) -> Option<Layout> {
        self.ok.then(|| Layout {
            masks: [&self.masks.mask[..len], &self.masks.want[..len]]
                .concat()
                .into_boxed_slice(),
        })
    }
}

/// The layouts a decoder remembers. See the module doc.
#[derive(Debug, Clone, Default)]
pub struct LayoutCache {
    /// Up to [`LAYOUTS`], each allocated when first learned (twice its area's length): a decoder
    /// that never sees a 0x0200 with items (the gateway's, reading commands) holds none, one that
    /// serves a single firmware holds one.
    slots: Vec<Layout>,
    /// The slot the next learned layout goes to.
    next: usize,
    /// The slot that matched last.
    last: usize,
    hits: u64,
    misses: u64,
}

impl LayoutCache {
    /// Whether `area` has a remembered layout (so it has no issues and needs no walk).
    #[inline(always)]
    pub(crate) fn knows(&mut self, area: &[u8]) -> bool {
        // The layout that matched last is tried first: a connection usually carries one terminal
        // or one firmware, so that is nearly always the one.
        let n = self.slots.len();
        for k in 0..n {
            // (last + k) mod n without a division: both terms are below n.
            let i = if self.last + k >= n {
                self.last + k - n
            } else {
                self.last + k
            };
            if self.slots[i].matches(area) {
                self.last = i;
                self.hits += 1;
                return true;
            }
        }
        self.misses += 1;
        false
    }

    /// Remembers the layout a walk recorded (when it had no issues), replacing the oldest.
    #[cold]
    pub(crate) fn learn(&mut self, rec: Recorder, len: usize) {
        if let Some(layout) = rec.finish(len) {
            if self.slots.len() < LAYOUTS {
                // Exactly one more: `push` alone would reserve room for four at once.
                self.slots.reserve_exact(1);
                self.slots.push(layout);
            } else {
                self.slots[self.next] = layout;
            }
            self.last = self.next;
            self.next = (self.next + 1) % LAYOUTS;
        }
    }

    /// Reports checked against a remembered layout and found to have it.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Reports that took the walk.
    pub fn misses(&self) -> u64 {
        self.misses
    }
}
