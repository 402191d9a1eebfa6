//! `disconnect`: the link dies. A clean WebSocket close with a code, an abrupt TCP close (no close
//! frame: the client sees a reset or EOF), or an abrupt close in the middle of a frame (the first
//! part of a frame is sent, then the TCP connection is dropped: the client must discard the stump
//! and not glue it to the next connection's bytes, JT808.md §1).
//!
//! The message the trigger fires on is not delivered (the link died as it was about to carry it);
//! the log says how many bytes were lost. `after = K` therefore means "K messages get through".
//! With only `after_ms` set, the disconnect happens at that instant even if no message passes.
//! A disconnect fires at most once per connection (the connection is gone).

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::fault::{Cx, Fault, FaultType, Msg, Out};
use super::frames;
use super::outcome::Outcome;

/// How the link dies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectMode {
    /// WebSocket close frame with `code` and `reason`.
    #[default]
    Close,
    /// TCP dropped, no close frame.
    Abort,
    /// The message is sent up to a point inside one of its frames, then TCP is dropped.
    MidFrame,
}

/// `disconnect` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disconnect {
    /// close (default), abort or mid_frame.
    #[serde(default)]
    pub mode: DisconnectMode,
    /// Close code for `close` (default 1001 "going away", RFC 6455 §7.4.1, what a gateway restart
    /// sends).
    #[serde(default = "going_away")]
    pub code: u16,
    /// Close reason for `close`.
    #[serde(default = "reason")]
    pub reason: String,
    /// For `mid_frame`: bytes of the first frame to send, counting its opening 0x7E (1..len-1);
    /// default random within the frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
}

fn going_away() -> u16 {
    1001
}
fn reason() -> String {
    "fault injected".into()
}

impl FaultType for Disconnect {
    fn validate(&self) -> Result<(), String> {
        // RFC 6455 §7.4.1/7.4.2: 1005, 1006 and 1015 must never be sent in a close frame.
        if self.mode == DisconnectMode::Close
            && (!(1000..=4999).contains(&self.code) || matches!(self.code, 1005 | 1006 | 1015))
        {
            return Err(format!("close code {} cannot be sent (RFC 6455 §7.4)", self.code));
        }
        if self.reason.len() > 123 {
            return Err("`reason` must fit a close frame (123 bytes, RFC 6455 §5.5)".into());
        }
        if self.offset == Some(0) {
            return Err("`offset` must be at least 1 (the opening 0x7E)".into());
        }
        Ok(())
    }

    fn build(&self) -> Option<Box<dyn Fault>> {
        Some(Box::new(DisconnectState::new(self.clone())))
    }

    fn acts_on_time(&self) -> bool {
        true
    }
}

/// Per-connection state.
#[derive(Debug)]
pub(crate) struct DisconnectState {
    cfg: Disconnect,
    done: bool,
}

impl DisconnectState {
    pub fn new(cfg: Disconnect) -> Self {
        DisconnectState { cfg, done: false }
    }

    fn end(&mut self, cx: &mut Cx<'_>, idx: Option<u64>, lost: usize) -> Vec<Out> {
        self.done = true;
        match self.cfg.mode {
            DisconnectMode::Close => {
                cx.record(
                    idx,
                    Outcome::Close,
                    Vec::new(),
                    format!("code {} {:?}; {lost} bytes not sent", self.cfg.code, self.cfg.reason),
                );
                vec![Out::Close {
                    code: self.cfg.code,
                    reason: self.cfg.reason.clone(),
                }]
            }
            _ => {
                cx.record(idx, Outcome::Abort, Vec::new(), format!("{lost} bytes not sent"));
                vec![Out::Abort]
            }
        }
    }
}

impl Fault for DisconnectState {
    fn on_message(&mut self, m: Msg, cx: &mut Cx<'_>) -> Vec<Out> {
        if self.done || !cx.fire_msg(&m) {
            return vec![Out::Send(m)];
        }
        if self.cfg.mode != DisconnectMode::MidFrame {
            return self.end(cx, Some(m.idx), m.bytes.len());
        }
        self.done = true;
        let located = frames::locate(&m.bytes, cx.prefix_len);
        let Some(fr) = located.first() else {
            cx.record(
                Some(m.idx),
                Outcome::Abort,
                Vec::new(),
                format!("no frame to cut; {} bytes not sent", m.bytes.len()),
            );
            return vec![Out::Abort];
        };
        let len = fr.end - fr.start;
        let keep = match self.cfg.offset {
            Some(o) if o < len => o,
            _ => cx.rng.random_range(1..len - 1),
        };
        let cut = fr.start + keep;
        cx.record(
            Some(m.idx),
            Outcome::MidFrame,
            vec![fr.start, cut],
            format!(
                "{}: {keep} of {len} bytes sent, then abort; {} bytes not sent",
                fr.describe(),
                m.bytes.len() - cut
            ),
        );
        vec![
            Out::Send(Msg {
                bytes: m.bytes[..cut].to_vec(),
                ..m
            }),
            Out::Abort,
        ]
    }

    fn on_time(&mut self, cx: &mut Cx<'_>) -> Vec<Out> {
        if self.done || !cx.fire_time() {
            return Vec::new();
        }
        self.end(cx, None, 0)
    }
}
