// Bytes and frames of JT/T 808 for the reference client (jt808.mjs): hex, BCD, the streaming
// 0x7E deframer of one connection (with the optional rejoin of an unescaped 0x7E), the frame check
// and header parser (JT808.md §1-§2), and the encoder of the frames the client builds itself.
// No I/O: it runs the same under Node and in a browser.

export const FLAG = 0x7e;
export const ESC = 0x7d;

export function toHex(bytes) {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

export function fromHex(text) {
  const t = text.replace(/\s+/g, '');
  if (t.length % 2 !== 0 || /[^0-9a-fA-F]/.test(t)) throw new Error(`not hex: ${text.slice(0, 40)}`);
  const out = new Uint8Array(t.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(t.substr(i * 2, 2), 16);
  return out;
}

export const idHex = (id, width = 4) => '0x' + id.toString(16).toUpperCase().padStart(width, '0');
export const u16 = (b, o) => (b[o] << 8) | b[o + 1];
export const u32 = (b, o) => ((b[o] << 24) >>> 0) + (b[o + 1] << 16) + (b[o + 2] << 8) + b[o + 3];

export function xor(bytes, start, end) {
  let x = 0;
  for (let i = start; i < end; i++) x ^= bytes[i];
  return x;
}

export function bcdDigits(bytes) {
  let s = '';
  for (const b of bytes) {
    const hi = b >> 4;
    const lo = b & 0x0f;
    if (hi > 9 || lo > 9) return null;
    s += hi.toString() + lo.toString();
  }
  return s;
}

/** BCD[6] YYMMDDhhmmss as "20YY-MM-DD hh:mm:ss", or its hex (upper case) when not BCD. */
export function bcdTime(bytes) {
  const d = bcdDigits(bytes);
  if (d === null) return toHex(bytes).toUpperCase();
  return `20${d.slice(0, 2)}-${d.slice(2, 4)}-${d.slice(4, 6)} ${d.slice(6, 8)}:${d.slice(8, 10)}:${d.slice(10, 12)}`;
}

/** Phone from BCD with leading zeros trimmed (JT808.md §2.4); hex when not BCD. */
export function phoneOf(bytes) {
  const d = bcdDigits(bytes);
  if (d === null) return toHex(bytes).toUpperCase();
  const t = d.replace(/^0+/, '');
  return t === '' ? '0' : t;
}

/** A frame content that failed a check: `check` is the Rust decoder's name for it. */
export class FrameError extends Error {
  constructor(check, message) {
    super(message);
    this.check = check;
  }
}

/** Failures a 0x7E data byte could explain (the frame looked cut), which rejoin may repair. */
const JOINABLE = new Set(['too_short', 'bad_checksum', 'body_length_mismatch']);

/**
 * Streaming 0x7E deframer for ONE connection. Every 0x7E is a boundary: bytes after an opening
 * 0x7E are a frame candidate at the next 0x7E; bytes after a closing one are garbage unless they
 * pass every check (devices that share one 0x7E between two frames). `onItem` gets
 * {frame, offset} | {reject: FrameError, offset} | {skipped: len, offset} |
 * {unescaped: at, offset} (before the frame it announces).
 *
 * With `rejoin` (the Rust decoder's `rejoin_unescaped_flag`, off by default: the standard requires
 * the escape) a frame rejected as too short, with a bad check code or a length mismatch is held
 * until the next 0x7E: if the bytes after it (none, when that 0x7E follows at once) are no frame
 * of their own but the two joined by a 0x7E data byte pass every check, that frame comes out,
 * announced by `unescaped` (vector iss-jtframework71); otherwise the rejection is reported there.
 * One stray 0x7E per frame is repaired.
 */
export class Deframer {
  constructor(maxFrameLen, onItem, rejoin = false) {
    this.max = maxFrameLen;
    this.onItem = onItem;
    this.rejoinFlag = rejoin;
    this.held = null;
    this.inside = false;
    this.cand = [];
    this.tooLong = false;
    this.start = 0;
    this.offset = 0;
  }

  push(bytes) {
    for (const b of bytes) {
      if (b === FLAG) this.boundary();
      else if (this.cand.length >= this.max) this.tooLong = true;
      else this.cand.push(b);
      this.offset++;
    }
  }

  boundary() {
    const at = this.start;
    const n = this.cand.length;
    // A closing 0x7E ends a frame; any other opens the next (an empty candidate, 7E 7E, only
    // moves the opening).
    let closing = this.inside && n > 0;
    if (this.tooLong) {
      this.releaseHeld();
      this.onItem({ reject: new FrameError('too_long', `frame at byte ${at}: longer than ${this.max} bytes`), offset: at });
    } else if (this.inside && n > 0) {
      this.emitCandidate(at, false);
    } else if (this.held) {
      // After a held rejection: a frame of its own, the rest of the held one, or garbage.
      if (!(n > 0 && this.ownFrame(at))) {
        if (this.rejoin()) closing = true;
        else {
          this.releaseHeld();
          if (n > 0) this.onItem({ skipped: n, offset: at + 1 });
        }
      }
    } else if (n > 0) {
      this.emitCandidate(at, true);
    }
    this.inside = !closing;
    this.cand = [];
    this.tooLong = false;
    this.start = this.offset;
  }

  emitCandidate(at, outside) {
    try {
      this.onItem({ frame: checkFrame(this.cand, at), offset: at });
    } catch (e) {
      if (!(e instanceof FrameError)) throw e;
      if (outside) this.onItem({ skipped: this.cand.length, offset: at + 1 });
      else if (this.rejoinFlag && JOINABLE.has(e.check)) this.hold(e, at);
      else this.onItem({ reject: e, offset: at });
    }
  }

  /** Keeps a rejected frame to try joining it with what follows its closing 0x7E. */
  hold(error, at) {
    this.releaseHeld();
    this.held = { raw: this.cand.slice(), offset: at, at: this.offset, error };
  }

  releaseHeld() {
    if (!this.held) return;
    this.onItem({ reject: this.held.error, offset: this.held.offset });
    this.held = null;
  }

  /** The outside bytes as a frame sharing its opening 0x7E (the held one is then reported). */
  ownFrame(at) {
    try {
      const frame = checkFrame(this.cand, at);
      this.releaseHeld();
      this.onItem({ frame, offset: at });
      return true;
    } catch (e) {
      if (!(e instanceof FrameError)) throw e;
      return false;
    }
  }

  /** The held frame, a 0x7E data byte and the outside bytes as one frame, if it passes. */
  rejoin() {
    const h = this.held;
    if (h.raw.length + 1 + this.cand.length > this.max) return false;
    try {
      const frame = checkFrame([...h.raw, FLAG, ...this.cand], h.offset);
      this.held = null;
      this.onItem({ unescaped: h.at, offset: h.offset });
      this.onItem({ frame, offset: h.offset });
      return true;
    } catch (e) {
      if (!(e instanceof FrameError)) throw e;
      return false;
    }
  }

  /** The connection ended: a frame it cut is reported, never carried over. */
  close() {
    this.releaseHeld();
    if (this.inside && this.cand.length > 0) {
      const e = new FrameError('unterminated', `frame at byte ${this.start}: cut off after ${this.cand.length} bytes by the end of the stream`);
      this.onItem({ reject: e, offset: this.start });
    } else if (!this.inside && this.cand.length > 0) {
      this.onItem({ skipped: this.cand.length, offset: this.start + 1 });
    }
    this.cand = [];
    this.inside = false;
  }
}

/** Un-escapes and checks one candidate; returns {header, body} or throws a FrameError. */
export function checkFrame(raw, at) {
  const c = new Uint8Array(raw.length);
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] !== ESC) {
      c[n++] = raw[i];
      continue;
    }
    const next = raw[i + 1];
    if (next === 0x01) c[n++] = ESC;
    else if (next === 0x02) c[n++] = FLAG;
    else {
      const what = next === undefined ? 'a lone 0x7D at the end' : `invalid escape 0x7D 0x${next.toString(16).toUpperCase().padStart(2, '0')}`;
      throw new FrameError('invalid_escape', `frame at byte ${at}: ${what} at byte ${at + 1 + i}`);
    }
    i++;
  }
  const content = c.subarray(0, n);
  if (n < 13) throw new FrameError('too_short', `frame at byte ${at}: ${n} bytes, a frame has at least 13`);
  const computed = xor(content, 0, n - 1);
  if (computed !== content[n - 1]) {
    const h = (x) => '0x' + x.toString(16).toUpperCase().padStart(2, '0');
    throw new FrameError('bad_checksum', `frame at byte ${at}: check code ${h(content[n - 1])}, computed ${h(computed)}`);
  }
  const header = parseHeader(content, at);
  return { header, body: content.slice(header.len, n - 1) };
}

