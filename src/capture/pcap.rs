//! pcap / pcapng import: the TCP flows between JT808 terminals and a platform, put back in order,
//! written as a capture.
//!
//! Files are read with `pcap-file` (classic pcap in any byte order and time resolution, and
//! pcapng with per-interface link types and `if_tsresol`); packets are sliced with `etherparse`
//! (Ethernet II with VLAN tags, Linux cooked capture v1, raw IPv4/IPv6, and BSD loopback whose
//! 4-byte family word is skipped). No protocol header is parsed by hand.
//!
//! **Which end is the platform.** A TCP endpoint whose port is in [`ImportOpts::ports`] is the
//! platform; the other end is the terminal. Default ports ([`DEFAULT_PORTS`]): 808, 6808 and
//! 8080-8089, the "808x" ports JT808 platforms commonly listen on. When both ends use such a port,
//! the destination of the SYN is the platform (without a SYN: the lower port).
//!
//! **Mapping to the capture.** Each TCP connection (flow) becomes one `conn`, numbered 1, 2, ... in
//! order of first packet. Terminal -> platform bytes become `"from":"gateway"` records (what a
//! gateway serves to the client), platform -> terminal bytes `"from":"client"`. Each record is one
//! run of bytes that became contiguous with one packet, timed at that packet, relative to the
//! first packet of the file (original timing; a timestamp earlier than the one before is raised to
//! it and counted). An `open` event is written at a flow's first packet, a `close` event (with
//! `"from"` the side that sent the first FIN or the RST, no code) when both sides sent FIN, one sent
//! RST, or at the end of the file for a half-closed flow. The header has `prefix_len` 0: a TCP
//! stream carries no WebSocket envelope.
//!
//! **Reassembly, per flow and direction, by sequence number.** A SYN fixes the initial sequence
//! number; without one (a capture started mid-flow) the first data segment does, and bytes before
//! it are counted as retransmitted. A segment entirely before the next expected byte is a
//! retransmission and dropped; one that overlaps it is trimmed; one beyond it is held until the gap
//! fills ([`ImportOpts::max_pending_bytes`] bounds what is held: past it, and at FIN, RST or the end
//! of the file, the gap is given up and counted, and the held bytes follow). Sequence numbers wrap.
//!
//! **Which flows are kept.** A flow whose terminal-side bytes hold no valid JT808 frame (checked with
//! the codec's [`Deframer`]) is skipped and listed in the report. To decide that before writing
//! anything, and still stream in constant memory, the file is read twice: once to classify flows,
//! once to write.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_file::DataLink;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use serde::Serialize;
use thiserror::Error;

use super::format::{CaptureHeader, CaptureWriter, Record, Side};
use crate::codec::{Deframer, Item};

/// Platform ports used when none is given: 808, 6808 and 8080-8089.
pub const DEFAULT_PORTS: [u16; 12] = [808, 6808, 8080, 8081, 8082, 8083, 8084, 8085, 8086, 8087, 8088, 8089];

/// Default for [`ImportOpts::max_pending_bytes`]: 4 MiB.
pub const DEFAULT_MAX_PENDING_BYTES: usize = 4 << 20;

/// pcap import settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportOpts {
    /// The capture file to write (.jsonl).
    #[arg(long, short)]
    pub out: PathBuf,
    /// A platform-side TCP port (repeatable). Default: 808, 6808 and 8080-8089.
    #[arg(long = "port", value_name = "N")]
    pub ports: Vec<u16>,
    /// Most out-of-order bytes held per flow direction while waiting for a gap to fill; past it
    /// the gap is given up (and counted).
    #[arg(long, default_value_t = DEFAULT_MAX_PENDING_BYTES)]
    pub max_pending_bytes: usize,
    /// Free text for the capture header's "note".
    #[arg(long)]
    pub note: Option<String>,
}

impl ImportOpts {
    /// Settings with the defaults, writing to `out`.
    pub fn new(out: impl Into<PathBuf>) -> ImportOpts {
        ImportOpts {
            out: out.into(),
            ports: Vec::new(),
            max_pending_bytes: DEFAULT_MAX_PENDING_BYTES,
            note: None,
        }
    }

    fn platform_ports(&self) -> BTreeSet<u16> {
        if self.ports.is_empty() {
            DEFAULT_PORTS.into_iter().collect()
        } else {
            self.ports.iter().copied().collect()
        }
    }
}

