//! Daemon duties: detaching, log files, the pid file, dropping privileges.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use tracing::{info, warn};

/// Which side of a fork this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// The parent, with the child's pid.
    Parent(i32),
    /// The child.
    Child,
}

/// How to fork this process. A process hosting Python forks through `os.fork()`, so the
/// interpreter's own before/after-fork work runs; a pure-Rust process uses [`native_fork`].
pub type ForkFn<'a> = &'a mut dyn FnMut() -> io::Result<Forked>;

/// fork(2) for processes that run no other threads (the supervisor never does).
pub fn native_fork() -> io::Result<Forked> {
    // SAFETY: callers fork only from a single-threaded process (the supervisor and the
    // pre-daemon start-up run no runtime and no other thread), so the child may run any code.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw())),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// Ends this process at once: no destructors, no atexit handlers, no flushing of stdio
/// buffers copied from the parent (which would print their content twice).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) ends the process; it is async-signal-safe and touches no Rust state.
    unsafe { nix::libc::_exit(code) }
}

/// Settings for [`daemonize`].
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Directory to change to (`workdir`, `/` by default).
    pub workdir: PathBuf,
    /// Process umask (`umask`, 022 by default).
    pub umask: u32,
    /// Where stdout goes (`outlog`), else /dev/null.
    pub outlog: Option<PathBuf>,
    /// Where stderr — the server's log — goes (`errlog`), else /dev/null.
    pub errlog: Option<PathBuf>,
}

/// Detaches from the terminal: fork, setsid, fork again; returns in the grandchild only (the
/// two parents exit 0 at once, so the shell that started us gets its prompt back).
pub fn daemonize(opts: &DaemonOptions, fork: ForkFn<'_>) -> io::Result<()> {
    // Log files are opened before detaching, so a bad path is reported on the terminal.
    let out = open_log(opts.outlog.as_deref())?;
    let err = open_log(opts.errlog.as_deref())?;
    if let Forked::Parent(_) = fork()? {
        exit_now(0);
    }
    nix::unistd::setsid().map_err(io::Error::from)?;
    if let Forked::Parent(_) = fork()? {
        exit_now(0);
    }
    std::env::set_current_dir(&opts.workdir).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot change to workdir {}: {e}", opts.workdir.display()),
        )
    })?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(opts.umask));
    let null = File::open("/dev/null")?;
    dup_onto(&null, 0)?;
    dup_onto(&out, 1)?;
    dup_onto(&err, 2)?;
    Ok(())
}

fn open_log(path: Option<&Path>) -> io::Result<File> {
    match path {
        Some(p) => OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot open log file {}: {e}", p.display()),
                )
            }),
        None => OpenOptions::new().write(true).open("/dev/null"),
    }
}

fn dup_onto(f: &File, fd: i32) -> io::Result<()> {
    // SAFETY: dup2 onto 0/1/2 only replaces this process's standard streams, which nothing
    // holds a Rust-owned handle to (std's Stdout writes to fd 1 whatever it points to).
    let r = unsafe { nix::libc::dup2(f.as_raw_fd(), fd) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reopens `outlog`/`errlog` onto stdout/stderr (SIGUSR1, after logrotate moved them).
pub fn reopen_logs(outlog: Option<&Path>, errlog: Option<&Path>) -> io::Result<()> {
    if let Some(p) = outlog {
        dup_onto(&open_log(Some(p))?, 1)?;
    }
    if let Some(p) = errlog {
        dup_onto(&open_log(Some(p))?, 2)?;
    }
    Ok(())
}

/// A pid file, removed at drop if it still names this process.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    pid: i32,
}

/// True if `pid` is a live process that looks like a ferrocgi (its command line mentions
/// ferrocgi or runfcgi/runfastcgi), not some unrelated process that reused the pid.
fn is_live_ferrocgi(pid: i32) -> bool {
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
        return false;
    }
    match fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmd) => {
            // The ways ferrocgi is started: the `ferrocgi` script, `python -m ferrocgi`,
            // `manage.py runfcgi`, a `.fcgi` script calling runfastcgi().
            let args: Vec<String> = cmd
                .split(|&b| b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            args.iter().any(|a| {
                let base = a.rsplit('/').next().unwrap_or(a);
                base == "ferrocgi" || base == "runfcgi" || base.ends_with(".fcgi")
            }) || args.windows(2).any(|w| w[0] == "-m" && w[1] == "ferrocgi")
        }
        // No /proc: the pid is alive, assume the worst.
        Err(_) => true,
    }
}

