//! Every option of ferrocgi, parsed and validated in one place.
//!
//! # Theory of operation
//!
//! Every way of starting ferrocgi hands its words to [`parse`], with the [`Command`] the host
//! describes it by: the `ferrocgi` console script forwards `sys.argv[1:]` (a command with an
//! APP), Django's `manage.py runfcgi key=value …` and `runfastcgi(argset, **kwargs)` forward
//! `key=value` words (no APP, Django's daemonize rule), `ferrocgi.serve()` and the pure-Rust
//! example theirs. So defaults, validation and error messages are the same everywhere; the
//! host only forwards strings, and adds its own options (`pythonpath`) as rows of the table.
//!
//! Parsing runs in four steps:
//!
//! 1. **Words to settings.** Each word is `--name VALUE`, `--name=VALUE`, Django's
//!    `name=VALUE`, a bare boolean name (`daemonize`, `--debug`: true), `help`/`--help`/`-h`,
//!    `--version`/`-V`, or the command's positional word (the Python CLI's APP). Names ignore case, dashes and underscores
//!    (`--max-body`, `max_body=`, `MAXREQUESTS=`, `--max-requests`). Help wins over any error
//!    elsewhere on the line, so `runfcgi port=http help` still prints help. In the CLI, a
//!    bare word is the APP unless it is `help` or a boolean option's name (write
//!    `debug:application` for a module named `debug`, or put the APP after `--`); `--debug`
//!    takes the next word as its value only if it is a boolean (`--debug false`). A value
//!    starting with `--` must be attached with `=` (`--ajp-secret=--x`).
//! 2. **Values to types**, by the setter in the option table (`table.rs`): booleans, octal
//!    modes, sizes, durations, addresses, users. Later words win; list options accumulate.
//! 3. **Environment.** `FERROCGI_<NAME>` fills options the arguments did not give. An address
//!    given as arguments (host/port/socket/fd) replaces the environment's whole address, so
//!    `FERROCGI_SOCKET` does not collide with `port=` on the command line. flup's
//!    `FCGI_WEB_SERVER_ADDRS` is the last fallback for `allow_from`.
//! 4. **Defaults that depend on other options** (`daemonize`, `threads`), then
//!    [`Options::validate`]: every range and cross-field rule, one line per problem.
//!
//! Errors are [`OptionsError`]; its `Display` is the one line to print, and the caller exits
//! with status 2 having started nothing.
//!
//! # Why a table and not clap
//!
//! The obvious choice is clap, after rewriting `key=value` words into flags. This parser is a
//! small table instead, because clap fought the requirements at each step:
//!
//! * clap's `env` feature reads the process environment itself; the environment must be a
//!   parameter here ([`parse_with_env`]) so tests and embedders stay hermetic.
//! * clap's errors are multi-line (usage, tip, "For more information"), not the one line
//!   `ferrocgi: option 'port': "http" is not a port number (example: port=3033)` that Django's
//!   command, `runfastcgi()` and the CLI must all print.
//! * Django words need a tri-state `daemonize` (unset has a meaning), bare boolean words,
//!   case-insensitive keys, and help that wins over errors; each is a workaround in clap.
//! * The same table drives the environment variables, `--help` and the tests, which iterate
//!   it to check that every option is documented and reachable by every spelling.
//!
//! # Chosen rules
//!
//! * `port` without `host` listens on 127.0.0.1. Django refused that combination, so no
//!   working command changes meaning; loopback is the safe guess (the web server is usually on
//!   the same machine). Say `host=0.0.0.0` or `host=::` to listen on every interface.
//! * `daemonize` unset: a command with [`Command::detach_when_addressed`] (Django's) detaches
//!   iff host/port or socket is given (an inherited `fd` does not count); others stay in the
//!   foreground.
//! * `threads` unset: prefork → 1 per worker; threaded → `maxchildren` if it was given (in
//!   Django, maxchildren was the threaded server's thread limit), else 16.
//! * `max_body` defaults to 1 GiB (413 past it; `max_body=unlimited` lifts it): a safe bound
//!   that still takes real uploads, since bodies past `spool_threshold` go to disk.
//! * `umask` also sets the Unix socket's mode (`0o777 & !umask`) unless `socket_mode` is
//!   given: Django did not, which broke the classic guide's `umask=002` recipe for the web server's
//!   group.
//! * Relative paths (socket, pidfile, logs, workdir, pythonpath, reload_on) are made absolute
//!   against the directory ferrocgi was started in by [`parse`] ([`Options::resolve_paths`]):
//!   Django wrote `pidfile=django.pid` after changing to `workdir=/`.

