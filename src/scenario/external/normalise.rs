//! The normalised transcript of an external run: what a correct client gives the same way run
//! after run, although it runs on the real clock.
//!
//! - no time at all: events are grouped by connection (in accept order), and within a connection
//!   listed in a canonical order (the frames offered, the messages decoded sorted by terminal and
//!   serial) instead of the order they happened in, which a real clock can shuffle when a feed
//!   tick and a command answer fall close together; the order itself is judged by the checks
//!   (`order_per_terminal`), not by the snapshot;
//! - no counts that depend on timing (backoff delays, uptimes, stream byte offsets, error texts):
//!   checks show only their verdict, their measured detail goes to `run`'s report;
//! - a scenario whose faults act on the real clock (latency, bandwidth, stalls, timed windows)
//!   cannot be made stable: its transcript holds the checks only, and says why.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use super::evidence::{Evidence, NOT_APPLICABLE, SNAPSHOT_CHECK, gateway_value};
use crate::scenario::Scenario;
use crate::transcript::Check;

/// Fault types whose effect depends on the real clock (they hold, pace or release messages by
/// time), so which connection or position a message lands in varies from run to run.
const TIMED_FAULTS: &[&str] = &["latency", "bandwidth", "stall", "coalesce", "reorder", "reorder_packet"];

/// Hex strings longer than this are shown as their length and an FNV-1a hash.
const MAX_HEX: usize = 96;

/// Why a scenario cannot give a stable transcript with a real-time client, or None.
pub fn unstable_reason(sc: &Scenario) -> Option<String> {
    for f in &sc.faults {
        let ty = serde_json::to_value(&f.kind)
            .ok()
            .and_then(|v| v.get("type").and_then(Value::as_str).map(String::from))
            .unwrap_or_default();
        if TIMED_FAULTS.contains(&ty.as_str()) {
            return Some(format!("fault `{ty}` holds or paces messages on the real clock"));
        }
        if f.trigger.after_ms.is_some() || f.trigger.until_ms.is_some() {
            return Some(format!(
                "fault `{ty}` fires in a window of real time (after_ms / until_ms)"
            ));
        }
    }
    None
}

fn json(v: &Value) -> String {
    serde_json::to_string(v).expect("JSON values serialise")
}

fn verdict(c: &Check) -> &'static str {
    if !c.ok {
        "fail"
    } else if c.detail.starts_with(NOT_APPLICABLE) {
        "not_applicable"
    } else {
        "pass"
    }
}

/// The snapshot text.
pub fn yaml(sc: &Scenario, label: &str, ev: &Evidence<'_>, checks: &[Check]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "scenario: {}", json(&json!(sc.name)));
    let _ = writeln!(s, "seed: {}", sc.seed);
    let _ = writeln!(s, "client: {}", json(&json!(label)));
    let unstable = unstable_reason(sc);
    let mode = unstable
        .as_ref()
        .map_or_else(|| "stable".to_string(), |w| format!("invariants only: {w}"));
    let _ = writeln!(s, "transcript: {}", json(&json!(mode)));
    let _ = writeln!(s, "reports: {}", json(&json!(ev.reports())));
    let ignored = ev.ignored();
    if !ignored.is_empty() {
        let _ = writeln!(s, "ignored: {}", json(&json!(ignored)));
    }
    s.push_str("checks:\n");
    for c in checks.iter().filter(|c| c.name != SNAPSHOT_CHECK) {
        let _ = writeln!(s, "  - {{name: {}, result: {}}}", c.name, verdict(c));
    }
    if unstable.is_none() {
        connections(&mut s, ev);
    }
    s
}

/// One accepted connection as the snapshot shows it.
#[derive(Default)]
struct Conn {
    session: String,
    offered: Vec<String>,
    received: Vec<String>,
    faults: Vec<Value>,
    lost: Vec<String>,
    closed: Value,
    client: Vec<Value>,
}

fn frames(v: &Value) -> impl Iterator<Item = String> + '_ {
    v.get("frames")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(String::from))
}

/// Frame serials replaced by ordinals: the n-th frame the gateway offered of one terminal and id
/// is `no.n`. The terminal numbers its feed and its answers from one counter, so a command
/// answered a moment earlier or later shifts every serial after it; the ordinal does not move.
/// (The real serials are still checked: `every_frame_once` matches them exactly.)
#[derive(Default)]
struct Ordinals {
    of: BTreeMap<(String, String, u64), u64>,
    next: BTreeMap<(String, String), u64>,
}

impl Ordinals {
    fn learn(&mut self, frame: &str) {
        if let Some((id, phone, serial, _)) = split_frame(frame) {
            let n = self.next.entry((phone.clone(), id.clone())).or_insert(0);
            self.of.entry((phone, id, serial)).or_insert_with(|| {
                *n += 1;
                *n - 1
            });
        }
    }

