//! Capture replay: a [`Feed`] that serves a capture's gateway messages on the capture's own
//! timeline, scaled by a speed factor, looped, with the terminal script answering the client.
//! Streaming: it holds one record at a time ([`CaptureReader`]), so a 1 GB capture replays in the
//! memory of one line. No tokio here; due times are virtual offsets.
//!
//! What is replayed: every record `from: gateway` with a binary payload, in file order, with the
//! capture's own `prefix_len` bytes cut off the front (a connection's own, when its `open` record
//! states one) (the gateway puts its own envelope of its
//! configured `prefix_len` in front again). Due at `t_us / speed` (speed 0: every message due at 0,
//! in order: as fast as the link takes them). What is not: the client's messages (the client under
//! test sends its own, and the [`TerminalScript`] answers them), text/ping/pong messages (a feed
//! carries JT808 bytes only), open/close events (the gateway's faults decide about connections),
//! and the `conn` id (every connection of the capture goes into the one session, in time order).
//!
//! Loops: loop `n` (0-based) is offset by `n` times the capture's duration, the `t_us` of its last
//! record; `loops = 0` repeats forever. The file is opened again for each loop.
//!
//! # Errors are not silent
//!
//! A line that does not parse (or goes back in time, or is too long) **ends the feed** at that
//! line: everything before it was served, nothing after it is guessed at. The error, naming
//! `file:line:column`, is logged with `tracing::error!` and kept in the feed's [`ReplayErrors`]
//! (a shared handle: [`Replay::errors`], and [`super::source::Feeds::errors`] for every session
//! of a gateway). A gateway message shorter than the prefix is skipped and reported the same way,
//! without ending the feed. A last line cut mid-write is not an error (the capture format says
//! so); it is logged with `tracing::warn!`. A loop that offers nothing (no gateway message in the
//! file) ends the feed instead of spinning forever.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::feed::{Feed, FeedClose, FeedItem};
use super::terminal::{TerminalScript, TerminalSettings};
use crate::capture::prefix::ConnPrefixes;
use crate::capture::{CaptureError, CaptureHeader, CaptureReader, CaptureWriter, Payload, Record, RecordKind, Side};
use crate::codec::Message;

/// One problem a replay met, for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayError {
    /// The loop it happened in (0-based).
    pub loop_index: u32,
    /// What happened, naming `file:line` (the [`CaptureError`] text, or the skipped message).
    pub message: String,
    /// Whether the feed ended there.
    pub ended: bool,
}

/// Shared list of the errors of one or more replays (clones share it). Bounded: after
/// [`ReplayErrors::LIMIT`] entries, further errors only count ([`ReplayErrors::dropped`]); every
/// one still goes to `tracing`.
#[derive(Debug, Clone, Default)]
pub struct ReplayErrors {
    inner: Arc<Mutex<(Vec<ReplayError>, u64)>>,
}

impl ReplayErrors {
    /// Most errors kept in the list (a capture with a million short messages must not fill memory).
    pub const LIMIT: usize = 1000;

    fn push(&self, e: ReplayError) {
        let mut g = self.inner.lock().expect("replay errors lock");
        if g.0.len() < Self::LIMIT {
            g.0.push(e);
        } else {
            g.1 += 1;
        }
    }

    /// A replay that could not even start (its file went away after the source was checked).
    pub(crate) fn push_open_error(&self, message: String) {
        self.push(ReplayError {
            loop_index: 0,
            message,
            ended: true,
        });
    }

    /// The errors kept so far (a copy).
    pub fn list(&self) -> Vec<ReplayError> {
        self.inner.lock().expect("replay errors lock").0.clone()
    }

    /// Errors beyond [`ReplayErrors::LIMIT`], counted but not kept.
    pub fn dropped(&self) -> u64 {
        self.inner.lock().expect("replay errors lock").1
    }

    /// True when nothing went wrong.
    pub fn is_empty(&self) -> bool {
        let g = self.inner.lock().expect("replay errors lock");
        g.0.is_empty() && g.1 == 0
    }
}

/// How a capture is replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayOptions {
    /// 1.0 the capture's timing, 10.0 ten times faster, 0 as fast as possible.
    pub speed: f64,
    /// How many times (0 = forever).
    pub loops: u32,
    /// How the terminals answer.
    pub terminal: TerminalSettings,
    /// Seed of the terminal script.
    pub seed: u64,
    /// Keep the capture's connections: where a recorded connection closed, the connection it is
    /// replayed on is closed the same way (its close code, or dropped without a close frame when
    /// the recording shows none), and the client's next connection gets the next recorded one.
    /// Off: every connection's messages go into one stream, and the gateway's faults alone decide
    /// about connections (right for a pcap of raw TCP terminals, whose connections are terminals,
    /// not WebSocket connections).
    pub keep_connections: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            speed: 1.0,
            loops: 1,
            terminal: TerminalSettings::default(),
            seed: 0,
            keep_connections: false,
        }
    }
}

