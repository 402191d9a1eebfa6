//! Properties of the codec over generated input: what any message, any chunking, any garbage and
//! any packet order must give. The generator seeds are fixed, so a run is reproducible; random
//! choices inside a case (shuffling) come from a ChaCha8 seeded by the case.
//!
//! 1. A message encoded and cut into arbitrary chunks decodes to itself and re-encodes to its bytes.
//! 2. Messages back to back with garbage (no 0x7E) between them decode to themselves; the garbage
//!    comes out as `Skipped` with its exact offset and length.
//! 3. A message split into packets (`Message::encode_packets`), shuffled, some packets sent twice,
//!    reassembles to the original; the duplicates are reported as such.
//! 4. Arbitrary bytes (and frames mixed with garbage and corruption) never panic, and the bytes
//!    held never exceed the configured limits.
//! 5. The chunking of a stream, however hostile, never changes the events it gives.
//! 6. With `rejoin_unescaped_flag`, a message whose frame carries one unescaped 0x7E decodes to
//!    itself in any chunking, announced by `UnescapedFlag`.
//! 7. A 0x0200 report checked against a layout the decoder remembers (codec/body/location/layout.rs)
//!    decodes exactly as the plain walk does, also when it differs from the remembered report in a
//!    few bytes or its length.
//! 8. Any body of any typed id, in every version (the bodies of tests/bodies/cases.rs with bytes
//!    flipped, cut or added, and arbitrary bytes): what decodes typed encodes to exactly its bytes
//!    and decodes again to itself; what does not is kept raw and re-encodes to its bytes.
//! 9. Lending events (`Decoder::push_lent`, whose 0x0200 reports reuse one slot) gives exactly the
//!    events giving them (`Decoder::push`) does, whatever the consumer takes and whatever comes
//!    between the reports: a reused report never shows anything of the one before.

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::RngSeed;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use jt808_harness::codec::body::{Body, RawBody};
use jt808_harness::codec::decoder::decode_message;
use jt808_harness::codec::frame::frame_into;
use jt808_harness::codec::message::Assembled;
use jt808_harness::codec::reassembly::{GroupKey, ReassemblyConfig};
use jt808_harness::codec::{
    DecodeEvent, Decoder, DecoderConfig, DeframerConfig, Header, HeaderQuirk, Message, PacketInfo, Phone, Version,
};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(0x0808_1078),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Body and garbage bytes: the two bytes that need escaping are over-represented.
fn wire_byte() -> impl Strategy<Value = u8> {
    prop_oneof![6 => any::<u8>(), 1 => Just(0x7E), 1 => Just(0x7D)]
}

/// Garbage: anything but the delimiter (0x7D included, so escapes dangle in it).
fn garbage(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(wire_byte().prop_filter("no delimiter", |b| *b != 0x7E), 0..=max)
}

/// A phone of 1 to `max_digits` digits.
fn phone(max_digits: usize) -> impl Strategy<Value = Phone> {
    prop::collection::vec(0u8..10, 1..=max_digits).prop_map(|digits| {
        let s: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
        Phone::parse(&s).expect("1 to 20 digits")
    })
}

/// A header as a sender would build it: 2013 or 2019 (with any protocol-version byte), any serial,
/// any encryption bits, bit 15, and sometimes a version flag that lies (JT808.md §2.3).
fn header(msg_id: u16) -> impl Strategy<Value = Header> {
    let v2013 = (phone(12), any::<bool>()).prop_map(|(p, lie)| {
        let mut h = Header::new(0, Version::V2013, p, 0);
        h.quirk = lie.then_some(HeaderQuirk::VersionFlagOn2013Layout);
        h
    });
    let v2019 = (phone(20), any::<u8>(), any::<bool>()).prop_map(|(p, pv, lie)| {
        let mut h = Header::new(0, Version::V2019, p, 0);
        h.protocol_version = Some(pv);
        h.quirk = lie.then_some(HeaderQuirk::V2019LayoutWithoutFlag);
        h
    });
    (prop_oneof![v2013, v2019], any::<u16>(), 0u8..8, any::<bool>()).prop_map(move |(mut h, serial, enc, bit15)| {
        h.msg_id = msg_id;
        h.serial = serial;
        h.encryption = enc;
        h.reserved_bit15 = bit15;
        h
    })
}

