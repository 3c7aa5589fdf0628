//! Pure parsing helpers: the netstring length prefix and the header block.

use super::{limits, Config, Error};
use std::ops::Range;

/// ASCII decimal digits, as a byte-class table.
pub(crate) static DIGIT: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = b'0';
    while b <= b'9' {
        t[b as usize] = true;
        b += 1;
    }
    t
};

/// Scans the netstring length prefix at the start of `buf`.
///
/// Returns `Ok(Some((prefix_len, len)))` where `prefix_len` counts the digits and the colon,
/// `Ok(None)` when the colon has not arrived yet (and nothing seen so far is wrong), or the
/// error as soon as the bytes seen prove one. The prefix is at most
/// `MAX_NETSTRING_DIGITS + 1` bytes, so re-scanning it on every call is cheap.
pub(crate) fn netstring_prefix(
    buf: &[u8],
    config: &Config,
) -> Result<Option<(usize, usize)>, Error> {
    let mut len: usize = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b':' {
            if i == 0 {
                return Err(Error::BadNetstringLength);
            }
            if len > config.max_header_bytes {
                return Err(Error::HeadersTooLarge);
            }
            return Ok(Some((i + 1, len)));
        }
        if !DIGIT[b as usize] {
            return Err(Error::BadNetstringLength);
        }
        if i == 1 && buf[0] == b'0' {
            // djb's netstrings have no leading zeros; "0:," is the only length starting
            // with 0, and an empty header block is rejected later anyway.
            return Err(Error::BadNetstringLength);
        }
        if i >= limits::MAX_NETSTRING_DIGITS {
            return Err(Error::NetstringLengthTooLong);
        }
        // Cannot overflow: at most MAX_NETSTRING_DIGITS digits; checked all the same.
        len = len
            .checked_mul(10)
            .and_then(|l| l.checked_add(usize::from(b - b'0')))
            .ok_or(Error::NetstringLengthTooLong)?;
    }
    Ok(None)
}

/// One name/value pair as ranges into a buffer.
pub(crate) type Pair = (Range<usize>, Range<usize>);

/// Splits the header block (the netstring's content, without prefix and comma) into pairs,
/// validates the SCGI rules, and returns the pairs (ranges offset by `base`, the block's
/// position in the caller's buffer) and the `CONTENT_LENGTH` value.
pub(crate) fn header_block(
    block: &[u8],
    base: usize,
    config: &Config,
) -> Result<(Vec<Pair>, u64), Error> {
    if block.is_empty() {
        return Err(Error::ContentLengthNotFirst);
    }
    if block.last() != Some(&0) {
        return Err(Error::OddHeaderFields);
    }
    let fields = memchr::memchr_iter(0, block).count();
    if fields % 2 != 0 {
        return Err(Error::OddHeaderFields);
    }
    if fields / 2 > config.max_header_pairs {
        return Err(Error::TooManyHeaders);
    }
    // Bounded by max_header_pairs, checked just above.
    let mut pairs: Vec<Pair> = Vec::with_capacity(fields / 2);
    let mut start = 0;
    let mut name: Option<Range<usize>> = None;
    for nul in memchr::memchr_iter(0, block) {
        let field = start..nul;
        start = nul + 1;
        match name.take() {
            None if field.is_empty() => return Err(Error::EmptyHeaderName),
            None => name = Some(field),
            Some(n) => pairs.push((n, field)),
        }
    }
    // `block` is non-empty and ends with NUL and the field count is even: one pair at least.
    let (first_name, first_value) = match pairs.first() {
        Some((n, v)) => (&block[n.clone()], &block[v.clone()]),
        None => return Err(Error::ContentLengthNotFirst),
    };
    if first_name != b"CONTENT_LENGTH" {
        return Err(Error::ContentLengthNotFirst);
    }
    let content_length = parse_content_length(first_value)?;
    let scgi = pairs
        .iter()
        .find(|(n, _)| &block[n.clone()] == b"SCGI")
        .ok_or(Error::MissingScgiHeader)?;
    if &block[scgi.1.clone()] != b"1" {
        return Err(Error::BadScgiVersion);
    }
    // Ranges lie inside `block`, which lies at `base` inside the caller's buffer: no overflow.
    let shifted = pairs
        .into_iter()
        .map(|(n, v)| (n.start + base..n.end + base, v.start + base..v.end + base))
        .collect();
    Ok((shifted, content_length))
}

/// Parses a `CONTENT_LENGTH` value: 1 to `MAX_CONTENT_LENGTH_DIGITS` ASCII digits, no sign,
/// no spaces. Leading zeros are accepted (HTTP's `1*DIGIT` allows them).
pub(crate) fn parse_content_length(v: &[u8]) -> Result<u64, Error> {
    if v.is_empty() || v.len() > limits::MAX_CONTENT_LENGTH_DIGITS {
        return Err(Error::BadContentLength);
    }
    let mut n: u64 = 0;
    for &b in v {
        if !DIGIT[b as usize] {
            return Err(Error::BadContentLength);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(Error::BadContentLength)?;
    }
    Ok(n)
}