mod command;
mod parse;
mod table;
mod validate;
mod values;

#[cfg(test)]
mod tests;

pub use command::{Command, HostOption, Positional, PLAIN};
pub use parse::{parse, parse_with_env};
pub use values::{
    non_empty, parse_bool, parse_duration, parse_octal, parse_size, Account, SocketOwner,
};

use crate::config::{
    ServerConfig, DEFAULT_GRACEFUL_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_IN_FLIGHT,
};
pub use crate::listener::IpNet;
use crate::listener::{BindAddr, UnixSocketOptions};
use crate::protocol::Protocol;
use bytes::Bytes;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;
use table::OPTIONS;

/// ferrocgi's version, for [`Parsed::Version`].
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Default `threads` for `method=threaded` when `maxchildren` is not given.
pub const DEFAULT_THREADED_THREADS: usize = 16;
/// Default `max_body`: 1 GiB.
pub const DEFAULT_MAX_BODY: u64 = 1 << 30;
/// Default `spool_threshold`: 1 MiB.
pub const DEFAULT_SPOOL_THRESHOLD: u64 = 1 << 20;
/// Longest Unix socket path (`sun_path` is 108 bytes with the terminating NUL on Linux).
pub const MAX_SOCKET_PATH: usize = 107;
/// Range of `ajp_packet_size`.
pub const AJP_PACKET_SIZES: std::ops::RangeInclusive<usize> =
    ferrocgi_proto::ajp13::limits::DEFAULT_MAX_PACKET
        ..=ferrocgi_proto::ajp13::limits::MAX_PACKET_LIMIT;

/// `method=`: how requests are spread over processes and threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// A supervisor and forked worker processes (`prefork`, `fork`).
    #[default]
    Prefork,
    /// One process with a pool of Python threads (`threaded`, `thread`).
    Threaded,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Prefork => "prefork",
            Method::Threaded => "threaded",
        })
    }
}

/// `log_level=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// Start, stop and notable events.
    #[default]
    Info,
    /// Per-request detail.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The matching `tracing` level.
    pub fn level(self) -> tracing::Level {
        match self {
            LogLevel::Error => tracing::Level::ERROR,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Trace => tracing::Level::TRACE,
        }
    }
}

pub(crate) fn parse_protocol(s: &str) -> Result<Protocol, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "fcgi" | "fastcgi" => Ok(Protocol::Fastcgi),
        "scgi" => Ok(Protocol::Scgi),
        "ajp" | "ajp13" => Ok(Protocol::Ajp13),
        _ => Err(format!("{s:?} is not fcgi, scgi or ajp")),
    }
}

pub(crate) fn parse_method(s: &str) -> Result<Method, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "prefork" | "fork" => Ok(Method::Prefork),
        "threaded" | "thread" => Ok(Method::Threaded),
        _ => Err(format!("{s:?} is not prefork or threaded")),
    }
}

pub(crate) fn parse_log_level(s: &str) -> Result<LogLevel, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "error" => Ok(LogLevel::Error),
        "warn" | "warning" => Ok(LogLevel::Warn),
        "info" => Ok(LogLevel::Info),
        "debug" => Ok(LogLevel::Debug),
        "trace" => Ok(LogLevel::Trace),
        _ => Err(format!("{s:?} is not error, warn, info, debug or trace")),
    }
}

