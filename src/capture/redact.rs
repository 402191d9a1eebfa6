//! Redaction: a capture with the SIM numbers, positions and credentials taken out, so it can be
//! committed and shared. Streams: one record in, one record out, in order, with the same `t_us`,
//! `conn` and side; only binary payloads change. No tokio here.
//!
//! # What is rewritten
//!
//! Every binary message is cut into JT808 frames with the codec's [`Deframer`], one stream per
//! connection and side (gateway messages after the capture's `prefix_len` envelope, as
//! [`inspect`](mod@super::inspect) reads them). Each frame that passes the codec's checks is rewritten in place,
//! byte for byte at the offsets of JT808.md, then framed again (check code recomputed, escapes
//! redone):
//!
//! | what | where | how |
//! |---|---|---|
//! | terminal phone (SIM) | every header, every packet of a sub-packaged message | stand-in with the same number of significant digits ([`Redactor::phone`]) |
//! | position | 0x0200 lat/lng (body 8..16), each 0x0704 item's, the 0x0801 location block (body 8..36: lat at 16, lng at 20) | moved by one key-derived offset ([`Redactor::offset`]) |
//! | plate / VIN, terminal id | 0x0100 (JT808.md §6: rest of body; terminal id `BYTE[7]` / `BYTE[30]`) | blanked |
//! | auth code | 0x0102 (2013: whole body; 2019: `STRING[n]`), 0x8100 (after reply serial and result) | blanked |
//! | IMEI | 0x0102 2019 (`BYTE[15]` after the code) | blanked with ASCII `0` |
//! | FTP server, user, password | 0x9206 (JT808.md §7.4) | blanked |
//! | envelope prefix | the first `prefix_len` bytes of gateway messages | zeroed (its layout is unknown, it may name the terminal) unless [`RedactOpts::keep_prefix`] |
//!
//! "Blanked" means every non-NUL byte becomes `*` (`0` for the IMEI): lengths stay, so body
//! lengths, length bytes and sub-packet fragment sizes are unchanged and every frame still decodes.
//! A coordinate of 0 (no fix) stays 0. The hemisphere bits are not touched; a moved coordinate
//! wraps within 0..90° (lat) and 0..180° (lng), so distances hold except across that wrap.
//!
//! **Sub-packaged messages.** Every packet keeps its own header (phone replaced) and fragment size.
//! A 0x0801 location lies in packet 1 at its fixed offset and is rewritten there. Any other
//! message whose body needs rewriting (0x0100, 0x0102, 0x0200, 0x0704, 0x8100, 0x9206) is held
//! until all its packets arrived, rewritten whole and cut back into the same fragments (a field may
//! straddle two packets). A group still incomplete when its connection closes is not written.
//!
//! **Not rewritten:** media data (a 0x0801 JPEG may show faces or plates), 0x0200 additional items
//! (vendors put positions in 0x64-0x67 ADAS blocks), text WebSocket messages, and any message id
//! not named above. The report counts text messages kept.
//!
//! # What is left out
//!
//! A frame the codec rejects (check code, escape, length), bytes outside any frame, a frame whose
//! body is encrypted (bits 10-12) when its id needs body rewriting, and the packets of an
//! incomplete group are counted in the report and not written, because they cannot be checked for
//! personal data. [`RedactOpts::keep_undecodable`] keeps them as they came instead, and the report
//! then says they may still carry personal data. A record whose bytes were all left out stays, with
//! an empty payload (or just its prefix): the record count and timing never change.
//!
//! **Frames across messages.** A frame split over several WebSocket messages stays split: its new
//! bytes are cut at the same offsets (the last piece takes any difference in length, which only
//! escapes of the new check code or coordinates can make). Records are written in input order, so a
//! record waits until every frame touching it is complete; [`RedactOpts::max_held_bytes`] bounds
//! that wait (past it the waiting stream is ended, as at a close, and that is counted).
//!
//! # The key
//!
//! Stand-ins and the offset come from HMAC-SHA256 (ring) keyed with [`RedactOpts::key`]: the same
//! input and key give byte-identical output, the same SIM gets the same stand-in in every capture
//! redacted with that key, and a different key gives different stand-ins. The function is fixed
//! (`HMAC(key, "jt808-redact/v1/phone/" + digits + "/" + attempt)`), so it does not change with the
//! Rust version. **Keep the key secret**: a phone number has few enough digits that anyone holding
//! the key can find the original by trying them all, and the position offset is read straight off
//! the key.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use ring::hmac;
use serde::Serialize;
use thiserror::Error;

use super::format::{CaptureError, CaptureHeader, CaptureReader, CaptureWriter, Payload, Record, RecordKind, Side};
use super::prefix::{ConnPrefixes, DEFAULT_CHECK_MESSAGES, PrefixCheckError, check_capture};
use crate::codec::body::Register;
use crate::codec::deframer::{Deframer, DeframerConfig, Frame, Item};
use crate::codec::frame::{ESCAPE, FLAG, frame_into};
use crate::codec::{Phone, Version};

/// Default for [`RedactOpts::max_held_bytes`]: 64 MiB.
pub const DEFAULT_MAX_HELD_BYTES: usize = 64 << 20;

/// Message ids whose body is rewritten (see the module doc).
const BODY_IDS: [u16; 7] = [0x0100, 0x0102, 0x0200, 0x0704, 0x0801, 0x8100, 0x9206];

/// Redaction settings.
#[derive(Clone)]
pub struct RedactOpts {
    /// The secret the stand-ins and the position offset are derived from. Must not be empty.
    pub key: Vec<u8>,
    /// Write frames that cannot be checked (rejected, outside any frame, encrypted, incomplete
    /// group) as they came instead of leaving them out. They may still carry personal data.
    pub keep_undecodable: bool,
    /// Keep the envelope prefix of gateway messages instead of zeroing it.
    pub keep_prefix: bool,
    /// Most payload bytes of records held while a frame that touches them is incomplete. Past it
    /// the stream holding the oldest record is ended as at a close (counted in
    /// [`RedactReport::forced_flushes`]).
    pub max_held_bytes: usize,
    /// Replaces the header's `note` when set.
    pub note: Option<String>,
    /// Redact a capture whose stated prefix cuts into frames ([`check_capture`]) anyway.
    pub allow_prefix_mismatch: bool,
}

