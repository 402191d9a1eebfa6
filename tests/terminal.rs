//! The scripted terminal answers platform commands as JT/T 808 / 1078 terminals do: exact
//! replies, reply serials, delays, and re-sent packets.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jt808_harness::codec::body::{Body, MediaUpload, RawBody};
use jt808_harness::codec::deframer::{Deframer, Item};
use jt808_harness::codec::{DecodeEvent, Decoder, Header, Message, Phone, Version};
use jt808_harness::gateway::fleet::{FleetConfig, Mix};
use jt808_harness::gateway::source::SourceSpec;
use jt808_harness::gateway::terminal::{Terminal, TerminalScript, TerminalSettings};
use jt808_harness::gateway::{FeedItem, GatewayConfig};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

#[allow(dead_code)] // each test binary uses a part of the shared fixtures
mod support;

const PHONE: &str = "13912345678";

fn phone() -> Phone {
    Phone::parse(PHONE).unwrap()
}

/// A platform command as the gateway hands it to the script: encoded, then decoded.
fn command(msg_id: u16, version: Version, serial: u16, body: &[u8]) -> Message {
    let bytes = Message::new(
        msg_id,
        version,
        phone(),
        serial,
        Body::Raw(RawBody { raw: body.to_vec() }),
    )
    .encode();
    let mut out = Decoder::default().push_vec(&bytes, Duration::ZERO);
    match out.pop() {
        Some(DecodeEvent::Message(m)) => m,
        other => panic!("{other:?}"),
    }
}

/// The 0x9205 query body: every channel, no bounds, everything (JT808.md §7.3, 24 bytes).
fn query_all() -> Vec<u8> {
    vec![0; 24]
}

/// A 0x9206 body (JT808.md §7.4): 31 + k + l + m + n bytes.
fn upload_order() -> Vec<u8> {
    let mut b = Vec::new();
    b.push(9);
    b.extend_from_slice(b"127.0.0.1");
    b.extend_from_slice(&21u16.to_be_bytes());
    b.push(2);
    b.extend_from_slice(b"ab");
    b.push(2);
    b.extend_from_slice(b"cd");
    b.push(1);
    b.extend_from_slice(b"/");
    b.push(1); // channel
    b.extend_from_slice(&[0x24, 0x01, 0x01, 0x08, 0, 0]);
    b.extend_from_slice(&[0x24, 0x01, 0x01, 0x09, 0, 0]);
    b.extend_from_slice(&[0; 8]); // alarm
    b.extend_from_slice(&[0, 0, 0, 7]);
    assert_eq!(b.len(), 31 + 9 + 2 + 2 + 1);
    b
}

/// Header and body of every frame in the items.
fn frames(items: &[FeedItem]) -> Vec<(Header, Vec<u8>)> {
    let mut d = Deframer::default();
    let mut out = Vec::new();
    for i in items {
        d.push(&i.bytes, |it| match it {
            Item::Frame(f) => out.push((f.header.clone(), f.body().to_vec())),
            other => panic!("{other:?}"),
        });
    }
    out
}

fn decoded(items: &[FeedItem]) -> Vec<Message> {
    let mut dec = Decoder::default();
    let mut out = Vec::new();
    for i in items {
        dec.push(&i.bytes, i.due, |e| {
            if let DecodeEvent::Message(m) = e {
                out.push(m)
            }
        });
    }
    out
}

fn script() -> TerminalScript {
    TerminalScript::new(TerminalSettings::default(), 1)
}

#[test]
fn a_resource_query_gets_the_list_in_packets_naming_the_query_serial() {
    let mut s = script();
    let now = Duration::from_secs(5);
    let replies = s.on_client_message(&command(0x9205, Version::V2019, 77, &query_all()), now);
    // 24 items of 28 bytes + 6 = 678 body bytes: two packets of at most 512.
    assert_eq!(replies.len(), 2, "one item per packet");
    assert!(replies.iter().all(|r| r.due == now), "answered at once");
    let fs = frames(&replies);
    for (i, (h, body)) in fs.iter().enumerate() {
        assert_eq!(h.msg_id, 0x1205);
        assert_eq!(
            h.version,
            Version::V2019,
            "a new terminal answers in the command's version"
        );
        assert_eq!(h.phone, phone());
        assert_eq!(h.serial, i as u16, "the terminal's own counter, from 0");
        let p = h.packet.unwrap();
        assert_eq!((p.total, p.index), (2, i as u16 + 1));
        assert_eq!(body.len(), if i == 0 { 512 } else { 678 - 512 });
    }
    let msgs = decoded(&replies);
    assert_eq!(msgs.len(), 1);
    let Body::AvResourceList(list) = &msgs[0].body else {
        panic!("{:?}", msgs[0].body)
    };
    assert_eq!(list.reply_serial, 77);
    assert_eq!(list.items.len(), 24);
    assert!(
        list.items
            .iter()
            .all(|i| (1..=4).contains(&i.channel) && i.stream_type == 1)
    );
    assert_eq!(list.items[0].start.to_string(), "2024-01-01 08:00:00");
}

