//! The bundled captures in `captures/` and the code that makes them. They are never edited by
//! hand: `cargo test --test bundled_captures -- --ignored regenerate_bundled_captures` writes
//! them, and `bundled_captures_are_exactly_what_the_generator_makes` fails when the committed
//! files and the generator drift apart.
//!
//! - `vectors_replay.jsonl`: every `kind:"frame"` vector of tests/fixtures/jt808_vectors.json as
//!   gateway messages 200 ms apart (two messages carry two frames, one frame is split across two
//!   messages). Real bytes, not redacted: the vectors are public test data, and this is a
//!   regression fixture of real frames.
//! - `field_sample.pcap`: a synthetic tcpdump of two terminals talking JT808 over TCP to a platform
//!   on port 8080, with segments that split and coalesce frames and one retransmission.
//! - `field_pcap_redacted.jsonl`: that pcap through `import-pcap`, then `redact` with a fixed key.
//! - `unescaped_flag_device.jsonl`: the real frame of a device that did not escape a 0x7E inside
//!   it (`iss-jtframework71-unescaped-7e`) between two good frames of another real device.
//! - `recorded_conversation.jsonl`: a platform client and one terminal behind the seed's 18-byte
//!   envelope: location reports, and two exchanges recorded both ways (0x8104 serial 5 answered
//!   by 0x0104, 0x9205 serial 6 answered by a 0x1205 list in 3 packets), for `--converse`.
//! - `recorded_two_connections.jsonl`: a recorded feed whose first WebSocket connection the
//!   gateway closed with 1001 and whose second dropped without a close frame, for
//!   `keep_connections`.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use etherparse::PacketBuilder;
use jt808_harness::capture::{
    CaptureHeader, CaptureReader, CaptureWriter, ImportOpts, Payload, Record, RecordKind, RedactOpts, Side,
    import_pcap, inspect, redact,
};
use jt808_harness::codec::body::{Body, RawBody};
use jt808_harness::codec::{Message, Phone, Version};
use pcap_file::pcap::{PcapPacket, PcapWriter};

#[allow(dead_code)] // each test binary uses a part of the shared fixtures
mod support;

const VECTORS: &str = "tests/fixtures/jt808_vectors.json";
const VECTORS_REPLAY: &str = "captures/vectors_replay.jsonl";
const FIELD_PCAP: &str = "captures/field_sample.pcap";
const FIELD_REDACTED: &str = "captures/field_pcap_redacted.jsonl";
const UNESCAPED_FLAG: &str = "captures/unescaped_flag_device.jsonl";
const CONVERSATION: &str = "captures/recorded_conversation.jsonl";
const TWO_CONNECTIONS: &str = "captures/recorded_two_connections.jsonl";
/// The key the bundled field capture is redacted with. It is public, so the stand-ins in that file
/// protect nothing: the file shows what redaction does to a capture.
const BUNDLED_KEY: &str = "jt808-harness bundled capture key (public)";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ===== vectors_replay.jsonl =====

/// Vector ids that share a message with the vector after them.
const COALESCED: [&str; 2] = ["yz-0001-2013", "go-8001-2013"];
/// The vector split across two messages, and where.
const SPLIT: (&str, usize) = ("yz-0200-2013", 70);
const SPACING_US: u64 = 200_000;

fn frame_vectors() -> Vec<(String, Vec<u8>)> {
    support::vectors::all()
        .into_iter()
        .filter(|v| v.kind == "frame")
        .map(|v| (v.bytes(), v.id))
        .map(|(bytes, id)| (id, bytes))
        .collect()
}

