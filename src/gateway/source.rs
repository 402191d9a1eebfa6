//! Where a gateway's frames come from: a generated fleet or a capture replayed on its own timeline.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::fleet::FleetConfig;

/// The source of a gateway session's feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceSpec {
    /// A generated fleet of terminals.
    Fleet(FleetConfig),
    /// A capture replayed on its own timeline.
    Capture(CaptureSource),
}

impl Default for SourceSpec {
    fn default() -> Self {
        SourceSpec::Fleet(FleetConfig::default())
    }
}

/// Replay of a capture file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureSource {
    /// The capture (JSON Lines, see [`crate::capture`]); relative paths are from the working directory.
    pub path: PathBuf,
    /// Playback speed: 1.0 is the capture's own timing, 10.0 ten times faster, 0 as fast as
    /// possible. Default 1.0.
    #[serde(default = "one")]
    pub speed: f64,
    /// How many times to play it (0 = forever). Default 1.
    #[serde(default = "one_u32")]
    pub loops: u32,
}

fn one() -> f64 {
    1.0
}
fn one_u32() -> u32 {
    1
}
