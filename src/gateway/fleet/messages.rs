//! Bodies of the terminal messages a fleet sends by id ([`super::MessageIds`]) besides the five
//! of the weighted mix (0x0200, 0x0002, 0x0704, 0x0801, 0x1205, built in the parent module):
//! every other terminal-originated id of JT/T 808-2019 (with the ids 2019 deleted) and JT/T 1078,
//! each a plausible, typed body of its standard layout in the terminal's edition. Values come
//! from the terminal (phone, held parameters, its position) and its seeded RNG, never the clock.
//!
//! Messages that answer a platform command (0x0001, 0x0104, 0x0201, 0x0500, 0x0700, 0x0802,
//! 0x0805, 0x1206, ...) are sent unsolicited with reply serial 0: a decoder test, not a
//! conversation. Do not mix them with `[[commands]]` in one scenario, whose first serial is 0.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::codec::Version;
use crate::codec::body::area::{Areas, Point};
use crate::codec::body::media_search::StoredMedia;
use crate::codec::body::{
    AreaAnswer, Auth, AvResourceList, BatchLocation, Body, CameraShotAnswer, CanData, CanItem, Circle, Compressed,
    Deleted, DriverIdentity, EmptyBody, EventReport, FileUploadComplete, GeneralResponse, InfoDemand, Location,
    LocationAnswer, MediaEvent, MediaSearchAnswer, MediaUpload, PassThrough, PassengerFlow, QuestionAnswer,
    RecorderUpload, Register, RetransmitRequest, RsaKey, UpgradeResult, Waybill,
};
use crate::codec::wire::Text;
use crate::gateway::terminal::held::Held;
use crate::gateway::terminal::{Terminal, answers, sim_time};

/// The ids the weighted mix builds (in [`super::Mix`] order); any other terminal id is built here.
pub const MIX_IDS: [u16; 5] = [
    Location::ID,
    EmptyBody::HEARTBEAT_ID,
    BatchLocation::ID,
    MediaUpload::ID,
    AvResourceList::ID,
];

/// Everything a body is made from.
pub struct Scene<'a> {
    /// The sending terminal (phone, version).
    pub term: &'a Terminal,
    /// What it holds (its parameters; the defaults when no command changed them).
    pub held: &'a Held,
    /// Its fix now (basic block, no items).
    pub fix: Location,
    /// The simulated second now.
    pub secs: u64,
}

/// The body of terminal message `id`, `None` for an id this module does not build (the mix ids,
/// platform ids, untyped ids).
pub fn body_of(id: u16, s: &Scene<'_>, rng: &mut ChaCha8Rng) -> Option<Body> {
    let v19 = s.term.version().is_2019();
    Some(match id {
        0x0001 => Body::TerminalGeneralResponse(GeneralResponse {
            reply_serial: 0,
            reply_id: 0x8103,
            result: 0,
        }),
        0x0003 => Body::Deregister(EmptyBody::default()),
        0x0004 => Body::QueryServerTime(EmptyBody::default()),
        0x0005 => Body::TerminalRetransmitRequest(RetransmitRequest {
            orig_serial: rng.random(),
            indices: vec![1, rng.random_range(2..9)],
        }),
        0x0100 => Body::Register(Box::new(register(s))),
        0x0102 => Body::Auth(Box::new(Auth {
            code: Text::new(format!("AUTH{}", s.term.phone())),
            imei: v19.then(|| Text::new(format!("86{:013}", rng.random_range(0..10_000_000_000_000u64)))),
            software_version: v19.then(|| Text::new("FW2.3.1")),
        })),
        0x0104 => answers::param_answer(0, s.held.params()).1,
        0x0107 => answers::attributes(s.term).1,
        0x0108 => Body::UpgradeResult(UpgradeResult {
            upgrade_type: 0,
            result: 0,
        }),
        0x0201 => answers::location_answer(answers::LOCATION_ANSWER, 0, s.fix.clone()).1,
        0x0500 => Body::VehicleControlAnswer(Box::new(LocationAnswer {
            reply_serial: 0,
            location: s.fix.clone(),
        })),
        0x0608 => Body::AreaAnswer(area_answer(s, v19)),
        0x0700 => Body::RecorderUpload(recorder_upload(s)),
        0x0701 => Body::Waybill(Waybill {
            declared_len: None,
            content: Text::new(format!("运单 {:06} 深圳-广州", rng.random_range(0..1_000_000u32))),
        }),
        0x0702 => Body::DriverIdentity(Box::new(driver(s, v19))),
        0x0705 => Body::CanData(can(s, rng)),
        0x0800 => Body::MediaEvent(MediaEvent {
            media_id: rng.random_range(1..1000),
            media_type: 0,
            media_format: 0,
            event: 1,
            channel: 1,
        }),
        0x0802 | 0x0805 | 0x1003 | 0x1005 | 0x1206 => answer_like(id, s, rng),
        0x0900 => Body::PassThroughUp(PassThrough {
            // 0x41: serial port 1 (JT/T 808 §8.62).
            pass_type: 0x41,
            data: (0..rng.random_range(4..16)).map(|_| rng.random()).collect(),
        }),
        0x0901 => Body::Compressed(Compressed {
            declared_len: None,
            // A gzip member header, then seeded bytes: kept as sent, never inflated.
            data: [0x1F, 0x8B, 0x08, 0x00]
                .into_iter()
                .chain((0..12).map(|_| rng.random()))
                .collect(),
        }),
        0x0A00 => Body::TerminalRsaKey(RsaKey {
            e: 65_537,
            n: (0..128).map(|_| rng.random()).collect(),
        }),
        0x0301 => Body::EventReport(Deleted(EventReport { event_id: 1 })),
        0x0302 => Body::QuestionAnswer(Deleted(QuestionAnswer {
            reply_serial: 0,
            answer_id: 1,
        })),
        0x0303 => Body::InfoDemand(Deleted(InfoDemand { info_type: 1, flag: 1 })),
        _ => return None,
    })
}

