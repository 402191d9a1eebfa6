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
        // Only a bound on a broken run: a drain on a quiet machine takes well under a second, but
        // 200 debug-build clients reconnecting at a load average of 20-30 have needed over 10 s
        // (reported as lost frames: a client still down at the end never received its frames).
        drain_timeout: Duration::from_secs(40),
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

/// `--url` with `--shard 1/2`: the clients run against a gateway this run did not start (frames
/// are counted as they arrive), only the odd half of the fleet, each on its global session path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_against_an_external_gateway_runs_its_half_of_the_fleet_on_their_global_paths() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use jt808_harness::gateway::{Feed, Gateway, GatewayConfig, GatewayEvent, LogLevel};
    use jt808_harness::stress::feed::{NO_STOP, StressFeed};
    use jt808_harness::stress::{GatewayPlacement, Shard};
    use jt808_harness::transport::Listener;

    let interval = Duration::from_millis(200);
    let stop = Arc::new(AtomicU64::new(NO_STOP));
    let (_shutdown, rx) = tokio::sync::watch::channel(false);
    let cfg = GatewayConfig {
        log: LogLevel::Faults,
        ..GatewayConfig::default()
    };
    let gw = Gateway::new(
        cfg,
        Vec::new(),
        move |path| Box::new(StressFeed::new(path, interval, stop.clone())) as Box<dyn Feed>,
        rx,
    )
    .unwrap();
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = gw.clone();
    tokio::spawn(async move { serving.serve(listener).await });

    let o = run(StressOpts {
        gateway: GatewayPlacement::External {
            url: format!("ws://{addr}"),
        },
        shard: Some(Shard { index: 1, count: 2 }),
        duration: Duration::from_millis(1500),
        frame_interval: interval,
        command_interval: Duration::from_millis(500),
        settle: Duration::from_millis(100),
        drain_timeout: Duration::from_secs(5),
        ..StressOpts::new(100)
    })
    .await
    .unwrap();
    let f = &o.run.figures;
    assert!(o.problems.is_empty(), "{:?}\n{f}", o.problems);
    assert_eq!(f.clients, 50, "{f}");
    assert_eq!(f.connections.connected_at_end, 50, "{f}");
    assert!(f.frames.delivered >= 50 * 5, "{f}");
    assert_eq!((f.frames.lost, f.frames.duplicated), (0, 0), "{f}");
    assert!(f.commands.sent >= 50, "{f}");
    assert_eq!(f.commands.unconfirmed, 0, "{f}");

    let mut sessions: Vec<String> = gw
        .log()
        .into_iter()
        .filter_map(|r| match r.event {
            GatewayEvent::Accepted { session } => Some(session),
            _ => None,
        })
        .collect();
    sessions.sort();
    sessions.dedup();
    let mut expected: Vec<String> = (1..100).step_by(2).map(|i| format!("/c/{i}")).collect();
    expected.sort();
    assert_eq!(sessions, expected);
}

/// `stress ARGS` as clap parses it.
fn stress_args(args: &[&str]) -> Result<jt808_harness::cli::stress::StressArgs, String> {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: jt808_harness::cli::stress::StressArgs,
    }
    Cli::try_parse_from(std::iter::once(&"stress").chain(args))
        .map(|c| c.args)
        .map_err(|e| e.to_string())
}

/// Every numeric option of `stress` refuses a value outside its range, naming the option and the
/// range, and takes the bound itself. Parsing only: nothing is run.
#[test]
fn every_numeric_stress_option_is_range_checked() {
    #[rustfmt::skip]
    let table: &[(&str, &str, &str, &str)] = &[
        // (option, a value outside, the range as the error says it, the bound)
        ("--clients", "0", "1..=1000000", "1"),
        ("--clients", "1000001", "1..=1000000", "1000000"),
        ("--duration", "0s", "0s is not in 1ms..=7days", "1ms"),
        ("--duration", "169h", "7days 1h is not in 1ms..=7days", "168h"),
        ("--storm", "every=0.0001s,fraction=0.3", "every=0.0001s: 100us is not in 1ms..=7days", "every=1ms,fraction=0.3"),
        ("--storm", "every=1s,start=200h,fraction=0.3", "start=200h: 8days 8h is not in 1ms..=7days", "every=1s,start=168h,fraction=0.3"),
        ("--storm", "every=1s,fraction=1.5", "outside 0..=1", "every=1s,fraction=1"),
        ("--max-p99", "86400001", "1day 1ms is not in 0s..=1day", "0"),
        ("--max-rss-per-conn", "0", "1..=1073741824", "1073741824"),
        ("--frame-interval", "0", "0s is not in 1ms..=1day", "1"),
        ("--frames", "0", "1..=4294967295", "4294967295"),
        ("--command-interval", "86400001", "not in 0s..=1day", "0"),
        ("--connect-rate", "0", "1..=1000000", "1000000"),
        ("--backoff-min", "86400001", "not in 0s..=1day", "0"),
        ("--backoff-max", "86400001", "not in 0s..=1day", "86400000"),
        ("--ping-interval", "0", "not in 1ms..=1day", "1"),
        ("--idle-timeout", "0", "not in 1ms..=1day", "86400000"),
        ("--drain-timeout", "25h", "1day 1h is not in 0s..=1day", "0s"),
        ("--ws-buffer", "255", "256..=1048576", "256"),
        ("--ws-buffer", "1048577", "256..=1048576", "1048576"),
    ];
    for &(opt, bad, range, bound) in table {
        let e = stress_args(&[opt, bad])
            .err()
            .unwrap_or_else(|| panic!("{opt} {bad} accepted"));
        assert!(e.contains(opt) && e.contains(range), "{opt} {bad}: {e}");
        let a = stress_args(&[opt, bound]).unwrap_or_else(|e| panic!("{opt} {bound}: {e}"));
        a.opts(jt808_harness::client::Jitter::Full)
            .unwrap_or_else(|e| panic!("{opt} {bound}: {e}"));
    }
    let a = stress_args(&["--backoff-min-ms", "2000", "--backoff-max", "1s"]).unwrap();
    let e = a.opts(jt808_harness::client::Jitter::Full).err().unwrap().to_string();
    assert!(e.contains("--backoff-min 2s") && e.contains("--backoff-max 1s"), "{e}");
}
