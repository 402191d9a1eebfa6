//! Each fault alone on a fixed feed (toxiproxy's per-toxic tests): exactly what it does to the
//! bytes, what the codec's decoder makes of the result, that the same seed gives the same bytes,
//! and that the log names it. Then the triggers, the spec parsers and the pipeline contract.
//!
//! The feed: three 0x0200 location reports (serials 1-3, bodies carrying a 0x7E and a 0x7D so
//! every frame has escape pairs) and a 0x1205 resource list of 5 items cut into 3 sub-packets
//! (serials 10-12), one frame per WebSocket message, each behind an 18-byte envelope prefix.

use std::time::Duration;

use jt808_harness::codec::body::{Body, RawBody};
use jt808_harness::codec::frame::{unescape_into, xor};
use jt808_harness::codec::{DecodeEvent, Decoder, HeaderQuirk, Message, Phone, Version};
use jt808_harness::faults::{Action, ConnectDecision, Direction, FaultRecord, FaultSpec, FaultSpecError, Pipeline};

const PREFIX: &[u8; 18] = b"ENVELOPE-PREFIX-18";
const CONN: u64 = 1;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn phone() -> Phone {
    Phone::parse("12345678901").unwrap()
}

/// A 0x0200 frame. The latitude holds 0x7E 0x7D, so the body has two escape pairs.
fn location(serial: u16) -> Vec<u8> {
    #[rustfmt::skip]
    let body = vec![
        0, 0, 0, 0,             // alarm
        0, 0, 0, 2,             // status: positioned
        0x01, 0x7E, 0x7D, 0x10, // latitude
        0x06, 0x5F, 0x5E, 0x10, // longitude
        0, 10,                  // altitude
        0, 50,                  // speed
        0, 90,                  // direction
        0x24, 0x01, 0x02, 0x03, 0x04, serial as u8, // time
    ];
    Message::new(
        0x0200,
        Version::V2013,
        phone(),
        serial,
        Body::Raw(RawBody { raw: body }),
    )
    .encode()
}

/// The 0x1205 resource list (5 items) as 3 sub-packet frames of at most 60 body bytes.
fn resource_list_packets() -> Vec<Vec<u8>> {
    let mut body = vec![0x00, 0x00, 0, 0, 0, 5];
    for ch in 1..=5u8 {
        body.push(ch);
        body.extend([0x24, 0x11, 0x02, 0x00, 0x00, 0x00, 0x24, 0x11, 0x02, 0x00, 0x01, 0x02]);
        body.extend([0u8; 8]);
        body.extend([0, 1, 1, 0, 0, 0, 0x0B]);
    }
    let msg = Message::new(0x1205, Version::V2013, phone(), 10, Body::Raw(RawBody { raw: body }));
    let mut serial = 9;
    msg.encode_packets(60, || {
        serial += 1;
        serial
    })
}

fn wrap(frames: &[&[u8]]) -> Vec<u8> {
    let mut m = PREFIX.to_vec();
    for f in frames {
        m.extend_from_slice(f);
    }
    m
}

/// The feed: 3 locations then 3 packets, one frame per message.
fn feed() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = (1..=3).map(|s| wrap(&[&location(s)])).collect();
    v.extend(resource_list_packets().iter().map(|p| wrap(&[p])));
    v
}

struct Run {
    actions: Vec<Action>,
    log: Vec<FaultRecord>,
    /// What `on_close` handed back.
    undelivered: Vec<Vec<u8>>,
}

impl Run {
    /// The to_client messages delivered, in order.
    fn sent(&self) -> Vec<Vec<u8>> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Send {
                    dir: Direction::ToClient,
                    bytes,
                    ..
                } => Some(bytes.clone()),
                _ => None,
            })
            .collect()
    }

    fn times(&self) -> Vec<Duration> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { at, .. } => Some(*at),
                _ => None,
            })
            .collect()
    }

    fn whats(&self) -> Vec<String> {
        self.log.iter().map(|r| format!("{}:{}", r.fault, r.what)).collect()
    }
}

fn specs(texts: &[&str]) -> Vec<FaultSpec> {
    texts.iter().map(|t| FaultSpec::parse_cli(t).unwrap()).collect()
}

fn tick_until(p: &mut Pipeline, now: Duration, actions: &mut Vec<Action>) {
    for _ in 0..1000 {
        match p.next_deadline(CONN) {
            Some(d) if d <= now => actions.extend(p.on_tick(CONN, d)),
            _ => return,
        }
    }
    panic!("next_deadline did not move on");
}

/// Connects, sends message i at i*10 ms, lets time run to 10 s, closes.
fn run_msgs(faults: &[&str], seed: u64, msgs: &[Vec<u8>]) -> Run {
    let mut p = Pipeline::new(&specs(faults), seed, PREFIX.len()).unwrap();
    assert_eq!(p.on_connect(CONN, Duration::ZERO), ConnectDecision::Accept);
    let mut actions = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let now = ms(10 * i as u64);
        tick_until(&mut p, now, &mut actions);
        actions.extend(p.on_message(CONN, Direction::ToClient, m.clone(), now));
    }
    tick_until(&mut p, ms(10_000), &mut actions);
    let undelivered = p
        .on_close(CONN, ms(10_000))
        .into_iter()
        .filter_map(|a| match a {
            Action::Send { bytes, .. } => Some(bytes),
            _ => None,
        })
        .collect();
    Run {
        actions,
        log: p.take_log(),
        undelivered,
    }
}

fn run(faults: &[&str], seed: u64) -> Run {
    run_msgs(faults, seed, &feed())
}

/// Decodes messages as a client does (prefix stripped) and summarises the events.
fn decode(msgs: &[Vec<u8>]) -> Vec<String> {
    let mut d = Decoder::default();
    let mut out = Vec::new();
    for m in msgs {
        assert_eq!(&m[..PREFIX.len()], PREFIX, "the envelope prefix is intact");
        d.push(&m[PREFIX.len()..], Duration::ZERO, |e| out.push(summary(&e)));
    }
    d.end_stream(|e| out.push(summary(&e)));
    d.drain_groups(|e| out.push(summary(&e)));
    out
}

fn summary(e: &DecodeEvent) -> String {
    match e {
        DecodeEvent::Message(m) => {
            let q = m.header.quirk.map(|q| format!(" quirk={q:?}")).unwrap_or_default();
            match m.assembled {
                Some(a) => format!("0x{:04X}#{} packets={}{q}", m.header.msg_id, a.first_serial, a.packets),
                None => format!("0x{:04X}#{}{q}", m.header.msg_id, m.header.serial),
            }
        }
        DecodeEvent::Rejected(err) => format!("rejected:{}", err.check()),
        DecodeEvent::Skipped { len, .. } => format!("skipped:{len}"),
        DecodeEvent::Packet { index, .. } => format!("packet:{index}"),
        DecodeEvent::DuplicatePacket { index, .. } => format!("duplicate_packet:{index}"),
        DecodeEvent::InvalidPacket { index, .. } => format!("invalid_packet:{index}"),
        DecodeEvent::GroupExpired(x) => format!("expired missing={:?}", x.missing),
        DecodeEvent::GroupStalled(x) => format!("stalled missing={:?}", x.missing),
        DecodeEvent::UnescapedFlag { at, .. } => format!("unescaped_flag:{at}"),
    }
}

