//! Redaction end to end: a capture with three terminals (2013 and 2019 headers, one SIM in both
//! forms), every kind of personal field, frames split across messages and coalesced in one, a
//! sub-packaged 0x0801 and a sub-packaged 0x0704 (held for its group), an 18-byte envelope, is
//! redacted; the output is read back with the real decoder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use jt808_harness::capture::{
    CaptureHeader, CaptureReader, CaptureWriter, Payload, Record, RecordKind, RedactError, RedactOpts, RedactReport,
    Side, inspect, redact,
};
use jt808_harness::codec::{DecodeEvent, Decoder, DecoderConfig, Message, Phone, Version};

#[allow(dead_code)] // each test binary uses a part of the shared fixtures
mod support;

const PREFIX: usize = 18;
const KEY: &[u8] = b"test key: keep me secret";

const PHONE_A: &str = "13800138000"; // 2013
const PHONE_B: &str = "13900139001"; // 2019, and once in a 2013 header
const PHONE_C: &str = "015912345678"; // 2013, a leading zero

/// Original positions (lat, lng) in 10^-6 degrees. One latitude is 0x017E7D7E: its bytes need
/// escaping on the wire.
const POSITIONS: [(u32, u32); 6] = [
    (22_543_096, 114_057_865),
    (0x017E_7D7E, 113_264_385),
    (31_230_416, 121_473_701),
    (39_904_200, 116_407_396),
    (30_572_815, 104_066_801),
    (23_129_110, 113_264_385),
];

fn frame(id: u16, version: Version, phone: &str, serial: u16, body: Vec<u8>) -> Vec<u8> {
    support::frames::raw_frame(id, version, phone, serial, &body)
}

fn message(id: u16, version: Version, phone: &str, serial: u16, body: Vec<u8>) -> Message {
    support::frames::raw_message(id, version, phone, serial, &body)
}

/// A 0x0200 basic block (28 bytes) at a position.
fn location((lat, lng): (u32, u32)) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0u32.to_be_bytes()); // alarm
    b.extend_from_slice(&0x0000_0003u32.to_be_bytes()); // ACC on, positioned
    b.extend_from_slice(&lat.to_be_bytes());
    b.extend_from_slice(&lng.to_be_bytes());
    b.extend_from_slice(&[0, 50, 0, 120, 0, 90]); // altitude, speed, direction
    b.extend_from_slice(&[0x24, 0x05, 0x01, 0x12, 0x00, 0x00]); // time
    b
}

/// 0x0100: province, city, maker, model, terminal id, colour, plate (widths per layout).
fn register(version: Version, terminal_id: &[u8], plate: &[u8]) -> Vec<u8> {
    support::frames::Register {
        province: 44,
        city: 3,
        maker: b"MAKER",
        model: b"MODEL-X",
        terminal_id,
        plate_color: 1,
        plate,
    }
    .body(version)
}

/// Plate "粤B12345" in GBK.
const PLATE: &[u8] = &[0xD4, 0xC1, b'B', b'1', b'2', b'3', b'4', b'5'];
const VIN: &[u8] = b"LSVAU2180N2183294";
const AUTH_A: &[u8] = b"AUTH-A-SECRET";
const AUTH_B: &[u8] = b"AUTH-B-SECRET";
const IMEI: &[u8] = b"860123456789012";
const FTP: [&[u8]; 3] = [b"ftp.example.com", b"ftpuser", b"hunter2"];

fn ftp_command() -> Vec<u8> {
    let mut b = Vec::new();
    b.push(FTP[0].len() as u8);
    b.extend_from_slice(FTP[0]);
    b.extend_from_slice(&21u16.to_be_bytes());
    for s in [FTP[1], FTP[2], b"/upload/".as_slice()] {
        b.push(s.len() as u8);
        b.extend_from_slice(s);
    }
    b.push(1);
    b.extend_from_slice(&[0x24, 0x05, 0x01, 0, 0, 0, 0x24, 0x05, 0x01, 0x23, 0x59, 0x59]);
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&[0, 1, 1, 1]);
    b
}

