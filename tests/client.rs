//! The client against a small fake gateway written here, in memory (`tokio::io::duplex`) with
//! tokio's paused clock: every backoff delay and timeout is virtual, so the times in events are
//! exact and the runs are reproducible.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jt808_harness::client::{
    BackoffConfig, Client, ClientConfig, ConnectStage, DisconnectReason, Event, EventKind, Events, OutboxConfig,
    RequestError, ResendReason, SendError,
};
use jt808_harness::codec::body::{Body, GeneralResponse};
use jt808_harness::codec::{DecodeEvent, Decoder, Message, Version};
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{WebSocketStream, accept_async, accept_hdr_async};

#[allow(dead_code)] // each test binary uses a part of the shared fixtures
mod support;

type Ws808 = WebSocketStream<DuplexStream>;

// ===== the fake gateway =====

/// The server ends of the client's connection attempts, in order.
struct Gateway {
    rx: mpsc::UnboundedReceiver<DuplexStream>,
}

impl Gateway {
    /// The next attempt's raw stream (before the WebSocket handshake).
    async fn raw(&mut self) -> DuplexStream {
        within(self.rx.recv()).await.expect("client stopped connecting")
    }

    /// Accepts the next attempt.
    async fn accept(&mut self) -> Ws808 {
        accept_async(self.raw().await).await.expect("handshake")
    }

    /// Refuses the next attempt's handshake with HTTP 503.
    #[allow(clippy::result_large_err)] // the shape tungstenite's Callback requires
    async fn refuse(&mut self) {
        let raw = self.raw().await;
        let refuse = |_: &Request, _: Response| -> Result<Response, ErrorResponse> {
            let mut r = ErrorResponse::new(Some("maintenance".into()));
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            Err(r)
        };
        assert!(accept_hdr_async(raw, refuse).await.is_err());
    }
}

fn start(cfg: ClientConfig) -> (Client, Events, Gateway) {
    let (tx, rx) = mpsc::unbounded_channel();
    let connector = move || {
        let tx = tx.clone();
        async move {
            let (client_end, server_end) = tokio::io::duplex(64 << 10);
            tx.send(server_end).map_err(|_| io::Error::other("gateway gone"))?;
            Ok(client_end)
        }
    };
    let (client, events) = Client::with_connector(connector, "ws://gateway.test/", cfg);
    (client, events, Gateway { rx })
}

fn cfg() -> ClientConfig {
    ClientConfig {
        backoff: BackoffConfig {
            min: Duration::from_millis(100),
            max: Duration::from_secs(2),
            factor: 2.0,
            reset_after: Duration::from_secs(5),
            max_attempts: None,
            seed: 7,
            jitter: jt808_harness::client::Jitter::Full,
        },
        ping_interval: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(12),
        connect_timeout: Duration::from_secs(3),
        ..ClientConfig::default()
    }
}

/// Fails the test instead of hanging it (an hour of virtual time costs nothing).
async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(3600), f)
        .await
        .expect("nothing happened within an hour of virtual time")
}

/// Takes events until one matches; returns it and everything taken before it.
async fn until(events: &mut Events, want: impl Fn(&EventKind) -> bool) -> (Event, Vec<Event>) {
    let mut seen = Vec::new();
    loop {
        let e = within(events.recv()).await.expect("event stream ended");
        if want(&e.kind) {
            return (e, seen);
        }
        seen.push(e);
    }
}

/// Every event ready now (the client is idle under the paused clock after a short sleep).
async fn drain(events: &mut Events) -> Vec<Event> {
    tokio::time::sleep(Duration::from_millis(1)).await;
    let mut v = Vec::new();
    while let Some(e) = events.try_recv() {
        v.push(e);
    }
    v
}