/// Every option, typed. `Default` gives the documented defaults (for Django's runfcgi: with no
/// address); [`parse`] also resolves `daemonize` and `threads`, whose defaults depend on other
/// options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    // ---- Django runfcgi ----
    /// `protocol`: what the web server speaks.
    pub protocol: Protocol,
    /// `host`: address to listen on (with `port`).
    pub host: Option<IpAddr>,
    /// `port`: TCP port; alone, it listens on 127.0.0.1.
    pub port: Option<u16>,
    /// `socket`: Unix socket path.
    pub socket: Option<PathBuf>,
    /// `method`: prefork or threaded.
    pub method: Method,
    /// `maxrequests`: requests a prefork worker serves before it is replaced; 0 = no limit.
    pub maxrequests: u64,
    /// `maxspare`: most idle workers.
    pub maxspare: usize,
    /// `minspare`: fewest idle workers.
    pub minspare: usize,
    /// `maxchildren`: most worker processes (prefork) or threads (threaded).
    pub maxchildren: usize,
    /// `daemonize`, resolved (see [`Command::detach_when_addressed`]).
    pub daemonize: bool,
    /// `pidfile`.
    pub pidfile: Option<PathBuf>,
    /// `workdir`: directory to change to when detaching.
    pub workdir: PathBuf,
    /// `debug`: tracebacks in error pages.
    pub debug: bool,
    /// `outlog`: stdout when detached.
    pub outlog: Option<PathBuf>,
    /// `errlog`: stderr when detached.
    pub errlog: Option<PathBuf>,
    /// `umask` (also the Unix socket's mode unless `socket_mode` is set).
    pub umask: u32,
    // ---- ferrocgi ----
    /// The command's positional word (the Python CLI's APP), checked by the command.
    pub positional: Option<String>,
    /// The values of the command's own options, by canonical name, in the order given.
    pub host_options: Vec<(&'static str, String)>,
    /// `fd`: an inherited listening socket.
    pub fd: Option<RawFd>,
    /// `script_name`: forced SCRIPT_NAME (mount prefix); `None` = as the web server sends it.
    pub script_name: Option<String>,
    /// `log_level`.
    pub log_level: LogLevel,
    /// `socket_mode`: overrides the mode `umask` gives the Unix socket.
    pub socket_mode: Option<u32>,
    /// `socket_owner`.
    pub socket_owner: Option<SocketOwner>,
    /// `multiplex`: FastCGI FCGI_MPXS_CONNS.
    pub multiplex: bool,
    /// `ajp_secret`.
    pub ajp_secret: Option<String>,
    /// `ajp_secret_file`: the file and the secret read from it.
    pub ajp_secret_file: Option<(PathBuf, String)>,
    /// `ajp_packet_size` (8192..=65536).
    pub ajp_packet_size: usize,
    /// `ajp_lighttpd_compat`.
    pub ajp_lighttpd_compat: bool,
    /// `reload_on`: files whose change triggers a graceful reload.
    pub reload_on: Vec<PathBuf>,
    /// `allow_from`: peers allowed to connect; empty = anyone.
    pub allow_from: Vec<IpNet>,
    /// `access_log`: a file, or `-` for stderr; `None`: no access log.
    pub access_log: Option<PathBuf>,
    /// `access_log_format` ([`crate::access::DEFAULT_FORMAT`] unless given).
    pub access_log_format: crate::access::Format,
    /// `log_format=json`: the server's log lines and the access lines as JSON objects.
    pub log_json: bool,
    /// `status_path`.
    pub status_path: Option<String>,
    /// `ping_path`.
    pub ping_path: Option<String>,
    /// `status_allow_from`; `None`: as `allow_from`.
    pub status_allow_from: Option<Vec<IpNet>>,
    // ---- process model ----
    /// `threads`: Python threads per process, resolved (see the module doc).
    pub threads: usize,
    /// `user` to switch to after binding.
    pub user: Option<Account>,
    /// `group` to switch to after binding.
    pub group: Option<Account>,
    /// `graceful_timeout`.
    pub graceful_timeout: Duration,
    /// `maxrequests_jitter`: each process's `maxrequests` is raised by a random 0..=N.
    pub maxrequests_jitter: u64,
    /// `max_rss`: resident memory past which a process is replaced after its request; `None`
    /// = no limit.
    pub max_rss: Option<u64>,
    // ---- limits ----
    /// `max_body`: largest request body (413 past it); `None` = unlimited.
    pub max_body: Option<u64>,
    /// `spool_threshold`: bodies larger than this go to a temporary file.
    pub spool_threshold: u64,
    /// `max_connections`.
    pub max_connections: usize,
    /// `max_in_flight`: concurrent requests (FCGI_OVERLOADED / 503 past it).
    pub max_in_flight: usize,
    /// `backlog`: listen() backlog.
    pub backlog: i32,
    /// `max_params_bytes`: FastCGI params / SCGI headers of one request.
    pub max_params_bytes: usize,
    /// `max_params`: params / headers in one request.
    pub max_params: usize,
    /// `request_timeout`; `None` = no limit.
    pub request_timeout: Option<Duration>,
    /// `max_spool`: bytes all spooled bodies may take together, per process; `None` = no limit.
    pub max_spool: Option<u64>,
    /// `queue_timeout`: the longest a request waits for a Python thread; `None` = no limit.
    pub queue_timeout: Option<Duration>,
    /// `slow_request`: log requests slower than this; `None` = off.
    pub slow_request: Option<Duration>,
    /// `idle_timeout` of kept-alive connections; `None` = never.
    pub idle_timeout: Option<Duration>,
    /// `read_timeout`; `None` = never.
    pub read_timeout: Option<Duration>,
    /// `head_timeout`; `None` = never.
    pub head_timeout: Option<Duration>,
    /// `min_body_rate`, bytes a second; 0 = none.
    pub min_body_rate: u64,
    /// `write_timeout`; `None` = never.
    pub write_timeout: Option<Duration>,
}

