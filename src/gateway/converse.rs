//! Conversation replay: a capture that holds what the client sent as well as what the gateway
//! served is replayed as a conversation, not a monologue.
//!
//! A plain [`Replay`] serves the recorded gateway stream on its timeline and lets the
//! [`TerminalScript`] invent answers to the client's commands. A recording already holds the real
//! terminals' answers, but to the recorded client's commands, with the recorded serials: replayed
//! blindly to a changed client (other serials, other timing) they answer commands it never sent.
//! [`Conversation`] pairs them up instead:
//!
//! - **Exchanges.** A first pass over the capture finds every command the recorded client sent
//!   (a platform message, 0x8000-0x9FFF, but for 0x8001/0x8003/0x8100 which a terminal does not
//!   answer with a message of its own) and the terminal's answers to it: a frame whose reply serial
//!   names the command's serial ([`reply_serial_at`]; for 0x0001 its reply id too), every further
//!   packet of a multi-packet answer, and the answers that carry no serial (0x0107 to 0x8107,
//!   0x1003 to 0x9003) when they follow their command.
//! - **The stream.** Every other gateway byte is served as the replay would serve it, on the
//!   capture's timeline. Answer frames are taken out of their messages (a message left empty is
//!   not sent); an answer frame cut across two messages stays in the stream as it was, counted in
//!   [`ConversationReport::answers_left_in_stream`].
//! - **Answers wait for their command.** When the client under test sends a command, the first
//!   exchange not yet answered with the same id and terminal is answered: its answer frames, with
//!   their reply serial rewritten to the new command's serial (check code recomputed), each due at
//!   the moment of the command plus its recorded delay after the recorded command (scaled by the
//!   replay speed). A command the recording never saw goes to the terminal script.
//! - **What never came is reported**: exchanges no command claimed, with the capture line of the
//!   recorded command ([`ConversationReport::missing`]).
//!
//! Memory: the stream is read streaming as in [`Replay`]; the answers (and the positions of the
//! frames taken out) are held, bounded by [`MAX_ANSWER_BYTES`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::feed::{Feed, FeedItem};
use super::replay::{Replay, ReplayErrors, ReplayOptions};
use super::terminal::TerminalScript;
use crate::capture::prefix::ConnPrefixes;
use crate::capture::{CaptureError, CaptureReader, Payload, RecordKind, Side};
use crate::codec::deframer::{Deframer, Frame, Item};
use crate::codec::frame::{FLAG, frame_into};
use crate::codec::{DecodeEvent, Decoder, Message, Phone, msg_id_hex};

/// Most bytes of recorded answers a conversation holds (64 MiB): a larger capture is refused with
/// an error rather than filling memory.
pub const MAX_ANSWER_BYTES: usize = 64 << 20;

/// Where a terminal answer carries the serial of the command it answers: at the start of the
/// body for these ids (JT/T 808-2019 §8.2 0x0001 "应答流水号" WORD then "应答 ID" WORD; 0x0104,
/// 0x0201, 0x0500, 0x0700, 0x0802 and 0x0805 open with "应答流水号"; JT/T 1078-2016 0x1205 and
/// 0x1206 likewise). Other answers carry none and are matched by order.
pub fn reply_serial_at(msg_id: u16) -> Option<usize> {
    matches!(
        msg_id,
        0x0001 | 0x0104 | 0x0201 | 0x0500 | 0x0700 | 0x0802 | 0x0805 | 0x1205 | 0x1206
    )
    .then_some(0)
}

/// The command a serial-less answer follows.
fn paired_command(answer_id: u16) -> Option<u16> {
    match answer_id {
        0x0107 => Some(0x8107),
        0x1003 => Some(0x9003),
        _ => None,
    }
}

/// True for the platform messages a terminal answers with a message of its own.
fn is_command(msg_id: u16) -> bool {
    (0x8000..=0x9FFF).contains(&msg_id) && !matches!(msg_id, 0x8001 | 0x8003 | 0x8100)
}

/// One recorded terminal answer.
#[derive(Debug, Clone)]
struct Answer {
    /// Recorded delay after the recorded command, µs.
    delay_us: u64,
    /// Unescaped header + body, without the check code.
    content: Vec<u8>,
    /// Where the reply serial sits in `content`, when this frame carries it.
    serial_at: Option<usize>,
}

