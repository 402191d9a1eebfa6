//! Typed message bodies, one file per message (request and reply together when they pair up).
//!
//! Every body decodes from and encodes to its exact bytes (round-trip exact), serialises with serde
//! under stable snake_case field names (they are the transcript and JSON contract), and an id this
//! module does not know keeps its raw bytes.
//!
//! | id | variant | file |
//! |---|---|---|
//! | 0x0001 / 0x8001 | `TerminalGeneralResponse` / `PlatformGeneralResponse` | general_response.rs |
//! | 0x0002 / 0x0003 | `Heartbeat` / `Deregister` | empty.rs |
//! | 0x0100 / 0x8100 | `Register` / `RegisterResponse` | register.rs |
//! | 0x0102 | `Auth` | auth.rs |
//! | 0x0200 | `LocationReport` | location.rs |
//! | 0x0704 | `BatchLocation` | batch_location.rs |
//! | 0x0801 / 0x8800 | `MediaUpload` / `MediaUploadResponse` | media.rs |
//! | 0x8003 / 0x0005 | `PlatformRetransmitRequest` / `TerminalRetransmitRequest` | retransmit.rs |
//! | 0x1003 | `AvAttributes` | av_attributes.rs |
//! | 0x9205 / 0x1205 | `AvResourceQuery` / `AvResourceList` | av_resources.rs |
//! | 0x9206 / 0x9207 / 0x1206 | `FileUploadCommand` / `FileUploadControl` / `FileUploadComplete` | file_upload.rs |
//! | 0x9101 / 0x9102 | `LiveAvRequest` / `LiveAvControl` | live_av.rs |
//!
//! The platform commands (0x8001, 0x8100, 0x8003, 0x8800, 0x9101, 0x9102, 0x9205, 0x9206, 0x9207)
//! also deserialize, so scenarios can write them in TOML: see [`Body::command`].

use serde::{Deserialize, Deserializer, Serialize};

use super::header::Version;
use super::wire::WireError;

pub mod auth;
pub mod av_attributes;
pub mod av_resources;
pub mod batch_location;
pub mod empty;
pub mod file_upload;
pub mod general_response;
pub mod live_av;
pub mod location;
pub mod media;
pub mod register;
pub mod retransmit;

pub use auth::Auth;
pub use av_attributes::AvAttributes;
pub use av_resources::{AvResource, AvResourceList, AvResourceQuery};
pub use batch_location::{BatchItem, BatchLocation, CutItem};
pub use empty::EmptyBody;
pub use file_upload::{FileUploadCommand, FileUploadComplete, FileUploadControl};
pub use general_response::GeneralResponse;
pub use live_av::{LiveAvControl, LiveAvRequest};
pub use location::{IssueKind, ItemValue, LayoutCache, Location, LocationIssue, LocationItem, LocationItems};
pub use media::{MediaUpload, MediaUploadResponse};
pub use register::{Register, RegisterResponse};
pub use retransmit::RetransmitRequest;

