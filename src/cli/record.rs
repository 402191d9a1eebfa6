//! `jt808-harness record`: the recording proxy ([`crate::capture::record`]) from the command line.
//! Like every command that listens, its first stdout line is `listening on ws://ADDR` (flushed at
//! once, so a script binding port 0 can read the port); what it records to is said on stderr, and
//! the report when it stops.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::duration::{DAY, between, ms};
use crate::capture::record::{PrefixSetting, RecordError, RecordOpts, RecordReport, Recorder};

/// Arguments of `record`.
#[derive(Debug, Clone, clap::Args)]
pub struct RecordArgs {
    /// Address to accept clients on, e.g. 127.0.0.1:9000 (port 0 picks a free port; the first
    /// stdout line names it).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The real gateway, e.g. ws://10.0.0.5:9001/feed (ws:// only).
    #[arg(long, value_name = "URL")]
    pub upstream: String,
    /// The capture file to write (created or truncated).
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,
    /// Envelope prefix bytes on each gateway message, for the capture header: `auto` finds it
    /// from the first gateway messages (18 for the seed client's feed, 0 for a bare JT808 stream);
    /// a number is written as given and checked against the bytes (a disagreement is warned
    /// about). Recorded bytes are never altered.
    #[arg(long, default_value = "auto", value_name = "auto|N")]
    pub prefix_len: PrefixSetting,
    /// Gateway messages the prefix is found from (the header may be restated until then; 0: no
    /// probe, the header keeps the initial value).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub prefix_probe_messages: u64,
    /// Longest time, from the first gateway message, the prefix is still being found (0s..=1day).
    #[arg(long, alias = "prefix-probe-ms", value_name = "DURATION", default_value = "10s",
          value_parser = between(ms(0), DAY))]
    pub prefix_probe: Duration,
    /// Free text for the capture header's "note".
    #[arg(long)]
    pub note: Option<String>,
    /// Give up connecting to the upstream after this long (0s: no limit; 0s..=1day).
    #[arg(long, alias = "connect-timeout-ms", value_name = "DURATION", default_value = "10s",
          value_parser = between(ms(0), DAY))]
    pub connect_timeout: Duration,
    /// After one side sent a close frame, wait this long for the other side's close before
    /// dropping the connection (0s: no limit; 0s..=1day).
    #[arg(long, alias = "close-grace-ms", value_name = "DURATION", default_value = "5s",
          value_parser = between(ms(0), DAY))]
    pub close_grace: Duration,
    /// A client that has not finished its WebSocket handshake by then is dropped (0s: no limit;
    /// 0s..=1day).
    #[arg(long, alias = "handshake-timeout-ms", value_name = "DURATION", default_value = "10s",
          value_parser = between(ms(0), DAY))]
    pub handshake_timeout: Duration,
    /// Most client connections relayed at once; more are answered HTTP 503.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Largest WebSocket message (and frame) either side may send, in bytes; a larger one ends
    /// its connection (recorded as a close with the reason).
    #[arg(long, default_value_t = 16 << 20, value_parser = clap::value_parser!(u64).range(1..=(1 << 30)))]
    pub max_message_size: u64,
}

/// Whole milliseconds (the ranges keep them small).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RecordArgs {
    /// The recorder's settings.
    pub fn opts(&self) -> RecordOpts {
        RecordOpts {
            prefix_len: self.prefix_len,
            prefix_probe_messages: self.prefix_probe_messages,
            prefix_probe_ms: millis(self.prefix_probe),
            note: self.note.clone(),
            connect_timeout_ms: millis(self.connect_timeout),
            close_grace_ms: millis(self.close_grace),
            handshake_timeout_ms: millis(self.handshake_timeout),
            max_connections: self.max_connections,
            max_message_size: self.max_message_size,
            ..RecordOpts::new(self.listen, self.upstream.clone(), self.out.clone())
        }
    }
}

/// Binds, writes `listening on ws://ADDR` to `out`, says on stderr where it records, and records
/// until `shutdown` completes.
pub async fn run(
    args: &RecordArgs,
    out: &mut (dyn Write + Send),
    shutdown: impl Future<Output = ()>,
) -> Result<RecordReport, RecordError> {
    let recorder = Recorder::bind(args.opts()).await?;
    let listening = writeln!(out, "listening on ws://{}", recorder.local_addr()).and_then(|()| out.flush());
    listening.map_err(|source| RecordError::Capture {
        path: "standard output".into(),
        source,
    })?;
    eprintln!(
        "recording: relayed to {}, written to {}",
        args.upstream,
        args.out.display()
    );
    recorder.run(shutdown).await
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: RecordArgs,
    }

    #[test]
    fn defaults_are_the_recorders_and_old_names_still_work() {
        let a = Cmd::try_parse_from(["record", "--upstream", "ws://10.0.0.5:9001", "--out", "r.jsonl"])
            .unwrap()
            .args;
        let (o, d) = (a.opts(), RecordOpts::new(a.listen, "ws://10.0.0.5:9001", "r.jsonl"));
        assert_eq!(
            (
                o.prefix_len,
                o.prefix_probe_ms,
                o.connect_timeout_ms,
                o.close_grace_ms,
                o.handshake_timeout_ms
            ),
            (
                d.prefix_len,
                d.prefix_probe_ms,
                d.connect_timeout_ms,
                d.close_grace_ms,
                d.handshake_timeout_ms
            )
        );
        assert_eq!(
            (o.max_connections, o.max_message_size),
            (d.max_connections, d.max_message_size)
        );
        let old = Cmd::try_parse_from([
            "record",
            "--upstream",
            "ws://h:1",
            "-o",
            "r.jsonl",
            "--close-grace-ms",
            "250",
            "--handshake-timeout",
            "2s",
        ])
        .unwrap()
        .args;
        assert_eq!(
            (old.opts().close_grace_ms, old.opts().handshake_timeout_ms),
            (250, 2000)
        );
    }
}
