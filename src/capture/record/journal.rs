//! The recorder's journal: the one place that touches the capture file.
//!
//! A record is stamped and written (one `write` and flush: in the OS's hands, so it survives a
//! `kill -9` of the recorder) while the relay that saw the message waits, and only then is the
//! message relayed. So a recorder killed at any moment has on disk every message either peer has
//! received through it, except at most the one being written. Stamping under the same lock as
//! the write keeps `t_us` non-decreasing across connections without correction.
//!
//! The journal also finds the feed's envelope prefix ([`PrefixProbe`]) from the first gateway
//! messages (up to [`RecordOpts::prefix_probe_messages`] or [`RecordOpts::prefix_probe_ms`]).
//! Those messages are not held back to wait for the verdict, which would break the guarantee
//! above: the header is written with a restatable `prefix_len`, and each time the evidence on
//! disk points at another length the header is rewritten in place. At any moment the header
//! states the best length for the records before it; after the probe window it is final.

use std::fs::File;
use std::io;

use tokio::time::Instant;

use super::{PrefixSetting, RecordOpts, RecordReport};
use crate::capture::format::{CaptureWriter, Payload, Record, RecordKind, Side};
use crate::capture::prefix::{DEFAULT_MAX_PREFIX_LEN, PrefixProbe};

/// The capture file, what has been written to it, and the prefix being found.
pub(super) struct Journal {
    writer: CaptureWriter<File>,
    start: Instant,
    pub(super) report: RecordReport,
    prefix: Prefix,
    /// The first write error; the journal writes nothing after it.
    pub(super) failed: Option<io::Error>,
}

/// The prefix being found: the setting, the probe while the window is open, what the header says.
struct Prefix {
    setting: PrefixSetting,
    probe: Option<PrefixProbe>,
    max_messages: u64,
    max_us: u64,
    first_us: Option<u64>,
    stated: usize,
}

impl Journal {
    pub(super) fn new(writer: CaptureWriter<File>, start: Instant, opts: &RecordOpts) -> Journal {
        let stated = opts.prefix_len.initial();
        let probe = (opts.prefix_probe_messages > 0).then(|| PrefixProbe::new(DEFAULT_MAX_PREFIX_LEN.max(stated)));
        let report = RecordReport {
            prefix_len: stated,
            ..RecordReport::default()
        };
        Journal {
            writer,
            start,
            report,
            prefix: Prefix {
                setting: opts.prefix_len,
                probe,
                max_messages: opts.prefix_probe_messages,
                max_us: opts.prefix_probe_ms.saturating_mul(1000),
                first_us: None,
                stated,
            },
            failed: None,
        }
    }

    /// Stamps and writes one record. An error means the capture is broken: the caller must not
    /// relay the message it describes.
    pub(super) fn record(&mut self, conn: u64, kind: RecordKind) -> io::Result<()> {
        if let Some(e) = &self.failed {
            return Err(io::Error::new(e.kind(), e.to_string()));
        }
        let t_us = (self.start.elapsed().as_micros() as u64).max(self.writer.last_t_us());
        if let RecordKind::Message {
            from: Side::Gateway,
            payload: Payload::Binary(bytes),
        } = &kind
        {
            self.probe(conn, t_us, bytes);
        }
        self.count(&kind);
        let record = Record { t_us, conn, kind };
        let result = self.restate().and_then(|()| self.writer.write(&record));
        match result {
            Ok(()) => {
                self.report.records += 1;
                Ok(())
            }
            Err(e) => {
                let again = io::Error::new(e.kind(), e.to_string());
                self.failed = Some(e);
                Err(again)
            }
        }
    }

    fn count(&mut self, kind: &RecordKind) {
        let r = &mut self.report;
        match kind {
            RecordKind::Open { .. } => r.connections += 1,
            RecordKind::Message { from, payload } => {
                let n = match payload {
                    Payload::Binary(_) | Payload::Text(_) => payload.len() as u64,
                    Payload::Ping(_) | Payload::Pong(_) => 0,
                };
                match from {
                    Side::Gateway => r.bytes_gateway += n,
                    Side::Client => r.bytes_client += n,
                }
            }
            RecordKind::Close { .. } => {}
        }
    }

    fn probe(&mut self, conn: u64, t_us: u64, bytes: &[u8]) {
        let p = &mut self.prefix;
        let Some(probe) = &mut p.probe else { return };
        probe.push(conn, bytes);
        let first = *p.first_us.get_or_insert(t_us);
        if probe.messages() >= p.max_messages || t_us.saturating_sub(first) >= p.max_us {
            self.close_probe();
        }
    }

    /// Ends the probe window: the prefix is final from here on. Called when the window is full
    /// and when recording stops.
    pub(super) fn close_probe(&mut self) {
        let Some(probe) = self.prefix.probe.take() else { return };
        let finding = probe.finding();
        self.report.prefix_probed = probe.messages();
        match self.prefix.setting {
            PrefixSetting::Auto => self.report.prefix_len = finding.or(0),
            PrefixSetting::Fixed(n) if finding.prefix_len.is_some() && !probe.agrees(n) => {
                let best = finding.best;
                let given = probe.score(n).unwrap_or_default();
                let warning = format!(
                    "--prefix-len {n} disagrees with the feed: stripping {n} bytes leaves {} valid frames in the first \
                     {} gateway messages, stripping {} leaves {} (the capture keeps {n}, as asked)",
                    given.frames,
                    probe.messages(),
                    best.prefix_len,
                    best.frames
                );
                tracing::warn!("{warning}");
                self.report.prefix_warning = Some(warning);
            }
            PrefixSetting::Fixed(_) => {}
        }
        // Put it back for `restate` to read, then drop it for good.
        self.prefix.probe = Some(probe);
        let _ = self.restate();
        self.prefix.probe = None;
    }

    /// Rewrites the header when the evidence (auto mode) now points at another length.
    fn restate(&mut self) -> io::Result<()> {
        let p = &mut self.prefix;
        let want = match (&p.setting, &p.probe) {
            (PrefixSetting::Auto, Some(probe)) => probe.finding().or(0),
            _ => return Ok(()),
        };
        if want == p.stated {
            return Ok(());
        }
        let value = u16::try_from(want).map_err(io::Error::other)?;
        self.writer.restate_prefix_len(value)?;
        p.stated = want;
        self.report.prefix_len = want;
        Ok(())
    }
}
