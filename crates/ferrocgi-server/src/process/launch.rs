//! The product's start-up, one path for every front end (the `ferrocgi` command, Django's
//! runfcgi and `runfastcgi()`, `ferrocgi.serve()`, the pure-Rust example): choose the listener,
//! detach and open the logs, write the pid file, drop privileges, load the application, then
//! serve in the chosen process model until a stop, or re-execute for a reload.
//!
//! What differs between hosts (Python or none) sits behind [`AppHost`]: how to fork, how to
//! load the application, how to start the handler for one process.
//!
//! Order matters: the socket is bound as root (a port below 1024, a socket in a root-owned
//! directory), the privileges are dropped before the application is loaded (its module-level
//! code never runs as root), and the application is loaded before anything reports ready or
//! forks (a broken application fails fast, with exit status 1).

use super::daemon::{self, Forked, PidFile, Started};
use super::prefork::{self, PreforkSettings, SupervisorExit, WorkerSetup};
use super::runner::{self, ReopenLogs, RunEnd, RunPlan};
use super::{reexec, spawned};
use crate::access;
use crate::options::{Method, Options};
use crate::status::{self, Restart, Rows};
use crate::{BindAddr, Handler, Listener, Server};
use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info};

/// Called by a host when a request is wedged beyond recovery: the process must be replaced.
pub type OnWedged = Box<dyn Fn() + Send + Sync>;

/// What one process serves with: a handler, started by the host for a [`Role`].
pub struct Serving<H> {
    /// The handler the [`Server`] calls for each request.
    pub handler: H,
    /// Runtime threads for the connections: 0 runs them on the thread that serves (the host's
    /// own threads need the cores), N a pool of N.
    pub io_threads: usize,
    /// Waits up to the given time for the host's own threads to finish the requests they run;
    /// `false` if some are still busy (the process then exits without waiting more).
    pub wait_ended: Box<dyn FnOnce(Duration) -> bool + Send>,
    /// Application threads that mark their status-page row themselves
    /// ([`crate::status::thread_busy`], by index); 0: the process is one row.
    pub app_threads: usize,
    /// Requests the process runs at once: a prefork worker accepts no more connections while
    /// this many requests are in flight (a thread pool's size; an event loop's limit).
    pub concurrency: usize,
    /// Wait for the host's threads before a reload too (an event loop runs the application's
    /// shutdown); otherwise exec replaces them at once.
    pub wait_before_reload: bool,
}

/// The process a handler is started for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The only serving process (`method=threaded`, or spawned by the web server).
    Threaded,
    /// A prefork worker. `inline`: it serves one request at a time, on the connection's own
    /// runtime thread (`threads=1`), so the runtime must be a pool ([`Serving::io_threads`] ≥ 1).
    Worker {
        /// One request at a time, run where it was read.
        inline: bool,
    },
    /// One CGI request (fd 0 is not a socket).
    Cgi,
}

/// The application host the launcher starts: what differs between Python and a pure-Rust
/// handler. Every method takes `&self`: the launcher calls them from the supervisor and from the
/// worker closures it gives to [`prefork`].
pub trait AppHost {
    /// The request handler this host starts.
    type Handler: Handler;

    /// Runs once, after the inherited environment is taken and logging is set up, before the
    /// listener is chosen (Python: `sys.path`, signal dispositions). `start_dir` is the
    /// directory the program was first started in.
    fn prepare(&self, _start_dir: Option<&Path>) -> io::Result<()> {
        Ok(())
    }

    /// Forks this process. A host with its own fork duties (Python's at-fork hooks) forks
    /// through them.
    fn fork(&self) -> io::Result<Forked>;

    /// Loads the application: after the bind and the privilege drop, before serving. `false`
    /// means it could not be loaded; the host has printed why.
    fn load(&self) -> bool;

    /// Starts the handler for a process of this role; `on_wedged` is the host's way out when
    /// a request can no longer be stopped.
    fn start(
        &self,
        opts: &Options,
        role: Role,
        on_wedged: OnWedged,
    ) -> io::Result<Serving<Self::Handler>>;

    /// Runs `f` with the host's lock released (Python: the GIL), for as long as it serves.
    fn unlocked<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T;

