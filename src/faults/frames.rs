//! Finding JT808 frames inside one WebSocket message, and rewriting them in place.
//!
//! Frames are found with the codec's own [`Deframer`] run over the message after the envelope
//! prefix, so a fault sees exactly the frames a client would decode: only frames that pass the
//! escape, check-code and length checks, and only frames whole inside this message (a frame an
//! upstream `split` cut in two is not a target; put frame-level faults before `split`).
//!
//! A rewrite replaces the bytes *between* a frame's delimiters and leaves the delimiters alone, so a
//! frame that shares its opening 0x7E with the previous frame's closing one (`7E A 7E B 7E`) is
//! rewritten without touching its neighbour.

use std::cell::RefCell;
use std::ops::Range;

use smallvec::SmallVec;

use crate::codec::frame::{FLAG, escape_into, xor};
use crate::codec::{Deframer, Header, Item};

use super::trigger::FrameTag;

/// One valid frame found in a message.
#[derive(Debug, Clone)]
pub(crate) struct Located {
    /// Message offset of the opening 0x7E.
    pub start: usize,
    /// Message offset just past the closing 0x7E.
    pub end: usize,
    /// The parsed header.
    pub header: Header,
    /// Un-escaped header + body, without the check code.
    pub content: Vec<u8>,
    /// The opening 0x7E is also the previous frame's closing one (`7E A 7E B 7E`).
    pub shared_open: bool,
    /// The closing 0x7E is also the next frame's opening one.
    pub shared_close: bool,
}

impl Located {
    /// What a trigger sees of this frame.
    pub fn tag(&self) -> FrameTag {
        FrameTag {
            id: self.header.msg_id,
            packet: self.header.packet,
        }
    }

    /// The frame's bytes between the delimiters.
    pub fn inner(&self) -> Range<usize> {
        self.start + 1..self.end - 1
    }

    /// The bytes that belong to this frame alone: its whole span, less a delimiter it shares with
    /// a neighbour (removing that would break the neighbour).
    pub fn own(&self) -> Range<usize> {
        let start = if self.shared_open { self.start + 1 } else { self.start };
        let end = if self.shared_close { self.end - 1 } else { self.end };
        start..end.max(start)
    }

    /// Where bytes can be inserted in front of this frame without touching the previous one:
    /// `(offset, needs_opening_flag)`. For a shared delimiter that is after it, and the inserted
    /// bytes need a 0x7E of their own to open this frame again.
    pub fn front(&self) -> (usize, bool) {
        if self.shared_open {
            (self.start + 1, true)
        } else {
            (self.start, false)
        }
    }

    /// The check code (valid: the deframer verified it).
    pub fn check(&self) -> u8 {
        xor(&self.content)
    }

    /// Message offset of un-escaped content byte `k` (escapes before it counted).
    pub fn wire_offset(&self, k: usize) -> usize {
        let before: usize = self.content[..k.min(self.content.len())]
            .iter()
            .map(|b| if *b == FLAG || *b == 0x7D { 2 } else { 1 })
            .sum();
        self.start + 1 + before
    }

    /// Short description for the log: `0x0200 serial 3` (+ `packet 2/3`).
    pub fn describe(&self) -> String {
        let h = &self.header;
        match h.packet {
            Some(p) => format!("0x{:04X} serial {} packet {}/{}", h.msg_id, h.serial, p.index, p.total),
            None => format!("0x{:04X} serial {}", h.msg_id, h.serial),
        }
    }
}

/// The frames of `msg` (after `prefix_len` bytes), in order, at message offsets.
pub(crate) fn locate(msg: &[u8], prefix_len: usize) -> Vec<Located> {
    let Some(payload) = msg.get(prefix_len..) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut d = Deframer::default();
    let mut take = |it: Item<'_>| {
        if let Item::Frame(f) = it {
            let content = f.content.to_vec();
            let escaped = escaped_len(&content, xor(&content));
            let start = prefix_len + f.offset as usize;
            let shared_open = out.last().is_some_and(|p: &Located| p.end == start + 1);
            out.push(Located {
                start,
                end: start + escaped + 2,
                header: f.header,
                content,
                shared_open,
                shared_close: false,
            });
        }
    };
    d.push(payload, &mut take);
    d.finish(&mut take);
    for i in 1..out.len() {
        out[i - 1].shared_close = out[i].shared_open;
    }
    out
}

/// The tags of one message's frames: inline up to four, the most one message usually carries.
pub(crate) type Tags = SmallVec<[FrameTag; 4]>;

thread_local! {
    /// The deframer [`tags`] runs, one per thread and reset after each message: tagging every
    /// message allocates nothing per message, and no session holds a deframer for it.
    static TAGGER: RefCell<Deframer> = RefCell::new(Deframer::default());
}

/// Tags of every frame in `msg`: the frames [`locate`] finds, without copying them out.
pub(crate) fn tags(msg: &[u8], prefix_len: usize) -> Tags {
    TAGGER.with(|t| match t.try_borrow_mut() {
        Ok(mut d) => tags_with(&mut d, msg, prefix_len),
        Err(_) => tags_with(&mut Deframer::default(), msg, prefix_len),
    })
}

/// [`tags`] with the deframer `d`, left reset with its buffer kept.
fn tags_with(d: &mut Deframer, msg: &[u8], prefix_len: usize) -> Tags {
    let mut out = Tags::new();
    if let Some(payload) = msg.get(prefix_len..) {
        d.push(payload, |it| {
            if let Item::Frame(f) = it {
                out.push(FrameTag {
                    id: f.header.msg_id,
                    packet: f.header.packet,
                });
            }
        });
    }
    // What `locate`'s `finish` would add is never a frame (nothing is held without
    // `rejoin_unescaped_flag`); `reset` forgets the rest without freeing the buffer.
    d.reset();
    out
}

fn escaped_len(content: &[u8], check: u8) -> usize {
    let n = |b: &u8| if *b == FLAG || *b == 0x7D { 2 } else { 1 };
    content.iter().map(n).sum::<usize>() + n(&check)
}

/// Escaped header + body + `check`, without delimiters: what goes between the two 0x7E.
pub(crate) fn escape_content(content: &[u8], check: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 4);
    escape_into(content, &mut out);
    escape_into(&[check], &mut out);
    out
}

/// Applies non-overlapping edits (range of `msg` -> replacement), given in any order.
pub(crate) fn splice(msg: &[u8], mut edits: Vec<(Range<usize>, Vec<u8>)>) -> Vec<u8> {
    edits.sort_by_key(|(r, _)| (r.start, r.end));
    let mut out = Vec::with_capacity(msg.len() + 16);
    let mut pos = 0;
    for (r, bytes) in edits {
        let start = r.start.max(pos);
        out.extend_from_slice(&msg[pos..start]);
        out.extend_from_slice(&bytes);
        pos = r.end.max(start);
    }
    out.extend_from_slice(&msg[pos.min(msg.len())..]);
    out
}

/// Offsets of the escape pairs (the 0x7D) inside `range` of `msg`.
pub(crate) fn escape_pairs(msg: &[u8], range: Range<usize>) -> Vec<usize> {
    range.filter(|&i| msg[i] == 0x7D).collect()
}

/// True when offset `i` is the second byte of an escape pair (cutting or inserting before it
/// would separate the pair).
pub(crate) fn inside_pair(msg: &[u8], i: usize) -> bool {
    i > 0 && msg[i - 1] == 0x7D
}
