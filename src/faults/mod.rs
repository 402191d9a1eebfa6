//! The fault catalogue: a pure, seeded, sans-IO decision engine between the gateway and the client.
//! No tokio, no clock, no I/O in this module: the gateway drives a [`Pipeline`] with virtual time
//! (`now`) and carries out the [`Action`]s it returns.
//!
//! Shapes taken from toxiproxy (a chain of small faults per direction, each configured from data)
//! and turmoil-net (each fault a sync decision on `&mut self` with a seeded RNG). What neither has:
//! these faults know JT808. They find frames inside a WebSocket message with the codec's own
//! deframer, after the envelope prefix, and break exactly one thing in them (a check code, an
//! escape, a declared length, one sub-packet of a multi-packet message), keeping the rest valid.
//!
//! # How the gateway drives it
//!
//! - [`Pipeline::on_connect`] at every handshake: [`ConnectDecision::Accept`] or refuse with an
//!   HTTP status.
//! - [`Pipeline::on_message`] for every WebSocket message about to cross the link, in either
//!   direction (`to_client`: gateway to client; `to_gateway`: client to gateway). Both directions
//!   must go through it even with no `to_gateway` fault: protocol triggers watch both ("after the
//!   client sent 0x9205").
//! - [`Pipeline::on_tick`] whenever virtual time reaches [`Pipeline::next_deadline`].
//! - [`Pipeline::on_close`] when the connection ends, whoever ended it.
//! - [`Pipeline::take_log`] to move the decisions into the transcript.
//!
//! Actions come in order and are carried out in that order: [`Action::Send`] at its `at` (delivery
//! times never go backwards within a direction, as on TCP), [`Action::Close`] and [`Action::Abort`]
//! at their `at`, which is never before a `Send` returned earlier. After a close or abort the
//! pipeline sends nothing more on that connection. [`Action::Stall`] tells the gateway the link
//! is silent (send nothing else, not even pings, until `until`); the pipeline itself holds the
//! stalled bytes and returns them from `on_tick` when the stall ends, or from `on_close`.
//!
//! # Faults, chains and triggers
//!
//! A fault is a [`FaultSpec`]: a `type`, parameters, and common fields: `name` (for the log;
//! default the type), `direction` (default `to_client`) and a [`trigger`] (`every`, `at`,
//! `after`, `times`, `probability`, `after_ms`, `until_ms`, `msg_id`, `in_packet`, `packet_index`,
//! `after_frame`, `scope`). Faults of one direction form a chain in the order they are listed: each
//! fault's output feeds the next. Frame-level faults only see frames whole inside one message, so
//! list them before `split`. Counters are per connection unless `scope = "run"`; `times` is always
//! per run (see [`trigger`]). Every connection gets fresh fault instances with RNGs seeded from the
//! pipeline seed, the fault's position, the connection id and the direction: the same seed gives
//! the same bytes.
//!
//! In a scenario file:
//!
//! ```toml
//! [[faults]]
//! type = "corrupt_checksum"
//! msg_id = 0x0200
//! every = 3
//!
//! [[faults]]
//! type = "drop_packet"
//! index = 2
//! after_frame = { id = 0x9205, dir = "to_gateway" }   # once the client has asked for the list
//! ```
//!
//! On the command line (`serve --fault SPEC`), the body of a TOML inline table:
//! `--fault 'type="split", offsets=[3,7], every=2'` ([`FaultSpec::parse_cli`]).
//!
//! # Catalogue
//!
//! Offsets are payload offsets (after the prefix) for `split`, frame offsets (0 = the frame's
//! opening 0x7E) for the frame faults. The log's `offsets` are always message offsets, prefix
//! included. "Decoder" says what [`crate::codec::Decoder`] makes of the result.
//!
//! | type | parameters | what it does to the bytes | log `what` |
//! |---|---|---|---|
//! | `split` | `offsets`, `mode` = offsets \| random \| inside_escape \| next_to_flag, `cuts` (1) | cuts one message into several, each with the prefix; `inside_escape` cuts between 0x7D and its partner, `next_to_flag` beside a 0x7E. Decoder: same messages | `split` (cut offsets) |
//! | `coalesce` | `count` (2), `max_wait_ms` (100) | joins `count` messages into one (first prefix, then the payloads) | `coalesce` / `flush` (join offsets) |
//! | `drop` | `unit` = message \| frame | removes the message, or one frame from it | `drop` |
//! | `duplicate` | `unit` | sends the message twice, or repeats the frame right after itself | `duplicate` |
//! | `reorder` | `unit`, `distance` (1), `max_wait_ms` (1000) | holds the message until `distance` later ones passed, or moves the frame after the next frame | `reorder`, `release` |
//! | `drop_packet` | `index` (random) | removes sub-packet `index` of a multi-packet message. Decoder: group expires with that index missing | `drop_packet` |
//! | `duplicate_packet` | `index` (random) | repeats that sub-packet. Decoder: `duplicate_packet` | `duplicate_packet` |
//! | `reorder_packet` | `index` (random), `max_wait_ms` (1000) | delivers that sub-packet after the next packet of its group | `reorder_packet`, `release` |
//! | `corrupt_checksum` | `xor` (random) | check code XOR mask, escaped correctly. Decoder: `bad_checksum` | `corrupt_checksum` (frame, check byte) |
//! | `break_escape` | `byte` (0x03) | `7D 01`/`7D 02` -> `7D byte` (or inserts `7D byte` when the frame has no escape). Decoder: `invalid_escape` | `break_escape` (frame, the 0x7D) |
//! | `flip_byte` | `offset` (random), `xor` (random), `allow_delimiters` (false) | XORs one byte between the delimiters, never inside an escape pair, never producing 0x7E/0x7D (unless given). Decoder: `bad_checksum` | `flip_byte` (frame, byte) |
//! | `truncate` | `keep` (random), `close` (false) | cuts the frame after `keep` bytes (the closing 0x7E goes too). Decoder: the stump is rejected, the next frame survives | `truncate` (frame, cut) |
//! | `stray_flag` | `place` = inside \| after, `offset` | inserts a 0x7E inside the frame (two invalid frames) or after it (an empty frame, skipped) | `stray_flag` (frame, insert) |
//! | `garbage` | `len` (8), `hex` | inserts bytes before the frame (random: never 0x7E/0x7D). Decoder: `skipped` | `garbage` (frame) |
//! | `wrong_length` | `len` or `delta` (+1) | declared body length changed, check code recomputed. Decoder: `body_length_mismatch` | `wrong_length` (frame, props) |
//! | `wrong_version` | – | toggles body-properties bit 14, check code recomputed. Decoder on a 2013 frame: accepted with quirk `version_flag_on_2013_layout` (JT808.md §2.3) | `wrong_version` (frame, props) |
//! | `latency` | `ms`, `jitter_ms` | delivery `at` later by ms ± jitter, order kept | `delay` |
//! | `bandwidth` | `preset` = gprs \| edge \| 3g \| 4g, or `bps` | serialises messages at the link rate (figures in [`link`]) | `throttle` |
//! | `disconnect` | `mode` = close \| abort \| mid_frame, `code` (1001), `reason`, `offset` | the firing message is not sent; clean close, TCP drop, or part of its first frame then TCP drop | `close` / `abort` / `mid_frame` (frame, cut) |
//! | `stall` | `for_ms` (until close), `both` (true) | holds every message from the firing one on, delivers them when the stall ends | `stall`, `held`, `overflow`, `release`, `stall_end` |
//! | `refuse` | `count` (1), `status` (503) | the next handshakes get HTTP `status` | `refuse` |
//!
//! Messages a fault still holds when the connection closes are logged `undelivered`; a trigger
//! that fired on a frame the fault cannot act on is logged `no_target`.
//!
//! Every numeric parameter and trigger field has a range ([`limits`]: counts up to 10^12, times
//! up to 7 days, at most 1,024 messages held or cuts made, 64 KiB of garbage, 1 GiB held by a
//! stall, `probability` within 0..=1, `bps` above 0); a value outside it is refused when the spec
//! is read, naming the fault, the key and the range.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

