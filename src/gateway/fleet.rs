//! A generated fleet of terminals: each drives a seeded route and reports on its own timer, and the
//! fleet interleaves them by due time into one [`Feed`]. Pure and clock-free (no tokio, no wall
//! clock): the same seed gives the same bytes, and report times count from
//! [`SIM_EPOCH`](super::terminal::SIM_EPOCH), not from today.
//!
//! What a terminal sends, picked by the weights of [`Mix`] with the terminal's own RNG:
//!
//! | kind | message | what is in it |
//! |---|---|---|
//! | `location` | 0x0200 | the route's position, speed, heading, altitude and time, status ACC on + positioned + GPS + BeiDou, overspeed alarm above 100 km/h, and 12 additional items (JT808.md §5.4): 0x01 mileage, 0x02 fuel, 0x03 recorder speed, 0x14-0x17 video alarms (1078), 0x25 vehicle signal, 0x2A IO status, 0x2B analog, 0x30 signal strength, 0x31 satellites; 2019 terminals add 0x06 compartment temperature |
//! | `heartbeat` | 0x0002 | empty body |
//! | `batch` | 0x0704 | 2-5 reports along the route since the last message (batch type 0 or 1, §5.5) |
//! | `media` | 0x0801 | a JPEG-looking picture of 2-6 KiB with its location block (§5.6), sub-packaged |
//! | `av_list` | 0x1205 | a resource list of 20-60 items (reply serial 0: unsolicited), sub-packaged |
//!
//! With [`FleetConfig::message_ids`] a terminal sends the listed ids in turn instead, any
//! terminal-originated id typed by the codec (`"every"`: all of them, [`every_terminal_id`]);
//! the ids beyond the five above are built by [`messages`].
//!
//! Sub-packaged messages are split by [`Message::encode_packets`] with [`FleetConfig::packet_size`]
//! body bytes per packet, "every packet has its own serial number" (JT808.md §4), from the
//! terminal's own wrapping counter, which its answers to commands share ([`TerminalScript`]).
//!
//! # Timeline
//!
//! Terminal `i` sends its `k`-th message at `phase_i + k * interval_ms`, `phase_i` drawn from
//! `0..interval_ms` by its RNG, so the fleet does not report in lock-step. The packets of one
//! message follow it `packet_gap_ms` apart (0: back to back). Frames due at the same time come out
//! in terminal order (the lower phone first). With `frames_per_message = n > 1`, `n` consecutive
//! frames make one WebSocket message, due when its last frame is (a batching gateway sends when
//! its batch is full), so no frame ever leaves before its time.
//!
//! The fleet is lazy: it holds one pending message per terminal and the terminals' bounded
//! histories, never the stream, so `messages = 0` (unlimited) runs in constant memory.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub mod messages;

use super::feed::{Feed, FeedItem};
use super::terminal::held::Held;
use super::terminal::{SIM_DAY_START_SECS, Terminal, TerminalScript, TerminalSettings, sim_time};
use crate::codec::body::{
    AvResource, AvResourceList, BatchItem, BatchLocation, Body, EmptyBody, ItemValue, Location, LocationItem,
    LocationItems, MediaUpload,
};
use crate::codec::frame::MAX_BODY_LEN;
use crate::codec::{Message, Phone, Version};

/// Which header versions the fleet's terminals use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FleetVersion {
    /// Every terminal 2013.
    #[default]
    #[serde(rename = "2013")]
    V2013,
    /// Every terminal 2019.
    #[serde(rename = "2019")]
    V2019,
    /// Alternating 2013 and 2019.
    Mixed,
}

impl FleetVersion {
    /// The header version of terminal `index` (0-based): mixed fleets alternate, 2013 first.
    pub fn of(self, index: u32) -> Version {
        match self {
            FleetVersion::V2013 => Version::V2013,
            FleetVersion::V2019 => Version::V2019,
            FleetVersion::Mixed if index.is_multiple_of(2) => Version::V2013,
            FleetVersion::Mixed => Version::V2019,
        }
    }
}

impl std::str::FromStr for FleetVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "2013" => Ok(FleetVersion::V2013),
            "2019" => Ok(FleetVersion::V2019),
            "mixed" => Ok(FleetVersion::Mixed),
            other => Err(format!("fleet version {other:?}: expected 2013, 2019 or mixed")),
        }
    }
}

