//! Reconnection at scale: many real clients against the simulated gateway over loopback TCP, through
//! disconnect storms. A map, one concept per file:
//! - [`options`]: what a run is asked to do ([`StressOpts`], storms, shards, where the gateway runs);
//! - [`feed`]: the numbered stress feed, which lives with the gateway's sources
//!   (`serve --feed stress` serves it too) and is re-exported here;
//! - [`clients`]: the fleet's real clients and their command loop;
//! - [`book`]: the bookkeeping of client events while a run goes;
//! - [`side`]: the gateway side (in this process, a child process, or external) and
//!   [`protocol`], the line protocol with the child;
//! - [`run`](mod@run): the orchestration, phase by phase, giving an [`Outcome`] ([`outcome`]),
//!   shown by [`phase`] (a spinner on a terminal, a line per phase off one);
//! - [`metrics`]: the collector (times passed in, no clock) and the [`Figures`] it computes, with
//!   [`figures`] their types and table, [`gate`] the CI [`Gate`];
//! - [`merge`]: shard outputs combined into one fleet's figures (`stress merge`);
//! - [`raw_pair`]: the floor the memory figures are held against (`--raw-pair`): plain
//!   tokio-tungstenite pairs with the same buffers, measured the same way;
//! - [`sys`]: what Linux says about open files and loopback source addresses;
//! - [`report`]: a self-contained HTML report with hand-written SVG plots, and the JSON figures.
//!
//! The command line, `jt808-harness stress` and `stress merge`, is `crate::cli::stress`.

pub mod book;
pub mod clients;
pub mod figures;
pub mod gate;
pub mod merge;
pub mod metrics;
pub mod options;
pub mod outcome;
pub mod output;
pub mod phase;
pub mod protocol;
pub mod raw_pair;
pub mod report;
pub mod run;
pub mod side;
pub mod sys;

/// The stress feed, from the gateway's sources (one place to change when its module moves).
pub use crate::gateway::stress_feed as feed;

pub use options::{GatewayPlacement, Shard, StormMode, StormSpec, StressOpts};
pub use outcome::{Outcome, SideMemory, StressError};
pub use run::run;

pub use metrics::{Figures, Gate, Metrics, RunFigures, Violation};
