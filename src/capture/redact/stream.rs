//! The streaming run of redaction: records in, records out in input order. Binary payloads are
//! deframed one stream per connection and side; each frame is rewritten by the mapping (a packet
//! group held until complete, then cut back into its fragments) and a record is written once every
//! frame touching it is settled, within `max_held_bytes`.

use std::collections::{BTreeMap, VecDeque};

use super::*;

/// What becomes of a frame's bytes.
#[derive(Debug)]
enum SegState {
    /// The rewritten frame.
    Ready(Vec<u8>),
    /// Waiting for the rest of its packet group.
    Held,
    /// Left out (or kept raw with `keep_undecodable`).
    Dropped,
}

/// A frame's place in its stream, `[start, end)` in stream offsets.
#[derive(Debug)]
struct Seg {
    id: u64,
    start: u64,
    end: u64,
    state: SegState,
}

/// A record of a stream waiting for its frames.
#[derive(Debug)]
struct StreamRec {
    /// Queue position.
    qidx: u64,
    start: u64,
    bytes: Vec<u8>,
}

type StreamKey = (u64, Side);

/// One direction of one connection.
#[derive(Debug)]
struct Stream {
    deframer: Deframer,
    /// Stream offset of the deframer's offset 0 (it restarts at 0 when ended).
    base: u64,
    /// Stream bytes pushed.
    pos: u64,
    /// Every byte before this is classified.
    frontier: u64,
    last_frame_end: u64,
    recs: VecDeque<StreamRec>,
    segs: VecDeque<Seg>,
}

impl Stream {
    fn new() -> Stream {
        Stream {
            deframer: Deframer::new(DeframerConfig::default()),
            base: 0,
            pos: 0,
            frontier: 0,
            last_frame_end: 0,
            recs: VecDeque::new(),
            segs: VecDeque::new(),
        }
    }
}

/// A packet waiting for its group.
#[derive(Debug)]
struct Member {
    seg: u64,
    index: u16,
    /// Unescaped header (phone already replaced) + fragment.
    content: Vec<u8>,
    body_start: usize,
}

/// (conn, side, original phone, msg id, total).
type GroupKey = (u64, Side, String, u16, u16);

#[derive(Debug)]
struct Group {
    version: Version,
    members: Vec<Member>,
}

/// Where the 0x0801 location block ends in the body (media header 8 + basic block 28).
const MEDIA_LOCATION_END: usize = 36;

impl Group {
    /// The packets 1..=n that the rewrite needs, once all of them are in: every packet, or for
    /// 0x0801 those that reach the end of the location block.
    fn complete_through(&self, msg_id: u16, total: u16) -> Option<u16> {
        if total == 0 {
            return None;
        }
        let mut len = 0;
        for i in 1..=total {
            let m = self.members.iter().find(|m| m.index == i)?;
            len += m.content.len() - m.body_start;
            if msg_id == 0x0801 && len >= MEDIA_LOCATION_END {
                return Some(i);
            }
        }
        Some(total)
    }
}

/// An output record waiting for its turn.
#[derive(Debug)]
struct Pending {
    record: Record,
    /// For binary records of a stream: the prefix, then the stream part once resolved.
    payload: Option<Vec<u8>>,
    ready: bool,
    /// Its stream bytes, counted in [`Run::held_bytes`] until written.
    held: usize,
}

pub(super) struct Run<'o, W: Write> {
    pub(super) redactor: Redactor,
    opts: &'o RedactOpts,
    prefix_len: ConnPrefixes,
    pub(super) writer: CaptureWriter<W>,
    pub(super) write_error: Option<io::Error>,
    pub(super) report: RedactReport,
    queue: VecDeque<Pending>,
    /// Queue position of `queue[0]`.
    head: u64,
    streams: BTreeMap<StreamKey, Stream>,
    groups: BTreeMap<GroupKey, Group>,
    next_seg: u64,
    /// Stream bytes of the records waiting in the queue (resolved or not).
    held_bytes: usize,
}