/// The capture file's bytes.
fn vectors_replay() -> Vec<u8> {
    let vectors = frame_vectors();
    // Message payloads, each with the vector ids it carries.
    let mut messages: Vec<(Vec<String>, Vec<u8>)> = Vec::new();
    let mut join_next = false;
    for (id, bytes) in &vectors {
        if id == SPLIT.0 {
            messages.push((vec![format!("{id} (bytes ..{})", SPLIT.1)], bytes[..SPLIT.1].to_vec()));
            messages.push((vec![format!("{id} (bytes {}..)", SPLIT.1)], bytes[SPLIT.1..].to_vec()));
        } else if join_next {
            let last = messages.last_mut().unwrap();
            last.0.push(id.clone());
            last.1.extend_from_slice(bytes);
        } else {
            messages.push((vec![id.clone()], bytes.clone()));
        }
        join_next = COALESCED.contains(&id.as_str());
    }
    let mut header = CaptureHeader::new(0);
    header.source = Some(format!(
        "{VECTORS}: the {} kind:\"frame\" vectors in file order (the 18 packets of the 0x1205 set in order)",
        vectors.len()
    ));
    header.note = Some(format!(
        "Public test vectors (SmallChi/JT808, yezhihao/jt808-server, cuteLittleDevil/go-jt808 and issue \
         threads; each vector's source is in the vector file). Real bytes kept as they are, not redacted: \
         the data is already public and this is a regression fixture of real frames. Gateway messages \
         {} ms apart, one frame each, except {} and {} which share a message with the next vector, and {} \
         which is split across two messages at byte {}. vector_ids lists the vectors of each message. \
         Generated by tests/bundled_captures.rs.",
        SPACING_US / 1000,
        COALESCED[0],
        COALESCED[1],
        SPLIT.0,
        SPLIT.1
    ));
    header.extra.insert(
        "vector_ids".into(),
        serde_json::to_value(messages.iter().map(|m| m.0.join(" + ")).collect::<Vec<_>>()).unwrap(),
    );
    spaced_capture(&header, messages.into_iter().map(|(_, bytes)| bytes))
}

/// A capture of one connection whose gateway messages come `SPACING_US` apart.
fn spaced_capture(header: &CaptureHeader, messages: impl IntoIterator<Item = Vec<u8>>) -> Vec<u8> {
    let mut w = CaptureWriter::new(Vec::new(), header).unwrap();
    w.write(&Record::open(0, 1)).unwrap();
    let mut t = 0;
    for bytes in messages {
        t += SPACING_US;
        w.write(&Record::binary(t, 1, Side::Gateway, bytes)).unwrap();
    }
    w.write(&Record::close(
        t + SPACING_US,
        1,
        None,
        None,
        Some("end of capture".into()),
    ))
    .unwrap();
    w.into_inner()
}

// ===== unescaped_flag_device.jsonl =====

/// The vectors of `unescaped_flag_device.jsonl`, in order: the faulty frame between two good ones.
const UNESCAPED_FLAG_IDS: [&str; 3] = [
    "iss-traccar5331-0200-custom-0x64-0x65",
    "iss-jtframework71-unescaped-7e",
    "iss-traccar5331-0002-with-body",
];

fn unescaped_flag_device() -> Vec<u8> {
    let mut header = CaptureHeader::new(0);
    header.source = Some(format!("{VECTORS}: {}", UNESCAPED_FLAG_IDS.join(", ")));
    header.note = Some(format!(
        "A device that did not escape a 0x7E inside a 0x0200 frame (hylexus/jt-framework issue 71), \
         between two good frames of a device from traccar issue 5331; public bytes, not redacted. \
         Gateway messages {} ms apart, one frame each. Generated by tests/bundled_captures.rs.",
        SPACING_US / 1000
    ));
    spaced_capture(&header, UNESCAPED_FLAG_IDS.map(support::vectors::wire))
}

// ===== field_sample.pcap =====

const PLATFORM: [u8; 4] = [192, 0, 2, 100];
const PLATFORM_PORT: u16 = 8080;
/// Unix time of the first packet (2024-05-01 04:00:00 UTC).
const EPOCH_S: u64 = 1_714_536_000;

/// One terminal's TCP connection.
struct Conn {
    ip: [u8; 4],
    port: u16,
    version: Version,
    phone: &'static str,
    /// Next sequence numbers: terminal, platform.
    seq: [u32; 2],
    serial: [u16; 2],
}

struct Packet {
    t_ms: u64,
    bytes: Vec<u8>,
}

