//! `stall`: the half-open link. The socket stays open but nothing crosses it: the client's writes
//! succeed, no reply and no data come back, no close is seen (toxiproxy's timeout toxic). The
//! client must notice by itself (heartbeat, dead-connection timeout).
//!
//! From the message the trigger fires on, every message in the fault's direction is held; with
//! `both = true` (default) the other direction is held too, at the pipeline's entry. After
//! `for_ms` the held messages are delivered in order at the stall's end; without `for_ms` the stall
//! lasts until the connection closes and [`super::Pipeline::on_close`] returns them. Bytes are held,
//! not dropped, up to `max_held_bytes` per direction (a dead link's kernel buffers fill up too):
//! from the message that would pass it on, every message of that direction is dropped and logged
//! `overflow` until the stall ends, so an endless stall on a fast feed cannot grow the gateway's
//! memory without bound, and what is delivered later has no gap in its middle. One stall per
//! connection; list two faults for two stalls. The stall owns both holds: its own direction's in
//! [`StallState`], the other's in the [`EntryHold`] it hands the pipeline, which only asks it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::fault::{Cx, Fault, FaultType, Msg, Out};
use super::limits::{MAX_HELD_BYTES, MAX_MS, check, check_opt};
use super::outcome::Outcome;
use super::{Direction, FaultRecord};

/// `stall` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stall {
    /// How long the link stays silent; default: until the connection closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_ms: Option<u64>,
    /// Hold the other direction too (default true: a dead link carries nothing either way).
    #[serde(default = "yes")]
    pub both: bool,
    /// Most bytes held in each direction; a message that would hold more is dropped and logged
    /// `overflow`. Default [`DEFAULT_MAX_HELD_BYTES`].
    #[serde(default = "default_max_held")]
    pub max_held_bytes: usize,
}

/// Default `max_held_bytes`: 4 MiB, about what a Linux socket's send and receive buffers hold
/// together at their largest default sizes, so roughly where a real dead link stops taking data.
pub const DEFAULT_MAX_HELD_BYTES: usize = 4 << 20;

fn yes() -> bool {
    true
}

fn default_max_held() -> usize {
    DEFAULT_MAX_HELD_BYTES
}

impl FaultType for Stall {
    fn validate(&self) -> Result<(), String> {
        check_opt("for_ms", self.for_ms, 1..=MAX_MS)?;
        check("max_held_bytes", self.max_held_bytes, 1..=MAX_HELD_BYTES)
    }

    fn build(&self) -> Option<Box<dyn Fault>> {
        Some(Box::new(StallState::new(self.clone())))
    }

    fn acts_on_time(&self) -> bool {
        true
    }
}

/// Messages held by a stall, up to `max` bytes: past the cap the message is dropped, and so is
/// everything after it, as a full buffer blocks what follows (no gap in the middle of the stream).
#[derive(Debug)]
struct Hold {
    held: Vec<Msg>,
    bytes: usize,
    max: usize,
    overflowed: bool,
}

impl Hold {
    fn new(max: usize) -> Hold {
        Hold {
            held: Vec::new(),
            bytes: 0,
            max,
            overflowed: false,
        }
    }

    /// Holds `m`, or drops it past the cap: [`Outcome::Held`] or [`Outcome::Overflow`], with the
    /// log detail (`held` says how many bytes, after `held_note`).
    fn offer(&mut self, m: Msg, held_note: &str) -> (Outcome, String) {
        let len = m.bytes.len();
        if self.overflowed || self.bytes + len > self.max {
            self.overflowed = true;
            return (Outcome::Overflow, overflow_detail(len, self.max));
        }
        self.bytes += len;
        self.held.push(m);
        (Outcome::Held, format!("{len} bytes{held_note}"))
    }

    /// Everything held, in order; the hold is empty after.
    fn take(&mut self) -> Vec<Msg> {
        self.bytes = 0;
        std::mem::take(&mut self.held)
    }
}

/// The other direction of a two-way stall (`both = true`), held at the pipeline's entry: the
/// pipeline hands it every message of [`EntryHold::dir`] while it exists, and asks it when it
/// ends ([`EntryHold::due`]).
#[derive(Debug)]
pub(crate) struct EntryHold {
    name: String,
    dir: Direction,
    until: Option<Duration>,
    hold: Hold,
}

impl EntryHold {
    /// The direction held.
    pub(crate) fn dir(&self) -> Direction {
        self.dir
    }

    /// When the stall ends; `None`: at the connection's close.
    pub(crate) fn until(&self) -> Option<Duration> {
        self.until
    }

    /// The stall is over at `now`.
    pub(crate) fn due(&self, now: Duration) -> bool {
        self.until.is_some_and(|u| u <= now)
    }

