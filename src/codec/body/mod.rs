//! Typed message bodies, one file per message family (request and reply together).
//!
//! Every body decodes from and encodes to its exact bytes (round-trip exact), serialises with serde
//! under stable snake_case field names (they are the transcript and JSON contract), and an id this
//! module does not know keeps its raw bytes.
//!
//! The dispatch is data: the [`bodies!`] table below names, for every message id, its direction,
//! the `Body` variant, its type and its snake_case kind; the enum, [`kind_of`], [`MESSAGE_IDS`],
//! decode, encode, `msg_id` and [`Body::command`] are generated from it, so adding an id is one
//! line and no function grows. Every type implements [`codec::BodyCodec`]. The 0x0200 hot path
//! is taken before the table (see [`Body::decode`]).
//!
//! Ids the 2019 edition deleted (0x0301-0x0303, 0x8301-0x8304) still decode, wrapped in
//! [`Deleted`], whose JSON says `"deleted_in_2019": true`. Ids in the vendor ranges
//! (0x0F00-0x0FFF, 0x8F00-0x8FFF, 0xE000-0xFFFF) are [`Body::Vendor`] (`"vendor": true` beside
//! the raw bytes); any other id without a type is [`Body::Raw`].
//!
//! The platform commands (the table rows marked `[cmd]`) also deserialize, so scenarios can write
//! them in TOML: see [`Body::command`].

use serde::{Deserialize, Deserializer, Serialize};

use super::header::Version;
use super::wire::WireError;

#[macro_use]
pub mod codec;

pub mod area;
pub mod attributes;
pub mod auth;
pub mod av_attributes;
pub mod av_control;
pub mod av_resources;
pub mod batch_location;
pub mod can;
pub mod compressed;
pub mod driver;
pub mod empty;
pub mod events;
pub mod file_upload;
pub mod general_response;
pub mod live_av;
pub mod location;
pub mod location_query;
pub mod media;
pub mod media_event;
pub mod media_search;
pub mod params;
pub mod passthrough;
pub mod phone;
pub mod recorder;
pub mod register;
pub mod retransmit;
pub mod rsa;
pub mod terminal_control;
pub mod text;
pub mod time;
pub mod upgrade;
pub mod vehicle_control;

pub use area::{AreaAnswer, AreaIds, Circle, Polygon, QueryAreas, Rectangle, Route, SetCircles, SetRectangles};
pub use attributes::TerminalAttributes;
pub use auth::Auth;
pub use av_attributes::AvAttributes;
pub use av_control::{AvChannelStatus, PassengerFlow, PlaybackControl, PlaybackRequest, PtzAdjust, PtzRotate};
pub use av_resources::{AvResource, AvResourceList, AvResourceQuery};
pub use batch_location::{BatchItem, BatchLocation, CutItem};
pub use can::{CanData, CanItem};
pub use codec::BodyCodec;
pub use compressed::Compressed;
pub use driver::{DriverIdentity, Waybill};
pub use empty::EmptyBody;
pub use events::{Deleted, EventReport, EventSetting, InfoDemand, InfoMenu, InfoService, Question, QuestionAnswer};
pub use file_upload::{FileUploadCommand, FileUploadComplete, FileUploadControl};
pub use general_response::GeneralResponse;
pub use live_av::{LiveAvControl, LiveAvRequest};
pub use location::{IssueKind, ItemValue, LayoutCache, Location, LocationIssue, LocationItem, LocationItems};
pub use location_query::{AlarmConfirm, LocationAnswer, TemporaryTracking};
pub use media::{MediaUpload, MediaUploadResponse};
pub use media_event::MediaEvent;
pub use media_search::{
    AudioRecord, CameraShot, CameraShotAnswer, MediaSearch, MediaSearchAnswer, SingleMediaUpload, StoredMediaUpload,
};
pub use params::{Param, ParamAnswer, ParamValue, QueryParams, SetParams};
pub use passthrough::PassThrough;
pub use phone::{CallBack, Phonebook};
pub use recorder::{RecorderCommand, RecorderUpload};
pub use register::{Register, RegisterResponse};
pub use retransmit::RetransmitRequest;
pub use rsa::RsaKey;
pub use terminal_control::TerminalControl;
pub use text::TextMessage;
pub use time::ServerTime;
pub use upgrade::{UpgradePackage, UpgradeResult};
pub use vehicle_control::{ControlItem, VehicleControl};

/// Who sends a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Terminal to platform.
    Terminal,
    /// Platform to terminal.
    Platform,
}

