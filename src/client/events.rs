//! What the client did, as a stream of [`Event`]s: the material transcripts are made of.
//!
//! Each event carries `t_ms`, the virtual time since the client started (tokio's clock, so paused
//! runs are exact), and never an address, a port or a wall-clock time, so two runs of one scenario
//! produce the same events. JSON shape: `{"type":"<snake_case kind>", ...fields, "t_ms":N}`; a
//! decoded message keeps the shape of `decode` (`{"type":"message","msg_id":"0x0200",...}`).
//!
//! Delivery to the consumer is ordered and lossless. The channel is bounded by
//! [`super::ClientConfig::event_capacity`] through backpressure: when that many events are not yet
//! taken, the client stops reading the socket (TCP then slows the server) until the consumer
//! catches up. Events produced by [`super::Client::send`] never wait, so a caller that sends without
//! reading events cannot deadlock the client; they are bounded by the send queue's capacity.
//! Dropping [`Events`] turns events off.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::Notify;

use super::outbox::ResendReason;
use crate::codec::body::hex_id;
use crate::codec::reassembly::Expired;
use crate::codec::{Message, Phone};

/// One thing the client did, at `t_ms` milliseconds of virtual time since it started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
    /// Milliseconds since the client started (tokio clock).
    pub t_ms: u64,
    /// Causal order stamp ([`crate::transcript::next_seq`]), for merging with other logs.
    #[serde(skip)]
    pub seq: u64,
}

/// Which stage of opening a connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectStage {
    /// The transport (TCP connect, or the test's connector).
    Transport,
    /// TLS or the WebSocket handshake (e.g. the server answered 503).
    Handshake,
    /// Neither finished within the connect timeout.
    Timeout,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DisconnectReason {
    /// The server closed with a WebSocket close frame.
    Closed {
        /// Close code (1000 normal, 1001 going away, ...), if the frame had one.
        code: Option<u16>,
        /// Close reason text.
        reason: String,
    },
    /// The stream ended or failed without a close frame (TCP reset, EOF, protocol error).
    Dropped {
        /// The error, without addresses.
        error: String,
    },
    /// Nothing was read for [`super::ClientConfig::idle_timeout`] although pings were sent: a
    /// half-open connection.
    IdleTimeout,
    /// A write failed.
    WriteFailed {
        /// The error.
        error: String,
    },
    /// The client was shut down.
    Shutdown,
}

