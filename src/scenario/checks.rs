//! The invariants a scenario can expect, computed from its transcript alone, so a check reads the
//! same evidence a reviewer sees.
//!
//! Frame accounting: every frame the gateway *offered* (logged before the fault pipeline) is
//! expected to be decoded by the client exactly once, unless a fault destroyed it (dropped,
//! corrupted, truncated, cut by a disconnect, or still in flight when a connection ended — the
//! gateway log says which) or duplicated it on purpose. A sub-packaged message counts as one
//! message keyed by its first packet; a fault on any of its packets excuses the whole message.

mod ledger;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Map, Value, json};

use self::ledger::Ledger;
use super::harness::HarnessEvent;
use super::observe::Observer;
pub use super::observe::{Evidence, in_order};
use super::{ClientSection, Expectations};
use crate::client::{Event, EventKind};
use crate::codec::Phone;
use crate::codec::reassembly::ReassemblyConfig;
use crate::faults::Direction;
use crate::gateway::converse::ConversationReport;
use crate::gateway::describe::FrameDesc;
use crate::gateway::{GatewayEvent, GatewayRecord};
use crate::transcript::Check;

/// What the checks read of the client's side. The built-in client's typed events map onto these
/// ([`ClientFact::of`]); a client that reports in another form (an external process's JSON lines,
/// [`super::external`]) feeds them itself, so both are judged by the same code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFact {
    /// A message decoded; `packets` when it was reassembled from that many packets.
    Decoded {
        /// Message id.
        msg_id: u16,
        /// Terminal.
        phone: Phone,
        /// Its serial (of packet 1 for a reassembled one).
        serial: u16,
        /// Packets it was reassembled from.
        packets: Option<u16>,
    },
    /// A packet of a group was taken in: the group is open until decoded or expired.
    Packet {
        /// Message id.
        msg_id: u16,
        /// Terminal.
        phone: Phone,
        /// Packets in the group.
        total: u16,
    },
    /// A packet group was given up.
    GroupExpired {
        /// Message id.
        msg_id: u16,
        /// Terminal.
        phone: Phone,
        /// Packets in the group.
        total: u16,
        /// Whether it named the packets it never got.
        names_missing: bool,
    },
    /// A connection was opened.
    Connected,
    /// A connection ended.
    Disconnected,
    /// A frame was rejected.
    Rejected,
    /// Bytes outside any frame were skipped.
    Skipped {
        /// How many.
        len: u64,
    },
    /// A command awaiting confirmation was sent (one not awaiting any is no fact).
    Sent {
        /// Terminal.
        phone: Phone,
        /// Its serial.
        serial: u16,
    },
    /// A command was confirmed.
    Confirmed {
        /// Terminal.
        phone: Phone,
        /// Its serial.
        serial: u16,
    },
    /// A command was sent again.
    Resent {
        /// Terminal.
        phone: Phone,
        /// Its serial.
        serial: u16,
    },
    /// A command was given up.
    DeliveryFailed,
}

impl ClientFact {
    /// The fact a built-in client event states, if any.
    pub fn of(e: &EventKind) -> Option<ClientFact> {
        Some(match e {
            EventKind::Message(m) => ClientFact::Decoded {
                msg_id: m.header.msg_id,
                phone: m.header.phone,
                serial: m.header.serial,
                packets: m.assembled.map(|a| a.packets),
            },
            EventKind::Packet {
                msg_id, phone, total, ..
            } => ClientFact::Packet {
                msg_id: *msg_id,
                phone: *phone,
                total: *total,
            },
            EventKind::GroupExpired(x) => ClientFact::GroupExpired {
                msg_id: x.msg_id,
                phone: x.phone,
                total: x.total,
                names_missing: !x.missing.is_empty(),
            },
            EventKind::Connected { .. } => ClientFact::Connected,
            EventKind::Disconnected { .. } => ClientFact::Disconnected,
            EventKind::FrameRejected { .. } => ClientFact::Rejected,
            EventKind::Skipped { len, .. } => ClientFact::Skipped { len: *len },
            _ => return ClientFact::of_command(e),
        })
    }

