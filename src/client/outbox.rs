//! The send queue: explicit capacity, serial numbers, delivery confirmed by the terminal, re-sent
//! after a reconnect. A plain struct: no async, no clock reads (`now` comes in), no I/O.
//!
//! Every message handed to [`Outbox::push`] gets the next serial (a wrapping `u16`, JT/T 808-2019
//! §4.4.3: "按发送顺序从 0 开始循环累加"), is encoded and escaped at once (split into packets
//! when the body is longer than the packet size, each packet with its own serial, JT808.md §4) and
//! waits in one sequence ordered by `push`. The driver writes entries strictly in that order, so
//! after a reconnect whatever waited is flushed before anything pushed later.
//!
//! A platform command ([`needs_confirmation`]) stays held after it was written until the
//! terminal's 0x0001 general response naming its serial, or its own answer
//! ([`super::replies::ANSWERS`]: 0x0104 for 0x8104/0x8106, 0x0201 for 0x8201, 0x1205 for 0x9205,
//! ...), arrives. When the connection dies first, or no answer comes within the confirmation
//! timeout, it is written again: at-least-once delivery. Re-sends after a confirmation timeout are
//! bounded by [`OutboxConfig::max_resends`]; re-sends after a reconnect are not (a dead connection
//! says nothing about the terminal, and a disconnect storm must not cost commands).
//!
//! **Re-sends keep the original serial and bytes.** JT/T 808 gives the receiver only the serial to
//! recognise a repeat by; a terminal that already executed the command (its answer was what got
//! lost) can then answer again without acting twice, and the 0x0001 that finally arrives names a
//! serial this outbox still holds. A fresh serial would turn every re-send into a new command.
//!
//! The confirmation timeout follows the JT/T 808 rule for TCP retransmission (terminal parameters
//! 0x0002 and 0x0003): the `n`-th re-send waits `T * (n + 1)`, where `T` is
//! [`OutboxConfig::confirm_timeout`].
//!
//! Capacity counts every entry held, waiting or awaiting confirmation, so memory is bounded even
//! when a terminal never answers. A full outbox is an error to the caller ([`OutboxFull`]), never a
//! silent drop.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::codec::{Message, Phone};

/// Outbox settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// Most messages held at once, waiting or awaiting confirmation. Default 1024.
    pub capacity: usize,
    /// Wait for a command's confirmation before the first re-send on a live connection; the
    /// `n`-th re-send waits `n + 1` times this. Default 10 s.
    #[serde(with = "crate::codec::reassembly::duration_ms", rename = "confirm_timeout_ms")]
    pub confirm_timeout: Duration,
    /// Re-sends of one command after confirmation timeouts before it is given up and reported.
    /// Default 3.
    pub max_resends: u32,
    /// Body bytes per packet when a body must be split (at most 1023, the 10-bit length field).
    /// Default 1023.
    pub packet_size: usize,
    /// Serial of the first message. Default 0.
    pub first_serial: u16,
    /// Most commands written and not yet confirmed at once (a send window). Later messages wait
    /// behind, in order. Default 16. Without a window a long queue flushed into a connection
    /// that then dies must be re-sent whole, and answers already on their way are lost with it.
    pub max_in_flight: usize,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            capacity: 1024,
            confirm_timeout: Duration::from_secs(10),
            max_resends: 3,
            packet_size: crate::codec::frame::MAX_BODY_LEN,
            first_serial: 0,
            max_in_flight: 16,
        }
    }
}

/// The outbox was full; the message was not taken. The caller decides: wait, drop, or fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("send queue full: {held} messages held (capacity {capacity})")]
pub struct OutboxFull {
    /// Messages held.
    pub held: usize,
    /// The capacity ([`OutboxConfig::capacity`]).
    pub capacity: usize,
}

/// Whether the terminal is expected to confirm `msg_id`, and so whether the outbox holds it after
/// writing. Platform messages (0x8000-0x9FFF) are commands answered by 0x0001 or their own answer
/// ([`super::replies::ANSWERS`]), except those that are themselves answers or are answered
/// otherwise: 0x8001 platform general response, 0x8003 retransmit request (answered by the
/// packets), 0x8004 server time (the answer to the terminal's 0x0004), 0x8100 register response,
/// 0x8800 multimedia upload response.
pub fn needs_confirmation(msg_id: u16) -> bool {
    matches!(msg_id, 0x8000..=0x9FFF) && !matches!(msg_id, 0x8001 | 0x8003 | 0x8004 | 0x8100 | 0x8800)
}

