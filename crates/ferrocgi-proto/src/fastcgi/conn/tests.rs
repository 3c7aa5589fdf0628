//! Table tests of the state machine against byte vectors built from the spec.
//!
//! Every `fcgi!` case runs three ways (whole buffer, one byte at a time, and followed by the
//! first bytes of another record) and all three must give the same events, error and queued
//! output as the case states.

use super::*;
use crate::fastcgi::encode::*;

/// An event with its params copied out, comparable with hand-written expectations.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Request(u16, bool, Vec<(Vec<u8>, Vec<u8>)>),
    Stdin(u16, Vec<u8>),
    StdinEnd(u16),
    Abort(u16),
}

fn norm(e: &Event) -> Ev {
    match e {
        Event::Request {
            id,
            keep_conn,
            params,
        } => Ev::Request(
            *id,
            *keep_conn,
            params
                .iter()
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect(),
        ),
        Event::Stdin { id, data } => Ev::Stdin(*id, data.to_vec()),
        Event::StdinEnd { id } => Ev::StdinEnd(*id),
        Event::Abort { id } => Ev::Abort(*id),
    }
}

fn req(id: u16, keep_conn: bool, pairs: &[(&str, &str)]) -> Ev {
    Ev::Request(
        id,
        keep_conn,
        pairs
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect(),
    )
}

/// The Stdin events a body cut into `chunk`-byte records gives.
fn stdin_evs(id: u16, data: &[u8], chunk: usize) -> Vec<Ev> {
    data.chunks(chunk)
        .map(|c| Ev::Stdin(id, c.to_vec()))
        .collect()
}

#[derive(Debug, PartialEq)]
struct Run {
    events: Vec<Event>,
    error: Option<Error>,
    output: Vec<u8>,
}

/// Decodes until `Ok(None)` or an error; false once an error was seen.
fn drain(conn: &mut Connection, buf: &mut BytesMut, run: &mut Run) -> bool {
    loop {
        match conn.decode(buf) {
            Ok(Some(e)) => run.events.push(e),
            Ok(None) => return true,
            Err(e) => {
                run.error = Some(e);
                return false;
            }
        }
    }
}

fn finish(mut conn: Connection, mut run: Run) -> Run {
    let mut out = BytesMut::new();
    conn.take_output(&mut out);
    run.output = out.to_vec();
    run
}

fn new_run() -> Run {
    Run {
        events: vec![],
        error: None,
        output: vec![],
    }
}

fn run_whole(config: &Config, input: &[u8]) -> Run {
    let mut conn = Connection::new(config.clone());
    let mut run = new_run();
    let mut buf = BytesMut::from(input);
    if drain(&mut conn, &mut buf, &mut run) {
        assert!(buf.len() < 8 || conn.decode(&mut buf) == Ok(None));
    }
    finish(conn, run)
}

fn run_bytewise(config: &Config, input: &[u8]) -> Run {
    let mut conn = Connection::new(config.clone());
    let mut run = new_run();
    let mut buf = BytesMut::new();
    for b in input {
        buf.extend_from_slice(&[*b]);
        if !drain(&mut conn, &mut buf, &mut run) {
            break;
        }
    }
    finish(conn, run)
}

/// The first 11 bytes of a following `FCGI_BEGIN_REQUEST`.
const TRAILING: &[u8] = &[1, 1, 0, 9, 0, 8, 0, 0, 0, 1, 1];

fn run_trailing(config: &Config, input: &[u8]) -> Run {
    let mut conn = Connection::new(config.clone());
    let mut run = new_run();
    let mut buf = BytesMut::from(input);
    buf.extend_from_slice(TRAILING);
    if drain(&mut conn, &mut buf, &mut run) {
        assert_eq!(
            &buf[..],
            TRAILING,
            "a partial record must stay in the buffer"
        );
    }
    finish(conn, run)
}

/// Runs `input` three ways and checks them against the expectations and each other.
fn check(config: Config, input: &[u8], events: Vec<Ev>, error: Option<Error>, output: &[u8]) {
    let whole = run_whole(&config, input);
    let got: Vec<Ev> = whole.events.iter().map(norm).collect();
    assert_eq!(got, events, "events (whole buffer)");
    assert_eq!(whole.error, error, "error (whole buffer)");
    assert_eq!(whole.output, output, "queued output (whole buffer)");
    assert_eq!(run_bytewise(&config, input), whole, "byte at a time");
    assert_eq!(run_trailing(&config, input), whole, "with trailing bytes");
}

