//! A sharded fleet against one shared gateway (`serve --feed stress`), merged into one report
//! (`stress merge`): the totals are exactly those of one unsharded run of the same fleet and seed,
//! the percentiles those of the shards' histograms added. And a stress client pointed at a
//! gateway that serves something else says so plainly. Real loopback TCP in real time, small
//! fleets; only counts are compared, never timings.

use std::io::Write;
use std::time::Duration;

use clap::Parser;
use jt808_harness::cli::serve::{ServeArgs, serve};
use jt808_harness::cli::stress::StressArgs;
use jt808_harness::stress::figures::Latency;
use jt808_harness::stress::merge::{self, ShardOutput};
use jt808_harness::stress::metrics::{Figures, Gate, Metrics, StormMode, histogram_of};
use jt808_harness::stress::output::outcomes_json;
use jt808_harness::stress::{GatewayPlacement, Outcome, Shard, StressError, StressOpts, run};
use tokio::sync::{mpsc, oneshot};

const CLIENTS: usize = 60;
const FRAMES: u64 = 10;

#[derive(Parser)]
struct Serve {
    #[command(flatten)]
    args: ServeArgs,
}

#[derive(Parser)]
struct Stress {
    #[command(flatten)]
    args: StressArgs,
}

/// `serve`'s stdout: the first line (`listening on ws://...`) goes to the test.
struct FirstLine(Option<mpsc::UnboundedSender<String>>, Vec<u8>);

impl Write for FirstLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.1.extend_from_slice(buf);
        if let Some(i) = self.1.iter().position(|&b| b == b'\n')
            && let Some(tx) = self.0.take()
        {
            let _ = tx.send(String::from_utf8_lossy(&self.1[..i]).into_owned());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `jt808-harness serve ARGS` in this process until the returned sender fires; its URL.
async fn start_serve(argv: &[&str]) -> (String, oneshot::Sender<()>) {
    let args = Serve::try_parse_from(std::iter::once("serve").chain(argv.iter().copied()))
        .unwrap()
        .args;
    let (line_tx, mut line_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut out = FirstLine(Some(line_tx), Vec::new());
        serve(args, &mut out, async {
            let _ = stop_rx.await;
        })
        .await
        .unwrap();
    });
    let line = line_rx.recv().await.unwrap();
    let url = line.strip_prefix("listening on ").unwrap().to_string();
    (url, stop_tx)
}

fn shared_gateway_serve_args() -> Vec<&'static str> {
    vec![
        "--feed",
        "stress",
        "--clients",
        "60",
        "--frame-interval-ms",
        "20",
        "--frames",
        "10",
        "--quiet",
    ]
}

fn opts(url: &str, shard: Option<Shard>) -> StressOpts {
    StressOpts {
        gateway: GatewayPlacement::External { url: url.to_string() },
        shard,
        seed: 3,
        duration: Duration::from_millis(1000),
        frame_interval: Duration::from_millis(20),
        frames: Some(FRAMES),
        command_interval: Duration::from_millis(500),
        settle: Duration::from_millis(100),
        drain_timeout: Duration::from_secs(10),
        ..StressOpts::new(CLIENTS)
    }
}

/// The counts one run and a merge of shards must agree on.
fn totals(f: &Figures) -> Vec<(&'static str, u64)> {
    vec![
        ("clients", f.clients as u64),
        ("frames delivered", f.frames.delivered),
        ("frames lost", f.frames.lost),
        ("frames duplicated", f.frames.duplicated),
        ("frames beyond sent", f.frames.beyond_sent),
        ("commands sent", f.commands.sent),
        ("commands confirmed", f.commands.confirmed),
        ("commands unconfirmed", f.commands.unconfirmed),
        ("commands confirmed twice", f.commands.confirmed_more_than_once),
        ("confirm latencies", f.commands.confirm_latency.count as u64),
        ("connects", f.connections.connects),
        ("disconnects", f.connections.disconnects),
        ("connected at end", u64::from(f.connections.connected_at_end)),
        ("reconnects", f.reconnect.count as u64),
        ("attempts", f.attempts.total),
    ]
}