    /// The facts of the command events.
    fn of_command(e: &EventKind) -> Option<ClientFact> {
        Some(match e {
            EventKind::Sent {
                phone,
                serial,
                awaits_confirmation: true,
                ..
            } => ClientFact::Sent {
                phone: *phone,
                serial: *serial,
            },
            EventKind::Confirmed { phone, serial, .. } => ClientFact::Confirmed {
                phone: *phone,
                serial: *serial,
            },
            EventKind::Resent { phone, serial, .. } => ClientFact::Resent {
                phone: *phone,
                serial: *serial,
            },
            EventKind::DeliveryFailed { .. } => ClientFact::DeliveryFailed,
            _ => return None,
        })
    }
}

/// The packet groups a client holds open: some packet seen, neither completed nor given up.
/// Fed the client's events in order; the live runner asks it whether to wait, the checks what
/// was left open at the end.
#[derive(Debug, Default)]
pub struct OpenGroups(BTreeSet<(u16, Phone, u16)>);

impl OpenGroups {
    /// The groups left open by `events`.
    pub fn of<'a>(events: impl IntoIterator<Item = &'a Event>) -> OpenGroups {
        let mut g = OpenGroups::default();
        for e in events {
            g.observe(&e.kind);
        }
        g
    }

    /// Follows one client event.
    pub fn observe(&mut self, e: &EventKind) {
        if let Some(f) = ClientFact::of(e) {
            self.follow(&f);
        }
    }

    /// Follows one client fact.
    pub fn follow(&mut self, f: &ClientFact) {
        match *f {
            ClientFact::Packet { msg_id, phone, total } => {
                self.0.insert((msg_id, phone, total));
            }
            ClientFact::Decoded {
                msg_id,
                phone,
                packets: Some(total),
                ..
            }
            | ClientFact::GroupExpired {
                msg_id, phone, total, ..
            } => {
                self.0.remove(&(msg_id, phone, total));
            }
            _ => {}
        }
    }

    /// True when no group is open.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The open groups as `0x0801 13800000001 total 17`.
    /// The open groups, as (msg id, phone, total).
    fn keys(&self) -> impl Iterator<Item = &(u16, Phone, u16)> {
        self.0.iter()
    }

    fn describe_key(&(id, p, t): &(u16, Phone, u16)) -> String {
        format!("0x{id:04X} {p} total {t}")
    }
}

/// What the transcript shows, counted once for the summary and the checks, as the evidence comes
/// in ([`super::observe`]): counters, the open state the checks need, and the message
/// [`Ledger`], which forgets settled messages when swept. Nothing in it grows with the run's
/// length but what a check reports (its problems) and what the scenario lists (its commands).
#[derive(Debug, Default)]
pub struct Facts {
    frames_offered: u64,
    messages: Ledger,
    faults: u64,
    connected: u64,
    rejected: u64,
    skipped_bytes: u64,
    groups_expired: u64,
    /// Expired groups that did not name their missing packets.
    expired_unnamed: u64,
    open_groups: OpenGroups,
    /// Per packet group (msg id, phone, total): when the gateway last lost one of its packets in
    /// flight, as a connection closed with it still held or unwritten.
    lost_packets: BTreeMap<(u16, Phone, u16), Duration>,
    /// The time of the last gateway record: the end of the run, as far as the checks can tell.
    last_t: Duration,
    sent_awaiting: BTreeMap<(Phone, u16), u32>,
    confirmed: BTreeMap<(Phone, u16), u32>,
    resent: BTreeMap<(Phone, u16), u32>,
    delivery_failed: u64,
    disconnects: u64,
    requests: u64,
    answered: u64,
    request_failures: Vec<String>,
    /// The conversation reports of a conversation replay (harness `conversation` events).
    conversations: Vec<ConversationReport>,
    commands: u64,
}

/// Reads each piece of evidence as [`Facts::gather`] does.
impl Observer for Facts {
    fn observe(&mut self, e: Evidence<'_>) {
        match e {
            Evidence::Gateway(r) => self.gateway_record(r),
            Evidence::Client(e) => {
                if let Some(fact) = ClientFact::of(&e.kind) {
                    self.client_fact(&fact);
                }
            }
            Evidence::Harness(h) => self.harness_event(&h.event),
        }
    }
}

