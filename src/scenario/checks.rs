//! The invariants a scenario can expect, computed from its transcript alone, so a check reads the
//! same evidence a reviewer sees.
//!
//! Frame accounting: every frame the gateway *offered* (logged before the fault pipeline) is
//! expected to be decoded by the client exactly once, unless a fault destroyed it (dropped,
//! corrupted, truncated, cut by a disconnect, or still in flight when a connection ended — the
//! gateway log says which) or duplicated it on purpose. A sub-packaged message counts as one
//! message keyed by its first packet; a fault on any of its packets excuses the whole message.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value, json};

use super::{ClientSection, Expectations};
use crate::transcript::{Check, Side, Transcript};

/// Fault log `what` values that destroy the message they act on (see the catalogue in
/// [`crate::faults`]).
const DESTRUCTIVE: &[&str] = &[
    "drop",
    "drop_packet",
    "corrupt_checksum",
    "break_escape",
    "flip_byte",
    "truncate",
    "stray_flag",
    "wrong_length",
    "close",
    "abort",
    "mid_frame",
    "undelivered",
    "garbage",
    "overflow",
];
/// Fault log `what` values after which a message may legitimately be decoded twice.
const DUPLICATING: &[&str] = &["duplicate"];

/// (msg id, phone, serial of the frame or of packet 1).
type Key = (String, String, u64);

/// One frame as the gateway log describes it: `0x0200 13800000001 #5 [1/3]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FrameDesc {
    msg_id: String,
    phone: String,
    serial: u64,
    packet: Option<(u64, u64)>,
}

fn parse_frame(s: &str) -> Option<FrameDesc> {
    let mut it = s.split_whitespace();
    let msg_id = it.next()?.to_string();
    if !msg_id.starts_with("0x") {
        return None;
    }
    let phone = it.next()?.to_string();
    let serial = it.next()?.strip_prefix('#')?.parse().ok()?;
    let packet = it.next().and_then(|p| {
        let (i, n) = p.strip_prefix('[')?.strip_suffix(']')?.split_once('/')?;
        Some((i.parse().ok()?, n.parse().ok()?))
    });
    Some(FrameDesc {
        msg_id,
        phone,
        serial,
        packet,
    })
}

