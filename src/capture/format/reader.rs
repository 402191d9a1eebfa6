//! The streaming reader of a capture: the header first, then one record per line, a damaged last
//! line reported as a [`Truncation`] and any other damage as an error naming `file:line:column`
//! (see the format's documentation in the parent module). One line is held at a time.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use thiserror::Error;

use super::*;

/// Why a capture could not be read. Each names the file, and the line (and column when serde_json
/// knows it) as `file:line:column`, so an editor can jump there. Records before the error were
/// already yielded: nothing accepted is lost.
#[derive(Debug, Error)]
pub enum CaptureError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The capture file.
        path: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file is empty: not even a header.
    #[error("{path}: empty file, expected a {FORMAT_NAME} header on line 1")]
    Empty {
        /// The capture file.
        path: String,
    },
    /// Line 1 is not a `jt808-capture` header.
    #[error("{path}:1: not a {FORMAT_NAME} capture: {detail}")]
    NotACapture {
        /// The capture file.
        path: String,
        /// What was found instead.
        detail: String,
    },
    /// The header names a version this build does not read.
    #[error("{path}:1: capture format version {found} is not supported (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion {
        /// The capture file.
        path: String,
        /// The version in the header.
        found: String,
    },
    /// A line is not valid JSON, or not a valid header or record.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The capture file.
        path: String,
        /// 1-based line.
        line: u64,
        /// 1-based column (1 when the problem is the record as a whole).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A record's `t_us` is smaller than the one before it.
    #[error("{path}:{line}: t_us {t_us} goes back in time (line {prev_line} had t_us {prev_t_us})")]
    TimeBackwards {
        /// The capture file.
        path: String,
        /// 1-based line.
        line: u64,
        /// This record's time.
        t_us: u64,
        /// The previous record's line.
        prev_line: u64,
        /// The previous record's time.
        prev_t_us: u64,
    },
    /// A line is longer than [`ReaderConfig::max_line_len`].
    #[error("{path}:{line}: line longer than the {limit}-byte limit (max_line_len)")]
    LineTooLong {
        /// The capture file.
        path: String,
        /// 1-based line.
        line: u64,
        /// The limit.
        limit: usize,
    },
}

/// The last line of a capture was cut mid-write (no `\n`, does not parse). Not an error: every
/// whole record before it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Truncation {
    /// 1-based line number of the cut line.
    pub line: u64,
    /// How many bytes of it there were.
    pub bytes: usize,
    /// Why it did not parse.
    pub error: String,
}

/// Reader limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderConfig {
    /// Longest line accepted, in bytes. Default 64 MiB: a 32 MiB WebSocket message as hex. A longer
    /// line is an error ([`CaptureError::LineTooLong`]), so a file without newlines cannot make the
    /// reader hold all of it.
    pub max_line_len: usize,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        ReaderConfig { max_line_len: 64 << 20 }
    }
}

/// Streaming capture reader: the header is read on open, then records one at a time (as an
/// [`Iterator`]), holding one line in memory. Stops at the first error (yielded once) or at a
/// truncated last line (see [`CaptureReader::truncated`]).
#[derive(Debug)]
pub struct CaptureReader<R> {
    src: R,
    path: String,
    cfg: ReaderConfig,
    header: CaptureHeader,
    buf: Vec<u8>,
    /// Lines read so far (the number of the line in `buf`).
    lines_read: u64,
    record_line: u64,
    last_t_us: u64,
    truncated: Option<Truncation>,
    done: bool,
}

impl CaptureReader<BufReader<File>> {
    /// Opens a capture file and reads its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let file = File::open(path).map_err(|source| CaptureError::Io {
            path: name.clone(),
            source,
        })?;
        CaptureReader::from_reader(BufReader::with_capacity(256 << 10, file), name)
    }
}

impl<R: BufRead> CaptureReader<R> {
    /// Reads a capture from any buffered reader; `name` stands for the file in errors.
    pub fn from_reader(src: R, name: impl Into<String>) -> Result<Self, CaptureError> {
        CaptureReader::with_config(src, name, ReaderConfig::default())
    }

    /// [`CaptureReader::from_reader`] with explicit limits.
    pub fn with_config(src: R, name: impl Into<String>, cfg: ReaderConfig) -> Result<Self, CaptureError> {
        let mut r = CaptureReader {
            src,
            path: name.into(),
            cfg,
            header: CaptureHeader::new(0),
            buf: Vec::new(),
            lines_read: 0,
            record_line: 0,
            last_t_us: 0,
            truncated: None,
            done: false,
        };
        r.header = r.read_header()?;
        Ok(r)
    }

