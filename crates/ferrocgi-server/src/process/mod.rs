//! Process models and daemon duties, shared by every front end (the `ferrocgi` command, Django's
//! runfcgi, the pure-Rust example).
//!
//! # Layout
//!
//! * [`launch`]: the whole start-up (listener, daemon, pid file, privilege drop, application,
//!   process model, reload, CGI), behind the [`launch::AppHost`] trait a host implements.
//! * [`runner`]: runs a [`crate::Server`] in this process with the signal plan of its role (a
//!   threaded server, a prefork worker, a process spawned by the web server).
//! * [`prefork`]: the supervisor that keeps a pool of worker processes.
//! * [`daemon`]: detaching, log files, the pid file, dropping privileges.
//! * [`reexec`]: graceful reload by re-executing the program with the socket inherited.
//! * [`spawned`]: what file descriptor 0 is when a web server started us.
//! * [`notify`]: telling systemd of readiness, reloads and stops (`Type=notify`).
//!
//! # Signals
//!
//! | signal | threaded / spawned process | prefork supervisor | prefork worker |
//! |---|---|---|---|
//! | SIGTERM | graceful stop | graceful stop of all workers, then exit | graceful stop |
//! | SIGINT | quick stop | quick stop | quick stop |
//! | SIGHUP | graceful reload (drain, re-exec) | graceful reload (re-exec, old workers drain) | ignored |
//! | SIGUSR1 | reopen log files | reopen log files, tell workers | reopen log files |
//! | SIGTTIN / SIGTTOU | — | one more / one fewer spare worker | — |
//!
//! Note: if this table changes, update docs/production.md.

pub mod daemon;
pub mod launch;
pub mod notify;
pub mod prefork;
pub mod reexec;
pub mod runner;
pub mod spawned;

use std::path::PathBuf;
use std::time::SystemTime;

/// The modification times of `files` (`None` for one that cannot be read), to notice a change
/// (`reload_on`, a spawned process's script).
fn mtimes(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}
