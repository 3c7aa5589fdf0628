//! Daemon duties: detaching, log files, the pid file, dropping privileges.

use crate::options::Account;
use nix::unistd::{
    getgroups, getresgid, getresuid, initgroups, setgroups, setresgid, setresuid, Gid, Uid, User,
};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
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
///
/// # Safety
///
/// The calling process must have no other thread: in the child only the calling thread
/// exists, and any lock another thread held (the allocator's, stdio's) stays locked forever.
pub unsafe fn native_fork() -> io::Result<Forked> {
    // SAFETY: the caller guarantees this process is single-threaded (see above).
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
}

/// Where the server's log (stderr) and the application's stdout go: opened before the
/// privilege drop (and before detaching, so a bad path is said on the terminal), applied in
/// the foreground too.
#[derive(Debug)]
pub struct Logs {
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    /// What the log is, for the line printed when detaching: a path, syslog, or the terminal.
    pub describe: String,
}

/// The log of a server detached without `errlog`: syslog through `/dev/log` when there is
/// one, else this file in the directory ferrocgi started in (never /dev/null).
pub const DEFAULT_LOG_FILE: &str = "ferrocgi.log";
const SYSLOG_SOCKET: &str = "/dev/log";

impl Logs {
    /// Opens `outlog` and `errlog`. A file created here gets mode 0640 and, when the process
    /// will drop its privileges, the target user as owner, so it can reopen the file after the
    /// drop (SIGUSR1). Detached without `errlog`, stderr (and stdout, unless `outlog`) go to
    /// syslog, else to [`DEFAULT_LOG_FILE`] in `start_dir`.
    pub fn open(
        outlog: Option<&Path>,
        errlog: Option<&Path>,
        detached: bool,
        start_dir: &Path,
        owner: Option<(u32, u32)>,
    ) -> io::Result<Logs> {
        let out = outlog.map(|p| open_log_file(p, owner)).transpose()?;
        let (err, describe) = match errlog {
            Some(p) => (Some(open_log_file(p, owner)?), p.display().to_string()),
            None if !detached => (None, "the terminal".to_string()),
            None => match syslog_socket() {
                Some(fd) => (Some(fd), format!("syslog ({SYSLOG_SOCKET})")),
                None => {
                    let p = start_dir.join(DEFAULT_LOG_FILE);
                    (Some(open_log_file(&p, owner)?), p.display().to_string())
                }
            },
        };
        Ok(Logs { out, err, describe })
    }

    /// Points stdout and stderr at the logs (where given); stdin too, at /dev/null, when
    /// `detached`. Without `outlog`, a detached process's stdout joins its log.
    pub fn apply(&self, detached: bool) -> io::Result<()> {
        if detached {
            dup_onto(File::open("/dev/null")?.as_fd(), 0)?;
        }
        match (&self.out, &self.err) {
            (Some(out), _) => dup_onto(out.as_fd(), 1)?,
            (None, Some(err)) if detached => dup_onto(err.as_fd(), 1)?,
            _ => {}
        }
        if let Some(err) = &self.err {
            dup_onto(err.as_fd(), 2)?;
        }
        Ok(())
    }
}

/// A datagram socket connected to the system log, if one listens: each line written to it
/// becomes one message (the syslog daemon assigns the default facility and priority).
fn syslog_socket() -> Option<OwnedFd> {
    let sock = std::os::unix::net::UnixDatagram::unbound().ok()?;
    sock.connect(SYSLOG_SOCKET).ok()?;
    Some(sock.into())
}

