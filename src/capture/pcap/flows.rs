//! The flow table and the per-packet logic both passes share: which TCP connection a packet
//! belongs to, its bytes put back in order, and what becomes of them — classified in pass 1
//! ([`Role`] and the envelope prefix found), written in pass 2 ([`Plan`]).

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use etherparse::{NetSlice, TransportSlice};
use pcap_file::DataLink;

use super::read::{Unsliced, slice};
use super::tcp::{Direction, SegStats};
use super::websocket::{Limits, WsEvent, WsReader};
use super::{ConnInfo, ImportReport, MAX_LISTED, SkippedFlow, WsProblem};
use crate::capture::format::{CaptureWriter, Payload, Record, Side};
use crate::capture::prefix::PrefixProbe;
use crate::codec::{Deframer, Item};

mod classify;
use classify::{NO_FRAME, classify, decide, probe_ws, skip_other};

/// One TCP endpoint.
pub(super) type Endpoint = (IpAddr, u16);

/// What pass 1 decided about a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Role {
    /// Not written.
    Skip {
        /// For a flow listed in the report (one with a platform port or an upgrade request), the
        /// direction index of its terminal (gateway) side; `None`: only counted in `flows_other`.
        listed: Option<usize>,
        /// Why.
        reason: String,
    },
    /// JT808 straight over TCP; `gateway_dir` carries the terminal's bytes.
    Raw {
        /// Direction index (0: the first sender's) of the terminal -> platform bytes.
        gateway_dir: usize,
    },
    /// WebSocket after an HTTP upgrade.
    WebSocket {
        /// Direction index of the side that sent the upgrade request.
        client_dir: usize,
        /// Upgrade header bytes per direction, before the first frame.
        header_len: [usize; 2],
        /// The envelope prefix `PrefixProbe` found in its gateway messages.
        prefix: Option<usize>,
        /// Binary gateway messages the probe looked at.
        probed: u64,
    },
}

/// What pass 2 does with a flow: its role, and the prefix its `open` record states (`None`: the
/// header's).
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub role: Role,
    pub own_prefix: Option<usize>,
}

/// Settings both passes read.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub ports: BTreeSet<u16>,
    pub max_pending: usize,
    pub max_http_header: usize,
    pub probe_messages: u64,
    pub limits: Limits,
}

/// Where a flow stands.
#[derive(Debug)]
enum State {
    /// Pass 1, no byte yet classified: the first sender's bytes so far (an upgrade request?).
    Undecided { first: Option<usize>, head: Vec<u8> },
    /// Pass 1, a raw TCP candidate looking for a JT808 frame from the terminal.
    RawProbe {
        gateway_dir: usize,
        deframer: Box<Deframer>,
    },
    /// Pass 1, upgrade request seen; the server's answer so far.
    AwaitResponse {
        client_dir: usize,
        request_len: usize,
        head: Vec<u8>,
    },
    /// Pass 1, WebSocket: the gateway direction's messages go through the prefix probe.
    WsProbe {
        client_dir: usize,
        header_len: [usize; 2],
        reader: Box<WsReader>,
        probe: Box<PrefixProbe>,
    },
    /// Pass 1 decided; or pass 2 not writing it.
    Done(Role),
    /// Pass 2, JT808 over TCP.
    WriteRaw { gateway_dir: usize },
    /// Pass 2, WebSocket.
    WriteWs(Box<WsWrite>),
}

/// Pass 2's state of a WebSocket flow.
#[derive(Debug)]
struct WsWrite {
    client_dir: usize,
    /// Upgrade header bytes still to step over, per direction.
    skip: [usize; 2],
    readers: [WsReader; 2],
    /// A close frame was written: the connection is over for the capture.
    closed: bool,
}

/// One TCP connection.
#[derive(Debug)]
struct Flow {
    /// `ends[d]` sends `dirs[d]`; `ends[0]` is the SYN's sender (or the first packet's).
    ends: [Endpoint; 2],
    dirs: [Direction; 2],
    stats: SegStats,
    /// The raw-TCP terminal direction by port, when a port is a platform port.
    port_gateway_dir: Option<usize>,
    /// The direction that sent the first FIN or the RST, and whether it was a RST.
    ended_by: Option<(usize, bool)>,
    closed: bool,
    state: State,
    /// Pass 2: the connection id, when written.
    conn: Option<u64>,
}

