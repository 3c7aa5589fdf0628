//! Value types and the parsers for one option value each: booleans, octal modes, sizes,
//! durations, IP networks, accounts.
//!
//! Each parser returns the *problem* part of an error line (e.g. `"http" is not a port number`);
//! the caller adds the option name and an example (see [`super::OptionsError::Invalid`]).

use crate::listener::IpNet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Parses a boolean the way every entry point spells it: true/false, yes/no, t/f, on/off, 1/0,
/// any case.
///
/// # Background
///
/// Django's `runfcgi` turned `debug` on for *any* value, so `debug=false` enabled tracebacks in
/// error pages. Here `debug=false` means false.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "t" | "y" | "on" | "1" => Some(true),
        "false" | "no" | "f" | "n" | "off" | "0" => Some(false),
        _ => None,
    }
}

pub(crate) fn bool_value(s: &str) -> Result<bool, String> {
    parse_bool(s).ok_or_else(|| format!("{s:?} is not a boolean (true/false, yes/no, on/off, 1/0)"))
}

/// Parses an octal permission value: `022`, `0o22` and `22` are all octal 22. At most `0o777`.
pub fn parse_octal(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let digits = t
        .strip_prefix("0o")
        .or_else(|| t.strip_prefix("0O"))
        .unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!("{s:?} is not an octal mode"));
    }
    match u32::from_str_radix(digits, 8) {
        Ok(v) if v <= 0o777 => Ok(v),
        _ => Err(format!("{s:?} is more than 777")),
    }
}

/// Parses a byte size: `1048576`, `512K`, `1M`, `2G` (binary units; `KB`, `KiB`, `k` alike).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a size (bytes, or a number with K, M or G)");
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(bad());
    }
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is too large"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Parses a duration: `30` (seconds), `30s`, `500ms`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration (seconds, or a number with ms, s, m or h)");
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(bad());
    }
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is too large"))?;
    let (secs, millis) = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "s" | "sec" | "secs" => (Some(n), None),
        "ms" => (None, Some(n)),
        "m" | "min" | "mins" => (n.checked_mul(60), None),
        "h" => (n.checked_mul(3600), None),
        _ => return Err(bad()),
    };
    match (secs, millis) {
        (Some(s), _) => Ok(Duration::from_secs(s)),
        (None, Some(ms)) => Ok(Duration::from_millis(ms)),
        (None, None) => Err(format!("{s:?} is too large")),
    }
}

/// A size where 0 (or `none`, `off`) means none: `max_spool`, `max_rss`.
pub(crate) fn optional_size(s: &str) -> Result<Option<u64>, String> {
    if matches!(s.to_ascii_lowercase().as_str(), "none" | "off") {
        return Ok(None);
    }
    Ok(Some(parse_size(s)?).filter(|n| *n > 0))
}

/// A timeout that may be switched off: `0`, `off` or `none` mean no timeout.
pub(crate) fn optional_duration(s: &str) -> Result<Option<Duration>, String> {
    if matches!(s.trim().to_ascii_lowercase().as_str(), "off" | "none") {
        return Ok(None);
    }
    let d = parse_duration(s)?;
    Ok(if d.is_zero() { None } else { Some(d) })
}

pub(crate) fn whole_number<T: FromStr>(s: &str) -> Result<T, String> {
    let t = s.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a whole number"));
    }
    t.parse().map_err(|_| format!("{s:?} is too large"))
}

/// A size given as a `usize` (limits that size buffers).
pub(crate) fn size_usize(s: &str) -> Result<usize, String> {
    usize::try_from(parse_size(s)?).map_err(|_| format!("{s:?} is too large"))
}

/// `s` itself, or the error `empty WHAT`.
pub fn non_empty(s: &str, what: &str) -> Result<String, String> {
    if s.is_empty() {
        Err(format!("empty {what}"))
    } else {
        Ok(s.to_string())
    }
}

/// `log_format`: `text` or `json` (true).
pub(crate) fn log_format(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(false),
        "json" => Ok(true),
        _ => Err(format!("{s:?} is not text or json")),
    }
}

