//! Per-terminal reassembly of multi-packet (sub-packaged) messages. Sans-IO: time comes in as `now`,
//! the time since the run started (`start.elapsed()` live, a capture's offset in replay).
//!
//! JT808.md §4: every packet carries its own serial, and terminals interleave other messages between
//! the packets of one message, so a group is keyed on (phone, message id, total) and ordered by
//! index — **never** on `serial - (index - 1)` as the seed JavaScript client does. Packets may come
//! out of order and twice; index 0 or index > total is rejected. An incomplete group expires after
//! [`ReassemblyConfig::timeout`] without a new packet and is reported with its missing indices and
//! first serial, so a client can ask again with 0x8003. Limits on open groups and bytes held are
//! settings; hitting one evicts the oldest group and reports it, never silently.
//!
//! Asking with 0x8003 only helps if the group is still there when the packets come again. With
//! [`ReassemblyConfig::retransmit_wait`] set, a group idle for the timeout is first reported as
//! *stalled* ([`ReassemblyEvent::Stalled`], same report as an expiry) and kept that much longer:
//! the re-sent packets complete it, and only a group still incomplete then is given up.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::header::{Header, Phone, Version};
use super::message::Assembled;

/// The most a new group reserves up front for its fragments (it grows past this as needed).
const RESERVE_CAP: usize = 64 << 10;

/// The most packet slots a new group reserves up front (a group of 18 grew 5 times from empty).
const PARTS_RESERVE: usize = 64;

