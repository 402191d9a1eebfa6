//! The message ledger behind `every_frame_once` and `order_per_terminal`, kept as the evidence
//! comes in: one entry per message (id, terminal, serial of the frame or of packet 1) that is
//! still open or settled only recently, plus running totals of the messages already forgotten.
//!
//! An entry is *settled* when nothing more can be wrong with it: decoded as often as it was offered
//! (at least that often when a fault duplicated it), or excused by a fault that destroyed it.
//! [`Ledger::sweep`] forgets settled entries that saw nothing since the sweep before, folding them
//! into the totals; so memory follows the messages in flight, not the length of the run. An
//! entry that is not settled (lost, decoded twice, decoded but never offered) is kept to the end,
//! where the check names it.
//!
//! The order check needs, per decoded message, its place in offer order: an entry holds the
//! position of its latest offer, read when the decoding comes in (offers always come first, see
//! [`crate::scenario::observe`]), and per terminal the position of the last message decoded.

use std::collections::HashMap;
use std::fmt;

use crate::codec::Phone;
use crate::faults::Outcome;
use crate::gateway::{FrameDesc, FrameId};

/// A message: id, terminal, and the serial of the frame or of packet 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Key {
    pub msg_id: u16,
    pub phone: Phone,
    pub serial: u16,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:04X} {} #{}", self.msg_id, self.phone, self.serial)
    }
}

/// Which message each frame the gateway offers belongs to: itself, or for a packet the group its
/// packet 1 opened (the last packet 1 of that id, phone and total).
#[derive(Debug, Default)]
struct Grouping(HashMap<(u16, Phone, u16), Key>);

impl Grouping {
    fn key(&mut self, d: &FrameId) -> Key {
        let own = Key {
            msg_id: d.msg_id,
            phone: d.phone,
            serial: d.serial,
        };
        match d.packet {
            None => own,
            Some((1, total)) => {
                self.0.insert((d.msg_id, d.phone, total), own);
                own
            }
            Some((_, total)) => self.0.get(&(d.msg_id, d.phone, total)).copied().unwrap_or(own),
        }
    }
}

/// What is known of one message.
#[derive(Debug, Default, Clone, Copy)]
struct Entry {
    offered: u32,
    decoded: u32,
    destroyed: bool,
    duplicated: bool,
    /// A fault held it back behind later messages ([`Outcome::reorders`]): not judged by
    /// `order_per_terminal`, since no client can decode a message before its last byte comes.
    reordered: bool,
    /// Position of its latest offer among all offers of the run.
    position: Option<usize>,
    /// The sweep period it was last touched in.
    touched: u64,
}

impl Entry {
    fn settled(&self) -> bool {
        if self.offered == 0 {
            return self.decoded == 0 && self.destroyed;
        }
        self.destroyed
            || match self.duplicated {
                true => self.decoded >= self.offered,
                false => self.decoded == self.offered,
            }
    }
}

/// Totals of the entries forgotten.
#[derive(Debug, Default)]
struct Forgotten {
    /// Offers of messages no fault destroyed (each was decoded as often).
    checked: u64,
    /// Messages a fault destroyed.
    destroyed: u64,
    /// Of those, decoded after all.
    recovered: u64,
}

/// See the module doc.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    entries: HashMap<Key, Entry>,
    forgotten: Forgotten,
    grouping: Grouping,
    /// Per connection: how many messages it offered (the fault log's `msg` index counts them).
    offered_count: HashMap<u64, u64>,
    /// Per (connection, message index): the keys of its frames and the period it was offered in.
    by_index: HashMap<(u64, u64), (Vec<Key>, u64)>,
    offers: usize,
    decoded: u64,
    /// Per terminal: the offer position of the last message decoded.
    last_position: HashMap<Phone, usize>,
    order_problems: Vec<String>,
    /// Decodings of reordered messages the order check did not judge.
    order_exempt: u64,
    period: u64,
}

impl Ledger {
    fn touch(&mut self, k: Key) -> &mut Entry {
        let period = self.period;
        let e = self.entries.entry(k).or_default();
        e.touched = period;
        e
    }

    /// A message entered the fault pipeline on `conn`.
    pub fn offered(&mut self, conn: u64, frames: &[FrameDesc]) -> u64 {
        let count = self.offered_count.entry(conn).or_insert(0);
        *count += 1;
        let index = *count;
        let mut keys = Vec::new();
        let mut frames_offered = 0;
        for d in frames.iter().filter_map(FrameDesc::frame) {
            frames_offered += 1;
            let key = self.grouping.key(d);
            if matches!(d.packet, None | Some((1, _))) {
                let position = self.offers;
                self.offers += 1;
                let e = self.touch(key);
                e.offered += 1;
                e.position = Some(position);
            }
            keys.push(key);
        }
        self.by_index.insert((conn, index), (keys, self.period));
        frames_offered
    }

