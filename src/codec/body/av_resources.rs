//! 0x9205 platform queries the audio/video resource list and 0x1205 the terminal's answer
//! (JT/T 1078; JT808.md §7.1, §7.3).
//!
//! ```text
//! 0x9205: channel BYTE | start BCD[6] | end BCD[6] | alarm 64BITS | av type BYTE | stream type BYTE | storage type BYTE  (24)
//! 0x1205: reply serial WORD | count DWORD | count x item (28):
//!         channel BYTE | start BCD[6] | end BCD[6] | alarm 64BITS | av type BYTE | stream type BYTE | storage type BYTE | file size DWORD
//! ```
//!
//! Stream type here is 1 main, 2 sub (0 all in queries), unlike 0x9101/0x9102 (JT808.md §7.5 trap).
//! Values are not range-checked: `go-9205-2013` carries av type 155 and stream type 110.

use serde::{Deserialize, Serialize};

use crate::codec::wire::{BcdTime, Reader, WireError};

/// The body of 0x9205.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvResourceQuery {
    /// Logical channel, 0 = all.
    pub channel: u8,
    /// Start time, all zero = no lower bound.
    pub start: BcdTime,
    /// End time, all zero = no upper bound.
    pub end: BcdTime,
    /// Alarm flags (bits 0-31 as 0x0200, 32-63 video alarms), 0 = no condition.
    pub alarm: u64,
    /// 0 audio+video, 1 audio, 2 video, 3 video or audio+video.
    pub av_type: u8,
    /// 0 all, 1 main, 2 sub.
    pub stream_type: u8,
    /// 0 all, 1 main, 2 backup.
    pub storage_type: u8,
}

impl AvResourceQuery {
    /// Message id.
    pub const ID: u16 = 0x9205;

    /// Decodes the 24 bytes.
    pub fn decode(b: &[u8]) -> Result<AvResourceQuery, WireError> {
        let mut r = Reader::new(b);
        let v = AvResourceQuery {
            channel: r.u8("channel")?,
            start: r.bcd_time("start")?,
            end: r.bcd_time("end")?,
            alarm: r.u64("alarm")?,
            av_type: r.u8("av_type")?,
            stream_type: r.u8("stream_type")?,
            storage_type: r.u8("storage_type")?,
        };
        r.finish("storage_type")?;
        Ok(v)
    }

    /// Appends the 24 bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.channel);
        self.start.encode(out);
        self.end.encode(out);
        out.extend_from_slice(&self.alarm.to_be_bytes());
        out.extend_from_slice(&[self.av_type, self.stream_type, self.storage_type]);
    }
}

/// The body of 0x1205.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AvResourceList {
    /// Serial of the 0x9205 answered.
    pub reply_serial: u16,
    /// The item count the body declares (beside the `items` read: a disagreement is in `issues`).
    pub count: u32,
    /// The resources read: whole 28-byte items, at most `count`.
    pub items: Vec<AvResource>,
    /// Bytes after the items read (a cut last item, or bytes beyond the declared count), hex.
    #[serde(skip_serializing_if = "Vec::is_empty", with = "crate::codec::wire::hex_upper")]
    pub rest: Vec<u8>,
    /// What was not as the standard says, with its body offset.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub issues: Vec<AvListIssue>,
}

/// Something in a 0x1205 that is not as the standard says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AvListIssue {
    /// Body offset of the field.
    pub offset: usize,
    /// What is wrong.
    pub issue: String,
}

/// One resource of 0x1205 (28 bytes).
///
/// `repr(C)` keeps the fields in declaration (wire) order, which lets the compiler fill a
/// resource with a few wide moves instead of one store per field (the 8-byte `alarm` is padded
/// to offset 16, so it is not a straight copy of the 28 wire bytes): a resource list is hundreds
/// of items, and its decode took 40% less time (`mixed_1205` in benches/decode.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[repr(C)]
pub struct AvResource {
    /// Logical channel, 1-based.
    pub channel: u8,
    /// Start time.
    pub start: BcdTime,
    /// End time.
    pub end: BcdTime,
    /// Alarm flags: bits 0-31 the 0x0200 alarm bits, 32-63 the 1078 video alarm bits.
    pub alarm: u64,
    /// 0 audio+video, 1 audio, 2 video.
    pub av_type: u8,
    /// 1 main, 2 sub.
    pub stream_type: u8,
    /// 1 main storage, 2 backup storage.
    pub storage_type: u8,
    /// File size, bytes.
    pub file_size: u32,
}

/// Size of one 0x1205 item.
const ITEM_LEN: usize = 28;

impl AvResourceList {
    /// Message id.
    pub const ID: u16 = 0x1205;

    /// A well-formed list: the count is the number of items.
    pub fn new(reply_serial: u16, items: Vec<AvResource>) -> AvResourceList {
        AvResourceList {
            reply_serial,
            count: items.len() as u32,
            items,
            rest: Vec::new(),
            issues: Vec::new(),
        }
    }

