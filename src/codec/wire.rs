//! Primitives for reading and writing message bodies: bounded big-endian reads that fail with the
//! field name and body byte offset, packed BCD, BCD times, and GBK strings. No allocation on the
//! read path except where a string is returned.
//!
//! Modelled on quinn-proto's `coding.rs`: one small cursor ([`Reader`]) and one small error
//! ([`WireError`]). Writing needs no helper beyond `Vec::extend_from_slice(&v.to_be_bytes())`,
//! except for the two types that carry their own wire form, [`BcdTime`] and [`Text`].
//!
//! JT808.md conventions: all multi-byte integers are big-endian; BCD[n] is packed BCD, two digits a
//! byte; STRING is GBK.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// Why a body did not parse as its message id says. Every variant names the field and the byte
/// offset within the (reassembled) body, so the `Body::Invalid` text points at the exact byte.
/// Whose fault: the sender's. The message is kept raw; the stream goes on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// The body ended inside a field.
    #[error("{field} at body byte {offset}: needs {need} bytes, {have} left")]
    UnexpectedEnd {
        /// The field being read.
        field: &'static str,
        /// Body offset where the field starts.
        offset: usize,
        /// Bytes the field needs.
        need: usize,
        /// Bytes that were left.
        have: usize,
    },
    /// Bytes after the last field of a body with a fixed layout.
    #[error("{field} at body byte {offset}: {extra} bytes left over after the last field")]
    Trailing {
        /// The last field read (what the extra bytes follow).
        field: &'static str,
        /// Body offset of the first extra byte.
        offset: usize,
        /// How many extra bytes.
        extra: usize,
    },
    /// A field whose value contradicts the rest of the body (a count that does not fit).
    #[error("{field} at body byte {offset}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Body offset of the field.
        offset: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// A bounded cursor over body bytes. Offsets in errors are `base + position`, so a nested block
/// (a location inside 0x0704 or 0x0801) reports offsets within the whole body.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    /// A reader over a whole body.
    #[inline]
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0, base: 0 }
    }

    /// A reader over a part of a body that starts at body offset `base`.
    #[inline]
    pub fn at(buf: &'a [u8], base: usize) -> Reader<'a> {
        Reader { buf, pos: 0, base }
    }

    /// The body offset of the next byte.
    #[inline]
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// Bytes not read yet.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True when every byte was read.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// Reads `n` bytes.
    #[inline]
    pub fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(self.end(field, n));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Reads a fixed-size array.
    #[inline]
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], WireError> {
        let s = self.bytes(N, field)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Reads a BYTE.
    #[inline]
    pub fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        let b = *self.buf.get(self.pos).ok_or_else(|| self.end(field, 1))?;
        self.pos += 1;
        Ok(b)
    }

    /// Reads a big-endian WORD.
    #[inline]
    pub fn u16(&mut self, field: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// Reads a big-endian DWORD.
    #[inline]
    pub fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// Reads big-endian 64BITS.
    #[inline]
    pub fn u64(&mut self, field: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// Reads a BCD[6] time (YYMMDDhhmmss).
    #[inline]
    pub fn bcd_time(&mut self, field: &'static str) -> Result<BcdTime, WireError> {
        Ok(BcdTime(self.array(field)?))
    }

    /// Reads a fixed-width STRING of `n` bytes (NUL padding trimmed, see [`Text::from_fixed`]).
    pub fn fixed_text(&mut self, n: usize, field: &'static str) -> Result<Text, WireError> {
        Ok(Text::from_fixed(self.bytes(n, field)?))
    }

    /// Reads a STRING of `n` bytes with no padding.
    pub fn text(&mut self, n: usize, field: &'static str) -> Result<Text, WireError> {
        Ok(Text::from_bytes(self.bytes(n, field)?))
    }

    /// Reads a BYTE length `n` and then a STRING of `n` bytes (0x9101, 0x9206, 0x0102 in 2019).
    pub fn len8_text(&mut self, field: &'static str) -> Result<Text, WireError> {
        let n = self.u8(field)? as usize;
        self.text(n, field)
    }

    /// Reads a WORD length `n` and then a STRING of `n` bytes (area names, 0x8302 answers).
    pub fn len16_text(&mut self, field: &'static str) -> Result<Text, WireError> {
        let n = self.u16(field)? as usize;
        self.text(n, field)
    }

    /// Reads a count (BYTE, WORD or DWORD as `read` gives it) and then that many items, each
    /// read by `item`; a count larger than the bytes can hold fails on the first missing item.
    pub fn counted<T>(
        &mut self,
        count: usize,
        mut item: impl FnMut(&mut Reader<'a>) -> Result<T, WireError>,
    ) -> Result<Vec<T>, WireError> {
        // Never trust a count for the allocation: at most one item per byte left.
        let mut v = Vec::with_capacity(count.min(self.remaining()));
        for _ in 0..count {
            v.push(item(self)?);
        }
        Ok(v)
    }

    /// Takes the next `n` bytes, which the caller has checked are there (fewer when not).
    #[inline]
    pub fn rest_prefix(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.remaining());
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        s
    }

    /// Takes every byte left.
    #[inline]
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    /// Fails when bytes are left; `field` names the last field of the layout.
    pub fn finish(&self, field: &'static str) -> Result<(), WireError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(WireError::Trailing {
                field,
                offset: self.offset(),
                extra: self.remaining(),
            })
        }
    }

    /// An [`WireError::Invalid`] at the current offset.
    pub fn invalid(&self, field: &'static str, reason: impl Into<String>) -> WireError {
        WireError::Invalid {
            field,
            offset: self.offset(),
            reason: reason.into(),
        }
    }

    #[cold]
    fn end(&self, field: &'static str, need: usize) -> WireError {
        WireError::UnexpectedEnd {
            field,
            offset: self.offset(),
            need,
            have: self.remaining(),
        }
    }
}

