//! What a stress run is asked to do: the storms ([`StormMode`], [`StormSpec`], [`storm_schedule`]),
//! the fleet's slice (`--shard`, [`Shard`], also from `JOB_COMPLETION_INDEX`), where the gateway runs
//! ([`GatewayPlacement`]) and every other setting with its default ([`StressOpts`]). Parsing and
//! plain values only: nothing here runs.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::feed::FeedSettings;
use super::sys;
use crate::client::{BackoffConfig, ClientConfig, Jitter, OutboxConfig, WsSettings};
use crate::gateway::ConnCommand;

/// How a storm drops connections: its name on the command line, in the child-process protocol and
/// in the JSON, and the gateway command it sends. [`StormMode::TABLE`] is the one place these meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StormMode {
    /// WebSocket close frame (1001 going away), then TCP FIN.
    Close,
    /// TCP dropped without a close frame.
    Abort,
    /// Socket kept open, nothing forwarded: the client must notice on its own.
    Stall,
}

impl StormMode {
    /// Every mode with its name and the gateway command that carries it out.
    pub const TABLE: [(StormMode, &'static str, ConnCommand); 3] = [
        (StormMode::Close, "close", ConnCommand::Close),
        (StormMode::Abort, "abort", ConnCommand::Abort),
        (StormMode::Stall, "stall", ConnCommand::Stall),
    ];

    fn row(self) -> &'static (StormMode, &'static str, ConnCommand) {
        // The table lists every variant, in declaration order.
        &Self::TABLE[self as usize]
    }

    /// Its name: `close`, `abort` or `stall`.
    pub fn name(self) -> &'static str {
        self.row().1
    }

    /// The gateway command that drops a connection this way.
    pub fn command(self) -> ConnCommand {
        self.row().2
    }
}

impl fmt::Display for StormMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for StormMode {
    type Err = String;

    fn from_str(s: &str) -> Result<StormMode, String> {
        let s = s.trim();
        Self::TABLE
            .iter()
            .find(|(_, name, _)| *name == s)
            .map(|(m, _, _)| *m)
            .ok_or_else(|| format!("mode {s:?} is not close, abort or stall"))
    }
}

impl Serialize for StormMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for StormMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<StormMode, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// One storm schedule: `every=10s,fraction=0.3,mode=abort[,start=5s]` fires at `start`, `start +
/// every`, ... (default `start` = `every`) from the start of the storm phase while inside it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StormSpec {
    /// Period.
    pub every: Duration,
    /// First storm (default: `every`).
    pub start: Option<Duration>,
    /// Fraction of the live connections dropped, 0 to 1.
    pub fraction: f64,
    /// How they are dropped.
    pub mode: StormMode,
}

/// A `--shard` value (or a job index) that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?}: {why}")]
pub struct ParseError {
    /// Which option.
    pub what: &'static str,
    /// The value given.
    pub value: String,
    /// What is wrong.
    pub why: String,
}

impl fmt::Display for StormSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "every={}s,", self.every.as_secs_f64())?;
        if let Some(s) = self.start {
            write!(f, "start={}s,", s.as_secs_f64())?;
        }
        write!(f, "fraction={},mode={}", self.fraction, self.mode)
    }
}

/// The storms of `specs` inside a storm phase of `duration`, in time order (ties in spec order).
pub fn storm_schedule(specs: &[StormSpec], duration: Duration) -> Vec<(Duration, StormSpec)> {
    let mut out = Vec::new();
    for s in specs {
        let mut at = s.start.unwrap_or(s.every);
        while at < duration {
            out.push((at, *s));
            at += s.every;
        }
    }
    out.sort_by_key(|(at, _)| *at);
    out
}

/// `--shard i/n`: this process runs clients `i, i+n, i+2n, ...` of the fleet (0-based `i`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: usize,
    /// Shards in all.
    pub count: usize,
}

impl FromStr for Shard {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Shard, ParseError> {
        let bad = |why: &str| ParseError {
            what: "--shard",
            value: s.to_string(),
            why: why.to_string(),
        };
        let (i, n) = s.split_once('/').ok_or_else(|| bad("expected i/n, e.g. 0/4"))?;
        let index: usize = i.trim().parse().map_err(|_| bad("i is not a number"))?;
        let count: usize = n.trim().parse().map_err(|_| bad("n is not a number"))?;
        if count == 0 || index >= count {
            return Err(bad("need 0 <= i < n"));
        }
        Ok(Shard { index, count })
    }
}

/// The environment variable a Kubernetes Indexed Job sets to each pod's index (0-based), read as the
/// shard index when `--shards N` is given without `--shard`.
pub const JOB_INDEX_VAR: &str = "JOB_COMPLETION_INDEX";

