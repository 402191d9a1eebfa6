//! The body table shared by tests/bodies.rs (decodes to the asserted fields, re-encodes exactly)
//! and tests/codec_props.rs (mutated cases that still decode typed round-trip exactly). One or
//! more bodies per typed id, built from the layout the body files document (fields separated by
//! spaces in the hex).

use jt808_harness::codec::Version;
use serde_json::{Value, json};

/// The 28-byte basic block used below: alarm 1, status 2, 30.0 N, 114.0 E, 100 m, 60.0 km/h,
/// 90 degrees, 2026-01-02 03:04:05.
const L: &str = "00000001 00000002 01C9C380 06CB8080 0064 0258 005A 260102030405";

fn loc() -> Value {
    json!({"alarm": 1, "status": 2, "lat": 30000000, "lng": 114000000, "altitude": 100, "speed": 600,
           "direction": 90, "time": "2026-01-02 03:04:05"})
}

pub struct Case {
    pub id: u16,
    pub v: Version,
    pub hex: String,
    /// The whole body JSON; `None` where tests/vectors.rs asserts the fields from real frames.
    pub json: Option<Value>,
}

fn c(id: u16, v: Version, hex: &str, json: Value) -> Case {
    Case {
        id,
        v,
        hex: hex.replace(' ', ""),
        json: Some(json),
    }
}

fn rt(id: u16, v: Version, hex: &str) -> Case {
    Case {
        id,
        v,
        hex: hex.replace(' ', ""),
        json: None,
    }
}

use Version::{V2011, V2013, V2019};

fn general() -> Vec<Case> {
    let gr = json!({"reply_serial": 1, "reply_id": "0x0002", "result": 0});
    vec![
        c(0x0001, V2013, "0001 0002 00", gr.clone()),
        c(0x8001, V2013, "0001 0002 00", gr),
        c(0x0002, V2013, "", json!({})),
        c(0x0003, V2013, "", json!({})),
        c(0x0004, V2019, "", json!({})),
        c(0x8004, V2019, "260102030405", json!({"time": "2026-01-02 03:04:05"})),
        rt(0x8003, V2013, "0010 02 0001 0003"),
        rt(0x8003, V2019, "0010 0002 0001 0003"),
        rt(0x0005, V2019, "0010 0002 0001 0003"),
        rt(
            0x0100,
            V2013,
            "001f 006e 6364313233 7777772e3830382e636f6d000000000000000000 37363534333231 01 b2e2413132333435363738",
        ),
        c(
            0x8100,
            V2013,
            "0000 00 3132",
            json!({"reply_serial": 0, "result": 0, "auth_code": "12"}),
        ),
        rt(0x0102, V2013, "616263"),
        rt(
            0x0102,
            V2019,
            "03 616263 313233343536373839303132333435 76312e3000000000000000000000000000000000",
        ),
        c(
            0x8105,
            V2013,
            "01 75726c3b61706e",
            json!({"command": 1, "params": "url;apn"}),
        ),
        c(0x8105, V2013, "04", json!({"command": 4})),
        c(0x8107, V2013, "", json!({})),
        c(0x8104, V2013, "", json!({})),
        c(0x8201, V2013, "", json!({})),
        c(0x8204, V2019, "", json!({})),
        c(0x8702, V2013, "", json!({})),
        c(0x9003, V2013, "", json!({})),
        c(0x0108, V2013, "00 01", json!({"upgrade_type": 0, "result": 1})),
        c(
            0x8108,
            V2013,
            "00 3132333435 03 76312e 00000004 DEADBEEF",
            json!({"upgrade_type": 0, "maker": "12345", "version": "v1.", "data": "DEADBEEF"}),
        ),
        c(
            0x8108,
            V2013,
            "0C 3132333435 00 00000010 AB",
            json!({"upgrade_type": 12, "maker": "12345", "version": "", "declared_len": 16, "data": "AB"}),
        ),
    ]
}