/// What the untouched feed decodes to.
fn clean() -> Vec<String> {
    decode(&feed())
}

/// Un-escaped content (header + body + check) of a whole frame.
fn unescaped(frame: &[u8]) -> Vec<u8> {
    assert_eq!((frame[0], frame[frame.len() - 1]), (0x7E, 0x7E));
    let mut out = Vec::new();
    unescape_into(&frame[1..frame.len() - 1], &mut out).unwrap();
    out
}

/// Several seeds of a random fault: each seed repeats itself, and not all seeds agree.
fn assert_seeded(faults: &[&str]) {
    let outcomes: Vec<Vec<Vec<u8>>> = (0..12).map(|s| run(faults, s).sent()).collect();
    for s in 0..3 {
        assert_eq!(run(faults, s).sent(), outcomes[s as usize], "seed {s} repeats itself");
    }
    assert!(
        outcomes.iter().any(|o| *o != outcomes[0]),
        "{faults:?}: 12 seeds all gave the same bytes"
    );
}

// ===== the feed itself =====

#[test]
fn the_feed_decodes_cleanly_and_has_escapes() {
    assert_eq!(
        clean(),
        [
            "0x0200#1",
            "0x0200#2",
            "0x0200#3",
            "packet:1",
            "packet:2",
            "0x1205#10 packets=3"
        ]
    );
    let f = location(1);
    assert!(f.windows(2).any(|w| w == [0x7D, 0x02]) && f.windows(2).any(|w| w == [0x7D, 0x01]));
    // No fault: every message passes unchanged, at the time it came.
    let r = run(&[], 0);
    assert_eq!(r.sent(), feed());
    assert!(r.log.is_empty());
}

// ===== split =====

#[test]
fn split_at_given_offsets_cuts_one_message_into_three_each_with_the_prefix() {
    let r = run(&["type=\"split\", offsets=[3,7], at=1"], 0);
    let f1 = location(1);
    let sent = r.sent();
    assert_eq!(sent.len(), feed().len() + 2);
    assert_eq!(sent[0], wrap(&[&f1[..3]]));
    assert_eq!(sent[1], wrap(&[&f1[3..7]]));
    assert_eq!(sent[2], wrap(&[&f1[7..]]));
    assert_eq!(sent[3..], feed()[1..]);
    assert_eq!(decode(&sent), clean(), "a split is invisible after decoding");
    assert_eq!(r.log[0].fault, "split");
    assert_eq!(r.log[0].offsets, [18 + 3, 18 + 7], "message offsets, prefix included");
    assert_eq!(r.log[0].msg, Some(1));
}

#[test]
fn split_inside_escape_leaves_a_dangling_0x7d_at_the_message_end() {
    let r = run(&["type=\"split\", mode=\"inside_escape\", at=2"], 3);
    let sent = r.sent();
    assert_eq!(sent[1].last(), Some(&0x7D));
    assert!(matches!(sent[2][PREFIX.len()], 0x01 | 0x02));
    assert_eq!(
        [&sent[1][PREFIX.len()..], &sent[2][PREFIX.len()..]].concat(),
        location(2)
    );
    assert_eq!(decode(&sent), clean());
    assert_eq!(r.whats(), ["split:split"]);
    assert_seeded(&["type=\"split\", mode=\"inside_escape\", cuts=1"]);
}

#[test]
fn split_next_to_flag_puts_a_delimiter_at_a_message_edge() {
    let r = run(&["type=\"split\", mode=\"next_to_flag\", at=1"], 5);
    let sent = r.sent();
    let (a, b) = (&sent[0][PREFIX.len()..], &sent[1][PREFIX.len()..]);
    assert!(a.last() == Some(&0x7E) || b.first() == Some(&0x7E));
    assert_eq!([a, b].concat(), location(1));
    assert_eq!(decode(&sent), clean());
    assert_seeded(&["type=\"split\", mode=\"next_to_flag\""]);
}

#[test]
fn split_at_random_offsets_is_seeded() {
    let r = run(&["type=\"split\", cuts=3, at=4"], 9);
    assert_eq!(r.sent().len(), feed().len() + 3);
    assert_eq!(decode(&r.sent()), clean());
    assert_eq!(r.log[0].offsets.len(), 3);
    assert_seeded(&["type=\"split\", cuts=2"]);
}

// ===== coalesce =====

#[test]
fn coalesce_joins_three_messages_behind_one_prefix() {
    let r = run(&["type=\"coalesce\", count=3, at=1"], 0);
    let sent = r.sent();
    assert_eq!(sent[0], wrap(&[&location(1), &location(2), &location(3)]));
    assert_eq!(sent[1..], feed()[3..]);
    assert_eq!(decode(&sent), clean());
    let f = location(1).len();
    assert_eq!(r.log[0].what, "coalesce");
    assert_eq!(r.log[0].offsets, [18 + f, 18 + 2 * f]);
    // Held messages go out when the group is complete, at the last one's time.
    assert_eq!(r.times()[0], ms(20));
}

#[test]
fn coalesce_flushes_an_incomplete_group_after_max_wait() {
    let msgs = feed()[..2].to_vec();
    let r = run_msgs(&["type=\"coalesce\", count=3, max_wait_ms=50"], 0, &msgs);
    assert_eq!(r.sent(), [wrap(&[&location(1), &location(2)])]);
    assert_eq!(r.times(), [ms(50)]);
    assert_eq!(r.whats(), ["coalesce:flush"]);
}

// ===== drop / duplicate / reorder =====

/// One message carrying the three location frames.
fn sticky() -> Vec<Vec<u8>> {
    vec![wrap(&[&location(1), &location(2), &location(3)])]
}

#[test]
fn drop_message_loses_exactly_that_message() {
    let r = run(&["type=\"drop\", at=2"], 0);
    let mut expect = feed();
    expect.remove(1);
    assert_eq!(r.sent(), expect);
    assert_eq!(decode(&r.sent())[..2], ["0x0200#1", "0x0200#3"]);
    assert_eq!(r.whats(), ["drop:drop"]);
}

