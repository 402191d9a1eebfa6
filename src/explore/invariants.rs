//! Checks that hold for every run whatever its faults and expectations, read off the evidence the
//! transcript shows (the same a reviewer sees), as the run goes: nothing decoded that was never offered, no command
//! confirmed twice, no terminal's messages out of order, and the run within its budgets.
//!
//! A message is named by (message id, phone, serial) as the gateway's `offered` events and the
//! client's `message` events show it. What a fault may legitimately change is left out: a key the
//! gateway offered more than once (a capture that repeats a frame, serials that wrapped), packet
//! groups (their message completes with its last packet, after later messages of the terminal
//! may have passed), order in a run where a `reorder` fault acted on whole messages, and a message
//! the client rejoined across an unescaped 0x7E (its `unescaped_flag` event comes right before it:
//! the gateway's log describes such a frame as the two broken pieces a strict decoder sees).

use std::collections::{BTreeMap, HashMap};

use crate::client::EventKind;
use crate::codec::Phone;
use crate::faults::Outcome;
use crate::gateway::{FrameDesc, GatewayEvent};
use crate::scenario::observe::{Evidence, Observer};

/// A check that failed, with what it measured.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    /// The check's name: an `[expect]` key, an invariant below, `panic`, `event_budget` or
    /// `time_budget`.
    pub check: String,
    /// What was wrong.
    pub detail: String,
}

/// Limits of one run; passing one is a failure (a livelock, or a run that never settles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// Most transcript events a run may have (default [`DEFAULT_MAX_EVENTS`]).
    pub max_events: usize,
    /// How far past the scenario's `duration_ms` the last event may be, ms (default
    /// [`DEFAULT_GRACE_MS`]): the run's shutdown must not take longer.
    pub grace_ms: u64,
}

/// Default [`Budgets::max_events`]: 200,000, about a hundred times the largest bundled scenario.
pub const DEFAULT_MAX_EVENTS: usize = 200_000;
/// Default [`Budgets::grace_ms`]: 60 s of virtual time.
pub const DEFAULT_GRACE_MS: u64 = 60_000;

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            max_events: DEFAULT_MAX_EVENTS,
            grace_ms: DEFAULT_GRACE_MS,
        }
    }
}

/// A message as the gateway's offers and the client's decodings name it: id, terminal, serial.
type Key = (u16, Phone, u16);

/// What the invariants read off the evidence, as it comes ([`Observer`]): the runner feeds each
/// offer before its decoding, so a decoding is judged when it comes.
#[derive(Debug, Default)]
pub struct Invariants {
    /// Evidence read (each is one transcript event) and the latest virtual time, µs.
    events: usize,
    last_us: u64,
    /// Offer position of each frame key, and how often it was offered.
    offered: HashMap<Key, (usize, u32)>,
    /// Single-frame messages decoded, in order.
    decoded: Vec<Key>,
    /// Decoded keys no offer shows.
    never_offered: Vec<Key>,
    /// Confirmations per (phone, serial), as the transcript writes them.
    confirmed: BTreeMap<(String, u64), u32>,
    message_reorder: bool,
    /// The client's last event was an `unescaped_flag`: its next message is a rejoined one.
    rejoined: bool,
    /// When the gateway last offered frames, and last lost messages in flight at a close, µs.
    last_offer_us: Option<u64>,
    last_lost_us: Option<u64>,
}

impl Observer for Invariants {
    fn observe(&mut self, e: Evidence<'_>) {
        self.events += 1;
        let t = e.order().0;
        self.last_us = self.last_us.max(t);
        if let Evidence::Gateway(r) = &e {
            match r.event {
                GatewayEvent::Offered { .. } => self.last_offer_us = Some(t),
                GatewayEvent::LostInFlight { .. } => self.last_lost_us = Some(t),
                _ => {}
            }
        }
        match e {
            Evidence::Gateway(r) => self.gateway(&r.event),
            Evidence::Client(c) => self.client(&c.kind),
            Evidence::Harness(_) => {}
        }
    }
}

impl Invariants {
    fn gateway(&mut self, e: &GatewayEvent) {
        match e {
            GatewayEvent::Offered { frames, .. } => {
                for d in frames.iter().filter_map(FrameDesc::frame) {
                    let next = self.offered.len();
                    self.offered.entry((d.msg_id, d.phone, d.serial)).or_insert((next, 0)).1 += 1;
                }
            }
            GatewayEvent::Fault(x) if x.what == Outcome::Reorder => self.message_reorder = true,
            _ => {}
        }
    }