impl Default for Options {
    // Note: if a default changes, update its row in `table.rs` (the `--help` text).
    fn default() -> Self {
        Options {
            protocol: Protocol::Fastcgi,
            host: None,
            port: None,
            socket: None,
            method: Method::Prefork,
            maxrequests: 0,
            maxspare: 5,
            minspare: 2,
            maxchildren: 50,
            daemonize: false,
            pidfile: None,
            workdir: PathBuf::from("/"),
            debug: false,
            outlog: None,
            errlog: None,
            umask: 0o022,
            positional: None,
            host_options: Vec::new(),
            fd: None,
            script_name: None,
            log_level: LogLevel::Info,
            socket_mode: None,
            socket_owner: None,
            multiplex: false,
            ajp_secret: None,
            ajp_secret_file: None,
            ajp_packet_size: ferrocgi_proto::ajp13::limits::DEFAULT_MAX_PACKET,
            ajp_lighttpd_compat: false,
            reload_on: Vec::new(),
            allow_from: Vec::new(),
            access_log: None,
            access_log_format: crate::access::Format::default(),
            log_json: false,
            status_path: None,
            ping_path: None,
            status_allow_from: None,
            threads: 1,
            user: None,
            group: None,
            graceful_timeout: DEFAULT_GRACEFUL_TIMEOUT,
            maxrequests_jitter: 0,
            max_rss: None,
            max_body: Some(DEFAULT_MAX_BODY),
            spool_threshold: DEFAULT_SPOOL_THRESHOLD,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            backlog: crate::listener::DEFAULT_BACKLOG,
            max_params_bytes: ferrocgi_proto::fastcgi::limits::MAX_PARAMS_BYTES,
            max_params: ferrocgi_proto::fastcgi::limits::MAX_PARAMS_PAIRS,
            request_timeout: None,
            queue_timeout: Some(Duration::from_secs(30)),
            max_spool: Some(2 << 30),
            slow_request: None,
            idle_timeout: Some(Duration::from_secs(60)),
            read_timeout: Some(Duration::from_secs(60)),
            head_timeout: Some(crate::config::DEFAULT_HEAD_TIMEOUT),
            min_body_rate: crate::config::DEFAULT_MIN_BODY_RATE,
            write_timeout: Some(Duration::from_secs(60)),
        }
    }
}

/// What the words asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Serve with these options.
    Run(Box<Options>),
    /// Print this text to stdout and exit 0 (`help`, `--help`, `-h`).
    Help(String),
    /// Print `ferrocgi VERSION` and exit 0 (`--version`, `-V`).
    Version,
}

/// A problem with the options. `Display` is the one line to print; then exit with status 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// A value that does not parse or breaks a rule.
    #[error("ferrocgi: option '{option}'{}: {problem} (example: {example})", from_env(.env))]
    Invalid {
        /// Canonical option name.
        option: &'static str,
        /// The environment variable the value came from, if not from the arguments.
        env: Option<String>,
        /// What is wrong.
        problem: String,
        /// A valid setting.
        example: &'static str,
    },
    /// `--port` (or `port` as a bare Django word) with no value.
    #[error("ferrocgi: option '{option}' needs a value (example: {example})")]
    MissingValue {
        /// Canonical option name.
        option: &'static str,
        /// A valid setting.
        example: &'static str,
    },
    /// A name that is no option.
    #[error("ferrocgi: unknown option '{given}' (did you mean '{suggestion}'?)")]
    Unknown {
        /// The name as written (`--prot`, `prot`).
        given: String,
        /// The closest option, spelled the same way.
        suggestion: String,
    },
    /// The command's positional word is missing; the command's line.
    #[error("{0}")]
    MissingPositional(&'static str),
    /// The command refused its positional word; its line.
    #[error("{0}")]
    BadPositional(String),
    /// A word that has no place here.
    #[error("ferrocgi: unexpected argument {given:?}: {why}")]
    Unexpected {
        /// The word.
        given: String,
        /// Why it is refused.
        why: &'static str,
    },
}

/// A single-option problem, with the option's example from the table.
fn bad(option: &'static str, problem: impl Into<String>) -> OptionsError {
    let spec = &OPTIONS[table::lookup(option).expect("validate names table options")];
    invalid(spec.name, problem, spec.example)
}

