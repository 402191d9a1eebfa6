//! Areas and routes (JT/T 808-2013 §8.32-8.39, 2019 §8.36-8.44): set and delete circles (0x8600,
//! 0x8601), rectangles (0x8602, 0x8603), a polygon (0x8604, 0x8605), a route (0x8606, 0x8607),
//! and the 2019 query (0x8608) with its answer (0x0608).
//!
//! ```text
//! 0x8600: type BYTE (0 update, 1 append, 2 modify) | count BYTE | count x circle
//!   circle:    id DWORD | attr WORD | lat DWORD | lng DWORD | radius DWORD | [limits] [name]
//! 0x8602: type BYTE | count BYTE | count x rectangle
//!   rectangle: id DWORD | attr WORD | top-left lat, lng DWORD | bottom-right lat, lng DWORD | [limits] [name]
//! 0x8604 polygon: id DWORD | attr WORD | [time] | [max speed WORD | duration BYTE] | points WORD
//!                 | points x (lat DWORD | lng DWORD) | [2019: night max speed WORD] | [name]
//! 0x8606 route:   id DWORD | attr WORD | [time] | points WORD | points x (corner id DWORD | segment
//!                 id DWORD | lat DWORD | lng DWORD | width BYTE | segment attr BYTE
//!                 | [segment attr bit 0: too long WORD | too short WORD]
//!                 | [segment attr bit 1: max speed WORD | duration BYTE | 2019: night max speed WORD]) | [name]
//! limits: [attr bit 0: start BCD[6] | end BCD[6]] [attr bit 1: max speed WORD | duration BYTE
//!          | 2019: night max speed WORD]
//! name:   2019 only: length WORD | name STRING (GBK)
//! 0x8601/0x8603/0x8605/0x8607: count BYTE (0 = all) | count x id DWORD
//! 0x8608: type BYTE (1 circle, 2 rectangle, 3 polygon, 4 route) | count DWORD | count x id DWORD
//! 0x0608: type BYTE | count DWORD | count x the area as set (circle, rectangle, 0x8604, 0x8606 body)
//! ```
//!
//! What is present follows the attribute bits and the version when decoding; encoding writes what
//! the body holds, so a decoded body re-encodes exactly.

use serde::{Deserialize, Serialize};

use super::codec::BodyCodec;
use crate::codec::header::Version;
use crate::codec::wire::{BcdTime, Reader, Text, WireError};

/// Start and end of an area's validity (attribute bit 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AreaTime {
    /// Start time.
    pub start: BcdTime,
    /// End time.
    pub end: BcdTime,
}

/// A speed limit (attribute bit 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeedLimit {
    /// Top speed, km/h.
    pub max_speed: u16,
    /// Seconds over it before an alarm.
    pub overspeed_duration: u8,
    /// 2019: top speed at night, km/h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub night_max_speed: Option<u16>,
}

/// A segment's driving-time thresholds (segment attribute bit 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriveTime {
    /// Too long above this, seconds.
    pub too_long: u16,
    /// Too short below this, seconds.
    pub too_short: u16,
}

/// A point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Point {
    /// Latitude, degrees x 10^6.
    pub lat: u32,
    /// Longitude, degrees x 10^6.
    pub lng: u32,
}

fn is_2019(v: Version) -> bool {
    v == Version::V2019
}

fn read_time(r: &mut Reader<'_>, attr: u16) -> Result<Option<AreaTime>, WireError> {
    if attr & 1 == 0 {
        return Ok(None);
    }
    Ok(Some(AreaTime {
        start: r.bcd_time("start")?,
        end: r.bcd_time("end")?,
    }))
}

fn write_time(t: &Option<AreaTime>, out: &mut Vec<u8>) {
    if let Some(t) = t {
        t.start.encode(out);
        t.end.encode(out);
    }
}

/// Reads a speed limit when `on`; the night speed too when `night` (2019).
fn read_speed(r: &mut Reader<'_>, on: bool, night: bool) -> Result<Option<SpeedLimit>, WireError> {
    if !on {
        return Ok(None);
    }
    let max_speed = r.u16("max_speed")?;
    let overspeed_duration = r.u8("overspeed_duration")?;
    let night_max_speed = if night { Some(r.u16("night_max_speed")?) } else { None };
    Ok(Some(SpeedLimit {
        max_speed,
        overspeed_duration,
        night_max_speed,
    }))
}

