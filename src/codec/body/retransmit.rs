//! 0x8003 platform retransmit request and 0x0005 terminal retransmit request (2019) (JT808.md §3,
//! §4): original serial WORD (the serial of the **first** packet of the original message), count,
//! then count x WORD packet indices. The count is a BYTE in 2011/2013 and a **WORD in 2019**
//! (vectors `yz-8003-2013`, 21 bytes, and `yz-8003-2019`, 22 bytes).

use serde::{Deserialize, Serialize};

use crate::codec::header::Version;
use crate::codec::wire::{Reader, WireError};

/// The body of 0x8003 and 0x0005.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetransmitRequest {
    /// Serial of the first packet of the message to resend. Not a reply serial: it names a
    /// message, it does not answer one.
    pub orig_serial: u16,
    /// Packet indices to resend (1-based).
    pub indices: Vec<u16>,
}

impl RetransmitRequest {
    /// Platform retransmit request id.
    pub const PLATFORM_ID: u16 = 0x8003;
    /// Terminal retransmit request id (2019).
    pub const TERMINAL_ID: u16 = 0x0005;

    /// Decodes a body that came under a header of `version`.
    pub fn decode(b: &[u8], version: Version) -> Result<RetransmitRequest, WireError> {
        let mut r = Reader::new(b);
        let orig_serial = r.u16("orig_serial")?;
        let count = if version.is_2019() {
            r.u16("count")? as usize
        } else {
            r.u8("count")? as usize
        };
        if r.remaining() != 2 * count {
            return Err(r.invalid(
                "count",
                format!("declares {count} indices but {} bytes follow", r.remaining()),
            ));
        }
        let indices = (0..count).map(|_| r.u16("indices")).collect::<Result<_, _>>()?;
        Ok(RetransmitRequest { orig_serial, indices })
    }

    /// Appends the body, the count as wide as `version` wants. A 2013 count cannot exceed 255:
    /// only the first 255 indices are written then.
    pub fn encode(&self, version: Version, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.orig_serial.to_be_bytes());
        let n = if version.is_2019() {
            let n = self.indices.len().min(u16::MAX as usize);
            out.extend_from_slice(&(n as u16).to_be_bytes());
            n
        } else {
            let n = self.indices.len().min(u8::MAX as usize);
            out.push(n as u8);
            n
        };
        for i in &self.indices[..n] {
            out.extend_from_slice(&i.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_is_a_byte_in_2013_and_a_word_in_2019() {
        let b13 = hex::decode("1099090001000200030004000500060007000800 09".replace(' ', "")).unwrap();
        let b19 = hex::decode("109900090001000200030004000500060007000800 09".replace(' ', "")).unwrap();
        let r13 = RetransmitRequest::decode(&b13, Version::V2013).unwrap();
        let r19 = RetransmitRequest::decode(&b19, Version::V2019).unwrap();
        assert_eq!(r13, r19);
        assert_eq!((r13.orig_serial, r13.indices.len()), (4249, 9));
        let (mut o13, mut o19) = (Vec::new(), Vec::new());
        r13.encode(Version::V2013, &mut o13);
        r13.encode(Version::V2019, &mut o19);
        assert_eq!((o13, o19), (b13, b19));
    }

    #[test]
    fn a_count_that_does_not_fit_is_named() {
        let e = RetransmitRequest::decode(&[0, 1, 3, 0, 1], Version::V2013).unwrap_err();
        assert_eq!(
            e.to_string(),
            "count at body byte 3: declares 3 indices but 2 bytes follow"
        );
    }

    #[test]
    fn builds_from_toml() {
        let r: RetransmitRequest = toml::from_str("orig_serial = 7\nindices = [2, 5]").unwrap();
        assert_eq!(r.indices, [2, 5]);
    }
}
