//! The floor the memory figures are held against (`stress --raw-pair`): plain tokio-tungstenite
//! pairs and nothing else, with the buffers of a stress run (the clients' [`WsSettings`], the
//! gateway's read buffer of `--ws-buffer` and its write buffer), over the same loopback plumbing
//! (source addresses, open-file limit, listen backlog, `--gateway-process` for a server in a child
//! process speaking the same [`Line`]s). Each server connection gets one small message, as a stress
//! client gets its first frame, then both ends just read (tungstenite answers pings).
//!
//! The readings are taken as a stress run takes them (trimmed heap, RSS before the ramp and once
//! every pair is up and settled), so `sides.client_bytes` and `sides.gateway_bytes` of the two
//! runs compare directly: what the harness adds per connection on each side.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::book::add_samples;
use super::feed::session_path;
use super::metrics::Metrics;
use super::options::{GatewayPlacement, StressOpts};
use super::outcome::{Outcome, SideMemory, StressError, io_err};
use super::protocol::Line;
use super::side::{ChildGateway, check_one_per_client, trim_heap};
use super::sys::{self, ResourceSample};
use crate::gateway::GatewayConfig;

/// The label of a raw-pair run in the table and the JSON.
pub const LABEL: &str = "raw tokio-tungstenite pair";

/// The one message each server connection sends: the size of a stress frame.
const FIRST_MESSAGE: usize = 40;

/// The server's tungstenite settings: the stress gateway's ([`GatewayConfig`] with `--ws-buffer`).
fn server_config(ws_buffer: usize) -> WebSocketConfig {
    let gw = GatewayConfig::default();
    WebSocketConfig::default()
        .read_buffer_size(ws_buffer)
        .write_buffer_size(gw.write_buffer)
        .max_message_size(Some(gw.max_message_size))
        .max_frame_size(Some(gw.max_frame_size))
}

/// Listens on `127.0.0.1:0` and serves raw pairs until the task is dropped.
async fn start_server(ws_buffer: usize) -> Result<(SocketAddr, JoinSet<()>), StressError> {
    let (listener, addr) = super::side::listen_loopback("raw server socket")?;
    let mut set = JoinSet::new();
    set.spawn(serve(listener, ws_buffer));
    Ok((addr, set))
}

async fn serve(listener: TcpListener, ws_buffer: usize) {
    let cfg = server_config(ws_buffer);
    loop {
        let Ok((s, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = s.set_nodelay(true);
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(s, Some(cfg)).await else {
                return;
            };
            if ws
                .send(WsMessage::Binary(vec![0x7E; FIRST_MESSAGE].into()))
                .await
                .is_ok()
            {
                while let Some(Ok(_)) = ws.next().await {}
            }
        });
    }
}

/// Runs as the raw server child of `stress --raw-pair --gateway-process`: `listening`, then
/// `sample` answered until `quit` or the end of its input.
pub async fn serve_child(clients: usize, ws_buffer: usize) -> Result<(), StressError> {
    let lim = sys::raise_nofile_limit().map_err(io_err("raising the open-file limit"))?;
    check_one_per_client(&lim, clients)?;
    let (addr, _server) = start_server(ws_buffer).await?;
    let mut out = tokio::io::stdout();
    let mut say = async |line: Line| super::side::say_line(&mut out, line).await;
    say(Line::Listening(addr)).await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(text) = lines.next_line().await.map_err(io_err("stdin"))? {
        match text.parse().map_err(|e| StressError::Child(format!("{e}")))? {
            Line::Sample { trim } => {
                if trim {
                    trim_heap();
                }
                say(Line::Reading(sys::sample().unwrap_or_default())).await?;
            }
            Line::Quit => break,
            other => return Err(StressError::Child(format!("{other} is not a raw-pair request"))),
        }
    }
    Ok(())
}