/// A fixed-size field that reads and writes itself, so a flat body (a run of BYTE, WORD, DWORD,
/// 64BITS, BCD[6] and BYTE[n] fields) is declared as its field list (`flat_body!` in
/// codec/body/codec.rs) instead of hand-written read and write code per message.
pub trait WireField: Sized {
    /// Reads the field named `field`.
    fn read(r: &mut Reader<'_>, field: &'static str) -> Result<Self, WireError>;
    /// Appends the field's bytes.
    fn write(&self, out: &mut Vec<u8>);
}

macro_rules! int_field {
    ($($t:ty => $read:ident),*) => {$(
        impl WireField for $t {
            #[inline]
            fn read(r: &mut Reader<'_>, field: &'static str) -> Result<Self, WireError> {
                r.$read(field)
            }
            #[inline]
            fn write(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
        }
    )*};
}
int_field!(u8 => u8, u16 => u16, u32 => u32, u64 => u64);

impl WireField for BcdTime {
    fn read(r: &mut Reader<'_>, field: &'static str) -> Result<Self, WireError> {
        r.bcd_time(field)
    }
    fn write(&self, out: &mut Vec<u8>) {
        self.encode(out);
    }
}

impl<const N: usize> WireField for [u8; N] {
    fn read(r: &mut Reader<'_>, field: &'static str) -> Result<Self, WireError> {
        r.array(field)
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

/// True when every nibble is a decimal digit.
#[inline]
pub fn is_bcd(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| b >> 4 <= 9 && b & 0x0F <= 9)
}

/// The digits of packed BCD, or `None` when a nibble is above 9.
pub fn bcd_digits(bytes: &[u8]) -> Option<String> {
    if !is_bcd(bytes) {
        return None;
    }
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(b'0' + (b >> 4)));
        s.push(char::from(b'0' + (b & 0x0F)));
    }
    Some(s)
}

