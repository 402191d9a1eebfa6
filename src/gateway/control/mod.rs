//! Run-time control of a running gateway (issue 15): faults added, changed in place and removed
//! while clients are connected, connections closed, aborted or stalled (for a while or for good)
//! one by one or as a seeded storm, the feed paused and resumed (the terminal's answers still
//! flow), trigger counters reset, and the log read from a cursor. [`http`] serves
//! these over HTTP+JSON (`serve --control ADDR`); the operations themselves are methods of
//! [`Gateway`] here, so tests and other front ends use them without HTTP.
//!
//! Every change is logged as a gateway `control` event, so a transcript or a poller of `GET /log`
//! sees cause beside effect. A rejected request changes nothing: each operation checks everything
//! before touching any session.
//!
//! Reproducibility: faults keep their position for good, a changed one too (see the pipeline),
//! and a session created after changes replays them in order on its fresh pipeline, so every
//! session's faults depend on the seed and the ordered list of changes only.

pub mod http;
mod ring;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::sync::watch;

pub use ring::{DEFAULT_LOG_CAPACITY, MAX_LOG_CAPACITY, Ring, Slice};

use super::conn::Signal;
use super::{ConnCommand, Gateway, GatewayEvent, GatewayRecord, Order, OrderedBy};
use crate::faults::limits::MAX_MS;
use crate::faults::{FaultSpec, Pipeline};

/// Most faults in force at once through the API (the chain every message walks grows with it).
pub const MAX_FAULTS_IN_FORCE: usize = 256;

/// A change made through the control API, as logged (`{"type":"control","action":...}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ControlEvent {
    /// A fault was added.
    FaultAdded {
        /// Its name.
        name: String,
        /// The spec, as `GET /faults` shows it.
        spec: Box<FaultSpec>,
    },
    /// A fault was changed in place (`PATCH /faults/{name}`).
    FaultChanged {
        /// Its name.
        name: String,
        /// The spec after the change, as `GET /faults` shows it.
        spec: Box<FaultSpec>,
    },
    /// A fault was removed.
    FaultRemoved {
        /// Its name.
        name: String,
    },
    /// One connection (the record's `conn`) was ordered to close, abort or stall.
    Command {
        /// The order.
        command: ConnCommand,
        /// A stall's length, ms; none: until the connection ends.
        #[serde(skip_serializing_if = "Option::is_none")]
        for_ms: Option<u64>,
    },
    /// A storm: a seeded fraction of the open connections ordered at once.
    Storm {
        /// The order.
        mode: ConnCommand,
        /// Fraction asked for.
        fraction: f64,
        /// Seed of the choice.
        seed: u64,
        /// The connections chosen, in id order.
        conns: Vec<u64>,
        /// A stall's length, ms; none: until the connection ends.
        #[serde(skip_serializing_if = "Option::is_none")]
        for_ms: Option<u64>,
    },
    /// The feed stopped being offered.
    Pause,
    /// The feed is offered again.
    Resume,
    /// Trigger counters and sent-message counters went back to zero.
    Reset,
}

/// A fault change, replayed in order on the pipeline of every session created after it.
#[derive(Debug, Clone)]
enum Change {
    Add(Box<FaultSpec>, String),
    Edit(Box<FaultSpec>, String),
    Remove(String),
}

/// The faults in force and the changes since start. Locked before the sessions (see
/// `Inner::claim`), so a session is either created before a change and changed with the others,
/// or created after it and replays it.
#[derive(Debug, Default)]
pub(super) struct FaultBook {
    active: Vec<(String, FaultSpec)>,
    changes: Vec<Change>,
}

impl FaultBook {
    /// Replays the changes on a new session's pipeline.
    pub(super) fn apply(&self, p: &mut Pipeline) -> Result<(), String> {
        for c in &self.changes {
            match c {
                Change::Add(spec, name) => p.add((**spec).clone(), name.clone()).map_err(|e| e.to_string())?,
                Change::Edit(spec, name) => {
                    p.change(name, (**spec).clone()).map_err(|e| e.to_string())?;
                }
                Change::Remove(name) => {
                    p.remove(name);
                }
            }
        }
        Ok(())
    }

    /// Where the fault in force named `name` is, or the 404 listing those in force.
    fn position(&self, name: &str) -> Result<usize, Rejected> {
        self.active.iter().position(|(n, _)| n == name).ok_or_else(|| {
            let names: Vec<&str> = self.active.iter().map(|(n, _)| n.as_str()).collect();
            let why = format!("no fault of that name in force (in force: {})", names.join(", "));
            Rejected::new("name", name, why).kind(RejectKind::NotFound)
        })
    }
}

