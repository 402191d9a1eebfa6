//! 0x0901 compressed data upload (JT/T 808 §8.64): length DWORD, then the GZIP-compressed bytes.
//! The bytes are kept as they came (not inflated: a harness must show what was sent); a declared
//! length that is not the number of bytes that follow is kept so the body re-encodes exactly.

use serde::{Deserialize, Serialize};

use super::codec::BodyCodec;
use crate::codec::header::Version;
use crate::codec::wire::{Reader, WireError};

/// The body of 0x0901.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compressed {
    /// The declared length, kept only when it is not the length of `data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_len: Option<u32>,
    /// The compressed bytes (hex).
    #[serde(with = "crate::codec::wire::hex_upper")]
    pub data: Vec<u8>,
}

impl BodyCodec for Compressed {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let len = r.u32("len")?;
        let data = r.rest().to_vec();
        Ok(Compressed {
            declared_len: (len as usize != data.len()).then_some(len),
            data,
        })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        let len = self.declared_len.unwrap_or(self.data.len() as u32);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.data);
    }
}
