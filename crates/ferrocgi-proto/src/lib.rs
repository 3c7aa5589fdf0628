//! Sans-IO codecs for the three gateway protocols web servers speak to long-running
//! application processes: FastCGI 1.0, SCGI and AJP 1.3.
//!
//! # Theory of operation
//!
//! Nothing here touches a socket. Each protocol has a connection state machine that is fed
//! the bytes read so far (a [`bytes::BytesMut`] the caller appends to) and hands back typed
//! events one at a time:
//!
//! * `Ok(Some(event))`: one event was decoded and its bytes consumed from the buffer;
//! * `Ok(None)`: more bytes are needed (never an error);
//! * `Err(e)`: the peer broke the protocol; the connection must be answered as the error's
//!   documentation says and closed.
//!
//! Replies the protocol requires of the application without involving it (FastCGI
//! `FCGI_GET_VALUES_RESULT`, `FCGI_UNKNOWN_TYPE`, AJP CPONG…) are queued by the state machine
//! and taken with its `take_output` method. Response encoders write whole records/packets into
//! a caller-supplied buffer, so the server can flush a batch with a single write.
//!
//! Every length a peer sends is checked against a named limit before anything is allocated
//! for it (see each module's `limits`).
//!
//! # Layout
//!
//! * [`params`]: [`Params`], an ordered list of CGI-style name/value byte strings sharing one
//!   buffer, what every protocol's request head is turned into.
//! * [`head`]: [`ResponseHead`], the protocol-independent response status line and headers,
//!   and the CGI-style encoding (`Status:` line + headers) shared by FastCGI and SCGI.
//! * [`fastcgi`], [`scgi`], [`ajp13`]: one module per protocol, with the same file names in
//!   each.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod ajp13;
pub mod fastcgi;
pub mod head;
pub mod params;
pub mod scgi;

pub use head::{reason, ResponseHead};
pub use params::{Params, ParamsBuilder};

use std::fmt;

/// A protocol violation by the peer, from any of the three codecs.
///
/// The `Display` text is meant for logs and is not a stable contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtoError {
    /// A FastCGI violation.
    Fastcgi(fastcgi::Error),
    /// An SCGI violation.
    Scgi(scgi::Error),
    /// An AJP13 violation.
    Ajp13(ajp13::Error),
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoError::Fastcgi(e) => write!(f, "FastCGI: {e}"),
            ProtoError::Scgi(e) => write!(f, "SCGI: {e}"),
            ProtoError::Ajp13(e) => write!(f, "AJP13: {e}"),
        }
    }
}

impl std::error::Error for ProtoError {}

impl ProtoError {
    /// The HTTP status a server may answer the request with before closing (the request was
    /// never handed to the application, and the stream is still in step), or `None`: close.
    /// Each protocol's error has the same method; see its variants' docs.
    pub fn status_hint(&self) -> Option<u16> {
        match self {
            ProtoError::Fastcgi(e) => e.status_hint(),
            ProtoError::Scgi(e) => e.status_hint(),
            ProtoError::Ajp13(e) => e.status_hint(),
        }
    }
}

impl From<fastcgi::Error> for ProtoError {
    fn from(e: fastcgi::Error) -> Self {
        ProtoError::Fastcgi(e)
    }
}

impl From<scgi::Error> for ProtoError {
    fn from(e: scgi::Error) -> Self {
        ProtoError::Scgi(e)
    }
}

impl From<ajp13::Error> for ProtoError {
    fn from(e: ajp13::Error) -> Self {
        ProtoError::Ajp13(e)
    }
}
