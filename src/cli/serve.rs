//! `jt808-harness serve`: runs the simulated terminal gateway on a TCP address until Ctrl-C.
//!
//! ```text
//! jt808-harness serve [--listen ADDR]
//!     [--capture FILE [--speed F] [--loops N]
//!      | --terminals N --version 2013|2019|mixed --messages N --interval D ...
//!      | --feed stress [--clients N] [--frame-interval D] [--frames N]]
//!     [--fault SPEC]... [--seed N] [--prefix-len N] [--scenario FILE] [--quiet]
//!     [--control [ADDR] [--control-log-capacity N]]
//! ```
//!
//! The first line on stdout is `listening on ws://IP:PORT` (flushed at once, so a script can wait
//! for it and read the port when binding port 0); after it, unless `--quiet`, every gateway log
//! record as one JSON line, as it happens. With no source flags it serves a generated fleet with
//! the default settings, unlimited. `--scenario FILE` serves that scenario's source, faults,
//! gateway settings and seed; `--seed`, `--prefix-len`, `--upload-delay`, `--session-idle` and
//! `--max-sessions` override the scenario's only when given on the command line (their defaults
//! are the defaults without a scenario), and `--fault` adds to its faults. `--feed stress` serves
//! the stress feed, so `stress --url` shards on other machines can share this gateway.
//!
//! `--control` also serves the control API ([`crate::gateway::control`]) and prints
//! `control on http://IP:PORT` as the second line.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::parser::ValueSource;
use tokio::sync::watch;

use super::duration::{DAY, WEEK, between, ms};
use crate::codec::frame::MAX_BODY_LEN;
use crate::faults::{FaultSpec, FaultSpecError};
use crate::gateway::control::{DEFAULT_LOG_CAPACITY, MAX_LOG_CAPACITY};
use crate::gateway::fleet::{FleetConfig, FleetVersion, MAX_FRAMES_PER_MESSAGE, MAX_TERMINALS};
use crate::gateway::source::{CaptureSource, SourceError, SourceSpec};
use crate::gateway::{Feed, Gateway, GatewayConfig, GatewayError, stress_feed};
use crate::scenario::validate::MAX_PREFIX_LEN;
use crate::scenario::{Scenario, ScenarioError};
use crate::transport::Listener;

