//! `jt808-harness stress`: the command line of a stress run. Parses the options into
//! [`StressOpts`], runs once (or twice for `--jitter both`), prints the figures table, writes the
//! JSON and the HTML report, and says whether the gates passed.
//!
//! Every numeric option has a range (a clap error naming the option and the range): no value can
//! make a run allocate without bound (`--clients`, `--ws-buffer` size per-client state), spin (a
//! zero interval, a storm every nanosecond) or last beyond a week.

use std::io::Write as _;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;

use super::metrics::{Gate, RunFigures, fmt_bytes};
use super::options::{GatewayPlacement, ParseError, Shard, StormSpec, StressOpts, parse_duration};
use super::outcome::{Outcome, StressError};
use super::report;
use super::run::run;
use crate::client::{ClientError, Jitter};
use crate::scenario::validate::{MAX_CLIENT_MS, MAX_DURATION_MS};

/// Most clients of one fleet (every shard together).
pub const MAX_CLIENTS: u64 = 1_000_000;
/// Most clients started per second.
pub const MAX_CONNECT_RATE: u32 = 1_000_000;
/// Smallest and largest WebSocket read buffer per connection, bytes.
pub const WS_BUFFER_RANGE: RangeInclusive<u64> = 256..=(1 << 20);
/// Largest `--max-rss-per-conn` gate, bytes (1 GiB).
pub const MAX_RSS_PER_CONN: u64 = 1 << 30;
/// Shortest storm period (and shortest `--duration`): 1 ms, the timer's resolution.
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// A duration in ms from `lo`, at most [`MAX_CLIENT_MS`] (one day).
fn ms_option(lo: u64) -> RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(lo..=MAX_CLIENT_MS)
}

/// Whether `d` is in `lo..=hi`, else why not (in the option's own units).
fn duration_in(s: &str, lo: Duration, hi: Duration) -> Result<Duration, String> {
    let d = parse_duration(s).map_err(|e| e.to_string())?;
    if (lo..=hi).contains(&d) {
        Ok(d)
    } else {
        Err(format!("{s} is not in {lo:?}..={hi:?}"))
    }
}

/// `--duration`: 1 ms to 7 days.
fn parse_run_duration(s: &str) -> Result<Duration, String> {
    duration_in(s, MIN_PERIOD, Duration::from_millis(MAX_DURATION_MS))
}

/// `--drain-timeout`: 0 to one day.
fn parse_drain_timeout(s: &str) -> Result<Duration, String> {
    duration_in(s, Duration::ZERO, Duration::from_millis(MAX_CLIENT_MS))
}

/// `--storm`: as [`StormSpec`] parses it, with `every` and `start` within 1 ms..=7 days.
fn parse_storm(s: &str) -> Result<StormSpec, String> {
    let spec: StormSpec = s.parse().map_err(|e: ParseError| e.to_string())?;
    let range = MIN_PERIOD..=Duration::from_millis(MAX_DURATION_MS);
    for (key, d) in [("every", Some(spec.every)), ("start", spec.start)] {
        if let Some(d) = d
            && !range.contains(&d)
        {
            return Err(format!("{key}={d:?} is not in {:?}..={:?}", range.start(), range.end()));
        }
    }
    Ok(spec)
}

/// Which backoff jitter the clients use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JitterChoice {
    /// Deterministic exponential backoff: the thundering herd.
    None,
    /// Full jitter (the client's default).
    Full,
    /// The same run twice, without and with jitter; the report compares the attempt peaks.
    Both,
}

