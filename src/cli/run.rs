//! `jt808-harness run [PATH...]`: runs scenarios, shows progress, prints a summary table and a
//! readable diff for every transcript that changed against its stored insta snapshot, writes JUnit
//! XML for CI systems, and exits non-zero on any failure. Relative paths resolve as [`super::paths`]
//! says, so it runs the same from any directory; progress is a bar on a terminal and a line per
//! finished scenario otherwise ([`super::progress`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::progress::Progress;
use crate::scenario::Scenario;
use crate::scenario::external::{self, ExternalClient};
use crate::scenario::runner::{self, Mode};
use crate::transcript::Transcript;

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Scenario files or directories (none: the `scenarios/` of the project the current directory
    /// is in).
    pub paths: Vec<PathBuf>,
    /// Also run every scenario live over loopback TCP (invariants only, no snapshot).
    #[arg(long)]
    pub live: bool,
    /// Where the insta snapshots live; a relative path is below each scenario's project root (the
    /// nearest directory above it with a Cargo.toml).
    #[arg(long, default_value = "tests/snapshots")]
    pub snapshots: PathBuf,
    /// Write JUnit XML here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write each changed transcript next to its snapshot as `.snap.new` for `cargo insta review`.
    #[arg(long)]
    pub write_new: bool,
    /// No progress (bar or lines on stderr).
    #[arg(long)]
    pub quiet: bool,
    /// Run every scenario live against this external client process instead of the built-in
    /// client (`{url}` is the gateway URL), e.g. 'node clients/js/node.mjs {url}'; overrides a
    /// scenario's `[client] command`. See clients/CONTRACT.md.
    #[arg(long, value_name = "CMD")]
    pub client_cmd: Option<String>,
}

/// What happened to one scenario.
#[derive(Debug)]
pub struct Outcome {
    /// Scenario name (file stem).
    pub name: String,
    /// Snapshot or live.
    pub mode: Mode,
    /// The transcript, when the run itself worked.
    pub transcript: Option<Transcript>,
    /// Snapshot comparison: None = no snapshot to compare (live mode), Some(None) = same,
    /// Some(Some(diff)) = changed or missing.
    pub snapshot: Option<Option<String>>,
    /// The error that stopped the run (bad file, gateway could not start, ...).
    pub error: Option<String>,
    /// Wall-clock seconds the run took (JUnit only; never in a transcript).
    pub seconds: f64,
}

impl Outcome {
    /// Passed: ran, every check held, snapshot unchanged.
    pub fn passed(&self) -> bool {
        self.error.is_none()
            && self.transcript.as_ref().is_some_and(Transcript::passed)
            && !matches!(self.snapshot, Some(Some(_)))
    }

    fn summary_value(&self, key: &str) -> String {
        self.transcript
            .as_ref()
            .and_then(|t| t.summary.get(key))
            .map_or_else(|| "-".into(), |v| v.to_string())
    }
}

/// The file insta keeps the snapshot of scenario file `file_name` in (`tests/scenarios.rs`, test
/// `transcript`, `insta::glob!`).
pub fn snapshot_path(dir: &Path, file_name: &str) -> PathBuf {
    dir.join(format!("scenarios__transcript@{file_name}.snap"))
}

/// The content of an insta `.snap` file (after its `---` header).
pub fn snapshot_content(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("---\n") else {
        return text;
    };
    match rest.find("\n---\n") {
        Some(i) => &rest[i + 5..],
        None => text,
    }
}

/// A unified diff of two texts, or None when equal (ignoring trailing whitespace at the end).
pub fn diff(old: &str, new: &str, old_name: &str, new_name: &str) -> Option<String> {
    if old.trim_end() == new.trim_end() {
        return None;
    }
    let d = similar::TextDiff::from_lines(old.trim_end(), new.trim_end());
    Some(
        d.unified_diff()
            .context_radius(2)
            .header(old_name, new_name)
            .to_string(),
    )
}

