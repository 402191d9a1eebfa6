//! A generated fleet of terminals: each drives a seeded route and reports on its own timer, and the
//! fleet interleaves them by due time into one [`Feed`]. Pure and clock-free (no tokio, no wall
//! clock): the same seed gives the same bytes, and report times count from
//! [`SIM_EPOCH`](super::terminal::SIM_EPOCH), not from today.
//!
//! What a terminal sends, picked by the weights of [`Mix`] with the terminal's own RNG:
//!
//! | kind | message | what is in it |
//! |---|---|---|
//! | `location` | 0x0200 | the route's position, speed, heading, altitude and time, status ACC on + positioned + GPS + BeiDou, overspeed alarm above 100 km/h, and 12 additional items (JT808.md §5.4): 0x01 mileage, 0x02 fuel, 0x03 recorder speed, 0x14-0x17 video alarms (1078), 0x25 vehicle signal, 0x2A IO status, 0x2B analog, 0x30 signal strength, 0x31 satellites; 2019 terminals add 0x06 compartment temperature |
//! | `heartbeat` | 0x0002 | empty body |
//! | `batch` | 0x0704 | 2-5 reports along the route since the last message (batch type 0 or 1, §5.5) |
//! | `media` | 0x0801 | a JPEG-looking picture of 2-6 KiB with its location block (§5.6), sub-packaged |
//! | `av_list` | 0x1205 | a resource list of 20-60 items (reply serial 0: unsolicited), sub-packaged |
//!
//! With [`FleetConfig::message_ids`] a terminal sends the listed ids in turn instead, any
//! terminal-originated id typed by the codec (`"every"`: all of them, [`every_terminal_id`]);
//! the ids beyond the five above are built by [`messages`].
//!
//! Sub-packaged messages are split by [`Message::encode_packets`] with [`FleetConfig::packet_size`]
//! body bytes per packet, "every packet has its own serial number" (JT808.md §4), from the
//! terminal's own wrapping counter, which its answers to commands share ([`TerminalScript`]).
//!
//! # Timeline
//!
//! Terminal `i` sends its `k`-th message at `phase_i + k * interval_ms`, `phase_i` drawn from
//! `0..interval_ms` by its RNG, so the fleet does not report in lock-step. The packets of one
//! message follow it `packet_gap_ms` apart (0: back to back). Frames due at the same time come out
//! in terminal order (the lower phone first). With `frames_per_message = n > 1`, `n` consecutive
//! frames make one WebSocket message, due when its last frame is (a batching gateway sends when
//! its batch is full), so no frame ever leaves before its time.
//!
//! The fleet is lazy: it holds one pending message per terminal and the terminals' bounded
//! histories, never the stream, so `messages = 0` (unlimited) runs in constant memory.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod config;
pub mod messages;
mod route;

pub use config::{
    FleetConfig, FleetError, FleetVersion, MAX_FRAMES_PER_MESSAGE, MAX_INTERVAL_MS, MAX_TERMINALS, MessageIds, Mix,
    can_send, every_terminal_id, message_ids_problem,
};
use route::Route;

use super::feed::{Feed, FeedItem};
use super::terminal::held::Held;
use super::terminal::{SIM_DAY_START_SECS, Terminal, TerminalScript, TerminalSettings, sim_time};
use crate::codec::body::{
    AvResource, AvResourceList, BatchItem, BatchLocation, Body, EmptyBody, Location, MediaUpload,
};
use crate::codec::{Message, Phone, Version};

/// One fleet terminal's generator state (its serials and history live in the script).
#[derive(Debug)]
struct Generator {
    /// 0-based terminal index (where it starts in `message_ids`).
    index: u32,
    phone: Phone,
    version: Version,
    rng: ChaCha8Rng,
    route: Route,
    /// Messages generated so far.
    sent: u32,
    /// Due time of the next message, µs.
    next_due_us: u64,
    /// Virtual second of the route's state.
    route_secs: f64,
    /// Frames of the current message not yet out, with their due times.
    pending: VecDeque<(u64, Vec<u8>)>,
    /// Next 0x0801 media id.
    media_id: u32,
}

/// Report times start at 08:00 of the simulated day: a fleet out on its morning round.
const DAY_START_SECS: u64 = SIM_DAY_START_SECS;

/// The generated fleet: a [`Feed`] of its terminals' messages in due order, answering commands
/// through its [`TerminalScript`].
#[derive(Debug)]
pub struct Fleet {
    cfg: FleetConfig,
    /// The ids of [`FleetConfig::message_ids`], resolved once.
    ids: Option<Vec<u16>>,
    script: TerminalScript,
    gens: Vec<Generator>,
    /// (due µs, terminal index) of every terminal's next frame.
    queue: BinaryHeap<Reverse<(u64, u32)>>,
}

