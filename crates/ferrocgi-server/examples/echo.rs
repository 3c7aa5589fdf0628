//! A pure-Rust application for ferrocgi: the ceiling for benchmarks, the backend of the
//! end-to-end tests, and an example of embedding the server without Python: it starts through
//! the same launcher as the Python host ([`launch::launch`]), so the process models, the daemon
//! mode, the pid file and the reload work for it too.
//!
//! Apps:
//! * `echo` (default): a JSON document with the params exactly as received (order and
//!   duplicates kept, bytes as latin-1) and the length and SHA-256 of the body read. With
//!   `?bytes=N` it answers N bytes (byte i = i % 251); with `?status=404%20Custom` that status.
//! * `hello`: `Hello, world!` (13 bytes).
//!
//! ```text
//! cargo run --example echo -- --protocol fcgi --bind 127.0.0.1:9000
//! cargo run --example echo -- --app hello --socket /tmp/echo.sock -- method=prefork maxchildren=4
//! ```

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use ferrocgi_server::options::{self, Command, Options, Parsed};
use ferrocgi_server::process::daemon::Forked;
use ferrocgi_server::process::launch::{self, AppHost, OnWedged, Role, Serving};
use ferrocgi_server::{Handler, Request, Responder, ResponseHead};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Protocol {
    Fcgi,
    Scgi,
    Ajp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum App {
    Echo,
    Hello,
}

/// ferrocgi's pure-Rust echo/hello application server. Words after `--` are ferrocgi options
/// (`ferrocgi help`), applied after the flags: `-- method=prefork maxchildren=4 daemonize
/// pidfile=/run/echo.pid`. Without them it is one process (method=threaded).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Protocol spoken to the web server.
    #[arg(long, value_enum, default_value = "fcgi")]
    protocol: Protocol,
    /// TCP address to listen on, e.g. 127.0.0.1:9000 or [::1]:9000 (the default when no
    /// address is given at all).
    #[arg(long, conflicts_with_all = ["socket", "fd"])]
    bind: Option<std::net::SocketAddr>,
    /// Unix socket path to listen on.
    #[arg(long, conflicts_with = "fd")]
    socket: Option<PathBuf>,
    /// Inherited listening socket to serve (0 when spawned by a web server).
    #[arg(long)]
    fd: Option<i32>,
    /// Permission bits for the Unix socket file, octal (e.g. 660).
    #[arg(long)]
    socket_mode: Option<String>,
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
    /// Runtime threads per process (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// ferrocgi options as name=value words, after `--`.
    #[arg(last = true)]
    options: Vec<String>,
}

/// The option words for these flags, then the words given after `--` (the last word wins).
fn words(args: &Args) -> Vec<String> {
    let protocol = match args.protocol {
        Protocol::Fcgi => "fcgi",
        Protocol::Scgi => "scgi",
        Protocol::Ajp => "ajp",
    };
    let mut w = vec![
        "method=threaded".to_string(),
        format!("protocol={protocol}"),
        format!("ajp_packet_size={}", args.ajp_max_packet),
        format!("ajp_lighttpd_compat={}", args.ajp_lighttpd_compat),
        format!("multiplex={}", args.multiplex),
        format!("max_in_flight={}", args.max_in_flight),
        format!("log_level={}", args.log_level),
    ];
    let addressed = args.options.iter().any(|o| {
        ["host=", "port=", "socket=", "fd="]
            .iter()
            .any(|p| o.starts_with(p))
    });
    match (&args.bind, &args.socket, args.fd) {
        (Some(a), _, _) => w.extend([format!("host={}", a.ip()), format!("port={}", a.port())]),
        (_, Some(p), _) => w.push(format!("socket={}", p.display())),
        (_, _, Some(fd)) => w.push(format!("fd={fd}")),
        _ if !addressed => w.extend(["host=127.0.0.1".into(), "port=9000".into()]),
        _ => {}
    }
    w.extend(args.socket_mode.iter().map(|m| format!("socket_mode={m}")));
    w.extend(args.ajp_secret.iter().map(|s| format!("ajp_secret={s}")));
    w.extend(args.options.iter().cloned());
    w
}

/// The words of this program: options only (the application is chosen by `--app`).
static ECHO: Command = Command {
    usage: "Usage: echo [FLAGS] -- [OPTIONS]\n\n\
            ferrocgi's pure-Rust echo/hello application, served with the server's options.\n",
    ..options::PLAIN
};

fn main() {
    let args = Args::parse();
    let opts = match options::parse(words(&args), &ECHO) {
        Ok(Parsed::Run(opts)) => opts,
        Ok(Parsed::Help(text)) => {
            println!("{text}");
            return;
        }
        Ok(Parsed::Version) => {
            println!("ferrocgi {}", options::VERSION);
            return;
        }
        Err(e) => {
            eprintln!("echo: {e}");
            std::process::exit(2);
        }
    };
    let host = RustHost {
        app: args.app,
        io_threads: args.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        }),
    };
    std::process::exit(launch::launch(&opts, &host));
}

/// The pure-Rust host: nothing to load, a plain fork, the handler on the runtime's threads.
struct RustHost {
    app: App,
    io_threads: usize,
}

/// The handler: one of the two applications.
enum Apps {
    Echo(Echo),
    Hello(Hello),
}

impl Handler for Apps {
    async fn handle(&self, req: Request, resp: Responder) {
        match self {
            Apps::Echo(a) => a.handle(req, resp).await,
            Apps::Hello(a) => a.handle(req, resp).await,
        }
    }
}

impl AppHost for RustHost {
    type Handler = Apps;

    fn fork(&self) -> std::io::Result<Forked> {
        // SAFETY: called before any runtime or thread is started in this process (the
        // launcher forks from its single-threaded supervisor), so the child may run anything.
        match unsafe { nix::unistd::fork() }.map_err(std::io::Error::from)? {
            nix::unistd::ForkResult::Child => Ok(Forked::Child),
            nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw())),
        }
    }

    fn load(&self) -> bool {
        true
    }

    fn start(
        &self,
        opts: &Options,
        role: Role,
        _on_wedged: OnWedged,
    ) -> std::io::Result<Serving<Apps>> {
        let handler = match self.app {
            App::Echo => Apps::Echo(Echo),
            App::Hello => Apps::Hello(Hello),
        };
        Ok(Serving {
            handler,
            io_threads: if role == Role::Cgi {
                0
            } else {
                self.io_threads
            },
            wait_ended: Box::new(|_| true),
            app_threads: 0,
            concurrency: opts.threads,
            wait_before_reload: false,
        })
    }

    fn unlocked<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        f()
    }
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
