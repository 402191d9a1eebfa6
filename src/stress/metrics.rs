//! The stress run's bookkeeping: a [`Metrics`] collector the orchestration feeds with raw
//! observations, and the [`Figures`] it turns them into, checked by a [`Gate`]. No clock, no I/O and no
//! tokio here: every observation carries its time as a `Duration` since the run started, which the
//! caller reads (live: `start.elapsed()`), so the same sequence always gives the same figures and tests
//! can feed synthetic sequences.
//!
//! Observations may arrive slightly out of time order (they come from many tasks through a channel);
//! connection events are kept and sorted by time when figures are computed, and the order of equal
//! times is the order they were fed in.
//!
//! Definitions (they are what the figures mean, and what the tests pin down):
//! - **Outage** of a client: starts at the earlier of the storm that dropped it ([`Metrics::storm`])
//!   and its own [`Metrics::disconnected`], ends at its next [`Metrics::connected`]. Measuring from
//!   the storm counts the time a stalled client takes to notice, which is part of what users see.
//! - **Time to reconnect**: the length of each outage. p50/p99/max are exact nearest-rank order
//!   statistics (the smallest sample with at least p% of samples at or below it, the definition
//!   hdrhistogram's `value_at_quantile` uses, without its bucket rounding); an hdrhistogram of the same
//!   samples is available from [`Series::reconnect_histogram`].
//! - **All back after a storm**: time from the storm until the last client it dropped is connected
//!   again; `None` if one never came back before the run ended.
//! - **Attempts per second**: attempts counted in aligned buckets of 1 s and of 100 ms from the run's
//!   start (a burst straddling a boundary is split between two buckets; the 100 ms buckets show how
//!   sharp a thundering herd is).
//! - **Connected clients over time**: the number connected at each multiple of 100 ms, counting every
//!   event at or before that instant.
//! - **Frames**: the gateway numbers the frames it offers each client 0, 1, 2, ...; a delivery of a
//!   number already delivered is a duplicate; a number below the count offered
//!   ([`Metrics::frames_sent`], or else the highest delivered + 1) never delivered is lost.
//! - **Memory per idle connection**: `(RSS with C clients connected and idle − RSS with the gateway up
//!   and no client) / C`, both marked by the caller ([`Metrics::mark_idle_baseline`],
//!   [`Metrics::mark_idle_connected`]). Both ends of each connection live in this process, so it is
//!   the cost of one client *and* its gateway session, sockets and buffers included.
//! - **CPU seconds**: user + system time between the first and the last resource sample.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

pub use super::figures::{
    Attempts, Commands, Connections, EncodedHistogram, Figures, Frames, Histograms, Latency, Resources, RunFigures,
    Series, StormFigures, fmt_bytes, fmt_duration, fmt_offset, histogram_of,
};
pub use super::gate::{Gate, Violation};
pub use super::options::StormMode;
use super::sys::ResourceSample;

/// A client's index, `0..clients`.
pub type ClientId = usize;

/// Width of the fine time buckets: connected-clients samples and attempt counts.
pub const BUCKET: Duration = Duration::from_millis(100);

/// Default for [`Metrics::with_series_limit`]: time series cover the first hour of a run. Later
/// observations still count in every total and statistic but not in the series;
/// [`Figures::past_series_limit`] says how many there were.
pub const DEFAULT_SERIES_LIMIT: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy)]
enum Kind {
    Connected,
    Disconnected,
    /// Dropped by storm number `.0`.
    Dropped(u32),
}

#[derive(Debug, Clone, Copy)]
struct Event {
    at: Duration,
    client: ClientId,
    kind: Kind,
}

#[derive(Debug, Clone)]
struct Storm {
    at: Duration,
    mode: StormMode,
    fraction: f64,
}

/// Frame numbers delivered to one client, as runs of consecutive numbers: in-order delivery keeps it
/// one entry, each gap adds one.
#[derive(Debug, Default, Clone)]
struct SeqSet {
    /// start -> end (exclusive) of each run of delivered numbers.
    runs: BTreeMap<u64, u64>,
    delivered: u64,
    duplicated: u64,
    sent: Option<u64>,
}

