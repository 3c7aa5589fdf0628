//! Running the server from Python: logging, binding, the runtime, signals.

use crate::host::{Host, HostSettings};
use ferrocgi_server::options::{self, Flavor, Method, Options, Parsed};
use ferrocgi_server::{BindAddr, Listener, Protocol, Server, ServerConfig, UnixSocketOptions};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use std::sync::Once;
use tracing::{info, warn};

/// Everything needed to serve one WSGI application.
pub struct ServeArgs {
    pub bind: BindAddr,
    pub unix: UnixSocketOptions,
    pub backlog: i32,
    pub config: ServerConfig,
    pub host: HostSettings,
    pub threads: usize,
    pub log_level: String,
}

static LOGGING: Once = Once::new();

/// Server logs go to stderr (the `errlog` once daemonized), one line each, no colours.
pub fn init_logging(level: &str) {
    LOGGING.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_new(level)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_env_filter(filter)
            .init();
    });
}

/// Binds, starts the Python threads and serves until SIGTERM or SIGINT.
pub fn run(py: Python<'_>, app: Py<PyAny>, args: ServeArgs) -> PyResult<()> {
    if !args.log_level.is_empty() {
        init_logging(&args.log_level);
    }
    let listener = Listener::bind(&args.bind, &args.unix, args.backlog)
        .map_err(|e| PyOSError::new_err(e.to_string()))?;
    let handler = Host::start(py, app, args.host, args.threads)?;
    let config = args.config;
    py.detach(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ferrocgi-io")
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let stop = async {
                use tokio::signal::unix::{signal, SignalKind};
                let mut term = signal(SignalKind::terminate()).expect("signal handler");
                let mut int = signal(SignalKind::interrupt()).expect("signal handler");
                tokio::select! {
                    _ = term.recv() => info!("SIGTERM: graceful stop"),
                    _ = int.recv() => info!("SIGINT: stopping"),
                }
            };
            Server::new(listener, config, handler).run(stop).await
        })
    })
    .map_err(|e: std::io::Error| PyOSError::new_err(e.to_string()))
}

fn parse_bind(bind: &str) -> PyResult<BindAddr> {
    if let Some(p) = bind.strip_prefix("unix:") {
        return Ok(BindAddr::Unix(p.into()));
    }
    if let Some(fd) = bind.strip_prefix("fd:") {
        return fd
            .parse()
            .map(BindAddr::Fd)
            .map_err(|_| PyValueError::new_err(format!("bad fd in {bind:?}")));
    }
    bind.parse().map(BindAddr::Tcp).map_err(|_| {
        PyValueError::new_err(format!("bad address {bind:?} (example: 127.0.0.1:9000)"))
    })
}

/// `serve(app, bind, protocol="fcgi", …)`: serve a WSGI callable (embedding and tests).
#[pyfunction]
#[pyo3(signature = (app, bind, protocol="fcgi", threads=8, script_name=None, debug=false,
    log_level="info", spool_threshold=1048576, max_body=None, ajp_lighttpd_compat=false,
    socket_mode=None))]
#[allow(clippy::too_many_arguments)]
fn serve(
    py: Python<'_>,
    app: Py<PyAny>,
    bind: &str,
    protocol: &str,
    threads: usize,
    script_name: Option<String>,
    debug: bool,
    log_level: &str,
    spool_threshold: u64,
    max_body: Option<u64>,
    ajp_lighttpd_compat: bool,
    socket_mode: Option<u32>,
) -> PyResult<()> {
    let protocol = match protocol {
        "fcgi" | "fastcgi" => Protocol::Fastcgi,
        "scgi" => Protocol::Scgi,
        "ajp" | "ajp13" => Protocol::Ajp13,
        other => return Err(PyValueError::new_err(format!("unknown protocol {other:?}"))),
    };
    let mut config = ServerConfig::new(protocol);
    config.ajp.lighttpd_body_compat = ajp_lighttpd_compat;
    let args = ServeArgs {
        bind: parse_bind(bind)?,
        unix: UnixSocketOptions {
            mode: socket_mode,
            owner: None,
        },
        backlog: ferrocgi_server::listener::DEFAULT_BACKLOG,
        config,
        host: HostSettings {
            script_name,
            spool_threshold,
            max_body,
            debug,
            multithread: threads > 1,
            multiprocess: false,
            ajp_path_decoded: ajp_lighttpd_compat,
        },
        threads,
        log_level: log_level.to_string(),
    };
    run(py, app, args)
}

