//! What a capture holds: duration, connections, terminals, decoded messages per id, rejected
//! frames per failed check, packet groups. A [`Summary`] prints as a table ([`fmt::Display`]) and
//! serialises as JSON.
//!
//! Every binary message is decoded with the real [`Decoder`], one decoder per connection and side
//! (streams of different connections must not be glued together), at the record's `t_us`.
//! Gateway messages lose their `prefix_len` envelope bytes first; client messages carry none
//! (see [`super::format`]). When a connection closes its decoders are ended: a frame cut by the
//! close is counted as rejected (`unterminated`) and open packet groups as expired, since the next
//! connection gets a fresh decoder. Memory stays flat: records are streamed, and only open
//! connections hold a decoder.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::format::{CaptureError, CaptureReader, Payload, RecordKind, Side, Truncation};
use super::prefix::ConnPrefixes;
use crate::codec::{DecodeEvent, Decoder, DecoderConfig, msg_id_hex};

/// Counts for one direction (messages from the gateway, or from the client).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DirectionSummary {
    /// Binary WebSocket messages.
    pub ws_messages: u64,
    /// Text WebSocket messages (not decoded).
    pub text_messages: u64,
    /// Pings and pongs.
    pub control_messages: u64,
    /// Payload bytes of binary messages (envelope prefix included).
    pub bytes: u64,
    /// Binary messages shorter than the envelope prefix (nothing decoded from them).
    pub short_messages: u64,
    /// Decoded JT808 messages per id (`"0x0200"`), a reassembled message counted once.
    pub messages_by_id: BTreeMap<String, u64>,
    /// Frames dropped per failed check (`bad_checksum`, `unterminated`, ...).
    pub rejected_by_check: BTreeMap<String, u64>,
    /// Bytes outside any frame.
    pub skipped_bytes: u64,
    /// Multi-packet messages put back together.
    pub groups_completed: u64,
    /// Packet groups given up (timeout, limit, or still open when their connection closed).
    pub groups_expired: u64,
    /// Packets received twice.
    pub duplicate_packets: u64,
    /// Packets with index 0 or index > total.
    pub invalid_packets: u64,
}

impl DirectionSummary {
    /// Decoded messages in all.
    pub fn messages(&self) -> u64 {
        self.messages_by_id.values().sum()
    }

    /// Rejected frames in all.
    pub fn rejected(&self) -> u64 {
        self.rejected_by_check.values().sum()
    }

    fn count(&mut self, ev: &DecodeEvent, terminals: &mut BTreeSet<String>) {
        match ev {
            DecodeEvent::Message(m) => {
                *self.messages_by_id.entry(msg_id_hex(m.header.msg_id)).or_default() += 1;
                if m.assembled.is_some() {
                    self.groups_completed += 1;
                }
                terminals.insert(m.header.phone.to_string());
            }
            DecodeEvent::Rejected(e) => *self.rejected_by_check.entry(e.check().to_string()).or_default() += 1,
            DecodeEvent::Skipped { len, .. } => self.skipped_bytes += len,
            DecodeEvent::Packet { .. } => {}
            DecodeEvent::DuplicatePacket { .. } => self.duplicate_packets += 1,
            DecodeEvent::InvalidPacket { .. } => self.invalid_packets += 1,
            DecodeEvent::GroupExpired(_) => self.groups_expired += 1,
            // `inspect` uses no retransmit wait (nobody answers a capture): never given.
            DecodeEvent::GroupStalled(_) => {}
            // `inspect` deframes strictly (the default settings): never given.
            DecodeEvent::UnescapedFlag { .. } => {}
        }
    }
}

/// What a capture holds. See the module doc.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The capture file.
    pub path: String,
    /// The header's `source`.
    pub source: Option<String>,
    /// The header's `prefix_len`.
    pub prefix_len: usize,
    /// `t_us` of the last record.
    pub duration_us: u64,
    /// Records after the header.
    pub records: u64,
    /// Distinct connection ids.
    pub connections: u64,
    /// Close events.
    pub closes: u64,
    /// Terminal phones (SIM numbers, leading zeros stripped) seen in decoded messages, either side.
    pub terminals: BTreeSet<String>,
    /// Messages from the gateway (terminal side).
    pub gateway: DirectionSummary,
    /// Messages from the client.
    pub client: DirectionSummary,
    /// Set when the last line was cut mid-write.
    pub truncated: Option<Truncation>,
}

/// Summarises the capture at `path`.
pub fn inspect(path: impl AsRef<Path>) -> Result<Summary, CaptureError> {
    summarise(CaptureReader::open(path)?)
}

