//! JT/T 1078 live audio/video (JT808.md §7.5): 0x9101 the platform requests a live stream, 0x9102
//! it controls one.
//!
//! ```text
//! 0x9101: IP length k BYTE | IP STRING[k] | TCP port WORD | UDP port WORD | channel BYTE | data type BYTE | stream type BYTE  (8 + k)
//! 0x9102: channel BYTE | command BYTE | close type BYTE | switch-to stream BYTE   (4)
//! ```
//!
//! Stream type here is **0 main, 1 sub**, unlike 0x1205/0x9205/0x9206 (1 main, 2 sub).

use serde::{Deserialize, Serialize};

use crate::codec::wire::{Reader, Text, WireError};

/// The body of 0x9101.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveAvRequest {
    /// Server IP address (or host name).
    pub server: Text,
    /// TCP port (0 = none).
    pub tcp_port: u16,
    /// UDP port (0 = none).
    pub udp_port: u16,
    /// Logical channel.
    pub channel: u8,
    /// 0 AV, 1 video, 2 two-way talk, 3 listen, 4 broadcast, 5 pass-through.
    pub data_type: u8,
    /// 0 main, 1 sub.
    pub stream_type: u8,
}

impl LiveAvRequest {
    /// Message id.
    pub const ID: u16 = 0x9101;

    /// Decodes the body.
    pub fn decode(b: &[u8]) -> Result<LiveAvRequest, WireError> {
        let mut r = Reader::new(b);
        let v = LiveAvRequest {
            server: r.len8_text("server")?,
            tcp_port: r.u16("tcp_port")?,
            udp_port: r.u16("udp_port")?,
            channel: r.u8("channel")?,
            data_type: r.u8("data_type")?,
            stream_type: r.u8("stream_type")?,
        };
        r.finish("stream_type")?;
        Ok(v)
    }

    /// Appends the body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.server.encode_len8(out);
        out.extend_from_slice(&self.tcp_port.to_be_bytes());
        out.extend_from_slice(&self.udp_port.to_be_bytes());
        out.extend_from_slice(&[self.channel, self.data_type, self.stream_type]);
    }
}

/// The body of 0x9102.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveAvControl {
    /// Logical channel.
    pub channel: u8,
    /// 0 close, 1 switch stream, 2 pause, 3 resume, 4 close talk.
    pub command: u8,
    /// 0 close audio+video, 1 close audio only, 2 close video only.
    pub close_av_type: u8,
    /// Stream to switch to: 0 main, 1 sub.
    pub stream_type: u8,
}

impl LiveAvControl {
    /// Message id.
    pub const ID: u16 = 0x9102;

    /// Decodes the 4 bytes.
    pub fn decode(b: &[u8]) -> Result<LiveAvControl, WireError> {
        let mut r = Reader::new(b);
        let v = LiveAvControl {
            channel: r.u8("channel")?,
            command: r.u8("command")?,
            close_av_type: r.u8("close_av_type")?,
            stream_type: r.u8("stream_type")?,
        };
        r.finish("stream_type")?;
        Ok(v)
    }

    /// Appends the 4 bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.channel, self.command, self.close_av_type, self.stream_type]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_request_round_trips() {
        // go-9101-2013
        let hex_body = "0f3132332e3132332e3132332e313233030440c60c0100";
        let b = hex::decode(hex_body).unwrap();
        let v = LiveAvRequest::decode(&b).unwrap();
        assert_eq!(
            (v.server.as_str(), v.tcp_port, v.udp_port),
            ("123.123.123.123", 772, 16582)
        );
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(hex::encode(out), hex_body);
        let t: LiveAvRequest = toml::from_str(
            "server = \"10.0.0.1\"\ntcp_port = 1078\nudp_port = 0\nchannel = 1\ndata_type = 0\nstream_type = 1",
        )
        .unwrap();
        assert_eq!(t.server.as_str(), "10.0.0.1");
        assert!(
            toml::from_str::<LiveAvRequest>("server = \"x\"\nport = 1").is_err(),
            "unknown fields are refused"
        );
    }

    #[test]
    fn live_control_is_four_bytes() {
        let v = LiveAvControl::decode(&[8, 1, 2, 3]).unwrap();
        assert_eq!((v.channel, v.command, v.close_av_type, v.stream_type), (8, 1, 2, 3));
        assert!(LiveAvControl::decode(&[8, 1, 2, 3, 4]).is_err());
    }
}
