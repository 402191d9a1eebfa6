//! 0x0200 location report (JT808.md §5; body identical in 2013 and 2019): the 28-byte basic block,
//! then additional items `id BYTE, length BYTE, value[length]` to the end of the body.
//!
//! The real frames force a tolerant item walk (JT808.md §5.4): "always trust each item's own length
//! byte. Keep unknown ids as raw bytes. Tolerate duplicate ids ... Tolerate spec ids with non-spec
//! lengths ... Survive a last item whose declared length runs past the body." So nothing after the
//! basic block is fatal: an odd item is kept raw and named in `issues`, and the body still
//! re-encodes to its exact bytes.
//!
//! Decoding checks every item (the walk below); the items are then held as their validated wire
//! bytes and typed when read ([`items`]), and a decoder that has seen a report's item layout before
//! checks it without walking the chain ([`layout`]). A well-formed report with the usual items
//! decodes with no heap allocation: the bytes fit inline and `issues` stays an unallocated `Vec`.
//!
//! - [`item`]: one item: the typed values of the §5.4 table, wire bytes, JSON.
//! - [`items`]: [`LocationItems`], the item bytes and their typed iterator.
//! - [`layout`]: the layouts a decoder remembers.

pub mod item;
pub mod items;
pub mod layout;

use serde::{Serialize, Serializer};

pub use item::{ItemValue, LocationItem};
pub use items::{INLINE_ITEM_BYTES, LocationItems};
pub use layout::LayoutCache;

use item::has_typed_layout;
use layout::Recorder;

use crate::codec::wire::{BcdTime, Reader, WireError};

/// A location: the basic block and its additional items. Also the element of 0x0704 and (basic
/// block only) part of 0x0801.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// Alarm flags (JT808.md §5.2).
    pub alarm: u32,
    /// Status flags (§5.3): bit 2 south latitude, bit 3 west longitude.
    pub status: u32,
    /// Latitude, degrees x 10^6, unsigned (hemisphere in status bit 2).
    pub lat: u32,
    /// Longitude, degrees x 10^6, unsigned (hemisphere in status bit 3).
    pub lng: u32,
    /// Altitude, metres.
    pub altitude: u16,
    /// Speed, 1/10 km/h.
    pub speed: u16,
    /// Direction 0-359, 0 = north, clockwise.
    pub direction: u16,
    /// Time, YYMMDDhhmmss GMT+8.
    pub time: BcdTime,
    /// Additional items, in wire order.
    #[serde(skip_serializing_if = "LocationItems::is_empty")]
    pub items: LocationItems,
    /// Items that were not as the table says (kept raw in `items`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub issues: Vec<LocationIssue>,
}

/// Length of the basic block.
pub const BASIC_LEN: usize = 28;

impl Location {
    /// Message id of the location report.
    pub const ID: u16 = 0x0200;

    /// Decodes a whole 0x0200 body.
    pub fn decode(b: &[u8]) -> Result<Location, WireError> {
        Location::decode_at(b, 0)
    }

    /// Decodes a location block that starts at body offset `base` (offsets in errors and issues
    /// are body offsets). Fails only when the 28-byte basic block is cut.
    pub fn decode_at(b: &[u8], base: usize) -> Result<Location, WireError> {
        let mut loc = Location::decode_basic(&mut Reader::at(b, base))?;
        if b.len() > BASIC_LEN {
            let area = &b[BASIC_LEN..];
            walk(area, base + BASIC_LEN, &mut loc.issues, &mut ());
            loc.items.set_validated(area);
        }
        Ok(loc)
    }

    /// An all-zero location without items: the placeholder [`Location::decode_in_place`] fills.
    pub(crate) const EMPTY: Location = Location {
        alarm: 0,
        status: 0,
        lat: 0,
        lng: 0,
        altitude: 0,
        speed: 0,
        direction: 0,
        time: BcdTime([0; 6]),
        items: LocationItems::new(),
        issues: Vec::new(),
    };