/// 0x0704: count, type, items of (len WORD + 0x0200 body).
fn batch(positions: &[(u32, u32)]) -> Vec<u8> {
    let mut b = (positions.len() as u16).to_be_bytes().to_vec();
    b.push(1);
    for &p in positions {
        let item = location(p);
        b.extend_from_slice(&(item.len() as u16).to_be_bytes());
        b.extend(item);
    }
    b
}

fn envelope(i: usize) -> Vec<u8> {
    // An envelope that names the terminal, as some platforms' do.
    let mut e = format!("ENV{PHONE_A}").into_bytes();
    e.push(i as u8);
    e.resize(PREFIX, 0);
    e
}

struct Built {
    records: Vec<Record>,
}

/// The test capture. Gateway messages of conn 1 are cut at sizes that split frames and coalesce
/// others; conn 2 and 3 have one frame (or packet) per message.
fn build() -> Built {
    let v13 = Version::V2013;
    let v19 = Version::V2019;
    let mut media = vec![0, 0, 0, 7, 0, 0, 1, 1];
    media.extend(location(POSITIONS[2]));
    media.extend((0..2000u32).map(|i| (i * 7) as u8));
    let mut serial = 100u16;
    let media_packets = message(0x0801, v13, PHONE_A, 0, media).encode_packets(512, || {
        serial += 1;
        serial
    });
    assert!(media_packets.len() >= 4);

    let mut a_stream: Vec<u8> = Vec::new();
    for f in [
        frame(0x0100, v13, PHONE_A, 1, register(v13, b"TID0001", PLATE)),
        frame(0x0102, v13, PHONE_A, 2, AUTH_A.to_vec()),
        frame(0x0200, v13, PHONE_A, 3, location(POSITIONS[0])),
        frame(0x0200, v13, PHONE_A, 4, location(POSITIONS[1])),
        frame(0x0002, v13, PHONE_A, 5, vec![]),
        frame(0x0704, v13, PHONE_A, 6, batch(&POSITIONS[3..5])),
    ] {
        a_stream.extend(f);
    }
    for p in &media_packets {
        a_stream.extend(p);
    }
    a_stream.extend(frame(0x0200, v13, PHONE_A, 200, location(POSITIONS[5])));

    let mut records = vec![Record::open(0, 1)];
    let mut t = 1_000u64;
    let mut at = 0;
    // Cut sizes: splits frames across messages, several frames per message.
    for (i, size) in [37usize, 120, 5, 300, 64, 700, 1].iter().cycle().enumerate() {
        if at >= a_stream.len() {
            break;
        }
        let end = (at + size).min(a_stream.len());
        let mut payload = envelope(i);
        payload.extend_from_slice(&a_stream[at..end]);
        records.push(Record::binary(t, 1, Side::Gateway, payload));
        at = end;
        t += 250;
        if i == 2 {
            // Platform replies on the same connection.
            let mut reply = vec![0, 1, 0];
            reply.extend_from_slice(AUTH_A);
            let mut both = frame(0x8100, v13, PHONE_A, 1, reply);
            both.extend(frame(0x8001, v13, PHONE_A, 2, vec![0, 2, 0x01, 0x02, 0]));
            records.push(Record::binary(t, 1, Side::Client, both));
            records.push(Record::binary(
                t,
                1,
                Side::Client,
                frame(0x9206, v13, PHONE_A, 3, ftp_command()),
            ));
            records.push(Record::message(t, 1, Side::Client, Payload::Text("hello".into())));
        }
    }
    records.push(Record::close(t, 1, Some(Side::Client), Some(1000), None));

    // Conn 2: terminal B with 2019 headers, a sub-packaged 0x0704 (40 items), one 2013 frame.
    t += 1_000;
    records.push(Record::open(t, 2));
    let mut auth = vec![AUTH_B.len() as u8];
    auth.extend_from_slice(AUTH_B);
    auth.extend_from_slice(IMEI);
    auth.extend(support::frames::padded(b"SW1.0", 20));
    let many: Vec<(u32, u32)> = (0..40).map(|i| POSITIONS[i % POSITIONS.len()]).collect();
    let mut serial = 300u16;
    let batch_packets = message(0x0704, v19, PHONE_B, 0, batch(&many)).encode_packets(500, || {
        serial += 1;
        serial
    });
    assert!(batch_packets.len() >= 3);
    let mut frames = vec![
        frame(0x0100, v19, PHONE_B, 1, register(v19, b"TERMINAL-ID-B-0001", VIN)),
        frame(0x0102, v19, PHONE_B, 2, auth),
    ];
    frames.extend(batch_packets);
    frames.push(frame(0x0200, v13, PHONE_B, 3, location(POSITIONS[4])));
    for (i, f) in frames.into_iter().enumerate() {
        t += 200;
        let mut payload = envelope(i);
        payload.extend(f);
        records.push(Record::binary(t, 2, Side::Gateway, payload));
    }
    t += 200;
    let mut reply = vec![0, 1, 0];
    reply.extend_from_slice(AUTH_B);
    records.push(Record::binary(
        t,
        2,
        Side::Client,
        frame(0x8100, v19, PHONE_B, 1, reply),
    ));

    // Conn 3: terminal C, heartbeat and a location.
    t += 200;
    records.push(Record::open(t, 3));
    for (i, f) in [
        frame(0x0002, v13, PHONE_C, 1, vec![]),
        frame(0x0200, v13, PHONE_C, 2, location(POSITIONS[0])),
    ]
    .into_iter()
    .enumerate()
    {
        t += 200;
        let mut payload = envelope(i);
        payload.extend(f);
        records.push(Record::binary(t, 3, Side::Gateway, payload));
    }
    records.push(Record::close(t + 1, 3, None, None, Some("eof".into())));
    Built { records }
}