impl SeqSet {
    fn insert(&mut self, seq: u64) {
        self.delivered += 1;
        if let Some((&start, end)) = self.runs.range_mut(..=seq).next_back() {
            if seq < *end {
                self.duplicated += 1;
                return;
            }
            if seq == *end {
                *end += 1;
                let new_end = *end;
                if let Some(next_end) = self.runs.remove(&new_end) {
                    self.runs.insert(start, next_end);
                }
                return;
            }
        }
        let end = self.runs.remove(&(seq + 1)).unwrap_or(seq + 1);
        self.runs.insert(seq, end);
    }

    fn distinct_below(&self, limit: u64) -> u64 {
        self.runs
            .iter()
            .take_while(|(s, _)| **s < limit)
            .map(|(s, e)| (*e).min(limit) - s)
            .sum()
    }

    fn highest(&self) -> Option<u64> {
        self.runs.values().next_back().map(|e| e - 1)
    }

    /// (lost, delivered past the count sent)
    fn lost(&self) -> (u64, u64) {
        let expected = self.sent.or_else(|| self.highest().map(|h| h + 1)).unwrap_or(0);
        let below = self.distinct_below(expected);
        let total: u64 = self.runs.iter().map(|(s, e)| e - s).sum();
        (expected - below, total - below)
    }
}

#[derive(Debug, Default, Clone)]
struct Command {
    first_sent: Option<Duration>,
    first_confirmed: Option<Duration>,
    resent: u64,
    confirmed: u64,
}

/// Collects a stress run's observations; [`Metrics::figures`] and [`Metrics::run`] compute the results.
/// Feed it from one task (it is a plain struct); the orchestration's tasks send their observations
/// there over a channel.
#[derive(Debug, Clone)]
pub struct Metrics {
    clients: usize,
    series_limit: Duration,
    events: Vec<Event>,
    storms: Vec<Storm>,
    attempts: Vec<u32>,
    attempts_total: u64,
    past_series_limit: u64,
    frames: Vec<SeqSet>,
    commands: HashMap<(ClientId, u64), Command>,
    samples: Vec<(Duration, ResourceSample)>,
    idle_baseline: Option<ResourceSample>,
    idle_connected: Option<(ResourceSample, usize)>,
}

impl Metrics {
    /// A collector for a run of `clients` clients (ids `0..clients`; a larger id widens the run).
    pub fn new(clients: usize) -> Self {
        Metrics {
            clients,
            series_limit: DEFAULT_SERIES_LIMIT,
            events: Vec::new(),
            storms: Vec::new(),
            attempts: Vec::new(),
            attempts_total: 0,
            past_series_limit: 0,
            frames: Vec::new(),
            commands: HashMap::new(),
            samples: Vec::new(),
            idle_baseline: None,
            idle_connected: None,
        }
    }

    /// How much of the run the time series cover (default [`DEFAULT_SERIES_LIMIT`]); each series costs
    /// 4 bytes per 100 ms.
    pub fn with_series_limit(mut self, limit: Duration) -> Self {
        self.series_limit = limit;
        self
    }

    fn widen(&mut self, client: ClientId) {
        self.clients = self.clients.max(client + 1);
    }

    /// A client starts a connection attempt (TCP connect + WebSocket handshake) at `at`.
    pub fn attempt(&mut self, at: Duration) {
        self.attempts_total += 1;
        if at >= self.series_limit {
            self.past_series_limit += 1;
            return;
        }
        let bucket = bucket_index(at);
        if self.attempts.len() <= bucket {
            self.attempts.resize(bucket + 1, 0);
        }
        self.attempts[bucket] += 1;
    }

    /// Client `client` has a working connection (handshake done) at `at`.
    pub fn connected(&mut self, client: ClientId, at: Duration) {
        self.widen(client);
        self.events.push(Event {
            at,
            client,
            kind: Kind::Connected,
        });
    }

