//! AJP 1.3, container side.
//!
//! # Theory of operation
//!
//! AJP13 is packet-oriented and not multiplexed: one request at a time per connection, and
//! connections are reused (Apache keeps them open and honours `reuse` in END_RESPONSE).
//! Packets from the web server are `0x12 0x34` + u16 length + payload; packets from the
//! container are `'A' 'B'` + u16 length + payload.
//!
//! [`Connection`] is one state machine with three phases:
//!
//! * **idle**: a packet starts with its type byte. FORWARD_REQUEST yields
//!   [`Event::Request`]; SHUTDOWN yields [`Event::Shutdown`]; PING and CPING queue a CPONG
//!   (taken with [`Connection::take_output`]) and yield nothing; an empty packet
//!   `12 34 00 00` is skipped (lighttpd sends one after every bodyless request); any other
//!   type is an error.
//! * **body**: the request has a body still to come. Body packets have *no* type byte, so
//!   every packet is read as a body chunk: `12 34 LEN DLEN DATA`, or `12 34 LEN DATA` with
//!   [`Config::lighttpd_body_compat`]. With a Content-Length the web server sends the first
//!   chunk unsolicited; each further one only after the container's GET_BODY_CHUNK, written
//!   by [`Connection::request_body_chunk`]. A chunked upload (no Content-Length) has no
//!   unsolicited chunk and ends with an empty body packet. Each non-empty chunk is an
//!   [`Event::Body`] (zero copy); [`Event::BodyEnd`] follows the last one.
//! * **responding**: the body is complete ([`Event::BodyEnd`] was or is about to be
//!   yielded, straight after the request for a bodyless one). Only empty packets are
//!   tolerated. The server writes SEND_HEADERS / SEND_BODY_CHUNK with
//!   [`Connection::send_headers`] and [`Connection::send_body`], and
//!   [`Connection::end_response`] writes END_RESPONSE and returns to idle.
//!
//! A body chunk still in flight when the response ends (requested, or the unsolicited first
//! one, not yet received) is swallowed when it arrives in idle, instead of being misread as
//! a packet type.
//!
//! Every length is checked against [`Config::max_packet`] before a packet is buffered.
//!
//! # Layout
//!
//! * [`headers`]: packet types, method codes, coded header names and attribute codes.
//! * `decode`: the FORWARD_REQUEST parser and [`decode_container_packet`] (for tests).
//! * `conn`: [`Connection`].
//! * [`encode`]: container packets, and web-server-side encoders for tests and fuzz seeds.

use crate::{Params, ParamsBuilder};
use bytes::Bytes;
use std::fmt;

mod conn;
mod decode;
pub mod encode;
pub mod headers;

pub use conn::Connection;
pub use decode::{decode_container_packet, ContainerPacket};

/// Named limits and their reasons.
pub mod limits {
    /// Default packet size (header included), both directions.
    ///
    /// 8 KiB is the AJP13 default and what Apache (`ProxyPass … packetsize`), mod_jk
    /// (`max_packet_size`) and lighttpd use; both ends must agree, so only raise it together
    /// with the web server's setting.
    pub const DEFAULT_MAX_PACKET: usize = 8192;
    /// Largest accepted [`Config::max_packet`](super::Config::max_packet); larger values are
    /// clamped to it.
    ///
    /// Apache and mod_jk allow up to 65536; the u16 length field allows 65535 + 4.
    pub const MAX_PACKET_LIMIT: usize = 65536;
    /// Smallest accepted [`Config::max_packet`](super::Config::max_packet); smaller values
    /// are clamped up to it.
    ///
    /// Apache and mod_jk refuse anything below 8192; the codec goes down to 1 KiB (useful in
    /// tests) so that every fixed-size packet and a useful body chunk always fit.
    pub const MIN_PACKET: usize = 1024;
    /// Default most headers in one FORWARD_REQUEST.
    ///
    /// Apache forwards at most `LimitRequestFields` (100 by default) headers; more than this
    /// is [`Error::TooManyHeaders`](super::Error::TooManyHeaders) (answer 431). The packet
    /// size bounds memory anyway; this bounds the work.
    pub const MAX_HEADERS: usize = 1024;
    /// Most decimal digits in a Content-Length header value.
    ///
    /// Nineteen digits always fit a `u64`; whether such a body is acceptable is the
    /// server's body limit (413), not the codec's.
    pub const MAX_CONTENT_LENGTH_DIGITS: usize = 19;
}