/// The next JT808 message the client wrote (pings are answered by tungstenite meanwhile).
async fn read_msg(ws: &mut Ws808, decoder: &mut Decoder) -> Message {
    loop {
        match within(ws.next()).await {
            Some(Ok(Ws::Binary(b))) => {
                for e in decoder.push_vec(&b, Duration::ZERO) {
                    if let DecodeEvent::Message(m) = e {
                        return m;
                    }
                }
            }
            Some(Ok(_)) => {}
            other => panic!("gateway: connection ended while waiting for a message: {other:?}"),
        }
    }
}

const PHONE: &str = "13800138000";

fn raw(msg_id: u16, serial: u16, body: &[u8]) -> Message {
    support::frames::raw_message(msg_id, Version::V2013, PHONE, serial, body)
}

/// 0x8103 with an empty parameter list: a command the terminal confirms with 0x0001.
fn command(tag: u8) -> Message {
    raw(0x8103, 0, &[tag])
}

fn ack(to: &Message, result: u8) -> Ws {
    let m = Message::new(
        0x0001,
        to.header.version,
        to.header.phone,
        900,
        Body::TerminalGeneralResponse(GeneralResponse {
            reply_serial: to.header.serial,
            reply_id: to.header.msg_id,
            result,
        }),
    );
    Ws::Binary(m.encode().into())
}

fn location(serial: u16) -> Vec<u8> {
    support::frames::zero_location(PHONE, serial)
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events
        .iter()
        .map(|e| match &e.kind {
            EventKind::Connecting { .. } => "connecting",
            EventKind::Connected { .. } => "connected",
            EventKind::ConnectFailed { .. } => "connect_failed",
            EventKind::Disconnected { .. } => "disconnected",
            EventKind::Backoff { .. } => "backoff",
            EventKind::Message(_) => "message",
            EventKind::FrameRejected { .. } => "frame_rejected",
            EventKind::Skipped { .. } => "skipped",
            EventKind::Queued { .. } => "queued",
            EventKind::Sent { .. } => "sent",
            EventKind::Resent { .. } => "resent",
            EventKind::Flushed { .. } => "flushed",
            EventKind::Confirmed { .. } => "confirmed",
            _ => "other",
        })
        .collect()
}

// ===== backoff and reconnects =====

#[tokio::test(start_paused = true)]
async fn refused_handshakes_follow_the_exact_backoff_schedule_for_the_seed() {
    let (_client, mut events, mut gw) = start(cfg());
    for _ in 0..6 {
        gw.refuse().await;
    }
    let _ws = gw.accept().await;
    let (connected, before) = until(&mut events, |k| matches!(k, EventKind::Connected { .. })).await;
    // The schedule the pure Backoff gives for seed 7, in milliseconds (pinned in backoff.rs too).
    let expected_ms = [15u64, 33, 282, 582, 962, 719];
    let delays: Vec<u64> = before
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Backoff { delay_ms, .. } => Some(delay_ms),
            _ => None,
        })
        .collect();
    assert_eq!(delays, expected_ms);
    // Each attempt starts exactly when its delay ends: virtual time is the sum of the delays.
    let starts: Vec<u64> = before
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Connecting { .. }))
        .map(|e| e.t_ms)
        .collect();
    let want: Vec<u64> = std::iter::once(0)
        .chain(expected_ms.iter().scan(0, |sum, d| {
            *sum += d;
            Some(*sum)
        }))
        .collect();
    assert_eq!(starts, want);
    assert!(matches!(connected.kind, EventKind::Connected { attempt: 7 }));
    let failed = before
        .iter()
        .filter(|e| {
            matches!(&e.kind, EventKind::ConnectFailed { stage: ConnectStage::Handshake, error, .. } if error.contains("503"))
        })
        .count();
    assert_eq!(failed, 6, "every refusal is reported with its HTTP status");
}

