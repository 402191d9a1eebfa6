//! 0x1003 terminal uploads its audio/video attributes (JT/T 1078; JT808.md §7.5): 10 bytes.

use serde::Serialize;

use crate::codec::wire::{Reader, WireError};

/// The body of 0x1003.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AvAttributes {
    /// Audio encoding.
    pub audio_encoding: u8,
    /// Audio channels.
    pub audio_channels: u8,
    /// Sample rate: 0 8 kHz, 1 22.05 kHz, 2 44.1 kHz, 3 48 kHz.
    pub audio_sample_rate: u8,
    /// Sample bits: 0 8-bit, 1 16-bit, 2 32-bit.
    pub audio_sample_bits: u8,
    /// Audio frame length.
    pub audio_frame_len: u16,
    /// Audio output supported (0 no, 1 yes).
    pub audio_output: u8,
    /// Video encoding.
    pub video_encoding: u8,
    /// Maximum audio physical channels.
    pub max_audio_channels: u8,
    /// Maximum video physical channels.
    pub max_video_channels: u8,
}

impl AvAttributes {
    /// Message id.
    pub const ID: u16 = 0x1003;

    /// Decodes the 10 bytes.
    pub fn decode(b: &[u8]) -> Result<AvAttributes, WireError> {
        let mut r = Reader::new(b);
        let v = AvAttributes {
            audio_encoding: r.u8("audio_encoding")?,
            audio_channels: r.u8("audio_channels")?,
            audio_sample_rate: r.u8("audio_sample_rate")?,
            audio_sample_bits: r.u8("audio_sample_bits")?,
            audio_frame_len: r.u16("audio_frame_len")?,
            audio_output: r.u8("audio_output")?,
            video_encoding: r.u8("video_encoding")?,
            max_audio_channels: r.u8("max_audio_channels")?,
            max_video_channels: r.u8("max_video_channels")?,
        };
        r.finish("max_video_channels")?;
        Ok(v)
    }

    /// Appends the 10 bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[
            self.audio_encoding,
            self.audio_channels,
            self.audio_sample_rate,
            self.audio_sample_bits,
        ]);
        out.extend_from_slice(&self.audio_frame_len.to_be_bytes());
        out.extend_from_slice(&[
            self.audio_output,
            self.video_encoding,
            self.max_audio_channels,
            self.max_video_channels,
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_bytes_round_trip() {
        // go-1003-2013
        let b = hex::decode("7f04020094490120 0808".replace(' ', "")).unwrap();
        let a = AvAttributes::decode(&b).unwrap();
        assert_eq!(
            (a.audio_encoding, a.audio_frame_len, a.max_video_channels),
            (127, 37961, 8)
        );
        let mut out = Vec::new();
        a.encode(&mut out);
        assert_eq!(out, b);
        assert!(AvAttributes::decode(&b[..9]).is_err());
    }
}