/// The options of `serve`, as clap parses them; [`ServeArgs`] adds which were given.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeOptions {
    /// Address to listen on (port 0 picks a free port; the first stdout line names it).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Replay this capture (JSON Lines) instead of generating a fleet.
    #[arg(long, conflicts_with_all = FLEET_ARGS)]
    pub capture: Option<PathBuf>,
    /// Capture playback speed: 1 real time, 10 ten times faster, 0 as fast as possible.
    #[arg(long, requires = "capture", default_value_t = 1.0)]
    pub speed: f64,
    /// How many times to play the capture (0 = forever).
    #[arg(long, requires = "capture", default_value_t = 1)]
    pub loops: u32,
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
    /// Fleet: number of terminals (1..=100000).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_TERMINALS)))]
    pub terminals: u32,
    /// Fleet: header version, 2013, 2019 or mixed.
    #[arg(long, default_value = "2013")]
    pub version: FleetVersion,
    /// Fleet: messages per terminal (0 = unlimited: a server runs until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub messages: u32,
    /// Fleet: interval between one terminal's messages (0s..=1day).
    #[arg(long, alias = "interval-ms", value_name = "DURATION", default_value = "1s",
          value_parser = between(ms(0), DAY))]
    pub interval: Duration,
    /// Fleet: frames per WebSocket message (1..=1024).
    #[arg(long, default_value_t = 1,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_FRAMES_PER_MESSAGE as u64))]
    pub frames_per_message: usize,
    /// Fleet: body bytes per packet of sub-packaged messages (1..=1023).
    #[arg(long, default_value_t = 512,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_BODY_LEN as u64))]
    pub packet_size: usize,
    /// Delay between the 0x0001 to a 0x9206 and its 0x1206 (0s..=1day).
    #[arg(long, alias = "upload-delay-ms", value_name = "DURATION", default_value = "3s",
          value_parser = between(ms(0), DAY))]
    pub upload_delay: Duration,
    /// Play terminals that never answer commands.
    #[arg(long)]
    pub no_answer: bool,
    /// A fault, as the body of a TOML inline table: `--fault 'type="split", offsets=[3,7], every=2'`.
    /// Repeatable; applied in order.
    #[arg(long = "fault", value_name = "SPEC")]
    pub faults: Vec<String>,
    /// Seed of every random choice (fleet, faults, terminal answers).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Envelope bytes before the JT808 bytes of every message (the seed's gateway: 18; 0..=4096).
    #[arg(long, default_value_t = 0,
          value_parser = RangedU64ValueParser::<usize>::new().range(0..=MAX_PREFIX_LEN as u64))]
    pub prefix_len: usize,
    /// Serve a scenario file's source, faults, gateway settings and seed (the options above that
    /// it also sets override it only when given).
    #[arg(long, conflicts_with_all = SCENARIO_CONFLICTS)]
    pub scenario: Option<PathBuf>,
    /// Forget a session no connection held for this long (1ms..=7days).
    #[arg(long, alias = "session-idle-ms", value_name = "DURATION", default_value = "10m",
          value_parser = between(ms(1), WEEK))]
    pub session_idle: Duration,
    /// Most sessions (distinct request paths) at once; beyond it handshakes get HTTP 503
    /// (1..=10000000).
    #[arg(long, default_value_t = crate::gateway::DEFAULT_MAX_SESSIONS,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=10_000_000))]
    pub max_sessions: usize,
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
    #[arg(long, value_enum, conflicts_with_all = FEED_CONFLICTS)]
    pub feed: Option<BuiltinFeed>,
    /// `--feed stress`: clients in the whole fleet (every shard), which sizes the connection
    /// limit to twice it (1..=1000000); as `stress --clients`.
    #[arg(long, requires = "feed", default_value_t = stress_feed::DEFAULT_CLIENTS,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=stress_feed::MAX_CLIENTS))]
    pub clients: usize,
    /// `--feed stress`: one numbered frame per session this often (1ms..=1day); give `stress
    /// --frame-interval` the same value.
    #[arg(long, alias = "frame-interval-ms", requires = "feed", value_name = "DURATION", default_value = "1s",
          value_parser = between(ms(1), DAY))]
    pub frame_interval: Duration,
    /// `--feed stress`: numbered frames per session, then none (1..=4294967295; none: no end).
    /// Give `stress --frames` the same value: its clients then know what every session offered.
    #[arg(long, requires = "feed", value_parser = clap::value_parser!(u64).range(1..=u64::from(u32::MAX)))]
    pub frames: Option<u64>,
}

/// The fleet's own options: a capture, a scenario or a feed replaces the fleet.
const FLEET_ARGS: [&str; 6] = [
    "terminals",
    "version",
    "messages",
    "interval",
    "frames_per_message",
    "packet_size",
];
/// What `--scenario` replaces.
const SCENARIO_CONFLICTS: [&str; 7] = [
    "capture",
    "terminals",
    "version",
    "messages",
    "interval",
    "frames_per_message",
    "packet_size",
];
/// What `--feed` replaces.
const FEED_CONFLICTS: [&str; 8] = [
    "capture",
    "scenario",
    "terminals",
    "version",
    "messages",
    "interval",
    "frames_per_message",
    "packet_size",
];

/// Arguments of `serve`: the [`ServeOptions`] and which of them were given on the command line
/// (clap's value source), since beside `--scenario` only a given one overrides the scenario's.
/// Parsed wherever it is flattened or used as a subcommand.
#[derive(Debug, Clone)]
pub struct ServeArgs {
    /// The options.
    pub options: ServeOptions,
    /// Ids of the options given on the command line (not defaulted).
    pub given: BTreeSet<String>,
}

