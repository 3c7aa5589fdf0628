//! The option table: one row per option with its name, kind, default (as shown in `--help`),
//! meaning, example and setter. The parser, the environment reader, the help text and the
//! tests all iterate this one table.
//!
//! Note: the defaults written here are documentation; the values are in
//! `impl Default for Options` (mod.rs). If one changes, change the other (a test compares
//! them for the simple cases).

use super::command::{Command, HostOption};
use super::values::{self, Account, SocketOwner};
use super::Options;
use std::path::PathBuf;

/// The `--help` sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    Django,
    Ferrocgi,
    Process,
    Limits,
    Operations,
}

impl Group {
    pub(crate) const ALL: [Group; 5] = [
        Group::Django,
        Group::Ferrocgi,
        Group::Process,
        Group::Limits,
        Group::Operations,
    ];

    fn title(self) -> &'static str {
        match self {
            Group::Django => "Django runfcgi options (same words and defaults as Django's runfcgi)",
            Group::Ferrocgi => "ferrocgi options",
            Group::Process => "Process model",
            Group::Limits => "Limits and timeouts",
            Group::Operations => "Status page and logs",
        }
    }
}

/// How an option takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A boolean: a bare word or `--flag` means true.
    Flag,
    /// One value; the last one given wins.
    Value,
    /// May repeat; each value is also split on `sep`. Values accumulate.
    List { sep: char },
}

pub(crate) type Setter = fn(&mut Options, &str) -> Result<(), String>;

pub(crate) struct Spec {
    /// Canonical name, Django spelling (`maxrequests`, `max_body`).
    pub name: &'static str,
    pub group: Group,
    pub kind: Kind,
    /// The value's form in `--help`.
    pub metavar: &'static str,
    /// Default as shown in `--help` (`None`: see `default_for`).
    pub default: &'static str,
    pub help: &'static str,
    /// A valid `name=value` word, quoted in error messages.
    pub example: &'static str,
    /// Part of the listening address (host, port, socket, fd): an address given as arguments
    /// replaces the whole address from the environment.
    pub addr: bool,
    pub set: Setter,
}

impl Spec {
    pub(crate) fn default_for(&self, command: &Command) -> &'static str {
        match self.name {
            "daemonize" if command.detach_when_addressed => {
                "true if host/port or socket is given, else false"
            }
            "daemonize" => "false",
            _ => self.default,
        }
    }
}

/// A row of the one table: one of the server's options, or one of the command's.
#[derive(Clone, Copy)]
pub(crate) enum Row<'c> {
    Server(&'static Spec),
    Host(&'c HostOption),
}

impl Row<'_> {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Row::Server(s) => s.name,
            Row::Host(h) => h.name,
        }
    }

    pub(crate) fn kind(self) -> Kind {
        match self {
            Row::Server(s) => s.kind,
            Row::Host(h) => h.list.map_or(Kind::Value, |sep| Kind::List { sep }),
        }
    }

    pub(crate) fn example(self) -> &'static str {
        match self {
            Row::Server(s) => s.example,
            Row::Host(h) => h.example,
        }
    }

    /// Part of the listening address.
    pub(crate) fn addr(self) -> bool {
        matches!(self, Row::Server(s) if s.addr)
    }

    /// The long flag: `--` and the name with dashes.
    pub(crate) fn flag(self) -> String {
        format!("--{}", self.name().replace('_', "-"))
    }

    /// The environment variable: `FERROCGI_` and the name in upper case.
    pub(crate) fn env_var(self) -> String {
        format!("FERROCGI_{}", self.name().to_ascii_uppercase())
    }

    /// Sets one value (one piece of a list).
    pub(crate) fn set(self, o: &mut Options, value: &str) -> Result<(), String> {
        match self {
            Row::Server(s) => (s.set)(o, value),
            Row::Host(h) => {
                (h.check)(value)?;
                o.host_options.push((h.name, value.to_string()));
                Ok(())
            }
        }
    }
}

/// The rows of one command: the server's options (same indices as [`OPTIONS`]), then the
/// command's own.
#[derive(Clone, Copy)]
pub(crate) struct Table<'c> {
    pub command: &'c Command,
}

impl<'c> Table<'c> {
    pub(crate) fn len(self) -> usize {
        OPTIONS.len() + self.command.host_options.len()
    }

