//! `jt808-harness stress`: the command line of a stress run. Parses the options into
//! [`StressOpts`], runs once (or twice for `--jitter both`), prints the figures table, writes the
//! JSON and the HTML report, and says whether the gates passed. `stress merge` ([`run_merge`])
//! does the same for the outputs of a sharded fleet's runs, read back and merged
//! ([`super::merge`]). `--shards N` takes the shard index from `JOB_COMPLETION_INDEX`.
//!
//! Every numeric option has a range (a clap error naming the option and the range): no value can
//! make a run allocate without bound (`--clients`, `--ws-buffer` size per-client state), spin (a
//! zero interval, a storm every nanosecond) or last beyond a week.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;

use super::feed::FeedSettings;
use super::metrics::{Gate, RunFigures};
use super::options::{GatewayPlacement, JOB_INDEX_VAR, ParseError, Shard, StormSpec, StressOpts, parse_duration};
use super::outcome::{Outcome, StressError};
use super::run::run;
use super::{merge, output};
use crate::client::{ClientError, Jitter};
use crate::scenario::validate::{MAX_CLIENT_MS, MAX_DURATION_MS};

pub use super::feed::MAX_CLIENTS;
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
    /// Run one of N shards, its index i from $JOB_COMPLETION_INDEX (a Kubernetes Indexed Job sets
    /// it): the same as `--shard i/N` (1..=1000000).
    #[arg(long, value_name = "N", conflicts_with = "shard",
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_CLIENTS))]
    pub shards: Option<usize>,
    /// Run the gateway in a child process (this binary), so each process needs one open file per
    /// client instead of two, and each side's memory is measured apart.
    #[arg(long, conflicts_with = "url")]
    pub gateway_process: bool,
    /// One numbered frame per client this often, milliseconds (1..=86400000).
    #[arg(long, default_value_t = 1000, value_parser = ms_option(1))]
    pub frame_interval_ms: u64,
    /// Numbered frames per client, then none (1..=4294967295; default: until the drain). Against
    /// `serve --feed stress --frames N` give the same N: the clients then wait for every frame.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=u64::from(u32::MAX)))]
    pub frames: Option<u64>,
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
    /// Measure plain tokio-tungstenite pairs with the same buffers instead of the harness (no
    /// storms, frames or commands): the floor memory per idle connection is held against.
    #[arg(long, conflicts_with = "url")]
    pub raw_pair: bool,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Internal: be the gateway child process of a `--gateway-process` run.
    #[arg(long, hide = true)]
    pub serve_gateway: bool,
    /// `stress merge`: combine shard outputs instead of running.
    #[command(subcommand)]
    pub command: Option<StressCommand>,
}

/// Subcommands of `stress`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum StressCommand {
    /// Combine the outputs of a sharded fleet's runs into one fleet's figures, report and verdict.
    Merge(MergeArgs),
}

/// Arguments of `jt808-harness stress merge`.
#[derive(Debug, Clone, clap::Args)]
pub struct MergeArgs {
    /// Shard outputs: `--report` directories (their outcome.json) or `--json` files.
    #[arg(required = true, value_name = "DIR|FILE")]
    pub paths: Vec<PathBuf>,
    /// Write report.html, figures.json and outcome.json of the fleet into this directory.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Write the fleet's figures as JSON to this file (`-` for stdout, after the table).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Fail when the fleet's reconnect p99 exceeds this many milliseconds (0..=86400000).
    #[arg(long, value_name = "MS", value_parser = ms_option(0))]
    pub max_p99: Option<u64>,
    /// Fail when the fleet's memory per idle connection exceeds this many bytes (1..=1073741824).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..=MAX_RSS_PER_CONN))]
    pub max_rss_per_conn: Option<u64>,
}

impl MergeArgs {
    /// The gate of the fleet, as `stress` sets it for one run.
    pub fn gate(&self) -> Gate {
        gate(self.max_p99, self.max_rss_per_conn)
    }
}