/// One row of the id table: what [`MESSAGE_IDS`] lists for every typed id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IdInfo {
    /// The message id.
    pub id: u16,
    /// The snake_case kind ([`Body::kind`]).
    pub name: &'static str,
    /// Who sends it.
    pub from: Direction,
    /// The Rust type of its body.
    pub body_type: &'static str,
    /// Whether scenarios can build it from fields ([`Body::command`]).
    pub command: bool,
    /// Edition notes: `"2019"` (added in 2019), `"deleted_in_2019"`, `"jt1078"`, or `""`.
    pub edition: &'static str,
}

/// The table: `id direction Variant(Type) "kind" "edition" [cmd];`. See the module doc.
macro_rules! bodies {
    ($( $id:literal $dir:ident $var:ident($ty:ty) $name:literal $ed:literal $([$cmd:ident])? ; )*) => {
        /// A message body. Serialises untagged: the JSON is the body's own fields (the message id
        /// sits beside it in the message). The bodies with several strings are boxed so a `Body`
        /// stays small (the hot 0x0200 body is inline).
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(untagged)]
        pub enum Body {
            $(
                #[doc = concat!(stringify!($id), " ", $name, " (", stringify!($dir), ").")]
                $var($ty),
            )*
            /// Any id without a typed body: the raw bytes.
            Raw(RawBody),
            /// An id in a vendor range (0x0F00-0x0FFF, 0x8F00-0x8FFF, 0xE000-0xFFFF): raw, marked.
            Vendor(VendorBody),
            /// An encrypted body (body-properties bits 10-12 not zero): kept raw, never decoded.
            Encrypted(RawBody),
            /// A body of a known id that did not parse: kept raw, with the reason.
            Invalid(InvalidBody),
        }

        /// Every typed id, in table order.
        pub static MESSAGE_IDS: &[IdInfo] = &[$(
            IdInfo {
                id: $id,
                name: $name,
                from: Direction::$dir,
                body_type: stringify!($ty),
                command: false $( || { let _ = stringify!($cmd); true } )?,
                edition: $ed,
            },
        )*];

        /// The ids [`Body::command`] builds from fields.
        pub static COMMAND_IDS: &[u16] = &[$( $( { let _ = stringify!($cmd); $id }, )? )*];

        /// The snake_case name of a typed message id (the value of [`Body::kind`]).
        pub fn kind_of(msg_id: u16) -> Option<&'static str> {
            Some(match msg_id {
                $( $id => $name, )*
                _ => return None,
            })
        }

        impl Body {
            /// The typed decode of `msg_id`, `None` for an id without a type.
            fn decode_typed(msg_id: u16, version: Version, bytes: &[u8]) -> Option<Result<Body, WireError>> {
                Some(match msg_id {
                    $( $id => <$ty as BodyCodec>::decode_body(bytes, version).map(Body::$var), )*
                    _ => return None,
                })
            }

            /// Appends the body's bytes. `version` matters where the layout depends on it and the
            /// body does not carry it (the 0x8003 count, BYTE before 2019 and WORD in 2019). A
            /// decoded body re-encodes to its exact bytes under the version it was decoded with.
            pub fn encode(&self, version: Version, out: &mut Vec<u8>) {
                match self {
                    $( Body::$var(b) => b.encode_body(version, out), )*
                    Body::Raw(r) | Body::Encrypted(r) => out.extend_from_slice(&r.raw),
                    Body::Vendor(r) => out.extend_from_slice(&r.raw),
                    Body::Invalid(r) => out.extend_from_slice(&r.raw),
                }
            }

            /// The message id of a typed body (`None` for raw, vendor, encrypted and invalid
            /// bodies, whose id is only in the header).
            pub fn msg_id(&self) -> Option<u16> {
                Some(match self {
                    $( Body::$var(_) => $id, )*
                    Body::Raw(_) | Body::Vendor(_) | Body::Encrypted(_) | Body::Invalid(_) => return None,
                })
            }

            /// Builds a platform command body from its fields (a TOML table or JSON object in a
            /// scenario), choosing the type by `msg_id` among [`COMMAND_IDS`]. Unknown fields are
            /// refused. Any other id is an error naming the id.
            pub fn command<'de, D: Deserializer<'de>>(msg_id: u16, d: D) -> Result<Body, D::Error> {
                Ok(match msg_id {
                    $( $( $id => { let _ = stringify!($cmd); Body::$var(<$ty>::deserialize(d)?) } )? )*
                    other => return Err(not_a_command(other)),
                })
            }
        }
    };
}

