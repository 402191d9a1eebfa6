//! A table of message bodies, one or more per typed id, each built from the layout of JT/T
//! 808-2013/2019 or JT/T 1078-2016 as the body files document it (fields separated by spaces in
//! the hex): each decodes to the asserted JSON (every field, by its stable snake_case name) and
//! re-encodes byte-exact, in every version whose layout differs. Ids whose fields the real
//! vectors already assert (tests/vectors.rs) are checked here for kind and round trip only.
//!
//! `every_typed_id_has_a_case` makes the table grow with `MESSAGE_IDS`.

use std::collections::BTreeSet;

use jt808_harness::codec::Version;
use jt808_harness::codec::body::{Body, MESSAGE_IDS, kind_of};
use serde_json::json;

#[path = "bodies/cases.rs"]
mod cases;

use Version::{V2013, V2019};
use cases::cases;

#[test]
fn every_case_decodes_to_its_fields_and_re_encodes_exactly() {
    for case in cases() {
        let what = format!("0x{:04X} {} {}", case.id, case.v.as_str(), case.hex);
        let bytes = hex::decode(&case.hex).unwrap_or_else(|e| panic!("{what}: bad hex in the table: {e}"));
        let body = Body::decode(case.id, case.v, &bytes);
        assert_eq!(body.msg_id(), Some(case.id), "{what}: typed, got {body:?}");
        assert_eq!(Some(body.kind()), kind_of(case.id), "{what}");
        if let Some(want) = &case.json {
            let got = serde_json::to_value(&body).unwrap();
            assert_eq!(&got, want, "{what}:\n got  {got}\n want {want}");
        }
        let mut out = Vec::new();
        body.encode(case.v, &mut out);
        assert_eq!(
            hex::encode_upper(&out),
            case.hex.to_uppercase(),
            "{what}: re-encodes exactly"
        );
    }
}

#[test]
fn every_typed_id_has_a_case() {
    let covered: BTreeSet<u16> = cases().iter().map(|c| c.id).collect();
    let missing: Vec<String> = MESSAGE_IDS
        .iter()
        .filter(|i| !covered.contains(&i.id))
        .map(|i| format!("0x{:04X}", i.id))
        .collect();
    assert!(missing.is_empty(), "ids without a case: {missing:?}");
}

#[test]
fn a_body_that_breaks_its_layout_is_invalid_with_field_and_offset_and_keeps_its_bytes() {
    let cases: [(u16, Version, &str, &str); 4] = [
        (
            0x8801,
            V2013,
            "01 0001",
            "camera_shot: interval at body byte 3: needs 2 bytes, 0 left",
        ),
        (
            0x8600,
            V2013,
            "00 02 00000001",
            "set_circles: attr at body byte 6: needs 2 bytes, 0 left",
        ),
        (
            0x0A00,
            V2013,
            "00010001 AB",
            "terminal_rsa_key: n at body byte 4: needs 128 bytes, 1 left",
        ),
        (
            0x8602,
            V2013,
            "00 00 FF",
            "set_rectangles: areas at body byte 2: 1 bytes left over after the last field",
        ),
    ];
    for (id, v, hex_body, error) in cases {
        let bytes = hex::decode(hex_body.replace(' ', "")).unwrap();
        let body = Body::decode(id, v, &bytes);
        let Body::Invalid(inv) = &body else {
            panic!("0x{id:04X}: {body:?}")
        };
        assert_eq!(inv.error, error);
        let mut out = Vec::new();
        body.encode(v, &mut out);
        assert_eq!(out, bytes, "0x{id:04X}: kept as it came");
    }
}

#[test]
fn vendor_ids_are_marked_and_unknown_ids_stay_raw() {
    for id in [0x0F00, 0x0FFF, 0x8F00, 0x8FFF, 0xE000, 0xFFFF] {
        let b = Body::decode(id, V2013, &[1, 2]);
        assert_eq!(b.kind(), "vendor", "0x{id:04X}");
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            json!({"raw": "0102", "vendor": true})
        );
    }
    for id in [0x0006, 0x0EFF, 0x8F00 - 1, 0xDFFF] {
        assert_eq!(Body::decode(id, V2013, &[1]).kind(), "raw", "0x{id:04X}");
    }
}

#[test]
fn deleted_ids_say_so_and_the_table_marks_them() {
    let deleted: Vec<u16> = MESSAGE_IDS
        .iter()
        .filter(|i| i.edition == "deleted_in_2019")
        .map(|i| i.id)
        .collect();
    assert_eq!(deleted, [0x8301, 0x0301, 0x8302, 0x0302, 0x8303, 0x0303, 0x8304]);
}

