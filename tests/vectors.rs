//! Every vector of `tests/fixtures/jt808_vectors.json` (real frames from the anchor implementations'
//! test suites and issue threads, JT808.md) through the public codec:
//!
//! - `frame`: decoded with [`Decoder`]; header fields and every field of `expect` checked against
//!   the typed body (an explicit mapping per message id; every key of `expect` must be consumed, so
//!   a new key fails the test until it is mapped); the re-encoded frame equals the original bytes.
//!   Packets of a `group` are pushed in order and must reassemble into one message.
//! - `frame-fault`: rejected with the named check, or tolerated as JT808.md says (per `note`).
//! - `stream`: the frames, errors and pending bytes our deframer gives. Unlike go-jt808 it resyncs
//!   after a bad frame (src/codec/deframer.rs), so the corrupt-middle case delivers its third frame.

use std::collections::BTreeMap;
use std::time::Duration;

use jt808_harness::codec::body::{BatchItem, Body, ItemValue, Location, LocationItem};
use jt808_harness::codec::deframer::{Deframer, Item};
use jt808_harness::codec::frame::{frame_into, xor};
use jt808_harness::codec::{DecodeEvent, Decoder, DecoderConfig, Header, HeaderQuirk, Message, Version};
use serde_json::{Map, Value};

#[allow(dead_code)] // each test binary uses a part of the shared fixtures
mod support;
use support::vectors::{Vector, all as vectors};