    fn get(&self, phone: &str, id: &str, serial: u64) -> Option<u64> {
        self.of.get(&(phone.to_string(), id.to_string(), serial)).copied()
    }

    /// `0x0200 13800000001 #5 [1/3]` -> `0x0200 13800000001 no.2 [1/3]`.
    fn frame(&self, frame: &str) -> String {
        match split_frame(frame) {
            Some((id, phone, serial, rest)) => match self.get(&phone, &id, serial) {
                Some(n) => format!("{id} {phone} no.{n}{rest}"),
                None => frame.to_string(),
            },
            None => frame.to_string(),
        }
    }

    /// A client event's `serial` / `first_serial` as `"no.N"` (a number still when never offered).
    fn event(&self, e: &mut Value) {
        let phone = e.get("phone").and_then(Value::as_str).map(String::from);
        let id = e
            .get("msg_id")
            .and_then(Value::as_str)
            .map(|s| format!("0x{}", s.get(2..).unwrap_or("").to_ascii_uppercase()));
        let (Some(phone), Some(id)) = (phone, id) else {
            return;
        };
        for key in ["serial", "first_serial"] {
            if let Some(o) = e
                .get(key)
                .and_then(Value::as_u64)
                .and_then(|v| self.get(&phone, &id, v))
                && let Some(slot) = e.get_mut(key)
            {
                *slot = json!(format!("no.{o}"));
            }
        }
    }
}

/// `0x0200 13800000001 #5 [1/3]` as (id, phone, serial, " [1/3]").
fn split_frame(f: &str) -> Option<(String, String, u64, String)> {
    let mut it = f.splitn(4, ' ');
    let id = it.next()?.to_string();
    let phone = it.next()?.to_string();
    let serial = it.next()?.strip_prefix('#')?.parse().ok()?;
    let rest = it.next().map_or_else(String::new, |r| format!(" {r}"));
    Some((id, phone, serial, rest))
}

/// Renamed frames sorted by terminal, id, ordinal.
fn frame_key(f: &str) -> (String, String, u64, String) {
    let mut it = f.split_whitespace();
    let id = it.next().unwrap_or("").to_string();
    let phone = it.next().unwrap_or("").to_string();
    let n = it
        .next()
        .and_then(|x| x.strip_prefix("no."))
        .and_then(|x| x.parse().ok())
        .unwrap_or(u64::MAX);
    (phone, id, n, f.to_string())
}

fn connections(s: &mut String, ev: &Evidence<'_>) {
    let mut conns: BTreeMap<u64, Conn> = BTreeMap::new();
    let mut order: Vec<u64> = Vec::new();
    let mut not_accepted: BTreeMap<String, u64> = BTreeMap::new();
    let mut ord = Ordinals::default();
    for r in ev.gateway {
        let v = gateway_value(r);
        if v.get("type").and_then(Value::as_str) == Some("offered") {
            frames(&v).for_each(|f| ord.learn(&f));
        }
    }
    for r in ev.gateway {
        let v = gateway_value(r);
        let ty = v.get("type").and_then(Value::as_str).unwrap_or("");
        if ty == "accepted" {
            order.push(r.conn);
        }
        if !order.contains(&r.conn) {
            *not_accepted.entry(ty.to_string()).or_insert(0) += 1;
            continue;
        }
        gateway_event(conns.entry(r.conn).or_default(), ty, &v, &ord);
    }
    attribute_client(ev, &order, &mut conns, s, &ord);
    for (k, n) in &not_accepted {
        let _ = writeln!(s, "not_accepted_{k}: {n}");
    }
    s.push_str("connections:\n");
    for (i, id) in order.iter().enumerate() {
        let Some(c) = conns.get_mut(id) else { continue };
        c.offered.sort_by_key(|f| frame_key(f));
        c.lost.sort_by_key(|f| frame_key(f));
        let _ = writeln!(s, "  - conn: {}", i + 1);
        let _ = writeln!(s, "    session: {}", json(&json!(c.session)));
        let _ = writeln!(s, "    offered: {}", json(&json!(c.offered)));
        let _ = writeln!(s, "    received: {}", json(&json!(c.received)));
        let _ = writeln!(s, "    faults: {}", json(&json!(c.faults)));
        if !c.lost.is_empty() {
            let _ = writeln!(s, "    lost_in_flight: {}", json(&json!(c.lost)));
        }
        let _ = writeln!(s, "    closed: {}", json(&c.closed));
        s.push_str("    client:\n");
        sort_client(&mut c.client);
        for e in &c.client {
            let _ = writeln!(s, "      - {}", json(e));
        }
    }
}

