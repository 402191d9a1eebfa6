//! `jt808-harness serve`: runs the simulated terminal gateway on a TCP address until Ctrl-C.
//!
//! ```text
//! jt808-harness serve [--listen ADDR]
//!     [--capture FILE [--speed F] [--loops N]
//!      | --terminals N --version 2013|2019|mixed --messages N --interval-ms MS ...
//!      | --feed stress [--clients N] [--frame-interval-ms MS] [--frames N]]
//!     [--fault SPEC]... [--seed N] [--prefix-len N] [--scenario FILE] [--quiet]
//!     [--control [ADDR] [--control-log-capacity N]]
//! ```
//!
//! The first line on stdout is `listening on ws://IP:PORT` (flushed at once, so a script can wait
//! for it and read the port when binding port 0); after it, unless `--quiet`, every gateway log
//! record as one JSON line, as it happens. With no source flags it serves a generated fleet with
//! the default settings, unlimited. `--scenario FILE` serves that scenario's source, faults,
//! gateway settings and seed; `--seed`, `--prefix-len` given beside it override the scenario's,
//! and `--fault` adds to its faults. `--feed stress` serves the stress feed, so `stress --url`
//! shards on other machines can share this gateway.
//!
//! `--control` also serves the control API ([`super::control`]) and prints
//! `control on http://IP:PORT` as the second line.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use tokio::sync::watch;

use super::control::{DEFAULT_LOG_CAPACITY, MAX_LOG_CAPACITY};
use super::fleet::{FleetConfig, FleetVersion, MAX_FRAMES_PER_MESSAGE, MAX_INTERVAL_MS, MAX_TERMINALS};
use super::source::{CaptureSource, SourceError, SourceSpec};
use super::stress_feed;
use super::{Gateway, GatewayConfig, GatewayError};
use crate::codec::frame::MAX_BODY_LEN;
use crate::faults::{FaultSpec, FaultSpecError};
use crate::scenario::validate::{MAX_CLIENT_MS, MAX_DURATION_MS, MAX_PREFIX_LEN};
use crate::scenario::{Scenario, ScenarioError};
use crate::transport::Listener;