fn msg_id(v: &Vector) -> u16 {
    let s = v.msg_id.as_deref().unwrap_or_else(|| panic!("{}: no msg_id", v.id));
    u16::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

/// Pushes bytes through a fresh decoder and ends the stream.
fn decode_all(chunks: &[Vec<u8>]) -> (Vec<DecodeEvent>, usize) {
    let mut d = Decoder::new(DecoderConfig::default());
    let mut events = Vec::new();
    for c in chunks {
        d.push(c, Duration::ZERO, |e| events.push(e));
    }
    let pending = d.deframer().pending_len();
    (events, pending)
}

fn only_message(id: &str, events: Vec<DecodeEvent>) -> Message {
    let mut msgs: Vec<Message> = events
        .into_iter()
        .filter_map(|e| match e {
            DecodeEvent::Message(m) => Some(m),
            DecodeEvent::Packet { .. } => None,
            other => panic!("{id}: unexpected event {other:?}"),
        })
        .collect();
    assert_eq!(msgs.len(), 1, "{id}: exactly one message");
    msgs.pop().unwrap()
}

/// The phone as the vector writes it: 12 BCD digits (2011/2013 layout) or 20 (2019).
fn phone_digits(h: &Header) -> String {
    let mut out = Vec::new();
    let width = if h.wire_len() >= 17 && h.quirk != Some(HeaderQuirk::VersionFlagOn2013Layout) {
        10
    } else {
        6
    };
    h.phone.write_bcd(width, &mut out);
    hex::encode(out)
}

/// The header checks shared by single frames and packets.
fn check_header(v: &Vector, h: &Header, expect: &mut Map<String, Value>) {
    let id = &v.id;
    assert_eq!(h.msg_id, msg_id(v), "{id}: msg_id");
    assert_eq!(Some(phone_digits(h)), v.phone, "{id}: phone");
    assert_eq!(Some(h.serial), v.serial, "{id}: serial");
    assert_eq!(h.packet.map(|p| p.total), v.pkg_total, "{id}: pkg_total");
    assert_eq!(h.packet.map(|p| p.index), v.pkg_index, "{id}: pkg_index");
    if let Some(Value::Object(mut hdr)) = expect.remove("header") {
        if let Some(pv) = hdr.remove("protocol_version_byte") {
            assert_eq!(
                h.protocol_version.map(u64::from),
                pv.as_u64(),
                "{id}: protocol version byte"
            );
        }
        assert!(hdr.is_empty(), "{id}: unmapped header expectations {hdr:?}");
    }
}

/// Takes one key out of the expectations.
fn take(id: &str, e: &mut Map<String, Value>, key: &str) -> Value {
    e.remove(key).unwrap_or_else(|| panic!("{id}: expect has no {key:?}"))
}

fn take_u64(id: &str, e: &mut Map<String, Value>, key: &str) -> u64 {
    take(id, e, key)
        .as_u64()
        .unwrap_or_else(|| panic!("{id}: {key} is not a number"))
}

fn take_str(id: &str, e: &mut Map<String, Value>, key: &str) -> String {
    match take(id, e, key) {
        Value::String(s) => s,
        other => panic!("{id}: {key} is not a string: {other}"),
    }
}

fn hex_id(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x").trim_start_matches("0X"), 16).unwrap()
}

/// Checks a location's basic fields present in `e` (the vectors omit some) and its `extra` items.
fn check_location(id: &str, loc: &Location, e: &mut Map<String, Value>) {
    let basic: [(&str, u64); 7] = [
        ("alarm", loc.alarm.into()),
        ("status", loc.status.into()),
        ("lat", loc.lat.into()),
        ("lng", loc.lng.into()),
        ("altitude", loc.altitude.into()),
        ("speed", loc.speed.into()),
        ("direction", loc.direction.into()),
    ];
    for (key, got) in basic {
        if e.contains_key(key) {
            assert_eq!(take_u64(id, e, key), got, "{id}: {key}");
        }
    }
    assert_eq!(take_str(id, e, "time"), loc.time.to_string(), "{id}: time");
    // Some vectors list only the items their source asserts; every item is still checked to be
    // typed exactly when the table allows, and to re-encode to its bytes (the frame check).
    for item in &loc.items {
        if !matches!(item.value, ItemValue::Truncated { .. }) {
            check_item_type(id, &item, &item.value_bytes());
        }
    }
    if let Some(extra) = e.remove("extra") {
        let Value::Object(extra) = extra else {
            panic!("{id}: extra is {extra}")
        };
        for (item_id, value) in extra {
            let want = hex::decode(value.as_str().unwrap()).unwrap();
            let n = hex_id(&item_id) as u8;
            let item = loc.item(n).unwrap_or_else(|| panic!("{id}: no item {item_id}"));
            assert_eq!(item.value_bytes(), want, "{id}: item {item_id} bytes");
            check_item_type(id, &item, &want);
        }
    }
}

/// The typed value of an item agrees with its bytes; a spec id with a spec length is typed, every
/// other item is raw (JT808.md §5.4).
fn check_item_type(id: &str, item: &LocationItem, v: &[u8]) {
    let num = v.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b));
    let spec_len: &[usize] = match item.id {
        0x01 | 0x14 | 0x15 | 0x16 | 0x25 | 0x2B => &[4],
        0x02 | 0x03 | 0x04 | 0x06 | 0x17 | 0x2A => &[2],
        0x05 => &[30],
        0x11 => &[1, 5],
        0x12 => &[6],
        0x13 => &[7],
        0x18 => &[2, 3],
        0x30 | 0x31 | 0xE0 => &[1],
        _ => &[],
    };
    let typed = spec_len.contains(&v.len());
    let what = format!("{id}: item 0x{:02X} (len {})", item.id, v.len());
    match (&item.value, typed) {
        (ItemValue::Raw(r), false) => assert_eq!(r, v, "{what}"),
        (ItemValue::Mileage(x), true) => assert_eq!(u64::from(*x), num, "{what}"),
        (ItemValue::Fuel(x) | ItemValue::RecorderSpeed(x) | ItemValue::AlarmEventId(x), true) => {
            assert_eq!(u64::from(*x), num, "{what}")
        }
        (ItemValue::IoStatus(x) | ItemValue::StorageFault(x) | ItemValue::CompartmentTemp(x), true) => {
            assert_eq!(u64::from(*x), num, "{what}")
        }
        (
            ItemValue::VehicleSignal(x)
            | ItemValue::Analog(x)
            | ItemValue::VideoAlarm(x)
            | ItemValue::VideoSignalLoss(x)
            | ItemValue::VideoOcclusion(x),
            true,
        ) => assert_eq!(u64::from(*x), num, "{what}"),
        (ItemValue::SignalStrength(x) | ItemValue::Satellites(x) | ItemValue::CustomLen(x), true) => {
            assert_eq!(u64::from(*x), num, "{what}")
        }
        (ItemValue::TyrePressure(a), true) => assert_eq!(&a[..], v, "{what}"),
        (ItemValue::Overspeed { area_type, area_id }, true) => {
            assert_eq!(*area_type, v[0], "{what}");
            assert_eq!(area_id.is_some(), v.len() == 5, "{what}");
        }
        (
            ItemValue::AreaRoute {
                area_type,
                area_id,
                direction,
            },
            true,
        ) => assert_eq!(
            (*area_type, *area_id, *direction),
            (v[0], u32::from_be_bytes([v[1], v[2], v[3], v[4]]), v[5]),
            "{what}"
        ),
        (
            ItemValue::RouteTime {
                route_id,
                drive_time,
                result,
            },
            true,
        ) => assert_eq!(
            (*route_id, *drive_time, *result),
            (
                u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
                u16::from_be_bytes([v[4], v[5]]),
                v[6]
            ),
            "{what}"
        ),
        (other, typed) => panic!("{what}: {other:?}, expected typed = {typed}"),
    }
}

