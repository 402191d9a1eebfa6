//! The gateway's log: one [`GatewayRecord`] per thing that happened on a connection, with a typed
//! [`GatewayEvent`]. Checks read these types; transcripts and `serve` print their serde form,
//! which is the log's JSON line (one object, unique keys).

use serde::Serialize;

use super::describe::FrameDesc;
use crate::codec::Message;
use crate::faults::{Direction, FaultRecord, Outcome};

/// Who closed a connection, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum Closed {
    /// The client sent a close frame.
    ClientClose {
        /// Close code.
        code: Option<u16>,
    },
    /// The client's stream ended without a close frame, or failed.
    ClientGone {
        /// What the stream said.
        why: String,
    },
    /// A fault closed it cleanly.
    GatewayClose {
        /// Close code.
        code: u16,
    },
    /// A fault dropped it without a close frame.
    GatewayAbort,
    /// The replayed capture's connection ended here ([`replay::ReplayOptions::keep_connections`]):
    /// closed with the recorded code, or dropped when the recording shows none.
    Recorded {
        /// Close code sent.
        code: Option<u16>,
    },
    /// A newer connection of the same session replaced it (a stalled connection the client gave up).
    Superseded,
    /// A storm (stress) dropped it, or (`stall`) silenced it: logged when it happens, and the
    /// connection's real end is logged later.
    Storm {
        /// What the storm ordered.
        mode: ConnCommand,
    },
    /// The control API (`POST /connections/{id}/...`, `POST /storm`) closed or dropped it, or
    /// (`stall`) silenced it, for `for_ms` when given: logged when it happens; after a stall the
    /// connection's real end is logged later. The `control` record before it says which request.
    Api {
        /// What was ordered.
        mode: ConnCommand,
        /// How long a stall lasts; none: until the connection ends.
        #[serde(skip_serializing_if = "Option::is_none")]
        for_ms: Option<u64>,
    },
    /// The gateway shut down.
    Shutdown,
}

/// One line of the gateway log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GatewayRecord {
    /// Virtual time since the gateway started, µs.
    pub t_us: u64,
    /// Connection id (1, 2, ... in accept order).
    pub conn: u64,
    /// Causal order stamp ([`crate::transcript::next_seq`]); not serialised.
    #[serde(skip)]
    pub seq: u64,
    /// What happened.
    #[serde(flatten)]
    pub event: GatewayEvent,
}

/// What the gateway logs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GatewayEvent {
    /// A handshake completed.
    Accepted {
        /// Session (request path).
        session: String,
    },
    /// The handshake was refused: by a `refuse` fault (no reason: the fault record says it), or
    /// by a limit (the reason names it).
    Refused {
        /// HTTP status sent.
        status: u16,
        /// Why, when no fault decided it.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A session no connection held for [`GatewayConfig::session_idle_ms`] was forgotten: a
    /// client connecting on its path again starts a new feed.
    SessionExpired {
        /// Session (request path).
        session: String,
        /// How long it had been idle, ms.
        idle_ms: u64,
    },
    /// The handshake failed or timed out.
    HandshakeFailed {
        /// Why.
        why: String,
    },
    /// A connection ended.
    Closed(Closed),
    /// A feed or reply message entered the fault pipeline towards the client.
    Offered {
        /// Message index in the session (1-based).
        index: u64,
        /// The frames in it: `0x0200 13800000001 #5` (`[i/n]` for a packet).
        frames: Vec<FrameDesc>,
    },
    /// A fault decision. Serialised without the record's own `t_us` and `conn`: the
    /// [`GatewayRecord`] around it carries them, and a log line must not repeat a key.
    #[serde(serialize_with = "fault_fields")]
    Fault(FaultRecord),
    /// A message the client sent, as the terminal decoded it.
    Received {
        /// The message.
        message: Message,
    },
    /// Bytes from the client that were not a valid frame.
    ReceivedRejected {
        /// Why.
        error: String,
    },
    /// A change made through the control API ([`super::control`]); `conn` 0 unless it targets
    /// one connection.
    Control(super::control::ControlEvent),
    /// Messages scheduled for the client that were still in flight when the connection ended.
    LostInFlight {
        /// How many WebSocket messages.
        messages: usize,
        /// How many bytes.
        bytes: usize,
        /// The frames in them.
        frames: Vec<FrameDesc>,
    },
}

