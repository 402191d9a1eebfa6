//! What a stress run gives back: the [`Outcome`] of a run that ran (its figures, the problems that
//! fail it, each side's memory), and the [`StressError`] of one that could not run.

use std::io;

use serde::{Deserialize, Serialize};

use super::metrics::RunFigures;
use super::sys;
use crate::client::ClientError;
use crate::gateway::GatewayError;

/// What [`super::run()`] measured. Its JSON (`--json`, and `outcome.json` in a `--report`
/// directory) is what `stress merge` reads back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// Figures and series, for the table, the JSON and the report.
    pub run: RunFigures,
    /// Things that went wrong outside the figures the gate checks (clients that never connected,
    /// a drain that timed out, full send queues, clients that gave up); each fails the run.
    pub problems: Vec<String>,
    /// Open-file limit of this process.
    pub nofile: Option<sys::NofileLimit>,
    /// With the gateway in a child process: memory per idle connection of each side.
    pub sides: Option<SideMemory>,
}

/// Memory per idle connection, per side (only when the sides are separate processes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideMemory {
    /// Client process: (idle connected RSS − baseline) / connections, bytes.
    pub client_bytes: u64,
    /// Gateway process: the same, bytes.
    pub gateway_bytes: u64,
}

/// Why a stress run could not run (a run that ran and failed its gates is an [`Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum StressError {
    /// Not enough file descriptors for the fleet in one process.
    #[error("{0}. Or run the gateway in its own process (--gateway-process): each process then needs one per client")]
    Fds(#[from] sys::FdShortage),
    /// Not enough file descriptors even with one per client.
    #[error(
        "{clients} clients need about {needed} open files in this process, but the limit is {soft} (hard {hard}); raise it with `ulimit -Hn {needed}` (as root) or LimitNOFILE={needed}"
    )]
    FdsOnePerClient {
        /// Clients.
        clients: usize,
        /// Needed.
        needed: u64,
        /// Soft limit.
        soft: u64,
        /// Hard limit.
        hard: u64,
    },
    /// The operating system refused something (bind, listen, /proc, spawn).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The gateway would not start.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// A client would not start (bad `--url`).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Client `client` needs a loopback source address past 127.255.255.254.
    #[error("client {client}: no loopback source address left at {per_source} clients per address")]
    NoSourceAddress {
        /// Client id.
        client: usize,
        /// Clients per address.
        per_source: usize,
    },
    /// The gateway child process misbehaved.
    #[error("gateway process: {0}")]
    Child(String),
    /// The options contradict each other.
    #[error("{0}")]
    Options(String),
    /// The gateway at `url` serves something other than the stress feed, so nothing could be
    /// counted: frames of another feed would all look lost.
    #[error(
        "the gateway at {url} does not serve the stress feed (first frame: {first}); start it with `jt808-harness serve --feed stress`"
    )]
    NotStressFeed {
        /// The gateway's URL.
        url: String,
        /// The first message that was not the stress feed.
        first: String,
    },
    /// A shard output given to `stress merge` cannot be read or does not fit the others.
    #[error("{path}: {why}")]
    Merge {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> StressError {
    let what = what.into();
    move |source| StressError::Io { what, source }
}