/// Arguments of `jt808-harness stress`.
#[derive(Debug, Clone, clap::Args)]
pub struct StressArgs {
    /// Clients in the fleet (1..=1000000).
    #[arg(long, default_value_t = 1000,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_CLIENTS))]
    pub clients: usize,
    /// Length of the storm phase, after every client is connected (`30s`, `2m`, `1500ms`; 1 ms to
    /// 7 days).
    #[arg(long, default_value = "30s", value_parser = parse_run_duration)]
    pub duration: Duration,
    /// A storm schedule: `every=S,fraction=F,mode=close|abort|stall[,start=T]` (every and start
    /// 1 ms to 7 days, fraction 0..=1); repeatable.
    #[arg(long = "storm", value_name = "SPEC", value_parser = parse_storm)]
    pub storms: Vec<StormSpec>,
    /// Seed of the storm choices and of the backoff jitter.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Backoff jitter of the clients.
    #[arg(long, value_enum, default_value_t = JitterChoice::Full)]
    pub jitter: JitterChoice,
    /// Write report.html and figures.json into this directory.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Write the figures as JSON to this file (`-` for stdout, after the table).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Fail when the reconnect p99 exceeds this many milliseconds (0..=86400000).
    #[arg(long, value_name = "MS", value_parser = ms_option(0))]
    pub max_p99: Option<u64>,
    /// Fail when memory per idle connection exceeds this many bytes (1..=1073741824).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..=MAX_RSS_PER_CONN))]
    pub max_rss_per_conn: Option<u64>,
    /// Use this external gateway (`ws://host:port`) instead of starting one; no storms.
    #[arg(long)]
    pub url: Option<String>,
    /// Run only clients i, i+n, i+2n, ... of the fleet (session paths keep their global ids).
    #[arg(long, value_name = "i/n")]
    pub shard: Option<Shard>,
    /// Run the gateway in a child process (this binary), so each process needs one open file per
    /// client instead of two, and each side's memory is measured apart.
    #[arg(long, conflicts_with = "url")]
    pub gateway_process: bool,
    /// One numbered frame per client this often, milliseconds (1..=86400000).
    #[arg(long, default_value_t = 1000, value_parser = ms_option(1))]
    pub frame_interval_ms: u64,
    /// One command per client this often during the storm phase, milliseconds (0: none;
    /// 0..=86400000).
    #[arg(long, default_value_t = 5000, value_parser = ms_option(0))]
    pub command_interval_ms: u64,
    /// Clients started per second (1..=1000000).
    #[arg(long, default_value_t = 2000,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CONNECT_RATE)))]
    pub connect_rate: u32,
    /// Backoff ceiling of the first retry, milliseconds (0..=86400000, at most --backoff-max-ms).
    #[arg(long, default_value_t = 500, value_parser = ms_option(0))]
    pub backoff_min_ms: u64,
    /// Largest backoff delay, milliseconds (0..=86400000).
    #[arg(long, default_value_t = 10_000, value_parser = ms_option(0))]
    pub backoff_max_ms: u64,
    /// Client ping interval, milliseconds (1..=86400000).
    #[arg(long, default_value_t = 2000, value_parser = ms_option(1))]
    pub ping_interval_ms: u64,
    /// Client idle timeout (how long a stalled connection takes to notice), milliseconds
    /// (1..=86400000).
    #[arg(long, default_value_t = 6000, value_parser = ms_option(1))]
    pub idle_timeout_ms: u64,
    /// After the storm phase, wait at most this long for every client, frame and confirmation
    /// (0 to one day).
    #[arg(long, default_value = "30s", value_parser = parse_drain_timeout)]
    pub drain_timeout: Duration,
    /// WebSocket read buffer per connection on both sides, bytes (256..=1048576).
    #[arg(long, default_value_t = 4096,
          value_parser = RangedU64ValueParser::<usize>::new().range(WS_BUFFER_RANGE))]
    pub ws_buffer: usize,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Internal: be the gateway child process of a `--gateway-process` run.
    #[arg(long, hide = true)]
    pub serve_gateway: bool,
}

impl StressArgs {
    /// The options of one run with jitter `jitter`.
    pub fn opts(&self, jitter: Jitter) -> Result<StressOpts, StressError> {
        if self.backoff_min_ms > self.backoff_max_ms {
            return Err(StressError::Client(ClientError::Argument {
                arg: format!("--backoff-min-ms {}", self.backoff_min_ms),
                why: format!("above --backoff-max-ms {}", self.backoff_max_ms),
            }));
        }
        let ms = Duration::from_millis;
        let gateway = match (&self.url, self.gateway_process) {
            (Some(url), _) => GatewayPlacement::External { url: url.clone() },
            (None, true) => GatewayPlacement::ChildProcess {
                exe: std::env::current_exe().map_err(|source| StressError::Io {
                    what: "finding this executable".into(),
                    source,
                })?,
            },
            (None, false) => GatewayPlacement::InProcess,
        };
        Ok(StressOpts {
            clients: self.clients,
            duration: self.duration,
            storms: self.storms.clone(),
            seed: self.seed,
            jitter,
            gateway,
            shard: self.shard,
            frame_interval: ms(self.frame_interval_ms.max(1)),
            command_interval: ms(self.command_interval_ms),
            connect_rate: self.connect_rate.max(1),
            backoff_min: ms(self.backoff_min_ms),
            backoff_max: ms(self.backoff_max_ms),
            ping_interval: ms(self.ping_interval_ms),
            idle_timeout: ms(self.idle_timeout_ms),
            drain_timeout: self.drain_timeout,
            ws_buffer: self.ws_buffer,
            progress: !self.quiet,
            label: match jitter {
                Jitter::None => "jitter none".into(),
                Jitter::Full => "jitter full".into(),
            },
            ..StressOpts::new(self.clients)
        })
    }

    /// The gate these arguments set: nothing lost always, thresholds when given.
    pub fn gate(&self) -> Gate {
        Gate {
            max_p99: self.max_p99.map(Duration::from_millis),
            max_rss_per_conn: self.max_rss_per_conn,
            nothing_lost: true,
        }
    }
}

