//! `drop`, `duplicate`, `reorder`: lose, repeat or swap whole messages or single frames.
//!
//! With `unit = "message"` the trigger counts WebSocket messages; with `unit = "frame"` it counts
//! the frames inside them (only whole, valid frames, as the codec's deframer finds them) and the message around
//! them is rebuilt, its prefix and any bytes between frames kept.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::fault::{Cx, Fault, FaultType, Msg, Out};
use super::frames::{self, Located};
use super::limits::{MAX_MESSAGES, MAX_MS, check};
use super::outcome::Outcome;

/// What a `drop`/`duplicate`/`reorder` acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A whole WebSocket message.
    #[default]
    Message,
    /// One JT808 frame inside a message.
    Frame,
}

/// `drop` parameters (named so as not to shadow `std::ops::Drop`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropFault {
    /// Message (default) or frame.
    #[serde(default)]
    pub unit: Unit,
}

/// `duplicate` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Duplicate {
    /// Message (default) or frame.
    #[serde(default)]
    pub unit: Unit,
}

/// `reorder` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reorder {
    /// Message (default): the message is held and sent after the next `distance` messages.
    /// Frame: the frame is moved after the next frame of the same message.
    #[serde(default)]
    pub unit: Unit,
    /// How many messages overtake the held one (default 1).
    #[serde(default = "one")]
    pub distance: usize,
    /// Longest a held message waits for the ones that should overtake it (default 1000 ms).
    #[serde(default = "thousand")]
    pub max_wait_ms: u64,
}

fn one() -> usize {
    1
}
fn thousand() -> u64 {
    1000
}

impl FaultType for Reorder {
    fn validate(&self) -> Result<(), String> {
        check("distance", self.distance, 1..=MAX_MESSAGES)?;
        check("max_wait_ms", self.max_wait_ms, 0..=MAX_MS)
    }

    fn build(&self) -> Option<Box<dyn Fault>> {
        Some(Box::new(ReorderState::new(self.clone())))
    }
}

