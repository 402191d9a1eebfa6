//! `jt808-harness stress`: the command line of a stress run. Parses the options into
//! [`StressOpts`], runs once (or twice for `--jitter both`), prints the figures table, writes the
//! JSON and the HTML report, and says whether the gates passed. `stress merge` ([`run_merge`])
//! does the same for the outputs of a sharded fleet's runs, read back and merged
//! ([`crate::stress::merge`]). `--shards N` takes the shard index from `JOB_COMPLETION_INDEX`.
//!
//! Every numeric option has a range (a clap error naming the option and the range): no value can
//! make a run allocate without bound (`--clients`, `--ws-buffer` size per-client state), spin (a
//! zero interval, a storm every nanosecond) or last beyond a week. Durations, a storm's `every=`
//! and `start=` included, take the one form of [`super::duration`].

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;

use super::duration::{self, Bare, DAY, WEEK, between, ms};
use crate::client::{ClientError, Jitter};
use crate::stress::feed::FeedSettings;
use crate::stress::metrics::{Gate, RunFigures};
use crate::stress::options::{GatewayPlacement, JOB_INDEX_VAR, Shard, StormMode, StormSpec, StressOpts};
use crate::stress::outcome::{Outcome, StressError};
use crate::stress::{merge, output, run};

pub use crate::stress::feed::MAX_CLIENTS;
/// Most clients started per second.
pub const MAX_CONNECT_RATE: u32 = 1_000_000;
/// Smallest and largest WebSocket read buffer per connection, bytes.
pub const WS_BUFFER_RANGE: RangeInclusive<u64> = 256..=(1 << 20);
/// Largest `--max-rss-per-conn` gate, bytes (1 GiB).
pub const MAX_RSS_PER_CONN: u64 = 1 << 30;
/// Shortest storm period (and shortest `--duration`): 1 ms, the timer's resolution.
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// `--storm every=S,fraction=F[,mode=close|abort|stall][,start=T]`: `every` and `start` durations
/// within 1ms..=7days (a bare number is milliseconds, with a note: it was seconds before), `fraction`
/// within 0..=1, `mode` abort unless given.
pub fn parse_storm(s: &str) -> Result<StormSpec, String> {
    let bad = |why: String| format!("--storm {s:?}: {why}");
    let (mut every, mut start, mut fraction, mut mode) = (None, None, None, None);
    let range = between(MIN_PERIOD, WEEK);
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("{part:?} is not key=value")))?;
        let time = |key: &str| -> Result<Duration, String> {
            let d = range.check(v).map_err(|e| bad(format!("{key}={v}: {e}")))?;
            duration::note_if_bare(&format!("--storm {key}="), v, d);
            Ok(d)
        };
        match k.trim() {
            "every" => every = Some(time("every")?),
            "start" => start = Some(time("start")?),
            "fraction" => {
                let f: f64 = v
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("fraction {v:?} is not a number")))?;
                if !(0.0..=1.0).contains(&f) {
                    return Err(bad(format!("fraction {f} is outside 0..=1")));
                }
                fraction = Some(f);
            }
            "mode" => mode = Some(v.parse::<StormMode>().map_err(bad)?),
            other => return Err(bad(format!("unknown key {other:?} (every, start, fraction, mode)"))),
        }
    }
    Ok(StormSpec {
        every: every.ok_or_else(|| bad("every= is missing".into()))?,
        start,
        fraction: fraction.ok_or_else(|| bad("fraction= is missing".into()))?,
        mode: mode.unwrap_or(StormMode::Abort),
    })
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

/// What a run and a merge both write and judge by: the report, the JSON and the gate (one
/// struct, flattened into both, so the two commands cannot drift apart).
#[derive(Debug, Clone, clap::Args)]
pub struct VerdictArgs {
    /// Write report.html, figures.json and outcome.json into this directory.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Write the figures as JSON to this file; `--json` alone or `--json -`: to stdout, after the
    /// table.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    pub json: Option<PathBuf>,
    /// Fail when the reconnect p99 exceeds this (0s..=1day; a bare number is milliseconds, as it
    /// always was here).
    #[arg(long, value_name = "DURATION", value_parser = between(ms(0), DAY))]
    pub max_p99: Option<Duration>,
    /// Fail when memory per idle connection exceeds this many bytes (1..=1073741824).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..=MAX_RSS_PER_CONN))]
    pub max_rss_per_conn: Option<u64>,
}