#[test]
fn commands_build_from_toml_by_name_and_encode_as_set() {
    let t: toml::Value = toml::from_str(
        r#"params = [
            { name = "heartbeat_interval", value = 30 },
            { id = "0x0083", value = "渝A12345" },
            { id = 0xF001, raw = "0102" },
        ]"#,
    )
    .unwrap();
    let b = Body::command(0x8103, t).unwrap();
    let mut out = Vec::new();
    b.encode(V2013, &mut out);
    assert_eq!(
        hex::encode_upper(out),
        "0300000001040000001E0000008308D3E54131323334350000F001020102"
    );
    for (toml_text, error) in [
        (
            "params = [{ name = \"max_speed\", value = -1 }]",
            "parameter max_speed (0x0055), a dword: value -1 is not an integer from 0 to 4294967295",
        ),
        (
            "params = [{ name = \"plate_color\", value = 256 }]",
            "parameter plate_color (0x0084), a byte: value 256 is not an integer from 0 to 255",
        ),
        (
            "params = [{ name = \"no_such\", value = 1 }]",
            "unknown parameter name \"no_such\"",
        ),
        (
            "params = [{ id = \"0xF001\", value = 1 }]",
            "parameter 0xF001 is not in the table: give its bytes as `raw`",
        ),
    ] {
        let t: toml::Value = toml::from_str(toml_text).unwrap();
        let e = Body::command(0x8103, t).unwrap_err().to_string();
        assert!(e.contains(error), "{toml_text}: {e}");
    }
    let t: toml::Value = toml::from_str("flag = 1\ntext_type = 1\ntext = \"测试\"").unwrap();
    let mut out = Vec::new();
    Body::command(0x8300, t).unwrap().encode(V2019, &mut out);
    assert_eq!(out, [1, 1, 0xB2, 0xE2, 0xCA, 0xD4]);
}

/// The README section "Message ids", generated from `MESSAGE_IDS` and the fields the table's
/// bodies serialise: the test fails when the README is not what the code says.
/// `JT808_WRITE_ID_TABLE=1 cargo test --test bodies id_table` rewrites the section.
fn id_table() -> String {
    let mut fields: std::collections::BTreeMap<u16, Vec<String>> = Default::default();
    for case in cases() {
        let body = Body::decode(case.id, case.v, &hex::decode(&case.hex).unwrap());
        if let serde_json::Value::Object(m) = serde_json::to_value(&body).unwrap() {
            let known = fields.entry(case.id).or_default();
            for k in m.keys().filter(|k| !known.contains(k)).cloned().collect::<Vec<_>>() {
                known.push(k);
            }
        }
    }
    let mut s = String::from(
        "## Message ids\n\n\
         Every id with a typed body (`codec::body::MESSAGE_IDS`; generated by `tests/bodies.rs`). `kind` is the\n\
         body's snake_case name in `decode` output and transcripts, `from` who sends it, `cmd` whether a\n\
         scenario can build it from fields (`Body::command`), and the fields are the body's JSON keys (optional\n\
         ones included: they appear where the layout or version has them). Ids the 2019 edition deleted still\n\
         decode and carry `\"deleted_in_2019\": true`. Vendor ranges (0x0F00-0x0FFF, 0x8F00-0x8FFF,\n\
         0xE000-0xFFFF) decode as `{\"raw\": ..., \"vendor\": true}`, any other id as `{\"raw\": ...}`.\n\n\
         | id | kind | from | edition | cmd | typed fields |\n|---|---|---|---|---|---|\n",
    );
    for i in MESSAGE_IDS {
        let from = match i.from {
            jt808_harness::codec::body::Direction::Terminal => "terminal",
            jt808_harness::codec::body::Direction::Platform => "platform",
        };
        let f = fields.get(&i.id).map(|f| f.join(", ")).unwrap_or_default();
        let f = if f.is_empty() { "(empty)".to_string() } else { f };
        s += &format!(
            "| 0x{:04X} | `{}` | {from} | {} | {} | {f} |\n",
            i.id,
            i.name,
            i.edition,
            if i.command { "yes" } else { "" }
        );
    }
    s
}

