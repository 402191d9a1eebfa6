//! The binary end to end: exit codes, error messages and the JSON Lines contract.

use std::io::Write;
use std::process::{Command, Stdio};

fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jt808-harness"))
}

fn lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

const HEARTBEAT: &str = "7e000200000123456789017fff0a7e";

/// `decode` with `input` on its standard input; its output and standard error captured.
fn decode_stdin(input: &str) -> std::process::Output {
    let mut child = harness()
        .arg("decode")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn decode_arguments_are_one_stream_with_garbage_and_bad_frames_reported() {
    // A frame split across two arguments, garbage, then a frame with a wrong check code.
    let out = harness()
        .args([
            "decode",
            &HEARTBEAT[..9],
            &HEARTBEAT[9..],
            "dead beef",
            "7e000200000123456789017fff0b7e",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "rejected frames still exit 0");
    let v = lines(&out.stdout);
    assert_eq!(v.len(), 3, "{v:?}");
    assert_eq!(v[0]["type"], "message");
    assert_eq!(v[0]["msg_id"], "0x0002");
    assert_eq!(v[0]["version"], "2013");
    assert_eq!(v[0]["phone"], "12345678901");
    assert_eq!(v[0]["serial"], 32767);
    assert_eq!(v[1]["type"], "skipped");
    assert_eq!(v[1]["len"], 4);
    assert_eq!(v[2]["type"], "error");
    assert_eq!(v[2]["check"], "bad_checksum");
    assert_eq!(v[2]["offset"], 19);
}

#[test]
fn decode_rejoins_a_frame_with_an_unescaped_0x7e_only_when_asked() {
    // Vector iss-jtframework71: a device left a 0x7E inside the longitude unescaped.
    const FRAME: &str = "7E0200005B01234567891000110000000000000000020A3AAC067EAA2400000000000022083117155601040000014A30011D310100EB31000C00B28986049401208044782200060089FFFFFFFE000600C5FFFFFFE7000B00D801CC0090050FEC20C7000400B71D00947E";
    let strict = lines(&harness().args(["decode", FRAME]).output().unwrap().stdout);
    assert!(strict.iter().all(|l| l["type"] != "message"), "{strict:?}");
    let out = harness()
        .args(["decode", "--rejoin-unescaped-flag", FRAME])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v = lines(&out.stdout);
    assert_eq!(v.len(), 2, "{v:?}");
    assert_eq!(
        v[0],
        serde_json::json!({"type": "unescaped_flag", "offset": 0, "at": 26})
    );
    assert_eq!(v[1]["type"], "message");
    assert_eq!(v[1]["serial"], 17);
    assert_eq!(v[1]["body"]["lng"], 108964388);
}

#[test]
fn decode_reads_stdin_when_no_arguments() {
    let out = decode_stdin(&format!("{HEARTBEAT}\n  {HEARTBEAT}\n"));
    assert!(out.status.success());
    assert_eq!(lines(&out.stdout).len(), 2);
}

#[test]
fn decode_reads_a_binary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream.bin");
    let mut bytes = hex::decode(HEARTBEAT).unwrap();
    bytes.extend_from_slice(&hex::decode("7e0002000001234567").unwrap()); // cut off
    std::fs::write(&path, &bytes).unwrap();
    let out = harness().args(["decode", "--file"]).arg(&path).output().unwrap();
    assert!(out.status.success());
    let v = lines(&out.stdout);
    assert_eq!(v[0]["type"], "message");
    assert_eq!(
        v[1]["check"], "unterminated",
        "the cut frame is reported at the end: {v:?}"
    );
}

#[test]
fn decode_names_the_bad_hex_character_and_where() {
    let out = harness().args(["decode", HEARTBEAT, "7e00zz"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("argument 2") && err.contains("'z'") && err.contains("position 4"),
        "{err}"
    );
    // The first argument was decoded before the error.
    assert_eq!(lines(&out.stdout).len(), 1);
}

#[test]
fn decode_names_the_bad_hex_character_on_stdin_by_line_and_position() {
    let out = decode_stdin(&format!("{HEARTBEAT}\n  7e0z\n"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stdin line 2") && err.contains("'z'") && err.contains("position 5"),
        "{err}"
    );
    assert_eq!(lines(&out.stdout).len(), 1, "the line before was decoded");
}

/// Serves its text in reads of at most `most` bytes, and remembers the largest buffer it was
/// asked to fill.
struct Trickle<'a> {
    text: &'a [u8],
    most: usize,
    largest_ask: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.largest_ask = self.largest_ask.max(buf.len());
        let n = buf.len().min(self.most).min(self.text.len());
        buf[..n].copy_from_slice(&self.text[..n]);
        self.text = &self.text[n..];
        Ok(n)
    }
}

#[test]
fn decode_streams_a_long_stdin_line_in_bounded_chunks() {
    use jt808_harness::cli::decode::{HEX_CHUNK, stream_hex};
    // One line of 20,000 frames (600,000 hex digits), ten times the chunk; a space inside a frame.
    let line = format!("{} {HEARTBEAT}\n", HEARTBEAT.repeat(19_999));
    let want = hex::decode(line.replace([' ', '\n'], "")).unwrap();
    let mut reader = Trickle {
        text: line.as_bytes(),
        most: 7_777,
        largest_ask: 0,
    };
    let mut got = Vec::new();
    let summary = stream_hex(&mut reader, HEX_CHUNK, |b| got.extend_from_slice(b)).unwrap();
    assert!(got == want, "{} bytes decoded, {} expected", got.len(), want.len());
    assert_eq!(summary.digits, 600_000);
    assert!(reader.largest_ask <= HEX_CHUNK, "asked to fill {}", reader.largest_ask);
    assert!(
        summary.peak_buffer < 2 * HEX_CHUNK && summary.peak_buffer * 5 < line.len(),
        "held {} bytes of a {}-byte line",
        summary.peak_buffer,
        line.len()
    );
    // And through the command: every frame comes out.
    let args = jt808_harness::cli::decode::DecodeArgs {
        hex: vec![],
        file: None,
        packets: false,
        rejoin_unescaped_flag: false,
    };
    let mut out = Vec::new();
    jt808_harness::cli::decode::run(&args, line.as_bytes(), &mut out).unwrap();
    assert_eq!(lines(&out).len(), 20_000);
}

#[test]
fn decode_stdin_chunk_boundaries_change_nothing() {
    use jt808_harness::cli::decode::{DecodeCmdError, stream_hex};
    // An em space (3 bytes of UTF-8, whitespace) and nibbles cut at every possible point.
    let text = "7E00 02\n\u{2003}7e 0z\n".as_bytes();
    for chunk in 1..=12 {
        for most in [1, 2, 5, 64] {
            let mut got = Vec::new();
            let reader = Trickle {
                text,
                most,
                largest_ask: 0,
            };
            let err = stream_hex(reader, chunk, |b| got.extend_from_slice(b)).unwrap_err();
            let at = format!("chunk {chunk}, reads of {most}");
            assert!(
                matches!(&err, DecodeCmdError::BadHex { source_name, position: 5, found: 'z' }
                    if source_name == "stdin line 2"),
                "{at}: {err}"
            );
            assert_eq!(
                got,
                [0x7E, 0x00, 0x02, 0x7E],
                "{at}: the bytes before the bad character"
            );
        }
        let odd = stream_hex(&b"7e0\n"[..], chunk, |_| {}).unwrap_err();
        assert!(matches!(odd, DecodeCmdError::OddHex { digits: 3 }), "{odd}");
        let cut = stream_hex(&[b'7', 0xE2, 0x80][..], chunk, |_| {}).unwrap_err();
        assert!(cut.to_string().contains("UTF-8"), "{cut}");
    }
}

#[test]
fn run_names_a_wrong_scenario_file_line_and_key_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "description = \"x\"\n[client]\nping_intervl_ms = 5\n").unwrap();
    let junit = dir.path().join("junit.xml");
    let out = harness()
        .args(["run", "--quiet", "--junit"])
        .arg(&junit)
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a bad scenario fails the run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("bad.toml:3:1") && text.contains("ping_intervl_ms"),
        "{text}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("tests=\"1\" failures=\"1\""), "{xml}");
}