/// Packs decimal digits as BCD (two a byte; an odd count is left-padded with 0). `None` when a
/// character is not a digit.
pub fn digits_to_bcd(digits: &str) -> Option<Vec<u8>> {
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut nibbles: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
    if nibbles.len() % 2 == 1 {
        nibbles.insert(0, 0);
    }
    Some(nibbles.chunks(2).map(|p| (p[0] << 4) | p[1]).collect())
}

/// A BCD[6] time, YYMMDDhhmmss, GMT+8 (JT808.md §5.1). Kept as its 6 bytes, so any value — even
/// one that is not BCD — re-encodes exactly.
///
/// JSON: `"2020-07-07 19:23:59"` (century 20 assumed, as the wire carries only YY) when every nibble
/// is a digit — also for the all-zero "no bound" of 0x9205, which shows as `"2000-00-00 00:00:00"`
/// — otherwise the 12 hex digits (`"20071A192359"`). Both forms are accepted back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BcdTime(pub [u8; 6]);

impl BcdTime {
    /// Appends the 6 bytes.
    #[inline]
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }

    /// Parses `"YYYY-MM-DD hh:mm:ss"` (year 2000-2099) or 12 hex digits.
    pub fn parse(s: &str) -> Result<BcdTime, String> {
        let b = s.as_bytes();
        let shape_ok = b.len() == 19
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b' '
            && b[13] == b':'
            && b[16] == b':'
            && s.starts_with("20");
        if shape_ok {
            let digits: String = [&s[2..4], &s[5..7], &s[8..10], &s[11..13], &s[14..16], &s[17..19]].concat();
            if let Some(v) = digits_to_bcd(&digits) {
                let mut a = [0u8; 6];
                a.copy_from_slice(&v);
                return Ok(BcdTime(a));
            }
        }
        let mut a = [0u8; 6];
        if hex::decode_to_slice(s, &mut a).is_ok() {
            return Ok(BcdTime(a));
        }
        Err(format!(
            "time {s:?} is neither \"YYYY-MM-DD hh:mm:ss\" (2000-2099) nor 12 hex digits"
        ))
    }
}

impl fmt::Display for BcdTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.0;
        if is_bcd(a) {
            write!(
                f,
                "20{:02x}-{:02x}-{:02x} {:02x}:{:02x}:{:02x}",
                a[0], a[1], a[2], a[3], a[4], a[5]
            )
        } else {
            write!(f, "{}", hex::encode_upper(a))
        }
    }
}

impl Serialize for BcdTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BcdTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        BcdTime::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Decodes GBK (encoding_rs, which decodes GBK as its superset GB18030). The flag is true when a
/// byte sequence was not GBK and was replaced with U+FFFD.
pub fn gbk_decode(bytes: &[u8]) -> (Cow<'_, str>, bool) {
    if bytes.is_ascii() {
        // ASCII is GBK's single-byte range; skips the decoder on the common case.
        return (Cow::Borrowed(std::str::from_utf8(bytes).unwrap_or_default()), false);
    }
    encoding_rs::GBK.decode_without_bom_handling(bytes)
}

/// Encodes a string as GBK. A character GBK cannot represent becomes an HTML numeric reference
/// (encoding_rs behaviour); the flag is true when that happened.
pub fn gbk_encode(s: &str) -> (Cow<'_, [u8]>, bool) {
    if s.is_ascii() {
        return (Cow::Borrowed(s.as_bytes()), false);
    }
    let (bytes, _, errors) = encoding_rs::GBK.encode(s);
    (bytes, errors)
}

/// A GBK STRING field: its text, plus the wire bytes when the text alone would not re-encode to
/// them (invalid GBK, or padding other than trailing NULs, e.g. leading NULs or NULs inside).
///
/// A fixed-width field (JT808.md §6: "the standard pads with 0x00") decodes with its trailing and
/// leading NULs trimmed; ASCII "0" padding is text and stays ("000Koike002").
///
/// JSON: the plain string when `raw` is not needed, else `{"text": "...", "raw": "<hex>"}`. Both
/// forms are accepted back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text {
    /// The decoded text.
    pub text: String,
    /// The exact wire bytes, kept only when `text` does not re-encode to them.
    pub raw: Option<Vec<u8>>,
}

