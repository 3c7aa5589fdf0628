//! Invariant: an idle `ajp13::Connection` either decodes the input (FORWARD_REQUEST, CPING,
//! SHUTDOWN, empty packets…) or returns an `ajp13::Error`; it never panics, never buffers a
//! packet past `max_packet`, and yields identical events, output and error whether the input
//! arrives whole or one byte at a time. Every decoded request's CGI view is built too.
#![no_main]

use bytes::BytesMut;
use ferrocgi_proto::ajp13::{Config, Connection, Error, Event};

fn run(data: &[u8], step: usize) -> (Vec<Event>, Vec<u8>, Option<Error>) {
    let mut conn = Connection::new(Config::default());
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    let mut events = Vec::new();
    for chunk in data.chunks(step.max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            let r = conn.decode(&mut buf);
            conn.take_output(&mut out);
            match r {
                Ok(Some(e)) => {
                    if let Event::Request(req) = &e {
                        let params = req.to_params();
                        assert!(params.get(b"REQUEST_METHOD").is_some());
                    }
                    events.push(e);
                }
                Ok(None) => break,
                Err(e) => return (events, out.to_vec(), Some(e)),
            }
        }
        assert!(buf.len() <= 8192 + 4, "buffered past max_packet");
    }
    (events, out.to_vec(), None)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let whole = run(data, data.len());
    let bytewise = run(data, 1);
    assert_eq!(whole, bytewise);
});
