//! The gateway side of a stress run, wherever it is: in this process (`LocalGateway`), in a child
//! process spoken to over the [`super::protocol`] lines (`ChildGateway`; [`serve_gateway`] is the
//! child's end), or an external gateway this run did not start (`--url`, e.g. `serve --feed
//! stress`). `GatewaySide` is what the orchestration talks to: choose a storm's victims, drop
//! them, read the gateway's resources, stop the feeds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::watch;

use super::feed::{FeedSettings, NO_STOP, StressFeed, client_of_session};
use super::options::{LISTEN_BACKLOG, StormMode, StressOpts};
use super::outcome::{StressError, io_err};
use super::protocol::Line;
use super::sys::{self, ResourceSample};
use crate::gateway::{Gateway, GatewayConfig, LogLevel};
use crate::transport::Listener;

pub use crate::gateway::storm::choose_victims;

/// The rng of storm number `storm` of a run seeded `seed`.
pub fn storm_rng(seed: u64, storm: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ (storm as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93))
}

/// Live connections of a gateway as (client id, conn id), sorted by client; a client with two (a
/// stalled one not yet superseded) is listed with its newest.
fn live_clients(gw: &Gateway) -> Vec<(usize, u64)> {
    let mut by_client: HashMap<usize, u64> = HashMap::new();
    for (conn, session) in gw.live_sessions() {
        if let Some(c) = client_of_session(&session) {
            let e = by_client.entry(c).or_insert(conn);
            *e = (*e).max(conn);
        }
    }
    let mut v: Vec<_> = by_client.into_iter().collect();
    v.sort_unstable();
    v
}

