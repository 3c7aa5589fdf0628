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

/// The first socket passed by systemd socket activation (`LISTEN_PID` is this process and
/// `LISTEN_FDS` ≥ 1: the socket is fd 3), if any.
pub fn systemd_socket() -> Option<std::os::fd::RawFd> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let fds: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    (pid == std::process::id() && fds >= 1).then_some(3)
}