/// Relative weights of the message kinds a fleet terminal sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mix {
    /// 0x0200 location report with additional items.
    pub location: u32,
    /// 0x0002 heartbeat.
    pub heartbeat: u32,
    /// 0x0704 batch location upload.
    pub batch: u32,
    /// 0x0801 multimedia upload, sub-packaged.
    pub media: u32,
    /// 0x1205 resource list, sub-packaged.
    pub av_list: u32,
}

impl Mix {
    /// Only 0x0200 location reports: the fleet a test of positions or order wants.
    pub const LOCATION_ONLY: Mix = Mix {
        location: 1,
        heartbeat: 0,
        batch: 0,
        media: 0,
        av_list: 0,
    };
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            location: 8,
            heartbeat: 2,
            batch: 1,
            media: 1,
            av_list: 0,
        }
    }
}

/// Which message ids a fleet terminal sends, in turn, instead of the weighted [`Mix`]. In TOML
/// `message_ids = "every"` or `message_ids = ["0x0200", "0x0702"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageIds {
    /// Every terminal-originated id the codec types ([`every_terminal_id`]), in table order.
    Every,
    /// These ids, in this order (each a terminal id the codec types).
    List(Vec<u16>),
}

/// The `"every"` of [`MessageIds`].
const EVERY: &str = "every";

impl MessageIds {
    /// The ids, in the order sent.
    pub fn ids(&self) -> Vec<u16> {
        match self {
            MessageIds::Every => every_terminal_id(),
            MessageIds::List(ids) => ids.clone(),
        }
    }
}

/// Every terminal-originated id of the codec's table ([`crate::codec::body::MESSAGE_IDS`]), in
/// table order: what `message_ids = "every"` sends.
pub fn every_terminal_id() -> Vec<u16> {
    crate::codec::body::MESSAGE_IDS
        .iter()
        .filter(|i| i.from == crate::codec::body::Direction::Terminal)
        .map(|i| i.id)
        .collect()
}

/// Whether a fleet can send `id`: a terminal-originated id the codec types.
pub fn can_send(id: u16) -> bool {
    every_terminal_id().contains(&id)
}

impl Serialize for MessageIds {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MessageIds::Every => s.serialize_str(EVERY),
            MessageIds::List(ids) => s.collect_seq(ids.iter().map(|id| format!("0x{id:04X}"))),
        }
    }
}

impl<'de> Deserialize<'de> for MessageIds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Id(#[serde(with = "crate::codec::body::hex_id")] u16);
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum In {
            Word(String),
            List(Vec<Id>),
        }
        let bad = |what: String| {
            serde::de::Error::custom(format!(
                "message_ids {what}: expected \"{EVERY}\" or a list of message ids like [\"0x0200\", \"0x0702\"]"
            ))
        };
        match In::deserialize(d).map_err(|_| bad("is neither".into()))? {
            In::Word(w) if w == EVERY => Ok(MessageIds::Every),
            In::Word(w) => Err(bad(format!("{w:?}"))),
            In::List(ids) => Ok(MessageIds::List(ids.into_iter().map(|i| i.0).collect())),
        }
    }
}

/// A generated fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// Number of terminals. Default 2.
    pub terminals: u32,
    /// Phone of the first terminal; the others count up from it. Default 13800000001.
    pub first_phone: u64,
    /// Header versions. Default 2013.
    pub version: FleetVersion,
    /// Messages each terminal sends (0 = unlimited). Default 10.
    pub messages: u32,
    /// Interval between one terminal's messages, ms. Default 1000.
    pub interval_ms: u64,
    /// Message kinds and weights.
    pub mix: Mix,
    /// Send these ids in turn instead of the weighted `mix` (terminal `i`'s `k`-th message is
    /// id `(i + k) mod n` of the list). Default: none, the mix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_ids: Option<MessageIds>,
    /// Body bytes per packet of sub-packaged messages, the terminals' answers included (1..=1023).
    /// Default 512.
    pub packet_size: usize,
    /// Several frames per WebSocket message: how many at most (1 = one frame per message). Default 1.
    pub frames_per_message: usize,
    /// Serial of every terminal's first message (a high value shows the wrap at 0xFFFF early).
    /// Default 0.
    pub first_serial: u16,
    /// Time between the packets of one sub-packaged message, ms (other terminals' frames can fall
    /// in between). Default 0: back to back.
    pub packet_gap_ms: u64,
    /// How the terminals answer commands (their `packet_size` is the fleet's).
    pub terminal: TerminalSettings,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            terminals: 2,
            first_phone: 13_800_000_001,
            version: FleetVersion::V2013,
            messages: 10,
            interval_ms: 1000,
            mix: Mix::default(),
            message_ids: None,
            packet_size: 512,
            frames_per_message: 1,
            first_serial: 0,
            packet_gap_ms: 0,
            terminal: TerminalSettings::default(),
        }
    }
}

