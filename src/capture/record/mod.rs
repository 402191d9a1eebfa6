//! The recording proxy: a WebSocket server between a real platform client and a real terminal
//! gateway that relays every message both ways untouched and writes it to a capture.
//!
//! ```text
//!  client ══ws══► recorder (--listen) ══ws══► gateway (--upstream)
//!                    │ each record written before its message is relayed
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
//! Every record is on disk before the message it describes is relayed ([`journal`]): a recorder
//! killed at any moment has written every message a peer received through it, except at most the
//! one in flight. The envelope prefix is found from the gateway messages (`--prefix-len auto`, the
//! default) and stated in the header; a given length is checked against the bytes and a
//! disagreement warned about.
//!
//! Limits, each a named setting reported when hit: [`RecordOpts::handshake_timeout_ms`] (a client
//! that never finishes its handshake is dropped; one that sends something else than a handshake
//! is dropped at once and counted too), [`RecordOpts::max_connections`] (more get HTTP
//! 503) and [`RecordOpts::max_message_size`] (a larger message ends its connection, recorded as a
//! close with the reason).

mod journal;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::Serialize;
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use self::journal::Journal;
use super::format::{CaptureHeader, CaptureWriter, Payload, RecordKind, Side};

/// How the capture header's `prefix_len` is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixSetting {
    /// Found from the gateway messages (see [`crate::capture::prefix`]).
    Auto,
    /// As given, checked against the bytes (a disagreement is warned about, the value kept).
    Fixed(usize),
}

impl PrefixSetting {
    /// What the header says before any evidence: the given length, or 0.
    pub fn initial(self) -> usize {
        match self {
            PrefixSetting::Auto => 0,
            PrefixSetting::Fixed(n) => n,
        }
    }
}

impl FromStr for PrefixSetting {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(PrefixSetting::Auto);
        }
        match s.parse::<u16>() {
            Ok(n) => Ok(PrefixSetting::Fixed(n.into())),
            Err(_) => Err(format!("{s:?}: expected `auto` or a byte count from 0 to 65535")),
        }
    }
}

impl std::fmt::Display for PrefixSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrefixSetting::Auto => f.write_str("auto"),
            PrefixSetting::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// Recording proxy settings (the `record` command: `crate::cli::record`). Durations in ms.
#[derive(Debug, Clone)]
pub struct RecordOpts {
    /// Address to accept clients on, e.g. 127.0.0.1:9000 (port 0 picks a free port; the bound
    /// address is printed).
    pub listen: SocketAddr,
    /// The real gateway, e.g. ws://10.0.0.5:9001/feed (ws:// only).
    pub upstream: String,
    /// The capture file to write (created or truncated).
    pub out: PathBuf,
    /// Envelope prefix bytes on each gateway message, for the capture header: `auto` finds it
    /// from the first gateway messages (18 for the seed client's feed, 0 for a bare JT808 stream);
    /// a number is written as given and checked against the bytes (a disagreement is warned
    /// about). Recorded bytes are never altered.
    pub prefix_len: PrefixSetting,
    /// Gateway messages the prefix is found from (the header may be restated until then; 0: no
    /// probe, the header keeps the initial value).
    pub prefix_probe_messages: u64,
    /// Longest time (ms, from the first gateway message) the prefix is still being found.
    pub prefix_probe_ms: u64,
    /// Free text for the capture header's "note".
    pub note: Option<String>,
    /// Give up connecting to the upstream after this many milliseconds (0: no limit).
    pub connect_timeout_ms: u64,
    /// After one side sent a close frame, wait this long for the other side's close before
    /// dropping the connection (0: no limit).
    pub close_grace_ms: u64,
    /// A client that has not finished its WebSocket handshake by then is dropped (0: no limit).
    pub handshake_timeout_ms: u64,
    /// Most client connections relayed at once; more are answered HTTP 503.
    pub max_connections: u64,
    /// Largest WebSocket message (and frame) either side may send, in bytes; a larger one ends
    /// its connection (recorded as a close with the reason).
    pub max_message_size: u64,
}

