//! The reconnect figure: time from a server-side drop to the queue flushed on the new connection,
//! over real loopback TCP with backoff min 0. A measurement, not a test: it runs on the real clock
//! and its numbers vary by machine, so no test asserts on them. Only the `#[ignore]`d figure test
//! of `tests/client_tcp.rs` runs it, so it lives beside that test rather than in the library; it
//! uses the client's public API only.
//!
//! Each round: the server drops the connection (closes its socket without a close frame) and notes
//! the instant; the caller at once sends a command (0x8103); the client notices the drop, reconnects
//! (the command, if it was written into the dead socket, is re-sent from the outbox), and the
//! server notes the instant the command arrives on the new connection. The figure is the
//! difference, both instants taken in this process. The server then confirms the command with
//! 0x0001 so nothing is left for the next round.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use jt808_harness::client::{BackoffConfig, Client, ClientConfig, ClientError, EventKind, Events, OutboxConfig};
use jt808_harness::codec::body::{Body, GeneralResponse, RawBody};
use jt808_harness::codec::{DecodeEvent, Decoder, Message, Phone, Version};

/// Latency figures over `n` samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Figures {
    /// Samples.
    pub n: usize,
    /// Median.
    #[serde(with = "micros")]
    pub median: Duration,
    /// 99th percentile (nearest rank).
    #[serde(with = "micros")]
    pub p99: Duration,
    /// Largest.
    #[serde(with = "micros")]
    pub max: Duration,
    /// Mean.
    #[serde(with = "micros")]
    pub mean: Duration,
}

mod micros {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_micros() as u64)
    }
}

impl Figures {
    /// Summarises samples (nearest-rank percentiles). Empty input gives zeros.
    pub fn from_samples(mut v: Vec<Duration>) -> Figures {
        v.sort();
        let n = v.len();
        let rank = |p: f64| -> Duration {
            if n == 0 {
                return Duration::ZERO;
            }
            let r = ((p * n as f64).ceil() as usize).clamp(1, n);
            v[r - 1]
        };
        let total: Duration = v.iter().sum();
        Figures {
            n,
            median: rank(0.5),
            p99: rank(0.99),
            max: v.last().copied().unwrap_or_default(),
            mean: if n == 0 { Duration::ZERO } else { total / n as u32 },
        }
    }
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "drop -> flushed on new connection, {} reconnects: median {:?}, p99 {:?}, max {:?}, mean {:?}",
            self.n, self.median, self.p99, self.max, self.mean
        )
    }
}

enum ToServer {
    /// Drop the current connection and say when.
    Drop(oneshot::Sender<Instant>),
}

/// Measures `n` reconnects over loopback (see the module doc). Needs a multi-threaded or
/// current-thread tokio runtime with the real clock.
pub async fn measure_reconnect_flush(n: usize) -> Result<Figures, ClientError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (to_server, mut server_rx) = mpsc::channel::<ToServer>(1);
    let (arrived_tx, mut arrived) = mpsc::channel::<Instant>(1);
    let server = tokio::spawn(async move {
        let mut decoder = Decoder::default();
        let mut first = true;
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let _ = tcp.set_nodelay(true);
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                continue;
            };
            // Every connection after the first must bring the round's command.
            let mut waiting_for_command = !first;
            first = false;
            loop {
                tokio::select! {
                    biased;
                    m = ws.next() => match m {
                        Some(Ok(WsMessage::Binary(b))) if waiting_for_command => {
                            let at = Instant::now();
                            for e in decoder.push_vec(&b, Duration::ZERO) {
                                if let DecodeEvent::Message(cmd) = e {
                                    waiting_for_command = false;
                                    let _ = arrived_tx.send(at).await;
                                    let ack = general_response(&cmd);
                                    if ws.send(WsMessage::Binary(ack.into())).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                    cmd = server_rx.recv(), if !waiting_for_command => match cmd {
                        Some(ToServer::Drop(when)) => {
                            let _ = when.send(Instant::now());
                            break; // drops the socket: FIN without a close frame
                        }
                        None => return,
                    },
                }
            }
            decoder.end_stream(|_| {});
        }
    });

    let cfg = ClientConfig {
        backoff: BackoffConfig {
            min: Duration::ZERO,
            ..BackoffConfig::default()
        },
        outbox: OutboxConfig {
            confirm_timeout: Duration::from_secs(60),
            ..OutboxConfig::default()
        },
        ping_interval: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(120),
        ..ClientConfig::default()
    };
    let (client, mut events) = Client::connect(&format!("ws://{addr}/"), cfg)?;
    wait_for(&mut events, |k| matches!(k, EventKind::Connected { .. })).await?;
    let phone = Phone::parse("13800138000").map_err(|why| ClientError::Argument {
        arg: "phone".into(),
        why,
    })?;
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = oneshot::channel();
        to_server
            .send(ToServer::Drop(tx))
            .await
            .map_err(|_| ClientError::Task("measurement server ended".into()))?;
        let dropped_at = rx
            .await
            .map_err(|_| ClientError::Task("measurement server ended".into()))?;
        // 0x8103 set terminal parameters with no parameters: a command the server confirms.
        let cmd = Message::new(0x8103, Version::V2013, phone, 0, Body::Raw(RawBody { raw: vec![0] }));
        let serial = client.send(cmd).map_err(|e| ClientError::Task(e.to_string()))?;
        let arrived_at = arrived
            .recv()
            .await
            .ok_or_else(|| ClientError::Task("measurement server ended".into()))?;
        samples.push(arrived_at.saturating_duration_since(dropped_at));
        wait_for(
            &mut events,
            |k| matches!(k, EventKind::Confirmed { serial: s, .. } if *s == serial),
        )
        .await?;
    }
    drop(to_server);
    client.shutdown().await?;
    server.abort();
    Ok(Figures::from_samples(samples))
}

async fn wait_for(events: &mut Events, want: impl Fn(&EventKind) -> bool) -> Result<(), ClientError> {
    while let Some(e) = events.recv().await {
        if want(&e.kind) {
            return Ok(());
        }
    }
    Err(ClientError::Task("client stopped during the measurement".into()))
}

/// The terminal's 0x0001 success answer to `cmd`.
fn general_response(cmd: &Message) -> Vec<u8> {
    Message::new(
        GeneralResponse::TERMINAL_ID,
        cmd.header.version,
        cmd.header.phone,
        0,
        Body::TerminalGeneralResponse(GeneralResponse {
            reply_serial: cmd.header.serial,
            reply_id: cmd.header.msg_id,
            result: GeneralResponse::OK,
        }),
    )
    .encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let f = Figures::from_samples(v);
        assert_eq!(f.n, 100);
        assert_eq!(f.median, Duration::from_millis(50));
        assert_eq!(f.p99, Duration::from_millis(99));
        assert_eq!(f.max, Duration::from_millis(100));
        assert_eq!(Figures::from_samples(vec![]).p99, Duration::ZERO);
    }
}