/// A recorded command and the answers to it.
#[derive(Debug, Clone)]
struct Exchange {
    msg_id: u16,
    phone: Phone,
    serial: u16,
    t_us: u64,
    line: u64,
    answers: Vec<Answer>,
    answered: bool,
}

/// An exchange of the recording that the client under test never asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingExchange {
    /// Capture line of the recorded command.
    pub line: u64,
    /// Its id, `0x8104`.
    pub msg_id: String,
    /// Its terminal.
    pub phone: String,
    /// Its recorded serial.
    pub serial: u16,
    /// Answers that were not sent.
    pub answers: usize,
}

/// What a conversation replay did, for the operator and for checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConversationReport {
    /// Commands found in the recording.
    pub exchanges: u64,
    /// Of them, answered to the client under test.
    pub answered: u64,
    /// Commands the client sent that the recording did not hold (answered by the terminal script).
    pub unrecorded_commands: u64,
    /// Answer frames cut across two messages, served in the stream as recorded.
    pub answers_left_in_stream: u64,
    /// The exchanges not (yet) asked for, in recording order.
    pub missing: Vec<MissingExchange>,
}

/// A shared handle on a conversation's report (clones share it).
#[derive(Debug, Clone, Default)]
pub struct ConversationHandle {
    inner: Arc<Mutex<ConversationReport>>,
}

impl ConversationHandle {
    /// The report so far.
    pub fn report(&self) -> ConversationReport {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, report: ConversationReport) {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = report;
    }
}

/// The exchanges of a capture and the answer frames to take out of its stream. See the module doc.
#[derive(Debug, Default)]
struct Script {
    exchanges: Vec<Exchange>,
    /// (gateway message index, frame offset in the message) of every answer frame.
    taken: HashSet<(u64, u64)>,
    left_in_stream: u64,
}

/// First pass: reads the capture and pairs commands with answers.
fn script_of(path: &Path) -> Result<Script, CaptureError> {
    let mut reader = CaptureReader::open(path)?;
    let mut prefixes = ConnPrefixes::new(reader.header().prefix_len);
    let mut s = Script::default();
    let mut commands: HashMap<u64, Decoder> = HashMap::new();
    let mut streams: HashMap<u64, Deframer> = HashMap::new();
    let mut groups: HashMap<(Phone, u16, u16), usize> = HashMap::new();
    let (mut index, mut held) = (0u64, 0usize);
    while let Some(record) = reader.next_record() {
        let record = record?;
        prefixes.observe(&record);
        let RecordKind::Message {
            from,
            payload: Payload::Binary(bytes),
        } = &record.kind
        else {
            continue;
        };
        let line = reader.line();
        if *from == Side::Client {
            let d = commands.entry(record.conn).or_default();
            let now = Duration::from_micros(record.t_us);
            d.push(bytes, now, |e| {
                if let DecodeEvent::Message(m) = e
                    && is_command(m.header.msg_id)
                {
                    s.exchanges.push(Exchange {
                        msg_id: m.header.msg_id,
                        phone: m.header.phone,
                        serial: m.header.serial,
                        t_us: record.t_us,
                        line,
                        answers: Vec::new(),
                        answered: false,
                    });
                }
            });
            continue;
        }
        let Some(stream) = bytes.get(prefixes.get(record.conn)..) else {
            continue;
        };
        for (offset, frame) in frames_of(stream) {
            let Some((ex, serial_at)) = answer_to(&s.exchanges, &mut groups, &frame) else {
                continue;
            };
            held += frame.content.len();
            if held > MAX_ANSWER_BYTES {
                return Err(too_many_answers(reader.path(), line));
            }
            let e = &mut s.exchanges[ex];
            e.answers.push(Answer {
                delay_us: record.t_us.saturating_sub(e.t_us),
                content: frame.content,
                serial_at,
            });
            s.taken.insert((index, offset));
        }
        // An answer cut across messages completes in the connection's stream, not in one message:
        // it stays in the stream as recorded, and is counted.
        let d = streams.entry(record.conn).or_default();
        let start = d.position();
        let exchanges = &s.exchanges;
        let mut cut = 0;
        d.push(stream, |item| {
            if let Item::Frame(f) = item
                && f.offset < start
                && answer_to(exchanges, &mut HashMap::new(), &OwnedFrame::of(&f)).is_some()
            {
                cut += 1;
            }
        });
        s.left_in_stream += cut;
        index += 1;
    }
    Ok(s)
}

