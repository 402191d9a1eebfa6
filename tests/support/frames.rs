//! Frame builders the test files share: raw-bodied messages (the bytes a test wants, framed with a
//! real header and check code) and the 0x0100 registration body laid out per edition.

use jt808_harness::codec::body::{Body, RawBody};
use jt808_harness::codec::deframer::Item;
use jt808_harness::codec::frame::frame_into;
use jt808_harness::codec::{Deframer, Header, Message, Phone, Version};

/// A phone from its digits.
pub fn phone(digits: &str) -> Phone {
    Phone::parse(digits).unwrap_or_else(|e| panic!("test phone {digits}: {e}"))
}

/// A message whose body is these bytes, as they are (no typed body).
pub fn raw_message(msg_id: u16, version: Version, phone_digits: &str, serial: u16, body: &[u8]) -> Message {
    Message::new(
        msg_id,
        version,
        phone(phone_digits),
        serial,
        Body::Raw(RawBody { raw: body.to_vec() }),
    )
}

/// The wire bytes of [`raw_message`].
pub fn raw_frame(msg_id: u16, version: Version, phone_digits: &str, serial: u16, body: &[u8]) -> Vec<u8> {
    raw_message(msg_id, version, phone_digits, serial, body).encode()
}

/// A 2013 0x0200 location report with an all-zero 28-byte basic block.
pub fn zero_location(phone_digits: &str, serial: u16) -> Vec<u8> {
    raw_frame(0x0200, Version::V2013, phone_digits, serial, &[0; 28])
}

/// The fields of a 0x0100 registration body; [`Register::body`] pads them to the edition's widths.
pub struct Register<'a> {
    pub province: u16,
    pub city: u16,
    pub maker: &'a [u8],
    pub model: &'a [u8],
    pub terminal_id: &'a [u8],
    pub plate_color: u8,
    pub plate: &'a [u8],
}

impl Register<'_> {
    /// The body bytes: maker, model and terminal id zero-padded to 5, 20, 7 bytes (2011/2013) or
    /// 11, 30, 30 (2019), JT808.md §6.
    pub fn body(&self, version: Version) -> Vec<u8> {
        let (maker, model, tid) = if version.is_2019() { (11, 30, 30) } else { (5, 20, 7) };
        let mut b = Vec::new();
        b.extend(self.province.to_be_bytes());
        b.extend(self.city.to_be_bytes());
        b.extend(padded(self.maker, maker));
        b.extend(padded(self.model, model));
        b.extend(padded(self.terminal_id, tid));
        b.push(self.plate_color);
        b.extend_from_slice(self.plate);
        b
    }
}

/// `s` zero-padded (or cut) to `n` bytes.
pub fn padded(s: &[u8], n: usize) -> Vec<u8> {
    let mut v = s.to_vec();
    v.resize(n, 0);
    v
}

/// Header and fragment of one wire frame.
pub fn split_frame(wire: &[u8]) -> (Header, Vec<u8>) {
    let mut out = None;
    Deframer::default().push(wire, |item| match item {
        Item::Frame(f) => out = Some((f.header.clone(), f.body().to_vec())),
        other => panic!("not a frame: {other:?}"),
    });
    out.expect("one frame")
}

/// The same frame with its header and fragment changed by `edit` (length and check code
/// recomputed).
pub fn reframed(wire: &[u8], edit: impl FnOnce(&mut Header, &mut Vec<u8>)) -> Vec<u8> {
    let (mut h, mut fragment) = split_frame(wire);
    edit(&mut h, &mut fragment);
    let mut content = Vec::new();
    h.write(fragment.len(), &mut content);
    content.extend(&fragment);
    let mut out = Vec::new();
    frame_into(&content, &mut out);
    out
}

/// The same frame with another serial (check code recomputed).
pub fn with_serial(wire: &[u8], serial: u16) -> Vec<u8> {
    reframed(wire, |h, _| h.serial = serial)
}