/// Runs one scenario in one mode and compares with its snapshot.
pub fn run_one(
    path: &Path,
    mode: Mode,
    snapshots: &Path,
    write_new: bool,
    client_cmd: Option<&ExternalClient>,
) -> Outcome {
    let start = Instant::now();
    let name = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let mut out = Outcome {
        name,
        mode,
        transcript: None,
        snapshot: None,
        error: None,
        seconds: 0.0,
    };
    let sc = match Scenario::load(path) {
        Ok(sc) => sc,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    if let Some(x) = ExternalClient::for_scenario(&sc, client_cmd) {
        external::run_outcome(&sc, x, snapshots, write_new, &mut out);
        out.seconds = start.elapsed().as_secs_f64();
        return out;
    }
    match runner::run(&sc, mode) {
        Ok(t) => {
            if mode == Mode::Snapshot {
                let file_name = path
                    .file_name()
                    .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
                let snap = snapshot_path(snapshots, &file_name);
                let yaml = t.to_yaml();
                let result = match std::fs::read_to_string(&snap) {
                    Ok(text) => diff(snapshot_content(&text), &yaml, "stored snapshot", "this run"),
                    Err(_) => Some(format!("no stored snapshot at {}", snap.display())),
                };
                if result.is_some() && write_new {
                    let header = format!(
                        "---\nsource: tests/scenarios.rs\nexpression: transcript.to_yaml()\ninput_file: scenarios/{file_name}\n---\n"
                    );
                    let _ = std::fs::write(snap.with_extension("snap.new"), format!("{header}{yaml}"));
                }
                out.snapshot = Some(result);
            }
            out.transcript = Some(t);
        }
        Err(e) => out.error = Some(e.to_string()),
    }
    out.seconds = start.elapsed().as_secs_f64();
    out
}

/// The result column of one outcome: `ok`, `FAILED`, `CHANGED` or `ERROR`.
fn result_word(o: &Outcome) -> &'static str {
    if o.error.is_some() {
        "ERROR"
    } else if !o.transcript.as_ref().is_some_and(Transcript::passed) {
        "FAILED"
    } else if matches!(o.snapshot, Some(Some(_))) {
        "CHANGED"
    } else {
        "ok"
    }
}

