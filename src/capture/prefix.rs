//! Finding the envelope prefix of a feed from its bytes, never assuming it.
//!
//! The seed's gateway puts an 18-byte envelope before the JT808 bytes of every WebSocket message;
//! other gateways put none, or another length. A capture must state the right length: a replay
//! strips that many bytes off every gateway message, and a wrong value silently costs frames (18
//! bytes stripped off a bare three-frames-per-message feed lose its first frame every time).
//!
//! [`PrefixProbe`] tries every candidate length `0..=max_prefix_len` at once. For each it strips
//! that many bytes off every message pushed and runs the remainders of one connection through its
//! own [`Deframer`], as a client with that setting would. The winner is the length that leaves the
//! most valid frames (framing, escapes, check code and declared length all pass), then the fewest
//! rejected frames, then the fewest junk bytes (skipped, or left in a frame that never closed),
//! then the smallest length. Nothing assumes that a
//! message starts at a 0x7E (feeds cut messages anywhere) or that envelopes are constant bytes (the
//! seed's carries a counter).
//!
//! Each candidate keeps one deframer per connection, so memory is bounded by
//! `candidates x connections x max_frame_len`; callers probe a bounded number of messages (the
//! recorder: [`crate::capture::record::RecordOpts::prefix_probe_messages`]).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::format::{CaptureError, CaptureReader, Payload, Record, RecordKind, Side};
use crate::codec::deframer::{Deframer, Item};

/// Default largest envelope length tried.
pub const DEFAULT_MAX_PREFIX_LEN: usize = 64;

/// What one candidate length made of the bytes pushed so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Score {
    /// The candidate prefix length.
    pub prefix_len: usize,
    /// Valid frames.
    pub frames: u64,
    /// Frames rejected by a check.
    pub rejected: u64,
    /// Bytes skipped outside frames, or left in a frame still open.
    pub junk_bytes: u64,
}

impl Score {
    /// True when `self` explains the bytes better than `other` (the module doc's order).
    fn beats(&self, other: &Score) -> bool {
        let key = |s: &Score| (std::cmp::Reverse(s.frames), s.rejected, s.junk_bytes, s.prefix_len);
        key(self) < key(other)
    }
}

/// The probe's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The best length, or `None` when no length gave a single valid frame (a text feed, or too
    /// few bytes yet).
    pub prefix_len: Option<usize>,
    /// The best length's score.
    pub best: Score,
    /// The next best length's score, to judge how clear the verdict is.
    pub runner_up: Option<Score>,
    /// Binary messages looked at.
    pub messages: u64,
}

impl Finding {
    /// The length to use: the finding, or `fallback` when there was no evidence.
    pub fn or(&self, fallback: usize) -> usize {
        self.prefix_len.unwrap_or(fallback)
    }
}

struct Candidate {
    score: Score,
    /// One deframer per connection: frames never span connections.
    streams: BTreeMap<u64, Deframer>,
    /// Bytes of each connection's open candidate frame (they become junk if it is rejected).
    open: BTreeMap<u64, u64>,
}

impl Candidate {
    fn push(&mut self, conn: u64, bytes: &[u8]) {
        let score = &mut self.score;
        let d = self.streams.entry(conn).or_default();
        d.push(bytes, |item| count(score, item));
        self.open.insert(conn, d.pending_len() as u64);
    }
}

fn count(score: &mut Score, item: Item<'_>) {
    match item {
        // Thirteen zero bytes are a well-formed frame by accident (id 0x0000, no body, check code
        // 0), and envelopes are often zero-padded: an id the standard does not define is junk.
        Item::Frame(f) if f.header.msg_id == 0 => score.junk_bytes += f.content.len() as u64 + 1,
        Item::Frame(_) => score.frames += 1,
        Item::Rejected(_) => score.rejected += 1,
        Item::Skipped { len, .. } => score.junk_bytes += len,
        Item::UnescapedFlag { .. } => {}
    }
}

/// Scores every candidate prefix length over the gateway messages pushed (see the module doc).
pub struct PrefixProbe {
    candidates: Vec<Candidate>,
    messages: u64,
}

impl std::fmt::Debug for PrefixProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrefixProbe")
            .field("candidates", &self.candidates.len())
            .field("messages", &self.messages)
            .finish()
    }
}

impl Default for PrefixProbe {
    fn default() -> Self {
        PrefixProbe::new(DEFAULT_MAX_PREFIX_LEN)
    }
}

