//! How a stress run shows where it is: a spinner with the live counts when stderr is a terminal;
//! when it is not (CI, a pipe, a log file), one line per phase as the run enters it, since a
//! spinner redrawn in a log is noise and a silent run of minutes looks hung; nothing with
//! `--quiet`. The same rule as `run` and `explore` (`crate::cli::progress`), with phases for items.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Where a line goes in [`Phases::Lines`] (stderr, or a test's buffer).
pub type LineSink = Box<dyn FnMut(&str) + Send + Sync>;

/// The phase display of one run.
pub enum Phases {
    /// A spinner on the terminal, its message the phase and its counts.
    Bar(ProgressBar),
    /// A line per phase entered, written to the sink.
    Lines {
        /// The phase last written.
        last: Option<&'static str>,
        /// Where lines go.
        sink: LineSink,
    },
    /// Nothing.
    Off,
}

impl std::fmt::Debug for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Phases::Bar(_) => f.write_str("Phases::Bar"),
            Phases::Lines { last, .. } => write!(f, "Phases::Lines(last: {last:?})"),
            Phases::Off => f.write_str("Phases::Off"),
        }
    }
}

impl Phases {
    /// `Off` unless `show`; else a spinner when stderr is a terminal, lines on stderr when not.
    pub fn new(show: bool) -> Phases {
        match (show, std::io::stderr().is_terminal()) {
            (false, _) => Phases::Off,
            (true, false) => Phases::lines(Box::new(|l| eprintln!("{l}"))),
            (true, true) => {
                let pb = ProgressBar::new_spinner();
                if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}") {
                    pb.set_style(style);
                }
                pb.enable_steady_tick(Duration::from_millis(200));
                Phases::Bar(pb)
            }
        }
    }

    /// A line per phase into `sink`.
    pub fn lines(sink: LineSink) -> Phases {
        Phases::Lines { last: None, sink }
    }

    /// The run is in `phase`, with `detail` (its counts now). A line is written only when the
    /// phase is new, so `detail` is built only then or for the spinner.
    pub fn show(&mut self, phase: &'static str, detail: impl FnOnce() -> String) {
        match self {
            Phases::Bar(pb) => {
                let d = detail();
                pb.set_message(if d.is_empty() {
                    phase.to_string()
                } else {
                    format!("{phase}: {d}")
                });
            }
            Phases::Lines { last, sink } if *last != Some(phase) => {
                *last = Some(phase);
                let d = detail();
                sink(&if d.is_empty() {
                    format!("stress: {phase}")
                } else {
                    format!("stress: {phase}: {d}")
                });
            }
            Phases::Lines { .. } | Phases::Off => {}
        }
    }

    /// Takes the spinner off the terminal.
    pub fn done(&mut self) {
        if let Phases::Bar(pb) = self {
            pb.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn off_a_terminal_each_phase_is_one_line_with_its_counts_when_entered() {
        let got = Arc::new(Mutex::new(Vec::<String>::new()));
        let g = got.clone();
        let mut p = Phases::lines(Box::new(move |l| g.lock().unwrap().push(l.to_string())));
        p.show("connecting", || "0/10".into());
        p.show("connecting", || "5/10".into());
        p.show("running", || "storms 0/2".into());
        p.show("running", || unreachable!("detail is built only for a new phase"));
        p.show("shutting down", String::new);
        p.done();
        assert_eq!(
            *got.lock().unwrap(),
            [
                "stress: connecting: 0/10",
                "stress: running: storms 0/2",
                "stress: shutting down"
            ]
        );
    }

    #[test]
    fn quiet_writes_nothing() {
        let mut p = Phases::new(false);
        p.show("connecting", || unreachable!("quiet builds no detail"));
        assert!(matches!(p, Phases::Off));
    }
}