/// Imports `module:callable` (after `pythonpath` was put first on `sys.path`).
fn import_app(py: Python<'_>, app: &options::AppRef) -> PyResult<Py<PyAny>> {
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

fn prepend_pythonpath(py: Python<'_>, dirs: &[std::path::PathBuf]) -> PyResult<()> {
    let path = py.import("sys")?.getattr("path")?;
    for d in dirs.iter().rev() {
        path.call_method1("insert", (0, d.to_string_lossy().into_owned()))?;
    }
    Ok(())
}

/// Serves with parsed options: `app` given (Django, runfastcgi) or imported from the options.
/// Returns the process exit status.
pub fn run_options(py: Python<'_>, opts: Options, app: Option<Py<PyAny>>) -> PyResult<i32> {
    init_logging(&format!("{:?}", opts.log_level.level()).to_lowercase());
    prepend_pythonpath(py, &opts.pythonpath)?;
    let app = match app {
        Some(app) => app,
        None => {
            let Some(app_ref) = opts.app.as_ref() else {
                eprintln!("ferrocgi: no application given (example: ferrocgi mysite.wsgi:application port=3033)");
                return Ok(2);
            };
            // An import error fails fast, with its traceback, before anything is bound.
            match import_app(py, app_ref) {
                Ok(app) => app,
                Err(e) => {
                    e.print(py);
                    eprintln!(
                        "ferrocgi: cannot load the application {}:{}",
                        app_ref.module, app_ref.callable
                    );
                    return Ok(1);
                }
            }
        }
    };
    if opts.method == Method::Prefork {
        // NOTE: the prefork supervisor is the process-models issue's work; until it lands the
        // one-process threaded model serves, and says so.
        warn!("method=prefork is not available yet in this build; serving with method=threaded");
    }
    if opts.daemonize {
        warn!("daemonize is not available yet in this build; staying in the foreground");
    }
    let bind = opts.bind_addr().unwrap_or(BindAddr::Fd(0));
    let args = ServeArgs {
        bind,
        unix: opts.unix_socket_options(),
        backlog: opts.backlog,
        config: opts.server_config(),
        host: HostSettings {
            script_name: opts.script_name.clone(),
            spool_threshold: opts.spool_threshold,
            max_body: opts.max_body,
            debug: opts.debug,
            multithread: opts.threads > 1,
            multiprocess: false,
            ajp_path_decoded: opts.ajp_lighttpd_compat,
        },
        threads: opts.threads,
        log_level: String::new(),
    };
    match run(py, app, args) {
        Ok(()) => Ok(0),
        Err(e) if e.is_instance_of::<PyOSError>(py) => {
            eprintln!("ferrocgi: {}", e.value(py));
            Ok(1)
        }
        Err(e) => Err(e),
    }
}

fn flavor(name: &str) -> PyResult<Flavor> {
    match name {
        "cli" => Ok(Flavor::Cli),
        "django" => Ok(Flavor::Django),
        other => Err(PyValueError::new_err(format!("unknown flavor {other:?}"))),
    }
}

/// `main(argv, flavor="cli", app=None) -> int`: parse the words, print help or the one-line
/// error (exit status 2), or serve (`app` given: Django's runfcgi / runfastcgi).
#[pyfunction]
#[pyo3(signature = (argv, flavor_name="cli", app=None))]
fn main(
    py: Python<'_>,
    argv: Vec<String>,
    flavor_name: &str,
    app: Option<Py<PyAny>>,
) -> PyResult<i32> {
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
        Ok(Parsed::Run(opts)) => run_options(py, *opts, app),
        Err(e) => {
            eprintln!("{e}");
            Ok(2)
        }
    }
}

/// `help_text(flavor="cli") -> str`.
#[pyfunction]
#[pyo3(signature = (flavor_name="cli"))]
fn help_text(flavor_name: &str) -> PyResult<String> {
    Ok(options::help_text(flavor(flavor_name)?))
}

pub fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(serve, m)?)?;
    m.add_function(wrap_pyfunction!(main, m)?)?;
    m.add_function(wrap_pyfunction!(help_text, m)?)?;
    Ok(())
}
