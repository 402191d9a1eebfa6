//! Record through the proxy in front of the simulated gateway, then replay the recording: the
//! client decodes the same messages, in the same order, as against the live gateway.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jt808_harness::capture::CaptureReader;
use jt808_harness::capture::record::{PrefixSetting, RecordOpts, RecordReport, Recorder};
use jt808_harness::client::{Client, ClientConfig, EventKind, Events};
use jt808_harness::codec::body::{Body, RawBody};
use jt808_harness::codec::{Message, Phone, Version};
use jt808_harness::gateway::GatewayConfig;
use jt808_harness::gateway::fleet::FleetConfig;
use jt808_harness::gateway::source::{CaptureSource, SourceSpec};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message as WsMessage;

#[allow(dead_code)] // each test binary uses a part of the shared fixtures
mod support;

/// Starts a gateway serving `source` on 127.0.0.1:0; it serves until the fixture is dropped.
async fn start_gateway(source: SourceSpec, prefix_len: usize) -> (support::gateway::Served, SocketAddr) {
    let feeds = source.feeds(5).expect("source builds").into_factory();
    let cfg = GatewayConfig {
        prefix_len,
        seed: 5,
        ..GatewayConfig::default()
    };
    support::gateway::on_loopback(cfg, feeds).await
}

/// Connects a client and returns the JSON of the first `n` messages it decodes.
async fn decoded(url: &str, prefix_len: usize, n: usize) -> Vec<serde_json::Value> {
    let cfg = ClientConfig {
        prefix_len,
        ..ClientConfig::default()
    };
    let (client, mut events): (Client, Events) = Client::connect(url, cfg).unwrap();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while out.len() < n {
        let e = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("messages arrive in time")
            .unwrap();
        if let EventKind::Message(m) = &e.kind {
            out.push(serde_json::to_value(m).unwrap());
        }
    }
    client.shutdown().await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_feed_replays_to_the_same_decoded_messages() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("recorded.jsonl");
    // A fleet with sub-packaged media, behind the seed gateway's 18-byte envelope.
    let fleet = FleetConfig {
        terminals: 2,
        messages: 6,
        interval_ms: 20,
        ..FleetConfig::default()
    };
    let n = 12;
    let (_live, live_gateway) = start_gateway(SourceSpec::Fleet(fleet), 18).await;

    let mut opts = RecordOpts::new(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        format!("ws://{live_gateway}/"),
        capture.clone(),
    );
    opts.prefix_len = PrefixSetting::Fixed(18);
    let recorder = Recorder::bind(opts).await.unwrap();
    let proxy = recorder.local_addr();
    let (rec_stop_tx, rec_stop) = tokio::sync::oneshot::channel::<()>();
    let recording = tokio::spawn(recorder.run(async {
        let _ = rec_stop.await;
    }));
    let through_proxy = decoded(&format!("ws://{proxy}/"), 18, n).await;
    let _ = rec_stop_tx.send(());
    recording.await.unwrap().unwrap();

    // Replay the recording, as fast as possible, behind an envelope of another length.
    let replay = SourceSpec::Capture(CaptureSource {
        speed: 0.0,
        ..CaptureSource::new(&capture)
    });
    let (_replaying, replay_gateway) = start_gateway(replay, 4).await;
    let replayed = decoded(&format!("ws://{replay_gateway}/"), 4, n).await;

    assert_eq!(through_proxy.len(), n);
    assert_eq!(
        replayed, through_proxy,
        "the replay decodes to exactly what the live gateway gave"
    );
}

