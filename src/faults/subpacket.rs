//! `drop_packet`, `duplicate_packet`, `reorder_packet`: one sub-packet of a multi-packet message
//! (JT808.md §4) is lost, repeated or delivered late, so the client's reassembly meets a gap, a
//! duplicate index or packets out of index order.
//!
//! A multi-packet message is recognised by its sub-packet items: frames with the same message id,
//! phone and total form one group (never by consecutive serials, which real terminals do not keep,
//! JT808.md §4). The trigger is evaluated once per group, on its first packet seen, so `every = 2`
//! means every second multi-packet message. The target is packet `index`, or a random index of the
//! group when `index` is not given. A group ends when its last index has passed.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::fault::{Cx, Fault, FaultType, Msg, Out};
use super::frames::{self, Located};
use super::limits::{MAX_MS, MAX_PACKET_INDEX, check, check_opt};
use super::outcome::Outcome;

/// `drop_packet` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropPacket {
    /// Packet index to drop (1-based); default: random within the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u16>,
}

/// `duplicate_packet` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuplicatePacket {
    /// Packet index to send twice (1-based); default: random within the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u16>,
}

/// `reorder_packet` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReorderPacket {
    /// Packet index to hold back until the group's next packet has passed (1-based); default:
    /// random. The last packet has no later one to pass, so for it the one before is held instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u16>,
    /// Longest the packet is held when no later packet comes (default 1000 ms); then it is sent in
    /// a message of its own.
    #[serde(default = "thousand")]
    pub max_wait_ms: u64,
}

fn thousand() -> u64 {
    1000
}

fn validate_index(index: Option<u16>) -> Result<(), String> {
    check_opt("index", index, 1..=MAX_PACKET_INDEX).map_err(|e| format!("{e} (1-based, JT808.md §4)"))
}

impl FaultType for DropPacket {
    fn validate(&self) -> Result<(), String> {
        validate_index(self.index)
    }

    fn build(&self) -> Option<Box<dyn Fault>> {
        Some(Box::new(PacketState::new(PacketAction::Drop, self.index, 0)))
    }
}
impl FaultType for DuplicatePacket {
    fn validate(&self) -> Result<(), String> {
        validate_index(self.index)
    }

    fn build(&self) -> Option<Box<dyn Fault>> {
        Some(Box::new(PacketState::new(PacketAction::Duplicate, self.index, 0)))
    }
}
impl FaultType for ReorderPacket {
    fn validate(&self) -> Result<(), String> {
        validate_index(self.index)?;
        check("max_wait_ms", self.max_wait_ms, 0..=MAX_MS)
    }

