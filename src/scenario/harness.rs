//! What the harness itself did during a run: the scenario's commands and what came of them, a
//! capture that could not be read, a conversation replay's report. Typed, so checks read them
//! like the gateway's and the client's events; their serde form is the transcript's `harness` line.

use std::time::Duration;

use serde::Serialize;

use crate::codec::body::hex_id;
use crate::gateway::converse::ConversationReport;

/// One thing the harness did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HarnessEvent {
    /// A `request = true` command was issued; its answer is awaited.
    Request {
        /// The command's id.
        #[serde(with = "hex_id")]
        msg_id: u16,
        /// The terminal, as the scenario wrote it.
        phone: String,
    },
    /// A request's answer arrived.
    Answered {
        /// The command's id.
        #[serde(with = "hex_id")]
        msg_id: u16,
        /// The answer's id.
        #[serde(with = "hex_id")]
        answer: u16,
        /// The answer's serial.
        serial: u16,
    },
    /// A request got no answer, or could not be sent.
    RequestFailed {
        /// The command's id.
        #[serde(with = "hex_id")]
        msg_id: u16,
        /// Why.
        error: String,
    },
    /// A command was queued for sending.
    Command {
        /// Its id.
        #[serde(with = "hex_id")]
        msg_id: u16,
        /// The terminal, as the scenario wrote it.
        phone: String,
        /// The serial the client gave it.
        serial: u16,
    },
    /// The client refused a command (its send queue was full).
    CommandRefused {
        /// Its id.
        #[serde(with = "hex_id")]
        msg_id: u16,
        /// Why.
        error: String,
    },
    /// A replayed capture could not be read to its end.
    CaptureError {
        /// What went wrong, naming `file:line`.
        error: String,
        /// Whether the feed ended there.
        ended: bool,
    },
    /// A conversation replay's report on one session, at the end of the run.
    Conversation {
        /// The session (request path).
        session: String,
        /// What it answered and what it never was asked.
        #[serde(flatten)]
        report: ConversationReport,
    },
}

/// A [`HarnessEvent`] and when it happened.
#[derive(Debug, Clone, PartialEq)]
pub struct HarnessRecord {
    /// Virtual time since the run started.
    pub t: Duration,
    /// Causal order stamp ([`crate::transcript::next_seq`]).
    pub seq: u64,
    /// What happened.
    pub event: HarnessEvent,
}