fn params() -> Vec<Case> {
    let heartbeat = json!({"id": "0x0001", "name": "heartbeat_interval", "type": "dword", "value": 30});
    let av = json!({"live_encoding": 1, "live_resolution": 1, "live_keyframe_interval": 15, "live_frame_rate": 25,
        "live_bitrate": 512, "store_encoding": 1, "store_resolution": 5, "store_keyframe_interval": 25,
        "store_frame_rate": 15, "store_bitrate": 4096, "osd": 1});
    let mut av_audio = av.clone();
    av_audio["audio_output"] = json!(1);
    let mut channel = json!({"channel": 1});
    channel.as_object_mut().unwrap().extend(av.as_object().unwrap().clone());
    let av_fields = "01 01 000F 19 00000200 01 05 0019 0F 00001000 0001";
    vec![
        c(
            0x8103,
            V2013,
            "03 00000001 04 0000001E 00000083 08 d3e5413132333435 0000F001 02 0102",
            json!({"count": 3, "params": [heartbeat,
                {"id": "0x0083", "name": "plate", "type": "string", "value": "渝A12345"},
                {"id": "0xF001", "vendor": true, "len": 2, "raw": "0102"}]}),
        ),
        c(
            0x8103,
            V2019,
            "02 00000001 02 001E 00000084 01 01",
            json!({"count": 2, "params": [
                {"id": "0x0001", "name": "heartbeat_interval", "len": 2, "raw": "001E"},
                {"id": "0x0084", "name": "plate_color", "type": "byte", "value": 1}],
                "issues": [{"offset": 6, "param": "0x0001", "issue": "length 2, dword needs 4"}]}),
        ),
        c(
            0x8103,
            V2013,
            "03 00000084 01 01",
            json!({"count": 3, "params": [{"id": "0x0084", "name": "plate_color", "type": "byte", "value": 1}],
                "issues": [{"offset": 0, "issue": "declares 3 parameters, 1 read"}]}),
        ),
        c(
            0x8103,
            V2013,
            "02 00000084 01 01 00000001 04 0000",
            json!({"count": 2, "params": [{"id": "0x0084", "name": "plate_color", "type": "byte", "value": 1}],
                "rest": "00000001040000",
                "issues": [{"offset": 7, "param": "0x0001", "issue": "declares length 4, 2 bytes left"},
                           {"offset": 0, "issue": "declares 2 parameters, 1 read"}]}),
        ),
        c(
            0x8103,
            V2013,
            &format!("01 00000075 15 {av_fields} 01"),
            json!({"count": 1, "params": [{"id": "0x0075", "name": "av_params", "type": "av_params", "value": av_audio}]}),
        ),
        c(
            0x8103,
            V2013,
            &format!("01 00000077 16 01 01 {av_fields}"),
            json!({"count": 1, "params": [{"id": "0x0077", "name": "channel_video_params", "type": "channel_video",
                "value": [channel]}]}),
        ),
        c(
            0x8103,
            V2013,
            "04 00000076 0B 01 00 01 01 01 00 01 02 02 02 00 00000079 03 14 05 01 0000007B 02 28 0A 00000150 08 0102030405060708",
            json!({"count": 4, "params": [
                {"id": "0x0076", "name": "av_channels", "type": "av_channels", "value": {"av_count": 1,
                    "audio_count": 0, "video_count": 1, "channels": [
                        {"physical": 1, "logical": 1, "kind": 0, "ptz": 1},
                        {"physical": 2, "logical": 2, "kind": 2, "ptz": 0}]}},
                {"id": "0x0079", "name": "alarm_recording", "type": "alarm_recording",
                    "value": {"storage_threshold": 20, "duration": 5, "lead_time": 1}},
                {"id": "0x007B", "name": "image_analysis_alarm", "type": "image_analysis",
                    "value": {"passenger_limit": 40, "fatigue_threshold": 10}},
                {"id": "0x0150", "name": "can_id_setting_0x0150", "type": "bytes", "value": "0102030405060708"}]}),
        ),
        c(
            0x8103,
            V2013,
            "01 0000007C 14 07 01 7F 01 0800 0900 000000000000000000000000",
            json!({"count": 1, "params": [{"id": "0x007C", "name": "sleep_wake", "type": "wake", "value": {
                "mode": 7, "condition": 1, "days": 127, "period_flags": 1,
                "periods": [8, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]}}]}),
        ),
        // SmallChi/JT808 JT808.Protocol.Test/MessageBody/JT808_0x8103Test.cs Test2_1, Test3_1 (its
        // 0x0075 field values), Test4_1.
        c(
            0x8103,
            V2013,
            "02 00000001 04 0000000A 00000013 0D 7777772E62616964752E636F6D",
            json!({"count": 2, "params": [
                {"id": "0x0001", "name": "heartbeat_interval", "type": "dword", "value": 10},
                {"id": "0x0013", "name": "main_server_address", "type": "string", "value": "www.baidu.com"}]}),
        ),
        c(
            0x8103,
            V2013,
            "01 00000075 15 03 05 0004 07 00000006 08 0A 0009 0C 0000000B 0002 01",
            json!({"count": 1, "params": [{"id": "0x0075", "name": "av_params", "type": "av_params", "value": {
                "live_encoding": 3, "live_resolution": 5, "live_keyframe_interval": 4, "live_frame_rate": 7,
                "live_bitrate": 6, "store_encoding": 8, "store_resolution": 10, "store_keyframe_interval": 9,
                "store_frame_rate": 12, "store_bitrate": 11, "osd": 2, "audio_output": 1}}]}),
        ),
        c(
            0x8103,
            V2013,
            "01 00000110 08 000003E8C000DDD5",
            json!({"count": 1, "params": [{"id": "0x0110", "name": "can_id_setting", "type": "bytes",
                "value": "000003E8C000DDD5"}]}),
        ),
        c(
            0x0104,
            V2013,
            "0005 01 00000001 04 0000001E",
            json!({"reply_serial": 5, "count": 1, "params": [heartbeat]}),
        ),
        c(
            0x8106,
            V2013,
            "02 00000001 00000083",
            json!({"count": 2, "ids": [1, 131]}),
        ),
        c(
            0x8106,
            V2013,
            "02 00000001 0000",
            json!({"count": 2, "ids": [1], "rest": "0000", "issues": [
                {"offset": 5, "issue": "2 bytes left, too few for a parameter id"},
                {"offset": 0, "issue": "declares 2 ids, 1 read"}]}),
        ),
    ]
}