#[test]
fn an_upload_order_gets_0x0001_at_once_then_0x1206_after_the_delay() {
    for (settings, delay) in [
        (TerminalSettings::default(), Duration::from_secs(3)),
        (
            TerminalSettings {
                upload_delay_ms: 250,
                ..TerminalSettings::default()
            },
            Duration::from_millis(250),
        ),
    ] {
        let mut s = TerminalScript::new(settings, 1);
        let now = Duration::from_millis(1500);
        let replies = s.on_client_message(&command(0x9206, Version::V2013, 0x1B8A, &upload_order()), now);
        assert_eq!(replies.iter().map(|r| r.due).collect::<Vec<_>>(), [now, now + delay]);
        let msgs = decoded(&replies);
        let Body::TerminalGeneralResponse(ack) = &msgs[0].body else {
            panic!("{:?}", msgs[0])
        };
        assert_eq!((ack.reply_serial, ack.reply_id, ack.result), (0x1B8A, 0x9206, 0));
        let Body::FileUploadComplete(done) = &msgs[1].body else {
            panic!("{:?}", msgs[1])
        };
        assert_eq!((done.reply_serial, done.result), (0x1B8A, 0));
        assert_eq!((msgs[0].header.serial, msgs[1].header.serial), (0, 1));
    }
}

