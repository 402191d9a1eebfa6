//! Runs one [`Scenario`]: the real client against the simulated gateway.
//!
//! - **Snapshot mode**: gateway and client in one process over in-memory pipes
//!   ([`crate::transport::MemoryNetwork`]) on a current-thread tokio runtime with the paused clock.
//!   Minutes of backoff cost nothing, and every run of a scenario gives the same transcript.
//! - **Live mode**: the same scenario over real loopback TCP (port 0) with the real clock; it ends
//!   early once everything settled, and only the invariants are checked.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::checks;
use super::{ClientSection, CommandSpec, Scenario};
use crate::client::{Client, ClientConfig, Event};
use crate::codec::body::{Body, RawBody};
use crate::codec::{Message, Phone};
use crate::gateway::{Gateway, GatewayRecord};
use crate::transcript::{Entry, Side, Transcript};
use crate::transport::{Listener, MemoryNetwork};

/// How a scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In one process over in-memory pipes with tokio's paused clock: deterministic, snapshotted.
    Snapshot,
    /// Over real loopback TCP with the real clock: invariants only.
    Live,
    /// Live against an external client process ([`super::external`]); its own runner.
    External,
}

impl Mode {
    /// "snapshot" or "live".
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Snapshot => "snapshot",
            Mode::Live => "live",
            Mode::External => "external",
        }
    }
}

