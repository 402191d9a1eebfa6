//! The stress run itself: one process, the real [`Gateway`] over loopback TCP and N real [`Client`]s
//! (the same type `jt808-harness client` runs), each on its own gateway session `/c/<id>`, through
//! disconnect storms; the observations go into a [`Metrics`] and come out as [`RunFigures`].
//!
//! The run, in order:
//! 1. The open-file limit is raised and checked (each connection costs this process two descriptors
//!    when the gateway is in it, see [`sys::FDS_PER_CLIENT`]); the gateway starts on `127.0.0.1:0`
//!    (or in a child process, [`GatewayPlacement::ChildProcess`], or not at all for `--url`).
//! 2. The idle baseline RSS is read, then clients start at [`StressOpts::connect_rate`] per second.
//!    Each session's [`StressFeed`] offers the client numbered 0x0200 frames (the sequence number is
//!    the header serial and, unwrapped, the mileage item 0x01), one per [`StressOpts::frame_interval`].
//! 3. Once every client is connected and [`StressOpts::settle`] has passed, the idle-connected RSS is
//!    read (both readings after [`trim_heap`]): memory per idle connection. The storm phase of [`StressOpts::duration`] starts.
//! 4. Storm phase: each client queues a 0x8103 platform command every
//!    [`StressOpts::command_interval`] (the feed answers it with 0x0001, as a terminal would); each
//!    [`StormSpec`] fires every `every` seconds, picks `fraction` of the live connections (a seeded
//!    choice over their sorted client ids, so a seed picks the same clients every time) and drops
//!    them with [`Gateway::command`].
//! 5. Drain: no new commands, the feeds stop offering frames; the run waits until every client is
//!    connected, has every frame offered and every command confirmed, or [`StressOpts::drain_timeout`]
//!    passes. Then the figures are computed and everything is shut down.
//!
//! Attempts: the figures count *re*connection attempts (a client's attempt 2, 3, ...), the load the
//! backoff puts on the gateway; first attempts follow the ramp and are left out.
//!
//! Times: every observation is a `Duration` since the run started. A client event's time is the
//! client's start offset plus the event's own `t_ms` (so a lagging collector does not stretch the
//! figures); an event is never placed before the storm that caused it (storms are recorded before
//! the connections are told to drop, and a dropped client's later events are clamped to the storm's
//! time, which the millisecond resolution of `t_ms` could otherwise undercut).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::SelectAll;
use indicatif::{ProgressBar, ProgressStyle};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::metrics::{Metrics, RunFigures, StormMode};
use super::sys::{self, ResourceSample};
use crate::client::{
    BackoffConfig, Client, ClientConfig, ClientError, DisconnectReason, Event, EventKind, Events, Jitter, OutboxConfig,
    TcpConnector, WsSettings,
};
use crate::codec::body::location::{ItemValue, Location, LocationItem};
use crate::codec::body::{Body, GeneralResponse, RawBody};
use crate::codec::wire::BcdTime;
use crate::codec::{Message, Phone, Version};
use crate::gateway::{ConnCommand, Feed, FeedItem, Gateway, GatewayConfig, GatewayError, LogLevel};
use crate::transport::Listener;

/// The command every client sends: 0x8103 set terminal parameters (JT/T 808-2019 §8.8), one
/// parameter (0x0001 heartbeat interval, DWORD 30 s). The terminal answers it with 0x0001.
pub const COMMAND_ID: u16 = 0x8103;

/// First phone number of the fleet; client `id` is this plus `id`.
pub const FIRST_PHONE: u64 = 13_900_000_000;

/// Session path of client `id` (global id, also under `--shard`).
pub fn session_path(id: usize) -> String {
    format!("/c/{id}")
}

/// The client id of a session path made by [`session_path`].
pub fn client_of_session(path: &str) -> Option<usize> {
    path.strip_prefix("/c/")?.parse().ok()
}

fn phone_of(id: usize) -> Phone {
    // 11 digits: always a valid phone.
    Phone::parse(&(FIRST_PHONE + id as u64).to_string()).unwrap_or_else(|_| Phone::from_bcd(&[0; 6]))
}

// ===== StressFeed =====

/// What one gateway session serves in a stress run: numbered 0x0200 location reports, frame `k` due
/// at `phase + k × interval` of gateway time, and a terminal that confirms every platform command
/// with 0x0001 (JT/T 808-2019 §8.1: the terminal answers a platform message that needs no specific
/// answer with the general response naming its serial and id).
///
/// Frame `k` carries `k` twice: as its header serial (wrapping at 65,536) and whole as the mileage
/// item 0x01 (a DWORD), which is what [`frame_seq`] reads back. The phase spreads the fleet's frames
/// over the interval instead of offering all of them at the same instant.
///
/// The schedule ends at the stop time (gateway time, shared with the orchestration): frames due at
/// or after it are never made, so the number each session offers is [`frames_before`] of the stop
/// time, known without asking the gateway.
#[derive(Debug)]
pub struct StressFeed {
    phone: Phone,
    interval: Duration,
    phase: Duration,
    next: u64,
    stop: Arc<AtomicU64>,
    reply_serial: u16,
}

/// No stop time set (the [`StressFeed`] stop flag's value until the drain begins).
pub const NO_STOP: u64 = u64::MAX;

impl StressFeed {
    /// The feed of session `path` (client id from [`client_of_session`]; another path gets id 0).
    /// `stop` holds the stop time in gateway microseconds, [`NO_STOP`] until set.
    pub fn new(path: &str, interval: Duration, stop: Arc<AtomicU64>) -> StressFeed {
        let id = client_of_session(path).unwrap_or(0);
        StressFeed {
            phone: phone_of(id),
            interval: interval.max(Duration::from_millis(1)),
            phase: phase_of(id, interval),
            next: 0,
            stop,
            reply_serial: 0,
        }
    }
}

/// The offset of client `id`'s frame schedule: hundredths of the interval, by id.
pub fn phase_of(id: usize, interval: Duration) -> Duration {
    interval.max(Duration::from_millis(1)) * (id % 100) as u32 / 100
}

/// How many frames a session whose schedule is `phase + k × interval` offers before `stop`.
pub fn frames_before(stop: Duration, phase: Duration, interval: Duration) -> u64 {
    let interval = interval.max(Duration::from_millis(1)).as_micros();
    match stop.as_micros().checked_sub(phase.as_micros()) {
        Some(span) if span > 0 => span.div_ceil(interval) as u64,
        _ => 0,
    }
}

/// The frame's stress sequence number, if it is a [`StressFeed`] frame (0x0200 with a mileage item).
pub fn frame_seq(m: &Message) -> Option<u64> {
    match (&m.body, m.header.msg_id) {
        (Body::LocationReport(loc), Location::ID) => match loc.item(0x01) {
            Some(LocationItem {
                value: ItemValue::Mileage(v),
                ..
            }) => Some(u64::from(v)),
            _ => None,
        },
        _ => None,
    }
}