/** 2011/2013 or 2019 header (JT808.md §2), the version flag checked against the length. */
export function parseHeader(c, at) {
  const msgId = u16(c, 0);
  const props = u16(c, 2);
  const bodyLen = props & 0x03ff;
  const encryption = (props >> 10) & 0x07;
  const packaged = (props & 0x2000) !== 0;
  const flag2019 = (props & 0x4000) !== 0;
  const avail = c.length - 1;
  const len13 = 12 + (packaged ? 4 : 0);
  const len19 = 17 + (packaged ? 4 : 0);
  let v2019 = flag2019;
  let quirk = null;
  if (flag2019 && avail !== len19 + bodyLen && avail === len13 + bodyLen) {
    v2019 = false;
    quirk = 'version_flag_on_2013_layout';
  }
  const len = v2019 ? len19 : len13;
  if (avail < len) throw new FrameError('too_short', `frame at byte ${at}: ${avail} bytes before the check code, the header needs ${len}`);
  if (avail !== len + bodyLen) {
    throw new FrameError('body_length_mismatch', `frame at byte ${at}: body length ${bodyLen} declared, ${avail - len} present`);
  }
  const h = { msgId, bodyLen, encryption, packaged, version: v2019 ? '2019' : '2013', quirk, len };
  let o = 4;
  if (v2019) h.protocolVersion = c[o++];
  const phoneLen = v2019 ? 10 : 6;
  h.phone = phoneOf(c.subarray(o, o + phoneLen));
  o += phoneLen;
  h.serial = u16(c, o);
  o += 2;
  if (packaged) {
    h.total = u16(c, o);
    h.index = u16(c, o + 2);
  }
  return h;
}