impl PrefixProbe {
    /// A probe trying every length from 0 to `max_prefix_len`.
    pub fn new(max_prefix_len: usize) -> PrefixProbe {
        let candidates = (0..=max_prefix_len)
            .map(|prefix_len| Candidate {
                score: Score {
                    prefix_len,
                    ..Score::default()
                },
                streams: BTreeMap::new(),
                open: BTreeMap::new(),
            })
            .collect();
        PrefixProbe {
            candidates,
            messages: 0,
        }
    }

    /// One binary message from the gateway on connection `conn`.
    pub fn push(&mut self, conn: u64, message: &[u8]) {
        self.messages += 1;
        for c in &mut self.candidates {
            let rest = message.get(c.score.prefix_len..).unwrap_or(&[]);
            c.push(conn, rest);
        }
    }

    /// Binary messages pushed.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// The score of one candidate length, `None` when it was not tried. Bytes of a frame still
    /// open count as junk here: a wrong length usually leaves one open for good.
    pub fn score(&self, prefix_len: usize) -> Option<Score> {
        self.candidates.get(prefix_len).map(|c| {
            let mut s = c.score;
            s.junk_bytes += c.open.values().sum::<u64>();
            s
        })
    }

    /// The verdict so far.
    pub fn finding(&self) -> Finding {
        let mut scores: Vec<Score> = (0..self.candidates.len()).filter_map(|p| self.score(p)).collect();
        scores.sort_by(|a, b| {
            if a.beats(b) {
                std::cmp::Ordering::Less
            } else if b.beats(a) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
        let best = scores.first().copied().unwrap_or_default();
        Finding {
            prefix_len: (best.frames > 0).then_some(best.prefix_len),
            best,
            runner_up: scores.get(1).copied(),
            messages: self.messages,
        }
    }

    /// Whether `prefix_len` explains the bytes as well as the best length does: it keeps as many
    /// valid frames. (Junk alone does not make a stated length wrong: an envelope with no 0x7E in
    /// it, left on, costs no frame.)
    pub fn agrees(&self, prefix_len: usize) -> bool {
        let best = self.finding().best;
        self.score(prefix_len).is_some_and(|s| s.frames >= best.frames)
    }
}

/// Scores a whole set of messages (one connection per item's `conn`) in one call.
pub fn detect<'a>(messages: impl IntoIterator<Item = (u64, &'a [u8])>, max_prefix_len: usize) -> Finding {
    let mut probe = PrefixProbe::new(max_prefix_len);
    for (conn, m) in messages {
        probe.push(conn, m);
    }
    probe.finding()
}

/// Gateway messages [`check_capture`] judges a capture's stated prefixes on, by default.
pub const DEFAULT_CHECK_MESSAGES: u64 = 256;

/// Why a capture's stated prefix is refused.
#[derive(Debug, thiserror::Error)]
pub enum PrefixCheckError {
    /// The capture could not be read.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// Stripping the stated prefix cuts into frames that another length keeps whole.
    #[error(
        "{path}:{line}: connection {conn}'s prefix_len {stated} cuts into frames: from this record on, stripping {stated} \
         bytes off its gateway messages leaves {frames_stated} valid frames where stripping {better} leaves \
         {frames_better} (in its first {messages} gateway messages); correct the header (or the connection's open \
         record), or go on anyway with --allow-prefix-mismatch (scenario: allow_prefix_mismatch = true)"
    )]
    CutsFrames {
        /// The capture file.
        path: String,
        /// Line of the first gateway record after which the stated length falls behind.
        line: u64,
        /// Its connection.
        conn: u64,
        /// The stated prefix of that connection.
        stated: usize,
        /// The length that explains the bytes best.
        better: usize,
        /// Valid frames with the stated length.
        frames_stated: u64,
        /// Valid frames with the better length.
        frames_better: u64,
        /// Gateway messages of the connection judged.
        messages: u64,
    },
}

/// One connection's probe in [`check_capture`], with the frames every candidate had after each
/// of its messages, to name the record where the stated length first fell behind.
struct ConnCheck {
    stated: usize,
    probe: PrefixProbe,
    history: Vec<(u64, Vec<u64>)>,
}

