//! TCP reassembly of one direction of a flow, by sequence number (see the pcap module doc).

use std::collections::BTreeMap;

/// Segment counters of one flow.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct SegStats {
    pub segments: u64,
    pub retransmissions: u64,
    pub overlaps: u64,
    pub out_of_order_fixed: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
}

/// One direction of a flow: the next expected byte and the segments held beyond it.
#[derive(Debug, Default)]
pub(super) struct Direction {
    /// Next expected sequence number, unwrapped to 64 bits; `None` until a SYN or data segment.
    next: Option<i64>,
    /// Segments ahead of `next`, by unwrapped sequence number.
    pending: BTreeMap<i64, Vec<u8>>,
    pending_bytes: usize,
    syn: bool,
    /// This direction sent its FIN.
    pub fin: bool,
    /// Bytes delivered in order.
    pub bytes: u64,
}

impl Direction {
    /// The unwrapped position of `seq` near the expected `next` (sequence numbers wrap at 2^32).
    fn unwrap(seq: u32, next: i64) -> i64 {
        next + i64::from(seq.wrapping_sub(next as u32) as i32)
    }

    pub(super) fn syn(&mut self, seq: u32) {
        if !self.syn && self.next.is_none() {
            self.next = Some(i64::from(seq) + 1);
        }
        self.syn = true;
    }

    /// A data segment at `seq`: the bytes it makes contiguous are appended to `out`.
    pub(super) fn segment(&mut self, seq: u32, data: &[u8], limit: usize, st: &mut SegStats, out: &mut Vec<u8>) {
        if data.is_empty() {
            return;
        }
        st.segments += 1;
        let next = *self.next.get_or_insert(i64::from(seq));
        let start = Direction::unwrap(seq, next);
        let end = start + data.len() as i64;
        if end <= next {
            st.retransmissions += 1;
            return;
        }
        if start > next {
            match self.pending.get(&start) {
                Some(held) if held.len() >= data.len() => {
                    st.retransmissions += 1;
                    return;
                }
                Some(held) => {
                    st.retransmissions += 1;
                    self.pending_bytes -= held.len();
                }
                None => {}
            }
            self.pending_bytes += data.len();
            self.pending.insert(start, data.to_vec());
            while self.pending_bytes > limit && !self.pending.is_empty() {
                self.skip_gap(st, out);
            }
            return;
        }
        if start < next {
            st.overlaps += 1;
        }
        out.extend_from_slice(&data[(next - start) as usize..]);
        self.next = Some(end);
        self.drain(st, out, true);
    }

    /// Delivers held segments that are now contiguous.
    fn drain(&mut self, st: &mut SegStats, out: &mut Vec<u8>, reordered: bool) {
        let Some(mut next) = self.next else { return };
        while let Some(entry) = self.pending.first_entry() {
            let start = *entry.key();
            if start > next {
                break;
            }
            let data = entry.remove();
            self.pending_bytes -= data.len();
            let end = start + data.len() as i64;
            if end <= next {
                st.retransmissions += 1;
                continue;
            }
            if start < next {
                st.overlaps += 1;
            }
            out.extend_from_slice(&data[(next - start) as usize..]);
            next = end;
            if reordered {
                st.out_of_order_fixed += 1;
            }
        }
        self.next = Some(next);
    }

    /// Gives up the bytes before the first held segment (never captured) and delivers what follows.
    fn skip_gap(&mut self, st: &mut SegStats, out: &mut Vec<u8>) {
        if let (Some(next), Some((&start, _))) = (self.next, self.pending.first_key_value()) {
            st.gaps += 1;
            st.gap_bytes += (start - next).max(0) as u64;
            self.next = Some(start);
            self.drain(st, out, false);
        }
    }

    /// Gives up every gap: the flow is over.
    pub(super) fn flush(&mut self, st: &mut SegStats, out: &mut Vec<u8>) {
        while !self.pending.is_empty() {
            self.skip_gap(st, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dir: &mut Direction, segs: &[(u32, &[u8])]) -> (Vec<u8>, SegStats) {
        let mut st = SegStats::default();
        let mut out = Vec::new();
        for (seq, data) in segs {
            dir.segment(*seq, data, 1 << 20, &mut st, &mut out);
        }
        (out, st)
    }

    #[test]
    fn reorders_drops_retransmissions_and_trims_overlaps() {
        let mut d = Direction::default();
        d.syn(99);
        let (out, st) = run(
            &mut d,
            &[(100, b"ab"), (104, b"ef"), (102, b"cd"), (102, b"cd"), (105, b"fg")],
        );
        assert_eq!(out, b"abcdefg");
        assert_eq!(st.out_of_order_fixed, 1, "ef waited for cd");
        assert_eq!(st.retransmissions, 1, "second cd");
        assert_eq!(st.overlaps, 1, "fg repeats f");
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut d = Direction::default();
        d.syn(u32::MAX - 2);
        let (out, st) = run(
            &mut d,
            &[(2, b"cd"), (u32::MAX - 1, b"xy"), (u32::MAX.wrapping_add(1), b"ab")],
        );
        assert_eq!(out, b"xyabcd");
        assert_eq!(st.out_of_order_fixed, 1);
    }

    #[test]
    fn pending_limit_gives_up_the_gap_and_counts_it() {
        let mut d = Direction::default();
        d.syn(0);
        let mut st = SegStats::default();
        let mut out = Vec::new();
        d.segment(1, b"aa", 4, &mut st, &mut out);
        d.segment(5, b"cc", 4, &mut st, &mut out);
        d.segment(7, b"dd", 4, &mut st, &mut out);
        assert_eq!(out, b"aa", "4 bytes held is at the limit, not past it");
        d.segment(9, b"e", 4, &mut st, &mut out);
        assert_eq!(out, b"aaccdde");
        assert_eq!((st.gaps, st.gap_bytes), (1, 2));
    }
}