#[test]
fn drop_frame_removes_one_frame_from_a_sticky_message() {
    let r = run_msgs(&["type=\"drop\", unit=\"frame\", at=2"], 0, &sticky());
    assert_eq!(r.sent(), [wrap(&[&location(1), &location(3)])]);
    assert_eq!(decode(&r.sent()), ["0x0200#1", "0x0200#3"]);
    let f = location(1).len();
    assert_eq!(r.log[0].offsets, [18 + f, 18 + 2 * f]);
    assert!(r.log[0].detail.contains("0x0200 serial 2"));
}

#[test]
fn duplicate_message_and_frame() {
    let r = run(&["type=\"duplicate\", at=1"], 0);
    assert_eq!(r.sent()[..2], [feed()[0].clone(), feed()[0].clone()]);
    assert_eq!(decode(&r.sent())[..3], ["0x0200#1", "0x0200#1", "0x0200#2"]);
    assert_eq!(r.whats(), ["duplicate:duplicate"]);

    let r = run_msgs(&["type=\"duplicate\", unit=\"frame\", at=3"], 0, &sticky());
    assert_eq!(
        r.sent(),
        [wrap(&[&location(1), &location(2), &location(3), &location(3)])]
    );
}

#[test]
fn reorder_message_lets_the_next_one_overtake() {
    let r = run(&["type=\"reorder\", at=1"], 0);
    let f = feed();
    assert_eq!(r.sent()[..3], [f[1].clone(), f[0].clone(), f[2].clone()]);
    assert_eq!(decode(&r.sent())[..2], ["0x0200#2", "0x0200#1"]);
    assert_eq!(r.whats(), ["reorder:reorder", "reorder:release"]);
    let t = r.times();
    assert!(
        t.windows(2).all(|w| w[0] <= w[1]),
        "delivery times stay monotonic: {t:?}"
    );
}

#[test]
fn reorder_frame_swaps_it_with_the_next_frame_of_the_message() {
    let r = run_msgs(&["type=\"reorder\", unit=\"frame\", at=1"], 0, &sticky());
    assert_eq!(r.sent(), [wrap(&[&location(2), &location(1), &location(3)])]);
    assert_eq!(decode(&r.sent()), ["0x0200#2", "0x0200#1", "0x0200#3"]);
}

#[test]
fn frame_faults_respect_a_delimiter_shared_by_two_frames() {
    // 7E A 7E B 7E: one 0x7E closes A and opens B (JT808.md §1 devices do this).
    let shared = vec![wrap(&[&location(1), &location(2)[1..]])];
    assert_eq!(decode(&shared), ["0x0200#1", "0x0200#2"]);
    let r = run_msgs(&["type=\"drop\", unit=\"frame\", at=2"], 0, &shared);
    assert_eq!(r.sent(), [wrap(&[&location(1)])]);
    let r = run_msgs(&["type=\"drop\", unit=\"frame\", at=1"], 0, &shared);
    assert_eq!(r.sent(), [wrap(&[&location(2)])], "B keeps its opening delimiter");
    let r = run_msgs(&["type=\"garbage\", hex=\"DEADBEEF\", at=2"], 0, &shared);
    assert_eq!(
        r.sent(),
        [wrap(&[&location(1), &[0xDE, 0xAD, 0xBE, 0xEF], &location(2)])]
    );
    assert_eq!(decode(&r.sent()), ["0x0200#1", "skipped:4", "0x0200#2"]);
    let r = run_msgs(&["type=\"corrupt_checksum\", xor=1, at=2"], 0, &shared);
    // A broken frame after a shared delimiter is indistinguishable from garbage to the deframer.
    let d = decode(&r.sent());
    assert_eq!(d[0], "0x0200#1");
    assert!(d[1].starts_with("skipped:") && d.len() == 2, "{d:?}");
}

// ===== sub-packets =====

#[test]
fn drop_packet_leaves_a_gap_the_reassembler_reports() {
    let r = run(&["type=\"drop_packet\", index=2"], 0);
    let mut expect = feed();
    expect.remove(4);
    assert_eq!(r.sent(), expect, "the message carrying only packet 2 disappears");
    assert_eq!(
        decode(&r.sent()),
        [
            "0x0200#1",
            "0x0200#2",
            "0x0200#3",
            "packet:1",
            "packet:3",
            "expired missing=[2]"
        ]
    );
    assert_eq!(r.whats(), ["drop_packet:drop_packet"]);
    assert!(r.log[0].detail.contains("packet 2/3"));
}

#[test]
fn drop_packet_random_index_is_seeded() {
    assert_seeded(&["type=\"drop_packet\""]);
}

#[test]
fn duplicate_packet_repeats_one_packet_in_place() {
    let r = run(&["type=\"duplicate_packet\", index=1"], 0);
    let p = resource_list_packets();
    assert_eq!(r.sent()[3], wrap(&[&p[0], &p[0]]));
    assert_eq!(
        decode(&r.sent())[3..],
        ["packet:1", "duplicate_packet:1", "packet:2", "0x1205#10 packets=3"]
    );
}

#[test]
fn reorder_packet_delivers_it_after_the_next_packet() {
    let r = run(&["type=\"reorder_packet\", index=1"], 0);
    let p = resource_list_packets();
    let sent = r.sent();
    assert_eq!(sent.len(), 5, "packet 1's message is absorbed");
    assert_eq!(sent[3], wrap(&[&p[1], &p[0]]));
    assert_eq!(sent[4], wrap(&[&p[2]]));
    assert_eq!(decode(&sent)[3..], ["packet:2", "packet:1", "0x1205#10 packets=3"]);
    assert_eq!(r.whats(), ["reorder_packet:reorder_packet", "reorder_packet:release"]);
}

#[test]
fn reorder_packet_of_the_last_index_holds_the_one_before() {
    let r = run(&["type=\"reorder_packet\", index=3"], 0);
    let p = resource_list_packets();
    assert_eq!(r.sent()[4], wrap(&[&p[2], &p[1]]));
    assert_seeded(&["type=\"reorder_packet\""]);
}

// ===== the corrupt family =====

#[test]
fn corrupt_checksum_changes_only_the_check_code() {
    let r = run(&["type=\"corrupt_checksum\", xor=0x55, msg_id=0x0200, at=1"], 0);
    let f1 = location(1);
    let content = unescaped(&f1);
    let (hb, check) = content.split_at(content.len() - 1);
    let mut expect = Vec::new();
    jt808_harness::codec::frame::frame_into(hb, &mut expect);
    // frame_into writes the right check; put the wrong one in its place.
    let mut esc = Vec::new();
    jt808_harness::codec::frame::escape_into(&[check[0] ^ 0x55], &mut esc);
    let check_len = if matches!(check[0], 0x7E | 0x7D) { 2 } else { 1 };
    expect.splice(expect.len() - 1 - check_len..expect.len() - 1, esc);
    assert_eq!(r.sent()[0], wrap(&[&expect]));
    assert_eq!(r.sent()[1..], feed()[1..]);
    let mut d = clean();
    d[0] = "rejected:bad_checksum".into();
    assert_eq!(decode(&r.sent()), d);
    assert_eq!(r.whats(), ["corrupt_checksum:corrupt_checksum"]);
}