#[test]
fn run_passes_a_bundled_scenario_against_its_snapshot() {
    let out = harness()
        .args([
            "run",
            "--quiet",
            "scenarios/reconnect_after_abrupt_close_loses_nothing.toml",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed, 0 failed"), "{text}");
}

/// `client` and `stress` refuse an out-of-range number before doing anything, naming the option
/// and its range, with a usage error's exit status.
#[test]
fn client_and_stress_refuse_an_out_of_range_option_naming_it_and_its_range() {
    for (args, option, range) in [
        (
            &["client", "--url", "ws://127.0.0.1:1", "--queue-capacity", "0"][..],
            "--queue-capacity",
            "1..=1000000",
        ),
        (
            &["client", "--url", "ws://127.0.0.1:1", "--ping-interval-ms", "0"][..],
            "--ping-interval",
            "0s is not in 1ms..=1day",
        ),
        (&["stress", "--clients", "0"][..], "--clients", "1..=1000000"),
        (
            &["stress", "--storm", "every=0.0001s,fraction=0.5"][..],
            "--storm",
            "1ms..=7days",
        ),
    ] {
        let out = harness().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: a usage error");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(option) && err.contains(range), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing started");
    }
}

// ===== one convention across commands (issue 17) =====

use std::time::Duration;

use clap::CommandFactory;
use jt808_harness::cli::Cli;

/// Every argument of every command, with the command path that holds it.
fn every_arg() -> Vec<(String, clap::Arg)> {
    fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Arg)>) {
        for a in cmd.get_arguments() {
            out.push((path.to_string(), a.clone()));
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }
    let mut cmd = Cli::command();
    cmd.build();
    let mut out = Vec::new();
    walk(&cmd, "jt808-harness", &mut out);
    out
}

