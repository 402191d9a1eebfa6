//! What Linux says about this process: resident memory now and at its peak, and CPU time used
//! (`/proc/self/status`, `/proc/self/stat`). Elsewhere the readers return
//! [`io::ErrorKind::Unsupported`]. Shared by the stress run (memory per connection) and the replay
//! measurement ([`crate::gateway::replay::measure_replay`]), so neither depends on the other.

use std::io;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One reading of this process's resources, as [`sample`] takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResourceSample {
    /// Resident set size now (`VmRSS` of `/proc/self/status`), bytes.
    pub rss_bytes: u64,
    /// Highest resident set size since the process started (`VmHWM`), bytes. It catches peaks
    /// between two samples.
    pub hwm_bytes: u64,
    /// CPU time used since the process started, user + system (`utime + stime` of `/proc/self/stat`).
    pub cpu: Duration,
}

/// Resident memory of this process, from `/proc/self/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident set size now, bytes.
    pub rss_bytes: u64,
    /// `VmHWM`: peak resident set size, bytes.
    pub hwm_bytes: u64,
}

/// Reads `VmRSS` and `VmHWM` from `/proc/self/status`.
pub fn memory() -> io::Result<Memory> {
    let status = read_proc("/proc/self/status")?;
    parse_status(&status)
}

/// Parses the text of `/proc/<pid>/status` (lines like `VmRSS:\t   12345 kB`).
pub fn parse_status(status: &str) -> io::Result<Memory> {
    let field = |name: &str| -> io::Result<u64> {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .ok_or_else(|| invalid(format!("/proc/self/status: no {name} line")))?;
        let mut words = line.split_whitespace();
        let value: u64 = words
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| invalid(format!("/proc/self/status: {name} is not a number: {line:?}")))?;
        // The kernel prints these in kB (KiB) and says so; anything else would be a new format.
        match words.next() {
            Some("kB") => Ok(value * 1024),
            other => Err(invalid(format!(
                "/proc/self/status: {name} unit {other:?}, expected kB"
            ))),
        }
    };
    Ok(Memory {
        rss_bytes: field("VmRSS")?,
        hwm_bytes: field("VmHWM")?,
    })
}

/// Starts `VmHWM` afresh from the resident size now (writes `5` to `/proc/self/clear_refs`, Linux
/// 4.0 and later; see proc(5)), so one process can measure the peak of several runs in turn.
pub fn reset_peak() -> io::Result<()> {
    const PATH: &str = "/proc/self/clear_refs";
    if cfg!(target_os = "linux") {
        std::fs::write(PATH, "5").map_err(|e| io::Error::new(e.kind(), format!("{PATH}: {e}")))
    } else {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{PATH}: /proc is Linux only"),
        ))
    }
}

/// CPU time this process has used, user + system, from `/proc/self/stat` (fields 14 `utime` and
/// 15 `stime`, in clock ticks of `sysconf(_SC_CLK_TCK)`, see proc(5)).
pub fn cpu_time() -> io::Result<Duration> {
    let stat = read_proc("/proc/self/stat")?;
    let ticks = parse_stat_ticks(&stat)?;
    let hz = clock_ticks_per_second()?;
    Ok(Duration::from_secs(ticks / hz) + Duration::from_nanos((ticks % hz) * 1_000_000_000 / hz))
}

/// `utime + stime` in clock ticks from the text of `/proc/<pid>/stat`. The command name (field 2) is
/// in parentheses and may itself hold spaces and `)`, so fields are counted after the *last* `)`.
pub fn parse_stat_ticks(stat: &str) -> io::Result<u64> {
    let rest = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| invalid("/proc/self/stat: no ')' after the command name".into()))?;
    // After ')' comes field 3 (state); utime is field 14 and stime field 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let at = |n: usize| -> io::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| invalid(format!("/proc/self/stat: field {n} missing or not a number")))
    };
    Ok(at(14)? + at(15)?)
}

#[cfg(unix)]
fn clock_ticks_per_second() -> io::Result<u64> {
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return Err(invalid(format!("sysconf(_SC_CLK_TCK) returned {hz}")));
    }
    Ok(hz as u64)
}

#[cfg(not(unix))]
fn clock_ticks_per_second() -> io::Result<u64> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "clock ticks need sysconf (unix)",
    ))
}

/// Memory and CPU time in one reading, for `stress::metrics::Metrics::resources`.
pub fn sample() -> io::Result<ResourceSample> {
    let mem = memory()?;
    Ok(ResourceSample {
        rss_bytes: mem.rss_bytes,
        hwm_bytes: mem.hwm_bytes,
        cpu: cpu_time()?,
    })
}

pub(crate) fn read_proc(path: &str) -> io::Result<String> {
    if cfg!(target_os = "linux") {
        std::fs::read_to_string(path).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))
    } else {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{path}: /proc is Linux only"),
        ))
    }
}

pub(crate) fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_parsed_in_bytes() {
        let text = "Name:\tx\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nThreads:\t1\n";
        assert_eq!(
            parse_status(text).unwrap(),
            Memory {
                rss_bytes: 1024 * 1024,
                hwm_bytes: 2048 * 1024
            }
        );
        assert!(parse_status("VmRSS: 12 MB\nVmHWM: 1 kB\n").is_err());
        assert!(parse_status("VmHWM: 1 kB\n").is_err());
    }

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        // A command name with a space and a ')' must not shift the fields.
        let text = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 17 5 0 0 20 0 1 0 100 0 0";
        assert_eq!(parse_stat_ticks(text).unwrap(), 22);
        assert!(parse_stat_ticks("42 (x) S 1").is_err());
    }
}
