//! Decoder throughput on realistic streams, beside the least work any decoder must do.
//!
//! Streams (built once, pushed in 4 KiB chunks as a socket would deliver them):
//! - `location_0200`: 10,000 JT/T 808-2013 0x0200 location reports, each with the 12 additional
//!   items of the `yz-0200-2013` vector (0x01 0x02 0x03 0x04 0x11 0x12 0x13 0x25 0x2A 0x2B 0x30
//!   0x31), distinct serials (so some headers carry escapes) and drifting positions.
//! - `mixed_1205`: the real 18-packet 0x1205 resource list (`yz-1205-18pkt-*`) 200 times (each
//!   time with new serials, as a terminal sends a new message), with two
//!   0x0200 reports after every packet: sub-packet reassembly under interleaving.
//! - `every_id_mix`: every body of the body table (tests/bodies/cases.rs: every typed id, 2013 and
//!   2019 layouts; 0x0200 as the 12-item report above) round-robin, 10,000 frames: the cost of the
//!   table dispatch and the bodies beyond 0x0200.
//!
//! Each stream has five benchmarks: `decode` (the full [`Decoder`]: deframing, un-escaping, check
//! code, header, reassembly and body decoding with every check that can fail, every event lent to
//! a callback that reads it, [`Decoder::push_lent`]), `decode_given` (the same, every event given
//! away by value to a callback that moves the message out and drops it, [`Decoder::push`]: what a
//! consumer that keeps messages pays), `decode_read` (lent, with a consumer that reads every 0x0200
//! item as its typed value: the decoder checks the items but types them when they are read, so
//! this is the figure for a consumer that looks at all of them), `deframe` (the [`Deframer`]
//! alone: frames with parsed headers, borrowed, to show where the time goes) and `baseline` (one
//! pass that finds each 0x7E with memchr and XORs every byte: the floor). Criterion reports each
//! as frames/s and bytes/s. After the criterion runs a summary measures all five again,
//! interleaved, and prints ns per frame and the ratios to the baseline.
//!
//! Run: `cargo bench --bench decode -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};

use jt808_harness::codec::body::{Body, ItemValue};
use jt808_harness::codec::frame::xor;
use jt808_harness::codec::{DecodeEvent, Decoder, Deframer, Item, Message, Phone, Version};

#[path = "../tests/bodies/cases.rs"]
#[allow(dead_code)]
mod cases;
/// The tests' frame builders (a vector re-framed with another serial).
#[path = "../tests/support/frames.rs"]
#[allow(dead_code)]
mod frames;
/// The shared vector loader of the tests (`yz-1205-18pkt-*` for the mixed stream).
#[path = "../tests/support/vectors.rs"]
#[allow(dead_code)]
mod vectors;

/// Socket read size the streams are pushed in.
const CHUNK: usize = 4096;

/// A test stream and what it holds.
struct Stream {
    name: &'static str,
    bytes: Vec<u8>,
    frames: u64,
    /// Messages the decoder must emit (reassembled groups count once).
    messages: u64,
}

