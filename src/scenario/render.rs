//! A piece of a run's evidence as its transcript line: the gateway record's, client event's or
//! harness record's serde form, with the line's time and side, long hex payloads elided. Rendered
//! once, when the evidence comes in, so a run keeps text rather than typed events.

use super::observe::Evidence;
use crate::transcript::{Line, Side};

/// One piece of evidence as a transcript line. Serialised straight to text: a JSON tree built for
/// every event cost more than the rest of a run.
pub fn line(e: Evidence<'_>) -> Line {
    let (t_us, seq) = e.order();
    let (side, json) = match e {
        Evidence::Gateway(r) => (Side::Gateway, with_conn(&text(&r.event), r.conn)),
        // The event's own keys; `t_ms` is the line's `t`.
        Evidence::Client(c) => (Side::Client, text(&c.kind)),
        Evidence::Harness(h) => (Side::Harness, text(&h.event)),
    };
    Line::from_object(t_us, seq, side, &elide_long_hex_text(&json))
}

/// Compact JSON of a piece of evidence.
fn text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("evidence serialises")
}

/// `{"type":"x",...}` with `"conn":N` after its `type`: a gateway record's line shows `type`,
/// then `conn`, then the event's own keys.
fn with_conn(event: &str, conn: u64) -> String {
    let body = event
        .strip_prefix("{\"type\":\"")
        .expect("a gateway event serialises as an object with its type first");
    // The type is a snake_case name: its closing quote is the first one.
    let end = body.find('"').expect("the type is a string") + 1;
    let (ty, rest) = body.split_at(end);
    let sep = if rest.starts_with('}') { "" } else { "," };
    let rest = rest.strip_prefix(',').unwrap_or(rest);
    format!("{{\"type\":\"{ty},\"conn\":{conn}{sep}{rest}")
}

/// Hex strings longer than this are shown as their length and a hash in transcripts.
const MAX_HEX_IN_TRANSCRIPT: usize = 96;

/// Replaces long hex payloads (media data, raw bodies) by `"<N bytes fnv1a:XXXXXXXXXXXXXXXX>"`:
/// a review diff stays readable, and any change of the bytes still changes the snapshot. Works on
/// the text of compact JSON: every string *value* (not a key) longer than
/// [`MAX_HEX_IN_TRANSCRIPT`] made of hex digits alone (so free of escapes: its text is its value).
fn elide_long_hex_text(json: &str) -> std::borrow::Cow<'_, str> {
    let b = json.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'"' {
            i += 1;
            continue;
        }
        // A string: find its closing quote, noting whether it is hex digits alone.
        let start = i + 1;
        let mut j = start;
        let mut hex = true;
        while b[j] != b'"' {
            if b[j] == b'\\' {
                hex = false;
                j += 1;
            } else {
                hex &= b[j].is_ascii_hexdigit();
            }
            j += 1;
        }
        let is_key = b.get(j + 1) == Some(&b':');
        if hex && !is_key && j - start > MAX_HEX_IN_TRANSCRIPT {
            let s = &json[start..j];
            let h = crate::gateway::source::fnv1a(s.as_bytes());
            let o = out.get_or_insert_with(|| String::with_capacity(json.len()));
            o.push_str(&json[copied..start]);
            o.push_str(&format!("<{} bytes fnv1a:{h:016x}>", s.len() / 2));
            copied = j;
        }
        i = j + 1;
    }
    match out {
        None => std::borrow::Cow::Borrowed(json),
        Some(mut o) => {
            o.push_str(&json[copied..]);
            std::borrow::Cow::Owned(o)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// The same on a JSON tree: what transcripts did before they were rendered from text.
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

    #[test]
    fn text_elision_matches_the_tree_one() {
        let long = "ab".repeat(49);
        let short = "ab".repeat(48);
        let mut v = json!({"type": "x", "data": long, "keep": short, "nested": [{"raw": long}],
            "quoted": format!("say \"{long}\""), "words": "zz".repeat(49), "n": 1});
        let text = v.to_string();
        elide_long_hex(&mut v);
        assert_eq!(elide_long_hex_text(&text), v.to_string());
        assert!(v.to_string().contains("<49 bytes fnv1a:"), "{v}");
        // A key is never elided, however long.
        let key = json!({ long.clone(): 1 }).to_string();
        assert_eq!(elide_long_hex_text(&key), key);
    }

    #[test]
    fn conn_follows_the_type() {
        assert_eq!(with_conn(r#"{"type":"a","b":1}"#, 7), r#"{"type":"a","conn":7,"b":1}"#);
        assert_eq!(with_conn(r#"{"type":"a"}"#, 7), r#"{"type":"a","conn":7}"#);
    }
}
