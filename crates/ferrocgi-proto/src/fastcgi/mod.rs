//! FastCGI 1.0, application side.
//!
//! # Theory of operation
//!
//! A web server opens a connection and sends records; [`Connection`] is the state machine for
//! one such connection. The server appends what it reads to a [`BytesMut`](bytes::BytesMut) and calls
//! [`Connection::decode`] until it returns `Ok(None)` ("need more bytes"); each call cuts whole
//! records off the front of the buffer ([`decode`]) and either returns one [`Event`] or handles
//! the record itself:
//!
//! * `FCGI_BEGIN_REQUEST` makes a request id active (or is refused with an `FCGI_END_REQUEST`
//!   queued by the codec: unknown role, `FCGI_CANT_MPX_CONN`, `FCGI_OVERLOADED`);
//! * `FCGI_PARAMS` records are accumulated, bounded by [`Config::max_params_bytes`], and when
//!   the empty one ends the stream they are decoded once ([`params`]) into a zero-copy
//!   [`Params`](crate::Params): [`Event::Request`];
//! * `FCGI_STDIN` records become [`Event::Stdin`] (zero-copy) and, when empty,
//!   [`Event::StdinEnd`]; `FCGI_ABORT_REQUEST` becomes [`Event::Abort`];
//! * management records (`FCGI_GET_VALUES`, unknown types) are answered by the codec.
//!
//! Answers the codec produces on its own are queued and handed out by
//! [`Connection::take_output`]; the server checks [`Connection::has_output`] after decoding and
//! flushes them together with its own writes. Responses go out through
//! [`Connection::write_stdout`], [`Connection::write_stderr`] and [`Connection::end_request`],
//! which append whole records ([`encode`]) to the server's output buffer.
//!
//! Records for request ids that are not active are ignored, as the spec says (§3.3: "the
//! application ... ignores records for request IDs that are not active"): they are what is left
//! in flight of a request the codec refused or the application already ended.
//!
//! Any [`Error`] means the peer broke the protocol: the connection is finished (the error is
//! returned again by every later `decode`), the server logs it and closes the connection.
//!
//! # Layout
//!
//! * [`record`]: the header and the spec's constants;
//! * [`params`]: the name-value pair codec;
//! * [`decode`]: record framing;
//! * [`encode`]: record writers, both sides;
//! * `conn`: [`Connection`], [`Config`], [`Event`].

use std::fmt;

mod conn;
pub mod decode;
pub mod encode;
pub mod params;
pub mod record;

pub use conn::{Config, Connection, Event, Notice};
pub use record::ProtocolStatus;

/// Named limits: the defaults of [`Config`].
///
/// Every length the peer sends is checked against these (with checked arithmetic) before it is
/// used; the largest single record is 8 + 65535 + 255 bytes by construction of the header, so
/// the record framing itself needs no limit.
pub mod limits {
    /// Most bytes of PARAMS content buffered on one connection (the pairs, length bytes
    /// included; with multiplexing, summed over the requests whose PARAMS stream is still open).
    ///
    /// Why 256 KiB: nginx sends ~0.6–4 KiB for ordinary requests (its header buffers,
    /// `large_client_header_buffers 4 8k`, cap it near 32 KiB); Apache can legally forward
    /// 100 headers of 8190 bytes (`LimitRequestFields` × `LimitRequestFieldSize`), ~800 KiB,
    /// which no real client sends. 256 KiB is far above every real request and keeps a
    /// malicious peer from making us buffer without bound.
    ///
    /// When hit: [`Error::ParamsTooLarge`](super::Error::ParamsTooLarge); the server may answer
    /// that request with a 431 and must then close the connection.
    pub const MAX_PARAMS_BYTES: usize = 256 * 1024;