#[test]
fn id_table_in_the_readme_is_what_the_code_says() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let start = readme
        .find("## Message ids\n")
        .expect("README has a Message ids section");
    let end = readme[start + 3..]
        .find("\n## ")
        .map_or(readme.len(), |i| start + 3 + i + 1);
    let want = id_table();
    if std::env::var_os("JT808_WRITE_ID_TABLE").is_some() {
        let mut new = readme.clone();
        new.replace_range(start..end, &format!("{}\n", want.trim_end()));
        std::fs::write(path, new).unwrap();
        return;
    }
    assert!(
        readme[start..end].trim_end() == want.trim_end(),
        "README's Message ids section is stale: JT808_WRITE_ID_TABLE=1 cargo test --test bodies id_table"
    );
}

/// Whole frames from a peer's test suite: through the decoder, the body is the fields the peer
/// asserts, and the message re-encodes to the frame.
#[test]
fn peer_frames_decode_to_their_fields_and_re_encode() {
    let frames = [
        // SmallChi/JT808 JT808.Protocol.Test/MessageBody/JT808_0x8300Test.cs Test1.
        (
            "7E8300000D012345678900000105736D616C6C63686920353138027E",
            json!({"flag": 5, "text": "smallchi 518"}),
        ),
        // SmallChi/JT808 JT808_0x8103Test.cs Test1_1.
        (
            "7E8103000A000123456789000A0100000001040000000A057E",
            json!({"count": 1, "params": [{"id": "0x0001", "name": "heartbeat_interval", "type": "dword", "value": 10}]}),
        ),
        // SmallChi/JT808 JT808_0x8103Test.cs Test4_2 (a CAN id setting of all 0xFF).
        (
            "7E8103000e0135123443213039010000011008ffffffffffffffffed7E",
            json!({"count": 1, "params": [{"id": "0x0110", "name": "can_id_setting", "type": "bytes",
                "value": "FFFFFFFFFFFFFFFF"}]}),
        ),
    ];
    for (frame, want) in frames {
        let wire = hex::decode(frame).unwrap();
        let mut msgs = Vec::new();
        jt808_harness::codec::Decoder::default().push(&wire, std::time::Duration::ZERO, |e| {
            if let jt808_harness::codec::DecodeEvent::Message(m) = e {
                msgs.push(m)
            }
        });
        assert_eq!(msgs.len(), 1, "{frame}");
        assert_eq!(serde_json::to_value(&msgs[0].body).unwrap(), want, "{frame}");
        assert_eq!(
            hex::encode(msgs[0].encode()),
            frame.to_lowercase(),
            "{frame}: re-encodes"
        );
    }
}

/// 0x1205's declared count is shown beside the items read; a count that disagrees with the bytes
/// is an issue at its body offset, never fatal, and the body re-encodes byte-exact.
#[test]
fn av_resource_list_shows_its_declared_count_and_names_a_disagreement() {
    let item = "01 240102080000 240102080500 0000000000000400 00 01 01 0000000B";
    let cases = [
        // Agrees: no issues, count beside the items.
        (format!("0007 00000001 {item}"), 1, 1, vec![]),
        // Declares 3, holds 1 and a cut second: 1 read, the cut bytes kept.
        (
            format!("0007 00000003 {item} 0124"),
            3,
            1,
            vec![
                json!({"offset": 2, "issue": "declares 3 items of 28 bytes, 1 read (30 bytes follow the count)"}),
                json!({"offset": 34, "issue": "2 bytes after the items read, a cut item"}),
            ],
        ),
        // Declares 0 and holds 1: nothing read past the count, the item kept.
        (
            format!("0007 00000000 {item}"),
            0,
            0,
            vec![json!({"offset": 6, "issue": "28 bytes after the items read, beyond the declared count"})],
        ),
    ];
    for (hex_body, count, read, issues) in cases {
        let bytes = hex::decode(hex_body.replace(' ', "")).unwrap();
        let body = Body::decode(0x1205, V2013, &bytes);
        let Body::AvResourceList(l) = &body else {
            panic!("{hex_body}: {body:?}")
        };
        assert_eq!((l.count, l.items.len()), (count, read), "{hex_body}");
        let j = serde_json::to_value(&body).unwrap();
        assert_eq!(j["count"], count, "{hex_body}: the count is in the JSON");
        assert_eq!(
            j.get("issues").cloned().unwrap_or(json!([])),
            json!(issues),
            "{hex_body}"
        );
        let mut out = Vec::new();
        body.encode(V2013, &mut out);
        assert_eq!(out, bytes, "{hex_body}: re-encodes exactly");
    }
}
