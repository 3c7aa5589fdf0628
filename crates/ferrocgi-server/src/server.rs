//! The accept loop, the limits that apply across connections, and graceful shutdown.

use crate::config::ServerConfig;
use crate::conn::{self, codec, Lazy, Phase};
use crate::handler::Handler;
use crate::listener::{ListenSock, Listener};
use crate::load::{Load, ServerCtx};
use crate::protocol::Protocol;
use ferrocgi_proto::{ajp13, fastcgi, scgi};
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::sync::{watch, Semaphore};
use tracing::{debug, error, info, warn};

/// A listener, a configuration and an application.
pub struct Server<H> {
    /// `None` for a server made by [`Server::cgi`].
    listener: Option<Listener>,
    ctx: Arc<ServerCtx<H>>,
    accept_gate: Option<usize>,
    accept_limit: Option<u64>,
}

impl<H: Handler> Server<H> {
    /// Prepares a server; nothing runs until [`Server::run`].
    pub fn new(listener: Listener, config: ServerConfig, handler: H) -> Self {
        Self::build(Some(listener), config, handler)
    }

    /// A server for one CGI request ([`Server::serve_cgi`]); it has no listener.
    pub fn cgi(config: ServerConfig, handler: H) -> Self {
        Self::build(None, config, handler)
    }

    fn build(listener: Option<Listener>, mut config: ServerConfig, handler: H) -> Self {
        // FCGI_GET_VALUES must report what this server really accepts.
        config.fastcgi.max_conns = u32::try_from(config.max_connections).unwrap_or(u32::MAX);
        config.fastcgi.max_reqs = u32::try_from(config.max_in_flight).unwrap_or(u32::MAX);
        let slots = Arc::new(Semaphore::new(config.max_in_flight));
        Server {
            listener,
            ctx: Arc::new(ServerCtx {
                handler: Arc::new(handler),
                config,
                slots,
                load: Arc::new(watch::Sender::new(Load::default())),
                wake_on_start: AtomicBool::new(false),
            }),
            accept_gate: None,
            accept_limit: None,
        }
    }

    /// The request counts, updated as requests start and finish.
    pub fn load(&self) -> watch::Receiver<Load> {
        self.ctx.load.subscribe()
    }

    /// Accepts new connections only while fewer than `n` requests are in flight: a busy
    /// prefork worker leaves new connections to its idle siblings (they share the socket).
    pub fn accept_only_below(mut self, n: usize) -> Self {
        self.accept_gate = Some(n.max(1));
        self
    }

    /// Accepts no connection once `n` requests have started (a prefork worker's
    /// `maxrequests`): the next connection stays in the backlog for a sibling, instead of
    /// reaching a worker on its way out.
    pub fn accept_until_started(mut self, n: u64) -> Self {
        self.accept_limit = Some(n.max(1));
        self.ctx.wake_on_start.store(true, Ordering::Relaxed);
        self
    }

    /// Serves until `stop` resolves, then closes the listening socket (removing its file), lets
    /// requests in flight finish (up to the graceful timeout) and returns. Must run inside a
    /// tokio runtime.
    pub async fn run(self, stop: impl Future<Output = ()>) -> io::Result<()> {
        self.run_until(async {
            stop.await;
            Stop::Close
        })
        .await
        .map(drop)
    }