impl Shard {
    /// Shard `index` of `count` from [`JOB_INDEX_VAR`]'s value (`None`: not set), for `--shards
    /// count`; the error names the variable, its value and the range.
    pub fn from_job_index(count: usize, value: Option<&str>) -> Result<Shard, ParseError> {
        let bad = |value: &str, why: String| ParseError {
            what: JOB_INDEX_VAR,
            value: value.to_string(),
            why,
        };
        let Some(v) = value else {
            return Err(bad(
                "",
                format!("not set: --shards {count} needs it or --shard i/{count}"),
            ));
        };
        let index: usize = v
            .trim()
            .parse()
            .map_err(|_| bad(v, format!("not a number (the shard index, 0..{count})")))?;
        if count == 0 || index >= count {
            return Err(bad(v, format!("not in 0..{count} (--shards {count})")));
        }
        Ok(Shard { index, count })
    }

    /// The global client ids of this shard in a fleet of `clients`.
    pub fn ids(&self, clients: usize) -> impl Iterator<Item = usize> + use<> {
        (self.index..clients).step_by(self.count)
    }

    pub(crate) fn local(&self, global: usize) -> Option<usize> {
        let off = global.checked_sub(self.index)?;
        (off % self.count == 0).then_some(off / self.count)
    }
}

/// Where the gateway runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayPlacement {
    /// In this process (two descriptors per client).
    InProcess,
    /// In a child process started as `exe stress --serve-gateway ...` (one descriptor per client in
    /// each process, and the memory of each side measured apart).
    ChildProcess {
        /// The `jt808-harness` binary.
        exe: PathBuf,
    },
    /// An external gateway at this `ws://host:port` URL; no storms, frames counted as they arrive.
    External {
        /// Base URL; each client appends its session path.
        url: String,
    },
}

/// Everything a stress run needs. [`StressOpts::new`] gives the documented defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct StressOpts {
    /// Clients in the fleet.
    pub clients: usize,
    /// Length of the storm phase (after all are connected). Default 30 s.
    pub duration: Duration,
    /// Storm schedules.
    pub storms: Vec<StormSpec>,
    /// Seed of the storm choices and of each client's backoff jitter (mixed with its id).
    pub seed: u64,
    /// Backoff jitter of every client. Default full.
    pub jitter: Jitter,
    /// Where the gateway runs. Default in this process.
    pub gateway: GatewayPlacement,
    /// Run only this shard of the fleet.
    pub shard: Option<Shard>,
    /// One numbered frame per client this often. Default 1 s.
    pub frame_interval: Duration,
    /// Numbered frames per client, then none (`--frames`); `None` (the default): until the drain.
    /// Against a gateway this run does not control (`--url`, `serve --feed stress --frames N`),
    /// the count the clients wait for, so a frame lost after the last one delivered is seen.
    pub frames: Option<u64>,
    /// One command per client this often during the storm phase. Default 5 s.
    pub command_interval: Duration,
    /// Clients started per second. Default 2,000 (tokio's default listen backlog is 1,024; ours is
    /// [`LISTEN_BACKLOG`]).
    pub connect_rate: u32,
    /// Give up waiting for the whole fleet to connect after this. Default 60 s.
    pub connect_wait: Duration,
    /// Quiet time between all connected and the idle-connected memory reading. Default 1 s.
    pub settle: Duration,
    /// Backoff ceiling of the first retry. Default 500 ms.
    pub backoff_min: Duration,
    /// Largest backoff delay. Default 10 s.
    pub backoff_max: Duration,
    /// Client ping interval. Default 2 s.
    pub ping_interval: Duration,
    /// Client idle timeout (how long a stalled connection takes to notice). Default 6 s.
    pub idle_timeout: Duration,
    /// After the storm phase, wait at most this long for every client, frame and confirmation.
    /// Default 30 s.
    pub drain_timeout: Duration,
    /// Resource readings this often. Default 500 ms.
    pub sample_every: Duration,
    /// Clients per loopback source address ([`sys::source_ip`]). Default
    /// [`sys::MAX_CONNECTIONS_PER_SOURCE`].
    pub per_source: usize,
    /// WebSocket read buffer on both sides, bytes. Default 4 KiB.
    pub ws_buffer: usize,
    /// Draw a progress line on the terminal.
    pub progress: bool,
    /// Label of the run in the report.
    pub label: String,
    /// Loopback source addresses to skip: a second run in one process (`--jitter both`) starts on
    /// fresh addresses, so it does not search for free ports among the first run's TIME_WAIT
    /// sockets (the kernel's port search for `bind(ip, 0)` slows down sharply when most ports of an
    /// address are taken). Default 0.
    pub source_offset: usize,
    /// Measure plain tokio-tungstenite pairs with the same buffers instead of the harness: the
    /// floor of memory per idle connection ([`super::raw_pair`]). Default false.
    pub raw_pair: bool,
}

/// Listen backlog of the stress gateway's socket, so a fast ramp does not overflow the SYN queue.
pub const LISTEN_BACKLOG: u32 = 4096;