/// Why a held command is written again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResendReason {
    /// The connection it was written on died before its confirmation came.
    Reconnect,
    /// Its confirmation did not come within the timeout.
    Timeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Never written.
    Waiting,
    /// Written, to be written again.
    Resend(ResendReason),
    /// Written; confirmation due by `deadline`.
    InFlight { deadline: Duration },
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    serial: u16,
    msg_id: u16,
    phone: Phone,
    /// One escaped wire frame per packet; `Bytes` so a re-send shares the bytes.
    frames: Vec<Bytes>,
    /// Serials of the packets (one entry for a single-frame message).
    serials: Vec<u16>,
    confirm: bool,
    state: State,
    /// Times written.
    writes: u32,
    /// Confirmation timeouts so far (re-sends after a reconnect do not count: see `requeue`).
    timeouts: u32,
}

/// What [`Outbox::push`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The message serial (the first packet's).
    pub serial: u16,
    /// Packets it was split into.
    pub packets: usize,
    /// Messages held now, this one included.
    pub held: usize,
}

/// One message to write now, from [`Outbox::next_due`]. Write its frames, then call
/// [`Outbox::written`] with its `seq`; if the write fails, do not (the entry stays due).
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Position in the outbox's order.
    pub seq: u64,
    /// Message serial.
    pub serial: u16,
    /// Message id.
    pub msg_id: u16,
    /// Addressed terminal.
    pub phone: Phone,
    /// Escaped wire frames, one per packet.
    pub frames: Vec<Bytes>,
    /// Set when this is a re-send: why, and which write this is (2 = first re-send).
    pub resend: Option<(ResendReason, u32)>,
    /// Whether it will be held for confirmation after this write.
    pub awaits_confirmation: bool,
}

/// A command the terminal confirmed, from [`Outbox::confirm`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    /// Message serial.
    pub serial: u16,
    /// Message id.
    pub msg_id: u16,
    /// Terminal.
    pub phone: Phone,
    /// Times it was written.
    pub writes: u32,
}

/// A command given up after [`OutboxConfig::max_resends`] timed-out re-sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GaveUp {
    /// Message serial.
    pub serial: u16,
    /// Message id.
    pub msg_id: u16,
    /// Terminal.
    pub phone: Phone,
    /// Times it was written.
    pub writes: u32,
}

/// The send queue. See the module doc.
#[derive(Debug)]
pub struct Outbox {
    cfg: OutboxConfig,
    entries: VecDeque<Entry>,
    next_serial: u16,
    next_seq: u64,
}