/// `import-pcap` command: a pcap or pcapng file to a capture.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportPcapArgs {
    /// The pcap or pcapng file.
    pub input: PathBuf,
    /// Settings.
    #[command(flatten)]
    pub opts: ImportOpts,
}

impl ImportPcapArgs {
    /// Runs the import; the report's `Display` is what to print.
    pub fn run(&self) -> Result<ImportReport, PcapError> {
        import_pcap(&self.input, &self.opts)
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
    /// Terminal end, `addr:port`.
    pub terminal: String,
    /// Platform end, `addr:port`.
    pub platform: String,
    /// Bytes the terminal sent.
    pub terminal_bytes: u64,
    /// Bytes the platform sent.
    pub platform_bytes: u64,
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
    /// Packets that were not TCP to or from a platform port, or were a bare ACK/FIN/RST of a
    /// connection whose start was not captured (nothing to import from them).
    pub packets_other: u64,
    /// Packets of a flow after it closed (late retransmissions, final ACKs).
    pub packets_after_close: u64,
    /// TCP flows with a platform port.
    pub flows_seen: u64,
    /// Flows written as connections.
    pub flows_imported: u64,
    /// Flows without a valid JT808 frame from the terminal.
    pub flows_skipped: u64,
    /// Those flows.
    pub skipped: Vec<SkippedFlow>,
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
    /// Terminal -> platform bytes written (`"from":"gateway"`).
    pub bytes_gateway: u64,
    /// Platform -> terminal bytes written (`"from":"client"`).
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
            "flows                   {} seen, {} imported, {} skipped (no JT808 frame from the terminal)",
            r.flows_seen, r.flows_imported, r.flows_skipped
        )?;
        for s in &r.skipped {
            writeln!(
                f,
                "  skipped               {} -> {} ({} / {} bytes)",
                s.terminal, s.platform, s.terminal_bytes, s.platform_bytes
            )?;
        }
        writeln!(f, "segments                {}", r.segments)?;
        writeln!(f, "  retransmissions       {} dropped", r.retransmissions_dropped)?;
        writeln!(f, "  overlaps              {} trimmed", r.overlaps_trimmed)?;
        writeln!(f, "  out of order          {} put back in order", r.out_of_order_fixed)?;
        writeln!(f, "  gaps                  {} ({} bytes missing)", r.gaps, r.gap_bytes)?;
        writeln!(
            f,
            "bytes                   {} from terminals (gateway), {} from the platform (client)",
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

/// Imports the pcap or pcapng file at `path` into the capture `opts.out`. See the module doc.
pub fn import_pcap(path: impl AsRef<Path>, opts: &ImportOpts) -> Result<ImportReport, PcapError> {
    let path = path.as_ref();
    let ports = opts.platform_ports();

    // Pass 1: which flows carry JT808 from the terminal.
    let mut classify = Tracker::new(&ports, opts.max_pending_bytes, None);
    let mut report = ImportReport::default();
    read_packets(path, &mut report, |t, link, data| classify.packet(t, link, data))?;
    classify.finish();
    let keep: Vec<bool> = classify.flows.iter().map(|f| f.jt808).collect();

    // Pass 2: the same reassembly again, writing the kept flows.
    let out_name = opts.out.display().to_string();
    let mut header = CaptureHeader::new(0);
    header.source = Some(format!(
        "pcap {}",
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    ));
    header.note = opts.note.clone();
    let writer = CaptureWriter::create(&opts.out, &header).map_err(|source| PcapError::Output {
        path: out_name.clone(),
        source,
    })?;
    let mut write = Tracker::new(&ports, opts.max_pending_bytes, Some((writer, keep)));
    let mut report = ImportReport::default();
    read_packets(path, &mut report, |t, link, data| write.packet(t, link, data))?;
    write.finish();
    if let Some(e) = write.output.as_mut().and_then(|o| o.error.take()) {
        return Err(PcapError::Output {
            path: out_name,
            source: e,
        });
    }
    write.fill(&mut report);
    Ok(report)
}

/// Reads every packet of a pcap or pcapng file, handing `f` its time (since the Unix epoch), link
/// type and bytes. Counts packets and notes a file cut mid-packet.
fn read_packets(
    path: &Path,
    report: &mut ImportReport,
    mut f: impl FnMut(Duration, DataLink, &[u8]),
) -> Result<(), PcapError> {
    let name = path.display().to_string();
    let io_err = |source| PcapError::Io {
        path: name.clone(),
        source,
    };
    let mut input = BufReader::with_capacity(1 << 16, File::open(path).map_err(io_err)?);
    let magic: Vec<u8> = input.fill_buf().map_err(io_err)?.iter().take(4).copied().collect();
    let read_err = |packet: u64, source: pcap_file::PcapError| PcapError::Read {
        path: name.clone(),
        packet,
        source,
    };
    // A capture cut mid-packet (tcpdump killed) ends with an unexpected EOF: keep what came before.
    let is_cut = |e: &pcap_file::PcapError| {
        matches!(e, pcap_file::PcapError::IoError(io) if io.kind() == io::ErrorKind::UnexpectedEof)
            || matches!(e, pcap_file::PcapError::IncompleteBuffer)
    };
    match magic.as_slice() {
        [0x0A, 0x0D, 0x0D, 0x0A] => {
            let mut reader = PcapNgReader::new(input).map_err(|e| read_err(0, e))?;
            // (link type, if_tsresol) per interface of the current section.
            let mut interfaces: Vec<(DataLink, u8)> = reader
                .interfaces()
                .iter()
                .map(|i| (i.linktype, tsresol(&i.options)))
                .collect();
            let mut block_no = 0u64;
            let mut last_ts = Duration::ZERO;
            while let Some(block) = reader.next_block() {
                block_no += 1;
                let block = match block {
                    Ok(b) => b,
                    Err(e) if is_cut(&e) => {
                        report.truncated = true;
                        break;
                    }
                    Err(e) => return Err(read_err(block_no, e)),
                };
                match block {
                    Block::SectionHeader(_) => interfaces.clear(),
                    Block::InterfaceDescription(i) => interfaces.push((i.linktype, tsresol(&i.options))),
                    Block::EnhancedPacket(p) => {
                        report.packets += 1;
                        let (link, res) = interfaces
                            .get(p.interface_id as usize)
                            .copied()
                            .unwrap_or((DataLink::ETHERNET, 6));
                        // pcap-file stores the raw timestamp count as if it were nanoseconds;
                        // the interface's if_tsresol says what the unit really is.
                        last_ts = scale_timestamp(p.timestamp.as_nanos(), res);
                        f(last_ts, link, &p.data);
                    }
                    Block::SimplePacket(p) => {
                        // No timestamp in a simple packet block: it takes the previous one's.
                        report.packets += 1;
                        let link = interfaces.first().map(|i| i.0).unwrap_or(DataLink::ETHERNET);
                        f(last_ts, link, &p.data);
                    }
                    Block::Packet(p) => {
                        report.packets += 1;
                        let (link, res) = interfaces
                            .get(p.interface_id as usize)
                            .copied()
                            .unwrap_or((DataLink::ETHERNET, 6));
                        last_ts = scale_timestamp(p.timestamp as u128, res);
                        f(last_ts, link, &p.data);
                    }
                    _ => {}
                }
            }
        }
        [0xA1, 0xB2, 0xC3, 0xD4] | [0xD4, 0xC3, 0xB2, 0xA1] | [0xA1, 0xB2, 0x3C, 0x4D] | [0x4D, 0x3C, 0xB2, 0xA1] => {
            let mut reader = PcapReader::new(input).map_err(|e| read_err(0, e))?;
            let link = reader.header().datalink;
            while let Some(packet) = reader.next_packet() {
                let packet = match packet {
                    Ok(p) => p,
                    Err(e) if is_cut(&e) => {
                        report.truncated = true;
                        break;
                    }
                    Err(e) => return Err(read_err(report.packets + 1, e)),
                };
                report.packets += 1;
                f(packet.timestamp, link, &packet.data);
            }
        }
        other => {
            return Err(PcapError::NotPcap {
                path: name.clone(),
                magic: hex::encode(other),
            });
        }
    }
    Ok(())
}

/// An interface's `if_tsresol` (default 6: microseconds).
fn tsresol(options: &[InterfaceDescriptionOption<'_>]) -> u8 {
    options
        .iter()
        .find_map(|o| match o {
            InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
            _ => None,
        })
        .unwrap_or(6)
}

/// A raw pcapng timestamp count in units of `if_tsresol` (high bit clear: 10^-n s; set: 2^-n s).
fn scale_timestamp(raw: u128, resol: u8) -> Duration {
    let nanos: u128 = if resol & 0x80 != 0 {
        let shift = u32::from(resol & 0x7F);
        if shift >= 128 {
            0
        } else {
            raw.saturating_mul(1_000_000_000) >> shift
        }
    } else if resol <= 9 {
        raw.saturating_mul(10u128.pow(9 - u32::from(resol)))
    } else {
        10u128.checked_pow(u32::from(resol) - 9).map_or(0, |d| raw / d)
    };
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// One TCP endpoint.
type Endpoint = (IpAddr, u16);

/// A flow, by its terminal and platform ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    terminal: Endpoint,
    platform: Endpoint,
}

/// Segment counters of one flow.
#[derive(Debug, Default, Clone, Copy)]
struct SegStats {
    segments: u64,
    retransmissions: u64,
    overlaps: u64,
    out_of_order_fixed: u64,
    gaps: u64,
    gap_bytes: u64,
}

/// One direction of a flow: the next expected byte and the segments held beyond it.
#[derive(Debug, Default)]
struct Direction {
    /// Next expected sequence number, unwrapped to 64 bits; `None` until a SYN or data segment.
    next: Option<i64>,
    /// Segments ahead of `next`, by unwrapped sequence number.
    pending: BTreeMap<i64, Vec<u8>>,
    pending_bytes: usize,
    syn: bool,
    fin: bool,
    bytes: u64,
}

impl Direction {
    /// The unwrapped position of `seq` near the expected `next` (sequence numbers wrap at 2^32).
    fn unwrap(seq: u32, next: i64) -> i64 {
        next + i64::from(seq.wrapping_sub(next as u32) as i32)
    }

    fn syn(&mut self, seq: u32) {
        if !self.syn && self.next.is_none() {
            self.next = Some(i64::from(seq) + 1);
        }
        self.syn = true;
    }

    /// A data segment at `seq`: the bytes it makes contiguous are appended to `out`.
    fn segment(&mut self, seq: u32, data: &[u8], limit: usize, st: &mut SegStats, out: &mut Vec<u8>) {
        if data.is_empty() {
            return;
        }
        st.segments += 1;
        let next = *self.next.get_or_insert(i64::from(seq));
        let start = Direction::unwrap(seq, next);
        let end = start + data.len() as i64;
        if end <= next {
            st.retransmissions += 1;
            return;
        }
        if start > next {
            match self.pending.get(&start) {
                Some(held) if held.len() >= data.len() => {
                    st.retransmissions += 1;
                    return;
                }
                Some(held) => {
                    st.retransmissions += 1;
                    self.pending_bytes -= held.len();
                }
                None => {}
            }
            self.pending_bytes += data.len();
            self.pending.insert(start, data.to_vec());
            while self.pending_bytes > limit && !self.pending.is_empty() {
                self.skip_gap(st, out);
            }
            return;
        }
        if start < next {
            st.overlaps += 1;
        }
        out.extend_from_slice(&data[(next - start) as usize..]);
        self.next = Some(end);
        self.drain(st, out, true);
    }

    /// Delivers held segments that are now contiguous.
    fn drain(&mut self, st: &mut SegStats, out: &mut Vec<u8>, reordered: bool) {
        let Some(mut next) = self.next else { return };
        while let Some(entry) = self.pending.first_entry() {
            let start = *entry.key();
            if start > next {
                break;
            }
            let data = entry.remove();
            self.pending_bytes -= data.len();
            let end = start + data.len() as i64;
            if end <= next {
                st.retransmissions += 1;
                continue;
            }
            if start < next {
                st.overlaps += 1;
            }
            out.extend_from_slice(&data[(next - start) as usize..]);
            next = end;
            if reordered {
                st.out_of_order_fixed += 1;
            }
        }
        self.next = Some(next);
    }

    /// Gives up the bytes before the first held segment (never captured) and delivers what follows.
    fn skip_gap(&mut self, st: &mut SegStats, out: &mut Vec<u8>) {
        if let (Some(next), Some((&start, _))) = (self.next, self.pending.first_key_value()) {
            st.gaps += 1;
            st.gap_bytes += (start - next).max(0) as u64;
            self.next = Some(start);
            self.drain(st, out, false);
        }
    }

    /// Gives up every gap: the flow is over.
    fn flush(&mut self, st: &mut SegStats, out: &mut Vec<u8>) {
        while !self.pending.is_empty() {
            self.skip_gap(st, out);
        }
    }
}

/// One TCP connection.
#[derive(Debug)]
struct Flow {
    key: FlowKey,
    /// Index 0: terminal -> platform; 1: platform -> terminal.
    dirs: [Direction; 2],
    stats: SegStats,
    /// Who sent the first FIN or the RST.
    ended_by: Option<Side>,
    closed: bool,
    /// Pass 1: a valid JT808 frame came from the terminal.
    jt808: bool,
    /// Pass 1: looks for that frame until found.
    deframer: Option<Deframer>,
    /// Pass 2: the connection id, when written.
    conn: Option<u64>,
}

/// Pass 2's output: the writer and which flows (by order of appearance) to write.
struct Output {
    writer: CaptureWriter<File>,
    keep: Vec<bool>,
    next_conn: u64,
    error: Option<io::Error>,
    bytes: [u64; 2],
}

impl Output {
    fn write(&mut self, record: Record) {
        if self.error.is_none()
            && let Err(e) = self.writer.write(&record)
        {
            self.error = Some(e);
        }
    }
}

/// The flow table and the per-packet logic shared by both passes.
struct Tracker<'a> {
    ports: &'a BTreeSet<u16>,
    limit: usize,
    flows: Vec<Flow>,
    by_key: HashMap<FlowKey, usize>,
    first_ts: Option<Duration>,
    last_t_us: u64,
    counts: ImportReport,
    output: Option<Output>,
    chunk: Vec<u8>,
}

impl<'a> Tracker<'a> {
    fn new(ports: &'a BTreeSet<u16>, limit: usize, output: Option<(CaptureWriter<File>, Vec<bool>)>) -> Self {
        Tracker {
            ports,
            limit,
            flows: Vec::new(),
            by_key: HashMap::new(),
            first_ts: None,
            last_t_us: 0,
            counts: ImportReport::default(),
            output: output.map(|(writer, keep)| Output {
                writer,
                keep,
                next_conn: 1,
                error: None,
                bytes: [0; 2],
            }),
            chunk: Vec::new(),
        }
    }

    fn time(&mut self, ts: Duration) -> u64 {
        let first = *self.first_ts.get_or_insert(ts);
        let t = ts.saturating_sub(first).as_micros() as u64;
        if t < self.last_t_us {
            self.counts.timestamps_clamped += 1;
        } else {
            self.last_t_us = t;
        }
        self.last_t_us
    }

    fn packet(&mut self, ts: Duration, link: DataLink, data: &[u8]) {
        let t = self.time(ts);
        let sliced = match link {
            DataLink::ETHERNET => SlicedPacket::from_ethernet(data),
            DataLink::LINUX_SLL => SlicedPacket::from_linux_sll(data),
            DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => SlicedPacket::from_ip(data),
            // BSD loopback: a 4-byte address family in host byte order, then the IP packet.
            DataLink::NULL | DataLink::LOOP if data.len() >= 4 => SlicedPacket::from_ip(&data[4..]),
            DataLink::NULL | DataLink::LOOP => {
                self.counts.packets_unparsed += 1;
                return;
            }
            other => {
                self.counts.packets_unsupported_link += 1;
                self.counts.unsupported_link_types.insert(format!("{other:?}"));
                return;
            }
        };
        let Ok(sliced) = sliced else {
            self.counts.packets_unparsed += 1;
            return;
        };
        let (src, dst, fragmented) = match &sliced.net {
            Some(NetSlice::Ipv4(ip)) => (
                IpAddr::V4(ip.header().source_addr()),
                IpAddr::V4(ip.header().destination_addr()),
                ip.is_payload_fragmented(),
            ),
            Some(NetSlice::Ipv6(ip)) => (
                IpAddr::V6(ip.header().source_addr()),
                IpAddr::V6(ip.header().destination_addr()),
                ip.is_payload_fragmented(),
            ),
            _ => {
                self.counts.packets_other += 1;
                return;
            }
        };
        if fragmented {
            self.counts.ip_fragments += 1;
            return;
        }
        let Some(TransportSlice::Tcp(tcp)) = &sliced.transport else {
            self.counts.packets_other += 1;
            return;
        };
        let (sp, dp) = (tcp.source_port(), tcp.destination_port());
        let (s_plat, d_plat) = (self.ports.contains(&sp), self.ports.contains(&dp));
        let fwd = FlowKey {
            terminal: (src, sp),
            platform: (dst, dp),
        };
        let rev = FlowKey {
            terminal: (dst, dp),
            platform: (src, sp),
        };
        let (key, from) = match (s_plat, d_plat) {
            (false, false) => {
                self.counts.packets_other += 1;
                return;
            }
            (false, true) => (fwd, Side::Gateway),
            (true, false) => (rev, Side::Client),
            // Both ends on platform ports: a known flow, else the SYN's destination, else the lower port.
            (true, true) => {
                if self.by_key.contains_key(&fwd) {
                    (fwd, Side::Gateway)
                } else if self.by_key.contains_key(&rev) {
                    (rev, Side::Client)
                } else if tcp.syn() && !tcp.ack() {
                    (fwd, Side::Gateway)
                } else if tcp.syn() || sp < dp {
                    (rev, Side::Client)
                } else {
                    (fwd, Side::Gateway)
                }
            }
        };
        let payload = tcp.payload();
        let opening = tcp.syn() && !tcp.ack();
        let idx = match self.by_key.get(&key) {
            Some(&i) if !(self.flows[i].closed && opening) => i,
            _ => {
                if !opening && payload.is_empty() && !tcp.syn() {
                    // A bare ACK/FIN/RST of a connection we never saw: nothing to import.
                    self.counts.packets_other += 1;
                    return;
                }
                self.open_flow(key, t)
            }
        };
        if self.flows[idx].closed {
            self.counts.packets_after_close += 1;
            return;
        }
        let d = usize::from(from == Side::Client);
        let limit = self.limit;
        let mut chunk = std::mem::take(&mut self.chunk);
        chunk.clear();
        {
            let flow = &mut self.flows[idx];
            let dir = &mut flow.dirs[d];
            let mut seq = tcp.sequence_number();
            if tcp.syn() {
                dir.syn(seq);
                seq = seq.wrapping_add(1);
            }
            dir.segment(seq, payload, limit, &mut flow.stats, &mut chunk);
        }
        self.deliver(idx, from, t, &chunk);
        let flow = &mut self.flows[idx];
        if tcp.rst() {
            flow.ended_by.get_or_insert(from);
            self.close_flow(idx, t);
        } else if tcp.fin() {
            flow.dirs[d].fin = true;
            flow.ended_by.get_or_insert(from);
            if flow.dirs[0].fin && flow.dirs[1].fin {
                self.close_flow(idx, t);
            }
        }
        self.chunk = chunk;
    }

    fn open_flow(&mut self, key: FlowKey, t: u64) -> usize {
        let idx = self.flows.len();
        let mut flow = Flow {
            key,
            dirs: Default::default(),
            stats: SegStats::default(),
            ended_by: None,
            closed: false,
            jt808: false,
            deframer: None,
            conn: None,
        };
        match &mut self.output {
            None => flow.deframer = Some(Deframer::default()),
            Some(out) => {
                if out.keep.get(idx).copied().unwrap_or(false) {
                    let conn = out.next_conn;
                    out.next_conn += 1;
                    flow.conn = Some(conn);
                    out.write(Record::open(t, conn));
                }
            }
        }
        self.flows.push(flow);
        self.by_key.insert(key, idx);
        idx
    }

    /// Bytes that became contiguous: pass 1 looks for a JT808 frame in them, pass 2 writes them.
    fn deliver(&mut self, idx: usize, from: Side, t: u64, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let flow = &mut self.flows[idx];
        flow.dirs[usize::from(from == Side::Client)].bytes += bytes.len() as u64;
        if from == Side::Gateway
            && let Some(deframer) = &mut flow.deframer
        {
            let mut found = false;
            deframer.push(bytes, |item| found |= matches!(item, Item::Frame(_)));
            if found {
                flow.jt808 = true;
                flow.deframer = None;
            }
        }
        if let (Some(out), Some(conn)) = (&mut self.output, flow.conn) {
            out.bytes[usize::from(from == Side::Client)] += bytes.len() as u64;
            out.write(Record::binary(t, conn, from, bytes));
        }
    }

    /// Both FINs, or a RST, or the end of the file: the held bytes go out past their gaps.
    fn close_flow(&mut self, idx: usize, t: u64) {
        for (d, from) in [(0, Side::Gateway), (1, Side::Client)] {
            let mut chunk = Vec::new();
            let flow = &mut self.flows[idx];
            flow.dirs[d].flush(&mut flow.stats, &mut chunk);
            self.deliver(idx, from, t, &chunk);
        }
        let flow = &mut self.flows[idx];
        flow.closed = true;
        flow.deframer = None;
        let ended_by = flow.ended_by;
        if let (Some(out), Some(conn)) = (&mut self.output, flow.conn)
            && ended_by.is_some()
        {
            out.write(Record::close(t, conn, ended_by, None, None));
        }
    }

    /// The end of the file: flows still open give up their gaps; a half-closed one gets its close.
    fn finish(&mut self) {
        let t = self.last_t_us;
        for idx in 0..self.flows.len() {
            if !self.flows[idx].closed {
                self.close_flow(idx, t);
            }
        }
    }

    /// Pass 2's counts into the report.
    fn fill(&self, r: &mut ImportReport) {
        let packets = r.packets;
        let truncated = r.truncated;
        *r = self.counts.clone();
        r.packets = packets;
        r.truncated = truncated;
        r.flows_seen = self.flows.len() as u64;
        for flow in &self.flows {
            if flow.conn.is_some() {
                r.flows_imported += 1;
                r.segments += flow.stats.segments;
                r.retransmissions_dropped += flow.stats.retransmissions;
                r.overlaps_trimmed += flow.stats.overlaps;
                r.out_of_order_fixed += flow.stats.out_of_order_fixed;
                r.gaps += flow.stats.gaps;
                r.gap_bytes += flow.stats.gap_bytes;
            } else {
                r.flows_skipped += 1;
                r.skipped.push(SkippedFlow {
                    terminal: endpoint(flow.key.terminal),
                    platform: endpoint(flow.key.platform),
                    terminal_bytes: flow.dirs[0].bytes,
                    platform_bytes: flow.dirs[1].bytes,
                });
            }
        }
        if let Some(out) = &self.output {
            r.bytes_gateway = out.bytes[0];
            r.bytes_client = out.bytes[1];
            r.records = out.writer.records();
        }
    }
}

fn endpoint((ip, port): Endpoint) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dir: &mut Direction, segs: &[(u32, &[u8])]) -> (Vec<u8>, SegStats) {
        let mut st = SegStats::default();
        let mut out = Vec::new();
        for (seq, data) in segs {
            dir.segment(*seq, data, 1 << 20, &mut st, &mut out);
        }
        (out, st)
    }