/// Hands memory the allocator holds but nobody uses back to the kernel (glibc's `malloc_trim`),
/// so the two memory readings behind memory per idle connection count live memory, not what an
/// earlier run or the ramp freed and glibc kept. Elsewhere a no-op.
pub(crate) fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it takes no pointer.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A listener on `127.0.0.1:0` with a backlog of [`LISTEN_BACKLOG`] (a fleet connects faster than
/// the default backlog of 1,024 takes), and its address; `what` names the socket in errors.
pub(crate) fn listen_loopback(what: &'static str) -> Result<(tokio::net::TcpListener, SocketAddr), StressError> {
    let socket = TcpSocket::new_v4().map_err(io_err(what))?;
    socket.set_reuseaddr(true).map_err(io_err(what))?;
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .map_err(io_err("bind 127.0.0.1:0"))?;
    let listener = socket.listen(LISTEN_BACKLOG).map_err(io_err("listen"))?;
    let addr = listener.local_addr().map_err(io_err("listener address"))?;
    Ok((listener, addr))
}

/// A stress gateway in this process: the gateway, its shutdown switch, the feeds' stop time.
pub(crate) struct LocalGateway {
    gw: Gateway,
    pub(crate) addr: SocketAddr,
    stop: Arc<AtomicU64>,
    shutdown: watch::Sender<bool>,
}

/// Starts the stress gateway on `127.0.0.1:0` with a listen backlog of [`LISTEN_BACKLOG`].
pub(crate) async fn start_local_gateway(
    seed: u64,
    feed: FeedSettings,
    ws_buffer: usize,
    clients: usize,
) -> Result<LocalGateway, StressError> {
    let stop = Arc::new(AtomicU64::new(NO_STOP));
    let (shutdown, rx) = watch::channel(false);
    let cfg = GatewayConfig {
        read_buffer: ws_buffer,
        log: LogLevel::Off,
        max_connections: clients.saturating_mul(2).max(GatewayConfig::default().max_connections),
        seed,
        ..GatewayConfig::default()
    };
    let gw = Gateway::new(cfg, Vec::new(), StressFeed::factory(feed, stop.clone()), rx)?;
    let (listener, addr) = listen_loopback("gateway socket")?;
    let serving = gw.clone();
    tokio::spawn(async move { serving.serve(Listener::Tcp(listener)).await });
    Ok(LocalGateway {
        gw,
        addr,
        stop,
        shutdown,
    })
}

impl LocalGateway {
    fn pick(&self, fraction: f64, rng: &mut ChaCha8Rng) -> Vec<(usize, u64)> {
        let live = live_clients(&self.gw);
        let ids: Vec<usize> = live.iter().map(|(c, _)| *c).collect();
        let chosen = choose_victims(&ids, fraction, rng);
        let conn: HashMap<usize, u64> = live.into_iter().collect();
        chosen.into_iter().filter_map(|c| Some((c, *conn.get(&c)?))).collect()
    }

    fn drop_conns(&self, mode: StormMode, conns: &[u64]) {
        for c in conns {
            self.gw.command(*c, mode.command());
        }
    }

    /// Stops the feeds one interval from now; returns the stop time (gateway time).
    fn stop_frames(&self, interval: Duration) -> Duration {
        let at = self.gw.now() + interval;
        self.stop.store(at.as_micros() as u64, Ordering::Release);
        at
    }

    /// The child's answer to one request; `None` for [`Line::Quit`].
    fn answer(&self, request: &Line, frame_interval: Duration) -> Result<Option<Line>, StressError> {
        Ok(Some(match request {
            Line::Pick { fraction, seed, storm } => Line::Victims(self.pick(*fraction, &mut storm_rng(*seed, *storm))),
            Line::Drop { mode, conns } => {
                self.drop_conns(*mode, conns);
                Line::Ok
            }
            Line::Sample { trim } => {
                if *trim {
                    trim_heap();
                }
                Line::Reading(sys::sample().unwrap_or_default())
            }
            Line::Stop => Line::StopAt(self.stop_frames(frame_interval)),
            Line::Quit => return Ok(None),
            other => return Err(StressError::Child(format!("{other} is not a request"))),
        }))
    }
}

/// The parent's end of a gateway child process (the [`Line`] protocol on its stdin/stdout, see
/// [`serve_gateway`]).
pub(crate) struct ChildGateway {
    child: Child,
    stdin: ChildStdin,
    lines: tokio::io::Lines<BufReader<ChildStdout>>,
    pub(crate) addr: SocketAddr,
}

impl ChildGateway {
    /// Starts `exe stress --serve-gateway ...` and waits for its `listening` line.
    pub(crate) async fn spawn(exe: &PathBuf, opts: &StressOpts) -> Result<ChildGateway, StressError> {
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("stress")
            .arg("--serve-gateway")
            .arg("--clients")
            .arg(opts.clients.to_string())
            .arg("--seed")
            .arg(opts.seed.to_string())
            .arg("--frame-interval")
            .arg(format!("{}us", opts.frame_interval.as_micros()))
            .arg("--ws-buffer")
            .arg(opts.ws_buffer.to_string())
            .args(opts.frames.map(|n| format!("--frames={n}")))
            .args(opts.raw_pair.then_some("--raw-pair"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(io_err(format!("spawn {}", exe.display())))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| StressError::Child("no stdin".into()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| StressError::Child("no stdout".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = match next_line(&mut lines).await? {
            Line::Listening(addr) => addr,
            other => return Err(unexpected("listening ADDR", &other)),
        };
        Ok(ChildGateway {
            child,
            stdin,
            lines,
            addr,
        })
    }

    async fn send(&mut self, line: &Line) -> Result<(), StressError> {
        let text = format!("{line}\n");
        let fail = |e: std::io::Error| StressError::Child(format!("writing {line}: {e}"));
        self.stdin.write_all(text.as_bytes()).await.map_err(fail)?;
        self.stdin.flush().await.map_err(fail)
    }

    async fn ask(&mut self, line: &Line) -> Result<Line, StressError> {
        self.send(line).await?;
        next_line(&mut self.lines).await
    }

    async fn pick(&mut self, fraction: f64, seed: u64, storm: usize) -> Result<Vec<(usize, u64)>, StressError> {
        match self.ask(&Line::Pick { fraction, seed, storm }).await? {
            Line::Victims(v) => Ok(v),
            other => Err(unexpected("victims", &other)),
        }
    }

    async fn drop_conns(&mut self, mode: StormMode, conns: &[u64]) -> Result<(), StressError> {
        let conns = conns.to_vec();
        match self.ask(&Line::Drop { mode, conns }).await? {
            Line::Ok => Ok(()),
            other => Err(unexpected("ok", &other)),
        }
    }

    pub(crate) async fn sample(&mut self, trim: bool) -> Result<ResourceSample, StressError> {
        match self.ask(&Line::Sample { trim }).await? {
            Line::Reading(s) => Ok(s),
            other => Err(unexpected("reading", &other)),
        }
    }

    async fn stop_frames(&mut self) -> Result<Duration, StressError> {
        match self.ask(&Line::Stop).await? {
            Line::StopAt(d) => Ok(d),
            other => Err(unexpected("stop_at", &other)),
        }
    }

    pub(crate) async fn quit(mut self) {
        let _ = self.send(&Line::Quit).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

fn unexpected(wanted: &str, got: &Line) -> StressError {
    StressError::Child(format!("expected `{wanted} ...`, got `{got}`"))
}

async fn next_line<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut tokio::io::Lines<R>) -> Result<Line, StressError> {
    match lines.next_line().await {
        Ok(Some(l)) => l.parse().map_err(|e| StressError::Child(format!("{e}"))),
        Ok(None) => Err(StressError::Child("exited".into())),
        Err(e) => Err(StressError::Child(format!("reading: {e}"))),
    }
}

/// Runs as the gateway child process of a `--gateway-process` run: starts the stress gateway, says
/// Writes one line of the child's protocol to its stdout and flushes it (the parent waits for it).
pub(crate) async fn say_line(out: &mut tokio::io::Stdout, line: Line) -> Result<(), StressError> {
    out.write_all(format!("{line}\n").as_bytes())
        .await
        .map_err(io_err("stdout"))?;
    out.flush().await.map_err(io_err("stdout"))
}

/// [`Line::Listening`] on stdout, then answers each request line on stdin with one line (the table
/// in [`super::protocol`]) until `quit` or the end of its input.
pub async fn serve_gateway(clients: usize, seed: u64, feed: FeedSettings, ws_buffer: usize) -> Result<(), StressError> {
    let lim = sys::raise_nofile_limit().map_err(io_err("raising the open-file limit"))?;
    check_one_per_client(&lim, clients)?;
    let local = start_local_gateway(seed, feed, ws_buffer, clients).await?;
    let mut out = tokio::io::stdout();
    let mut say = async |line: Line| say_line(&mut out, line).await;
    say(Line::Listening(local.addr)).await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(text) = lines.next_line().await.map_err(io_err("stdin"))? {
        let request: Line = text.parse().map_err(|e| StressError::Child(format!("{e}")))?;
        match local.answer(&request, feed.interval)? {
            Some(answer) => say(answer).await?,
            None => break,
        }
    }
    let _ = local.shutdown.send(true);
    Ok(())
}

/// Checks the open-file limit for one descriptor per client (the gateway elsewhere).
pub(crate) fn check_one_per_client(lim: &sys::NofileLimit, clients: usize) -> Result<(), StressError> {
    let needed = clients as u64 + sys::FD_HEADROOM;
    if needed > lim.soft {
        return Err(StressError::FdsOnePerClient {
            clients,
            needed,
            soft: lim.soft,
            hard: lim.hard,
        });
    }
    Ok(())
}

/// Where the run's gateway is, as the orchestration talks to it.
pub(crate) enum GatewaySide {
    Local(LocalGateway),
    Child(Box<ChildGateway>),
    External,
}

impl GatewaySide {
    /// The gateway's listening address, when this run started it.
    pub(crate) fn addr(&self) -> Option<SocketAddr> {
        match self {
            GatewaySide::Local(g) => Some(g.addr),
            GatewaySide::Child(c) => Some(c.addr),
            GatewaySide::External => None,
        }
    }

    pub(crate) async fn pick(
        &mut self,
        fraction: f64,
        seed: u64,
        storm: usize,
    ) -> Result<Vec<(usize, u64)>, StressError> {
        match self {
            GatewaySide::Local(g) => Ok(g.pick(fraction, &mut storm_rng(seed, storm))),
            GatewaySide::Child(c) => c.pick(fraction, seed, storm).await,
            GatewaySide::External => Ok(Vec::new()),
        }
    }

    pub(crate) async fn drop_conns(&mut self, mode: StormMode, conns: &[u64]) -> Result<(), StressError> {
        match self {
            GatewaySide::Local(g) => {
                g.drop_conns(mode, conns);
                Ok(())
            }
            GatewaySide::Child(c) => c.drop_conns(mode, conns).await,
            GatewaySide::External => Ok(()),
        }
    }

    /// The child's resources (the local gateway's are this process's own; an external one's are
    /// not ours to read).
    pub(crate) async fn sample(&mut self, trim: bool) -> Option<ResourceSample> {
        match self {
            GatewaySide::Child(c) => c.sample(trim).await.ok(),
            _ => None,
        }
    }

    /// Stops the feeds one `interval` from now; the stop time, when this run controls the feeds.
    pub(crate) async fn stop_frames(&mut self, interval: Duration) -> Result<Option<Duration>, StressError> {
        match self {
            GatewaySide::Local(g) => Ok(Some(g.stop_frames(interval))),
            GatewaySide::Child(c) => c.stop_frames().await.map(Some),
            GatewaySide::External => Ok(None),
        }
    }

    pub(crate) async fn shutdown(self) {
        match self {
            GatewaySide::Local(g) => {
                let _ = g.shutdown.send(true);
            }
            GatewaySide::Child(c) => c.quit().await,
            GatewaySide::External => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn victims_are_a_seeded_fraction_of_the_live_ids() {
        let live: Vec<usize> = (0..200).rev().collect();
        let a = choose_victims(&live, 0.25, &mut storm_rng(7, 0));
        assert_eq!(a.len(), 50);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        // Same seed and live set (in any order): the same clients.
        let mut shuffled = live.clone();
        shuffled.sort_unstable();
        assert_eq!(choose_victims(&shuffled, 0.25, &mut storm_rng(7, 0)), a);
        assert_ne!(choose_victims(&live, 0.25, &mut storm_rng(7, 1)), a);
        assert_eq!(choose_victims(&live, 1.0, &mut storm_rng(7, 0)).len(), 200);
        assert!(choose_victims(&live, 0.0, &mut storm_rng(7, 0)).is_empty());
    }
}
