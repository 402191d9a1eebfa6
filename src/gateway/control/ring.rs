//! The bounded log the control API serves: the last `capacity` gateway records, each numbered by
//! a cursor that counts every record ever logged, so a reader that fell behind learns how many it
//! missed instead of silently skipping them.

use std::collections::VecDeque;

use crate::gateway::GatewayRecord;

/// Default [`Ring`] capacity (`serve --control-log-capacity`): records kept for `GET /log`.
/// A busy fleet logs a few thousand records a second; 100,000 is a minute or so of history for
/// a poller, tens of MB at most.
pub const DEFAULT_LOG_CAPACITY: usize = 100_000;

/// Largest `--control-log-capacity`.
pub const MAX_LOG_CAPACITY: usize = 10_000_000;

/// The last records and their cursor numbers. Capacity 0: off (nothing kept, nothing cloned).
#[derive(Debug, Default)]
pub struct Ring {
    capacity: usize,
    records: VecDeque<GatewayRecord>,
    /// Records ever pushed; the cursor of the next one.
    total: u64,
}

/// What a read from a cursor returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    /// The records from the cursor (or from the oldest kept), in order.
    pub records: Vec<GatewayRecord>,
    /// Records between the cursor asked for and the oldest kept: overwritten before being read.
    pub dropped: u64,
    /// The cursor to ask for next.
    pub next: u64,
}

impl Ring {
    /// Keeps the last `capacity` records from now on (0 turns it off).
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        while self.records.len() > capacity {
            self.records.pop_front();
        }
    }

    /// True when records are kept.
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// Appends one record, forgetting the oldest when full.
    pub fn push(&mut self, record: GatewayRecord) {
        if !self.enabled() {
            return;
        }
        if self.records.len() == self.capacity {
            self.records.pop_front();
        }
        self.records.push_back(record);
        self.total += 1;
    }

    /// The cursor of the next record to be logged.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Records from cursor `since` on. `None` if `since` is past [`Ring::total`] (a cursor this
    /// log never gave out).
    pub fn read(&self, since: u64) -> Option<Slice> {
        if since > self.total {
            return None;
        }
        let first = self.total - self.records.len() as u64;
        let from = since.max(first);
        let skip = usize::try_from(from - first).unwrap_or(usize::MAX);
        Some(Slice {
            records: self.records.iter().skip(skip).cloned().collect(),
            dropped: from - since,
            next: self.total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::GatewayEvent;

    fn rec(t_us: u64) -> GatewayRecord {
        GatewayRecord {
            t_us,
            conn: 0,
            seq: 0,
            event: GatewayEvent::HandshakeFailed { why: String::new() },
        }
    }

    #[test]
    fn a_reader_behind_the_ring_is_told_how_many_it_missed() {
        let mut r = Ring::default();
        r.set_capacity(3);
        for t in 0..5 {
            r.push(rec(t));
        }
        let s = r.read(1).expect("in range");
        assert_eq!(s.dropped, 1);
        assert_eq!(s.next, 5);
        assert_eq!(s.records.iter().map(|r| r.t_us).collect::<Vec<_>>(), [2, 3, 4]);
        let s = r.read(4).expect("in range");
        assert_eq!((s.dropped, s.records.len()), (0, 1));
        assert!(r.read(5).expect("at end").records.is_empty());
        assert!(r.read(6).is_none());
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let mut r = Ring::default();
        r.push(rec(1));
        assert_eq!(r.total(), 0);
    }
}
