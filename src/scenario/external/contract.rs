//! The lines an external client prints on stdout (`clients/CONTRACT.md`,
//! `clients/events.schema.json`): one JSON object per line with a `"type"`, in the shape
//! `jt808-harness client` prints. This module checks each line against the contract; a line that
//! breaks it is an error naming its line number and content, never skipped.

use serde_json::{Map, Value};

/// Longest stdout line accepted, bytes: far above any message (a reassembled 0x1205 of 65,535
/// items would be ~10 MB of JSON, so this also bounds what one line can make the harness hold).
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Most characters of a bad line quoted in its error.
const QUOTE_CHARS: usize = 200;

/// Event types the harness reads; any other `type` is accepted and ignored (the Rust client
/// prints many more, e.g. `backoff`), and listed in the transcript's `ignored` key.
pub const KNOWN: &[&str] = &[
    "hello",
    "connected",
    "disconnected",
    "message",
    "frame_rejected",
    "skipped",
    "packet",
    "duplicate_packet",
    "group_expired",
];

/// One line that kept the contract.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientLine {
    /// 1-based line number on the process's stdout.
    pub line: usize,
    /// The `type`.
    pub kind: String,
    /// The whole object, `t_ms` (which the Rust client adds) removed.
    pub event: Map<String, Value>,
}

/// A line that broke the contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("client stdout line {line}: {why}: {content}")]
pub struct BadLine {
    /// 1-based line number.
    pub line: usize,
    /// The line, cut to 200 characters.
    pub content: String,
    /// What is wrong with it.
    pub why: String,
}

/// Checks one stdout line (without its newline).
pub fn parse_line(line: usize, text: &str) -> Result<ClientLine, BadLine> {
    let bad = |why: String| BadLine {
        line,
        content: quote(text),
        why,
    };
    let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON ({e})")))?;
    let Value::Object(mut event) = v else {
        return Err(bad("not a JSON object".into()));
    };
    let kind = match event.get("type") {
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => s.clone(),
        Some(_) => return Err(bad("`type` must be a snake_case string".into())),
        None => return Err(bad("no `type` key".into())),
    };
    event.remove("t_ms");
    required(&kind, &event).map_err(bad)?;
    Ok(ClientLine { line, kind, event })
}

fn quote(text: &str) -> String {
    let mut q: String = text.chars().take(QUOTE_CHARS).collect();
    if text.chars().count() > QUOTE_CHARS {
        q.push_str("...");
    }
    q
}

/// The keys each known type must carry, with their JSON types.
fn required(kind: &str, e: &Map<String, Value>) -> Result<(), String> {
    match kind {
        "message" => {
            msg_id(e)?;
            phone(e)?;
            serial(e, "serial")?;
            match e.get("body") {
                Some(Value::Object(_)) => Ok(()),
                _ => Err("`message` needs `body` as an object (`{\"raw\": \"<hex>\"}` when not decoded)".into()),
            }
        }
        "hello" => match e.get("reports") {
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => Ok(()),
            _ => Err("`hello` needs `reports`, an array of event type names".into()),
        },
        "frame_rejected" => string(e, "check"),
        "skipped" => serial(e, "len").map(drop),
        "packet" | "duplicate_packet" => {
            msg_id(e)?;
            phone(e)?;
            serial(e, "index").map(drop)
        }
        "group_expired" => {
            msg_id(e)?;
            phone(e)?;
            serial(e, "total")?;
            match e.get("missing") {
                Some(Value::Array(_)) => Ok(()),
                _ => Err("`group_expired` needs `missing` as an array of [first, last] ranges".into()),
            }
        }
        _ => Ok(()),
    }
}

fn string(e: &Map<String, Value>, key: &str) -> Result<(), String> {
    match e.get(key) {
        Some(Value::String(_)) => Ok(()),
        _ => Err(format!("`{}` needs `{key}` as a string", kind_of(e))),
    }
}

/// A terminal as the checks match it against the gateway's: 1 to 20 decimal digits.
fn phone(e: &Map<String, Value>) -> Result<(), String> {
    match e.get("phone") {
        Some(Value::String(s)) => crate::codec::Phone::parse(s)
            .map(drop)
            .map_err(|why| format!("`{}`: {why}", kind_of(e))),
        _ => Err(format!("`{}` needs `phone` as a string", kind_of(e))),
    }
}

fn serial(e: &Map<String, Value>, key: &str) -> Result<u64, String> {
    match e.get(key).and_then(Value::as_u64) {
        Some(n) if n <= u64::from(u16::MAX) => Ok(n),
        _ => Err(format!("`{}` needs `{key}` as an integer in 0..=65535", kind_of(e))),
    }
}

fn msg_id(e: &Map<String, Value>) -> Result<(), String> {
    match e.get("msg_id") {
        Some(Value::String(s))
            if s.len() == 6 && s.starts_with("0x") && s[2..].bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "`{}` needs `msg_id` as a string like \"0x0200\" (0x and 4 hex digits)",
            kind_of(e)
        )),
    }
}

fn kind_of(e: &Map<String, Value>) -> &str {
    e.get("type").and_then(Value::as_str).unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_in_the_rust_clients_shape_is_accepted() {
        let l = parse_line(
            3,
            r#"{"type":"message","msg_id":"0x0200","version":"2013","phone":"13800000001","serial":0,"body":{"alarm":0},"t_ms":5}"#,
        )
        .unwrap();
        assert_eq!(l.kind, "message");
        assert!(!l.event.contains_key("t_ms"));
    }

    #[test]
    fn bad_lines_name_their_number_and_content() {
        let e = parse_line(7, "hello there").unwrap_err();
        assert_eq!(e.line, 7);
        assert!(e.to_string().starts_with("client stdout line 7: not JSON"), "{e}");
        assert!(e.to_string().ends_with(": hello there"), "{e}");
        let e = parse_line(
            2,
            r#"{"type":"message","msg_id":"512","phone":"1","serial":0,"body":{}}"#,
        )
        .unwrap_err();
        assert!(e.why.contains("msg_id"), "{e}");
        let e = parse_line(
            2,
            r#"{"type":"message","msg_id":"0x0200","phone":"1","serial":70000,"body":{}}"#,
        )
        .unwrap_err();
        assert!(e.why.contains("serial"), "{e}");
        let e = parse_line(2, r#"{"type":"packet","msg_id":"0x0801","phone":"13x","index":1}"#).unwrap_err();
        assert_eq!(e.why, "`packet`: phone \"13x\" must be 1 to 20 decimal digits", "{e}");
        let e = parse_line(4, "[1,2]").unwrap_err();
        assert_eq!(e.why, "not a JSON object");
        let e = parse_line(4, r#"{"msg_id":"0x0200"}"#).unwrap_err();
        assert_eq!(e.why, "no `type` key");
    }

    #[test]
    fn unknown_types_pass_and_long_lines_are_quoted_short() {
        assert_eq!(
            parse_line(1, r#"{"type":"backoff","delay_ms":5}"#).unwrap().kind,
            "backoff"
        );
        let long = format!("x{}", "y".repeat(500));
        let e = parse_line(1, &long).unwrap_err();
        assert_eq!(e.content.chars().count(), QUOTE_CHARS + 3);
    }
}
