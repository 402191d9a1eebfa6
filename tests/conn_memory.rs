//! What one connection costs each side, and what one message costs the gateway -> client path, in
//! heap: counted by this test binary's own global allocator per thread, each side on a thread of
//! its own (a current-thread runtime each, loopback TCP on port 0), beside a plain
//! tokio-tungstenite pair with the same buffers measured the same way in the same run.
//!
//! - idle connections: live heap bytes each side holds per connection once every client is
//!   connected and has had its first frame: the harness's gateway and client within 1.25x of the
//!   raw server and client (issue 16's goal; `stress --raw-pair` measures the same as RSS);
//! - per message: allocations on the gateway's thread while it serves a burst (every message due
//!   at once, one flush per burst) and on the client's while it decodes it and its events are
//!   taken, each bounded.
//!
//! Counts are exact and repeatable, not timings: the same code path allocates the same.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jt808_harness::client::{Client, ClientConfig, EventKind, Events, OutboxConfig, WsSettings};
use jt808_harness::codec::Message;
use jt808_harness::gateway::stress_feed::{FeedSettings, NO_STOP, StressFeed, location_frame, phone_of, session_path};
use jt808_harness::gateway::{Feed, FeedItem, Gateway, GatewayConfig, LogLevel};
use jt808_harness::transport::Listener;
use tokio::net::{TcpListener, TcpStream};

/// The one-thread-per-side runner shared with benches/throughput.rs.
#[path = "support/threads.rs"]
mod threads;
use threads::on_thread;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Counts, per thread, the bytes allocated and not yet freed and the allocations made.
struct Counting;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn count(bytes: i64, allocs: u64) {
    // `try_with`: a thread being torn down has no counters left; its frees are not counted.
    let _ = LIVE.try_with(|l| l.set(l.get() + bytes));
    let _ = ALLOCS.try_with(|a| a.set(a.get() + allocs));
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(l.size() as i64, 1);
        // SAFETY: same layout as given.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(-(l.size() as i64), 0);
        // SAFETY: p came from System.alloc with this layout.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        count(new as i64 - l.size() as i64, 1);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// This thread's (live bytes, allocations made) so far.
fn counters() -> (i64, u64) {
    (LIVE.with(Cell::get), ALLOCS.with(Cell::get))
}

/// The WebSocket read buffer both sides use (stress's `--ws-buffer` default).
const WS_BUFFER: usize = 4096;

/// The client settings of a stress client (`StressOpts::client_config`): 4 KiB buffers.
fn client_config() -> ClientConfig {
    ClientConfig {
        ping_interval: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(6),
        outbox: OutboxConfig {
            capacity: 256,
            ..OutboxConfig::default()
        },
        ws: WsSettings {
            read_buffer_size: WS_BUFFER,
            write_buffer_size: WS_BUFFER,
            max_message_size: 64 << 10,
            ..WsSettings::default()
        },
        event_capacity: 256,
        ..ClientConfig::default()
    }
}

/// The gateway settings of a stress gateway (`start_local_gateway`).
fn gateway_config() -> GatewayConfig {
    GatewayConfig {
        read_buffer: WS_BUFFER,
        log: LogLevel::Off,
        ..GatewayConfig::default()
    }
}

/// The raw client's and raw server's tungstenite settings: the harness's buffers.
fn raw_config(write: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(WS_BUFFER)
        .write_buffer_size(write)
        .max_write_buffer_size(256 << 10)
}

/// A server side, run on its thread: the harness gateway or a raw tokio-tungstenite server.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Side {
    Harness,
    Raw,
}

/// Starts side `side` as a server on its own thread. It sends its address, then the heap it holds
/// per connection once `n` connections are up and the test says "measure" (on `go`), then stops.
fn server(side: Side, n: usize, go: mpsc::Receiver<()>) -> (SocketAddr, std::thread::JoinHandle<i64>) {
    let (addr_tx, addr_rx) = mpsc::channel();
    let h = on_thread(move || {
        Box::pin(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            addr_tx.send(listener.local_addr().expect("addr")).expect("addr");
            let (shutdown, rx) = watch::channel(false);
            // From here on: what the connections cost (the gateway's own state is made first).
            let base;
            match side {
                Side::Harness => {
                    let stop = Arc::new(AtomicU64::new(NO_STOP));
                    let feed = StressFeed::factory(FeedSettings::default(), stop);
                    let gw = Gateway::new(gateway_config(), Vec::new(), feed, rx).expect("gateway");
                    base = counters().0;
                    tokio::spawn(async move { gw.serve(Listener::Tcp(listener)).await });
                }
                Side::Raw => {
                    base = counters().0;
                    tokio::spawn(raw_server(listener));
                }
            }
            wait_for(&go).await;
            let held = counters().0 - base;
            let _ = shutdown.send(true);
            held / n as i64
        })
    });
    (addr_rx.recv().expect("server address"), h)
}

