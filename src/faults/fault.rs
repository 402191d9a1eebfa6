//! What a fault is: one sync decision on `&mut self` per message (turmoil-net's rules), with a
//! context ([`Cx`]) that gives it time, its RNG, its trigger and the log. Each fault file
//! implements [`Fault`] for its per-connection state and [`FaultType`] for its parameters; the
//! [pipeline](super::pipeline) chains them and the [catalogue](super::FaultKind) lists them.
//! Kept apart from the pipeline so that a fault needs nothing of the chain around it.

use std::time::Duration;

use rand_chacha::ChaCha8Rng;

use super::frames;
use super::outcome::Outcome;
use super::stall::EntryHold;
use super::trigger::{Eval, FrameTag, ProtoCounts, Shared, Trigger};
use super::{Direction, FaultRecord};

/// A fault's parameters, as a catalogue row names them: how they are checked and what runs them.
pub(crate) trait FaultType {
    /// Checks values serde cannot (ranges, contradictions).
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
    /// A fresh instance for one connection and direction; `None` for handshake-only faults.
    fn build(&self) -> Option<Box<dyn Fault>>;
    /// True for faults that can fire on a timer without a message (disconnect, stall).
    fn acts_on_time(&self) -> bool {
        false
    }
}

/// One WebSocket message inside the chain.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    /// Envelope prefix + payload.
    pub bytes: Vec<u8>,
    /// Virtual time it may be delivered at (latency and bandwidth push it later).
    pub at: Duration,
    /// 1-based index of the pipeline input message it came from (per connection and direction).
    pub idx: u64,
}

/// What a fault hands on: a message for the next fault, or a link action for the gateway.
#[derive(Debug)]
pub(crate) enum Out {
    Send(Msg),
    Close {
        code: u16,
        reason: String,
    },
    Abort,
    Stall {
        until: Option<Duration>,
        /// A two-way stall's hold of the other direction, which the pipeline keeps at its entry.
        hold: Option<EntryHold>,
    },
}

/// One fault instance on one connection and direction. Like turmoil-net's rules: a sync decision on
/// `&mut self`, so it can keep counters and held messages without locks.
pub(crate) trait Fault: std::fmt::Debug + Send {
    /// A message reached this fault.
    fn on_message(&mut self, m: Msg, cx: &mut Cx<'_>) -> Vec<Out>;
    /// [`Fault::deadline`] has passed.
    fn on_tick(&mut self, _cx: &mut Cx<'_>) -> Vec<Out> {
        Vec::new()
    }
    /// When this fault next needs [`Fault::on_tick`] (a held message to release).
    fn deadline(&self) -> Option<Duration> {
        None
    }
    /// The connection closed: every message still held.
    fn drain(&mut self) -> Vec<Msg> {
        Vec::new()
    }
    /// A time-only trigger reached its instant (only disconnect and stall act on it).
    fn on_time(&mut self, _cx: &mut Cx<'_>) -> Vec<Out> {
        Vec::new()
    }
}

/// What a fault sees besides the message: time, where it is, its RNG, its trigger and the log.
pub(crate) struct Cx<'a> {
    pub now: Duration,
    pub conn: u64,
    pub dir: Direction,
    pub prefix_len: usize,
    pub rng: &'a mut ChaCha8Rng,
    pub(super) name: &'a str,
    pub(super) trigger: &'a Trigger,
    pub(super) opened: Duration,
    pub(super) local_seen: &'a mut u64,
    pub(super) shared: &'a mut Shared,
    pub(super) proto_conn: &'a ProtoCounts,
    pub(super) proto_run: &'a ProtoCounts,
    pub(super) log: &'a mut Vec<FaultRecord>,
}

impl Cx<'_> {
    fn eval(&mut self) -> Eval<'_> {
        Eval {
            trigger: self.trigger,
            now: self.now,
            opened: self.opened,
            dir: self.dir,
            local_seen: self.local_seen,
            shared: self.shared,
            proto_conn: self.proto_conn,
            proto_run: self.proto_run,
            rng: self.rng,
        }
    }

    /// Does the trigger fire on this unit (its frames)?
    pub fn fire(&mut self, unit: &[FrameTag]) -> bool {
        self.eval().fire(unit)
    }

    /// Does a time-only trigger fire now?
    pub fn fire_time(&mut self) -> bool {
        self.eval().fire_time()
    }

    /// The frames of a message, for a message-level trigger.
    pub fn fire_msg(&mut self, m: &Msg) -> bool {
        let tags = frames::tags(&m.bytes, self.prefix_len);
        self.fire(&tags)
    }

    /// The fault's name, as logged.
    pub fn name(&self) -> &str {
        self.name
    }

    /// Logs one decision.
    pub fn record(&mut self, msg: Option<u64>, what: Outcome, offsets: Vec<usize>, detail: impl Into<String>) {
        self.log.push(FaultRecord {
            t_us: self.now.as_micros() as u64,
            conn: self.conn,
            dir: Some(self.dir),
            msg,
            fault: self.name.to_string(),
            what,
            offsets,
            detail: detail.into(),
        });
    }
}