macro_rules! fcgi {
    (
        $(#[$meta:meta])*
        $name:ident,
        config: $config:expr,
        input: |$b:ident| $input:block,
        events: $events:expr,
        error: $error:expr,
        output: |$o:ident| $output:block $(,)?
    ) => {
        $(#[$meta])*
        #[test]
        fn $name() {
            let mut $b = BytesMut::new();
            $input;
            #[allow(unused_mut)]
            let mut $o = BytesMut::new();
            $output;
            check($config, &$b, $events, $error, &$o);
        }
    };
}

fn mpx() -> Config {
    Config {
        multiplex: true,
        ..Config::default()
    }
}

/// Something like the ~600 bytes of params nginx sends with Debian's fastcgi_params.
fn nginx_params() -> Vec<(&'static str, &'static str)> {
    vec![
        ("QUERY_STRING", "x=1"),
        ("REQUEST_METHOD", "POST"),
        ("CONTENT_TYPE", "application/octet-stream"),
        ("CONTENT_LENGTH", "100000"),
        ("SCRIPT_NAME", "/prefix"),
        ("REQUEST_URI", "/prefix/some/path?x=1"),
        ("DOCUMENT_URI", "/prefix/some/path"),
        ("DOCUMENT_ROOT", "/tmp/run/html"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", "nginx/1.22.1"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "51234"),
        ("REMOTE_USER", ""),
        ("SERVER_ADDR", "127.0.0.1"),
        ("SERVER_PORT", "18080"),
        ("SERVER_NAME", "localhost"),
        ("REDIRECT_STATUS", "200"),
        ("PATH_INFO", "/some/path"),
        ("HTTP_HOST", "127.0.0.1"),
        ("HTTP_USER_AGENT", "curl/7.88.1"),
        ("HTTP_X_DUP", "a"),
        ("HTTP_X_DUP", "b"),
    ]
}

fn as_bytes<'a>(pairs: &'a [(&'a str, &'a str)]) -> Vec<(&'a [u8], &'a [u8])> {
    pairs
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect()
}

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

fn pairs_block(pairs: &[(&[u8], &[u8])]) -> BytesMut {
    let mut block = BytesMut::new();
    for (n, v) in pairs {
        crate::fastcgi::params::encode_pair(n, v, &mut block);
    }
    block
}

// ---------------------------------------------------------------------------------------------
// What real web servers send (docs/protocols.md)

fcgi! {
    /// nginx: KEEP_CONN, params in one record padded to 8, 32768-byte padded STDIN records.
    nginx_like_request,
    config: Config::default(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        params(1, &as_bytes(&nginx_params()), &mut b);
        stream_chunked(FCGI_STDIN, 1, &body(100_000), 32768, true, &mut b);
        stdin_end(1, &mut b);
    },
    events: {
        let mut v = vec![req(1, true, &nginx_params())];
        v.extend(stdin_evs(1, &body(100_000), 32768));
        v.push(Ev::StdinEnd(1));
        v
    },
    error: None,
    output: |o| {},
}

fcgi! {
    /// Apache mod_proxy_fcgi: no KEEP_CONN, no padding anywhere, 8192-byte STDIN records.
    apache_like_request,
    config: Config::default(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, false, &mut b);
        let block = pairs_block(&[(b"SCRIPT_NAME", b"/prefix/some/path"), (b"PATH", b"/usr/bin")]);
        record_with_padding(FCGI_PARAMS, 1, &block, 0, &mut b);
        record_with_padding(FCGI_PARAMS, 1, &[], 0, &mut b);
        stream_chunked(FCGI_STDIN, 1, &body(20_000), 8192, false, &mut b);
        stdin_end(1, &mut b);
    },
    events: {
        let mut v = vec![req(1, false, &[("SCRIPT_NAME", "/prefix/some/path"), ("PATH", "/usr/bin")])];
        v.extend(stdin_evs(1, &body(20_000), 8192));
        v.push(Ev::StdinEnd(1));
        v
    },
    error: None,
    output: |o| {},
}

fcgi! {
    /// mod_fcgid sends 8000-byte records, lighttpd 65535-byte ones; both unpadded.
    fcgid_and_lighttpd_record_sizes,
    config: Config::default(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, false, &mut b);
        params(1, &[(b"CONTENT_LENGTH", b"140000")], &mut b);
        stream_chunked(FCGI_STDIN, 1, &body(20_000), 8000, false, &mut b);
        stream_chunked(FCGI_STDIN, 1, &body(120_000), 65535, false, &mut b);
        stdin_end(1, &mut b);
    },
    events: {
        let mut v = vec![req(1, false, &[("CONTENT_LENGTH", "140000")])];
        v.extend(stdin_evs(1, &body(20_000), 8000));
        v.extend(stdin_evs(1, &body(120_000), 65535));
        v.push(Ev::StdinEnd(1));
        v
    },
    error: None,
    output: |o| {},
}

fcgi! {
    /// A GET: params then the empty STDIN straight away.
    get_without_body,
    config: Config::default(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        params(1, &[(b"REQUEST_METHOD", b"GET")], &mut b);
        stdin_end(1, &mut b);
    },
    events: vec![req(1, true, &[("REQUEST_METHOD", "GET")]), Ev::StdinEnd(1)],
    error: None,
    output: |o| {},
}