bodies! {
    0x0001 Terminal TerminalGeneralResponse(GeneralResponse) "terminal_general_response" "";
    0x8001 Platform PlatformGeneralResponse(GeneralResponse) "platform_general_response" "" [cmd];
    0x0002 Terminal Heartbeat(EmptyBody) "heartbeat" "";
    0x0003 Terminal Deregister(EmptyBody) "deregister" "";
    0x0004 Terminal QueryServerTime(EmptyBody) "query_server_time" "2019";
    0x8004 Platform ServerTime(ServerTime) "server_time" "2019" [cmd];
    0x8003 Platform PlatformRetransmitRequest(RetransmitRequest) "platform_retransmit_request" "" [cmd];
    0x0005 Terminal TerminalRetransmitRequest(RetransmitRequest) "terminal_retransmit_request" "2019";
    0x0100 Terminal Register(Box<Register>) "register" "";
    0x8100 Platform RegisterResponse(RegisterResponse) "register_response" "" [cmd];
    0x0102 Terminal Auth(Box<Auth>) "auth" "";
    0x8103 Platform SetParams(SetParams) "set_params" "" [cmd];
    0x8104 Platform QueryAllParams(EmptyBody) "query_all_params" "" [cmd];
    0x0104 Terminal ParamAnswer(ParamAnswer) "param_answer" "";
    0x8105 Platform TerminalControl(TerminalControl) "terminal_control" "" [cmd];
    0x8106 Platform QueryParams(QueryParams) "query_params" "" [cmd];
    0x8107 Platform QueryAttributes(EmptyBody) "query_attributes" "" [cmd];
    0x0107 Terminal TerminalAttributes(Box<TerminalAttributes>) "terminal_attributes" "";
    0x8108 Platform UpgradePackage(Box<UpgradePackage>) "upgrade_package" "" [cmd];
    0x0108 Terminal UpgradeResult(UpgradeResult) "upgrade_result" "";
    0x0200 Terminal LocationReport(Location) "location_report" "";
    0x8201 Platform QueryLocation(EmptyBody) "query_location" "" [cmd];
    0x0201 Terminal LocationAnswer(Box<LocationAnswer>) "location_answer" "";
    0x8202 Platform TemporaryTracking(TemporaryTracking) "temporary_tracking" "" [cmd];
    0x8203 Platform AlarmConfirm(AlarmConfirm) "alarm_confirm" "" [cmd];
    0x8204 Platform LinkCheck(EmptyBody) "link_check" "2019" [cmd];
    0x8300 Platform TextMessage(TextMessage) "text_message" "" [cmd];
    0x8301 Platform EventSetting(Deleted<EventSetting>) "event_setting" "deleted_in_2019" [cmd];
    0x0301 Terminal EventReport(Deleted<EventReport>) "event_report" "deleted_in_2019";
    0x8302 Platform Question(Deleted<Question>) "question" "deleted_in_2019" [cmd];
    0x0302 Terminal QuestionAnswer(Deleted<QuestionAnswer>) "question_answer" "deleted_in_2019";
    0x8303 Platform InfoMenu(Deleted<InfoMenu>) "info_menu" "deleted_in_2019" [cmd];
    0x0303 Terminal InfoDemand(Deleted<InfoDemand>) "info_demand" "deleted_in_2019";
    0x8304 Platform InfoService(Deleted<InfoService>) "info_service" "deleted_in_2019" [cmd];
    0x8400 Platform CallBack(CallBack) "call_back" "" [cmd];
    0x8401 Platform Phonebook(Phonebook) "phonebook" "" [cmd];
    0x8500 Platform VehicleControl(VehicleControl) "vehicle_control" "" [cmd];
    0x0500 Terminal VehicleControlAnswer(Box<LocationAnswer>) "vehicle_control_answer" "";
    0x8600 Platform SetCircles(SetCircles) "set_circles" "" [cmd];
    0x8601 Platform DeleteCircles(AreaIds) "delete_circles" "" [cmd];
    0x8602 Platform SetRectangles(SetRectangles) "set_rectangles" "" [cmd];
    0x8603 Platform DeleteRectangles(AreaIds) "delete_rectangles" "" [cmd];
    0x8604 Platform SetPolygon(Box<Polygon>) "set_polygon" "" [cmd];
    0x8605 Platform DeletePolygons(AreaIds) "delete_polygons" "" [cmd];
    0x8606 Platform SetRoute(Box<Route>) "set_route" "" [cmd];
    0x8607 Platform DeleteRoutes(AreaIds) "delete_routes" "" [cmd];
    0x8608 Platform QueryAreas(QueryAreas) "query_areas" "2019" [cmd];
    0x0608 Terminal AreaAnswer(AreaAnswer) "area_answer" "2019";
    0x8700 Platform RecorderCollect(RecorderCommand) "recorder_collect" "" [cmd];
    0x8701 Platform RecorderParams(RecorderCommand) "recorder_params" "" [cmd];
    0x0700 Terminal RecorderUpload(RecorderUpload) "recorder_upload" "";
    0x0701 Terminal Waybill(Waybill) "waybill" "";
    0x8702 Platform QueryDriver(EmptyBody) "query_driver" "" [cmd];
    0x0702 Terminal DriverIdentity(Box<DriverIdentity>) "driver_identity" "";
    0x0704 Terminal BatchLocation(BatchLocation) "batch_location" "";
    0x0705 Terminal CanData(CanData) "can_data" "";
    0x0800 Terminal MediaEvent(MediaEvent) "media_event" "";
    0x0801 Terminal MediaUpload(Box<MediaUpload>) "media_upload" "";
    0x8800 Platform MediaUploadResponse(MediaUploadResponse) "media_upload_response" "" [cmd];
    0x8801 Platform CameraShot(CameraShot) "camera_shot" "" [cmd];
    0x0805 Terminal CameraShotAnswer(CameraShotAnswer) "camera_shot_answer" "";
    0x8802 Platform MediaSearch(MediaSearch) "media_search" "" [cmd];
    0x0802 Terminal MediaSearchAnswer(MediaSearchAnswer) "media_search_answer" "";
    0x8803 Platform StoredMediaUpload(StoredMediaUpload) "stored_media_upload" "" [cmd];
    0x8804 Platform AudioRecord(AudioRecord) "audio_record" "" [cmd];
    0x8805 Platform SingleMediaUpload(SingleMediaUpload) "single_media_upload" "" [cmd];
    0x8900 Platform PassThroughDown(PassThrough) "pass_through_down" "" [cmd];
    0x0900 Terminal PassThroughUp(PassThrough) "pass_through_up" "";
    0x0901 Terminal Compressed(Compressed) "compressed" "";
    0x8A00 Platform PlatformRsaKey(RsaKey) "platform_rsa_key" "" [cmd];
    0x0A00 Terminal TerminalRsaKey(RsaKey) "terminal_rsa_key" "";
    0x1003 Terminal AvAttributes(AvAttributes) "av_attributes" "jt1078";
    0x9003 Platform QueryAvAttributes(EmptyBody) "query_av_attributes" "jt1078" [cmd];
    0x1005 Terminal PassengerFlow(PassengerFlow) "passenger_flow" "jt1078";
    0x9101 Platform LiveAvRequest(LiveAvRequest) "live_av_request" "jt1078" [cmd];
    0x9102 Platform LiveAvControl(LiveAvControl) "live_av_control" "jt1078" [cmd];
    0x9105 Platform AvChannelStatus(AvChannelStatus) "av_channel_status" "jt1078" [cmd];
    0x9201 Platform PlaybackRequest(Box<PlaybackRequest>) "playback_request" "jt1078" [cmd];
    0x9202 Platform PlaybackControl(PlaybackControl) "playback_control" "jt1078" [cmd];
    0x9205 Platform AvResourceQuery(AvResourceQuery) "av_resource_query" "jt1078" [cmd];
    0x1205 Terminal AvResourceList(AvResourceList) "av_resource_list" "jt1078";
    0x9206 Platform FileUploadCommand(Box<FileUploadCommand>) "file_upload_command" "jt1078" [cmd];
    0x1206 Terminal FileUploadComplete(FileUploadComplete) "file_upload_complete" "jt1078";
    0x9207 Platform FileUploadControl(FileUploadControl) "file_upload_control" "jt1078" [cmd];
    0x9301 Platform PtzRotate(PtzRotate) "ptz_rotate" "jt1078" [cmd];
    0x9302 Platform PtzFocus(PtzAdjust) "ptz_focus" "jt1078" [cmd];
    0x9303 Platform PtzAperture(PtzAdjust) "ptz_aperture" "jt1078" [cmd];
    0x9304 Platform PtzWiper(PtzAdjust) "ptz_wiper" "jt1078" [cmd];
    0x9305 Platform PtzInfrared(PtzAdjust) "ptz_infrared" "jt1078" [cmd];
    0x9306 Platform PtzZoom(PtzAdjust) "ptz_zoom" "jt1078" [cmd];
}

