//! The answers of a 2019 terminal to the commands that get more than a general response, built
//! from what the terminal holds ([`super::held::Held`]). Each function returns the messages to
//! send, in order, as `(msg_id, body)`; the script encodes them with the terminal's serials.
//! The table of which command gets which answer is in the parent module's doc.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::Terminal;
use super::held::{Area, Held};
use crate::codec::Version;
use crate::codec::body::media_search::StoredMedia;
use crate::codec::body::{
    AreaAnswer, AvAttributes, Body, CameraShot, CameraShotAnswer, DriverIdentity, GeneralResponse, Location,
    LocationAnswer, LocationItems, MediaSearch, MediaSearchAnswer, MediaUpload, Param, ParamAnswer, QueryAreas,
    RecorderUpload, TerminalAttributes, VehicleControl,
};
use crate::codec::wire::{BcdTime, Text};

/// 0x0104 terminal parameter answer.
pub const PARAM_ANSWER: u16 = 0x0104;
/// 0x0107 terminal attributes.
pub const ATTRIBUTES: u16 = 0x0107;
/// 0x0201 location answer.
pub const LOCATION_ANSWER: u16 = 0x0201;
/// 0x0500 vehicle control answer.
pub const VEHICLE_CONTROL_ANSWER: u16 = 0x0500;
/// 0x0608 area answer.
pub const AREA_ANSWER: u16 = 0x0608;
/// 0x0802 stored media search answer.
pub const MEDIA_SEARCH_ANSWER: u16 = 0x0802;
/// 0x0805 camera shot answer.
pub const CAMERA_SHOT_ANSWER: u16 = 0x0805;
/// 0x1003 audio/video attributes (JT/T 1078).
pub const AV_ATTRIBUTES: u16 = 0x1003;

/// Most photos one 0x8801 takes: more asked for is capped, logged and counted.
pub const MAX_SHOTS: u16 = 8;
/// Size range of a simulated photo, bytes: two or three packets of the default 512.
const PHOTO_LEN: std::ops::Range<usize> = 600..1400;

/// The terminal's position when nothing reported one yet: central Shenzhen, ACC on, positioned,
/// GPS and BeiDou, parked, at the simulated `secs`.
pub fn fallback_position(secs: u64) -> Location {
    Location {
        alarm: 0,
        status: 1 | 1 << 1 | 1 << 18 | 1 << 19,
        lat: 22_540_000,
        lng: 114_060_000,
        altitude: 20,
        speed: 0,
        direction: 0,
        time: super::sim_time(secs),
        items: LocationItems::new(),
        issues: Vec::new(),
    }
}

/// 0x0104 with `params`, naming the query's serial.
pub fn param_answer(reply_serial: u16, params: Vec<Param>) -> (u16, Body) {
    let body = ParamAnswer {
        reply_serial,
        count: params.len() as u8,
        params,
        rest: Vec::new(),
        issues: Vec::new(),
    };
    (PARAM_ANSWER, Body::ParamAnswer(body))
}

/// 0x0107: a fixed maker and model, the terminal id and ICCID from the phone, in the layout of
/// the terminal's version (2019 widens model and terminal id).
pub fn attributes(term: &Terminal) -> (u16, Body) {
    let phone = term.phone().to_string();
    let mut iccid = Vec::with_capacity(10);
    term.phone().write_bcd(10, &mut iccid);
    let mut iccid_bytes = [0u8; 10];
    iccid_bytes.copy_from_slice(&iccid[..10]);
    let tail = &phone[phone.len().saturating_sub(7)..];
    let body = TerminalAttributes {
        // Bit 0 passenger vehicle, bit 1 dangerous goods no, bit 2 freight: a passenger vehicle.
        terminal_type: 0b1,
        maker: Text::new("SIMHS"),
        model: Text::new("JT808-SIM"),
        terminal_id: Text::new(tail),
        iccid: iccid_bytes,
        hardware_version: Text::new("HW1.0"),
        firmware_version: Text::new("FW2.3.1"),
        // GNSS bit 0 GPS, bit 1 BeiDou; communication bit 1 GPRS.
        gnss: 0b11,
        comm: 0b10,
        layout: match term.version() {
            Version::V2019 => Version::V2019,
            _ => Version::V2013,
        },
    };
    (ATTRIBUTES, Body::TerminalAttributes(Box::new(body)))
}

/// 0x0201 or 0x0500: the reply serial and the current position.
pub fn location_answer(msg_id: u16, reply_serial: u16, location: Location) -> (u16, Body) {
    let answer = Box::new(LocationAnswer { reply_serial, location });
    let body = if msg_id == VEHICLE_CONTROL_ANSWER {
        Body::VehicleControlAnswer(answer)
    } else {
        Body::LocationAnswer(answer)
    };
    (msg_id, body)
}

