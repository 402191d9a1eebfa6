//! The client over real loopback TCP ("live" mode): checked by invariants — nothing lost, nothing
//! confirmed twice, order kept — rather than by timings, which vary by machine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jt808_harness::client::{BackoffConfig, Client, ClientConfig, EventKind, OutboxConfig};
use jt808_harness::codec::body::{Body, GeneralResponse, RawBody};
use jt808_harness::codec::{DecodeEvent, Decoder, Message, Phone, Version};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message as Ws;

#[path = "client_tcp/measure.rs"]
mod measure;
#[allow(dead_code)] // each test binary uses a part of the shared fixtures
mod support;

use measure::measure_reconnect_flush;

const N: u16 = 1000;

#[derive(Default)]
struct Seen {
    /// Serial -> times received.
    count: HashMap<u16, u32>,
    /// Serials received, one list per connection.
    per_connection: Vec<Vec<u16>>,
    drops: usize,
}

/// A gateway that confirms every command and, after each one, drops the connection with
/// probability 1/20 (seeded), alternately with a close frame and abruptly.
async fn gateway(listener: TcpListener, seen: Arc<Mutex<Seen>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(808);
    loop {
        let Ok((tcp, _)) = listener.accept().await else { return };
        let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
            continue;
        };
        seen.lock().unwrap().per_connection.push(Vec::new());
        let mut decoder = Decoder::default();
        'conn: while let Some(m) = ws.next().await {
            let Ok(m) = m else { break };
            let Ws::Binary(b) = m else { continue };
            for e in decoder.push_vec(&b, Duration::ZERO) {
                let DecodeEvent::Message(cmd) = e else { continue };
                {
                    let mut s = seen.lock().unwrap();
                    *s.count.entry(cmd.header.serial).or_default() += 1;
                    s.per_connection.last_mut().unwrap().push(cmd.header.serial);
                }
                let ack = Message::new(
                    GeneralResponse::TERMINAL_ID,
                    Version::V2013,
                    cmd.header.phone,
                    0,
                    Body::TerminalGeneralResponse(GeneralResponse {
                        reply_serial: cmd.header.serial,
                        reply_id: cmd.header.msg_id,
                        result: 0,
                    }),
                );
                if ws.send(Ws::Binary(ack.encode().into())).await.is_err() {
                    break 'conn;
                }
                if rng.random_range(0..20) == 0 {
                    seen.lock().unwrap().drops += 1;
                    if rng.random::<bool>() {
                        let _ = ws.close(None).await;
                    }
                    break 'conn; // dropping the socket; unread commands stay unconfirmed
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_commands_with_seeded_random_disconnects_are_all_delivered_each_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let server = tokio::spawn(gateway(listener, seen.clone()));
    let cfg = ClientConfig {
        backoff: BackoffConfig {
            min: Duration::from_millis(1),
            max: Duration::from_millis(20),
            seed: 1,
            ..BackoffConfig::default()
        },
        outbox: OutboxConfig {
            capacity: 2 * N as usize,
            ..OutboxConfig::default()
        },
        ..ClientConfig::default()
    };
    let (client, mut events) = Client::connect(&url, cfg).unwrap();
    let phone = Phone::parse("13800138000").unwrap();
    let sender = {
        let client = client.clone();
        tokio::spawn(async move {
            for i in 0..N {
                let cmd = Message::new(0x8103, Version::V2013, phone, 0, Body::Raw(RawBody { raw: vec![0] }));
                assert_eq!(client.send(cmd), Ok(i));
                if i % 50 == 49 {
                    // Let some of them find the client between connections.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        })
    };
    let mut confirmed: HashMap<u16, u32> = HashMap::new();
    let (mut resent, mut disconnects) = (0, 0);
    let run = async {
        while confirmed.len() < N as usize {
            let e = events.recv().await.expect("client stopped");
            match e.kind {
                EventKind::Confirmed { serial, .. } => *confirmed.entry(serial).or_default() += 1,
                EventKind::Resent { .. } => resent += 1,
                EventKind::Disconnected { .. } => disconnects += 1,
                EventKind::DeliveryFailed { .. } | EventKind::QueueFull { .. } | EventKind::GaveUp { .. } => {
                    panic!("{e:?}")
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("not all confirmed within 2 minutes");
    sender.await.unwrap();
    client.shutdown().await.unwrap();
    server.abort();

    // Client side: every command confirmed, each exactly once.
    assert_eq!(confirmed.len(), N as usize);
    assert!(confirmed.values().all(|&c| c == 1));
    let s = seen.lock().unwrap();
    // Gateway side: every serial arrived; a repeat only ever comes from a re-send.
    assert_eq!(s.count.len(), N as usize);
    assert!((0..N).all(|i| s.count.contains_key(&i)));
    let repeats: u32 = s.count.values().map(|c| c - 1).sum();
    assert!(
        repeats as usize <= resent,
        "{repeats} repeats but only {resent} re-sends"
    );
    // Order: on every connection, serials arrive strictly ascending (re-sends keep their place).
    for (i, c) in s.per_connection.iter().enumerate() {
        assert!(c.windows(2).all(|w| w[0] < w[1]), "connection {i} out of order: {c:?}");
    }
    // The run really went through reconnects.
    assert!(s.drops >= 10, "only {} drops", s.drops);
    assert!(disconnects >= s.drops.min(10));
}

/// The reconnect figure (prints it; no assertion on timings).
/// `cargo test --release --test client_tcp -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run on demand"]
async fn reconnect_to_flush_figures() {
    let f = measure_reconnect_flush(1000).await.unwrap();
    assert_eq!(f.n, 1000);
    println!("{f}");
    println!("{}", serde_json::to_string(&f).unwrap());
}

/// A gateway that serves `frames` to every connection and then stays quiet (answering pings).
async fn serve_frames(listener: TcpListener, frames: Vec<Vec<u8>>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else { return };
        let frames = frames.clone();
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            for f in frames {
                if ws.send(Ws::Binary(f.into())).await.is_err() {
                    return;
                }
            }
            while let Some(Ok(_)) = ws.next().await {}
        });
    }
}

fn location(serial: u16) -> Vec<u8> {
    support::frames::zero_location("13800138000", serial)
}

fn cli_args(url: String) -> jt808_harness::cli::client::ClientArgs {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: jt808_harness::cli::client::ClientArgs,
    }
    Cli::parse_from(["client", "--url", &url]).args
}

#[tokio::test]
async fn the_cli_exits_after_count_messages_and_after_idle_seconds() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let server = tokio::spawn(serve_frames(listener, vec![location(1), location(2), location(3)]));
    let mut args = cli_args(url.clone());
    args.count = Some(2);
    tokio::time::timeout(Duration::from_secs(20), jt808_harness::cli::client::run(args))
        .await
        .expect("--count 2 did not exit")
        .unwrap();
    let mut args = cli_args(url);
    args.idle_exit = Some(Duration::from_millis(300));
    args.count = Some(100);
    tokio::time::timeout(Duration::from_secs(20), jt808_harness::cli::client::run(args))
        .await
        .expect("--idle-exit did not exit")
        .unwrap();
    server.abort();
}

#[tokio::test]
async fn the_cli_fails_when_the_client_gives_up() {
    // A port that refuses: bind, learn the port, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut args = cli_args(format!("ws://127.0.0.1:{port}/"));
    args.max_attempts = Some(2);
    args.backoff_min = Duration::from_millis(1);
    let r = tokio::time::timeout(Duration::from_secs(20), jt808_harness::cli::client::run(args))
        .await
        .unwrap();
    assert!(
        matches!(r, Err(jt808_harness::client::ClientError::GaveUp { retries: 2 })),
        "{r:?}"
    );
}

#[tokio::test]
async fn wss_urls_go_through_tls() {
    // A plain TCP server that hangs up: the client must fail in the TLS handshake (proving TLS is
    // compiled in), not with "TLS support not compiled in".
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            drop(tcp);
        }
    });
    let cfg = ClientConfig {
        backoff: BackoffConfig {
            max_attempts: Some(0),
            ..BackoffConfig::default()
        },
        ..ClientConfig::default()
    };
    let (_client, mut events) = Client::connect(&format!("wss://localhost:{port}/"), cfg).unwrap();
    let failed = loop {
        let e = events.recv().await.expect("stream ended before the attempt failed");
        if let EventKind::ConnectFailed { stage, error, .. } = e.kind {
            break (stage, error);
        }
    };
    assert_eq!(failed.0, jt808_harness::client::ConnectStage::Handshake, "{failed:?}");
    assert!(!failed.1.contains("not compiled"), "{failed:?}");
    server.abort();
}
