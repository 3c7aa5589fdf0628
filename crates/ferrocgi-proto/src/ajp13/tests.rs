//! Table tests: every decoder case runs whole, one byte at a time, and with trailing bytes,
//! driven the way a server drives the connection (GET_BODY_CHUNK after every event).

use super::*;
use crate::ResponseHead;
use bytes::{BufMut, BytesMut};

/// An incomplete packet header: whatever the phase, it is "need more" and stays in the
/// buffer.
const TRAILING: &[u8] = &[0x12, 0x34, 0x00];

#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<Event>,
    error: Option<Error>,
    /// Everything the container wrote: queued replies and GET_BODY_CHUNKs.
    written: Vec<u8>,
    leftover: Vec<u8>,
}

fn run(config: &Config, input: &[u8], step: usize) -> Outcome {
    let mut conn = Connection::new(config.clone());
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    let mut events = Vec::new();
    let chunks: Vec<&[u8]> = if step == 0 {
        vec![input]
    } else {
        input.chunks(step).collect()
    };
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let r = conn.decode(&mut buf);
            conn.take_output(&mut out);
            match r {
                Ok(Some(e)) => {
                    if let Event::Body(b) = &e {
                        assert!(!b.is_empty(), "empty Body event");
                    }
                    events.push(e);
                    conn.request_body_chunk(&mut out);
                }
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(conn.decode(&mut buf), Err(e), "error not sticky");
                    return Outcome {
                        events,
                        error: Some(e),
                        written: out.to_vec(),
                        leftover: buf.to_vec(),
                    };
                }
            }
        }
    }
    Outcome {
        events,
        error: None,
        written: out.to_vec(),
        leftover: buf.to_vec(),
    }
}

fn check(config: &Config, input: &[u8]) -> Outcome {
    let whole = run(config, input, 0);
    same(&whole, &run(config, input, 1), "byte by byte");
    let mut with_trailing = input.to_vec();
    with_trailing.extend_from_slice(TRAILING);
    let t = run(config, &with_trailing, 0);
    same(
        &t,
        &run(config, &with_trailing, 1),
        "trailing, byte by byte",
    );
    same(&whole, &t, "trailing");
    if whole.error.is_none() {
        assert_eq!(t.leftover, [&whole.leftover[..], TRAILING].concat());
    }
    whole
}

/// Same events, error and output; the leftover too unless feeding stopped at an error.
fn same(a: &Outcome, b: &Outcome, how: &str) {
    assert_eq!(a.events, b.events, "{how}: events differ");
    assert_eq!(a.error, b.error, "{how}: error differs");
    assert_eq!(a.written, b.written, "{how}: output differs");
    if a.error.is_none() && how != "trailing" {
        assert_eq!(a.leftover, b.leftover, "{how}: leftover differs");
    }
}

// ---- byte builders, straight from the AJPv13 packet layouts ----

/// An AJP string.
fn s(v: &str) -> Vec<u8> {
    let mut o = (v.len() as u16).to_be_bytes().to_vec();
    o.extend_from_slice(v.as_bytes());
    o.push(0);
    o
}

/// A web-server packet around `payload`.
fn pkt(payload: &[u8]) -> Vec<u8> {
    let mut o = vec![0x12, 0x34];
    o.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    o.extend_from_slice(payload);
    o
}

const NULL: [u8; 2] = [0xFF, 0xFF];

/// The FORWARD_REQUEST Apache's mod_proxy_ajp sends for `GET /prefix/some/path?x=1` with
/// `secret=s3cret`, built field by field.
fn apache_get_payload() -> Vec<u8> {
    let mut p = vec![2, 2]; // FORWARD_REQUEST, GET
    p.extend(s("HTTP/1.1"));
    p.extend(s("/prefix/some/path"));
    p.extend(s("127.0.0.1"));
    p.extend(NULL); // remote_host: no lookup
    p.extend(s("127.0.0.1"));
    p.extend(18130u16.to_be_bytes());
    p.push(0); // is_ssl
    p.extend(4u16.to_be_bytes());
    p.extend([0xA0, 0x0B]); // host
    p.extend(s("127.0.0.1:18130"));
    p.extend([0xA0, 0x0E]); // user-agent
    p.extend(s("curl/7.88.1"));
    p.extend(s("X_Under"));
    p.extend(s("1"));
    p.extend([0xA0, 0x01]); // accept
    p.extend(s("*/*"));
    p.push(0x05);
    p.extend(s("x=1"));
    p.push(0x0A);
    p.extend(s("AJP_REMOTE_PORT"));
    p.extend(s("54321"));
    p.push(0x0A);
    p.extend(s("AJP_LOCAL_ADDR"));
    p.extend(s("127.0.0.1"));
    p.push(0x0C);
    p.extend(s("s3cret"));
    p.push(0xFF);
    p
}