impl<'o, W: Write> Run<'o, W> {
    pub(super) fn new(redactor: Redactor, prefix_len: usize, opts: &'o RedactOpts, writer: CaptureWriter<W>) -> Self {
        Run {
            redactor,
            opts,
            prefix_len: ConnPrefixes::new(prefix_len),
            writer,
            write_error: None,
            report: RedactReport::default(),
            queue: VecDeque::new(),
            head: 0,
            streams: BTreeMap::new(),
            groups: BTreeMap::new(),
            next_seg: 0,
            held_bytes: 0,
        }
    }

    fn push_ready(&mut self, record: Record) {
        self.queue.push_back(Pending {
            record,
            payload: None,
            ready: true,
            held: 0,
        });
    }

    pub(super) fn record(&mut self, record: Record) {
        self.report.records += 1;
        self.prefix_len.observe(&record);
        let Record { t_us, conn, kind } = record;
        match kind {
            RecordKind::Message {
                from,
                payload: Payload::Binary(bytes),
            } => {
                self.report.binary_messages += 1;
                let skip = if from == Side::Gateway {
                    self.prefix_len.get(conn)
                } else {
                    0
                };
                let cut = skip.min(bytes.len());
                let mut prefix = bytes[..cut].to_vec();
                if !self.opts.keep_prefix && !prefix.is_empty() {
                    prefix.fill(0);
                    self.report.prefixes_zeroed += 1;
                }
                let data = bytes[cut..].to_vec();
                self.held_bytes += data.len();
                let qidx = self.head + self.queue.len() as u64;
                self.queue.push_back(Pending {
                    record: Record::binary(t_us, conn, from, Vec::new()),
                    payload: Some(prefix),
                    ready: false,
                    held: data.len(),
                });
                self.feed((conn, from), qidx, data);
                self.enforce_limit();
            }
            RecordKind::Message { from, payload } => {
                if matches!(payload, Payload::Text(_)) {
                    self.report.text_messages += 1;
                }
                self.push_ready(Record::message(t_us, conn, from, payload));
            }
            RecordKind::Close { from, code, reason } => {
                self.push_ready(Record::close(t_us, conn, from, code, reason));
                // As inspect does: a close ends both streams of the connection, so a frame cut by
                // it is not glued to a later connection's bytes.
                for side in [Side::Gateway, Side::Client] {
                    self.end_stream((conn, side));
                }
            }
            kind @ RecordKind::Open { .. } => self.push_ready(Record { t_us, conn, kind }),
        }
    }

    /// Pushes a record's stream bytes through its stream's deframer and rewrites what completes.
    fn feed(&mut self, key: StreamKey, qidx: u64, data: Vec<u8>) {
        let mut frames = Vec::new();
        let report = &mut self.report;
        let stream = self.streams.entry(key).or_insert_with(Stream::new);
        let base = stream.base;
        stream
            .deframer
            .push(&data, |item| collect(item, base, &mut frames, report));
        let start = stream.pos;
        stream.pos += data.len() as u64;
        stream.recs.push_back(StreamRec {
            qidx,
            start,
            bytes: data,
        });
        stream.frontier = base + stream.deframer.position() - stream.deframer.pending_len() as u64;
        for f in frames {
            self.add_frame(key, f);
        }
        self.resolve(key);
    }

    /// A decoded frame: note its place in the stream, then rewrite it (or hold it for its group).
    fn add_frame(&mut self, key: StreamKey, f: OwnedFrame) {
        let id = self.next_seg;
        self.next_seg += 1;
        let Some(stream) = self.streams.get_mut(&key) else {
            return;
        };
        // The frame's escaped bytes are exactly the escapes of its content and check code: the
        // deframer accepted only 7D 01 / 7D 02 pairs, so re-escaping gives the wire bytes back.
        let check = crate::codec::frame::xor(&f.content);
        let end = f.offset + 2 + (escaped_len(&f.content) + escaped_len(&[check])) as u64;
        // A frame sharing its opening 0x7E with the previous frame's closing one starts after it.
        let start = f.offset.max(stream.last_frame_end);
        stream.last_frame_end = end;
        stream.segs.push_back(Seg {
            id,
            start,
            end,
            state: SegState::Held,
        });
        if let Some(state) = self.rewrite(key, id, f) {
            self.set_seg(key, id, state);
        }
    }

