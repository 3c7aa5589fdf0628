//! The ferrocgi serving core: listeners, one connection loop for FastCGI, SCGI and AJP13 on
//! top of the sans-IO codecs of `ferrocgi-proto`, and the [`Handler`] trait applications
//! implement.
//!
//! # Layout
//!
//! * [`handler`]: the application interface — [`Request`], [`Body`], [`Responder`].
//! * [`listener`]: TCP, Unix-socket and inherited-fd listeners.
//! * [`Server`] (in `server`): the accept loop, connection and request limits, graceful stop;
//!   [`ServerConfig`] (in `config`) what it is told; [`Load`] (in `load`) the counts every
//!   connection shares; [`Protocol`] (in `protocol`) which protocol a listener speaks.
//! * [`logging`]: the log every ferrocgi process writes; [`access`] the access log.
//! * [`status`]: the status page and ping (`status_path`, `ping_path`) and the scoreboard
//!   every process of the server writes its counts to.
//! * [`options`]: every option of the server, parsed and validated in one table, which the
//!   host's command ([`options::Command`]) extends with its own words.
//! * [`process`]: the start-up ([`process::launch`]: listener, daemon, pid file, privilege
//!   drop, process model, reload, CGI) and the process models it runs.
//! * `conn`: one connection as a state machine (`Conn`: a turn decodes and answers, a wait
//!   picks the next thing to do, the timers are pure functions of its clocks), and the
//!   adapters over each protocol's codec (`conn::codec`), with the one mapping from a codec
//!   error to the answer a request gets.
//!
//! The crate knows nothing about Python; the WSGI host is a [`Handler`] like any other, and an
//! [`process::launch::AppHost`] for start-up. `examples/echo.rs` is a host without Python.
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

pub mod access;
mod config;
mod conn;
pub mod handler;
pub mod listener;
mod load;
pub mod logging;
pub mod options;
pub mod process;
mod protocol;
mod server;
pub mod status;

pub use config::{
    ServerConfig, DEFAULT_GRACEFUL_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_IN_FLIGHT,
};
pub use ferrocgi_proto::{Params, ResponseHead};
pub use handler::{
    AbortSignal, Batch, Body, Handler, Request, Reservation, Reserved, Responder, StreamError,
    TrySend,
};
pub use listener::{BindAddr, Listener, UnixSocketOptions};
pub use load::Load;
pub use protocol::Protocol;
pub use server::{Server, Stop};