    /// Client `client` noticed its connection is gone at `at`.
    pub fn disconnected(&mut self, client: ClientId, at: Duration) {
        self.widen(client);
        self.events.push(Event {
            at,
            client,
            kind: Kind::Disconnected,
        });
    }

    /// A storm started at `at`: the gateway dropped the connections of `dropped` (chosen as `fraction`
    /// of the clients) by `mode`. Returns the storm's number (0-based), the index in
    /// [`Figures::storms`].
    pub fn storm(
        &mut self,
        at: Duration,
        mode: StormMode,
        fraction: f64,
        dropped: impl IntoIterator<Item = ClientId>,
    ) -> usize {
        let number = self.storms.len();
        self.storms.push(Storm { at, mode, fraction });
        for client in dropped {
            self.widen(client);
            self.events.push(Event {
                at,
                client,
                kind: Kind::Dropped(number as u32),
            });
        }
        number
    }

    fn frames_of(&mut self, client: ClientId) -> &mut SeqSet {
        self.widen(client);
        if self.frames.len() <= client {
            self.frames.resize_with(client + 1, SeqSet::default);
        }
        &mut self.frames[client]
    }

    /// Client `client` delivered the gateway's frame number `seq` (0, 1, 2, ... per client).
    pub fn frame_delivered(&mut self, client: ClientId, seq: u64) {
        self.frames_of(client).insert(seq);
    }

    /// The gateway offered client `client` frames `0..count` in all; without it, frames lost after the
    /// last one delivered go unseen.
    pub fn frames_sent(&mut self, client: ClientId, count: u64) {
        self.frames_of(client).sent = Some(count);
    }

    /// Client `client` sent command `id` (its own numbering, e.g. the JT808 serial) for the first time.
    pub fn command_sent(&mut self, client: ClientId, id: u64, at: Duration) {
        self.widen(client);
        let c = self.commands.entry((client, id)).or_default();
        c.first_sent = Some(c.first_sent.map_or(at, |t| t.min(at)));
    }

    /// Client `client` sent command `id` again (after a reconnect, unconfirmed).
    pub fn command_resent(&mut self, client: ClientId, id: u64, _at: Duration) {
        self.widen(client);
        self.commands.entry((client, id)).or_default().resent += 1;
    }

    /// Client `client` got the confirmation of command `id` (general response).
    pub fn command_confirmed(&mut self, client: ClientId, id: u64, at: Duration) {
        self.widen(client);
        let c = self.commands.entry((client, id)).or_default();
        c.confirmed += 1;
        c.first_confirmed = Some(c.first_confirmed.map_or(at, |t| t.min(at)));
    }

    /// A resource reading ([`super::sys::sample`]) taken at `at`.
    pub fn resources(&mut self, at: Duration, sample: ResourceSample) {
        self.samples.push((at, sample));
    }

    /// The reading with the gateway up and no client connected: the base of memory per connection.
    /// Also counts as a [`Metrics::resources`] sample.
    pub fn mark_idle_baseline(&mut self, at: Duration, sample: ResourceSample) {
        self.idle_baseline = Some(sample);
        self.resources(at, sample);
    }

    /// The reading with `connections` clients connected and idle (before the first storm). Also
    /// counts as a [`Metrics::resources`] sample.
    pub fn mark_idle_connected(&mut self, at: Duration, sample: ResourceSample, connections: usize) {
        self.idle_connected = Some((sample, connections));
        self.resources(at, sample);
    }

    /// The figures of the run, which ended at `end`.
    pub fn figures(&self, end: Duration) -> Figures {
        self.run("", end).figures
    }

