//! The capture file format (`jt808-capture`, version 1): what was said on each WebSocket
//! connection between a terminal gateway and a platform client, with timing. A streaming reader
//! ([`CaptureReader`]) and an appending writer ([`CaptureWriter`]). No tokio here: plain
//! `std::io`, so the replay source, the tools and the tests share it.
//!
//! # Format
//!
//! A capture is a UTF-8 text file of [JSON Lines](https://jsonlines.org/): one JSON object per
//! line, each line ended by `\n` (a `\r` before it is allowed; blank lines are ignored).
//!
//! **Line 1 is the header:**
//!
//! ```json
//! {"format":"jt808-capture","version":1,"prefix_len":18,"source":"record ws://10.0.0.5:9001","note":"..."}
//! ```
//!
//! | key | type | meaning |
//! |---|---|---|
//! | `format` | string, required | always `"jt808-capture"`; anything else is not a capture |
//! | `version` | integer, required | `1`. A reader refuses versions it does not know |
//! | `prefix_len` | integer, required | bytes of envelope prefix at the start of every binary message **from the gateway** (18 in the seed client's feed, 0 for a bare JT808 stream). Messages from the client carry none |
//! | `source` | string, optional | where the capture came from (recording proxy, pcap import, ...) |
//! | `note` | string, optional | free text |
//!
//! Other header keys are kept as they are (read into [`CaptureHeader::extra`] and written back),
//! so a later tool can add a key without a version bump as long as older readers may ignore it.
//!
//! **Every further line is one record.** Every record has:
//!
//! | key | type | meaning |
//! |---|---|---|
//! | `t_us` | integer | microseconds since the start of the capture. **Never decreases** from one record to the next (over the whole file, not per connection) |
//! | `conn` | integer | connection id, chosen by the producer (1, 2, ... in order of opening) |
//!
//! and is one of:
//!
//! - a **message**: `"from"` is `"gateway"` (the terminal side: bytes a gateway serves to the
//!   client) or `"client"` (what the platform client sent), and exactly one payload key:
//!   - `"hex"`: a binary message, its bytes as lower-case hex (upper case is accepted on read);
//!   - `"text"`: a text message, as a JSON string (kept as text, so a replay sends a text frame);
//!   - `"ping"` / `"pong"`: a WebSocket ping or pong, its payload as hex (often `""`).
//!
//!   ```json
//!   {"t_us":1500,"conn":1,"from":"gateway","hex":"7e0200001c...7e"}
//!   {"t_us":1720,"conn":1,"from":"client","text":"hello"}
//!   ```
//! - an **event**, `"event"` being
//!   - `"open"`: the connection was established (both sides, for the recording proxy). An
//!     optional `"prefix_len"` states this connection's envelope prefix when it differs from the
//!     header's (a pcap holding WebSocket and raw flows); the header's value is the default;
//!   - `"close"`: the connection ended, with optional keys `"from"` (the side that ended it; absent
//!     when the recorder or importer itself ended it), `"code"` (the WebSocket close code when a
//!     close frame was sent; absent when the connection dropped without one, or the TCP flow of
//!     a pcap ended), and `"reason"` (the close frame's reason text, or why it dropped).
//!
//!   ```json
//!   {"t_us":0,"conn":1,"event":"open"}
//!   {"t_us":9000,"conn":1,"event":"close","from":"client","code":1000}
//!   ```
//!
//! Unknown record keys are an error (a misspelt `"hx"` must not silently drop a payload).
//!
//! # Reading damaged files
//!
//! A recorder killed mid-write leaves a last line without its `\n`. If that line does not parse,
//! the reader stops there and reports it as [`Truncation`] (not an error): every whole record
//! before it has been yielded. A line that does not parse anywhere else is an error naming
//! `file:line:column`, raised after every record before it was yielded. Memory does not grow with
//! the file: one line is held at a time, bounded by [`ReaderConfig::max_line_len`].

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The value of the header's `format` key.
pub const FORMAT_NAME: &str = "jt808-capture";
/// The format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// The first line of a capture. See the module doc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureHeader {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// Always [`FORMAT_VERSION`] for a capture this build reads.
    pub version: u32,
    /// Envelope prefix bytes at the start of every binary message from the gateway.
    pub prefix_len: usize,
    /// Where the capture came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Header keys this version does not define, kept so a rewrite does not lose them.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl CaptureHeader {
    /// A version-1 header.
    pub fn new(prefix_len: usize) -> CaptureHeader {
        CaptureHeader {
            format: FORMAT_NAME.to_string(),
            version: FORMAT_VERSION,
            prefix_len,
            source: None,
            note: None,
            extra: serde_json::Map::new(),
        }
    }
}