    /// The script the web server started, when spawned by one (`touch` it to restart).
    fn script(&self) -> Option<PathBuf> {
        None
    }
}

/// Where requests come from.
enum Source {
    Listen(Listener),
    Cgi,
}

/// Starts and runs the server as `opts` say, with `host`'s application; returns the process
/// exit status (0 stopped, 1 failed, 2 bad use), after printing why for anything but 0.
pub fn launch<A: AppHost>(opts: &Options, host: &A) -> i32 {
    reexec::remember_start_dir();
    reexec::take_inherited();
    spawned::take_systemd_env();
    crate::logging::init(
        &opts.log_level.level().to_string().to_lowercase(),
        opts.log_json,
    );
    let result = host
        .prepare(reexec::start_dir())
        .and_then(|()| start(opts, host));
    result.unwrap_or_else(|e| {
        eprintln!("ferrocgi: {e}");
        1
    })
}

/// The listener: inherited on a reload, passed by systemd, bound, or fd 0 of a process the
/// web server spawned; else CGI. `None`: nothing to serve (printed).
fn choose_source(opts: &Options, spawned_by_web_server: &mut bool) -> io::Result<Option<Source>> {
    if let Some(fd) = reexec::inherited_listener() {
        let mut l = Listener::from_inherited_fd(fd)?;
        l.adopt_socket_file();
        return Ok(Some(Source::Listen(l)));
    }
    let bind = opts.bind_addr();
    if let Some(fd) = spawned::systemd_socket().filter(|_| bind.is_none()) {
        info!("serving the socket passed by systemd (LISTEN_FDS)");
        return Ok(Some(Source::Listen(Listener::from_inherited_fd(fd)?)));
    }
    if let Some(bind) = bind {
        if let Some(p) = &opts.pidfile {
            PidFile::check(p)?;
        }
        let l = Listener::bind(&bind, &opts.unix_socket_options(), opts.backlog)?;
        return Ok(Some(Source::Listen(l)));
    }
    Ok(match spawned::detect() {
        spawned::Stdin::ListeningSocket => {
            *spawned_by_web_server = true;
            info!("no address given: serving the listening socket the web server passed as fd 0");
            Some(Source::Listen(Listener::from_fd(0)?))
        }
        spawned::Stdin::Cgi => Some(Source::Cgi),
        spawned::Stdin::Other => {
            eprintln!("ferrocgi: no address given and fd 0 is not a listening socket: give host and port, socket or fd (example: port=3033)");
            None
        }
    })
}

fn start<A: AppHost>(opts: &Options, host: &A) -> io::Result<i32> {
    let mut spawned = false;
    let listener = match choose_source(opts, &mut spawned)? {
        None => return Ok(2),
        Some(Source::Cgi) if !host.load() => return Ok(1),
        Some(Source::Cgi) => return run_cgi(opts, host),
        Some(Source::Listen(l)) => l,
    };
    let ready = ProcessSetup::run(opts, host, &listener, spawned)?;
    let Some(ready) = ready else {
        return Ok(1);
    };
    match opts.method {
        Method::Threaded => run_threaded(opts, host, listener, ready),
        Method::Prefork => run_prefork(opts, host, listener, ready),
    }
}

/// What the process set-up leaves to the serving part: the pid file (removed at exit, kept
/// over a reload), the SIGUSR1 action, the files whose change stops a spawned process.
struct ProcessSetup {
    pidfile: Option<PidFile>,
    reopen: ReopenLogs,
    spawned: bool,
    watch_script: Vec<PathBuf>,
    listen: String,
}