#[tokio::test(start_paused = true)]
async fn reconnects_after_a_clean_close() {
    let (_client, mut events, mut gw) = start(cfg());
    let mut ws = gw.accept().await;
    ws.close(Some(CloseFrame {
        code: CloseCode::Away,
        reason: "restart".into(),
    }))
    .await
    .unwrap();
    let (e, _) = until(&mut events, |k| matches!(k, EventKind::Disconnected { .. })).await;
    assert_eq!(
        e.kind,
        EventKind::Disconnected {
            reason: DisconnectReason::Closed {
                code: Some(1001),
                reason: "restart".into()
            },
            uptime_ms: 0
        }
    );
    let _ws2 = gw.accept().await;
    until(&mut events, |k| matches!(k, EventKind::Connected { attempt: 2 })).await;
}

#[tokio::test(start_paused = true)]
async fn reconnects_after_an_abrupt_drop() {
    let (_client, mut events, mut gw) = start(cfg());
    let ws = gw.accept().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(ws); // no close frame: the stream just ends
    let (e, _) = until(&mut events, |k| matches!(k, EventKind::Disconnected { .. })).await;
    assert!(
        matches!(
            e.kind,
            EventKind::Disconnected {
                reason: DisconnectReason::Dropped { .. },
                uptime_ms: 2000
            }
        ),
        "{e:?}"
    );
    let _ws2 = gw.accept().await;
    until(&mut events, |k| matches!(k, EventKind::Connected { attempt: 2 })).await;
}

#[tokio::test(start_paused = true)]
async fn reconnects_after_a_refused_handshake() {
    let (_client, mut events, mut gw) = start(cfg());
    gw.refuse().await;
    let (e, _) = until(&mut events, |k| matches!(k, EventKind::ConnectFailed { .. })).await;
    assert!(matches!(
        e.kind,
        EventKind::ConnectFailed {
            attempt: 1,
            stage: ConnectStage::Handshake,
            ..
        }
    ));
    let _ws = gw.accept().await;
    until(&mut events, |k| matches!(k, EventKind::Connected { attempt: 2 })).await;
}

#[tokio::test(start_paused = true)]
async fn a_half_open_connection_is_detected_within_ping_interval_plus_idle_timeout() {
    let cfg = cfg();
    let (_client, mut events, mut gw) = start(cfg);
    // The gateway completes the handshake, then never reads or answers again (its host vanished).
    let silent = gw.accept().await;
    let (connected, _) = until(&mut events, |k| matches!(k, EventKind::Connected { .. })).await;
    let (e, _) = until(&mut events, |k| matches!(k, EventKind::Disconnected { .. })).await;
    assert!(matches!(
        e.kind,
        EventKind::Disconnected {
            reason: DisconnectReason::IdleTimeout,
            ..
        }
    ));
    let bound = (cfg.ping_interval + cfg.idle_timeout).as_millis() as u64;
    assert!(
        e.t_ms - connected.t_ms <= bound,
        "detected after {} ms",
        e.t_ms - connected.t_ms
    );
    assert!(
        e.t_ms - connected.t_ms >= cfg.idle_timeout.as_millis() as u64,
        "not before the idle timeout"
    );
    drop(silent);
    let _ws = gw.accept().await;
    until(&mut events, |k| matches!(k, EventKind::Connected { attempt: 2 })).await;
}

#[tokio::test(start_paused = true)]
async fn a_live_but_quiet_connection_is_kept_by_pings() {
    let (_client, mut events, mut gw) = start(cfg());
    let mut ws = gw.accept().await;
    // The gateway reads (and so answers pings) but sends no data for a minute.
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
    tokio::time::sleep(Duration::from_secs(60)).await;
    let seen = drain(&mut events).await;
    assert!(
        !seen.iter().any(|e| matches!(e.kind, EventKind::Disconnected { .. })),
        "{seen:?}"
    );
    reader.abort();
}

// ===== sending =====

