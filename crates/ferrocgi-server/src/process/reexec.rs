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

/// Records the directory the program started in (call before detaching changes it): the
/// command line may hold paths relative to it (`./manage.py runfcgi …`).
pub fn remember_start_dir() {
    if let Ok(d) = std::env::current_dir() {
        let _ = START_DIR.set(d);
    }
}

/// True when this process is a re-executed server (it must not detach or bind again).
pub fn is_reexec() -> bool {
    std::env::var_os(ENV_LISTEN_FD).is_some()
}

/// The listening socket inherited from the previous program, if any.
pub fn inherited_listener() -> Option<RawFd> {
    std::env::var(ENV_LISTEN_FD).ok()?.parse().ok()
}

/// The previous generation's workers, if any.
pub fn inherited_old_workers() -> Vec<i32> {
    std::env::var(ENV_OLD_WORKERS)
        .unwrap_or_default()
        .split(',')
        .filter_map(|p| p.parse().ok())
        .collect()
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