fn write_capture(path: &Path, records: &[Record]) {
    let mut header = CaptureHeader::new(PREFIX);
    header.source = Some("tests/redact.rs".into());
    let mut w = CaptureWriter::create(path, &header).unwrap();
    for r in records {
        w.write(r).unwrap();
    }
}

fn read(path: &Path) -> (CaptureHeader, Vec<Record>) {
    let mut reader = CaptureReader::open(path).unwrap();
    let header = reader.header().clone();
    let records = reader.by_ref().map(|r| r.unwrap()).collect();
    (header, records)
}

/// Every message decoded from a capture, per connection and side, as JSON.
fn decode_all(records: &[Record], prefix: usize) -> Vec<serde_json::Value> {
    let mut decoders: BTreeMap<(u64, Side), Decoder> = BTreeMap::new();
    let mut out = Vec::new();
    let mut rejected = 0;
    for r in records {
        if let RecordKind::Message {
            from,
            payload: Payload::Binary(b),
        } = &r.kind
        {
            let skip = if *from == Side::Gateway { prefix } else { 0 };
            let d = decoders
                .entry((r.conn, *from))
                .or_insert_with(|| Decoder::new(DecoderConfig::default()));
            d.push(&b[skip..], Duration::from_micros(r.t_us), |ev| match ev {
                DecodeEvent::Message(m) => out.push(serde_json::to_value(&m).unwrap()),
                DecodeEvent::Rejected(_) => rejected += 1,
                _ => {}
            });
        }
    }
    assert_eq!(rejected, 0, "every frame decodes");
    out
}

/// Every number under a key named `lat` or `lng`, anywhere in the JSON.
fn coords(v: &serde_json::Value, out: &mut Vec<(String, u64)>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                if (k == "lat" || k == "lng")
                    && let Some(n) = x.as_u64()
                {
                    out.push((k.clone(), n));
                }
                coords(x, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| coords(x, out)),
        _ => {}
    }
}

fn bcd_hex(phone: &str, width: usize) -> String {
    let mut b = Vec::new();
    Phone::parse(phone).unwrap().write_bcd(width, &mut b);
    hex::encode(b)
}

