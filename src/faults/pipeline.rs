//! The pipeline: one chain of faults per connection and direction, driven with virtual time.
//!
//! Each connection gets fresh instances of every fault (held messages, latency clocks and
//! per-connection counters belong to one connection), each with its own RNG seeded from
//! `(seed, fault position, connection id, direction)`. So what happens on one connection does not
//! depend on how it interleaves with the others, which keeps live runs with many clients as
//! reproducible as a single in-memory one. Only `scope = "run"` counters and `times` are shared.
//!
//! Faults can be added and removed while connections are open ([`Pipeline::add`],
//! [`Pipeline::remove`], for the gateway's control API). A fault keeps its position for good (a
//! removed one leaves a disarmed slot), so an added fault's RNG is seeded exactly as if it had been
//! there from the start: a run is reproducible from its seed and the ordered list of changes.
//! [`Pipeline::change`] edits a fault in place: it keeps its slot (position, name, seed, trigger
//! counters, and on each open connection the random stream where it was), a fresh instance of the
//! new parameters takes the next message, and the old instance is kept retired only to release
//! what it holds.

use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

mod conns;

use self::conns::ConnMap;
use super::fault::{Cx, Fault, Msg, Out};
use super::frames;
use super::outcome::Outcome;
use super::stall::EntryHold;
use super::trigger::{Eval, ProtoCounts, Scope, Shared, Trigger};
use super::{Action, ConnectDecision, Direction, FaultKind, FaultRecord, FaultSpec, FaultSpecError};

struct Slot {
    spec: usize,
    fault: Box<dyn Fault>,
    rng: ChaCha8Rng,
    seen: u64,
    /// Instant of a time-only trigger not yet reached (disconnect, stall).
    time_at: Option<Duration>,
    /// Removed at run time: passes every message through, but still releases what it held.
    disarmed: bool,
    /// Instances replaced by [`Pipeline::change`], oldest first: they take no message, but are
    /// still ticked and drained, so what they held is released on its schedule (or given back at
    /// close) as a removed fault's is. Kept until the connection closes: a fault cannot say it
    /// holds nothing (an endless stall has no deadline), and one box per change is cheap.
    retired: Vec<Box<dyn Fault>>,
}

struct Conn {
    opened: Duration,
    chains: [Vec<Slot>; 2],
    proto: ProtoCounts,
    count: [u64; 2],
    last_at: [Duration; 2],
    closed: bool,
    entry_hold: Option<EntryHold>,
}

/// The fault pipeline. See the [module doc](super) for the contract and the catalogue.
pub struct Pipeline {
    specs: Vec<FaultSpec>,
    names: Vec<String>,
    /// Per position: removed at run time ([`Pipeline::remove`]).
    removed: Vec<bool>,
    seed: u64,
    prefix_len: usize,
    shared: Vec<Shared>,
    proto_run: ProtoCounts,
    /// Boxed, so the list's entries are small and a connection's state never moves.
    conns: ConnMap<Box<Conn>>,
    log: Vec<FaultRecord>,
    /// Made on the first `refuse` evaluation (the same draws as if made at start): 300 bytes a
    /// session without a `refuse` fault does not hold.
    refuse_rng: Option<Box<ChaCha8Rng>>,
}

/// splitmix64: spreads (seed, position, connection, direction) into independent RNG seeds.
fn mix(mut x: u64, parts: &[u64]) -> u64 {
    for p in parts {
        x ^= p.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x = z ^ (z >> 31);
    }
    x
}

impl Pipeline {
    /// A pipeline over `specs` (applied in order, each to its own direction), every random choice
    /// drawn from `seed`; `prefix_len` bytes at the start of every message are the envelope and
    /// are never altered (a message a fault cuts or builds gets a copy of it).
    pub fn new(specs: &[FaultSpec], seed: u64, prefix_len: usize) -> Result<Pipeline, FaultSpecError> {
        let mut names = Vec::with_capacity(specs.len());
        for (i, s) in specs.iter().enumerate() {
            s.validate().map_err(|message| FaultSpecError::Invalid {
                index: i,
                fault: s.kind.type_name().to_string(),
                message,
            })?;
            let dup = specs
                .iter()
                .filter(|o| o.kind.type_name() == s.kind.type_name())
                .count()
                > 1;
            names.push(match &s.name {
                Some(n) => n.clone(),
                None if dup => format!("{}#{}", s.kind.type_name(), i + 1),
                None => s.kind.type_name().to_string(),
            });
        }
        Ok(Pipeline {
            specs: specs.to_vec(),
            removed: vec![false; names.len()],
            names,
            seed,
            prefix_len,
            shared: vec![Shared::default(); specs.len()],
            proto_run: ProtoCounts::default(),
            conns: ConnMap::default(),
            log: Vec::new(),
            refuse_rng: None,
        })
    }

