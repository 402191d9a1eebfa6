//! The message header: 2011/2013 and 2019 layouts, body properties, the BCD phone, the sub-packet item.
//!
//! Byte layout (JT808.md §2.1):
//!
//! ```text
//! 2013: id WORD | props WORD |                  phone BCD[6]  | serial WORD | [total WORD | index WORD]
//! 2019: id WORD | props WORD | version BYTE |   phone BCD[10] | serial WORD | [total WORD | index WORD]
//! ```
//!
//! Body properties (JT/T 808-2019 §4.4.3, 表 2): bits 0-9 body length, 10-12 encryption, 13 sub-packet,
//! 14 version flag ("版本标识", reserved before 2019), 15 reserved.

use serde::{Serialize, Serializer};
use std::fmt;

use super::error::FrameError;

/// Which revision of JT/T 808 a message follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Version {
    /// JT/T 808-2011. Indistinguishable from 2013 by its header; only body layouts (0x0100) tell.
    V2011,
    /// JT/T 808-2013 (the default for a header with bit 14 clear).
    #[default]
    V2013,
    /// JT/T 808-2019: version byte and a 10-byte phone in the header.
    V2019,
}

impl Version {
    /// The year as text, as it appears in transcripts and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V2011 => "2011",
            Version::V2013 => "2013",
            Version::V2019 => "2019",
        }
    }

    /// True for the 2019 header layout.
    pub fn is_2019(self) -> bool {
        self == Version::V2019
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Version {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "2011" => Ok(Version::V2011),
            "2013" => Ok(Version::V2013),
            "2019" => Ok(Version::V2019),
            other => Err(format!(
                "unknown JT/T 808 version {other:?} (expected 2011, 2013 or 2019)"
            )),
        }
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A terminal's phone (SIM) number: the raw BCD digits plus the width they came in.
///
/// JT808.md §2.4: all three anchor implementations strip leading zeros, so the 12-digit 2013 form and
/// the 20-digit 2019 form of one SIM are the same terminal. Equality and hashing follow that
/// normalised form; the raw digits are kept for re-encoding.
///
/// The 20 nibbles are kept packed, left-padded with zeros, as one 80-bit number (`hi` the top 16
/// bits): every form of a number packs the same, so equality, hashing and order (which is numeric
/// order) are plain integer operations — the reassembly map compares keys on every packet.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone {
    hi: u16,
    lo: u64,
}

impl Phone {
    fn from_value(v: u128) -> Phone {
        Phone {
            hi: (v >> 64) as u16,
            lo: v as u64,
        }
    }

    fn value(&self) -> u128 {
        (u128::from(self.hi) << 64) | u128::from(self.lo)
    }

    /// Nibble `i` of 20, the most significant first.
    fn nibble(&self, i: usize) -> u8 {
        ((self.value() >> (4 * (19 - i))) & 0x0F) as u8
    }

    /// Reads the BCD bytes of a header (6 or 10 bytes).
    pub fn from_bcd(bcd: &[u8]) -> Phone {
        let bcd = &bcd[bcd.len().saturating_sub(10)..];
        Phone::from_value(bcd.iter().fold(0u128, |v, &b| (v << 8) | u128::from(b)))
    }

    /// Parses a digit string of at most 20 digits (shorter strings are left-padded with zeros).
    pub fn parse(s: &str) -> Result<Phone, String> {
        let s = s.trim();
        if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("phone {s:?} must be 1 to 20 decimal digits"));
        }
        Ok(Phone::from_value(
            s.bytes().fold(0u128, |v, b| (v << 4) | u128::from(b - b'0')),
        ))
    }

    /// How many nibbles are significant (leading zeros stripped; at least one).
    fn significant_len(&self) -> usize {
        // The value has 80 bits in a u128: 48 leading zero bits are padding.
        let zero_nibbles = (self.value().leading_zeros() as usize - 48) / 4;
        (20 - zero_nibbles).max(1)
    }

    /// Writes the phone as `width` BCD bytes (6 for 2011/2013, 10 for 2019). Digits that do not
    /// fit are cut from the left, as a 2013 header cannot carry more than 12 digits.
    pub fn write_bcd(&self, width: usize, out: &mut Vec<u8>) {
        let v = self.value();
        for i in (0..width).rev() {
            out.push((v >> (8 * i)) as u8);
        }
    }

    /// True when the number has more digits than a 2013 header's 12.
    pub fn needs_2019(&self) -> bool {
        self.significant_len() > 12
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        for i in 20 - self.significant_len()..20 {
            // A nibble above 9 is not BCD; show it as a hex digit rather than hide it.
            f.write_char(char::from_digit(u32::from(self.nibble(i)), 16).unwrap_or('?'))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({self})")
    }
}

