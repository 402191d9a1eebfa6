//! The generated fleet: deterministic by seed, every frame decodes, versions and timing as
//! configured, lazy when unlimited.

use std::collections::BTreeMap;
use std::time::Duration;

use jt808_harness::codec::body::{Body, ItemValue};
use jt808_harness::codec::deframer::{Deframer, Item};
use jt808_harness::codec::{DecodeEvent, Decoder, Message, Version};
use jt808_harness::gateway::Feed;
use jt808_harness::gateway::fleet::{Fleet, FleetConfig, FleetError, FleetVersion, Mix};

fn all_kinds() -> Mix {
    Mix {
        location: 4,
        heartbeat: 1,
        batch: 1,
        media: 1,
        av_list: 1,
    }
}

fn items(cfg: FleetConfig, seed: u64) -> Vec<(Duration, Vec<u8>)> {
    let mut f = Fleet::new(cfg, seed).unwrap();
    std::iter::from_fn(|| f.next_item().map(|i| (i.due, i.bytes))).collect()
}

/// Every header in the items, in order.
fn headers(items: &[(Duration, Vec<u8>)]) -> Vec<jt808_harness::codec::Header> {
    let mut d = Deframer::default();
    let mut out = Vec::new();
    for (_, b) in items {
        d.push(b, |it| match it {
            Item::Frame(f) => out.push(f.header.clone()),
            other => panic!("not a clean frame: {other:?}"),
        });
    }
    out
}