/// A URL path the server answers itself (`status_path`, `ping_path`): starts with `/`, no
/// query, no spaces.
pub(crate) fn url_path(s: &str) -> Result<String, String> {
    let s = s.trim();
    if !s.starts_with('/') {
        return Err(format!("{s:?} is not a URL path (it must start with /)"));
    }
    if s.contains(['?', '#']) || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{s:?} is not a plain URL path (no query, fragment or spaces)"
        ));
    }
    Ok(s.to_string())
}

/// `ajp_secret_file`: the path and the secret on its first line (read at start-up, while the
/// process may still be root, before the privilege drop).
pub(crate) fn read_secret_file(path: &str) -> Result<(PathBuf, String), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let secret = text.lines().next().unwrap_or_default().trim();
    if secret.is_empty() {
        return Err(format!("{path} holds no secret (its first line is empty)"));
    }
    Ok((PathBuf::from(path), secret.to_string()))
}

/// A comma-separated list of networks (`allow_from`, flup's `FCGI_WEB_SERVER_ADDRS`).
pub(crate) fn ip_nets(s: &str) -> Result<Vec<IpNet>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::parse)
        .collect()
}

/// The address to listen on: an IP literal (`127.0.0.1`, `::1`, `[::1]`) or `localhost`.
pub(crate) fn host(s: &str) -> Result<IpAddr, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    }
    let t = t
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(t);
    // NOTE: host names other than localhost are refused rather than resolved: binding must
    // not depend on DNS answering at start-up, and flup bound whatever the name gave first.
    t.parse().map_err(|_| {
        format!("{s:?} is not an IP address (names other than localhost are not resolved)")
    })
}

pub(crate) fn port(s: &str) -> Result<u16, String> {
    let t = s.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a port number"));
    }
    t.parse()
        .map_err(|_| format!("{s:?} is not a port number (0 to 65535)"))
}

/// A user or group, resolved to its numeric id when the option is parsed, so a typo fails
/// before anything binds or forks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The name as given (or the number, if a numeric id was given).
    pub name: String,
    /// The uid or gid.
    pub id: u32,
}

impl Account {
    /// Looks up a user by name; a number is taken as a uid as is.
    pub fn user(name: &str) -> Result<Account, String> {
        if let Ok(id) = whole_number::<u32>(name) {
            return Ok(Account {
                name: name.to_string(),
                id,
            });
        }
        match nix::unistd::User::from_name(name) {
            Ok(Some(u)) => Ok(Account {
                name: name.to_string(),
                id: u.uid.as_raw(),
            }),
            Ok(None) => Err(format!("no such user {name:?}")),
            Err(e) => Err(format!("cannot look up user {name:?}: {e}")),
        }
    }

    /// Looks up a group by name; a number is taken as a gid as is.
    pub fn group(name: &str) -> Result<Account, String> {
        if let Ok(id) = whole_number::<u32>(name) {
            return Ok(Account {
                name: name.to_string(),
                id,
            });
        }
        match nix::unistd::Group::from_name(name) {
            Ok(Some(g)) => Ok(Account {
                name: name.to_string(),
                id: g.gid.as_raw(),
            }),
            Ok(None) => Err(format!("no such group {name:?}")),
            Err(e) => Err(format!("cannot look up group {name:?}: {e}")),
        }
    }
}

/// The owner given to the Unix socket file: `user`, `user:group` or `:group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketOwner {
    /// The owning user, if given.
    pub user: Option<Account>,
    /// The owning group, if given.
    pub group: Option<Account>,
}

impl FromStr for SocketOwner {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (u, g) = match s.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (s, None),
        };
        if u.is_empty() && g.map_or(true, str::is_empty) {
            return Err(format!("{s:?} names no user or group"));
        }
        Ok(SocketOwner {
            user: if u.is_empty() {
                None
            } else {
                Some(Account::user(u)?)
            },
            group: match g {
                Some(g) if !g.is_empty() => Some(Account::group(g)?),
                _ => None,
            },
        })
    }
}

/// Edit distance, for "did you mean" suggestions.
pub(crate) fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