fn too_many_answers(path: &str, line: u64) -> CaptureError {
    CaptureError::Io {
        path: path.to_string(),
        source: std::io::Error::other(format!(
            "line {line}: the recorded answers exceed {MAX_ANSWER_BYTES} bytes (MAX_ANSWER_BYTES); replay it without --converse"
        )),
    }
}

/// A frame with its bytes owned.
#[derive(Debug, Clone)]
struct OwnedFrame {
    msg_id: u16,
    phone: Phone,
    packet: Option<(u16, u16)>,
    content: Vec<u8>,
    body_start: usize,
}

impl OwnedFrame {
    fn of(f: &Frame<'_>) -> OwnedFrame {
        OwnedFrame {
            msg_id: f.header.msg_id,
            phone: f.header.phone,
            packet: f.header.packet.map(|p| (p.index, p.total)),
            content: f.content.to_vec(),
            body_start: f.body_start,
        }
    }

    fn body(&self) -> &[u8] {
        &self.content[self.body_start..]
    }
}

/// The frames wholly inside `message` (deframed on their own), with their offsets.
fn frames_of(message: &[u8]) -> Vec<(u64, OwnedFrame)> {
    let mut out = Vec::new();
    Deframer::default().push(message, |item| {
        if let Item::Frame(f) = item {
            out.push((f.offset, OwnedFrame::of(&f)));
        }
    });
    out
}

/// Which open exchange `frame` answers, and where its reply serial is (see the module doc).
fn answer_to(
    exchanges: &[Exchange],
    groups: &mut HashMap<(Phone, u16, u16), usize>,
    frame: &OwnedFrame,
) -> Option<(usize, Option<usize>)> {
    let id = frame.msg_id;
    if let Some((index, total)) = frame.packet
        && index > 1
    {
        return groups.get(&(frame.phone, id, total)).map(|&ex| (ex, None));
    }
    let latest = |want: &dyn Fn(&Exchange) -> bool| exchanges.iter().rposition(|e| e.phone == frame.phone && want(e));
    let found = match reply_serial_at(id) {
        Some(at) => {
            let body = frame.body();
            let serial = u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]);
            let reply_id = (id == 0x0001).then(|| body.get(at + 2..at + 4).map(|b| u16::from_be_bytes([b[0], b[1]])));
            latest(&|e| e.serial == serial && reply_id.is_none_or(|r| r == Some(e.msg_id)))
                .map(|ex| (ex, Some(frame.body_start + at)))
        }
        None => {
            let cmd = paired_command(id)?;
            latest(&|e| e.msg_id == cmd && !e.answers.iter().any(|a| a.content[..2] == id.to_be_bytes()))
                .map(|ex| (ex, None))
        }
    };
    if let (Some((ex, _)), Some((1, total))) = (found, frame.packet) {
        groups.insert((frame.phone, id, total), ex);
    }
    found
}

/// A capture replayed as a conversation. See the module doc.
pub struct Conversation {
    replay: Replay,
    exchanges: Vec<Exchange>,
    taken: HashSet<(u64, u64)>,
    /// Gateway messages taken from the replay so far.
    index: u64,
    speed: f64,
    script: TerminalScript,
    report: ConversationReport,
    handle: ConversationHandle,
    by_key: BTreeMap<(u16, Phone), VecDeque<usize>>,
}

