//! External clients (`[client] command`, `run --client-cmd`): the reference JavaScript client of
//! `clients/js` under Node and as a page in headless Chromium passes bundled scenarios with
//! stable snapshots, and deliberately broken clients (`tests/fixtures/broken_clients/`) fail the
//! scenarios that should catch them, with a readable diff.
//!
//! Needs Node 20 and `clients/js/node_modules` (this test runs `npm ci` there once when it is
//! missing), and Debian's `chromium` for the browser part. Outside CI a missing `node` or
//! `chromium` skips with the reason printed; with `CI=true` it fails instead (`.ci/run` installs
//! both). Live runs wait on the real clock, so every group of runs goes side by side.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use jt808_harness::cli::run::diff;
use jt808_harness::scenario::Scenario;
use jt808_harness::scenario::external::{self, ExternalClient, ExternalRun, snapshot};

/// Bundled scenarios the Node reference client passes with a stable snapshot: every bundled one
/// but the six whose faults act on the real clock (latency, bandwidth, stall, coalesce,
/// reorder_packet: invariants only, see `normalise::unstable_reason`, so a snapshot says little)
/// and five the client passes but whose stability over rounds is not measured yet (the four
/// capture replays and the reconnect storm).
const NODE_SCENARIOS: &[&str] = &[
    "attributes_0x8107_and_av_attributes_0x9003_are_answered_without_a_serial",
    "camera_shot_0x8801_uploads_its_photos_and_0x8802_finds_them",
    "clean_close_with_code_reconnects_with_backoff",
    "commands_sent_while_disconnected_are_queued_and_flushed_in_order",
    "corrupted_frames_are_rejected_and_the_stream_resyncs",
    "device_that_does_not_escape_0x7e_is_understood_with_rejoin",
    "disconnect_mid_frame_is_never_glued_to_the_next_connection",
    "dropped_duplicated_and_reordered_messages_are_visible",
    "envelope_prefix_of_18_bytes_is_skipped",
    "file_upload_0x9206_is_confirmed_then_completed_by_0x1206",
    "fleet_of_2019_terminals_decodes_with_the_2019_header",
    "fleet_sending_every_terminal_message_decodes_each_one_typed",
    "frames_split_inside_escape_pairs_still_decode",
    "location_query_0x8201_is_answered_by_0x0201_with_the_current_fix",
    "lost_sub_packet_expires_the_group_with_its_missing_index",
    "lost_sub_packet_is_asked_for_with_0x8003_and_the_message_completes",
    "mixed_2013_and_2019_terminals_share_one_stream",
    "parameters_set_by_0x8103_are_what_0x8104_and_0x8106_return",
    "reconnect_after_abrupt_close_loses_nothing",
    "refused_handshakes_back_off_then_connect",
    "resource_query_0x9205_is_answered_by_a_multi_packet_0x1205",
    "stray_flags_and_garbage_never_lose_the_next_frame",
    "text_message_0x8300_and_pass_through_0x8900_are_confirmed_by_0x0001",
    "unconfirmed_command_is_resent_once_after_reconnect",
    "vehicle_control_0x8500_locks_the_doors_and_0x0500_shows_them_locked",
    "wrong_version_flag_on_a_2013_frame_is_read_as_2013",
];

/// Bundled scenarios the page in headless Chromium passes (with the same snapshots' content).
const BROWSER_SCENARIOS: &[&str] = &[
    "attributes_0x8107_and_av_attributes_0x9003_are_answered_without_a_serial",
    "corrupted_frames_are_rejected_and_the_stream_resyncs",
    "device_that_does_not_escape_0x7e_is_understood_with_rejoin",
    "envelope_prefix_of_18_bytes_is_skipped",
    "reconnect_after_abrupt_close_loses_nothing",
    "resource_query_0x9205_is_answered_by_a_multi_packet_0x1205",
    "unconfirmed_command_is_resent_once_after_reconnect",
];

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn works(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Node and `clients/js/node_modules` ready (`npm ci` once when missing), or why not.
fn node_ready() -> Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            if !works("node", "--version") {
                return Err("`node` is not installed (Node 20 runs the reference client)".into());
            }
            let js = root().join("clients/js");
            if js.join("node_modules/ws").is_dir() {
                return Ok(());
            }
            let out = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&js)
                .output()
                .map_err(|e| format!("cannot run npm ci in clients/js: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "npm ci in clients/js failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        })
        .clone()
}

