//! One connection, from handshake to close, as a handler with one method per step (the shape of
//! the client's driver): [`Conn::open`] runs the handshake and registers the connection;
//! [`Conn::serve`] loops over taking what is due ([`Conn::take_due`]), writing it
//! ([`Conn::write_due`]), carrying out a fault's close ([`Conn::end_due`]) and sleeping until the
//! next wake-up ([`Conn::next_wake`], [`Conn::wait`]), where an incoming message
//! ([`Conn::incoming`]) or an [`Order`] of a storm or the control API ([`Conn::command`]) may end it;
//! [`Conn::finish`] gives back what a fault held and logs how it ended.
//!
//! The session lock is only held in `take_due`, `next_wake` and `finish`, never across an await.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage, http};

use super::describe::describe_frames;
use super::events::{Closed, ConnCommand, GatewayEvent, Order};
use super::session::{ClaimError, Session};
use super::{Inner, LogLevel, MAX_BURST, stopped};
use crate::codec::{DecodeEvent, Decoder};
use crate::faults::{Action, ConnectDecision, Direction};
use crate::transport::BoxIo;

/// Serves connection `conn` on `io` until it ends; everything it does goes to the gateway log.
pub(super) async fn run(inner: Arc<Inner>, io: BoxIo, conn: u64) {
    // Boxed: the handshake's state is large and would otherwise stay in the task for the whole
    // life of the connection (a task is as large as the largest state of its future).
    let Some(mut c) = Box::pin(Conn::open(inner, io, conn)).await else {
        return;
    };
    let end = c.serve().await;
    c.finish(end);
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
        actions.into_iter().for_each(|a| self.apply_one(a));
    }

    fn apply_one(&mut self, a: Action) {
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

    /// The latest time a send in either direction is scheduled for.
    fn last_scheduled(&self) -> Option<Duration> {
        let last = |m: &BTreeMap<(Duration, u64), Vec<u8>>| m.keys().next_back().map(|k| k.0);
        last(&self.outs).max(last(&self.ins))
    }

    /// Sends and closes scheduled and not yet carried out (what [`Inner::scheduled`] sums).
    fn scheduled(&self) -> u64 {
        (self.outs.len() + self.ins.len() + usize::from(self.ending.is_some())) as u64
    }

    /// Neither stalled nor ending: the feed may be offered.
    fn open(&self) -> bool {
        self.stalled.is_none() && self.ending.is_none()
    }
}

/// What a connection is told from outside: a newer connection of its session took over, or the
/// orders of a storm or the control API, in order. One small shared cell instead of a channel and a `Notify` (tokio's
/// unbounded channel alone allocates about half a KiB per connection, for an order or two in its
/// life).
#[derive(Default)]
pub(super) struct Signal {
    superseded: AtomicBool,
    orders: Mutex<VecDeque<Order>>,
    notify: Notify,
    /// WebSocket messages written (`GET /connections`): here rather than in a cell of its own.
    pub(super) sent: AtomicU64,
}

