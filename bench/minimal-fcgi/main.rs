//! A minimal blocking FastCGI responder, the benchmark's ceiling for a FastCGI server.
//! std only: one thread per connection, one read loop, one write per response,
//! FCGI_KEEP_CONN honoured. Answers every request with `Hello, world!` (13 bytes).
//! Build: rustc -O --edition 2021 main.rs -o minimal-fcgi; run: minimal-fcgi 127.0.0.1:PORT
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

const BODY: &[u8] = b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!";

fn record(out: &mut Vec<u8>, kind: u8, id: u16, content: &[u8]) {
    let len = content.len() as u16;
    out.extend_from_slice(&[1, kind, (id >> 8) as u8, id as u8, (len >> 8) as u8, len as u8, 0, 0]);
    out.extend_from_slice(content);
}

fn serve(mut s: TcpStream) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let (mut buf, mut out) = (Vec::with_capacity(16384), Vec::with_capacity(256));
    let (mut chunk, mut keep) = ([0u8; 16384], false);
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut at = 0;
        while buf.len() - at >= 8 {
            let h = &buf[at..at + 8];
            let (kind, id) = (h[1], u16::from_be_bytes([h[2], h[3]]));
            let clen = u16::from_be_bytes([h[4], h[5]]) as usize;
            let total = 8 + clen + h[6] as usize;
            if buf.len() - at < total {
                break;
            }
            let content = &buf[at + 8..at + 8 + clen];
            match kind {
                1 => keep = content.get(2).is_some_and(|f| f & 1 == 1), // BEGIN_REQUEST
                5 if clen == 0 => {
                    // end of STDIN: the request is complete; answer in one write
                    out.clear();
                    record(&mut out, 6, id, BODY);
                    record(&mut out, 6, id, b"");
                    record(&mut out, 3, id, &[0, 0, 0, 0, 0, 0, 0, 0]);
                    s.write_all(&out)?;
                    if !keep {
                        return Ok(());
                    }
                }
                _ => {} // PARAMS, STDIN data, others: ignored
            }
            at += total;
        }
        buf.drain(..at);
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9000".into());
    for conn in TcpListener::bind(addr)?.incoming() {
        let s = conn?;
        std::thread::spawn(move || serve(s));
    }
    Ok(())
}
