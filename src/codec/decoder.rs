//! The whole receive path in one sans-IO type: bytes and `now` in, [`DecodeEvent`]s out.
//! Deframer -> header -> reassembly -> typed body.

use std::time::Duration;

use serde::Serialize;

use super::body::{Body, LayoutCache, Location, RawBody};
use super::deframer::{Deframer, DeframerConfig, Frame, Item};
use super::error::FrameError;
use super::header::{Header, Version};
use super::message::Message;
use super::reassembly::{Expired, GroupKey, Reassembler, ReassemblyConfig, ReassemblyEvent};

/// Decoder settings: the deframer's and the reassembler's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecoderConfig {
    /// Frame limits.
    pub deframer: DeframerConfig,
    /// Packet-group limits and timeout.
    pub reassembly: ReassemblyConfig,
}

/// One thing the decoder found in the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum DecodeEvent {
    /// A whole message: a single frame, or a packet group put back together.
    Message(Message),
    /// A frame that failed a check, dropped.
    Rejected(FrameError),
    /// Bytes outside any frame, skipped.
    Skipped {
        /// Stream offset of the first byte.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
    /// One packet of a multi-packet message was buffered (the message comes out when complete).
    Packet {
        /// Group.
        key: GroupKey,
        /// Packet index.
        index: u16,
        /// Packet serial.
        serial: u16,
    },
    /// A packet whose index was already held was ignored.
    DuplicatePacket {
        /// Group.
        key: GroupKey,
        /// Packet index.
        index: u16,
        /// Serial of the duplicate.
        serial: u16,
        /// Whether its bytes differ from the copy held.
        differs: bool,
        /// Its group had already completed: a late copy (serialised as `"after_complete": true`,
        /// and only then).
        completed: bool,
    },
    /// A packet with index 0 or index > total, dropped.
    InvalidPacket {
        /// Group.
        key: GroupKey,
        /// Packet index.
        index: u16,
        /// Serial.
        serial: u16,
    },
    /// A packet group was given up (timeout or limit), with its missing indices.
    GroupExpired(Expired),
    /// A packet group idle for the timeout is kept open for the packets it misses
    /// ([`ReassemblyConfig::retransmit_wait`](super::reassembly::ReassemblyConfig::retransmit_wait)):
    /// the moment to ask for them with 0x8003.
    GroupStalled(Expired),
    /// The next message came from a frame with an unescaped 0x7E taken as data (only with
    /// [`DeframerConfig::rejoin_unescaped_flag`]).
    UnescapedFlag {
        /// Stream offset of the frame's opening 0x7E.
        offset: u64,
        /// Stream offset of the unescaped 0x7E.
        at: u64,
    },
}

impl DecodeEvent {
    /// Takes a lent event (see [`Decoder::push_lent`]) out, leaving an empty [`DecodeEvent::Skipped`]
    /// in its place.
    #[inline(always)]
    pub fn take(&mut self) -> DecodeEvent {
        std::mem::replace(self, DecodeEvent::Skipped { offset: 0, len: 0 })
    }
}

