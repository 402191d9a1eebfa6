//! `jt808-harness explore SCENARIO... [--runs N | --time B] [--seed S] [--jobs J] [--out DIR]`.

use std::io::{IsTerminal, Write};

use clap::builder::RangedU64ValueParser;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::invariants::{Budgets, DEFAULT_GRACE_MS, DEFAULT_MAX_EVENTS};
use super::report::ScenarioReport;
use super::shrink::DEFAULT_MAX_SHRINK_RUNS;
use super::{FaultsChoice, Limit, Settings, Target};
use crate::scenario::Scenario;

/// Longest `--time`: 7 days.
pub const MAX_TIME: Duration = Duration::from_secs(7 * 86_400);
/// Most `--runs` per scenario.
pub const MAX_RUNS: u64 = 1_000_000_000;

/// Arguments of `explore`.
#[derive(Debug, clap::Args)]
pub struct ExploreArgs {
    /// Scenario files or directories (every `*.toml` in them). A file may hold an `[explore]`
    /// table with the schedule's bounds (README, "Searching fault schedules").
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Runs per scenario.
    #[arg(long, default_value_t = 100, conflicts_with = "time", value_parser = clap::value_parser!(u64).range(1..=MAX_RUNS))]
    pub runs: u64,
    /// Search for this long instead (`60s`, `10m`, `500ms`, `1h`), split evenly over the scenarios.
    /// The number of runs then depends on the machine (it is reported); each run stays exactly
    /// reproducible from its seed. Shrinking comes after, outside the budget.
    #[arg(long, value_parser = parse_time)]
    pub time: Option<Duration>,
    /// Base seed; run i's seed is derived from it and i (src/explore/schedule.rs).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Worker threads, each with its own current-thread runtime. Default: the cores. Results do not
    /// depend on it.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub jobs: Option<u64>,
    /// Where reproducers and their transcripts are written.
    #[arg(long, default_value = "explore-out")]
    pub out: PathBuf,
    /// Schedule bounds: the scenario's `[explore]` table or else the built-in survivable faults
    /// (auto), always the built-in ones (random), or only the table (scenario).
    #[arg(long, value_enum, default_value_t = FaultsChoice::Auto)]
    pub faults: FaultsChoice,
    /// One JSON document on stdout instead of a line per scenario.
    #[arg(long)]
    pub json: bool,
    /// No progress bar and no timing line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// A run with more transcript events than this fails (`event_budget`: a livelock).
    #[arg(long, default_value_t = DEFAULT_MAX_EVENTS, value_parser = RangedU64ValueParser::<usize>::new().range(1..=100_000_000))]
    pub max_events: usize,
    /// A run whose last event comes later than its duration_ms plus this fails (`time_budget`), ms.
    #[arg(long, default_value_t = DEFAULT_GRACE_MS, value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    pub grace_ms: u64,
    /// Most runs one shrink makes; a shrink that reaches it says so.
    #[arg(long, default_value_t = DEFAULT_MAX_SHRINK_RUNS, value_parser = RangedU64ValueParser::<usize>::new().range(1..=10_000_000))]
    pub max_shrink_runs: usize,
    /// Most distinct failing checks shrunk to a reproducer per scenario (the first failing run of
    /// each).
    #[arg(long, default_value_t = 3, value_parser = RangedU64ValueParser::<usize>::new().range(1..=100))]
    pub reproducers: usize,
    /// A run still going after this many seconds of wall-clock time is a livelock: its schedule is
    /// written unshrunk (`<scenario>-hang-<seed>.toml` in --out) and explore exits with status 2.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub hang_secs: u64,
}

/// `60s`, `10m`, `500ms`, `1h`, or plain seconds; up to [`MAX_TIME`].
pub fn parse_time(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number with a unit, like 60s, 10m, 500ms or 1h"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        other => return Err(format!("{s:?}: unknown unit {other:?} (ms, s, m or h)")),
    };
    if d.is_zero() || d > MAX_TIME {
        return Err(format!("{s:?} is out of range 1ms..=7 days"));
    }
    Ok(d)
}

impl ExploreArgs {
    fn settings(&self) -> Settings {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Settings {
            seed: self.seed,
            jobs: self.jobs.map_or(cores, |j| j as usize),
            budgets: Budgets {
                max_events: self.max_events,
                grace_ms: self.grace_ms,
            },
            max_shrink_runs: self.max_shrink_runs,
            reproducers: self.reproducers,
            hang: Some((Duration::from_secs(self.hang_secs), self.out.clone())),
        }
    }

    fn targets(&self) -> Result<Vec<Target>, String> {
        let mut out = Vec::new();
        for p in &self.paths {
            for f in Scenario::discover(p).map_err(|e| e.to_string())? {
                out.push(super::target(&f, self.faults)?);
            }
        }
        Ok(out)
    }
}

/// Runs `explore`; `Ok(false)` when any run failed (reported on stdout).
pub fn run(args: &ExploreArgs) -> Result<bool, String> {
    let targets = args.targets()?;
    let s = args.settings();
    let started = Instant::now();
    let per_scenario = args.time.map(|t| t / targets.len().max(1) as u32);
    let bar = progress(args, targets.len() as u64);
    let mut reports = Vec::new();
    let mut total_runs = 0;
    for t in &targets {
        let limit = match per_scenario {
            Some(d) => Limit::Until(Instant::now() + d),
            None => Limit::Runs(args.runs),
        };
        if let Some(b) = &bar {
            b.set_message(t.name.clone());
        }
        let tick = || {
            if let Some(b) = &bar {
                b.inc(1);
            }
        };
        let results = t.search(&s, limit, &tick)?;
        total_runs += results.len();
        let findings = super::findings(t, &results, &s)?;
        let report = ScenarioReport::new(t, &results, &findings, &args.out, s.budgets)?;
        if !args.json {
            if let Some(b) = &bar {
                b.suspend(|| print(&report.text()));
            } else {
                print(&report.text());
            }
        }
        reports.push(report);
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let failed = reports.iter().any(|r| r.failures > 0);
    if args.json {
        let doc = serde_json::json!({"seed": args.seed, "failed": failed, "scenarios": reports});
        print(&format!("{doc:#}\n"));
    }
    if !args.quiet {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "explore: {total_runs} runs in {secs:.2} s ({:.0} runs/s, {} jobs, shrinking included)",
            total_runs as f64 / secs.max(1e-9),
            s.jobs
        );
    }
    Ok(!failed)
}

fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// A progress bar with runs per second, on a terminal only.
fn progress(args: &ExploreArgs, scenarios: u64) -> Option<indicatif::ProgressBar> {
    if args.quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let style =
        indicatif::ProgressStyle::with_template("{spinner} {pos}/{len} runs ({per_sec}) {elapsed_precise} {wide_msg}")
            .ok()?;
    let len = if args.time.is_some() {
        0
    } else {
        args.runs.saturating_mul(scenarios)
    };
    let b = indicatif::ProgressBar::new(len).with_style(style);
    b.enable_steady_tick(Duration::from_millis(200));
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_take_units_and_are_range_checked() {
        assert_eq!(parse_time("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_time("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_time("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_time("2"), Ok(Duration::from_secs(2)));
        assert!(parse_time("0s").unwrap_err().contains("out of range"));
        assert!(parse_time("3d").unwrap_err().contains("unknown unit"));
        assert!(parse_time("s").is_err());
    }
}
