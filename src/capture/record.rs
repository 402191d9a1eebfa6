//! The recording proxy: a WebSocket server between a real platform client and a real terminal
//! gateway that relays every message both ways untouched and writes it to a capture.
//!
//! ```text
//!  client ══ws══► recorder (--listen) ══ws══► gateway (--upstream)
//!                    │ one writer task, fed by a channel
//!                    ▼
//!                 capture (--out, JSON Lines, flushed per record)
//! ```
//!
//! For each client connection the recorder connects to the upstream URL (when the upstream URL's
//! path is `/` the client's own path and query are used, so one recorder serves every feed of a
//! gateway; `ws://` only, no TLS) and then relays binary, text, ping, pong and close frames (with
//! their code and reason) in both directions. Every message is written with its time offset
//! (tokio's [`Instant`] since the recorder bound its socket, so a test on tokio's paused clock
//! gets exact offsets), its direction and its connection id (1, 2, ... in order of WebSocket
//! handshake). Binary messages are stored as `"hex"`, text messages as `"text"` (a JSON string),
//! pings and pongs as `"ping"`/`"pong"` with hex payloads (see [`super::format`]).
//!
//! Events: `open` once both sides are connected. `close` with `"from"` and `"code"` for every close
//! frame either side sends (so a clean close normally gives two: the closer's and the reply); a
//! `close` with `"from"` and no code when a side's connection ended without a close frame (the
//! other side is then dropped the same way, without a close frame, as the original peer would have
//! seen it); a `close` without `"from"` when the recorder itself ended the connection: upstream
//! unreachable (code 1011 sent to the client) or recorder shutdown (1001 sent to both sides).
//!
//! Caveat: tungstenite answers pings itself at each hop, so a peer may see one extra pong besides
//! the relayed one. Pongs are idempotent (RFC 6455 §5.5.3), so no real client should care.
//!
//! Records of concurrent connections go through one bounded channel ([`RecordOpts::queue`]) to one
//! writer task, so lines never interleave; a full queue slows the relays down (backpressure), it
//! never drops a record. Two connections may stamp their records in one order and enqueue them in
//! the other; the writer then raises the later-enqueued, earlier-stamped offset to the previous one
//! (by at most the queueing delay) so the file's times never go back, and counts it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::Serialize;
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::format::{CaptureHeader, CaptureWriter, Payload, Record, RecordKind, Side};

/// Recording proxy settings (the `record` command).
#[derive(Debug, Clone, clap::Args)]
pub struct RecordOpts {
    /// Address to accept clients on, e.g. 127.0.0.1:9000 (port 0 picks a free port; the bound
    /// address is printed).
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// The real gateway, e.g. ws://10.0.0.5:9001/feed (ws:// only).
    #[arg(long, value_name = "URL")]
    pub upstream: String,
    /// The capture file to write (created or truncated).
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,
    /// Envelope prefix bytes on each gateway message, written to the capture header (18 for the
    /// seed client's feed, 0 for a bare JT808 stream). Recorded bytes are never altered.
    #[arg(long, default_value_t = 18)]
    pub prefix_len: usize,
    /// Free text for the capture header's "note".
    #[arg(long)]
    pub note: Option<String>,
    /// Give up connecting to the upstream after this many milliseconds (0: no limit).
    #[arg(long, default_value_t = 10_000)]
    pub connect_timeout_ms: u64,
    /// After one side sent a close frame, wait this long for the other side's close before
    /// dropping the connection (0: no limit).
    #[arg(long, default_value_t = 5_000)]
    pub close_grace_ms: u64,
    /// Records queued for the writer before the relays wait for it.
    #[arg(long, default_value_t = 4096)]
    pub queue: usize,
}

impl RecordOpts {
    /// Settings with the defaults.
    pub fn new(listen: SocketAddr, upstream: impl Into<String>, out: impl Into<PathBuf>) -> RecordOpts {
        RecordOpts {
            listen,
            upstream: upstream.into(),
            out: out.into(),
            prefix_len: 18,
            note: None,
            connect_timeout_ms: 10_000,
            close_grace_ms: 5_000,
            queue: 4096,
        }
    }
}

/// Why the recorder could not start or had to stop.
#[derive(Debug, Error)]
pub enum RecordError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The upstream URL is not a usable `ws://` URL.
    #[error("upstream {url:?}: {reason}")]
    Upstream {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The capture could not be created or written. Recording stops: a recorder that cannot record
    /// must not go on relaying as if it did.
    #[error("{path}: {source}")]
    Capture {
        /// The capture file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// What a recording session wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecordReport {
    /// The address clients connected to.
    pub listen: String,
    /// Connections opened.
    pub connections: u64,
    /// Records written.
    pub records: u64,
    /// Binary and text bytes from the gateway.
    pub bytes_gateway: u64,
    /// Binary and text bytes from the client.
    pub bytes_client: u64,
    /// Records whose offset was raised to the previous record's (see the module doc).
    pub times_raised: u64,
}

impl std::fmt::Display for RecordReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "recorded {} connections, {} records ({} bytes from the gateway, {} from clients)",
            self.connections, self.records, self.bytes_gateway, self.bytes_client
        )
    }
}

