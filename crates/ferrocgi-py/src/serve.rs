//! The Python side of start-up: the `main`/`check`/`help_text` functions the console script and
//! Django call, and `PyHost`, what the server crate's launcher needs from Python (import the
//! application after the privilege drop, fork through `os.fork()`, start the WSGI threads).

use crate::asgi::{self, AsgiHandler, LoopConfig};
use crate::command::{self, AppRef, Interface};
use crate::host::{Host, Threads, WsgiHandler};
use crate::settings::HostSettings;
use ferrocgi_server::options::{self, Command, Options, Parsed};
use ferrocgi_server::process::daemon::Forked;
use ferrocgi_server::process::launch::{self, AppHost, OnWedged, Role, Serving};
use ferrocgi_server::process::{reexec, spawned};
use ferrocgi_server::Protocol;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::cell::{OnceCell, RefCell};
use std::path::{Path, PathBuf};

/// Imports `module:callable` (after `pythonpath` was put first on `sys.path`).
fn import_app(py: Python<'_>, app: &AppRef) -> PyResult<Py<PyAny>> {
    let mut obj = py.import(app.module.as_str())?.into_any();
    for attr in app.callable.split('.') {
        obj = obj.getattr(attr)?;
    }
    if !obj.is_callable() {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "{}:{} is not callable (it is a {})",
            app.module,
            app.callable,
            obj.get_type().name()?
        )));
    }
    Ok(obj.unbind())
}

/// Puts `pythonpath` first on `sys.path`, then the directory ferrocgi started in (as gunicorn
/// and Granian do: `ferrocgi app:application` works in the directory holding `app.py`).
fn prepend_pythonpath(
    py: Python<'_>,
    dirs: &[PathBuf],
    start_dir: Option<&std::path::Path>,
) -> PyResult<()> {
    let path = py.import("sys")?.getattr("path")?;
    let entries = dirs.iter().map(PathBuf::as_path).chain(start_dir);
    for (i, d) in entries.enumerate() {
        path.call_method1("insert", (i, d.to_string_lossy().into_owned()))?;
    }
    Ok(())
}

/// Gives SIGINT back its default action in Python's eyes. The server handles Ctrl-C itself
/// (a logged quick stop, exit status 0); Python's own handler would otherwise also note it and
/// raise KeyboardInterrupt, with a traceback, the moment control returns to Python.
fn default_sigint(py: Python<'_>) -> PyResult<()> {
    let signal = py.import("signal")?;
    signal.call_method1(
        "signal",
        (signal.getattr("SIGINT")?, signal.getattr("SIG_DFL")?),
    )?;
    Ok(())
}

/// Removes the variables ferrocgi passes to itself from `os.environ` (Python copied the
/// environment at its start, before [`reexec::take_inherited`] removed them from the process's).
fn forget_internal_env(py: Python<'_>) -> PyResult<()> {
    let environ = py.import("os")?.getattr("environ")?;
    for k in reexec::INTERNAL_ENV.iter().chain(&spawned::SYSTEMD_ENV) {
        environ.call_method1("pop", (*k, py.None()))?;
    }
    Ok(())
}

fn py_fork(py: Python<'_>) -> std::io::Result<Forked> {
    // os.fork() runs the interpreter's own before/after-fork work (locks, at-fork hooks).
    let pid: i32 = py
        .import("os")
        .and_then(|os| os.call_method0("fork"))
        .and_then(|r| r.extract())
        .map_err(|e| std::io::Error::other(format!("os.fork() failed: {e}")))?;
    Ok(if pid == 0 {
        Forked::Child
    } else {
        Forked::Parent(pid)
    })
}

/// The script the web server started (spawned mode watches it: `touch mysite.fcgi`).
fn script_path(py: Python<'_>) -> Option<PathBuf> {
    let argv0: String = py
        .import("sys")
        .ok()?
        .getattr("argv")
        .ok()?
        .get_item(0)
        .ok()?
        .extract()
        .ok()?;
    let p = std::fs::canonicalize(argv0).ok()?;
    p.is_file().then_some(p)
}

/// Where the application comes from: imported by ferrocgi (`module:callable`), made by a
/// loader the caller gives (Django's `WSGI_APPLICATION`), or given ready (embedding).
pub enum AppSource {
    /// Import `module:callable` from the options.
    Import(AppRef),
    /// Call this to get the application.
    Loader(Py<PyAny>),
    /// The application itself.
    Ready(Py<PyAny>),
}

