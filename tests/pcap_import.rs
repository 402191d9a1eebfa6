//! pcap/pcapng import end to end: the test writes a real capture file (pcap-file writer, etherparse
//! PacketBuilder for Ethernet/Linux-SLL + IPv4/IPv6 + TCP) holding two JT808 terminals and one
//! HTTP flow, with a reordered segment, a retransmitted segment, a frame split across segments,
//! sequence numbers that wrap, a flow that starts mid-stream and one that ends with RST; then it
//! imports it and decodes what came out, connection by connection.

use std::borrow::Cow;
use std::fs::File;
use std::path::Path;
use std::time::Duration;

use etherparse::{LinuxSllPacketType, PacketBuilder};
use jt808_harness::capture::pcap::DEFAULT_PORTS;
use jt808_harness::capture::{CaptureReader, ImportOpts, ImportReport, Payload, Record, RecordKind, Side, import_pcap};
use jt808_harness::codec::body::{Body, RawBody};
use jt808_harness::codec::{DecodeEvent, Decoder, DecoderConfig, Message, Phone, Version};
use pcap_file::DataLink;
use pcap_file::pcap::{PcapPacket, PcapWriter};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};

const TERMINAL_A: [u8; 4] = [10, 0, 0, 1];
const TERMINAL_C: [u8; 4] = [10, 0, 0, 3];
const PLATFORM: [u8; 4] = [10, 0, 0, 100];
const TERMINAL_B6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const PLATFORM6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
/// Unix time of the first packet; the capture's offsets are relative to it.
const EPOCH_S: u64 = 1_700_000_000;

