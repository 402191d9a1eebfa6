//! `coalesce`: several WebSocket messages become one ("sticky packets", JT808.md §1). With one frame
//! per message, as the gateway's sources send them, that is N frames in one message.
//!
//! The message that fires starts a group; the next `count - 1` messages join it whatever their
//! trigger says. The joined message keeps the first message's envelope prefix and appends the
//! others' payloads. A group not full after `max_wait_ms` is sent as it is (logged `flush`), so a
//! quiet feed is delayed, never starved.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::fault::{Cx, Fault, FaultType, Msg, Out};
use super::limits::{MAX_MESSAGES, MAX_MS, check};
use super::outcome::Outcome;

/// `coalesce` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coalesce {
    /// Messages per joined message (default 2, at least 2).
    #[serde(default = "two")]
    pub count: usize,
    /// Longest a group waits for its next message before it is sent incomplete (default 100 ms).
    #[serde(default = "hundred")]
    pub max_wait_ms: u64,
}

fn two() -> usize {
    2
}
fn hundred() -> u64 {
    100
}

impl FaultType for Coalesce {
    fn validate(&self) -> Result<(), String> {
        check("count", self.count, 2..=MAX_MESSAGES)?;
        check("max_wait_ms", self.max_wait_ms, 0..=MAX_MS)
    }

    fn build(&self) -> Option<Box<dyn Fault>> {
        Some(Box::new(CoalesceState::new(self.clone())))
    }
}

/// Per-connection state.
#[derive(Debug)]
pub(crate) struct CoalesceState {
    cfg: Coalesce,
    group: Vec<Msg>,
    deadline: Option<Duration>,
}

impl CoalesceState {
    pub fn new(cfg: Coalesce) -> Self {
        CoalesceState {
            cfg,
            group: Vec::new(),
            deadline: None,
        }
    }

    fn join(&mut self, cx: &mut Cx<'_>, what: Outcome) -> Vec<Out> {
        let group = std::mem::take(&mut self.group);
        self.deadline = None;
        let Some(first) = group.first() else {
            return Vec::new();
        };
        let p = cx.prefix_len.min(first.bytes.len());
        let mut bytes = first.bytes.clone();
        let mut bounds = Vec::new();
        let mut at = first.at;
        for m in &group[1..] {
            bounds.push(bytes.len());
            bytes.extend_from_slice(m.bytes.get(p..).unwrap_or_default());
            at = at.max(m.at);
        }
        let idx: Vec<String> = group.iter().map(|m| m.idx.to_string()).collect();
        cx.record(
            Some(first.idx),
            what,
            bounds,
            format!("messages {} joined into {} bytes", idx.join("+"), bytes.len()),
        );
        vec![Out::Send(Msg {
            bytes,
            at,
            idx: first.idx,
        })]
    }
}

impl Fault for CoalesceState {
    fn on_message(&mut self, m: Msg, cx: &mut Cx<'_>) -> Vec<Out> {
        if self.group.is_empty() {
            if !cx.fire_msg(&m) {
                return vec![Out::Send(m)];
            }
            self.deadline = Some(cx.now + Duration::from_millis(self.cfg.max_wait_ms));
        }
        self.group.push(m);
        if self.group.len() >= self.cfg.count {
            self.join(cx, Outcome::Coalesce)
        } else {
            Vec::new()
        }
    }

    fn on_tick(&mut self, cx: &mut Cx<'_>) -> Vec<Out> {
        self.join(cx, Outcome::Flush)
    }

    fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    fn drain(&mut self) -> Vec<Msg> {
        self.deadline = None;
        std::mem::take(&mut self.group)
    }
}
