//! 0x0100 terminal register and 0x8100 register response (JT808.md §3, §6).
//!
//! 0x0100 has three layouts, differing only in the widths of the fixed string fields:
//!
//! ```text
//!            province WORD | city WORD | maker | model | terminal id | plate colour BYTE | plate STRING (rest)
//! 2011:                                  5   |   8   |      7      |   = 25 fixed bytes
//! 2013:                                  5   |  20   |      7      |   = 37 fixed bytes
//! 2019:                                 11   |  30   |     30      |   = 76 fixed bytes
//! ```
//!
//! A 2019 header says 2019. 2011 and 2013 share a header (JT808.md §2.3), so the body tells. The
//! rule used here ([`Register::layout_for`]), in order:
//! 1. fewer than 37 bytes: only the 2011 layout fits;
//! 2. byte 36 below 0x20: 2013. It is the 2013 plate colour, a small code (0-4, 9); in a 2011 body it
//!    would be the 12th byte of the plate text, and plate text is printable ASCII or GBK (>= 0x20);
//! 3. byte 24 below 0x20 (the 2011 plate colour) while byte 36 is text: 2011 with a long plate;
//! 4. otherwise 2013.
//!
//! SmallChi's "33 bytes or less is 2011" misreads a 2011 body with a plate longer than 8 bytes, and a
//! 34-36 byte body cannot be 2013 at all; rule 1 and 3 cover both.

use serde::{Deserialize, Serialize};

use crate::codec::header::Version;
use crate::codec::wire::{Reader, Text, WireError};

/// The body of 0x0100.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Register {
    /// Province id.
    pub province: u16,
    /// City/county id.
    pub city: u16,
    /// Maker id (5 bytes, 11 in 2019).
    pub maker: Text,
    /// Terminal model (8 / 20 / 30 bytes).
    pub model: Text,
    /// Terminal id (7 bytes, 30 in 2019).
    pub terminal_id: Text,
    /// 0 not registered, 1 blue, 2 yellow, 3 black, 4 white, 9 other.
    pub plate_color: u8,
    /// Plate number or VIN: the rest of the body (may be longer than a real plate).
    pub plate: Text,
    /// Which layout the body was read with (the message's version shows it; not in the JSON).
    #[serde(skip)]
    pub layout: Version,
}

impl Register {
    /// Message id.
    pub const ID: u16 = 0x0100;

    /// The layout of a body that came under a header of `version` (module doc).
    pub fn layout_for(version: Version, b: &[u8]) -> Version {
        match version {
            Version::V2019 => Version::V2019,
            Version::V2011 => Version::V2011,
            Version::V2013 if b.len() < 37 => Version::V2011,
            Version::V2013 if b[36] < 0x20 => Version::V2013,
            Version::V2013 if b[24] < 0x20 => Version::V2011,
            Version::V2013 => Version::V2013,
        }
    }

    /// Field widths (maker, model, terminal id) of a layout.
    fn widths(layout: Version) -> (usize, usize, usize) {
        match layout {
            Version::V2011 => (5, 8, 7),
            Version::V2013 => (5, 20, 7),
            Version::V2019 => (11, 30, 30),
        }
    }

    /// Decodes a body that came under a header of `version`.
    pub fn decode(b: &[u8], version: Version) -> Result<Register, WireError> {
        let layout = Register::layout_for(version, b);
        let (maker, model, terminal_id) = Register::widths(layout);
        let mut r = Reader::new(b);
        Ok(Register {
            province: r.u16("province")?,
            city: r.u16("city")?,
            maker: r.fixed_text(maker, "maker")?,
            model: r.fixed_text(model, "model")?,
            terminal_id: r.fixed_text(terminal_id, "terminal_id")?,
            plate_color: r.u8("plate_color")?,
            plate: Text::from_bytes(r.rest()),
            layout,
        })
    }

    /// Appends the body in its own layout.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (maker, model, terminal_id) = Register::widths(self.layout);
        out.extend_from_slice(&self.province.to_be_bytes());
        out.extend_from_slice(&self.city.to_be_bytes());
        self.maker.encode_fixed(maker, out);
        self.model.encode_fixed(model, out);
        self.terminal_id.encode_fixed(terminal_id, out);
        out.push(self.plate_color);
        self.plate.encode(out);
    }
}