/// JSON Lines shape of decoder output (`decode`, `client`, transcripts): a `"type"` key, then the
/// fields. `message` flattens [`Message`]'s own shape; `error` names the failed `check`.
impl Serialize for DecodeEvent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            DecodeEvent::Message(msg) => {
                return Tagged {
                    kind: "message",
                    inner: msg,
                }
                .serialize(s);
            }
            DecodeEvent::GroupExpired(e) => {
                return Tagged {
                    kind: "group_expired",
                    inner: e,
                }
                .serialize(s);
            }
            DecodeEvent::GroupStalled(e) => {
                return Tagged {
                    kind: "group_stalled",
                    inner: e,
                }
                .serialize(s);
            }
            _ => {}
        }
        let mut m = s.serialize_map(None)?;
        match self {
            DecodeEvent::Message(_) | DecodeEvent::GroupExpired(_) | DecodeEvent::GroupStalled(_) => {
                unreachable!("handled above")
            }
            DecodeEvent::Rejected(e) => {
                m.serialize_entry("type", "error")?;
                m.serialize_entry("check", e.check())?;
                m.serialize_entry("offset", &e.offset())?;
                m.serialize_entry("error", &e.to_string())?;
            }
            DecodeEvent::Skipped { offset, len } => {
                m.serialize_entry("type", "skipped")?;
                m.serialize_entry("offset", offset)?;
                m.serialize_entry("len", len)?;
            }
            DecodeEvent::UnescapedFlag { offset, at } => {
                m.serialize_entry("type", "unescaped_flag")?;
                m.serialize_entry("offset", offset)?;
                m.serialize_entry("at", at)?;
            }
            DecodeEvent::Packet { key, index, serial } => {
                m.serialize_entry("type", "packet")?;
                m.serialize_entry("msg_id", &super::header::msg_id_hex(key.msg_id))?;
                m.serialize_entry("phone", &key.phone)?;
                m.serialize_entry("serial", serial)?;
                m.serialize_entry("index", index)?;
                m.serialize_entry("total", &key.total)?;
            }
            DecodeEvent::DuplicatePacket {
                key,
                index,
                serial,
                differs,
                completed,
            } => {
                m.serialize_entry("type", "duplicate_packet")?;
                m.serialize_entry("msg_id", &super::header::msg_id_hex(key.msg_id))?;
                m.serialize_entry("phone", &key.phone)?;
                m.serialize_entry("serial", serial)?;
                m.serialize_entry("index", index)?;
                m.serialize_entry("total", &key.total)?;
                m.serialize_entry("differs", differs)?;
                if *completed {
                    m.serialize_entry("after_complete", &true)?;
                }
            }
            DecodeEvent::InvalidPacket { key, index, serial } => {
                m.serialize_entry("type", "error")?;
                m.serialize_entry("check", "packet_index")?;
                m.serialize_entry("msg_id", &super::header::msg_id_hex(key.msg_id))?;
                m.serialize_entry("phone", &key.phone)?;
                m.serialize_entry("serial", serial)?;
                m.serialize_entry("index", index)?;
                m.serialize_entry("total", &key.total)?;
            }
        }
        m.end()
    }
}

/// `{"type": kind, ...inner's own fields}`.
#[derive(Serialize)]
pub(crate) struct Tagged<'a, T: Serialize> {
    /// The event kind.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The event's own fields.
    #[serde(flatten)]
    pub inner: &'a T,
}

/// Deframer + reassembler + body decoding. See the module doc.
#[derive(Debug, Default)]
pub struct Decoder {
    deframer: Deframer,
    reassembler: Reassembler,
    layouts: LayoutCache,
    /// Where [`Decoder::push_lent`] decodes 0x0200 reports and lends them from, reused report
    /// after report; allocated by the first (a decoder used with [`Decoder::push`] holds none).
    lent: Option<Box<DecodeEvent>>,
}

impl Decoder {
    /// A decoder at the start of a stream.
    pub fn new(cfg: DecoderConfig) -> Decoder {
        Decoder {
            deframer: Deframer::new(cfg.deframer),
            reassembler: Reassembler::new(cfg.reassembly),
            layouts: LayoutCache::default(),
            lent: None,
        }
    }

    /// The deframer (pending bytes, position).
    pub fn deframer(&self) -> &Deframer {
        &self.deframer
    }

    /// The reassembler (open groups, bytes held).
    pub fn reassembler(&self) -> &Reassembler {
        &self.reassembler
    }

    /// The 0x0200 item layouts remembered (see [`LayoutCache`]), with their hit count.
    pub fn layouts(&self) -> &LayoutCache {
        &self.layouts
    }

    /// Pushes bytes received at `now`; every event they complete goes to `f`, in order. Groups due
    /// to expire at `now` are expired first.
    ///
    /// A consumer that only reads the events is faster with [`Decoder::push_lent`].
    pub fn push(&mut self, chunk: &[u8], now: Duration, f: impl FnMut(DecodeEvent)) {
        let mut give = Give(f);
        self.expire(now, &mut give.0);
        let (reassembler, layouts) = (&mut self.reassembler, &mut self.layouts);
        self.deframer
            .push(chunk, |item| handle_item(reassembler, layouts, item, now, &mut give));
    }

