//! One fleet's figures from its shards (`jt808-harness stress merge`): each shard wrote its
//! [`Outcome`]s (`--json FILE`, or `outcome.json` in its `--report DIR`), one per jitter setting;
//! [`merge`] combines run `k` of every shard into run `k` of the fleet.
//!
//! How each figure combines (the shards are disjoint sets of clients):
//! - counts (clients, frames, commands, connects, attempts, problems) are summed, so two shards
//!   give exactly what one unsharded run of the same fleet gives;
//! - p50 and p99 come from the shards' HdrHistograms added together, which is exactly the histogram
//!   of all their samples (values within 0.1 %); max is the largest shard max, exact;
//! - the series (connected clients, attempts per 100 ms) are added bucket by bucket from each
//!   shard's own start, and the attempt peaks are recomputed from the sum; shards started within a
//!   bucket or two of each other, so the fleet's peak is close, not exact;
//! - peak connected and peak RSS are the sums of the shards' peaks (an upper bound: shards peak at
//!   different moments); memory per idle connection is the fleet's idle growth over its idle
//!   connections;
//! - storms are merged by their number when every shard has the same ones (shards that each ran
//!   their own gateway on one schedule): dropped and back summed, all back after the slowest.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::figures::{
    Commands, Connections, EncodedHistogram, Figures, Frames, Histograms, Latency, Resources, RunFigures, Series,
    StormFigures, new_histogram,
};
use super::metrics::attempt_figures;
use super::outcome::{Outcome, SideMemory, StressError};
use super::report::OUTCOME_FILE;

/// One shard's output as read back.
#[derive(Debug, Clone)]
pub struct ShardOutput {
    /// The file it was read from.
    pub path: PathBuf,
    /// Its runs, one per jitter setting.
    pub outcomes: Vec<Outcome>,
}

/// One run of the fleet: the merged figures and each shard's.
#[derive(Debug, Clone)]
pub struct MergedRun {
    /// The fleet.
    pub merged: Outcome,
    /// Each shard's run, in the order given.
    pub shards: Vec<Outcome>,
}

fn merge_err(path: &Path, why: impl Into<String>) -> StressError {
    StressError::Merge {
        path: path.display().to_string(),
        why: why.into(),
    }
}

/// Reads the outcome JSON at `path`, or in directory `path` its [`OUTCOME_FILE`].
pub fn read_shard(path: &Path) -> Result<ShardOutput, StressError> {
    let file = if path.is_dir() {
        path.join(OUTCOME_FILE)
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|e| merge_err(&file, e.to_string()))?;
    let outcomes: Vec<Outcome> = serde_json::from_str(&text)
        .map_err(|e| merge_err(&file, format!("{e} (expected what `stress --json` writes)")))?;
    if outcomes.is_empty() {
        return Err(merge_err(&file, "no runs in it"));
    }
    Ok(ShardOutput { path: file, outcomes })
}

/// Merges run `k` of every shard into run `k` of the fleet; the shards must have the same runs
/// (labels, in order) and storms.
pub fn merge(shards: &[ShardOutput]) -> Result<Vec<MergedRun>, StressError> {
    let Some(first) = shards.first() else {
        return Err(StressError::Options(
            "stress merge needs at least one shard output".into(),
        ));
    };
    let labels: Vec<&str> = first.outcomes.iter().map(|o| o.run.label.as_str()).collect();
    for s in shards {
        let theirs: Vec<&str> = s.outcomes.iter().map(|o| o.run.label.as_str()).collect();
        if theirs != labels {
            return Err(merge_err(
                &s.path,
                format!("runs {theirs:?} differ from {:?} in {}", labels, first.path.display()),
            ));
        }
    }
    (0..labels.len())
        .map(|k| {
            let runs: Vec<(&Path, &Outcome)> = shards.iter().map(|s| (s.path.as_path(), &s.outcomes[k])).collect();
            Ok(MergedRun {
                merged: merge_run(&runs)?,
                shards: runs.iter().map(|(_, o)| (*o).clone()).collect(),
            })
        })
        .collect()
}

