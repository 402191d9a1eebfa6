//! Hostile peers against the gateway (`serve`) and the recording proxy (`record`), over real
//! loopback TCP in real time, while one normal client keeps receiving a steady feed.
//!
//! The peers are raw TCP with hand-built HTTP and WebSocket bytes (client frames masked), five
//! kinds: garbage instead of an HTTP request, a connection that sends nothing, a slowloris that
//! trickles header lines and never ends its request, a frame header declaring 2^62 bytes, and
//! endless fragments (continuation frames without FIN). Each peer gives up by itself after its
//! limit plus a grace, so a run always ends. What is asserted, never a timing of the machine:
//!
//! - every hostile connection is closed by the server, and within its limit (the handshake
//!   timeout for the first three kinds, at once for the other two) plus a slack for a loaded
//!   2-core machine; the peers held open by the handshake timeout are closed no earlier than it;
//! - each is logged with why: the gateway's `handshake_failed` (naming the timeout, or the parse
//!   error) or `closed` (`client_gone`, naming the size limit); the recorder's report counts and its
//!   capture's close records (with the reason);
//! - the normal client's frames keep arriving during the attack, in order and none missing;
//! - nothing stays behind: the gateway's live connections go back to the normal client's, and its
//!   sessions back to one once the hostile ones expire.
//!
//! RSS depends on the allocator and the machine, so it is only measured, in the `#[ignore]`d big
//! run (1,000 hostile connections per target), which prints its figures.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use jt808_harness::capture::{CaptureReader, RecordKind, RecordOpts, RecordReport, Recorder, Side};
use jt808_harness::codec::body::{Body, RawBody};
use jt808_harness::codec::{Message, Phone, Version};
use jt808_harness::gateway::{Closed, Feed, FeedItem, GatewayConfig, GatewayEvent, GatewayRecord, ListFeed};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::Instant;

#[allow(dead_code)] // each test binary uses a part of the shared fixtures
mod support;

/// The kinds of hostile peer, in the order they are started (round robin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Random bytes (never a valid request line), then `\r\n\r\n`.
    Garbage,
    /// Connects and sends nothing.
    Silent,
    /// A request line and one header line every 50 ms, never the blank line that ends a request.
    Slowloris,
    /// A complete handshake, then a binary frame header declaring 2^62 payload bytes.
    HugeFrame,
    /// A complete handshake, then a binary frame without FIN and continuation frames without FIN.
    Fragments,
}

const KINDS: [Kind; 5] = [
    Kind::Garbage,
    Kind::Silent,
    Kind::Slowloris,
    Kind::HugeFrame,
    Kind::Fragments,
];

impl Kind {
    /// Ended by the handshake timeout rather than by what the peer sent.
    fn waits_for_timeout(self) -> bool {
        matches!(self, Kind::Silent | Kind::Slowloris)
    }

    /// The request path of peer `index` of this kind: its own session on the gateway (a shared
    /// one would let each connection supersede the one before).
    fn path(self, index: usize) -> String {
        match self {
            Kind::HugeFrame => format!("/huge/{index}"),
            Kind::Fragments => format!("/fragments/{index}"),
            _ => format!("/hostile/{index}"),
        }
    }
}

/// The size of one soak run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Hostile connections of each kind.
    per_kind: usize,
    /// The server's handshake timeout.
    handshake_timeout: Duration,
    /// The server's largest message (and frame).
    max_message: usize,
    /// What a loaded machine may add to a limit before a close counts as late.
    slack: Duration,
    /// How long the normal client is measured before the attack.
    baseline: Duration,
    /// Hostile connections started per millisecond at most (the listen backlog is finite).
    start_per_ms: usize,
}

/// The CI run: 250 hostile connections per target in about two seconds.
const CI: Plan = Plan {
    per_kind: 50,
    handshake_timeout: Duration::from_millis(300),
    max_message: 16 * 1024,
    slack: Duration::from_secs(3),
    baseline: Duration::from_millis(500),
    start_per_ms: 10,
};

/// One message of the normal client's feed every this often.
const FEED_INTERVAL: Duration = Duration::from_millis(5);
/// Longest pause allowed between two of the normal client's messages during the attack: 200
/// feed intervals.
const MAX_GAP: Duration = Duration::from_secs(1);
/// The payload of one fragment.
const FRAGMENT: usize = 1024;

/// Message `n` of the normal client's feed: a 0x0F01 with serial `n` and a body naming `n`.
fn frame(n: u64) -> Vec<u8> {
    Message::new(
        0x0F01,
        Version::V2013,
        Phone::parse("13800000001").expect("phone"),
        n as u16,
        Body::Raw(RawBody {
            raw: n.to_be_bytes().to_vec(),
        }),
    )
    .encode()
}