/// Binds, prints the bound address to stderr, and records until `shutdown` completes.
pub async fn run(opts: RecordOpts, shutdown: impl Future<Output = ()>) -> Result<RecordReport, RecordError> {
    let recorder = Recorder::bind(opts).await?;
    eprintln!(
        "recording: clients connect to ws://{}, relayed to {}, written to {}",
        recorder.local_addr(),
        recorder.opts.upstream,
        recorder.opts.out.display()
    );
    recorder.run(shutdown).await
}

/// A bound recorder: the listening socket and the capture file, ready to [`Recorder::run`].
#[derive(Debug)]
pub struct Recorder {
    opts: RecordOpts,
    listener: TcpListener,
    addr: SocketAddr,
    upstream: Uri,
    writer: CaptureWriter<std::fs::File>,
    start: Instant,
}

impl Recorder {
    /// Checks the upstream URL, binds the listen address and creates the capture (header written).
    /// Time zero of the capture is now.
    pub async fn bind(opts: RecordOpts) -> Result<Recorder, RecordError> {
        let upstream = parse_upstream(&opts.upstream)?;
        let listener = TcpListener::bind(opts.listen)
            .await
            .map_err(|source| RecordError::Bind {
                addr: opts.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| RecordError::Bind {
            addr: opts.listen,
            source,
        })?;
        let mut header = CaptureHeader::new(opts.prefix_len);
        header.source = Some(format!("record {}", opts.upstream));
        header.note = opts.note.clone();
        let writer = CaptureWriter::create(&opts.out, &header).map_err(|source| RecordError::Capture {
            path: opts.out.display().to_string(),
            source,
        })?;
        Ok(Recorder {
            opts,
            listener,
            addr,
            upstream,
            writer,
            start: Instant::now(),
        })
    }

    /// The bound address (the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Accepts and relays connections until `shutdown` completes, then sends close 1001 to both
    /// sides of every open connection, waits for the writer to flush, and reports.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<RecordReport, RecordError> {
        let Recorder {
            opts,
            listener,
            addr,
            upstream,
            writer,
            start,
        } = self;
        let out_name = opts.out.display().to_string();
        let (tx, rx) = mpsc::channel(opts.queue.max(1));
        let mut writer_task = tokio::spawn(write_records(writer, rx));
        let (stop_tx, stop_rx) = watch::channel(false);
        let ms = |v: u64| (v > 0).then(|| Duration::from_millis(v));
        let ctx = Arc::new(Ctx {
            start,
            tx,
            upstream,
            connect_timeout: ms(opts.connect_timeout_ms),
            close_grace: ms(opts.close_grace_ms),
            next_conn: AtomicU64::new(1),
        });
        let mut conns = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let mut writer_done = None;
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                res = &mut writer_task => {
                    writer_done = Some(res);
                    break;
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let (ctx, stop) = (ctx.clone(), stop_rx.clone());
                        conns.spawn(async move { handle(stream, peer, ctx, stop).await });
                    }
                    Err(e) => tracing::warn!("recorder: accept failed: {e}"),
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        drop(listener);
        let _ = stop_tx.send(true);
        while conns.join_next().await.is_some() {}
        drop(ctx);
        let result = match writer_done {
            Some(r) => r,
            None => writer_task.await,
        };
        let (mut report, error) = result.unwrap_or_else(|e| {
            (
                RecordReport::default(),
                Some(std::io::Error::other(format!("writer task failed: {e}"))),
            )
        });
        if let Some(source) = error {
            return Err(RecordError::Capture { path: out_name, source });
        }
        report.listen = addr.to_string();
        Ok(report)
    }
}

fn parse_upstream(url: &str) -> Result<Uri, RecordError> {
    let bad = |reason: String| RecordError::Upstream {
        url: url.to_string(),
        reason,
    };
    let uri: Uri = url.parse().map_err(|e| bad(format!("{e}")))?;
    match uri.scheme_str() {
        Some("ws") => {}
        Some("wss") => return Err(bad("wss:// is not supported (this build has no TLS); use ws://".into())),
        other => return Err(bad(format!("scheme {other:?}, expected ws://"))),
    }
    if uri.authority().is_none() {
        return Err(bad("no host".into()));
    }
    Ok(uri)
}