/// Pass 2's output: the writer and what to do with each flow (by order of appearance).
pub(super) struct Output {
    writer: CaptureWriter<File>,
    plans: Vec<Plan>,
    next_conn: u64,
    pub error: Option<io::Error>,
    bytes: [u64; 2],
}

impl Output {
    pub(super) fn new(writer: CaptureWriter<File>, plans: Vec<Plan>) -> Output {
        Output {
            writer,
            plans,
            next_conn: 1,
            error: None,
            bytes: [0; 2],
        }
    }

    fn write(&mut self, record: Record) {
        if self.error.is_none()
            && let Err(e) = self.writer.write(&record)
        {
            self.error = Some(e);
        }
    }
}

/// The flow table.
pub(super) struct Tracker<'a> {
    set: &'a Settings,
    flows: Vec<Flow>,
    by_key: HashMap<(Endpoint, Endpoint), usize>,
    first_ts: Option<Duration>,
    last_t_us: u64,
    counts: ImportReport,
    pub output: Option<Output>,
    chunk: Vec<u8>,
}

/// A TCP segment's fields the tracker uses.
struct Seg<'p> {
    src: Endpoint,
    dst: Endpoint,
    seq: u32,
    syn: bool,
    ack: bool,
    fin: bool,
    rst: bool,
    payload: &'p [u8],
}