fn location_frame(phone: Phone, seq: u64) -> Vec<u8> {
    let loc = Location {
        alarm: 0,
        status: 0,
        lat: 22_543_096 + (seq % 1000) as u32,
        lng: 114_057_865,
        altitude: 12,
        speed: 400,
        direction: 90,
        time: BcdTime([0x25, 0x01, 0x01, 0x08, 0x00, 0x00]),
        items: [LocationItem {
            id: 0x01,
            value: ItemValue::Mileage(seq as u32),
        }]
        .into_iter()
        .collect(),
        issues: Vec::new(),
    };
    Message::new(
        Location::ID,
        Version::V2013,
        phone,
        seq as u16,
        Body::LocationReport(loc),
    )
    .encode()
}

impl Feed for StressFeed {
    fn next_item(&mut self) -> Option<FeedItem> {
        let due = self.phase + self.interval * u32::try_from(self.next).ok()?;
        if due.as_micros() >= u128::from(self.stop.load(Ordering::Acquire)) {
            return None;
        }
        let item = FeedItem {
            due,
            bytes: location_frame(self.phone, self.next),
            close: None,
        };
        self.next += 1;
        Some(item)
    }

    fn on_client_message(&mut self, msg: &Message, now: Duration) -> Vec<FeedItem> {
        if !crate::client::outbox::needs_confirmation(msg.header.msg_id) {
            return Vec::new();
        }
        let answer = GeneralResponse {
            reply_serial: msg.header.serial,
            reply_id: msg.header.msg_id,
            result: GeneralResponse::OK,
        };
        let serial = self.reply_serial;
        self.reply_serial = self.reply_serial.wrapping_add(1);
        let m = Message::new(
            GeneralResponse::TERMINAL_ID,
            Version::V2013,
            msg.header.phone,
            serial,
            Body::TerminalGeneralResponse(answer),
        );
        vec![FeedItem {
            due: now,
            bytes: m.encode(),
            close: None,
        }]
    }
}

fn command_message(id: usize) -> Message {
    // One parameter: 0x0001 terminal heartbeat interval, 4 bytes, 30 s.
    let body = vec![1, 0, 0, 0, 1, 4, 0, 0, 0, 30];
    Message::new(
        COMMAND_ID,
        Version::V2013,
        phone_of(id),
        0,
        Body::Raw(RawBody { raw: body }),
    )
}

// ===== options =====

/// One storm schedule: `every=10s,fraction=0.3,mode=abort[,start=5s]` fires at `start`, `start +
/// every`, ... (default `start` = `every`) from the start of the storm phase while inside it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StormSpec {
    /// Period.
    pub every: Duration,
    /// First storm (default: `every`).
    pub start: Option<Duration>,
    /// Fraction of the live connections dropped, 0 to 1.
    pub fraction: f64,
    /// How they are dropped.
    pub mode: StormMode,
}

/// A `--storm`, `--duration` or `--shard` value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?}: {why}")]
pub struct ParseError {
    /// Which option.
    pub what: &'static str,
    /// The value given.
    pub value: String,
    /// What is wrong.
    pub why: String,
}

/// Parses `1.5`, `250ms`, `30s`, `2m` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, ParseError> {
    let bad = |why: &str| ParseError {
        what: "duration",
        value: s.to_string(),
        why: why.to_string(),
    };
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let v: f64 = num.trim().parse().map_err(|_| bad("not a number"))?;
    let secs = match unit {
        "ms" => v / 1e3,
        "s" => v,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(bad("unit must be ms, s, m or h")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| bad(&e.to_string()))
}

impl FromStr for StormSpec {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<StormSpec, ParseError> {
        let bad = |why: String| ParseError {
            what: "--storm",
            value: s.to_string(),
            why,
        };
        let (mut every, mut start, mut fraction, mut mode) = (None, None, None, None);
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("{part:?} is not key=value")))?;
            match k.trim() {
                "every" => every = Some(parse_duration(v).map_err(|e| bad(e.to_string()))?),
                "start" => start = Some(parse_duration(v).map_err(|e| bad(e.to_string()))?),
                "fraction" => {
                    let f: f64 = v
                        .trim()
                        .parse()
                        .map_err(|_| bad(format!("fraction {v:?} is not a number")))?;
                    if !(0.0..=1.0).contains(&f) {
                        return Err(bad(format!("fraction {f} is outside 0..=1")));
                    }
                    fraction = Some(f);
                }
                "mode" => {
                    mode = Some(match v.trim() {
                        "close" => StormMode::Close,
                        "abort" => StormMode::Abort,
                        "stall" => StormMode::Stall,
                        other => return Err(bad(format!("mode {other:?} is not close, abort or stall"))),
                    })
                }
                other => return Err(bad(format!("unknown key {other:?} (every, start, fraction, mode)"))),
            }
        }
        let every = every.ok_or_else(|| bad("every= is missing".into()))?;
        if every.is_zero() {
            return Err(bad("every= must be above zero".into()));
        }
        Ok(StormSpec {
            every,
            start,
            fraction: fraction.ok_or_else(|| bad("fraction= is missing".into()))?,
            mode: mode.unwrap_or(StormMode::Abort),
        })
    }
}

impl fmt::Display for StormSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "every={}s,", self.every.as_secs_f64())?;
        if let Some(s) = self.start {
            write!(f, "start={}s,", s.as_secs_f64())?;
        }
        write!(f, "fraction={},mode={}", self.fraction, self.mode)
    }
}

/// The storms of `specs` inside a storm phase of `duration`, in time order (ties in spec order).
pub fn storm_schedule(specs: &[StormSpec], duration: Duration) -> Vec<(Duration, StormSpec)> {
    let mut out = Vec::new();
    for s in specs {
        let mut at = s.start.unwrap_or(s.every);
        while at < duration {
            out.push((at, *s));
            at += s.every;
        }
    }
    out.sort_by_key(|(at, _)| *at);
    out
}

/// `--shard i/n`: this process runs clients `i, i+n, i+2n, ...` of the fleet (0-based `i`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: usize,
    /// Shards in all.
    pub count: usize,
}