/// Skips (returns false) with a printed reason outside CI; fails in CI.
fn require(what: Result<(), String>) -> bool {
    match what {
        Ok(()) => true,
        Err(why) if !ci() => {
            eprintln!("skipped: {why}");
            false
        }
        Err(why) => panic!("{why} (CI=true: .ci/run installs it)"),
    }
}

fn chromium_ready() -> Result<(), String> {
    let name = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    if works(&name, "--version") {
        Ok(())
    } else {
        Err(format!("`{name}` is not installed (apt-get install chromium)"))
    }
}

fn scenario(name: &str) -> Scenario {
    Scenario::load(&root().join("scenarios").join(format!("{name}.toml"))).unwrap_or_else(|e| panic!("{e}"))
}

fn client(script: &str) -> ExternalClient {
    let path = root().join(script);
    ExternalClient::new(vec!["node".into(), path.display().to_string(), "{url}".into()]).expect("a command")
}

/// Between the starts of two scenarios' clients in [`run_all`]. Each scenario's clock starts at
/// its client's first connection, so a later start shifts nothing; but 26 Node processes (or
/// browsers) starting at once starve the ones already running on two cores: seen once at load
/// 28, a client had not yet seen its connection open when a command came 500 ms after the
/// gateway accepted it, so it queued and flushed it instead of sending it, which the transcript
/// shows (`ignored: [..., "flushed", "queued", ...]`).
const STAGGER: std::time::Duration = std::time::Duration::from_millis(200);

