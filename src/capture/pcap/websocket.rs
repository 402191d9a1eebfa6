//! WebSocket inside a reassembled TCP flow: the HTTP upgrade that makes a flow WebSocket, and one
//! direction's frames turned back into messages.
//!
//! The upgrade is parsed with `httparse`; frame headers with tungstenite's
//! [`FrameHeader::parse`] (the crate the client and gateway speak WebSocket with). This module
//! walks frame by frame itself rather than through `tungstenite::WebSocket` for two reasons an
//! import needs and a live socket does not: every frame's exact byte offset in the TCP stream is
//! known (a malformed stream is reported at the frame that broke it), and a frame or message over
//! the limits is skipped in place without being held, so the messages after it still import.

use std::io::Cursor;

use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};

use crate::capture::format::Payload;

/// Headers looked at in an upgrade request or response (more is not an upgrade).
const MAX_HEADERS: usize = 64;
/// Control frames carry at most this many payload bytes (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// What the first bytes of a direction say about an HTTP upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Http {
    /// Not complete yet: more bytes needed.
    Partial,
    /// A complete request or response of `len` bytes (headers and the blank line).
    Upgrade {
        /// Header bytes; the WebSocket frames start after them.
        len: usize,
        /// The response's status (0 for a request).
        status: u16,
        /// The response accepted `permessage-deflate` (frames then carry compressed payloads).
        deflate: bool,
    },
    /// Not an upgrade (a request other than `GET` with `Upgrade: websocket`, or not HTTP).
    Not,
}

/// Could `bytes` still be the start of a `GET` request? Cheap test before any parsing.
pub(super) fn may_be_get(bytes: &[u8]) -> bool {
    let n = bytes.len().min(4);
    bytes[..n] == b"GET "[..n]
}

/// Parses the client's first bytes as an upgrade request.
pub(super) fn parse_request(bytes: &[u8]) -> Http {
    if !may_be_get(bytes) {
        return Http::Not;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(bytes) {
        Ok(httparse::Status::Partial) => Http::Partial,
        Ok(httparse::Status::Complete(len)) => {
            let upgrade = req
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("upgrade") && contains_token(h.value, "websocket"));
            if req.method == Some("GET") && upgrade {
                Http::Upgrade {
                    len,
                    status: 0,
                    deflate: false,
                }
            } else {
                Http::Not
            }
        }
        Err(_) => Http::Not,
    }
}

/// Parses the server's first bytes as the answer to an upgrade request.
pub(super) fn parse_response(bytes: &[u8]) -> Http {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(bytes) {
        Ok(httparse::Status::Partial) => Http::Partial,
        Ok(httparse::Status::Complete(len)) => Http::Upgrade {
            len,
            status: resp.code.unwrap_or(0),
            deflate: resp.headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case("sec-websocket-extensions") && contains_token(h.value, "permessage-deflate")
            }),
        },
        Err(_) => Http::Not,
    }
}

fn contains_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',' || b == b';')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Frame and message size limits of one direction.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Largest frame payload held.
    pub max_frame: u64,
    /// Largest message (all fragments joined) held.
    pub max_message: usize,
}

/// What a direction's frames amounted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum WsEvent {
    /// A whole message or a control frame.
    Message(Payload),
    /// A close frame: its code (none for an empty close frame) and reason.
    Close {
        /// The close code.
        code: Option<u16>,
        /// The reason text; `None` when empty.
        reason: Option<String>,
    },
    /// A message over a limit, skipped; `offset` is where its first frame starts.
    TooLong {
        /// Byte offset in the direction's TCP stream.
        offset: u64,
        /// Bytes it had (or its frame declared) when the limit was passed.
        size: u64,
        /// The limit passed, `"max_ws_frame_bytes"` or `"max_ws_message_bytes"`.
        limit: &'static str,
    },
    /// The stream broke at `offset`: everything after it in this direction is given up.
    Malformed {
        /// Byte offset in the direction's TCP stream of the frame that broke it.
        offset: u64,
        /// What was wrong.
        what: String,
    },
}

/// A message being joined from its fragments.
#[derive(Debug)]
struct Partial {
    text: bool,
    bytes: Vec<u8>,
    /// Over a limit: the remaining fragments are skipped, not held.
    dropped: bool,
}

