//! The stress feed: what one gateway session serves a stress client (`jt808-harness stress`, or
//! `serve --feed stress` for a fleet sharded over machines). Numbered 0x0200 location reports, and
//! a terminal that confirms every platform command, so the client can count what was lost,
//! duplicated or left unconfirmed. It lives with the gateway's sources (the gateway must not depend
//! on the stress orchestration); the stress side reads the numbers back with [`recognise`].
//!
//! Session `/c/<id>` is client `id` of the fleet ([`session_path`]); its frames carry phone
//! [`FIRST_PHONE`]` + id`, which is how a client tells the stress feed from any other feed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::codec::body::location::{ItemValue, Location, LocationItem};
use crate::codec::body::{Body, GeneralResponse};
use crate::codec::wire::BcdTime;
use crate::codec::{Message, Phone, Version};
use crate::gateway::{Feed, FeedItem};

/// First phone number of the fleet; client `id` is this plus `id`.
pub const FIRST_PHONE: u64 = 13_900_000_000;

/// No stop time set (the [`StressFeed`] stop flag's value until a drain begins; forever under
/// `serve`).
pub const NO_STOP: u64 = u64::MAX;

/// Most clients of one stress fleet (every shard together): ids below it keep [`phone_of`] at 11
/// digits.
pub const MAX_CLIENTS: u64 = 1_000_000;

/// Default clients of a stress fleet (`--clients`).
pub const DEFAULT_CLIENTS: usize = 1000;

/// Default interval between one session's numbered frames (`--frame-interval-ms`).
pub const DEFAULT_FRAME_INTERVAL: Duration = Duration::from_secs(1);

/// Session path of client `id` (global id, also under `--shard`).
pub fn session_path(id: usize) -> String {
    format!("/c/{id}")
}

/// The client id of a session path made by [`session_path`].
pub fn client_of_session(path: &str) -> Option<usize> {
    path.strip_prefix("/c/")?.parse().ok()
}

/// The phone of client `id`: [`FIRST_PHONE`]` + id`.
pub fn phone_of(id: usize) -> Phone {
    // 11 digits below a million clients: always a valid phone.
    Phone::parse(&(FIRST_PHONE + id as u64).to_string()).unwrap_or_else(|_| Phone::from_bcd(&[0; 6]))
}

/// What one gateway session serves in a stress run: numbered 0x0200 location reports, frame `k` due
/// at `phase + k × interval` of gateway time, and a terminal that confirms every platform command
/// with 0x0001 (JT/T 808-2019 §8.1: the terminal answers a platform message that needs no specific
/// answer with the general response naming its serial and id).
///
/// Frame `k` carries `k` twice: as its header serial (wrapping at 65,536) and whole as the mileage
/// item 0x01 (a DWORD), which is what [`frame_seq`] reads back. The phase spreads the fleet's frames
/// over the interval instead of offering all of them at the same instant.
///
/// The schedule ends at the stop time (gateway time, shared with whoever runs the gateway): frames
/// due at or after it are never made, so the number each session offers is [`frames_before`] of the
/// stop time, known without asking the gateway. With [`FeedSettings::frames`] it also ends after
/// that many frames, a count a client of a gateway it does not control knows in advance.
#[derive(Debug)]
pub struct StressFeed {
    phone: Phone,
    interval: Duration,
    phase: Duration,
    next: u64,
    limit: Option<u64>,
    stop: Arc<AtomicU64>,
    reply_serial: u16,
}

/// What every session of a stress feed serves: the same on the gateway and in the clients' count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedSettings {
    /// One numbered frame this often (`--frame-interval-ms`). Default
    /// [`DEFAULT_FRAME_INTERVAL`].
    pub interval: Duration,
    /// Frames per session, then none (`--frames`); `None`: until the stop time.
    pub frames: Option<u64>,
}

impl Default for FeedSettings {
    fn default() -> Self {
        FeedSettings {
            interval: DEFAULT_FRAME_INTERVAL,
            frames: None,
        }
    }
}

impl StressFeed {
    /// The feed of session `path` (client id from [`client_of_session`]; another path gets id 0).
    /// `stop` holds the stop time in gateway microseconds, [`NO_STOP`] until set.
    pub fn new(path: &str, interval: Duration, stop: Arc<AtomicU64>) -> StressFeed {
        let settings = FeedSettings { interval, frames: None };
        StressFeed::with_settings(path, settings, stop)
    }