/// An AJP13 protocol violation by the web server, or a response the codec cannot encode.
///
/// Each variant's doc says what the server should do; [`Error::status_hint`] gives the
/// status when an HTTP answer is still possible. After any error the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A packet does not start with `0x12 0x34` (often: HTTP sent to the AJP port). Close.
    BadMagic,
    /// A packet's length exceeds `max_packet - 4`. Close.
    PacketTooLarge,
    /// An idle-state packet has a type other than FORWARD_REQUEST, SHUTDOWN, PING or CPING.
    /// Close.
    UnknownPacketType(u8),
    /// A non-empty packet arrived while a response was being produced and no body chunk was
    /// expected. Close.
    UnexpectedPacket,
    /// A FORWARD_REQUEST field runs past the end of the packet. Answer 400, close.
    Truncated,
    /// An AJP string is not followed by its NUL terminator. Answer 400, close.
    MissingNul,
    /// An unknown method code (0, or 28..=254). Answer 400, close.
    UnknownMethod(u8),
    /// Method code 0xFF without a `stored_method` attribute. Answer 400, close.
    MissingStoredMethod,
    /// More headers than [`Config::max_headers`]. Answer 431, close.
    TooManyHeaders,
    /// A `0xA0xx` header code outside the request header table. Answer 400, close.
    UnknownHeaderCode(u16),
    /// A header name is the null string (length 0xFFFF). Answer 400, close.
    NullHeaderName,
    /// An unknown attribute code (its length is unknown, so it cannot be skipped). Answer
    /// 400, close.
    UnknownAttribute(u8),
    /// Bytes after the attribute terminator 0xFF. Answer 400, close.
    TrailingBytes,
    /// A Content-Length header is not 1 to 19 ASCII digits, or two disagree. Answer 400,
    /// close.
    BadContentLength,
    /// A standard-format body packet whose inner length is not the packet length − 2. Close.
    BadBodyPacket,
    /// More body bytes than Content-Length. Answer 400 if no response was started, close.
    BodyTooLong,
    /// An empty body packet before Content-Length bytes arrived. Answer 400 if no response
    /// was started, close.
    BodyTruncated,
    /// The response head does not fit one SEND_HEADERS packet of `max_packet` bytes; nothing
    /// was written. The application's fault: answer 500 (a small head), log it.
    ResponseHeadTooLarge,
}

impl Error {
    /// The HTTP status to answer with (SEND_HEADERS + END_RESPONSE with reuse off) before
    /// closing, or `None` when the stream is out of sync and the connection should simply
    /// be closed.
    pub fn status_hint(&self) -> Option<u16> {
        match self {
            Error::BadMagic
            | Error::PacketTooLarge
            | Error::UnknownPacketType(_)
            | Error::UnexpectedPacket
            | Error::BadBodyPacket => None,
            Error::TooManyHeaders => Some(431),
            Error::ResponseHeadTooLarge => Some(500),
            _ => Some(400),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadMagic => f.write_str("packet does not start with 0x12 0x34"),
            Error::PacketTooLarge => f.write_str("packet longer than the configured max_packet"),
            Error::UnknownPacketType(t) => write!(f, "unknown packet type {t}"),
            Error::UnexpectedPacket => {
                f.write_str("packet received while no request body was expected")
            }
            Error::Truncated => f.write_str("FORWARD_REQUEST field runs past the packet end"),
            Error::MissingNul => f.write_str("string not terminated by NUL"),
            Error::UnknownMethod(m) => write!(f, "unknown method code {m}"),
            Error::MissingStoredMethod => {
                f.write_str("method code 0xFF without a stored_method attribute")
            }
            Error::TooManyHeaders => f.write_str("more headers than the configured limit"),
            Error::UnknownHeaderCode(c) => write!(f, "unknown request header code {c:#06x}"),
            Error::NullHeaderName => f.write_str("header name is a null string"),
            Error::UnknownAttribute(a) => write!(f, "unknown attribute code {a:#04x}"),
            Error::TrailingBytes => f.write_str("bytes after the attribute list terminator"),
            Error::BadContentLength => {
                f.write_str("Content-Length is not a plain decimal number, or is repeated")
            }
            Error::BadBodyPacket => {
                f.write_str("body packet's data length disagrees with its packet length")
            }
            Error::BodyTooLong => f.write_str("more body bytes than Content-Length"),
            Error::BodyTruncated => {
                f.write_str("empty body packet before Content-Length bytes arrived")
            }
            Error::ResponseHeadTooLarge => {
                f.write_str("response head does not fit one SEND_HEADERS packet")
            }
        }
    }
}

impl std::error::Error for Error {}

