//! Graceful reload by re-executing the program with the listening socket inherited.
//!
//! The process keeps its pid (so the pid file stays right and the draining workers stay its
//! children), the socket never closes (connections wait in the backlog while the new program
//! imports the application), and the new program learns what it inherits from the
//! environment.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The inherited listening socket's fd.
pub const ENV_LISTEN_FD: &str = "FERROCGI_LISTEN_FD";
/// Pids of the previous generation's draining workers, comma-separated.
pub const ENV_OLD_WORKERS: &str = "FERROCGI_OLD_WORKERS";

static START_DIR: OnceLock<PathBuf> = OnceLock::new();

/// What a re-executed program inherits, read once from the environment.
#[derive(Debug, Default)]
struct Inherited {
    listen_fd: Option<RawFd>,
    old_workers: Vec<i32>,
}

static INHERITED: OnceLock<Inherited> = OnceLock::new();

fn inherited() -> &'static Inherited {
    INHERITED.get_or_init(|| Inherited {
        listen_fd: std::env::var(ENV_LISTEN_FD)
            .ok()
            .and_then(|v| v.parse().ok()),
        old_workers: std::env::var(ENV_OLD_WORKERS)
            .unwrap_or_default()
            .split(',')
            .filter_map(|p| p.parse().ok())
            .collect(),
    })
}

/// The environment variables this module passes between programs: internal, so removed from
/// the environment the application sees (see [`take_inherited`]).
pub const INTERNAL_ENV: [&str; 2] = [ENV_LISTEN_FD, ENV_OLD_WORKERS];

/// Reads what a previous program handed over and removes it from the environment, so the
/// application and its children never see it. Call first, while this is the only thread.
pub fn take_inherited() {
    inherited();
    for k in INTERNAL_ENV {
        // SAFETY (of the std call's contract): start-up runs before any other thread exists.
        std::env::remove_var(k);
    }
}

/// Records the directory the program started in (call before detaching changes it): the
/// command line may hold paths relative to it (`./manage.py runfcgi …`).
pub fn remember_start_dir() {
    if let Ok(d) = std::env::current_dir() {
        let _ = START_DIR.set(d);
    }
}

/// The directory the program started in, as [`remember_start_dir`] recorded it.
pub fn start_dir() -> Option<&'static std::path::Path> {
    START_DIR.get().map(PathBuf::as_path)
}

/// True when this process is a re-executed server (it must not detach or bind again).
pub fn is_reexec() -> bool {
    inherited().listen_fd.is_some()
}

/// The listening socket inherited from the previous program, if any.
pub fn inherited_listener() -> Option<RawFd> {
    inherited().listen_fd
}

/// The previous generation's workers, if any.
pub fn inherited_old_workers() -> Vec<i32> {
    inherited().old_workers.clone()
}

/// Replaces this program with a fresh copy of itself, same arguments, handing over
/// `listen_fd` (made inheritable by the caller) and the draining workers. Returns only on
/// failure.
pub fn reexec(listen_fd: RawFd, old_workers: &[i32]) -> io::Error {
    let old: Vec<String> = old_workers.iter().map(ToString::to_string).collect();
    // The environment is passed explicitly (execve) rather than modified in place: other
    // threads (Python's) may still be reading it.
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != ENV_LISTEN_FD && k != ENV_OLD_WORKERS)
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    for (k, v) in [
        (ENV_LISTEN_FD, listen_fd.to_string()),
        (ENV_OLD_WORKERS, old.join(",")),
    ] {
        env.push(CString::new(format!("{k}={v}")).expect("no NUL in numbers"));
    }
    if let Some(d) = START_DIR.get() {
        if let Err(e) = std::env::set_current_dir(d) {
            return e;
        }
    }
    let args: Vec<OsString> = std::env::args_os().collect();
    let cargs: Result<Vec<CString>, _> = args.iter().map(|a| CString::new(a.as_bytes())).collect();
    let exe = CString::new("/proc/self/exe").expect("no NUL in a literal");
    match cargs {
        Ok(cargs) => match nix::unistd::execve(&exe, &cargs, &env) {
            Err(e) => io::Error::from(e),
            Ok(never) => match never {},
        },
        Err(e) => io::Error::new(io::ErrorKind::InvalidInput, e),
    }
}