    /// Like [`Server::run`], but `stop` says what becomes of the listening socket: closed at
    /// once (so a restarted server can bind it while this one drains), or kept and handed back
    /// (a reload passes it to the next process; connections wait in the backlog meanwhile).
    pub async fn run_until(self, stop: impl Future<Output = Stop>) -> io::Result<Option<Listener>> {
        let Server {
            listener,
            ctx,
            accept_gate,
            accept_limit,
        } = self;
        let listener = listener.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a CGI server has no listener to run",
            )
        })?;
        let desc = listener.to_string();
        let accept = Acceptor::new(&listener.sock, &ctx.config)?;
        let conns = Arc::new(Semaphore::new(ctx.config.max_connections));
        let (stop_tx, stop_rx) = watch::channel(Phase::Serving);
        info!(protocol = %ctx.config.protocol, "listening on {desc}");
        if matches!(listener.sock, ListenSock::Unix(_)) && !ctx.config.allow_from.is_empty() {
            warn!("allow_from applies to TCP peers only; this Unix socket is guarded by its file mode and owner");
        }
        let gates = AcceptGates {
            below: accept_gate,
            until_started: accept_limit,
        };
        let how = accept_loop(&accept, &ctx, &conns, &stop_rx, gates, stop).await;

        info!(listen = %desc, "stopping: no new connections; finishing requests in flight");
        if how == Stop::Close {
            take_queued(&accept, &ctx, &conns, &stop_rx);
        }
        drop(accept);
        let kept = match how {
            Stop::Close | Stop::Retire => {
                drop(listener);
                None
            }
            Stop::KeepListener => Some(listener),
        };
        let _ = stop_tx.send(if how == Stop::Retire {
            Phase::Retiring
        } else {
            Phase::Draining
        });
        wait_for_connections(&ctx.config, &conns).await;
        Ok(kept)
    }
}

/// Logs refused connections at most once a second, with a count of those it did not log: a
/// flood of connections from outside `allow_from` must not flood the log too.
#[derive(Default)]
struct RefusalLog {
    last: Option<std::time::Instant>,
    unlogged: u64,
}

impl RefusalLog {
    fn refused(&mut self, peer: &str) {
        let now = std::time::Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.unlogged += 1;
            return;
        }
        let unlogged = std::mem::take(&mut self.unlogged);
        self.last = Some(now);
        warn!(peer, unlogged, "refused connection from {peer}: not in allow_from / FCGI_WEB_SERVER_ADDRS (refusals are logged at most once a second; unlogged: refused since the last line)");
    }
}

/// What [`Server::run_until`] does with the listening socket when it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Close it at once and remove its socket file.
    Close,
    /// Keep it open and return it.
    KeepListener,
    /// Close it at once, and close idle kept-alive connections without waiting for one more
    /// request on them (a prefork worker that served `maxrequests`).
    Retire,
}

impl<H: Handler> Server<H> {
    /// Serves exactly one request as plain CGI — `params` from the environment, the body from
    /// stdin, the response to stdout — then returns. The listener is not used.
    pub async fn serve_cgi(self, params: ferrocgi_proto::Params) -> io::Result<()> {
        use tokio::io::AsyncReadExt;
        let codec = codec::Cgi::new(params.clone());
        let len = codec::declared_length(&params).unwrap_or(0);
        // Never read past the body: stdin may be a terminal that never ends.
        let stream = tokio::io::join(tokio::io::stdin().take(len), tokio::io::stdout());
        let (_tx, stop) = watch::channel(Phase::Serving);
        self.ctx.fresh_started();
        conn::run_connection(stream, codec, Arc::from("cgi"), self.ctx, stop).await;
        Ok(())
    }
}

enum Stream {
    Tcp(Lazy<std::net::TcpStream>),
    Unix(Lazy<std::os::unix::net::UnixStream>),
}

/// The listening socket as the runtime watches it. Connections are accepted with `accept4`
/// here rather than by tokio's listeners, whose streams come registered with the runtime:
/// ours are registered only if they must wait ([`Lazy`]).
struct Acceptor {
    fd: AsyncFd<socket2::Socket>,
    tcp: bool,
}

impl Acceptor {
    fn new(sock: &ListenSock, config: &ServerConfig) -> io::Result<Self> {
        let (owned, tcp): (OwnedFd, bool) = match sock {
            ListenSock::Tcp(l) => (l.try_clone()?.into(), true),
            ListenSock::Unix(l) => (l.try_clone()?.into(), false),
        };
        let sock = socket2::Socket::from(owned);
        sock.set_nonblocking(true)?;
        if tcp {
            // Without it, a response written as several segments meets Nagle plus delayed ACK
            // on kept-alive connections: a 40 ms stall per request. Set on the listener, every
            // accepted socket inherits it (Linux), one system call less per connection.
            sock.set_tcp_nodelay(true)?;
            defer_accept(&sock, config.idle_timeout);
        }
        // SAFETY: `sock` owns its descriptor, and the AsyncFd owns `sock` until it is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(sock, tokio::io::Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Acceptor { fd, tcp })
    }