/// A capture replayed as a [`Feed`]. See the module doc.
#[derive(Debug)]
pub struct Replay {
    path: PathBuf,
    reader: Option<CaptureReader<BufReader<File>>>,
    prefix_len: usize,
    /// Each connection's prefix (the header's, or its own from its `open` record).
    prefixes: ConnPrefixes,
    opts: ReplayOptions,
    loop_index: u32,
    /// Added to `t_us` in this loop.
    offset_us: u64,
    /// `t_us` of the last record read in this loop.
    last_t_us: u64,
    /// Items offered in this loop.
    offered_in_loop: u64,
    script: TerminalScript,
    errors: ReplayErrors,
    /// Connections of this loop whose close was served (with `keep_connections`).
    closed: std::collections::BTreeSet<u64>,
}

impl Replay {
    /// Opens the capture and reads its header: a missing file or a bad header is an error here,
    /// naming the file.
    pub fn open(path: impl AsRef<Path>, opts: ReplayOptions) -> Result<Replay, CaptureError> {
        Replay::open_with(path, opts, ReplayErrors::default())
    }

    /// As [`Replay::open`], reporting into a shared error list.
    pub fn open_with(
        path: impl AsRef<Path>,
        opts: ReplayOptions,
        errors: ReplayErrors,
    ) -> Result<Replay, CaptureError> {
        let path = path.as_ref().to_path_buf();
        let reader = CaptureReader::open(&path)?;
        let prefix_len = reader.header().prefix_len;
        let script = TerminalScript::new(opts.terminal.clone(), opts.seed);
        Ok(Replay {
            path,
            reader: Some(reader),
            prefix_len,
            prefixes: ConnPrefixes::new(prefix_len),
            opts,
            loop_index: 0,
            offset_us: 0,
            last_t_us: 0,
            offered_in_loop: 0,
            script,
            errors,
            closed: Default::default(),
        })
    }

    /// The errors of this replay (a shared handle).
    pub fn errors(&self) -> ReplayErrors {
        self.errors.clone()
    }

    /// The capture header's `prefix_len`, cut off every message of a connection that does not
    /// state its own.
    pub fn prefix_len(&self) -> usize {
        self.prefix_len
    }

    /// The terminal script (stats).
    pub fn script(&self) -> &TerminalScript {
        &self.script
    }

    fn due(&self, t_us: u64) -> Duration {
        let t = t_us.saturating_add(self.offset_us);
        if self.opts.speed == 0.0 {
            Duration::ZERO
        } else if self.opts.speed == 1.0 {
            Duration::from_micros(t)
        } else {
            Duration::from_nanos((t as f64 * 1000.0 / self.opts.speed).round() as u64)
        }
    }

    fn report(&self, message: String, ended: bool) {
        if ended {
            tracing::error!(capture = %self.path.display(), loop_index = self.loop_index, "{message}; replay ends here");
        } else {
            tracing::error!(capture = %self.path.display(), loop_index = self.loop_index, "{message}");
        }
        self.errors.push(ReplayError {
            loop_index: self.loop_index,
            message,
            ended,
        });
    }

    /// The end of one pass through the file: start the next loop, or end the feed.
    fn next_loop(&mut self) {
        if let Some(t) = self.reader.as_ref().and_then(|r| r.truncated()) {
            tracing::warn!(
                capture = %self.path.display(),
                line = t.line,
                "last line cut mid-write ({} bytes, {}); replayed everything before it",
                t.bytes,
                t.error
            );
        }
        self.reader = None;
        if self.offered_in_loop == 0 {
            tracing::warn!(capture = %self.path.display(), loop_index = self.loop_index, "no gateway message in this pass over the capture: the replay ends");
            return;
        }
        self.loop_index += 1;
        if self.opts.loops != 0 && self.loop_index >= self.opts.loops {
            return;
        }
        self.offset_us = self.offset_us.saturating_add(self.last_t_us);
        self.prefixes = ConnPrefixes::new(self.prefix_len);
        self.closed.clear();
        self.last_t_us = 0;
        self.offered_in_loop = 0;
        match CaptureReader::open(&self.path) {
            Ok(r) => self.reader = Some(r),
            Err(e) => self.report(e.to_string(), true),
        }
    }
}

impl Feed for Replay {
    fn next_item(&mut self) -> Option<FeedItem> {
        loop {
            let reader = self.reader.as_mut()?;
            match reader.next_record() {
                Some(Ok(record)) => {
                    self.prefixes.observe(&record);
                    let Record { t_us, conn, kind } = record;
                    let prefix_len = self.prefixes.get(conn);
                    self.last_t_us = t_us;
                    if let RecordKind::Close { code, .. } = kind {
                        // The first close of a connection ends it (a clean close is recorded twice:
                        // the closer's frame and the answer).
                        if self.opts.keep_connections && self.closed.insert(conn) {
                            return Some(FeedItem {
                                due: self.due(t_us),
                                bytes: Vec::new(),
                                close: Some(FeedClose { code }),
                            });
                        }
                        continue;
                    }
                    let RecordKind::Message {
                        from: Side::Gateway,
                        payload: Payload::Binary(mut bytes),
                    } = kind
                    else {
                        continue;
                    };
                    if bytes.len() < prefix_len {
                        let line = reader.line();
                        let message = format!(
                            "{}:{line}: gateway message of {} bytes is shorter than its connection's prefix_len \
                             {prefix_len}; skipped",
                            reader.path(),
                            bytes.len(),
                        );
                        self.report(message, false);
                        continue;
                    }
                    bytes.drain(..prefix_len);
                    self.offered_in_loop += 1;
                    return Some(FeedItem {
                        due: self.due(t_us),
                        bytes,
                        close: None,
                    });
                }
                Some(Err(e)) => {
                    self.report(e.to_string(), true);
                    self.reader = None;
                    return None;
                }
                None => self.next_loop(),
            }
        }
    }