#[path = "bodies/cases.rs"]
#[allow(dead_code)]
mod cases;

/// A message id with a body for it: a vendor id no typed body claims (0x0F00-0x0FFF) with 0..=1023 raw
/// bytes, or a general response (0x0001 / 0x8001, typed) with its 5 bytes.
fn id_and_body() -> impl Strategy<Value = (u16, Vec<u8>)> {
    prop_oneof![
        3 => (0x0F00u16..=0x0FFF, prop::collection::vec(wire_byte(), 0..=1023)),
        1 => (prop_oneof![Just(0x0001u16), Just(0x8001)], prop::collection::vec(wire_byte(), 5)),
    ]
}

/// A single-frame message and its body bytes. The header's `body_len` is set as the decoder
/// reports it.
fn message() -> impl Strategy<Value = (Message, Vec<u8>)> {
    id_and_body().prop_flat_map(|(id, body)| {
        header(id).prop_map(move |mut h| {
            h.body_len = body.len() as u16;
            (decode_message(h, &body, None), body.clone())
        })
    })
}

/// Cut positions in `0..=len`, ascending.
fn cut_points(cuts: &[Index], len: usize) -> Vec<usize> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(len + 1)).collect();
    at.sort_unstable();
    at
}

/// Pushes `bytes` cut at `cuts`, then ends the stream; all events in order.
fn decode_chunked(d: &mut Decoder, bytes: &[u8], cuts: &[usize]) -> Vec<DecodeEvent> {
    let mut events = Vec::new();
    let mut from = 0;
    for &to in cuts.iter().chain(std::iter::once(&bytes.len())) {
        d.push(&bytes[from..to], Duration::ZERO, |e| events.push(e));
        from = to;
    }
    d.end_stream(|e| events.push(e));
    events
}