impl RedactOpts {
    /// Settings with the defaults and `key`.
    pub fn new(key: impl Into<Vec<u8>>) -> RedactOpts {
        RedactOpts {
            key: key.into(),
            keep_undecodable: false,
            keep_prefix: false,
            max_held_bytes: DEFAULT_MAX_HELD_BYTES,
            note: None,
            allow_prefix_mismatch: false,
        }
    }
}

impl fmt::Debug for RedactOpts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("RedactOpts")
            .field("key", &"(secret)")
            .field("keep_undecodable", &self.keep_undecodable)
            .field("keep_prefix", &self.keep_prefix)
            .field("max_held_bytes", &self.max_held_bytes)
            .field("note", &self.note)
            .field("allow_prefix_mismatch", &self.allow_prefix_mismatch)
            .finish()
    }
}

/// `redact` command: a capture with SIM numbers, positions and credentials rewritten.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("secret").required(true).args(["key", "key_file"])))]
pub struct RedactArgs {
    /// The capture to redact (.jsonl).
    pub input: PathBuf,
    /// The redacted capture to write (.jsonl); must not be the input.
    #[arg(long, short)]
    pub out: PathBuf,
    /// The secret key (the same key maps a SIM to the same stand-in every time). Prefer
    /// --key-file: a key on the command line ends up in shell history.
    #[arg(long, value_name = "K")]
    pub key: Option<String>,
    /// Read the key from this file (trailing newline ignored).
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// Keep frames that cannot be checked as they came (they may still carry personal data).
    #[arg(long)]
    pub keep_undecodable: bool,
    /// Keep the envelope prefix of gateway messages instead of zeroing it.
    #[arg(long)]
    pub keep_prefix: bool,
    /// Most payload bytes held while a frame spanning messages is incomplete.
    #[arg(long, default_value_t = DEFAULT_MAX_HELD_BYTES)]
    pub max_held_bytes: usize,
    /// Free text for the output header's "note" (default: the input's note).
    #[arg(long)]
    pub note: Option<String>,
    /// Redact even when the capture's stated envelope prefix cuts into frames (it is refused
    /// otherwise, naming the first record where it shows).
    #[arg(long)]
    pub allow_prefix_mismatch: bool,
}

impl RedactArgs {
    /// The settings these arguments give (reads --key-file).
    pub fn opts(&self) -> Result<RedactOpts, RedactError> {
        let key = match (&self.key, &self.key_file) {
            (Some(k), _) => k.as_bytes().to_vec(),
            (None, Some(path)) => {
                let mut k = std::fs::read(path).map_err(|source| RedactError::KeyFile {
                    path: path.display().to_string(),
                    source,
                })?;
                while matches!(k.last(), Some(b'\n' | b'\r')) {
                    k.pop();
                }
                k
            }
            (None, None) => Vec::new(),
        };
        Ok(RedactOpts {
            key,
            keep_undecodable: self.keep_undecodable,
            keep_prefix: self.keep_prefix,
            max_held_bytes: self.max_held_bytes,
            note: self.note.clone(),
            allow_prefix_mismatch: self.allow_prefix_mismatch,
        })
    }

    /// Runs the redaction; the report's `Display` is what to print.
    pub fn run(&self) -> Result<RedactReport, RedactError> {
        redact(&self.input, &self.out, &self.opts()?)
    }
}

/// Why a redaction stopped. Every record before the failing line has been written (and is
/// redacted) when the error is about the input.
#[derive(Debug, Error)]
pub enum RedactError {
    /// The key is empty: there would be nothing secret about the mapping.
    #[error("the redaction key is empty; give --key or --key-file")]
    EmptyKey,
    /// The key file could not be read.
    #[error("{path}: cannot read the key file: {source}")]
    KeyFile {
        /// The key file.
        path: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Output and input are the same file (writing would destroy the input).
    #[error("{path}: the output is the input file")]
    SameFile {
        /// The file.
        path: String,
    },
    /// The input could not be opened, or is not a capture (nothing was written).
    #[error("{0}")]
    Open(#[source] CaptureError),
    /// The input's stated envelope prefix cuts into frames (nothing was written).
    #[error(transparent)]
    Prefix(PrefixCheckError),
    /// The input capture is damaged (the error names file and line).
    #[error("{source} ({written} records before it were redacted and written)")]
    Input {
        /// The reader's error, naming the line.
        #[source]
        source: CaptureError,
        /// Records written before it.
        written: u64,
    },
    /// The input's last line was cut mid-write.
    #[error(
        "{path}:{line}: the capture is truncated (last line cut after {bytes} bytes); {written} records before it were redacted and written"
    )]
    Truncated {
        /// The input file.
        path: String,
        /// 1-based line of the cut line.
        line: u64,
        /// Bytes of it present.
        bytes: usize,
        /// Records written before it.
        written: u64,
    },
    /// The output could not be written.
    #[error("{path}: {source}")]
    Output {
        /// The output file.
        path: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// What a redaction changed and left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RedactReport {
    /// Records read and written (the same number).
    pub records: u64,
    /// Binary messages.
    pub binary_messages: u64,
    /// Frames rewritten and written.
    pub frames: u64,
    /// Distinct terminals (SIM numbers) given a stand-in.
    pub terminals: u64,
    /// Header phones replaced (one per frame).
    pub phones: u64,
    /// Coordinate pairs moved.
    pub positions: u64,
    /// Coordinates cut by the end of a body: the bytes present were zeroed.
    pub positions_cut: u64,
    /// 0x0100 plates / VINs blanked.
    pub plates: u64,
    /// 0x0100 terminal ids blanked.
    pub terminal_ids: u64,
    /// Auth codes blanked (0x0102, 0x8100).
    pub auth_codes: u64,
    /// IMEIs blanked (0x0102 2019).
    pub imeis: u64,
    /// FTP server/user/password fields blanked (0x9206), counted per field.
    pub ftp_fields: u64,
    /// Envelope prefixes zeroed.
    pub prefixes_zeroed: u64,
    /// Sub-packaged messages held for their group and rewritten whole.
    pub groups_rewritten: u64,
    /// Frames the codec rejected, by check.
    pub undecodable_frames: BTreeMap<String, u64>,
    /// Frames of an id whose body needs rewriting but is encrypted.
    pub encrypted_frames: u64,
    /// Packets of groups still incomplete at their connection's end.
    pub incomplete_group_packets: u64,
    /// Bytes outside any frame (garbage between frames).
    pub bytes_outside_frames: u64,
    /// Bytes of all the above left out.
    pub bytes_left_out: u64,
    /// Bytes of all the above kept as they came (`keep_undecodable`): may carry personal data.
    pub bytes_kept_raw: u64,
    /// Text messages, kept as they are (not checked).
    pub text_messages: u64,
    /// Times [`RedactOpts::max_held_bytes`] was hit and a stream was ended early.
    pub forced_flushes: u64,
    /// A fingerprint of the key (HMAC of a fixed string, 8 hex digits): tells which key was used
    /// without revealing it. Also written to the output header as `"redacted"`.
    pub key_id: String,
}

impl fmt::Display for RedactReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self;
        writeln!(
            f,
            "records                 {} ({} binary)",
            r.records, r.binary_messages
        )?;
        writeln!(f, "frames rewritten        {}", r.frames)?;
        writeln!(f, "key id                  {}", r.key_id)?;
        writeln!(f, "changed")?;
        let rows: [(&str, u64); 11] = [
            ("terminals", r.terminals),
            ("phones", r.phones),
            ("positions", r.positions),
            ("positions cut (zeroed)", r.positions_cut),
            ("plates", r.plates),
            ("terminal ids", r.terminal_ids),
            ("auth codes", r.auth_codes),
            ("imeis", r.imeis),
            ("ftp fields", r.ftp_fields),
            ("prefixes zeroed", r.prefixes_zeroed),
            ("groups rewritten", r.groups_rewritten),
        ];
        for (name, n) in rows {
            writeln!(f, "  {name:<22}{n}")?;
        }
        let rejected: u64 = r.undecodable_frames.values().sum();
        writeln!(f, "not checked")?;
        writeln!(f, "  undecodable frames    {rejected}")?;
        for (check, n) in &r.undecodable_frames {
            writeln!(f, "    {check:<20}{n}")?;
        }
        writeln!(f, "  encrypted frames      {}", r.encrypted_frames)?;
        writeln!(f, "  incomplete groups     {} packets", r.incomplete_group_packets)?;
        writeln!(f, "  bytes outside frames  {}", r.bytes_outside_frames)?;
        writeln!(f, "  text messages         {} (kept as they are)", r.text_messages)?;
        if r.forced_flushes > 0 {
            writeln!(f, "  forced flushes        {} (max_held_bytes hit)", r.forced_flushes)?;
        }
        writeln!(f, "bytes left out          {}", r.bytes_left_out)?;
        if r.bytes_kept_raw > 0 {
            writeln!(
                f,
                "bytes kept raw          {} (--keep-undecodable: these may still carry personal data)",
                r.bytes_kept_raw
            )?;
        }
        Ok(())
    }
}

