//! Per-terminal reassembly of multi-packet (sub-packaged) messages. Sans-IO: time comes in as `now`,
//! the time since the run started (`start.elapsed()` live, a capture's offset in replay).
//!
//! JT808.md §4: every packet carries its own serial, and terminals interleave other messages between
//! the packets of one message, so a group is keyed on (phone, message id, total) and ordered by
//! index — **never** on `serial - (index - 1)` as the seed JavaScript client does. Packets may come
//! out of order and twice; index 0 or index > total is rejected. An incomplete group expires after
//! [`ReassemblyConfig::timeout`] without a new packet and is reported with its missing indices and
//! first serial (the missing indices as ranges, so a report is as long as the packets received,
//! not as the total a packet declares), so a client can ask again with 0x8003. Limits on open
//! groups and bytes held are settings; hitting one evicts the oldest group and reports it, never
//! silently. The byte limit counts what is reserved (buffer capacity), not what is filled, and
//! nothing is reserved by a group's declared total: it is a true bound on packet storage.
//!
//! Asking with 0x8003 only helps if the group is still there when the packets come again. With
//! [`ReassemblyConfig::retransmit_wait`] set, a group idle for the timeout is first reported as
//! *stalled* ([`ReassemblyEvent::Stalled`], same report as an expiry) and kept that much longer:
//! the re-sent packets complete it, and only a group still incomplete then is given up.
//!
//! A copy of a packet can also come *after* its group completed (a link that duplicates, a
//! terminal re-sending a packet it was not sure of). Taken as the first packet of a new group it
//! would open a group that can never complete and is reported missing everything else a timeout
//! later: a phantom message loss. So the last [`ReassemblyConfig::remember_completed`] completed
//! groups are remembered for the timeout, each as the serial and a fragment hash of every packet
//! (8 bytes a packet, counted in [`Reassembler::bytes_held`] and forgotten first when room is
//! needed), and a packet with a remembered group's key, index and serial is a duplicate
//! ([`ReassemblyEvent::Duplicate`] with `completed` set). A packet of the same key with another
//! serial is a new group: serials are per message, so a new message has new ones (JT808.md §4).

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::time::Duration;

use serde::Serialize;

use super::header::{Header, Phone, Version};
use super::message::Assembled;

mod missing;
pub use missing::Missing;

/// Reassembly settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReassemblyConfig {
    /// An incomplete group with no new packet for this long expires. Default 30 s.
    #[serde(with = "crate::codec::reassembly::duration_ms", rename = "timeout_ms")]
    pub timeout: Duration,
    /// Most groups open at once (over all terminals). Default 1024.
    pub max_groups: usize,
    /// Most bytes reserved for packet storage over all open groups: fragment buffers and index
    /// slots, counted by capacity, not length (see [`Reassembler::bytes_held`]). Default 16 MiB.
    pub max_bytes: usize,
    /// How long a group idle for the timeout stays open, reported as stalled, for the packets a
    /// 0x8003 asks for (counted from the stall, and again from each new packet that comes; a
    /// duplicate does not count). A group stalls once, so it is asked for once. Default 0: given
    /// up at the timeout.
    #[serde(with = "crate::codec::reassembly::duration_ms", rename = "retransmit_wait_ms")]
    pub retransmit_wait: Duration,
    /// How many completed groups are remembered (for the timeout after completing) so that a late
    /// copy of one of their packets is a duplicate, not a new group that can never complete (see
    /// the module doc). Default 64; 0 remembers none.
    pub remember_completed: usize,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            timeout: Duration::from_secs(30),
            max_groups: 1024,
            max_bytes: 16 << 20,
            retransmit_wait: Duration::ZERO,
            remember_completed: 64,
        }
    }
}

/// Serde helper: a [`Duration`] as whole milliseconds.
pub mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Serialises as milliseconds.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    /// Deserialises from milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Identifies one packet group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct GroupKey {
    /// Terminal phone.
    pub phone: Phone,
    /// Message id.
    pub msg_id: u16,
    /// Total packets.
    pub total: u16,
}

/// Why a group was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpireReason {
    /// No packet for [`ReassemblyConfig::timeout`].
    Timeout,
    /// [`ReassemblyConfig::max_groups`] was reached and this was the oldest group.
    GroupLimit,
    /// [`ReassemblyConfig::max_bytes`] was reached and this was the oldest group.
    ByteLimit,
}

