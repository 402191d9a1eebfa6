//! What the client does with each thing its decoder finds: the event, then for a message delivery
//! confirmation, the requests it answers and the handlers registered for its id; for a stalled or
//! expired packet group the 0x8003 retransmit request when asked for.
//!
//! This is the receive path per message, so it is written not to copy: the decoder hands every
//! [`DecodeEvent`] straight to [`Inbound::on_event`] (no list of them is built), and a decoded
//! [`Message`] moves into its event. It is cloned only when something still needs it after the
//! event (a handler for its id, or a request that may be waiting for it), and no event is built at
//! all once nobody takes events ([`super::Events`] dropped).

use super::events::EventKind;
use super::replies::{Answer, answer_of, final_answer_id, retransmit_requests};
use super::{ClientConfig, RequestError, Shared, State};
use crate::codec::reassembly::Expired;
use crate::codec::{DecodeEvent, Message};

/// The driver's view for handling decoded events: the shared state and the settings, borrowed
/// apart from the decoder that produces the events.
pub(super) struct Inbound<'a> {
    shared: &'a Shared,
    cfg: &'a ClientConfig,
}

impl<'a> Inbound<'a> {
    pub(super) fn new(shared: &'a Shared, cfg: &'a ClientConfig) -> Inbound<'a> {
        Inbound { shared, cfg }
    }

    fn emit(&self, kind: EventKind) {
        let t = self.shared.t_ms();
        self.shared.lock().sink.emit(t, kind);
    }

    /// One thing the decoder found.
    pub(super) fn on_event(&self, e: DecodeEvent) {
        match e {
            DecodeEvent::Message(m) => self.on_message(m),
            DecodeEvent::Rejected(err) => self.emit(EventKind::FrameRejected {
                check: err.check(),
                offset: err.offset(),
                error: err.to_string(),
            }),
            DecodeEvent::Skipped { offset, len } => self.emit(EventKind::Skipped { offset, len }),
            DecodeEvent::UnescapedFlag { offset, at } => self.emit(EventKind::UnescapedFlag { offset, at }),
            DecodeEvent::Packet { key, index, serial } => self.emit(EventKind::Packet {
                msg_id: key.msg_id,
                phone: key.phone,
                serial,
                index,
                total: key.total,
            }),
            DecodeEvent::DuplicatePacket {
                key,
                index,
                serial,
                differs,
                completed,
            } => self.emit(EventKind::DuplicatePacket {
                msg_id: key.msg_id,
                phone: key.phone,
                serial,
                index,
                differs,
                after_complete: completed,
            }),
            DecodeEvent::InvalidPacket { key, index, serial } => self.emit(EventKind::InvalidPacket {
                msg_id: key.msg_id,
                phone: key.phone,
                serial,
                index,
                total: key.total,
            }),
            DecodeEvent::GroupStalled(x) => {
                if self.cfg.retransmit_requests {
                    self.emit(EventKind::GroupStalled(x.clone()));
                    self.request_retransmit(&x);
                } else {
                    self.emit(EventKind::GroupStalled(x));
                }
            }
            DecodeEvent::GroupExpired(x) => {
                // With a retransmit wait the request went out when the group stalled; without
                // one it can only go out now, for a consumer reassembling from `packet` events.
                if self.cfg.retransmit_requests && self.cfg.decoder.reassembly.retransmit_wait.is_zero() {
                    self.emit(EventKind::GroupExpired(x.clone()));
                    self.request_retransmit(&x);
                } else {
                    self.emit(EventKind::GroupExpired(x));
                }
            }
        }
    }

    /// Queues 0x8003 for a stalled (or expired) group's missing packets (fire and forget: the
    /// terminal answers with the packets, not with 0x0001).
    fn request_retransmit(&self, x: &Expired) {
        for (msg, missing) in retransmit_requests(x) {
            let t = self.shared.t_ms();
            let mut s = self.shared.lock();
            match s.outbox.push(&msg) {
                Ok(p) => {
                    s.sink.emit(
                        t,
                        EventKind::RetransmitRequested {
                            phone: x.phone,
                            first_serial: x.first_serial,
                            first_serial_known: x.first_serial_known,
                            missing,
                            serial: p.serial,
                        },
                    );
                }
                Err(full) => s.sink.emit(
                    t,
                    EventKind::QueueFull {
                        msg_id: msg.header.msg_id,
                        phone: msg.header.phone,
                        capacity: full.capacity,
                    },
                ),
            }
        }
    }

    /// A decoded message: its event, then delivery confirmation and request answers, then the
    /// handlers registered for its id.
    fn on_message(&self, m: Message) {
        let handlers = {
            let map = self.shared.handlers.lock().unwrap_or_else(|p| p.into_inner());
            if map.is_empty() {
                None
            } else {
                map.get(&m.header.msg_id).cloned()
            }
        };
        let answer = answer_of(&m);
        let phone = m.header.phone;
        let t = self.shared.t_ms();
        let mut guard = self.shared.lock();
        let s: &mut State = &mut guard;
        // Still needed after its event: by a handler, or by a request this answer may resolve.
        let needed = handlers.is_some() || (answer.is_some() && !s.requests.is_empty());
        let kept = match (needed, s.sink.wants()) {
            (true, true) => {
                s.sink.emit(t, EventKind::Message(Box::new(m.clone())));
                Some(m)
            }
            (true, false) => Some(m),
            (false, true) => {
                s.sink.emit(t, EventKind::Message(Box::new(m)));
                None
            }
            (false, false) => None,
        };
        if let Some(a) = answer {
            if let Some(c) = s.outbox.confirm_answer(&phone, &a) {
                s.sink.emit(
                    t,
                    EventKind::Confirmed {
                        serial: c.serial,
                        msg_id: c.msg_id,
                        phone: c.phone,
                        result: a.result,
                        writes: c.writes,
                    },
                );
            }
            if let Some(m) = &kept {
                answer_requests(s, m, a);
            }
        }
        drop(guard);
        if let Some(m) = kept {
            for h in handlers.into_iter().flatten() {
                h(&m);
            }
        }
    }
}

/// Resolves the requests `m` answers (see [`super::Client::request`]).
fn answer_requests(s: &mut State, m: &Message, a: Answer) {
    let mut i = 0;
    while i < s.requests.len() {
        let r = &s.requests[i];
        if r.phone != m.header.phone || !a.answers_command(r.msg_id, r.serial) {
            i += 1;
            continue;
        }
        let outcome = if m.header.msg_id == final_answer_id(r.msg_id) {
            Some(Ok(m.clone()))
        } else {
            match a.result {
                Some(result) if result != 0 => Some(Err(RequestError::Rejected {
                    serial: r.serial,
                    msg_id: r.msg_id,
                    result,
                })),
                // A success 0x0001 on the way to the final answer (0x9206 -> 0x0001 -> 0x1206).
                _ => None,
            }
        };
        match outcome {
            Some(o) => {
                let r = s.requests.swap_remove(i);
                let _ = r.tx.send(o);
            }
            None => i += 1,
        }
    }
}