    /// A message of the held direction entered the pipeline: held, or dropped past the cap; logged.
    pub(crate) fn offer(&mut self, m: Msg, now: Duration, conn: u64, log: &mut Vec<FaultRecord>) {
        let idx = m.idx;
        let (what, detail) = self.hold.offer(m, " held by a two-way stall");
        log.push(self.record(now, conn, idx, what, detail));
    }

    /// The stall ended at `now`: what it held, each logged `release`, none due before `now`.
    pub(crate) fn release(mut self, now: Duration, conn: u64, log: &mut Vec<FaultRecord>) -> Vec<Msg> {
        let held = self.hold.take();
        held.into_iter()
            .map(|mut m| {
                log.push(self.record(now, conn, m.idx, Outcome::Release, format!("{} bytes", m.bytes.len())));
                m.at = m.at.max(now);
                m
            })
            .collect()
    }

    /// The connection closed: the stall's name, the direction and what it held.
    pub(crate) fn into_held(mut self) -> (String, Direction, Vec<Msg>) {
        let held = self.hold.take();
        (self.name, self.dir, held)
    }

    fn record(&self, now: Duration, conn: u64, idx: u64, what: Outcome, detail: String) -> FaultRecord {
        FaultRecord {
            t_us: now.as_micros() as u64,
            conn,
            dir: Some(self.dir),
            msg: Some(idx),
            fault: self.name.clone(),
            what,
            offsets: Vec::new(),
            detail,
        }
    }
}

#[derive(Debug, PartialEq)]
enum Phase {
    Armed,
    Stalled { until: Option<Duration> },
    Done,
}

/// Per-connection state.
#[derive(Debug)]
pub(crate) struct StallState {
    cfg: Stall,
    phase: Phase,
    hold: Hold,
}

impl StallState {
    pub fn new(cfg: Stall) -> Self {
        StallState {
            hold: Hold::new(cfg.max_held_bytes),
            cfg,
            phase: Phase::Armed,
        }
    }

    fn begin(&mut self, cx: &mut Cx<'_>, idx: Option<u64>) -> Out {
        let until = self.cfg.for_ms.map(|ms| cx.now + Duration::from_millis(ms));
        self.phase = Phase::Stalled { until };
        let how_long = self
            .cfg
            .for_ms
            .map_or("until close".to_string(), |ms| format!("for {ms} ms"));
        cx.record(
            idx,
            Outcome::Stall,
            Vec::new(),
            format!("{how_long}{}", if self.cfg.both { ", both ways" } else { "" }),
        );
        let hold = self.cfg.both.then(|| EntryHold {
            name: cx.name().to_string(),
            dir: cx.dir.other(),
            until,
            hold: Hold::new(self.cfg.max_held_bytes),
        });
        Out::Stall { until, hold }
    }
}

impl Fault for StallState {
    fn on_message(&mut self, m: Msg, cx: &mut Cx<'_>) -> Vec<Out> {
        let mut out = Vec::new();
        match self.phase {
            Phase::Done => return vec![Out::Send(m)],
            Phase::Armed if !cx.fire_msg(&m) => return vec![Out::Send(m)],
            Phase::Armed => out.push(self.begin(cx, Some(m.idx))),
            Phase::Stalled { .. } => {}
        }
        let idx = m.idx;
        let (what, detail) = self.hold.offer(m, "");
        cx.record(Some(idx), what, Vec::new(), detail);
        out
    }

    fn on_time(&mut self, cx: &mut Cx<'_>) -> Vec<Out> {
        if self.phase != Phase::Armed || !cx.fire_time() {
            return Vec::new();
        }
        vec![self.begin(cx, None)]
    }

    fn on_tick(&mut self, cx: &mut Cx<'_>) -> Vec<Out> {
        let Phase::Stalled { until: Some(until) } = self.phase else {
            return Vec::new();
        };
        self.phase = Phase::Done;
        let held = self.hold.take();
        cx.record(
            None,
            Outcome::StallEnd,
            Vec::new(),
            format!("{} messages released", held.len()),
        );
        held.into_iter()
            .map(|mut m| {
                m.at = m.at.max(until);
                Out::Send(m)
            })
            .collect()
    }

    fn deadline(&self) -> Option<Duration> {
        match self.phase {
            Phase::Stalled { until } => until,
            _ => None,
        }
    }

    fn drain(&mut self) -> Vec<Msg> {
        self.hold.take()
    }
}

/// The log detail of a message dropped because the stall holds `max` bytes already.
fn overflow_detail(len: usize, max: usize) -> String {
    format!("{len} bytes dropped: the stall already holds what max_held_bytes = {max} allows")
}