impl Facts {
    /// Reads the facts off a run's evidence, in transcript order ([`in_order`]) or any order in
    /// which each offer comes before its decoding.
    pub fn gather<'a>(evidence: impl IntoIterator<Item = Evidence<'a>>) -> Facts {
        let mut f = Facts::default();
        evidence.into_iter().for_each(|e| f.observe(e));
        f
    }

    /// Forgets the messages settled before the last sweep (the runner sweeps once per
    /// [`super::observe::SETTLED_RETENTION`] of virtual time; a caller that never sweeps keeps
    /// every message).
    pub fn sweep(&mut self) {
        self.messages.sweep();
    }

    /// True when the client holds no packet group open.
    pub fn no_open_groups(&self) -> bool {
        self.open_groups.is_empty()
    }

    /// Takes in one gateway log line (feed in log order).
    pub fn gateway_record(&mut self, r: &GatewayRecord) {
        let t = Duration::from_micros(r.t_us);
        self.last_t = self.last_t.max(t);
        match &r.event {
            GatewayEvent::Offered { frames, .. } => {
                self.frames_offered += self.messages.offered(r.conn, frames);
            }
            GatewayEvent::Fault(x) => {
                self.faults += 1;
                if let (Some(Direction::ToClient), Some(msg)) = (x.dir, x.msg) {
                    self.messages.fault_on(r.conn, msg, x.what);
                }
            }
            GatewayEvent::LostInFlight { frames, .. } => {
                self.messages.lost(frames);
                for f in frames.iter().filter_map(FrameDesc::frame) {
                    if let Some((_, total)) = f.packet {
                        self.lost_packets.insert((f.msg_id, f.phone, total), t);
                    }
                }
            }
            _ => {}
        }
    }

    /// Takes in one client fact (feed in the order the client reported them).
    pub fn client_fact(&mut self, f: &ClientFact) {
        self.open_groups.follow(f);
        let count = |m: &mut BTreeMap<(Phone, u16), u32>, phone: Phone, serial: u16| {
            *m.entry((phone, serial)).or_insert(0) += 1;
        };
        match *f {
            ClientFact::Decoded {
                msg_id, phone, serial, ..
            } => self.messages.decoded(msg_id, phone, serial),
            ClientFact::Packet { .. } => {}
            ClientFact::GroupExpired { names_missing, .. } => {
                self.groups_expired += 1;
                self.expired_unnamed += u64::from(!names_missing);
            }
            ClientFact::Connected => self.connected += 1,
            ClientFact::Disconnected => self.disconnects += 1,
            ClientFact::Rejected => self.rejected += 1,
            ClientFact::Skipped { len } => self.skipped_bytes += len,
            ClientFact::Sent { phone, serial } => count(&mut self.sent_awaiting, phone, serial),
            ClientFact::Confirmed { phone, serial } => count(&mut self.confirmed, phone, serial),
            ClientFact::Resent { phone, serial } => count(&mut self.resent, phone, serial),
            ClientFact::DeliveryFailed => self.delivery_failed += 1,
        }
    }

    /// Takes in one thing the harness did.
    pub fn harness_event(&mut self, e: &HarnessEvent) {
        match e {
            HarnessEvent::Request { .. } => self.requests += 1,
            HarnessEvent::Answered { .. } => self.answered += 1,
            HarnessEvent::RequestFailed { error, .. } => self.request_failures.push(error.clone()),
            HarnessEvent::Command { .. } => self.commands += 1,
            HarnessEvent::Conversation { report, .. } => self.conversations.push(report.clone()),
            HarnessEvent::CommandRefused { .. } | HarnessEvent::CaptureError { .. } => {}
        }
    }

    /// Counters for the transcript's summary (and `run`'s table).
    pub fn summary(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("frames_offered".into(), json!(self.frames_offered));
        m.insert("messages_decoded".into(), json!(self.messages.decoded_count()));
        m.insert("frames_rejected".into(), json!(self.rejected));
        m.insert("bytes_skipped".into(), json!(self.skipped_bytes));
        m.insert("faults".into(), json!(self.faults));
        m.insert("reconnects".into(), json!(self.connected.saturating_sub(1)));
        m.insert("groups_expired".into(), json!(self.groups_expired));
        m.insert("commands".into(), json!(self.commands + self.requests));
        m.insert("confirmed".into(), json!(self.confirmed.values().sum::<u32>()));
        m.insert("resent".into(), json!(self.resent.values().sum::<u32>()));
        m
    }
}