impl Conn {
    fn packet(&self, t_ms: u64, to_platform: bool, seq: u32, flags: &str, data: &[u8]) -> Packet {
        let (src, dst) = if to_platform {
            ((self.ip, self.port), (PLATFORM, PLATFORM_PORT))
        } else {
            ((PLATFORM, PLATFORM_PORT), (self.ip, self.port))
        };
        let mac = |ip: [u8; 4]| [2, 0, ip[0], ip[1], ip[2], ip[3]];
        let mut tcp = PacketBuilder::ethernet2(mac(src.0), mac(dst.0))
            .ipv4(src.0, dst.0, 64)
            .tcp(src.1, dst.1, seq, 65535);
        let ack = if to_platform { self.seq[1] } else { self.seq[0] };
        if flags.contains('S') {
            tcp = tcp.syn();
        }
        if flags.contains('A') {
            tcp = tcp.ack(ack);
        }
        if flags.contains('F') {
            tcp = tcp.fin();
        }
        if flags.contains('P') {
            tcp = tcp.psh();
        }
        let mut bytes = Vec::new();
        tcp.write(&mut bytes, data).unwrap();
        Packet { t_ms, bytes }
    }

    /// One data segment, advancing the sender's sequence number.
    fn send(&mut self, t_ms: u64, to_platform: bool, data: &[u8]) -> Packet {
        let d = usize::from(!to_platform);
        let p = self.packet(t_ms, to_platform, self.seq[d], "AP", data);
        self.seq[d] = self.seq[d].wrapping_add(data.len() as u32);
        p
    }

    fn open(&mut self, t_ms: u64) -> Vec<Packet> {
        let syn = self.packet(t_ms, true, self.seq[0], "S", b"");
        self.seq[0] += 1;
        let syn_ack = self.packet(t_ms + 1, false, self.seq[1], "SA", b"");
        self.seq[1] += 1;
        vec![syn, syn_ack, self.packet(t_ms + 2, true, self.seq[0], "A", b"")]
    }

    fn close(&mut self, t_ms: u64) -> Vec<Packet> {
        let fin = self.packet(t_ms, true, self.seq[0], "FA", b"");
        self.seq[0] += 1;
        let fin2 = self.packet(t_ms + 1, false, self.seq[1], "FA", b"");
        self.seq[1] += 1;
        vec![fin, fin2, self.packet(t_ms + 2, true, self.seq[0], "A", b"")]
    }

    /// A terminal (or, with `from_platform`, a platform) message to this connection's terminal.
    fn msg(&mut self, from_platform: bool, id: u16, body: Vec<u8>) -> Vec<u8> {
        self.message(from_platform, id, body).encode()
    }

    fn message(&mut self, from_platform: bool, id: u16, body: Vec<u8>) -> Message {
        let d = usize::from(from_platform);
        self.serial[d] += 1;
        Message::new(
            id,
            self.version,
            Phone::parse(self.phone).unwrap(),
            self.serial[d],
            Body::Raw(RawBody { raw: body }),
        )
    }

    /// 0x8001 to the terminal's last message.
    fn ack(&mut self, id: u16) -> Vec<u8> {
        let mut body = self.serial[0].to_be_bytes().to_vec();
        body.extend_from_slice(&id.to_be_bytes());
        body.push(0);
        self.msg(true, 0x8001, body)
    }
}

fn location(lat: u32, lng: u32, minute: u8) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&0x000C_0003u32.to_be_bytes()); // ACC on, positioned, GPS + BeiDou
    b.extend_from_slice(&lat.to_be_bytes());
    b.extend_from_slice(&lng.to_be_bytes());
    b.extend_from_slice(&[0, 12, 1, 0xF4, 0, 87]); // 12 m, 50.0 km/h, 87 degrees
    b.extend_from_slice(&[0x24, 0x05, 0x01, 0x12, minute, 0x00]);
    b.extend_from_slice(&[0x01, 4, 0, 0, 0x30, 0x39, 0x30, 1, 23, 0x31, 1, 14]); // mileage, signal, satellites
    b
}

// ===== recorded_conversation.jsonl =====