    /// The figures, the time series and the histograms of the run, which ended at `end`, under
    /// `label` (e.g. `"jitter full"`), for [`super::report::write_report`].
    pub fn run(&self, label: impl Into<String>, end: Duration) -> RunFigures {
        let conns = self.replay_connections(end);
        let mut attempts = self.attempts.clone();
        attempts.resize(conns.series.len().max(attempts.len()), 0);
        let (commands, confirm_us) = self.command_figures();
        let figures = Figures {
            clients: self.clients,
            duration: end,
            reconnect: Latency::of_sorted(&conns.reconnect_us),
            storms: self.storm_figures(&conns),
            attempts: attempt_figures(&attempts, self.attempts_total),
            connections: conns.connections,
            frames: self.frame_figures(),
            commands,
            resources: self.resource_figures(),
            past_series_limit: conns.past_limit,
        };
        let histograms = Histograms {
            reconnect_us: EncodedHistogram(histogram_of(&conns.reconnect_us)),
            confirm_us: EncodedHistogram(histogram_of(&confirm_us)),
        };
        RunFigures {
            label: label.into(),
            figures,
            series: Series {
                bucket: BUCKET,
                connected: conns.series,
                attempts,
                reconnect_us: conns.reconnect_us,
            },
            histograms,
        }
    }

    /// Replays the connection events in time order: outages, storm returns, the connected series.
    fn replay_connections(&self, end: Duration) -> ConnectionReplay {
        let mut events = self.events.clone();
        events.sort_by_key(|e| e.at);
        let series_end = end.min(self.series_limit);
        let mut r = ConnectionReplay::new(self.clients, self.storms.len(), bucket_index(series_end) + 1);
        r.past_limit = self.past_series_limit;
        for e in &events {
            if e.at >= self.series_limit {
                r.past_limit += 1;
            }
            r.sample_until(e.at);
            match e.kind {
                Kind::Connected => r.connected(e.client, e.at, &self.storms),
                Kind::Disconnected => r.disconnected(e.client, e.at),
                Kind::Dropped(s) => r.dropped(e.client, e.at, s),
            }
        }
        r.sample_until(Duration::MAX);
        r.reconnect_us.sort_unstable();
        r
    }

    fn storm_figures(&self, r: &ConnectionReplay) -> Vec<StormFigures> {
        self.storms
            .iter()
            .enumerate()
            .map(|(i, s)| StormFigures {
                at: s.at,
                mode: s.mode,
                fraction: s.fraction,
                dropped: r.dropped[i],
                back: r.back[i],
                all_back_after: if r.dropped[i] == 0 {
                    Some(Duration::ZERO)
                } else {
                    r.all_back[i]
                },
            })
            .collect()
    }

    fn frame_figures(&self) -> Frames {
        let mut frames = Frames::default();
        for set in &self.frames {
            let (lost, beyond) = set.lost();
            frames.delivered += set.delivered;
            frames.duplicated += set.duplicated;
            frames.lost += lost;
            frames.beyond_sent += beyond;
            frames.clients_with_loss += usize::from(lost > 0);
            frames.clients_with_duplicates += usize::from(set.duplicated > 0);
        }
        frames
    }

    /// The command figures and every confirm latency (µs, sorted).
    fn command_figures(&self) -> (Commands, Vec<u64>) {
        let mut commands = Commands::default();
        let mut confirm_us = Vec::new();
        for c in self.commands.values() {
            commands.sent += u64::from(c.first_sent.is_some());
            commands.resent += c.resent;
            commands.confirmed += u64::from(c.confirmed > 0);
            commands.unconfirmed += u64::from(c.confirmed == 0);
            commands.confirmed_more_than_once += u64::from(c.confirmed > 1);
            if let (Some(s), Some(k)) = (c.first_sent, c.first_confirmed) {
                confirm_us.push(micros(k.saturating_sub(s)));
            }
        }
        confirm_us.sort_unstable();
        commands.confirm_latency = Latency::of_sorted(&confirm_us);
        (commands, confirm_us)
    }