impl Text {
    /// A text with no special wire form.
    pub fn new(s: impl Into<String>) -> Text {
        Text {
            text: s.into(),
            raw: None,
        }
    }

    /// A variable-length STRING (no padding).
    pub fn from_bytes(bytes: &[u8]) -> Text {
        let (s, errors) = gbk_decode(bytes);
        let exact = !errors && (bytes.is_ascii() || gbk_encode(&s).0.as_ref() == bytes);
        Text {
            text: s.into_owned(),
            raw: (!exact).then(|| bytes.to_vec()),
        }
    }

    /// A fixed-width STRING: NULs trimmed at both ends. `raw` is kept unless right-padding the
    /// text with NULs gives the same bytes.
    pub fn from_fixed(bytes: &[u8]) -> Text {
        let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let start = bytes[..end].iter().position(|&b| b != 0).unwrap_or(end);
        let mut t = Text::from_bytes(&bytes[start..end]);
        if start != 0 || t.raw.is_some() {
            t.raw = Some(bytes.to_vec());
        }
        t
    }

    /// The text as a `&str`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The wire bytes without padding (raw bytes when kept).
    pub fn wire_bytes(&self) -> Cow<'_, [u8]> {
        match &self.raw {
            Some(r) => Cow::Borrowed(r),
            None => gbk_encode(&self.text).0,
        }
    }

    /// Appends the bytes of a variable-length STRING.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.wire_bytes());
    }

    /// Appends exactly `width` bytes: kept raw bytes, or the GBK text right-padded with NULs (cut
    /// when longer, as the field cannot grow).
    pub fn encode_fixed(&self, width: usize, out: &mut Vec<u8>) {
        let b = self.wire_bytes();
        let n = b.len().min(width);
        out.extend_from_slice(&b[..n]);
        out.resize(out.len() + (width - n), 0);
    }

    /// Appends a BYTE length and the STRING (the length is cut at 255 with the bytes).
    pub fn encode_len8(&self, out: &mut Vec<u8>) {
        let b = self.wire_bytes();
        let n = b.len().min(255);
        out.push(n as u8);
        out.extend_from_slice(&b[..n]);
    }
}

impl Text {
    /// Appends a WORD length and the STRING (the length is cut at 65,535 with the bytes).
    pub fn encode_len16(&self, out: &mut Vec<u8>) {
        let b = self.wire_bytes();
        let n = b.len().min(u16::MAX as usize);
        out.extend_from_slice(&(n as u16).to_be_bytes());
        out.extend_from_slice(&b[..n]);
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text::new(s)
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.raw {
            None => s.serialize_str(&self.text),
            Some(raw) => {
                use serde::ser::SerializeStruct;
                let mut st = s.serialize_struct("Text", 2)?;
                st.serialize_field("text", &self.text)?;
                st.serialize_field("raw", &hex::encode_upper(raw))?;
                st.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Plain(String),
            Full {
                text: String,
                #[serde(default, with = "opt_hex")]
                raw: Option<Vec<u8>>,
            },
        }
        Ok(match Form::deserialize(d)? {
            Form::Plain(text) => Text { text, raw: None },
            Form::Full { text, raw } => Text { text, raw },
        })
    }
}

/// Serde helper: `Option<Vec<u8>>` as an optional hex string.
mod opt_hex {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => hex::decode(s).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

/// Serde helper: bytes as an upper-case hex string (accepts either case back).
pub mod hex_upper {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises as upper-case hex.
    pub fn serialize<S: Serializer, T: AsRef<[u8]>>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode_upper(v))
    }

