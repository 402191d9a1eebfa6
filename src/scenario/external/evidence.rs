//! The checks of `[expect]` for an external client, judged from both sides.
//!
//! The scenario checks ([`super::super::checks`]) read a transcript; an external client prints
//! only some of the events the built-in one does, so this module builds the transcript the checks
//! read from the gateway's log (connections, what the client sent, re-sent) and the client's lines
//! (what it decoded), with the events the client did not print derived from the gateway's side:
//! `connected` / `disconnected` from accepted / closed connections, `sent` / `resent` from the
//! commands the gateway received, `confirmed` from the 0x0001 answers the client decoded. Checks
//! that need events only the client can report (its rejections, its packet groups) are "not
//! applicable" when it does not report them.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::Command;
use super::contract::ClientLine;
use crate::client::replies::final_answer_id;
use crate::gateway::replay::ReplayErrors;
use crate::gateway::source::ConversationReports;
use crate::gateway::{Gateway, GatewayRecord};
use crate::scenario::{Scenario, checks};
use crate::transcript::{Check, Entry, Side, Transcript};

/// Detail prefix of a check that could not be judged.
pub const NOT_APPLICABLE: &str = "not applicable";
/// Name of the check that says whether the transcript is snapshotted or invariants only.
pub const SNAPSHOT_CHECK: &str = "stable_transcript";

/// Everything a run produced, for the checks and the normalised transcript.
pub struct Evidence<'a> {
    /// The scenario.
    pub sc: &'a Scenario,
    /// Its commands as written to the client.
    pub commands: &'a [Command],
    /// What the client printed.
    pub lines: &'a [ClientLine],
    /// The gateway's log.
    pub gateway: &'a [GatewayRecord],
    /// Harness entries (commands written, capture errors, conversation reports).
    pub harness: Vec<Value>,
}

/// Harness entries for a capture that could not be read to its end and for conversation reports.
pub fn harness_notes(errors: &ReplayErrors, conversations: &ConversationReports) -> Vec<Value> {
    let mut v: Vec<Value> = errors
        .list()
        .into_iter()
        .map(|e| json!({"type": "capture_error", "error": e.message, "ended": e.ended}))
        .collect();
    for (session, report) in conversations.reports() {
        let mut e = json!({"type": "conversation", "session": session});
        if let (Value::Object(m), Ok(Value::Object(r))) = (&mut e, serde_json::to_value(&report)) {
            m.extend(r);
        }
        v.push(e);
    }
    v
}

/// Harness entries for the commands: written (`command` / `request`) or not (`command_refused`).
pub fn command_notes(cmds: &[Command], written: &[Option<Duration>]) -> Vec<Value> {
    cmds.iter()
        .zip(written)
        .map(|(c, w)| {
            let id = format!("0x{:04X}", c.msg_id);
            match (w, c.request) {
                (None, _) => json!({"type": "command_refused", "msg_id": id, "error": "the client's stdin was closed"}),
                (Some(_), true) => json!({"type": "request", "msg_id": id, "phone": c.phone}),
                (Some(_), false) => json!({"type": "command", "msg_id": id, "phone": c.phone, "serial": c.serial}),
            }
        })
        .collect()
}

fn str_of<'v>(v: &'v Value, k: &str) -> &'v str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// A gateway record as a transcript event: `type`, `conn`, then its fields.
pub fn gateway_value(r: &GatewayRecord) -> Value {
    let mut m = Map::new();
    if let Ok(Value::Object(mut o)) = serde_json::to_value(&r.event) {
        if let Some(t) = o.shift_remove("type") {
            m.insert("type".into(), t);
        }
        m.insert("conn".into(), json!(r.conn));
        o.shift_remove("t_us");
        o.shift_remove("conn");
        m.extend(o);
    }
    Value::Object(m)
}

/// Whether the gateway record is the receipt of command `c`.
fn receipt_of(v: &Value, c: &Command) -> bool {
    let Some(m) = v.get("message") else { return false };
    str_of(v, "type") == "received"
        && str_of(m, "msg_id") == format!("0x{:04X}", c.msg_id)
        && str_of(m, "phone") == c.phone
        && m.get("serial").and_then(Value::as_u64) == Some(u64::from(c.serial))
}

