//! 0x0704 batch location upload (JT808.md §5.5): count WORD, type BYTE (0 normal batch, 1
//! blind-area re-send), then items of `length WORD + 0x0200 body of that length`.
//!
//! "In a real 0x0704 frame the declared body length is larger than the bytes present, so the last
//! item is cut. Parse the items that are whole." The cut item is kept in `cut` (so the body still
//! re-encodes exactly), and an item too short for a location block is kept raw with the reason.
//! Items are read to the end of the body; `count` is kept as declared, so a mismatch shows.

use serde::Serialize;

use super::location::Location;
use crate::codec::wire::{Reader, WireError};

/// The body of 0x0704.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchLocation {
    /// Item count as declared.
    pub count: u16,
    /// 0 normal batch, 1 blind-area re-send.
    pub batch_type: u8,
    /// The whole items, in order.
    pub items: Vec<BatchItem>,
    /// The last item when the body ends inside it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cut: Option<CutItem>,
}

/// One item of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum BatchItem {
    /// A location report body.
    Location(Location),
    /// An item that is not a location block (shorter than its 28-byte basic block).
    Invalid {
        /// Why, with the body offset.
        error: String,
        /// The item's bytes (hex).
        #[serde(with = "crate::codec::wire::hex_upper")]
        raw: Vec<u8>,
    },
}

/// An item cut off by the end of the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CutItem {
    /// Body offset of its length WORD.
    pub offset: usize,
    /// The declared length (absent when the body ends inside the length WORD).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_len: Option<u16>,
    /// The bytes present after the length (or the lone length byte).
    #[serde(with = "crate::codec::wire::hex_upper")]
    pub raw: Vec<u8>,
}

impl BatchLocation {
    /// Message id.
    pub const ID: u16 = 0x0704;

    /// Decodes the body.
    pub fn decode(b: &[u8]) -> Result<BatchLocation, WireError> {
        let mut r = Reader::new(b);
        let count = r.u16("count")?;
        let batch_type = r.u8("batch_type")?;
        let mut items = Vec::with_capacity((count as usize).min(r.remaining() / 30 + 1));
        let mut cut = None;
        while !r.is_empty() {
            let offset = r.offset();
            if r.remaining() < 2 {
                cut = Some(CutItem {
                    offset,
                    declared_len: None,
                    raw: r.rest().to_vec(),
                });
                break;
            }
            let len = r.u16("item_len")?;
            if r.remaining() < len as usize {
                cut = Some(CutItem {
                    offset,
                    declared_len: Some(len),
                    raw: r.rest().to_vec(),
                });
                break;
            }
            let at = r.offset();
            let item = r.bytes(len as usize, "item")?;
            items.push(match Location::decode_at(item, at) {
                Ok(loc) => BatchItem::Location(loc),
                Err(e) => BatchItem::Invalid {
                    error: e.to_string(),
                    raw: item.to_vec(),
                },
            });
        }
        Ok(BatchLocation {
            count,
            batch_type,
            items,
            cut,
        })
    }

    /// Appends the body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.count.to_be_bytes());
        out.push(self.batch_type);
        for item in &self.items {
            let len_at = out.len();
            out.extend_from_slice(&[0, 0]);
            match item {
                BatchItem::Location(loc) => loc.encode(out),
                BatchItem::Invalid { raw, .. } => out.extend_from_slice(raw),
            }
            let n = (out.len() - len_at - 2) as u16;
            out[len_at..len_at + 2].copy_from_slice(&n.to_be_bytes());
        }
        if let Some(c) = &self.cut {
            if let Some(l) = c.declared_len {
                out.extend_from_slice(&l.to_be_bytes());
            }
            out.extend_from_slice(&c.raw);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ITEM: &str = "001c000004000000080006eeb6ad02633df7013800030063200707192359";

    #[test]
    fn whole_items_decode_and_re_encode() {
        let hex_body = format!("000301{ITEM}{ITEM}{ITEM}");
        let b = hex::decode(&hex_body).unwrap();
        let batch = BatchLocation::decode(&b).unwrap();
        assert_eq!((batch.count, batch.batch_type, batch.items.len()), (3, 1, 3));
        let BatchItem::Location(first) = &batch.items[0] else {
            panic!("not a location")
        };
        assert_eq!(first.time.to_string(), "2020-07-07 19:23:59");
        let mut out = Vec::new();
        batch.encode(&mut out);
        assert_eq!(hex::encode(out), hex_body);
    }

    #[test]
    fn a_cut_last_item_is_kept_and_reported() {
        let hex_body = format!("000200{ITEM}{}", &ITEM[..20]);
        let b = hex::decode(&hex_body).unwrap();
        let batch = BatchLocation::decode(&b).unwrap();
        assert_eq!(batch.items.len(), 1);
        let cut = batch.cut.as_ref().unwrap();
        assert_eq!((cut.offset, cut.declared_len, cut.raw.len()), (33, Some(28), 8));
        let mut out = Vec::new();
        batch.encode(&mut out);
        assert_eq!(hex::encode(out), hex_body);
    }

    #[test]
    fn an_item_too_short_for_a_location_is_kept_raw_with_the_offset() {
        let b = hex::decode("000100".to_owned() + "0003aabbcc").unwrap();
        let batch = BatchLocation::decode(&b).unwrap();
        let BatchItem::Invalid { error, .. } = &batch.items[0] else {
            panic!("expected invalid item")
        };
        assert_eq!(error, "alarm at body byte 5: needs 4 bytes, 3 left");
    }
}