fn merge_run(runs: &[(&Path, &Outcome)]) -> Result<Outcome, StressError> {
    let mut reconnect = new_histogram();
    let mut confirm = new_histogram();
    for (path, o) in runs {
        let h = &o.run.histograms;
        reconnect
            .add(&h.reconnect_us.0)
            .map_err(|e| merge_err(path, format!("reconnect histogram: {e:?}")))?;
        confirm
            .add(&h.confirm_us.0)
            .map_err(|e| merge_err(path, format!("confirm histogram: {e:?}")))?;
    }
    let figures: Vec<&Figures> = runs.iter().map(|(_, o)| &o.run.figures).collect();
    let series = merge_series(runs.iter().map(|(_, o)| &o.run.series));
    let max_of = |f: fn(&Figures) -> Option<Duration>| figures.iter().filter_map(|x| f(x)).max();
    let commands = Commands {
        confirm_latency: Latency::of_histogram(&confirm, max_of(|f| f.commands.confirm_latency.max)),
        ..sum_commands(&figures)
    };
    let merged = Figures {
        clients: figures.iter().map(|f| f.clients).sum(),
        duration: figures.iter().map(|f| f.duration).max().unwrap_or_default(),
        reconnect: Latency::of_histogram(&reconnect, max_of(|f| f.reconnect.max)),
        storms: merge_storms(runs)?,
        attempts: attempt_figures(&series.attempts, figures.iter().map(|f| f.attempts.total).sum()),
        connections: sum_connections(&figures),
        frames: sum_frames(&figures),
        commands,
        resources: sum_resources(&figures),
        past_series_limit: figures.iter().map(|f| f.past_series_limit).sum(),
    };
    let problems = runs
        .iter()
        .flat_map(|(path, o)| o.problems.iter().map(move |p| format!("{}: {p}", path.display())))
        .collect();
    Ok(Outcome {
        run: RunFigures {
            label: format!("fleet of {} shards: {}", runs.len(), runs[0].1.run.label),
            figures: merged,
            series,
            histograms: Histograms {
                reconnect_us: EncodedHistogram(reconnect),
                confirm_us: EncodedHistogram(confirm),
            },
        },
        problems,
        nofile: None,
        sides: merge_sides(runs),
    })
}

/// The series added bucket by bucket; a shard's connected count holds at its last value after
/// its end.
fn merge_series<'a>(all: impl Iterator<Item = &'a Series>) -> Series {
    let all: Vec<&Series> = all.collect();
    let len = |f: fn(&Series) -> usize| all.iter().map(|s| f(s)).max().unwrap_or(0);
    let (nc, na) = (len(|s| s.connected.len()), len(|s| s.attempts.len()));
    let mut connected = vec![0u32; nc];
    let mut attempts = vec![0u32; na];
    let mut reconnect_us = Vec::new();
    for s in &all {
        let last = s.connected.last().copied().unwrap_or(0);
        for (i, c) in connected.iter_mut().enumerate() {
            *c += s.connected.get(i).copied().unwrap_or(last);
        }
        for (a, v) in attempts.iter_mut().zip(&s.attempts) {
            *a += v;
        }
        reconnect_us.extend_from_slice(&s.reconnect_us);
    }
    reconnect_us.sort_unstable();
    Series {
        bucket: all.first().map_or(super::metrics::BUCKET, |s| s.bucket),
        connected,
        attempts,
        reconnect_us,
    }
}