/// One direction of a WebSocket connection, fed its TCP bytes after the upgrade.
#[derive(Debug)]
pub(super) struct WsReader {
    /// Frames from the client must be masked, frames from the server must not (RFC 6455 §5.1).
    from_client: bool,
    limits: Limits,
    /// Bytes not parsed yet: at most one frame header and its payload.
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    offset: u64,
    /// Payload bytes of a skipped frame still to come.
    skip: u64,
    /// The message being joined from its fragments.
    message: Option<Partial>,
    /// The stream broke: nothing more is parsed.
    failed: bool,
    /// Bytes ignored after the stream broke.
    pub ignored_bytes: u64,
}

impl WsReader {
    /// A reader for the direction sent by the client (`from_client`) or the server, whose frames
    /// start at stream offset `offset` (the upgrade's length).
    pub(super) fn new(from_client: bool, limits: Limits, offset: u64) -> WsReader {
        WsReader {
            from_client,
            limits,
            buf: Vec::new(),
            offset,
            skip: 0,
            message: None,
            failed: false,
            ignored_bytes: 0,
        }
    }

    /// True once the stream broke.
    pub(super) fn failed(&self) -> bool {
        self.failed
    }

    /// More bytes of the direction, in order: each event is handed to `out` as it completes.
    pub(super) fn push(&mut self, mut bytes: &[u8], out: &mut impl FnMut(WsEvent)) {
        if self.failed {
            self.ignored_bytes += bytes.len() as u64;
            return;
        }
        if self.skip > 0 && self.buf.is_empty() {
            // The payload of a skipped frame is stepped over without being copied.
            let n = self.skip.min(bytes.len() as u64);
            self.skip -= n;
            self.offset += n;
            bytes = &bytes[n as usize..];
        }
        self.buf.extend_from_slice(bytes);
        let mut at = 0;
        loop {
            if self.skip > 0 {
                let n = self.skip.min((self.buf.len() - at) as u64);
                self.skip -= n;
                self.offset += n;
                at += n as usize;
                if self.skip > 0 {
                    break;
                }
            }
            if self.failed {
                self.ignored_bytes += (self.buf.len() - at) as u64;
                at = self.buf.len();
                break;
            }
            match self.frame(at, out) {
                Some(used) => at += used,
                None if self.failed => {}
                None => break,
            }
        }
        self.buf.drain(..at);
    }