/// Detaches from the terminal: fork, setsid, fork again; returns in the grandchild only, with
/// the [`Started`] it must report on. The middle process waits for that report, then prints
/// `ferrocgi: running in the background as pid N; logs: …` and exits 0, or says the server
/// failed to start and exits 1 (an application that does not import stops the command, as it
/// does in the foreground). The first process waits for the middle one, so the line comes
/// before the shell's prompt.
pub fn daemonize(opts: &DaemonOptions, logs: &Logs, fork: ForkFn<'_>) -> io::Result<Started> {
    if let Forked::Parent(child) = fork()? {
        let code = match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => code,
            _ => 1,
        };
        exit_now(code);
    }
    nix::unistd::setsid().map_err(io::Error::from)?;
    let (report_r, report_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    if let Forked::Parent(daemon) = fork()? {
        drop(report_w);
        let mut started = [0u8; 1];
        let ok = matches!(File::from(report_r).read(&mut started), Ok(1));
        if ok {
            eprintln!(
                "ferrocgi: running in the background as pid {daemon}; logs: {}",
                logs.describe
            );
            exit_now(0);
        }
        eprintln!(
            "ferrocgi: the server (pid {daemon}) stopped while starting; its error is in the log: {}",
            logs.describe
        );
        exit_now(1);
    }
    drop(report_r);
    std::env::set_current_dir(&opts.workdir).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot change to workdir {}: {e}", opts.workdir.display()),
        )
    })?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(opts.umask));
    logs.apply(true)?;
    Ok(Started(Some(report_w)))
}

/// A detached server's report to the command that started it: [`Started::ok`] once it
/// serves; dropped unsent (an error, an exit), the command says it failed and exits 1.
#[derive(Debug, Default)]
pub struct Started(Option<OwnedFd>);

impl Started {
    /// Nobody waits (the server did not detach).
    pub fn none() -> Self {
        Started(None)
    }

    /// The server is ready: the starting command prints its line and exits 0.
    pub fn ok(mut self) {
        if let Some(fd) = self.0.take() {
            let _ = File::from(fd).write_all(b"1");
        }
    }
}

/// Closes the descriptors above 2 that this process inherited (those without close-on-exec:
/// Python and Rust open their own files close-on-exec, so a file the application or its
/// settings opened stays open), except `keep`: what the shell or a parent left open must not
/// live on in a daemon and in the programs its application starts.
pub fn close_inherited_fds(keep: &[RawFd]) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let open: Vec<RawFd> = fs::read_dir("/proc/self/fd")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
        // SAFETY: `fd` was listed open a moment ago in this single-threaded process; one that
        // closed since (the directory's own) only makes fcntl fail, which skips it.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let inherited = fcntl(borrowed, FcntlArg::F_GETFD)
            .is_ok_and(|f| !FdFlag::from_bits_truncate(f).contains(FdFlag::FD_CLOEXEC));
        if inherited {
            // SAFETY: no Rust handle owns an inheritable descriptor here: every one this
            // program opens is close-on-exec, and the listener, the exception, is kept.
            unsafe { nix::libc::close(fd) };
        }
    }
    Ok(())
}

/// Opens a log file for appending, without following a symbolic link at `path` (root may
/// open it in a directory another user can write). A file created here is mode 0640 and
/// given to `owner` (uid, gid) when set and different from ours.
pub(crate) fn open_log_file(path: &Path, owner: Option<(u32, u32)>) -> io::Result<OwnedFd> {
    let context = |e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("cannot open log file {}: {e}", path.display()),
        )
    };
    let opts = |create: bool| {
        let mut o = no_follow(0o640);
        o.append(true).create_new(create);
        o
    };
    let file = match opts(true).open(path) {
        Ok(f) => {
            if let Some((uid, gid)) = owner.filter(|(u, _)| *u != Uid::effective().as_raw()) {
                nix::unistd::fchown(&f, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                    .map_err(|e| context(e.into()))?;
            }
            f
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            opts(false).open(path).map_err(context)?
        }
        Err(e) => return Err(context(e)),
    };
    Ok(file.into())
}

/// Creates `path`, which must not exist, with `mode` (less the umask), without following a
/// symbolic link at `path`.
pub(crate) fn create_new_file(path: &Path, mode: u32) -> io::Result<File> {
    no_follow(mode).write(true).create_new(true).open(path)
}

/// Options for files root may create in a directory another user can write: a symbolic link
/// at the path is never followed, the mode is explicit (less the umask), the descriptor is
/// close-on-exec.
fn no_follow(mode: u32) -> OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = OpenOptions::new();
    o.mode(mode)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC);
    o
}

