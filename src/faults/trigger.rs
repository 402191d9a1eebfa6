//! When a fault fires: counts, probability, a time window and JT808 protocol events.
//!
//! A trigger is evaluated once per *unit* the fault works on: a WebSocket message for message-level
//! faults, a frame for frame-level faults (the corrupt family, `drop`/`duplicate`/`reorder` with
//! `unit = "frame"`), a multi-packet group for the sub-packet faults, a handshake for `refuse`.
//! Every condition that is set must hold (they are ANDed), in this order:
//!
//! 1. filters (`msg_id`, `in_packet`, `packet_index`): a unit that fails a filter is not counted;
//! 2. the time window (`after_ms` <= t < `until_ms`) and the protocol event (`after_frame`): a unit
//!    outside them is not counted either;
//! 3. the unit is counted (`n` = 1, 2, ...), then `every` (n % every == 0), `at` (n == at) and
//!    `after` (n > after) are checked;
//! 4. `times`: at most that many firings in the whole run (all connections);
//! 5. `probability`: a draw from the fault's seeded RNG, made only when 1-4 passed.
//!
//! With no condition set, a fault fires on every unit.
//!
//! **Scope.** `scope = "connection"` (the default) counts units and measures `after_ms`/`until_ms`
//! from the connection's handshake, and `after_frame` counts frames of the same connection: every
//! reconnect starts afresh, as a flaky link does. `scope = "run"` counts across all connections and
//! measures time from virtual time 0: "the 10th message of the run, once". `times` is always
//! run-wide, so it bounds a fault that would otherwise fire on every reconnect.

use std::fmt;
use std::time::Duration;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Direction;
use super::limits::{MAX_COUNT, MAX_MS, MAX_PACKET_INDEX, check, check_opt};
use crate::codec::PacketInfo;

/// A JT808 message id, written `0x0200` in TOML (a hex integer) or `"0x0200"` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsgId(pub u16);

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:04X}", self.0)
    }
}

impl Serialize for MsgId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MsgId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Str(String),
        }
        let bad = |what: &dyn fmt::Display| {
            serde::de::Error::custom(format!("message id {what} is not a 16-bit id like 0x0200"))
        };
        match Raw::deserialize(d)? {
            Raw::Int(n) => u16::try_from(n).map(MsgId).map_err(|_| bad(&n)),
            Raw::Str(s) => {
                let t = s.trim();
                let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                    Some(h) => u16::from_str_radix(h, 16),
                    None => t.parse::<u16>(),
                };
                parsed.map(MsgId).map_err(|_| bad(&format!("{s:?}")))
            }
        }
    }
}

/// Where counters and the time window live; see the module doc.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Per connection: counters, time and protocol events restart at every handshake.
    #[default]
    Connection,
    /// Across the whole run (all connections); time counts from virtual time 0.
    Run,
}

/// A protocol event: "once `nth` frames with message id `id` have crossed the link in `dir`".
/// The frames of the message being judged are counted only after it passed, so
/// `after_frame = { id = 0x0200, nth = 3 }` fires from the message *after* the one carrying the
/// 3rd 0x0200, and `{ id = 0x9205, dir = "to_gateway" }` fires once the client has sent a 0x9205.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameEvent {
    /// The message id to count.
    pub id: MsgId,
    /// How many such frames must have passed (default 1).
    #[serde(default = "one")]
    pub nth: u64,
    /// Which direction to count; default: the fault's own direction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<Direction>,
}

fn one() -> u64 {
    1
}

/// When a fault fires. All fields are optional; see the module doc for how they combine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// Fire on every N-th counted unit (N >= 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<u64>,
    /// Fire on the K-th counted unit only (1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<u64>,
    /// Fire on every counted unit after the K-th.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// Fire at most this many times in the whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// Fire with this probability (0..=1), drawn from the fault's seeded RNG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// Not before this many milliseconds (from the handshake, or from time 0 with `scope = "run"`).
    /// A disconnect or stall whose only condition is time fires at that instant even if no message
    /// passes ([`super::Pipeline::on_tick`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_ms: Option<u64>,
    /// Not from this many milliseconds on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// Only units carrying a frame with this message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<MsgId>,
    /// Only units that carry a sub-packet (body-properties bit 13) when true; only units that carry
    /// none when false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_packet: Option<bool>,
    /// Only units carrying the sub-packet with this index (1-based, JT808.md §4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_index: Option<u16>,
    /// Only after a protocol event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_frame: Option<FrameEvent>,
    /// Per connection (default) or across the run.
    #[serde(default, skip_serializing_if = "is_default_scope")]
    pub scope: Scope,
}

fn is_default_scope(s: &Scope) -> bool {
    *s == Scope::Connection
}

/// The field names of [`Trigger`], so a spec's flat table can be split into trigger and kind.
pub(crate) const TRIGGER_KEYS: &[&str] = &[
    "every",
    "at",
    "after",
    "times",
    "probability",
    "after_ms",
    "until_ms",
    "msg_id",
    "in_packet",
    "packet_index",
    "after_frame",
    "scope",
];