/// Redacts the capture at `input` into `output`. See the module doc.
pub fn redact(
    input: impl AsRef<Path>,
    output: impl AsRef<Path>,
    opts: &RedactOpts,
) -> Result<RedactReport, RedactError> {
    let (input, output) = (input.as_ref(), output.as_ref());
    if opts.key.is_empty() {
        return Err(RedactError::EmptyKey);
    }
    if super::paths::same_file(input, output) {
        return Err(RedactError::SameFile {
            path: output.display().to_string(),
        });
    }
    let reader = CaptureReader::open(input).map_err(RedactError::Open)?;
    // A damaged line is left for the redaction itself to report, after what precedes it.
    if !opts.allow_prefix_mismatch
        && let Err(e @ PrefixCheckError::CutsFrames { .. }) = check_capture(input, DEFAULT_CHECK_MESSAGES)
    {
        return Err(RedactError::Prefix(e));
    }
    let out_name = output.display().to_string();
    let file = File::create(output).map_err(|source| RedactError::Output {
        path: out_name.clone(),
        source,
    })?;
    redact_reader(reader, BufWriter::new(file), &out_name, opts)
}

/// Redacts from an open reader into `out`; `out_name` stands for the output in errors.
pub fn redact_reader<R: BufRead, W: Write>(
    mut reader: CaptureReader<R>,
    out: W,
    out_name: &str,
    opts: &RedactOpts,
) -> Result<RedactReport, RedactError> {
    if opts.key.is_empty() {
        return Err(RedactError::EmptyKey);
    }
    let out_err = |source| RedactError::Output {
        path: out_name.to_string(),
        source,
    };
    let redactor = Redactor::new(&opts.key);
    let mut header: CaptureHeader = reader.header().clone();
    if let Some(note) = &opts.note {
        header.note = Some(note.clone());
    }
    header.extra.insert(
        "redacted".into(),
        serde_json::json!({
            "key_id": redactor.key_id(),
            "undecodable_kept": opts.keep_undecodable,
            "prefix_kept": opts.keep_prefix,
        }),
    );
    let writer = CaptureWriter::new(out, &header).map_err(out_err)?;
    let mut run = Run::new(redactor, header.prefix_len, opts, writer);
    let mut failure = None;
    for record in reader.by_ref() {
        match record {
            Ok(r) => run.record(r),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
        run.flush_ready();
        if let Some(e) = run.write_error.take() {
            return Err(out_err(e));
        }
    }
    run.finish_all();
    run.flush_ready();
    if let Some(e) = run.write_error.take() {
        return Err(out_err(e));
    }
    let written = run.writer.records();
    if let Some(source) = failure {
        return Err(RedactError::Input { source, written });
    }
    if let Some(t) = reader.truncated() {
        return Err(RedactError::Truncated {
            path: reader.path().to_string(),
            line: t.line,
            bytes: t.bytes,
            written,
        });
    }
    let mut report = run.report;
    report.terminals = run.redactor.phones.len() as u64;
    report.key_id = run.redactor.key_id();
    Ok(report)
}

// ===== the mapping =====

/// The keyed rewriting of phones and coordinates, and the body rewrites. Pure: no I/O.
pub struct Redactor {
    key: hmac::Key,
    /// Original significant digits -> stand-in.
    phones: HashMap<String, String>,
    /// Stand-ins handed out (to keep them distinct).
    used: BTreeSet<String>,
    d_lat: u32,
    d_lng: u32,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("terminals", &self.phones.len())
            .finish()
    }
}

