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
//! * [`options`]: every option of the server, parsed and validated in one table, which the
//!   host's command ([`options::Command`]) extends with its own words.
//! * [`process`]: the start-up ([`process::launch`]: listener, daemon, pid file, privilege
//!   drop, process model, reload, CGI) and the process models it runs.
//! * `conn`: the per-connection loop and the adapters over each protocol's state machine.
//!
//! The crate knows nothing about Python; the WSGI host is a [`Handler`] like any other, and an
//! [`process::launch::AppHost`] for start-up. `examples/echo.rs` is a host without Python.
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