    /// A fault `what` on message `msg` of `conn`: one that destroys, duplicates or reorders it
    /// marks its entries; any other changes nothing here.
    pub fn fault_on(&mut self, conn: u64, msg: u64, what: Outcome) {
        let (destroys, duplicates, reorders) = (what.destroys(), what.duplicates(), what.reorders());
        if !(destroys || duplicates || reorders) {
            return;
        }
        let keys = self
            .by_index
            .get(&(conn, msg))
            .map(|(k, _)| k.clone())
            .unwrap_or_default();
        for k in keys {
            let e = self.touch(k);
            e.destroyed |= destroys;
            e.duplicated |= duplicates && !destroys;
            e.reordered |= reorders && !destroys && !duplicates;
        }
    }

    /// Frames still in flight when their connection ended.
    pub fn lost(&mut self, frames: &[FrameDesc]) {
        for d in frames.iter().filter_map(FrameDesc::frame) {
            let key = self.grouping.key(d);
            self.touch(key).destroyed = true;
        }
    }

    /// The client decoded a message.
    pub fn decoded(&mut self, msg_id: u16, phone: Phone, serial: u16) {
        self.decoded += 1;
        let k = Key { msg_id, phone, serial };
        let e = self.touch(k);
        e.decoded += 1;
        let Some(p) = e.position else { return };
        if e.reordered {
            self.order_exempt += 1;
            return;
        }
        if let Some(&prev) = self.last_position.get(&phone)
            && p < prev
        {
            self.order_problems
                .push(format!("{k} decoded after a later message of that terminal"));
        }
        self.last_position.insert(phone, p);
    }

    /// Messages decoded, in all.
    pub fn decoded_count(&self) -> u64 {
        self.decoded
    }

    /// Forgets the settled entries not touched since the last sweep (and the message indices
    /// offered before it); see the module doc.
    pub fn sweep(&mut self) {
        let period = self.period;
        let forgotten = &mut self.forgotten;
        self.entries.retain(|_, e| {
            if e.touched >= period || !e.settled() {
                return true;
            }
            if e.destroyed {
                forgotten.destroyed += 1;
                forgotten.recovered += u64::from(e.decoded > 0);
            } else {
                forgotten.checked += u64::from(e.offered);
            }
            false
        });
        self.by_index.retain(|_, (_, p)| *p >= period);
        self.period += 1;
    }

