//! The property of every fuzz target, in one place: `fuzz/fuzz_targets/*.rs` call these under
//! libFuzzer, and `tests/fuzz_corpus.rs` replays each file of `fuzz/corpus/TARGET/` through them
//! as a normal test, so CI catches a regression without fuzzing. A property that does not hold
//! panics with what was seen.
#![allow(dead_code)] // each fuzz target uses one of these

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jt808_harness::capture::format::{CaptureError, CaptureHeader, CaptureReader, CaptureWriter, Record};
use jt808_harness::capture::pcap::{ImportOpts, import_pcap};
use jt808_harness::capture::redact::{RedactOpts, redact_reader};
use jt808_harness::codec::body::Body;
use jt808_harness::codec::deframer::DeframerConfig;
use jt808_harness::codec::reassembly::ReassemblyConfig;
use jt808_harness::codec::{DecodeEvent, Decoder, DecoderConfig, Version};
use jt808_harness::scenario::{Scenario, ScenarioError};

/// Every id with a typed body, and one without (kept raw).
pub const BODY_IDS: [u16; 22] = [
    0x0001, 0x8001, 0x0002, 0x0003, 0x0100, 0x8100, 0x0102, 0x0200, 0x0704, 0x0801, 0x8800, 0x8003, 0x0005, 0x1003,
    0x1205, 0x1206, 0x9101, 0x9102, 0x9205, 0x9206, 0x9207, 0x0F00,
];

/// The header versions a body is decoded under.
pub const VERSIONS: [Version; 3] = [Version::V2011, Version::V2013, Version::V2019];

/// `decoder_stream` input: `[config][cut count][cut count x u16 LE cut point][stream]`. The config
/// byte picks small or default limits (so every limit is hit); the cuts split the stream.
pub fn decoder_stream_input(config: u8, cuts: &[u16], stream: &[u8]) -> Vec<u8> {
    let mut v = vec![config, cuts.len() as u8];
    for c in cuts {
        v.extend_from_slice(&c.to_le_bytes());
    }
    v.extend_from_slice(stream);
    v
}

/// The decoder settings a config byte stands for: 0 is the default.
fn decoder_config(b: u8) -> DecoderConfig {
    if b == 0 {
        return DecoderConfig::default();
    }
    DecoderConfig {
        deframer: DeframerConfig {
            max_frame_len: [16, 64, 300, 2090][usize::from(b & 3)],
            rejoin_unescaped_flag: b & 4 != 0,
        },
        reassembly: ReassemblyConfig {
            timeout: Duration::from_secs(u64::from(b >> 6) + 1),
            max_groups: usize::from((b >> 3) & 3) + 1,
            max_bytes: [0, 40, 200, 4096][usize::from((b >> 5) & 3)],
            retransmit_wait: Duration::from_secs(u64::from(b >> 7)),
            // Bits 3-4 again: remembering 0-3 completed groups, so forgetting is hit too.
            remember_completed: usize::from((b >> 3) & 3),
        },
    }
}

/// Splits `decoder_stream` input into settings, sorted cut points within the stream, and stream.
fn split_decoder_input(data: &[u8]) -> (DecoderConfig, Vec<usize>, &[u8]) {
    let (&cfg, rest) = data.split_first().unwrap_or((&0, &[]));
    let (&n, rest) = rest.split_first().unwrap_or((&0, &[]));
    let n = usize::from(n % 32).min(rest.len() / 2);
    let (cut_bytes, stream) = rest.split_at(2 * n);
    let mut cuts: Vec<usize> = cut_bytes
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    (decoder_config(cfg), cuts, stream)
}

