//! `decode --file CAPTURE`: a capture dumped record by record, as the client would have decoded
//! each side of each connection.
//!
//! One [`Decoder`] per connection and direction, fed on the capture's own clock (`t_us`), so packet
//! groups expire as they would have live. Gateway messages lose their envelope prefix first (the
//! header's `prefix_len`, or the connection's own from its `open` record); client messages carry
//! none. Every line is a decode event (`message`, `error`, `skipped`, `group_expired`, ...) with
//! `t_us`, `conn` and `from` in front, or a record that is not JT808 bytes: `open`, `close` (with
//! `code` and `reason`), `text`, `ping`, `pong`, and `short_message` for a gateway message shorter
//! than its prefix. A connection's close ends both its streams (a cut frame is reported
//! `unterminated`, never glued to a later connection). A capture cut short by a killed recorder ends
//! with `capture_truncated`; a damaged line is an error after everything before it was printed.

use std::io::{self, BufRead, Read, Write};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::capture::prefix::ConnPrefixes;
use crate::capture::{CaptureError, CaptureReader, FORMAT_NAME, Payload, Record, RecordKind, Side};
use crate::codec::{DecodeEvent, Decoder, DecoderConfig};

/// Whether `first_line` is a capture header (the file is then dumped as a capture).
pub fn is_capture_header(first_line: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        format: String,
    }
    serde_json::from_slice::<Probe>(first_line.trim_ascii()).is_ok_and(|p| p.format == FORMAT_NAME)
}

/// Dumps `path` as a capture when its first line is a capture header; `None` when it is not one
/// (the caller then decodes it as a raw byte stream).
pub fn dump_if_capture(
    path: &Path,
    cfg: DecoderConfig,
    packets: bool,
    out: &mut impl Write,
) -> Option<Result<(), DumpError>> {
    let mut first = Vec::new();
    let file = std::fs::File::open(path).ok()?;
    // A header is one short line; 64 KiB is far more than any header and bounds the look.
    io::BufReader::new(file)
        .take(64 * 1024)
        .read_until(b'\n', &mut first)
        .ok()?;
    if !is_capture_header(&first) {
        return None;
    }
    Some(
        CaptureReader::open(path)
            .map_err(DumpError::from)
            .and_then(|r| dump(r, cfg, packets, out)),
    )
}

/// Why a capture dump stopped.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// The capture is damaged (every record before the damage was printed).
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Io(#[from] io::Error),
}

/// Dumps every record of `reader` to `out`, one JSON object per line (see the module doc).
/// `packets` also prints every buffered sub-packet.
pub fn dump<R: BufRead>(
    mut reader: CaptureReader<R>,
    cfg: DecoderConfig,
    packets: bool,
    out: &mut impl Write,
) -> Result<(), DumpError> {
    let mut dump = Dump {
        decoders: std::collections::BTreeMap::new(),
        last_t_us: 0,
        prefixes: ConnPrefixes::new(reader.header().prefix_len),
        cfg,
        packets,
        out,
    };
    for record in reader.by_ref() {
        dump.record(record?)?;
    }
    dump.finish()?;
    if let Some(t) = reader.truncated() {
        let what = serde_json::json!({
            "type": "capture_truncated",
            "line": t.line,
            "bytes": t.bytes,
            "error": t.error,
        });
        writeln!(dump.out, "{what}")?;
    }
    Ok(())
}

struct Dump<'o, W> {
    decoders: std::collections::BTreeMap<(u64, Side), Decoder>,
    /// `t_us` of the last record: the end of the capture, for what `finish` reports.
    last_t_us: u64,
    prefixes: ConnPrefixes,
    cfg: DecoderConfig,
    packets: bool,
    out: &'o mut W,
}