/// Writes each outcome as a shard output file and reads them back, as `stress merge` would.
fn through_files(outcomes: &[Outcome]) -> Vec<ShardOutput> {
    let dir = tempfile::tempdir().unwrap();
    outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let path = dir.path().join(format!("shard{i}.json"));
            std::fs::write(&path, outcomes_json(std::slice::from_ref(o)).unwrap()).unwrap();
            merge::read_shard(&path).unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_merged_report_the_totals_of_one_unsharded_run() {
    let (shared_url, stop_shared) = start_serve(&shared_gateway_serve_args()).await;
    let mut shards = Vec::new();
    for index in 0..2 {
        let o = run(opts(&shared_url, Some(Shard { index, count: 2 }))).await.unwrap();
        assert!(o.problems.is_empty(), "{:?}", o.problems);
        shards.push(o);
    }
    let _ = stop_shared.send(());
    // The same fleet and seed, unsharded, against a fresh gateway (a session's feed is consumed).
    let (url, stop) = start_serve(&shared_gateway_serve_args()).await;
    let whole = run(opts(&url, None)).await.unwrap();
    let _ = stop.send(());

    let merged = merge::merge(&through_files(&shards)).unwrap();
    assert_eq!(merged.len(), 1);
    let fleet = &merged[0].merged;
    let (m, w) = (&fleet.run.figures, &whole.run.figures);
    assert_eq!(totals(m), totals(w), "merged\n{m}\nunsharded\n{w}");
    // Not vacuous: every frame of every client, and commands confirmed.
    assert_eq!(m.frames.delivered, CLIENTS as u64 * FRAMES, "{m}");
    assert!(m.commands.confirmed >= CLIENTS as u64, "{m}");
    assert_eq!(m.clients, CLIENTS);

    // Percentiles: those of the shards' histograms added, max the exact largest.
    let mut added = histogram_of(&[]);
    for s in &shards {
        added.add(&s.run.histograms.confirm_us.0).unwrap();
    }
    let max = shards
        .iter()
        .filter_map(|s| s.run.figures.commands.confirm_latency.max)
        .max();
    assert_eq!(m.commands.confirm_latency, Latency::of_histogram(&added, max));
    assert_eq!(added.len(), m.commands.confirm_latency.count as u64);
    assert!(m.commands.confirm_latency.p99.is_some());
    // The same gate as a run: it passes, and the merged histogram is the sum.
    assert!(
        Gate {
            nothing_lost: true,
            ..Gate::default()
        }
        .check(m)
        .is_empty()
    );
    assert_eq!(fleet.run.histograms.confirm_us.0, added);
    assert_eq!(merged[0].shards.len(), 2);
}

/// The reconnect times of 100 clients through a storm, collected once whole and once as two halves
/// of the fleet: the merge of the halves has the whole's totals and the percentiles of the whole's
/// histogram (the sum of the halves' histograms is exactly the histogram of all samples).
#[test]
fn merged_percentiles_are_those_of_the_histogram_of_all_samples() {
    fn observe(m: &mut Metrics, local: usize, global: usize) {
        let ms = |v: u64| Duration::from_millis(v);
        m.connected(local, ms(global as u64));
        m.disconnected(local, ms(10_000));
        m.connected(local, ms(10_000) + Duration::from_micros(1_000 + 7_919 * global as u64));
        m.command_sent(local, 1, ms(2_000));
        m.command_confirmed(local, 1, ms(2_000) + Duration::from_micros(500 + 313 * global as u64));
        m.frames_sent(local, 3);
        for seq in 0..3 {
            m.frame_delivered(local, seq);
        }
    }
    let mut whole = Metrics::new(100);
    let mut halves = [Metrics::new(50), Metrics::new(50)];
    for g in 0..100 {
        observe(&mut whole, g, g);
        observe(&mut halves[g % 2], g / 2, g);
    }
    let end = Duration::from_secs(20);
    let whole = whole.run("x", end);
    let outcomes: Vec<Outcome> = halves
        .iter()
        .map(|m| Outcome {
            run: m.run("x", end),
            problems: Vec::new(),
            nofile: None,
            sides: None,
        })
        .collect();
    let merged = merge::merge(&through_files(&outcomes)).unwrap();
    let m = &merged[0].merged.run;
    assert_eq!(totals(&m.figures), totals(&whole.figures));
    for (got, all, exact) in [
        (
            m.figures.reconnect,
            &whole.histograms.reconnect_us.0,
            whole.figures.reconnect,
        ),
        (
            m.figures.commands.confirm_latency,
            &whole.histograms.confirm_us.0,
            whole.figures.commands.confirm_latency,
        ),
    ] {
        assert_eq!(got, Latency::of_histogram(all, exact.max));
        // Within the histogram's 0.1 % of the exact nearest-rank figures, never below them.
        for (g, e) in [(got.p50, exact.p50), (got.p99, exact.p99)] {
            let (g, e) = (g.unwrap().as_micros() as f64, e.unwrap().as_micros() as f64);
            assert!(g >= e && (g - e) / e <= 0.001, "{g} vs {e}");
        }
    }
    assert_eq!(m.histograms, whole.histograms);
    assert_eq!(m.series.reconnect_us, whole.series.reconnect_us);
}

#[test]
fn shards_of_different_runs_or_storms_are_refused_naming_the_file() {
    let a = Metrics::new(1).run("jitter none", Duration::from_secs(1));
    let b = Metrics::new(1).run("jitter full", Duration::from_secs(1));
    let mut c = Metrics::new(1);
    c.storm(Duration::from_secs(1), StormMode::Close, 0.5, [0]);
    let c = c.run("jitter none", Duration::from_secs(2));
    let outcome = |run| Outcome {
        run,
        problems: vec![],
        nofile: None,
        sides: None,
    };
    for other in [b, c] {
        let files = through_files(&[outcome(a.clone()), outcome(other)]);
        let e = merge::merge(&files).unwrap_err().to_string();
        assert!(e.starts_with(&files[1].path.display().to_string()), "{e}");
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("outcome.json");
    std::fs::write(&bad, "{\"run\": 1}\n").unwrap();
    let e = merge::read_shard(dir.path()).unwrap_err().to_string();
    assert!(e.contains("outcome.json") && e.contains("line 1"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stress_client_against_another_feed_says_so_plainly() {
    // `serve` with no source flags: the default generated fleet, not the stress feed.
    let (url, stop) = start_serve(&["--quiet"]).await;
    let got = run(StressOpts {
        duration: Duration::from_secs(5),
        connect_wait: Duration::from_secs(10),
        ..opts(&url, None)
    })
    .await;
    let e = match got {
        Ok(o) => panic!("ran as if it were the stress feed:\n{}", o.run.figures),
        Err(e) => e,
    };
    let _ = stop.send(());
    assert!(matches!(e, StressError::NotStressFeed { .. }), "{e}");
    let text = e.to_string();
    let want = format!("the gateway at {url} does not serve the stress feed (first frame: 0x");
    assert!(text.starts_with(&want), "{text}");
    assert!(!text.contains("lost"), "{text}");
}

#[test]
fn the_shard_index_comes_from_the_job_index_with_shards() {
    let parse = |argv: &[&str]| {
        Stress::try_parse_from(std::iter::once("stress").chain(argv.iter().copied()))
            .unwrap()
            .args
    };
    let a = parse(&["--clients", "8", "--shards", "4"]);
    assert_eq!(a.shard_from(Some("3")).unwrap(), Some(Shard { index: 3, count: 4 }));
    for (value, why) in [
        (Some("three"), "not a number"),
        (Some("4"), "not in 0..4"),
        (None, "not set"),
    ] {
        let e = a.shard_from(value).unwrap_err().to_string();
        assert!(e.contains("JOB_COMPLETION_INDEX") && e.contains(why), "{e}");
    }
    // --shard wins; without --shards the variable is not read.
    let b = parse(&["--shard", "1/2"]);
    assert_eq!(b.shard_from(Some("x")).unwrap(), Some(Shard { index: 1, count: 2 }));
    assert_eq!(parse(&[]).shard_from(Some("x")).unwrap(), None);
    assert!(Stress::try_parse_from(["stress", "--shard", "1/2", "--shards", "2"]).is_err());
    // `stress merge` takes directories or files and the same gate options.
    let m = parse(&["merge", "a", "b/outcome.json", "--max-p99", "100", "--report", "out"]);
    let Some(jt808_harness::cli::stress::StressCommand::Merge(m)) = m.command else {
        panic!("no merge subcommand")
    };
    assert_eq!(m.paths.len(), 2);
    assert_eq!(m.verdict.gate().max_p99, Some(Duration::from_millis(100)));
}

#[test]
fn serve_feed_stress_options_need_the_feed_and_exclude_other_sources() {
    let parse = |argv: &[&str]| Serve::try_parse_from(std::iter::once("serve").chain(argv.iter().copied()));
    assert!(parse(&["--feed", "stress", "--frames", "5", "--clients", "10"]).is_ok());
    for bad in [
        &["--frames", "5"][..],
        &["--frame-interval", "5"],
        &["--feed", "stress", "--capture", "c.jsonl"],
        &["--feed", "stress", "--terminals", "3"],
        &["--feed", "stress", "--frames", "0"],
        &["--feed", "fleet"],
    ] {
        let e = parse(bad)
            .err()
            .unwrap_or_else(|| panic!("{bad:?} accepted"))
            .to_string();
        assert!(e.contains(bad[0]) || e.contains(bad[bad.len() - 2]), "{bad:?}: {e}");
    }
}