/// An incomplete group that was given up (or, as [`ReassemblyEvent::Stalled`], is waiting for
/// the packets it misses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expired {
    /// Terminal phone.
    pub phone: Phone,
    /// Message id.
    #[serde(serialize_with = "ser_id")]
    pub msg_id: u16,
    /// Header version of the group's packets (decides the 0x8003 form).
    pub version: Version,
    /// Total packets.
    pub total: u16,
    /// Packets received.
    pub received: u16,
    /// Indices never received, as ranges with their count (`missing`, `missing_count`).
    #[serde(flatten)]
    pub missing: Missing,
    /// Serial of packet 1: as received, or inferred as `serial - (index - 1)` from the earliest packet
    /// when packet 1 itself is missing (a best guess for 0x8003; see `first_serial_known`).
    pub first_serial: u16,
    /// Whether packet 1 was received, so `first_serial` is exact.
    pub first_serial_known: bool,
    /// Why it was given up.
    pub reason: ExpireReason,
}

fn ser_id<S: serde::Serializer>(id: &u16, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("0x{id:04X}"))
}

/// What inserting one packet led to.
#[derive(Debug, Clone, PartialEq)]
pub enum ReassemblyEvent {
    /// All packets arrived: the first packet's header (sub-packet item cleared, `body_len` the full
    /// length) and the fragments joined in index order.
    Complete {
        /// Header of packet 1.
        header: Header,
        /// The whole body.
        body: Vec<u8>,
        /// Packet count and first serial.
        assembled: Assembled,
    },
    /// The index was already held, or belongs to a group completed lately (`completed`); the
    /// packet is ignored (the first copy is kept).
    Duplicate {
        /// Group.
        key: GroupKey,
        /// Packet index.
        index: u16,
        /// Serial of the duplicate.
        serial: u16,
        /// Whether its bytes differ from the copy held (for a completed group: from the hash of
        /// the copy it was completed with).
        differs: bool,
        /// The group had already completed: a late copy of one of its packets.
        completed: bool,
    },
    /// Index 0, index > total, or total 0: the packet is dropped.
    InvalidIndex {
        /// Group.
        key: GroupKey,
        /// Packet index.
        index: u16,
        /// Serial.
        serial: u16,
    },
    /// A group was given up (timeout or a limit).
    Expired(Expired),
    /// A group idle for the timeout is kept open for [`ReassemblyConfig::retransmit_wait`] more:
    /// time to ask for its missing packets with 0x8003.
    Stalled(Expired),
}

/// Bytes one packet's index slot takes in a group, counted in [`Reassembler::bytes_held`].
pub const SLOT_BYTES: usize = std::mem::size_of::<Slot>();

/// Bytes a remembered completed group keeps per packet, counted in [`Reassembler::bytes_held`].
pub const PRINT_BYTES: usize = std::mem::size_of::<Print>();

/// One packet of a group held: its index, serial and where its fragment lies in the group's data.
#[derive(Debug, Clone)]
struct Slot {
    index: u16,
    serial: u16,
    range: Range<usize>,
}

/// What is remembered of one packet of a completed group: enough to know a late copy of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Print {
    serial: u16,
    hash: u32,
}

impl Print {
    fn of(serial: u16, fragment: &[u8]) -> Print {
        // CRC-32: deterministic, and at SIMD speed (std's SipHash took 18% of decoding a stream
        // of 0x1205 groups). Not a defence against a forger, which it need not be: a collision
        // (2^-32 for a random change, none for a burst of up to 32 bits) reports a differing
        // late copy as identical, and it is still reported as a duplicate.
        Print {
            serial,
            hash: crc32fast::hash(fragment),
        }
    }
}

/// A group completed lately (see the module doc).
#[derive(Debug)]
struct Completed {
    key: GroupKey,
    at: Duration,
    /// By packet index - 1.
    prints: Vec<Print>,
}

impl Completed {
    fn cost(&self) -> usize {
        self.prints.capacity() * PRINT_BYTES
    }
}

