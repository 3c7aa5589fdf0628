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
mod table;
mod values;

#[cfg(test)]
mod tests;

pub use command::{Command, HostOption, Positional, PLAIN};
pub use values::{
    non_empty, parse_bool, parse_duration, parse_octal, parse_size, Account, SocketOwner,
};

use crate::handler::Protocol;
pub use crate::listener::IpNet;
use crate::listener::{BindAddr, UnixSocketOptions};
use crate::server::{
    ServerConfig, DEFAULT_GRACEFUL_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_IN_FLIGHT,
};
use bytes::Bytes;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;
use table::{Kind, Row, Table, OPTIONS};

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
    // ---- process model ----
    /// `threads`: Python threads per process, resolved (see the module doc).
    pub threads: usize,
    /// `user` to switch to after binding.
    pub user: Option<Account>,
    /// `group` to switch to after binding.
    pub group: Option<Account>,
    /// `graceful_timeout`.
    pub graceful_timeout: Duration,
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
            threads: 1,
            user: None,
            group: None,
            graceful_timeout: DEFAULT_GRACEFUL_TIMEOUT,
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
            head_timeout: Some(crate::server::DEFAULT_HEAD_TIMEOUT),
            min_body_rate: crate::server::DEFAULT_MIN_BODY_RATE,
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

/// Parses the words of any entry point, with the process environment (`FERROCGI_*`) as
/// fallback, and makes relative paths absolute against the current directory.
///
/// Non-UTF-8 environment variables are skipped.
pub fn parse<I, S>(args: I, command: &Command) -> Result<Parsed, OptionsError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let mut parsed = parse_with_env(args, env, command)?;
    if let (Parsed::Run(o), Ok(cwd)) = (&mut parsed, std::env::current_dir()) {
        o.resolve_paths(&cwd);
    }
    Ok(parsed)
}

/// [`parse`] with an explicit environment (pairs of name and value) and no path resolution.
/// Arguments take precedence over the environment; empty variables count as unset; unknown
/// `FERROCGI_*` variables are ignored (other parts of ferrocgi may define their own).
pub fn parse_with_env<I, S, E, K, V>(
    args: I,
    env: E,
    command: &Command,
) -> Result<Parsed, OptionsError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
    E: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let words: Vec<String> = args.into_iter().map(|s| s.as_ref().to_string()).collect();
    let table = Table { command };
    let scan = scan_words(&words, table);
    if scan.help {
        return Ok(Parsed::Help(help_text(command)));
    }
    if scan.version {
        return Ok(Parsed::Version);
    }
    if let Some(e) = scan.error {
        return Err(e);
    }

    let mut o = Options::default();
    let mut given = vec![false; table.len()];
    for (idx, value) in &scan.settings {
        apply(&mut o, table.row(*idx), value, None)?;
        given[*idx] = true;
    }

    // The environment fills what the arguments left unset.
    let addr_from_args = scan.settings.iter().any(|(i, _)| table.row(*i).addr());
    let mut from_env: Vec<(usize, String, String)> = Vec::new();
    let mut web_server_addrs = None;
    for (k, v) in env {
        let (k, v) = (k.as_ref(), v.as_ref());
        if v.is_empty() {
            continue;
        }
        if k == "FCGI_WEB_SERVER_ADDRS" {
            web_server_addrs = Some(v.to_string());
        } else if let Some(idx) = k.strip_prefix("FERROCGI_").and_then(|n| table.lookup(n)) {
            from_env.push((idx, v.to_string(), k.to_string()));
        }
    }
    from_env.sort_by_key(|(idx, _, _)| *idx);
    for (idx, value, var) in from_env {
        let row = table.row(idx);
        if given[idx] || (row.addr() && addr_from_args) {
            continue;
        }
        if matches!(row.kind(), Kind::List { .. }) {
            clear_list(&mut o, row);
        }
        apply(&mut o, row, &value, Some(var))?;
        given[idx] = true;
    }
    let allow_idx = table::lookup("allow_from").expect("allow_from is in the table");
    if given[allow_idx] && o.socket.is_some() {
        // Silently ignoring it would leave the operator believing in a guard that is not there.
        return Err(bad(
            "allow_from",
            "applies to TCP peers only; a Unix socket is guarded by its mode and owner (socket_mode=660 socket_owner=USER:GROUP)",
        ));
    }
    if let (Some(v), false) = (web_server_addrs, given[allow_idx]) {
        let row = table.row(allow_idx);
        apply(&mut o, row, &v, Some("FCGI_WEB_SERVER_ADDRS".into()))?;
    }

    o.positional = positional(command, &scan.apps)?;

    // Defaults that depend on other options.
    let was_given = |name: &str| given[table::lookup(name).expect("option in the table")];
    if !was_given("daemonize") {
        o.daemonize = command.detach_when_addressed
            && (o.host.is_some() || o.port.is_some() || o.socket.is_some());
    }
    if !was_given("threads") {
        o.threads = match o.method {
            Method::Prefork => 1,
            Method::Threaded if was_given("maxchildren") => o.maxchildren,
            Method::Threaded => DEFAULT_THREADED_THREADS,
        };
    }

    o.validate()?;
    Ok(Parsed::Run(Box::new(o)))
}

