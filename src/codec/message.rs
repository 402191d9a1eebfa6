//! A message: a header with its (reassembled) body, and encoding it back to wire frames, splitting a
//! long body into sub-packets.

use serde::Serialize;

use super::body::Body;
use super::frame::{MAX_BODY_LEN, frame_into};
use super::header::{Header, PacketInfo, Phone, Version};

/// One decoded (or to-be-encoded) message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The header. For a reassembled message, the first packet's header with `packet` cleared and
    /// `body_len` the reassembled length (which may exceed 1023).
    pub header: Header,
    /// The body.
    pub body: Body,
    /// For a reassembled message: how many packets it came in, and the serial of its first packet.
    pub assembled: Option<Assembled>,
}

/// Where a reassembled message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Assembled {
    /// Number of packets.
    pub packets: u16,
    /// Serial of packet 1.
    pub first_serial: u16,
}

impl Message {
    /// A message ready to encode.
    pub fn new(msg_id: u16, version: Version, phone: Phone, serial: u16, body: Body) -> Message {
        Message {
            header: Header::new(msg_id, version, phone, serial),
            body,
            assembled: None,
        }
    }

    /// The body's bytes.
    pub fn body_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        self.body.encode(self.header.version, &mut b);
        b
    }

    /// Encodes as one wire frame (delimiters, escapes, check code) appended to `out`. The header's
    /// sub-packet item, if any, is written as it is; use [`Message::encode_packets`] to split.
    ///
    /// A body longer than the 1023 bytes the length field can declare (JT/T 808-2019 §4.4.3) cannot
    /// go in one frame: it is split into sub-packets of 1023 bytes with consecutive serials from
    /// the header's, never truncated.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let body = self.body_bytes();
        if body.len() > MAX_BODY_LEN && self.header.packet.is_none() {
            let mut serial = self.header.serial;
            for frame in self.encode_packets(MAX_BODY_LEN, || {
                let s = serial;
                serial = serial.wrapping_add(1);
                s
            }) {
                out.extend_from_slice(&frame);
            }
            return;
        }
        let mut content = Vec::with_capacity(self.header.wire_len() + body.len());
        self.header.write(body.len(), &mut content);
        content.extend_from_slice(&body);
        frame_into(&content, out);
    }

    /// Encodes as one wire frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Encodes as wire frames: one when the body fits `packet_size` (at most 1023), otherwise
    /// sub-packets of `packet_size` body bytes each, packet `i` carrying serial `next_serial()`.
    /// The first packet keeps the header's own serial only if `next_serial` returns it.
    pub fn encode_packets(&self, packet_size: usize, mut next_serial: impl FnMut() -> u16) -> Vec<Vec<u8>> {
        let packet_size = packet_size.clamp(1, MAX_BODY_LEN);
        let body = self.body_bytes();
        if body.len() <= packet_size && self.header.packet.is_none() {
            let mut h = self.header.clone();
            h.serial = next_serial();
            let mut content = Vec::with_capacity(h.wire_len() + body.len());
            h.write(body.len(), &mut content);
            content.extend_from_slice(&body);
            let mut out = Vec::new();
            frame_into(&content, &mut out);
            return vec![out];
        }
        let parts: Vec<&[u8]> = if body.is_empty() {
            vec![&[][..]]
        } else {
            body.chunks(packet_size).collect()
        };
        let total = parts.len().min(u16::MAX as usize) as u16;
        parts
            .iter()
            .take(total as usize)
            .enumerate()
            .map(|(i, part)| {
                let mut h = self.header.clone();
                h.serial = next_serial();
                h.packet = Some(PacketInfo {
                    total,
                    index: i as u16 + 1,
                });
                let mut content = Vec::with_capacity(h.wire_len() + part.len());
                h.write(part.len(), &mut content);
                content.extend_from_slice(part);
                let mut out = Vec::new();
                frame_into(&content, &mut out);
                out
            })
            .collect()
    }
}

/// JSON shape of a message, a contract for scripts and transcripts:
/// `{"msg_id":"0x0200","version":"2013","phone":"...","serial":N,"body":{...}}`, plus
/// `"packets"` and `"first_serial"` for a reassembled message, `"protocol_version"` for 2019,
/// `"encryption"` when not plain and `"quirk"` when the header's version flag lied.
impl Serialize for Message {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let h = &self.header;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("msg_id", &super::header::msg_id_hex(h.msg_id))?;
        m.serialize_entry("version", &h.version)?;
        if let Some(v) = h.protocol_version {
            m.serialize_entry("protocol_version", &v)?;
        }
        m.serialize_entry("phone", &h.phone)?;
        m.serialize_entry("serial", &h.serial)?;
        if let Some(a) = &self.assembled {
            m.serialize_entry("packets", &a.packets)?;
            m.serialize_entry("first_serial", &a.first_serial)?;
        }
        if h.encryption != 0 {
            m.serialize_entry("encryption", &h.encryption)?;
        }
        if let Some(q) = &h.quirk {
            m.serialize_entry("quirk", q)?;
        }
        m.serialize_entry("body", &self.body)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::body::RawBody;
    use crate::codec::{DecodeEvent, Decoder};
    use std::time::Duration;

    #[test]
    fn a_body_over_1023_bytes_is_split_not_truncated() {
        let raw: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        let m = Message::new(
            0x0F10,
            Version::V2013,
            Phone::parse("1").unwrap(),
            100,
            Body::Raw(RawBody { raw: raw.clone() }),
        );
        let wire = m.encode();
        let events = Decoder::default().push_vec(&wire, Duration::ZERO);
        let msgs: Vec<_> = events
            .into_iter()
            .filter_map(|e| match e {
                DecodeEvent::Message(m) => Some(m),
                _ => None,
            })
            .collect();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].body_bytes(), raw);
        assert_eq!(msgs[0].assembled.map(|a| (a.packets, a.first_serial)), Some((3, 100)));
    }
}