/// What an 0x8500 asks of the doors: `Some(true)` lock, `Some(false)` unlock, `None` nothing the
/// terminal knows. 2011/2013: flag bit 0, 1 lock; 2019: control type 0x0001, parameter 0 lock.
pub fn doors_of(c: &VehicleControl) -> Option<bool> {
    if let Some(flag) = c.flag {
        return Some(flag & 1 == 1);
    }
    let item = c.controls.as_ref()?.iter().find(|i| i.id == 0x0001)?;
    item.param.first().map(|&p| p == 0)
}

/// 0x0608 with the held areas of the asked type and ids; `None` for an area type other than
/// 1..=4, which the caller answers 0x0001 result 1.
pub fn area_answer(held: &Held, q: &QueryAreas) -> Option<(u16, Body)> {
    let areas = held.areas(q.area_type, &q.ids)?;
    let body = AreaAnswer {
        area_type: q.area_type,
        areas,
    };
    Some((AREA_ANSWER, Body::AreaAnswer(body)))
}

/// The areas an 0x8600-0x8606 sets, with its setting type (0x8604 and 0x8606 set one area, which
/// replaces the one of its id).
pub fn areas_set(body: &Body) -> Option<(u8, Vec<Area>)> {
    Some(match body {
        Body::SetCircles(s) => (s.setting_type, s.areas.iter().cloned().map(Area::Circle).collect()),
        Body::SetRectangles(s) => (s.setting_type, s.areas.iter().cloned().map(Area::Rectangle).collect()),
        Body::SetPolygon(p) => (2, vec![Area::Polygon((**p).clone())]),
        Body::SetRoute(r) => (2, vec![Area::Route((**r).clone())]),
        _ => return None,
    })
}

/// The area type an 0x8601-0x8607 deletes and its ids.
pub fn areas_deleted(msg_id: u16, body: &Body) -> Option<(u8, Vec<u32>)> {
    let (Body::DeleteCircles(ids) | Body::DeleteRectangles(ids) | Body::DeletePolygons(ids) | Body::DeleteRoutes(ids)) =
        body
    else {
        return None;
    };
    let area_type = match msg_id {
        0x8601 => 1,
        0x8603 => 2,
        0x8605 => 3,
        _ => 4,
    };
    Some((area_type, ids.ids.clone()))
}

/// 0x0802 with the stored media matching the search.
pub fn media_search_answer(held: &Held, reply_serial: u16, q: &MediaSearch) -> (u16, Body) {
    let items = held.search_media(q);
    (
        MEDIA_SEARCH_ANSWER,
        Body::MediaSearchAnswer(MediaSearchAnswer { reply_serial, items }),
    )
}

/// An 0x8801's photos: the 0x0805 naming them, then one 0x0801 per photo taken at the current
/// position (real-time upload, save flag 0), or kept for a later search only (save flag 1). A
/// stop (command 0) or a video recording (0xFFFF) is answered 0x0805 with no media. `capped` is
/// set when more than [`MAX_SHOTS`] photos were asked for.
pub fn camera_shot(
    held: &mut Held,
    rng: &mut ChaCha8Rng,
    reply_serial: u16,
    c: &CameraShot,
    at: Location,
    capped: &mut bool,
) -> Vec<(u16, Body)> {
    let asked = if c.command == 0xFFFF { 0 } else { c.command };
    *capped = asked > MAX_SHOTS;
    let n = asked.min(MAX_SHOTS);
    let mut ids = Vec::with_capacity(usize::from(n));
    let mut uploads = Vec::new();
    for _ in 0..n {
        let media_id = held.take_media_id();
        ids.push(media_id);
        let stored = StoredMedia {
            media_id,
            media_type: 0,
            channel: c.channel,
            event: 0,
            location: at.clone(),
        };
        if let Some(old) = held.store_media(stored) {
            tracing::warn!(
                media_id = old.media_id,
                "stored media full (limit MAX_STORED_MEDIA); the oldest is forgotten"
            );
        }
        if c.save_flag == 0 {
            uploads.push((MediaUpload::ID, photo(rng, media_id, c.channel, at.clone())));
        }
    }
    let answer = CameraShotAnswer {
        reply_serial,
        result: 0,
        media_ids: Some(ids),
    };
    let mut out = vec![(CAMERA_SHOT_ANSWER, Body::CameraShotAnswer(answer))];
    out.extend(uploads);
    out
}