fn write_speed(s: &Option<SpeedLimit>, with_night: bool, out: &mut Vec<u8>) {
    if let Some(s) = s {
        out.extend_from_slice(&s.max_speed.to_be_bytes());
        out.push(s.overspeed_duration);
        if with_night {
            out.extend(s.night_max_speed.iter().flat_map(|n| n.to_be_bytes()));
        }
    }
}

fn read_name(r: &mut Reader<'_>, v: Version) -> Result<Option<Text>, WireError> {
    if is_2019(v) {
        Ok(Some(r.len16_text("name")?))
    } else {
        Ok(None)
    }
}

fn write_name(n: &Option<Text>, out: &mut Vec<u8>) {
    if let Some(n) = n {
        n.encode_len16(out);
    }
}

/// A circle of 0x8600 (and 0x0608).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Circle {
    /// Area id.
    pub id: u32,
    /// Attribute bits (0 by time, 1 speed limit, 2-5 alarms on entry/exit, 6 south, 7 west, 8 no
    /// door opening, 14 no communication on entry, 15 GNSS details on entry).
    pub attr: u16,
    /// Centre.
    pub center: Point,
    /// Radius, metres.
    pub radius: u32,
    /// Validity (attr bit 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<AreaTime>,
    /// Speed limit (attr bit 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<SpeedLimit>,
    /// 2019: the area's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Text>,
}

impl Circle {
    fn read(r: &mut Reader<'_>, v: Version) -> Result<Circle, WireError> {
        let id = r.u32("area_id")?;
        let attr = r.u16("attr")?;
        let center = Point {
            lat: r.u32("lat")?,
            lng: r.u32("lng")?,
        };
        Ok(Circle {
            id,
            attr,
            center,
            radius: r.u32("radius")?,
            time: read_time(r, attr)?,
            speed: read_speed(r, attr & 2 != 0, is_2019(v))?,
            name: read_name(r, v)?,
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.attr.to_be_bytes());
        for x in [self.center.lat, self.center.lng, self.radius] {
            out.extend_from_slice(&x.to_be_bytes());
        }
        write_time(&self.time, out);
        write_speed(&self.speed, true, out);
        write_name(&self.name, out);
    }
}

/// A rectangle of 0x8602 (and 0x0608).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rectangle {
    /// Area id.
    pub id: u32,
    /// Attribute bits (as [`Circle::attr`]).
    pub attr: u16,
    /// Top-left corner.
    pub top_left: Point,
    /// Bottom-right corner.
    pub bottom_right: Point,
    /// Validity (attr bit 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<AreaTime>,
    /// Speed limit (attr bit 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<SpeedLimit>,
    /// 2019: the area's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Text>,
}

fn read_point(r: &mut Reader<'_>) -> Result<Point, WireError> {
    Ok(Point {
        lat: r.u32("lat")?,
        lng: r.u32("lng")?,
    })
}

fn write_point(p: &Point, out: &mut Vec<u8>) {
    out.extend_from_slice(&p.lat.to_be_bytes());
    out.extend_from_slice(&p.lng.to_be_bytes());
}

impl Rectangle {
    fn read(r: &mut Reader<'_>, v: Version) -> Result<Rectangle, WireError> {
        let id = r.u32("area_id")?;
        let attr = r.u16("attr")?;
        Ok(Rectangle {
            id,
            attr,
            top_left: read_point(r)?,
            bottom_right: read_point(r)?,
            time: read_time(r, attr)?,
            speed: read_speed(r, attr & 2 != 0, is_2019(v))?,
            name: read_name(r, v)?,
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.attr.to_be_bytes());
        write_point(&self.top_left, out);
        write_point(&self.bottom_right, out);
        write_time(&self.time, out);
        write_speed(&self.speed, true, out);
        write_name(&self.name, out);
    }
}

/// The body of 0x8604 (and an element of 0x0608).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Polygon {
    /// Area id.
    pub id: u32,
    /// Attribute bits (as [`Circle::attr`]).
    pub attr: u16,
    /// Validity (attr bit 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<AreaTime>,
    /// Speed limit (attr bit 1; the 2019 night speed sits after the points on the wire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<SpeedLimit>,
    /// The vertices (the WORD count on the wire is their number).
    pub points: Vec<Point>,
    /// 2019: the area's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Text>,
}

