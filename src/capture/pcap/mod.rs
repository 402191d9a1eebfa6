//! pcap / pcapng import: the TCP flows between JT808 terminals and a platform, and the WebSocket
//! connections between a gateway and a platform client, put back in order and written as a
//! capture.
//!
//! Files are read with `pcap-file` (classic pcap in any byte order and time resolution, and
//! pcapng with per-interface link types and `if_tsresol`); packets are sliced with `etherparse`:
//! Ethernet II with VLAN tags (802.1Q, QinQ), Linux cooked capture v1 (`LINUX_SLL`) and v2
//! (`LINUX_SLL2`, link type 276, what `tcpdump -i any` writes on libpcap 1.10+; its 20-byte header
//! is stepped over here, then etherparse goes on by its EtherType), raw IPv4/IPv6, and BSD
//! loopback (`NULL`/`LOOP`, whose 4-byte family word is skipped). IPv4 and IPv6 alike; IP
//! fragments are not reassembled (counted, and their bytes show up as TCP gaps). No IP or TCP
//! header is parsed by hand (`read.rs`).
//!
//! **Reassembly, per flow and direction, by sequence number** (`tcp.rs`). A SYN fixes the initial
//! sequence number; without one (a capture started mid-flow) the first data segment does. A
//! segment entirely before the next expected byte is a retransmission and dropped; one that
//! overlaps it is trimmed; one beyond it is held until the gap fills
//! ([`ImportOpts::max_pending_bytes`] bounds what is held: past it, and at FIN, RST or the end of
//! the file, the gap is given up and counted, and the held bytes follow). Sequence numbers wrap.
//!
//! **What a flow is** is decided by its first bytes, never by its ports alone (`flows.rs`):
//!
//! - **WebSocket** when the first bytes one side sends are an HTTP `GET` with an
//!   `Upgrade: websocket` header (parsed with `httparse`, at most
//!   [`ImportOpts::max_http_header_bytes`]) and the other side answers `101`, on any port (a
//!   gateway on 9001, or on 8080, is still WebSocket). The side that sent the request is the
//!   platform client (`"from":"client"`); the server is the gateway (`"from":"gateway"`). A
//!   refused upgrade (any other status), an unanswered one, or an answer that negotiates
//!   `permessage-deflate` (compressed frames are not decoded) is skipped and listed. A WebSocket
//!   flow captured without its upgrade is not recognised as one.
//! - **JT808 over TCP** otherwise, when an end's port is in [`ImportOpts::ports`] (default
//!   [`DEFAULT_PORTS`]: 808, 6808 and 8080-8089, the ports JT808 platforms commonly listen on):
//!   that end is the platform, the other the terminal, whose bytes become `"from":"gateway"`
//!   records (what a gateway serves to the client) and the platform's `"from":"client"`. When
//!   both ends use such a port, the destination of the SYN is the platform (without a SYN: the
//!   lower port). Such a flow whose terminal bytes hold no valid JT808 frame (checked with the
//!   codec's [`Deframer`]) is skipped and listed.
//! - Any other TCP flow is counted (`flows_other`) and not written.
//!
//! **WebSocket frames** (`websocket.rs`): frame headers are parsed with tungstenite's
//! `FrameHeader`; client frames must be masked and are unmasked, server frames must not be;
//! fragmented messages are joined; a text message becomes a `text` record, a binary one a `hex`
//! record, a ping or pong a `ping`/`pong` record, each timed at the packet that completed it. The
//! first close frame becomes the `close` record, with `"from"` the side that sent it and its code
//! and reason; nothing of the connection is written after it (counted `ws_after_close`). A
//! connection that ends without a close frame gets a `close` from the side that sent the first
//! FIN or the RST, with the reason saying which. A frame over [`ImportOpts::max_ws_frame_bytes`]
//! or a message over [`ImportOpts::max_ws_message_bytes`] is skipped in place, without holding it,
//! and reported with its byte offset; the messages after it still import. A stream that breaks
//! the protocol (a reserved opcode or bit, a masking error, a stray continuation, a control frame
//! too long or fragmented, text that is not UTF-8) is reported with its connection, side and the
//! byte offset of the bad frame in that direction's TCP stream (counted from the first byte of
//! the upgrade, as Wireshark's "Follow TCP Stream" counts); the rest of that direction is given up,
//! the rest of the file still imports. Bytes lost in a TCP gap (counted in `gaps`) are not
//! counted in these offsets, and a gap inside a WebSocket stream usually breaks it there.
//!
//! **Raw TCP records.** Each record is one run of bytes that became contiguous with one packet.
//! A `close` (with `"from"` the side of the first FIN or the RST, no code) is written when both
//! sides sent FIN, one sent RST, or at the end of the file for a half-closed flow.
//!
//! **Connections and timing.** Each written flow becomes one `conn`, numbered 1, 2, ... in order
//! of its first packet, where its `open` record is written. Times are the packets' own, relative to
//! the first packet of the file (a timestamp earlier than the one before is raised to it and
//! counted).
//!
//! **Envelope prefix, per connection.** Each WebSocket connection's first
//! [`ImportOpts::prefix_probe_messages`] binary gateway messages go through
//! [`PrefixProbe`](crate::capture::prefix::PrefixProbe), which finds the envelope length its
//! messages carry before their JT808 bytes (18 in the seed's feed); raw TCP flows have none (0).
//! The header's `prefix_len` is the most common of these findings (ties: the smaller; no
//! connection: 0), and each connection whose own differs states it on its `open` record
//! (`"prefix_len"`). A WebSocket connection without a single JT808 frame in its probed messages
//! has no finding and keeps the header's.
//!
//! **Two passes.** To decide all of that before writing, and still stream in constant memory, the
//! file is read twice: once to classify flows and probe prefixes, once to write.
//!
//! **The input is never overwritten**: an `--out` that is the input file (by any path, symlink or
//! hard link) is refused before anything is opened for writing.

