//! What the program hosting the server adds to the one option table: its positional word (the
//! Python host's APP), its own options (the Python host's `pythonpath`), the top and the
//! examples of `--help`, and whether `daemonize` unset detaches (Django's rule).
//!
//! The server's options know listeners, processes and limits; what is about the application
//! belongs to the host, which describes it here and reads the values back from
//! [`Options::positional`](super::Options::positional) and
//! [`Options::host_values`](super::Options::host_values).

/// One entry point's words: e.g. the `ferrocgi` command (an APP), Django's runfcgi (no APP,
/// Django's daemonize rule), an embedding call (no APP).
#[derive(Debug)]
pub struct Command {
    /// The first lines of `--help`: the usage line and what the command serves.
    pub usage: &'static str,
    /// The positional word, if the command takes one.
    pub positional: Option<Positional>,
    /// Why a positional word is refused, when `positional` is `None`.
    pub no_positional: &'static str,
    /// `daemonize` unset detaches when host/port or socket is given (Django's rule); else the
    /// server stays in the foreground.
    pub detach_when_addressed: bool,
    /// The `--help` section title of `host_options`.
    pub host_title: &'static str,
    /// The host's own options, parsed like the server's (every spelling, `FERROCGI_<NAME>`).
    pub host_options: &'static [HostOption],
    /// The last lines of `--help`.
    pub examples: &'static str,
}

/// The positional word of a command.
#[derive(Debug)]
pub struct Positional {
    /// The error line when it is missing.
    pub missing: &'static str,
    /// Checks the word; the `Err` is the whole error line.
    pub check: fn(&str) -> Result<(), String>,
}

/// An option of the host's, a row of the one table.
#[derive(Debug)]
pub struct HostOption {
    /// Canonical name (`pythonpath`).
    pub name: &'static str,
    /// The value's form in `--help`.
    pub metavar: &'static str,
    /// Default as shown in `--help`.
    pub default: &'static str,
    /// A valid `name=value` word, quoted in error messages.
    pub example: &'static str,
    /// The `--help` line.
    pub help: &'static str,
    /// `Some(sep)`: may repeat, and each value is split on `sep`; values accumulate. `None`:
    /// one value, the last given wins.
    pub list: Option<char>,
    /// Checks one value; the `Err` says what is wrong with it.
    pub check: fn(&str) -> Result<(), String>,
}

/// A program that has no words of its own (a pure-Rust handler): no positional word, no host
/// options, never detaching unless asked.
pub const PLAIN: Command = Command {
    usage: "Usage: PROGRAM [OPTIONS]\n\n\
            Serves a web application to a web server over FastCGI, SCGI or AJP13.\n",
    positional: None,
    no_positional: "this program takes options only",
    detach_when_addressed: false,
    host_title: "",
    host_options: &[],
    examples: "",
};
