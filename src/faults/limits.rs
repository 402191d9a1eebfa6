//! The allowed range of every numeric fault parameter, checked where a spec is validated
//! ([`super::FaultSpec::validate`]: `--fault` text, a scenario's `[[faults]]` table, a spec built in
//! code and given to [`super::Pipeline::new`]).
//!
//! Why bounds at all: a fault's parameters size what it holds (messages a `coalesce` or `reorder`
//! keeps, bytes a `stall` keeps, bytes `garbage` inserts, pieces a `split` makes) and how far ahead it
//! schedules (a `latency` of `u64::MAX` ms would overflow the gateway's clock). Each bound is far
//! beyond any useful test value and low enough that no spec can make the gateway allocate without
//! bound, spin or panic. An error names the key, the value and the range; the caller adds the fault.

use std::fmt::Display;
use std::ops::RangeInclusive;

/// Largest count a trigger or fault may name (`every`, `at`, `after`, `times`, `after_frame.nth`,
/// `refuse.count`): 10^12, more units than any run passes.
pub const MAX_COUNT: u64 = 1_000_000_000_000;
/// Longest time a fault parameter may name, ms (`after_ms`, `until_ms`, `max_wait_ms`, `ms`,
/// `jitter_ms`, `for_ms`): 7 days, the longest scenario run.
pub const MAX_MS: u64 = 7 * 86_400_000;
/// Most messages one fault joins or lets pass while it holds one (`coalesce.count`,
/// `reorder.distance`).
pub const MAX_MESSAGES: usize = 1024;
/// Most cuts of one `split` (`cuts`, and entries of `offsets`).
pub const MAX_CUTS: usize = 1024;
/// Most bytes `garbage` inserts before one frame (`len`, or the bytes of `hex`).
pub const MAX_GARBAGE_LEN: usize = 65_536;
/// Largest `stall.max_held_bytes`: 1 GiB per direction.
pub const MAX_HELD_BYTES: usize = 1 << 30;
/// Fastest `bandwidth.bps`: 100 Gbit/s.
pub const MAX_BPS: u64 = 100_000_000_000;
/// Largest sub-packet index (a WORD, JT808.md §4).
pub const MAX_PACKET_INDEX: u16 = u16::MAX;

/// `Ok` when `v` is in `range`, else "`key` = v is out of range a..=b".
pub(crate) fn check<T: PartialOrd + Display>(key: &str, v: T, range: RangeInclusive<T>) -> Result<(), String> {
    if range.contains(&v) {
        Ok(())
    } else {
        Err(format!(
            "`{key}` = {v} is out of range {}..={}",
            range.start(),
            range.end()
        ))
    }
}

/// [`check`] for a parameter that may be left out.
pub(crate) fn check_opt<T: PartialOrd + Display>(
    key: &str,
    v: Option<T>,
    range: RangeInclusive<T>,
) -> Result<(), String> {
    v.map_or(Ok(()), |v| check(key, v, range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_key_value_and_range() {
        assert_eq!(
            check("cuts", 5usize, 1..=4),
            Err("`cuts` = 5 is out of range 1..=4".into())
        );
        assert_eq!(check("cuts", 4usize, 1..=4), Ok(()));
        assert_eq!(check_opt::<u64>("ms", None, 1..=4), Ok(()));
        assert!(check("probability", f64::NAN, 0.0..=1.0).is_err());
    }
}