/// A message every [`FEED_INTERVAL`], for ever.
struct Steady {
    n: u64,
}

impl Feed for Steady {
    fn next_item(&mut self) -> Option<FeedItem> {
        self.n += 1;
        Some(FeedItem {
            due: FEED_INTERVAL * self.n as u32,
            bytes: frame(self.n),
            close: None,
        })
    }

    fn on_client_message(&mut self, _msg: &Message, _now: Duration) -> Vec<FeedItem> {
        Vec::new()
    }
}

/// A gateway on 127.0.0.1:0 whose `/normal` session is [`Steady`] and whose other sessions have
/// nothing to say; hostile sessions expire after 500 ms.
async fn start_gateway(plan: Plan) -> (support::gateway::Served, SocketAddr) {
    let cfg = GatewayConfig {
        handshake_timeout_ms: plan.handshake_timeout.as_millis() as u64,
        max_message_size: plan.max_message,
        max_frame_size: plan.max_message,
        session_idle_ms: 500,
        ..GatewayConfig::default()
    };
    let feeds = |key: &str| -> Box<dyn Feed> {
        if key == "/normal" {
            Box::new(Steady { n: 0 })
        } else {
            Box::new(ListFeed::default())
        }
    };
    support::gateway::on_loopback(cfg, feeds).await
}

/// What the normal client saw: the arrival time of each message, and how many were not the
/// next message of the feed.
#[derive(Default)]
struct Received {
    at: Vec<Instant>,
    out_of_sequence: usize,
}

/// Connects to `url` and records every message until the connection ends.
async fn normal_client(url: String) -> Arc<Mutex<Received>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let got = Arc::new(Mutex::new(Received::default()));
    let out = got.clone();
    tokio::spawn(async move {
        let mut next = 1;
        while let Some(Ok(m)) = ws.next().await {
            if !m.is_binary() {
                continue;
            }
            let mut r = out.lock().unwrap();
            r.at.push(Instant::now());
            if m.into_data().as_ref() != frame(next).as_slice() {
                r.out_of_sequence += 1;
            }
            next += 1;
        }
    });
    got
}

/// How one hostile connection ended.
#[derive(Debug)]
struct Outcome {
    kind: Kind,
    index: usize,
    /// From connect to the server's close (EOF or reset); `None`: still open when the peer gave up.
    closed_after: Option<Duration>,
}

impl Outcome {
    /// Why this outcome breaks the plan's limits, if it does.
    fn problem(&self, plan: &Plan) -> Option<String> {
        let limit = self.limit(plan);
        let what = format!("{:?} #{}", self.kind, self.index);
        match self.closed_after {
            None => Some(format!("{what}: never closed by the server (limit {limit:?})")),
            Some(t) if t > limit => Some(format!("{what}: closed after {t:?}, limit {limit:?}")),
            Some(t) if self.kind.waits_for_timeout() && t + Duration::from_millis(50) < plan.handshake_timeout => {
                Some(format!("{what}: closed after {t:?}, before the handshake timeout"))
            }
            Some(_) => None,
        }
    }

    fn limit(&self, plan: &Plan) -> Duration {
        if self.kind.waits_for_timeout() {
            plan.handshake_timeout + plan.slack
        } else {
            plan.slack
        }
    }
}

/// Open hostile connections now and at most, as the peers see them.
#[derive(Default)]
struct Gauge {
    open: AtomicUsize,
    peak: AtomicUsize,
}

