//! `jt808-harness decode`: hex or a binary stream in, one JSON object per line out.
//!
//! The input is one byte stream (several frames, garbage, the packets of a split message), decoded
//! exactly as the client would: resynchronising after bad frames, reassembling packet groups. At the
//! end of the input an unfinished frame is reported and incomplete groups come out as
//! `group_expired`. Exit status is 0 whenever the input could be read, even if frames were rejected.

use std::io::{self, BufRead, BufWriter, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use crate::codec::{DecodeEvent, Decoder, DecoderConfig};

/// Arguments of `decode`.
#[derive(Debug, clap::Args)]
pub struct DecodeArgs {
    /// Hex bytes (whitespace ignored, several arguments are one stream). Read from standard input
    /// when neither HEX nor --file is given.
    pub hex: Vec<String>,
    /// Read a raw binary stream from this file instead; a capture (its first line a capture
    /// header) is dumped record by record, each event with `t_us`, `conn` and `from`.
    #[arg(long, conflicts_with = "hex")]
    pub file: Option<PathBuf>,
    /// Also print one line per buffered sub-packet.
    #[arg(long)]
    pub packets: bool,
    /// Take an unescaped 0x7E inside a frame as data when only that makes a valid frame (for
    /// devices that forget the escape); such a frame is announced by an `unescaped_flag` line.
    #[arg(long)]
    pub rejoin_unescaped_flag: bool,
}

/// Why `decode` could not read its input.
#[derive(Debug, thiserror::Error)]
pub enum DecodeCmdError {
    /// A character that is not a hex digit.
    #[error("{source_name}: character {found:?} at position {position} is not a hex digit")]
    BadHex {
        /// "argument 2" or "stdin".
        source_name: String,
        /// 0-based character position within that source.
        position: u64,
        /// The character.
        found: char,
    },
    /// An odd number of hex digits.
    #[error("hex input has an odd number of digits ({digits}); the last nibble is not a byte")]
    OddHex {
        /// Digits read.
        digits: u64,
    },
    /// A capture given to --file is damaged (everything before the damage was printed).
    #[error(transparent)]
    Capture(#[from] super::decode_capture::DumpError),
    /// Reading input or writing output failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being read or written.
        what: String,
        /// The I/O error.
        source: io::Error,
    },
}

/// Streams hex digits to bytes, skipping whitespace, remembering where each digit came from.
struct HexStream {
    high: Option<u8>,
    digits: u64,
}

impl HexStream {
    fn feed(&mut self, text: &str, source_name: &str, out: &mut Vec<u8>) -> Result<(), DecodeCmdError> {
        for (position, c) in text.chars().enumerate() {
            if c.is_whitespace() {
                continue;
            }
            let v = c.to_digit(16).ok_or_else(|| DecodeCmdError::BadHex {
                source_name: source_name.to_string(),
                position: position as u64,
                found: c,
            })? as u8;
            self.digits += 1;
            match self.high.take() {
                Some(h) => out.push((h << 4) | v),
                None => self.high = Some(v),
            }
        }
        Ok(())
    }
}

/// Runs `decode`, writing JSON Lines to `out`.
pub fn run(args: &DecodeArgs, stdin: impl Read, out: impl Write) -> Result<(), DecodeCmdError> {
    let mut out = BufWriter::new(out);
    let mut cfg = DecoderConfig::default();
    cfg.deframer.rejoin_unescaped_flag = args.rejoin_unescaped_flag;
    let mut dec = Decoder::new(cfg);
    let packets = args.packets;
    let mut write_err = None;
    let mut emit = |e: DecodeEvent, out: &mut BufWriter<_>| {
        if matches!(e, DecodeEvent::Packet { .. }) && !packets {
            return;
        }
        let line = serde_json::to_string(&e).expect("events serialise");
        if let Err(err) = writeln!(out, "{line}")
            && write_err.is_none()
        {
            write_err = Some(err);
        }
    };
    let io_err = |what: &str| {
        let what = what.to_string();
        move |source| DecodeCmdError::Io { what, source }
    };
    if let Some(path) = &args.file
        && let Some(dumped) = super::decode_capture::dump_if_capture(path, cfg, packets, &mut out)
    {
        dumped?;
        return out.flush().map_err(io_err("writing output"));
    }
    if let Some(path) = &args.file {
        let mut f = std::fs::File::open(path).map_err(io_err(&format!("opening {}", path.display())))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f
                .read(&mut buf)
                .map_err(io_err(&format!("reading {}", path.display())))?;
            if n == 0 {
                break;
            }
            dec.push(&buf[..n], Duration::ZERO, |e| emit(e, &mut out));
        }
    } else {
        let mut hex = HexStream { high: None, digits: 0 };
        let mut bytes = Vec::new();
        if args.hex.is_empty() {
            let mut reader = io::BufReader::new(stdin);
            let mut line = String::new();
            let mut line_no = 0u64;
            loop {
                line.clear();
                line_no += 1;
                let n = reader.read_line(&mut line).map_err(io_err("reading standard input"))?;
                if n == 0 {
                    break;
                }
                hex.feed(&line, &format!("stdin line {line_no}"), &mut bytes)?;
                dec.push(&bytes, Duration::ZERO, |e| emit(e, &mut out));
                bytes.clear();
            }
        } else {
            for (i, arg) in args.hex.iter().enumerate() {
                hex.feed(arg, &format!("argument {}", i + 1), &mut bytes)?;
                dec.push(&bytes, Duration::ZERO, |e| emit(e, &mut out));
                bytes.clear();
            }
        }
        if hex.high.is_some() {
            // Everything before the dangling nibble was decoded and printed already.
            dec.end_stream(|e| emit(e, &mut out));
            dec.drain_groups(|e| emit(e, &mut out));
            out.flush().map_err(io_err("writing output"))?;
            return Err(DecodeCmdError::OddHex { digits: hex.digits });
        }
    }
    dec.end_stream(|e| emit(e, &mut out));
    dec.drain_groups(|e| emit(e, &mut out));
    if let Some(e) = write_err {
        return Err(DecodeCmdError::Io {
            what: "writing output".into(),
            source: e,
        });
    }
    out.flush().map_err(io_err("writing output"))
}