fn run(dir: &Path, opts: &RedactOpts) -> (RedactReport, Vec<Record>, std::path::PathBuf) {
    let input = dir.join("in.jsonl");
    if !input.exists() {
        write_capture(&input, &build().records);
    }
    let out = dir.join(format!("out-{}.jsonl", hex::encode(&opts.key[..4])));
    let report = redact(&input, &out, opts).unwrap();
    let (_, records) = read(&out);
    (report, records, out)
}

/// The hex of every binary payload, record by record.
fn binary_hex(records: &[Record]) -> impl Iterator<Item = String> + '_ {
    records.iter().filter_map(|r| match &r.kind {
        RecordKind::Message {
            payload: Payload::Binary(b),
            ..
        } => Some(hex::encode(b)),
        _ => None,
    })
}

#[test]
fn no_original_phone_or_position_survives() {
    let dir = tempfile::tempdir().unwrap();
    let (report, records, _) = run(dir.path(), &RedactOpts::new(KEY));
    let all_hex: Vec<String> = binary_hex(&records).collect();
    for phone in [PHONE_A, PHONE_B, PHONE_C] {
        for width in [6, 10] {
            let needle = bcd_hex(phone, width);
            assert!(
                all_hex.iter().all(|h| !h.contains(&needle)),
                "BCD {needle} of {phone} survives"
            );
        }
        // The envelope named terminal A in ASCII: zeroed.
        let ascii = hex::encode(phone.as_bytes());
        assert!(all_hex.iter().all(|h| !h.contains(&ascii)), "{phone} as ASCII survives");
    }

    let messages = decode_all(&records, PREFIX);
    let mut found = Vec::new();
    for m in &messages {
        coords(m, &mut found);
    }
    // 3 in 0x0200 of A, 1 in 0x0801, 2 in A's 0x0704, 40 in B's batch, 1 in B's 0x0200, 1 in C's.
    assert_eq!(found.len(), 2 * 48, "every position decodes after redaction");
    for (k, v) in &found {
        for (lat, lng) in POSITIONS {
            let orig = if k == "lat" { lat } else { lng };
            assert_ne!(*v, u64::from(orig), "original {k} {orig} survives");
        }
    }
    assert_eq!(report.positions, 48);
    let phones: BTreeSet<String> = messages
        .iter()
        .map(|m| m["phone"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        phones.len(),
        3,
        "three terminals, B's 2013 and 2019 forms map together: {phones:?}"
    );
    for p in &phones {
        assert!(![PHONE_A, PHONE_B, "15912345678"].contains(&p.as_str()));
    }
    let lens: BTreeSet<usize> = phones.iter().map(String::len).collect();
    assert_eq!(lens, BTreeSet::from([11]), "stand-ins keep the digit count");
}

#[test]
fn every_frame_still_decodes_and_groups_still_reassemble() {
    let dir = tempfile::tempdir().unwrap();
    let (report, _, out) = run(dir.path(), &RedactOpts::new(KEY));
    let before = inspect(dir.path().join("in.jsonl")).unwrap();
    let after = inspect(&out).unwrap();
    for (b, a) in [(&before.gateway, &after.gateway), (&before.client, &after.client)] {
        assert_eq!(a.messages_by_id, b.messages_by_id);
        assert_eq!(a.groups_completed, b.groups_completed);
        assert_eq!(a.rejected(), 0);
        assert_eq!(a.skipped_bytes, 0);
    }
    assert_eq!(before.gateway.groups_completed, 2, "0x0801 and 0x0704 came in packets");
    assert_eq!(after.terminals.len(), before.terminals.len());
    assert!(after.terminals.is_disjoint(&before.terminals));
    assert_eq!(
        report.groups_rewritten, 1,
        "the 0x0704 group was held and rewritten whole"
    );
    assert_eq!(report.bytes_left_out, 0);
    assert_eq!(report.terminals, 3);
    assert_eq!(report.prefixes_zeroed, before.gateway.ws_messages);
}

#[test]
fn same_input_and_key_give_identical_bytes_and_another_key_other_stand_ins() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    write_capture(&input, &build().records);
    let opts = RedactOpts::new(KEY);
    redact(&input, dir.path().join("1.jsonl"), &opts).unwrap();
    redact(&input, dir.path().join("2.jsonl"), &opts).unwrap();
    let one = std::fs::read(dir.path().join("1.jsonl")).unwrap();
    assert_eq!(one, std::fs::read(dir.path().join("2.jsonl")).unwrap());

    redact(
        &input,
        dir.path().join("3.jsonl"),
        &RedactOpts::new(b"another key".as_slice()),
    )
    .unwrap();
    let terminals = |p: &str| inspect(dir.path().join(p)).unwrap().terminals;
    assert!(terminals("1.jsonl").is_disjoint(&terminals("3.jsonl")));
    let (h1, _) = read(&dir.path().join("1.jsonl"));
    let (h3, _) = read(&dir.path().join("3.jsonl"));
    assert_ne!(h1.extra["redacted"]["key_id"], h3.extra["redacted"]["key_id"]);
}