fn terminal() -> Vec<Case> {
    let attrs = json!({"terminal_type": 7, "maker": "12345", "model": "4G-BOX", "terminal_id": "ID00001",
        "iccid": "89860000000000000001", "hardware_version": "H10", "firmware_version": "F1.0", "gnss": 3, "comm": 1});
    let tail = "89860000000000000001 03 483130 04 46312e30 03 01";
    let model = "34472d424f58";
    let driver = json!({"state": 1, "time": "2026-01-02 03:04:05", "ic_result": 0, "name": "张三",
        "certificate": "12345678901234567890", "organization": "公安局", "validity": "20301231"});
    let mut driver_2019 = driver.clone();
    driver_2019["id_number"] = json!("110101199001011234");
    let driver_2013 =
        "01 260102030405 00 04 d5c5c8fd 3132333435363738393031323334353637383930 06 b9abb0b2bed6 20301231";
    vec![
        c(
            0x0107,
            V2013,
            &format!("0007 3132333435 {model}{} 49443030303031 {tail}", "00".repeat(14)),
            attrs.clone(),
        ),
        c(
            0x0107,
            V2019,
            &format!(
                "0007 3132333435 {model}{} 49443030303031{} {tail}",
                "00".repeat(24),
                "00".repeat(23)
            ),
            attrs.clone(),
        ),
        c(
            0x0107,
            V2011,
            &format!("0007 3132333435 {model}0000 49443030303031 {tail}"),
            attrs,
        ),
        c(
            0x0201,
            V2013,
            &format!("0007 {L}"),
            json!({"reply_serial": 7, "location": loc()}),
        ),
        c(
            0x0500,
            V2019,
            &format!("0003 {L}"),
            json!({"reply_serial": 3, "location": loc()}),
        ),
        c(0x0701, V2013, "00000004 b2e2cad4", json!({"content": "测试"})),
        c(
            0x0701,
            V2013,
            "00000009 4142",
            json!({"declared_len": 9, "content": "AB"}),
        ),
        c(0x0702, V2013, driver_2013, driver),
        c(
            0x0702,
            V2019,
            &format!("{driver_2013} 3131303130313139393030313031313233340000"),
            driver_2019,
        ),
        c(
            0x0702,
            V2013,
            "02 260102030405",
            json!({"state": 2, "time": "2026-01-02 03:04:05"}),
        ),
        c(
            0x0702,
            V2013,
            "01 260102030405 01",
            json!({"state": 1, "time": "2026-01-02 03:04:05", "ic_result": 1}),
        ),
        c(
            0x0702,
            V2011,
            &format!(
                "04 d5c5c8fd 3131303130313139393030313031313233340000 3132333435363738393031323334353637383930{} 06 b9abb0b2bed6",
                "00".repeat(20)
            ),
            json!({"name": "张三", "id_number": "110101199001011234", "certificate": "12345678901234567890",
                   "organization": "公安局"}),
        ),
        // SmallChi/JT808 JT808.Protocol.Test/MessageBody/JT808_0x0702Test.cs: Test3_1 (2013, right
        // padding), Test3 (its own encoder pads on the left: kept exact), Test_2019_2, Test_2019_5
        // (face match and UID after the 2019 fields) and Test2011_2.
        c(
            0x0702,
            V2013,
            "01 180816091616 00 05 6B6F696B65 71776531323334353661616100000000000000000671776572747820180816",
            json!({"state": 1, "time": "2018-08-16 09:16:16", "ic_result": 0, "name": "koike",
                   "certificate": "qwe123456aaa", "organization": "qwertx", "validity": "20180816"}),
        ),
        c(
            0x0702,
            V2013,
            "01 180816091616 00 05 6B6F696B65 0000000000000000717765313233343536616161 06 717765727478 20180816",
            json!({"state": 1, "time": "2018-08-16 09:16:16", "ic_result": 0, "name": "koike",
                   "certificate": {"text": "qwe123456aaa", "raw": "0000000000000000717765313233343536616161"},
                   "organization": "qwertx", "validity": "20180816"}),
        ),
        c(
            0x0702,
            V2019,
            "01 191201111111 00 05 6B6F696B65 717765313233343536616161 0000000000000000 06 717765727478 20191201 3132333435363738393031323334353637000000",
            json!({"state": 1, "time": "2019-12-01 11:11:11", "ic_result": 0, "name": "koike",
                   "certificate": "qwe123456aaa", "organization": "qwertx", "validity": "20191201",
                   "id_number": "12345678901234567"}),
        ),
        c(
            0x0702,
            V2019,
            "01 210528181111 00 05 6B6F696B65 0000000000000000717765313233343536616161 06 717765727478 20210528 0000003132333435363738393031323334353637 63 0000003132333435363738393031323334353637",
            json!({"state": 1, "time": "2021-05-28 18:11:11", "ic_result": 0, "name": "koike",
                   "certificate": {"text": "qwe123456aaa", "raw": "0000000000000000717765313233343536616161"},
                   "organization": "qwertx", "validity": "20210528",
                   "id_number": {"text": "12345678901234567", "raw": "0000003132333435363738393031323334353637"},
                   "extra": "630000003132333435363738393031323334353637"}),
        ),
        c(
            0x0702,
            V2011,
            "02 746B 0000313233343536373839313233343536373839 00000000000000000000000000000000000000000000000000000000717765313233343536616161 06 717765727478",
            json!({"name": "tk", "id_number": {"text": "123456789123456789", "raw": "0000313233343536373839313233343536373839"},
                   "certificate": {"text": "qwe123456aaa",
                                   "raw": "00000000000000000000000000000000000000000000000000000000717765313233343536616161"},
                   "organization": "qwertx"}),
        ),
        rt(0x0704, V2013, &format!("0001 00 001C {L}")),
        c(
            0x0705,
            V2013,
            "0002 1230450123 80000123 0102030405060708 00000456 1112131415161718",
            json!({"time": "1230450123", "items": [{"id": 0x8000_0123u32, "data": "0102030405060708"},
                                                    {"id": 0x456, "data": "1112131415161718"}]}),
        ),
        c(
            0x0800,
            V2013,
            "00000001 00 00 01 02",
            json!({"media_id": 1, "media_type": 0, "media_format": 0, "event": 1, "channel": 2}),
        ),
        rt(0x0801, V2013, &format!("00000001 00 00 01 02 {L} FFD8")),
        c(
            0x0805,
            V2013,
            "0009 00 0002 00000001 00000002",
            json!({"reply_serial": 9, "result": 0, "media_ids": [1, 2]}),
        ),
        c(0x0805, V2011, "0009 01", json!({"reply_serial": 9, "result": 1})),
        c(
            0x0802,
            V2013,
            &format!("0009 0001 00000001 00 01 00 {L}"),
            json!({"reply_serial": 9, "items": [{"media_id": 1, "media_type": 0, "channel": 1, "event": 0,
                                                 "location": loc()}]}),
        ),
        c(0x0900, V2013, "41 010203", json!({"pass_type": 65, "data": "010203"})),
        c(0x0901, V2013, "00000003 1F8B08", json!({"data": "1F8B08"})),
        c(
            0x0A00,
            V2013,
            &format!("00010001 {}", "AB".repeat(128)),
            json!({"e": 65537, "n": "AB".repeat(128)}),
        ),
    ]
}