#[test]
fn corrupt_checksum_escapes_a_new_check_code_of_0x7e() {
    let f1 = location(1);
    let check = *unescaped(&f1).last().unwrap();
    let spec = format!("type=\"corrupt_checksum\", xor={}, at=1", check ^ 0x7E);
    let r = run(&[&spec], 0);
    let sent = &r.sent()[0];
    assert_eq!(
        sent[sent.len() - 3..],
        [0x7D, 0x02, 0x7E],
        "the new check 0x7E goes out as 7D 02"
    );
    assert_eq!(
        sent.iter().filter(|&&b| b == 0x7E).count(),
        2,
        "framing intact: two delimiters"
    );
    assert_eq!(decode(&r.sent())[0], "rejected:bad_checksum");
    assert_seeded(&["type=\"corrupt_checksum\""]);
}

#[test]
fn break_escape_makes_an_invalid_escape_pair() {
    let r = run(&["type=\"break_escape\", at=1"], 2);
    let (a, b) = (&feed()[0], &r.sent()[0]);
    assert_eq!(a.len(), b.len());
    let diff: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    assert_eq!(diff.len(), 1);
    assert_eq!((b[diff[0] - 1], b[diff[0]]), (0x7D, 0x03));
    assert_eq!(r.log[0].offsets[1], diff[0] - 1, "the log points at the 0x7D");
    assert_eq!(decode(&r.sent())[0], "rejected:invalid_escape");
    assert_seeded(&["type=\"break_escape\""]);
}

#[test]
fn flip_byte_at_an_offset_xors_that_byte() {
    let r = run(&["type=\"flip_byte\", offset=5, xor=0x0F, at=1"], 0);
    let mut expect = feed()[0].clone();
    expect[18 + 5] ^= 0x0F;
    assert_eq!(r.sent()[0], expect);
    assert_eq!(decode(&r.sent())[0], "rejected:bad_checksum");
    assert_eq!(r.log[0].offsets, [18, 18 + 5]);
}

#[test]
fn flip_byte_at_random_never_touches_delimiters_or_escapes() {
    for seed in 0..40 {
        let r = run(&["type=\"flip_byte\", at=1"], seed);
        let (a, b) = (&feed()[0], &r.sent()[0]);
        let i = (0..a.len()).find(|&i| a[i] != b[i]).expect("one byte changed");
        assert!(i > 18 && i < a.len() - 1, "seed {seed}: not a delimiter");
        assert!(
            !matches!(b[i], 0x7E | 0x7D) && a[i] != 0x7D && a[i - 1] != 0x7D,
            "seed {seed}"
        );
        assert_eq!(decode(&r.sent())[0], "rejected:bad_checksum", "seed {seed}");
    }
    assert_seeded(&["type=\"flip_byte\""]);
}

#[test]
fn truncate_cuts_the_frame_and_the_next_frame_survives() {
    let r = run(&["type=\"truncate\", keep=10, at=1"], 0);
    assert_eq!(r.sent()[0], wrap(&[&location(1)[..10]]));
    let d = decode(&r.sent());
    assert_eq!(d[0], "rejected:too_short");
    assert_eq!(d[1..], clean()[1..], "the stump costs only itself");
    assert_eq!(r.log[0].offsets, [18, 28]);
    let closed = run(&["type=\"truncate\", keep=10, close=true, at=1"], 0);
    assert_eq!(closed.sent()[0], wrap(&[&location(1)[..10], &[0x7E]]));
    assert_seeded(&["type=\"truncate\""]);
}

#[test]
fn stray_flag_inside_breaks_one_frame_and_after_breaks_none() {
    let r = run(&["type=\"stray_flag\", offset=5, at=1"], 0);
    let f1 = location(1);
    assert_eq!(r.sent()[0], wrap(&[&f1[..5], &[0x7E], &f1[5..]]));
    let d = decode(&r.sent());
    assert!(d[0].starts_with("rejected:"), "{d:?}");
    assert!(!d.contains(&"0x0200#1".to_string()));
    assert_eq!(d[d.len() - 5..], clean()[1..]);

    let r = run(&["type=\"stray_flag\", place=\"after\", at=1"], 0);
    assert_eq!(r.sent()[0], wrap(&[&f1, &[0x7E]]));
    assert_eq!(decode(&r.sent()), clean(), "an empty frame 7E 7E is skipped silently");
    assert_seeded(&["type=\"stray_flag\""]);
}

#[test]
fn garbage_goes_between_frames_and_is_skipped() {
    let r = run(&["type=\"garbage\", hex=\"DEADBEEF\", at=2"], 0);
    assert_eq!(r.sent()[1], wrap(&[&[0xDE, 0xAD, 0xBE, 0xEF], &location(2)]));
    let mut d = clean();
    d.insert(1, "skipped:4".into());
    assert_eq!(decode(&r.sent()), d);
    let r = run(&["type=\"garbage\", len=16, at=1"], 4);
    let g = &r.sent()[0][18..34];
    assert!(!g.contains(&0x7E) && !g.contains(&0x7D));
    assert_eq!(decode(&r.sent())[0], "skipped:16");
    assert_seeded(&["type=\"garbage\""]);
}

#[test]
fn wrong_length_lies_about_the_length_only() {
    let r = run(&["type=\"wrong_length\", at=1"], 0);
    let content = unescaped(&r.sent()[0][18..]);
    let (hb, check) = content.split_at(content.len() - 1);
    assert_eq!(xor(hb), check[0], "check code recomputed: the length is the only lie");
    assert_eq!(u16::from_be_bytes([hb[2], hb[3]]) & 0x3FF, 29);
    assert_eq!(hb.len() - 12, 28);
    assert_eq!(decode(&r.sent())[0], "rejected:body_length_mismatch");
    assert!(r.log[0].detail.contains("28 -> 29"));
    let r = run(&["type=\"wrong_length\", len=100, at=1"], 0);
    let content = unescaped(&r.sent()[0][18..]);
    assert_eq!(u16::from_be_bytes([content[2], content[3]]) & 0x3FF, 100);
}

#[test]
fn wrong_version_sets_bit_14_and_the_codec_reads_it_as_the_2013_quirk() {
    let r = run(&["type=\"wrong_version\", at=1"], 0);
    let content = unescaped(&r.sent()[0][18..]);
    assert_eq!(content[2] & 0x40, 0x40);
    let (hb, check) = content.split_at(content.len() - 1);
    assert_eq!(xor(hb), check[0]);
    assert_eq!(
        decode(&r.sent())[0],
        format!("0x0200#1 quirk={:?}", HeaderQuirk::VersionFlagOn2013Layout)
    );
    assert!(r.log[0].detail.contains("0 -> 1"));
}

