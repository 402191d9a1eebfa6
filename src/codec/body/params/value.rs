//! A parameter's value, typed by the table ([`super::table`]), and its JSON both ways.
//!
//! JSON: `{"id": "0x0001", "name": "heartbeat_interval", "type": "dword", "value": 30}`; an unknown
//! id, a vendor id (0xF000-0xFFFF, `"vendor": true`) or a value whose length disagrees with its
//! type: `{"id": "0xF001", "len": 3, "raw": "010203"}` (with the name when the id is known; the
//! disagreement is named in the message's `issues`). Back from TOML or JSON a parameter is named
//! by `id` or `name` and given a `value` of its type, or `raw` bytes.

use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::av::{AlarmRecording, AvChannels, AvParams, ChannelVideo, ImageAnalysis, Wake};
use super::table::{ParamDef, ParamType, by_name, lookup};
use crate::codec::body::codec::BodyCodec;
use crate::codec::header::Version;
use crate::codec::wire::Text;

/// A typed parameter value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// BYTE.
    Byte(u8),
    /// WORD.
    Word(u16),
    /// DWORD.
    Dword(u32),
    /// STRING (GBK; bytes that are not GBK are kept and shown raw).
    Text(Text),
    /// BYTE[n] (hex).
    Bytes(#[serde(with = "crate::codec::wire::hex_upper")] Vec<u8>),
    /// 1078 0x0075.
    AvParams(AvParams),
    /// 1078 0x0076.
    AvChannels(AvChannels),
    /// 1078 0x0077.
    ChannelVideo(ChannelVideo),
    /// 1078 0x0079.
    AlarmRecording(AlarmRecording),
    /// 1078 0x007B.
    ImageAnalysis(ImageAnalysis),
    /// 1078 0x007C.
    Wake(Wake),
    /// An unknown or vendor id, or a value whose length disagrees with its type: the bytes.
    Raw(#[serde(with = "crate::codec::wire::hex_upper")] Vec<u8>),
}

/// One parameter: id and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Parameter id.
    pub id: u32,
    /// Its value.
    pub value: ParamValue,
}

/// True for the vendor range of parameter ids.
pub fn is_vendor_param(id: u32) -> bool {
    (0xF000..=0xFFFF).contains(&id)
}

/// The typed value of `b` under `ty`, or why its length does not fit.
pub fn decode_value(ty: ParamType, b: &[u8]) -> Result<ParamValue, String> {
    let exact = |n: usize| {
        if b.len() == n {
            Ok(())
        } else {
            Err(format!("length {}, {} needs {n}", b.len(), ty.name()))
        }
    };
    let v = Version::V2013;
    let structured = |e: crate::codec::wire::WireError| {
        format!("length {}, {} value: {e} (offsets in the value)", b.len(), ty.name())
    };
    Ok(match ty {
        ParamType::Byte => exact(1).map(|_| ParamValue::Byte(b[0]))?,
        ParamType::Word => exact(2).map(|_| ParamValue::Word(u16::from_be_bytes([b[0], b[1]])))?,
        ParamType::Dword => exact(4).map(|_| ParamValue::Dword(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))?,
        ParamType::Text => ParamValue::Text(Text::from_bytes(b)),
        ParamType::Bytes(n) => exact(n).map(|_| ParamValue::Bytes(b.to_vec()))?,
        ParamType::AvParams => ParamValue::AvParams(AvParams::decode_body(b, v).map_err(structured)?),
        ParamType::AvChannels => ParamValue::AvChannels(AvChannels::decode_body(b, v).map_err(structured)?),
        ParamType::ChannelVideo => ParamValue::ChannelVideo(ChannelVideo::decode_body(b, v).map_err(structured)?),
        ParamType::AlarmRecording => ParamValue::AlarmRecording(AlarmRecording::decode_body(b, v).map_err(structured)?),
        ParamType::ImageAnalysis => ParamValue::ImageAnalysis(ImageAnalysis::decode_body(b, v).map_err(structured)?),
        ParamType::Wake => ParamValue::Wake(Wake::decode_body(b, v).map_err(structured)?),
    })
}

impl ParamValue {
    /// Appends the value's bytes (without id and length).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let v = Version::V2013;
        match self {
            ParamValue::Byte(x) => out.push(*x),
            ParamValue::Word(x) => out.extend_from_slice(&x.to_be_bytes()),
            ParamValue::Dword(x) => out.extend_from_slice(&x.to_be_bytes()),
            ParamValue::Text(t) => t.encode(out),
            ParamValue::Bytes(b) | ParamValue::Raw(b) => out.extend_from_slice(b),
            ParamValue::AvParams(p) => p.encode_body(v, out),
            ParamValue::AvChannels(p) => p.encode_body(v, out),
            ParamValue::ChannelVideo(p) => p.encode_body(v, out),
            ParamValue::AlarmRecording(p) => p.encode_body(v, out),
            ParamValue::ImageAnalysis(p) => p.encode_body(v, out),
            ParamValue::Wake(p) => p.encode_body(v, out),
        }
    }
}