#[test]
fn plates_auth_codes_imei_and_ftp_credentials_are_blanked() {
    let dir = tempfile::tempdir().unwrap();
    let (report, records, _) = run(dir.path(), &RedactOpts::new(KEY));
    let text = serde_json::to_string(&decode_all(&records, PREFIX)).unwrap();
    let all_hex: String = binary_hex(&records).collect();
    for secret in [
        PLATE,
        VIN,
        AUTH_A,
        AUTH_B,
        IMEI,
        FTP[0],
        FTP[1],
        FTP[2],
        b"TID0001",
        b"TERMINAL-ID-B",
    ] {
        assert!(
            !all_hex.contains(&hex::encode(secret)),
            "{} survives",
            String::from_utf8_lossy(secret)
        );
    }
    assert!(text.contains("\"000000000000000\""), "IMEI blanked with zeros: {text}");
    assert!(text.contains("/upload/"), "the upload path is kept");
    assert!(text.contains("MODEL-X"), "fields that name no one are kept");
    assert_eq!(
        (
            report.plates,
            report.terminal_ids,
            report.auth_codes,
            report.imeis,
            report.ftp_fields
        ),
        (2, 2, 4, 1, 3)
    );
}

#[test]
fn timing_and_record_count_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (report, records, _) = run(dir.path(), &RedactOpts::new(KEY));
    let (_, original) = read(&dir.path().join("in.jsonl"));
    assert_eq!(records.len(), original.len());
    assert_eq!(report.records, original.len() as u64);
    for (a, b) in records.iter().zip(&original) {
        assert_eq!((a.t_us, a.conn), (b.t_us, b.conn));
        match (&a.kind, &b.kind) {
            (
                RecordKind::Message {
                    from: fa,
                    payload: Payload::Binary(pa),
                },
                RecordKind::Message {
                    from: fb,
                    payload: Payload::Binary(pb),
                },
            ) => {
                assert_eq!(fa, fb);
                // Sizes differ only by escapes (moved coordinates, new check codes): every message
                // still carries bytes, so every split of a frame across messages is still there.
                assert_eq!(pa.is_empty(), pb.is_empty());
                assert!(
                    pa.len().abs_diff(pb.len()) * 20 <= pb.len(),
                    "{} vs {}",
                    pa.len(),
                    pb.len()
                );
            }
            (x, y) => assert_eq!(x, y, "events and text pass unchanged"),
        }
    }
}