fn dup_onto(fd: BorrowedFd<'_>, target: i32) -> io::Result<()> {
    // SAFETY: dup2 onto 0/1/2 only replaces this process's standard streams, which nothing
    // holds a Rust-owned handle to (std's Stdout writes to fd 1 whatever it points to).
    let r = unsafe { nix::libc::dup2(fd.as_raw_fd(), target) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reopens `outlog`/`errlog` onto stdout/stderr (SIGUSR1, after logrotate moved them). Runs
/// after the privilege drop: the files are created (or opened) as the unprivileged user.
pub fn reopen_logs(outlog: Option<&Path>, errlog: Option<&Path>) -> io::Result<()> {
    if let Some(p) = outlog {
        dup_onto(open_log_file(p, None)?.as_fd(), 1)?;
    }
    if let Some(p) = errlog {
        dup_onto(open_log_file(p, None)?.as_fd(), 2)?;
    }
    Ok(())
}

/// A pid file, removed at drop if it still names this process.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    pid: i32,
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
        if pid != std::process::id() as i32 && pid > 0 && crate::listener::is_live_ferrocgi(pid) {
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
    ///
    /// Runs as root in a directory another user may write to, so the temporary file is created
    /// the only safe way (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0644): a link planted at its name is
    /// removed (unlink does not follow it), never written through. The rename replaces `path`
    /// itself, even when `path` is a link.
    pub fn write(path: &Path) -> io::Result<PidFile> {
        let pid = std::process::id() as i32;
        let tmp = path.with_extension(format!("tmp.{pid}"));
        let context = |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("cannot write pid file {}: {e}", path.display()),
            )
        };
        let mut f = match create_new_file(&tmp, 0o644) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                fs::remove_file(&tmp).map_err(context)?;
                create_new_file(&tmp, 0o644)
            }
            other => other,
        }
        .map_err(context)?;
        writeln!(f, "{pid}").map_err(context)?;
        drop(f);
        fs::rename(&tmp, path).map_err(context)?;
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

/// The uid and gid [`drop_privileges`] will switch to, if it will: the owner to give files
/// created before the drop that the process must still open afterwards.
pub fn target_ids(user: Option<&Account>, group: Option<&Account>) -> Option<(u32, u32)> {
    let target = Target::resolve(user, group).ok()??;
    let uid = target.uid.unwrap_or_else(Uid::current).as_raw();
    Some((uid, target.gid.as_raw()))
}

/// Switches to `user` and `group` (after binding, so privileged ports and socket paths work).
///
/// The whole identity changes, as php-fpm and gunicorn do it: the group defaults to the user's
/// primary group, the supplementary groups become the user's own (initgroups), and the real,
/// effective and saved ids all change. With only `group`, the uid stays and the supplementary
/// groups become that one group. Afterwards every id is checked: if one is still 0 while the
/// target is not root, this fails rather than run the application with root's powers.
pub fn drop_privileges(user: Option<&Account>, group: Option<&Account>) -> io::Result<()> {
    let Some(target) = Target::resolve(user, group)? else {
        return Ok(());
    };
    target.switch()?;
    target.verify()?;
    let uid = target.uid.unwrap_or_else(Uid::current).as_raw();
    info!(uid, gid = target.gid.as_raw(), "dropped privileges");
    Ok(())
}

