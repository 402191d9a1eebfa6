//! `explore`: a failure is found and shrunk to a 1-minimal, reproducible scenario; the same command
//! gives the same output whatever `--jobs`; the bundled scenarios survive survivable faults.

use std::path::{Path, PathBuf};
use std::process::Command;

use jt808_harness::explore::bounds::Bounds;
use jt808_harness::explore::invariants::Budgets;
use jt808_harness::explore::report::ScenarioReport;
use jt808_harness::explore::{self, FaultsChoice, Limit, RunResult, Settings, Target, shrink, trial};
use jt808_harness::scenario::Scenario;
use jt808_harness::scenario::runner::{self, Mode};

/// Twenty location reports from one terminal, and a deliberately strict expectation: not one frame
/// rejected. Its schedules mix faults the client survives with `corrupt_checksum`, which alone
/// breaks the expectation.
const STRICT: &str = r#"
description = "Twenty reports; deliberately strict: no frame may be rejected."
seed = 5
duration_ms = 12000

[source]
type = "fleet"
terminals = 2
messages = 10
interval_ms = 500

[expect]
frames_rejected = 0

[explore]
decisions = [4, 10]
at = [1, 20]

[explore.faults.corrupt_checksum]
xor = [1, 255]

[explore.faults.split]
mode = "offsets"
offsets = [[1, 60]]

[explore.faults.latency]
ms = [1, 200]
jitter_ms = 0
"#;

/// At most one reconnect allowed: two disconnects break it, and neither alone does, so a shrunk
/// schedule keeps two decisions and 1-minimality is a real property.
const TWO_DROPS: &str = r#"
description = "At most one reconnect."
seed = 3
duration_ms = 15000

[source]
type = "fleet"
terminals = 1
messages = 20
interval_ms = 400

[client]
backoff_min_ms = 100
backoff_max_ms = 400

[expect]
reconnects = [0, 1]

[explore]
decisions = [3, 8]
at = [1, 12]

[explore.faults.disconnect]
mode = "close"

[explore.faults.split]
mode = "offsets"
offsets = [[1, 60]]

[explore.faults.coalesce]
count = [2, 3]
max_wait_ms = [1, 50]
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn settings(jobs: usize) -> Settings {
    Settings {
        seed: 1,
        jobs,
        budgets: Budgets::default(),
        max_shrink_runs: shrink::DEFAULT_MAX_SHRINK_RUNS,
        reproducers: 3,
        hang: None,
    }
}

fn failing(t: &Target, runs: u64) -> Vec<RunResult> {
    let results = t.search(&settings(2), Limit::Runs(runs), &|| {}).unwrap();
    assert_eq!(results.len() as u64, runs);
    assert!(results.iter().map(|r| r.run).eq(0..runs), "ordered by run number");
    results.into_iter().filter(|r| r.failure.is_some()).collect()
}

#[test]
fn a_strict_expectation_shrinks_to_the_one_corrupting_decision_and_reproduces() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "strict.toml", STRICT);
    let t = explore::target(&path, FaultsChoice::Auto).unwrap();
    let results = t.search(&settings(2), Limit::Runs(6), &|| {}).unwrap();
    let findings = explore::findings(&t, &results, &settings(2)).unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    let f = &findings[0];
    assert_eq!(f.check, "frames_rejected");
    assert!(f.decisions_before >= 4);
    let [d] = f.shrunk.decisions.as_slice() else {
        panic!("not one decision: {:?}", f.shrunk.decisions)
    };
    assert_eq!(d.type_name(), "corrupt_checksum");
    // Simplified: the first frame, the smallest mask, one terminal, one message.
    assert_eq!((d.int("at"), d.int("xor")), (Some(1), Some(1)), "{d:?}");
    let src = toml::Value::try_from(&f.shrunk.scenario.source).unwrap();
    assert_eq!(src.get("terminals").and_then(|v| v.as_integer()), Some(1));
    assert_eq!(src.get("messages").and_then(|v| v.as_integer()), Some(1));
    assert!(f.shrunk.scenario.duration_ms < 12_000);
    // The shorter run still ends after its traffic: nothing offered at its last instant.
    let shrunk = trial::with_schedule(&f.shrunk.scenario, &f.shrunk.decisions).unwrap();
    let rerun = trial::run(&shrunk, Budgets::default()).unwrap();
    assert!(
        rerun.fails("frames_rejected") && !rerun.ended_in_flight,
        "{} ms",
        f.shrunk.scenario.duration_ms
    );

    // The reproducer is an ordinary scenario: `run` reads it and fails the same check, every time.
    let out = dir.path().join("out");
    let report = ScenarioReport::new(&t, &results, &findings, &out, Budgets::default()).unwrap();
    let file = &report.reproducers[0].file;
    assert_eq!(
        file.file_name().unwrap().to_str().unwrap(),
        format!("strict-frames_rejected-{}.toml", f.seed)
    );
    let sc = Scenario::load(file).unwrap();
    let a = runner::run(&sc, Mode::Snapshot).unwrap();
    let b = runner::run(&sc, Mode::Snapshot).unwrap();
    let failed: Vec<&str> = a.checks.iter().filter(|c| !c.ok).map(|c| c.name.as_str()).collect();
    assert_eq!(failed, ["frames_rejected"]);
    assert_eq!(a.to_yaml(), b.to_yaml());
    let stored = std::fs::read_to_string(&report.reproducers[0].transcript).unwrap();
    assert_eq!(stored, a.to_yaml());
    assert!(
        report.text().contains("decisions -> 1 (check frames_rejected)"),
        "{}",
        report.text()
    );
}

