//! `split`: one WebSocket message becomes several (toxiproxy's slicer), so frames straddle
//! messages the way TCP segments straddle reads (JT808.md §1, "half packet").
//!
//! Offsets are payload offsets (0 = first byte after the envelope prefix); every piece gets its own
//! copy of the prefix, because the client strips `prefix_len` bytes from every message.

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::fault::{Cx, Fault, FaultType, Msg, Out};
use super::limits::{MAX_CUTS, check};
use super::outcome::Outcome;
use crate::codec::frame::FLAG;

/// Where to cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitMode {
    /// At the given `offsets`.
    Offsets,
    /// At `cuts` random offsets.
    Random,
    /// Between a 0x7D and the byte it escapes: the client must keep the pending escape across
    /// messages. No escape in the message: nothing happens (logged `no_target`).
    InsideEscape,
    /// Right before or right after a 0x7E (a delimiter alone at a message edge).
    NextToFlag,
}

/// `split` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Split {
    /// Payload offsets to cut at (mode `offsets`; offsets outside 1..len-1 are ignored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offsets: Vec<usize>,
    /// Default: `offsets` when offsets are given, `random` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SplitMode>,
    /// Number of cuts for `random`, `inside_escape` and `next_to_flag` (default 1).
    #[serde(default = "one")]
    pub cuts: usize,
}

fn one() -> usize {
    1
}

impl Split {
    fn mode(&self) -> SplitMode {
        self.mode.unwrap_or(if self.offsets.is_empty() {
            SplitMode::Random
        } else {
            SplitMode::Offsets
        })
    }
}

impl FaultType for Split {
    fn validate(&self) -> Result<(), String> {
        if self.mode == Some(SplitMode::Offsets) && self.offsets.is_empty() {
            return Err("mode \"offsets\" needs `offsets = [..]`".into());
        }
        check("cuts", self.cuts, 1..=MAX_CUTS)?;
        if self.offsets.len() > MAX_CUTS {
            return Err(format!(
                "`offsets` has {} entries, at most {MAX_CUTS} allowed",
                self.offsets.len()
            ));
        }
        Ok(())
    }

    fn build(&self) -> Option<Box<dyn Fault>> {
        Some(Box::new(self.clone()))
    }
}

impl Fault for Split {
    fn on_message(&mut self, m: Msg, cx: &mut Cx<'_>) -> Vec<Out> {
        if !cx.fire_msg(&m) {
            return vec![Out::Send(m)];
        }
        let p = cx.prefix_len.min(m.bytes.len());
        let payload = &m.bytes[p..];
        let len = payload.len();
        let mode = self.mode();
        let mut cuts: Vec<usize> = match mode {
            SplitMode::Offsets => self.offsets.iter().copied().filter(|&o| o > 0 && o < len).collect(),
            SplitMode::Random => (1..len).collect(),
            SplitMode::InsideEscape => (1..len).filter(|&i| payload[i - 1] == 0x7D).collect(),
            SplitMode::NextToFlag => (1..len)
                .filter(|&i| payload[i] == FLAG || payload[i - 1] == FLAG)
                .collect(),
        };
        if mode != SplitMode::Offsets {
            cuts = pick(cx, cuts, self.cuts);
        }
        cuts.sort_unstable();
        cuts.dedup();
        if cuts.is_empty() {
            cx.record(
                Some(m.idx),
                Outcome::NoTarget,
                Vec::new(),
                format!("{mode:?} found no cut point"),
            );
            return vec![Out::Send(m)];
        }
        cx.record(
            Some(m.idx),
            Outcome::Split,
            cuts.iter().map(|c| c + p).collect(),
            format!("{} bytes into {} messages", m.bytes.len(), cuts.len() + 1),
        );
        let prefix = &m.bytes[..p];
        let mut bounds = vec![0];
        bounds.extend(&cuts);
        bounds.push(len);
        bounds
            .windows(2)
            .map(|w| {
                let mut bytes = prefix.to_vec();
                bytes.extend_from_slice(&payload[w[0]..w[1]]);
                Out::Send(Msg {
                    bytes,
                    at: m.at,
                    idx: m.idx,
                })
            })
            .collect()
    }
}

/// `n` distinct elements of `from`, chosen with the fault's RNG (all of them if fewer).
pub(crate) fn pick(cx: &mut Cx<'_>, mut from: Vec<usize>, n: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n && !from.is_empty() {
        let i = cx.rng.random_range(0..from.len());
        out.push(from.swap_remove(i));
    }
    out
}