/// Most terminals one fleet (one session) plays: each costs a generator and a script entry, so
/// the count is bounded before anything is allocated for them.
pub const MAX_TERMINALS: u32 = 100_000;
/// Longest interval between one terminal's messages (and `packet_gap_ms`), ms: one day.
pub const MAX_INTERVAL_MS: u64 = 86_400_000;
/// Most frames in one WebSocket message.
pub const MAX_FRAMES_PER_MESSAGE: usize = 1024;

/// A fleet configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    /// A value out of range, or values that contradict each other.
    #[error("fleet: {0}")]
    Invalid(String),
}

impl FleetConfig {
    /// Checks the values serde cannot.
    pub fn validate(&self) -> Result<(), FleetError> {
        let bad = |m: String| Err(FleetError::Invalid(m));
        if !(1..=MAX_TERMINALS).contains(&self.terminals) {
            return bad(format!("terminals {} must be 1..={MAX_TERMINALS}", self.terminals));
        }
        if self.interval_ms > MAX_INTERVAL_MS || self.packet_gap_ms > MAX_INTERVAL_MS {
            return bad(format!(
                "interval_ms {} and packet_gap_ms {} must be 0..={MAX_INTERVAL_MS} (one day)",
                self.interval_ms, self.packet_gap_ms
            ));
        }
        if !(1..=MAX_BODY_LEN).contains(&self.packet_size) {
            return bad(format!(
                "packet_size {} must be 1..={MAX_BODY_LEN} (the 10-bit body length, JT808.md §2.2)",
                self.packet_size
            ));
        }
        if !(1..=MAX_FRAMES_PER_MESSAGE).contains(&self.frames_per_message) {
            return bad(format!(
                "frames_per_message {} must be 1..={MAX_FRAMES_PER_MESSAGE}",
                self.frames_per_message
            ));
        }
        if self.messages == 0 && self.interval_ms == 0 {
            return bad(
                "an unlimited fleet (messages = 0) needs interval_ms > 0: it would be an endless burst at one instant"
                    .into(),
            );
        }
        let m = &self.mix;
        if [m.location, m.heartbeat, m.batch, m.media, m.av_list]
            .iter()
            .all(|&w| w == 0)
        {
            return bad("every mix weight is 0: nothing to send".into());
        }
        if let Some(ids) = &self.message_ids {
            message_ids_problem(ids).map_or(Ok(()), |(_, m)| bad(format!("message_ids: {m}")))?;
        }
        let Some(last) = self.first_phone.checked_add(u64::from(self.terminals) - 1) else {
            return bad("first_phone + terminals overflows".into());
        };
        // JT808.md §2.1: a 2013 header holds BCD[6] = 12 digits, a 2019 header BCD[10] = 20.
        let digits = last.to_string().len();
        let needs_2019 = digits > 12;
        if needs_2019 && self.version != FleetVersion::V2019 {
            return bad(format!(
                "phone {last} has {digits} digits; a 2013 header holds 12 (use version 2019)"
            ));
        }
        self.terminal
            .validate()
            .map_err(|m| FleetError::Invalid(format!("terminal: {m}")))
    }
}

/// The first problem of a [`MessageIds`] list: its index (for the key's file:line) and what is
/// wrong. An empty list sends nothing; an id must be one a fleet can send ([`can_send`]).
pub fn message_ids_problem(ids: &MessageIds) -> Option<(usize, String)> {
    let MessageIds::List(list) = ids else { return None };
    if list.is_empty() {
        return Some((0, "an empty list sends nothing".into()));
    }
    list.iter().position(|&id| !can_send(id)).map(|i| {
        let id = list[i];
        let why = match crate::codec::body::kind_of(id) {
            Some(name) => format!("0x{id:04X} ({name}) is sent by the platform, not a terminal"),
            None => format!("0x{id:04X} is not a message id the codec types"),
        };
        (
            i,
            format!("{why}; a fleet sends the terminal ids of the README's Message ids table"),
        )
    })
}