    fn set_seg(&mut self, key: StreamKey, id: u64, state: SegState) {
        if let Some(seg) = self
            .streams
            .get_mut(&key)
            .and_then(|s| s.segs.iter_mut().rev().find(|s| s.id == id))
        {
            seg.state = state;
        }
    }

    /// The new bytes of a frame, or `None` while it waits for its packet group.
    fn rewrite(&mut self, key: StreamKey, seg: u64, f: OwnedFrame) -> Option<SegState> {
        let OwnedFrame {
            mut content,
            body_start,
            msg_id,
            version,
            encryption,
            packet,
            phone,
            ..
        } = f;
        let needs_body = BODY_IDS.contains(&msg_id);
        if needs_body && encryption != 0 {
            self.report.encrypted_frames += 1;
            return Some(SegState::Dropped);
        }
        // The phone: BCD[6] at byte 4 (2013 layout: header 12 or 16 bytes) or BCD[10] at byte 5
        // (2019 layout: 17 or 21), JT808.md §2.1.
        let original = phone.to_string();
        let stand_in = self.redactor.phone(&original);
        let (at, width) = if body_start >= 17 { (5, 10) } else { (4, 6) };
        if let (Ok(p), Some(slot)) = (Phone::parse(&stand_in), content.get_mut(at..at + width)) {
            let mut bcd = Vec::with_capacity(width);
            p.write_bcd(width, &mut bcd);
            slot.copy_from_slice(&bcd);
        }
        self.report.phones += 1;
        let fragment_len = content.len() - body_start;
        let hold = match packet {
            None => false,
            // 0x0801: the location block (body 8..36) is at a fixed offset, normally all in packet
            // 1, and the rest is media data. Packets that may hold part of it wait for their group;
            // the others only get their phone replaced.
            Some((total, index)) if msg_id == 0x0801 => {
                let gk: GroupKey = (key.0, key.1, original.clone(), msg_id, total);
                let may_touch = match index {
                    0 => false,
                    1 => fragment_len < MEDIA_LOCATION_END,
                    // Every packet but the last has the group's packet size.
                    i if i < total => usize::from(i - 1) * fragment_len < MEDIA_LOCATION_END,
                    // The last one is at least (total - 1) bytes in; its siblings tell more.
                    i => usize::from(i - 1) < MEDIA_LOCATION_END && self.groups.contains_key(&gk),
                };
                if index == 1 && !may_touch {
                    // Earlier packets held in case they were needed are past the block: release them.
                    if let Some(group) = self.groups.remove(&gk) {
                        for m in group.members {
                            self.report.frames += 1;
                            self.set_seg(key, m.seg, SegState::Ready(encode(&m.content)));
                        }
                    }
                }
                may_touch
            }
            Some(_) => needs_body,
        };
        if let (true, Some((total, index))) = (hold, packet) {
            let gk: GroupKey = (key.0, key.1, original, msg_id, total);
            let group = self.groups.entry(gk.clone()).or_insert_with(|| Group {
                version,
                members: Vec::new(),
            });
            group.members.push(Member {
                seg,
                index,
                content,
                body_start,
            });
            if group.complete_through(msg_id, total).is_some() {
                self.complete_group(key, &gk);
            }
            return None;
        }
        let in_place = packet.is_none() || (msg_id == 0x0801 && packet.is_some_and(|(_, i)| i == 1));
        if in_place {
            self.redactor
                .body(msg_id, version, &mut content[body_start..], &mut self.report);
        }
        self.report.frames += 1;
        Some(SegState::Ready(encode(&content)))
    }