    /// [`StressFeed::new`] with every setting.
    pub fn with_settings(path: &str, settings: FeedSettings, stop: Arc<AtomicU64>) -> StressFeed {
        let id = client_of_session(path).unwrap_or(0);
        StressFeed {
            phone: phone_of(id),
            interval: settings.interval.max(Duration::from_millis(1)),
            phase: phase_of(id, settings.interval),
            next: 0,
            limit: settings.frames,
            stop,
            reply_serial: 0,
        }
    }

    /// The per-session feed factory of a gateway serving the stress feed (what
    /// [`crate::gateway::Gateway::new`] takes).
    pub fn factory(settings: FeedSettings, stop: Arc<AtomicU64>) -> impl Fn(&str) -> Box<dyn Feed> + Send + Sync {
        move |path| Box::new(StressFeed::with_settings(path, settings, stop.clone())) as Box<dyn Feed>
    }
}

/// The offset of client `id`'s frame schedule: hundredths of the interval, by id.
pub fn phase_of(id: usize, interval: Duration) -> Duration {
    interval.max(Duration::from_millis(1)) * (id % 100) as u32 / 100
}

/// How many frames a session whose schedule is `phase + k × interval` offers before `stop`.
pub fn frames_before(stop: Duration, phase: Duration, interval: Duration) -> u64 {
    let interval = interval.max(Duration::from_millis(1)).as_micros();
    match stop.as_micros().checked_sub(phase.as_micros()) {
        Some(span) if span > 0 => span.div_ceil(interval) as u64,
        _ => 0,
    }
}

/// The frame's stress sequence number, if it is shaped like a [`StressFeed`] frame (0x0200 with a
/// mileage item); [`recognise`] also checks whose it is.
pub fn frame_seq(m: &Message) -> Option<u64> {
    match (&m.body, m.header.msg_id) {
        (Body::LocationReport(loc), Location::ID) => match loc.item(0x01) {
            Some(LocationItem {
                value: ItemValue::Mileage(v),
                ..
            }) => Some(u64::from(v)),
            _ => None,
        },
        _ => None,
    }
}

/// What a message client `id` received is, read as the stress feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StressFrame {
    /// Numbered frame `seq` of this client's session.
    Numbered(u64),
    /// The terminal's 0x0001 answer to one of this client's commands.
    Answer,
    /// Not the stress feed: another feed, or another session's frames.
    Foreign,
}

/// Reads `m`, received by client `id`, as the stress feed: its frames carry the client's phone and
/// a header serial that is the mileage number modulo 65,536.
pub fn recognise(id: usize, m: &Message) -> StressFrame {
    if m.header.phone != phone_of(id) {
        return StressFrame::Foreign;
    }
    match frame_seq(m) {
        Some(seq) if m.header.serial == seq as u16 => StressFrame::Numbered(seq),
        None if m.header.msg_id == GeneralResponse::TERMINAL_ID => StressFrame::Answer,
        _ => StressFrame::Foreign,
    }
}

/// A message for people, as in an error: `0x0200 from 13800000001, serial 5`.
pub fn describe(m: &Message) -> String {
    format!(
        "0x{:04X} from {}, serial {}",
        m.header.msg_id, m.header.phone, m.header.serial
    )
}

/// Frame `seq` of the feed to the terminal `phone`: a 2013 0x0200 report with its mileage item,
/// the number in the serial, the mileage and the latitude's last digits.
pub fn location_frame(phone: Phone, seq: u64) -> Vec<u8> {
    let loc = Location {
        alarm: 0,
        status: 0,
        lat: 22_543_096 + (seq % 1000) as u32,
        lng: 114_057_865,
        altitude: 12,
        speed: 400,
        direction: 90,
        time: BcdTime([0x25, 0x01, 0x01, 0x08, 0x00, 0x00]),
        items: [LocationItem {
            id: 0x01,
            value: ItemValue::Mileage(seq as u32),
        }]
        .into_iter()
        .collect(),
        issues: Vec::new(),
    };
    Message::new(
        Location::ID,
        Version::V2013,
        phone,
        seq as u16,
        Body::LocationReport(loc),
    )
    .encode()
}

impl Feed for StressFeed {
    fn next_item(&mut self) -> Option<FeedItem> {
        if self.limit.is_some_and(|n| self.next >= n) {
            return None;
        }
        let due = self.phase + self.interval * u32::try_from(self.next).ok()?;
        if due.as_micros() >= u128::from(self.stop.load(Ordering::Acquire)) {
            return None;
        }
        let item = FeedItem {
            due,
            bytes: location_frame(self.phone, self.next),
            close: None,
        };
        self.next += 1;
        Some(item)
    }

