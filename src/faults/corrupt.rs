//! Frame rewrites that break exactly one thing: the check code, an escape, one byte, the frame's
//! end, its delimiters, the bytes between frames, the declared body length, the version flag.
//!
//! Each acts on frames (the trigger counts frames, see [`super::trigger`]) and leaves everything
//! it is not about valid: `corrupt_checksum` escapes the new check code (JT/T 808-2019 §4.4.1
//! escapes the check code too, JT808.md §1), `wrong_length` and `wrong_version` recompute the check
//! code so the header field is the only lie. Offsets in the log are message offsets (prefix
//! included) of the frame's opening 0x7E and of the byte changed.

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::fault::{Cx, Fault, FaultType, Msg, Out};
use super::frames::{self, Located, escape_content, inside_pair};
use super::limits::{MAX_GARBAGE_LEN, check, check_opt};
use super::order::per_frame;
use super::outcome::Outcome;
use crate::codec::frame::{ESCAPE, FLAG};

/// `corrupt_checksum` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorruptChecksum {
    /// XOR mask applied to the check code (non-zero); default: random 0x01..=0xFF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xor: Option<u8>,
}

/// `break_escape` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakEscape {
    /// The byte put after a 0x7D (anything but 0x01/0x02; default 0x03).
    #[serde(default = "three")]
    pub byte: u8,
}

fn three() -> u8 {
    0x03
}

/// `flip_byte` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlipByte {
    /// Offset within the frame (0 = opening 0x7E); default: random, between the delimiters, not
    /// inside an escape pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
    /// XOR mask (non-zero); default: random, never turning the byte into 0x7E or 0x7D.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xor: Option<u8>,
    /// Let a random offset land on a delimiter too (default false).
    #[serde(default)]
    pub allow_delimiters: bool,
}

/// `truncate` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Truncate {
    /// Bytes of the frame kept, counting the opening 0x7E (at least 1, less than the frame);
    /// default: random, keeping the delimiter and at least one byte, losing at least one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<usize>,
    /// Put a closing 0x7E after the kept bytes (default false: the next frame's opening 0x7E
    /// ends the stump, as after a lost TCP segment).
    #[serde(default)]
    pub close: bool,
}

/// Where `stray_flag` puts its 0x7E.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagPlace {
    /// Inside the frame: it becomes two invalid frames.
    #[default]
    Inside,
    /// Right after the frame (`7E .. 7E 7E`): an empty frame a client must skip silently.
    After,
}

/// `stray_flag` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrayFlag {
    /// Inside (default) or after the frame.
    #[serde(default)]
    pub place: FlagPlace,
    /// For `inside`: offset within the frame the 0x7E is inserted before (1..len-1); default
    /// random, never between a 0x7D and its partner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
}

/// `garbage` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Garbage {
    /// Random bytes to insert before the frame (default 8; never 0x7E or 0x7D).
    #[serde(default = "eight")]
    pub len: usize,
    /// Exact bytes to insert instead, as hex (they may contain anything, 0x7E included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
}

fn eight() -> usize {
    8
}

/// `wrong_length` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrongLength {
    /// Declared body length to write (0..=1023).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<u16>,
    /// Or: the real length plus this (default +1), modulo the 10-bit field. A delta of +-5 makes
    /// a 2013 frame look like a 2019 one without its flag (or back), which the codec accepts with a
    /// quirk (JT808.md §2.3); that is a different fault, so prefer other values.
    #[serde(default = "plus_one")]
    pub delta: i32,
}

fn plus_one() -> i32 {
    1
}

/// `wrong_version` parameters: none. Toggles body-properties bit 14.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrongVersion {}

impl FaultType for CorruptChecksum {
    fn validate(&self) -> Result<(), String> {
        if self.xor == Some(0) {
            return Err("`xor = 0` would change nothing".into());
        }
        Ok(())
    }

    fn build(&self) -> Option<Box<dyn Fault>> {
        Some(Box::new(self.clone()))
    }
}
impl FaultType for BreakEscape {
    fn validate(&self) -> Result<(), String> {
        if matches!(self.byte, 0x01 | 0x02) {
            return Err(format!("`byte = 0x{:02X}` is a valid escape (JT808.md §1)", self.byte));
        }
        Ok(())
    }

