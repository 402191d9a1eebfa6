//! The JT/T 1078-2016 messages beyond live video and resources: passenger flow (0x1005), channel
//! status (0x9105), playback (0x9201, 0x9202) and the PTZ commands (0x9301-0x9306). 0x9003 (query
//! AV attributes) has an empty body.
//!
//! ```text
//! 0x1005: start BCD[6] | end BCD[6] | boarded WORD | alighted WORD                       (16)
//! 0x9105: channel BYTE | packet loss rate BYTE                                             (2)
//! 0x9201: ip length BYTE | ip STRING | tcp port WORD | udp port WORD | channel BYTE | av type BYTE
//!         | stream type BYTE | storage type BYTE | playback mode BYTE | speed BYTE | start BCD[6] | end BCD[6]
//! 0x9202: channel BYTE | control BYTE | speed BYTE | position BCD[6]                       (9)
//! 0x9301: channel BYTE | direction BYTE | speed BYTE                                       (3)
//! 0x9302-0x9306: channel BYTE | flag BYTE                                                  (2)
//! ```

use serde::{Deserialize, Serialize};

use super::codec::BodyCodec;
use crate::codec::header::Version;
use crate::codec::wire::{BcdTime, Reader, Text, WireError};

flat_body! {
    /// The body of 0x1005.
    pub struct PassengerFlow {
        /// Start of the counted period.
        start: BcdTime,
        /// End of the counted period.
        end: BcdTime,
        /// Passengers who boarded.
        boarded: u16,
        /// Passengers who got off.
        alighted: u16,
    }
}

flat_body! {
    /// The body of 0x9105.
    pub struct AvChannelStatus {
        /// Logical channel.
        channel: u8,
        /// Packet loss rate (the rate x 100, integer part).
        loss_rate: u8,
    }
}

flat_body! {
    /// The body of 0x9202.
    pub struct PlaybackControl {
        /// Logical channel.
        channel: u8,
        /// 0 start, 1 pause, 2 stop, 3 fast forward, 4 key-frame rewind, 5 seek, 6 key-frame play.
        control: u8,
        /// 0 invalid, 1 x1, 2 x2, 3 x4, 4 x8, 5 x16.
        speed: u8,
        /// Seek position (control 5).
        position: BcdTime,
    }
}

flat_body! {
    /// The body of 0x9301.
    pub struct PtzRotate {
        /// Logical channel.
        channel: u8,
        /// 0 stop, 1 up, 2 down, 3 left, 4 right.
        direction: u8,
        /// Speed 0-255.
        speed: u8,
    }
}

flat_body! {
    /// The body of 0x9302 focus, 0x9303 aperture, 0x9304 wiper, 0x9305 infrared light and 0x9306
    /// zoom.
    pub struct PtzAdjust {
        /// Logical channel.
        channel: u8,
        /// Focus/aperture/zoom: 0 in or up, 1 out or down; wiper/infrared: 0 stop, 1 start.
        flag: u8,
    }
}

/// The body of 0x9201.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaybackRequest {
    /// Server address.
    pub server: Text,
    /// TCP port.
    pub tcp_port: u16,
    /// UDP port.
    pub udp_port: u16,
    /// Logical channel.
    pub channel: u8,
    /// 0 audio+video, 1 audio, 2 video, 3 video or audio+video.
    pub av_type: u8,
    /// 0 main or sub, 1 main, 2 sub.
    pub stream_type: u8,
    /// 0 main or backup, 1 main, 2 backup.
    pub storage_type: u8,
    /// 0 normal, 1 fast forward, 2 key-frame rewind, 3 key-frame play, 4 single frame upload.
    pub playback_mode: u8,
    /// 0 invalid, 1 x1, 2 x2, 3 x4, 4 x8, 5 x16.
    pub speed: u8,
    /// Start time.
    pub start: BcdTime,
    /// End time (all zero: play to the end).
    pub end: BcdTime,
}

impl BodyCodec for PlaybackRequest {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let v = PlaybackRequest {
            server: r.len8_text("server")?,
            tcp_port: r.u16("tcp_port")?,
            udp_port: r.u16("udp_port")?,
            channel: r.u8("channel")?,
            av_type: r.u8("av_type")?,
            stream_type: r.u8("stream_type")?,
            storage_type: r.u8("storage_type")?,
            playback_mode: r.u8("playback_mode")?,
            speed: r.u8("speed")?,
            start: r.bcd_time("start")?,
            end: r.bcd_time("end")?,
        };
        r.finish("end")?;
        Ok(v)
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        self.server.encode_len8(out);
        out.extend_from_slice(&self.tcp_port.to_be_bytes());
        out.extend_from_slice(&self.udp_port.to_be_bytes());
        out.extend_from_slice(&[
            self.channel,
            self.av_type,
            self.stream_type,
            self.storage_type,
            self.playback_mode,
            self.speed,
        ]);
        self.start.encode(out);
        self.end.encode(out);
    }
}