impl Signal {
    /// A newer connection of the session took over.
    pub(super) fn supersede(&self) {
        self.superseded.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// An order, carried out after those before it.
    pub(super) fn order(&self, order: Order) {
        self.orders.lock().expect("orders lock").push_back(order);
        self.notify.notify_one();
    }

    /// Resolves with the next thing said (superseded first).
    async fn wait(&self) -> Wake {
        loop {
            // A permit left by a signal while nobody waited makes this return at once.
            let said = self.notify.notified();
            if self.superseded.load(Ordering::Acquire) {
                return Wake::Superseded;
            }
            if let Some(order) = self.orders.lock().expect("orders lock").pop_front() {
                return Wake::Command(order);
            }
            said.await;
        }
    }
}

/// Frees an emptied map's node: a `BTreeMap` keeps its first node (room for eleven entries, half a
/// KiB here) after its last entry is removed, and an idle connection should hold none.
pub(super) fn release_if_empty<K, V>(map: &mut BTreeMap<K, V>) {
    if map.is_empty() {
        *map = BTreeMap::new();
    }
}

/// A refused handshake: the HTTP status, and the reason when a limit (not a fault) refused it.
type Refusal = (u16, Option<String>);

/// The session a handshake picked: its key and state.
type Chosen = (String, Arc<Mutex<Session>>);

/// The WebSocket of an accepted connection.
type Ws = tokio_tungstenite::WebSocketStream<BoxIo>;

/// What woke a waiting connection.
enum Wake {
    /// The client sent something (or its stream ended).
    Incoming(Option<Result<WsMessage, WsError>>),
    /// The next scheduled thing is due.
    Timer,
    /// A newer connection of the same session took over.
    Superseded,
    /// An order from outside ([`super::Gateway::order`]).
    Command(Order),
    /// The gateway shuts down.
    Shutdown,
}

/// One accepted connection.
struct Conn {
    inner: Arc<Inner>,
    conn: u64,
    ws: Ws,
    session: Arc<Mutex<Session>>,
    /// Superseded, or ordered by a storm.
    signal: Arc<Signal>,
    shutdown: watch::Receiver<bool>,
    st: ConnState,
    /// The terminal's decoder of what the client sends.
    inbound: Decoder,
    /// True while the control API paused the feed: nothing is offered, the rest goes on.
    paused: watch::Receiver<bool>,
    /// What this connection last added to [`Inner::scheduled`].
    published: u64,
}

impl Conn {
    /// The handshake; on success the connection replaces the session's previous one and is
    /// registered as live (so storms can reach it).
    async fn open(inner: Arc<Inner>, io: BoxIo, conn: u64) -> Option<Conn> {
        let (ws, key, session) = handshake(&inner, io, conn).await?;
        inner.log(conn, GatewayEvent::Accepted { session: key });
        let signal = Arc::new(Signal::default());
        let (session_key, previous) = {
            let mut s = session.lock().expect("session lock");
            (s.key().clone(), s.active.replace((conn, signal.clone())))
        };
        if let Some((_, old)) = previous {
            old.supersede();
        }
        let since_us = inner.now().as_micros() as u64;
        inner
            .control
            .opened(conn, session_key.clone(), since_us, signal.clone());
        inner
            .live
            .lock()
            .expect("live lock")
            .insert(conn, (session_key, signal.clone()));
        Some(Conn {
            paused: inner.control.paused(),
            shutdown: inner.shutdown.clone(),
            inner,
            conn,
            ws,
            session,
            signal,
            st: ConnState::default(),
            inbound: Decoder::default(),
            published: 0,
        })
    }

    /// Runs the connection until something ends it; returns how.
    async fn serve(&mut self) -> Closed {
        loop {
            let now = self.inner.now();
            let more_due = self.take_due(now);
            if let Err(end) = self.write_due(now).await {
                return end;
            }
            if let Some(end) = self.end_due(now).await {
                return end;
            }
            if let Some(Some(until)) = self.st.stalled
                && until <= now
            {
                self.st.stalled = None;
                continue;
            }
            self.publish(self.st.scheduled());
            let wake = self.next_wake(now);
            let end = match self.wait(wake, more_due).await {
                Wake::Incoming(msg) => self.incoming(msg),
                Wake::Timer => None,
                Wake::Superseded => Some(Closed::Superseded),
                Wake::Command(cmd) => self.command(cmd).await,
                Wake::Shutdown => Some(Closed::Shutdown),
            };
            if let Some(end) = end {
                return end;
            }
        }
    }

    /// Makes `n` this connection's share of [`Inner::scheduled`] (atomics only on a change).
    fn publish(&mut self, n: u64) {
        if n != self.published {
            if n > self.published {
                self.inner.scheduled.fetch_add(n - self.published, Ordering::SeqCst);
            } else {
                self.inner.scheduled.fetch_sub(self.published - n, Ordering::SeqCst);
            }
            self.published = n;
        }
    }

    /// Everything due at `now`, under the session lock: the pipeline's timers, the client bytes
    /// whose delivery time has come (the terminal reads them), then the feed items due. True when
    /// the feed's burst was cut at [`MAX_BURST`]: more may be due at once.
    fn take_due(&mut self, now: Duration) -> bool {
        let session = self.session.clone();
        let mut s = session.lock().expect("session lock");
        let ticked = s.pipeline.on_tick(self.conn, now);
        self.st.apply(ticked);
        self.read_due(&mut s, now);
        let mut more_due = false;
        if self.st.open() {
            let answers_only = *self.paused.borrow();
            more_due = self.offer_due(&mut s, now, answers_only);
        }
        for r in s.pipeline.take_log() {
            self.inner.log(self.conn, GatewayEvent::Fault(r));
        }
        more_due
    }