fn conversation_frame(id: u16, serial: u16, body: Vec<u8>) -> Vec<u8> {
    let phone = Phone::parse("13800000001").unwrap();
    Message::new(id, Version::V2013, phone, serial, Body::Raw(RawBody { raw: body })).encode()
}

/// See the module doc. The recorded client's commands carry serials 5 and 6; a client replayed
/// against it sends its own.
fn recorded_conversation() -> Vec<u8> {
    use jt808_harness::codec::body::{AvResource, AvResourceList};
    use jt808_harness::codec::wire::BcdTime;
    let mut header = CaptureHeader::new(18);
    header.source = Some("tests/bundled_captures.rs: a synthetic recording of a platform and one terminal".into());
    let mut w = CaptureWriter::new(Vec::new(), &header).unwrap();
    let env = |bytes: Vec<u8>| [b"ENV".to_vec(), vec![0; 15], bytes].concat();
    let gateway = |t_ms: u64, bytes: Vec<u8>| Record::binary(t_ms * 1000, 1, Side::Gateway, env(bytes));
    let client = |t_ms: u64, bytes: Vec<u8>| Record::binary(t_ms * 1000, 1, Side::Client, bytes);
    let report =
        |serial: u16, minute: u8| conversation_frame(0x0200, serial, location(39_908_692, 116_397_477, minute));
    // 0x0104: reply serial 5, 2 parameters: 0x0001 heartbeat interval 30 s, 0x0029 report interval 10 s.
    let params = [
        vec![0, 5, 2],
        vec![0, 0, 0, 1, 4, 0, 0, 0, 30],
        vec![0, 0, 0, 0x29, 4, 0, 0, 0, 10],
    ]
    .concat();
    let query = [
        vec![0],
        vec![0x20, 0x07, 0x07, 0, 0, 0],
        vec![0x20, 0x07, 0x07, 0x23, 0x59, 0x59],
        vec![0; 11],
    ]
    .concat();
    let item = |i: u8| AvResource {
        channel: 1,
        start: BcdTime([0x20, 0x07, 0x07, 0x08, i, 0]),
        end: BcdTime([0x20, 0x07, 0x07, 0x08, i + 5, 0]),
        alarm: 0,
        av_type: 0,
        stream_type: 1,
        storage_type: 1,
        file_size: 4_000_000 + u32::from(i),
    };
    let list = Body::AvResourceList(AvResourceList::new(6, (0..24).map(|i| item(i * 2)).collect()));
    let mut serial = 9;
    let packets =
        Message::new(0x1205, Version::V2013, Phone::parse("13800000001").unwrap(), 0, list).encode_packets(256, || {
            serial += 1;
            serial
        });
    assert_eq!(packets.len(), 3);
    let mut records = vec![
        Record::open(0, 1),
        gateway(500, report(1, 0)),
        gateway(1500, report(2, 1)),
        client(2000, conversation_frame(0x8104, 5, Vec::new())),
        gateway(2080, [conversation_frame(0x0104, 3, params), report(4, 2)].concat()),
        gateway(2500, report(5, 3)),
        client(3000, conversation_frame(0x9205, 6, query)),
    ];
    for (i, p) in packets.into_iter().enumerate() {
        records.push(gateway(3100 + 20 * i as u64, p));
    }
    records.push(gateway(3500, report(13, 4)));
    records.push(gateway(4500, report(14, 5)));
    records.push(Record::close(5_000_000, 1, Some(Side::Client), Some(1000), None));
    for r in records {
        w.write(&r).unwrap();
    }
    w.into_inner()
}

