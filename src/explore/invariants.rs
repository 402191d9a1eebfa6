//! Checks that hold for every run whatever its faults and expectations, read off the transcript
//! (the same evidence a reviewer sees): nothing decoded that was never offered, no command
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

use serde_json::Value;

use crate::transcript::{Side, Transcript};

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

type Key = (String, String, u64);

fn text(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// `0x0200 13800000001 #5 [1/3]` -> the key, and whether it is a sub-packet.
fn frame_key(s: &str) -> Option<(Key, bool)> {
    let mut it = s.split_whitespace();
    let id = it.next().filter(|i| i.starts_with("0x"))?;
    let phone = it.next()?;
    let serial = it.next()?.strip_prefix('#')?.parse().ok()?;
    let packet = it.next().is_some_and(|p| p.starts_with('['));
    Some(((id.to_string(), phone.to_string(), serial), packet))
}

/// What the invariants read off the events.
#[derive(Default)]
struct Seen {
    /// Offer position of each frame key, and how often it was offered.
    offered: HashMap<Key, (usize, u32)>,
    /// Single-frame messages decoded, in order.
    decoded: Vec<Key>,
    /// Decoded keys no offer shows.
    never_offered: Vec<Key>,
    confirmed: BTreeMap<(String, u64), u32>,
    message_reorder: bool,
}

impl Seen {
    fn gather(t: &Transcript) -> Seen {
        let mut s = Seen::default();
        let mut client_messages = Vec::new();
        let mut rejoined = false;
        for e in &t.events {
            if e.side == Side::Client {
                let was = std::mem::replace(&mut rejoined, text(&e.event, "type") == "unescaped_flag");
                if was && text(&e.event, "type") == "message" {
                    continue;
                }
            }
            let v = &e.event;
            match (e.side, text(v, "type").as_str()) {
                (Side::Gateway, "offered") => {
                    for fr in v.get("frames").and_then(Value::as_array).into_iter().flatten() {
                        if let Some((k, _)) = fr.as_str().and_then(frame_key) {
                            let next = s.offered.len();
                            s.offered.entry(k).or_insert((next, 0)).1 += 1;
                        }
                    }
                }
                (Side::Gateway, "fault") if text(v, "what") == "reorder" => s.message_reorder = true,
                (Side::Client, "message") => {
                    let k = (
                        text(v, "msg_id"),
                        text(v, "phone"),
                        v.get("serial").and_then(Value::as_u64).unwrap_or(0),
                    );
                    client_messages.push((k, v.get("packets").is_some()));
                }
                (Side::Client, "confirmed") => {
                    let k = (text(v, "phone"), v.get("serial").and_then(Value::as_u64).unwrap_or(0));
                    *s.confirmed.entry(k).or_insert(0) += 1;
                }
                _ => {}
            }
        }
        // Offers come before their decoding, but a whole pass keeps this independent of that.
        for (k, packets) in client_messages {
            if !s.offered.contains_key(&k) {
                s.never_offered.push(k);
            } else if !packets {
                s.decoded.push(k);
            }
        }
        s
    }

    fn order_problems(&self) -> Vec<String> {
        let mut last: HashMap<&str, usize> = HashMap::new();
        let mut first_decode = std::collections::HashSet::new();
        let mut problems = Vec::new();
        for k in &self.decoded {
            let Some(&(pos, 1)) = self.offered.get(k) else { continue };
            if !first_decode.insert(k) {
                continue;
            }
            if let Some(&prev) = last.get(k.1.as_str())
                && pos < prev
            {
                problems.push(format!(
                    "{} {} #{} decoded after a later message of its terminal",
                    k.0, k.1, k.2
                ));
            }
            last.insert(k.1.as_str(), pos);
        }
        problems
    }
}

/// Every invariant and budget `t` breaks, in a fixed order.
pub fn check(t: &Transcript, duration_ms: u64, budgets: Budgets) -> Vec<Failure> {
    let mut out = Vec::new();
    let mut fail = |check: &str, detail: String| {
        out.push(Failure {
            check: check.into(),
            detail,
        })
    };
    if t.events.len() > budgets.max_events {
        fail(
            "event_budget",
            format!(
                "{} events, budget {} (--max-events)",
                t.events.len(),
                budgets.max_events
            ),
        );
    }
    let last = t.events.iter().map(|e| e.t_us).max().unwrap_or(0);
    let limit = duration_ms.saturating_add(budgets.grace_ms).saturating_mul(1000);
    if last > limit {
        fail(
            "time_budget",
            format!(
                "last event at {} s of virtual time, budget {} s (duration_ms + --grace-ms)",
                crate::transcript::format_t(last),
                crate::transcript::format_t(limit)
            ),
        );
    }
    let seen = Seen::gather(t);
    if let Some(k) = seen.never_offered.first() {
        fail(
            "decoded_never_offered",
            format!(
                "{} {} #{} decoded but never offered ({} such messages)",
                k.0,
                k.1,
                k.2,
                seen.never_offered.len()
            ),
        );
    }
    let twice: Vec<String> = seen
        .confirmed
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|((phone, serial), n)| format!("{phone} serial {serial} confirmed {n} times"))
        .collect();
    if !twice.is_empty() {
        fail("confirmed_twice", twice.join("; "));
    }
    if !seen.message_reorder {
        let mut problems = seen.order_problems();
        if !problems.is_empty() {
            let n = problems.len();
            problems.truncate(3);
            fail("order_within_terminal", format!("{} ({n} in all)", problems.join("; ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::Entry;
    use serde_json::json;

    fn t(events: Vec<(Side, Value)>) -> Transcript {
        Transcript {
            scenario: "x".into(),
            seed: 1,
            summary: Default::default(),
            checks: Vec::new(),
            events: events
                .into_iter()
                .enumerate()
                .map(|(i, (side, event))| Entry {
                    t_us: i as u64 * 1000,
                    side,
                    seq: i as u64,
                    event,
                })
                .collect(),
        }
    }

    fn offered(frames: &[&str]) -> (Side, Value) {
        (Side::Gateway, json!({"type": "offered", "conn": 1, "frames": frames}))
    }

    fn decoded(serial: u64) -> (Side, Value) {
        (
            Side::Client,
            json!({"type": "message", "msg_id": "0x0200", "phone": "13800000001", "serial": serial}),
        )
    }

    fn names(f: &[Failure]) -> Vec<&str> {
        f.iter().map(|f| f.check.as_str()).collect()
    }

    #[test]
    fn a_clean_run_breaks_nothing() {
        let tr = t(vec![
            offered(&["0x0200 13800000001 #1", "0x0200 13800000001 #2"]),
            decoded(1),
            decoded(2),
        ]);
        assert!(check(&tr, 10, Budgets::default()).is_empty());
    }

    #[test]
    fn each_invariant_fails_on_its_evidence() {
        let tr = t(vec![
            offered(&["0x0200 13800000001 #1", "0x0200 13800000001 #2"]),
            decoded(2),
            decoded(1),
            decoded(9),
            (Side::Client, json!({"type": "confirmed", "phone": "1", "serial": 4})),
            (Side::Client, json!({"type": "confirmed", "phone": "1", "serial": 4})),
        ]);
        let f = check(
            &tr,
            1,
            Budgets {
                max_events: 3,
                grace_ms: 1,
            },
        );
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
    }

    #[test]
    fn a_reorder_fault_excuses_order() {
        let tr = t(vec![
            offered(&["0x0200 13800000001 #1", "0x0200 13800000001 #2"]),
            (Side::Gateway, json!({"type": "fault", "what": "reorder"})),
            decoded(2),
            decoded(1),
        ]);
        assert!(check(&tr, 10, Budgets::default()).is_empty());
    }

    #[test]
    fn a_message_rejoined_across_an_unescaped_flag_is_not_a_stranger() {
        let tr = t(vec![
            offered(&["bad frame (bad_checksum)"]),
            (Side::Client, json!({"type": "unescaped_flag", "offset": 3, "at": 9})),
            decoded(17),
            decoded(18),
        ]);
        let f = check(&tr, 10, Budgets::default());
        assert_eq!(names(&f), ["decoded_never_offered"]);
        assert!(
            f[0].detail.contains("#18 decoded but never offered (1 such"),
            "{}",
            f[0].detail
        );
    }
}
