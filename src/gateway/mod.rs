//! The simulated terminal gateway: a WebSocket server that plays the terminals (and the gateway in
//! front of them). It serves a [`Feed`] through the fault [`Pipeline`] and answers the client's
//! commands the way a terminal would; every decision goes to the gateway log, so a transcript shows
//! cause beside effect.
//!
//! Sessions: a client is identified by the request path of its handshake (`ws://host/` is session
//! `/`). A session outlives connections: its feed resumes where the last connection stopped and its
//! fault counters keep counting, so "disconnect at the 5th message" happens once, and nothing is
//! lost to a reconnect except what a fault destroyed or what was in flight.
//!
//! Tokio lives here (and in `transport`, `client`, the runner); the feed, the faults and the codec
//! are sans-IO and get `now` passed in.

pub mod cli;
pub mod converse;
pub mod feed;
pub mod fleet;
pub mod replay;
mod session;
pub mod source;
pub mod terminal;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message as WsMessage, http};

use crate::codec::deframer::{Deframer, Item};
use crate::codec::{DecodeEvent, Decoder, Message};
use crate::faults::{Action, ConnectDecision, Direction, FaultRecord, FaultSpec, FaultSpecError, Pipeline};
use crate::transport::{BoxIo, Listener};

pub use feed::{Feed, FeedItem, ListFeed};

use session::{ClaimError, FeedFactory, Session, Sessions};

/// Gateway settings.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Bytes of envelope before the JT808 bytes of every message to the client (the seed's gateway
    /// uses 18). Default 0.
    pub prefix_len: usize,
    /// A client that has not finished its WebSocket handshake by then is dropped. Default 10 s.
    pub handshake_timeout_ms: u64,
    /// Most connections open at once; more wait in the accept queue. Default 20,000.
    pub max_connections: usize,
    /// tungstenite read buffer per connection. tungstenite's default allocates 128 KiB per
    /// connection; 4 KiB keeps thousands of idle connections cheap. Default 4096.
    pub read_buffer: usize,
    /// tungstenite write buffer threshold; 0 writes every message at once. Default 0.
    pub write_buffer: usize,
    /// Largest WebSocket message a client may send, bytes (tungstenite's `max_message_size`):
    /// a peer sending endless continuation frames is cut off here instead of growing a buffer.
    /// Clients send commands and answers of a few hundred bytes. Default 65,536.
    pub max_message_size: usize,
    /// Largest single WebSocket frame a client may send, bytes (tungstenite's `max_frame_size`):
    /// a frame header declaring gigabytes is refused before any of it is buffered. Default 65,536.
    pub max_frame_size: usize,
    /// A session no connection holds is forgotten after this long, ms; a client reconnecting
    /// within it resumes its feed. Far above any client backoff (the client's default maximum is
    /// seconds). Default 600,000 (10 min).
    pub session_idle_ms: u64,
    /// Most sessions (distinct request paths) held at once; a handshake that would create one
    /// more is refused with HTTP 503 and logged. A shared gateway serves 40,000 clients, one
    /// session each. Default 100,000.
    pub max_sessions: usize,
    /// What goes to the gateway log. Default `full`.
    pub log: LogLevel,
    /// Seed of every random choice of the faults.
    pub seed: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            prefix_len: 0,
            handshake_timeout_ms: 10_000,
            max_connections: 20_000,
            read_buffer: 4096,
            write_buffer: 0,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            session_idle_ms: DEFAULT_SESSION_IDLE_MS,
            max_sessions: DEFAULT_MAX_SESSIONS,
            log: LogLevel::Full,
            seed: 0,
        }
    }
}

/// Default [`GatewayConfig::max_message_size`].
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024;
/// Default [`GatewayConfig::max_frame_size`].
pub const DEFAULT_MAX_FRAME_SIZE: usize = 64 * 1024;
/// Default [`GatewayConfig::session_idle_ms`]: 10 minutes.
pub const DEFAULT_SESSION_IDLE_MS: u64 = 600_000;
/// Default [`GatewayConfig::max_sessions`].
pub const DEFAULT_MAX_SESSIONS: usize = 100_000;

/// How much the gateway logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Connections, every message offered and received, every fault decision.
    Full,
    /// Connections and fault decisions only (stress runs).
    Faults,
    /// Nothing.
    Off,
}