/// Which side of the gateway/client connection a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The terminal side: what a (simulated) gateway serves to the client.
    Gateway,
    /// The platform client.
    Client,
}

impl Side {
    /// `"gateway"` or `"client"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Gateway => "gateway",
            Side::Client => "client",
        }
    }

    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Gateway => Side::Client,
            Side::Client => Side::Gateway,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The content of one WebSocket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A binary message (`"hex"`).
    Binary(Vec<u8>),
    /// A text message (`"text"`).
    Text(String),
    /// A ping (`"ping"`, hex).
    Ping(Vec<u8>),
    /// A pong (`"pong"`, hex).
    Pong(Vec<u8>),
}

impl Payload {
    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Payload::Binary(b) | Payload::Ping(b) | Payload::Pong(b) => b.len(),
            Payload::Text(t) => t.len(),
        }
    }

    /// True for an empty payload.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKind {
    /// A WebSocket message.
    Message {
        /// Who sent it.
        from: Side,
        /// What it carried.
        payload: Payload,
    },
    /// The connection was established.
    Open {
        /// The envelope prefix of this connection's gateway messages when it differs from the
        /// header's (a pcap with WebSocket and raw flows); `None`: the header's.
        prefix_len: Option<usize>,
    },
    /// The connection (or one side's half of it) ended.
    Close {
        /// Who ended it; `None` when the recorder or importer did.
        from: Option<Side>,
        /// The WebSocket close code; `None` when no close frame was sent.
        code: Option<u16>,
        /// The close frame's reason, or why the connection dropped.
        reason: Option<String>,
    },
}

/// One line after the header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Repr", try_from = "Repr")]
pub struct Record {
    /// Microseconds since the start of the capture.
    pub t_us: u64,
    /// Connection id.
    pub conn: u64,
    /// What happened.
    pub kind: RecordKind,
}

impl Record {
    /// A message record.
    pub fn message(t_us: u64, conn: u64, from: Side, payload: Payload) -> Record {
        Record {
            t_us,
            conn,
            kind: RecordKind::Message { from, payload },
        }
    }

    /// A binary message record.
    pub fn binary(t_us: u64, conn: u64, from: Side, bytes: impl Into<Vec<u8>>) -> Record {
        Record::message(t_us, conn, from, Payload::Binary(bytes.into()))
    }

    /// An open event (the connection's gateway messages carry the header's prefix).
    pub fn open(t_us: u64, conn: u64) -> Record {
        Record {
            t_us,
            conn,
            kind: RecordKind::Open { prefix_len: None },
        }
    }

    /// An open event stating this connection's own envelope prefix.
    pub fn open_with_prefix(t_us: u64, conn: u64, prefix_len: usize) -> Record {
        Record {
            t_us,
            conn,
            kind: RecordKind::Open {
                prefix_len: Some(prefix_len),
            },
        }
    }