/// A small capture: heartbeat, a frame with a broken check code, garbage, a location.
fn damaged(dir: &Path) -> std::path::PathBuf {
    let mut bad = frame(0x0200, Version::V2013, PHONE_A, 2, location(POSITIONS[0]));
    let n = bad.len();
    bad[n - 2] ^= 0x55;
    let mut mixed = bad.clone();
    mixed.extend_from_slice(b"junk");
    mixed.extend(frame(0x0200, Version::V2013, PHONE_A, 3, location(POSITIONS[1])));
    let mut header = CaptureHeader::new(0);
    header.note = Some("damaged".into());
    let path = dir.join("damaged.jsonl");
    let mut w = CaptureWriter::create(&path, &header).unwrap();
    w.write(&Record::binary(
        0,
        1,
        Side::Gateway,
        frame(0x0002, Version::V2013, PHONE_A, 1, vec![]),
    ))
    .unwrap();
    w.write(&Record::binary(10, 1, Side::Gateway, mixed)).unwrap();
    path
}

#[test]
fn an_undecodable_frame_is_left_out_and_counted_or_kept_raw_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let input = damaged(dir.path());
    let out = dir.path().join("out.jsonl");
    let report = redact(&input, &out, &RedactOpts::new(KEY)).unwrap();
    assert_eq!(report.undecodable_frames.get("bad_checksum"), Some(&1));
    assert_eq!(report.bytes_outside_frames, 4);
    assert_eq!(report.frames, 2);
    assert_eq!(report.bytes_kept_raw, 0);
    let s = inspect(&out).unwrap();
    assert_eq!(s.records, 2);
    assert_eq!(s.gateway.messages(), 2);
    assert_eq!((s.gateway.rejected(), s.gateway.skipped_bytes), (0, 0));

    let mut opts = RedactOpts::new(KEY);
    opts.keep_undecodable = true;
    let report = redact(&input, &out, &opts).unwrap();
    assert!(report.bytes_kept_raw > 4);
    assert!(report.to_string().contains("may still carry personal data"));
    let s = inspect(&out).unwrap();
    assert_eq!(
        s.gateway.rejected_by_check.get("bad_checksum"),
        Some(&1),
        "kept as it came"
    );
    assert_eq!(s.gateway.messages(), 2);
    let (header, _) = read(&out);
    assert_eq!(header.extra["redacted"]["undecodable_kept"], true);
}

#[test]
fn a_damaged_input_line_is_an_error_naming_it_after_the_records_before_it_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.jsonl");
    write_capture(&good, &build().records[..6]);
    let text = std::fs::read_to_string(&good).unwrap();
    let out = dir.path().join("out.jsonl");

    // A corrupt line 5 (the header is line 1).
    let mut lines: Vec<&str> = text.lines().collect();
    lines[4] = r#"{"t_us":5,"conn":1,"from":"gateway","hex":"zz"}"#;
    let corrupt = dir.path().join("corrupt.jsonl");
    std::fs::write(&corrupt, lines.join("\n") + "\n").unwrap();
    let err = redact(&corrupt, &out, &RedactOpts::new(KEY)).unwrap_err();
    assert!(matches!(err, RedactError::Input { written: 3, .. }), "{err:?}");
    assert!(err.to_string().contains("corrupt.jsonl:5:"), "{err}");
    let (_, written) = read(&out);
    assert_eq!(written.len(), 3);

    // The last line cut mid-write.
    let cut = dir.path().join("cut.jsonl");
    std::fs::write(&cut, &text[..text.len() - 20]).unwrap();
    let err = redact(&cut, &out, &RedactOpts::new(KEY)).unwrap_err();
    assert!(
        matches!(
            err,
            RedactError::Truncated {
                line: 7,
                written: 5,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("cut.jsonl:7:"), "{err}");
    assert_eq!(read(&out).1.len(), 5);
}

#[test]
fn an_empty_key_or_the_input_as_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = damaged(dir.path());
    assert!(matches!(
        redact(&input, dir.path().join("o.jsonl"), &RedactOpts::new(Vec::new())),
        Err(RedactError::EmptyKey)
    ));
    assert!(matches!(
        redact(&input, &input, &RedactOpts::new(KEY)),
        Err(RedactError::SameFile { .. })
    ));
    assert!(std::fs::read_to_string(&input).unwrap().contains("damaged"));
}