    async fn accept(&self) -> io::Result<(Stream, Arc<str>, Option<std::net::IpAddr>)> {
        loop {
            let mut ready = self.fd.readable().await?;
            if let Ok(accepted) = ready.try_io(|_| self.accept_now()) {
                return accepted;
            }
        }
    }

    /// One `accept4` without waiting (`WouldBlock` when nothing is queued).
    fn accept_now(&self) -> io::Result<(Stream, Arc<str>, Option<std::net::IpAddr>)> {
        let flags = nix::libc::SOCK_NONBLOCK | nix::libc::SOCK_CLOEXEC;
        let (sock, addr) = self.fd.get_ref().accept4(flags)?;
        if !self.tcp {
            let s = std::os::unix::net::UnixStream::from(OwnedFd::from(sock));
            return Ok((Stream::Unix(Lazy::new(s)), Arc::from("unix"), None));
        }
        let addr = addr
            .as_socket()
            .ok_or_else(|| io::Error::other("a TCP connection without an IP peer address"))?;
        let s = std::net::TcpStream::from(sock);
        Ok((
            Stream::Tcp(Lazy::new(s)),
            addr.to_string().into(),
            Some(addr.ip()),
        ))
    }
}

/// `TCP_DEFER_ACCEPT`: the kernel hands a connection over with its first bytes. Every protocol
/// served here speaks first from the front end, so nothing waits for it, and a connection
/// accepted this way is read at once instead of after a wait for its request. One that sends
/// nothing is held by the kernel (a half-open slot) for up to `idle_timeout` (60 s without one),
/// the time it would be given here anyway, instead of taking a connection slot and, under
/// prefork, making a worker look busy. uWSGI sets it by default. Failure only costs the saving.
fn defer_accept(sock: &socket2::Socket, idle_timeout: Option<Duration>) {
    use std::os::fd::AsRawFd;
    let secs = idle_timeout.map_or(60, |t| t.as_secs().clamp(1, 3600) as i32);
    // SAFETY: a valid socket descriptor, an int option of the documented size.
    let r = unsafe {
        nix::libc::setsockopt(
            sock.as_raw_fd(),
            nix::libc::IPPROTO_TCP,
            nix::libc::TCP_DEFER_ACCEPT,
            std::ptr::from_ref(&secs).cast(),
            std::mem::size_of::<i32>() as nix::libc::socklen_t,
        )
    };
    if r != 0 {
        debug!(error = %io::Error::last_os_error(), "TCP_DEFER_ACCEPT not set");
    }
}

/// The accept loop's limits: accept only while fewer than `below` requests are busy (a prefork
/// worker), and no more once `until_started` requests have started (a retiring one).
#[derive(Clone, Copy)]
struct AcceptGates {
    below: Option<usize>,
    until_started: Option<u64>,
}

/// Accepts connections and starts a task for each, within the limits, until `stop` says how
/// to stop.
async fn accept_loop<H: Handler>(
    accept: &Acceptor,
    ctx: &Arc<ServerCtx<H>>,
    conns: &Arc<Semaphore>,
    stop_rx: &watch::Receiver<Phase>,
    gates: AcceptGates,
    stop: impl Future<Output = Stop>,
) -> Stop {
    let mut load = ctx.load.subscribe();
    let mut limit_load = ctx.load.subscribe();
    let mut refusals = RefusalLog::default();

    tokio::pin!(stop);
    loop {
        if let Some(gate) = gates.below {
            tokio::select! {
                _ = load.wait_for(|l| l.busy() < gate) => {},
                s = &mut stop => return s,
            }
        }
        let permit = tokio::select! {
            p = conns.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            s = &mut stop => return s,
        };
        let limit_reached = async {
            match gates.until_started {
                Some(n) => drop(limit_load.wait_for(|l| l.started >= n).await),
                None => std::future::pending().await,
            }
        };
        let accepted = tokio::select! {
            // First: a connection that arrives as the last request starts is not taken.
            biased;
            _ = limit_reached => return (&mut stop).await,
            s = &mut stop => return s,
            a = accept.accept() => a,
        };
        let (stream, peer, ip) = match accepted {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning, keep serving.
                error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if ip.is_some_and(|ip| !allowed(&ctx.config, ip)) {
            refusals.refused(&peer);
            continue;
        }
        spawn_connection(ctx, stream, peer, stop_rx, permit);
    }
}

/// Accepts the connections already queued on the socket before it is closed for good: the
/// kernel resets them at the close, after the web server sent their requests (a front end does
/// not retry a POST it sent; it does retry a refused connection). Each is served as a
/// stopping connection: its request, then the close.
fn take_queued<H: Handler>(
    accept: &Acceptor,
    ctx: &Arc<ServerCtx<H>>,
    conns: &Arc<Semaphore>,
    stop_rx: &watch::Receiver<Phase>,
) {
    let mut taken = 0;
    loop {
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            break; // max_connections: the rest wait in vain, as they would have anyway
        };
        let Ok((stream, peer, ip)) = accept.accept_now() else {
            break; // WouldBlock: the queue is empty
        };
        if ip.is_some_and(|ip| !allowed(&ctx.config, ip)) {
            continue;
        }
        taken += 1;
        spawn_connection(ctx, stream, peer, stop_rx, permit);
    }
    if taken > 0 {
        info!(
            connections = taken,
            "took the connections queued before the stop"
        );
    }
}

