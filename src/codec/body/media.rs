//! 0x0801 multimedia data upload and 0x8800 its response (JT808.md §5.6).
//!
//! ```text
//! 0x0801: media id DWORD | media type BYTE | format BYTE | event code BYTE | channel BYTE
//!         | [2013+] 28-byte 0x0200 basic block | data (rest)
//! 0x8800: media id DWORD | [retransmit count BYTE | count x WORD packet index]
//! ```
//!
//! "2011 has no location block": the block is read unless the message's version is 2011.

use serde::{Deserialize, Serialize, Serializer};

use super::location::Location;
use crate::codec::header::Version;
use crate::codec::wire::{Reader, WireError};

/// The body of 0x0801.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaUpload {
    /// Media id.
    pub media_id: u32,
    /// 0 image, 1 audio, 2 video.
    pub media_type: u8,
    /// 0 JPEG, 1 TIF, 2 MP3, 3 WAV, 4 WMV.
    pub media_format: u8,
    /// Event code.
    pub event: u8,
    /// Channel.
    pub channel: u8,
    /// The 28-byte basic location block (2013 and later).
    pub location: Option<Location>,
    /// The media data.
    pub data: Vec<u8>,
}

impl MediaUpload {
    /// Message id.
    pub const ID: u16 = 0x0801;

    /// Decodes a body that came under a header of `version`.
    pub fn decode(b: &[u8], version: Version) -> Result<MediaUpload, WireError> {
        let mut r = Reader::new(b);
        Ok(MediaUpload {
            media_id: r.u32("media_id")?,
            media_type: r.u8("media_type")?,
            media_format: r.u8("media_format")?,
            event: r.u8("event")?,
            channel: r.u8("channel")?,
            location: match version {
                Version::V2011 => None,
                _ => Some(Location::decode_basic(&mut r)?),
            },
            data: r.rest().to_vec(),
        })
    }

    /// Appends the body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.media_id.to_be_bytes());
        out.extend_from_slice(&[self.media_type, self.media_format, self.event, self.channel]);
        if let Some(loc) = &self.location {
            loc.encode(out);
        }
        out.extend_from_slice(&self.data);
    }
}

/// JSON: the fields, then `data_len` and `data` (hex).
impl Serialize for MediaUpload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("MediaUpload", 8)?;
        st.serialize_field("media_id", &self.media_id)?;
        st.serialize_field("media_type", &self.media_type)?;
        st.serialize_field("media_format", &self.media_format)?;
        st.serialize_field("event", &self.event)?;
        st.serialize_field("channel", &self.channel)?;
        if let Some(loc) = &self.location {
            st.serialize_field("location", loc)?;
        }
        st.serialize_field("data_len", &self.data.len())?;
        st.serialize_field("data", &hex::encode_upper(&self.data))?;
        st.end()
    }
}

/// The body of 0x8800.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaUploadResponse {
    /// Media id answered.
    pub media_id: u32,
    /// Packet indices to resend; absent (no count byte) when everything arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indices: Option<Vec<u16>>,
}

impl MediaUploadResponse {
    /// Message id.
    pub const ID: u16 = 0x8800;

    /// Decodes the body.
    pub fn decode(b: &[u8]) -> Result<MediaUploadResponse, WireError> {
        let mut r = Reader::new(b);
        let media_id = r.u32("media_id")?;
        if r.is_empty() {
            return Ok(MediaUploadResponse {
                media_id,
                indices: None,
            });
        }
        let count = r.u8("count")? as usize;
        if r.remaining() != 2 * count {
            return Err(r.invalid(
                "count",
                format!("declares {count} indices but {} bytes follow", r.remaining()),
            ));
        }
        let indices = (0..count).map(|_| r.u16("indices")).collect::<Result<_, _>>()?;
        Ok(MediaUploadResponse {
            media_id,
            indices: Some(indices),
        })
    }

    /// Appends the body (at most 255 indices fit the count BYTE).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.media_id.to_be_bytes());
        if let Some(ix) = &self.indices {
            let n = ix.len().min(255);
            out.push(n as u8);
            for i in &ix[..n] {
                out.extend_from_slice(&i.to_be_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // yz-0801-2013's body.
    const YZ: &str = "0000007b01020102000004000000080006eeb6ad02633df70138000300632007071923590d7b0d7b7b";

    #[test]
    fn header_location_and_data_round_trip() {
        let b = hex::decode(YZ).unwrap();
        let m = MediaUpload::decode(&b, Version::V2013).unwrap();
        assert_eq!(
            (m.media_id, m.media_type, m.media_format, m.event, m.channel),
            (123, 1, 2, 1, 2)
        );
        assert_eq!(m.location.as_ref().unwrap().lat, 116307629);
        assert_eq!(m.data.len(), 5);
        let mut out = Vec::new();
        m.encode(&mut out);
        assert_eq!(hex::encode(out), YZ);
    }

    #[test]
    fn a_2011_body_has_no_location_block() {
        let b = hex::decode("0000007b01020102ffd8ffe0").unwrap();
        let m = MediaUpload::decode(&b, Version::V2011).unwrap();
        assert_eq!((m.location.is_none(), m.data.len()), (true, 4));
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["data"], "FFD8FFE0");
        assert!(json.get("location").is_none());
    }

    #[test]
    fn response_with_and_without_retransmit_list() {
        for hex_body in ["0000007b", "0000007b00", "0000007b0200010003"] {
            let b = hex::decode(hex_body).unwrap();
            let r = MediaUploadResponse::decode(&b).unwrap();
            let mut out = Vec::new();
            r.encode(&mut out);
            assert_eq!(hex::encode(out), hex_body);
        }
        let r = MediaUploadResponse::decode(&hex::decode("0000007b0200010003").unwrap()).unwrap();
        assert_eq!(r.indices, Some(vec![1, 3]));
        assert!(MediaUploadResponse::decode(&hex::decode("0000007b0200").unwrap()).is_err());
    }
}
