//! 0x0A00 terminal RSA public key and 0x8A00 platform RSA public key (JT/T 808 §8.65/8.66):
//! e DWORD, n BYTE[128] (132 bytes).

use serde::{Deserialize, Serialize};

use super::codec::BodyCodec;
use crate::codec::header::Version;
use crate::codec::wire::{Reader, WireError};

/// Width of the modulus.
const N_LEN: usize = 128;

/// The body of 0x0A00 and 0x8A00.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RsaKey {
    /// The public exponent.
    pub e: u32,
    /// The modulus, 128 bytes (hex; a shorter one is right-padded with zeros on encode).
    #[serde(with = "crate::codec::wire::hex_upper")]
    pub n: Vec<u8>,
}

impl BodyCodec for RsaKey {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let e = r.u32("e")?;
        let n = r.bytes(N_LEN, "n")?.to_vec();
        r.finish("n")?;
        Ok(RsaKey { e, n })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.e.to_be_bytes());
        let n = self.n.len().min(N_LEN);
        out.extend_from_slice(&self.n[..n]);
        out.resize(out.len() + (N_LEN - n), 0);
    }
}