    fn on_client_message(&mut self, msg: &Message, now: Duration) -> Vec<FeedItem> {
        if !crate::client::outbox::needs_confirmation(msg.header.msg_id) {
            return Vec::new();
        }
        let answer = GeneralResponse {
            reply_serial: msg.header.serial,
            reply_id: msg.header.msg_id,
            result: GeneralResponse::OK,
        };
        let serial = self.reply_serial;
        self.reply_serial = self.reply_serial.wrapping_add(1);
        let m = Message::new(
            GeneralResponse::TERMINAL_ID,
            Version::V2013,
            msg.header.phone,
            serial,
            Body::TerminalGeneralResponse(answer),
        );
        vec![FeedItem {
            due: now,
            bytes: m.encode(),
            close: None,
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::body::RawBody;
    use crate::codec::{DecodeEvent, Decoder};

    fn decode(bytes: &[u8]) -> Message {
        let mut got = None;
        Decoder::default().push(bytes, Duration::ZERO, |e| {
            if let DecodeEvent::Message(m) = e {
                got = Some(m);
            }
        });
        got.expect("one message decoded")
    }

    #[test]
    fn the_feed_numbers_its_frames_stops_on_time_and_confirms_commands() {
        let stop = Arc::new(AtomicU64::new(NO_STOP));
        let interval = Duration::from_millis(100);
        let mut feed = StressFeed::new("/c/42", interval, stop.clone());
        let mut seqs = Vec::new();
        for _ in 0..3 {
            let item = feed.next_item().unwrap();
            let m = decode(&item.bytes);
            seqs.push((recognise(42, &m), m.header.serial, item.due));
        }
        let phase = phase_of(42, interval);
        assert_eq!(phase, Duration::from_millis(42));
        assert_eq!(
            seqs,
            [
                (StressFrame::Numbered(0), 0, phase),
                (StressFrame::Numbered(1), 1, phase + interval),
                (StressFrame::Numbered(2), 2, phase + interval * 2)
            ]
        );
        // Stop at 342 ms: frames due 242 (k = 2, taken) and 342 (k = 3, not made).
        let stop_at = Duration::from_millis(342);
        stop.store(stop_at.as_micros() as u64, Ordering::Release);
        assert_eq!(feed.next_item(), None);
        assert_eq!(frames_before(stop_at, phase, interval), 3);
        assert_eq!(frames_before(stop_at + Duration::from_micros(1), phase, interval), 4);
        assert_eq!(frames_before(phase, phase, interval), 0);

        let cmd = Message::new(
            0x8103,
            Version::V2013,
            phone_of(42),
            0,
            Body::Raw(RawBody {
                raw: vec![1, 0, 0, 0, 1, 4, 0, 0, 0, 30],
            }),
        );
        let answers = feed.on_client_message(&cmd, Duration::from_secs(1));
        assert_eq!(answers.len(), 1);
        let m = decode(&answers[0].bytes);
        let a = crate::client::replies::answer_of(&m).unwrap();
        assert_eq!((a.serial, a.answers, a.result), (0, 0x8103, Some(0)));
        assert_eq!(recognise(42, &m), StressFrame::Answer);
    }

    #[test]
    fn a_frame_count_ends_the_feed() {
        let settings = FeedSettings {
            interval: Duration::from_millis(10),
            frames: Some(3),
        };
        let mut feed = StressFeed::with_settings("/c/1", settings, Arc::new(AtomicU64::new(NO_STOP)));
        let seqs: Vec<_> = std::iter::from_fn(|| feed.next_item())
            .map(|i| recognise(1, &decode(&i.bytes)))
            .collect();
        assert_eq!(seqs, (0..3).map(StressFrame::Numbered).collect::<Vec<_>>());
    }

    #[test]
    fn another_sessions_or_feeds_frames_are_foreign() {
        let stop = Arc::new(AtomicU64::new(NO_STOP));
        let mut feed = StressFeed::new("/c/7", Duration::from_millis(10), stop);
        let m = decode(&feed.next_item().unwrap().bytes);
        assert_eq!(recognise(7, &m), StressFrame::Numbered(0));
        // Client 8 meeting client 7's frames: the gateway serves something else.
        assert_eq!(recognise(8, &m), StressFrame::Foreign);
        // A heartbeat with the right phone is not the stress feed either.
        let hb = Message::new(
            0x0002,
            Version::V2013,
            phone_of(7),
            0,
            Body::Raw(RawBody { raw: vec![] }),
        );
        assert_eq!(recognise(7, &hb), StressFrame::Foreign);
        assert_eq!(describe(&m), "0x0200 from 13900000007, serial 0");
    }
}