/// The command's positional word, checked; at most one.
fn positional(command: &Command, words: &[String]) -> Result<Option<String>, OptionsError> {
    let Some(p) = &command.positional else {
        return match words.first() {
            Some(word) => Err(OptionsError::Unexpected {
                given: word.clone(),
                why: command.no_positional,
            }),
            None => Ok(None),
        };
    };
    match words {
        [] => Err(OptionsError::MissingPositional(p.missing)),
        [word] => (p.check)(word)
            .map(|()| Some(word.clone()))
            .map_err(OptionsError::BadPositional),
        [_, extra, ..] => Err(OptionsError::Unexpected {
            given: extra.clone(),
            why: "only one APP may be given",
        }),
    }
}

/// Empties a list option before the environment's value replaces it.
fn clear_list(o: &mut Options, row: Row<'_>) {
    match row {
        Row::Server(s) if s.name == "reload_on" => o.reload_on.clear(),
        Row::Server(s) if s.name == "allow_from" => o.allow_from.clear(),
        Row::Server(_) => {}
        Row::Host(h) => o.host_options.retain(|(name, _)| *name != h.name),
    }
}

/// Runs an option's setter; list options get one call per separated piece.
fn apply(
    o: &mut Options,
    row: Row<'_>,
    value: &str,
    env: Option<String>,
) -> Result<(), OptionsError> {
    let result = match row.kind() {
        Kind::List { sep } => {
            let pieces: Vec<&str> = value.split(sep).filter(|p| !p.trim().is_empty()).collect();
            if pieces.is_empty() {
                row.set(o, "")
            } else {
                pieces.into_iter().try_for_each(|p| row.set(o, p.trim()))
            }
        }
        Kind::Flag | Kind::Value => row.set(o, value),
    };
    result.map_err(|problem| OptionsError::Invalid {
        option: row.name(),
        env,
        problem,
        example: row.example(),
    })
}

/// Step 1: words to (option, raw value) pairs. Records the first error but keeps scanning,
/// so that `help` anywhere still wins.
#[derive(Default)]
struct Scan {
    settings: Vec<(usize, String)>,
    apps: Vec<String>,
    help: bool,
    version: bool,
    error: Option<OptionsError>,
}