proptest! {
    #![proptest_config(config(256))]

    /// Any message, cut anywhere, comes out once and as it went in, and re-encodes to its bytes.
    #[test]
    fn message_in_any_chunking_decodes_to_itself((msg, body) in message(), cuts in prop::collection::vec(any::<Index>(), 0..8)) {
        let wire = msg.encode();
        let events = decode_chunked(&mut Decoder::default(), &wire, &cut_points(&cuts, wire.len()));
        prop_assert_eq!(events.len(), 1, "{:#?}", events);
        let DecodeEvent::Message(got) = &events[0] else {
            return Err(TestCaseError::fail(format!("not a message: {:?}", events[0])));
        };
        prop_assert_eq!(got, &msg);
        prop_assert_eq!(got.body_bytes(), body);
        prop_assert_eq!(got.encode(), wire);
    }

    /// Messages with garbage before, between and after them: each message once, each garbage run
    /// once as `Skipped` at its exact offset.
    #[test]
    fn messages_with_garbage_between_decode_with_the_garbage_skipped(
        items in prop::collection::vec((garbage(40), message()), 1..6),
        tail in garbage(40),
        cuts in prop::collection::vec(any::<Index>(), 0..12),
    ) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for (junk, (msg, _)) in &items {
            if !junk.is_empty() {
                expected.push(DecodeEvent::Skipped { offset: stream.len() as u64, len: junk.len() as u64 });
            }
            stream.extend(junk);
            expected.push(DecodeEvent::Message(msg.clone()));
            stream.extend(msg.encode());
        }
        if !tail.is_empty() {
            expected.push(DecodeEvent::Skipped { offset: stream.len() as u64, len: tail.len() as u64 });
        }
        stream.extend(&tail);
        let events = decode_chunked(&mut Decoder::default(), &stream, &cut_points(&cuts, stream.len()));
        prop_assert_eq!(events, expected);
    }

    /// A long body split into packets, shuffled, some packets twice, with serials that skip: one
    /// message, equal to the original; every other packet reported as buffered or duplicate.
    #[test]
    fn packets_shuffled_and_duplicated_reassemble_to_the_original(
        (packet_size, body) in (1usize..=1023).prop_flat_map(|size| {
            (Just(size), prop::collection::vec(wire_byte(), size + 1..=(size * 40).min(6000)))
        }),
        h in header(0x0F42),
        seed in any::<u64>(),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut h = h;
        h.encryption = 0;
        let msg = decode_message(h.clone(), &body, None);
        // Serials: increasing from the header's with random gaps (other messages in between).
        let mut serial = h.serial;
        let mut serials = Vec::new();
        let packets = msg.encode_packets(packet_size, || {
            let s = serial;
            serial = serial.wrapping_add(rng.random_range(1..20));
            serials.push(s);
            s
        });
        let total = packets.len() as u16;
        prop_assert_eq!(total as usize, body.len().div_ceil(packet_size));
        let mut order: Vec<usize> = (0..packets.len()).collect();
        for _ in 0..rng.random_range(0..=packets.len()) {
            order.push(rng.random_range(0..packets.len()));
        }
        order.shuffle(&mut rng);

        // The model: a group completes when every index has been seen; a repeat is a duplicate;
        // copies arriving after completion (same serials) are duplicates of the completed group.
        let key = GroupKey { phone: h.phone, msg_id: h.msg_id, total };
        let mut expected = Vec::new();
        let mut seen = BTreeSet::new();
        let mut completed = false;
        for &i in &order {
            let index = i as u16 + 1;
            if completed || !seen.insert(index) {
                expected.push(DecodeEvent::DuplicatePacket { key, index, serial: serials[i], differs: false, completed });
            } else if seen.len() == packets.len() {
                let mut first = h.clone();
                first.serial = serials[0];
                first.body_len = body.len() as u16;
                let assembled = Assembled { packets: total, first_serial: serials[0] };
                expected.push(DecodeEvent::Message(decode_message(first, &body, Some(assembled))));
                completed = true;
            } else {
                expected.push(DecodeEvent::Packet { key, index, serial: serials[i] });
            }
        }
        let mut stream = Vec::new();
        for &i in &order {
            stream.extend(&packets[i]);
        }
        let mut d = Decoder::default();
        let events = d.push_vec(&stream, Duration::ZERO);
        prop_assert_eq!(events, expected);
        prop_assert_eq!(d.reassembler().open_groups(), 0);
        prop_assert_eq!(d.reassembler().remembered_groups(), 1);
    }
}

/// Checks what every event stream must satisfy: offsets name the input (a rejected frame starts at
/// a 0x7E, a skipped run holds none) and come in stream order.
fn check_offsets(input: &[u8], events: &[DecodeEvent]) -> Result<(), TestCaseError> {
    let mut last: Option<u64> = None;
    for e in events {
        let offset = match e {
            DecodeEvent::Rejected(err) => {
                let at = err.offset() as usize;
                prop_assert_eq!(input.get(at), Some(&0x7E), "{:?} names no delimiter", err);
                err.offset()
            }
            DecodeEvent::Skipped { offset, len } => {
                let run = &input[*offset as usize..(*offset + *len) as usize];
                prop_assert!(*len > 0 && !run.contains(&0x7E), "skipped run {:?}", e);
                *offset
            }
            DecodeEvent::UnescapedFlag { offset, at } => {
                prop_assert!(offset < at, "{:?}", e);
                prop_assert_eq!(input.get(*offset as usize), Some(&0x7E), "{:?} names no delimiter", e);
                prop_assert_eq!(input.get(*at as usize), Some(&0x7E), "{:?} names no 0x7E", e);
                *offset
            }
            _ => continue,
        };
        if let Some(prev) = last {
            prop_assert!(offset > prev, "offset {} after {}", offset, prev);
        }
        last = Some(offset);
    }
    Ok(())
}