/// Where a terminal is and how it moves.
#[derive(Debug, Clone)]
struct Route {
    /// Degrees, north positive.
    lat: f64,
    /// Degrees, east positive.
    lng: f64,
    /// Degrees clockwise from north.
    heading: f64,
    /// km/h.
    speed: f64,
    /// Speed the driver is heading for, km/h.
    target: f64,
    /// Metres.
    altitude: f64,
    /// Metres driven.
    odometer: f64,
    /// Litres.
    fuel: f64,
    /// Seconds stopped still to wait (a red light).
    stop_for: f64,
}

/// Metres per degree of latitude.
const M_PER_DEG: f64 = 111_320.0;

impl Route {
    fn new(rng: &mut ChaCha8Rng) -> Route {
        // Somewhere around Shenzhen (22.54 N, 114.06 E): plausible for a JT808 fleet.
        Route {
            lat: 22.54 + rng.random_range(-0.2..0.2),
            lng: 114.06 + rng.random_range(-0.3..0.3),
            heading: rng.random_range(0.0..360.0),
            speed: 0.0,
            target: rng.random_range(30.0..80.0),
            altitude: rng.random_range(5.0..120.0),
            odometer: rng.random_range(10_000.0..500_000_000.0),
            fuel: rng.random_range(80.0..400.0),
            stop_for: 0.0,
        }
    }

    /// Drives `dt` seconds: the speed eases toward a target that changes now and then, the
    /// heading drifts and sometimes turns, and the odd red light stops the vehicle.
    fn advance(&mut self, rng: &mut ChaCha8Rng, dt: f64) {
        if dt <= 0.0 {
            return;
        }
        if self.stop_for > 0.0 {
            self.stop_for -= dt;
            self.speed = 0.0;
            return;
        }
        if rng.random_bool(0.05) {
            self.stop_for = rng.random_range(10.0..60.0);
            self.speed = 0.0;
            return;
        }
        if rng.random_bool(0.1) {
            self.target = rng.random_range(20.0..110.0);
        }
        let accel = (self.target - self.speed).clamp(-8.0 * dt, 5.0 * dt);
        self.speed = (self.speed + accel + rng.random_range(-1.0..1.0)).clamp(0.0, 130.0);
        self.heading += if rng.random_bool(0.08) {
            if rng.random_bool(0.5) { 90.0 } else { -90.0 }
        } else {
            rng.random_range(-8.0..8.0)
        };
        self.heading = self.heading.rem_euclid(360.0);
        let metres = self.speed / 3.6 * dt;
        let rad = self.heading.to_radians();
        self.lat += metres * rad.cos() / M_PER_DEG;
        self.lng += metres * rad.sin() / (M_PER_DEG * self.lat.to_radians().cos());
        self.altitude = (self.altitude + rng.random_range(-2.0..2.0)).clamp(0.0, 3000.0);
        self.odometer += metres;
        // About 10 L/100 km, refilled when low.
        self.fuel -= metres / 10_000.0;
        if self.fuel < 20.0 {
            self.fuel = 400.0;
        }
    }

    /// The basic block at virtual second `secs` (no items).
    fn basic(&self, secs: u64) -> Location {
        // Status (JT808.md §5.3): bit 0 ACC on, bit 1 positioned, bit 18 GPS, bit 19 BeiDou; bits 2
        // and 3 stay clear (north, east). Alarm bit 1 overspeed above 100 km/h (§5.2).
        let status = 1 | 1 << 1 | 1 << 18 | 1 << 19;
        let alarm = if self.speed > 100.0 { 1 << 1 } else { 0 };
        Location {
            alarm,
            status,
            lat: (self.lat * 1e6).round() as u32,
            lng: (self.lng * 1e6).round() as u32,
            altitude: self.altitude.round() as u16,
            speed: (self.speed * 10.0).round() as u16,
            direction: (self.heading.round() as u16) % 360,
            time: sim_time(secs),
            items: LocationItems::new(),
            issues: Vec::new(),
        }
    }

