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
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize, Serializer};

use super::sys::ResourceSample;
use crate::gateway::ConnCommand;

/// A client's index, `0..clients`.
pub type ClientId = usize;

/// Width of the fine time buckets: connected-clients samples and attempt counts.
pub const BUCKET: Duration = Duration::from_millis(100);

/// Default for [`Metrics::with_series_limit`]: time series cover the first hour of a run. Later
/// observations still count in every total and statistic but not in the series;
/// [`Figures::past_series_limit`] says how many there were.
pub const DEFAULT_SERIES_LIMIT: Duration = Duration::from_secs(3600);

/// How a storm dropped connections (the gateway's [`ConnCommand`]s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StormMode {
    /// WebSocket close frame (1001 going away), then TCP FIN.
    Close,
    /// TCP dropped without a close frame.
    Abort,
    /// Socket kept open, nothing forwarded: the client must notice on its own.
    Stall,
}

impl From<ConnCommand> for StormMode {
    fn from(c: ConnCommand) -> Self {
        match c {
            ConnCommand::Close => StormMode::Close,
            ConnCommand::Abort => StormMode::Abort,
            ConnCommand::Stall => StormMode::Stall,
        }
    }
}

impl fmt::Display for StormMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StormMode::Close => "close",
            StormMode::Abort => "abort",
            StormMode::Stall => "stall",
        })
    }
}

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
        self.analyse(end).0
    }

    /// The figures and the time series of the run, which ended at `end`, under `label` (e.g.
    /// `"jitter full"`), for [`super::report::write_report`].
    pub fn run(&self, label: impl Into<String>, end: Duration) -> RunFigures {
        let (figures, series) = self.analyse(end);
        RunFigures {
            label: label.into(),
            figures,
            series,
        }
    }

    fn analyse(&self, end: Duration) -> (Figures, Series) {
        let mut events = self.events.clone();
        events.sort_by_key(|e| e.at);

        let n = self.clients;
        let mut connected = vec![false; n];
        let mut outage: Vec<Option<Duration>> = vec![None; n];
        // Storms each client still has to come back from.
        let mut pending: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut remaining = vec![0usize; self.storms.len()];
        let mut dropped = vec![0usize; self.storms.len()];
        let mut back = vec![0usize; self.storms.len()];
        let mut all_back: Vec<Option<Duration>> = vec![None; self.storms.len()];
        let mut reconnect_us = Vec::new();
        let (mut count, mut peak, mut connects, mut disconnects, mut repeated) = (0u32, 0u32, 0u64, 0u64, 0u64);

        let series_end = end.min(self.series_limit);
        let samples = bucket_index(series_end) + 1;
        let mut connected_series = Vec::with_capacity(samples);
        let mut past_limit = self.past_series_limit;

        for e in &events {
            if e.at >= self.series_limit {
                past_limit += 1;
            }
            while connected_series.len() < samples && bucket_time(connected_series.len()) < e.at {
                connected_series.push(count);
            }
            let c = e.client;
            match e.kind {
                Kind::Connected => {
                    connects += 1;
                    if connected[c] {
                        repeated += 1;
                    } else {
                        connected[c] = true;
                        count += 1;
                        peak = peak.max(count);
                    }
                    if let Some(start) = outage[c].take() {
                        reconnect_us.push(micros(e.at.saturating_sub(start)));
                    }
                    for s in pending[c].drain(..) {
                        let s = s as usize;
                        back[s] += 1;
                        remaining[s] -= 1;
                        if remaining[s] == 0 {
                            all_back[s] = Some(e.at.saturating_sub(self.storms[s].at));
                        }
                    }
                }
                Kind::Disconnected => {
                    disconnects += 1;
                    if connected[c] {
                        connected[c] = false;
                        count -= 1;
                    } else {
                        repeated += 1;
                    }
                    outage[c].get_or_insert(e.at);
                }
                Kind::Dropped(s) => {
                    if !pending[c].contains(&s) {
                        pending[c].push(s);
                        remaining[s as usize] += 1;
                        dropped[s as usize] += 1;
                    }
                    outage[c].get_or_insert(e.at);
                }
            }
        }
        while connected_series.len() < samples {
            connected_series.push(count);
        }
        reconnect_us.sort_unstable();

        let storms = self
            .storms
            .iter()
            .enumerate()
            .map(|(i, s)| StormFigures {
                at: s.at,
                mode: s.mode,
                fraction: s.fraction,
                dropped: dropped[i],
                back: back[i],
                all_back_after: if dropped[i] == 0 {
                    Some(Duration::ZERO)
                } else {
                    all_back[i]
                },
            })
            .collect();

        let mut attempts = self.attempts.clone();
        attempts.resize(samples.max(attempts.len()), 0);
        let (peak_100ms, peak_100ms_at) = peak_bucket(attempts.iter().copied(), BUCKET);
        let per_second = attempts.chunks(10).map(|c| c.iter().sum::<u32>());
        let (peak_1s, peak_1s_at) = peak_bucket(per_second, Duration::from_secs(1));

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

        let figures = Figures {
            clients: n,
            duration: end,
            reconnect: Latency::of_sorted(&reconnect_us),
            storms,
            attempts: Attempts {
                total: self.attempts_total,
                peak_per_second: peak_1s,
                peak_per_second_at: peak_1s_at,
                peak_per_100ms: peak_100ms,
                peak_per_100ms_at: peak_100ms_at,
            },
            connections: Connections {
                connects,
                disconnects,
                peak_connected: peak,
                connected_at_end: count,
                repeated_events: repeated,
            },
            frames,
            commands,
            resources: self.resource_figures(),
            past_series_limit: past_limit,
        };
        let series = Series {
            bucket: BUCKET,
            connected: connected_series,
            attempts,
            reconnect_us,
        };
        (figures, series)
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
fn nearest_rank(sorted: &[u64], permille: usize) -> Option<u64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (permille * n).div_ceil(1000).max(1);
    Some(sorted[rank - 1])
}

