//! `refuse`: the WebSocket handshake is answered with an HTTP error instead of 101, as a gateway
//! behind a load balancer does while it restarts. Evaluated in [`super::Pipeline::on_connect`]:
//! the trigger counts handshakes across the run (`after = 1, count = 2`: the first handshake
//! succeeds, the next two are refused), `after_ms`/`until_ms` are measured from time 0.

use serde::{Deserialize, Serialize};

use super::fault::{Fault, FaultType};
use super::limits::{MAX_COUNT, check};

/// `refuse` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refuse {
    /// How many handshakes to refuse in the run (default 1).
    #[serde(default = "one")]
    pub count: u64,
    /// HTTP status of the refusal (default 503 Service Unavailable).
    #[serde(default = "unavailable")]
    pub status: u16,
}

fn one() -> u64 {
    1
}
fn unavailable() -> u16 {
    503
}

impl FaultType for Refuse {
    fn validate(&self) -> Result<(), String> {
        check("status", self.status, 400..=599).map_err(|e| format!("{e} (an HTTP error)"))?;
        check("count", self.count, 1..=MAX_COUNT)
    }

    /// Handshake-only: [`super::Pipeline::on_connect`] evaluates it; no per-connection state.
    fn build(&self) -> Option<Box<dyn Fault>> {
        None
    }
}