#[test]
fn supported_commands_get_result_0_unknown_ones_result_3_broken_ones_result_2() {
    let mut s = script();
    let result = |s: &mut TerminalScript, id: u16, body: &[u8]| -> Vec<(u16, u16, u8)> {
        decoded(&s.on_client_message(&command(id, Version::V2013, 9, body), Duration::ZERO))
            .iter()
            .map(|m| match &m.body {
                Body::TerminalGeneralResponse(g) => (g.reply_serial, g.reply_id, g.result),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    assert_eq!(result(&mut s, 0x9207, &[0, 9, 2]), [(9, 0x9207, 0)]);
    assert_eq!(result(&mut s, 0x9102, &[1, 0, 0, 1]), [(9, 0x9102, 0)]);
    assert_eq!(
        result(&mut s, 0x8103, &[1, 0, 0, 0, 1, 4, 0, 0, 0, 30]),
        [(9, 0x8103, 0)],
        "a 2019 terminal takes the parameters"
    );
    // A typed command without an answer of its own: 0x8202 temporary tracking, 30 s for 60 s.
    assert_eq!(result(&mut s, 0x8202, &[0, 30, 0, 0, 0, 60]), [(9, 0x8202, 0)]);
    // An id no standard types is unsupported.
    assert_eq!(result(&mut s, 0x8123, &[]), [(9, 0x8123, 3)]);
    assert_eq!(
        result(&mut s, 0x9205, &[0; 3]),
        [(9, 0x9205, 2)],
        "a cut 0x9205 is a message error"
    );
    // Answers are not answered (0x8004 answers the terminal's 0x0004); a terminal's own ids are
    // not commands.
    for id in [0x8001, 0x8100, 0x8004, 0x0200, 0x0001] {
        assert!(
            s.on_client_message(&command(id, Version::V2013, 9, &[0, 1, 0x02, 0x00, 0]), Duration::ZERO)
                .is_empty(),
            "0x{id:04X}"
        );
    }
    let stats = s.stats();
    assert_eq!((stats.unsupported, stats.malformed), (1, 1));
}

#[test]
fn a_silent_terminal_answers_nothing() {
    let mut s = TerminalScript::new(
        TerminalSettings {
            answer: false,
            ..TerminalSettings::default()
        },
        1,
    );
    assert!(
        s.on_client_message(&command(0x9205, Version::V2013, 1, &query_all()), Duration::ZERO)
            .is_empty()
    );
}

fn media(len: usize) -> Body {
    Body::MediaUpload(Box::new(MediaUpload {
        media_id: 41,
        media_type: 0,
        media_format: 0,
        event: 1,
        channel: 2,
        location: Some(jt808_harness::codec::body::Location::decode(&[0; 28]).unwrap()),
        data: (0..len).map(|i| (i * 7) as u8).collect(),
    }))
}

#[test]
fn a_retransmit_request_resends_exactly_the_named_packets_with_new_serials() {
    for version in [Version::V2013, Version::V2019] {
        let mut s = script();
        s.add(Terminal::new(phone(), version, 100, 16));
        // 36 + 2000 bytes in packets of 512: 4 packets, serials 100..=103.
        let original: Vec<FeedItem> = s
            .terminal_mut(&phone())
            .unwrap()
            .encode(0x0801, &media(2000), 512)
            .into_iter()
            .map(|bytes| FeedItem {
                due: Duration::ZERO,
                bytes,
                close: None,
            })
            .collect();
        let orig = frames(&original);
        assert_eq!(orig.len(), 4);
        assert_eq!(orig[0].0.serial, 100);
        // 0x8003: original serial WORD, count (BYTE in 2013, WORD in 2019), indices.
        let mut body = 100u16.to_be_bytes().to_vec();
        if version == Version::V2019 {
            body.extend_from_slice(&2u16.to_be_bytes());
        } else {
            body.push(2);
        }
        body.extend_from_slice(&[0, 2, 0, 4]);
        let now = Duration::from_secs(10);
        let replies = s.on_client_message(&command(0x8003, version, 5, &body), now);
        assert!(replies.iter().all(|r| r.due == now));
        let again = frames(&replies);
        assert_eq!(again.len(), 2, "{version}: only packets 2 and 4");
        for ((h, b), (oh, ob)) in again.iter().zip([&orig[1], &orig[3]]) {
            assert_eq!(b, ob, "{version}: the same fragment");
            let mut same = h.clone();
            same.serial = oh.serial;
            assert_eq!(
                &same, oh,
                "{version}: the same header but for the serial (same total/index)"
            );
        }
        assert_eq!((again[0].0.serial, again[1].0.serial), (104, 105), "fresh serials");
        // The re-sent packets complete a group that lost them.
        let mut dec = Decoder::default();
        let mut got = Vec::new();
        for (i, item) in original.iter().enumerate() {
            if i != 1 && i != 3 {
                dec.push(&item.bytes, Duration::ZERO, |_| {});
            }
        }
        for r in &replies {
            dec.push(&r.bytes, now, |e| {
                if let DecodeEvent::Message(m) = e {
                    got.push(m)
                }
            });
        }
        assert_eq!(got.len(), 1, "{version}: reassembled after the re-send");
        assert_eq!(got[0].body, media(2000));
    }
}

#[test]
fn a_retransmit_request_for_a_forgotten_message_is_answered_failure() {
    let mut s = script();
    let replies = s.on_client_message(&command(0x8003, Version::V2013, 6, &[0, 50, 1, 0, 1]), Duration::ZERO);
    let msgs = decoded(&replies);
    let Body::TerminalGeneralResponse(g) = &msgs[0].body else {
        panic!("{msgs:?}")
    };
    assert_eq!((g.reply_serial, g.reply_id, g.result), (6, 0x8003, 1));
    assert_eq!(s.stats().retransmit_misses, 1);
}

#[test]
fn a_media_response_with_indices_resends_those_packets() {
    let mut s = script();
    s.add(Terminal::new(phone(), Version::V2013, 0, 16));
    s.terminal_mut(&phone()).unwrap().encode(0x0801, &media(1500), 512);
    // 0x8800: media id 41, count 1, index 3.
    let replies = s.on_client_message(
        &command(0x8800, Version::V2013, 2, &[0, 0, 0, 41, 1, 0, 3]),
        Duration::ZERO,
    );
    let fs = frames(&replies);
    assert_eq!(fs.len(), 1);
    assert_eq!(fs[0].0.packet.map(|p| (p.total, p.index)), Some((3, 3)));
    assert!(
        s.on_client_message(&command(0x8800, Version::V2013, 3, &[0, 0, 0, 41]), Duration::ZERO)
            .is_empty(),
        "a plain acknowledgement gets no answer"
    );
}

#[test]
fn a_fleet_terminal_answers_with_its_own_version_and_serial_counter() {
    let cfg = FleetConfig {
        terminals: 2,
        messages: 3,
        version: jt808_harness::gateway::fleet::FleetVersion::V2019,
        mix: Mix::LOCATION_ONLY,
        ..FleetConfig::default()
    };
    let mut fleet = jt808_harness::gateway::fleet::Fleet::new(cfg, 3).unwrap();
    let first = Phone::parse("13800000001").unwrap();
    let mut sent = 0;
    while let Some(item) = jt808_harness::gateway::Feed::next_item(&mut fleet) {
        if frames(&[item])[0].0.phone == first {
            sent += 1;
        }
    }
    assert_eq!(sent, 3);
    // A 2013-layout command to a 2019 terminal: the answer still comes in the terminal's 2019.
    let mut cmd = command(0x9207, Version::V2013, 31, &[0, 9, 0]);
    cmd.header.phone = first;
    let replies = jt808_harness::gateway::Feed::on_client_message(&mut fleet, &cmd, Duration::from_secs(9));
    let (h, _) = &frames(&replies)[0];
    assert_eq!(
        (h.version, h.serial),
        (Version::V2019, 3),
        "after its 3 reports (0, 1, 2)"
    );
}

/// The whole loop through the gateway, paused clock: the client orders an upload and gets the
/// general response at once and the completion 3 s later.
#[tokio::test(start_paused = true)]
async fn through_the_gateway_the_client_gets_the_ack_then_the_completion() {
    let spec = SourceSpec::Fleet(FleetConfig {
        terminals: 1,
        messages: 1,
        interval_ms: 60_000,
        ..FleetConfig::default()
    });
    let feeds = spec.feeds(1).unwrap();
    let gw = support::gateway::in_memory(GatewayConfig::default(), feeds.into_factory());
    let mut ws = gw.connect("/").await;
    // The fleet's one report (phase within the 60 s interval).
    let WsMessage::Binary(_) = ws.next().await.unwrap().unwrap() else {
        panic!()
    };
    let mut cmd = command(0x9206, Version::V2013, 500, &upload_order());
    cmd.header.phone = Phone::parse("13800000001").unwrap();
    let sent_at = Instant::now();
    ws.send(WsMessage::Binary(cmd.encode().into())).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        let WsMessage::Binary(b) = ws.next().await.unwrap().unwrap() else {
            panic!()
        };
        let at = sent_at.elapsed();
        let m = decoded(&[FeedItem {
            due: at,
            bytes: b.to_vec(),
            close: None,
        }]);
        got.push((m[0].header.msg_id, m[0].body.reply_serial(), at));
    }
    assert_eq!(got[0].0, 0x0001);
    assert_eq!(got[0].1, Some(500));
    assert!(got[0].2 < Duration::from_millis(5), "{:?}", got[0].2);
    assert_eq!((got[1].0, got[1].1), (0x1206, Some(500)));
    assert!(
        got[1].2 >= Duration::from_secs(3) && got[1].2 < Duration::from_millis(3005),
        "{:?}",
        got[1].2
    );
}

// ===== answers built from what the terminal holds =====

/// A platform command built from its JSON fields (as a scenario writes it), encoded, decoded.
fn command_of(msg_id: u16, version: Version, serial: u16, fields: serde_json::Value) -> Message {
    let body = Body::command(msg_id, fields).unwrap_or_else(|e| panic!("0x{msg_id:04X}: {e}"));
    let mut raw = Vec::new();
    body.encode(version, &mut raw);
    command(msg_id, version, serial, &raw)
}

/// The answers of `s` to `cmd`, decoded.
fn answers(s: &mut TerminalScript, cmd: &Message) -> Vec<Message> {
    decoded(&s.on_client_message(cmd, Duration::from_secs(2)))
}

/// `(id, value JSON)` of every parameter of a 0x0104, with its reply serial.
fn params_of(m: &Message) -> (u16, Vec<(u32, serde_json::Value)>) {
    assert_eq!(m.header.msg_id, 0x0104);
    let Body::ParamAnswer(a) = &m.body else {
        panic!("{:?}", m.body)
    };
    assert!(a.issues.is_empty(), "{:?}", a.issues);
    assert_eq!(
        a.count as usize,
        a.params.len(),
        "the declared count is the number sent"
    );
    let json = serde_json::to_value(&a.params).unwrap();
    let values = json
        .as_array()
        .unwrap()
        .iter()
        .zip(&a.params)
        .map(|(j, p)| (p.id, j["value"].clone()))
        .collect();
    (a.reply_serial, values)
}

#[test]
fn parameters_set_by_0x8103_are_what_0x8104_returns_naming_its_serial() {
    let mut s = script();
    let before = answers(&mut s, &command(0x8104, Version::V2013, 3, &[]));
    assert_eq!(before.len(), 1, "one 0x0104, no 0x0001");
    let (serial, held) = params_of(&before[0]);
    assert_eq!(serial, 3);
    assert_eq!(held.len(), 16, "the documented default set");
    assert_eq!(held[0], (0x0001, serde_json::json!(30)));

    let set = command_of(
        0x8103,
        Version::V2013,
        4,
        serde_json::json!({"params": [
            {"name": "heartbeat_interval", "value": 60},
            {"id": "0x0083", "value": "粤B99999"},
            {"id": "0xF001", "raw": "0102"},
        ]}),
    );
    let ack = answers(&mut s, &set);
    let Body::TerminalGeneralResponse(g) = &ack[0].body else {
        panic!("{ack:?}")
    };
    assert_eq!((g.reply_serial, g.reply_id, g.result), (4, 0x8103, 0));

    let (serial, after) = params_of(&answers(&mut s, &command(0x8104, Version::V2013, 5, &[]))[0]);
    assert_eq!(serial, 5);
    assert_eq!(after.len(), 17, "a new vendor id is held too");
    let get = |id| after.iter().find(|p| p.0 == id).map(|p| p.1.clone());
    assert_eq!(get(0x0001), Some(serde_json::json!(60)));
    assert_eq!(get(0x0083), Some(serde_json::json!("粤B99999")));
    assert_eq!(
        get(0x0055),
        Some(serde_json::json!(100)),
        "untouched ones keep their value"
    );
    assert!(get(0xF001).is_some());
}

#[test]
fn query_0x8106_returns_just_the_asked_ids_in_their_order() {
    let mut s = script();
    // 0xF0F0 is not held: left out.
    let q = command_of(
        0x8106,
        Version::V2019,
        12,
        serde_json::json!({"ids": [0x0055, 0xF0F0, 0x0001]}),
    );
    let got = answers(&mut s, &q);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header.version, Version::V2019);
    let (serial, params) = params_of(&got[0]);
    assert_eq!(serial, 12);
    let ids: Vec<u32> = params.iter().map(|p| p.0).collect();
    assert_eq!(ids, [0x0055, 0x0001]);
}

#[test]
fn default_parameters_are_seeded_by_the_phone_not_the_session() {
    let all = |seed: u64, phone: &str| {
        let mut s = TerminalScript::new(TerminalSettings::default(), seed);
        let mut cmd = command(0x8104, Version::V2013, 1, &[]);
        cmd.header.phone = Phone::parse(phone).unwrap();
        params_of(&answers(&mut s, &cmd)[0]).1
    };
    assert_eq!(all(1, PHONE), all(99, PHONE), "same phone, any seed: same defaults");
    let (a, b) = (all(1, "13800000001"), all(1, "13800000002"));
    assert_ne!(a, b, "odometer and plate differ per vehicle");
    let differing: Vec<u32> = a.iter().zip(&b).filter(|(x, y)| x != y).map(|(x, _)| x.0).collect();
    assert_eq!(differing, [0x0080, 0x0083]);
}

#[test]
fn a_set_that_would_hold_more_than_255_parameters_is_refused_whole() {
    let mut s = script();
    let params: Vec<serde_json::Value> = (0..250u32)
        .map(|i| serde_json::json!({"id": 0xF000 + i, "raw": "00"}))
        .collect();
    let set = command_of(0x8103, Version::V2013, 8, serde_json::json!({ "params": params }));
    let Body::TerminalGeneralResponse(g) = &answers(&mut s, &set)[0].body else {
        panic!()
    };
    assert_eq!(g.result, 1, "16 held + 250 new > MAX_PARAMS");
    assert_eq!(s.stats().over_limit, 1);
    let (_, held) = params_of(&answers(&mut s, &command(0x8104, Version::V2013, 9, &[]))[0]);
    assert_eq!(held.len(), 16, "nothing of the refused set was taken");
}

#[test]
fn attributes_0x8107_come_in_the_terminals_layout() {
    for version in [Version::V2013, Version::V2019] {
        let mut s = script();
        let got = answers(&mut s, &command(0x8107, version, 7, &[]));
        assert_eq!(got.len(), 1, "{version:?}: one 0x0107, no 0x0001");
        let Body::TerminalAttributes(a) = &got[0].body else {
            panic!("{:?}", got[0].body)
        };
        assert_eq!((got[0].header.msg_id, got[0].header.version), (0x0107, version));
        assert_eq!(a.terminal_id.to_string(), "2345678", "the phone's last 7 digits");
        assert_eq!(a.maker.to_string(), "SIMHS");
        let mut again = Vec::new();
        got[0].body.encode(version, &mut again);
        assert_eq!(
            Body::decode(0x0107, version, &again),
            got[0].body,
            "{version:?} re-reads"
        );
    }
}

/// The `(reply serial, lat, lng, status)` of a 0x0201 or 0x0500.
fn position_of(m: &Message) -> (u16, u32, u32, u32) {
    let (Body::LocationAnswer(a) | Body::VehicleControlAnswer(a)) = &m.body else {
        panic!("{:?}", m.body)
    };
    (a.reply_serial, a.location.lat, a.location.lng, a.location.status)
}

#[test]
fn location_query_0x8201_answers_with_the_latest_report_and_the_commands_serial() {
    let cfg = FleetConfig {
        terminals: 1,
        messages: 4,
        mix: Mix::LOCATION_ONLY,
        ..FleetConfig::default()
    };
    let mut fleet = jt808_harness::gateway::fleet::Fleet::new(cfg, 5).unwrap();
    let mut last = None;
    while let Some(item) = jt808_harness::gateway::Feed::next_item(&mut fleet) {
        last = decoded(&[item]).pop();
    }
    let Some(Message {
        body: Body::LocationReport(report),
        ..
    }) = last
    else {
        panic!("{last:?}")
    };
    let mut cmd = command(0x8201, Version::V2013, 321, &[]);
    cmd.header.phone = Phone::parse("13800000001").unwrap();
    let got = decoded(&jt808_harness::gateway::Feed::on_client_message(
        &mut fleet,
        &cmd,
        Duration::from_secs(9),
    ));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header.msg_id, 0x0201);
    assert_eq!(position_of(&got[0]), (321, report.lat, report.lng, report.status));
    let Body::LocationAnswer(a) = &got[0].body else {
        panic!()
    };
    assert_eq!(a.location.time, report.time);

    // A terminal with no reports: parked in Shenzhen at the current virtual time.
    let mut s = script();
    let got = answers(&mut s, &command(0x8201, Version::V2013, 2, &[]));
    assert_eq!(position_of(&got[0]).1, 22_540_000);
    let Body::LocationAnswer(a) = &got[0].body else {
        panic!()
    };
    assert_eq!(a.location.time.to_string(), "2024-01-01 08:00:02");
}

