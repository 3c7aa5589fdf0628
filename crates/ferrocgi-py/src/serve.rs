//! Running the server from Python: logging, binding, the runtime, signals.

use crate::environ::ServerInfo;
use crate::host::{Host, HostSettings, Threads};
use ferrocgi_server::options::{self, Flavor, Method, Options, Parsed};
use ferrocgi_server::process::daemon::{self, Forked, PidFile};
use ferrocgi_server::process::prefork::{self, PreforkSettings, SupervisorExit, WorkerSetup};
use ferrocgi_server::process::runner::{self, ReopenLogs, RunEnd, RunPlan};
use ferrocgi_server::process::{reexec, spawned};
use ferrocgi_server::{BindAddr, Listener, Protocol, Server, ServerConfig, UnixSocketOptions};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use std::path::PathBuf;
use tracing::{error, info};

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

/// Server logs go to stderr (the `errlog` once daemonized), one line each, no colours.
pub fn init_logging(level: &str) {
    ferrocgi_server::logging::init(level);
}

/// Binds, starts the Python threads and serves until SIGTERM or SIGINT.
pub fn run(py: Python<'_>, app: Py<PyAny>, args: ServeArgs) -> PyResult<()> {
    if !args.log_level.is_empty() {
        init_logging(&args.log_level);
    }
    let listener = Listener::bind(&args.bind, &args.unix, args.backlog)
        .map_err(|e| PyOSError::new_err(e.to_string()))?;
    let handler = Host::start(
        py,
        app,
        args.host,
        Threads::Pool(args.threads),
        Box::new(|| {}),
    )?;
    let pool = handler.pool();
    let config = args.config;
    let served = py.detach(move || {
        // One I/O thread (this one, with the accept loop): the Python threads need the cores.
        let rt = tokio::runtime::Builder::new_current_thread()
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
    });
    py.detach(|| pool.wait_ended(std::time::Duration::from_secs(5)));
    served.map_err(|e: std::io::Error| PyOSError::new_err(e.to_string()))
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
            slow_request: None,
            request_timeout: None,
            queue_timeout: None,
            max_spool: u64::MAX,
            server: ServerInfo {
                protocol: protocol.name(),
                method: "embedded".into(),
                threads,
                processes: 1,
            },
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

fn host_settings(opts: &Options, multiprocess: bool) -> HostSettings {
    HostSettings {
        script_name: opts.script_name.clone(),
        spool_threshold: opts.spool_threshold,
        max_body: opts.max_body,
        debug: opts.debug,
        multithread: opts.threads > 1,
        multiprocess,
        ajp_path_decoded: opts.ajp_lighttpd_compat,
        slow_request: opts.slow_request,
        request_timeout: opts.request_timeout,
        queue_timeout: opts.queue_timeout,
        max_spool: opts.max_spool.unwrap_or(u64::MAX),
        server: ServerInfo {
            protocol: opts.protocol.name(),
            method: opts.method.to_string(),
            threads: opts.threads,
            processes: if opts.method == Method::Prefork {
                opts.maxchildren
            } else {
                1
            },
        },
    }
}

/// Hands the socket to a fresh copy of this program (graceful reload); returns only on error.
fn reload(listener: Listener, old_workers: &[i32], pidfile: Option<PidFile>) -> PyResult<i32> {
    let fd = listener
        .into_inheritable_fd()
        .map_err(|e| PyOSError::new_err(e.to_string()))?;
    if let Some(p) = pidfile {
        p.keep(); // same pid after exec
    }
    info!("re-executing to load the application afresh");
    let e = reexec::reexec(fd, old_workers);
    error!("reload failed: cannot re-execute: {e}");
    Ok(1)
}

/// Where the application comes from: imported by ferrocgi (`module:callable`), made by a
/// loader the caller gives (Django's `WSGI_APPLICATION`), or given ready (embedding).
pub enum AppSource {
    /// Import `module:callable` from the options.
    Import(options::AppRef),
    /// Call this to get the application.
    Loader(Py<PyAny>),
    /// The application itself.
    Ready(Py<PyAny>),
}

impl AppSource {
    /// The application; an error is printed (with its traceback) here.
    fn load(self, py: Python<'_>) -> Option<Py<PyAny>> {
        let (what, result, hint) = match self {
            AppSource::Ready(app) => return Some(app),
            AppSource::Loader(f) => ("the application".to_string(), f.call0(py), None),
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
fn import_hint(py: Python<'_>, app: &options::AppRef, e: &PyErr) -> Option<String> {
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

/// Serves with parsed options. The application is loaded after the socket is bound and the
/// privileges are dropped (its module-level code never runs as root), and before anything
/// reports ready or forks, so a broken application still fails fast.
/// Returns the process exit status.
pub fn run_options(py: Python<'_>, opts: Options, app: Option<AppSource>) -> PyResult<i32> {
    reexec::remember_start_dir();
    reexec::take_inherited();
    spawned::take_systemd_env();
    forget_internal_env(py)?;
    default_sigint(py)?;
    init_logging(&opts.log_level.level().to_string().to_lowercase());
    prepend_pythonpath(py, &opts.pythonpath, reexec::start_dir())?;
    let source = match (app, opts.app.clone()) {
        (Some(source), _) => source,
        (None, Some(app_ref)) => AppSource::Import(app_ref),
        (None, None) => {
            eprintln!("ferrocgi: no application given (example: ferrocgi mysite.wsgi:application port=3033)");
            return Ok(2);
        }
    };
    match serve_app(py, &opts, source) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("ferrocgi: {e}");
            Ok(1)
        }
    }
}

enum Start {
    Listen(Listener),
    Cgi,
}

fn serve_app(py: Python<'_>, opts: &Options, source: AppSource) -> std::io::Result<i32> {
    let is_reexec = reexec::is_reexec();
    let mut spawned = false;
    let start = if let Some(fd) = reexec::inherited_listener() {
        let mut l = Listener::from_inherited_fd(fd)?;
        l.adopt_socket_file();
        Start::Listen(l)
    } else if let Some(fd) = spawned::systemd_socket().filter(|_| opts.bind_addr().is_none()) {
        info!("serving the socket passed by systemd (LISTEN_FDS)");
        Start::Listen(Listener::from_inherited_fd(fd)?)
    } else if let Some(bind) = opts.bind_addr() {
        if let Some(p) = &opts.pidfile {
            PidFile::check(p)?;
        }
        Start::Listen(Listener::bind(
            &bind,
            &opts.unix_socket_options(),
            opts.backlog,
        )?)
    } else {
        match spawned::detect() {
            spawned::Stdin::ListeningSocket => {
                spawned = true;
                info!(
                    "no address given: serving the listening socket the web server passed as fd 0"
                );
                Start::Listen(Listener::from_fd(0)?)
            }
            spawned::Stdin::Cgi => Start::Cgi,
            spawned::Stdin::Other => {
                eprintln!("ferrocgi: no address given and fd 0 is not a listening socket: give host and port, socket or fd (example: port=3033)");
                return Ok(2);
            }
        }
    };
    if let Start::Cgi = start {
        let Some(app) = source.load(py) else {
            return Ok(1);
        };
        return serve_cgi(py, opts, app);
    }
    let Start::Listen(listener) = start else {
        unreachable!("handled above")
    };
    let listen = listener.to_string();

    // A re-executed server keeps the standard streams it inherited (its logs already).
    let mut started = daemon::Started::none();
    if !is_reexec {
        let detach = opts.daemonize && !spawned;
        started = setup_logs(py, opts, detach)?;
        if detach {
            daemon::close_inherited_fds(&[listener.as_raw_fd()])?;
        }
    }
    let pidfile = match &opts.pidfile {
        Some(p) => Some(PidFile::write(p)?),
        None => None,
    };
    let socket_file = match opts.bind_addr() {
        Some(BindAddr::Unix(p)) if !is_reexec => Some(p),
        _ => None,
    };
    let files: Vec<&std::path::Path> = opts
        .pidfile
        .iter()
        .chain(socket_file.iter())
        .map(PathBuf::as_path)
        .collect();
    daemon::warn_if_left_behind(&files, opts.user.as_ref(), opts.group.as_ref());
    daemon::drop_privileges(opts.user.as_ref(), opts.group.as_ref())?;
    let Some(app) = source.load(py) else {
        return Ok(1);
    };
    started.ok();
    let (outlog, errlog) = (opts.outlog.clone(), opts.errlog.clone());
    let reopen: ReopenLogs = std::sync::Arc::new(move || {
        if let Err(e) = daemon::reopen_logs(outlog.as_deref(), errlog.as_deref()) {
            error!("cannot reopen log files: {e}");
        }
    });
    let watch_script: Vec<PathBuf> = if spawned {
        script_path(py).into_iter().collect()
    } else {
        Vec::new()
    };

    if opts.method == Method::Threaded {
        // A wedged request: reload (spawned: stop; the web server starts a fresh process).
        let restart = std::sync::Arc::new(tokio::sync::Notify::new());
        let wedged = restart.clone();
        let handler = Host::start(
            py,
            app,
            host_settings(opts, false),
            Threads::Pool(opts.threads),
            Box::new(move || wedged.notify_one()),
        )
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        let pool = handler.pool();
        let server = Server::new(listener, opts.server_config(), handler);
        let plan = RunPlan {
            restart: Some(restart),
            reload: !spawned,
            reload_on: opts.reload_on.clone(),
            exit_on_change: watch_script,
            reopen_logs: Some(reopen),
            // One I/O thread, the accept loop's: the Python threads need the cores more.
            io_threads: 0,
            notify: true,
            ready_status: Some(format!(
                "serving on {listen}: threaded, {} Python threads",
                opts.threads
            )),
            ..RunPlan::default()
        };
        let end = py.detach(|| runner::run(server, plan))?;
        if let RunEnd::Reload(l) = end {
            // exec replaces every thread, stuck ones included: no need to wait for them.
            return reload(l, &[], pidfile).map_err(|e| std::io::Error::other(e.to_string()));
        }
        // Python must not finalize under threads still running application code.
        if !py.detach(|| pool.wait_ended(std::time::Duration::from_secs(5))) {
            error!("application threads still busy after the stop; exiting without waiting");
            drop(pidfile);
            daemon::exit_now(0);
        }
        return Ok(0);
    }

    // Prefork: this process supervises; workers are forked from it with the app imported.
    let mut reload_on = opts.reload_on.clone();
    reload_on.extend(watch_script);
    let settings = PreforkSettings {
        minspare: opts.minspare,
        maxspare: opts.maxspare,
        maxchildren: opts.maxchildren,
        graceful_timeout: opts.graceful_timeout,
        reload_on,
    };
    let worker_listener = listener.try_clone_unguarded()?;
    let config = opts.server_config();
    // A worker serving one request at a time runs it on its I/O thread (see Threads::Inline),
    // so that thread must belong to a multi-thread runtime (io_threads: 1).
    let threads = match opts.threads {
        1 => Threads::Inline,
        n => Threads::Pool(n),
    };
    let mut run_worker = |setup: WorkerSetup| -> i32 {
        let listener = match worker_listener.try_clone_unguarded() {
            Ok(l) => l,
            Err(e) => {
                error!(
                    "worker {}: cannot use the listening socket: {e}",
                    setup.index
                );
                return 1;
            }
        };
        // A wedged worker exits; the supervisor replaces it.
        let handler = match Host::start(
            py,
            app.clone_ref(py),
            host_settings(opts, true),
            threads,
            Box::new(|| daemon::exit_now(1)),
        ) {
            Ok(h) => h,
            Err(e) => {
                error!("worker {}: cannot start Python threads: {e}", setup.index);
                return 1;
            }
        };
        let pool = handler.pool();
        let server = Server::new(listener, config.clone(), handler);
        let plan = RunPlan {
            status: Some(setup.status),
            maxrequests: opts.maxrequests,
            reopen_logs: Some(reopen.clone()),
            io_threads: usize::from(threads == Threads::Inline),
            accept_below: Some(opts.threads),
            ..RunPlan::default()
        };
        let code = match py.detach(|| runner::run(server, plan)) {
            Ok(_) => 0,
            Err(e) => {
                error!("worker {}: {e}", setup.index);
                1
            }
        };
        py.detach(|| pool.wait_ended(std::time::Duration::from_secs(5)));
        code
    };
    let old = reexec::inherited_old_workers();
    let end = prefork::supervise(
        &settings,
        &mut || py_fork(py),
        &mut run_worker,
        &mut || reopen(),
        &old,
    )?;
    match end {
        SupervisorExit::Stopped => Ok(0),
        SupervisorExit::Reload { old_workers } if !spawned => {
            reload(listener, &old_workers, pidfile)
                .map_err(|e| std::io::Error::other(e.to_string()))
        }
        SupervisorExit::Reload { old_workers } => {
            // Spawned by the web server: it starts a fresh process itself; let ours drain.
            prefork::wait_for(&old_workers, opts.graceful_timeout);
            Ok(0)
        }
    }
}

/// Opens `outlog`/`errlog` (as root, before the drop, owned by the target user) and points
/// stdout/stderr at them, detaching first when `detach`.
fn setup_logs(py: Python<'_>, opts: &Options, detach: bool) -> std::io::Result<daemon::Started> {
    let start_dir = reexec::start_dir().unwrap_or(std::path::Path::new("/"));
    let owner = daemon::target_ids(opts.user.as_ref(), opts.group.as_ref());
    let (out, err) = (opts.outlog.as_deref(), opts.errlog.as_deref());
    let logs = daemon::Logs::open(out, err, detach, start_dir, owner)?;
    if detach {
        let d = daemon::DaemonOptions {
            workdir: opts.workdir.clone(),
            umask: opts.umask,
        };
        daemon::daemonize(&d, &logs, &mut || py_fork(py))
    } else {
        logs.apply(false).map(|()| daemon::Started::none())
    }
}

/// One request as plain CGI (fd 0 is not a socket: mod_cgi, or a shell).
fn serve_cgi(py: Python<'_>, opts: &Options, app: Py<PyAny>) -> std::io::Result<i32> {
    let params: ferrocgi_server::Params = std::env::vars_os()
        .map(|(k, v)| {
            use std::os::unix::ffi::OsStrExt;
            (k.as_bytes().to_vec(), v.as_bytes().to_vec())
        })
        .collect();
    let mut settings = host_settings(opts, false);
    settings.multithread = false;
    settings.server.protocol = Protocol::Cgi.name();
    let handler = Host::start(
        py,
        app,
        settings,
        Threads::Pool(1),
        Box::new(|| daemon::exit_now(1)),
    )
    .map_err(|e| std::io::Error::other(e.to_string()))?;
    let pool = handler.pool();
    let listener_less = Server::cgi(opts.server_config(), handler);
    py.detach(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let r = rt.block_on(listener_less.serve_cgi(params));
        rt.shutdown_timeout(std::time::Duration::from_millis(200));
        r
    })?;
    // Python must not finalize under its own threads.
    if !py.detach(|| pool.wait_ended(std::time::Duration::from_secs(5))) {
        daemon::exit_now(0);
    }
    Ok(0)
}

fn flavor(name: &str) -> PyResult<Flavor> {
    match name {
        "cli" => Ok(Flavor::Cli),
        "django" => Ok(Flavor::Django),
        other => Err(PyValueError::new_err(format!("unknown flavor {other:?}"))),
    }
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

pub fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(serve, m)?)?;
    m.add_function(wrap_pyfunction!(main, m)?)?;
    m.add_function(wrap_pyfunction!(help_text, m)?)?;
    m.add_function(wrap_pyfunction!(check, m)?)?;
    Ok(())
}
