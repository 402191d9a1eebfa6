//! A run's transcript: what the client decoded and did and what the gateway injected and received,
//! in virtual-time order, with a summary and the invariants checked. No wall-clock time, address or
//! port ever appears in it, so a snapshot is byte-identical run after run.
//!
//! Rendered as YAML for insta: a few header keys, then one event per line as a JSON flow mapping
//! (JSON is valid YAML), so a review diff shows exactly which event changed.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Map, Value};

static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A process-wide, ever-increasing stamp. Gateway records, client events and harness entries take
/// one when they happen, so events at the same virtual instant keep their causal order in a
/// transcript (a single-threaded paused runtime makes that order the same every run).
pub fn next_seq() -> u64 {
    SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Who an event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The simulated gateway (its log, its fault decisions, what it received).
    Gateway,
    /// The client under test.
    Client,
    /// The harness itself: the scenario's commands and what came of them.
    Harness,
}

/// One event, rendered: a transcript keeps the line it shows, not the event behind it, so a long
/// run holds a few hundred bytes of text per event instead of its typed event and a JSON tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    /// Virtual time, µs since the run started.
    pub t_us: u64,
    /// Causal order among lines of the same time ([`next_seq`]); not rendered.
    #[serde(skip)]
    pub seq: u64,
    /// Who.
    pub side: Side,
    /// The line's JSON object: `t`, `by`, then the event's own keys (`type` first).
    pub text: Box<str>,
}

impl Line {
    /// The line of an event already serialised as a compact JSON object (`{"type":...}`): `t`
    /// and `by`, then its keys, as [`Line::new`] renders it.
    pub fn from_object(t_us: u64, seq: u64, side: Side, event: &str) -> Line {
        let fields = event.strip_prefix('{').expect("an event serialises as a JSON object");
        let by = match side {
            Side::Gateway => "gateway",
            Side::Client => "client",
            Side::Harness => "harness",
        };
        let sep = if fields.starts_with('}') { "" } else { "," };
        let mut text = String::with_capacity(event.len() + 32);
        let _ = write!(text, "{{\"t\":\"{}\",\"by\":\"{by}\"{sep}{fields}", format_t(t_us));
        Line {
            t_us,
            seq,
            side,
            text: text.into_boxed_str(),
        }
    }

    /// Renders `event` (a JSON object with a `"type"` key; anything else is kept under `event`)
    /// at `t_us` from `side`.
    pub fn new(t_us: u64, seq: u64, side: Side, event: Value) -> Line {
        let mut obj = Map::new();
        obj.insert("t".into(), Value::String(format_t(t_us)));
        obj.insert("by".into(), serde_json::to_value(side).expect("side serialises"));
        match event {
            Value::Object(o) => obj.extend(o),
            other => {
                obj.insert("event".into(), other);
            }
        }
        Line {
            t_us,
            seq,
            side,
            text: json(&Value::Object(obj)).into_boxed_str(),
        }
    }
}

/// The outcome of one invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Invariant name, e.g. `every_frame_once`.
    pub name: String,
    /// Whether it held.
    pub ok: bool,
    /// What was measured (and, on failure, what was wrong).
    pub detail: String,
}

/// A whole transcript.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcript {
    /// Scenario name.
    pub scenario: String,
    /// Seed used.
    pub seed: u64,
    /// Counters: frames, faults, reconnects, ...
    pub summary: Map<String, Value>,
    /// Invariants checked.
    pub checks: Vec<Check>,
    /// Events in order, rendered (empty when the run kept none: live mode, or a run judged by
    /// its checks alone).
    pub events: Vec<Line>,
}

impl Transcript {
    /// Sorts events by time, by the order they happened in at equal times, and at equal stamps
    /// gateway before client before harness (a stable sort: lines equal in all three keep the
    /// order they were made in).
    pub fn order_events(&mut self) {
        self.events.sort_by_key(|e| (e.t_us, e.seq, e.side));
    }

    /// True when every check held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The YAML text that snapshots hold.
    pub fn to_yaml(&self) -> String {
        let lines: usize = self.events.iter().map(|e| e.text.len() + 5).sum();
        let mut s = String::with_capacity(lines + 4096);
        let _ = writeln!(s, "scenario: {}", json(&Value::String(self.scenario.clone())));
        let _ = writeln!(s, "seed: {}", self.seed);
        s.push_str("summary:\n");
        for (k, v) in &self.summary {
            let _ = writeln!(s, "  {k}: {}", json(v));
        }
        s.push_str("checks:\n");
        for c in &self.checks {
            let _ = writeln!(
                s,
                "  - {{name: {}, ok: {}, detail: {}}}",
                c.name,
                c.ok,
                json(&Value::String(c.detail.clone()))
            );
        }
        s.push_str("events:\n");
        for e in &self.events {
            s.push_str("  - ");
            s.push_str(&e.text);
            s.push('\n');
        }
        s
    }
}

/// Seconds with millisecond precision (and µs when not whole milliseconds): `12.500`, `0.000250`.
pub fn format_t(t_us: u64) -> String {
    if t_us.is_multiple_of(1000) {
        format!("{}.{:03}", t_us / 1_000_000, (t_us / 1000) % 1000)
    } else {
        format!("{}.{:06}", t_us / 1_000_000, t_us % 1_000_000)
    }
}

fn json(v: &Value) -> String {
    serde_json::to_string(v).expect("JSON values serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_render_one_per_line_in_time_order() {
        let mut t = Transcript {
            scenario: "x".into(),
            seed: 3,
            summary: Map::new(),
            checks: vec![Check {
                name: "a".into(),
                ok: true,
                detail: "1 of 1".into(),
            }],
            events: vec![
                Line::new(1500, 3, Side::Client, serde_json::json!({"type": "message"})),
                Line::new(1500, 2, Side::Gateway, serde_json::json!({"type": "offered"})),
                Line::new(250, 1, Side::Client, serde_json::json!({"type": "connected"})),
            ],
        };
        t.order_events();
        let y = t.to_yaml();
        let lines: Vec<&str> = y.lines().filter(|l| l.starts_with("  - {\"t\"")).collect();
        assert_eq!(
            lines,
            [
                r#"  - {"t":"0.000250","by":"client","type":"connected"}"#,
                r#"  - {"t":"0.001500","by":"gateway","type":"offered"}"#,
                r#"  - {"t":"0.001500","by":"client","type":"message"}"#,
            ]
        );
    }
}
