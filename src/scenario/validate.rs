//! One pass over a parsed scenario that checks every count and duration against its allowed
//! range, so no value in a file can make a run allocate without bound, spin, or wait for ever.
//! A violation names its key (`source.terminals`) and the range, and is placed at the key's value
//! in the file (`file:line:column`) by looking the key up in toml's spanned document.

use std::fmt::Display;
use std::ops::RangeInclusive;

use toml::de::{DeTable, DeValue};

use super::Scenario;
use crate::gateway::fleet::{MAX_FRAMES_PER_MESSAGE, MAX_INTERVAL_MS, MAX_TERMINALS};
use crate::gateway::source::SourceSpec;

/// Longest run, in virtual time: 7 days (ms).
pub const MAX_DURATION_MS: u64 = 7 * 86_400_000;
/// Longest client timeout, interval or backoff delay: one day (ms).
pub const MAX_CLIENT_MS: u64 = 86_400_000;
/// Most envelope bytes before a message.
pub const MAX_PREFIX_LEN: usize = 4096;
/// Largest client send queue.
pub const MAX_QUEUE_CAPACITY: usize = 1_000_000;

/// A key out of range: where (as path segments) and why.
#[derive(Debug)]
pub(super) struct Violation {
    pub path: Vec<Seg>,
    pub message: String,
}

