//! Invariant: the vectored response encoder (`encode::stream_shared`, which puts each record's
//! header in the write buffer and sends the payload as its own zero-copy slice) produces, once
//! its segments and the buffer are written in order, exactly the bytes of the copying encoder
//! (`encode::stream`), whatever the payload sizes and whatever was written between them.
//!
//! Input: byte 0 picks the request id; then a sequence of 3-byte operations
//! `[kind, len, offset]`: kind bit 0 chooses the shared or the copying encoder; the payload is
//! `len` bytes, or with kind bits 2 to 4 all set `65535 - 128 + len` bytes (so records split around the
//! 65535-byte content limit); kind bit 1 writes an `FCGI_END_REQUEST` after it, the way a
//! response's last part is followed by its end. Payloads are slices of one static buffer at
//! `offset`, so a slice taken from the wrong place shows and no input allocates much.
#![no_main]

use bytes::{Bytes, BytesMut};
use ferrocgi_proto::fastcgi::encode;
use ferrocgi_proto::fastcgi::record::FCGI_STDOUT;
use ferrocgi_proto::fastcgi::ProtocolStatus;

/// Longest payload an operation asks for, plus the largest offset.
const POOL_LEN: usize = 0xffff - 128 + 255 + 255;

/// Bytes that vary (a period of 251, prime to every record size), made once.
fn pool() -> &'static Bytes {
    static POOL: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        (0..POOL_LEN)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>()
            .into()
    })
}

fn payload(kind: u8, len: u8, offset: u8) -> Bytes {
    // Rare, so most inputs stay cheap and the fuzzer runs many of them.
    let long = kind & 0x1c == 0x1c;
    let len = usize::from(len) + if long { 0xffff - 128 } else { 0 };
    let start = usize::from(offset);
    pool().slice(start..start + len)
}

/// True when `seg` is a view into `data`'s memory: the payload was not copied.
fn within(seg: &Bytes, data: &Bytes) -> bool {
    let (s, d) = (seg.as_ptr() as usize, data.as_ptr() as usize);
    s >= d && s + seg.len() <= d + data.len()
}

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    let Some((&id_byte, ops)) = input.split_first() else {
        return;
    };
    let id = u16::from(id_byte) + 1;
    let mut expected = BytesMut::new();
    let (mut out, mut segs) = (BytesMut::new(), Vec::new());
    for op in ops.chunks_exact(3).take(32) {
        let data = payload(op[0], op[1], op[2]);
        encode::stream(FCGI_STDOUT, id, &data, &mut expected);
        if op[0] & 1 != 0 {
            let before = segs.len();
            encode::stream_shared(FCGI_STDOUT, id, &data, &mut out, &mut segs);
            // Every second new segment is a slice of the payload, never a copy.
            for seg in segs[before..].iter().skip(1).step_by(2) {
                assert!(within(seg, &data), "payload segment was copied");
            }
        } else {
            encode::stream(FCGI_STDOUT, id, &data, &mut out);
        }
        if op[0] & 2 != 0 {
            encode::end_request(id, 0, ProtocolStatus::RequestComplete, &mut expected);
            encode::end_request(id, 0, ProtocolStatus::RequestComplete, &mut out);
        }
    }
    let mut written = Vec::with_capacity(expected.len());
    for seg in &segs {
        assert!(!seg.is_empty(), "an empty segment would be a wasted iovec");
        written.extend_from_slice(seg);
    }
    written.extend_from_slice(&out);
    assert_eq!(written, expected.as_ref());
});
