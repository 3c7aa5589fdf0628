//! [`ServerConfig`]: everything the serving core needs to know, whichever entry point built
//! it, and its defaults.

use crate::protocol::Protocol;
use bytes::Bytes;
use ferrocgi_proto::{ajp13, fastcgi, scgi};
use std::time::Duration;

/// Default for [`ServerConfig::max_connections`]: enough for nginx/Apache keep-alive pools of
/// several workers; each connection costs two small buffers.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default for [`ServerConfig::max_in_flight`]: requests in flight at once across connections.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// Default for [`ServerConfig::graceful_timeout`].
pub const DEFAULT_GRACEFUL_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `head_timeout`.
pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `min_body_rate`, bytes a second.
pub const DEFAULT_MIN_BODY_RATE: u64 = 1024;

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
    /// TCP peers allowed to connect (addresses and CIDR ranges); empty: anyone. Unix-socket
    /// peers are governed by the socket file's permissions instead.
    pub allow_from: Vec<crate::listener::IpNet>,
    /// A kept-alive connection with no request for this long is closed.
    pub idle_timeout: Option<Duration>,
    /// A request head or body that stops arriving for this long ends its connection (a
    /// slowloris front end, or a web server that hung).
    pub read_timeout: Option<Duration>,
    /// A front end that takes no response bytes for this long loses its connection.
    pub write_timeout: Option<Duration>,
    /// A request head (FastCGI BEGIN_REQUEST and PARAMS, the SCGI netstring, the AJP forward
    /// request) must arrive within this time of its first byte, however it trickles.
    pub head_timeout: Option<Duration>,
    /// A body slower than this many bytes a second, averaged over `read_timeout`, is cut off;
    /// 0: no minimum.
    pub min_body_rate: u64,
    /// The server's own pages: status and ping.
    pub status: crate::status::StatusConfig,
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
            allow_from: Vec::new(),
            idle_timeout: Some(Duration::from_secs(60)),
            read_timeout: Some(Duration::from_secs(60)),
            write_timeout: Some(Duration::from_secs(60)),
            head_timeout: Some(DEFAULT_HEAD_TIMEOUT),
            min_body_rate: DEFAULT_MIN_BODY_RATE,
            status: crate::status::StatusConfig::default(),
        }
    }
}
