//! SCGI, application side.
//!
//! # Theory of operation
//!
//! An SCGI request is one netstring followed by the request body, and the response is a
//! CGI response written on the same connection, which the application then closes:
//!
//! ```text
//! <len digits> ":" NAME NUL VALUE NUL ... "," <CONTENT_LENGTH body bytes>
//! ```
//!
//! [`Connection`] is fed the bytes read so far. It first waits for the netstring's length
//! prefix (at most [`limits::MAX_NETSTRING_DIGITS`] digits, checked before anything else is
//! read), checks the length against [`Config::max_header_bytes`] *before* buffering the
//! header block, then waits for the whole block and its comma and yields one
//! [`Event::Request`] whose [`Params`] are index ranges into the received bytes (zero copy).
//! It then yields [`Event::Body`] chunks (whatever is buffered, never past `CONTENT_LENGTH`)
//! and exactly one [`Event::BodyEnd`] once `CONTENT_LENGTH` bytes were seen (immediately after
//! the request when it is `0`). SCGI has one request per connection: after `BodyEnd`,
//! [`Connection::decode`] returns `Ok(None)` and leaves any further bytes in the buffer.
//!
//! The SCGI specification (Neil Schemenauer, 2006) requires `CONTENT_LENGTH` to be the first
//! header and an `SCGI` header with value `1`; both are enforced. Duplicate names are kept,
//! because nginx sends a repeated request header as two params with the same name.
//!
//! # Layout
//!
//! * `decode`: the netstring prefix and the header block parser (pure functions).
//! * `conn`: [`Connection`], the state machine.
//! * `encode`: [`write_head`] and a web-server-side request encoder for tests.

use crate::Params;
use bytes::Bytes;
use std::fmt;

mod conn;
mod decode;
pub mod encode;

pub use conn::Connection;
pub use encode::write_head;

/// Named limits and their reasons.
pub mod limits {
    /// Default most bytes of the header netstring (names, values and NULs).
    ///
    /// nginx bounds a request head by `large_client_header_buffers` (4 × 8 KiB by default)
    /// plus its `scgi_param`s (≈ 1 KiB); Apache by `LimitRequestFields` (100) ×
    /// `LimitRequestFieldSize` (8190). 256 KiB is far above what either forwards in practice
    /// and still bounds the memory one connection can pin. Hitting it is
    /// [`Error::HeadersTooLarge`](super::Error::HeadersTooLarge) (answer 431).
    pub const MAX_HEADER_BYTES: usize = 256 * 1024;
    /// Default most name/value pairs in the header netstring.
    ///
    /// A request with Apache's maximum of 100 header fields plus the ≈ 30 CGI variables the
    /// web servers add stays far below this; more is
    /// [`Error::TooManyHeaders`](super::Error::TooManyHeaders) (answer 431).
    pub const MAX_HEADER_PAIRS: usize = 1024;
    /// Most decimal digits in the netstring length prefix.
    ///
    /// Seven digits express up to 9 999 999 bytes, above any sensible
    /// [`MAX_HEADER_BYTES`]; an eighth digit is rejected as soon as it is seen, before the
    /// length is computed or more bytes are read
    /// ([`Error::NetstringLengthTooLong`](super::Error::NetstringLengthTooLong)).
    pub const MAX_NETSTRING_DIGITS: usize = 7;
    /// Most decimal digits in the `CONTENT_LENGTH` value.
    ///
    /// Nineteen digits always fit a `u64` (up to 9.2 × 10^18 would need checked arithmetic
    /// anyway, which is also used). Whether a body that large is acceptable is the server's
    /// body limit (413), not the codec's.
    pub const MAX_CONTENT_LENGTH_DIGITS: usize = 19;
}