/// Small limits, so that every limit is hit often.
fn small_limits() -> impl Strategy<Value = DecoderConfig> {
    (
        0usize..=96,
        1usize..=4,
        0usize..=64,
        1u64..=5,
        any::<bool>(),
        0u64..=3,
        0usize..=2,
    )
        .prop_map(
            |(frame, groups, bytes, timeout, rejoin, wait, remember)| DecoderConfig {
                deframer: DeframerConfig {
                    max_frame_len: frame,
                    rejoin_unescaped_flag: rejoin,
                },
                reassembly: ReassemblyConfig {
                    timeout: Duration::from_secs(timeout),
                    max_groups: groups,
                    max_bytes: bytes,
                    retransmit_wait: Duration::from_secs(wait),
                    remember_completed: remember,
                },
            },
        )
}

/// One piece of a hostile stream: garbage, or a packet of a small set of groups (index and total
/// possibly invalid), possibly with one byte flipped.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    let packet = (
        0u8..3,
        0x0F10u16..0x0F13,
        0u16..=4,
        0u16..=5,
        any::<u16>(),
        prop::collection::vec(wire_byte(), 0..=40),
        prop::option::of((any::<Index>(), any::<u8>())),
    )
        .prop_map(|(terminal, msg_id, total, index, serial, fragment, flip)| {
            let phone = Phone::parse(&format!("1390000000{terminal}")).expect("digits");
            let mut h = Header::new(msg_id, Version::V2013, phone, serial);
            h.packet = Some(PacketInfo { total, index });
            let mut content = Vec::new();
            h.write(fragment.len(), &mut content);
            content.extend(&fragment);
            let mut wire = Vec::new();
            frame_into(&content, &mut wire);
            if let Some((at, b)) = flip {
                let i = at.index(wire.len());
                wire[i] ^= b;
            }
            wire
        });
    prop_oneof![1 => prop::collection::vec(wire_byte(), 0..=200), 3 => packet]
}

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary bytes, arbitrarily chunked: no panic, offsets well-formed, nothing held past a limit.
    #[test]
    fn arbitrary_bytes_never_panic_and_stay_within_the_limits(
        cfg in small_limits(),
        bytes in prop::collection::vec(wire_byte(), 0..4000),
        cuts in prop::collection::vec(any::<Index>(), 0..20),
    ) {
        run_hostile(cfg, &bytes, &cut_points(&cuts, bytes.len()))?;
    }

    /// Valid packets of a few groups mixed with garbage and flipped bytes, over advancing time:
    /// the limits and the timeout are hit, and still nothing is held past a limit.
    #[test]
    fn hostile_packet_streams_stay_within_the_limits(
        cfg in small_limits(),
        pieces in prop::collection::vec(piece(), 1..60),
        cuts in prop::collection::vec(any::<Index>(), 0..30),
    ) {
        let bytes = pieces.concat();
        run_hostile(cfg, &bytes, &cut_points(&cuts, bytes.len()))?;
    }

    /// The chunking never changes the events: the same hostile stream whole, cut at random points,
    /// and one byte at a time gives the same list (escape pairs, delimiters and over-long runs cut
    /// anywhere included).
    #[test]
    fn chunking_never_changes_the_events(
        cfg in small_limits(),
        pieces in prop::collection::vec(piece(), 1..30),
        cuts in prop::collection::vec(any::<Index>(), 0..30),
    ) {
        let bytes = pieces.concat();
        let whole = decode_chunked(&mut Decoder::new(cfg), &bytes, &[]);
        let cut = decode_chunked(&mut Decoder::new(cfg), &bytes, &cut_points(&cuts, bytes.len()));
        prop_assert_eq!(&cut, &whole);
        let every_byte: Vec<usize> = (1..bytes.len()).collect();
        let bytewise = decode_chunked(&mut Decoder::new(cfg), &bytes, &every_byte);
        prop_assert_eq!(&bytewise, &whole);
    }
}