/// A message body. Serialises untagged: the JSON is the body's own fields (the message id sits
/// beside it in the message). The bodies with several strings are boxed so a `Body` stays small
/// (the hot 0x0200 body is inline).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Body {
    /// 0x0001 terminal general response.
    TerminalGeneralResponse(GeneralResponse),
    /// 0x8001 platform general response.
    PlatformGeneralResponse(GeneralResponse),
    /// 0x0002 heartbeat (a body some devices send anyway is kept).
    Heartbeat(EmptyBody),
    /// 0x0003 terminal deregister.
    Deregister(EmptyBody),
    /// 0x0100 terminal register (2011, 2013 or 2019 layout).
    Register(Box<Register>),
    /// 0x8100 register response.
    RegisterResponse(RegisterResponse),
    /// 0x0102 terminal authentication.
    Auth(Box<Auth>),
    /// 0x0200 location report.
    LocationReport(Location),
    /// 0x0704 batch location upload.
    BatchLocation(BatchLocation),
    /// 0x0801 multimedia data upload.
    MediaUpload(Box<MediaUpload>),
    /// 0x8800 multimedia upload response.
    MediaUploadResponse(MediaUploadResponse),
    /// 0x8003 platform asks for packets again.
    PlatformRetransmitRequest(RetransmitRequest),
    /// 0x0005 terminal asks for packets again (2019).
    TerminalRetransmitRequest(RetransmitRequest),
    /// 0x1003 audio/video attributes (JT/T 1078).
    AvAttributes(AvAttributes),
    /// 0x1205 audio/video resource list (JT/T 1078).
    AvResourceList(AvResourceList),
    /// 0x1206 file upload complete (JT/T 1078).
    FileUploadComplete(FileUploadComplete),
    /// 0x9101 live audio/video request (JT/T 1078).
    LiveAvRequest(LiveAvRequest),
    /// 0x9102 live audio/video control (JT/T 1078).
    LiveAvControl(LiveAvControl),
    /// 0x9205 audio/video resource query (JT/T 1078).
    AvResourceQuery(AvResourceQuery),
    /// 0x9206 file upload command (JT/T 1078).
    FileUploadCommand(Box<FileUploadCommand>),
    /// 0x9207 file upload control (JT/T 1078).
    FileUploadControl(FileUploadControl),
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
    /// What failed: the body kind, the field and its body byte offset
    /// (`"location_report: lat at body byte 8: needs 4 bytes, 2 left"`).
    pub error: String,
    /// The body bytes, hex in JSON.
    #[serde(with = "hex::serde")]
    pub raw: Vec<u8>,
}

/// The snake_case name of a typed message id (the value of [`Body::kind`]).
pub fn kind_of(msg_id: u16) -> Option<&'static str> {
    Some(match msg_id {
        0x0001 => "terminal_general_response",
        0x8001 => "platform_general_response",
        0x0002 => "heartbeat",
        0x0003 => "deregister",
        0x0100 => "register",
        0x8100 => "register_response",
        0x0102 => "auth",
        0x0200 => "location_report",
        0x0704 => "batch_location",
        0x0801 => "media_upload",
        0x8800 => "media_upload_response",
        0x8003 => "platform_retransmit_request",
        0x0005 => "terminal_retransmit_request",
        0x1003 => "av_attributes",
        0x1205 => "av_resource_list",
        0x1206 => "file_upload_complete",
        0x9101 => "live_av_request",
        0x9102 => "live_av_control",
        0x9205 => "av_resource_query",
        0x9206 => "file_upload_command",
        0x9207 => "file_upload_control",
        _ => return None,
    })
}

