//! One live WebSocket and how it is opened: the only client file that touches tokio-tungstenite.
//!
//! The transport is whatever a [`Connector`] yields per attempt: a TCP socket for users
//! ([`TcpConnector`]), one half of `tokio::io::duplex` for the in-memory, paused-clock tests.
//! TLS (for `wss://`) and the WebSocket handshake are layered on top here, so every transport gets
//! them the same way.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::events::ConnectStage;

/// A byte stream a WebSocket can run over.
pub trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncStream for T {}

/// A boxed transport stream, one per connection attempt.
pub type BoxedStream = Box<dyn AsyncStream>;

/// The future a [`Connector`] returns.
pub type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<BoxedStream>> + Send>>;

/// Opens the transport for one connection attempt. The client calls it again for every
/// reconnect, then runs TLS (for `wss://`) and the WebSocket handshake over the stream.
///
/// Any `FnMut() -> impl Future<Output = io::Result<S>>` closure is a connector, which is how tests
/// hand the client one half of a `tokio::io::duplex` per attempt.
pub trait Connector: Send + 'static {
    /// Opens one transport stream.
    fn connect(&mut self) -> ConnectFuture;
}

impl<F, Fut, S> Connector for F
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = io::Result<S>> + Send + 'static,
    S: AsyncStream,
{
    fn connect(&mut self) -> ConnectFuture {
        let fut = self();
        Box::pin(async move { fut.await.map(|s| Box::new(s) as BoxedStream) })
    }
}

/// The URL was not a usable `ws://` or `wss://` URL.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("bad WebSocket URL {url:?}: {why}")]
pub struct UrlError {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub why: String,
}

/// Opens TCP connections to the host and port of a `ws://` or `wss://` URL (default ports 80 and
/// 443). Name resolution happens on every attempt, so a gateway that moved is found again.
#[derive(Debug, Clone)]
pub struct TcpConnector {
    host: String,
    port: u16,
}

impl TcpConnector {
    /// Reads the host and port from `url`.
    pub fn from_url(url: &str) -> Result<TcpConnector, UrlError> {
        let bad = |why: &str| UrlError {
            url: url.to_string(),
            why: why.to_string(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: tungstenite::http::uri::InvalidUri| bad(&e.to_string()))?;
        let default_port = match uri.scheme_str() {
            Some("ws") => 80,
            Some("wss") => 443,
            _ => return Err(bad("the scheme must be ws or wss")),
        };
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        // An IPv6 literal comes bracketed in the URL; the resolver wants it bare.
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        Ok(TcpConnector {
            host,
            port: uri.port_u16().unwrap_or(default_port),
        })
    }
}

impl Connector for TcpConnector {
    fn connect(&mut self) -> ConnectFuture {
        let (host, port) = (self.host.clone(), self.port);
        Box::pin(async move {
            let s = TcpStream::connect((host.as_str(), port)).await?;
            // JT808 commands are small and latency matters more than packet count.
            s.set_nodelay(true)?;
            Ok(Box::new(s) as BoxedStream)
        })
    }
}

/// Per-connection WebSocket buffers and limits. The defaults keep an idle connection small (a
/// stress run holds 10,000 of them within 16 KiB each); tungstenite's own defaults (128 KiB read
/// buffer allocated eagerly) would cost over a GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WsSettings {
    /// Read buffer, allocated per connection. Default 4 KiB.
    pub read_buffer_size: usize,
    /// Bytes gathered before a write reaches the socket (a flush always writes). Default 4 KiB.
    pub write_buffer_size: usize,
    /// Most bytes queued for writing when the socket does not take them. Default 256 KiB.
    pub max_write_buffer_size: usize,
    /// Largest incoming WebSocket message. Default 1 MiB (a JT808 frame is at most 2092 escaped
    /// bytes; one message may carry many).
    pub max_message_size: usize,
}

impl Default for WsSettings {
    fn default() -> Self {
        WsSettings {
            read_buffer_size: 4 << 10,
            write_buffer_size: 4 << 10,
            max_write_buffer_size: 256 << 10,
            max_message_size: 1 << 20,
        }
    }
}