    /// [`Decoder::push`] lending each event to `f` instead of giving it away: `f` reads it where
    /// it lies, or keeps it with [`DecodeEvent::take`]. A 0x0200 report is decoded into one slot
    /// the decoder reuses, so a report a consumer only reads is neither copied nor dropped, and
    /// its buffers are reused. That is the decoder's floor: a message handed over by value is
    /// copied at the hand-over (176 bytes, read back with wide loads right after the narrow
    /// stores that wrote it: a store-forwarding stall), then dropped (benches/decode.rs).
    pub fn push_lent(&mut self, chunk: &[u8], now: Duration, f: impl FnMut(&mut DecodeEvent)) {
        let mut lend = Lend {
            f,
            slot: &mut self.lent,
        };
        self.reassembler.expire(now, |e| lend.event(from_reassembly(e)));
        let layouts = &mut self.layouts;
        let reassembler = &mut self.reassembler;
        self.deframer
            .push(chunk, |item| handle_item(reassembler, layouts, item, now, &mut lend));
    }

    /// Convenience: [`Decoder::push`] collecting the events.
    pub fn push_vec(&mut self, chunk: &[u8], now: Duration) -> Vec<DecodeEvent> {
        let mut v = Vec::new();
        self.push(chunk, now, |e| v.push(e));
        v
    }

    /// Gives up the packet groups idle for the timeout at `now`.
    pub fn expire(&mut self, now: Duration, mut f: impl FnMut(DecodeEvent)) {
        self.reassembler.expire(now, |e| f(from_reassembly(e)));
    }

    /// When the next group will expire, for a caller's timer.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.reassembler.next_deadline()
    }

    /// The stream ended (or the connection dropped): a frame in progress is reported as
    /// [`FrameError::Unterminated`] and discarded, so it is never glued to the bytes of the next
    /// connection. Packet groups are kept: a terminal's message may continue after a reconnect.
    pub fn end_stream(&mut self, mut f: impl FnMut(DecodeEvent)) {
        let (reassembler, layouts) = (&mut self.reassembler, &mut self.layouts);
        let mut give = Give(&mut f);
        self.deframer
            .finish(|item| handle_item(reassembler, layouts, item, Duration::ZERO, &mut give));
    }

    /// Gives up every open packet group (the end of a capture).
    pub fn drain_groups(&mut self, mut f: impl FnMut(DecodeEvent)) {
        self.reassembler.drain(|e| f(from_reassembly(e)));
    }
}

/// How events reach the consumer: given by value ([`Decoder::push`]) or lent
/// ([`Decoder::push_lent`]). The two differ only in how a plain 0x0200 report is built.
trait Deliver {
    /// A finished event.
    fn event(&mut self, e: DecodeEvent);
    /// A plain (unencrypted, single-frame) 0x0200 report: decoded and delivered.
    fn location(&mut self, header: Header, body: &[u8], layouts: &mut LayoutCache);
}

/// Events given away.
struct Give<F>(F);

impl<F: FnMut(DecodeEvent)> Deliver for Give<F> {
    #[inline(always)]
    fn event(&mut self, e: DecodeEvent) {
        (self.0)(e)
    }

    #[inline(always)]
    fn location(&mut self, header: Header, body: &[u8], layouts: &mut LayoutCache) {
        // The message is made first and the location decoded where it will be handed over (see
        // `Location::decode_in_place`). A local `Message` wrapped at the call, not a
        // `DecodeEvent` matched open: the compiler built that event aside and copied it in.
        let mut m = Message {
            header,
            body: Body::LocationReport(Location::EMPTY),
            assembled: None,
        };
        if let Body::LocationReport(loc) = &mut m.body
            && let Err(e) = loc.decode_in_place(body, layouts)
        {
            m.body = Body::invalid(Location::ID, e, body);
        }
        (self.0)(DecodeEvent::Message(m))
    }
}

/// Events lent, 0x0200 reports from the reused slot.
struct Lend<'a, F> {
    f: F,
    slot: &'a mut Option<Box<DecodeEvent>>,
}