    /// A close event.
    pub fn close(t_us: u64, conn: u64, from: Option<Side>, code: Option<u16>, reason: Option<String>) -> Record {
        Record {
            t_us,
            conn,
            kind: RecordKind::Close { from, code, reason },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum EventName {
    Open,
    Close,
}

/// The flat JSON shape of a record; [`Record`] converts to and from it, checking which keys may
/// go together. Field order here is the key order on disk.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Repr {
    t_us: u64,
    conn: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<EventName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<Side>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ping: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pong: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix_len: Option<usize>,
}

impl From<Record> for Repr {
    fn from(r: Record) -> Repr {
        let mut repr = Repr {
            t_us: r.t_us,
            conn: r.conn,
            event: None,
            from: None,
            hex: None,
            text: None,
            ping: None,
            pong: None,
            code: None,
            reason: None,
            prefix_len: None,
        };
        match r.kind {
            RecordKind::Message { from, payload } => {
                repr.from = Some(from);
                match payload {
                    Payload::Binary(b) => repr.hex = Some(hex::encode(b)),
                    Payload::Text(t) => repr.text = Some(t),
                    Payload::Ping(b) => repr.ping = Some(hex::encode(b)),
                    Payload::Pong(b) => repr.pong = Some(hex::encode(b)),
                }
            }
            RecordKind::Open { prefix_len } => {
                repr.event = Some(EventName::Open);
                repr.prefix_len = prefix_len;
            }
            RecordKind::Close { from, code, reason } => {
                repr.event = Some(EventName::Close);
                repr.from = from;
                repr.code = code;
                repr.reason = reason;
            }
        }
        repr
    }
}

impl TryFrom<Repr> for Record {
    type Error = String;

    fn try_from(r: Repr) -> Result<Record, String> {
        let decode = |key: &str, s: String| hex::decode(&s).map_err(|e| format!("\"{key}\" is not hex: {e}"));
        let mut payloads = Vec::new();
        if let Some(h) = r.hex {
            payloads.push(Payload::Binary(decode("hex", h)?));
        }
        if let Some(t) = r.text {
            payloads.push(Payload::Text(t));
        }
        if let Some(h) = r.ping {
            payloads.push(Payload::Ping(decode("ping", h)?));
        }
        if let Some(h) = r.pong {
            payloads.push(Payload::Pong(decode("pong", h)?));
        }
        let kind = match r.event {
            None => {
                if r.code.is_some() || r.reason.is_some() || r.prefix_len.is_some() {
                    return Err("\"code\", \"reason\" and \"prefix_len\" belong to events, not to a message".into());
                }
                let from = r
                    .from
                    .ok_or("a message needs \"from\" (\"gateway\" or \"client\"); an event needs \"event\"")?;
                if payloads.len() != 1 {
                    return Err(format!(
                        "a message needs exactly one of \"hex\", \"text\", \"ping\", \"pong\" (found {})",
                        payloads.len()
                    ));
                }
                let payload = payloads.pop().ok_or("no payload")?;
                RecordKind::Message { from, payload }
            }
            Some(event) => {
                if !payloads.is_empty() {
                    return Err("an event carries no payload (\"hex\", \"text\", \"ping\", \"pong\")".into());
                }
                match event {
                    EventName::Open => {
                        if r.from.is_some() || r.code.is_some() || r.reason.is_some() {
                            return Err(
                                "an open event has only \"t_us\", \"conn\", \"event\" and \"prefix_len\"".into(),
                            );
                        }
                        RecordKind::Open {
                            prefix_len: r.prefix_len,
                        }
                    }
                    EventName::Close if r.prefix_len.is_some() => {
                        return Err("\"prefix_len\" belongs to an open event".into());
                    }
                    EventName::Close => RecordKind::Close {
                        from: r.from,
                        code: r.code,
                        reason: r.reason,
                    },
                }
            }
        };
        Ok(Record {
            t_us: r.t_us,
            conn: r.conn,
            kind,
        })
    }
}

/// Why a capture could not be read. Each names the file, and the line (and column when serde_json
/// knows it) as `file:line:column`, so an editor can jump there. Records before the error were
/// already yielded: nothing accepted is lost.
#[derive(Debug, Error)]
pub enum CaptureError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The capture file.
        path: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file is empty: not even a header.
    #[error("{path}: empty file, expected a {FORMAT_NAME} header on line 1")]
    Empty {
        /// The capture file.
        path: String,
    },
    /// Line 1 is not a `jt808-capture` header.
    #[error("{path}:1: not a {FORMAT_NAME} capture: {detail}")]
    NotACapture {
        /// The capture file.
        path: String,
        /// What was found instead.
        detail: String,
    },
    /// The header names a version this build does not read.
    #[error("{path}:1: capture format version {found} is not supported (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion {
        /// The capture file.
        path: String,
        /// The version in the header.
        found: String,
    },
    /// A line is not valid JSON, or not a valid header or record.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The capture file.
        path: String,
        /// 1-based line.
        line: u64,
        /// 1-based column (1 when the problem is the record as a whole).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A record's `t_us` is smaller than the one before it.
    #[error("{path}:{line}: t_us {t_us} goes back in time (line {prev_line} had t_us {prev_t_us})")]
    TimeBackwards {
        /// The capture file.
        path: String,
        /// 1-based line.
        line: u64,
        /// This record's time.
        t_us: u64,
        /// The previous record's line.
        prev_line: u64,
        /// The previous record's time.
        prev_t_us: u64,
    },
    /// A line is longer than [`ReaderConfig::max_line_len`].
    #[error("{path}:{line}: line longer than the {limit}-byte limit (max_line_len)")]
    LineTooLong {
        /// The capture file.
        path: String,
        /// 1-based line.
        line: u64,
        /// The limit.
        limit: usize,
    },
}