fn request_with(method: &str, headers: &[(&str, &str)]) -> ForwardRequest {
    ForwardRequest {
        method: Bytes::copy_from_slice(method.as_bytes()),
        protocol: Bytes::from_static(b"HTTP/1.1"),
        req_uri: Bytes::from_static(b"/upload"),
        remote_addr: Bytes::from_static(b"127.0.0.1"),
        server_name: Bytes::from_static(b"localhost"),
        server_port: 80,
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    Bytes::copy_from_slice(n.as_bytes()),
                    Bytes::copy_from_slice(v.as_bytes()),
                )
            })
            .collect(),
        ..ForwardRequest::default()
    }
}

fn fr(req: &ForwardRequest) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode::forward_request(req, &mut out).unwrap();
    out.to_vec()
}

fn body(data: &[u8], lighttpd: bool) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode::body_chunk(data, lighttpd, &mut out).unwrap();
    out.to_vec()
}

fn get_body_chunk(n: u16) -> Vec<u8> {
    let mut o = vec![b'A', b'B', 0, 3, 6];
    o.extend(n.to_be_bytes());
    o
}

const CPONG: [u8; 5] = [b'A', b'B', 0, 1, 9];
const CPING: [u8; 5] = [0x12, 0x34, 0, 1, 10];

fn request_of(e: &Event) -> &ForwardRequest {
    match e {
        Event::Request(r) => r,
        other => panic!("not a request: {other:?}"),
    }
}

