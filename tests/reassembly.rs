//! Multi-packet messages as real terminals send them (JT808.md §4): other messages between the
//! packets, serials that are not consecutive, packets out of order and twice, two terminals at
//! once, and the real 18-packet 0x1205 resource list in any order. Reassembly is keyed on
//! (phone, message id, total) and ordered by index, never on `first serial + index - 1`.

use std::time::Duration;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use jt808_harness::codec::body::{Body, RawBody};
use jt808_harness::codec::frame::frame_into;
use jt808_harness::codec::reassembly::{ExpireReason, GroupKey, Missing, PRINT_BYTES, ReassemblyConfig, SLOT_BYTES};
use jt808_harness::codec::{DecodeEvent, Decoder, DecoderConfig, Header, Message, PacketInfo, Phone, Version};

#[allow(dead_code)] // each test binary uses a part of the shared fixtures
mod support;
use support::frames::{reframed, split_frame, with_serial};
use support::vectors::{resource_list_packets, wire as vector};

fn heartbeat(phone: &str, serial: u16) -> Vec<u8> {
    let phone = Phone::parse(phone).expect("digits");
    Message::new(0x0002, Version::V2013, phone, serial, body(0x0002, &[])).encode()
}

fn body(msg_id: u16, bytes: &[u8]) -> jt808_harness::codec::body::Body {
    jt808_harness::codec::body::Body::decode(msg_id, Version::V2013, bytes)
}

/// Pushes each frame as its own chunk, one millisecond apart; all events.
fn feed(d: &mut Decoder, frames: &[Vec<u8>]) -> Vec<DecodeEvent> {
    let mut events = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        d.push(f, Duration::from_millis(i as u64), |e| events.push(e));
    }
    events
}

fn messages(events: &[DecodeEvent]) -> Vec<&Message> {
    events
        .iter()
        .filter_map(|e| match e {
            DecodeEvent::Message(m) => Some(m),
            _ => None,
        })
        .collect()
}

/// The 0x0104 two-packet reply of `yz-0104-2pkt-*` re-sent with serials 1233 and 1250, as the
/// real reply in JT808.md §4 had them.
fn param_reply_1233_1250() -> (Vec<u8>, Vec<u8>) {
    (
        with_serial(&vector("yz-0104-2pkt-1of2"), 1233),
        with_serial(&vector("yz-0104-2pkt-2of2"), 1250),
    )
}

fn param_reply_body() -> Vec<u8> {
    let (_, mut a) = split_frame(&vector("yz-0104-2pkt-1of2"));
    a.extend(split_frame(&vector("yz-0104-2pkt-2of2")).1);
    assert_eq!(a.len(), 1169);
    a
}

fn assert_param_reply(m: &Message) {
    assert_eq!(m.header.msg_id, 0x0104);
    assert_eq!(m.header.phone, Phone::parse("13224005528").expect("digits"));
    assert_eq!(m.header.serial, 1233, "packet 1's serial");
    assert_eq!(m.header.packet, None);
    assert_eq!(m.header.body_len, 1169);
    assert_eq!(m.assembled.map(|a| (a.packets, a.first_serial)), Some((2, 1233)));
    assert_eq!(m.body_bytes(), param_reply_body());
}

#[test]
fn sixteen_messages_between_packets_with_serials_1233_and_1250_do_not_break_the_group() {
    let (p1, p2) = param_reply_1233_1250();
    let mut frames = vec![p1];
    // What the terminal sent in between: heartbeats and a location report, serials 1234..=1249.
    for serial in 1234..=1249u16 {
        frames.push(if serial == 1240 {
            with_serial(&vector("yz-0200-2013"), serial)
        } else {
            heartbeat("13224005528", serial)
        });
    }
    frames.push(p2);
    let events = feed(&mut Decoder::default(), &frames);
    assert_eq!(
        events[0],
        DecodeEvent::Packet {
            key: GroupKey {
                phone: Phone::parse("13224005528").expect("digits"),
                msg_id: 0x0104,
                total: 2
            },
            index: 1,
            serial: 1233
        }
    );
    let ms = messages(&events);
    assert_eq!(ms.len(), 17, "16 in between and the reassembled one: {events:#?}");
    let between: Vec<u16> = ms[..16].iter().map(|m| m.header.serial).collect();
    assert_eq!(between, (1234..=1249).collect::<Vec<u16>>());
    assert_eq!(ms[6].header.msg_id, 0x0200, "serial 1240");
    assert_param_reply(ms[16]);
}