/// The body of 0x8100.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterResponse {
    /// Serial of the 0x0100 answered.
    pub reply_serial: u16,
    /// 0 ok, 1 vehicle already registered, 2 vehicle not in DB, 3 terminal already registered,
    /// 4 terminal not in DB.
    pub result: u8,
    /// Auth code, the rest of the body (only when result = 0; absent when the body ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_code: Option<Text>,
}

impl RegisterResponse {
    /// Message id.
    pub const ID: u16 = 0x8100;

    /// Decodes the body.
    pub fn decode(b: &[u8]) -> Result<RegisterResponse, WireError> {
        let mut r = Reader::new(b);
        let reply_serial = r.u16("reply_serial")?;
        let result = r.u8("result")?;
        let auth_code = (!r.is_empty()).then(|| Text::from_bytes(r.rest()));
        Ok(RegisterResponse {
            reply_serial,
            result,
            auth_code,
        })
    }

    /// Appends the body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.reply_serial.to_be_bytes());
        out.push(self.result);
        if let Some(code) = &self.auth_code {
            code.encode(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(hex_body: &str, version: Version) -> Register {
        let b = hex::decode(hex_body).unwrap();
        let reg = Register::decode(&b, version).unwrap();
        let mut out = Vec::new();
        reg.encode(&mut out);
        assert_eq!(hex::encode(out), hex_body);
        reg
    }

    #[test]
    fn a_32_byte_body_is_2011() {
        // go-0100-2011
        let reg = round_trip(
            "001f007363640000007777772e3830382e3736353433323101b2e24131323334",
            Version::V2013,
        );
        assert_eq!(reg.layout, Version::V2011);
        assert_eq!((reg.maker.as_str(), reg.model.as_str()), ("cd", "www.808."));
        assert_eq!((reg.terminal_id.as_str(), reg.plate.as_str()), ("7654321", "测A1234"));
    }

    #[test]
    fn a_2013_body_with_a_long_plate_stays_2013() {
        // iss-golittledevil1-0100-long-plate: 48 bytes, plate of 11.
        let reg = round_trip(
            "001f006e63643132337777772e3830382e636f6d0000000000000000003736353433323101b2e2413132333435363738",
            Version::V2013,
        );
        assert_eq!(reg.layout, Version::V2013);
        assert_eq!(reg.plate.as_str(), "测A12345678");
    }

    #[test]
    fn a_2011_body_with_a_plate_longer_than_11_bytes_is_2011() {
        // 2011 fixed part + a 17-character VIN as the plate: 42 bytes, past SmallChi's 33 and past
        // 37, but byte 36 is VIN text and byte 24 the colour.
        let mut b = hex::decode("001f007363640000007777772e3830382e3736353433323102").unwrap();
        b.extend_from_slice(b"LSVAU2180N2183294");
        let reg = Register::decode(&b, Version::V2013).unwrap();
        assert_eq!(reg.layout, Version::V2011);
        assert_eq!((reg.plate_color, reg.plate.as_str()), (2, "LSVAU2180N2183294"));
    }

    #[test]
    fn a_2019_body_reads_the_wide_fields() {
        let reg = round_trip(
            "001f007363640000000000000000007777772e3830382e636f6d0000000000000000000000000000000000000037363534333231000000000000000000000000000000000000000000000001b2e24131323334",
            Version::V2019,
        );
        assert_eq!((reg.maker.as_str(), reg.terminal_id.as_str()), ("cd", "7654321"));
    }

    #[test]
    fn register_response_auth_code_is_the_rest_of_the_body() {
        // go-8100-2013
        let b = hex::decode("0000003132333435363738393031").unwrap();
        let r = RegisterResponse::decode(&b).unwrap();
        assert_eq!((r.reply_serial, r.result), (0, 0));
        assert_eq!(r.auth_code.as_ref().map(Text::as_str), Some("12345678901"));
        let mut out = Vec::new();
        r.encode(&mut out);
        assert_eq!(out, b);
        let refused = RegisterResponse::decode(&[0, 5, 3]).unwrap();
        assert_eq!(refused.auth_code, None);
        assert_eq!(
            serde_json::to_string(&refused).unwrap(),
            r#"{"reply_serial":5,"result":3}"#
        );
    }
}