/// Warns, before the privilege drop, about each of `files` (the pid file, the socket) that the
/// unprivileged process will not be able to remove at exit because its directory does not let
/// `user` delete entries. Such a file is harmless (the next start replaces a stale socket or
/// pid file) but untidy; the fix is a directory the user owns (systemd's `RuntimeDirectory=`).
pub fn warn_if_left_behind(files: &[&Path], user: Option<&Account>, group: Option<&Account>) {
    use std::os::unix::fs::MetadataExt;
    let Ok(Some(target)) = Target::resolve(user, group) else {
        return;
    };
    let uid = target.uid.unwrap_or_else(Uid::current).as_raw();
    for file in files {
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let Ok(md) = fs::metadata(dir) else { continue };
        let sticky = md.mode() & 0o1000 != 0;
        let removable = (md.uid() == uid && md.mode() & 0o200 != 0)
            || (!sticky && md.mode() & 0o002 != 0)
            || (!sticky && md.gid() == target.gid.as_raw() && md.mode() & 0o020 != 0);
        if !removable {
            warn!(
                file = %file.display(),
                dir = %dir.display(),
                uid,
                "after the privilege drop this file cannot be removed at exit (its directory does not let the user delete it); the next start replaces it. Use a directory the user owns (systemd: RuntimeDirectory=)"
            );
        }
    }
}

/// The identity [`drop_privileges`] switches to.
struct Target {
    uid: Option<Uid>,
    gid: Gid,
    /// The user name for initgroups: `None` when only a group, or a uid with no passwd entry.
    name: Option<CString>,
}

impl Target {
    fn resolve(user: Option<&Account>, group: Option<&Account>) -> io::Result<Option<Target>> {
        let entry = match user {
            Some(u) => User::from_uid(Uid::from_raw(u.id)).map_err(io::Error::from)?,
            None => None,
        };
        let gid = match (group, &entry, user) {
            (Some(g), _, _) => Gid::from_raw(g.id),
            (None, Some(e), _) => e.gid,
            (None, None, Some(u)) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "user {} has no entry in the user database, so its group is unknown: give group= too",
                        u.name
                    ),
                ))
            }
            (None, None, None) => return Ok(None),
        };
        let name = entry
            .map(|e| CString::new(e.name))
            .transpose()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "user name holds a NUL"))?;
        Ok(Some(Target {
            uid: user.map(|u| Uid::from_raw(u.id)),
            gid,
            name,
        }))
    }

    fn switch(&self) -> io::Result<()> {
        let denied = |what: String| {
            move |e: nix::Error| {
                io::Error::new(io::ErrorKind::PermissionDenied, format!("{what}: {e}"))
            }
        };
        if Uid::effective().is_root() {
            match &self.name {
                Some(name) => initgroups(name, self.gid)
                    .map_err(denied(format!("initgroups({name:?}, {})", self.gid)))?,
                None => {
                    setgroups(&[self.gid]).map_err(denied(format!("setgroups([{}])", self.gid)))?
                }
            }
        }
        setresgid(self.gid, self.gid, self.gid).map_err(denied(format!("setgid({})", self.gid)))?;
        if let Some(u) = self.uid {
            setresuid(u, u, u).map_err(denied(format!("setuid({u})")))?;
        }
        Ok(())
    }

    /// Fails if root's ids survived the switch (when the target is not root itself).
    fn verify(&self) -> io::Result<()> {
        let ids = getresuid().map_err(io::Error::from)?;
        let gids = getresgid().map_err(io::Error::from)?;
        let groups = getgroups().map_err(io::Error::from)?;
        let want_uid = self.uid.unwrap_or_else(Uid::current);
        let uid_root = [ids.real, ids.effective, ids.saved]
            .iter()
            .any(|u| u.is_root());
        let gid_root = [gids.real, gids.effective, gids.saved]
            .iter()
            .chain(&groups)
            .any(|g| g.as_raw() == 0);
        if (uid_root && !want_uid.is_root()) || (gid_root && self.gid.as_raw() != 0) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "privileges not fully dropped (uids {ids:?}, gids {gids:?}, groups {groups:?}); refusing to go on"
                ),
            ));
        }
        Ok(())
    }
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

    #[test]
    fn pidfile_temp_file_does_not_follow_a_planted_symlink() {
        let dir = std::env::temp_dir().join(format!("ferrocgi-pidlink-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        fs::write(&victim, "precious\n").unwrap();
        let path = dir.join("x.pid");
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        let pf = PidFile::write(&path).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(
            fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o644, 0, "mode {mode:o}");
        drop(pf);
        fs::remove_dir_all(&dir).unwrap();
    }
}