/// Per-listener settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Packet size in bytes, header included, both directions; clamped to
    /// [`limits::MIN_PACKET`]..=[`limits::MAX_PACKET_LIMIT`].
    pub max_packet: usize,
    /// Read request body packets in lighttpd 1.4's format.
    ///
    /// # Background
    ///
    /// The AJPv13 document defines the request body packet as "Data Length (2 bytes)"
    /// followed by the data, inside the packet: `12 34 LEN DLEN DATA`. lighttpd's
    /// mod_ajp13 (1.4.69, and `ajp13_stdin_append` in current sources) omits the inner
    /// length: `12 34 LEN DATA`. The two are ambiguous on arbitrary data, so
    /// the format is a per-listener switch rather than guessed.
    pub lighttpd_body_compat: bool,
    /// Most headers in one FORWARD_REQUEST; see [`limits::MAX_HEADERS`].
    pub max_headers: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_packet: limits::DEFAULT_MAX_PACKET,
            lighttpd_body_compat: false,
            max_headers: limits::MAX_HEADERS,
        }
    }
}

/// A decoded FORWARD_REQUEST: the request line, headers and attributes as sent.
///
/// Strings are zero-copy slices of the packet. A null AJP string is an empty value for the
/// request-line fields and `None` for attributes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ForwardRequest {
    /// The method name (from the method code, or `stored_method` for code 0xFF).
    pub method: Bytes,
    /// The protocol, e.g. `HTTP/1.1`.
    pub protocol: Bytes,
    /// The path without the query string (Apache: re-encoded; lighttpd: fully decoded).
    pub req_uri: Bytes,
    /// The client address.
    pub remote_addr: Bytes,
    /// The client host name (often null, hence empty).
    pub remote_host: Bytes,
    /// The server name.
    pub server_name: Bytes,
    /// The server port.
    pub server_port: u16,
    /// Whether the client connection is TLS.
    pub is_ssl: bool,
    /// Headers in the order sent; coded names are given in lower case (`content-type`).
    pub headers: Vec<(Bytes, Bytes)>,
    /// Attribute 0x05, without the `?`.
    pub query_string: Option<Bytes>,
    /// Attribute 0x03.
    pub remote_user: Option<Bytes>,
    /// Attribute 0x04.
    pub auth_type: Option<Bytes>,
    /// Attribute 0x0C; compared by the server, never passed to the application.
    pub secret: Option<Bytes>,
    /// The validated Content-Length header, if any.
    pub content_length: Option<u64>,
    /// A `Transfer-Encoding` header names `chunked` and there is no Content-Length: the body
    /// ends with an empty body packet.
    pub chunked: bool,
    /// Attribute 0x01.
    pub context: Option<Bytes>,
    /// Attribute 0x02.
    pub servlet_path: Option<Bytes>,
    /// Attribute 0x06 (`route`).
    pub jvm_route: Option<Bytes>,
    /// Attribute 0x07 (PEM).
    pub ssl_cert: Option<Bytes>,
    /// Attribute 0x08.
    pub ssl_cipher: Option<Bytes>,
    /// Attribute 0x09.
    pub ssl_session: Option<Bytes>,
    /// Attribute 0x0B, in bits.
    pub ssl_key_size: Option<u16>,
    /// Attribute 0x0A pairs in the order sent (Apache: `AJP_REMOTE_PORT`,
    /// `AJP_LOCAL_ADDR`…).
    pub req_attributes: Vec<(Bytes, Bytes)>,
    /// Attribute 0x0D.
    pub stored_method: Option<Bytes>,
}