/// True for an id in a vendor range (0x0F00-0x0FFF, 0x8F00-0x8FFF, 0xE000-0xFFFF).
pub fn is_vendor_id(msg_id: u16) -> bool {
    matches!(msg_id, 0x0F00..=0x0FFF | 0x8F00..=0x8FFF | 0xE000..=0xFFFF)
}

#[cold]
fn not_a_command<E: serde::de::Error>(msg_id: u16) -> E {
    let ids: Vec<String> = COMMAND_IDS.iter().map(|id| format!("0x{id:04X}")).collect();
    E::custom(format!(
        "message 0x{msg_id:04X} is not a platform command that can be built from fields ({})",
        ids.join(", ")
    ))
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

/// Raw bytes of an id in a vendor range, marked as such in JSON (`"vendor": true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorBody {
    /// The body bytes.
    pub raw: Vec<u8>,
}

impl Serialize for VendorBody {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("VendorBody", 2)?;
        st.serialize_field("raw", &hex::encode(&self.raw))?;
        st.serialize_field("vendor", &true)?;
        st.end()
    }
}

impl Body {
    /// Decodes the body of message `msg_id` under a header of `version`. Never fails: a body that
    /// does not parse is kept raw with the reason ([`Body::Invalid`]); an id in a vendor range is
    /// [`Body::Vendor`], any other id without a typed body [`Body::Raw`].
    pub fn decode(msg_id: u16, version: Version, bytes: &[u8]) -> Body {
        if msg_id == Location::ID {
            // The hot path: no intermediate `Result<Body, _>` to move the location through.
            return match Location::decode(bytes) {
                Ok(loc) => Body::LocationReport(loc),
                Err(e) => Body::invalid(msg_id, e, bytes),
            };
        }
        match Body::decode_typed(msg_id, version, bytes) {
            Some(Ok(b)) => b,
            Some(Err(e)) => Body::invalid(msg_id, e, bytes),
            None if is_vendor_id(msg_id) => Body::Vendor(VendorBody { raw: bytes.to_vec() }),
            None => Body::Raw(RawBody { raw: bytes.to_vec() }),
        }
    }