impl std::fmt::Debug for Conversation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversation")
            .field("exchanges", &self.exchanges.len())
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl Conversation {
    /// Reads the capture's exchanges, then opens it for the stream. `opts.loops` must be 1: a
    /// conversation is held once.
    pub fn open(
        path: impl AsRef<Path>,
        opts: ReplayOptions,
        errors: ReplayErrors,
        handle: ConversationHandle,
    ) -> Result<Conversation, CaptureError> {
        let path: PathBuf = path.as_ref().to_path_buf();
        let script = script_of(&path)?;
        let mut by_key: BTreeMap<(u16, Phone), VecDeque<usize>> = BTreeMap::new();
        for (i, e) in script.exchanges.iter().enumerate() {
            by_key.entry((e.msg_id, e.phone)).or_default().push_back(i);
        }
        let terminal = TerminalScript::new(opts.terminal.clone(), opts.seed);
        let speed = opts.speed;
        let replay = Replay::open_with(&path, ReplayOptions { loops: 1, ..opts }, errors)?;
        let report = ConversationReport {
            exchanges: script.exchanges.len() as u64,
            answers_left_in_stream: script.left_in_stream,
            ..ConversationReport::default()
        };
        let mut c = Conversation {
            replay,
            exchanges: script.exchanges,
            taken: script.taken,
            index: 0,
            speed,
            script: terminal,
            report,
            handle,
            by_key,
        };
        c.publish();
        Ok(c)
    }

    /// The report so far.
    pub fn report(&self) -> &ConversationReport {
        &self.report
    }

    fn publish(&mut self) {
        self.report.missing = self
            .exchanges
            .iter()
            .filter(|e| !e.answered)
            .map(|e| MissingExchange {
                line: e.line,
                msg_id: msg_id_hex(e.msg_id),
                phone: e.phone.to_string(),
                serial: e.serial,
                answers: e.answers.len(),
            })
            .collect();
        self.handle.set(self.report.clone());
    }

    fn scaled(&self, us: u64) -> Duration {
        if self.speed == 0.0 {
            Duration::ZERO
        } else {
            Duration::from_nanos((us as f64 * 1000.0 / self.speed).round() as u64)
        }
    }

    /// The message minus its answer frames (`None` when nothing is left of it).
    fn without_answers(&self, index: u64, bytes: Vec<u8>) -> Option<Vec<u8>> {
        let frames = frames_of(&bytes);
        if !frames.iter().any(|(o, _)| self.taken.contains(&(index, *o))) {
            return Some(bytes);
        }
        let starts: HashSet<u64> = frames.iter().map(|(o, _)| *o).collect();
        let mut keep = vec![true; bytes.len()];
        for (offset, _) in &frames {
            if !self.taken.contains(&(index, *offset)) {
                continue;
            }
            let start = *offset as usize;
            let close = bytes[start + 1..]
                .iter()
                .position(|&b| b == FLAG)
                .map_or(bytes.len() - 1, |p| start + 1 + p);
            // A closing 0x7E that opens the next frame stays (shared delimiters).
            let end = if starts.contains(&(close as u64)) {
                close
            } else {
                close + 1
            };
            keep[start..end].iter_mut().for_each(|k| *k = false);
        }
        let rest: Vec<u8> = bytes.iter().zip(&keep).filter(|(_, k)| **k).map(|(b, _)| *b).collect();
        (!rest.is_empty()).then_some(rest)
    }
}

impl Feed for Conversation {
    fn next_item(&mut self) -> Option<FeedItem> {
        loop {
            let item = self.replay.next_item()?;
            if item.close.is_some() {
                return Some(item);
            }
            let index = self.index;
            self.index += 1;
            if let Some(bytes) = self.without_answers(index, item.bytes) {
                return Some(FeedItem {
                    due: item.due,
                    bytes,
                    close: None,
                });
            }
        }
    }

    fn on_client_message(&mut self, msg: &Message, now: Duration) -> Vec<FeedItem> {
        let key = (msg.header.msg_id, msg.header.phone);
        let Some(ex) = self.by_key.get_mut(&key).and_then(VecDeque::pop_front) else {
            if is_command(msg.header.msg_id) {
                self.report.unrecorded_commands += 1;
                self.publish();
            }
            return self.script.on_client_message(msg, now);
        };
        let serial = msg.header.serial.to_be_bytes();
        let mut items = Vec::new();
        for a in &self.exchanges[ex].answers {
            let mut content = a.content.clone();
            if let Some(at) = a.serial_at {
                content[at..at + 2].copy_from_slice(&serial);
            }
            let mut bytes = Vec::with_capacity(content.len() + 4);
            frame_into(&content, &mut bytes);
            items.push(FeedItem {
                due: now + self.scaled(a.delay_us),
                bytes,
                close: None,
            });
        }
        self.exchanges[ex].answered = true;
        self.report.answered += 1;
        self.publish();
        items
    }
}
