//! What one simulated terminal holds between commands: its parameters (0x8103 sets them, 0x8104
//! and 0x8106 read them), its position and door lock (0x8201, 0x8500), its areas (0x8600-0x8607
//! set and delete them, 0x8608 reads them) and its stored media (0x8801 adds, 0x8802 searches).
//!
//! Every terminal starts from the same documented defaults; the two values that differ per
//! vehicle (odometer and plate number) are drawn from an RNG seeded by the terminal's phone, so a
//! phone always starts with the same values, whatever the session seed and whatever other
//! terminals exist.
//!
//! | id | name | default |
//! |---|---|---|
//! | 0x0001 | heartbeat_interval | 30 s |
//! | 0x0002 | tcp_reply_timeout | 10 s |
//! | 0x0003 | tcp_retransmits | 3 |
//! | 0x0013 | main_server_address | "127.0.0.1" |
//! | 0x0018 | server_tcp_port | 7611 |
//! | 0x0020 | report_strategy | 0 (timed) |
//! | 0x0021 | report_scheme | 0 (by ACC) |
//! | 0x0029 | default_report_interval | 30 s |
//! | 0x0030 | corner_resend_angle | 15° |
//! | 0x0055 | max_speed | 100 km/h |
//! | 0x0056 | overspeed_duration | 10 s |
//! | 0x0080 | odometer | seeded, 10,000..500,000 (1/10 km) |
//! | 0x0081 | province | 44 (Guangdong) |
//! | 0x0082 | city | 300 (Shenzhen) |
//! | 0x0083 | plate | "粤B" + 5 seeded digits (GBK on the wire) |
//! | 0x0084 | plate_color | 1 (blue) |
//!
//! Limits, each a named constant, each refusal logged and answered as a failure, never silent:
//! at most [`MAX_PARAMS`] parameters (0x0104's count is a BYTE), [`MAX_AREAS`] areas per type,
//! [`MAX_STORED_MEDIA`] stored media (the oldest is forgotten first).

use std::collections::{BTreeMap, VecDeque};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::codec::body::area::{Areas, Circle, Polygon, Rectangle, Route, SpeedLimit};
use crate::codec::body::media_search::StoredMedia;
use crate::codec::body::{Location, LocationItems, Param, ParamValue};
use crate::codec::wire::Text;
use crate::codec::{Phone, Version};

/// Most parameters a terminal holds: 0x0104 counts them in a BYTE.
pub const MAX_PARAMS: usize = 255;
/// Most areas of one type (circle, rectangle, polygon, route) a terminal holds.
pub const MAX_AREAS: usize = 64;
/// Most media a terminal keeps for 0x8802; the oldest is forgotten first.
pub const MAX_STORED_MEDIA: usize = 64;

/// Status bit 12: doors locked (JT/T 808 table of 0x0200 status bits).
const DOORS_LOCKED: u32 = 1 << 12;

/// A terminal's state between commands. See the module doc.
#[derive(Debug, Clone)]
pub struct Held {
    params: BTreeMap<u32, ParamValue>,
    position: Option<Location>,
    doors_locked: bool,
    areas: [Vec<Area>; 4],
    media: VecDeque<StoredMedia>,
    next_media_id: u32,
}

/// One held area of any type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Area {
    /// Set by 0x8600.
    Circle(Circle),
    /// Set by 0x8602.
    Rectangle(Rectangle),
    /// Set by 0x8604.
    Polygon(Polygon),
    /// Set by 0x8606.
    Route(Route),
}

impl Area {
    fn id(&self) -> u32 {
        match self {
            Area::Circle(a) => a.id,
            Area::Rectangle(a) => a.id,
            Area::Polygon(a) => a.id,
            Area::Route(a) => a.id,
        }
    }