    fn build(&self) -> Option<Box<dyn Fault>> {
        Some(Box::new(self.clone()))
    }
}
impl FaultType for FlipByte {
    fn validate(&self) -> Result<(), String> {
        if self.xor == Some(0) {
            return Err("`xor = 0` would change nothing".into());
        }
        Ok(())
    }

    fn build(&self) -> Option<Box<dyn Fault>> {
        Some(Box::new(self.clone()))
    }
}
impl FaultType for Truncate {
    fn validate(&self) -> Result<(), String> {
        if self.keep == Some(0) {
            return Err("`keep` must be at least 1 (use drop to remove a frame)".into());
        }
        Ok(())
    }

    fn build(&self) -> Option<Box<dyn Fault>> {
        Some(Box::new(self.clone()))
    }
}
impl FaultType for Garbage {
    fn validate(&self) -> Result<(), String> {
        match &self.hex {
            Some(h) => match hex::decode(h.replace(' ', "")) {
                Ok(b) if b.len() > MAX_GARBAGE_LEN => Err(format!(
                    "`hex` holds {} bytes, at most {MAX_GARBAGE_LEN} allowed",
                    b.len()
                )),
                Ok(b) if !b.is_empty() => Ok(()),
                Ok(_) => Err("`hex` is empty".into()),
                Err(e) => Err(format!("`hex`: {e}")),
            },
            None => check("len", self.len, 1..=MAX_GARBAGE_LEN),
        }
    }

    fn build(&self) -> Option<Box<dyn Fault>> {
        Some(Box::new(self.clone()))
    }
}
impl FaultType for WrongLength {
    fn validate(&self) -> Result<(), String> {
        // The body-length field has 10 bits (JT808.md §2).
        check_opt("len", self.len, 0..=0x3FF)?;
        if self.len.is_none() && self.delta % 1024 == 0 {
            return Err("`delta` must change the length".into());
        }
        Ok(())
    }

    fn build(&self) -> Option<Box<dyn Fault>> {
        Some(Box::new(self.clone()))
    }
}

