//! A scenario run against an **external client process** (`[client] command = [...]`, or `run
//! --client-cmd`): any client, in any language, that keeps the contract of `clients/CONTRACT.md`.
//!
//! The run is live (real loopback TCP on port 0, real clock): the simulated gateway serves the
//! scenario, the process is started with the gateway's URL, what it prints on stdout is read as
//! JSON Lines, the scenario's `[[commands]]` are written to its stdin as
//! `{"type":"send","hex":"7e...7e"}` at their `at_ms`, and it is killed at the end. The checks of
//! `[expect]` are judged from both sides (the gateway's log shows what the client sent, when it
//! reconnected, which commands it got answers for; the client's lines show what it decoded); a
//! check that needs events the client does not report is "not applicable", never passed. The
//! transcript is normalised ([`normalise`]) so a correct client gives the same snapshot run after
//! run.

mod bridge;
pub mod contract;
mod evidence;
pub mod normalise;
pub mod process;
pub mod snapshot;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use self::contract::ClientLine;
use self::process::{Process, Stdout};
use super::Scenario;
use super::harness::HarnessEvent;
use super::runner::{RunError, command_message};
use crate::codec::Phone;
use crate::gateway::Gateway;
use crate::transcript::Transcript;
use crate::transport::MemoryNetwork;

/// The run ends this long after the last thing happened, once everything settled.
pub const SETTLE: Duration = Duration::from_millis(500);
/// When some offered message is still not decoded (destroyed by a fault, or the client lags), the
/// run waits this long a quiet time instead of [`SETTLE`].
pub const LAGGING_SETTLE: Duration = Duration::from_secs(3);
/// How often the run looks whether it settled.
const POLL: Duration = Duration::from_millis(50);
/// How long a client may take to start and connect (`STARTUP_LIMIT` is added to `duration_ms`).
pub const STARTUP_LIMIT: Duration = Duration::from_secs(20);
/// After killing the client, how long the gateway gets at most to see its connection end (a
/// browser's TCP close can take a moment on a loaded machine).
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// Name of the note that carries the client's stderr when a check failed.
pub const STDERR_CHECK: &str = "client_stderr";

/// Which external client to run, and the name its snapshots carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalClient {
    /// Program and arguments; `{url}` is replaced by the gateway URL.
    pub command: Vec<String>,
    /// Snapshot label: `<scenario>@external-<label>` (the script's file stem, e.g. `node`).
    pub label: String,
}

impl ExternalClient {
    /// From a command given as program and arguments.
    pub fn new(command: Vec<String>) -> Result<ExternalClient, String> {
        if command.first().is_none_or(|p| p.trim().is_empty()) {
            return Err(
                "`client.command` needs at least a program, e.g. [\"node\", \"clients/js/node.mjs\", \"{url}\"]".into(),
            );
        }
        let label = label_of(&command);
        Ok(ExternalClient { command, label })
    }

    /// From `run --client-cmd 'node clients/js/node.mjs {url}'`: split at whitespace, with single
    /// or double quotes grouping words.
    pub fn parse_cli(text: &str) -> Result<ExternalClient, String> {
        ExternalClient::new(split_words(text).map_err(|e| format!("--client-cmd: {e}"))?)
            .map_err(|e| format!("--client-cmd: {e}"))
    }

    /// The client a scenario asks for: `overrides` (from `--client-cmd`, relative to the current
    /// directory like any command line) first, else its own `[client] command`, in which a
    /// relative path that names a file beside the scenario file is taken from there (so the
    /// scenario runs from any directory; one found only from the current directory is left as
    /// it is, as before).
    pub fn for_scenario(sc: &Scenario, overrides: Option<&ExternalClient>) -> Option<Result<ExternalClient, String>> {
        if let Some(o) = overrides {
            return Some(Ok(o.clone()));
        }
        let dir = sc.path.parent().unwrap_or(std::path::Path::new(""));
        let beside = |a: String| {
            let p = dir.join(&a);
            if std::path::Path::new(&a).is_relative() && a.contains('/') && p.is_file() {
                p.to_string_lossy().into_owned()
            } else {
                a
            }
        };
        sc.client.command.clone().map(|c| {
            ExternalClient::new(c.into_iter().map(beside).collect()).map_err(|e| format!("{}: {e}", sc.path.display()))
        })
    }
}