/// One step of a key path.
#[derive(Debug, Clone)]
pub(super) enum Seg {
    Key(&'static str),
    Index(usize),
}

impl Violation {
    /// `source.terminals`, `commands[2].at_ms`.
    pub fn key(&self) -> String {
        let mut out = String::new();
        for s in &self.path {
            match s {
                Seg::Key(k) if out.is_empty() => out.push_str(k),
                Seg::Key(k) => {
                    out.push('.');
                    out.push_str(k);
                }
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

#[derive(Default)]
struct Checker {
    found: Vec<Violation>,
}

impl Checker {
    fn range<T: PartialOrd + Display>(&mut self, path: &[Seg], v: T, r: RangeInclusive<T>) {
        if !r.contains(&v) {
            let message = format!("{v} is out of range {}..={}", r.start(), r.end());
            self.fail(path, message);
        }
    }

    fn opt<T: PartialOrd + Display + Copy>(&mut self, path: &[Seg], v: Option<T>, r: RangeInclusive<T>) {
        if let Some(v) = v {
            self.range(path, v, r);
        }
    }

    fn fail(&mut self, path: &[Seg], message: String) {
        self.found.push(Violation {
            path: path.to_vec(),
            message,
        });
    }
}

use Seg::{Index, Key};

/// Every range violation of `s`, in file order of the sections.
pub(super) fn check(s: &Scenario) -> Vec<Violation> {
    let mut c = Checker::default();
    c.range(&[Key("duration_ms")], s.duration_ms, 1..=MAX_DURATION_MS);
    check_source(&mut c, &s.source);
    c.range(
        &[Key("gateway"), Key("prefix_len")],
        s.gateway.prefix_len,
        0..=MAX_PREFIX_LEN,
    );
    check_client(&mut c, &s.client);
    for (i, cmd) in s.commands.iter().enumerate() {
        c.range(
            &[Key("commands"), Index(i), Key("at_ms")],
            cmd.at_ms,
            0..=MAX_DURATION_MS,
        );
    }
    if let Some([min, max]) = s.expect.reconnects
        && min > max
    {
        c.fail(
            &[Key("expect"), Key("reconnects")],
            format!("[{min}, {max}] is not a range: min must be <= max"),
        );
    }
    c.found
}

fn check_source(c: &mut Checker, source: &SourceSpec) {
    let k = |key| [Key("source"), Key(key)];
    match source {
        SourceSpec::Fleet(f) => {
            c.range(&k("terminals"), f.terminals, 1..=MAX_TERMINALS);
            c.range(&k("interval_ms"), f.interval_ms, 0..=MAX_INTERVAL_MS);
            c.range(&k("packet_gap_ms"), f.packet_gap_ms, 0..=MAX_INTERVAL_MS);
            c.range(
                &k("frames_per_message"),
                f.frames_per_message,
                1..=MAX_FRAMES_PER_MESSAGE,
            );
            let t = |key| [Key("source"), Key("terminal"), Key(key)];
            c.range(&t("upload_delay_ms"), f.terminal.upload_delay_ms, 0..=MAX_CLIENT_MS);
            check_message_ids(c, f);
        }
        SourceSpec::Capture(cap) => {
            if !(cap.speed.is_finite() && cap.speed >= 0.0) {
                c.fail(&k("speed"), format!("{} must be a finite number >= 0", cap.speed));
            } else if cap.speed == 0.0 && cap.loops == 0 {
                c.fail(
                    &k("loops"),
                    "0 (forever) with speed 0 would replay endlessly at one instant: give a count or a speed".into(),
                );
            }
            let t = |key| [Key("source"), Key("terminal"), Key(key)];
            c.range(&t("upload_delay_ms"), cap.terminal.upload_delay_ms, 0..=MAX_CLIENT_MS);
        }
    }
}

/// `source.message_ids`: terminal ids the fleet can send (placed at the bad item), and not
/// beside a `mix` it would ignore.
fn check_message_ids(c: &mut Checker, f: &crate::gateway::fleet::FleetConfig) {
    use crate::gateway::fleet::{MessageIds, Mix, message_ids_problem};
    let Some(ids) = &f.message_ids else { return };
    if let Some((i, m)) = message_ids_problem(ids) {
        match ids {
            MessageIds::List(l) if !l.is_empty() => c.fail(&[Key("source"), Key("message_ids"), Index(i)], m),
            _ => c.fail(&[Key("source"), Key("message_ids")], m),
        }
    }
    if f.mix != Mix::default() {
        c.fail(
            &[Key("source"), Key("mix")],
            "mix and message_ids both given: message_ids sends its ids in turn and ignores the mix weights; give one"
                .into(),
        );
    }
}

fn check_client(c: &mut Checker, cl: &super::ClientSection) {
    let k = |key| [Key("client"), Key(key)];
    let ms = 0..=MAX_CLIENT_MS;
    c.opt(&k("prefix_len"), cl.prefix_len, 0..=MAX_PREFIX_LEN);
    c.opt(&k("backoff_min_ms"), cl.backoff_min_ms, ms.clone());
    c.opt(&k("backoff_max_ms"), cl.backoff_max_ms, ms.clone());
    if let (Some(min), Some(max)) = (cl.backoff_min_ms, cl.backoff_max_ms)
        && min > max
    {
        c.fail(&k("backoff_max_ms"), format!("{max} is below backoff_min_ms {min}"));
    }
    if let Some(f) = cl.backoff_factor
        && !(f.is_finite() && (1.0..=100.0).contains(&f))
    {
        c.fail(&k("backoff_factor"), format!("{f} is out of range 1.0..=100.0"));
    }
    for (key, v) in [
        ("reset_after_ms", cl.reset_after_ms),
        ("retransmit_wait_ms", cl.retransmit_wait_ms),
    ] {
        c.opt(&k(key), v, ms.clone());
    }
    for (key, v) in [
        ("connect_timeout_ms", cl.connect_timeout_ms),
        ("ping_interval_ms", cl.ping_interval_ms),
        ("idle_timeout_ms", cl.idle_timeout_ms),
        ("confirm_timeout_ms", cl.confirm_timeout_ms),
        ("group_timeout_ms", cl.group_timeout_ms),
    ] {
        c.opt(&k(key), v, 1..=MAX_CLIENT_MS);
    }
    c.opt(&k("queue_capacity"), cl.queue_capacity, 1..=MAX_QUEUE_CAPACITY);
    c.opt(&k("max_resends"), cl.max_resends, 0..=1000);
}

/// Byte offset of the value at `path` in `text` (of the deepest key found, when the value itself
/// came from a default), `None` when the text does not parse as TOML.
pub(super) fn offset_of(text: &str, path: &[Seg]) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?;
    let mut table: &DeTable<'_> = doc.get_ref();
    let mut at = None;
    let mut segs = path.iter().peekable();
    while let Some(seg) = segs.next() {
        let Seg::Key(key) = seg else { return at };
        let (k, v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == *key)?;
        at = Some(k.span().start);
        let mut value = v;
        if let Some(Seg::Index(i)) = segs.peek() {
            let DeValue::Array(items) = value.get_ref() else {
                return at;
            };
            value = items.get(*i)?;
            at = Some(value.span().start);
            segs.next();
        }
        match value.get_ref() {
            DeValue::Table(t) => table = t,
            _ => return Some(value.span().start),
        }
    }
    at
}