/// An SCGI protocol violation by the web server.
///
/// Every variant ends the connection. The doc of each says what the server should answer
/// first; [`Error::status_hint`] gives the same answer as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The netstring length prefix is empty, has a byte other than an ASCII digit before the
    /// `:`, or has a leading zero. Answer 400 and close.
    BadNetstringLength,
    /// The netstring length prefix has more than [`limits::MAX_NETSTRING_DIGITS`] digits.
    /// Answer 400 and close.
    NetstringLengthTooLong,
    /// The netstring announces more than [`Config::max_header_bytes`] bytes. Answer 431 and
    /// close.
    HeadersTooLarge,
    /// The byte after the header block is not `,`. Answer 400 and close.
    MissingComma,
    /// The header block does not end with NUL, or has an odd number of NUL-terminated
    /// fields (a name without a value). Answer 400 and close.
    OddHeaderFields,
    /// A header name is empty. Answer 400 and close.
    EmptyHeaderName,
    /// More than [`Config::max_header_pairs`] name/value pairs. Answer 431 and close.
    TooManyHeaders,
    /// The first header is not `CONTENT_LENGTH` (or the block is empty). Answer 400 and close.
    ContentLengthNotFirst,
    /// `CONTENT_LENGTH` is empty, has a non-digit (a sign, a space…), or has more than
    /// [`limits::MAX_CONTENT_LENGTH_DIGITS`] digits. Answer 400 and close.
    BadContentLength,
    /// No `SCGI` header. Answer 400 and close.
    MissingScgiHeader,
    /// The `SCGI` header's value is not `1`. Answer 400 and close.
    BadScgiVersion,
}

impl Error {
    /// The HTTP status to answer with (as a CGI `Status:` response) before closing.
    ///
    /// Every SCGI error is found before the application runs, so a response is always
    /// possible: 431 for the header limits, 400 for everything else.
    pub fn status_hint(&self) -> Option<u16> {
        Some(match self {
            Error::HeadersTooLarge | Error::TooManyHeaders => 431,
            _ => 400,
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Error::BadNetstringLength => {
                "netstring length is empty, not decimal digits, or has a leading zero"
            }
            Error::NetstringLengthTooLong => "netstring length has too many digits",
            Error::HeadersTooLarge => "header netstring is longer than the configured limit",
            Error::MissingComma => "header netstring is not followed by ','",
            Error::OddHeaderFields => {
                "header block is not a sequence of NUL-terminated name/value pairs"
            }
            Error::EmptyHeaderName => "header with an empty name",
            Error::TooManyHeaders => "more header pairs than the configured limit",
            Error::ContentLengthNotFirst => "first header is not CONTENT_LENGTH",
            Error::BadContentLength => "CONTENT_LENGTH is not a plain decimal number",
            Error::MissingScgiHeader => "no SCGI header",
            Error::BadScgiVersion => "SCGI header value is not \"1\"",
        };
        f.write_str(s)
    }
}

impl std::error::Error for Error {}

/// Per-listener settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Most bytes of the header netstring; see [`limits::MAX_HEADER_BYTES`].
    pub max_header_bytes: usize,
    /// Most name/value pairs in the header netstring; see [`limits::MAX_HEADER_PAIRS`].
    pub max_header_pairs: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_header_bytes: limits::MAX_HEADER_BYTES,
            max_header_pairs: limits::MAX_HEADER_PAIRS,
        }
    }
}

/// What [`Connection::decode`] yields, in this order: one `Request`, zero or more `Body`,
/// one `BodyEnd`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The request head.
    Request {
        /// Every header pair in the order sent, `CONTENT_LENGTH` and `SCGI` included,
        /// sharing the received netstring's bytes.
        params: Params,
        /// The validated `CONTENT_LENGTH`.
        content_length: u64,
    },
    /// A piece of the request body (never empty, zero copy).
    Body(Bytes),
    /// All `content_length` body bytes were yielded.
    ///
    /// NOTE: nginx 1.22 with `scgi_request_buffering off` sends a `CONTENT_LENGTH` equal to
    /// what it had read so far rather than the client's length, and never
    /// more; the rest of the body then looks like bytes after the request (left in the
    /// buffer). Conversely a peer closing before `CONTENT_LENGTH` bytes arrived never gets
    /// here: the server sees a client EOF mid-body.
    BodyEnd,
}

#[cfg(test)]
mod tests;