impl VerdictArgs {
    /// The gate these arguments set: nothing lost always, thresholds when given.
    pub fn gate(&self) -> Gate {
        Gate {
            max_p99: self.max_p99,
            max_rss_per_conn: self.max_rss_per_conn,
            nothing_lost: true,
        }
    }

    /// Prints the verdict and writes the JSON and the report.
    fn write(
        &self,
        out: &mut dyn std::io::Write,
        passed: bool,
        runs: &[RunFigures],
        outcomes: &[Outcome],
    ) -> Result<(), StressError> {
        output::print_verdict(out, passed)?;
        if let Some(path) = &self.json {
            output::write_json(out, path, outcomes)?;
        }
        if let Some(dir) = &self.report {
            output::write_report_dir(out, dir, runs, outcomes)?;
        }
        Ok(())
    }
}

/// Arguments of `jt808-harness stress`.
#[derive(Debug, Clone, clap::Args)]
pub struct StressArgs {
    /// Clients in the fleet (1..=1000000).
    #[arg(long, default_value_t = 1000,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_CLIENTS))]
    pub clients: usize,
    /// Length of the storm phase, after every client is connected (`30s`, `2m`, `1500ms`;
    /// 1ms..=7days).
    #[arg(long, value_name = "DURATION", default_value = "30s",
          value_parser = between(MIN_PERIOD, WEEK).bare(Bare::MillisWasSeconds))]
    pub duration: Duration,
    /// A storm schedule: `every=D,fraction=F,mode=close|abort|stall[,start=D]` (every and start
    /// 1ms..=7days, fraction 0..=1); repeatable.
    #[arg(long = "storm", value_name = "SPEC", value_parser = parse_storm)]
    pub storms: Vec<StormSpec>,
    /// Seed of the storm choices and of the backoff jitter.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Backoff jitter of the clients.
    #[arg(long, value_enum, default_value_t = JitterChoice::Full)]
    pub jitter: JitterChoice,
    /// Report, JSON and gate.
    #[command(flatten)]
    pub verdict: VerdictArgs,
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
    /// One numbered frame per client this often (1ms..=1day).
    #[arg(long, alias = "frame-interval-ms", value_name = "DURATION", default_value = "1s",
          value_parser = between(ms(1), DAY))]
    pub frame_interval: Duration,
    /// Numbered frames per client, then none (1..=4294967295; none: until the drain). Against
    /// `serve --feed stress --frames N` give the same N: the clients then wait for every frame.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=u64::from(u32::MAX)))]
    pub frames: Option<u64>,
    /// One command per client this often during the storm phase (0s: none; 0s..=1day).
    #[arg(long, alias = "command-interval-ms", value_name = "DURATION", default_value = "5s",
          value_parser = between(ms(0), DAY))]
    pub command_interval: Duration,
    /// Clients started per second (1..=1000000).
    #[arg(long, default_value_t = 2000,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CONNECT_RATE)))]
    pub connect_rate: u32,
    /// Backoff ceiling of the first retry (0s..=1day, at most --backoff-max).
    #[arg(long, alias = "backoff-min-ms", value_name = "DURATION", default_value = "500ms",
          value_parser = between(ms(0), DAY))]
    pub backoff_min: Duration,
    /// Largest backoff delay (0s..=1day).
    #[arg(long, alias = "backoff-max-ms", value_name = "DURATION", default_value = "10s",
          value_parser = between(ms(0), DAY))]
    pub backoff_max: Duration,
    /// Client ping interval (1ms..=1day).
    #[arg(long, alias = "ping-interval-ms", value_name = "DURATION", default_value = "2s",
          value_parser = between(ms(1), DAY))]
    pub ping_interval: Duration,
    /// Client idle timeout: how long a stalled connection takes to notice (1ms..=1day).
    #[arg(long, alias = "idle-timeout-ms", value_name = "DURATION", default_value = "6s",
          value_parser = between(ms(1), DAY))]
    pub idle_timeout: Duration,
    /// After the storm phase, wait at most this long for every client, frame and confirmation
    /// (0s..=1day).
    #[arg(long, value_name = "DURATION", default_value = "30s",
          value_parser = between(ms(0), DAY).bare(Bare::MillisWasSeconds))]
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
    /// The fleet's report, JSON and gate, as for one run.
    #[command(flatten)]
    pub verdict: VerdictArgs,
}