/// A live connection as `GET /connections` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnInfo {
    /// Connection id (what `/connections/{id}/...` takes).
    pub id: u64,
    /// Session: the request path of its handshake.
    pub session: String,
    /// When it was accepted, µs since the gateway started (the log's `t_us` clock).
    pub since_us: u64,
    /// WebSocket messages written to it (since the last reset).
    pub messages_sent: u64,
}

struct Live {
    session: Arc<str>,
    since_us: u64,
    /// The connection's signal cell, which counts what it wrote.
    signal: Arc<Signal>,
}

/// The control side of a gateway: owned by its `Inner`, used by the connection handler (pause,
/// sent counters, the log ring) and by the operations below.
pub(super) struct State {
    pub(super) faults: Mutex<FaultBook>,
    paused: watch::Sender<bool>,
    ring: Mutex<Ring>,
    conns: Mutex<BTreeMap<u64, Live>>,
}

impl State {
    /// The faults configured at start, under their pipeline names.
    pub(super) fn new(names: &[String], specs: &[FaultSpec]) -> State {
        let active = names.iter().cloned().zip(specs.iter().cloned()).collect();
        State {
            faults: Mutex::new(FaultBook {
                active,
                changes: Vec::new(),
            }),
            paused: watch::Sender::new(false),
            ring: Mutex::new(Ring::default()),
            conns: Mutex::new(BTreeMap::new()),
        }
    }

    /// The book, locked (before the sessions).
    pub(super) fn book(&self) -> MutexGuard<'_, FaultBook> {
        self.faults.lock().expect("fault book lock")
    }

    /// Whether the feed is paused, as a channel a connection waits on.
    pub(super) fn paused(&self) -> watch::Receiver<bool> {
        self.paused.subscribe()
    }

    /// A record the gateway logged: kept in the ring when the API is on.
    pub(super) fn record(&self, r: &GatewayRecord) {
        let mut ring = self.ring.lock().expect("ring lock");
        if ring.enabled() {
            ring.push(r.clone());
        }
    }

    /// Connection `conn` of `session` was accepted at `since_us`; `signal` counts what it writes.
    pub(super) fn opened(&self, conn: u64, session: Arc<str>, since_us: u64, signal: Arc<Signal>) {
        let live = Live {
            session,
            since_us,
            signal,
        };
        self.conns.lock().expect("conns lock").insert(conn, live);
    }

    /// Connection `conn` ended.
    pub(super) fn closed(&self, conn: u64) {
        self.conns.lock().expect("conns lock").remove(&conn);
    }
}

/// Why a control operation was refused: the field and value at fault, and what is wrong. Nothing
/// changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field} = {value}: {message}")]
pub struct Rejected {
    /// The offending field (`type`, `every`, `name`, `id`, `fraction`, ...).
    pub field: String,
    /// Its value as given (boxed: a `Result` with this error stays small).
    pub value: Box<serde_json::Value>,
    /// What is wrong, with the allowed values or range.
    pub message: String,
    /// Nothing by that name or id (HTTP 404), or a conflict with what exists (409); else 400.
    pub kind: RejectKind,
}

/// How a [`Rejected`] maps to HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectKind {
    /// Malformed or out of range (400).
    Invalid,
    /// No such fault or connection (404).
    NotFound,
    /// Clashes with what exists: a name in use, the fault limit (409).
    Conflict,
}

impl Rejected {
    pub(crate) fn new(field: &str, value: impl Into<serde_json::Value>, message: impl Into<String>) -> Rejected {
        Rejected {
            field: field.into(),
            value: Box::new(value.into()),
            message: message.into(),
            kind: RejectKind::Invalid,
        }
    }

    fn kind(mut self, kind: RejectKind) -> Rejected {
        self.kind = kind;
        self
    }
}