impl Body {
    /// Decodes the body of message `msg_id` under a header of `version`. Never fails: a body that
    /// does not parse is kept raw with the reason ([`Body::Invalid`]); an id without a typed body
    /// is [`Body::Raw`].
    pub fn decode(msg_id: u16, version: Version, bytes: &[u8]) -> Body {
        if msg_id == Location::ID {
            // The hot path: no intermediate `Result<Body, _>` to move the location through.
            return match Location::decode(bytes) {
                Ok(loc) => Body::LocationReport(loc),
                Err(e) => Body::invalid(msg_id, e, bytes),
            };
        }
        let typed: Result<Body, WireError> = match msg_id {
            GeneralResponse::TERMINAL_ID => GeneralResponse::decode(bytes).map(Body::TerminalGeneralResponse),
            GeneralResponse::PLATFORM_ID => GeneralResponse::decode(bytes).map(Body::PlatformGeneralResponse),
            EmptyBody::HEARTBEAT_ID => Ok(Body::Heartbeat(EmptyBody::decode(bytes))),
            EmptyBody::DEREGISTER_ID => Ok(Body::Deregister(EmptyBody::decode(bytes))),
            Register::ID => Register::decode(bytes, version).map(|b| Body::Register(Box::new(b))),
            RegisterResponse::ID => RegisterResponse::decode(bytes).map(Body::RegisterResponse),
            Auth::ID => Auth::decode(bytes, version).map(|b| Body::Auth(Box::new(b))),
            BatchLocation::ID => BatchLocation::decode(bytes).map(Body::BatchLocation),
            MediaUpload::ID => MediaUpload::decode(bytes, version).map(|b| Body::MediaUpload(Box::new(b))),
            MediaUploadResponse::ID => MediaUploadResponse::decode(bytes).map(Body::MediaUploadResponse),
            RetransmitRequest::PLATFORM_ID => {
                RetransmitRequest::decode(bytes, version).map(Body::PlatformRetransmitRequest)
            }
            RetransmitRequest::TERMINAL_ID => {
                RetransmitRequest::decode(bytes, version).map(Body::TerminalRetransmitRequest)
            }
            AvAttributes::ID => AvAttributes::decode(bytes).map(Body::AvAttributes),
            AvResourceList::ID => AvResourceList::decode(bytes).map(Body::AvResourceList),
            FileUploadComplete::ID => FileUploadComplete::decode(bytes).map(Body::FileUploadComplete),
            LiveAvRequest::ID => LiveAvRequest::decode(bytes).map(Body::LiveAvRequest),
            LiveAvControl::ID => LiveAvControl::decode(bytes).map(Body::LiveAvControl),
            AvResourceQuery::ID => AvResourceQuery::decode(bytes).map(Body::AvResourceQuery),
            FileUploadCommand::ID => FileUploadCommand::decode(bytes).map(|b| Body::FileUploadCommand(Box::new(b))),
            FileUploadControl::ID => FileUploadControl::decode(bytes).map(Body::FileUploadControl),
            _ => return Body::Raw(RawBody { raw: bytes.to_vec() }),
        };
        typed.unwrap_or_else(|e| Body::invalid(msg_id, e, bytes))
    }

    #[cold]
    pub(crate) fn invalid(msg_id: u16, e: WireError, bytes: &[u8]) -> Body {
        Body::Invalid(InvalidBody {
            error: format!("{}: {e}", kind_of(msg_id).unwrap_or("body")),
            raw: bytes.to_vec(),
        })
    }

    /// Appends the body's bytes. `version` matters where the layout depends on it and the body
    /// does not carry it: the retransmit-request count (BYTE before 2019, WORD in 2019). A decoded
    /// body re-encodes to its exact bytes under the version it was decoded with.
    pub fn encode(&self, version: Version, out: &mut Vec<u8>) {
        match self {
            Body::TerminalGeneralResponse(b) | Body::PlatformGeneralResponse(b) => b.encode(out),
            Body::Heartbeat(b) | Body::Deregister(b) => b.encode(out),
            Body::Register(b) => b.encode(out),
            Body::RegisterResponse(b) => b.encode(out),
            Body::Auth(b) => b.encode(out),
            Body::LocationReport(b) => b.encode(out),
            Body::BatchLocation(b) => b.encode(out),
            Body::MediaUpload(b) => b.encode(out),
            Body::MediaUploadResponse(b) => b.encode(out),
            Body::PlatformRetransmitRequest(b) | Body::TerminalRetransmitRequest(b) => b.encode(version, out),
            Body::AvAttributes(b) => b.encode(out),
            Body::AvResourceList(b) => b.encode(out),
            Body::FileUploadComplete(b) => b.encode(out),
            Body::LiveAvRequest(b) => b.encode(out),
            Body::LiveAvControl(b) => b.encode(out),
            Body::AvResourceQuery(b) => b.encode(out),
            Body::FileUploadCommand(b) => b.encode(out),
            Body::FileUploadControl(b) => b.encode(out),
            Body::Raw(r) | Body::Encrypted(r) => out.extend_from_slice(&r.raw),
            Body::Invalid(r) => out.extend_from_slice(&r.raw),
        }
    }

