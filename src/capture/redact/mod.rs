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

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufWriter, Write};
use std::path::Path;

use serde::Serialize;
use thiserror::Error;

mod mapping;
mod stream;

pub use mapping::Redactor;
use stream::Run;

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