impl Gauge {
    fn opened(&self) {
        let now = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    fn closed(&self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Reads until the server closes (EOF or an error) and returns when; `None` at `deadline`.
async fn wait_closed(rd: &mut (impl AsyncRead + Unpin), deadline: Instant) -> Option<Instant> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(Instant::now()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

/// One client frame: FIN and opcode in `first`, masked with `mask`.
fn client_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut f = vec![first];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            f.push(0x80 | 126);
            f.extend((n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend((n as u64).to_be_bytes());
        }
    }
    f.extend(mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// A complete WebSocket handshake on `path`, by hand: the request, then the answer up to its
/// blank line, which must be a 101.
async fn handshake(s: &mut TcpStream, path: &str, deadline: Instant) -> Result<(), String> {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, s.read(&mut byte)).await {
            Ok(Ok(1)) => answer.push(byte[0]),
            other => return Err(format!("handshake answer cut: {other:?}")),
        }
    }
    if answer.starts_with(b"HTTP/1.1 101") {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&answer).into_owned())
    }
}

/// Writes `chunk()` every `pace` (zero: as fast as the socket takes them) until the server
/// closes or `deadline`; returns when it closed.
async fn push_until_closed(
    s: TcpStream,
    deadline: Instant,
    pace: Duration,
    mut chunk: impl FnMut() -> Vec<u8>,
) -> Option<Instant> {
    let (mut rd, mut wr) = s.into_split();
    let closed = wait_closed(&mut rd, deadline);
    let push = async {
        loop {
            if wr.write_all(&chunk()).await.is_err() {
                return Instant::now();
            }
            if !pace.is_zero() {
                tokio::time::sleep(pace).await;
            }
        }
    };
    tokio::select! {
        c = closed => c,
        at = push => Some(at),
    }
}

/// Runs one hostile peer of `kind` against `addr`.
async fn hostile(addr: SocketAddr, kind: Kind, index: usize, plan: Plan, gauge: Arc<Gauge>) -> Outcome {
    let mut rng = ChaCha8Rng::seed_from_u64(0x50a4 ^ ((index as u64) << 8) ^ kind as u64);
    let mut mask = [0u8; 4];
    rng.fill(&mut mask[..]);
    let start = Instant::now();
    // A peer gives up one second after the server should have closed it.
    let deadline = start + plan.handshake_timeout + plan.slack + Duration::from_secs(1);
    let Ok(mut s) = TcpStream::connect(addr).await else {
        panic!("{kind:?} #{index}: connect failed");
    };
    gauge.opened();
    let closed = match kind {
        Kind::Garbage => {
            // Bytes 0x80..=0xFF are never an HTTP method token: the request line fails to parse.
            let mut junk: Vec<u8> = (0..256).map(|_| rng.random_range(0x80..=0xFFu8)).collect();
            junk.extend(b"\r\n\r\n");
            let _ = s.write_all(&junk).await;
            wait_closed(&mut s, deadline).await
        }
        Kind::Silent => wait_closed(&mut s, deadline).await,
        Kind::Slowloris => {
            let _ = s.write_all(b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n").await;
            // 50 ms a line: far under tungstenite's 124 headers within any timeout used here.
            push_until_closed(s, deadline, Duration::from_millis(50), || b"X-Soak: slow\r\n".to_vec()).await
        }
        Kind::HugeFrame => {
            handshake(&mut s, &kind.path(index), deadline).await.unwrap();
            let mut header = vec![0x82, 0x80 | 127];
            header.extend((1u64 << 62).to_be_bytes());
            header.extend(mask);
            let _ = s.write_all(&header).await;
            wait_closed(&mut s, deadline).await
        }
        Kind::Fragments => {
            handshake(&mut s, &kind.path(index), deadline).await.unwrap();
            let payload = vec![0x7E; FRAGMENT];
            let mut first = true;
            push_until_closed(s, deadline, Duration::ZERO, move || {
                // Opcode 2 (binary) opens the message, opcode 0 continues it; FIN never set.
                let opcode = if first { 0x02 } else { 0x00 };
                first = false;
                client_frame(opcode, &payload, mask)
            })
            .await
        }
    };
    gauge.closed();
    Outcome {
        kind,
        index,
        closed_after: closed.map(|t| t - start),
    }
}

/// Starts `plan.per_kind` peers of every kind against `addr`, round robin, at most
/// `plan.start_per_ms` a millisecond; their outcomes once every one has ended.
async fn attack(addr: SocketAddr, plan: Plan, gauge: Arc<Gauge>) -> Vec<Outcome> {
    let mut peers = JoinSet::new();
    let mut started = 0;
    for index in 0..plan.per_kind {
        for kind in KINDS {
            peers.spawn(hostile(addr, kind, index, plan, gauge.clone()));
            started += 1;
            if started % plan.start_per_ms == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    peers.join_all().await
}

/// The normal client's rate in `[from, to)`, messages per second, and the longest time in it
/// without a message (from the window's edges too: no message at all is a gap of the whole window).
fn rate(r: &Received, from: Instant, to: Instant) -> (f64, Duration) {
    let inside: Vec<Instant> = r.at.iter().copied().filter(|t| *t >= from && *t < to).collect();
    let mut gap = Duration::ZERO;
    let mut last = from;
    for t in inside.iter().copied().chain([to]) {
        gap = gap.max(t - last);
        last = t;
    }
    (inside.len() as f64 / (to - from).as_secs_f64(), gap)
}

/// What a soak run measured.
#[derive(Debug)]
struct Figures {
    hostile: usize,
    peak_held: usize,
    attack: Duration,
    fps_before: f64,
    fps_during: f64,
    longest_gap: Duration,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} hostile connections over {:.2} s, {} held at peak; normal client {:.0} msg/s before, \
             {:.0} msg/s during the attack, longest gap {:?}",
            self.hostile,
            self.attack.as_secs_f64(),
            self.peak_held,
            self.fps_before,
            self.fps_during,
            self.longest_gap
        )
    }
}

/// Runs the attack against `addr` while the normal client (already receiving) is measured:
/// a baseline, then the attack. Asserts every hostile connection was closed within its limit
/// and the normal client kept receiving, in order.
async fn soak(addr: SocketAddr, plan: Plan, normal: &Mutex<Received>) -> Figures {
    let measured = Instant::now();
    tokio::time::sleep(plan.baseline).await;
    let gauge = Arc::new(Gauge::default());
    let start = Instant::now();
    let outcomes = attack(addr, plan, gauge.clone()).await;
    let end = Instant::now();
    let problems: Vec<String> = outcomes.iter().filter_map(|o| o.problem(&plan)).collect();
    assert!(
        problems.is_empty(),
        "{} of {} hostile connections:\n{}",
        problems.len(),
        outcomes.len(),
        problems.join("\n")
    );
    assert_eq!(gauge.open.load(Ordering::SeqCst), 0);
    let r = normal.lock().unwrap();
    let (fps_before, _) = rate(&r, measured, start);
    let (fps_during, longest_gap) = rate(&r, start, end);
    assert_eq!(
        r.out_of_sequence, 0,
        "the normal client's feed came in order, none missing"
    );
    assert!(fps_before > 0.0, "the normal client received before the attack");
    assert!(
        longest_gap < MAX_GAP,
        "the normal client went {longest_gap:?} without a message during the attack"
    );
    Figures {
        hostile: outcomes.len(),
        peak_held: gauge.peak.load(Ordering::SeqCst),
        attack: end - start,
        fps_before,
        fps_during,
        longest_gap,
    }
}

/// Polls `done` every 20 ms for up to 5 s; false if it never held.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    while !done() {
        if Instant::now() > until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// The gateway logged every hostile connection once, with why it ended: counted by cause.
fn gateway_causes(log: &[GatewayRecord], plan: &Plan) -> BTreeMap<String, usize> {
    // tungstenite's words for a message or frame over the limit, naming the configured limit.
    let over_limit = "too long: ";
    let limit = format!(" > {}", plan.max_message);
    let mut by_conn: BTreeMap<u64, Vec<&GatewayEvent>> = BTreeMap::new();
    for r in log.iter().filter(|r| r.conn != 0) {
        by_conn.entry(r.conn).or_default().push(&r.event);
    }
    let mut causes = BTreeMap::new();
    for (conn, events) in by_conn {
        let session = events.iter().find_map(|e| match e {
            GatewayEvent::Accepted { session } => Some(session.as_str()),
            _ => None,
        });
        if session == Some("/normal") {
            continue;
        }
        let ends: Vec<&&GatewayEvent> = events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    GatewayEvent::HandshakeFailed { .. } | GatewayEvent::Closed(_) | GatewayEvent::Refused { .. }
                )
            })
            .collect();
        let cause = match (session, ends.as_slice()) {
            (None, [GatewayEvent::HandshakeFailed { why }]) if why.contains("no handshake within") => {
                "handshake timeout".to_string()
            }
            (None, [GatewayEvent::HandshakeFailed { why }]) if !why.is_empty() => "bad request".to_string(),
            (Some(path), [GatewayEvent::Closed(Closed::ClientGone { why })])
                if why.contains(over_limit) && why.ends_with(&limit) =>
            {
                format!("{} too long", path.rsplit_once('/').map_or(path, |(p, _)| p))
            }
            _ => panic!("conn {conn}: not logged once with its reason: {events:?}"),
        };
        *causes.entry(cause).or_insert(0) += 1;
    }
    causes
}