/// Arguments of `serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the first stdout line names it).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Replay this capture (JSON Lines) instead of generating a fleet.
    #[arg(long, conflicts_with_all = ["terminals", "version", "messages", "interval_ms", "frames_per_message", "packet_size"])]
    pub capture: Option<PathBuf>,
    /// Capture playback speed: 1 real time, 10 ten times faster, 0 as fast as possible. Default 1.
    #[arg(long, requires = "capture")]
    pub speed: Option<f64>,
    /// How many times to play the capture (0 = forever). Default 1.
    #[arg(long, requires = "capture")]
    pub loops: Option<u32>,
    /// Replay the capture as a conversation: the recorded terminal answers wait for the client's
    /// matching commands (same id and terminal) and carry their serials; commands the recording
    /// never saw are answered by the terminal script; what never came is reported at the end.
    #[arg(long, requires = "capture")]
    pub converse: bool,
    /// Keep the capture's connections: close each where the recording closed it, with its close
    /// code (the client reconnects for the next); without it every connection's messages are one
    /// stream.
    #[arg(long, requires = "capture")]
    pub keep_connections: bool,
    /// Serve the capture even when its stated envelope prefix cuts into frames (refused
    /// otherwise, naming the first record where it shows).
    #[arg(long, requires = "capture")]
    pub allow_prefix_mismatch: bool,
    /// Fleet: number of terminals (1..=100000). Default 2.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_TERMINALS)))]
    pub terminals: Option<u32>,
    /// Fleet: header version, 2013, 2019 or mixed. Default 2013.
    #[arg(long)]
    pub version: Option<FleetVersion>,
    /// Fleet: messages per terminal (0 = unlimited). Default 0 here (a server runs until Ctrl-C).
    #[arg(long)]
    pub messages: Option<u32>,
    /// Fleet: interval between one terminal's messages, ms (0..=86400000, one day). Default 1000.
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=MAX_INTERVAL_MS))]
    pub interval_ms: Option<u64>,
    /// Fleet: frames per WebSocket message (1..=1024). Default 1.
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_FRAMES_PER_MESSAGE as u64))]
    pub frames_per_message: Option<usize>,
    /// Fleet: body bytes per packet of sub-packaged messages (1..=1023). Default 512.
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_BODY_LEN as u64))]
    pub packet_size: Option<usize>,
    /// Delay between the 0x0001 to a 0x9206 and its 0x1206, ms (0..=86400000). Default 3000.
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=MAX_CLIENT_MS))]
    pub upload_delay_ms: Option<u64>,
    /// Play terminals that never answer commands.
    #[arg(long)]
    pub no_answer: bool,
    /// A fault, as the body of a TOML inline table: `--fault 'type="split", offsets=[3,7], every=2'`.
    /// Repeatable; applied in order.
    #[arg(long = "fault", value_name = "SPEC")]
    pub faults: Vec<String>,
    /// Seed of every random choice (fleet, faults, terminal answers). Default 1.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Envelope bytes before the JT808 bytes of every message (the seed's gateway: 18; 0..=4096).
    /// Default 0.
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(0..=MAX_PREFIX_LEN as u64))]
    pub prefix_len: Option<usize>,
    /// Serve a scenario file's source, faults, gateway settings and seed.
    #[arg(long, conflicts_with_all = ["capture", "terminals", "version", "messages", "interval_ms", "frames_per_message", "packet_size"])]
    pub scenario: Option<PathBuf>,
    /// Forget a session no connection held for this long, ms (1..=604800000). Default 600000.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_DURATION_MS))]
    pub session_idle_ms: Option<u64>,
    /// Most sessions (distinct request paths) at once; beyond it handshakes get HTTP 503
    /// (1..=10000000). Default 100000.
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..=10_000_000))]
    pub max_sessions: Option<usize>,
    /// Print only the listening line, not the gateway log.
    #[arg(long)]
    pub quiet: bool,
    /// Serve the control API (HTTP+JSON: faults, connections, storm, pause, log; see the README)
    /// on this address; `--control` alone takes a free loopback port. Off unless given. Its
    /// address is printed as `control on http://IP:PORT` right after the listening line.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:0")]
    pub control: Option<SocketAddr>,
    /// Gateway log records the control API keeps for `GET /log` (a ring: older ones are dropped,
    /// and a reader is told how many it missed).
    #[arg(long, default_value_t = DEFAULT_LOG_CAPACITY, requires = "control",
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_LOG_CAPACITY as u64))]
    pub control_log_capacity: usize,
    /// Serve a built-in feed instead of a fleet, a capture or a scenario: `stress`, the numbered
    /// feed `stress --url` counts (session `/c/<id>` is client `id`), for a fleet sharded over
    /// machines against this one gateway.
    #[arg(long, value_enum, conflicts_with_all = ["capture", "scenario", "terminals", "version", "messages", "interval_ms", "frames_per_message", "packet_size"])]
    pub feed: Option<BuiltinFeed>,
    /// `--feed stress`: clients in the whole fleet (every shard), which sizes the connection
    /// limit to twice it (1..=1000000). Default 1000, as `stress --clients`.
    #[arg(long, requires = "feed",
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=stress_feed::MAX_CLIENTS))]
    pub clients: Option<usize>,
    /// `--feed stress`: one numbered frame per session this often, ms (1..=86400000). Default
    /// 1000, as `stress --frame-interval-ms`; give both the same value.
    #[arg(long, requires = "feed", value_parser = clap::value_parser!(u64).range(1..=MAX_CLIENT_MS))]
    pub frame_interval_ms: Option<u64>,
    /// `--feed stress`: numbered frames per session, then none (1..=4294967295; default: no end).
    /// Give `stress --frames` the same value: its clients then know what every session offered.
    #[arg(long, requires = "feed", value_parser = clap::value_parser!(u64).range(1..=u64::from(u32::MAX)))]
    pub frames: Option<u64>,
}

