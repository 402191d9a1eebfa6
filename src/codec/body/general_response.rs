//! 0x0001 terminal general response and 0x8001 platform general response (JT/T 808-2019 §8.1, §8.2):
//! reply serial WORD, reply message id WORD, result BYTE.

use serde::{Deserialize, Serialize};

/// The body of 0x0001 and 0x8001.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    pub fn decode(b: &[u8]) -> Result<GeneralResponse, String> {
        if b.len() != 5 {
            return Err(format!("general response body is {} bytes, expected 5", b.len()));
        }
        Ok(GeneralResponse {
            reply_serial: u16::from_be_bytes([b[0], b[1]]),
            reply_id: u16::from_be_bytes([b[2], b[3]]),
            result: b[4],
        })
    }

    /// Appends the 5 bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.reply_serial.to_be_bytes());
        out.extend_from_slice(&self.reply_id.to_be_bytes());
        out.push(self.result);
    }
}
