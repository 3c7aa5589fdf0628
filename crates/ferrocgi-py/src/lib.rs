//! `ferrocgi._ferrocgi`: the WSGI host of ferrocgi as a Python extension module.
//!
//! # Layout
//!
//! * [`serve`]: the functions the console script and Django call (`main`, `check`,
//!   `help_text`), and the Python side of the server crate's launcher (`AppHost`): import the
//!   application after the privilege drop, fork through `os.fork()`, start the WSGI threads.
//! * [`command`]: the commands' words (the CLI's APP, Django's runfcgi, `ferrocgi.serve()`) and
//!   the `pythonpath` option, as rows of the server's option table.
//! * [`settings`]: what the options tell the host (limits, `environ["ferrocgi.server"]`).
//! * [`host`]: the server's `Handler` for WSGI, on a pool of Python threads ([`queue`]) or
//!   inline.
//! * [`environ`], [`paths`]: the environ, and SCRIPT_NAME/PATH_INFO.
//! * [`input`]: the request body (`wsgi.input`), collected and spooled.
//! * [`response`]: `start_response` and `write()`.
//! * [`watchdog`]: `slow_request` and `request_timeout` (a wedged request ends its process).
//! * [`wsgi`]: `wsgi.errors`, `wsgi.file_wrapper`.
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

/// mimalloc for the Rust side (Python keeps its own allocator): every connection allocates its
/// task, buffers and channels, and glibc's malloc took about a tenth of a worker's time per
/// SCGI request (docs/performance.md, "SCGI: a connection per request").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_arena_eager_commit` in mimalloc 3's `mimalloc.h` (`enum mi_option_e`; the
/// version is the one Cargo.lock pins). By default mimalloc commits its arenas at once on
/// Linux: with a heap per thread that made a 64-thread process 13 MiB larger than under glibc's
/// malloc; committed as used, it is 2-3 MiB.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

pub mod asgi;
pub mod command;
pub mod environ;
pub mod host;
pub mod input;
pub mod paths;
pub mod queue;
pub mod response;
pub mod serve;
pub mod settings;
pub mod watchdog;
pub mod wsgi;

use pyo3::prelude::*;

#[pymodule]
fn _ferrocgi(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // SAFETY: sets a process-wide option; mimalloc reads options without locks, any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
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
