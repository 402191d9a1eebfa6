//! `jt808-harness serve` end to end: the binary prints the listening line first, a WebSocket
//! client gets frames that decode, the log follows as JSON Lines, Ctrl-C stops it cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use jt808_harness::cli::serve::{ServeArgs, serve};
use jt808_harness::codec::{DecodeEvent, Decoder};
use jt808_harness::gateway::source::SourceSpec;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Kills the child if the test fails before it exits.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> (Guard, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jt808-harness"))
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the binary");
    let out = BufReader::new(child.stdout.take().unwrap());
    (Guard(child), out)
}

#[tokio::test]
async fn the_binary_prints_where_it_listens_first_and_serves_frames_that_decode() {
    let (mut child, mut out) = spawn(&[
        "--terminals",
        "2",
        "--messages",
        "3",
        "--interval-ms",
        "20",
        "--version",
        "mixed",
        "--prefix-len",
        "18",
        "--seed",
        "7",
    ]);
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let url = first
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .to_string();
    assert!(url.starts_with("ws://127.0.0.1:") && !url.ends_with(":0"), "{url}");

    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let mut dec = Decoder::default();
    let mut messages = Vec::new();
    while messages.len() < 6 {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("frames within 10 s")
            .unwrap()
            .unwrap();
        let WsMessage::Binary(b) = msg else { continue };
        assert_eq!(&b[..3], b"ENV", "the 18-byte envelope");
        dec.push(&b[18..], Duration::ZERO, |e| match e {
            DecodeEvent::Message(m) => messages.push(m),
            DecodeEvent::Packet { .. } => {}
            other => panic!("{other:?}"),
        });
    }
    let versions: std::collections::BTreeSet<_> = messages.iter().map(|m| m.header.version).collect();
    assert_eq!(versions.len(), 2, "a mixed fleet: {versions:?}");
    ws.close(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Ctrl-C: a clean exit, the log written out to the end.
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGINT) }, 0);
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let log: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).expect("JSON Lines"))
        .collect();
    let types: Vec<&str> = log.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"accepted"), "{types:?}");
    assert!(types.iter().filter(|t| **t == "offered").count() >= 6, "{types:?}");
    assert_eq!(log.last().unwrap()["how"], "client_close", "{log:?}");
}

#[test]
fn a_missing_capture_fails_at_start_naming_the_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_jt808-harness"))
        .args(["serve", "--capture", "no/such/capture.jsonl"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "no listening line before the source is known good"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no/such/capture.jsonl"), "{err}");
}

#[test]
fn a_bad_fault_is_refused_with_its_text() {
    let out = Command::new(env!("CARGO_BIN_EXE_jt808-harness"))
        .args(["serve", "--fault", "type=\"splitt\""])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("splitt"), "{err}");
}

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

fn args(line: &[&str]) -> ServeArgs {
    use clap::Parser;
    Cli::try_parse_from(std::iter::once("serve").chain(line.iter().copied()))
        .unwrap()
        .serve
}

#[test]
fn arguments_resolve_to_a_plan() {
    // No source flags: the default fleet, unlimited.
    let plan = args(&[]).plan().unwrap();
    let SourceSpec::Fleet(f) = &plan.source else { panic!() };
    assert_eq!((f.terminals, f.messages), (2, 0));
    assert_eq!(plan.gateway.seed, 1);
    let plan = args(&[
        "--capture",
        "x.jsonl",
        "--speed",
        "10",
        "--loops",
        "0",
        "--fault",
        "type=\"drop\", every=2",
        "--upload-delay-ms",
        "5",
        "--seed",
        "9",
    ])
    .plan()
    .unwrap();
    let SourceSpec::Capture(c) = &plan.source else { panic!() };
    assert_eq!((c.speed, c.loops, c.terminal.upload_delay_ms), (10.0, 0, 5));
    assert_eq!((plan.faults.len(), plan.gateway.seed), (1, 9));
    // A capture and fleet flags contradict each other; --speed needs a capture.
    use clap::Parser;
    assert!(Cli::try_parse_from(["serve", "--capture", "x", "--terminals", "3"]).is_err());
    assert!(Cli::try_parse_from(["serve", "--speed", "2"]).is_err());
}

#[test]
fn a_scenario_supplies_source_faults_gateway_and_seed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(
        &path,
        "description = \"x\"\nseed = 5\n[source]\ntype = \"fleet\"\nterminals = 3\n[gateway]\nprefix_len = 18\n[[faults]]\ntype = \"drop\"\nevery = 3\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let plan = args(&["--scenario", p]).plan().unwrap();
    let SourceSpec::Fleet(f) = &plan.source else { panic!() };
    assert_eq!(f.terminals, 3);
    assert_eq!(
        (plan.gateway.seed, plan.gateway.prefix_len, plan.faults.len()),
        (5, 18, 1)
    );
    let plan = args(&["--scenario", p, "--seed", "6", "--fault", "type=\"duplicate\""])
        .plan()
        .unwrap();
    assert_eq!(
        (plan.gateway.seed, plan.faults.len()),
        (6, 2),
        "flags beside it override and add"
    );
}