/// Tries for a stand-in not yet handed out before two numbers may share one.
const MAX_DISTINCT_ATTEMPTS: u32 = 64;

const LAT_RANGE: u32 = 90_000_000;
const LNG_RANGE: u32 = 180_000_000;

impl Redactor {
    /// A redactor keyed with `key`.
    pub fn new(key: &[u8]) -> Redactor {
        let key = hmac::Key::new(hmac::HMAC_SHA256, key);
        let tag = hmac::sign(&key, b"jt808-redact/v1/position");
        let t = tag.as_ref();
        let word = |i: usize| u32::from_be_bytes([t[i], t[i + 1], t[i + 2], t[i + 3]]);
        // At least 10 degrees on each axis, so no moved coordinate lands near its original.
        let d_lat = 10_000_000 + word(0) % (LAT_RANGE - 20_000_000);
        let d_lng = 10_000_000 + word(4) % (LNG_RANGE - 20_000_000);
        Redactor {
            key,
            phones: HashMap::new(),
            used: BTreeSet::new(),
            d_lat,
            d_lng,
        }
    }

    /// 8 hex digits naming the key without revealing it.
    pub fn key_id(&self) -> String {
        hex::encode(&hmac::sign(&self.key, b"jt808-redact/v1/key-id").as_ref()[..4])
    }

    /// The position offset in 10^-6 degrees (latitude, longitude).
    pub fn offset(&self) -> (u32, u32) {
        (self.d_lat, self.d_lng)
    }

    /// The stand-in for a phone's significant digits (as [`Phone`]'s `Display` gives them): as many
    /// digits, the first not 0 (so the stand-in has the same significant length), never the
    /// original, and not one already handed to another number (unless a very short number leaves
    /// no other choice). "0" (an all-zero phone) stays. Which stand-ins are taken depends on the
    /// order numbers first appear, so only a clash (rare: one in 10^10 for an 11-digit SIM) can
    /// make one SIM map differently in two captures.
    pub fn phone(&mut self, digits: &str) -> String {
        if let Some(s) = self.phones.get(digits) {
            return s.clone();
        }
        if digits == "0" {
            return digits.to_string();
        }
        let mut attempt = 0u32;
        let stand_in = loop {
            let msg = format!("jt808-redact/v1/phone/{digits}/{attempt}");
            let tag = hmac::sign(&self.key, msg.as_bytes());
            let t = tag.as_ref();
            let s: String = (0..digits.len())
                .map(|i| {
                    // Two tag bytes per digit (20 digits at most, 32 bytes: cycle for the rest).
                    let v = u16::from_be_bytes([t[(2 * i) % 32], t[(2 * i + 1) % 32]]);
                    let d = if i == 0 { 1 + v % 9 } else { v % 10 };
                    char::from(b'0' + d as u8)
                })
                .collect();
            // Distinct from every stand-in handed out, unless the digit space is nearly used up
            // (very short numbers): then only "not the original" is kept, which always ends.
            if s != digits && (attempt >= MAX_DISTINCT_ATTEMPTS || !self.used.contains(&s)) {
                break s;
            }
            attempt += 1;
        };
        self.used.insert(stand_in.clone());
        self.phones.insert(digits.to_string(), stand_in.clone());
        stand_in
    }

    fn move_coord(&self, body: &mut [u8], at: usize, delta: u32, range: u32, report: &mut RedactReport) -> bool {
        let Some(b) = body.get_mut(at..at + 4) else {
            // Cut by the end of the body: what is there goes.
            if let Some(rest) = body.get_mut(at..) {
                if !rest.is_empty() {
                    report.positions_cut += 1;
                }
                rest.fill(0);
            }
            return false;
        };
        let v = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        if v != 0 {
            let moved = (v % range + delta) % range;
            // A moved coordinate of exactly 0 would read as "no fix": step off it.
            let moved = if moved == 0 { 1 } else { moved };
            b.copy_from_slice(&moved.to_be_bytes());
        }
        true
    }

    /// Moves the lat/lng of a 0x0200 basic block starting at `at` (lat at +8, lng at +12).
    fn move_position(&self, body: &mut [u8], at: usize, report: &mut RedactReport) {
        let lat = self.move_coord(body, at + 8, self.d_lat, LAT_RANGE, report);
        let lng = self.move_coord(body, at + 12, self.d_lng, LNG_RANGE, report);
        if lat && lng {
            report.positions += 1;
        }
    }

    /// Rewrites a whole (or reassembled) body of `msg_id` under a header of `version`.
    pub fn body(&self, msg_id: u16, version: Version, body: &mut [u8], report: &mut RedactReport) {
        match msg_id {
            0x0200 => self.move_position(body, 0, report),
            0x0801 => self.move_position(body, 8, report),
            0x0704 => {
                // count WORD | type BYTE | count x [len WORD | 0x0200 body]; items read to the end
                // of the body, the last one possibly cut (JT808.md §5.5).
                let mut at = 3;
                while at + 2 <= body.len() {
                    let len = usize::from(u16::from_be_bytes([body[at], body[at + 1]]));
                    let start = at + 2;
                    let end = (start + len).min(body.len());
                    self.move_position(&mut body[start..end], 0, report);
                    at = start + len;
                }
            }
            0x0100 => {
                let layout = Register::layout_for(version, body);
                let (maker, model, tid) = match layout {
                    Version::V2011 => (5, 8, 7),
                    Version::V2013 => (5, 20, 7),
                    Version::V2019 => (11, 30, 30),
                };
                let tid_at = 4 + maker + model;
                if blank(body, tid_at, tid_at + tid, b'*') {
                    report.terminal_ids += 1;
                }
                let plate_at = tid_at + tid + 1;
                if blank(body, plate_at, body.len(), b'*') {
                    report.plates += 1;
                }
            }
            0x0102 => {
                if !version.is_2019() {
                    if blank(body, 0, body.len(), b'*') {
                        report.auth_codes += 1;
                    }
                } else if let Some(&n) = body.first() {
                    let code_end = 1 + usize::from(n);
                    if blank(body, 1, code_end, b'*') {
                        report.auth_codes += 1;
                    }
                    if blank(body, code_end, code_end + 15, b'0') {
                        report.imeis += 1;
                    }
                }
            }
            // reply serial WORD | result BYTE | auth code (rest).
            0x8100 if blank(body, 3, body.len(), b'*') => report.auth_codes += 1,
            0x9206 => {
                // server k | STRING[k] | port WORD | user l | STRING[l] | password m | STRING[m] | ...
                let mut at = 0;
                for skip_after in [2usize, 0, 0] {
                    let Some(&n) = body.get(at) else { break };
                    let end = at + 1 + usize::from(n);
                    if blank(body, at + 1, end, b'*') {
                        report.ftp_fields += 1;
                    }
                    at = end + skip_after;
                }
            }
            _ => {}
        }
    }
}

