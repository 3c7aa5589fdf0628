//! The accept loop, the limits that apply across connections, and graceful shutdown.

use crate::config::ServerConfig;
use crate::conn::{self, codec, Phase};
use crate::handler::Handler;
use crate::listener::{ListenSock, Listener};
use crate::load::{Load, ServerCtx};
use crate::protocol::Protocol;
use ferrocgi_proto::{ajp13, fastcgi, scgi};
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;
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
        let accept = Acceptor::new(&listener.sock)?;
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
            take_queued(&listener.sock, &ctx, &conns, &stop_rx);
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
        self.ctx.load.send_modify(|l| l.fresh += 1);
        conn::run_connection(stream, codec, Arc::from("cgi"), self.ctx, stop).await;
        Ok(())
    }
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

enum Acceptor {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

impl Acceptor {
    fn new(sock: &ListenSock) -> io::Result<Self> {
        Ok(match sock {
            ListenSock::Tcp(l) => Acceptor::Tcp(tokio::net::TcpListener::from_std(l.try_clone()?)?),
            ListenSock::Unix(l) => {
                Acceptor::Unix(tokio::net::UnixListener::from_std(l.try_clone()?)?)
            }
        })
    }

    async fn accept(&self) -> io::Result<(Stream, Arc<str>, Option<std::net::IpAddr>)> {
        match self {
            Acceptor::Tcp(l) => {
                let (s, a) = l.accept().await?;
                // Without it, a response written as several segments meets Nagle plus delayed
                // ACK on kept-alive connections: a 40 ms stall per request.
                s.set_nodelay(true)?;
                Ok((Stream::Tcp(s), a.to_string().into(), Some(a.ip())))
            }
            Acceptor::Unix(l) => {
                let (s, _) = l.accept().await?;
                Ok((Stream::Unix(s), Arc::from("unix"), None))
            }
        }
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
    sock: &ListenSock,
    ctx: &Arc<ServerCtx<H>>,
    conns: &Arc<Semaphore>,
    stop_rx: &watch::Receiver<Phase>,
) {
    let mut taken = 0;
    loop {
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            break; // max_connections: the rest wait in vain, as they would have anyway
        };
        let accepted = match sock {
            ListenSock::Tcp(l) => l.accept().and_then(|(s, a)| {
                s.set_nonblocking(true)?;
                s.set_nodelay(true)?;
                let s = tokio::net::TcpStream::from_std(s)?;
                Ok((
                    Stream::Tcp(s),
                    Arc::<str>::from(a.to_string()),
                    Some(a.ip()),
                ))
            }),
            ListenSock::Unix(l) => l.accept().and_then(|(s, _)| {
                s.set_nonblocking(true)?;
                let s = tokio::net::UnixStream::from_std(s)?;
                Ok((Stream::Unix(s), Arc::<str>::from("unix"), None))
            }),
        };
        let Ok((stream, peer, ip)) = accepted else {
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
    ctx.load.send_modify(|l| l.fresh += 1);
    let ctx = ctx.clone();
    let stop_rx = stop_rx.clone();
    tokio::spawn(async move {
        connection(stream, peer, ctx, stop_rx).await;
        drop(permit);
    });
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