// ===== link =====

#[test]
fn latency_with_jitter_delays_within_bounds_and_keeps_order() {
    let r = run(&["type=\"latency\", ms=100, jitter_ms=50"], 7);
    assert_eq!(r.sent(), feed(), "latency changes times, never bytes");
    let t = r.times();
    for (i, at) in t.iter().enumerate() {
        let sent = ms(10 * i as u64);
        assert!(*at >= sent + ms(50), "message {i} at {at:?}");
        assert!(*at <= sent.max(t.get(i.wrapping_sub(1)).copied().unwrap_or_default()) + ms(150));
    }
    assert!(t.windows(2).all(|w| w[0] <= w[1]), "monotonic per direction: {t:?}");
    assert_eq!(r.log.len(), 6);
    assert!(r.log.iter().all(|l| l.what == "delay"));
    let other = |s| run(&["type=\"latency\", ms=100, jitter_ms=50"], s).times();
    assert_eq!(other(7), t);
    assert!((0..6).any(|s| other(s) != t));
}

#[test]
fn bandwidth_preset_serialises_messages_at_the_link_rate() {
    let r = run(&["type=\"bandwidth\", preset=\"gprs\""], 0);
    let mut free = Duration::ZERO;
    let expect: Vec<Duration> = feed()
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let start = ms(10 * i as u64).max(free);
            free = start + Duration::from_nanos(m.len() as u64 * 8 * 1_000_000_000 / 40_000);
            free
        })
        .collect();
    assert_eq!(r.times(), expect);
    assert_eq!(r.sent(), feed());
    assert!(r.log.iter().all(|l| l.what == "throttle"));
    let fast = run(&["type=\"bandwidth\", bps=100000000"], 0);
    assert!(fast.times()[0] < ms(1));
}

// ===== disconnect / stall / refuse =====

#[test]
fn disconnect_close_after_one_message() {
    let r = run(&["type=\"disconnect\", after=1, code=4000, reason=\"bye\""], 0);
    assert_eq!(r.sent(), [feed()[0].clone()]);
    assert_eq!(
        r.actions.last(),
        Some(&Action::Close {
            code: 4000,
            reason: "bye".into(),
            at: ms(10)
        })
    );
    assert_eq!(r.whats()[0], "disconnect:close");
    assert!(
        r.log.iter().skip(1).all(|l| l.what == "undelivered"),
        "later messages are logged, not lost silently"
    );
}

#[test]
fn disconnect_abort_sends_no_close_frame() {
    let r = run(&["type=\"disconnect\", mode=\"abort\", at=3"], 0);
    assert_eq!(r.sent(), feed()[..2]);
    assert_eq!(r.actions[2], Action::Abort { at: ms(20) });
    assert!(!r.actions.iter().any(|a| matches!(a, Action::Close { .. })));
}

#[test]
fn disconnect_mid_frame_sends_a_stump_then_aborts() {
    let r = run(&["type=\"disconnect\", mode=\"mid_frame\", offset=12, at=2"], 0);
    assert_eq!(r.sent(), [feed()[0].clone(), wrap(&[&location(2)[..12]])]);
    assert!(matches!(r.actions[2], Action::Abort { .. }));
    assert_eq!(decode(&r.sent()), ["0x0200#1", "rejected:unterminated"]);
    assert_eq!(r.log[0].offsets, [18, 30]);
    assert_seeded(&["type=\"disconnect\", mode=\"mid_frame\", at=1"]);
}

#[test]
fn disconnect_on_time_alone_fires_without_a_message() {
    let mut p = Pipeline::new(&specs(&["type=\"disconnect\", mode=\"abort\", after_ms=100"]), 0, 18).unwrap();
    p.on_connect(CONN, ms(1000));
    assert_eq!(p.next_deadline(CONN), Some(ms(1100)), "measured from the handshake");
    assert_eq!(p.on_tick(CONN, ms(1100)), [Action::Abort { at: ms(1100) }]);
    assert_eq!(p.next_deadline(CONN), None);
    assert_eq!(p.take_log()[0].what, "abort");
}

#[test]
fn stall_holds_both_ways_and_delivers_everything_when_it_ends() {
    let mut p = Pipeline::new(&specs(&["type=\"stall\", for_ms=500, at=2"]), 0, 18).unwrap();
    p.on_connect(CONN, Duration::ZERO);
    let f = feed();
    let first = p.on_message(CONN, Direction::ToClient, f[0].clone(), ms(0));
    assert_eq!(first.len(), 1);
    assert_eq!(
        p.on_message(CONN, Direction::ToClient, f[1].clone(), ms(10)),
        [Action::Stall { until: Some(ms(510)) }]
    );
    assert!(p.on_message(CONN, Direction::ToClient, f[2].clone(), ms(20)).is_empty());
    let up = wrap(&[&location(9)]);
    assert!(
        p.on_message(CONN, Direction::ToGateway, up.clone(), ms(30)).is_empty(),
        "half-open: nothing gets through"
    );
    assert_eq!(p.next_deadline(CONN), Some(ms(510)));
    let released = p.on_tick(CONN, ms(510));
    assert_eq!(
        released,
        [
            Action::Send {
                dir: Direction::ToClient,
                at: ms(510),
                bytes: f[1].clone()
            },
            Action::Send {
                dir: Direction::ToClient,
                at: ms(510),
                bytes: f[2].clone()
            },
            Action::Send {
                dir: Direction::ToGateway,
                at: ms(510),
                bytes: up
            },
        ]
    );
    // One stall per connection: later messages pass.
    assert_eq!(p.on_message(CONN, Direction::ToClient, f[3].clone(), ms(600)).len(), 1);
    let whats: Vec<String> = p.take_log().into_iter().map(|r| r.what.to_string()).collect();
    assert_eq!(whats, ["stall", "held", "held", "held", "stall_end", "release"]);
}

#[test]
fn stall_without_end_returns_held_bytes_at_close() {
    let r = run(&["type=\"stall\", after=4"], 0);
    assert_eq!(r.sent(), feed()[..4]);
    assert_eq!(r.undelivered, feed()[4..], "held, never silently dropped");
    assert!(
        r.whats()
            .ends_with(&["stall:undelivered".to_string(), "stall:undelivered".to_string()])
    );
}

#[test]
fn stall_drops_and_reports_what_would_pass_max_held_bytes() {
    let f = feed();
    assert!(f.len() >= 6, "the feed has a message past the cap");
    let cap = f[3].len() + f[4].len();
    let r = run(&[&format!("type=\"stall\", after=3, max_held_bytes={cap}")], 0);
    assert_eq!(r.sent(), f[..3]);
    assert_eq!(r.undelivered, f[3..5], "held up to the cap");
    let overflow: Vec<_> = r.log.iter().filter(|l| l.what == "overflow").collect();
    assert_eq!(overflow.len(), f.len() - 5, "every message past the cap is reported");
    assert_eq!(overflow[0].msg, Some(6));
    assert!(
        overflow[0].detail.contains(&format!("max_held_bytes = {cap}")),
        "{}",
        overflow[0].detail
    );
}