impl PidFile {
    /// Refuses to start when `path` names a running ferrocgi other than this process; a stale
    /// file is left to be replaced by [`PidFile::write`].
    pub fn check(path: &Path) -> io::Result<()> {
        let Ok(text) = fs::read_to_string(path) else {
            return Ok(());
        };
        let Ok(pid) = text.trim().parse::<i32>() else {
            warn!(path = %path.display(), "pid file does not hold a pid; it will be replaced");
            return Ok(());
        };
        if pid != std::process::id() as i32 && pid > 0 && is_live_ferrocgi(pid) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "pid file {} names a running ferrocgi (pid {pid}): stop it first (kill {pid}) or use another pidfile",
                    path.display()
                ),
            ));
        }
        Ok(())
    }

    /// Writes this process's pid (atomically: a temporary file renamed over `path`).
    pub fn write(path: &Path) -> io::Result<PidFile> {
        let pid = std::process::id() as i32;
        let tmp = path.with_extension(format!("tmp.{pid}"));
        {
            let mut f = File::create(&tmp).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot write pid file {}: {e}", path.display()),
                )
            })?;
            writeln!(f, "{pid}")?;
        }
        fs::rename(&tmp, path)?;
        info!(path = %path.display(), pid, "wrote pid file");
        Ok(PidFile {
            path: path.to_path_buf(),
            pid,
        })
    }

    /// Forgets the file without removing it (a re-exec keeps it: the pid stays the same).
    pub fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // A restart script may already have started the next server, which wrote its own pid
        // here: leave its file alone.
        if fs::read_to_string(&self.path).is_ok_and(|t| t.trim() == self.pid.to_string()) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Switches to `gid` then `uid` (after binding, so privileged ports and socket paths work).
pub fn drop_privileges(uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
    if let Some(g) = gid {
        let g = Gid::from_raw(g);
        // Supplementary groups of root must not survive the switch.
        if Uid::effective().is_root() {
            setgroups(&[g]).map_err(io::Error::from)?;
        }
        setgid(g).map_err(|e| {
            io::Error::new(io::ErrorKind::PermissionDenied, format!("setgid({g}): {e}"))
        })?;
    }
    if let Some(u) = uid {
        let u = Uid::from_raw(u);
        setuid(u).map_err(|e| {
            io::Error::new(io::ErrorKind::PermissionDenied, format!("setuid({u}): {e}"))
        })?;
    }
    if uid.is_some() || gid.is_some() {
        info!(uid = ?uid, gid = ?gid, "dropped privileges");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pidfile_lifecycle() {
        let dir = std::env::temp_dir().join(format!("ferrocgi-pid-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.pid");
        // Stale (a pid that cannot exist) and garbage files are replaced.
        fs::write(&path, "999999999\n").unwrap();
        PidFile::check(&path).unwrap();
        fs::write(&path, "garbage").unwrap();
        PidFile::check(&path).unwrap();
        let pf = PidFile::write(&path).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
        // Our own pid is not "another running ferrocgi".
        PidFile::check(&path).unwrap();
        drop(pf);
        assert!(!path.exists());
        // A file rewritten by a successor is not removed.
        let pf = PidFile::write(&path).unwrap();
        fs::write(&path, "1\n").unwrap();
        drop(pf);
        assert_eq!(fs::read_to_string(&path).unwrap(), "1\n");
        fs::remove_dir_all(&dir).unwrap();
    }
}