/// Why a scenario could not run (as opposed to running and failing a check).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario's source, faults or commands cannot be set up.
    #[error("{path}: {message}")]
    Setup {
        /// The scenario file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The runtime or a socket could not be created.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// In-memory pipe capacity each way: like a socket buffer, so a slow reader pushes back.
const PIPE_CAPACITY: usize = 64 * 1024;
/// Answer timeout for `request = true` commands.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Live mode ends this long after everything settled.
const LIVE_SETTLE: Duration = Duration::from_millis(500);

/// Runs a scenario and returns its transcript with the checks done.
pub fn run(sc: &Scenario, mode: Mode) -> Result<Transcript, RunError> {
    let mut b = tokio::runtime::Builder::new_current_thread();
    b.enable_all();
    if mode == Mode::Snapshot {
        b.start_paused(true);
    }
    let rt = b.build()?;
    rt.block_on(run_async(sc, mode))
}

/// The client configuration a scenario asks for; the seed drives the backoff jitter.
pub fn client_config(c: &ClientSection, seed: u64) -> ClientConfig {
    let mut cfg = ClientConfig::default();
    let ms = Duration::from_millis;
    if let Some(v) = c.prefix_len {
        cfg.prefix_len = v;
    }
    if let Some(v) = c.backoff_min_ms {
        cfg.backoff.min = ms(v);
    }
    if let Some(v) = c.backoff_max_ms {
        cfg.backoff.max = ms(v);
    }
    if let Some(v) = c.backoff_factor {
        cfg.backoff.factor = v;
    }
    if let Some(v) = c.reset_after_ms {
        cfg.backoff.reset_after = ms(v);
    }
    if c.max_attempts.is_some() {
        cfg.backoff.max_attempts = c.max_attempts;
    }
    cfg.backoff.seed = seed;
    if let Some(v) = c.connect_timeout_ms {
        cfg.connect_timeout = ms(v);
    }
    if let Some(v) = c.ping_interval_ms {
        cfg.ping_interval = ms(v);
    }
    if let Some(v) = c.idle_timeout_ms {
        cfg.idle_timeout = ms(v);
    }
    if let Some(v) = c.queue_capacity {
        cfg.outbox.capacity = v;
    }
    if let Some(v) = c.confirm_timeout_ms {
        cfg.outbox.confirm_timeout = ms(v);
    }
    if let Some(v) = c.max_resends {
        cfg.outbox.max_resends = v;
    }
    if let Some(v) = c.group_timeout_ms {
        cfg.decoder.reassembly.timeout = ms(v);
    }
    if let Some(v) = c.request_missing {
        cfg.retransmit_requests = v;
    }
    if let Some(v) = c.retransmit_wait_ms {
        cfg.decoder.reassembly.retransmit_wait = ms(v);
    }
    if let Some(v) = c.rejoin_unescaped_flag {
        cfg.decoder.deframer.rejoin_unescaped_flag = v;
    }
    cfg
}

/// Builds the message of a scenario command.
pub fn command_message(c: &CommandSpec) -> Result<Message, String> {
    let phone = Phone::parse(&c.phone)?;
    let body = match (&c.body, &c.hex) {
        (Some(t), _) => Body::command(c.msg_id, toml::Value::Table(t.clone())).map_err(|e| e.to_string())?,
        (None, Some(h)) => {
            let raw = hex::decode(h.split_whitespace().collect::<String>()).map_err(|e| format!("hex: {e}"))?;
            Body::decode(c.msg_id, c.version, &raw)
        }
        (None, None) => Body::Raw(RawBody { raw: Vec::new() }),
    };
    Ok(Message::new(c.msg_id, c.version, phone, 0, body))
}

/// What the harness itself did (commands issued, request outcomes), for the transcript.
#[derive(Debug, Default)]
struct HarnessLog(Vec<(Duration, u64, Value)>);

async fn run_async(sc: &Scenario, mode: Mode) -> Result<Transcript, RunError> {
    let setup = |message: String| RunError::Setup {
        path: sc.path.display().to_string(),
        message,
    };
    let start = Instant::now();
    let commands: Vec<(CommandSpec, Message)> = sc
        .commands
        .iter()
        .enumerate()
        .map(|(i, c)| {
            command_message(c)
                .map(|m| (c.clone(), m))
                .map_err(|e| setup(format!("commands[{i}]: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let feeds = sc.source.feeds(sc.seed).map_err(|e| setup(e.to_string()))?;
    let replay_errors = feeds.errors();
    let conversations = feeds.conversations();
    let feeds = feeds.into_factory();
    let (stop_tx, stop_rx) = watch::channel(false);
    let gw = Gateway::new(sc.gateway.config(sc.seed), sc.faults.clone(), feeds, stop_rx)
        .map_err(|e| setup(e.to_string()))?;
    let cfg = client_config(&sc.client, sc.seed);
    let (client, mut events) = match mode {
        Mode::Snapshot => {
            let (net, listener) = MemoryNetwork::new(PIPE_CAPACITY);
            tokio::spawn({
                let gw = gw.clone();
                async move { gw.serve(listener).await }
            });
            let connector = move || {
                let r = net.connect();
                async move { r }
            };
            Client::with_connector(connector, "ws://gateway/", cfg)
        }
        Mode::Live | Mode::External => {
            let listener = Listener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
            let addr = listener.local_addr().expect("TCP listener has an address");
            tokio::spawn({
                let gw = gw.clone();
                async move { gw.serve(listener).await }
            });
            Client::connect(&format!("ws://{addr}/"), cfg).map_err(|e| setup(e.to_string()))?
        }
    };

    let client_events: Arc<Mutex<Vec<Event>>> = Arc::default();
    let collector = tokio::spawn({
        let client_events = client_events.clone();
        async move {
            while let Some(e) = events.recv().await {
                client_events.lock().expect("events lock").push(e);
            }
        }
    });

    let harness: Arc<Mutex<HarnessLog>> = Arc::default();
    let pending_requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for (spec, msg) in commands {
        let client = client.clone();
        let harness = harness.clone();
        let pending = pending_requests.clone();
        pending.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::spawn(async move {
            tokio::time::sleep_until(start + Duration::from_millis(spec.at_ms)).await;
            let id = format!("0x{:04X}", spec.msg_id);
            let log = |v: Value| {
                harness
                    .lock()
                    .expect("harness lock")
                    .0
                    .push((start.elapsed(), crate::transcript::next_seq(), v))
            };
            if spec.request {
                log(json!({"type": "request", "msg_id": id, "phone": spec.phone}));
                match client.request(msg, REQUEST_TIMEOUT).await {
                    Ok(answer) => log(json!({
                        "type": "answered", "msg_id": id,
                        "answer": format!("0x{:04X}", answer.header.msg_id),
                        "serial": answer.header.serial,
                    })),
                    Err(e) => log(json!({"type": "request_failed", "msg_id": id, "error": e.to_string()})),
                }
            } else {
                match client.send(msg) {
                    Ok(serial) => log(json!({"type": "command", "msg_id": id, "phone": spec.phone, "serial": serial})),
                    Err(e) => log(json!({"type": "command_refused", "msg_id": id, "error": e.to_string()})),
                }
            }
            pending.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        });
    }

    let end = start + Duration::from_millis(sc.duration_ms);
    match mode {
        Mode::Snapshot => tokio::time::sleep_until(end).await,
        Mode::Live | Mode::External => {
            // End early once nothing more can happen: the feed is exhausted, every command was
            // issued and answered, nothing is held, and nothing new was seen for a while.
            let mut last_len = usize::MAX;
            let mut quiet_since = Instant::now();
            while Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let len = client_events.lock().expect("events lock").len() + gw.log().len();
                if len != last_len {
                    last_len = len;
                    quiet_since = Instant::now();
                    continue;
                }
                let settled = gw.idle()
                    && client.held() == 0
                    && pending_requests.load(std::sync::atomic::Ordering::SeqCst) == 0
                    && !open_groups(&client_events.lock().expect("events lock"));
                if settled && quiet_since.elapsed() >= LIVE_SETTLE {
                    break;
                }
            }
        }
    }
    let _ = client.shutdown().await;
    let _ = stop_tx.send(true);
    // Let the gateway's connection tasks log their close before the log is read.
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    collector.abort();
    let client_events = std::mem::take(&mut *client_events.lock().expect("events lock"));
    let gateway_log = gw.take_log();
    let mut harness = std::mem::take(&mut harness.lock().expect("harness lock").0);
    // A capture that could not be read to its end is never silent: it shows in the transcript.
    for e in replay_errors.list() {
        harness.push((
            Duration::ZERO,
            0,
            json!({"type": "capture_error", "error": e.message, "ended": e.ended}),
        ));
    }
    // What a conversation replay expected and never got, at the end of the run.
    let end = start.elapsed();
    for (session, report) in conversations.reports() {
        let mut v = json!({"type": "conversation", "session": session});
        if let (Value::Object(m), Ok(Value::Object(r))) = (&mut v, serde_json::to_value(&report)) {
            m.extend(r);
        }
        harness.push((end, u64::MAX, v));
    }
    Ok(build_transcript(sc, mode, client_events, gateway_log, harness))
}

fn build_transcript(
    sc: &Scenario,
    mode: Mode,
    client_events: Vec<Event>,
    gateway_log: Vec<GatewayRecord>,
    harness: Vec<(Duration, u64, Value)>,
) -> Transcript {
    let mut events = Vec::new();
    for r in &gateway_log {
        let mut v = serde_json::to_value(&r.event).expect("gateway events serialise");
        if let Value::Object(o) = &mut v {
            // conn first after type, for readability.
            let mut m = Map::new();
            if let Some(t) = o.shift_remove("type") {
                m.insert("type".into(), t);
            }
            m.insert("conn".into(), json!(r.conn));
            // A fault record repeats the time and connection the entry already carries.
            o.shift_remove("t_us");
            o.shift_remove("conn");
            m.extend(std::mem::take(o));
            v = Value::Object(m);
        }
        events.push(Entry {
            t_us: r.t_us,
            side: Side::Gateway,
            seq: r.seq,
            event: v,
        });
    }
    for e in &client_events {
        let mut v = serde_json::to_value(e).expect("client events serialise");
        if let Value::Object(o) = &mut v {
            o.shift_remove("t_ms");
        }
        events.push(Entry {
            t_us: e.t_ms * 1000,
            side: Side::Client,
            seq: e.seq,
            event: v,
        });
    }
    for (t, seq, v) in harness {
        events.push(Entry {
            t_us: t.as_micros() as u64,
            side: Side::Harness,
            seq,
            event: v,
        });
    }
    for e in &mut events {
        elide_long_hex(&mut e.event);
    }
    let mut t = Transcript {
        scenario: sc.name.clone(),
        seed: sc.seed,
        summary: Map::new(),
        checks: Vec::new(),
        events,
    };
    t.order_events();
    let facts = checks::Facts::gather(&t);
    t.summary = facts.summary();
    t.checks = checks::check(&sc.expect, &facts, &sc.client);
    if mode == Mode::Live {
        // Live transcripts are not snapshotted; keep them small.
        t.events.clear();
    }
    t
}

/// Hex strings longer than this are shown as their length and a hash in transcripts.
const MAX_HEX_IN_TRANSCRIPT: usize = 96;

/// Replaces long hex payloads (media data, raw bodies) by `"<N bytes fnv1a:XXXXXXXXXXXXXXXX>"`:
/// a review diff stays readable, and any change of the bytes still changes the snapshot.
fn elide_long_hex(v: &mut Value) {
    match v {
        Value::String(s) if s.len() > MAX_HEX_IN_TRANSCRIPT && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
            let h = crate::gateway::source::fnv1a(s.as_bytes());
            *s = format!("<{} bytes fnv1a:{h:016x}>", s.len() / 2);
        }
        Value::Array(a) => a.iter_mut().for_each(elide_long_hex),
        Value::Object(o) => o.values_mut().for_each(elide_long_hex),
        _ => {}
    }
}

/// Whether the client holds a packet group it has neither completed nor given up (live mode waits
/// for its expiry before ending).
fn open_groups(events: &[Event]) -> bool {
    use crate::client::EventKind;
    let mut open = std::collections::BTreeSet::new();
    for e in events {
        match &e.kind {
            EventKind::Packet {
                msg_id, phone, total, ..
            } => {
                open.insert((*msg_id, *phone, *total));
            }
            EventKind::Message(m) => {
                if let Some(a) = m.assembled {
                    open.remove(&(m.header.msg_id, m.header.phone, a.packets));
                }
            }
            EventKind::GroupExpired(x) => {
                open.remove(&(x.msg_id, x.phone, x.total));
            }
            _ => {}
        }
    }
    !open.is_empty()
}