    fn client(&mut self, e: &EventKind) {
        let was = std::mem::replace(&mut self.rejoined, matches!(e, EventKind::UnescapedFlag { .. }));
        match e {
            EventKind::Message(m) if !was => {
                let h = &m.header;
                let k = (h.msg_id, h.phone, h.serial);
                if !self.offered.contains_key(&k) {
                    self.never_offered.push(k);
                } else if m.assembled.is_none() {
                    self.decoded.push(k);
                }
            }
            EventKind::Confirmed { phone, serial, .. } => {
                *self
                    .confirmed
                    .entry((phone.to_string(), u64::from(*serial)))
                    .or_insert(0) += 1;
            }
            _ => {}
        }
    }

    fn order_problems(&self) -> Vec<String> {
        let mut last: HashMap<Phone, usize> = HashMap::new();
        let mut first_decode = std::collections::HashSet::new();
        let mut problems = Vec::new();
        for k in &self.decoded {
            let Some(&(pos, 1)) = self.offered.get(k) else { continue };
            if !first_decode.insert(k) {
                continue;
            }
            if let Some(&prev) = last.get(&k.1)
                && pos < prev
            {
                problems.push(format!("{} decoded after a later message of its terminal", name(k)));
            }
            last.insert(k.1, pos);
        }
        problems
    }

    /// Whether the run ended with traffic in flight: frames offered at the instant a run of
    /// `duration_ms` ends (the client shuts down then, so it may never read them), or messages the
    /// gateway lost in flight at its final close. Such a run's failure of a check may be the cut,
    /// not the fault that failed it at full length, so the shrinker takes no duration that ends so.
    pub fn ended_in_flight(&self, duration_ms: u64) -> bool {
        let end = duration_ms.saturating_mul(1000);
        self.last_offer_us.is_some_and(|t| t >= end) || self.last_lost_us.is_some_and(|t| t >= end)
    }

    /// Every invariant and budget the run broke, in a fixed order.
    pub fn check(&self, duration_ms: u64, budgets: Budgets) -> Vec<Failure> {
        let mut out = Vec::new();
        let mut fail = |check: &str, detail: String| {
            out.push(Failure {
                check: check.into(),
                detail,
            })
        };
        if self.events > budgets.max_events {
            fail(
                "event_budget",
                format!("{} events, budget {} (--max-events)", self.events, budgets.max_events),
            );
        }
        let limit = duration_ms.saturating_add(budgets.grace_ms).saturating_mul(1000);
        if self.last_us > limit {
            fail(
                "time_budget",
                format!(
                    "last event at {} s of virtual time, budget {} s (duration_ms + --grace-ms)",
                    crate::transcript::format_t(self.last_us),
                    crate::transcript::format_t(limit)
                ),
            );
        }
        if let Some(k) = self.never_offered.first() {
            fail(
                "decoded_never_offered",
                format!(
                    "{} decoded but never offered ({} such messages)",
                    name(k),
                    self.never_offered.len()
                ),
            );
        }
        let twice: Vec<String> = self
            .confirmed
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|((phone, serial), n)| format!("{phone} serial {serial} confirmed {n} times"))
            .collect();
        if !twice.is_empty() {
            fail("confirmed_twice", twice.join("; "));
        }
        if !self.message_reorder {
            let mut problems = self.order_problems();
            if !problems.is_empty() {
                let n = problems.len();
                problems.truncate(3);
                fail("order_within_terminal", format!("{} ({n} in all)", problems.join("; ")));
            }
        }
        out
    }
}

