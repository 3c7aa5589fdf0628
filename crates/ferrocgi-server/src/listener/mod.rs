//! Listening sockets: TCP (IPv4/IPv6), Unix sockets, and an already-open listening fd.
//!
//! Binding happens before the async runtime exists (a prefork supervisor binds once, then
//! forks), so listeners hold `std` sockets and are turned into tokio ones by [`crate::Server`].

mod ipnet;

pub use ipnet::IpNet;

use std::fmt;
use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use tracing::info;

/// Default `listen()` backlog: what nginx uses on Linux (511) rounded up; the kernel caps it at
/// `net.core.somaxconn`.
pub const DEFAULT_BACKLOG: i32 = 1024;

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindAddr {
    /// A TCP address; `[::]` listens on IPv6 (and IPv4, as the system's default allows).
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
    /// An inherited, already listening socket (TCP or Unix).
    Fd(RawFd),
}

impl fmt::Display for BindAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindAddr::Tcp(a) => write!(f, "{a}"),
            BindAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            BindAddr::Fd(fd) => write!(f, "fd:{fd}"),
        }
    }
}

/// Options for a Unix socket file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnixSocketOptions {
    /// Permission bits set on the socket file after binding (e.g. `0o660`); `None` leaves what
    /// the process umask gave.
    pub mode: Option<u32>,
    /// Owner uid and gid set on the socket file after binding.
    pub owner: Option<(Option<u32>, Option<u32>)>,
}

/// A bound, listening socket.
#[derive(Debug)]
pub struct Listener {
    pub(crate) sock: ListenSock,
    desc: String,
    /// Removes the socket file at exit, if it is still the one we created.
    _guard: Option<SocketFileGuard>,
}

#[derive(Debug)]
pub(crate) enum ListenSock {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// Binds and listens on `addr`.
    pub fn bind(addr: &BindAddr, unix: &UnixSocketOptions, backlog: i32) -> io::Result<Listener> {
        match addr {
            BindAddr::Tcp(a) => Self::bind_tcp(*a, backlog),
            BindAddr::Unix(p) => Self::bind_unix(p, unix, backlog),
            BindAddr::Fd(fd) => Self::from_fd(*fd),
        }
    }

    /// Binds a TCP socket with SO_REUSEADDR (a restart must not wait out TIME_WAIT).
    pub fn bind_tcp(addr: SocketAddr, backlog: i32) -> io::Result<Listener> {
        use socket2::{Domain, Socket, Type};
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        sock.set_reuse_address(true)?;
        retry_in_use(&addr.to_string(), Holder::Tcp(addr.port()), || {
            sock.bind(&addr.into())
        })
        .map_err(|e| annotate(e, &format!("cannot bind {addr}")))?;
        sock.listen(backlog)?;
        sock.set_nonblocking(true)?;
        let l: TcpListener = sock.into();
        let desc = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
        Ok(Listener {
            sock: ListenSock::Tcp(l),
            desc,
            _guard: None,
        })
    }

