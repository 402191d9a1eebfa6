//! Every way the codec turns a frame or a packet away, reached once with exact values.
//!
//! Each test writes its wire bytes inline, one header field per row (h2's codec tests), and checks
//! the whole event list, offsets included: an offset is what a user greps a capture for, so an
//! off-by-one there is a bug. Covers every [`FrameError`] variant, every reassembly outcome
//! (duplicate, invalid index, expiry by timeout with the first serial known and inferred, serial
//! wrap, eviction by group and byte limit) and the version traps of JT808.md §2.3.

use std::time::Duration;

use jt808_harness::codec::reassembly::{ExpireReason, Expired, GroupKey, Missing, ReassemblyConfig, SLOT_BYTES};
use jt808_harness::codec::{
    DecodeEvent, Decoder, DecoderConfig, DeframerConfig, FrameError, HeaderQuirk, Message, Phone, Version,
};

#[allow(dead_code)] // each test binary uses a part of the shared fixtures
mod support;

/// Joins rows of wire bytes.
fn wire(rows: &[&[u8]]) -> Vec<u8> {
    rows.concat()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Pushes `bytes` at time zero into a fresh default decoder and ends the stream.
fn decode_all(bytes: &[u8]) -> Vec<DecodeEvent> {
    decode_all_with(DecoderConfig::default(), bytes)
}

fn decode_all_with(cfg: DecoderConfig, bytes: &[u8]) -> Vec<DecodeEvent> {
    let mut d = Decoder::new(cfg);
    let mut events = d.push_vec(bytes, Duration::ZERO);
    d.end_stream(|e| events.push(e));
    events
}

/// The single message among `events`, which must hold exactly that.
fn only_message(events: &[DecodeEvent]) -> &Message {
    match events {
        [DecodeEvent::Message(m)] => m,
        other => panic!("expected one message, got {other:#?}"),
    }
}

fn phone(s: &str) -> Phone {
    Phone::parse(s).expect("test phone")
}

/// The terminal of every packet below.
fn terminal() -> Phone {
    phone("13912344321")
}

fn key(msg_id: u16, total: u16) -> GroupKey {
    GroupKey {
        phone: terminal(),
        msg_id,
        total,
    }
}

/// A 2013 heartbeat, the smallest valid frame: 7E 0002 0000 012345678901 7FFF 0A 7E.
fn heartbeat() -> Vec<u8> {
    wire(&[
        &[0x7E],
        &[0x00, 0x02],                         // msg id 0x0002 heartbeat
        &[0x00, 0x00],                         // props: body 0
        &[0x01, 0x23, 0x45, 0x67, 0x89, 0x01], // phone 12345678901
        &[0x7F, 0xFF],                         // serial 0x7FFF
        &[0x0A],                               // check code
        &[0x7E],
    ])
}

// ===== FrameError::TooShort =====

#[test]
fn frame_shorter_than_a_header_is_too_short_and_garbage_before_it_is_skipped() {
    let bytes = wire(&[
        &[0xAA, 0xBB], // garbage at 0..2
        &[0x7E],       // frame opens at 2
        &[0x00, 0x02],
        &[0x00, 0x00],
        &[0x01, 0x23, 0x45, 0x67, 0x89], // phone cut short: 9 bytes of header
        &[0x01],                         // taken as the check code
        &[0x7E],
    ]);
    assert_eq!(
        decode_all(&bytes),
        [
            DecodeEvent::Skipped { offset: 0, len: 2 },
            DecodeEvent::Rejected(FrameError::TooShort { offset: 2, len: 9 }),
        ]
    );
}

#[test]
fn one_byte_between_delimiters_is_too_short_and_an_empty_frame_is_nothing() {
    // `7E 7E` only moves the opening delimiter (the second 0x7E at 1 opens the candidate).
    let bytes = wire(&[&[0x7E, 0x7E], &[0x55], &[0x7E]]);
    assert_eq!(
        decode_all(&bytes),
        [DecodeEvent::Rejected(FrameError::TooShort { offset: 1, len: 0 })]
    );
}

#[test]
fn sub_packet_flag_without_room_for_the_packet_item_is_too_short_not_a_length_mismatch() {
    // Bit 13 promises total + index (16-byte header); only 14 bytes arrive. A "declares 0 bytes,
    // carries 0" length mismatch would be nonsense.
    let bytes = wire(&[
        &[0x7E],
        &[0x0F, 0x01],                         // msg id 0x0F01
        &[0x20, 0x00],                         // props: sub-packet, body 0
        &[0x01, 0x39, 0x12, 0x34, 0x43, 0x21], // phone 13912344321
        &[0x00, 0x07],                         // serial 7
        &[0x00, 0x02],                         // total 2 (index missing)
        &[0x57],                               // check code
        &[0x7E],
    ]);
    assert_eq!(
        decode_all(&bytes),
        [DecodeEvent::Rejected(FrameError::TooShort { offset: 0, len: 14 })]
    );
}

// ===== FrameError::InvalidEscape =====

fn frame_with_7d_03_in_serial() -> Vec<u8> {
    wire(&[
        &[0x7E],
        &[0x00, 0x02],                         // msg id 0x0002
        &[0x00, 0x00],                         // props: body 0
        &[0x01, 0x23, 0x45, 0x67, 0x89, 0x01], // phone
        &[0x7D, 0x03],                         // serial high byte: 7D 03 is no escape (at 11)
        &[0xFF],                               // serial low byte
        &[0x0A],                               // check code
        &[0x7E],
    ])
}

#[test]
fn escape_other_than_01_or_02_is_rejected_with_its_offset() {
    let expected = [DecodeEvent::Rejected(FrameError::InvalidEscape {
        offset: 0,
        at: 11,
        next: "0x03".to_string(),
    })];
    let bytes = frame_with_7d_03_in_serial();
    assert_eq!(decode_all(&bytes), expected);
    // The same with the pair cut between two pushes.
    let mut d = Decoder::default();
    let mut events = d.push_vec(&bytes[..12], Duration::ZERO);
    assert_eq!(events, []);
    events.extend(d.push_vec(&bytes[12..], Duration::ZERO));
    assert_eq!(events, expected);
}

#[test]
fn escape_byte_right_before_the_closing_delimiter_is_rejected() {
    let bytes = wire(&[
        &[0xEE],                               // one garbage byte at 0
        &[0x7E],                               // frame opens at 1
        &[0x00, 0x02],                         // msg id
        &[0x00, 0x00],                         // props
        &[0x01, 0x23, 0x45, 0x67, 0x89, 0x01], // phone
        &[0x7F, 0xFF],                         // serial
        &[0x7D],                               // lone escape at 14
        &[0x7E],
    ]);
    let expected = [
        DecodeEvent::Skipped { offset: 0, len: 1 },
        DecodeEvent::Rejected(FrameError::InvalidEscape {
            offset: 1,
            at: 14,
            next: "at end of frame".to_string(),
        }),
    ];
    assert_eq!(decode_all(&bytes), expected);
    // Cut right after the 0x7D: the escape is pending when the closing 0x7E arrives.
    let mut d = Decoder::default();
    let mut events = d.push_vec(&bytes[..15], Duration::ZERO);
    events.extend(d.push_vec(&bytes[15..], Duration::ZERO));
    assert_eq!(events, expected);
}

// ===== FrameError::BadChecksum =====

#[test]
fn wrong_check_code_is_rejected_with_found_and_computed() {
    let mut bytes = heartbeat(); // a good frame at 0..15
    bytes.extend(wire(&[
        &[0x7E], // frame opens at 15
        &[0x00, 0x02],
        &[0x00, 0x00],
        &[0x01, 0x23, 0x45, 0x67, 0x89, 0x01],
        &[0x7F, 0xFF],
        &[0x0B], // check code: should be 0x0A
        &[0x7E],
    ]));
    let events = decode_all(&bytes);
    assert!(matches!(&events[0], DecodeEvent::Message(m) if m.header.serial == 0x7FFF));
    assert_eq!(
        events[1..],
        [DecodeEvent::Rejected(FrameError::BadChecksum {
            offset: 15,
            found: 0x0B,
            computed: 0x0A,
        })]
    );
}

// ===== FrameError::BodyLengthMismatch =====

#[test]
fn body_shorter_than_declared_is_a_length_mismatch_2013() {
    let bytes = wire(&[
        &[0x7E],
        &[0x00, 0x02],                         // msg id 0x0002 heartbeat
        &[0x00, 0x01],                         // props: body 1
        &[0x01, 0x23, 0x45, 0x67, 0x89, 0x01], // phone 12345678901
        &[0x00, 0x01],                         // serial 1
        &[0x8A],                               // check code
        &[0x7E],
    ]);
    assert_eq!(
        decode_all(&bytes),
        [DecodeEvent::Rejected(FrameError::BodyLengthMismatch {
            offset: 0,
            msg_id: 0x0002,
            declared: 1,
            actual: 0,
        })]
    );
}

#[test]
fn body_shorter_than_declared_is_a_length_mismatch_2019() {
    let bytes = wire(&[
        &[0x7E],
        &[0x0F, 0x01],                                                 // msg id 0x0F01
        &[0x40, 0x05],                                                 // props: 2019, body 5
        &[0x01],                                                       // protocol version 1
        &[0x00, 0x00, 0x00, 0x00, 0x01, 0x39, 0x12, 0x34, 0x43, 0x21], // phone 13912344321
        &[0x00, 0x07],                                                 // serial 7
        &[0xAA, 0xBB, 0xCC],                                           // body: 3 bytes
        &[0xEC],                                                       // check code
        &[0x7E],
    ]);
    assert_eq!(
        decode_all(&bytes),
        [DecodeEvent::Rejected(FrameError::BodyLengthMismatch {
            offset: 0,
            msg_id: 0x0F01,
            declared: 5,
            actual: 3,
        })]
    );
}

// ===== FrameError::TooLong =====

fn limit_16() -> DecoderConfig {
    DecoderConfig {
        deframer: DeframerConfig {
            max_frame_len: 16,
            ..DeframerConfig::default()
        },
        ..DecoderConfig::default()
    }
}

#[test]
fn frame_over_the_limit_is_too_long_and_the_next_frame_survives() {
    // 18 escaped bytes between the delimiters, limit 16.
    let mut bytes = wire(&[
        &[0x7E],
        &[0x0F, 0x01],                         // msg id 0x0F01
        &[0x00, 0x05],                         // props: body 5
        &[0x01, 0x39, 0x12, 0x34, 0x43, 0x21], // phone 13912344321
        &[0x00, 0x01],                         // serial 1
        &[0x01, 0x02, 0x03, 0x04, 0x05],       // body
        &[0x77],                               // check code
        &[0x7E],
    ]);
    bytes.extend(heartbeat()); // 13 bytes between its delimiters: fits
    let events = decode_all_with(limit_16(), &bytes);
    assert_eq!(
        events[0],
        DecodeEvent::Rejected(FrameError::TooLong { offset: 0, limit: 16 })
    );
    assert_eq!(only_message(&events[1..]).header.serial, 0x7FFF);
}

#[test]
fn frame_over_the_default_limit_of_2090_bytes_is_too_long_not_held_and_the_next_frame_survives() {
    let mut d = Decoder::default();
    let mut events = d.push_vec(&[0x55, 0x7E], Duration::ZERO); // garbage at 0, frame opens at 1
    for _ in 0..10 {
        events.extend(d.push_vec(&[0x11; 1000], Duration::ZERO));
        assert!(
            d.deframer().pending_len() <= 2091,
            "held {}",
            d.deframer().pending_len()
        );
    }
    // The heartbeat's opening 0x7E ends the discarded run; the heartbeat itself is kept.
    events.extend(d.push_vec(&heartbeat(), Duration::ZERO));
    assert_eq!(
        events[..2],
        [
            DecodeEvent::Skipped { offset: 0, len: 1 },
            DecodeEvent::Rejected(FrameError::TooLong { offset: 1, limit: 2090 }),
        ]
    );
    assert_eq!(only_message(&events[2..]).header.serial, 0x7FFF);
    assert_eq!(d.deframer().pending_len(), 0);
}

#[test]
fn too_long_frame_cut_by_the_end_of_the_stream_is_reported_once() {
    let mut bytes = vec![0x7E];
    bytes.extend([0x11; 20]);
    assert_eq!(
        decode_all_with(limit_16(), &bytes),
        [DecodeEvent::Rejected(FrameError::TooLong { offset: 0, limit: 16 })]
    );
}

// ===== FrameError::Unterminated =====

#[test]
fn frame_cut_by_the_end_of_the_stream_is_unterminated_and_offsets_restart() {
    let mut d = Decoder::default();
    let head = wire(&[
        &[0x33],       // garbage at 0
        &[0x7E],       // frame opens at 1
        &[0x00, 0x02], // msg id
        &[0x00, 0x00], // props
        &[0x01, 0x23], // first two phone bytes, then the connection drops
    ]);
    assert_eq!(
        d.push_vec(&head, Duration::ZERO),
        [DecodeEvent::Skipped { offset: 0, len: 1 }]
    );
    assert_eq!(d.deframer().pending_len(), 7, "the opening 0x7E and 6 bytes are held");
    let mut events = Vec::new();
    d.end_stream(|e| events.push(e));
    assert_eq!(
        events,
        [DecodeEvent::Rejected(FrameError::Unterminated { offset: 1, len: 6 })]
    );
    // Nothing of the old stream is glued to the new one; offsets count from the new stream's start.
    assert_eq!(d.deframer().pending_len(), 0);
    assert_eq!(d.deframer().position(), 0);
    let next = d.push_vec(&wire(&[&[0x44, 0x44], &heartbeat()]), Duration::ZERO);
    assert_eq!(next[0], DecodeEvent::Skipped { offset: 0, len: 2 });
    assert_eq!(only_message(&next[1..]).header.serial, 0x7FFF);
}

#[test]
fn pending_escape_at_the_end_of_the_stream_is_unterminated() {
    let bytes = wire(&[&[0x7E], &[0x00, 0x02], &[0x7D]]);
    assert_eq!(
        decode_all(&bytes),
        [DecodeEvent::Rejected(FrameError::Unterminated { offset: 0, len: 3 })]
    );
}

// ===== The stream vectors of the fixture file (go-jt808) =====

#[test]
fn go_stream_two_frames_and_a_half_keeps_17_bytes_pending() {
    let mut d = Decoder::default();
    let events = d.push_vec(&support::vectors::wire("go-stream-2frames-plus-half"), Duration::ZERO);
    let serials: Vec<u16> = events
        .iter()
        .map(|e| match e {
            DecodeEvent::Message(m) => m.header.serial,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(serials, [7, 2]);
    assert_eq!(d.deframer().pending_len(), 17);
}

#[test]
fn go_stream_frame_then_garbage_keeps_4_bytes_pending_then_skips_them() {
    let mut d = Decoder::default();
    let events = d.push_vec(&support::vectors::wire("go-stream-frame-then-garbage"), Duration::ZERO);
    assert_eq!(only_message(&events).header.serial, 0x7FFF);
    assert_eq!(d.deframer().pending_len(), 4);
    let mut end = Vec::new();
    d.end_stream(|e| end.push(e));
    assert_eq!(end, [DecodeEvent::Skipped { offset: 15, len: 4 }]);
}

#[test]
fn go_stream_corrupt_middle_frame_is_skipped_and_the_third_frame_delivered() {
    // go-jt808 stops at the bad chunk; a resilient decoder reports it and goes on.
    let events = decode_all(&support::vectors::wire("go-stream-corrupt-middle-frame"));
    assert_eq!(events.len(), 3, "{events:#?}");
    assert!(matches!(&events[0], DecodeEvent::Message(m) if m.header.serial == 7));
    assert_eq!(
        events[1],
        DecodeEvent::Rejected(FrameError::TooShort { offset: 15, len: 9 })
    );
    assert!(matches!(&events[2], DecodeEvent::Message(m) if m.header.serial == 0x7FFF));
}

// ===== Reassembly: duplicate and invalid index =====

fn packet_h1() -> Vec<u8> {
    wire(&[
        &[0x7E],
        &[0x0F, 0x08],                         // msg id 0x0F08
        &[0x20, 0x02],                         // props: sub-packet, body 2
        &[0x01, 0x39, 0x12, 0x34, 0x43, 0x21], // phone 13912344321
        &[0x01, 0x00],                         // serial 0x0100
        &[0x00, 0x02],                         // total 2
        &[0x00, 0x01],                         // index 1
        &[0x01, 0x02],                         // fragment
        &[0x58],                               // check code
        &[0x7E],
    ])
}

#[test]
fn duplicate_packet_is_reported_with_whether_it_differs_and_the_first_copy_kept() {
    let mut d = Decoder::default();
    assert_eq!(
        d.push_vec(&packet_h1(), ms(0)),
        [DecodeEvent::Packet {
            key: key(0x0F08, 2),
            index: 1,
            serial: 0x0100
        }]
    );
    // The same bytes again.
    assert_eq!(
        d.push_vec(&packet_h1(), ms(1)),
        [DecodeEvent::DuplicatePacket {
            key: key(0x0F08, 2),
            index: 1,
            serial: 0x0100,
            differs: false,
            completed: false
        }]
    );
    // Index 1 again with another serial and another fragment.
    let other = wire(&[
        &[0x7E],
        &[0x0F, 0x08],                         // msg id 0x0F08
        &[0x20, 0x02],                         // props: sub-packet, body 2
        &[0x01, 0x39, 0x12, 0x34, 0x43, 0x21], // phone 13912344321
        &[0x01, 0x02],                         // serial 0x0102
        &[0x00, 0x02],                         // total 2
        &[0x00, 0x01],                         // index 1
        &[0x01, 0x03],                         // fragment
        &[0x5B],                               // check code
        &[0x7E],
    ]);
    assert_eq!(
        d.push_vec(&other, ms(2)),
        [DecodeEvent::DuplicatePacket {
            key: key(0x0F08, 2),
            index: 1,
            serial: 0x0102,
            differs: true,
            completed: false
        }]
    );
    let last = wire(&[
        &[0x7E],
        &[0x0F, 0x08],                         // msg id 0x0F08
        &[0x20, 0x01],                         // props: sub-packet, body 1
        &[0x01, 0x39, 0x12, 0x34, 0x43, 0x21], // phone 13912344321
        &[0x01, 0x03],                         // serial 0x0103
        &[0x00, 0x02],                         // total 2
        &[0x00, 0x02],                         // index 2
        &[0x04],                               // fragment
        &[0x5C],                               // check code
        &[0x7E],
    ]);
    let events = d.push_vec(&last, ms(3));
    let m = only_message(&events);
    assert_eq!(m.header.msg_id, 0x0F08);
    assert_eq!(m.header.serial, 0x0100, "packet 1's header");
    assert_eq!(m.header.packet, None);
    assert_eq!(m.header.body_len, 3);
    assert_eq!(m.body_bytes(), [0x01, 0x02, 0x04], "the first copy of packet 1 is kept");
    let a = m.assembled.expect("reassembled");
    assert_eq!((a.packets, a.first_serial), (2, 0x0100));
    assert_eq!(d.reassembler().open_groups(), 0);
}

#[test]
fn packet_index_zero_or_beyond_total_is_invalid() {
    let mut d = Decoder::default();
    let index_0 = wire(&[
        &[0x7E],
        &[0x0F, 0x09],                         // msg id 0x0F09
        &[0x20, 0x01],                         // props: sub-packet, body 1
        &[0x01, 0x39, 0x12, 0x34, 0x43, 0x21], // phone 13912344321
        &[0x02, 0x00],                         // serial 0x0200
        &[0x00, 0x02],                         // total 2
        &[0x00, 0x00],                         // index 0
        &[0x09],                               // fragment
        &[0x52],                               // check code
        &[0x7E],
    ]);
    let index_3_of_2 = wire(&[
        &[0x7E],
        &[0x0F, 0x09],                         // msg id 0x0F09
        &[0x20, 0x01],                         // props: sub-packet, body 1
        &[0x01, 0x39, 0x12, 0x34, 0x43, 0x21], // phone 13912344321
        &[0x02, 0x01],                         // serial 0x0201
        &[0x00, 0x02],                         // total 2
        &[0x00, 0x03],                         // index 3
        &[0x09],                               // fragment
        &[0x50],                               // check code
        &[0x7E],
    ]);
    let total_0 = wire(&[
        &[0x7E],
        &[0x0F, 0x09],                         // msg id 0x0F09
        &[0x20, 0x01],                         // props: sub-packet, body 1
        &[0x01, 0x39, 0x12, 0x34, 0x43, 0x21], // phone 13912344321
        &[0x02, 0x02],                         // serial 0x0202
        &[0x00, 0x00],                         // total 0
        &[0x00, 0x00],                         // index 0
        &[0x09],                               // fragment
        &[0x52],                               // check code
        &[0x7E],
    ]);
    assert_eq!(
        d.push_vec(&index_0, ms(0)),
        [DecodeEvent::InvalidPacket {
            key: key(0x0F09, 2),
            index: 0,
            serial: 0x0200
        }]
    );
    assert_eq!(
        d.push_vec(&index_3_of_2, ms(0)),
        [DecodeEvent::InvalidPacket {
            key: key(0x0F09, 2),
            index: 3,
            serial: 0x0201
        }]
    );
    assert_eq!(
        d.push_vec(&total_0, ms(0)),
        [DecodeEvent::InvalidPacket {
            key: key(0x0F09, 0),
            index: 0,
            serial: 0x0202
        }]
    );
    assert_eq!(d.reassembler().open_groups(), 0, "no group was opened for them");
}

// ===== Reassembly: expiry by timeout =====

fn timeout_10s() -> DecoderConfig {
    DecoderConfig {
        reassembly: ReassemblyConfig {
            timeout: Duration::from_secs(10),
            ..ReassemblyConfig::default()
        },
        ..DecoderConfig::default()
    }
}

#[test]
fn group_without_packet_1_expires_with_the_first_serial_inferred_across_the_wrap() {
    let mut d = Decoder::new(timeout_10s());
    let index_2 = wire(&[
        &[0x7E],
        &[0x0F, 0x05],                         // msg id 0x0F05
        &[0x20, 0x01],                         // props: sub-packet, body 1
        &[0x01, 0x39, 0x12, 0x34, 0x43, 0x21], // phone 13912344321
        &[0x00, 0x00],                         // serial 0x0000
        &[0x00, 0x03],                         // total 3
        &[0x00, 0x02],                         // index 2
        &[0xE2],                               // fragment
        &[0xB4],                               // check code
        &[0x7E],
    ]);
    let index_3 = wire(&[
        &[0x7E],
        &[0x0F, 0x05],                         // msg id 0x0F05
        &[0x20, 0x01],                         // props: sub-packet, body 1
        &[0x01, 0x39, 0x12, 0x34, 0x43, 0x21], // phone 13912344321
        &[0x00, 0x05],                         // serial 0x0005
        &[0x00, 0x03],                         // total 3
        &[0x00, 0x03],                         // index 3
        &[0xE3],                               // fragment
        &[0xB1],                               // check code
        &[0x7E],
    ]);
    assert_eq!(d.push_vec(&index_2, ms(0)).len(), 1);
    assert_eq!(
        d.push_vec(&index_3, ms(1_000)).len(),
        1,
        "serials need not be consecutive"
    );
    assert_eq!(d.next_deadline(), Some(ms(11_000)), "10 s after the last packet");
    assert_eq!(d.push_vec(&[], ms(10_999)), []);
    assert_eq!(
        d.push_vec(&[], ms(11_000)),
        [DecodeEvent::GroupExpired(Expired {
            phone: terminal(),
            msg_id: 0x0F05,
            version: Version::V2013,
            total: 3,
            received: 2,
            missing: Missing::from_indices([1]),
            // From the earliest packet held: index 2 with serial 0x0000, so 0x0000 - 1 wraps.
            first_serial: 0xFFFF,
            first_serial_known: false,
            reason: ExpireReason::Timeout,
        })]
    );
    assert_eq!(d.reassembler().open_groups(), 0);
    assert_eq!(d.reassembler().bytes_held(), 0);
}

#[test]
fn group_with_packet_1_expires_with_the_first_serial_known() {
    let mut d = Decoder::new(timeout_10s());
    let index_1 = wire(&[
        &[0x7E],
        &[0x0F, 0x06],                         // msg id 0x0F06
        &[0x20, 0x01],                         // props: sub-packet, body 1
        &[0x01, 0x39, 0x12, 0x34, 0x43, 0x21], // phone 13912344321
        &[0xFF, 0xFE],                         // serial 0xFFFE
        &[0x00, 0x03],                         // total 3
        &[0x00, 0x01],                         // index 1
        &[0xF1],                               // fragment
        &[0xA6],                               // check code
        &[0x7E],
    ]);
    let index_3 = wire(&[
        &[0x7E],
        &[0x0F, 0x06],                         // msg id 0x0F06
        &[0x20, 0x01],                         // props: sub-packet, body 1
        &[0x01, 0x39, 0x12, 0x34, 0x43, 0x21], // phone 13912344321
        &[0x00, 0x00],                         // serial 0x0000
        &[0x00, 0x03],                         // total 3
        &[0x00, 0x03],                         // index 3
        &[0xF3],                               // fragment
        &[0xA7],                               // check code
        &[0x7E],
    ]);
    d.push_vec(&index_1, ms(0));
    d.push_vec(&index_3, ms(0));
    let mut events = Vec::new();
    d.expire(ms(10_000), |e| events.push(e));
    assert_eq!(
        events,
        [DecodeEvent::GroupExpired(Expired {
            phone: terminal(),
            msg_id: 0x0F06,
            version: Version::V2013,
            total: 3,
            received: 2,
            missing: Missing::from_indices([2]),
            first_serial: 0xFFFE,
            first_serial_known: true,
            reason: ExpireReason::Timeout,
        })]
    );
}

#[test]
fn packets_whose_serials_wrap_at_ffff_reassemble() {
    let mut d = Decoder::default();
    let index_1 = wire(&[
        &[0x7E],
        &[0x0F, 0x07],                         // msg id 0x0F07
        &[0x20, 0x02],                         // props: sub-packet, body 2
        &[0x01, 0x39, 0x12, 0x34, 0x43, 0x21], // phone 13912344321
        &[0xFF, 0xFF],                         // serial 0xFFFF
        &[0x00, 0x02],                         // total 2
        &[0x00, 0x01],                         // index 1
        &[0x67, 0x01],                         // fragment
        &[0x33],                               // check code
        &[0x7E],
    ]);
    let index_2 = wire(&[
        &[0x7E],
        &[0x0F, 0x07],                         // msg id 0x0F07
        &[0x20, 0x02],                         // props: sub-packet, body 2
        &[0x01, 0x39, 0x12, 0x34, 0x43, 0x21], // phone 13912344321
        &[0x00, 0x00],                         // serial 0x0000
        &[0x00, 0x02],                         // total 2
        &[0x00, 0x02],                         // index 2
        &[0x67, 0x02],                         // fragment
        &[0x33],                               // check code
        &[0x7E],
    ]);
    d.push_vec(&index_1, ms(0));
    let events = d.push_vec(&index_2, ms(0));
    let m = only_message(&events);
    assert_eq!(m.header.serial, 0xFFFF);
    assert_eq!(m.assembled.map(|a| (a.packets, a.first_serial)), Some((2, 0xFFFF)));
    assert_eq!(m.body_bytes(), [0x67, 0x01, 0x67, 0x02]);
}

// ===== Reassembly: eviction by the group and byte limits =====

fn packet_a() -> Vec<u8> {
    wire(&[
        &[0x7E],
        &[0x0F, 0x01],                         // msg id 0x0F01
        &[0x20, 0x03],                         // props: sub-packet, body 3
        &[0x01, 0x39, 0x12, 0x34, 0x43, 0x21], // phone 13912344321
        &[0x00, 0x10],                         // serial 0x0010
        &[0x00, 0x02],                         // total 2
        &[0x00, 0x01],                         // index 1
        &[0xA1, 0xA2, 0xA3],                   // fragment
        &[0xE2],                               // check code
        &[0x7E],
    ])
}

fn packet_b() -> Vec<u8> {
    wire(&[
        &[0x7E],
        &[0x0F, 0x02],                         // msg id 0x0F02
        &[0x20, 0x03],                         // props: sub-packet, body 3
        &[0x01, 0x39, 0x12, 0x34, 0x43, 0x21], // phone 13912344321
        &[0x00, 0x11],                         // serial 0x0011
        &[0x00, 0x02],                         // total 2
        &[0x00, 0x01],                         // index 1
        &[0xB1, 0xB2, 0xB3],                   // fragment
        &[0xF0],                               // check code
        &[0x7E],
    ])
}

fn packet_c() -> Vec<u8> {
    wire(&[
        &[0x7E],
        &[0x0F, 0x03],                         // msg id 0x0F03
        &[0x20, 0x03],                         // props: sub-packet, body 3
        &[0x01, 0x39, 0x12, 0x34, 0x43, 0x21], // phone 13912344321
        &[0x00, 0x12],                         // serial 0x0012
        &[0x00, 0x02],                         // total 2
        &[0x00, 0x01],                         // index 1
        &[0xC1, 0xC2, 0xC3],                   // fragment
        &[0x82],                               // check code
        &[0x7E],
    ])
}

/// Group `0x0F0x` total 2 given up with only packet 1 (serial `serial`) held.
fn evicted(msg_id: u16, serial: u16, reason: ExpireReason) -> DecodeEvent {
    DecodeEvent::GroupExpired(Expired {
        phone: terminal(),
        msg_id,
        version: Version::V2013,
        total: 2,
        received: 1,
        missing: Missing::from_indices([2]),
        first_serial: serial,
        first_serial_known: true,
        reason,
    })
}

#[test]
fn third_group_over_a_limit_of_two_evicts_the_oldest() {
    let mut d = Decoder::new(DecoderConfig {
        reassembly: ReassemblyConfig {
            max_groups: 2,
            ..ReassemblyConfig::default()
        },
        ..DecoderConfig::default()
    });
    d.push_vec(&packet_a(), ms(0));
    d.push_vec(&packet_b(), ms(1));
    assert_eq!(
        d.push_vec(&packet_c(), ms(2)),
        [
            evicted(0x0F01, 0x0010, ExpireReason::GroupLimit),
            DecodeEvent::Packet {
                key: key(0x0F03, 2),
                index: 1,
                serial: 0x0012
            },
        ]
    );
    assert_eq!(d.reassembler().open_groups(), 2);
}

#[test]
fn packet_group_of_one_completes_at_once_and_evicts_nothing() {
    let mut d = Decoder::new(DecoderConfig {
        reassembly: ReassemblyConfig {
            max_groups: 1,
            ..ReassemblyConfig::default()
        },
        ..DecoderConfig::default()
    });
    d.push_vec(&packet_a(), ms(0));
    let one_of_one = wire(&[
        &[0x7E],
        &[0x0F, 0x0A],                         // msg id 0x0F0A
        &[0x20, 0x02],                         // props: sub-packet, body 2
        &[0x01, 0x39, 0x12, 0x34, 0x43, 0x21], // phone 13912344321
        &[0x00, 0x30],                         // serial 0x0030
        &[0x00, 0x01],                         // total 1
        &[0x00, 0x01],                         // index 1
        &[0x51, 0x51],                         // fragment
        &[0x6B],                               // check code
        &[0x7E],
    ]);
    let events = d.push_vec(&one_of_one, ms(1));
    let m = only_message(&events);
    assert_eq!(m.header.packet, None);
    assert_eq!(m.assembled.map(|a| (a.packets, a.first_serial)), Some((1, 0x0030)));
    assert_eq!(m.body_bytes(), [0x51, 0x51]);
    assert_eq!(d.reassembler().open_groups(), 1, "group A was not evicted to make room");
}

/// Room for one packet of 3 bytes with its index slot, not for two (the limit counts both).
fn max_bytes_5() -> DecoderConfig {
    DecoderConfig {
        reassembly: ReassemblyConfig {
            max_bytes: 5 + SLOT_BYTES,
            ..ReassemblyConfig::default()
        },
        ..DecoderConfig::default()
    }
}

#[test]
fn new_group_over_the_byte_limit_evicts_the_oldest() {
    let mut d = Decoder::new(max_bytes_5());
    d.push_vec(&packet_a(), ms(0)); // 3 bytes and a slot held
    assert_eq!(
        d.push_vec(&packet_b(), ms(1)), // 3 + 3 > 5 (plus two slots)
        [
            evicted(0x0F01, 0x0010, ExpireReason::ByteLimit),
            DecodeEvent::Packet {
                key: key(0x0F02, 2),
                index: 1,
                serial: 0x0011
            },
        ]
    );
    assert_eq!(d.reassembler().bytes_held(), 3 + SLOT_BYTES);
}

#[test]
fn group_that_alone_outgrows_the_byte_limit_is_given_up() {
    let mut d = Decoder::new(max_bytes_5());
    let index_1 = wire(&[
        &[0x7E],
        &[0x0F, 0x04],                         // msg id 0x0F04
        &[0x20, 0x03],                         // props: sub-packet, body 3
        &[0x01, 0x39, 0x12, 0x34, 0x43, 0x21], // phone 13912344321
        &[0x00, 0x20],                         // serial 0x0020
        &[0x00, 0x03],                         // total 3
        &[0x00, 0x01],                         // index 1
        &[0xD1, 0xD1, 0xD1],                   // fragment
        &[0xA7],                               // check code
        &[0x7E],
    ]);
    let index_2 = wire(&[
        &[0x7E],
        &[0x0F, 0x04],                         // msg id 0x0F04
        &[0x20, 0x03],                         // props: sub-packet, body 3
        &[0x01, 0x39, 0x12, 0x34, 0x43, 0x21], // phone 13912344321
        &[0x00, 0x21],                         // serial 0x0021
        &[0x00, 0x03],                         // total 3
        &[0x00, 0x02],                         // index 2
        &[0xD2, 0xD2, 0xD2],                   // fragment
        &[0xA6],                               // check code
        &[0x7E],
    ]);
    d.push_vec(&index_1, ms(0));
    assert_eq!(
        d.push_vec(&index_2, ms(1)), // 3 + 3 > 5 with no other group to evict
        [DecodeEvent::GroupExpired(Expired {
            phone: terminal(),
            msg_id: 0x0F04,
            version: Version::V2013,
            total: 3,
            received: 2,
            missing: Missing::from_indices([3]),
            first_serial: 0x0020,
            first_serial_known: true,
            reason: ExpireReason::ByteLimit,
        })]
    );
    assert_eq!(d.reassembler().bytes_held(), 0, "never more than the limit held");
    assert_eq!(d.reassembler().open_groups(), 0);
}

// ===== Version traps (JT808.md §2.3) =====

#[test]
fn bit_14_set_by_a_2013_device_is_read_as_2013_and_re_encodes_to_its_own_bytes() {
    let bytes = wire(&[
        &[0x7E],
        &[0x00, 0x02],                         // msg id 0x0002 heartbeat
        &[0x40, 0x00],                         // props: bit 14 set, body 0
        &[0x01, 0x23, 0x45, 0x67, 0x89, 0x01], // phone 12345678901 (2013 width)
        &[0x00, 0x01],                         // serial 1
        &[0xCB],                               // check code
        &[0x7E],
    ]);
    let events = decode_all(&bytes);
    let m = only_message(&events);
    assert_eq!(m.header.version, Version::V2013);
    assert_eq!(m.header.quirk, Some(HeaderQuirk::VersionFlagOn2013Layout));
    assert_eq!(m.header.protocol_version, None);
    assert_eq!(m.header.phone, phone("12345678901"));
    assert_eq!(m.header.serial, 1);
    assert!(m.body_bytes().is_empty());
    assert_eq!(m.encode(), bytes);
}

#[test]
fn bit_14_set_by_a_2013_device_with_escapes_in_header_and_body_re_encodes_exactly() {
    let bytes = wire(&[
        &[0x7E],
        &[0x0F, 0x01],                         // msg id 0x0F01
        &[0x40, 0x03],                         // props: bit 14 set, body 3
        &[0x01, 0x39, 0x12, 0x34, 0x43, 0x21], // phone 13912344321 (2013 width)
        &[0x00, 0x7D, 0x02],                   // serial 0x007E
        &[0xAA, 0x7D, 0x02, 0x7D, 0x01],       // body
        &[0xE6],                               // check code
        &[0x7E],
    ]);
    let events = decode_all(&bytes);
    let m = only_message(&events);
    assert_eq!(m.header.version, Version::V2013);
    assert_eq!(m.header.quirk, Some(HeaderQuirk::VersionFlagOn2013Layout));
    assert_eq!(m.header.serial, 0x007E);
    assert_eq!(m.body_bytes(), [0xAA, 0x7E, 0x7D]);
    assert_eq!(m.encode(), bytes);
}

/// `iss-smallchi26-2019-header-without-flag`: a platform-built 0x8104 in the 2019 layout, bit 14 clear.
fn smallchi26() -> Vec<u8> {
    wire(&[
        &[0x7E],
        &[0x81, 0x04],                                                 // msg id 0x8104
        &[0x00, 0x00],                                                 // props: bit 14 clear, body 0
        &[0x01],                                                       // protocol version 1
        &[0x00, 0x00, 0x00, 0x00, 0x01, 0x23, 0x45, 0x67, 0x89, 0x10], // phone 12345678910
        &[0x00, 0x01],                                                 // serial 1
        &[0x1C],                                                       // check code
        &[0x7E],
    ])
}

#[test]
fn smallchi26_2019_layout_without_the_flag_is_read_as_2019_and_re_encodes_to_its_own_bytes() {
    assert_eq!(
        smallchi26(),
        support::vectors::wire("iss-smallchi26-2019-header-without-flag")
    );
    let events = decode_all(&smallchi26());
    let m = only_message(&events);
    assert_eq!(m.header.msg_id, 0x8104);
    assert_eq!(m.header.version, Version::V2019);
    assert_eq!(m.header.quirk, Some(HeaderQuirk::V2019LayoutWithoutFlag));
    assert_eq!(m.header.protocol_version, Some(1));
    assert_eq!(m.header.phone, phone("12345678910"));
    assert_eq!(m.header.phone.to_string(), "12345678910");
    assert_eq!(m.header.serial, 1);
    assert_eq!(m.header.body_len, 0);
    assert_eq!(m.encode(), smallchi26());
}

#[test]
fn honest_2019_header_has_no_quirk() {
    let bytes = support::vectors::wire("yz-0001-2019");
    let events = decode_all(&bytes);
    let m = only_message(&events);
    assert_eq!(m.header.version, Version::V2019);
    assert_eq!(m.header.quirk, None);
    assert_eq!(m.header.phone, phone("17299841738"));
    assert_eq!(m.encode(), bytes);
}

// ===== rejoin_unescaped_flag: a held rejection is still reported, in order =====

fn rejoining() -> DecoderConfig {
    let mut cfg = DecoderConfig::default();
    cfg.deframer.rejoin_unescaped_flag = true;
    cfg
}

/// The heartbeat with its check code spoiled: a bad-checksum candidate, which the rejoin setting
/// holds until the next 0x7E shows whether a 0x7E data byte explains it.
fn bad_heartbeat() -> Vec<u8> {
    let mut b = heartbeat();
    let n = b.len();
    b[n - 2] ^= 0xFF;
    b
}

#[test]
fn rejoin_setting_reports_a_held_rejection_before_the_next_frame() {
    // 7E <bad> 7E 7E <heartbeat> 7E: back to back, nothing to join with.
    let bytes = wire(&[&bad_heartbeat(), &heartbeat()]);
    let events = decode_all_with(rejoining(), &bytes);
    assert!(
        matches!(
            &events[..],
            [
                DecodeEvent::Rejected(FrameError::BadChecksum { offset: 0, found: 0xF5, computed: 0x0A }),
                DecodeEvent::Message(m),
            ] if m.header.serial == 0x7FFF
        ),
        "{events:#?}"
    );
    assert_eq!(events, decode_all(&bytes), "the same as without the setting");
}

#[test]
fn rejoin_setting_reports_a_held_rejection_before_garbage_that_does_not_join() {
    // 7E <bad> 7E AA BB 7E: the two joined by a 0x7E fail as well.
    let bytes = wire(&[&bad_heartbeat(), &[0xAA, 0xBB, 0x7E]]);
    assert_eq!(
        decode_all_with(rejoining(), &bytes),
        [
            DecodeEvent::Rejected(FrameError::BadChecksum {
                offset: 0,
                found: 0xF5,
                computed: 0x0A
            }),
            DecodeEvent::Skipped { offset: 15, len: 2 },
        ]
    );
}

#[test]
fn rejoin_setting_reports_a_held_rejection_at_the_end_of_the_stream() {
    let mut d = Decoder::new(rejoining());
    assert_eq!(
        d.push_vec(&bad_heartbeat(), Duration::ZERO),
        [],
        "held until the next 0x7E"
    );
    let mut end = Vec::new();
    d.end_stream(|e| end.push(e));
    assert_eq!(
        end,
        [DecodeEvent::Rejected(FrameError::BadChecksum {
            offset: 0,
            found: 0xF5,
            computed: 0x0A
        })]
    );
}

#[test]
fn rejoin_setting_joins_a_frame_cut_by_an_unescaped_0x7e() {
    // A heartbeat whose serial is 0x7E01: a device that forgets the escape sends 7E 01.
    let bytes = wire(&[
        &[0x7E],
        &[0x00, 0x02],                         // heartbeat
        &[0x00, 0x00],                         // body 0
        &[0x01, 0x23, 0x45, 0x67, 0x89, 0x01], // phone
        &[0x7E, 0x01],                         // serial 0x7E01, unescaped: the 0x7E at 11
        &[0xF5],                               // check code
        &[0x7E],
    ]);
    assert_eq!(
        decode_all(&bytes)[0],
        DecodeEvent::Rejected(FrameError::TooShort { offset: 0, len: 9 })
    );
    let events = decode_all_with(rejoining(), &bytes);
    assert_eq!(events[0], DecodeEvent::UnescapedFlag { offset: 0, at: 11 });
    assert_eq!(only_message(&events[1..]).header.serial, 0x7E01);
}

#[test]
fn rejoin_setting_takes_an_unescaped_0x7e_check_code_right_before_the_closing_one() {
    // A heartbeat whose check code is 0x7E, sent bare: 7E ... 7E 7E. Then a good heartbeat.
    let bytes = wire(&[
        &[0x7E],
        &[0x00, 0x02],                         // heartbeat
        &[0x00, 0x00],                         // body 0
        &[0x01, 0x23, 0x45, 0x67, 0x89, 0x01], // phone
        &[0x00, 0xF4],                         // serial 0x00F4
        &[0x7E],                               // check code 0x7E, unescaped: at 13
        &[0x7E],                               // closing
        &heartbeat(),
    ]);
    let events = decode_all_with(rejoining(), &bytes);
    assert_eq!(events[0], DecodeEvent::UnescapedFlag { offset: 0, at: 13 });
    let serials: Vec<u16> = events[1..]
        .iter()
        .map(|e| match e {
            DecodeEvent::Message(m) => m.header.serial,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(serials, [0x00F4, 0x7FFF]);
    assert_eq!(
        decode_all(&bytes)[0],
        DecodeEvent::Rejected(FrameError::TooShort { offset: 0, len: 11 }),
        "strictly: cut short"
    );
}

#[test]
fn rejoin_setting_never_joins_past_the_frame_limit() {
    // Message id 0x7E00 (escaped: 7D 02 00) with no body and serial 0x7E01 left unescaped: 14
    // escaped bytes between the delimiters, over a limit of 13.
    let bytes = wire(&[
        &[0x7E],
        &[0x7D, 0x02, 0x00],                   // msg id 0x7E00, escaped
        &[0x00, 0x00],                         // body 0
        &[0x01, 0x23, 0x45, 0x67, 0x89, 0x01], // phone
        &[0x7E, 0x01],                         // serial 0x7E01, unescaped
        &[0x89],                               // check code
        &[0x7E],
    ]);
    let mut cfg = rejoining();
    cfg.deframer.max_frame_len = 14;
    assert!(
        matches!(
            &decode_all_with(cfg, &bytes)[..],
            [DecodeEvent::UnescapedFlag { .. }, DecodeEvent::Message(_)]
        ),
        "within the limit it joins"
    );
    cfg.deframer.max_frame_len = 13;
    let events = decode_all_with(cfg, &bytes);
    assert!(
        !events.iter().any(|e| matches!(e, DecodeEvent::Message(_))),
        "over the limit it does not: {events:?}"
    );
}