/// The 0x0200 body: the basic block, then the 12 additional items of `yz-0200-2013` (its 2019-era
/// 0x05 tyre-pressure item left out), with the position, time and mileage drifting with `i`.
fn location_body(i: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(96);
    b.extend(0x0000_0400u32.to_be_bytes()); // alarm: bit 10
    b.extend(0x000C_0003u32.to_be_bytes()); // status: ACC on, positioned, GPS + BeiDou
    b.extend((31_230_416u32 + i * 7).to_be_bytes()); // latitude x 10^6
    b.extend((121_473_701u32 + i * 11).to_be_bytes()); // longitude x 10^6
    b.extend(12u16.to_be_bytes()); // altitude m
    b.extend(((i % 1200) as u16).to_be_bytes()); // speed 1/10 km/h
    b.extend(((i % 360) as u16).to_be_bytes()); // direction
    let (min, sec) = ((i / 60) % 60, i % 60);
    let bcd = |v: u32| ((v / 10) << 4 | (v % 10)) as u8;
    b.extend([0x24, 0x11, 0x02, 0x10, bcd(min), bcd(sec)]); // time 24-11-02 10:mm:ss
    let items: [(u8, Vec<u8>); 12] = [
        (0x01, (11 + i).to_be_bytes().to_vec()),                // mileage 1/10 km
        (0x02, 0x0016u16.to_be_bytes().to_vec()),               // fuel
        (0x03, 0x0021u16.to_be_bytes().to_vec()),               // recorder speed
        (0x04, 0x002Cu16.to_be_bytes().to_vec()),               // alarm event id
        (0x11, vec![0x42, 0x00, 0x00, 0x00, 0x42]),             // overspeed: type + area id
        (0x12, vec![0x4D, 0x00, 0x00, 0x00, 0x4D, 0x4D]),       // in/out area
        (0x13, vec![0x00, 0x00, 0x00, 0x58, 0x00, 0x58, 0x58]), // route time
        (0x25, 0x0000_0063u32.to_be_bytes().to_vec()),          // extended vehicle signal
        (0x2A, 0x000Au16.to_be_bytes().to_vec()),               // IO status
        (0x2B, 0x0000_0014u32.to_be_bytes().to_vec()),          // analog
        (0x30, vec![0x1E]),                                     // signal strength
        (0x31, vec![0x28]),                                     // satellites
    ];
    for (id, value) in items {
        b.push(id);
        b.push(value.len() as u8);
        b.extend(value);
    }
    b
}

fn location_frame(phone: Phone, serial: u16, i: u32) -> Vec<u8> {
    let body = location_body(i);
    Message::new(
        0x0200,
        Version::V2013,
        phone,
        serial,
        Body::decode(0x0200, Version::V2013, &body),
    )
    .encode()
}

fn location_stream() -> Stream {
    let phone = Phone::parse("13912344321").expect("digits");
    let mut bytes = Vec::new();
    for i in 0..10_000u32 {
        bytes.extend(location_frame(phone, i as u16, i));
    }
    Stream {
        name: "location_0200",
        bytes,
        frames: 10_000,
        messages: 10_000,
    }
}

fn mixed_stream() -> Stream {
    let phone = Phone::parse("13912344321").expect("digits");
    let packets = vectors::resource_list_packets();
    let mut bytes = Vec::new();
    let (mut frames, mut messages, mut i) = (0, 0, 0u32);
    for round in 0..200u16 {
        for (k, p) in packets.iter().enumerate() {
            // Each round is a new message, so new serials (JT808.md §4): the same packets again
            // would be late copies of a completed group, which the decoder reports as duplicates.
            bytes.extend(frames::with_serial(p, 0x8000 + round * 18 + k as u16));
            for _ in 0..2 {
                bytes.extend(location_frame(phone, i as u16, i));
                i += 1;
            }
            frames += 3;
            messages += 2;
        }
        messages += 1;
    }
    Stream {
        name: "mixed_1205",
        bytes,
        frames,
        messages,
    }
}

/// Every 2013/2019 body of the body table, each checked to decode typed, then framed round-robin
/// (distinct serials) until 10,000 frames; 0x0200 is the 12-item report of `location_stream`.
fn every_id_stream() -> Stream {
    let phone = Phone::parse("13912344321").expect("digits");
    let bodies: Vec<(u16, Version, Vec<u8>)> = cases::cases()
        .into_iter()
        .filter(|c| c.v != Version::V2011 && c.id != 0x0200)
        .map(|c| (c.id, c.v, hex::decode(&c.hex).expect("table hex")))
        .chain([(0x0200, Version::V2013, location_body(0))])
        .collect();
    let mut bytes = Vec::new();
    for i in 0..10_000u32 {
        let (id, v, body) = &bodies[i as usize % bodies.len()];
        let typed = Body::decode(*id, *v, body);
        assert!(typed.msg_id().is_some(), "0x{id:04X}: {typed:?}");
        bytes.extend(Message::new(*id, *v, phone, i as u16, typed).encode());
    }
    Stream {
        name: "every_id_mix",
        bytes,
        frames: 10_000,
        messages: 10_000,
    }
}