/// Pushes `stream` cut at `cuts`, chunk `n` at second `n * step`; checks every limit after each
/// push; returns the events (end of stream and drained groups included).
fn decode_chunked(cfg: DecoderConfig, stream: &[u8], cuts: &[usize], step: u64) -> Vec<DecodeEvent> {
    let mut d = Decoder::new(cfg);
    let mut events = Vec::new();
    let mut from = 0;
    for (n, &to) in cuts.iter().chain(std::iter::once(&stream.len())).enumerate() {
        d.push(&stream[from..to], Duration::from_secs(n as u64 * step), |e| {
            events.push(e)
        });
        from = to;
        assert_within_limits(&d, &cfg);
    }
    d.end_stream(|e| events.push(e));
    d.drain_groups(|e| events.push(e));
    assert_within_limits(&d, &cfg);
    events
}

fn assert_within_limits(d: &Decoder, cfg: &DecoderConfig) {
    let rejoin = if cfg.deframer.rejoin_unescaped_flag { 2 } else { 1 };
    let held = d.deframer().pending_len();
    assert!(
        held <= (cfg.deframer.max_frame_len + 1) * rejoin,
        "deframer holds {held} bytes"
    );
    let r = d.reassembler();
    assert_eq!(r.bytes_held(), r.reserved_bytes(), "reassembly account drifted");
    let max = cfg.reassembly.max_bytes;
    assert!(
        r.reserved_bytes() <= max,
        "reassembly reserves {} > {max}",
        r.reserved_bytes()
    );
    assert!(
        r.open_groups() <= cfg.reassembly.max_groups.max(1),
        "{} groups open",
        r.open_groups()
    );
}

/// The streaming decoder: the same events however the input is chunked, every limit respected
/// after every push, every event serialises to JSON, every message re-encodes to a frame that
/// decodes to it again (its body to the same body).
pub fn decoder_stream(data: &[u8]) {
    let (cfg, cuts, stream) = split_decoder_input(data);
    let whole = decode_chunked(cfg, stream, &[], 0);
    let cut = decode_chunked(cfg, stream, &cuts, 0);
    assert_eq!(cut, whole, "cut at {cuts:?}");
    // Time passing between chunks (timeouts, stalls): only the limits are checked.
    decode_chunked(cfg, stream, &cuts, 1);
    for e in &whole {
        let json = serde_json::to_string(e).unwrap_or_else(|err| panic!("{e:?} does not serialise: {err}"));
        assert!(json.starts_with("{\"type\":"), "{json}");
        if let DecodeEvent::Message(m) = e {
            assert_reencodes(m);
        }
    }
}

fn assert_reencodes(m: &jt808_harness::codec::Message) {
    let body = m.body_bytes();
    let again = Body::decode(m.header.msg_id, m.header.version, &body);
    if !matches!(m.body, Body::Encrypted(_)) {
        assert_eq!(again, m.body, "body of {m:?} re-decodes differently");
    }
    let wire = m.encode();
    let back = Decoder::default().push_vec(&wire, Duration::ZERO);
    if m.assembled.is_none() {
        assert_eq!(
            back,
            [DecodeEvent::Message(m.clone())],
            "{m:?} re-encoded as {wire:02x?}"
        );
    }
}

/// Every typed body: decode then encode gives the same bytes, under every header version. Input:
/// `[id selector][body]`, the selector indexing [`BODY_IDS`] times [`VERSIONS`].
pub fn bodies(data: &[u8]) {
    let (&sel, bytes) = data.split_first().unwrap_or((&0, &[]));
    let sel = usize::from(sel) % (BODY_IDS.len() * VERSIONS.len());
    let (id, version) = (BODY_IDS[sel / VERSIONS.len()], VERSIONS[sel % VERSIONS.len()]);
    let body = Body::decode(id, version, bytes);
    let mut out = Vec::new();
    body.encode(version, &mut out);
    assert_eq!(out, bytes, "0x{id:04X} {version:?}: {body:?}");
    if let Some(typed) = body.msg_id() {
        assert_eq!(typed, id, "{body:?}");
    }
    assert_eq!(Body::decode(id, version, &out), body, "decoding is not stable");
    serde_json::to_string(&body).unwrap_or_else(|e| panic!("{body:?} does not serialise: {e}"));
}

