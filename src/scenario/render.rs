//! A piece of a run's evidence as its transcript line: the gateway record's, client event's or
//! harness record's serde form, with the line's time and side, long hex payloads elided. Rendered
//! once, when the evidence comes in, so a run keeps text rather than typed events.

use serde_json::{Map, Value, json};

use super::observe::Evidence;
use crate::gateway::GatewayRecord;
use crate::transcript::{Line, Side};

/// One piece of evidence as a transcript line.
pub fn line(e: Evidence<'_>) -> Line {
    let (t_us, seq) = e.order();
    let (side, mut event) = match e {
        Evidence::Gateway(r) => (Side::Gateway, gateway_json(r)),
        Evidence::Client(c) => {
            let mut v = serde_json::to_value(c).expect("client events serialise");
            if let Value::Object(o) = &mut v {
                o.shift_remove("t_ms");
            }
            (Side::Client, v)
        }
        Evidence::Harness(h) => (
            Side::Harness,
            serde_json::to_value(&h.event).expect("harness events serialise"),
        ),
    };
    elide_long_hex(&mut event);
    Line::new(t_us, seq, side, event)
}

/// A gateway record's JSON: `type`, then `conn`, then the event's own keys.
fn gateway_json(r: &GatewayRecord) -> Value {
    let mut v = serde_json::to_value(&r.event).expect("gateway events serialise");
    if let Value::Object(o) = &mut v {
        let mut m = Map::new();
        if let Some(t) = o.shift_remove("type") {
            m.insert("type".into(), t);
        }
        m.insert("conn".into(), json!(r.conn));
        // A fault record repeats the time and connection the entry already carries.
        o.shift_remove("t_us");
        o.shift_remove("conn");
        m.extend(std::mem::take(o));
        v = Value::Object(m);
    }
    v
}

/// Hex strings longer than this are shown as their length and a hash in transcripts.
const MAX_HEX_IN_TRANSCRIPT: usize = 96;

/// Replaces long hex payloads (media data, raw bodies) by `"<N bytes fnv1a:XXXXXXXXXXXXXXXX>"`:
/// a review diff stays readable, and any change of the bytes still changes the snapshot.
fn elide_long_hex(v: &mut Value) {
    match v {
        Value::String(s) if s.len() > MAX_HEX_IN_TRANSCRIPT && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
            let h = crate::gateway::source::fnv1a(s.as_bytes());
            *s = format!("<{} bytes fnv1a:{h:016x}>", s.len() / 2);
        }
        Value::Array(a) => a.iter_mut().for_each(elide_long_hex),
        Value::Object(o) => o.values_mut().for_each(elide_long_hex),
        _ => {}
    }
}