pub mod coalesce;
pub mod corrupt;
pub mod disconnect;
mod fault;
mod frames;
pub mod limits;
pub mod link;
pub mod order;
pub mod outcome;
mod pipeline;
pub mod refuse;
pub mod split;
pub mod stall;
pub mod subpacket;
pub mod trigger;

pub use outcome::Outcome;
pub use pipeline::Pipeline;
pub use trigger::{FrameEvent, MsgId, Scope, Trigger};

use fault::{Fault, FaultType};

/// Which way a message crosses the link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Gateway (the simulated terminal side) to the client under test.
    #[default]
    ToClient,
    /// Client to gateway.
    ToGateway,
}

impl Direction {
    pub(crate) fn index(self) -> usize {
        match self {
            Direction::ToClient => 0,
            Direction::ToGateway => 1,
        }
    }

    /// The opposite direction.
    pub fn other(self) -> Direction {
        match self {
            Direction::ToClient => Direction::ToGateway,
            Direction::ToGateway => Direction::ToClient,
        }
    }
}

/// Accept a WebSocket handshake, or refuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum ConnectDecision {
    /// Complete the handshake.
    Accept,
    /// Answer the upgrade request with this HTTP status instead of 101.
    Refuse {
        /// HTTP status, e.g. 503.
        status: u16,
    },
}