fn serialize_ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_micros() as f64 / 1000.0)
}

fn serialize_opt_ms<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => serialize_ms(d, s),
        None => s.serialize_none(),
    }
}

/// p50 / p99 / max of a set of durations (see the module doc for the definition); `None` when there
/// were no samples. Serialized in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Latency {
    /// How many samples.
    pub count: usize,
    /// Median.
    #[serde(rename = "p50_ms", serialize_with = "serialize_opt_ms")]
    pub p50: Option<Duration>,
    /// 99th percentile.
    #[serde(rename = "p99_ms", serialize_with = "serialize_opt_ms")]
    pub p99: Option<Duration>,
    /// Largest.
    #[serde(rename = "max_ms", serialize_with = "serialize_opt_ms")]
    pub max: Option<Duration>,
}

impl Latency {
    fn of_sorted(us: &[u64]) -> Latency {
        let d = |p| nearest_rank(us, p).map(Duration::from_micros);
        Latency {
            count: us.len(),
            p50: d(500),
            p99: d(990),
            max: us.last().map(|&v| Duration::from_micros(v)),
        }
    }
}

/// One storm and how the clients it dropped came back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StormFigures {
    /// When it started.
    #[serde(rename = "at_ms", serialize_with = "serialize_ms")]
    pub at: Duration,
    /// How it dropped connections.
    pub mode: StormMode,
    /// Fraction of the clients it was asked to drop.
    pub fraction: f64,
    /// Distinct clients it dropped.
    pub dropped: usize,
    /// How many of them came back before the run ended.
    pub back: usize,
    /// Storm start to the last of them connected again; `None` if one never came back.
    #[serde(rename = "all_back_after_ms", serialize_with = "serialize_opt_ms")]
    pub all_back_after: Option<Duration>,
}

/// Connection attempts: the load a reconnecting crowd puts on the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Attempts {
    /// All attempts, successful or not.
    pub total: u64,
    /// Most attempts in one aligned 1 s bucket.
    pub peak_per_second: u32,
    /// Start of that bucket.
    #[serde(rename = "peak_per_second_at_ms", serialize_with = "serialize_ms")]
    pub peak_per_second_at: Duration,
    /// Most attempts in one aligned 100 ms bucket (×10 for a rate per second).
    pub peak_per_100ms: u32,
    /// Start of that bucket.
    #[serde(rename = "peak_per_100ms_at_ms", serialize_with = "serialize_ms")]
    pub peak_per_100ms_at: Duration,
}

