//! 0x0107 terminal attributes, the answer to 0x8107 (empty body) (JT/T 808-2013 §8.14, 2019 §8.16).
//!
//! ```text
//! terminal type WORD | maker BYTE[5] | model BYTE[20] (2011: 8, 2019: 30) | terminal id BYTE[7] (2019: 30)
//! | ICCID BCD[10] | hardware version length BYTE | hardware version | firmware version length BYTE
//! | firmware version | GNSS attributes BYTE | communication attributes BYTE
//! ```
//!
//! The 2019 maker field: the standard's table keeps BYTE[5] for 0x0107 (it widened 0x0100's to 11);
//! SmallChi/JT808#43 and #52 went back and forth on it (JT808.md §6). This reads 5, the table's width.
//! Fixed-width strings are NUL padded; other padding is kept raw ([`Text::from_fixed`]).

use serde::Serialize;

use super::codec::BodyCodec;
use crate::codec::header::Version;
use crate::codec::wire::{Reader, Text, WireError, bcd_digits};

/// The body of 0x0107.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TerminalAttributes {
    /// Bits: 0 passenger, 1 dangerous goods, 2 freight, 3 taxi, 6 video, 7 all-in-one.
    pub terminal_type: u16,
    /// Maker id (5 bytes).
    pub maker: Text,
    /// Model (20 bytes; 8 in 2011, 30 in 2019).
    pub model: Text,
    /// Terminal id (7 bytes, 30 in 2019).
    pub terminal_id: Text,
    /// SIM ICCID, BCD[10] (hex of the 10 bytes, which for BCD reads as its digits).
    #[serde(serialize_with = "iccid")]
    pub iccid: [u8; 10],
    /// Hardware version.
    pub hardware_version: Text,
    /// Firmware version.
    pub firmware_version: Text,
    /// Bits: 0 GPS, 1 BeiDou, 2 GLONASS, 3 Galileo.
    pub gnss: u8,
    /// Bits: 0 GPRS, 1 CDMA, 2 TD-SCDMA, 3 WCDMA, 4 CDMA2000, 5 TD-LTE, 7 other.
    pub comm: u8,
    /// The layout the body was read with (not in the JSON).
    #[serde(skip)]
    pub layout: Version,
}

fn iccid<S: serde::Serializer>(v: &[u8; 10], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&bcd_digits(v).unwrap_or_else(|| hex::encode_upper(v)))
}

impl TerminalAttributes {
    fn widths(layout: Version) -> (usize, usize) {
        match layout {
            Version::V2019 => (30, 30),
            Version::V2013 => (20, 7),
            Version::V2011 => (8, 7),
        }
    }
}

impl BodyCodec for TerminalAttributes {
    fn decode_body(b: &[u8], version: Version) -> Result<Self, WireError> {
        let (model, id) = TerminalAttributes::widths(version);
        let mut r = Reader::new(b);
        let v = TerminalAttributes {
            terminal_type: r.u16("terminal_type")?,
            maker: r.fixed_text(5, "maker")?,
            model: r.fixed_text(model, "model")?,
            terminal_id: r.fixed_text(id, "terminal_id")?,
            iccid: r.array("iccid")?,
            hardware_version: r.len8_text("hardware_version")?,
            firmware_version: r.len8_text("firmware_version")?,
            gnss: r.u8("gnss")?,
            comm: r.u8("comm")?,
            layout: version,
        };
        r.finish("comm")?;
        Ok(v)
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        let (model, id) = TerminalAttributes::widths(self.layout);
        out.extend_from_slice(&self.terminal_type.to_be_bytes());
        self.maker.encode_fixed(5, out);
        self.model.encode_fixed(model, out);
        self.terminal_id.encode_fixed(id, out);
        out.extend_from_slice(&self.iccid);
        self.hardware_version.encode_len8(out);
        self.firmware_version.encode_len8(out);
        out.extend_from_slice(&[self.gnss, self.comm]);
    }
}
