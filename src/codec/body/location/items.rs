//! The additional items of a location, held as their validated wire bytes and typed when read.
//!
//! Why bytes and not a `Vec` of typed items: a decoder sees far more reports than anyone reads
//! item by item (the harness's client counts and forwards them, the stress run reads one item,
//! transcripts print a few), and building twelve 40-byte typed values in a heap `Vec` was most of
//! the cost of decoding a report. The decoder still does every check that can fail while it
//! decodes (the walk of the length chain, the table of JT808.md §5.4, duplicates, a cut last
//! item: all in [`Location::issues`](super::Location::issues)), so what is left for a read is a
//! load and a byte swap per value, which cannot fail. A report whose items fit
//! [`INLINE_ITEM_BYTES`] needs no heap memory at all.
//!
//! The bytes are the wire bytes, so equality, hashing and re-encoding are exact by construction.

use std::fmt;

use serde::{Serialize, Serializer};
use smallvec::SmallVec;

use super::item::{LocationItem, item_from_wire};

/// Item bytes held inside the [`Location`](super::Location) itself; more spill to the heap (one
/// allocation). 64 bytes hold the items a 2013 terminal usually sends (mileage, fuel, recorder
/// speed, the signal and IO words, signal strength, satellites: 12 of the 13 items of the
/// `yz-0200-2013` vector, whose 30-byte tyre-pressure item takes the whole vector to 96 bytes and
/// to the heap) and keep a decoded message within three cache lines.
pub const INLINE_ITEM_BYTES: usize = 64;

/// The additional items of a location, in wire order. Read them with [`LocationItems::iter`] (or
/// `for item in &loc.items`); build them with `collect()` or [`LocationItems::push`].
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct LocationItems {
    /// `id, length, value` for each item, as on the wire (the last item may be cut).
    bytes: SmallVec<[u8; INLINE_ITEM_BYTES]>,
}

impl LocationItems {
    /// No items.
    pub const fn new() -> LocationItems {
        LocationItems {
            bytes: SmallVec::new_const(),
        }
    }

    /// Item bytes the decoder has walked (their issues are in the location's `issues`). Up to
    /// [`INLINE_ITEM_BYTES`] they land in the inline buffer (no allocation); a spilled buffer is
    /// reused.
    #[inline(always)]
    pub(super) fn set_validated(&mut self, bytes: &[u8]) {
        self.bytes.clear();
        self.bytes.extend_from_slice(bytes);
    }

    /// No items any more, the buffer kept.
    #[inline(always)]
    pub(super) fn clear(&mut self) {
        self.bytes.clear();
    }

    /// How many items (a cut last item counts). Counted along the length chain: the items are
    /// rarely counted, and a stored count could disagree with the bytes.
    pub fn len(&self) -> usize {
        let (mut p, mut n) = (&self.bytes[..], 0);
        while let [_, len, tail @ ..] = p {
            n += 1;
            p = tail.get(usize::from(*len)..).unwrap_or_default();
        }
        // A lone id byte at the end is a cut item too.
        n + p.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The items, typed, in wire order.
    #[inline]
    pub fn iter(&self) -> Iter<'_> {
        Iter { rest: &self.bytes }
    }

    /// The item at `index`.
    pub fn get(&self, index: usize) -> Option<LocationItem> {
        self.iter().nth(index)
    }

    /// The first item with this id.
    pub fn find(&self, id: u8) -> Option<LocationItem> {
        self.iter().find(|i| i.id == id)
    }

    /// The wire bytes of all items (what follows the basic block).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Appends an item. An item after a cut one would be read as part of the cut one's value, as
    /// it would on the wire.
    pub fn push(&mut self, item: LocationItem) {
        let mut v = Vec::with_capacity(8);
        item.encode(&mut v);
        self.bytes.extend_from_slice(&v);
    }
}

impl FromIterator<LocationItem> for LocationItems {
    fn from_iter<I: IntoIterator<Item = LocationItem>>(iter: I) -> Self {
        let mut items = LocationItems::new();
        items.extend(iter);
        items
    }
}

impl Extend<LocationItem> for LocationItems {
    fn extend<I: IntoIterator<Item = LocationItem>>(&mut self, iter: I) {
        for item in iter {
            self.push(item);
        }
    }
}

impl From<Vec<LocationItem>> for LocationItems {
    fn from(items: Vec<LocationItem>) -> Self {
        items.into_iter().collect()
    }
}

