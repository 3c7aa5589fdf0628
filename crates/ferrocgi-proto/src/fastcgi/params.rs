//! The FastCGI name-value pair codec (FastCGI 1.0, §3.4).
//!
//! A pair is `nameLength valueLength name value`. Each length is one byte when below 128, and
//! otherwise four bytes big-endian with the high bit of the first byte set as a marker: the
//! length itself is the remaining 31 bits, so the largest is 2^31 - 1. The same encoding is used
//! by `FCGI_PARAMS` streams and by `FCGI_GET_VALUES` / `FCGI_GET_VALUES_RESULT` records.
//!
//! Decoding produces index ranges into the input, so a [`Params`] built from them shares the
//! input buffer and copies nothing.

use crate::Params;
use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;
use std::ops::Range;

/// Largest name or value length the 4-byte form can carry (31 bits).
pub const MAX_PAIR_LEN: usize = 0x7fff_ffff;

/// Why a block of name-value pairs could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairsError {
    /// A length byte, a 4-byte length, a name or a value runs past the end of the block.
    Truncated,
    /// More pairs than the caller's limit.
    TooMany,
}

impl fmt::Display for PairsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PairsError::Truncated => f.write_str("a name-value length runs past the end"),
            PairsError::TooMany => f.write_str("too many name-value pairs"),
        }
    }
}

/// Iterator over the pairs of a block, as `(name, value)` index ranges into it.
///
/// Yields `Err(PairsError::Truncated)` once when a pair runs past the end, then stops.
#[derive(Debug, Clone)]
pub struct PairRanges<'a> {
    buf: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> PairRanges<'a> {
    /// Iterates over the pairs in `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        PairRanges {
            buf,
            pos: 0,
            done: false,
        }
    }

    /// Reads one length at `self.pos`, advancing past it.
    fn read_len(&mut self) -> Option<usize> {
        let first = *self.buf.get(self.pos)?;
        if first & 0x80 == 0 {
            self.pos += 1;
            return Some(usize::from(first));
        }
        let end = self.pos.checked_add(4)?;
        let b = self.buf.get(self.pos..end)?;
        self.pos = end;
        // The high bit is the 4-byte marker, not part of the length.
        let len = u32::from_be_bytes([b[0] & 0x7f, b[1], b[2], b[3]]);
        usize::try_from(len).ok()
    }

    fn next_pair(&mut self) -> Option<(Range<usize>, Range<usize>)> {
        let name_len = self.read_len()?;
        let value_len = self.read_len()?;
        let name_end = self.pos.checked_add(name_len)?;
        let value_end = name_end.checked_add(value_len)?;
        if value_end > self.buf.len() {
            return None;
        }
        let pair = (self.pos..name_end, name_end..value_end);
        self.pos = value_end;
        Some(pair)
    }
}

impl Iterator for PairRanges<'_> {
    type Item = Result<(Range<usize>, Range<usize>), PairsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.buf.len() {
            return None;
        }
        match self.next_pair() {
            Some(pair) => Some(Ok(pair)),
            None => {
                self.done = true;
                Some(Err(PairsError::Truncated))
            }
        }
    }
}

/// Decodes a whole block of pairs into a zero-copy [`Params`] sharing `buf`.
///
/// Fails with [`PairsError::TooMany`] as soon as pair number `max_pairs + 1` is seen (so at most
/// `max_pairs` ranges are ever stored), and with [`PairsError::Truncated`] when the last pair runs
/// past the end of `buf`.
pub fn decode_pairs(buf: Bytes, max_pairs: usize) -> Result<Params, PairsError> {
    // Web servers send 15 to 40 params: start big enough for most, without a reallocation.
    let mut pairs = Vec::with_capacity(max_pairs.min(32));
    for pair in PairRanges::new(&buf) {
        let pair = pair?;
        if pairs.len() >= max_pairs {
            return Err(PairsError::TooMany);
        }
        pairs.push(pair);
    }
    Ok(Params::from_ranges(buf, pairs))
}

/// Bytes needed to encode one length.
fn len_len(len: usize) -> usize {
    if len < 0x80 {
        1
    } else {
        4
    }
}

/// Bytes [`encode_pair`] writes for this pair.
pub fn encoded_len(name: &[u8], value: &[u8]) -> usize {
    len_len(name.len()) + len_len(value.len()) + name.len() + value.len()
}