/// Whether a decoded message (`message` line) answers command `c` with `answer_id`.
fn answers(line: &ClientLine, c: &Command, answer_id: u16) -> bool {
    let e = &line.event;
    let body = e.get("body").cloned().unwrap_or(Value::Null);
    let reply = body.get("reply_serial").and_then(Value::as_u64);
    let id_ok = answer_id != 0x0001 || str_of(&body, "reply_id").eq_ignore_ascii_case(&format!("0x{:04X}", c.msg_id));
    line.kind == "message"
        && str_of(&Value::Object(e.clone()), "msg_id").eq_ignore_ascii_case(&format!("0x{answer_id:04X}"))
        && e.get("phone").and_then(Value::as_str) == Some(c.phone.as_str())
        && reply == Some(u64::from(c.serial))
        && id_ok
}

/// Whether the run can end: the feed is exhausted, the client is connected, every command reached
/// the gateway and every request was answered, and no packet group the client reported is open.
pub fn settled(gw: &Gateway, cmds: &[Command], lines: &[ClientLine]) -> bool {
    if !gw.idle() || gw.live_connections().is_empty() {
        return false;
    }
    let log: Vec<Value> = gw.log().iter().map(gateway_value).collect();
    let delivered = cmds.iter().all(|c| log.iter().any(|v| receipt_of(v, c)));
    let answered = cmds
        .iter()
        .filter(|c| c.request)
        .all(|c| lines.iter().any(|l| answers(l, c, final_answer_id(c.msg_id))));
    delivered && answered && open_groups(lines).is_empty()
}

/// Whether every message the gateway offered and no fault destroyed was decoded (the
/// `every_frame_once` accounting): a client on a loaded machine may lag behind the gateway by
/// more than [`super::SETTLE`], and the run must not end before it caught up.
pub fn caught_up(ev: &Evidence<'_>) -> bool {
    let t = Transcript {
        scenario: String::new(),
        seed: 0,
        summary: Map::new(),
        checks: Vec::new(),
        events: ev.entries(),
    };
    let want = crate::scenario::Expectations {
        every_frame_once: Some(true),
        ..Default::default()
    };
    checks::check(&want, &checks::Facts::gather(&t), &ev.sc.client)
        .iter()
        .all(|c| c.ok)
}

/// Packet groups the client reported a packet of and neither completed nor gave up.
fn open_groups(lines: &[ClientLine]) -> BTreeSet<(String, String, u64)> {
    let mut open = BTreeSet::new();
    for l in lines {
        let v = Value::Object(l.event.clone());
        let key = |total: &str| {
            (
                str_of(&v, "msg_id").to_string(),
                str_of(&v, "phone").to_string(),
                v.get(total).and_then(Value::as_u64).unwrap_or(0),
            )
        };
        match l.kind.as_str() {
            "packet" => {
                open.insert(key("total"));
            }
            "message" if v.get("packets").is_some() => {
                open.remove(&key("packets"));
            }
            "group_expired" => {
                open.remove(&key("total"));
            }
            _ => {}
        }
    }
    open
}