/// Reads a capture as far as it goes: header and records, and whether it ended cleanly.
fn read_all(data: &[u8], name: &str) -> Result<(CaptureHeader, Vec<Record>, Option<CaptureError>, bool), CaptureError> {
    let mut r = CaptureReader::from_reader(Cursor::new(data), name)?;
    let mut records = Vec::new();
    let mut error = None;
    while let Some(next) = r.next_record() {
        match next {
            Ok(rec) => records.push(rec),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    Ok((r.header().clone(), records, error, r.truncated().is_some()))
}

/// Writes a header and records as a capture.
fn write_all(header: &CaptureHeader, records: &[Record]) -> Vec<u8> {
    let mut w = CaptureWriter::new(Vec::new(), header).expect("writing to memory");
    for rec in records {
        w.write(rec)
            .unwrap_or_else(|e| panic!("a record the reader took is refused: {e} ({rec:?})"));
    }
    w.into_inner()
}

/// The capture reader: what it reads (up to an error or a cut last line) writes back and reads
/// again as the same header and records; its errors name the file.
pub fn capture_reader(data: &[u8]) {
    let (header, records, error) = match read_all(data, "fuzz.jsonl") {
        Ok((h, r, e, _)) => (h, r, e),
        Err(e) => return assert_names(&e.to_string(), "fuzz.jsonl"),
    };
    if let Some(e) = error {
        assert_names(&e.to_string(), "fuzz.jsonl");
    }
    let written = write_all(&header, &records);
    let (h2, r2, e2, cut) = read_all(&written, "again").expect("a written capture reads");
    assert!(
        e2.is_none() && !cut,
        "{e2:?} reading back {}",
        String::from_utf8_lossy(&written)
    );
    assert_eq!((h2, r2), (header, records));
}

fn assert_names(message: &str, name: &str) {
    assert!(message.contains(name), "error does not name {name}: {message}");
}

/// The scenario loader, from a TOML string: never panics, and an error names the file, and for a
/// parse error a line and column inside the text.
pub fn scenario_loader(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Scenario::parse(text, Path::new("fuzz.toml")) {
        Ok(_) => {}
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with("fuzz.toml"), "{message}");
            if let ScenarioError::Parse { line, column, .. } = e {
                let lines = text.split('\n').count();
                assert!(
                    line >= 1 && line <= lines && column >= 1,
                    "{line}:{column} of {lines} lines: {message}"
                );
            }
        }
    }
}

/// A fresh path in the temp directory (the fuzzers and the corpus test run in parallel).
fn scratch(ext: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("jt808-fuzz-{}-{n}.{ext}", std::process::id()))
}

/// pcap/pcapng import through the library entry point: never panics, and what it writes is a
/// capture that reads to the end without an error.
pub fn pcap_import(data: &[u8]) {
    let (input, output) = (scratch("pcap"), scratch("jsonl"));
    std::fs::write(&input, data).expect("writing the temp input");
    let result = import_pcap(&input, &ImportOpts::new(&output));
    let written = std::fs::read(&output);
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&output);
    if result.is_ok() {
        let written = written.expect("an import that succeeded wrote its output");
        let (_, _, error, cut) = read_all(&written, "imported").expect("the imported header reads");
        assert!(
            error.is_none() && !cut,
            "{error:?}: {}",
            String::from_utf8_lossy(&written)
        );
    }
}

/// Redaction of a capture: whenever it succeeds, its output is a capture that reads to the end.
pub fn redact(data: &[u8]) {
    let Ok(reader) = CaptureReader::from_reader(Cursor::new(data), "fuzz.jsonl") else {
        return;
    };
    let mut out = Vec::new();
    if redact_reader(reader, &mut out, "out.jsonl", &RedactOpts::new(*b"fuzz key")).is_ok() {
        let (_, _, error, cut) = read_all(&out, "redacted").expect("the redacted header reads");
        assert!(error.is_none() && !cut, "{error:?}: {}", String::from_utf8_lossy(&out));
    }
}