/// Rewrites every frame the trigger fires on with `f`, which returns `(range, bytes)` edits and
/// logs. Frames without an edit are kept.
fn rewrite(
    m: Msg,
    cx: &mut Cx<'_>,
    mut f: impl FnMut(&Located, &[u8], u64, &mut Cx<'_>) -> Option<(std::ops::Range<usize>, Vec<u8>)>,
) -> Vec<Out> {
    let idx = m.idx;
    let bytes = m.bytes.clone();
    match per_frame(&m, cx, |fr, _, _, cx| f(fr, &bytes, idx, cx)) {
        Some(b) => vec![Out::Send(Msg { bytes: b, ..m })],
        None => vec![Out::Send(m)],
    }
}

/// The header-rewriting faults: new content, check code recomputed, escaped again.
fn rewrite_header(fr: &Located, content: Vec<u8>) -> (std::ops::Range<usize>, Vec<u8>) {
    let check = crate::codec::frame::xor(&content);
    (fr.inner(), escape_content(&content, check))
}

impl Fault for CorruptChecksum {
    fn on_message(&mut self, m: Msg, cx: &mut Cx<'_>) -> Vec<Out> {
        let mask = self.xor;
        rewrite(m, cx, |fr, _, idx, cx| {
            let mask = mask.unwrap_or_else(|| cx.rng.random_range(1..=255u8));
            let old = fr.check();
            let new = old ^ mask;
            let inner = escape_content(&fr.content, new);
            let check_len = if matches!(new, FLAG | ESCAPE) { 2 } else { 1 };
            let at = fr.start + 1 + inner.len() - check_len;
            cx.record(
                Some(idx),
                Outcome::CorruptChecksum,
                vec![fr.start, at],
                format!("{}: check 0x{old:02X} -> 0x{new:02X}", fr.describe()),
            );
            Some((fr.inner(), inner))
        })
    }
}

impl Fault for BreakEscape {
    fn on_message(&mut self, m: Msg, cx: &mut Cx<'_>) -> Vec<Out> {
        let byte = self.byte;
        rewrite(m, cx, |fr, msg, idx, cx| {
            let pairs = frames::escape_pairs(msg, fr.inner());
            if pairs.is_empty() {
                // No escape to break: insert a broken one.
                let at = cx.rng.random_range(fr.start + 1..fr.end - 1);
                cx.record(
                    Some(idx),
                    Outcome::BreakEscape,
                    vec![fr.start, at],
                    format!("{}: inserted 7D {byte:02X}", fr.describe()),
                );
                return Some((at..at, vec![ESCAPE, byte]));
            }
            let at = pairs[cx.rng.random_range(0..pairs.len())];
            cx.record(
                Some(idx),
                Outcome::BreakEscape,
                vec![fr.start, at],
                format!("{}: 7D {:02X} -> 7D {byte:02X}", fr.describe(), msg[at + 1]),
            );
            Some((at + 1..at + 2, vec![byte]))
        })
    }
}

impl Fault for FlipByte {
    fn on_message(&mut self, m: Msg, cx: &mut Cx<'_>) -> Vec<Out> {
        let cfg = self.clone();
        rewrite(m, cx, |fr, msg, idx, cx| {
            let len = fr.end - fr.start;
            let at = match cfg.offset {
                Some(o) if o < len && (cfg.allow_delimiters || (o > 0 && o < len - 1)) => fr.start + o,
                Some(o) => {
                    cx.record(
                        Some(idx),
                        Outcome::NoTarget,
                        vec![fr.start],
                        format!(
                            "{}: offset {o} is outside the frame's {len} bytes or on a delimiter",
                            fr.describe()
                        ),
                    );
                    return None;
                }
                None => {
                    let lo = if cfg.allow_delimiters { fr.start } else { fr.start + 1 };
                    let hi = if cfg.allow_delimiters { fr.end } else { fr.end - 1 };
                    let candidates: Vec<usize> = (lo..hi)
                        .filter(|&i| msg[i] != ESCAPE && !inside_pair(msg, i) || msg[i] == FLAG)
                        .collect();
                    if candidates.is_empty() {
                        return None;
                    }
                    candidates[cx.rng.random_range(0..candidates.len())]
                }
            };
            let old = msg[at];
            let mask = match cfg.xor {
                Some(x) => x,
                None => {
                    let masks: Vec<u8> = (1..=255u8).filter(|x| !matches!(old ^ x, FLAG | ESCAPE)).collect();
                    masks[cx.rng.random_range(0..masks.len())]
                }
            };
            let new = old ^ mask;
            cx.record(
                Some(idx),
                Outcome::FlipByte,
                vec![fr.start, at],
                format!("{}: byte {} 0x{old:02X} -> 0x{new:02X}", fr.describe(), at - fr.start),
            );
            Some((at..at + 1, vec![new]))
        })
    }
}

impl Fault for Truncate {
    fn on_message(&mut self, m: Msg, cx: &mut Cx<'_>) -> Vec<Out> {
        let cfg = self.clone();
        rewrite(m, cx, |fr, _, idx, cx| {
            let len = fr.end - fr.start;
            let keep = match cfg.keep {
                Some(k) if k < len => k,
                Some(k) => {
                    cx.record(
                        Some(idx),
                        Outcome::NoTarget,
                        vec![fr.start],
                        format!("{}: keep {k} >= {len} bytes", fr.describe()),
                    );
                    return None;
                }
                None => cx.rng.random_range(2..(len - 1).max(3)),
            };
            let cut = fr.start + keep;
            cx.record(
                Some(idx),
                Outcome::Truncate,
                vec![fr.start, cut],
                format!(
                    "{}: {keep} of {len} bytes kept{}",
                    fr.describe(),
                    if cfg.close { ", closed" } else { "" }
                ),
            );
            Some((cut..fr.end, if cfg.close { vec![FLAG] } else { Vec::new() }))
        })
    }
}

impl Fault for StrayFlag {
    fn on_message(&mut self, m: Msg, cx: &mut Cx<'_>) -> Vec<Out> {
        let cfg = self.clone();
        rewrite(m, cx, |fr, msg, idx, cx| {
            let at = match cfg.place {
                FlagPlace::After => fr.end,
                FlagPlace::Inside => match cfg.offset {
                    Some(o) if o > 0 && o < fr.end - fr.start - 1 => fr.start + o,
                    Some(o) => {
                        cx.record(
                            Some(idx),
                            Outcome::NoTarget,
                            vec![fr.start],
                            format!("{}: offset {o} not inside", fr.describe()),
                        );
                        return None;
                    }
                    None => {
                        let c: Vec<usize> = (fr.start + 1..fr.end - 1).filter(|&i| !inside_pair(msg, i)).collect();
                        c[cx.rng.random_range(0..c.len())]
                    }
                },
            };
            cx.record(
                Some(idx),
                Outcome::StrayFlag,
                vec![fr.start, at],
                format!("{}: 7E inserted {:?}", fr.describe(), cfg.place).to_lowercase(),
            );
            Some((at..at, vec![FLAG]))
        })
    }
}

impl Fault for Garbage {
    fn on_message(&mut self, m: Msg, cx: &mut Cx<'_>) -> Vec<Out> {
        let fixed = self.hex.as_ref().and_then(|h| hex::decode(h.replace(' ', "")).ok());
        let len = self.len;
        rewrite(m, cx, |fr, _, idx, cx| {
            let bytes = fixed.clone().unwrap_or_else(|| {
                (0..len)
                    .map(|_| {
                        loop {
                            let b = cx.rng.random::<u8>();
                            if b != FLAG && b != ESCAPE {
                                break b;
                            }
                        }
                    })
                    .collect()
            });
            cx.record(
                Some(idx),
                Outcome::Garbage,
                vec![fr.start],
                format!(
                    "{} bytes before {}: {}",
                    bytes.len(),
                    fr.describe(),
                    hex::encode(&bytes)
                ),
            );
            let (at, reopen) = fr.front();
            let mut bytes = bytes;
            if reopen {
                bytes.push(FLAG);
            }
            Some((at..at, bytes))
        })
    }
}

impl Fault for WrongLength {
    fn on_message(&mut self, m: Msg, cx: &mut Cx<'_>) -> Vec<Out> {
        let cfg = self.clone();
        rewrite(m, cx, |fr, _, idx, cx| {
            let props = u16::from_be_bytes([fr.content[2], fr.content[3]]);
            let old = props & 0x03FF;
            let new = match cfg.len {
                Some(l) => l,
                None => (old as i32 + cfg.delta).rem_euclid(1024) as u16,
            };
            if new == old {
                cx.record(
                    Some(idx),
                    Outcome::NoTarget,
                    vec![fr.start],
                    format!("{}: length already {old}", fr.describe()),
                );
                return None;
            }
            let mut content = fr.content.clone();
            content[2..4].copy_from_slice(&((props & !0x03FF) | new).to_be_bytes());
            cx.record(
                Some(idx),
                Outcome::WrongLength,
                vec![fr.start, fr.wire_offset(2)],
                format!("{}: declared body length {old} -> {new}", fr.describe()),
            );
            Some(rewrite_header(fr, content))
        })
    }
}

impl Fault for WrongVersion {
    fn on_message(&mut self, m: Msg, cx: &mut Cx<'_>) -> Vec<Out> {
        rewrite(m, cx, |fr, _, idx, cx| {
            let mut content = fr.content.clone();
            content[2] ^= 0x40;
            let on = content[2] & 0x40 != 0;
            cx.record(
                Some(idx),
                Outcome::WrongVersion,
                vec![fr.start, fr.wire_offset(2)],
                format!(
                    "{}: version flag (bit 14) {} -> {}",
                    fr.describe(),
                    u8::from(!on),
                    u8::from(on)
                ),
            );
            Some(rewrite_header(fr, content))
        })
    }
}

impl FaultType for StrayFlag {
    fn build(&self) -> Option<Box<dyn Fault>> {
        Some(Box::new(self.clone()))
    }
}

impl FaultType for WrongVersion {
    fn build(&self) -> Option<Box<dyn Fault>> {
        Some(Box::new(self.clone()))
    }
}
