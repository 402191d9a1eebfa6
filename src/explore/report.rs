//! What `explore` leaves behind: per finding a reproducer scenario
//! (`DIR/<scenario>-<check>-<seed>.toml`) and its transcript (`.yaml` beside it), a line per
//! scenario, and the same as one JSON document with `--json`.
//!
//! A reproducer is the original scenario (read back exactly as `run` reads it, its `[explore]`
//! table left out) with its source and duration as shrunk and the shrunk decisions as `[[faults]]`
//! after its own. Before it is written it is read back from its text and run twice: both runs
//! must fail the same check with byte-identical transcripts, or the finding is an error.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::invariants::Budgets;
use super::{Finding, RunResult, Target, trial};
use crate::scenario::Scenario;

/// A reproducer written to disk.
#[derive(Debug, Clone, Serialize)]
pub struct Reproducer {
    /// The check it fails.
    pub check: String,
    /// First failing run number and its seed.
    pub run: u64,
    /// The seed.
    pub seed: u64,
    /// Decisions of that run, and left after shrinking.
    pub decisions_before: usize,
    /// Decisions left.
    pub decisions_after: usize,
    /// Runs the shrink made, and whether it hit `--max-shrink-runs`.
    pub shrink_runs: usize,
    /// The shrink stopped at its cap.
    pub shrink_capped: bool,
    /// The check's detail on the reproducer.
    pub detail: String,
    /// The scenario file.
    pub file: PathBuf,
    /// Its transcript.
    pub transcript: PathBuf,
}

/// Everything one scenario's search found.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// Scenario name.
    pub scenario: String,
    /// Runs made.
    pub runs: u64,
    /// Runs that failed.
    pub failures: u64,
    /// Every failing run: number, seed, first failing check.
    pub failed_runs: Vec<FailedRun>,
    /// One per distinct check shrunk.
    pub reproducers: Vec<Reproducer>,
}

/// One failing run.
#[derive(Debug, Clone, Serialize)]
pub struct FailedRun {
    /// Run number.
    pub run: u64,
    /// Its seed.
    pub seed: u64,
    /// Its first failing check.
    pub check: String,
}

/// Most failing runs listed per scenario in the JSON (the count is always exact).
pub const MAX_LISTED_RUNS: usize = 100;

impl ScenarioReport {
    /// The report of a search, its findings written to `dir`.
    pub fn new(
        t: &Target,
        results: &[RunResult],
        findings: &[Finding],
        dir: &Path,
        budgets: Budgets,
    ) -> Result<ScenarioReport, String> {
        let failed: Vec<FailedRun> = results
            .iter()
            .filter_map(|r| {
                r.failure.as_ref().map(|f| FailedRun {
                    run: r.run,
                    seed: r.seed,
                    check: f.check.clone(),
                })
            })
            .collect();
        let reproducers = findings
            .iter()
            .map(|f| write_reproducer(t, f, dir, budgets))
            .collect::<Result<_, _>>()?;
        Ok(ScenarioReport {
            scenario: t.name.clone(),
            runs: results.len() as u64,
            failures: failed.len() as u64,
            failed_runs: failed.into_iter().take(MAX_LISTED_RUNS).collect(),
            reproducers,
        })
    }

    /// `name: N runs, F failures, first at seed S: 41 decisions -> 2 (check every_frame_once)`,
    /// then a line per reproducer.
    pub fn text(&self) -> String {
        let mut s = format!("{}: {} runs, {} failures", self.scenario, self.runs, self.failures);
        if let Some(r) = self.reproducers.first() {
            let _ = write!(
                s,
                ", first at seed {}: {} decisions -> {} (check {})",
                r.seed, r.decisions_before, r.decisions_after, r.check
            );
        }
        s.push('\n');
        for r in &self.reproducers {
            let capped = if r.shrink_capped {
                " (shrink stopped at --max-shrink-runs)"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "  {}: check {} fails: {}; {} shrink runs{capped}",
                r.file.display(),
                r.check,
                r.detail,
                r.shrink_runs
            );
        }
        s
    }
}

