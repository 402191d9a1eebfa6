//! 0x0001 terminal general response and 0x8001 platform general response (JT/T 808-2019 §8.1, §8.2):
//! reply serial WORD, reply message id WORD, result BYTE.

use serde::{Deserialize, Serialize};

use crate::codec::wire::{Reader, WireError};

/// The body of 0x0001 and 0x8001.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneralResponse {
    /// Serial of the message answered.
    pub reply_serial: u16,
    /// Id of the message answered.
    #[serde(with = "crate::codec::body::hex_id")]
    pub reply_id: u16,
    /// 0 success, 1 failure, 2 message error, 3 unsupported (4 alarm confirmed, 0x8001 only).
    pub result: u8,
}

impl GeneralResponse {
    /// Terminal general response id.
    pub const TERMINAL_ID: u16 = 0x0001;
    /// Platform general response id.
    pub const PLATFORM_ID: u16 = 0x8001;
    /// Result: success.
    pub const OK: u8 = 0;
    /// Result: message not supported.
    pub const UNSUPPORTED: u8 = 3;

    /// Decodes 5 bytes (extra bytes are an error: the body has a fixed size, JT808.md §8).
    pub fn decode(b: &[u8]) -> Result<GeneralResponse, WireError> {
        let mut r = Reader::new(b);
        let v = GeneralResponse {
            reply_serial: r.u16("reply_serial")?,
            reply_id: r.u16("reply_id")?,
            result: r.u8("result")?,
        };
        r.finish("result")?;
        Ok(v)
    }

    /// Appends the 5 bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.reply_serial.to_be_bytes());
        out.extend_from_slice(&self.reply_id.to_be_bytes());
        out.push(self.result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_bytes_round_trip_and_extra_bytes_are_named() {
        let b = [0x00, 0x7B, 0x01, 0xC8, 0x03];
        let g = GeneralResponse::decode(&b).unwrap();
        assert_eq!((g.reply_serial, g.reply_id, g.result), (123, 0x01C8, 3));
        let mut out = Vec::new();
        g.encode(&mut out);
        assert_eq!(out, b);
        assert_eq!(
            GeneralResponse::decode(&[0, 1, 2, 3, 4, 5]).unwrap_err().to_string(),
            "result at body byte 5: 1 bytes left over after the last field"
        );
    }
}