    /// Binds a Unix socket, replacing a stale socket file left by a dead server; refuses to
    /// touch a live server's socket or a file that is not a socket. A server still releasing
    /// the socket (a restart script stops the old one and starts us at once) is waited for, up
    /// to [`RELEASE_WAIT`].
    pub fn bind_unix(path: &Path, opts: &UnixSocketOptions, backlog: i32) -> io::Result<Listener> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "cannot bind unix socket {}: the directory {} does not exist (create it first; with systemd, RuntimeDirectory=)",
                        path.display(),
                        dir.display()
                    ),
                ));
            }
        }
        retry_in_use(&path.display().to_string(), Holder::Unix(path), || {
            clear_stale_socket(path)
        })?;
        use socket2::{Domain, SockAddr, Socket, Type};
        let sock = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        // The mode is the socket file's from its creation (umask around bind), and the owner
        // changes without following a link: the directory may be writable by another user,
        // who must not make root chmod or chown a file of their choosing by swapping the path.
        let addr = SockAddr::unix(path)?;
        with_umask(opts.mode.map(|m| !m & 0o777), || sock.bind(&addr))
            .map_err(|e| annotate(e, &format!("cannot bind unix socket {}", path.display())))?;
        let guard = SocketFileGuard::new(path)?;
        if let Some((uid, gid)) = opts.owner {
            nix::unistd::fchownat(
                nix::fcntl::AT_FDCWD,
                path,
                uid.map(nix::unistd::Uid::from_raw),
                gid.map(nix::unistd::Gid::from_raw),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| annotate(e.into(), &format!("cannot chown {}", path.display())))?;
            if !guard.still_ours() {
                return Err(io::Error::other(format!(
                    "{} was replaced while it was being set up; refusing to go on",
                    path.display()
                )));
            }
        }
        sock.listen(backlog)?;
        sock.set_nonblocking(true)?;
        Ok(Listener {
            sock: ListenSock::Unix(sock.into()),
            desc: format!("unix:{}", path.display()),
            _guard: Some(guard),
        })
    }

    /// Takes over an inherited listening socket, which stays open across `exec` in programs
    /// the application starts unless marked close-on-exec: [`Listener::from_fd`], then that.
    /// For sockets handed over by systemd or a re-exec; not fd 0 (a spawned server's stdin).
    pub fn from_inherited_fd(fd: RawFd) -> io::Result<Listener> {
        use nix::fcntl::{fcntl, FcntlArg, FdFlag};
        fcntl(fd_checked(fd)?, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(io::Error::from)?;
        Self::from_fd(fd)
    }

    /// Takes over an inherited listening socket (FCGI_LISTENSOCK_FILENO, `fd=N`, systemd).
    pub fn from_fd(fd: RawFd) -> io::Result<Listener> {
        use nix::sys::socket::{
            getsockname, getsockopt, sockopt, AddressFamily, SockaddrLike, SockaddrStorage,
        };
        let borrowed = fd_checked(fd)?;
        if !getsockopt(&borrowed, sockopt::AcceptConn).map_err(io::Error::from)? {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("fd {fd} is a socket but not a listening one"),
            ));
        }
        let addr: SockaddrStorage = getsockname(borrowed.as_raw_fd()).map_err(io::Error::from)?;
        let family = addr.family();
        // SAFETY: `fd` was just checked to be an open listening socket; the caller hands its
        // ownership to this listener (it must not use or close the fd afterwards).
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let sock = match family {
            Some(AddressFamily::Unix) => ListenSock::Unix(UnixListener::from(owned)),
            Some(AddressFamily::Inet) | Some(AddressFamily::Inet6) => {
                ListenSock::Tcp(TcpListener::from(owned))
            }
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("fd {fd}: unsupported socket family {other:?}"),
                ))
            }
        };
        match &sock {
            ListenSock::Tcp(l) => l.set_nonblocking(true)?,
            ListenSock::Unix(l) => l.set_nonblocking(true)?,
        }
        let desc = match &sock {
            ListenSock::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            ListenSock::Unix(l) => match l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(Path::to_path_buf))
            {
                Some(p) => format!("unix:{} (fd {fd})", p.display()),
                None => format!("unix (fd {fd})"),
            },
        };
        Ok(Listener {
            sock,
            desc,
            _guard: None,
        })
    }

    /// A second handle on the same socket that never removes the socket file: what a prefork
    /// worker serves with (the supervisor owns the file).
    pub fn try_clone_unguarded(&self) -> io::Result<Listener> {
        let sock = match &self.sock {
            ListenSock::Tcp(l) => ListenSock::Tcp(l.try_clone()?),
            ListenSock::Unix(l) => ListenSock::Unix(l.try_clone()?),
        };
        Ok(Listener {
            sock,
            desc: self.desc.clone(),
            _guard: None,
        })
    }

    /// Closes this handle without removing the socket file: what a forked worker does with
    /// the supervisor's handles it inherited (the file is the supervisor's to remove).
    pub fn close_unguarded(mut self) {
        if let Some(g) = self._guard.take() {
            std::mem::forget(g);
        }
    }

    /// Gives the socket up for a successor process (graceful reload by re-exec): the fd is
    /// kept open across exec and the socket file is not removed.
    pub fn into_inheritable_fd(mut self) -> io::Result<RawFd> {
        let fd = self.as_raw_fd();
        nix::fcntl::fcntl(
            // SAFETY: `fd` is owned by `self`, alive until the forget below (then forever).
            unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .map_err(io::Error::from)?;
        if let Some(g) = self._guard.take() {
            std::mem::forget(g);
        }
        std::mem::forget(self);
        Ok(fd)
    }

    /// Takes charge of removing the Unix socket file at exit (a listener inherited from the
    /// process this one replaced).
    pub fn adopt_socket_file(&mut self) {
        if let ListenSock::Unix(l) = &self.sock {
            if let Some(p) = l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(Path::to_path_buf))
            {
                self._guard = SocketFileGuard::new(&p).ok();
            }
        }
    }

    /// The TCP address actually bound (useful with port 0).
    pub fn local_tcp_addr(&self) -> Option<SocketAddr> {
        match &self.sock {
            ListenSock::Tcp(l) => l.local_addr().ok(),
            ListenSock::Unix(_) => None,
        }
    }

    /// The raw fd, e.g. to hand to a child process.
    pub fn as_raw_fd(&self) -> RawFd {
        match &self.sock {
            ListenSock::Tcp(l) => l.as_raw_fd(),
            ListenSock::Unix(l) => l.as_raw_fd(),
        }
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.desc)
    }
}