#[test]
fn packets_out_of_order_reassemble_with_packet_1_header() {
    let (p1, p2) = param_reply_1233_1250();
    let mut d = Decoder::default();
    let events = feed(&mut d, &[p2, heartbeat("13224005528", 1251), p1]);
    assert!(matches!(
        events[0],
        DecodeEvent::Packet {
            index: 2,
            serial: 1250,
            ..
        }
    ));
    let ms = messages(&events);
    assert_eq!(ms.len(), 2);
    assert_param_reply(ms[1]);
    assert_eq!(d.reassembler().open_groups(), 0);
}

#[test]
fn message_sent_twice_comes_out_twice() {
    // A terminal that got no answer sends the whole message again (new serials, same content).
    let (p1, p2) = param_reply_1233_1250();
    let again_1 = with_serial(&vector("yz-0104-2pkt-1of2"), 1300);
    let again_2 = with_serial(&vector("yz-0104-2pkt-2of2"), 1301);
    let events = feed(&mut Decoder::default(), &[p1, p2, again_1, again_2]);
    let ms = messages(&events);
    assert_eq!(ms.len(), 2);
    assert_param_reply(ms[0]);
    assert_eq!(ms[1].assembled.map(|a| a.first_serial), Some(1300));
    assert_eq!(ms[1].body_bytes(), param_reply_body());
}

