//! The line protocol between a stress run and its gateway child process (`--gateway-process`): one
//! [`Line`] per text line, each way, parsed by one [`FromStr`] and printed by one [`fmt::Display`], so the
//! two ends cannot drift apart. The parent asks, the child answers each request with one line:
//!
//! | parent asks | child answers |
//! |---|---|
//! | (nothing: the child says it first) | `listening <addr>` |
//! | `pick <fraction> <seed> <storm>` | `victims <client>:<conn> ...` (chosen, not yet dropped) |
//! | `drop <close\|abort\|stall> <conn> ...` | `ok` |
//! | `sample [trim]` | `sample <rss bytes> <hwm bytes> <cpu µs>` |
//! | `stop` | `stop_at <gateway µs>` (the feeds offer nothing due from then on) |
//! | `quit` (or end of input) | (exits) |

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use super::options::StormMode;
use super::sys::ResourceSample;

/// One line of the protocol, either way.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// Child: the gateway listens here.
    Listening(SocketAddr),
    /// Parent: choose `fraction` of the live clients with the storm rng of `seed` and `storm`.
    Pick {
        /// Fraction of the live connections, 0..=1.
        fraction: f64,
        /// Run seed.
        seed: u64,
        /// Storm number.
        storm: usize,
    },
    /// Child: the chosen (client id, connection id) pairs.
    Victims(Vec<(usize, u64)>),
    /// Parent: drop these connections this way.
    Drop {
        /// How.
        mode: StormMode,
        /// Gateway connection ids.
        conns: Vec<u64>,
    },
    /// Child: done.
    Ok,
    /// Parent: a resource reading, after handing free heap back to the kernel when `trim`.
    Sample {
        /// Trim the heap first.
        trim: bool,
    },
    /// Child: the reading.
    Reading(ResourceSample),
    /// Parent: stop the feeds one frame interval from now.
    Stop,
    /// Child: the stop time, gateway time.
    StopAt(Duration),
    /// Parent: shut down.
    Quit,
}

/// A line that is not [`Line`]: the line itself and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad protocol line {line:?}: {why}")]
pub struct LineError {
    /// The line as read.
    pub line: String,
    /// What is wrong.
    pub why: String,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Line::Listening(addr) => write!(f, "listening {addr}"),
            Line::Pick { fraction, seed, storm } => write!(f, "pick {fraction} {seed} {storm}"),
            Line::Victims(v) => {
                f.write_str("victims")?;
                v.iter().try_for_each(|(c, conn)| write!(f, " {c}:{conn}"))
            }
            Line::Drop { mode, conns } => {
                write!(f, "drop {mode}")?;
                conns.iter().try_for_each(|c| write!(f, " {c}"))
            }
            Line::Ok => f.write_str("ok"),
            Line::Sample { trim } => f.write_str(if *trim { "sample trim" } else { "sample" }),
            Line::Reading(s) => write!(f, "reading {} {} {}", s.rss_bytes, s.hwm_bytes, s.cpu.as_micros()),
            Line::Stop => f.write_str("stop"),
            Line::StopAt(d) => write!(f, "stop_at {}", d.as_micros()),
            Line::Quit => f.write_str("quit"),
        }
    }
}

fn num<T: FromStr>(word: &str, what: &str) -> Result<T, String> {
    word.parse().map_err(|_| format!("{what} {word:?} is not a number"))
}

fn victim(word: &str) -> Result<(usize, u64), String> {
    let (c, conn) = word
        .split_once(':')
        .ok_or_else(|| format!("victim {word:?} is not client:conn"))?;
    Ok((num(c, "client")?, num(conn, "connection")?))
}

fn parse_words(words: &[&str]) -> Result<Line, String> {
    Ok(match words {
        ["listening", addr] => Line::Listening(addr.parse().map_err(|_| format!("{addr:?} is not an address"))?),
        ["pick", fraction, seed, storm] => Line::Pick {
            fraction: num(fraction, "fraction")?,
            seed: num(seed, "seed")?,
            storm: num(storm, "storm")?,
        },
        ["victims", rest @ ..] => Line::Victims(rest.iter().map(|w| victim(w)).collect::<Result<_, _>>()?),
        ["drop", mode, conns @ ..] => Line::Drop {
            mode: mode.parse()?,
            conns: conns.iter().map(|c| num(c, "connection")).collect::<Result<_, _>>()?,
        },
        ["ok"] => Line::Ok,
        ["sample"] => Line::Sample { trim: false },
        ["sample", "trim"] => Line::Sample { trim: true },
        ["reading", rss, hwm, cpu] => Line::Reading(ResourceSample {
            rss_bytes: num(rss, "rss")?,
            hwm_bytes: num(hwm, "hwm")?,
            cpu: Duration::from_micros(num(cpu, "cpu")?),
        }),
        ["stop"] => Line::Stop,
        ["stop_at", us] => Line::StopAt(Duration::from_micros(num(us, "stop time")?)),
        ["quit"] => Line::Quit,
        [] => return Err("empty".into()),
        [word, ..] => return Err(format!("unknown or malformed {word:?}")),
    })
}

impl FromStr for Line {
    type Err = LineError;

    fn from_str(s: &str) -> Result<Line, LineError> {
        let words: Vec<&str> = s.split_whitespace().collect();
        parse_words(&words).map_err(|why| LineError {
            line: s.to_string(),
            why,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_round_trips() {
        let lines = [
            Line::Listening("127.0.0.1:4567".parse().unwrap()),
            Line::Pick {
                fraction: 0.3,
                seed: u64::MAX,
                storm: 2,
            },
            Line::Victims(vec![(3, 17), (40, 2)]),
            Line::Victims(Vec::new()),
            Line::Drop {
                mode: StormMode::Stall,
                conns: vec![17, 2],
            },
            Line::Ok,
            Line::Sample { trim: true },
            Line::Sample { trim: false },
            Line::Reading(ResourceSample {
                rss_bytes: 1 << 30,
                hwm_bytes: (1 << 30) + 4096,
                cpu: Duration::from_micros(1_234_567),
            }),
            Line::Stop,
            Line::StopAt(Duration::from_micros(42_000_001)),
            Line::Quit,
        ];
        for l in lines {
            let text = l.to_string();
            assert!(!text.contains('\n'), "{text}");
            assert_eq!(text.parse::<Line>(), Ok(l), "{text}");
        }
        assert_eq!(
            Line::Victims(vec![(3, 17)]).to_string(),
            "victims 3:17",
            "the documented form"
        );
    }

    #[test]
    fn a_bad_line_is_named_with_what_is_wrong() {
        for (line, why) in [
            ("pick 0.3 x 1", "seed \"x\" is not a number"),
            ("drop boom 1", "not close, abort or stall"),
            ("victims 3-17", "not client:conn"),
            ("sample now", "malformed \"sample\""),
            ("", "empty"),
            ("hello", "unknown or malformed \"hello\""),
        ] {
            let e = line.parse::<Line>().unwrap_err();
            assert_eq!(e.line, line);
            let text = e.to_string();
            assert!(text.contains(why) && text.contains(&format!("{line:?}")), "{text}");
        }
    }
}
