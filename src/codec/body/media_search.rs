//! Camera, stored-media search and upload, audio recording (JT/T 808 §8.55-8.61).
//!
//! ```text
//! 0x8801 camera shot:   channel BYTE | command WORD (0 stop, 0xFFFF record, else photo count)
//!                       | interval WORD | save flag BYTE | resolution BYTE | quality BYTE
//!                       | brightness BYTE | contrast BYTE | saturation BYTE | chroma BYTE     (12)
//! 0x0805 its answer:    reply serial WORD | result BYTE | [count WORD | count x media id DWORD]
//! 0x8802 media search:  media type BYTE | channel BYTE | event BYTE | start BCD[6] | end BCD[6] (15)
//! 0x0802 its answer:    reply serial WORD | count WORD | count x (media id DWORD | media type BYTE
//!                       | channel BYTE | event BYTE | 28-byte location basic block)
//! 0x8803 stored upload: 0x8802's fields | delete flag BYTE                                     (16)
//! 0x8804 record audio:  command BYTE | duration WORD | save flag BYTE | sample rate BYTE          (5)
//! 0x8805 single upload: media id DWORD | delete flag BYTE                                        (5)
//! ```
//!
//! 0x0805's count and ids are absent in 2011 bodies (result only), and some devices leave them
//! out on failure: they are read when the body goes on.

use serde::Serialize;

use super::codec::BodyCodec;
use super::location::Location;
use crate::codec::header::Version;
use crate::codec::wire::{BcdTime, Reader, WireError};

flat_body! {
    /// The body of 0x8801.
    pub struct CameraShot {
        /// Channel.
        channel: u8,
        /// 0 stop, 0xFFFF record video, else the number of photos.
        command: u16,
        /// Photo interval or recording time, seconds.
        interval: u16,
        /// 1 save, 0 upload in real time.
        save_flag: u8,
        /// Resolution code (1 320x240 ... 8 1920x1080 in 2019).
        resolution: u8,
        /// Quality 1-10, 1 best.
        quality: u8,
        /// Brightness 0-255.
        brightness: u8,
        /// Contrast 0-127.
        contrast: u8,
        /// Saturation 0-127.
        saturation: u8,
        /// Chroma 0-255.
        chroma: u8,
    }
}

flat_body! {
    /// The body of 0x8802.
    pub struct MediaSearch {
        /// 0 image, 1 audio, 2 video.
        media_type: u8,
        /// Channel, 0 = all.
        channel: u8,
        /// Event code.
        event: u8,
        /// Start time, all zero = no bound.
        start: BcdTime,
        /// End time, all zero = no bound.
        end: BcdTime,
    }
}

flat_body! {
    /// The body of 0x8803.
    pub struct StoredMediaUpload {
        /// 0 image, 1 audio, 2 video.
        media_type: u8,
        /// Channel.
        channel: u8,
        /// Event code.
        event: u8,
        /// Start time.
        start: BcdTime,
        /// End time.
        end: BcdTime,
        /// 0 keep, 1 delete after upload.
        delete: u8,
    }
}

flat_body! {
    /// The body of 0x8804.
    pub struct AudioRecord {
        /// 0 stop, 1 start.
        command: u8,
        /// Seconds, 0 = until stopped.
        duration: u16,
        /// 0 upload in real time, 1 save.
        save_flag: u8,
        /// 0 8 kHz, 1 11 kHz, 2 23 kHz, 3 32 kHz.
        sample_rate: u8,
    }
}

flat_body! {
    /// The body of 0x8805.
    pub struct SingleMediaUpload {
        /// Media id.
        media_id: u32,
        /// 0 keep, 1 delete after upload.
        delete: u8,
    }
}

/// The body of 0x0805.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CameraShotAnswer {
    /// Serial of the 0x8801 answered.
    pub reply_serial: u16,
    /// 0 success, 1 failure, 2 channel not supported.
    pub result: u8,
    /// The ids of the media taken (absent when the body ends after the result).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_ids: Option<Vec<u32>>,
}

impl BodyCodec for CameraShotAnswer {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let reply_serial = r.u16("reply_serial")?;
        let result = r.u8("result")?;
        let media_ids = if r.is_empty() {
            None
        } else {
            let n = r.u16("count")? as usize;
            Some(r.counted(n, |r| r.u32("media_id"))?)
        };
        r.finish("media_id")?;
        Ok(CameraShotAnswer {
            reply_serial,
            result,
            media_ids,
        })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.reply_serial.to_be_bytes());
        out.push(self.result);
        if let Some(ids) = &self.media_ids {
            out.extend_from_slice(&(ids.len() as u16).to_be_bytes());
            ids.iter().for_each(|id| out.extend_from_slice(&id.to_be_bytes()));
        }
    }
}

/// One stored medium of 0x0802.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredMedia {
    /// Media id.
    pub media_id: u32,
    /// 0 image, 1 audio, 2 video.
    pub media_type: u8,
    /// Channel.
    pub channel: u8,
    /// Event code.
    pub event: u8,
    /// Where it was taken: the 28-byte basic block.
    pub location: Location,
}

/// The body of 0x0802.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MediaSearchAnswer {
    /// Serial of the 0x8802 answered.
    pub reply_serial: u16,
    /// The media (the WORD count on the wire is their number).
    pub items: Vec<StoredMedia>,
}

impl BodyCodec for MediaSearchAnswer {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let reply_serial = r.u16("reply_serial")?;
        let n = r.u16("count")? as usize;
        let items = r.counted(n, |r| {
            Ok(StoredMedia {
                media_id: r.u32("media_id")?,
                media_type: r.u8("media_type")?,
                channel: r.u8("channel")?,
                event: r.u8("event")?,
                location: Location::decode_basic(r)?,
            })
        })?;
        r.finish("location")?;
        Ok(MediaSearchAnswer { reply_serial, items })
    }

    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.reply_serial.to_be_bytes());
        out.extend_from_slice(&(self.items.len() as u16).to_be_bytes());
        for m in &self.items {
            out.extend_from_slice(&m.media_id.to_be_bytes());
            out.extend_from_slice(&[m.media_type, m.channel, m.event]);
            m.location.encode(out);
        }
    }
}