    /// How many entries are held now (forgotten ones not counted).
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.entries.len()
    }

    /// Every offered message not destroyed by a fault decoded exactly once (at least once when a
    /// fault duplicated it), and nothing decoded that was never offered.
    pub fn every_frame_once(&self) -> (bool, String) {
        let mut sorted: Vec<(&Key, &Entry)> = self.entries.iter().collect();
        sorted.sort_by_key(|(k, _)| **k);
        let mut problems = Vec::new();
        let mut checked = self.forgotten.checked;
        // A key can be offered more than once (a replayed capture may repeat a frame): each
        // offer is expected to be decoded once.
        for (k, e) in sorted.iter().filter(|(_, e)| e.offered > 0) {
            if e.destroyed {
                continue;
            }
            let (times, c) = (e.offered, e.decoded);
            checked += u64::from(times);
            let ok = if e.duplicated { c >= times } else { c == times };
            if !ok {
                problems.push(format!("{k} offered {times} times, decoded {c} times"));
            }
        }
        for (k, _) in sorted.iter().filter(|(_, e)| e.offered == 0 && e.decoded > 0) {
            problems.push(format!("{k} decoded but never offered"));
        }
        let detail = if problems.is_empty() {
            let destroyed = sorted.iter().filter(|(_, e)| e.destroyed);
            let held = destroyed.clone().count() as u64;
            // A message a fault acted on may still arrive: the terminal sent it again (0x8003,
            // 0x8800), or the fault spared its frame (a stray 0x7E next to a delimiter).
            let recovered = self.forgotten.recovered + destroyed.filter(|(_, e)| e.decoded > 0).count() as u64;
            let recovered = match recovered {
                0 => String::new(),
                n => format!(" ({n} of them decoded after all: sent again, or spared by the fault)"),
            };
            format!(
                "{checked} offered messages decoded once each; {} destroyed by faults{recovered}",
                self.forgotten.destroyed + held
            )
        } else {
            problems.truncate(10);
            problems.join("; ")
        };
        (problems.is_empty(), detail)
    }

    /// Each terminal's messages decoded in the order they were offered.
    pub fn order_per_terminal(&self) -> (bool, String) {
        let terminals = self.last_position.len();
        let detail = if self.order_problems.is_empty() && self.order_exempt > 0 {
            let exempt = self.order_exempt;
            let noun = if exempt == 1 { "message" } else { "messages" };
            format!("{terminals} terminals in order ({exempt} {noun} a fault reordered not judged)")
        } else if self.order_problems.is_empty() {
            format!("{terminals} terminals in order")
        } else {
            self.order_problems.join("; ")
        };
        (self.order_problems.is_empty(), detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone() -> Phone {
        Phone::parse("13800000001").expect("phone")
    }

    fn frame(serial: u16) -> FrameDesc {
        FrameDesc::Frame(FrameId {
            msg_id: 0x0200,
            phone: phone(),
            serial,
            packet: None,
        })
    }

    /// Serials 1-3 offered one message each on connection 1; 1 and 2 decoded, 3 dropped.
    fn three_messages() -> Ledger {
        let mut l = Ledger::default();
        for s in 1..=3 {
            l.offered(1, &[frame(s)]);
        }
        l.decoded(0x0200, phone(), 1);
        l.decoded(0x0200, phone(), 2);
        l.fault_on(1, 3, Outcome::Drop);
        l
    }

    /// Settled messages are forgotten at the second sweep after they were last touched, and the
    /// check says what it said before.
    #[test]
    fn sweeping_forgets_settled_messages_and_keeps_the_totals() {
        let before = three_messages().every_frame_once();
        assert_eq!(before.1, "2 offered messages decoded once each; 1 destroyed by faults");
        let mut l = three_messages();
        l.sweep();
        assert_eq!(l.held(), 3, "touched in the period that just ended");
        l.sweep();
        assert_eq!(l.held(), 0);
        assert_eq!(l.every_frame_once(), before);
        assert_eq!(l.order_per_terminal(), (true, "1 terminals in order".into()));
    }

    /// A message that was never decoded is not settled: it outlives any number of sweeps and the
    /// check names it; so does one decoded twice.
    #[test]
    fn unsettled_messages_survive_sweeps_and_fail_the_check() {
        let mut l = Ledger::default();
        l.offered(1, &[frame(1)]);
        l.offered(1, &[frame(2)]);
        l.decoded(0x0200, phone(), 2);
        l.decoded(0x0200, phone(), 2);
        for _ in 0..5 {
            l.sweep();
        }
        assert_eq!(l.held(), 2);
        assert_eq!(
            l.every_frame_once(),
            (
                false,
                "0x0200 13800000001 #1 offered 1 times, decoded 0 times; \
                 0x0200 13800000001 #2 offered 1 times, decoded 2 times"
                    .into()
            )
        );
    }

    /// A fault names a message by its index on the connection: one offered before the last sweep
    /// can still be named, one offered two sweeps ago is forgotten with its frames.
    #[test]
    fn message_indices_are_remembered_for_one_sweep_period() {
        let mut l = Ledger::default();
        l.offered(1, &[frame(1)]);
        l.sweep();
        l.fault_on(1, 1, Outcome::Drop);
        assert_eq!(
            l.every_frame_once().1,
            "0 offered messages decoded once each; 1 destroyed by faults"
        );
        let mut l = Ledger::default();
        l.offered(1, &[frame(1)]);
        l.sweep();
        l.sweep();
        l.fault_on(1, 1, Outcome::Drop);
        assert!(!l.every_frame_once().0, "the fault no longer finds message 1");
    }

    /// A message a reorder fault held back may be decoded after later ones of its terminal: it is
    /// not judged (and said so); without the fault the same decodings fail the check.
    #[test]
    fn a_reordered_message_is_exempt_from_the_order_check() {
        let decoded_backwards = |fault: Option<Outcome>| {
            let mut l = Ledger::default();
            l.offered(1, &[frame(1)]);
            l.offered(1, &[frame(2)]);
            if let Some(what) = fault {
                l.fault_on(1, 1, what);
            }
            l.decoded(0x0200, phone(), 2);
            l.decoded(0x0200, phone(), 1);
            l.order_per_terminal()
        };
        assert_eq!(
            decoded_backwards(Some(Outcome::Reorder)),
            (
                true,
                "1 terminals in order (1 message a fault reordered not judged)".into()
            )
        );
        assert_eq!(
            decoded_backwards(None),
            (
                false,
                "0x0200 13800000001 #1 decoded after a later message of that terminal".into()
            )
        );
    }
}