#[tokio::test(start_paused = true)]
async fn a_full_queue_returns_an_error_and_reports_it() {
    let mut cfg = cfg();
    cfg.outbox.capacity = 3;
    let (client, mut events, mut gw) = start(cfg);
    // Not connected yet: the gateway has not answered the handshake.
    for i in 0..3 {
        assert_eq!(client.send(raw(0x8001, 0, &[0, i, 0x02, 0x00, 0])), Ok(i as u16));
    }
    let err = client.send(raw(0x8001, 0, &[0, 3, 0x02, 0x00, 0])).unwrap_err();
    assert!(matches!(err, SendError::QueueFull(f) if f.capacity == 3 && f.held == 3));
    let seen = drain(&mut events).await;
    assert!(
        seen.iter()
            .any(|e| matches!(e.kind, EventKind::QueueFull { capacity: 3, .. })),
        "{seen:?}"
    );
    // Once connected the queue drains (fire-and-forget messages leave once written) and takes again.
    let mut ws = gw.accept().await;
    let mut d = Decoder::default();
    for i in 0..3u16 {
        assert_eq!(read_msg(&mut ws, &mut d).await.header.serial, i);
    }
    until(&mut events, |k| matches!(k, EventKind::Flushed { count: 3 })).await;
    assert_eq!(client.send(raw(0x8001, 0, &[0, 3, 0x02, 0x00, 0])), Ok(3));
}

#[tokio::test(start_paused = true)]
async fn queue_order_is_kept_across_two_reconnects() {
    let (client, mut events, mut gw) = start(cfg());
    let mut d = Decoder::default();
    let send = |tag: u8| client.send(command(tag)).unwrap();
    for tag in 1..=5 {
        send(tag);
    }
    // Connection 1: all five arrive in order; the gateway confirms 1 and 2 and drops.
    let mut ws = gw.accept().await;
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(read_msg(&mut ws, &mut d).await);
    }
    assert_eq!(
        got.iter().map(|m| m.body_bytes()[0]).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    ws.send(ack(&got[0], 0)).await.unwrap();
    ws.send(ack(&got[1], 0)).await.unwrap();
    until(&mut events, |k| matches!(k, EventKind::Confirmed { serial: 1, .. })).await;
    drop(ws);
    until(&mut events, |k| matches!(k, EventKind::Disconnected { .. })).await;
    // While disconnected, newer messages queue behind the unconfirmed ones.
    send(6);
    send(7);
    // Connection 2: 3, 4, 5 again (original serials), then 6, 7. Confirm 3, drop.
    let mut ws = gw.accept().await;
    let mut got2 = Vec::new();
    for _ in 0..5 {
        got2.push(read_msg(&mut ws, &mut d).await);
    }
    let tags: Vec<u8> = got2.iter().map(|m| m.body_bytes()[0]).collect();
    assert_eq!(tags, [3, 4, 5, 6, 7]);
    let serials: Vec<u16> = got2.iter().map(|m| m.header.serial).collect();
    assert_eq!(serials, [2, 3, 4, 5, 6], "re-sends keep their serials");
    ws.send(ack(&got2[0], 0)).await.unwrap();
    until(&mut events, |k| matches!(k, EventKind::Confirmed { serial: 2, .. })).await;
    drop(ws);
    until(&mut events, |k| matches!(k, EventKind::Disconnected { .. })).await;
    send(8);
    // Connection 3: 4, 5, 6, 7, 8.
    let mut ws = gw.accept().await;
    let mut got3 = Vec::new();
    for _ in 0..5 {
        got3.push(read_msg(&mut ws, &mut d).await);
    }
    assert_eq!(
        got3.iter().map(|m| m.body_bytes()[0]).collect::<Vec<_>>(),
        [4, 5, 6, 7, 8]
    );
    for m in &got3 {
        ws.send(ack(m, 0)).await.unwrap();
    }
    until(&mut events, |k| matches!(k, EventKind::Confirmed { serial: 7, .. })).await;
    assert_eq!(client.held(), 0, "everything confirmed, nothing held");
}