/// Runs each scenario once, side by side, their clients started [`STAGGER`] apart.
fn run_all(names: &[&str], c: &ExternalClient) -> Vec<ExternalRun> {
    std::thread::scope(|s| {
        let handles: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let sc = scenario(n);
                s.spawn(move || {
                    std::thread::sleep(STAGGER * i as u32);
                    external::run(&sc, c).unwrap_or_else(|e| panic!("{e}"))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("run panicked")).collect()
    })
}

fn failures(r: &ExternalRun) -> Vec<String> {
    let mut f: Vec<String> = r
        .transcript
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    f.extend(r.error.clone());
    if !f.is_empty() {
        f.push(format!("client stderr: {}", r.stderr));
    }
    f
}

/// Live runs use the real clock and this machine has two cores: the tests of this file take
/// turns, so one's processes do not slow another's past its scenario's timing.
static TURN: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Rounds of every scenario: 2 locally (the two runs must agree), 1 in CI (its time budget; ten
/// rounds were measured by hand, see `ten_rounds_give_the_stored_snapshots`).
fn rounds() -> usize {
    if ci() { 1 } else { 2 }
}

/// Each scenario run `rounds` times: every check holds each time, the normalised transcripts are
/// all the same, and they match the stored snapshot `<scenario>@external-<label>`.
fn passes_with_stable_snapshots(names: &[&str], c: &ExternalClient, label: &str, rounds: usize) {
    let runs: Vec<Vec<ExternalRun>> = (0..rounds).map(|_| run_all(names, c)).collect();
    let first = &runs[0];
    let mut problems = Vec::new();
    for (i, name) in names.iter().enumerate() {
        for (k, round) in runs.iter().enumerate() {
            let f = failures(&round[i]);
            if !f.is_empty() {
                problems.push(format!("{name} (run {}): {f:#?}", k + 1));
            }
            if let Some(d) = diff(&first[i].yaml, &round[i].yaml, "run 1", &format!("run {}", k + 1)) {
                problems.push(format!("{name}: runs 1 and {} differ:\n{d}", k + 1));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(c.label, label);
    for (name, r) in names.iter().zip(first) {
        insta::assert_snapshot!(snapshot::name(name, label), r.yaml);
    }
}

#[test]
fn node_reference_client_passes_bundled_scenarios() {
    if !require(node_ready()) {
        return;
    }
    let _turn = turn();
    assert!(NODE_SCENARIOS.len() >= 15);
    passes_with_stable_snapshots(NODE_SCENARIOS, &client("clients/js/node.mjs"), "node", rounds());
}

/// The measurement behind running once in CI: ten rounds in a row of every Node scenario, each
/// against the stored snapshots. Ignored because it takes a few minutes of real time:
/// `cargo test --test external_client -- --ignored --nocapture ten_rounds`.
#[test]
#[ignore = "ten consecutive rounds of the Node scenarios: the stability figure, run by hand (minutes)"]
fn ten_rounds_give_the_stored_snapshots() {
    if !require(node_ready()) {
        return;
    }
    let _turn = turn();
    let start = std::time::Instant::now();
    passes_with_stable_snapshots(NODE_SCENARIOS, &client("clients/js/node.mjs"), "node", 10);
    eprintln!(
        "10 rounds of {} scenarios: all identical, {:.1} s",
        NODE_SCENARIOS.len(),
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn browser_page_passes_bundled_scenarios() {
    if !require(node_ready()) || !require(chromium_ready()) {
        return;
    }
    let _turn = turn();
    let c = client("clients/js/browser.mjs");
    passes_with_stable_snapshots(BROWSER_SCENARIOS, &c, "browser", rounds());
}

/// A broken client fails the named check, and its transcript differs from the reference
/// client's snapshot where the bug shows (`expect_in_diff`), printed for the reader.
fn fails_with_a_diff(fixture: &str, scenario_name: &str, check: &str, expect_in_diff: &str) {
    let _turn = turn();
    let c = client(&format!("tests/fixtures/broken_clients/{fixture}"));
    let r = external::run(&scenario(scenario_name), &c).unwrap_or_else(|e| panic!("{e}"));
    let failed: Vec<_> = r.transcript.checks.iter().filter(|c| !c.ok).collect();
    assert!(
        failed.iter().any(|x| x.name == check),
        "{fixture} on {scenario_name}: expected {check} to fail, failed: {failed:?}"
    );
    let dir = root().join("tests/snapshots");
    let d = snapshot::compare(&dir, scenario_name, "node", &r.yaml, false)
        .unwrap_or_else(|| panic!("{fixture}: transcript equals the reference client's"));
    eprintln!("{fixture} on {scenario_name}, against the Node reference client's snapshot:\n{d}");
    assert!(
        d.contains(expect_in_diff),
        "{fixture}: diff lacks {expect_in_diff:?}:\n{d}"
    );
}

#[test]
fn client_that_glues_frames_across_a_reconnect_fails() {
    if !require(node_ready()) {
        return;
    }
    fails_with_a_diff(
        "glue_across_reconnect.mjs",
        "disconnect_mid_frame_is_never_glued_to_the_next_connection",
        "every_frame_once",
        "-      - {\"type\":\"frame_rejected\",\"check\":\"unterminated\"}",
    );
}

#[test]
fn client_that_never_resends_an_unconfirmed_command_fails() {
    if !require(node_ready()) {
        return;
    }
    fails_with_a_diff(
        "never_resend.mjs",
        "unconfirmed_command_is_resent_once_after_reconnect",
        "commands_confirmed",
        "-    received: [\"0x9207 13800000001 #0\"]",
    );
}

#[test]
fn checks_needing_unreported_events_are_not_applicable() {
    if !require(node_ready()) {
        return;
    }
    let _turn = turn();
    let c = client("tests/fixtures/broken_clients/messages_only.mjs");
    let r = external::run(&scenario("corrupted_frames_are_rejected_and_the_stream_resyncs"), &c).unwrap();
    let check = |n: &str| r.transcript.checks.iter().find(|c| c.name == n).cloned().unwrap();
    let rejected = check("frames_rejected");
    assert!(
        rejected.ok && rejected.detail.starts_with("not applicable"),
        "{rejected:?}"
    );
    assert!(
        r.yaml.contains("{name: frames_rejected, result: not_applicable}"),
        "{}",
        r.yaml
    );
    assert!(check("every_frame_once").ok, "{:?}", check("every_frame_once"));
    assert!(!r.yaml.contains("connections_agree"), "{}", r.yaml);
}

#[test]
fn a_line_that_breaks_the_contract_is_named_with_its_number() {
    if !require(node_ready()) {
        return;
    }
    let _turn = turn();
    let c = client("tests/fixtures/broken_clients/bad_line.mjs");
    let r = external::run(&scenario("envelope_prefix_of_18_bytes_is_skipped"), &c).unwrap();
    let e = r.error.expect("a contract error");
    assert!(
        e.starts_with("client stdout line 2: not JSON") && e.contains(": decoded 0x0200 from 13800000001"),
        "{e}"
    );
}

#[test]
fn the_cli_runs_a_scenario_against_a_client_command() {
    if !require(node_ready()) {
        return;
    }
    let _turn = turn();
    let out = Command::new(env!("CARGO_BIN_EXE_jt808-harness"))
        .args([
            "run",
            "--quiet",
            "--client-cmd",
            "node clients/js/node.mjs {url}",
            "scenarios/envelope_prefix_of_18_bytes_is_skipped.toml",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("envelope_prefix_of_18_bytes_is_skipped  external  ok"),
        "{text}"
    );
    assert!(Path::new(&root().join("clients/js/node.mjs")).is_file());
}
