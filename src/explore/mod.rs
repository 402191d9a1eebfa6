//! `explore`: runs a scenario many times in snapshot mode, each run with a fault schedule drawn at
//! random within bounds, and shrinks every kind of failure it finds to a minimal reproducer: an
//! ordinary scenario file that `run` fails the same way every time.
//!
//! Map:
//! - [`bounds`]: what a schedule may hold (a scenario's `[explore]` table, or `--faults random`).
//! - [`schedule`]: a run's seed and its schedule, an explicit list of [`schedule::Decision`]s.
//! - [`trial`]: one run and its verdict (expectations, invariants, panics).
//! - [`invariants`]: what holds in every run whatever its faults, and the run budgets.
//! - [`shrink`]: delta debugging and simplification of a failing run.
//! - [`report`]: reproducer files, the per-scenario line and `--json`.
//!
//! The command, its progress and output, is `crate::cli::explore`.
//!
//! Determinism: a run's outcome depends only on the scenario, `--seed` and its run number (each run
//! on its own current-thread runtime with the paused clock), results are ordered by run number and
//! shrinking is sequential per finding, so the same command gives the same findings and files
//! whatever `--jobs` is. Only `--time` makes the number of runs depend on the machine.

pub mod bounds;
pub mod invariants;
pub mod report;
pub mod schedule;
pub mod shrink;
pub mod trial;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use bounds::Bounds;
use invariants::{Budgets, Failure};
use schedule::Decision;
use shrink::Shrunk;

use crate::scenario::Scenario;

/// Where a run's schedule bounds come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultsChoice {
    /// The scenario's `[explore]` table; the built-in survivable bounds when it has none.
    Auto,
    /// The built-in survivable bounds, whatever the scenario says.
    Random,
    /// The scenario's `[explore]` table; a scenario without one is an error.
    Scenario,
}

/// How many runs a search makes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// Exactly this many.
    Runs(u64),
    /// As many as start before this instant (machine-dependent; each run is still deterministic).
    Until(Instant),
}

/// Settings of a search, shared by every scenario.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--seed`.
    pub seed: u64,
    /// Worker threads.
    pub jobs: usize,
    /// Run budgets.
    pub budgets: Budgets,
    /// `--max-shrink-runs`.
    pub max_shrink_runs: usize,
    /// `--reproducers`: most distinct failing checks shrunk per scenario.
    pub reproducers: usize,
    /// `--hang-secs` and `--out`: a run still going after this much wall-clock time is written
    /// unshrunk as check `hang` to the directory, reported, and the process exits with status 2
    /// (its thread cannot be stopped). None: no watchdog.
    pub hang: Option<(std::time::Duration, PathBuf)>,
}

/// A scenario ready to explore.
#[derive(Debug, Clone)]
pub struct Target {
    /// The file stem.
    pub name: String,
    /// The file, as given.
    pub path: PathBuf,
    /// The scenario without its `[explore]` table.
    pub scenario: Scenario,
    /// What its schedules are drawn from.
    pub bounds: Bounds,
}

/// Reads a scenario for exploring, with the bounds `choice` picks.
pub fn target(path: &Path, choice: FaultsChoice) -> Result<Target, String> {
    let loaded = bounds::load(path).map_err(|e| e.to_string())?;
    let bounds = match (choice, loaded.bounds) {
        (FaultsChoice::Random, _) | (FaultsChoice::Auto, None) => Bounds::survivable(),
        (_, Some(b)) => b,
        (FaultsChoice::Scenario, None) => {
            return Err(format!(
                "{}: no [explore] table (--faults scenario needs one; --faults random uses the built-in bounds)",
                path.display()
            ));
        }
    };
    Ok(Target {
        name: loaded.scenario.name.clone(),
        path: path.to_path_buf(),
        scenario: loaded.scenario,
        bounds,
    })
}

/// One run of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    /// Run number, 0-based.
    pub run: u64,
    /// Its seed ([`schedule::run_seed`]).
    pub seed: u64,
    /// Decisions drawn.
    pub decisions: usize,
    /// The first check that failed, if any.
    pub failure: Option<Failure>,
}

impl Target {
    /// The schedule of run seed `seed`.
    pub fn schedule(&self, seed: u64) -> Vec<Decision> {
        schedule::draw(&self.bounds, seed)
    }

    /// Runs the scenario with the schedule of `seed`.
    pub fn run_seed(&self, seed: u64, budgets: Budgets) -> Result<trial::Trial, String> {
        let sc = trial::with_schedule(&self.scenario, &self.schedule(seed))?;
        trial::run(&sc, budgets).map_err(|e| format!("{}: {e}", self.path.display()))
    }

