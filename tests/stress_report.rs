//! The stress run's pure parts: figures from synthetic event sequences (exact values), the CI gate,
//! the HTML report's shape, and the Linux helpers on this machine.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use jt808_harness::stress::metrics::{Gate, Metrics, RunFigures, StormMode, Violation};
use jt808_harness::stress::report::{FIGURES_FILE, render_html, write_report};
use jt808_harness::stress::sys::{self, MAX_CONNECTIONS_PER_SOURCE, ResourceSample};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// 100 clients connect one every 20 ms (5 attempts per 100 ms, 50 per second). At 10 s an abort storm
/// drops clients 0..50: each first retries in one burst at 10.005 s (all refused), then client i is
/// back at 10 s + (i+1) × 10 ms, so its outage is (i+1) × 10 ms. At 20 s a stall storm drops clients
/// 60..70: they notice at 23 s and are back at 23.5 s, an outage of 3.5 s counted from the storm.
fn two_storms() -> Metrics {
    let mut m = Metrics::new(100);
    for c in 0..100 {
        m.attempt(ms(20 * c as u64));
        m.connected(c, ms(20 * c as u64));
    }
    m.storm(ms(10_000), StormMode::Abort, 0.5, 0..50);
    for c in 0..50 {
        m.disconnected(c, ms(10_001));
        m.attempt(ms(10_005));
    }
    for c in 0..50 {
        let back = ms(10_000 + 10 * (c as u64 + 1));
        m.attempt(back);
        m.connected(c, back);
    }
    m.storm(ms(20_000), StormMode::Stall, 0.1, 60..70);
    for c in 60..70 {
        m.disconnected(c, ms(23_000));
        m.attempt(ms(23_500));
        m.connected(c, ms(23_500));
    }
    m
}

#[test]
fn reconnect_times_are_exact_nearest_rank_statistics() {
    let f = two_storms().figures(ms(30_000));
    // 60 outages: 10, 20, ..., 500 ms and ten of 3.5 s. p50 is rank 30 (300 ms); p99 is rank
    // ceil(59.4) = 60 (3.5 s): the stalled clients count from the storm, not from when they noticed.
    assert_eq!(f.reconnect.count, 60);
    assert_eq!(f.reconnect.p50, Some(ms(300)));
    assert_eq!(f.reconnect.p99, Some(ms(3_500)));
    assert_eq!(f.reconnect.max, Some(ms(3_500)));
}

#[test]
fn time_until_all_back_is_per_storm() {
    let f = two_storms().figures(ms(30_000));
    assert_eq!(f.storms.len(), 2);
    let (a, b) = (&f.storms[0], &f.storms[1]);
    assert_eq!(
        (a.mode, a.dropped, a.back, a.all_back_after),
        (StormMode::Abort, 50, 50, Some(ms(500)))
    );
    assert_eq!(
        (b.mode, b.dropped, b.back, b.all_back_after),
        (StormMode::Stall, 10, 10, Some(ms(3_500)))
    );
}

#[test]
fn a_client_that_never_returns_leaves_its_storm_open() {
    let mut m = two_storms();
    m.storm(ms(25_000), StormMode::Close, 0.02, [80, 81]);
    m.disconnected(80, ms(25_000));
    m.disconnected(81, ms(25_000));
    m.connected(80, ms(25_200));
    let f = m.figures(ms(30_000));
    let s = &f.storms[2];
    assert_eq!((s.dropped, s.back, s.all_back_after), (2, 1, None));
    assert_eq!(f.connections.connected_at_end, 99);
    assert_eq!(f.storms_not_back().map(|(i, _)| i).collect::<Vec<_>>(), vec![2]);
}

#[test]
fn attempt_peaks_are_exact_in_both_bucket_widths() {
    let f = two_storms().figures(ms(30_000));
    // Bucket [10.0, 10.1): the 50 refused retries at 10.005 and the reconnects at 10.01 .. 10.09.
    assert_eq!(f.attempts.peak_per_100ms, 59);
    assert_eq!(f.attempts.peak_per_100ms_at, ms(10_000));
    // Second [10, 11): 50 retries + 50 reconnects; the start-up seconds have 50 each.
    assert_eq!(f.attempts.peak_per_second, 100);
    assert_eq!(f.attempts.peak_per_second_at, ms(10_000));
    assert_eq!(f.attempts.total, 100 + 50 + 50 + 10);
}

