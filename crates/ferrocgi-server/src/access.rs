//! The access log (`access_log`, `access_log_format`, `log_format=json`): one line per request
//! the application served, written by the process that served it when the response ends (or
//! fails), with one `write` on an `O_APPEND` descriptor, so prefork workers sharing the file
//! never interleave or tear a line. Reopened on SIGUSR1 by `dup2` onto the same descriptor, so
//! a line being written goes wholly to the old file or wholly to the new one.
//!
//! Off by default; while off, a request copies nothing for it.

use crate::protocol::Protocol;
use ferrocgi_proto::Params;
use std::fmt::Write as _;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The default `access_log_format`: the combined log format, then the request's duration
/// (µs), the process that served it and how long it waited for an application thread (µs).
pub const DEFAULT_FORMAT: &str =
    "%(h)s - %(u)s %(t)s \"%(r)s\" %(s)s %(b)s \"%(f)s\" \"%(a)s\" %(D)sus pid=%(p)s wait=%(w)sus";

/// Placeholders of `access_log_format`, with what each stands for (shown by the error for an
/// unknown one, and documented in docs/operations.md).
pub const PLACEHOLDERS: [(char, &str); 20] = [
    ('h', "remote address (REMOTE_ADDR)"),
    ('u', "remote user (REMOTE_USER), or -"),
    (
        't',
        "time the request arrived, [05/Dec/2026:15:24:05 +0000]",
    ),
    ('r', "request line: method, URI, protocol"),
    ('m', "method"),
    ('U', "URI path, without the query"),
    ('q', "query string"),
    ('H', "HTTP protocol (SERVER_PROTOCOL)"),
    ('s', "status (0: no response was sent)"),
    ('b', "response body bytes, - for none"),
    ('B', "response body bytes"),
    ('I', "request body bytes received"),
    ('f', "referer, or -"),
    ('a', "user agent, or -"),
    ('D', "duration in microseconds"),
    ('M', "duration in milliseconds"),
    ('T', "duration in seconds"),
    ('p', "process id"),
    ('w', "time waiting for an application thread, microseconds"),
    ('P', "gateway protocol: fcgi, scgi or ajp"),
];
const OUTCOME: char = 'e';

/// A parsed `access_log_format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format(Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(char),
}

impl std::str::FromStr for Format {
    type Err = String;

    /// `%(x)s` placeholders (gunicorn's spelling), `%%` for a percent sign.
    fn from_str(s: &str) -> Result<Format, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('%') {
            text.push_str(&rest[..i]);
            rest = &rest[i..];
            if let Some(r) = rest.strip_prefix("%%") {
                text.push('%');
                rest = r;
                continue;
            }
            let mut chars = rest.chars();
            let (open, c, close) = (chars.nth(1), chars.next(), chars.as_str());
            let known = c.filter(|c| *c == OUTCOME || PLACEHOLDERS.iter().any(|(p, _)| p == c));
            match (open, known, close.strip_prefix(")s")) {
                (Some('('), Some(c), Some(r)) => {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Field(c));
                    rest = r;
                }
                _ => {
                    let bad: String = rest.chars().take(5).collect();
                    let all: String = PLACEHOLDERS
                        .iter()
                        .map(|(p, _)| *p)
                        .chain([OUTCOME])
                        .collect();
                    return Err(format!("unknown placeholder {bad:?}: write %(x)s with x one of {all}, or %% for a percent sign"));
                }
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Format(pieces))
    }
}

impl Default for Format {
    fn default() -> Self {
        DEFAULT_FORMAT.parse().expect("the default format parses")
    }
}

struct AccessLog {
    /// Kept open for the life of the process; a reopen replaces the file behind it.
    fd: RawFd,
    path: Option<PathBuf>,
    format: Format,
    json: bool,
}

static LOG: OnceLock<AccessLog> = OnceLock::new();

/// Where the lines go: a file opened (as root, before the privilege drop, for `owner`) by the
/// caller, or stderr (`-`).
pub(crate) enum Target {
    File(PathBuf, OwnedFd),
    Stderr,
}

