//! `decode --file CAPTURE`: a capture is dumped record by record, one decoder per connection and
//! direction, the prefix applied to gateway messages, every line stamped with t_us, conn and from.

use std::path::Path;

use jt808_harness::capture::prefix::{DEFAULT_CHECK_MESSAGES, check_capture};
use jt808_harness::capture::{CaptureHeader, CaptureWriter, Record, Side, inspect};
use jt808_harness::cli::decode::{DecodeArgs, run};
use jt808_harness::codec::body::{Body, EmptyBody};
use jt808_harness::codec::{Message, Phone, Version};
use serde_json::Value;

fn decode_file(path: &Path) -> Vec<Value> {
    let args = DecodeArgs {
        hex: vec![],
        file: Some(path.to_path_buf()),
        packets: false,
        rejoin_unescaped_flag: false,
    };
    let mut out = Vec::new();
    run(&args, std::io::empty(), &mut out).expect("decodes");
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn heartbeat(serial: u16) -> Vec<u8> {
    let body = Body::Heartbeat(EmptyBody::decode(&[]));
    Message::new(
        0x0002,
        Version::V2013,
        Phone::parse("13800000001").unwrap(),
        serial,
        body,
    )
    .encode()
}

/// `(t_us, conn, from, type, serial or check)` of each line.
fn brief(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let detail = l.get("serial").or(l.get("check")).or(l.get("code")).or(l.get("text"));
            format!(
                "{} {} {} {} {}",
                l["t_us"],
                l["conn"],
                l.get("from").and_then(Value::as_str).unwrap_or("-"),
                l["type"].as_str().unwrap(),
                detail.map(Value::to_string).unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn a_capture_is_dumped_per_connection_and_direction_with_its_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.jsonl");
    let mut w = CaptureWriter::create(&path, &CaptureHeader::new(18)).unwrap();
    let env = |bytes: &[u8]| [vec![0xEE; 18], bytes.to_vec()].concat();
    let (a, b) = (heartbeat(1), heartbeat(2));
    let (b1, b2) = b.split_at(6);
    for r in [
        Record::open(0, 1),
        Record::binary(10, 1, Side::Gateway, env(&a)),
        // A frame split over two messages, each behind its own envelope.
        Record::binary(20, 1, Side::Gateway, env(b1)),
        // Connection 2 carries no envelope and interleaves: its bytes never join connection 1's.
        Record::open_with_prefix(25, 2, 0),
        Record::binary(26, 2, Side::Gateway, heartbeat(7)),
        Record::binary(30, 1, Side::Gateway, env(b2)),
        Record::binary(40, 1, Side::Client, heartbeat(9)),
        Record::message(41, 1, Side::Client, jt808_harness::capture::Payload::Text("hi".into())),
        // Half a frame, then the connection closes: reported unterminated at the close.
        Record::binary(50, 2, Side::Gateway, heartbeat(8)[..5].to_vec()),
        Record::close(60, 2, Some(Side::Client), Some(1000), None),
        Record::binary(70, 1, Side::Gateway, vec![1, 2, 3]),
    ] {
        w.write(&r).unwrap();
    }
    drop(w);
    let lines = decode_file(&path);
    assert_eq!(
        brief(&lines),
        [
            "0 1 - open ",
            "10 1 gateway message 1",
            "25 2 - open ",
            "26 2 gateway message 7",
            "30 1 gateway message 2",
            "40 1 client message 9",
            "41 1 client text \"hi\"",
            "60 2 client close 1000",
            "60 2 gateway error \"unterminated\"",
            "70 1 gateway short_message ",
        ]
    );
    assert_eq!(lines[2]["prefix_len"], 0, "the connection's own prefix is shown");
    assert_eq!(lines[1]["phone"], "13800000001");
}

#[test]
fn every_bundled_capture_states_a_right_prefix_and_dumps_to_what_inspect_counts() {
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("captures")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
            continue;
        }
        let lines = decode_file(&path);
        let summary = inspect(&path).unwrap();
        let count = |from: &str, ty: &str| lines.iter().filter(|l| l["from"] == from && l["type"] == ty).count() as u64;
        let name = path.display();
        check_capture(&path, DEFAULT_CHECK_MESSAGES).unwrap_or_else(|e| panic!("its stated prefix: {e}"));
        assert_eq!(count("gateway", "message"), summary.gateway.messages(), "{name}");
        assert_eq!(count("client", "message"), summary.client.messages(), "{name}");
        assert_eq!(count("gateway", "error"), summary.gateway.rejected(), "{name}");
        assert!(summary.gateway.messages() > 0, "{name}: the capture holds messages");
        for l in &lines {
            assert!(l["t_us"].is_u64() && l["conn"].is_u64(), "{name}: {l}");
        }
    }
}

#[test]
fn a_raw_file_that_is_not_a_capture_is_still_a_byte_stream() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raw.bin");
    std::fs::write(&path, [heartbeat(3), b"{\"format\":1}".to_vec()].concat()).unwrap();
    let lines = decode_file(&path);
    assert_eq!(lines[0]["type"], "message");
    assert_eq!(lines[0]["serial"], 3);
    assert!(lines[0].get("t_us").is_none(), "a byte stream has no capture times");
}
