//! 0x0702 driver identity report (JT/T 808 §8.47; 0x8702 asks for it, empty body) and 0x0701
//! electronic waybill (§8.46).
//!
//! ```text
//! 0x0702 2011:  name length BYTE | name | ID card STRING[20] | certificate STRING[40]
//!               | organization length BYTE | organization
//! 0x0702 2013+: state BYTE (1 card inserted, 2 removed) | time BCD[6]
//!               | state 1: IC read result BYTE (0 ok, 1 key failed, 2 locked, 3 pulled, 4 check error)
//!               | result 0: name length BYTE | name | certificate STRING[20]
//!                           | organization length BYTE | organization | validity BCD[4] (YYYYMMDD)
//!                           | 2019: driver ID number STRING[20]
//! 0x0701:       length DWORD | waybill content
//! ```
//!
//! 2011 and 2013 share a header (JT808.md §2.3): the 2011 layout is used when the message's version
//! says 2011. The 2019 ID number is read whenever 20 bytes follow the validity, since 2013 devices
//! updated to the 2019 body without the 2019 header exist; a body re-encodes exactly either way.
//! Every STRING is GBK (names, organizations), kept raw where it is not.

use serde::Serialize;

use super::codec::BodyCodec;
use crate::codec::header::Version;
use crate::codec::wire::{BcdTime, Reader, Text, WireError};

/// The body of 0x0702. Fields absent in a layout or cut by the state/result are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriverIdentity {
    /// 1 IC card inserted (on duty), 2 removed (off duty). Not in 2011.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<u8>,
    /// Time of the card event. Not in 2011.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<BcdTime>,
    /// IC card read result (state 1 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ic_result: Option<u8>,
    /// Driver name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Text>,
    /// Qualification certificate code (20 bytes; 40 in 2011).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Text>,
    /// Issuing organization.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<Text>,
    /// Certificate validity, BCD[4] YYYYMMDD (hex of the 4 bytes).
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_bcd4")]
    pub validity: Option<[u8; 4]>,
    /// Driver ID card number (20 bytes; 2011 and 2019).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_number: Option<Text>,
    /// Bytes after the last field the standard defines, kept as they came (hex): SmallChi's
    /// 2019 test frames carry a face-match BYTE and a UID STRING[20] there.
    #[serde(skip_serializing_if = "Vec::is_empty", with = "crate::codec::wire::hex_upper")]
    pub extra: Vec<u8>,
    /// The layout the body was read with (2011 or later; not in the JSON).
    #[serde(skip)]
    pub layout: Version,
}

mod opt_bcd4 {
    use serde::Serializer;

    pub fn serialize<S: Serializer>(v: &Option<[u8; 4]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&hex::encode_upper(b)),
            None => s.serialize_none(),
        }
    }
}

impl DriverIdentity {
    /// No field set, read or written in `layout`.
    pub fn empty(layout: Version) -> DriverIdentity {
        DriverIdentity {
            state: None,
            time: None,
            ic_result: None,
            name: None,
            certificate: None,
            organization: None,
            validity: None,
            id_number: None,
            extra: Vec::new(),
            layout,
        }
    }

    fn decode_2011(b: &[u8]) -> Result<DriverIdentity, WireError> {
        let mut r = Reader::new(b);
        let mut d = DriverIdentity::empty(Version::V2011);
        d.name = Some(r.len8_text("name")?);
        d.id_number = Some(r.fixed_text(20, "id_number")?);
        d.certificate = Some(r.fixed_text(40, "certificate")?);
        d.organization = Some(r.len8_text("organization")?);
        r.finish("organization")?;
        Ok(d)
    }

    fn decode_2013(b: &[u8], layout: Version) -> Result<DriverIdentity, WireError> {
        let mut r = Reader::new(b);
        let mut d = DriverIdentity::empty(layout);
        d.state = Some(r.u8("state")?);
        d.time = Some(r.bcd_time("time")?);
        if d.state == Some(1) && !r.is_empty() {
            d.ic_result = Some(r.u8("ic_result")?);
        }
        if d.ic_result == Some(0) {
            d.name = Some(r.len8_text("name")?);
            d.certificate = Some(r.fixed_text(20, "certificate")?);
            d.organization = Some(r.len8_text("organization")?);
            d.validity = Some(r.array("validity")?);
            if !r.is_empty() {
                d.id_number = Some(r.fixed_text(20, "id_number")?);
            }
        }
        d.extra = r.rest().to_vec();
        Ok(d)
    }
}

impl BodyCodec for DriverIdentity {
    fn decode_body(b: &[u8], version: Version) -> Result<Self, WireError> {
        match version {
            Version::V2011 => DriverIdentity::decode_2011(b),
            v => DriverIdentity::decode_2013(b, v),
        }
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        let text = |t: &Option<Text>, out: &mut Vec<u8>| t.iter().for_each(|t| t.encode_len8(out));
        let fixed = |t: &Option<Text>, w: usize, out: &mut Vec<u8>| t.iter().for_each(|t| t.encode_fixed(w, out));
        if self.layout == Version::V2011 {
            text(&self.name, out);
            fixed(&self.id_number, 20, out);
            fixed(&self.certificate, 40, out);
            text(&self.organization, out);
            return;
        }
        out.extend(self.state);
        self.time.iter().for_each(|t| t.encode(out));
        out.extend(self.ic_result);
        text(&self.name, out);
        fixed(&self.certificate, 20, out);
        text(&self.organization, out);
        self.validity.iter().for_each(|v| out.extend_from_slice(v));
        fixed(&self.id_number, 20, out);
        out.extend_from_slice(&self.extra);
    }
}

/// The body of 0x0701.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waybill {
    /// The declared length, kept only when it is not the length of `content`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_len: Option<u32>,
    /// The waybill text (GBK; bytes that are not GBK are kept and shown raw).
    pub content: Text,
}

impl BodyCodec for Waybill {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let len = r.u32("len")?;
        let content = r.rest();
        Ok(Waybill {
            declared_len: (len as usize != content.len()).then_some(len),
            content: Text::from_bytes(content),
        })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        let bytes = self.content.wire_bytes();
        let len = self.declared_len.unwrap_or(bytes.len() as u32);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&bytes);
    }
}
