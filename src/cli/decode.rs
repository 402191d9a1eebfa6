//! `jt808-harness decode`: hex or a binary stream in, one JSON object per line out.
//!
//! The input is one byte stream (several frames, garbage, the packets of a split message), decoded
//! exactly as the client would: resynchronising after bad frames, reassembling packet groups. At the
//! end of the input an unfinished frame is reported and incomplete groups come out as
//! `group_expired`. Exit status is 0 whenever the input could be read, even if frames were rejected.

use std::io::{self, BufWriter, Read, Write};
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

/// Bytes of standard input read, and decoded, at a time: about the most `decode` holds of its
/// input, however long a line is (a 200 MB line was once held whole).
pub const HEX_CHUNK: usize = 64 << 10;

/// Where a hex digit came from, for error messages.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// Command-line argument, 1-based.
    Argument(usize),
    /// Standard input, at a 1-based line.
    Stdin { line: u64 },
}

/// Streams hex digits to bytes, skipping whitespace, remembering where each digit came from. Text
/// comes in pieces of any size: a dangling nibble waits for the next piece.
struct HexStream {
    high: Option<u8>,
    digits: u64,
    source: Source,
    /// Characters already seen in the current argument or line (the 0-based position of the next).
    position: u64,
}

impl HexStream {
    fn new(source: Source) -> HexStream {
        HexStream {
            high: None,
            digits: 0,
            source,
            position: 0,
        }
    }

    /// Starts argument `n` (1-based): positions count from its first character.
    fn argument(&mut self, n: usize) {
        self.source = Source::Argument(n);
        self.position = 0;
    }

    /// Decodes `text` into `out`; a line feed on standard input starts the next line. On a bad
    /// character, `out` has every byte before it.
    fn feed(&mut self, text: &str, out: &mut Vec<u8>) -> Result<(), DecodeCmdError> {
        for c in text.chars() {
            let position = self.position;
            self.position += 1;
            if c == '\n'
                && let Source::Stdin { line } = &mut self.source
            {
                *line += 1;
                self.position = 0;
                continue;
            }
            if c.is_whitespace() {
                continue;
            }
            let v = c.to_digit(16).ok_or_else(|| DecodeCmdError::BadHex {
                source_name: match self.source {
                    Source::Argument(n) => format!("argument {n}"),
                    Source::Stdin { line } => format!("stdin line {line}"),
                },
                position,
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

/// What [`stream_hex`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HexSummary {
    /// Hex digits read.
    pub digits: u64,
    /// The most bytes its buffers (text read, bytes decoded) had reserved at once.
    pub peak_buffer: usize,
}

/// Reads hex text from `reader` in pieces of `chunk` bytes (at least 1) and hands each piece's
/// bytes to `f` as soon as it is decoded: memory stays bounded by `chunk` whatever the line
/// lengths. A UTF-8 character or a nibble cut between pieces is carried over; a bad character is
/// reported by line and position as if the line had been read whole, after every byte before it
/// went to `f`. An odd digit count is [`DecodeCmdError::OddHex`], also after the bytes went out.
pub fn stream_hex(mut reader: impl Read, chunk: usize, mut f: impl FnMut(&[u8])) -> Result<HexSummary, DecodeCmdError> {
    let chunk = chunk.max(1);
    let mut hex = HexStream::new(Source::Stdin { line: 1 });
    // A piece plus the up to 3 bytes of a character cut at the end of the one before.
    let mut text = vec![0u8; chunk + 3];
    let mut bytes = Vec::with_capacity(chunk / 2 + 1);
    let mut carried = 0;
    let mut peak_buffer = 0;
    let utf8_error = || DecodeCmdError::Io {
        what: "reading standard input".into(),
        source: io::Error::new(io::ErrorKind::InvalidData, "stream did not contain valid UTF-8"),
    };
    loop {
        let n = match reader.read(&mut text[carried..carried + chunk]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(DecodeCmdError::Io {
                    what: "reading standard input".into(),
                    source,
                });
            }
        };
        if n == 0 {
            if carried > 0 {
                return Err(utf8_error());
            }
            break;
        }
        let end = carried + n;
        let valid = match std::str::from_utf8(&text[..end]) {
            Ok(_) => end,
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => return Err(utf8_error()),
        };
        let piece = std::str::from_utf8(&text[..valid]).map_err(|_| utf8_error())?;
        let fed = hex.feed(piece, &mut bytes);
        f(&bytes);
        peak_buffer = peak_buffer.max(text.capacity() + bytes.capacity());
        bytes.clear();
        fed?;
        text.copy_within(valid..end, 0);
        carried = end - valid;
    }
    if hex.high.is_some() {
        return Err(DecodeCmdError::OddHex { digits: hex.digits });
    }
    Ok(HexSummary {
        digits: hex.digits,
        peak_buffer,
    })
}

/// Runs `decode`, writing JSON Lines to `out`.
pub fn run(args: &DecodeArgs, stdin: impl Read, out: impl Write) -> Result<(), DecodeCmdError> {
    let mut out = BufWriter::new(out);
    let mut cfg = DecoderConfig::default();
    cfg.deframer.rejoin_unescaped_flag = args.rejoin_unescaped_flag;
    let mut dec = Decoder::new(cfg);
    let packets = args.packets;
    let mut write_err = None;
    let mut emit = |e: &DecodeEvent, out: &mut BufWriter<_>| {
        if matches!(e, DecodeEvent::Packet { .. }) && !packets {
            return;
        }
        let line = serde_json::to_string(e).expect("events serialise");
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
            dec.push_lent(&buf[..n], Duration::ZERO, |e| emit(e, &mut out));
        }
    } else {
        let read = if args.hex.is_empty() {
            stream_hex(stdin, HEX_CHUNK, |bytes| {
                dec.push_lent(bytes, Duration::ZERO, |e| emit(e, &mut out))
            })
            .map(|_| ())
        } else {
            let mut hex = HexStream::new(Source::Argument(1));
            let mut bytes = Vec::new();
            let mut read = Ok(());
            for (i, arg) in args.hex.iter().enumerate() {
                hex.argument(i + 1);
                read = hex.feed(arg, &mut bytes);
                if read.is_err() {
                    break;
                }
                dec.push_lent(&bytes, Duration::ZERO, |e| emit(e, &mut out));
                bytes.clear();
            }
            match (read, hex.high) {
                (Ok(()), Some(_)) => Err(DecodeCmdError::OddHex { digits: hex.digits }),
                (read, _) => read,
            }
        };
        if let Err(e @ DecodeCmdError::OddHex { .. }) = read {
            // Everything before the dangling nibble was decoded and printed already.
            dec.end_stream(|e| emit(&e, &mut out));
            dec.drain_groups(|e| emit(&e, &mut out));
            out.flush().map_err(io_err("writing output"))?;
            return Err(e);
        }
        read?;
    }
    dec.end_stream(|e| emit(&e, &mut out));
    dec.drain_groups(|e| emit(&e, &mut out));
    if let Some(e) = write_err {
        return Err(DecodeCmdError::Io {
            what: "writing output".into(),
            source: e,
        });
    }
    out.flush().map_err(io_err("writing output"))
}
