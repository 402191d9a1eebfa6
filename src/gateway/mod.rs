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
//! Files: `conn` serves one connection, [`events`] is the log it writes, [`describe`] names the
//! frames in it, `session` keeps what outlives a connection.
//!
//! Tokio lives here (and in `transport`, `client`, the runner); the feed, the faults and the codec
//! are sans-IO and get `now` passed in.

mod conn;
pub mod control;
pub mod converse;
pub mod describe;
pub mod events;
pub mod feed;
pub mod fleet;
pub mod replay;
mod session;
pub mod source;
pub mod storm;
pub mod stress_feed;
pub mod terminal;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;

use crate::faults::{ConnectDecision, FaultSpec, FaultSpecError, Pipeline};
use crate::transport::Listener;

pub use describe::{FrameDesc, FrameId, describe_frames, describe_stream};
pub use events::{Closed, ConnCommand, GatewayEvent, GatewayRecord, Order, OrderedBy};
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
    /// Bytes of messages gathered before a write reaches the socket (tungstenite's
    /// `write_buffer_size`); the messages due at one instant are flushed together anyway, so this
    /// only splits a large burst into writes of about this size. The buffer grows to the largest
    /// batch a connection wrote and stays, so it also bounds that. 0 writes every message with a
    /// system call of its own. Default 16 KiB ([`DEFAULT_WRITE_BUFFER`]).
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
            write_buffer: DEFAULT_WRITE_BUFFER,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            session_idle_ms: DEFAULT_SESSION_IDLE_MS,
            max_sessions: DEFAULT_MAX_SESSIONS,
            log: LogLevel::Full,
            seed: 0,
        }
    }
}

/// Default [`GatewayConfig::write_buffer`]: a burst of 256 small messages (the most one
/// connection takes at once) in one write.
pub const DEFAULT_WRITE_BUFFER: usize = 16 * 1024;
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

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A fault specification is wrong.
    #[error(transparent)]
    Fault(#[from] FaultSpecError),
}

/// Most feed items one connection takes out of its session before writing them. A feed with
/// everything due at once (a capture replayed at speed 0) is then served in bursts, each written
/// (with the socket's backpressure) before the next is taken, instead of being pulled whole into
/// memory under the session lock. Nothing is dropped: the rest is still due and goes next round.
const MAX_BURST: usize = 256;

/// A live connection's session key and what tells it orders.
type LiveConn = (Arc<str>, Arc<conn::Signal>);

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
    /// Run-time control ([`control`]): faults changed, pause, the log ring, sent counters.
    control: control::State,
    /// Sends and closes scheduled on connections and not yet carried out, summed over all
    /// connections (each publishes its own count when it changes): [`Gateway::idle`] reads it.
    scheduled: AtomicU64,
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
            let record = GatewayRecord {
                t_us,
                conn,
                seq: crate::transcript::next_seq(),
                event,
            };
            self.control.record(&record);
            self.log.lock().expect("log lock").push(record);
        }
    }

    /// The session a handshake on `key` gets and the fault pipeline's decision on it; an
    /// accepted handshake holds the session until [`Inner::release`]. The pipeline's decisions
    /// (a `refuse` fault's record) are logged now, as the handshake happens.
    fn claim(&self, key: &str, conn: u64) -> Result<(Arc<Mutex<Session>>, ConnectDecision), ClaimError> {
        let now = self.now();
        // Before the sessions: a new session replays the fault changes made so far (control).
        let book = self.control.book();
        let mut sessions = self.sessions.lock().expect("sessions lock");
        let session = sessions.get_or_create(key, now, self.cfg.max_sessions, || {
            // Each session's faults get their own seed derived from the gateway seed and the
            // session key, so a fleet of sessions is as reproducible as one (salted: the faults
            // must not draw the same numbers as the session's feed).
            let seed = source::session_seed(self.cfg.seed ^ 0x6661_756c_7473, key);
            let mut p = Pipeline::new(&self.faults, seed, self.cfg.prefix_len).map_err(|e| e.to_string())?;
            book.apply(&mut p)?;
            Ok(p)
        })?;
        drop(book);
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

    /// The WebSocket message of feed item `index`: the envelope, then `bytes`, in one allocation
    /// of the exact size (the bytes themselves when there is no envelope), so the message becomes
    /// the frame's payload without another copy.
    fn envelope(&self, index: u64, bytes: Vec<u8>) -> Vec<u8> {
        let prefix = self.cfg.prefix_len;
        if prefix == 0 {
            return bytes;
        }
        // A recognisable envelope: "ENV", the message index, zero padding. A client that forgets to
        // skip it sees garbage bytes before the first frame.
        let mut e = Vec::with_capacity(prefix + bytes.len());
        e.extend_from_slice(b"ENV");
        e.extend_from_slice(&index.to_be_bytes());
        e.resize(prefix, 0);
        e.truncate(prefix);
        e.extend_from_slice(&bytes);
        e
    }
}

/// Resolves once the shutdown flag is set (or its sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
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
        let names = Pipeline::new(&faults, cfg.seed, cfg.prefix_len)?.names().to_vec();
        let control = control::State::new(&names, &faults);
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
                control,
                scheduled: AtomicU64::new(0),
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
                conn::run(inner, io, conn).await;
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

    /// Orders one live connection to close, abort or stall, as a stress storm (logged `how:
    /// storm`). False if it is gone.
    pub fn command(&self, conn: u64, cmd: ConnCommand) -> bool {
        self.order(conn, Order::storm(cmd))
    }

    /// Gives one live connection an order. False if it is gone.
    pub fn order(&self, conn: u64, order: Order) -> bool {
        match self.inner.live.lock().expect("live lock").get(&conn) {
            Some((_, signal)) => {
                signal.order(order);
                true
            }
            None => false,
        }
    }

    /// True when every session's feed is exhausted and no terminal reply is waiting, and no
    /// connection has a send or close scheduled or a message held by a fault: nothing more will
    /// reach the client unless it sends something.
    pub fn idle(&self) -> bool {
        if self.inner.scheduled.load(Ordering::SeqCst) > 0 {
            return false;
        }
        let sessions = self.inner.sessions.lock().expect("sessions lock").all();
        sessions.iter().all(|s| {
            let mut s = s.lock().expect("session lock");
            s.peek_due(&*self.inner.feeds).is_none() && !s.pipeline.holds_messages()
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
