//! Which incoming message answers which outgoing one, and the 0x8003 retransmit request. Pure.
//!
//! JT/T 808 answers name the serial they answer (JT808.md §3, §7): 0x0001 carries reply serial,
//! reply id and result; the answers of [`ANSWERS`] (0x0104 to 0x8104/0x8106, 0x0201, 0x0500,
//! 0x0802, 0x0805, 0x1205, 0x1206) start with the reply serial WORD. Matching uses
//! [`Body::reply_serial`] and the message id, plus the phone, because one gateway may carry many
//! terminals and serials are only unique per sender. 0x0107, 0x0608 and 0x1003 carry no reply
//! serial: they answer the oldest open command of their id to that terminal.

use crate::codec::body::{Body, GeneralResponse, RawBody};
use crate::codec::reassembly::Expired;
use crate::codec::{Message, Version};

/// 0x1205 terminal uploads its audio/video resource list (JT/T 1078 §5.5.2).
pub const AV_RESOURCE_LIST: u16 = 0x1205;
/// 0x1206 file upload complete notice (JT/T 1078 §5.5.5).
pub const FILE_UPLOAD_DONE: u16 = 0x1206;
/// 0x9205 platform queries the resource list.
pub const QUERY_AV_RESOURCES: u16 = 0x9205;
/// 0x9206 platform orders a file upload.
pub const FILE_UPLOAD: u16 = 0x9206;
/// 0x8003 platform retransmit request (JT808.md §3).
pub const RETRANSMIT_REQUEST: u16 = 0x8003;

/// The serial an answer names.
///
/// Temporary shim: until the typed 0x1205/0x1206 bodies land in `codec::body` (being added in
/// parallel), those ids decode as [`Body::Raw`] and `reply_serial()` returns `None` for them; the
/// standard puts the reply serial in their first two body bytes (JT808.md §7.1, §7.2), so it is read
/// from there. Once the typed bodies exist `reply_serial()` answers first and the shim is unused.
pub fn reply_serial(msg: &Message) -> Option<u16> {
    msg.body
        .reply_serial()
        .or_else(|| match (&msg.body, msg.header.msg_id) {
            (Body::Raw(RawBody { raw }), AV_RESOURCE_LIST | FILE_UPLOAD_DONE) if raw.len() >= 2 => {
                Some(u16::from_be_bytes([raw[0], raw[1]]))
            }
            _ => None,
        })
}

/// An answer to an earlier platform message, as far as delivery and requests care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// Serial of the message answered (0 when `by_serial` is false).
    pub serial: u16,
    /// Id of the message answered (0x8104 for an 0x0104, which answers 0x8106 too: see
    /// [`Answer::answers_command`]).
    pub answers: u16,
    /// The general response's result, for 0x0001.
    pub result: Option<u8>,
    /// Whether the answer names the serial it answers. 0x0107, 0x0608 and 0x1003 have no reply
    /// serial field (JT/T 808-2019 §8.16, §8.45; JT/T 1078 §5.2.2): they answer the oldest
    /// command of their id written to that terminal and not yet answered.
    pub by_serial: bool,
}

impl Answer {
    /// Whether this answers the command `msg_id` that went out with `serial`.
    pub fn answers_command(&self, msg_id: u16, serial: u16) -> bool {
        let id = msg_id == self.answers || (self.answers == QUERY_ALL_PARAMS && msg_id == QUERY_PARAMS);
        id && (!self.by_serial || serial == self.serial)
    }
}

/// 0x8104 query all parameters.
pub const QUERY_ALL_PARAMS: u16 = 0x8104;
/// 0x8106 query parameters by id; answered by 0x0104 like 0x8104.
pub const QUERY_PARAMS: u16 = 0x8106;

/// The answers that are not a general response: (answer id, the command it answers, whether
/// its body names the command's serial). 0x0104 answers 0x8106 as well ([`QUERY_PARAMS`]).
/// 0x0801 after an 0x8801 is no answer: the 0x0805 before it is.
pub const ANSWERS: &[(u16, u16, bool)] = &[
    (0x0104, QUERY_ALL_PARAMS, true),
    (0x0107, 0x8107, false),
    (0x0201, 0x8201, true),
    (0x0500, 0x8500, true),
    (0x0608, 0x8608, false),
    (0x0700, 0x8700, true),
    (0x0702, 0x8702, false),
    (0x0802, 0x8802, true),
    (0x0805, 0x8801, true),
    (0x1003, 0x9003, false),
    (AV_RESOURCE_LIST, QUERY_AV_RESOURCES, true),
    (FILE_UPLOAD_DONE, FILE_UPLOAD, true),
];

/// What `msg` answers, if it is an answer this client tracks: 0x0001 (any command), or one of
/// [`ANSWERS`].
pub fn answer_of(msg: &Message) -> Option<Answer> {
    let id = msg.header.msg_id;
    if let (Body::TerminalGeneralResponse(GeneralResponse { reply_id, result, .. }), GeneralResponse::TERMINAL_ID) =
        (&msg.body, id)
    {
        return Some(Answer {
            serial: reply_serial(msg)?,
            answers: *reply_id,
            result: Some(*result),
            by_serial: true,
        });
    }
    let &(_, answers, by_serial) = ANSWERS.iter().find(|a| a.0 == id)?;
    let serial = if by_serial { reply_serial(msg)? } else { 0 };
    Some(Answer {
        serial,
        answers,
        result: None,
        by_serial,
    })
}