#[test]
fn every_packet_twice_gives_one_message_and_a_late_copy_is_a_duplicate_of_the_completed_group() {
    let (p1, p2) = param_reply_1233_1250();
    let mut d = decoder_with(ReassemblyConfig {
        timeout: Duration::from_secs(5),
        ..ReassemblyConfig::default()
    });
    let events = feed(&mut d, &[p1.clone(), p1, p2.clone(), p2]);
    assert!(matches!(events[0], DecodeEvent::Packet { index: 1, .. }));
    assert!(matches!(
        events[1],
        DecodeEvent::DuplicatePacket {
            index: 1,
            serial: 1233,
            differs: false,
            completed: false,
            ..
        }
    ));
    assert_param_reply(messages(&events[2..3])[0]);
    // The copy of packet 2 after completion has packet 2's serial: a late duplicate, not the
    // first packet of a new message that would never complete (explore found this phantom).
    assert!(
        matches!(
            events[3],
            DecodeEvent::DuplicatePacket {
                index: 2,
                serial: 1250,
                differs: false,
                completed: true,
                ..
            }
        ),
        "{:?}",
        events[3]
    );
    assert_eq!(events.len(), 4);
    assert_eq!(d.reassembler().open_groups(), 0);
    let mut later = Vec::new();
    d.expire(Duration::from_secs(6), |e| later.push(e));
    assert_eq!(later, [], "nothing expires: no phantom group was opened");
    // The serialised event says so (and an in-group duplicate's form is unchanged).
    let json = serde_json::to_string(&events[3]).expect("serialises");
    assert!(json.ends_with(r#""differs":false,"after_complete":true}"#), "{json}");
    let json = serde_json::to_string(&events[1]).expect("serialises");
    assert!(json.ends_with(r#""differs":false}"#), "{json}");
}

#[test]
fn a_late_copy_with_other_bytes_is_a_differing_duplicate_and_another_serial_is_a_new_group() {
    let (p1, p2) = param_reply_1233_1250();
    let mut d = decoder_with(ReassemblyConfig::default());
    feed(&mut d, &[p1.clone(), p2.clone()]);
    // Packet 1's serial with another fragment: still the completed group's packet 1, differing.
    let changed = reframed(&p1, |_, fragment| fragment[0] ^= 0xFF);
    let events = d.push_vec(&changed, Duration::from_millis(5));
    assert!(
        matches!(
            events[..],
            [DecodeEvent::DuplicatePacket {
                index: 1,
                serial: 1233,
                differs: true,
                completed: true,
                ..
            }]
        ),
        "{events:?}"
    );
    // The same message id and total with new serials is the next message: reassembled again.
    let events = feed(&mut d, &[with_serial(&p1, 1300), with_serial(&p2, 1301)]);
    let ms = messages(&events);
    assert_eq!(ms.len(), 1, "{events:?}");
    assert_eq!(ms[0].assembled.map(|a| a.first_serial), Some(1300));
    assert_eq!(d.reassembler().remembered_groups(), 2);
}

#[test]
fn completed_groups_are_remembered_for_the_timeout_and_up_to_the_count_limit() {
    let (p1, p2) = param_reply_1233_1250();
    let late_is_duplicate = |cfg: ReassemblyConfig, late_at: Duration| {
        let mut d = decoder_with(cfg);
        feed(&mut d, &[p1.clone(), p2.clone()]);
        // Another terminal's group completes after it (the same packets from another SIM).
        let other = |w: &[u8]| reframed(w, |h, _| h.phone = Phone::parse("13900000009").expect("digits"));
        d.push_vec(&other(&p1), Duration::from_millis(10));
        d.push_vec(&other(&p2), Duration::from_millis(11));
        d.expire(late_at, |_| {});
        let events = d.push_vec(&p2, late_at);
        assert_eq!(d.reassembler().bytes_held(), d.reassembler().reserved_bytes());
        matches!(events[..], [DecodeEvent::DuplicatePacket { completed: true, .. }])
    };
    let cfg = ReassemblyConfig {
        timeout: Duration::from_secs(5),
        ..ReassemblyConfig::default()
    };
    assert!(late_is_duplicate(cfg, Duration::from_millis(4_000)));
    // Past the timeout the group is forgotten: a copy then opens a group (as any new packet).
    assert!(!late_is_duplicate(cfg, Duration::from_millis(5_001)));
    // Only the newest completed group is remembered with a limit of 1; none with 0.
    let one = ReassemblyConfig {
        remember_completed: 1,
        ..cfg
    };
    assert!(!late_is_duplicate(one, Duration::from_millis(100)));
    let two = ReassemblyConfig {
        remember_completed: 2,
        ..cfg
    };
    assert!(late_is_duplicate(two, Duration::from_millis(100)));
    let none = ReassemblyConfig {
        remember_completed: 0,
        ..cfg
    };
    assert!(!late_is_duplicate(none, Duration::from_millis(100)));
}

#[test]
fn remembered_groups_count_in_the_byte_limit_and_give_way_to_open_groups() {
    // Room for a 992-byte packet and its slot, not for that and the remembered group's 2 prints.
    let (p1, p2) = param_reply_1233_1250();
    let max = 1000 + SLOT_BYTES;
    let mut d = decoder_with(ReassemblyConfig {
        max_bytes: max,
        ..ReassemblyConfig::default()
    });
    feed(&mut d, &[p1.clone(), p2.clone()]);
    assert_eq!(d.reassembler().remembered_groups(), 1);
    assert_eq!(d.reassembler().bytes_held(), 2 * PRINT_BYTES);
    // A large packet of a new group needs the room: the memory goes first, no group is evicted.
    let big = Message::new(
        0x0F31,
        Version::V2013,
        Phone::parse("13900000001").expect("digits"),
        7,
        body(0x0F31, &[0x11; 2000]),
    );
    let mut serial = 7u16;
    let packets = big.encode_packets(992, || {
        serial += 1;
        serial
    });
    let events = d.push_vec(&packets[0], Duration::from_millis(3));
    assert!(
        matches!(events[..], [DecodeEvent::Packet { index: 1, .. }]),
        "{events:?}"
    );
    assert_eq!(d.reassembler().remembered_groups(), 0, "forgotten to make room");
    assert_eq!(d.reassembler().bytes_held(), d.reassembler().reserved_bytes());
    assert!(d.reassembler().bytes_held() <= max);
}

#[test]
fn two_terminals_interleaved_each_get_their_own_message() {
    // Same message id and packet count from two SIMs, one with a 2013 header and one with 2019.
    let mut rng = ChaCha8Rng::seed_from_u64(1078);
    let body_a: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
    let body_b: Vec<u8> = (0..2500u32).map(|i| (i % 253) as u8 ^ 0x7E).collect();
    let a = Message::new(
        0x0F30,
        Version::V2013,
        Phone::parse("13900000001").expect("digits"),
        0,
        body(0x0F30, &body_a),
    );
    let b = Message::new(
        0x0F30,
        Version::V2019,
        Phone::parse("13900000002").expect("digits"),
        0,
        body(0x0F30, &body_b),
    );
    let mut sa = 100u16;
    let mut sb = 900u16;
    let pa = a.encode_packets(512, || {
        sa += 3;
        sa
    });
    let pb = b.encode_packets(512, || {
        sb += 2;
        sb
    });
    assert_eq!((pa.len(), pb.len()), (5, 5));
    let mut frames: Vec<Vec<u8>> = pa.into_iter().zip(pb).flat_map(|(x, y)| [x, y]).collect();
    let events = feed(&mut Decoder::default(), &frames);
    let ms = messages(&events);
    assert_eq!(ms.len(), 2);
    assert_eq!(ms[0].header.phone.to_string(), "13900000001");
    assert_eq!(ms[0].header.version, Version::V2013);
    assert_eq!(ms[0].body_bytes(), body_a);
    assert_eq!(ms[0].assembled.map(|x| x.first_serial), Some(103));
    assert_eq!(ms[1].header.phone.to_string(), "13900000002");
    assert_eq!(ms[1].header.version, Version::V2019);
    assert_eq!(ms[1].body_bytes(), body_b);
    assert_eq!(ms[1].assembled.map(|x| x.first_serial), Some(902));
    // Shuffled across both terminals: still one message each.
    frames.shuffle(&mut rng);
    let ms_events = feed(&mut Decoder::default(), &frames);
    let mut shuffled: Vec<(String, Vec<u8>)> = messages(&ms_events)
        .iter()
        .map(|m| (m.header.phone.to_string(), m.body_bytes()))
        .collect();
    shuffled.sort();
    assert_eq!(
        shuffled,
        [("13900000001".to_string(), body_a), ("13900000002".to_string(), body_b)]
    );
}

/// The one 0x1205 message of the 18 packets: 180 items of 28 bytes after the 6-byte head.
fn assert_resource_list(events: &[DecodeEvent]) {
    let ms = messages(events);
    assert_eq!(ms.len(), 1, "{events:#?}");
    let m = ms[0];
    assert_eq!(m.header.msg_id, 0x1205);
    assert_eq!(m.header.phone, Phone::parse("17299841738").expect("digits"));
    assert_eq!(m.header.serial, 0x42FC);
    assert_eq!(m.header.body_len, 5046);
    assert_eq!(m.assembled.map(|a| (a.packets, a.first_serial)), Some((18, 0x42FC)));
    let body = m.body_bytes();
    assert_eq!(body.len(), 5046);
    assert_eq!(body[0..2], [0x00, 0x02], "reply serial 2");
    assert_eq!(
        u32::from_be_bytes([body[2], body[3], body[4], body[5]]),
        180,
        "item count"
    );
    // The fragments in index order, whatever order they came in.
    let joined: Vec<u8> = resource_list_packets().iter().flat_map(|p| split_frame(p).1).collect();
    assert_eq!(body, joined);
    // Every other event is one buffered packet.
    let packets = events
        .iter()
        .filter(|e| matches!(e, DecodeEvent::Packet { .. }))
        .count();
    assert_eq!(packets, 17);
    assert_eq!(events.len(), 18);
}

#[test]
fn resource_list_of_18_packets_in_order() {
    let packets = resource_list_packets();
    let events = feed(&mut Decoder::default(), &packets);
    assert_resource_list(&events);
    let serials: Vec<u16> = events
        .iter()
        .filter_map(|e| match e {
            DecodeEvent::Packet { serial, .. } => Some(*serial),
            _ => None,
        })
        .collect();
    assert_eq!(serials, (0x42FC..0x430D).collect::<Vec<u16>>());
}

#[test]
fn resource_list_of_18_packets_reversed() {
    let mut packets = resource_list_packets();
    packets.reverse();
    assert_resource_list(&feed(&mut Decoder::default(), &packets));
}

#[test]
fn resource_list_of_18_packets_shuffled() {
    for seed in [1u64, 2, 3, 808, 1078] {
        let mut packets = resource_list_packets();
        packets.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        assert_resource_list(&feed(&mut Decoder::default(), &packets));
    }
}

#[test]
fn resource_list_as_one_stream_in_odd_chunks() {
    let stream = resource_list_packets().concat();
    let mut d = Decoder::default();
    let mut events = Vec::new();
    for chunk in stream.chunks(333) {
        d.push(chunk, Duration::ZERO, |e| events.push(e));
    }
    assert_resource_list(&events);
    assert_eq!(d.reassembler().open_groups(), 0);
    // What is left is the completed group's memory: 18 prints.
    assert_eq!(d.reassembler().remembered_groups(), 1);
    assert_eq!(d.reassembler().bytes_held(), 18 * PRINT_BYTES);
}

/// A decoder with these reassembly settings and the default deframer.
fn decoder_with(reassembly: ReassemblyConfig) -> Decoder {
    Decoder::new(DecoderConfig {
        reassembly,
        ..DecoderConfig::default()
    })
}

/// A decoder whose groups stall after 5 s without a packet and are kept 2 s more for the packets a
/// 0x8003 asks for.
fn waiting_decoder() -> Decoder {
    decoder_with(ReassemblyConfig {
        timeout: Duration::from_secs(5),
        retransmit_wait: Duration::from_secs(2),
        ..ReassemblyConfig::default()
    })
}

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn a_stalled_group_is_completed_by_the_packets_sent_again() {
    let packets = resource_list_packets();
    let mut d = waiting_decoder();
    for (i, p) in packets.iter().enumerate() {
        if i != 6 && i != 11 {
            d.push_vec(p, s(0));
        }
    }
    assert_eq!(d.next_deadline(), Some(s(5)));
    let stalled = d.push_vec(&[], s(5));
    let [DecodeEvent::GroupStalled(x)] = &stalled[..] else {
        panic!("{stalled:?}")
    };
    assert_eq!(
        (x.missing.ranges(), x.missing.len(), x.received, x.reason),
        (&[7..=7, 12..=12][..], 2, 16, ExpireReason::Timeout)
    );
    assert_eq!(d.reassembler().open_groups(), 1, "still open");
    assert_eq!(d.next_deadline(), Some(s(7)), "2 s more");
    // The terminal answers the 0x8003 with the two packets, under new serials.
    assert_eq!(d.push_vec(&with_serial(&packets[6], 900), s(6)).len(), 1, "buffered");
    assert_eq!(d.next_deadline(), Some(s(8)), "2 s from the last packet");
    let done = d.push_vec(&with_serial(&packets[11], 901), s(7));
    let [DecodeEvent::Message(m)] = &done[..] else {
        panic!("{done:?}")
    };
    assert_eq!(m.assembled.map(|a| a.packets), Some(18));
    assert_eq!(d.reassembler().open_groups(), 0);
}

#[test]
fn a_stalled_group_nobody_answers_expires_after_the_wait() {
    let packets = resource_list_packets();
    let mut d = waiting_decoder();
    d.push_vec(&packets[0], s(0));
    assert!(matches!(&d.push_vec(&[], s(5))[..], [DecodeEvent::GroupStalled(_)]));
    assert_eq!(d.push_vec(&[], s(6)), [], "within the wait");
    let expired = d.push_vec(&[], s(7));
    let [DecodeEvent::GroupExpired(x)] = &expired[..] else {
        panic!("{expired:?}")
    };
    assert_eq!(
        (x.received, x.missing.len(), x.missing.ranges()),
        (1, 17, &[2..=18][..])
    );
    assert_eq!(d.reassembler().open_groups(), 0);
}

#[test]
fn without_a_wait_a_group_expires_at_the_timeout_without_stalling() {
    let packets = resource_list_packets();
    let mut d = decoder_with(ReassemblyConfig {
        timeout: Duration::from_secs(5),
        ..ReassemblyConfig::default()
    });
    d.push_vec(&packets[0], s(0));
    assert!(matches!(&d.push_vec(&[], s(5))[..], [DecodeEvent::GroupExpired(_)]));
}

#[test]
fn a_stalled_group_is_still_evicted_by_the_group_limit() {
    let packets = resource_list_packets();
    let mut d = decoder_with(ReassemblyConfig {
        timeout: Duration::from_secs(5),
        retransmit_wait: Duration::from_secs(60),
        max_groups: 1,
        ..ReassemblyConfig::default()
    });
    d.push_vec(&packets[0], s(0));
    assert!(matches!(&d.push_vec(&[], s(5))[..], [DecodeEvent::GroupStalled(_)]));
    // Another terminal's group needs the only slot: the stalled one goes, reported as evicted.
    let other = Message::new(
        0x0801,
        Version::V2013,
        Phone::parse("13800000002").expect("digits"),
        0,
        Body::Raw(RawBody { raw: vec![0x5A; 40] }),
    );
    let mut serial = 0;
    let wire = other.encode_packets(16, || {
        serial += 1;
        serial
    });
    let events = d.push_vec(&wire[0], s(6));
    let [DecodeEvent::GroupExpired(x), DecodeEvent::Packet { .. }] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!((x.msg_id, x.reason), (0x1205, ExpireReason::GroupLimit));
    assert_eq!(d.reassembler().open_groups(), 1);
}

// ===== Hostile totals: bounded output and honest memory accounting =====

/// Packet `index` of `total` of a 0x0801 from terminal number `n`, with `fragment` as its body.
fn packet(n: u32, total: u16, index: u16, fragment: &[u8]) -> Vec<u8> {
    let phone = Phone::parse(&format!("139{n:08}")).expect("digits");
    let mut h = Header::new(0x0801, Version::V2013, phone, index);
    h.packet = Some(PacketInfo { total, index });
    let mut content = Vec::new();
    h.write(fragment.len(), &mut content);
    content.extend(fragment);
    let mut wire = Vec::new();
    frame_into(&content, &mut wire);
    wire
}

#[test]
fn missing_packets_are_reported_as_ranges_with_a_count() {
    let mut d = Decoder::default();
    for i in [1, 3, 4, 7] {
        d.push_vec(&packet(1, 10, i, &[i as u8]), Duration::ZERO);
    }
    let mut events = Vec::new();
    d.drain_groups(|e| events.push(e));
    let [DecodeEvent::GroupExpired(x)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(x.missing.ranges(), [2..=2, 5..=6, 8..=10]);
    assert_eq!(x.missing, [2, 5, 6, 8, 9, 10]);
    assert_eq!((x.missing.len(), x.received), (6, 4));
    assert!(x.missing.contains(9) && !x.missing.contains(7));
    assert_eq!(format!("{:?}", x.missing), "[2, 5..=6, 8..=10]");
    assert_eq!(x.missing.chunks(4).collect::<Vec<_>>(), [vec![2, 5, 6, 8], vec![9, 10]]);
    let json = serde_json::to_value(&events[0]).expect("serialises");
    assert_eq!(json["missing"], serde_json::json!([[2, 2], [5, 6], [8, 10]]));
    assert_eq!(json["missing_count"], 6);
    let listed = Missing::from_indices([9, 5, 3, 4, 3]);
    assert_eq!((listed.ranges(), listed.len()), (&[3..=5, 9..=9][..], 4));
}

/// 460 KB of input once printed 7.65 GB: every expired group listed its 65,534 missing indices.
#[test]
fn a_huge_declared_total_gives_a_report_as_short_as_the_packets_received() {
    let mut d = Decoder::default();
    let mut input = 0;
    let mut output = 0;
    let count = |e: DecodeEvent, output: &mut usize| {
        let line = serde_json::to_string(&e).expect("serialises");
        if let DecodeEvent::GroupExpired(x) = &e {
            assert_eq!(x.missing.ranges(), [2..=65535], "{line}");
            assert!(
                line.contains(r#""missing":[[2,65535]],"missing_count":65534"#),
                "{line}"
            );
        }
        *output += line.len();
    };
    for n in 0..2000 {
        let wire = packet(n, 65535, 1, &[0xAB; 4]);
        input += wire.len();
        d.push(&wire, Duration::ZERO, |e| count(e, &mut output));
    }
    d.drain_groups(|e| count(e, &mut output));
    assert!(output < 20 * input, "{input} bytes in gave {output} bytes of JSON");
}

/// After every packet of a hostile stream, the running account equals the buffers' capacities
/// summed, and neither passes the limit.
fn assert_accounted(d: &Decoder, max: usize, at: &str) {
    let r = d.reassembler();
    assert_eq!(r.bytes_held(), r.reserved_bytes(), "{at}: account drifted");
    assert!(
        r.reserved_bytes() <= max,
        "{at}: {} bytes reserved, limit {max}",
        r.reserved_bytes()
    );
}

#[test]
fn many_terminals_declaring_huge_totals_stay_within_the_byte_limit() {
    let max = 256 << 10;
    let mut d = decoder_with(ReassemblyConfig {
        max_bytes: max,
        max_groups: 100_000,
        ..ReassemblyConfig::default()
    });
    let mut evicted = 0;
    for n in 0..4000 {
        d.push(&packet(n, 65535, 1, &[0x5A; 500]), Duration::ZERO, |e| {
            evicted += usize::from(matches!(e, DecodeEvent::GroupExpired(x) if x.reason == ExpireReason::ByteLimit));
        });
        assert_accounted(&d, max, &format!("terminal {n}"));
    }
    assert!(evicted > 0, "the limit was reached and reported");
    // Each group holds its 500 bytes and one slot: the limit is not eaten by reservations.
    let per_group = 500 + SLOT_BYTES;
    assert_eq!(d.reassembler().open_groups(), max / per_group);
}

#[test]
fn one_group_growing_past_the_byte_limit_stays_within_it_until_given_up() {
    let max = 256 << 10;
    let mut d = decoder_with(ReassemblyConfig {
        max_bytes: max,
        ..ReassemblyConfig::default()
    });
    let mut given_up = None;
    for i in 1..=1000u16 {
        for e in d.push_vec(&packet(7, 65535, i, &[0x33; 700]), Duration::ZERO) {
            if let DecodeEvent::GroupExpired(x) = e {
                given_up = Some((i, x.received, x.reason, x.missing.ranges().to_vec()));
            }
        }
        assert_accounted(&d, max, &format!("packet {i}"));
        if given_up.is_some() {
            break;
        }
    }
    let (i, received, reason, missing) = given_up.expect("the group outgrew the limit");
    assert_eq!((received, reason), (i, ExpireReason::ByteLimit));
    assert_eq!(
        missing,
        [i + 1..=65535],
        "the packet that broke the limit counts as received"
    );
    assert!(usize::from(i) * 700 > max / 2, "not given up early: at packet {i}");
}