/// What every connection task shares.
struct Ctx {
    start: Instant,
    tx: mpsc::Sender<Record>,
    upstream: Uri,
    connect_timeout: Option<Duration>,
    close_grace: Option<Duration>,
    next_conn: AtomicU64,
}

impl Ctx {
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// Stamps and queues a record. A closed queue means the writer failed; `run` reports that.
    async fn record(&self, conn: u64, kind: RecordKind) {
        let record = Record {
            t_us: self.now_us(),
            conn,
            kind,
        };
        let _ = self.tx.send(record).await;
    }
}

/// The upstream URL for a client that asked for `path_and_query`: the upstream's own path when it
/// has one (other than `/`) or a query, else the client's.
fn upstream_url(up: &Uri, path_and_query: Option<&str>) -> String {
    let keep_own = (up.path() != "/" && !up.path().is_empty()) || up.query().is_some();
    let pq = match (keep_own, path_and_query) {
        (false, Some(pq)) if !pq.is_empty() => pq.to_string(),
        _ => up
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into()),
    };
    let authority = up.authority().map(|a| a.as_str()).unwrap_or_default();
    format!("ws://{authority}{pq}")
}

/// The writer task: the only place that touches the file. Returns its counts and the first write
/// error (after which it stops, so the relays' sends fail and `run` ends).
async fn write_records(
    mut writer: CaptureWriter<std::fs::File>,
    mut rx: mpsc::Receiver<Record>,
) -> (RecordReport, Option<std::io::Error>) {
    let mut report = RecordReport::default();
    while let Some(mut record) = rx.recv().await {
        if record.t_us < writer.last_t_us() {
            record.t_us = writer.last_t_us();
            report.times_raised += 1;
        }
        match &record.kind {
            RecordKind::Open { .. } => report.connections += 1,
            RecordKind::Message { from, payload } => {
                let n = match payload {
                    Payload::Binary(_) | Payload::Text(_) => payload.len() as u64,
                    Payload::Ping(_) | Payload::Pong(_) => 0,
                };
                match from {
                    Side::Gateway => report.bytes_gateway += n,
                    Side::Client => report.bytes_client += n,
                }
            }
            RecordKind::Close { .. } => {}
        }
        // One small write and flush per record: a killed recorder loses at most this record.
        if let Err(e) = writer.write(&record) {
            return (report, Some(e));
        }
        report.records += 1;
    }
    (report, None)
}

/// How one direction of a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The sender sent a close frame (relayed).
    CloseFrame,
    /// The sender's connection ended without a close frame, or failed.
    Dropped,
    /// The receiving side could not be written to any more.
    PeerGone,
    /// The recorder is shutting down (close 1001 sent onwards).
    Shutdown,
}

async fn handle(stream: TcpStream, peer: SocketAddr, ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let setup = async {
        let requested = Arc::new(Mutex::new(None::<String>));
        let seen = requested.clone();
        // The callback's error type is tungstenite's (an HTTP response), large by design.
        #[allow(clippy::result_large_err)]
        let callback = move |req: &Request, resp: Response| {
            if let Ok(mut slot) = seen.lock() {
                *slot = req.uri().path_and_query().map(|p| p.as_str().to_string());
            }
            Ok(resp)
        };
        let client = match tokio_tungstenite::accept_hdr_async(stream, callback).await {
            Ok(ws) => ws,
            Err(e) => {
                tracing::info!("recorder: {peer}: not a WebSocket handshake: {e}");
                return None;
            }
        };
        let conn = ctx.next_conn.fetch_add(1, Ordering::Relaxed);
        let path = requested.lock().ok().and_then(|p| p.clone());
        let url = upstream_url(&ctx.upstream, path.as_deref());
        let connect = tokio_tungstenite::connect_async(url.as_str());
        let upstream = match ctx.connect_timeout {
            Some(limit) => match tokio::time::timeout(limit, connect).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
            },
            None => connect.await.map_err(|e| e.to_string()),
        };
        ctx.record(conn, RecordKind::Open { prefix_len: None }).await;
        match upstream {
            Ok((ws, _)) => Some((conn, client, ws)),
            Err(e) => {
                tracing::warn!("recorder: conn {conn}: upstream {url}: {e}");
                let mut client = client;
                let frame = CloseFrame {
                    code: CloseCode::Error,
                    reason: "upstream unreachable".into(),
                };
                let _ = client.close(Some(frame)).await;
                let reason = Some(format!("upstream {url}: {e}"));
                ctx.record(conn, close_kind(None, Some(1011), reason)).await;
                None
            }
        }
    };
    let setup = tokio::select! {
        s = setup => s,
        _ = stop.wait_for(|s| *s) => None,
    };
    let Some((conn, client, upstream)) = setup else { return };

    let (client_tx, client_rx) = client.split();
    let (upstream_tx, upstream_rx) = upstream.split();
    let up = pump(conn, Side::Client, client_rx, upstream_tx, &ctx, stop.clone());
    let down = pump(conn, Side::Gateway, upstream_rx, client_tx, &ctx, stop.clone());
    let mut up = std::pin::pin!(up);
    let mut down = std::pin::pin!(down);
    let (first, rest_is_up) = tokio::select! {
        e = &mut up => (e, false),
        e = &mut down => (e, true),
    };
    let rest = async { if rest_is_up { up.await } else { down.await } };
    match first {
        // A clean close: let the other side answer its close (or keep sending until it does).
        Ended::CloseFrame | Ended::PeerGone => {
            let _ = match ctx.close_grace {
                Some(limit) => tokio::time::timeout(limit, rest).await.ok(),
                None => Some(rest.await),
            };
        }
        // Shutdown: the other pump saw the same signal and sent its close 1001 too.
        Ended::Shutdown => {
            rest.await;
            ctx.record(
                conn,
                close_kind(None, Some(1001), Some("recorder shutting down".into())),
            )
            .await;
        }
        // One side vanished: drop the other without a close frame, as the original peer would.
        Ended::Dropped => {}
    }
}

