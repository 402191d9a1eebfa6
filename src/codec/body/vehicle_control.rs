//! 0x8500 vehicle control (JT/T 808-2013 §8.31, 2019 §8.35). The terminal answers with 0x0500,
//! reply serial + location ([`LocationAnswer`](super::LocationAnswer)).
//!
//! ```text
//! 2011/2013: control flag BYTE (bit 0: 1 lock doors, 0 unlock)
//! 2019:      count WORD | count x (control type WORD | parameter)
//!            type 0x0001 doors: BYTE 0 lock, 1 unlock; 0x0002-0x8000 reserved, 0xF001-0xFFFF vendor
//! ```
//!
//! A 2019 control type whose parameter length the standard does not give (anything but 0x0001)
//! takes the rest of the body as its parameter: the layout leaves no way to find where it ends.

use serde::{Deserialize, Serialize};

use super::codec::BodyCodec;
use crate::codec::header::Version;
use crate::codec::wire::{Reader, WireError};

/// One 2019 control item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlItem {
    /// Control type id (0x0001 doors).
    #[serde(with = "crate::codec::body::hex_id")]
    pub id: u16,
    /// Its parameter bytes (hex; one byte for doors).
    #[serde(with = "crate::codec::wire::hex_upper")]
    pub param: Vec<u8>,
}

/// The body of 0x8500: `flag` in the 2011/2013 layout, `controls` in the 2019 one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VehicleControl {
    /// 2011/2013: the control flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<u8>,
    /// 2019: the control items (the WORD count on the wire is their number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controls: Option<Vec<ControlItem>>,
}

/// The door control type.
const DOORS: u16 = 0x0001;

impl BodyCodec for VehicleControl {
    fn decode_body(b: &[u8], version: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        if version != Version::V2019 {
            let flag = r.u8("flag")?;
            r.finish("flag")?;
            return Ok(VehicleControl {
                flag: Some(flag),
                controls: None,
            });
        }
        let n = r.u16("count")? as usize;
        let controls = r.counted(n, |r| {
            let id = r.u16("control_id")?;
            let param = match id {
                DOORS => r.bytes(1, "control_param")?.to_vec(),
                _ => r.rest().to_vec(),
            };
            Ok(ControlItem { id, param })
        })?;
        r.finish("control_param")?;
        Ok(VehicleControl {
            flag: None,
            controls: Some(controls),
        })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.extend(self.flag);
        if let Some(items) = &self.controls {
            out.extend_from_slice(&(items.len() as u16).to_be_bytes());
            for c in items {
                out.extend_from_slice(&c.id.to_be_bytes());
                out.extend_from_slice(&c.param);
            }
        }
    }
}
