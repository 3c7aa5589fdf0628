//! The accept loop, the limits that apply across connections, and graceful shutdown.

use crate::conn::{self, codec};
use crate::handler::{Handler, Protocol};
use crate::listener::{ListenSock, Listener};
use bytes::Bytes;
use ferrocgi_proto::{ajp13, fastcgi, scgi};
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tracing::{debug, error, info, warn};

/// Default for [`ServerConfig::max_connections`]: enough for nginx/Apache keep-alive pools of
/// several workers; each connection costs two small buffers.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default for [`ServerConfig::max_in_flight`]: requests in flight at once across connections.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// Default for [`ServerConfig::graceful_timeout`].
pub const DEFAULT_GRACEFUL_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything the serving core needs to know, whichever entry point built it.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The protocol every connection on the listener speaks.
    pub protocol: Protocol,
    /// FastCGI codec settings (limits, multiplexing, values reported to FCGI_GET_VALUES).
    pub fastcgi: fastcgi::Config,
    /// SCGI codec settings.
    pub scgi: scgi::Config,
    /// AJP13 codec settings (max packet size, lighttpd body format).
    pub ajp: ajp13::Config,
    /// If set, AJP requests must carry this secret (Apache `secret=`, lighttpd `AJP13_SECRET`).
    pub ajp_secret: Option<Bytes>,
    /// Most connections open at once; past it the server stops accepting and new connections
    /// wait in the listen backlog.
    pub max_connections: usize,
    /// Most requests in flight at once; past it FastCGI answers FCGI_OVERLOADED and SCGI/AJP
    /// answer 503.
    pub max_in_flight: usize,
    /// How long a graceful stop waits for requests in flight before giving up on them.
    pub graceful_timeout: Duration,
}

impl ServerConfig {
    /// Defaults for `protocol`.
    pub fn new(protocol: Protocol) -> Self {
        ServerConfig {
            protocol,
            fastcgi: fastcgi::Config::default(),
            scgi: scgi::Config::default(),
            ajp: ajp13::Config::default(),
            ajp_secret: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            graceful_timeout: DEFAULT_GRACEFUL_TIMEOUT,
        }
    }
}

/// What every connection task shares.
pub(crate) struct ServerCtx<H> {
    pub(crate) handler: Arc<H>,
    pub(crate) config: ServerConfig,
    /// One permit per request in flight.
    pub(crate) slots: Arc<Semaphore>,
}

/// A listener, a configuration and an application.
pub struct Server<H> {
    listener: Listener,
    ctx: Arc<ServerCtx<H>>,
}

impl<H: Handler> Server<H> {
    /// Prepares a server; nothing runs until [`Server::run`].
    pub fn new(listener: Listener, mut config: ServerConfig, handler: H) -> Self {
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
            }),
        }
    }

    /// Serves until `stop` resolves, then stops accepting, lets requests in flight finish (up
    /// to the graceful timeout) and returns. Must run inside a tokio runtime.
    pub async fn run(self, stop: impl Future<Output = ()>) -> io::Result<()> {
        let Server { listener, ctx } = self;
        let desc = listener.to_string();
        let accept = Acceptor::new(&listener.sock)?;
        let conns = Arc::new(Semaphore::new(ctx.config.max_connections));
        let (stop_tx, stop_rx) = watch::channel(false);
        info!(listen = %desc, protocol = %ctx.config.protocol, "listening on {desc}");

        tokio::pin!(stop);
        loop {
            let permit = tokio::select! {
                p = conns.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                _ = &mut stop => break,
            };
            let accepted = tokio::select! {
                a = accept.accept() => a,
                _ = &mut stop => break,
            };
            let (stream, peer) = match accepted {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning, keep serving.
                    error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            debug!("accepted connection from {peer}");
            let ctx = ctx.clone();
            let stop_rx = stop_rx.clone();
            tokio::spawn(async move {
                serve_stream(stream, peer, ctx, stop_rx).await;
                drop(permit);
            });
        }

        info!(listen = %desc, "stopping: no new connections; finishing requests in flight");
        drop(accept);
        let _ = stop_tx.send(true);
        let all = u32::try_from(ctx.config.max_connections).unwrap_or(u32::MAX);
        match tokio::time::timeout(ctx.config.graceful_timeout, conns.acquire_many(all)).await {
            Ok(_) => info!("all connections closed"),
            Err(_) => warn!(
                timeout = ?ctx.config.graceful_timeout,
                "graceful timeout reached; abandoning requests still in flight"
            ),
        }
        drop(listener);
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

    async fn accept(&self) -> io::Result<(Stream, Arc<str>)> {
        match self {
            Acceptor::Tcp(l) => {
                let (s, a) = l.accept().await?;
                // Without it, a response written as several segments meets Nagle plus delayed
                // ACK on kept-alive connections: a 40 ms stall per request (FRONTENDS.md §3).
                s.set_nodelay(true)?;
                Ok((Stream::Tcp(s), a.to_string().into()))
            }
            Acceptor::Unix(l) => {
                let (s, _) = l.accept().await?;
                Ok((Stream::Unix(s), Arc::from("unix")))
            }
        }
    }
}

async fn serve_stream<H: Handler>(
    stream: Stream,
    peer: Arc<str>,
    ctx: Arc<ServerCtx<H>>,
    stop: watch::Receiver<bool>,
) {
    match stream {
        Stream::Tcp(s) => serve_protocol(s, peer, ctx, stop).await,
        Stream::Unix(s) => serve_protocol(s, peer, ctx, stop).await,
    }
}

async fn serve_protocol<S, H>(
    s: S,
    peer: Arc<str>,
    ctx: Arc<ServerCtx<H>>,
    stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    H: Handler,
{
    let cfg = &ctx.config;
    match cfg.protocol {
        Protocol::Fastcgi => {
            let c = codec::Fcgi(fastcgi::Connection::new(cfg.fastcgi.clone()));
            conn::serve(s, c, peer, ctx, stop).await
        }
        Protocol::Scgi => {
            let c = codec::Scgi(scgi::Connection::new(cfg.scgi.clone()));
            conn::serve(s, c, peer, ctx, stop).await
        }
        Protocol::Ajp13 => {
            let c = codec::Ajp {
                conn: ajp13::Connection::new(cfg.ajp.clone()),
                secret: cfg.ajp_secret.clone(),
                refused: false,
            };
            conn::serve(s, c, peer, ctx, stop).await
        }
    }
}