/// Checks that the prefix a capture states (the header's, or a connection's own) does not cut
/// into frames, judged on the first `max_messages` gateway messages of each connection: another
/// length must not keep more frames whole (the rule of [`PrefixProbe::agrees`]). Reads no further
/// than it needs; a damaged line is an error as for any reader.
pub fn check_capture(path: &std::path::Path, max_messages: u64) -> Result<(), PrefixCheckError> {
    let mut reader = CaptureReader::open(path)?;
    let mut prefixes = ConnPrefixes::new(reader.header().prefix_len);
    let mut conns: BTreeMap<u64, ConnCheck> = BTreeMap::new();
    let mut judged = 0u64;
    while judged < max_messages.saturating_mul(4) {
        let Some(record) = reader.next_record() else { break };
        let record = record?;
        prefixes.observe(&record);
        let RecordKind::Message {
            from: Side::Gateway,
            payload: Payload::Binary(bytes),
        } = &record.kind
        else {
            continue;
        };
        let stated = prefixes.get(record.conn);
        let c = conns.entry(record.conn).or_insert_with(|| ConnCheck {
            stated,
            probe: PrefixProbe::new(DEFAULT_MAX_PREFIX_LEN.max(stated)),
            history: Vec::new(),
        });
        if c.probe.messages() >= max_messages {
            continue;
        }
        judged += 1;
        c.probe.push(record.conn, bytes);
        let frames = (0..c.probe.candidates.len())
            .map(|p| c.probe.candidates[p].score.frames)
            .collect();
        c.history.push((reader.line(), frames));
    }
    for (conn, c) in &conns {
        if c.probe.agrees(c.stated) {
            continue;
        }
        let best = c.probe.finding().best;
        let fell_behind = c.history.iter().find(|(_, f)| f[c.stated] < f[best.prefix_len]);
        return Err(PrefixCheckError::CutsFrames {
            path: reader.path().to_string(),
            line: fell_behind.map_or(0, |(line, _)| *line),
            conn: *conn,
            stated: c.stated,
            better: best.prefix_len,
            frames_stated: c.probe.score(c.stated).map_or(0, |s| s.frames),
            frames_better: best.frames,
            messages: c.probe.messages(),
        });
    }
    Ok(())
}

/// The envelope prefix of each connection of a capture being read: the header's value, unless
/// the connection's `open` record stated its own.
#[derive(Debug, Clone, Default)]
pub struct ConnPrefixes {
    default: usize,
    own: HashMap<u64, usize>,
}

impl ConnPrefixes {
    /// Every connection at `default` (the header's `prefix_len`) until told otherwise.
    pub fn new(default: usize) -> ConnPrefixes {
        ConnPrefixes {
            default,
            own: HashMap::new(),
        }
    }

    /// Notes an `open` record's own prefix; call for every record read, in order.
    pub fn observe(&mut self, record: &Record) {
        if let RecordKind::Open { prefix_len } = record.kind {
            match prefix_len {
                Some(p) => self.own.insert(record.conn, p),
                None => self.own.remove(&record.conn),
            };
        }
    }