#[test]
fn stall_overflow_drops_everything_after_it_even_what_would_fit() {
    let f = feed();
    assert!(f[4].len() > f[5].len(), "the last packet is the short one");
    // Room for f[3] and f[5] but not f[4]: once f[4] overflows, f[5] is dropped too, so what the
    // stall later delivers has no gap in its middle.
    let cap = f[3].len() + f[5].len();
    let r = run(&[&format!("type=\"stall\", after=3, max_held_bytes={cap}")], 0);
    assert_eq!(r.undelivered, f[3..4]);
    let overflow: Vec<u64> = r
        .log
        .iter()
        .filter(|l| l.what == "overflow")
        .filter_map(|l| l.msg)
        .collect();
    assert_eq!(overflow, [5, 6]);
}

#[test]
fn a_two_way_stall_caps_the_other_direction_too() {
    let mut p = Pipeline::new(&specs(&["type=\"stall\", for_ms=500, at=1, max_held_bytes=1"]), 0, 18).unwrap();
    p.on_connect(CONN, Duration::ZERO);
    let f = feed();
    assert_eq!(
        p.on_message(CONN, Direction::ToClient, f[0].clone(), ms(0)),
        [Action::Stall { until: Some(ms(500)) }]
    );
    assert!(
        p.on_message(CONN, Direction::ToGateway, wrap(&[&location(9)]), ms(10))
            .is_empty()
    );
    assert_eq!(p.on_tick(CONN, ms(500)), [], "nothing was held");
    let log: Vec<(String, Option<Direction>)> = p.take_log().into_iter().map(|r| (r.what.to_string(), r.dir)).collect();
    assert_eq!(
        log,
        [
            ("stall".to_string(), Some(Direction::ToClient)),
            ("overflow".to_string(), Some(Direction::ToClient)),
            ("overflow".to_string(), Some(Direction::ToGateway)),
            ("stall_end".to_string(), Some(Direction::ToClient)),
        ]
    );
}

#[test]
fn refuse_the_next_two_handshakes() {
    let mut p = Pipeline::new(&specs(&["type=\"refuse\", count=2, status=502"]), 0, 18).unwrap();
    assert_eq!(p.on_connect(1, ms(0)), ConnectDecision::Refuse { status: 502 });
    assert_eq!(p.on_connect(2, ms(100)), ConnectDecision::Refuse { status: 502 });
    assert_eq!(p.on_connect(3, ms(200)), ConnectDecision::Accept);
    let log = p.take_log();
    assert_eq!(log.len(), 2);
    assert_eq!((log[1].conn, log[1].what.as_str(), log[1].dir), (2, "refuse", None));
    let mut p = Pipeline::new(&specs(&["type=\"refuse\", after=1"]), 0, 18).unwrap();
    assert_eq!(p.on_connect(1, ms(0)), ConnectDecision::Accept);
    assert_eq!(p.on_connect(2, ms(0)), ConnectDecision::Refuse { status: 503 });
    assert_eq!(p.on_connect(3, ms(0)), ConnectDecision::Accept);
}

// ===== triggers =====

/// Which location serials survive `drop` with the given trigger, over `n` location messages.
fn dropped(trigger: &str, n: u16, seed: u64) -> Vec<u16> {
    let msgs: Vec<Vec<u8>> = (1..=n).map(|s| wrap(&[&location(s)])).collect();
    let spec = format!("type=\"drop\", {trigger}");
    let r = run_msgs(&[&spec], seed, &msgs);
    let kept: Vec<String> = decode(&r.sent());
    (1..=n).filter(|s| !kept.contains(&format!("0x0200#{s}"))).collect()
}

#[test]
fn trigger_every_at_after_times() {
    assert_eq!(dropped("every=2", 7, 0), [2, 4, 6]);
    assert_eq!(dropped("at=3", 7, 0), [3]);
    assert_eq!(dropped("after=4", 7, 0), [5, 6, 7]);
    assert_eq!(dropped("every=2, times=2", 7, 0), [2, 4]);
    assert_eq!(
        dropped("after=1, every=3", 9, 0),
        [3, 6, 9],
        "conditions AND, counted from 1"
    );
}

#[test]
fn trigger_probability_is_seeded() {
    let a = dropped("probability=0.5", 100, 1);
    assert!((30..=70).contains(&a.len()), "{} of 100", a.len());
    assert_eq!(dropped("probability=0.5", 100, 1), a);
    assert_ne!(dropped("probability=0.5", 100, 2), a);
    assert!(dropped("probability=0.0", 50, 1).is_empty());
    assert_eq!(dropped("probability=1.0", 5, 1), [1, 2, 3, 4, 5]);
}

#[test]
fn trigger_time_window() {
    // Messages at 0, 10, .. 60 ms.
    assert_eq!(dropped("after_ms=25, until_ms=45", 7, 0), [4, 5]);
    assert_eq!(
        dropped("after_ms=25, at=2", 7, 0),
        [5],
        "counting starts inside the window"
    );
}

#[test]
fn trigger_on_protocol_events() {
    // After the 2nd 0x0200 has passed.
    let r = run(&["type=\"drop\", after_frame={id=0x0200, nth=2}"], 0);
    assert_eq!(r.sent(), feed()[..2]);
    // Only inside a sub-packaged message, and only its 2nd packet.
    let r = run(&["type=\"drop\", in_packet=true, packet_index=2"], 0);
    let mut expect = feed();
    expect.remove(4);
    assert_eq!(r.sent(), expect);
    // The 2nd frame with id 0x0200.
    let r = run(&["type=\"drop\", msg_id=0x0200, at=2"], 0);
    assert_eq!(decode(&r.sent())[..2], ["0x0200#1", "0x0200#3"]);
}

#[test]
fn trigger_after_the_client_sent_a_query() {
    // Drop a packet of the resource list only once the client has asked for it with 0x9205.
    let mut p = Pipeline::new(
        &specs(&["type=\"drop_packet\", index=2, after_frame={id=0x9205, dir=\"to_gateway\"}"]),
        0,
        18,
    )
    .unwrap();
    p.on_connect(CONN, Duration::ZERO);
    let packets = resource_list_packets();
    let send_list = |p: &mut Pipeline, t: u64| -> usize {
        packets
            .iter()
            .map(|pk| p.on_message(CONN, Direction::ToClient, wrap(&[pk]), ms(t)).len())
            .sum()
    };
    assert_eq!(send_list(&mut p, 0), 3, "no query yet: untouched");
    let query = Message::new(
        0x9205,
        Version::V2013,
        phone(),
        7,
        Body::Raw(RawBody { raw: vec![0; 24] }),
    )
    .encode();
    let up = p.on_message(CONN, Direction::ToGateway, wrap(&[&query]), ms(10));
    assert_eq!(up.len(), 1, "the query itself passes");
    assert_eq!(send_list(&mut p, 20), 2, "after the query, packet 2 is dropped");
    assert_eq!(p.take_log()[0].what, "drop_packet");
}