fn merge_storms(runs: &[(&Path, &Outcome)]) -> Result<Vec<StormFigures>, StressError> {
    let first = &runs[0].1.run.figures.storms;
    let mut out = first.clone();
    for (path, o) in &runs[1..] {
        let theirs = &o.run.figures.storms;
        let same = theirs.len() == first.len() && theirs.iter().zip(first).all(|(a, b)| a.mode == b.mode);
        if !same {
            return Err(merge_err(
                path,
                format!(
                    "{} storms, not the {} of {} (shards of one fleet share one storm schedule)",
                    theirs.len(),
                    first.len(),
                    runs[0].0.display()
                ),
            ));
        }
        for (m, s) in out.iter_mut().zip(theirs) {
            m.at = m.at.min(s.at);
            m.dropped += s.dropped;
            m.back += s.back;
            m.all_back_after = m.all_back_after.zip(s.all_back_after).map(|(a, b)| a.max(b));
        }
    }
    Ok(out)
}

fn sum_connections(f: &[&Figures]) -> Connections {
    let mut c = Connections::default();
    for x in f.iter().map(|f| &f.connections) {
        c.connects += x.connects;
        c.disconnects += x.disconnects;
        c.peak_connected += x.peak_connected;
        c.connected_at_end += x.connected_at_end;
        c.repeated_events += x.repeated_events;
    }
    c
}

fn sum_frames(f: &[&Figures]) -> Frames {
    let mut t = Frames::default();
    for x in f.iter().map(|f| &f.frames) {
        t.delivered += x.delivered;
        t.lost += x.lost;
        t.duplicated += x.duplicated;
        t.beyond_sent += x.beyond_sent;
        t.clients_with_loss += x.clients_with_loss;
        t.clients_with_duplicates += x.clients_with_duplicates;
    }
    t
}

fn sum_commands(f: &[&Figures]) -> Commands {
    let mut t = Commands::default();
    for x in f.iter().map(|f| &f.commands) {
        t.sent += x.sent;
        t.resent += x.resent;
        t.confirmed += x.confirmed;
        t.unconfirmed += x.unconfirmed;
        t.confirmed_more_than_once += x.confirmed_more_than_once;
    }
    t
}

/// The sum of the `Some`s, `None` when there are none.
fn sum_some<T: std::iter::Sum<T>>(values: impl Iterator<Item = Option<T>>) -> Option<T> {
    let v: Vec<T> = values.flatten().collect();
    (!v.is_empty()).then(|| v.into_iter().sum())
}

fn sum_resources(f: &[&Figures]) -> Resources {
    let r: Vec<&Resources> = f.iter().map(|f| &f.resources).collect();
    let base = sum_some(r.iter().map(|r| r.idle_baseline_rss_bytes));
    let idle = sum_some(r.iter().map(|r| r.idle_connected_rss_bytes));
    let conns = sum_some(r.iter().map(|r| r.idle_connections));
    let all_measured = r
        .iter()
        .all(|r| r.idle_baseline_rss_bytes.is_some() && r.idle_connected_rss_bytes.is_some());
    let per_conn = match (base, idle, conns) {
        (Some(b), Some(i), Some(c)) if c > 0 && all_measured => Some(i.saturating_sub(b) / c as u64),
        _ => None,
    };
    Resources {
        peak_rss_bytes: sum_some(r.iter().map(|r| r.peak_rss_bytes)),
        idle_baseline_rss_bytes: base,
        idle_connected_rss_bytes: idle,
        idle_connections: conns,
        rss_per_idle_connection_bytes: per_conn,
        cpu: sum_some(r.iter().map(|r| r.cpu)),
    }
}

/// Each side's memory per idle connection, weighted by the shards' idle connections; only when
/// every shard measured it.
fn merge_sides(runs: &[(&Path, &Outcome)]) -> Option<SideMemory> {
    let (mut client, mut gateway, mut conns) = (0u128, 0u128, 0u128);
    for (_, o) in runs {
        let s = o.sides?;
        let c = o
            .run
            .figures
            .resources
            .idle_connections
            .unwrap_or(o.run.figures.clients) as u128;
        client += u128::from(s.client_bytes) * c;
        gateway += u128::from(s.gateway_bytes) * c;
        conns += c;
    }
    (conns > 0).then(|| SideMemory {
        client_bytes: (client / conns) as u64,
        gateway_bytes: (gateway / conns) as u64,
    })
}