fn fd_checked(fd: RawFd) -> io::Result<std::os::fd::BorrowedFd<'static>> {
    use nix::sys::stat::{fstat, SFlag};
    // SAFETY: F_GETFD only reads the descriptor flags; it is defined for any integer.
    if fd < 0 || unsafe { nix::libc::fcntl(fd, nix::libc::F_GETFD) } == -1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {fd} is not open"),
        ));
    }
    // SAFETY: F_GETFD just showed `fd` is open; the borrow is used only for the checks in
    // `from_fd`, before ownership of the fd is taken.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let st = fstat(borrowed).map_err(io::Error::from)?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFSOCK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("fd {fd} is not a socket"),
        ));
    }
    Ok(borrowed)
}

/// How long binding waits for a previous server to release its address.
pub const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Where to look for the process holding an address that is in use.
enum Holder<'a> {
    Tcp(u16),
    Unix(&'a Path),
}

/// Binding's retry: a previous ferrocgi still releasing the address (a restart script stops
/// the old server and starts us at once) is waited for, up to [`RELEASE_WAIT`]; an address
/// held by anything else is an error at once, naming the holder when /proc shows it.
fn retry_in_use(
    what: &str,
    holder: Holder<'_>,
    mut f: impl FnMut() -> io::Result<()>,
) -> io::Result<()> {
    let deadline = std::time::Instant::now() + RELEASE_WAIT;
    let mut said = false;
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                let held_by = holding_process(&holder);
                let ours = held_by
                    .as_ref()
                    .is_some_and(|(pid, _)| is_live_ferrocgi(*pid));
                if !ours || std::time::Instant::now() >= deadline {
                    let by = match held_by {
                        Some((pid, cmd)) => format!(" (held by pid {pid}: {cmd})"),
                        None => String::new(),
                    };
                    return Err(io::Error::new(
                        e.kind(),
                        format!("{what} is already in use{by}"),
                    ));
                }
                if !said {
                    info!("{what} is still in use by a ferrocgi; waiting up to {RELEASE_WAIT:?} for it to be released");
                    said = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// The process (pid, command line) holding the listening socket `holder` names, found through
/// /proc: the socket's inode in /proc/net/{tcp,tcp6,unix}, then the fd that points at it.
fn holding_process(holder: &Holder<'_>) -> Option<(i32, String)> {
    let inode = match holder {
        Holder::Tcp(port) => ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .find_map(|f| listening_tcp_inode(&fs::read_to_string(f).ok()?, *port))?,
        Holder::Unix(path) => unix_inode(&fs::read_to_string("/proc/net/unix").ok()?, path)?,
    };
    let target = format!("socket:[{inode}]");
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str()));
        if holds {
            let cmd = fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd)
                .replace('\0', " ")
                .trim()
                .to_string();
            return Some((pid, cmd));
        }
    }
    None
}

/// The inode of a TCP socket listening on `port`, from /proc/net/tcp's text.
fn listening_tcp_inode(table: &str, port: u16) -> Option<u64> {
    let want = format!(":{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let listening = cols.get(3) == Some(&"0A");
        (listening && cols.get(1)?.ends_with(&want)).then(|| cols.get(9)?.parse().ok())?
    })
}

/// The inode of the Unix socket bound at `path`, from /proc/net/unix's text.
fn unix_inode(table: &str, path: &Path) -> Option<u64> {
    let want = path.to_str()?;
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.get(7) == Some(&want)).then(|| cols.get(6)?.parse().ok())?
    })
}

/// Runs `f` with the process umask set to `mask` (when given), then restores it. Start-up
/// binds before any other thread exists, so no other file creation sees the temporary mask.
fn with_umask<T>(mask: Option<u32>, f: impl FnOnce() -> T) -> T {
    use nix::sys::stat::{umask, Mode};
    let Some(mask) = mask else { return f() };
    let old = umask(Mode::from_bits_truncate(mask));
    let out = f();
    umask(old);
    out
}

