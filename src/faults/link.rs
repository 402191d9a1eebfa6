//! `latency` and `bandwidth`: the slow vehicle link. Neither holds a message; each pushes its
//! delivery time (`at`) later. Both keep their direction's deliveries in order, as TCP does: a
//! message never overtakes an earlier one, however the jitter falls.
//!
//! Bandwidth presets (typical sustained rates of a terminal in a moving vehicle, not the
//! standards' peaks; a WebSocket message is counted as its bytes, framing overhead ignored):
//!
//! | preset | bits/s | basis |
//! |---|---|---|
//! | `gprs` | 40 000 | GPRS multislot class 10 with CS-2: 4 x 13.4 kbit/s peak = 53.6, about 40 in practice |
//! | `edge` | 150 000 | EDGE class 10: 236.8 kbit/s peak, 100-200 sustained |
//! | `3g` | 1 000 000 | UMTS/HSPA on the move: 0.5-2 Mbit/s |
//! | `4g` | 10 000 000 | LTE on the move: 5-20 Mbit/s |

use std::time::Duration;

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::fault::{Cx, Fault, FaultType, Msg, Out};
use super::limits::{MAX_BPS, MAX_MS, check, check_opt};
use super::outcome::Outcome;

/// `latency` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    /// Base one-way delay in milliseconds.
    #[serde(default)]
    pub ms: u64,
    /// Uniform jitter: the delay is `ms` plus a draw from `-jitter_ms..=jitter_ms` (never below 0).
    #[serde(default)]
    pub jitter_ms: u64,
}

/// A named vehicle-link rate; see the module doc for the figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// 40 kbit/s.
    Gprs,
    /// 150 kbit/s.
    Edge,
    /// 1 Mbit/s.
    #[serde(rename = "3g")]
    G3,
    /// 10 Mbit/s.
    #[serde(rename = "4g")]
    G4,
}

impl Preset {
    /// The rate in bits per second.
    pub fn bps(self) -> u64 {
        match self {
            Preset::Gprs => 40_000,
            Preset::Edge => 150_000,
            Preset::G3 => 1_000_000,
            Preset::G4 => 10_000_000,
        }
    }
}

/// `bandwidth` parameters: exactly one of `preset` and `bps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bandwidth {
    /// A named vehicle link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// Or a rate in bits per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bps: Option<u64>,
}

impl FaultType for Latency {
    fn validate(&self) -> Result<(), String> {
        if self.ms == 0 && self.jitter_ms == 0 {
            return Err("`ms` or `jitter_ms` must be set".into());
        }
        check("ms", self.ms, 0..=MAX_MS)?;
        check("jitter_ms", self.jitter_ms, 0..=MAX_MS)
    }

    fn build(&self) -> Option<Box<dyn Fault>> {
        Some(Box::new(LatencyState::new(self.clone())))
    }
}

impl Bandwidth {
    /// The configured rate.
    pub fn rate(&self) -> u64 {
        self.preset.map(Preset::bps).or(self.bps).unwrap_or(1).max(1)
    }
}

impl FaultType for Bandwidth {
    fn validate(&self) -> Result<(), String> {
        match (self.preset, self.bps) {
            (Some(_), Some(_)) => Err("give `preset` or `bps`, not both".into()),
            (None, None) => Err("give `preset` (gprs, edge, 3g, 4g) or `bps`".into()),
            (None, bps) => check_opt("bps", bps, 1..=MAX_BPS),
            _ => Ok(()),
        }
    }

    fn build(&self) -> Option<Box<dyn Fault>> {
        Some(Box::new(BandwidthState::new(self.clone())))
    }
}

/// Per-connection state of `latency`.
#[derive(Debug)]
pub(crate) struct LatencyState {
    cfg: Latency,
    last: Duration,
}

impl LatencyState {
    pub fn new(cfg: Latency) -> Self {
        LatencyState {
            cfg,
            last: Duration::ZERO,
        }
    }
}

impl Fault for LatencyState {
    fn on_message(&mut self, mut m: Msg, cx: &mut Cx<'_>) -> Vec<Out> {
        if cx.fire_msg(&m) {
            let j = self.cfg.jitter_ms as i64;
            let jitter = if j > 0 { cx.rng.random_range(-j..=j) } else { 0 };
            let delay = Duration::from_millis((self.cfg.ms as i64 + jitter).max(0) as u64);
            let at = (m.at + delay).max(self.last);
            cx.record(
                Some(m.idx),
                Outcome::Delay,
                Vec::new(),
                format!("+{} ms (drawn {} ms)", (at - m.at).as_millis(), delay.as_millis()),
            );
            m.at = at;
        }
        m.at = m.at.max(self.last);
        self.last = m.at;
        vec![Out::Send(m)]
    }
}

/// Per-connection state of `bandwidth`: when the link is free again.
#[derive(Debug)]
pub(crate) struct BandwidthState {
    bps: u64,
    free: Duration,
}

impl BandwidthState {
    pub fn new(cfg: Bandwidth) -> Self {
        BandwidthState {
            bps: cfg.rate(),
            free: Duration::ZERO,
        }
    }
}

impl Fault for BandwidthState {
    fn on_message(&mut self, mut m: Msg, cx: &mut Cx<'_>) -> Vec<Out> {
        if cx.fire_msg(&m) {
            let start = m.at.max(self.free);
            let bits = m.bytes.len() as u128 * 8;
            let tx = Duration::from_nanos((bits * 1_000_000_000 / self.bps as u128) as u64);
            let at = start + tx;
            cx.record(
                Some(m.idx),
                Outcome::Throttle,
                Vec::new(),
                format!(
                    "{} bytes at {} bit/s: +{} us",
                    m.bytes.len(),
                    self.bps,
                    (at - m.at).as_micros()
                ),
            );
            m.at = at;
        }
        m.at = m.at.max(self.free);
        self.free = m.at;
        vec![Out::Send(m)]
    }
}