fn is_duration(a: &clap::Arg) -> bool {
    a.get_value_names().is_some_and(|n| n.iter().any(|v| v == "DURATION"))
}

/// `value` through `arg`'s own value parser: the duration, or clap's error text.
fn parse_with(arg: &clap::Arg, value: &str) -> Result<Duration, String> {
    let probe = clap::Command::new("probe").arg(
        clap::Arg::new("d")
            .long("d")
            .value_parser(arg.get_value_parser().clone()),
    );
    probe
        .try_get_matches_from(["probe", "--d", value])
        .map(|m| *m.get_one::<Duration>("d").expect("a duration"))
        .map_err(|e| e.to_string())
}

/// The bare unit of a duration option: seconds for `client --idle-exit` (kept for old scripts, its
/// help says so) and the hidden `explore --hang-secs`; milliseconds everywhere else.
fn bare_unit(long: &str) -> Duration {
    if long == "idle-exit" {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(1)
    }
}

#[test]
fn every_duration_option_takes_250ms_2s_and_a_bare_number_in_its_documented_unit() {
    let durations: Vec<_> = every_arg().into_iter().filter(|(_, a)| is_duration(a)).collect();
    assert!(durations.len() >= 30, "only {} duration options found", durations.len());
    for (cmd, a) in &durations {
        let long = a.get_long().expect("a long name");
        let flag = format!("--{long}");
        let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
        for (value, want) in [
            ("250ms", Duration::from_millis(250)),
            ("2s", Duration::from_secs(2)),
            ("250", bare_unit(long) * 250),
        ] {
            match parse_with(a, value) {
                Ok(d) => assert_eq!(d, want, "{cmd} {flag} {value}"),
                // The form was read; the value is outside this option's range (named in its help).
                Err(e) => assert!(
                    e.contains("is not in") && e.contains(value),
                    "{cmd} {flag} {value}: {e}"
                ),
            }
        }
        if bare_unit(long) != Duration::from_millis(1) {
            assert!(
                help.contains("bare number is SECONDS"),
                "{cmd} {flag}: the help must say so: {help}"
            );
        }
    }
}

