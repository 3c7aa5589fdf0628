//! `ferrocgi status ADDRESS`: asks a running server for its status page the way a web server
//! would (FastCGI, SCGI or AJP, on its own socket) and prints the pool and a worker table,
//! again and again with `--watch` (like `top`). It needs nothing from the server but
//! `status_path`, so it works with any way of starting ferrocgi, `manage.py runfcgi` included.
//!
//! The request bytes come from the protocol crate's encoders (the same the tests and fuzz
//! seeds use); this module only connects, waits for the whole answer and formats it.

use super::render::{human_bytes, human_secs, human_us};
use bytes::{BufMut, BytesMut};
use clap::Parser;
use ferrocgi_proto::{ajp13, fastcgi};
use serde_json::Value;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Show a running ferrocgi's pool and workers (its status_path page).
#[derive(Parser, Debug)]
#[command(
    name = "ferrocgi status",
    after_help = "The server must be started with status_path (e.g. status_path=/status).\n\
                  Examples:\n  ferrocgi status /run/mysite/mysite.sock\n  \
                  ferrocgi status 127.0.0.1:3033 --watch\n  \
                  ferrocgi status 127.0.0.1:8009 --protocol ajp13 --json"
)]
struct Args {
    /// The server's address: HOST:PORT, a port on 127.0.0.1, or a Unix socket path.
    address: String,
    /// The server's status_path.
    #[arg(long, default_value = "/status")]
    path: String,
    /// The server's protocol: fcgi, scgi or ajp13.
    #[arg(long, default_value = "fcgi", value_parser = ["fcgi", "scgi", "ajp13"])]
    protocol: String,
    /// Print the page's JSON (one line per refresh with --watch).
    #[arg(long)]
    json: bool,
    /// Refresh every SECONDS (default 2) until interrupted.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "2")]
    watch: Option<f64>,
}