/// Connection counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Connections {
    /// `connected` observations.
    pub connects: u64,
    /// `disconnected` observations.
    pub disconnects: u64,
    /// Most clients connected at once.
    pub peak_connected: u32,
    /// Clients connected when the run ended.
    pub connected_at_end: u32,
    /// `connected` for a client already connected or `disconnected` for one already down: the
    /// orchestration reported a transition twice, which would make the other counts suspect.
    pub repeated_events: u64,
}

/// Frames delivered to the clients, against the numbers the gateway gave them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Frames {
    /// Deliveries, duplicates included.
    pub delivered: u64,
    /// Frames offered and never delivered.
    pub lost: u64,
    /// Deliveries of a frame already delivered to that client.
    pub duplicated: u64,
    /// Distinct frames delivered with a number at or past the count the gateway said it sent.
    pub beyond_sent: u64,
    /// Clients that lost at least one frame.
    pub clients_with_loss: usize,
    /// Clients that got at least one duplicate.
    pub clients_with_duplicates: usize,
}

/// Commands the clients sent and the confirmations they got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Commands {
    /// Distinct commands sent.
    pub sent: u64,
    /// Re-sends (after reconnects).
    pub resent: u64,
    /// Distinct commands confirmed.
    pub confirmed: u64,
    /// Commands never confirmed.
    pub unconfirmed: u64,
    /// Commands confirmed more than once: the platform acted on a re-sent copy too.
    pub confirmed_more_than_once: u64,
    /// First send to first confirmation.
    pub confirm_latency: Latency,
}

/// Memory and CPU of the process (gateway and clients together).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Resources {
    /// Highest RSS (or VmHWM) in any sample, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// RSS with the gateway up and no client, bytes.
    pub idle_baseline_rss_bytes: Option<u64>,
    /// RSS with [`Resources::idle_connections`] clients connected and idle, bytes.
    pub idle_connected_rss_bytes: Option<u64>,
    /// Clients connected at that reading.
    pub idle_connections: Option<usize>,
    /// (idle connected RSS − baseline RSS) / idle connections, bytes, 0 if RSS went down.
    pub rss_per_idle_connection_bytes: Option<u64>,
    /// User + system CPU between the first and last sample; serialized as seconds.
    #[serde(rename = "cpu_seconds", serialize_with = "serialize_opt_secs")]
    pub cpu: Option<Duration>,
}

fn serialize_opt_secs<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// Everything a stress run measured: JSON for CI (durations in `_ms` fields, CPU in seconds), an
/// aligned text table by `Display`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// Clients in the run.
    pub clients: usize,
    /// Length of the run.
    #[serde(rename = "duration_ms", serialize_with = "serialize_ms")]
    pub duration: Duration,
    /// Time to reconnect per outage.
    pub reconnect: Latency,
    /// Each storm.
    pub storms: Vec<StormFigures>,
    /// Connection attempts.
    pub attempts: Attempts,
    /// Connection counts.
    pub connections: Connections,
    /// Frame delivery.
    pub frames: Frames,
    /// Command confirmation.
    pub commands: Commands,
    /// Memory and CPU.
    pub resources: Resources,
    /// Observations past the series limit (see [`Metrics::with_series_limit`]): counted in the
    /// figures, missing from the plots.
    pub past_series_limit: u64,
}

impl Figures {
    /// The storms whose clients did not all come back.
    pub fn storms_not_back(&self) -> impl Iterator<Item = (usize, &StormFigures)> {
        self.storms
            .iter()
            .enumerate()
            .filter(|(_, s)| s.all_back_after.is_none())
    }

