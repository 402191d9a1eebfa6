//! The client's task: connect -> serve -> back off, for ever (or until stopped or out of retries).
//!
//! Every `select!` here is `biased`: with tokio's paused clock several branches are often ready at
//! the same virtual instant, and a random pick would make transcripts flip between runs.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::backoff::Backoff;
use super::connection::{self, Connection, Connector};
use super::events::{DisconnectReason, EventKind};
use super::inbound::Inbound;
use super::outbox::GaveUp;
use super::{ClientConfig, ClientError, RequestError, Shared};
use crate::codec::Decoder;

/// Most messages written per flush of the socket.
const WRITE_BATCH: usize = 64;

/// The client's task: runs it until it is stopped or gives up, then reports what it still held.
///
/// A plain function returning the future rather than an `async fn`: the driver (with the config
/// moved into it) is built before the future, so the task holds it once. An `async fn` keeps room
/// for its arguments for its whole life, and `cfg` (304 bytes) would be held twice by every client.
pub(super) fn run(
    shared: Arc<Shared>,
    mut connector: Box<dyn Connector>,
    url: String,
    cfg: ClientConfig,
) -> impl std::future::Future<Output = Result<(), ClientError>> + Send {
    let mut d = Driver {
        decoder: Decoder::new(cfg.decoder),
        backoff: Backoff::new(cfg.backoff),
        shared,
        cfg,
        attempt: 0,
    };
    async move {
        let result = d.run(&mut *connector, &url).await;
        d.finish();
        result
    }
}

struct Driver {
    shared: Arc<Shared>,
    cfg: ClientConfig,
    decoder: Decoder,
    backoff: Backoff,
    attempt: u64,
}

/// The deadlines of one wait of [`Driver::serve`]. When several have passed, they are handled one
/// per turn of the loop in this order (a ping, then the idle timeout, then packet groups, then
/// confirmations), the order the loop gave them when each had a timer of its own.
struct Deadlines {
    ping: Instant,
    /// `None` while the consumer has no room: the client is not reading.
    idle: Option<Instant>,
    group: Option<Instant>,
    confirm: Option<Instant>,
}

/// Which of the [`Deadlines`] has passed.
enum Due {
    Ping,
    Idle,
    Group,
    Confirm,
}

impl Deadlines {
    fn first(&self) -> Instant {
        [self.idle, self.group, self.confirm]
            .into_iter()
            .flatten()
            .fold(self.ping, Instant::min)
    }

    /// The first, in the order above, that has passed at `now` (at least [`Deadlines::first`]).
    fn due(&self, now: Instant) -> Due {
        let passed = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if self.ping <= now {
            Due::Ping
        } else if passed(self.idle) {
            Due::Idle
        } else if passed(self.group) {
            Due::Group
        } else {
            Due::Confirm
        }
    }
}

