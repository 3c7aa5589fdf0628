//! CGI-style request parameters: an ordered list of name/value byte strings.
//!
//! FastCGI PARAMS and the SCGI netstring arrive as one block of bytes; [`Params`] keeps that
//! block as a [`Bytes`] and records index ranges into it, so decoding copies nothing. AJP's
//! FORWARD_REQUEST is translated into CGI variables with a [`ParamsBuilder`], which copies once.
//!
//! Order and duplicates are kept exactly as the peer sent them (nginx sends a repeated request
//! header as two params with the same name); merging is the application host's business.

use bytes::{Bytes, BytesMut};
use std::ops::Range;

/// One name/value pair as index ranges into the shared buffer.
type Pair = (Range<usize>, Range<usize>);

/// An ordered list of name/value pairs sharing one buffer.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Params {
    buf: Bytes,
    pairs: Vec<Pair>,
}

impl Params {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a list from a buffer and ranges into it.
    ///
    /// # Panics
    /// If a range lies outside `buf`: ranges are produced by this crate's decoders, which have
    /// already checked them, so a bad one is a bug here, not bad input.
    pub fn from_ranges(buf: Bytes, pairs: Vec<Pair>) -> Self {
        for (n, v) in &pairs {
            assert!(
                n.start <= n.end && n.end <= buf.len(),
                "name range out of bounds"
            );
            assert!(
                v.start <= v.end && v.end <= buf.len(),
                "value range out of bounds"
            );
        }
        Params { buf, pairs }
    }

    /// Number of pairs (duplicates counted).
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The pairs in the order the peer sent them.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        self.pairs
            .iter()
            .map(move |(n, v)| (&self.buf[n.clone()], &self.buf[v.clone()]))
    }

    /// The value of the first pair named `name`, if any.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The shared buffer, for callers that want zero-copy slices of values.
    pub fn buffer(&self) -> &Bytes {
        &self.buf
    }

    /// The value of pair `i` as a zero-copy [`Bytes`].
    pub fn value_bytes(&self, i: usize) -> Option<Bytes> {
        self.pairs.get(i).map(|(_, v)| self.buf.slice(v.clone()))
    }
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            }))
            .finish()
    }
}

/// Builds a [`Params`] by copying pairs into one buffer.
#[derive(Default)]
pub struct ParamsBuilder {
    buf: BytesMut,
    pairs: Vec<Pair>,
}

impl ParamsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a pair.
    pub fn push(&mut self, name: &[u8], value: &[u8]) -> &mut Self {
        let n0 = self.buf.len();
        self.buf.extend_from_slice(name);
        let v0 = self.buf.len();
        self.buf.extend_from_slice(value);
        self.pairs.push((n0..v0, v0..self.buf.len()));
        self
    }

    /// Bytes of names and values so far.
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }

    /// Number of pairs so far.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The finished list.
    pub fn finish(self) -> Params {
        Params {
            buf: self.buf.freeze(),
            pairs: self.pairs,
        }
    }
}

impl<N: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(N, V)> for Params {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut b = ParamsBuilder::new();
        for (n, v) in iter {
            b.push(n.as_ref(), v.as_ref());
        }
        b.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_duplicates() {
        let p: Params = [("A", "1"), ("HTTP_X_DUP", "a"), ("HTTP_X_DUP", "b")]
            .into_iter()
            .collect();
        assert_eq!(p.len(), 3);
        assert_eq!(p.get(b"HTTP_X_DUP"), Some(&b"a"[..]));
        let all: Vec<_> = p.iter().collect();
        assert_eq!(all[2], (&b"HTTP_X_DUP"[..], &b"b"[..]));
        assert_eq!(p.value_bytes(0).unwrap(), Bytes::from_static(b"1"));
        assert_eq!(p.get(b"MISSING"), None);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn rejects_bad_ranges() {
        Params::from_ranges(Bytes::from_static(b"ab"), vec![(0..1, 1..3)]);
    }
}