/// See the module doc: three reports on connection 1, closed by the gateway with 1001, then three
/// on connection 2, which ends without a close frame.
fn recorded_two_connections() -> Vec<u8> {
    let mut header = CaptureHeader::new(18);
    header.source = Some("tests/bundled_captures.rs: a synthetic recording with two connections".into());
    let mut w = CaptureWriter::new(Vec::new(), &header).unwrap();
    let env = |bytes: Vec<u8>| [b"ENV".to_vec(), vec![0; 15], bytes].concat();
    let report = |conn: u64, t_ms: u64, serial: u16| {
        let body = location(39_908_692, 116_397_477, serial as u8);
        Record::binary(
            t_ms * 1000,
            conn,
            Side::Gateway,
            env(conversation_frame(0x0200, serial, body)),
        )
    };
    let gone = Some("going away".to_string());
    let dropped = Some("ended without a close frame".to_string());
    let records = [
        Record::open(0, 1),
        report(1, 500, 1),
        report(1, 1500, 2),
        report(1, 2500, 3),
        Record::close(3_000_000, 1, Some(Side::Gateway), Some(1001), gone.clone()),
        Record::close(3_000_000, 1, Some(Side::Client), Some(1001), gone),
        Record::open(3_400_000, 2),
        report(2, 3500, 4),
        report(2, 4500, 5),
        report(2, 5500, 6),
        Record::close(6_000_000, 2, Some(Side::Gateway), None, dropped),
    ];
    for r in records {
        w.write(&r).unwrap();
    }
    w.into_inner()
}

fn register(version: Version, terminal_id: &[u8], plate: &[u8]) -> Vec<u8> {
    support::frames::Register {
        province: 44,
        city: 0x012C, // Guangdong, Shenzhen
        maker: b"70111",
        model: b"JT-T808-G4",
        terminal_id,
        plate_color: 2,
        plate,
    }
    .body(version)
}

fn register_response(serial: u16, code: &[u8]) -> Vec<u8> {
    let mut b = serial.to_be_bytes().to_vec();
    b.push(0);
    b.extend_from_slice(code);
    b
}

