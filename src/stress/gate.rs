//! The CI gate of a stress run: thresholds ([`Gate`]) and what a run's [`Figures`] broke
//! ([`Violation`]). The same gate judges one run and a merged fleet.

use std::time::Duration;

use super::figures::{Figures, fmt_bytes, fmt_duration, fmt_offset};

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