/// The full decoder over the stream in 4 KiB chunks, each event lent to a consumer that reads it
/// ([`Decoder::push_lent`]); returns the messages seen.
fn decode(stream: &[u8]) -> u64 {
    let mut d = Decoder::default();
    let mut messages = 0;
    for chunk in stream.chunks(CHUNK) {
        d.push_lent(chunk, Duration::ZERO, |e| {
            if let DecodeEvent::Message(m) = e {
                messages += 1;
                black_box(&m);
            }
        });
    }
    messages
}

/// The full decoder giving each event away ([`Decoder::push`]) to a consumer that keeps the
/// message (moves it out, then drops it): what a consumer that stores messages pays.
fn decode_given(stream: &[u8]) -> u64 {
    let mut d = Decoder::default();
    let mut messages = 0;
    for chunk in stream.chunks(CHUNK) {
        d.push(chunk, Duration::ZERO, |e| {
            if let DecodeEvent::Message(m) = e {
                messages += 1;
                black_box(&m);
            }
        });
    }
    messages
}

/// The full decoder, and a consumer that reads every 0x0200 item as its typed value (the decoder
/// checks the items but types them only when read, see `codec/body/location/items.rs`); returns
/// a fold of the values so none of the reading is optimised away.
fn decode_read(stream: &[u8]) -> u64 {
    let mut d = Decoder::default();
    let mut acc = 0u64;
    for chunk in stream.chunks(CHUNK) {
        d.push_lent(chunk, Duration::ZERO, |e| {
            if let DecodeEvent::Message(m) = e
                && let Body::LocationReport(loc) = &m.body
            {
                for item in &loc.items {
                    acc = acc.wrapping_add(item_value(&item.value));
                }
                black_box(&m);
            }
        });
    }
    acc
}

/// A number from a typed item value (what a consumer would read).
fn item_value(v: &ItemValue) -> u64 {
    match *v {
        ItemValue::Mileage(x) | ItemValue::VehicleSignal(x) | ItemValue::Analog(x) => u64::from(x),
        ItemValue::Fuel(x) | ItemValue::RecorderSpeed(x) | ItemValue::AlarmEventId(x) | ItemValue::IoStatus(x) => {
            u64::from(x)
        }
        ItemValue::SignalStrength(x) | ItemValue::Satellites(x) => u64::from(x),
        ItemValue::Overspeed { area_type, area_id } => u64::from(area_type) + u64::from(area_id.unwrap_or(0)),
        ItemValue::AreaRoute { area_id, .. } => u64::from(area_id),
        ItemValue::RouteTime {
            route_id, drive_time, ..
        } => u64::from(route_id) + u64::from(drive_time),
        _ => 1,
    }
}

/// The deframer alone (frames with parsed headers, borrowed; no reassembly, no body, no message).
fn deframe(stream: &[u8]) -> u64 {
    let mut d = Deframer::default();
    let mut frames = 0;
    for chunk in stream.chunks(CHUNK) {
        d.push(chunk, |item| {
            if let Item::Frame(f) = item {
                frames += 1;
                black_box(&f);
            }
        });
    }
    frames
}

/// The floor: find every 0x7E with memchr and XOR every byte, in the same chunks.
fn baseline(stream: &[u8]) -> (u64, u8) {
    let (mut delimiters, mut x) = (0u64, 0u8);
    for chunk in stream.chunks(CHUNK) {
        let mut rest = chunk;
        while let Some(i) = memchr::memchr(0x7E, rest) {
            x ^= xor(&rest[..i]);
            delimiters += 1;
            rest = &rest[i + 1..];
        }
        x ^= xor(rest);
    }
    (delimiters, x)
}