/// Decodes everything; panics on anything but whole messages and buffered packets.
fn decode(items: &[(Duration, Vec<u8>)]) -> Vec<Message> {
    let mut dec = Decoder::default();
    let mut msgs = Vec::new();
    for (due, b) in items {
        dec.push(b, *due, |e| match e {
            DecodeEvent::Message(m) => msgs.push(m),
            DecodeEvent::Packet { .. } => {}
            other => panic!("unexpected decoder event {other:?}"),
        });
    }
    dec.end_stream(|e| panic!("left over at the end: {e:?}"));
    msgs
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_other_bytes() {
    let cfg = FleetConfig {
        terminals: 3,
        messages: 20,
        mix: all_kinds(),
        ..FleetConfig::default()
    };
    let a = items(cfg.clone(), 42);
    let b = items(cfg.clone(), 42);
    let c = items(cfg, 43);
    assert!(!a.is_empty());
    assert_eq!(a, b, "same seed, same stream");
    assert_ne!(a, c, "another seed, another stream");
}

#[test]
fn every_generated_message_decodes_typed_and_packets_reassemble() {
    let cfg = FleetConfig {
        terminals: 4,
        messages: 40,
        version: FleetVersion::Mixed,
        mix: all_kinds(),
        ..FleetConfig::default()
    };
    let items = items(cfg, 7);
    let msgs = decode(&items);
    assert_eq!(msgs.len(), 4 * 40, "one decoded message per generated message");
    let mut kinds: BTreeMap<u16, usize> = BTreeMap::new();
    for m in &msgs {
        *kinds.entry(m.header.msg_id).or_default() += 1;
        assert!(
            !matches!(m.body, Body::Raw(_) | Body::Invalid(_) | Body::Encrypted(_)),
            "typed body expected: {m:?}"
        );
        match &m.body {
            Body::LocationReport(loc) => {
                assert!(loc.issues.is_empty(), "{loc:?}");
                let want = if m.header.version == Version::V2019 { 13 } else { 12 };
                assert_eq!(
                    loc.items.len(),
                    want,
                    "additional items of a {} report",
                    m.header.version
                );
                assert!(loc.items.iter().all(|i| !matches!(i.value, ItemValue::Raw(_))));
                // Around Shenzhen, at a plausible speed.
                assert!((21_000_000..24_000_000).contains(&loc.lat), "lat {}", loc.lat);
                assert!((112_000_000..116_000_000).contains(&loc.lng), "lng {}", loc.lng);
                assert!(loc.speed <= 1300 && loc.direction < 360);
                assert!(loc.time.to_string().starts_with("2024-01-01 08:"), "{}", loc.time);
            }
            Body::MediaUpload(media) => {
                let a = m.assembled.expect("a 0x0801 of 2-6 KiB comes in packets");
                assert!(a.packets >= 4, "{a:?}");
                assert_eq!(&media.data[..2], &[0xFF, 0xD8]);
            }
            Body::AvResourceList(list) => {
                assert!(m.assembled.is_some(), "20-60 items are longer than 512 bytes");
                assert!((20..=60).contains(&list.items.len()));
            }
            Body::BatchLocation(b) => {
                assert_eq!(b.items.len(), b.count as usize);
                assert!(b.cut.is_none());
            }
            _ => {}
        }
    }
    for id in [0x0200, 0x0002, 0x0704, 0x0801, 0x1205] {
        assert!(kinds.get(&id).is_some_and(|&n| n > 0), "no 0x{id:04X} in {kinds:?}");
    }
}

#[test]
fn versions_are_honoured_per_terminal() {
    for (version, want) in [
        (FleetVersion::V2013, [Version::V2013, Version::V2013]),
        (FleetVersion::V2019, [Version::V2019, Version::V2019]),
        (FleetVersion::Mixed, [Version::V2013, Version::V2019]),
    ] {
        let cfg = FleetConfig {
            terminals: 2,
            messages: 5,
            version,
            mix: all_kinds(),
            ..FleetConfig::default()
        };
        for h in headers(&items(cfg, 1)) {
            let i = (h.phone.to_string().parse::<u64>().unwrap() - 13_800_000_001) as usize;
            assert_eq!(h.version, want[i], "{version:?}: terminal {i}");
            if h.version == Version::V2019 {
                assert_eq!(h.protocol_version, Some(1));
            }
        }
    }
}

#[test]
fn each_terminal_counts_its_own_serials_and_wraps() {
    let cfg = FleetConfig {
        terminals: 2,
        messages: 6,
        first_serial: 0xFFFE,
        mix: all_kinds(),
        ..FleetConfig::default()
    };
    let mut per_phone: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    for h in headers(&items(cfg, 3)) {
        per_phone.entry(h.phone.to_string()).or_default().push(h.serial);
    }
    assert_eq!(per_phone.len(), 2);
    for (phone, serials) in per_phone {
        let want: Vec<u16> = (0..serials.len()).map(|i| 0xFFFEu16.wrapping_add(i as u16)).collect();
        assert_eq!(
            serials, want,
            "terminal {phone}: one serial per frame, packets included, wrapping"
        );
    }
}

#[test]
fn terminals_report_on_their_interval_interleaved_in_due_order() {
    let cfg = FleetConfig {
        terminals: 3,
        messages: 4,
        interval_ms: 500,
        mix: Mix::LOCATION_ONLY,
        ..FleetConfig::default()
    };
    let items = items(cfg, 9);
    assert_eq!(items.len(), 12);
    let dues: Vec<Duration> = items.iter().map(|i| i.0).collect();
    assert!(dues.windows(2).all(|w| w[0] <= w[1]), "due order: {dues:?}");
    let mut per_phone: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    for ((due, _), h) in items.iter().zip(headers(&items)) {
        per_phone.entry(h.phone.to_string()).or_default().push(*due);
    }
    for (phone, d) in per_phone {
        assert!(d[0] < Duration::from_millis(500), "{phone}: phase within one interval");
        for w in d.windows(2) {
            assert_eq!(w[1] - w[0], Duration::from_millis(500), "{phone}: {d:?}");
        }
    }
}

#[test]
fn frames_per_message_coalesces_frames_due_at_the_last_one() {
    let base = FleetConfig {
        terminals: 3,
        messages: 5,
        mix: all_kinds(),
        ..FleetConfig::default()
    };
    let single = items(base.clone(), 5);
    let coalesced = items(
        FleetConfig {
            frames_per_message: 4,
            ..base
        },
        5,
    );
    let joined: Vec<u8> = single.iter().flat_map(|i| i.1.clone()).collect();
    let joined_c: Vec<u8> = coalesced.iter().flat_map(|i| i.1.clone()).collect();
    assert_eq!(joined, joined_c, "the same frames in the same order");
    assert_eq!(coalesced.len(), single.len().div_ceil(4));
    for (k, (due, _)) in coalesced.iter().enumerate() {
        let last = (4 * k + 3).min(single.len() - 1);
        assert_eq!(*due, single[last].0, "message {k} is due with its last frame");
    }
}

#[test]
fn packets_can_be_spread_so_other_terminals_interleave() {
    let cfg = FleetConfig {
        terminals: 2,
        messages: 3,
        packet_gap_ms: 100,
        mix: Mix {
            location: 0,
            heartbeat: 0,
            batch: 0,
            media: 1,
            av_list: 0,
        },
        ..FleetConfig::default()
    };
    let items = items(cfg, 11);
    let hs = headers(&items);
    let phones: Vec<String> = hs.iter().map(|h| h.phone.to_string()).collect();
    let switches = phones.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(switches > 2, "packets of the two terminals interleave: {phones:?}");
    assert_eq!(decode(&items).len(), 6, "and still reassemble per phone");
}

#[test]
fn an_unlimited_fleet_is_lazy() {
    let cfg = FleetConfig {
        terminals: 50,
        messages: 0,
        interval_ms: 100,
        mix: all_kinds(),
        ..FleetConfig::default()
    };
    let mut f = Fleet::new(cfg, 1).unwrap();
    let mut last = Duration::ZERO;
    let mut n = 0u64;
    // Far more than `messages` would ever allow, pulled one at a time: a fleet that built its
    // stream up front would never return from `new`.
    while n < 20_000 {
        let item = f.next_item().expect("an unlimited fleet never ends");
        assert!(item.due >= last);
        last = item.due;
        n += 1;
    }
    assert!(last > Duration::from_secs(10), "time moves on: {last:?}");
    // What it keeps per terminal is bounded: the re-send history holds the last 16 multi-packet
    // messages and lets older ones go.
    for i in 0..50 {
        let phone = jt808_harness::codec::Phone::parse(&(13_800_000_001u64 + i).to_string()).unwrap();
        let t = f.script().terminal(&phone).unwrap();
        assert_eq!(t.history_len(), 16, "terminal {i}");
        assert!(t.evicted() > 0, "terminal {i}");
    }
}

#[test]
fn settings_that_cannot_work_are_refused_with_the_reason() {
    let check = |cfg: FleetConfig, want: &str| {
        let FleetError::Invalid(m) = Fleet::new(cfg, 1).unwrap_err();
        assert!(m.contains(want), "{m}");
    };
    check(
        FleetConfig {
            first_phone: 9_999_999_999_999,
            ..FleetConfig::default()
        },
        "a 2013 header holds 12",
    );
    check(
        FleetConfig {
            messages: 0,
            interval_ms: 0,
            ..FleetConfig::default()
        },
        "endless burst",
    );
    check(
        FleetConfig {
            packet_size: 1024,
            ..FleetConfig::default()
        },
        "packet_size 1024",
    );
    check(
        FleetConfig {
            mix: Mix {
                location: 0,
                heartbeat: 0,
                batch: 0,
                media: 0,
                av_list: 0,
            },
            ..FleetConfig::default()
        },
        "nothing to send",
    );
    assert!(
        Fleet::new(
            FleetConfig {
                first_phone: 9_999_999_999_999,
                version: FleetVersion::V2019,
                ..FleetConfig::default()
            },
            1
        )
        .is_ok(),
        "a 13-digit phone fits a 2019 header"
    );
}

#[test]
fn fleet_settings_read_from_toml_with_defaults() {
    let cfg: FleetConfig =
        toml::from_str("terminals = 5\nversion = \"mixed\"\n[terminal]\nupload_delay_ms = 10").unwrap();
    assert_eq!(cfg.terminals, 5);
    assert_eq!(cfg.version, FleetVersion::Mixed);
    assert_eq!(cfg.terminal.upload_delay_ms, 10);
    assert_eq!(cfg.messages, 10, "defaults kept");
    assert!(toml::from_str::<FleetConfig>("terminalz = 5").is_err());
}

// ===== message_ids: every terminal message =====

use jt808_harness::gateway::fleet::{MessageIds, every_terminal_id};

fn every_id(version: FleetVersion, terminals: u32) -> FleetConfig {
    let n = every_terminal_id().len() as u32;
    FleetConfig {
        terminals,
        version,
        messages: n,
        interval_ms: 100,
        message_ids: Some(MessageIds::Every),
        ..FleetConfig::default()
    }
}

#[test]
fn a_fleet_sends_every_terminal_id_typed_and_byte_exact_in_each_edition() {
    let ids = every_terminal_id();
    assert!(ids.len() >= 33, "{ids:04X?}");
    for version in [FleetVersion::V2013, FleetVersion::V2019] {
        let msgs = decode(&items(every_id(version, 1), 7));
        let sent: Vec<u16> = msgs.iter().map(|m| m.header.msg_id).collect();
        assert_eq!(sent, ids, "{version:?}: each id once, in table order");
        for m in &msgs {
            let what = format!("{version:?} 0x{:04X}", m.header.msg_id);
            assert_eq!(
                m.body.msg_id(),
                Some(m.header.msg_id),
                "{what}: typed, got {:?}",
                m.body
            );
            let json = serde_json::to_value(&m.body).unwrap();
            assert!(json.get("issues").is_none(), "{what}: {json}");
            assert!(json.get("raw").is_none(), "{what}: {json}");
            let v = m.header.version;
            let mut bytes = Vec::new();
            m.body.encode(v, &mut bytes);
            let again = Body::decode(m.header.msg_id, v, &bytes);
            assert_eq!(again, m.body, "{what}: re-reads to itself");
        }
    }
}

#[test]
fn message_ids_take_turns_per_terminal_and_follow_the_seed() {
    let cfg = FleetConfig {
        terminals: 2,
        messages: 4,
        interval_ms: 1000,
        message_ids: Some(MessageIds::List(vec![0x0702, 0x0200, 0x0705])),
        ..FleetConfig::default()
    };
    let msgs = decode(&items(cfg.clone(), 3));
    let mut per: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    for m in &msgs {
        per.entry(m.header.phone.to_string()).or_default().push(m.header.msg_id);
    }
    assert_eq!(per["13800000001"], [0x0702, 0x0200, 0x0705, 0x0702]);
    assert_eq!(
        per["13800000002"],
        [0x0200, 0x0705, 0x0702, 0x0200],
        "terminal 1 starts one on"
    );
    assert_eq!(items(cfg.clone(), 3), items(cfg.clone(), 3), "same seed, same bytes");
    assert_ne!(items(cfg.clone(), 3), items(cfg, 4), "another seed, other contents");
}

#[test]
fn message_ids_are_read_from_toml_and_checked_at_their_key() {
    use jt808_harness::scenario::Scenario;
    let parse = |source: &str| {
        let text = format!("description = \"x\"\n[source]\ntype = \"fleet\"\n{source}");
        Scenario::parse(&text, std::path::Path::new("s.toml")).map(|s| s.source)
    };
    let ok = parse("message_ids = [\"0x0702\", \"0200\"]\n").unwrap();
    let jt808_harness::gateway::source::SourceSpec::Fleet(f) = ok else {
        panic!()
    };
    assert_eq!(f.message_ids, Some(MessageIds::List(vec![0x0702, 0x0200])));
    assert!(parse("message_ids = \"every\"\n").is_ok());
    let cases = [
        (
            "message_ids = [\"0x0200\", \"0x8104\"]\n",
            "s.toml:4:26: `source.message_ids[1]`",
            "0x8104 (query_all_params) is sent by the platform",
        ),
        (
            "message_ids = [\"0x0F01\"]\n",
            "s.toml:4:16: `source.message_ids[0]`",
            "0x0F01 is not a message id the codec types",
        ),
        (
            "message_ids = []\n",
            "s.toml:4:15: `source.message_ids`",
            "an empty list",
        ),
        // A type error inside the tagged [source] table is placed at the table (serde buffers
        // it), and names the key and the value.
        (
            "message_ids = \"all\"\n",
            "s.toml:2:1: message_ids \"all\"",
            "expected \"every\" or a list",
        ),
        (
            "message_ids = \"every\"\n[source.mix]\nlocation = 1\n",
            "`source.mix`",
            "mix and message_ids both given",
        ),
    ];
    for (text, at, why) in cases {
        let e = parse(text).unwrap_err().to_string();
        assert!(e.contains(at) && e.contains(why), "{text:?}:\n{e}");
    }
}

/// The bundled every-message scenario, run: every terminal id arrives at the client in both
/// editions, typed (no raw, vendor or invalid body anywhere in the transcript).
#[test]
fn the_bundled_every_message_scenario_decodes_every_id_typed() {
    use jt808_harness::scenario::Scenario;
    use jt808_harness::scenario::runner::{self, Mode};
    let path = std::path::Path::new("scenarios/fleet_sending_every_terminal_message_decodes_each_one_typed.toml");
    let yaml = runner::run(&Scenario::load(path).unwrap(), Mode::Snapshot)
        .unwrap()
        .to_yaml();
    for id in every_terminal_id() {
        for version in ["2013", "2019"] {
            let seen = format!(r#""type":"message","msg_id":"0x{id:04X}","version":"{version}""#);
            assert!(yaml.contains(&seen), "0x{id:04X} in {version} never decoded");
        }
    }
    for marker in [r#""raw":"#, r#""vendor":true"#, r#""error":"#] {
        assert!(!yaml.contains(marker), "{marker} in the transcript");
    }
}