    fn resource_figures(&self) -> Resources {
        let peak_rss_bytes = self.samples.iter().map(|(_, s)| s.rss_bytes.max(s.hwm_bytes)).max();
        let mut by_time: Vec<_> = self.samples.iter().collect();
        by_time.sort_by_key(|(at, _)| *at);
        let cpu = match (by_time.first(), by_time.last()) {
            (Some(first), Some(last)) if by_time.len() >= 2 => Some(last.1.cpu.saturating_sub(first.1.cpu)),
            _ => None,
        };
        let per_conn = match (self.idle_baseline, self.idle_connected) {
            (Some(base), Some((idle, conns))) if conns > 0 => {
                Some(idle.rss_bytes.saturating_sub(base.rss_bytes) / conns as u64)
            }
            _ => None,
        };
        Resources {
            peak_rss_bytes,
            idle_baseline_rss_bytes: self.idle_baseline.map(|s| s.rss_bytes),
            idle_connected_rss_bytes: self.idle_connected.map(|(s, _)| s.rss_bytes),
            idle_connections: self.idle_connected.map(|(_, c)| c),
            rss_per_idle_connection_bytes: per_conn,
            cpu,
        }
    }
}

/// The state of [`Metrics::replay_connections`] as it walks the events.
struct ConnectionReplay {
    up: Vec<bool>,
    outage: Vec<Option<Duration>>,
    /// Storms each client still has to come back from.
    pending: Vec<Vec<u32>>,
    remaining: Vec<usize>,
    dropped: Vec<usize>,
    back: Vec<usize>,
    all_back: Vec<Option<Duration>>,
    reconnect_us: Vec<u64>,
    count: u32,
    connections: Connections,
    series: Vec<u32>,
    samples: usize,
    past_limit: u64,
}

impl ConnectionReplay {
    fn new(clients: usize, storms: usize, samples: usize) -> ConnectionReplay {
        ConnectionReplay {
            up: vec![false; clients],
            outage: vec![None; clients],
            pending: vec![Vec::new(); clients],
            remaining: vec![0; storms],
            dropped: vec![0; storms],
            back: vec![0; storms],
            all_back: vec![None; storms],
            reconnect_us: Vec::new(),
            count: 0,
            connections: Connections::default(),
            series: Vec::with_capacity(samples),
            samples,
            past_limit: 0,
        }
    }

    /// Samples the connected count at every bucket time before `at`.
    fn sample_until(&mut self, at: Duration) {
        while self.series.len() < self.samples && bucket_time(self.series.len()) < at {
            self.series.push(self.count);
        }
    }

    fn connected(&mut self, c: ClientId, at: Duration, storms: &[Storm]) {
        let k = &mut self.connections;
        k.connects += 1;
        if self.up[c] {
            k.repeated_events += 1;
        } else {
            self.up[c] = true;
            self.count += 1;
            k.peak_connected = k.peak_connected.max(self.count);
        }
        k.connected_at_end = self.count;
        if let Some(start) = self.outage[c].take() {
            self.reconnect_us.push(micros(at.saturating_sub(start)));
        }
        for s in self.pending[c].drain(..) {
            let s = s as usize;
            self.back[s] += 1;
            self.remaining[s] -= 1;
            if self.remaining[s] == 0 {
                self.all_back[s] = Some(at.saturating_sub(storms[s].at));
            }
        }
    }

    fn disconnected(&mut self, c: ClientId, at: Duration) {
        let k = &mut self.connections;
        k.disconnects += 1;
        if self.up[c] {
            self.up[c] = false;
            self.count -= 1;
        } else {
            k.repeated_events += 1;
        }
        k.connected_at_end = self.count;
        self.outage[c].get_or_insert(at);
    }

    fn dropped(&mut self, c: ClientId, at: Duration, s: u32) {
        if !self.pending[c].contains(&s) {
            self.pending[c].push(s);
            self.remaining[s as usize] += 1;
            self.dropped[s as usize] += 1;
        }
        self.outage[c].get_or_insert(at);
    }
}

