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
        [(9, 0x8103, 3)]
    );
    assert_eq!(
        result(&mut s, 0x9205, &[0; 3]),
        [(9, 0x9205, 2)],
        "a cut 0x9205 is a message error"
    );
    // Answers are not answered; a terminal's own ids are not commands.
    for id in [0x8001, 0x8100, 0x0200, 0x0001] {
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
        mix: Mix {
            location: 1,
            heartbeat: 0,
            batch: 0,
            media: 0,
            av_list: 0,
        },
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