#[test]
fn vehicle_control_0x8500_locks_the_doors_and_answers_0x0500_with_the_status() {
    const LOCKED: u32 = 1 << 12;
    let mut s = script();
    // 2013: flag bit 0 = 1 locks.
    let got = answers(&mut s, &command(0x8500, Version::V2013, 40, &[1]));
    assert_eq!((got.len(), got[0].header.msg_id), (1, 0x0500));
    let (serial, _, _, status) = position_of(&got[0]);
    assert_eq!((serial, status & LOCKED), (40, LOCKED));
    // A query after it shows the doors still locked.
    let (_, _, _, status) = position_of(&answers(&mut s, &command(0x8201, Version::V2013, 41, &[]))[0]);
    assert_eq!(status & LOCKED, LOCKED);
    // 2019: control type 0x0001, parameter 1 unlocks.
    let mut s19 = script();
    let unlock = command(0x8500, Version::V2019, 42, &[0, 1, 0, 1, 1]);
    let (_, _, _, status) = position_of(&answers(&mut s19, &unlock)[0]);
    assert_eq!(status & LOCKED, 0);
    let lock = command(0x8500, Version::V2019, 43, &[0, 1, 0, 1, 0]);
    assert_eq!(position_of(&answers(&mut s19, &lock)[0]).3 & LOCKED, LOCKED);
}