    /// The names faults are logged under (the spec's `name`, else its type, `#position` added when
    /// a type appears twice).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The faults in force (not removed), with the names they are logged under, in order.
    pub fn active(&self) -> impl Iterator<Item = (&str, &FaultSpec)> {
        let live = self.removed.iter().map(|r| !r);
        self.names
            .iter()
            .zip(&self.specs)
            .zip(live)
            .filter(|(_, l)| *l)
            .map(|((n, s), _)| (n.as_str(), s))
    }

    /// Adds `spec` at the end, under `name`, at `now`: every open connection gets an instance from
    /// its next message on (seeded from its position, as at start; time triggers count from the
    /// connection's opening), and connections opened later get one too. The spec is validated
    /// first; on error nothing changes.
    pub fn add(&mut self, spec: FaultSpec, name: String) -> Result<(), FaultSpecError> {
        let i = self.specs.len();
        spec.validate().map_err(|message| FaultSpecError::Invalid {
            index: i,
            fault: spec.kind.type_name().to_string(),
            message,
        })?;
        for (conn, c) in self.conns.iter_mut().filter(|(_, c)| !c.closed) {
            if let Some(slot) = new_slot(&spec, i, self.seed, conn, c.opened) {
                c.chains[spec.direction.index()].push(slot);
            }
        }
        self.specs.push(spec);
        self.names.push(name);
        self.removed.push(false);
        self.shared.push(Shared::default());
        Ok(())
    }

    /// Removes the fault in force named `name`: it stops acting on new messages at once, on every
    /// connection; what it holds is still released on its schedule (or given back at close).
    /// False when no fault in force has that name.
    pub fn remove(&mut self, name: &str) -> bool {
        let Some(i) = (0..self.specs.len()).find(|&i| !self.removed[i] && self.names[i] == name) else {
            return false;
        };
        self.removed[i] = true;
        for slot in self.conns.values_mut().flat_map(|c| c.chains.iter_mut().flatten()) {
            if slot.spec == i {
                slot.disarmed = true;
                slot.time_at = None;
            }
        }
        true
    }

    /// Changes the fault in force named `name` to `spec` in place (the control API's `PATCH`). It
    /// keeps its slot: its position (so its seed), its name, its trigger counters (`every`, `at`,
    /// `times`, ... count on), and on every open connection its random stream, which continues
    /// where it was. There a fresh instance built from `spec` takes the next message and the old
    /// one is retired (see [`Slot::retired`]); a pending time-only firing (`after_ms` alone)
    /// moves to the new trigger's instant, one that happened stays done. Connections opened later
    /// get an instance of `spec` as if it had been there from the start. `spec` must keep the
    /// type and direction (the chain and stream it sits in) and is validated first; on error
    /// nothing changes. `Ok(false)` when no fault in force has that name.
    pub fn change(&mut self, name: &str, spec: FaultSpec) -> Result<bool, FaultSpecError> {
        let Some(i) = (0..self.specs.len()).find(|&i| !self.removed[i] && self.names[i] == name) else {
            return Ok(false);
        };
        let invalid = |message: String| FaultSpecError::Invalid {
            index: i,
            fault: spec.kind.type_name().to_string(),
            message,
        };
        spec.validate().map_err(invalid)?;
        let old = &self.specs[i];
        if old.kind.type_name() != spec.kind.type_name() || old.direction != spec.direction {
            let was = format!("{} {:?}", old.kind.type_name(), old.direction);
            return Err(invalid(format!("a changed fault keeps its type and direction ({was})")));
        }
        let old_trigger = old.trigger.clone();
        let on_time = spec.kind.acts_on_time();
        for c in self.conns.values_mut().filter(|c| !c.closed) {
            let opened = c.opened;
            for slot in c.chains[spec.direction.index()].iter_mut().filter(|s| s.spec == i) {
                if let Some(fresh) = spec.kind.build() {
                    slot.retired.push(std::mem::replace(&mut slot.fault, fresh));
                }
                let fired = slot.time_at.is_none() && old_trigger.time_only_deadline(opened).is_some();
                if on_time && !fired {
                    slot.time_at = spec.trigger.time_only_deadline(opened);
                }
            }
        }
        self.specs[i] = spec;
        Ok(true)
    }