fn text_and_events() -> Vec<Case> {
    vec![
        c(0x8300, V2013, "09 b2e2cad4", json!({"flag": 9, "text": "测试"})),
        c(
            0x8300,
            V2019,
            "09 01 b2e2cad4",
            json!({"flag": 9, "text_type": 1, "text": "测试"}),
        ),
        c(
            0x8300,
            V2013,
            "01 81",
            json!({"flag": 1, "text": {"text": "\u{FFFD}", "raw": "81"}}),
        ),
        c(
            0x8301,
            V2013,
            "01 02 01 03 414243 02 02 b2e2",
            json!({"setting_type": 1, "events": [{"id": 1, "content": "ABC"}, {"id": 2, "content": "测"}],
                   "deleted_in_2019": true}),
        ),
        c(0x0301, V2013, "05", json!({"event_id": 5, "deleted_in_2019": true})),
        c(
            0x8302,
            V2013,
            "09 02 b2e2 01 0002 4142 02 0001 43",
            json!({"flag": 9, "question": "测", "answers": [{"id": 1, "content": "AB"}, {"id": 2, "content": "C"}],
                   "deleted_in_2019": true}),
        ),
        c(
            0x0302,
            V2013,
            "0009 02",
            json!({"reply_serial": 9, "answer_id": 2, "deleted_in_2019": true}),
        ),
        c(
            0x8303,
            V2013,
            "01 01 03 0004 b2e2cad4",
            json!({"setting_type": 1, "items": [{"info_type": 3, "name": "测试"}], "deleted_in_2019": true}),
        ),
        c(
            0x0303,
            V2013,
            "03 01",
            json!({"info_type": 3, "flag": 1, "deleted_in_2019": true}),
        ),
        c(
            0x8304,
            V2013,
            "03 0002 4142",
            json!({"info_type": 3, "content": "AB", "deleted_in_2019": true}),
        ),
        c(
            0x8400,
            V2013,
            "00 3133383030313338303030",
            json!({"flag": 0, "phone": "13800138000"}),
        ),
        c(
            0x8401,
            V2013,
            "01 01 03 03 313130 04 d5c5c8fd",
            json!({"setting_type": 1, "contacts": [{"flag": 3, "phone": "110", "name": "张三"}]}),
        ),
        c(0x8500, V2013, "01", json!({"flag": 1})),
        c(
            0x8500,
            V2019,
            "0001 0001 00",
            json!({"controls": [{"id": "0x0001", "param": "00"}]}),
        ),
        c(
            0x8500,
            V2019,
            "0002 0001 01 F001 AABB",
            json!({"controls": [{"id": "0x0001", "param": "01"}, {"id": "0xF001", "param": "AABB"}]}),
        ),
        c(
            0x8202,
            V2013,
            "000A 00000E10",
            json!({"interval": 10, "validity": 3600}),
        ),
        c(0x8202, V2013, "0000", json!({"interval": 0})),
        c(
            0x8203,
            V2013,
            "0000 00000001",
            json!({"alarm_serial": 0, "alarm_type": 1}),
        ),
        c(0x8900, V2013, "F0 AA", json!({"pass_type": 240, "data": "AA"})),
        c(
            0x8A00,
            V2019,
            &format!("00000003 {}", "01".repeat(128)),
            json!({"e": 3, "n": "01".repeat(128)}),
        ),
    ]
}