    /// Forgets the items and issues, keeping their buffers, so [`Location::decode_in_place`] can
    /// fill this location again (it writes every field of the basic block).
    #[inline(always)]
    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.issues.clear();
    }

    /// [`Location::decode`] into `self` (which must be [`Location::EMPTY`] or cleared with
    /// [`Location::clear`]), so a location already
    /// where its message will be held is filled there instead of built aside and moved: a move
    /// reads the freshly written narrow fields back with wide loads, which stalls. The items are
    /// checked against the decoder's remembered layouts first (see [`layout`]).
    #[inline(always)]
    pub(crate) fn decode_in_place(&mut self, b: &[u8], layouts: &mut LayoutCache) -> Result<(), WireError> {
        if let Some(a) = b.first_chunk::<BASIC_LEN>() {
            let w = |i: usize| u32::from_be_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
            let h = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
            self.alarm = w(0);
            self.status = w(4);
            self.lat = w(8);
            self.lng = w(12);
            self.altitude = h(16);
            self.speed = h(18);
            self.direction = h(20);
            self.time = BcdTime([a[22], a[23], a[24], a[25], a[26], a[27]]);
            if b.len() > BASIC_LEN {
                let area = &b[BASIC_LEN..];
                if !layouts.knows(area) {
                    let mut rec = Recorder::new(area.len());
                    walk(area, BASIC_LEN, &mut self.issues, &mut rec);
                    if self.issues.is_empty() {
                        layouts.learn(rec, area.len());
                    }
                }
                self.items.set_validated(area);
            }
            Ok(())
        } else {
            Location::decode(b).map(|l| *self = l)
        }
    }

    /// Reads the 28-byte basic block only (0x0801 carries no items).
    #[inline]
    pub fn decode_basic(r: &mut Reader<'_>) -> Result<Location, WireError> {
        if r.remaining() >= BASIC_LEN {
            // One bounds check for the whole block; the per-field reads below only run to name
            // the field a short body ends in.
            let a: [u8; BASIC_LEN] = r.array("basic")?;
            let w = |i: usize| u32::from_be_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
            let h = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
            return Ok(Location {
                alarm: w(0),
                status: w(4),
                lat: w(8),
                lng: w(12),
                altitude: h(16),
                speed: h(18),
                direction: h(20),
                time: BcdTime([a[22], a[23], a[24], a[25], a[26], a[27]]),
                items: LocationItems::new(),
                issues: Vec::new(),
            });
        }
        Ok(Location {
            alarm: r.u32("alarm")?,
            status: r.u32("status")?,
            lat: r.u32("lat")?,
            lng: r.u32("lng")?,
            altitude: r.u16("altitude")?,
            speed: r.u16("speed")?,
            direction: r.u16("direction")?,
            time: r.bcd_time("time")?,
            items: LocationItems::new(),
            issues: Vec::new(),
        })
    }

    /// Appends the basic block and the items.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.alarm.to_be_bytes());
        out.extend_from_slice(&self.status.to_be_bytes());
        out.extend_from_slice(&self.lat.to_be_bytes());
        out.extend_from_slice(&self.lng.to_be_bytes());
        out.extend_from_slice(&self.altitude.to_be_bytes());
        out.extend_from_slice(&self.speed.to_be_bytes());
        out.extend_from_slice(&self.direction.to_be_bytes());
        self.time.encode(out);
        out.extend_from_slice(self.items.as_bytes());
    }

    /// The first item with this id.
    pub fn item(&self, id: u8) -> Option<LocationItem> {
        self.items.find(id)
    }
}

/// What was odd about an item. The item is still kept (raw) and the body re-encodes exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueKind {
    /// An id not in the table of JT808.md §5.4.
    UnknownId,
    /// An id seen earlier in the same report (both kept, in order).
    DuplicateId,
    /// A spec id whose length is not the table's.
    NonSpecLength,
    /// The last item runs past the end of the body.
    Truncated,
}

/// An item that was not as the table says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LocationIssue {
    /// What was odd.
    pub issue: IssueKind,
    /// The item id.
    #[serde(serialize_with = "ser_id8")]
    pub id: u8,
    /// Body offset of the item's id byte.
    pub offset: usize,
    /// The item's declared length (absent when the length byte itself is missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub len: Option<u8>,
}

fn ser_id8<S: Serializer>(id: &u8, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("0x{id:02X}"))
}