/// A plain tokio-tungstenite server: each connection gets one small message, then is read until it
/// ends (pongs answered by tungstenite).
async fn raw_server(listener: TcpListener) {
    loop {
        let Ok((s, _)) = listener.accept().await else { return };
        let _ = s.set_nodelay(true);
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(s, Some(raw_config(0))).await else {
                return;
            };
            if ws.send(WsMessage::Binary(stress_like_frame().into())).await.is_err() {
                return;
            }
            while let Some(Ok(_)) = ws.next().await {}
        });
    }
}

/// A frame as the stress feed sends it (its frame 7 to client 1).
fn stress_like_frame() -> Vec<u8> {
    location_frame(phone_of(1), 7)
}

/// Once every connection is up: lets the fleet settle, reads the heap it holds above `base`, says
/// so on `done` and keeps the connections until `go`.
async fn settled_heap(base: i64, done: &mpsc::Sender<()>, go: &mpsc::Receiver<()>) -> i64 {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let held = counters().0 - base;
    done.send(()).expect("done");
    wait_for(go).await;
    held
}

/// Waits, without blocking the runtime, for the test's signal.
async fn wait_for(go: &mpsc::Receiver<()>) {
    while go.try_recv().is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `n` clients of kind `side` against `addr`, on their own thread; each must be connected and have
/// had one message. Returns the heap they hold (the test's own lists of them left out); tells
/// `done` when all are up.
fn clients(
    side: Side,
    n: usize,
    addr: SocketAddr,
    done: mpsc::Sender<()>,
    go: mpsc::Receiver<()>,
) -> std::thread::JoinHandle<i64> {
    on_thread(move || {
        Box::pin(async move {
            match side {
                Side::Harness => harness_clients(n, addr, &done, &go).await,
                Side::Raw => raw_clients(n, addr, &done, &go).await,
            }
        })
    })
}

async fn harness_clients(n: usize, addr: SocketAddr, done: &mpsc::Sender<()>, go: &mpsc::Receiver<()>) -> i64 {
    let mut fleet: Vec<(Client, Events)> = Vec::with_capacity(n);
    let mut ready = vec![(false, false); n];
    let base = counters().0;
    for id in 0..n {
        let url = format!("ws://{addr}{}", session_path(id));
        fleet.push(Client::connect(&url, client_config()).expect("client"));
    }
    while ready.iter().any(|r| *r != (true, true)) {
        for (i, (_, events)) in fleet.iter_mut().enumerate() {
            while let Some(e) = events.try_recv() {
                match e.kind {
                    EventKind::Connected { .. } => ready[i].0 = true,
                    EventKind::Message(_) => ready[i].1 = true,
                    _ => {}
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    settled_heap(base, done, go).await
}

async fn raw_clients(n: usize, addr: SocketAddr, done: &mpsc::Sender<()>, go: &mpsc::Receiver<()>) -> i64 {
    let got = Arc::new(Mutex::new(0usize));
    let base = counters().0;
    for id in 0..n {
        let got = got.clone();
        tokio::spawn(async move {
            let s = TcpStream::connect(addr).await.expect("connect");
            s.set_nodelay(true).expect("nodelay");
            let url = format!("ws://{addr}{}", session_path(id));
            let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, s, Some(raw_config(WS_BUFFER)))
                .await
                .expect("handshake");
            let mut first = true;
            while let Some(Ok(_)) = ws.next().await {
                if first {
                    *got.lock().expect("lock") += 1;
                    first = false;
                }
            }
        });
    }
    while *got.lock().expect("lock") < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    settled_heap(base, done, go).await
}

/// Heap per idle connection, (client, server), for `n` connections of a client and server kind.
fn idle_heap(client: Side, gateway: Side, n: usize) -> (i64, i64) {
    let (server_go, server_wait) = mpsc::channel();
    let (client_go, client_wait) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let (addr, server) = server(gateway, n, server_wait);
    let clients = clients(client, n, addr, done_tx, client_wait);
    done_rx.recv().expect("clients up");
    server_go.send(()).expect("measure");
    let per_server = server.join().expect("server thread");
    client_go.send(()).expect("stop");
    let per_client = clients.join().expect("client thread") / n as i64;
    (per_client, per_server)
}

#[test]
fn idle_connections_cost_each_side_within_a_quarter_of_a_raw_pair() {
    let n = 300;
    let (raw_client, raw_server) = idle_heap(Side::Raw, Side::Raw, n);
    let (client, gateway) = idle_heap(Side::Harness, Side::Harness, n);
    println!(
        "heap per idle connection ({n}): client {client} B (raw {raw_client} B, {:.2}x), gateway {gateway} B \
         (raw {raw_server} B, {:.2}x)",
        client as f64 / raw_client as f64,
        gateway as f64 / raw_server as f64
    );
    assert!(
        raw_client > WS_BUFFER as i64 && raw_server > WS_BUFFER as i64,
        "the raw pair holds its read buffers"
    );
    assert!(
        client * 4 <= raw_client * 5,
        "client {client} B vs raw {raw_client} B per connection"
    );
    assert!(
        gateway * 4 <= raw_server * 5,
        "gateway {gateway} B vs raw {raw_server} B per connection"
    );
}

/// A feed serving prebuilt items, so that building them is not counted as the gateway's work.
struct Prebuilt(std::vec::IntoIter<FeedItem>);

impl Feed for Prebuilt {
    fn next_item(&mut self) -> Option<FeedItem> {
        self.0.next()
    }
    fn on_client_message(&mut self, _msg: &Message, _now: Duration) -> Vec<FeedItem> {
        Vec::new()
    }
}

/// `m` one-frame 0x0200 messages, all due at once (a capture at speed 0).
fn burst(m: usize) -> Vec<FeedItem> {
    (0..m)
        .map(|_| {
            let mut bytes = stress_like_frame();
            bytes.shrink_to_fit();
            FeedItem {
                due: Duration::ZERO,
                bytes,
                close: None,
            }
        })
        .collect()
}

#[test]
fn the_gateway_path_allocates_at_most_one_buffer_per_message() {
    let m = 20_000;
    for prefix_len in [0, 18] {
        let items = Arc::new(Mutex::new(Some(burst(m))));
        let (addr_tx, addr_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let gateway = on_thread(move || {
            Box::pin(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                addr_tx.send(listener.local_addr().expect("addr")).expect("addr");
                let (_shutdown, rx) = watch::channel(false);
                let feed = move |_: &str| {
                    let items = items.lock().expect("lock").take().unwrap_or_default();
                    Box::new(Prebuilt(items.into_iter())) as Box<dyn Feed>
                };
                let cfg = GatewayConfig {
                    prefix_len,
                    ..gateway_config()
                };
                let gw = Gateway::new(cfg, Vec::new(), feed, rx).expect("gateway");
                let before = counters().1;
                tokio::spawn(async move { gw.serve(Listener::Tcp(listener)).await });
                wait_for(&go_rx).await;
                counters().1 - before
            })
        });
        let addr = addr_rx.recv().expect("addr");
        let receiver = on_thread(move || Box::pin(raw_receive(addr, m)));
        receiver.join().expect("receiver");
        go_tx.send(()).expect("stop");
        let allocs = gateway.join().expect("gateway thread");
        let per = allocs as f64 / m as f64;
        println!("gateway, prefix {prefix_len}: {allocs} allocations for {m} messages, {per:.3} per message");
        // The envelope needs the message's own buffer; without one the feed's bytes are sent as
        // they are. What is left is the connection's setup and the scheduling map's nodes.
        let bound = if prefix_len == 0 { 0.25 } else { 1.25 };
        assert!(per <= bound, "{per:.3} allocations per message, bound {bound}");
    }
}

/// A raw tokio-tungstenite client that reads `m` messages.
async fn raw_receive(addr: SocketAddr, m: usize) {
    let s = TcpStream::connect(addr).await.expect("connect");
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(format!("ws://{addr}/"), s, Some(raw_config(0)))
        .await
        .expect("handshake");
    let mut got = 0;
    while got < m {
        match ws.next().await {
            Some(Ok(WsMessage::Binary(_))) => got += 1,
            Some(Ok(_)) => {}
            other => panic!("after {got} messages: {other:?}"),
        }
    }
}

#[test]
fn the_client_receive_path_allocates_one_event_per_message() {
    let m = 20_000;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    let sender = on_thread(move || {
        Box::pin(async move {
            let listener = TcpListener::from_std(listener).expect("listener");
            let (s, _) = listener.accept().await.expect("accept");
            let mut ws = tokio_tungstenite::accept_async(s).await.expect("handshake");
            let frame = stress_like_frame();
            for _ in 0..m {
                ws.feed(WsMessage::Binary(frame.clone().into())).await.expect("feed");
            }
            ws.flush().await.expect("flush");
            while let Some(Ok(_)) = ws.next().await {}
        })
    });
    let client = on_thread(move || {
        Box::pin(async move {
            let (client, mut events) = Client::connect(&format!("ws://{addr}/"), client_config()).expect("client");
            let mut before = None;
            let mut got = 0;
            while got < m {
                match events.recv().await.expect("event").kind {
                    EventKind::Connected { .. } => before = Some(counters().1),
                    EventKind::Message(_) => got += 1,
                    _ => {}
                }
            }
            let allocs = counters().1 - before.expect("connected first");
            let _ = client.shutdown().await;
            allocs
        })
    });
    let allocs = client.join().expect("client thread");
    sender.join().expect("sender thread");
    let per = allocs as f64 / m as f64;
    println!("client: {allocs} allocations for {m} messages, {per:.3} per message");
    // One: the boxed message of its event. The rest is the event queue's room (given back each
    // time the consumer catches up) and the read buffer growing back after the payloads it lent.
    assert!(per <= 1.25, "{per:.3} allocations per message");
}