/// The last line of a capture was cut mid-write (no `\n`, does not parse). Not an error: every
/// whole record before it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Truncation {
    /// 1-based line number of the cut line.
    pub line: u64,
    /// How many bytes of it there were.
    pub bytes: usize,
    /// Why it did not parse.
    pub error: String,
}

/// Reader limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderConfig {
    /// Longest line accepted, in bytes. Default 64 MiB: a 32 MiB WebSocket message as hex. A longer
    /// line is an error ([`CaptureError::LineTooLong`]), so a file without newlines cannot make the
    /// reader hold all of it.
    pub max_line_len: usize,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        ReaderConfig { max_line_len: 64 << 20 }
    }
}

/// Streaming capture reader: the header is read on open, then records one at a time (as an
/// [`Iterator`]), holding one line in memory. Stops at the first error (yielded once) or at a
/// truncated last line (see [`CaptureReader::truncated`]).
#[derive(Debug)]
pub struct CaptureReader<R> {
    src: R,
    path: String,
    cfg: ReaderConfig,
    header: CaptureHeader,
    buf: Vec<u8>,
    /// Lines read so far (the number of the line in `buf`).
    lines_read: u64,
    record_line: u64,
    last_t_us: u64,
    truncated: Option<Truncation>,
    done: bool,
}

impl CaptureReader<BufReader<File>> {
    /// Opens a capture file and reads its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let file = File::open(path).map_err(|source| CaptureError::Io {
            path: name.clone(),
            source,
        })?;
        CaptureReader::from_reader(BufReader::with_capacity(256 << 10, file), name)
    }
}

impl<R: BufRead> CaptureReader<R> {
    /// Reads a capture from any buffered reader; `name` stands for the file in errors.
    pub fn from_reader(src: R, name: impl Into<String>) -> Result<Self, CaptureError> {
        CaptureReader::with_config(src, name, ReaderConfig::default())
    }

    /// [`CaptureReader::from_reader`] with explicit limits.
    pub fn with_config(src: R, name: impl Into<String>, cfg: ReaderConfig) -> Result<Self, CaptureError> {
        let mut r = CaptureReader {
            src,
            path: name.into(),
            cfg,
            header: CaptureHeader::new(0),
            buf: Vec::new(),
            lines_read: 0,
            record_line: 0,
            last_t_us: 0,
            truncated: None,
            done: false,
        };
        r.header = r.read_header()?;
        Ok(r)
    }

    /// The header.
    pub fn header(&self) -> &CaptureHeader {
        &self.header
    }

    /// The file name used in errors.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Line number of the last record yielded (0 before the first).
    pub fn line(&self) -> u64 {
        self.record_line
    }