/// The message id that finally answers a request of `msg_id` in [`super::Client::request`]: the
/// answer of [`ANSWERS`] (0x9205 -> 0x1205, 0x9206 -> 0x1206 after a 0x0001, 0x8104 and 0x8106
/// -> 0x0104, 0x8801 -> 0x0805, ...); anything else -> its 0x0001.
pub fn final_answer_id(msg_id: u16) -> u16 {
    let msg_id = if msg_id == QUERY_PARAMS {
        QUERY_ALL_PARAMS
    } else {
        msg_id
    };
    ANSWERS
        .iter()
        .find(|a| a.1 == msg_id)
        .map_or(GeneralResponse::TERMINAL_ID, |a| a.0)
}

/// Largest index count in one 0x8003: a BYTE in 2011/2013, a WORD in 2019 (JT808.md §3).
pub fn max_indices(version: Version) -> usize {
    if version.is_2019() {
        u16::MAX as usize
    } else {
        u8::MAX as usize
    }
}

/// The bodies of the 0x8003 retransmit requests for an expired group: original serial WORD (the
/// first packet's), count (BYTE in 2011/2013, WORD in 2019), then the indices as WORDs. More
/// missing indices than one count can hold are split over several requests.
///
/// Built as raw bytes here because the codec has no typed 0x8003 body yet.
pub fn retransmit_bodies(e: &Expired) -> Vec<Vec<u8>> {
    e.missing
        .chunks(max_indices(e.version))
        .map(|chunk| {
            let mut b = Vec::with_capacity(4 + 2 * chunk.len());
            b.extend_from_slice(&e.first_serial.to_be_bytes());
            if e.version.is_2019() {
                b.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            } else {
                b.push(chunk.len() as u8);
            }
            for i in chunk {
                b.extend_from_slice(&i.to_be_bytes());
            }
            b
        })
        .collect()
}

/// The 0x8003 messages for an expired group, addressed to its terminal in its header version,
/// each with the indices it asks for.
pub fn retransmit_requests(e: &Expired) -> Vec<(Message, Vec<u16>)> {
    retransmit_bodies(e)
        .into_iter()
        .zip(e.missing.chunks(max_indices(e.version)))
        .map(|(raw, indices)| {
            let msg = Message::new(RETRANSMIT_REQUEST, e.version, e.phone, 0, Body::Raw(RawBody { raw }));
            (msg, indices.to_vec())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Phone;
    use crate::codec::reassembly::ExpireReason;

    fn expired(version: Version, missing: Vec<u16>) -> Expired {
        Expired {
            phone: Phone::parse("13800138000").unwrap(),
            msg_id: 0x0801,
            version,
            total: 300,
            received: 300 - missing.len() as u16,
            missing: crate::codec::reassembly::Missing::from_indices(missing),
            first_serial: 0x1234,
            first_serial_known: true,
            reason: ExpireReason::Timeout,
        }
    }

    #[test]
    fn retransmit_request_counts_with_a_byte_in_2013_and_a_word_in_2019() {
        // JT808.md §8: 0x8003 is 3 + 2n bytes in 2013, 4 + 2n in 2019.
        let b13 = retransmit_bodies(&expired(Version::V2013, vec![2, 5]));
        assert_eq!(b13, [vec![0x12, 0x34, 2, 0, 2, 0, 5]]);
        let b19 = retransmit_bodies(&expired(Version::V2019, vec![2, 5]));
        assert_eq!(b19, [vec![0x12, 0x34, 0, 2, 0, 2, 0, 5]]);
    }

    #[test]
    fn more_than_255_missing_packets_in_2013_take_two_requests() {
        let missing: Vec<u16> = (1..=256).collect();
        let b = retransmit_bodies(&expired(Version::V2013, missing));
        assert_eq!(b.len(), 2);
        assert_eq!(b[0][2], 255);
        assert_eq!(b[0].len(), 3 + 2 * 255);
        assert_eq!(b[1], vec![0x12, 0x34, 1, 1, 0]);
    }

    #[test]
    fn answers_name_the_request_they_answer() {
        let phone = Phone::parse("1").unwrap();
        let ack = Message::new(
            0x0001,
            Version::V2013,
            phone,
            9,
            Body::TerminalGeneralResponse(GeneralResponse {
                reply_serial: 7,
                reply_id: 0x9206,
                result: 0,
            }),
        );
        assert_eq!(
            answer_of(&ack),
            Some(Answer {
                serial: 7,
                answers: 0x9206,
                result: Some(0),
                by_serial: true,
            })
        );
        let list = decoded_1205(phone, &[0x00, 0x07, 0, 0, 0, 0]);
        assert_eq!(answer_of(&list).map(|a| (a.serial, a.answers)), Some((7, 0x9205)));
        assert_eq!(final_answer_id(0x9205), 0x1205);
        assert_eq!(final_answer_id(0x9206), 0x1206);
        assert_eq!(final_answer_id(0x8103), 0x0001);
    }

    /// A 0x1205 as the decoder produces it (typed or raw, whichever the codec has).
    fn decoded_1205(phone: Phone, body: &[u8]) -> Message {
        let mut h = crate::codec::Header::new(AV_RESOURCE_LIST, Version::V2013, phone, 3);
        h.body_len = body.len() as u16;
        crate::codec::decoder::decode_message(h, body, None)
    }
}