fcgi! {
    /// An empty PARAMS stream is legal: a request with no params.
    empty_params_stream,
    config: Config::default(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        params(1, &[], &mut b);
    },
    events: vec![req(1, true, &[])],
    error: None,
    output: |o| {},
}

// ---------------------------------------------------------------------------------------------
// Name-value pairs

fcgi! {
    /// flup breaks on this; the spec allows it (a stream is a byte stream).
    pair_split_across_two_params_records,
    config: Config::default(),
    input: |b| {
        let long = [b'v'; 300];
        let block = pairs_block(&[(b"A", b"1"), (b"LONG", &long), (b"B", b"2")]);
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        // Cut inside LONG's 4-byte value length (block[4] is its name length).
        record(FCGI_PARAMS, 1, &block[..7], &mut b);
        record_with_padding(FCGI_PARAMS, 1, &block[7..100], 3, &mut b);
        record(FCGI_PARAMS, 1, &block[100..], &mut b);
        record(FCGI_PARAMS, 1, &[], &mut b);
    },
    events: vec![req(1, true, &[("A", "1"), ("LONG", &"v".repeat(300)), ("B", "2")])],
    error: None,
    output: |o| {},
}

fcgi! {
    /// 127 is the last 1-byte length, 128 the first 4-byte one; a 70000-byte value makes the
    /// encoder split the stream across two records.
    one_and_four_byte_lengths,
    config: Config::default(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        params(1, &[(&[b'n'; 127], &[b'v'; 128]), (b"BIG", &[b'x'; 70000])], &mut b);
    },
    events: vec![req(1, true, &[(&"n".repeat(127), &"v".repeat(128)), ("BIG", &"x".repeat(70000))])],
    error: None,
    output: |o| {},
}

fcgi! {
    /// Hand-written bytes: a 4-byte name length whose value has the high bit set only as the
    /// marker (0x80000003 = 3).
    four_byte_length_marker,
    config: Config::default(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        b.extend_from_slice(&[1, 4, 0, 1, 0, 9, 7, 0]);
        b.extend_from_slice(&[0x80, 0, 0, 3, 1, b'A', b'B', b'C', b'z', 0, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&[1, 4, 0, 1, 0, 0, 0, 0]);
    },
    events: vec![req(1, true, &[("ABC", "z")])],
    error: None,
    output: |o| {},
}

fcgi! {
    malformed_params_length_past_end,
    config: Config::default(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        record(FCGI_PARAMS, 1, &[1, 5, b'A', b'x'], &mut b);
        record(FCGI_PARAMS, 1, &[], &mut b);
    },
    events: vec![],
    error: Some(Error::MalformedParams(1)),
    output: |o| {},
}

fcgi! {
    /// 0xffffffff: 2^31 - 1 after removing the marker; must not overflow anything.
    malformed_params_huge_four_byte_length,
    config: Config::default(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        record(FCGI_PARAMS, 1, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], &mut b);
        record(FCGI_PARAMS, 1, &[], &mut b);
    },
    events: vec![],
    error: Some(Error::MalformedParams(1)),
    output: |o| {},
}

fcgi! {
    /// Exactly at the limit is fine.
    params_bytes_at_limit,
    config: Config { max_params_bytes: 16, ..Config::default() },
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        params(1, &[(b"NAME", b"0123456789")], &mut b); // 2 + 4 + 10 = 16 bytes
    },
    events: vec![req(1, true, &[("NAME", "0123456789")])],
    error: None,
    output: |o| {},
}

fcgi! {
    params_bytes_over_limit,
    config: Config { max_params_bytes: 16, ..Config::default() },
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        let block = pairs_block(&[(b"NAME", b"0123456789X")]); // 17 bytes
        record(FCGI_PARAMS, 1, &block[..10], &mut b);
        record(FCGI_PARAMS, 1, &block[10..], &mut b);
        record(FCGI_PARAMS, 1, &[], &mut b);
    },
    events: vec![],
    error: Some(Error::ParamsTooLarge { id: 1, limit: 16 }),
    output: |o| {},
}

fcgi! {
    /// With multiplexing the limit is per connection: two half-full requests fill it.
    params_bytes_limit_is_per_connection,
    config: Config { max_params_bytes: 20, ..mpx() },
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        begin_request(2, FCGI_RESPONDER, true, &mut b);
        record(FCGI_PARAMS, 1, &[1, 8, b'A', b'0', b'1', b'2', b'3', b'4', b'5', b'6', b'7'], &mut b);
        record(FCGI_PARAMS, 2, &[1, 8, b'B', b'0', b'1', b'2', b'3', b'4', b'5', b'6', b'7'], &mut b);
    },
    events: vec![],
    error: Some(Error::ParamsTooLarge { id: 2, limit: 20 }),
    output: |o| {},
}

