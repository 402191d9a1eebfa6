//! The checks of `[expect]` for an external client, judged from both sides.
//!
//! The scenario checks ([`super::super::checks`]) read facts; an external client prints only some
//! of the events the built-in one does, and as JSON, so this module feeds [`checks::Facts`] the
//! gateway's typed log, the harness's typed events, and [`ClientFact`]s read off the client's lines
//! (what it decoded), with the facts the client did not print derived from the gateway's side:
//! connected / disconnected from accepted / closed connections, sent / resent from the commands
//! the gateway received, confirmed from the answers the client decoded. Checks that need events
//! only the client can report (its rejections, its packet groups) are "not applicable" when it
//! does not report them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::Command;
use super::contract::ClientLine;
use crate::client::replies::{ANSWERS, final_answer_id};
use crate::codec::Phone;
use crate::gateway::replay::ReplayErrors;
use crate::gateway::source::ConversationReports;
use crate::gateway::{FrameDesc, Gateway, GatewayEvent, GatewayRecord};
use crate::scenario::Scenario;
use crate::scenario::checks::{self, ClientFact, Facts, OpenGroups};
use crate::scenario::harness::HarnessEvent;
use crate::transcript::{Check, Transcript};

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
    /// What the harness did (commands written, capture errors, conversation reports).
    pub harness: Vec<HarnessEvent>,
}

/// Harness events for a capture that could not be read to its end and for conversation reports.
pub fn harness_notes(errors: &ReplayErrors, conversations: &ConversationReports) -> Vec<HarnessEvent> {
    let mut v: Vec<HarnessEvent> = errors
        .list()
        .into_iter()
        .map(|e| HarnessEvent::CaptureError {
            error: e.message,
            ended: e.ended,
        })
        .collect();
    v.extend(
        conversations
            .reports()
            .into_iter()
            .map(|(session, report)| HarnessEvent::Conversation { session, report }),
    );
    v
}