impl Outbox {
    /// An empty outbox.
    pub fn new(cfg: OutboxConfig) -> Outbox {
        Outbox {
            next_serial: cfg.first_serial,
            cfg,
            entries: VecDeque::new(),
            next_seq: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &OutboxConfig {
        &self.cfg
    }

    /// Messages held (waiting, due for re-send, or awaiting confirmation).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Messages waiting to be written (first writes and re-sends).
    pub fn due(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| !matches!(e.state, State::InFlight { .. }))
            .count()
    }

    /// Commands written and awaiting confirmation.
    pub fn in_flight(&self) -> usize {
        self.entries.len() - self.due()
    }

    /// The serial the next message will get.
    pub fn peek_serial(&self) -> u16 {
        self.next_serial
    }

    /// Takes a message: assigns its serial (its header's serial is ignored), encodes it, and
    /// queues it behind everything held. Fails without side effects when the outbox is full.
    pub fn push(&mut self, msg: &Message) -> Result<Pushed, OutboxFull> {
        self.push_with(msg, needs_confirmation(msg.header.msg_id))
    }

    /// [`Outbox::push`] with the confirmation policy given explicitly.
    pub fn push_with(&mut self, msg: &Message, confirm: bool) -> Result<Pushed, OutboxFull> {
        if self.entries.len() >= self.cfg.capacity {
            return Err(OutboxFull {
                held: self.entries.len(),
                capacity: self.cfg.capacity,
            });
        }
        let mut serials = Vec::with_capacity(1);
        let mut next = self.next_serial;
        let frames: Vec<Bytes> = msg
            .encode_packets(self.cfg.packet_size, || {
                let s = next;
                next = next.wrapping_add(1);
                serials.push(s);
                s
            })
            .into_iter()
            .map(Bytes::from)
            .collect();
        self.next_serial = next;
        let serial = serials.first().copied().unwrap_or(self.next_serial);
        let packets = frames.len();
        self.entries.push_back(Entry {
            seq: self.next_seq,
            serial,
            msg_id: msg.header.msg_id,
            phone: msg.header.phone,
            frames,
            serials,
            confirm,
            state: State::Waiting,
            writes: 0,
            timeouts: 0,
        });
        self.next_seq += 1;
        Ok(Pushed {
            serial,
            packets,
            held: self.entries.len(),
        })
    }

    /// The earliest entry due for writing (first write or re-send), in push order. Does not
    /// change state: see [`Outgoing`].
    pub fn next_due(&self) -> Option<Outgoing> {
        self.due_batch(1).pop()
    }

    /// Up to `limit` entries due for writing, in push order, so a flush after a reconnect can go
    /// out in one write. Does not change state: call [`Outbox::written`] for each once written.
    ///
    /// The send window ([`OutboxConfig::max_in_flight`]) is applied here: once it is full, the
    /// first command that does not fit ends the batch, and nothing behind it overtakes it.
    pub fn due_batch(&self, limit: usize) -> Vec<Outgoing> {
        let mut slots = self.cfg.max_in_flight.max(1).saturating_sub(self.in_flight());
        self.entries
            .iter()
            .filter(|e| !matches!(e.state, State::InFlight { .. }))
            .take_while(|e| {
                if !e.confirm {
                    return true;
                }
                let fits = slots > 0;
                slots = slots.saturating_sub(1);
                fits
            })
            .take(limit)
            .map(|e| Outgoing {
                seq: e.seq,
                serial: e.serial,
                msg_id: e.msg_id,
                phone: e.phone,
                frames: e.frames.clone(),
                resend: match e.state {
                    State::Resend(why) => Some((why, e.writes + 1)),
                    _ => None,
                },
                awaits_confirmation: e.confirm,
            })
            .collect()
    }

    /// Entry `seq` was written at `now`: a command is now held for confirmation, anything else
    /// leaves the outbox. Unknown `seq` (confirmed meanwhile) is ignored.
    pub fn written(&mut self, seq: u64, now: Duration) {
        let Some(i) = self.entries.iter().position(|e| e.seq == seq) else {
            return;
        };
        let e = &mut self.entries[i];
        e.writes += 1;
        if e.confirm {
            // JT/T 808 retransmission: T(n+1) = T(n) * (n + 1), n = timeouts so far.
            let wait = self.cfg.confirm_timeout.saturating_mul(e.timeouts + 1);
            e.state = State::InFlight {
                deadline: now.saturating_add(wait),
            };
        } else {
            self.entries.remove(i);
        }
    }

    /// The terminal `phone` answered serial `reply_serial` of message `reply_id`: the held command
    /// it names is confirmed and leaves the outbox, whether it was awaiting confirmation or already
    /// due for a re-send (so the re-send is not made). A multi-packet command is confirmed by an
    /// answer to any of its packets.
    pub fn confirm(&mut self, phone: &Phone, reply_serial: u16, reply_id: u16) -> Option<Confirmed> {
        let i = self.entries.iter().position(|e| {
            e.confirm && e.writes > 0 && e.msg_id == reply_id && e.phone == *phone && e.serials.contains(&reply_serial)
        })?;
        self.take_confirmed(i)
    }

    /// `answer` came from terminal `phone`: the held command it answers is confirmed, as by
    /// [`Outbox::confirm`]. An answer naming a serial confirms that command; one without a reply
    /// serial (0x0107, 0x0608, 0x1003) confirms the oldest written command of its id to that
    /// terminal (entries are in push order). 0x0104 confirms an 0x8104 or an 0x8106.
    pub fn confirm_answer(&mut self, phone: &Phone, answer: &super::replies::Answer) -> Option<Confirmed> {
        let i = self.entries.iter().position(|e| {
            e.confirm
                && e.writes > 0
                && e.phone == *phone
                && e.serials.iter().any(|&s| answer.answers_command(e.msg_id, s))
        })?;
        self.take_confirmed(i)
    }

    /// Removes entry `i`, confirmed.
    fn take_confirmed(&mut self, i: usize) -> Option<Confirmed> {
        let e = self.entries.remove(i)?;
        Some(Confirmed {
            serial: e.serial,
            msg_id: e.msg_id,
            phone: e.phone,
            writes: e.writes,
        })
    }

    /// The connection died: every command awaiting confirmation is due again, in its original
    /// place in the order. This never gives a command up: a connection that died says nothing
    /// about the terminal, and a disconnect storm must not cost commands. (Reconnects are
    /// themselves bounded by the backoff.)
    pub fn on_disconnect(&mut self) {
        for e in &mut self.entries {
            if let State::InFlight { .. } = e.state {
                e.state = State::Resend(ResendReason::Reconnect);
            }
        }
    }

    /// Commands whose confirmation is overdue at `now` become due for a re-send; those that had
    /// [`OutboxConfig::max_resends`] timeouts already leave the outbox and are returned. Only
    /// these timeouts, on a connection that was up, count against the limit (as the JT/T 808
    /// retransmission count does).
    pub fn expire(&mut self, now: Duration) -> Vec<GaveUp> {
        let max = self.cfg.max_resends;
        let mut gave_up = Vec::new();
        self.entries.retain_mut(|e| match e.state {
            State::InFlight { deadline } if deadline <= now => {
                if e.timeouts >= max {
                    gave_up.push(GaveUp {
                        serial: e.serial,
                        msg_id: e.msg_id,
                        phone: e.phone,
                        writes: e.writes,
                    });
                    false
                } else {
                    e.timeouts += 1;
                    e.state = State::Resend(ResendReason::Timeout);
                    true
                }
            }
            _ => true,
        });
        gave_up
    }

    /// The earliest confirmation deadline, for the caller's timer.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.entries
            .iter()
            .filter_map(|e| match e.state {
                State::InFlight { deadline } => Some(deadline),
                _ => None,
            })
            .min()
    }

