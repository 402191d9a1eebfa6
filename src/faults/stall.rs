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
//! memory without bound, and what is delivered later has no gap in its middle. One stall per connection; list two faults for two
//! stalls.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::limits::{MAX_HELD_BYTES, MAX_MS, check, check_opt};
use super::pipeline::{Cx, Fault, Msg, Out};

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

impl Stall {
    pub(crate) fn validate(&self) -> Result<(), String> {
        check_opt("for_ms", self.for_ms, 1..=MAX_MS)?;
        check("max_held_bytes", self.max_held_bytes, 1..=MAX_HELD_BYTES)
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
    held: Vec<Msg>,
    held_bytes: usize,
    /// The cap was hit: everything after is dropped too, as a full buffer blocks what follows
    /// (no gap in the middle of the stream).
    overflowed: bool,
}

impl StallState {
    pub fn new(cfg: Stall) -> Self {
        StallState {
            cfg,
            phase: Phase::Armed,
            held: Vec::new(),
            held_bytes: 0,
            overflowed: false,
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
            "stall",
            Vec::new(),
            format!("{how_long}{}", if self.cfg.both { ", both ways" } else { "" }),
        );
        Out::Stall {
            until,
            both: self.cfg.both,
            name: cx.name().to_string(),
            max_held_bytes: self.cfg.max_held_bytes,
        }
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
        if self.overflowed || self.held_bytes + m.bytes.len() > self.cfg.max_held_bytes {
            self.overflowed = true;
            cx.record(
                Some(m.idx),
                "overflow",
                Vec::new(),
                overflow_detail(m.bytes.len(), self.cfg.max_held_bytes),
            );
            return out;
        }
        cx.record(Some(m.idx), "held", Vec::new(), format!("{} bytes", m.bytes.len()));
        self.held_bytes += m.bytes.len();
        self.held.push(m);
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
        self.held_bytes = 0;
        cx.record(
            None,
            "stall_end",
            Vec::new(),
            format!("{} messages released", self.held.len()),
        );
        std::mem::take(&mut self.held)
            .into_iter()
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
        self.held_bytes = 0;
        std::mem::take(&mut self.held)
    }
}

/// The log detail of a message dropped because the stall holds `max` bytes already.
pub(crate) fn overflow_detail(len: usize, max: usize) -> String {
    format!("{len} bytes dropped: the stall already holds what max_held_bytes = {max} allows")
}
