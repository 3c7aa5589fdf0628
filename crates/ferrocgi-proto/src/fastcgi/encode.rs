//! Record writers.
//!
//! Every function appends whole records (header, content, padding) to a caller-supplied
//! buffer, reserving the space first, so a batch of records goes out in one write. This
//! matters: a backend that sends a record in several small writes on a kept-alive TCP
//! connection hits the Nagle + delayed-ACK stall (~40 ms per request measured with flup behind
//! nginx; see docs/protocols.md).
//!
//! Two groups:
//!
//! * application side, used by [`Connection`](super::Connection): [`stream`], [`end_request`],
//!   [`unknown_type`], [`get_values_result`];
//! * web-server side, for tests, fuzz seeds and raw-bytes integration tests:
//!   [`begin_request`], [`params`], [`stdin`], [`stdin_end`], [`abort_request`],
//!   [`get_values`], and the generic [`record`] / [`record_with_padding`] /
//!   [`stream_chunked`].

use super::params::{encode_pair, encoded_len};
use super::record::*;
use bytes::{Bytes, BytesMut};

/// Appends one record whose content is at most [`FCGI_MAX_CONTENT_LEN`] bytes.
fn one_record(record_type: u8, id: u16, content: &[u8], padding: u8, out: &mut BytesMut) {
    debug_assert!(content.len() <= FCGI_MAX_CONTENT_LEN);
    let header = Header {
        version: FCGI_VERSION_1,
        record_type,
        request_id: id,
        // Callers split content into pieces of at most 0xffff bytes.
        content_length: content.len() as u16,
        padding_length: padding,
    };
    out.reserve(header.record_len());
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(content);
    out.extend_from_slice(&[0u8; 255][..usize::from(padding)]);
}

/// Appends `content` as records of `record_type`, each padded with exactly `padding` bytes.
///
/// Content longer than [`FCGI_MAX_CONTENT_LEN`] is split into consecutive records of the same
/// type; empty content writes one empty record (which, for a stream type, is its terminator).
/// Use this to reproduce a web server's framing byte for byte (Apache and lighttpd send no
/// padding, nginx pads to 8).
pub fn record_with_padding(
    record_type: u8,
    id: u16,
    content: &[u8],
    padding: u8,
    out: &mut BytesMut,
) {
    if content.is_empty() {
        one_record(record_type, id, content, padding, out);
        return;
    }
    for piece in content.chunks(FCGI_MAX_CONTENT_LEN) {
        one_record(record_type, id, piece, padding, out);
    }
}

/// Appends `content` as records of `record_type`, each padded to a multiple of 8 bytes.
///
/// Splitting and empty content as in [`record_with_padding`].
pub fn record(record_type: u8, id: u16, content: &[u8], out: &mut BytesMut) {
    if content.is_empty() {
        one_record(record_type, id, content, 0, out);
        return;
    }
    for piece in content.chunks(FCGI_MAX_CONTENT_LEN) {
        one_record(record_type, id, piece, padding_for(piece.len()), out);
    }
}

/// Appends `data` as stream records of at most `max_content` bytes each (clamped to
/// 1..=[`FCGI_MAX_CONTENT_LEN`]), padded to 8 when `pad` is true. Writes nothing for empty
/// `data`: an empty record would end the stream.
///
/// nginx: `max_content` 32768, `pad` true; Apache mod_proxy_fcgi: 8192, false; mod_fcgid: 8000,
/// false; lighttpd: 65535, false.
pub fn stream_chunked(
    record_type: u8,
    id: u16,
    data: &[u8],
    max_content: usize,
    pad: bool,
    out: &mut BytesMut,
) {
    let max = max_content.clamp(1, FCGI_MAX_CONTENT_LEN);
    for piece in data.chunks(max) {
        let padding = if pad { padding_for(piece.len()) } else { 0 };
        one_record(record_type, id, piece, padding, out);
    }
}

/// Appends `data` as stream records (`FCGI_STDOUT`, `FCGI_STDERR`, `FCGI_STDIN`…) of at most
/// 65535 content bytes, padded to 8. Writes nothing for empty `data`.
pub fn stream(record_type: u8, id: u16, data: &[u8], out: &mut BytesMut) {
    stream_chunked(record_type, id, data, FCGI_MAX_CONTENT_LEN, true, out);
}

