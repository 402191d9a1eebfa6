//! The bookkeeping of a running stress fleet: each client's events, as they arrive from its
//! [`Events`] stream, go into the run's [`Metrics`] and into a few counters the orchestration waits
//! on (connected clients, frames received, commands outstanding, problems). A message that is not
//! the stress feed is noted once (`Book::foreign`) and counted nowhere, so a gateway serving
//! something else is reported as such instead of as millions of lost frames.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::SelectAll;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::feed::{StressFrame, describe, recognise};
use super::metrics::Metrics;
use super::sys::ResourceSample;
use crate::client::{DisconnectReason, Event, EventKind, Events};

/// The command every client sends: 0x8103 set terminal parameters (JT/T 808-2019 §8.8), one
/// parameter (0x0001 heartbeat interval, DWORD 30 s). The terminal answers it with 0x0001.
pub const COMMAND_ID: u16 = 0x8103;

/// One client's state as its events tell it.
#[derive(Debug, Default, Clone)]
pub(crate) struct ClientBook {
    /// Its global id (its session path and phone).
    pub(crate) id: usize,
    /// Run time the client was started at (its events' `t_ms` count from there).
    pub(crate) offset: Duration,
    /// No event of this client is placed before this (the last storm that dropped it).
    pub(crate) floor: Duration,
    connected: bool,
    frames: u64,
    /// Commands queued and not yet confirmed.
    outstanding: u64,
    /// When its last event happened and what it was (named in a failed drain's report).
    last: Option<(Duration, &'static str)>,
}

/// The fleet's book (behind [`Shared`]'s lock).
pub(crate) struct Book {
    pub(crate) metrics: Metrics,
    pub(crate) clients: Vec<ClientBook>,
    pub(crate) connected: usize,
    pub(crate) attempts: u64,
    pub(crate) problems: Problems,
    /// The first message that was not the stress feed, described.
    pub(crate) foreign: Option<String>,
}

/// Client events that fail the run.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    pub(crate) queue_full: u64,
    pub(crate) delivery_failed: u64,
    pub(crate) gave_up: u64,
}

impl Problems {
    /// One line per kind that happened.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.queue_full > 0 {
            out.push(format!("{} commands refused: send queue full", self.queue_full));
        }
        if self.delivery_failed > 0 {
            out.push(format!(
                "{} commands given up after their re-sends",
                self.delivery_failed
            ));
        }
        if self.gave_up > 0 {
            out.push(format!("{} clients gave up reconnecting", self.gave_up));
        }
        out
    }
}

impl Book {
    /// An empty book for the clients of global ids `ids` (local index = position).
    pub(crate) fn new(ids: &[usize]) -> Book {
        Book {
            metrics: Metrics::new(ids.len()),
            clients: ids
                .iter()
                .map(|&id| ClientBook {
                    id,
                    ..ClientBook::default()
                })
                .collect(),
            connected: 0,
            attempts: 0,
            problems: Problems::default(),
            foreign: None,
        }
    }

    /// Takes event `e` of local client `j`.
    pub(crate) fn on_event(&mut self, j: usize, e: Event) {
        let Some(c) = self.clients.get_mut(j) else { return };
        let at = (c.offset + Duration::from_millis(e.t_ms)).max(c.floor);
        c.last = Some((at, kind_name(&e.kind)));
        let m = &mut self.metrics;
        match e.kind {
            // Reconnection attempts only: a client's first attempt is paced by the ramp
            // (`connect_rate`), not by its backoff, and would bury the storms' peaks.
            EventKind::Connecting { attempt } if attempt > 1 => {
                m.attempt(at);
                self.attempts += 1;
            }
            EventKind::Connected { .. } => {
                m.connected(j, at);
                if !c.connected {
                    c.connected = true;
                    self.connected += 1;
                }
            }
            EventKind::Disconnected { reason, .. } => {
                if reason != DisconnectReason::Shutdown {
                    m.disconnected(j, at);
                }
                if c.connected {
                    c.connected = false;
                    self.connected -= 1;
                }
            }
            EventKind::Message(msg) => match recognise(c.id, &msg) {
                StressFrame::Numbered(seq) => {
                    m.frame_delivered(j, seq);
                    c.frames += 1;
                }
                StressFrame::Answer => {}
                StressFrame::Foreign => {
                    self.foreign.get_or_insert_with(|| describe(&msg));
                }
            },
            EventKind::FrameRejected { error, .. } => {
                self.foreign
                    .get_or_insert_with(|| format!("a frame that fails its checks: {error}"));
            }
            EventKind::Queued { msg_id, serial, .. } if msg_id == COMMAND_ID => {
                m.command_sent(j, u64::from(serial), at);
                c.outstanding += 1;
            }
            EventKind::Resent { msg_id, serial, .. } if msg_id == COMMAND_ID => {
                m.command_resent(j, u64::from(serial), at);
            }
            EventKind::Confirmed { msg_id, serial, .. } if msg_id == COMMAND_ID => {
                m.command_confirmed(j, u64::from(serial), at);
                c.outstanding = c.outstanding.saturating_sub(1);
            }
            EventKind::QueueFull { .. } => self.problems.queue_full += 1,
            EventKind::DeliveryFailed { .. } => self.problems.delivery_failed += 1,
            EventKind::GaveUp { .. } => self.problems.gave_up += 1,
            _ => {}
        }
    }