impl FromStr for Shard {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Shard, ParseError> {
        let bad = |why: &str| ParseError {
            what: "--shard",
            value: s.to_string(),
            why: why.to_string(),
        };
        let (i, n) = s.split_once('/').ok_or_else(|| bad("expected i/n, e.g. 0/4"))?;
        let index: usize = i.trim().parse().map_err(|_| bad("i is not a number"))?;
        let count: usize = n.trim().parse().map_err(|_| bad("n is not a number"))?;
        if count == 0 || index >= count {
            return Err(bad("need 0 <= i < n"));
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// The global client ids of this shard in a fleet of `clients`.
    pub fn ids(&self, clients: usize) -> impl Iterator<Item = usize> + use<> {
        (self.index..clients).step_by(self.count)
    }

    fn local(&self, global: usize) -> Option<usize> {
        let off = global.checked_sub(self.index)?;
        (off % self.count == 0).then_some(off / self.count)
    }
}

/// Where the gateway runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayPlacement {
    /// In this process (two descriptors per client).
    InProcess,
    /// In a child process started as `exe stress --serve-gateway ...` (one descriptor per client in
    /// each process, and the memory of each side measured apart).
    ChildProcess {
        /// The `jt808-harness` binary.
        exe: PathBuf,
    },
    /// An external gateway at this `ws://host:port` URL; no storms, frames counted as they arrive.
    External {
        /// Base URL; each client appends its session path.
        url: String,
    },
}

/// Everything a stress run needs. [`StressOpts::new`] gives the documented defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct StressOpts {
    /// Clients in the fleet.
    pub clients: usize,
    /// Length of the storm phase (after all are connected). Default 30 s.
    pub duration: Duration,
    /// Storm schedules.
    pub storms: Vec<StormSpec>,
    /// Seed of the storm choices and of each client's backoff jitter (mixed with its id).
    pub seed: u64,
    /// Backoff jitter of every client. Default full.
    pub jitter: Jitter,
    /// Where the gateway runs. Default in this process.
    pub gateway: GatewayPlacement,
    /// Run only this shard of the fleet.
    pub shard: Option<Shard>,
    /// One numbered frame per client this often. Default 1 s.
    pub frame_interval: Duration,
    /// One command per client this often during the storm phase. Default 5 s.
    pub command_interval: Duration,
    /// Clients started per second. Default 2,000 (tokio's default listen backlog is 1,024; ours is
    /// [`LISTEN_BACKLOG`]).
    pub connect_rate: u32,
    /// Give up waiting for the whole fleet to connect after this. Default 60 s.
    pub connect_wait: Duration,
    /// Quiet time between all connected and the idle-connected memory reading. Default 1 s.
    pub settle: Duration,
    /// Backoff ceiling of the first retry. Default 500 ms.
    pub backoff_min: Duration,
    /// Largest backoff delay. Default 10 s.
    pub backoff_max: Duration,
    /// Client ping interval. Default 2 s.
    pub ping_interval: Duration,
    /// Client idle timeout (how long a stalled connection takes to notice). Default 6 s.
    pub idle_timeout: Duration,
    /// After the storm phase, wait at most this long for every client, frame and confirmation.
    /// Default 30 s.
    pub drain_timeout: Duration,
    /// Resource readings this often. Default 500 ms.
    pub sample_every: Duration,
    /// Clients per loopback source address ([`sys::source_ip`]). Default
    /// [`sys::MAX_CONNECTIONS_PER_SOURCE`].
    pub per_source: usize,
    /// WebSocket read buffer on both sides, bytes. Default 4 KiB.
    pub ws_buffer: usize,
    /// Draw a progress line on the terminal.
    pub progress: bool,
    /// Label of the run in the report.
    pub label: String,
    /// Loopback source addresses to skip: a second run in one process (`--jitter both`) starts on
    /// fresh addresses, so it does not search for free ports among the first run's TIME_WAIT
    /// sockets (the kernel's port search for `bind(ip, 0)` slows down sharply when most ports of an
    /// address are taken). Default 0.
    pub source_offset: usize,
}

/// Listen backlog of the stress gateway's socket, so a fast ramp does not overflow the SYN queue.
pub const LISTEN_BACKLOG: u32 = 4096;

impl StressOpts {
    /// A run of `clients` clients with the defaults documented on each field.
    pub fn new(clients: usize) -> StressOpts {
        StressOpts {
            clients,
            duration: Duration::from_secs(30),
            storms: Vec::new(),
            seed: 0,
            jitter: Jitter::Full,
            gateway: GatewayPlacement::InProcess,
            shard: None,
            frame_interval: Duration::from_secs(1),
            command_interval: Duration::from_secs(5),
            connect_rate: 2000,
            connect_wait: Duration::from_secs(60),
            settle: Duration::from_secs(1),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            ping_interval: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(6),
            drain_timeout: Duration::from_secs(30),
            sample_every: Duration::from_millis(500),
            per_source: sys::MAX_CONNECTIONS_PER_SOURCE,
            ws_buffer: 4096,
            progress: false,
            label: "stress".into(),
            source_offset: 0,
        }
    }

    fn global_ids(&self) -> Vec<usize> {
        match self.shard {
            Some(s) => s.ids(self.clients).collect(),
            None => (0..self.clients).collect(),
        }
    }

    fn local_of(&self, global: usize) -> Option<usize> {
        match self.shard {
            Some(s) => s.local(global),
            None => Some(global),
        }
    }

    fn client_config(&self, id: usize) -> ClientConfig {
        ClientConfig {
            ping_interval: self.ping_interval,
            idle_timeout: self.idle_timeout,
            connect_timeout: Duration::from_secs(10),
            backoff: BackoffConfig {
                min: self.backoff_min,
                max: self.backoff_max,
                seed: self.seed ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                jitter: self.jitter,
                ..BackoffConfig::default()
            },
            outbox: OutboxConfig {
                capacity: 256,
                ..OutboxConfig::default()
            },
            ws: WsSettings {
                read_buffer_size: self.ws_buffer,
                write_buffer_size: self.ws_buffer,
                max_message_size: 64 << 10,
                ..WsSettings::default()
            },
            event_capacity: 256,
            ..ClientConfig::default()
        }
    }
}

// ===== outcome and errors =====

/// What [`run`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Figures and series, for the table, the JSON and the report.
    pub run: RunFigures,
    /// Things that went wrong outside the figures the gate checks (clients that never connected,
    /// a drain that timed out, full send queues, clients that gave up); each fails the run.
    pub problems: Vec<String>,
    /// Open-file limit of this process.
    pub nofile: Option<sys::NofileLimit>,
    /// With the gateway in a child process: memory per idle connection of each side.
    pub sides: Option<SideMemory>,
}

/// Memory per idle connection, per side (only when the sides are separate processes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SideMemory {
    /// Client process: (idle connected RSS − baseline) / connections, bytes.
    pub client_bytes: u64,
    /// Gateway process: the same, bytes.
    pub gateway_bytes: u64,
}

/// Why a stress run could not run (a run that ran and failed its gates is an [`Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum StressError {
    /// Not enough file descriptors for the fleet in one process.
    #[error("{0}. Or run the gateway in its own process (--gateway-process): each process then needs one per client")]
    Fds(#[from] sys::FdShortage),
    /// Not enough file descriptors even with one per client.
    #[error(
        "{clients} clients need about {needed} open files in this process, but the limit is {soft} (hard {hard}); raise it with `ulimit -Hn {needed}` (as root) or LimitNOFILE={needed}"
    )]
    FdsOnePerClient {
        /// Clients.
        clients: usize,
        /// Needed.
        needed: u64,
        /// Soft limit.
        soft: u64,
        /// Hard limit.
        hard: u64,
    },
    /// The operating system refused something (bind, listen, /proc, spawn).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The gateway would not start.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// A client would not start (bad `--url`).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Client `client` needs a loopback source address past 127.255.255.254.
    #[error("client {client}: no loopback source address left at {per_source} clients per address")]
    NoSourceAddress {
        /// Client id.
        client: usize,
        /// Clients per address.
        per_source: usize,
    },
    /// The gateway child process misbehaved.
    #[error("gateway process: {0}")]
    Child(String),
    /// The options contradict each other.
    #[error("{0}")]
    Options(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> StressError {
    let what = what.into();
    move |source| StressError::Io { what, source }
}

// ===== storm choice =====

/// The clients a storm drops: `round(fraction × live.len())` of `live` (sorted client ids), chosen
/// by a partial Fisher-Yates shuffle with `rng`, returned sorted. The same live set and seed always
/// give the same choice.
pub fn choose_victims(live: &[usize], fraction: f64, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut ids = live.to_vec();
    ids.sort_unstable();
    let count = ((fraction.clamp(0.0, 1.0) * ids.len() as f64).round() as usize).min(ids.len());
    for i in 0..count {
        let k = rng.random_range(i..ids.len());
        ids.swap(i, k);
    }
    ids.truncate(count);
    ids.sort_unstable();
    ids
}

fn storm_rng(seed: u64, storm: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ (storm as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93))
}