impl Param {
    /// The table row of this parameter's id.
    pub fn def(&self) -> Option<&'static ParamDef> {
        lookup(self.id)
    }

    /// The parameter's snake_case name (`can_id_setting_0x0150` for 0x0111-0x01FF).
    pub fn name(&self) -> Option<String> {
        self.def().map(|d| match d.id == self.id {
            true => d.name.to_string(),
            false => format!("{}_0x{:04X}", d.name, self.id),
        })
    }

    /// Appends id DWORD, length BYTE and the value (a value over 255 bytes is cut: the length
    /// field cannot say more).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut v = Vec::new();
        self.value.encode(&mut v);
        v.truncate(255);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.push(v.len() as u8);
        out.extend_from_slice(&v);
    }
}

impl Serialize for Param {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Param", 4)?;
        st.serialize_field("id", &format!("0x{:04X}", self.id))?;
        match self.name() {
            Some(n) => st.serialize_field("name", &n)?,
            None => st.skip_field("name")?,
        }
        match (&self.value, self.def()) {
            (ParamValue::Raw(b), _) => {
                if is_vendor_param(self.id) {
                    st.serialize_field("vendor", &true)?;
                }
                st.serialize_field("len", &b.len())?;
                st.serialize_field("raw", &hex::encode_upper(b))?;
            }
            (v, def) => {
                st.serialize_field("type", def.map_or("raw", |d| d.ty.name()))?;
                st.serialize_field("value", v)?;
            }
        }
        st.end()
    }
}

/// A parameter as written in a scenario.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamIn {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    value: Option<serde_json::Value>,
    #[serde(default)]
    raw: Option<String>,
    #[serde(default, rename = "type")]
    _type: Option<String>,
    #[serde(default, rename = "len")]
    _len: Option<usize>,
    #[serde(default, rename = "vendor")]
    _vendor: Option<bool>,
}

fn parse_id(v: &serde_json::Value) -> Result<u32, String> {
    match v {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(s) => {
            let t = s.trim_start_matches("0x").trim_start_matches("0X");
            u32::from_str_radix(t, 16).ok()
        }
        _ => None,
    }
    .ok_or_else(|| format!("parameter id {v}: expected a number or \"0x0001\" (0 to 0xFFFFFFFF)"))
}

/// The typed value of a scenario's `value` under the row `def`.
fn value_from_json(def: &ParamDef, v: serde_json::Value) -> Result<ParamValue, String> {
    let what = format!("parameter {} (0x{:04X}), a {}", def.name, def.id, def.ty.name());
    let num = |max: u64| {
        v.as_u64()
            .filter(|n| *n <= max)
            .ok_or_else(|| format!("{what}: value {v} is not an integer from 0 to {max}"))
    };
    let structured = |e: serde_json::Error| format!("{what}: {e}");
    Ok(match def.ty {
        ParamType::Byte => ParamValue::Byte(num(u8::MAX as u64)? as u8),
        ParamType::Word => ParamValue::Word(num(u16::MAX as u64)? as u16),
        ParamType::Dword => ParamValue::Dword(num(u32::MAX as u64)? as u32),
        ParamType::Text => ParamValue::Text(serde_json::from_value(v).map_err(structured)?),
        ParamType::Bytes(n) => {
            let s = v
                .as_str()
                .ok_or_else(|| format!("{what}: value must be {n} bytes as hex"))?;
            let b = hex::decode(s).map_err(|e| format!("{what}: {e}"))?;
            if b.len() != n {
                return Err(format!("{what}: {} bytes given, {n} needed", b.len()));
            }
            ParamValue::Bytes(b)
        }
        ParamType::AvParams => ParamValue::AvParams(serde_json::from_value(v).map_err(structured)?),
        ParamType::AvChannels => ParamValue::AvChannels(serde_json::from_value(v).map_err(structured)?),
        ParamType::ChannelVideo => ParamValue::ChannelVideo(serde_json::from_value(v).map_err(structured)?),
        ParamType::AlarmRecording => ParamValue::AlarmRecording(serde_json::from_value(v).map_err(structured)?),
        ParamType::ImageAnalysis => ParamValue::ImageAnalysis(serde_json::from_value(v).map_err(structured)?),
        ParamType::Wake => ParamValue::Wake(serde_json::from_value(v).map_err(structured)?),
    })
}

fn param_from(p: ParamIn) -> Result<Param, String> {
    let def = match (&p.id, &p.name) {
        (Some(id), _) => {
            let id = parse_id(id)?;
            (lookup(id), id)
        }
        (None, Some(n)) => {
            let d = by_name(n).ok_or_else(|| format!("unknown parameter name {n:?}"))?;
            (Some(d), d.id)
        }
        (None, None) => return Err("a parameter needs an `id` or a `name`".into()),
    };
    let value = match (p.raw, p.value, def.0) {
        (Some(raw), _, _) => ParamValue::Raw(hex::decode(&raw).map_err(|e| format!("parameter raw {raw:?}: {e}"))?),
        (None, Some(v), Some(d)) => value_from_json(d, v)?,
        (None, Some(_), None) => {
            return Err(format!(
                "parameter 0x{:04X} is not in the table: give its bytes as `raw`",
                def.1
            ));
        }
        (None, None, _) => return Err(format!("parameter 0x{:04X} needs a `value` or `raw`", def.1)),
    };
    Ok(Param { id: def.1, value })
}

impl<'de> Deserialize<'de> for Param {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        param_from(ParamIn::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}
