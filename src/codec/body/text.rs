//! 0x8300 text message (JT/T 808 §8.23; 2019 §8.27).
//!
//! ```text
//! 2011/2013: flag BYTE | text STRING (rest)
//! 2019:      flag BYTE | text type BYTE (1 notice, 2 service) | text STRING (rest)
//! ```
//!
//! Flag bits: 0 emergency, 2 terminal display, 3 TTS read aloud, 4 advertising screen (2013;
//! 2019: reserved), 5 CAN fault code (0: central navigation information). The text is GBK; bytes
//! that are not GBK are kept and shown (`{"text", "raw"}`).

use serde::{Deserialize, Serialize};

use super::codec::BodyCodec;
use crate::codec::header::Version;
use crate::codec::wire::{Reader, Text, WireError};

/// The body of 0x8300.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextMessage {
    /// The flag bits.
    pub flag: u8,
    /// 2019 only: 1 notice, 2 service (absent in the 2011/2013 layout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_type: Option<u8>,
    /// The text.
    pub text: Text,
}

impl BodyCodec for TextMessage {
    fn decode_body(b: &[u8], version: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let flag = r.u8("flag")?;
        let text_type = match version {
            Version::V2019 => Some(r.u8("text_type")?),
            _ => None,
        };
        Ok(TextMessage {
            flag,
            text_type,
            text: Text::from_bytes(r.rest()),
        })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.push(self.flag);
        out.extend(self.text_type);
        self.text.encode(out);
    }
}