/// [`stream`] for a payload sent without copying it: the output becomes `segs` (in order)
/// followed by `out`. Each record's header goes into `out`, which is then moved to `segs`
/// ahead of a zero-copy slice of `data`; the padding starts the new `out`.
pub fn stream_shared(
    record_type: u8,
    id: u16,
    data: &Bytes,
    out: &mut BytesMut,
    segs: &mut Vec<Bytes>,
) {
    let mut start = 0;
    while start < data.len() {
        let end = data.len().min(start + FCGI_MAX_CONTENT_LEN);
        let padding = padding_for(end - start);
        let header = Header {
            version: FCGI_VERSION_1,
            record_type,
            request_id: id,
            // At most FCGI_MAX_CONTENT_LEN (0xffff).
            content_length: (end - start) as u16,
            padding_length: padding,
        };
        out.extend_from_slice(&header.to_bytes());
        segs.push(out.split().freeze());
        segs.push(data.slice(start..end));
        out.extend_from_slice(&[0u8; 255][..usize::from(padding)]);
        start = end;
    }
}

/// Appends `FCGI_END_REQUEST` (`FCGI_EndRequestBody`: appStatus, protocolStatus).
pub fn end_request(id: u16, app_status: u32, status: ProtocolStatus, out: &mut BytesMut) {
    let s = app_status.to_be_bytes();
    let body = [s[0], s[1], s[2], s[3], status.as_u8(), 0, 0, 0];
    one_record(FCGI_END_REQUEST, id, &body, 0, out);
}

/// Appends `FCGI_UNKNOWN_TYPE` (`FCGI_UnknownTypeBody`) naming `record_type`.
pub fn unknown_type(record_type: u8, out: &mut BytesMut) {
    let body = [record_type, 0, 0, 0, 0, 0, 0, 0];
    one_record(FCGI_UNKNOWN_TYPE, FCGI_NULL_REQUEST_ID, &body, 0, out);
}

/// Encodes pairs into one contiguous block.
fn pairs_block(pairs: &[(&[u8], &[u8])]) -> BytesMut {
    let len = pairs
        .iter()
        .fold(0usize, |acc, (n, v)| acc.saturating_add(encoded_len(n, v)));
    let mut block = BytesMut::with_capacity(len);
    for (n, v) in pairs {
        encode_pair(n, v, &mut block);
    }
    block
}

/// Appends `FCGI_GET_VALUES_RESULT` with `pairs` (one record; the caller keeps it under
/// 65535 bytes, as [`Connection`](super::Connection) does by answering each variable once).
pub fn get_values_result(pairs: &[(&[u8], &[u8])], out: &mut BytesMut) {
    let block = pairs_block(pairs);
    record(FCGI_GET_VALUES_RESULT, FCGI_NULL_REQUEST_ID, &block, out);
}

/// Web-server side: appends `FCGI_BEGIN_REQUEST` with `role` (e.g. [`FCGI_RESPONDER`]) and the
/// `FCGI_KEEP_CONN` flag when `keep_conn`.
pub fn begin_request(id: u16, role: u16, keep_conn: bool, out: &mut BytesMut) {
    let r = role.to_be_bytes();
    let flags = if keep_conn { FCGI_KEEP_CONN } else { 0 };
    let body = [r[0], r[1], flags, 0, 0, 0, 0, 0];
    one_record(FCGI_BEGIN_REQUEST, id, &body, 0, out);
}

/// Web-server side: appends the whole `FCGI_PARAMS` stream: the encoded pairs (one record,
/// or several of at most 65535 bytes when larger, so a pair may straddle two records) padded to
/// 8, then the empty `FCGI_PARAMS` record that ends the stream.
///
/// # Panics
/// If a name or value is longer than 2^31 - 1 bytes (see
/// [`encode_pair`]).
pub fn params(id: u16, pairs: &[(&[u8], &[u8])], out: &mut BytesMut) {
    let block = pairs_block(pairs);
    stream(FCGI_PARAMS, id, &block, out);
    record(FCGI_PARAMS, id, &[], out);
}