fcgi! {
    too_many_params,
    config: Config { max_params_pairs: 2, ..Config::default() },
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        params(1, &[(b"A", b""), (b"B", b""), (b"C", b"")], &mut b);
    },
    events: vec![],
    error: Some(Error::TooManyParams { id: 1, limit: 2 }),
    output: |o| {},
}

// ---------------------------------------------------------------------------------------------
// Management records

fcgi! {
    /// Unknown names are left out; each known one is answered once, in the order asked.
    get_values_with_unknown_names,
    config: Config { max_conns: 50, max_reqs: 7, ..mpx() },
    input: |b| {
        get_values(
            &[b"FCGI_MPXS_CONNS", b"FCGI_NOPE", b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MAX_CONNS"],
            &mut b,
        );
    },
    events: vec![],
    error: None,
    output: |o| {
        get_values_result(
            &[(b"FCGI_MPXS_CONNS", b"1"), (b"FCGI_MAX_CONNS", b"50"), (b"FCGI_MAX_REQS", b"7")],
            &mut o,
        );
    },
}

fcgi! {
    /// Exact bytes, independent of the encoder.
    get_values_result_bytes,
    config: Config::default(),
    input: |b| {
        b.extend_from_slice(&[1, 9, 0, 0, 0, 17, 0, 0, 15, 0]);
        b.extend_from_slice(b"FCGI_MPXS_CONNS");
    },
    events: vec![],
    error: None,
    output: |o| {
        o.extend_from_slice(&[1, 10, 0, 0, 0, 18, 6, 0, 15, 1]);
        o.extend_from_slice(b"FCGI_MPXS_CONNS0");
        o.extend_from_slice(&[0; 6]);
    },
}

fcgi! {
    get_values_only_unknown_names_gives_empty_result,
    config: Config::default(),
    input: |b| { get_values(&[b"X"], &mut b); },
    events: vec![],
    error: None,
    output: |o| { o.extend_from_slice(&[1, 10, 0, 0, 0, 0, 0, 0]); },
}

fcgi! {
    get_values_malformed,
    config: Config::default(),
    input: |b| { record(FCGI_GET_VALUES, 0, &[20, 0, b'F'], &mut b); },
    events: vec![],
    error: Some(Error::ManagementRecordBadLength { record_type: FCGI_GET_VALUES }),
    output: |o| {},
}

fcgi! {
    /// Unknown types are answered whatever their id; known non-GET_VALUES types with id 0 are
    /// management records we don't understand.
    unknown_record_types,
    config: Config::default(),
    input: |b| {
        record(42, 0, b"whatever", &mut b);
        record(0, 5, &[], &mut b);
        record(255, 1, &[1, 2, 3], &mut b);
        record(FCGI_GET_VALUES_RESULT, 0, &[], &mut b);
        record(FCGI_BEGIN_REQUEST, 0, &[0, 1, 0, 0, 0, 0, 0, 0], &mut b);
    },
    events: vec![],
    error: None,
    output: |o| {
        o.extend_from_slice(&[1, 11, 0, 0, 0, 8, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0]);
        unknown_type(0, &mut o);
        unknown_type(255, &mut o);
        unknown_type(FCGI_GET_VALUES_RESULT, &mut o);
        unknown_type(FCGI_BEGIN_REQUEST, &mut o);
    },
}

// ---------------------------------------------------------------------------------------------
// Roles, multiplexing, abort

fcgi! {
    /// Refused with FCGI_UNKNOWN_ROLE; the refused request's later records are ignored.
    authorizer_and_filter_roles_refused,
    config: Config::default(),
    input: |b| {
        begin_request(1, FCGI_AUTHORIZER, true, &mut b);
        params(1, &[(b"A", b"1")], &mut b);
        stdin_end(1, &mut b);
        begin_request(2, FCGI_FILTER, false, &mut b);
        params(2, &[(b"A", b"1")], &mut b);
        record(FCGI_DATA, 2, b"file", &mut b);
        begin_request(3, 999, true, &mut b);
        begin_request(4, FCGI_RESPONDER, true, &mut b);
        params(4, &[(b"B", b"2")], &mut b);
    },
    events: vec![req(4, true, &[("B", "2")])],
    error: None,
    output: |o| {
        o.extend_from_slice(&[1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0]);
        end_request(2, 0, ProtocolStatus::UnknownRole, &mut o);
        end_request(3, 0, ProtocolStatus::UnknownRole, &mut o);
    },
}

fcgi! {
    cant_mpx_conn_when_multiplex_off,
    config: Config::default(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        begin_request(2, FCGI_RESPONDER, true, &mut b);
        params(2, &[(b"X", b"2")], &mut b);
        params(1, &[(b"X", b"1")], &mut b);
        stdin(2, b"ignored", &mut b);
        stdin(1, b"body", &mut b);
        stdin_end(1, &mut b);
    },
    events: vec![
        req(1, true, &[("X", "1")]),
        Ev::Stdin(1, b"body".to_vec()),
        Ev::StdinEnd(1),
    ],
    error: None,
    output: |o| { end_request(2, 0, ProtocolStatus::CantMpxConn, &mut o); },
}

fcgi! {
    multiplexed_interleaved_ids,
    config: mpx(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        begin_request(2, FCGI_RESPONDER, false, &mut b);
        let b1 = pairs_block(&[(b"ID", b"one"), (b"K", b"v")]);
        record(FCGI_PARAMS, 1, &b1[..3], &mut b);
        params(2, &[(b"ID", b"two")], &mut b);
        stdin(2, b"2a", &mut b);
        record(FCGI_PARAMS, 1, &b1[3..], &mut b);
        record(FCGI_PARAMS, 1, &[], &mut b);
        stdin(1, b"1a", &mut b);
        stdin_end(2, &mut b);
        stdin_end(1, &mut b);
    },
    events: vec![
        req(2, false, &[("ID", "two")]),
        Ev::Stdin(2, b"2a".to_vec()),
        req(1, true, &[("ID", "one"), ("K", "v")]),
        Ev::Stdin(1, b"1a".to_vec()),
        Ev::StdinEnd(2),
        Ev::StdinEnd(1),
    ],
    error: None,
    output: |o| {},
}

fcgi! {
    overloaded_beyond_max_reqs,
    config: Config { max_reqs: 2, ..mpx() },
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        begin_request(2, FCGI_RESPONDER, true, &mut b);
        begin_request(3, FCGI_RESPONDER, true, &mut b);
        params(3, &[], &mut b);
        params(2, &[], &mut b);
    },
    events: vec![req(2, true, &[])],
    error: None,
    output: |o| { end_request(3, 0, ProtocolStatus::Overloaded, &mut o); },
}