fn conn_command(mode: StormMode) -> ConnCommand {
    match mode {
        StormMode::Close => ConnCommand::Close,
        StormMode::Abort => ConnCommand::Abort,
        StormMode::Stall => ConnCommand::Stall,
    }
}

/// Live connections of a gateway as (client id, conn id), sorted by client; a client with two (a
/// stalled one not yet superseded) is listed with its newest.
fn live_clients(gw: &Gateway) -> Vec<(usize, u64)> {
    let mut by_client: HashMap<usize, u64> = HashMap::new();
    for (conn, session) in gw.live_sessions() {
        if let Some(c) = client_of_session(&session) {
            let e = by_client.entry(c).or_insert(conn);
            *e = (*e).max(conn);
        }
    }
    let mut v: Vec<_> = by_client.into_iter().collect();
    v.sort_unstable();
    v
}

// ===== the gateway side =====

/// A stress gateway in this process: the gateway, its shutdown switch, the feeds' stop time.
struct LocalGateway {
    gw: Gateway,
    addr: SocketAddr,
    stop: Arc<AtomicU64>,
    shutdown: watch::Sender<bool>,
}

async fn start_local_gateway(
    seed: u64,
    frame_interval: Duration,
    ws_buffer: usize,
    clients: usize,
) -> Result<LocalGateway, StressError> {
    let stop = Arc::new(AtomicU64::new(NO_STOP));
    let (shutdown, rx) = watch::channel(false);
    let cfg = GatewayConfig {
        read_buffer: ws_buffer,
        write_buffer: 0,
        log: LogLevel::Off,
        max_connections: clients.saturating_mul(2).max(GatewayConfig::default().max_connections),
        seed,
        ..GatewayConfig::default()
    };
    let feed_stop = stop.clone();
    let gw = Gateway::new(
        cfg,
        Vec::new(),
        move |path| Box::new(StressFeed::new(path, frame_interval, feed_stop.clone())) as Box<dyn Feed>,
        rx,
    )?;
    let socket = TcpSocket::new_v4().map_err(io_err("gateway socket"))?;
    socket.set_reuseaddr(true).map_err(io_err("gateway socket"))?;
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .map_err(io_err("bind 127.0.0.1:0"))?;
    let listener = socket.listen(LISTEN_BACKLOG).map_err(io_err("listen"))?;
    let addr = listener.local_addr().map_err(io_err("listener address"))?;
    let serving = gw.clone();
    tokio::spawn(async move { serving.serve(Listener::Tcp(listener)).await });
    Ok(LocalGateway {
        gw,
        addr,
        stop,
        shutdown,
    })
}

impl LocalGateway {
    fn pick(&self, fraction: f64, rng: &mut ChaCha8Rng) -> Vec<(usize, u64)> {
        let live = live_clients(&self.gw);
        let ids: Vec<usize> = live.iter().map(|(c, _)| *c).collect();
        let chosen = choose_victims(&ids, fraction, rng);
        let conn: HashMap<usize, u64> = live.into_iter().collect();
        chosen.into_iter().filter_map(|c| Some((c, *conn.get(&c)?))).collect()
    }

    fn drop_conns(&self, mode: StormMode, conns: &[u64]) {
        for c in conns {
            self.gw.command(*c, conn_command(mode));
        }
    }

    /// Stops the feeds one interval from now; returns the stop time (gateway time).
    fn stop_frames(&self, interval: Duration) -> Duration {
        let at = self.gw.now() + interval;
        self.stop.store(at.as_micros() as u64, Ordering::Release);
        at
    }
}

/// The parent's end of a gateway child process (line protocol on its stdin/stdout, see
/// [`serve_gateway`]).
struct ChildGateway {
    child: Child,
    stdin: ChildStdin,
    lines: tokio::io::Lines<BufReader<ChildStdout>>,
    addr: SocketAddr,
}

