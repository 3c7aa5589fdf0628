//! The fuzz seeds in `fuzz/seeds/<target>/` are real front-end traffic (nginx, Apache httpd,
//! lighttpd; captured by `fuzz/capture.py`, big bodies trimmed with the framing rewritten).
//! Each must decode cleanly, with the same events whole and one byte at a time: a seed that
//! errors would mean either a codec regression on real traffic or a broken capture.

use bytes::{Bytes, BytesMut};
use ferrocgi_proto::ajp13;

#[path = "../../../fuzz/common/ajp_body_head.rs"]
mod ajp_body_head;
use ferrocgi_proto::fastcgi::{self, params::decode_pairs, ProtocolStatus};
use ferrocgi_proto::scgi;
use std::path::PathBuf;

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

/// Feeds `data` in pieces of `step` bytes; returns (events, body bytes) or the error.
fn fastcgi_run(data: &[u8], step: usize) -> Result<(Vec<String>, Vec<u8>), fastcgi::Error> {
    let mut conn = fastcgi::Connection::new(fastcgi::Config::default());
    let (mut buf, mut out, mut events, mut body) =
        (BytesMut::new(), BytesMut::new(), Vec::new(), Vec::new());
    for chunk in data.chunks(step) {
        buf.extend_from_slice(chunk);
        while let Some(ev) = conn.decode(&mut buf)? {
            match &ev {
                fastcgi::Event::Request { params, .. } => {
                    assert!(params.get(b"REQUEST_METHOD").is_some());
                    events.push("request".to_string());
                }
                fastcgi::Event::Stdin { data, .. } => body.extend_from_slice(data),
                fastcgi::Event::StdinEnd { id } => {
                    events.push("end".to_string());
                    conn.write_stdout(*id, b"Status: 200 OK\r\n\r\nok", &mut out);
                    conn.end_request(*id, 0, ProtocolStatus::RequestComplete, &mut out);
                }
                fastcgi::Event::Abort { .. } => events.push("abort".to_string()),
            }
        }
    }
    assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
    Ok((events, body))
}

#[test]
fn fastcgi_records_seeds_decode() {
    for (name, data) in seeds("fastcgi_records") {
        let stream = &data[1..]; // first byte: the target's config selector
        let whole = fastcgi_run(stream, stream.len()).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let bytewise = fastcgi_run(stream, 1).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(whole, bytewise, "{name}");
        let requests = whole.0.iter().filter(|e| *e == "request").count();
        assert!(requests >= 1, "{name}: no request");
        assert_eq!(
            requests,
            whole.0.iter().filter(|e| *e == "end").count(),
            "{name}"
        );
    }
}

#[test]
fn fastcgi_params_seeds_decode() {
    for (name, data) in seeds("fastcgi_params") {
        let params = decode_pairs(Bytes::copy_from_slice(&data[1..]), 64)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(params.get(b"REQUEST_METHOD").is_some(), "{name}");
    }
}

#[test]
fn scgi_seeds_decode() {
    for (name, data) in seeds("scgi_netstring") {
        let run = |step: usize| -> Result<(u64, Vec<u8>, bool), scgi::Error> {
            let mut conn = scgi::Connection::new(scgi::Config::default());
            let (mut buf, mut body, mut cl, mut ended) = (BytesMut::new(), Vec::new(), 0, false);
            for chunk in data.chunks(step) {
                buf.extend_from_slice(chunk);
                while let Some(ev) = conn.decode(&mut buf)? {
                    match ev {
                        scgi::Event::Request { content_length, .. } => cl = content_length,
                        scgi::Event::Body(b) => body.extend_from_slice(&b),
                        scgi::Event::BodyEnd => ended = true,
                    }
                }
            }
            Ok((cl, body, ended))
        };
        let whole = run(data.len()).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(whole, run(1).unwrap(), "{name}");
        assert!(whole.2, "{name}: body not complete");
        assert_eq!(whole.0, whole.1.len() as u64, "{name}");
    }
}

fn ajp_run(
    data: &[u8],
    step: usize,
    lighttpd: bool,
) -> Result<(Vec<String>, Vec<u8>), ajp13::Error> {
    let mut conn = ajp13::Connection::new(ajp13::Config {
        lighttpd_body_compat: lighttpd,
        ..ajp13::Config::default()
    });
    let (mut buf, mut out, mut events, mut body) =
        (BytesMut::new(), BytesMut::new(), Vec::new(), Vec::new());
    let mut feed = vec![&[][..]];
    feed.extend(data.chunks(step));
    for chunk in feed {
        buf.extend_from_slice(chunk);
        loop {
            let r = conn.decode(&mut buf);
            conn.take_output(&mut out);
            match r? {
                Some(ajp13::Event::Body(b)) => body.extend_from_slice(&b),
                Some(ajp13::Event::BodyEnd) => {
                    events.push("end".into());
                    let head = ferrocgi_proto::ResponseHead::new(200, "OK");
                    let _ = conn.send_headers(&head, &mut out);
                    conn.end_response(true, &mut out);
                }
                Some(ajp13::Event::Request(_)) => events.push("request".into()),
                Some(ajp13::Event::Shutdown) => events.push("shutdown".into()),
                None => break,
            }
            conn.request_body_chunk(&mut out);
        }
    }
    Ok((events, body))
}

#[test]
fn ajp_forward_request_seeds_decode() {
    for (name, data) in seeds("ajp_forward_request") {
        // As the fuzz target reads them: the standard body format.
        let whole = ajp_run(&data, data.len(), false).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(whole, ajp_run(&data, 1, false).unwrap(), "{name}");
        let requests = whole.0.iter().filter(|e| *e == "request").count();
        assert!(requests >= 1, "{name}");
        assert_eq!(
            requests,
            whole.0.iter().filter(|e| *e == "end").count(),
            "{name}"
        );
    }
}

#[test]
fn ajp_body_chunk_seeds_decode() {
    for (name, data) in seeds("ajp_body_chunk") {
        // The fuzz target's own FORWARD_REQUEST (the file it includes).
        let (head, cl) = ajp_body_head::head(data[0]);
        let mut stream = BytesMut::from(&head[..]);
        stream.extend_from_slice(&data[1..]);
        // Captured from lighttpd: its body format; from Apache: the standard one.
        let lighttpd = name.starts_with("lighttpd");
        let whole =
            ajp_run(&stream, stream.len(), lighttpd).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(whole, ajp_run(&stream, 1, lighttpd).unwrap(), "{name}");
        assert_eq!(whole.0, ["request", "end"], "{name}");
        if let Some(n) = cl {
            assert_eq!(whole.1.len() as u64, n, "{name}");
        }
    }
}