    /// Client bytes whose (possibly delayed) delivery time has come: the terminal decodes and
    /// answers them.
    fn read_due(&mut self, s: &mut Session, now: Duration) {
        let (inner, conn) = (&self.inner, self.conn);
        while let Some(entry) = self.st.ins.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let bytes = entry.remove();
            let mut msgs = Vec::new();
            self.inbound.push(&bytes, now, |e| match e {
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
        release_if_empty(&mut self.st.ins);
    }

    /// Feed items and replies due at `now` (only the terminal's replies with `answers_only`, while
    /// the control API paused the feed), at most [`MAX_BURST`], through the fault pipeline; a
    /// stall or an ending it decides stops the burst. True when it stopped at the limit.
    fn offer_due(&mut self, s: &mut Session, now: Duration, answers_only: bool) -> bool {
        let mut burst = 0;
        while burst < MAX_BURST
            && let Some(item) = s.pop_due(&*self.inner.feeds, now, answers_only)
        {
            if let Some(close) = item.close {
                // After the sends already decided, as a fault's own close is: on TCP the bytes
                // written before a close arrive before it, so a message a latency fault delayed
                // is still delivered (found by `explore`: a recorded close overtook it).
                let at = self.st.last_scheduled().map_or(now, |t| t.max(now));
                self.st
                    .ending
                    .get_or_insert((at, Closed::Recorded { code: close.code }));
                return false;
            }
            burst += 1;
            s.offered += 1;
            let index = s.offered;
            if self.inner.cfg.log == LogLevel::Full {
                let frames = s.describe(&item.bytes);
                self.inner.log(self.conn, GatewayEvent::Offered { index, frames });
            }
            let msg = self.inner.envelope(index, item.bytes);
            let st = &mut self.st;
            s.pipeline
                .on_message_with(self.conn, Direction::ToClient, msg, now, |a| st.apply_one(a));
            if !self.st.open() {
                return false;
            }
        }
        burst == MAX_BURST
    }

    /// Writes what is due at `now` (a stall holds it; the pipeline releases it when the stall
    /// ends), coalesced: every message is fed to the socket's write buffer
    /// ([`super::GatewayConfig::write_buffer`]) and the batch goes out with one flush, so a burst
    /// costs a few writes instead of one per message. A failed write ends the connection; the
    /// batch it carried is gone with it, as the one message of a failed write was before (what
    /// was not yet taken stays scheduled and is logged as lost in flight).
    async fn write_due(&mut self, now: Duration) -> Result<(), Closed> {
        if self.st.stalled.is_some() {
            return Ok(());
        }
        let mut fed = 0;
        while let Some(entry) = self.st.outs.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let bytes = entry.remove();
            if let Err(e) = self.ws.feed(WsMessage::Binary(bytes.into())).await {
                return Err(Closed::ClientGone { why: e.to_string() });
            }
            fed += 1;
        }
        release_if_empty(&mut self.st.outs);
        if fed > 0 {
            if let Err(e) = self.ws.flush().await {
                return Err(Closed::ClientGone { why: e.to_string() });
            }
            self.signal.sent.fetch_add(fed, Ordering::Relaxed);
        }
        Ok(())
    }

    /// A fault's (or the recording's) close or abort, once its time has come: after the sends due
    /// before it.
    async fn end_due(&mut self, now: Duration) -> Option<Closed> {
        if self.st.ending.as_ref().is_none_or(|(at, _)| *at > now) {
            return None;
        }
        let (_, end) = self.st.ending.take()?;
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
            let _ = self.ws.close(Some(frame)).await;
        }
        Some(end)
    }

    /// When the next scheduled thing is due: a feed item (not while stalled), a delayed write or
    /// read, a fault's timer, the stall's end or a fault's close. `None`: nothing is scheduled.
    fn next_wake(&self, now: Duration) -> Option<Instant> {
        let mut s = self.session.lock().expect("session lock");
        let st = &self.st;
        let next = [
            // The feed counts only while it may be offered ([`ConnState::open`]): during a stall,
            // or with a close or abort pending at a later time, a due feed item would wake the
            // loop at once, forever, and the paused clock would never move (found by `explore`:
            // a delayed message ahead of a pending abort).
            // A paused feed (control API) is not woken for either; the terminal's replies are.
            match (st.open(), *self.paused.borrow()) {
                (true, false) => s.peek_due(&*self.inner.feeds),
                (true, true) => s.peek_reply(),
                (false, _) => None,
            },
            st.outs.keys().next().map(|k| k.0),
            st.ins.keys().next().map(|k| k.0),
            s.pipeline.next_deadline(self.conn),
            st.stalled.flatten(),
            st.ending.as_ref().map(|e| e.0),
        ]
        .into_iter()
        .flatten()
        .min();
        next.map(|d| self.inner.start + d.max(now))
    }

