//! The event, question and information-service messages of JT/T 808-2011/2013 (§8.24-8.28), which
//! the 2019 edition deleted. Older devices still send them, so they decode, wrapped in [`Deleted`]
//! whose JSON says so (`"deleted_in_2019": true`).
//!
//! ```text
//! 0x8301 event setting:   type BYTE | count BYTE | count x (id BYTE | length BYTE | content STRING)
//! 0x0301 event report:    event id BYTE
//! 0x8302 question:        flag BYTE | length BYTE | question STRING | answers to the end:
//!                         (id BYTE | length WORD | content STRING)
//! 0x0302 question answer: reply serial WORD | answer id BYTE
//! 0x8303 info menu:       type BYTE | count BYTE | count x (info type BYTE | length WORD | name STRING)
//! 0x0303 info demand:     info type BYTE | flag BYTE (0 cancel, 1 demand)
//! 0x8304 info service:    info type BYTE | length WORD | content STRING
//! ```

use serde::{Deserialize, Deserializer, Serialize};

use super::codec::BodyCodec;
use crate::codec::header::Version;
use crate::codec::wire::{Reader, Text, WireError};

/// A body of an id the 2019 edition deleted: the body, and `"deleted_in_2019": true` in its JSON.
/// Builds from the body's own fields (the marker is not needed back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted<T>(pub T);

impl<T: Serialize> Serialize for Deleted<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Marked<'a, T> {
            #[serde(flatten)]
            body: &'a T,
            deleted_in_2019: bool,
        }
        Marked {
            body: &self.0,
            deleted_in_2019: true,
        }
        .serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Deleted<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Deleted)
    }
}

impl<T: BodyCodec> BodyCodec for Deleted<T> {
    fn decode_body(b: &[u8], v: Version) -> Result<Self, WireError> {
        T::decode_body(b, v).map(Deleted)
    }
    fn encode_body(&self, v: Version, out: &mut Vec<u8>) {
        self.0.encode_body(v, out)
    }
}

flat_body! {
    /// The body of 0x0301.
    pub struct EventReport {
        /// The event id (as set by 0x8301).
        event_id: u8,
    }
}

flat_body! {
    /// The body of 0x0302.
    pub struct QuestionAnswer {
        /// Serial of the 0x8302 answered.
        reply_serial: u16,
        /// The chosen answer's id.
        answer_id: u8,
    }
}

flat_body! {
    /// The body of 0x0303.
    pub struct InfoDemand {
        /// The information type.
        info_type: u8,
        /// 0 cancel, 1 demand.
        flag: u8,
    }
}

/// One event of 0x8301.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventItem {
    /// Event id.
    pub id: u8,
    /// Event text (BYTE length).
    pub content: Text,
}

/// The body of 0x8301.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSetting {
    /// 0 delete all, 1 update, 2 append, 3 modify, 4 delete given.
    pub setting_type: u8,
    /// The events (the BYTE count on the wire is their number).
    pub events: Vec<EventItem>,
}

impl BodyCodec for EventSetting {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let setting_type = r.u8("setting_type")?;
        let n = r.u8("count")? as usize;
        let events = r.counted(n, |r| {
            Ok(EventItem {
                id: r.u8("event_id")?,
                content: r.len8_text("event_content")?,
            })
        })?;
        r.finish("event_content")?;
        Ok(EventSetting { setting_type, events })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.setting_type, self.events.len() as u8]);
        for e in &self.events {
            out.push(e.id);
            e.content.encode_len8(out);
        }
    }
}

/// One candidate answer of 0x8302.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerItem {
    /// Answer id.
    pub id: u8,
    /// Answer text (WORD length).
    pub content: Text,
}

/// The body of 0x8302.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// Bits: 0 emergency, 3 TTS, 4 advertising screen.
    pub flag: u8,
    /// The question (BYTE length).
    pub question: Text,
    /// The candidate answers, to the end of the body.
    pub answers: Vec<AnswerItem>,
}

impl BodyCodec for Question {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let flag = r.u8("flag")?;
        let question = r.len8_text("question")?;
        let mut answers = Vec::new();
        while !r.is_empty() {
            answers.push(AnswerItem {
                id: r.u8("answer_id")?,
                content: r.len16_text("answer_content")?,
            });
        }
        Ok(Question {
            flag,
            question,
            answers,
        })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.push(self.flag);
        self.question.encode_len8(out);
        for a in &self.answers {
            out.push(a.id);
            a.content.encode_len16(out);
        }
    }
}

/// One menu entry of 0x8303.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfoItem {
    /// Information type.
    pub info_type: u8,
    /// Its name (WORD length).
    pub name: Text,
}

/// The body of 0x8303.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfoMenu {
    /// 0 delete all, 1 update, 2 append, 3 modify.
    pub setting_type: u8,
    /// The entries (the BYTE count on the wire is their number).
    pub items: Vec<InfoItem>,
}

impl BodyCodec for InfoMenu {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let setting_type = r.u8("setting_type")?;
        let n = r.u8("count")? as usize;
        let items = r.counted(n, |r| {
            Ok(InfoItem {
                info_type: r.u8("info_type")?,
                name: r.len16_text("info_name")?,
            })
        })?;
        r.finish("info_name")?;
        Ok(InfoMenu { setting_type, items })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.setting_type, self.items.len() as u8]);
        for i in &self.items {
            out.push(i.info_type);
            i.name.encode_len16(out);
        }
    }
}

/// The body of 0x8304.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfoService {
    /// Information type.
    pub info_type: u8,
    /// The content (WORD length).
    pub content: Text,
}

impl BodyCodec for InfoService {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let v = InfoService {
            info_type: r.u8("info_type")?,
            content: r.len16_text("content")?,
        };
        r.finish("content")?;
        Ok(v)
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.push(self.info_type);
        self.content.encode_len16(out);
    }
}
