//! 0x0102 terminal authentication (JT808.md §3).
//!
//! ```text
//! 2011/2013: auth code STRING = the whole body
//! 2019:      code length BYTE n | code STRING[n] | IMEI BYTE[15] | software version BYTE[20] (NUL padded)
//! ```
//!
//! The layout follows the header's version; a 2019-layout body re-encodes as 2019 because it
//! carries the IMEI and software version.

use serde::Serialize;

use crate::codec::header::Version;
use crate::codec::wire::{Reader, Text, WireError};

/// The body of 0x0102.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Auth {
    /// The auth code from 0x8100.
    pub code: Text,
    /// IMEI, 15 bytes (2019 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imei: Option<Text>,
    /// Software version, 20 bytes NUL padded (2019 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_version: Option<Text>,
}

impl Auth {
    /// Message id.
    pub const ID: u16 = 0x0102;

    /// Decodes a body that came under a header of `version`.
    pub fn decode(b: &[u8], version: Version) -> Result<Auth, WireError> {
        let mut r = Reader::new(b);
        if !version.is_2019() {
            return Ok(Auth {
                code: Text::from_bytes(r.rest()),
                imei: None,
                software_version: None,
            });
        }
        let code = r.len8_text("code")?;
        let imei = r.fixed_text(15, "imei")?;
        let software_version = r.fixed_text(20, "software_version")?;
        r.finish("software_version")?;
        Ok(Auth {
            code,
            imei: Some(imei),
            software_version: Some(software_version),
        })
    }

    /// Appends the body: the 2019 layout when it carries an IMEI or software version.
    pub fn encode(&self, out: &mut Vec<u8>) {
        if self.imei.is_none() && self.software_version.is_none() {
            self.code.encode(out);
            return;
        }
        self.code.encode_len8(out);
        self.imei.clone().unwrap_or_default().encode_fixed(15, out);
        self.software_version.clone().unwrap_or_default().encode_fixed(20, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_2013_code_is_the_whole_body() {
        let a = Auth::decode(b"abc@123&456", Version::V2013).unwrap();
        assert_eq!((a.code.as_str(), a.imei.is_none()), ("abc@123&456", true));
        let mut out = Vec::new();
        a.encode(&mut out);
        assert_eq!(out, b"abc@123&456");
    }

    #[test]
    fn the_2019_layout_is_length_prefixed_with_imei_and_version() {
        // go-0102-2019
        let hex_body = "0b3137323939383431373338313233343536373839303132333435332e372e31350000000000000000000000000000";
        let b = hex::decode(hex_body).unwrap();
        let a = Auth::decode(&b, Version::V2019).unwrap();
        assert_eq!(a.code.as_str(), "17299841738");
        assert_eq!(a.imei.as_ref().unwrap().as_str(), "123456789012345");
        assert_eq!(a.software_version.as_ref().unwrap().as_str(), "3.7.15");
        let mut out = Vec::new();
        a.encode(&mut out);
        assert_eq!(hex::encode(out), hex_body);
    }

    #[test]
    fn a_cut_2019_body_names_the_field() {
        let e = Auth::decode(&[3, b'a', b'b', b'c', b'1'], Version::V2019).unwrap_err();
        assert_eq!(e.to_string(), "imei at body byte 4: needs 15 bytes, 1 left");
    }
}