/// An item without a typed value is named in `issues` unless its id is one the table leaves
/// opaque (0x64-0x67 active safety, reused by vendors for short values; 0xE1-0xFF vendor).
#[cold]
#[inline(never)]
fn untyped(id: u8, len: usize, offset: usize, issues: &mut Vec<LocationIssue>) {
    let issue = match id {
        0x64..=0x67 | 0xE1..=0xFF => return,
        0x01..=0x06 | 0x11..=0x18 | 0x25 | 0x2A | 0x2B | 0x30 | 0x31 | 0xE0 => IssueKind::NonSpecLength,
        _ => IssueKind::UnknownId,
    };
    issues.push(LocationIssue {
        issue,
        id,
        offset,
        len: Some(len as u8),
    });
}

/// The last item, cut by the end of the body (`rest` starts at its id byte).
#[cold]
#[inline(never)]
fn truncated(rest: &[u8], offset: usize, issues: &mut Vec<LocationIssue>) {
    issues.push(LocationIssue {
        issue: IssueKind::Truncated,
        id: rest[0],
        offset,
        len: rest.get(1).copied(),
    });
}

#[cold]
#[inline(never)]
fn duplicate(id: u8, len: usize, offset: usize, issues: &mut Vec<LocationIssue>) {
    issues.push(LocationIssue {
        issue: IssueKind::DuplicateId,
        id,
        offset,
        len: Some(len as u8),
    });
}

/// Checks the items after the basic block (`b` starts at body offset `base`): follows the length
/// chain, looks every id and length up in the table of JT808.md §5.4 and notes duplicates and a
/// cut last item in `issues` (in wire order; an item with two issues gets its duplicate first).
/// Tells `rec` where each whole item sits.
#[inline]
fn walk<R: Record>(b: &[u8], base: usize, issues: &mut Vec<LocationIssue>, rec: &mut R) {
    // Duplicate ids: a bit per id. Ids below 64 (all but 0xE0 and the vendor ids of the table)
    // live in a register; the rest in a small array.
    let mut seen_low = 0u64;
    let mut seen_high = [0u64; 3];
    let mut p = b;
    while let [id, len, rest @ ..] = p {
        let (id, len) = (*id, *len as usize);
        if rest.len() < len {
            break;
        }
        let at = b.len() - p.len();
        rec.item(at, id, len);
        let bit = 1u64 << (id & 63);
        let word = if id < 64 {
            &mut seen_low
        } else {
            &mut seen_high[(id >> 6) as usize - 1]
        };
        if *word & bit != 0 {
            duplicate(id, len, base + at, issues);
        }
        *word |= bit;
        if !has_typed_layout(id, len) {
            untyped(id, len, base + at, issues);
        }
        p = &rest[len..];
    }
    if !p.is_empty() {
        truncated(p, base + b.len() - p.len(), issues);
    }
}

/// Where the walk found each item: nothing for a plain decode, a [`Recorder`] when a decoder will
/// remember the layout.
trait Record {
    fn item(&mut self, at: usize, id: u8, len: usize);
}

impl Record for () {
    #[inline(always)]
    fn item(&mut self, _: usize, _: u8, _: usize) {}
}