/// Every field of `expect` against the typed body: the explicit mapping per message id.
fn check_body(v: &Vector, msg: &Message, e: &mut Map<String, Value>) {
    let id = v.id.as_str();
    match (&msg.body, msg.header.msg_id) {
        (Body::TerminalGeneralResponse(g) | Body::PlatformGeneralResponse(g), _) => {
            assert_eq!(take_u64(id, e, "reply_serial"), u64::from(g.reply_serial), "{id}");
            assert_eq!(hex_id(&take_str(id, e, "reply_id")), u64::from(g.reply_id), "{id}");
            assert_eq!(take_u64(id, e, "result"), u64::from(g.result), "{id}");
        }
        (Body::Heartbeat(h), _) => {
            if let Some(b) = e.remove("bodies_null") {
                assert_eq!(b, Value::Bool(true));
                assert!(h.extra.is_empty(), "{id}: empty heartbeat");
            } else {
                // iss-traccar5331-0002-with-body: the 17 bytes are kept, not rejected.
                assert_eq!(h.extra.len(), v.body_len.unwrap(), "{id}: heartbeat body kept");
            }
        }
        (Body::Register(r), _) => {
            assert_eq!(take_u64(id, e, "province"), u64::from(r.province), "{id}");
            assert_eq!(take_u64(id, e, "city"), u64::from(r.city), "{id}");
            assert_eq!(take_str(id, e, "maker"), r.maker.as_str(), "{id}");
            assert_eq!(take_str(id, e, "model"), r.model.as_str(), "{id}");
            assert_eq!(take_str(id, e, "terminal_id"), r.terminal_id.as_str(), "{id}");
            assert_eq!(take_u64(id, e, "plate_color"), u64::from(r.plate_color), "{id}");
            assert_eq!(take_str(id, e, "plate"), r.plate.as_str(), "{id}");
            assert!(r.maker.raw.is_none() && r.plate.raw.is_none(), "{id}: plain padding");
        }
        (Body::RegisterResponse(r), _) => {
            assert_eq!(take_u64(id, e, "reply_serial"), u64::from(r.reply_serial), "{id}");
            assert_eq!(take_u64(id, e, "result"), u64::from(r.result), "{id}");
            let code = r.auth_code.as_ref().map(|t| t.as_str().to_string());
            assert_eq!(Some(take_str(id, e, "auth_code")), code, "{id}");
        }
        (Body::Auth(a), _) => {
            assert_eq!(take_str(id, e, "code"), a.code.as_str(), "{id}");
            if e.contains_key("code_len") {
                assert_eq!(take_u64(id, e, "code_len"), a.code.wire_bytes().len() as u64, "{id}");
                assert_eq!(Some(take_str(id, e, "imei")), a.imei.as_ref().map(|t| t.text.clone()));
                assert_eq!(
                    Some(take_str(id, e, "software_version")),
                    a.software_version.as_ref().map(|t| t.text.clone())
                );
            } else {
                assert!(a.imei.is_none(), "{id}: 2013 auth has no IMEI");
            }
        }
        (Body::LocationReport(loc), _) => {
            check_location(id, loc, e);
            // No vector carries a defect the table does not allow except these, which are named:
            let issues: Vec<_> = loc.issues.iter().map(|i| i.id).collect();
            let expected: &[u8] = match id {
                "iss-traccar5331-0200-custom-0x64-0x65" => &[0x05, 0x5D, 0x61, 0x62],
                "iss-jttools4-0200-1078-attach-len-mismatch" => &[0x21, 0x17, 0x18],
                _ => &[],
            };
            assert_eq!(issues, expected, "{id}: issues {:?}", loc.issues);
        }
        (Body::BatchLocation(b), _) => {
            assert_eq!(take_u64(id, e, "count"), u64::from(b.count), "{id}");
            assert_eq!(take_u64(id, e, "type"), u64::from(b.batch_type), "{id}");
            let Value::Array(items) = take(id, e, "items") else {
                panic!("{id}: items")
            };
            assert_eq!(items.len(), b.items.len(), "{id}: items");
            assert!(b.cut.is_none(), "{id}: no cut item");
            for (want, got) in items.into_iter().zip(&b.items) {
                let BatchItem::Location(loc) = got else {
                    panic!("{id}: item not a location: {got:?}")
                };
                let Value::Object(mut want) = want else { panic!() };
                check_location(id, loc, &mut want);
                assert!(want.is_empty(), "{id}: unmapped item keys {want:?}");
            }
        }
        (Body::MediaUpload(m), _) => {
            assert_eq!(take_u64(id, e, "media_id"), u64::from(m.media_id), "{id}");
            assert_eq!(take_u64(id, e, "media_type"), u64::from(m.media_type), "{id}");
            assert_eq!(take_u64(id, e, "media_format"), u64::from(m.media_format), "{id}");
            assert_eq!(take_u64(id, e, "event"), u64::from(m.event), "{id}");
            assert_eq!(take_u64(id, e, "channel"), u64::from(m.channel), "{id}");
            assert_eq!(take_u64(id, e, "data_len"), m.data.len() as u64, "{id}");
            let Value::Object(mut want) = take(id, e, "location") else {
                panic!("{id}: location")
            };
            check_location(id, m.location.as_ref().expect("2013 carries a location"), &mut want);
            assert!(want.is_empty(), "{id}: unmapped location keys {want:?}");
        }
        (Body::MediaEvent(m), _) => {
            // yz-0800-2019-escaped-checksum: the point is the check code 0x7D, sent as 7D 01; the
            // body is media id 123, image, JPEG, event 7, channel 1.
            assert_eq!(
                (m.media_id, m.media_type, m.media_format, m.event, m.channel),
                (123, 0, 0, 7, 1),
                "{id}"
            );
            let body = msg.body_bytes();
            let mut content = Vec::new();
            msg.header.write(body.len(), &mut content);
            content.extend_from_slice(&body);
            assert_eq!(format!("0x{:02X}", xor(&content)), take_str(id, e, "xor"), "{id}");
        }
        (Body::PlatformRetransmitRequest(r), _) => {
            assert_eq!(take_u64(id, e, "orig_serial"), u64::from(r.orig_serial), "{id}");
            assert_eq!(take_u64(id, e, "count"), r.indices.len() as u64, "{id}");
            let ids: Vec<u16> = serde_json::from_value(take(id, e, "ids")).unwrap();
            assert_eq!(ids, r.indices, "{id}");
        }
        (Body::AvAttributes(a), _) => {
            let fields: [(&str, u64); 9] = [
                ("audio_encoding", a.audio_encoding.into()),
                ("audio_channels", a.audio_channels.into()),
                ("audio_sample_rate", a.audio_sample_rate.into()),
                ("audio_sample_bits", a.audio_sample_bits.into()),
                ("audio_frame_len", a.audio_frame_len.into()),
                ("audio_output", a.audio_output.into()),
                ("video_encoding", a.video_encoding.into()),
                ("max_audio_channels", a.max_audio_channels.into()),
                ("max_video_channels", a.max_video_channels.into()),
            ];
            for (k, got) in fields {
                assert_eq!(take_u64(id, e, k), got, "{id}: {k}");
            }
        }
        (Body::LiveAvRequest(r), _) => {
            assert_eq!(take_str(id, e, "server"), r.server.as_str(), "{id}");
            assert_eq!(take_u64(id, e, "tcp_port"), u64::from(r.tcp_port), "{id}");
            assert_eq!(take_u64(id, e, "udp_port"), u64::from(r.udp_port), "{id}");
            assert_eq!(take_u64(id, e, "channel"), u64::from(r.channel), "{id}");
            assert_eq!(take_u64(id, e, "data_type"), u64::from(r.data_type), "{id}");
            assert_eq!(take_u64(id, e, "stream_type"), u64::from(r.stream_type), "{id}");
        }
        (Body::LiveAvControl(c), _) => {
            assert_eq!(take_u64(id, e, "channel"), u64::from(c.channel), "{id}");
            assert_eq!(take_u64(id, e, "control_cmd"), u64::from(c.command), "{id}");
            assert_eq!(take_u64(id, e, "close_av_type"), u64::from(c.close_av_type), "{id}");
            assert_eq!(take_u64(id, e, "stream_type"), u64::from(c.stream_type), "{id}");
        }
        (Body::AvResourceQuery(q), _) => {
            assert_eq!(take_u64(id, e, "channel"), u64::from(q.channel), "{id}");
            assert_eq!(take_str(id, e, "start"), q.start.to_string(), "{id}");
            assert_eq!(take_str(id, e, "end"), q.end.to_string(), "{id}");
            assert_eq!(take_u64(id, e, "alarm"), q.alarm, "{id}");
            assert_eq!(take_u64(id, e, "av_type"), u64::from(q.av_type), "{id}");
            assert_eq!(take_u64(id, e, "stream_type"), u64::from(q.stream_type), "{id}");
            assert_eq!(take_u64(id, e, "storage_type"), u64::from(q.storage_type), "{id}");
        }
        (Body::AvResourceList(l), _) => {
            assert_eq!(take_u64(id, e, "reply_serial"), u64::from(l.reply_serial), "{id}");
            assert_eq!(take_u64(id, e, "count"), l.items.len() as u64, "{id}");
            let Value::Array(items) = take(id, e, "items") else {
                panic!("{id}: items")
            };
            assert_eq!(items.len(), l.items.len());
            for (want, got) in items.into_iter().zip(&l.items) {
                check_resource(id, want, got);
            }
        }
        (Body::FileUploadCommand(c), _) => {
            assert_eq!(take_str(id, e, "server"), c.server.as_str(), "{id}");
            assert_eq!(take_u64(id, e, "port"), u64::from(c.port), "{id}");
            assert_eq!(take_str(id, e, "user"), c.user.as_str(), "{id}");
            assert_eq!(take_str(id, e, "password"), c.password.as_str(), "{id}");
            assert_eq!(take_str(id, e, "path"), c.path.as_str(), "{id}");
            assert_eq!(take_u64(id, e, "channel"), u64::from(c.channel), "{id}");
            assert_eq!(take_str(id, e, "start"), c.start.to_string(), "{id}");
            assert_eq!(take_str(id, e, "end"), c.end.to_string(), "{id}");
            assert_eq!(take_u64(id, e, "alarm"), c.alarm, "{id}");
            assert_eq!(take_u64(id, e, "av_type"), u64::from(c.av_type), "{id}");
            assert_eq!(take_u64(id, e, "stream_type"), u64::from(c.stream_type), "{id}");
            assert_eq!(
                take_u64(id, e, "storage_position"),
                u64::from(c.storage_position),
                "{id}"
            );
            assert_eq!(take_u64(id, e, "task_condition"), u64::from(c.task_condition), "{id}");
        }
        (Body::FileUploadComplete(c), _) => {
            assert_eq!(take_u64(id, e, "reply_serial"), u64::from(c.reply_serial), "{id}");
            assert_eq!(take_u64(id, e, "result"), u64::from(c.result), "{id}");
        }
        (other, msg_id) => panic!("{id}: no mapping for message 0x{msg_id:04X} with body {other:?}"),
    }
}