impl AppSource {
    /// The application; an error is printed (with its traceback) here. A loader is told the
    /// `interface=` asked for (`auto`, `wsgi`, `asgi`): Django's gives its ASGI handler for
    /// `asgi`.
    fn load(self, py: Python<'_>, interface: Interface) -> Option<Py<PyAny>> {
        let word = match interface {
            Interface::Auto => "auto",
            Interface::Wsgi => "wsgi",
            Interface::Asgi => "asgi",
        };
        let (what, result, hint) = match self {
            AppSource::Ready(app) => return Some(app),
            AppSource::Loader(f) => ("the application".to_string(), f.call1(py, (word,)), None),
            AppSource::Import(r) => {
                let result = import_app(py, &r);
                let hint = result.as_ref().err().and_then(|e| import_hint(py, &r, e));
                (
                    format!("the application {}:{}", r.module, r.callable),
                    result,
                    hint,
                )
            }
        };
        match result {
            Ok(app) => Some(app),
            Err(e) => {
                e.print(py);
                eprintln!("ferrocgi: cannot load {what}");
                if let Some(hint) = hint {
                    eprintln!("{hint}");
                }
                None
            }
        }
    }
}

/// Advice for an import that failed because the application's own top module was not found:
/// where Python looked, and the likely fix.
fn import_hint(py: Python<'_>, app: &AppRef, e: &PyErr) -> Option<String> {
    if let Some(stem) = app.module.strip_suffix(".py") {
        return Some(format!(
            "ferrocgi: {}:{} names a file, not a module: did you mean {}:application?",
            app.module,
            app.callable,
            stem.replace('/', ".")
        ));
    }
    if !e.is_instance_of::<pyo3::exceptions::PyModuleNotFoundError>(py) {
        return None;
    }
    let missing: String = e.value(py).getattr("name").ok()?.extract().ok()?;
    let top = app.module.split('.').next()?;
    if missing != top {
        return None;
    }
    let path: Vec<String> = py
        .import("sys")
        .ok()?
        .getattr("path")
        .ok()?
        .extract()
        .ok()?;
    let searched: Vec<&str> = path
        .iter()
        .map(String::as_str)
        .filter(|d| !d.is_empty())
        .collect();
    Some(format!(
        "ferrocgi: no module {top:?} in any of these directories: {}\nferrocgi: run ferrocgi in the directory that holds {top}, or add it with pythonpath=DIR",
        searched.join(", ")
    ))
}

/// Serves with parsed options through the server crate's launcher; the application is loaded
/// there, after the bind and the privilege drop. Returns the process exit status.
pub fn run_options(py: Python<'_>, opts: Options, app: Option<AppSource>) -> PyResult<i32> {
    let source = match (app, command::app(&opts)) {
        (Some(source), _) => source,
        (None, Some(app_ref)) => AppSource::Import(app_ref),
        (None, None) => {
            eprintln!("ferrocgi: no application given (example: ferrocgi mysite.wsgi:application port=3033)");
            return Ok(2);
        }
    };
    let host = PyHost {
        py,
        opts: &opts,
        source: RefCell::new(Some(source)),
        app: OnceCell::new(),
        asgi: OnceCell::new(),
    };
    Ok(launch::launch(&opts, &host))
}

/// The Python side of start-up, for [`launch::launch`].
struct PyHost<'py, 'o> {
    py: Python<'py>,
    opts: &'o Options,
    source: RefCell<Option<AppSource>>,
    app: OnceCell<Py<PyAny>>,
    /// Whether the application is called as ASGI (decided once it is loaded).
    asgi: OnceCell<bool>,
}

/// The handler of a Python application: WSGI on threads, or ASGI on an event loop.
pub enum PyHandler {
    /// See [`WsgiHandler`].
    Wsgi(WsgiHandler),
    /// See [`AsgiHandler`].
    Asgi(AsgiHandler),
}

impl ferrocgi_server::Handler for PyHandler {
    async fn handle(&self, req: ferrocgi_server::Request, resp: ferrocgi_server::Responder) {
        match self {
            PyHandler::Wsgi(h) => h.handle(req, resp).await,
            PyHandler::Asgi(h) => h.handle(req, resp).await,
        }
    }
}