impl Record for Recorder {
    #[inline(always)]
    fn item(&mut self, at: usize, id: u8, len: usize) {
        Recorder::item(self, at, id, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::body::location::item::ItemValue;

    /// yz-0200-2013's body: basic block + 13 items including 0x05 tyre pressure.
    const YZ: &str = "000004000000080006eeb6ad02633df701380003006320070719235901040000000b02020016030200210402002c051e3737370000000000000000000000000000000000000000000000000000001105420000004212064d0000004d4d1307000000580058582504000000632a02000a2b040000001430011e310128";

    fn round_trip(hex_body: &str) -> Location {
        let b = hex::decode(hex_body).unwrap();
        let loc = Location::decode(&b).unwrap();
        let mut out = Vec::new();
        loc.encode(&mut out);
        assert_eq!(hex::encode(out), hex_body, "re-encodes exactly");
        loc
    }

    #[test]
    fn basic_block_and_every_spec_item_are_typed() {
        let loc = round_trip(YZ);
        assert_eq!(
            (loc.alarm, loc.status, loc.lat, loc.lng),
            (1024, 2048, 116307629, 40058359)
        );
        assert_eq!((loc.altitude, loc.speed, loc.direction), (312, 3, 99));
        assert_eq!(loc.time.to_string(), "2020-07-07 19:23:59");
        assert_eq!(loc.items.len(), 13);
        assert!(loc.issues.is_empty(), "{:?}", loc.issues);
        assert_eq!(loc.item(0x01).unwrap().value, ItemValue::Mileage(11));
        assert_eq!(
            loc.item(0x11).unwrap().value,
            ItemValue::Overspeed {
                area_type: 0x42,
                area_id: Some(0x42)
            }
        );
        assert_eq!(
            loc.item(0x13).unwrap().value,
            ItemValue::RouteTime {
                route_id: 0x58,
                drive_time: 0x58,
                result: 0x58
            }
        );
        assert!(loc.items.iter().all(|i| !matches!(i.value, ItemValue::Raw(_))));
        let json = serde_json::to_value(&loc).unwrap();
        assert_eq!(json["items"][0], serde_json::json!({"id": "0x01", "mileage": 11}));
        assert_eq!(
            json["items"][11],
            serde_json::json!({"id": "0x30", "signal_strength": 30})
        );
    }

    #[test]
    fn odd_items_are_kept_raw_and_reported() {
        // basic block, then: 0x17 with length 1 (spec: 2), 0x5D unknown, 0x01 twice, then 0x31
        // declaring 5 bytes with 2 present.
        let basic = &YZ[..56];
        let body = format!(
            "{basic}170102{}{}{}{}",
            "5d02abcd", "010400000001", "010400000002", "310501ff"
        );
        let loc = round_trip(&body);
        let kinds: Vec<_> = loc.issues.iter().map(|i| (i.issue, i.id, i.offset)).collect();
        assert_eq!(
            kinds,
            [
                (IssueKind::NonSpecLength, 0x17, 28),
                (IssueKind::UnknownId, 0x5D, 31),
                (IssueKind::DuplicateId, 0x01, 41),
                (IssueKind::Truncated, 0x31, 47),
            ]
        );
        assert_eq!(loc.items.get(0).unwrap().value, ItemValue::Raw(vec![2]));
        assert_eq!(
            loc.items.get(4).unwrap().value,
            ItemValue::Truncated {
                declared_len: Some(5),
                raw: vec![1, 0xFF]
            }
        );
        let json = serde_json::to_value(&loc).unwrap();
        assert_eq!(
            json["issues"][0],
            serde_json::json!({"issue": "non_spec_length", "id": "0x17", "offset": 28, "len": 1})
        );
    }

    #[test]
    fn many_short_items_are_all_kept() {
        // 40 one-byte items (3 bytes each) then 10 empty ones (2 bytes each): 140 item bytes, so
        // held on the heap, not inline.
        let mut body = YZ[..56].to_string();
        for i in 0..40u8 {
            body += &format!("3001{i:02x}");
        }
        for _ in 0..10 {
            body += "7000";
        }
        let loc = round_trip(&body);
        assert_eq!(loc.items.len(), 50);
        assert_eq!(loc.items.get(39).unwrap().value, ItemValue::SignalStrength(39));
        assert_eq!(loc.items.get(49).unwrap().value, ItemValue::Raw(vec![]));
        assert_eq!(
            loc.issues.len(),
            39 + 10 + 9,
            "39 duplicate 0x30, 10 unknown 0x70, 9 duplicate 0x70"
        );
    }

    #[test]
    fn a_lone_id_byte_at_the_end_is_kept() {
        let body = format!("{}01", &YZ[..56]);
        let loc = round_trip(&body);
        assert_eq!(loc.issues[0].len, None);
        assert_eq!(loc.issues[0].issue, IssueKind::Truncated);
    }

    #[test]
    fn vendor_reuse_of_active_safety_ids_is_raw_without_an_issue() {
        let body = format!("{}6404000020d0650100", &YZ[..56]);
        let loc = round_trip(&body);
        assert!(loc.issues.is_empty());
        assert_eq!(loc.items.get(0).unwrap().value, ItemValue::Raw(vec![0, 0, 0x20, 0xD0]));
    }

    #[test]
    fn a_cut_basic_block_names_the_field_and_offset() {
        let b = hex::decode(&YZ[..38]).unwrap();
        assert_eq!(
            Location::decode(&b).unwrap_err().to_string(),
            "speed at body byte 18: needs 2 bytes, 1 left"
        );
    }

    #[test]
    fn negative_compartment_temperature_shows_signed() {
        let body = format!("{}06028005", &YZ[..56]);
        let loc = round_trip(&body);
        let json = serde_json::to_value(&loc).unwrap();
        assert_eq!(json["items"][0]["compartment_temp"], -5);
    }
}