/// The attempt figures of 100 ms buckets `attempts`, `total` attempts in all.
pub(crate) fn attempt_figures(attempts: &[u32], total: u64) -> Attempts {
    let (peak_100ms, peak_100ms_at) = peak_bucket(attempts.iter().copied(), BUCKET);
    let per_second = attempts.chunks(10).map(|c| c.iter().sum::<u32>());
    let (peak_1s, peak_1s_at) = peak_bucket(per_second, Duration::from_secs(1));
    Attempts {
        total,
        peak_per_second: peak_1s,
        peak_per_second_at: peak_1s_at,
        peak_per_100ms: peak_100ms,
        peak_per_100ms_at: peak_100ms_at,
    }
}

fn bucket_index(at: Duration) -> usize {
    (at.as_nanos() / BUCKET.as_nanos()) as usize
}

fn bucket_time(index: usize) -> Duration {
    BUCKET * index as u32
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Highest bucket and its start time; the earliest wins ties.
fn peak_bucket(buckets: impl Iterator<Item = u32>, width: Duration) -> (u32, Duration) {
    let mut best = (0u32, Duration::ZERO);
    for (i, v) in buckets.enumerate() {
        if v > best.0 {
            best = (v, width * i as u32);
        }
    }
    best
}

/// Nearest-rank quantile of sorted samples: the value at rank ceil(permille/1000 × n), at least 1.
pub(crate) fn nearest_rank(sorted: &[u64], permille: usize) -> Option<u64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (permille * n).div_ceil(1000).max(1);
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn seq_set_merges_runs_and_counts_duplicates() {
        let mut s = SeqSet::default();
        for seq in [0, 1, 3, 2, 5, 2, 0] {
            s.insert(seq);
        }
        // Runs: [0,4) and [5,6); 4 missing; 2 and 0 delivered twice.
        assert_eq!(
            s.runs.iter().map(|(a, b)| (*a, *b)).collect::<Vec<_>>(),
            vec![(0, 4), (5, 6)]
        );
        assert_eq!((s.delivered, s.duplicated), (7, 2));
        assert_eq!(s.lost(), (1, 0));
        s.sent = Some(8);
        assert_eq!(s.lost(), (3, 0));
        s.sent = Some(3);
        assert_eq!(s.lost(), (0, 2));
    }

    #[test]
    fn nearest_rank_matches_its_definition() {
        let v: Vec<u64> = (1..=200).collect();
        assert_eq!(nearest_rank(&v, 500), Some(100));
        assert_eq!(nearest_rank(&v, 990), Some(198));
        assert_eq!(nearest_rank(&[7], 990), Some(7));
        assert_eq!(nearest_rank(&[], 500), None);
    }

    #[test]
    fn hdr_histogram_agrees_with_the_exact_figures_within_its_precision() {
        let mut m = Metrics::new(300);
        for c in 0..300 {
            m.connected(c, ms(0));
        }
        m.storm(ms(1000), StormMode::Abort, 1.0, 0..300);
        for c in 0..300 {
            m.connected(c, ms(1000) + Duration::from_micros(1_000 + 997 * c as u64));
        }
        let run = m.run("x", ms(2000));
        let h = run.series.reconnect_histogram();
        for (q, exact) in [(0.5, run.figures.reconnect.p50), (0.99, run.figures.reconnect.p99)] {
            let exact = exact.unwrap().as_micros() as f64;
            let approx = h.value_at_quantile(q) as f64;
            assert!(
                (approx - exact).abs() / exact < 0.001,
                "q {q}: hdr {approx} vs exact {exact}"
            );
        }
    }

    #[test]
    fn display_is_an_aligned_table() {
        let m = Metrics::new(1);
        let text = m.figures(ms(500)).to_string();
        let columns: Vec<usize> = text.lines().map(|l| l.find("  ").unwrap()).collect();
        let value_col: Vec<usize> = text
            .lines()
            .map(|l| l.len() - l[l.find("  ").unwrap()..].trim_start().len())
            .collect();
        assert!(columns.len() > 10);
        assert!(value_col.windows(2).all(|w| w[0] == w[1]), "{text}");
    }
}