    /// Every packet of a group is in: rewrite the whole body, cut it back into the fragments.
    fn complete_group(&mut self, key: StreamKey, gk: &GroupKey) {
        let Some(group) = self.groups.remove(gk) else { return };
        let (msg_id, total) = (gk.3, gk.4);
        let Some(through) = group.complete_through(msg_id, total) else {
            return;
        };
        // The first copy of each index makes the body; a later copy that differs cannot be checked
        // against it and is left out.
        let chosen: Vec<&Member> = (1..=through)
            .filter_map(|i| group.members.iter().find(|m| m.index == i))
            .collect();
        let mut body = Vec::new();
        let mut at = Vec::with_capacity(chosen.len());
        for m in &chosen {
            at.push(body.len());
            body.extend_from_slice(&m.content[m.body_start..]);
        }
        self.redactor.body(msg_id, group.version, &mut body, &mut self.report);
        self.report.groups_rewritten += 1;
        let mut states = Vec::with_capacity(group.members.len());
        for m in &group.members {
            let i = usize::from(m.index - 1);
            let Some((c, start)) = chosen.get(i).zip(at.get(i)) else {
                // A 0x0801 packet past the location block: only its phone changed.
                self.report.frames += 1;
                states.push((m.seg, SegState::Ready(encode(&m.content))));
                continue;
            };
            let start = *start;
            let fragment = &m.content[m.body_start..];
            let state = if fragment == &c.content[c.body_start..] {
                let mut content = m.content[..m.body_start].to_vec();
                content.extend_from_slice(&body[start..start + fragment.len()]);
                self.report.frames += 1;
                SegState::Ready(encode(&content))
            } else {
                self.report.incomplete_group_packets += 1;
                SegState::Dropped
            };
            states.push((m.seg, state));
        }
        for (seg, state) in states {
            self.set_seg(key, seg, state);
        }
        // No resolve here: the caller is still adding this push's frames, and a record may only
        // be completed once every frame in it has its place (the caller resolves after).
    }

    /// Completes the stream's oldest records whose frames are all decided.
    fn resolve(&mut self, key: StreamKey) {
        let keep = self.opts.keep_undecodable;
        let Some(stream) = self.streams.get_mut(&key) else {
            return;
        };
        while let Some(rec) = stream.recs.front() {
            let (rs, re) = (rec.start, rec.start + rec.bytes.len() as u64);
            if stream.frontier < re {
                break;
            }
            let overlapping = stream.segs.iter().take_while(|s| s.start < re).filter(|s| s.end > rs);
            if overlapping.clone().any(|s| matches!(s.state, SegState::Held)) {
                break;
            }
            let mut out = Vec::with_capacity(rec.bytes.len() + 8);
            let mut cursor = rs;
            let raw = |from: u64, to: u64, out: &mut Vec<u8>, report: &mut RedactReport| {
                if to <= from {
                    return;
                }
                let bytes = &rec.bytes[(from - rs) as usize..(to - rs) as usize];
                if keep {
                    out.extend_from_slice(bytes);
                    report.bytes_kept_raw += bytes.len() as u64;
                } else {
                    report.bytes_left_out += bytes.len() as u64;
                }
            };
            for seg in overlapping {
                let (a, b) = (seg.start.max(rs), seg.end.min(re));
                raw(cursor, a, &mut out, &mut self.report);
                match &seg.state {
                    SegState::Ready(new) => {
                        // Cut the new bytes where the old ones were cut; the last piece takes the rest.
                        let cut = |x: u64| {
                            if x >= seg.end {
                                new.len()
                            } else {
                                ((x - seg.start) as usize).min(new.len())
                            }
                        };
                        out.extend_from_slice(&new[cut(a)..cut(b)]);
                    }
                    SegState::Dropped => raw(a, b, &mut out, &mut self.report),
                    SegState::Held => unreachable!("checked above"),
                }
                cursor = b;
            }
            raw(cursor, re, &mut out, &mut self.report);
            let qidx = rec.qidx;
            stream.recs.pop_front();
            while stream.segs.front().is_some_and(|s| s.end <= re) {
                stream.segs.pop_front();
            }
            if let Some(p) = qidx.checked_sub(self.head).and_then(|i| self.queue.get_mut(i as usize)) {
                p.payload.get_or_insert_with(Vec::new).extend_from_slice(&out);
                p.ready = true;
            }
        }
    }