/// Evaluates the scenario's expectations.
pub fn check(x: &Expectations, f: &Facts, client: &ClientSection) -> Vec<Check> {
    let on = |e: Option<bool>| e == Some(true);
    let mut out = Vec::new();
    let mut add = |name: &str, (ok, detail): (bool, String)| {
        out.push(Check {
            name: name.into(),
            ok,
            detail,
        })
    };
    if on(x.every_frame_once) {
        add("every_frame_once", f.messages.every_frame_once());
    }
    if on(x.groups_accounted) {
        add("groups_accounted", groups_accounted(f, client));
    }
    if let Some([lo, hi]) = x.reconnects {
        let r = f.connected.saturating_sub(1);
        let ok = (lo as u64..=hi as u64).contains(&r);
        add("reconnects", (ok, format!("{r} reconnects, expected {lo}..={hi}")));
    }
    if on(x.commands_confirmed) {
        add("commands_confirmed", commands_confirmed(f, client));
    }
    if on(x.order_per_terminal) {
        add("order_per_terminal", f.messages.order_per_terminal());
    }
    if let Some(want) = x.frames_rejected {
        let detail = format!("{} rejected, expected {want}", f.rejected);
        add("frames_rejected", (f.rejected == want, detail));
    }
    if let Some(min) = x.min_messages {
        let got = f.messages.decoded_count();
        let detail = format!("{got} messages decoded, expected at least {min}");
        add("min_messages", (got >= min, detail));
    }
    if on(x.requests_answered) {
        add("requests_answered", requests_answered(f));
    }
    if on(x.conversation_complete) {
        add("conversation_complete", conversation_check(&f.conversations));
    }
    out
}

/// Every packet group completed, or expired naming its missing packets.
///
/// Not judged: a group still open at the end because the gateway lost one of its packets in
/// flight (a connection closed while a fault held it, or before it was written) less than the
/// client's group timeout before the run ended. The client never got the packet and had no
/// timeout's time to give the group up; that is the end of the run, not the client (explore
/// found it: a `reorder_packet` holding a last packet until the close).
fn groups_accounted(f: &Facts, client: &ClientSection) -> (bool, String) {
    let empty_missing = f.expired_unnamed;
    let timeout = client
        .group_timeout_ms
        .map_or(ReassemblyConfig::default().timeout, Duration::from_millis)
        + client.retransmit_wait_ms.map_or(Duration::ZERO, Duration::from_millis);
    let cut_by_end = |key: &(u16, Phone, u16)| {
        f.lost_packets
            .get(key)
            .is_some_and(|&lost| f.last_t.saturating_sub(lost) < timeout)
    };
    let (excused, open): (Vec<_>, Vec<_>) = f.open_groups.keys().partition(|k| cut_by_end(k));
    let ok = open.is_empty() && empty_missing == 0;
    let not_judged = match excused.len() {
        0 => String::new(),
        n => format!(
            " ({n} still open after a packet lost in flight at a close within the group timeout of the end, not judged)"
        ),
    };
    let detail = if ok {
        format!(
            "every packet group completed or expired with its missing packets ({} expired){not_judged}",
            f.groups_expired
        )
    } else {
        let open: Vec<String> = open.into_iter().map(OpenGroups::describe_key).collect();
        format!(
            "still open at the end: [{}]; expired without missing list: {empty_missing}{not_judged}",
            open.join(", ")
        )
    };
    (ok, detail)
}

