//! Packet encoders.
//!
//! The container's packets (SEND_HEADERS, SEND_BODY_CHUNK, GET_BODY_CHUNK, END_RESPONSE,
//! CPONG) are written by [`Connection`](super::Connection)'s methods through the
//! crate-private helpers here. The public free functions write the *web server's* packets
//! (FORWARD_REQUEST, body chunks, CPING), for tests, fuzz seeds and integration tests.

use super::headers::{self, attr};
use super::{Error, ForwardRequest};
use bytes::{BufMut, BytesMut};

/// Bytes an AJP string of `s` takes: u16 length, the bytes, NUL.
pub(crate) fn string_len(s: &[u8]) -> usize {
    2 + s.len() + 1
}

/// Writes an AJP string. The caller has checked that `s.len() < 0xFFFF` (a length of 0xFFFF
/// would read as the null string); longer input is cut rather than panicking.
pub(crate) fn put_string(out: &mut BytesMut, s: &[u8]) {
    let s = &s[..s.len().min(0xFFFE)];
    out.put_u16(s.len() as u16);
    out.put_slice(s);
    out.put_u8(0);
}

/// Writes a container packet header: `'A' 'B'` + u16 payload length.
pub(crate) fn put_container_header(out: &mut BytesMut, payload_len: u16) {
    out.put_slice(&headers::MAGIC_FROM_CONTAINER);
    out.put_u16(payload_len);
}

/// CPONG_REPLY: `'A' 'B' 00 01 09`.
pub(crate) fn cpong(out: &mut BytesMut) {
    put_container_header(out, 1);
    out.put_u8(headers::CPONG_REPLY);
}

/// GET_BODY_CHUNK: `'A' 'B' 00 03 06 <u16 size>`.
pub(crate) fn get_body_chunk(out: &mut BytesMut, size: u16) {
    put_container_header(out, 3);
    out.put_u8(headers::GET_BODY_CHUNK);
    out.put_u16(size);
}

/// END_RESPONSE: `'A' 'B' 00 02 05 <reuse>`.
pub(crate) fn end_response(out: &mut BytesMut, reuse: bool) {
    put_container_header(out, 2);
    out.put_u8(headers::END_RESPONSE);
    out.put_u8(u8::from(reuse));
}

/// SEND_BODY_CHUNK packets for `data`, each at most `max_data` bytes (`max_packet - 8`).
pub(crate) fn send_body_chunks(out: &mut BytesMut, data: &[u8], max_data: usize) {
    for chunk in data.chunks(max_data.max(1)) {
        // chunk.len() <= max_packet - 8 <= 65528: fits the u16 fields.
        out.reserve(chunk.len() + 8);
        put_container_header(out, (chunk.len() + 4) as u16);
        out.put_u8(headers::SEND_BODY_CHUNK);
        out.put_u16(chunk.len() as u16);
        out.put_slice(chunk);
        out.put_u8(0);
    }
}

/// SEND_HEADERS for `head`, or [`Error::ResponseHeadTooLarge`] (nothing written) when the
/// packet would exceed `max_packet`.
pub(crate) fn send_headers(
    out: &mut BytesMut,
    head: &crate::ResponseHead,
    max_packet: usize,
) -> Result<(), Error> {
    let mut payload = 1 + 2 + string_len(&head.reason) + 2;
    for (n, v) in &head.headers {
        let name_len = if headers::response_header_code(n).is_some() {
            2
        } else {
            string_len(n)
        };
        payload = payload
            .checked_add(name_len + string_len(v))
            .ok_or(Error::ResponseHeadTooLarge)?;
    }
    if payload > max_packet.saturating_sub(4) {
        return Err(Error::ResponseHeadTooLarge);
    }
    // payload <= max_packet - 4 <= 65532, so every length below fits its u16 field, and the
    // header count is below 65532 / 5.
    out.reserve(payload + 4);
    put_container_header(out, payload as u16);
    out.put_u8(headers::SEND_HEADERS);
    // Same rule as the CGI encoding: the status is three digits by definition.
    let status = if (100..=999).contains(&head.status) {
        head.status
    } else {
        500
    };
    out.put_u16(status);
    put_string(out, &head.reason);
    out.put_u16(head.headers.len() as u16);
    for (n, v) in &head.headers {
        match headers::response_header_code(n) {
            Some(code) => out.put_u16(code),
            None => put_string(out, n),
        }
        put_string(out, v);
    }
    Ok(())
}

/// Writes a web-server packet: `12 34` + u16 length + payload, or [`Error::PacketTooLarge`]
/// (nothing written) when the payload exceeds 65535 bytes.
fn server_packet(out: &mut BytesMut, payload: &[u8]) -> Result<(), Error> {
    let len = u16::try_from(payload.len()).map_err(|_| Error::PacketTooLarge)?;
    out.reserve(payload.len() + 4);
    out.put_slice(&headers::MAGIC_FROM_SERVER);
    out.put_u16(len);
    out.put_slice(payload);
    Ok(())
}