fn from_env(env: &Option<String>) -> String {
    env.as_ref()
        .map(|v| format!(" (from {v})"))
        .unwrap_or_default()
}

fn invalid(
    option: &'static str,
    problem: impl Into<String>,
    example: &'static str,
) -> OptionsError {
    OptionsError::Invalid {
        option,
        env: None,
        problem: problem.into(),
        example,
    }
}

impl Options {
    /// Where to listen; `None` means the listening socket inherited as fd 0
    /// (FCGI_LISTENSOCK_FILENO), as Django did when given no address.
    pub fn bind_addr(&self) -> Option<BindAddr> {
        if let Some(fd) = self.fd {
            return Some(BindAddr::Fd(fd));
        }
        if let Some(path) = &self.socket {
            return Some(BindAddr::Unix(path.clone()));
        }
        let port = self.port?;
        let host = self.host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        Some(BindAddr::Tcp(SocketAddr::new(host, port)))
    }

    /// The Unix socket's mode and owner. The mode is `socket_mode`, else `0o777 & !umask`
    /// (what `bind()` gives under that umask, made explicit so it holds whatever the process
    /// umask is when binding).
    pub fn unix_socket_options(&self) -> UnixSocketOptions {
        UnixSocketOptions {
            mode: Some(self.socket_mode.unwrap_or(0o777 & !self.umask)),
            owner: self.socket_owner.as_ref().map(|o| {
                (
                    o.user.as_ref().map(|a| a.id),
                    o.group.as_ref().map(|a| a.id),
                )
            }),
        }
    }

    /// The serving core's configuration.
    pub fn server_config(&self) -> ServerConfig {
        let mut c = ServerConfig::new(self.protocol);
        c.fastcgi.multiplex = self.multiplex;
        c.fastcgi.max_params_bytes = self.max_params_bytes;
        c.fastcgi.max_conns = u32::try_from(self.max_connections).unwrap_or(u32::MAX);
        c.fastcgi.max_reqs = u32::try_from(self.max_in_flight).unwrap_or(u32::MAX);
        c.scgi.max_header_bytes = self.max_params_bytes;
        c.fastcgi.max_params_pairs = self.max_params;
        c.scgi.max_header_pairs = self.max_params;
        c.ajp.max_headers = self.max_params;
        c.ajp.max_packet = self.ajp_packet_size;
        c.ajp.lighttpd_body_compat = self.ajp_lighttpd_compat;
        c.ajp_secret = self
            .ajp_secret
            .as_ref()
            .or(self.ajp_secret_file.as_ref().map(|(_, s)| s))
            .map(|s| Bytes::from(s.clone().into_bytes()));
        c.max_connections = self.max_connections;
        c.max_in_flight = self.max_in_flight;
        c.graceful_timeout = self.graceful_timeout;
        c.allow_from = self.allow_from.clone();
        c.idle_timeout = self.idle_timeout;
        c.read_timeout = self.read_timeout;
        c.head_timeout = self.head_timeout;
        c.min_body_rate = self.min_body_rate;
        c.write_timeout = self.write_timeout;
        c.status = crate::status::StatusConfig {
            status_path: self.status_path.clone(),
            ping_path: self.ping_path.clone(),
            allow: match &self.status_allow_from {
                Some(list) => Some(list.clone()),
                None if self.allow_from.is_empty() => None,
                None => Some(self.allow_from.clone()),
            },
        };
        c
    }

    /// Makes relative paths absolute against `base` (the directory ferrocgi started in), so
    /// that detaching to `workdir` does not move them. [`parse`] calls it.
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        self.socket.as_mut().map(fix);
        self.pidfile.as_mut().map(fix);
        self.outlog.as_mut().map(fix);
        self.errlog.as_mut().map(fix);
        self.access_log
            .as_mut()
            .filter(|p| p.as_os_str() != "-")
            .map(fix);
        fix(&mut self.workdir);
        self.reload_on.iter_mut().for_each(fix);
    }
}

/// The `--help` text for a command: its usage, every option by group with its default and
/// meaning (the command's own among them), and its examples.
pub fn help_text(command: &Command) -> String {
    table::help_text(command)
}

impl Options {
    /// The values given for one of the command's own options, in order.
    pub fn host_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.host_options
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every option's canonical name (the Django spelling), e.g. for the Python side to check
/// `runfastcgi()` keywords early.
pub fn option_names() -> impl Iterator<Item = &'static str> {
    OPTIONS.iter().map(|s| s.name)
}