impl RecordOpts {
    /// Settings with the defaults.
    pub fn new(listen: SocketAddr, upstream: impl Into<String>, out: impl Into<PathBuf>) -> RecordOpts {
        RecordOpts {
            listen,
            upstream: upstream.into(),
            out: out.into(),
            prefix_len: PrefixSetting::Auto,
            prefix_probe_messages: 64,
            prefix_probe_ms: 10_000,
            note: None,
            connect_timeout_ms: 10_000,
            close_grace_ms: 5_000,
            handshake_timeout_ms: 10_000,
            max_connections: 1024,
            max_message_size: 16 << 20,
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
    /// The header's final `prefix_len`.
    pub prefix_len: usize,
    /// Gateway messages the prefix was judged on.
    pub prefix_probed: u64,
    /// Why a given `--prefix-len` looks wrong, when it does.
    pub prefix_warning: Option<String>,
    /// Clients dropped for not finishing their handshake in time.
    pub handshakes_timed_out: u64,
    /// Clients dropped for sending something that is not a WebSocket handshake (garbage, a bad
    /// request, a closed socket mid-request).
    pub handshakes_failed: u64,
    /// Clients answered 503 because `max_connections` were open.
    pub connections_refused: u64,
    /// Connections ended by a message over `max_message_size`.
    pub messages_too_large: u64,
}

impl std::fmt::Display for RecordReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "recorded {} connections, {} records ({} bytes from the gateway, {} from clients); prefix_len {} \
             (judged on {} gateway messages)",
            self.connections, self.records, self.bytes_gateway, self.bytes_client, self.prefix_len, self.prefix_probed
        )?;
        for (n, what) in [
            (
                self.handshakes_timed_out,
                "handshakes timed out (--handshake-timeout-ms)",
            ),
            (self.handshakes_failed, "handshakes failed (not a WebSocket handshake)"),
            (
                self.connections_refused,
                "connections refused with 503 (--max-connections)",
            ),
            (
                self.messages_too_large,
                "connections ended by a message over --max-message-size",
            ),
        ] {
            if n > 0 {
                write!(f, "\n  {n} {what}")?;
            }
        }
        if let Some(w) = &self.prefix_warning {
            write!(f, "\n  warning: {w}")?;
        }
        Ok(())
    }
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
        let mut header = CaptureHeader::new(opts.prefix_len.initial());
        header.source = Some(format!("record {}", opts.upstream));
        header.note = opts.note.clone();
        let capture_error = |source| RecordError::Capture {
            path: opts.out.display().to_string(),
            source,
        };
        let file = std::fs::File::create(&opts.out).map_err(capture_error)?;
        let writer = CaptureWriter::with_restatable_prefix(file, &header).map_err(capture_error)?;
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

    /// Accepts and relays connections until `shutdown` completes (or the capture cannot be
    /// written), then sends close 1001 to both sides of every open connection and reports.
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
        let (stop_tx, stop_rx) = watch::channel(false);
        let ms = |v: u64| (v > 0).then(|| Duration::from_millis(v));
        let size = usize::try_from(opts.max_message_size).unwrap_or(usize::MAX);
        let ctx = Arc::new(Ctx {
            journal: Mutex::new(Journal::new(writer, start, &opts)),
            broken: Notify::new(),
            upstream,
            connect_timeout: ms(opts.connect_timeout_ms),
            close_grace: ms(opts.close_grace_ms),
            handshake_timeout: ms(opts.handshake_timeout_ms),
            ws_config: WebSocketConfig::default()
                .max_message_size(Some(size))
                .max_frame_size(Some(size)),
            next_conn: AtomicU64::new(1),
        });
        let slots = Arc::new(Semaphore::new(
            usize::try_from(opts.max_connections).unwrap_or(usize::MAX),
        ));
        let mut conns = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = ctx.broken.notified() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => match slots.clone().try_acquire_owned() {
                        Ok(slot) => {
                            let (ctx, stop) = (ctx.clone(), stop_rx.clone());
                            conns.spawn(async move { handle(stream, peer, ctx, stop, slot).await });
                        }
                        Err(_) => {
                            ctx.journal().report.connections_refused += 1;
                            tracing::warn!("recorder: {peer} refused: {} connections open (--max-connections)", opts.max_connections);
                            conns.spawn(refuse(stream));
                        }
                    },
                    Err(e) => tracing::warn!("recorder: accept failed: {e}"),
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        drop(listener);
        let _ = stop_tx.send(true);
        while conns.join_next().await.is_some() {}
        let mut journal = ctx.journal();
        journal.close_probe();
        if let Some(source) = journal.failed.take() {
            return Err(RecordError::Capture { path: out_name, source });
        }
        let mut report = journal.report.clone();
        report.listen = addr.to_string();
        Ok(report)
    }
}

/// Answers a client over `max_connections` with HTTP 503 and closes.
async fn refuse(mut stream: TcpStream) {
    let answer = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let _ = stream.write_all(answer).await;
    let _ = stream.shutdown().await;
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
    journal: Mutex<Journal>,
    /// Woken when the capture cannot be written: recording stops.
    broken: Notify,
    upstream: Uri,
    connect_timeout: Option<Duration>,
    close_grace: Option<Duration>,
    handshake_timeout: Option<Duration>,
    ws_config: WebSocketConfig,
    next_conn: AtomicU64,
}