fn scan_words(words: &[String], table: Table<'_>) -> Scan {
    let mut scan = Scan::default();
    let mut i = 0;
    let mut rest = false;
    while i < words.len() {
        let w = words[i].as_str();
        i += 1;
        if rest {
            scan.apps.push(w.to_string());
            continue;
        }
        match w {
            "--" => {
                rest = true;
                continue;
            }
            "-h" | "--help" => {
                scan.help = true;
                continue;
            }
            "-V" | "--version" => {
                scan.version = true;
                continue;
            }
            _ => {}
        }
        if let Some(body) = w.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            if table::norm(name) == "help" {
                scan.help = true;
                continue;
            }
            let Some(idx) = table.lookup(name) else {
                fail(
                    &mut scan,
                    OptionsError::Unknown {
                        given: format!("--{name}"),
                        suggestion: table.closest(name).flag(),
                    },
                );
                continue;
            };
            let row = table.row(idx);
            let value = match (inline, row.kind()) {
                (Some(v), _) => v.to_string(),
                // `--debug` alone is true; `--debug false` takes the next word only when it
                // is a boolean, so `--debug mysite.wsgi` keeps its APP.
                (None, Kind::Flag) => match words.get(i) {
                    Some(next) if values::parse_bool(next).is_some() => {
                        i += 1;
                        next.clone()
                    }
                    _ => "true".to_string(),
                },
                (None, _) => match words.get(i) {
                    Some(next) if !next.starts_with("--") => {
                        i += 1;
                        next.clone()
                    }
                    _ => {
                        fail(
                            &mut scan,
                            OptionsError::MissingValue {
                                option: row.name(),
                                example: row.example(),
                            },
                        );
                        continue;
                    }
                },
            };
            scan.settings.push((idx, value));
        } else if w.len() > 1 && w.starts_with('-') {
            // Short flags other than -h and -V do not exist; suggest what other servers'
            // short flags usually mean.
            let name = match w.trim_start_matches('-') {
                "p" => "port",
                "s" => "socket",
                "b" | "H" => "host",
                "d" | "D" => "daemonize",
                "w" => "workdir",
                "t" => "threads",
                "u" => "user",
                "g" => "group",
                "m" => "method",
                other => other,
            };
            fail(
                &mut scan,
                OptionsError::Unknown {
                    given: w.to_string(),
                    suggestion: table.closest(name).flag(),
                },
            );
        } else if let Some((name, value)) = w.split_once('=') {
            match table.lookup(name) {
                Some(idx) => scan.settings.push((idx, value.to_string())),
                None => fail(
                    &mut scan,
                    OptionsError::Unknown {
                        given: name.to_string(),
                        suggestion: table.closest(name).name().to_string(),
                    },
                ),
            }
        } else if table::norm(w) == "help" {
            scan.help = true;
        } else {
            bare_word(&mut scan, w, table);
        }
    }
    scan
}

fn fail(scan: &mut Scan, e: OptionsError) {
    if scan.error.is_none() {
        scan.error = Some(e);
    }
}

/// A word without `=` or dashes: a boolean option (true), else the positional word if the
/// command takes one, else a mistake.
fn bare_word(scan: &mut Scan, w: &str, table: Table<'_>) {
    let takes_positional = table.command.positional.is_some();
    match table.lookup(w).map(|idx| (idx, table.row(idx))) {
        Some((idx, row)) if row.kind() == Kind::Flag => scan.settings.push((idx, "true".into())),
        // Django made a bare `port` mean port=True; here it is a missing value.
        Some((_, row)) if !takes_positional => fail(
            scan,
            OptionsError::MissingValue {
                option: row.name(),
                example: row.example(),
            },
        ),
        _ if takes_positional => scan.apps.push(w.to_string()),
        None if w.contains(['.', ':', '/']) => fail(
            scan,
            OptionsError::Unexpected {
                given: w.to_string(),
                why: table.command.no_positional,
            },
        ),
        _ => fail(
            scan,
            OptionsError::Unknown {
                given: w.to_string(),
                suggestion: table.closest(w).name().to_string(),
            },
        ),
    }
}