/// The summary table.
pub fn table(outcomes: &[Outcome]) -> String {
    let mut rows = vec![[
        "scenario".to_string(),
        "mode".into(),
        "result".into(),
        "frames".into(),
        "decoded".into(),
        "faults".into(),
        "reconnects".into(),
    ]];
    for o in outcomes {
        rows.push([
            o.name.clone(),
            o.mode.as_str().into(),
            result_word(o).into(),
            o.summary_value("frames_offered"),
            o.summary_value("messages_decoded"),
            o.summary_value("faults"),
            o.summary_value("reconnects"),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut s = String::new();
    for (i, r) in rows.iter().enumerate() {
        for (c, cell) in r.iter().enumerate() {
            let _ = write!(s, "{cell:<w$}  ", w = widths[c]);
        }
        s = s.trim_end().to_string();
        s.push('\n');
        if i == 0 {
            let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            s.push_str(&"-".repeat(total));
            s.push('\n');
        }
    }
    s
}

fn xml_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => format!("&#{};", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// JUnit XML: one test case per scenario and mode.
pub fn junit(outcomes: &[Outcome]) -> String {
    let failures = outcomes.iter().filter(|o| !o.passed()).count();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuites><testsuite name=\"jt808-harness scenarios\" tests=\"{}\" failures=\"{failures}\">",
        outcomes.len()
    );
    for o in outcomes {
        let _ = write!(
            s,
            "  <testcase classname=\"scenarios.{}\" name=\"{}\" time=\"{:.3}\"",
            o.mode.as_str(),
            xml_escape(&o.name),
            o.seconds
        );
        if o.passed() {
            s.push_str("/>\n");
            continue;
        }
        s.push_str(">\n");
        let (message, body) = failure_text(o);
        let _ = writeln!(
            s,
            "    <failure message=\"{}\">{}</failure>",
            xml_escape(&message),
            xml_escape(&body)
        );
        s.push_str("  </testcase>\n");
    }
    s.push_str("</testsuite></testsuites>\n");
    s
}

fn failure_text(o: &Outcome) -> (String, String) {
    if let Some(e) = &o.error {
        return ("error".into(), e.clone());
    }
    let mut body = String::new();
    let mut message = String::new();
    if let Some(t) = &o.transcript {
        for c in t.checks.iter().filter(|c| !c.ok) {
            let _ = writeln!(body, "check {} failed: {}", c.name, c.detail);
            message = format!("check {} failed", c.name);
        }
    }
    if let Some(Some(d)) = &o.snapshot {
        if message.is_empty() {
            message = "transcript changed against its snapshot".into();
        }
        body.push_str(d);
    }
    (message, body)
}

/// Runs `run`; returns whether everything passed.
pub fn run(args: &RunArgs) -> Result<bool, crate::scenario::ScenarioError> {
    let roots = if args.paths.is_empty() {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        vec![super::paths::default_scenarios(&cwd)]
    } else {
        args.paths.clone()
    };
    let mut files = Vec::new();
    for r in &roots {
        files.extend(Scenario::discover(r)?);
    }
    let modes: &[Mode] = if args.live {
        &[Mode::Snapshot, Mode::Live]
    } else {
        &[Mode::Snapshot]
    };
    let progress = Progress::new(
        args.quiet,
        (files.len() * modes.len()) as u64,
        "{bar:30} {pos}/{len} {msg}",
    );
    let client_cmd = match args.client_cmd.as_deref().map(ExternalClient::parse_cli) {
        Some(Err(message)) => {
            return Err(crate::scenario::ScenarioError::Invalid {
                path: PathBuf::from("--client-cmd"),
                message,
            });
        }
        Some(Ok(c)) => Some(c),
        None => None,
    };
    let mut outcomes = Vec::new();
    for f in &files {
        for &mode in modes {
            // An external client runs once per scenario, live (its own mode).
            if mode == Mode::Live && external::wanted(f, client_cmd.as_ref()) {
                continue;
            }
            progress.working_on(&format!("{} ({})", f.display(), mode.as_str()));
            let snapshots = super::paths::snapshots_for(f, &args.snapshots);
            let o = run_one(f, mode, &snapshots, args.write_new, client_cmd.as_ref());
            progress.step();
            progress.finished(&format!("{} {} ({})", result_word(&o), o.name, o.mode.as_str()));
            outcomes.push(o);
        }
    }
    progress.done();
    let mut report = String::new();
    for o in &outcomes {
        let (message, body) = failure_text(o);
        if !o.passed() {
            report.push_str(&format!("== {} ({}): {message}\n{body}\n", o.name, o.mode.as_str()));
        }
        if let (Mode::External, Some(t)) = (o.mode, &o.transcript) {
            for note in external::notes(t) {
                report.push_str(&format!("note: {} (external): {note}\n", o.name));
            }
        }
    }
    report.push_str(&table(&outcomes));
    let failed = outcomes.iter().filter(|o| !o.passed()).count();
    report.push_str(&format!("{} passed, {} failed\n", outcomes.len() - failed, failed));
    // The verdict is the exit status; a closed standard output does not change it.
    let _ = super::print_quietly(&report);
    if let Some(path) = &args.junit {
        std::fs::write(path, junit(&outcomes)).map_err(|source| crate::scenario::ScenarioError::Io {
            path: path.clone(),
            source,
        })?;
    }
    Ok(failed == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_content_strips_the_insta_header() {
        let text = "---\nsource: tests/scenarios.rs\nexpression: x\n---\nscenario: a\nseed: 1\n";
        assert_eq!(snapshot_content(text), "scenario: a\nseed: 1\n");
    }

    #[test]
    fn diff_shows_changed_lines_only() {
        assert_eq!(diff("a\nb\n", "a\nb", "old", "new"), None);
        let d = diff("a\nb\nc\n", "a\nB\nc\n", "old", "new").unwrap();
        assert!(d.contains("-b\n") && d.contains("+B\n"), "{d}");
    }

    #[test]
    fn junit_escapes_and_counts_failures() {
        let o = Outcome {
            name: "a<b".into(),
            mode: Mode::Snapshot,
            transcript: None,
            snapshot: None,
            error: Some("bad \"file\"".into()),
            seconds: 0.5,
        };
        let x = junit(&[o]);
        assert!(x.contains("tests=\"1\" failures=\"1\""), "{x}");
        assert!(x.contains("name=\"a&lt;b\""), "{x}");
        assert!(x.contains("bad &quot;file&quot;"), "{x}");
    }
}