impl Serialize for Phone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Phone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Phone::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The sub-packet item: present when body-properties bit 13 is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub struct PacketInfo {
    /// Number of packets in the message (at least 1).
    pub total: u16,
    /// This packet's position, 1-based (JT808.md §4).
    pub index: u16,
}

/// Where a header disagreed with itself and how it was read (JT808.md §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderQuirk {
    /// Bit 14 was set but only the 2013 layout fits the frame's length: a 2013 device setting a
    /// reserved bit. Read as 2013.
    #[serde(rename = "version_flag_on_2013_layout")]
    VersionFlagOn2013Layout,
    /// Bit 14 was clear but only the 2019 layout fits (SmallChi/JT808#26). Read as 2019.
    #[serde(rename = "layout_2019_without_flag")]
    V2019LayoutWithoutFlag,
}

/// A parsed message header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Message id, e.g. 0x0200.
    pub msg_id: u16,
    /// Which layout the header was read with (2011 is only ever set from a body, see [`Version`]).
    pub version: Version,
    /// The 2019 protocol-version byte, when present.
    pub protocol_version: Option<u8>,
    /// Encryption bits 10-12: 0 = plain, 1 = RSA, others reserved.
    pub encryption: u8,
    /// Declared body length of this packet (bits 0-9).
    pub body_len: u16,
    /// The terminal's phone (SIM).
    pub phone: Phone,
    /// Message serial number.
    pub serial: u16,
    /// Sub-packet item, when bit 13 is set.
    pub packet: Option<PacketInfo>,
    /// Set when the version flag and the layout disagreed.
    pub quirk: Option<HeaderQuirk>,
    /// Bit 15 and any other bits kept so a header re-encodes exactly.
    pub reserved_bit15: bool,
}

impl Header {
    /// A plain header for building a message (2013 or 2019 layout).
    pub fn new(msg_id: u16, version: Version, phone: Phone, serial: u16) -> Header {
        Header {
            msg_id,
            version,
            protocol_version: version.is_2019().then_some(1),
            encryption: 0,
            body_len: 0,
            phone,
            serial,
            packet: None,
            quirk: None,
            reserved_bit15: false,
        }
    }

    /// Length of this header on the wire.
    pub fn wire_len(&self) -> usize {
        let base = if self.version.is_2019() && self.quirk != Some(HeaderQuirk::VersionFlagOn2013Layout) {
            17
        } else {
            12
        };
        base + if self.packet.is_some() { 4 } else { 0 }
    }

    /// Parses the header of one frame's unescaped content (header + body, check code already
    /// removed) and returns the header and the offset where the body starts.
    ///
    /// `offset` is the stream offset of the frame, carried into errors.
    pub fn parse(content: &[u8], offset: u64) -> Result<(Header, usize), FrameError> {
        if content.len() < 12 {
            return Err(FrameError::TooShort {
                offset,
                len: content.len(),
            });
        }
        let msg_id = u16::from_be_bytes([content[0], content[1]]);
        let props = u16::from_be_bytes([content[2], content[3]]);
        let body_len = props & 0x03FF;
        let encryption = ((props >> 10) & 0x07) as u8;
        let sub = props & 0x2000 != 0;
        let flag_2019 = props & 0x4000 != 0;
        let pk = if sub { 4 } else { 0 };
        let len_2013 = 12 + pk + body_len as usize;
        let len_2019 = 17 + pk + body_len as usize;
        // JT808.md §2.3: the declared length decides between the layouts when the flag lies.
        let (is_2019, quirk) = match (flag_2019, content.len()) {
            (true, n) if n == len_2019 => (true, None),
            (true, n) if n == len_2013 => (false, Some(HeaderQuirk::VersionFlagOn2013Layout)),
            (false, n) if n == len_2013 => (false, None),
            (false, n) if n == len_2019 => (true, Some(HeaderQuirk::V2019LayoutWithoutFlag)),
            (flag, n) => {
                let header_len = if flag { 17 + pk } else { 12 + pk };
                if n < header_len {
                    // Not even the header its own flags call for: a length comparison would read
                    // "declares 0, carries 0".
                    return Err(FrameError::TooShort { offset, len: n });
                }
                return Err(FrameError::BodyLengthMismatch {
                    offset,
                    msg_id,
                    declared: body_len,
                    actual: n - header_len,
                });
            }
        };
        let (version, protocol_version, phone, mut pos) = if is_2019 {
            (Version::V2019, Some(content[4]), Phone::from_bcd(&content[5..15]), 15)
        } else {
            (Version::V2013, None, Phone::from_bcd(&content[4..10]), 10)
        };
        let serial = u16::from_be_bytes([content[pos], content[pos + 1]]);
        pos += 2;
        let packet = if sub {
            let total = u16::from_be_bytes([content[pos], content[pos + 1]]);
            let index = u16::from_be_bytes([content[pos + 2], content[pos + 3]]);
            pos += 4;
            Some(PacketInfo { total, index })
        } else {
            None
        };
        let header = Header {
            msg_id,
            version,
            protocol_version,
            encryption,
            body_len,
            phone,
            serial,
            packet,
            quirk,
            reserved_bit15: props & 0x8000 != 0,
        };
        Ok((header, pos))
    }