/// Runs the command on `args` (the words after `status`); returns the exit status.
pub fn main(args: &[String]) -> i32 {
    let argv = std::iter::once("ferrocgi status".to_owned()).chain(args.iter().cloned());
    let args = match Args::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    // Ctrl-C (or SIGTERM) ends --watch quietly: the flag is checked between looks.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    loop {
        match once(&args) {
            Ok(out) => {
                let clear = if args.watch.is_some() && !args.json {
                    "\x1b[H\x1b[2J" // clear the terminal, as top does
                } else {
                    ""
                };
                let mut stdout = io::stdout().lock();
                if writeln!(stdout, "{clear}{out}")
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    return 0; // the reader went away (a pipe into head)
                }
            }
            Err(e) => {
                eprintln!("ferrocgi status: {e}");
                if args.watch.is_none() {
                    return 1;
                }
            }
        }
        let Some(every) = args.watch else { return 0 };
        let until = std::time::Instant::now() + Duration::from_secs_f64(every.max(0.1));
        while std::time::Instant::now() < until {
            if stop.load(Ordering::Relaxed) {
                return 0;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One look: the formatted page (or its JSON).
fn once(args: &Args) -> Result<String, String> {
    let (status, body) = fetch(args).map_err(|e| format!("{}: {e}", args.address))?;
    let hint = || {
        format!(
            "{} answered {status} for {}: is the server started with status_path={}?",
            args.address, args.path, args.path
        )
    };
    if status != 200 {
        return Err(hint());
    }
    let page: Value = serde_json::from_slice(&body).map_err(|_| hint())?;
    if page.get("accepted conn").is_none() {
        return Err(hint());
    }
    if args.json {
        return Ok(page.to_string());
    }
    Ok(table(&page))
}

fn fetch(args: &Args) -> io::Result<(u16, Vec<u8>)> {
    let request = match args.protocol.as_str() {
        "scgi" => scgi_request(&args.path),
        "ajp13" => ajp_request(&args.path)?,
        _ => fastcgi_request(&args.path),
    };
    let complete = match args.protocol.as_str() {
        "ajp13" => ajp_complete,
        "scgi" => (|_: &BytesMut| false) as fn(&BytesMut) -> bool,
        _ => fastcgi_complete,
    };
    let answer = exchange(&args.address, &request, complete)?;
    match args.protocol.as_str() {
        "ajp13" => ajp_answer(answer),
        "scgi" => cgi_answer(&answer),
        _ => cgi_answer(&fastcgi_stdout(answer)?),
    }
}

const QUERY: &str = "json&full";

/// The CGI params a web server sends for `GET PATH?json&full` from this machine.
fn params(path: &str) -> Vec<(&'static str, String)> {
    vec![
        ("GATEWAY_INTERFACE", "CGI/1.1".into()),
        ("SERVER_PROTOCOL", "HTTP/1.1".into()),
        ("SERVER_NAME", "localhost".into()),
        ("SERVER_PORT", "80".into()),
        ("REMOTE_ADDR", "127.0.0.1".into()),
        ("REQUEST_METHOD", "GET".into()),
        ("SCRIPT_NAME", path.into()),
        ("PATH_INFO", String::new()),
        ("QUERY_STRING", QUERY.into()),
        ("REQUEST_URI", format!("{path}?{QUERY}")),
        ("CONTENT_LENGTH", "0".into()),
    ]
}

fn fastcgi_request(path: &str) -> Vec<u8> {
    use fastcgi::record::{FCGI_BEGIN_REQUEST, FCGI_PARAMS, FCGI_RESPONDER, FCGI_STDIN};
    let mut out = BytesMut::new();
    let mut begin = [0u8; 8];
    begin[..2].copy_from_slice(&FCGI_RESPONDER.to_be_bytes());
    fastcgi::encode::record(FCGI_BEGIN_REQUEST, 1, &begin, &mut out);
    let mut pairs = BytesMut::new();
    for (name, value) in params(path) {
        fastcgi::params::encode_pair(name.as_bytes(), value.as_bytes(), &mut pairs);
    }
    fastcgi::encode::stream(FCGI_PARAMS, 1, &pairs, &mut out);
    // The empty records that end the params and the (empty) body.
    fastcgi::encode::record(FCGI_PARAMS, 1, b"", &mut out);
    fastcgi::encode::record(FCGI_STDIN, 1, b"", &mut out);
    out.to_vec()
}

fn scgi_request(path: &str) -> Vec<u8> {
    // CONTENT_LENGTH first, then SCGI=1 (the SCGI spec's order).
    let mut head = b"CONTENT_LENGTH\x000\x00SCGI\x001\x00".to_vec();
    for (name, value) in params(path)
        .into_iter()
        .filter(|(n, _)| *n != "CONTENT_LENGTH")
    {
        head.extend_from_slice(name.as_bytes());
        head.push(0);
        head.extend_from_slice(value.as_bytes());
        head.push(0);
    }
    let mut out = format!("{}:", head.len()).into_bytes();
    out.extend_from_slice(&head);
    out.push(b',');
    out
}

fn ajp_request(path: &str) -> io::Result<Vec<u8>> {
    let req = ajp13::ForwardRequest {
        method: "GET".into(),
        protocol: "HTTP/1.1".into(),
        req_uri: path.to_owned().into(),
        remote_addr: "127.0.0.1".into(),
        server_name: "localhost".into(),
        server_port: 80,
        headers: vec![("host".into(), "localhost".into())],
        query_string: Some(QUERY.into()),
        ..Default::default()
    };
    let mut out = BytesMut::new();
    ajp13::encode::forward_request(&req, &mut out)
        .map_err(|e| io::Error::other(format!("cannot encode the AJP request: {e}")))?;
    Ok(out.to_vec())
}

/// Sends `request` and reads until the server closes or the answer is `complete` (SCGI has no
/// end marker but the close).
fn exchange(
    address: &str,
    request: &[u8],
    complete: fn(&BytesMut) -> bool,
) -> io::Result<BytesMut> {
    let timeout = Some(Duration::from_secs(10));
    let mut stream: Box<dyn ReadWrite> = if address.contains('/') {
        let s = UnixStream::connect(address)?;
        s.set_read_timeout(timeout)?;
        Box::new(s)
    } else {
        let addr = if address.bytes().all(|b| b.is_ascii_digit()) {
            format!("127.0.0.1:{address}")
        } else {
            address.to_owned()
        };
        let target = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::other("no such address"))?;
        let s = TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
        s.set_read_timeout(timeout)?;
        Box::new(s)
    };
    stream.write_all(request)?;
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(buf);
        }
        if buf.len() + n > 16 << 20 {
            return Err(io::Error::other("the answer is larger than 16 MiB"));
        }
        buf.put_slice(&chunk[..n]);
        if complete(&buf) {
            return Ok(buf);
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn ajp_complete(buf: &BytesMut) -> bool {
    let mut copy = buf.clone();
    while let Some(p) = ajp13::decode_container_packet(&mut copy) {
        if matches!(p, ajp13::ContainerPacket::EndResponse { .. }) {
            return true;
        }
    }
    false
}

fn fastcgi_complete(buf: &BytesMut) -> bool {
    let mut copy = buf.clone();
    while let Ok(Some((header, _))) = fastcgi::decode::next_record(&mut copy) {
        if header.record_type == fastcgi::record::FCGI_END_REQUEST {
            return true;
        }
    }
    false
}

fn ajp_answer(mut buf: BytesMut) -> io::Result<(u16, Vec<u8>)> {
    let (mut status, mut body) = (0, Vec::new());
    while let Some(p) = ajp13::decode_container_packet(&mut buf) {
        match p {
            ajp13::ContainerPacket::SendHeaders { status: s, .. } => status = s,
            ajp13::ContainerPacket::SendBodyChunk(data) => body.extend_from_slice(&data),
            ajp13::ContainerPacket::EndResponse { .. } => return Ok((status, body)),
            _ => {}
        }
    }
    Err(io::Error::other("the AJP response ended early"))
}

fn fastcgi_stdout(mut buf: BytesMut) -> io::Result<Vec<u8>> {
    use fastcgi::record::{FCGI_END_REQUEST, FCGI_STDOUT};
    let mut stdout = Vec::new();
    while let Some((header, content)) =
        fastcgi::decode::next_record(&mut buf).map_err(|e| io::Error::other(e.to_string()))?
    {
        match header.record_type {
            FCGI_STDOUT => stdout.extend_from_slice(&content),
            FCGI_END_REQUEST => return Ok(stdout),
            _ => {}
        }
    }
    Err(io::Error::other(
        "the FastCGI response ended without FCGI_END_REQUEST",
    ))
}

/// A CGI response: `Status:` and headers, an empty line, the body.
fn cgi_answer(out: &[u8]) -> io::Result<(u16, Vec<u8>)> {
    let end = memchr::memmem::find(out, b"\r\n\r\n")
        .ok_or_else(|| io::Error::other("no response head in the answer"))?;
    let head = String::from_utf8_lossy(&out[..end]);
    let status = head
        .lines()
        .find_map(|l| l.strip_prefix("Status:"))
        .and_then(|s| s.trim().split(' ').next()?.parse().ok())
        .unwrap_or(200);
    Ok((status, out[end + 4..].to_vec()))
}

/// The pool in two lines, then a row per worker.
fn table(p: &Value) -> String {
    let n = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let t = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
    let mut out = format!(
        "pool {} · {} · up {} · accepted {} · listen queue {}/{} (max {})\n\
         workers {} (active {}, idle {}) · max active {} · max children reached {} · slow {} · timeouts {} · 5xx {}\n\n",
        t(p, "pool"),
        t(p, "process manager"),
        human_secs(n(p, "start since")),
        n(p, "accepted conn"),
        n(p, "listen queue"),
        n(p, "listen queue len"),
        n(p, "max listen queue"),
        n(p, "total processes"),
        n(p, "active processes"),
        n(p, "idle processes"),
        n(p, "max active processes"),
        n(p, "max children reached"),
        n(p, "slow requests"),
        n(p, "request timeouts"),
        n(p, "responses 5xx"),
    );
    out.push_str(&format!(
        "{:>8}  {:<8} {:>7} {:>7} {:>9} {:>5} {:>10} {:>10}  REQUEST\n",
        "PID", "STATE", "REQS", "UP", "DURATION", "CPU", "MEMORY", "RSS"
    ));
    let empty = Vec::new();
    for w in p
        .get("processes")
        .and_then(Value::as_array)
        .unwrap_or(&empty)
    {
        let cpu = w
            .get("last request cpu")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        out.push_str(&format!(
            "{:>8}  {:<8} {:>7} {:>7} {:>9} {:>4.0}% {:>10} {:>10}  {} {}\n",
            n(w, "pid"),
            t(w, "state"),
            n(w, "requests"),
            human_secs(n(w, "start since")),
            human_us(n(w, "request duration")),
            cpu,
            human_bytes(n(w, "last request memory")),
            human_bytes(n(w, "rss")),
            t(w, "request method"),
            t(w, "request uri"),
        ));
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scgi_request_is_a_netstring_with_content_length_first() {
        let r = scgi_request("/status");
        let colon = r.iter().position(|&b| b == b':').unwrap();
        let len: usize = std::str::from_utf8(&r[..colon]).unwrap().parse().unwrap();
        assert_eq!(r.len(), colon + 1 + len + 1);
        assert!(r[colon + 1..].starts_with(b"CONTENT_LENGTH\x000\x00SCGI\x001\x00"));
        assert_eq!(r.last(), Some(&b','));
    }

    #[test]
    fn a_cgi_answer_gives_its_status_and_body() {
        let out = b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope";
        assert_eq!(cgi_answer(out).unwrap(), (404, b"nope".to_vec()));
    }
}