fn annotate(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Removes a socket file nobody listens on; errors if a server is alive on it or the path is
/// not a socket (never delete a user's regular file because of a typo in `socket=`).
fn clear_stale_socket(path: &Path) -> io::Result<()> {
    let md = match fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(annotate(e, &format!("cannot inspect {}", path.display()))),
    };
    if !md.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            ),
        ));
    }
    // Non-blocking: a live server with a full backlog must not hang us (that is "in use" too).
    let probe = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    probe.set_nonblocking(true)?;
    let in_use = || {
        io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} is in use by a running server", path.display()),
        )
    };
    match probe.connect(&socket2::SockAddr::unix(path)?) {
        Ok(()) => Err(in_use()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(in_use()),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            fs::remove_file(path)?;
            info!(path = %path.display(), "removed stale socket file");
            Ok(())
        }
        Err(e) => Err(annotate(
            e,
            &format!("cannot check socket {}", path.display()),
        )),
    }
}

/// Deletes the socket file on drop, but only if it is still the file this process created: a
/// restart may already have replaced it with the new server's socket.
#[derive(Debug)]
struct SocketFileGuard {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFileGuard {
    fn new(path: &Path) -> io::Result<Self> {
        let md = fs::symlink_metadata(path)?;
        Ok(SocketFileGuard {
            path: path.to_path_buf(),
            dev: md.dev(),
            ino: md.ino(),
        })
    }
}

impl SocketFileGuard {
    /// True while the path still names the socket file this process created.
    fn still_ours(&self) -> bool {
        fs::symlink_metadata(&self.path)
            .is_ok_and(|md| md.dev() == self.dev && md.ino() == self.ino)
    }
}

impl Drop for SocketFileGuard {
    fn drop(&mut self) {
        if self.still_ours() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// True if `pid` is a live process that looks like a ferrocgi (its command line mentions
/// ferrocgi or runfcgi/runfastcgi), not some unrelated process that reused the pid.
pub(crate) fn is_live_ferrocgi(pid: i32) -> bool {
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("ferrocgi-listener-{}-{name}", std::process::id()));
        let _ = fs::remove_file(&d);
        d
    }

    #[test]
    fn unix_socket_mode_stale_replace_and_cleanup() {
        let p = tmp("a.sock");
        let opts = UnixSocketOptions {
            mode: Some(0o666),
            owner: None,
        };
        let l = Listener::bind_unix(&p, &opts, 16).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o666
        );
        // A live server's socket is refused.
        let err = Listener::bind_unix(&p, &opts, 16).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        drop(l);
        assert!(!p.exists(), "socket file removed at drop");

        // A stale socket (bound, never listening: connect is refused) is replaced.
        // Closing a listener leaves its file behind with nobody listening.
        drop(UnixListener::bind(&p).unwrap());
        assert!(p.exists());
        let l2 = Listener::bind_unix(&p, &UnixSocketOptions::default(), 16).unwrap();
        drop(l2);
        assert!(!p.exists());
    }

    #[test]
    fn regular_file_is_not_replaced() {
        let p = tmp("plain");
        fs::write(&p, b"keep me").unwrap();
        let err = Listener::bind_unix(&p, &UnixSocketOptions::default(), 16).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"keep me");
        fs::remove_file(&p).unwrap();
    }

    #[test]
    fn guard_leaves_a_replaced_socket_alone() {
        let p = tmp("b.sock");
        let l = Listener::bind_unix(&p, &UnixSocketOptions::default(), 16).unwrap();
        // Another server replaced the file (as a restart script does): our exit must keep it.
        fs::remove_file(&p).unwrap();
        let other = UnixListener::bind(&p).unwrap();
        drop(l);
        assert!(p.exists());
        drop(other);
        fs::remove_file(&p).unwrap();
    }

    #[test]
    fn from_fd_rejects_non_sockets_and_takes_tcp() {
        let f = fs::File::open("/dev/null").unwrap();
        let err = Listener::from_fd(f.as_raw_fd()).unwrap_err();
        assert!(err.to_string().contains("not a socket"), "{err}");

        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        let fd = std::os::fd::IntoRawFd::into_raw_fd(tcp);
        let l = Listener::from_fd(fd).unwrap();
        assert_eq!(l.local_tcp_addr(), Some(addr));
    }
}