impl ProcessSetup {
    /// Logs (detaching when asked), pid file, privilege drop, then the application. `None`:
    /// the application did not load.
    fn run<A: AppHost>(
        opts: &Options,
        host: &A,
        listener: &Listener,
        spawned: bool,
    ) -> io::Result<Option<Self>> {
        // A re-executed server keeps the standard streams it inherited (its logs already).
        let mut started = Started::none();
        let is_reexec = reexec::is_reexec();
        if !is_reexec {
            let detach = opts.daemonize && !spawned;
            started = setup_logs(opts, host, detach)?;
            if detach {
                daemon::close_inherited_fds(&[listener.as_raw_fd()])?;
            }
        }
        let pidfile = opts.pidfile.as_deref().map(PidFile::write).transpose()?;
        let socket_file = match opts.bind_addr() {
            Some(BindAddr::Unix(p)) if !is_reexec => Some(p),
            _ => None,
        };
        let files: Vec<&Path> = opts
            .pidfile
            .iter()
            .chain(&socket_file)
            .map(PathBuf::as_path)
            .collect();
        daemon::warn_if_left_behind(&files, opts.user.as_ref(), opts.group.as_ref());
        open_access_log(opts)?;
        daemon::drop_privileges(opts.user.as_ref(), opts.group.as_ref())?;
        if !host.load() {
            return Ok(None);
        }
        started.ok();
        let (outlog, errlog) = (opts.outlog.clone(), opts.errlog.clone());
        let reopen: ReopenLogs = Arc::new(move || {
            if let Err(e) = daemon::reopen_logs(outlog.as_deref(), errlog.as_deref()) {
                error!("cannot reopen log files: {e}");
            }
            if let Err(e) = access::reopen(|p| daemon::open_log_file(p, None)) {
                error!("cannot reopen the access log: {e}");
            }
        });
        let watch_script = if spawned {
            host.script().into_iter().collect()
        } else {
            Vec::new()
        };
        Ok(Some(ProcessSetup {
            pidfile,
            reopen,
            spawned,
            watch_script,
            listen: listener.to_string(),
        }))
    }
}

/// Opens the access log as root, before the privilege drop (a file is created 0640 for
/// `user`, like the other logs, so the process can reopen it after the drop).
fn open_access_log(opts: &Options) -> io::Result<()> {
    let Some(path) = &opts.access_log else {
        return Ok(());
    };
    let target = if path.as_os_str() == "-" {
        access::Target::Stderr
    } else {
        let owner = daemon::target_ids(opts.user.as_ref(), opts.group.as_ref());
        access::Target::File(path.clone(), daemon::open_log_file(path, owner)?)
    };
    access::install(target, opts.access_log_format.clone(), opts.log_json);
    Ok(())
}

/// Opens `outlog`/`errlog` (as root, before the drop, owned by the target user) and points
/// stdout/stderr at them, detaching first when `detach`.
fn setup_logs<A: AppHost>(opts: &Options, host: &A, detach: bool) -> io::Result<Started> {
    let start_dir = reexec::start_dir().unwrap_or(Path::new("/"));
    let owner = daemon::target_ids(opts.user.as_ref(), opts.group.as_ref());
    let (out, err) = (opts.outlog.as_deref(), opts.errlog.as_deref());
    let logs = daemon::Logs::open(out, err, detach, start_dir, owner)?;
    if !detach {
        return logs.apply(false).map(|()| Started::none());
    }
    let d = daemon::DaemonOptions {
        workdir: opts.workdir.clone(),
        umask: opts.umask,
    };
    daemon::daemonize(&d, &logs, &mut || host.fork())
}