impl Options {
    /// Checks every range and cross-field rule; the first problem is the error. [`parse`]
    /// calls it; call it yourself after building or changing `Options` in Rust.
    pub fn validate(&self) -> Result<(), OptionsError> {
        // One field at a time, in `--help` order.
        if self.ajp_secret.is_some() && self.ajp_secret_file.is_some() {
            return Err(bad(
                "ajp_secret_file",
                "give ajp_secret or ajp_secret_file, not both".to_string(),
            ));
        }
        if let Some(sock) = &self.socket {
            let n = sock.as_os_str().len();
            if n > MAX_SOCKET_PATH {
                return Err(bad(
                    "socket",
                    format!(
                        "the path is {n} bytes; Unix socket paths are limited to {MAX_SOCKET_PATH}"
                    ),
                ));
            }
        }
        if self.maxchildren == 0 {
            return Err(bad("maxchildren", "must be at least 1"));
        }
        if let Some(s) = &self.script_name {
            let problem = if s.is_empty() {
                None
            } else if !s.starts_with('/') {
                Some(format!("{s:?} must start with '/'"))
            } else if s.ends_with('/') {
                Some(format!(
                    "{s:?} must not end with '/' (the site root is script_name= )"
                ))
            } else if s
                .contains(|c: char| c == '?' || c == '#' || c.is_whitespace() || c.is_control())
            {
                Some(format!(
                    "{s:?} must be a plain path (no '?', '#' or spaces)"
                ))
            } else {
                None
            };
            if let Some(p) = problem {
                return Err(bad("script_name", p));
            }
        }
        if !AJP_PACKET_SIZES.contains(&self.ajp_packet_size) {
            return Err(bad(
                "ajp_packet_size",
                format!(
                    "{} is not between {} and {}",
                    self.ajp_packet_size,
                    AJP_PACKET_SIZES.start(),
                    AJP_PACKET_SIZES.end()
                ),
            ));
        }
        if self.threads == 0 {
            return Err(bad("threads", "must be at least 1"));
        }
        for (name, v) in [
            ("max_connections", self.max_connections),
            ("max_in_flight", self.max_in_flight),
            ("backlog", usize::try_from(self.backlog).unwrap_or(0)),
        ] {
            if v == 0 {
                return Err(bad(name, "must be at least 1"));
            }
        }
        if self.max_params_bytes < 1024 {
            return Err(bad(
                "max_params_bytes",
                format!("{} is less than 1K", self.max_params_bytes),
            ));
        }
        if self.max_params < 16 {
            // Every front end sends a dozen CGI variables before any header.
            return Err(bad(
                "max_params",
                format!("{} is less than 16", self.max_params),
            ));
        }

        // Across fields.
        let tcp = self.host.is_some() || self.port.is_some();
        if self.fd.is_some() && (tcp || self.socket.is_some()) {
            return Err(invalid(
                "fd",
                "cannot be combined with host, port or socket",
                "fd=3, or socket=/tmp/mysite.sock, or host=127.0.0.1 port=3033",
            ));
        }
        if self.socket.is_some() && tcp {
            return Err(invalid(
                "socket",
                "cannot be combined with host or port",
                "socket=/tmp/mysite.sock, or host=127.0.0.1 port=3033",
            ));
        }
        if self.host.is_some() && self.port.is_none() {
            return Err(invalid(
                "host",
                "needs port too",
                "host=127.0.0.1 port=3033",
            ));
        }
        if self.socket.is_none() {
            if self.socket_mode.is_some() {
                return Err(invalid(
                    "socket_mode",
                    "applies only with socket",
                    "socket=/tmp/mysite.sock socket_mode=660",
                ));
            }
            if self.socket_owner.is_some() {
                return Err(invalid(
                    "socket_owner",
                    "applies only with socket",
                    "socket=/tmp/mysite.sock socket_owner=www-data",
                ));
            }
        }
        if self.minspare > self.maxspare {
            return Err(invalid(
                "minspare",
                format!("{} is more than maxspare={}", self.minspare, self.maxspare),
                "minspare=2 maxspare=5",
            ));
        }
        if self.maxspare > self.maxchildren {
            return Err(invalid(
                "maxspare",
                format!(
                    "{} is more than maxchildren={}",
                    self.maxspare, self.maxchildren
                ),
                "maxspare=5 maxchildren=50",
            ));
        }
        if self.method == Method::Threaded && self.threads > self.maxchildren {
            return Err(invalid(
                "threads",
                format!(
                    "{} is more than maxchildren={}, the thread limit of method=threaded",
                    self.threads, self.maxchildren
                ),
                "method=threaded threads=16 maxchildren=16",
            ));
        }
        Ok(())
    }

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