    /// The message id of a typed body (`None` for raw, encrypted and invalid bodies, whose id is
    /// only in the header).
    pub fn msg_id(&self) -> Option<u16> {
        Some(match self {
            Body::TerminalGeneralResponse(_) => GeneralResponse::TERMINAL_ID,
            Body::PlatformGeneralResponse(_) => GeneralResponse::PLATFORM_ID,
            Body::Heartbeat(_) => EmptyBody::HEARTBEAT_ID,
            Body::Deregister(_) => EmptyBody::DEREGISTER_ID,
            Body::Register(_) => Register::ID,
            Body::RegisterResponse(_) => RegisterResponse::ID,
            Body::Auth(_) => Auth::ID,
            Body::LocationReport(_) => Location::ID,
            Body::BatchLocation(_) => BatchLocation::ID,
            Body::MediaUpload(_) => MediaUpload::ID,
            Body::MediaUploadResponse(_) => MediaUploadResponse::ID,
            Body::PlatformRetransmitRequest(_) => RetransmitRequest::PLATFORM_ID,
            Body::TerminalRetransmitRequest(_) => RetransmitRequest::TERMINAL_ID,
            Body::AvAttributes(_) => AvAttributes::ID,
            Body::AvResourceList(_) => AvResourceList::ID,
            Body::FileUploadComplete(_) => FileUploadComplete::ID,
            Body::LiveAvRequest(_) => LiveAvRequest::ID,
            Body::LiveAvControl(_) => LiveAvControl::ID,
            Body::AvResourceQuery(_) => AvResourceQuery::ID,
            Body::FileUploadCommand(_) => FileUploadCommand::ID,
            Body::FileUploadControl(_) => FileUploadControl::ID,
            Body::Raw(_) | Body::Encrypted(_) | Body::Invalid(_) => return None,
        })
    }

