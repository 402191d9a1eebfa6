//! The simulated gateway end to end over in-memory pipes with the paused clock.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jt808_harness::codec::body::{Body, RawBody};
use jt808_harness::codec::{Message, Phone, Version};
use jt808_harness::gateway::{Closed, FeedItem, GatewayConfig, GatewayEvent, ListFeed};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

#[allow(dead_code)] // each test binary uses a part of the shared fixtures
mod support;

fn frame(serial: u16) -> Vec<u8> {
    Message::new(
        0x0F01,
        Version::V2013,
        Phone::parse("13800000001").unwrap(),
        serial,
        Body::Raw(RawBody {
            raw: vec![serial as u8, 0x7E],
        }),
    )
    .encode()
}

#[tokio::test(start_paused = true)]
async fn serves_the_feed_on_its_timeline_with_the_envelope_prefix() {
    let cfg = GatewayConfig {
        prefix_len: 18,
        ..GatewayConfig::default()
    };
    let fixture = support::gateway::in_memory(cfg, |_| {
        Box::new(ListFeed::new((1..=3u16).map(|i| FeedItem {
            due: Duration::from_millis(500 * i as u64),
            bytes: frame(i),
            close: None,
        })))
    });
    let gw = fixture.gateway();
    let start = Instant::now();
    let mut ws = fixture.connect("/").await;
    for i in 1..=3u16 {
        let msg = ws.next().await.unwrap().unwrap();
        let WsMessage::Binary(b) = msg else {
            panic!("binary expected, got {msg:?}")
        };
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(500 * i as u64),
            "due time of message {i}"
        );
        assert_eq!(&b[..3], b"ENV", "envelope prefix");
        assert_eq!(&b[18..], frame(i).as_slice(), "JT808 bytes after the 18-byte prefix");
    }
    ws.send(WsMessage::Binary(frame(99).into())).await.unwrap();
    ws.close(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let log = gw.log();
    let kinds: Vec<_> = log
        .iter()
        .map(|r| serde_json::to_value(&r.event).unwrap()["type"].clone())
        .collect();
    assert_eq!(
        kinds,
        ["accepted", "offered", "offered", "offered", "received", "closed"],
        "{log:#?}"
    );
    assert!(matches!(
        log.last().unwrap().event,
        GatewayEvent::Closed(Closed::ClientClose { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_session_resumes_its_feed_on_reconnect() {
    let fixture = four_message_gateway(GatewayConfig::default());
    let mut ws = fixture.connect("/a").await;
    let first = ws.next().await.unwrap().unwrap().into_data();
    assert_eq!(first.as_ref(), frame(1).as_slice());
    drop(ws);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut ws = fixture.connect("/a").await;
    for i in 2..=4u16 {
        let got = ws.next().await.unwrap().unwrap().into_data();
        assert_eq!(
            got.as_ref(),
            frame(i).as_slice(),
            "message {i} is served after the reconnect"
        );
    }
}

/// Messages due at one instant go out at that instant, however many: the gateway takes at most 256
/// per round (`MAX_BURST`) and goes round again at once. It used to wait for the timer between
/// rounds, and a timer rounds up to its 1 ms tick: 100,000 messages due at once took 390 ticks,
/// 0.4 s (benches/throughput.rs). On the paused clock the loss shows off a tick: connected half a
/// millisecond in, the second round waited for the next whole millisecond.
#[tokio::test(start_paused = true)]
async fn a_burst_larger_than_one_round_goes_out_at_its_instant() {
    const N: u16 = 1000;
    let fixture = support::gateway::in_memory(GatewayConfig::default(), |_| {
        Box::new(ListFeed::new((1..=N).map(|i| FeedItem {
            due: Duration::ZERO,
            bytes: frame(i),
            close: None,
        })))
    });
    tokio::time::advance(Duration::from_micros(500)).await;
    let mut ws = fixture.connect("/").await;
    let mut first = None;
    for i in 1..=N {
        let got = ws.next().await.unwrap().unwrap().into_data();
        assert_eq!(got.as_ref(), frame(i).as_slice(), "message {i} in order");
        let at = *first.get_or_insert_with(Instant::now);
        assert_eq!(Instant::now() - at, Duration::ZERO, "message {i} with the first");
    }
}

/// A gateway over in-memory pipes serving four messages 100 ms apart on every session.
fn four_message_gateway(cfg: GatewayConfig) -> support::gateway::InMemory {
    support::gateway::in_memory(cfg, |_| {
        Box::new(ListFeed::new((1..=4u16).map(|i| FeedItem {
            due: Duration::from_millis(100 * i as u64),
            bytes: frame(i),
            close: None,
        })))
    })
}

/// Connects on `path`, reads one message, closes; returns the message's bytes.
async fn one_message(gw: &support::gateway::InMemory, path: &str) -> Vec<u8> {
    let mut ws = gw.connect(path).await;
    let got = ws.next().await.unwrap().unwrap().into_data().to_vec();
    ws.close(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    got
}

#[tokio::test(start_paused = true)]
async fn an_idle_session_expires_after_session_idle_ms_and_one_within_it_resumes() {
    let cfg = GatewayConfig {
        session_idle_ms: 5_000,
        ..GatewayConfig::default()
    };
    let fixture = four_message_gateway(cfg);
    let (gw, net) = (fixture.gateway(), &fixture);
    assert_eq!(one_message(net, "/a").await, frame(1));
    assert_eq!(one_message(net, "/b").await, frame(1));
    assert_eq!(gw.sessions(), 2);
    // /a comes back within the idle time: it resumes where it stopped.
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    assert_eq!(one_message(net, "/a").await, frame(2), "resumed within session_idle_ms");
    // /b has been idle past it now: gone, and logged.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(gw.sessions(), 1, "only /a is left");
    let expired: Vec<_> = gw
        .log()
        .into_iter()
        .filter_map(|r| match r.event {
            GatewayEvent::SessionExpired { session, idle_ms } => Some((session, idle_ms, r.t_us)),
            _ => None,
        })
        .collect();
    assert_eq!(expired.len(), 1, "{expired:?}");
    let (session, idle_ms, t_us) = &expired[0];
    assert_eq!((session.as_str(), *idle_ms), ("/b", 5_000));
    assert!(*t_us >= 5_000_000, "not before its idle time: {t_us}");
    // A client on /b again gets a new feed from its start.
    assert_eq!(one_message(net, "/b").await, frame(1), "an expired session starts anew");
}

#[tokio::test(start_paused = true)]
async fn a_handshake_beyond_max_sessions_is_refused_with_503_and_logged() {
    let cfg = GatewayConfig {
        max_sessions: 2,
        ..GatewayConfig::default()
    };
    let fixture = four_message_gateway(cfg);
    let (gw, net) = (fixture.gateway(), &fixture);
    one_message(net, "/a").await;
    one_message(net, "/b").await;
    let Err(err) = net.try_connect("/c").await else {
        panic!("/c must be refused")
    };
    let tokio_tungstenite::tungstenite::Error::Http(resp) = err else {
        panic!("an HTTP refusal expected, got {err}")
    };
    assert_eq!(resp.status(), 503);
    tokio::time::sleep(Duration::from_millis(1)).await;
    let refusal = gw
        .log()
        .into_iter()
        .find_map(|r| match r.event {
            GatewayEvent::Refused { status, reason } => Some((status, reason)),
            _ => None,
        })
        .expect("the refusal is logged");
    assert_eq!(refusal.0, 503);
    let reason = refusal.1.expect("a limit refusal says why");
    assert!(reason.contains("max_sessions") && reason.contains('2'), "{reason}");
    assert_eq!(gw.sessions(), 2, "no session was created for /c");
    // A known session still gets in.
    assert_eq!(one_message(net, "/a").await, frame(2));
}
