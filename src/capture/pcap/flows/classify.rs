//! Pass 1 of the import, per flow: what its first bytes make it. An HTTP upgrade request and a
//! `101` answer make a WebSocket flow, whose gateway messages go through the envelope-prefix probe;
//! a flow on a platform port that carries a JT808 frame from the terminal is raw JT808 over TCP;
//! anything else is skipped, with the reason the report lists. Kept apart from the flow table
//! (the parent module) because it is the one place that decides, and pass 2 only follows.

use super::super::websocket::{Http, WsEvent, WsReader, may_be_get, parse_request, parse_response};
use super::{Role, Settings, State};
use crate::capture::format::Payload;
use crate::capture::prefix::PrefixProbe;
use crate::codec::{Deframer, Item};

/// Why a raw TCP candidate was not imported.
pub(super) const NO_FRAME: &str = "no JT808 frame from the terminal";

pub(super) fn skip_other() -> Role {
    Role::Skip {
        listed: None,
        reason: String::new(),
    }
}

/// Pass 1, the flow's first bytes: an upgrade request and its answer make it WebSocket; anything
/// else makes it a raw TCP candidate (by port) or another flow. Returns the next state.
pub(super) fn classify(
    state: &mut State,
    port_dir: Option<usize>,
    d: usize,
    bytes: &[u8],
    set: &Settings,
) -> Option<State> {
    let not_ws = |first: usize, head: &[u8]| -> State {
        let Some(g) = port_dir else {
            return State::Done(skip_other());
        };
        let mut deframer = Box::new(Deframer::default());
        let mut found = false;
        let mut feed = |b: &[u8]| deframer.push(b, |item| found |= matches!(item, Item::Frame(_)));
        if first == g {
            feed(head);
        }
        if d == g && first != d {
            feed(bytes);
        }
        if found {
            State::Done(Role::Raw { gateway_dir: g })
        } else {
            State::RawProbe {
                gateway_dir: g,
                deframer,
            }
        }
    };
    match state {
        State::Undecided { first, head } => {
            let first = *first.get_or_insert(d);
            if first != d {
                // The other side spoke before a whole upgrade request came: not WebSocket.
                return Some(not_ws(first, head));
            }
            head.extend_from_slice(bytes);
            match parse_request(head) {
                Http::Partial if head.len() <= set.max_http_header && may_be_get(head) => None,
                Http::Upgrade { len, .. } => Some(State::AwaitResponse {
                    client_dir: d,
                    request_len: len,
                    head: Vec::new(),
                }),
                _ => Some(not_ws(first, &std::mem::take(head))),
            }
        }
        State::AwaitResponse {
            client_dir,
            request_len,
            head,
        } if d != *client_dir => {
            head.extend_from_slice(bytes);
            answer(*client_dir, *request_len, head, set)
        }
        _ => None,
    }
}

/// Pass 1, the server's bytes after an upgrade request: `101` makes the flow WebSocket (and its
/// frames after the answer go to the prefix probe); anything else skips it, saying why.
fn answer(client_dir: usize, request_len: usize, head: &[u8], set: &Settings) -> Option<State> {
    let server = 1 - client_dir;
    let refused = |reason: String| {
        Some(State::Done(Role::Skip {
            listed: Some(server),
            reason,
        }))
    };
    match parse_response(head) {
        Http::Partial if head.len() <= set.max_http_header => None,
        Http::Upgrade {
            status: 101,
            deflate: true,
            ..
        } => refused("permessage-deflate was negotiated; compressed frames are not decoded".into()),
        Http::Upgrade { status: 101, len, .. } => {
            let mut header_len = [0; 2];
            header_len[client_dir] = request_len;
            header_len[server] = len;
            let mut next = State::WsProbe {
                client_dir,
                header_len,
                reader: Box::new(WsReader::new(false, set.limits, len as u64)),
                probe: Box::new(PrefixProbe::default()),
            };
            probe_ws(&mut next, server, head.get(len..).unwrap_or(&[]), set);
            Some(next)
        }
        Http::Upgrade { status, .. } => refused(format!("WebSocket upgrade refused: HTTP {status}")),
        Http::Partial => refused(format!(
            "no complete answer to the upgrade request within max_http_header_bytes ({})",
            set.max_http_header
        )),
        Http::Not => refused("the upgrade request was not answered with HTTP".into()),
    }
}

/// Pass 1, WebSocket: binary gateway messages into the prefix probe until it has enough.
pub(super) fn probe_ws(state: &mut State, d: usize, bytes: &[u8], set: &Settings) {
    let State::WsProbe {
        client_dir,
        reader,
        probe,
        ..
    } = state
    else {
        return;
    };
    if d == *client_dir || bytes.is_empty() {
        return;
    }
    let budget = set.probe_messages;
    reader.push(bytes, &mut |e| {
        if let WsEvent::Message(Payload::Binary(b)) = e
            && probe.messages() < budget
        {
            probe.push(1, &b);
        }
    });
    if probe.messages() >= budget || reader.failed() {
        let role = decide(std::mem::replace(state, State::Done(skip_other())));
        *state = State::Done(role);
    }
}

/// A pass-1 state at the end: what the flow is.
pub(super) fn decide(state: State) -> Role {
    let listed = |g: usize, reason: &str| Role::Skip {
        listed: Some(g),
        reason: reason.to_string(),
    };
    match state {
        State::Done(role) => role,
        State::Undecided { .. } => skip_other(),
        State::RawProbe { gateway_dir, .. } => listed(gateway_dir, NO_FRAME),
        State::AwaitResponse { client_dir, .. } => {
            listed(1 - client_dir, "the WebSocket upgrade request was never answered")
        }
        State::WsProbe {
            client_dir,
            header_len,
            probe,
            ..
        } => {
            let finding = probe.finding();
            Role::WebSocket {
                client_dir,
                header_len,
                prefix: finding.prefix_len,
                probed: finding.messages,
            }
        }
        State::WriteRaw { .. } | State::WriteWs(_) => skip_other(),
    }
}