/**
 * One frame for `msgId` in `version`'s header ('2013' or '2019', protocol version 1 unless
 * given) to `phone` (decimal digits) with `serial` and `body`: check code appended, 0x7E and 0x7D
 * escaped, between flags. For the messages this client builds itself (0x8003).
 */
export function encodeFrame({ msgId, version, protocolVersion = 1, phone, serial, body }) {
  const v2019 = version === '2019';
  const width = v2019 ? 20 : 12;
  if (!/^[0-9]+$/.test(phone) || phone.length > width) throw new Error(`phone ${phone}: not up to ${width} digits`);
  if (body.length > 0x3ff) throw new Error(`body of ${body.length} bytes: more than a frame's 1023`);
  const props = body.length | (v2019 ? 0x4000 : 0);
  const content = [msgId >> 8, msgId & 0xff, props >> 8, props & 0xff];
  if (v2019) content.push(protocolVersion);
  const digits = phone.padStart(width, '0');
  for (let i = 0; i < width; i += 2) content.push((Number(digits[i]) << 4) | Number(digits[i + 1]));
  content.push((serial >> 8) & 0xff, serial & 0xff, ...body);
  content.push(xor(content, 0, content.length));
  const out = [FLAG];
  for (const b of content) {
    if (b === FLAG) out.push(ESC, 0x02);
    else if (b === ESC) out.push(ESC, 0x01);
    else out.push(b);
  }
  out.push(FLAG);
  return Uint8Array.from(out);
}