/// Writes a FORWARD_REQUEST as a web server would.
///
/// The method is coded when it is in the method table; otherwise it is sent as 0xFF with a
/// `stored_method` attribute, as Apache does. Headers found in the request header table are
/// coded (case-insensitively). Every `Some` attribute is written, in code order, then 0xFF;
/// `content_length` and `chunked` are not written (they come from the headers).
/// [`Error::PacketTooLarge`] when the packet would not fit the u16 length (nothing written);
/// checking it against a `max_packet` is the reader's business.
pub fn forward_request(req: &ForwardRequest, out: &mut BytesMut) -> Result<(), Error> {
    let mut p = BytesMut::new();
    p.put_u8(headers::FORWARD_REQUEST);
    let code = headers::method_code(&req.method);
    p.put_u8(code.unwrap_or(headers::SC_M_JK_STORED));
    for s in [
        &req.protocol,
        &req.req_uri,
        &req.remote_addr,
        &req.remote_host,
        &req.server_name,
    ] {
        put_string(&mut p, s);
    }
    p.put_u16(req.server_port);
    p.put_u8(u8::from(req.is_ssl));
    p.put_u16(u16::try_from(req.headers.len()).map_err(|_| Error::PacketTooLarge)?);
    for (n, v) in &req.headers {
        match headers::request_header_code(n) {
            Some(c) => p.put_u16(c),
            None => put_string(&mut p, n),
        }
        put_string(&mut p, v);
    }
    let strings: [(u8, &Option<bytes::Bytes>); 9] = [
        (attr::CONTEXT, &req.context),
        (attr::SERVLET_PATH, &req.servlet_path),
        (attr::REMOTE_USER, &req.remote_user),
        (attr::AUTH_TYPE, &req.auth_type),
        (attr::QUERY_STRING, &req.query_string),
        (attr::JVM_ROUTE, &req.jvm_route),
        (attr::SSL_CERT, &req.ssl_cert),
        (attr::SSL_CIPHER, &req.ssl_cipher),
        (attr::SSL_SESSION, &req.ssl_session),
    ];
    for (code, v) in strings {
        if let Some(v) = v {
            p.put_u8(code);
            put_string(&mut p, v);
        }
    }
    for (n, v) in &req.req_attributes {
        p.put_u8(attr::REQ_ATTRIBUTE);
        put_string(&mut p, n);
        put_string(&mut p, v);
    }
    if let Some(bits) = req.ssl_key_size {
        p.put_u8(attr::SSL_KEY_SIZE);
        p.put_u16(bits);
    }
    if let Some(s) = &req.secret {
        p.put_u8(attr::SECRET);
        put_string(&mut p, s);
    }
    if code.is_none() {
        p.put_u8(attr::STORED_METHOD);
        put_string(&mut p, &req.method);
    }
    p.put_u8(attr::ARE_DONE);
    server_packet(out, &p)
}

/// Writes one request body packet as a web server would: `12 34 LEN DLEN DATA` (Apache,
/// the AJPv13 document), or `12 34 LEN DATA` when `lighttpd_format`. Empty `data` writes the
/// empty packet `12 34 00 00` in both formats (the end of a chunked body).
/// [`Error::PacketTooLarge`] when `data` does not fit the u16 length (nothing written).
pub fn body_chunk(data: &[u8], lighttpd_format: bool, out: &mut BytesMut) -> Result<(), Error> {
    if data.is_empty() || lighttpd_format {
        return server_packet(out, data);
    }
    let dlen = u16::try_from(data.len()).map_err(|_| Error::PacketTooLarge)?;
    if data.len() > 0xFFFF - 2 {
        return Err(Error::PacketTooLarge);
    }
    out.reserve(data.len() + 6);
    out.put_slice(&headers::MAGIC_FROM_SERVER);
    out.put_u16(dlen + 2);
    out.put_u16(dlen);
    out.put_slice(data);
    Ok(())
}

/// Writes a CPING: `12 34 00 01 0A`.
pub fn cping(out: &mut BytesMut) {
    out.put_slice(&headers::MAGIC_FROM_SERVER);
    out.put_u16(1);
    out.put_u8(headers::CPING);
}

/// Writes a SHUTDOWN: `12 34 00 01 07`.
pub fn shutdown(out: &mut BytesMut) {
    out.put_slice(&headers::MAGIC_FROM_SERVER);
    out.put_u16(1);
    out.put_u8(headers::SHUTDOWN);
}