fn check_resource(id: &str, want: Value, got: &jt808_harness::codec::body::AvResource) {
    let Value::Object(mut w) = want else {
        panic!("{id}: resource item")
    };
    assert_eq!(take_u64(id, &mut w, "channel"), u64::from(got.channel), "{id}");
    assert_eq!(take_str(id, &mut w, "start"), got.start.to_string(), "{id}");
    assert_eq!(take_str(id, &mut w, "end"), got.end.to_string(), "{id}");
    assert_eq!(take_u64(id, &mut w, "alarm"), got.alarm, "{id}");
    assert_eq!(take_u64(id, &mut w, "av_type"), u64::from(got.av_type), "{id}");
    assert_eq!(take_u64(id, &mut w, "stream_type"), u64::from(got.stream_type), "{id}");
    assert_eq!(
        take_u64(id, &mut w, "storage_type"),
        u64::from(got.storage_type),
        "{id}"
    );
    assert_eq!(take_u64(id, &mut w, "file_size"), u64::from(got.file_size), "{id}");
    assert!(w.is_empty(), "{id}: unmapped resource keys {w:?}");
}

/// Keys of `expect` that are metadata, not fields.
fn strip_meta(e: &mut Map<String, Value>) {
    e.remove("_basis");
}

#[test]
fn every_single_frame_vector_decodes_checks_and_re_encodes_exactly() {
    let mut checked = 0;
    for v in vectors().iter().filter(|v| v.kind == "frame" && v.group.is_none()) {
        let id = v.id.as_str();
        let wire = v.bytes();
        let (events, pending) = decode_all(std::slice::from_ref(&wire));
        assert_eq!(pending, 0, "{id}: nothing left pending");
        let msg = only_message(id, events);
        let mut e = v.expect.clone();
        strip_meta(&mut e);
        check_header(v, &msg.header, &mut e);
        assert_eq!(Some(msg.header.version.as_str()), v.version.as_deref(), "{id}: version");
        assert_eq!(Some(msg.header.body_len as usize), v.body_len, "{id}: body_len");
        assert!(msg.header.quirk.is_none(), "{id}: no header quirk");
        assert!(!matches!(msg.body, Body::Invalid(_)), "{id}: {:?}", msg.body);
        check_body(v, &msg, &mut e);
        assert!(e.is_empty(), "{id}: expect keys not checked: {e:?}");
        assert_eq!(
            hex::encode(msg.encode()),
            hex::encode(&wire),
            "{id}: re-encodes exactly"
        );
        checked += 1;
    }
    assert_eq!(checked, 38, "every single-frame vector is covered");
}

