//! 0x0002 heartbeat and 0x0003 deregister: bodies the standard leaves empty (JT808.md §3).
//!
//! "some devices send a body anyway (`iss-traccar5331-0002-with-body`, 17 bytes). Do not reject
//! it": the bytes are kept and re-encoded.

use serde::{Deserialize, Serialize};

/// The body of 0x0002 and 0x0003.
/// Also what 0x0004, 0x8104, 0x8107, 0x8201, 0x8204, 0x8702 and 0x9003 carry (empty bodies);
/// builds from an empty TOML table.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmptyBody {
    /// Bytes a device sent although the body should be empty (hex; absent when empty).
    #[serde(skip_serializing_if = "Vec::is_empty", with = "crate::codec::wire::hex_upper")]
    pub extra: Vec<u8>,
}

impl EmptyBody {
    /// Heartbeat id.
    pub const HEARTBEAT_ID: u16 = 0x0002;
    /// Deregister id.
    pub const DEREGISTER_ID: u16 = 0x0003;

    /// Keeps whatever came.
    pub fn decode(b: &[u8]) -> EmptyBody {
        EmptyBody { extra: b.to_vec() }
    }

    /// Appends the kept bytes (none for a conforming body).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.extra);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_body_serialises_to_an_empty_object_and_extra_bytes_are_kept() {
        assert_eq!(serde_json::to_string(&EmptyBody::decode(&[])).unwrap(), "{}");
        let b = EmptyBody::decode(&[0x5D, 0x10]);
        assert_eq!(serde_json::to_string(&b).unwrap(), r#"{"extra":"5D10"}"#);
        let mut out = Vec::new();
        b.encode(&mut out);
        assert_eq!(out, [0x5D, 0x10]);
    }
}
