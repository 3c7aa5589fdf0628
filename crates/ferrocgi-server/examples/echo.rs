//! A pure-Rust application for ferrocgi: the ceiling for benchmarks, the backend of the
//! end-to-end tests, and an example of embedding the server without Python.
//!
//! Apps:
//! * `echo` (default): a JSON document with the params exactly as received (order and
//!   duplicates kept, bytes as latin-1) and the length and SHA-256 of the body read. With
//!   `?bytes=N` it answers N bytes (byte i = i % 251); with `?status=404%20Custom` that status.
//! * `hello`: `Hello, world!` (13 bytes).
//!
//! ```text
//! cargo run --example echo -- --protocol fcgi --bind 127.0.0.1:9000
//! ```

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use ferrocgi_server::{
    BindAddr, Handler, Listener, Protocol, Request, Responder, ResponseHead, Server, ServerConfig,
    UnixSocketOptions,
};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Proto {
    Fcgi,
    Scgi,
    Ajp,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum App {
    Echo,
    Hello,
}

/// ferrocgi's pure-Rust echo/hello application server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Protocol spoken to the web server.
    #[arg(long, value_enum, default_value = "fcgi")]
    protocol: Proto,
    /// TCP address to listen on, e.g. 127.0.0.1:9000 or [::1]:9000.
    #[arg(long, conflicts_with_all = ["socket", "fd"])]
    bind: Option<std::net::SocketAddr>,
    /// Unix socket path to listen on.
    #[arg(long, conflicts_with = "fd")]
    socket: Option<PathBuf>,
    /// Inherited listening socket to serve (0 when spawned by a web server).
    #[arg(long)]
    fd: Option<i32>,
    /// Permission bits for the Unix socket file, octal (e.g. 660).
    #[arg(long, value_parser = parse_octal)]
    socket_mode: Option<u32>,
    /// Which application to serve.
    #[arg(long, value_enum, default_value = "echo")]
    app: App,
    /// Read lighttpd 1.4's AJP body packets (no inner length field).
    #[arg(long)]
    ajp_lighttpd_compat: bool,
    /// AJP maximum packet size in bytes (8192 to 65536).
    #[arg(long, default_value_t = 8192)]
    ajp_max_packet: usize,
    /// Secret AJP requests must carry.
    #[arg(long)]
    ajp_secret: Option<String>,
    /// Accept several FastCGI requests at once on one connection.
    #[arg(long)]
    multiplex: bool,
    /// Most requests in flight at once.
    #[arg(long, default_value_t = ferrocgi_server::DEFAULT_MAX_IN_FLIGHT)]
    max_in_flight: usize,
    /// Runtime worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn parse_octal(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8).map_err(|_| format!("`{s}` is not an octal mode, e.g. 660"))
}

fn main() {
    let args = Args::parse();
    ferrocgi_server::logging::init(&args.log_level);
    if let Err(e) = run(args) {
        eprintln!("echo: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> std::io::Result<()> {
    let addr = match (&args.bind, &args.socket, args.fd) {
        (Some(a), _, _) => BindAddr::Tcp(*a),
        (_, Some(p), _) => BindAddr::Unix(p.clone()),
        (_, _, Some(fd)) => BindAddr::Fd(fd),
        _ => BindAddr::Tcp("127.0.0.1:9000".parse().expect("a valid literal address")),
    };
    let unix = UnixSocketOptions {
        mode: args.socket_mode,
        owner: None,
    };
    let listener = Listener::bind(&addr, &unix, ferrocgi_server::listener::DEFAULT_BACKLOG)?;
    let mut config = ServerConfig::new(match args.protocol {
        Proto::Fcgi => Protocol::Fastcgi,
        Proto::Scgi => Protocol::Scgi,
        Proto::Ajp => Protocol::Ajp13,
    });
    config.fastcgi.multiplex = args.multiplex;
    config.ajp.lighttpd_body_compat = args.ajp_lighttpd_compat;
    config.ajp.max_packet = args.ajp_max_packet;
    config.ajp_secret = args.ajp_secret.map(Bytes::from);
    config.max_in_flight = args.max_in_flight;

    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.workers {
        rt.worker_threads(n);
    }
    let rt = rt.enable_all().build()?;
    rt.block_on(async move {
        let stop = async {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).expect("installing a signal handler");
            let mut int = signal(SignalKind::interrupt()).expect("installing a signal handler");
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        };
        match args.app {
            App::Echo => Server::new(listener, config, Echo).run(stop).await,
            App::Hello => Server::new(listener, config, Hello).run(stop).await,
        }
    })
}

struct Hello;

impl Handler for Hello {
    async fn handle(&self, _req: Request, mut resp: Responder) {
        let head = ResponseHead::new(200, "OK")
            .header("Content-Type", "text/plain")
            .header("Content-Length", "13");
        if resp.start(head).await.is_ok()
            && resp
                .write(Bytes::from_static(b"Hello, world!"))
                .await
                .is_ok()
        {
            let _ = resp.finish().await;
        }
    }
}

struct Echo;

/// The value of `key` in a query string, percent-decoded.
fn query_value(query: &[u8], key: &str) -> Option<Vec<u8>> {
    query.split(|&b| b == b'&').find_map(|kv| {
        let rest = kv.strip_prefix(key.as_bytes())?.strip_prefix(b"=")?;
        Some(percent_decode(rest))
    })
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            s[i],
            s.get(i + 1).copied().and_then(hex),
            s.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| c as char).collect()
}

impl Handler for Echo {
    async fn handle(&self, mut req: Request, mut resp: Responder) {
        let mut hasher = Sha256::new();
        let mut length: u64 = 0;
        loop {
            match req.body.chunk().await {
                Ok(Some(chunk)) => {
                    length += chunk.len() as u64;
                    hasher.update(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::info!("echo: request body incomplete: {e}");
                    return;
                }
            }
        }
        let query = req.params.get(b"QUERY_STRING").unwrap_or_default().to_vec();
        let (head, body) = if let Some(n) = query_value(&query, "bytes") {
            let n: usize = std::str::from_utf8(&n)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let body: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let head = ResponseHead::new(200, "OK")
                .header("Content-Type", "application/octet-stream")
                .header("Content-Length", n.to_string());
            (head, Bytes::from(body))
        } else if let Some(status) = query_value(&query, "status") {
            let s = latin1(&status);
            let (code, reason) = s.split_once(' ').unwrap_or((&s, ""));
            let head = ResponseHead::new(code.parse().unwrap_or(500), reason.to_string())
                .header("Content-Type", "text/plain");
            (head, Bytes::from(format!("status {s}\n")))
        } else {
            let params: Vec<[String; 2]> = req
                .params
                .iter()
                .map(|(n, v)| [latin1(n), latin1(v)])
                .collect();
            let doc = serde_json::json!({
                "params": params,
                "body_length": length,
                "body_sha256": format!("{:x}", hasher.finalize()),
            });
            let body = serde_json::to_vec(&doc).expect("JSON of strings and numbers");
            let head = ResponseHead::new(200, "OK")
                .header("Content-Type", "application/json")
                .header("Content-Length", body.len().to_string());
            (head, Bytes::from(body))
        };
        if resp.start(head).await.is_err() {
            return;
        }
        // Large bodies go out in 64 KiB pieces, as a streaming application would send them.
        let mut rest = body;
        while !rest.is_empty() {
            let piece = rest.split_to(rest.len().min(64 * 1024));
            if resp.write(piece).await.is_err() {
                return;
            }
        }
        let _ = resp.finish().await;
    }
}