#[test]
fn trigger_scope_connection_restarts_and_run_does_not() {
    let drops = |spec: &str| -> Vec<(u64, u64)> {
        let mut p = Pipeline::new(&specs(&[spec]), 0, 18).unwrap();
        for conn in [1, 2] {
            p.on_connect(conn, ms(0));
            for m in &feed()[..3] {
                p.on_message(conn, Direction::ToClient, m.clone(), ms(0));
            }
        }
        p.take_log().iter().map(|r| (r.conn, r.msg.unwrap())).collect()
    };
    assert_eq!(drops("type=\"drop\", at=2"), [(1, 2), (2, 2)]);
    assert_eq!(drops("type=\"drop\", at=2, scope=\"run\""), [(1, 2)]);
    assert_eq!(drops("type=\"drop\", at=5, scope=\"run\""), [(2, 2)]);
    assert_eq!(drops("type=\"drop\", at=2, times=1"), [(1, 2)]);
}

// ===== chains and directions =====

#[test]
fn faults_chain_in_order_and_each_direction_has_its_own_chain() {
    // corrupt then split: the split pieces carry the corrupted frame.
    let r = run(
        &["type=\"corrupt_checksum\", at=1", "type=\"split\", offsets=[5], at=1"],
        0,
    );
    assert_eq!(r.sent().len(), feed().len() + 1);
    assert_eq!(decode(&r.sent())[0], "rejected:bad_checksum");
    assert_eq!(r.whats(), ["corrupt_checksum:corrupt_checksum", "split:split"]);
    // A to_gateway fault leaves to_client alone.
    let r = run(&["type=\"drop\", direction=\"to_gateway\""], 0);
    assert_eq!(r.sent(), feed());
}

#[test]
fn two_faults_of_one_type_get_distinct_names() {
    let p = Pipeline::new(
        &specs(&[
            "type=\"drop\", at=1",
            "type=\"drop\", at=2",
            "type=\"split\", name=\"cut\"",
        ]),
        0,
        18,
    )
    .unwrap();
    assert_eq!(p.names(), ["drop#1", "drop#2", "cut"]);
}

#[test]
fn log_serialises_with_cause_beside_effect() {
    let r = run(&["type=\"split\", offsets=[4], at=1"], 0);
    let json = serde_json::to_string(&r.log[0]).unwrap();
    assert_eq!(
        json,
        r#"{"t_us":0,"conn":1,"dir":"to_client","msg":1,"fault":"split","what":"split","offsets":[22],"detail":"52 bytes into 2 messages"}"#
            .replace("52", &feed()[0].len().to_string())
    );
}

// ===== spec parsing =====

#[test]
fn cli_spec_parses_with_hex_ids_and_nested_tables() {
    let s = FaultSpec::parse_cli("type=\"drop\", unit=\"frame\", msg_id=0x0200, after_frame={id=0x9205, dir=\"to_gateway\"}, direction=\"to_client\"").unwrap();
    assert_eq!(s.trigger.msg_id.unwrap().0, 0x0200);
    assert_eq!(s.trigger.after_frame.unwrap().dir, Some(Direction::ToGateway));
    assert_eq!(
        FaultSpec::parse_cli("{ type = \"wrong_version\" }")
            .unwrap()
            .kind
            .type_name(),
        "wrong_version"
    );
}

#[test]
fn cli_spec_errors_say_what_is_wrong() {
    let err = |s: &str| match FaultSpec::parse_cli(s) {
        Err(FaultSpecError::Cli { message, .. }) => message,
        other => panic!("{s}: expected an error, got {other:?}"),
    };
    let m = err("type=\"split\", offest=[3]");
    assert!(
        m.contains("unknown field `offest`") && m.contains("offsets") && m.contains("every"),
        "{m}"
    );
    let m = err("type=\"splat\"");
    assert!(m.contains("unknown fault type") && m.contains("split"), "{m}");
    let m = err("offsets=[3]");
    assert!(m.contains("missing `type`"), "{m}");
    let m = err("type=\"split\", offsets=[3");
    assert!(m.contains("column"), "{m}");
    let m = err("type=\"drop\", probability=2.0");
    assert!(m.contains("probability") && m.contains("0..=1"), "{m}");
    let m = err("type=\"bandwidth\", preset=\"5g\"");
    assert!(m.contains("5g"), "{m}");
    let m = err("type=\"drop\", direction=\"up\"");
    assert!(m.contains("direction"), "{m}");
}