/// Whether `app` is served as ASGI under `interface`; logged, since `auto` decides by
/// looking at the application.
fn decide_asgi(py: Python<'_>, app: &Bound<'_, PyAny>, interface: Interface) -> bool {
    let looks_asgi = asgi::is_asgi(py, app).unwrap_or(false);
    let asgi = match interface {
        Interface::Wsgi => false,
        Interface::Asgi => true,
        Interface::Auto => looks_asgi,
    };
    let how = match (interface, asgi) {
        (Interface::Auto, true) => " (interface=auto: its call is a coroutine function)",
        (Interface::Auto, false) => " (interface=auto: its call is not a coroutine function)",
        _ => "",
    };
    tracing::info!(
        "serving the application as {}{how}",
        if asgi { "ASGI 3" } else { "WSGI" }
    );
    if interface != Interface::Auto && asgi != looks_asgi {
        let (is, told) = if looks_asgi {
            ("is a coroutine function (ASGI)", "wsgi")
        } else {
            ("is not a coroutine function (WSGI?)", "asgi")
        };
        tracing::warn!("interface={told}, but the application's call {is}: its requests will likely fail; interface=auto decides by the call");
    }
    asgi
}

fn io_error(e: PyErr) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl AppHost for PyHost<'_, '_> {
    type Handler = PyHandler;

    fn prepare(&self, start_dir: Option<&Path>) -> std::io::Result<()> {
        forget_internal_env(self.py).map_err(io_error)?;
        default_sigint(self.py).map_err(io_error)?;
        let pythonpath = command::pythonpath(self.opts, start_dir);
        prepend_pythonpath(self.py, &pythonpath, start_dir).map_err(io_error)
    }

    fn fork(&self) -> std::io::Result<Forked> {
        py_fork(self.py)
    }

    fn load(&self) -> bool {
        let Some(source) = self.source.borrow_mut().take() else {
            return self.app.get().is_some();
        };
        let interface = command::interface(self.opts);
        match source.load(self.py, interface) {
            Some(app) => {
                let asgi = decide_asgi(self.py, app.bind(self.py), interface);
                let _ = self.asgi.set(asgi);
                self.app.set(app).is_ok()
            }
            None => false,
        }
    }

    fn start(
        &self,
        opts: &Options,
        role: Role,
        on_wedged: OnWedged,
    ) -> std::io::Result<Serving<PyHandler>> {
        let py = self.py;
        let app = self
            .app
            .get()
            .ok_or_else(|| std::io::Error::other("the application is not loaded"))?
            .clone_ref(py);
        if self.asgi.get() == Some(&true) {
            return self.start_asgi(opts, role, app);
        }
        let (settings, threads) = match role {
            Role::Threaded => (
                HostSettings::from_options(opts, false),
                Threads::Pool(opts.threads),
            ),
            Role::Worker { inline: true } => {
                (HostSettings::from_options(opts, true), Threads::Inline)
            }
            Role::Worker { inline: false } => (
                HostSettings::from_options(opts, true),
                Threads::Pool(opts.threads),
            ),
            Role::Cgi => {
                let mut s = HostSettings::from_options(opts, false);
                s.multithread = false;
                s.server.protocol = Protocol::Cgi.name();
                (s, Threads::Pool(1))
            }
        };
        let handler = Host::start(py, app, settings, threads, on_wedged).map_err(io_error)?;
        let pool = handler.app_threads();
        Ok(Serving {
            handler: PyHandler::Wsgi(handler),
            // One I/O thread, the accept loop's: the Python threads need the cores more. An
            // inline worker runs requests on its I/O thread, which must then belong to a
            // multi-thread runtime (see Threads::Inline).
            io_threads: usize::from(threads == Threads::Inline),
            wait_ended: Box::new(move |t| pool.wait_ended(t)),
            // Under threaded, each pool thread has its row on the status page.
            app_threads: if role == Role::Threaded {
                opts.threads
            } else {
                0
            },
            concurrency: opts.threads,
            wait_before_reload: false,
        })
    }

    fn unlocked<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.py.detach(f)
    }

    fn script(&self) -> Option<PathBuf> {
        script_path(self.py)
    }
}

