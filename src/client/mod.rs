//! The real reconnecting decoder client: the Rust successor of the seed's browser client
//! (DESIGN.md, "The client it exists to test"), built to be shipped, not a test double.
//!
//! What it does, and where:
//! - [`connection`]: opens a WebSocket (`ws://` or `wss://`, rustls) over whatever stream a
//!   [`Connector`] yields, with a connect timeout and small per-connection buffers ([`WsSettings`]).
//! - `driver` (private): the connect -> serve -> back off loop. Binary messages lose their envelope
//!   prefix ([`ClientConfig::prefix_len`]) and go to one [`codec::Decoder`](crate::codec::Decoder)
//!   kept across connections (packet groups survive a reconnect; a frame cut by a disconnect is
//!   reported by `end_stream`, never glued to the next connection's bytes). Pings go out every
//!   [`ClientConfig::ping_interval`]; nothing read for [`ClientConfig::idle_timeout`] means the
//!   connection is half-open and is dropped.
//! - `inbound` (private): what each decoded event leads to (its event, confirmation, request
//!   answers, handlers), without copying the message it carries.
//! - [`backoff`]: exponential backoff with full jitter from a seeded RNG. Pure.
//! - [`outbox`]: the send queue with explicit capacity, serials, confirmation by the terminal's
//!   0x0001, re-send after a reconnect (original serial kept). Pure.
//! - [`replies`]: which answer belongs to which command; the 0x8003 retransmit request. Pure.
//! - [`events`]: the [`Event`] stream transcripts are made of (virtual time, no addresses).
//!
//! The command line, `jt808-harness client`, is `crate::cli::client`.
//!
//! Tokio is used only here (and in the gateway); the codec stays sans-IO.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use jt808_harness::client::{Client, ClientConfig};
//! let (client, mut events) = Client::connect("ws://127.0.0.1:8080/", ClientConfig::default())?;
//! client.on(0x1205, |msg| println!("resource list: {msg:?}"));
//! while let Some(event) = events.recv().await {
//!     println!("{}", serde_json::to_string(&event)?);
//! }
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::codec::{DecoderConfig, Message, Phone};

pub mod backoff;
pub mod connection;
mod driver;
pub mod events;
mod inbound;
pub mod outbox;
pub mod replies;

pub use backoff::{Backoff, BackoffConfig, Jitter};
pub use connection::{AsyncStream, BoxedStream, ConnectError, Connector, TcpConnector, UrlError, WsSettings};
pub use events::{ConnectStage, DisconnectReason, Event, EventKind, Events};
pub use outbox::{Outbox, OutboxConfig, OutboxFull, ResendReason};

use crate::codec::reassembly::duration_ms;
use events::Sink;

/// Client settings. Every limit is here with its default; hitting one is an event.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientConfig {
    /// Bytes of envelope at the start of every binary WebSocket message, skipped before the JT808
    /// stream. Default 0 (a bare stream); the seed's gateway uses 18.
    pub prefix_len: usize,
    /// Transport + TLS + WebSocket handshake must finish within this. Default 10 s.
    #[serde(with = "duration_ms", rename = "connect_timeout_ms")]
    pub connect_timeout: Duration,
    /// A WebSocket ping goes out this often, so a live server always has something to answer.
    /// Default 15 s.
    #[serde(with = "duration_ms", rename = "ping_interval_ms")]
    pub ping_interval: Duration,
    /// Nothing read (data, pong, anything) for this long: the connection is half-open and is
    /// dropped. Should exceed `ping_interval` plus a round trip. Default 45 s.
    #[serde(with = "duration_ms", rename = "idle_timeout_ms")]
    pub idle_timeout: Duration,
    /// Reconnect backoff.
    pub backoff: BackoffConfig,
    /// Send queue and delivery confirmation.
    pub outbox: OutboxConfig,
    /// Frame limits, packet-group limits and timeout.
    pub decoder: DecoderConfig,
    /// WebSocket buffers and message size limit.
    pub ws: WsSettings,
    /// Ask the terminal for the missing packets of an incomplete group with 0x8003: when it
    /// stalls, if `decoder.reassembly.retransmit_wait` keeps it open for the answer (the re-sent
    /// packets then complete it), else when it expires (useful only to a consumer that reassembles
    /// from the `packet` events itself). Default false.
    pub retransmit_requests: bool,
    /// Events not yet taken before the client stops reading the socket. Default 1024.
    pub event_capacity: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            prefix_len: 0,
            connect_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
            backoff: BackoffConfig::default(),
            outbox: OutboxConfig::default(),
            decoder: DecoderConfig::default(),
            ws: WsSettings::default(),
            retransmit_requests: false,
            event_capacity: 1024,
        }
    }
}

