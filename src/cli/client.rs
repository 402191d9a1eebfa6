//! `jt808-harness client`: run the client against a gateway and print what it did as JSON Lines
//! on stdout (one [`Event`](crate::client::Event) per line, messages in the `decode` shape);
//! progress and problems are logged with `tracing` on stderr.
//!
//! Every numeric option has a range, the one a scenario's `[client]` section allows
//! ([`crate::scenario::validate`]): no value can make the client allocate without bound (a queue
//! of 2^64 entries), spin (a ping interval of 0) or wait beyond a day; a value outside it is a
//! clap error naming the option and the range. Durations take the one form of
//! [`super::duration`]; the `--*-ms` names they had stay as aliases.

use std::io::Write;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use tokio::time::{Instant, sleep_until};

use super::duration::{self, Bare, DAY, WEEK, between, ms};
use crate::client::backoff::BackoffConfig;
use crate::client::events::EventKind;
use crate::client::outbox::OutboxConfig;
use crate::client::{Client, ClientConfig, ClientError};
use crate::codec::reassembly::ReassemblyConfig;
use crate::codec::{DecodeEvent, Decoder, DecoderConfig, Message};
use crate::scenario::validate::{MAX_PREFIX_LEN, MAX_QUEUE_CAPACITY};

/// Most messages `--count` may wait for.
pub const MAX_COUNT: u64 = 1_000_000_000_000;
/// Most re-sends of one command (as a scenario's `max_resends`).
pub const MAX_RESENDS: u32 = 1000;
/// Largest `--backoff-factor` (as a scenario's `backoff_factor`); the smallest is 1.0.
pub const MAX_BACKOFF_FACTOR: f64 = 100.0;

/// `--backoff-factor`: a finite number within 1.0..=100.0.
fn parse_factor(s: &str) -> Result<f64, String> {
    let f: f64 = s.parse().map_err(|e| format!("{s:?} is not a number: {e}"))?;
    if f.is_finite() && (1.0..=MAX_BACKOFF_FACTOR).contains(&f) {
        Ok(f)
    } else {
        Err(format!("{s} is not in 1.0..={MAX_BACKOFF_FACTOR:.1}"))
    }
}