#[test]
fn old_ms_names_are_aliases_that_keep_their_meaning_and_no_shown_name_ends_in_a_unit() {
    let args = every_arg();
    for (cmd, a) in &args {
        if let Some(long) = a.get_long()
            && !a.is_hide_set()
        {
            assert!(!long.ends_with("-ms") && !long.ends_with("-secs"), "{cmd} --{long}");
        }
    }
    #[rustfmt::skip]
    let renamed: &[(&str, &str)] = &[
        ("client", "connect-timeout-ms"), ("client", "ping-interval-ms"), ("client", "idle-timeout-ms"),
        ("client", "backoff-min-ms"), ("client", "backoff-max-ms"), ("client", "backoff-reset-ms"),
        ("client", "confirm-timeout-ms"), ("client", "retransmit-wait-ms"),
        ("serve", "interval-ms"), ("serve", "upload-delay-ms"), ("serve", "session-idle-ms"),
        ("serve", "frame-interval-ms"),
        ("stress", "frame-interval-ms"), ("stress", "command-interval-ms"), ("stress", "backoff-min-ms"),
        ("stress", "backoff-max-ms"), ("stress", "ping-interval-ms"), ("stress", "idle-timeout-ms"),
        ("record", "prefix-probe-ms"), ("record", "connect-timeout-ms"), ("record", "close-grace-ms"),
        ("record", "handshake-timeout-ms"),
        ("explore", "grace-ms"),
    ];
    for (sub, old) in renamed {
        let path = format!("jt808-harness {sub}");
        let (_, a) = args
            .iter()
            .find(|(c, a)| *c == path && a.get_all_aliases().is_some_and(|al| al.contains(old)))
            .unwrap_or_else(|| panic!("{sub} has no alias --{old}"));
        let new = a.get_long().unwrap();
        assert_eq!(Some(new), old.strip_suffix("-ms"), "{sub} --{old}");
        assert_eq!(
            parse_with(a, "250"),
            Ok(Duration::from_millis(250)),
            "{sub} --{old} 250"
        );
    }
    // The old names work on the real command line too, with their old meaning.
    let out = harness()
        .args(["client", "--url", "ws://127.0.0.1:1", "--ping-interval-ms", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "0 ms is still below the 1 ms floor");
}

#[test]
fn a_bad_duration_is_a_usage_error_naming_the_option_and_the_value() {
    for args in [
        &["client", "--url", "ws://127.0.0.1:1", "--ping-interval", "5parsecs"][..],
        &["serve", "--session-idle", "10x"],
        &["stress", "--drain-timeout", "1fortnight"],
        &["explore", "scenarios", "--time", "soon"],
        &[
            "record",
            "--upstream",
            "ws://127.0.0.1:1",
            "--out",
            "/dev/null",
            "--close-grace",
            "1.5.5s",
        ],
    ] {
        let out = harness().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let (option, value) = (args[args.len() - 2], args[args.len() - 1]);
        assert!(err.contains(option) && err.contains(value), "{args:?}: {err}");
        assert!(
            !err.contains('\u{1b}'),
            "{args:?}: no colour when stderr is not a terminal: {err:?}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: nothing started");
    }
}

#[test]
fn every_default_is_shown_by_clap_as_default_and_durations_in_the_duration_form() {
    let prose = ["Default ", "Default:", "default ", "(default"];
    let mut shown = 0;
    let mut cmd = Cli::command();
    cmd.build();
    let helps: Vec<(String, String)> = cmd
        .get_subcommands_mut()
        .flat_map(|s| {
            let mut v = vec![(s.get_name().to_string(), s.render_long_help().to_string())];
            for sub in s.get_subcommands_mut() {
                v.push((sub.get_name().to_string(), sub.render_long_help().to_string()));
            }
            v
        })
        .collect();
    for (cmd_path, a) in every_arg() {
        let text = a.get_help().map(|h| h.to_string()).unwrap_or_default();
        for p in prose {
            assert!(
                !text.contains(p),
                "{cmd_path} {:?}: a default in prose: {text}",
                a.get_id()
            );
        }
        let defaults: Vec<String> = a
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        // Flags (`--quiet`) carry a `false` default clap does not show; positionals have none.
        if defaults.is_empty() || a.is_hide_set() || a.is_positional() || !a.get_action().takes_values() {
            continue;
        }
        assert!(
            !a.is_hide_default_value_set(),
            "{cmd_path} {:?} hides its default",
            a.get_id()
        );
        let want = format!("[default: {}]", defaults.join(", "));
        let name = cmd_path.rsplit(' ').next().unwrap();
        let help = &helps
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name}"))
            .1;
        assert!(
            help.contains(&want),
            "{cmd_path} --{}: {want} not in its help",
            a.get_long().unwrap_or("")
        );
        if is_duration(&a) {
            let d = jt808_harness::cli::duration::parse(&defaults[0], jt808_harness::cli::duration::Bare::Millis)
                .unwrap_or_else(|e| panic!("{cmd_path} {:?}: {e}", a.get_id()));
            assert_eq!(
                jt808_harness::cli::duration::show(d),
                defaults[0],
                "{cmd_path} {:?}",
                a.get_id()
            );
        }
        shown += 1;
    }
    assert!(shown >= 60, "only {shown} defaults found");
}