    /// Body properties WORD for a body of `body_len` bytes.
    pub fn props(&self, body_len: usize) -> u16 {
        let mut p = (body_len as u16) & 0x03FF;
        p |= ((self.encryption as u16) & 0x07) << 10;
        if self.packet.is_some() {
            p |= 0x2000;
        }
        let flag = match self.quirk {
            Some(HeaderQuirk::VersionFlagOn2013Layout) => true,
            Some(HeaderQuirk::V2019LayoutWithoutFlag) => false,
            None => self.version.is_2019(),
        };
        if flag {
            p |= 0x4000;
        }
        if self.reserved_bit15 {
            p |= 0x8000;
        }
        p
    }

    /// Appends the header bytes for a body of `body_len` bytes. A quirk read from the wire is
    /// reproduced, so a decoded frame re-encodes to its own bytes.
    pub fn write(&self, body_len: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.msg_id.to_be_bytes());
        out.extend_from_slice(&self.props(body_len).to_be_bytes());
        let layout_2019 = self.version.is_2019() && self.quirk != Some(HeaderQuirk::VersionFlagOn2013Layout);
        if layout_2019 {
            out.push(self.protocol_version.unwrap_or(1));
            self.phone.write_bcd(10, out);
        } else {
            self.phone.write_bcd(6, out);
        }
        out.extend_from_slice(&self.serial.to_be_bytes());
        if let Some(p) = self.packet {
            out.extend_from_slice(&p.total.to_be_bytes());
            out.extend_from_slice(&p.index.to_be_bytes());
        }
    }
}

/// Formats a message id the way transcripts and JSON output show it: `0x0200`.
pub fn msg_id_hex(id: u16) -> String {
    format!("0x{id:04X}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_forms_of_one_sim_are_equal() {
        let a = Phone::from_bcd(&[0x01, 0x23, 0x45, 0x67, 0x89, 0x01]);
        let b = Phone::from_bcd(&[0, 0, 0, 0, 0x01, 0x23, 0x45, 0x67, 0x89, 0x01]);
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "12345678901");
        assert_eq!(Phone::parse("12345678901").unwrap(), a);
        let mut out = Vec::new();
        a.write_bcd(6, &mut out);
        assert_eq!(out, [0x01, 0x23, 0x45, 0x67, 0x89, 0x01]);
    }

    #[test]
    fn phone_order_is_numeric_order_whatever_the_width() {
        let mut phones: Vec<Phone> = ["90", "100", "0", "12345678901234567890", "99999999999", "123"]
            .iter()
            .map(|s| Phone::parse(s).unwrap())
            .collect();
        phones.push(Phone::from_bcd(&[0, 0, 0, 0, 0, 0x99]));
        phones.push(Phone::from_bcd(&[0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00]));
        phones.sort();
        let shown: Vec<String> = phones.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            shown,
            [
                "0",
                "90",
                "99",
                "100",
                "100",
                "123",
                "99999999999",
                "12345678901234567890"
            ]
        );
        assert_eq!(phones[3], phones[4], "the 2013 and 2019 forms of 100 are one terminal");
    }

    #[test]
    fn all_zero_phone_shows_one_zero() {
        assert_eq!(Phone::from_bcd(&[0; 6]).to_string(), "0");
    }

    #[test]
    fn short_content_is_rejected() {
        assert!(matches!(
            Header::parse(&[0; 11], 7),
            Err(FrameError::TooShort { offset: 7, len: 11 })
        ));
    }
}