fn msg(id: u16, version: Version, phone: &str, serial: u16, body: Vec<u8>) -> Vec<u8> {
    Message::new(
        id,
        version,
        Phone::parse(phone).unwrap(),
        serial,
        Body::Raw(RawBody { raw: body }),
    )
    .encode()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flow {
    /// IPv4 10.0.0.1:40001 -> 10.0.0.100:8080, with SYN; terminal ISN near the 2^32 wrap.
    A,
    /// IPv6 [fd00::2]:40002 -> [fd00::100]:6808, captured mid-flow, ends with RST.
    B,
    /// IPv4 10.0.0.3:40003 -> 10.0.0.100:8081, HTTP: not JT808.
    C,
    /// A UDP datagram (DNS): not TCP.
    Udp,
}

#[derive(Clone, Copy, Default)]
struct Flags {
    syn: bool,
    ack: bool,
    fin: bool,
    rst: bool,
}

const DATA: Flags = Flags {
    syn: false,
    ack: true,
    fin: false,
    rst: false,
};
const SYN: Flags = Flags {
    syn: true,
    ack: false,
    fin: false,
    rst: false,
};
const SYN_ACK: Flags = Flags {
    syn: true,
    ack: true,
    fin: false,
    rst: false,
};
const FIN: Flags = Flags {
    syn: false,
    ack: true,
    fin: true,
    rst: false,
};
const RST: Flags = Flags {
    syn: false,
    ack: false,
    fin: false,
    rst: true,
};

struct Seg {
    t_ms: u64,
    flow: Flow,
    to_platform: bool,
    seq: u32,
    flags: Flags,
    data: Vec<u8>,
}

fn seg(t_ms: u64, flow: Flow, to_platform: bool, seq: u32, flags: Flags, data: &[u8]) -> Seg {
    Seg {
        t_ms,
        flow,
        to_platform,
        seq,
        flags,
        data: data.to_vec(),
    }
}

/// The link layer a segment is written with.
#[derive(Clone, Copy)]
enum Link {
    Ethernet,
    LinuxSll,
}

fn build(s: &Seg, link: Link) -> Vec<u8> {
    let mac_t = [2, 0, 0, 0, 0, 1];
    let mac_p = [2, 0, 0, 0, 0, 2];
    let (src_mac, dst_mac) = if s.to_platform { (mac_t, mac_p) } else { (mac_p, mac_t) };
    let (tp, pp) = match s.flow {
        Flow::A => (40001, 8080),
        Flow::B => (40002, 6808),
        Flow::C => (40003, 8081),
        Flow::Udp => (5353, 53),
    };
    let (sp, dp) = if s.to_platform { (tp, pp) } else { (pp, tp) };
    let start = match link {
        Link::Ethernet => PacketBuilder::ethernet2(src_mac, dst_mac),
        Link::LinuxSll => {
            let mut addr = [0u8; 8];
            addr[..6].copy_from_slice(&src_mac);
            // A Linux cooked capture then carries IP the same way; written through etherparse too.
            return build_sll(s, addr, sp, dp);
        }
    };
    let ip = match s.flow {
        Flow::B => {
            let (a, b) = if s.to_platform {
                (TERMINAL_B6, PLATFORM6)
            } else {
                (PLATFORM6, TERMINAL_B6)
            };
            start.ipv6(a, b, 64)
        }
        Flow::A | Flow::C | Flow::Udp => {
            let t = if s.flow == Flow::C { TERMINAL_C } else { TERMINAL_A };
            let (a, b) = if s.to_platform { (t, PLATFORM) } else { (PLATFORM, t) };
            start.ipv4(a, b, 64)
        }
    };
    let mut out = Vec::new();
    if s.flow == Flow::Udp {
        ip.udp(sp, dp).write(&mut out, &s.data).unwrap();
        return out;
    }
    let mut tcp = ip.tcp(sp, dp, s.seq, 65535);
    if s.flags.syn {
        tcp = tcp.syn();
    }
    if s.flags.ack {
        tcp = tcp.ack(1);
    }
    if s.flags.fin {
        tcp = tcp.fin();
    }
    if s.flags.rst {
        tcp = tcp.rst();
    }
    tcp.write(&mut out, &s.data).unwrap();
    out
}

fn build_sll(s: &Seg, addr: [u8; 8], sp: u16, dp: u16) -> Vec<u8> {
    assert_eq!(s.flow, Flow::B, "only flow B is written as Linux SLL");
    let (a, b) = if s.to_platform {
        (TERMINAL_B6, PLATFORM6)
    } else {
        (PLATFORM6, TERMINAL_B6)
    };
    let mut tcp = PacketBuilder::linux_sll(LinuxSllPacketType::HOST, 6, addr)
        .ipv6(a, b, 64)
        .tcp(sp, dp, s.seq, 65535);
    if s.flags.ack {
        tcp = tcp.ack(1);
    }
    if s.flags.rst {
        tcp = tcp.rst();
    }
    let mut out = Vec::new();
    tcp.write(&mut out, &s.data).unwrap();
    out
}

/// (message id, serial) of decoded messages, in order.
type Ids = Vec<(u16, u16)>;

struct Scenario {
    segs: Vec<Seg>,
    /// Expected (msg id, serial) per imported conn, gateway side then client side.
    expect: Vec<(Ids, Ids)>,
    stream_a: Vec<u8>,
    stream_b: Vec<u8>,
}

fn scenario() -> Scenario {
    // Flow A: four frames from terminal 13800138000; frame 2's body holds 0x7E and 0x7D (escaped).
    let f1 = msg(0x0200, Version::V2013, "13800138000", 1, vec![0; 28]);
    let f2 = msg(
        0x0200,
        Version::V2013,
        "13800138000",
        2,
        vec![0x7E; 20].into_iter().chain([0x7D; 8]).collect(),
    );
    let f3 = msg(0x0002, Version::V2013, "13800138000", 3, vec![]);
    let f4 = msg(0x0001, Version::V2013, "13800138000", 4, vec![0, 100, 0x80, 0x01, 0]);
    let p1 = msg(0x8001, Version::V2013, "13800138000", 100, vec![0, 1, 0x02, 0x00, 0]);
    let s1: Vec<u8> = f1.iter().chain(&f2[..10]).copied().collect(); // f2 split across s1 and s2
    let s2 = f2[10..].to_vec();
    let (s3, s4) = (f3.clone(), f4.clone());
    let isn_t = u32::MAX - 10; // the stream crosses the 2^32 wrap inside s1
    let isn_p = 5000u32;
    let a1 = isn_t.wrapping_add(1);
    let a2 = a1.wrapping_add(s1.len() as u32);
    let a3 = a2.wrapping_add(s2.len() as u32);
    let a4 = a3.wrapping_add(s3.len() as u32);
    let a_end = a4.wrapping_add(s4.len() as u32);

    // Flow B (2019 header, IPv6): auth then a location, mid-flow, RST at the end.
    let g1 = msg(0x0102, Version::V2019, "13900139000", 9, b"AUTHCODE".to_vec());
    let g2 = msg(0x0200, Version::V2019, "13900139000", 10, vec![1; 28]);
    let q1 = msg(0x8001, Version::V2019, "13900139000", 101, vec![0, 9, 0x01, 0x02, 0]);
    let b1 = 7777u32;
    let b2 = b1 + g1.len() as u32;

    // Flow C: HTTP on a platform port.
    let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

    use Flow::*;
    let segs = vec![
        seg(0, A, true, isn_t, SYN, b""),
        seg(1, A, false, isn_p, SYN_ACK, b""),
        seg(2, C, true, 100, SYN, b""),
        seg(3, A, true, a1, DATA, &s1),
        seg(4, Udp, true, 0, DATA, b"dns?"),
        seg(5, C, false, 900, SYN_ACK, b""),
        seg(6, C, true, 101, DATA, get),
        seg(7, A, false, isn_p + 1, DATA, &p1),
        seg(8, B, true, b1, DATA, &g1),
        seg(9, A, true, a3, DATA, &s3), // ahead of s2: held
        seg(10, C, false, 901, DATA, ok),
        seg(11, A, true, a2, DATA, &s2), // fills the gap: s2 + s3 come out together
        seg(12, B, false, 40_000, DATA, &q1),
        seg(13, A, true, a1, DATA, &s1), // retransmission of s1: dropped
        seg(14, A, true, a4, DATA, &s4),
        seg(15, B, true, b2, DATA, &g2),
        seg(16, A, true, a_end, FIN, b""),
        seg(17, C, true, 101 + get.len() as u32, FIN, b""),
        seg(18, A, false, isn_p + 1 + p1.len() as u32, FIN, b""),
        seg(19, A, true, a_end.wrapping_add(1), DATA, b""), // the last ACK: after the close
        seg(20, C, false, 901 + ok.len() as u32, FIN, b""),
        seg(21, B, true, b2 + g2.len() as u32, RST, b""),
    ];
    let expect = vec![
        (
            vec![(0x0200, 1), (0x0200, 2), (0x0002, 3), (0x0001, 4)],
            vec![(0x8001, 100)],
        ),
        (vec![(0x0102, 9), (0x0200, 10)], vec![(0x8001, 101)]),
    ];
    Scenario {
        segs,
        expect,
        stream_a: [f1, f2, f3, f4].concat(),
        stream_b: [g1, g2].concat(),
    }
}

fn ts(t_ms: u64) -> Duration {
    Duration::from_secs(EPOCH_S) + Duration::from_millis(t_ms)
}

fn write_pcap(path: &Path, segs: &[Seg]) {
    let mut w = PcapWriter::new(File::create(path).unwrap()).unwrap();
    for s in segs {
        let data = build(s, Link::Ethernet);
        w.write_packet(&PcapPacket::new(ts(s.t_ms), data.len() as u32, &data))
            .unwrap();
    }
}

/// Interface 0: Ethernet with nanosecond timestamps (if_tsresol 9). Interface 1: Linux SLL with
/// the default microsecond resolution, carrying flow B.
fn write_pcapng(path: &Path, segs: &[Seg]) {
    let mut w = PcapNgWriter::new(File::create(path).unwrap()).unwrap();
    w.write_pcapng_block(InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: 65535,
        options: vec![InterfaceDescriptionOption::IfTsResol(9)],
    })
    .unwrap();
    w.write_pcapng_block(InterfaceDescriptionBlock::new(DataLink::LINUX_SLL, 65535))
        .unwrap();
    for s in segs {
        let (iface, data, timestamp) = if s.flow == Flow::B {
            // pcap-file writes the Duration's nanosecond count as the raw timestamp; on a
            // microsecond interface the raw count must be microseconds.
            let micros = ts(s.t_ms).as_micros() as u64;
            (1, build(s, Link::LinuxSll), Duration::from_nanos(micros))
        } else {
            (0, build(s, Link::Ethernet), ts(s.t_ms))
        };
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: iface,
            timestamp,
            original_len: data.len() as u32,
            data: Cow::Owned(data),
            options: vec![],
        })
        .unwrap();
    }
}