/// Replaces every non-NUL byte of `body[from..to]` (clipped to the body) with `with`. True when
/// anything was there to blank.
fn blank(body: &mut [u8], from: usize, to: usize, with: u8) -> bool {
    let to = to.min(body.len());
    if from >= to {
        return false;
    }
    let mut any = false;
    for b in &mut body[from..to] {
        if *b != 0 {
            *b = with;
            any = true;
        }
    }
    any
}

/// Escaped length of unescaped bytes.
fn escaped_len(bytes: &[u8]) -> usize {
    bytes.len() + bytes.iter().filter(|&&b| b == FLAG || b == ESCAPE).count()
}

// ===== the streaming run =====

/// What becomes of a frame's bytes.
#[derive(Debug)]
enum SegState {
    /// The rewritten frame.
    Ready(Vec<u8>),
    /// Waiting for the rest of its packet group.
    Held,
    /// Left out (or kept raw with `keep_undecodable`).
    Dropped,
}

/// A frame's place in its stream, `[start, end)` in stream offsets.
#[derive(Debug)]
struct Seg {
    id: u64,
    start: u64,
    end: u64,
    state: SegState,
}

/// A record of a stream waiting for its frames.
#[derive(Debug)]
struct StreamRec {
    /// Queue position.
    qidx: u64,
    start: u64,
    bytes: Vec<u8>,
}

type StreamKey = (u64, Side);

/// One direction of one connection.
#[derive(Debug)]
struct Stream {
    deframer: Deframer,
    /// Stream offset of the deframer's offset 0 (it restarts at 0 when ended).
    base: u64,
    /// Stream bytes pushed.
    pos: u64,
    /// Every byte before this is classified.
    frontier: u64,
    last_frame_end: u64,
    recs: VecDeque<StreamRec>,
    segs: VecDeque<Seg>,
}

impl Stream {
    fn new() -> Stream {
        Stream {
            deframer: Deframer::new(DeframerConfig::default()),
            base: 0,
            pos: 0,
            frontier: 0,
            last_frame_end: 0,
            recs: VecDeque::new(),
            segs: VecDeque::new(),
        }
    }
}

/// A packet waiting for its group.
#[derive(Debug)]
struct Member {
    seg: u64,
    index: u16,
    /// Unescaped header (phone already replaced) + fragment.
    content: Vec<u8>,
    body_start: usize,
}

/// (conn, side, original phone, msg id, total).
type GroupKey = (u64, Side, String, u16, u16);

#[derive(Debug)]
struct Group {
    version: Version,
    members: Vec<Member>,
}

/// Where the 0x0801 location block ends in the body (media header 8 + basic block 28).
const MEDIA_LOCATION_END: usize = 36;

impl Group {
    /// The packets 1..=n that the rewrite needs, once all of them are in: every packet, or for
    /// 0x0801 those that reach the end of the location block.
    fn complete_through(&self, msg_id: u16, total: u16) -> Option<u16> {
        if total == 0 {
            return None;
        }
        let mut len = 0;
        for i in 1..=total {
            let m = self.members.iter().find(|m| m.index == i)?;
            len += m.content.len() - m.body_start;
            if msg_id == 0x0801 && len >= MEDIA_LOCATION_END {
                return Some(i);
            }
        }
        Some(total)
    }
}

/// An output record waiting for its turn.
#[derive(Debug)]
struct Pending {
    record: Record,
    /// For binary records of a stream: the prefix, then the stream part once resolved.
    payload: Option<Vec<u8>>,
    ready: bool,
    /// Its stream bytes, counted in [`Run::held_bytes`] until written.
    held: usize,
}

struct Run<'o, W: Write> {
    redactor: Redactor,
    opts: &'o RedactOpts,
    prefix_len: ConnPrefixes,
    writer: CaptureWriter<W>,
    write_error: Option<io::Error>,
    report: RedactReport,
    queue: VecDeque<Pending>,
    /// Queue position of `queue[0]`.
    head: u64,
    streams: BTreeMap<StreamKey, Stream>,
    groups: BTreeMap<GroupKey, Group>,
    next_seg: u64,
    /// Stream bytes of the records waiting in the queue (resolved or not).
    held_bytes: usize,
}

impl<'o, W: Write> Run<'o, W> {
    fn new(redactor: Redactor, prefix_len: usize, opts: &'o RedactOpts, writer: CaptureWriter<W>) -> Self {
        Run {
            redactor,
            opts,
            prefix_len: ConnPrefixes::new(prefix_len),
            writer,
            write_error: None,
            report: RedactReport::default(),
            queue: VecDeque::new(),
            head: 0,
            streams: BTreeMap::new(),
            groups: BTreeMap::new(),
            next_seg: 0,
            held_bytes: 0,
        }
    }

    fn push_ready(&mut self, record: Record) {
        self.queue.push_back(Pending {
            record,
            payload: None,
            ready: true,
            held: 0,
        });
    }

