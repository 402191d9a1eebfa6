//! `stall`: the half-open link. The socket stays open but nothing crosses it: the client's writes
//! succeed, no reply and no data come back, no close is seen (toxiproxy's timeout toxic). The
//! client must notice by itself (heartbeat, dead-connection timeout).
//!
//! From the message the trigger fires on, every message in the fault's direction is held; with
//! `both = true` (default) the other direction is held too, at the pipeline's entry. After
//! `for_ms` the held messages are delivered in order at the stall's end; without `for_ms` the stall
//! lasts until the connection closes and [`super::Pipeline::on_close`] returns them. Bytes are held,
//! never dropped. One stall per connection; list two faults for two stalls.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
}

fn yes() -> bool {
    true
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
}

impl StallState {
    pub fn new(cfg: Stall) -> Self {
        StallState {
            cfg,
            phase: Phase::Armed,
            held: Vec::new(),
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
        cx.record(Some(m.idx), "held", Vec::new(), format!("{} bytes", m.bytes.len()));
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
        std::mem::take(&mut self.held)
    }
}
