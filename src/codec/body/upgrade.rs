//! 0x8108 upgrade package and 0x0108 upgrade result (JT/T 808-2013 §8.22, 2019 §8.24).
//!
//! ```text
//! 0x8108: type BYTE | maker BYTE[5] | version length BYTE | version STRING | data length DWORD | data
//! 0x0108: type BYTE | result BYTE
//! ```
//!
//! Type 0 terminal, 12 IC card reader, 52 GNSS module; result 0 ok, 1 failed, 2 cancelled. The
//! package is usually sub-packaged; the declared data length is kept when it disagrees with the
//! bytes that came, so such a body still re-encodes exactly.

use serde::{Deserialize, Serialize};

use super::codec::BodyCodec;
use crate::codec::header::Version;
use crate::codec::wire::{Reader, Text, WireError};

flat_body! {
    /// The body of 0x0108.
    pub struct UpgradeResult {
        /// 0 terminal, 12 IC card reader, 52 GNSS module.
        upgrade_type: u8,
        /// 0 success, 1 failure, 2 cancelled.
        result: u8,
    }
}

/// The body of 0x8108.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradePackage {
    /// 0 terminal, 12 IC card reader, 52 GNSS module.
    pub upgrade_type: u8,
    /// Maker id, 5 bytes.
    pub maker: Text,
    /// Version text.
    pub version: Text,
    /// The data length the body declares, kept only when it is not the length of `data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_len: Option<u32>,
    /// The package bytes (hex).
    #[serde(with = "crate::codec::wire::hex_upper")]
    pub data: Vec<u8>,
}

impl BodyCodec for UpgradePackage {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let upgrade_type = r.u8("upgrade_type")?;
        let maker = r.fixed_text(5, "maker")?;
        let version = r.len8_text("version")?;
        let len = r.u32("data_len")?;
        let data = r.rest().to_vec();
        Ok(UpgradePackage {
            upgrade_type,
            maker,
            version,
            declared_len: (len as usize != data.len()).then_some(len),
            data,
        })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.push(self.upgrade_type);
        self.maker.encode_fixed(5, out);
        self.version.encode_len8(out);
        let len = self.declared_len.unwrap_or(self.data.len() as u32);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.data);
    }
}