/// A [`FaultRecord`]'s fields but its time and connection, which its [`GatewayRecord`] holds.
#[derive(Serialize)]
struct FaultFields<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    dir: Option<Direction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    msg: Option<u64>,
    fault: &'a str,
    what: Outcome,
    #[serde(skip_serializing_if = "<[usize]>::is_empty")]
    offsets: &'a [usize],
    detail: &'a str,
}

fn fault_fields<S: serde::Serializer>(r: &FaultRecord, s: S) -> Result<S::Ok, S::Error> {
    FaultFields {
        dir: r.dir,
        msg: r.msg,
        fault: &r.fault,
        what: r.what,
        offsets: &r.offsets,
        detail: &r.detail,
    }
    .serialize(s)
}

/// Orders sent to live connections from outside (stress storms, the control API). Serialised as
/// the storm's mode in the log (`close`, `abort`, `stall`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnCommand {
    /// Close cleanly (1001 going away).
    Close,
    /// Drop without a close frame.
    Abort,
    /// Go silent, socket open, until the client gives up (or for a while: [`Order::for_ms`]).
    Stall,
}

/// Who gives an [`Order`]: what its `closed` record's `how` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderedBy {
    /// A stress run's storm (`how: storm`).
    Storm,
    /// The control API (`how: api`).
    Api,
}

/// An order to one live connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    /// What to do.
    pub command: ConnCommand,
    /// Who asks.
    pub by: OrderedBy,
    /// A stall's length, ms; `None`: until the connection ends. Only the API gives one.
    pub for_ms: Option<u64>,
}

impl Order {
    /// A stress storm's order.
    pub fn storm(command: ConnCommand) -> Order {
        Order {
            command,
            by: OrderedBy::Storm,
            for_ms: None,
        }
    }

    /// How the connection's log names what this order did to it.
    pub fn closed(&self) -> Closed {
        let mode = self.command;
        match self.by {
            OrderedBy::Storm => Closed::Storm { mode },
            OrderedBy::Api => Closed::Api {
                mode,
                for_ms: self.for_ms.filter(|_| mode == ConnCommand::Stall),
            },
        }
    }

    /// The reason of the close frame a `close` sends.
    pub fn close_reason(&self) -> &'static str {
        match self.by {
            OrderedBy::Storm => "storm",
            OrderedBy::Api => "control api",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A storm's order is typed, and logged as the mode string the log always had.
    #[test]
    fn a_storm_close_is_logged_with_its_mode() {
        let e = GatewayEvent::Closed(Closed::Storm {
            mode: ConnCommand::Stall,
        });
        assert_eq!(
            serde_json::to_string(&e).expect("serialises"),
            r#"{"type":"closed","how":"storm","mode":"stall"}"#
        );
    }

    /// An order of the control API is logged as such, a stall with its length.
    #[test]
    fn an_api_order_is_logged_as_api_with_a_stall_length() {
        let stall = Order {
            command: ConnCommand::Stall,
            by: OrderedBy::Api,
            for_ms: Some(250),
        };
        let abort = Order {
            command: ConnCommand::Abort,
            ..stall
        };
        let line = |o: Order| serde_json::to_string(&GatewayEvent::Closed(o.closed())).expect("serialises");
        assert_eq!(
            line(stall),
            r#"{"type":"closed","how":"api","mode":"stall","for_ms":250}"#
        );
        assert_eq!(line(abort), r#"{"type":"closed","how":"api","mode":"abort"}"#);
        assert_eq!(
            line(Order::storm(ConnCommand::Abort)),
            r#"{"type":"closed","how":"storm","mode":"abort"}"#
        );
    }
}