mod flows;
mod read;
mod tcp;
mod websocket;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use thiserror::Error;

use self::flows::{Output, Plan, Role, Settings, Tracker};
use self::websocket::Limits;
use super::format::{CaptureHeader, CaptureWriter, Side};
use super::paths::same_file;
#[cfg(doc)]
use crate::codec::Deframer;

/// Platform ports used when none is given: 808, 6808 and 8080-8089.
pub const DEFAULT_PORTS: [u16; 12] = [808, 6808, 8080, 8081, 8082, 8083, 8084, 8085, 8086, 8087, 8088, 8089];

/// Default for [`ImportOpts::max_pending_bytes`]: 4 MiB.
pub const DEFAULT_MAX_PENDING_BYTES: usize = 4 << 20;
/// Default for [`ImportOpts::max_ws_frame_bytes`]: 16 MiB, tungstenite's own default.
pub const DEFAULT_MAX_WS_FRAME_BYTES: u64 = 16 << 20;
/// Default for [`ImportOpts::max_ws_message_bytes`]: 64 MiB, tungstenite's own default.
pub const DEFAULT_MAX_WS_MESSAGE_BYTES: usize = 64 << 20;
/// Default for [`ImportOpts::max_http_header_bytes`]: 16 KiB.
pub const DEFAULT_MAX_HTTP_HEADER_BYTES: usize = 16 << 10;
/// Default for [`ImportOpts::prefix_probe_messages`]: 64 messages, plenty to tell an envelope
/// from JT808 bytes while keeping pass 1 cheap.
pub const DEFAULT_PREFIX_PROBE_MESSAGES: u64 = 64;
/// Most entries of each list in the report (skipped flows, connections, WebSocket problems);
/// the counters count them all.
pub const MAX_LISTED: usize = 100;

