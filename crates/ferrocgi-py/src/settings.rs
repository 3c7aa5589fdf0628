//! What the WSGI host is told by the options: per-request limits and the environ's
//! `ferrocgi.server` mapping. Its own module, so that `environ` and `host` both use it without
//! using each other.

use ferrocgi_server::options::{Method, Options};

/// Settings of the host (from the option set).
#[derive(Debug, Clone)]
pub struct HostSettings {
    /// `script_name=`: the public mount prefix.
    pub script_name: Option<String>,
    /// Bodies past this many bytes are spooled to a temporary file.
    pub spool_threshold: u64,
    /// Bodies past this many bytes are refused with 413.
    pub max_body: Option<u64>,
    /// Show tracebacks in 500 pages (never in production: it leaks source code).
    pub debug: bool,
    /// `wsgi.multithread`.
    pub multithread: bool,
    /// `wsgi.multiprocess`.
    pub multiprocess: bool,
    /// AJP `req_uri` arrives decoded (lighttpd) rather than encoded (Apache).
    pub ajp_path_decoded: bool,
    /// Log the Python stack of requests running longer than this.
    pub slow_request: Option<std::time::Duration>,
    /// Stop requests running longer than this (see [`crate::watchdog`]).
    pub request_timeout: Option<std::time::Duration>,
    /// `queue_timeout`: a job that waited longer for a thread is answered 503, not run.
    pub queue_timeout: Option<std::time::Duration>,
    /// `max_spool`: bytes all spooled request bodies may take together (`u64::MAX`: no limit).
    pub max_spool: u64,
    /// `environ["ferrocgi.server"]`: how this server runs.
    pub server: ServerInfo,
}

/// `environ["ferrocgi.server"]`, a read-only mapping: how the server runs, for pages and
/// diagnostics that say what serves them (the demo's home page, tests/recipes/mysite).
#[derive(Clone, Debug)]
pub struct ServerInfo {
    /// The protocol's option value: `fcgi`, `scgi`, `ajp`, `cgi`.
    pub protocol: &'static str,
    /// `threaded` or `prefork` (the `method` option).
    pub method: String,
    /// Python threads per process (the `threads` option).
    pub threads: usize,
    /// Worker processes at most: `maxchildren` under prefork, else 1.
    pub processes: usize,
    /// The `status_path` option (the server's own status page), if set.
    pub status_path: Option<String>,
    /// `wsgi` or `asgi`: how the application is called.
    pub interface: &'static str,
}

impl HostSettings {
    /// The settings for a process of `opts`; `multiprocess` for a prefork worker.
    pub fn from_options(opts: &Options, multiprocess: bool) -> HostSettings {
        HostSettings {
            script_name: opts.script_name.clone(),
            spool_threshold: opts.spool_threshold,
            max_body: opts.max_body,
            debug: opts.debug,
            multithread: opts.threads > 1,
            multiprocess,
            ajp_path_decoded: opts.ajp_lighttpd_compat,
            slow_request: opts.slow_request,
            request_timeout: opts.request_timeout,
            queue_timeout: opts.queue_timeout,
            max_spool: opts.max_spool.unwrap_or(u64::MAX),
            server: ServerInfo {
                protocol: opts.protocol.name(),
                method: opts.method.to_string(),
                threads: opts.threads,
                status_path: opts.status_path.clone(),
                interface: "wsgi",
                processes: if opts.method == Method::Prefork {
                    opts.maxchildren
                } else {
                    1
                },
            },
        }
    }
}
