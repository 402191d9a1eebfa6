//! The simulated gateway end to end over in-memory pipes with the paused clock.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jt808_harness::codec::body::{Body, RawBody};
use jt808_harness::codec::{Message, Phone, Version};
use jt808_harness::gateway::{Closed, FeedItem, Gateway, GatewayConfig, GatewayEvent, ListFeed};
use jt808_harness::transport::MemoryNetwork;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

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
    let (net, listener) = MemoryNetwork::new(64 * 1024);
    let (_stop_tx, stop) = watch::channel(false);
    let cfg = GatewayConfig {
        prefix_len: 18,
        ..GatewayConfig::default()
    };
    let gw = Gateway::new(
        cfg,
        vec![],
        |_| {
            Box::new(ListFeed::new((1..=3u16).map(|i| FeedItem {
                due: Duration::from_millis(500 * i as u64),
                bytes: frame(i),
            })))
        },
        stop,
    )
    .unwrap();
    let start = Instant::now();
    tokio::spawn({
        let gw = gw.clone();
        async move { gw.serve(listener).await }
    });
    let io = net.connect().unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async("ws://gateway/", io).await.unwrap();
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
    let (net, listener) = MemoryNetwork::new(64 * 1024);
    let (_stop_tx, stop) = watch::channel(false);
    let gw = Gateway::new(
        GatewayConfig::default(),
        vec![],
        |_| {
            Box::new(ListFeed::new((1..=4u16).map(|i| FeedItem {
                due: Duration::from_millis(100 * i as u64),
                bytes: frame(i),
            })))
        },
        stop,
    )
    .unwrap();
    tokio::spawn({
        let gw = gw.clone();
        async move { gw.serve(listener).await }
    });
    let (mut ws, _) = tokio_tungstenite::client_async("ws://gateway/a", net.connect().unwrap())
        .await
        .unwrap();
    let first = ws.next().await.unwrap().unwrap().into_data();
    assert_eq!(first.as_ref(), frame(1).as_slice());
    drop(ws);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (mut ws, _) = tokio_tungstenite::client_async("ws://gateway/a", net.connect().unwrap())
        .await
        .unwrap();
    for i in 2..=4u16 {
        let got = ws.next().await.unwrap().unwrap().into_data();
        assert_eq!(
            got.as_ref(),
            frame(i).as_slice(),
            "message {i} is served after the reconnect"
        );
    }
}
