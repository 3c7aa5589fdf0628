//! [`parse`]: words (and the environment) to [`Options`], in the steps the module doc numbers.

use super::command::Command;
use super::table::{self, Kind, Row, Table};
use super::values;
use super::{bad, help_text, Method, Options, OptionsError, Parsed, DEFAULT_THREADED_THREADS};

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
    let mut b = Building {
        o: Options::default(),
        given: vec![false; table.len()],
        table,
    };
    for (idx, value) in &scan.settings {
        b.set(*idx, value, None)?;
    }
    let addr_from_args = scan.settings.iter().any(|(i, _)| table.row(*i).addr());
    b.fill_from_env(env, addr_from_args)?;
    b.o.positional = positional(command, &scan.apps)?;
    b.dependent_defaults();
    b.o.validate()?;
    Ok(Parsed::Run(Box::new(b.o)))
}

/// Options being built, with which rows were given (by the words or the environment).
struct Building<'c> {
    o: Options,
    given: Vec<bool>,
    table: Table<'c>,
}

impl Building<'_> {
    fn set(&mut self, idx: usize, value: &str, env: Option<String>) -> Result<(), OptionsError> {
        apply(&mut self.o, self.table.row(idx), value, env)?;
        self.given[idx] = true;
        Ok(())
    }

    fn was_given(&self, name: &str) -> bool {
        self.given[table::lookup(name).expect("option in the table")]
    }

    /// Step 3: the environment fills what the arguments left unset.
    fn fill_from_env<E, K, V>(&mut self, env: E, addr_from_args: bool) -> Result<(), OptionsError>
    where
        E: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut from_env: Vec<(usize, String, String)> = Vec::new();
        let mut web_server_addrs = None;
        for (k, v) in env {
            let (k, v) = (k.as_ref(), v.as_ref());
            if v.is_empty() {
                continue;
            }
            if k == "FCGI_WEB_SERVER_ADDRS" {
                web_server_addrs = Some(v.to_string());
            } else if let Some(idx) = k
                .strip_prefix("FERROCGI_")
                .and_then(|n| self.table.lookup(n))
            {
                from_env.push((idx, v.to_string(), k.to_string()));
            }
        }
        from_env.sort_by_key(|(idx, _, _)| *idx);
        for (idx, value, var) in from_env {
            let row = self.table.row(idx);
            if self.given[idx] || (row.addr() && addr_from_args) {
                continue;
            }
            if matches!(row.kind(), Kind::List { .. }) {
                clear_list(&mut self.o, row);
            }
            self.set(idx, &value, Some(var))?;
        }
        self.allow_from_fallback(web_server_addrs)
    }

    /// `allow_from` is for TCP only; flup's `FCGI_WEB_SERVER_ADDRS` is its last fallback.
    fn allow_from_fallback(
        &mut self,
        web_server_addrs: Option<String>,
    ) -> Result<(), OptionsError> {
        let allow_idx = table::lookup("allow_from").expect("allow_from is in the table");
        if self.given[allow_idx] && self.o.socket.is_some() {
            // Silently ignoring it would leave the operator believing in a guard that is not there.
            return Err(bad(
                "allow_from",
                "applies to TCP peers only; a Unix socket is guarded by its mode and owner (socket_mode=660 socket_owner=USER:GROUP)",
            ));
        }
        match web_server_addrs {
            Some(v) if !self.given[allow_idx] => {
                let row = self.table.row(allow_idx);
                apply(&mut self.o, row, &v, Some("FCGI_WEB_SERVER_ADDRS".into()))
            }
            _ => Ok(()),
        }
    }

    /// Step 4: the defaults that depend on other options.
    fn dependent_defaults(&mut self) {
        let (daemonize, threads) = (self.was_given("daemonize"), self.was_given("threads"));
        let maxchildren = self.was_given("maxchildren");
        let o = &mut self.o;
        if !daemonize {
            o.daemonize = self.table.command.detach_when_addressed
                && (o.host.is_some() || o.port.is_some() || o.socket.is_some());
        }
        if !threads {
            o.threads = match o.method {
                Method::Prefork => 1,
                Method::Threaded if maxchildren => o.maxchildren,
                Method::Threaded => DEFAULT_THREADED_THREADS,
            };
        }
    }
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
    let mut s = Scanner {
        scan: Scan::default(),
        words,
        next: 0,
        table,
    };
    let mut rest = false;
    while let Some(w) = s.take() {
        match w {
            _ if rest => s.scan.apps.push(w.to_string()),
            "--" => rest = true,
            "-h" | "--help" => s.scan.help = true,
            "-V" | "--version" => s.scan.version = true,
            _ => s.word(w),
        }
    }
    s.scan
}

