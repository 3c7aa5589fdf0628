//! Table tests: every case runs whole, one byte at a time, and with trailing bytes.

use super::*;
use bytes::BytesMut;

const TRAILING: &[u8] = b"\x00trailing junk,";

/// Feeds `input` in pieces of `step` bytes (0 = whole) and collects events (consecutive
/// `Body` events merged, since their split depends on the feeding), the error if any, and
/// the bytes left in the buffer.
fn run(config: &Config, input: &[u8], step: usize) -> (Vec<Event>, Option<Error>, Vec<u8>) {
    let mut conn = Connection::new(config.clone());
    let mut buf = BytesMut::new();
    let mut events: Vec<Event> = Vec::new();
    let chunks: Vec<&[u8]> = if step == 0 {
        vec![input]
    } else {
        input.chunks(step).collect()
    };
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match conn.decode(&mut buf) {
                Ok(Some(Event::Body(b))) => {
                    assert!(!b.is_empty(), "empty Body event");
                    if let Some(Event::Body(prev)) = events.last_mut() {
                        let mut m = BytesMut::from(&prev[..]);
                        m.extend_from_slice(&b);
                        *prev = m.freeze();
                    } else {
                        events.push(Event::Body(b));
                    }
                }
                Ok(Some(e)) => events.push(e),
                Ok(None) => break,
                Err(e) => {
                    // Sticky: the same error again.
                    assert_eq!(conn.decode(&mut buf), Err(e));
                    return (events, Some(e), buf.to_vec());
                }
            }
        }
    }
    (events, None, buf.to_vec())
}

/// Runs the three ways and checks they agree; returns the whole-buffer result.
fn check(config: &Config, input: &[u8]) -> (Vec<Event>, Option<Error>, Vec<u8>) {
    let whole = run(config, input, 0);
    let bytewise = run(config, input, 1);
    assert_eq!(whole.0, bytewise.0, "events differ byte by byte");
    assert_eq!(whole.1, bytewise.1, "error differs byte by byte");
    let mut with_trailing = input.to_vec();
    with_trailing.extend_from_slice(TRAILING);
    let t = run(config, &with_trailing, 0);
    let tb = run(config, &with_trailing, 1);
    assert_eq!(t.0, tb.0);
    assert_eq!(t.1, tb.1);
    if whole.1.is_some() {
        // Bytes after the point of error never change the error.
        assert_eq!(t.1, whole.1, "trailing bytes changed the error");
        assert_eq!(t.0, whole.0);
    } else if whole.0.last() == Some(&Event::BodyEnd) {
        assert_eq!(t.0, whole.0, "trailing bytes changed the events");
        assert_eq!(
            t.2,
            [&whole.2[..], TRAILING].concat(),
            "trailing bytes not left"
        );
    }
    whole
}

fn req(pairs: &[(&str, &str)]) -> Vec<u8> {
    let p: Vec<(&[u8], &[u8])> = pairs
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect();
    let mut out = BytesMut::new();
    encode::request(&p, &mut out);
    out.to_vec()
}

fn params_of(e: &Event) -> Vec<(String, String)> {
    match e {
        Event::Request { params, .. } => params
            .iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect(),
        other => panic!("not a request: {other:?}"),
    }
}

fn content_length_of(e: &Event) -> u64 {
    match e {
        Event::Request { content_length, .. } => *content_length,
        other => panic!("not a request: {other:?}"),
    }
}

/// Error-case table: name, input bytes, exact error.
macro_rules! scgi_err {
    ($($name:ident: $input:expr => $err:expr;)*) => {$(
        #[test]
        fn $name() {
            let input: Vec<u8> = $input;
            let (events, err, _) = check(&Config::default(), &input);
            assert_eq!(err, Some($err));
            assert!(events.is_empty(), "{events:?}");
        }
    )*};
}

