//! Invariant: whatever the bytes, `Connection::decode` either yields events or returns a
//! `fastcgi::Error`; it never panics, never allocates past the configured limits, and feeding
//! the input whole or one byte at a time gives identical events, the same error and the same
//! bytes written back (queued answers and the responses this target writes).
//!
//! The first input byte picks the configuration: bit 0 multiplexing, bit 1 tiny limits (so the
//! limit paths are reached with short inputs).
#![no_main]

use bytes::BytesMut;
use ferrocgi_proto::fastcgi::{Config, Connection, Error, Event, ProtocolStatus};

#[derive(Debug, Default, PartialEq)]
struct Run {
    events: Vec<Event>,
    error: Option<Error>,
    /// What the codec queued on its own (`take_output`).
    queued: Vec<u8>,
    /// What this target's stand-in application wrote. Kept apart from `queued`: how the two
    /// interleave depends on when the server calls `take_output`, not on the codec.
    written: Vec<u8>,
}

/// Decodes until need-more or an error, answering requests the way a server would so the
/// writers and `end_request` are exercised too. Returns false after an error.
fn drain(
    conn: &mut Connection,
    buf: &mut BytesMut,
    run: &mut Run,
    out: &mut BytesMut,
    queued: &mut BytesMut,
) -> bool {
    loop {
        match conn.decode(buf) {
            Ok(Some(ev)) => {
                match &ev {
                    Event::Request { params, .. } => {
                        // Bounded by the limits in force.
                        assert!(params.len() <= conn.config().max_params_pairs);
                        assert!(params.buffer().len() <= conn.config().max_params_bytes);
                    }
                    Event::Stdin { data, .. } => assert!(!data.is_empty()),
                    Event::StdinEnd { id } => {
                        conn.write_stdout(*id, b"Status: 200 OK\r\n\r\nok", out);
                        conn.write_stderr(*id, b"log", out);
                        conn.end_request(*id, 0, ProtocolStatus::RequestComplete, out);
                    }
                    Event::Abort { id } => {
                        conn.end_request(*id, 1, ProtocolStatus::RequestComplete, out);
                    }
                }
                run.events.push(ev);
            }
            Ok(None) => {
                conn.take_output(queued);
                return true;
            }
            Err(e) => {
                conn.take_output(queued);
                run.error = Some(e);
                return false;
            }
        }
    }
}

fn config(sel: u8) -> Config {
    let mut c = Config {
        multiplex: sel & 1 != 0,
        ..Config::default()
    };
    if sel & 2 != 0 {
        c.max_params_bytes = 64;
        c.max_params_pairs = 4;
        c.max_reqs = 2;
    }
    c
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&sel, input)) = data.split_first() else {
        return;
    };

    let (mut out, mut queued) = (BytesMut::new(), BytesMut::new());
    let mut whole = Run::default();
    let mut conn = Connection::new(config(sel));
    let mut buf = BytesMut::from(input);
    drain(&mut conn, &mut buf, &mut whole, &mut out, &mut queued);
    whole.written = out.split().to_vec();
    whole.queued = queued.split().to_vec();

    let mut bytewise = Run::default();
    let mut conn = Connection::new(config(sel));
    let mut buf = BytesMut::new();
    for b in input {
        buf.extend_from_slice(&[*b]);
        if !drain(&mut conn, &mut buf, &mut bytewise, &mut out, &mut queued) {
            break;
        }
    }
    bytewise.written = out.to_vec();
    bytewise.queued = queued.to_vec();

    assert_eq!(whole, bytewise);
});