    /// The first `most` clients that are not drained (see [`Book::drained`]), each said in a
    /// line: its id, whether it is connected, its frames against those expected, its commands
    /// outstanding and its last event; and how many others there are.
    pub(crate) fn laggards(&self, expected: Option<&[u64]>, most: usize) -> Vec<String> {
        let mut lines = Vec::new();
        let mut others = 0usize;
        for (j, c) in self.clients.iter().enumerate() {
            let want = expected.and_then(|e| e.get(j).copied());
            if c.connected && c.outstanding == 0 && want.is_none_or(|w| c.frames >= w) {
                continue;
            }
            if lines.len() == most {
                others += 1;
                continue;
            }
            let frames = match want {
                Some(w) => format!("{}/{w} frames", c.frames),
                None => format!("{} frames", c.frames),
            };
            let last = match c.last {
                Some((at, kind)) => format!("last event {kind} at {:.3} s", at.as_secs_f64()),
                None => "no event".to_string(),
            };
            lines.push(format!(
                "client {}: {}, {frames}, {} commands outstanding, {last}",
                c.id,
                if c.connected { "connected" } else { "down" },
                c.outstanding
            ));
        }
        if others > 0 {
            lines.push(format!("and {others} more clients not drained"));
        }
        lines
    }

    /// True when every client is connected, has `expected` frames (when known) and no command
    /// outstanding.
    pub(crate) fn drained(&self, expected: Option<&[u64]>) -> bool {
        self.clients.iter().enumerate().all(|(j, c)| {
            c.connected && c.outstanding == 0 && expected.is_none_or(|e| c.frames >= e.get(j).copied().unwrap_or(0))
        })
    }
}

/// The book and the run's start, shared by the collector and the orchestration.
pub(crate) struct Shared {
    start: Instant,
    book: Mutex<Book>,
}

impl Shared {
    /// A book for `ids`, the run starting now.
    pub(crate) fn new(ids: &[usize]) -> Shared {
        Shared {
            start: Instant::now(),
            book: Mutex::new(Book::new(ids)),
        }
    }

    /// The book, locked.
    pub(crate) fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Time since the run started.
    pub(crate) fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

/// This process's reading plus the gateway child's, if any.
pub(crate) fn add_samples(a: ResourceSample, b: Option<ResourceSample>) -> ResourceSample {
    match b {
        None => a,
        Some(b) => ResourceSample {
            rss_bytes: a.rss_bytes + b.rss_bytes,
            hwm_bytes: a.hwm_bytes + b.hwm_bytes,
            cpu: a.cpu + b.cpu,
        },
    }
}

/// The name of an event's kind, as its JSON `kind` field spells it.
fn kind_name(k: &EventKind) -> &'static str {
    match k {
        EventKind::Connecting { .. } => "connecting",
        EventKind::Connected { .. } => "connected",
        EventKind::Disconnected { .. } => "disconnected",
        EventKind::Message(_) => "message",
        EventKind::Queued { .. } => "queued",
        EventKind::Confirmed { .. } => "confirmed",
        EventKind::Resent { .. } => "resent",
        _ => "other",
    }
}

type EventStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = (usize, Event)> + Send>>;

fn event_stream(j: usize, events: Events) -> EventStream {
    Box::pin(futures_util::stream::unfold(events, move |mut ev| async move {
        ev.recv().await.map(|e| ((j, e), ev))
    }))
}

/// Takes every client's events (registered through `new`) into the book until `new` closes and
/// every stream ended.
pub(crate) async fn collect(shared: Arc<Shared>, mut new: mpsc::UnboundedReceiver<(usize, Events)>) {
    let mut all: SelectAll<EventStream> = SelectAll::new();
    let mut open = true;
    loop {
        tokio::select! {
            n = new.recv(), if open => match n {
                Some((j, ev)) => all.push(event_stream(j, ev)),
                None => open = false,
            },
            e = all.next(), if !all.is_empty() => {
                if let Some((j, e)) = e {
                    let mut book = shared.book();
                    book.on_event(j, e);
                    // Take what else is ready under the same lock.
                    for _ in 0..256 {
                        match futures_util::FutureExt::now_or_never(all.next()) {
                            Some(Some((j, e))) => book.on_event(j, e),
                            _ => break,
                        }
                    }
                }
            }
            else => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(t_ms: u64, kind: EventKind) -> Event {
        Event { kind, t_ms, seq: 0 }
    }

    /// A failed drain says which clients are short and how: connected with too few frames, down,
    /// or with a command outstanding; the rest are counted, not listed.
    #[test]
    fn laggards_name_the_clients_not_drained() {
        let mut b = Book::new(&[7, 8, 9, 10]);
        b.on_event(0, event(5, EventKind::Connected { attempt: 1 }));
        b.on_event(2, event(9, EventKind::Connected { attempt: 1 }));
        b.on_event(3, event(9, EventKind::Connected { attempt: 1 }));
        let expected = [2, 0, 0, 0];
        assert!(!b.drained(Some(&expected)));
        assert_eq!(
            b.laggards(Some(&expected), 5),
            [
                "client 7: connected, 0/2 frames, 0 commands outstanding, last event connected at 0.005 s",
                "client 8: down, 0/0 frames, 0 commands outstanding, no event",
            ]
        );
        assert_eq!(
            b.laggards(Some(&expected), 1),
            [
                "client 7: connected, 0/2 frames, 0 commands outstanding, last event connected at 0.005 s",
                "and 1 more clients not drained",
            ]
        );
        b.on_event(1, event(20, EventKind::Connected { attempt: 2 }));
        assert_eq!(b.laggards(Some(&[0, 0, 0, 0]), 5), Vec::<String>::new());
        assert!(b.drained(Some(&[0, 0, 0, 0])));
    }
}