/// What the gateway must do. See the module doc for the ordering contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Deliver one WebSocket message in `dir` at virtual time `at` (to the client's socket, or to
    /// the gateway's terminal script for `to_gateway`).
    Send {
        /// Direction.
        dir: Direction,
        /// Absolute virtual time of delivery; never earlier than the previous `Send` in `dir`.
        #[serde(rename = "at_us", serialize_with = "micros")]
        at: Duration,
        /// The message, envelope prefix included.
        #[serde(with = "hex::serde")]
        bytes: Vec<u8>,
    },
    /// Clean WebSocket close.
    Close {
        /// Close code (RFC 6455 §7.4).
        code: u16,
        /// Close reason.
        reason: String,
        /// When: after everything sent before it.
        #[serde(rename = "at_us", serialize_with = "micros")]
        at: Duration,
    },
    /// Drop the TCP connection, no close frame.
    Abort {
        /// When: after everything sent before it.
        #[serde(rename = "at_us", serialize_with = "micros")]
        at: Duration,
    },
    /// Go silent, socket open: the pipeline holds the bytes and returns them when the stall ends
    /// (`on_tick` at `until`) or at `on_close`. `None`: until the connection closes.
    Stall {
        /// End of the stall.
        #[serde(rename = "until_us", serialize_with = "opt_micros")]
        until: Option<Duration>,
    },
}

/// Virtual times serialise as whole microseconds, the transcript's unit.
fn micros<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_micros() as u64)
}

fn opt_micros<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => micros(d, s),
        None => s.serialize_none(),
    }
}

/// One decision, for the transcript: cause beside effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultRecord {
    /// Virtual time in microseconds.
    pub t_us: u64,
    /// Connection id (as the gateway numbered it).
    pub conn: u64,
    /// Direction; none for handshake decisions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<Direction>,
    /// 1-based index of the message as it entered the pipeline (per connection and direction);
    /// none for decisions made on a timer or a handshake.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg: Option<u64>,
    /// The fault's name.
    pub fault: String,
    /// What it did (see the catalogue's "log" column).
    pub what: Outcome,
    /// Byte offsets in the message as it reached the fault, prefix included.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub offsets: Vec<usize>,
    /// Details: which frame, old and new values, byte counts.
    pub detail: String,
}

/// A fault spec that cannot be used. Whose fault: the scenario's or the command line's author.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FaultSpecError {
    /// `--fault SPEC` did not parse.
    #[error("--fault {input:?}: {message}")]
    Cli {
        /// The text given.
        input: String,
        /// What is wrong and where (column within the text).
        message: String,
    },
    /// A spec parsed but a value is out of range or two fields contradict each other.
    #[error("fault #{} ({fault}): {message}", index + 1)]
    Invalid {
        /// 0-based position in the list.
        index: usize,
        /// The fault's type.
        fault: String,
        /// What is wrong.
        message: String,
    },
}

