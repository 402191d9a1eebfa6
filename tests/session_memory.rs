//! What an idle gateway session costs: heap bytes still held after handshakes on distinct paths
//! whose connections have closed, counted by this test binary's own global allocator (the library
//! installs none). A shared gateway must hold tens of thousands of sessions, so the bound is
//! per session and asserted: the count is deterministic (one thread, paused clock, in-memory pipes).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use jt808_harness::gateway::GatewayConfig;
use jt808_harness::gateway::source::SourceSpec;

#[allow(dead_code)] // each test binary uses a part of the shared fixtures
mod support;

/// Counts the bytes allocated and not yet freed, process-wide.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout as given.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: p came from System.alloc with this layout.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The bound the hardening issue sets for one idle session.
const MAX_BYTES_PER_IDLE_SESSION: isize = 20 * 1024;

/// Opens and closes one connection on each of `n` distinct paths, after `skip` earlier ones.
async fn handshakes(gw: &support::gateway::InMemory, skip: usize, n: usize) {
    for i in skip..skip + n {
        let mut ws = gw.connect(&format!("/s{i}")).await;
        // A session that served something (feed, pipeline and describer state in use).
        let _ = ws.next().await;
        ws.close(None).await.unwrap();
        // Let the gateway's connection task see the close and end.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn an_idle_session_costs_under_20_kib() {
    // What `serve` serves by default: a generated fleet, one per session.
    let feeds = SourceSpec::default().feeds(1).unwrap();
    let fixture = support::gateway::in_memory(GatewayConfig::default(), feeds.into_factory());
    let gw = fixture.gateway();
    // A gateway that has been up a while: a new session's fleet has its backlog due at once.
    tokio::time::sleep(Duration::from_secs(120)).await;
    // Warm up (runtime, tungstenite and map growth), then measure the next sessions.
    handshakes(&fixture, 0, 200).await;
    gw.take_log();
    let before = LIVE.load(Ordering::Relaxed);
    let n = 2000;
    handshakes(&fixture, 200, n).await;
    gw.take_log();
    let per_session = (LIVE.load(Ordering::Relaxed) - before) / n as isize;
    println!("bytes held per idle session: {per_session}");
    assert!(
        per_session < MAX_BYTES_PER_IDLE_SESSION,
        "{per_session} bytes per idle session (bound {MAX_BYTES_PER_IDLE_SESSION})"
    );
}