/// The stem of the first argument that names a file (`clients/js/node.mjs` -> `node`), else of
/// the program.
fn label_of(command: &[String]) -> String {
    let pick = command
        .iter()
        .skip(1)
        .find(|a| !a.starts_with('-') && !a.contains("{url}") && (a.contains('/') || a.contains('.')))
        .or(command.first());
    let stem = pick
        .and_then(|p| std::path::Path::new(p).file_stem())
        .map_or_else(|| "client".to_string(), |s| s.to_string_lossy().into_owned());
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() { "client".into() } else { clean }
}

fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => words.extend(cur.take()),
            (None, c) => cur.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(q) = quote {
        return Err(format!("unclosed {q} quote in {text:?}"));
    }
    words.extend(cur);
    Ok(words)
}

/// One scenario command as the external client gets it.
#[derive(Debug, Clone)]
pub struct Command {
    /// Position in the scenario's `[[commands]]`.
    pub index: usize,
    /// When, from the start.
    pub at: Duration,
    /// Message id.
    pub msg_id: u16,
    /// Terminal.
    pub phone: Phone,
    /// Serial the harness gave it (0, 1, ... in the order they are due).
    pub serial: u16,
    /// Whether the scenario awaits its answer (`request = true`).
    pub request: bool,
    /// The whole frame.
    pub hex: String,
}

/// What an external run produced.
#[derive(Debug)]
pub struct ExternalRun {
    /// Summary and checks (not-applicable checks pass with a detail saying so); no events.
    pub transcript: Transcript,
    /// The normalised transcript the snapshot holds.
    pub yaml: String,
    /// The client broke the contract or died; with its stderr.
    pub error: Option<String>,
    /// The end of its stderr.
    pub stderr: String,
}

/// Runs `sc` against `client`.
pub fn run(sc: &Scenario, client: &ExternalClient) -> Result<ExternalRun, RunError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run_async(sc, client))
}

fn commands(sc: &Scenario) -> Result<Vec<Command>, String> {
    let mut order: Vec<usize> = (0..sc.commands.len()).collect();
    order.sort_by_key(|&i| (sc.commands[i].at_ms, i));
    let mut out = Vec::new();
    for (serial, i) in order.into_iter().enumerate() {
        let spec = &sc.commands[i];
        let mut msg = command_message(spec).map_err(|e| format!("commands[{i}]: {e}"))?;
        msg.header.serial = u16::try_from(serial).map_err(|_| format!("commands[{i}]: more than 65536 commands"))?;
        out.push(Command {
            index: i,
            at: Duration::from_millis(spec.at_ms),
            msg_id: spec.msg_id,
            phone: msg.header.phone,
            serial: msg.header.serial,
            request: spec.request,
            hex: hex::encode(msg.encode()),
        });
    }
    Ok(out)
}