/// Declares [`FaultKind`] from the catalogue's rows, `Variant(parameters) = "type"`: the enum
/// (serde's `type` tag is the row's name), [`FaultKind::type_name`], [`FAULT_TYPES`] and the one
/// dispatch to the parameters' [`FaultType`]. A new fault is a file with its parameters (which
/// implement [`FaultType`]), one row here and one row in the README's catalogue.
macro_rules! catalogue {
    ($($variant:ident($params:ty) = $name:literal,)*) => {
        /// The fault types and their parameters. See the catalogue in the module doc.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type")]
        #[allow(missing_docs)] // each variant is documented by its parameter type and the catalogue
        pub enum FaultKind {
            $(#[serde(rename = $name)] $variant($params),)*
        }

        /// Every `type` value, in catalogue order (error messages list them).
        pub const FAULT_TYPES: &[&str] = &[$($name),*];

        impl FaultKind {
            /// The `type` string.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(FaultKind::$variant(_) => $name,)*
                }
            }

            /// The parameters, as what checks and builds them.
            fn params(&self) -> &dyn FaultType {
                match self {
                    $(FaultKind::$variant(p) => p,)*
                }
            }
        }
    };
}

catalogue! {
    Split(split::Split) = "split",
    Coalesce(coalesce::Coalesce) = "coalesce",
    Drop(order::DropFault) = "drop",
    Duplicate(order::Duplicate) = "duplicate",
    Reorder(order::Reorder) = "reorder",
    DropPacket(subpacket::DropPacket) = "drop_packet",
    DuplicatePacket(subpacket::DuplicatePacket) = "duplicate_packet",
    ReorderPacket(subpacket::ReorderPacket) = "reorder_packet",
    CorruptChecksum(corrupt::CorruptChecksum) = "corrupt_checksum",
    BreakEscape(corrupt::BreakEscape) = "break_escape",
    FlipByte(corrupt::FlipByte) = "flip_byte",
    Truncate(corrupt::Truncate) = "truncate",
    StrayFlag(corrupt::StrayFlag) = "stray_flag",
    Garbage(corrupt::Garbage) = "garbage",
    WrongLength(corrupt::WrongLength) = "wrong_length",
    WrongVersion(corrupt::WrongVersion) = "wrong_version",
    Latency(link::Latency) = "latency",
    Bandwidth(link::Bandwidth) = "bandwidth",
    Disconnect(disconnect::Disconnect) = "disconnect",
    Stall(stall::Stall) = "stall",
    Refuse(refuse::Refuse) = "refuse",
}

impl FaultKind {
    fn validate(&self) -> Result<(), String> {
        self.params().validate()
    }

    /// Disconnect and stall can fire on a timer without a message.
    fn acts_on_time(&self) -> bool {
        self.params().acts_on_time()
    }

    /// A fresh instance for one connection and direction; `None` for handshake-only faults.
    fn build(&self) -> Option<Box<dyn Fault>> {
        self.params().build()
    }
}

/// One fault as configured: a flat table of `type`, its parameters and the common fields (`name`,
/// `direction`, trigger fields). Deserialises from a scenario's `[[faults]]` table (or JSON) with
/// unknown fields rejected, and from `--fault` text with [`FaultSpec::parse_cli`].
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    /// Name in the log; default the type.
    pub name: Option<String>,
    /// Which direction's chain it sits in (default `to_client`).
    pub direction: Direction,
    /// When it fires.
    pub trigger: Trigger,
    /// What it does.
    pub kind: FaultKind,
}

impl FaultSpec {
    /// A spec with defaults: unnamed, `to_client`, firing on every unit.
    pub fn new(kind: FaultKind) -> FaultSpec {
        FaultSpec {
            name: None,
            direction: Direction::ToClient,
            trigger: Trigger::default(),
            kind,
        }
    }

    /// Parses `--fault` text: the body of a TOML inline table, e.g.
    /// `type="split", offsets=[3,7], every=2` (surrounding braces are allowed). Message ids may be
    /// written as TOML hex integers: `msg_id=0x0200`.
    pub fn parse_cli(text: &str) -> Result<FaultSpec, FaultSpecError> {
        let body = text.trim();
        let body = body.strip_prefix('{').and_then(|b| b.strip_suffix('}')).unwrap_or(body);
        const HEAD: &str = "f = { ";
        let doc = format!("{HEAD}{body} }}");
        let err = |message: String| FaultSpecError::Cli {
            input: text.to_string(),
            message,
        };
        let mut table: toml::Table = toml::from_str(&doc).map_err(|e| {
            let at = e
                .span()
                .map(|s| format!(" (at column {})", s.start.saturating_sub(HEAD.len()) + 1))
                .unwrap_or_default();
            err(format!("not a TOML inline-table body: {}{at}", e.message().trim()))
        })?;
        let spec = match table.remove("f") {
            Some(toml::Value::Table(t)) => FaultSpec::from_table(t).map_err(err)?,
            _ => return Err(err("expected key = value pairs".into())),
        };
        spec.validate()
            .map_err(|m| err(format!("{}: {m}", spec.kind.type_name())))?;
        Ok(spec)
    }