impl ForwardRequest {
    /// How many headers have a `_` in their name. [`ForwardRequest::to_params`] leaves them
    /// out: `X_Remote_User` and `X-Remote-User` would both become `HTTP_X_REMOTE_USER`, so a
    /// client could slip past a front end that removes `X-Remote-User` (nginx and Apache 2.4
    /// drop such names from HTTP requests for the same reason).
    pub fn underscore_headers(&self) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.contains(&b'_'))
            .count()
    }

    /// The request as CGI variables, so the application sees what FastCGI and SCGI give it.
    ///
    /// In order: `REQUEST_METHOD`, `SERVER_PROTOCOL`, `REQUEST_URI` (`req_uri`, plus `?` and
    /// the query string when it is non-empty), `QUERY_STRING` (always, maybe empty),
    /// `REMOTE_ADDR`, `REMOTE_HOST` (`REMOTE_ADDR` when null, as RFC 3875 §4.1.9 allows),
    /// `SERVER_NAME`, `SERVER_PORT`, `REQUEST_SCHEME`, `HTTPS=on` (TLS only),
    /// `CONTENT_TYPE`, `CONTENT_LENGTH` (when known), then every header as `HTTP_` + upper
    /// case with `-` → `_` (repeats kept as separate pairs; Content-Type and Content-Length
    /// only without the prefix, as RFC 3875 §4.1.18 suggests; a header whose name holds `_`
    /// is left out, see [`ForwardRequest::underscore_headers`]), then `REMOTE_USER`,
    /// `AUTH_TYPE`, `SSL_CIPHER`, `SSL_SESSION_ID`, `SSL_CLIENT_CERT`, `SSL_CIPHER_USEBITS`
    /// when present, every `req_attribute` under its own name, and `REMOTE_PORT` from
    /// `AJP_REMOTE_PORT`. The `secret` is never included.
    pub fn to_params(&self) -> Params {
        let mut p = ParamsBuilder::new();
        p.push(b"REQUEST_METHOD", &self.method);
        p.push(b"SERVER_PROTOCOL", &self.protocol);
        let query: &[u8] = self.query_string.as_deref().unwrap_or_default();
        if query.is_empty() {
            p.push(b"REQUEST_URI", &self.req_uri);
        } else {
            let mut uri = Vec::with_capacity(self.req_uri.len() + 1 + query.len());
            uri.extend_from_slice(&self.req_uri);
            uri.push(b'?');
            uri.extend_from_slice(query);
            p.push(b"REQUEST_URI", &uri);
        }
        p.push(b"QUERY_STRING", query);
        p.push(b"REMOTE_ADDR", &self.remote_addr);
        if self.remote_host.is_empty() {
            p.push(b"REMOTE_HOST", &self.remote_addr);
        } else {
            p.push(b"REMOTE_HOST", &self.remote_host);
        }
        p.push(b"SERVER_NAME", &self.server_name);
        p.push(b"SERVER_PORT", self.server_port.to_string().as_bytes());
        if self.is_ssl {
            p.push(b"REQUEST_SCHEME", b"https");
            p.push(b"HTTPS", b"on");
        } else {
            p.push(b"REQUEST_SCHEME", b"http");
        }
        if let Some((_, v)) = self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(b"content-type"))
        {
            p.push(b"CONTENT_TYPE", v);
        }
        if let Some(n) = self.content_length {
            p.push(b"CONTENT_LENGTH", n.to_string().as_bytes());
        }
        self.push_http_headers(&mut p);
        let optional: [(&[u8], &Option<Bytes>); 5] = [
            (b"REMOTE_USER", &self.remote_user),
            (b"AUTH_TYPE", &self.auth_type),
            (b"SSL_CIPHER", &self.ssl_cipher),
            (b"SSL_SESSION_ID", &self.ssl_session),
            (b"SSL_CLIENT_CERT", &self.ssl_cert),
        ];
        for (n, v) in optional {
            if let Some(v) = v {
                p.push(n, v);
            }
        }
        if let Some(bits) = self.ssl_key_size {
            p.push(b"SSL_CIPHER_USEBITS", bits.to_string().as_bytes());
        }
        for (n, v) in &self.req_attributes {
            p.push(n, v);
        }
        if let Some((_, port)) = self
            .req_attributes
            .iter()
            .find(|(n, _)| &n[..] == b"AJP_REMOTE_PORT")
        {
            p.push(b"REMOTE_PORT", port);
        }
        p.finish()
    }

    /// Every header as `HTTP_NAME`, but Content-Type and Content-Length (given without the
    /// prefix) and names holding `_`.
    fn push_http_headers(&self, p: &mut ParamsBuilder) {
        let mut name = Vec::new();
        for (n, v) in &self.headers {
            if n.eq_ignore_ascii_case(b"content-type")
                || n.eq_ignore_ascii_case(b"content-length")
                || n.contains(&b'_')
            {
                continue;
            }
            name.clear();
            name.extend_from_slice(b"HTTP_");
            name.extend(n.iter().map(|&b| match b {
                b'-' => b'_',
                b => b.to_ascii_uppercase(),
            }));
            p.push(&name, v);
        }
    }
}

/// What [`Connection::decode`] yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A FORWARD_REQUEST. Body events follow: zero or more `Body`, then one `BodyEnd`.
    Request(Box<ForwardRequest>),
    /// A non-empty piece of the request body (zero copy).
    Body(Bytes),
    /// The request body is complete (also yielded right after a bodyless request).
    BodyEnd,
    /// The web server asked the container to shut down (SHUTDOWN); close the connection.
    Shutdown,
}

#[cfg(test)]
mod tests;
