//! The appending writer of a capture: one `write` and one flush per record, so a killed producer
//! leaves every record but the one in flight on disk, and a header whose `prefix_len` can be
//! restated in place once the traffic shows the envelope (the recorder's need).

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

use super::*;

/// Appends records to a capture, one `write` call and one flush per record, so a recorder killed
/// at any moment loses at most the record in flight (which a reader then reports as
/// [`Truncation`]).
#[derive(Debug)]
pub struct CaptureWriter<W: Write> {
    out: W,
    line: Vec<u8>,
    last_t_us: u64,
    records: u64,
    /// Byte offset of the header's `prefix_len` digits when they were written padded to
    /// [`PREFIX_DIGITS`] so that [`CaptureWriter::restate_prefix_len`] can rewrite them in place.
    prefix_at: Option<u64>,
}

/// Width the `prefix_len` value is padded to (with JSON whitespace) in a header whose prefix may be
/// restated: room for any `u16`.
const PREFIX_DIGITS: usize = 5;

impl CaptureWriter<File> {
    /// Creates (or truncates) `path` and writes the header.
    pub fn create(path: impl AsRef<Path>, header: &CaptureHeader) -> io::Result<Self> {
        CaptureWriter::new(File::create(path)?, header)
    }
}

impl<W: Write + Seek> CaptureWriter<W> {
    /// Writes the header with its `prefix_len` padded (`"prefix_len":18   ,`: whitespace is JSON),
    /// so that a producer that learns the prefix from the traffic, as the recorder does, can state
    /// it in place with [`CaptureWriter::restate_prefix_len`] while records are already on disk.
    pub fn with_restatable_prefix(out: W, header: &CaptureHeader) -> io::Result<Self> {
        let mut w = CaptureWriter::blank(out);
        serde_json::to_writer(&mut w.line, header)?;
        let key = b"\"prefix_len\":";
        // The first occurrence is the key itself: inside a JSON string a quote is escaped.
        let at = w
            .line
            .windows(key.len())
            .position(|win| win == key)
            .ok_or_else(|| io::Error::other("header without prefix_len"))?
            + key.len();
        let digits = w.line[at..].iter().take_while(|b| b.is_ascii_digit()).count();
        w.line.splice(
            at + digits..at + digits,
            std::iter::repeat_n(b' ', PREFIX_DIGITS - digits),
        );
        let start = w.out.stream_position()?;
        w.finish_header()?;
        w.prefix_at = Some(start + at as u64);
        Ok(w)
    }

    /// Rewrites the header's `prefix_len` in place (only for a writer made by
    /// [`CaptureWriter::with_restatable_prefix`]), then goes on appending at the end.
    pub fn restate_prefix_len(&mut self, prefix_len: u16) -> io::Result<()> {
        let at = self
            .prefix_at
            .ok_or_else(|| io::Error::other("this capture's header prefix cannot be restated"))?;
        let text = format!("{prefix_len:<PREFIX_DIGITS$}");
        self.out.seek(SeekFrom::Start(at))?;
        self.out.write_all(text.as_bytes())?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()
    }
}

impl<W: Write> CaptureWriter<W> {
    /// Writes the header to `out`.
    pub fn new(out: W, header: &CaptureHeader) -> io::Result<Self> {
        let mut w = CaptureWriter::blank(out);
        serde_json::to_writer(&mut w.line, header)?;
        w.finish_header()?;
        Ok(w)
    }

    fn blank(out: W) -> Self {
        CaptureWriter {
            out,
            line: Vec::with_capacity(4096),
            last_t_us: 0,
            records: 0,
            prefix_at: None,
        }
    }

    fn finish_header(&mut self) -> io::Result<()> {
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        self.out.flush()
    }

    /// Appends one record and flushes it. A record earlier than the one before it is refused
    /// (`InvalidInput`): the format promises non-decreasing `t_us`.
    pub fn write(&mut self, record: &Record) -> io::Result<()> {
        if record.t_us < self.last_t_us {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "record t_us {} is earlier than the previous record's {}",
                    record.t_us, self.last_t_us
                ),
            ));
        }
        self.line.clear();
        serde_json::to_writer(&mut self.line, record)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        self.out.flush()?;
        self.last_t_us = record.t_us;
        self.records += 1;
        Ok(())
    }

    /// The `t_us` of the last record written (0 before any).
    pub fn last_t_us(&self) -> u64 {
        self.last_t_us
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    #[test]
    fn a_restatable_header_prefix_is_rewritten_in_place_and_reads_as_the_new_value() {
        let mut header = CaptureHeader::new(0);
        header.source = Some("record \"prefix_len\":7".into());
        let mut w = CaptureWriter::with_restatable_prefix(io::Cursor::new(Vec::new()), &header).unwrap();
        w.write(&Record::binary(5, 1, Side::Gateway, vec![0x7e])).unwrap();
        w.restate_prefix_len(18).unwrap();
        w.write(&Record::open(6, 2)).unwrap();
        w.restate_prefix_len(65535).unwrap();
        w.restate_prefix_len(4).unwrap();
        let bytes = w.into_inner().into_inner();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with(r#"{"format":"jt808-capture","version":1,"prefix_len":4    ,"#),
            "{text}"
        );
        let mut r = CaptureReader::from_reader(&bytes[..], "mem").unwrap();
        assert_eq!(r.header().prefix_len, 4);
        assert_eq!(r.header().source.as_deref(), Some("record \"prefix_len\":7"));
        assert_eq!(r.by_ref().count(), 2);
        let mut plain = CaptureWriter::new(io::Cursor::new(Vec::new()), &header).unwrap();
        assert!(
            plain.restate_prefix_len(1).is_err(),
            "only a padded header can be restated"
        );
    }
}