impl Fleet {
    /// A fleet from its settings; `seed` drives every choice (terminal `i` draws from stream
    /// `i + 1` of `ChaCha8Rng::seed_from_u64(seed)`, so adding terminals leaves the others' streams
    /// as they were).
    pub fn new(cfg: FleetConfig, seed: u64) -> Result<Fleet, FleetError> {
        cfg.validate()?;
        let settings = TerminalSettings {
            packet_size: cfg.packet_size,
            ..cfg.terminal.clone()
        };
        let mut script = TerminalScript::new(settings.clone(), seed);
        let mut gens = Vec::with_capacity(cfg.terminals as usize);
        let mut queue = BinaryHeap::with_capacity(cfg.terminals as usize);
        for i in 0..cfg.terminals {
            let number = cfg.first_phone + u64::from(i);
            let phone = Phone::parse(&number.to_string()).map_err(FleetError::Invalid)?;
            let version = cfg.version.of(i);
            script.add(Terminal::new(phone, version, cfg.first_serial, settings.history));
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(u64::from(i) + 1);
            let phase_us = if cfg.interval_ms > 0 {
                rng.random_range(0..cfg.interval_ms) * 1000
            } else {
                0
            };
            let route = Route::new(&mut rng);
            queue.push(Reverse((phase_us, i)));
            gens.push(Generator {
                index: i,
                phone,
                version,
                rng,
                route,
                sent: 0,
                next_due_us: phase_us,
                route_secs: phase_us as f64 / 1e6,
                pending: VecDeque::new(),
                media_id: 1,
            });
        }
        let ids = cfg.message_ids.as_ref().map(MessageIds::ids);
        Ok(Fleet {
            cfg,
            ids,
            script,
            gens,
            queue,
        })
    }

    /// The terminals' script (serial counters, histories, stats).
    pub fn script(&self) -> &TerminalScript {
        &self.script
    }

    /// The next frame of the fleet and its due time (µs), `None` when every terminal is done.
    pub fn next_frame(&mut self) -> Option<(u64, Vec<u8>)> {
        let Reverse((_, idx)) = self.queue.pop()?;
        let g = &mut self.gens[idx as usize];
        if g.pending.is_empty() {
            let due = g.next_due_us;
            let frames = Self::generate(&self.cfg, self.ids.as_deref(), &mut self.script, g, due);
            let gap = self.cfg.packet_gap_ms * 1000;
            g.pending
                .extend(frames.into_iter().enumerate().map(|(j, f)| (due + j as u64 * gap, f)));
            g.sent += 1;
            let grid = due + self.cfg.interval_ms * 1000;
            let last = g.pending.back().map_or(due, |p| p.0);
            g.next_due_us = grid.max(last);
        }
        let (due, frame) = g.pending.pop_front()?;
        let next = match g.pending.front() {
            Some((d, _)) => Some(*d),
            None if self.cfg.messages == 0 || g.sent < self.cfg.messages => Some(g.next_due_us),
            None => None,
        };
        if let Some(d) = next {
            self.queue.push(Reverse((d, idx)));
        }
        Some((due, frame))
    }

    /// One message of terminal `g`, due at `due_us`, as its frames.
    fn generate(
        cfg: &FleetConfig,
        ids: Option<&[u16]>,
        script: &mut TerminalScript,
        g: &mut Generator,
        due_us: u64,
    ) -> Vec<Vec<u8>> {
        let now_secs = due_us as f64 / 1e6;
        let dt = now_secs - g.route_secs;
        let secs = DAY_START_SECS + now_secs as u64;
        let pick = match ids {
            None => Pick::Mix(pick_kind(&cfg.mix, &mut g.rng)),
            Some(ids) => {
                let id = ids[(g.index as usize + g.sent as usize) % ids.len()];
                match messages::MIX_IDS.iter().position(|&m| m == id) {
                    Some(kind) => Pick::Mix(kind),
                    None => Pick::Id(id),
                }
            }
        };
        let (msg_id, body) = match pick {
            Pick::Mix(kind) => Self::mixed(kind, g, now_secs, dt),
            Pick::Id(id) => {
                g.route.advance(&mut g.rng, dt);
                let term = script
                    .terminal(&g.phone)
                    .expect("every fleet terminal was added to the script in Fleet::new");
                let defaults;
                let held = match term.held() {
                    Some(h) => h,
                    None => {
                        defaults = Held::new(&g.phone);
                        &defaults
                    }
                };
                let scene = messages::Scene {
                    term,
                    held,
                    fix: g.route.basic(secs),
                    secs,
                };
                let body = messages::body_of(id, &scene, &mut g.rng)
                    .expect("message_ids are validated against every_terminal_id, which body_of builds (tested)");
                (id, body)
            }
        };
        g.route_secs = now_secs;
        let term = script
            .terminal_mut(&g.phone)
            .expect("every fleet terminal was added to the script in Fleet::new");
        term.encode(msg_id, &body, cfg.packet_size)
    }

