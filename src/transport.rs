//! The only place that knows TCP from in-memory. Snapshot runs put the client and the gateway in one
//! process over `tokio::io::duplex` pipes with the paused clock; live runs and users use TCP. Both
//! feed tokio-tungstenite's generic `accept_hdr_async` / `client_async`, so no transport trait is
//! needed beyond "an async byte stream".

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Any async byte stream a WebSocket can run over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A boxed stream.
pub type BoxIo = Box<dyn Io>;

/// Where a gateway accepts connections from.
#[derive(Debug)]
pub enum Listener {
    /// Real TCP.
    Tcp(TcpListener),
    /// In-memory pipes handed over by a [`MemoryNetwork`].
    Memory(mpsc::UnboundedReceiver<DuplexStream>),
}

impl Listener {
    /// Binds TCP (port 0 allowed).
    pub async fn bind(addr: SocketAddr) -> io::Result<Listener> {
        Ok(Listener::Tcp(TcpListener::bind(addr).await?))
    }

    /// The bound TCP address (None in memory).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Memory(_) => None,
        }
    }

    /// Waits for the next connection. `None` when an in-memory network was dropped.
    pub async fn accept(&mut self) -> Option<io::Result<BoxIo>> {
        match self {
            Listener::Tcp(l) => Some(l.accept().await.map(|(s, _)| {
                let _ = s.set_nodelay(true);
                Box::new(s) as BoxIo
            })),
            Listener::Memory(rx) => rx.recv().await.map(|s| Ok(Box::new(s) as BoxIo)),
        }
    }
}

/// An in-memory network: `connect()` makes a duplex pipe and hands its far end to the [`Listener`].
#[derive(Debug, Clone)]
pub struct MemoryNetwork {
    tx: mpsc::UnboundedSender<DuplexStream>,
    pipe_capacity: usize,
}

impl MemoryNetwork {
    /// A network and its listener. `pipe_capacity` is the bytes a pipe buffers each way before a
    /// writer waits (like a socket buffer).
    pub fn new(pipe_capacity: usize) -> (MemoryNetwork, Listener) {
        let (tx, rx) = mpsc::unbounded_channel();
        (MemoryNetwork { tx, pipe_capacity }, Listener::Memory(rx))
    }

    /// Opens a connection; fails with `ConnectionRefused` when the listener is gone.
    pub fn connect(&self) -> io::Result<DuplexStream> {
        let (near, far) = tokio::io::duplex(self.pipe_capacity);
        self.tx
            .send(far)
            .map_err(|_| io::Error::new(io::ErrorKind::ConnectionRefused, "in-memory gateway is gone"))?;
        Ok(near)
    }
}

/// Connects TCP with Nagle off (frames are small and latency matters).
pub async fn connect_tcp(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}