/// The bundled scenario that replays a capture: its `path` is relative to the scenario file.
const CAPTURE_SCENARIO: &str = "scenarios/real_device_frames_from_three_implementations_replay.toml";

#[test]
fn run_from_another_directory_finds_captures_and_snapshots() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let elsewhere = tempfile::tempdir().unwrap();
    let out = harness()
        .current_dir(elsewhere.path())
        .args(["run", "--quiet"])
        .arg(root.join(CAPTURE_SCENARIO))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("1 passed, 0 failed"), "{text}");
    // No PATH, from a directory inside the project: the project's scenarios/, every one passing.
    let out = harness()
        .current_dir(root.join("tests/fixtures"))
        .args(["run", "--quiet"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // Only the files directly in scenarios/ (scenarios/long/ is not run).
    let bundled = std::fs::read_dir(root.join("scenarios"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "toml"))
        .count();
    assert!(text.contains(&format!("{bundled} passed, 0 failed")), "{text}");
}

#[test]
fn run_prints_a_line_per_finished_scenario_when_stderr_is_not_a_terminal() {
    let out = harness()
        .args(["run", "scenarios/reconnect_after_abrupt_close_loses_nothing.toml"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        ["ok reconnect_after_abrupt_close_loses_nothing (snapshot)"],
        "{err:?}"
    );
    let quiet = harness()
        .args([
            "run",
            "--quiet",
            "scenarios/reconnect_after_abrupt_close_loses_nothing.toml",
        ])
        .output()
        .unwrap();
    assert!(quiet.stderr.is_empty(), "{:?}", String::from_utf8_lossy(&quiet.stderr));
}

#[test]
fn record_prints_its_address_on_stdout_like_serve() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = harness()
        .args(["record", "--upstream", "ws://127.0.0.1:1/", "--out"])
        .arg(dir.path().join("r.jsonl"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Read on a thread, so a recorder that never prints fails the test instead of hanging it.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut first);
        let _ = tx.send(first);
    });
    let first = rx.recv_timeout(Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    let first = first.expect("no line on stdout within 20 s");
    let addr = first
        .trim_end()
        .strip_prefix("listening on ws://127.0.0.1:")
        .unwrap_or_else(|| panic!("{first:?}"));
    assert!(addr.parse::<u16>().is_ok_and(|p| p > 0), "{first:?}");
}

/// `line` split as a POSIX shell splits words (single and double quotes group; no expansion),
/// cut at the first `|`, `&`, `;` or `#` outside quotes.
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut cur, mut quote, mut any) = (Vec::new(), String::new(), None, false);
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, '|' | '&' | ';' | '#') => break,
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// Every `jt808-harness COMMAND ...` of the README: the lines of its code blocks (with `\`
/// continuations joined) and its inline code spans that are whole commands (no `[...]` syntax).
fn readme_commands() -> Vec<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut out = Vec::new();
    let (mut in_block, mut pending, mut prose) = (false, String::new(), String::new());
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            if !pending.is_empty() || line.contains("jt808-harness ") {
                pending.push_str(line.trim_end_matches('\\'));
                pending.push(' ');
                if !line.ends_with('\\') {
                    out.push(std::mem::take(&mut pending));
                }
            }
        } else if !line.starts_with('|') {
            // Prose, joined: a code span may wrap onto the next line.
            prose.push_str(line);
            prose.push(' ');
        }
    }
    for span in prose.split('`').skip(1).step_by(2) {
        // A whole command, not the name of one (`jt808-harness client` prints ...).
        let whole = span.split_whitespace().count() > 2;
        if whole && span.contains("jt808-harness ") && !span.contains('[') && !span.contains("...") {
            out.push(span.to_string());
        }
    }
    out
}

