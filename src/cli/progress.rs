//! Progress of a command that works through items (`run`'s scenarios, `explore`'s runs), the same
//! way for every command: a bar on stderr when stderr is a terminal; when it is not (CI, a pipe, a
//! file), a line per finished item on stderr, since a bar redrawn in a log is noise and a log
//! without any progress looks hung; nothing with `--quiet`.
//!
//! Colour: the harness writes none of its own; clap's help and errors are coloured only on a
//! terminal and never when `NO_COLOR` is set (clap's `ColorChoice::Auto`, through anstream).

use std::io::IsTerminal;
use std::time::Duration;

/// Where progress goes.
#[derive(Debug)]
pub enum Progress {
    /// A bar on the terminal.
    Bar(indicatif::ProgressBar),
    /// A line per finished item on stderr.
    Lines,
    /// Nothing (`--quiet`).
    Off,
}

impl Progress {
    /// `Off` when `quiet`, else a bar of `len` items drawn with `template` when stderr is a
    /// terminal, else `Lines`.
    pub fn new(quiet: bool, len: u64, template: &str) -> Progress {
        Progress::choose(quiet, std::io::stderr().is_terminal(), len, template)
    }

    /// [`Progress::new`] with the terminal question answered (for tests).
    pub fn choose(quiet: bool, terminal: bool, len: u64, template: &str) -> Progress {
        match (quiet, terminal) {
            (true, _) => Progress::Off,
            (false, false) => Progress::Lines,
            (false, true) => {
                let style = indicatif::ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
                let bar = indicatif::ProgressBar::new(len).with_style(style);
                bar.enable_steady_tick(Duration::from_millis(200));
                Progress::Bar(bar)
            }
        }
    }

    /// What is being worked on now (the bar's message).
    pub fn working_on(&self, what: &str) {
        if let Progress::Bar(b) = self {
            b.set_message(what.to_string());
        }
    }

    /// One step of the bar (an item, or a part of one) done.
    pub fn step(&self) {
        if let Progress::Bar(b) = self {
            b.inc(1);
        }
    }

    /// An item finished: `line` says how. Printed only when there is no bar.
    pub fn finished(&self, line: &str) {
        if let Progress::Lines = self {
            eprintln!("{line}");
        }
    }

    /// Runs `f` (which prints to stdout) with the bar out of its way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match self {
            Progress::Bar(b) => b.suspend(f),
            _ => f(),
        }
    }

    /// Takes the bar off the terminal.
    pub fn done(&self) {
        if let Progress::Bar(b) = self {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_only_on_a_terminal_lines_otherwise_nothing_when_quiet() {
        assert!(matches!(Progress::choose(false, true, 3, "{bar}"), Progress::Bar(_)));
        assert!(matches!(Progress::choose(false, false, 3, "{bar}"), Progress::Lines));
        assert!(matches!(Progress::choose(true, true, 3, "{bar}"), Progress::Off));
        assert!(matches!(Progress::choose(true, false, 3, "{bar}"), Progress::Off));
    }
}