fcgi! {
    /// Abort after the request was handed out: one event, repeats ignored; before: the codec
    /// ends the request itself; for an inactive id: ignored.
    abort_request_cases,
    config: mpx(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        params(1, &[], &mut b);
        abort_request(1, &mut b);
        abort_request(1, &mut b);
        begin_request(2, FCGI_RESPONDER, true, &mut b);
        record(FCGI_PARAMS, 2, &[1, 1, b'a', b'b'], &mut b);
        abort_request(2, &mut b);
        record(FCGI_PARAMS, 2, &[], &mut b); // ignored: 2 is no longer active
        abort_request(3, &mut b);
        stdin(1, b"late", &mut b);
    },
    events: vec![req(1, true, &[]), Ev::Abort(1), Ev::Stdin(1, b"late".to_vec())],
    error: None,
    output: |o| { end_request(2, 0, ProtocolStatus::RequestComplete, &mut o); },
}

fcgi! {
    records_for_inactive_ids_ignored,
    config: Config::default(),
    input: |b| {
        params(7, &[(b"A", b"1")], &mut b);
        stdin(7, b"x", &mut b);
        stdin_end(7, &mut b);
        record(FCGI_STDOUT, 7, b"x", &mut b);
        record(FCGI_DATA, 7, b"x", &mut b);
    },
    events: vec![],
    error: None,
    output: |o| {},
}

// ---------------------------------------------------------------------------------------------
// Protocol errors

fcgi! {
    wrong_version,
    config: Config::default(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        params(1, &[], &mut b);
        b.extend_from_slice(&[2, 5, 0, 1, 0, 0, 0, 0]);
        stdin_end(1, &mut b);
    },
    events: vec![req(1, true, &[])],
    error: Some(Error::UnsupportedVersion(2)),
    output: |o| {},
}