#[test]
fn packet_groups_reassemble_and_every_packet_header_re_encodes() {
    let all = vectors();
    let mut groups: BTreeMap<&str, Vec<&Vector>> = BTreeMap::new();
    for v in all.iter().filter(|v| v.kind == "frame") {
        if let Some(g) = &v.group {
            groups.entry(g.as_str()).or_default().push(v);
        }
    }
    assert_eq!(
        groups.iter().map(|(g, p)| (*g, p.len())).collect::<Vec<_>>(),
        [("yz-0104-2pkt", 2), ("yz-1205-18pkt", 18)]
    );
    for (group, packets) in groups {
        // Each packet alone: its header, and header + fragment re-framed to the same bytes.
        for v in &packets {
            let wire = v.bytes();
            let mut d = Deframer::default();
            let mut seen = 0;
            d.push(&wire, |item| {
                let Item::Frame(f) = item else {
                    panic!("{}: {item:?}", v.id)
                };
                let mut e = v.expect.clone();
                check_header(v, &f.header, &mut e);
                assert_eq!(Some(f.header.version.as_str()), v.version.as_deref(), "{}", v.id);
                assert_eq!(Some(f.body().len()), v.body_len, "{}: body_len", v.id);
                let mut content = Vec::new();
                f.header.write(f.body().len(), &mut content);
                content.extend_from_slice(f.body());
                let mut again = Vec::new();
                frame_into(&content, &mut again);
                assert_eq!(again, wire, "{}: re-framed exactly", v.id);
                seen += 1;
            });
            assert_eq!(seen, 1, "{}: one frame", v.id);
        }
        // All packets in order through one decoder: one reassembled message.
        let chunks: Vec<Vec<u8>> = packets.iter().map(|v| v.bytes()).collect();
        let (events, _) = decode_all(&chunks);
        let msg = only_message(group, events);
        let assembled = msg.assembled.expect("reassembled");
        assert_eq!(assembled.packets as usize, packets.len(), "{group}");
        assert_eq!(Some(assembled.first_serial), packets[0].serial, "{group}");
        let last = packets.last().unwrap();
        let mut e = last.expect.clone();
        strip_meta(&mut e);
        let Value::Object(mut r) = take(group, &mut e, "reassembled") else {
            panic!("{group}: reassembled")
        };
        assert!(e.is_empty(), "{group}: {e:?}");
        let body = msg.body_bytes();
        assert_eq!(take_u64(group, &mut r, "body_len"), body.len() as u64, "{group}");
        assert_eq!(
            take_u64(group, &mut r, "reply_serial"),
            u64::from(
                msg.body
                    .reply_serial()
                    .unwrap_or_else(|| u16::from_be_bytes([body[0], body[1]]))
            ),
            "{group}"
        );
        match &msg.body {
            Body::AvResourceList(l) => {
                assert_eq!(take_u64(group, &mut r, "count"), l.items.len() as u64);
                assert_eq!(take_u64(group, &mut r, "items_decoded"), l.items.len() as u64);
                check_resource(group, take(group, &mut r, "first_item"), &l.items[0]);
                check_resource(group, take(group, &mut r, "last_item"), l.items.last().unwrap());
                // Packet 1's own expectation: the body starts with the reply serial and count.
                let mut first = packets[0].expect.clone();
                let Value::Object(mut starts) = take(group, &mut first, "body_starts") else {
                    panic!()
                };
                assert_eq!(take_u64(group, &mut starts, "reply_serial"), u64::from(l.reply_serial));
                assert_eq!(take_u64(group, &mut starts, "count"), 180);
                assert_eq!(l.items.len(), 180);
            }
            Body::ParamAnswer(a) => {
                // The declared count is shown and the 88 parameters are read; what follows them
                // (where a plain id/len walk desynchronises, the point of the vector) is kept in
                // `rest` and named, and the body still re-encodes to the fragments (below).
                assert_eq!(take_u64(group, &mut r, "param_count"), u64::from(a.count));
                assert_eq!(a.params.len(), 88, "{group}");
                assert_eq!(r.remove("tlv_walk_consistent"), Some(Value::Bool(false)));
                let desync = take_str(group, &mut r, "desync_after_param");
                // After 0x0077, where the vector says the walk goes astray, the parameters the
                // count still allows are zero runs, read as id 0 with length 0.
                let at = a.params.iter().position(|p| p.id == 0x0077).expect("0x0077");
                assert_eq!(at, 83, "{group}: 84 real parameters, then 4 zero runs");
                assert!(a.params[at + 1..].iter().all(|p| p.id == 0), "{group}");
                assert!(desync.starts_with("0x00000077"), "{group}: {desync}");
                let rest_at = body.len() - a.rest.len();
                let tail: Vec<_> = a
                    .issues
                    .iter()
                    .filter(|i| i.issue.contains("after the 88 declared"))
                    .collect();
                assert_eq!(tail.len(), 1, "{group}: {:?}", a.issues);
                assert_eq!(tail[0].offset, rest_at, "{group}");
                // 0x0076 of this device is 31 bytes of zeros: 3 counts of 0 and 28 more bytes.
                let odd: Vec<_> = a.issues.iter().filter_map(|i| i.param.clone()).collect();
                assert_eq!(odd, ["0x0076"], "{group}: {:?}", a.issues);
                let text = |id: u32| match &a.params.iter().find(|p| p.id == id).unwrap().value {
                    jt808_harness::codec::body::ParamValue::Text(t) => t.text.clone(),
                    other => panic!("{other:?}"),
                };
                assert_eq!(text(0x0083), "渝D5F001", "{group}: GBK plate");
                assert_eq!(text(0x0013), "183.230.82.18", "{group}");
            }
            other => panic!("{group}: {other:?}"),
        }
        assert!(r.is_empty(), "{group}: unchecked {r:?}");
        // The reassembled body re-encodes to the concatenated fragments.
        let mut joined = Vec::new();
        for c in &chunks {
            Deframer::default().push(c, |item| {
                if let Item::Frame(f) = item {
                    joined.extend_from_slice(f.body())
                }
            });
        }
        assert_eq!(body, joined, "{group}: body re-encodes to the fragments");
    }
}