impl WsSettings {
    /// The tungstenite settings these make (also what `stress --raw-pair` gives its raw clients).
    pub(crate) fn to_config(self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_size)
            .write_buffer_size(self.write_buffer_size)
            // tungstenite requires room for at least one message beyond the target.
            .max_write_buffer_size(self.max_write_buffer_size.max(self.write_buffer_size + 1))
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size))
    }
}

/// Why opening a connection failed.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// The transport did not open (refused, unreachable, name not found).
    #[error("transport: {0}")]
    Transport(#[source] io::Error),
    /// TLS or the WebSocket handshake failed (e.g. an HTTP 503 instead of 101).
    #[error("handshake: {0}")]
    Handshake(#[source] tungstenite::Error),
    /// Nothing completed within the connect timeout.
    #[error("no connection within {0:?}")]
    Timeout(Duration),
}

impl ConnectError {
    /// The stage, for the event.
    pub fn stage(&self) -> ConnectStage {
        match self {
            ConnectError::Transport(_) => ConnectStage::Transport,
            ConnectError::Handshake(_) => ConnectStage::Handshake,
            ConnectError::Timeout(_) => ConnectStage::Timeout,
        }
    }

    /// The error text for the event. The timeout's text names no duration so paused and live runs
    /// agree.
    pub fn detail(&self) -> String {
        match self {
            ConnectError::Transport(e) => e.to_string(),
            ConnectError::Handshake(e) => e.to_string(),
            ConnectError::Timeout(_) => "connect timeout".to_string(),
        }
    }
}

/// One open WebSocket. A `ws://` connection holds its stream as it is; the TLS state of a `wss://`
/// one (over a kilobyte, inline in tokio-tungstenite's `MaybeTlsStream`) is boxed, so a plain
/// connection, the common case and the one a stress fleet holds by the ten thousand, carries no
/// room for it.
#[expect(
    clippy::large_enum_variant,
    reason = "the plain stream inline on purpose: the whole Connection is boxed once, when open"
)]
pub(crate) enum Connection {
    Plain(WebSocketStream<BoxedStream>),
    Tls(Box<WebSocketStream<MaybeTlsStream<BoxedStream>>>),
}

/// Opens a connection: transport, then TLS when the URL is `wss://`, then the WebSocket handshake,
/// all within `timeout`. Boxed: the client keeps it for as long as it is connected.
pub(crate) async fn open(
    connector: &mut dyn Connector,
    url: &str,
    ws: WsSettings,
    timeout: Duration,
) -> Result<Box<Connection>, ConnectError> {
    let attempt = async {
        let stream = connector.connect().await.map_err(ConnectError::Transport)?;
        let request = url.into_client_request().map_err(ConnectError::Handshake)?;
        let cfg = Some(ws.to_config());
        let conn = if request.uri().scheme_str() == Some("wss") {
            let (ws, _response) = tokio_tungstenite::client_async_tls_with_config(request, stream, cfg, None)
                .await
                .map_err(ConnectError::Handshake)?;
            Connection::Tls(Box::new(ws))
        } else {
            let (ws, _response) = tokio_tungstenite::client_async_with_config(request, stream, cfg)
                .await
                .map_err(ConnectError::Handshake)?;
            Connection::Plain(ws)
        };
        Ok(Box::new(conn))
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Timeout(timeout)),
    }
}

impl Connection {
    /// The next WebSocket message; `None` when the stream ended.
    pub(crate) async fn recv(&mut self) -> Option<Result<WsMessage, tungstenite::Error>> {
        match self {
            Connection::Plain(ws) => ws.next().await,
            Connection::Tls(ws) => ws.next().await,
        }
    }

    /// Queues one message for writing (see [`Connection::flush`]).
    pub(crate) async fn feed(&mut self, msg: WsMessage) -> Result<(), tungstenite::Error> {
        match self {
            Connection::Plain(ws) => ws.feed(msg).await,
            Connection::Tls(ws) => ws.feed(msg).await,
        }
    }

    /// Writes everything queued.
    pub(crate) async fn flush(&mut self) -> Result<(), tungstenite::Error> {
        match self {
            Connection::Plain(ws) => ws.flush().await,
            Connection::Tls(ws) => ws.flush().await,
        }
    }

    /// Sends a close frame (best effort: the peer may be gone).
    pub(crate) async fn close(&mut self) {
        let _ = match self {
            Connection::Plain(ws) => ws.close(None).await,
            Connection::Tls(ws) => ws.close(None).await,
        };
    }
}