    /// Checks values that serde cannot (ranges, contradictions).
    pub fn validate(&self) -> Result<(), String> {
        self.trigger.validate()?;
        self.kind.validate()
    }

    fn from_table(mut t: toml::Table) -> Result<FaultSpec, String> {
        let name = match t.remove("name") {
            None => None,
            Some(toml::Value::String(s)) => Some(s),
            Some(v) => return Err(format!("`name` must be a string, found {}", v.type_str())),
        };
        let direction = match t.remove("direction") {
            None => Direction::default(),
            Some(v) => v.try_into().map_err(|e: toml::de::Error| {
                format!("`direction`: {} (to_client or to_gateway)", e.message().trim())
            })?,
        };
        let mut trig = toml::Table::new();
        for k in trigger::TRIGGER_KEYS {
            if let Some(v) = t.remove(*k) {
                trig.insert((*k).to_string(), v);
            }
        }
        let trigger: Trigger = toml::Value::Table(trig)
            .try_into()
            .map_err(|e: toml::de::Error| format!("trigger: {}", e.message().trim()))?;
        let Some(ty) = t.get("type").cloned() else {
            return Err(format!("missing `type` (one of: {})", FAULT_TYPES.join(", ")));
        };
        let kind: FaultKind = toml::Value::Table(t).try_into().map_err(|e: toml::de::Error| {
            let m = e.message().trim().to_string();
            if m.contains("unknown field") {
                format!(
                    "{}: {m}; common fields are name, direction, {}",
                    ty.as_str().unwrap_or("?"),
                    trigger::TRIGGER_KEYS.join(", ")
                )
            } else if !ty.as_str().is_some_and(|t| FAULT_TYPES.contains(&t)) {
                format!("unknown fault type {ty} (one of: {})", FAULT_TYPES.join(", "))
            } else {
                format!("{}: {m}", ty.as_str().unwrap_or("?"))
            }
        })?;
        Ok(FaultSpec {
            name,
            direction,
            trigger,
            kind,
        })
    }
}

/// Reads a spec and checks its values ([`FaultSpec::validate`]): a scenario's out-of-range
/// parameter is then an error at its `[[faults]]` table's `file:line:column`, like a misspelt key,
/// instead of surfacing only when the run builds its pipeline.
impl<'de> Deserialize<'de> for FaultSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let table = toml::Table::deserialize(d)?;
        let spec = FaultSpec::from_table(table).map_err(serde::de::Error::custom)?;
        spec.validate()
            .map_err(|m| serde::de::Error::custom(format!("{}: {m}", spec.kind.type_name())))?;
        Ok(spec)
    }
}

/// Serialises back to the flat table it was read from (for transcript headers).
impl Serialize for FaultSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap};
        let mut m = s.serialize_map(None)?;
        let kind = serde_json::to_value(&self.kind).map_err(S::Error::custom)?;
        let trig = serde_json::to_value(&self.trigger).map_err(S::Error::custom)?;
        if let Some(o) = kind.as_object()
            && let Some(ty) = o.get("type")
        {
            m.serialize_entry("type", ty)?;
        }
        if let Some(n) = &self.name {
            m.serialize_entry("name", n)?;
        }
        m.serialize_entry("direction", &self.direction)?;
        for v in [&kind, &trig] {
            if let Some(o) = v.as_object() {
                for (k, v) in o.iter().filter(|(k, _)| *k != "type") {
                    m.serialize_entry(k, v)?;
                }
            }
        }
        m.end()
    }
}

impl fmt::Display for FaultRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t={}us conn={}", self.t_us, self.conn)?;
        if let Some(d) = self.dir {
            write!(
                f,
                " {}",
                if d == Direction::ToClient {
                    "to_client"
                } else {
                    "to_gateway"
                }
            )?;
        }
        if let Some(m) = self.msg {
            write!(f, " msg={m}")?;
        }
        write!(f, " {}: {}", self.fault, self.what)?;
        if !self.offsets.is_empty() {
            write!(f, " @{:?}", self.offsets)?;
        }
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}
