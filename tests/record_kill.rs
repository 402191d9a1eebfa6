//! The recorder killed with SIGKILL under traffic, at 50 seeded moments: every message the client
//! received through it is in the capture, in order, and the capture reads whole (a last line cut
//! by the kill is reported as a truncation, never an error).
//!
//! Real processes, real loopback sockets, real time: the moments are drawn from a seeded RNG, and
//! the assertion holds at any moment, so the test cannot flake on a slow machine.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jt808_harness::capture::{CaptureReader, Payload, RecordKind, Side};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// A gateway that streams numbered binary messages to every connection as fast as it can.
async fn firehose() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                for i in 0u32.. {
                    let mut m = i.to_be_bytes().to_vec();
                    m.resize(64, 0x55);
                    if ws.send(Message::Binary(m.into())).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Starts `jt808-harness record` and returns the child and the address it listens on.
fn start_recorder(upstream: SocketAddr, out: &std::path::Path) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jt808-harness"))
        .args(["record", "--listen", "127.0.0.1:0", "--prefix-len", "0"])
        .arg("--upstream")
        .arg(format!("ws://{upstream}/"))
        .arg("--out")
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("recorder starts");
    // Its first stdout line, as every command that listens prints it: `listening on ws://ADDR`.
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim_end()
        .strip_prefix("listening on ws://")
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_killed_at_any_moment_has_every_message_the_client_received() {
    let upstream = firehose().await;
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(808);
    let mut total_received = 0;
    for round in 0..50 {
        let out = dir.path().join(format!("kill-{round}.jsonl"));
        let (mut child, addr) = start_recorder(upstream, &out);
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await.unwrap();
        let kill_after = Duration::from_micros(rng.random_range(0..30_000));
        let killer = tokio::spawn(async move {
            tokio::time::sleep(kill_after).await;
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
        });
        let mut received = Vec::new();
        while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            if let Message::Binary(b) = m {
                received.push(b.to_vec());
            }
        }
        killer.await.unwrap();

        let mut reader = CaptureReader::open(&out).expect("the header is on disk");
        let captured: Vec<Vec<u8>> = reader
            .by_ref()
            .map(|r| r.unwrap_or_else(|e| panic!("round {round}: {e}")))
            .filter_map(|r| match r.kind {
                RecordKind::Message {
                    from: Side::Gateway,
                    payload: Payload::Binary(b),
                } => Some(b),
                _ => None,
            })
            .collect();
        assert!(
            captured.len() >= received.len() && captured[..received.len()] == received[..],
            "round {round} (killed after {kill_after:?}): the client received {} messages, the capture holds {}",
            received.len(),
            captured.len()
        );
        total_received += received.len();
    }
    assert!(total_received > 0, "the kills happened under traffic");
}