impl<F: FnMut(&mut DecodeEvent)> Deliver for Lend<'_, F> {
    #[inline(always)]
    fn event(&mut self, mut e: DecodeEvent) {
        (self.f)(&mut e)
    }

    #[inline(always)]
    fn location(&mut self, header: Header, body: &[u8], layouts: &mut LayoutCache) {
        let ev = match self.slot {
            Some(ev) => &mut **ev,
            None => refill(self.slot),
        };
        // The slot still holds the last report unless the consumer took it (or it failed).
        let loc = match ev {
            DecodeEvent::Message(Message {
                header: h,
                body: Body::LocationReport(loc),
                assembled: None,
            }) => {
                *h = header;
                loc.clear();
                loc
            }
            _ => refill_with(ev, header),
        };
        if let Err(e) = loc.decode_in_place(body, layouts) {
            let DecodeEvent::Message(m) = &mut *ev else {
                unreachable!("a report was just put there")
            };
            m.body = Body::invalid(Location::ID, e, body);
        }
        (self.f)(ev)
    }
}

/// The first 0x0200 report of a [`Lend`]: its slot allocated.
#[cold]
#[inline(never)]
fn refill(slot: &mut Option<Box<DecodeEvent>>) -> &mut DecodeEvent {
    slot.insert(Box::new(DecodeEvent::Skipped { offset: 0, len: 0 }))
}

/// The slot, taken or holding something else, made an empty report again.
#[cold]
#[inline(never)]
fn refill_with(ev: &mut DecodeEvent, header: Header) -> &mut Location {
    *ev = DecodeEvent::Message(Message {
        header,
        body: Body::LocationReport(Location::EMPTY),
        assembled: None,
    });
    let DecodeEvent::Message(Message {
        body: Body::LocationReport(loc),
        ..
    }) = ev
    else {
        unreachable!("a report was just put there")
    };
    loc
}

fn handle_item(
    reassembler: &mut Reassembler,
    layouts: &mut LayoutCache,
    item: Item<'_>,
    now: Duration,
    d: &mut impl Deliver,
) {
    // A frame is the common case by far; the other items and packets are handled out of line so
    // the single-frame path stays small (its code layout moved the 0x0200 figure by 10%).
    let Item::Frame(frame) = item else {
        return handle_other(item, d);
    };
    if frame.header.packet.is_some() {
        return handle_packet(reassembler, &frame, now, d);
    }
    let body = &frame.content[frame.body_start..];
    if frame.header.msg_id == Location::ID && frame.header.encryption == 0 {
        d.location(frame.header, body, layouts)
    } else {
        d.event(DecodeEvent::Message(decode_message(frame.header, body, None)))
    }
}

/// Everything but a frame: rejected frames, skipped bytes, rejoin notices.
#[inline(never)]
fn handle_other(item: Item<'_>, d: &mut impl Deliver) {
    match item {
        Item::Frame(_) => unreachable!("frames are handled by handle_item"),
        Item::Rejected(e) => d.event(DecodeEvent::Rejected(e)),
        Item::Skipped { offset, len } => d.event(DecodeEvent::Skipped { offset, len }),
        Item::UnescapedFlag { offset, at } => d.event(DecodeEvent::UnescapedFlag { offset, at }),
    }
}

/// One packet of a multi-packet message. A "group" of one is an ordinary message with a redundant
/// item; still reassembled so the header and `assembled` are uniform.
#[inline(never)]
fn handle_packet(reassembler: &mut Reassembler, frame: &Frame<'_>, now: Duration, d: &mut impl Deliver) {
    let Some(p) = frame.header.packet else {
        return;
    };
    let (key, index, serial) = (
        GroupKey {
            phone: frame.header.phone,
            msg_id: frame.header.msg_id,
            total: p.total,
        },
        p.index,
        frame.header.serial,
    );
    let mut done = false;
    reassembler.insert(&frame.header, frame.body(), now, |e| {
        // The packet's own group given up (byte limit) already counts it in `received`.
        let own_group_expired = matches!(&e, ReassemblyEvent::Expired(x)
            if x.phone == key.phone && x.msg_id == key.msg_id && x.total == key.total);
        done |= own_group_expired
            || matches!(
                e,
                ReassemblyEvent::Complete { .. }
                    | ReassemblyEvent::InvalidIndex { .. }
                    | ReassemblyEvent::Duplicate { .. }
            );
        d.event(from_reassembly(e))
    });
    if !done {
        d.event(DecodeEvent::Packet { key, index, serial });
    }
}