    /// The area in the layout of a terminal of `version`: a command in another edition's layout
    /// is held as the terminal would store it, so its 0x0608 reads back in the terminal's own
    /// layout. 2019 adds a name (empty when the command had none) and a night top speed (the day
    /// one when absent); 2011/2013 have neither.
    pub fn fit(mut self, version: Version) -> Area {
        let v2019 = version.is_2019();
        let speed = |s: &mut Option<SpeedLimit>| {
            if let Some(s) = s {
                s.night_max_speed = v2019.then(|| s.night_max_speed.unwrap_or(s.max_speed));
            }
        };
        let name = |n: &mut Option<Text>| *n = v2019.then(|| n.take().unwrap_or_else(|| Text::new("")));
        match &mut self {
            Area::Circle(a) => (speed(&mut a.speed), name(&mut a.name)),
            Area::Rectangle(a) => (speed(&mut a.speed), name(&mut a.name)),
            Area::Polygon(a) => (speed(&mut a.speed), name(&mut a.name)),
            Area::Route(a) => {
                a.points.iter_mut().for_each(|p| speed(&mut p.speed));
                ((), name(&mut a.name))
            }
        };
        self
    }

    /// 1 circle, 2 rectangle, 3 polygon, 4 route (0x8608's area type).
    pub fn area_type(&self) -> u8 {
        match self {
            Area::Circle(_) => 1,
            Area::Rectangle(_) => 2,
            Area::Polygon(_) => 3,
            Area::Route(_) => 4,
        }
    }
}

/// FNV-1a of the phone's digits: the seed of its per-vehicle defaults.
fn phone_seed(phone: &Phone) -> u64 {
    phone.to_string().bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The default parameters of the module doc.
fn default_params(phone: &Phone) -> BTreeMap<u32, ParamValue> {
    let mut rng = ChaCha8Rng::seed_from_u64(phone_seed(phone));
    let odometer = rng.random_range(10_000..500_000u32);
    let digits: String = (0..5).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect();
    use ParamValue::{Byte, Dword, Text as T, Word};
    BTreeMap::from([
        (0x0001, Dword(30)),
        (0x0002, Dword(10)),
        (0x0003, Dword(3)),
        (0x0013, T(Text::new("127.0.0.1"))),
        (0x0018, Dword(7611)),
        (0x0020, Dword(0)),
        (0x0021, Dword(0)),
        (0x0029, Dword(30)),
        (0x0030, Dword(15)),
        (0x0055, Dword(100)),
        (0x0056, Dword(10)),
        (0x0080, Dword(odometer)),
        (0x0081, Word(44)),
        (0x0082, Word(300)),
        (0x0083, T(Text::new(format!("粤B{digits}")))),
        (0x0084, Byte(1)),
    ])
}

/// Why a change was refused: the limit it would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverLimit {
    /// The limit's name (`MAX_PARAMS`, `MAX_AREAS`).
    pub limit: &'static str,
    /// Its value.
    pub max: usize,
}

impl Held {
    /// The defaults of the module doc for `phone`.
    pub fn new(phone: &Phone) -> Held {
        Held {
            params: default_params(phone),
            position: None,
            doors_locked: false,
            areas: Default::default(),
            media: VecDeque::new(),
            next_media_id: 1,
        }
    }

    /// Every held parameter, in id order.
    pub fn params(&self) -> Vec<Param> {
        self.params
            .iter()
            .map(|(&id, value)| Param {
                id,
                value: value.clone(),
            })
            .collect()
    }

    /// The held parameters among `ids`, in the order asked; ids it does not hold are left out (a
    /// terminal answers what it has).
    pub fn params_of(&self, ids: &[u32]) -> Vec<Param> {
        ids.iter()
            .filter_map(|&id| {
                self.params.get(&id).map(|value| Param {
                    id,
                    value: value.clone(),
                })
            })
            .collect()
    }

    /// Sets every parameter of an 0x8103, or none of them when the result would hold more than
    /// [`MAX_PARAMS`].
    pub fn set_params(&mut self, params: &[Param]) -> Result<(), OverLimit> {
        let new = params.iter().filter(|p| !self.params.contains_key(&p.id)).count();
        if self.params.len() + new > MAX_PARAMS {
            return Err(OverLimit {
                limit: "MAX_PARAMS",
                max: MAX_PARAMS,
            });
        }
        for p in params {
            self.params.insert(p.id, p.value.clone());
        }
        Ok(())
    }

    /// Records the latest fix.
    pub fn set_position(&mut self, loc: Location) {
        self.position = Some(loc);
    }

