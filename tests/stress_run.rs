//! A small stress run per storm mode, over real loopback TCP in real time: 200 real clients against
//! the real gateway, two storms each dropping 30 % of the connections. Only the invariants are
//! asserted (DESIGN.md: "nothing lost and nothing sent twice", every client back, every command
//! confirmed), never timings: those depend on the machine.

use std::time::Duration;

use jt808_harness::stress::metrics::{Figures, Gate, StormMode};
use jt808_harness::stress::{StormSpec, StressOpts, run};

const CLIENTS: usize = 200;

fn opts(mode: StormMode) -> StressOpts {
    StressOpts {
        duration: Duration::from_millis(3500),
        storms: vec![StormSpec {
            every: Duration::from_millis(1500),
            start: None,
            fraction: 0.3,
            mode,
        }],
        seed: 7,
        frame_interval: Duration::from_millis(200),
        command_interval: Duration::from_millis(500),
        settle: Duration::from_millis(200),
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        // A stalled connection is noticed after a second without anything read.
        ping_interval: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(1),
        drain_timeout: Duration::from_secs(10),
        label: format!("{mode}"),
        ..StressOpts::new(CLIENTS)
    }
}

fn assert_invariants(f: &Figures, problems: &[String]) {
    let text = f.to_string();
    assert!(problems.is_empty(), "{problems:?}\n{text}");
    // Both storms happened and each dropped 30 % of the fleet (so the run was not vacuous) ...
    assert_eq!(f.storms.len(), 2, "{text}");
    for s in &f.storms {
        assert_eq!(s.dropped, CLIENTS * 3 / 10, "{text}");
        // ... and every client it dropped came back.
        assert_eq!(s.back, s.dropped, "{text}");
        assert!(s.all_back_after.is_some(), "{text}");
    }
    assert_eq!(f.connections.connected_at_end as usize, CLIENTS, "{text}");
    assert!(f.reconnect.count >= 2 * CLIENTS * 3 / 10, "{text}");
    // Frames: every one offered arrived, none twice.
    assert!(f.frames.delivered >= CLIENTS as u64 * 10, "{text}");
    assert_eq!(
        (f.frames.lost, f.frames.duplicated, f.frames.beyond_sent),
        (0, 0, 0),
        "{text}"
    );
    // Commands: all confirmed, none confirmed twice.
    assert!(f.commands.sent >= CLIENTS as u64 * 5, "{text}");
    assert_eq!(f.commands.unconfirmed, 0, "{text}");
    assert_eq!(f.commands.confirmed, f.commands.sent, "{text}");
    assert_eq!(f.commands.confirmed_more_than_once, 0, "{text}");
    // And the gate agrees.
    let gate = Gate {
        nothing_lost: true,
        ..Gate::default()
    };
    assert_eq!(gate.check(f), vec![], "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_close_storms_lose_nothing_and_every_client_comes_back() {
    let o = run(opts(StormMode::Close)).await.unwrap();
    assert_invariants(&o.run.figures, &o.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_abort_storms_lose_nothing_and_every_client_comes_back() {
    let o = run(opts(StormMode::Abort)).await.unwrap();
    assert_invariants(&o.run.figures, &o.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stall_storms_lose_nothing_and_every_client_comes_back() {
    let o = run(opts(StormMode::Stall)).await.unwrap();
    let f = &o.run.figures;
    assert_invariants(f, &o.problems);
    // A stalled connection is only noticed by the client's idle timeout: each dropped client
    // disconnected on its own (a close or abort storm is seen by the socket).
    assert!(f.connections.disconnects >= 2 * (CLIENTS as u64 * 3 / 10), "{f}");
}
