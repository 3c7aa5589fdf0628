//! The ferrocgi serving core: listeners, one connection loop for FastCGI, SCGI and AJP13 on
//! top of the sans-IO codecs of `ferrocgi-proto`, and the [`Handler`] trait applications
//! implement.
//!
//! # Layout
//!
//! * [`handler`]: the application interface — [`Request`], [`Body`], [`Responder`].
//! * [`listener`]: TCP, Unix-socket and inherited-fd listeners.
//! * [`Server`] (in `server`): the accept loop, connection and request limits, graceful stop.
//! * [`logging`]: the log every ferrocgi process writes.
//! * `conn`: the per-connection loop and the adapters over each protocol's state machine.
//!
//! The crate knows nothing about Python; the WSGI host is a [`Handler`] like any other.
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

mod conn;
pub mod handler;
pub mod listener;
pub mod logging;
pub mod options;
pub mod process;
mod server;

pub use ferrocgi_proto::{Params, ResponseHead};
pub use handler::{Batch, Body, Handler, Protocol, Request, Responder, StreamError, TrySend};
pub use listener::{BindAddr, Listener, UnixSocketOptions};
pub use server::{
    Load, Server, ServerConfig, Stop, DEFAULT_GRACEFUL_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_IN_FLIGHT,
};