    /// Accepts hex of either case.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        hex::decode(s.as_ref()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded_and_name_field_and_offset() {
        let mut r = Reader::at(&[0x12, 0x34, 0x56], 10);
        assert_eq!(r.u16("a").unwrap(), 0x1234);
        let e = r.u32("lat").unwrap_err();
        assert_eq!(
            e,
            WireError::UnexpectedEnd {
                field: "lat",
                offset: 12,
                need: 4,
                have: 1
            }
        );
        assert_eq!(e.to_string(), "lat at body byte 12: needs 4 bytes, 1 left");
        assert_eq!(r.u8("b").unwrap(), 0x56);
        assert!(r.finish("b").is_ok());
    }

    #[test]
    fn trailing_bytes_are_reported() {
        let mut r = Reader::new(&[1, 2, 3]);
        r.u8("x").unwrap();
        assert_eq!(
            r.finish("x").unwrap_err().to_string(),
            "x at body byte 1: 2 bytes left over after the last field"
        );
    }

    #[test]
    fn bcd_time_shows_a_date_or_hex_and_parses_both_back() {
        let t = BcdTime([0x20, 0x07, 0x07, 0x19, 0x23, 0x59]);
        assert_eq!(t.to_string(), "2020-07-07 19:23:59");
        assert_eq!(BcdTime::parse("2020-07-07 19:23:59").unwrap(), t);
        let bad = BcdTime([0x20, 0x07, 0x1A, 0x19, 0x23, 0x59]);
        assert_eq!(bad.to_string(), "20071A192359");
        assert_eq!(BcdTime::parse("20071A192359").unwrap(), bad);
        assert!(BcdTime::parse("2020-7-7").is_err());
        assert_eq!(BcdTime([0; 6]).to_string(), "2000-00-00 00:00:00");
    }

    #[test]
    fn bcd_digits_round_trip() {
        assert_eq!(bcd_digits(&[0x01, 0x23]).as_deref(), Some("0123"));
        assert_eq!(bcd_digits(&[0x0A]), None);
        assert_eq!(digits_to_bcd("123").unwrap(), [0x01, 0x23]);
    }

    #[test]
    fn gbk_text_round_trips() {
        let t = Text::from_bytes(&[0xB2, 0xE2, b'A', b'1']);
        assert_eq!(t.text, "测A1");
        assert_eq!(t.raw, None);
        let mut out = Vec::new();
        t.encode(&mut out);
        assert_eq!(out, [0xB2, 0xE2, b'A', b'1']);
    }

    #[test]
    fn fixed_text_trims_nul_padding_and_keeps_odd_padding_raw() {
        let plain = Text::from_fixed(b"yzh\0\0");
        assert_eq!((plain.text.as_str(), plain.raw.is_none()), ("yzh", true));
        let mut out = Vec::new();
        plain.encode_fixed(5, &mut out);
        assert_eq!(out, b"yzh\0\0");

        let left = Text::from_fixed(b"\0\0yzh");
        assert_eq!(left.text, "yzh");
        out.clear();
        left.encode_fixed(5, &mut out);
        assert_eq!(out, b"\0\0yzh", "left padding re-encodes exactly");

        let zeros = Text::from_fixed(b"000Koike002");
        assert_eq!((zeros.text.as_str(), zeros.raw.is_none()), ("000Koike002", true));
    }

    #[test]
    fn invalid_gbk_keeps_raw_bytes() {
        let t = Text::from_bytes(&[0x81]);
        assert!(t.raw.is_some());
        let mut out = Vec::new();
        t.encode(&mut out);
        assert_eq!(out, [0x81]);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"{"text":"�","raw":"81"}"#);
        assert_eq!(serde_json::from_str::<Text>(&json).unwrap(), t);
        assert_eq!(serde_json::from_str::<Text>(r#""abc""#).unwrap(), Text::new("abc"));
    }
}