/// The ping after one due at `due` and sent at `now`: a period later, or a period after `now` when
/// it was late by more than 5 ms (what tokio's `Interval` does with `MissedTickBehavior::Delay`,
/// which this loop used before it had one timer).
fn next_tick(due: Instant, now: Instant, period: Duration) -> Instant {
    if now > due + Duration::from_millis(5) {
        now + period
    } else {
        due + period
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl Driver {
    fn emit(&self, kind: EventKind) {
        let t = self.shared.t_ms();
        self.shared.lock().sink.emit(t, kind);
    }

    fn stopping(&self) -> bool {
        self.shared.lock().stopping
    }

    fn deadline(&self, d: Option<Duration>) -> Option<Instant> {
        d.map(|d| self.shared.start + d)
    }

    async fn run(&mut self, connector: &mut dyn Connector, url: &str) -> Result<(), ClientError> {
        loop {
            if self.stopping() {
                return Ok(());
            }
            self.attempt += 1;
            self.emit(EventKind::Connecting { attempt: self.attempt });
            let opened = tokio::select! {
                biased;
                _ = self.wait_stop() => return Ok(()),
                // Boxed: the handshake (and TLS) state is large and only lives while connecting.
                r = Box::pin(connection::open(connector, url, self.cfg.ws, self.cfg.connect_timeout)) => r,
            };
            match opened {
                Ok(mut conn) => {
                    let since = Instant::now();
                    {
                        let t = self.shared.t_ms();
                        let mut s = self.shared.lock();
                        s.connected = true;
                        s.sink.emit(t, EventKind::Connected { attempt: self.attempt });
                    }
                    let reason = self.serve(&mut conn).await;
                    if reason == DisconnectReason::Shutdown {
                        // Say goodbye, but do not hang on a peer that stopped reading.
                        let _ = tokio::time::timeout(Duration::from_secs(1), conn.close()).await;
                    }
                    drop(conn);
                    let uptime = since.elapsed();
                    self.disconnected(reason.clone(), uptime);
                    self.backoff.on_disconnect(uptime);
                    if reason == DisconnectReason::Shutdown {
                        return Ok(());
                    }
                }
                Err(e) => self.emit(EventKind::ConnectFailed {
                    attempt: self.attempt,
                    stage: e.stage(),
                    error: e.detail(),
                }),
            }
            match self.backoff.next_delay() {
                None => {
                    let retries = self.backoff.retries();
                    self.emit(EventKind::GaveUp { retries });
                    return Err(ClientError::GaveUp { retries });
                }
                Some(delay) => {
                    self.emit(EventKind::Backoff {
                        retry: self.backoff.retries(),
                        delay_ms: delay.as_millis() as u64,
                    });
                    // A zero delay skips the timer: tokio rounds deadlines up to its 1 ms tick.
                    if !delay.is_zero() && !self.pause(delay).await {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Resolves when the client is asked to stop.
    async fn wait_stop(&self) {
        loop {
            let n = self.shared.wake.notified();
            if self.stopping() {
                return;
            }
            n.await;
        }
    }

    /// Waits out a backoff delay, still expiring packet groups. False when stopped meanwhile.
    async fn pause(&mut self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            let group_deadline = self.deadline(self.decoder.next_deadline());
            tokio::select! {
                biased;
                _ = self.wait_stop() => return false,
                _ = sleep_until(until) => return true,
                _ = sleep_until_opt(group_deadline) => self.expire_groups(),
            }
        }
    }

    /// Serves one open connection until it ends; returns why.
    async fn serve(&mut self, conn: &mut Connection) -> DisconnectReason {
        let start = Instant::now();
        let mut last_read = start;
        assert!(!self.cfg.ping_interval.is_zero(), "ping_interval must be non-zero");
        let mut next_ping = start + self.cfg.ping_interval;
        let mut first_flush = true;
        let gate = self.shared.lock().sink.gate.clone();
        loop {
            if let Err(e) = self.write_due(conn, first_flush).await {
                return DisconnectReason::WriteFailed { error: e.to_string() };
            }
            first_flush = false;
            let room = gate.has_room();
            let deadlines = Deadlines {
                ping: next_ping,
                // Not reading while the consumer catches up says nothing about the peer.
                idle: room.then_some(last_read + self.cfg.idle_timeout),
                group: self.deadline(self.decoder.next_deadline()),
                confirm: self.deadline(self.shared.lock().outbox.next_deadline()),
            };
            let first = deadlines.first();
            tokio::select! {
                biased;
                _ = self.shared.wake.notified() => {
                    if self.stopping() {
                        return DisconnectReason::Shutdown;
                    }
                }
                m = conn.recv(), if room => match m {
                    None => return ended(None, "stream ended without a close frame".into()),
                    Some(Err(e)) => return ended(None, e.to_string()),
                    Some(Ok(msg)) => {
                        last_read = Instant::now();
                        if let WsMessage::Close(frame) = msg {
                            // tungstenite queued the reply close frame: send it and end here
                            // rather than wait for the server to close the TCP connection.
                            let _ = tokio::time::timeout(Duration::from_secs(1), conn.flush()).await;
                            return ended(Some(frame), String::new());
                        } else {
                            self.on_ws_message(msg);
                        }
                    }
                },
                _ = gate.room(), if !room => {
                    // Not reading while the consumer caught up says nothing about the peer.
                    last_read = Instant::now();
                }
                // One timer for every deadline (a tokio `Sleep` is about 100 bytes, and each
                // would stay in the client's task for its whole life), the earliest due handled.
                _ = sleep_until(first) => match deadlines.due(Instant::now().max(first)) {
                    Due::Ping => {
                        next_ping = next_tick(next_ping, Instant::now(), self.cfg.ping_interval);
                        let sent = async {
                            conn.feed(WsMessage::Ping(Bytes::new())).await?;
                            conn.flush().await
                        };
                        if let Err(e) = sent.await {
                            return DisconnectReason::WriteFailed { error: e.to_string() };
                        }
                    }
                    Due::Idle => return DisconnectReason::IdleTimeout,
                    Due::Group => self.expire_groups(),
                    Due::Confirm => {
                        let now = self.shared.now();
                        let gave_up = self.shared.lock().outbox.expire(now);
                        self.report_gave_up(gave_up);
                    }
                },
            }
        }
    }

    /// Writes everything due in the outbox, oldest first, in batches of one flush each.
    async fn write_due(
        &mut self,
        conn: &mut Connection,
        first_flush: bool,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        let mut count = 0;
        loop {
            let batch = self.shared.lock().outbox.due_batch(WRITE_BATCH);
            if batch.is_empty() {
                break;
            }
            for out in &batch {
                for frame in &out.frames {
                    conn.feed(WsMessage::Binary(frame.clone())).await?;
                }
            }
            conn.flush().await?;
            let (now, t) = (self.shared.now(), self.shared.t_ms());
            let mut s = self.shared.lock();
            for out in batch {
                s.outbox.written(out.seq, now);
                let kind = match out.resend {
                    Some((reason, write)) => EventKind::Resent {
                        serial: out.serial,
                        msg_id: out.msg_id,
                        phone: out.phone,
                        write,
                        reason,
                    },
                    None => EventKind::Sent {
                        serial: out.serial,
                        msg_id: out.msg_id,
                        phone: out.phone,
                        packets: out.frames.len(),
                        awaits_confirmation: out.awaits_confirmation,
                    },
                };
                s.sink.emit(t, kind);
                count += 1;
            }
        }
        if first_flush && count > 0 {
            self.emit(EventKind::Flushed { count });
        }
        Ok(())
    }

    fn on_ws_message(&mut self, msg: WsMessage) {
        match msg {
            WsMessage::Binary(b) => {
                let prefix = self.cfg.prefix_len;
                if b.len() < prefix {
                    self.emit(EventKind::EnvelopeTooShort {
                        len: b.len(),
                        prefix_len: prefix,
                    });
                    return;
                }
                let inbound = Inbound::new(&self.shared, &self.cfg);
                self.decoder
                    .push(&b[prefix..], self.shared.now(), |e| inbound.on_event(e));
            }
            WsMessage::Text(t) => self.emit(EventKind::TextReceived { text: t.to_string() }),
            // Pings are answered by tungstenite; pongs only prove the peer is alive (last_read).
            WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) | WsMessage::Close(_) => {}
        }
    }

    fn expire_groups(&mut self) {
        let inbound = Inbound::new(&self.shared, &self.cfg);
        self.decoder.expire(self.shared.now(), |e| inbound.on_event(e));
    }

    fn report_gave_up(&self, gave_up: Vec<GaveUp>) {
        for g in gave_up {
            self.emit(EventKind::DeliveryFailed {
                serial: g.serial,
                msg_id: g.msg_id,
                phone: g.phone,
                writes: g.writes,
            });
        }
    }

    /// A connection ended: the cut frame is reported (never glued to the next connection's
    /// bytes), unconfirmed commands become due again, then the disconnect itself.
    fn disconnected(&mut self, reason: DisconnectReason, uptime: Duration) {
        let inbound = Inbound::new(&self.shared, &self.cfg);
        self.decoder.end_stream(|e| inbound.on_event(e));
        {
            let mut s = self.shared.lock();
            s.connected = false;
            s.outbox.on_disconnect();
        }
        self.emit(EventKind::Disconnected {
            reason,
            uptime_ms: uptime.as_millis() as u64,
        });
    }

    /// The task ends: whatever is still held is reported, waiting requests fail, the event stream
    /// closes.
    fn finish(&mut self) {
        let t = self.shared.t_ms();
        let mut s = self.shared.lock();
        let (unsent, unconfirmed) = s.outbox.clear();
        for r in s.requests.drain(..) {
            let _ = r.tx.send(Err(RequestError::Stopped));
        }
        s.sink.emit(t, EventKind::Stopped { unsent, unconfirmed });
        s.sink.close();
        s.stopped = true;
        s.connected = false;
    }
}

fn ended(close: Option<Option<CloseFrame>>, error: String) -> DisconnectReason {
    match close {
        Some(frame) => DisconnectReason::Closed {
            code: frame.as_ref().map(|f| u16::from(f.code)),
            reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
        },
        None => DisconnectReason::Dropped { error },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The driver's future is the task's whole per-connection state besides the WebSocket's own
    /// buffers; a stress run holds 10,000 of them in a 16 KiB-per-connection budget.
    #[tokio::test]
    async fn the_task_state_is_small() {
        let connector = || async { Ok(tokio::io::duplex(16).0) };
        let (client, _events) = super::super::Client::with_connector(connector, "ws://t/", ClientConfig::default());
        let fut = run(
            client.shared.clone(),
            Box::new(connector),
            "ws://t/".into(),
            ClientConfig::default(),
        );
        let size = std::mem::size_of_val(&fut);
        assert!(size < 6 << 10, "driver future is {size} bytes");
        println!("driver future: {size} bytes");
    }

    /// Several deadlines passed at one instant are handled in the order the loop's separate timers
    /// had in its biased `select!`: ping, idle, groups, confirmations.
    #[test]
    fn passed_deadlines_are_handled_ping_idle_group_confirm() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let d = |ping: u64, idle: Option<u64>, group: Option<u64>, confirm: Option<u64>| Deadlines {
            ping: at(ping),
            idle: idle.map(at),
            group: group.map(at),
            confirm: confirm.map(at),
        };
        let which = |d: &Deadlines| match d.due(d.first()) {
            Due::Ping => "ping",
            Due::Idle => "idle",
            Due::Group => "group",
            Due::Confirm => "confirm",
        };
        assert_eq!(which(&d(10, Some(10), Some(10), Some(10))), "ping");
        assert_eq!(which(&d(20, Some(10), Some(10), Some(10))), "idle");
        assert_eq!(which(&d(20, None, Some(10), Some(10))), "group");
        assert_eq!(which(&d(20, Some(30), None, Some(10))), "confirm");
        assert_eq!(d(20, None, Some(15), Some(10)).first(), at(10));
        // At a later instant everything passed is still taken in that order.
        assert!(matches!(d(20, Some(30), Some(5), None).due(at(40)), Due::Ping));
    }

    /// Pings keep their schedule when on time (within 5 ms) and restart a period after a late one,
    /// as tokio's `Interval` with `MissedTickBehavior::Delay` did.
    #[test]
    fn a_late_ping_delays_the_next() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let p = Duration::from_millis(100);
        assert_eq!(next_tick(at(100), at(100), p), at(200));
        assert_eq!(next_tick(at(100), at(105), p), at(200));
        assert_eq!(next_tick(at(100), at(106), p), at(206));
    }
}