fn gate(max_p99: Option<u64>, max_rss_per_conn: Option<u64>) -> Gate {
    Gate {
        max_p99: max_p99.map(Duration::from_millis),
        max_rss_per_conn,
        nothing_lost: true,
    }
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
            shard: self.shard_from(std::env::var(JOB_INDEX_VAR).ok().as_deref())?,
            frame_interval: ms(self.frame_interval_ms.max(1)),
            frames: self.frames,
            command_interval: ms(self.command_interval_ms),
            connect_rate: self.connect_rate.max(1),
            backoff_min: ms(self.backoff_min_ms),
            backoff_max: ms(self.backoff_max_ms),
            ping_interval: ms(self.ping_interval_ms),
            idle_timeout: ms(self.idle_timeout_ms),
            drain_timeout: self.drain_timeout,
            ws_buffer: self.ws_buffer,
            progress: !self.quiet,
            raw_pair: self.raw_pair,
            label: match jitter {
                Jitter::None => "jitter none".into(),
                Jitter::Full => "jitter full".into(),
            },
            ..StressOpts::new(self.clients)
        })
    }

    /// The gate these arguments set: nothing lost always, thresholds when given.
    pub fn gate(&self) -> Gate {
        gate(self.max_p99, self.max_rss_per_conn)
    }

    /// The shard to run: `--shard`, or with `--shards N` the index from `job_index` (the value of
    /// [`JOB_INDEX_VAR`]).
    pub fn shard_from(&self, job_index: Option<&str>) -> Result<Option<Shard>, StressError> {
        match (self.shard, self.shards) {
            (Some(s), _) => Ok(Some(s)),
            (None, Some(n)) => Shard::from_job_index(n, job_index)
                .map(Some)
                .map_err(|e| StressError::Options(e.to_string())),
            (None, None) => Ok(None),
        }
    }
}

/// Runs `jt808-harness stress`; `Ok(true)` when every run passed its gates.
pub async fn run_cli(args: StressArgs) -> Result<bool, StressError> {
    if let Some(StressCommand::Merge(m)) = &args.command {
        return run_merge(m);
    }
    if args.serve_gateway && args.raw_pair {
        super::raw_pair::serve_child(args.clients, args.ws_buffer).await?;
        return Ok(true);
    }
    if args.serve_gateway {
        let feed = FeedSettings {
            interval: Duration::from_millis(args.frame_interval_ms.max(1)),
            frames: args.frames,
        };
        super::side::serve_gateway(args.clients, args.seed, feed, args.ws_buffer).await?;
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
        outcomes.push(if opts.raw_pair {
            super::raw_pair::run(&opts).await?
        } else {
            run(opts).await?
        });
    }
    let mut out = std::io::stdout().lock();
    let passed = output::print_outcomes(&mut out, &outcomes, &gate)?;
    output::print_verdict(&mut out, passed)?;
    if let Some(path) = &args.json {
        output::write_json(&mut out, path, &outcomes)?;
    }
    if let Some(dir) = &args.report {
        let runs: Vec<RunFigures> = outcomes.iter().map(|o| o.run.clone()).collect();
        output::write_report_dir(&mut out, dir, &runs, &outcomes)?;
    }
    Ok(passed)
}

/// Runs `jt808-harness stress merge`: reads every shard output, prints the fleet's figures (then
/// each shard's), judges the fleet by the gate and writes its JSON and report; `Ok(true)` when it
/// passed.
pub fn run_merge(args: &MergeArgs) -> Result<bool, StressError> {
    let shards = args
        .paths
        .iter()
        .map(|p| merge::read_shard(p))
        .collect::<Result<Vec<_>, _>>()?;
    let merged = merge::merge(&shards)?;
    let fleet: Vec<Outcome> = merged.iter().map(|m| m.merged.clone()).collect();
    let mut out = std::io::stdout().lock();
    let io = |source| StressError::Io {
        what: "writing the figures".into(),
        source,
    };
    let passed = output::print_outcomes(&mut out, &fleet, &args.gate())?;
    let mut runs: Vec<RunFigures> = Vec::new();
    for m in &merged {
        runs.push(m.merged.run.clone());
        for (shard, o) in shards.iter().zip(&m.shards) {
            let mut o = o.clone();
            o.run.label = format!("{}: {}", shard.path.display(), o.run.label);
            output::print_run(&mut out, &o, None).map_err(io)?;
            runs.push(o.run);
        }
    }
    output::print_verdict(&mut out, passed)?;
    if let Some(path) = &args.json {
        output::write_json(&mut out, path, &fleet)?;
    }
    if let Some(dir) = &args.report {
        output::write_report_dir(&mut out, dir, &runs, &fleet)?;
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