/// One process serves (threaded, or spawned by the web server).
fn run_threaded<A: AppHost>(
    opts: &Options,
    host: &A,
    listener: Listener,
    ready: ProcessSetup,
) -> io::Result<i32> {
    // A wedged request: reload (spawned: stop; the web server starts a fresh process).
    let restart = Arc::new(tokio::sync::Notify::new());
    let wedged = restart.clone();
    let on_wedged = Box::new(move || {
        status::retiring(Restart::RequestTimeout);
        wedged.notify_one();
    });
    if opts.status_path.is_some() {
        // Before the host starts its threads: each marks its row from the start.
        let p = pool(opts, &listener, &ready, "static", Rows::Threads);
        status::install(opts.threads, p)?;
    }
    let serving = host.start(opts, Role::Threaded, on_wedged)?;
    if serving.app_threads == 0 {
        status::one_row();
    }
    let server = Server::new(listener, opts.server_config(), serving.handler);
    let plan = RunPlan {
        restart: Some(restart),
        reload: !ready.spawned,
        reload_on: opts.reload_on.clone(),
        exit_on_change: ready.watch_script,
        reopen_logs: Some(ready.reopen),
        io_threads: serving.io_threads,
        maxrequests: recycle_after(opts),
        max_rss: opts.max_rss,
        notify: true,
        ready_status: Some(format!(
            "serving on {}: threaded, {} threads",
            ready.listen, opts.threads
        )),
        ..RunPlan::default()
    };
    let end = host.unlocked(|| runner::run(server, plan))?;
    if let RunEnd::Reload(l) = end {
        // exec replaces every thread, stuck ones included: no need to wait for them, unless
        // the host has shutdown work of its own to run.
        if serving.wait_before_reload {
            host.unlocked(|| (serving.wait_ended)(Duration::from_secs(5)));
        }
        return Ok(reload(l, &[], ready.pidfile));
    }
    // The host must not shut down under its threads still running application code.
    if !host.unlocked(|| (serving.wait_ended)(Duration::from_secs(5))) {
        error!("application threads still busy after the stop; exiting without waiting");
        drop(ready.pidfile);
        daemon::exit_now(0);
    }
    Ok(0)
}

/// This process supervises; workers are forked from it with the application loaded.
fn run_prefork<A: AppHost>(
    opts: &Options,
    host: &A,
    listener: Listener,
    ready: ProcessSetup,
) -> io::Result<i32> {
    let mut reload_on = opts.reload_on.clone();
    reload_on.extend(ready.watch_script.iter().cloned());
    let settings = PreforkSettings {
        minspare: opts.minspare,
        maxspare: opts.maxspare,
        maxchildren: opts.maxchildren,
        graceful_timeout: opts.graceful_timeout,
        reload_on,
    };
    if opts.status_path.is_some() {
        // Room for workers retiring while their replacements start.
        let rows = opts.maxchildren * 2 + 4;
        status::install(
            rows,
            pool(opts, &listener, &ready, "dynamic", Rows::Processes),
        )?;
    }
    // The supervisor's copies of the socket: closed when a stop begins, so that once the
    // workers have taken what is queued the socket is closed for good and new connections are
    // refused at once (a balancer sends them elsewhere) instead of waiting in a queue nobody
    // serves, to be reset when the supervisor exits.
    let worker_listener = RefCell::new(Some(listener.try_clone_unguarded()?));
    let listener = RefCell::new(Some(listener));
    let reopen = ready.reopen.clone();
    // In the forked child: the worker owns its copy, and drops the supervisor's. A copy kept
    // by inheritance would hold the socket open after the worker's stop until its exit, and
    // the connections queued meanwhile would be reset (by then the front end sent requests).
    let mut run_worker = |setup: WorkerSetup| {
        if let Some(l) = listener.borrow_mut().take() {
            l.close_unguarded();
        }
        match worker_listener.borrow_mut().take() {
            Some(l) => run_worker(opts, host, l, &reopen, setup),
            None => 0,
        }
    };
    let end = prefork::supervise(
        &settings,
        &mut || host.fork(),
        &mut run_worker,
        &mut || (ready.reopen)(),
        &reexec::inherited_old_workers(),
        &mut || {
            worker_listener.borrow_mut().take();
            listener.borrow_mut().take();
        },
    )?;
    Ok(match (end, listener.into_inner()) {
        (SupervisorExit::Stopped, _) => 0,
        (SupervisorExit::Reload { old_workers }, Some(listener)) if !ready.spawned => {
            reload(listener, &old_workers, ready.pidfile)
        }
        (SupervisorExit::Reload { old_workers }, _) => {
            // Spawned by the web server: it starts a fresh process itself; let ours drain.
            prefork::wait_for(&old_workers, opts.graceful_timeout);
            0
        }
    })
}