#[test]
fn camera_shot_0x8801_answers_0x0805_then_uploads_each_photo_and_0x8802_finds_them() {
    let mut s = script();
    let shot = command_of(
        0x8801,
        Version::V2013,
        50,
        serde_json::json!({"channel": 2, "command": 2, "interval": 0, "save_flag": 0, "resolution": 1,
            "quality": 5, "brightness": 128, "contrast": 64, "saturation": 64, "chroma": 128}),
    );
    let got = answers(&mut s, &shot);
    let ids: Vec<u16> = got.iter().map(|m| m.header.msg_id).collect();
    assert_eq!(
        ids,
        [0x0805, 0x0801, 0x0801],
        "the answer first, then one upload per photo"
    );
    let Body::CameraShotAnswer(a) = &got[0].body else {
        panic!()
    };
    assert_eq!(
        (a.reply_serial, a.result, a.media_ids.clone()),
        (50, 0, Some(vec![1, 2]))
    );
    for (m, id) in got[1..].iter().zip([1, 2]) {
        let Body::MediaUpload(u) = &m.body else { panic!() };
        assert_eq!((u.media_id, u.channel, u.event), (id, 2, 0));
        assert_eq!(&u.data[..2], &[0xFF, 0xD8], "a JPEG");
    }
    let search = |channel: u8| {
        serde_json::json!({"media_type": 0, "channel": channel, "event": 0,
            "start": "2000-00-00 00:00:00", "end": "2000-00-00 00:00:00"})
    };
    let found = answers(&mut s, &command_of(0x8802, Version::V2013, 51, search(0)));
    assert_eq!(found.len(), 1);
    let Body::MediaSearchAnswer(r) = &found[0].body else {
        panic!("{:?}", found[0].body)
    };
    assert_eq!(r.reply_serial, 51);
    assert_eq!(r.items.iter().map(|i| i.media_id).collect::<Vec<_>>(), [1, 2]);
    let none = answers(&mut s, &command_of(0x8802, Version::V2013, 52, search(3)));
    let Body::MediaSearchAnswer(r) = &none[0].body else {
        panic!()
    };
    assert!(r.items.is_empty(), "nothing on channel 3");
}

