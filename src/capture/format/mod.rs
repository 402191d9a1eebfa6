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

use serde::{Deserialize, Serialize};

mod reader;
mod writer;

pub use reader::{CaptureError, CaptureReader, ReaderConfig, Truncation};
pub use writer::CaptureWriter;

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
