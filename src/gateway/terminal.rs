//! The scripted terminal: answers the platform's commands the way a JT/T 808 (+ JT/T 1078)
//! terminal does. Pure and clock-free: `now` comes in, replies go out as [`FeedItem`]s with their
//! due times; no tokio, no I/O. Both the generated fleet ([`super::fleet`]) and the capture replay
//! ([`super::replay`]) answer through it.
//!
//! Every answer that names a serial names the command's (JT/T 808-2019 §8: "应答流水号"). What a
//! terminal holds between commands (parameters, position, door lock, areas, stored media) is in
//! [`held`], starting from its documented defaults; the bodies are built in [`answers`].
//!
//! | platform sends | terminal answers |
//! |---|---|
//! | 0x8001 platform general response, 0x8004 server time, 0x8100 register response | nothing (they are answers themselves; 0x8004 answers the terminal's 0x0004) |
//! | 0x8103 set parameters | the held parameters take the values, then 0x0001 result 0 (result 1 above [`held::MAX_PARAMS`]) |
//! | 0x8104 query all parameters | 0x0104 with every held parameter, in id order |
//! | 0x8106 query parameters | 0x0104 with the held ones among the asked ids, in the asked order (ids it does not hold are left out) |
//! | 0x8107 query attributes | 0x0107 in the terminal's version's layout (maker, model, terminal id and ICCID from the phone) |
//! | 0x8201 query location | 0x0201 with the current position (the latest report's fix, or a parked fix in Shenzhen at the current virtual time) |
//! | 0x8500 vehicle control | the doors lock or unlock (status bit 12), then 0x0500 with the current position |
//! | 0x8600 / 0x8602 / 0x8604 / 0x8606 set areas | held (setting type 0 replaces, 1 and 2 add or replace by id), then 0x0001 result 0 (result 1 above [`held::MAX_AREAS`]) |
//! | 0x8601 / 0x8603 / 0x8605 / 0x8607 delete areas | the named (or, with no ids, all) areas of the type go, then 0x0001 result 0 |
//! | 0x8608 query areas | 0x0608 with the held areas of the type (all, or the asked ids); result 1 for an unknown type |
//! | 0x8801 camera shot | 0x0805 naming the media ids, then one 0x0801 photo per shot at the current position, sub-packaged (save flag 1: kept, not uploaded); at most [`answers::MAX_SHOTS`] |
//! | 0x8802 stored media search | 0x0802 with the stored media (the shots so far) of that type, channel (0 any), event and time range |
//! | 0x9003 query audio/video attributes | 0x1003 |
//! | 0x8700 recorder data collection | 0x0700 naming the serial and command word, with a GB/T 19056 upload frame (`55 7A`, XOR checked): 0x01 driver licence, 0x02 the clock, 0x05 vehicle information (GBK plate), other words an empty frame |
//! | 0x8702 driver identity request | 0x0702 in the terminal's edition: an IC card read, a stand-in driver whose certificate follows the phone |
//! | 0x9205 query resource list | 0x1205 resource list naming the query's serial, sub-packaged when longer than [`TerminalSettings::packet_size`] (JT808.md §7.1) |
//! | 0x9206 file upload order | 0x0001 result 0 at once, then 0x1206 result 0 after [`TerminalSettings::upload_delay_ms`], both naming the 0x9206's serial (JT808.md §7.4: "0x9206, then the terminal answers 0x0001, uploads by FTP, and finally sends 0x1206") |
//! | 0x8003 retransmit request | the named packets of the message whose first packet had `orig_serial`, re-sent "each again with its own header" (JT808.md §4): same total and index, a new serial |
//! | 0x8800 multimedia upload response with indices | those packets of the 0x0801 with that media id, re-sent the same way (none without indices) |
//! | any other typed command (0x8105, 0x8202, 0x8300, 0x9101, 0x9207, ...) | 0x0001 result 0 |
//! | an untyped or vendor 0x8xxx / 0x9xxx | 0x0001 result 3 (unsupported) |
//! | a command whose body does not parse | 0x0001 result 2 (message error) |
//!
//! 0x8104, 0x8106, 0x8107, 0x8201, 0x8500, 0x8608, 0x8700, 0x8702, 0x8801, 0x8802, 0x9003, 0x9205,
//! 0x8003 and 0x8800 get no 0x0001: each has its own answer, which is also what the client confirms them by
//! (`client::replies::answer_of`).
//!
//! The answering terminal is the command's phone. A terminal the script was given
//! ([`TerminalScript::add`], the fleet's) answers with its own version and serial counter, so its
//! answers interleave with its reports without reusing a serial; any other phone gets a terminal on
//! first contact, with the command's header version and a counter from 0.
//!
//! Re-sending needs the packets of recently sent multi-packet messages: every terminal keeps the
//! last [`TerminalSettings::history`] of them. A request for an older one is answered 0x0001
//! result 1 (failure), logged with `tracing` and counted in [`ScriptStats`], never silently dropped.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub mod answers;
pub mod held;

