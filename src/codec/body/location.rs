//! 0x0200 location report (JT808.md §5; body identical in 2013 and 2019): the 28-byte basic block,
//! then additional items `id BYTE, length BYTE, value[length]` to the end of the body.
//!
//! The real frames force a tolerant item walk (JT808.md §5.4): "always trust each item's own length
//! byte. Keep unknown ids as raw bytes. Tolerate duplicate ids ... Tolerate spec ids with non-spec
//! lengths ... Survive a last item whose declared length runs past the body." So nothing after the
//! basic block is fatal: an odd item is kept raw and named in `issues`, and the body still
//! re-encodes to its exact bytes.
//!
//! Hot path: one `Vec` for the items (sized by a first counting pass), typed items hold no heap
//! memory, raw bytes are copied only for items without a typed layout, and `issues` stays an
//! unallocated empty `Vec` for a well-formed report.

use std::mem::MaybeUninit;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<LocationItem>,
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
            decode_items(&b[BASIC_LEN..], base + BASIC_LEN, &mut loc);
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
        items: Vec::new(),
        issues: Vec::new(),
    };

    /// [`Location::decode`] into `self` (which must be [`Location::EMPTY`]), so a location already
    /// where its message will be held is filled there instead of built aside and moved: a move
    /// reads the freshly written narrow fields back with wide loads, which stalls.
    #[inline(always)]
    pub(crate) fn decode_in_place(&mut self, b: &[u8]) -> Result<(), WireError> {
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
                decode_items(&b[BASIC_LEN..], BASIC_LEN, self);
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
                items: Vec::new(),
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
            items: Vec::new(),
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
        for item in &self.items {
            item.encode(out);
        }
    }

    /// The first item with this id.
    pub fn item(&self, id: u8) -> Option<&LocationItem> {
        self.items.iter().find(|i| i.id == id)
    }
}

/// One additional item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationItem {
    /// Item id.
    pub id: u8,
    /// Its value.
    pub value: ItemValue,
}

/// The value of an additional item (JT808.md §5.4). A typed variant exists only for an id whose
/// length matched the table; anything else is [`ItemValue::Raw`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemValue {
    /// 0x01: mileage DWORD, 1/10 km.
    Mileage(u32),
    /// 0x02: fuel WORD, 1/10 L.
    Fuel(u16),
    /// 0x03: speed from the driving recorder WORD, 1/10 km/h.
    RecorderSpeed(u16),
    /// 0x04: id of an alarm event that needs manual confirmation.
    AlarmEventId(u16),
    /// 0x05 (2019): tyre pressure BYTE[30], 0xFF = no data.
    TyrePressure([u8; 30]),
    /// 0x06 (2019): compartment temperature WORD, top bit marks a negative value (kept as on the
    /// wire; JSON shows the signed value).
    CompartmentTemp(u16),
    /// 0x11: overspeed extra, length 1 or 5.
    Overspeed {
        /// 0 none, 1 circle, 2 rectangle, 3 polygon, 4 route.
        area_type: u8,
        /// Area or route id (length 5 only).
        area_id: Option<u32>,
    },
    /// 0x12: in/out area or route.
    AreaRoute {
        /// Position type (as in 0x11).
        area_type: u8,
        /// Area or route id.
        area_id: u32,
        /// 0 in, 1 out.
        direction: u8,
    },
    /// 0x13: route driving time too short / too long.
    RouteTime {
        /// Route segment id.
        route_id: u32,
        /// Driving time, seconds.
        drive_time: u16,
        /// 0 too short, 1 too long.
        result: u8,
    },
    /// 0x14 (JT/T 1078): video alarm bits.
    VideoAlarm(u32),
    /// 0x15 (1078): video signal loss per logical channel, bit n = channel n+1.
    VideoSignalLoss(u32),
    /// 0x16 (1078): video occlusion per logical channel.
    VideoOcclusion(u32),
    /// 0x17 (1078): storage fault, bits 0-11 main storage 1-12, bits 12-15 backup 1-4.
    StorageFault(u16),
    /// 0x18 (1078): abnormal driving, length 2 (yezhihao) or 3 (SmallChi adds a fatigue level).
    AbnormalDriving {
        /// Bits: 0 fatigue, 1 phone call, 2 smoking.
        bits: u16,
        /// Fatigue level (length 3 only).
        fatigue_level: Option<u8>,
    },
    /// 0x25: extended vehicle signal status DWORD.
    VehicleSignal(u32),
    /// 0x2A: IO status WORD.
    IoStatus(u16),
    /// 0x2B: analog quantity, bits 0-15 AD0, 16-31 AD1.
    Analog(u32),
    /// 0x30: wireless signal strength.
    SignalStrength(u8),
    /// 0x31: number of GNSS satellites.
    Satellites(u8),
    /// 0xE0: length of the custom area that follows.
    CustomLen(u8),
    /// Any other id, a spec id with a non-spec length, the active-safety ids 0x64-0x67 (vendors
    /// reuse them for short private values) and the vendor range 0xE1-0xFF: the value bytes.
    Raw(Vec<u8>),
    /// The last item, whose declared length runs past the end of the body (or whose length byte
    /// is missing): the bytes that were there.
    Truncated {
        /// The length byte, if present.
        declared_len: Option<u8>,
        /// The value bytes present.
        raw: Vec<u8>,
    },
}