/// The kinds of [`Event`]. Serialised with `"type"` = the variant name in snake_case.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A connection attempt starts (attempt 1 is the first since the client started).
    Connecting {
        /// Attempt number.
        attempt: u64,
    },
    /// The WebSocket handshake completed.
    Connected {
        /// Attempt number.
        attempt: u64,
    },
    /// A connection attempt failed.
    ConnectFailed {
        /// Attempt number.
        attempt: u64,
        /// Which stage.
        stage: ConnectStage,
        /// The error text.
        error: String,
    },
    /// A connection ended.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
        /// How long it had been up.
        uptime_ms: u64,
    },
    /// The client waits before the next attempt.
    Backoff {
        /// Retries in a row so far, this one included.
        retry: u32,
        /// The delay.
        delay_ms: u64,
    },
    /// [`super::BackoffConfig::max_attempts`] retries in a row failed; the client stopped.
    GaveUp {
        /// Retries made.
        retries: u32,
    },
    /// A decoded message (single frame or reassembled), in the `decode` JSON shape.
    Message(Box<Message>),
    /// A frame failed a check and was dropped (JT808.md §1); the stream goes on.
    FrameRejected {
        /// Stable name of the failed check.
        check: &'static str,
        /// Byte offset of the frame in this connection's stream (after the envelope prefixes).
        offset: u64,
        /// What failed.
        error: String,
    },
    /// Bytes outside any frame were skipped.
    Skipped {
        /// Stream offset.
        offset: u64,
        /// Byte count.
        len: u64,
    },
    /// The next message's frame had an unescaped 0x7E, taken as data (decoder setting
    /// `rejoin_unescaped_flag`).
    UnescapedFlag {
        /// Stream offset of the frame.
        offset: u64,
        /// Stream offset of the unescaped 0x7E.
        at: u64,
    },
    /// One packet of a multi-packet message was buffered.
    Packet {
        /// Message id.
        #[serde(with = "hex_id")]
        msg_id: u16,
        /// Terminal.
        phone: Phone,
        /// Packet serial.
        serial: u16,
        /// Packet index (1-based).
        index: u16,
        /// Packets in the message.
        total: u16,
    },
    /// A packet index already held came again and was ignored.
    DuplicatePacket {
        /// Message id.
        #[serde(with = "hex_id")]
        msg_id: u16,
        /// Terminal.
        phone: Phone,
        /// Packet serial.
        serial: u16,
        /// Packet index.
        index: u16,
        /// Whether its bytes differ from the copy held.
        differs: bool,
        /// Its group had already completed: a late copy, not a new group (written only when
        /// true, so a transcript of an in-group duplicate reads as it always has).
        #[serde(skip_serializing_if = "std::ops::Not::not", default)]
        after_complete: bool,
    },
    /// A packet with index 0 or above its total was dropped.
    InvalidPacket {
        /// Message id.
        #[serde(with = "hex_id")]
        msg_id: u16,
        /// Terminal.
        phone: Phone,
        /// Packet serial.
        serial: u16,
        /// Packet index.
        index: u16,
        /// Packets in the message.
        total: u16,
    },
    /// A packet group was given up (timeout or limit) with its missing indices.
    GroupExpired(Expired),
    /// A packet group idle for the timeout is kept open for its missing packets (decoder setting
    /// `retransmit_wait`).
    GroupStalled(Expired),
    /// A 0x8003 retransmit request for a stalled or expired group's missing packets was queued.
    RetransmitRequested {
        /// Terminal.
        phone: Phone,
        /// Serial of the group's first packet (the one 0x8003 names).
        first_serial: u16,
        /// Whether that serial was seen or inferred (JT808.md §4).
        first_serial_known: bool,
        /// Indices asked for.
        missing: Vec<u16>,
        /// Serial of the 0x8003 itself.
        serial: u16,
    },
    /// A binary WebSocket message shorter than the envelope prefix was skipped.
    EnvelopeTooShort {
        /// Its length.
        len: usize,
        /// [`super::ClientConfig::prefix_len`].
        prefix_len: usize,
    },
    /// A text WebSocket message (not part of the JT808 stream) arrived.
    TextReceived {
        /// Its text.
        text: String,
    },
    /// A message was taken into the send queue.
    Queued {
        /// Its serial.
        serial: u16,
        /// Message id.
        #[serde(with = "hex_id")]
        msg_id: u16,
        /// Terminal.
        phone: Phone,
        /// Packets it was split into.
        packets: usize,
        /// Messages held now.
        held: usize,
    },
    /// A message was refused because the send queue was full.
    QueueFull {
        /// Message id.
        #[serde(with = "hex_id")]
        msg_id: u16,
        /// Terminal.
        phone: Phone,
        /// [`super::OutboxConfig::capacity`].
        capacity: usize,
    },
    /// A message was written for the first time.
    Sent {
        /// Serial.
        serial: u16,
        /// Message id.
        #[serde(with = "hex_id")]
        msg_id: u16,
        /// Terminal.
        phone: Phone,
        /// Frames written.
        packets: usize,
        /// Whether it is held until the terminal confirms it.
        awaits_confirmation: bool,
    },
    /// A command was written again with its original serial.
    Resent {
        /// Serial.
        serial: u16,
        /// Message id.
        #[serde(with = "hex_id")]
        msg_id: u16,
        /// Terminal.
        phone: Phone,
        /// Which write this is (2 = first re-send).
        write: u32,
        /// Why.
        reason: ResendReason,
    },
    /// What waited in the send queue while disconnected was written on a new connection, in
    /// order (commands beyond the send window follow as confirmations free it).
    Flushed {
        /// Messages written in that first pass.
        count: usize,
    },
    /// The terminal confirmed a command.
    Confirmed {
        /// Serial.
        serial: u16,
        /// Message id.
        #[serde(with = "hex_id")]
        msg_id: u16,
        /// Terminal.
        phone: Phone,
        /// Result byte of the general response (0 success); absent when confirmed by a
        /// 0x1205/0x1206 answer.
        result: Option<u8>,
        /// Times it was written.
        writes: u32,
    },
    /// A command was given up after its re-sends ([`super::OutboxConfig::max_resends`]).
    DeliveryFailed {
        /// Serial.
        serial: u16,
        /// Message id.
        #[serde(with = "hex_id")]
        msg_id: u16,
        /// Terminal.
        phone: Phone,
        /// Times it was written.
        writes: u32,
    },
    /// [`super::Client::request`] got no answer in time.
    RequestTimedOut {
        /// Serial of the request.
        serial: u16,
        /// Message id.
        #[serde(with = "hex_id")]
        msg_id: u16,
        /// Terminal.
        phone: Phone,
    },
    /// The client stopped; what it still held is reported, not dropped silently.
    Stopped {
        /// Messages never written.
        unsent: usize,
        /// Commands written but never confirmed.
        unconfirmed: usize,
    },
}

/// The consumer side of the event stream (see the module doc on backpressure).
#[derive(Debug)]
pub struct Events {
    gate: Arc<Gate>,
}

