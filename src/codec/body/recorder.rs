//! Driving recorder (tachograph) messages: 0x8700 data collection command, 0x8701 parameter
//! download, 0x0700 data upload (JT/T 808 §8.43-8.45). Their data block is a GB/T 19056-2012
//! frame:
//!
//! ```text
//! 0x8700 / 0x8701: command word BYTE | data block
//! 0x0700:          reply serial WORD | command word BYTE | data block
//! data block:      AA 75 (platform) or 55 7A (recorder) | command BYTE | length WORD | reserved BYTE
//!                  | data[length] | XOR of every byte before it
//! ```
//!
//! The bytes are kept as they came (so every body re-encodes exactly, including blocks that are
//! not a GB/T 19056 frame: many platforms send the command word alone); the JSON adds `frame`, the
//! block read as a GB/T 19056 frame, with `check_ok` and, for the common commands, the data typed:
//! 0x01 driver licence (18 bytes), 0x02/0xC2/0x83 a time BCD[6], 0x05/0x82 vehicle information
//! (VIN 17, plate 12 GBK, plate class 12 GBK), and the record queries 0x08-0x15 sent by the
//! platform, a time range (start BCD[6], end BCD[6], max blocks WORD).

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use super::codec::BodyCodec;
use crate::codec::header::Version;
use crate::codec::wire::{BcdTime, Reader, Text, WireError};

/// The body of 0x8700 and 0x8701.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecorderCommand {
    /// The GB/T 19056 command word.
    pub command: u8,
    /// The data block (hex).
    #[serde(default, with = "crate::codec::wire::hex_upper")]
    pub data: Vec<u8>,
}

/// The body of 0x0700.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecorderUpload {
    /// Serial of the 0x8700 answered.
    pub reply_serial: u16,
    /// The GB/T 19056 command word.
    pub command: u8,
    /// The data block (hex).
    pub data: Vec<u8>,
}

/// A data block read as a GB/T 19056 frame (a view for the JSON; the bytes stay in `data`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecorderFrame {
    /// The command word inside the frame.
    pub command: u8,
    /// The declared data length.
    pub len: u16,
    /// Whether the XOR check byte matches.
    pub check_ok: bool,
    /// The data, typed for the common commands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<RecorderBlock>,
}

/// The data of a GB/T 19056 frame of a common command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecorderBlock {
    /// 0x01: the driver's licence number.
    DriverLicence(Text),
    /// 0x02, 0x83, 0xC2: a time.
    Time(BcdTime),
    /// 0x05, 0x82: vehicle information.
    VehicleInfo {
        /// VIN, 17 bytes.
        vin: Text,
        /// Plate, 12 bytes GBK.
        plate: Text,
        /// Plate class, 12 bytes GBK.
        plate_class: Text,
    },
    /// 0x08-0x15 from the platform: which records.
    TimeRange {
        /// Start.
        start: BcdTime,
        /// End.
        end: BcdTime,
        /// At most this many data blocks.
        max_blocks: u16,
    },
}

/// Reads `data` as a GB/T 19056 frame, or `None` when it is not one.
pub fn recorder_frame(data: &[u8]) -> Option<RecorderFrame> {
    let head = data.get(..2)?;
    let from_platform = head == [0xAA, 0x75];
    if !from_platform && head != [0x55, 0x7A] {
        return None;
    }
    let mut r = Reader::new(&data[2..]);
    let command = r.u8("command").ok()?;
    let len = r.u16("len").ok()?;
    r.u8("reserved").ok()?;
    let body = r.bytes(len as usize, "data").ok()?;
    let check = r.u8("check").ok()?;
    if !r.is_empty() {
        return None;
    }
    let xor = data[..data.len() - 1].iter().fold(0, |a, b| a ^ b);
    Some(RecorderFrame {
        command,
        len,
        check_ok: xor == check,
        block: recorder_block(command, from_platform, body),
    })
}

fn recorder_block(command: u8, from_platform: bool, b: &[u8]) -> Option<RecorderBlock> {
    let mut r = Reader::new(b);
    let block = match (command, b.len()) {
        (0x01, 18) if !from_platform => RecorderBlock::DriverLicence(r.fixed_text(18, "licence").ok()?),
        (0x02 | 0x83 | 0xC2, 6) => RecorderBlock::Time(r.bcd_time("time").ok()?),
        (0x05 | 0x82, 41) => RecorderBlock::VehicleInfo {
            vin: r.fixed_text(17, "vin").ok()?,
            plate: r.fixed_text(12, "plate").ok()?,
            plate_class: r.fixed_text(12, "plate_class").ok()?,
        },
        (0x08..=0x15, 14) if from_platform => RecorderBlock::TimeRange {
            start: r.bcd_time("start").ok()?,
            end: r.bcd_time("end").ok()?,
            max_blocks: r.u16("max_blocks").ok()?,
        },
        _ => return None,
    };
    Some(block)
}

fn serialize_block<S: SerializeStruct>(st: &mut S, command: u8, data: &[u8]) -> Result<(), S::Error> {
    st.serialize_field("command", &command)?;
    st.serialize_field("data", &hex::encode_upper(data))?;
    match recorder_frame(data) {
        Some(f) => st.serialize_field("frame", &f),
        None => st.skip_field("frame"),
    }
}

impl Serialize for RecorderCommand {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("RecorderCommand", 3)?;
        serialize_block(&mut st, self.command, &self.data)?;
        st.end()
    }
}

impl Serialize for RecorderUpload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("RecorderUpload", 4)?;
        st.serialize_field("reply_serial", &self.reply_serial)?;
        serialize_block(&mut st, self.command, &self.data)?;
        st.end()
    }
}

impl BodyCodec for RecorderCommand {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        Ok(RecorderCommand {
            command: r.u8("command")?,
            data: r.rest().to_vec(),
        })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.push(self.command);
        out.extend_from_slice(&self.data);
    }
}

impl BodyCodec for RecorderUpload {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        Ok(RecorderUpload {
            reply_serial: r.u16("reply_serial")?,
            command: r.u8("command")?,
            data: r.rest().to_vec(),
        })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.reply_serial.to_be_bytes());
        out.push(self.command);
        out.extend_from_slice(&self.data);
    }
}