#[test]
fn nginx_get() {
    let input = req(&[
        ("CONTENT_LENGTH", "0"),
        ("SCGI", "1"),
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", "/prefix/some/path?x=1"),
        ("HTTP_X_DUP", "a"),
        ("HTTP_X_DUP", "b"),
        ("EMPTY", ""),
    ]);
    let (events, err, rest) = check(&Config::default(), &input);
    assert_eq!(err, None);
    assert!(rest.is_empty());
    assert_eq!(events.len(), 2);
    assert_eq!(events[1], Event::BodyEnd);
    assert_eq!(content_length_of(&events[0]), 0);
    let p = params_of(&events[0]);
    assert_eq!(p.len(), 7);
    assert_eq!(p[0], ("CONTENT_LENGTH".into(), "0".into()));
    assert_eq!(p[4], ("HTTP_X_DUP".into(), "a".into()));
    assert_eq!(p[5], ("HTTP_X_DUP".into(), "b".into()));
    assert_eq!(p[6], ("EMPTY".into(), "".into()));
}

#[test]
fn spec_example_post() {
    // The example of the SCGI specification, byte for byte.
    let mut input = b"70:CONTENT_LENGTH\x0027\x00SCGI\x001\x00REQUEST_METHOD\x00POST\x00REQUEST_URI\x00/deepthought\x00,".to_vec();
    input.extend_from_slice(b"What is the answer to life?");
    let (events, err, rest) = check(&Config::default(), &input);
    assert_eq!(err, None);
    assert!(rest.is_empty());
    assert_eq!(content_length_of(&events[0]), 27);
    assert_eq!(
        events[1],
        Event::Body(Bytes::from_static(b"What is the answer to life?"))
    );
    assert_eq!(events[2], Event::BodyEnd);
    assert_eq!(events.len(), 3);
}

#[test]
fn body_split_across_reads() {
    let mut input = req(&[("CONTENT_LENGTH", "10"), ("SCGI", "1")]);
    let head_len = input.len();
    input.extend_from_slice(b"0123456789");
    let mut conn = Connection::new(Config::default());
    let mut buf = BytesMut::from(&input[..head_len + 3]);
    assert!(matches!(
        conn.decode(&mut buf),
        Ok(Some(Event::Request { .. }))
    ));
    assert_eq!(
        conn.decode(&mut buf),
        Ok(Some(Event::Body(Bytes::from_static(b"012"))))
    );
    assert_eq!(conn.decode(&mut buf), Ok(None));
    buf.extend_from_slice(&input[head_len + 3..]);
    buf.extend_from_slice(b"extra");
    assert_eq!(
        conn.decode(&mut buf),
        Ok(Some(Event::Body(Bytes::from_static(b"3456789"))))
    );
    assert!(!conn.is_done());
    assert_eq!(conn.decode(&mut buf), Ok(Some(Event::BodyEnd)));
    assert!(conn.is_done());
    assert_eq!(conn.decode(&mut buf), Ok(None));
    assert_eq!(&buf[..], b"extra");
}

#[test]
fn incomplete_input_is_need_more() {
    let input = req(&[("CONTENT_LENGTH", "3"), ("SCGI", "1")]);
    for cut in 0..input.len() {
        let (events, err, _) = run(&Config::default(), &input[..cut], 0);
        assert_eq!((events, err), (vec![], None), "cut at {cut}");
    }
}

#[test]
fn max_digits_and_limit_accepted() {
    // A 7-digit length within a raised limit is fine.
    let config = Config {
        max_header_bytes: 2_000_000,
        ..Config::default()
    };
    let big = "v".repeat(1_000_000);
    let input = req(&[("CONTENT_LENGTH", "0"), ("SCGI", "1"), ("BIG", &big)]);
    assert_eq!(&input[..8], b"1000029:");
    let (events, err, _) = run(&config, &input, 0);
    assert_eq!(err, None);
    assert_eq!(events.len(), 2);
}

#[test]
fn response_head_is_cgi() {
    let mut out = BytesMut::new();
    write_head(
        &crate::ResponseHead::new(200, "OK").header("Content-Type", "text/html"),
        &mut out,
    );
    assert_eq!(
        &out[..],
        b"Status: 200 OK\r\nContent-Type: text/html\r\n\r\n"
    );
}

#[test]
fn error_statuses() {
    assert_eq!(Error::HeadersTooLarge.status_hint(), Some(431));
    assert_eq!(Error::TooManyHeaders.status_hint(), Some(431));
    assert_eq!(Error::MissingComma.status_hint(), Some(400));
    assert_eq!(
        Error::ContentLengthNotFirst.to_string(),
        "first header is not CONTENT_LENGTH"
    );
}