    /// Rows of the text table: (figure, value).
    pub fn rows(&self) -> Vec<(String, String)> {
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut row = |k: &str, v: String| rows.push((k.to_string(), v));
        let opt = |d: Option<Duration>| d.map_or("-".to_string(), fmt_duration);
        row("clients", self.clients.to_string());
        row("duration", fmt_duration(self.duration));
        row("reconnects measured", self.reconnect.count.to_string());
        row("reconnect p50", opt(self.reconnect.p50));
        row("reconnect p99", opt(self.reconnect.p99));
        row("reconnect max", opt(self.reconnect.max));
        for (i, s) in self.storms.iter().enumerate() {
            row(
                &format!("storm {} at {}", i + 1, fmt_offset(s.at)),
                format!(
                    "{} {:.0}%: {} dropped, {} back, all back {}",
                    s.mode,
                    s.fraction * 100.0,
                    s.dropped,
                    s.back,
                    s.all_back_after
                        .map_or("never".to_string(), |d| format!("after {}", fmt_duration(d)))
                ),
            );
        }
        let a = &self.attempts;
        row("connection attempts", a.total.to_string());
        row(
            "peak attempts / 1 s",
            format!("{} at {}", a.peak_per_second, fmt_offset(a.peak_per_second_at)),
        );
        row(
            "peak attempts / 100 ms",
            format!(
                "{} at {} ({}/s)",
                a.peak_per_100ms,
                fmt_offset(a.peak_per_100ms_at),
                a.peak_per_100ms * 10
            ),
        );
        let c = &self.connections;
        row("connects / disconnects", format!("{} / {}", c.connects, c.disconnects));
        row("peak connected", c.peak_connected.to_string());
        row("connected at end", c.connected_at_end.to_string());
        if c.repeated_events > 0 {
            row("repeated connection events", c.repeated_events.to_string());
        }
        let f = &self.frames;
        row("frames delivered", f.delivered.to_string());
        row("frames lost", format!("{} ({} clients)", f.lost, f.clients_with_loss));
        row(
            "frames duplicated",
            format!("{} ({} clients)", f.duplicated, f.clients_with_duplicates),
        );
        if f.beyond_sent > 0 {
            row("frames beyond sent", f.beyond_sent.to_string());
        }
        let m = &self.commands;
        row("commands sent / re-sent", format!("{} / {}", m.sent, m.resent));
        row(
            "commands confirmed",
            format!("{} ({} unconfirmed)", m.confirmed, m.unconfirmed),
        );
        row("commands confirmed twice", m.confirmed_more_than_once.to_string());
        row("command confirm p99", opt(m.confirm_latency.p99));
        let r = &self.resources;
        row("peak RSS", r.peak_rss_bytes.map_or("-".into(), fmt_bytes));
        row(
            "RSS per idle connection",
            match (r.rss_per_idle_connection_bytes, r.idle_connections) {
                (Some(b), Some(n)) => format!("{} (over {n})", fmt_bytes(b)),
                _ => "-".into(),
            },
        );
        row(
            "CPU user+sys",
            r.cpu.map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64())),
        );
        if self.past_series_limit > 0 {
            row("past series limit", self.past_series_limit.to_string());
        }
        rows
    }
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = self.rows();
        let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
        for (k, v) in rows {
            writeln!(f, "{k:<width$}  {v}")?;
        }
        Ok(())
    }
}

/// A duration for people: µs, ms or s with three significant-ish digits.
pub fn fmt_duration(d: Duration) -> String {
    let us = d.as_micros();
    if us == 0 {
        "0 s".to_string()
    } else if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

/// A moment of the run (offset from its start) for people: seconds with two decimals.
pub fn fmt_offset(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Bytes for people (binary units).
pub fn fmt_bytes(b: u64) -> String {
    if b < 1024 {
        format!("{b} B")
    } else if b < 1024 * 1024 {
        format!("{:.1} KiB", b as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
    }
}

/// The time series behind the plots.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// Width of one step of `connected` and `attempts` ([`BUCKET`]).
    #[serde(rename = "bucket_ms", serialize_with = "serialize_ms")]
    pub bucket: Duration,
    /// Clients connected at `i × bucket`.
    pub connected: Vec<u32>,
    /// Attempts in `[i × bucket, (i+1) × bucket)`.
    pub attempts: Vec<u32>,
    /// Every time to reconnect, microseconds, ascending.
    pub reconnect_us: Vec<u64>,
}

impl Series {
    /// The reconnect times in an hdrhistogram (microseconds, 3 significant digits), for tools that
    /// speak its formats.
    pub fn reconnect_histogram(&self) -> Histogram<u64> {
        // Sized for the largest sample, so no value is clamped; a high of at least 2 and 3 significant
        // figures are valid bounds, so creation cannot fail.
        let high = self.reconnect_us.last().copied().unwrap_or(0).max(2);
        let mut h = Histogram::<u64>::new_with_max(high, 3).expect("high >= 2 and sigfig 3 are valid");
        for &v in &self.reconnect_us {
            h.saturating_record(v);
        }
        h
    }
}

/// One run's figures and series under a label, as [`super::report::write_report`] takes them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunFigures {
    /// What distinguishes the run (e.g. `"jitter none"`).
    pub label: String,
    /// The figures.
    pub figures: Figures,
    /// The series.
    pub series: Series,
}

/// Thresholds a CI run must meet; [`Gate::check`] lists what it broke, and the orchestration exits
/// non-zero when the list is not empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Gate {
    /// Highest acceptable p99 time to reconnect.
    pub max_p99: Option<Duration>,
    /// Highest acceptable RSS per idle connection, bytes.
    pub max_rss_per_conn: Option<u64>,
    /// No frame lost or duplicated, no command unconfirmed or confirmed twice, every dropped client
    /// back: DESIGN.md's "nothing lost and nothing sent twice".
    pub nothing_lost: bool,
}

