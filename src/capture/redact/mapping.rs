//! The keyed mapping of redaction: a SIM's stand-in and the position offset from HMAC-SHA256 of
//! the key, and the in-place body rewrites per message id (the table of the parent module). Pure:
//! no I/O and no framing, so each rewrite is tested on a body alone.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use ring::hmac;

use super::*;

/// The keyed rewriting of phones and coordinates, and the body rewrites. Pure: no I/O.
pub struct Redactor {
    key: hmac::Key,
    /// Original significant digits -> stand-in.
    pub(super) phones: HashMap<String, String>,
    /// Stand-ins handed out (to keep them distinct).
    used: BTreeSet<String>,
    d_lat: u32,
    d_lng: u32,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("terminals", &self.phones.len())
            .finish()
    }
}

/// Tries for a stand-in not yet handed out before two numbers may share one.
const MAX_DISTINCT_ATTEMPTS: u32 = 64;

const LAT_RANGE: u32 = 90_000_000;
const LNG_RANGE: u32 = 180_000_000;

impl Redactor {
    /// A redactor keyed with `key`.
    pub fn new(key: &[u8]) -> Redactor {
        let key = hmac::Key::new(hmac::HMAC_SHA256, key);
        let tag = hmac::sign(&key, b"jt808-redact/v1/position");
        let t = tag.as_ref();
        let word = |i: usize| u32::from_be_bytes([t[i], t[i + 1], t[i + 2], t[i + 3]]);
        // At least 10 degrees on each axis, so no moved coordinate lands near its original.
        let d_lat = 10_000_000 + word(0) % (LAT_RANGE - 20_000_000);
        let d_lng = 10_000_000 + word(4) % (LNG_RANGE - 20_000_000);
        Redactor {
            key,
            phones: HashMap::new(),
            used: BTreeSet::new(),
            d_lat,
            d_lng,
        }
    }

    /// 8 hex digits naming the key without revealing it.
    pub fn key_id(&self) -> String {
        hex::encode(&hmac::sign(&self.key, b"jt808-redact/v1/key-id").as_ref()[..4])
    }

    /// The position offset in 10^-6 degrees (latitude, longitude).
    pub fn offset(&self) -> (u32, u32) {
        (self.d_lat, self.d_lng)
    }

    /// The stand-in for a phone's significant digits (as [`Phone`]'s `Display` gives them): as many
    /// digits, the first not 0 (so the stand-in has the same significant length), never the
    /// original, and not one already handed to another number (unless a very short number leaves
    /// no other choice). "0" (an all-zero phone) stays. Which stand-ins are taken depends on the
    /// order numbers first appear, so only a clash (rare: one in 10^10 for an 11-digit SIM) can
    /// make one SIM map differently in two captures.
    pub fn phone(&mut self, digits: &str) -> String {
        if let Some(s) = self.phones.get(digits) {
            return s.clone();
        }
        if digits == "0" {
            return digits.to_string();
        }
        let mut attempt = 0u32;
        let stand_in = loop {
            let msg = format!("jt808-redact/v1/phone/{digits}/{attempt}");
            let tag = hmac::sign(&self.key, msg.as_bytes());
            let t = tag.as_ref();
            let s: String = (0..digits.len())
                .map(|i| {
                    // Two tag bytes per digit (20 digits at most, 32 bytes: cycle for the rest).
                    let v = u16::from_be_bytes([t[(2 * i) % 32], t[(2 * i + 1) % 32]]);
                    let d = if i == 0 { 1 + v % 9 } else { v % 10 };
                    char::from(b'0' + d as u8)
                })
                .collect();
            // Distinct from every stand-in handed out, unless the digit space is nearly used up
            // (very short numbers): then only "not the original" is kept, which always ends.
            if s != digits && (attempt >= MAX_DISTINCT_ATTEMPTS || !self.used.contains(&s)) {
                break s;
            }
            attempt += 1;
        };
        self.used.insert(stand_in.clone());
        self.phones.insert(digits.to_string(), stand_in.clone());
        stand_in
    }

    fn move_coord(&self, body: &mut [u8], at: usize, delta: u32, range: u32, report: &mut RedactReport) -> bool {
        let Some(b) = body.get_mut(at..at + 4) else {
            // Cut by the end of the body: what is there goes.
            if let Some(rest) = body.get_mut(at..) {
                if !rest.is_empty() {
                    report.positions_cut += 1;
                }
                rest.fill(0);
            }
            return false;
        };
        let v = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        if v != 0 {
            let moved = (v % range + delta) % range;
            // A moved coordinate of exactly 0 would read as "no fix": step off it.
            let moved = if moved == 0 { 1 } else { moved };
            b.copy_from_slice(&moved.to_be_bytes());
        }
        true
    }

    /// Moves the lat/lng of a 0x0200 basic block starting at `at` (lat at +8, lng at +12).
    fn move_position(&self, body: &mut [u8], at: usize, report: &mut RedactReport) {
        let lat = self.move_coord(body, at + 8, self.d_lat, LAT_RANGE, report);
        let lng = self.move_coord(body, at + 12, self.d_lng, LNG_RANGE, report);
        if lat && lng {
            report.positions += 1;
        }
    }

