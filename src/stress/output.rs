//! What `stress` and `stress merge` print and write: the figures table with the gate's verdict on
//! stdout, the outcomes as JSON (`--json`), and a report directory (`--report`: the HTML report,
//! `figures.json`, and `outcome.json`, which `stress merge` reads back).

use std::io::{self, Write};
use std::path::Path;

use super::gate::Gate;
use super::metrics::{RunFigures, fmt_bytes};
use super::outcome::{Outcome, StressError};
use super::report::{self, OUTCOME_FILE};

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> StressError {
    let what = what.into();
    move |source| StressError::Io { what, source }
}

/// Prints one run's table under `== label ==`; with `gate`, its violations and problems as `FAIL:`
/// lines. True when it passed (always without a gate).
pub fn print_run(out: &mut dyn Write, o: &Outcome, gate: Option<&Gate>) -> io::Result<bool> {
    writeln!(out, "== {} ==", o.run.label)?;
    write!(out, "{}", o.run.figures)?;
    if let Some(s) = o.sides {
        writeln!(
            out,
            "per idle connection, client side {} / gateway side {}",
            fmt_bytes(s.client_bytes),
            fmt_bytes(s.gateway_bytes)
        )?;
    }
    let Some(gate) = gate else { return Ok(true) };
    let violations = gate.check(&o.run.figures);
    for v in &violations {
        writeln!(out, "FAIL: {v}")?;
    }
    for p in &o.problems {
        writeln!(out, "FAIL: {p}")?;
    }
    Ok(violations.is_empty() && o.problems.is_empty())
}

/// Prints every run with the gate's violations and the attempt peaks of two runs side by side;
/// true when every run passed ([`print_verdict`] says so).
pub fn print_outcomes(out: &mut dyn Write, outcomes: &[Outcome], gate: &Gate) -> Result<bool, StressError> {
    let mut passed = true;
    for o in outcomes {
        passed &= print_run(out, o, Some(gate)).map_err(io_error("writing the figures"))?;
    }
    if let [a, b] = outcomes {
        let (x, y) = (&a.run.figures.attempts, &b.run.figures.attempts);
        writeln!(
            out,
            "attempts peak: {} {} / 1 s, {} / 100 ms; {} {} / 1 s, {} / 100 ms",
            a.run.label, x.peak_per_second, x.peak_per_100ms, b.run.label, y.peak_per_second, y.peak_per_100ms
        )
        .map_err(io_error("writing the figures"))?;
    }
    Ok(passed)
}

/// The last line of the table: `PASS` or `FAIL`.
pub fn print_verdict(out: &mut dyn Write, passed: bool) -> Result<(), StressError> {
    writeln!(out, "{}", if passed { "PASS" } else { "FAIL" }).map_err(io_error("writing the figures"))
}

/// The outcomes as pretty JSON, as `--json` writes them and `stress merge` reads them.
pub fn outcomes_json(outcomes: &[Outcome]) -> Result<String, StressError> {
    serde_json::to_string_pretty(outcomes)
        .map(|j| j + "\n")
        .map_err(|e| io_error("encoding the figures")(io::Error::other(e)))
}

/// `--json PATH`: to the file, or after the table for `-`.
pub fn write_json(out: &mut dyn Write, path: &Path, outcomes: &[Outcome]) -> Result<(), StressError> {
    let json = outcomes_json(outcomes)?;
    if path.as_os_str() == "-" {
        out.write_all(json.as_bytes()).map_err(io_error("writing the figures"))
    } else {
        std::fs::write(path, json).map_err(io_error(format!("writing {}", path.display())))
    }
}

/// `--report DIR`: the HTML report and `figures.json` of `runs`, and `outcome.json` of `outcomes`;
/// says where the report is.
pub fn write_report_dir(
    out: &mut dyn Write,
    dir: &Path,
    runs: &[RunFigures],
    outcomes: &[Outcome],
) -> Result<(), StressError> {
    let path = report::write_report(dir, runs).map_err(io_error("writing the report"))?;
    let outcome = dir.join(OUTCOME_FILE);
    std::fs::write(&outcome, outcomes_json(outcomes)?).map_err(io_error(format!("writing {}", outcome.display())))?;
    writeln!(out, "report: {}", path.display()).map_err(io_error("writing the figures"))
}