    #[test]
    fn reorders_drops_retransmissions_and_trims_overlaps() {
        let mut d = Direction::default();
        d.syn(99);
        let (out, st) = run(
            &mut d,
            &[(100, b"ab"), (104, b"ef"), (102, b"cd"), (102, b"cd"), (105, b"fg")],
        );
        assert_eq!(out, b"abcdefg");
        assert_eq!(st.out_of_order_fixed, 1, "ef waited for cd");
        assert_eq!(st.retransmissions, 1, "second cd");
        assert_eq!(st.overlaps, 1, "fg repeats f");
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut d = Direction::default();
        d.syn(u32::MAX - 2);
        let (out, st) = run(
            &mut d,
            &[(2, b"cd"), (u32::MAX - 1, b"xy"), (u32::MAX.wrapping_add(1), b"ab")],
        );
        assert_eq!(out, b"xyabcd");
        assert_eq!(st.out_of_order_fixed, 1);
    }

    #[test]
    fn pending_limit_gives_up_the_gap_and_counts_it() {
        let mut d = Direction::default();
        d.syn(0);
        let mut st = SegStats::default();
        let mut out = Vec::new();
        d.segment(1, b"aa", 4, &mut st, &mut out);
        d.segment(5, b"cc", 4, &mut st, &mut out);
        d.segment(7, b"dd", 4, &mut st, &mut out);
        assert_eq!(out, b"aa", "4 bytes held is at the limit, not past it");
        d.segment(9, b"e", 4, &mut st, &mut out);
        assert_eq!(out, b"aaccdde");
        assert_eq!((st.gaps, st.gap_bytes), (1, 2));
    }

    #[test]
    fn pcapng_timestamps_follow_if_tsresol() {
        assert_eq!(scale_timestamp(1_500_000, 6), Duration::from_millis(1500));
        assert_eq!(scale_timestamp(1_500_000_000, 9), Duration::from_millis(1500));
        assert_eq!(scale_timestamp(3, 0x81), Duration::from_millis(1500));
    }
}