/// Every command awaiting confirmation confirmed once, re-sent no more than allowed.
fn commands_confirmed(f: &Facts, client: &ClientSection) -> (bool, String) {
    let mut problems = Vec::new();
    for (k, sent) in &f.sent_awaiting {
        let c = f.confirmed.get(k).copied().unwrap_or(0);
        if c != 1 {
            problems.push(format!("{} serial {} confirmed {c} times (sent {sent})", k.0, k.1));
        }
        // At-least-once: a re-send is allowed after each disconnect and each confirmation
        // timeout (at most max_resends of those).
        let resent = f.resent.get(k).copied().unwrap_or(0) as u64;
        let allowed = f.disconnects + client.max_resends.unwrap_or(5) as u64;
        if resent > allowed {
            problems.push(format!(
                "{} serial {} re-sent {resent} times (allowed {allowed})",
                k.0, k.1
            ));
        }
    }
    if f.delivery_failed > 0 {
        problems.push(format!("{} commands given up", f.delivery_failed));
    }
    let ok = problems.is_empty() && !f.sent_awaiting.is_empty();
    let detail = if problems.is_empty() {
        format!(
            "{} commands confirmed once each, {} re-sends",
            f.sent_awaiting.len(),
            f.resent.values().sum::<u32>()
        )
    } else {
        problems.join("; ")
    };
    (ok, detail)
}

/// Every request answered, none failed.
fn requests_answered(f: &Facts) -> (bool, String) {
    let ok = f.request_failures.is_empty() && f.answered == f.requests && f.requests > 0;
    let detail = if f.request_failures.is_empty() {
        format!("{} of {} requests answered", f.answered, f.requests)
    } else {
        f.request_failures.join("; ")
    };
    (ok, detail)
}