impl Ctx {
    fn journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        // A relay that panicked mid-write leaves the journal as it was: still usable.
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stamps and writes a record; returns once it is on disk. An error means the capture is
    /// broken: the caller must not relay what the record describes, and recording stops.
    fn record(&self, conn: u64, kind: RecordKind) -> Result<(), ()> {
        let result = self.journal().record(conn, kind);
        result.map_err(|e| {
            tracing::error!("recorder: capture write failed: {e}");
            self.broken.notify_one();
        })
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

type ClientWs = tokio_tungstenite::WebSocketStream<TcpStream>;
type UpstreamWs = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// One client connection: handshake, upstream, then both relays. `_slot` is its place under
/// `max_connections`, given back when it ends.
async fn handle(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Ctx>,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let setup = async {
        let (client, path) = accept_client(stream, peer, &ctx).await?;
        let conn = ctx.next_conn.fetch_add(1, Ordering::Relaxed);
        let url = upstream_url(&ctx.upstream, path.as_deref());
        let upstream = connect_upstream(&ctx, &url).await;
        ctx.record(conn, RecordKind::Open { prefix_len: None }).ok()?;
        match upstream {
            Ok(ws) => Some((conn, client, ws)),
            Err(e) => {
                tracing::warn!("recorder: conn {conn}: upstream {url}: {e}");
                let mut client = client;
                let frame = CloseFrame {
                    code: CloseCode::Error,
                    reason: "upstream unreachable".into(),
                };
                let _ = client.close(Some(frame)).await;
                let reason = Some(format!("upstream {url}: {e}"));
                let _ = ctx.record(conn, close_kind(None, Some(1011), reason));
                None
            }
        }
    };
    let setup = tokio::select! {
        s = setup => s,
        _ = stop.wait_for(|s| *s) => None,
    };
    let Some((conn, client, upstream)) = setup else { return };
    relay(conn, client, upstream, &ctx, stop).await;
}

/// The client's WebSocket handshake, within `handshake_timeout`; its request path and query.
async fn accept_client(stream: TcpStream, peer: SocketAddr, ctx: &Ctx) -> Option<(ClientWs, Option<String>)> {
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
    let accept = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ctx.ws_config));
    let accepted = match ctx.handshake_timeout {
        Some(limit) => match tokio::time::timeout(limit, accept).await {
            Ok(r) => r,
            Err(_) => {
                ctx.journal().report.handshakes_timed_out += 1;
                tracing::warn!(
                    "recorder: {peer}: no WebSocket handshake within {} ms, dropped (--handshake-timeout-ms)",
                    limit.as_millis()
                );
                return None;
            }
        },
        None => accept.await,
    };
    match accepted {
        Ok(ws) => Some((ws, requested.lock().ok().and_then(|p| p.clone()))),
        Err(e) => {
            // Counted and warned like a timeout: under the default `warn` filter an info line
            // would leave a peer sending garbage nowhere in the output.
            ctx.journal().report.handshakes_failed += 1;
            tracing::warn!("recorder: {peer}: not a WebSocket handshake, dropped: {e}");
            None
        }
    }
}

async fn connect_upstream(ctx: &Ctx, url: &str) -> Result<UpstreamWs, String> {
    let connect = tokio_tungstenite::connect_async_with_config(url, Some(ctx.ws_config), false);
    let connected = match ctx.connect_timeout {
        Some(limit) => match tokio::time::timeout(limit, connect).await {
            Ok(r) => r,
            Err(_) => return Err(format!("no answer within {} ms", limit.as_millis())),
        },
        None => connect.await,
    };
    connected.map(|(ws, _)| ws).map_err(|e| e.to_string())
}

/// Both directions of one connection, until one ends and the other has had its chance to.
async fn relay(conn: u64, client: ClientWs, upstream: UpstreamWs, ctx: &Ctx, stop: watch::Receiver<bool>) {
    let (client_tx, client_rx) = client.split();
    let (upstream_tx, upstream_rx) = upstream.split();
    let up = pump(conn, Side::Client, client_rx, upstream_tx, ctx, stop.clone());
    let down = pump(conn, Side::Gateway, upstream_rx, client_tx, ctx, stop);
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
            let reason = Some("recorder shutting down".into());
            let _ = ctx.record(conn, close_kind(None, Some(1001), reason));
        }
        // One side vanished (or the capture broke): drop the other without a close frame, as
        // the original peer would have seen it.
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
                if matches!(e, WsError::Capacity(_)) {
                    ctx.journal().report.messages_too_large += 1;
                    tracing::warn!("recorder: conn {conn}: {from} sent {e} (--max-message-size), connection dropped");
                }
                let _ = ctx.record(conn, close_kind(Some(from), None, Some(e.to_string())));
                return Ended::Dropped;
            }
            None => {
                let reason = Some("ended without a close frame".into());
                let _ = ctx.record(conn, close_kind(Some(from), None, reason));
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
        // On disk first: only a recorded message is relayed.
        if ctx.record(conn, record).is_err() {
            return Ended::Dropped;
        }
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