/// Runs `f` on every frame of `m` the trigger fires on; `f` returns the replacement bytes for the
/// frame's whole span (delimiters included). The message is rebuilt from the edits.
pub(crate) fn per_frame(
    m: &Msg,
    cx: &mut Cx<'_>,
    mut f: impl FnMut(&Located, &[Located], usize, &mut Cx<'_>) -> Option<(std::ops::Range<usize>, Vec<u8>)>,
) -> Option<Vec<u8>> {
    let located = frames::locate(&m.bytes, cx.prefix_len);
    let mut edits = Vec::new();
    for (i, fr) in located.iter().enumerate() {
        if cx.fire(&[fr.tag()]) {
            edits.extend(f(fr, &located, i, cx));
        }
    }
    (!edits.is_empty()).then(|| frames::splice(&m.bytes, edits))
}

/// A message with its payload gone is not sent at all (the client would see an empty message,
/// which is not what "drop" means).
fn send_unless_empty(m: Msg, prefix_len: usize) -> Vec<Out> {
    if m.bytes.len() <= prefix_len {
        Vec::new()
    } else {
        vec![Out::Send(m)]
    }
}

impl Fault for DropFault {
    fn on_message(&mut self, m: Msg, cx: &mut Cx<'_>) -> Vec<Out> {
        match self.unit {
            Unit::Message => {
                if !cx.fire_msg(&m) {
                    return vec![Out::Send(m)];
                }
                cx.record(
                    Some(m.idx),
                    Outcome::Drop,
                    Vec::new(),
                    format!("message of {} bytes", m.bytes.len()),
                );
                Vec::new()
            }
            Unit::Frame => {
                let idx = m.idx;
                let rebuilt = per_frame(&m, cx, |fr, _, _, cx| {
                    cx.record(Some(idx), Outcome::Drop, vec![fr.start, fr.end], fr.describe());
                    Some((fr.own(), Vec::new()))
                });
                match rebuilt {
                    Some(bytes) => send_unless_empty(Msg { bytes, ..m }, cx.prefix_len),
                    None => vec![Out::Send(m)],
                }
            }
        }
    }
}

impl Fault for Duplicate {
    fn on_message(&mut self, m: Msg, cx: &mut Cx<'_>) -> Vec<Out> {
        match self.unit {
            Unit::Message => {
                if !cx.fire_msg(&m) {
                    return vec![Out::Send(m)];
                }
                cx.record(
                    Some(m.idx),
                    Outcome::Duplicate,
                    Vec::new(),
                    format!("message of {} bytes", m.bytes.len()),
                );
                vec![Out::Send(m.clone()), Out::Send(m)]
            }
            Unit::Frame => {
                let idx = m.idx;
                let bytes = m.bytes.clone();
                let rebuilt = per_frame(&m, cx, |fr, _, _, cx| {
                    cx.record(Some(idx), Outcome::Duplicate, vec![fr.start, fr.end], fr.describe());
                    Some((fr.end..fr.end, bytes[fr.start..fr.end].to_vec()))
                });
                vec![Out::Send(match rebuilt {
                    Some(bytes) => Msg { bytes, ..m },
                    None => m,
                })]
            }
        }
    }
}

/// Per-connection state of `reorder`.
#[derive(Debug)]
pub(crate) struct ReorderState {
    cfg: Reorder,
    held: Option<(Msg, usize, Duration)>,
}

impl ReorderState {
    pub fn new(cfg: Reorder) -> Self {
        ReorderState { cfg, held: None }
    }
}

impl Fault for ReorderState {
    fn on_message(&mut self, m: Msg, cx: &mut Cx<'_>) -> Vec<Out> {
        if self.cfg.unit == Unit::Frame {
            let idx = m.idx;
            let bytes = m.bytes.clone();
            let mut moved_until = 0;
            let rebuilt = per_frame(&m, cx, |fr, all, i, cx| {
                // A frame already moved is not moved again; the last frame has nothing to pass.
                if fr.start < moved_until {
                    return None;
                }
                let Some(next) = all.get(i + 1) else {
                    cx.record(
                        Some(idx),
                        Outcome::NoTarget,
                        vec![fr.start],
                        format!("{}: no later frame in the message", fr.describe()),
                    );
                    return None;
                };
                moved_until = next.end;
                cx.record(
                    Some(idx),
                    Outcome::Reorder,
                    vec![fr.start, next.start],
                    format!("{} after {}", fr.describe(), next.describe()),
                );
                let mut swapped = bytes[next.start..next.end].to_vec();
                swapped.extend_from_slice(&bytes[fr.start..fr.end]);
                Some((fr.start..next.end, swapped))
            });
            return vec![Out::Send(match rebuilt {
                Some(bytes) => Msg { bytes, ..m },
                None => m,
            })];
        }
        if let Some((held, left, deadline)) = self.held.take() {
            if left <= 1 {
                cx.record(
                    Some(held.idx),
                    Outcome::Release,
                    Vec::new(),
                    format!("after message {}", m.idx),
                );
                let at = m.at;
                return vec![
                    Out::Send(m),
                    Out::Send(Msg {
                        at: held.at.max(at),
                        ..held
                    }),
                ];
            }
            self.held = Some((held, left - 1, deadline));
            return vec![Out::Send(m)];
        }
        if !cx.fire_msg(&m) {
            return vec![Out::Send(m)];
        }
        cx.record(
            Some(m.idx),
            Outcome::Reorder,
            Vec::new(),
            format!("held until {} later message(s) pass", self.cfg.distance),
        );
        let deadline = cx.now + Duration::from_millis(self.cfg.max_wait_ms);
        self.held = Some((m, self.cfg.distance, deadline));
        Vec::new()
    }

    fn on_tick(&mut self, cx: &mut Cx<'_>) -> Vec<Out> {
        match self.held.take() {
            Some((m, _, _)) => {
                cx.record(Some(m.idx), Outcome::Release, Vec::new(), "max_wait_ms reached");
                vec![Out::Send(m)]
            }
            None => Vec::new(),
        }
    }

    fn deadline(&self) -> Option<Duration> {
        self.held.as_ref().map(|h| h.2)
    }

    fn drain(&mut self) -> Vec<Msg> {
        self.held.take().map(|h| h.0).into_iter().collect()
    }
}

impl FaultType for DropFault {
    fn build(&self) -> Option<Box<dyn Fault>> {
        Some(Box::new(self.clone()))
    }
}

impl FaultType for Duplicate {
    fn build(&self) -> Option<Box<dyn Fault>> {
        Some(Box::new(self.clone()))
    }
}