    #[cold]
    pub(crate) fn invalid(msg_id: u16, e: WireError, bytes: &[u8]) -> Body {
        Body::Invalid(InvalidBody {
            error: format!("{}: {e}", kind_of(msg_id).unwrap_or("body")),
            raw: bytes.to_vec(),
        })
    }

    /// A stable snake_case name of the body, for transcripts: `"location_report"`, ... (see
    /// [`kind_of`]), or `"raw"`, `"vendor"`, `"encrypted"`, `"invalid"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Raw(_) => "raw",
            Body::Vendor(_) => "vendor",
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
    /// 0x0104, 0x0201, 0x0500, 0x0700, 0x0802, 0x0805, 0x1205, 0x1206). Used by the client to match
    /// replies to requests. 0x8003/0x0005 carry the serial of a message to resend and 0x9207 that
    /// of an upload to control: neither answers, so neither is a reply serial.
    pub fn reply_serial(&self) -> Option<u16> {
        match self {
            Body::TerminalGeneralResponse(b) | Body::PlatformGeneralResponse(b) => Some(b.reply_serial),
            Body::RegisterResponse(b) => Some(b.reply_serial),
            Body::ParamAnswer(b) => Some(b.reply_serial),
            Body::LocationAnswer(b) | Body::VehicleControlAnswer(b) => Some(b.reply_serial),
            Body::RecorderUpload(b) => Some(b.reply_serial),
            Body::MediaSearchAnswer(b) => Some(b.reply_serial),
            Body::CameraShotAnswer(b) => Some(b.reply_serial),
            Body::AvResourceList(b) => Some(b.reply_serial),
            Body::FileUploadComplete(b) => Some(b.reply_serial),
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
        let raw = Body::decode(0x0123, Version::V2013, &[1, 2]);
        assert_eq!((raw.kind(), raw.msg_id()), ("raw", None));
        let vendor = Body::decode(0x8F01, Version::V2013, &[1, 2]);
        assert_eq!((vendor.kind(), vendor.msg_id()), ("vendor", None));
        assert_eq!(
            serde_json::to_string(&vendor).unwrap(),
            r#"{"raw":"0102","vendor":true}"#
        );
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
    fn a_body_is_no_larger_than_the_inline_location_and_its_tag() {
        // Every decoded message moves a `Body`; the 0x0200 hot path is benchmarked with the
        // location inline. A new variant larger than that must be boxed (0x0201/0x0500 are).
        assert!(
            std::mem::size_of::<Body>() <= std::mem::size_of::<Location>() + 8,
            "Body is {} bytes",
            std::mem::size_of::<Body>()
        );
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
