//! The one form every duration option takes: `500ms`, `30s`, `2m`, `1h`, `1h 30m`, `1.5s`
//! (humantime's units: ns, us, ms, s, m or min, h, d), or a bare number, which is
//! **milliseconds** on every option. Milliseconds because that is the unit of the `--*-ms` names
//! the options had before this convention: those names stay as aliases (`--ping-interval-ms 250`
//! is still 250 ms), so an old script means what it meant. Defaults are shown in the same form
//! (`[default: 10s]`), and [`show`] writes a duration that way in messages.
//!
//! One option keeps another bare unit: `client --idle-exit`, whose bare number is seconds
//! ([`Bare::Seconds`], see its doc comment). A few options took bare seconds before without a
//! `-ms` name (`stress --duration`, `--drain-timeout`, `explore --time`, a storm's `every=` and
//! `start=`); they follow the rule now, and a bare number given to one of them is read as
//! milliseconds with a note on stderr saying so ([`Bare::MillisWasSeconds`]), so a script's `30`
//! meaning 30 s does not silently become a 30 ms run.

use std::ffi::OsStr;
use std::time::Duration;

use clap::builder::TypedValueParser;

/// One day: the longest client and gateway timer.
pub const DAY: Duration = Duration::from_secs(86_400);
/// Seven days: the longest run.
pub const WEEK: Duration = Duration::from_secs(7 * 86_400);

/// What a bare number (no unit) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bare {
    /// Milliseconds: every option but the one below.
    Millis,
    /// Milliseconds, on an option whose bare number was seconds before the convention: a note on
    /// stderr says how it was read.
    MillisWasSeconds,
    /// Seconds: `client --idle-exit` only.
    Seconds,
}

/// Parses one duration: humantime's form, or a bare number in the `bare` unit.
pub fn parse(s: &str, bare: Bare) -> Result<Duration, String> {
    let t = s.trim();
    let is_bare = !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.');
    let text = match (is_bare, bare) {
        (false, _) => t.to_string(),
        (true, Bare::Millis | Bare::MillisWasSeconds) => format!("{t}ms"),
        (true, Bare::Seconds) => format!("{t}s"),
    };
    humantime::parse_duration(&text).map_err(|e| {
        format!(
            "{e}; write a number with a unit (250ms, 30s, 2m, 1h) or a bare number of {}",
            unit(bare)
        )
    })
}

fn unit(bare: Bare) -> &'static str {
    match bare {
        Bare::Millis | Bare::MillisWasSeconds => "milliseconds",
        Bare::Seconds => "seconds",
    }
}

/// A duration the way the help and the messages show it: `10s`, `500ms`, `1day`.
pub fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// The value parser of a duration option: [`parse`], then the range `min..=max`.
#[derive(Debug, Clone, Copy)]
pub struct DurationArg {
    min: Duration,
    max: Duration,
    bare: Bare,
}

/// A duration option within `min..=max`, a bare number in milliseconds.
pub const fn between(min: Duration, max: Duration) -> DurationArg {
    DurationArg {
        min,
        max,
        bare: Bare::Millis,
    }
}

/// Milliseconds, for the ranges in the attributes.
pub const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl DurationArg {
    /// The same range, with another meaning for a bare number.
    pub const fn bare(self, bare: Bare) -> DurationArg {
        DurationArg { bare, ..self }
    }

    /// Parses and range-checks `s`; the message says why not.
    pub fn check(&self, s: &str) -> Result<Duration, String> {
        let d = parse(s, self.bare)?;
        if d < self.min || d > self.max {
            return Err(format!("{} is not in {}..={}", show(d), show(self.min), show(self.max)));
        }
        Ok(d)
    }
}

impl TypedValueParser for DurationArg {
    type Value = Duration;

    /// [`DurationArg::check`] through clap's own closure parser, so the error is clap's usage error
    /// (exit status 2) naming the option and the value: `invalid value '5x' for '--ping-interval
    /// <DURATION>': ...`.
    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&clap::Arg>, value: &OsStr) -> Result<Duration, clap::Error> {
        let me = *self;
        let d = (move |s: &str| me.check(s)).parse_ref(cmd, arg, value)?;
        if self.bare == Bare::MillisWasSeconds {
            let name = arg
                .and_then(clap::Arg::get_long)
                .map_or_else(String::new, |l| format!("--{l}"));
            note_if_bare(&name, &value.to_string_lossy(), d);
        }
        Ok(d)
    }
}

/// For an option whose bare number was seconds before the convention: when `text` is a bare number,
/// says on stderr that it was read as milliseconds.
pub fn note_if_bare(name: &str, text: &str, d: Duration) {
    let t = text.trim();
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        eprintln!(
            "jt808-harness: note: {name} {t} is read as {} (a bare number is milliseconds; write {t}s for seconds)",
            show(d)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_a_bare_number_of_milliseconds() {
        let p = |s| parse(s, Bare::Millis);
        assert_eq!(p("250ms"), Ok(ms(250)));
        assert_eq!(p("2s"), Ok(ms(2000)));
        assert_eq!(p("2m"), Ok(ms(120_000)));
        assert_eq!(p("1h 30m"), Ok(ms(5_400_000)));
        assert_eq!(p("1.5s"), Ok(ms(1500)));
        assert_eq!(p("250"), Ok(ms(250)));
        assert_eq!(p(" 0 "), Ok(Duration::ZERO));
        assert_eq!(parse("5", Bare::Seconds), Ok(ms(5000)));
        for bad in ["", "5 parsecs", "-1s", "s", "1..5"] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
        assert!(p("5x").unwrap_err().contains("milliseconds"));
    }

    #[test]
    fn ranges_are_checked_and_shown_as_durations() {
        let a = between(ms(1), DAY);
        assert_eq!(a.check("1day"), Ok(DAY));
        assert_eq!(a.check("0").unwrap_err(), "0s is not in 1ms..=1day");
        assert_eq!(show(ms(10_000)), "10s");
        assert_eq!(show(ms(500)), "500ms");
    }
}