    fn record(&mut self, record: Record) {
        self.report.records += 1;
        self.prefix_len.observe(&record);
        let Record { t_us, conn, kind } = record;
        match kind {
            RecordKind::Message {
                from,
                payload: Payload::Binary(bytes),
            } => {
                self.report.binary_messages += 1;
                let skip = if from == Side::Gateway {
                    self.prefix_len.get(conn)
                } else {
                    0
                };
                let cut = skip.min(bytes.len());
                let mut prefix = bytes[..cut].to_vec();
                if !self.opts.keep_prefix && !prefix.is_empty() {
                    prefix.fill(0);
                    self.report.prefixes_zeroed += 1;
                }
                let data = bytes[cut..].to_vec();
                self.held_bytes += data.len();
                let qidx = self.head + self.queue.len() as u64;
                self.queue.push_back(Pending {
                    record: Record::binary(t_us, conn, from, Vec::new()),
                    payload: Some(prefix),
                    ready: false,
                    held: data.len(),
                });
                self.feed((conn, from), qidx, data);
                self.enforce_limit();
            }
            RecordKind::Message { from, payload } => {
                if matches!(payload, Payload::Text(_)) {
                    self.report.text_messages += 1;
                }
                self.push_ready(Record::message(t_us, conn, from, payload));
            }
            RecordKind::Close { from, code, reason } => {
                self.push_ready(Record::close(t_us, conn, from, code, reason));
                // As inspect does: a close ends both streams of the connection, so a frame cut by
                // it is not glued to a later connection's bytes.
                for side in [Side::Gateway, Side::Client] {
                    self.end_stream((conn, side));
                }
            }
            kind @ RecordKind::Open { .. } => self.push_ready(Record { t_us, conn, kind }),
        }
    }

    /// Pushes a record's stream bytes through its stream's deframer and rewrites what completes.
    fn feed(&mut self, key: StreamKey, qidx: u64, data: Vec<u8>) {
        let mut frames = Vec::new();
        let report = &mut self.report;
        let stream = self.streams.entry(key).or_insert_with(Stream::new);
        let base = stream.base;
        stream
            .deframer
            .push(&data, |item| collect(item, base, &mut frames, report));
        let start = stream.pos;
        stream.pos += data.len() as u64;
        stream.recs.push_back(StreamRec {
            qidx,
            start,
            bytes: data,
        });
        stream.frontier = base + stream.deframer.position() - stream.deframer.pending_len() as u64;
        for f in frames {
            self.add_frame(key, f);
        }
        self.resolve(key);
    }

    /// A decoded frame: note its place in the stream, then rewrite it (or hold it for its group).
    fn add_frame(&mut self, key: StreamKey, f: OwnedFrame) {
        let id = self.next_seg;
        self.next_seg += 1;
        let Some(stream) = self.streams.get_mut(&key) else {
            return;
        };
        // The frame's escaped bytes are exactly the escapes of its content and check code: the
        // deframer accepted only 7D 01 / 7D 02 pairs, so re-escaping gives the wire bytes back.
        let check = crate::codec::frame::xor(&f.content);
        let end = f.offset + 2 + (escaped_len(&f.content) + escaped_len(&[check])) as u64;
        // A frame sharing its opening 0x7E with the previous frame's closing one starts after it.
        let start = f.offset.max(stream.last_frame_end);
        stream.last_frame_end = end;
        stream.segs.push_back(Seg {
            id,
            start,
            end,
            state: SegState::Held,
        });
        if let Some(state) = self.rewrite(key, id, f) {
            self.set_seg(key, id, state);
        }
    }

    fn set_seg(&mut self, key: StreamKey, id: u64, state: SegState) {
        if let Some(seg) = self
            .streams
            .get_mut(&key)
            .and_then(|s| s.segs.iter_mut().rev().find(|s| s.id == id))
        {
            seg.state = state;
        }
    }

    /// The new bytes of a frame, or `None` while it waits for its packet group.
    fn rewrite(&mut self, key: StreamKey, seg: u64, f: OwnedFrame) -> Option<SegState> {
        let OwnedFrame {
            mut content,
            body_start,
            msg_id,
            version,
            encryption,
            packet,
            phone,
            ..
        } = f;
        let needs_body = BODY_IDS.contains(&msg_id);
        if needs_body && encryption != 0 {
            self.report.encrypted_frames += 1;
            return Some(SegState::Dropped);
        }
        // The phone: BCD[6] at byte 4 (2013 layout: header 12 or 16 bytes) or BCD[10] at byte 5
        // (2019 layout: 17 or 21), JT808.md §2.1.
        let original = phone.to_string();
        let stand_in = self.redactor.phone(&original);
        let (at, width) = if body_start >= 17 { (5, 10) } else { (4, 6) };
        if let (Ok(p), Some(slot)) = (Phone::parse(&stand_in), content.get_mut(at..at + width)) {
            let mut bcd = Vec::with_capacity(width);
            p.write_bcd(width, &mut bcd);
            slot.copy_from_slice(&bcd);
        }
        self.report.phones += 1;
        let fragment_len = content.len() - body_start;
        let hold = match packet {
            None => false,
            // 0x0801: the location block (body 8..36) is at a fixed offset, normally all in packet
            // 1, and the rest is media data. Packets that may hold part of it wait for their group;
            // the others only get their phone replaced.
            Some((total, index)) if msg_id == 0x0801 => {
                let gk: GroupKey = (key.0, key.1, original.clone(), msg_id, total);
                let may_touch = match index {
                    0 => false,
                    1 => fragment_len < MEDIA_LOCATION_END,
                    // Every packet but the last has the group's packet size.
                    i if i < total => usize::from(i - 1) * fragment_len < MEDIA_LOCATION_END,
                    // The last one is at least (total - 1) bytes in; its siblings tell more.
                    i => usize::from(i - 1) < MEDIA_LOCATION_END && self.groups.contains_key(&gk),
                };
                if index == 1 && !may_touch {
                    // Earlier packets held in case they were needed are past the block: release them.
                    if let Some(group) = self.groups.remove(&gk) {
                        for m in group.members {
                            self.report.frames += 1;
                            self.set_seg(key, m.seg, SegState::Ready(encode(&m.content)));
                        }
                    }
                }
                may_touch
            }
            Some(_) => needs_body,
        };
        if let (true, Some((total, index))) = (hold, packet) {
            let gk: GroupKey = (key.0, key.1, original, msg_id, total);
            let group = self.groups.entry(gk.clone()).or_insert_with(|| Group {
                version,
                members: Vec::new(),
            });
            group.members.push(Member {
                seg,
                index,
                content,
                body_start,
            });
            if group.complete_through(msg_id, total).is_some() {
                self.complete_group(key, &gk);
            }
            return None;
        }
        let in_place = packet.is_none() || (msg_id == 0x0801 && packet.is_some_and(|(_, i)| i == 1));
        if in_place {
            self.redactor
                .body(msg_id, version, &mut content[body_start..], &mut self.report);
        }
        self.report.frames += 1;
        Some(SegState::Ready(encode(&content)))
    }