use super::feed::FeedItem;
use crate::codec::body::{
    AvResource, AvResourceList, AvResourceQuery, Body, FileUploadComplete, GeneralResponse, Location, RetransmitRequest,
};
use crate::codec::frame::{MAX_BODY_LEN, frame_into};
use crate::codec::wire::BcdTime;
use crate::codec::{Header, Message, PacketInfo, Phone, Version};
use held::{Held, OverLimit};

/// Default [`TerminalSettings::upload_delay_ms`]: 3 s between the 0x0001 to a 0x9206 and its 0x1206.
pub const DEFAULT_UPLOAD_DELAY_MS: u64 = 3000;
/// Default [`TerminalSettings::packet_size`]: body bytes per packet of a sub-packaged answer.
pub const DEFAULT_PACKET_SIZE: usize = 512;
/// Default [`TerminalSettings::resources`]: items in a 0x1205 answer. 24 items are 678 body bytes,
/// so the default answer comes in two packets.
pub const DEFAULT_RESOURCES: u32 = 24;
/// Default [`TerminalSettings::history`]: multi-packet messages each terminal remembers for 0x8003.
pub const DEFAULT_HISTORY: usize = 16;

/// How the scripted terminals behave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TerminalSettings {
    /// Answer commands at all. `false` plays a terminal that never answers (the client's
    /// confirmation timeouts and re-sends). Default true.
    pub answer: bool,
    /// Delay between the 0x0001 to a 0x9206 and the 0x1206 "upload complete", ms. Default 3000.
    pub upload_delay_ms: u64,
    /// Body bytes per packet of a sub-packaged answer (1..=1023). Default 512.
    pub packet_size: usize,
    /// Items in a 0x1205 resource list. Default 24.
    pub resources: u32,
    /// Multi-packet messages each terminal keeps for re-sending (0x8003, 0x8800). Default 16.
    pub history: usize,
}

impl Default for TerminalSettings {
    fn default() -> Self {
        TerminalSettings {
            answer: true,
            upload_delay_ms: DEFAULT_UPLOAD_DELAY_MS,
            packet_size: DEFAULT_PACKET_SIZE,
            resources: DEFAULT_RESOURCES,
            history: DEFAULT_HISTORY,
        }
    }
}

impl TerminalSettings {
    /// Checks the values serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_BODY_LEN).contains(&self.packet_size) {
            return Err(format!(
                "terminal packet_size {} must be 1..={MAX_BODY_LEN} (the 10-bit body length, JT808.md §2.2)",
                self.packet_size
            ));
        }
        Ok(())
    }
}

/// The simulated clock of generated data: 2024-01-01 00:00:00 GMT+8. Times in generated reports
/// and resource lists are this plus virtual seconds, never the wall clock, so a seed gives the
/// same bytes on every run.
pub const SIM_EPOCH: &str = "2024-01-01 00:00:00";

/// Virtual second of the simulated day at which the session starts: 08:00, a fleet out on its
/// morning round. Report times and answers count from it.
pub const SIM_DAY_START_SECS: u64 = 8 * 3600;

/// Days from 1970-01-01 to [`SIM_EPOCH`].
const SIM_EPOCH_DAYS: i64 = 19_723;