fn run_hostile(cfg: DecoderConfig, bytes: &[u8], cuts: &[usize]) -> Result<(), TestCaseError> {
    let mut d = Decoder::new(cfg);
    let mut events = Vec::new();
    let mut from = 0;
    for (n, &to) in cuts.iter().chain(std::iter::once(&bytes.len())).enumerate() {
        // Time advances by a second a chunk, so the small timeouts fire mid-stream.
        d.push(&bytes[from..to], Duration::from_secs(n as u64), |e| events.push(e));
        from = to;
        let held = d.deframer().pending_len();
        // A held rejected candidate (rejoin_unescaped_flag) may hold as much again.
        let bound = (cfg.deframer.max_frame_len + 1) * if cfg.deframer.rejoin_unescaped_flag { 2 } else { 1 };
        prop_assert!(held <= bound, "deframer holds {} bytes", held);
        let r = d.reassembler();
        prop_assert!(
            r.bytes_held() <= cfg.reassembly.max_bytes,
            "reassembler holds {} bytes",
            r.bytes_held()
        );
        prop_assert!(
            r.open_groups() <= cfg.reassembly.max_groups,
            "{} groups open",
            r.open_groups()
        );
    }
    d.end_stream(|e| events.push(e));
    prop_assert_eq!(d.deframer().pending_len(), 0);
    check_offsets(bytes, &events)?;
    // Whatever was reassembled is consistent with its header.
    for e in &events {
        if let DecodeEvent::Message(m) = e {
            prop_assert_eq!(m.header.packet, None);
            prop_assert_eq!(usize::from(m.header.body_len), m.body_bytes().len());
        }
    }
    Ok(())
}

/// Value lengths of the table of JT808.md §5.4 (the first allowed one), written out here on their
/// own so the test does not lean on the table it checks.
const SPEC_ITEMS: &[(u8, usize)] = &[
    (0x01, 4),
    (0x02, 2),
    (0x03, 2),
    (0x04, 2),
    (0x06, 2),
    (0x11, 5),
    (0x12, 6),
    (0x13, 7),
    (0x14, 4),
    (0x17, 2),
    (0x18, 3),
    (0x25, 4),
    (0x2A, 2),
    (0x2B, 4),
    (0x30, 1),
    (0x31, 1),
    (0xE1, 3),
];

/// One additional item's bytes: mostly a table id with its table length, sometimes any id or a
/// wrong length.
fn location_item() -> impl Strategy<Value = Vec<u8>> {
    let table = prop::sample::select(SPEC_ITEMS).prop_flat_map(|(id, n)| {
        prop::collection::vec(any::<u8>(), n).prop_map(move |v| [vec![id, n as u8], v].concat())
    });
    let odd = (any::<u8>(), prop::collection::vec(any::<u8>(), 0..8))
        .prop_map(|(id, v)| [vec![id, v.len() as u8], v].concat());
    prop_oneof![6 => table, 1 => odd]
}

/// A 0x0200 body: a basic block and up to 40 items (areas past the 255 bytes a layout remembers).
fn location_body() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(any::<u8>(), 28),
        prop::collection::vec(location_item(), 0..40),
    )
        .prop_map(|(basic, items)| [basic, items.concat()].concat())
}