    /// Every packet of a group is in: rewrite the whole body, cut it back into the fragments.
    fn complete_group(&mut self, key: StreamKey, gk: &GroupKey) {
        let Some(group) = self.groups.remove(gk) else { return };
        let (msg_id, total) = (gk.3, gk.4);
        let Some(through) = group.complete_through(msg_id, total) else {
            return;
        };
        // The first copy of each index makes the body; a later copy that differs cannot be checked
        // against it and is left out.
        let chosen: Vec<&Member> = (1..=through)
            .filter_map(|i| group.members.iter().find(|m| m.index == i))
            .collect();
        let mut body = Vec::new();
        let mut at = Vec::with_capacity(chosen.len());
        for m in &chosen {
            at.push(body.len());
            body.extend_from_slice(&m.content[m.body_start..]);
        }
        self.redactor.body(msg_id, group.version, &mut body, &mut self.report);
        self.report.groups_rewritten += 1;
        let mut states = Vec::with_capacity(group.members.len());
        for m in &group.members {
            let i = usize::from(m.index - 1);
            let Some((c, start)) = chosen.get(i).zip(at.get(i)) else {
                // A 0x0801 packet past the location block: only its phone changed.
                self.report.frames += 1;
                states.push((m.seg, SegState::Ready(encode(&m.content))));
                continue;
            };
            let start = *start;
            let fragment = &m.content[m.body_start..];
            let state = if fragment == &c.content[c.body_start..] {
                let mut content = m.content[..m.body_start].to_vec();
                content.extend_from_slice(&body[start..start + fragment.len()]);
                self.report.frames += 1;
                SegState::Ready(encode(&content))
            } else {
                self.report.incomplete_group_packets += 1;
                SegState::Dropped
            };
            states.push((m.seg, state));
        }
        for (seg, state) in states {
            self.set_seg(key, seg, state);
        }
        // No resolve here: the caller is still adding this push's frames, and a record may only
        // be completed once every frame in it has its place (the caller resolves after).
    }

    /// Completes the stream's oldest records whose frames are all decided.
    fn resolve(&mut self, key: StreamKey) {
        let keep = self.opts.keep_undecodable;
        let Some(stream) = self.streams.get_mut(&key) else {
            return;
        };
        while let Some(rec) = stream.recs.front() {
            let (rs, re) = (rec.start, rec.start + rec.bytes.len() as u64);
            if stream.frontier < re {
                break;
            }
            let overlapping = stream.segs.iter().take_while(|s| s.start < re).filter(|s| s.end > rs);
            if overlapping.clone().any(|s| matches!(s.state, SegState::Held)) {
                break;
            }
            let mut out = Vec::with_capacity(rec.bytes.len() + 8);
            let mut cursor = rs;
            let raw = |from: u64, to: u64, out: &mut Vec<u8>, report: &mut RedactReport| {
                if to <= from {
                    return;
                }
                let bytes = &rec.bytes[(from - rs) as usize..(to - rs) as usize];
                if keep {
                    out.extend_from_slice(bytes);
                    report.bytes_kept_raw += bytes.len() as u64;
                } else {
                    report.bytes_left_out += bytes.len() as u64;
                }
            };
            for seg in overlapping {
                let (a, b) = (seg.start.max(rs), seg.end.min(re));
                raw(cursor, a, &mut out, &mut self.report);
                match &seg.state {
                    SegState::Ready(new) => {
                        // Cut the new bytes where the old ones were cut; the last piece takes the rest.
                        let cut = |x: u64| {
                            if x >= seg.end {
                                new.len()
                            } else {
                                ((x - seg.start) as usize).min(new.len())
                            }
                        };
                        out.extend_from_slice(&new[cut(a)..cut(b)]);
                    }
                    SegState::Dropped => raw(a, b, &mut out, &mut self.report),
                    SegState::Held => unreachable!("checked above"),
                }
                cursor = b;
            }
            raw(cursor, re, &mut out, &mut self.report);
            let qidx = rec.qidx;
            stream.recs.pop_front();
            while stream.segs.front().is_some_and(|s| s.end <= re) {
                stream.segs.pop_front();
            }
            if let Some(p) = qidx.checked_sub(self.head).and_then(|i| self.queue.get_mut(i as usize)) {
                p.payload.get_or_insert_with(Vec::new).extend_from_slice(&out);
                p.ready = true;
            }
        }
    }

    /// Ends a stream as at a close: an unfinished frame is undecodable, open groups incomplete.
    fn end_stream(&mut self, key: StreamKey) {
        let Some(stream) = self.streams.get_mut(&key) else {
            return;
        };
        let mut frames = Vec::new();
        let base = stream.base;
        let report = &mut self.report;
        stream.deframer.finish(|item| collect(item, base, &mut frames, report));
        stream.base = stream.pos;
        stream.frontier = stream.pos;
        stream.last_frame_end = stream.pos;
        for f in frames {
            // `finish` yields no frames; should it ever, they are rewritten like any other.
            self.add_frame(key, f);
        }
        let open: Vec<GroupKey> = self.groups.keys().filter(|g| (g.0, g.1) == key).cloned().collect();
        for gk in open {
            if let Some(group) = self.groups.remove(&gk) {
                self.report.incomplete_group_packets += group.members.len() as u64;
                for m in group.members {
                    self.set_seg(key, m.seg, SegState::Dropped);
                }
            }
        }
        self.resolve(key);
        if self.streams.get(&key).is_some_and(|s| s.recs.is_empty()) {
            self.streams.remove(&key);
        }
    }

    /// Past `max_held_bytes`: end the stream that holds the oldest waiting record.
    fn enforce_limit(&mut self) {
        while self.held_bytes > self.opts.max_held_bytes {
            let Some(key) = self.queue.iter().find(|p| !p.ready).and_then(|p| match p.record.kind {
                RecordKind::Message { from, .. } => Some((p.record.conn, from)),
                _ => None,
            }) else {
                break;
            };
            self.report.forced_flushes += 1;
            let head = self.head;
            self.end_stream(key);
            self.flush_ready();
            if self.head == head {
                // Ending the stream always completes its records; should it not, stop rather
                // than spin (the records still go out at the end of the input).
                break;
            }
        }
    }