    pub(crate) fn row(self, idx: usize) -> Row<'c> {
        match OPTIONS.get(idx) {
            Some(s) => Row::Server(s),
            None => Row::Host(&self.command.host_options[idx - OPTIONS.len()]),
        }
    }

    pub(crate) fn rows(self) -> impl Iterator<Item = Row<'c>> {
        (0..self.len()).map(move |i| self.row(i))
    }

    pub(crate) fn lookup(self, name: &str) -> Option<usize> {
        let n = norm(name);
        self.rows().position(|r| norm(r.name()) == n)
    }

    /// The closest option name, for "did you mean": an option the word abbreviates (`prot` →
    /// `protocol`), else the one at the smallest edit distance.
    pub(crate) fn closest(self, name: &str) -> Row<'c> {
        let n = norm(name);
        if n.len() >= 3 {
            if let Some(r) = self.rows().find(|r| norm(r.name()).starts_with(&n)) {
                return r;
            }
        }
        self.rows()
            .min_by_key(|r| values::levenshtein(&n, &norm(r.name())))
            .expect("the option table is not empty")
    }
}

/// Lookup key: case-insensitive, dashes and underscores ignored (`--max-body`, `max_body=`,
/// `MAXBODY=` and `--max-requests` all name an option). Django lower-cased keys too.
pub(crate) fn norm(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '-' && *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

pub(crate) fn lookup(name: &str) -> Option<usize> {
    let n = norm(name);
    OPTIONS.iter().position(|s| norm(s.name) == n)
}

fn path(s: &str) -> Result<PathBuf, String> {
    values::non_empty(s, "path").map(PathBuf::from)
}

fn paths(o: &mut Vec<PathBuf>, s: &str) -> Result<(), String> {
    o.push(path(s)?);
    Ok(())
}

macro_rules! spec {
    ($name:literal, $group:ident, $kind:expr, $metavar:literal, $default:expr, $example:literal,
     $help:literal, |$o:ident, $v:ident| $body:expr) => {
        spec!(
            $name,
            $group,
            $kind,
            $metavar,
            $default,
            $example,
            $help,
            false,
            |$o, $v| $body
        )
    };
    ($name:literal, $group:ident, $kind:expr, $metavar:literal, $default:expr, $example:literal,
     $help:literal, $addr:literal, |$o:ident, $v:ident| $body:expr) => {
        Spec {
            name: $name,
            group: Group::$group,
            kind: $kind,
            metavar: $metavar,
            default: $default,
            example: $example,
            help: $help,
            addr: $addr,
            set: |$o: &mut Options, $v: &str| -> Result<(), String> {
                $body;
                Ok(())
            },
        }
    };
}

use Kind::{Flag, List, Value};

/// Every option. Order is the `--help` order within each group.
pub(crate) static OPTIONS: &[Spec] = &[
    // ---- Django runfcgi ----
    spec!("protocol", Django, Value, "fcgi|scgi|ajp", "fcgi", "protocol=scgi",
        "protocol the web server speaks (aliases: fastcgi, ajp13)",
        |o, v| o.protocol = super::parse_protocol(v)?),
    spec!("host", Django, Value, "IP", "none", "host=127.0.0.1",
        "address to listen on, with port (an IP address or localhost)", true,
        |o, v| o.host = Some(values::host(v)?)),
    spec!("port", Django, Value, "PORT", "none", "port=3033",
        "TCP port to listen on; without host, listens on 127.0.0.1 only", true,
        |o, v| o.port = Some(values::port(v)?)),
    spec!("socket", Django, Value, "PATH", "none", "socket=/tmp/mysite.sock",
        "Unix socket to listen on; with no host/port/socket/fd, serve the socket inherited as fd 0", true,
        |o, v| o.socket = Some(path(v)?)),
    spec!("method", Django, Value, "prefork|threaded", "prefork", "method=threaded",
        "process model: prefork (worker processes) or threaded (one process); also fork, thread",
        |o, v| o.method = super::parse_method(v)?),
    spec!("maxrequests", Django, Value, "N", "0", "maxrequests=1000",
        "requests a worker serves before it is replaced (prefork), or the process reloads gracefully (threaded); 0 = no limit",
        |o, v| o.maxrequests = values::whole_number(v)?),
    spec!("maxspare", Django, Value, "N", "5", "maxspare=10",
        "most idle worker processes kept (prefork)",
        |o, v| o.maxspare = values::whole_number(v)?),
    spec!("minspare", Django, Value, "N", "2", "minspare=1",
        "fewest idle worker processes kept (prefork)",
        |o, v| o.minspare = values::whole_number(v)?),
    spec!("maxchildren", Django, Value, "N", "50", "maxchildren=20",
        "most worker processes (prefork) or Python threads (threaded)",
        |o, v| o.maxchildren = values::whole_number(v)?),
    spec!("daemonize", Django, Flag, "BOOL", "", "daemonize=false",
        "detach from the terminal and run in the background; prints the pid and where the log goes (errlog, else syslog, else ferrocgi.log in the directory ferrocgi started in)",
        |o, v| o.daemonize = values::bool_value(v)?),
    spec!("pidfile", Django, Value, "PATH", "none", "pidfile=/var/run/mysite.pid",
        "write the process id here (after detaching)",
        |o, v| o.pidfile = Some(path(v)?)),
    spec!("workdir", Django, Value, "DIR", "/", "workdir=/srv/mysite",
        "directory to change to when detaching",
        |o, v| o.workdir = path(v)?),
    spec!("debug", Django, Flag, "BOOL", "false", "debug=true",
        "show tracebacks in error pages (leaks source code: never in production)",
        |o, v| o.debug = values::bool_value(v)?),
    spec!("outlog", Django, Value, "PATH", "none", "outlog=/var/log/mysite.out",
        "stdout (the application's print output) goes to this file (detached without it: to the log)",
        |o, v| o.outlog = Some(path(v)?)),
    spec!("errlog", Django, Value, "PATH", "none", "errlog=/var/log/mysite.err",
        "the log (stderr: server messages, tracebacks) goes to this file, reopened on SIGUSR1; created mode 0640, owned by user=",
        |o, v| o.errlog = Some(path(v)?)),
    spec!("umask", Django, Value, "OCTAL", "022", "umask=002",
        "umask of the server; also sets the Unix socket's mode (002: the web server's group may connect)",
        |o, v| o.umask = values::parse_octal(v)?),
    // ---- ferrocgi ----
    spec!("fd", Ferrocgi, Value, "N", "none", "fd=3",
        "serve an inherited listening socket (TCP or Unix) on this file descriptor", true,
        |o, v| o.fd = Some(values::whole_number(v)?)),
    spec!("script_name", Ferrocgi, Value, "PREFIX", "none", "script_name=/prefix",
        "mount prefix (SCRIPT_NAME) forced on every request, e.g. /prefix or empty; unset: as the web server sends it",
        |o, v| o.script_name = Some(v.to_string())),
    spec!("log_level", Ferrocgi, Value, "LEVEL", "info", "log_level=debug",
        "error, warn, info, debug or trace",
        |o, v| o.log_level = super::parse_log_level(v)?),
    spec!("socket_mode", Ferrocgi, Value, "OCTAL", "from umask", "socket_mode=660",
        "permission bits of the Unix socket file (overrides umask for the socket)",
        |o, v| o.socket_mode = Some(values::parse_octal(v)?)),
    spec!("socket_owner", Ferrocgi, Value, "USER[:GROUP]", "none", "socket_owner=www-data:www-data",
        "owner of the Unix socket file",
        |o, v| o.socket_owner = Some(v.parse::<SocketOwner>()?)),
    spec!("multiplex", Ferrocgi, Flag, "BOOL", "false", "multiplex=true",
        "accept several FastCGI requests on one connection (FCGI_MPXS_CONNS)",
        |o, v| o.multiplex = values::bool_value(v)?),
    spec!("ajp_secret", Ferrocgi, Value, "SECRET", "none", "ajp_secret=s3cret",
        "AJP requests must carry this secret (Apache secret=, lighttpd AJP13_SECRET)",
        |o, v| o.ajp_secret = Some(values::non_empty(v, "secret (leave the option out for none)")?)),
    spec!("ajp_secret_file", Ferrocgi, Value, "PATH", "none", "ajp_secret_file=/etc/ferrocgi/ajp-secret",
        "read the AJP secret from this file (first line), so it is not on the command line for ps to show; make it readable by root only",
        |o, v| o.ajp_secret_file = Some(values::read_secret_file(v)?)),
    spec!("ajp_packet_size", Ferrocgi, Value, "BYTES", "8192", "ajp_packet_size=65536",
        "AJP packet size, 8192 to 65536; must match the web server's (Apache ProxyIOBufferSize)",
        |o, v| o.ajp_packet_size = values::size_usize(v)?),
    spec!("ajp_lighttpd_compat", Ferrocgi, Flag, "BOOL", "false", "ajp_lighttpd_compat=true",
        "accept lighttpd mod_ajp13's request body format",
        |o, v| o.ajp_lighttpd_compat = values::bool_value(v)?),
    spec!("reload_on", Ferrocgi, List { sep: ':' }, "PATH[:PATH]", "none", "reload_on=/srv/mysite/mysite.fcgi",
        "reload gracefully when this file changes (may repeat; like touching mysite.fcgi on shared hosts)",
        |o, v| paths(&mut o.reload_on, v)?),
    spec!("allow_from", Ferrocgi, List { sep: ',' }, "IP[/BITS],...", "anyone (or FCGI_WEB_SERVER_ADDRS)", "allow_from=127.0.0.1,10.0.0.0/8",
        "accept connections only from these addresses",
        |o, v| o.allow_from.extend(values::ip_nets(v)?)),
    // ---- operations ----
    spec!("access_log", Operations, Value, "PATH|-", "none", "access_log=/var/log/mysite/access.log",
        "write a line per request to this file (- for stderr), reopened on SIGUSR1; created 0640, owned by user",
        |o, v| o.access_log = Some(PathBuf::from(values::non_empty(v, "path (- for stderr)")?))),
    spec!("access_log_format", Operations, Value, "FORMAT", crate::access::DEFAULT_FORMAT, "access_log_format='%(h)s \"%(r)s\" %(s)s %(D)sus'",
        "the access line, with %(x)s placeholders (docs/operations.md lists them)",
        |o, v| o.access_log_format = v.parse()?),
    spec!("log_format", Operations, Value, "text|json", "text", "log_format=json",
        "json: the server's log and the access log as one JSON object per line",
        |o, v| o.log_json = values::log_format(v)?),
    spec!("status_path", Operations, Value, "/PATH", "none", "status_path=/status",
        "answer requests for this path with the status page (php-fpm's fields; ?json, ?openmetrics, ?html, ?full), without calling the application",
        |o, v| o.status_path = Some(values::url_path(v)?)),
    spec!("ping_path", Operations, Value, "/PATH", "none", "ping_path=/ping",
        "answer requests for this path with 'pong', for health checks",
        |o, v| o.ping_path = Some(values::url_path(v)?)),
    spec!("status_allow_from", Operations, List { sep: ',' }, "IP[/BITS],...", "same as allow_from", "status_allow_from=127.0.0.1,10.0.0.0/8",
        "clients (REMOTE_ADDR) that may read the status page; others get 403. The page shows request URIs",
        |o, v| o.status_allow_from.get_or_insert_with(Vec::new).extend(values::ip_nets(v)?)),
    // ---- process model ----
    spec!("threads", Process, Value, "N", "prefork: 1; threaded: maxchildren if set, else 16", "threads=8",
        "Python threads per process",
        |o, v| o.threads = values::whole_number(v)?),
    spec!("user", Process, Value, "USER", "none", "user=www-data",
        "switch to this user after binding (started as root)",
        |o, v| o.user = Some(Account::user(v)?)),
    spec!("group", Process, Value, "GROUP", "none", "group=www-data",
        "switch to this group after binding",
        |o, v| o.group = Some(Account::group(v)?)),
    spec!("graceful_timeout", Process, Value, "DURATION", "30s", "graceful_timeout=10s",
        "on stop or reload, how long requests in flight may take to finish",
        |o, v| o.graceful_timeout = values::parse_duration(v)?),
    spec!("maxrequests_jitter", Process, Value, "N", "0", "maxrequests_jitter=100",
        "each process's maxrequests is raised by a random 0..N, so workers started together are not all replaced together",
        |o, v| o.maxrequests_jitter = values::whole_number(v)?),
    spec!("max_rss", Process, Value, "SIZE", "none", "max_rss=512M",
        "a worker whose resident memory passes this after a request is replaced gracefully (prefork), or the process reloads (threaded); none = no limit",
        |o, v| o.max_rss = values::optional_size(v)?),
    // ---- limits ----
    spec!("max_body", Limits, Value, "SIZE", "1G", "max_body=100M",
        "largest request body; past it the answer is 413 (unlimited: no limit)",
        |o, v| o.max_body = if v.trim().eq_ignore_ascii_case("unlimited") { None } else { Some(values::parse_size(v)?) }),
    spec!("spool_threshold", Limits, Value, "SIZE", "1M", "spool_threshold=4M",
        "request bodies larger than this are spooled to a temporary file",
        |o, v| o.spool_threshold = values::parse_size(v)?),
    spec!("max_spool", Limits, Value, "SIZE", "2G", "max_spool=8G",
        "bytes that request bodies spooled to temporary files may take together, per process; a body that would pass it is answered 503; 0 = no limit",
        |o, v| o.max_spool = values::optional_size(v)?),
    spec!("max_connections", Limits, Value, "N", "1024", "max_connections=4096",
        "most connections open at once; more wait in the listen backlog",
        |o, v| o.max_connections = values::whole_number(v)?),
    spec!("max_in_flight", Limits, Value, "N", "1024", "max_in_flight=256",
        "most requests in flight at once; past it FCGI_OVERLOADED or 503",
        |o, v| o.max_in_flight = values::whole_number(v)?),
    spec!("backlog", Limits, Value, "N", "1024", "backlog=511",
        "listen() backlog (the kernel caps it at net.core.somaxconn)",
        |o, v| o.backlog = values::whole_number(v)?),
    spec!("max_params_bytes", Limits, Value, "SIZE", "256K", "max_params_bytes=128K",
        "largest FastCGI params / SCGI header block of one request",
        |o, v| o.max_params_bytes = values::size_usize(v)?),
    spec!("max_params", Limits, Value, "N", "1024", "max_params=256",
        "most params / headers in one request (FastCGI pairs, SCGI headers, AJP headers)",
        |o, v| o.max_params = values::whole_number(v)?),
    spec!("queue_timeout", Limits, Value, "DURATION", "30s", "queue_timeout=10s",
        "a request that waited this long for a Python thread is answered 503 without running the application (the client has likely given up); 0 = wait forever",
        |o, v| o.queue_timeout = values::optional_duration(v)?),
    spec!("request_timeout", Limits, Value, "DURATION", "none", "request_timeout=5m",
        "longest a request may take, 0 = no limit",
        |o, v| o.request_timeout = values::optional_duration(v)?),
    spec!("slow_request", Limits, Value, "DURATION", "none", "slow_request=10s",
        "log requests slower than this",
        |o, v| o.slow_request = values::optional_duration(v)?),
    spec!("idle_timeout", Limits, Value, "DURATION", "60s", "idle_timeout=5m",
        "close a kept-alive connection idle this long, 0 = never",
        |o, v| o.idle_timeout = values::optional_duration(v)?),
    spec!("read_timeout", Limits, Value, "DURATION", "60s", "read_timeout=30s",
        "give up on a peer that sends nothing for this long mid-request, 0 = never",
        |o, v| o.read_timeout = values::optional_duration(v)?),
    spec!("head_timeout", Limits, Value, "DURATION", "30s", "head_timeout=10s",
        "a request head (FastCGI params, SCGI netstring, AJP forward request) must arrive within this time of its first byte, however slowly it trickles; 0 = never",
        |o, v| o.head_timeout = values::optional_duration(v)?),
    spec!("min_body_rate", Limits, Value, "BYTES", "1K", "min_body_rate=4K",
        "cut off a request body arriving slower than this many bytes a second, averaged over read_timeout; 0 = no minimum",
        |o, v| o.min_body_rate = values::parse_size(v)?),
    spec!("write_timeout", Limits, Value, "DURATION", "60s", "write_timeout=30s",
        "give up on a peer that reads nothing for this long, 0 = never",
        |o, v| o.write_timeout = values::optional_duration(v)?),
];

/// The `--help` text of a command.
pub(crate) fn help_text(command: &Command) -> String {
    let mut out = String::from(command.usage);
    out.push_str(
        "\nEvery option may be written name=value, --name=value or --name value; dashes and\n\
         underscores are interchangeable. A boolean given alone (debug, --debug) means true;\n\
         booleans take true/false, yes/no, on/off, 1/0. Sizes take K, M, G (1024-based);\n\
         durations take ms, s, m, h (plain numbers are seconds). Each option may also come from\n\
         the environment variable FERROCGI_<NAME> (e.g. FERROCGI_MAX_BODY=100M); arguments win.\n",
    );
    for group in Group::ALL {
        out.push_str(&format!("\n{}:\n", group.title()));
        for s in OPTIONS.iter().filter(|s| s.group == group) {
            let default = s.default_for(command);
            help_entry(&mut out, Row::Server(s), s.metavar, default, s.help);
        }
        if group == Group::Ferrocgi {
            host_entries(&mut out, command);
        }
    }
    if !command.examples.is_empty() {
        out.push_str("\nExamples:\n");
        out.push_str(command.examples);
    }
    out
}

fn host_entries(out: &mut String, command: &Command) {
    if command.host_options.is_empty() {
        return;
    }
    out.push_str(&format!("\n{}:\n", command.host_title));
    for h in command.host_options {
        help_entry(out, Row::Host(h), h.metavar, h.default, h.help);
    }
}

fn help_entry(out: &mut String, row: Row<'_>, metavar: &str, default: &str, help: &str) {
    out.push_str(&format!(
        "  {}={metavar}  ({}, {})  [default: {default}]\n",
        row.name(),
        row.flag(),
        row.env_var()
    ));
    out.push_str(&format!("      {help}\n"));
}
