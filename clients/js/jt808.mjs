// JT/T 808 WebSocket client: the reference external client of jt808-harness.
//
// Written for this project in the style of the platform's browser client it exists to test (the
// seed: an envelope prefix before each WebSocket message, 0x7E deframing, per-SIM reassembly,
// callbacks per message id, a send queue flushed on reconnect), without the seed's bugs:
//   - the deframer belongs to one connection: a frame cut by a disconnect is reported
//     `unterminated`, never glued to the next connection's bytes;
//   - too-short frames are rejected by the real minimum (12-byte header + check code), and the
//     check code is compared after un-escaping;
//   - packet groups are keyed per SIM on (msg id, total) and ordered by their 1-based index, not on
//     `serial - (index - 1)`, and a group that stops growing expires with its missing indices;
//   - the reassembled body is allocated at its real size and filled from index 1 to total;
//   - callbacks are kept per id (several per id), not one callback overwritten by each send;
//   - a message sent while connecting or disconnected is queued (bounded) and flushed in order on
//     open; a command awaiting the terminal's 0x0001 is kept until confirmed and sent again after a
//     reconnect (or a confirmation timeout), so a half-open socket loses nothing;
//   - reconnects back off exponentially with full jitter from a seeded generator;
//   - with a retransmit wait, a group idle for the group timeout is reported stalled and kept open
//     that much longer, and with `requestMissing` its missing packets are asked for with 0x8003
//     (packet 1's serial, a BYTE count in 2013, a WORD in 2019: JT808.md §3), as the Rust client;
//   - with `rejoinUnescapedFlag`, a frame cut by a 0x7E its device did not escape is rejoined when
//     the two pieces pass the check code and length together (frame.mjs).
//
// It runs unchanged under Node (with the `ws` package, see node.mjs) and in a browser (page.html):
// the WebSocket class is passed in. Events go to one `emit` callback as plain objects in the JSON
// shape `jt808-harness client` prints (clients/CONTRACT.md).

export const DEFAULTS = Object.freeze({
  prefixLen: 18,
  backoffMinMs: 500,
  backoffMaxMs: 30000,
  backoffFactor: 2,
  resetAfterMs: 10000,
  seed: 1,
  pingIntervalMs: 15000,
  idleTimeoutMs: 45000,
  queueCapacity: 1024,
  confirmTimeoutMs: 10000,
  maxResends: 3,
  groupTimeoutMs: 5000,
  maxGroups: 1024,
  maxFrameLen: 2090,
  retransmitWaitMs: 0,
  requestMissing: false,
  rejoinUnescapedFlag: false,
});

const ENV_KEYS = {
  JT808_PREFIX_LEN: 'prefixLen',
  JT808_BACKOFF_MIN_MS: 'backoffMinMs',
  JT808_BACKOFF_MAX_MS: 'backoffMaxMs',
  JT808_BACKOFF_FACTOR: 'backoffFactor',
  JT808_SEED: 'seed',
  JT808_PING_INTERVAL_MS: 'pingIntervalMs',
  JT808_IDLE_TIMEOUT_MS: 'idleTimeoutMs',
  JT808_QUEUE_CAPACITY: 'queueCapacity',
  JT808_CONFIRM_TIMEOUT_MS: 'confirmTimeoutMs',
  JT808_MAX_RESENDS: 'maxResends',
  JT808_GROUP_TIMEOUT_MS: 'groupTimeoutMs',
  JT808_RETRANSMIT_WAIT_MS: 'retransmitWaitMs',
};

const ENV_FLAGS = {
  JT808_REQUEST_MISSING: 'requestMissing',
  JT808_REJOIN_UNESCAPED_FLAG: 'rejoinUnescapedFlag',
};

/** Options from `JT808_*` variables (the harness sets them from the scenario's `[client]`). */
export function optionsFromEnv(env) {
  const o = {};
  for (const [k, name] of Object.entries(ENV_KEYS)) {
    if (env[k] === undefined || env[k] === '') continue;
    const v = Number(env[k]);
    if (!Number.isFinite(v) || v < 0) throw new Error(`${k}=${env[k]}: not a number >= 0`);
    o[name] = v;
  }
  for (const [k, name] of Object.entries(ENV_FLAGS)) {
    if (env[k] === undefined || env[k] === '') continue;
    if (env[k] !== 'true' && env[k] !== 'false') throw new Error(`${k}=${env[k]}: not true or false`);
    o[name] = env[k] === 'true';
  }
  return o;
}