#[test]
fn too_many_pairs() {
    let config = Config {
        max_header_pairs: 3,
        ..Config::default()
    };
    let ok = req(&[("CONTENT_LENGTH", "0"), ("SCGI", "1"), ("A", "b")]);
    assert_eq!(check(&config, &ok).1, None);
    let bad = req(&[
        ("CONTENT_LENGTH", "0"),
        ("SCGI", "1"),
        ("A", "b"),
        ("C", "d"),
    ]);
    assert_eq!(check(&config, &bad).1, Some(Error::TooManyHeaders));
}

#[test]
fn length_over_configured_limit() {
    let config = Config {
        max_header_bytes: 20,
        ..Config::default()
    };
    // Rejected as soon as the colon arrives, before any of the block is buffered.
    assert_eq!(run(&config, b"21:", 0).1, Some(Error::HeadersTooLarge));
    assert_eq!(run(&config, b"20:", 0).1, None);
}

scgi_err! {
    too_many_digits: b"12345678".to_vec() => Error::NetstringLengthTooLong;
    too_many_digits_then_colon: b"00000001:".to_vec() => Error::BadNetstringLength;
    eight_digits_with_colon: b"10000000:x".to_vec() => Error::NetstringLengthTooLong;
    non_digit_in_length: b"1a:".to_vec() => Error::BadNetstringLength;
    sign_in_length: b"+5:".to_vec() => Error::BadNetstringLength;
    missing_colon: b"24,CONTENT_LENGTH".to_vec() => Error::BadNetstringLength;
    empty_length: b":CONTENT_LENGTH\x000\x00,".to_vec() => Error::BadNetstringLength;
    leading_zero: b"024:".to_vec() => Error::BadNetstringLength;
    length_over_default_limit: b"262145:".to_vec() => Error::HeadersTooLarge;
    missing_comma: {
        let mut v = req(&[("CONTENT_LENGTH", "0"), ("SCGI", "1")]);
        *v.last_mut().unwrap() = b';';
        v
    } => Error::MissingComma;
    empty_netstring: b"0:,".to_vec() => Error::ContentLengthNotFirst;
    odd_fields: b"26:CONTENT_LENGTH\x000\x00SCGI\x001\x00X\x00,".to_vec() => Error::OddHeaderFields;
    block_not_nul_terminated: b"23:CONTENT_LENGTH\x000\x00SCGI\x001,".to_vec() => Error::OddHeaderFields;
    empty_name: b"26:CONTENT_LENGTH\x000\x00SCGI\x001\x00\x00\x00,".to_vec() => Error::EmptyHeaderName;
    content_length_not_first: req(&[("SCGI", "1"), ("CONTENT_LENGTH", "0")]) => Error::ContentLengthNotFirst;
    missing_scgi: req(&[("CONTENT_LENGTH", "0"), ("REQUEST_METHOD", "GET")]) => Error::MissingScgiHeader;
    scgi_not_one: req(&[("CONTENT_LENGTH", "0"), ("SCGI", "2")]) => Error::BadScgiVersion;
    content_length_empty: req(&[("CONTENT_LENGTH", ""), ("SCGI", "1")]) => Error::BadContentLength;
    content_length_signed: req(&[("CONTENT_LENGTH", "+5"), ("SCGI", "1")]) => Error::BadContentLength;
    content_length_negative: req(&[("CONTENT_LENGTH", "-1"), ("SCGI", "1")]) => Error::BadContentLength;
    content_length_space: req(&[("CONTENT_LENGTH", " 5"), ("SCGI", "1")]) => Error::BadContentLength;
    content_length_20_digits: req(&[("CONTENT_LENGTH", "10000000000000000000"), ("SCGI", "1")]) => Error::BadContentLength;
}

#[test]
fn content_length_19_digits_accepted() {
    let input = req(&[("CONTENT_LENGTH", "9999999999999999999"), ("SCGI", "1")]);
    let (events, err, _) = check(&Config::default(), &input);
    assert_eq!(err, None);
    assert_eq!(content_length_of(&events[0]), 9_999_999_999_999_999_999);
}