#[test]
fn connected_series_counts_events_at_or_before_each_100ms_step() {
    let run = two_storms().run("x", ms(30_000));
    let c = &run.series.connected;
    assert_eq!(c.len(), 301);
    assert_eq!(c[0], 1); // client 0 at 0 ms
    assert_eq!(c[1], 6); // clients 0..=5 by 100 ms
    assert_eq!(c[20], 100); // all by 1.98 s
    assert_eq!(c[100], 100); // the abort storm at 10.0 s is noticed at 10.001 s
    assert_eq!(c[101], 60); // 50 gone, 10 back by 10.1 s
    assert_eq!(c[105], 100);
    assert_eq!(c[229], 100); // the stall storm at 20 s goes unnoticed until 23 s
    assert_eq!(c[230], 90); // the sample at 23.0 s counts the events at 23.0 s
    assert_eq!(c[234], 90);
    assert_eq!(c[235], 100);
    assert_eq!(run.figures.connections.peak_connected, 100);
    assert_eq!(run.series.attempts[100], 59);
}

#[test]
fn events_fed_out_of_order_give_the_same_figures() {
    let m = two_storms();
    let mut shuffled = Metrics::new(100);
    // Feed the connection events of two_storms newest first: figures are computed on sorted times.
    shuffled.storm(ms(20_000), StormMode::Stall, 0.1, 60..70);
    shuffled.storm(ms(10_000), StormMode::Abort, 0.5, 0..50);
    let a = m.figures(ms(30_000));
    // Storm numbering follows feeding order, so compare the reconnect figures only.
    for c in (60..70).rev() {
        shuffled.connected(c, ms(23_500));
        shuffled.disconnected(c, ms(23_000));
    }
    for c in (0..50).rev() {
        shuffled.connected(c, ms(10_000 + 10 * (c as u64 + 1)));
        shuffled.disconnected(c, ms(10_001));
    }
    for c in (0..100).rev() {
        shuffled.connected(c, ms(20 * c as u64));
    }
    let b = shuffled.figures(ms(30_000));
    assert_eq!(a.reconnect, b.reconnect);
    assert_eq!(a.connections, b.connections);
}

#[test]
fn losses_and_duplicates_are_counted_per_client() {
    let mut m = Metrics::new(3);
    for seq in 0..10 {
        m.frame_delivered(0, seq);
    }
    m.frames_sent(0, 10);
    // Client 1: 0..5, then 3 and 4 again (re-delivered after a reconnect), then 7..10; the gateway sent
    // 12, so 5, 6, 10 and 11 are lost.
    for seq in (0..5).chain([3, 4]).chain(7..10) {
        m.frame_delivered(1, seq);
    }
    m.frames_sent(1, 12);
    // Client 2: no count from the gateway, so only the gap (1) shows.
    m.frame_delivered(2, 0);
    m.frame_delivered(2, 2);
    let f = m.figures(ms(1_000)).frames;
    assert_eq!(f.delivered, 10 + 10 + 2);
    assert_eq!(f.lost, 4 + 1);
    assert_eq!(f.duplicated, 2);
    assert_eq!((f.clients_with_loss, f.clients_with_duplicates), (2, 1));
    assert_eq!(f.beyond_sent, 0);
}

#[test]
fn commands_sent_resent_and_confirmed() {
    let mut m = Metrics::new(3);
    m.command_sent(0, 1, ms(1_000));
    m.command_confirmed(0, 1, ms(1_200));
    m.command_sent(0, 2, ms(9_900));
    m.command_resent(0, 2, ms(10_300));
    m.command_confirmed(0, 2, ms(10_400));
    m.command_sent(1, 1, ms(9_950));
    m.command_sent(2, 7, ms(9_000));
    m.command_resent(2, 7, ms(10_200));
    m.command_confirmed(2, 7, ms(10_250));
    m.command_confirmed(2, 7, ms(10_260));
    let c = m.figures(ms(11_000)).commands;
    assert_eq!(
        (c.sent, c.resent, c.confirmed, c.unconfirmed, c.confirmed_more_than_once),
        (4, 2, 3, 1, 1)
    );
    // Confirm latencies 200 ms, 500 ms, 1250 ms.
    assert_eq!(
        (c.confirm_latency.p50, c.confirm_latency.max),
        (Some(ms(500)), Some(ms(1_250)))
    );
}