fn areas() -> Vec<Case> {
    let p1 = json!({"lat": 30000000, "lng": 114000000});
    let p2 = json!({"lat": 29999104, "lng": 114000896});
    let time = json!({"start": "2026-01-01 00:00:00", "end": "2026-12-31 23:59:59"});
    let circle = "00000001 0003 01C9C380 06CB8080 000001F4 260101000000 261231235959 0050 0A";
    let point = "00000001 00000001 01C9C380 06CB8080 14 03 0E10 003C 0050 0A";
    let route_point = json!({"corner_id": 1, "segment_id": 1, "point": p1, "width": 20, "attr": 3,
        "drive_time": {"too_long": 3600, "too_short": 60}, "speed": {"max_speed": 80, "overspeed_duration": 10}});
    let mut route_point_2019 = route_point.clone();
    route_point_2019["speed"]["night_max_speed"] = json!(50);
    let second = json!({"corner_id": 2, "segment_id": 2, "point": p2, "width": 10, "attr": 0});
    vec![
        c(
            0x8600,
            V2013,
            &format!("00 01 {circle}"),
            json!({"setting_type": 0, "areas": [{"id": 1, "attr": 3, "center": p1, "radius": 500, "time": time,
                "speed": {"max_speed": 80, "overspeed_duration": 10}}]}),
        ),
        c(
            0x8600,
            V2019,
            &format!("00 01 {circle} 003C 0004 b2e2cad4"),
            json!({"setting_type": 0, "areas": [{"id": 1, "attr": 3, "center": p1, "radius": 500, "time": time,
                "speed": {"max_speed": 80, "overspeed_duration": 10, "night_max_speed": 60}, "name": "测试"}]}),
        ),
        c(0x8601, V2013, "02 00000001 00000002", json!({"ids": [1, 2]})),
        c(
            0x8602,
            V2013,
            "01 01 00000002 0000 01C9C380 06CB8080 01C9C000 06CB8400",
            json!({"setting_type": 1, "areas": [{"id": 2, "attr": 0, "top_left": p1, "bottom_right": p2}]}),
        ),
        c(
            0x8602,
            V2019,
            "01 01 00000002 0000 01C9C380 06CB8080 01C9C000 06CB8400 0000",
            json!({"setting_type": 1, "areas": [{"id": 2, "attr": 0, "top_left": p1, "bottom_right": p2, "name": ""}]}),
        ),
        c(0x8603, V2013, "00", json!({"ids": []})),
        c(
            0x8604,
            V2013,
            "00000003 0002 0050 0A 0003 01C9C380 06CB8080 01C9C000 06CB8080 01C9C000 06CB8400",
            json!({"id": 3, "attr": 2, "speed": {"max_speed": 80, "overspeed_duration": 10},
                   "points": [p1, {"lat": 29999104, "lng": 114000000}, p2]}),
        ),
        c(
            0x8604,
            V2019,
            "00000003 0002 0050 0A 0002 01C9C380 06CB8080 01C9C000 06CB8400 003C 0002 4142",
            json!({"id": 3, "attr": 2, "speed": {"max_speed": 80, "overspeed_duration": 10, "night_max_speed": 60},
                   "points": [p1, p2], "name": "AB"}),
        ),
        c(0x8605, V2013, "01 00000003", json!({"ids": [3]})),
        c(
            0x8606,
            V2013,
            &format!("00000004 0000 0002 {point} 00000002 00000002 01C9C000 06CB8400 0A 00"),
            json!({"id": 4, "attr": 0, "points": [route_point, second]}),
        ),
        c(
            0x8606,
            V2019,
            &format!("00000004 0001 260101000000 261231235959 0001 {point} 0032 0000"),
            json!({"id": 4, "attr": 1, "time": time, "points": [route_point_2019], "name": ""}),
        ),
        c(0x8607, V2013, "01 00000004", json!({"ids": [4]})),
        c(
            0x8608,
            V2019,
            "01 00000002 00000001 00000002",
            json!({"area_type": 1, "ids": [1, 2]}),
        ),
        c(
            0x0608,
            V2019,
            "01 00000001 00000001 0000 01C9C380 06CB8080 000001F4 0002 4142",
            json!({"area_type": 1, "areas": {"circles": [{"id": 1, "attr": 0, "center": p1, "radius": 500,
                "name": "AB"}]}}),
        ),
        c(
            0x0608,
            V2019,
            "04 00000001 00000004 0000 0001 00000002 00000002 01C9C000 06CB8400 0A 00 0000",
            json!({"area_type": 4, "areas": {"routes": [{"id": 4, "attr": 0, "points": [second], "name": ""}]}}),
        ),
        c(
            0x0608,
            V2019,
            "09 00000002 0102",
            json!({"area_type": 9, "areas": {"unknown": {"count": 2, "data": "0102"}}}),
        ),
    ]
}

