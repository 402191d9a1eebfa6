//! Runs one [`Scenario`]: the real client against the simulated gateway.
//!
//! - **Snapshot mode**: gateway and client in one process over in-memory pipes
//!   ([`crate::transport::MemoryNetwork`]) on a current-thread tokio runtime with the paused clock.
//!   Minutes of backoff cost nothing, and every run of a scenario gives the same transcript.
//! - **Live mode**: the same scenario over real loopback TCP (port 0) with the real clock; it ends
//!   early once everything settled, and only the invariants are checked.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::checks;
use super::harness::{HarnessEvent, HarnessRecord};
use super::observe::{Evidence, Observer, Recorder};
use super::{ClientSection, CommandSpec, Scenario};
use crate::client::{Client, ClientConfig, Events};
use crate::codec::body::{Body, RawBody};
use crate::codec::{Message, Phone};
use crate::gateway::Gateway;
use crate::transcript::Transcript;
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

/// Runs a scenario and returns its transcript with the checks done; its events in snapshot mode
/// (live transcripts are not snapshotted: they keep none).
pub fn run(sc: &Scenario, mode: Mode) -> Result<Transcript, RunError> {
    run_with(sc, mode, mode == Mode::Snapshot, ()).map(|(t, ())| t)
}

/// Runs a scenario, feeding `observer` its evidence as it comes ([`super::observe`]), and
/// returns the transcript with the checks done, with its events when `keep_events` (without, the
/// run is judged by its checks alone and holds no per-event state: a long run stays flat in
/// memory), and the observer.
pub fn run_with<O: Observer + 'static>(
    sc: &Scenario,
    mode: Mode,
    keep_events: bool,
    observer: O,
) -> Result<(Transcript, O), RunError> {
    let mut b = tokio::runtime::Builder::new_current_thread();
    b.enable_all();
    if mode == Mode::Snapshot {
        b.start_paused(true);
    }
    let rt = b.build()?;
    rt.block_on(run_async(sc, mode, Recorder::new(keep_events, observer)))
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

async fn run_async<O: Observer + 'static>(
    sc: &Scenario,
    mode: Mode,
    recorder: Recorder<O>,
) -> Result<(Transcript, O), RunError> {
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
    let (client, events) = connect_client(mode, &gw, cfg).await.map_err(|e| match e {
        ConnectError::Io(e) => RunError::Io(e),
        ConnectError::Client(m) => setup(m),
    })?;
    let run = Collected::new(events, gw.clone(), start, recorder);
    for (spec, msg) in commands {
        run.spawn_command(start, &client, spec, msg);
    }
    let end = start + Duration::from_millis(sc.duration_ms);
    match mode {
        Mode::Snapshot => tokio::time::sleep_until(end).await,
        Mode::Live | Mode::External => run.settle(end, &gw, &client).await,
    }
    let _ = client.shutdown().await;
    let _ = stop_tx.send(true);
    // Let the gateway's connection tasks log their close before the log is read.
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    let mut rec = run.take();
    rec.gateway_log(&gw.take_log());
    // A capture that could not be read to its end is never silent: it shows in the transcript.
    for e in replay_errors.list() {
        rec.observe(Evidence::Harness(&HarnessRecord {
            t: Duration::ZERO,
            seq: 0,
            event: HarnessEvent::CaptureError {
                error: e.message,
                ended: e.ended,
            },
        }));
    }
    // What a conversation replay expected and never got, at the end of the run.
    let end = start.elapsed();
    for (session, report) in conversations.reports() {
        rec.observe(Evidence::Harness(&HarnessRecord {
            t: end,
            seq: u64::MAX,
            event: HarnessEvent::Conversation { session, report },
        }));
    }
    let (facts, events, observer) = rec.finish();
    let mut t = Transcript {
        scenario: sc.name.clone(),
        seed: sc.seed,
        summary: facts.summary(),
        checks: checks::check(&sc.expect, &facts, &sc.client),
        events,
    };
    t.order_events();
    Ok((t, observer))
}

/// Why the client could not be started.
enum ConnectError {
    Io(std::io::Error),
    Client(String),
}

/// Starts the gateway on `mode`'s transport and a client connecting to it.
async fn connect_client(mode: Mode, gw: &Gateway, cfg: ClientConfig) -> Result<(Client, Events), ConnectError> {
    match mode {
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
            Ok(Client::with_connector(connector, "ws://gateway/", cfg))
        }
        Mode::Live | Mode::External => {
            let listener = Listener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
                .await
                .map_err(ConnectError::Io)?;
            let addr = listener.local_addr().expect("TCP listener has an address");
            tokio::spawn({
                let gw = gw.clone();
                async move { gw.serve(listener).await }
            });
            Client::connect(&format!("ws://{addr}/"), cfg).map_err(|e| ConnectError::Client(e.to_string()))
        }
    }
}