/// Installs the access log of this process (and of the workers it forks).
pub(crate) fn install(target: Target, format: Format, json: bool) {
    let (fd, path) = match target {
        Target::File(path, fd) => (fd.into_raw_fd(), Some(path)),
        Target::Stderr => (2, None),
    };
    let _ = LOG.set(AccessLog {
        fd,
        path,
        format,
        json,
    });
}

/// Opens the file again at its path (SIGUSR1, after logrotate moved it): as the user the
/// process runs as now.
pub(crate) fn reopen(open: impl FnOnce(&Path) -> std::io::Result<OwnedFd>) -> std::io::Result<()> {
    let Some(log) = LOG.get() else { return Ok(()) };
    let Some(path) = &log.path else { return Ok(()) };
    let new = open(path)?;
    // SAFETY: `log.fd` is this module's own descriptor, open for the life of the process and
    // never closed; dup2 atomically points it at the new file.
    if unsafe { libc::dup2(new.as_raw_fd(), log.fd) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// One request being served, as its access line will tell it.
#[derive(Debug)]
pub(crate) struct Line {
    arrived: SystemTime,
    start: Instant,
    protocol: Protocol,
    params: Params,
    /// The response's status, once its head was sent.
    pub(crate) status: u16,
    pub(crate) bytes_out: u64,
    pub(crate) bytes_in: u64,
    /// The response ended completely.
    pub(crate) ok: bool,
    /// Filled by the host (see `Responder::note_queue_wait`), read at the end.
    pub(crate) queue_wait_us: u64,
}

/// A request starts; `None` while the access log is off.
pub(crate) fn begin(protocol: Protocol, params: &Params) -> Option<Line> {
    LOG.get()?;
    Some(Line {
        arrived: SystemTime::now(),
        start: Instant::now(),
        protocol,
        params: params.clone(),
        status: 0,
        bytes_out: 0,
        bytes_in: 0,
        ok: false,
        queue_wait_us: 0,
    })
}

impl Drop for Line {
    fn drop(&mut self) {
        let Some(log) = LOG.get() else { return };
        let mut text = if log.json {
            self.json()
        } else {
            self.text(&log.format)
        };
        text.push('\n');
        // One write: O_APPEND makes it land whole at the end of the file. A full disk or a
        // closed stderr loses the line, never the request.
        // SAFETY: writes from a valid buffer to this module's descriptor.
        let _ = unsafe { libc::write(log.fd, text.as_ptr().cast(), text.len()) };
    }
}

/// `v` as a client could not use it to forge a line: `"` and `\` escaped, control and
/// non-UTF-8 bytes as `\xHH`.
fn escaped(out: &mut String, v: &[u8]) {
    for chunk in v.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(out, "\\x{b:02x}");
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
}

impl Line {
    fn param(&self, name: &str) -> &[u8] {
        self.params.get(name.as_bytes()).unwrap_or_default()
    }

    fn or_dash(&self, name: &str) -> &[u8] {
        match self.param(name) {
            b"" => b"-",
            v => v,
        }
    }

    fn duration_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn uri(&self) -> Vec<u8> {
        match self.params.get(b"REQUEST_URI") {
            Some(u) => u.to_vec(),
            None => {
                let mut u = self.param("SCRIPT_NAME").to_vec();
                u.extend_from_slice(self.param("PATH_INFO"));
                if !self.param("QUERY_STRING").is_empty() {
                    u.push(b'?');
                    u.extend_from_slice(self.param("QUERY_STRING"));
                }
                u
            }
        }
    }

    fn outcome(&self) -> &'static str {
        if self.ok {
            "ok"
        } else if self.status == 0 {
            "aborted"
        } else {
            "failed"
        }
    }

    fn field(&self, c: char, out: &mut String) {
        let us = self.duration_us();
        match c {
            'h' => escaped(out, self.or_dash("REMOTE_ADDR")),
            'u' => escaped(out, self.or_dash("REMOTE_USER")),
            't' => {
                let _ = write!(out, "[{}]", crate::status::clf_time(unix_us(self.arrived)));
            }
            'r' => {
                escaped(out, self.or_dash("REQUEST_METHOD"));
                out.push(' ');
                escaped(out, &self.uri());
                out.push(' ');
                escaped(out, self.or_dash("SERVER_PROTOCOL"));
            }
            'm' => escaped(out, self.or_dash("REQUEST_METHOD")),
            'U' => {
                let uri = self.uri();
                escaped(out, uri.split(|b| *b == b'?').next().unwrap_or_default());
            }
            'q' => escaped(out, self.param("QUERY_STRING")),
            'H' => escaped(out, self.or_dash("SERVER_PROTOCOL")),
            's' => out.push_str(&self.status.to_string()),
            'b' if self.bytes_out == 0 => out.push('-'),
            'b' | 'B' => out.push_str(&self.bytes_out.to_string()),
            'I' => out.push_str(&self.bytes_in.to_string()),
            'f' => escaped(out, self.or_dash("HTTP_REFERER")),
            'a' => escaped(out, self.or_dash("HTTP_USER_AGENT")),
            'D' => out.push_str(&us.to_string()),
            'M' => out.push_str(&(us / 1000).to_string()),
            'T' => out.push_str(&(us / 1_000_000).to_string()),
            'p' => out.push_str(&std::process::id().to_string()),
            'w' => out.push_str(&self.queue_wait_us.to_string()),
            'P' => out.push_str(self.protocol.name()),
            _ => out.push_str(self.outcome()),
        }
    }

    fn text(&self, format: &Format) -> String {
        let mut out = String::with_capacity(256);
        for piece in &format.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Field(c) => self.field(*c, &mut out),
            }
        }
        out
    }

    /// One JSON object; its keys are documented in docs/operations.md and never renamed.
    fn json(&self) -> String {
        let s = |v: &[u8]| serde_json::Value::String(String::from_utf8_lossy(v).into_owned());
        let uri = self.uri();
        serde_json::json!({
            "timestamp": rfc3339(unix_us(self.arrived)),
            "type": "access",
            "remote_addr": s(self.param("REMOTE_ADDR")),
            "remote_user": s(self.param("REMOTE_USER")),
            "method": s(self.param("REQUEST_METHOD")),
            "uri": s(&uri),
            "protocol": s(self.param("SERVER_PROTOCOL")),
            "status": self.status,
            "bytes_out": self.bytes_out,
            "bytes_in": self.bytes_in,
            "referer": s(self.param("HTTP_REFERER")),
            "user_agent": s(self.param("HTTP_USER_AGENT")),
            "duration_us": self.duration_us(),
            "queue_wait_us": self.queue_wait_us,
            "pid": std::process::id(),
            "gateway": self.protocol.name(),
            "outcome": self.outcome(),
        })
        .to_string()
    }
}

fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// `2026-12-05T15:24:05.123456Z`.
fn rfc3339(us: u64) -> String {
    let secs = us / 1_000_000;
    let (y, m, d) = crate::status::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        us % 1_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_unknown_placeholders_are_named() {
        let f: Format = "%(h)s %% %(s)s".parse().unwrap();
        assert_eq!(
            f.0,
            vec![
                Piece::Field('h'),
                Piece::Text(" % ".into()),
                Piece::Field('s')
            ]
        );
        let e = "%(z)s".parse::<Format>().unwrap_err();
        assert!(e.starts_with("unknown placeholder \"%(z)s\""), "{e}");
        assert!("%(h)".parse::<Format>().is_err());
        assert!("100%".parse::<Format>().is_err());
        Format::default();
    }

    #[test]
    fn client_bytes_cannot_forge_a_line() {
        let mut out = String::new();
        escaped(&mut out, b"a\"b\\c\nd\x1b\xff\xfee");
        assert_eq!(out, r#"a\"b\\c\x0ad\x1b\xff\xfee"#);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(
            rfc3339(1_796_484_245_000_042),
            "2026-12-05T15:24:05.000042Z"
        );
    }
}
