//! Real loopback TCP in front of a gateway whose clock starts at the client's first connection.
//!
//! The gateway times its feed from its own start. The built-in client connects at that very
//! instant; an external process needs a moment to start (Node a few hundred ms, a browser a
//! second or more, different each run), which would shift the feed against the scenario's
//! commands and make no two runs alike. So the harness listens on TCP itself, creates the gateway
//! when the first connection arrives, and pipes every TCP connection into it over an in-memory
//! duplex (the gateway code is the same as over TCP: it is generic over the byte stream). A
//! gateway that drops a connection without a close frame (an `abort`) ends the TCP stream; the
//! client sees a connection closed without a close frame, as it would.

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use crate::gateway::Gateway;
use crate::transport::MemoryNetwork;

/// Bytes each in-memory pipe buffers each way, like a socket buffer.
pub const PIPE_CAPACITY: usize = 64 * 1024;

/// Accepts on `tcp` until `stop`; `make` builds and starts the gateway at the first connection,
/// which is announced on `started` with its start instant.
pub async fn serve(
    tcp: TcpListener,
    make: impl FnOnce() -> (Gateway, MemoryNetwork) + Send + 'static,
    started: oneshot::Sender<(Gateway, Instant)>,
    mut stop: watch::Receiver<bool>,
) {
    let mut make = Some(make);
    let mut started = Some(started);
    let mut net: Option<MemoryNetwork> = None;
    loop {
        let sock = tokio::select! {
            r = tcp.accept() => r,
            _ = stop.changed() => return,
        };
        let Ok((sock, _)) = sock else { continue };
        let _ = sock.set_nodelay(true);
        if net.is_none()
            && let Some(make) = make.take()
        {
            let (gw, n) = make();
            if let Some(tx) = started.take() {
                let _ = tx.send((gw, Instant::now()));
            }
            net = Some(n);
        }
        let Some(Ok(mem)) = net.as_ref().map(MemoryNetwork::connect) else {
            return;
        };
        tokio::spawn(pipe(sock, mem));
    }
}

async fn pipe(mut tcp: TcpStream, mut mem: tokio::io::DuplexStream) {
    // Either side ending ends the other's direction; errors (a reset) end both.
    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut mem).await;
}