import {
  Deframer, FLAG, FrameError, bcdTime, checkFrame, encodeFrame, fromHex, idHex, parseHeader, toHex, u16, u32,
} from './frame.mjs';

// The framing lives in frame.mjs; re-exported for the test fixtures that alter it.
export { Deframer, FrameError, checkFrame, encodeFrame, fromHex, parseHeader, toHex };

// ---------------------------------------------------------------- bodies

const LOCATION_ITEMS = {
  0x01: [4, 'mileage'], 0x02: [2, 'fuel'], 0x03: [2, 'recorder_speed'], 0x04: [2, 'alarm_event_id'],
  0x14: [4, 'video_alarm'], 0x15: [4, 'video_signal_loss'], 0x16: [4, 'video_occlusion'],
  0x17: [2, 'storage_fault'], 0x25: [4, 'vehicle_signal'], 0x2a: [2, 'io_status'],
  0x30: [1, 'signal_strength'], 0x31: [1, 'satellites'],
};

function uint(b, o, n) {
  return n === 1 ? b[o] : n === 2 ? u16(b, o) : u32(b, o);
}

function locationItem(id, v) {
  const item = { id: idHex(id, 2) };
  const known = LOCATION_ITEMS[id];
  if (known && known[0] === v.length) item[known[1]] = uint(v, 0, v.length);
  else if (id === 0x2b && v.length === 4) item.analog = { ad0: u16(v, 2), ad1: u16(v, 0) };
  else item.raw = toHex(v);
  return item;
}

/** 0x0200 (JT808.md §5): the 28-byte basic block typed; items typed where listed, else raw. */
export function decodeLocation(b) {
  if (b.length < 28) return null;
  const body = {
    alarm: u32(b, 0), status: u32(b, 4), lat: u32(b, 8), lng: u32(b, 12),
    altitude: u16(b, 16), speed: u16(b, 18), direction: u16(b, 20), time: bcdTime(b.subarray(22, 28)),
    items: [],
  };
  let o = 28;
  while (o + 2 <= b.length) {
    const id = b[o];
    const n = b[o + 1];
    if (o + 2 + n > b.length) {
      body.items.push({ id: idHex(id, 2), raw: toHex(b.subarray(o + 2)), cut: true });
      break;
    }
    body.items.push(locationItem(id, b.subarray(o + 2, o + 2 + n)));
    o += 2 + n;
  }
  return body;
}

function u64Number(b, o) {
  const v = (BigInt(u32(b, o)) << 32n) + BigInt(u32(b, o + 4));
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
}

/** 0x1205 (JT808.md §7.1): reply serial, then 28-byte items (as many as are whole). */
export function decodeAvList(b) {
  if (b.length < 6) return null;
  const count = u32(b, 2);
  const items = [];
  for (let o = 6; o + 28 <= b.length && items.length < count; o += 28) {
    items.push({
      channel: b[o], start: bcdTime(b.subarray(o + 1, o + 7)), end: bcdTime(b.subarray(o + 7, o + 13)),
      alarm: u64Number(b, o + 13), av_type: b[o + 21], stream_type: b[o + 22], storage_type: b[o + 23],
      file_size: u32(b, o + 24),
    });
  }
  return { reply_serial: u16(b, 0), items };
}

/** The body as the Rust client shows it where this client decodes it, else `{raw: hex}`. */
export function decodeBody(msgId, body) {
  let v = null;
  switch (msgId) {
    case 0x0001:
    case 0x8001:
      if (body.length === 5) v = { reply_serial: u16(body, 0), reply_id: idHex(u16(body, 2)), result: body[4] };
      break;
    case 0x0002:
    case 0x0003:
      if (body.length === 0) v = {};
      break;
    case 0x0200:
      v = decodeLocation(body);
      break;
    case 0x1205:
      v = decodeAvList(body);
      break;
    case 0x1206:
      if (body.length === 3) v = { reply_serial: u16(body, 0), result: body[2] };
      break;
    default:
  }
  return v ?? { raw: toHex(body) };
}