/// Environment the process gets: the scenario's client settings, for clients that take them.
fn environment(sc: &Scenario) -> Vec<(String, String)> {
    let c = &sc.client;
    let prefix = c.prefix_len.unwrap_or(sc.gateway.prefix_len);
    let mut env = vec![
        ("JT808_PREFIX_LEN".to_string(), prefix.to_string()),
        ("JT808_SEED".to_string(), sc.seed.to_string()),
    ];
    let opt = [
        ("JT808_BACKOFF_MIN_MS", c.backoff_min_ms.map(|v| v.to_string())),
        ("JT808_BACKOFF_MAX_MS", c.backoff_max_ms.map(|v| v.to_string())),
        ("JT808_BACKOFF_FACTOR", c.backoff_factor.map(|v| v.to_string())),
        ("JT808_IDLE_TIMEOUT_MS", c.idle_timeout_ms.map(|v| v.to_string())),
        ("JT808_PING_INTERVAL_MS", c.ping_interval_ms.map(|v| v.to_string())),
        ("JT808_QUEUE_CAPACITY", c.queue_capacity.map(|v| v.to_string())),
        ("JT808_CONFIRM_TIMEOUT_MS", c.confirm_timeout_ms.map(|v| v.to_string())),
        ("JT808_MAX_RESENDS", c.max_resends.map(|v| v.to_string())),
        ("JT808_GROUP_TIMEOUT_MS", c.group_timeout_ms.map(|v| v.to_string())),
        ("JT808_RETRANSMIT_WAIT_MS", c.retransmit_wait_ms.map(|v| v.to_string())),
        ("JT808_REQUEST_MISSING", c.request_missing.map(|v| v.to_string())),
        (
            "JT808_REJOIN_UNESCAPED_FLAG",
            c.rejoin_unescaped_flag.map(|v| v.to_string()),
        ),
    ];
    env.extend(opt.into_iter().filter_map(|(k, v)| v.map(|v| (k.to_string(), v))));
    env
}

/// What the run loop collected.
#[derive(Debug, Default)]
struct Collected {
    lines: Vec<ClientLine>,
    /// When each command was written (None: never, the process was gone).
    written: Vec<Option<Duration>>,
    error: Option<String>,
    eof: bool,
}

/// A gateway maker for [`bridge::serve`] and, read at the end of the run, the harness notes of
/// its feeds (capture errors, conversation reports).
type Maker = (
    Box<dyn FnOnce() -> (Gateway, MemoryNetwork) + Send>,
    Box<dyn FnOnce() -> Vec<HarnessEvent>>,
);

/// The gateway's setup, checked once before anything starts (a bad fault spec or capture fails
/// here), then built for real at the client's first connection ([`bridge`]).
fn gateway_maker(sc: &Scenario, stop: watch::Receiver<bool>) -> Result<Maker, String> {
    let check = sc.source.feeds(sc.seed).map_err(|e| e.to_string())?;
    let (_keep, rx) = watch::channel(false);
    Gateway::new(sc.gateway.config(sc.seed), sc.faults.clone(), check.into_factory(), rx).map_err(|e| e.to_string())?;
    let feeds = sc.source.feeds(sc.seed).map_err(|e| e.to_string())?;
    let (errors, conversations) = (feeds.errors(), feeds.conversations());
    let (cfg, faults, factory) = (sc.gateway.config(sc.seed), sc.faults.clone(), feeds.into_factory());
    let make = move || {
        let gw = Gateway::new(cfg, faults, factory, stop).expect("the same setup was accepted above");
        let (net, listener) = MemoryNetwork::new(bridge::PIPE_CAPACITY);
        tokio::spawn({
            let gw = gw.clone();
            async move { gw.serve(listener).await }
        });
        (gw, net)
    };
    let notes = move || evidence::harness_notes(&errors, &conversations);
    Ok((Box::new(make), Box::new(notes)))
}