#[tokio::test(start_paused = true)]
async fn a_command_unconfirmed_at_a_disconnect_is_resent_exactly_once_after_reconnecting() {
    let (client, mut events, mut gw) = start(cfg());
    let serial = client.send(command(9)).unwrap();
    let mut d = Decoder::default();
    let mut ws = gw.accept().await;
    let first = read_msg(&mut ws, &mut d).await;
    assert_eq!(first.header.serial, serial);
    drop(ws); // dies before the terminal's 0x0001
    let mut ws = gw.accept().await;
    let again = read_msg(&mut ws, &mut d).await;
    assert_eq!(again, first, "same bytes, same serial");
    ws.send(ack(&again, 0)).await.unwrap();
    let (_, before) = until(&mut events, |k| matches!(k, EventKind::Confirmed { .. })).await;
    let resent: Vec<_> = before
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Resent {
                serial, write, reason, ..
            } => Some((*serial, *write, *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(resent, [(serial, 2, ResendReason::Reconnect)]);
    // Nothing more reaches the gateway over the next minutes (pings aside): confirmed means done.
    let quiet = tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            match ws.next().await {
                Some(Ok(Ws::Binary(b))) => return b,
                Some(Ok(_)) => {}
                other => panic!("{other:?}"),
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "a confirmed command was sent again: {quiet:?}");
    assert_eq!(client.held(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_command_is_resent_after_the_confirmation_timeout_and_given_up_at_the_limit() {
    let mut cfg = cfg();
    cfg.outbox = OutboxConfig {
        confirm_timeout: Duration::from_secs(2),
        max_resends: 2,
        ..OutboxConfig::default()
    };
    let (client, mut events, mut gw) = start(cfg);
    let serial = client.send(command(1)).unwrap();
    let mut ws = gw.accept().await;
    let mut d = Decoder::default();
    let mut writes = Vec::new();
    for _ in 0..3 {
        let m = read_msg(&mut ws, &mut d).await;
        writes.push((m.header.serial, tokio::time::Instant::now()));
    }
    assert!(writes.iter().all(|(s, _)| *s == serial));
    // JT/T 808: T, then 2T before the next re-send.
    assert_eq!(writes[1].1 - writes[0].1, Duration::from_secs(2));
    assert_eq!(writes[2].1 - writes[1].1, Duration::from_secs(4));
    let (e, _) = until(&mut events, |k| matches!(k, EventKind::DeliveryFailed { .. })).await;
    assert!(matches!(e.kind, EventKind::DeliveryFailed { writes: 3, .. }));
    assert_eq!(client.held(), 0);
}

// ===== receiving =====

#[tokio::test(start_paused = true)]
async fn prefixed_split_and_text_messages_decode_and_handlers_run() {
    let mut cfg = cfg();
    cfg.prefix_len = 18;
    let (client, mut events, mut gw) = start(cfg);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    client.on(0x0200, move |m| s2.lock().unwrap().push(m.header.serial));
    let mut ws = gw.accept().await;
    let envelope = [0xEEu8; 18];
    let frame = location(1);
    let (a, b) = frame.split_at(10);
    // A frame split over two messages, each behind its own envelope.
    ws.send(Ws::Binary([&envelope[..], a].concat().into())).await.unwrap();
    ws.send(Ws::Binary([&envelope[..], b].concat().into())).await.unwrap();
    ws.send(Ws::Text("gateway notice".into())).await.unwrap();
    // Two frames in one message.
    ws.send(Ws::Binary([&envelope[..], &location(2), &location(3)].concat().into()))
        .await
        .unwrap();
    ws.send(Ws::Binary(vec![1, 2, 3].into())).await.unwrap();
    let (_, before) = until(&mut events, |k| matches!(k, EventKind::EnvelopeTooShort { len: 3, .. })).await;
    let serials: Vec<u16> = before
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Message(m) => Some(m.header.serial),
            _ => None,
        })
        .collect();
    assert_eq!(serials, [1, 2, 3]);
    assert!(
        before
            .iter()
            .any(|e| matches!(&e.kind, EventKind::TextReceived { text } if text == "gateway notice"))
    );
    assert!(!before.iter().any(|e| matches!(e.kind, EventKind::Disconnected { .. })));
    assert_eq!(*seen.lock().unwrap(), [1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn a_frame_cut_by_a_disconnect_is_reported_and_never_glued_to_the_next_connection() {
    let (_client, mut events, mut gw) = start(cfg());
    let mut ws = gw.accept().await;
    let cut = location(1);
    let (head, tail) = cut.split_at(20);
    ws.send(Ws::Binary(head.to_vec().into())).await.unwrap();
    drop(ws);
    let (rejected, _) = until(&mut events, |k| matches!(k, EventKind::FrameRejected { .. })).await;
    assert!(matches!(
        rejected.kind,
        EventKind::FrameRejected {
            check: "unterminated",
            offset: 0,
            ..
        }
    ));
    // The next connection starts with the rest of the cut frame: gluing it to the head would give
    // back a valid frame with serial 1. It must not.
    let mut ws = gw.accept().await;
    ws.send(Ws::Binary([tail, &location(2)].concat().into())).await.unwrap();
    let (m, before) = until(&mut events, |k| matches!(k, EventKind::Message(_))).await;
    assert!(matches!(m.kind, EventKind::Message(ref m) if m.header.serial == 2));
    assert!(
        before
            .iter()
            .any(|e| matches!(e.kind, EventKind::Skipped { .. } | EventKind::FrameRejected { .. })),
        "the orphaned tail is reported: {:?}",
        kinds(&before)
    );
    let more = drain(&mut events).await;
    assert!(
        !more.iter().any(|e| matches!(e.kind, EventKind::Message(_))),
        "{more:?}"
    );
}

// ===== requests =====

/// A 0x1205 answer body: reply serial, item count, then 28-byte items.
fn resource_list(reply_serial: u16, items: u32) -> Vec<u8> {
    let mut b = reply_serial.to_be_bytes().to_vec();
    b.extend_from_slice(&items.to_be_bytes());
    for i in 0..items {
        let mut item = [0u8; 28];
        item[0] = 1;
        item[24..28].copy_from_slice(&(1000 + i).to_be_bytes());
        b.extend_from_slice(&item);
    }
    b
}

#[tokio::test(start_paused = true)]
async fn request_0x9205_returns_the_multi_packet_0x1205_naming_its_serial() {
    let (client, mut events, mut gw) = start(cfg());
    let gateway = tokio::spawn(async move {
        let mut ws = gw.accept().await;
        let mut d = Decoder::default();
        let query = read_msg(&mut ws, &mut d).await;
        assert_eq!(query.header.msg_id, 0x9205);
        // An answer to some other query first: it must not be taken for ours.
        let stray = raw(0x1205, 40, &resource_list(query.header.serial.wrapping_add(100), 0));
        ws.send(Ws::Binary(stray.encode().into())).await.unwrap();
        // 20 items = 566 bytes, in packets of 200 bytes, a location report between packets.
        let answer = raw(0x1205, 0, &resource_list(query.header.serial, 20));
        let mut serial = 50;
        let packets = answer.encode_packets(200, || {
            serial += 1;
            serial
        });
        assert_eq!(packets.len(), 3);
        for (i, p) in packets.iter().enumerate() {
            ws.send(Ws::Binary(p.clone().into())).await.unwrap();
            ws.send(Ws::Binary(location(60 + i as u16).into())).await.unwrap();
        }
        (ws, answer.body_bytes())
    });
    let query = raw(0x9205, 0, &[0; 24]);
    let answer = client.request(query, Duration::from_secs(30)).await.unwrap();
    let (_ws, body) = gateway.await.unwrap();
    assert_eq!(answer.header.msg_id, 0x1205);
    assert_eq!(answer.assembled.map(|a| (a.packets, a.first_serial)), Some((3, 51)));
    assert_eq!(answer.body_bytes(), body);
    // The answer also confirmed delivery of the 0x9205.
    let (c, _) = until(&mut events, |k| matches!(k, EventKind::Confirmed { .. })).await;
    assert!(matches!(
        c.kind,
        EventKind::Confirmed {
            msg_id: 0x9205,
            result: None,
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn request_0x9206_waits_past_the_0x0001_for_the_0x1206() {
    let (client, _events, mut gw) = start(cfg());
    let gateway = tokio::spawn(async move {
        let mut ws = gw.accept().await;
        let mut d = Decoder::default();
        let order = read_msg(&mut ws, &mut d).await;
        ws.send(ack(&order, 0)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await; // the FTP upload
        let mut done = order.header.serial.to_be_bytes().to_vec();
        done.push(0);
        ws.send(Ws::Binary(raw(0x1206, 77, &done).encode().into()))
            .await
            .unwrap();
        ws
    });
    let answer = client
        .request(raw(0x9206, 0, &[0; 31]), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!((answer.header.msg_id, answer.header.serial), (0x1206, 77));
    let _ws = gateway.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_request_rejected_or_unanswered_says_so() {
    let (client, mut events, mut gw) = start(cfg());
    let gateway = tokio::spawn(async move {
        let mut ws = gw.accept().await;
        let mut d = Decoder::default();
        let first = read_msg(&mut ws, &mut d).await;
        ws.send(ack(&first, 3)).await.unwrap(); // 3 = unsupported
        let _second = read_msg(&mut ws, &mut d).await; // never answered
        while let Some(Ok(_)) = ws.next().await {}
    });
    let r = client.request(raw(0x9205, 0, &[0; 24]), Duration::from_secs(30)).await;
    assert!(
        matches!(
            r,
            Err(RequestError::Rejected {
                result: 3,
                msg_id: 0x9205,
                ..
            })
        ),
        "{r:?}"
    );
    let r = client.request(command(2), Duration::from_secs(4)).await;
    assert!(matches!(r, Err(RequestError::TimedOut { msg_id: 0x8103, .. })), "{r:?}");
    until(&mut events, |k| {
        matches!(k, EventKind::RequestTimedOut { msg_id: 0x8103, .. })
    })
    .await;
    gateway.abort();
}

// ===== packet groups =====

#[tokio::test(start_paused = true)]
async fn an_expired_group_is_reported_and_its_missing_packets_asked_for_with_0x8003() {
    let mut cfg = cfg();
    cfg.retransmit_requests = true;
    cfg.decoder.reassembly.timeout = Duration::from_secs(10);
    let (_client, mut events, mut gw) = start(cfg);
    let mut ws = gw.accept().await;
    let big = raw(0x0801, 0, &[0x11; 30]);
    let mut serial = 0x0100;
    let packets = big.encode_packets(10, || {
        serial += 1;
        serial
    });
    ws.send(Ws::Binary(packets[0].clone().into())).await.unwrap();
    ws.send(Ws::Binary(packets[2].clone().into())).await.unwrap();
    let (e, _) = until(&mut events, |k| matches!(k, EventKind::GroupExpired(_))).await;
    let EventKind::GroupExpired(x) = &e.kind else {
        unreachable!()
    };
    assert_eq!((x.missing.ranges(), x.first_serial), (&[2..=2][..], 0x0101));
    let mut d = Decoder::default();
    let req = read_msg(&mut ws, &mut d).await;
    assert_eq!(req.header.msg_id, 0x8003);
    // 2013 layout: first serial WORD, count BYTE, indices WORD (JT808.md §3).
    assert_eq!(req.body_bytes(), [0x01, 0x01, 1, 0x00, 0x02]);
}

// ===== transcript shape =====

#[tokio::test(start_paused = true)]
async fn events_serialise_as_json_lines_without_addresses() {
    let (client, mut events, mut gw) = start(cfg());
    let mut ws = gw.accept().await;
    ws.send(Ws::Binary(location(5).into())).await.unwrap();
    let (m, _) = until(&mut events, |k| matches!(k, EventKind::Message(_))).await;
    let line = serde_json::to_value(&m).unwrap();
    assert_eq!(line["type"], "message");
    assert_eq!(line["msg_id"], "0x0200");
    assert_eq!(line["phone"], "13800138000");
    assert_eq!(line["serial"], 5);
    assert!(line["body"].is_object());
    assert!(line["t_ms"].is_u64());
    client.shutdown().await.unwrap();
    let rest = drain(&mut events).await;
    let text: String = rest.iter().map(|e| serde_json::to_string(e).unwrap() + "\n").collect();
    assert!(text.contains(r#""type":"disconnected""#), "{text}");
    assert!(text.contains(r#""type":"stopped""#), "{text}");
    assert!(!text.contains("gateway.test") && !text.contains("127.0.0.1"), "{text}");
}

// ===== the command line's ranges =====

/// `client ARGS` as clap parses it.
fn client_args(args: &[&str]) -> Result<jt808_harness::cli::client::ClientArgs, String> {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: jt808_harness::cli::client::ClientArgs,
    }
    Cli::try_parse_from(["client", "--url", "ws://127.0.0.1:1"].iter().chain(args))
        .map(|c| c.args)
        .map_err(|e| e.to_string())
}

/// Every numeric option of `client` refuses a value outside its range, naming the option and the
/// range, and takes the bound itself.
#[test]
fn every_numeric_client_option_is_range_checked() {
    #[rustfmt::skip]
    let table: &[(&str, &str, &str, &str)] = &[
        // (option, a value outside, the range as the error says it, the bound)
        ("--prefix-len", "4097", "0..=4096", "4096"),
        ("--count", "0", "1..=1000000000000", "1"),
        ("--idle-exit", "0", "0s is not in 1ns..=7days", "604800"),
        ("--idle-exit", "8days", "not in 1ns..=7days", "1ms"),
        ("--connect-timeout", "0", "0s is not in 1ms..=1day", "1"),
        ("--ping-interval", "0", "not in 1ms..=1day", "86400000"),
        ("--idle-timeout", "86400001", "1day 1ms is not in 1ms..=1day", "1day"),
        ("--backoff-min", "86400001", "not in 0s..=1day", "0"),
        ("--backoff-max", "25h", "not in 0s..=1day", "24h"),
        ("--backoff-factor", "0.5", "1.0..=100.0", "100"),
        ("--backoff-factor", "NaN", "1.0..=100.0", "1"),
        ("--backoff-reset", "86400001", "not in 0s..=1day", "0"),
        ("--queue-capacity", "0", "1..=1000000", "1000000"),
        ("--confirm-timeout", "0", "not in 1ms..=1day", "1"),
        ("--max-resends", "1001", "0..=1000", "1000"),
        ("--retransmit-wait", "86400001", "not in 0s..=1day", "86400000"),
    ];
    for &(opt, bad, range, bound) in table {
        let e = client_args(&[opt, bad])
            .err()
            .unwrap_or_else(|| panic!("{opt} {bad} accepted"));
        assert!(e.contains(opt) && e.contains(range), "{opt} {bad}: {e}");
        let a = client_args(&[opt, bound]).unwrap_or_else(|e| panic!("{opt} {bound}: {e}"));
        a.check().unwrap_or_else(|e| panic!("{opt} {bound}: {e}"));
    }
    // The one check across options: the backoff floor not above its ceiling.
    let a = client_args(&["--backoff-min-ms", "2000", "--backoff-max", "1s"]).unwrap();
    let e = a.check().unwrap_err().to_string();
    assert!(e.contains("--backoff-min 2s") && e.contains("--backoff-max 1s"), "{e}");
}