// ---------------------------------------------------------------- reassembly

/** Missing indices of a group as inclusive [first, last] ranges. */
function missingRanges(parts, total) {
  const out = [];
  for (let i = 1; i <= total; i++) {
    if (parts.has(i)) continue;
    const last = out[out.length - 1];
    if (last && last[1] === i - 1) last[1] = i;
    else out.push([i, i]);
  }
  return out;
}

/**
 * Per-SIM packet groups, keyed on (phone, msg id, total) and ordered by index (JT808.md §4);
 * not per connection: a terminal's group may finish after a reconnect. A group idle for the
 * timeout is given up, or, with a retransmit wait, reported stalled and given up only after that
 * much more time without a packet. `onMissing(report, header)` hears of a group missing packets
 * that may still come: when it stalls (with a wait), else when it is given up.
 */
export class Reassembler {
  constructor(opts, emit, onMissing = () => {}) {
    this.timeout = opts.groupTimeoutMs;
    this.wait = opts.retransmitWaitMs ?? 0;
    this.maxGroups = opts.maxGroups;
    this.emit = emit;
    this.onMissing = onMissing;
    this.groups = new Map();
  }

  /** A packet; returns the whole message {header, body, packets, firstSerial} when complete. */
  add(h, body, now) {
    if (h.index < 1 || h.index > h.total) {
      this.emit({ type: 'invalid_packet', msg_id: idHex(h.msgId), phone: h.phone, serial: h.serial, index: h.index, total: h.total });
      return null;
    }
    const key = `${h.phone}/${h.msgId}/${h.total}`;
    let g = this.groups.get(key);
    if (!g) {
      if (this.groups.size >= this.maxGroups) this.expireOldest(now);
      g = { header: h, parts: new Map(), firstSerial: h.serial - (h.index - 1), firstKnown: false, last: now };
      this.groups.set(key, g);
    }
    this.emit({ type: 'packet', msg_id: idHex(h.msgId), phone: h.phone, serial: h.serial, index: h.index, total: h.total });
    if (g.parts.has(h.index)) {
      const old = g.parts.get(h.index);
      const differs = old.length !== body.length || old.some((x, i) => x !== body[i]);
      this.emit({ type: 'duplicate_packet', msg_id: idHex(h.msgId), phone: h.phone, serial: h.serial, index: h.index, differs });
      return null;
    }
    g.parts.set(h.index, body);
    g.last = now;
    if (h.index === 1) {
      g.header = h;
      g.firstSerial = h.serial;
      g.firstKnown = true;
    }
    if (g.parts.size < h.total) return null;
    this.groups.delete(key);
    let size = 0;
    for (const p of g.parts.values()) size += p.length;
    const whole = new Uint8Array(size);
    let o = 0;
    for (let i = 1; i <= h.total; i++) {
      whole.set(g.parts.get(i), o);
      o += g.parts.get(i).length;
    }
    return { header: g.header, body: whole, packets: h.total, firstSerial: g.firstSerial };
  }

  /** Gives up (or first reports stalled) groups idle for the timeout, reporting what they miss. */
  sweep(now) {
    for (const [key, g] of this.groups) {
      if (g.stalled !== undefined) {
        if (now - Math.max(g.stalled, g.last) >= this.wait) this.expire(key, g, 'timeout');
      } else if (now - g.last >= this.timeout) {
        if (this.wait > 0) this.stall(g, now);
        else this.expire(key, g, 'timeout');
      }
    }
  }

  /** Reported once, kept open for the packets a 0x8003 asks for. */
  stall(g, now) {
    g.stalled = now;
    const r = this.report(g, 'timeout');
    this.emit({ type: 'group_stalled', ...r });
    this.onMissing(r, g.header);
  }

  expireOldest() {
    let oldest = null;
    for (const e of this.groups) if (!oldest || e[1].last < oldest[1].last) oldest = e;
    if (oldest) this.expire(oldest[0], oldest[1], 'limit');
  }

  expire(key, g, reason) {
    this.groups.delete(key);
    const r = this.report(g, reason);
    this.emit({ type: 'group_expired', ...r });
    if (this.wait === 0) this.onMissing(r, g.header);
  }