impl StressArgs {
    /// The options of one run with jitter `jitter`.
    pub fn opts(&self, jitter: Jitter) -> Result<StressOpts, StressError> {
        if self.backoff_min > self.backoff_max {
            return Err(StressError::Client(ClientError::Argument {
                arg: format!("--backoff-min {}", duration::show(self.backoff_min)),
                why: format!("above --backoff-max {}", duration::show(self.backoff_max)),
            }));
        }
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
            frame_interval: self.frame_interval.max(MIN_PERIOD),
            frames: self.frames,
            command_interval: self.command_interval,
            connect_rate: self.connect_rate.max(1),
            backoff_min: self.backoff_min,
            backoff_max: self.backoff_max,
            ping_interval: self.ping_interval,
            idle_timeout: self.idle_timeout,
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
        self.verdict.gate()
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
        crate::stress::raw_pair::serve_child(args.clients, args.ws_buffer).await?;
        return Ok(true);
    }
    if args.serve_gateway {
        let feed = FeedSettings {
            interval: args.frame_interval.max(MIN_PERIOD),
            frames: args.frames,
        };
        crate::stress::side::serve_gateway(args.clients, args.seed, feed, args.ws_buffer).await?;
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
            crate::stress::raw_pair::run(&opts).await?
        } else {
            run(opts).await?
        });
    }
    let mut out = std::io::stdout().lock();
    let passed = output::print_outcomes(&mut out, &outcomes, &gate)?;
    let runs: Vec<RunFigures> = outcomes.iter().map(|o| o.run.clone()).collect();
    args.verdict.write(&mut out, passed, &runs, &outcomes)?;
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
    let passed = output::print_outcomes(&mut out, &fleet, &args.verdict.gate())?;
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
    args.verdict.write(&mut out, passed, &runs, &fleet)?;
    Ok(passed)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

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
    fn storm_specs_parse_and_name_what_is_wrong() {
        let s = parse_storm("every=10s,fraction=0.3,mode=stall").unwrap();
        assert_eq!(
            (s.every, s.start, s.fraction, s.mode),
            (Duration::from_secs(10), None, 0.3, StormMode::Stall)
        );
        let s = parse_storm("every=1.5s,start=500,fraction=1").unwrap();
        assert_eq!(
            (s.every, s.start, s.mode),
            (ms(1500), Some(ms(500)), StormMode::Abort),
            "a bare number is milliseconds"
        );
        for (bad, why) in [
            ("fraction=0.3", "every= is missing"),
            ("every=1s,fraction=2", "outside 0..=1"),
            ("every=1s,fraction=0.1,mode=boom", "close, abort or stall"),
            ("every=0s,fraction=1", "every=0s: 0s is not in 1ms..=7days"),
            ("every=8days,fraction=1", "not in 1ms..=7days"),
            ("every=1s,fraction=1,when=2", "unknown key"),
        ] {
            let e = parse_storm(bad).unwrap_err();
            assert!(e.starts_with("--storm") && e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_values_are_refused_with_the_option_named() {
        let e = parse(&["--storm", "every=1s,fraction=3"]).err().unwrap().to_string();
        assert!(e.contains("--storm") && e.contains("outside 0..=1"), "{e}");
        let e = parse(&["--shard", "4/4"]).err().unwrap().to_string();
        assert!(e.contains("--shard"), "{e}");
        assert!(parse(&["--url", "ws://h:1", "--gateway-process"]).is_err());
    }
}