    /// A message of the weighted mix: `kind` indexes [`messages::MIX_IDS`].
    fn mixed(kind: usize, g: &mut Generator, now_secs: f64, dt: f64) -> (u16, Body) {
        let secs = |s: f64| DAY_START_SECS + s as u64;
        match kind {
            0 => {
                g.route.advance(&mut g.rng, dt);
                (
                    Location::ID,
                    Body::LocationReport(g.route.report(secs(now_secs), g.version, &mut g.rng)),
                )
            }
            1 => {
                g.route.advance(&mut g.rng, dt);
                (EmptyBody::HEARTBEAT_ID, Body::Heartbeat(EmptyBody::default()))
            }
            2 => {
                // The points since the last message, in steps.
                let n = g.rng.random_range(2..=5u16);
                let step = dt / f64::from(n);
                let mut items = Vec::with_capacity(n as usize);
                for j in 1..=n {
                    g.route.advance(&mut g.rng, step);
                    let t = g.route_secs + step * f64::from(j);
                    items.push(BatchItem::Location(g.route.report(secs(t), g.version, &mut g.rng)));
                }
                let batch_type = u8::from(g.rng.random_bool(0.3));
                let body = BatchLocation {
                    count: n,
                    batch_type,
                    items,
                    cut: None,
                };
                (BatchLocation::ID, Body::BatchLocation(body))
            }
            3 => {
                g.route.advance(&mut g.rng, dt);
                (MediaUpload::ID, Self::media(g, secs(now_secs)))
            }
            _ => {
                g.route.advance(&mut g.rng, dt);
                (AvResourceList::ID, Self::av_list(g, secs(now_secs)))
            }
        }
    }

    /// 0x0801: a JPEG-looking picture of 2-6 KiB with its location block.
    fn media(g: &mut Generator, secs: u64) -> Body {
        let len = g.rng.random_range(2048..6144usize);
        let mut data = vec![0u8; len];
        g.rng.fill(&mut data[..]);
        // A JPEG's SOI/APP0 marker at the start and EOI at the end.
        data[..4].copy_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
        data[len - 2..].copy_from_slice(&[0xFF, 0xD9]);
        let media_id = g.media_id;
        g.media_id = g.media_id.wrapping_add(1);
        Body::MediaUpload(Box::new(MediaUpload {
            media_id,
            media_type: 0,
            media_format: 0,
            event: g.rng.random_range(0..4),
            channel: g.rng.random_range(1..5),
            location: Some(g.route.basic(secs)),
            data,
        }))
    }

    /// 0x1205: an unsolicited list of 20-60 ten-minute items of the day before.
    fn av_list(g: &mut Generator, secs: u64) -> Body {
        let n = g.rng.random_range(20..=60u32);
        let base = secs.saturating_sub(86_400);
        let items = (0..n)
            .map(|i| {
                let start = base + u64::from(i) * 600;
                AvResource {
                    channel: (i % 4) as u8 + 1,
                    start: sim_time(start),
                    end: sim_time(start + 600),
                    alarm: 0,
                    av_type: 0,
                    stream_type: 1,
                    storage_type: 1,
                    file_size: g.rng.random_range(2_000_000..40_000_000),
                }
            })
            .collect();
        Body::AvResourceList(AvResourceList::new(0, items))
    }
}

/// What a terminal sends next: a kind of the weighted mix, or an id of `message_ids`.
enum Pick {
    Mix(usize),
    Id(u16),
}

/// A kind of the mix by its weights (an index into [`messages::MIX_IDS`]).
fn pick_kind(m: &Mix, rng: &mut ChaCha8Rng) -> usize {
    let weights = [m.location, m.heartbeat, m.batch, m.media, m.av_list];
    let total: u32 = weights.iter().sum();
    let mut pick = rng.random_range(0..total);
    weights
        .iter()
        .position(|&w| {
            if pick < w {
                true
            } else {
                pick -= w;
                false
            }
        })
        .unwrap_or(0)
}

impl Feed for Fleet {
    fn next_item(&mut self) -> Option<FeedItem> {
        let (mut due, mut bytes) = self.next_frame()?;
        for _ in 1..self.cfg.frames_per_message {
            match self.next_frame() {
                Some((d, f)) => {
                    due = d;
                    bytes.extend_from_slice(&f);
                }
                None => break,
            }
        }
        Some(FeedItem {
            due: Duration::from_micros(due),
            bytes,
            close: None,
        })
    }

    fn on_client_message(&mut self, msg: &Message, now: Duration) -> Vec<FeedItem> {
        // Where the vehicle is (its route as of its latest message) is what it answers 0x8201
        // and 0x8500 with; set only when a command comes, so uncommanded terminals hold nothing.
        let phone = msg.header.phone;
        let index = phone
            .to_string()
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_sub(self.cfg.first_phone));
        if let Some(g) = index.and_then(|i| self.gens.get(usize::try_from(i).ok()?))
            && g.phone == phone
            && let Some(term) = self.script.terminal_mut(&phone)
        {
            term.set_position(g.route.basic(DAY_START_SECS + g.route_secs as u64));
        }
        self.script.on_client_message(msg, now)
    }
}