    /// The prefix of connection `conn`'s gateway messages.
    pub fn get(&self, conn: u64) -> usize {
        self.own.get(&conn).copied().unwrap_or(self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::body::{Body, EmptyBody};
    use crate::codec::{Message, Phone, Version};

    fn frame(serial: u16) -> Vec<u8> {
        let phone = Phone::parse("13800000001").expect("phone");
        let body = Body::Heartbeat(EmptyBody::decode(&[]));
        Message::new(0x0002, Version::V2013, phone, serial, body).encode()
    }

    /// A feed of `n` messages of three frames each, every message cut `shift` bytes late so that
    /// messages do not start at a 0x7E, each behind an envelope of `prefix` bytes holding a
    /// counter (never constant).
    fn feed(n: u16, prefix: usize, shift: usize) -> Vec<Vec<u8>> {
        let stream: Vec<u8> = (0..n * 3).flat_map(frame).collect();
        let per = stream.len() / n as usize;
        let mut out = Vec::new();
        let mut at = 0;
        for i in 0..n as usize {
            let end = if i + 1 == n as usize {
                stream.len()
            } else {
                (i + 1) * per + shift
            };
            let mut m: Vec<u8> = (0..prefix).map(|k| (i * 7 + k) as u8 ^ 0x5a).collect();
            m.extend_from_slice(&stream[at..end]);
            at = end;
            out.push(m);
        }
        out
    }

    fn found(msgs: &[Vec<u8>]) -> Option<usize> {
        detect(msgs.iter().map(|m| (1, m.as_slice())), DEFAULT_MAX_PREFIX_LEN).prefix_len
    }

    #[test]
    fn finds_no_prefix_on_a_bare_feed_cut_anywhere() {
        assert_eq!(found(&feed(14, 0, 0)), Some(0));
        assert_eq!(found(&feed(14, 0, 5)), Some(0));
    }

    #[test]
    fn finds_an_18_byte_envelope_that_is_not_constant() {
        assert_eq!(found(&feed(14, 18, 0)), Some(18));
        assert_eq!(found(&feed(14, 18, 3)), Some(18));
    }

    #[test]
    fn finds_other_lengths() {
        for p in [1, 4, 17, 19, 40] {
            assert_eq!(found(&feed(10, p, 2)), Some(p), "prefix {p}");
        }
    }

    #[test]
    fn zero_padding_that_reads_as_a_frame_is_not_evidence() {
        // "ENV" and 15 zeros: cut 5 bytes and the 13 zeros left are an id-0x0000 frame that passes
        // every check; they must not outvote the real envelope.
        let msgs: Vec<Vec<u8>> = feed(10, 0, 0)
            .into_iter()
            .map(|m| [b"ENV".to_vec(), vec![0; 15], m].concat())
            .collect();
        assert_eq!(found(&msgs), Some(18));
    }

    #[test]
    fn no_frames_is_no_verdict() {
        let text = [b"hello".to_vec(), b"world".to_vec()];
        assert_eq!(found(&text), None);
        let f = detect(std::iter::empty(), 8);
        assert_eq!((f.prefix_len, f.or(18)), (None, 18));
    }

    #[test]
    fn connections_are_deframed_apart() {
        // Each connection's first message holds half a frame: joined across connections the halves
        // would make a bogus frame; apart they make none, and the bare messages still win at 0.
        let f = frame(1);
        let (a, b) = f.split_at(f.len() / 2);
        let whole = frame(2);
        let msgs = [(1, a), (2, b), (1, whole.as_slice()), (2, whole.as_slice())];
        let finding = detect(msgs, 8);
        assert_eq!(finding.prefix_len, Some(0));
        assert_eq!(finding.best.frames, 2);
    }

    #[test]
    fn a_connection_states_its_own_prefix_on_open() {
        let mut p = ConnPrefixes::new(18);
        p.observe(&Record::open(0, 1));
        p.observe(&Record::open_with_prefix(0, 2, 0));
        assert_eq!((p.get(1), p.get(2), p.get(3)), (18, 0, 18));
        p.observe(&Record::open(5, 2));
        assert_eq!(
            p.get(2),
            18,
            "a reused id without its own prefix is back at the header's"
        );
    }

    fn write_capture(dir: &std::path::Path, header_prefix: usize, msgs: &[Vec<u8>]) -> std::path::PathBuf {
        use crate::capture::format::{CaptureHeader, CaptureWriter};
        let path = dir.join("c.jsonl");
        let mut w = CaptureWriter::create(&path, &CaptureHeader::new(header_prefix)).unwrap();
        w.write(&Record::open(0, 1)).unwrap();
        for (i, m) in msgs.iter().enumerate() {
            w.write(&Record::binary(i as u64, 1, Side::Gateway, m.clone())).unwrap();
        }
        path
    }

    #[test]
    fn a_capture_whose_header_prefix_cuts_into_frames_is_refused_at_the_record_where_it_shows() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_capture(dir.path(), 18, &feed(14, 0, 0));
        let e = check_capture(&path, DEFAULT_CHECK_MESSAGES).unwrap_err();
        let PrefixCheckError::CutsFrames {
            line, stated, better, ..
        } = &e
        else {
            panic!("{e}")
        };
        // Line 1 header, line 2 open, line 3 the first message: its first frame is already cut.
        assert_eq!((*line, *stated, *better), (3, 18, 0), "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("{}:3: connection 1's prefix_len 18", path.display())),
            "{e}"
        );
        let right = write_capture(dir.path(), 0, &feed(14, 0, 0));
        check_capture(&right, DEFAULT_CHECK_MESSAGES).expect("a right prefix passes");
        let enveloped = write_capture(dir.path(), 18, &feed(14, 18, 3));
        check_capture(&enveloped, DEFAULT_CHECK_MESSAGES).expect("a right envelope passes");
    }

    #[test]
    fn agrees_checks_a_stated_length_against_the_bytes() {
        let mut probe = PrefixProbe::new(32);
        for m in feed(8, 18, 1) {
            probe.push(1, &m);
        }
        assert!(probe.agrees(18));
        assert!(!probe.agrees(0), "{:?} vs {:?}", probe.score(0), probe.score(18));
        assert!(!probe.agrees(20));
        assert!(!probe.agrees(99), "an untried length never agrees");
    }
}