    /// Set once the reader has met a cut last line: where, and why it did not parse.
    pub fn truncated(&self) -> Option<&Truncation> {
        self.truncated.as_ref()
    }

    /// Reads the next non-blank line into `buf`. Returns whether it ended with `\n`, or `None` at
    /// the end of the file.
    fn read_line(&mut self) -> Result<Option<bool>, CaptureError> {
        loop {
            self.buf.clear();
            let limit = self.cfg.max_line_len as u64 + 1;
            let n = (&mut self.src)
                .take(limit)
                .read_until(b'\n', &mut self.buf)
                .map_err(|source| CaptureError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                return Ok(None);
            }
            self.lines_read += 1;
            let newline = self.buf.last() == Some(&b'\n');
            let content_len = self.buf.len() - usize::from(newline);
            if content_len > self.cfg.max_line_len {
                return Err(CaptureError::LineTooLong {
                    path: self.path.clone(),
                    line: self.lines_read,
                    limit: self.cfg.max_line_len,
                });
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(newline));
        }
    }

    fn parse_error(&self, e: &serde_json::Error) -> CaptureError {
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
        CaptureError::Parse {
            path: self.path.clone(),
            line: self.lines_read,
            column: e.column().max(1),
            message,
        }
    }

    fn read_header(&mut self) -> Result<CaptureHeader, CaptureError> {
        if self.read_line()?.is_none() {
            return Err(CaptureError::Empty {
                path: self.path.clone(),
            });
        }
        let value: serde_json::Value = serde_json::from_slice(&self.buf).map_err(|e| {
            if self.lines_read == 1 {
                CaptureError::NotACapture {
                    path: self.path.clone(),
                    detail: format!("line 1 is not JSON ({e})"),
                }
            } else {
                self.parse_error(&e)
            }
        })?;
        let format = value.get("format");
        if format.and_then(|f| f.as_str()) != Some(FORMAT_NAME) {
            return Err(CaptureError::NotACapture {
                path: self.path.clone(),
                detail: match format {
                    Some(f) => format!("\"format\" is {f}, expected \"{FORMAT_NAME}\""),
                    None => format!("line 1 has no \"format\" key (expected \"{FORMAT_NAME}\")"),
                },
            });
        }
        match value.get("version") {
            Some(v) if v.as_u64() == Some(FORMAT_VERSION as u64) => {}
            Some(v) => {
                return Err(CaptureError::UnsupportedVersion {
                    path: self.path.clone(),
                    found: v.to_string(),
                });
            }
            None => {
                return Err(CaptureError::UnsupportedVersion {
                    path: self.path.clone(),
                    found: "(missing)".into(),
                });
            }
        }
        serde_json::from_slice(&self.buf).map_err(|e| self.parse_error(&e))
    }

    /// The next record, `None` at the end (or after an error or a truncated last line).
    pub fn next_record(&mut self) -> Option<Result<Record, CaptureError>> {
        if self.done {
            return None;
        }
        let result = self.read_record();
        if !matches!(result, Some(Ok(_))) {
            self.done = true;
        }
        result
    }

    fn read_record(&mut self) -> Option<Result<Record, CaptureError>> {
        let newline = match self.read_line() {
            Ok(None) => return None,
            Ok(Some(nl)) => nl,
            Err(e) => return Some(Err(e)),
        };
        let record: Record = match serde_json::from_slice(&self.buf) {
            Ok(r) => r,
            Err(e) if !newline => {
                // The writer always ends a record with '\n': a last line without one that does not
                // parse is a record cut mid-write, not damage.
                let full = e.to_string();
                self.truncated = Some(Truncation {
                    line: self.lines_read,
                    bytes: self.buf.len(),
                    error: full,
                });
                return None;
            }
            Err(e) => return Some(Err(self.parse_error(&e))),
        };
        if record.t_us < self.last_t_us {
            return Some(Err(CaptureError::TimeBackwards {
                path: self.path.clone(),
                line: self.lines_read,
                t_us: record.t_us,
                prev_line: self.record_line,
                prev_t_us: self.last_t_us,
            }));
        }
        self.last_t_us = record.t_us;
        self.record_line = self.lines_read;
        Some(Ok(record))
    }
}