/// Arguments of `jt808-harness client`.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Gateway URL, ws:// or wss://.
    #[arg(long)]
    pub url: String,
    /// Envelope bytes at the start of every binary message, skipped (the seed's gateway uses 18;
    /// 0..=4096).
    #[arg(long, default_value_t = 0,
          value_parser = RangedU64ValueParser::<usize>::new().range(0..=MAX_PREFIX_LEN as u64))]
    pub prefix_len: usize,
    /// A message to send once connected: the hex of one JT808 frame (7E ... 7E; the delimiters may
    /// be left out). Its serial is replaced by the client's. Repeat for several, sent in order.
    #[arg(long = "send", value_name = "HEX")]
    pub send: Vec<String>,
    /// Exit (status 0) after this many decoded messages (1..=10^12).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
    pub count: Option<u64>,
    /// Exit (status 0) after this long without a decoded message (`5s`, `500ms`; above 0, at most
    /// 7 days). A bare number is SECONDS here, the one option where it is not milliseconds.
    //
    // Why: `--idle-exit` took bare seconds before the convention and old scripts say
    // `--idle-exit 5`. Reading that as 5 ms would make them exit at once, and a new name with the
    // old one hidden would leave the scripts on a name the help no longer shows; so the name stays,
    // takes every suffixed form like the others, and keeps its bare unit, said here and in the
    // README.
    #[arg(long, value_name = "DURATION",
          value_parser = between(Duration::from_nanos(1), WEEK).bare(Bare::Seconds))]
    pub idle_exit: Option<Duration>,
    /// Connect timeout: transport, TLS and handshake (1ms..=1day).
    #[arg(long, alias = "connect-timeout-ms", value_name = "DURATION", default_value = "10s",
          value_parser = between(ms(1), DAY))]
    pub connect_timeout: Duration,
    /// WebSocket ping interval (1ms..=1day).
    #[arg(long, alias = "ping-interval-ms", value_name = "DURATION", default_value = "15s",
          value_parser = between(ms(1), DAY))]
    pub ping_interval: Duration,
    /// Nothing read for this long means the connection is dead (1ms..=1day).
    #[arg(long, alias = "idle-timeout-ms", value_name = "DURATION", default_value = "45s",
          value_parser = between(ms(1), DAY))]
    pub idle_timeout: Duration,
    /// Backoff: ceiling of the first retry delay (0s..=1day, at most --backoff-max).
    #[arg(long, alias = "backoff-min-ms", value_name = "DURATION", default_value = "500ms",
          value_parser = between(ms(0), DAY))]
    pub backoff_min: Duration,
    /// Backoff: largest delay (0s..=1day).
    #[arg(long, alias = "backoff-max-ms", value_name = "DURATION", default_value = "30s",
          value_parser = between(ms(0), DAY))]
    pub backoff_max: Duration,
    /// Backoff: growth of the ceiling per retry (1.0..=100.0).
    #[arg(long, default_value_t = 2.0, value_parser = parse_factor)]
    pub backoff_factor: f64,
    /// Backoff: a connection up this long resets the retry count (0s..=1day).
    #[arg(long, alias = "backoff-reset-ms", value_name = "DURATION", default_value = "10s",
          value_parser = between(ms(0), DAY))]
    pub backoff_reset: Duration,
    /// Give up after this many failed retries in a row (none: never).
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Seed of the backoff jitter.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Send queue capacity, messages (1..=1000000).
    #[arg(long, default_value_t = 1024,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_QUEUE_CAPACITY as u64))]
    pub queue_capacity: usize,
    /// Wait for a command's 0x0001 before re-sending it (1ms..=1day).
    #[arg(long, alias = "confirm-timeout-ms", value_name = "DURATION", default_value = "10s",
          value_parser = between(ms(1), DAY))]
    pub confirm_timeout: Duration,
    /// Re-sends of an unconfirmed command before it is given up (0..=1000).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=MAX_RESENDS as i64))]
    pub max_resends: u32,
    /// Ask for the missing packets of a stalled (or, without --retransmit-wait, expired) packet
    /// group with 0x8003.
    #[arg(long)]
    pub retransmit_requests: bool,
    /// Keep a packet group idle for the group timeout open this much longer for the packets 0x8003
    /// asks for (0s: give it up at the timeout; 0s..=1day).
    #[arg(long, alias = "retransmit-wait-ms", value_name = "DURATION", default_value = "0s",
          value_parser = between(ms(0), DAY))]
    pub retransmit_wait: Duration,
}

impl ClientArgs {
    /// Checks what a single option's range cannot: the backoff floor not above its ceiling.
    pub fn check(&self) -> Result<(), ClientError> {
        if self.backoff_min > self.backoff_max {
            return Err(ClientError::Argument {
                arg: format!("--backoff-min {}", duration::show(self.backoff_min)),
                why: format!("above --backoff-max {}", duration::show(self.backoff_max)),
            });
        }
        Ok(())
    }

    /// The client settings these arguments describe.
    pub fn config(&self) -> ClientConfig {
        ClientConfig {
            prefix_len: self.prefix_len,
            connect_timeout: self.connect_timeout,
            ping_interval: self.ping_interval,
            idle_timeout: self.idle_timeout,
            backoff: BackoffConfig {
                min: self.backoff_min,
                max: self.backoff_max,
                factor: self.backoff_factor,
                reset_after: self.backoff_reset,
                max_attempts: self.max_attempts,
                seed: self.seed,
                ..BackoffConfig::default()
            },
            outbox: OutboxConfig {
                capacity: self.queue_capacity,
                confirm_timeout: self.confirm_timeout,
                max_resends: self.max_resends,
                ..OutboxConfig::default()
            },
            retransmit_requests: self.retransmit_requests,
            decoder: DecoderConfig {
                reassembly: ReassemblyConfig {
                    retransmit_wait: self.retransmit_wait,
                    ..ReassemblyConfig::default()
                },
                ..DecoderConfig::default()
            },
            ..ClientConfig::default()
        }
    }
}