impl std::ops::Deref for ServeArgs {
    type Target = ServeOptions;
    fn deref(&self) -> &ServeOptions {
        &self.options
    }
}

impl clap::FromArgMatches for ServeArgs {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let options = ServeOptions::from_arg_matches(m)?;
        Ok(ServeArgs {
            options,
            given: given(m),
        })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.options.update_from_arg_matches(m)?;
        self.given.extend(given(m));
        Ok(())
    }
}

impl clap::Args for ServeArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        ServeOptions::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        ServeOptions::augment_args_for_update(cmd)
    }
}

/// The ids in `m` whose value came from the command line.
fn given(m: &clap::ArgMatches) -> BTreeSet<String> {
    m.ids()
        .filter(|id| m.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.as_str().to_string())
        .collect()
}

/// A feed built into `serve` (`--feed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BuiltinFeed {
    /// The stress feed ([`stress_feed::StressFeed`]): numbered 0x0200 frames and a terminal that
    /// confirms every command, forever.
    Stress,
}

/// The per-session feed factory of `serve`.
type FeedFactory = Box<dyn Fn(&str) -> Box<dyn Feed> + Send + Sync>;

impl ServeArgs {
    /// With `--feed stress`: its factory, and the gateway settings it needs (connections for the
    /// whole fleet, twice over for stalled ones not yet superseded).
    fn stress_feed(&self, gateway: &mut GatewayConfig) -> Option<FeedFactory> {
        self.feed?;
        gateway.max_connections = gateway.max_connections.max(self.clients.saturating_mul(2));
        let settings = stress_feed::FeedSettings {
            interval: self.frame_interval,
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
            None => (self.source(), Vec::new(), GatewayConfig::default()),
        };
        // Without a scenario every value is the option's (given or its default); beside one, only
        // a given option overrides the scenario's.
        let set = |id: &str| self.scenario.is_none() || self.given.contains(id);
        let terminal = match &mut source {
            SourceSpec::Fleet(f) => &mut f.terminal,
            SourceSpec::Capture(c) => &mut c.terminal,
        };
        if set("upload_delay") {
            terminal.upload_delay_ms = millis(self.upload_delay);
        }
        if self.no_answer {
            terminal.answer = false;
        }
        if set("seed") {
            gateway.seed = self.seed;
        }
        if set("prefix_len") {
            gateway.prefix_len = self.prefix_len;
        }
        if set("session_idle") {
            gateway.session_idle_ms = millis(self.session_idle);
        }
        if set("max_sessions") {
            gateway.max_sessions = self.max_sessions;
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

    /// The source without a scenario: the capture, or the fleet of the fleet options.
    fn source(&self) -> SourceSpec {
        match &self.capture {
            Some(path) => SourceSpec::Capture(CaptureSource {
                speed: self.speed,
                loops: self.loops,
                converse: self.converse,
                keep_connections: self.keep_connections,
                allow_prefix_mismatch: self.allow_prefix_mismatch,
                ..CaptureSource::new(path.clone())
            }),
            None => SourceSpec::Fleet(FleetConfig {
                terminals: self.terminals,
                version: self.version,
                messages: self.messages,
                interval_ms: millis(self.interval),
                frames_per_message: self.frames_per_message,
                packet_size: self.packet_size,
                ..FleetConfig::default()
            }),
        }
    }
}

/// Whole milliseconds, as the gateway's settings count them (the options' ranges keep it small).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// How often the gateway log is written out.
const LOG_FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// How long connections get to log their close after shutdown before the last log is written.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Runs `serve` until `stop` resolves, writing the listening line and the log to `out`. Tests call
/// this with their own `out` and `stop`; the binary with stdout and Ctrl-C.
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
        if let Err(e) = crate::gateway::control::http::serve(gw, listener, stop).await {
            tracing::error!("control API on {bound}: {e}");
        }
    })))
}