impl<'a> Tracker<'a> {
    /// Pass 1 without `output`, pass 2 with it.
    pub(super) fn new(set: &'a Settings, output: Option<Output>) -> Self {
        Tracker {
            set,
            flows: Vec::new(),
            by_key: HashMap::new(),
            first_ts: None,
            last_t_us: 0,
            counts: ImportReport::default(),
            output,
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

    /// One packet of the file.
    pub(super) fn packet(&mut self, ts: Duration, link: DataLink, data: &[u8]) {
        let t = self.time(ts);
        let sliced = match slice(link, data) {
            Ok(s) => s,
            Err(Unsliced::Link(name)) => {
                self.counts.packets_unsupported_link += 1;
                self.counts.unsupported_link_types.insert(name);
                return;
            }
            Err(Unsliced::Bad) => {
                self.counts.packets_unparsed += 1;
                return;
            }
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
        let seg = Seg {
            src: (src, tcp.source_port()),
            dst: (dst, tcp.destination_port()),
            seq: tcp.sequence_number(),
            syn: tcp.syn(),
            ack: tcp.ack(),
            fin: tcp.fin(),
            rst: tcp.rst(),
            payload: tcp.payload(),
        };
        self.segment(t, &seg);
    }

    fn segment(&mut self, t: u64, s: &Seg<'_>) {
        let key = if s.src <= s.dst { (s.src, s.dst) } else { (s.dst, s.src) };
        let opening = s.syn && !s.ack;
        let idx = match self.by_key.get(&key) {
            Some(&i) if !(self.flows[i].closed && opening) => i,
            _ => {
                if !opening && s.payload.is_empty() && !s.syn {
                    // A bare ACK/FIN/RST of a connection we never saw: nothing to import.
                    self.counts.packets_other += 1;
                    return;
                }
                self.open_flow(key, s, t)
            }
        };
        let flow = &self.flows[idx];
        if flow.closed {
            self.counts.packets_after_close += 1;
            return;
        }
        let d = usize::from(flow.ends[0] != s.src);
        let limit = self.set.max_pending;
        let mut chunk = std::mem::take(&mut self.chunk);
        chunk.clear();
        if let State::Done(_) = flow.state {
            // Decided and not written (pass 1 after its verdict, pass 2 for a skipped flow): no
            // reassembly, so an unrelated bulk transfer costs little; its payload is only counted.
            self.flows[idx].dirs[d].bytes += s.payload.len() as u64;
        } else {
            let flow = &mut self.flows[idx];
            let dir = &mut flow.dirs[d];
            let mut seq = s.seq;
            if s.syn {
                dir.syn(seq);
                seq = seq.wrapping_add(1);
            }
            dir.segment(seq, s.payload, limit, &mut flow.stats, &mut chunk);
        }
        self.deliver(idx, d, t, &chunk);
        self.chunk = chunk;
        let flow = &mut self.flows[idx];
        if s.rst {
            flow.ended_by.get_or_insert((d, true));
            self.close_flow(idx, t);
        } else if s.fin {
            flow.dirs[d].fin = true;
            flow.ended_by.get_or_insert((d, false));
            if flow.dirs[0].fin && flow.dirs[1].fin {
                self.close_flow(idx, t);
            }
        }
    }

    /// The terminal direction of a raw TCP flow by the platform ports: the end on a platform
    /// port is the platform; both on one: the SYN's destination, else the lower port.
    fn port_gateway_dir(&self, ends: &[Endpoint; 2], syn_seen: bool) -> Option<usize> {
        let plat = |e: &Endpoint| self.set.ports.contains(&e.1);
        match (plat(&ends[0]), plat(&ends[1])) {
            (false, false) => None,
            (false, true) => Some(0),
            (true, false) => Some(1),
            (true, true) if syn_seen => Some(0),
            (true, true) => Some(usize::from(ends[0].1 < ends[1].1)),
        }
    }

    fn open_flow(&mut self, key: (Endpoint, Endpoint), s: &Seg<'_>, t: u64) -> usize {
        let idx = self.flows.len();
        // The SYN's sender is end 0; a SYN-ACK's receiver; otherwise the first packet's sender.
        let ends = if s.syn && s.ack { [s.dst, s.src] } else { [s.src, s.dst] };
        let port_gateway_dir = self.port_gateway_dir(&ends, s.syn);
        let mut conn = None;
        let state = match &mut self.output {
            None => State::Undecided {
                first: None,
                head: Vec::new(),
            },
            Some(out) => {
                let plan = out.plans.get(idx).cloned().unwrap_or(Plan {
                    role: skip_other(),
                    own_prefix: None,
                });
                let state = write_state(&plan.role, self.set.limits);
                if !matches!(state, State::Done(_)) {
                    let c = out.next_conn;
                    out.next_conn += 1;
                    conn = Some(c);
                    out.write(match plan.own_prefix {
                        Some(p) => Record::open_with_prefix(t, c, p),
                        None => Record::open(t, c),
                    });
                }
                state
            }
        };
        self.flows.push(Flow {
            ends,
            dirs: Default::default(),
            stats: SegStats::default(),
            port_gateway_dir,
            ended_by: None,
            closed: false,
            state,
            conn,
        });
        self.by_key.insert(key, idx);
        idx
    }

    /// Bytes of direction `d` that became contiguous.
    fn deliver(&mut self, idx: usize, d: usize, t: u64, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let set = self.set;
        let flow = &mut self.flows[idx];
        flow.dirs[d].bytes += bytes.len() as u64;
        let port_gateway_dir = flow.port_gateway_dir;
        let conn = flow.conn;
        let ends = flow.ends;
        match &mut flow.state {
            State::Undecided { .. } | State::AwaitResponse { .. } => {
                let next = classify(&mut flow.state, port_gateway_dir, d, bytes, set);
                if let Some(next) = next {
                    flow.state = next;
                }
            }
            State::RawProbe { gateway_dir, deframer } => {
                if d == *gateway_dir {
                    let mut found = false;
                    deframer.push(bytes, |item| found |= matches!(item, Item::Frame(_)));
                    if found {
                        flow.state = State::Done(Role::Raw {
                            gateway_dir: *gateway_dir,
                        });
                    }
                }
            }
            State::WsProbe { .. } => probe_ws(&mut flow.state, d, bytes, set),
            State::Done(_) => {}
            State::WriteRaw { gateway_dir } => {
                let side = if d == *gateway_dir { Side::Gateway } else { Side::Client };
                if let (Some(out), Some(conn)) = (&mut self.output, conn) {
                    out.bytes[usize::from(side == Side::Client)] += bytes.len() as u64;
                    out.write(Record::binary(t, conn, side, bytes));
                }
            }
            State::WriteWs(ws) => {
                if let (Some(out), Some(conn)) = (&mut self.output, conn) {
                    let at = WsAt { conn, t, ends };
                    write_ws(ws, d, bytes, at, out, &mut self.counts);
                }
            }
        }
    }

    /// Both FINs, or a RST, or the end of the file: the held bytes go out past their gaps.
    fn close_flow(&mut self, idx: usize, t: u64) {
        for d in 0..2 {
            let mut chunk = Vec::new();
            let flow = &mut self.flows[idx];
            flow.dirs[d].flush(&mut flow.stats, &mut chunk);
            self.deliver(idx, d, t, &chunk);
        }
        let flow = &mut self.flows[idx];
        flow.closed = true;
        let ended_by = flow.ended_by;
        let (Some(out), Some(conn), Some((d, rst))) = (&mut self.output, flow.conn, ended_by) else {
            return;
        };
        match &flow.state {
            State::WriteRaw { gateway_dir } => {
                let side = if d == *gateway_dir { Side::Gateway } else { Side::Client };
                out.write(Record::close(t, conn, Some(side), None, None));
            }
            State::WriteWs(ws) if !ws.closed => {
                let side = if d == ws.client_dir {
                    Side::Client
                } else {
                    Side::Gateway
                };
                let how = if rst { "TCP RST" } else { "TCP FIN" };
                let reason = format!("{how} without a close frame");
                out.write(Record::close(t, conn, Some(side), None, Some(reason)));
            }
            _ => {}
        }
    }

    /// The end of the file: flows still open give up their gaps; a half-closed one gets its close.
    pub(super) fn finish(&mut self) {
        let t = self.last_t_us;
        for idx in 0..self.flows.len() {
            if !self.flows[idx].closed {
                self.close_flow(idx, t);
            }
        }
    }

    /// Pass 1's verdict per flow, in order of appearance.
    pub(super) fn roles(&mut self) -> Vec<Role> {
        self.flows
            .iter_mut()
            .map(|f| match std::mem::replace(&mut f.state, State::Done(skip_other())) {
                State::Undecided { .. } if f.port_gateway_dir.is_some() => Role::Skip {
                    listed: f.port_gateway_dir,
                    reason: NO_FRAME.into(),
                },
                state => decide(state),
            })
            .collect()
    }

    /// Pass 1's per-flow facts the report keeps (skipped flows are listed from pass 1).
    pub(super) fn fill_pass1(&self, roles: &[Role], r: &mut ImportReport) {
        for (flow, role) in self.flows.iter().zip(roles) {
            match role {
                Role::Skip { listed: None, .. } => r.flows_other += 1,
                Role::Skip {
                    listed: Some(g),
                    reason,
                } => {
                    let g = *g;
                    r.flows_seen += 1;
                    r.flows_skipped += 1;
                    if r.skipped.len() < MAX_LISTED {
                        r.skipped.push(SkippedFlow {
                            terminal: endpoint(flow.ends[g]),
                            platform: endpoint(flow.ends[1 - g]),
                            terminal_bytes: flow.dirs[g].bytes,
                            platform_bytes: flow.dirs[1 - g].bytes,
                            reason: reason.clone(),
                        });
                    }
                }
                _ => r.flows_seen += 1,
            }
        }
    }

    /// Pass 2's counts into the report.
    pub(super) fn fill(&self, r: &mut ImportReport) {
        let c = &self.counts;
        (r.packets_unparsed, r.packets_unsupported_link) = (c.packets_unparsed, c.packets_unsupported_link);
        r.unsupported_link_types = c.unsupported_link_types.clone();
        (r.ip_fragments, r.packets_other, r.timestamps_clamped) =
            (c.ip_fragments, c.packets_other, c.timestamps_clamped);
        r.packets_after_close = c.packets_after_close;
        r.ws_messages = c.ws_messages;
        r.ws_control_frames = c.ws_control_frames;
        r.ws_messages_too_long = c.ws_messages_too_long;
        r.ws_streams_malformed = c.ws_streams_malformed;
        r.ws_problems = c.ws_problems.clone();
        r.ws_after_close = c.ws_after_close;
        let plans = self.output.as_ref().map(|o| o.plans.as_slice()).unwrap_or(&[]);
        for (flow, plan) in self.flows.iter().zip(plans) {
            let Some(conn) = flow.conn else { continue };
            r.flows_imported += 1;
            r.segments += flow.stats.segments;
            r.retransmissions_dropped += flow.stats.retransmissions;
            r.overlaps_trimmed += flow.stats.overlaps;
            r.out_of_order_fixed += flow.stats.out_of_order_fixed;
            r.gaps += flow.stats.gaps;
            r.gap_bytes += flow.stats.gap_bytes;
            if let State::WriteWs(ws) = &flow.state {
                r.ws_bytes_unparsed += ws.readers.iter().map(|w| w.ignored_bytes).sum::<u64>();
            }
            if r.connections.len() < MAX_LISTED {
                r.connections.push(conn_info(conn, flow, plan, r.prefix_len));
            }
        }
        if let Some(out) = &self.output {
            r.bytes_gateway = out.bytes[0];
            r.bytes_client = out.bytes[1];
            r.records = out.writer.records();
        }
    }
}

/// The listed facts of one written connection.
fn conn_info(conn: u64, flow: &Flow, plan: &Plan, default_prefix: usize) -> ConnInfo {
    let (kind, g, probed) = match &plan.role {
        Role::WebSocket { client_dir, probed, .. } => ("websocket", 1 - client_dir, *probed),
        Role::Raw { gateway_dir } => ("tcp", *gateway_dir, 0),
        Role::Skip { .. } => ("skipped", 0, 0),
    };
    ConnInfo {
        conn,
        kind,
        gateway: endpoint(flow.ends[g]),
        client: endpoint(flow.ends[1 - g]),
        prefix_len: plan.own_prefix.unwrap_or(default_prefix),
        probed_messages: probed,
    }
}

/// Pass 2's starting state for a role.
fn write_state(role: &Role, limits: Limits) -> State {
    match role {
        Role::Raw { gateway_dir } => State::WriteRaw {
            gateway_dir: *gateway_dir,
        },
        Role::WebSocket {
            client_dir, header_len, ..
        } => {
            let reader = |d: usize| WsReader::new(d == *client_dir, limits, header_len[d] as u64);
            State::WriteWs(Box::new(WsWrite {
                client_dir: *client_dir,
                skip: *header_len,
                readers: [reader(0), reader(1)],
                closed: false,
            }))
        }
        Role::Skip { .. } => State::Done(role.clone()),
    }
}

/// Which connection and when, for the records of a WebSocket flow.
struct WsAt {
    conn: u64,
    t: u64,
    ends: [Endpoint; 2],
}

/// Pass 2, WebSocket: direction `d`'s bytes (after the upgrade header) to records.
fn write_ws(ws: &mut WsWrite, d: usize, mut bytes: &[u8], at: WsAt, out: &mut Output, counts: &mut ImportReport) {
    let skip = ws.skip[d].min(bytes.len());
    ws.skip[d] -= skip;
    bytes = &bytes[skip..];
    if bytes.is_empty() {
        return;
    }
    let side = if d == ws.client_dir {
        Side::Client
    } else {
        Side::Gateway
    };
    let closed = &mut ws.closed;
    ws.readers[d].push(bytes, &mut |e| {
        let problem = |offset: u64, what: String| WsProblem {
            conn: at.conn,
            from: side,
            sender: endpoint(at.ends[d]),
            offset,
            what,
        };
        match e {
            WsEvent::Message(_) | WsEvent::Close { .. } if *closed => counts.ws_after_close += 1,
            WsEvent::Message(p) => {
                match &p {
                    Payload::Ping(_) | Payload::Pong(_) => counts.ws_control_frames += 1,
                    Payload::Binary(_) | Payload::Text(_) => {
                        counts.ws_messages += 1;
                        out.bytes[usize::from(side == Side::Client)] += p.len() as u64;
                    }
                }
                out.write(Record::message(at.t, at.conn, side, p));
            }
            WsEvent::Close { code, reason } => {
                *closed = true;
                out.write(Record::close(at.t, at.conn, Some(side), code, reason));
            }
            WsEvent::TooLong { offset, size, limit } => {
                counts.ws_messages_too_long += 1;
                if counts.ws_problems.len() < MAX_LISTED {
                    counts.ws_problems.push(problem(
                        offset,
                        format!("message of {size}+ bytes over {limit}, skipped"),
                    ));
                }
            }
            WsEvent::Malformed { offset, what } => {
                counts.ws_streams_malformed += 1;
                if counts.ws_problems.len() < MAX_LISTED {
                    counts.ws_problems.push(problem(
                        offset,
                        format!("{what}; the rest of this direction is not imported"),
                    ));
                }
            }
        }
    });
}

pub(super) fn endpoint((ip, port): Endpoint) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}