impl Polygon {
    fn read(r: &mut Reader<'_>, v: Version) -> Result<Polygon, WireError> {
        let id = r.u32("area_id")?;
        let attr = r.u16("attr")?;
        let time = read_time(r, attr)?;
        let mut speed = read_speed(r, attr & 2 != 0, false)?;
        let n = r.u16("point_count")? as usize;
        let points = r.counted(n, read_point)?;
        if let (Some(s), true) = (&mut speed, is_2019(v)) {
            s.night_max_speed = Some(r.u16("night_max_speed")?);
        }
        Ok(Polygon {
            id,
            attr,
            time,
            speed,
            points,
            name: read_name(r, v)?,
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.attr.to_be_bytes());
        write_time(&self.time, out);
        write_speed(&self.speed, false, out);
        out.extend_from_slice(&(self.points.len() as u16).to_be_bytes());
        self.points.iter().for_each(|p| write_point(p, out));
        if let Some(n) = self.speed.and_then(|s| s.night_max_speed) {
            out.extend_from_slice(&n.to_be_bytes());
        }
        write_name(&self.name, out);
    }
}

/// A turning point of a route, with the segment that starts there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutePoint {
    /// Turning point id.
    pub corner_id: u32,
    /// Segment id.
    pub segment_id: u32,
    /// The turning point.
    pub point: Point,
    /// Segment width, metres.
    pub width: u8,
    /// Segment attribute bits (0 driving time, 1 speed limit, 2 south, 3 west).
    pub attr: u8,
    /// Driving-time thresholds (segment attr bit 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drive_time: Option<DriveTime>,
    /// Speed limit (segment attr bit 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<SpeedLimit>,
}

/// The body of 0x8606 (and an element of 0x0608).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Route id.
    pub id: u32,
    /// Route attribute bits (0 by time, 2-5 alarms on entry/exit).
    pub attr: u16,
    /// Validity (attr bit 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<AreaTime>,
    /// The turning points (the WORD count on the wire is their number).
    pub points: Vec<RoutePoint>,
    /// 2019: the route's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Text>,
}

impl RoutePoint {
    fn read(r: &mut Reader<'_>, v: Version) -> Result<RoutePoint, WireError> {
        let corner_id = r.u32("corner_id")?;
        let segment_id = r.u32("segment_id")?;
        let point = read_point(r)?;
        let width = r.u8("width")?;
        let attr = r.u8("segment_attr")?;
        let drive_time = if attr & 1 != 0 {
            Some(DriveTime {
                too_long: r.u16("too_long")?,
                too_short: r.u16("too_short")?,
            })
        } else {
            None
        };
        Ok(RoutePoint {
            corner_id,
            segment_id,
            point,
            width,
            attr,
            drive_time,
            speed: read_speed(r, attr & 2 != 0, is_2019(v))?,
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.corner_id.to_be_bytes());
        out.extend_from_slice(&self.segment_id.to_be_bytes());
        write_point(&self.point, out);
        out.extend_from_slice(&[self.width, self.attr]);
        if let Some(d) = self.drive_time {
            out.extend_from_slice(&d.too_long.to_be_bytes());
            out.extend_from_slice(&d.too_short.to_be_bytes());
        }
        write_speed(&self.speed, true, out);
    }
}

impl Route {
    fn read(r: &mut Reader<'_>, v: Version) -> Result<Route, WireError> {
        let id = r.u32("route_id")?;
        let attr = r.u16("attr")?;
        let time = read_time(r, attr)?;
        let n = r.u16("point_count")? as usize;
        let points = r.counted(n, |r| RoutePoint::read(r, v))?;
        Ok(Route {
            id,
            attr,
            time,
            points,
            name: read_name(r, v)?,
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.attr.to_be_bytes());
        write_time(&self.time, out);
        out.extend_from_slice(&(self.points.len() as u16).to_be_bytes());
        self.points.iter().for_each(|p| p.write(out));
        write_name(&self.name, out);
    }
}

/// [`BodyCodec`] for a body that is one area read by `$read`, nothing after it.
macro_rules! single_area {
    ($($t:ty => $last:literal),*) => {$(
        impl BodyCodec for $t {
            fn decode_body(b: &[u8], v: Version) -> Result<Self, WireError> {
                let mut r = Reader::new(b);
                let a = <$t>::read(&mut r, v)?;
                r.finish($last)?;
                Ok(a)
            }
            fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
                self.write(out)
            }
        }
    )*};
}
single_area!(Polygon => "name", Route => "name");

/// The body of 0x8600.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetCircles {
    /// 0 update (replace all), 1 append, 2 modify.
    pub setting_type: u8,
    /// The circles (the BYTE count on the wire is their number).
    pub areas: Vec<Circle>,
}

/// The body of 0x8602.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRectangles {
    /// 0 update (replace all), 1 append, 2 modify.
    pub setting_type: u8,
    /// The rectangles (the BYTE count on the wire is their number).
    pub areas: Vec<Rectangle>,
}