  /** What a stalled or expired group misses, in the Rust client's shape. */
  report(g, reason) {
    const h = g.header;
    return {
      phone: h.phone, msg_id: idHex(h.msgId), version: h.version, total: h.total,
      received: g.parts.size, missing: missingRanges(g.parts, h.total), missing_count: h.total - g.parts.size,
      first_serial: g.firstSerial & 0xffff, first_serial_known: g.firstKnown, reason,
    };
  }
}

// ---------------------------------------------------------------- the client

/** Seeded generator for the backoff jitter (mulberry32), so a run can be repeated. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** 0x8003: the platform asks for a group's missing packets (JT808.md §3). */
const RETRANSMIT_REQUEST = 0x8003;

/** Which answer confirms a command: 0x0001 for any, 0x1205 for 0x9205, 0x1206 for 0x9206. */
const ANSWERS = { 0x1205: 0x9205, 0x1206: 0x9206 };

/**
 * The reconnecting client. `WebSocketImpl` is the WebSocket class (`ws`'s in Node, the page's in
 * a browser); `emit(event)` receives every event. `on(msgId, fn)` registers a callback per id.
 */
export class Jt808Client {
  constructor(url, opts, WebSocketImpl, emit) {
    this.url = url;
    this.o = { ...DEFAULTS, ...opts };
    this.WS = WebSocketImpl;
    this.emit = emit;
    this.random = rng(this.o.seed);
    this.callbacks = new Map();
    this.queue = [];
    this.inflight = new Map();
    this.reasm = new Reassembler(this.o, (e) => this.emit(e), (r, h) => this.requestMissing(r, h));
    this.nextSerial = 0;
    this.attempt = 0;
    this.retry = 0;
    this.ws = null;
    this.open = false;
    this.stopped = false;
    this.timer = null;
  }

  /** Calls `fn(message)` for every decoded message with this id. */
  on(msgId, fn) {
    if (!this.callbacks.has(msgId)) this.callbacks.set(msgId, []);
    this.callbacks.get(msgId).push(fn);
  }

  start() {
    this.timer = setInterval(() => this.tick(), 100);
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearInterval(this.timer);
    if (this.ws) this.ws.close(1000);
  }

  connect() {
    if (this.stopped) return;
    this.attempt += 1;
    const attempt = this.attempt;
    const ws = new this.WS(this.url);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.deframer = new Deframer(this.o.maxFrameLen, (item) => this.onItem(item), this.o.rejoinUnescapedFlag);
    ws.onopen = () => this.opened(attempt);
    ws.onmessage = (ev) => this.received(ev.data);
    ws.onclose = (ev) => this.closed(ws, ev);
    ws.onerror = () => {}; // a close event follows and says why
    if (typeof ws.on === 'function') ws.on('pong', () => (this.lastRead = Date.now()));
  }

  opened(attempt) {
    this.open = true;
    this.openedAt = Date.now();
    this.lastRead = Date.now();
    this.lastPing = Date.now();
    this.emit({ type: 'connected', attempt });
    // Commands written before and never confirmed go first, with their serials: at least once.
    for (const m of this.inflight.values()) this.write(m, 'reconnect');
    const queued = this.queue.splice(0);
    for (const m of queued) this.write(m, null);
    if (queued.length > 0) this.emit({ type: 'flushed', count: queued.length });
  }

  closed(ws, ev) {
    if (ws !== this.ws) return;
    const up = this.open ? Date.now() - this.openedAt : 0;
    if (this.open) {
      this.deframer.close();
      const clean = ev.code !== 1006 && ev.code !== undefined;
      const reason = clean ? { kind: 'closed', code: ev.code, reason: ev.reason || '' } : { kind: 'dropped', error: 'connection closed without a close frame' };
      this.emit({ type: 'disconnected', reason, uptime_ms: up });
      if (up >= this.o.resetAfterMs) this.retry = 0;
    } else {
      this.emit({ type: 'connect_failed', attempt: this.attempt, error: `code ${ev.code}` });
    }
    this.open = false;
    if (this.stopped) return;
    this.retry += 1;
    const ceiling = Math.min(this.o.backoffMaxMs, this.o.backoffMinMs * this.o.backoffFactor ** (this.retry - 1));
    const delay = Math.round(this.o.backoffMinMs + (ceiling - this.o.backoffMinMs) * this.random());
    this.emit({ type: 'backoff', retry: this.retry, delay_ms: delay });
    setTimeout(() => this.connect(), delay);
  }