fn read_capture(path: &Path) -> (u64, Vec<Record>) {
    let mut reader = CaptureReader::open(path).unwrap();
    let prefix = reader.header().prefix_len as u64;
    let records = reader.by_ref().map(|r| r.unwrap()).collect();
    assert!(reader.truncated().is_none());
    (prefix, records)
}

fn bytes_of(records: &[Record], conn: u64, side: Side) -> Vec<u8> {
    records
        .iter()
        .filter(|r| r.conn == conn)
        .filter_map(|r| match &r.kind {
            RecordKind::Message {
                from,
                payload: Payload::Binary(b),
            } if *from == side => Some(b.clone()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .concat()
}

fn decode(bytes: &[u8]) -> Vec<(u16, u16)> {
    let mut d = Decoder::new(DecoderConfig::default());
    let mut out = Vec::new();
    d.push(bytes, Duration::ZERO, |e| match e {
        DecodeEvent::Message(m) => out.push((m.header.msg_id, m.header.serial)),
        other => panic!("unexpected decoder event {other:?}"),
    });
    out
}

fn check_import(report: &ImportReport, records: &[Record], sc: &Scenario) {
    assert_eq!(report.packets, sc.segs.len() as u64);
    assert_eq!(
        (report.flows_seen, report.flows_imported, report.flows_skipped),
        (3, 2, 1)
    );
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].terminal, "10.0.0.3:40003");
    assert_eq!(report.skipped[0].platform, "10.0.0.100:8081");
    assert_eq!(report.retransmissions_dropped, 1, "the second copy of s1");
    assert_eq!(report.out_of_order_fixed, 1, "s3 held until s2 arrived");
    assert_eq!((report.gaps, report.gap_bytes, report.overlaps_trimmed), (0, 0, 0));
    assert_eq!(
        report.segments, 9,
        "A: 5 from the terminal + 1 from the platform; B: 2 + 1"
    );
    assert_eq!(report.packets_other, 1, "the UDP datagram");
    assert_eq!(report.packets_after_close, 1, "the last ACK of flow A");
    assert_eq!(report.packets_unparsed, 0);
    assert_eq!(report.bytes_gateway, (sc.stream_a.len() + sc.stream_b.len()) as u64);
    assert!(!report.truncated);
    assert_eq!(report.records, records.len() as u64);

    // Byte-exact streams, and the exact decoded messages per connection.
    assert_eq!(bytes_of(records, 1, Side::Gateway), sc.stream_a);
    assert_eq!(bytes_of(records, 2, Side::Gateway), sc.stream_b);
    for (i, (gateway, client)) in sc.expect.iter().enumerate() {
        let conn = i as u64 + 1;
        assert_eq!(
            &decode(&bytes_of(records, conn, Side::Gateway)),
            gateway,
            "conn {conn} gateway"
        );
        assert_eq!(
            &decode(&bytes_of(records, conn, Side::Client)),
            client,
            "conn {conn} client"
        );
    }
    assert!(
        records.iter().all(|r| r.conn == 1 || r.conn == 2),
        "flow C was not written"
    );

    // Connection 1 record by record: original timing, reordered bytes delivered at the packet
    // that filled the gap, one close when both FINs were seen, from the side that sent the first.
    let conn1: Vec<(u64, String)> = records
        .iter()
        .filter(|r| r.conn == 1)
        .map(|r| {
            let what = match &r.kind {
                RecordKind::Open { .. } => "open".to_string(),
                RecordKind::Close { from, code, .. } => format!("close {from:?} {code:?}"),
                RecordKind::Message { from, payload } => format!("{from} {}", payload.len()),
            };
            (r.t_us, what)
        })
        .collect();
    let s1_len = msg(0x0200, Version::V2013, "13800138000", 1, vec![0; 28]).len() + 10;
    let tail = sc.stream_a.len() - s1_len;
    let s4_len = msg(0x0001, Version::V2013, "13800138000", 4, vec![0, 100, 0x80, 0x01, 0]).len();
    assert_eq!(
        conn1,
        vec![
            (0, "open".to_string()),
            (3_000, format!("gateway {s1_len}")),
            (7_000, "client 20".to_string()), // 0x8001: 7E + 12 header + 5 body + check + 7E
            (11_000, format!("gateway {}", tail - s4_len)),
            (14_000, format!("gateway {s4_len}")),
            (18_000, "close Some(Gateway) None".to_string()),
        ]
    );
    // Connection 2 started mid-flow (opened at its first data) and ended with the terminal's RST.
    let conn2_events: Vec<(u64, bool)> = records
        .iter()
        .filter(|r| r.conn == 2)
        .filter_map(|r| match &r.kind {
            RecordKind::Open { .. } => Some((r.t_us, true)),
            RecordKind::Close { from, .. } => {
                assert_eq!(*from, Some(Side::Gateway));
                Some((r.t_us, false))
            }
            _ => None,
        })
        .collect();
    assert_eq!(conn2_events, [(8_000, true), (21_000, false)]);
}

#[test]
fn pcap_with_two_terminals_and_an_http_flow_imports_the_terminals_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario();
    let input = dir.path().join("field.pcap");
    write_pcap(&input, &sc.segs);
    let out = dir.path().join("field.jsonl");
    let report = import_pcap(&input, &ImportOpts::new(&out)).unwrap();
    let (prefix, records) = read_capture(&out);
    assert_eq!(prefix, 0, "a TCP stream has no WebSocket envelope");
    check_import(&report, &records, &sc);
    let text = report.to_string();
    assert!(text.contains("3 seen, 2 imported, 1 skipped"), "{text}");
    assert!(text.contains("10.0.0.3:40003 -> 10.0.0.100:8081"), "{text}");
}