/// The recorder a run's tasks share; `None` once the run took it back.
type Shared<O> = Arc<Mutex<Option<Recorder<O>>>>;

/// What a run collects while it runs: every piece of evidence, read as it comes by the
/// [`Recorder`] (the client's events as the collector task takes them, the gateway's log each
/// time before, the harness's records as the command tasks make them), and how many commands
/// are still under way.
struct Collected<O> {
    recorder: Shared<O>,
    collector: tokio::task::JoinHandle<()>,
    pending: Arc<AtomicUsize>,
}

/// Runs `f` on the recorder unless the run already took it back.
fn with<O, R>(shared: &Shared<O>, f: impl FnOnce(&mut Recorder<O>) -> R) -> Option<R> {
    shared.lock().expect("recorder lock").as_mut().map(f)
}

impl<O: Observer + 'static> Collected<O> {
    /// Starts collecting `events`, and `gw`'s log before each of them (so an offer is read before
    /// its decoding); a sweep of settled messages is due as virtual time since `start` passes.
    fn new(mut events: Events, gw: Gateway, start: Instant, recorder: Recorder<O>) -> Collected<O> {
        let shared: Shared<O> = Arc::new(Mutex::new(Some(recorder)));
        let collector = tokio::spawn({
            let shared = shared.clone();
            async move {
                while let Some(e) = events.recv().await {
                    let log = gw.take_log();
                    with(&shared, |r| {
                        r.tick(start.elapsed());
                        r.gateway_log(&log);
                        r.observe(Evidence::Client(&e));
                    });
                }
            }
        });
        Collected {
            recorder: shared,
            collector,
            pending: Arc::default(),
        }
    }

    /// Issues `spec` at its time on `client`, logging what came of it.
    fn spawn_command(&self, start: Instant, client: &Client, spec: CommandSpec, msg: Message) {
        let client = client.clone();
        let shared = self.recorder.clone();
        let pending = self.pending.clone();
        pending.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            tokio::time::sleep_until(start + Duration::from_millis(spec.at_ms)).await;
            let log = |event: HarnessEvent| {
                let h = HarnessRecord {
                    t: start.elapsed(),
                    seq: crate::transcript::next_seq(),
                    event,
                };
                with(&shared, |r| r.observe(Evidence::Harness(&h)));
            };
            issue(&client, spec, msg, log).await;
            pending.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// Live mode: waits until `end`, or less once nothing more can happen: the feed is
    /// exhausted, every command was issued and answered, nothing is held, no packet group is
    /// open, and nothing new was seen for [`LIVE_SETTLE`].
    async fn settle(&self, end: Instant, gw: &Gateway, client: &Client) {
        let mut last_seen = u64::MAX;
        let mut quiet_since = Instant::now();
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let log = gw.take_log();
            let (seen, no_open_groups) = with(&self.recorder, |r| {
                r.gateway_log(&log);
                (r.seen(), r.facts().no_open_groups())
            })
            .expect("the recorder is taken back after settling");
            if seen != last_seen {
                last_seen = seen;
                quiet_since = Instant::now();
                continue;
            }
            let settled = gw.idle() && client.held() == 0 && self.pending.load(Ordering::SeqCst) == 0 && no_open_groups;
            if settled && quiet_since.elapsed() >= LIVE_SETTLE {
                break;
            }
        }
    }

    /// Stops collecting; the recorder, with everything taken in so far (the rest of the gateway's
    /// log is the caller's to add).
    fn take(self) -> Recorder<O> {
        self.collector.abort();
        self.recorder
            .lock()
            .expect("recorder lock")
            .take()
            .expect("the recorder is taken back once")
    }
}

/// Issues one scenario command on `client` and logs what came of it: a request waits for its
/// answer (or its failure), a plain command is only queued.
async fn issue(client: &Client, spec: CommandSpec, msg: Message, log: impl Fn(HarnessEvent)) {
    let msg_id = spec.msg_id;
    if spec.request {
        log(HarnessEvent::Request {
            msg_id,
            phone: spec.phone,
        });
        match client.request(msg, REQUEST_TIMEOUT).await {
            Ok(answer) => log(HarnessEvent::Answered {
                msg_id,
                answer: answer.header.msg_id,
                serial: answer.header.serial,
            }),
            Err(e) => log(HarnessEvent::RequestFailed {
                msg_id,
                error: e.to_string(),
            }),
        }
    } else {
        match client.send(msg) {
            Ok(serial) => log(HarnessEvent::Command {
                msg_id,
                phone: spec.phone,
                serial,
            }),
            Err(e) => log(HarnessEvent::CommandRefused {
                msg_id,
                error: e.to_string(),
            }),
        }
    }
}