  received(data) {
    this.lastRead = Date.now();
    if (typeof data === 'string') {
      this.emit({ type: 'text_received', text: data });
      return;
    }
    const bytes = new Uint8Array(data);
    if (bytes.length < this.o.prefixLen) {
      this.emit({ type: 'envelope_too_short', len: bytes.length, prefix_len: this.o.prefixLen });
      return;
    }
    this.deframer.push(bytes.subarray(this.o.prefixLen));
  }

  onItem(item) {
    if (item.reject) {
      this.emit({ type: 'frame_rejected', check: item.reject.check, offset: item.offset, error: item.reject.message });
    } else if (item.skipped !== undefined) {
      this.emit({ type: 'skipped', offset: item.offset, len: item.skipped });
    } else if (item.unescaped !== undefined) {
      this.emit({ type: 'unescaped_flag', offset: item.offset, at: item.unescaped });
    } else {
      this.frame(item.frame.header, item.frame.body);
    }
  }

  frame(h, body) {
    if (!h.packaged) {
      this.deliver(h, body, null);
      return;
    }
    const whole = this.reasm.add(h, body, Date.now());
    if (whole) this.deliver(whole.header, whole.body, whole);
  }

  deliver(h, body, group) {
    const m = { type: 'message', msg_id: idHex(h.msgId), version: h.version };
    if (h.protocolVersion !== undefined) m.protocol_version = h.protocolVersion;
    m.phone = h.phone;
    m.serial = h.serial;
    if (group) {
      m.packets = group.packets;
      m.first_serial = group.firstSerial;
    }
    if (h.encryption) m.encryption = h.encryption;
    if (h.quirk) m.quirk = h.quirk;
    m.body = h.encryption ? { raw: toHex(body) } : decodeBody(h.msgId, body);
    this.emit(m);
    this.confirm(h, m.body);
    for (const fn of this.callbacks.get(h.msgId) ?? []) fn(m);
  }

  confirm(h, body) {
    if (body.reply_serial === undefined) return;
    const id = h.msgId === 0x0001 ? parseInt(body.reply_id, 16) : ANSWERS[h.msgId];
    if (id === undefined) return;
    const key = `${h.phone}/${body.reply_serial}`;
    const m = this.inflight.get(key);
    if (!m || m.msgId !== id) return;
    this.inflight.delete(key);
    this.emit({ type: 'confirmed', serial: m.serial, msg_id: idHex(m.msgId), phone: m.phone, result: h.msgId === 0x0001 ? body.result : null, writes: m.writes });
  }

  /** Sends one frame (bytes): now if connected, else queued and flushed on reconnect. */
  send(frame) {
    const raw = frame[0] === FLAG && frame[frame.length - 1] === FLAG ? frame.subarray(1, frame.length - 1) : frame;
    const { header } = checkFrame(Array.from(raw), 0);
    const m = {
      bytes: frame, msgId: header.msgId, phone: header.phone, serial: header.serial, writes: 0,
      // 0x8001 answers, 0x8003 is answered by the packets it names: neither awaits a 0x0001.
      awaits: header.msgId >= 0x8000 && header.msgId !== 0x8001 && header.msgId !== RETRANSMIT_REQUEST,
    };
    if (this.open) return this.write(m, null);
    if (this.queue.length >= this.o.queueCapacity) {
      this.emit({ type: 'queue_full', msg_id: idHex(m.msgId), phone: m.phone, capacity: this.o.queueCapacity });
      return false;
    }
    this.queue.push(m);
    this.emit({ type: 'queued', serial: m.serial, msg_id: idHex(m.msgId), phone: m.phone, packets: 1, held: this.queue.length });
    return true;
  }