fn gateway_event(c: &mut Conn, ty: &str, v: &Value, ord: &Ordinals) {
    match ty {
        "accepted" => c.session = v.get("session").and_then(Value::as_str).unwrap_or("").into(),
        "offered" => c.offered.extend(frames(v).map(|f| ord.frame(&f))),
        "lost_in_flight" => c.lost.extend(frames(v).map(|f| ord.frame(&f))),
        "received" => {
            let m = v.get("message").cloned().unwrap_or(Value::Null);
            let id = m.get("msg_id").and_then(Value::as_str).unwrap_or("?");
            let phone = m.get("phone").and_then(Value::as_str).unwrap_or("?");
            let serial = m.get("serial").and_then(Value::as_u64).unwrap_or(0);
            c.received.push(format!("{id} {phone} #{serial}"));
        }
        "received_rejected" => c.received.push("bad frame".into()),
        "fault" => c.faults.push(json!({
            "fault": v.get("fault").cloned().unwrap_or(Value::Null),
            "what": v.get("what").cloned().unwrap_or(Value::Null),
        })),
        "closed" => {
            let mut o = v.as_object().cloned().unwrap_or_default();
            // `why` is an error text of the moment (a reset, an EOF): the kind of end is `how`.
            for k in ["type", "conn", "why", "reason"] {
                o.shift_remove(k);
            }
            c.closed = Value::Object(o);
        }
        _ => {}
    }
}

/// Client events go to the connection they happened on: the k-th `connected` the client reports
/// is the gateway's k-th accepted connection. A client that reports no `connected` gets one list.
fn attribute_client(ev: &Evidence<'_>, order: &[u64], conns: &mut BTreeMap<u64, Conn>, s: &mut String, ord: &Ordinals) {
    let by_conn = ev.reports().contains("connected");
    let mut outside = Vec::new();
    let mut current: Option<usize> = None;
    for l in ev.lines {
        if l.kind == "connected" && by_conn {
            current = Some(current.map_or(0, |c| c + 1));
            continue;
        }
        let Some(mut e) = client_event(&l.kind, &l.event) else {
            continue;
        };
        ord.event(&mut e);
        match current.and_then(|k| order.get(k)).and_then(|id| conns.get_mut(id)) {
            Some(c) if by_conn => c.client.push(e),
            _ => outside.push(e),
        }
    }
    if !outside.is_empty() {
        sort_client(&mut outside);
        let key = if by_conn {
            "client_outside_connections"
        } else {
            "client"
        };
        let _ = writeln!(s, "{key}:");
        for e in &outside {
            let _ = writeln!(s, "  - {}", json(e));
        }
    }
}

/// The event with only what does not depend on timing, or None for events not shown.
fn client_event(kind: &str, e: &Map<String, Value>) -> Option<Value> {
    let pick = |keys: &[&str]| {
        let mut m = Map::new();
        m.insert("type".into(), json!(kind));
        for k in keys {
            if let Some(v) = e.get(*k) {
                m.insert((*k).into(), v.clone());
            }
        }
        Value::Object(m)
    };
    let mut v = match kind {
        "message" => Value::Object(e.clone()),
        "frame_rejected" => pick(&["check"]),
        "skipped" => pick(&["len"]),
        "duplicate_packet" => pick(&["msg_id", "phone", "index"]),
        "group_expired" => pick(&["msg_id", "phone", "total", "missing", "first_serial"]),
        "disconnected" => {
            let r = e.get("reason").cloned().unwrap_or(Value::Null);
            let mut m = Map::new();
            m.insert("type".into(), json!(kind));
            for k in ["kind", "code"] {
                if let Some(x) = r.get(k) {
                    m.insert(k.into(), x.clone());
                }
            }
            Value::Object(m)
        }
        _ => return None,
    };
    elide_long_hex(&mut v);
    Some(v)
}

/// Messages first (by terminal, serial, id), then the other events by their text, the
/// disconnect last.
fn sort_client(v: &mut [Value]) {
    let key = |e: &Value| {
        let ty = e.get("type").and_then(Value::as_str).unwrap_or("");
        let rank = match ty {
            "message" => 0,
            "disconnected" => 2,
            _ => 1,
        };
        let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let n = text("serial")
            .strip_prefix("no.")
            .and_then(|x| x.parse().ok())
            .or_else(|| e.get("serial").and_then(Value::as_u64))
            .unwrap_or(0);
        (rank, text("phone"), text("msg_id"), n, json(e))
    };
    v.sort_by_cached_key(key);
}

fn elide_long_hex(v: &mut Value) {
    match v {
        Value::String(s) if s.len() > MAX_HEX && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
            let h = crate::gateway::source::fnv1a(s.to_ascii_lowercase().as_bytes());
            *s = format!("<{} bytes fnv1a:{h:016x}>", s.len() / 2);
        }
        Value::Array(a) => a.iter_mut().for_each(elide_long_hex),
        Value::Object(o) => o.values_mut().for_each(elide_long_hex),
        _ => {}
    }
}
