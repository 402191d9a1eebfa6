//! Fault catalogue (interface stub; the catalogue lands with the faults work).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which way a message crosses the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Gateway to client.
    ToClient,
    /// Client to gateway.
    ToGateway,
}

/// One fault's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// Fault type.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A bad fault configuration.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FaultSpecError(pub String);

/// Accept or refuse a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectDecision {
    /// Accept.
    Accept,
    /// Refuse with an HTTP status.
    Refuse {
        /// Status.
        status: u16,
    },
}

/// What the gateway does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Deliver bytes at an absolute virtual time.
    Send {
        /// Direction.
        dir: Direction,
        /// When.
        at: Duration,
        /// Bytes.
        bytes: Vec<u8>,
    },
    /// Clean close.
    Close {
        /// Code.
        code: u16,
        /// Reason.
        reason: String,
    },
    /// Abrupt close.
    Abort,
    /// Go silent.
    Stall {
        /// Until.
        until: Option<Duration>,
    },
}

/// A logged decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultRecord {
    /// Fault name.
    pub fault: String,
}

/// The chain of faults.
#[derive(Debug, Default)]
pub struct Pipeline {}

impl Pipeline {
    /// Builds the chain.
    pub fn new(specs: &[FaultSpec], seed: u64, prefix_len: usize) -> Result<Pipeline, FaultSpecError> {
        let _ = (specs, seed, prefix_len);
        Ok(Pipeline {})
    }
    /// Handshake decision.
    pub fn on_connect(&mut self, conn: u64, now: Duration) -> ConnectDecision {
        let _ = (conn, now);
        ConnectDecision::Accept
    }
    /// One message.
    pub fn on_message(&mut self, conn: u64, dir: Direction, msg: Vec<u8>, now: Duration) -> Vec<Action> {
        let _ = conn;
        vec![Action::Send {
            dir,
            at: now,
            bytes: msg,
        }]
    }
    /// Time passed.
    pub fn on_tick(&mut self, conn: u64, now: Duration) -> Vec<Action> {
        let _ = (conn, now);
        Vec::new()
    }
    /// Next timer.
    pub fn next_deadline(&self, conn: u64) -> Option<Duration> {
        let _ = conn;
        None
    }
    /// Connection ended.
    pub fn on_close(&mut self, conn: u64, now: Duration) -> Vec<Action> {
        let _ = (conn, now);
        Vec::new()
    }
    /// Drains the log.
    pub fn take_log(&mut self) -> Vec<FaultRecord> {
        Vec::new()
    }
}