/// Where the raw server runs: in this process (its tasks) or in a child.
enum Server {
    Local(#[allow(dead_code)] JoinSet<()>),
    Child(Box<ChildGateway>),
}

impl Server {
    async fn sample(&mut self) -> Option<ResourceSample> {
        match self {
            Server::Child(c) => c.sample(true).await.ok(),
            Server::Local(_) => None,
        }
    }
}

/// Connects `opts.clients` raw clients at `opts.connect_rate`, waits until each has its message
/// and `opts.settle` has passed, and reads the memory per idle connection as [`super::run()`] does.
pub async fn run(opts: &StressOpts) -> Result<Outcome, StressError> {
    let n = opts.clients;
    if !opts.storms.is_empty() {
        return Err(StressError::Options(
            "--raw-pair measures idle pairs: no --storm".into(),
        ));
    }
    let nofile = sys::raise_nofile_limit().ok();
    let (addr, mut server) = match &opts.gateway {
        GatewayPlacement::InProcess => {
            if let Some(lim) = &nofile {
                lim.check(n)?;
            }
            let (addr, set) = start_server(opts.ws_buffer).await?;
            (addr, Server::Local(set))
        }
        GatewayPlacement::ChildProcess { exe } => {
            if let Some(lim) = &nofile {
                check_one_per_client(lim, n)?;
            }
            let child = ChildGateway::spawn(exe, opts).await?;
            (child.addr, Server::Child(Box::new(child)))
        }
        GatewayPlacement::External { .. } => {
            return Err(StressError::Options(
                "--raw-pair starts its own server: no --url".into(),
            ));
        }
    };
    let start = Instant::now();
    let mut metrics = Metrics::new(n);
    trim_heap();
    let own_base = sys::sample().ok();
    let gw_base = server.sample().await;
    if let Some(s) = own_base {
        metrics.mark_idle_baseline(start.elapsed(), add_samples(s, gw_base));
    }
    let up = Arc::new(AtomicUsize::new(0));
    let clients = ramp(opts, addr, &up).await?;
    let mut problems = Vec::new();
    let deadline = Instant::now() + opts.connect_wait;
    while up.load(Ordering::Acquire) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connected = up.load(Ordering::Acquire);
    if connected < n {
        problems.push(format!(
            "only {connected} of {n} raw clients connected within {:?}",
            opts.connect_wait
        ));
    }
    tokio::time::sleep(opts.settle).await;
    trim_heap();
    let own_idle = sys::sample().ok();
    let gw_idle = server.sample().await;
    if let Some(s) = own_idle {
        metrics.mark_idle_connected(start.elapsed(), add_samples(s, gw_idle), connected);
    }
    let sides = match (own_base, gw_base, own_idle, gw_idle) {
        (Some(ob), Some(gb), Some(oi), Some(gi)) if connected > 0 => Some(SideMemory {
            client_bytes: oi.rss_bytes.saturating_sub(ob.rss_bytes) / connected as u64,
            gateway_bytes: gi.rss_bytes.saturating_sub(gb.rss_bytes) / connected as u64,
        }),
        _ => None,
    };
    drop(clients);
    if let Server::Child(c) = server {
        c.quit().await;
    }
    Ok(Outcome {
        run: metrics.run(LABEL, start.elapsed()),
        problems,
        nofile,
        sides,
    })
}

/// The raw clients' tasks, aborted when dropped.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        self.0.iter().for_each(JoinHandle::abort);
    }
}

/// Starts the raw clients in batches every 10 ms; each counts itself in `up` once it has read its
/// first message, then reads until it is aborted.
async fn ramp(opts: &StressOpts, addr: SocketAddr, up: &Arc<AtomicUsize>) -> Result<Tasks, StressError> {
    let cfg = opts.client_config(0).ws.to_config();
    let per_tick = (opts.connect_rate as usize / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut tasks = Tasks(Vec::with_capacity(opts.clients));
    for id in 0..opts.clients {
        if id % per_tick == 0 {
            tick.tick().await;
        }
        let src = sys::source_ip(id + opts.source_offset * opts.per_source, opts.per_source).ok_or(
            StressError::NoSourceAddress {
                client: id,
                per_source: opts.per_source,
            },
        )?;
        let (up, url) = (up.clone(), format!("ws://{addr}{}", session_path(id)));
        tasks.0.push(tokio::spawn(async move {
            let Ok(s) = sys::connect_from(IpAddr::V4(src), addr).await else {
                return;
            };
            let _ = s.set_nodelay(true);
            let Ok((mut ws, _)) = tokio_tungstenite::client_async_with_config(url, s, Some(cfg)).await else {
                return;
            };
            if let Some(Ok(_)) = ws.next().await {
                up.fetch_add(1, Ordering::AcqRel);
                while let Some(Ok(_)) = ws.next().await {}
            }
        }));
    }
    Ok(tasks)
}