    /// Ends every stream (the end of the input).
    fn finish_all(&mut self) {
        let keys: Vec<StreamKey> = self.streams.keys().copied().collect();
        for key in keys {
            self.end_stream(key);
        }
    }

    /// Writes the records at the head of the queue that are complete.
    fn flush_ready(&mut self) {
        while self.queue.front().is_some_and(|p| p.ready) {
            let Some(p) = self.queue.pop_front() else { break };
            self.head += 1;
            let mut record = p.record;
            self.held_bytes -= p.held;
            if let (Some(bytes), RecordKind::Message { payload, .. }) = (p.payload, &mut record.kind) {
                *payload = Payload::Binary(bytes);
            }
            if self.write_error.is_none()
                && let Err(e) = self.writer.write(&record)
            {
                self.write_error = Some(e);
            }
        }
    }
}

/// Frames a rewritten content: check code, escapes, delimiters.
fn encode(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 8);
    frame_into(content, &mut out);
    out
}

/// A frame item copied out of the deframer's buffer.
#[derive(Debug)]
struct OwnedFrame {
    /// Stream offset of the opening delimiter.
    offset: u64,
    content: Vec<u8>,
    body_start: usize,
    msg_id: u16,
    version: Version,
    encryption: u8,
    /// (total, index) when sub-packaged.
    packet: Option<(u16, u16)>,
    phone: Phone,
}

fn collect(item: Item<'_>, base: u64, frames: &mut Vec<OwnedFrame>, report: &mut RedactReport) {
    match item {
        Item::Frame(Frame {
            offset,
            header,
            content,
            body_start,
        }) => frames.push(OwnedFrame {
            offset: base + offset,
            content: content.to_vec(),
            body_start,
            msg_id: header.msg_id,
            version: header.version,
            encryption: header.encryption,
            packet: header.packet.map(|p| (p.total, p.index)),
            phone: header.phone,
        }),
        Item::Rejected(e) => *report.undecodable_frames.entry(e.check().to_string()).or_default() += 1,
        Item::Skipped { len, .. } => report.bytes_outside_frames += len,
        // Redaction deframes strictly (the default settings): never given.
        Item::UnescapedFlag { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn the_mapping_is_pinned() {
        // The stand-in is part of the output format: a change here changes every redacted capture
        // (and the bundled one), so it must be deliberate.
        let mut r = Redactor::new(b"pinned");
        let a = r.phone("13800138000");
        assert_eq!(a.len(), 11);
        assert_eq!(r.phone("13800138000"), a, "the same SIM, the same stand-in");
        assert_eq!(
            Redactor::new(b"pinned").phone("13800138000"),
            a,
            "a fresh redactor agrees"
        );
        assert_eq!((a.as_str(), r.key_id().as_str(), r.offset()), PINNED);
        assert_eq!(r.phone("0"), "0");
        assert_ne!(Redactor::new(b"other").phone("13800138000"), a);
    }

    const PINNED: (&str, &str, (u32, u32)) = ("11724182669", "79df92d3", (48_731_718, 140_601_776));

    #[test]
    fn stand_ins_are_distinct_and_keep_their_length() {
        let mut r = Redactor::new(b"k");
        let mut seen = BTreeSet::new();
        for i in 0..600u32 {
            let p = format!("{}", 1000 + i % 300);
            let s = r.phone(&p);
            assert_eq!(s.len(), p.len());
            assert_ne!(s, p);
            assert!(!s.starts_with('0'));
            seen.insert((p, s));
        }
        let stand_ins: BTreeSet<&String> = seen.iter().map(|(_, s)| s).collect();
        assert_eq!(stand_ins.len(), 300, "300 numbers, 300 distinct stand-ins");
        // One-digit numbers exhaust the space: every one still gets a stand-in other than itself.
        for d in 1..=9 {
            let p = d.to_string();
            assert_ne!(r.phone(&p), p);
        }
    }

    #[test]
    fn coordinates_move_by_the_offset_wrap_and_zero_stays() {
        let r = Redactor::new(b"k");
        let (dl, dn) = r.offset();
        let mut report = RedactReport::default();
        let mut body = location_block(22_000_000, 179_999_999);
        r.body(0x0200, Version::V2013, &mut body, &mut report);
        let word = |b: &[u8], i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
        assert_eq!(word(&body, 8), (22_000_000 + dl) % LAT_RANGE);
        assert_eq!(word(&body, 12), (179_999_999 + dn) % LNG_RANGE);
        let mut zero = location_block(0, 0);
        r.body(0x0200, Version::V2013, &mut zero, &mut report);
        assert_eq!(zero, location_block(0, 0), "no fix stays no fix");
        assert_eq!(report.positions, 2);
        // A body cut inside the longitude: what is there is zeroed.
        let mut cut = location_block(1, 2)[..14].to_vec();
        r.body(0x0200, Version::V2013, &mut cut, &mut report);
        assert_eq!(&cut[12..], [0, 0]);
        assert_eq!(report.positions_cut, 1);
    }

    fn location_block(lat: u32, lng: u32) -> Vec<u8> {
        let mut b = vec![0; 8];
        b.extend_from_slice(&lat.to_be_bytes());
        b.extend_from_slice(&lng.to_be_bytes());
        b.resize(28, 0);
        b
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RedactArgs,
    }

    #[test]
    fn arguments_need_a_key_or_a_key_file() {
        let cli = Cli::try_parse_from(["x", "in.jsonl", "-o", "out.jsonl", "--key", "s3"]).unwrap();
        let opts = cli.args.opts().unwrap();
        assert_eq!(opts.key, b"s3");
        assert_eq!(opts.max_held_bytes, DEFAULT_MAX_HELD_BYTES);
        assert!(!format!("{opts:?}").contains("s3"), "Debug never shows the key");
        assert!(Cli::try_parse_from(["x", "in.jsonl", "-o", "out.jsonl"]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "from file\n").unwrap();
        let cli = Cli::try_parse_from([
            "x",
            "in.jsonl",
            "-o",
            "out.jsonl",
            "--key-file",
            key.to_str().unwrap(),
            "--keep-undecodable",
        ])
        .unwrap();
        let opts = cli.args.opts().unwrap();
        assert_eq!(
            (opts.key.as_slice(), opts.keep_undecodable),
            (b"from file".as_slice(), true)
        );
    }
}