/// pcap import settings.
#[derive(Debug, Clone)]
pub struct ImportOpts {
    /// The capture file to write (.jsonl). Must not be the input.
    pub out: PathBuf,
    /// A platform-side TCP port of raw JT808 flows (repeatable). Default: 808, 6808 and
    /// 8080-8089. WebSocket flows are found by their upgrade, on any port.
    pub ports: Vec<u16>,
    /// Most out-of-order bytes held per flow direction while waiting for a gap to fill; past it
    /// the gap is given up (and counted).
    pub max_pending_bytes: usize,
    /// Largest WebSocket frame payload held; a larger frame's message is skipped and reported.
    pub max_ws_frame_bytes: u64,
    /// Largest WebSocket message (fragments joined) held; a larger one is skipped and reported.
    pub max_ws_message_bytes: usize,
    /// Largest HTTP upgrade request or response looked at; a longer one is not an upgrade.
    pub max_http_header_bytes: usize,
    /// Binary gateway messages per WebSocket connection the envelope prefix is found from.
    pub prefix_probe_messages: u64,
    /// Free text for the capture header's "note".
    pub note: Option<String>,
}

impl ImportOpts {
    /// Settings with the defaults, writing to `out`.
    pub fn new(out: impl Into<PathBuf>) -> ImportOpts {
        ImportOpts {
            out: out.into(),
            ports: Vec::new(),
            max_pending_bytes: DEFAULT_MAX_PENDING_BYTES,
            max_ws_frame_bytes: DEFAULT_MAX_WS_FRAME_BYTES,
            max_ws_message_bytes: DEFAULT_MAX_WS_MESSAGE_BYTES,
            max_http_header_bytes: DEFAULT_MAX_HTTP_HEADER_BYTES,
            prefix_probe_messages: DEFAULT_PREFIX_PROBE_MESSAGES,
            note: None,
        }
    }

    fn settings(&self) -> Settings {
        let ports = if self.ports.is_empty() {
            DEFAULT_PORTS.into_iter().collect()
        } else {
            self.ports.iter().copied().collect()
        };
        Settings {
            ports,
            max_pending: self.max_pending_bytes,
            max_http_header: self.max_http_header_bytes,
            probe_messages: self.prefix_probe_messages,
            limits: Limits {
                max_frame: self.max_ws_frame_bytes,
                max_message: self.max_ws_message_bytes,
            },
        }
    }
}

/// Why an import failed. Damage inside the file (a packet that does not slice, a flow with gaps)
/// is counted in the [`ImportReport`] instead.
#[derive(Debug, Error)]
pub enum PcapError {
    /// The input could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The input file.
        path: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The input starts with neither a pcap nor a pcapng magic number.
    #[error("{path}: not a pcap or pcapng file (starts with {magic})")]
    NotPcap {
        /// The input file.
        path: String,
        /// The first bytes, as hex.
        magic: String,
    },
    /// pcap-file refused a header, block or packet.
    #[error("{path}: packet {packet}: {source}")]
    Read {
        /// The input file.
        path: String,
        /// 1-based number of the packet (or pcapng block) being read.
        packet: u64,
        /// pcap-file's error.
        #[source]
        source: pcap_file::PcapError,
    },
    /// `--out` names the input file itself (writing would truncate it before it was read).
    #[error("{path}: the output is the input file; writing it would destroy the capture (give another --out)")]
    SameFile {
        /// The output path as given.
        path: String,
    },
    /// The capture could not be written.
    #[error("{path}: {source}")]
    Output {
        /// The capture file.
        path: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// A flow that was not imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedFlow {
    /// Terminal end (the WebSocket server, for a WebSocket flow), `addr:port`.
    pub terminal: String,
    /// Platform end (the WebSocket client), `addr:port`.
    pub platform: String,
    /// Bytes the terminal sent (past the point the flow was classified, counted per segment,
    /// retransmissions included: a skipped flow is not reassembled further).
    pub terminal_bytes: u64,
    /// Bytes the platform sent (counted the same way).
    pub platform_bytes: u64,
    /// Why it was not imported.
    pub reason: String,
}

/// A connection that was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnInfo {
    /// Its `conn` in the capture.
    pub conn: u64,
    /// `"websocket"` or `"tcp"`.
    pub kind: &'static str,
    /// The gateway (terminal, WebSocket server) end, `addr:port`.
    pub gateway: String,
    /// The client (platform) end, `addr:port`.
    pub client: String,
    /// The envelope prefix of its gateway messages (the header's, or its `open` record's own).
    pub prefix_len: usize,
    /// Binary gateway messages the prefix was found from (0 for raw TCP).
    pub probed_messages: u64,
}