impl Events {
    /// The next event; `None` once the client stopped and every event was taken.
    pub async fn recv(&mut self) -> Option<Event> {
        loop {
            // A permit left by an `emit` while nobody waited makes this return at once: no event
            // pushed between the look and the wait is missed.
            let arrived = self.gate.arrived.notified();
            match self.gate.take() {
                Taken::Event(e) => return Some(e),
                Taken::Closed => return None,
                Taken::Empty => arrived.await,
            }
        }
    }

    /// The next event if one is ready.
    pub fn try_recv(&mut self) -> Option<Event> {
        match self.gate.take() {
            Taken::Event(e) => Some(e),
            Taken::Closed | Taken::Empty => None,
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        // Nobody will take the rest: drop it, and release a client waiting for room.
        let rest = {
            let mut q = self.gate.lock();
            q.consumer_gone = true;
            std::mem::take(&mut q.events)
        };
        drop(rest);
        self.gate.pending.store(0, Ordering::Release);
        self.gate.drained.notify_waiters();
    }
}

/// The queue between the client and its consumer, with the count the backpressure reads and the
/// two wake-ups. Written here on a `VecDeque` rather than taken from tokio's unbounded channel,
/// which allocates a block of 32 events (2.8 KiB) per client when it is made and keeps it for the
/// client's life: a fleet of idle clients would hold a third of its memory in empty blocks. This
/// queue holds what waits, and gives its room back each time the consumer catches up.
#[derive(Debug)]
pub(crate) struct Gate {
    queue: Mutex<Queue>,
    /// Events emitted and not yet taken (read without the lock, on every loop of the driver).
    pending: AtomicUsize,
    capacity: usize,
    /// An event was pushed, or the stream ended.
    arrived: Notify,
    /// The consumer took an event while `capacity` waited.
    drained: Notify,
}

#[derive(Debug, Default)]
struct Queue {
    events: VecDeque<Event>,
    /// The client stopped: no event will follow those queued.
    ended: bool,
    /// [`Events`] was dropped: events are no longer kept.
    consumer_gone: bool,
}

/// What [`Gate::take`] found.
enum Taken {
    Event(Event),
    Empty,
    Closed,
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves plain data behind; keep going with it.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self) -> Taken {
        let e = {
            let mut q = self.lock();
            match q.events.pop_front() {
                Some(e) => e,
                None if q.ended => return Taken::Closed,
                None => {
                    // Caught up: the consumer is about to wait, so the room is given back (one
                    // allocation per wait, not per event, when events come in bursts), and an
                    // idle client holds no queue at all.
                    q.events = VecDeque::new();
                    return Taken::Empty;
                }
            }
        };
        let before = self.pending.fetch_sub(1, Ordering::AcqRel);
        if before == self.capacity {
            self.drained.notify_waiters();
        }
        Taken::Event(e)
    }

    /// True while fewer than `capacity` events wait.
    pub(crate) fn has_room(&self) -> bool {
        self.pending.load(Ordering::Acquire) < self.capacity
    }

    /// Resolves once there is room.
    pub(crate) async fn room(&self) {
        loop {
            let notified = self.drained.notified();
            if self.has_room() {
                return;
            }
            notified.await;
        }
    }
}

/// The producer side: held in the client's shared state, dropped when the client stops.
#[derive(Debug)]
pub(crate) struct Sink {
    pub(crate) gate: Arc<Gate>,
}

impl Sink {
    pub(crate) fn new(capacity: usize) -> (Sink, Events) {
        let gate = Arc::new(Gate {
            queue: Mutex::new(Queue::default()),
            pending: AtomicUsize::new(0),
            capacity: capacity.max(1),
            arrived: Notify::new(),
            drained: Notify::new(),
        });
        (Sink { gate: gate.clone() }, Events { gate })
    }

    /// True while someone takes the events (the stream has not ended and [`Events`] is alive):
    /// an event nobody will read need not be built.
    pub(crate) fn wants(&self) -> bool {
        let q = self.gate.lock();
        !q.ended && !q.consumer_gone
    }

    pub(crate) fn emit(&self, t_ms: u64, kind: EventKind) {
        {
            let mut q = self.gate.lock();
            if q.ended || q.consumer_gone {
                return;
            }
            q.events.push_back(Event {
                kind,
                t_ms,
                seq: crate::transcript::next_seq(),
            });
            self.gate.pending.fetch_add(1, Ordering::AcqRel);
        }
        self.gate.arrived.notify_one();
    }

    /// Ends the stream: the consumer's `recv` returns `None` after the last event.
    pub(crate) fn close(&mut self) {
        self.gate.lock().ended = true;
        self.gate.arrived.notify_one();
    }
}