impl ChildGateway {
    async fn spawn(exe: &PathBuf, opts: &StressOpts) -> Result<ChildGateway, StressError> {
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("stress")
            .arg("--serve-gateway")
            .arg("--clients")
            .arg(opts.clients.to_string())
            .arg("--seed")
            .arg(opts.seed.to_string())
            .arg("--frame-interval-ms")
            .arg(opts.frame_interval.as_millis().to_string())
            .arg("--ws-buffer")
            .arg(opts.ws_buffer.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(io_err(format!("spawn {}", exe.display())))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| StressError::Child("no stdin".into()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| StressError::Child("no stdout".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = next_line(&mut lines).await?;
        let addr = first
            .strip_prefix("listening ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| StressError::Child(format!("expected `listening ADDR`, got {first:?}")))?;
        Ok(ChildGateway {
            child,
            stdin,
            lines,
            addr,
        })
    }

    async fn ask(&mut self, line: &str) -> Result<String, StressError> {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| StressError::Child(format!("writing {line:?}: {e}")))?;
        self.stdin
            .flush()
            .await
            .map_err(|e| StressError::Child(format!("writing {line:?}: {e}")))?;
        next_line(&mut self.lines).await
    }

    async fn pick(&mut self, fraction: f64, seed: u64, storm: usize) -> Result<Vec<(usize, u64)>, StressError> {
        let answer = self.ask(&format!("pick {fraction} {seed} {storm}")).await?;
        let rest = answer
            .strip_prefix("victims")
            .ok_or_else(|| StressError::Child(format!("expected `victims ...`, got {answer:?}")))?;
        rest.split_whitespace()
            .map(|w| {
                let (c, conn) = w.split_once(':')?;
                Some((c.parse().ok()?, conn.parse().ok()?))
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| StressError::Child(format!("bad victims line {answer:?}")))
    }

    async fn drop_conns(&mut self, mode: StormMode, conns: &[u64]) -> Result<(), StressError> {
        let mut line = format!("drop {mode}");
        for c in conns {
            line.push_str(&format!(" {c}"));
        }
        let answer = self.ask(&line).await?;
        if answer != "ok" {
            return Err(StressError::Child(format!("expected ok, got {answer:?}")));
        }
        Ok(())
    }

    async fn sample(&mut self, trim: bool) -> Result<ResourceSample, StressError> {
        let answer = self.ask(if trim { "sample trim" } else { "sample" }).await?;
        let v: Vec<u64> = answer
            .strip_prefix("sample ")
            .map(|r| r.split_whitespace().filter_map(|w| w.parse().ok()).collect())
            .unwrap_or_default();
        match v.as_slice() {
            [rss, hwm, cpu_us] => Ok(ResourceSample {
                rss_bytes: *rss,
                hwm_bytes: *hwm,
                cpu: Duration::from_micros(*cpu_us),
            }),
            _ => Err(StressError::Child(format!("bad sample line {answer:?}"))),
        }
    }

    async fn stop_frames(&mut self) -> Result<Duration, StressError> {
        let answer = self.ask("stop").await?;
        answer
            .strip_prefix("stop_at ")
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_micros)
            .ok_or_else(|| StressError::Child(format!("bad stop line {answer:?}")))
    }

    async fn quit(mut self) {
        let _ = self.stdin.write_all(b"quit\n").await;
        let _ = self.stdin.flush().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

async fn next_line(lines: &mut tokio::io::Lines<BufReader<ChildStdout>>) -> Result<String, StressError> {
    match lines.next_line().await {
        Ok(Some(l)) => Ok(l),
        Ok(None) => Err(StressError::Child("exited".into())),
        Err(e) => Err(StressError::Child(format!("reading: {e}"))),
    }
}

/// Runs as the gateway child process of a [`GatewayPlacement::ChildProcess`] run: starts the stress
/// gateway and answers one line per request on stdin, on stdout:
/// - first, unasked: `listening <addr>`;
/// - `pick <fraction> <seed> <storm>` → `victims <client>:<conn> ...` (chosen, not yet dropped);
/// - `drop <close|abort|stall> <conn> ...` → `ok`;
/// - `sample` → `sample <rss bytes> <hwm bytes> <cpu µs>`;
/// - `stop` → `stop_at <gateway µs>` (the feeds offer nothing due from then on);
/// - `quit` or end of input → exits.
pub async fn serve_gateway(
    clients: usize,
    seed: u64,
    frame_interval: Duration,
    ws_buffer: usize,
) -> Result<(), StressError> {
    let lim = sys::raise_nofile_limit().map_err(io_err("raising the open-file limit"))?;
    check_one_per_client(&lim, clients)?;
    let local = start_local_gateway(seed, frame_interval, ws_buffer, clients).await?;
    let mut out = tokio::io::stdout();
    let mut say = async |line: String| -> Result<(), StressError> {
        out.write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(io_err("stdout"))?;
        out.flush().await.map_err(io_err("stdout"))
    };
    say(format!("listening {}", local.addr)).await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await.map_err(io_err("stdin"))? {
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["pick", fraction, seed, storm] => {
                let (Ok(f), Ok(s), Ok(n)) = (fraction.parse(), seed.parse(), storm.parse()) else {
                    return Err(StressError::Child(format!("bad request {line:?}")));
                };
                let picked = local.pick(f, &mut storm_rng(s, n));
                let mut a = String::from("victims");
                for (c, conn) in picked {
                    a.push_str(&format!(" {c}:{conn}"));
                }
                a
            }
            ["drop", mode, conns @ ..] => {
                let mode = match *mode {
                    "close" => StormMode::Close,
                    "abort" => StormMode::Abort,
                    "stall" => StormMode::Stall,
                    _ => return Err(StressError::Child(format!("bad request {line:?}"))),
                };
                let conns: Vec<u64> = conns.iter().filter_map(|c| c.parse().ok()).collect();
                local.drop_conns(mode, &conns);
                "ok".to_string()
            }
            ["sample", rest @ ..] => {
                if rest == ["trim"] {
                    trim_heap();
                }
                let s = sys::sample().unwrap_or_default();
                format!("sample {} {} {}", s.rss_bytes, s.hwm_bytes, s.cpu.as_micros())
            }
            ["stop"] => format!("stop_at {}", local.stop_frames(frame_interval).as_micros()),
            ["quit"] => break,
            _ => return Err(StressError::Child(format!("unknown request {line:?}"))),
        };
        say(answer).await?;
    }
    let _ = local.shutdown.send(true);
    Ok(())
}

fn check_one_per_client(lim: &sys::NofileLimit, clients: usize) -> Result<(), StressError> {
    let needed = clients as u64 + sys::FD_HEADROOM;
    if needed > lim.soft {
        return Err(StressError::FdsOnePerClient {
            clients,
            needed,
            soft: lim.soft,
            hard: lim.hard,
        });
    }
    Ok(())
}

enum GatewaySide {
    Local(LocalGateway),
    Child(Box<ChildGateway>),
    External,
}

impl GatewaySide {
    async fn pick(&mut self, fraction: f64, seed: u64, storm: usize) -> Result<Vec<(usize, u64)>, StressError> {
        match self {
            GatewaySide::Local(g) => Ok(g.pick(fraction, &mut storm_rng(seed, storm))),
            GatewaySide::Child(c) => c.pick(fraction, seed, storm).await,
            GatewaySide::External => Ok(Vec::new()),
        }
    }

    async fn drop_conns(&mut self, mode: StormMode, conns: &[u64]) -> Result<(), StressError> {
        match self {
            GatewaySide::Local(g) => {
                g.drop_conns(mode, conns);
                Ok(())
            }
            GatewaySide::Child(c) => c.drop_conns(mode, conns).await,
            GatewaySide::External => Ok(()),
        }
    }

    async fn sample(&mut self, trim: bool) -> Option<ResourceSample> {
        match self {
            GatewaySide::Child(c) => c.sample(trim).await.ok(),
            _ => None,
        }
    }

    async fn stop_frames(&mut self, interval: Duration) -> Result<Option<Duration>, StressError> {
        match self {
            GatewaySide::Local(g) => Ok(Some(g.stop_frames(interval))),
            GatewaySide::Child(c) => c.stop_frames().await.map(Some),
            GatewaySide::External => Ok(None),
        }
    }

    async fn shutdown(self) {
        match self {
            GatewaySide::Local(g) => {
                let _ = g.shutdown.send(true);
            }
            GatewaySide::Child(c) => c.quit().await,
            GatewaySide::External => {}
        }
    }
}

// ===== bookkeeping =====

#[derive(Debug, Default, Clone)]
struct ClientBook {
    /// Run time the client was started at (its events' `t_ms` count from there).
    offset: Duration,
    /// No event of this client is placed before this (the last storm that dropped it).
    floor: Duration,
    connected: bool,
    frames: u64,
    /// Commands queued and not yet confirmed.
    outstanding: u64,
}

struct Book {
    metrics: Metrics,
    clients: Vec<ClientBook>,
    connected: usize,
    attempts: u64,
    problems: Problems,
}

#[derive(Debug, Default)]
struct Problems {
    queue_full: u64,
    delivery_failed: u64,
    gave_up: u64,
}

impl Book {
    fn on_event(&mut self, j: usize, e: Event) {
        let Some(c) = self.clients.get_mut(j) else { return };
        let at = (c.offset + Duration::from_millis(e.t_ms)).max(c.floor);
        let m = &mut self.metrics;
        match e.kind {
            // Reconnection attempts only: a client's first attempt is paced by the ramp
            // (`connect_rate`), not by its backoff, and would bury the storms' peaks.
            EventKind::Connecting { attempt } if attempt > 1 => {
                m.attempt(at);
                self.attempts += 1;
            }
            EventKind::Connected { .. } => {
                m.connected(j, at);
                if !c.connected {
                    c.connected = true;
                    self.connected += 1;
                }
            }
            EventKind::Disconnected { reason, .. } => {
                if reason != DisconnectReason::Shutdown {
                    m.disconnected(j, at);
                }
                if c.connected {
                    c.connected = false;
                    self.connected -= 1;
                }
            }
            EventKind::Message(msg) => {
                if let Some(seq) = frame_seq(&msg) {
                    m.frame_delivered(j, seq);
                    c.frames += 1;
                }
            }
            EventKind::Queued { msg_id, serial, .. } if msg_id == COMMAND_ID => {
                m.command_sent(j, u64::from(serial), at);
                c.outstanding += 1;
            }
            EventKind::Resent { msg_id, serial, .. } if msg_id == COMMAND_ID => {
                m.command_resent(j, u64::from(serial), at);
            }
            EventKind::Confirmed { msg_id, serial, .. } if msg_id == COMMAND_ID => {
                m.command_confirmed(j, u64::from(serial), at);
                c.outstanding = c.outstanding.saturating_sub(1);
            }
            EventKind::QueueFull { .. } => self.problems.queue_full += 1,
            EventKind::DeliveryFailed { .. } => self.problems.delivery_failed += 1,
            EventKind::GaveUp { .. } => self.problems.gave_up += 1,
            _ => {}
        }
    }

    /// True when every client is connected, has `expected` frames (when known) and no command
    /// outstanding.
    fn drained(&self, expected: Option<&[u64]>) -> bool {
        self.clients.iter().enumerate().all(|(j, c)| {
            c.connected && c.outstanding == 0 && expected.is_none_or(|e| c.frames >= e.get(j).copied().unwrap_or(0))
        })
    }
}

struct Shared {
    start: Instant,
    book: Mutex<Book>,
}

impl Shared {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

fn add_samples(a: ResourceSample, b: Option<ResourceSample>) -> ResourceSample {
    match b {
        None => a,
        Some(b) => ResourceSample {
            rss_bytes: a.rss_bytes + b.rss_bytes,
            hwm_bytes: a.hwm_bytes + b.hwm_bytes,
            cpu: a.cpu + b.cpu,
        },
    }
}

type EventStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = (usize, Event)> + Send>>;

fn event_stream(j: usize, events: Events) -> EventStream {
    Box::pin(futures_util::stream::unfold(events, move |mut ev| async move {
        ev.recv().await.map(|e| ((j, e), ev))
    }))
}

/// Takes every client's events (registered through `new`) into the book until `new` closes and
/// every stream ended.
async fn collect(shared: Arc<Shared>, mut new: mpsc::UnboundedReceiver<(usize, Events)>) {
    let mut all: SelectAll<EventStream> = SelectAll::new();
    let mut open = true;
    loop {
        tokio::select! {
            n = new.recv(), if open => match n {
                Some((j, ev)) => all.push(event_stream(j, ev)),
                None => open = false,
            },
            e = all.next(), if !all.is_empty() => {
                if let Some((j, e)) = e {
                    let mut book = shared.book();
                    book.on_event(j, e);
                    // Take what else is ready under the same lock.
                    for _ in 0..256 {
                        match futures_util::FutureExt::now_or_never(all.next()) {
                            Some(Some((j, e))) => book.on_event(j, e),
                            _ => break,
                        }
                    }
                }
            }
            else => return,
        }
    }
}

/// Starts client `id` on `url`: from its loopback source address ([`sys::source_ip`]) when the
/// gateway is on an IPv4 loopback address, by plain TCP to the URL's host otherwise.
fn start_client(
    opts: &StressOpts,
    id: usize,
    dst: Option<SocketAddr>,
    url: &str,
) -> Result<(Client, Events), StressError> {
    let cfg = opts.client_config(id);
    match dst {
        Some(dst) if dst.ip().is_loopback() && dst.is_ipv4() => {
            let slot = id + opts.source_offset.saturating_mul(opts.per_source);
            let src = sys::source_ip(slot, opts.per_source).ok_or(StressError::NoSourceAddress {
                client: id,
                per_source: opts.per_source,
            })?;
            let connector = move || async move {
                let s = sys::connect_from(IpAddr::V4(src), dst).await?;
                s.set_nodelay(true)?;
                Ok(s)
            };
            Ok(Client::with_connector(connector, url, cfg))
        }
        _ => {
            let c = TcpConnector::from_url(url).map_err(ClientError::from)?;
            Ok(Client::with_connector(c, url, cfg))
        }
    }
}

fn external_addr(url: &str) -> Option<SocketAddr> {
    let rest = url.strip_prefix("ws://")?;
    let host = rest.split('/').next()?;
    host.parse().ok()
}

fn progress_bar(show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}") {
        pb.set_style(style);
    }
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// Runs one stress run (one jitter setting) and returns what it measured. See the module doc for
/// the phases.
pub async fn run(opts: StressOpts) -> Result<Outcome, StressError> {
    let ids = opts.global_ids();
    let n = ids.len();
    if n == 0 {
        return Err(StressError::Options(
            "no clients to run (check --clients and --shard)".into(),
        ));
    }
    if !opts.storms.is_empty() && matches!(opts.gateway, GatewayPlacement::External { .. }) {
        return Err(StressError::Options(
            "storms need the gateway this run starts; with --url only connections, frames and commands are measured"
                .into(),
        ));
    }
    let nofile = sys::raise_nofile_limit().ok();
    if let Some(lim) = &nofile {
        match opts.gateway {
            GatewayPlacement::InProcess => lim.check(n)?,
            _ => check_one_per_client(lim, n)?,
        }
    }

    let mut side = match &opts.gateway {
        GatewayPlacement::InProcess => {
            GatewaySide::Local(start_local_gateway(opts.seed, opts.frame_interval, opts.ws_buffer, opts.clients).await?)
        }
        GatewayPlacement::ChildProcess { exe } => GatewaySide::Child(Box::new(ChildGateway::spawn(exe, &opts).await?)),
        GatewayPlacement::External { .. } => GatewaySide::External,
    };
    let base_url = match (&opts.gateway, &side) {
        (GatewayPlacement::External { url }, _) => url.trim_end_matches('/').to_string(),
        (_, GatewaySide::Local(g)) => format!("ws://{}", g.addr),
        (_, GatewaySide::Child(c)) => format!("ws://{}", c.addr),
        _ => unreachable!("placement and side agree"),
    };
    let dst = match &side {
        GatewaySide::Local(g) => Some(g.addr),
        GatewaySide::Child(c) => Some(c.addr),
        GatewaySide::External => external_addr(&base_url),
    };

    let shared = Arc::new(Shared {
        start: Instant::now(),
        book: Mutex::new(Book {
            metrics: Metrics::new(n),
            clients: vec![ClientBook::default(); n],
            connected: 0,
            attempts: 0,
            problems: Problems::default(),
        }),
    });
    let pb = progress_bar(opts.progress);
    let mut problems = Vec::new();

    // Idle baseline: gateway up, no client.
    trim_heap();
    let own = sys::sample().ok();
    let gw_base = side.sample(true).await;
    if let Some(s) = own {
        let at = shared.now();
        shared.book().metrics.mark_idle_baseline(at, add_samples(s, gw_base));
    }

    let (new_tx, new_rx) = mpsc::unbounded_channel();
    let collector = tokio::spawn(collect(shared.clone(), new_rx));

    // Ramp: clients started in batches every 10 ms at connect_rate per second.
    let per_tick = (opts.connect_rate as usize / 100).max(1);
    let mut clients = Vec::with_capacity(n);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for (j, &id) in ids.iter().enumerate() {
        if j % per_tick == 0 {
            tick.tick().await;
            let b = shared.book();
            pb.set_message(format!("starting clients: {}/{n} connected", b.connected));
        }
        let url = format!("{base_url}{}", session_path(id));
        shared.book().clients[j].offset = shared.now();
        let (client, events) = start_client(&opts, id, dst, &url)?;
        let _ = new_tx.send((j, events));
        clients.push(client);
    }
    drop(new_tx);
    let clients = Arc::new(clients);

    // Wait for the whole fleet.
    let wait_until = Instant::now() + opts.connect_wait;
    loop {
        let connected = shared.book().connected;
        pb.set_message(format!("connecting: {connected}/{n}"));
        if connected == n {
            break;
        }
        if Instant::now() >= wait_until {
            problems.push(format!(
                "only {connected} of {n} clients connected within {:?}",
                opts.connect_wait
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(opts.settle).await;
    trim_heap();
    let own_idle = sys::sample().ok();
    let gw_idle = side.sample(true).await;
    let mut sides = None;
    if let Some(s) = own_idle {
        let at = shared.now();
        let mut b = shared.book();
        let connected = b.connected;
        b.metrics.mark_idle_connected(at, add_samples(s, gw_idle), connected);
        if let (Some(ob), Some(gb), Some(gi)) = (own, gw_base, gw_idle)
            && connected > 0
        {
            sides = Some(SideMemory {
                client_bytes: s.rss_bytes.saturating_sub(ob.rss_bytes) / connected as u64,
                gateway_bytes: gi.rss_bytes.saturating_sub(gb.rss_bytes) / connected as u64,
            });
        }
    }

    // Storm phase.
    let phase_start = Instant::now();
    let (cmd_stop_tx, cmd_stop_rx) = watch::channel(false);
    let commander = tokio::spawn(command_loop(
        clients.clone(),
        ids.clone(),
        opts.command_interval,
        cmd_stop_rx,
    ));
    let schedule = storm_schedule(&opts.storms, opts.duration);
    let mut next_storm = 0;
    let mut next_sample = phase_start;
    let phase_end = phase_start + opts.duration;
    loop {
        let now = Instant::now();
        if now >= phase_end {
            break;
        }
        if now >= next_sample {
            sample_into(&shared, &mut side).await;
            next_sample += opts.sample_every;
        }
        if let Some((at, spec)) = schedule.get(next_storm)
            && now >= phase_start + *at
        {
            let victims = side.pick(spec.fraction, opts.seed, next_storm).await?;
            let at = shared.now();
            {
                let mut b = shared.book();
                let local: Vec<usize> = victims.iter().filter_map(|(c, _)| opts.local_of(*c)).collect();
                for &j in &local {
                    if let Some(c) = b.clients.get_mut(j) {
                        c.floor = at;
                    }
                }
                b.metrics.storm(at, spec.mode, spec.fraction, local);
            }
            let conns: Vec<u64> = victims.iter().map(|(_, conn)| *conn).collect();
            side.drop_conns(spec.mode, &conns).await?;
            next_storm += 1;
        }
        {
            let b = shared.book();
            pb.set_message(format!(
                "storms {next_storm}/{} · connected {}/{n} · attempts {}",
                schedule.len(),
                b.connected,
                b.attempts
            ));
        }
        let wake = [phase_end, next_sample]
            .into_iter()
            .chain(schedule.get(next_storm).map(|(at, _)| phase_start + *at))
            .min()
            .unwrap_or(phase_end);
        tokio::time::sleep_until(wake.min(Instant::now() + Duration::from_millis(200))).await;
    }

    // Drain.
    let _ = cmd_stop_tx.send(true);
    let _ = commander.await;
    let stop_at = side.stop_frames(opts.frame_interval).await?;
    let expected: Option<Vec<u64>> = stop_at.map(|stop| {
        ids.iter()
            .map(|&id| frames_before(stop, phase_of(id, opts.frame_interval), opts.frame_interval))
            .collect()
    });
    let drain_until = Instant::now() + opts.drain_timeout + opts.frame_interval;
    let mut next_sample = Instant::now();
    loop {
        if Instant::now() >= next_sample {
            sample_into(&shared, &mut side).await;
            next_sample += opts.sample_every;
        }
        // The feeds stop one interval from now; frames due before then are still coming.
        let past_stop = phase_end.elapsed() > opts.frame_interval;
        let (done, connected) = {
            let b = shared.book();
            (past_stop && b.drained(expected.as_deref()), b.connected)
        };
        pb.set_message(format!("draining: connected {connected}/{n}"));
        if done {
            break;
        }
        if Instant::now() >= drain_until {
            problems.push(format!(
                "not drained within {:?}: clients down, frames or confirmations still missing",
                opts.drain_timeout
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sample_into(&shared, &mut side).await;
    let end = shared.now();
    let (run_figures, book_problems) = {
        let mut b = shared.book();
        if let Some(e) = &expected {
            for (j, count) in e.iter().enumerate() {
                b.metrics.frames_sent(j, *count);
            }
        }
        let p = std::mem::take(&mut b.problems);
        (b.metrics.run(opts.label.clone(), end), p)
    };
    if book_problems.queue_full > 0 {
        problems.push(format!(
            "{} commands refused: send queue full",
            book_problems.queue_full
        ));
    }
    if book_problems.delivery_failed > 0 {
        problems.push(format!(
            "{} commands given up after their re-sends",
            book_problems.delivery_failed
        ));
    }
    if book_problems.gave_up > 0 {
        problems.push(format!("{} clients gave up reconnecting", book_problems.gave_up));
    }

    pb.set_message("shutting down");
    let stops = clients.iter().map(|c| async move {
        let _ = c.shutdown().await;
    });
    let _ = tokio::time::timeout(Duration::from_secs(10), futures_util::future::join_all(stops)).await;
    drop(clients);
    side.shutdown().await;
    // Every client's event stream ends when its task does; a collector still waiting means a
    // client task outlived its shutdown.
    if tokio::time::timeout(Duration::from_secs(5), collector).await.is_err() {
        tracing::warn!("some clients had not stopped 5 s after the shutdown");
    }
    pb.finish_and_clear();

    Ok(Outcome {
        run: run_figures,
        problems,
        nofile,
        sides,
    })
}

/// Hands memory the allocator holds but nobody uses back to the kernel (glibc's `malloc_trim`),
/// so the two memory readings behind memory per idle connection count live memory, not what an
/// earlier run or the ramp freed and glibc kept. Elsewhere a no-op.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it takes no pointer.
    unsafe {
        libc::malloc_trim(0);
    }
}

async fn sample_into(shared: &Shared, side: &mut GatewaySide) {
    let gw = side.sample(false).await;
    if let Ok(s) = sys::sample() {
        let at = shared.now();
        shared.book().metrics.resources(at, add_samples(s, gw));
    }
}

/// Queues one command per client per `interval`, spread over 100 ms slots, until `stop`.
async fn command_loop(clients: Arc<Vec<Client>>, ids: Vec<usize>, interval: Duration, mut stop: watch::Receiver<bool>) {
    const SLOT: Duration = Duration::from_millis(100);
    if interval.is_zero() {
        return;
    }
    let slots = (interval.as_millis() / SLOT.as_millis()).max(1) as usize;
    let mut tick = tokio::time::interval(SLOT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut t = 0usize;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        // Slot 0 comes one slot after the phase starts, so the first commands are not sent at the
        // very instant of the idle reading.
        t += 1;
        for (j, c) in clients.iter().enumerate() {
            if j % slots == t % slots {
                // A full queue is an event the collector counts as a problem.
                let _ = c.send(command_message(ids[j]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storm_specs_parse_and_name_what_is_wrong() {
        let s: StormSpec = "every=10s,fraction=0.3,mode=stall".parse().unwrap();
        assert_eq!(
            (s.every, s.start, s.fraction, s.mode),
            (Duration::from_secs(10), None, 0.3, StormMode::Stall)
        );
        let s: StormSpec = "every=1.5,start=500ms,fraction=1".parse().unwrap();
        assert_eq!(
            (s.every, s.start, s.mode),
            (
                Duration::from_millis(1500),
                Some(Duration::from_millis(500)),
                StormMode::Abort
            )
        );
        for bad in [
            "fraction=0.3",
            "every=1,fraction=2",
            "every=1,fraction=0.1,mode=boom",
            "every=0,fraction=1",
        ] {
            let e = bad.parse::<StormSpec>().unwrap_err();
            assert_eq!(e.what, "--storm", "{bad}");
        }
    }

    #[test]
    fn the_schedule_interleaves_specs_inside_the_phase() {
        let a: StormSpec = "every=10,fraction=0.1,mode=close".parse().unwrap();
        let b: StormSpec = "every=10,start=5,fraction=0.1,mode=abort".parse().unwrap();
        let got: Vec<(u64, StormMode)> = storm_schedule(&[a, b], Duration::from_secs(30))
            .into_iter()
            .map(|(at, s)| (at.as_secs(), s.mode))
            .collect();
        assert_eq!(
            got,
            [
                (5, StormMode::Abort),
                (10, StormMode::Close),
                (15, StormMode::Abort),
                (20, StormMode::Close),
                (25, StormMode::Abort)
            ]
        );
    }

    #[test]
    fn shards_partition_the_fleet() {
        let shards: Vec<Shard> = (0..3).map(|i| format!("{i}/3").parse().unwrap()).collect();
        let mut all: Vec<usize> = shards.iter().flat_map(|s| s.ids(10)).collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(shards[1].ids(10).collect::<Vec<_>>(), [1, 4, 7]);
        assert_eq!(shards[1].local(7), Some(2));
        assert_eq!(shards[1].local(6), None);
        assert!("3/3".parse::<Shard>().is_err());
        assert!("1-3".parse::<Shard>().is_err());
    }

    #[test]
    fn victims_are_a_seeded_fraction_of_the_live_ids() {
        let live: Vec<usize> = (0..200).rev().collect();
        let a = choose_victims(&live, 0.25, &mut storm_rng(7, 0));
        assert_eq!(a.len(), 50);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        // Same seed and live set (in any order): the same clients.
        let mut shuffled = live.clone();
        shuffled.sort_unstable();
        assert_eq!(choose_victims(&shuffled, 0.25, &mut storm_rng(7, 0)), a);
        assert_ne!(choose_victims(&live, 0.25, &mut storm_rng(7, 1)), a);
        assert_eq!(choose_victims(&live, 1.0, &mut storm_rng(7, 0)).len(), 200);
        assert!(choose_victims(&live, 0.0, &mut storm_rng(7, 0)).is_empty());
    }

    #[test]
    fn the_feed_numbers_its_frames_stops_on_time_and_confirms_commands() {
        let stop = Arc::new(AtomicU64::new(NO_STOP));
        let interval = Duration::from_millis(100);
        let mut feed = StressFeed::new("/c/42", interval, stop.clone());
        let mut dec = crate::codec::Decoder::default();
        let mut seqs = Vec::new();
        for _ in 0..3 {
            let item = feed.next_item().unwrap();
            dec.push(&item.bytes, Duration::ZERO, |e| {
                if let crate::codec::DecodeEvent::Message(m) = e {
                    seqs.push((frame_seq(&m), m.header.serial, item.due));
                }
            });
        }
        let phase = phase_of(42, interval);
        assert_eq!(phase, Duration::from_millis(42));
        assert_eq!(
            seqs,
            [
                (Some(0), 0, phase),
                (Some(1), 1, phase + interval),
                (Some(2), 2, phase + interval * 2)
            ]
        );
        // Stop at 342 ms: frames due 242 (k = 2, taken) and 342 (k = 3, not made).
        let stop_at = Duration::from_millis(342);
        stop.store(stop_at.as_micros() as u64, Ordering::Release);
        assert_eq!(feed.next_item(), None);
        assert_eq!(frames_before(stop_at, phase, interval), 3);
        assert_eq!(frames_before(stop_at + Duration::from_micros(1), phase, interval), 4);
        assert_eq!(frames_before(phase, phase, interval), 0);

        let cmd = command_message(42);
        let answers = feed.on_client_message(&cmd, Duration::from_secs(1));
        assert_eq!(answers.len(), 1);
        let mut got = Vec::new();
        dec.push(&answers[0].bytes, Duration::ZERO, |e| got.push(e));
        let Some(crate::codec::DecodeEvent::Message(m)) = got.pop() else {
            panic!("no answer decoded")
        };
        let a = crate::client::replies::answer_of(&m).unwrap();
        assert_eq!((a.serial, a.answers, a.result), (0, COMMAND_ID, Some(0)));
        assert_eq!(m.header.phone, phone_of(42));
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5 parsecs").is_err());
    }
}