/// The `BCD[6]` time (YYMMDDhhmmss, JT808.md §5.1) `secs` seconds after [`SIM_EPOCH`].
pub fn sim_time(secs: u64) -> BcdTime {
    let days = SIM_EPOCH_DAYS + (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let bcd = |v: u64| (((v / 10) % 10) << 4 | (v % 10)) as u8;
    BcdTime([
        bcd((y % 100) as u64),
        bcd(m as u64),
        bcd(d as u64),
        bcd(rem / 3600),
        bcd(rem / 60 % 60),
        bcd(rem % 60),
    ])
}

/// Proleptic Gregorian date of a day count from 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A multi-packet message a terminal sent, kept so named packets can be sent again.
#[derive(Debug, Clone)]
struct Sent {
    /// Serial of packet 1 (what 0x8003 names).
    first_serial: u16,
    /// The header, serial and packet item to be replaced.
    header: Header,
    /// The whole body.
    body: Vec<u8>,
    /// Body bytes per packet.
    packet_size: usize,
    /// Number of packets.
    total: u16,
}

/// One simulated terminal: its phone, header version, serial counter and the history of its
/// multi-packet messages.
#[derive(Debug, Clone)]
pub struct Terminal {
    phone: Phone,
    version: Version,
    serial: u16,
    history: VecDeque<Sent>,
    history_limit: usize,
    evicted: u64,
    /// Made on the first command that needs it: a fleet of 100,000 terminals that are never
    /// commanded pays nothing for parameters and areas (a session is bounded in memory).
    held: Option<Box<Held>>,
}

impl Terminal {
    /// A terminal whose first message gets serial `first_serial`, that remembers its last
    /// `history` multi-packet messages and holds the default state of [`held`].
    pub fn new(phone: Phone, version: Version, first_serial: u16, history: usize) -> Terminal {
        Terminal {
            phone,
            version,
            serial: first_serial,
            history: VecDeque::new(),
            history_limit: history,
            evicted: 0,
            held: None,
        }
    }

    /// What the terminal holds between commands (parameters, position, areas, media); `None`
    /// until a command needed it (it is then [`Held::new`]'s defaults).
    pub fn held(&self) -> Option<&Held> {
        self.held.as_deref()
    }

    /// What the terminal holds, made from the defaults on first use.
    pub fn held_mut(&mut self) -> &mut Held {
        let phone = self.phone;
        self.held.get_or_insert_with(|| Box::new(Held::new(&phone)))
    }

    /// Records the terminal's latest fix, which 0x8201 and 0x8500 answer with (the fleet calls
    /// this before a command reaches the terminal).
    pub fn set_position(&mut self, loc: Location) {
        self.held_mut().set_position(loc);
    }

    /// The phone.
    pub fn phone(&self) -> Phone {
        self.phone
    }

    /// The header version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Takes the next serial. "按发送顺序从 0 开始循环累加" (JT/T 808-2019 §4.4.3): it wraps at 0xFFFF.
    pub fn next_serial(&mut self) -> u16 {
        let s = self.serial;
        self.serial = self.serial.wrapping_add(1);
        s
    }

    /// Multi-packet messages remembered now (at most [`TerminalSettings::history`]).
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// Multi-packet messages dropped from the history because it was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Encodes a message of this terminal: one frame, or sub-packets of `packet_size` body bytes,
    /// every frame with the next serial. A multi-packet message is remembered for re-sending.
    pub fn encode(&mut self, msg_id: u16, body: &Body, packet_size: usize) -> Vec<Vec<u8>> {
        let packet_size = packet_size.clamp(1, MAX_BODY_LEN);
        let msg = Message::new(msg_id, self.version, self.phone, 0, body.clone());
        let first = self.serial;
        let frames = msg.encode_packets(packet_size, || self.next_serial());
        if frames.len() > 1 && self.history_limit > 0 {
            if self.history.len() >= self.history_limit {
                self.history.pop_front();
                self.evicted += 1;
            }
            let body = msg.body_bytes();
            self.history.push_back(Sent {
                first_serial: first,
                header: msg.header,
                body,
                packet_size,
                total: frames.len() as u16,
            });
        }
        frames
    }

    /// Packets `indices` of the remembered message whose first packet had `orig_serial`, each
    /// with a new serial; `None` when that message is not (or no longer) remembered. Indices
    /// outside 1..=total are skipped (and logged).
    fn resend(&mut self, orig_serial: u16, indices: &[u16]) -> Option<Vec<Vec<u8>>> {
        let pos = self.history.iter().rposition(|s| s.first_serial == orig_serial)?;
        Some(self.resend_at(pos, indices))
    }

    /// As [`Terminal::resend`], for the latest 0x0801 with this media id.
    fn resend_media(&mut self, media_id: u32, indices: &[u16]) -> Option<Vec<Vec<u8>>> {
        let pos = self
            .history
            .iter()
            .rposition(|s| s.header.msg_id == 0x0801 && s.body.get(..4) == Some(&media_id.to_be_bytes()[..]))?;
        Some(self.resend_at(pos, indices))
    }

    fn resend_at(&mut self, pos: usize, indices: &[u16]) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(indices.len());
        for &index in indices {
            let sent = &self.history[pos];
            if index == 0 || index > sent.total {
                tracing::warn!(
                    phone = %self.phone,
                    index,
                    total = sent.total,
                    "retransmit request names a packet index outside 1..=total; skipped"
                );
                continue;
            }
            let start = (index as usize - 1) * sent.packet_size;
            let end = (start + sent.packet_size).min(sent.body.len());
            let mut h = sent.header.clone();
            h.packet = Some(PacketInfo {
                total: sent.total,
                index,
            });
            let part = sent.body[start..end].to_vec();
            h.serial = self.next_serial();
            let mut content = Vec::with_capacity(h.wire_len() + part.len());
            h.write(part.len(), &mut content);
            content.extend_from_slice(&part);
            let mut frame = Vec::new();
            frame_into(&content, &mut frame);
            out.push(frame);
        }
        out
    }
}