#[test]
fn the_held_bytes_limit_ends_a_stalled_stream_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // Conn 1 sends half a frame and goes quiet; conn 2 keeps talking.
    let f = frame(0x0200, Version::V2013, PHONE_A, 1, location(POSITIONS[0]));
    let mut records = vec![Record::binary(0, 1, Side::Gateway, f[..10].to_vec())];
    for i in 0..20 {
        records.push(Record::binary(
            10 + i,
            2,
            Side::Gateway,
            frame(0x0002, Version::V2013, PHONE_C, i as u16, vec![]),
        ));
    }
    let input = dir.path().join("in.jsonl");
    let mut w = CaptureWriter::create(&input, &CaptureHeader::new(0)).unwrap();
    records.iter().for_each(|r| w.write(r).unwrap());
    let mut opts = RedactOpts::new(KEY);
    opts.max_held_bytes = 100;
    let out = dir.path().join("out.jsonl");
    let report = redact(&input, &out, &opts).unwrap();
    assert_eq!(report.forced_flushes, 1);
    assert_eq!(report.undecodable_frames.get("unterminated"), Some(&1));
    assert_eq!(read(&out).1.len(), 21);
    assert_eq!(inspect(&out).unwrap().gateway.messages(), 20);
}

#[test]
fn packets_of_a_group_that_never_completes_are_left_out_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let many: Vec<(u32, u32)> = (0..40).map(|i| POSITIONS[i % POSITIONS.len()]).collect();
    let mut serial = 0u16;
    let packets = message(0x0704, Version::V2013, PHONE_A, 0, batch(&many)).encode_packets(500, || {
        serial += 1;
        serial
    });
    assert!(packets.len() >= 3);
    let input = dir.path().join("in.jsonl");
    let mut w = CaptureWriter::create(&input, &CaptureHeader::new(0)).unwrap();
    // Packet 2 never arrives; a heartbeat follows on the same connection.
    for (i, p) in packets.iter().enumerate().filter(|(i, _)| *i != 1) {
        w.write(&Record::binary(i as u64, 1, Side::Gateway, p.clone())).unwrap();
    }
    w.write(&Record::binary(
        99,
        1,
        Side::Gateway,
        frame(0x0002, Version::V2013, PHONE_A, 9, vec![]),
    ))
    .unwrap();
    w.write(&Record::close(100, 1, None, None, None)).unwrap();
    drop(w);
    let out = dir.path().join("out.jsonl");
    let report = redact(&input, &out, &RedactOpts::new(KEY)).unwrap();
    assert_eq!(report.incomplete_group_packets, packets.len() as u64 - 1);
    assert_eq!(report.frames, 1, "only the heartbeat");
    let (_, records) = read(&out);
    assert_eq!(records.len(), packets.len() + 1, "records stay, emptied");
    let s = inspect(&out).unwrap();
    assert_eq!(s.gateway.messages_by_id.get("0x0002"), Some(&1));
    assert_eq!(s.gateway.messages(), 1);

    let mut opts = RedactOpts::new(KEY);
    opts.keep_undecodable = true;
    let report = redact(&input, &out, &opts).unwrap();
    assert!(report.bytes_kept_raw > 500);
    assert_eq!(inspect(&out).unwrap().gateway.groups_expired, 1, "kept as they came");
}

