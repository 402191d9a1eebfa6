//! JT/T 1078 file upload by FTP (JT808.md §7.2, §7.4): 0x9206 the platform orders an upload, 0x9207
//! it controls the upload, 0x1206 the terminal reports it complete.
//!
//! ```text
//! 0x9206: server k BYTE | STRING[k] | port WORD | user l BYTE | STRING[l] | password m BYTE | STRING[m]
//!         | path n BYTE | STRING[n] | channel BYTE | start BCD[6] | end BCD[6] | alarm 64BITS
//!         | av type BYTE | stream type BYTE | storage position BYTE | task condition BYTE   (31 + k + l + m + n)
//! 0x9207: reply serial WORD (the 0x9206) | control BYTE (0 pause, 1 continue, 2 cancel)
//! 0x1206: reply serial WORD (the 0x9206) | result BYTE (0 success, 1 failure)
//! ```

use serde::{Deserialize, Serialize};

use crate::codec::wire::{BcdTime, Reader, Text, WireError};

/// The body of 0x9206.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUploadCommand {
    /// FTP server address.
    pub server: Text,
    /// FTP port.
    pub port: u16,
    /// User name.
    pub user: Text,
    /// Password.
    pub password: Text,
    /// Upload path.
    pub path: Text,
    /// Logical channel.
    pub channel: u8,
    /// Start time.
    pub start: BcdTime,
    /// End time.
    pub end: BcdTime,
    /// Alarm flags (as 0x9205).
    pub alarm: u64,
    /// AV resource type (as 0x9205).
    pub av_type: u8,
    /// 0 all, 1 main, 2 sub.
    pub stream_type: u8,
    /// 0 all, 1 main, 2 backup.
    pub storage_position: u8,
    /// Bitmask: bit0 allowed on Wi-Fi, bit1 on LAN, bit2 on 3G/4G.
    pub task_condition: u8,
}

impl FileUploadCommand {
    /// Message id.
    pub const ID: u16 = 0x9206;

    /// Decodes the body.
    pub fn decode(b: &[u8]) -> Result<FileUploadCommand, WireError> {
        let mut r = Reader::new(b);
        let v = FileUploadCommand {
            server: r.len8_text("server")?,
            port: r.u16("port")?,
            user: r.len8_text("user")?,
            password: r.len8_text("password")?,
            path: r.len8_text("path")?,
            channel: r.u8("channel")?,
            start: r.bcd_time("start")?,
            end: r.bcd_time("end")?,
            alarm: r.u64("alarm")?,
            av_type: r.u8("av_type")?,
            stream_type: r.u8("stream_type")?,
            storage_position: r.u8("storage_position")?,
            task_condition: r.u8("task_condition")?,
        };
        r.finish("task_condition")?;
        Ok(v)
    }

    /// Appends the body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.server.encode_len8(out);
        out.extend_from_slice(&self.port.to_be_bytes());
        self.user.encode_len8(out);
        self.password.encode_len8(out);
        self.path.encode_len8(out);
        out.push(self.channel);
        self.start.encode(out);
        self.end.encode(out);
        out.extend_from_slice(&self.alarm.to_be_bytes());
        out.extend_from_slice(&[
            self.av_type,
            self.stream_type,
            self.storage_position,
            self.task_condition,
        ]);
    }
}

/// The body of 0x9207.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUploadControl {
    /// Serial of the 0x9206 being controlled. Not a reply: the platform sends it unasked.
    pub reply_serial: u16,
    /// 0 pause, 1 continue, 2 cancel.
    pub control: u8,
}

impl FileUploadControl {
    /// Message id.
    pub const ID: u16 = 0x9207;

    /// Decodes the 3 bytes.
    pub fn decode(b: &[u8]) -> Result<FileUploadControl, WireError> {
        let mut r = Reader::new(b);
        let v = FileUploadControl {
            reply_serial: r.u16("reply_serial")?,
            control: r.u8("control")?,
        };
        r.finish("control")?;
        Ok(v)
    }

    /// Appends the 3 bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.reply_serial.to_be_bytes());
        out.push(self.control);
    }
}

/// The body of 0x1206.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FileUploadComplete {
    /// Serial of the 0x9206 answered.
    pub reply_serial: u16,
    /// 0 success, 1 failure.
    pub result: u8,
}

impl FileUploadComplete {
    /// Message id.
    pub const ID: u16 = 0x1206;

    /// Decodes the 3 bytes.
    pub fn decode(b: &[u8]) -> Result<FileUploadComplete, WireError> {
        let mut r = Reader::new(b);
        let v = FileUploadComplete {
            reply_serial: r.u16("reply_serial")?,
            result: r.u8("result")?,
        };
        r.finish("result")?;
        Ok(v)
    }

    /// Appends the 3 bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.reply_serial.to_be_bytes());
        out.push(self.result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_command_round_trips() {
        // go-9206-2013: 31 + 11 + 8 + 8 + 11 = 69 bytes.
        let hex_body = "0b3139322e3136382e312e312b2d08757365726e616d650870617373776f72640b2f616c61726d5f66696c6501200726000000200726232359000000000000000000010101";
        let b = hex::decode(hex_body).unwrap();
        let c = FileUploadCommand::decode(&b).unwrap();
        assert_eq!(
            (c.server.as_str(), c.port, c.path.as_str()),
            ("192.168.1.1", 11053, "/alarm_file")
        );
        assert_eq!(c.end.to_string(), "2020-07-26 23:23:59");
        let mut out = Vec::new();
        c.encode(&mut out);
        assert_eq!(hex::encode(&out), hex_body);
        let json = serde_json::to_string(&c).unwrap();
        let back: FileUploadCommand = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn a_cut_string_is_named() {
        let e = FileUploadCommand::decode(&[5, b'a', b'b']).unwrap_err();
        assert_eq!(e.to_string(), "server at body byte 1: needs 5 bytes, 2 left");
    }

    #[test]
    fn complete_and_control_are_three_bytes() {
        let c = FileUploadComplete::decode(&[0x1B, 0x8A, 1]).unwrap();
        assert_eq!((c.reply_serial, c.result), (7050, 1));
        let k: FileUploadControl = toml::from_str("reply_serial = 9\ncontrol = 2").unwrap();
        let mut out = Vec::new();
        k.encode(&mut out);
        assert_eq!(out, [0, 9, 2]);
        assert_eq!(FileUploadControl::decode(&out).unwrap(), k);
    }
}