#[tokio::test]
async fn in_process_serve_writes_the_listening_line_then_stops_on_request() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut out: Vec<u8> = Vec::new();
        let r = serve(args(&["--messages", "1", "--quiet"]), &mut out, async {
            let _ = rx.await;
        })
        .await;
        (r, out)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    tx.send(()).unwrap();
    let (r, out) = task.await.unwrap();
    r.unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 1, "--quiet: the listening line only: {text:?}");
    assert!(text.starts_with("listening on ws://127.0.0.1:"));
}

/// Resident set of a process, bytes (Linux `/proc/PID/status`, `VmRSS`).
fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// Measurement (ignored: a few seconds of real sockets, and RSS depends on the allocator):
/// `cargo test --release --test serve -- --ignored --nocapture rss_after_handshakes`. 3,000
/// handshakes on distinct paths, each reading one message then closing, twice over; prints the
/// RSS growth of `serve`. The hardening bound: under 60 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: 6,000 handshakes against a release serve, RSS read from /proc; run by hand for the figure"]
async fn rss_after_handshakes_on_distinct_paths() {
    let (child, mut out) = spawn(&["--quiet"]);
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let url = first.trim_end().strip_prefix("listening on ").unwrap().to_string();
    let pid = child.0.id();
    let start = rss_of(pid);
    for round in 0..2 {
        for i in 0..3000 {
            let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}/s{i}")).await.unwrap();
            let _ = tokio::time::timeout(Duration::from_secs(2), ws.next()).await;
            let _ = ws.close(None).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss = rss_of(pid);
        println!(
            "round {}: serve RSS {:.1} MB -> {:.1} MB (+{:.1} MB)",
            round + 1,
            start as f64 / 1e6,
            rss as f64 / 1e6,
            (rss - start) as f64 / 1e6
        );
    }
}

#[test]
fn a_capture_with_a_bad_line_fails_at_start_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.jsonl");
    let frame = "7e000200000123456789017fff0a7e";
    std::fs::write(
        &path,
        format!(
            "{{\"format\":\"jt808-capture\",\"version\":1,\"prefix_len\":0}}\n\
             {{\"t_us\":0,\"conn\":1,\"from\":\"gateway\",\"hex\":\"{frame}\"}}\n\
             {{\"t_us\":10,\"conn\":1,\"from\":\"gateway\",\"hex\":\"zz\"}}\n\
             {{\"t_us\":20,\"conn\":1,\"from\":\"gateway\",\"hex\":\"{frame}\"}}\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_jt808-harness"))
        .args(["serve", "--capture", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "no listening line: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:3:", path.display())), "{err}");
}

/// Any JSON value, refusing an object that repeats a key (serde_json alone keeps the last).
struct Strict;

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Strict;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
            }
            map.next_value::<Strict>()?;
        }
        Ok(Strict)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        while seq.next_element::<Strict>()?.is_some() {}
        Ok(Strict)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict)
    }
}

/// The serve log is one JSON object per line with unique keys (fault lines included), and a
/// refused handshake is in the log before any other connection arrives.
#[tokio::test]
async fn the_log_has_unique_keys_and_a_refusal_is_logged_when_it_happens() {
    let (mut child, out) = spawn(&[
        "--messages",
        "4",
        "--interval-ms",
        "10",
        "--fault",
        "type=\"refuse\", count=1",
        "--fault",
        "type=\"drop\", every=2",
    ]);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in out.lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let url = first.strip_prefix("listening on ").unwrap().to_string();
    let err = tokio_tungstenite::connect_async(&url).await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    let mut lines = Vec::new();
    let mut seen = (false, false);
    while seen != (true, true) {
        let line = rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("the refusal is not in the log before the next connection: {lines:#?}"));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        seen.0 |= v["type"] == "refused";
        seen.1 |= v["type"] == "fault" && v["what"] == "refuse";
        lines.push(line);
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap();
    }
    ws.close(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGINT) }, 0);
    assert!(child.0.wait().unwrap().success());
    lines.extend(rx.iter());
    let faults = lines.iter().filter(|l| l.contains("\"type\":\"fault\"")).count();
    assert!(faults >= 2, "a refuse and a drop record at least: {lines:#?}");
    for line in &lines {
        if let Err(e) = serde_json::from_str::<Strict>(line) {
            panic!("not one JSON object with unique keys ({e}): {line}");
        }
    }
}

#[test]
fn out_of_range_counts_are_refused_naming_the_option_and_range() {
    use clap::Parser;
    for (line, option, range) in [
        (["serve", "--terminals", "4294967295"], "--terminals", "1..=100000"),
        (["serve", "--terminals", "0"], "--terminals", "1..=100000"),
        (["serve", "--prefix-len", "99999999999"], "--prefix-len", "0..=4096"),
        (
            ["serve", "--frames-per-message", "0"],
            "--frames-per-message",
            "1..=1024",
        ),
        (["serve", "--max-sessions", "0"], "--max-sessions", "1..=10000000"),
    ] {
        let err = Cli::try_parse_from(line)
            .err()
            .unwrap_or_else(|| panic!("{line:?} accepted"))
            .to_string();
        assert!(err.contains(option) && err.contains(range), "{line:?}: {err}");
    }
}