  write(m, resendReason) {
    this.ws.send(m.bytes);
    m.writes += 1;
    m.sentAt = Date.now();
    const ids = { serial: m.serial, msg_id: idHex(m.msgId), phone: m.phone };
    if (resendReason) this.emit({ type: 'resent', ...ids, write: m.writes, reason: resendReason });
    else this.emit({ type: 'sent', ...ids, packets: 1, awaits_confirmation: m.awaits });
    if (m.awaits) this.inflight.set(`${m.phone}/${m.serial}`, m);
    return true;
  }

  /**
   * Asks the terminal for a group's missing packets with 0x8003 (with `requestMissing`): packet
   * 1's serial WORD, the count (BYTE in 2013, WORD in 2019), the indices as WORDs; in chunks that
   * fit one count and one frame's 1023-byte body. Sent (or queued) like any command.
   */
  requestMissing(r, h) {
    if (!this.o.requestMissing || r.missing_count === 0) return;
    const indices = r.missing.flatMap(([a, b]) => Array.from({ length: b - a + 1 }, (_, i) => a + i));
    const v2019 = h.version === '2019';
    const per = v2019 ? 509 : 255;
    for (let k = 0; k < indices.length; k += per) {
      const chunk = indices.slice(k, k + per);
      const count = v2019 ? [chunk.length >> 8, chunk.length & 0xff] : [chunk.length];
      const body = [r.first_serial >> 8, r.first_serial & 0xff, ...count, ...chunk.flatMap((i) => [i >> 8, i & 0xff])];
      const serial = this.nextSerial;
      this.nextSerial = (this.nextSerial + 1) & 0xffff;
      const frame = encodeFrame({ msgId: RETRANSMIT_REQUEST, version: h.version, protocolVersion: h.protocolVersion, phone: h.phone, serial, body });
      this.emit({
        type: 'retransmit_requested', phone: h.phone, first_serial: r.first_serial,
        first_serial_known: r.first_serial_known, missing: chunk, serial,
      });
      this.send(frame);
    }
  }

  /** Timers: group expiry, confirmation timeouts, pings and the idle timeout. */
  tick() {
    const now = Date.now();
    this.reasm.sweep(now);
    for (const [key, m] of this.inflight) {
      if (!this.open || now - m.sentAt < this.o.confirmTimeoutMs) continue;
      if (m.writes > this.o.maxResends) {
        this.inflight.delete(key);
        this.emit({ type: 'delivery_failed', serial: m.serial, msg_id: idHex(m.msgId), phone: m.phone, writes: m.writes });
      } else this.write(m, 'timeout');
    }
    if (!this.open) return;
    if (typeof this.ws.ping === 'function' && this.o.pingIntervalMs > 0 && now - this.lastPing >= this.o.pingIntervalMs) {
      this.lastPing = now;
      this.ws.ping();
    }
    if (this.o.idleTimeoutMs > 0 && now - this.lastRead >= this.o.idleTimeoutMs) {
      this.emit({ type: 'idle_timeout', idle_ms: now - this.lastRead });
      if (typeof this.ws.terminate === 'function') this.ws.terminate();
      else this.ws.close(4000, 'idle timeout');
    }
  }
}

/** The event types this client prints that the harness reads (the `hello` line). */
export const REPORTS = ['connected', 'disconnected', 'message', 'frame_rejected', 'skipped', 'packet', 'duplicate_packet', 'group_expired'];

/**
 * Wires a client to a line-based driver: `hello` first, then every event; `onLine(text)` takes
 * one stdin line ({"type":"send","hex":"7e...7e"}). Shared by node.mjs and page.html.
 */
export function runClient(url, opts, WebSocketImpl, print, Client = Jt808Client) {
  print({ type: 'hello', client: 'jt808-js', reports: REPORTS });
  const client = new Client(url, opts, WebSocketImpl, print);
  client.start();
  const onLine = (text) => {
    if (text.trim() === '') return;
    let cmd;
    try {
      cmd = JSON.parse(text);
    } catch (e) {
      throw new Error(`bad command line (not JSON): ${text.slice(0, 120)}`);
    }
    if (cmd.type !== 'send' || typeof cmd.hex !== 'string') throw new Error(`bad command line: ${text.slice(0, 120)}`);
    client.send(fromHex(cmd.hex));
  };
  return { client, onLine };
}
