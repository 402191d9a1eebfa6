//! Long runs in snapshot mode: what a run holds must not grow with its length.
//!
//! - `retained_memory_does_not_grow_with_the_run` (always runs): the same busy fleet for 3 and for
//!   12 virtual minutes, judged by its checks alone; the most memory either run held at once,
//!   counted by this binary's allocator on the run's thread, must be about the same.
//! - Ignored, for the README's figures (build with `--release`; each alone, in a process of its
//!   own, so that the peak RSS is its own): `scenarios/long/busy_hour.toml` keeping its transcript
//!   and rendering it, as `run` does; the same hour judged by its checks alone; and 24 hours of it
//!   judged by their checks (no stored snapshot: its checks judge it). Each asserts its goal
//!   (64 MB for the hour, 100 MB for the day).
//!
//! ```sh
//! for t in busy_hour_with_its_transcript busy_hour_judged_by_its_checks a_virtual_day_judged_by_its_checks; do
//!   cargo test --release --test long_runs -- --ignored --nocapture --exact $t
//! done
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::time::{Duration, Instant};

use jt808_harness::gateway::source::SourceSpec;
use jt808_harness::procstat;
use jt808_harness::scenario::Scenario;
use jt808_harness::scenario::runner::{self, Mode};
use jt808_harness::transcript::Transcript;

/// The system allocator, counting the bytes live on each thread and their peak. Per thread, so
/// other tests running beside it do not count (a snapshot run is a current-thread runtime: all
/// its tasks allocate on the thread that runs it).
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: every call goes to `System` unchanged; only counters are kept beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f`; the most bytes it held at once on this thread beyond what was live before it.
fn peak_held<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let before = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(before));
    let r = f();
    let peak = PEAK.with(Cell::get) - before;
    (r, peak.max(0) as u64)
}

/// The busy hour (`scenarios/long/busy_hour.toml`).
fn busy_hour() -> Scenario {
    Scenario::load(Path::new("scenarios/long/busy_hour.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// The busy hour repeated for `hours`: its commands again every hour, its message floor scaled.
fn busy_hours(hours: u64) -> Scenario {
    let hour = busy_hour();
    let mut sc = hour.clone();
    sc.duration_ms = hour.duration_ms * hours;
    sc.commands = (0..hours)
        .flat_map(|h| {
            hour.commands.iter().map(move |c| {
                let mut c = c.clone();
                c.at_ms += h * hour.duration_ms;
                c
            })
        })
        .collect();
    sc.expect.min_messages = hour.expect.min_messages.map(|m| m * hours);
    sc
}

/// The busy fleet, faster (its terminals every 200 ms: 20 messages a second), for `minutes`, with
/// its first few commands; no message floor.
fn busy_minutes(minutes: u64) -> Scenario {
    let mut sc = busy_hour();
    if let SourceSpec::Fleet(f) = &mut sc.source {
        f.interval_ms = 200;
    }
    sc.duration_ms = minutes * 60_000;
    sc.commands.retain(|c| c.at_ms < sc.duration_ms);
    sc.expect.min_messages = None;
    sc
}

fn failed(t: &Transcript) -> Vec<String> {
    t.checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect()
}

fn decoded(t: &Transcript) -> u64 {
    t.summary["messages_decoded"].as_u64().expect("messages_decoded")
}

/// Runs `sc` judged by its checks alone; its transcript (no events) and the most it held.
fn judged(sc: &Scenario) -> (Transcript, u64) {
    let (t, held) = peak_held(|| runner::run_with(sc, Mode::Snapshot, false, ()).map(|(t, ())| t));
    let t = t.unwrap_or_else(|e| panic!("{e}"));
    assert!(failed(&t).is_empty(), "{:#?}", failed(&t));
    (t, held)
}

/// Memory held at once must not follow the run's length: a run four times as long holds at
/// most a quarter more (a run that kept, say, 100 bytes per message would hold over twice as much).
#[test]
fn retained_memory_does_not_grow_with_the_run() {
    let (short, short_held) = judged(&busy_minutes(3));
    let (long, long_held) = judged(&busy_minutes(12));
    let (n, n4) = (decoded(&short), decoded(&long));
    assert!(n4 >= 3 * n, "the long run decoded {n4} messages, the short one {n}");
    let ratio = long_held as f64 / short_held as f64;
    let per_message = (long_held as f64 - short_held as f64) / (n4 - n) as f64;
    println!(
        "{n} messages: {short_held} bytes held at most; {n4}: {long_held} ({ratio:.2}x, \
         {per_message:.1} bytes per extra message)"
    );
    assert!(
        ratio < 1.25,
        "held {short_held} bytes over {n} messages but {long_held} over {n4}: {ratio:.2}x, \
         {per_message:.1} bytes per extra message"
    );
}

/// Wall time, CPU time and peak RSS of `f`, the peak measured from a fresh `VmHWM`.
fn measured<R>(what: &str, virtual_hours: u64, f: impl FnOnce() -> R) -> R {
    procstat::reset_peak().expect("reset VmHWM");
    let (wall, cpu) = (Instant::now(), procstat::cpu_time().expect("cpu time"));
    let r = f();
    let (wall, cpu) = (wall.elapsed(), procstat::cpu_time().expect("cpu time") - cpu);
    let hwm = procstat::memory().expect("VmHWM").hwm_bytes;
    let per_hour = |d: Duration| d.as_secs_f64() / virtual_hours as f64;
    println!(
        "{what}: wall {:.2} s ({:.2} s per virtual hour), cpu {:.2} s, peak RSS {:.1} MB",
        wall.as_secs_f64(),
        per_hour(wall),
        cpu.as_secs_f64(),
        hwm as f64 / 1e6
    );
    r
}

#[test]
#[ignore = "a figure for the README: run alone with --release --nocapture"]
fn busy_hour_with_its_transcript() {
    let sc = busy_hour();
    let (t, yaml) = measured("busy hour, transcript kept and rendered", 1, || {
        let t = runner::run(&sc, Mode::Snapshot).unwrap_or_else(|e| panic!("{e}"));
        let yaml = t.to_yaml();
        (t, yaml.len())
    });
    assert!(failed(&t).is_empty(), "{:#?}", failed(&t));
    println!(
        "  {} messages, {} transcript lines, {yaml} bytes of YAML",
        decoded(&t),
        t.events.len()
    );
    assert_peak_under(64_000_000);
}

#[test]
#[ignore = "a figure for the README: run alone with --release --nocapture"]
fn busy_hour_judged_by_its_checks() {
    let (t, _) = measured("busy hour, judged by its checks", 1, || judged(&busy_hour()));
    println!("  {} messages", decoded(&t));
    assert_peak_under(64_000_000);
}

#[test]
#[ignore = "a figure for the README: run alone with --release --nocapture"]
fn a_virtual_day_judged_by_its_checks() {
    let sc = busy_hours(24);
    let (t, _) = measured("24 virtual hours, judged by their checks", 24, || judged(&sc));
    println!("  {} messages, {} reconnects", decoded(&t), t.summary["reconnects"]);
    assert_peak_under(100_000_000);
}

fn assert_peak_under(bytes: u64) {
    let hwm = procstat::memory().expect("VmHWM").hwm_bytes;
    assert!(hwm < bytes, "peak RSS {hwm} bytes, goal under {bytes}");
}