/// Step 1's cursor over the words.
struct Scanner<'w, 'c> {
    scan: Scan,
    words: &'w [String],
    next: usize,
    table: Table<'c>,
}

impl<'w> Scanner<'w, '_> {
    fn take(&mut self) -> Option<&'w str> {
        let w = self.words.get(self.next)?;
        self.next += 1;
        Some(w)
    }

    fn word(&mut self, w: &str) {
        if let Some(body) = w.strip_prefix("--") {
            self.long_flag(body);
        } else if w.len() > 1 && w.starts_with('-') {
            self.short_flag(w);
        } else if let Some((name, value)) = w.split_once('=') {
            match self.table.lookup(name) {
                Some(idx) => self.scan.settings.push((idx, value.to_string())),
                None => fail(
                    &mut self.scan,
                    OptionsError::Unknown {
                        given: name.to_string(),
                        suggestion: self.table.closest(name).name().to_string(),
                    },
                ),
            }
        } else if table::norm(w) == "help" {
            self.scan.help = true;
        } else {
            bare_word(&mut self.scan, w, self.table);
        }
    }

    /// `--name=value`, `--name value`, `--flag`, `--flag false`.
    fn long_flag(&mut self, body: &str) {
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        if table::norm(name) == "help" {
            self.scan.help = true;
            return;
        }
        let Some(idx) = self.table.lookup(name) else {
            let suggestion = self.table.closest(name).flag();
            let given = format!("--{name}");
            return fail(&mut self.scan, OptionsError::Unknown { given, suggestion });
        };
        let row = self.table.row(idx);
        let value = match (inline, row.kind()) {
            (Some(v), _) => Some(v.to_string()),
            (None, Kind::Flag) => Some(self.flag_value()),
            (None, _) => self.following_value(row),
        };
        if let Some(value) = value {
            self.scan.settings.push((idx, value));
        }
    }

    /// `--debug` alone is true; `--debug false` takes the next word only when it is a
    /// boolean, so `--debug mysite.wsgi` keeps its APP.
    fn flag_value(&mut self) -> String {
        match self.words.get(self.next) {
            Some(next) if values::parse_bool(next).is_some() => {
                self.next += 1;
                next.clone()
            }
            _ => "true".to_string(),
        }
    }

    /// The word after `--name`, unless it is another flag.
    fn following_value(&mut self, row: Row<'_>) -> Option<String> {
        match self.words.get(self.next) {
            Some(next) if !next.starts_with("--") => {
                self.next += 1;
                Some(next.clone())
            }
            _ => {
                let (option, example) = (row.name(), row.example());
                fail(
                    &mut self.scan,
                    OptionsError::MissingValue { option, example },
                );
                None
            }
        }
    }

    /// Short flags other than -h and -V do not exist; suggest what other servers' short
    /// flags usually mean.
    fn short_flag(&mut self, w: &str) {
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
        let suggestion = self.table.closest(name).flag();
        let given = w.to_string();
        fail(&mut self.scan, OptionsError::Unknown { given, suggestion });
    }
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