impl Trigger {
    /// Checks the values; the message names the field.
    pub(crate) fn validate(&self) -> Result<(), String> {
        for (k, v) in [("every", self.every), ("at", self.at)] {
            check_opt(k, v, 1..=MAX_COUNT).map_err(|e| format!("{e} (counts from 1; 0 never fires)"))?;
        }
        check_opt("after", self.after, 0..=MAX_COUNT)?;
        check_opt("times", self.times, 1..=MAX_COUNT)?;
        check_opt("probability", self.probability, 0.0..=1.0)?;
        check_opt("after_ms", self.after_ms, 0..=MAX_MS)?;
        check_opt("until_ms", self.until_ms, 0..=MAX_MS)?;
        if let (Some(a), Some(u)) = (self.after_ms, self.until_ms)
            && u <= a
        {
            return Err(format!("`until_ms` ({u}) must be after `after_ms` ({a})"));
        }
        check_opt("packet_index", self.packet_index, 1..=MAX_PACKET_INDEX)
            .map_err(|e| format!("{e} (1-based, JT808.md §4; 0 never matches)"))?;
        if let Some(ev) = &self.after_frame {
            check("after_frame.nth", ev.nth, 1..=MAX_COUNT)?;
        }
        Ok(())
    }

    /// True when time is the only condition (no counts, filters or events): such a trigger can
    /// fire from [`super::Pipeline::on_tick`] without a message.
    pub(crate) fn time_only_deadline(&self, opened: Duration) -> Option<Duration> {
        let only_time = self.every.is_none()
            && self.at.is_none()
            && self.after.is_none()
            && self.msg_id.is_none()
            && self.in_packet.is_none()
            && self.packet_index.is_none()
            && self.after_frame.is_none();
        let after = self.after_ms?;
        if !only_time {
            return None;
        }
        let base = match self.scope {
            Scope::Connection => opened,
            Scope::Run => Duration::ZERO,
        };
        Some(base + Duration::from_millis(after))
    }
}

/// What a trigger can see of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameTag {
    pub id: u16,
    pub packet: Option<PacketInfo>,
}

/// Frames seen per (direction, message id), for `after_frame`: a short list searched in order (a
/// connection carries a handful of ids; a map's first node would hold room for eleven).
#[derive(Debug, Default, Clone)]
pub(crate) struct ProtoCounts(Vec<((Direction, u16), u64)>);

impl ProtoCounts {
    pub fn observe(&mut self, dir: Direction, tags: &[FrameTag]) {
        for t in tags {
            match self.0.iter_mut().find(|(k, _)| *k == (dir, t.id)) {
                Some((_, n)) => *n += 1,
                None => {
                    // One more each time: a connection carries a handful of ids, and `push`
                    // alone would make room for four at once.
                    self.0.reserve_exact(1);
                    self.0.push(((dir, t.id), 1));
                }
            }
        }
    }
    pub fn get(&self, dir: Direction, id: u16) -> u64 {
        self.0.iter().find(|(k, _)| *k == (dir, id)).map_or(0, |(_, n)| *n)
    }
}

/// Run-wide state of one fault spec.
#[derive(Debug, Default, Clone)]
pub(crate) struct Shared {
    /// Units counted with `scope = "run"`.
    pub seen: u64,
    /// Firings, for `times`.
    pub fired: u64,
}

/// Everything a trigger evaluation reads or updates.
pub(crate) struct Eval<'a> {
    pub trigger: &'a Trigger,
    pub now: Duration,
    pub opened: Duration,
    pub dir: Direction,
    pub local_seen: &'a mut u64,
    pub shared: &'a mut Shared,
    pub proto_conn: &'a ProtoCounts,
    pub proto_run: &'a ProtoCounts,
    pub rng: &'a mut ChaCha8Rng,
}

impl Eval<'_> {
    /// One unit: does the fault fire on it? See the module doc for the order of the checks.
    pub fn fire(&mut self, unit: &[FrameTag]) -> bool {
        let t = self.trigger;
        if let Some(id) = t.msg_id
            && !unit.iter().any(|f| f.id == id.0)
        {
            return false;
        }
        if let Some(want) = t.in_packet
            && unit.iter().any(|f| f.packet.is_some()) != want
        {
            return false;
        }
        if let Some(k) = t.packet_index
            && !unit.iter().any(|f| f.packet.map(|p| p.index) == Some(k))
        {
            return false;
        }
        if !self.in_window() {
            return false;
        }
        if let Some(ev) = &t.after_frame {
            let proto = match t.scope {
                Scope::Connection => self.proto_conn,
                Scope::Run => self.proto_run,
            };
            if proto.get(ev.dir.unwrap_or(self.dir), ev.id.0) < ev.nth {
                return false;
            }
        }
        let counter = match t.scope {
            Scope::Connection => &mut *self.local_seen,
            Scope::Run => &mut self.shared.seen,
        };
        *counter += 1;
        let n = *counter;
        if t.every.is_some_and(|e| n % e != 0) || t.at.is_some_and(|a| n != a) || t.after.is_some_and(|a| n <= a) {
            return false;
        }
        self.limit_and_chance()
    }

    /// A time-only trigger reached its instant without a message: only `times` and `probability`
    /// are left to check.
    pub fn fire_time(&mut self) -> bool {
        self.in_window() && self.limit_and_chance()
    }

    fn in_window(&self) -> bool {
        let t = self.trigger;
        let base = match t.scope {
            Scope::Connection => self.opened,
            Scope::Run => Duration::ZERO,
        };
        let since = self.now.saturating_sub(base);
        !(t.after_ms.is_some_and(|a| since < Duration::from_millis(a))
            || t.until_ms.is_some_and(|u| since >= Duration::from_millis(u)))
    }

    fn limit_and_chance(&mut self) -> bool {
        let t = self.trigger;
        if t.times.is_some_and(|n| self.shared.fired >= n) {
            return false;
        }
        if let Some(p) = t.probability
            && self.rng.random::<f64>() >= p
        {
            return false;
        }
        self.shared.fired += 1;
        true
    }
}