#[test]
fn every_command_the_readme_shows_parses() {
    let subs = [
        "run",
        "serve",
        "client",
        "decode",
        "record",
        "import-pcap",
        "redact",
        "inspect",
        "stress",
        "explore",
    ];
    let mut checked = 0;
    for cmd in readme_commands() {
        let text = cmd
            .replace("${{ github.run_id }}", "1")
            .replace("${{ matrix.shard }}", "0")
            .replace("${{ vars.STRESS_GATEWAY_URL }}", "ws://127.0.0.1:1")
            .replace("$URL", "ws://127.0.0.1:1")
            .replace("$JOB_COMPLETION_INDEX", "0")
            .replace("$i", "0");
        let words = shell_words(&text);
        let Some(at) = words.iter().position(|w| w.ends_with("jt808-harness")) else {
            continue;
        };
        let argv = &words[at..];
        if !argv.get(1).is_some_and(|s| subs.contains(&s.as_str())) {
            continue;
        }
        if let Err(e) = <Cli as clap::Parser>::try_parse_from(argv) {
            panic!("README: `{}` does not parse:\n{e}", argv.join(" "));
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} README commands found");
}

/// Options whose bare number was seconds before the convention read it as milliseconds now, and
/// say so on stderr; a bare number elsewhere gets no note.
#[test]
fn a_bare_number_where_seconds_were_meant_before_is_read_as_milliseconds_with_a_note() {
    let out = harness()
        .args(["stress", "--duration", "30", "--clients", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--clients 0 still stops it");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("note: --duration 30 is read as 30ms") && err.contains("write 30s for seconds"),
        "{err}"
    );
    let out = harness()
        .args(["stress", "--ping-interval", "30", "--clients", "0"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("note:"),
        "milliseconds always were"
    );
}

/// Off a terminal (here stderr is a pipe) `stress` writes a line per phase as it enters it, so a CI
/// log shows where a long run is; `--quiet` writes none.
#[test]
fn stress_off_a_terminal_writes_a_line_per_phase_and_quiet_none() {
    let run = |extra: &[&str]| {
        let out = harness()
            .args(["stress", "--clients", "2", "--duration", "300ms"])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&[]);
    let phases: Vec<&str> = err
        .lines()
        .filter_map(|l| l.strip_prefix("stress: "))
        .map(|l| l.split(':').next().unwrap_or(l))
        .collect();
    assert_eq!(
        phases,
        ["starting clients", "connecting", "running", "draining", "shutting down"],
        "{err}"
    );
    assert!(!run(&["--quiet"]).contains("stress: "));
}