/// Who closed a connection, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum Closed {
    /// The client sent a close frame.
    ClientClose {
        /// Close code.
        code: Option<u16>,
    },
    /// The client's stream ended without a close frame, or failed.
    ClientGone {
        /// What the stream said.
        why: String,
    },
    /// A fault closed it cleanly.
    GatewayClose {
        /// Close code.
        code: u16,
    },
    /// A fault dropped it without a close frame.
    GatewayAbort,
    /// The replayed capture's connection ended here ([`replay::ReplayOptions::keep_connections`]):
    /// closed with the recorded code, or dropped when the recording shows none.
    Recorded {
        /// Close code sent.
        code: Option<u16>,
    },
    /// A newer connection of the same session replaced it (a stalled connection the client gave up).
    Superseded,
    /// A storm (stress) dropped it.
    Storm {
        /// close, abort or stall.
        mode: String,
    },
    /// The gateway shut down.
    Shutdown,
}

/// One line of the gateway log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GatewayRecord {
    /// Virtual time since the gateway started, µs.
    pub t_us: u64,
    /// Connection id (1, 2, ... in accept order).
    pub conn: u64,
    /// Causal order stamp ([`crate::transcript::next_seq`]); not serialised.
    #[serde(skip)]
    pub seq: u64,
    /// What happened.
    #[serde(flatten)]
    pub event: GatewayEvent,
}

/// What the gateway logs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GatewayEvent {
    /// A handshake completed.
    Accepted {
        /// Session (request path).
        session: String,
    },
    /// The handshake was refused: by a `refuse` fault (no reason: the fault record says it), or
    /// by a limit (the reason names it).
    Refused {
        /// HTTP status sent.
        status: u16,
        /// Why, when no fault decided it.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A session no connection held for [`GatewayConfig::session_idle_ms`] was forgotten: a
    /// client connecting on its path again starts a new feed.
    SessionExpired {
        /// Session (request path).
        session: String,
        /// How long it had been idle, ms.
        idle_ms: u64,
    },
    /// The handshake failed or timed out.
    HandshakeFailed {
        /// Why.
        why: String,
    },
    /// A connection ended.
    Closed(Closed),
    /// A feed or reply message entered the fault pipeline towards the client.
    Offered {
        /// Message index in the session (1-based).
        index: u64,
        /// The frames in it: `0x0200 13800000001 #5` (`[i/n]` for a packet).
        frames: Vec<String>,
    },
    /// A fault decision. Serialised without the record's own `t_us` and `conn`: the
    /// [`GatewayRecord`] around it carries them, and a log line must not repeat a key.
    #[serde(serialize_with = "fault_fields")]
    Fault(FaultRecord),
    /// A message the client sent, as the terminal decoded it.
    Received {
        /// The message.
        message: Message,
    },
    /// Bytes from the client that were not a valid frame.
    ReceivedRejected {
        /// Why.
        error: String,
    },
    /// Messages scheduled for the client that were still in flight when the connection ended.
    LostInFlight {
        /// How many WebSocket messages.
        messages: usize,
        /// How many bytes.
        bytes: usize,
        /// The frames in them.
        frames: Vec<String>,
    },
}

/// A [`FaultRecord`]'s fields but its time and connection, which its [`GatewayRecord`] holds.
#[derive(Serialize)]
struct FaultFields<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    dir: Option<Direction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    msg: Option<u64>,
    fault: &'a str,
    what: crate::faults::Outcome,
    #[serde(skip_serializing_if = "<[usize]>::is_empty")]
    offsets: &'a [usize],
    detail: &'a str,
}

fn fault_fields<S: serde::Serializer>(r: &FaultRecord, s: S) -> Result<S::Ok, S::Error> {
    FaultFields {
        dir: r.dir,
        msg: r.msg,
        fault: &r.fault,
        what: r.what,
        offsets: &r.offsets,
        detail: &r.detail,
    }
    .serialize(s)
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A fault specification is wrong.
    #[error(transparent)]
    Fault(#[from] FaultSpecError),
}

/// Orders sent to live connections from outside (stress storms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnCommand {
    /// Close cleanly (1001 going away).
    Close,
    /// Drop without a close frame.
    Abort,
    /// Go silent, socket open, until the client gives up.
    Stall,
}

/// Most feed items one connection takes out of its session before writing them. A feed with
/// everything due at once (a capture replayed at speed 0) is then served in bursts, each written
/// (with the socket's backpressure) before the next is taken, instead of being pulled whole into
/// memory under the session lock. Nothing is dropped: the rest is still due and goes next round.
const MAX_BURST: usize = 256;

