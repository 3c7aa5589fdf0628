//! Running the server from Python: logging, binding, the runtime, signals.

use crate::host::{Host, HostSettings};
use ferrocgi_server::{BindAddr, Listener, Protocol, Server, ServerConfig, UnixSocketOptions};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use std::sync::Once;
use tracing::info;

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
    init_logging(&args.log_level);
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

pub fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(serve, m)?)?;
    Ok(())
}
