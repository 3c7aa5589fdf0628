//! Response encoding, and a web-server-side request encoder for tests and fuzz seeds.

use crate::ResponseHead;
use bytes::{BufMut, BytesMut};

/// Writes the response head in CGI form (`Status: 200 OK`, headers, empty line).
///
/// The body follows as raw bytes; the end of the response is the application closing the
/// connection.
pub fn write_head(head: &ResponseHead, out: &mut BytesMut) {
    head.encode_cgi(out)
}

/// Writes an SCGI request head as a web server would: the netstring of `pairs`, each as
/// `name NUL value NUL`. The caller puts `CONTENT_LENGTH` first and `SCGI` = `1` among the
/// pairs (or leaves them out, to build bad input); the body is appended by the caller.
pub fn request(pairs: &[(&[u8], &[u8])], out: &mut BytesMut) {
    let len: usize = pairs.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
    out.reserve(len + 12);
    out.put_slice(len.to_string().as_bytes());
    out.put_u8(b':');
    for (n, v) in pairs {
        out.put_slice(n);
        out.put_u8(0);
        out.put_slice(v);
        out.put_u8(0);
    }
    out.put_u8(b',');
}