/// The session a handshake picked: its key and state.
type Chosen = (String, Arc<Mutex<Session>>);

/// A live connection's session key and command channel.
type LiveConn = (Arc<str>, mpsc::UnboundedSender<ConnCommand>);

struct Inner {
    cfg: GatewayConfig,
    faults: Vec<FaultSpec>,
    start: Instant,
    feeds: Box<FeedFactory>,
    sessions: Mutex<Sessions>,
    /// A session became idle: the sweeper may have a nearer expiry to wait for.
    released: Notify,
    log: Mutex<Vec<GatewayRecord>>,
    next_conn: AtomicU64,
    /// Live connections: their session key and their command channel.
    live: Mutex<BTreeMap<u64, LiveConn>>,
    limit: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
}

impl Inner {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn log(&self, conn: u64, event: GatewayEvent) {
        let keep = match self.cfg.log {
            LogLevel::Full => true,
            LogLevel::Faults => !matches!(
                event,
                GatewayEvent::Offered { .. } | GatewayEvent::Received { .. } | GatewayEvent::ReceivedRejected { .. }
            ),
            LogLevel::Off => false,
        };
        if keep {
            let t_us = self.now().as_micros() as u64;
            self.log.lock().expect("log lock").push(GatewayRecord {
                t_us,
                conn,
                seq: crate::transcript::next_seq(),
                event,
            });
        }
    }

    /// The session a handshake on `key` gets and the fault pipeline's decision on it; an
    /// accepted handshake holds the session until [`Inner::release`]. The pipeline's decisions
    /// (a `refuse` fault's record) are logged now, as the handshake happens.
    fn claim(&self, key: &str, conn: u64) -> Result<(Arc<Mutex<Session>>, ConnectDecision), ClaimError> {
        let now = self.now();
        let mut sessions = self.sessions.lock().expect("sessions lock");
        let session = sessions.get_or_create(key, now, self.cfg.max_sessions, || {
            // Each session's faults get their own seed derived from the gateway seed and the
            // session key, so a fleet of sessions is as reproducible as one (salted: the faults
            // must not draw the same numbers as the session's feed).
            let seed = source::session_seed(self.cfg.seed ^ 0x6661_756c_7473, key);
            Pipeline::new(&self.faults, seed, self.cfg.prefix_len).map_err(|e| e.to_string())
        })?;
        let decision = {
            let mut s = session.lock().expect("session lock");
            let decision = s.pipeline.on_connect(conn, now);
            for r in s.pipeline.take_log() {
                self.log(conn, GatewayEvent::Fault(r));
            }
            if decision == ConnectDecision::Accept {
                sessions.hold(&mut s);
            }
            decision
        };
        Ok((session, decision))
    }

    /// A connection that held `session` ended: the last one starts its expiry clock.
    fn release(&self, session: &Mutex<Session>) {
        let now = self.now();
        let mut sessions = self.sessions.lock().expect("sessions lock");
        sessions.release(&mut session.lock().expect("session lock"), now);
        drop(sessions);
        self.released.notify_one();
    }