    /// Rewrites a whole (or reassembled) body of `msg_id` under a header of `version`.
    pub fn body(&self, msg_id: u16, version: Version, body: &mut [u8], report: &mut RedactReport) {
        match msg_id {
            0x0200 => self.move_position(body, 0, report),
            0x0801 => self.move_position(body, 8, report),
            0x0704 => {
                // count WORD | type BYTE | count x [len WORD | 0x0200 body]; items read to the end
                // of the body, the last one possibly cut (JT808.md §5.5).
                let mut at = 3;
                while at + 2 <= body.len() {
                    let len = usize::from(u16::from_be_bytes([body[at], body[at + 1]]));
                    let start = at + 2;
                    let end = (start + len).min(body.len());
                    self.move_position(&mut body[start..end], 0, report);
                    at = start + len;
                }
            }
            0x0100 => {
                let layout = Register::layout_for(version, body);
                let (maker, model, tid) = match layout {
                    Version::V2011 => (5, 8, 7),
                    Version::V2013 => (5, 20, 7),
                    Version::V2019 => (11, 30, 30),
                };
                let tid_at = 4 + maker + model;
                if blank(body, tid_at, tid_at + tid, b'*') {
                    report.terminal_ids += 1;
                }
                let plate_at = tid_at + tid + 1;
                if blank(body, plate_at, body.len(), b'*') {
                    report.plates += 1;
                }
            }
            0x0102 => {
                if !version.is_2019() {
                    if blank(body, 0, body.len(), b'*') {
                        report.auth_codes += 1;
                    }
                } else if let Some(&n) = body.first() {
                    let code_end = 1 + usize::from(n);
                    if blank(body, 1, code_end, b'*') {
                        report.auth_codes += 1;
                    }
                    if blank(body, code_end, code_end + 15, b'0') {
                        report.imeis += 1;
                    }
                }
            }
            // reply serial WORD | result BYTE | auth code (rest).
            0x8100 if blank(body, 3, body.len(), b'*') => report.auth_codes += 1,
            0x9206 => {
                // server k | STRING[k] | port WORD | user l | STRING[l] | password m | STRING[m] | ...
                let mut at = 0;
                for skip_after in [2usize, 0, 0] {
                    let Some(&n) = body.get(at) else { break };
                    let end = at + 1 + usize::from(n);
                    if blank(body, at + 1, end, b'*') {
                        report.ftp_fields += 1;
                    }
                    at = end + skip_after;
                }
            }
            _ => {}
        }
    }
}

/// Replaces every non-NUL byte of `body[from..to]` (clipped to the body) with `with`. True when
/// anything was there to blank.
fn blank(body: &mut [u8], from: usize, to: usize, with: u8) -> bool {
    let to = to.min(body.len());
    if from >= to {
        return false;
    }
    let mut any = false;
    for b in &mut body[from..to] {
        if *b != 0 {
            *b = with;
            any = true;
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_mapping_is_pinned() {
        // The stand-in is part of the output format: a change here changes every redacted capture
        // (and the bundled one), so it must be deliberate.
        let mut r = Redactor::new(b"pinned");
        let a = r.phone("13800138000");
        assert_eq!(a.len(), 11);
        assert_eq!(r.phone("13800138000"), a, "the same SIM, the same stand-in");
        assert_eq!(
            Redactor::new(b"pinned").phone("13800138000"),
            a,
            "a fresh redactor agrees"
        );
        assert_eq!((a.as_str(), r.key_id().as_str(), r.offset()), PINNED);
        assert_eq!(r.phone("0"), "0");
        assert_ne!(Redactor::new(b"other").phone("13800138000"), a);
    }

    const PINNED: (&str, &str, (u32, u32)) = ("11724182669", "79df92d3", (48_731_718, 140_601_776));

    #[test]
    fn stand_ins_are_distinct_and_keep_their_length() {
        let mut r = Redactor::new(b"k");
        let mut seen = BTreeSet::new();
        for i in 0..600u32 {
            let p = format!("{}", 1000 + i % 300);
            let s = r.phone(&p);
            assert_eq!(s.len(), p.len());
            assert_ne!(s, p);
            assert!(!s.starts_with('0'));
            seen.insert((p, s));
        }
        let stand_ins: BTreeSet<&String> = seen.iter().map(|(_, s)| s).collect();
        assert_eq!(stand_ins.len(), 300, "300 numbers, 300 distinct stand-ins");
        // One-digit numbers exhaust the space: every one still gets a stand-in other than itself.
        for d in 1..=9 {
            let p = d.to_string();
            assert_ne!(r.phone(&p), p);
        }
    }

    #[test]
    fn coordinates_move_by_the_offset_wrap_and_zero_stays() {
        let r = Redactor::new(b"k");
        let (dl, dn) = r.offset();
        let mut report = RedactReport::default();
        let mut body = location_block(22_000_000, 179_999_999);
        r.body(0x0200, Version::V2013, &mut body, &mut report);
        let word = |b: &[u8], i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
        assert_eq!(word(&body, 8), (22_000_000 + dl) % LAT_RANGE);
        assert_eq!(word(&body, 12), (179_999_999 + dn) % LNG_RANGE);
        let mut zero = location_block(0, 0);
        r.body(0x0200, Version::V2013, &mut zero, &mut report);
        assert_eq!(zero, location_block(0, 0), "no fix stays no fix");
        assert_eq!(report.positions, 2);
        // A body cut inside the longitude: what is there is zeroed.
        let mut cut = location_block(1, 2)[..14].to_vec();
        r.body(0x0200, Version::V2013, &mut cut, &mut report);
        assert_eq!(&cut[12..], [0, 0]);
        assert_eq!(report.positions_cut, 1);
    }

    fn location_block(lat: u32, lng: u32) -> Vec<u8> {
        let mut b = vec![0; 8];
        b.extend_from_slice(&lat.to_be_bytes());
        b.extend_from_slice(&lng.to_be_bytes());
        b.resize(28, 0);
        b
    }
}
