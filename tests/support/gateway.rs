//! The simulated gateway started for a test: in memory (`transport::MemoryNetwork`, for the paused
//! clock) or on loopback TCP port 0, serving until the fixture is dropped, with a WebSocket client
//! end for the in-memory kind.

use std::net::{Ipv4Addr, SocketAddr};

use jt808_harness::gateway::{Feed, Gateway, GatewayConfig};
use jt808_harness::transport::{Listener, MemoryNetwork};
use tokio::io::DuplexStream;
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite;

/// Buffer of each in-memory pipe, as the gateway tests have always used.
const PIPE_CAPACITY: usize = 64 * 1024;

/// A gateway serving in a spawned task. Dropping it stops the gateway (its shutdown channel goes).
pub struct Served {
    pub gateway: Gateway,
    stop: watch::Sender<bool>,
}

impl Served {
    /// Asks the gateway to stop accepting and end its connections.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// A [`Served`] gateway on an in-memory network.
pub struct InMemory {
    pub served: Served,
    pub net: MemoryNetwork,
}

impl InMemory {
    /// The gateway.
    pub fn gateway(&self) -> &Gateway {
        &self.served.gateway
    }

    /// A WebSocket handshake on `path` (`"/"`, `"/a"`); the gateway's refusal is the error.
    pub async fn try_connect(&self, path: &str) -> Result<WebSocketStream<DuplexStream>, tungstenite::Error> {
        let io = self.net.connect().expect("in-memory network is up");
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://gateway{path}"), io).await?;
        Ok(ws)
    }

    /// A WebSocket connection on `path`, which must be accepted.
    pub async fn connect(&self, path: &str) -> WebSocketStream<DuplexStream> {
        self.try_connect(path)
            .await
            .unwrap_or_else(|e| panic!("handshake on {path}: {e}"))
    }
}

/// Starts a gateway (no faults) serving `feeds(session)` on `listener`.
pub fn serve(
    listener: Listener,
    cfg: GatewayConfig,
    feeds: impl Fn(&str) -> Box<dyn Feed> + Send + Sync + 'static,
) -> Served {
    let (stop, shutdown) = watch::channel(false);
    let gateway = Gateway::new(cfg, vec![], feeds, shutdown).expect("gateway starts");
    tokio::spawn({
        let gw = gateway.clone();
        async move { gw.serve(listener).await }
    });
    Served { gateway, stop }
}

/// A gateway on an in-memory network (see [`serve`]).
pub fn in_memory(cfg: GatewayConfig, feeds: impl Fn(&str) -> Box<dyn Feed> + Send + Sync + 'static) -> InMemory {
    let (net, listener) = MemoryNetwork::new(PIPE_CAPACITY);
    InMemory {
        served: serve(listener, cfg, feeds),
        net,
    }
}

/// A gateway on 127.0.0.1 port 0 (see [`serve`]) and its address.
pub async fn on_loopback(
    cfg: GatewayConfig,
    feeds: impl Fn(&str) -> Box<dyn Feed> + Send + Sync + 'static,
) -> (Served, SocketAddr) {
    let listener = Listener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("bound address");
    (serve(listener, cfg, feeds), addr)
}
