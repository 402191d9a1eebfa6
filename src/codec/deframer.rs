//! Streaming 0x7E deframer: bytes in chunks of any size, frames out.
//!
//! Every 0x7E is a boundary. JT/T 808 uses the same byte to open and to close a frame, so the
//! deframer keeps two states between delimiters:
//!
//! - *inside*: after an opening 0x7E. At the next 0x7E the bytes in between are a frame candidate:
//!   it is un-escaped, its check code and declared length verified, and it comes out as
//!   [`Item::Frame`] or [`Item::Rejected`]. An empty candidate (`7E 7E`) only moves the opening.
//! - *outside*: after a closing 0x7E. Bytes here are normally garbage, reported as
//!   [`Item::Skipped`] with their count, and the 0x7E that ends them opens the next frame. Some
//!   devices share one 0x7E between two frames (`7E A 7E B 7E`); so bytes outside that pass every
//!   check are taken as a frame, and only bytes that fail are garbage.
//!
//! So a stray 0x7E, an empty frame or an unterminated frame costs at most the bytes around it,
//! never the next valid frame. Memory is bounded by [`DeframerConfig::max_frame_len`] (twice that
//! with `rejoin_unescaped_flag`, which may hold one rejected candidate): a candidate longer than
//! that is reported as [`FrameError::TooLong`] and discarded up to the next 0x7E without being
//! buffered.
//!
//! The deframer un-escapes while it copies (one pass, one copy per byte), and hands frames to a
//! callback as borrowed slices, so a frame costs no allocation.
//!
//! Some devices do not escape a 0x7E inside a frame (vector `iss-jtframework71`: "A strict 0x7E
//! splitter yields two broken frames ... If the stray 7E is kept as data the XOR and declared
//! length both check out"). With [`DeframerConfig::rejoin_unescaped_flag`] (off by default: the
//! standard requires the escape) a candidate rejected as too short, with a bad check code or with
//! a length mismatch (and no invalid escape) is held until the next 0x7E; if the bytes after it
//! (none, when that 0x7E follows at once: an unescaped last byte) fail too but the two joined by a
//! 0x7E data byte pass every check, that one frame comes out, announced by
//! [`Item::UnescapedFlag`]. Otherwise the rejection is reported as it would have been, only later:
//! at that next 0x7E or the end of the stream. One stray 0x7E per frame is repaired, not two, and
//! not one right after the opening 0x7E (that pair reads as an empty frame).

use super::error::FrameError;
use super::frame::{ESCAPE, FLAG, MAX_ESCAPED_CONTENT, xor};
use super::header::Header;

/// Deframer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeframerConfig {
    /// Largest escaped frame content between the two delimiters. Default: the largest legal frame,
    /// 2090 bytes (21-byte header + 1023-byte body + check code, every byte escaped; JT808.md §1).
    pub max_frame_len: usize,
    /// Take an unescaped 0x7E inside a frame as data when that is the only way the bytes around
    /// it make a valid frame (see the module doc). Default false, as the standard says.
    pub rejoin_unescaped_flag: bool,
}

impl Default for DeframerConfig {
    fn default() -> Self {
        DeframerConfig {
            max_frame_len: MAX_ESCAPED_CONTENT,
            rejoin_unescaped_flag: false,
        }
    }
}

/// A frame that passed framing, escape, check-code and length checks.
#[derive(Debug)]
pub struct Frame<'a> {
    /// Stream offset of the frame's opening 0x7E.
    pub offset: u64,
    /// The parsed header.
    pub header: Header,
    /// Un-escaped header + body, without the check code.
    pub content: &'a [u8],
    /// Where the body starts in `content`.
    pub body_start: usize,
}

impl Frame<'_> {
    /// The body bytes (or the sub-packet fragment).
    pub fn body(&self) -> &[u8] {
        &self.content[self.body_start..]
    }
}