/// [`BodyCodec`] for `type BYTE | count BYTE | count x area`.
macro_rules! area_set {
    ($($t:ident($area:ident)),*) => {$(
        impl BodyCodec for $t {
            fn decode_body(b: &[u8], v: Version) -> Result<Self, WireError> {
                let mut r = Reader::new(b);
                let setting_type = r.u8("setting_type")?;
                let n = r.u8("count")? as usize;
                let areas = r.counted(n, |r| $area::read(r, v))?;
                r.finish("areas")?;
                Ok($t { setting_type, areas })
            }
            fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
                out.extend_from_slice(&[self.setting_type, self.areas.len() as u8]);
                self.areas.iter().for_each(|a| a.write(out));
            }
        }
    )*};
}
area_set!(SetCircles(Circle), SetRectangles(Rectangle));

/// The body of 0x8601, 0x8603, 0x8605 and 0x8607.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AreaIds {
    /// The ids to delete (none: all; the BYTE count on the wire is their number).
    pub ids: Vec<u32>,
}

impl BodyCodec for AreaIds {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let n = r.u8("count")? as usize;
        let ids = r.counted(n, |r| r.u32("area_id"))?;
        r.finish("area_id")?;
        Ok(AreaIds { ids })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.push(self.ids.len() as u8);
        self.ids.iter().for_each(|id| out.extend_from_slice(&id.to_be_bytes()));
    }
}

/// The body of 0x8608.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryAreas {
    /// 1 circle, 2 rectangle, 3 polygon, 4 route.
    pub area_type: u8,
    /// The ids asked for (none: all; the DWORD count on the wire is their number).
    pub ids: Vec<u32>,
}

impl BodyCodec for QueryAreas {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let area_type = r.u8("area_type")?;
        let n = r.u32("count")? as usize;
        let ids = r.counted(n, |r| r.u32("area_id"))?;
        r.finish("area_id")?;
        Ok(QueryAreas { area_type, ids })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.push(self.area_type);
        out.extend_from_slice(&(self.ids.len() as u32).to_be_bytes());
        self.ids.iter().for_each(|id| out.extend_from_slice(&id.to_be_bytes()));
    }
}

/// The areas of a 0x0608 answer, by its type byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Areas {
    /// Type 1.
    Circles(Vec<Circle>),
    /// Type 2.
    Rectangles(Vec<Rectangle>),
    /// Type 3.
    Polygons(Vec<Polygon>),
    /// Type 4.
    Routes(Vec<Route>),
    /// Any other type: the count and the bytes after it, as they came.
    Unknown {
        /// The declared count.
        count: u32,
        /// The bytes (hex).
        #[serde(with = "crate::codec::wire::hex_upper")]
        data: Vec<u8>,
    },
}

/// The body of 0x0608.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AreaAnswer {
    /// 1 circle, 2 rectangle, 3 polygon, 4 route.
    pub area_type: u8,
    /// The areas (the DWORD count on the wire is their number).
    pub areas: Areas,
}

impl BodyCodec for AreaAnswer {
    fn decode_body(b: &[u8], v: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let area_type = r.u8("area_type")?;
        let n = r.u32("count")? as usize;
        let areas = match area_type {
            1 => Areas::Circles(r.counted(n, |r| Circle::read(r, v))?),
            2 => Areas::Rectangles(r.counted(n, |r| Rectangle::read(r, v))?),
            3 => Areas::Polygons(r.counted(n, |r| Polygon::read(r, v))?),
            4 => Areas::Routes(r.counted(n, |r| Route::read(r, v))?),
            _ => Areas::Unknown {
                count: n as u32,
                data: r.rest().to_vec(),
            },
        };
        r.finish("areas")?;
        Ok(AreaAnswer { area_type, areas })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.push(self.area_type);
        let count = |n: usize| (n as u32).to_be_bytes();
        match &self.areas {
            Areas::Circles(a) => {
                out.extend_from_slice(&count(a.len()));
                a.iter().for_each(|x| x.write(out));
            }
            Areas::Rectangles(a) => {
                out.extend_from_slice(&count(a.len()));
                a.iter().for_each(|x| x.write(out));
            }
            Areas::Polygons(a) => {
                out.extend_from_slice(&count(a.len()));
                a.iter().for_each(|x| x.write(out));
            }
            Areas::Routes(a) => {
                out.extend_from_slice(&count(a.len()));
                a.iter().for_each(|x| x.write(out));
            }
            Areas::Unknown { count: n, data } => {
                out.extend_from_slice(&n.to_be_bytes());
                out.extend_from_slice(data);
            }
        }
    }
}