impl PyHost<'_, '_> {
    /// An ASGI application: its event loop's thread, after the lifespan startup.
    fn start_asgi(
        &self,
        opts: &Options,
        role: Role,
        app: Py<PyAny>,
    ) -> std::io::Result<Serving<PyHandler>> {
        let mut settings = HostSettings::from_options(opts, matches!(role, Role::Worker { .. }));
        if role == Role::Cgi {
            settings.server.protocol = Protocol::Cgi.name();
        }
        settings.server.interface = "asgi";
        let kind = command::loop_kind(opts);
        if kind != asgi::LoopKind::Asyncio {
            // uvloop takes the thread that first imports it for the main thread (where it
            // sets up signal handling): that must be this one, not the loop's.
            let _ = self.py.import("uvloop");
        }
        let conf = LoopConfig {
            kind,
            lifespan: command::lifespan(opts),
            shutdown_timeout: opts.graceful_timeout,
        };
        // The loop ends after the application's lifespan shutdown, which may take its time.
        let shutdown = conf.shutdown_timeout + std::time::Duration::from_secs(1);
        let (handler, thread) = self.py.detach(|| asgi::spawn(app, settings, conf))?;
        Ok(Serving {
            handler: PyHandler::Asgi(handler),
            io_threads: 0,
            wait_ended: Box::new(move |t| thread.wait_ended(t.max(shutdown))),
            app_threads: 0,
            concurrency: opts.max_in_flight,
            wait_before_reload: true,
        })
    }
}

fn flavor(name: &str) -> PyResult<&'static Command> {
    command::by_name(name).ok_or_else(|| PyValueError::new_err(format!("unknown flavor {name:?}")))
}

/// `main(argv, flavor="cli", app=None, loader=None) -> int`: parse the words, print help or
/// the one-line error (exit status 2), or serve. `loader` (Django's runfcgi / runfastcgi) is
/// called for the application once the socket is bound and privileges are dropped; `app` is
/// an application already made.
#[pyfunction]
#[pyo3(signature = (argv, flavor_name="cli", app=None, loader=None))]
fn main(
    py: Python<'_>,
    argv: Vec<String>,
    flavor_name: &str,
    app: Option<Py<PyAny>>,
    loader: Option<Py<PyAny>>,
) -> PyResult<i32> {
    let source = match (app, loader) {
        (Some(app), _) => Some(AppSource::Ready(app)),
        (None, Some(f)) => Some(AppSource::Loader(f)),
        (None, None) => None,
    };
    if flavor_name == "cli" && argv.first().map(String::as_str) == Some("status") {
        return Ok(py.detach(|| ferrocgi_server::status::client::main(&argv[1..])));
    }
    let flavor = flavor(flavor_name)?;
    match options::parse(&argv, flavor) {
        Ok(Parsed::Help(text)) => {
            println!("{text}");
            Ok(0)
        }
        Ok(Parsed::Version) => {
            println!("ferrocgi {}", options::VERSION);
            Ok(0)
        }
        Ok(Parsed::Run(opts)) => run_options(py, *opts, source),
        Err(e) => {
            eprintln!("{e}");
            Ok(2)
        }
    }
}

/// `check(argv, flavor="cli") -> int | None`: parses the words without serving. Help, the
/// version and errors are printed here and their exit status returned; `None` means the words
/// are good (callers that must load an application first — Django — check before loading).
#[pyfunction]
#[pyo3(signature = (argv, flavor_name="cli"))]
fn check(argv: Vec<String>, flavor_name: &str) -> PyResult<Option<i32>> {
    match options::parse(&argv, flavor(flavor_name)?) {
        Ok(Parsed::Help(text)) => {
            println!("{text}");
            Ok(Some(0))
        }
        Ok(Parsed::Version) => {
            println!("ferrocgi {}", options::VERSION);
            Ok(Some(0))
        }
        Ok(Parsed::Run(_)) => Ok(None),
        Err(e) => {
            eprintln!("{e}");
            Ok(Some(2))
        }
    }
}

/// `help_text(flavor="cli") -> str`.
#[pyfunction]
#[pyo3(signature = (flavor_name="cli"))]
fn help_text(flavor_name: &str) -> PyResult<String> {
    Ok(options::help_text(flavor(flavor_name)?))
}

/// Adds `main`, `check` and `help_text` to the extension module.
pub fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(main, m)?)?;
    m.add_function(wrap_pyfunction!(help_text, m)?)?;
    m.add_function(wrap_pyfunction!(check, m)?)?;
    Ok(())
}