/// Runs `jt808-harness stress`; `Ok(true)` when every run passed its gates.
pub async fn run_cli(args: StressArgs) -> Result<bool, StressError> {
    if args.serve_gateway {
        super::side::serve_gateway(
            args.clients,
            args.seed,
            Duration::from_millis(args.frame_interval_ms.max(1)),
            args.ws_buffer,
        )
        .await?;
        return Ok(true);
    }
    let jitters: &[Jitter] = match args.jitter {
        JitterChoice::None => &[Jitter::None],
        JitterChoice::Full => &[Jitter::Full],
        JitterChoice::Both => &[Jitter::None, Jitter::Full],
    };
    let gate = args.gate();
    let mut outcomes: Vec<Outcome> = Vec::new();
    for (i, &j) in jitters.iter().enumerate() {
        let mut opts = args.opts(j)?;
        opts.source_offset = i;
        outcomes.push(run(opts).await?);
    }
    let mut passed = true;
    let mut out = std::io::stdout().lock();
    let io = |source| StressError::Io {
        what: "writing the figures".into(),
        source,
    };
    for o in &outcomes {
        writeln!(out, "== {} ==", o.run.label).map_err(io)?;
        write!(out, "{}", o.run.figures).map_err(io)?;
        if let Some(s) = o.sides {
            writeln!(
                out,
                "per idle connection, client side {} / gateway side {}",
                fmt_bytes(s.client_bytes),
                fmt_bytes(s.gateway_bytes)
            )
            .map_err(io)?;
        }
        let violations = gate.check(&o.run.figures);
        for v in &violations {
            writeln!(out, "FAIL: {v}").map_err(io)?;
        }
        for p in &o.problems {
            writeln!(out, "FAIL: {p}").map_err(io)?;
        }
        passed &= violations.is_empty() && o.problems.is_empty();
    }
    if let [a, b] = outcomes.as_slice() {
        let (x, y) = (&a.run.figures.attempts, &b.run.figures.attempts);
        writeln!(
            out,
            "attempts peak: {} {} / 1 s, {} / 100 ms; {} {} / 1 s, {} / 100 ms",
            a.run.label, x.peak_per_second, x.peak_per_100ms, b.run.label, y.peak_per_second, y.peak_per_100ms
        )
        .map_err(io)?;
    }
    writeln!(out, "{}", if passed { "PASS" } else { "FAIL" }).map_err(io)?;
    let runs: Vec<RunFigures> = outcomes.iter().map(|o| o.run.clone()).collect();
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&outcomes).map_err(|e| io(std::io::Error::other(e)))?;
        if path.as_os_str() == "-" {
            writeln!(out, "{json}").map_err(io)?;
        } else {
            std::fs::write(path, json + "\n").map_err(|source| StressError::Io {
                what: format!("writing {}", path.display()),
                source,
            })?;
        }
    }
    if let Some(dir) = &args.report {
        let path = report::write_report(dir, &runs).map_err(|source| StressError::Io {
            what: "writing the report".into(),
            source,
        })?;
        writeln!(out, "report: {}", path.display()).map_err(io)?;
    }
    Ok(passed)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::stress::metrics::StormMode;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: StressArgs,
    }

    fn parse(argv: &[&str]) -> Result<StressArgs, clap::Error> {
        Cmd::try_parse_from(std::iter::once("stress").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn the_options_become_a_run() {
        let a = parse(&[
            "--clients",
            "10000",
            "--duration",
            "40s",
            "--storm",
            "every=30s,start=10s,fraction=0.3,mode=close",
            "--storm",
            "every=30s,start=20s,fraction=0.3,mode=stall",
            "--jitter",
            "both",
            "--shard",
            "2/4",
            "--max-p99",
            "2000",
            "--max-rss-per-conn",
            "32768",
        ])
        .unwrap();
        assert_eq!(a.jitter, JitterChoice::Both);
        let o = a.opts(Jitter::None).unwrap();
        assert_eq!((o.clients, o.duration), (10_000, Duration::from_secs(40)));
        assert_eq!(o.storms.len(), 2);
        assert_eq!(o.storms[1].mode, StormMode::Stall);
        assert_eq!(o.shard, Some(Shard { index: 2, count: 4 }));
        assert_eq!(o.gateway, GatewayPlacement::InProcess);
        assert_eq!(o.label, "jitter none");
        let g = a.gate();
        assert_eq!(
            (g.max_p99, g.max_rss_per_conn, g.nothing_lost),
            (Some(Duration::from_millis(2000)), Some(32768), true)
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_option_named() {
        let e = parse(&["--storm", "every=1,fraction=3"]).err().unwrap().to_string();
        assert!(e.contains("--storm") && e.contains("outside 0..=1"), "{e}");
        let e = parse(&["--shard", "4/4"]).err().unwrap().to_string();
        assert!(e.contains("--shard"), "{e}");
        assert!(parse(&["--url", "ws://h:1", "--gateway-process"]).is_err());
    }
}
