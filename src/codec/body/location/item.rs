//! One additional item of a 0x0200 report (JT808.md §5.4): its typed value, its wire bytes and its
//! JSON. The table of ids and lengths lives here once: [`has_typed_layout`] answers it for the
//! decoder's walk, [`item_from_wire`] builds the value when an item is read.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

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

/// The item read from its wire parts: typed when its id and length match the table, else raw.
#[inline(always)]
pub(super) fn item_from_wire(id: u8, v: &[u8]) -> LocationItem {
    let mut item = LocationItem {
        id,
        value: ItemValue::CustomLen(0),
    };
    write_value(id, v, &mut item.value);
    item
}

/// An item without a typed layout: its bytes (out of line, it allocates).
#[cold]
#[inline(never)]
fn raw(v: &[u8]) -> ItemValue {
    ItemValue::Raw(v.to_vec())
}

/// Whether an item with this id and value length has a typed value ([`item_from_wire`] builds a typed value):
/// the table of JT808.md §5.4, without building the value. The decoder's walk asks this for every
/// item; anything else is raw and (outside the vendor ids) an issue.
#[inline(always)]
pub(super) fn has_typed_layout(id: u8, n: usize) -> bool {
    match id {
        0x01 | 0x14..=0x16 | 0x25 | 0x2B => n == 4,
        0x02..=0x04 | 0x06 | 0x17 | 0x2A => n == 2,
        0x05 => n == 30,
        0x11 => n == 1 || n == 5,
        0x12 => n == 6,
        0x13 => n == 7,
        0x18 => n == 2 || n == 3,
        0x30 | 0x31 | 0xE0 => n == 1,
        _ => false,
    }
}

#[inline(always)]
fn be16(v: &[u8]) -> u16 {
    u16::from_be_bytes([v[0], v[1]])
}

#[inline(always)]
fn be32(v: &[u8]) -> u32 {
    u32::from_be_bytes([v[0], v[1], v[2], v[3]])
}

/// Writes the item's value into `slot`: its typed value when its id and length match the table of
/// JT808.md §5.4, else its raw bytes. [`has_typed_layout`] must agree (a unit test checks every id
/// and length).
///
/// Each arm assigns its own variant to the slot in place. A value returned and moved (or one
/// write after the match) is built in a stack temporary with narrow stores and copied out with
/// wide loads, which stalls on store forwarding (`decode_read` in benches/decode.rs measures it).
#[inline(always)]
fn write_value(id: u8, v: &[u8], slot: &mut ItemValue) {
    use ItemValue as V;
    let n = v.len();
    macro_rules! put {
        ($v:expr) => {
            *slot = $v
        };
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
        _ => put!(raw(v)),
    }
}

// The JSON objects of the structured item values (see `LocationItem`'s `Serialize`).

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

/// JSON: `{"id": "0x01", "<name>": value}`, the name from JT808.md §5.4 (`mileage`, `fuel`,
/// `recorder_speed`, `alarm_event_id`, `tyre_pressure` (hex), `compartment_temp` (signed),
/// `overspeed`, `area_route`, `route_time`, `video_alarm`, `video_signal_loss`, `video_occlusion`,
/// `storage_fault`, `abnormal_driving`, `vehicle_signal`, `io_status`, `analog` (`ad0`, `ad1`),
/// `signal_strength`, `satellites`, `custom_len`), or `raw` (hex), or `truncated`
/// (`{"declared_len", "raw"}`).
impl Serialize for LocationItem {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
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

    #[test]
    fn the_layout_table_agrees_with_the_typed_values() {
        for id in 0..=255u8 {
            for n in 0..=40 {
                let item = item_from_wire(id, &vec![0x5A; n]);
                assert_eq!(
                    has_typed_layout(id, n),
                    !matches!(item.value, ItemValue::Raw(_)),
                    "id 0x{id:02X} length {n}: {item:?}"
                );
            }
        }
    }

    #[test]
    fn every_typed_value_reencodes_to_its_bytes() {
        for id in 0..=255u8 {
            for n in 0..=40 {
                let v: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37) ^ id).collect();
                let item = item_from_wire(id, &v);
                assert_eq!(item.value_bytes(), v, "id 0x{id:02X} length {n}");
            }
        }
    }
}