fn sample(rss_mib: u64, cpu_ms: u64) -> ResourceSample {
    ResourceSample {
        rss_bytes: rss_mib << 20,
        hwm_bytes: rss_mib << 20,
        cpu: ms(cpu_ms),
    }
}

#[test]
fn memory_per_idle_connection_and_cpu() {
    let mut m = Metrics::new(100);
    m.mark_idle_baseline(ms(0), sample(100, 1_000));
    m.mark_idle_connected(
        ms(5_000),
        ResourceSample {
            rss_bytes: (100 << 20) + 100 * 51_200,
            ..sample(0, 2_000)
        },
        100,
    );
    m.resources(
        ms(40_000),
        ResourceSample {
            hwm_bytes: 300 << 20,
            ..sample(180, 3_500)
        },
    );
    let r = m.figures(ms(40_000)).resources;
    assert_eq!(r.rss_per_idle_connection_bytes, Some(51_200));
    assert_eq!(r.peak_rss_bytes, Some(300 << 20));
    assert_eq!(r.cpu, Some(ms(2_500)));
}

#[test]
fn the_gate_reports_each_violation() {
    let mut m = two_storms();
    m.storm(ms(25_000), StormMode::Close, 0.02, [80, 81]);
    m.connected(80, ms(25_200));
    m.frame_delivered(0, 0);
    m.frame_delivered(0, 0);
    m.frames_sent(0, 2);
    m.command_sent(0, 1, ms(1));
    m.command_sent(0, 2, ms(1));
    m.command_confirmed(0, 2, ms(2));
    m.command_confirmed(0, 2, ms(3));
    m.mark_idle_baseline(ms(0), sample(100, 0));
    m.mark_idle_connected(
        ms(1),
        ResourceSample {
            rss_bytes: (100 << 20) + 100 * 51_200,
            ..sample(0, 0)
        },
        100,
    );
    let f = m.figures(ms(30_000));
    let gate = Gate {
        max_p99: Some(ms(1_000)),
        max_rss_per_conn: Some(40_000),
        nothing_lost: true,
    };
    let v = gate.check(&f);
    assert_eq!(
        v,
        vec![
            Violation::ReconnectP99 {
                p99: ms(3_500),
                max: ms(1_000)
            },
            Violation::RssPerConnection {
                bytes: 51_200,
                max: 40_000
            },
            Violation::FramesLost { frames: 1, clients: 1 },
            Violation::FramesDuplicated { frames: 1, clients: 1 },
            Violation::CommandsUnconfirmed(1),
            Violation::CommandsConfirmedTwice(1),
            Violation::ClientsNotBack {
                storm: 2,
                at: ms(25_000),
                dropped: 2,
                back: 1
            },
        ]
    );
    assert_eq!(v[0].to_string(), "reconnect p99 3.50 s is above the limit 1.00 s");
    assert_eq!(v[6].to_string(), "storm 3 at 25.00 s: only 1 of 2 clients came back");
    // Loose thresholds pass; thresholds on figures never measured fail.
    let loose = Gate {
        max_p99: Some(ms(4_000)),
        max_rss_per_conn: Some(60_000),
        nothing_lost: false,
    };
    assert!(loose.check(&f).is_empty());
    let empty = Metrics::new(1).figures(ms(1));
    assert_eq!(
        loose.check(&empty),
        vec![
            Violation::NotMeasured("reconnect p99"),
            Violation::NotMeasured("RSS per idle connection")
        ]
    );
    assert!(
        Gate {
            nothing_lost: true,
            ..Gate::default()
        }
        .check(&two_storms().figures(ms(30_000)))
        .is_empty()
    );
}