    /// Empties the outbox (the client stops): how many were waiting and how many unconfirmed.
    pub fn clear(&mut self) -> (usize, usize) {
        let in_flight = self.in_flight();
        let due = self.entries.len() - in_flight;
        self.entries.clear();
        (due, in_flight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Version;
    use crate::codec::body::{Body, RawBody};

    const SEC: Duration = Duration::from_secs(1);

    fn phone() -> Phone {
        Phone::parse("13800138000").unwrap()
    }

    fn msg(id: u16, body: &[u8]) -> Message {
        Message::new(
            id,
            Version::V2013,
            phone(),
            0,
            Body::Raw(RawBody { raw: body.to_vec() }),
        )
    }

    fn cfg() -> OutboxConfig {
        OutboxConfig {
            capacity: 4,
            confirm_timeout: SEC,
            max_resends: 2,
            ..OutboxConfig::default()
        }
    }

    /// Writes everything due, returning (serial, resend) in write order.
    fn write_all(o: &mut Outbox, now: Duration) -> Vec<(u16, Option<(ResendReason, u32)>)> {
        let mut v = Vec::new();
        while let Some(out) = o.next_due() {
            v.push((out.serial, out.resend));
            o.written(out.seq, now);
        }
        v
    }

    #[test]
    fn serials_are_assigned_in_order_and_wrap() {
        let mut o = Outbox::new(OutboxConfig {
            first_serial: 0xFFFE,
            ..cfg()
        });
        let s: Vec<u16> = (0..3).map(|_| o.push(&msg(0x8001, &[])).unwrap().serial).collect();
        assert_eq!(s, [0xFFFE, 0xFFFF, 0x0000]);
    }

    #[test]
    fn a_full_outbox_refuses_and_changes_nothing() {
        let mut o = Outbox::new(cfg());
        for _ in 0..4 {
            o.push(&msg(0x8103, &[1])).unwrap();
        }
        let serial = o.peek_serial();
        assert_eq!(o.push(&msg(0x8103, &[1])), Err(OutboxFull { held: 4, capacity: 4 }));
        assert_eq!(o.peek_serial(), serial, "a refused message takes no serial");
        assert_eq!(o.len(), 4);
    }

    #[test]
    fn a_long_body_is_split_with_one_serial_per_packet() {
        let mut o = Outbox::new(OutboxConfig {
            packet_size: 10,
            ..cfg()
        });
        let p = o.push(&msg(0x8300, &[0x41; 25])).unwrap();
        assert_eq!((p.serial, p.packets), (0, 3));
        assert_eq!(o.push(&msg(0x8001, &[])).unwrap().serial, 3);
        let out = o.next_due().unwrap();
        assert_eq!(out.frames.len(), 3);
        assert_eq!(out.frames[0][0], 0x7E);
    }

    #[test]
    fn fire_and_forget_leaves_after_the_write_and_commands_stay_until_confirmed() {
        let mut o = Outbox::new(cfg());
        o.push(&msg(0x8001, &[0, 1, 0, 2, 0])).unwrap();
        o.push(&msg(0x8103, &[1])).unwrap();
        assert_eq!(write_all(&mut o, SEC), [(0, None), (1, None)]);
        assert_eq!((o.len(), o.in_flight()), (1, 1));
        assert_eq!(o.confirm(&phone(), 1, 0x8104), None, "wrong reply id");
        assert_eq!(
            o.confirm(&Phone::parse("1").unwrap(), 1, 0x8103),
            None,
            "wrong terminal"
        );
        let c = o.confirm(&phone(), 1, 0x8103).unwrap();
        assert_eq!((c.serial, c.writes), (1, 1));
        assert!(o.is_empty());
    }

    #[test]
    fn an_unwritten_entry_stays_due_so_a_failed_write_loses_nothing() {
        let mut o = Outbox::new(cfg());
        o.push(&msg(0x8001, &[])).unwrap();
        let first = o.next_due().unwrap();
        // The write failed: `written` is not called.
        assert_eq!(o.next_due().unwrap().seq, first.seq);
        assert_eq!(o.confirm(&phone(), 0, 0x8001), None, "never written, never confirmed");
    }

    #[test]
    fn a_disconnect_requeues_commands_in_their_original_order_before_newer_ones() {
        let mut o = Outbox::new(OutboxConfig { capacity: 8, ..cfg() });
        o.push(&msg(0x8103, &[1])).unwrap(); // 0
        o.push(&msg(0x8001, &[])).unwrap(); // 1, fire and forget
        o.push(&msg(0x8103, &[2])).unwrap(); // 2
        write_all(&mut o, SEC);
        o.push(&msg(0x8103, &[3])).unwrap(); // 3, pushed while disconnected
        o.on_disconnect();
        let r = Some((ResendReason::Reconnect, 2));
        assert_eq!(write_all(&mut o, 2 * SEC), [(0, r), (2, r), (3, None)]);
    }

    #[test]
    fn an_answer_arriving_before_the_resend_cancels_it() {
        let mut o = Outbox::new(cfg());
        o.push(&msg(0x8103, &[1])).unwrap();
        write_all(&mut o, SEC);
        o.on_disconnect();
        assert!(o.confirm(&phone(), 0, 0x8103).is_some());
        assert!(o.next_due().is_none());
    }

    #[test]
    fn own_answers_confirm_by_serial_and_serial_less_ones_the_oldest_of_their_id() {
        use crate::client::replies::Answer;
        let answer = |serial, answers, by_serial| Answer {
            serial,
            answers,
            result: None,
            by_serial,
        };
        let mut o = Outbox::new(cfg());
        // Serials 0..=3: 0x8106, 0x8107, 0x8107, 0x8201.
        for id in [0x8106, 0x8107, 0x8107, 0x8201] {
            o.push(&msg(id, &[])).unwrap();
        }
        write_all(&mut o, SEC);
        // A 0x0104 (answers 0x8104 and 0x8106) naming another serial confirms nothing.
        assert!(o.confirm_answer(&phone(), &answer(3, 0x8104, true)).is_none());
        let c = o.confirm_answer(&phone(), &answer(0, 0x8104, true)).unwrap();
        assert_eq!((c.serial, c.msg_id), (0, 0x8106));
        // 0x0107 has no reply serial: the oldest 0x8107 first, then the next.
        assert_eq!(
            o.confirm_answer(&phone(), &answer(0, 0x8107, false)).map(|c| c.serial),
            Some(1)
        );
        assert_eq!(
            o.confirm_answer(&phone(), &answer(0, 0x8107, false)).map(|c| c.serial),
            Some(2)
        );
        assert!(o.confirm_answer(&phone(), &answer(0, 0x8107, false)).is_none());
        // Another terminal's answer confirms nothing of this one.
        let other = Phone::parse("1").unwrap();
        assert!(o.confirm_answer(&other, &answer(3, 0x8201, true)).is_none());
        assert_eq!(
            o.confirm_answer(&phone(), &answer(3, 0x8201, true)).map(|c| c.serial),
            Some(3)
        );
        assert!(o.is_empty());
    }

    #[test]
    fn timeouts_grow_per_resend_and_the_limit_gives_up() {
        let mut o = Outbox::new(cfg()); // T = 1 s, 2 re-sends
        o.push(&msg(0x8103, &[1])).unwrap();
        write_all(&mut o, Duration::ZERO);
        assert_eq!(o.next_deadline(), Some(SEC));
        assert!(o.expire(SEC - Duration::from_millis(1)).is_empty());
        assert!(o.next_due().is_none(), "not due before its deadline");
        assert!(o.expire(SEC).is_empty());
        assert_eq!(write_all(&mut o, SEC), [(0, Some((ResendReason::Timeout, 2)))]);
        // Second wait is 2 T (JT/T 808: T(n+1) = T(n) * (n+1)).
        assert_eq!(o.next_deadline(), Some(3 * SEC));
        o.expire(3 * SEC);
        assert_eq!(write_all(&mut o, 3 * SEC), [(0, Some((ResendReason::Timeout, 3)))]);
        assert_eq!(o.next_deadline(), Some(6 * SEC));
        let gave_up = o.expire(6 * SEC);
        assert_eq!(gave_up.len(), 1);
        assert_eq!((gave_up[0].serial, gave_up[0].writes), (0, 3));
        assert!(o.is_empty());
    }

    #[test]
    fn the_send_window_holds_later_messages_back_in_order() {
        let mut o = Outbox::new(OutboxConfig {
            capacity: 8,
            max_in_flight: 2,
            ..cfg()
        });
        o.push(&msg(0x8103, &[1])).unwrap(); // 0
        o.push(&msg(0x8103, &[2])).unwrap(); // 1
        o.push(&msg(0x8103, &[3])).unwrap(); // 2: beyond the window
        o.push(&msg(0x8001, &[])).unwrap(); // 3: must not overtake 2
        assert_eq!(write_all(&mut o, SEC), [(0, None), (1, None)]);
        assert!(o.next_due().is_none());
        o.confirm(&phone(), 0, 0x8103).unwrap();
        assert_eq!(write_all(&mut o, SEC), [(2, None), (3, None)]);
    }

    #[test]
    fn reconnect_resends_do_not_use_up_the_retry_budget() {
        let mut o = Outbox::new(cfg()); // 2 re-sends after timeouts
        o.push(&msg(0x8103, &[1])).unwrap();
        for i in 0..10 {
            write_all(&mut o, SEC * i);
            o.on_disconnect();
        }
        assert_eq!(o.len(), 1, "ten dead connections, still held");
        let w = write_all(&mut o, SEC * 10);
        assert_eq!(w, [(0, Some((ResendReason::Reconnect, 11)))]);
        assert_eq!(o.next_deadline(), Some(SEC * 11), "the timeout did not grow either");
    }

    #[test]
    fn which_messages_are_confirmed() {
        assert!(needs_confirmation(0x8103));
        assert!(needs_confirmation(0x9205));
        assert!(needs_confirmation(0x9206));
        assert!(!needs_confirmation(0x8001));
        assert!(!needs_confirmation(0x8004));
        assert!(!needs_confirmation(0x8003));
        assert!(!needs_confirmation(0x0200));
    }
}