#[derive(Debug)]
struct Group {
    first: Option<Header>,
    /// Header and index of the earliest-indexed packet held (for inferring the first serial).
    earliest: (u16, Header),
    /// The fragments back to back in arrival order: one buffer per group, not one per packet, and
    /// when the packets came in index order it is the finished body as it stands. Grown by
    /// doubling from the first fragment, never reserved by the declared total: a hostile total of
    /// 65,535 must not reserve more than what arrived.
    data: Vec<u8>,
    /// Index -> where its fragment lies in `data`.
    parts: Parts,
    opened: Duration,
    last: Duration,
    /// When it was reported stalled (it then waits for `retransmit_wait`, not the timeout).
    stalled: Option<Duration>,
}

impl Group {
    fn new(index: u16, header: &Header, now: Duration) -> Group {
        Group {
            first: None,
            earliest: (index, header.clone()),
            data: Vec::new(),
            parts: Parts::default(),
            opened: now,
            last: now,
            stalled: None,
        }
    }

    /// What the group reserves for packet storage: by capacity, so the limit counts every byte
    /// allocated, not only the bytes filled.
    fn cost(&self) -> usize {
        self.data.capacity() + self.parts.0.capacity() * SLOT_BYTES
    }
}

/// The fragments of a group by packet index: a `Vec` sorted by index. Packets nearly always come in
/// index order, so an insert is a push at the end (a `BTreeMap` cost a node search and often an
/// allocation per packet); out of order it is a binary search and a shift of the few held.
#[derive(Debug, Default)]
struct Parts(Vec<Slot>);

impl Parts {
    fn get(&self, index: u16) -> Option<&Range<usize>> {
        match self.0.last() {
            Some(last) if last.index < index => None,
            _ => self
                .0
                .binary_search_by_key(&index, |s| s.index)
                .ok()
                .map(|at| &self.0[at].range),
        }
    }

    /// Where `index` goes among the held ones.
    fn position(&self, index: u16) -> usize {
        self.0.partition_point(|s| s.index < index)
    }