/// Something wrong in a WebSocket stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WsProblem {
    /// The connection.
    pub conn: u64,
    /// The side whose frames these are.
    pub from: Side,
    /// That side's address, `addr:port`.
    pub sender: String,
    /// Byte offset of the frame in that direction's TCP stream (from the upgrade's first byte).
    pub offset: u64,
    /// What was wrong, and what was done about it.
    pub what: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Packets read.
    pub packets: u64,
    /// Packets etherparse could not slice (cut by the snap length, malformed).
    pub packets_unparsed: u64,
    /// Packets on an interface of a link type this import does not read, with the link types.
    pub packets_unsupported_link: u64,
    /// The unsupported link types met.
    pub unsupported_link_types: BTreeSet<String>,
    /// IP fragments (not reassembled; their TCP bytes are missing, and show up as gaps).
    pub ip_fragments: u64,
    /// Packets that were not TCP, or were a bare ACK/FIN/RST of a connection whose start was not
    /// captured (nothing to import from them).
    pub packets_other: u64,
    /// Packets of a flow after it closed (late retransmissions, final ACKs).
    pub packets_after_close: u64,
    /// TCP flows with a platform port or a WebSocket upgrade request.
    pub flows_seen: u64,
    /// Flows written as connections.
    pub flows_imported: u64,
    /// Flows seen but not written (listed in `skipped`, with the reason).
    pub flows_skipped: u64,
    /// Those flows (at most [`MAX_LISTED`]).
    pub skipped: Vec<SkippedFlow>,
    /// Other TCP flows: no platform port, no WebSocket upgrade.
    pub flows_other: u64,
    /// The header's `prefix_len`: the most common per-connection finding.
    pub prefix_len: usize,
    /// The written connections (at most [`MAX_LISTED`]), with their prefix.
    pub connections: Vec<ConnInfo>,
    /// Data segments of the imported flows.
    pub segments: u64,
    /// Segments whose bytes had all been received already, dropped.
    pub retransmissions_dropped: u64,
    /// Segments that partly repeated received bytes, trimmed.
    pub overlaps_trimmed: u64,
    /// Segments that arrived ahead of a gap and were put back in order.
    pub out_of_order_fixed: u64,
    /// Gaps given up (bytes never captured).
    pub gaps: u64,
    /// Bytes missing in those gaps.
    pub gap_bytes: u64,
    /// WebSocket text and binary messages written.
    pub ws_messages: u64,
    /// WebSocket pings and pongs written.
    pub ws_control_frames: u64,
    /// WebSocket messages over a size limit, skipped (each in `ws_problems`).
    pub ws_messages_too_long: u64,
    /// WebSocket directions given up at a protocol error (each in `ws_problems`).
    pub ws_streams_malformed: u64,
    /// Bytes of those directions after the error, not imported.
    pub ws_bytes_unparsed: u64,
    /// WebSocket messages and close frames after a connection's first close frame, not written.
    pub ws_after_close: u64,
    /// What was wrong in WebSocket streams (at most [`MAX_LISTED`]).
    pub ws_problems: Vec<WsProblem>,
    /// Payload bytes written `"from":"gateway"` (terminal -> platform TCP bytes, gateway
    /// WebSocket messages).
    pub bytes_gateway: u64,
    /// Payload bytes written `"from":"client"`.
    pub bytes_client: u64,
    /// Records written (messages and events).
    pub records: u64,
    /// Packets whose timestamp was earlier than the one before (raised to it).
    pub timestamps_clamped: u64,
    /// The file ended inside a packet (a capture cut mid-write); every whole packet was used.
    pub truncated: bool,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self;
        writeln!(f, "packets                 {}", r.packets)?;
        writeln!(
            f,
            "  not used              {} unparsed, {} unsupported link, {} IP fragments, {} other, {} after close",
            r.packets_unparsed, r.packets_unsupported_link, r.ip_fragments, r.packets_other, r.packets_after_close
        )?;
        if !r.unsupported_link_types.is_empty() {
            let l: Vec<&str> = r.unsupported_link_types.iter().map(String::as_str).collect();
            writeln!(f, "  unsupported links     {}", l.join(", "))?;
        }
        writeln!(
            f,
            "flows                   {} seen, {} imported, {} skipped; {} other TCP flows",
            r.flows_seen, r.flows_imported, r.flows_skipped, r.flows_other
        )?;
        for s in &r.skipped {
            writeln!(
                f,
                "  skipped               {} -> {} ({} / {} bytes): {}",
                s.terminal, s.platform, s.terminal_bytes, s.platform_bytes, s.reason
            )?;
        }
        listed_more(f, r.flows_skipped, r.skipped.len())?;
        writeln!(f, "prefix_len              {} (header)", r.prefix_len)?;
        for c in &r.connections {
            writeln!(
                f,
                "  conn {:<4}             {} {} -> {}, prefix {} ({} messages probed)",
                c.conn, c.kind, c.gateway, c.client, c.prefix_len, c.probed_messages
            )?;
        }
        listed_more(f, r.flows_imported, r.connections.len())?;
        writeln!(f, "segments                {}", r.segments)?;
        writeln!(f, "  retransmissions       {} dropped", r.retransmissions_dropped)?;
        writeln!(f, "  overlaps              {} trimmed", r.overlaps_trimmed)?;
        writeln!(f, "  out of order          {} put back in order", r.out_of_order_fixed)?;
        writeln!(f, "  gaps                  {} ({} bytes missing)", r.gaps, r.gap_bytes)?;
        writeln!(
            f,
            "websocket               {} messages, {} pings/pongs, {} too long, {} streams malformed ({} bytes not imported), {} after close",
            r.ws_messages,
            r.ws_control_frames,
            r.ws_messages_too_long,
            r.ws_streams_malformed,
            r.ws_bytes_unparsed,
            r.ws_after_close
        )?;
        for p in &r.ws_problems {
            writeln!(
                f,
                "  conn {} {} ({}) at byte {}: {}",
                p.conn, p.from, p.sender, p.offset, p.what
            )?;
        }
        listed_more(f, r.ws_messages_too_long + r.ws_streams_malformed, r.ws_problems.len())?;
        writeln!(
            f,
            "bytes                   {} from the gateway side, {} from the client side",
            r.bytes_gateway, r.bytes_client
        )?;
        writeln!(f, "records                 {}", r.records)?;
        if r.timestamps_clamped > 0 {
            writeln!(f, "timestamps clamped      {}", r.timestamps_clamped)?;
        }
        if r.truncated {
            writeln!(f, "truncated               yes: the file ends inside a packet")?;
        }
        Ok(())
    }
}