    fn on_client_message(&mut self, msg: &Message, now: Duration) -> Vec<FeedItem> {
        self.script.on_client_message(msg, now)
    }
}

/// Writes a capture of at least `target_bytes` (a generated fleet's frames, several per message,
/// behind an 18-byte envelope as the seed's gateway sends them), streaming: memory does not grow
/// with the size. Returns the number of gateway messages written. Used for the "a 1 GB capture
/// replays at full speed in flat memory" figure ([`measure_replay`]).
pub fn write_large_capture(path: &Path, target_bytes: u64, seed: u64) -> io::Result<u64> {
    use super::fleet::{Fleet, FleetConfig, Mix};
    const PREFIX: usize = 18;
    let cfg = FleetConfig {
        terminals: 200,
        messages: 0,
        interval_ms: 1000,
        frames_per_message: 4,
        mix: Mix {
            av_list: 1,
            ..Mix::default()
        },
        ..FleetConfig::default()
    };
    let mut fleet = Fleet::new(cfg, seed).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut header = CaptureHeader::new(PREFIX);
    header.source = Some(format!("generated fleet, seed {seed}"));
    let file = File::create(path)?;
    let mut w = CaptureWriter::new(io::BufWriter::with_capacity(1 << 20, file), &header)?;
    w.write(&Record::open(0, 1))?;
    let mut written = 0u64;
    let mut bytes = 0u64;
    let mut msg = Vec::with_capacity(4096);
    while bytes < target_bytes {
        let Some(item) = fleet.next_item() else { break };
        msg.clear();
        msg.extend_from_slice(b"ENV");
        msg.resize(PREFIX, 0);
        msg.extend_from_slice(&item.bytes);
        let rec = Record::binary(item.due.as_micros() as u64, 1, Side::Gateway, msg.clone());
        // The line's length: the JSON keys and the hex payload.
        bytes += 48 + 2 * msg.len() as u64;
        w.write(&rec)?;
        written += 1;
    }
    let mut out = w.into_inner();
    io::Write::flush(&mut out)?;
    Ok(written)
}

/// What [`measure_replay`] found.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayFigures {
    /// Size of the capture file, bytes.
    pub file_bytes: u64,
    /// Messages served.
    pub messages: u64,
    /// JT808 bytes served (prefix cut off).
    pub payload_bytes: u64,
    /// Wall-clock seconds of the replay (a measurement, never in a transcript).
    pub seconds: f64,
    /// Capture file MB (10^6 bytes) per second.
    pub file_mb_per_s: f64,
    /// Resident memory when the replay started, bytes.
    pub rss_start: u64,
    /// Largest resident memory sampled during the replay (every 8,192 messages), bytes.
    pub rss_peak: u64,
    /// The process's peak resident memory so far (`VmHWM`), bytes.
    pub hwm: u64,
    /// Errors the replay reported.
    pub errors: usize,
}

/// Replays the capture at `path` once at speed 0 (all due at once: as fast as the reader goes),
/// counting what it serves and sampling this process's memory ([`crate::procstat::sample`]).
pub fn measure_replay(path: &Path) -> io::Result<ReplayFigures> {
    let file_bytes = std::fs::metadata(path)?.len();
    let opts = ReplayOptions {
        speed: 0.0,
        ..ReplayOptions::default()
    };
    let mut replay = Replay::open(path, opts).map_err(io::Error::other)?;
    let rss_start = crate::procstat::sample()?.rss_bytes;
    let mut rss_peak = rss_start;
    let (mut messages, mut payload_bytes) = (0u64, 0u64);
    let start = std::time::Instant::now();
    while let Some(item) = replay.next_item() {
        messages += 1;
        payload_bytes += item.bytes.len() as u64;
        if messages.is_multiple_of(8192) {
            rss_peak = rss_peak.max(crate::procstat::sample()?.rss_bytes);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let end = crate::procstat::sample()?;
    Ok(ReplayFigures {
        file_bytes,
        messages,
        payload_bytes,
        seconds,
        file_mb_per_s: file_bytes as f64 / 1e6 / seconds.max(1e-9),
        rss_start,
        rss_peak: rss_peak.max(end.rss_bytes),
        hwm: end.hwm_bytes,
        errors: replay.errors().list().len(),
    })
}