    /// Trigger counters back to zero (`every`, `at`, `after`, `times`, message-id counts), per
    /// connection and run-wide: a fault that has used its `times` can fire again. Message indices
    /// in the log keep counting.
    pub fn reset_counters(&mut self) {
        self.shared.iter_mut().for_each(|s| *s = Shared::default());
        self.proto_run = ProtoCounts::default();
        for c in self.conns.values_mut() {
            c.proto = ProtoCounts::default();
            c.chains.iter_mut().flatten().for_each(|s| s.seen = 0);
        }
    }

    /// A client opens a WebSocket: accept, or refuse the handshake with an HTTP status (`refuse`
    /// faults, evaluated per handshake in order; the first that fires wins).
    pub fn on_connect(&mut self, conn: u64, now: Duration) -> ConnectDecision {
        let seed = self.seed;
        for (i, spec) in self.specs.iter().enumerate() {
            let FaultKind::Refuse(r) = &spec.kind else { continue };
            if self.removed[i] {
                continue;
            }
            // Handshakes are counted across the run: a refused connection has no state to count in.
            let trigger = Trigger {
                scope: Scope::Run,
                ..spec.trigger.clone()
            };
            let shared = &mut self.shared[i];
            let refused_before = shared.fired;
            let mut local = 0;
            let empty = ProtoCounts::default();
            let fired = refused_before < r.count
                && Eval {
                    trigger: &trigger,
                    now,
                    opened: Duration::ZERO,
                    dir: spec.direction,
                    local_seen: &mut local,
                    shared,
                    proto_conn: &empty,
                    proto_run: &empty,
                    rng: self
                        .refuse_rng
                        .get_or_insert_with(|| Box::new(ChaCha8Rng::seed_from_u64(mix(seed, &[u64::MAX]))))
                        .as_mut(),
                }
                .fire(&[]);
            if fired {
                self.log.push(FaultRecord {
                    t_us: now.as_micros() as u64,
                    conn,
                    dir: None,
                    msg: None,
                    fault: self.names[i].clone(),
                    what: Outcome::Refuse,
                    offsets: Vec::new(),
                    detail: format!("HTTP {} ({} of {})", r.status, refused_before + 1, r.count),
                });
                return ConnectDecision::Refuse { status: r.status };
            }
        }
        self.open(conn, now);
        ConnectDecision::Accept
    }

    fn open(&mut self, conn: u64, now: Duration) {
        let mut chains: [Vec<Slot>; 2] = [Vec::new(), Vec::new()];
        for (i, spec) in self.specs.iter().enumerate() {
            if self.removed[i] {
                continue;
            }
            if let Some(slot) = new_slot(spec, i, self.seed, conn, now) {
                chains[spec.direction.index()].push(slot);
            }
        }
        self.conns.insert(
            conn,
            Box::new(Conn {
                opened: now,
                chains,
                proto: ProtoCounts::default(),
                count: [0; 2],
                last_at: [now; 2],
                closed: false,
                entry_hold: None,
            }),
        );
    }

    /// One WebSocket message about to cross the link in `dir` (envelope prefix included). Returns
    /// what to do, in order. A connection never announced with [`Pipeline::on_connect`] is opened
    /// now.
    pub fn on_message(&mut self, conn: u64, dir: Direction, msg: Vec<u8>, now: Duration) -> Vec<Action> {
        let mut actions = Vec::new();
        self.on_message_with(conn, dir, msg, now, |a| actions.push(a));
        actions
    }