fn close_kind(from: Option<Side>, code: Option<u16>, reason: Option<String>) -> RecordKind {
    RecordKind::Close { from, code, reason }
}

/// Relays messages from `from`'s stream to the other side's sink, recording each.
async fn pump<S, K>(conn: u64, from: Side, mut rx: S, mut tx: K, ctx: &Ctx, mut stop: watch::Receiver<bool>) -> Ended
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
    K: Sink<Message, Error = WsError> + Unpin,
{
    loop {
        let next = tokio::select! {
            m = rx.next() => Some(m),
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(next) = next else {
            let frame = CloseFrame {
                code: CloseCode::Away,
                reason: "recorder shutting down".into(),
            };
            let _ = tx.send(Message::Close(Some(frame))).await;
            return Ended::Shutdown;
        };
        let msg = match next {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                ctx.record(conn, close_kind(Some(from), None, Some(e.to_string())))
                    .await;
                return Ended::Dropped;
            }
            None => {
                ctx.record(
                    conn,
                    close_kind(Some(from), None, Some("ended without a close frame".into())),
                )
                .await;
                return Ended::Dropped;
            }
        };
        let kind = |payload| RecordKind::Message { from, payload };
        let record = match &msg {
            Message::Binary(b) => kind(Payload::Binary(b.to_vec())),
            Message::Text(t) => kind(Payload::Text(t.as_str().to_string())),
            Message::Ping(b) => kind(Payload::Ping(b.to_vec())),
            Message::Pong(b) => kind(Payload::Pong(b.to_vec())),
            Message::Close(frame) => {
                let code = frame.as_ref().map(|f| u16::from(f.code));
                let reason = frame
                    .as_ref()
                    .map(|f| f.reason.as_str().to_string())
                    .filter(|r| !r.is_empty());
                close_kind(Some(from), code, reason)
            }
            // tungstenite never yields raw frames when reading.
            Message::Frame(_) => continue,
        };
        let is_close = matches!(msg, Message::Close(_));
        ctx.record(conn, record).await;
        if is_close {
            let _ = tx.send(msg).await;
            // Reading on makes tungstenite flush its automatic close reply to the sender, and ends
            // when the sender's side is done (no data frame may follow a close, RFC 6455 §5.5.1).
            let drain = async { while let Some(Ok(_)) = rx.next().await {} };
            let drain = async {
                match ctx.close_grace {
                    Some(limit) => {
                        let _ = tokio::time::timeout(limit, drain).await;
                    }
                    None => drain.await,
                }
            };
            tokio::select! {
                _ = drain => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            return Ended::CloseFrame;
        }
        if tx.send(msg).await.is_err() {
            return Ended::PeerGone;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_path_is_used_only_when_the_upstream_has_none() {
        let bare: Uri = "ws://10.0.0.5:9001".parse().unwrap();
        let slash: Uri = "ws://10.0.0.5:9001/".parse().unwrap();
        let own: Uri = "ws://10.0.0.5:9001/feed?k=1".parse().unwrap();
        assert_eq!(
            upstream_url(&bare, Some("/live?sim=1")),
            "ws://10.0.0.5:9001/live?sim=1"
        );
        assert_eq!(upstream_url(&slash, Some("/live")), "ws://10.0.0.5:9001/live");
        assert_eq!(upstream_url(&slash, None), "ws://10.0.0.5:9001/");
        assert_eq!(upstream_url(&own, Some("/live")), "ws://10.0.0.5:9001/feed?k=1");
    }
}
