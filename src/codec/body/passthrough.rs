//! 0x0900 data pass-through up and 0x8900 down (JT/T 808 §8.62/8.63): a type BYTE and the payload,
//! the rest of the body, kept as its bytes. Types: 0x00 GNSS detail, 0x0B IC card, 0x41 serial
//! port 1, 0x42 serial port 2, 0xF0-0xFF user defined.

use serde::{Deserialize, Serialize};

use super::codec::BodyCodec;
use crate::codec::header::Version;
use crate::codec::wire::{Reader, WireError};

/// The body of 0x0900 and 0x8900.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassThrough {
    /// The pass-through type.
    pub pass_type: u8,
    /// The payload (hex).
    #[serde(with = "crate::codec::wire::hex_upper")]
    pub data: Vec<u8>,
}

impl BodyCodec for PassThrough {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        Ok(PassThrough {
            pass_type: r.u8("pass_type")?,
            data: r.rest().to_vec(),
        })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.push(self.pass_type);
        out.extend_from_slice(&self.data);
    }
}