fn params(p: &Params) -> Vec<(String, String)> {
    p.iter()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

fn b(v: &str) -> Bytes {
    Bytes::copy_from_slice(v.as_bytes())
}

// ---- requests ----

#[test]
fn apache_get_with_coded_headers_and_attributes() {
    let o = check(&Config::default(), &pkt(&apache_get_payload()));
    assert_eq!(o.error, None);
    assert!(o.written.is_empty());
    assert_eq!(o.events.len(), 2);
    assert_eq!(o.events[1], Event::BodyEnd);
    let r = request_of(&o.events[0]);
    assert_eq!(r.method, "GET");
    assert_eq!(r.protocol, "HTTP/1.1");
    assert_eq!(r.req_uri, "/prefix/some/path");
    assert_eq!(r.remote_host, "");
    assert_eq!(r.server_port, 18130);
    assert!(!r.is_ssl);
    assert_eq!(
        r.headers,
        vec![
            (b("host"), b("127.0.0.1:18130")),
            (b("user-agent"), b("curl/7.88.1")),
            (b("X_Under"), b("1")),
            (b("accept"), b("*/*")),
        ]
    );
    assert_eq!(r.query_string.as_deref(), Some(&b"x=1"[..]));
    assert_eq!(r.secret.as_deref(), Some(&b"s3cret"[..]));
    assert_eq!(r.content_length, None);
    assert!(!r.chunked);
    let p = params(&r.to_params());
    let expect: Vec<(String, String)> = [
        ("REQUEST_METHOD", "GET"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_URI", "/prefix/some/path?x=1"),
        ("QUERY_STRING", "x=1"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_HOST", "127.0.0.1"),
        ("SERVER_NAME", "127.0.0.1"),
        ("SERVER_PORT", "18130"),
        ("REQUEST_SCHEME", "http"),
        ("HTTP_HOST", "127.0.0.1:18130"),
        ("HTTP_USER_AGENT", "curl/7.88.1"),
        ("HTTP_ACCEPT", "*/*"),
        ("AJP_REMOTE_PORT", "54321"),
        ("AJP_LOCAL_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "54321"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    assert_eq!(p, expect);
    assert!(!p.iter().any(|(_, v)| v == "s3cret"), "secret leaked");
}

#[test]
fn cping_before_request() {
    let mut input = CPING.to_vec();
    input.extend(pkt(&apache_get_payload()));
    let o = check(&Config::default(), &input);
    assert_eq!(o.error, None);
    assert_eq!(o.events.len(), 2);
    let o2 = check(&Config::default(), &[&CPING[..], &CPING[..]].concat());
    assert_eq!(o2.events, vec![]);
    assert_eq!(o2.written, [CPONG, CPONG].concat());
    assert_eq!(o.written, CPONG.to_vec());
}

#[test]
fn non_empty_packet_while_responding_is_unexpected() {
    let mut input = pkt(&apache_get_payload());
    input.extend(CPING);
    let o = check(&Config::default(), &input);
    assert_eq!(o.events.len(), 2);
    assert_eq!(o.error, Some(Error::UnexpectedPacket));
}

#[test]
fn old_ping_gets_cpong_and_shutdown_event() {
    let o = check(
        &Config::default(),
        &[0x12, 0x34, 0, 1, 8, 0x12, 0x34, 0, 1, 7],
    );
    assert_eq!(o.written, CPONG.to_vec());
    assert_eq!(o.events, vec![Event::Shutdown]);
}

#[test]
fn post_unsolicited_first_chunk_then_get_body_chunk() {
    let data: Vec<u8> = (0..20000u32).map(|i| (i % 251) as u8).collect();
    let req = request_with(
        "POST",
        &[("Content-Length", "20000"), ("content-type", "a/b")],
    );
    let mut input = fr(&req);
    input.extend(body(&data[..8186], false));
    input.extend(body(&data[8186..16372], false));
    input.extend(body(&data[16372..], false));
    let o = check(&Config::default(), &input);
    assert_eq!(o.error, None);
    let r = request_of(&o.events[0]);
    assert_eq!(r.content_length, Some(20000));
    assert!(!r.chunked);
    assert_eq!(
        o.events[1],
        Event::Body(Bytes::copy_from_slice(&data[..8186]))
    );
    assert_eq!(
        o.events[2],
        Event::Body(Bytes::copy_from_slice(&data[8186..16372]))
    );
    assert_eq!(
        o.events[3],
        Event::Body(Bytes::copy_from_slice(&data[16372..]))
    );
    assert_eq!(o.events[4], Event::BodyEnd);
    assert_eq!(o.events.len(), 5);
    // No request for the unsolicited chunk; then max_packet - 6, then the remaining 3628.
    assert_eq!(
        o.written,
        [get_body_chunk(8186), get_body_chunk(3628)].concat()
    );
    let p = params(&r.to_params());
    assert!(p.contains(&("CONTENT_LENGTH".into(), "20000".into())));
    assert!(p.contains(&("CONTENT_TYPE".into(), "a/b".into())));
    assert!(!p
        .iter()
        .any(|(n, _)| n == "HTTP_CONTENT_LENGTH" || n == "HTTP_CONTENT_TYPE"));
}

#[test]
fn request_body_chunk_only_when_due() {
    let req = request_with("POST", &[("Content-Length", "10")]);
    let mut conn = Connection::new(Config::default());
    let mut buf = BytesMut::from(&fr(&req)[..]);
    let mut out = BytesMut::new();
    assert!(!conn.request_body_chunk(&mut out), "idle");
    assert!(matches!(conn.decode(&mut buf), Ok(Some(Event::Request(_)))));
    assert!(
        !conn.request_body_chunk(&mut out),
        "unsolicited chunk outstanding"
    );
    buf.extend(body(b"0123", false));
    assert_eq!(conn.decode(&mut buf), Ok(Some(Event::Body(b("0123")))));
    assert!(conn.request_body_chunk(&mut out));
    assert!(!conn.request_body_chunk(&mut out), "already outstanding");
    assert_eq!(&out[..], &get_body_chunk(6)[..]);
    buf.extend(body(b"456789", false));
    assert_eq!(conn.decode(&mut buf), Ok(Some(Event::Body(b("456789")))));
    assert!(!conn.request_body_chunk(&mut out), "complete");
    assert_eq!(conn.decode(&mut buf), Ok(Some(Event::BodyEnd)));
    assert_eq!(conn.decode(&mut buf), Ok(None));
}

#[test]
fn chunked_upload_ends_with_empty_packet() {
    let req = request_with("PUT", &[("Transfer-Encoding", "chunked")]);
    let mut input = fr(&req);
    input.extend(body(&[7u8; 100], false));
    input.extend(body(&[8u8; 50], false));
    input.extend(body(b"", false));
    let o = check(&Config::default(), &input);
    assert_eq!(o.error, None);
    let r = request_of(&o.events[0]);
    assert!(r.chunked);
    assert_eq!(r.content_length, None);
    assert!(!params(&r.to_params())
        .iter()
        .any(|(n, _)| n == "CONTENT_LENGTH"));
    assert_eq!(
        o.events[1..],
        [
            Event::Body(Bytes::from(vec![7u8; 100])),
            Event::Body(Bytes::from(vec![8u8; 50])),
            Event::BodyEnd
        ]
    );
    // No unsolicited chunk: asked at once, then after each chunk, not after the end.
    assert_eq!(o.written, get_body_chunk(8186).repeat(3));
}

#[test]
fn chunked_end_in_standard_format_with_zero_dlen() {
    let req = request_with("POST", &[("Transfer-Encoding", "gzip, Chunked")]);
    let mut input = fr(&req);
    input.extend(pkt(&[0, 0]));
    let o = check(&Config::default(), &input);
    assert_eq!(o.events[1..], [Event::BodyEnd]);
}

#[test]
fn lighttpd_body_format() {
    let config = Config {
        lighttpd_body_compat: true,
        ..Config::default()
    };
    let data: Vec<u8> = (0..20000u32).map(|i| (i * 7 % 256) as u8).collect();
    let req = request_with("POST", &[("Content-Length", "20000")]);
    let mut input = fr(&req);
    for part in [&data[..8188], &data[8188..16376], &data[16376..]] {
        input.extend(body(part, true));
    }
    assert_eq!(
        &input[input.len() - 3628..input.len() - 3624],
        &[0x12, 0x34, 0x0E, 0x28]
    );
    let o = check(&config, &input);
    assert_eq!(o.error, None);
    let sizes: Vec<usize> = o
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Body(b) => Some(b.len()),
            _ => None,
        })
        .collect();
    assert_eq!(sizes, [8188, 8188, 3624]);
    let joined: Vec<u8> = o
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Body(b) => Some(b.to_vec()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .concat();
    assert_eq!(joined, data);
    assert_eq!(o.events.last(), Some(&Event::BodyEnd));
}

#[test]
fn lighttpd_empty_packet_after_bodyless_get() {
    let config = Config {
        lighttpd_body_compat: true,
        ..Config::default()
    };
    let req = request_with("GET", &[("Content-Length", "0")]);
    let mut input = fr(&req);
    input.extend(body(b"", true));
    assert_eq!(&input[input.len() - 4..], &[0x12, 0x34, 0, 0]);
    // Then the next request on the same connection (after the response).
    let o = check(&config, &input);
    assert_eq!(o.error, None);
    assert_eq!(o.events.len(), 2);
    assert_eq!(o.events[1], Event::BodyEnd);
    assert!(o.leftover.is_empty());
    // The same in the default format, and in idle after end_response.
    let o = check(&Config::default(), &input);
    assert_eq!((o.events.len(), o.error), (2, None));
    let mut conn = Connection::new(config);
    let mut buf = BytesMut::from(&fr(&req)[..]);
    let mut out = BytesMut::new();
    assert!(matches!(conn.decode(&mut buf), Ok(Some(Event::Request(_)))));
    assert_eq!(conn.decode(&mut buf), Ok(Some(Event::BodyEnd)));
    conn.end_response(true, &mut out);
    buf.extend([0x12, 0x34, 0, 0]);
    buf.extend(fr(&req));
    assert!(matches!(conn.decode(&mut buf), Ok(Some(Event::Request(_)))));
}

#[test]
fn methods_webdav_and_stored() {
    for (code, name) in [
        (1u8, "OPTIONS"),
        (8, "PROPFIND"),
        (17, "VERSION-CONTROL"),
        (27, "MKACTIVITY"),
    ] {
        let mut p = apache_get_payload();
        p[1] = code;
        let o = check(&Config::default(), &pkt(&p));
        assert_eq!(request_of(&o.events[0]).method, name);
    }
    // Apache sends other methods as 0xFF + stored_method.
    let o = check(&Config::default(), &fr(&request_with("PATCH", &[])));
    let r = request_of(&o.events[0]);
    assert_eq!(r.method, "PATCH");
    assert_eq!(r.stored_method.as_deref(), Some(&b"PATCH"[..]));
    assert_eq!(headers::method_code(b"PATCH"), None);
}

#[test]
fn ssl_attributes_and_params() {
    let mut req = request_with("GET", &[("Cookie", "a=1"), ("X-Dup", "a"), ("X-Dup", "b")]);
    req.is_ssl = true;
    req.ssl_cipher = Some(b("TLS_AES_128_GCM_SHA256"));
    req.ssl_session = Some(b("abcd"));
    req.ssl_cert = Some(b("-----BEGIN CERTIFICATE-----"));
    req.ssl_key_size = Some(128);
    req.remote_user = Some(b("bob"));
    req.auth_type = Some(b("Basic"));
    req.context = Some(b("/ctx"));
    req.servlet_path = Some(b("/sp"));
    req.jvm_route = Some(b("node1"));
    req.query_string = Some(b(""));
    let o = check(&Config::default(), &fr(&req));
    let r = request_of(&o.events[0]);
    let mut expected = req.clone();
    expected.headers[0].0 = b("cookie"); // coded on the wire
    assert_eq!(r, &expected);
    let p = params(&r.to_params());
    for pair in [
        ("REQUEST_URI", "/upload"),
        ("QUERY_STRING", ""),
        ("REQUEST_SCHEME", "https"),
        ("HTTPS", "on"),
        ("HTTP_COOKIE", "a=1"),
        ("REMOTE_USER", "bob"),
        ("AUTH_TYPE", "Basic"),
        ("SSL_CIPHER", "TLS_AES_128_GCM_SHA256"),
        ("SSL_SESSION_ID", "abcd"),
        ("SSL_CLIENT_CERT", "-----BEGIN CERTIFICATE-----"),
        ("SSL_CIPHER_USEBITS", "128"),
    ] {
        assert!(
            p.contains(&(pair.0.into(), pair.1.into())),
            "{pair:?} in {p:?}"
        );
    }
    let dups: Vec<_> = p.iter().filter(|(n, _)| n == "HTTP_X_DUP").collect();
    assert_eq!(dups.len(), 2);
}

// ---- errors ----

/// Error-case table: name, config, input, exact error.
macro_rules! ajp_err {
    ($($name:ident: $input:expr => $err:expr;)*) => {$(
        #[test]
        fn $name() {
            let input: Vec<u8> = $input;
            let o = check(&Config::default(), &input);
            assert_eq!(o.error, Some($err), "{:?}", o.events);
        }
    )*};
}

fn cut_payload(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut p = apache_get_payload();
    f(&mut p);
    pkt(&p)
}

/// Position of the first byte of `needle` in the Apache GET payload.
fn at(needle: &[u8]) -> usize {
    let p = apache_get_payload();
    p.windows(needle.len()).position(|w| w == needle).unwrap()
}

ajp_err! {
    bad_magic_http_request: b"GET / HTTP/1.1\r\n\r\n".to_vec() => Error::BadMagic;
    bad_magic_second_byte: vec![0x12, 0x35, 0, 1, 10] => Error::BadMagic;
    packet_too_large: vec![0x12, 0x34, 0x1F, 0xFD, 2] => Error::PacketTooLarge;
    unknown_packet_type: vec![0x12, 0x34, 0, 1, 3] => Error::UnknownPacketType(3);
    zero_type_in_idle: pkt(&[0, 0]) => Error::UnknownPacketType(0);
    truncated_string: cut_payload(|p| p.truncate(at(b"/prefix") + 3)) => Error::Truncated;
    truncated_before_attributes_end: cut_payload(|p| { p.pop(); }) => Error::Truncated;
    missing_nul: cut_payload(|p| { let i = at(b"HTTP/1.1") + 8; p[i] = b'!'; }) => Error::MissingNul;
    string_length_past_packet: cut_payload(|p| { let i = at(b"HTTP/1.1") - 2; p[i] = 0x7F; }) => Error::Truncated;
    unknown_method_zero: cut_payload(|p| p[1] = 0) => Error::UnknownMethod(0);
    unknown_method_28: cut_payload(|p| p[1] = 28) => Error::UnknownMethod(28);
    stored_method_missing: cut_payload(|p| p[1] = 0xFF) => Error::MissingStoredMethod;
    unknown_header_code: cut_payload(|p| { let i = at(&[0xA0, 0x0E]); p[i + 1] = 0x0F; }) => Error::UnknownHeaderCode(0xA00F);
    null_header_name: cut_payload(|p| { let i = at(b"X_Under") - 2; p.splice(i..i + 10, [0xFF, 0xFF]); }) => Error::NullHeaderName;
    unknown_attribute: cut_payload(|p| { let i = at(b"x=1") - 3; p[i] = 0x0E; }) => Error::UnknownAttribute(0x0E);
    trailing_after_attributes: cut_payload(|p| p.push(0)) => Error::TrailingBytes;
    bad_content_length: fr(&request_with("POST", &[("Content-Length", "12a")])) => Error::BadContentLength;
    empty_content_length: fr(&request_with("POST", &[("Content-Length", "")])) => Error::BadContentLength;
    conflicting_content_lengths: fr(&request_with("POST", &[("Content-Length", "1"), ("content-length", "2")])) => Error::BadContentLength;
    merged_content_lengths: fr(&request_with("POST", &[("Content-Length", "1, 1")])) => Error::BadContentLength;
    body_too_long: [fr(&request_with("POST", &[("Content-Length", "5")])), body(b"123456", false)].concat() => Error::BodyTooLong;
    body_truncated_by_empty_packet: [fr(&request_with("POST", &[("Content-Length", "5")])), body(b"", false)].concat() => Error::BodyTruncated;
    body_dlen_mismatch: [fr(&request_with("POST", &[("Content-Length", "5")])), pkt(&[0, 4, 1, 2, 3, 4, 5])].concat() => Error::BadBodyPacket;
    body_packet_of_one_byte: [fr(&request_with("POST", &[("Content-Length", "5")])), pkt(&[0])].concat() => Error::BadBodyPacket;
    body_packet_too_large: [fr(&request_with("POST", &[("Content-Length", "99999")])), vec![0x12, 0x34, 0x1F, 0xFD]].concat() => Error::PacketTooLarge;
}

#[test]
fn too_many_headers() {
    let config = Config {
        max_headers: 3,
        ..Config::default()
    };
    let o = check(&config, &pkt(&apache_get_payload()));
    assert_eq!(o.error, Some(Error::TooManyHeaders));
    assert_eq!(Error::TooManyHeaders.status_hint(), Some(431));
    assert_eq!(Error::BadMagic.status_hint(), None);
    assert_eq!(
        Error::UnknownPacketType(3).to_string(),
        "unknown packet type 3"
    );
}

#[test]
fn max_packet_is_configurable_and_clamped() {
    let config = Config {
        max_packet: 10,
        ..Config::default()
    };
    // Clamped up to MIN_PACKET: a 1020-byte payload is fine, 1021 is not.
    let ok = run(&config, &[0x12, 0x34, 0x03, 0xFC], 0);
    assert_eq!(ok.error, None);
    let bad = run(&config, &[0x12, 0x34, 0x03, 0xFD], 0);
    assert_eq!(bad.error, Some(Error::PacketTooLarge));
}

// ---- response encoders ----

#[test]
fn send_headers_exact_bytes() {
    let mut conn = Connection::new(Config::default());
    let head = ResponseHead::new(404, "Custom")
        .header("content-type", "text/plain")
        .header("X-A", "1")
        .header("Set-Cookie", "a=b");
    let mut out = BytesMut::new();
    conn.send_headers(&head, &mut out).unwrap();
    let mut p = vec![4, 0x01, 0x94];
    p.extend(s("Custom"));
    p.extend([0, 3, 0xA0, 0x01]);
    p.extend(s("text/plain"));
    p.extend(s("X-A"));
    p.extend(s("1"));
    p.extend([0xA0, 0x07]);
    p.extend(s("a=b"));
    let mut expect = vec![b'A', b'B'];
    expect.extend((p.len() as u16).to_be_bytes());
    expect.extend(p);
    assert_eq!(&out[..], &expect[..]);
    assert_eq!(
        decode_container_packet(&mut out),
        Some(ContainerPacket::SendHeaders {
            status: 404,
            reason: b("Custom"),
            headers: vec![
                (b("Content-Type"), b("text/plain")),
                (b("X-A"), b("1")),
                (b("Set-Cookie"), b("a=b")),
            ],
        })
    );
    assert!(out.is_empty());
}

#[test]
fn every_response_header_is_coded() {
    for (i, name) in [
        "CONTENT-TYPE",
        "content-language",
        "Content-Length",
        "date",
        "last-modified",
        "location",
        "set-cookie",
        "set-cookie2",
        "servlet-engine",
        "status",
        "www-authenticate",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(
            headers::response_header_code(name.as_bytes()),
            Some(0xA001 + i as u16)
        );
    }
}

#[test]
fn send_headers_too_large() {
    let mut conn = Connection::new(Config::default());
    let head = ResponseHead::new(200, "OK").header("X-Big", vec![b'x'; 8192]);
    let mut out = BytesMut::new();
    assert_eq!(
        conn.send_headers(&head, &mut out),
        Err(Error::ResponseHeadTooLarge)
    );
    assert!(out.is_empty());
    // Exactly max_packet fits: 4 + 1 + 2 + (2+2+1) + 2 + (2+1+1) + (2+n+1) = 8192.
    let n = 8192 - 21;
    let head = ResponseHead::new(200, "OK").header("X", vec![b'x'; n]);
    assert_eq!(conn.send_headers(&head, &mut out), Ok(()));
    assert_eq!(out.len(), 8192);
    let head = ResponseHead::new(200, "OK").header("X", vec![b'x'; n + 1]);
    assert_eq!(
        conn.send_headers(&head, &mut out),
        Err(Error::ResponseHeadTooLarge)
    );
}

#[test]
fn send_body_splits_at_max_packet_minus_8() {
    let mut conn = Connection::new(Config::default());
    let data: Vec<u8> = (0..20000u32).map(|i| i as u8).collect();
    let mut out = BytesMut::new();
    conn.send_body(&data, &mut out);
    conn.send_body(b"", &mut out);
    assert_eq!(out.len(), 20000 + 3 * 8);
    assert_eq!(&out[..7], &[b'A', b'B', 0x1F, 0xFC, 3, 0x1F, 0xF8]);
    assert_eq!(out[8191], 0);
    let mut got = Vec::new();
    let mut sizes = Vec::new();
    while let Some(ContainerPacket::SendBodyChunk(c)) = decode_container_packet(&mut out) {
        sizes.push(c.len());
        got.extend_from_slice(&c);
    }
    assert_eq!(sizes, [8184, 8184, 3632]);
    assert_eq!(got, data);
    let mut out = BytesMut::new();
    conn.send_body(b"hi", &mut out);
    assert_eq!(&out[..], b"AB\x00\x06\x03\x00\x02hi\x00");
}

#[test]
fn end_response_bytes() {
    let mut conn = Connection::new(Config::default());
    let mut out = BytesMut::new();
    conn.end_response(true, &mut out);
    conn.end_response(false, &mut out);
    assert_eq!(&out[..], b"AB\x00\x02\x05\x01AB\x00\x02\x05\x00");
    assert_eq!(
        decode_container_packet(&mut out),
        Some(ContainerPacket::EndResponse { reuse: true })
    );
    assert_eq!(
        decode_container_packet(&mut out),
        Some(ContainerPacket::EndResponse { reuse: false })
    );
    let mut c = BytesMut::from(&CPONG[..]);
    assert_eq!(
        decode_container_packet(&mut c),
        Some(ContainerPacket::CPong)
    );
    let mut g = BytesMut::from(&get_body_chunk(77)[..]);
    assert_eq!(
        decode_container_packet(&mut g),
        Some(ContainerPacket::GetBodyChunk(77))
    );
    let mut partial = BytesMut::from(&b"AB\x00\x02\x05"[..]);
    assert_eq!(decode_container_packet(&mut partial), None);
    assert_eq!(partial.len(), 5);
}

// ---- swallowing in-flight chunks ----

#[test]
fn unsolicited_chunk_swallowed_after_end_response() {
    let req = request_with("POST", &[("Content-Length", "20000")]);
    let mut conn = Connection::new(Config::default());
    let mut out = BytesMut::new();
    let mut buf = BytesMut::from(&fr(&req)[..]);
    assert!(matches!(conn.decode(&mut buf), Ok(Some(Event::Request(_)))));
    // The application answers without reading the body.
    conn.end_response(true, &mut out);
    // The first chunk was already on its way; it looks like type 0x1F (DLEN high byte).
    buf.extend(body(&[0xAB; 8186], false));
    buf.extend(CPING);
    buf.extend(fr(&request_with("GET", &[])));
    assert_eq!(
        conn.decode(&mut buf)
            .map(|e| e.map(|e| matches!(e, Event::Request(_)))),
        Ok(Some(true))
    );
    conn.take_output(&mut out);
    assert_eq!(&out[out.len() - 5..], &CPONG);
}

#[test]
fn requested_chunk_swallowed_after_end_response() {
    for lighttpd in [false, true] {
        let config = Config {
            lighttpd_body_compat: lighttpd,
            ..Config::default()
        };
        let req = request_with("POST", &[("Content-Length", "20000")]);
        let mut input = fr(&req);
        input.extend(body(&[1; 100], lighttpd));
        let mut conn = Connection::new(config);
        let mut out = BytesMut::new();
        let mut buf = BytesMut::from(&input[..]);
        assert!(matches!(conn.decode(&mut buf), Ok(Some(Event::Request(_)))));
        assert!(matches!(conn.decode(&mut buf), Ok(Some(Event::Body(_)))));
        assert!(conn.request_body_chunk(&mut out));
        conn.end_response(false, &mut out);
        assert!(!conn.request_body_chunk(&mut out), "idle: no request");
        // The requested chunk arrives byte by byte, then a shutdown.
        let late = [body(&[2; 300], lighttpd), vec![0x12, 0x34, 0, 1, 7]].concat();
        let mut events = Vec::new();
        for &byte in &late {
            buf.put_u8(byte);
            while let Some(e) = conn.decode(&mut buf).unwrap() {
                events.push(e);
            }
        }
        assert_eq!(events, vec![Event::Shutdown]);
    }
}

// ---- web-server-side encoders ----

#[test]
fn server_side_encoders() {
    let mut out = BytesMut::new();
    encode::cping(&mut out);
    encode::shutdown(&mut out);
    encode::body_chunk(b"abc", false, &mut out).unwrap();
    encode::body_chunk(b"abc", true, &mut out).unwrap();
    encode::body_chunk(b"", false, &mut out).unwrap();
    assert_eq!(
        &out[..],
        b"\x12\x34\x00\x01\x0a\x12\x34\x00\x01\x07\x12\x34\x00\x05\x00\x03abc\x12\x34\x00\x03abc\x12\x34\x00\x00"
    );
    assert_eq!(
        encode::body_chunk(&vec![0; 65534], false, &mut out),
        Err(Error::PacketTooLarge)
    );
    // The hand-built Apache request and the encoder agree once remote_host is not null.
    let o = check(&Config::default(), &pkt(&apache_get_payload()));
    let mut r = request_of(&o.events[0]).clone();
    r.remote_host = b("client.example");
    let encoded = fr(&r);
    let o2 = check(&Config::default(), &encoded);
    assert_eq!(request_of(&o2.events[0]), &r);
}

#[test]
fn header_names_with_an_underscore_are_left_out() {
    // Apache's `RequestHeader unset X-Remote-User` does not touch `X_Remote_User`; were it
    // mapped like a dash, the client's value would arrive as HTTP_X_REMOTE_USER.
    let r = request_with(
        "GET",
        &[("X_Remote_User", "admin"), ("X-Forwarded-For", "10.0.0.1")],
    );
    assert_eq!(r.underscore_headers(), 1);
    let p = params(&r.to_params());
    assert!(!p.iter().any(|(n, _)| n == "HTTP_X_REMOTE_USER"), "{p:?}");
    assert!(p
        .iter()
        .any(|(n, v)| n == "HTTP_X_FORWARDED_FOR" && v == "10.0.0.1"));
}

#[test]
fn request_attributes_count_against_max_headers() {
    // apache_get_payload: 4 headers and 2 attributes; a limit of 5 admits the headers only.
    let config = Config {
        max_headers: 5,
        ..Config::default()
    };
    let o = check(&config, &pkt(&apache_get_payload()));
    assert_eq!(o.error, Some(Error::TooManyHeaders));
    let config = Config {
        max_headers: 6,
        ..Config::default()
    };
    assert_eq!(check(&config, &pkt(&apache_get_payload())).error, None);
}
