//! Terminal parameters (JT/T 808-2013 §8.8-8.11, 2019 §8.10-8.13): 0x8103 sets, 0x8104 asks for
//! all (empty body), 0x8106 asks for some by id, 0x0104 answers.
//!
//! ```text
//! 0x8103: count BYTE | params
//! 0x0104: reply serial WORD | count BYTE | params
//! params: repeated: id DWORD | length BYTE | value[length]
//! 0x8106: count BYTE | count x id DWORD
//! ```
//!
//! Every value is typed by the table ([`table`]: every id of both editions and JT/T 1078's
//! 0x0075-0x007C). Real answers are not always consistent (the 2-packet `yz-0104-2pkt` vector:
//! 88 declared, and the id/length walk goes astray in a long zero run), so nothing after the
//! fixed fields is fatal: the declared `count` is shown beside the `params` read, and a count that
//! disagrees, a value whose length disagrees with its type (kept raw), or bytes after the declared
//! parameters or a cut last one (kept in `rest`) is named in `issues` with its body offset. Every body re-encodes exactly.

pub mod av;
pub mod table;
pub mod value;

use serde::{Deserialize, Serialize};

pub use av::{AlarmRecording, AvChannels, AvParams, ChannelMap, ChannelVideo, ChannelVideoParams, ImageAnalysis, Wake};
pub use table::{PARAMS, ParamDef, ParamType};
pub use value::{Param, ParamValue, decode_value, is_vendor_param};

use super::codec::BodyCodec;
use crate::codec::header::Version;
use crate::codec::wire::{Reader, WireError};

/// Something in a parameter list that is not as the standard says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParamIssue {
    /// Body offset of the field.
    pub offset: usize,
    /// The parameter id, when one was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// What is wrong.
    pub issue: String,
}

/// A parameter list as read: the params, the bytes of a cut last one, and the issues.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct List {
    params: Vec<Param>,
    rest: Vec<u8>,
    issues: Vec<ParamIssue>,
}

fn issue(offset: usize, id: Option<u32>, text: String) -> ParamIssue {
    ParamIssue {
        offset,
        param: id.map(|id| format!("0x{id:04X}")),
        issue: text,
    }
}

/// Reads the `declared` parameters (the count field at `count_at`). Bytes after them are kept in
/// `rest` and named: the standard bounds the list by its count, and the one real device that
/// disagrees (`yz-0104-2pkt`) follows its 88 parameters with a vendor tail that is no parameter
/// list (30 zero runs, then 1078 ids with DWORD lengths).
fn read_list(r: &mut Reader<'_>, declared: usize, count_at: usize) -> List {
    let mut list = List::default();
    while !r.is_empty() && list.params.len() < declared {
        let at = r.offset();
        let mut peek = r.clone();
        let (Ok(id), Ok(len)) = (peek.u32("param_id"), peek.u8("param_len")) else {
            let text = format!("{} bytes left, too few for a parameter id and length", r.remaining());
            list.issues.push(issue(at, None, text));
            break;
        };
        if peek.remaining() < len as usize {
            let text = format!("declares length {len}, {} bytes left", peek.remaining());
            list.issues.push(issue(at, Some(id), text));
            break;
        }
        *r = peek;
        list.params.push(read_param(r, id, len as usize, &mut list.issues));
    }
    if !r.is_empty() && list.params.len() == declared {
        let text = format!("{} bytes after the {declared} declared parameters", r.remaining());
        list.issues.push(issue(r.offset(), None, text));
    } else if list.params.len() < declared {
        let text = format!("declares {declared} parameters, {} read", list.params.len());
        list.issues.push(issue(count_at, None, text));
    }
    list.rest = r.rest().to_vec();
    list
}