/// Summarises a capture from an open reader.
pub fn summarise<R: BufRead>(mut reader: CaptureReader<R>) -> Result<Summary, CaptureError> {
    let prefix_len = reader.header().prefix_len;
    let mut s = Summary {
        path: reader.path().to_string(),
        source: reader.header().source.clone(),
        prefix_len,
        ..Summary::default()
    };
    let mut conns = BTreeSet::new();
    let mut decoders: HashMap<(u64, Side), Decoder> = HashMap::new();
    let mut prefixes = ConnPrefixes::new(prefix_len);
    for record in reader.by_ref() {
        let record = record?;
        prefixes.observe(&record);
        s.records += 1;
        s.duration_us = record.t_us;
        conns.insert(record.conn);
        let now = Duration::from_micros(record.t_us);
        match record.kind {
            RecordKind::Open { .. } => {}
            RecordKind::Close { .. } => {
                s.closes += 1;
                for side in [Side::Gateway, Side::Client] {
                    if let Some(mut d) = decoders.remove(&(record.conn, side)) {
                        finish(&mut d, side, &mut s);
                    }
                }
            }
            RecordKind::Message { from, payload } => {
                let dir = match from {
                    Side::Gateway => &mut s.gateway,
                    Side::Client => &mut s.client,
                };
                match payload {
                    Payload::Binary(bytes) => {
                        dir.ws_messages += 1;
                        dir.bytes += bytes.len() as u64;
                        let skip = if from == Side::Gateway {
                            prefixes.get(record.conn)
                        } else {
                            0
                        };
                        let Some(body) = bytes.get(skip..) else {
                            dir.short_messages += 1;
                            continue;
                        };
                        let d = decoders
                            .entry((record.conn, from))
                            .or_insert_with(|| Decoder::new(DecoderConfig::default()));
                        let terminals = &mut s.terminals;
                        d.push_lent(body, now, |ev| dir.count(ev, terminals));
                    }
                    Payload::Text(_) => dir.text_messages += 1,
                    Payload::Ping(_) | Payload::Pong(_) => dir.control_messages += 1,
                }
            }
        }
    }
    let mut open: Vec<_> = decoders.into_iter().collect();
    open.sort_by_key(|((conn, side), _)| (*conn, *side));
    for ((_, side), mut d) in open {
        finish(&mut d, side, &mut s);
    }
    s.connections = conns.len() as u64;
    s.truncated = reader.truncated().cloned();
    Ok(s)
}

fn finish(d: &mut Decoder, side: Side, s: &mut Summary) {
    let dir = match side {
        Side::Gateway => &mut s.gateway,
        Side::Client => &mut s.client,
    };
    let terminals = &mut s.terminals;
    d.end_stream(|ev| dir.count(&ev, terminals));
    d.drain_groups(|ev| dir.count(&ev, terminals));
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "capture       {}", self.path)?;
        if let Some(src) = &self.source {
            writeln!(f, "source        {src}")?;
        }
        writeln!(f, "prefix_len    {}", self.prefix_len)?;
        writeln!(f, "duration      {:.3} s", self.duration_us as f64 / 1e6)?;
        writeln!(f, "records       {}", self.records)?;
        writeln!(f, "connections   {} ({} close events)", self.connections, self.closes)?;
        let phones: Vec<&str> = self.terminals.iter().map(String::as_str).collect();
        writeln!(f, "terminals     {} {}", phones.len(), phones.join(" "))?;
        match &self.truncated {
            Some(t) => writeln!(f, "truncated     yes: line {} cut after {} bytes", t.line, t.bytes)?,
            None => writeln!(f, "truncated     no")?,
        }
        writeln!(f)?;
        let (g, c) = (&self.gateway, &self.client);
        writeln!(f, "{:<26}{:>12}{:>12}", "", "gateway", "client")?;
        let rows: [(&str, u64, u64); 12] = [
            ("ws messages (binary)", g.ws_messages, c.ws_messages),
            ("ws messages (text)", g.text_messages, c.text_messages),
            ("ping/pong", g.control_messages, c.control_messages),
            ("bytes", g.bytes, c.bytes),
            ("shorter than prefix", g.short_messages, c.short_messages),
            ("jt808 messages", g.messages(), c.messages()),
            ("rejected frames", g.rejected(), c.rejected()),
            ("skipped bytes", g.skipped_bytes, c.skipped_bytes),
            ("packet groups completed", g.groups_completed, c.groups_completed),
            ("packet groups expired", g.groups_expired, c.groups_expired),
            ("duplicate packets", g.duplicate_packets, c.duplicate_packets),
            ("invalid packets", g.invalid_packets, c.invalid_packets),
        ];
        for (name, a, b) in rows {
            writeln!(f, "{name:<26}{a:>12}{b:>12}")?;
        }
        let table = |f: &mut fmt::Formatter<'_>,
                     title: &str,
                     a: &BTreeMap<String, u64>,
                     b: &BTreeMap<String, u64>|
         -> fmt::Result {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            if keys.is_empty() {
                return Ok(());
            }
            writeln!(f)?;
            writeln!(f, "{title:<26}{:>12}{:>12}", "gateway", "client")?;
            for k in keys {
                let (x, y) = (a.get(k).copied().unwrap_or(0), b.get(k).copied().unwrap_or(0));
                writeln!(f, "  {k:<24}{x:>12}{y:>12}")?;
            }
            Ok(())
        };
        table(f, "messages by id", &g.messages_by_id, &c.messages_by_id)?;
        table(f, "rejected by check", &g.rejected_by_check, &c.rejected_by_check)?;
        Ok(())
    }
}
