//! 0x8105 terminal control (JT/T 808 §8.12): command word BYTE, then for commands 1 (wireless
//! upgrade) and 2 (connect to a server) a STRING of `;`-separated parameters, the rest of the body.
//! Commands: 1 upgrade, 2 connect to server, 3 power off, 4 reset, 5 factory reset, 6 close data
//! link, 7 close all wireless links.

use serde::{Deserialize, Serialize};

use super::codec::BodyCodec;
use crate::codec::header::Version;
use crate::codec::wire::{Reader, Text, WireError};

/// The body of 0x8105.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminalControl {
    /// The command word.
    pub command: u8,
    /// The parameter string (GBK, fields separated by `;`); absent when the body ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Text>,
}

impl BodyCodec for TerminalControl {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let command = r.u8("command")?;
        let params = (!r.is_empty()).then(|| Text::from_bytes(r.rest()));
        Ok(TerminalControl { command, params })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.push(self.command);
        if let Some(p) = &self.params {
            p.encode(out);
        }
    }
}