#[test]
fn more_photos_than_max_shots_are_capped_and_counted() {
    let mut s = script();
    let shot = command_of(
        0x8801,
        Version::V2013,
        1,
        serde_json::json!({"channel": 1, "command": 200, "interval": 0, "save_flag": 1, "resolution": 1,
            "quality": 5, "brightness": 0, "contrast": 0, "saturation": 0, "chroma": 0}),
    );
    let got = answers(&mut s, &shot);
    assert_eq!(got.len(), 1, "save flag 1: kept, not uploaded");
    let Body::CameraShotAnswer(a) = &got[0].body else {
        panic!()
    };
    assert_eq!(a.media_ids.as_ref().map(Vec::len), Some(8));
    assert_eq!(s.stats().shots_capped, 1);
}

#[test]
fn areas_set_by_0x8600_are_what_0x8608_returns_until_deleted() {
    let mut s = script();
    // Setting type 0, one circle: id 7, attr 0, 22.5 N 114.0 E, radius 100 m.
    let circle = hex::decode("0001 00000007 0000 0157A4E0 06CB8F60 00000064".replace(' ', "")).unwrap();
    let ack = answers(&mut s, &command(0x8600, Version::V2013, 60, &circle));
    assert!(matches!(&ack[0].body, Body::TerminalGeneralResponse(g) if g.result == 0 && g.reply_serial == 60));
    let query = hex::decode("01 00000000".replace(' ', "")).unwrap();
    let got = answers(&mut s, &command(0x8608, Version::V2019, 61, &query));
    assert_eq!(got[0].header.msg_id, 0x0608);
    let json = serde_json::to_value(&got[0].body).unwrap();
    assert_eq!(json["area_type"], 1);
    assert_eq!(json["areas"]["circles"][0]["id"], 7, "{json}");
    assert_eq!(json["areas"]["circles"][0]["radius"], 100);
    // 0x8601 with no ids deletes every circle.
    answers(&mut s, &command(0x8601, Version::V2013, 62, &[0]));
    let json = serde_json::to_value(&answers(&mut s, &command(0x8608, Version::V2019, 63, &query))[0].body).unwrap();
    assert_eq!(json["areas"]["circles"], serde_json::json!([]));
    // A 2019 terminal holds a circle set in the 2013 layout in its own (with a name), so its
    // 0x0608 reads back whole.
    let mut s19 = script();
    answers(&mut s19, &command(0x8201, Version::V2019, 1, &[]));
    answers(&mut s19, &command(0x8600, Version::V2013, 2, &circle));
    let got = answers(&mut s19, &command(0x8608, Version::V2019, 3, &query));
    let json = serde_json::to_value(&got[0].body).unwrap();
    assert_eq!(json["areas"]["circles"][0]["name"], "", "{json}");
    // An area type the standard does not have: failure.
    let bad = answers(&mut s, &command(0x8608, Version::V2019, 64, &[9, 0, 0, 0, 0]));
    assert!(matches!(&bad[0].body, Body::TerminalGeneralResponse(g) if g.result == 1));
}

