//! 0x8400 call back and 0x8401 set phonebook (JT/T 808 §8.29/8.30).
//!
//! ```text
//! 0x8400: flag BYTE (0 call, 1 listen) | phone STRING (rest, at most 20)
//! 0x8401: type BYTE (0 delete all, 1 update, 2 append, 3 modify) | count BYTE
//!         | count x (flag BYTE (1 in, 2 out, 3 both) | phone length BYTE | phone | name length BYTE | name)
//! ```

use serde::{Deserialize, Serialize};

use super::codec::BodyCodec;
use crate::codec::header::Version;
use crate::codec::wire::{Reader, Text, WireError};

/// The body of 0x8400.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallBack {
    /// 0 normal call, 1 listen.
    pub flag: u8,
    /// The number to call.
    pub phone: Text,
}

impl BodyCodec for CallBack {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        Ok(CallBack {
            flag: r.u8("flag")?,
            phone: Text::from_bytes(r.rest()),
        })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.push(self.flag);
        self.phone.encode(out);
    }
}

/// One phonebook entry of 0x8401.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// 1 incoming, 2 outgoing, 3 both.
    pub flag: u8,
    /// Phone number.
    pub phone: Text,
    /// Contact name (GBK).
    pub name: Text,
}

/// The body of 0x8401.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phonebook {
    /// 0 delete all, 1 update (replace), 2 append, 3 modify.
    pub setting_type: u8,
    /// The entries (the BYTE count on the wire is their number).
    pub contacts: Vec<Contact>,
}

impl BodyCodec for Phonebook {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let setting_type = r.u8("setting_type")?;
        let n = r.u8("count")? as usize;
        let contacts = r.counted(n, |r| {
            Ok(Contact {
                flag: r.u8("contact_flag")?,
                phone: r.len8_text("contact_phone")?,
                name: r.len8_text("contact_name")?,
            })
        })?;
        r.finish("contact_name")?;
        Ok(Phonebook { setting_type, contacts })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.push(self.setting_type);
        out.push(self.contacts.len() as u8);
        for c in &self.contacts {
            out.push(c.flag);
            c.phone.encode_len8(out);
            c.name.encode_len8(out);
        }
    }
}
