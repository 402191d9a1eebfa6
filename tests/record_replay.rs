//! Record through the proxy in front of the simulated gateway, then replay the recording: the
//! client decodes the same messages, in the same order, as against the live gateway.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use jt808_harness::capture::record::{RecordOpts, Recorder};
use jt808_harness::client::{Client, ClientConfig, EventKind, Events};
use jt808_harness::gateway::fleet::FleetConfig;
use jt808_harness::gateway::source::{CaptureSource, SourceSpec};
use jt808_harness::gateway::{Gateway, GatewayConfig};
use jt808_harness::transport::Listener;
use tokio::sync::watch;

/// Starts a gateway serving `source` on 127.0.0.1:0 and returns its address.
async fn start_gateway(source: SourceSpec, prefix_len: usize, stop: watch::Receiver<bool>) -> SocketAddr {
    let feeds = source.feeds(5).expect("source builds").into_factory();
    let cfg = GatewayConfig {
        prefix_len,
        seed: 5,
        ..GatewayConfig::default()
    };
    let gw = Gateway::new(cfg, vec![], feeds, stop).expect("gateway starts");
    let listener = Listener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { gw.serve(listener).await });
    addr
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
    let (stop_tx, stop) = watch::channel(false);
    // A fleet with sub-packaged media, behind the seed gateway's 18-byte envelope.
    let fleet = FleetConfig {
        terminals: 2,
        messages: 6,
        interval_ms: 20,
        ..FleetConfig::default()
    };
    let n = 12;
    let live_gateway = start_gateway(SourceSpec::Fleet(fleet), 18, stop.clone()).await;

    let mut opts = RecordOpts::new(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        format!("ws://{live_gateway}/"),
        capture.clone(),
    );
    opts.prefix_len = 18;
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
        path: capture.clone(),
        speed: 0.0,
        loops: 1,
        terminal: Default::default(),
    });
    let replay_gateway = start_gateway(replay, 4, stop).await;
    let replayed = decoded(&format!("ws://{replay_gateway}/"), 4, n).await;
    let _ = stop_tx.send(true);

    assert_eq!(through_proxy.len(), n);
    assert_eq!(
        replayed, through_proxy,
        "the replay decodes to exactly what the live gateway gave"
    );
}