    /// The current position: the latest fix (or `fallback` when there was none), with the
    /// door-lock status bit as 0x8500 left it, without additional items.
    pub fn position(&self, fallback: impl FnOnce() -> Location) -> Location {
        let mut loc = self.position.clone().unwrap_or_else(fallback);
        loc.items = LocationItems::new();
        loc.issues.clear();
        if self.doors_locked {
            loc.status |= DOORS_LOCKED;
        } else {
            loc.status &= !DOORS_LOCKED;
        }
        loc
    }

    /// Locks or unlocks the doors (0x8500).
    pub fn set_doors_locked(&mut self, locked: bool) {
        self.doors_locked = locked;
    }

    /// Sets areas of one type: `setting_type` 0 replaces every area of the type, 1 appends, 2
    /// modifies (both: an area with a held id replaces it). Refused whole above [`MAX_AREAS`].
    pub fn set_areas(&mut self, setting_type: u8, areas: Vec<Area>) -> Result<(), OverLimit> {
        let Some(t) = areas.first().map(Area::area_type) else {
            return Ok(());
        };
        let mut held = if setting_type == 0 {
            Vec::new()
        } else {
            self.areas[usize::from(t - 1)].clone()
        };
        for a in areas {
            match held.iter_mut().find(|h| h.id() == a.id()) {
                Some(h) => *h = a,
                None => held.push(a),
            }
        }
        if held.len() > MAX_AREAS {
            return Err(OverLimit {
                limit: "MAX_AREAS",
                max: MAX_AREAS,
            });
        }
        self.areas[usize::from(t - 1)] = held;
        Ok(())
    }

    /// Deletes areas of `area_type` (1..=4) by id; no ids deletes every area of the type.
    pub fn delete_areas(&mut self, area_type: u8, ids: &[u32]) {
        let Some(held) = self.areas.get_mut(usize::from(area_type.wrapping_sub(1))) else {
            return;
        };
        if ids.is_empty() {
            held.clear();
        } else {
            held.retain(|a| !ids.contains(&a.id()));
        }
    }

    /// The held areas of `area_type` (1..=4) with the given ids (every one for no ids), as 0x0608
    /// carries them; `None` for another type.
    pub fn areas(&self, area_type: u8, ids: &[u32]) -> Option<Areas> {
        let held = self.areas.get(usize::from(area_type.wrapping_sub(1)))?;
        let picked: Vec<&Area> = held
            .iter()
            .filter(|a| ids.is_empty() || ids.contains(&a.id()))
            .collect();
        macro_rules! of {
            ($var:ident, $list:ident) => {
                Areas::$list(
                    picked
                        .iter()
                        .filter_map(|a| match a {
                            Area::$var(x) => Some(x.clone()),
                            _ => None,
                        })
                        .collect(),
                )
            };
        }
        Some(match area_type {
            1 => of!(Circle, Circles),
            2 => of!(Rectangle, Rectangles),
            3 => of!(Polygon, Polygons),
            _ => of!(Route, Routes),
        })
    }

    /// A new media id for a medium about to be taken.
    pub fn take_media_id(&mut self) -> u32 {
        let id = self.next_media_id;
        self.next_media_id = self.next_media_id.wrapping_add(1).max(1);
        id
    }

    /// Keeps a medium for later searches; the oldest is forgotten beyond [`MAX_STORED_MEDIA`]
    /// (returned, so the caller can report it).
    pub fn store_media(&mut self, m: StoredMedia) -> Option<StoredMedia> {
        let dropped = if self.media.len() >= MAX_STORED_MEDIA {
            self.media.pop_front()
        } else {
            None
        };
        self.media.push_back(m);
        dropped
    }

    /// The stored media matching an 0x8802 search: type, channel (0 any), event, and a time range
    /// whose all-zero bounds are open.
    pub fn search_media(&self, q: &crate::codec::body::MediaSearch) -> Vec<StoredMedia> {
        let zero = crate::codec::wire::BcdTime([0; 6]);
        self.media
            .iter()
            .filter(|m| m.media_type == q.media_type)
            .filter(|m| q.channel == 0 || m.channel == q.channel)
            .filter(|m| m.event == q.event)
            .filter(|m| q.start == zero || m.location.time.0 >= q.start.0)
            .filter(|m| q.end == zero || m.location.time.0 <= q.end.0)
            .cloned()
            .collect()
    }
}