#[test]
fn av_attributes_0x9003_are_answered_by_0x1003() {
    let mut s = script();
    let got = answers(&mut s, &command(0x9003, Version::V2013, 70, &[]));
    assert_eq!(got.len(), 1, "no 0x0001 beside it");
    let Body::AvAttributes(a) = &got[0].body else {
        panic!("{:?}", got[0].body)
    };
    assert_eq!((a.max_video_channels, a.video_encoding), (4, 98));
}

/// 0x8700 collects recorder data: 0x0700 names the command's serial and word and carries a GB/T
/// 19056 upload frame (55 7A, XOR check right) with the typed data of the common commands.
#[test]
fn recorder_collect_0x8700_is_answered_by_0x0700_with_a_checked_gbt19056_frame() {
    let mut s = script();
    for (word, want) in [
        (0x02u8, Some("time")),
        (0x05, Some("vehicle_info")),
        (0x01, Some("driver_licence")),
        (0x09, None),
    ] {
        let got = answers(&mut s, &command(0x8700, Version::V2013, 80 + u16::from(word), &[word]));
        assert_eq!(got.len(), 1, "0x{word:02X}: no 0x0001 beside it");
        assert_eq!(got[0].header.msg_id, 0x0700);
        let json = serde_json::to_value(&got[0].body).unwrap();
        assert_eq!(json["reply_serial"], 80 + u64::from(word), "{json}");
        assert_eq!(json["command"], u64::from(word), "{json}");
        let frame = &json["frame"];
        assert_eq!(
            (frame["command"].clone(), frame["check_ok"].clone()),
            (word.into(), true.into()),
            "{json}"
        );
        match want {
            Some(kind) => assert!(frame["block"].get(kind).is_some(), "0x{word:02X}: {json}"),
            None => assert_eq!(frame["len"], 0, "{json}"),
        }
    }
}