fn from_reassembly(e: ReassemblyEvent) -> DecodeEvent {
    match e {
        ReassemblyEvent::Complete {
            header,
            body,
            assembled,
        } => DecodeEvent::Message(decode_message(header, &body, Some(assembled))),
        ReassemblyEvent::Duplicate {
            key,
            index,
            serial,
            differs,
            completed,
        } => DecodeEvent::DuplicatePacket {
            key,
            index,
            serial,
            differs,
            completed,
        },
        ReassemblyEvent::InvalidIndex { key, index, serial } => DecodeEvent::InvalidPacket { key, index, serial },
        ReassemblyEvent::Expired(e) => DecodeEvent::GroupExpired(e),
        ReassemblyEvent::Stalled(e) => DecodeEvent::GroupStalled(e),
    }
}

/// Decodes a whole body under its header. An encrypted body is kept raw (JT808.md §2.2: bit 10 = RSA,
/// and this harness holds no keys). A 0x0100 body's layout may reveal 2011.
#[inline]
pub fn decode_message(mut header: Header, body: &[u8], assembled: Option<super::message::Assembled>) -> Message {
    let body = if header.encryption != 0 {
        Body::Encrypted(RawBody { raw: body.to_vec() })
    } else {
        Body::decode(header.msg_id, header.version, body)
    };
    if let Some(Version::V2011) = body.detected_version() {
        header.version = Version::V2011;
    }
    Message {
        header,
        body,
        assembled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::header::Phone;

    /// The in-place 0x0200 path of `handle_item` gives exactly what `decode_message` gives, for a
    /// whole report, a report with an odd item and a body too short for the basic block.
    #[test]
    fn the_location_hot_path_matches_decode_message() {
        let basic = "000004000000080006eeb6ad02633df701380003006320070719235901040000000b";
        for body_hex in [basic, &format!("{basic}5d02abcd310501"), &basic[..38]] {
            let body = hex::decode(body_hex).unwrap();
            let m = Message::new(
                0x0200,
                Version::V2013,
                Phone::parse("13912344321").unwrap(),
                7,
                Body::Raw(RawBody { raw: body.clone() }),
            );
            let events = Decoder::default().push_vec(&m.encode(), Duration::ZERO);
            let [DecodeEvent::Message(got)] = &events[..] else {
                panic!("one message: {events:?}")
            };
            let want = decode_message(got.header.clone(), &body, None);
            assert_eq!(got, &want, "{body_hex}");
            assert_eq!(
                matches!(got.body, Body::Invalid(_)),
                body.len() < 28,
                "{body_hex}: {:?}",
                got.body
            );
        }
    }

    /// One lending decoder over reports that leave different things in its reused slot (items,
    /// issues, none, a failure, a taken report): each comes out as `decode_message` makes it.
    #[test]
    fn a_reused_report_shows_nothing_of_the_one_before() {
        let basic = "000004000000080006eeb6ad02633df701380003006320070719235901040000000b";
        let bodies = [
            format!("{basic}5d02abcd310501"), // an unknown item: an issue
            basic.to_string(),                // no items: the last report's items and issue gone
            format!("{basic}30011e"),         // one item, no issue
            basic[..38].to_string(),          // too short: invalid
            format!("{basic}310105"),         // after the failure, a report again
            format!("{basic}3001"),           // a cut item, taken by the consumer below
            basic.to_string(),                // after the taken one
        ];
        let mut d = Decoder::default();
        for (serial, body_hex) in bodies.iter().enumerate() {
            let body = hex::decode(body_hex).unwrap();
            let m = Message::new(
                0x0200,
                Version::V2013,
                Phone::parse("13912344321").unwrap(),
                serial as u16,
                Body::Raw(RawBody { raw: body.clone() }),
            );
            let mut got = Vec::new();
            d.push_lent(&m.encode(), Duration::ZERO, |e| {
                got.push(if serial == 5 { e.take() } else { e.clone() })
            });
            let [DecodeEvent::Message(got)] = &got[..] else {
                panic!("one message: {got:?}")
            };
            assert_eq!(got, &decode_message(got.header.clone(), &body, None), "{body_hex}");
        }
    }
}