impl<'a> IntoIterator for &'a LocationItems {
    type Item = LocationItem;
    type IntoIter = Iter<'a>;

    #[inline]
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Shown as the typed items (the bytes are an implementation detail).
impl fmt::Debug for LocationItems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A JSON array of the typed items (see [`LocationItem`]'s `Serialize`).
impl Serialize for LocationItems {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// The typed items of [`LocationItems`], read from the bytes one by one.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    rest: &'a [u8],
}

impl Iterator for Iter<'_> {
    type Item = LocationItem;

    #[inline]
    fn next(&mut self) -> Option<LocationItem> {
        let item = match self.rest {
            [] => return None,
            &[id, len, ref tail @ ..] if tail.len() >= usize::from(len) => {
                let (v, next) = tail.split_at(usize::from(len));
                self.rest = next;
                item_from_wire(id, v)
            }
            // JT808.md §5.4: "survive a last item whose declared length runs past the body".
            &[id, ref tail @ ..] => {
                self.rest = &[];
                LocationItem {
                    id,
                    value: super::ItemValue::Truncated {
                        declared_len: tail.first().copied(),
                        raw: tail.get(1..).unwrap_or_default().to_vec(),
                    },
                }
            }
        };
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // At least one item while bytes are left; at most one per two bytes (plus a cut one).
        let n = self.rest.len();
        (usize::from(n > 0), Some(n.div_ceil(2)))
    }
}

impl std::iter::FusedIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::codec::body::location::ItemValue;

    fn item(id: u8, value: ItemValue) -> LocationItem {
        LocationItem { id, value }
    }

    #[test]
    fn built_items_read_back_typed_and_encode_to_wire_bytes() {
        let items: LocationItems = [
            item(0x01, ItemValue::Mileage(11)),
            item(0x30, ItemValue::SignalStrength(30)),
            item(0x5D, ItemValue::Raw(vec![0xAB, 0xCD])),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            items.as_bytes(),
            [0x01, 4, 0, 0, 0, 11, 0x30, 1, 30, 0x5D, 2, 0xAB, 0xCD]
        );
        assert_eq!(items.len(), 3);
        assert_eq!(items.get(1), Some(item(0x30, ItemValue::SignalStrength(30))));
        assert_eq!(items.get(3), None);
        assert_eq!(
            items.find(0x5D).map(|i| i.value),
            Some(ItemValue::Raw(vec![0xAB, 0xCD]))
        );
        assert_eq!(items.find(0x31), None);
        let debug = format!("{items:?}");
        assert!(
            debug.starts_with("[LocationItem { id: 1, value: Mileage(11) }"),
            "{debug}"
        );
        let json = serde_json::to_string(&items).unwrap();
        assert_eq!(
            json,
            r#"[{"id":"0x01","mileage":11},{"id":"0x30","signal_strength":30},{"id":"0x5D","raw":"ABCD"}]"#
        );
    }

    #[test]
    fn a_cut_last_item_is_counted_and_read_as_truncated() {
        for (bytes, declared_len, raw) in [
            (&[0x01, 4, 0, 0, 0, 11, 0x31, 5, 0xFF][..], Some(5), vec![0xFF]),
            (&[0x01, 4, 0, 0, 0, 11, 0x31][..], None, vec![]),
        ] {
            let mut items = LocationItems::new();
            items.set_validated(bytes);
            assert_eq!(items.len(), 2, "{bytes:02X?}");
            assert_eq!(items.iter().count(), 2, "{bytes:02X?}");
            assert_eq!(
                items.get(1).map(|i| i.value),
                Some(ItemValue::Truncated { declared_len, raw }),
                "{bytes:02X?}"
            );
        }
    }

    #[test]
    fn validated_bytes_inline_and_spilled_read_back() {
        for n in [0, 1, 63, 64, 65, 200] {
            let bytes: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let mut items = LocationItems::new();
            items.set_validated(&bytes);
            assert_eq!(items.as_bytes(), &bytes[..], "length {n}");
            assert_eq!(items.bytes.spilled(), n > INLINE_ITEM_BYTES, "length {n}");
            // Again into the same (maybe spilled) buffer, shorter and longer.
            for m in [n / 2, n + 70] {
                let again: Vec<u8> = (0..m).map(|i| (i * 7) as u8).collect();
                items.set_validated(&again);
                assert_eq!(items.as_bytes(), &again[..], "length {n} then {m}");
            }
        }
    }
}
