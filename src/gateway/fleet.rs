//! A generated fleet of terminals (settings; the generator lands with the typed bodies).

use serde::{Deserialize, Serialize};

/// Which header versions the fleet's terminals use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FleetVersion {
    /// Every terminal 2013.
    #[default]
    #[serde(rename = "2013")]
    V2013,
    /// Every terminal 2019.
    #[serde(rename = "2019")]
    V2019,
    /// Alternating 2013 and 2019.
    Mixed,
}

/// Relative weights of the message kinds a fleet terminal sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mix {
    /// 0x0200 location report with additional items.
    pub location: u32,
    /// 0x0002 heartbeat.
    pub heartbeat: u32,
    /// 0x0704 batch location upload.
    pub batch: u32,
    /// 0x0801 multimedia upload, sub-packaged.
    pub media: u32,
    /// 0x1205 resource list, sub-packaged.
    pub av_list: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            location: 8,
            heartbeat: 2,
            batch: 1,
            media: 1,
            av_list: 0,
        }
    }
}

/// A generated fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// Number of terminals. Default 2.
    pub terminals: u32,
    /// Phone of the first terminal; the others count up from it. Default 13800000001.
    pub first_phone: u64,
    /// Header versions. Default 2013.
    pub version: FleetVersion,
    /// Messages each terminal sends (0 = unlimited). Default 10.
    pub messages: u32,
    /// Interval between one terminal's messages, ms. Default 1000.
    pub interval_ms: u64,
    /// Message kinds and weights.
    pub mix: Mix,
    /// Body bytes per packet of sub-packaged messages. Default 512.
    pub packet_size: usize,
    /// Several frames per WebSocket message: how many at most (1 = one frame per message). Default 1.
    pub frames_per_message: usize,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            terminals: 2,
            first_phone: 13_800_000_001,
            version: FleetVersion::V2013,
            messages: 10,
            interval_ms: 1000,
            mix: Mix::default(),
            packet_size: 512,
            frames_per_message: 1,
        }
    }
}