#[test]
fn fault_vectors_are_rejected_by_name_or_tolerated_as_jt808_md_says() {
    let all = vectors();
    let faults: Vec<&Vector> = all.iter().filter(|v| v.kind == "frame-fault").collect();
    assert_eq!(faults.len(), 3);
    for v in faults {
        let id = v.id.as_str();
        let wire = v.bytes();
        let (events, _) = decode_all(std::slice::from_ref(&wire));
        match id {
            "fk-0200-2013-bad-checksum" => {
                // "checksum byte (escaped 7D02 = 0x7E) does not match; decoder must report an error"
                assert_eq!(v.expect["want_error"], Value::Bool(true));
                let checks: Vec<_> = events
                    .iter()
                    .map(|e| match e {
                        DecodeEvent::Rejected(err) => err.check(),
                        other => panic!("{id}: {other:?}"),
                    })
                    .collect();
                assert_eq!(checks, ["bad_checksum"], "{id}");
            }
            "iss-jtframework71-unescaped-7e" => {
                // "A strict 0x7E splitter yields two broken frames (first one 25 bytes)": the first
                // fails its check code, the bytes after the stray 0x7E are not a frame either.
                let shape: Vec<String> = events
                    .iter()
                    .map(|e| match e {
                        DecodeEvent::Rejected(err) => format!("{}@{}", err.check(), err.offset()),
                        DecodeEvent::Skipped { offset, len } => format!("skipped@{offset}+{len}"),
                        other => panic!("{id}: {other:?}"),
                    })
                    .collect();
                let stray = wire[1..].iter().position(|&b| b == 0x7E).unwrap() + 1;
                assert_eq!(stray, 26, "{id}: 25 content bytes before the stray 0x7E");
                assert_eq!(
                    shape,
                    [
                        "bad_checksum@0".to_string(),
                        format!("skipped@{}+{}", stray + 1, wire.len() - stray - 2)
                    ],
                    "{id}"
                );
                // "If the stray 7E is kept as data the XOR (0x94) and declared length (91) both
                // check out": confirm the claim with the codec's own parts.
                let content = &wire[1..wire.len() - 1];
                let (body_and_header, check) = content.split_at(content.len() - 1);
                let Value::Object(want) = &v.expect["if_inner_7E_treated_as_data"] else {
                    panic!()
                };
                assert_eq!(format!("0x{:02X}", check[0]), want["xor"].as_str().unwrap());
                assert_eq!(xor(body_and_header), check[0], "{id}: XOR over the unsplit frame");
                let (h, start) = Header::parse(body_and_header, 0).expect("declared length fits");
                assert_eq!(u64::from(h.body_len), want["body_len"].as_u64().unwrap());
                let Body::LocationReport(loc) = Body::decode(h.msg_id, h.version, &body_and_header[start..]) else {
                    panic!("{id}: location")
                };
                let mut w = want.clone();
                w.remove("xor");
                w.remove("body_len");
                check_location(id, &loc, &mut w);
                assert!(w.is_empty(), "{id}: {w:?}");
                // With `rejoin_unescaped_flag` the decoder itself recovers it, in any chunking.
                let mut cfg = DecoderConfig::default();
                cfg.deframer.rejoin_unescaped_flag = true;
                for chunk in [wire.len(), 1, 7, 26, 27] {
                    let mut d = Decoder::new(cfg);
                    let mut got = Vec::new();
                    for piece in wire.chunks(chunk) {
                        d.push(piece, Duration::ZERO, |e| got.push(e));
                    }
                    d.end_stream(|e| got.push(e));
                    let [DecodeEvent::UnescapedFlag { offset: 0, at }, DecodeEvent::Message(m)] = &got[..] else {
                        panic!("{id} in chunks of {chunk}: {got:?}")
                    };
                    assert_eq!(*at, stray as u64, "{id}");
                    let Body::LocationReport(rejoined) = &m.body else {
                        panic!("{id}: {m:?}")
                    };
                    assert_eq!(rejoined, &loc, "{id} in chunks of {chunk}");
                    assert_eq!(Some(m.header.serial), v.serial, "{id}");
                }
            }
            "iss-smallchi26-2019-header-without-flag" => {
                // Tolerated (JT808.md §2.3): only the 2019 layout fits the length, so it is read as
                // 2019 and the quirk is recorded; the top-level fields give the true reading.
                let msg = only_message(id, events);
                let h = &msg.header;
                assert_eq!(h.quirk, Some(HeaderQuirk::V2019LayoutWithoutFlag), "{id}");
                assert_eq!(h.version, Version::V2019);
                let mut e = v.expect.clone();
                strip_meta(&mut e);
                let Value::Object(mut intended) = take(id, &mut e, "intended") else {
                    panic!()
                };
                assert_eq!(take_str(id, &mut intended, "version"), h.version.as_str());
                assert_eq!(
                    take_u64(id, &mut intended, "protocol_version_byte"),
                    u64::from(h.protocol_version.unwrap())
                );
                assert_eq!(take_str(id, &mut intended, "phone"), phone_digits(h));
                assert_eq!(take_u64(id, &mut intended, "serial"), u64::from(h.serial));
                assert_eq!(take_u64(id, &mut intended, "body_len"), u64::from(h.body_len));
                assert!(intended.is_empty() && e.is_empty(), "{id}");
                check_header(v, h, &mut e);
                assert!(
                    matches!(msg.body, Body::QueryAllParams(ref b) if b.extra.is_empty()),
                    "{id}: 0x8104 empty body: {:?}",
                    msg.body
                );
                assert_eq!(msg.encode(), wire, "{id}: re-encoded with the flag still clear");
            }
            other => panic!("unmapped fault vector {other}: {}", v.note),
        }
    }
}