fcgi! {
    /// What an HTTP request sent to the FastCGI port looks like.
    http_request_to_fastcgi_port,
    config: Config::default(),
    input: |b| { b.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n"); },
    events: vec![],
    error: Some(Error::UnsupportedVersion(b'G')),
    output: |o| {},
}

fcgi! {
    begin_request_bad_length,
    config: Config::default(),
    input: |b| { record(FCGI_BEGIN_REQUEST, 1, &[0, 1, 1, 0, 0, 0, 0], &mut b); },
    events: vec![],
    error: Some(Error::BeginRequestBadLength { id: 1, len: 7 }),
    output: |o| {},
}

fcgi! {
    duplicate_begin_request,
    config: mpx(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        params(1, &[], &mut b);
        begin_request(1, FCGI_RESPONDER, true, &mut b);
    },
    events: vec![req(1, true, &[])],
    error: Some(Error::DuplicateBeginRequest(1)),
    output: |o| {},
}

fcgi! {
    stdin_before_params,
    config: Config::default(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        record(FCGI_PARAMS, 1, &[1, 1, b'a', b'b'], &mut b);
        stdin(1, b"body", &mut b);
    },
    events: vec![],
    error: Some(Error::StdinBeforeParams(1)),
    output: |o| {},
}

fcgi! {
    stdin_after_end,
    config: Config::default(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        params(1, &[], &mut b);
        stdin_end(1, &mut b);
        stdin(1, b"more", &mut b);
    },
    events: vec![req(1, true, &[]), Ev::StdinEnd(1)],
    error: Some(Error::StdinAfterEnd(1)),
    output: |o| {},
}

fcgi! {
    params_after_end,
    config: Config::default(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        params(1, &[], &mut b);
        record(FCGI_PARAMS, 1, &[], &mut b);
    },
    events: vec![req(1, true, &[])],
    error: Some(Error::ParamsAfterEnd(1)),
    output: |o| {},
}

fcgi! {
    stdout_from_web_server,
    config: Config::default(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        record(FCGI_STDOUT, 1, b"x", &mut b);
    },
    events: vec![],
    error: Some(Error::UnexpectedRecord { record_type: FCGI_STDOUT, id: 1 }),
    output: |o| {},
}

fcgi! {
    data_for_responder,
    config: Config::default(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        params(1, &[], &mut b);
        record(FCGI_DATA, 1, b"x", &mut b);
    },
    events: vec![req(1, true, &[])],
    error: Some(Error::UnexpectedRecord { record_type: FCGI_DATA, id: 1 }),
    output: |o| {},
}

// ---------------------------------------------------------------------------------------------
// Tests that are not one table case

#[test]
fn truncated_input_is_need_more_never_an_error() {
    let mut input = BytesMut::new();
    begin_request(1, FCGI_RESPONDER, true, &mut input);
    params(1, &as_bytes(&nginx_params()), &mut input);
    stream_chunked(FCGI_STDIN, 1, &body(5000), 1000, true, &mut input);
    stdin_end(1, &mut input);
    let full = run_whole(&Config::default(), &input);
    assert_eq!(full.events.len(), 7);
    for cut in 0..input.len() {
        let part = run_whole(&Config::default(), &input[..cut]);
        assert_eq!(part.error, None, "cut at {cut}");
        assert!(full.events.starts_with(&part.events), "cut at {cut}");
    }
}

#[test]
fn errors_are_sticky() {
    let mut conn = Connection::new(Config::default());
    let mut buf = BytesMut::from(&[9u8, 0, 0, 0, 0, 0, 0, 0][..]);
    assert_eq!(conn.decode(&mut buf), Err(Error::UnsupportedVersion(9)));
    let mut good = BytesMut::new();
    get_values(&[b"FCGI_MAX_CONNS"], &mut good);
    assert_eq!(conn.decode(&mut good), Err(Error::UnsupportedVersion(9)));
    assert!(!conn.has_output());
}

#[test]
fn zero_copy_params_and_stdin() {
    let mut input = BytesMut::new();
    begin_request(1, FCGI_RESPONDER, true, &mut input);
    params(1, &[(b"A", b"1")], &mut input);
    stdin(1, b"hello", &mut input);
    let range = input.as_ptr() as usize..input.as_ptr() as usize + input.len();
    let mut conn = Connection::new(Config::default());
    match conn.decode(&mut input).unwrap().unwrap() {
        Event::Request { params, .. } => {
            assert!(range.contains(&(params.buffer().as_ptr() as usize)));
        }
        e => panic!("{e:?}"),
    }
    match conn.decode(&mut input).unwrap().unwrap() {
        Event::Stdin { data, .. } => {
            assert_eq!(&data[..], b"hello");
            assert!(range.contains(&(data.as_ptr() as usize)));
        }
        e => panic!("{e:?}"),
    }
}

/// A connection with request `id` active and handed out.
fn with_request(id: u16, keep_conn: bool) -> Connection {
    let mut conn = Connection::new(mpx());
    let mut b = BytesMut::new();
    begin_request(id, FCGI_RESPONDER, keep_conn, &mut b);
    params(id, &[], &mut b);
    assert!(matches!(
        conn.decode(&mut b),
        Ok(Some(Event::Request { .. }))
    ));
    conn
}

#[test]
fn write_stdout_70000_bytes_is_two_records() {
    let mut conn = with_request(1, true);
    let mut out = BytesMut::new();
    let data = body(70000);
    conn.write_stdout(1, &data, &mut out);
    // 65535 + 1 padding, then 4465 + 7 padding.
    assert_eq!(out.len(), 8 + 65535 + 1 + 8 + 4465 + 7);
    assert_eq!(&out[..8], &[1, 6, 0, 1, 0xff, 0xff, 1, 0]);
    assert_eq!(&out[8..8 + 65535], &data[..65535]);
    let second = 8 + 65535 + 1;
    assert_eq!(&out[second..second + 8], &[1, 6, 0, 1, 0x11, 0x71, 7, 0]);
    assert_eq!(&out[second + 8..second + 8 + 4465], &data[65535..]);
    assert_eq!(out.len() % 8, 0);
}

#[test]
fn write_nothing_for_empty_data() {
    let mut conn = with_request(1, true);
    let mut out = BytesMut::new();
    conn.write_stdout(1, b"", &mut out);
    conn.write_stderr(1, b"", &mut out);
    assert!(out.is_empty());
    // Empty stderr does not count as using stderr.
    assert!(!conn.end_request(1, 0, ProtocolStatus::RequestComplete, &mut out));
    assert_eq!(out.len(), 8 + 16);
}

#[test]
fn end_request_bytes_keep_conn() {
    let mut conn = with_request(1, true);
    let mut out = BytesMut::new();
    conn.write_stdout(1, b"Status: 200 OK\r\n\r\nhi", &mut out);
    out.clear();
    let close = conn.end_request(1, 0x0102_0304, ProtocolStatus::RequestComplete, &mut out);
    assert!(!close);
    assert!(!conn.should_close());
    assert_eq!(
        &out[..],
        &[
            1, 6, 0, 1, 0, 0, 0, 0, // empty FCGI_STDOUT
            1, 3, 0, 1, 0, 8, 0, 0, // FCGI_END_REQUEST header
            1, 2, 3, 4, 0, 0, 0, 0, // appStatus, FCGI_REQUEST_COMPLETE, reserved
        ]
    );
    assert_eq!(conn.active_requests(), 0);
    // Forgotten: later writes and records for the id go nowhere.
    let mut more = BytesMut::new();
    conn.write_stdout(1, b"x", &mut more);
    assert!(more.is_empty());
    assert!(!conn.end_request(1, 0, ProtocolStatus::RequestComplete, &mut more));
    assert!(more.is_empty());
}

#[test]
fn end_request_with_stderr_and_close() {
    let mut conn = with_request(3, false);
    let mut out = BytesMut::new();
    conn.write_stderr(3, b"oops", &mut out);
    assert_eq!(
        &out[..],
        &[1, 7, 0, 3, 0, 4, 4, 0, b'o', b'o', b'p', b's', 0, 0, 0, 0]
    );
    out.clear();
    assert!(conn.end_request(3, 1, ProtocolStatus::RequestComplete, &mut out));
    assert!(conn.should_close());
    assert_eq!(
        &out[..],
        &[
            1, 6, 0, 3, 0, 0, 0, 0, // empty FCGI_STDOUT
            1, 7, 0, 3, 0, 0, 0, 0, // empty FCGI_STDERR
            1, 3, 0, 3, 0, 8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0,
        ]
    );
}

#[test]
fn id_can_begin_again_after_end() {
    // nginx with keep_conn reuses id 1 for every request on the connection.
    let mut conn = Connection::new(Config::default());
    for round in 0..3u8 {
        let mut b = BytesMut::new();
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        params(1, &[(b"N", &[b'0' + round])], &mut b);
        stdin_end(1, &mut b);
        assert!(matches!(
            conn.decode(&mut b),
            Ok(Some(Event::Request { id: 1, .. }))
        ));
        assert_eq!(conn.decode(&mut b), Ok(Some(Event::StdinEnd { id: 1 })));
        assert_eq!(conn.decode(&mut b), Ok(None));
        assert!(!conn.end_request(1, 0, ProtocolStatus::RequestComplete, &mut BytesMut::new()));
    }
}

#[test]
fn refused_request_without_keep_conn_asks_to_close() {
    let mut conn = Connection::new(Config::default());
    let mut b = BytesMut::new();
    begin_request(1, FCGI_AUTHORIZER, false, &mut b);
    assert_eq!(conn.decode(&mut b), Ok(None));
    assert!(conn.should_close());
    assert_eq!(conn.active_requests(), 0);
    let mut conn = Connection::new(Config::default());
    let mut b = BytesMut::new();
    begin_request(1, FCGI_AUTHORIZER, true, &mut b);
    assert_eq!(conn.decode(&mut b), Ok(None));
    assert!(!conn.should_close());
}

#[test]
fn take_output_appends() {
    let mut conn = Connection::new(Config::default());
    let mut b = BytesMut::new();
    record(77, 0, &[], &mut b);
    assert_eq!(conn.decode(&mut b), Ok(None));
    assert!(conn.has_output());
    let mut out = BytesMut::from(&b"prev"[..]);
    conn.take_output(&mut out);
    assert!(!conn.has_output());
    assert_eq!(&out[..4], b"prev");
    assert_eq!(out.len(), 4 + 16);
}

#[test]
fn error_display_and_hints() {
    assert_eq!(
        Error::ParamsTooLarge {
            id: 1,
            limit: 262144
        }
        .to_string(),
        "FCGI_PARAMS of request 1: more than 262144 bytes of params (max_params_bytes)"
    );
    assert_eq!(
        Error::UnexpectedRecord {
            record_type: 6,
            id: 3
        }
        .to_string(),
        "unexpected FCGI_STDOUT record (type 6) for request 3"
    );
    assert_eq!(
        Error::UnsupportedVersion(71).to_string(),
        "record header with version 71, only version 1 exists"
    );
    assert_eq!(
        Error::TooManyParams { id: 2, limit: 1 }.status_hint(),
        Some(431)
    );
    assert_eq!(Error::MalformedParams(2).status_hint(), Some(400));
    assert_eq!(Error::StdinBeforeParams(2).status_hint(), None);
    assert_eq!(Error::StdinBeforeParams(2).request_id(), Some(2));
    assert_eq!(Error::UnsupportedVersion(0).request_id(), None);
}

// ---- Cherokee's chunked request bodies (docs/protocols.md, "Cherokee") ----

const CHEROKEE_PARAMS: [(&[u8], &[u8]); 2] = [
    (b"REQUEST_METHOD", b"POST"),
    (b"CONTENT_TRANSFER_ENCODING", b"chunked"),
];

fn cherokee_req() -> Ev {
    req(
        1,
        true,
        &[
            ("REQUEST_METHOD", "POST"),
            ("CONTENT_TRANSFER_ENCODING", "chunked"),
        ],
    )
}

fcgi! {
    /// As captured: no CONTENT_LENGTH, an empty STDIN right after the params, the body still
    /// chunk-encoded (its final CRLF missing), then a second empty STDIN.
    cherokee_chunked_body_is_dechunked,
    config: Config::default(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        params(1, &CHEROKEE_PARAMS, &mut b);
        stdin_end(1, &mut b);
        stdin(1, b"13\r\nhello chunked world\r\n0\r\n", &mut b);
        stdin_end(1, &mut b);
    },
    events: vec![cherokee_req(), Ev::Stdin(1, b"hello chunked world".to_vec()), Ev::StdinEnd(1)],
    error: None,
    output: |o| {},
}

fcgi! {
    /// Bodies of 4000-8192 bytes: 8 zero bytes between the early empty STDIN and the body.
    cherokee_zero_bytes_before_the_body_are_skipped,
    config: Config::default(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        params(1, &CHEROKEE_PARAMS, &mut b);
        stdin_end(1, &mut b);
        b.extend_from_slice(&[0; 8]);
        stdin(1, b"3\r\nabc\r\n0\r\n", &mut b);
        stdin_end(1, &mut b);
    },
    events: vec![cherokee_req(), Ev::Stdin(1, b"abc".to_vec()), Ev::StdinEnd(1)],
    error: None,
    output: |o| {},
}

fcgi! {
    /// Chunks cut across records anywhere: in the size line, in the data, before the CRLF.
    cherokee_chunks_across_records,
    config: Config::default(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        params(1, &CHEROKEE_PARAMS, &mut b);
        stdin_end(1, &mut b);
        stdin(1, b"1", &mut b);
        stdin(1, b"3;ext=1\r\nhello ", &mut b);
        stdin(1, b"chunked world", &mut b);
        stdin(1, b"\r\n2\r\n!!\r\n0", &mut b);
        stdin(1, b"\r\n\r\n", &mut b);
        stdin_end(1, &mut b);
    },
    events: vec![
        cherokee_req(),
        Ev::Stdin(1, b"hello ".to_vec()),
        Ev::Stdin(1, b"chunked world".to_vec()),
        Ev::Stdin(1, b"!!".to_vec()),
        Ev::StdinEnd(1),
    ],
    error: None,
    output: |o| {},
}

fcgi! {
    cherokee_malformed_chunks_are_an_error,
    config: Config::default(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        params(1, &CHEROKEE_PARAMS, &mut b);
        stdin_end(1, &mut b);
        stdin(1, b"zz\r\nabc", &mut b);
    },
    events: vec![cherokee_req()],
    error: Some(Error::MalformedChunkedBody(1)),
    output: |o| {},
}

fcgi! {
    /// A second empty STDIN after a body's end is ignored (a notice), whatever the front end.
    a_repeated_empty_stdin_is_ignored,
    config: Config::default(),
    input: |b| {
        begin_request(1, FCGI_RESPONDER, true, &mut b);
        params(1, &[(b"CONTENT_LENGTH", b"2")], &mut b);
        stdin(1, b"ok", &mut b);
        stdin_end(1, &mut b);
        stdin_end(1, &mut b);
    },
    events: vec![req(1, true, &[("CONTENT_LENGTH", "2")]), Ev::Stdin(1, b"ok".to_vec()), Ev::StdinEnd(1)],
    error: None,
    output: |o| {},
}