/// One prefork worker, in the forked child; returns its exit status.
fn run_worker<A: AppHost>(
    opts: &Options,
    host: &A,
    listener: Listener,
    reopen: &ReopenLogs,
    setup: WorkerSetup,
) -> i32 {
    let index = setup.index;
    let role = Role::Worker {
        inline: opts.threads == 1,
    };
    // A wedged worker exits; the supervisor replaces it.
    let on_wedged = Box::new(|| {
        status::retiring(Restart::RequestTimeout);
        daemon::exit_now(1)
    });
    let serving = match host.start(opts, role, on_wedged) {
        Ok(s) => s,
        Err(e) => {
            error!("worker {index}: cannot start the application's threads: {e}");
            return 1;
        }
    };
    // After the start: its CPU time is not the first request's.
    status::enter_row(setup.row);
    let server = Server::new(listener, opts.server_config(), serving.handler);
    let plan = RunPlan {
        status: Some(setup.status),
        maxrequests: recycle_after(opts),
        max_rss: opts.max_rss,
        reopen_logs: Some(reopen.clone()),
        io_threads: serving.io_threads,
        accept_below: Some(serving.concurrency),
        ..RunPlan::default()
    };
    let code = match host.unlocked(|| runner::run(server, plan)) {
        Ok(_) => 0,
        Err(e) => {
            error!("worker {index}: {e}");
            1
        }
    };
    host.unlocked(|| (serving.wait_ended)(Duration::from_secs(5)));
    code
}

/// The status page's pool: named after the address it listens on.
fn pool(
    opts: &Options,
    listener: &Listener,
    ready: &ProcessSetup,
    manager: &'static str,
    rows: Rows,
) -> status::Pool {
    status::Pool {
        // A socket's path as the user wrote it, without the log's `unix:`.
        name: ready.listen.trim_start_matches("unix:").to_owned(),
        manager,
        rows,
        listen_fd: listener.as_raw_fd(),
        backlog: opts.backlog,
        max_children: match opts.method {
            Method::Prefork => opts.maxchildren,
            Method::Threaded => opts.threads,
        },
    }
}

/// This process's `maxrequests`: the option plus a random 0..=`maxrequests_jitter`, so that
/// workers started together are not all replaced together.
fn recycle_after(opts: &Options) -> u64 {
    match (opts.maxrequests, opts.maxrequests_jitter) {
        (0, _) => 0,
        (n, 0) => n,
        (n, jitter) => n.saturating_add(fastrand::u64(0..=jitter)),
    }
}

/// Hands the socket to a fresh copy of this program (graceful reload); returns only on error,
/// with the exit status.
fn reload(listener: Listener, old_workers: &[i32], pidfile: Option<PidFile>) -> i32 {
    let fd = match listener.into_inheritable_fd() {
        Ok(fd) => fd,
        Err(e) => {
            error!("reload failed: {e}");
            return 1;
        }
    };
    if let Some(p) = pidfile {
        p.keep(); // same pid after exec
    }
    info!("re-executing to load the application afresh");
    let e = reexec::reexec(fd, old_workers);
    error!("reload failed: cannot re-execute: {e}");
    1
}

/// One request as plain CGI (fd 0 is not a socket: mod_cgi, or a shell).
fn run_cgi<A: AppHost>(opts: &Options, host: &A) -> io::Result<i32> {
    use std::os::unix::ffi::OsStrExt;
    let params: crate::Params = std::env::vars_os()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    let serving = host.start(opts, Role::Cgi, Box::new(|| daemon::exit_now(1)))?;
    let server = Server::cgi(opts.server_config(), serving.handler);
    host.unlocked(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let r = rt.block_on(server.serve_cgi(params));
        rt.shutdown_timeout(Duration::from_millis(200));
        r
    })?;
    // The host must not shut down under its own threads.
    if !host.unlocked(|| (serving.wait_ended)(Duration::from_secs(5))) {
        daemon::exit_now(0);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxrequests_jitter_raises_each_limit_by_at_most_n() {
        let opts = |maxrequests, maxrequests_jitter| Options {
            maxrequests,
            maxrequests_jitter,
            ..Options::default()
        };
        assert_eq!(recycle_after(&opts(0, 0)), 0);
        assert_eq!(recycle_after(&opts(100, 0)), 100);
        let limits: std::collections::BTreeSet<u64> =
            (0..200).map(|_| recycle_after(&opts(100, 10))).collect();
        assert!(limits.iter().all(|n| (100..=110).contains(n)), "{limits:?}");
        assert!(limits.len() > 1, "not all the same: {limits:?}");
    }
}