/// The answers without a layout of their own elsewhere in this module.
fn answer_like(id: u16, s: &Scene<'_>, rng: &mut ChaCha8Rng) -> Body {
    match id {
        0x0802 => Body::MediaSearchAnswer(MediaSearchAnswer {
            reply_serial: 0,
            items: vec![StoredMedia {
                media_id: rng.random_range(1..1000),
                media_type: 0,
                channel: 1,
                event: 0,
                location: s.fix.clone(),
            }],
        }),
        0x0805 => Body::CameraShotAnswer(CameraShotAnswer {
            reply_serial: 0,
            result: 0,
            media_ids: Some(vec![rng.random_range(1..1000)]),
        }),
        0x1003 => answers::av_attributes().1,
        0x1005 => Body::PassengerFlow(PassengerFlow {
            start: sim_time(s.secs.saturating_sub(600)),
            end: sim_time(s.secs),
            boarded: rng.random_range(0..30),
            alighted: rng.random_range(0..30),
        }),
        _ => Body::FileUploadComplete(FileUploadComplete {
            reply_serial: 0,
            result: 0,
        }),
    }
}

/// 0x0100 in the terminal's layout, with the plate it holds.
fn register(s: &Scene<'_>) -> Register {
    let phone = s.term.phone().to_string();
    let plate = match s.held.params_of(&[0x0083]).pop().map(|p| p.value) {
        Some(crate::codec::body::ParamValue::Text(t)) => t,
        _ => Text::new("粤B00000"),
    };
    Register {
        province: 44,
        city: 300,
        maker: Text::new("SIMHS"),
        model: Text::new("JT808-SIM"),
        terminal_id: Text::new(&phone[phone.len().saturating_sub(7)..]),
        plate_color: 1,
        plate,
        layout: if s.term.version().is_2019() {
            Version::V2019
        } else {
            Version::V2013
        },
    }
}

/// 0x0608: one circle of 500 m around the fix, in the terminal's layout (2019 names it).
fn area_answer(s: &Scene<'_>, v19: bool) -> AreaAnswer {
    let circle = Circle {
        id: 1,
        attr: 0,
        center: Point {
            lat: s.fix.lat,
            lng: s.fix.lng,
        },
        radius: 500,
        time: None,
        speed: None,
        name: v19.then(|| Text::new("depot")),
    };
    AreaAnswer {
        area_type: 1,
        areas: Areas::Circles(vec![circle]),
    }
}

/// 0x0700 answering GB/T 19056 command 0x01 (driver licence): a recorder frame `55 7A`, command,
/// length, reserved, the 18-byte licence number, XOR check.
fn recorder_upload(s: &Scene<'_>) -> RecorderUpload {
    let digits = s.term.phone().to_string();
    let licence = format!("{:0>18}", &digits[digits.len().saturating_sub(18)..]);
    let mut frame = vec![0x55, 0x7A, 0x01, 0x00, 18, 0x00];
    frame.extend_from_slice(licence.as_bytes());
    let check = frame.iter().fold(0, |a, b| a ^ b);
    frame.push(check);
    RecorderUpload {
        reply_serial: 0,
        command: 0x01,
        data: frame,
    }
}

/// 0x0702: an IC card inserted and read, in the terminal's layout (2019 adds the ID number).
fn driver(s: &Scene<'_>, v19: bool) -> DriverIdentity {
    DriverIdentity {
        state: Some(1),
        time: Some(s.fix.time),
        ic_result: Some(0),
        name: Some(Text::new("张三")),
        certificate: Some(Text::new("44030019800101123X")),
        organization: Some(Text::new("深圳市交通运输局")),
        validity: Some([0x20, 0x30, 0x12, 0x31]),
        id_number: v19.then(|| Text::new("440300198001011234")),
        extra: Vec::new(),
        layout: s.term.version(),
    }
}

/// 0x0705: 2-4 CAN1 standard frames received now.
fn can(s: &Scene<'_>, rng: &mut ChaCha8Rng) -> CanData {
    let t = s.fix.time.0;
    let ms: u16 = rng.random_range(0..1000);
    let bcd = |v: u16| (((v / 10 % 10) << 4) | (v % 10)) as u8;
    let items = (0..rng.random_range(2..=4u32))
        .map(|i| {
            let mut data = [0u8; 8];
            rng.fill(&mut data[..]);
            CanItem { id: 0x100 + i, data }
        })
        .collect();
    CanData {
        // hh mm ss, then milliseconds as BCD[2] (JT/T 808 §8.55).
        time: [t[3], t[4], t[5], bcd(ms / 100), bcd(ms % 100)],
        items,
    }
}