    /// Ends a stream as at a close: an unfinished frame is undecodable, open groups incomplete.
    fn end_stream(&mut self, key: StreamKey) {
        let Some(stream) = self.streams.get_mut(&key) else {
            return;
        };
        let mut frames = Vec::new();
        let base = stream.base;
        let report = &mut self.report;
        stream.deframer.finish(|item| collect(item, base, &mut frames, report));
        stream.base = stream.pos;
        stream.frontier = stream.pos;
        stream.last_frame_end = stream.pos;
        for f in frames {
            // `finish` yields no frames; should it ever, they are rewritten like any other.
            self.add_frame(key, f);
        }
        let open: Vec<GroupKey> = self.groups.keys().filter(|g| (g.0, g.1) == key).cloned().collect();
        for gk in open {
            if let Some(group) = self.groups.remove(&gk) {
                self.report.incomplete_group_packets += group.members.len() as u64;
                for m in group.members {
                    self.set_seg(key, m.seg, SegState::Dropped);
                }
            }
        }
        self.resolve(key);
        if self.streams.get(&key).is_some_and(|s| s.recs.is_empty()) {
            self.streams.remove(&key);
        }
    }

    /// Past `max_held_bytes`: end the stream that holds the oldest waiting record.
    fn enforce_limit(&mut self) {
        while self.held_bytes > self.opts.max_held_bytes {
            let Some(key) = self.queue.iter().find(|p| !p.ready).and_then(|p| match p.record.kind {
                RecordKind::Message { from, .. } => Some((p.record.conn, from)),
                _ => None,
            }) else {
                break;
            };
            self.report.forced_flushes += 1;
            let head = self.head;
            self.end_stream(key);
            self.flush_ready();
            if self.head == head {
                // Ending the stream always completes its records; should it not, stop rather
                // than spin (the records still go out at the end of the input).
                break;
            }
        }
    }

    /// Ends every stream (the end of the input).
    pub(super) fn finish_all(&mut self) {
        let keys: Vec<StreamKey> = self.streams.keys().copied().collect();
        for key in keys {
            self.end_stream(key);
        }
    }

    /// Writes the records at the head of the queue that are complete.
    pub(super) fn flush_ready(&mut self) {
        while self.queue.front().is_some_and(|p| p.ready) {
            let Some(p) = self.queue.pop_front() else { break };
            self.head += 1;
            let mut record = p.record;
            self.held_bytes -= p.held;
            if let (Some(bytes), RecordKind::Message { payload, .. }) = (p.payload, &mut record.kind) {
                *payload = Payload::Binary(bytes);
            }
            if self.write_error.is_none()
                && let Err(e) = self.writer.write(&record)
            {
                self.write_error = Some(e);
            }
        }
    }
}

/// Frames a rewritten content: check code, escapes, delimiters.
fn encode(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 8);
    frame_into(content, &mut out);
    out
}

/// A frame item copied out of the deframer's buffer.
#[derive(Debug)]
struct OwnedFrame {
    /// Stream offset of the opening delimiter.
    offset: u64,
    content: Vec<u8>,
    body_start: usize,
    msg_id: u16,
    version: Version,
    encryption: u8,
    /// (total, index) when sub-packaged.
    packet: Option<(u16, u16)>,
    phone: Phone,
}

fn collect(item: Item<'_>, base: u64, frames: &mut Vec<OwnedFrame>, report: &mut RedactReport) {
    match item {
        Item::Frame(Frame {
            offset,
            header,
            content,
            body_start,
        }) => frames.push(OwnedFrame {
            offset: base + offset,
            content: content.to_vec(),
            body_start,
            msg_id: header.msg_id,
            version: header.version,
            encryption: header.encryption,
            packet: header.packet.map(|p| (p.total, p.index)),
            phone: header.phone,
        }),
        Item::Rejected(e) => *report.undecodable_frames.entry(e.check().to_string()).or_default() += 1,
        Item::Skipped { len, .. } => report.bytes_outside_frames += len,
        // Redaction deframes strictly (the default settings): never given.
        Item::UnescapedFlag { .. } => {}
    }
}

/// Escaped length of unescaped bytes.
fn escaped_len(bytes: &[u8]) -> usize {
    bytes.len() + bytes.iter().filter(|&&b| b == FLAG || b == ESCAPE).count()
}