/// What the transcript shows, counted once for the summary and the checks.
#[derive(Debug, Default)]
pub struct Facts {
    frames_offered: u64,
    /// Expected messages in offer order (per phone order is checked against this).
    expected: Vec<Key>,
    destroyed: BTreeSet<Key>,
    duplicated: BTreeSet<Key>,
    decoded: Vec<Key>,
    faults: u64,
    connected: u64,
    rejected: u64,
    skipped_bytes: u64,
    groups_expired: Vec<Value>,
    open_groups: BTreeMap<(String, String, u64), u64>,
    sent_awaiting: BTreeMap<(String, u64), u32>,
    confirmed: BTreeMap<(String, u64), u32>,
    resent: BTreeMap<(String, u64), u32>,
    delivery_failed: u64,
    disconnects: u64,
    requests: u64,
    answered: u64,
    request_failures: Vec<String>,
    /// The conversation reports of a conversation replay (harness `conversation` events).
    conversations: Vec<Value>,
    commands: u64,
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn n(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

impl Facts {
    /// Reads the facts off a transcript's events.
    pub fn gather(t: &Transcript) -> Facts {
        let mut f = Facts::default();
        // Per connection: the frames of the k-th offered message (the fault log's `msg` index).
        let mut offered_by_conn: HashMap<(u64, u64), Vec<Key>> = HashMap::new();
        let mut offered_count: HashMap<u64, u64> = HashMap::new();
        // The group a packet with index > 1 belongs to: the last packet 1 of (id, phone, total).
        let mut current_group: HashMap<(String, String, u64), Key> = HashMap::new();
        let mut to_key = |d: &FrameDesc| -> Key {
            match d.packet {
                None => (d.msg_id.clone(), d.phone.clone(), d.serial),
                Some((1, total)) => {
                    let k = (d.msg_id.clone(), d.phone.clone(), d.serial);
                    current_group.insert((d.msg_id.clone(), d.phone.clone(), total), k.clone());
                    k
                }
                Some((_, total)) => current_group
                    .get(&(d.msg_id.clone(), d.phone.clone(), total))
                    .cloned()
                    .unwrap_or_else(|| (d.msg_id.clone(), d.phone.clone(), d.serial)),
            }
        };
        for e in &t.events {
            let v = &e.event;
            let ty = s(v, "type");
            match (e.side, ty.as_str()) {
                (Side::Gateway, "offered") => {
                    let conn = n(v, "conn");
                    let k = offered_count.entry(conn).or_insert(0);
                    *k += 1;
                    let mut keys = Vec::new();
                    for fr in v.get("frames").and_then(Value::as_array).into_iter().flatten() {
                        if let Some(d) = fr.as_str().and_then(parse_frame) {
                            f.frames_offered += 1;
                            let key = to_key(&d);
                            if matches!(d.packet, None | Some((1, _))) {
                                f.expected.push(key.clone());
                            }
                            keys.push(key);
                        }
                    }
                    offered_by_conn.insert((conn, *k), keys);
                }
                (Side::Gateway, "fault") => {
                    f.faults += 1;
                    let what = s(v, "what");
                    let to_client = s(v, "dir") == "to_client";
                    if let (true, Some(msg)) = (to_client, v.get("msg").and_then(Value::as_u64)) {
                        let keys = offered_by_conn.get(&(n(v, "conn"), msg)).cloned().unwrap_or_default();
                        if DESTRUCTIVE.contains(&what.as_str()) {
                            f.destroyed.extend(keys);
                        } else if DUPLICATING.contains(&what.as_str()) {
                            f.duplicated.extend(keys);
                        }
                    }
                }
                (Side::Gateway, "lost_in_flight") => {
                    for fr in v.get("frames").and_then(Value::as_array).into_iter().flatten() {
                        if let Some(d) = fr.as_str().and_then(parse_frame) {
                            let key = to_key(&d);
                            f.destroyed.insert(key);
                        }
                    }
                }
                (Side::Client, "message") => {
                    f.decoded.push((s(v, "msg_id"), s(v, "phone"), n(v, "serial")));
                    if let Some(p) = v.get("packets").and_then(Value::as_u64) {
                        f.open_groups.remove(&(s(v, "msg_id"), s(v, "phone"), p));
                    }
                }
                (Side::Client, "packet") => {
                    f.open_groups
                        .insert((s(v, "msg_id"), s(v, "phone"), n(v, "total")), e.t_us);
                }
                (Side::Client, "group_expired") => {
                    f.open_groups.remove(&(s(v, "msg_id"), s(v, "phone"), n(v, "total")));
                    f.groups_expired.push(v.clone());
                }
                (Side::Client, "connected") => f.connected += 1,
                (Side::Client, "disconnected") => f.disconnects += 1,
                (Side::Client, "frame_rejected") => f.rejected += 1,
                (Side::Client, "skipped") => f.skipped_bytes += n(v, "len"),
                (Side::Client, "sent") if v.get("awaits_confirmation") == Some(&Value::Bool(true)) => {
                    *f.sent_awaiting.entry((s(v, "phone"), n(v, "serial"))).or_insert(0) += 1;
                }
                (Side::Client, "confirmed") => {
                    *f.confirmed.entry((s(v, "phone"), n(v, "serial"))).or_insert(0) += 1;
                }
                (Side::Client, "resent") => {
                    *f.resent.entry((s(v, "phone"), n(v, "serial"))).or_insert(0) += 1;
                }
                (Side::Client, "delivery_failed") => f.delivery_failed += 1,
                (Side::Harness, "request") => f.requests += 1,
                (Side::Harness, "answered") => f.answered += 1,
                (Side::Harness, "request_failed") => f.request_failures.push(s(v, "error")),
                (Side::Harness, "command") => f.commands += 1,
                (Side::Harness, "conversation") => f.conversations.push(v.clone()),
                _ => {}
            }
        }
        f
    }

    /// Counters for the transcript's summary (and `run`'s table).
    pub fn summary(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("frames_offered".into(), json!(self.frames_offered));
        m.insert("messages_decoded".into(), json!(self.decoded.len()));
        m.insert("frames_rejected".into(), json!(self.rejected));
        m.insert("bytes_skipped".into(), json!(self.skipped_bytes));
        m.insert("faults".into(), json!(self.faults));
        m.insert("reconnects".into(), json!(self.connected.saturating_sub(1)));
        m.insert("groups_expired".into(), json!(self.groups_expired.len()));
        m.insert("commands".into(), json!(self.commands + self.requests));
        m.insert("confirmed".into(), json!(self.confirmed.values().sum::<u32>()));
        m.insert("resent".into(), json!(self.resent.values().sum::<u32>()));
        m
    }
}

/// Evaluates the scenario's expectations.
pub fn check(x: &Expectations, f: &Facts, client: &ClientSection) -> Vec<Check> {
    let mut out = Vec::new();
    let mut add = |name: &str, ok: bool, detail: String| {
        out.push(Check {
            name: name.into(),
            ok,
            detail,
        })
    };
    if x.every_frame_once == Some(true) {
        let mut counts: BTreeMap<&Key, u64> = BTreeMap::new();
        for k in &f.decoded {
            *counts.entry(k).or_insert(0) += 1;
        }
        // A key can be offered more than once (a replayed capture may repeat a frame): each
        // offer is expected to be decoded once.
        let mut offered: BTreeMap<&Key, u64> = BTreeMap::new();
        for k in &f.expected {
            *offered.entry(k).or_insert(0) += 1;
        }
        let mut problems = Vec::new();
        let mut checked = 0;
        for (k, times) in &offered {
            if f.destroyed.contains(*k) {
                continue;
            }
            checked += times;
            let c = counts.get(k).copied().unwrap_or(0);
            let ok = if f.duplicated.contains(*k) {
                c >= *times
            } else {
                c == *times
            };
            if !ok {
                problems.push(format!(
                    "{} {} #{} offered {times} times, decoded {c} times",
                    k.0, k.1, k.2
                ));
            }
        }
        for k in counts.keys() {
            if !offered.contains_key(k) {
                problems.push(format!("{} {} #{} decoded but never offered", k.0, k.1, k.2));
            }
        }
        let detail = if problems.is_empty() {
            // A message a fault acted on may still arrive: the terminal sent it again (0x8003,
            // 0x8800), or the fault spared its frame (a stray 0x7E next to a delimiter).
            let recovered = f.destroyed.iter().filter(|k| counts.contains_key(k)).count();
            let recovered = match recovered {
                0 => String::new(),
                n => format!(" ({n} of them decoded after all: sent again, or spared by the fault)"),
            };
            format!(
                "{checked} offered messages decoded once each; {} destroyed by faults{recovered}",
                f.destroyed.len()
            )
        } else {
            problems.truncate(10);
            problems.join("; ")
        };
        add("every_frame_once", problems.is_empty(), detail);
    }
    if x.groups_accounted == Some(true) {
        let empty_missing = f
            .groups_expired
            .iter()
            .filter(|g| g.get("missing").and_then(Value::as_array).is_none_or(|a| a.is_empty()))
            .count();
        let ok = f.open_groups.is_empty() && empty_missing == 0;
        let detail = if ok {
            format!(
                "every packet group completed or expired with its missing packets ({} expired)",
                f.groups_expired.len()
            )
        } else {
            let open: Vec<String> = f
                .open_groups
                .keys()
                .map(|(id, p, t)| format!("{id} {p} total {t}"))
                .collect();
            format!(
                "still open at the end: [{}]; expired without missing list: {empty_missing}",
                open.join(", ")
            )
        };
        add("groups_accounted", ok, detail);
    }
    if let Some([lo, hi]) = x.reconnects {
        let r = f.connected.saturating_sub(1);
        add(
            "reconnects",
            (lo as u64..=hi as u64).contains(&r),
            format!("{r} reconnects, expected {lo}..={hi}"),
        );
    }
    if x.commands_confirmed == Some(true) {
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
        add("commands_confirmed", ok, detail);
    }
    if x.order_per_terminal == Some(true) {
        let position: HashMap<&Key, usize> = f.expected.iter().enumerate().map(|(i, k)| (k, i)).collect();
        let mut last: HashMap<&str, usize> = HashMap::new();
        let mut problems = Vec::new();
        for k in &f.decoded {
            let Some(&p) = position.get(k) else { continue };
            if let Some(&prev) = last.get(k.1.as_str())
                && p < prev
            {
                problems.push(format!(
                    "{} {} #{} decoded after a later message of that terminal",
                    k.0, k.1, k.2
                ));
            }
            last.insert(k.1.as_str(), p);
        }
        let detail = if problems.is_empty() {
            format!("{} terminals in order", last.len())
        } else {
            problems.join("; ")
        };
        add("order_per_terminal", problems.is_empty(), detail);
    }
    if let Some(want) = x.frames_rejected {
        add(
            "frames_rejected",
            f.rejected == want,
            format!("{} rejected, expected {want}", f.rejected),
        );
    }
    if let Some(min) = x.min_messages {
        let got = f.decoded.len() as u64;
        add(
            "min_messages",
            got >= min,
            format!("{got} messages decoded, expected at least {min}"),
        );
    }
    if x.requests_answered == Some(true) {
        let ok = f.request_failures.is_empty() && f.answered == f.requests && f.requests > 0;
        let detail = if f.request_failures.is_empty() {
            format!("{} of {} requests answered", f.answered, f.requests)
        } else {
            f.request_failures.join("; ")
        };
        add("requests_answered", ok, detail);
    }
    if x.conversation_complete == Some(true) {
        let (ok, detail) = conversation_check(&f.conversations);
        add("conversation_complete", ok, detail);
    }
    out
}

/// Every recorded exchange answered, none missing, in every session's conversation.
fn conversation_check(reports: &[Value]) -> (bool, String) {
    if reports.is_empty() {
        return (false, "no conversation replay ran ([source] converse = true)".into());
    }
    let mut ok = true;
    let mut parts = Vec::new();
    for r in reports {
        let missing: Vec<String> = r
            .get("missing")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|m| {
                format!(
                    "{} {} #{} (line {})",
                    s(m, "msg_id"),
                    s(m, "phone"),
                    n(m, "serial"),
                    n(m, "line")
                )
            })
            .collect();
        ok &= missing.is_empty() && n(r, "exchanges") > 0;
        let mut part = format!(
            "{} of {} recorded exchanges answered",
            n(r, "answered"),
            n(r, "exchanges")
        );
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

    #[test]
    fn frame_descriptions_parse() {
        assert_eq!(
            parse_frame("0x1205 13800000001 #7 [2/3]"),
            Some(FrameDesc {
                msg_id: "0x1205".into(),
                phone: "13800000001".into(),
                serial: 7,
                packet: Some((2, 3))
            })
        );
        assert_eq!(parse_frame("bad frame (bad_checksum)"), None);
        assert_eq!(parse_frame("4 bytes outside frames"), None);
    }
}