/// "... and N more" under a list cut at [`MAX_LISTED`].
fn listed_more(f: &mut fmt::Formatter<'_>, total: u64, listed: usize) -> fmt::Result {
    match total.checked_sub(listed as u64) {
        Some(more) if more > 0 => writeln!(f, "  ... and {more} more"),
        _ => Ok(()),
    }
}

/// Imports the pcap or pcapng file at `path` into the capture `opts.out`. See the module doc.
pub fn import_pcap(path: impl AsRef<Path>, opts: &ImportOpts) -> Result<ImportReport, PcapError> {
    let path = path.as_ref();
    let out_name = opts.out.display().to_string();
    if same_file(path, &opts.out) {
        return Err(PcapError::SameFile { path: out_name });
    }
    let set = opts.settings();

    // Pass 1: what each flow is, and each WebSocket connection's envelope prefix.
    let mut classify = Tracker::new(&set, None);
    let mut report = ImportReport::default();
    read::read_packets(path, &mut report, |t, link, data| classify.packet(t, link, data))?;
    classify.finish();
    let roles = classify.roles();
    let mut pass1 = ImportReport::default();
    classify.fill_pass1(&roles, &mut pass1);
    drop(classify);
    let (default_prefix, plans) = plan(roles);

    // Pass 2: the same reassembly again, writing the kept flows.
    let mut header = CaptureHeader::new(default_prefix);
    header.source = Some(format!(
        "pcap {}",
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    ));
    header.note = opts.note.clone();
    let writer = CaptureWriter::create(&opts.out, &header).map_err(|source| PcapError::Output {
        path: out_name.clone(),
        source,
    })?;
    let mut write = Tracker::new(&set, Some(Output::new(writer, plans)));
    let mut report = ImportReport::default();
    read::read_packets(path, &mut report, |t, link, data| write.packet(t, link, data))?;
    write.finish();
    if let Some(e) = write.output.as_mut().and_then(|o| o.error.take()) {
        return Err(PcapError::Output {
            path: out_name,
            source: e,
        });
    }
    report.flows_seen = pass1.flows_seen;
    report.flows_skipped = pass1.flows_skipped;
    report.skipped = pass1.skipped;
    report.flows_other = pass1.flows_other;
    report.prefix_len = default_prefix;
    write.fill(&mut report);
    Ok(report)
}