/// 41 distinct frames (serials 0..41) as one byte stream, cut into 14 WebSocket messages at points
/// that do not follow the frames (a message may start or end mid-frame), each behind `prefix`
/// envelope bytes that carry the message's index (so the envelope is never constant).
fn cut_feed(prefix: usize) -> Vec<Vec<u8>> {
    let phone = Phone::parse("13800000001").unwrap();
    let stream: Vec<u8> = (0..41u16)
        .flat_map(|serial| {
            let body = Body::Raw(RawBody {
                raw: vec![serial as u8, 0x7E, 0x7D, 0x11],
            });
            Message::new(0x0F01, Version::V2013, phone, serial, body).encode()
        })
        .collect();
    let per = stream.len() / 14;
    let mut out = Vec::new();
    let mut at = 0;
    for i in 0..14 {
        let end = if i == 13 {
            stream.len()
        } else {
            (i + 1) * per + (i * 5) % 9
        };
        let mut m: Vec<u8> = b"ENV".iter().copied().chain((i as u32).to_be_bytes()).collect();
        m.resize(prefix, 0);
        m.truncate(prefix);
        m.extend_from_slice(&stream[at..end]);
        at = end;
        out.push(m);
    }
    out
}

/// A gateway that sends `messages` to every connection, then waits for the client to close.
async fn serve_messages(messages: Vec<Vec<u8>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let messages = messages.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                for m in messages {
                    if ws.send(WsMessage::Binary(m.into())).await.is_err() {
                        return;
                    }
                }
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    addr
}

/// Records `messages` through the proxy with `prefix`; returns the capture's header prefix and the
/// report.
async fn record_feed(
    messages: Vec<Vec<u8>>,
    prefix: PrefixSetting,
    capture: &std::path::Path,
) -> (usize, RecordReport) {
    let n = messages.len();
    let upstream = serve_messages(messages).await;
    let mut opts = RecordOpts::new(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        format!("ws://{upstream}/"),
        capture,
    );
    opts.prefix_len = prefix;
    let recorder = Recorder::bind(opts).await.unwrap();
    let proxy = recorder.local_addr();
    let (stop_tx, stop) = tokio::sync::oneshot::channel::<()>();
    let recording = tokio::spawn(recorder.run(async {
        let _ = stop.await;
    }));
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{proxy}/"))
        .await
        .unwrap();
    for _ in 0..n {
        ws.next().await.unwrap().unwrap();
    }
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    let _ = stop_tx.send(());
    let report = recording.await.unwrap().unwrap();
    let header = CaptureReader::open(capture).unwrap().header().clone();
    (header.prefix_len, report)
}

/// The serials of the messages a replay of `capture` gives a client set to `prefix_len`.
async fn replayed_serials(capture: &std::path::Path, prefix_len: usize, n: usize) -> Vec<u64> {
    let replay = SourceSpec::Capture(CaptureSource {
        speed: 0.0,
        ..CaptureSource::new(capture)
    });
    let (serving, gateway) = start_gateway(replay, prefix_len).await;
    let got = decoded(&format!("ws://{gateway}/"), prefix_len, n).await;
    serving.stop();
    got.iter().map(|m| m["serial"].as_u64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_envelope_prefix_is_found_from_the_feed_and_every_frame_replays_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let all: Vec<u64> = (0..41).collect();
    for (prefix, name) in [(0, "bare"), (18, "enveloped")] {
        let capture = dir.path().join(format!("{name}.jsonl"));
        let (found, report) = record_feed(cut_feed(prefix), PrefixSetting::Auto, &capture).await;
        assert_eq!(found, prefix, "{name}: header prefix_len");
        assert_eq!((report.prefix_len, report.prefix_warning), (prefix, None), "{name}");
        assert_eq!(
            replayed_serials(&capture, 0, 41).await,
            all,
            "{name}: every frame, in order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_prefix_is_kept_but_a_disagreement_with_the_bytes_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("told.jsonl");
    let (stated, report) = record_feed(cut_feed(0), PrefixSetting::Fixed(18), &capture).await;
    assert_eq!(stated, 18, "the given value is what the header says");
    let warning = report.prefix_warning.expect("warned");
    assert!(
        warning.contains("--prefix-len 18 disagrees") && warning.contains("stripping 0 leaves 41"),
        "{warning}"
    );
    let capture = dir.path().join("right.jsonl");
    let (_, report) = record_feed(cut_feed(18), PrefixSetting::Fixed(18), &capture).await;
    assert_eq!(report.prefix_warning, None, "a right value is not warned about");
}
