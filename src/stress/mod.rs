//! Reconnection at scale: many real clients against the simulated gateway over loopback TCP, through
//! disconnect storms. This part holds the pieces that do not run anything themselves:
//! - [`metrics`]: the collector the orchestration feeds with observations (times passed in, no clock),
//!   the [`metrics::Figures`] it computes and the CI [`metrics::Gate`];
//! - [`sys`]: what Linux says about this process (RSS, CPU time, open-file limit) and loopback source
//!   addresses so one process can hold more connections than one address has ephemeral ports;
//! - [`report`]: a self-contained HTML report with hand-written SVG plots, and the JSON figures.
//!
//! And the pieces that run: [`run`] (the gateway, the fleet of real clients, the storms, the stress
//! feed with numbered frames) and [`cli`] (`jt808-harness stress`).

pub mod cli;
pub mod metrics;
pub mod report;
pub mod run;
pub mod sys;

pub use cli::{StressArgs, run_cli};
pub use run::{Outcome, StormSpec, StressError, StressOpts, run};

pub use metrics::{Figures, Gate, Metrics, RunFigures, StormMode, Violation};