    /// The full 0x0200 report, with the additional items of the module doc.
    fn report(&self, secs: u64, version: Version, rng: &mut ChaCha8Rng) -> Location {
        let mut loc = self.basic(secs);
        let braking = u32::from(self.speed < self.target - 5.0);
        let mut items = vec![
            (0x01, ItemValue::Mileage((self.odometer / 100.0) as u32)),
            (0x02, ItemValue::Fuel((self.fuel * 10.0) as u16)),
            (0x03, ItemValue::RecorderSpeed((self.speed * 10.0).round() as u16)),
            (0x14, ItemValue::VideoAlarm(0)),
            (0x15, ItemValue::VideoSignalLoss(0)),
            (0x16, ItemValue::VideoOcclusion(0)),
            (0x17, ItemValue::StorageFault(0)),
            // Extended vehicle signal bit 4: braking.
            (0x25, ItemValue::VehicleSignal(braking << 4)),
            (0x2A, ItemValue::IoStatus(0)),
            (
                0x2B,
                ItemValue::Analog(rng.random_range(0..4096u32) | rng.random_range(0..4096u32) << 16),
            ),
            (0x30, ItemValue::SignalStrength(rng.random_range(8..32))),
            (0x31, ItemValue::Satellites(rng.random_range(6..21))),
        ];
        if version.is_2019() {
            items.push((0x06, ItemValue::CompartmentTemp(rng.random_range(180..280))));
        }
        loc.items = items
            .into_iter()
            .map(|(id, value)| LocationItem { id, value })
            .collect();
        loc
    }
}

/// One fleet terminal's generator state (its serials and history live in the script).
#[derive(Debug)]
struct Generator {
    /// 0-based terminal index (where it starts in `message_ids`).
    index: u32,
    phone: Phone,
    version: Version,
    rng: ChaCha8Rng,
    route: Route,
    /// Messages generated so far.
    sent: u32,
    /// Due time of the next message, µs.
    next_due_us: u64,
    /// Virtual second of the route's state.
    route_secs: f64,
    /// Frames of the current message not yet out, with their due times.
    pending: VecDeque<(u64, Vec<u8>)>,
    /// Next 0x0801 media id.
    media_id: u32,
}

/// Report times start at 08:00 of the simulated day: a fleet out on its morning round.
const DAY_START_SECS: u64 = SIM_DAY_START_SECS;

/// The generated fleet: a [`Feed`] of its terminals' messages in due order, answering commands
/// through its [`TerminalScript`].
#[derive(Debug)]
pub struct Fleet {
    cfg: FleetConfig,
    /// The ids of [`FleetConfig::message_ids`], resolved once.
    ids: Option<Vec<u16>>,
    script: TerminalScript,
    gens: Vec<Generator>,
    /// (due µs, terminal index) of every terminal's next frame.
    queue: BinaryHeap<Reverse<(u64, u32)>>,
}

impl Fleet {
    /// A fleet from its settings; `seed` drives every choice (terminal `i` draws from stream
    /// `i + 1` of `ChaCha8Rng::seed_from_u64(seed)`, so adding terminals leaves the others' streams
    /// as they were).
    pub fn new(cfg: FleetConfig, seed: u64) -> Result<Fleet, FleetError> {
        cfg.validate()?;
        let settings = TerminalSettings {
            packet_size: cfg.packet_size,
            ..cfg.terminal.clone()
        };
        let mut script = TerminalScript::new(settings.clone(), seed);
        let mut gens = Vec::with_capacity(cfg.terminals as usize);
        let mut queue = BinaryHeap::with_capacity(cfg.terminals as usize);
        for i in 0..cfg.terminals {
            let number = cfg.first_phone + u64::from(i);
            let phone = Phone::parse(&number.to_string()).map_err(FleetError::Invalid)?;
            let version = cfg.version.of(i);
            script.add(Terminal::new(phone, version, cfg.first_serial, settings.history));
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(u64::from(i) + 1);
            let phase_us = if cfg.interval_ms > 0 {
                rng.random_range(0..cfg.interval_ms) * 1000
            } else {
                0
            };
            let route = Route::new(&mut rng);
            queue.push(Reverse((phase_us, i)));
            gens.push(Generator {
                index: i,
                phone,
                version,
                rng,
                route,
                sent: 0,
                next_due_us: phase_us,
                route_secs: phase_us as f64 / 1e6,
                pending: VecDeque::new(),
                media_id: 1,
            });
        }
        let ids = cfg.message_ids.as_ref().map(MessageIds::ids);
        Ok(Fleet {
            cfg,
            ids,
            script,
            gens,
            queue,
        })
    }