    /// Adds a packet whose index is not held (checked with [`Parts::get`] first). Room was
    /// reserved by the caller.
    fn insert(&mut self, slot: Slot) {
        match self.0.last() {
            Some(last) if last.index > slot.index => {
                let at = self.position(slot.index);
                self.0.insert(at, slot);
            }
            _ => self.0.push(slot),
        }
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    /// The indices held, ascending.
    fn indices(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().map(|s| s.index)
    }
}

/// The capacity a buffer of capacity `cap` holding `len` grows to for `extra` more: doubling (so a
/// group is copied O(1) times per byte in all), but past `room` only as far as it must.
fn grown(cap: usize, len: usize, extra: usize, room: usize) -> usize {
    let need = len + extra;
    if need <= cap {
        cap
    } else {
        need.max(cap.saturating_mul(2).min(room))
    }
}

/// Packet groups of every terminal. See the module doc.
#[derive(Debug, Default)]
pub struct Reassembler {
    cfg: ReassemblyConfig,
    groups: BTreeMap<GroupKey, Group>,
    /// Groups completed lately, oldest first (see the module doc).
    completed: VecDeque<Completed>,
    /// The running sum of [`Group::cost`] and [`Completed::cost`].
    bytes: usize,
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new(cfg: ReassemblyConfig) -> Reassembler {
        Reassembler {
            cfg,
            groups: BTreeMap::new(),
            completed: VecDeque::new(),
            bytes: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &ReassemblyConfig {
        &self.cfg
    }

    /// Groups open.
    pub fn open_groups(&self) -> usize {
        self.groups.len()
    }

    /// Completed groups remembered now (see [`ReassemblyConfig::remember_completed`]).
    pub fn remembered_groups(&self) -> usize {
        self.completed.len()
    }

    /// Bytes reserved for packet storage, the figure [`ReassemblyConfig::max_bytes`] bounds: every
    /// open group's fragment buffer and index slots ([`SLOT_BYTES`] each) by capacity, and the
    /// remembered completed groups ([`PRINT_BYTES`] a packet). Never above
    /// `max_bytes` between calls. The fixed record of a group (its key and two headers, about 100
    /// bytes) is not in it: that is bounded by [`ReassemblyConfig::max_groups`].
    pub fn bytes_held(&self) -> usize {
        self.bytes
    }

    /// [`Reassembler::bytes_held`] recomputed from the buffers' `capacity()` now, walking every
    /// group: a check on the running account (tests, fuzzing), not for a hot path.
    pub fn reserved_bytes(&self) -> usize {
        // Spelt out, not `Group::cost`: an independent check of the account.
        let slots = |g: &Group| g.parts.0.capacity() * std::mem::size_of::<(u16, u16, Range<usize>)>();
        let open: usize = self.groups.values().map(|g| g.data.capacity() + slots(g)).sum();
        let prints = |c: &Completed| c.prints.capacity() * std::mem::size_of::<(u16, u32)>();
        open + self.completed.iter().map(prints).sum::<usize>()
    }

    /// The earliest time at which [`Reassembler::expire`] will report or give up a group.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.groups.values().map(|g| self.deadline(g)).min()
    }

    /// When `g` is due: reported stalled (or given up, with no retransmit wait) after the timeout
    /// without a packet; once stalled, given up after the wait without one.
    fn deadline(&self, g: &Group) -> Duration {
        match g.stalled {
            Some(at) => at.max(g.last) + self.cfg.retransmit_wait,
            None => g.last + self.cfg.timeout,
        }
    }

    /// Inserts one packet (`header.packet` must be set) with its body fragment.
    pub fn insert(&mut self, header: &Header, fragment: &[u8], now: Duration, mut f: impl FnMut(ReassemblyEvent)) {
        let Some(p) = header.packet else {
            return;
        };
        let key = GroupKey {
            phone: header.phone,
            msg_id: header.msg_id,
            total: p.total,
        };
        if p.total == 0 || p.index == 0 || p.index > p.total {
            f(ReassemblyEvent::InvalidIndex {
                key,
                index: p.index,
                serial: header.serial,
            });
            return;
        }
        if p.total == 1 {
            // A "group" of one is complete as it arrives: it never occupies a slot, so it can never
            // evict a real group under the limits.
            return f(single(header, fragment));
        }
        if let Some(late) = self.late_copy(key, p.index, header.serial, fragment) {
            return f(late);
        }
        match self.groups.get(&key) {
            Some(g) => {
                if let Some(held) = g.parts.get(p.index) {
                    let differs = &g.data[held.clone()] != fragment;
                    return f(ReassemblyEvent::Duplicate {
                        key,
                        index: p.index,
                        serial: header.serial,
                        differs,
                        completed: false,
                    });
                }
            }
            None => {
                if self.groups.len() >= self.cfg.max_groups {
                    let target = self.cfg.max_groups.saturating_sub(1);
                    self.evict_until(|r| r.groups.len() <= target, ExpireReason::GroupLimit, None, &mut f);
                }
                self.groups.insert(key, Group::new(p.index, header, now));
            }
        }
        let g = self.groups.get_mut(&key).expect("group just ensured");
        g.last = now;
        if p.index == 1 {
            g.first = Some(header.clone());
        }
        if p.index < g.earliest.0 {
            g.earliest = (p.index, header.clone());
        }
        if g.parts.len() + 1 == usize::from(p.total) {
            // The last packet is not stored: the body is built from the group and it directly.
            return f(self.complete(key, p.index, header.serial, fragment, now));
        }
        if !self.reserve(key, fragment.len(), &mut f) {
            // This group alone would hold more than the limit: it can never complete within it, and
            // evicting others would not help. Give it up, this packet counted as received.
            let e = self.give_up(key, ExpireReason::ByteLimit, Some(p.index));
            return f(ReassemblyEvent::Expired(e));
        }
        let g = self.groups.get_mut(&key).expect("group kept by reserve");
        let start = g.data.len();
        g.data.extend_from_slice(fragment);
        g.parts.insert(Slot {
            index: p.index,
            serial: header.serial,
            range: start..g.data.len(),
        });
    }

    /// A packet of a group remembered as completed (same key, index and serial): reported as a
    /// late duplicate. Newest first, so a key completed twice is matched to the latest group.
    fn late_copy(&self, key: GroupKey, index: u16, serial: u16, fragment: &[u8]) -> Option<ReassemblyEvent> {
        let c = self.completed.iter().rev().find(|c| c.key == key)?;
        let held = c.prints.get(usize::from(index) - 1)?;
        (held.serial == serial).then(|| ReassemblyEvent::Duplicate {
            key,
            index,
            serial,
            differs: Print::of(serial, fragment).hash != held.hash,
            completed: true,
        })
    }

    /// Remembers a completed group (see the module doc), forgetting the oldest past the count
    /// limit or the byte limit; a group whose prints alone pass the byte limit is not remembered.
    fn remember(&mut self, c: Completed) {
        let max = self.cfg.remember_completed;
        if max == 0 || c.cost() > self.cfg.max_bytes {
            return;
        }
        self.bytes += c.cost();
        self.completed.push_back(c);
        while self.completed.len() > max || self.bytes > self.cfg.max_bytes {
            self.forget_oldest();
        }
    }

    /// Forgets the oldest remembered group; false when none is left.
    fn forget_oldest(&mut self) -> bool {
        match self.completed.pop_front() {
            Some(c) => {
                self.bytes -= c.cost();
                true
            }
            None => false,
        }
    }

    /// Forgets the groups remembered for the timeout already.
    fn forget_expired(&mut self, now: Duration) {
        while self.completed.front().is_some_and(|c| now >= c.at + self.cfg.timeout) {
            self.forget_oldest();
        }
    }

    /// Grows `key`'s storage for one more packet with `extra` fragment bytes, first evicting the
    /// oldest other groups while the total would pass `max_bytes`. False when the group alone
    /// would pass it (nothing is grown then, unless an allocator handed out more than asked).
    fn reserve(&mut self, key: GroupKey, extra: usize, f: &mut impl FnMut(ReassemblyEvent)) -> bool {
        let max = self.cfg.max_bytes;
        let g = &self.groups[&key];
        let old = g.cost();
        let room = max.saturating_sub(self.bytes - old);
        let slots = grown(g.parts.0.capacity(), g.parts.len(), 1, room / SLOT_BYTES);
        let data = grown(
            g.data.capacity(),
            g.data.len(),
            extra,
            room.saturating_sub(slots * SLOT_BYTES),
        );
        let new = data + slots * SLOT_BYTES;
        if new > max {
            return false;
        }
        while self.bytes - old + new > max && self.forget_oldest() {}
        if self.bytes - old + new > max {
            self.evict_until(|r| r.bytes - old + new <= max, ExpireReason::ByteLimit, Some(key), f);
        }
        let g = self.groups.get_mut(&key).expect("the group evicting is kept");
        g.data.reserve_exact(data - g.data.len());
        g.parts.0.reserve_exact(slots - g.parts.len());
        self.bytes = self.bytes - old + g.cost();
        if self.bytes > max {
            // Asked for `new`, given more: the account is by what was given.
            self.evict_until(|r| r.bytes <= max, ExpireReason::ByteLimit, Some(key), f);
        }
        self.bytes <= max
    }

    /// Removes `key`, whose last packet `index` (serial `serial`) just came with `fragment`, puts
    /// the body together in index order and remembers the group as completed.
    fn complete(&mut self, key: GroupKey, index: u16, serial: u16, fragment: &[u8], now: Duration) -> ReassemblyEvent {
        let g = self.groups.remove(&key).expect("group present");
        self.bytes -= g.cost();
        if self.cfg.remember_completed > 0 {
            // Every index 1..=total is held or is `index`: the prints in index order.
            let at = g.parts.position(index);
            let print = |s: &Slot| Print::of(s.serial, &g.data[s.range.clone()]);
            let mut prints = Vec::with_capacity(usize::from(key.total));
            prints.extend(g.parts.0[..at].iter().map(print));
            prints.push(Print::of(serial, fragment));
            prints.extend(g.parts.0[at..].iter().map(print));
            self.remember(Completed { key, at: now, prints });
        }
        let mut first = g.first.expect("index 1 is among `total` distinct valid indices");
        let at = g.parts.position(index);
        let mut next = 0;
        let in_order = at == g.parts.len()
            && g.parts.0.iter().all(|s| {
                let follows = s.range.start == next;
                next = s.range.end;
                follows
            });
        let body = if in_order {
            let mut body = g.data;
            body.extend_from_slice(fragment);
            body
        } else {
            let mut body = Vec::with_capacity(g.data.len() + fragment.len());
            for (n, s) in g.parts.0.iter().enumerate() {
                if n == at {
                    body.extend_from_slice(fragment);
                }
                body.extend_from_slice(&g.data[s.range.clone()]);
            }
            if at == g.parts.len() {
                body.extend_from_slice(fragment);
            }
            body
        };
        let assembled = Assembled {
            packets: key.total,
            first_serial: first.serial,
        };
        first.packet = None;
        first.body_len = body.len().min(u16::MAX as usize) as u16;
        ReassemblyEvent::Complete {
            header: first,
            body,
            assembled,
        }
    }

    /// Reports as stalled, or gives up, every group due at `now` (see
    /// [`ReassemblyConfig::retransmit_wait`]).
    pub fn expire(&mut self, now: Duration, mut f: impl FnMut(ReassemblyEvent)) {
        if !self.completed.is_empty() {
            self.forget_expired(now);
        }
        if self.groups.is_empty() {
            return;
        }
        self.expire_due(now, &mut f);
    }

    /// [`Reassembler::expire`] with groups open: out of line, so the decoder's per-chunk call
    /// stays a length check next to its deframing loop.
    #[inline(never)]
    fn expire_due(&mut self, now: Duration, f: &mut dyn FnMut(ReassemblyEvent)) {
        let due: Vec<GroupKey> = self
            .groups
            .iter()
            .filter(|(_, g)| now >= self.deadline(g))
            .map(|(k, _)| *k)
            .collect();
        let wait = !self.cfg.retransmit_wait.is_zero();
        for key in due {
            let g = self.groups.get_mut(&key).expect("key taken from the map");
            if wait && g.stalled.is_none() {
                g.stalled = Some(now);
                let g = &self.groups[&key];
                f(ReassemblyEvent::Stalled(report(key, g, ExpireReason::Timeout, None)));
            } else {
                let e = self.give_up(key, ExpireReason::Timeout, None);
                f(ReassemblyEvent::Expired(e));
            }
        }
    }

    /// Gives up every open group (e.g. at the end of a capture), reported as timed out.
    pub fn drain(&mut self, mut f: impl FnMut(ReassemblyEvent)) {
        let keys: Vec<GroupKey> = self.groups.keys().copied().collect();
        for key in keys {
            let e = self.give_up(key, ExpireReason::Timeout, None);
            f(ReassemblyEvent::Expired(e));
        }
    }

    fn evict_until(
        &mut self,
        done: impl Fn(&Reassembler) -> bool,
        reason: ExpireReason,
        keep: Option<GroupKey>,
        f: &mut impl FnMut(ReassemblyEvent),
    ) {
        while !done(self) {
            let oldest = self
                .groups
                .iter()
                .filter(|(k, _)| Some(**k) != keep)
                .min_by_key(|(k, g)| (g.opened, **k))
                .map(|(k, _)| *k);
            let Some(key) = oldest else { break };
            let e = self.give_up(key, reason, None);
            f(ReassemblyEvent::Expired(e));
        }
    }

    /// Removes `key` and reports it; `also` is a packet that came but was not stored.
    fn give_up(&mut self, key: GroupKey, reason: ExpireReason, also: Option<u16>) -> Expired {
        let g = self.groups.remove(&key).expect("key taken from the map");
        self.bytes -= g.cost();
        report(key, &g, reason, also)
    }
}

/// A packet of a one-packet "group": the message as it is.
fn single(header: &Header, fragment: &[u8]) -> ReassemblyEvent {
    let mut first = header.clone();
    first.packet = None;
    first.body_len = fragment.len() as u16;
    ReassemblyEvent::Complete {
        header: first,
        body: fragment.to_vec(),
        assembled: Assembled {
            packets: 1,
            first_serial: header.serial,
        },
    }
}

/// What an incomplete group holds and misses (`also`: a packet received but not stored). Linear
/// in the packets held: the gaps between them, not every index up to the total.
fn report(key: GroupKey, g: &Group, reason: ExpireReason, also: Option<u16>) -> Expired {
    let mut held: Vec<u16> = g.parts.indices().collect();
    if let Some(a) = also {
        held.insert(g.parts.position(a), a);
    }
    let mut missing = Missing::default();
    let mut next = 1u32; // the lowest index not yet known to be held or missing
    for &i in &held {
        if u32::from(i) > next {
            missing.push(next as u16..=i - 1);
        }
        next = u32::from(i) + 1;
    }
    if next <= u32::from(key.total) {
        missing.push(next as u16..=key.total);
    }
    let (first_serial, first_serial_known) = match &g.first {
        Some(h) => (h.serial, true),
        None => (g.earliest.1.serial.wrapping_sub(g.earliest.0 - 1), false),
    };
    Expired {
        phone: key.phone,
        msg_id: key.msg_id,
        version: g.earliest.1.version,
        total: key.total,
        received: held.len() as u16,
        missing,
        first_serial,
        first_serial_known,
        reason,
    }
}
