//! A connection's socket, registered with the runtime only once it must wait.
//!
//! A front end that opens a connection per request (nginx's SCGI, any uwsgi-style pass) has its
//! whole request in the socket when the connection is accepted, and the response fits in the
//! socket's buffer. Read and written directly on the non-blocking socket, such a connection is
//! served without ever entering the runtime's epoll set: no `epoll_ctl` to add it, none to
//! remove it, and no trip through `epoll_wait` for a first read tokio would otherwise make
//! wait for an event even with the bytes already there. The first `WouldBlock` registers it,
//! and from then on tokio's stream does the work (epoll reports readiness that arrived
//! between that `WouldBlock` and the registration, so no wake-up is lost).

use super::Transport;
use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A non-blocking std socket and the tokio stream it becomes.
pub(crate) trait Plain: AsFd + Sized + Unpin
where
    for<'a> &'a Self: Read + Write,
{
    type Registered: AsyncRead + AsyncWrite + AsFd + Unpin;
    /// TCP: corking and resets apply (a Unix socket has neither).
    const TCP: bool;
    fn register(self) -> io::Result<Self::Registered>;
    fn shutdown_write(&self) -> io::Result<()>;
}

impl Plain for std::net::TcpStream {
    type Registered = tokio::net::TcpStream;
    const TCP: bool = true;
    fn register(self) -> io::Result<Self::Registered> {
        tokio::net::TcpStream::from_std(self)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

impl Plain for std::os::unix::net::UnixStream {
    type Registered = tokio::net::UnixStream;
    const TCP: bool = false;
    fn register(self) -> io::Result<Self::Registered> {
        tokio::net::UnixStream::from_std(self)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

enum State<P: Plain>
where
    for<'a> &'a P: Read + Write,
{
    Plain(P),
    Registered(P::Registered),
    /// Registration failed (the error was returned); nothing more can be done with it.
    Lost,
}

/// See the module documentation. `P` must already be non-blocking.
pub(crate) struct Lazy<P: Plain>(State<P>)
where
    for<'a> &'a P: Read + Write;

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl<P: Plain> Lazy<P>
where
    for<'a> &'a P: Read + Write,
{
    pub(crate) fn new(sock: P) -> Self {
        Lazy(State::Plain(sock))
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.0 {
            State::Plain(p) => Some(p.as_fd()),
            State::Registered(r) => Some(r.as_fd()),
            State::Lost => None,
        }
    }

    /// Moves to the registered state after a `WouldBlock`, and returns the tokio stream.
    fn registered(&mut self) -> io::Result<Pin<&mut P::Registered>> {
        if let State::Plain(_) = self.0 {
            let State::Plain(p) = std::mem::replace(&mut self.0, State::Lost) else {
                unreachable!("matched just above")
            };
            self.0 = State::Registered(p.register()?);
        }
        match &mut self.0 {
            State::Registered(r) => Ok(Pin::new(r)),
            _ => Err(io::Error::new(io::ErrorKind::NotConnected, "socket lost")),
        }
    }

    /// `plain` on the socket directly while it is unregistered; at its `WouldBlock` (or once
    /// registered) `registered` on tokio's stream. `arg` goes to whichever runs.
    fn poll_io<A, T>(
        &mut self,
        arg: A,
        plain: impl FnOnce(&P, &mut A) -> io::Result<T>,
        registered: impl FnOnce(Pin<&mut P::Registered>, A) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let mut arg = arg;
        if let Some(r) = self.try_plain(|p| plain(p, &mut arg)) {
            return Poll::Ready(r);
        }
        match self.registered() {
            Ok(r) => registered(r, arg),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// One direct attempt on the plain socket: `None` when it must wait (or is registered).
    fn try_plain<T>(&mut self, op: impl FnOnce(&P) -> io::Result<T>) -> Option<io::Result<T>> {
        let State::Plain(p) = &self.0 else {
            return None;
        };
        match op(p) {
            Err(e) if would_block(&e) => None,
            r => Some(r),
        }
    }
}

impl<P: Plain> AsyncRead for Lazy<P>
where
    for<'a> &'a P: Read + Write,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().poll_io(
            buf,
            |p, buf| {
                // SAFETY: recv writes only initialised bytes into the slice and reports how many.
                let n = socket2::SockRef::from(p).recv(unsafe { buf.unfilled_mut() })?;
                // SAFETY: the first `n` unfilled bytes were written by recv just above.
                unsafe { buf.assume_init(n) };
                buf.advance(n);
                Ok(())
            },
            |r, buf| r.poll_read(cx, buf),
        )
    }
}

impl<P: Plain> AsyncWrite for Lazy<P>
where
    for<'a> &'a P: Read + Write,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_io(
            data,
            |mut p, data| p.write(data),
            |r, data| r.poll_write(cx, data),
        )
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_io(
            bufs,
            |mut p, bufs| p.write_vectored(bufs),
            |r, bufs| r.poll_write_vectored(cx, bufs),
        )
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            State::Registered(r) => Pin::new(r).poll_flush(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            State::Plain(p) => Poll::Ready(p.shutdown_write()),
            State::Registered(r) => Pin::new(r).poll_shutdown(cx),
            State::Lost => Poll::Ready(Ok(())),
        }
    }
}

impl<P: Plain> Transport for Lazy<P>
where
    for<'a> &'a P: Read + Write,
{
    fn reset_on_close(&self) {
        if let Some(fd) = self.fd().filter(|_| P::TCP) {
            let _ = socket2::SockRef::from(&fd).set_linger(Some(std::time::Duration::ZERO));
        }
    }

    fn cork(&self) {
        if let Some(fd) = self.fd().filter(|_| P::TCP) {
            let _ = socket2::SockRef::from(&fd).set_tcp_cork(true);
        }
    }

    fn quick_ack(&self) {
        if let Some(fd) = self.fd().filter(|_| P::TCP) {
            let _ = socket2::SockRef::from(&fd).set_tcp_quickack(true);
        }
    }

    fn nothing_unread(&self) -> bool {
        let Some(fd) = self.fd() else {
            return true;
        };
        let mut byte = [std::mem::MaybeUninit::new(0u8)];
        let peek = socket2::SockRef::from(&fd).recv_with_flags(&mut byte, libc_peek_dontwait());
        matches!(peek, Err(e) if would_block(&e))
    }
}

/// `MSG_PEEK | MSG_DONTWAIT`: a look that neither consumes nor waits.
fn libc_peek_dontwait() -> i32 {
    nix::sys::socket::MsgFlags::MSG_PEEK.bits() | nix::sys::socket::MsgFlags::MSG_DONTWAIT.bits()
}