/// `body` as a single 2013 frame through `d`; the location the decoder made of it.
fn decode_report(d: &mut Decoder, body: &[u8], serial: u16) -> Result<Body, TestCaseError> {
    let phone = Phone::parse("13912344321").expect("digits");
    let raw = Body::Raw(RawBody { raw: body.to_vec() });
    let wire = Message::new(0x0200, Version::V2013, phone, serial, raw).encode();
    let events = d.push_vec(&wire, Duration::ZERO);
    match &events[..] {
        [DecodeEvent::Message(m)] => Ok(m.body.clone()),
        other => Err(TestCaseError::fail(format!("not one message: {other:?}"))),
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// A report, the same report again (checked against the layout the first one taught), then a
    /// variant with a few item bytes changed or the end moved: each decodes exactly as the plain
    /// walk (`Body::decode`, no remembered layouts) decodes it, issues included.
    #[test]
    fn remembered_layouts_decode_exactly_as_the_walk(
        body in location_body(),
        edits in prop::collection::vec((any::<Index>(), any::<u8>()), 0..3),
        resize in prop::option::of((any::<Index>(), any::<u8>())),
    ) {
        let mut variant = body.clone();
        if variant.len() > 28 {
            for (at, b) in &edits {
                let i = 28 + at.index(variant.len() - 28);
                variant[i] = *b;
            }
        }
        if let Some((at, b)) = resize {
            // Cut the items somewhere, or append one byte.
            let n = at.index(variant.len() - 27);
            if n == 0 { variant.push(b) } else { variant.truncate(28 + n - 1) }
        }
        let mut d = Decoder::default();
        for (serial, report) in [&body, &body, &variant].into_iter().enumerate() {
            let got = decode_report(&mut d, report, serial as u16)?;
            let want = Body::decode(0x0200, Version::V2013, report);
            prop_assert_eq!(&got, &want, "report {}", serial);
            prop_assert_eq!(
                serde_json::to_string(&got).unwrap(),
                serde_json::to_string(&want).unwrap()
            );
        }
        // The repeated report took the remembered layout when one could be remembered (items,
        // no issues, an area of at most 255 bytes).
        let Body::LocationReport(first) = Body::decode(0x0200, Version::V2013, &body) else {
            return Err(TestCaseError::fail("a 0x0200 body of 28+ bytes is a location"));
        };
        let rememberable = first.issues.is_empty()
            && !first.items.is_empty()
            && first.items.as_bytes().len() <= 255;
        prop_assert!(d.layouts().hits() >= u64::from(rememberable), "hits {}", d.layouts().hits());
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// A body holding 0x7E bytes, framed as a device that forgets one escape would: the `7D 02` of
    /// one of them sent as a bare 0x7E. With `rejoin_unescaped_flag` the message comes out once, as
    /// sent, after an `UnescapedFlag` naming that byte, however the stream is cut; without it the
    /// message is lost.
    #[test]
    fn one_unescaped_flag_is_rejoined_in_any_chunking(
        (msg, _body) in message().prop_filter("a 0x7E in the body", |(_, b)| b.contains(&0x7E)),
        which in any::<Index>(),
        cuts in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let wire = msg.encode();
        let pairs: Vec<usize> = (1..wire.len() - 1).filter(|&i| wire[i] == 0x7D && wire[i + 1] == 0x02).collect();
        prop_assume!(!pairs.is_empty());
        let at = pairs[which.index(pairs.len())];
        let mut broken = wire.clone();
        broken.splice(at..at + 2, [0x7E]);
        let mut cfg = DecoderConfig::default();
        cfg.deframer.rejoin_unescaped_flag = true;
        let events = decode_chunked(&mut Decoder::new(cfg), &broken, &cut_points(&cuts, broken.len()));
        prop_assert_eq!(
            &events[..],
            &[DecodeEvent::UnescapedFlag { offset: 0, at: at as u64 }, DecodeEvent::Message(msg.clone())][..]
        );
        check_offsets(&broken, &events)?;
        let strict = decode_chunked(&mut Decoder::default(), &broken, &[]);
        prop_assert!(!strict.iter().any(|e| matches!(e, DecodeEvent::Message(_))), "{:?}", strict);
    }
}

/// A typed id and a body for it: a case of the body table changed by `edits` (flip a byte, cut,
/// append bytes), or arbitrary bytes for any typed id.
fn typed_body() -> impl Strategy<Value = (u16, Vec<u8>)> {
    let seeds: Vec<(u16, Vec<u8>)> = cases::cases()
        .into_iter()
        .map(|c| (c.id, hex::decode(&c.hex).expect("table hex")))
        .collect();
    let ids: Vec<u16> = jt808_harness::codec::body::MESSAGE_IDS.iter().map(|i| i.id).collect();
    let edit = prop_oneof![
        (any::<Index>(), 1u8..=255).prop_map(|(i, x)| Edit::Flip(i, x)),
        any::<Index>().prop_map(Edit::Cut),
        prop::collection::vec(wire_byte(), 1..8).prop_map(Edit::Append),
    ];
    prop_oneof![
        4 => (prop::sample::select(seeds), prop::collection::vec(edit, 0..3)).prop_map(|((id, mut b), edits)| {
            edits.iter().for_each(|e| e.apply(&mut b));
            (id, b)
        }),
        1 => (prop::sample::select(ids), prop::collection::vec(wire_byte(), 0..64)),
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    Flip(Index, u8),
    Cut(Index),
    Append(Vec<u8>),
}

impl Edit {
    fn apply(&self, b: &mut Vec<u8>) {
        match self {
            Edit::Flip(i, x) if !b.is_empty() => {
                let at = i.index(b.len());
                b[at] ^= x;
            }
            Edit::Cut(i) => b.truncate(i.index(b.len() + 1)),
            Edit::Append(more) => b.extend_from_slice(more),
            Edit::Flip(..) => {}
        }
    }
}

proptest! {
    #![proptest_config(config(2048))]

    /// Property 8: every body of every typed id, read under each version, re-encodes to its bytes
    /// and, when typed, decodes again to itself and serialises.
    #[test]
    fn any_typed_body_encodes_and_decodes_to_itself_in_every_version((id, bytes) in typed_body()) {
        for v in [Version::V2011, Version::V2013, Version::V2019] {
            let body = Body::decode(id, v, &bytes);
            let mut out = Vec::new();
            body.encode(v, &mut out);
            prop_assert_eq!(&out, &bytes, "0x{:04X} {}: {:?}", id, v.as_str(), body);
            if body.msg_id().is_some() {
                prop_assert_eq!(Body::decode(id, v, &out), body.clone(), "0x{:04X} {}", id, v.as_str());
                prop_assert!(serde_json::to_string(&body).is_ok());
            }
        }
    }
}

/// One thing of a lending test's stream: a 0x0200 report (any body: short ones fail, items with
/// issues, none), another message, a sub-packet or garbage.
fn lent_piece() -> impl Strategy<Value = Vec<u8>> {
    let phone = Phone::parse("13912344321").expect("digits");
    let report = prop_oneof![
        4 => location_body(),
        1 => prop::collection::vec(any::<u8>(), 0..28),
    ]
    .prop_map(move |body| {
        let raw = Body::Raw(RawBody { raw: body });
        Message::new(0x0200, Version::V2013, phone, 7, raw).encode()
    });
    let other = message().prop_map(|(m, _)| m.encode());
    prop_oneof![6 => report, 1 => other, 1 => piece()]
}

proptest! {
    #![proptest_config(config(512))]

    /// Property 9: the events lent, read (and some taken), equal the events given, in any chunking.
    #[test]
    fn lent_events_are_the_events_given(
        pieces in prop::collection::vec(lent_piece(), 1..24),
        take in prop::collection::vec(any::<bool>(), 24),
        cuts in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let bytes = pieces.concat();
        let cuts = cut_points(&cuts, bytes.len());
        let given = decode_chunked(&mut Decoder::default(), &bytes, &cuts);
        let mut d = Decoder::default();
        let mut lent = Vec::new();
        let mut from = 0;
        for &to in cuts.iter().chain(std::iter::once(&bytes.len())) {
            d.push_lent(&bytes[from..to], Duration::ZERO, |e| {
                // Some events are taken (the slot is then rebuilt), the others only read.
                if take[lent.len() % take.len()] {
                    lent.push(e.take());
                } else {
                    lent.push(e.clone());
                }
            });
            from = to;
        }
        d.end_stream(|e| lent.push(e));
        prop_assert_eq!(&lent, &given);
    }
}