#[test]
fn pcapng_with_two_interfaces_and_timestamp_resolutions_imports_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario();
    let input = dir.path().join("field.pcapng");
    write_pcapng(&input, &sc.segs);
    let out = dir.path().join("field.jsonl");
    let report = import_pcap(&input, &ImportOpts::new(&out)).unwrap();
    let (_, records) = read_capture(&out);
    check_import(&report, &records, &sc);
}

#[test]
fn explicit_ports_replace_the_defaults() {
    assert!(DEFAULT_PORTS.contains(&8080) && DEFAULT_PORTS.contains(&808) && DEFAULT_PORTS.contains(&6808));
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario();
    let input = dir.path().join("field.pcap");
    write_pcap(&input, &sc.segs);
    let out = dir.path().join("only_6808.jsonl");
    let mut opts = ImportOpts::new(&out);
    opts.ports = vec![6808];
    let report = import_pcap(&input, &opts).unwrap();
    assert_eq!((report.flows_seen, report.flows_imported), (1, 1));
    let (_, records) = read_capture(&out);
    assert_eq!(decode(&bytes_of(&records, 1, Side::Gateway)), sc.expect[1].0);
}

#[test]
fn a_pcap_cut_mid_packet_keeps_every_whole_packet() {
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario();
    let input = dir.path().join("cut.pcap");
    write_pcap(&input, &sc.segs);
    let mut bytes = std::fs::read(&input).unwrap();
    bytes.truncate(bytes.len() - 30); // inside the last packet (flow B's RST)
    std::fs::write(&input, &bytes).unwrap();
    let out = dir.path().join("cut.jsonl");
    let report = import_pcap(&input, &ImportOpts::new(&out)).unwrap();
    assert!(report.truncated);
    assert_eq!(report.packets, sc.segs.len() as u64 - 1);
    let (_, records) = read_capture(&out);
    assert_eq!(bytes_of(&records, 2, Side::Gateway), sc.stream_b);
    assert!(
        !records
            .iter()
            .any(|r| r.conn == 2 && matches!(r.kind, RecordKind::Close { .. })),
        "without its RST, flow B never closed"
    );
}

#[test]
fn not_a_pcap_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("notes.txt");
    std::fs::write(&input, b"hello world").unwrap();
    let err = import_pcap(&input, &ImportOpts::new(dir.path().join("x.jsonl"))).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("not a pcap or pcapng file (starts with 68656c6c)"),
        "{err}"
    );
}