    /// Parses the frame at `buf[at..]`; `None` when it is not all there yet (or the stream
    /// broke). Returns the bytes used and advances `offset` by them.
    fn frame(&mut self, at: usize, out: &mut impl FnMut(WsEvent)) -> Option<usize> {
        let start = self.offset;
        let mut cursor = Cursor::new(&self.buf[at..]);
        let (header, len) = match FrameHeader::parse(&mut cursor) {
            Ok(Some(h)) => h,
            Ok(None) => return None,
            Err(e) => {
                self.fail(start, format!("frame header: {e}"), out);
                return None;
            }
        };
        let head = cursor.position() as usize;
        if let Err(what) = self.check(&header, len) {
            self.fail(start, what, out);
            return None;
        }
        if len > self.limits.max_frame {
            // Skipped in place: the header is used, the payload is skipped as it comes.
            self.offset += head as u64;
            self.skip = len;
            let dropped = self.message.as_ref().is_some_and(|m| m.dropped);
            if !dropped {
                out(WsEvent::TooLong {
                    offset: start,
                    size: len,
                    limit: "max_ws_frame_bytes",
                });
            }
            if let OpCode::Data(_) = header.opcode {
                self.data_skipped(&header);
            }
            return Some(head);
        }
        let total = head + len as usize;
        if self.buf.len() - at < total {
            return None;
        }
        let mut payload = self.buf[at + head..at + total].to_vec();
        if let Some(mask) = header.mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i & 3];
            }
        }
        self.offset += total as u64;
        self.deliver(start, &header, payload, out);
        Some(total)
    }

    /// The RFC 6455 rules a frame header must keep, before its payload is looked at.
    fn check(&self, header: &FrameHeader, len: u64) -> Result<(), String> {
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err("reserved bits set (an extension such as permessage-deflate; not decoded)".into());
        }
        match (self.from_client, header.mask.is_some()) {
            (true, false) => return Err("unmasked frame from the client".into()),
            (false, true) => return Err("masked frame from the server".into()),
            _ => {}
        }
        match header.opcode {
            OpCode::Control(Control::Reserved(op)) | OpCode::Data(Data::Reserved(op)) => {
                Err(format!("reserved opcode {op:#x}"))
            }
            OpCode::Control(_) if !header.is_final => Err("fragmented control frame".into()),
            OpCode::Control(_) if len > MAX_CONTROL_PAYLOAD => {
                Err(format!("control frame of {len} bytes (at most {MAX_CONTROL_PAYLOAD})"))
            }
            OpCode::Data(Data::Continue) if self.message.is_none() => {
                Err("continuation frame without a message to continue".into())
            }
            OpCode::Data(Data::Text | Data::Binary) if self.message.is_some() => {
                Err("a new message before the fragmented one ended".into())
            }
            _ => Ok(()),
        }
    }

    /// A data frame over the frame limit: its message is dropped (its other fragments skipped).
    fn data_skipped(&mut self, header: &FrameHeader) {
        let text = header.opcode == OpCode::Data(Data::Text);
        let partial = self.message.get_or_insert(Partial {
            text,
            bytes: Vec::new(),
            dropped: true,
        });
        partial.dropped = true;
        partial.bytes = Vec::new();
        if header.is_final {
            self.message = None;
        }
    }

    fn deliver(&mut self, start: u64, header: &FrameHeader, payload: Vec<u8>, out: &mut impl FnMut(WsEvent)) {
        let data = match header.opcode {
            OpCode::Control(Control::Ping) => return out(WsEvent::Message(Payload::Ping(payload))),
            OpCode::Control(Control::Pong) => return out(WsEvent::Message(Payload::Pong(payload))),
            OpCode::Control(_) => return self.close(start, &payload, out),
            OpCode::Data(d) => d,
        };
        let partial = self.message.get_or_insert(Partial {
            text: data == Data::Text,
            bytes: Vec::new(),
            dropped: false,
        });
        if !partial.dropped {
            if partial.bytes.len() + payload.len() > self.limits.max_message {
                out(WsEvent::TooLong {
                    offset: start,
                    size: (partial.bytes.len() + payload.len()) as u64,
                    limit: "max_ws_message_bytes",
                });
                partial.dropped = true;
                partial.bytes = Vec::new();
            } else if partial.bytes.is_empty() {
                partial.bytes = payload;
            } else {
                partial.bytes.extend_from_slice(&payload);
            }
        }
        if !header.is_final {
            return;
        }
        let Some(done) = self.message.take() else { return };
        if done.dropped {
            return;
        }
        if !done.text {
            return out(WsEvent::Message(Payload::Binary(done.bytes)));
        }
        match String::from_utf8(done.bytes) {
            Ok(t) => out(WsEvent::Message(Payload::Text(t))),
            Err(e) => self.fail(start, format!("text message is not UTF-8: {}", e.utf8_error()), out),
        }
    }

    fn close(&mut self, start: u64, payload: &[u8], out: &mut impl FnMut(WsEvent)) {
        match payload {
            [] => out(WsEvent::Close {
                code: None,
                reason: None,
            }),
            [_] => self.fail(start, "close frame with a 1-byte payload".into(), out),
            [hi, lo, reason @ ..] => match std::str::from_utf8(reason) {
                Ok(r) => out(WsEvent::Close {
                    code: Some(u16::from_be_bytes([*hi, *lo])),
                    reason: (!r.is_empty()).then(|| r.to_string()),
                }),
                Err(e) => self.fail(start, format!("close reason is not UTF-8: {e}"), out),
            },
        }
    }

    fn fail(&mut self, offset: u64, what: String, out: &mut impl FnMut(WsEvent)) {
        self.failed = true;
        self.message = None;
        out(WsEvent::Malformed { offset, what });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(op: OpCode, fin: bool, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let header = FrameHeader {
            is_final: fin,
            opcode: op,
            mask,
            ..FrameHeader::default()
        };
        let mut out = Vec::new();
        header.format(payload.len() as u64, &mut out).expect("format");
        let start = out.len();
        out.extend_from_slice(payload);
        if let Some(m) = mask {
            out[start..].iter_mut().enumerate().for_each(|(i, b)| *b ^= m[i & 3]);
        }
        out
    }

    const LIMITS: Limits = Limits {
        max_frame: 1 << 20,
        max_message: 1 << 20,
    };
    const MASK: Option<[u8; 4]> = Some([0xa1, 0x02, 0xff, 0x40]);

    /// Feeds `bytes` one byte at a time (the worst split) and in one piece; both must agree.
    fn read(from_client: bool, limits: Limits, bytes: &[u8]) -> Vec<WsEvent> {
        let mut whole = Vec::new();
        WsReader::new(from_client, limits, 0).push(bytes, &mut |e| whole.push(e));
        let mut split = Vec::new();
        let mut r = WsReader::new(from_client, limits, 0);
        for b in bytes {
            r.push(std::slice::from_ref(b), &mut |e| split.push(e));
        }
        assert_eq!(whole, split, "byte-by-byte feeding changes nothing");
        whole
    }

    #[test]
    fn client_frames_are_unmasked_and_fragments_joined_around_a_ping() {
        let bytes = [
            frame(OpCode::Data(Data::Text), false, b"hel", MASK),
            frame(OpCode::Control(Control::Ping), true, b"p", MASK),
            frame(OpCode::Data(Data::Continue), true, "lo \u{e9}".as_bytes(), MASK),
            frame(OpCode::Data(Data::Binary), true, &[0x7e, 0x00, 0x7e], MASK),
            frame(OpCode::Control(Control::Close), true, b"\x03\xe8bye", MASK),
        ]
        .concat();
        assert_eq!(
            read(true, LIMITS, &bytes),
            [
                WsEvent::Message(Payload::Ping(b"p".to_vec())),
                WsEvent::Message(Payload::Text("hello \u{e9}".into())),
                WsEvent::Message(Payload::Binary(vec![0x7e, 0, 0x7e])),
                WsEvent::Close {
                    code: Some(1000),
                    reason: Some("bye".into())
                },
            ]
        );
    }

    #[test]
    fn a_message_over_the_limit_is_skipped_and_the_next_one_kept() {
        let limits = Limits {
            max_frame: 1 << 20,
            max_message: 8,
        };
        let first = frame(OpCode::Data(Data::Binary), false, &[1; 6], None);
        let bytes = [
            first.clone(),
            frame(OpCode::Data(Data::Continue), false, &[2; 6], None),
            frame(OpCode::Data(Data::Continue), true, &[3; 6], None),
            frame(OpCode::Data(Data::Binary), true, &[4; 2], None),
        ]
        .concat();
        assert_eq!(
            read(false, limits, &bytes),
            [
                WsEvent::TooLong {
                    offset: first.len() as u64,
                    size: 12,
                    limit: "max_ws_message_bytes"
                },
                WsEvent::Message(Payload::Binary(vec![4; 2])),
            ]
        );
    }

    #[test]
    fn protocol_errors_are_reported_at_the_frame_that_broke_the_stream() {
        let good = frame(OpCode::Data(Data::Binary), true, b"ok", None);
        let cases: [(Vec<u8>, &str); 6] = [
            (
                frame(OpCode::Data(Data::Continue), true, b"x", None),
                "continuation frame without",
            ),
            // FIN + opcode 3 (reserved), 1 payload byte; tungstenite will not write it.
            (vec![0x83, 0x01, b'x'], "opcode"),
            (
                frame(OpCode::Control(Control::Ping), false, b"x", None),
                "fragmented control frame",
            ),
            (
                frame(OpCode::Control(Control::Close), true, b"\x03", None),
                "1-byte payload",
            ),
            (frame(OpCode::Data(Data::Text), true, &[0xff, 0xfe], None), "not UTF-8"),
            (
                frame(OpCode::Data(Data::Binary), true, b"x", MASK),
                "masked frame from the server",
            ),
        ];
        for (bad, what) in cases {
            let bytes = [good.clone(), bad, good.clone()].concat();
            let events = read(false, LIMITS, &bytes);
            assert_eq!(events.len(), 2, "{what}: {events:?}");
            assert_eq!(events[0], WsEvent::Message(Payload::Binary(b"ok".to_vec())));
            let WsEvent::Malformed { offset, what: got } = &events[1] else {
                panic!("{what}: {events:?}")
            };
            assert_eq!(*offset, good.len() as u64, "{what}");
            assert!(got.contains(what), "{got}");
        }
    }

    #[test]
    fn upgrades_are_recognised_by_method_and_header_not_port() {
        let req = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\nrest";
        assert_eq!(
            parse_request(req),
            Http::Upgrade {
                len: req.len() - 4,
                status: 0,
                deflate: false
            }
        );
        assert_eq!(parse_request(&req[..20]), Http::Partial);
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Http::Not);
        assert_eq!(
            parse_request(b"POST /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"),
            Http::Not
        );
        assert_eq!(parse_request(&[0x7e, 0x02, 0x00]), Http::Not);
        let resp = b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
        assert_eq!(
            parse_response(resp),
            Http::Upgrade {
                len: resp.len(),
                status: 101,
                deflate: true
            }
        );
    }
}