/// A JPEG-looking photo (SOI/APP0 at the start, EOI at the end, seeded bytes between).
fn photo(rng: &mut ChaCha8Rng, media_id: u32, channel: u8, at: Location) -> Body {
    let len = rng.random_range(PHOTO_LEN);
    let mut data = vec![0u8; len];
    rng.fill(&mut data[..]);
    data[..4].copy_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
    data[len - 2..].copy_from_slice(&[0xFF, 0xD9]);
    Body::MediaUpload(Box::new(MediaUpload {
        media_id,
        media_type: 0,
        media_format: 0,
        // Event 0: taken on the platform's command.
        event: 0,
        channel,
        location: Some(at),
        data,
    }))
}

/// 0x1003: G.711A audio, mono 8 kHz 16-bit, H.264 video, 4 video channels (JT/T 1078 table 11).
pub fn av_attributes() -> (u16, Body) {
    let body = AvAttributes {
        audio_encoding: 6,
        audio_channels: 1,
        audio_sample_rate: 0,
        audio_sample_bits: 1,
        audio_frame_len: 320,
        audio_output: 1,
        video_encoding: 98,
        max_audio_channels: 1,
        max_video_channels: 4,
    };
    (AV_ATTRIBUTES, Body::AvAttributes(body))
}

/// 0x0001 naming `reply_serial` and `reply_id` with `result`.
pub fn general(reply_serial: u16, reply_id: u16, result: u8) -> (u16, Body) {
    let body = GeneralResponse {
        reply_serial,
        reply_id,
        result,
    };
    (GeneralResponse::TERMINAL_ID, Body::TerminalGeneralResponse(body))
}

/// 0x0700 recorder data upload.
pub const RECORDER_UPLOAD: u16 = 0x0700;
/// 0x0702 driver identity report.
pub const DRIVER_IDENTITY: u16 = 0x0702;

/// 0x0700 answering a 0x8700 data collection command (JT/T 808 §8.45): the reply serial, the
/// command word, and a GB/T 19056 upload frame (`55 7A`, command, length, reserved, data, XOR of
/// every byte before it). The common commands carry data: 0x01 the driver's licence (18 bytes),
/// 0x02 the recorder's clock (BCD[6], `time`), 0x05 vehicle information (VIN 17, plate 12 GBK,
/// plate class 12 GBK); any other command word gets a frame with no data.
pub fn recorder_upload(term: &Terminal, reply_serial: u16, command: u8, time: BcdTime) -> (u16, Body) {
    let mut data = Vec::new();
    match command {
        0x01 => Text::new(format!("DL{:0>16}", term.phone().to_string())).encode_fixed(18, &mut data),
        0x02 => data.extend_from_slice(&time.0),
        0x05 => {
            Text::new(format!("LSIM{:0>13}", term.phone().to_string())).encode_fixed(17, &mut data);
            let phone = term.phone().to_string();
            Text::new(format!("粤B{}", &phone[phone.len().saturating_sub(5)..])).encode_fixed(12, &mut data);
            Text::new("小型汽车").encode_fixed(12, &mut data);
        }
        _ => {}
    }
    let mut frame = vec![0x55, 0x7A, command];
    frame.extend_from_slice(&(data.len() as u16).to_be_bytes());
    frame.push(0x00);
    frame.extend_from_slice(&data);
    frame.push(frame.iter().fold(0, |a, b| a ^ b));
    let body = RecorderUpload {
        reply_serial,
        command,
        data: frame,
    };
    (RECORDER_UPLOAD, Body::RecorderUpload(body))
}

/// 0x0702 answering a 0x8702 driver identity request (JT/T 808 §8.47), in the terminal's edition:
/// an IC card inserted and read (state 1, result 0) with a stand-in driver whose certificate
/// follows the phone, so every terminal reports its own.
pub fn driver_identity(term: &Terminal, time: BcdTime) -> (u16, Body) {
    let layout = term.version();
    let phone = term.phone().to_string();
    let mut d = DriverIdentity::empty(layout);
    d.name = Some(Text::new("张三"));
    d.certificate = Some(Text::new(format!("{phone:0>20}")));
    d.organization = Some(Text::new("SIM"));
    d.id_number = Some(Text::new(format!("{phone:0>20}")));
    if layout != Version::V2011 {
        d.state = Some(1);
        d.time = Some(time);
        d.ic_result = Some(0);
        d.validity = Some([0x20, 0x30, 0x12, 0x31]);
        if layout == Version::V2013 {
            d.id_number = None;
        }
    }
    (DRIVER_IDENTITY, Body::DriverIdentity(Box::new(d)))
}