async fn soak_gateway(plan: Plan) -> Figures {
    let (served, addr) = start_gateway(plan).await;
    let gw = &served.gateway;
    let normal = normal_client(format!("ws://{addr}/normal")).await;
    let figures = soak(addr, plan, &normal).await;
    // Nothing stays: the normal client's is the only connection, its the only session left once
    // the hostile ones (idle 500 ms) expire.
    assert!(
        eventually(|| gw.live_connections().len() == 1 && gw.sessions() == 1).await,
        "live connections {:?}, sessions {}",
        gw.live_connections(),
        gw.sessions()
    );
    let n = plan.per_kind;
    let expected: BTreeMap<String, usize> = [
        ("bad request".to_string(), n),
        ("handshake timeout".to_string(), 2 * n),
        ("/huge too long".to_string(), n),
        ("/fragments too long".to_string(), n),
    ]
    .into();
    let log = gw.log();
    assert_eq!(gateway_causes(&log, &plan), expected);
    let expired = log
        .iter()
        .filter(|r| matches!(&r.event, GatewayEvent::SessionExpired { session, .. } if session != "/normal"))
        .count();
    assert_eq!(expired, 2 * n, "every hostile session expired, logged");
    figures
}

/// The recorder counted every hostile connection by cause, and its capture closes each one that
/// got a connection id with the reason.
fn check_recorder(report: &RecordReport, capture: &std::path::Path, plan: Plan) {
    let n = plan.per_kind as u64;
    assert_eq!(
        (
            report.handshakes_failed,
            report.handshakes_timed_out,
            report.messages_too_large,
            report.connections
        ),
        (n, 2 * n, 2 * n, 2 * n + 1),
        "{report}"
    );
    let reader = CaptureReader::open(capture).unwrap();
    let mut closes: BTreeMap<u64, Vec<Option<String>>> = BTreeMap::new();
    for r in reader {
        let r = r.unwrap();
        if let RecordKind::Close {
            from: Some(Side::Client),
            reason,
            ..
        } = r.kind
        {
            closes.entry(r.conn).or_default().push(reason);
        }
    }
    let limit = format!(" > {}", plan.max_message);
    let too_long = closes
        .values()
        .filter(|c| matches!(c.as_slice(), [Some(why)] if why.contains("too long: ") && why.ends_with(&limit)))
        .count();
    assert_eq!(too_long as u64, 2 * n, "{closes:?}");
}