async fn run_async(sc: &Scenario, client: &ExternalClient) -> Result<ExternalRun, RunError> {
    let setup = |message: String| RunError::Setup {
        path: sc.path.display().to_string(),
        message,
    };
    let cmds = commands(sc).map_err(setup)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (make, notes) = gateway_maker(sc, stop_rx.clone()).map_err(setup)?;
    let tcp = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let addr = tcp.local_addr()?;
    let (started_tx, started_rx) = oneshot::channel();
    tokio::spawn(bridge::serve(tcp, make, started_tx, stop_rx));
    let argv = process::substitute(&client.command, &format!("ws://{addr}/"));
    let (mut proc, rx) = Process::spawn(&argv, &environment(sc)).map_err(setup)?;
    let (collected, gw) = drive(sc, &cmds, started_rx, &mut proc, rx).await;
    let exited = proc.kill().await;
    // The gateway logs how the client's connection ended before it is stopped itself.
    let until = Instant::now() + CLOSE_GRACE;
    while gw.as_ref().is_some_and(|g| !g.live_connections().is_empty()) && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop_tx.send(true);
    tokio::time::sleep(Duration::from_millis(1)).await;
    let stderr = proc.stderr_tail();
    let mut error = collected.error.clone();
    if error.is_none() && (collected.eof || exited.is_some()) {
        let how = exited.map_or_else(|| "closed its stdout".to_string(), |s| format!("exited ({s})"));
        error = Some(format!("the client {how} before the run ended"));
    }
    let error = error.map(|e| format!("{e}\n--- client stderr (last {} bytes) ---\n{stderr}", stderr.len()));
    let mut harness = notes();
    harness.extend(evidence::command_notes(&cmds, &collected.written));
    let gateway_log = gw.map(|g| g.take_log()).unwrap_or_default();
    let ev = evidence::Evidence {
        sc,
        commands: &cmds,
        lines: &collected.lines,
        gateway: &gateway_log,
        harness,
    };
    let transcript = ev.transcript();
    let yaml = normalise::yaml(sc, &client.label, &ev, &transcript.checks);
    Ok(ExternalRun {
        transcript,
        yaml,
        error,
        stderr,
    })
}

/// Where a run stands.
struct Clock {
    /// The gateway, once the client connected for the first time.
    gw: Option<Gateway>,
    /// The scenario's time zero: the gateway's start.
    start: Option<Instant>,
    spawned: Instant,
}

impl Clock {
    fn end(&self, sc: &Scenario) -> Instant {
        self.start.unwrap_or(self.spawned + STARTUP_LIMIT) + Duration::from_millis(sc.duration_ms)
    }
}

/// The run loop: commands written when due, stdout read, ended once settled or at `duration_ms`
/// (both counted from the client's first connection).
async fn drive(
    sc: &Scenario,
    cmds: &[Command],
    mut started: oneshot::Receiver<(Gateway, Instant)>,
    proc: &mut Process,
    mut rx: mpsc::UnboundedReceiver<Stdout>,
) -> (Collected, Option<Gateway>) {
    let mut c = Collected {
        written: vec![None; cmds.len()],
        ..Collected::default()
    };
    let mut clock = Clock {
        gw: None,
        start: None,
        spawned: Instant::now(),
    };
    let mut next = 0;
    let mut last_activity = Instant::now();
    let mut last_log = 0;
    let mut tick = tokio::time::interval(POLL);
    loop {
        let end = clock.end(sc);
        let due = match (clock.start, cmds.get(next)) {
            (Some(s), Some(k)) => s + k.at,
            _ => end,
        };
        tokio::select! {
            _ = tokio::time::sleep_until(end) => {
                if clock.start.is_none() {
                    c.error = Some(format!("the client never connected within {} s", STARTUP_LIMIT.as_secs()));
                }
                return (c, clock.gw);
            }
            r = &mut started, if clock.gw.is_none() => {
                if let Ok((gw, at)) = r {
                    clock.gw = Some(gw);
                    clock.start = Some(at);
                }
            }
            _ = tokio::time::sleep_until(due), if clock.start.is_some() && next < cmds.len() => {
                let line = serde_json::json!({"type": "send", "hex": cmds[next].hex}).to_string();
                if proc.write_line(&line).await.is_ok() {
                    c.written[next] = Some(clock.spawned.elapsed());
                }
                next += 1;
                last_activity = Instant::now();
            }
            got = rx.recv() => {
                last_activity = Instant::now();
                if let Some(stop) = read(&mut c, got) {
                    c.error = stop;
                    return (c, clock.gw);
                }
            }
            _ = tick.tick() => {
                let Some(gw) = &clock.gw else { continue };
                let len = gw.log().len();
                if len != last_log {
                    last_log = len;
                    last_activity = Instant::now();
                }
                let quiet = last_activity.elapsed();
                if next == cmds.len() && quiet >= SETTLE && evidence::settled(gw, cmds, &c.lines) {
                    let log = gw.log();
                    let ev = evidence::Evidence { sc, commands: cmds, lines: &c.lines, gateway: &log, harness: Vec::new() };
                    if quiet >= LAGGING_SETTLE || evidence::caught_up(&ev) {
                        return (c, clock.gw);
                    }
                }
            }
        }
    }
}