#[test]
fn a_media_upload_whose_first_packet_is_too_short_for_the_location_is_rewritten_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut media = vec![0, 0, 0, 7, 0, 0, 1, 1];
    media.extend(location(POSITIONS[3]));
    media.extend([0xAB; 100]);
    let mut serial = 0u16;
    // 20-byte packets: the location block straddles packets 1 and 2.
    let packets = message(0x0801, Version::V2013, PHONE_A, 0, media).encode_packets(20, || {
        serial += 1;
        serial
    });
    let input = dir.path().join("in.jsonl");
    let mut w = CaptureWriter::create(&input, &CaptureHeader::new(0)).unwrap();
    w.write(&Record::binary(0, 1, Side::Gateway, packets.concat())).unwrap();
    drop(w);
    let out = dir.path().join("out.jsonl");
    let report = redact(&input, &out, &RedactOpts::new(KEY)).unwrap();
    assert_eq!((report.groups_rewritten, report.positions), (1, 1));
    assert_eq!((report.frames, report.bytes_left_out), (packets.len() as u64, 0));
    let (_, records) = read(&out);
    let mut found = Vec::new();
    let messages = decode_all(&records, 0);
    for m in &messages {
        coords(m, &mut found);
    }
    assert_eq!(found.len(), 2, "{messages:?}");
    assert!(
        found
            .iter()
            .all(|(_, v)| *v != u64::from(POSITIONS[3].0) && *v != u64::from(POSITIONS[3].1))
    );
}

#[test]
fn real_device_frames_of_the_vector_file_all_survive_redaction() {
    // The bundled replay of every frame vector: 2011/2013/2019 headers, header quirks, escapes in
    // header, body and check code, the 18-packet 0x1205 set, a 2-packet 0x0104.
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/vectors_replay.jsonl");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let report = redact(&input, &out, &RedactOpts::new(KEY)).unwrap();
    let (before, after) = (inspect(&input).unwrap(), inspect(&out).unwrap());
    assert_eq!(after.gateway.messages_by_id, before.gateway.messages_by_id);
    assert_eq!(after.gateway.groups_completed, before.gateway.groups_completed);
    assert_eq!((after.gateway.rejected(), after.gateway.skipped_bytes), (0, 0));
    assert_eq!(report.bytes_left_out, 0);
    assert_eq!(after.terminals.len(), before.terminals.len());
    // An all-zero phone ("0") names no one and stays; every other one is replaced.
    let kept: Vec<&String> = after.terminals.intersection(&before.terminals).collect();
    assert!(kept.iter().all(|p| *p == "0"), "{kept:?}");
    assert!(report.positions > 0 && report.plates > 0 && report.auth_codes > 0 && report.imeis > 0);
    assert_eq!(report.ftp_fields, 3, "go-9206-2013");
}

#[test]
fn a_missing_or_foreign_input_is_an_error_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let err = redact(dir.path().join("nope.jsonl"), &out, &RedactOpts::new(KEY)).unwrap_err();
    assert!(matches!(err, RedactError::Open(_)), "{err:?}");
    assert!(err.to_string().contains("nope.jsonl"), "{err}");
    let foreign = dir.path().join("foreign.jsonl");
    std::fs::write(&foreign, "{\"hello\":1}\n").unwrap();
    let err = redact(&foreign, &out, &RedactOpts::new(KEY)).unwrap_err();
    assert!(
        err.to_string().contains("foreign.jsonl:1: not a jt808-capture"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn a_capture_whose_prefix_cuts_into_frames_is_refused_unless_allowed() {
    use jt808_harness::capture::{CaptureHeader, CaptureWriter};
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("wrong-prefix.jsonl");
    let out = dir.path().join("out.jsonl");
    // Bare frames, but the header claims an 18-byte envelope.
    let vectors =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/vectors_replay.jsonl")).unwrap();
    let mut reader = jt808_harness::capture::CaptureReader::from_reader(vectors.as_bytes(), "v").unwrap();
    let mut w = CaptureWriter::create(&input, &CaptureHeader::new(18)).unwrap();
    for r in reader.by_ref() {
        w.write(&r.unwrap()).unwrap();
    }
    drop(w);
    let e = redact(&input, &out, &RedactOpts::new("k")).unwrap_err().to_string();
    assert!(
        e.contains("wrong-prefix.jsonl:") && e.contains("prefix_len 18 cuts into frames"),
        "{e}"
    );
    assert!(!out.exists(), "nothing written");
    let mut allowed = RedactOpts::new("k");
    allowed.allow_prefix_mismatch = true;
    redact(&input, &out, &allowed).expect("told to go on");
}