impl Gateway {
    /// The shutdown flag the gateway was started with (the control server stops with it).
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.clone()
    }

    /// Turns on the log ring `GET /log` reads, keeping the last `capacity` records.
    pub fn enable_control_log(&self, capacity: usize) {
        self.inner
            .control
            .ring
            .lock()
            .expect("ring lock")
            .set_capacity(capacity);
    }

    /// Log records from cursor `since` (see [`Ring::read`]).
    pub fn control_log(&self, since: u64) -> Result<Slice, Rejected> {
        let ring = self.inner.control.ring.lock().expect("ring lock");
        ring.read(since).ok_or_else(|| {
            let total = ring.total();
            Rejected::new("since", since, format!("past the end of the log (0..={total})"))
        })
    }

    fn log_control(&self, conn: u64, e: ControlEvent) {
        self.inner.log(conn, GatewayEvent::Control(e));
    }

    /// The faults in force, in order, with their names.
    pub fn faults(&self) -> Vec<(String, FaultSpec)> {
        self.inner.control.book().active.clone()
    }

    /// Adds a fault to every session (open connections from their next message) and to sessions
    /// created later. Its name is `spec.name`, else its type; it must not be in use.
    pub fn add_fault(&self, spec: FaultSpec) -> Result<String, Rejected> {
        let name = spec.name.clone().unwrap_or_else(|| spec.kind.type_name().to_string());
        let mut book = self.inner.control.book();
        if book.active.iter().any(|(n, _)| *n == name) {
            let why = "a fault of that name is in force (names are unique; DELETE it first)";
            return Err(Rejected::new("name", name, why).kind(RejectKind::Conflict));
        }
        if book.active.len() >= MAX_FAULTS_IN_FORCE {
            let why = format!("{MAX_FAULTS_IN_FORCE} faults in force already (MAX_FAULTS_IN_FORCE)");
            return Err(Rejected::new("name", name, why).kind(RejectKind::Conflict));
        }
        spec.validate()
            .map_err(|m| Rejected::new("type", spec.kind.type_name(), m))?;
        for s in self.inner.sessions.lock().expect("sessions lock").all() {
            let added = s.lock().expect("session lock").pipeline.add(spec.clone(), name.clone());
            // Validated above; a pipeline refuses only what `validate` refuses.
            debug_assert!(added.is_ok());
        }
        book.active.push((name.clone(), spec.clone()));
        book.changes.push(Change::Add(Box::new(spec.clone()), name.clone()));
        drop(book);
        self.log_control(
            0,
            ControlEvent::FaultAdded {
                name: name.clone(),
                spec: Box::new(spec),
            },
        );
        Ok(name)
    }

    /// Removes the fault in force named `name` everywhere.
    pub fn remove_fault(&self, name: &str) -> Result<(), Rejected> {
        let mut book = self.inner.control.book();
        let pos = book.position(name)?;
        for s in self.inner.sessions.lock().expect("sessions lock").all() {
            s.lock().expect("session lock").pipeline.remove(name);
        }
        book.active.remove(pos);
        book.changes.push(Change::Remove(name.to_string()));
        drop(book);
        self.log_control(0, ControlEvent::FaultRemoved { name: name.into() });
        Ok(())
    }

    /// Changes the fault in force named `name` in place: `edit` gets its spec and returns the new
    /// one (or why not), under the fault book's lock, so two changes never interleave. The fault
    /// keeps its name, type and direction (400 naming the field otherwise) and its slot: see
    /// [`Pipeline::change`] for what its counters and random stream do. Returns the new spec.
    pub fn change_fault(
        &self,
        name: &str,
        edit: impl FnOnce(&FaultSpec) -> Result<FaultSpec, Rejected>,
    ) -> Result<FaultSpec, Rejected> {
        let mut book = self.inner.control.book();
        let pos = book.position(name)?;
        let old = &book.active[pos].1;
        let spec = edit(old)?;
        keeps_its_slot(name, old, &spec)?;
        spec.validate()
            .map_err(|m| Rejected::new("type", spec.kind.type_name(), m))?;
        for s in self.inner.sessions.lock().expect("sessions lock").all() {
            let changed = s.lock().expect("session lock").pipeline.change(name, spec.clone());
            // Checked above; a pipeline refuses only what `validate` and `keeps_its_slot` refuse.
            debug_assert_eq!(changed, Ok(true));
        }
        book.active[pos].1 = spec.clone();
        book.changes
            .push(Change::Edit(Box::new(spec.clone()), name.to_string()));
        drop(book);
        let event = ControlEvent::FaultChanged {
            name: name.into(),
            spec: Box::new(spec.clone()),
        };
        self.log_control(0, event);
        Ok(spec)
    }

    /// Open connections with their session, start and messages sent, in id order.
    pub fn connections(&self) -> Vec<ConnInfo> {
        let conns = self.inner.control.conns.lock().expect("conns lock");
        conns
            .iter()
            .map(|(&id, l)| ConnInfo {
                id,
                session: l.session.to_string(),
                since_us: l.since_us,
                messages_sent: l.signal.sent.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Orders connection `id` to close, abort or stall (for `for_ms`, or until it ends): logged
    /// first, then carried out; its `closed` record says `how: api`.
    pub fn command_connection(&self, id: u64, cmd: ConnCommand, for_ms: Option<u64>) -> Result<(), Rejected> {
        stall_length(cmd, for_ms)?;
        if !self.live_connections().contains(&id) {
            let why = "no open connection with that id (GET /connections lists them)";
            return Err(Rejected::new("id", id, why).kind(RejectKind::NotFound));
        }
        self.log_control(id, ControlEvent::Command { command: cmd, for_ms });
        if self.order(id, api_order(cmd, for_ms)) {
            Ok(())
        } else {
            Err(Rejected::new("id", id, "the connection ended meanwhile").kind(RejectKind::NotFound))
        }
    }

    /// A storm: `round(fraction × open)` of the open connections, chosen with `seed` (the same
    /// open set and seed always choose the same ones), ordered `mode` (a stall for `for_ms` when
    /// given). Returns the ids.
    pub fn storm(
        &self,
        fraction: f64,
        mode: ConnCommand,
        seed: Option<u64>,
        for_ms: Option<u64>,
    ) -> Result<Vec<u64>, Rejected> {
        if !(0.0..=1.0).contains(&fraction) {
            return Err(Rejected::new("fraction", fraction, "must be within 0.0..=1.0"));
        }
        stall_length(mode, for_ms)?;
        let seed = seed.unwrap_or(self.inner.cfg.seed);
        let live: Vec<usize> = self.live_connections().iter().map(|&c| c as usize).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let conns: Vec<u64> = super::storm::choose_victims(&live, fraction, &mut rng)
            .into_iter()
            .map(|c| c as u64)
            .collect();
        let event = ControlEvent::Storm {
            mode,
            fraction,
            seed,
            conns: conns.clone(),
            for_ms,
        };
        self.log_control(0, event);
        for &c in &conns {
            self.order(c, api_order(mode, for_ms));
        }
        Ok(conns)
    }

    /// Stops (`true`) or resumes offering the feed to every connection. The terminal's answers
    /// to what the client sends are still offered while paused (a test that paused the feed to
    /// look at its client still gets its commands answered; `stall` silences everything), and
    /// reading, pongs and orders go on. Logged only when it changes something.
    pub fn set_paused(&self, paused: bool) -> bool {
        let changed = self
            .inner
            .control
            .paused
            .send_if_modified(|p| std::mem::replace(p, paused) != paused);
        if changed {
            self.log_control(
                0,
                if paused {
                    ControlEvent::Pause
                } else {
                    ControlEvent::Resume
                },
            );
        }
        changed
    }

    /// Trigger counters of every fault (per connection and run-wide) and the sent-message counts
    /// back to zero. Message indices and the log keep counting.
    pub fn reset_counters(&self) {
        for s in self.inner.sessions.lock().expect("sessions lock").all() {
            s.lock().expect("session lock").pipeline.reset_counters();
        }
        for l in self.inner.control.conns.lock().expect("conns lock").values() {
            l.signal.sent.store(0, Ordering::Relaxed);
        }
        self.log_control(0, ControlEvent::Reset);
    }
}

/// An order of the control API.
fn api_order(command: ConnCommand, for_ms: Option<u64>) -> Order {
    Order {
        command,
        by: OrderedBy::Api,
        for_ms,
    }
}

/// A stall's `for_ms`: only a stall takes one, within the stall fault's range (1..=[`MAX_MS`]).
fn stall_length(cmd: ConnCommand, for_ms: Option<u64>) -> Result<(), Rejected> {
    let Some(ms) = for_ms else { return Ok(()) };
    if cmd != ConnCommand::Stall {
        return Err(Rejected::new("for_ms", ms, "only a stall lasts for a time"));
    }
    crate::faults::limits::check("for_ms", ms, 1..=MAX_MS).map_err(|m| Rejected::new("for_ms", ms, m))
}

/// A change keeps the fault's name, type and direction (its slot, its chain and its stream):
/// otherwise the field and the value asked for.
fn keeps_its_slot(name: &str, old: &FaultSpec, new: &FaultSpec) -> Result<(), Rejected> {
    let why = "a fault keeps its name, type and direction when changed (DELETE it and POST a new one)";
    if let Some(n) = new.name.as_deref().filter(|n| *n != name) {
        return Err(Rejected::new("name", n, why));
    }
    if new.kind.type_name() != old.kind.type_name() {
        return Err(Rejected::new("type", new.kind.type_name(), why));
    }
    if new.direction != old.direction {
        let dir = serde_json::to_value(new.direction).unwrap_or_default();
        return Err(Rejected::new("direction", dir, why));
    }
    Ok(())
}
