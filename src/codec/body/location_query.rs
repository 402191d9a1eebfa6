//! Location queries (JT/T 808 §8.19-8.21, 2019 §8.23): 0x8201 asks (empty body), 0x0201 answers
//! with the reply serial WORD and a whole 0x0200 body; 0x8202 temporary tracking; 0x8203 manual
//! alarm confirmation. 0x0500 (vehicle control answer) has the 0x0201 layout, so it shares
//! [`LocationAnswer`]. 0x8204 (2019 link check) is empty.
//!
//! ```text
//! 0x0201 / 0x0500: reply serial WORD | 0x0200 body (basic block + items)
//! 0x8202: interval WORD (s, 0 = stop) | validity DWORD (s; absent in some devices' stop command)
//! 0x8203: alarm serial WORD (0 = all) | alarm type DWORD (bits as 0x0200's alarm)
//! ```

use serde::{Deserialize, Serialize};

use super::codec::BodyCodec;
use super::location::Location;
use crate::codec::header::Version;
use crate::codec::wire::{Reader, WireError};

/// The body of 0x0201 and 0x0500.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocationAnswer {
    /// Serial of the 0x8201 (or 0x8500) answered.
    pub reply_serial: u16,
    /// The location, with its items and their `issues`.
    pub location: Location,
}

impl BodyCodec for LocationAnswer {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let reply_serial = Reader::new(b).u16("reply_serial")?;
        Ok(LocationAnswer {
            reply_serial,
            location: Location::decode_at(&b[2..], 2)?,
        })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.reply_serial.to_be_bytes());
        self.location.encode(out);
    }
}

/// The body of 0x8202.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemporaryTracking {
    /// Report interval, seconds; 0 stops tracking.
    pub interval: u16,
    /// How long to track, seconds (absent when the body ends after the interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity: Option<u32>,
}

impl BodyCodec for TemporaryTracking {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let interval = r.u16("interval")?;
        let validity = if r.is_empty() { None } else { Some(r.u32("validity")?) };
        r.finish("validity")?;
        Ok(TemporaryTracking { interval, validity })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.interval.to_be_bytes());
        if let Some(v) = self.validity {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

flat_body! {
    /// The body of 0x8203.
    pub struct AlarmConfirm {
        /// Serial of the alarm's 0x0200, 0 = every alarm of `alarm_type`.
        alarm_serial: u16,
        /// Which alarms are confirmed (0x0200 alarm bits).
        alarm_type: u32,
    }
}