/// Every recorded exchange answered, none missing, in every session's conversation.
fn conversation_check(reports: &[ConversationReport]) -> (bool, String) {
    if reports.is_empty() {
        return (false, "no conversation replay ran ([source] converse = true)".into());
    }
    let mut ok = true;
    let mut parts = Vec::new();
    for r in reports {
        let missing: Vec<String> = r
            .missing
            .iter()
            .map(|m| format!("{} {} #{} (line {})", m.msg_id, m.phone, m.serial, m.line))
            .collect();
        ok &= missing.is_empty() && r.exchanges > 0;
        let mut part = format!("{} of {} recorded exchanges answered", r.answered, r.exchanges);
        if !missing.is_empty() {
            part.push_str(&format!("; never asked for: {}", missing.join(", ")));
        }
        parts.push(part);
    }
    (ok, parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::body::{Body, RawBody};
    use crate::codec::message::Assembled;
    use crate::codec::{Message, Version};
    use crate::faults::{FaultRecord, Outcome};
    use crate::gateway::{FrameDesc, FrameId};

    fn phone() -> Phone {
        Phone::parse("13800000001").expect("phone")
    }

    fn offered(seq: u64, index: u64, serials: &[u16]) -> GatewayRecord {
        let frames = serials
            .iter()
            .map(|&serial| {
                FrameDesc::Frame(FrameId {
                    msg_id: 0x0200,
                    phone: phone(),
                    serial,
                    packet: None,
                })
            })
            .collect();
        GatewayRecord {
            t_us: 0,
            conn: 1,
            seq,
            event: GatewayEvent::Offered { index, frames },
        }
    }

    fn fault(seq: u64, msg: u64, what: Outcome) -> GatewayRecord {
        GatewayRecord {
            t_us: 0,
            conn: 1,
            seq,
            event: GatewayEvent::Fault(FaultRecord {
                t_us: 0,
                conn: 1,
                dir: Some(Direction::ToClient),
                msg: Some(msg),
                fault: what.to_string(),
                what,
                offsets: Vec::new(),
                detail: String::new(),
            }),
        }
    }

    fn message(msg_id: u16, serial: u16, assembled: Option<Assembled>) -> Event {
        let mut m = Message::new(
            msg_id,
            Version::V2013,
            phone(),
            serial,
            Body::Raw(RawBody { raw: Vec::new() }),
        );
        m.assembled = assembled;
        Event {
            kind: EventKind::Message(Box::new(m)),
            t_ms: 1,
            seq: 100 + u64::from(serial),
        }
    }

    fn every_frame_once(gateway: &[GatewayRecord], client: &[Event]) -> Check {
        let x = Expectations {
            every_frame_once: Some(true),
            ..Expectations::default()
        };
        let facts = Facts::gather(in_order(gateway, client, &[]));
        check(&x, &facts, &ClientSection::default()).remove(0)
    }

    /// A message a destroying fault acted on is excused; the same message without the fault is
    /// reported missing, and a duplicating fault allows it twice.
    #[test]
    fn typed_fault_outcomes_decide_which_messages_count() {
        let client = [message(0x0200, 1, None)];
        let gw = [offered(1, 1, &[1]), offered(2, 2, &[2]), fault(3, 2, Outcome::Drop)];
        let c = every_frame_once(&gw, &client);
        assert!(c.ok, "{}", c.detail);
        assert_eq!(c.detail, "1 offered messages decoded once each; 1 destroyed by faults");

        let gw = [offered(1, 1, &[1]), offered(2, 2, &[2]), fault(3, 2, Outcome::Delay)];
        let c = every_frame_once(&gw, &client);
        assert!(!c.ok);
        assert_eq!(c.detail, "0x0200 13800000001 #2 offered 1 times, decoded 0 times");

        let twice = [message(0x0200, 1, None), message(0x0200, 1, None)];
        let gw = [offered(1, 1, &[1]), fault(2, 1, Outcome::Duplicate)];
        assert!(every_frame_once(&gw, &twice).ok);
        assert!(!every_frame_once(&gw[..1], &twice).ok);
    }

    /// Groups are open from a packet until their message or their expiry.
    #[test]
    fn open_groups_follow_packets_and_their_message() {
        let packet = |index| Event {
            kind: EventKind::Packet {
                msg_id: 0x0801,
                phone: phone(),
                serial: index,
                index,
                total: 2,
            },
            t_ms: 0,
            seq: 0,
        };
        let done = message(
            0x0801,
            1,
            Some(Assembled {
                packets: 2,
                first_serial: 1,
            }),
        );
        let open = OpenGroups::of(&[packet(1)]);
        let keys: Vec<String> = open.keys().map(OpenGroups::describe_key).collect();
        assert_eq!(keys, ["0x0801 13800000001 total 2"]);
        assert!(OpenGroups::of(&[packet(1), packet(2), done]).is_empty());
    }

    /// A group left open because its last packet was lost in flight at a close within the group
    /// timeout (30 s by default) of the end is not judged; open without such a loss, or with the
    /// loss a whole timeout before the end (the client should have given it up), it fails.
    #[test]
    fn a_group_open_after_a_packet_lost_in_flight_near_the_end_is_not_judged() {
        let packet = Event {
            kind: EventKind::Packet {
                msg_id: 0x1205,
                phone: phone(),
                serial: 35,
                index: 1,
                total: 2,
            },
            t_ms: 0,
            seq: 0,
        };
        let at = |t_us: u64, seq: u64, event: GatewayEvent| GatewayRecord {
            t_us,
            conn: 1,
            seq,
            event,
        };
        let lost = |t_us| {
            at(
                t_us,
                2,
                GatewayEvent::LostInFlight {
                    messages: 1,
                    bytes: 531,
                    frames: vec![FrameDesc::Frame(FrameId {
                        msg_id: 0x1205,
                        phone: phone(),
                        serial: 36,
                        packet: Some((2, 2)),
                    })],
                },
            )
        };
        let end = 40_000_000;
        let last = at(
            end,
            3,
            GatewayEvent::Fault(FaultRecord {
                t_us: end,
                conn: 1,
                dir: None,
                msg: None,
                fault: "x".into(),
                what: Outcome::Delay,
                offsets: Vec::new(),
                detail: String::new(),
            }),
        );
        let judge = |gw: &[GatewayRecord]| {
            let x = Expectations {
                groups_accounted: Some(true),
                ..Expectations::default()
            };
            let facts = Facts::gather(in_order(gw, std::slice::from_ref(&packet), &[]));
            check(&x, &facts, &ClientSection::default()).remove(0)
        };
        let c = judge(&[lost(end - 1_000_000), last.clone()]);
        assert!(c.ok, "{}", c.detail);
        assert!(
            c.detail.contains("1 still open after a packet lost in flight"),
            "{}",
            c.detail
        );
        let c = judge(std::slice::from_ref(&last));
        assert!(!c.ok);
        assert!(
            c.detail
                .starts_with("still open at the end: [0x1205 13800000001 total 2]"),
            "{}",
            c.detail
        );
        assert!(!judge(&[lost(end - 31_000_000), last]).ok);
    }
}