/// Parses one `--send` argument: the hex of one JT808 frame.
pub fn parse_send_hex(hex_text: &str) -> Result<Message, ClientError> {
    let bad = |why: String| ClientError::Argument {
        arg: format!("--send {hex_text}"),
        why,
    };
    let clean: String = hex_text.chars().filter(|c| !c.is_whitespace()).collect();
    let mut bytes = hex::decode(&clean).map_err(|e| bad(format!("not hex: {e}")))?;
    if bytes.first() != Some(&0x7E) {
        bytes.insert(0, 0x7E);
        bytes.push(0x7E);
    }
    let mut decoder = Decoder::default();
    let mut found = Vec::new();
    decoder.push(&bytes, Duration::ZERO, |e| found.push(e));
    decoder.end_stream(|e| found.push(e));
    match found.as_slice() {
        [DecodeEvent::Message(m)] => Ok(m.clone()),
        [DecodeEvent::Rejected(e), ..] => Err(bad(e.to_string())),
        [] => Err(bad("no frame found".into())),
        _ => Err(bad(format!(
            "expected exactly one frame, found {} items (use one --send per frame)",
            found.len()
        ))),
    }
}

/// Runs `jt808-harness client`: connects, sends the `--send` messages, prints every event as one
/// JSON line on stdout until `--count` messages were decoded, `--idle-exit` passed without one, or
/// the client gave up (an error, so a non-zero exit).
pub async fn run(args: ClientArgs) -> Result<(), ClientError> {
    args.check()?;
    let messages = args
        .send
        .iter()
        .map(|h| parse_send_hex(h))
        .collect::<Result<Vec<_>, _>>()?;
    let idle_exit = args.idle_exit;
    let (client, mut events) = Client::connect(&args.url, args.config())?;
    for m in messages {
        client.send(m).map_err(|e| ClientError::Argument {
            arg: "--send".into(),
            why: e.to_string(),
        })?;
    }
    let mut decoded = 0u64;
    let mut idle_deadline = idle_exit.map(|d| Instant::now() + d);
    let stdout = std::io::stdout();
    loop {
        let event = tokio::select! {
            biased;
            e = events.recv() => e,
            _ = async {
                match idle_deadline {
                    Some(t) => sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => {
                tracing::info!("no message for {:?}, exiting", idle_exit.unwrap_or_default());
                break;
            }
        };
        let Some(event) = event else { break };
        log(&event.kind);
        {
            let mut out = stdout.lock();
            serde_json::to_writer(&mut out, &event).map_err(std::io::Error::other)?;
            out.write_all(b"\n")?;
            out.flush()?;
        }
        if let EventKind::Message(_) = event.kind {
            decoded += 1;
            idle_deadline = idle_exit.map(|d| Instant::now() + d);
            if args.count.is_some_and(|n| decoded >= n) {
                tracing::info!("{decoded} messages decoded, exiting");
                break;
            }
        }
    }
    client.shutdown().await
}

fn log(kind: &EventKind) {
    match kind {
        EventKind::Connected { attempt } => tracing::info!(attempt, "connected"),
        EventKind::ConnectFailed { attempt, stage, error } => {
            tracing::warn!(attempt, ?stage, %error, "connect failed")
        }
        EventKind::Disconnected { reason, uptime_ms } => tracing::warn!(?reason, uptime_ms, "disconnected"),
        EventKind::Backoff { retry, delay_ms } => tracing::info!(retry, delay_ms, "backing off"),
        EventKind::GaveUp { retries } => tracing::error!(retries, "gave up reconnecting"),
        EventKind::FrameRejected { error, .. } => tracing::warn!(%error, "frame rejected"),
        EventKind::DeliveryFailed { serial, msg_id, .. } => {
            tracing::error!(
                serial,
                msg_id = format_args!("0x{msg_id:04X}"),
                "command never confirmed"
            )
        }
        EventKind::QueueFull { capacity, .. } => tracing::error!(capacity, "send queue full"),
        _ => tracing::debug!(?kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_hex_takes_a_whole_frame_with_or_without_delimiters() {
        // 0x8001 platform general response, 2013, phone 013800138000, serial 5: answer serial 1 of 0x0200.
        let m = parse_send_hex("7E 8001 0005 013800138000 0005 0001 0200 00 28 7E").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((m.header.msg_id, m.header.serial), (0x8001, 5));
        let bare = parse_send_hex("8001 0005 013800138000 0005 0001 0200 00 28").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bare, m);
        assert!(matches!(parse_send_hex("zz"), Err(ClientError::Argument { .. })));
        assert!(matches!(
            parse_send_hex("8001 0005 013800138000 0005 0001 0200 00 00"),
            Err(ClientError::Argument { .. })
        ));
    }
}