impl Evidence<'_> {
    /// The event types the client reports: its `hello`'s list, else those it printed.
    pub fn reports(&self) -> BTreeSet<String> {
        let hello = self.lines.iter().find(|l| l.kind == "hello").and_then(|l| {
            l.event.get("reports").and_then(Value::as_array).map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect::<BTreeSet<_>>()
            })
        });
        let mut r = hello.unwrap_or_else(|| self.lines.iter().map(|l| l.kind.clone()).collect());
        r.insert("message".into());
        r.remove("hello");
        r
    }

    /// Types the client printed that the harness does not read.
    pub fn ignored(&self) -> BTreeSet<String> {
        self.lines
            .iter()
            .filter(|l| !super::contract::KNOWN.contains(&l.kind.as_str()))
            .map(|l| l.kind.clone())
            .collect()
    }

    /// The transcript the checks read, with the checks done (events left out: the normalised
    /// transcript is [`super::normalise::yaml`]).
    pub fn transcript(&self) -> Transcript {
        let mut t = Transcript {
            scenario: self.sc.name.clone(),
            seed: self.sc.seed,
            summary: Map::new(),
            checks: Vec::new(),
            events: self.entries(),
        };
        let facts = checks::Facts::gather(&t);
        t.summary = facts.summary();
        t.checks = checks::check(&self.sc.expect, &facts, &self.sc.client);
        self.judge(&mut t.checks);
        t.checks.push(Check {
            name: SNAPSHOT_CHECK.into(),
            ok: true,
            detail: match super::normalise::unstable_reason(self.sc) {
                None => "stable: the normalised transcript is snapshotted".into(),
                Some(why) => format!("invariants only: {why}"),
            },
        });
        t.events.clear();
        t
    }

    fn entries(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut push = |side: Side, event: Value| {
            let seq = out.len() as u64;
            out.push(Entry {
                t_us: 0,
                side,
                seq,
                event,
            })
        };
        let mut received = BTreeSet::new();
        for r in self.gateway {
            let v = gateway_value(r);
            match str_of(&v, "type") {
                "accepted" => push(Side::Client, json!({"type": "connected", "attempt": r.conn})),
                "closed" => push(Side::Client, json!({"type": "disconnected"})),
                _ => {}
            }
            for c in self.commands.iter().filter(|c| receipt_of(&v, c)) {
                let ty = if received.insert(c.index) { "sent" } else { "resent" };
                push(
                    Side::Client,
                    json!({"type": ty, "serial": c.serial, "msg_id": format!("0x{:04X}", c.msg_id),
                           "phone": c.phone, "awaits_confirmation": true}),
                );
            }
            push(Side::Gateway, v);
        }
        for h in &self.harness {
            push(Side::Harness, h.clone());
        }
        for c in self.commands.iter().filter(|c| c.request) {
            let id = final_answer_id(c.msg_id);
            let v = match self.lines.iter().find(|l| answers(l, c, id)) {
                Some(_) => json!({"type": "answered", "msg_id": format!("0x{:04X}", c.msg_id),
                                  "answer": format!("0x{id:04X}"), "serial": c.serial}),
                None => json!({"type": "request_failed", "msg_id": format!("0x{:04X}", c.msg_id),
                               "error": format!("the client decoded no 0x{id:04X} answering serial {}", c.serial)}),
            };
            push(Side::Harness, v);
        }
        // What the client decoded; its connections and sends come from the gateway's side above.
        let decoded = [
            "message",
            "frame_rejected",
            "skipped",
            "packet",
            "duplicate_packet",
            "group_expired",
        ];
        // A command is confirmed by its 0x0001, or by its answer (0x1205 for 0x9205) when no
        // 0x0001 came first, as the built-in client counts it.
        let mut general = BTreeSet::new();
        for l in self.lines.iter().filter(|l| decoded.contains(&l.kind.as_str())) {
            push(Side::Client, Value::Object(l.event.clone()));
            for c in self.commands {
                let answer = final_answer_id(c.msg_id);
                let by_general = answers(l, c, 0x0001);
                let by_answer = answer != 0x0001 && answers(l, c, answer) && !general.contains(&c.index);
                if by_general {
                    general.insert(c.index);
                }
                if !(by_general || by_answer) {
                    continue;
                }
                push(
                    Side::Client,
                    json!({"type": "confirmed", "serial": c.serial, "msg_id": format!("0x{:04X}", c.msg_id), "phone": c.phone}),
                );
            }
        }
        out
    }

    /// Marks what cannot be judged as not applicable and adds what only both sides show.
    fn judge(&self, checks: &mut Vec<Check>) {
        let reports = self.reports();
        let na = |c: &mut Check, missing: &[&str]| {
            let absent: Vec<&str> = missing.iter().copied().filter(|m| !reports.contains(*m)).collect();
            if !absent.is_empty() {
                c.ok = true;
                c.detail = format!("{NOT_APPLICABLE}: the client reports no {} events", absent.join(" / "));
            }
        };
        for c in checks.iter_mut() {
            match c.name.as_str() {
                "frames_rejected" => na(c, &["frame_rejected"]),
                "groups_accounted" => na(c, &["packet", "group_expired"]),
                "commands_confirmed" => self.undelivered(c),
                _ => {}
            }
        }
        if reports.contains("connected") {
            let client = self.lines.iter().filter(|l| l.kind == "connected").count();
            let gateway = self
                .gateway
                .iter()
                .filter(|r| str_of(&gateway_value(r), "type") == "accepted")
                .count();
            checks.push(Check {
                name: "connections_agree".into(),
                ok: client == gateway,
                detail: format!("the client reported {client} connections, the gateway accepted {gateway}"),
            });
        }
    }

    /// Commands the gateway never received fail `commands_confirmed` (the checks only see those
    /// that were sent).
    fn undelivered(&self, c: &mut Check) {
        let log: Vec<Value> = self.gateway.iter().map(gateway_value).collect();
        let missing: Vec<String> = self
            .commands
            .iter()
            .filter(|k| !log.iter().any(|v| receipt_of(v, k)))
            .map(|k| format!("0x{:04X} serial {} never reached the gateway", k.msg_id, k.serial))
            .collect();
        if !missing.is_empty() {
            c.ok = false;
            c.detail = format!("{}; {}", missing.join("; "), c.detail);
        }
    }
}