/// The value of parameter `id` of `len` bytes (which are there), typed by the table.
fn read_param(r: &mut Reader<'_>, id: u32, len: usize, issues: &mut Vec<ParamIssue>) -> Param {
    let at = r.offset();
    let bytes = r.rest_prefix(len);
    let value = match table::lookup(id).map(|d| decode_value(d.ty, bytes)) {
        Some(Ok(v)) => v,
        Some(Err(why)) => {
            issues.push(issue(at, Some(id), why));
            ParamValue::Raw(bytes.to_vec())
        }
        None => ParamValue::Raw(bytes.to_vec()),
    };
    Param { id, value }
}

fn write_list(count: Option<u8>, params: &[Param], rest: &[u8], out: &mut Vec<u8>) {
    out.push(count.unwrap_or(params.len() as u8));
    params.iter().for_each(|p| p.encode(out));
    out.extend_from_slice(rest);
}

/// The body of 0x8103.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetParams {
    /// The count the body declares (built from fields: the number of `params` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u8>,
    /// The parameters.
    pub params: Vec<Param>,
    /// Bytes of a cut last parameter (hex).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "crate::codec::wire::hex_upper"
    )]
    pub rest: Vec<u8>,
    /// What was not as the standard says.
    #[serde(default, skip_serializing_if = "Vec::is_empty", skip_deserializing)]
    pub issues: Vec<ParamIssue>,
}

impl BodyCodec for SetParams {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let count = r.u8("count")?;
        let l = read_list(&mut r, count as usize, 0);
        Ok(SetParams {
            count: Some(count),
            params: l.params,
            rest: l.rest,
            issues: l.issues,
        })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        write_list(self.count, &self.params, &self.rest, out);
    }
}

/// The body of 0x0104.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParamAnswer {
    /// Serial of the 0x8104 or 0x8106 answered.
    pub reply_serial: u16,
    /// The count the body declares.
    pub count: u8,
    /// The parameters.
    pub params: Vec<Param>,
    /// Bytes of a cut last parameter (hex).
    #[serde(skip_serializing_if = "Vec::is_empty", with = "crate::codec::wire::hex_upper")]
    pub rest: Vec<u8>,
    /// What was not as the standard says.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub issues: Vec<ParamIssue>,
}

impl BodyCodec for ParamAnswer {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let reply_serial = r.u16("reply_serial")?;
        let count = r.u8("count")?;
        let l = read_list(&mut r, count as usize, 2);
        Ok(ParamAnswer {
            reply_serial,
            count,
            params: l.params,
            rest: l.rest,
            issues: l.issues,
        })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.reply_serial.to_be_bytes());
        write_list(Some(self.count), &self.params, &self.rest, out);
    }
}

/// The body of 0x8106.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryParams {
    /// The count the body declares (built from fields: the number of `ids` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u8>,
    /// The parameter ids asked for.
    pub ids: Vec<u32>,
    /// Bytes after the last whole id (hex).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "crate::codec::wire::hex_upper"
    )]
    pub rest: Vec<u8>,
    /// What was not as the standard says.
    #[serde(default, skip_serializing_if = "Vec::is_empty", skip_deserializing)]
    pub issues: Vec<ParamIssue>,
}

impl BodyCodec for QueryParams {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let count = r.u8("count")?;
        let mut q = QueryParams {
            count: Some(count),
            ids: Vec::with_capacity(r.remaining() / 4),
            rest: Vec::new(),
            issues: Vec::new(),
        };
        while r.remaining() >= 4 {
            q.ids.push(r.u32("param_id")?);
        }
        if !r.is_empty() {
            let text = format!("{} bytes left, too few for a parameter id", r.remaining());
            q.issues.push(issue(r.offset(), None, text));
            q.rest = r.rest().to_vec();
        }
        if count as usize != q.ids.len() {
            q.issues
                .push(issue(0, None, format!("declares {count} ids, {} read", q.ids.len())));
        }
        Ok(q)
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.push(self.count.unwrap_or(self.ids.len() as u8));
        self.ids.iter().for_each(|id| out.extend_from_slice(&id.to_be_bytes()));
        out.extend_from_slice(&self.rest);
    }
}