    /// The terminals' script (serial counters, histories, stats).
    pub fn script(&self) -> &TerminalScript {
        &self.script
    }

    /// The next frame of the fleet and its due time (µs), `None` when every terminal is done.
    pub fn next_frame(&mut self) -> Option<(u64, Vec<u8>)> {
        let Reverse((_, idx)) = self.queue.pop()?;
        let g = &mut self.gens[idx as usize];
        if g.pending.is_empty() {
            let due = g.next_due_us;
            let frames = Self::generate(&self.cfg, self.ids.as_deref(), &mut self.script, g, due);
            let gap = self.cfg.packet_gap_ms * 1000;
            g.pending
                .extend(frames.into_iter().enumerate().map(|(j, f)| (due + j as u64 * gap, f)));
            g.sent += 1;
            let grid = due + self.cfg.interval_ms * 1000;
            let last = g.pending.back().map_or(due, |p| p.0);
            g.next_due_us = grid.max(last);
        }
        let (due, frame) = g.pending.pop_front()?;
        let next = match g.pending.front() {
            Some((d, _)) => Some(*d),
            None if self.cfg.messages == 0 || g.sent < self.cfg.messages => Some(g.next_due_us),
            None => None,
        };
        if let Some(d) = next {
            self.queue.push(Reverse((d, idx)));
        }
        Some((due, frame))
    }

    /// One message of terminal `g`, due at `due_us`, as its frames.
    fn generate(
        cfg: &FleetConfig,
        ids: Option<&[u16]>,
        script: &mut TerminalScript,
        g: &mut Generator,
        due_us: u64,
    ) -> Vec<Vec<u8>> {
        let now_secs = due_us as f64 / 1e6;
        let dt = now_secs - g.route_secs;
        let secs = DAY_START_SECS + now_secs as u64;
        let pick = match ids {
            None => Pick::Mix(pick_kind(&cfg.mix, &mut g.rng)),
            Some(ids) => {
                let id = ids[(g.index as usize + g.sent as usize) % ids.len()];
                match messages::MIX_IDS.iter().position(|&m| m == id) {
                    Some(kind) => Pick::Mix(kind),
                    None => Pick::Id(id),
                }
            }
        };
        let (msg_id, body) = match pick {
            Pick::Mix(kind) => Self::mixed(kind, g, now_secs, dt),
            Pick::Id(id) => {
                g.route.advance(&mut g.rng, dt);
                let term = script
                    .terminal(&g.phone)
                    .expect("every fleet terminal was added to the script in Fleet::new");
                let defaults;
                let held = match term.held() {
                    Some(h) => h,
                    None => {
                        defaults = Held::new(&g.phone);
                        &defaults
                    }
                };
                let scene = messages::Scene {
                    term,
                    held,
                    fix: g.route.basic(secs),
                    secs,
                };
                let body = messages::body_of(id, &scene, &mut g.rng)
                    .expect("message_ids are validated against every_terminal_id, which body_of builds (tested)");
                (id, body)
            }
        };
        g.route_secs = now_secs;
        let term = script
            .terminal_mut(&g.phone)
            .expect("every fleet terminal was added to the script in Fleet::new");
        term.encode(msg_id, &body, cfg.packet_size)
    }

    /// A message of the weighted mix: `kind` indexes [`messages::MIX_IDS`].
    fn mixed(kind: usize, g: &mut Generator, now_secs: f64, dt: f64) -> (u16, Body) {
        let secs = |s: f64| DAY_START_SECS + s as u64;
        match kind {
            0 => {
                g.route.advance(&mut g.rng, dt);
                (
                    Location::ID,
                    Body::LocationReport(g.route.report(secs(now_secs), g.version, &mut g.rng)),
                )
            }
            1 => {
                g.route.advance(&mut g.rng, dt);
                (EmptyBody::HEARTBEAT_ID, Body::Heartbeat(EmptyBody::default()))
            }
            2 => {
                // The points since the last message, in steps.
                let n = g.rng.random_range(2..=5u16);
                let step = dt / f64::from(n);
                let mut items = Vec::with_capacity(n as usize);
                for j in 1..=n {
                    g.route.advance(&mut g.rng, step);
                    let t = g.route_secs + step * f64::from(j);
                    items.push(BatchItem::Location(g.route.report(secs(t), g.version, &mut g.rng)));
                }
                let batch_type = u8::from(g.rng.random_bool(0.3));
                let body = BatchLocation {
                    count: n,
                    batch_type,
                    items,
                    cut: None,
                };
                (BatchLocation::ID, Body::BatchLocation(body))
            }
            3 => {
                g.route.advance(&mut g.rng, dt);
                (MediaUpload::ID, Self::media(g, secs(now_secs)))
            }
            _ => {
                g.route.advance(&mut g.rng, dt);
                (AvResourceList::ID, Self::av_list(g, secs(now_secs)))
            }
        }
    }

