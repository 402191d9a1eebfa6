//! Every command that prints ends quietly when its standard output goes away (`... | head -1`):
//! no panic, no error message, and its own exit status.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the binary with `args`; reads `lines` lines of its output (0: none), then closes the pipe
/// and calls `then` with the lines read. Returns whether it succeeded and its standard error.
fn with_reader_gone(args: &[&str], lines: usize, then: impl FnOnce(&[String])) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jt808-harness"))
        .args(args)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut read = Vec::new();
    for _ in 0..lines {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "{args:?} printed fewer than {lines} lines");
        read.push(line);
    }
    drop(reader);
    then(&read);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{args:?} did not end after its reader went away");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.success(), stderr)
}

fn assert_quiet(args: &[&str], lines: usize) {
    assert_quiet_then(args, lines, |_| {});
}

fn assert_quiet_then(args: &[&str], lines: usize, then: impl FnOnce(&[String])) {
    let (ok, stderr) = with_reader_gone(args, lines, then);
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    assert!(ok, "{args:?} failed: {stderr}");
}

#[test]
fn inspect_decode_and_the_file_commands_end_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.jsonl");
    let out = out.to_str().unwrap();
    assert_quiet(&["inspect", "captures/vectors_replay.jsonl"], 0);
    assert_quiet(&["inspect", "captures/vectors_replay.jsonl"], 1);
    assert_quiet(&["inspect", "captures/vectors_replay.jsonl", "--json"], 0);
    assert_quiet(&["decode", "--file", "captures/vectors_replay.jsonl"], 1);
    assert_quiet(&["decode", "--file", "captures/field_sample.pcap"], 1);
    assert_quiet(
        &["redact", "captures/vectors_replay.jsonl", "--out", out, "--key", "k"],
        0,
    );
    assert_quiet(&["import-pcap", "captures/field_sample.pcap", "--out", out], 0);
}

/// A server notices at its next log line, as `yes | head -1` does: a client connects to make one.
#[test]
fn serve_ends_quietly_when_its_log_reader_goes_away() {
    assert_quiet_then(&["serve", "--listen", "127.0.0.1:0", "--terminals", "1"], 1, |lines| {
        let url = lines[0]
            .trim()
            .strip_prefix("listening on ")
            .expect("the listening line");
        let _ = tokio_tungstenite::tungstenite::connect(url);
    });
}
