//! The structured JT/T 1078-2016 terminal parameters (its table 2-7):
//!
//! ```text
//! 0x0075 (21): live encoding BYTE | live resolution BYTE | live keyframe interval WORD | live frame
//!              rate BYTE | live bitrate DWORD | store encoding BYTE | store resolution BYTE | store
//!              keyframe interval WORD | store frame rate BYTE | store bitrate DWORD | OSD WORD | audio BYTE
//! 0x0076:      AV channels BYTE a | audio channels BYTE b | video channels BYTE c
//!              | (a+b+c) x (physical BYTE | logical BYTE | type BYTE (0 AV, 1 audio, 2 video) | PTZ BYTE)
//! 0x0077:      count BYTE | count x (logical channel BYTE | 0x0075's fields without the audio BYTE) (21 each)
//! 0x0079 (3):  storage threshold BYTE (%) | duration BYTE (min) | lead time BYTE (min)
//! 0x007B (2):  passenger limit BYTE | fatigue threshold BYTE
//! 0x007C (20): wake mode BYTE | wake condition BYTE | timed days BYTE | period flags BYTE
//!              | 4 x (start BCD[2] hhmm | end BCD[2] hhmm)
//! ```

use serde::{Deserialize, Serialize};

use crate::codec::body::codec::BodyCodec;
use crate::codec::header::Version;
use crate::codec::wire::{Reader, WireError};

flat_body! {
    /// 0x0075 audio/video parameters.
    pub struct AvParams {
        /// Live stream encoding mode (0 CBR, 1 VBR, 2 ABR).
        live_encoding: u8,
        /// Live resolution (0 QCIF, 1 CIF, 2 WCIF, 3 D1, 4 WD1, 5 720P, 6 1080P).
        live_resolution: u8,
        /// Live keyframe interval, frames.
        live_keyframe_interval: u16,
        /// Live frame rate, fps.
        live_frame_rate: u8,
        /// Live bitrate, kbps.
        live_bitrate: u32,
        /// Storage stream encoding mode.
        store_encoding: u8,
        /// Storage resolution.
        store_resolution: u8,
        /// Storage keyframe interval, frames.
        store_keyframe_interval: u16,
        /// Storage frame rate, fps.
        store_frame_rate: u8,
        /// Storage bitrate, kbps.
        store_bitrate: u32,
        /// OSD overlay bits (0 date, 1 plate, 2 channel, 3 lat/lng, 4 speed, 5 recorder speed, 6 driving time).
        osd: u16,
        /// 0 no audio output, 1 audio output on.
        audio_output: u8,
    }
}

flat_body! {
    /// One channel's video parameters of 0x0077.
    pub struct ChannelVideoParams {
        /// Logical channel.
        channel: u8,
        /// Live stream encoding mode.
        live_encoding: u8,
        /// Live resolution.
        live_resolution: u8,
        /// Live keyframe interval, frames.
        live_keyframe_interval: u16,
        /// Live frame rate, fps.
        live_frame_rate: u8,
        /// Live bitrate, kbps.
        live_bitrate: u32,
        /// Storage stream encoding mode.
        store_encoding: u8,
        /// Storage resolution.
        store_resolution: u8,
        /// Storage keyframe interval, frames.
        store_keyframe_interval: u16,
        /// Storage frame rate, fps.
        store_frame_rate: u8,
        /// Storage bitrate, kbps.
        store_bitrate: u32,
        /// OSD overlay bits.
        osd: u16,
    }
}

flat_body! {
    /// 0x0079 special alarm recording parameters.
    pub struct AlarmRecording {
        /// Storage threshold, percent.
        storage_threshold: u8,
        /// Recording duration, minutes.
        duration: u8,
        /// Recording before the alarm, minutes.
        lead_time: u8,
    }
}

flat_body! {
    /// 0x007B image analysis alarm parameters.
    pub struct ImageAnalysis {
        /// Passenger limit.
        passenger_limit: u8,
        /// Fatigue threshold.
        fatigue_threshold: u8,
    }
}

flat_body! {
    /// 0x007C sleep wake-up mode.
    pub struct Wake {
        /// Bits: 0 condition wake, 1 timed wake, 2 manual wake.
        mode: u8,
        /// Bits: 0 emergency alarm, 1 collision, 2 door open.
        condition: u8,
        /// Bits 0-6: Monday to Sunday.
        days: u8,
        /// Bits 0-3: periods 1-4 enabled.
        period_flags: u8,
        /// The four periods as 16 BCD bytes (hhmm start, hhmm end, x4).
        periods: [u8; 16],
    }
}

/// One channel of 0x0076.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelMap {
    /// Physical channel.
    pub physical: u8,
    /// Logical channel.
    pub logical: u8,
    /// 0 audio/video, 1 audio, 2 video.
    pub kind: u8,
    /// 0 no PTZ, 1 PTZ connected.
    pub ptz: u8,
}

/// 0x0076 audio/video channel list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvChannels {
    /// Audio/video channel count.
    pub av_count: u8,
    /// Audio channel count.
    pub audio_count: u8,
    /// Video channel count.
    pub video_count: u8,
    /// The channels (as many as the three counts add up to).
    pub channels: Vec<ChannelMap>,
}

impl BodyCodec for AvChannels {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let (av_count, audio_count, video_count) = (r.u8("av_count")?, r.u8("audio_count")?, r.u8("video_count")?);
        let n = av_count as usize + audio_count as usize + video_count as usize;
        let channels = r.counted(n, |r| {
            Ok(ChannelMap {
                physical: r.u8("physical")?,
                logical: r.u8("logical")?,
                kind: r.u8("kind")?,
                ptz: r.u8("ptz")?,
            })
        })?;
        r.finish("channels")?;
        Ok(AvChannels {
            av_count,
            audio_count,
            video_count,
            channels,
        })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.av_count, self.audio_count, self.video_count]);
        for c in &self.channels {
            out.extend_from_slice(&[c.physical, c.logical, c.kind, c.ptz]);
        }
    }
}

/// 0x0077 per-channel video parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChannelVideo(pub Vec<ChannelVideoParams>);

/// Size of one 0x0077 entry.
const CHANNEL_VIDEO_LEN: usize = 21;

impl BodyCodec for ChannelVideo {
    fn decode_body(b: &[u8], v: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let n = r.u8("count")? as usize;
        let items = r.counted(n, |r| {
            ChannelVideoParams::decode_body(r.bytes(CHANNEL_VIDEO_LEN, "channel_video")?, v)
        })?;
        r.finish("channel_video")?;
        Ok(ChannelVideo(items))
    }

    fn encode_body(&self, v: Version, out: &mut Vec<u8>) {
        out.push(self.0.len() as u8);
        self.0.iter().for_each(|c| c.encode_body(v, out));
    }
}