fn allowed(config: &ServerConfig, ip: std::net::IpAddr) -> bool {
    let allow = &config.allow_from;
    allow.is_empty() || allow.iter().any(|net| net.contains(ip))
}

fn spawn_connection<H: Handler>(
    ctx: &Arc<ServerCtx<H>>,
    stream: Stream,
    peer: Arc<str>,
    stop_rx: &watch::Receiver<Phase>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    debug!("accepted connection from {peer}");
    ctx.fresh_started();
    let ctx = ctx.clone();
    let stop_rx = stop_rx.clone();
    // Boxed: the connection's future is kilobytes, and a task moves its future several times
    // as it is spawned and dropped; a box moves once.
    tokio::spawn(Box::pin(async move {
        connection(stream, peer, ctx, stop_rx).await;
        drop(permit);
    }));
}

/// Waits for the connections to finish, up to `graceful_timeout`.
async fn wait_for_connections(config: &ServerConfig, conns: &Semaphore) {
    let all = u32::try_from(config.max_connections).unwrap_or(u32::MAX);
    match tokio::time::timeout(config.graceful_timeout, conns.acquire_many(all)).await {
        Ok(_) => info!("all connections closed"),
        Err(_) => warn!(
            timeout = ?config.graceful_timeout,
            "graceful timeout reached; abandoning requests still in flight"
        ),
    }
}

async fn connection<H: Handler>(
    stream: Stream,
    peer: Arc<str>,
    ctx: Arc<ServerCtx<H>>,
    stop: watch::Receiver<Phase>,
) {
    match stream {
        Stream::Tcp(s) => connection_with_codec(s, peer, ctx, stop).await,
        Stream::Unix(s) => connection_with_codec(s, peer, ctx, stop).await,
    }
}

async fn connection_with_codec<S, H>(
    s: S,
    peer: Arc<str>,
    ctx: Arc<ServerCtx<H>>,
    stop: watch::Receiver<Phase>,
) where
    S: conn::Transport,
    H: Handler,
{
    let cfg = &ctx.config;
    match cfg.protocol {
        Protocol::Fastcgi => {
            let c = codec::Fastcgi(fastcgi::Connection::new(cfg.fastcgi.clone()));
            conn::run_connection(s, c, peer, ctx, stop).await
        }
        Protocol::Scgi => {
            let c = codec::Scgi(scgi::Connection::new(cfg.scgi.clone()));
            conn::run_connection(s, c, peer, ctx, stop).await
        }
        Protocol::Cgi => {
            error!("CGI is served by Server::serve_cgi, not on a listener; closing {peer}");
        }
        Protocol::Ajp13 => {
            let c = codec::Ajp13 {
                conn: ajp13::Connection::new(cfg.ajp.clone()),
                secret: cfg.ajp_secret.clone(),
                refused: false,
            };
            conn::run_connection(s, c, peer, ctx, stop).await
        }
    }
}
