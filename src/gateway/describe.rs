//! What the gateway says about the bytes it offers: one [`FrameDesc`] per item the codec's own
//! deframer finds in them. Checks read the typed form (which message of which terminal, which
//! packet of its group); the log and transcripts show its text, `0x0200 13800000001 #5` with
//! ` [i/n]` for a packet, which is also its serde form.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::codec::Phone;
use crate::codec::deframer::{Deframer, Item};

/// One frame's identity: message id, terminal, serial and, for a packet, its place in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameId {
    /// Message id.
    pub msg_id: u16,
    /// The terminal's phone.
    pub phone: Phone,
    /// Serial number of this frame.
    pub serial: u16,
    /// `(index, total)` of a sub-packet (index 1-based).
    pub packet: Option<(u16, u16)>,
}

/// One item in bytes the gateway offered, as the client's decoder will meet it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameDesc {
    /// A valid frame.
    Frame(FrameId),
    /// A frame that fails a check (the check's stable name, as in `decode`).
    Rejected {
        /// e.g. `bad_checksum`.
        check: &'static str,
    },
    /// Bytes outside any frame.
    Skipped {
        /// How many.
        len: u64,
    },
    /// An unescaped 0x7E taken as data (deframer setting `rejoin_unescaped_flag`).
    UnescapedFlag {
        /// Stream offset of the 0x7E.
        at: u64,
    },
}

impl FrameDesc {
    /// The frame's identity, `None` for what is not a valid frame.
    pub fn frame(&self) -> Option<&FrameId> {
        match self {
            FrameDesc::Frame(f) => Some(f),
            _ => None,
        }
    }

    fn of(it: Item<'_>) -> FrameDesc {
        match it {
            Item::Frame(f) => {
                let h = &f.header;
                FrameDesc::Frame(FrameId {
                    msg_id: h.msg_id,
                    phone: h.phone,
                    serial: h.serial,
                    packet: h.packet.map(|p| (p.index, p.total)),
                })
            }
            Item::Rejected(e) => FrameDesc::Rejected { check: e.check() },
            Item::Skipped { len, .. } => FrameDesc::Skipped { len },
            Item::UnescapedFlag { at, .. } => FrameDesc::UnescapedFlag { at },
        }
    }
}

impl fmt::Display for FrameDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameDesc::Frame(id) => {
                write!(f, "0x{:04X} {} #{}", id.msg_id, id.phone, id.serial)?;
                if let Some((index, total)) = id.packet {
                    write!(f, " [{index}/{total}]")?;
                }
                Ok(())
            }
            FrameDesc::Rejected { check } => write!(f, "bad frame ({check})"),
            FrameDesc::Skipped { len } => write!(f, "{len} bytes outside frames"),
            FrameDesc::UnescapedFlag { at } => write!(f, "unescaped 0x7E at byte {at} taken as data"),
        }
    }
}

/// Serialised as its text, the form the gateway log has always had.
impl Serialize for FrameDesc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The items in one message's JT808 bytes, on their own (a frame cut at the end is described as
/// the deframer reports it at the end of a stream).
pub fn describe_frames(bytes: &[u8]) -> Vec<FrameDesc> {
    let mut d = Deframer::default();
    let mut out = describe_stream(&mut d, bytes);
    d.finish(|it| out.push(FrameDesc::of(it)));
    out
}

/// Like [`describe_frames`], continuing a stream: a frame split across feed items is described
/// with the item that completes it, as the client will see it.
pub fn describe_stream(d: &mut Deframer, bytes: &[u8]) -> Vec<FrameDesc> {
    let mut out = Vec::new();
    d.push(bytes, |it| out.push(FrameDesc::of(it)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::body::{Body, RawBody};
    use crate::codec::{Message, Version};

    fn frame(msg_id: u16, serial: u16) -> Vec<u8> {
        let phone = Phone::parse("13800000001").expect("phone");
        let m = Message::new(
            msg_id,
            Version::V2013,
            phone,
            serial,
            Body::Raw(RawBody { raw: vec![1, 2] }),
        );
        m.encode()
    }

    /// The text is what transcripts have always shown, and the typed form carries its parts.
    #[test]
    fn frames_and_garbage_are_described_as_before() {
        let mut bytes = b"xyz".to_vec();
        bytes.extend(frame(0x0200, 5));
        let mut broken = frame(0x0002, 6);
        let check = broken.len() - 2;
        broken[check] ^= 0x01;
        bytes.extend(broken);
        let d = describe_frames(&bytes);
        let text: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "3 bytes outside frames",
                "0x0200 13800000001 #5",
                "bad frame (bad_checksum)"
            ]
        );
        assert_eq!(
            serde_json::to_string(&d[1]).expect("serialises"),
            "\"0x0200 13800000001 #5\""
        );
        let id = d[1].frame().expect("a frame");
        assert_eq!((id.msg_id, id.serial, id.packet), (0x0200, 5, None));
        assert_eq!(d[0].frame(), None);
        let packet = FrameDesc::Frame(FrameId {
            packet: Some((2, 17)),
            ..*id
        });
        assert_eq!(packet.to_string(), "0x0200 13800000001 #5 [2/17]");
    }
}
