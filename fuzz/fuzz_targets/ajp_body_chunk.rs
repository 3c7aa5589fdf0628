//! Invariant: after a valid FORWARD_REQUEST (with a Content-Length or chunked, chosen by the
//! first input byte), the fuzz bytes read as body packets either decode or return an
//! `ajp13::Error`, in both body formats (standard and lighttpd); the connection never
//! panics, never yields more body than Content-Length, and yields identical events, output
//! (GET_BODY_CHUNKs, written as a server would after every event) and error whether the
//! bytes arrive whole or one byte at a time.
#![no_main]

use bytes::BytesMut;
use ferrocgi_proto::ajp13::{Config, Connection, Error, Event};

#[path = "../common/ajp_body_head.rs"]
mod ajp_body_head;
use ajp_body_head::head;

fn run(
    head: &[u8],
    body: &[u8],
    cl: Option<u64>,
    lighttpd: bool,
    step: usize,
) -> (Vec<Event>, Vec<u8>, Option<Error>) {
    let mut conn = Connection::new(Config {
        lighttpd_body_compat: lighttpd,
        ..Config::default()
    });
    let mut buf = BytesMut::from(head);
    let mut out = BytesMut::new();
    let mut events = Vec::new();
    let mut received: u64 = 0;
    let mut feed = vec![&[][..]];
    feed.extend(body.chunks(step.max(1)));
    for chunk in feed {
        buf.extend_from_slice(chunk);
        loop {
            match conn.decode(&mut buf) {
                Ok(Some(e)) => {
                    if let Event::Body(b) = &e {
                        assert!(!b.is_empty());
                        received += b.len() as u64;
                        if let Some(n) = cl {
                            assert!(received <= n, "more body than Content-Length");
                        }
                    }
                    events.push(e);
                    conn.request_body_chunk(&mut out);
                }
                Ok(None) => break,
                Err(e) => return (events, out.to_vec(), Some(e)),
            }
        }
    }
    (events, out.to_vec(), None)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let (head, cl) = head(selector);
    for lighttpd in [false, true] {
        let whole = run(&head, body, cl, lighttpd, body.len());
        let bytewise = run(&head, body, cl, lighttpd, 1);
        assert_eq!(whole, bytewise);
    }
});
