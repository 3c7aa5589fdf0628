//! `ferrocgi._ferrocgi`: the WSGI host of ferrocgi as a Python extension module.
//!
//! # Layout
//!
//! * [`host`]: the server's `Handler` for WSGI and the pool of Python threads.
//! * [`environ`], [`paths`]: the environ, and SCRIPT_NAME/PATH_INFO.
//! * [`input`]: the request body (`wsgi.input`), collected and spooled.
//! * [`response`]: `start_response` and `write()`.
//! * [`wsgi`]: `wsgi.errors`, `wsgi.file_wrapper`.
//! * [`serve`]: running the server from Python.
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

pub mod environ;
pub mod host;
pub mod input;
pub mod paths;
pub mod queue;
pub mod response;
pub mod serve;
pub mod watchdog;
pub mod wsgi;

use pyo3::prelude::*;

#[pymodule]
fn _ferrocgi(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "ClientDisconnected",
        m.py().get_type::<response::ClientDisconnected>(),
    )?;
    m.add(
        "RequestTimeout",
        m.py().get_type::<watchdog::RequestTimeout>(),
    )?;
    m.add_class::<input::InputStream>()?;
    m.add_class::<response::StartResponse>()?;
    m.add_class::<response::WriteFn>()?;
    m.add_class::<wsgi::ErrorStream>()?;
    m.add_class::<wsgi::FileWrapper>()?;
    serve::init_pymodule(m)?;
    Ok(())
}