/// The header's prefix and each flow's plan: the most common finding among written connections
/// (raw TCP: 0; WebSocket: the probe's, when it found one), ties to the smaller, none: 0; a
/// connection whose finding differs states its own.
fn plan(roles: Vec<Role>) -> (usize, Vec<Plan>) {
    let finding = |role: &Role| match role {
        Role::Raw { .. } => Some(0),
        Role::WebSocket { prefix, .. } => *prefix,
        Role::Skip { .. } => None,
    };
    let mut votes: BTreeMap<usize, u64> = BTreeMap::new();
    for p in roles.iter().filter_map(finding) {
        *votes.entry(p).or_default() += 1;
    }
    // max_by_key keeps the last maximum; iterating from the largest length leaves the smallest.
    let default = votes
        .iter()
        .rev()
        .max_by_key(|(_, n)| **n)
        .map(|(p, _)| *p)
        .unwrap_or(0);
    let plans = roles
        .into_iter()
        .map(|role| {
            let own_prefix = finding(&role).filter(|p| *p != default);
            Plan { role, own_prefix }
        })
        .collect();
    (default, plans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(prefix: Option<usize>) -> Role {
        Role::WebSocket {
            client_dir: 0,
            header_len: [0, 0],
            prefix,
            probed: 1,
        }
    }

    #[test]
    fn the_header_prefix_is_the_most_common_finding_and_others_state_their_own() {
        let raw = Role::Raw { gateway_dir: 0 };
        let (default, plans) = plan(vec![ws(Some(18)), raw.clone(), ws(Some(18)), ws(None)]);
        assert_eq!(default, 18);
        let own: Vec<Option<usize>> = plans.iter().map(|p| p.own_prefix).collect();
        assert_eq!(own, [None, Some(0), None, None], "no finding: the header's");

        let (default, plans) = plan(vec![ws(Some(18)), raw]);
        assert_eq!(default, 0, "a tie goes to the smaller length");
        assert_eq!(plans[0].own_prefix, Some(18));
        assert_eq!(plan(vec![ws(None)]).0, 0, "no finding at all: 0");
    }
}