/// Web-server side: appends `data` as `FCGI_STDIN` records (nothing for empty data; see
/// [`stdin_end`]).
pub fn stdin(id: u16, data: &[u8], out: &mut BytesMut) {
    stream(FCGI_STDIN, id, data, out);
}

/// Web-server side: appends the empty `FCGI_STDIN` record that ends the request body.
pub fn stdin_end(id: u16, out: &mut BytesMut) {
    record(FCGI_STDIN, id, &[], out);
}

/// Web-server side: appends `FCGI_ABORT_REQUEST`.
pub fn abort_request(id: u16, out: &mut BytesMut) {
    record(FCGI_ABORT_REQUEST, id, &[], out);
}

/// Web-server side: appends `FCGI_GET_VALUES` asking for `names` (values sent empty, as the
/// spec says).
pub fn get_values(names: &[&[u8]], out: &mut BytesMut) {
    let pairs: Vec<(&[u8], &[u8])> = names.iter().map(|n| (*n, &b""[..])).collect();
    let block = pairs_block(&pairs);
    record(FCGI_GET_VALUES, FCGI_NULL_REQUEST_ID, &block, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_request_bytes() {
        let mut out = BytesMut::new();
        begin_request(1, FCGI_RESPONDER, true, &mut out);
        assert_eq!(&out[..], &[1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn params_padded_and_terminated() {
        let mut out = BytesMut::new();
        params(1, &[(b"A", b"1")], &mut out);
        assert_eq!(
            &out[..],
            &[
                1, 4, 0, 1, 0, 4, 4, 0, 1, 1, b'A', b'1', 0, 0, 0, 0, // record + 4 padding
                1, 4, 0, 1, 0, 0, 0, 0, // terminator
            ]
        );
    }

    #[test]
    fn record_splits_large_content() {
        let mut out = BytesMut::new();
        record_with_padding(FCGI_STDIN, 2, &vec![7; 70000], 0, &mut out);
        assert_eq!(out.len(), 8 + 65535 + 8 + (70000 - 65535));
        assert_eq!(&out[..8], &[1, 5, 0, 2, 0xff, 0xff, 0, 0]);
        assert_eq!(
            &out[8 + 65535..8 + 65535 + 8],
            &[1, 5, 0, 2, 0x11, 0x71, 0, 0]
        );
    }

    #[test]
    fn stream_chunked_like_apache() {
        let mut out = BytesMut::new();
        stream_chunked(FCGI_STDIN, 1, &[1; 8193], 8192, false, &mut out);
        assert_eq!(out.len(), 8 + 8192 + 8 + 1);
        out.clear();
        stream_chunked(FCGI_STDIN, 1, &[], 8192, false, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn shared_stream_writes_the_same_bytes() {
        let data = Bytes::from((0..70_000u32).map(|i| i as u8).collect::<Vec<u8>>());
        let mut copied = BytesMut::new();
        stream(FCGI_STDOUT, 3, &data, &mut copied);
        let mut out = BytesMut::from(&b"head"[..]);
        let mut segs = Vec::new();
        stream_shared(FCGI_STDOUT, 3, &data, &mut out, &mut segs);
        let mut joined = BytesMut::new();
        for s in &segs {
            joined.extend_from_slice(s);
        }
        joined.extend_from_slice(&out);
        assert_eq!(&joined[..4], b"head");
        assert_eq!(&joined[4..], &copied[..]);
    }

    #[test]
    fn management_records() {
        let mut out = BytesMut::new();
        unknown_type(200, &mut out);
        assert_eq!(
            &out[..],
            &[1, 11, 0, 0, 0, 8, 0, 0, 200, 0, 0, 0, 0, 0, 0, 0]
        );
        out.clear();
        get_values(&[b"FCGI_MPXS_CONNS"], &mut out);
        // 2 + 15 = 17 content bytes, 7 padding.
        assert_eq!(&out[..8], &[1, 9, 0, 0, 0, 17, 7, 0]);
        assert_eq!(out.len(), 32);
    }
}