impl StressOpts {
    /// A run of `clients` clients with the defaults documented on each field.
    pub fn new(clients: usize) -> StressOpts {
        StressOpts {
            clients,
            duration: Duration::from_secs(30),
            storms: Vec::new(),
            seed: 0,
            jitter: Jitter::Full,
            gateway: GatewayPlacement::InProcess,
            shard: None,
            frame_interval: Duration::from_secs(1),
            frames: None,
            command_interval: Duration::from_secs(5),
            connect_rate: 2000,
            connect_wait: Duration::from_secs(60),
            settle: Duration::from_secs(1),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            ping_interval: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(6),
            drain_timeout: Duration::from_secs(30),
            sample_every: Duration::from_millis(500),
            per_source: sys::MAX_CONNECTIONS_PER_SOURCE,
            ws_buffer: 4096,
            progress: false,
            label: "stress".into(),
            source_offset: 0,
            raw_pair: false,
        }
    }

    /// What the stress feed serves each client.
    pub fn feed(&self) -> FeedSettings {
        FeedSettings {
            interval: self.frame_interval,
            frames: self.frames,
        }
    }

    pub(crate) fn global_ids(&self) -> Vec<usize> {
        match self.shard {
            Some(s) => s.ids(self.clients).collect(),
            None => (0..self.clients).collect(),
        }
    }

    pub(crate) fn local_of(&self, global: usize) -> Option<usize> {
        match self.shard {
            Some(s) => s.local(global),
            None => Some(global),
        }
    }

    pub(crate) fn client_config(&self, id: usize) -> ClientConfig {
        ClientConfig {
            ping_interval: self.ping_interval,
            idle_timeout: self.idle_timeout,
            connect_timeout: Duration::from_secs(10),
            backoff: BackoffConfig {
                min: self.backoff_min,
                max: self.backoff_max,
                seed: self.seed ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                jitter: self.jitter,
                ..BackoffConfig::default()
            },
            outbox: OutboxConfig {
                capacity: 256,
                ..OutboxConfig::default()
            },
            ws: WsSettings {
                read_buffer_size: self.ws_buffer,
                write_buffer_size: self.ws_buffer,
                max_message_size: 64 << 10,
                ..WsSettings::default()
            },
            event_capacity: 256,
            ..ClientConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_interleaves_specs_inside_the_phase() {
        let spec = |start: Option<u64>, mode| StormSpec {
            every: Duration::from_secs(10),
            start: start.map(Duration::from_secs),
            fraction: 0.1,
            mode,
        };
        let (a, b) = (spec(None, StormMode::Close), spec(Some(5), StormMode::Abort));
        let got: Vec<(u64, StormMode)> = storm_schedule(&[a, b], Duration::from_secs(30))
            .into_iter()
            .map(|(at, s)| (at.as_secs(), s.mode))
            .collect();
        assert_eq!(
            got,
            [
                (5, StormMode::Abort),
                (10, StormMode::Close),
                (15, StormMode::Abort),
                (20, StormMode::Close),
                (25, StormMode::Abort)
            ]
        );
    }

    #[test]
    fn shards_partition_the_fleet() {
        let shards: Vec<Shard> = (0..3).map(|i| format!("{i}/3").parse().unwrap()).collect();
        let mut all: Vec<usize> = shards.iter().flat_map(|s| s.ids(10)).collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(shards[1].ids(10).collect::<Vec<_>>(), [1, 4, 7]);
        assert_eq!(shards[1].local(7), Some(2));
        assert_eq!(shards[1].local(6), None);
        assert!("3/3".parse::<Shard>().is_err());
        assert!("1-3".parse::<Shard>().is_err());
    }

    #[test]
    fn the_job_index_names_the_variable_when_it_is_wrong() {
        assert_eq!(Shard::from_job_index(4, Some("2")), Ok(Shard { index: 2, count: 4 }));
        for (value, why) in [
            (None, "not set"),
            (Some("two"), "not a number"),
            (Some("4"), "not in 0..4"),
        ] {
            let e = Shard::from_job_index(4, value).unwrap_err().to_string();
            assert!(e.starts_with("JOB_COMPLETION_INDEX") && e.contains(why), "{e}");
        }
    }

    #[test]
    fn storm_modes_have_one_name_and_one_command_each() {
        for (mode, name, cmd) in StormMode::TABLE {
            assert_eq!((mode.name(), mode.command()), (name, cmd));
            assert_eq!(name.parse::<StormMode>(), Ok(mode));
            assert_eq!(serde_json::to_string(&mode).unwrap(), format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<StormMode>(&format!("\"{name}\"")).unwrap(), mode);
        }
        assert!(
            "boom"
                .parse::<StormMode>()
                .unwrap_err()
                .contains("close, abort or stall")
        );
    }
}