impl<R: BufRead> Iterator for CaptureReader<R> {
    type Item = Result<Record, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

/// Appends records to a capture, one `write` call and one flush per record, so a recorder killed
/// at any moment loses at most the record in flight (which a reader then reports as
/// [`Truncation`]).
#[derive(Debug)]
pub struct CaptureWriter<W: Write> {
    out: W,
    line: Vec<u8>,
    last_t_us: u64,
    records: u64,
    /// Byte offset of the header's `prefix_len` digits when they were written padded to
    /// [`PREFIX_DIGITS`] so that [`CaptureWriter::restate_prefix_len`] can rewrite them in place.
    prefix_at: Option<u64>,
}

/// Width the `prefix_len` value is padded to (with JSON whitespace) in a header whose prefix may be
/// restated: room for any `u16`.
const PREFIX_DIGITS: usize = 5;

impl CaptureWriter<File> {
    /// Creates (or truncates) `path` and writes the header.
    pub fn create(path: impl AsRef<Path>, header: &CaptureHeader) -> io::Result<Self> {
        CaptureWriter::new(File::create(path)?, header)
    }
}

impl<W: Write + Seek> CaptureWriter<W> {
    /// Writes the header with its `prefix_len` padded (`"prefix_len":18   ,`: whitespace is JSON),
    /// so that a producer that learns the prefix from the traffic, as the recorder does, can state
    /// it in place with [`CaptureWriter::restate_prefix_len`] while records are already on disk.
    pub fn with_restatable_prefix(out: W, header: &CaptureHeader) -> io::Result<Self> {
        let mut w = CaptureWriter::blank(out);
        serde_json::to_writer(&mut w.line, header)?;
        let key = b"\"prefix_len\":";
        // The first occurrence is the key itself: inside a JSON string a quote is escaped.
        let at = w
            .line
            .windows(key.len())
            .position(|win| win == key)
            .ok_or_else(|| io::Error::other("header without prefix_len"))?
            + key.len();
        let digits = w.line[at..].iter().take_while(|b| b.is_ascii_digit()).count();
        w.line.splice(
            at + digits..at + digits,
            std::iter::repeat_n(b' ', PREFIX_DIGITS - digits),
        );
        let start = w.out.stream_position()?;
        w.finish_header()?;
        w.prefix_at = Some(start + at as u64);
        Ok(w)
    }

    /// Rewrites the header's `prefix_len` in place (only for a writer made by
    /// [`CaptureWriter::with_restatable_prefix`]), then goes on appending at the end.
    pub fn restate_prefix_len(&mut self, prefix_len: u16) -> io::Result<()> {
        let at = self
            .prefix_at
            .ok_or_else(|| io::Error::other("this capture's header prefix cannot be restated"))?;
        let text = format!("{prefix_len:<PREFIX_DIGITS$}");
        self.out.seek(SeekFrom::Start(at))?;
        self.out.write_all(text.as_bytes())?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()
    }
}

impl<W: Write> CaptureWriter<W> {
    /// Writes the header to `out`.
    pub fn new(out: W, header: &CaptureHeader) -> io::Result<Self> {
        let mut w = CaptureWriter::blank(out);
        serde_json::to_writer(&mut w.line, header)?;
        w.finish_header()?;
        Ok(w)
    }

    fn blank(out: W) -> Self {
        CaptureWriter {
            out,
            line: Vec::with_capacity(4096),
            last_t_us: 0,
            records: 0,
            prefix_at: None,
        }
    }

    fn finish_header(&mut self) -> io::Result<()> {
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        self.out.flush()
    }

