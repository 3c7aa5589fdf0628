//! [`Options::validate`]: every range and cross-field rule, one line per problem.

use super::{bad, invalid, Method, Options, OptionsError, AJP_PACKET_SIZES, MAX_SOCKET_PATH};

impl Options {
    /// Checks every range and cross-field rule; the first problem is the error. [`parse`](super::parse)
    /// calls it; call it yourself after building or changing `Options` in Rust.
    pub fn validate(&self) -> Result<(), OptionsError> {
        self.check_fields()?;
        self.check_sizes()?;
        self.check_address()?;
        self.check_pool()
    }

    /// One field at a time, in `--help` order.
    fn check_fields(&self) -> Result<(), OptionsError> {
        if self.ajp_secret.is_some() && self.ajp_secret_file.is_some() {
            return Err(bad(
                "ajp_secret_file",
                "give ajp_secret or ajp_secret_file, not both".to_string(),
            ));
        }
        if let Some(sock) = &self.socket {
            let n = sock.as_os_str().len();
            if n > MAX_SOCKET_PATH {
                return Err(bad(
                    "socket",
                    format!(
                        "the path is {n} bytes; Unix socket paths are limited to {MAX_SOCKET_PATH}"
                    ),
                ));
            }
        }
        if self.maxchildren == 0 {
            return Err(bad("maxchildren", "must be at least 1"));
        }
        if let Some(p) = self.script_name.as_deref().and_then(script_name_problem) {
            return Err(bad("script_name", p));
        }
        Ok(())
    }

    /// Limits that size buffers and queues.
    fn check_sizes(&self) -> Result<(), OptionsError> {
        if !AJP_PACKET_SIZES.contains(&self.ajp_packet_size) {
            return Err(bad(
                "ajp_packet_size",
                format!(
                    "{} is not between {} and {}",
                    self.ajp_packet_size,
                    AJP_PACKET_SIZES.start(),
                    AJP_PACKET_SIZES.end()
                ),
            ));
        }
        if self.threads == 0 {
            return Err(bad("threads", "must be at least 1"));
        }
        for (name, v) in [
            ("max_connections", self.max_connections),
            ("max_in_flight", self.max_in_flight),
            ("backlog", usize::try_from(self.backlog).unwrap_or(0)),
        ] {
            if v == 0 {
                return Err(bad(name, "must be at least 1"));
            }
        }
        if self.max_params_bytes < 1024 {
            return Err(bad(
                "max_params_bytes",
                format!("{} is less than 1K", self.max_params_bytes),
            ));
        }
        if self.max_params < 16 {
            // Every front end sends a dozen CGI variables before any header.
            return Err(bad(
                "max_params",
                format!("{} is less than 16", self.max_params),
            ));
        }
        Ok(())
    }

    /// Across fields: one address, and the socket options only with a socket.
    fn check_address(&self) -> Result<(), OptionsError> {
        let tcp = self.host.is_some() || self.port.is_some();
        if self.fd.is_some() && (tcp || self.socket.is_some()) {
            return Err(invalid(
                "fd",
                "cannot be combined with host, port or socket",
                "fd=3, or socket=/tmp/mysite.sock, or host=127.0.0.1 port=3033",
            ));
        }
        if self.socket.is_some() && tcp {
            return Err(invalid(
                "socket",
                "cannot be combined with host or port",
                "socket=/tmp/mysite.sock, or host=127.0.0.1 port=3033",
            ));
        }
        if self.host.is_some() && self.port.is_none() {
            return Err(invalid(
                "host",
                "needs port too",
                "host=127.0.0.1 port=3033",
            ));
        }
        if self.socket.is_none() {
            if self.socket_mode.is_some() {
                return Err(invalid(
                    "socket_mode",
                    "applies only with socket",
                    "socket=/tmp/mysite.sock socket_mode=660",
                ));
            }
            if self.socket_owner.is_some() {
                return Err(invalid(
                    "socket_owner",
                    "applies only with socket",
                    "socket=/tmp/mysite.sock socket_owner=www-data",
                ));
            }
        }
        Ok(())
    }

    /// Across fields: the process pool's bounds.
    fn check_pool(&self) -> Result<(), OptionsError> {
        if self.access_log_format != crate::access::Format::default() && self.access_log.is_none() {
            return Err(invalid(
                "access_log_format",
                "applies only with access_log",
                "access_log=/var/log/mysite/access.log access_log_format='%(h)s \"%(r)s\" %(s)s'",
            ));
        }
        if self.maxrequests_jitter > 0 && self.maxrequests == 0 {
            return Err(invalid(
                "maxrequests_jitter",
                "applies only with maxrequests",
                "maxrequests=1000 maxrequests_jitter=100",
            ));
        }
        if self.minspare > self.maxspare {
            return Err(invalid(
                "minspare",
                format!("{} is more than maxspare={}", self.minspare, self.maxspare),
                "minspare=2 maxspare=5",
            ));
        }
        if self.maxspare > self.maxchildren {
            return Err(invalid(
                "maxspare",
                format!(
                    "{} is more than maxchildren={}",
                    self.maxspare, self.maxchildren
                ),
                "maxspare=5 maxchildren=50",
            ));
        }
        if self.method == Method::Threaded && self.threads > self.maxchildren {
            return Err(invalid(
                "threads",
                format!(
                    "{} is more than maxchildren={}, the thread limit of method=threaded",
                    self.threads, self.maxchildren
                ),
                "method=threaded threads=16 maxchildren=16",
            ));
        }
        Ok(())
    }
}

/// What is wrong with a `script_name` value, if anything.
fn script_name_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        None
    } else if !s.starts_with('/') {
        Some(format!("{s:?} must start with '/'"))
    } else if s.ends_with('/') {
        Some(format!(
            "{s:?} must not end with '/' (the site root is script_name= )"
        ))
    } else if s.contains(|c: char| c == '?' || c == '#' || c.is_whitespace() || c.is_control()) {
        Some(format!(
            "{s:?} must be a plain path (no '?', '#' or spaces)"
        ))
    } else {
        None
    }
}
