//! Typed message bodies, one file per message (request and reply together when they pair up).
//!
//! Every body decodes from and encodes to its exact bytes (round-trip exact), serialises with serde
//! under stable snake_case field names (they are the transcript and JSON contract), and an id this
//! module does not know keeps its raw bytes.

use serde::Serialize;

use super::header::Version;

/// A message body. Serialises untagged: the JSON is the body's own fields (the message id sits
/// beside it in the message).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Body {
    /// Any id without a typed body: the raw bytes.
    Raw(RawBody),
    /// An encrypted body (body-properties bits 10-12 not zero): kept raw, never decoded.
    Encrypted(RawBody),
}

/// Bytes kept as they came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawBody {
    /// The body bytes, hex in JSON.
    #[serde(with = "hex::serde")]
    pub raw: Vec<u8>,
}

impl Body {
    /// Decodes the body of message `msg_id`. Never fails: a body that does not parse is kept raw
    /// with the reason.
    pub fn decode(msg_id: u16, version: Version, bytes: &[u8]) -> Body {
        let _ = (msg_id, version);
        Body::Raw(RawBody { raw: bytes.to_vec() })
    }

    /// Appends the body's bytes.
    pub fn encode(&self, version: Version, out: &mut Vec<u8>) {
        let _ = version;
        match self {
            Body::Raw(r) | Body::Encrypted(r) => out.extend_from_slice(&r.raw),
        }
    }

    /// The version the body's layout proves, where the header cannot tell (2011 vs 2013 for 0x0100).
    pub fn detected_version(&self) -> Option<Version> {
        None
    }
}