#[test]
fn shrunk_schedules_are_one_minimal() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "two_drops.toml", TWO_DROPS);
    let t = explore::target(&path, FaultsChoice::Scenario).unwrap();
    let fails = failing(&t, 16);
    assert!(fails.len() >= 3, "{} failures", fails.len());
    for r in fails.iter().take(3) {
        let check = &r.failure.as_ref().unwrap().check;
        assert_eq!(check, "reconnects");
        let s = shrink::shrink(
            &t.scenario,
            t.schedule(r.seed),
            check,
            &t.bounds,
            Budgets::default(),
            shrink::DEFAULT_MAX_SHRINK_RUNS,
        );
        assert!(!s.capped);
        assert_eq!(s.decisions.len(), 2, "seed {}: {:?}", r.seed, s.decisions);
        let run = |ds: &[_]| trial::run(&trial::with_schedule(&s.scenario, ds).unwrap(), Budgets::default()).unwrap();
        assert!(run(&s.decisions).fails(check));
        assert!(!run(&s.decisions).ended_in_flight, "seed {}: ends in flight", r.seed);
        for i in 0..s.decisions.len() {
            let mut fewer = s.decisions.clone();
            fewer.remove(i);
            assert!(!run(&fewer).fails(check), "seed {}: decision {i} is not needed", r.seed);
        }
    }
}

fn explore_cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_jt808-harness"))
        .arg("explore")
        .args(args)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap())
}

fn files(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn the_same_seed_gives_the_same_output_whatever_the_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "strict.toml", STRICT);
    let out = dir.path().join("out");
    let (p, o) = (path.to_str().unwrap(), out.to_str().unwrap());
    let mut seen = Vec::new();
    for (jobs, json) in [("1", false), ("2", false), ("1", true), ("2", true)] {
        let _ = std::fs::remove_dir_all(&out);
        let mut args = vec![p, "--runs", "5", "--seed", "9", "--jobs", jobs, "--out", o, "--quiet"];
        if json {
            args.push("--json");
        }
        let (ok, stdout) = explore_cli(&args);
        assert!(!ok, "a failure found means a non-zero exit");
        seen.push((json, stdout, files(&out)));
    }
    assert!(seen[0].1.starts_with("strict: 5 runs, "), "{}", seen[0].1);
    assert!(seen[2].1.contains("\"check\": \"frames_rejected\""), "{}", seen[2].1);
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[2], seen[3]);
    assert_eq!(seen[0].2.len(), 2, "a reproducer and its transcript");
}

#[test]
fn bundled_scenarios_survive_survivable_faults() {
    let runs: u64 = std::env::var("EXPLORE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let paths = Scenario::discover(Path::new("scenarios")).unwrap();
    assert!(paths.len() >= 20);
    let mut failures = Vec::new();
    for p in &paths {
        let t = explore::target(p, FaultsChoice::Random).unwrap();
        assert_eq!(t.bounds, Bounds::survivable());
        for r in t.search(&settings(2), Limit::Runs(runs), &|| {}).unwrap() {
            if let Some(f) = r.failure {
                failures.push(format!("{} seed {}: {} ({})", t.name, r.seed, f.check, f.detail));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn bad_scenario_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = STRICT.replace("terminals = 2", "terminals = 2\npath = \"x\"");
    let path = write(dir.path(), "bad.toml", &bad);
    let e = explore::target(&path, FaultsChoice::Auto).unwrap_err();
    assert!(e.contains("bad.toml:") && e.contains("path"), "{e}");
    let none = write(dir.path(), "plain.toml", "description = \"x\"\n");
    let e = explore::target(&none, FaultsChoice::Scenario).unwrap_err();
    assert!(e.contains("no [explore] table"), "{e}");
}
