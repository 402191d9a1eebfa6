//! 0x0705 CAN bus data upload (JT/T 808-2013 §8.51, 2019 §8.55).
//!
//! ```text
//! count WORD | receive time BCD[5] (hh mm ss msms) | count x (CAN id DWORD | data BYTE[8])
//! ```
//!
//! CAN id bits: 31 channel (0 CAN1, 1 CAN2), 30 frame type (0 standard, 1 extended), 29 collection
//! (0 raw, 1 average), 0-28 the bus id.

use serde::Serialize;

use super::codec::BodyCodec;
use crate::codec::header::Version;
use crate::codec::wire::{Reader, WireError};

/// One CAN frame of 0x0705.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CanItem {
    /// The CAN id DWORD with its flag bits.
    pub id: u32,
    /// The 8 data bytes (hex).
    #[serde(with = "crate::codec::wire::hex_upper")]
    pub data: [u8; 8],
}

/// The body of 0x0705.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CanData {
    /// Receive time of the first frame, hhmmss and milliseconds as BCD (hex of the 5 bytes:
    /// `"1230450123"` is 12:30:45.123).
    #[serde(with = "crate::codec::wire::hex_upper")]
    pub time: [u8; 5],
    /// The frames (the WORD count on the wire is their number).
    pub items: Vec<CanItem>,
}

impl BodyCodec for CanData {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let n = r.u16("count")? as usize;
        let time = r.array("time")?;
        let items = r.counted(n, |r| {
            Ok(CanItem {
                id: r.u32("can_id")?,
                data: r.array("can_data")?,
            })
        })?;
        r.finish("can_data")?;
        Ok(CanData { time, items })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.items.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.time);
        for it in &self.items {
            out.extend_from_slice(&it.id.to_be_bytes());
            out.extend_from_slice(&it.data);
        }
    }
}
