//! What file descriptor 0 is when no address was given: the web server's listening socket
//! (FCGI_LISTENSOCK_FILENO: Apache mod_fcgid, lighttpd `bin-path`, `cgi-fcgi -start`), or the
//! request itself as plain CGI (mod_cgi, or a `.fcgi` script run from a shell).

use nix::errno::Errno;

/// The kind of start, detected as flup and php-cgi do it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdin {
    /// fd 0 is a listening socket: serve FastCGI on it.
    ListeningSocket,
    /// fd 0 is not a socket (a pipe, a file, a terminal): serve one CGI request and exit.
    Cgi,
    /// fd 0 is a connected socket or closed: neither works.
    Other,
}

/// Looks at fd 0. `FCGI_FORCE_CGI=Y` forces CGI, as in flup.
pub fn detect() -> Stdin {
    if std::env::var("FCGI_FORCE_CGI").is_ok_and(|v| v.eq_ignore_ascii_case("y")) {
        return Stdin::Cgi;
    }
    match nix::sys::socket::getpeername::<nix::sys::socket::SockaddrStorage>(0) {
        Err(Errno::ENOTCONN) => Stdin::ListeningSocket,
        Err(Errno::ENOTSOCK) => Stdin::Cgi,
        _ => Stdin::Other,
    }
}

/// The variables of systemd's socket activation protocol (sd_listen_fds(3)).
pub const SYSTEMD_ENV: [&str; 3] = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];

static SYSTEMD_SOCKET: std::sync::OnceLock<Option<std::os::fd::RawFd>> = std::sync::OnceLock::new();

/// The first socket passed by systemd socket activation (`LISTEN_PID` is this process and
/// `LISTEN_FDS` ≥ 1: the socket is fd 3), if any. Read once: [`take_systemd_env`] removes
/// the variables.
pub fn systemd_socket() -> Option<std::os::fd::RawFd> {
    *SYSTEMD_SOCKET.get_or_init(|| {
        let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
        let fds: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
        (pid == std::process::id() && fds >= 1).then_some(3)
    })
}

/// Reads the socket-activation variables, then removes them (as `sd_listen_fds(1)` does), so
/// a program the application starts does not take itself for the activated service. Call at
/// start-up, while this is the only thread.
pub fn take_systemd_env() {
    systemd_socket();
    for k in SYSTEMD_ENV {
        std::env::remove_var(k);
    }
}