fn bench(c: &mut Criterion, s: &Stream) {
    assert_eq!(decode(&s.bytes), s.messages, "{}: the stream decodes fully", s.name);
    assert_eq!(
        decode_given(&s.bytes),
        s.messages,
        "{}: the stream decodes fully, given",
        s.name
    );
    assert_ne!(decode_read(&s.bytes), 0, "{}: the items were read", s.name);
    assert_eq!(deframe(&s.bytes), s.frames, "{}: every frame deframes", s.name);
    assert_eq!(baseline(&s.bytes).0, 2 * s.frames, "{}: two delimiters a frame", s.name);
    let mut g = c.benchmark_group(s.name);
    g.throughput(Throughput::ElementsAndBytes {
        elements: s.frames,
        bytes: s.bytes.len() as u64,
    });
    g.bench_function("decode", |b| b.iter(|| decode(black_box(&s.bytes))));
    g.bench_function("decode_given", |b| b.iter(|| decode_given(black_box(&s.bytes))));
    g.bench_function("decode_read", |b| b.iter(|| decode_read(black_box(&s.bytes))));
    g.bench_function("deframe", |b| b.iter(|| deframe(black_box(&s.bytes))));
    g.bench_function("baseline", |b| b.iter(|| baseline(black_box(&s.bytes))));
    g.finish();
}

/// Median time of each routine over `rounds` runs, the routines interleaved so all see the same
/// machine state (the machine this runs on is shared).
fn interleaved_medians(rounds: usize, routines: &mut [&mut dyn FnMut()]) -> Vec<Duration> {
    let mut times = vec![Vec::with_capacity(rounds); routines.len()];
    for _ in 0..rounds {
        for (r, t) in routines.iter_mut().zip(&mut times) {
            let start = Instant::now();
            r();
            t.push(start.elapsed());
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_unstable();
            t[rounds / 2]
        })
        .collect()
}

/// Runs of each routine in the summary: a run is well under a millisecond, and a median of many
/// is steady to about 1% on a shared machine (of 51, the ratio moved by 5% from run to run).
const ROUNDS: usize = 1001;

fn summary(streams: &[Stream]) {
    println!("\nsummary: median of {ROUNDS} interleaved runs per stream, ns per frame (MB/s)");
    println!(
        "{:<14} {:>6} {:>8} {:>16} {:>16} {:>16} {:>16} {:>16} {:>7} {:>7} {:>7}",
        "stream",
        "frames",
        "bytes",
        "decode",
        "decode given",
        "decode+read",
        "deframe only",
        "baseline",
        "ratio",
        "given",
        "+read"
    );
    for s in streams {
        let t = interleaved_medians(
            ROUNDS,
            &mut [
                &mut || {
                    black_box(decode(black_box(&s.bytes)));
                },
                &mut || {
                    black_box(decode_given(black_box(&s.bytes)));
                },
                &mut || {
                    black_box(decode_read(black_box(&s.bytes)));
                },
                &mut || {
                    black_box(deframe(black_box(&s.bytes)));
                },
                &mut || {
                    black_box(baseline(black_box(&s.bytes)));
                },
            ],
        );
        let cell = |t: Duration| {
            let ns = t.as_nanos() as f64 / s.frames as f64;
            let mb_s = s.bytes.len() as f64 / t.as_secs_f64() / 1e6;
            format!("{ns:.1} ({mb_s:.0})")
        };
        let ratio = |t: Duration, base: Duration| t.as_secs_f64() / base.as_secs_f64();
        println!(
            "{:<14} {:>6} {:>8} {:>16} {:>16} {:>16} {:>16} {:>16} {:>7.2} {:>7.2} {:>7.2}",
            s.name,
            s.frames,
            s.bytes.len(),
            cell(t[0]),
            cell(t[1]),
            cell(t[2]),
            cell(t[3]),
            cell(t[4]),
            ratio(t[0], t[4]),
            ratio(t[1], t[4]),
            ratio(t[2], t[4])
        );
    }
    println!(
        "ratio = decode / baseline; given = decode given / baseline; +read = decode+read / baseline. \
         Goals: location_0200 decode under 100 ns per frame; ratio within 3x."
    );
}

fn main() {
    let streams = [location_stream(), mixed_stream(), every_id_stream()];
    let mut c = Criterion::default().configure_from_args();
    for s in &streams {
        bench(&mut c, s);
    }
    c.final_summary();
    // Only under `cargo bench` (criterion's rule: `--bench` without `--test`). `cargo test --benches`
    // runs each benchmark once as a test (the asserts in `bench` ran); profiling wants no extra work.
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    if has("--bench") && !has("--test") && !has("--list") && !has("--profile-time") {
        summary(&streams);
    }
}
