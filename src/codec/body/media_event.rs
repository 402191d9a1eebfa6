//! 0x0800 multimedia event information (JT/T 808 §8.53): media id DWORD, media type BYTE (0 image,
//! 1 audio, 2 video), format BYTE (0 JPEG, 1 TIF, 2 MP3, 3 WAV, 4 WMV), event code BYTE (0 platform
//! order, 1 timed, 2 robbery alarm, 3 collision/rollover, 4 door open, 5 door close, 6 door
//! open-to-close, 7 distance), channel BYTE: 8 bytes.

flat_body! {
    /// The body of 0x0800.
    pub struct MediaEvent {
        /// Media id.
        media_id: u32,
        /// 0 image, 1 audio, 2 video.
        media_type: u8,
        /// 0 JPEG, 1 TIF, 2 MP3, 3 WAV, 4 WMV.
        media_format: u8,
        /// Event code.
        event: u8,
        /// Channel.
        channel: u8,
    }
}