/// The pcap file's bytes.
fn field_sample_pcap() -> Vec<u8> {
    let mut a = Conn {
        ip: [198, 51, 100, 21],
        port: 40_112,
        version: Version::V2013,
        phone: "13812345678",
        seq: [0x1000_0000, 0x7000_0000],
        serial: [0, 0],
    };
    let mut b = Conn {
        ip: [198, 51, 100, 22],
        port: 40_577,
        version: Version::V2019,
        phone: "14798765432",
        seq: [0xFFFF_F000, 0x2000_0000], // crosses the 2^32 wrap
        serial: [0, 0],
    };
    let mut p: Vec<Packet> = Vec::new();
    // Terminal A (2013): register with a plate, auth, reports along a road, heartbeats, a photo.
    p.extend(a.open(0));
    // Plate 粤B·D12345 in GBK.
    let plate_a = [0xD4, 0xC1, b'B', b'D', b'1', b'2', b'3', b'4', b'5'];
    let f = a.msg(false, 0x0100, register(Version::V2013, b"A1000701", &plate_a));
    p.push(a.send(10, true, &f));
    let f = a.msg(true, 0x8100, register_response(a.serial[0], b"7A3F09C2B1"));
    p.push(a.send(40, false, &f));
    let f = a.msg(false, 0x0102, b"7A3F09C2B1".to_vec());
    p.push(a.send(80, true, &f));
    let f = a.ack(0x0102);
    p.push(a.send(95, false, &f));
    let route = [
        (22_543_096, 114_057_865),
        (22_543_512, 114_058_930),
        (22_543_980, 114_060_101),
        (22_544_371, 114_061_254),
    ];
    // Report 1: whole. Report 2: split across two segments. Report 3 + heartbeat: one segment.
    let r1 = a.msg(false, 0x0200, location(route[0].0, route[0].1, 0x00));
    p.push(a.send(1_000, true, &r1));
    let ack = a.ack(0x0200);
    p.push(a.send(1_020, false, &ack));
    let r2 = a.msg(false, 0x0200, location(route[1].0, route[1].1, 0x01));
    p.push(a.send(31_000, true, &r2[..25]));
    p.push(a.send(31_004, true, &r2[25..]));
    let ack = a.ack(0x0200);
    p.push(a.send(31_030, false, &ack));
    let r3 = a.msg(false, 0x0200, location(route[2].0, route[2].1, 0x02));
    let hb = a.msg(false, 0x0002, vec![]);
    let both = [r3, hb].concat();
    let seq_before = a.seq[0];
    p.push(a.send(61_000, true, &both));
    let ack = a.ack(0x0002);
    p.push(a.send(61_025, false, &ack));
    // The coalesced segment again: a retransmission (the platform's ACK was lost).
    p.push(a.packet(61_400, true, seq_before, "AP", &both));
    // A photo: 0x0801 in 768-byte packets, the location block in packet 1.
    let mut media = vec![0, 0, 0, 1, 0, 0, 1, 1]; // media id 1, image, JPEG, event 1, channel 1
    media.extend(&location(route[3].0, route[3].1, 0x03)[..28]);
    media.extend([0xFF, 0xD8, 0xFF, 0xE0]);
    media.extend((0..1900u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    media.extend([0xFF, 0xD9]);
    let mut serial = a.serial[0];
    let packets = a.message(false, 0x0801, media).encode_packets(768, || {
        serial += 1;
        serial
    });
    a.serial[0] = serial;
    for (i, pk) in packets.iter().enumerate() {
        p.push(a.send(62_000 + 40 * i as u64, true, pk));
    }
    let mut resp = 1u32.to_be_bytes().to_vec(); // 0x8800: media id, no retransmit
    resp.push(0);
    let f = a.msg(true, 0x8800, resp);
    p.push(a.send(62_300, false, &f));
    let r4 = a.msg(false, 0x0200, location(route[3].0, route[3].1, 0x03));
    p.push(a.send(91_000, true, &r4));
    let ack = a.ack(0x0200);
    p.push(a.send(91_020, false, &ack));
    p.extend(a.close(95_000));

    // Terminal B (2019): register with a VIN, auth with IMEI, reports, heartbeat, an FTP order.
    p.extend(b.open(500));
    let f = b.msg(
        false,
        0x0100,
        register(Version::V2019, b"B2000000000000000000000000042", b"LFV3A24G8K3012345"),
    );
    p.push(b.send(520, true, &f));
    let f = b.msg(true, 0x8100, register_response(b.serial[0], b"Q9X8W7"));
    p.push(b.send(560, false, &f));
    let mut auth = vec![6];
    auth.extend_from_slice(b"Q9X8W7");
    auth.extend_from_slice(b"867530912345678");
    auth.extend_from_slice(b"V2.3.1_20240301\0\0\0\0\0");
    let f = b.msg(false, 0x0102, auth);
    p.push(b.send(600, true, &f));
    let f = b.ack(0x0102);
    p.push(b.send(615, false, &f));
    for (k, t) in [(0usize, 2_000u64), (1, 32_000), (2, 62_500)] {
        let f = b.msg(
            false,
            0x0200,
            location(31_230_416 + 700 * k as u32, 121_473_701 + 900 * k as u32, k as u8),
        );
        p.push(b.send(t, true, &f));
        let f = b.ack(0x0200);
        p.push(b.send(t + 18, false, &f));
    }
    let f = b.msg(false, 0x0002, vec![]);
    p.push(b.send(47_000, true, &f));
    let f = b.ack(0x0002);
    p.push(b.send(47_015, false, &f));
    let mut ftp = Vec::new();
    for (s, port) in [
        (b"ftp.fleet-example.cn".as_slice(), Some(2121u16)),
        (b"dvr_up", None),
        (b"s3cr3t!", None),
        (b"/dvr/B/", None),
    ] {
        ftp.push(s.len() as u8);
        ftp.extend_from_slice(s);
        if let Some(port) = port {
            ftp.extend_from_slice(&port.to_be_bytes());
        }
    }
    ftp.push(1);
    ftp.extend_from_slice(&[0x24, 0x05, 0x01, 0x11, 0, 0, 0x24, 0x05, 0x01, 0x12, 0, 0]);
    ftp.extend_from_slice(&[0; 8]);
    ftp.extend_from_slice(&[0, 1, 1, 1]);
    let f = b.msg(true, 0x9206, ftp);
    p.push(b.send(70_000, false, &f));
    let mut reply = b.serial[1].to_be_bytes().to_vec();
    reply.extend_from_slice(&[0x92, 0x06, 0]);
    let f = b.msg(false, 0x0001, reply);
    p.push(b.send(70_040, true, &f));
    p.extend(b.close(96_000));

    p.sort_by_key(|x| x.t_ms); // stable: packets of one instant keep their order
    let mut w = PcapWriter::new(Vec::new()).unwrap();
    for x in &p {
        let ts = Duration::from_secs(EPOCH_S) + Duration::from_millis(x.t_ms);
        w.write_packet(&PcapPacket::new(ts, x.bytes.len() as u32, &x.bytes))
            .unwrap();
    }
    w.into_writer()
}

/// The original phones of the field sample (to check none survives).
const FIELD_PHONES: [&str; 2] = ["13812345678", "14798765432"];

/// Writes the pcap into `dir`, imports it and redacts it; returns the redacted capture's bytes.
fn field_pcap_redacted(dir: &Path) -> Vec<u8> {
    let pcap = dir.join("field_sample.pcap");
    std::fs::write(&pcap, field_sample_pcap()).unwrap();
    let imported = dir.join("field_sample.jsonl");
    let mut opts = ImportOpts::new(&imported);
    opts.ports = vec![PLATFORM_PORT];
    import_pcap(&pcap, &opts).unwrap();
    let out = dir.join("field_pcap_redacted.jsonl");
    let mut ropts = RedactOpts::new(BUNDLED_KEY);
    ropts.note = Some(format!(
        "Synthetic field capture: {FIELD_PCAP} is generated by tests/bundled_captures.rs (two terminals, 2013 \
         and 2019, talking JT808 over TCP to a platform on port 8080: 0x0100 register with plate or VIN, \
         0x8100, 0x0102 auth (2019 with IMEI), 0x0200 reports, 0x0002 heartbeats, a 0x0801 photo in 3 \
         packets, 0x8001/0x8800 replies, a 0x9206 FTP order; TCP segments split one frame and coalesce two, \
         one segment is retransmitted), imported with `import-pcap --port 8080`, then redacted with \
         `redact --key '{BUNDLED_KEY}'`. The key is public: the stand-ins protect nothing here, the file \
         shows what redaction does."
    ));
    redact(&imported, &out, &ropts).unwrap();
    std::fs::read(&out).unwrap()
}

#[test]
#[ignore = "writes captures/; run it after changing the generator"]
fn regenerate_bundled_captures() {
    let dir = tempfile::tempdir().unwrap();
    let captures = root().join("captures");
    std::fs::create_dir_all(&captures).unwrap();
    std::fs::write(root().join(VECTORS_REPLAY), vectors_replay()).unwrap();
    let pcap = field_sample_pcap();
    assert!(pcap.len() < 64 << 10, "the pcap is small enough to commit");
    std::fs::write(root().join(FIELD_PCAP), pcap).unwrap();
    std::fs::write(root().join(FIELD_REDACTED), field_pcap_redacted(dir.path())).unwrap();
    std::fs::write(root().join(UNESCAPED_FLAG), unescaped_flag_device()).unwrap();
    std::fs::write(root().join(CONVERSATION), recorded_conversation()).unwrap();
    std::fs::write(root().join(TWO_CONNECTIONS), recorded_two_connections()).unwrap();
}

#[test]
fn bundled_captures_are_exactly_what_the_generator_makes() {
    let dir = tempfile::tempdir().unwrap();
    let read = |p: &str| {
        std::fs::read(root().join(p)).unwrap_or_else(|e| {
            panic!("{p}: {e}; run cargo test --test bundled_captures -- --ignored regenerate_bundled_captures")
        })
    };
    let hint = "captures/ drifted from tests/bundled_captures.rs: run \
                cargo test --test bundled_captures -- --ignored regenerate_bundled_captures";
    assert!(read(VECTORS_REPLAY) == vectors_replay(), "{VECTORS_REPLAY}: {hint}");
    assert!(read(FIELD_PCAP) == field_sample_pcap(), "{FIELD_PCAP}: {hint}");
    assert!(
        read(FIELD_REDACTED) == field_pcap_redacted(dir.path()),
        "{FIELD_REDACTED}: {hint}"
    );
    assert!(
        read(UNESCAPED_FLAG) == unescaped_flag_device(),
        "{UNESCAPED_FLAG}: {hint}"
    );
    assert!(read(CONVERSATION) == recorded_conversation(), "{CONVERSATION}: {hint}");
    assert!(
        read(TWO_CONNECTIONS) == recorded_two_connections(),
        "{TWO_CONNECTIONS}: {hint}"
    );
}

#[test]
fn vectors_replay_decodes_every_frame_vector() {
    let s = inspect(root().join(VECTORS_REPLAY)).unwrap();
    let vectors = frame_vectors();
    let g = &s.gateway;
    assert_eq!(g.rejected(), 0, "{:?}", g.rejected_by_check);
    assert_eq!(g.skipped_bytes, 0);
    // Two groups: the 18-packet 0x1205 and the 2-packet 0x0104; each comes out as one message.
    assert_eq!(g.groups_completed, 2);
    assert_eq!(g.messages(), vectors.len() as u64 - 18 - 2 + 2);
    assert_eq!(
        g.messages_by_id.get("0x1205"),
        Some(&2),
        "the 18-packet set and go-1205-2013"
    );
    // Messages: one per vector, minus the coalesced ones, plus the split one.
    assert_eq!(g.ws_messages, vectors.len() as u64 - 2 + 1);
    assert_eq!(s.duration_us, (g.ws_messages + 1) * SPACING_US);
}

#[test]
fn the_redacted_field_capture_keeps_every_message_and_no_phone() {
    let path = root().join(FIELD_REDACTED);
    let s = inspect(&path).unwrap();
    let ids = |m: &std::collections::BTreeMap<String, u64>| m.keys().cloned().collect::<BTreeSet<_>>();
    let want_gateway = ["0x0001", "0x0002", "0x0100", "0x0102", "0x0200", "0x0801"];
    let want_client = ["0x8001", "0x8100", "0x8800", "0x9206"];
    assert_eq!(
        ids(&s.gateway.messages_by_id),
        want_gateway.iter().map(|s| s.to_string()).collect()
    );
    assert_eq!(
        ids(&s.client.messages_by_id),
        want_client.iter().map(|s| s.to_string()).collect()
    );
    assert_eq!(s.gateway.messages_by_id["0x0200"], 7);
    assert_eq!(s.gateway.groups_completed, 1, "the photo");
    assert_eq!((s.gateway.rejected(), s.client.rejected()), (0, 0));
    assert_eq!(s.connections, 2);
    assert_eq!(s.terminals.len(), 2);
    for phone in FIELD_PHONES {
        assert!(!s.terminals.contains(phone));
    }
    // The pcap's split, coalesced and retransmitted segments survive import and redaction: the
    // split report is still in two messages, and the retransmission was dropped by the import.
    let records: Vec<Record> = CaptureReader::open(&path).unwrap().map(|r| r.unwrap()).collect();
    let text = std::fs::read_to_string(&path).unwrap();
    for phone in FIELD_PHONES {
        let mut bcd = Vec::new();
        Phone::parse(phone).unwrap().write_bcd(6, &mut bcd);
        assert!(!text.contains(&hex::encode(bcd)), "{phone} survives");
    }
    let short = records
        .iter()
        .filter(|r| matches!(&r.kind, RecordKind::Message { payload: Payload::Binary(b), .. } if b.len() < 30))
        .count();
    assert!(short >= 1, "the first half of the split report stays its own message");
    let header: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(header["source"], "pcap field_sample.pcap");
    assert!(header["note"].as_str().unwrap().contains("redact --key"));
    // The raw sample is there too and still imports.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.jsonl");
    let report = import_pcap(root().join(FIELD_PCAP), &ImportOpts::new(&out)).unwrap();
    assert_eq!(report.retransmissions_dropped, 1);
    assert_eq!(report.flows_imported, 2);
    let _ = File::open(&out).unwrap();
}