/// Reassembly settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReassemblyConfig {
    /// An incomplete group with no new packet for this long expires. Default 30 s.
    #[serde(with = "crate::codec::reassembly::duration_ms", rename = "timeout_ms")]
    pub timeout: Duration,
    /// Most groups open at once (over all terminals). Default 1024.
    pub max_groups: usize,
    /// Most fragment bytes held over all open groups. Default 16 MiB.
    pub max_bytes: usize,
    /// How long a group idle for the timeout stays open, reported as stalled, for the packets a
    /// 0x8003 asks for (counted from the stall, and again from each new packet that comes; a
    /// duplicate does not count). A group stalls once, so it is asked for once. Default 0: given
    /// up at the timeout.
    #[serde(with = "crate::codec::reassembly::duration_ms", rename = "retransmit_wait_ms")]
    pub retransmit_wait: Duration,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            timeout: Duration::from_secs(30),
            max_groups: 1024,
            max_bytes: 16 << 20,
            retransmit_wait: Duration::ZERO,
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
    /// Indices never received, ascending.
    pub missing: Vec<u16>,
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
    /// The index was already held; the packet is ignored (the first copy is kept).
    Duplicate {
        /// Group.
        key: GroupKey,
        /// Packet index.
        index: u16,
        /// Serial of the duplicate.
        serial: u16,
        /// Whether its bytes differ from the copy held.
        differs: bool,
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

#[derive(Debug)]
struct Group {
    first: Option<Header>,
    /// Header and index of the earliest-indexed packet held (for inferring the first serial).
    earliest: (u16, Header),
    /// The fragments back to back in arrival order: one buffer per group, not one per packet, and
    /// when the packets came in index order it is the finished body as it stands.
    data: Vec<u8>,
    /// Index -> where its fragment lies in `data`.
    parts: Parts,
    opened: Duration,
    last: Duration,
    /// When it was reported stalled (it then waits for `retransmit_wait`, not the timeout).
    stalled: Option<Duration>,
}

/// The fragments of a group by packet index: a `Vec` sorted by index. Packets nearly always come in
/// index order, so an insert is a push at the end (a `BTreeMap` cost a node search and often an
/// allocation per packet); out of order it is a binary search and a shift of the few held.
#[derive(Debug, Default)]
struct Parts(Vec<(u16, std::ops::Range<usize>)>);

impl Parts {
    fn get(&self, index: u16) -> Option<&std::ops::Range<usize>> {
        match self.0.last() {
            Some((last, _)) if *last < index => None,
            _ => self
                .0
                .binary_search_by_key(&index, |(i, _)| *i)
                .ok()
                .map(|at| &self.0[at].1),
        }
    }

    /// Adds `index` (not held: checked with [`Parts::get`] first).
    fn insert(&mut self, index: u16, range: std::ops::Range<usize>) {
        match self.0.last() {
            Some((last, _)) if *last > index => {
                let at = self.0.partition_point(|(i, _)| *i < index);
                self.0.insert(at, (index, range));
            }
            _ => self.0.push((index, range)),
        }
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    /// The fragments' places, in index order.
    fn values(&self) -> impl Iterator<Item = &std::ops::Range<usize>> {
        self.0.iter().map(|(_, r)| r)
    }
}

/// Packet groups of every terminal. See the module doc.
#[derive(Debug, Default)]
pub struct Reassembler {
    cfg: ReassemblyConfig,
    groups: BTreeMap<GroupKey, Group>,
    bytes: usize,
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new(cfg: ReassemblyConfig) -> Reassembler {
        Reassembler {
            cfg,
            groups: BTreeMap::new(),
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

    /// Fragment bytes held.
    pub fn bytes_held(&self) -> usize {
        self.bytes
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
            let mut first = header.clone();
            first.packet = None;
            first.body_len = fragment.len() as u16;
            f(ReassemblyEvent::Complete {
                header: first,
                body: fragment.to_vec(),
                assembled: Assembled {
                    packets: 1,
                    first_serial: header.serial,
                },
            });
            return;
        }
        if let Some(g) = self.groups.get_mut(&key) {
            if let Some(held) = g.parts.get(p.index) {
                let differs = &g.data[held.clone()] != fragment;
                f(ReassemblyEvent::Duplicate {
                    key,
                    index: p.index,
                    serial: header.serial,
                    differs,
                });
                return;
            }
        } else {
            self.make_room(fragment.len(), &mut f);
            self.groups.insert(
                key,
                Group {
                    first: None,
                    earliest: (p.index, header.clone()),
                    // Room for the whole message if the packets are alike, within reason.
                    data: Vec::with_capacity(
                        (fragment.len() * p.total as usize)
                            .min(self.cfg.max_bytes)
                            .min(RESERVE_CAP),
                    ),
                    parts: Parts(Vec::with_capacity(usize::from(p.total).min(PARTS_RESERVE))),
                    opened: now,
                    last: now,
                    stalled: None,
                },
            );
        }
        let g = self.groups.get_mut(&key).expect("group just ensured");
        let start = g.data.len();
        g.data.extend_from_slice(fragment);
        g.parts.insert(p.index, start..g.data.len());
        g.last = now;
        self.bytes += fragment.len();
        if p.index == 1 {
            g.first = Some(header.clone());
        }
        if p.index < g.earliest.0 {
            g.earliest = (p.index, header.clone());
        }
        if g.parts.len() == p.total as usize {
            let g = self.groups.remove(&key).expect("group present");
            self.bytes -= g.data.len();
            let mut first = g.first.expect("index 1 is among `total` distinct valid indices");
            let mut next = 0;
            let in_order = g.parts.values().all(|r| {
                let follows = r.start == next;
                next = r.end;
                follows
            });
            let body = if in_order {
                g.data
            } else {
                let mut body = Vec::with_capacity(g.data.len());
                for r in g.parts.values() {
                    body.extend_from_slice(&g.data[r.clone()]);
                }
                body
            };
            let assembled = Assembled {
                packets: p.total,
                first_serial: first.serial,
            };
            first.packet = None;
            first.body_len = body.len().min(u16::MAX as usize) as u16;
            f(ReassemblyEvent::Complete {
                header: first,
                body,
                assembled,
            });
        } else if g.data.len() > self.cfg.max_bytes {
            // This group alone holds more than the limit: it can never complete within it, and
            // evicting others would not help. Give it up (the limit is a hard bound on bytes held).
            let e = self.give_up(key, ExpireReason::ByteLimit);
            f(ReassemblyEvent::Expired(e));
        } else if self.bytes > self.cfg.max_bytes {
            // The new fragment pushed us over: give up the oldest groups other than this one.
            self.evict_until(
                |r| r.bytes <= r.cfg.max_bytes,
                ExpireReason::ByteLimit,
                Some(key),
                &mut f,
            );
        }
    }

    /// Reports as stalled, or gives up, every group due at `now` (see
    /// [`ReassemblyConfig::retransmit_wait`]).
    pub fn expire(&mut self, now: Duration, mut f: impl FnMut(ReassemblyEvent)) {
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
                f(ReassemblyEvent::Stalled(report(key, g, ExpireReason::Timeout)));
            } else {
                let e = self.give_up(key, ExpireReason::Timeout);
                f(ReassemblyEvent::Expired(e));
            }
        }
    }

    /// Gives up every open group (e.g. at the end of a capture), reported as timed out.
    pub fn drain(&mut self, mut f: impl FnMut(ReassemblyEvent)) {
        let keys: Vec<GroupKey> = self.groups.keys().copied().collect();
        for key in keys {
            let e = self.give_up(key, ExpireReason::Timeout);
            f(ReassemblyEvent::Expired(e));
        }
    }

    fn make_room(&mut self, incoming: usize, f: &mut impl FnMut(ReassemblyEvent)) {
        if self.groups.len() >= self.cfg.max_groups {
            let target = self.cfg.max_groups.saturating_sub(1);
            self.evict_until(|r| r.groups.len() <= target, ExpireReason::GroupLimit, None, f);
        }
        // A fragment over the limit on its own cannot be made room for; its group is given up
        // right after it is inserted, so the others are left alone.
        if self.bytes + incoming > self.cfg.max_bytes && incoming <= self.cfg.max_bytes {
            let limit = self.cfg.max_bytes.saturating_sub(incoming);
            self.evict_until(|r| r.bytes <= limit, ExpireReason::ByteLimit, None, f);
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
            let e = self.give_up(key, reason);
            f(ReassemblyEvent::Expired(e));
        }
    }

    fn give_up(&mut self, key: GroupKey, reason: ExpireReason) -> Expired {
        let g = self.groups.remove(&key).expect("key taken from the map");
        self.bytes -= g.data.len();
        report(key, &g, reason)
    }
}

/// What an incomplete group holds and misses.
fn report(key: GroupKey, g: &Group, reason: ExpireReason) -> Expired {
    let missing: Vec<u16> = (1..=key.total).filter(|&i| g.parts.get(i).is_none()).collect();
    let (first_serial, first_serial_known) = match &g.first {
        Some(h) => (h.serial, true),
        None => (g.earliest.1.serial.wrapping_sub(g.earliest.0 - 1), false),
    };
    Expired {
        phone: key.phone,
        msg_id: key.msg_id,
        version: g.earliest.1.version,
        total: key.total,
        received: g.parts.len() as u16,
        missing,
        first_serial,
        first_serial_known,
        reason,
    }
}
