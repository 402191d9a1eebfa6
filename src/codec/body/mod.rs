//! Typed message bodies, one file per message (request and reply together when they pair up).
//!
//! Every body decodes from and encodes to its exact bytes (round-trip exact), serialises with serde
//! under stable snake_case field names (they are the transcript and JSON contract), and an id this
//! module does not know keeps its raw bytes.

use serde::Serialize;

use super::header::Version;

pub mod general_response;

pub use general_response::GeneralResponse;

/// A message body. Serialises untagged: the JSON is the body's own fields (the message id sits
/// beside it in the message).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Body {
    /// 0x0001 terminal general response.
    TerminalGeneralResponse(GeneralResponse),
    /// 0x8001 platform general response.
    PlatformGeneralResponse(GeneralResponse),
    /// Any id without a typed body: the raw bytes.
    Raw(RawBody),
    /// An encrypted body (body-properties bits 10-12 not zero): kept raw, never decoded.
    Encrypted(RawBody),
    /// A body of a known id that did not parse: kept raw, with the reason.
    Invalid(InvalidBody),
}

/// Bytes kept as they came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawBody {
    /// The body bytes, hex in JSON.
    #[serde(with = "hex::serde")]
    pub raw: Vec<u8>,
}

/// A body that failed to parse as its id says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidBody {
    /// What failed and at which body offset.
    pub error: String,
    /// The body bytes, hex in JSON.
    #[serde(with = "hex::serde")]
    pub raw: Vec<u8>,
}

impl Body {
    /// Decodes the body of message `msg_id`. Never fails: a body that does not parse is kept raw
    /// with the reason ([`Body::Invalid`]).
    pub fn decode(msg_id: u16, version: Version, bytes: &[u8]) -> Body {
        let _ = version;
        let typed = match msg_id {
            GeneralResponse::TERMINAL_ID => GeneralResponse::decode(bytes).map(Body::TerminalGeneralResponse),
            GeneralResponse::PLATFORM_ID => GeneralResponse::decode(bytes).map(Body::PlatformGeneralResponse),
            _ => return Body::Raw(RawBody { raw: bytes.to_vec() }),
        };
        typed.unwrap_or_else(|error| {
            Body::Invalid(InvalidBody {
                error,
                raw: bytes.to_vec(),
            })
        })
    }

    /// Appends the body's bytes.
    pub fn encode(&self, version: Version, out: &mut Vec<u8>) {
        let _ = version;
        match self {
            Body::TerminalGeneralResponse(b) | Body::PlatformGeneralResponse(b) => b.encode(out),
            Body::Raw(r) | Body::Encrypted(r) => out.extend_from_slice(&r.raw),
            Body::Invalid(r) => out.extend_from_slice(&r.raw),
        }
    }

    /// The version the body's layout proves, where the header cannot tell (2011 vs 2013 for 0x0100).
    pub fn detected_version(&self) -> Option<Version> {
        None
    }

    /// For a body that answers an earlier message: the serial it answers (0x0001, 0x8001, 0x8100,
    /// 0x1205, 0x1206). Used by the client to match replies to requests.
    pub fn reply_serial(&self) -> Option<u16> {
        match self {
            Body::TerminalGeneralResponse(b) | Body::PlatformGeneralResponse(b) => Some(b.reply_serial),
            _ => None,
        }
    }
}

/// Serde helper: a message id as `"0x0200"`.
pub mod hex_id {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises as `0x%04X`.
    pub fn serialize<S: Serializer>(id: &u16, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("0x{id:04X}"))
    }

    /// Accepts `"0x0200"`, `"0200"` or a number.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Id {
            N(u16),
            S(String),
        }
        match Id::deserialize(d)? {
            Id::N(n) => Ok(n),
            Id::S(s) => {
                let t = s.trim_start_matches("0x").trim_start_matches("0X");
                u16::from_str_radix(t, 16).map_err(|_| serde::de::Error::custom(format!("bad message id {s:?}")))
            }
        }
    }
}
