//! Errors of the codec layer. Every one of them is an *item* in the decoded stream: the frame (or
//! packet) it names is dropped and the stream goes on. Only I/O, which this layer never does, ends a
//! stream. Each variant carries the stream byte offset of the frame's opening delimiter.

use serde::Serialize;
use thiserror::Error;

/// Why one frame was rejected. The frame is dropped; decoding continues with the next one.
/// Whose fault: the sender's (or the link's) — a well-formed stream never produces these.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum FrameError {
    /// Fewer bytes than the smallest header (12) plus the check code, or than the header its own
    /// flags call for (16 with the sub-packet item, 17 or 21 with the 2019 version flag).
    #[error("frame at byte {offset}: {len} bytes is shorter than the smallest header")]
    TooShort {
        /// Stream offset of the frame.
        offset: u64,
        /// Unescaped length found (without the check code).
        len: usize,
    },
    /// A 0x7D followed by something other than 0x01 or 0x02, or ending the frame
    /// (JT/T 808-2019 §4.4.1 defines only those two escapes).
    #[error("frame at byte {offset}: invalid escape 0x7D {next} at byte {at}")]
    InvalidEscape {
        /// Stream offset of the frame.
        offset: u64,
        /// Stream offset of the offending 0x7D.
        at: u64,
        /// The byte after it, as hex, or "end of frame".
        next: String,
    },
    /// The check code is not the XOR of header and body (JT/T 808-2019 §4.4.3).
    #[error("frame at byte {offset}: check code 0x{found:02X}, computed 0x{computed:02X}")]
    BadChecksum {
        /// Stream offset of the frame.
        offset: u64,
        /// The check code the frame carried.
        found: u8,
        /// The XOR of its header and body.
        computed: u8,
    },
    /// The body-length field disagrees with the bytes present in either header layout.
    #[error("frame at byte {offset}: message 0x{msg_id:04X} declares a {declared}-byte body but carries {actual}")]
    BodyLengthMismatch {
        /// Stream offset of the frame.
        offset: u64,
        /// Message id from the header.
        msg_id: u16,
        /// Body length the header declares.
        declared: u16,
        /// Body bytes present.
        actual: usize,
    },
    /// The stream ended (or the connection dropped) inside a frame: the bytes after its opening
    /// 0x7E are discarded, never glued to the next connection's bytes.
    #[error("frame at byte {offset}: cut off after {len} bytes by the end of the stream")]
    Unterminated {
        /// Stream offset of the frame.
        offset: u64,
        /// Bytes received after the opening 0x7E.
        len: usize,
    },
    /// More bytes than the largest legal frame before a closing 0x7E: discarded up to the next 0x7E.
    #[error("frame at byte {offset}: longer than the {limit}-byte limit, discarded")]
    TooLong {
        /// Stream offset of the frame.
        offset: u64,
        /// The limit that was hit ([`super::deframer::DeframerConfig::max_frame_len`]).
        limit: usize,
    },
}

impl FrameError {
    /// The stream offset of the frame the error names.
    pub fn offset(&self) -> u64 {
        match self {
            FrameError::TooShort { offset, .. }
            | FrameError::InvalidEscape { offset, .. }
            | FrameError::BadChecksum { offset, .. }
            | FrameError::BodyLengthMismatch { offset, .. }
            | FrameError::TooLong { offset, .. }
            | FrameError::Unterminated { offset, .. } => *offset,
        }
    }

    /// A short stable name of the failed check, used in JSON output and transcripts.
    pub fn check(&self) -> &'static str {
        match self {
            FrameError::TooShort { .. } => "too_short",
            FrameError::InvalidEscape { .. } => "invalid_escape",
            FrameError::BadChecksum { .. } => "bad_checksum",
            FrameError::BodyLengthMismatch { .. } => "body_length_mismatch",
            FrameError::TooLong { .. } => "too_long",
            FrameError::Unterminated { .. } => "unterminated",
        }
    }
}