/// Harness events for the commands: written (`command` / `request`) or not (`command_refused`).
pub fn command_notes(cmds: &[Command], written: &[Option<Duration>]) -> Vec<HarnessEvent> {
    cmds.iter()
        .zip(written)
        .map(|(c, w)| match (w, c.request) {
            (None, _) => HarnessEvent::CommandRefused {
                msg_id: c.msg_id,
                error: "the client's stdin was closed".into(),
            },
            (Some(_), true) => HarnessEvent::Request {
                msg_id: c.msg_id,
                phone: c.phone.to_string(),
            },
            (Some(_), false) => HarnessEvent::Command {
                msg_id: c.msg_id,
                phone: c.phone.to_string(),
                serial: c.serial,
            },
        })
        .collect()
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
fn receipt_of(r: &GatewayRecord, c: &Command) -> bool {
    let GatewayEvent::Received { message } = &r.event else {
        return false;
    };
    let h = &message.header;
    h.msg_id == c.msg_id && h.phone == c.phone && h.serial == c.serial
}

/// A message id as the contract writes it, `"0x0200"` (checked in [`super::contract`]).
fn id_of(v: Option<&Value>) -> Option<u16> {
    let s = v?.as_str()?;
    u16::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// A line's `key` as a u16 (serials, totals, packet counts; ranges checked in the contract).
fn u16_of(e: &Map<String, Value>, key: &str) -> Option<u16> {
    e.get(key).and_then(Value::as_u64).and_then(|n| u16::try_from(n).ok())
}

/// A line's terminal (decimal digits, checked in the contract).
fn phone_of(e: &Map<String, Value>) -> Option<Phone> {
    Phone::parse(e.get("phone")?.as_str()?).ok()
}

/// The serial an answer names: its body's `reply_serial`, or, for an answer of
/// [`ANSWERS`] that names one and that the client left undecoded (`{"raw": "<hex>"}`), the
/// reply serial WORD the standard puts first in its body (as [`crate::client::replies`] reads
/// a raw 0x1205).
fn reply_serial(body: &Value, answer_id: u16) -> Option<u64> {
    if let Some(n) = body.get("reply_serial").and_then(Value::as_u64) {
        return Some(n);
    }
    let names_serial = ANSWERS.iter().any(|&(id, _, by_serial)| id == answer_id && by_serial);
    let raw = body.get("raw").and_then(Value::as_str).filter(|_| names_serial)?;
    u64::from_str_radix(raw.get(..4)?, 16).ok()
}

/// The command each serial-less answer the client decoded answers, as `(line, command index)`:
/// 0x0107, 0x0608, 0x1003 (the rows of [`ANSWERS`] without a reply serial) name no serial, so,
/// as the built-in client takes them ([`crate::client::outbox::Outbox::confirm_answer`]), each
/// answers the oldest command of its id to that terminal that is still open: one the gateway
/// received before it offered the answer (the log's order: the terminal answers what it read),
/// and that no earlier such answer took.
#[derive(Debug, Default)]
pub struct SerialLess(BTreeSet<(usize, usize)>);

impl SerialLess {
    /// Matches the serial-less answers of `lines` to `cmds` by the gateway's log.
    pub fn new(lines: &[ClientLine], cmds: &[Command], gateway: &[GatewayRecord]) -> SerialLess {
        let mut offered: BTreeMap<(u16, Phone, u16), usize> = BTreeMap::new();
        let mut received: BTreeMap<usize, usize> = BTreeMap::new();
        for (at, r) in gateway.iter().enumerate() {
            match &r.event {
                GatewayEvent::Offered { frames, .. } => {
                    for f in frames {
                        if let FrameDesc::Frame(id) = f {
                            offered.entry((id.msg_id, id.phone, id.serial)).or_insert(at);
                        }
                    }
                }
                GatewayEvent::Received { .. } => {
                    for c in cmds.iter().filter(|c| receipt_of(r, c)) {
                        received.entry(c.index).or_insert(at);
                    }
                }
                _ => {}
            }
        }
        let mut pairs = BTreeSet::new();
        let mut taken = BTreeSet::new();
        for l in lines.iter().filter(|l| l.kind == "message") {
            let e = &l.event;
            let (Some(id), Some(phone), Some(serial)) = (id_of(e.get("msg_id")), phone_of(e), u16_of(e, "serial"))
            else {
                continue;
            };
            let Some(&(_, answered, _)) = ANSWERS.iter().find(|a| a.0 == id && !a.2) else {
                continue;
            };
            let Some(&offer) = offered.get(&(id, phone, serial)) else {
                continue;
            };
            let open = cmds.iter().find(|c| {
                c.msg_id == answered
                    && c.phone == phone
                    && !taken.contains(&c.index)
                    && received.get(&c.index).is_some_and(|&r| r < offer)
            });
            if let Some(c) = open {
                taken.insert(c.index);
                pairs.insert((l.line, c.index));
            }
        }
        SerialLess(pairs)
    }
}

/// Whether `answer_id` is an answer without a reply serial (a row of [`ANSWERS`]).
fn is_serial_less(answer_id: u16) -> bool {
    ANSWERS.iter().any(|a| a.0 == answer_id && !a.2)
}

/// Whether a decoded message (`message` line) answers command `c` with `answer_id`; a serial-less
/// answer by `serial_less`.
fn answers(line: &ClientLine, c: &Command, answer_id: u16, serial_less: &SerialLess) -> bool {
    if is_serial_less(answer_id) {
        return line.kind == "message"
            && id_of(line.event.get("msg_id")) == Some(answer_id)
            && serial_less.0.contains(&(line.line, c.index));
    }
    let e = &line.event;
    let body = e.get("body").cloned().unwrap_or(Value::Null);
    let reply = reply_serial(&body, answer_id);
    let id_ok = answer_id != 0x0001 || id_of(body.get("reply_id")) == Some(c.msg_id);
    line.kind == "message"
        && id_of(e.get("msg_id")) == Some(answer_id)
        && phone_of(e) == Some(c.phone)
        && reply == Some(u64::from(c.serial))
        && id_ok
}

/// The fact a client line states that the checks read, if any (its connections and sends are
/// taken from the gateway's side instead).
fn line_fact(l: &ClientLine) -> Option<ClientFact> {
    let e = &l.event;
    let msg_id = || id_of(e.get("msg_id"));
    Some(match l.kind.as_str() {
        "message" => ClientFact::Decoded {
            msg_id: msg_id()?,
            phone: phone_of(e)?,
            serial: u16_of(e, "serial")?,
            packets: u16_of(e, "packets"),
        },
        "frame_rejected" => ClientFact::Rejected,
        "skipped" => ClientFact::Skipped {
            len: e.get("len").and_then(Value::as_u64)?,
        },
        "packet" => ClientFact::Packet {
            msg_id: msg_id()?,
            phone: phone_of(e)?,
            total: u16_of(e, "total").unwrap_or(0),
        },
        "group_expired" => ClientFact::GroupExpired {
            msg_id: msg_id()?,
            phone: phone_of(e)?,
            total: u16_of(e, "total")?,
            names_missing: e
                .get("missing")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty()),
        },
        _ => return None,
    })
}

/// Whether the run can end: the feed is exhausted, the client is connected, every command reached
/// the gateway and every request was answered, and no packet group the client reported is open.
pub fn settled(gw: &Gateway, cmds: &[Command], lines: &[ClientLine]) -> bool {
    if !gw.idle() || gw.live_connections().is_empty() {
        return false;
    }
    let log = gw.log();
    let delivered = cmds.iter().all(|c| log.iter().any(|r| receipt_of(r, c)));
    let serial_less = SerialLess::new(lines, cmds, &log);
    let answered = cmds.iter().filter(|c| c.request).all(|c| {
        lines
            .iter()
            .any(|l| answers(l, c, final_answer_id(c.msg_id), &serial_less))
    });
    let mut open = OpenGroups::default();
    lines.iter().filter_map(line_fact).for_each(|f| open.follow(&f));
    delivered && answered && open.is_empty()
}

/// Whether every message the gateway offered and no fault destroyed was decoded (the
/// `every_frame_once` accounting): a client on a loaded machine may lag behind the gateway by
/// more than [`super::SETTLE`], and the run must not end before it caught up.
pub fn caught_up(ev: &Evidence<'_>) -> bool {
    let want = crate::scenario::Expectations {
        every_frame_once: Some(true),
        ..Default::default()
    };
    checks::check(&want, &ev.facts(), &ev.sc.client).iter().all(|c| c.ok)
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

    /// The summary and the checks (not-applicable ones marked), no events: the normalised
    /// transcript is [`super::normalise::yaml`].
    pub fn transcript(&self) -> Transcript {
        let facts = self.facts();
        let mut checks = checks::check(&self.sc.expect, &facts, &self.sc.client);
        self.judge(&mut checks);
        checks.push(Check {
            name: SNAPSHOT_CHECK.into(),
            ok: true,
            detail: match super::normalise::unstable_reason(self.sc) {
                None => "stable: the normalised transcript is snapshotted".into(),
                Some(why) => format!("invariants only: {why}"),
            },
        });
        Transcript {
            scenario: self.sc.name.clone(),
            seed: self.sc.seed,
            summary: facts.summary(),
            checks,
            events: Vec::new(),
        }
    }

    /// What the checks read, from both sides.
    fn facts(&self) -> Facts {
        let mut f = Facts::default();
        let mut received = BTreeSet::new();
        for r in self.gateway {
            match r.event {
                GatewayEvent::Accepted { .. } => f.client_fact(&ClientFact::Connected),
                GatewayEvent::Closed(_) => f.client_fact(&ClientFact::Disconnected),
                _ => {}
            }
            for c in self.commands.iter().filter(|c| receipt_of(r, c)) {
                let (phone, serial) = (c.phone, c.serial);
                f.client_fact(&match received.insert(c.index) {
                    true => ClientFact::Sent { phone, serial },
                    false => ClientFact::Resent { phone, serial },
                });
            }
            f.gateway_record(r);
        }
        self.harness.iter().for_each(|h| f.harness_event(h));
        let serial_less = SerialLess::new(self.lines, self.commands, self.gateway);
        self.requests(&serial_less).iter().for_each(|h| f.harness_event(h));
        self.client_facts(&mut f, &serial_less);
        f
    }

    /// Each request answered or failed, judged from what the client decoded.
    fn requests(&self, serial_less: &SerialLess) -> Vec<HarnessEvent> {
        let requests = self.commands.iter().filter(|c| c.request);
        requests
            .map(|c| {
                let answer = final_answer_id(c.msg_id);
                match self.lines.iter().any(|l| answers(l, c, answer, serial_less)) {
                    true => HarnessEvent::Answered {
                        msg_id: c.msg_id,
                        answer,
                        serial: c.serial,
                    },
                    false => HarnessEvent::RequestFailed {
                        msg_id: c.msg_id,
                        error: format!("the client decoded no 0x{answer:04X} answering serial {}", c.serial),
                    },
                }
            })
            .collect()
    }

    /// What the client decoded, and the confirmations it shows: a command is confirmed by its
    /// 0x0001, or by its answer (0x1205 for 0x9205; a serial-less 0x0107 by [`SerialLess`]) when
    /// no 0x0001 came first, as the built-in client counts it.
    fn client_facts(&self, f: &mut Facts, serial_less: &SerialLess) {
        let mut general = BTreeSet::new();
        for l in self.lines {
            let Some(fact) = line_fact(l) else { continue };
            f.client_fact(&fact);
            for c in self.commands {
                let answer = final_answer_id(c.msg_id);
                let by_general = answers(l, c, 0x0001, serial_less);
                let by_answer = answer != 0x0001 && answers(l, c, answer, serial_less) && !general.contains(&c.index);
                if by_general {
                    general.insert(c.index);
                }
                if by_general || by_answer {
                    f.client_fact(&ClientFact::Confirmed {
                        phone: c.phone,
                        serial: c.serial,
                    });
                }
            }
        }
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
                .filter(|r| matches!(r.event, GatewayEvent::Accepted { .. }))
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
        let missing: Vec<String> = self
            .commands
            .iter()
            .filter(|k| !self.gateway.iter().any(|r| receipt_of(r, k)))
            .map(|k| format!("0x{:04X} serial {} never reached the gateway", k.msg_id, k.serial))
            .collect();
        if !missing.is_empty() {
            c.ok = false;
            c.detail = format!("{}; {}", missing.join("; "), c.detail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::body::Body;
    use crate::scenario::external::contract::parse_line;

    fn line(text: &str) -> ClientLine {
        parse_line(1, text).expect("a line of the contract")
    }

    fn phone() -> Phone {
        Phone::parse("13800000001").expect("phone")
    }

    /// The client's JSON lines become the same facts the built-in client's events do; lines the
    /// checks do not read become none.
    #[test]
    fn lines_become_the_facts_the_checks_read() {
        let facts: Vec<Option<ClientFact>> = [
            r#"{"type":"message","msg_id":"0x0801","phone":"13800000001","serial":7,"packets":3,"body":{}}"#,
            r#"{"type":"packet","msg_id":"0x0801","phone":"13800000001","index":1,"total":3}"#,
            r#"{"type":"group_expired","msg_id":"0x0801","phone":"13800000001","total":3,"missing":[[2,3]]}"#,
            r#"{"type":"group_expired","msg_id":"0x0801","phone":"13800000001","total":3,"missing":[]}"#,
            r#"{"type":"skipped","len":18}"#,
            r#"{"type":"frame_rejected","check":"xor"}"#,
            r#"{"type":"connected","attempt":1}"#,
        ]
        .iter()
        .map(|t| line_fact(&line(t)))
        .collect();
        let (msg_id, phone, total) = (0x0801, phone(), 3);
        assert_eq!(
            facts,
            [
                Some(ClientFact::Decoded {
                    msg_id,
                    phone,
                    serial: 7,
                    packets: Some(3)
                }),
                Some(ClientFact::Packet { msg_id, phone, total }),
                Some(ClientFact::GroupExpired {
                    msg_id,
                    phone,
                    total,
                    names_missing: true
                }),
                Some(ClientFact::GroupExpired {
                    msg_id,
                    phone,
                    total,
                    names_missing: false
                }),
                Some(ClientFact::Skipped { len: 18 }),
                Some(ClientFact::Rejected),
                None,
            ]
        );
    }

    /// An answer the client left raw names the serial the standard puts first in its body; a
    /// raw message that is no such answer names none.
    #[test]
    fn a_raw_answer_names_its_reply_serial() {
        let c = Command {
            index: 0,
            at: Duration::ZERO,
            msg_id: 0x8106,
            phone: phone(),
            serial: 2,
            request: true,
            hex: String::new(),
        };
        let answer = |id: &str, raw: &str| {
            line(&format!(
                r#"{{"type":"message","msg_id":"{id}","phone":"13800000001","serial":1,"body":{{"raw":"{raw}"}}}}"#
            ))
        };
        assert_eq!(final_answer_id(c.msg_id), 0x0104);
        let none = SerialLess::default();
        assert!(answers(&answer("0x0104", "000202"), &c, 0x0104, &none));
        assert!(!answers(&answer("0x0104", "000302"), &c, 0x0104, &none));
        assert!(!answers(&answer("0x0200", "000202"), &c, 0x0200, &none));
    }

    /// Serial-less answers take the oldest open command of their id to that terminal: one the
    /// gateway received before offering the answer and no earlier answer took. An 0x0107 the
    /// feed offered before any 0x8107 arrived answers none.
    #[test]
    fn serial_less_answers_take_the_oldest_open_command_of_their_id() {
        use crate::codec::body::RawBody;
        use crate::codec::{Message, Version};
        use crate::gateway::FrameId;
        let p = phone();
        let cmd = |index: usize, msg_id: u16, serial: u16| Command {
            index,
            at: Duration::ZERO,
            msg_id,
            phone: p,
            serial,
            request: true,
            hex: String::new(),
        };
        let cmds = [cmd(0, 0x8107, 0), cmd(1, 0x8107, 1), cmd(2, 0x9003, 2)];
        let record = |event| GatewayRecord {
            t_us: 0,
            conn: 1,
            seq: 0,
            event,
        };
        let received = |c: &Command| {
            let body = Body::Raw(RawBody { raw: Vec::new() });
            let message = Message::new(c.msg_id, Version::V2013, p, c.serial, body);
            record(GatewayEvent::Received { message })
        };
        let offered = |msg_id: u16, serial: u16| {
            let id = FrameId {
                msg_id,
                phone: p,
                serial,
                packet: None,
            };
            record(GatewayEvent::Offered {
                index: 1,
                frames: vec![FrameDesc::Frame(id)],
            })
        };
        let gateway = [
            offered(0x0107, 3),
            received(&cmds[0]),
            received(&cmds[1]),
            offered(0x0107, 5),
            received(&cmds[2]),
            offered(0x1003, 6),
            offered(0x0107, 7),
        ];
        let decoded = |n: usize, id: &str, serial: u16| {
            let text =
                format!(r#"{{"type":"message","msg_id":"{id}","phone":"13800000001","serial":{serial},"body":{{}}}}"#);
            parse_line(n, &text).expect("a line")
        };
        let lines = [
            decoded(1, "0x0107", 3),
            decoded(2, "0x0107", 5),
            decoded(3, "0x1003", 6),
            decoded(4, "0x0107", 7),
        ];
        let m = SerialLess::new(&lines, &cmds, &gateway);
        assert_eq!(m.0, BTreeSet::from([(2, 0), (3, 2), (4, 1)]));
        assert!(answers(&lines[1], &cmds[0], 0x0107, &m));
        assert!(!answers(&lines[1], &cmds[1], 0x0107, &m));
        assert!(
            !answers(&lines[0], &cmds[0], 0x0107, &m),
            "offered before the command arrived"
        );
    }

    /// A packet opens its group; the reassembled message closes it.
    #[test]
    fn a_reported_group_stays_open_until_its_message() {
        let packet = line(r#"{"type":"packet","msg_id":"0x0801","phone":"13800000001","index":1,"total":2}"#);
        let done =
            line(r#"{"type":"message","msg_id":"0x0801","phone":"13800000001","serial":1,"packets":2,"body":{}}"#);
        let mut open = OpenGroups::default();
        open.follow(&line_fact(&packet).expect("a fact"));
        assert!(!open.is_empty());
        open.follow(&line_fact(&done).expect("a fact"));
        assert!(open.is_empty());
    }
}
