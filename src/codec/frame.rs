//! One frame on the wire: escaping, the XOR check code, and the frame limits.
//!
//! JT/T 808-2019 §4.4.1: "标识位 ... 采用 0x7e 表示, 若校验码、消息头以及消息体中出现 0x7e, 则要进行转义处理"
//! (0x7E is the flag; where it occurs in the check code, header or body it is escaped:
//! `0x7E -> 0x7D 0x02`, `0x7D -> 0x7D 0x01`). §4.4.3: the check code is the XOR of every byte from the
//! header through the body. No I/O and no allocation beyond the caller's buffer.

/// The frame delimiter.
pub const FLAG: u8 = 0x7E;
/// The escape byte.
pub const ESCAPE: u8 = 0x7D;

/// The largest body a single packet can declare: the body-length field has 10 bits.
pub const MAX_BODY_LEN: usize = 0x3FF;
/// The largest header (2019 layout with the sub-packet item).
pub const MAX_HEADER_LEN: usize = 21;
/// The largest unescaped frame content between the delimiters: header + body + check code.
pub const MAX_UNESCAPED_CONTENT: usize = MAX_HEADER_LEN + MAX_BODY_LEN + 1;
/// The largest escaped frame content between the delimiters (every byte escaped). With both
/// delimiters this is the 2092 bytes of JT808.md §1.
pub const MAX_ESCAPED_CONTENT: usize = 2 * MAX_UNESCAPED_CONTENT;

/// XOR of every byte: the JT/T 808 check code.
#[inline]
pub fn xor(bytes: &[u8]) -> u8 {
    // Folding 8 bytes at a time lets the compiler vectorise; the result is the same as a byte loop.
    let mut chunks = bytes.chunks_exact(8);
    let mut acc = 0u64;
    for c in &mut chunks {
        acc ^= u64::from_ne_bytes(c.try_into().expect("chunk of 8"));
    }
    let mut x = acc.to_ne_bytes().iter().fold(0u8, |a, b| a ^ b);
    for b in chunks.remainder() {
        x ^= b;
    }
    x
}

/// Escapes `raw` (header + body + check code) onto `out`, without delimiters.
pub fn escape_into(raw: &[u8], out: &mut Vec<u8>) {
    out.reserve(raw.len() + raw.len() / 8 + 2);
    let mut rest = raw;
    while let Some(i) = memchr::memchr2(FLAG, ESCAPE, rest) {
        out.extend_from_slice(&rest[..i]);
        out.push(ESCAPE);
        out.push(if rest[i] == FLAG { 0x02 } else { 0x01 });
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
}

/// Builds a whole wire frame from unescaped header + body: check code, escaping, delimiters.
pub fn frame_into(header_and_body: &[u8], out: &mut Vec<u8>) {
    out.push(FLAG);
    escape_into(header_and_body, out);
    escape_into(&[xor(header_and_body)], out);
    out.push(FLAG);
}

/// Un-escapes frame content (between the delimiters). On an invalid escape returns the
/// offset (within `escaped`) of the offending 0x7D.
pub fn unescape_into(escaped: &[u8], out: &mut Vec<u8>) -> Result<(), usize> {
    out.reserve(escaped.len());
    let mut pos = 0;
    while let Some(i) = memchr::memchr(ESCAPE, &escaped[pos..]) {
        out.extend_from_slice(&escaped[pos..pos + i]);
        let at = pos + i;
        match escaped.get(at + 1) {
            Some(0x01) => out.push(ESCAPE),
            Some(0x02) => out.push(FLAG),
            _ => return Err(at),
        }
        pos = at + 2;
    }
    out.extend_from_slice(&escaped[pos..]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xor_matches_byte_loop() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for len in 0..data.len() {
            let expect = data[..len].iter().fold(0, |a, b| a ^ b);
            assert_eq!(xor(&data[..len]), expect, "len {len}");
        }
    }

    #[test]
    fn escape_then_unescape_round_trips() {
        let raw = [0x30, 0x7E, 0x08, 0x7D, 0x55, 0x7D, 0x7E];
        let mut esc = Vec::new();
        escape_into(&raw, &mut esc);
        assert_eq!(esc, [0x30, 0x7D, 0x02, 0x08, 0x7D, 0x01, 0x55, 0x7D, 0x01, 0x7D, 0x02]);
        let mut back = Vec::new();
        unescape_into(&esc, &mut back).unwrap();
        assert_eq!(back, raw);
    }

    #[test]
    fn unescape_rejects_unknown_and_dangling_escapes() {
        let mut out = Vec::new();
        assert_eq!(unescape_into(&[1, 2, 0x7D, 0x03], &mut out), Err(2));
        out.clear();
        assert_eq!(unescape_into(&[1, 0x7D], &mut out), Err(1));
    }
}