    /// Appends one record and flushes it. A record earlier than the one before it is refused
    /// (`InvalidInput`): the format promises non-decreasing `t_us`.
    pub fn write(&mut self, record: &Record) -> io::Result<()> {
        if record.t_us < self.last_t_us {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "record t_us {} is earlier than the previous record's {}",
                    record.t_us, self.last_t_us
                ),
            ));
        }
        self.line.clear();
        serde_json::to_writer(&mut self.line, record)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        self.out.flush()?;
        self.last_t_us = record.t_us;
        self.records += 1;
        Ok(())
    }

    /// The `t_us` of the last record written (0 before any).
    pub fn last_t_us(&self) -> u64 {
        self.last_t_us
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keys_come_out_in_documented_order() {
        let r = Record::binary(1500, 1, Side::Gateway, vec![0x7e, 0x00]);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"t_us":1500,"conn":1,"from":"gateway","hex":"7e00"}"#
        );
        let c = Record::close(9, 2, Some(Side::Client), Some(1000), None);
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"t_us":9,"conn":2,"event":"close","from":"client","code":1000}"#
        );
        assert_eq!(
            serde_json::to_string(&Record::open(0, 3)).unwrap(),
            r#"{"t_us":0,"conn":3,"event":"open"}"#
        );
        let own = Record::open_with_prefix(0, 4, 0);
        let line = serde_json::to_string(&own).unwrap();
        assert_eq!(line, r#"{"t_us":0,"conn":4,"event":"open","prefix_len":0}"#);
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), own);
    }

    #[test]
    fn a_restatable_header_prefix_is_rewritten_in_place_and_reads_as_the_new_value() {
        let mut header = CaptureHeader::new(0);
        header.source = Some("record \"prefix_len\":7".into());
        let mut w = CaptureWriter::with_restatable_prefix(io::Cursor::new(Vec::new()), &header).unwrap();
        w.write(&Record::binary(5, 1, Side::Gateway, vec![0x7e])).unwrap();
        w.restate_prefix_len(18).unwrap();
        w.write(&Record::open(6, 2)).unwrap();
        w.restate_prefix_len(65535).unwrap();
        w.restate_prefix_len(4).unwrap();
        let bytes = w.into_inner().into_inner();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with(r#"{"format":"jt808-capture","version":1,"prefix_len":4    ,"#),
            "{text}"
        );
        let mut r = CaptureReader::from_reader(&bytes[..], "mem").unwrap();
        assert_eq!(r.header().prefix_len, 4);
        assert_eq!(r.header().source.as_deref(), Some("record \"prefix_len\":7"));
        assert_eq!(r.by_ref().count(), 2);
        let mut plain = CaptureWriter::new(io::Cursor::new(Vec::new()), &header).unwrap();
        assert!(
            plain.restate_prefix_len(1).is_err(),
            "only a padded header can be restated"
        );
    }

    #[test]
    fn ill_formed_records_are_refused_with_a_reason() {
        for (line, want) in [
            (r#"{"t_us":1,"conn":1,"hex":"00"}"#, "needs \"from\""),
            (r#"{"t_us":1,"conn":1,"from":"client"}"#, "exactly one"),
            (
                r#"{"t_us":1,"conn":1,"from":"client","hex":"00","text":"a"}"#,
                "exactly one",
            ),
            (r#"{"t_us":1,"conn":1,"from":"client","hex":"0g"}"#, "not hex"),
            (r#"{"t_us":1,"conn":1,"event":"open","hex":"00"}"#, "no payload"),
            (
                r#"{"t_us":1,"conn":1,"from":"client","hex":"00","prefix_len":2}"#,
                "belong to events",
            ),
            (
                r#"{"t_us":1,"conn":1,"event":"close","prefix_len":2}"#,
                "belongs to an open event",
            ),
            (r#"{"t_us":1,"conn":1,"from":"client","hx":"00"}"#, "unknown field"),
            (r#"{"t_us":1,"conn":1,"from":"server","hex":"00"}"#, "unknown variant"),
        ] {
            let e = serde_json::from_str::<Record>(line).unwrap_err().to_string();
            assert!(e.contains(want), "{line}: {e}");
        }
    }
}