    /// 0x0801: a JPEG-looking picture of 2-6 KiB with its location block.
    fn media(g: &mut Generator, secs: u64) -> Body {
        let len = g.rng.random_range(2048..6144usize);
        let mut data = vec![0u8; len];
        g.rng.fill(&mut data[..]);
        // A JPEG's SOI/APP0 marker at the start and EOI at the end.
        data[..4].copy_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
        data[len - 2..].copy_from_slice(&[0xFF, 0xD9]);
        let media_id = g.media_id;
        g.media_id = g.media_id.wrapping_add(1);
        Body::MediaUpload(Box::new(MediaUpload {
            media_id,
            media_type: 0,
            media_format: 0,
            event: g.rng.random_range(0..4),
            channel: g.rng.random_range(1..5),
            location: Some(g.route.basic(secs)),
            data,
        }))
    }

    /// 0x1205: an unsolicited list of 20-60 ten-minute items of the day before.
    fn av_list(g: &mut Generator, secs: u64) -> Body {
        let n = g.rng.random_range(20..=60u32);
        let base = secs.saturating_sub(86_400);
        let items = (0..n)
            .map(|i| {
                let start = base + u64::from(i) * 600;
                AvResource {
                    channel: (i % 4) as u8 + 1,
                    start: sim_time(start),
                    end: sim_time(start + 600),
                    alarm: 0,
                    av_type: 0,
                    stream_type: 1,
                    storage_type: 1,
                    file_size: g.rng.random_range(2_000_000..40_000_000),
                }
            })
            .collect();
        Body::AvResourceList(AvResourceList::new(0, items))
    }
}

/// What a terminal sends next: a kind of the weighted mix, or an id of `message_ids`.
enum Pick {
    Mix(usize),
    Id(u16),
}

/// A kind of the mix by its weights (an index into [`messages::MIX_IDS`]).
fn pick_kind(m: &Mix, rng: &mut ChaCha8Rng) -> usize {
    let weights = [m.location, m.heartbeat, m.batch, m.media, m.av_list];
    let total: u32 = weights.iter().sum();
    let mut pick = rng.random_range(0..total);
    weights
        .iter()
        .position(|&w| {
            if pick < w {
                true
            } else {
                pick -= w;
                false
            }
        })
        .unwrap_or(0)
}

impl Feed for Fleet {
    fn next_item(&mut self) -> Option<FeedItem> {
        let (mut due, mut bytes) = self.next_frame()?;
        for _ in 1..self.cfg.frames_per_message {
            match self.next_frame() {
                Some((d, f)) => {
                    due = d;
                    bytes.extend_from_slice(&f);
                }
                None => break,
            }
        }
        Some(FeedItem {
            due: Duration::from_micros(due),
            bytes,
            close: None,
        })
    }

    fn on_client_message(&mut self, msg: &Message, now: Duration) -> Vec<FeedItem> {
        // Where the vehicle is (its route as of its latest message) is what it answers 0x8201
        // and 0x8500 with; set only when a command comes, so uncommanded terminals hold nothing.
        let phone = msg.header.phone;
        let index = phone
            .to_string()
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_sub(self.cfg.first_phone));
        if let Some(g) = index.and_then(|i| self.gens.get(usize::try_from(i).ok()?))
            && g.phone == phone
            && let Some(term) = self.script.terminal_mut(&phone)
        {
            term.set_position(g.route.basic(DAY_START_SECS + g.route_secs as u64));
        }
        self.script.on_client_message(msg, now)
    }
}
