//! The server's log: one line per event on stderr (the `errlog` once daemonized), no colours;
//! with `log_format=json`, one JSON object per line (keys: `timestamp`, `level`, `target`,
//! `message`, and the event's own fields such as `peer` or `pid`).

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// Installs the log for this process, filtered by `level`: a level (`info`) or comma-separated
/// `target=level` directives (`warn,ferrocgi_server=debug`); anything else means `info`. Only
/// the first call in a process has an effect. `json`: one JSON object per line.
pub fn init(level: &str, json: bool) {
    // `Targets` rather than `EnvFilter`: the directives ferrocgi takes need no regular
    // expressions, and leaving the regex engine out keeps every worker process smaller.
    let filter: Targets = level
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(LevelFilter::INFO));
    let text = (!json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
    });
    let json = json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
    });
    let _ = tracing_subscriber::registry()
        .with(text)
        .with(json)
        .with(filter)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directives_parse_and_junk_falls_back_to_info() {
        for ok in ["info", "debug", "warn,ferrocgi_server=debug", "error"] {
            assert!(ok.parse::<Targets>().is_ok(), "{ok}");
        }
        let t: Targets = "warn,ferrocgi_server=debug".parse().unwrap();
        assert!(t.would_enable("ferrocgi_server::conn", &tracing::Level::DEBUG));
        assert!(!t.would_enable("other", &tracing::Level::INFO));
        assert!("no such=level=here".parse::<Targets>().is_err());
    }
}
