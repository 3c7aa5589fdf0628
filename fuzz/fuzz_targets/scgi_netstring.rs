//! Invariant: `scgi::Connection` either decodes the input or returns an `scgi::Error`; it
//! never panics, never allocates past its limits, and yields identical events (body bytes
//! compared joined, since their split follows the reads) and the identical error whether the
//! input arrives whole or one byte at a time.
#![no_main]

use bytes::BytesMut;
use ferrocgi_proto::scgi::{Config, Connection, Error, Event};

fn run(data: &[u8], step: usize) -> (Vec<Event>, Vec<u8>, Option<Error>) {
    let mut conn = Connection::new(Config {
        max_header_bytes: 4096,
        max_header_pairs: 64,
    });
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    let mut body = Vec::new();
    for chunk in data.chunks(step.max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            match conn.decode(&mut buf) {
                Ok(Some(Event::Body(b))) => {
                    assert!(!b.is_empty());
                    body.extend_from_slice(&b);
                }
                Ok(Some(e)) => {
                    if let Event::Request { params, .. } = &e {
                        // Touch every pair: ranges must be in bounds.
                        for (n, v) in params.iter() {
                            assert!(!n.is_empty());
                            let _ = v.len();
                        }
                    }
                    events.push(e)
                }
                Ok(None) => break,
                Err(e) => return (events, body, Some(e)),
            }
        }
    }
    (events, body, None)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let whole = run(data, data.len());
    let bytewise = run(data, 1);
    assert_eq!(whole, bytewise);
});