/// One broken threshold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// Reconnects were slower than allowed.
    #[error("reconnect p99 {} is above the limit {}", fmt_duration(*p99), fmt_duration(*max))]
    ReconnectP99 {
        /// Measured.
        p99: Duration,
        /// Allowed.
        max: Duration,
    },
    /// Each idle connection costs more memory than allowed.
    #[error("RSS per idle connection {} is above the limit {}", fmt_bytes(*bytes), fmt_bytes(*max))]
    RssPerConnection {
        /// Measured.
        bytes: u64,
        /// Allowed.
        max: u64,
    },
    /// A threshold was set but the run did not measure its figure.
    #[error("{0} has a limit but was not measured")]
    NotMeasured(&'static str),
    /// Frames offered were never delivered.
    #[error("{frames} frames lost by {clients} clients")]
    FramesLost {
        /// Frames.
        frames: u64,
        /// Clients.
        clients: usize,
    },
    /// Frames were delivered twice.
    #[error("{frames} frames duplicated to {clients} clients")]
    FramesDuplicated {
        /// Frames.
        frames: u64,
        /// Clients.
        clients: usize,
    },
    /// Commands were never confirmed.
    #[error("{0} commands never confirmed")]
    CommandsUnconfirmed(u64),
    /// Commands were confirmed more than once.
    #[error("{0} commands confirmed more than once")]
    CommandsConfirmedTwice(u64),
    /// Not every client a storm dropped came back.
    #[error("storm {} at {}: only {back} of {dropped} clients came back", storm + 1, fmt_offset(*at))]
    ClientsNotBack {
        /// Storm number, 0-based.
        storm: usize,
        /// When it started.
        at: Duration,
        /// Clients dropped.
        dropped: usize,
        /// Clients back.
        back: usize,
    },
}

impl Gate {
    /// Every threshold `figures` breaks, in a fixed order; empty means the run passes.
    pub fn check(&self, figures: &Figures) -> Vec<Violation> {
        let mut out = Vec::new();
        if let Some(max) = self.max_p99 {
            match figures.reconnect.p99 {
                Some(p99) if p99 > max => out.push(Violation::ReconnectP99 { p99, max }),
                Some(_) => {}
                None => out.push(Violation::NotMeasured("reconnect p99")),
            }
        }
        if let Some(max) = self.max_rss_per_conn {
            match figures.resources.rss_per_idle_connection_bytes {
                Some(bytes) if bytes > max => out.push(Violation::RssPerConnection { bytes, max }),
                Some(_) => {}
                None => out.push(Violation::NotMeasured("RSS per idle connection")),
            }
        }
        if self.nothing_lost {
            let f = &figures.frames;
            if f.lost > 0 {
                out.push(Violation::FramesLost {
                    frames: f.lost,
                    clients: f.clients_with_loss,
                });
            }
            if f.duplicated > 0 {
                out.push(Violation::FramesDuplicated {
                    frames: f.duplicated,
                    clients: f.clients_with_duplicates,
                });
            }
            let c = &figures.commands;
            if c.unconfirmed > 0 {
                out.push(Violation::CommandsUnconfirmed(c.unconfirmed));
            }
            if c.confirmed_more_than_once > 0 {
                out.push(Violation::CommandsConfirmedTwice(c.confirmed_more_than_once));
            }
            for (storm, s) in figures.storms_not_back() {
                out.push(Violation::ClientsNotBack {
                    storm,
                    at: s.at,
                    dropped: s.dropped,
                    back: s.back,
                });
            }
        }
        out
    }
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