    /// Most name/value pairs in one request's PARAMS stream (duplicates counted).
    ///
    /// Why 1024: the CGI variables are ~30, plus one per request header; Apache's default
    /// `LimitRequestFields` is 100 and nginx's header buffers hold a few hundred short headers.
    /// The bound keeps the pair index (32 bytes per pair) small.
    ///
    /// When hit: [`Error::TooManyParams`](super::Error::TooManyParams); as for
    /// [`MAX_PARAMS_BYTES`].
    pub const MAX_PARAMS_PAIRS: usize = 1024;

    /// Default `FCGI_MAX_CONNS` answered to `FCGI_GET_VALUES`. No web server tested asks
    ///; the server should set the real value from its own connection cap.
    pub const DEFAULT_MAX_CONNS: u32 = 1024;

    /// Default cap on concurrent requests on one multiplexed connection, also answered as
    /// `FCGI_MAX_REQS`. Beyond it a `FCGI_BEGIN_REQUEST` is refused with `FCGI_OVERLOADED`.
    /// Each pending request can hold params (bounded by [`MAX_PARAMS_BYTES`] per connection)
    /// and a little state, so the cap bounds per-connection state, not bodies (the server
    /// bounds those).
    pub const DEFAULT_MAX_REQS: u32 = 1024;
}

/// A FastCGI protocol violation by the web server.
///
/// Every variant ends the connection: the record framing, or the peer's idea of the request
/// state, can no longer be trusted. After one, [`Connection::decode`] returns the same error
/// again. What the server should do is in each variant's documentation; in short, log it and
/// close the connection, after flushing any output already queued. Where the framing is still
/// intact and a request id is known ([`Error::request_id`]), the server may first send that
/// request an HTTP error ([`Error::status_hint`]) and `FCGI_END_REQUEST`; for an
/// application that already started answering, an `FCGI_END_REQUEST` is pointless since the
/// stream is broken.
///
/// The `Display` text is for logs and not a stable contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A record header's `version` is not `FCGI_VERSION_1`: this is not FastCGI (often HTTP or
    /// SCGI sent to the FastCGI port). Close the connection without answering.
    UnsupportedVersion(u8),
    /// `FCGI_BEGIN_REQUEST` whose content is not the 8-byte `FCGI_BeginRequestBody`. Close the
    /// connection.
    BeginRequestBadLength {
        /// The record's request id.
        id: u16,
        /// Its `contentLength`.
        len: u16,
    },
    /// `FCGI_BEGIN_REQUEST` for an id that is already active (not yet ended by
    /// [`Connection::end_request`]).
    ///
    /// Chosen as an error rather than restarting the request: the web server and we disagree
    /// about which request the later records belong to, so nothing on this connection can be
    /// attributed safely. (A second BEGIN for a *different* id is not an error; it is refused
    /// with `FCGI_CANT_MPX_CONN` or `FCGI_OVERLOADED`.) Abandon the active request and close
    /// the connection.
    DuplicateBeginRequest(u16),
    /// A name or value length in a request's PARAMS stream runs past the end of the stream.
    /// The server may answer the request 400, then must close the connection.
    MalformedParams(u16),
    /// The PARAMS content buffered on the connection would exceed `limit`
    /// ([`limits::MAX_PARAMS_BYTES`] by default). The server may answer the request 431, then
    /// must close the connection.
    ParamsTooLarge {
        /// The request whose PARAMS record crossed the limit.
        id: u16,
        /// The limit in force.
        limit: usize,
    },
    /// A request's PARAMS stream has more than `limit` pairs ([`limits::MAX_PARAMS_PAIRS`] by
    /// default). The server may answer the request 431, then must close the connection.
    TooManyParams {
        /// The request.
        id: u16,
        /// The limit in force.
        limit: usize,
    },
    /// An `FCGI_PARAMS` record after the empty one that ended the stream. Close the connection.
    ParamsAfterEnd(u16),
    /// An `FCGI_STDIN` record before the PARAMS stream was ended: the request head is not
    /// known yet, so there is nobody to give the body to. Close the connection.
    StdinBeforeParams(u16),
    /// An `FCGI_STDIN` record after the empty one that ended the body. Close the connection;
    /// the body the application got is complete, but the peer is confused.
    StdinAfterEnd(u16),
    /// A request body sent chunk-encoded inside STDIN (Cherokee) that is not valid chunked
    /// encoding. The server may answer the request 400, then must close the connection.
    MalformedChunkedBody(u16),
    /// A record of a known type that a web server never sends to a Responder
    /// (`FCGI_STDOUT`, `FCGI_STDERR`, `FCGI_END_REQUEST`, `FCGI_DATA`, a management type with a
    /// request id) for an active request. Close the connection.
    UnexpectedRecord {
        /// The record type.
        record_type: u8,
        /// The request id.
        id: u16,
    },
    /// An `FCGI_GET_VALUES` record whose name-value lengths run past its content. Close the
    /// connection.
    ManagementRecordBadLength {
        /// The record type.
        record_type: u8,
    },
}