/// Takes one thing the stdout reader saw; `Some(error)` (None inside: a clean end) ends the run.
fn read(c: &mut Collected, got: Option<Stdout>) -> Option<Option<String>> {
    match got {
        Some(Stdout::Line(n, text)) => match contract::parse_line(n, &text) {
            Ok(l) => {
                c.lines.push(l);
                None
            }
            Err(e) => Some(Some(e.to_string())),
        },
        Some(Stdout::TooLong(n)) => Some(Some(format!(
            "client stdout line {n}: longer than {} bytes",
            contract::MAX_LINE_BYTES
        ))),
        Some(Stdout::NotUtf8(n)) => Some(Some(format!("client stdout line {n}: not UTF-8"))),
        Some(Stdout::Eof) | None => {
            c.eof = true;
            Some(None)
        }
    }
}

/// Whether the scenario file runs against an external client (a bad file: no, its error comes
/// from the normal path).
pub fn wanted(path: &std::path::Path, overrides: Option<&ExternalClient>) -> bool {
    overrides.is_some() || Scenario::load(path).is_ok_and(|sc| sc.client.command.is_some())
}

/// `run`'s outcome of one scenario against an external client: the checks, the normalised
/// transcript against its snapshot, and the client's contract breaks or death (with its stderr)
/// as the error.
pub fn run_outcome(
    sc: &Scenario,
    client: Result<ExternalClient, String>,
    snapshots: &std::path::Path,
    write_new: bool,
    out: &mut crate::cli::run::Outcome,
) {
    out.mode = super::runner::Mode::External;
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            out.error = Some(e);
            return;
        }
    };
    match run(sc, &client) {
        Ok(r) => {
            out.snapshot = Some(snapshot::compare(
                snapshots,
                &sc.name,
                &client.label,
                &r.yaml,
                write_new,
            ));
            let mut t = r.transcript;
            if !t.passed() && !r.stderr.is_empty() {
                // Shown by `run` next to the failed checks (see [`notes`]).
                t.checks.push(crate::transcript::Check {
                    name: STDERR_CHECK.into(),
                    ok: true,
                    detail: format!("the client's stderr (last {} bytes):\n{}", r.stderr.len(), r.stderr),
                });
            }
            out.error = r.error;
            out.transcript = Some(t);
        }
        Err(e) => out.error = Some(e.to_string()),
    }
}

/// Short notes for `run`'s report: checks not applicable, and whether the snapshot is stable.
pub fn notes(t: &Transcript) -> Vec<String> {
    t.checks
        .iter()
        .filter(|c| {
            c.detail.starts_with(evidence::NOT_APPLICABLE)
                || c.name == evidence::SNAPSHOT_CHECK
                || c.name == STDERR_CHECK
        })
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_the_script() {
        let l = |s: &str| ExternalClient::parse_cli(s).unwrap().label;
        assert_eq!(l("node clients/js/node.mjs {url}"), "node");
        assert_eq!(l("node clients/js/browser.mjs {url}"), "browser");
        assert_eq!(l("./my-client --url {url}"), "my-client");
        assert_eq!(l("java -jar target/app.jar {url}"), "app");
    }

    #[test]
    fn cli_commands_split_with_quotes() {
        let c = ExternalClient::parse_cli(r#"node "my dir/c.mjs" '{url}'"#).unwrap();
        assert_eq!(c.command, ["node", "my dir/c.mjs", "{url}"]);
        assert!(ExternalClient::parse_cli("node 'x").unwrap_err().contains("unclosed"));
        assert!(
            ExternalClient::parse_cli("   ")
                .unwrap_err()
                .contains("at least a program")
        );
    }
}
