//! Every bundled scenario: once in snapshot mode against its insta snapshot (one per file), once
//! live over loopback TCP (invariants only), and a determinism check.

use std::path::Path;

use jt808_harness::scenario::Scenario;
use jt808_harness::scenario::runner::{self, Mode};

fn load(path: &Path) -> Scenario {
    Scenario::load(path).unwrap_or_else(|e| panic!("{e}"))
}

fn failed_checks(t: &jt808_harness::transcript::Transcript) -> Vec<String> {
    t.checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect()
}

/// Snapshot mode: the transcript is the snapshot, and every expected invariant holds.
#[test]
fn transcript() {
    insta::glob!("../scenarios", "*.toml", |path| {
        let sc = load(path);
        let t = runner::run(&sc, Mode::Snapshot).unwrap_or_else(|e| panic!("{e}"));
        insta::with_settings!({ info => &sc.description, omit_expression => true }, {
            insta::assert_snapshot!(t.to_yaml());
        });
        let failed = failed_checks(&t);
        assert!(failed.is_empty(), "{}: {failed:#?}", path.display());
    });
}

/// Live mode: the same scenarios over real loopback TCP; only the invariants are checked.
#[test]
fn live() {
    // Live runs mostly wait on real timers: run them side by side, each on its own runtime.
    let paths = Scenario::discover(Path::new("scenarios")).unwrap();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .iter()
            .map(|path| {
                scope.spawn(move || {
                    let sc = load(path);
                    let t = runner::run(&sc, Mode::Live).unwrap_or_else(|e| panic!("{e}"));
                    failed_checks(&t)
                        .into_iter()
                        .map(|f| format!("{}: {f}", path.display()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("live run panicked"))
            .collect()
    });
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The same scenario run 20 times in a row gives byte-identical transcripts.
#[test]
fn snapshot_runs_are_byte_identical() {
    for path in Scenario::discover(Path::new("scenarios")).unwrap() {
        let sc = load(&path);
        let first = runner::run(&sc, Mode::Snapshot).unwrap().to_yaml();
        for i in 1..20 {
            let again = runner::run(&sc, Mode::Snapshot).unwrap().to_yaml();
            assert!(again == first, "{}: run {i} differs from run 0", path.display());
        }
    }
}

/// A capture whose third line is damaged (an unknown key), with good records on both sides.
fn broken_capture(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("broken.jsonl");
    let frame = "7e000200000123456789017fff0a7e";
    std::fs::write(
        &path,
        format!(
            "{{\"format\":\"jt808-capture\",\"version\":1,\"prefix_len\":0}}\n\
             {{\"t_us\":0,\"conn\":1,\"from\":\"gateway\",\"hex\":\"{frame}\"}}\n\
             {{\"t_us\":10,\"conn\":1,\"from\":\"gateway\",\"hx\":\"{frame}\"}}\n\
             {{\"t_us\":20,\"conn\":1,\"from\":\"gateway\",\"hex\":\"{frame}\"}}\n"
        ),
    )
    .unwrap();
    path
}

/// A capture with a bad line in the middle fails the scenario in both modes, before anything is
/// served, naming the capture's file and line.
#[test]
fn a_broken_capture_fails_the_scenario_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let capture = broken_capture(dir.path());
    let text = format!(
        "description = \"x\"\nduration_ms = 1000\n[source]\ntype = \"capture\"\npath = {:?}\nspeed = 0.0\n",
        capture.to_str().unwrap()
    );
    let sc = Scenario::parse(&text, Path::new("broken.toml")).unwrap();
    for mode in [Mode::Snapshot, Mode::Live] {
        let err = runner::run(&sc, mode)
            .expect_err("a broken capture must fail the run")
            .to_string();
        let at = format!("{}:3:", capture.display());
        assert!(err.contains(&at), "{mode:?}: {err}");
        assert!(err.contains("hx"), "{mode:?}: {err}");
    }
}