/// `0x0200 13800000001 #5`, as the transcript names a message.
fn name(k: &Key) -> String {
    format!("0x{:04X} {} #{}", k.0, k.1, k.2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Event;
    use crate::codec::body::{Body, RawBody};
    use crate::codec::{Message, Version};
    use crate::faults::{Direction, FaultRecord};
    use crate::gateway::{FrameId, GatewayRecord};

    fn phone() -> Phone {
        Phone::parse("13800000001").expect("phone")
    }

    enum Ev {
        Gateway(GatewayEvent),
        Client(EventKind),
    }

    /// The invariants of these events, the i-th at i ms.
    fn check_of(events: Vec<Ev>, duration_ms: u64, budgets: Budgets) -> Vec<Failure> {
        observe_all(events).check(duration_ms, budgets)
    }

    /// The invariants fed these events, the i-th at i ms.
    fn observe_all(events: Vec<Ev>) -> Invariants {
        let mut inv = Invariants::default();
        for (i, e) in events.into_iter().enumerate() {
            let (t, seq) = (i as u64, i as u64);
            match e {
                Ev::Gateway(event) => inv.observe(Evidence::Gateway(&GatewayRecord {
                    t_us: t * 1000,
                    conn: 1,
                    seq,
                    event,
                })),
                Ev::Client(kind) => inv.observe(Evidence::Client(&Event { kind, t_ms: t, seq })),
            }
        }
        inv
    }

    /// A run ends with traffic in flight when frames go out at its last instant or messages are
    /// lost at its final close; not when that happened earlier.
    #[test]
    fn traffic_at_the_last_instant_is_in_flight() {
        let lost = || {
            Ev::Gateway(GatewayEvent::LostInFlight {
                messages: 1,
                bytes: 20,
                frames: Vec::new(),
            })
        };
        // Offers at 0 and 1 ms, the message decoded at 2 ms.
        let sent = || vec![offered(&[1]), offered(&[2]), decoded(2)];
        let inv = observe_all(sent());
        assert!(inv.ended_in_flight(1), "an offer at the end instant");
        assert!(!inv.ended_in_flight(2), "the last offer a millisecond before the end");
        let mut then_lost = sent();
        then_lost.push(lost());
        let inv = observe_all(then_lost);
        assert!(inv.ended_in_flight(3), "lost at the final close");
        assert!(!inv.ended_in_flight(4), "lost at a close before the end");
        assert!(!observe_all(Vec::new()).ended_in_flight(0));
    }

    fn offered(serials: &[u16]) -> Ev {
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
        Ev::Gateway(GatewayEvent::Offered { index: 1, frames })
    }

    fn decoded(serial: u16) -> Ev {
        let body = Body::Raw(RawBody { raw: Vec::new() });
        let m = Message::new(0x0200, Version::V2013, phone(), serial, body);
        Ev::Client(EventKind::Message(Box::new(m)))
    }

    fn confirmed(serial: u16) -> Ev {
        Ev::Client(EventKind::Confirmed {
            serial,
            msg_id: 0x8300,
            phone: phone(),
            result: Some(0),
            writes: 1,
        })
    }

    fn reorder() -> Ev {
        Ev::Gateway(GatewayEvent::Fault(FaultRecord {
            t_us: 0,
            conn: 1,
            dir: Some(Direction::ToClient),
            msg: Some(1),
            fault: "reorder".into(),
            what: Outcome::Reorder,
            offsets: Vec::new(),
            detail: String::new(),
        }))
    }

    fn names(f: &[Failure]) -> Vec<&str> {
        f.iter().map(|f| f.check.as_str()).collect()
    }

    #[test]
    fn a_clean_run_breaks_nothing() {
        let f = check_of(vec![offered(&[1, 2]), decoded(1), decoded(2)], 10, Budgets::default());
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn each_invariant_fails_on_its_evidence() {
        let events = vec![
            offered(&[1, 2]),
            decoded(2),
            decoded(1),
            decoded(9),
            confirmed(4),
            confirmed(4),
        ];
        let budgets = Budgets {
            max_events: 3,
            grace_ms: 1,
        };
        let f = check_of(events, 1, budgets);
        assert_eq!(
            names(&f),
            [
                "event_budget",
                "time_budget",
                "decoded_never_offered",
                "confirmed_twice",
                "order_within_terminal"
            ]
        );
        assert!(f[2].detail.contains("#9"), "{}", f[2].detail);
        assert_eq!(f[3].detail, "13800000001 serial 4 confirmed 2 times");
        assert_eq!(
            f[4].detail,
            "0x0200 13800000001 #1 decoded after a later message of its terminal (1 in all)"
        );
    }

    #[test]
    fn a_reorder_fault_excuses_order() {
        let events = vec![offered(&[1, 2]), reorder(), decoded(2), decoded(1)];
        assert!(check_of(events, 10, Budgets::default()).is_empty());
    }

    #[test]
    fn a_message_rejoined_across_an_unescaped_flag_is_not_a_stranger() {
        let broken = Ev::Gateway(GatewayEvent::Offered {
            index: 1,
            frames: vec![FrameDesc::Rejected { check: "bad_checksum" }],
        });
        let flag = Ev::Client(EventKind::UnescapedFlag { offset: 3, at: 9 });
        let f = check_of(vec![broken, flag, decoded(17), decoded(18)], 10, Budgets::default());
        assert_eq!(names(&f), ["decoded_never_offered"]);
        assert!(
            f[0].detail.contains("#18 decoded but never offered (1 such"),
            "{}",
            f[0].detail
        );
    }
}
