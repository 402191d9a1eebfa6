//! The scripted terminal: answers the platform's commands the way a JT/T 808 (+ JT/T 1078)
//! terminal does. Pure and clock-free: `now` comes in, replies go out as [`FeedItem`]s with their
//! due times; no tokio, no I/O. Both the generated fleet ([`super::fleet`]) and the capture replay
//! ([`super::replay`]) answer through it.
//!
//! | platform sends | terminal answers |
//! |---|---|
//! | 0x8001 platform general response, 0x8100 register response | nothing (they are answers themselves) |
//! | 0x9205 query resource list | 0x1205 resource list naming the query's serial, sub-packaged when longer than [`TerminalSettings::packet_size`] (JT808.md §7.1) |
//! | 0x9206 file upload order | 0x0001 result 0 at once, then 0x1206 result 0 after [`TerminalSettings::upload_delay_ms`], both naming the 0x9206's serial (JT808.md §7.4: "0x9206, then the terminal answers 0x0001, uploads by FTP, and finally sends 0x1206") |
//! | 0x9207 upload control, 0x9101 / 0x9102 live AV | 0x0001 result 0 |
//! | 0x8003 retransmit request | the named packets of the message whose first packet had `orig_serial`, re-sent "each again with its own header" (JT808.md §4): same total and index, a new serial |
//! | 0x8800 multimedia upload response with indices | those packets of the 0x0801 with that media id, re-sent the same way |
//! | any other 0x8xxx / 0x9xxx | 0x0001 result 3 (unsupported) |
//! | a supported command whose body does not parse | 0x0001 result 2 (message error) |
//!
//! 0x9205, 0x8003 and 0x8800 get no 0x0001: each has its own answer (the list, the re-sent
//! packets), which is also what the client waits for (`client::outbox::needs_confirmation`).
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

use super::feed::FeedItem;
use crate::codec::body::{AvResource, AvResourceList, Body, FileUploadComplete, GeneralResponse, RetransmitRequest};
use crate::codec::frame::{MAX_BODY_LEN, frame_into};
use crate::codec::wire::BcdTime;
use crate::codec::{Header, Message, PacketInfo, Phone, Version};

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
}

impl Terminal {
    /// A terminal whose first message gets serial `first_serial` and that remembers its last
    /// `history` multi-packet messages.
    pub fn new(phone: Phone, version: Version, first_serial: u16, history: usize) -> Terminal {
        Terminal {
            phone,
            version,
            serial: first_serial,
            history: VecDeque::new(),
            history_limit: history,
            evicted: 0,
        }
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
        // Only platform messages (0x8xxx, 0x9xxx) are commands to a terminal.
        if !self.settings.answer || !(0x8000..=0x9FFF).contains(&id) || matches!(id, 0x8001 | 0x8100) {
            return Vec::new();
        }
        let packet_size = self.settings.packet_size;
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
        let serial = msg.header.serial;
        let general = |term: &mut Terminal, result: u8| {
            let body = Body::TerminalGeneralResponse(GeneralResponse {
                reply_serial: serial,
                reply_id: id,
                result,
            });
            term.encode(GeneralResponse::TERMINAL_ID, &body, packet_size)
        };
        let at = |frames: Vec<Vec<u8>>, due: Duration| {
            frames.into_iter().map(move |bytes| FeedItem {
                due,
                bytes,
                close: None,
            })
        };

        if matches!(msg.body, Body::Invalid(_)) {
            self.stats.malformed += 1;
            tracing::warn!(%phone, msg_id = format_args!("0x{id:04X}"), serial, "command body does not parse; answered 0x0001 result 2");
            return at(general(term, RESULT_MESSAGE_ERROR), now).collect();
        }
        match (&msg.body, id) {
            (Body::AvResourceQuery(q), 0x9205) => {
                let items = (0..self.settings.resources)
                    .map(|i| {
                        let start = 3600 * 8 + u64::from(i) * 300;
                        AvResource {
                            channel: if q.channel == 0 { (i % 4) as u8 + 1 } else { q.channel },
                            start: sim_time(start),
                            end: sim_time(start + 300),
                            alarm: if self.rng.random_bool(0.1) { 1 << 10 } else { 0 },
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
                            file_size: self.rng.random_range(2_000_000..40_000_000),
                        }
                    })
                    .collect();
                let body = Body::AvResourceList(AvResourceList {
                    reply_serial: serial,
                    items,
                });
                at(term.encode(AvResourceList::ID, &body, packet_size), now).collect()
            }
            (Body::FileUploadCommand(_), 0x9206) => {
                let mut out: Vec<FeedItem> = at(general(term, GeneralResponse::OK), now).collect();
                let done = Body::FileUploadComplete(FileUploadComplete {
                    reply_serial: serial,
                    result: 0,
                });
                let due = now + Duration::from_millis(self.settings.upload_delay_ms);
                out.extend(at(term.encode(FileUploadComplete::ID, &done, packet_size), due));
                out
            }
            (Body::FileUploadControl(_), 0x9207)
            | (Body::LiveAvRequest(_), 0x9101)
            | (Body::LiveAvControl(_), 0x9102) => at(general(term, GeneralResponse::OK), now).collect(),
            (Body::PlatformRetransmitRequest(RetransmitRequest { orig_serial, indices }), 0x8003) => {
                match term.resend(*orig_serial, indices) {
                    Some(frames) => at(frames, now).collect(),
                    None => {
                        self.stats.retransmit_misses += 1;
                        tracing::warn!(
                            %phone,
                            orig_serial,
                            history,
                            "0x8003 names a message not in the terminal's history (limit: history); answered 0x0001 result 1"
                        );
                        at(general(term, RESULT_FAILURE), now).collect()
                    }
                }
            }
            (Body::MediaUploadResponse(r), 0x8800) => match &r.indices {
                None => Vec::new(),
                Some(indices) => match term.resend_media(r.media_id, indices) {
                    Some(frames) => at(frames, now).collect(),
                    None => {
                        self.stats.retransmit_misses += 1;
                        tracing::warn!(
                            %phone,
                            media_id = r.media_id,
                            history,
                            "0x8800 names media not in the terminal's history (limit: history); answered 0x0001 result 1"
                        );
                        at(general(term, RESULT_FAILURE), now).collect()
                    }
                },
            },
            _ => {
                self.stats.unsupported += 1;
                at(general(term, GeneralResponse::UNSUPPORTED), now).collect()
            }
        }
    }
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