/// What the script could not do, counted (each is also a `tracing` warning).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ScriptStats {
    /// Retransmit requests (0x8003, 0x8800) for a message not in the terminal's history
    /// (never sent, or older than [`TerminalSettings::history`]); answered 0x0001 result 1.
    pub retransmit_misses: u64,
    /// Commands answered 0x0001 result 3 (unsupported).
    pub unsupported: u64,
    /// Commands whose body did not parse, answered 0x0001 result 2.
    pub malformed: u64,
    /// Commands refused because they would pass a limit of what a terminal holds
    /// ([`held::MAX_PARAMS`], [`held::MAX_AREAS`]); answered 0x0001 result 1.
    pub over_limit: u64,
    /// 0x8801 asking for more than [`answers::MAX_SHOTS`] photos (that many were taken).
    pub shots_capped: u64,
}

/// The terminals of one gateway session and how they answer commands. See the module doc.
#[derive(Debug, Clone)]
pub struct TerminalScript {
    settings: TerminalSettings,
    rng: ChaCha8Rng,
    terminals: BTreeMap<Phone, Terminal>,
    stats: ScriptStats,
}

/// 0x0001 result: failure (JT808.md §3).
const RESULT_FAILURE: u8 = 1;
/// 0x0001 result: message error (JT808.md §3).
const RESULT_MESSAGE_ERROR: u8 = 2;