    /// Forgets the sessions idle for [`GatewayConfig::session_idle_ms`] until shutdown, logging
    /// each; sleeps until the next one is due (a release may bring one nearer).
    async fn sweep_sessions(&self) {
        let idle = Duration::from_millis(self.cfg.session_idle_ms);
        let mut shutdown = self.shutdown.clone();
        loop {
            let (gone, next) = {
                let mut sessions = self.sessions.lock().expect("sessions lock");
                (sessions.expire(self.now(), idle), sessions.next_expiry(idle))
            };
            for (key, for_) in gone {
                self.log(
                    0,
                    GatewayEvent::SessionExpired {
                        session: key.to_string(),
                        idle_ms: for_.as_millis() as u64,
                    },
                );
            }
            let wake = async {
                match next {
                    Some(t) => tokio::time::sleep_until(self.start + t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = wake => {}
                _ = self.released.notified() => {}
                _ = stopped(&mut shutdown) => return,
            }
        }
    }

    fn envelope(&self, index: u64) -> Vec<u8> {
        // A recognisable envelope: "ENV", the message index, zero padding. A client that forgets to
        // skip it sees garbage bytes before the first frame.
        let mut e = Vec::with_capacity(self.cfg.prefix_len);
        e.extend_from_slice(b"ENV");
        e.extend_from_slice(&index.to_be_bytes());
        e.resize(self.cfg.prefix_len, 0);
        e.truncate(self.cfg.prefix_len);
        e
    }
}

/// Resolves once the shutdown flag is set (or its sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Short descriptions of the frames in a message, for the log: `0x0200 13800000001 #5`, with
/// `[i/n]` for a packet.
pub fn describe_frames(bytes: &[u8]) -> Vec<String> {
    let mut d = Deframer::default();
    let mut out = describe_stream(&mut d, bytes);
    d.finish(|it| out.push(describe_item(it)));
    out
}

/// Like [`describe_frames`], continuing a stream: a frame split across feed items is described
/// with the item that completes it, as the client will see it.
pub fn describe_stream(d: &mut Deframer, bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    d.push(bytes, |it| out.push(describe_item(it)));
    out
}

fn describe_item(it: Item<'_>) -> String {
    match it {
        Item::Frame(f) => {
            let h = &f.header;
            let mut s = format!("0x{:04X} {} #{}", h.msg_id, h.phone, h.serial);
            if let Some(p) = h.packet {
                s.push_str(&format!(" [{}/{}]", p.index, p.total));
            }
            s
        }
        Item::Rejected(e) => format!("bad frame ({})", e.check()),
        Item::Skipped { len, .. } => format!("{len} bytes outside frames"),
        Item::UnescapedFlag { at, .. } => format!("unescaped 0x7E at byte {at} taken as data"),
    }
}

/// A running gateway. Cheap to clone; dropping it does not stop it (use the shutdown sender).
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("cfg", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway serving the feed `feeds(session)` through `faults`. Stop it by sending `true` on the
    /// watch channel whose receiver is `shutdown`.
    pub fn new(
        cfg: GatewayConfig,
        faults: Vec<FaultSpec>,
        feeds: impl Fn(&str) -> Box<dyn Feed> + Send + Sync + 'static,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Gateway, GatewayError> {
        // Validate the fault specs once up front so a bad spec fails at start, not at first connect.
        Pipeline::new(&faults, cfg.seed, cfg.prefix_len)?;
        let limit = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
        Ok(Gateway {
            inner: Arc::new(Inner {
                cfg,
                faults,
                start: Instant::now(),
                feeds: Box::new(feeds),
                sessions: Mutex::new(Sessions::default()),
                released: Notify::new(),
                log: Mutex::new(Vec::new()),
                next_conn: AtomicU64::new(1),
                live: Mutex::new(BTreeMap::new()),
                limit,
                shutdown,
            }),
        })
    }

    /// Accepts connections until shutdown (or until an in-memory network is dropped).
    /// Sessions are swept for expiry meanwhile.
    pub async fn serve(&self, listener: Listener) {
        tokio::select! {
            _ = self.inner.sweep_sessions() => {}
            _ = self.accept_loop(listener) => {}
        }
    }

    async fn accept_loop(&self, mut listener: Listener) {
        let mut shutdown = self.inner.shutdown.clone();
        loop {
            let permit = tokio::select! {
                p = self.inner.limit.clone().acquire_owned() => p.expect("semaphore never closed"),
                _ = stopped(&mut shutdown) => return,
            };
            let io = tokio::select! {
                io = listener.accept() => io,
                _ = stopped(&mut shutdown) => return,
            };
            let io = match io {
                None => return,
                Some(Err(e)) => {
                    tracing::warn!("accept failed: {e}");
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                Some(Ok(io)) => io,
            };
            let conn = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
            let inner = self.inner.clone();
            tokio::spawn(async move {
                handle(inner, io, conn).await;
                drop(permit);
            });
        }
    }

    /// The log so far (a copy).
    pub fn log(&self) -> Vec<GatewayRecord> {
        self.inner.log.lock().expect("log lock").clone()
    }

    /// Takes the log so far.
    pub fn take_log(&self) -> Vec<GatewayRecord> {
        std::mem::take(&mut *self.inner.log.lock().expect("log lock"))
    }

    /// Connections open now, in id order.
    pub fn live_connections(&self) -> Vec<u64> {
        self.inner.live.lock().expect("live lock").keys().copied().collect()
    }

    /// Connections open now with their session (request path), in id order: how a stress run maps
    /// the connections it drops to its clients.
    pub fn live_sessions(&self) -> Vec<(u64, Arc<str>)> {
        self.inner
            .live
            .lock()
            .expect("live lock")
            .iter()
            .map(|(conn, (session, _))| (*conn, session.clone()))
            .collect()
    }

    /// Orders one live connection to close, abort or stall. False if it is gone.
    pub fn command(&self, conn: u64, cmd: ConnCommand) -> bool {
        self.inner
            .live
            .lock()
            .expect("live lock")
            .get(&conn)
            .is_some_and(|(_, tx)| tx.send(cmd).is_ok())
    }

    /// True when every session's feed is exhausted and no terminal reply is waiting: nothing more
    /// will be offered unless the client sends something.
    pub fn idle(&self) -> bool {
        let sessions = self.inner.sessions.lock().expect("sessions lock").all();
        sessions.iter().all(|s| {
            let mut s = s.lock().expect("session lock");
            s.peek_due(&*self.inner.feeds).is_none()
        })
    }

    /// How many sessions exist (held by a connection or idle and not yet expired).
    pub fn sessions(&self) -> usize {
        self.inner.sessions.lock().expect("sessions lock").len()
    }

    /// Virtual time since start.
    pub fn now(&self) -> Duration {
        self.inner.now()
    }
}

/// Everything scheduled on one connection.
#[derive(Default)]
struct ConnState {
    /// Bytes for the client by (time, seq).
    outs: BTreeMap<(Duration, u64), Vec<u8>>,
    /// Bytes from the client for the terminal by (time, seq).
    ins: BTreeMap<(Duration, u64), Vec<u8>>,
    seq: u64,
    /// Some(until) while stalled.
    stalled: Option<Option<Duration>>,
    /// A close/abort decided by a fault and when, carried out after the sends due before it.
    ending: Option<(Duration, Closed)>,
}

impl ConnState {
    fn apply(&mut self, actions: Vec<Action>) {
        for a in actions {
            self.seq += 1;
            match a {
                Action::Send {
                    dir: Direction::ToClient,
                    at,
                    bytes,
                } => {
                    self.outs.insert((at, self.seq), bytes);
                }
                Action::Send {
                    dir: Direction::ToGateway,
                    at,
                    bytes,
                } => {
                    self.ins.insert((at, self.seq), bytes);
                }
                Action::Close { code, at, .. } => {
                    self.ending.get_or_insert((at, Closed::GatewayClose { code }));
                }
                Action::Abort { at } => {
                    self.ending.get_or_insert((at, Closed::GatewayAbort));
                }
                Action::Stall { until } => self.stalled = Some(until),
            }
        }
    }
}

/// A refused handshake: the HTTP status, and the reason when a limit (not a fault) refused it.
type Refusal = (u16, Option<String>);

/// The WebSocket of an accepted connection.
type Ws = tokio_tungstenite::WebSocketStream<BoxIo>;

/// Runs the handshake of connection `conn`: on success the WebSocket, the session key and the
/// session it holds. Every failure and refusal is logged here, as it happens.
async fn handshake(inner: &Arc<Inner>, io: BoxIo, conn: u64) -> Option<(Ws, String, Arc<Mutex<Session>>)> {
    let ws_cfg = WebSocketConfig::default()
        .read_buffer_size(inner.cfg.read_buffer)
        .write_buffer_size(inner.cfg.write_buffer)
        .max_message_size(Some(inner.cfg.max_message_size))
        .max_frame_size(Some(inner.cfg.max_frame_size));
    let chosen: Arc<Mutex<Option<Chosen>>> = Arc::default();
    let refused: Arc<Mutex<Option<Refusal>>> = Arc::default();
    let callback = {
        let inner = inner.clone();
        let chosen = chosen.clone();
        let refused = refused.clone();
        // tungstenite's callback signature fixes the error type; it is built once per refused handshake.
        #[allow(clippy::result_large_err)]
        move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
            let key = req.uri().path().to_string();
            let refuse = |status: http::StatusCode, reason: String, logged: Option<String>| {
                *refused.lock().expect("lock") = Some((status.as_u16(), logged));
                let mut r = ErrorResponse::new(Some(reason));
                *r.status_mut() = status;
                Err(r)
            };
            match inner.claim(&key, conn) {
                Ok((session, ConnectDecision::Accept)) => {
                    *chosen.lock().expect("lock") = Some((key, session));
                    Ok(resp)
                }
                Ok((_, ConnectDecision::Refuse { status })) => refuse(
                    http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE),
                    "refused by fault injection".into(),
                    None,
                ),
                Err(ClaimError::Full { limit }) => {
                    let why = format!("session limit reached: {limit} sessions exist (max_sessions)");
                    refuse(http::StatusCode::SERVICE_UNAVAILABLE, why.clone(), Some(why))
                }
                Err(ClaimError::Pipeline(e)) => refuse(http::StatusCode::INTERNAL_SERVER_ERROR, e.clone(), Some(e)),
            }
        }
    };
    let timeout = Duration::from_millis(inner.cfg.handshake_timeout_ms);
    let hs = tokio::time::timeout(
        timeout,
        tokio_tungstenite::accept_hdr_async_with_config(io, callback, Some(ws_cfg)),
    )
    .await;
    let chosen = chosen.lock().expect("lock").take();
    let why = match hs {
        Ok(Ok(ws)) => return chosen.map(|(key, session)| (ws, key, session)),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no handshake within {timeout:?}"),
    };
    // Accepted by the callback, then failed (the 101 could not be written): let the session go.
    if let Some((_, session)) = chosen {
        inner.release(&session);
    }
    match refused.lock().expect("lock").take() {
        Some((status, reason)) => inner.log(conn, GatewayEvent::Refused { status, reason }),
        None => inner.log(conn, GatewayEvent::HandshakeFailed { why }),
    }
    None
}

async fn handle(inner: Arc<Inner>, io: BoxIo, conn: u64) {
    let Some((mut ws, key, session)) = handshake(&inner, io, conn).await else {
        return;
    };
    let session_key: Arc<str> = Arc::from(key.as_str());
    inner.log(conn, GatewayEvent::Accepted { session: key });
    let superseded = Arc::new(Notify::new());
    if let Some((_, old)) = session
        .lock()
        .expect("session lock")
        .active
        .replace((conn, superseded.clone()))
    {
        old.notify_one();
    }
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel();
    inner
        .live
        .lock()
        .expect("live lock")
        .insert(conn, (session_key, cmd_tx));

    let mut st = ConnState::default();
    let mut inbound = Decoder::default();
    let mut shutdown = inner.shutdown.clone();
    let end: Closed = 'conn: loop {
        let now = inner.now();
        // 1. Everything due now, under the session lock (no awaits).
        {
            let mut s = session.lock().expect("session lock");
            let ticked = s.pipeline.on_tick(conn, now);
            st.apply(ticked);
            // Client bytes whose (possibly delayed) delivery time has come: the terminal reads them.
            while let Some(entry) = st.ins.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let bytes = entry.remove();
                let mut msgs = Vec::new();
                inbound.push(&bytes, now, |e| match e {
                    DecodeEvent::Message(m) => msgs.push(m),
                    DecodeEvent::Rejected(err) => {
                        inner.log(conn, GatewayEvent::ReceivedRejected { error: err.to_string() })
                    }
                    _ => {}
                });
                for m in msgs {
                    s.on_client_message(&*inner.feeds, &m, now);
                    inner.log(conn, GatewayEvent::Received { message: m });
                }
            }
            if st.stalled.is_none() && st.ending.is_none() {
                let mut burst = 0;
                while burst < MAX_BURST
                    && let Some(item) = s.pop_due(&*inner.feeds, now)
                {
                    if let Some(close) = item.close {
                        st.ending.get_or_insert((now, Closed::Recorded { code: close.code }));
                        break;
                    }
                    burst += 1;
                    s.offered += 1;
                    let index = s.offered;
                    if inner.cfg.log == LogLevel::Full {
                        inner.log(
                            conn,
                            GatewayEvent::Offered {
                                index,
                                frames: s.describe(&item.bytes),
                            },
                        );
                    }
                    let mut msg = inner.envelope(index);
                    msg.extend_from_slice(&item.bytes);
                    let actions = s.pipeline.on_message(conn, Direction::ToClient, msg, now);
                    st.apply(actions);
                    if st.stalled.is_some() || st.ending.is_some() {
                        break;
                    }
                }
            }
            for r in s.pipeline.take_log() {
                inner.log(conn, GatewayEvent::Fault(r));
            }
        }
        // 2. Write what is due (a stall holds it; the pipeline released it when the stall ends).
        if st.stalled.is_none() {
            while let Some(entry) = st.outs.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let bytes = entry.remove();
                if let Err(e) = ws.send(WsMessage::Binary(bytes.into())).await {
                    break 'conn Closed::ClientGone { why: e.to_string() };
                }
            }
        }
        // 3. A fault's close or abort, after the sends due before it.
        if let Some((at, _)) = st.ending
            && at <= now
            && let Some((_, end)) = st.ending.take()
        {
            let close = match end {
                Closed::GatewayClose { code } => Some((code, "fault injection")),
                Closed::Recorded { code: Some(code) } => Some((code, "as recorded")),
                _ => None,
            };
            if let Some((code, reason)) = close {
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                };
                let _ = ws.close(Some(frame)).await;
            }
            break 'conn end;
        }
        // 4. Sleep until the next thing to do, or until the client says something.
        if let Some(Some(until)) = st.stalled
            && until <= now
        {
            st.stalled = None;
            continue;
        }
        let next = {
            let mut s = session.lock().expect("session lock");
            [
                if st.stalled.is_none() {
                    s.peek_due(&*inner.feeds)
                } else {
                    None
                },
                st.outs.keys().next().map(|k| k.0),
                st.ins.keys().next().map(|k| k.0),
                s.pipeline.next_deadline(conn),
                st.stalled.flatten(),
                st.ending.as_ref().map(|e| e.0),
            ]
            .into_iter()
            .flatten()
            .min()
        };
        let sleep_until = next.map(|d| inner.start + d.max(now));
        let stalled = st.stalled.is_some();
        tokio::select! {
            // While stalled the socket is not read at all: no pongs, no close handling — half-open.
            msg = ws.next(), if !stalled => match msg {
                Some(Ok(WsMessage::Binary(b))) => {
                    let now = inner.now();
                    let actions = session.lock().expect("session lock").pipeline.on_message(
                        conn,
                        Direction::ToGateway,
                        b.to_vec(),
                        now,
                    );
                    st.apply(actions);
                }
                Some(Ok(WsMessage::Text(t))) => {
                    inner.log(conn, GatewayEvent::ReceivedRejected { error: format!("text message: {}", t.as_str()) });
                }
                Some(Ok(WsMessage::Close(frame))) => {
                    break 'conn Closed::ClientClose { code: frame.map(|f| u16::from(f.code)) };
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break 'conn Closed::ClientGone { why: e.to_string() },
                None => break 'conn Closed::ClientGone { why: "stream ended".into() },
            },
            _ = async { match sleep_until { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {}
            _ = superseded.notified() => break 'conn Closed::Superseded,
            cmd = cmd_rx.recv() => match cmd {
                Some(ConnCommand::Close) => {
                    let frame = CloseFrame { code: CloseCode::Away, reason: "storm".into() };
                    let _ = ws.close(Some(frame)).await;
                    break 'conn Closed::Storm { mode: "close".into() };
                }
                Some(ConnCommand::Abort) => break 'conn Closed::Storm { mode: "abort".into() },
                Some(ConnCommand::Stall) => {
                    st.stalled = Some(None);
                    inner.log(conn, GatewayEvent::Closed(Closed::Storm { mode: "stall".into() }));
                }
                None => {}
            },
            _ = stopped(&mut shutdown) => break 'conn Closed::Shutdown,
        }
    };
    let now = inner.now();
    {
        let mut s = session.lock().expect("session lock");
        let held = s.pipeline.on_close(conn, now);
        st.apply(held);
        for r in s.pipeline.take_log() {
            inner.log(conn, GatewayEvent::Fault(r));
        }
        if s.active.as_ref().is_some_and(|(c, _)| *c == conn) {
            s.active = None;
        }
    }
    inner.release(&session);
    let lost: usize = st.outs.values().map(Vec::len).sum();
    if !st.outs.is_empty() {
        let prefix = inner.cfg.prefix_len;
        let frames = st
            .outs
            .values()
            .flat_map(|b| describe_frames(b.get(prefix..).unwrap_or_default()))
            .collect();
        inner.log(
            conn,
            GatewayEvent::LostInFlight {
                messages: st.outs.len(),
                bytes: lost,
                frames,
            },
        );
    }
    inner.log(conn, GatewayEvent::Closed(end));
    inner.live.lock().expect("live lock").remove(&conn);
}
