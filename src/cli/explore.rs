//! `jt808-harness explore SCENARIO... [--runs N | --time D] [--seed S] [--jobs J] [--out DIR]`.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::builder::{PossibleValue, RangedU64ValueParser};

use super::duration::{Bare, DAY, WEEK, between, ms};
use super::progress::Progress;
use crate::explore::invariants::{Budgets, DEFAULT_MAX_EVENTS};
use crate::explore::report::ScenarioReport;
use crate::explore::shrink::DEFAULT_MAX_SHRINK_RUNS;
use crate::explore::{FaultsChoice, Limit, Settings, Target};
use crate::scenario::Scenario;

/// Longest `--time`: 7 days.
pub const MAX_TIME: Duration = WEEK;
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
    /// Search for this long instead (`60s`, `10m`, `500ms`, `1h`; 1ms..=7days), split evenly over
    /// the scenarios. The number of runs then depends on the machine (it is reported); each run
    /// stays exactly reproducible from its seed. Shrinking comes after, outside the budget.
    #[arg(long, value_name = "DURATION", value_parser = between(ms(1), MAX_TIME).bare(Bare::MillisWasSeconds))]
    pub time: Option<Duration>,
    /// Base seed; run i's seed is derived from it and i (src/explore/schedule.rs).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Worker threads, each with its own current-thread runtime (none: the cores). Results do not
    /// depend on it.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub jobs: Option<u64>,
    /// Where reproducers and their transcripts are written.
    #[arg(long, short, default_value = "explore-out")]
    pub out: PathBuf,
    /// Schedule bounds: the scenario's `[explore]` table or else the built-in survivable faults
    /// (auto), always the built-in ones (random), or only the table (scenario).
    #[arg(long, value_enum, default_value_t = FaultsArg(FaultsChoice::Auto))]
    pub faults: FaultsArg,
    /// One JSON document on stdout instead of a line per scenario.
    #[arg(long)]
    pub json: bool,
    /// No progress bar (nor line per scenario on stderr) and no timing line.
    #[arg(long)]
    pub quiet: bool,
    /// A run with more transcript events than this fails (`event_budget`: a livelock).
    #[arg(long, default_value_t = DEFAULT_MAX_EVENTS, value_parser = RangedU64ValueParser::<usize>::new().range(1..=100_000_000))]
    pub max_events: usize,
    /// A run whose last event comes later than its duration_ms plus this fails (`time_budget`;
    /// 0s..=1day).
    #[arg(long, alias = "grace-ms", value_name = "DURATION", default_value = "1m",
          value_parser = between(ms(0), DAY))]
    pub grace: Duration,
    /// Most runs one shrink makes; a shrink that reaches it says so.
    #[arg(long, default_value_t = DEFAULT_MAX_SHRINK_RUNS, value_parser = RangedU64ValueParser::<usize>::new().range(1..=10_000_000))]
    pub max_shrink_runs: usize,
    /// Most distinct failing checks shrunk to a reproducer per scenario (the first failing run of
    /// each).
    #[arg(long, default_value_t = 3, value_parser = RangedU64ValueParser::<usize>::new().range(1..=100))]
    pub reproducers: usize,
    /// A run still going after this much wall-clock time is a livelock: its schedule is written
    /// unshrunk (`<scenario>-hang-<seed>.toml` in --out) and explore exits with status 2
    /// (1s..=1day).
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = between(ms(1000), DAY))]
    pub hang: Duration,
    /// The old name of --hang: a bare number is seconds, as it was.
    #[arg(long, hide = true, conflicts_with = "hang", value_name = "SECS",
          value_parser = between(ms(1000), DAY).bare(Bare::Seconds))]
    pub hang_secs: Option<Duration>,
}

/// `--faults`: the [`FaultsChoice`] of the command line (the domain type carries no clap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultsArg(pub FaultsChoice);

impl clap::ValueEnum for FaultsArg {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            FaultsArg(FaultsChoice::Auto),
            FaultsArg(FaultsChoice::Random),
            FaultsArg(FaultsChoice::Scenario),
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(match self.0 {
            FaultsChoice::Auto => "auto",
            FaultsChoice::Random => "random",
            FaultsChoice::Scenario => "scenario",
        }))
    }
}

impl ExploreArgs {
    fn settings(&self) -> Settings {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Settings {
            seed: self.seed,
            jobs: self.jobs.map_or(cores, |j| j as usize),
            budgets: Budgets {
                max_events: self.max_events,
                grace_ms: u64::try_from(self.grace.as_millis()).unwrap_or(u64::MAX),
            },
            max_shrink_runs: self.max_shrink_runs,
            reproducers: self.reproducers,
            hang: Some((self.hang_secs.unwrap_or(self.hang), self.out.clone())),
        }
    }

    fn targets(&self) -> Result<Vec<Target>, String> {
        let mut out = Vec::new();
        for p in &self.paths {
            for f in Scenario::discover(p).map_err(|e| e.to_string())? {
                out.push(crate::explore::target(&f, self.faults.0)?);
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
    let len = if args.time.is_some() {
        0
    } else {
        args.runs.saturating_mul(targets.len() as u64)
    };
    let progress = Progress::new(
        args.quiet,
        len,
        "{spinner} {pos}/{len} runs ({per_sec}) {elapsed_precise} {wide_msg}",
    );
    let mut reports = Vec::new();
    let mut total_runs = 0;
    for t in &targets {
        let limit = match per_scenario {
            Some(d) => Limit::Until(Instant::now() + d),
            None => Limit::Runs(args.runs),
        };
        progress.working_on(&t.name);
        let results = t.search(&s, limit, &|| progress.step())?;
        total_runs += results.len();
        let findings = crate::explore::findings(t, &results, &s)?;
        let report = ScenarioReport::new(t, &results, &findings, &args.out, s.budgets)?;
        if args.json {
            // The scenario's line goes to stdout only without --json: then it is the progress.
            progress.finished(&format!(
                "{}: {} runs, {} failures",
                t.name,
                results.len(),
                report.failures
            ));
        } else {
            progress.suspend(|| print(&report.text()));
        }
        reports.push(report);
    }
    progress.done();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_domain_defaults() {
        use crate::explore::invariants::DEFAULT_GRACE_MS;
        use clap::Parser;
        #[derive(Parser)]
        struct Cmd {
            #[command(flatten)]
            args: ExploreArgs,
        }
        let a = Cmd::try_parse_from(["explore", "x.toml"]).unwrap().args;
        assert_eq!(a.grace, ms(DEFAULT_GRACE_MS));
        assert_eq!(a.settings().hang.map(|h| h.0), Some(Duration::from_secs(60)));
        let old = Cmd::try_parse_from(["explore", "x.toml", "--hang-secs", "5", "--grace-ms", "250"])
            .unwrap()
            .args;
        assert_eq!(
            old.settings().hang.map(|h| h.0),
            Some(Duration::from_secs(5)),
            "--hang-secs: seconds"
        );
        assert_eq!(old.grace, ms(250));
        assert!(Cmd::try_parse_from(["explore", "x.toml", "--time", "0s"]).is_err());
    }
}