impl TerminalScript {
    /// A script with no terminals yet; `seed` drives the generated resource lists.
    pub fn new(settings: TerminalSettings, seed: u64) -> TerminalScript {
        TerminalScript {
            settings,
            rng: ChaCha8Rng::seed_from_u64(seed),
            terminals: BTreeMap::new(),
            stats: ScriptStats::default(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &TerminalSettings {
        &self.settings
    }

    /// Adds (or replaces) a terminal: commands to its phone are answered with its version and
    /// serial counter.
    pub fn add(&mut self, terminal: Terminal) {
        self.terminals.insert(terminal.phone, terminal);
    }

    /// The terminal with this phone, if known.
    pub fn terminal_mut(&mut self, phone: &Phone) -> Option<&mut Terminal> {
        self.terminals.get_mut(phone)
    }

    /// The terminal with this phone, if known.
    pub fn terminal(&self, phone: &Phone) -> Option<&Terminal> {
        self.terminals.get(phone)
    }

    /// What the script could not do so far.
    pub fn stats(&self) -> ScriptStats {
        self.stats
    }

    /// The terminal's answers to `msg`, which the client sent at `now`: one [`FeedItem`] per frame
    /// (a terminal writes each packet as it goes), due at `now` except the delayed 0x1206.
    pub fn on_client_message(&mut self, msg: &Message, now: Duration) -> Vec<FeedItem> {
        let id = msg.header.msg_id;
        // Only platform messages (0x8xxx, 0x9xxx) are commands to a terminal, and not the
        // platform's own answers.
        if !self.settings.answer || !(0x8000..=0x9FFF).contains(&id) || PLATFORM_ANSWERS.contains(&id) {
            return Vec::new();
        }
        let phone = msg.header.phone;
        let history = self.settings.history;
        // 2011 and 2013 share the header; a new terminal answers in the command's layout.
        let version = match msg.header.version {
            Version::V2019 => Version::V2019,
            _ => Version::V2013,
        };
        let term = self
            .terminals
            .entry(phone)
            .or_insert_with(|| Terminal::new(phone, version, 0, history));
        let mut ctx = Ctx {
            settings: &self.settings,
            rng: &mut self.rng,
            stats: &mut self.stats,
            now,
        };
        let outs = answer(&mut ctx, term, msg);
        let packet_size = self.settings.packet_size;
        let mut items = Vec::new();
        for out in outs {
            let (frames, delay) = match out {
                Out::Msg { id, body, delay } => (term.encode(id, &body, packet_size), delay),
                Out::Frames(frames) => (frames, Duration::ZERO),
            };
            items.extend(frames.into_iter().map(|bytes| FeedItem {
                due: now + delay,
                bytes,
                close: None,
            }));
        }
        items
    }
}

/// Platform messages that answer the terminal and so are not answered: 0x8001 general
/// response, 0x8004 server time (the answer to the terminal's 0x0004, JT/T 808-2019 §8.6),
/// 0x8100 register response.
const PLATFORM_ANSWERS: [u16; 3] = [0x8001, 0x8004, 0x8100];

/// What answering one command needs besides its terminal.
struct Ctx<'a> {
    settings: &'a TerminalSettings,
    rng: &'a mut ChaCha8Rng,
    stats: &'a mut ScriptStats,
    now: Duration,
}

/// One answer: a message to encode with the terminal's next serials, due `delay` after the
/// command, or frames already made (re-sent packets, which take their serials as they are made).
enum Out {
    Msg { id: u16, body: Body, delay: Duration },
    Frames(Vec<Vec<u8>>),
}

/// An answer due at once.
fn now((id, body): (u16, Body)) -> Out {
    Out::Msg {
        id,
        body,
        delay: Duration::ZERO,
    }
}

/// The answers to `msg` (see the module doc's table).
fn answer(ctx: &mut Ctx<'_>, term: &mut Terminal, msg: &Message) -> Vec<Out> {
    let (id, serial) = (msg.header.msg_id, msg.header.serial);
    let general = |result| vec![now(answers::general(serial, id, result))];
    match &msg.body {
        Body::Invalid(_) => {
            ctx.stats.malformed += 1;
            let phone = term.phone();
            tracing::warn!(%phone, msg_id = format_args!("0x{id:04X}"), serial, "command body does not parse; answered 0x0001 result 2");
            general(RESULT_MESSAGE_ERROR)
        }
        Body::AvResourceQuery(q) => vec![now(resource_list(ctx, serial, q))],
        Body::FileUploadCommand(_) => {
            let done = Body::FileUploadComplete(FileUploadComplete {
                reply_serial: serial,
                result: 0,
            });
            let delay = Duration::from_millis(ctx.settings.upload_delay_ms);
            let mut out = general(GeneralResponse::OK);
            out.push(Out::Msg {
                id: FileUploadComplete::ID,
                body: done,
                delay,
            });
            out
        }
        Body::PlatformRetransmitRequest(r) => resend(ctx, term, serial, r),
        Body::MediaUploadResponse(r) => match &r.indices {
            None => Vec::new(),
            Some(indices) => match term.resend_media(r.media_id, indices) {
                Some(frames) => vec![Out::Frames(frames)],
                None => {
                    ctx.stats.retransmit_misses += 1;
                    let (phone, media_id, history) = (term.phone(), r.media_id, ctx.settings.history);
                    tracing::warn!(%phone, media_id, history, "0x8800 names media not in the terminal's history (limit: history); answered 0x0001 result 1");
                    general(RESULT_FAILURE)
                }
            },
        },
        body => match held_answer(ctx, term, serial, id, body) {
            Some(out) => out,
            None if body.msg_id().is_some() => general(GeneralResponse::OK),
            None => {
                ctx.stats.unsupported += 1;
                general(GeneralResponse::UNSUPPORTED)
            }
        },
    }
}

/// 0x9205 -> 0x1205: [`TerminalSettings::resources`] five-minute items from 08:00 of the
/// simulated day, of the asked channel (or channels 1-4 in turn) and types.
fn resource_list(ctx: &mut Ctx<'_>, serial: u16, q: &AvResourceQuery) -> (u16, Body) {
    let items: Vec<AvResource> = (0..ctx.settings.resources)
        .map(|i| {
            let start = 3600 * 8 + u64::from(i) * 300;
            AvResource {
                channel: if q.channel == 0 { (i % 4) as u8 + 1 } else { q.channel },
                start: sim_time(start),
                end: sim_time(start + 300),
                alarm: if ctx.rng.random_bool(0.1) { 1 << 10 } else { 0 },
                av_type: if q.av_type <= 2 { q.av_type } else { 0 },
                stream_type: if matches!(q.stream_type, 1 | 2) {
                    q.stream_type
                } else {
                    1
                },
                storage_type: if matches!(q.storage_type, 1 | 2) {
                    q.storage_type
                } else {
                    1
                },
                file_size: ctx.rng.random_range(2_000_000..40_000_000),
            }
        })
        .collect();
    (
        AvResourceList::ID,
        Body::AvResourceList(AvResourceList::new(serial, items)),
    )
}

/// 0x8003: the named packets again, or 0x0001 result 1 for a message no longer remembered.
fn resend(ctx: &mut Ctx<'_>, term: &mut Terminal, serial: u16, r: &RetransmitRequest) -> Vec<Out> {
    match term.resend(r.orig_serial, &r.indices) {
        Some(frames) => vec![Out::Frames(frames)],
        None => {
            ctx.stats.retransmit_misses += 1;
            let (phone, orig_serial, history) = (term.phone(), r.orig_serial, ctx.settings.history);
            tracing::warn!(%phone, orig_serial, history, "0x8003 names a message not in the terminal's history (limit: history); answered 0x0001 result 1");
            vec![now(answers::general(serial, 0x8003, RESULT_FAILURE))]
        }
    }
}

/// The answers that read or change what the terminal holds; `None` for any other command.
fn held_answer(ctx: &mut Ctx<'_>, term: &mut Terminal, serial: u16, id: u16, body: &Body) -> Option<Vec<Out>> {
    let general = |result| vec![now(answers::general(serial, id, result))];
    let secs = SIM_DAY_START_SECS + ctx.now.as_secs();
    let position = move |term: &mut Terminal| term.held_mut().position(|| answers::fallback_position(secs));
    Some(match body {
        Body::SetParams(p) => match term.held_mut().set_params(&p.params) {
            Ok(()) => general(GeneralResponse::OK),
            Err(over) => refused(ctx, term, serial, id, over),
        },
        Body::QueryAllParams(_) => vec![now(answers::param_answer(serial, term.held_mut().params()))],
        Body::QueryParams(q) => vec![now(answers::param_answer(serial, term.held_mut().params_of(&q.ids)))],
        Body::QueryAttributes(_) => vec![now(answers::attributes(term))],
        Body::QueryLocation(_) => vec![now(answers::location_answer(
            answers::LOCATION_ANSWER,
            serial,
            position(term),
        ))],
        Body::VehicleControl(c) => {
            if let Some(locked) = answers::doors_of(c) {
                term.held_mut().set_doors_locked(locked);
            }
            let at = position(term);
            vec![now(answers::location_answer(
                answers::VEHICLE_CONTROL_ANSWER,
                serial,
                at,
            ))]
        }
        Body::QueryAreas(q) => match answers::area_answer(term.held_mut(), q) {
            Some(a) => vec![now(a)],
            None => general(RESULT_FAILURE),
        },
        Body::CameraShot(c) => {
            let at = position(term);
            let mut capped = false;
            let out = answers::camera_shot(term.held_mut(), ctx.rng, serial, c, at, &mut capped);
            if capped {
                ctx.stats.shots_capped += 1;
                let phone = term.phone();
                tracing::warn!(%phone, asked = c.command, max = answers::MAX_SHOTS, "0x8801 asks for more photos than MAX_SHOTS; took MAX_SHOTS");
            }
            out.into_iter().map(now).collect()
        }
        Body::MediaSearch(q) => vec![now(answers::media_search_answer(term.held_mut(), serial, q))],
        Body::QueryAvAttributes(_) => vec![now(answers::av_attributes())],
        Body::RecorderCollect(c) => vec![now(answers::recorder_upload(term, serial, c.command, sim_time(secs)))],
        Body::QueryDriver(_) => vec![now(answers::driver_identity(term, sim_time(secs)))],
        other => {
            if let Some((setting, areas)) = answers::areas_set(other) {
                let version = term.version();
                let areas = areas.into_iter().map(|a| a.fit(version)).collect();
                match term.held_mut().set_areas(setting, areas) {
                    Ok(()) => general(GeneralResponse::OK),
                    Err(over) => refused(ctx, term, serial, id, over),
                }
            } else if let Some((area_type, ids)) = answers::areas_deleted(id, other) {
                term.held_mut().delete_areas(area_type, &ids);
                general(GeneralResponse::OK)
            } else {
                return None;
            }
        }
    })
}

/// A change that would pass a limit of [`held`]: counted, logged, answered 0x0001 result 1.
fn refused(ctx: &mut Ctx<'_>, term: &Terminal, serial: u16, id: u16, over: OverLimit) -> Vec<Out> {
    ctx.stats.over_limit += 1;
    let phone = term.phone();
    tracing::warn!(%phone, msg_id = format_args!("0x{id:04X}"), limit = over.limit, max = over.max, "command would pass a terminal limit; answered 0x0001 result 1");
    vec![now(answers::general(serial, id, RESULT_FAILURE))]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_time_counts_from_the_epoch_across_month_and_year_ends() {
        assert_eq!(sim_time(0).to_string(), "2024-01-01 00:00:00");
        assert_eq!(sim_time(59 * 86_400 + 3661).to_string(), "2024-02-29 01:01:01");
        assert_eq!(sim_time(366 * 86_400 - 1).to_string(), "2024-12-31 23:59:59");
        assert_eq!(sim_time(366 * 86_400).to_string(), "2025-01-01 00:00:00");
    }

    #[test]
    fn serials_wrap_and_history_is_bounded() {
        let phone = Phone::parse("1").unwrap();
        let mut t = Terminal::new(phone, Version::V2013, 0xFFFF, 2);
        assert_eq!((t.next_serial(), t.next_serial()), (0xFFFF, 0));
        let big = Body::Raw(crate::codec::body::RawBody { raw: vec![1; 30] });
        for _ in 0..3 {
            assert_eq!(t.encode(0x0F00, &big, 10).len(), 3);
        }
        assert_eq!((t.history.len(), t.evicted()), (2, 1));
        // The first message (serials 1..=3) is gone; the second (4..=6) is still there.
        assert!(t.resend(1, &[1]).is_none());
        assert_eq!(t.resend(4, &[2, 9]).map(|f| f.len()), Some(1), "index 9 is skipped");
    }
}