/// 0x8702 asks who drives: 0x0702 in the terminal's edition, a card read (state 1, result 0).
#[test]
fn driver_identity_0x8702_is_answered_by_0x0702_in_the_terminals_edition() {
    for version in [Version::V2013, Version::V2019] {
        let mut s = script();
        let got = answers(&mut s, &command(0x8702, version, 90, &[]));
        assert_eq!(got.len(), 1, "{version:?}");
        assert_eq!(got[0].header.msg_id, 0x0702);
        let json = serde_json::to_value(&got[0].body).unwrap();
        assert_eq!(
            (json["state"].clone(), json["ic_result"].clone()),
            (1.into(), 0.into()),
            "{json}"
        );
        assert_eq!(json["name"], "张三", "{json}");
        assert_eq!(json.get("id_number").is_some(), version == Version::V2019, "{json}");
    }
}

/// Every answer the terminal gives is, to the client, the confirmation of the command it answers
/// (by reply serial where the body has one), and the id the client's request() waits for.
#[test]
fn the_client_takes_each_answer_as_the_confirmation_of_its_command() {
    use jt808_harness::client::replies::{answer_of, final_answer_id};
    let shot = serde_json::json!({"channel": 1, "command": 1, "interval": 0, "save_flag": 0, "resolution": 1,
        "quality": 5, "brightness": 0, "contrast": 0, "saturation": 0, "chroma": 0});
    let search = serde_json::json!({"media_type": 0, "channel": 0, "event": 0,
        "start": "2000-00-00 00:00:00", "end": "2000-00-00 00:00:00"});
    let cmds = [
        (0x8104, command(0x8104, Version::V2013, 100, &[]), true),
        (
            0x8106,
            command_of(0x8106, Version::V2013, 101, serde_json::json!({"ids": [1]})),
            true,
        ),
        (0x8107, command(0x8107, Version::V2013, 102, &[]), false),
        (0x8201, command(0x8201, Version::V2013, 103, &[]), true),
        (0x8500, command(0x8500, Version::V2013, 104, &[1]), true),
        (0x8608, command(0x8608, Version::V2019, 105, &[1, 0, 0, 0, 0]), false),
        (0x8801, command_of(0x8801, Version::V2013, 106, shot), true),
        (0x8802, command_of(0x8802, Version::V2013, 107, search), true),
        (0x9003, command(0x9003, Version::V2013, 108, &[]), false),
        (0x8103, command(0x8103, Version::V2013, 109, &[0]), true),
        (0x8700, command(0x8700, Version::V2013, 110, &[0x02]), true),
        (0x8702, command(0x8702, Version::V2013, 111, &[]), false),
    ];
    let mut s = script();
    for (id, cmd, by_serial) in cmds {
        let first = &answers(&mut s, &cmd)[0];
        assert_eq!(first.header.msg_id, final_answer_id(id), "0x{id:04X}");
        let a = answer_of(first).unwrap_or_else(|| panic!("0x{id:04X}: {first:?} is no answer"));
        assert!(a.answers_command(id, cmd.header.serial), "0x{id:04X}: {a:?}");
        assert_eq!(a.by_serial, by_serial, "0x{id:04X}");
        if by_serial {
            assert!(
                !a.answers_command(id, cmd.header.serial + 1),
                "0x{id:04X}: another serial"
            );
        }
    }
}

/// The bundled set-then-query scenario, run: each 0x0104 the client decodes carries the values
/// the 0x8103 set (the snapshot shows them; this holds whatever the snapshot says).
#[test]
fn the_bundled_parameter_scenario_reads_back_what_it_set() {
    use jt808_harness::scenario::Scenario;
    use jt808_harness::scenario::runner::{self, Mode};
    let path = std::path::Path::new("scenarios/parameters_set_by_0x8103_are_what_0x8104_and_0x8106_return.toml");
    let sc = Scenario::load(path).unwrap();
    let yaml = runner::run(&sc, Mode::Snapshot).unwrap().to_yaml();
    let answers: Vec<&str> = yaml
        .lines()
        .filter(|l| l.contains(r#""by":"client","type":"message","msg_id":"0x0104""#))
        .collect();
    assert_eq!(answers.len(), 2, "one 0x0104 to the 0x8104, one to the 0x8106");
    for a in answers {
        assert!(
            a.contains(r#""name":"heartbeat_interval","type":"dword","value":60"#),
            "{a}"
        );
        assert!(
            a.contains(r#""name":"plate","type":"string","value":"粤B12345""#),
            "{a}"
        );
    }
}