/// Why the client as a whole stopped or could not start.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The URL is not a `ws://`/`wss://` URL with a host.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// [`BackoffConfig::max_attempts`] retries in a row failed.
    #[error("gave up after {retries} reconnect attempts in a row")]
    GaveUp {
        /// Retries made.
        retries: u32,
    },
    /// The client's task panicked or was cancelled (a bug: please report it).
    #[error("client task ended abnormally: {0}")]
    Task(String),
    /// A command-line argument was wrong.
    #[error("argument {arg}: {why}")]
    Argument {
        /// Which argument.
        arg: String,
        /// What is wrong.
        why: String,
    },
    /// Writing the event stream failed (stdout closed).
    #[error("writing events: {0}")]
    Output(#[from] std::io::Error),
}

/// [`Client::send`] did not take the message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SendError {
    /// The send queue is full ([`OutboxConfig::capacity`]); nothing was queued.
    #[error(transparent)]
    QueueFull(#[from] OutboxFull),
    /// The client has stopped.
    #[error("client stopped")]
    Stopped,
}

/// [`Client::request`] got no answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    /// The command was not queued.
    #[error(transparent)]
    Send(#[from] SendError),
    /// No answer within the timeout. The command may still be delivered (and confirmed) later.
    #[error("no answer to 0x{msg_id:04X} serial {serial} within {timeout:?}")]
    TimedOut {
        /// Serial of the request.
        serial: u16,
        /// Its id.
        msg_id: u16,
        /// The timeout.
        timeout: Duration,
    },
    /// The terminal answered with a general response whose result is not success (1 failure,
    /// 2 message error, 3 unsupported).
    #[error("terminal answered 0x{msg_id:04X} serial {serial} with result {result}")]
    Rejected {
        /// Serial of the request.
        serial: u16,
        /// Its id.
        msg_id: u16,
        /// The result byte.
        result: u8,
    },
    /// The client stopped before an answer came.
    #[error("client stopped")]
    Stopped,
}

/// A handler for decoded messages of one id.
pub type Handler = Arc<dyn Fn(&Message) + Send + Sync>;

struct PendingRequest {
    id: u64,
    phone: Phone,
    serial: u16,
    msg_id: u16,
    tx: oneshot::Sender<Result<Message, RequestError>>,
}

/// State shared by the handles and the driver task, behind one short-held lock, so events about
/// the queue come out in the order the queue changed.
struct State {
    outbox: Outbox,
    sink: Sink,
    requests: Vec<PendingRequest>,
    next_request: u64,
    connected: bool,
    stopping: bool,
    stopped: bool,
}

struct Shared {
    start: Instant,
    state: Mutex<State>,
    /// Wakes the driver: a message was queued, or stop.
    wake: Notify,
    handlers: Mutex<HashMap<u16, Vec<Handler>>>,
    task: Mutex<Option<JoinHandle<Result<(), ClientError>>>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn t_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn stop(&self) {
        self.lock().stopping = true;
        self.wake.notify_one();
    }
}

/// Stops the driver when the last [`Client`] handle is dropped.
struct Token(Arc<Shared>);

impl Drop for Token {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// A handle to a running client. Cheap to clone; the client stops when [`Client::shutdown`] is
/// called or the last handle is dropped.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    _token: Arc<Token>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.shared.lock();
        f.debug_struct("Client")
            .field("connected", &s.connected)
            .field("held", &s.outbox.len())
            .finish()
    }
}

impl Client {
    /// Starts a client that connects over TCP to `url` (`ws://` or `wss://`). Must be called
    /// inside a tokio runtime; the client runs on its own task.
    pub fn connect(url: &str, cfg: ClientConfig) -> Result<(Client, Events), ClientError> {
        let connector = TcpConnector::from_url(url)?;
        Ok(Client::with_connector(connector, url, cfg))
    }