    /// Decodes a (reassembled) body: 6 + 28 x count bytes (JT808.md §8). Only the reply serial
    /// and count are required: a count that disagrees with the bytes that follow is named in
    /// `issues` (at the count's offset, or at the first byte beyond the items read) and the
    /// whole items there are read, the rest kept, so the list re-encodes byte-exact.
    pub fn decode(b: &[u8]) -> Result<AvResourceList, WireError> {
        let mut r = Reader::new(b);
        let reply_serial = r.u16("reply_serial")?;
        let count = r.u32("count")?;
        let whole = (r.remaining() / ITEM_LEN) as u64;
        let n = whole.min(u64::from(count)) as usize;
        let body = r.rest();
        // Each item is read from a fixed 28-byte array: no per-field bounds checks or error
        // paths (a resource list is hundreds of items).
        let items = body[..n * ITEM_LEN].chunks_exact(ITEM_LEN).map(item).collect();
        let rest = body[n * ITEM_LEN..].to_vec();
        let mut issues = Vec::new();
        if (n as u64) < u64::from(count) {
            issues.push(AvListIssue {
                offset: 2,
                issue: format!(
                    "declares {count} items of {ITEM_LEN} bytes, {n} read ({} bytes follow the count)",
                    body.len()
                ),
            });
        }
        if !rest.is_empty() {
            let what = if (n as u64) < u64::from(count) {
                "a cut item"
            } else {
                "beyond the declared count"
            };
            issues.push(AvListIssue {
                offset: 6 + n * ITEM_LEN,
                issue: format!("{} bytes after the items read, {what}", rest.len()),
            });
        }
        Ok(AvResourceList {
            reply_serial,
            count,
            items,
            rest,
            issues,
        })
    }

    /// Appends the body: the declared count, the items, the bytes kept after them.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(6 + ITEM_LEN * self.items.len() + self.rest.len());
        out.extend_from_slice(&self.reply_serial.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        for it in &self.items {
            out.push(it.channel);
            it.start.encode(out);
            it.end.encode(out);
            out.extend_from_slice(&it.alarm.to_be_bytes());
            out.extend_from_slice(&[it.av_type, it.stream_type, it.storage_type]);
            out.extend_from_slice(&it.file_size.to_be_bytes());
        }
        out.extend_from_slice(&self.rest);
    }
}

/// One 28-byte item.
fn item(c: &[u8]) -> AvResource {
    let a: &[u8; ITEM_LEN] = c.try_into().expect("chunks_exact gives ITEM_LEN bytes");
    let time = |i: usize| BcdTime([a[i], a[i + 1], a[i + 2], a[i + 3], a[i + 4], a[i + 5]]);
    AvResource {
        channel: a[0],
        start: time(1),
        end: time(7),
        alarm: u64::from_be_bytes([a[13], a[14], a[15], a[16], a[17], a[18], a[19], a[20]]),
        av_type: a[21],
        stream_type: a[22],
        storage_type: a[23],
        file_size: u32::from_be_bytes([a[24], a[25], a[26], a[27]]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_round_trips_without_range_checks() {
        // go-9205-2013
        let hex_body = "e720070719235920070719235900000000000000009b6e00";
        let b = hex::decode(hex_body).unwrap();
        let q = AvResourceQuery::decode(&b).unwrap();
        assert_eq!((q.channel, q.av_type, q.stream_type), (231, 155, 110));
        assert_eq!(q.start.to_string(), "2020-07-07 19:23:59");
        let mut out = Vec::new();
        q.encode(&mut out);
        assert_eq!(hex::encode(out), hex_body);
    }

    #[test]
    fn query_builds_from_toml() {
        let q: AvResourceQuery = toml::from_str(
            "channel = 0\nstart = \"2000-00-00 00:00:00\"\nend = \"000000000000\"\nalarm = 0\nav_type = 0\nstream_type = 0\nstorage_type = 0",
        )
        .unwrap();
        let mut out = Vec::new();
        q.encode(&mut out);
        assert_eq!(out, [0u8; 24]);
    }

    #[test]
    fn list_round_trips() {
        // go-1205-2013
        let hex_body = "000000000001012411020000002411020001020000000000000400010101 0000000b".replace(' ', "");
        let b = hex::decode(&hex_body).unwrap();
        let l = AvResourceList::decode(&b).unwrap();
        assert_eq!(l.items.len(), 1);
        let it = l.items[0];
        assert_eq!((it.channel, it.alarm, it.file_size), (1, 1024, 11));
        assert_eq!(it.end.to_string(), "2024-11-02 00:01:02");
        let mut out = Vec::new();
        l.encode(&mut out);
        assert_eq!(hex::encode(out), hex_body);
    }

    #[test]
    fn a_count_that_does_not_match_the_bytes_is_named_and_kept() {
        let cut = [0, 1, 0, 0, 0, 2, 9, 9];
        let l = AvResourceList::decode(&cut).unwrap();
        assert_eq!((l.count, l.items.len(), l.rest.as_slice()), (2, 0, &[9, 9][..]));
        let issues: Vec<(usize, &str)> = l.issues.iter().map(|i| (i.offset, i.issue.as_str())).collect();
        assert_eq!(
            issues,
            [
                (2, "declares 2 items of 28 bytes, 0 read (2 bytes follow the count)"),
                (6, "2 bytes after the items read, a cut item")
            ]
        );
        let mut out = Vec::new();
        l.encode(&mut out);
        assert_eq!(out, cut);
        // One item too many for a count of 0: read none, kept, named after the count.
        let mut over = vec![0, 1, 0, 0, 0, 0];
        over.extend_from_slice(&[1; 28]);
        let l = AvResourceList::decode(&over).unwrap();
        assert_eq!((l.count, l.items.len(), l.rest.len()), (0, 0, 28));
        assert_eq!(l.issues[0].offset, 6);
        assert!(
            l.issues[0].issue.contains("beyond the declared count"),
            "{:?}",
            l.issues
        );
        let mut out = Vec::new();
        l.encode(&mut out);
        assert_eq!(out, over);
    }
}