    /// The header.
    pub fn header(&self) -> &CaptureHeader {
        &self.header
    }

    /// The file name used in errors.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Line number of the last record yielded (0 before the first).
    pub fn line(&self) -> u64 {
        self.record_line
    }

    /// Set once the reader has met a cut last line: where, and why it did not parse.
    pub fn truncated(&self) -> Option<&Truncation> {
        self.truncated.as_ref()
    }

    /// Reads the next non-blank line into `buf`. Returns whether it ended with `\n`, or `None` at
    /// the end of the file.
    fn read_line(&mut self) -> Result<Option<bool>, CaptureError> {
        loop {
            self.buf.clear();
            let limit = self.cfg.max_line_len as u64 + 1;
            let n = (&mut self.src)
                .take(limit)
                .read_until(b'\n', &mut self.buf)
                .map_err(|source| CaptureError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                return Ok(None);
            }
            self.lines_read += 1;
            let newline = self.buf.last() == Some(&b'\n');
            let content_len = self.buf.len() - usize::from(newline);
            if content_len > self.cfg.max_line_len {
                return Err(CaptureError::LineTooLong {
                    path: self.path.clone(),
                    line: self.lines_read,
                    limit: self.cfg.max_line_len,
                });
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(newline));
        }
    }

    fn parse_error(&self, e: &serde_json::Error) -> CaptureError {
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
        CaptureError::Parse {
            path: self.path.clone(),
            line: self.lines_read,
            column: e.column().max(1),
            message,
        }
    }

    fn read_header(&mut self) -> Result<CaptureHeader, CaptureError> {
        if self.read_line()?.is_none() {
            return Err(CaptureError::Empty {
                path: self.path.clone(),
            });
        }
        let value: serde_json::Value = serde_json::from_slice(&self.buf).map_err(|e| {
            if self.lines_read == 1 {
                CaptureError::NotACapture {
                    path: self.path.clone(),
                    detail: format!("line 1 is not JSON ({e})"),
                }
            } else {
                self.parse_error(&e)
            }
        })?;
        let format = value.get("format");
        if format.and_then(|f| f.as_str()) != Some(FORMAT_NAME) {
            return Err(CaptureError::NotACapture {
                path: self.path.clone(),
                detail: match format {
                    Some(f) => format!("\"format\" is {f}, expected \"{FORMAT_NAME}\""),
                    None => format!("line 1 has no \"format\" key (expected \"{FORMAT_NAME}\")"),
                },
            });
        }
        match value.get("version") {
            Some(v) if v.as_u64() == Some(FORMAT_VERSION as u64) => {}
            Some(v) => {
                return Err(CaptureError::UnsupportedVersion {
                    path: self.path.clone(),
                    found: v.to_string(),
                });
            }
            None => {
                return Err(CaptureError::UnsupportedVersion {
                    path: self.path.clone(),
                    found: "(missing)".into(),
                });
            }
        }
        serde_json::from_slice(&self.buf).map_err(|e| self.parse_error(&e))
    }

    /// The next record, `None` at the end (or after an error or a truncated last line).
    pub fn next_record(&mut self) -> Option<Result<Record, CaptureError>> {
        if self.done {
            return None;
        }
        let result = self.read_record();
        if !matches!(result, Some(Ok(_))) {
            self.done = true;
        }
        result
    }

    fn read_record(&mut self) -> Option<Result<Record, CaptureError>> {
        let newline = match self.read_line() {
            Ok(None) => return None,
            Ok(Some(nl)) => nl,
            Err(e) => return Some(Err(e)),
        };
        let record: Record = match serde_json::from_slice(&self.buf) {
            Ok(r) => r,
            Err(e) if !newline => {
                // The writer always ends a record with '\n': a last line without one that does not
                // parse is a record cut mid-write, not damage.
                let full = e.to_string();
                self.truncated = Some(Truncation {
                    line: self.lines_read,
                    bytes: self.buf.len(),
                    error: full,
                });
                return None;
            }
            Err(e) => return Some(Err(self.parse_error(&e))),
        };
        if record.t_us < self.last_t_us {
            return Some(Err(CaptureError::TimeBackwards {
                path: self.path.clone(),
                line: self.lines_read,
                t_us: record.t_us,
                prev_line: self.record_line,
                prev_t_us: self.last_t_us,
            }));
        }
        self.last_t_us = record.t_us;
        self.record_line = self.lines_read;
        Some(Ok(record))
    }
}

impl<R: BufRead> Iterator for CaptureReader<R> {
    type Item = Result<Record, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}
