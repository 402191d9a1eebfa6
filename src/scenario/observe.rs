//! A run's evidence as it comes in. Every gateway record, client event and harness record is read
//! once, when the runner takes it, by the checks' [`Facts`], by the caller's [`Observer`] (explore's
//! invariants) and, when the transcript is kept, rendered to its line; then it is dropped. So what
//! a run holds is the open state the checks need and, at most, the rendered lines, never the
//! events: a checks-only run stays flat in memory however long it lasts.
//!
//! The order evidence comes in: each side's in the order it happened; between the sides, every
//! gateway record logged before a client event comes before that event (the runner takes the
//! gateway's log before each client event), so an offer is always read before its decoding. The
//! checks depend on nothing else of the interleaving; the transcript's own order (time, then
//! causal stamp) is made by sorting its lines at the end.

use std::time::Duration;

use super::checks::Facts;
use super::harness::HarnessRecord;
use super::render;
use crate::client::Event;
use crate::gateway::GatewayRecord;
use crate::transcript::Line;

/// One piece of evidence a run produced, from whichever side.
#[derive(Debug, Clone, Copy)]
pub enum Evidence<'a> {
    /// A gateway log line.
    Gateway(&'a GatewayRecord),
    /// A client event.
    Client(&'a Event),
    /// What the harness did.
    Harness(&'a HarnessRecord),
}

impl Evidence<'_> {
    /// (virtual time in µs, causal stamp): the order transcripts show.
    pub fn order(&self) -> (u64, u64) {
        match self {
            Evidence::Gateway(r) => (r.t_us, r.seq),
            Evidence::Client(e) => (e.t_ms * 1000, e.seq),
            Evidence::Harness(h) => (h.t.as_micros() as u64, h.seq),
        }
    }
}

/// Every piece of evidence in transcript order: by time, then by when it happened; at equal
/// stamps gateway before client before harness (a stable sort of them in that order, as the
/// transcript's own).
pub fn in_order<'a>(
    gateway: &'a [GatewayRecord],
    client: &'a [Event],
    harness: &'a [HarnessRecord],
) -> Vec<Evidence<'a>> {
    let mut all: Vec<Evidence<'a>> = gateway.iter().map(Evidence::Gateway).collect();
    all.extend(client.iter().map(Evidence::Client));
    all.extend(harness.iter().map(Evidence::Harness));
    all.sort_by_key(Evidence::order);
    all
}

/// Something that reads a run's evidence as it comes (see the module doc for the order). `Send`:
/// the runner's tasks share it.
pub trait Observer: Send {
    /// Takes in one piece of evidence.
    fn observe(&mut self, e: Evidence<'_>);
}

/// Reads nothing.
impl Observer for () {
    fn observe(&mut self, _: Evidence<'_>) {}
}

/// How often settled messages are forgotten ([`Facts::sweep`]), in virtual time: a message the
/// checks have settled (decoded as often as offered, or excused by a fault) and that saw nothing
/// for a whole period is forgotten at the next sweep, so it is remembered 60 to 120 s. That is
/// longer than anything holds a copy of a message back (a reorder's `max_wait_ms`, 1 s by default;
/// a packet group's timeout and retransmit wait, seconds), and no bundled scenario outlasts two
/// periods by much: a serial that wraps in a long run then starts a new message instead of
/// meeting the old one.
pub const SETTLED_RETENTION: Duration = Duration::from_secs(60);

/// What a run keeps while it runs: the checks' facts, the transcript's lines if asked for, and
/// the caller's observer, fed the same evidence.
#[derive(Debug)]
pub struct Recorder<O> {
    facts: Facts,
    lines: Option<Vec<Line>>,
    observer: O,
    seen: u64,
    next_sweep_us: u64,
}

impl<O: Observer> Recorder<O> {
    /// A recorder that renders the transcript's lines when `keep_lines`.
    pub fn new(keep_lines: bool, observer: O) -> Recorder<O> {
        Recorder {
            facts: Facts::default(),
            lines: keep_lines.then(Vec::new),
            observer,
            seen: 0,
            next_sweep_us: SETTLED_RETENTION.as_micros() as u64,
        }
    }

    /// Takes in one piece of evidence.
    pub fn observe(&mut self, e: Evidence<'_>) {
        self.seen += 1;
        self.facts.observe(e);
        self.observer.observe(e);
        if let Some(lines) = &mut self.lines {
            lines.push(render::line(e));
        }
    }

    /// Takes in gateway records, in log order.
    pub fn gateway_log(&mut self, log: &[GatewayRecord]) {
        for r in log {
            self.observe(Evidence::Gateway(r));
        }
    }

    /// Virtual time is `now`: forgets the messages settled a period ago, once per
    /// [`SETTLED_RETENTION`].
    pub fn tick(&mut self, now: Duration) {
        let now_us = now.as_micros() as u64;
        if now_us >= self.next_sweep_us {
            self.facts.sweep();
            let period = SETTLED_RETENTION.as_micros() as u64;
            self.next_sweep_us = (now_us / period + 1) * period;
        }
    }

    /// How many pieces of evidence came in so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The facts so far.
    pub fn facts(&self) -> &Facts {
        &self.facts
    }

    /// The facts, the lines (in the order they came: sort them for a transcript) and the observer.
    pub fn finish(self) -> (Facts, Vec<Line>, O) {
        (self.facts, self.lines.unwrap_or_default(), self.observer)
    }
}
