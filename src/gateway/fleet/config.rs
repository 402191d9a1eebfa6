//! What a generated fleet is asked to be ([`FleetConfig`]): how many terminals, which header
//! versions, what they send ([`Mix`] or [`MessageIds`]) and how often, and the limits that keep a
//! configuration from asking for what cannot work. Plain values and their validation only.

use serde::{Deserialize, Serialize};

use crate::codec::Version;
use crate::codec::frame::MAX_BODY_LEN;
use crate::gateway::terminal::TerminalSettings;

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