/// The wire bytes of a decoded message, as the stream vectors list frames.
fn frame_hex(m: &Message) -> String {
    hex::encode(m.encode())
}

#[test]
fn stream_vectors_give_frames_errors_and_pending_bytes() {
    let all = vectors();
    let streams: Vec<&Vector> = all.iter().filter(|v| v.kind == "stream").collect();
    assert_eq!(streams.len(), 4);
    for v in streams {
        let id = v.id.as_str();
        let wire = v.bytes();
        // Whole, and one byte at a time: the same result either way.
        let whole = decode_all(std::slice::from_ref(&wire));
        let bytewise = decode_all(&wire.iter().map(|&b| vec![b]).collect::<Vec<_>>());
        assert_eq!(whole, bytewise, "{id}: chunking does not matter");
        let (events, pending) = whole;
        let mut frames = Vec::new();
        let mut errors = Vec::new();
        for e in &events {
            match e {
                DecodeEvent::Message(m) => frames.push(frame_hex(m)),
                DecodeEvent::Rejected(err) => errors.push((err.check(), err.offset())),
                other => panic!("{id}: {other:?}"),
            }
        }
        let e = &v.expect;
        let listed = |key: &str| -> Vec<String> { serde_json::from_value(e[key].clone()).unwrap() };
        match id {
            "go-stream-2frames-plus-half" | "go-stream-2frames" | "go-stream-frame-then-garbage" => {
                assert_eq!(frames, listed("frames"), "{id}");
                assert!(errors.is_empty(), "{id}: {errors:?}");
                assert_eq!(Some(pending as u64), e["pending_bytes"].as_u64(), "{id}: pending");
            }
            "go-stream-corrupt-middle-frame" => {
                // go-jt808 stops at the bad chunk with 15 bytes pending; we report it and go on.
                let good = listed("frames_decoded");
                let bad = e["bad_frame"].as_str().unwrap();
                let bad_at = hex::encode(&wire).find(bad).unwrap() as u64 / 2;
                let third = hex::encode(&wire[wire.len() - 15..]);
                assert_eq!(frames, [good[0].clone(), third], "{id}: the third frame is delivered");
                assert_eq!(errors, [("too_short", bad_at)], "{id}: the 12-byte chunk is named");
                assert_eq!(e["decode_error"], Value::Bool(true));
                assert_eq!(pending, 0, "{id}: nothing pending (go-jt808 leaves 15)");
            }
            other => panic!("unmapped stream vector {other}: {}", v.note),
        }
    }
}