/// A feed built into `serve` (`--feed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BuiltinFeed {
    /// The stress feed ([`stress_feed::StressFeed`]): numbered 0x0200 frames and a terminal that
    /// confirms every command, forever.
    Stress,
}

/// The per-session feed factory of `serve`.
type FeedFactory = Box<dyn Fn(&str) -> Box<dyn super::Feed> + Send + Sync>;

impl ServeArgs {
    /// With `--feed stress`: its factory, and the gateway settings it needs (connections for the
    /// whole fleet, twice over for stalled ones not yet superseded).
    fn stress_feed(&self, gateway: &mut GatewayConfig) -> Option<FeedFactory> {
        self.feed?;
        let clients = self.clients.unwrap_or(stress_feed::DEFAULT_CLIENTS);
        gateway.max_connections = gateway.max_connections.max(clients.saturating_mul(2));
        let settings = stress_feed::FeedSettings {
            interval: self
                .frame_interval_ms
                .map_or(stress_feed::DEFAULT_FRAME_INTERVAL, Duration::from_millis),
            frames: self.frames,
        };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(stress_feed::NO_STOP));
        Some(Box::new(stress_feed::StressFeed::factory(settings, stop)))
    }
}

/// Why `serve` could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The scenario file is wrong.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The source (fleet settings, capture file) is wrong.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A `--fault` does not parse, or a fault spec is wrong.
    #[error(transparent)]
    Fault(#[from] FaultSpecError),
    /// The gateway could not start.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Writing to stdout failed.
    #[error("writing the log: {0}")]
    Output(#[from] std::io::Error),
}

/// What `serve` serves, resolved from the arguments (and the scenario).
#[derive(Debug, Clone, PartialEq)]
pub struct ServePlan {
    /// The source.
    pub source: SourceSpec,
    /// The faults, in order.
    pub faults: Vec<FaultSpec>,
    /// The gateway settings (its seed is the run's seed).
    pub gateway: GatewayConfig,
}

impl ServeArgs {
    /// Resolves the arguments: loads the scenario, parses the faults, builds the source.
    pub fn plan(&self) -> Result<ServePlan, ServeError> {
        let (mut source, mut faults, mut gateway) = match &self.scenario {
            Some(path) => {
                let sc = Scenario::load(path)?;
                let gateway = sc.gateway.config(sc.seed);
                (sc.source, sc.faults, gateway)
            }
            None => {
                let source = match &self.capture {
                    Some(path) => SourceSpec::Capture(CaptureSource {
                        speed: self.speed.unwrap_or(1.0),
                        loops: self.loops.unwrap_or(1),
                        converse: self.converse,
                        keep_connections: self.keep_connections,
                        allow_prefix_mismatch: self.allow_prefix_mismatch,
                        ..CaptureSource::new(path.clone())
                    }),
                    None => {
                        let d = FleetConfig::default();
                        SourceSpec::Fleet(FleetConfig {
                            terminals: self.terminals.unwrap_or(d.terminals),
                            version: self.version.unwrap_or(d.version),
                            messages: self.messages.unwrap_or(0),
                            interval_ms: self.interval_ms.unwrap_or(d.interval_ms),
                            frames_per_message: self.frames_per_message.unwrap_or(d.frames_per_message),
                            packet_size: self.packet_size.unwrap_or(d.packet_size),
                            ..d
                        })
                    }
                };
                let gateway = GatewayConfig {
                    seed: 1,
                    ..GatewayConfig::default()
                };
                (source, Vec::new(), gateway)
            }
        };
        let terminal = match &mut source {
            SourceSpec::Fleet(f) => &mut f.terminal,
            SourceSpec::Capture(c) => &mut c.terminal,
        };
        if let Some(ms) = self.upload_delay_ms {
            terminal.upload_delay_ms = ms;
        }
        if self.no_answer {
            terminal.answer = false;
        }
        if let Some(seed) = self.seed {
            gateway.seed = seed;
        }
        if let Some(p) = self.prefix_len {
            gateway.prefix_len = p;
        }
        if let Some(ms) = self.session_idle_ms {
            gateway.session_idle_ms = ms;
        }
        if let Some(n) = self.max_sessions {
            gateway.max_sessions = n;
        }
        for f in &self.faults {
            faults.push(FaultSpec::parse_cli(f)?);
        }
        Ok(ServePlan {
            source,
            faults,
            gateway,
        })
    }
}

/// How often the gateway log is written out.
const LOG_FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// How long connections get to log their close after shutdown before the last log is written.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Runs `serve` until `stop` resolves, writing the listening line and the log to `out`. Tests call
/// this with their own `out` and `stop`; [`run_cli`] with stdout and Ctrl-C.
pub async fn serve(
    args: ServeArgs,
    out: &mut (dyn Write + Send),
    stop: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let mut plan = args.plan()?;
    let seed = plan.gateway.seed;
    let (factory, errors, conversations) = match args.stress_feed(&mut plan.gateway) {
        Some(factory) => (factory, None, None),
        None => {
            let feeds = plan.source.feeds(seed)?;
            let (errors, conversations) = (feeds.errors(), feeds.conversations());
            (
                Box::new(feeds.into_factory()) as FeedFactory,
                Some(errors),
                Some(conversations),
            )
        }
    };
    let listener = Listener::bind(args.listen).await.map_err(|source| ServeError::Bind {
        addr: args.listen,
        source,
    })?;
    let addr = listener.local_addr().unwrap_or(args.listen);
    let (stop_tx, stop_rx) = watch::channel(false);
    let gw = Gateway::new(plan.gateway, plan.faults, factory, stop_rx)?;
    writeln!(out, "listening on ws://{addr}")?;
    let control = start_control(&args, &gw, out).await?;
    out.flush()?;
    let server = tokio::spawn({
        let gw = gw.clone();
        async move { gw.serve(listener).await }
    });
    let write_log = |out: &mut (dyn Write + Send)| -> Result<(), ServeError> {
        let records = gw.take_log();
        if args.quiet || records.is_empty() {
            return Ok(());
        }
        for r in records {
            serde_json::to_writer(&mut *out, &r).map_err(std::io::Error::other)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(())
    };
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(LOG_FLUSH_INTERVAL);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => write_log(out)?,
        }
    }
    let _ = stop_tx.send(true);
    let _ = server.await;
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while !gw.live_connections().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if let Some(control) = control {
        let _ = control.await;
    }
    write_log(out)?;
    for e in errors.iter().flat_map(|e| e.list()) {
        tracing::error!("replay: {}", e.message);
    }
    // What a conversation replay expected and never got is said at the end, as a log line.
    for (session, report) in conversations.iter().flat_map(|c| c.reports()) {
        let line = serde_json::json!({"type": "conversation", "session": session, "report": report});
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// With `--control`: binds its address, prints `control on http://ADDR` and serves the control
/// API until the gateway shuts down.
async fn start_control(
    args: &ServeArgs,
    gw: &Gateway,
    out: &mut (dyn Write + Send),
) -> Result<Option<tokio::task::JoinHandle<()>>, ServeError> {
    let Some(addr) = args.control else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    gw.enable_control_log(args.control_log_capacity);
    writeln!(out, "control on http://{bound}")?;
    let gw = gw.clone();
    let mut stopping = gw.shutdown_signal();
    Ok(Some(tokio::spawn(async move {
        let stop = async move {
            let _ = stopping.wait_for(|s| *s).await;
        };
        if let Err(e) = super::control::http::serve(gw, listener, stop).await {
            tracing::error!("control API on {bound}: {e}");
        }
    })))
}

/// Runs `jt808-harness serve`: stdout gets the listening line and the log, Ctrl-C stops it.
pub async fn run_cli(args: ServeArgs) -> Result<(), ServeError> {
    let mut stdout = std::io::stdout();
    serve(args, &mut stdout, async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot wait for Ctrl-C ({e}); serving until killed");
            std::future::pending::<()>().await;
        }
    })
    .await
}