/// A crowd of `clients` reconnecting through storms every 10 s with exponential backoff before every
/// attempt (500 ms base, doubling, 8 s cap), with full jitter (uniform in 0..=delay) or none, against
/// a gateway that accepts at most 150 handshakes per 100 ms and refuses the rest. Seeded, so the
/// report is the same every time.
fn simulated(clients: usize, full_jitter: bool, seed: u64) -> RunFigures {
    const ACCEPT_PER_BUCKET: u32 = 150;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut m = Metrics::new(clients);
    let end = ms(40_000);
    // Attempts due, by time: (at ms, client, attempt number).
    let mut due: BTreeMap<(u64, usize), u32> = BTreeMap::new();
    for c in 0..clients {
        due.insert((rng.random_range(0..1_000), c), 0);
    }
    let mut accepted: BTreeMap<u64, u32> = BTreeMap::new();
    let backoff = |rng: &mut ChaCha8Rng, k: u32| {
        let delay = (500u64 << k.min(4)).min(8_000);
        if full_jitter {
            rng.random_range(1..=delay)
        } else {
            delay
        }
    };
    let mut next_storm = 10_000;
    let mut connected = vec![false; clients];
    let mut t = 0;
    while t < end.as_millis() as u64 {
        if t == next_storm {
            let mode = [StormMode::Abort, StormMode::Close, StormMode::Stall][(t / 10_000 - 1) as usize % 3];
            let victims: Vec<usize> = (0..clients)
                .filter(|&c| connected[c] && rng.random::<f64>() < 0.5)
                .collect();
            m.storm(ms(t), mode, 0.5, victims.iter().copied());
            let notice = if mode == StormMode::Stall { 1_500 } else { 2 };
            for &c in &victims {
                connected[c] = false;
                m.disconnected(c, ms(t + notice));
                due.insert((t + notice + backoff(&mut rng, 0), c), 1);
            }
            next_storm += 10_000;
        }
        while let Some((&(at, c), &k)) = due.first_key_value() {
            if at > t {
                break;
            }
            due.pop_first();
            m.attempt(ms(at));
            let slot = accepted.entry(at / 100).or_default();
            if *slot < ACCEPT_PER_BUCKET {
                *slot += 1;
                connected[c] = true;
                m.connected(c, ms(at + 5));
            } else {
                due.insert((at + backoff(&mut rng, k), c), k + 1);
            }
        }
        t += 1;
    }
    for (i, &up) in connected.iter().enumerate() {
        m.frames_sent(i, 10);
        for seq in 0..if up { 10 } else { 9 } {
            m.frame_delivered(i, seq);
        }
    }
    m.mark_idle_baseline(ms(0), sample(20, 100));
    m.mark_idle_connected(
        ms(2_000),
        ResourceSample {
            rss_bytes: (20 << 20) + clients as u64 * 40_000,
            ..sample(0, 300)
        },
        clients,
    );
    m.resources(end, sample(20 + clients as u64 / 20, 2_900));
    m.run(if full_jitter { "jitter full" } else { "jitter none" }, end)
}

/// Tags of one SVG balance: every element opened is closed (or self-closed) in order.
fn assert_balanced(svg: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find('<') {
        let end = rest[i..].find('>').expect("unterminated tag") + i;
        let tag = &rest[i + 1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "closing </{name}> out of order"
            );
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().unwrap_or("").to_string());
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

fn svgs(html: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<svg") {
        let end = rest[start..].find("</svg>").expect("svg closed") + start + "</svg>".len();
        out.push(&rest[start..end]);
        rest = &rest[end..];
    }
    out
}

#[test]
fn report_has_one_svg_per_plot_and_they_are_well_formed() {
    let runs = [simulated(2_000, false, 7), simulated(2_000, true, 7)];
    let html = render_html(&runs);
    // Comparison + 3 per run.
    assert_eq!(html.matches("<svg").count(), 7);
    assert_eq!(html.matches("</svg>").count(), 7);
    for svg in svgs(&html) {
        assert_balanced(svg);
    }
    for bad in ["NaN", "inf", "undefined"] {
        assert!(!html.contains(bad), "report contains {bad}");
    }
    // Self-contained: nothing to fetch, nothing to run.
    let outside = html.replace("http://www.w3.org/2000/svg", "");
    assert!(!outside.contains("http") && !html.contains("<script") && !html.contains("<link"));
    assert!(html.contains("Connection attempts per second, runs compared"));
    assert!(html.contains("jitter none") && html.contains("jitter full"));
    // The herd: without jitter the 100 ms peak is higher.
    let (none, full) = (&runs[0].figures, &runs[1].figures);
    assert!(
        none.attempts.peak_per_100ms > full.attempts.peak_per_100ms,
        "{none}\n{full}"
    );
    for run in &runs {
        let rate = run.figures.attempts.peak_per_100ms * 10;
        let label = format!("peak {},{:03}/s at", rate / 1000, rate % 1000);
        assert!(html.contains(&label), "{label} not in the report");
    }

    let single = render_html(&runs[..1]);
    assert_eq!(single.matches("<svg").count(), 3);
}