/// One item of the deframed stream.
#[derive(Debug)]
pub enum Item<'a> {
    /// A valid frame.
    Frame(Frame<'a>),
    /// A frame that failed a check; it is dropped and the stream goes on.
    Rejected(FrameError),
    /// Bytes outside any frame, skipped.
    Skipped {
        /// Stream offset of the first skipped byte.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
    /// The next item is a frame whose 0x7E at `at` was not escaped and was taken as data (only
    /// with [`DeframerConfig::rejoin_unescaped_flag`]).
    UnescapedFlag {
        /// Stream offset of the frame's opening 0x7E.
        offset: u64,
        /// Stream offset of the unescaped 0x7E.
        at: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// After a closing delimiter (or at the start of the stream).
    Outside,
    /// After an opening delimiter.
    Inside,
    /// Inside an over-long candidate: counting bytes up to the next 0x7E.
    Discarding,
}

/// The streaming deframer. See the module doc.
#[derive(Debug)]
pub struct Deframer {
    cfg: DeframerConfig,
    state: State,
    /// Un-escaped bytes of the current candidate (check code included).
    buf: Vec<u8>,
    /// Escaped bytes seen in the current candidate.
    raw_len: usize,
    /// Stream offset of the current candidate: its opening 0x7E (inside) or first byte (outside).
    start: u64,
    /// Stream offset of the next byte pushed.
    pos: u64,
    /// The last byte pushed was a 0x7D whose partner has not arrived yet; its stream offset.
    escape_pending: Option<u64>,
    /// First invalid escape of the current candidate: stream offset and the byte after (None = end).
    bad_escape: Option<(u64, Option<u8>)>,
    /// A rejected candidate held back to try joining it with what follows its closing 0x7E (only
    /// with `rejoin_unescaped_flag`); its un-escaped bytes are in `held_buf`.
    held: Option<Held>,
    held_buf: Vec<u8>,
}

/// A rejected candidate that may turn out to end at an unescaped 0x7E.
#[derive(Debug)]
struct Held {
    /// Its opening 0x7E.
    offset: u64,
    /// The 0x7E that closed it, which may be data.
    at: u64,
    /// Its escaped length (what counts against `max_frame_len`).
    raw_len: usize,
    /// Its rejection, reported if the join fails.
    error: FrameError,
}

impl Default for Deframer {
    fn default() -> Self {
        Deframer::new(DeframerConfig::default())
    }
}

impl Deframer {
    /// A deframer at the start of a stream.
    pub fn new(cfg: DeframerConfig) -> Deframer {
        Deframer {
            cfg,
            state: State::Outside,
            // Grown to the longest frame seen when the first one comes (a few doublings, then
            // reused): a decoder that never sees a frame, like the gateway's on a connection
            // whose client sends nothing, holds no buffer.
            buf: Vec::new(),
            raw_len: 0,
            start: 0,
            pos: 0,
            escape_pending: None,
            bad_escape: None,
            held: None,
            held_buf: Vec::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &DeframerConfig {
        &self.cfg
    }

    /// Bytes held for an incomplete frame or unresolved garbage (the opening 0x7E counted), as wire
    /// bytes. Never more than [`DeframerConfig::max_frame_len`] + 1: an over-long candidate or
    /// garbage run is only counted, not held, so it holds nothing. With `rejoin_unescaped_flag` a
    /// held rejected candidate adds at most as much again.
    pub fn pending_len(&self) -> usize {
        let current = match self.state {
            State::Outside if self.raw_len <= self.cfg.max_frame_len => self.raw_len,
            State::Inside => self.raw_len + 1,
            State::Outside | State::Discarding => 0,
        };
        current + self.held.as_ref().map_or(0, |_| self.held_buf.len() + 1)
    }

    /// Stream offset of the next byte.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Ends the stream: an unfinished frame comes out as [`FrameError::Unterminated`], unresolved
    /// outside bytes as [`Item::Skipped`]. The deframer is then at the start of a new stream
    /// (offsets restart at 0), as after a reconnect: nothing of the old stream is glued to the new.
    pub fn finish(&mut self, mut f: impl FnMut(Item<'_>)) {
        self.release_held(&mut f);
        match self.state {
            // A discarded candidate was already reported as too long: it is not reported twice.
            State::Inside if self.raw_len > 0 => {
                f(Item::Rejected(FrameError::Unterminated {
                    offset: self.start,
                    len: self.raw_len,
                }));
            }
            State::Outside if self.raw_len > 0 => {
                f(Item::Skipped {
                    offset: self.start,
                    len: self.raw_len as u64,
                });
            }
            _ => {}
        }
        *self = Deframer::new(self.cfg);
    }

    /// Forgets the stream so far, reporting nothing (an unfinished frame or outside bytes are
    /// dropped), and starts a new one as [`Deframer::finish`] does, keeping the buffers' capacity:
    /// for a caller that deframes many separate messages without allocating for each.
    pub fn reset(&mut self) {
        self.state = State::Outside;
        self.buf.clear();
        self.raw_len = 0;
        self.start = 0;
        self.pos = 0;
        self.escape_pending = None;
        self.bad_escape = None;
        self.held = None;
        self.held_buf.clear();
    }

    /// Pushes a chunk; every item it completes is handed to `f`, in stream order.
    pub fn push(&mut self, chunk: &[u8], mut f: impl FnMut(Item<'_>)) {
        let base = self.pos;
        self.pos += chunk.len() as u64;
        let mut i = 0;
        if let Some(at) = self.escape_pending.take() {
            match chunk.first() {
                None => {
                    self.escape_pending = Some(at);
                    return;
                }
                Some(&FLAG) => self.note_bad_escape(at, None),
                Some(&b) => {
                    self.resolve_escape(at, b);
                    i = 1;
                }
            }
        }
        while i < chunk.len() {
            let rest = &chunk[i..];
            let Some(j) = memchr::memchr2(FLAG, ESCAPE, rest) else {
                self.append(rest);
                break;
            };
            let k = i + j;
            if chunk[k] == FLAG && self.state == State::Inside && self.raw_len == 0 && j > 0 {
                // The common case: a whole candidate inside this chunk with no escape in it. It is
                // checked where it lies, without the copy into `buf`; the result is the same as on
                // the copying path below (which the chunking tests compare byte by byte).
                if j <= self.cfg.max_frame_len {
                    let content = &rest[..j];
                    match check_candidate(content, None, self.start) {
                        Ok((header, body_start)) => f(Item::Frame(Frame {
                            offset: self.start,
                            header,
                            content: &content[..j - 1],
                            body_start,
                        })),
                        Err(e) => self.reject(e, content, j, base + k as u64, &mut f),
                    }
                    self.reset_candidate(State::Outside, base + k as u64 + 1);
                    i = k + 1;
                    if self.held.is_none() && chunk.get(i) == Some(&FLAG) {
                        // Back to back: nothing outside, the next 0x7E opens the next frame. (With
                        // a rejection held, that 0x7E may close it instead: `delimiter` decides.)
                        self.reset_candidate(State::Inside, base + i as u64);
                        i += 1;
                    }
                    continue;
                }
            }
            self.append(&rest[..j]);
            // Before the delimiter is handled: a candidate that outgrew the limit inside this run
            // is too long, not (with its unbuffered tail) too short or a bad check code.
            if self.raw_len > self.cfg.max_frame_len {
                self.overflow(&mut f);
            }
            if chunk[k] == FLAG {
                self.delimiter(base + k as u64, &mut f);
                i = k + 1;
            } else {
                match chunk.get(k + 1) {
                    None => {
                        self.escape_pending = Some(base + k as u64);
                        self.raw_len += 1;
                        i = k + 1;
                    }
                    Some(&FLAG) => {
                        self.raw_len += 1;
                        self.note_bad_escape(base + k as u64, None);
                        i = k + 1;
                    }
                    Some(&b) => {
                        self.raw_len += 1;
                        self.resolve_escape(base + k as u64, b);
                        i = k + 2;
                    }
                }
            }
            if self.raw_len > self.cfg.max_frame_len {
                self.overflow(&mut f);
            }
        }
        if self.raw_len > self.cfg.max_frame_len {
            self.overflow(&mut f);
        }
    }

    /// The second byte of an escape pair (the 0x7D was already counted).
    fn resolve_escape(&mut self, at: u64, b: u8) {
        self.raw_len += 1;
        if self.state == State::Discarding {
            return;
        }
        match b {
            0x01 => self.buf.push(ESCAPE),
            0x02 => self.buf.push(FLAG),
            other => self.note_bad_escape(at, Some(other)),
        }
    }

    fn note_bad_escape(&mut self, at: u64, next: Option<u8>) {
        if self.bad_escape.is_none() {
            self.bad_escape = Some((at, next));
        }
    }

    #[inline]
    fn append(&mut self, bytes: &[u8]) {
        self.raw_len += bytes.len();
        if self.state != State::Discarding && self.raw_len <= self.cfg.max_frame_len {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The candidate grew past the limit: report it once and stop buffering.
    fn overflow(&mut self, f: &mut impl FnMut(Item<'_>)) {
        match self.state {
            State::Inside => {
                f(Item::Rejected(FrameError::TooLong {
                    offset: self.start,
                    limit: self.cfg.max_frame_len,
                }));
                self.state = State::Discarding;
                self.buf.clear();
            }
            // Outside bytes that long cannot be a frame: they stay garbage, counted but not held.
            State::Outside => self.buf.clear(),
            State::Discarding => {}
        }
    }

    fn delimiter(&mut self, at: u64, f: &mut impl FnMut(Item<'_>)) {
        let state = self.state;
        match state {
            State::Inside if self.raw_len == 0 && self.escape_pending.is_none() => {
                // `7E 7E`: an empty frame; this delimiter opens the next one.
                self.start = at;
            }
            State::Inside => {
                match self.check(self.start) {
                    Ok((header, body_start)) => f(Item::Frame(Frame {
                        offset: self.start,
                        header,
                        content: &self.buf[..self.buf.len() - 1],
                        body_start,
                    })),
                    Err(e) => {
                        let candidate = std::mem::take(&mut self.buf);
                        self.reject(e, &candidate, self.raw_len, at, f);
                        self.buf = candidate;
                    }
                }
                self.reset_candidate(State::Outside, at + 1);
            }
            // With a rejection held, a 0x7E right after its closing one may be the real end: the
            // first was its last byte (an unescaped 0x7E check code, say).
            State::Outside if self.raw_len == 0 && self.rejoin(f) => self.reset_candidate(State::Outside, at + 1),
            State::Outside if self.raw_len == 0 => {
                self.release_held(f);
                self.reset_candidate(State::Inside, at);
            }
            State::Outside => {
                // Bytes between a closing and this 0x7E: a frame sharing its opening delimiter with
                // the previous frame's closing one, or garbage.
                let shared_offset = self.start.saturating_sub(1);
                let fits = self.raw_len <= self.cfg.max_frame_len;
                match fits.then(|| self.check(shared_offset)) {
                    Some(Ok((header, body_start))) => {
                        self.release_held(f);
                        f(Item::Frame(Frame {
                            offset: shared_offset,
                            header,
                            content: &self.buf[..self.buf.len() - 1],
                            body_start,
                        }));
                        self.reset_candidate(State::Outside, at + 1);
                    }
                    _ if fits && self.bad_escape.is_none() && self.rejoin(f) => {
                        self.reset_candidate(State::Outside, at + 1);
                    }
                    _ => {
                        self.release_held(f);
                        f(Item::Skipped {
                            offset: self.start,
                            len: self.raw_len as u64,
                        });
                        self.reset_candidate(State::Inside, at);
                    }
                }
            }
            State::Discarding => self.reset_candidate(State::Outside, at + 1),
        }
    }

    /// A candidate closed by the 0x7E at `at` failed: reported, or held to try a join when
    /// `rejoin_unescaped_flag` is on and the failure is one a 0x7E data byte could explain (the
    /// frame looked cut: too short, a wrong check code or a length mismatch).
    fn reject(&mut self, e: FrameError, unescaped: &[u8], raw_len: usize, at: u64, f: &mut impl FnMut(Item<'_>)) {
        let joinable = matches!(
            e,
            FrameError::TooShort { .. } | FrameError::BadChecksum { .. } | FrameError::BodyLengthMismatch { .. }
        );
        if !(self.cfg.rejoin_unescaped_flag && joinable && self.bad_escape.is_none()) {
            f(Item::Rejected(e));
            return;
        }
        self.release_held(f);
        self.held_buf.clear();
        self.held_buf.extend_from_slice(unescaped);
        self.held = Some(Held {
            offset: self.start,
            at,
            raw_len,
            error: e,
        });
    }

    /// Reports the held rejection, if any: what follows it did not make a frame with it.
    fn release_held(&mut self, f: &mut impl FnMut(Item<'_>)) {
        if let Some(h) = self.held.take() {
            f(Item::Rejected(h.error));
        }
    }

    /// The held candidate, a 0x7E data byte and the outside bytes in `buf`, as one frame: handed
    /// to `f` (after [`Item::UnescapedFlag`]) if it passes every check. The held rejection stays
    /// held otherwise.
    fn rejoin(&mut self, f: &mut impl FnMut(Item<'_>)) -> bool {
        let Some(h) = &self.held else {
            return false;
        };
        // Both parts' escaped bytes and the 0x7E itself: the joined frame is bound by the same
        // limit as any other.
        if h.raw_len + 1 + self.raw_len > self.cfg.max_frame_len {
            return false;
        }
        let (offset, at) = (h.offset, h.at);
        // The held bytes end with what was taken as a check code: it is data, the check code is
        // now the last byte of `buf`.
        self.held_buf.push(FLAG);
        self.held_buf.extend_from_slice(&self.buf);
        match check_candidate(&self.held_buf, None, offset) {
            Ok((header, body_start)) => {
                self.held = None;
                f(Item::UnescapedFlag { offset, at });
                f(Item::Frame(Frame {
                    offset,
                    header,
                    content: &self.held_buf[..self.held_buf.len() - 1],
                    body_start,
                }));
                true
            }
            Err(_) => {
                self.held_buf.truncate(self.held_buf.len() - 1 - self.buf.len());
                false
            }
        }
    }

    fn reset_candidate(&mut self, state: State, start: u64) {
        self.state = state;
        self.start = start;
        self.buf.clear();
        self.raw_len = 0;
        self.bad_escape = None;
    }

    /// Escape, length, check-code and header checks of the current candidate.
    fn check(&self, offset: u64) -> Result<(Header, usize), FrameError> {
        check_candidate(&self.buf, self.bad_escape, offset)
    }
}

/// Escape, length, check-code and header checks of one candidate: `unescaped` is the content
/// between the delimiters with the check code last; `bad_escape` the first invalid escape seen in
/// it (stream offset of the 0x7D and the byte after, None at the end of the frame).
#[inline]
fn check_candidate(
    unescaped: &[u8],
    bad_escape: Option<(u64, Option<u8>)>,
    offset: u64,
) -> Result<(Header, usize), FrameError> {
    if let Some((at, next)) = bad_escape {
        return Err(FrameError::InvalidEscape {
            offset,
            at,
            next: next.map_or_else(|| "at end of frame".to_string(), |b| format!("0x{b:02X}")),
        });
    }
    let n = unescaped.len();
    if n < 13 {
        return Err(FrameError::TooShort {
            offset,
            len: n.saturating_sub(1),
        });
    }
    let content = &unescaped[..n - 1];
    let found = unescaped[n - 1];
    let computed = xor(content);
    if found != computed {
        return Err(FrameError::BadChecksum {
            offset,
            found,
            computed,
        });
    }
    Header::parse(content, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects items as (kind, offset, content-hex-or-len) strings.
    fn run(chunks: &[&[u8]]) -> Vec<String> {
        let mut d = Deframer::default();
        let mut out = Vec::new();
        for c in chunks {
            d.push(c, |it| out.push(describe(&it)));
        }
        d.finish(|it| out.push(describe(&it)));
        out
    }

    fn describe(it: &Item<'_>) -> String {
        match it {
            Item::Frame(fr) => format!("frame@{} {}", fr.offset, hex::encode(fr.content)),
            Item::Rejected(e) => format!("rejected@{} {}", e.offset(), e.check()),
            Item::Skipped { offset, len } => format!("skipped@{offset} {len}"),
            Item::UnescapedFlag { offset, at } => format!("unescaped_flag@{offset} at {at}"),
        }
    }

    const HEARTBEAT: &str = "7e000200000123456789017fff0a7e";

    #[test]
    fn one_frame_at_every_split_point() {
        let wire = hex::decode(HEARTBEAT).unwrap();
        let whole = run(&[&wire]);
        assert_eq!(whole, ["frame@0 000200000123456789017fff"]);
        for cut in 0..=wire.len() {
            assert_eq!(run(&[&wire[..cut], &wire[cut..]]), whole, "cut at {cut}");
        }
    }

    #[test]
    fn garbage_before_and_after_is_counted() {
        let wire = hex::decode(format!("deadbeef{HEARTBEAT}0102")).unwrap();
        assert_eq!(
            run(&[&wire]),
            ["skipped@0 4", "frame@4 000200000123456789017fff", "skipped@19 2"]
        );
    }

    #[test]
    fn shared_delimiter_between_frames_is_accepted() {
        // 7E A 7E B 7E: one 0x7E closes A and opens B.
        let a = HEARTBEAT;
        let b = &HEARTBEAT[2..];
        let wire = hex::decode(format!("{a}{b}")).unwrap();
        assert_eq!(run(&[&wire]).len(), 2);
    }

    #[test]
    fn escape_pair_split_across_chunks() {
        // Serial 0x007E is escaped as 00 7D 02.
        let mut content = hex::decode("00020000012345678901007e").unwrap();
        content.push(xor(&content));
        let mut wire = Vec::new();
        super::super::frame::frame_into(&content[..content.len() - 1], &mut wire);
        let i = wire.iter().position(|&b| b == ESCAPE).unwrap();
        let items = run(&[&wire[..=i], &wire[i + 1..]]);
        assert_eq!(items, ["frame@0 00020000012345678901007e"]);
    }

    #[test]
    fn over_long_frame_is_discarded_and_next_frame_kept() {
        let mut wire = vec![FLAG];
        wire.extend(std::iter::repeat_n(0x11, 5000));
        wire.extend(hex::decode(HEARTBEAT).unwrap());
        let mut d = Deframer::default();
        let mut out = Vec::new();
        for c in wire.chunks(7) {
            d.push(c, |it| out.push(describe(&it)));
            assert!(d.buf.capacity() <= 4096, "buffer stays bounded");
        }
        assert_eq!(out, ["rejected@0 too_long", "frame@5001 000200000123456789017fff"]);
    }
}