    /// [`Pipeline::on_message`] handing each action to `f`, in order, instead of collecting them:
    /// the gateway's path per message. A direction with no fault costs no allocation: the frames
    /// are tagged with a deframer kept for the purpose ([`frames::tags`]) and the message passes
    /// straight through.
    pub fn on_message_with(
        &mut self,
        conn: u64,
        dir: Direction,
        msg: Vec<u8>,
        now: Duration,
        mut f: impl FnMut(Action),
    ) {
        if !self.conns.contains_key(conn) {
            self.open(conn, now);
        }
        let prefix_len = self.prefix_len;
        let Pipeline {
            specs,
            names,
            shared,
            proto_run,
            conns,
            log,
            ..
        } = self;
        let Some(c) = conns.get_mut(conn) else {
            return;
        };
        c.count[dir.index()] += 1;
        let idx = c.count[dir.index()];
        if c.closed {
            log.push(undelivered(now, conn, dir, idx, msg.len(), "connection already closed"));
            return;
        }
        let tags = frames::tags(&msg, prefix_len);
        let m = Msg {
            bytes: msg,
            at: now,
            idx,
        };
        if let Some(h) = &mut c.entry_hold
            && h.dir() == dir
        {
            h.offer(m, now, conn, log);
            return;
        }
        if c.chains[dir.index()].is_empty() {
            // What the chain and `Env::finish` below do with a message no fault sees.
            c.proto.observe(dir, &tags);
            proto_run.observe(dir, &tags);
            let d = dir.index();
            let at = m.at.max(now).max(c.last_at[d]);
            c.last_at[d] = at;
            return f(Action::Send {
                dir,
                at,
                bytes: m.bytes,
            });
        }
        let mut env = Env {
            specs,
            names,
            shared,
            proto_run,
            log,
            prefix_len,
            now,
            conn,
        };
        let outs = env.run(c, dir, 0, vec![Out::Send(m)]);
        // Counted after the chain saw the message: `after_frame` fires on the next one.
        c.proto.observe(dir, &tags);
        env.proto_run.observe(dir, &tags);
        env.finish(c, dir, outs).into_iter().for_each(f);
    }

    /// Time passed: releases held messages, ends stalls, fires time-triggered disconnects and
    /// stalls. Call it at [`Pipeline::next_deadline`].
    pub fn on_tick(&mut self, conn: u64, now: Duration) -> Vec<Action> {
        let prefix_len = self.prefix_len;
        let Pipeline {
            specs,
            names,
            shared,
            proto_run,
            conns,
            log,
            ..
        } = self;
        let Some(c) = conns.get_mut(conn) else {
            return Vec::new();
        };
        let mut env = Env {
            specs,
            names,
            shared,
            proto_run,
            log,
            prefix_len,
            now,
            conn,
        };
        let mut actions = Vec::new();
        for dir in [Direction::ToClient, Direction::ToGateway] {
            let mut i = 0;
            while i < c.chains[dir.index()].len() && !c.closed {
                let mut outs = Vec::new();
                if c.chains[dir.index()][i].time_at.is_some_and(|t| t <= now) {
                    c.chains[dir.index()][i].time_at = None;
                    outs.extend(env.call(c, dir, i, |f, cx| f.on_time(cx)));
                }
                for k in 0..c.chains[dir.index()][i].retired.len() {
                    if c.chains[dir.index()][i].retired[k].deadline().is_some_and(|t| t <= now) {
                        outs.extend(env.call_instance(c, dir, i, Some(k), |f, cx| f.on_tick(cx)));
                    }
                }
                if c.chains[dir.index()][i].fault.deadline().is_some_and(|t| t <= now) {
                    outs.extend(env.call(c, dir, i, |f, cx| f.on_tick(cx)));
                }
                if !outs.is_empty() {
                    let outs = env.run(c, dir, i + 1, outs);
                    actions.extend(env.finish(c, dir, outs));
                }
                i += 1;
            }
        }
        if c.entry_hold.as_ref().is_some_and(|h| h.due(now))
            && !c.closed
            && let Some(h) = c.entry_hold.take()
        {
            let dir = h.dir();
            let held = h.release(now, conn, env.log).into_iter().map(Out::Send).collect();
            let outs = env.run(c, dir, 0, held);
            actions.extend(env.finish(c, dir, outs));
        }
        actions
    }