fn recorder_and_media() -> Vec<Case> {
    let range = "AA75 08 000E 00 260101000000 260102000000 0001 DB";
    let vehicle =
        "AA75 82 0029 00 4c53564155323138304e32313833323934 d3e541313233343500000000 b4f3d0cdc6fbb3b500000000 7C";
    let licence = "557A 01 0012 00 343430313030313939303031303131323334 38";
    vec![
        c(
            0x8700,
            V2013,
            &format!("08 {range}"),
            json!({"command": 8, "data": range.replace(' ', ""), "frame": {"command": 8, "len": 14, "check_ok": true,
                "block": {"time_range": {"start": "2026-01-01 00:00:00", "end": "2026-01-02 00:00:00", "max_blocks": 1}}}}),
        ),
        c(0x8700, V2013, "02", json!({"command": 2, "data": ""})),
        c(
            0x8701,
            V2013,
            &format!("82 {vehicle}"),
            json!({"command": 130, "data": vehicle.replace(' ', "").to_uppercase(), "frame": {"command": 130, "len": 41,
                "check_ok": true, "block": {"vehicle_info": {"vin": "LSVAU2180N2183294", "plate": "渝A12345",
                "plate_class": "大型汽车"}}}}),
        ),
        c(
            0x0700,
            V2013,
            &format!("0005 01 {licence}"),
            json!({"reply_serial": 5, "command": 1, "data": licence.replace(' ', "").to_uppercase(), "frame": {
                "command": 1, "len": 18, "check_ok": true, "block": {"driver_licence": "440100199001011234"}}}),
        ),
        rt(0x8800, V2013, "00000001"),
        c(
            0x8801,
            V2013,
            "01 0001 0000 00 01 05 80 40 40 80",
            json!({"channel": 1, "command": 1, "interval": 0, "save_flag": 0, "resolution": 1, "quality": 5,
                   "brightness": 128, "contrast": 64, "saturation": 64, "chroma": 128}),
        ),
        c(
            0x8802,
            V2013,
            "00 01 00 260101000000 260102000000",
            json!({"media_type": 0, "channel": 1, "event": 0, "start": "2026-01-01 00:00:00",
                   "end": "2026-01-02 00:00:00"}),
        ),
        c(
            0x8803,
            V2013,
            "00 01 00 260101000000 260102000000 01",
            json!({"media_type": 0, "channel": 1, "event": 0, "start": "2026-01-01 00:00:00",
                   "end": "2026-01-02 00:00:00", "delete": 1}),
        ),
        c(
            0x8804,
            V2013,
            "01 001E 00 01",
            json!({"command": 1, "duration": 30, "save_flag": 0, "sample_rate": 1}),
        ),
        c(0x8805, V2013, "00000001 00", json!({"media_id": 1, "delete": 0})),
    ]
}

