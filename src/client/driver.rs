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
use super::outbox::GaveUp;
use super::replies::{answer_of, final_answer_id, retransmit_requests};
use super::{ClientConfig, ClientError, RequestError, Shared, State};
use crate::codec::{DecodeEvent, Decoder, Message};

/// Most messages written per flush of the socket.
const WRITE_BATCH: usize = 64;

/// Runs the client until it is stopped or gives up; then reports what it still held.
pub(super) async fn run(
    shared: Arc<Shared>,
    mut connector: Box<dyn Connector>,
    url: String,
    cfg: ClientConfig,
) -> Result<(), ClientError> {
    let mut d = Driver {
        decoder: Decoder::new(cfg.decoder),
        backoff: Backoff::new(cfg.backoff),
        shared,
        cfg,
        attempt: 0,
    };
    let result = d.run(&mut *connector, &url).await;
    d.finish();
    result
}

struct Driver {
    shared: Arc<Shared>,
    cfg: ClientConfig,
    decoder: Decoder,
    backoff: Backoff,
    attempt: u64,
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
        let mut ping = tokio::time::interval_at(start + self.cfg.ping_interval, self.cfg.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut first_flush = true;
        let gate = self.shared.lock().sink.gate.clone();
        loop {
            if let Err(e) = self.write_due(conn, first_flush).await {
                return DisconnectReason::WriteFailed { error: e.to_string() };
            }
            first_flush = false;
            let idle = last_read + self.cfg.idle_timeout;
            let group_deadline = self.deadline(self.decoder.next_deadline());
            let confirm_deadline = self.deadline(self.shared.lock().outbox.next_deadline());
            let room = gate.has_room();
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
                _ = ping.tick() => {
                    let sent = async {
                        conn.feed(WsMessage::Ping(Bytes::new())).await?;
                        conn.flush().await
                    };
                    if let Err(e) = sent.await {
                        return DisconnectReason::WriteFailed { error: e.to_string() };
                    }
                }
                _ = sleep_until(idle), if room => return DisconnectReason::IdleTimeout,
                _ = sleep_until_opt(group_deadline) => self.expire_groups(),
                _ = sleep_until_opt(confirm_deadline) => {
                    let now = self.shared.now();
                    let gave_up = self.shared.lock().outbox.expire(now);
                    self.report_gave_up(gave_up);
                }
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
                let mut out = Vec::new();
                self.decoder.push(&b[prefix..], self.shared.now(), |e| out.push(e));
                self.on_decoded(out);
            }
            WsMessage::Text(t) => self.emit(EventKind::TextReceived { text: t.to_string() }),
            // Pings are answered by tungstenite; pongs only prove the peer is alive (last_read).
            WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) | WsMessage::Close(_) => {}
        }
    }

    fn expire_groups(&mut self) {
        let mut out = Vec::new();
        self.decoder.expire(self.shared.now(), |e| out.push(e));
        self.on_decoded(out);
    }

    fn on_decoded(&mut self, events: Vec<DecodeEvent>) {
        for e in events {
            match e {
                DecodeEvent::Message(m) => self.on_message(m),
                DecodeEvent::Rejected(err) => self.emit(EventKind::FrameRejected {
                    check: err.check(),
                    offset: err.offset(),
                    error: err.to_string(),
                }),
                DecodeEvent::Skipped { offset, len } => self.emit(EventKind::Skipped { offset, len }),
                DecodeEvent::UnescapedFlag { offset, at } => self.emit(EventKind::UnescapedFlag { offset, at }),
                DecodeEvent::Packet { key, index, serial } => self.emit(EventKind::Packet {
                    msg_id: key.msg_id,
                    phone: key.phone,
                    serial,
                    index,
                    total: key.total,
                }),
                DecodeEvent::DuplicatePacket {
                    key,
                    index,
                    serial,
                    differs,
                    completed,
                } => self.emit(EventKind::DuplicatePacket {
                    msg_id: key.msg_id,
                    phone: key.phone,
                    serial,
                    index,
                    differs,
                    after_complete: completed,
                }),
                DecodeEvent::InvalidPacket { key, index, serial } => self.emit(EventKind::InvalidPacket {
                    msg_id: key.msg_id,
                    phone: key.phone,
                    serial,
                    index,
                    total: key.total,
                }),
                DecodeEvent::GroupStalled(x) => {
                    self.emit(EventKind::GroupStalled(x.clone()));
                    if self.cfg.retransmit_requests {
                        self.request_retransmit(&x);
                    }
                }
                DecodeEvent::GroupExpired(x) => {
                    self.emit(EventKind::GroupExpired(x.clone()));
                    // With a retransmit wait the request went out when the group stalled; without
                    // one it can only go out now, for a consumer reassembling from `packet` events.
                    if self.cfg.retransmit_requests && self.cfg.decoder.reassembly.retransmit_wait.is_zero() {
                        self.request_retransmit(&x);
                    }
                }
            }
        }
    }

    /// Queues 0x8003 for a stalled (or expired) group's missing packets (fire and forget: the
    /// terminal answers with the packets, not with 0x0001).
    fn request_retransmit(&mut self, x: &crate::codec::reassembly::Expired) {
        for (msg, missing) in retransmit_requests(x) {
            let t = self.shared.t_ms();
            let mut s = self.shared.lock();
            match s.outbox.push(&msg) {
                Ok(p) => {
                    s.sink.emit(
                        t,
                        EventKind::RetransmitRequested {
                            phone: x.phone,
                            first_serial: x.first_serial,
                            first_serial_known: x.first_serial_known,
                            missing,
                            serial: p.serial,
                        },
                    );
                }
                Err(full) => s.sink.emit(
                    t,
                    EventKind::QueueFull {
                        msg_id: msg.header.msg_id,
                        phone: msg.header.phone,
                        capacity: full.capacity,
                    },
                ),
            }
        }
    }

    /// A decoded message: its event, then delivery confirmation and request answers, then the
    /// handlers registered for its id.
    fn on_message(&mut self, m: Message) {
        {
            let t = self.shared.t_ms();
            let mut guard = self.shared.lock();
            let s: &mut State = &mut guard;
            s.sink.emit(t, EventKind::Message(Box::new(m.clone())));
            if let Some(a) = answer_of(&m) {
                if let Some(c) = s.outbox.confirm_answer(&m.header.phone, &a) {
                    s.sink.emit(
                        t,
                        EventKind::Confirmed {
                            serial: c.serial,
                            msg_id: c.msg_id,
                            phone: c.phone,
                            result: a.result,
                            writes: c.writes,
                        },
                    );
                }
                answer_requests(s, &m, a);
            }
        }
        let handlers = self
            .shared
            .handlers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&m.header.msg_id)
            .cloned();
        for h in handlers.into_iter().flatten() {
            h(&m);
        }
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
        let mut out = Vec::new();
        self.decoder.end_stream(|e| out.push(e));
        self.on_decoded(out);
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

/// Resolves the requests `m` answers (see [`super::Client::request`]).
fn answer_requests(s: &mut State, m: &Message, a: super::replies::Answer) {
    let mut i = 0;
    while i < s.requests.len() {
        let r = &s.requests[i];
        if r.phone != m.header.phone || !a.answers_command(r.msg_id, r.serial) {
            i += 1;
            continue;
        }
        let outcome = if m.header.msg_id == final_answer_id(r.msg_id) {
            Some(Ok(m.clone()))
        } else {
            match a.result {
                Some(result) if result != 0 => Some(Err(RequestError::Rejected {
                    serial: r.serial,
                    msg_id: r.msg_id,
                    result,
                })),
                // A success 0x0001 on the way to the final answer (0x9206 -> 0x0001 -> 0x1206).
                _ => None,
            }
        };
        match outcome {
            Some(o) => {
                let r = s.requests.swap_remove(i);
                let _ = r.tx.send(o);
            }
            None => i += 1,
        }
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
}