    /// Whether a fault holds a message on some connection (to be released on a tick): a live run
    /// is not settled while one does. Time triggers alone do not count (they may recur forever).
    pub fn holds_messages(&self) -> bool {
        self.conns
            .values()
            .any(|c| c.entry_hold.is_some() || c.chains.iter().flatten().any(|s| s.fault.deadline().is_some()))
    }

    /// The earliest virtual time at which [`Pipeline::on_tick`] has something to do.
    pub fn next_deadline(&self, conn: u64) -> Option<Duration> {
        let c = self.conns.get(conn)?;
        if c.closed {
            return None;
        }
        let slots = c.chains.iter().flatten();
        let retired = slots.clone().flat_map(|s| s.retired.iter().map(|f| f.deadline()));
        slots
            .flat_map(|s| [s.time_at, s.fault.deadline()])
            .chain(retired)
            .chain([c.entry_hold.as_ref().and_then(EntryHold::until)])
            .flatten()
            .min()
    }

    /// The connection ended: everything still held comes back as `Send` actions (at `now`) and is
    /// logged as `undelivered`. These bytes cannot be sent any more; they are returned so the
    /// transcript can show what the fault swallowed, never silently dropped.
    pub fn on_close(&mut self, conn: u64, now: Duration) -> Vec<Action> {
        let Some(mut c) = self.conns.remove(conn) else {
            return Vec::new();
        };
        let mut actions = Vec::new();
        let mut give_back = |log: &mut Vec<FaultRecord>, dir: Direction, fault: &str, m: Msg| {
            log.push(FaultRecord {
                t_us: now.as_micros() as u64,
                conn,
                dir: Some(dir),
                msg: Some(m.idx),
                fault: fault.to_string(),
                what: Outcome::Undelivered,
                offsets: Vec::new(),
                detail: format!("{} bytes held when the connection closed", m.bytes.len()),
            });
            actions.push(Action::Send {
                dir,
                at: now,
                bytes: m.bytes,
            });
        };
        for dir in [Direction::ToClient, Direction::ToGateway] {
            for slot in &mut c.chains[dir.index()] {
                let held: Vec<Msg> = slot.retired.iter_mut().flat_map(|f| f.drain()).collect();
                for m in held.into_iter().chain(slot.fault.drain()) {
                    give_back(&mut self.log, dir, &self.names[slot.spec], m);
                }
            }
        }
        if let Some(h) = c.entry_hold.take() {
            let (name, dir, held) = h.into_held();
            for m in held {
                give_back(&mut self.log, dir, &name, m);
            }
        }
        actions
    }

    /// Every decision since the last call, in order.
    pub fn take_log(&mut self) -> Vec<FaultRecord> {
        std::mem::take(&mut self.log)
    }
}

/// A fresh instance of fault `i` for connection `conn` opened at `opened`; `None` for
/// handshake-only faults. Its RNG depends on (seed, position, connection, direction) only.
fn new_slot(spec: &FaultSpec, i: usize, seed: u64, conn: u64, opened: Duration) -> Option<Slot> {
    let fault = spec.kind.build()?;
    let dir = spec.direction;
    Some(Slot {
        spec: i,
        fault,
        rng: ChaCha8Rng::seed_from_u64(mix(seed, &[i as u64, conn, dir.index() as u64])),
        seen: 0,
        time_at: if spec.kind.acts_on_time() {
            spec.trigger.time_only_deadline(opened)
        } else {
            None
        },
        disarmed: false,
        retired: Vec::new(),
    })
}

fn undelivered(now: Duration, conn: u64, dir: Direction, idx: u64, len: usize, why: &str) -> FaultRecord {
    FaultRecord {
        t_us: now.as_micros() as u64,
        conn,
        dir: Some(dir),
        msg: Some(idx),
        fault: "pipeline".into(),
        what: Outcome::Undelivered,
        offsets: Vec::new(),
        detail: format!("{len} bytes: {why}"),
    }
}