    /// Starts a client over the streams `connector` yields; `url` is used for the handshake's
    /// request (and TLS when it is `wss://`). This is how tests run it over `tokio::io::duplex`.
    pub fn with_connector(connector: impl Connector, url: &str, cfg: ClientConfig) -> (Client, Events) {
        let (sink, events) = Sink::new(cfg.event_capacity);
        let shared = Arc::new(Shared {
            start: Instant::now(),
            state: Mutex::new(State {
                outbox: Outbox::new(cfg.outbox),
                sink,
                requests: Vec::new(),
                next_request: 0,
                connected: false,
                stopping: false,
                stopped: false,
            }),
            wake: Notify::new(),
            handlers: Mutex::new(HashMap::new()),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(driver::run(shared.clone(), Box::new(connector), url.to_string(), cfg));
        *shared.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        let client = Client {
            _token: Arc::new(Token(shared.clone())),
            shared,
        };
        (client, events)
    }

    /// Queues `msg` for sending and returns its serial. The serial in `msg`'s header is replaced
    /// by the next one; a long body is split into packets. Never waits: when the queue is full the
    /// message is refused with [`SendError::QueueFull`] (and a `queue_full` event), never dropped.
    /// Commands (see [`outbox::needs_confirmation`]) are held until the terminal confirms them.
    pub fn send(&self, msg: Message) -> Result<u16, SendError> {
        let serial = {
            let mut s = self.shared.lock();
            self.push_locked(&mut s, &msg)?
        };
        self.shared.wake.notify_one();
        Ok(serial)
    }

    fn push_locked(&self, s: &mut State, msg: &Message) -> Result<u16, SendError> {
        if s.stopped || s.stopping {
            return Err(SendError::Stopped);
        }
        let t = self.shared.t_ms();
        match s.outbox.push(msg) {
            Ok(p) => {
                s.sink.emit(
                    t,
                    EventKind::Queued {
                        serial: p.serial,
                        msg_id: msg.header.msg_id,
                        phone: msg.header.phone,
                        packets: p.packets,
                        held: p.held,
                    },
                );
                Ok(p.serial)
            }
            Err(full) => {
                s.sink.emit(
                    t,
                    EventKind::QueueFull {
                        msg_id: msg.header.msg_id,
                        phone: msg.header.phone,
                        capacity: full.capacity,
                    },
                );
                Err(SendError::QueueFull(full))
            }
        }
    }

    /// Sends a command and waits up to `timeout` for its answer: for 0x9205 the 0x1205 resource
    /// list naming its serial (reassembled when it came in packets); for 0x9206 the 0x1206 upload
    /// notice (after the terminal's 0x0001); for anything else the 0x0001 general response.
    /// A 0x0001 with a result other than success ends the wait with [`RequestError::Rejected`].
    pub async fn request(&self, msg: Message, timeout: Duration) -> Result<Message, RequestError> {
        let (tx, mut rx) = oneshot::channel();
        let (id, serial) = {
            let mut s = self.shared.lock();
            let serial = self.push_locked(&mut s, &msg)?;
            let id = s.next_request;
            s.next_request += 1;
            s.requests.push(PendingRequest {
                id,
                phone: msg.header.phone,
                serial,
                msg_id: msg.header.msg_id,
                tx,
            });
            (id, serial)
        };
        self.shared.wake.notify_one();
        match tokio::time::timeout(timeout, &mut rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(RequestError::Stopped),
            Err(_) => {
                let mut s = self.shared.lock();
                match s.requests.iter().position(|r| r.id == id) {
                    Some(i) => {
                        let r = s.requests.swap_remove(i);
                        let t = self.shared.t_ms();
                        s.sink.emit(
                            t,
                            EventKind::RequestTimedOut {
                                serial,
                                msg_id: r.msg_id,
                                phone: r.phone,
                            },
                        );
                        Err(RequestError::TimedOut {
                            serial,
                            msg_id: r.msg_id,
                            timeout,
                        })
                    }
                    // Answered at the same instant: take the answer.
                    None => rx.try_recv().unwrap_or(Err(RequestError::Stopped)),
                }
            }
        }
    }

    /// Calls `handler` for every decoded message with id `msg_id` (the seed registers 0x1205 and
    /// 0x1206), on the client's task, after the message's event. Keep it short; it must not
    /// register handlers itself.
    pub fn on(&self, msg_id: u16, handler: impl Fn(&Message) + Send + Sync + 'static) {
        self.shared
            .handlers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(msg_id)
            .or_default()
            .push(Arc::new(handler));
    }

    /// True while a WebSocket connection is open.
    pub fn is_connected(&self) -> bool {
        self.shared.lock().connected
    }

    /// Messages held in the send queue (waiting, or awaiting confirmation).
    pub fn held(&self) -> usize {
        self.shared.lock().outbox.len()
    }

    /// Stops the client (closing the connection with a close frame) and waits for its task.
    /// Returns how the task ended: `Ok` for a shutdown, [`ClientError::GaveUp`] if it had given up.
    pub async fn shutdown(&self) -> Result<(), ClientError> {
        self.shared.stop();
        self.wait().await
    }

    /// Waits until the client's task ends (after [`Client::shutdown`] or giving up).
    pub async fn wait(&self) -> Result<(), ClientError> {
        let task = self.shared.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        match task {
            Some(t) => t.await.unwrap_or_else(|e| Err(ClientError::Task(e.to_string()))),
            None => Ok(()),
        }
    }
}