    /// A stable snake_case name of the body, for transcripts: `"location_report"`, ... (see
    /// [`kind_of`]), or `"raw"`, `"encrypted"`, `"invalid"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Raw(_) => "raw",
            Body::Encrypted(_) => "encrypted",
            Body::Invalid(_) => "invalid",
            typed => typed.msg_id().and_then(kind_of).unwrap_or("raw"),
        }
    }

    /// The version the body's layout proves, where the header cannot tell: `Some(V2011)` for a
    /// 0x0100 read with the 2011 layout (see [`register`] for the rule).
    pub fn detected_version(&self) -> Option<Version> {
        match self {
            Body::Register(r) if r.layout == Version::V2011 => Some(Version::V2011),
            _ => None,
        }
    }

    /// For a body that answers an earlier message: the serial it answers (0x0001, 0x8001, 0x8100,
    /// 0x1205, 0x1206). Used by the client to match replies to requests. 0x8003/0x0005 carry the
    /// serial of a message to resend and 0x9207 that of an upload to control: neither answers,
    /// so neither is a reply serial.
    pub fn reply_serial(&self) -> Option<u16> {
        match self {
            Body::TerminalGeneralResponse(b) | Body::PlatformGeneralResponse(b) => Some(b.reply_serial),
            Body::RegisterResponse(b) => Some(b.reply_serial),
            Body::AvResourceList(b) => Some(b.reply_serial),
            Body::FileUploadComplete(b) => Some(b.reply_serial),
            _ => None,
        }
    }

    /// Builds a platform command body from its fields (a TOML table or JSON object in a scenario),
    /// choosing the type by `msg_id`: 0x8001, 0x8100, 0x8003, 0x8800, 0x9101, 0x9102, 0x9205,
    /// 0x9206, 0x9207. Unknown fields are refused. Any other id is an error naming the id.
    pub fn command<'de, D: Deserializer<'de>>(msg_id: u16, d: D) -> Result<Body, D::Error> {
        Ok(match msg_id {
            GeneralResponse::PLATFORM_ID => Body::PlatformGeneralResponse(GeneralResponse::deserialize(d)?),
            RegisterResponse::ID => Body::RegisterResponse(RegisterResponse::deserialize(d)?),
            RetransmitRequest::PLATFORM_ID => Body::PlatformRetransmitRequest(RetransmitRequest::deserialize(d)?),
            MediaUploadResponse::ID => Body::MediaUploadResponse(MediaUploadResponse::deserialize(d)?),
            LiveAvRequest::ID => Body::LiveAvRequest(LiveAvRequest::deserialize(d)?),
            LiveAvControl::ID => Body::LiveAvControl(LiveAvControl::deserialize(d)?),
            AvResourceQuery::ID => Body::AvResourceQuery(AvResourceQuery::deserialize(d)?),
            FileUploadCommand::ID => Body::FileUploadCommand(Box::new(FileUploadCommand::deserialize(d)?)),
            FileUploadControl::ID => Body::FileUploadControl(FileUploadControl::deserialize(d)?),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "message 0x{other:04X} is not a platform command that can be built from fields \
                     (0x8001, 0x8100, 0x8003, 0x8800, 0x9101, 0x9102, 0x9205, 0x9206, 0x9207)"
                )));
            }
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_does_not_parse_is_kept_raw_with_kind_field_and_offset() {
        let b = Body::decode(0x0200, Version::V2013, &[0; 10]);
        let Body::Invalid(inv) = &b else { panic!("{b:?}") };
        assert_eq!(inv.error, "location_report: lat at body byte 8: needs 4 bytes, 2 left");
        assert_eq!(b.kind(), "invalid");
        let mut out = Vec::new();
        b.encode(Version::V2013, &mut out);
        assert_eq!(out, [0; 10]);
    }

    #[test]
    fn kinds_and_reply_serials() {
        let raw = Body::decode(0x0104, Version::V2013, &[1, 2]);
        assert_eq!((raw.kind(), raw.msg_id()), ("raw", None));
        let done = Body::decode(0x1206, Version::V2019, &[0x1B, 0x8A, 1]);
        assert_eq!((done.kind(), done.reply_serial()), ("file_upload_complete", Some(7050)));
        let reg = Body::decode(0x8100, Version::V2013, &[0, 9, 0, b'a']);
        assert_eq!(reg.reply_serial(), Some(9));
        let resend = Body::decode(0x8003, Version::V2013, &[0, 9, 1, 0, 2]);
        assert_eq!(
            (resend.kind(), resend.reply_serial()),
            ("platform_retransmit_request", None)
        );
        for id in [0x0001, 0x0002, 0x0200, 0x0704, 0x1205, 0x9101, 0x9207] {
            let name = kind_of(id).unwrap();
            assert!(name.bytes().all(|c| c.is_ascii_lowercase() || c == b'_'), "{name}");
        }
    }

    #[test]
    fn a_2011_register_body_reveals_its_version() {
        let b = hex::decode("001f007363640000007777772e3830382e3736353433323101b2e24131323334").unwrap();
        assert_eq!(
            Body::decode(0x0100, Version::V2013, &b).detected_version(),
            Some(Version::V2011)
        );
        assert_eq!(Body::decode(0x0200, Version::V2013, &[0; 28]).detected_version(), None);
    }

    #[test]
    fn platform_commands_build_from_toml_by_id() {
        let t: toml::Value = toml::from_str("channel = 1\ncommand = 0\nclose_av_type = 0\nstream_type = 1").unwrap();
        let b = Body::command(0x9102, t).unwrap();
        assert_eq!(b.kind(), "live_av_control");
        let mut out = Vec::new();
        b.encode(Version::V2013, &mut out);
        assert_eq!(out, [1, 0, 0, 1]);
        let t: toml::Value = toml::from_str("reply_serial = 1\nreply_id = \"0x0200\"\nresult = 0").unwrap();
        assert!(matches!(Body::command(0x8001, t), Ok(Body::PlatformGeneralResponse(_))));
        let t: toml::Value = toml::from_str("x = 1").unwrap();
        let e = Body::command(0x0200, t).unwrap_err().to_string();
        assert!(e.contains("0x0200 is not a platform command"), "{e}");
    }
}
