//! The figures of a stress run, as the JSON for CI (durations in `_ms` fields, CPU in seconds) and
//! an aligned text table: [`Figures`] and its parts, the [`Series`] behind the plots, the
//! mergeable [`Histograms`] a shard writes, and [`RunFigures`], one labelled run. Every type reads
//! back what it writes (`stress merge` reads shard outputs), durations to the microsecond.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer as HistogramReader, Serializer as _, V2DeflateSerializer};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::metrics::nearest_rank;
use super::options::StormMode;

/// Durations as milliseconds (a float with microsecond resolution).
mod ms {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_micros() as f64 / 1000.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        if !(v.is_finite() && v >= 0.0) {
            return Err(serde::de::Error::custom(format!("{v} ms is not a duration")));
        }
        Ok(Duration::from_micros((v * 1000.0).round() as u64))
    }
}

/// Optional durations as milliseconds or null.
mod opt_ms {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => ms::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Ms(#[serde(with = "ms")] Duration);
        Ok(Option::<Ms>::deserialize(d)?.map(|m| m.0))
    }
}

/// Optional durations as seconds or null.
mod opt_secs {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<f64>::deserialize(d)? {
            None => Ok(None),
            Some(v) => Duration::try_from_secs_f64(v)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// p50 / p99 / max of a set of durations (see the module doc for the definition); `None` when there
/// were no samples. Serialized in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Latency {
    /// How many samples.
    pub count: usize,
    /// Median.
    #[serde(rename = "p50_ms", with = "opt_ms")]
    pub p50: Option<Duration>,
    /// 99th percentile.
    #[serde(rename = "p99_ms", with = "opt_ms")]
    pub p99: Option<Duration>,
    /// Largest.
    #[serde(rename = "max_ms", with = "opt_ms")]
    pub max: Option<Duration>,
}

impl Latency {
    /// The figures of samples `us` (microseconds), sorted ascending.
    pub fn of_sorted(us: &[u64]) -> Latency {
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StormFigures {
    /// When it started.
    #[serde(rename = "at_ms", with = "ms")]
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
    #[serde(rename = "all_back_after_ms", with = "opt_ms")]
    pub all_back_after: Option<Duration>,
}

/// Connection attempts: the load a reconnecting crowd puts on the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Attempts {
    /// All attempts, successful or not.
    pub total: u64,
    /// Most attempts in one aligned 1 s bucket.
    pub peak_per_second: u32,
    /// Start of that bucket.
    #[serde(rename = "peak_per_second_at_ms", with = "ms")]
    pub peak_per_second_at: Duration,
    /// Most attempts in one aligned 100 ms bucket (×10 for a rate per second).
    pub peak_per_100ms: u32,
    /// Start of that bucket.
    #[serde(rename = "peak_per_100ms_at_ms", with = "ms")]
    pub peak_per_100ms_at: Duration,
}

/// Connection counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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
    #[serde(rename = "cpu_seconds", with = "opt_secs")]
    pub cpu: Option<Duration>,
}

/// Everything a stress run measured: JSON for CI (durations in `_ms` fields, CPU in seconds), an
/// aligned text table by `Display`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Clients in the run.
    pub clients: usize,
    /// Length of the run.
    #[serde(rename = "duration_ms", with = "ms")]
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
    /// Observations past the series limit (see [`super::metrics::Metrics::with_series_limit`]): counted in the
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
        self.reconnect_rows(&mut row);
        self.connection_rows(&mut row);
        self.delivery_rows(&mut row);
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

    fn reconnect_rows(&self, row: &mut impl FnMut(&str, String)) {
        row("clients", self.clients.to_string());
        row("duration", fmt_duration(self.duration));
        row("reconnects measured", self.reconnect.count.to_string());
        row("reconnect p50", opt_duration(self.reconnect.p50));
        row("reconnect p99", opt_duration(self.reconnect.p99));
        row("reconnect max", opt_duration(self.reconnect.max));
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
    }

    fn connection_rows(&self, row: &mut impl FnMut(&str, String)) {
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
    }

    fn delivery_rows(&self, row: &mut impl FnMut(&str, String)) {
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
        row("command confirm p99", opt_duration(m.confirm_latency.p99));
    }
}

fn opt_duration(d: Option<Duration>) -> String {
    d.map_or("-".to_string(), fmt_duration)
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Width of one step of `connected` and `attempts` ([`super::metrics::BUCKET`]).
    #[serde(rename = "bucket_ms", with = "ms")]
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
        histogram_of(&self.reconnect_us)
    }
}

/// Significant digits of every histogram a run writes: values within 0.1 % of their bucket.
pub const HISTOGRAM_SIGFIG: u8 = 3;

/// An empty histogram of [`HISTOGRAM_SIGFIG`] digits that grows to any value recorded, so none is
/// clamped.
pub fn new_histogram() -> Histogram<u64> {
    // 3 significant digits is within hdrhistogram's 0..=5, so creation cannot fail.
    Histogram::new(HISTOGRAM_SIGFIG).expect("sigfig 3 is valid")
}

/// The histogram of `values` (microseconds).
pub fn histogram_of(values: &[u64]) -> Histogram<u64> {
    let mut h = new_histogram();
    for &v in values {
        // `record` grows the histogram (auto-resize); it can only fail past hdrhistogram's own
        // range, where the value is kept at the top.
        if h.record(v).is_err() {
            h.saturating_record(v);
        }
    }
    h
}

/// A histogram in its JSON form: HdrHistogram's V2 DEFLATE serialisation, base64 (what
/// `HdrHistogram`'s other implementations read as a compressed histogram).
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedHistogram(pub Histogram<u64>);

impl Serialize for EncodedHistogram {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.0, &mut bytes)
            .map_err(|e| serde::ser::Error::custom(format!("histogram: {e:?}")))?;
        s.serialize_str(&BASE64.encode(bytes))
    }
}

impl<'de> Deserialize<'de> for EncodedHistogram {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<EncodedHistogram, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|e| serde::de::Error::custom(format!("histogram is not base64: {e}")))?;
        let mut h: Histogram<u64> = HistogramReader::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| serde::de::Error::custom(format!("histogram does not decode: {e:?}")))?;
        h.auto(true);
        Ok(EncodedHistogram(h))
    }
}

/// The distributions of a run, mergeable across shards: adding the histograms of two shards gives
/// exactly the histogram of all their samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histograms {
    /// Time to reconnect per outage, microseconds.
    pub reconnect_us: EncodedHistogram,
    /// First send to first confirmation per command, microseconds.
    pub confirm_us: EncodedHistogram,
}

impl Latency {
    /// The figures of a histogram (microseconds) whose largest sample is exactly `max`: p50 and p99
    /// as hdrhistogram's `value_at_quantile` gives them (the top of the sample's bucket, so at most
    /// 0.1 % above it), never above `max`.
    pub fn of_histogram(h: &Histogram<u64>, max: Option<Duration>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let q = |q: f64| {
            let v = Duration::from_micros(h.value_at_quantile(q));
            Some(max.map_or(v, |m| v.min(m)))
        };
        Latency {
            count: usize::try_from(h.len()).unwrap_or(usize::MAX),
            p50: q(0.5),
            p99: q(0.99),
            max: max.or(Some(Duration::from_micros(h.max()))),
        }
    }
}

/// One run's figures and series under a label, as [`super::report::write_report`] takes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFigures {
    /// What distinguishes the run (e.g. `"jitter none"`).
    pub label: String,
    /// The figures.
    pub figures: Figures,
    /// The series.
    pub series: Series,
    /// The distributions, for `stress merge`.
    pub histograms: Histograms,
}