impl<W: Write> Dump<'_, W> {
    fn record(&mut self, record: Record) -> io::Result<()> {
        self.prefixes.observe(&record);
        self.last_t_us = record.t_us;
        let Record { t_us, conn, kind } = record;
        match kind {
            RecordKind::Message {
                from,
                payload: Payload::Binary(bytes),
            } => self.binary(t_us, conn, from, &bytes),
            RecordKind::Message { from, payload } => {
                let (kind, value) = match payload {
                    Payload::Text(t) => ("text", Value::String(t)),
                    Payload::Ping(b) => ("ping", Value::String(hex::encode(b))),
                    Payload::Pong(b) => ("pong", Value::String(hex::encode(b))),
                    Payload::Binary(_) => unreachable!("handled above"),
                };
                let mut m = Map::new();
                m.insert(kind.into(), value);
                self.line(t_us, conn, Some(from), kind, m)
            }
            RecordKind::Open { prefix_len } => {
                let mut m = Map::new();
                if let Some(p) = prefix_len {
                    m.insert("prefix_len".into(), p.into());
                }
                self.line(t_us, conn, None, "open", m)
            }
            RecordKind::Close { from, code, reason } => {
                let mut m = Map::new();
                if let Some(c) = code {
                    m.insert("code".into(), c.into());
                }
                if let Some(r) = reason {
                    m.insert("reason".into(), r.into());
                }
                self.line(t_us, conn, from, "close", m)?;
                // A close ends both streams of the connection: a frame cut by it is reported now.
                for side in [Side::Gateway, Side::Client] {
                    self.end_stream(t_us, conn, side)?;
                }
                Ok(())
            }
        }
    }

    fn binary(&mut self, t_us: u64, conn: u64, from: Side, bytes: &[u8]) -> io::Result<()> {
        let skip = if from == Side::Gateway {
            self.prefixes.get(conn)
        } else {
            0
        };
        let Some(rest) = bytes.get(skip..) else {
            let mut m = Map::new();
            m.insert("len".into(), bytes.len().into());
            m.insert("prefix_len".into(), skip.into());
            return self.line(t_us, conn, Some(from), "short_message", m);
        };
        let cfg = self.cfg;
        let decoder = self.decoders.entry((conn, from)).or_insert_with(|| Decoder::new(cfg));
        let mut events = Vec::new();
        decoder.push(rest, Duration::from_micros(t_us), |e| events.push(e));
        self.events(t_us, conn, from, events)
    }

    fn end_stream(&mut self, t_us: u64, conn: u64, side: Side) -> io::Result<()> {
        if let Some(d) = self.decoders.get_mut(&(conn, side)) {
            let mut events = Vec::new();
            d.end_stream(|e| events.push(e));
            self.events(t_us, conn, side, events)?;
        }
        Ok(())
    }

    /// At the end of the capture: every stream ends, every open group is given up.
    fn finish(&mut self) -> io::Result<()> {
        let keys: Vec<(u64, Side)> = self.decoders.keys().copied().collect();
        for (conn, side) in keys {
            let Some(d) = self.decoders.get_mut(&(conn, side)) else {
                continue;
            };
            let t = self.last_t_us;
            let mut events = Vec::new();
            d.end_stream(|e| events.push(e));
            d.drain_groups(|e| events.push(e));
            self.events(t, conn, side, events)?;
        }
        Ok(())
    }

    fn events(&mut self, t_us: u64, conn: u64, from: Side, events: Vec<DecodeEvent>) -> io::Result<()> {
        for e in events {
            if matches!(e, DecodeEvent::Packet { .. }) && !self.packets {
                continue;
            }
            let m = match to_object(&e) {
                Value::Object(m) => m,
                other => {
                    let mut m = Map::new();
                    m.insert("event".into(), other);
                    m
                }
            };
            self.stamped(t_us, conn, Some(from), m)?;
        }
        Ok(())
    }

    fn line(
        &mut self,
        t_us: u64,
        conn: u64,
        from: Option<Side>,
        kind: &str,
        rest: Map<String, Value>,
    ) -> io::Result<()> {
        let mut m = Map::new();
        m.insert("type".into(), kind.into());
        m.extend(rest);
        self.stamped(t_us, conn, from, m)
    }

    /// Writes `event` with `t_us`, `conn` and `from` in front (unique keys: the event's own come
    /// after and never repeat them).
    fn stamped(&mut self, t_us: u64, conn: u64, from: Option<Side>, event: Map<String, Value>) -> io::Result<()> {
        let mut m = Map::new();
        m.insert("t_us".into(), t_us.into());
        m.insert("conn".into(), conn.into());
        if let Some(f) = from {
            m.insert("from".into(), f.as_str().into());
        }
        for (k, v) in event {
            m.entry(k).or_insert(v);
        }
        writeln!(self.out, "{}", Value::Object(m))
    }
}

fn to_object(e: &impl Serialize) -> Value {
    serde_json::to_value(e).unwrap_or_else(|err| Value::String(format!("unserialisable event: {err}")))
}