fn put_len(len: usize, out: &mut BytesMut) {
    if len < 0x80 {
        // < 128, fits.
        out.put_u8(len as u8);
    } else {
        // Caller checked len <= MAX_PAIR_LEN, so it fits in 31 bits.
        out.put_u32(len as u32 | 0x8000_0000);
    }
}

/// Appends one pair, choosing the 1- or 4-byte form for each length.
///
/// # Panics
/// If the name or the value is longer than [`MAX_PAIR_LEN`] (2 GiB): the protocol cannot
/// express it. This is the caller's data, never the peer's.
pub fn encode_pair(name: &[u8], value: &[u8], out: &mut BytesMut) {
    assert!(
        name.len() <= MAX_PAIR_LEN && value.len() <= MAX_PAIR_LEN,
        "FastCGI name-value pair longer than 2^31 - 1 bytes"
    );
    out.reserve(encoded_len(name, value));
    put_len(name.len(), out);
    put_len(value.len(), out);
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(pairs: &[(&[u8], &[u8])]) -> Bytes {
        let mut out = BytesMut::new();
        for (n, v) in pairs {
            encode_pair(n, v, &mut out);
        }
        out.freeze()
    }

    #[test]
    fn one_byte_lengths() {
        let b = enc(&[(b"A", b"1"), (b"", b""), (b"HTTP_X", b"")]);
        assert_eq!(&b[..6], &[1, 1, b'A', b'1', 0, 0]);
        let p = decode_pairs(b, 10).unwrap();
        let v: Vec<_> = p.iter().collect();
        assert_eq!(
            v,
            vec![
                (&b"A"[..], &b"1"[..]),
                (&b""[..], &b""[..]),
                (&b"HTTP_X"[..], &b""[..])
            ]
        );
    }

    #[test]
    fn four_byte_lengths() {
        let long = vec![b'x'; 200];
        let b = enc(&[(b"N", &long)]);
        assert_eq!(&b[..5], &[1, 0x80, 0, 0, 200]);
        let p = decode_pairs(b, 10).unwrap();
        assert_eq!(p.get(b"N"), Some(&long[..]));
        // 127 is the largest 1-byte length, 128 the smallest 4-byte one.
        assert_eq!(encoded_len(&[0; 127], b""), 129);
        assert_eq!(encoded_len(&[0; 128], b""), 133);
        // A 4-byte length may also encode a small value (the spec does not forbid it).
        let p = decode_pairs(Bytes::from_static(&[0x80, 0, 0, 1, 0, b'Z']), 1).unwrap();
        assert_eq!(p.get(b"Z"), Some(&b""[..]));
    }

    #[test]
    fn high_bit_is_a_marker_not_a_length() {
        // 0xffff_ffff: marker + 2^31 - 1, far past the end: truncated, not an overflow.
        let b = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x00]);
        assert_eq!(decode_pairs(b, 10), Err(PairsError::Truncated));
        let b = Bytes::from_static(&[0x01, 0xff, 0xff, 0xff, 0xff, b'a']);
        assert_eq!(decode_pairs(b, 10), Err(PairsError::Truncated));
    }

    #[test]
    fn truncated() {
        for bad in [
            &[0x80][..],             // 4-byte name length cut short
            &[0x80, 0, 0][..],       // same
            &[1][..],                // no value length
            &[1, 0x80, 0, 0][..],    // value length cut short
            &[2, 0, b'a'][..],       // name cut short
            &[1, 2, b'a', b'b'][..], // value cut short
        ] {
            assert_eq!(
                decode_pairs(Bytes::copy_from_slice(bad), 10),
                Err(PairsError::Truncated),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn too_many() {
        let b = enc(&[(b"a", b""), (b"b", b""), (b"c", b"")]);
        assert_eq!(decode_pairs(b.clone(), 3).unwrap().len(), 3);
        assert_eq!(decode_pairs(b, 2), Err(PairsError::TooMany));
        assert!(decode_pairs(Bytes::new(), 0).unwrap().is_empty());
    }

    #[test]
    fn iterator_stops_after_error() {
        let mut it = PairRanges::new(&[1, 1, b'a', b'b', 5]);
        assert_eq!(it.next(), Some(Ok((2..3, 3..4))));
        assert_eq!(it.next(), Some(Err(PairsError::Truncated)));
        assert_eq!(it.next(), None);
    }
}