/// The reproducer's file name: `<scenario>-<check>-<seed>`.
pub fn stem(scenario: &str, check: &str, seed: u64) -> String {
    format!("{scenario}-{check}-{seed}")
}

/// The reproducer's text: a comment saying where it comes from, then the scenario as TOML.
pub fn reproducer_text(t: &Target, f: &Finding) -> Result<String, String> {
    let mut sc: Scenario = trial::with_schedule(&f.shrunk.scenario, &f.shrunk.decisions)?.relocated();
    sc.description = format!(
        "{} (explore reproducer: check {} fails, seed {})",
        sc.description.trim_end(),
        f.check,
        f.seed
    );
    let body = toml::to_string(&sc).map_err(|e| format!("{}: reproducer does not serialise: {e}", t.name))?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Found by `jt808-harness explore` in {} (run {}, seed {}):",
        t.path.display(),
        f.run,
        f.seed
    );
    let _ = writeln!(
        s,
        "# {} decisions -> {}, check {} fails: {}",
        f.decisions_before,
        f.shrunk.decisions.len(),
        f.check,
        f.detail.replace('\n', " ")
    );
    let _ = writeln!(
        s,
        "# The last {} [[faults]] are the shrunk decisions; `jt808-harness run` on this file fails the same way.",
        f.shrunk.decisions.len()
    );
    s.push_str(&body);
    Ok(s)
}

fn write_reproducer(t: &Target, f: &Finding, dir: &Path, budgets: Budgets) -> Result<Reproducer, String> {
    let stem = stem(&t.name, &f.check, f.seed);
    let file = dir.join(format!("{stem}.toml"));
    let transcript = dir.join(format!("{stem}.yaml"));
    let text = reproducer_text(t, f)?;
    // Read back as `run` reads it, and run twice: it must fail the same check, the same way.
    let sc = Scenario::parse(&text, &file).map_err(|e| format!("reproducer does not read back: {e}"))?;
    let first = trial::run_transcribed(&sc, budgets)?;
    let second = trial::run_transcribed(&sc, budgets)?;
    let yaml = first.transcript.as_ref().map(|t| t.to_yaml()).unwrap_or_default();
    if !first.fails(&f.check) || second.transcript.as_ref().map(|t| t.to_yaml()).unwrap_or_default() != yaml {
        return Err(format!(
            "{}: the reproducer of seed {} does not fail {} the same way twice",
            t.name, f.seed, f.check
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(&file, &text).map_err(|e| format!("{}: {e}", file.display()))?;
    std::fs::write(&transcript, &yaml).map_err(|e| format!("{}: {e}", transcript.display()))?;
    Ok(Reproducer {
        check: f.check.clone(),
        run: f.run,
        seed: f.seed,
        decisions_before: f.decisions_before,
        decisions_after: f.shrunk.decisions.len(),
        shrink_runs: f.shrunk.runs,
        shrink_capped: f.shrunk.capped,
        detail: f.detail.clone(),
        file,
        transcript,
    })
}

/// Writes the run of `seed` as it was drawn, not shrunk (a run that never ended cannot be shrunk
/// by running it): `DIR/<scenario>-<check>-<seed>.toml`.
pub fn write_unshrunk(t: &Target, seed: u64, check: &str, dir: &Path) -> Result<PathBuf, String> {
    let decisions = t.schedule(seed);
    let mut sc = trial::with_schedule(&t.scenario, &decisions)?.relocated();
    sc.description = format!(
        "{} (explore: check {check}, seed {seed}, not shrunk)",
        sc.description.trim_end()
    );
    let body = toml::to_string(&sc).map_err(|e| format!("{}: reproducer does not serialise: {e}", t.name))?;
    let text = format!(
        "# Found by `jt808-harness explore` in {}, seed {seed}: check {check}; the last {} [[faults]] are its decisions.\n{body}",
        t.path.display(),
        decisions.len()
    );
    let file = dir.join(format!("{}.toml", stem(&t.name, check, seed)));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(file)
}