#[test]
fn scenario_toml_and_json_deserialize() {
    #[derive(serde::Deserialize)]
    struct Scenario {
        faults: Vec<FaultSpec>,
    }
    let sc: Scenario = toml::from_str(
        r#"
        [[faults]]
        type = "corrupt_checksum"
        msg_id = 0x0200
        every = 3

        [[faults]]
        type = "bandwidth"
        preset = "3g"
        direction = "to_gateway"
        "#,
    )
    .unwrap();
    assert_eq!(sc.faults.len(), 2);
    assert_eq!(sc.faults[1].direction, Direction::ToGateway);
    let bad: Result<Scenario, _> = toml::from_str("[[faults]]\ntype = \"drop\"\nunits = \"frame\"\n");
    assert!(bad.err().unwrap().to_string().contains("unknown field `units`"));
    let j: FaultSpec = serde_json::from_str(r#"{"type":"drop","msg_id":"0x0200","at":2}"#).unwrap();
    assert_eq!(j.trigger.msg_id.unwrap().0, 0x0200);
    // And back: the flat table it came from.
    let v = serde_json::to_value(&j).unwrap();
    assert_eq!(v["type"], "drop");
    assert_eq!(v["msg_id"], "0x0200");
    assert_eq!(v["at"], 2);
}

#[test]
fn invalid_specs_are_refused_by_pipeline_new() {
    let mut s = FaultSpec::parse_cli("type=\"drop\"").unwrap();
    s.trigger.every = Some(0);
    match Pipeline::new(&[s], 0, 18) {
        Err(FaultSpecError::Invalid {
            index: 0,
            fault,
            message,
        }) => {
            assert_eq!(fault, "drop");
            assert!(message.contains("every"));
        }
        Err(other) => panic!("wrong error {other}"),
        Ok(_) => panic!("every = 0 accepted"),
    }
}

/// Every numeric fault parameter has a range: a value outside it is refused wherever the spec comes
/// from, with the fault, the key and the range named; its bounds are accepted.
#[test]
fn every_numeric_fault_parameter_is_range_checked() {
    const C: &str = "1..=1000000000000";
    const MS: &str = "0..=604800000";
    // (spec, key, range, the same spec at the bound, which parses)
    #[rustfmt::skip]
    let table: &[(&str, &str, &str, &str)] = &[
        ("type=\"drop\", every=0", "every", C, "type=\"drop\", every=1"),
        ("type=\"drop\", every=1000000000001", "every", C, "type=\"drop\", every=1000000000000"),
        ("type=\"drop\", at=0", "at", C, "type=\"drop\", at=1"),
        ("type=\"drop\", after=1000000000001", "after", "0..=1000000000000", "type=\"drop\", after=0"),
        ("type=\"drop\", times=0", "times", C, "type=\"drop\", times=1"),
        ("type=\"drop\", times=1000000000001", "times", C, "type=\"drop\", times=1000000000000"),
        ("type=\"drop\", probability=1.5", "probability", "0..=1", "type=\"drop\", probability=1.0"),
        ("type=\"drop\", probability=-0.1", "probability", "0..=1", "type=\"drop\", probability=0.0"),
        ("type=\"drop\", probability=nan", "probability", "0..=1", "type=\"drop\", probability=0.5"),
        ("type=\"drop\", after_ms=604800001", "after_ms", MS, "type=\"drop\", after_ms=604800000"),
        ("type=\"drop\", until_ms=604800001", "until_ms", MS, "type=\"drop\", until_ms=604800000"),
        ("type=\"drop\", packet_index=0", "packet_index", "1..=65535", "type=\"drop\", packet_index=65535"),
        ("type=\"drop\", after_frame={id=0x9205, nth=0}", "after_frame.nth", C, "type=\"drop\", after_frame={id=0x9205, nth=1}"),
        ("type=\"split\", cuts=0", "cuts", "1..=1024", "type=\"split\", cuts=1"),
        ("type=\"split\", cuts=1025", "cuts", "1..=1024", "type=\"split\", cuts=1024"),
        ("type=\"coalesce\", count=1", "count", "2..=1024", "type=\"coalesce\", count=2"),
        ("type=\"coalesce\", count=1025", "count", "2..=1024", "type=\"coalesce\", count=1024"),
        ("type=\"coalesce\", max_wait_ms=604800001", "max_wait_ms", MS, "type=\"coalesce\", max_wait_ms=0"),
        ("type=\"reorder\", distance=0", "distance", "1..=1024", "type=\"reorder\", distance=1"),
        ("type=\"reorder\", distance=1025", "distance", "1..=1024", "type=\"reorder\", distance=1024"),
        ("type=\"reorder\", max_wait_ms=604800001", "max_wait_ms", MS, "type=\"reorder\", max_wait_ms=604800000"),
        ("type=\"reorder_packet\", max_wait_ms=604800001", "max_wait_ms", MS, "type=\"reorder_packet\", max_wait_ms=0"),
        ("type=\"drop_packet\", index=0", "index", "1..=65535", "type=\"drop_packet\", index=1"),
        ("type=\"garbage\", len=0", "len", "1..=65536", "type=\"garbage\", len=1"),
        ("type=\"garbage\", len=65537", "len", "1..=65536", "type=\"garbage\", len=65536"),
        ("type=\"wrong_length\", len=1024", "len", "0..=1023", "type=\"wrong_length\", len=1023"),
        ("type=\"latency\", ms=604800001", "ms", MS, "type=\"latency\", ms=604800000"),
        ("type=\"latency\", ms=1, jitter_ms=604800001", "jitter_ms", MS, "type=\"latency\", jitter_ms=604800000"),
        ("type=\"bandwidth\", bps=0", "bps", "1..=100000000000", "type=\"bandwidth\", bps=1"),
        ("type=\"bandwidth\", bps=100000000001", "bps", "1..=100000000000", "type=\"bandwidth\", bps=100000000000"),
        ("type=\"stall\", for_ms=0", "for_ms", "1..=604800000", "type=\"stall\", for_ms=1"),
        ("type=\"stall\", for_ms=604800001", "for_ms", "1..=604800000", "type=\"stall\", for_ms=604800000"),
        ("type=\"stall\", max_held_bytes=0", "max_held_bytes", "1..=1073741824", "type=\"stall\", max_held_bytes=1"),
        ("type=\"stall\", max_held_bytes=1073741825", "max_held_bytes", "1..=1073741824", "type=\"stall\", max_held_bytes=1073741824"),
        ("type=\"refuse\", count=0", "count", C, "type=\"refuse\", count=1"),
        ("type=\"refuse\", status=200", "status", "400..=599", "type=\"refuse\", status=599"),
    ];
    for &(bad, key, range, good) in table {
        let fault = bad.split('"').nth(1).unwrap();
        // On the command line: the text, the fault, the key and the range.
        match FaultSpec::parse_cli(bad) {
            Err(FaultSpecError::Cli { input, message: m }) => assert!(
                input == bad && m.contains(&format!("{fault}: `{key}` = ")) && m.contains(range),
                "{bad}: {m:?}"
            ),
            other => panic!("{bad}: {other:?}"),
        }
        // Deserialised (a scenario's table; TOML below): the same words.
        let m = toml::from_str::<toml::Table>(&format!("f = {{ {bad} }}"))
            .unwrap()
            .remove("f")
            .unwrap()
            .try_into::<FaultSpec>()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            m.contains(&format!("{fault}: `{key}` = ")) && m.contains(range),
            "{bad}: {m:?}"
        );
        assert!(FaultSpec::parse_cli(good).is_ok(), "{good} is within range");
    }
}

/// A spec built in code is checked by the pipeline; a scenario's at its table's line.
#[test]
fn out_of_range_parameters_reach_the_user_with_the_fault_and_where() {
    let mut s = FaultSpec::parse_cli("type=\"garbage\"").unwrap();
    let jt808_harness::faults::FaultKind::Garbage(g) = &mut s.kind else {
        panic!()
    };
    g.len = usize::MAX;
    let e = Pipeline::new(&[s], 0, 18).err().unwrap().to_string();
    assert!(
        e.contains("fault #1 (garbage)") && e.contains("`len`") && e.contains("1..=65536"),
        "{e}"
    );

    let text = "description = \"x\"\nseed = 1\nduration_ms = 1000\n\n[[faults]]\ntype = \"split\"\ncuts = 0\n";
    let e = jt808_harness::scenario::Scenario::parse(text, std::path::Path::new("scenarios/x.toml"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.starts_with("scenarios/x.toml:"), "{e}");
    assert!(e.contains("split: `cuts` = 0 is out of range 1..=1024"), "{e}");
}