#[test]
fn a_run_without_storms_or_reconnects_still_renders_cleanly() {
    let html = render_html(&[Metrics::new(0).run("empty <run>", ms(0))]);
    assert_eq!(html.matches("<svg").count(), 3);
    assert!(html.contains("no reconnects measured") && html.contains("empty &lt;run&gt;"));
    assert!(!html.contains("NaN") && !html.contains("inf"));
    for svg in svgs(&html) {
        assert_balanced(svg);
    }
}

#[test]
fn write_report_writes_html_and_json_figures() {
    let dir = match std::env::var_os("STRESS_SAMPLE_REPORT") {
        // Set it to keep the sample report for a look in a browser.
        Some(d) => std::path::PathBuf::from(d),
        None => tempfile::tempdir().unwrap().keep(),
    };
    let runs = [simulated(2_000, false, 7), simulated(2_000, true, 7)];
    let path = write_report(&dir, &runs).unwrap();
    assert!(std::fs::read_to_string(&path).unwrap().starts_with("<!DOCTYPE html>"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(FIGURES_FILE)).unwrap()).unwrap();
    assert_eq!(json[0]["label"], "jitter none");
    assert_eq!(json[1]["figures"]["clients"], 2000);
    assert_eq!(
        json[1]["figures"]["attempts"]["peak_per_100ms"],
        runs[1].figures.attempts.peak_per_100ms
    );
    assert_eq!(json[0]["figures"]["storms"][0]["mode"], "abort");
    assert!(json[0]["figures"]["reconnect"]["p99_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(json[0]["figures"]["resources"]["rss_per_idle_connection_bytes"], 40_000);
}

#[test]
fn sys_readings_are_plausible_on_linux() {
    let s = sys::sample().unwrap();
    assert!(s.rss_bytes > 1 << 20, "RSS {} bytes", s.rss_bytes);
    assert!(s.hwm_bytes >= s.rss_bytes);
    // Burn CPU until the tick counter moves (10 ms ticks): CPU time is read and it grows.
    let start = Instant::now();
    let mut x = 0u64;
    while sys::cpu_time().unwrap() <= s.cpu && start.elapsed() < Duration::from_secs(5) {
        for i in 0..100_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
    }
    assert!(sys::cpu_time().unwrap() > s.cpu, "{x}");
    let ports = sys::ephemeral_ports().unwrap();
    assert!(ports.start() > &1024 && ports.end() >= ports.start());
}

#[test]
fn nofile_limit_is_raised_to_the_hard_limit() {
    let lim = sys::raise_nofile_limit().unwrap();
    assert_eq!(lim.soft, lim.hard);
    assert!(lim.soft >= lim.soft_before);
    assert!(lim.check(10).is_ok());
    let too_many = usize::try_from(lim.hard).unwrap_or(usize::MAX / 4);
    assert!(lim.check(too_many).unwrap_err().to_string().contains("LimitNOFILE"));
}

#[test]
fn source_addresses_never_exceed_the_cap() {
    for (clients, cap) in [
        (100_000, MAX_CONNECTIONS_PER_SOURCE),
        (1_000, 7),
        (28_000, MAX_CONNECTIONS_PER_SOURCE),
    ] {
        let mut per: BTreeMap<Ipv4Addr, usize> = BTreeMap::new();
        for c in 0..clients {
            *per.entry(sys::source_ip(c, cap).unwrap()).or_default() += 1;
        }
        assert!(per.values().all(|&n| n <= cap), "{clients} clients at {cap}");
        assert_eq!(per.len(), sys::source_ips_needed(clients, cap));
        assert!(
            per.keys()
                .all(|ip| ip.is_loopback() && *ip != Ipv4Addr::new(127, 0, 0, 0))
        );
        assert_eq!(per.keys().next(), Some(&Ipv4Addr::new(127, 0, 0, 1)));
    }
}

#[tokio::test]
async fn connect_from_uses_the_chosen_loopback_source() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dst = listener.local_addr().unwrap();
    let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let (client, accepted) = tokio::join!(sys::connect_from(src, dst), listener.accept());
    let mut client = client.unwrap();
    let (mut server, peer): (_, SocketAddr) = accepted.unwrap();
    assert_eq!(peer.ip(), src);
    assert_eq!(client.local_addr().unwrap().ip(), src);
    client.write_all(b"7e").await.unwrap();
    let mut buf = [0u8; 2];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"7e");
}