fn jt1078() -> Vec<Case> {
    vec![
        rt(0x1003, V2013, "04 02 00 94 4901 20 08 08 17"),
        c(
            0x1005,
            V2013,
            "260101000000 260101010000 000A 0005",
            json!({"start": "2026-01-01 00:00:00", "end": "2026-01-01 01:00:00", "boarded": 10, "alighted": 5}),
        ),
        rt(0x9101, V2013, "0C 3139322e3136382e312e3130 1F90 0000 01 00 00"),
        rt(0x9102, V2019, "01 02 03 00"),
        c(0x9105, V2013, "01 05", json!({"channel": 1, "loss_rate": 5})),
        c(
            0x9201,
            V2013,
            "0C 3139322e3136382e312e3130 1F90 0000 01 00 01 01 00 01 260101000000 260101010000",
            json!({"server": "192.168.1.10", "tcp_port": 8080, "udp_port": 0, "channel": 1, "av_type": 0,
                   "stream_type": 1, "storage_type": 1, "playback_mode": 0, "speed": 1,
                   "start": "2026-01-01 00:00:00", "end": "2026-01-01 01:00:00"}),
        ),
        c(
            0x9202,
            V2013,
            "01 05 00 260101000000",
            json!({"channel": 1, "control": 5, "speed": 0, "position": "2026-01-01 00:00:00"}),
        ),
        rt(0x9205, V2013, "01 260101000000 260102000000 0000000000000000 00 01 01"),
        rt(0x1205, V2013, "0001 00000000"),
        rt(
            0x9206,
            V2013,
            "01 41 0015 01 75 01 70 01 2F 01 260101000000 260102000000 0000000000000000 00 01 01 07",
        ),
        rt(0x1206, V2013, "0001 00"),
        rt(0x9207, V2013, "0001 02"),
        c(
            0x9301,
            V2013,
            "01 03 80",
            json!({"channel": 1, "direction": 3, "speed": 128}),
        ),
        c(0x9302, V2013, "01 00", json!({"channel": 1, "flag": 0})),
        c(0x9303, V2013, "01 01", json!({"channel": 1, "flag": 1})),
        c(0x9304, V2013, "02 01", json!({"channel": 2, "flag": 1})),
        c(0x9305, V2013, "02 00", json!({"channel": 2, "flag": 0})),
        c(0x9306, V2013, "03 01", json!({"channel": 3, "flag": 1})),
        rt(0x0200, V2013, L),
    ]
}

pub fn cases() -> Vec<Case> {
    [
        general(),
        params(),
        terminal(),
        text_and_events(),
        areas(),
        recorder_and_media(),
        jt1078(),
    ]
    .into_iter()
    .flatten()
    .collect()
}