    /// Sleeps until `wake`, or until the client, a newer connection, a storm or the shutdown says
    /// something. While stalled the socket is not read at all: no pongs, no close handling, a
    /// half-open link.
    async fn wait(&mut self, wake: Option<Instant>, more_due: bool) -> Wake {
        let stalled = self.st.stalled.is_some();
        let timer = async {
            match wake {
                // A burst cut at `MAX_BURST` goes on at once, after the runtime's other tasks had
                // their turn (what else is said is still looked at first). A timer would round the
                // wait up to its 1 ms tick: 100,000 messages due at once took 390 such ticks,
                // 0.4 s, in which the process used 78 ms of CPU (benches/throughput.rs).
                // Only then: every other wake keeps the timer, as before.
                _ if more_due => tokio::task::yield_now().await,
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = self.ws.next(), if !stalled => Wake::Incoming(msg),
            _ = timer => Wake::Timer,
            wake = self.signal.wait() => wake,
            // Paused or resumed: look again at what is due.
            Ok(()) = self.paused.changed() => Wake::Timer,
            _ = stopped(&mut self.shutdown) => Wake::Shutdown,
        }
    }

    /// A WebSocket message from the client: binary goes through the pipeline towards the terminal,
    /// text is logged as rejected, a close or a failed stream ends the connection.
    fn incoming(&mut self, msg: Option<Result<WsMessage, WsError>>) -> Option<Closed> {
        match msg {
            Some(Ok(WsMessage::Binary(b))) => {
                let now = self.inner.now();
                let st = &mut self.st;
                self.session.lock().expect("session lock").pipeline.on_message_with(
                    self.conn,
                    Direction::ToGateway,
                    b.to_vec(),
                    now,
                    |a| st.apply_one(a),
                );
                None
            }
            Some(Ok(WsMessage::Text(t))) => {
                let error = format!("text message: {}", t.as_str());
                self.inner.log(self.conn, GatewayEvent::ReceivedRejected { error });
                None
            }
            Some(Ok(WsMessage::Close(frame))) => Some(Closed::ClientClose {
                code: frame.map(|f| u16::from(f.code)),
            }),
            Some(Ok(_)) => None,
            Some(Err(e)) => Some(Closed::ClientGone { why: e.to_string() }),
            None => Some(Closed::ClientGone {
                why: "stream ended".into(),
            }),
        }
    }

    /// A storm's or the control API's order: close (1001), drop, or go silent until the client
    /// gives up or for the order's `for_ms` (logged now; the connection's real end is logged
    /// when it comes). A stall ordered during another lasts until the later of their ends.
    async fn command(&mut self, order: Order) -> Option<Closed> {
        match order.command {
            ConnCommand::Close => {
                let frame = CloseFrame {
                    code: CloseCode::Away,
                    reason: order.close_reason().into(),
                };
                let _ = self.ws.close(Some(frame)).await;
            }
            ConnCommand::Abort => {}
            ConnCommand::Stall => {
                let until = order.for_ms.map(|ms| self.inner.now() + Duration::from_millis(ms));
                self.st.stalled = Some(match (self.st.stalled, until) {
                    (None, until) => until,
                    (Some(Some(a)), Some(b)) => Some(a.max(b)),
                    (Some(_), _) => None,
                });
                self.inner.log(self.conn, GatewayEvent::Closed(order.closed()));
                return None;
            }
        }
        Some(order.closed())
    }

    /// The connection ended with `end`: what the pipeline still held is logged as undelivered,
    /// what was scheduled and not written as lost in flight, then the close itself.
    fn finish(mut self, end: Closed) {
        self.publish(0);
        let (inner, conn) = (self.inner.clone(), self.conn);
        let now = inner.now();
        {
            let mut s = self.session.lock().expect("session lock");
            let held = s.pipeline.on_close(conn, now);
            self.st.apply(held);
            for r in s.pipeline.take_log() {
                inner.log(conn, GatewayEvent::Fault(r));
            }
            if s.active.as_ref().is_some_and(|(c, _)| *c == conn) {
                s.active = None;
            }
        }
        inner.release(&self.session);
        let outs = &self.st.outs;
        if !outs.is_empty() {
            let prefix = inner.cfg.prefix_len;
            let frames = outs
                .values()
                .flat_map(|b| describe_frames(b.get(prefix..).unwrap_or_default()))
                .collect();
            let event = GatewayEvent::LostInFlight {
                messages: outs.len(),
                bytes: outs.values().map(Vec::len).sum(),
                frames,
            };
            inner.log(conn, event);
        }
        inner.log(conn, GatewayEvent::Closed(end));
        inner.live.lock().expect("live lock").remove(&conn);
        inner.control.closed(conn);
    }
}

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