    fn build(&self) -> Option<Box<dyn Fault>> {
        Some(Box::new(PacketState::new(
            PacketAction::Reorder,
            self.index,
            self.max_wait_ms,
        )))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PacketAction {
    Drop,
    Duplicate,
    Reorder,
}

type GroupKey = (String, u16, u16);

fn key(fr: &Located) -> Option<GroupKey> {
    let p = fr.header.packet?;
    Some((fr.header.phone.to_string(), fr.header.msg_id, p.total))
}

/// A packet held back by `reorder_packet`.
#[derive(Debug)]
struct Held {
    key: GroupKey,
    msg: Msg,
    deadline: Duration,
}

/// Per-connection state of the three sub-packet faults.
#[derive(Debug)]
pub(crate) struct PacketState {
    action: PacketAction,
    index: Option<u16>,
    max_wait: Duration,
    /// Groups seen and their target index (None: the trigger did not fire for this group).
    groups: BTreeMap<GroupKey, Option<u16>>,
    held: Option<Held>,
}

impl PacketState {
    pub fn new(action: PacketAction, index: Option<u16>, max_wait_ms: u64) -> Self {
        PacketState {
            action,
            index,
            max_wait: Duration::from_millis(max_wait_ms),
            groups: BTreeMap::new(),
            held: None,
        }
    }

    fn name(&self) -> &'static str {
        match self.action {
            PacketAction::Drop => "drop_packet",
            PacketAction::Duplicate => "duplicate_packet",
            PacketAction::Reorder => "reorder_packet",
        }
    }

    /// The target of a group seen for the first time (and whether the trigger fires for it).
    fn decide(&mut self, fr: &Located, idx: u64, cx: &mut Cx<'_>) -> Option<u16> {
        let total = fr.header.packet?.total;
        if !cx.fire(&[fr.tag()]) {
            return None;
        }
        let mut target = self.index.unwrap_or_else(|| cx.rng.random_range(1..=total.max(1)));
        if self.action == PacketAction::Reorder && target == total {
            target = total.saturating_sub(1);
        }
        if target == 0 || target > total {
            cx.record(
                Some(idx),
                Outcome::NoTarget,
                vec![fr.start],
                format!(
                    "{}: no packet {} to {}",
                    fr.describe(),
                    self.index.unwrap_or(target),
                    self.name()
                ),
            );
            return None;
        }
        Some(target)
    }
}

impl Fault for PacketState {
    fn on_message(&mut self, m: Msg, cx: &mut Cx<'_>) -> Vec<Out> {
        let located = frames::locate(&m.bytes, cx.prefix_len);
        let mut edits = Vec::new();
        let mut extra = Vec::new();
        for fr in &located {
            let (Some(k), Some(p)) = (key(fr), fr.header.packet) else {
                continue;
            };
            // A held packet goes out right after the next packet of its group.
            if let Some(h) = self.held.take_if(|h| h.key == k) {
                let held_bytes = h.msg.bytes[cx.prefix_len.min(h.msg.bytes.len())..].to_vec();
                cx.record(
                    Some(h.msg.idx),
                    Outcome::Release,
                    vec![fr.end],
                    format!("after {}", fr.describe()),
                );
                edits.push((fr.end..fr.end, held_bytes));
            }
            let target = match self.groups.get(&k) {
                Some(t) => *t,
                None => {
                    let t = self.decide(fr, m.idx, cx);
                    self.groups.insert(k.clone(), t);
                    t
                }
            };
            if target == Some(p.index) {
                let whole = fr.own();
                match self.action {
                    PacketAction::Drop => {
                        cx.record(Some(m.idx), Outcome::DropPacket, vec![fr.start, fr.end], fr.describe());
                        edits.push((whole, Vec::new()));
                    }
                    PacketAction::Duplicate => {
                        cx.record(
                            Some(m.idx),
                            Outcome::DuplicatePacket,
                            vec![fr.start, fr.end],
                            fr.describe(),
                        );
                        edits.push((fr.end..fr.end, m.bytes[fr.start..fr.end].to_vec()));
                    }
                    PacketAction::Reorder => {
                        cx.record(
                            Some(m.idx),
                            Outcome::ReorderPacket,
                            vec![fr.start, fr.end],
                            format!("{} held", fr.describe()),
                        );
                        let mut bytes = m.bytes[..cx.prefix_len.min(m.bytes.len())].to_vec();
                        bytes.extend_from_slice(&m.bytes[fr.start..fr.end]);
                        // A packet still held from an earlier group is released first, alone.
                        if let Some(old) = self.held.take() {
                            cx.record(
                                Some(old.msg.idx),
                                Outcome::Release,
                                Vec::new(),
                                "another packet is held",
                            );
                            extra.push(old.msg);
                        }
                        self.held = Some(Held {
                            key: k.clone(),
                            msg: Msg {
                                bytes,
                                at: m.at,
                                idx: m.idx,
                            },
                            deadline: cx.now + self.max_wait,
                        });
                        edits.push((whole, Vec::new()));
                    }
                }
                self.groups.insert(k.clone(), None);
            }
            if p.index >= p.total {
                self.groups.remove(&k);
            }
        }
        let mut out: Vec<Out> = extra.into_iter().map(Out::Send).collect();
        if edits.is_empty() {
            out.push(Out::Send(m));
            return out;
        }
        let bytes = frames::splice(&m.bytes, edits);
        if bytes.len() > cx.prefix_len {
            out.push(Out::Send(Msg { bytes, ..m }));
        }
        out
    }

    fn on_tick(&mut self, cx: &mut Cx<'_>) -> Vec<Out> {
        match self.held.take() {
            Some(h) => {
                cx.record(
                    Some(h.msg.idx),
                    Outcome::Release,
                    Vec::new(),
                    "max_wait_ms reached, sent alone",
                );
                vec![Out::Send(h.msg)]
            }
            None => Vec::new(),
        }
    }

    fn deadline(&self) -> Option<Duration> {
        self.held.as_ref().map(|h| h.deadline)
    }

    fn drain(&mut self) -> Vec<Msg> {
        self.held.take().map(|h| h.msg).into_iter().collect()
    }
}