/// The pipeline's run-wide state, borrowed apart from one connection.
struct Env<'a> {
    specs: &'a [FaultSpec],
    names: &'a [String],
    shared: &'a mut [Shared],
    proto_run: &'a mut ProtoCounts,
    log: &'a mut Vec<FaultRecord>,
    prefix_len: usize,
    now: Duration,
    conn: u64,
}

impl Env<'_> {
    /// Calls fault `i` of `dir`'s chain with a context.
    fn call(
        &mut self,
        c: &mut Conn,
        dir: Direction,
        i: usize,
        f: impl FnOnce(&mut dyn Fault, &mut Cx<'_>) -> Vec<Out>,
    ) -> Vec<Out> {
        self.call_instance(c, dir, i, None, f)
    }

    /// Calls fault `i` of `dir`'s chain, or its retired instance `k` ([`Slot::retired`]), with a
    /// context: the slot's RNG, counters and trigger either way.
    fn call_instance(
        &mut self,
        c: &mut Conn,
        dir: Direction,
        i: usize,
        k: Option<usize>,
        f: impl FnOnce(&mut dyn Fault, &mut Cx<'_>) -> Vec<Out>,
    ) -> Vec<Out> {
        let Conn {
            chains, proto, opened, ..
        } = c;
        let Slot {
            spec,
            fault,
            rng,
            seen,
            retired,
            ..
        } = &mut chains[dir.index()][i];
        let fault = match k {
            Some(k) => &mut retired[k],
            None => fault,
        };
        let mut cx = Cx {
            now: self.now,
            conn: self.conn,
            dir,
            prefix_len: self.prefix_len,
            rng,
            name: &self.names[*spec],
            trigger: &self.specs[*spec].trigger,
            opened: *opened,
            local_seen: seen,
            shared: &mut self.shared[*spec],
            proto_conn: proto,
            proto_run: self.proto_run,
            log: self.log,
        };
        f(fault.as_mut(), &mut cx)
    }

    /// Feeds `items` through faults `start..` of `dir`'s chain: each fault's `Send`s go to the next
    /// fault, link actions pass straight through in their place.
    fn run(&mut self, c: &mut Conn, dir: Direction, start: usize, mut items: Vec<Out>) -> Vec<Out> {
        for i in start..c.chains[dir.index()].len() {
            let mut next = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Out::Send(m) if c.chains[dir.index()][i].disarmed => next.push(Out::Send(m)),
                    Out::Send(m) => next.extend(self.call(c, dir, i, |f, cx| f.on_message(m, cx))),
                    other => next.push(other),
                }
            }
            items = next;
        }
        items
    }

    /// Turns the chain's output into actions: delivery times made monotonic per direction (TCP
    /// keeps order), link actions timed after what was sent before them.
    fn finish(&mut self, c: &mut Conn, dir: Direction, outs: Vec<Out>) -> Vec<Action> {
        let mut actions = Vec::with_capacity(outs.len());
        let d = dir.index();
        for o in outs {
            match o {
                Out::Send(m) if c.closed => {
                    self.log.push(undelivered(
                        self.now,
                        self.conn,
                        dir,
                        m.idx,
                        m.bytes.len(),
                        "after the link closed",
                    ));
                }
                Out::Send(m) => {
                    let at = m.at.max(self.now).max(c.last_at[d]);
                    c.last_at[d] = at;
                    actions.push(Action::Send {
                        dir,
                        at,
                        bytes: m.bytes,
                    });
                }
                Out::Close { .. } | Out::Abort if c.closed => {}
                Out::Close { code, reason } => {
                    c.closed = true;
                    let at = self.now.max(c.last_at[0]).max(c.last_at[1]);
                    actions.push(Action::Close { code, reason, at });
                }
                Out::Abort => {
                    c.closed = true;
                    let at = self.now.max(c.last_at[0]).max(c.last_at[1]);
                    actions.push(Action::Abort { at });
                }
                Out::Stall { until, hold } => {
                    if let Some(h) = hold {
                        c.entry_hold = Some(h);
                    }
                    actions.push(Action::Stall { until });
                }
            }
        }
        actions
    }
}

/// The pipeline's unit tests: run-time add, remove and change, seeding, reset.
#[cfg(test)]
mod tests;