    /// Runs `limit` runs on `settings.jobs` workers; results ordered by run number. `tick` is
    /// called after every run (the progress bar).
    pub fn search(&self, s: &Settings, limit: Limit, tick: &(dyn Fn() + Sync)) -> Result<Vec<RunResult>, String> {
        let next = AtomicU64::new(0);
        let stop = AtomicBool::new(false);
        let running: Mutex<BTreeMap<u64, Instant>> = Mutex::default();
        let workers_left = AtomicU64::new(s.jobs.max(1) as u64);
        let results = Mutex::new(Vec::new());
        let error = Mutex::new(None);
        std::thread::scope(|scope| {
            if let Some((limit, dir)) = &s.hang {
                scope.spawn(|| self.watchdog(s, *limit, dir, &running, &workers_left));
            }
            for _ in 0..s.jobs.max(1) {
                scope.spawn(|| {
                    let _done = Countdown(&workers_left);
                    while !stop.load(Ordering::Relaxed) {
                        let run = next.fetch_add(1, Ordering::Relaxed);
                        let more = match limit {
                            Limit::Runs(n) => run < n,
                            Limit::Until(t) => Instant::now() < t,
                        };
                        if !more {
                            break;
                        }
                        let seed = schedule::run_seed(s.seed, run);
                        lock(&running).insert(run, Instant::now());
                        let outcome = self.run_seed(seed, s.budgets);
                        lock(&running).remove(&run);
                        match outcome {
                            Ok(t) => {
                                let r = RunResult {
                                    run,
                                    seed,
                                    decisions: self.schedule(seed).len(),
                                    failure: t.failures.into_iter().next(),
                                };
                                results.lock().unwrap_or_else(|e| e.into_inner()).push(r);
                            }
                            Err(e) => {
                                stop.store(true, Ordering::Relaxed);
                                error.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
                            }
                        }
                        tick();
                    }
                });
            }
        });
        if let Some(e) = error.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(e);
        }
        let mut v = results.into_inner().unwrap_or_else(|e| e.into_inner());
        v.sort_by_key(|r| r.run);
        Ok(v)
    }
}

/// Counts a worker out when it ends, however it ends.
struct Countdown<'a>(&'a AtomicU64);

impl Drop for Countdown<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Target {
    /// Watches the runs in progress until the workers are done; see [`Settings::hang`].
    fn watchdog(
        &self,
        s: &Settings,
        limit: std::time::Duration,
        dir: &Path,
        running: &Mutex<BTreeMap<u64, Instant>>,
        workers_left: &AtomicU64,
    ) {
        while workers_left.load(Ordering::Relaxed) > 0 {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let stuck = lock(running).iter().find(|(_, t)| t.elapsed() > limit).map(|(r, _)| *r);
            if let Some(run) = stuck {
                let seed = schedule::run_seed(s.seed, run);
                let file = report::write_unshrunk(self, seed, "hang", dir);
                eprintln!(
                    "jt808-harness explore: {}: run {run} (seed {seed}) still running after {} s of wall-clock time \
                     (--hang-secs): a livelock; its schedule, not shrunk: {}",
                    self.name,
                    limit.as_secs(),
                    file.unwrap_or_else(PathBuf::from).display()
                );
                std::process::exit(2);
            }
        }
    }
}

/// A failure shrunk.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The check that failed.
    pub check: String,
    /// The first run it failed in.
    pub run: u64,
    /// That run's seed.
    pub seed: u64,
    /// Decisions that run drew.
    pub decisions_before: usize,
    /// The shrunk scenario and decisions.
    pub shrunk: Shrunk,
    /// What the check says on the shrunk run.
    pub detail: String,
}

/// The first failing run of each distinct check (at most `s.reproducers` of them), each shrunk.
/// Findings are shrunk in parallel, each on its own thread, and come back in the order of their
/// first run.
pub fn findings(t: &Target, results: &[RunResult], s: &Settings) -> Result<Vec<Finding>, String> {
    let mut firsts: Vec<&RunResult> = Vec::new();
    for r in results {
        if let Some(f) = &r.failure
            && !firsts
                .iter()
                .any(|x| x.failure.as_ref().is_some_and(|g| g.check == f.check))
        {
            firsts.push(r);
        }
    }
    firsts.truncate(s.reproducers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = firsts.iter().map(|r| scope.spawn(|| shrink_one(t, r, s))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a shrink thread panicked".into())))
            .collect()
    })
}

fn shrink_one(t: &Target, r: &RunResult, s: &Settings) -> Result<Finding, String> {
    let check = r.failure.as_ref().map(|f| f.check.clone()).unwrap_or_default();
    let decisions = t.schedule(r.seed);
    let decisions_before = decisions.len();
    let shrunk = shrink::shrink(&t.scenario, decisions, &check, &t.bounds, s.budgets, s.max_shrink_runs);
    let sc = trial::with_schedule(&shrunk.scenario, &shrunk.decisions)?;
    let trial = trial::run(&sc, s.budgets)?;
    let detail = trial
        .failures
        .iter()
        .find(|f| f.check == check)
        .map(|f| f.detail.clone())
        .ok_or_else(|| format!("{}: the shrunk run of seed {} no longer fails {check}", t.name, r.seed))?;
    Ok(Finding {
        check,
        run: r.run,
        seed: r.seed,
        decisions_before,
        shrunk,
        detail,
    })
}