impl LocationItem {
    /// Appends id, length and value.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.id);
        if let ItemValue::Truncated { declared_len, raw } = &self.value {
            out.extend(declared_len.iter());
            out.extend_from_slice(raw);
            return;
        }
        let len_at = out.len();
        out.push(0);
        self.value.encode_value(out);
        out[len_at] = (out.len() - len_at - 1) as u8;
    }

    /// The value bytes alone (without id and length).
    pub fn value_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        match &self.value {
            ItemValue::Truncated { raw, .. } => v.extend_from_slice(raw),
            other => other.encode_value(&mut v),
        }
        v
    }
}

impl ItemValue {
    fn encode_value(&self, out: &mut Vec<u8>) {
        match *self {
            ItemValue::Mileage(v)
            | ItemValue::VideoAlarm(v)
            | ItemValue::VideoSignalLoss(v)
            | ItemValue::VideoOcclusion(v)
            | ItemValue::VehicleSignal(v)
            | ItemValue::Analog(v) => out.extend_from_slice(&v.to_be_bytes()),
            ItemValue::Fuel(v)
            | ItemValue::RecorderSpeed(v)
            | ItemValue::AlarmEventId(v)
            | ItemValue::CompartmentTemp(v)
            | ItemValue::StorageFault(v)
            | ItemValue::IoStatus(v) => out.extend_from_slice(&v.to_be_bytes()),
            ItemValue::SignalStrength(v) | ItemValue::Satellites(v) | ItemValue::CustomLen(v) => out.push(v),
            ItemValue::TyrePressure(ref a) => out.extend_from_slice(a),
            ItemValue::Overspeed { area_type, area_id } => {
                out.push(area_type);
                if let Some(id) = area_id {
                    out.extend_from_slice(&id.to_be_bytes());
                }
            }
            ItemValue::AreaRoute {
                area_type,
                area_id,
                direction,
            } => {
                out.push(area_type);
                out.extend_from_slice(&area_id.to_be_bytes());
                out.push(direction);
            }
            ItemValue::RouteTime {
                route_id,
                drive_time,
                result,
            } => {
                out.extend_from_slice(&route_id.to_be_bytes());
                out.extend_from_slice(&drive_time.to_be_bytes());
                out.push(result);
            }
            ItemValue::AbnormalDriving { bits, fatigue_level } => {
                out.extend_from_slice(&bits.to_be_bytes());
                out.extend(fatigue_level.iter());
            }
            ItemValue::Raw(ref v) | ItemValue::Truncated { raw: ref v, .. } => out.extend_from_slice(v),
        }
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

#[inline(always)]
fn be16(v: &[u8]) -> u16 {
    u16::from_be_bytes([v[0], v[1]])
}

#[inline(always)]
fn be32(v: &[u8]) -> u32 {
    u32::from_be_bytes([v[0], v[1], v[2], v[3]])
}

/// The typed value of an item whose id and length match the table of JT808.md §5.4, else `None`.
/// Dispatches on the id first (a jump table), then checks the length.
///
/// Writes the item straight into `slot` from each arm (returns whether it did): a value returned
/// and then moved is built in a stack temporary with narrow stores and copied with wide loads,
/// which stalls on store forwarding (measured: half the time of a 12-item report).
#[inline(always)]
fn typed(id: u8, v: &[u8], slot: &mut MaybeUninit<LocationItem>) -> bool {
    use ItemValue as V;
    let n = v.len();
    // Each arm writes its own variant: one write after the match merges all variants into one
    // 40-byte value and copies the bytes no typed variant uses from a stack slot (a store-forward
    // stall again).
    macro_rules! put {
        ($v:expr) => {{
            slot.write(LocationItem { id, value: $v });
        }};
    }
    match id {
        0x01 if n == 4 => put!(V::Mileage(be32(v))),
        0x02 if n == 2 => put!(V::Fuel(be16(v))),
        0x03 if n == 2 => put!(V::RecorderSpeed(be16(v))),
        0x04 if n == 2 => put!(V::AlarmEventId(be16(v))),
        0x05 if n == 30 => {
            let mut a = [0u8; 30];
            a.copy_from_slice(v);
            put!(V::TyrePressure(a))
        }
        0x06 if n == 2 => put!(V::CompartmentTemp(be16(v))),
        0x11 if n == 1 => put!(V::Overspeed {
            area_type: v[0],
            area_id: None,
        }),
        0x11 if n == 5 => put!(V::Overspeed {
            area_type: v[0],
            area_id: Some(be32(&v[1..])),
        }),
        0x12 if n == 6 => put!(V::AreaRoute {
            area_type: v[0],
            area_id: be32(&v[1..]),
            direction: v[5],
        }),
        0x13 if n == 7 => put!(V::RouteTime {
            route_id: be32(v),
            drive_time: be16(&v[4..]),
            result: v[6],
        }),
        0x14 if n == 4 => put!(V::VideoAlarm(be32(v))),
        0x15 if n == 4 => put!(V::VideoSignalLoss(be32(v))),
        0x16 if n == 4 => put!(V::VideoOcclusion(be32(v))),
        0x17 if n == 2 => put!(V::StorageFault(be16(v))),
        0x18 if n == 2 => put!(V::AbnormalDriving {
            bits: be16(v),
            fatigue_level: None,
        }),
        0x18 if n == 3 => put!(V::AbnormalDriving {
            bits: be16(v),
            fatigue_level: Some(v[2]),
        }),
        0x25 if n == 4 => put!(V::VehicleSignal(be32(v))),
        0x2A if n == 2 => put!(V::IoStatus(be16(v))),
        0x2B if n == 4 => put!(V::Analog(be32(v))),
        0x30 if n == 1 => put!(V::SignalStrength(v[0])),
        0x31 if n == 1 => put!(V::Satellites(v[0])),
        0xE0 if n == 1 => put!(V::CustomLen(v[0])),
        _ => return false,
    }
    true
}

/// An item without a typed value: kept raw, and named in `issues` unless its id is one the table
/// leaves opaque (0x64-0x67 active safety, reused by vendors for short values; 0xE1-0xFF vendor).
#[cold]
#[inline(never)]
fn untyped(id: u8, v: &[u8], offset: usize, issues: &mut Vec<LocationIssue>) -> ItemValue {
    let issue = match id {
        0x64..=0x67 | 0xE1..=0xFF => None,
        0x01..=0x06 | 0x11..=0x18 | 0x25 | 0x2A | 0x2B | 0x30 | 0x31 | 0xE0 => Some(IssueKind::NonSpecLength),
        _ => Some(IssueKind::UnknownId),
    };
    if let Some(issue) = issue {
        issues.push(LocationIssue {
            issue,
            id,
            offset,
            len: Some(v.len() as u8),
        });
    }
    ItemValue::Raw(v.to_vec())
}

/// The last item, cut by the end of the body (`rest` starts at its id byte).
#[cold]
#[inline(never)]
fn truncated(rest: &[u8], offset: usize, issues: &mut Vec<LocationIssue>) -> LocationItem {
    let id = rest[0];
    let declared_len = rest.get(1).copied();
    issues.push(LocationIssue {
        issue: IssueKind::Truncated,
        id,
        offset,
        len: declared_len,
    });
    LocationItem {
        id,
        value: ItemValue::Truncated {
            declared_len,
            raw: rest.get(2..).unwrap_or_default().to_vec(),
        },
    }
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

/// Room for the items of the `rest` bytes still to walk, each at least 2 bytes.
#[cold]
#[inline(never)]
fn grow(items: &mut Vec<LocationItem>, rest: usize) {
    items.reserve(rest / 2 + 1);
}

/// Walks the items after the basic block (`b` starts at body offset `base`).
#[inline]
fn decode_items(b: &[u8], base: usize, loc: &mut Location) {
    // One allocation sized from the byte count (no counting pass: walking the length chain twice
    // cost more than the spare slots). A table item takes at least 3 bytes and the usual ones 4
    // to 9, so a report of typical items fits; a denser one grows once.
    let mut items: Vec<LocationItem> = Vec::with_capacity(b.len() / 4 + 1);
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
        let (v, next) = rest.split_at(len);
        let bit = 1u64 << (id & 63);
        let word = if id < 64 {
            &mut seen_low
        } else {
            &mut seen_high[(id >> 6) as usize - 1]
        };
        if *word & bit != 0 {
            duplicate(id, len, base + b.len() - p.len(), &mut loc.issues);
        }
        *word |= bit;
        if items.len() == items.capacity() {
            grow(&mut items, next.len());
        }
        // Each item is written straight into the slot after the last one. A `push` builds the
        // item in a stack temporary with narrow stores and copies it with wide loads, which
        // stalls on store forwarding (measured: half the time of a 12-item report).
        let slot = &mut items.spare_capacity_mut()[0];
        if !typed(id, v, slot) {
            slot.write(LocationItem {
                id,
                value: untyped(id, v, base + b.len() - p.len(), &mut loc.issues),
            });
        }
        // SAFETY: the slot just after the initialised items (in capacity: checked above) was
        // written by `typed` or just above.
        unsafe { items.set_len(items.len() + 1) };
        p = next;
    }
    if !p.is_empty() {
        items.push(truncated(p, base + b.len() - p.len(), &mut loc.issues));
    }
    loc.items = items;
}

/// JSON: `{"id": "0x01", "<name>": value}`, the name from JT808.md §5.4 (`mileage`, `fuel`,
/// `recorder_speed`, `alarm_event_id`, `tyre_pressure` (hex), `compartment_temp` (signed),
/// `overspeed`, `area_route`, `route_time`, `video_alarm`, `video_signal_loss`, `video_occlusion`,
/// `storage_fault`, `abnormal_driving`, `vehicle_signal`, `io_status`, `analog` (`ad0`, `ad1`),
/// `signal_strength`, `satellites`, `custom_len`), or `raw` (hex), or `truncated`
/// (`{"declared_len", "raw"}`).
impl Serialize for LocationItem {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Overspeed {
            area_type: u8,
            #[serde(skip_serializing_if = "Option::is_none")]
            area_id: Option<u32>,
        }
        #[derive(Serialize)]
        struct AreaRoute {
            area_type: u8,
            area_id: u32,
            direction: u8,
        }
        #[derive(Serialize)]
        struct RouteTime {
            route_id: u32,
            drive_time: u16,
            result: u8,
        }
        #[derive(Serialize)]
        struct Abnormal {
            bits: u16,
            #[serde(skip_serializing_if = "Option::is_none")]
            fatigue_level: Option<u8>,
        }
        #[derive(Serialize)]
        struct Analog {
            ad0: u16,
            ad1: u16,
        }
        #[derive(Serialize)]
        struct Truncated {
            #[serde(skip_serializing_if = "Option::is_none")]
            declared_len: Option<u8>,
            raw: String,
        }
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("id", &format_args!("0x{:02X}", self.id).to_string())?;
        match self.value {
            ItemValue::Mileage(v) => m.serialize_entry("mileage", &v)?,
            ItemValue::Fuel(v) => m.serialize_entry("fuel", &v)?,
            ItemValue::RecorderSpeed(v) => m.serialize_entry("recorder_speed", &v)?,
            ItemValue::AlarmEventId(v) => m.serialize_entry("alarm_event_id", &v)?,
            ItemValue::TyrePressure(ref a) => m.serialize_entry("tyre_pressure", &hex::encode_upper(a))?,
            ItemValue::CompartmentTemp(v) => {
                let t = if v & 0x8000 != 0 {
                    -i32::from(v & 0x7FFF)
                } else {
                    i32::from(v)
                };
                m.serialize_entry("compartment_temp", &t)?
            }
            ItemValue::Overspeed { area_type, area_id } => {
                m.serialize_entry("overspeed", &Overspeed { area_type, area_id })?
            }
            ItemValue::AreaRoute {
                area_type,
                area_id,
                direction,
            } => m.serialize_entry(
                "area_route",
                &AreaRoute {
                    area_type,
                    area_id,
                    direction,
                },
            )?,
            ItemValue::RouteTime {
                route_id,
                drive_time,
                result,
            } => m.serialize_entry(
                "route_time",
                &RouteTime {
                    route_id,
                    drive_time,
                    result,
                },
            )?,
            ItemValue::VideoAlarm(v) => m.serialize_entry("video_alarm", &v)?,
            ItemValue::VideoSignalLoss(v) => m.serialize_entry("video_signal_loss", &v)?,
            ItemValue::VideoOcclusion(v) => m.serialize_entry("video_occlusion", &v)?,
            ItemValue::StorageFault(v) => m.serialize_entry("storage_fault", &v)?,
            ItemValue::AbnormalDriving { bits, fatigue_level } => {
                m.serialize_entry("abnormal_driving", &Abnormal { bits, fatigue_level })?
            }
            ItemValue::VehicleSignal(v) => m.serialize_entry("vehicle_signal", &v)?,
            ItemValue::IoStatus(v) => m.serialize_entry("io_status", &v)?,
            ItemValue::Analog(v) => m.serialize_entry(
                "analog",
                &Analog {
                    ad0: v as u16,
                    ad1: (v >> 16) as u16,
                },
            )?,
            ItemValue::SignalStrength(v) => m.serialize_entry("signal_strength", &v)?,
            ItemValue::Satellites(v) => m.serialize_entry("satellites", &v)?,
            ItemValue::CustomLen(v) => m.serialize_entry("custom_len", &v)?,
            ItemValue::Raw(ref v) => m.serialize_entry("raw", &hex::encode_upper(v))?,
            ItemValue::Truncated { declared_len, ref raw } => m.serialize_entry(
                "truncated",
                &Truncated {
                    declared_len,
                    raw: hex::encode_upper(raw),
                },
            )?,
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(loc.items[0].value, ItemValue::Raw(vec![2]));
        assert_eq!(
            loc.items[4].value,
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
    fn items_denser_than_the_first_allocation_all_kept() {
        // 40 one-byte items (3 bytes each) then 10 empty ones (2 bytes each): more items than the
        // first allocation (one per 4 bytes) holds.
        let mut body = YZ[..56].to_string();
        for i in 0..40u8 {
            body += &format!("3001{i:02x}");
        }
        for _ in 0..10 {
            body += "7000";
        }
        let loc = round_trip(&body);
        assert_eq!(loc.items.len(), 50);
        assert_eq!(loc.items[39].value, ItemValue::SignalStrength(39));
        assert_eq!(loc.items[49].value, ItemValue::Raw(vec![]));
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
        assert_eq!(loc.items[0].value, ItemValue::Raw(vec![0, 0, 0x20, 0xD0]));
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