async fn soak_recorder(plan: Plan) -> Figures {
    let (_gateway, upstream) = start_gateway(plan).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("soak.jsonl");
    let mut opts = RecordOpts::new("127.0.0.1:0".parse().unwrap(), format!("ws://{upstream}"), &out);
    opts.handshake_timeout_ms = plan.handshake_timeout.as_millis() as u64;
    opts.max_message_size = plan.max_message as u64;
    let recorder = Recorder::bind(opts).await.unwrap();
    let addr = recorder.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(recorder.run(async {
        let _ = stopped.await;
    }));
    let normal = normal_client(format!("ws://{addr}/normal")).await;
    let figures = soak(addr, plan, &normal).await;
    let _ = stop.send(());
    let report = run.await.unwrap().unwrap();
    check_recorder(&report, &out, plan);
    figures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_closes_and_logs_every_hostile_connection_and_keeps_serving() {
    let f = soak_gateway(CI).await;
    eprintln!("gateway: {f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recorder_closes_and_counts_every_hostile_connection_and_keeps_relaying() {
    let f = soak_recorder(CI).await;
    eprintln!("recorder: {f}");
}

/// The measurement: 1,000 hostile connections per target, the silent and slowloris ones held for
/// a 2 s handshake timeout, 64 KiB limits (the gateway's defaults).
const BIG: Plan = Plan {
    per_kind: 200,
    handshake_timeout: Duration::from_secs(2),
    max_message: 64 * 1024,
    slack: Duration::from_secs(5),
    baseline: Duration::from_secs(2),
    start_per_ms: 10,
};

/// Prints a big run's figures with the process's memory: RSS before the attack, peak (VmHWM)
/// after. Run one target per process (`--exact`), since VmHWM is the whole process's peak.
async fn measure(target: &str, run: impl std::future::Future<Output = Figures>) {
    let _ = jt808_harness::stress::sys::raise_nofile_limit();
    let before = jt808_harness::stress::sys::memory().unwrap();
    let f = run.await;
    let after = jt808_harness::stress::sys::memory().unwrap();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "{target}: {f}; RSS {:.1} MiB before, peak (VmHWM) {:.1} MiB",
        mib(before.rss_bytes),
        mib(after.hwm_bytes)
    );
}

/// A measurement, not a check of this machine's speed (hence ignored): `cargo test --release
/// --test soak -- --ignored --nocapture --exact big_gateway_soak`.
#[ignore = "measurement: 1,000 hostile connections for several seconds"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_gateway_soak() {
    measure("gateway", soak_gateway(BIG)).await;
}

/// A measurement (hence ignored): `cargo test --release --test soak -- --ignored --nocapture
/// --exact big_recorder_soak`.
#[ignore = "measurement: 1,000 hostile connections for several seconds"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_recorder_soak() {
    measure("recorder", soak_recorder(BIG)).await;
}