impl Error {
    /// The request the error is about, if any.
    pub fn request_id(&self) -> Option<u16> {
        match *self {
            Error::UnsupportedVersion(_) | Error::ManagementRecordBadLength { .. } => None,
            Error::BeginRequestBadLength { id, .. }
            | Error::DuplicateBeginRequest(id)
            | Error::MalformedParams(id)
            | Error::ParamsTooLarge { id, .. }
            | Error::TooManyParams { id, .. }
            | Error::ParamsAfterEnd(id)
            | Error::StdinBeforeParams(id)
            | Error::StdinAfterEnd(id)
            | Error::MalformedChunkedBody(id)
            | Error::UnexpectedRecord { id, .. } => Some(id),
        }
    }

    /// The HTTP status the server may send to [`Error::request_id`] before closing, when the
    /// framing is intact and the request was never handed to the application: 400 for
    /// malformed params, 431 for params over a limit. `None`: just close.
    pub fn status_hint(&self) -> Option<u16> {
        match self {
            Error::MalformedParams(_) | Error::MalformedChunkedBody(_) => Some(400),
            Error::ParamsTooLarge { .. } | Error::TooManyParams { .. } => Some(431),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use record::type_name;
        match *self {
            Error::UnsupportedVersion(v) => {
                write!(f, "record header with version {v}, only version 1 exists")
            }
            Error::BeginRequestBadLength { id, len } => write!(
                f,
                "FCGI_BEGIN_REQUEST for request {id} has {len} content bytes, expected 8"
            ),
            Error::DuplicateBeginRequest(id) => write!(
                f,
                "FCGI_BEGIN_REQUEST for request {id}, which is already active"
            ),
            Error::MalformedParams(id) => write!(
                f,
                "FCGI_PARAMS of request {id}: a name-value length runs past the end of the stream"
            ),
            Error::ParamsTooLarge { id, limit } => write!(
                f,
                "FCGI_PARAMS of request {id}: more than {limit} bytes of params (max_params_bytes)"
            ),
            Error::TooManyParams { id, limit } => write!(
                f,
                "FCGI_PARAMS of request {id}: more than {limit} name-value pairs (max_params_pairs)"
            ),
            Error::ParamsAfterEnd(id) => write!(
                f,
                "FCGI_PARAMS record for request {id} after its params stream ended"
            ),
            Error::StdinBeforeParams(id) => write!(
                f,
                "FCGI_STDIN record for request {id} before its params stream ended"
            ),
            Error::StdinAfterEnd(id) => write!(
                f,
                "FCGI_STDIN record for request {id} after its stdin stream ended"
            ),
            Error::MalformedChunkedBody(id) => write!(
                f,
                "request {id}'s body is sent chunk-encoded (CONTENT_TRANSFER_ENCODING=chunked) but is not valid chunked encoding"
            ),
            Error::UnexpectedRecord { record_type, id } => write!(
                f,
                "unexpected {} record (type {record_type}) for request {id}",
                type_name(record_type)
            ),
            Error::ManagementRecordBadLength { record_type } => write!(
                f,
                "{} record (type {record_type}): a name-value length runs past its content",
                type_name(record_type)
            ),
        }
    }
}

impl std::error::Error for Error {}
