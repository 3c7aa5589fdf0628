//! Runs a [`Server`] in this process, with the signal plan of its role.

use super::mtimes;
use crate::{Handler, Listener, Load, Server, Stop};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{debug, info};

/// A `reopen_logs` action for SIGUSR1.
pub type ReopenLogs = Arc<dyn Fn() + Send + Sync>;

/// How the server in this process behaves.
#[derive(Default)]
pub struct RunPlan {
    /// This is the service's main process: tell systemd of stops and reloads (see
    /// [`super::notify`]). Prefork workers leave that to their supervisor.
    pub notify: bool,
    /// With `notify`: the status line sent with `READY=1` once the signal handlers are in
    /// place.
    pub ready_status: Option<String>,
    /// Prefork worker: the status pipe to the supervisor.
    pub status: Option<OwnedFd>,
    /// Recycle the process after this many requests (0: never): a prefork worker retires, a
    /// process that may reload reloads, any other stops.
    pub maxrequests: u64,
    /// Recycle the process, likewise, once its resident memory passes this many bytes after
    /// a request.
    pub max_rss: Option<u64>,
    /// Single process: SIGHUP and `reload_on` changes reload (a worker leaves that to its
    /// supervisor and ignores SIGHUP).
    pub reload: bool,
    /// Files whose change reloads (with `reload`).
    pub reload_on: Vec<PathBuf>,
    /// Spawned by the web server: stop gracefully when one of these files changes (the web
    /// server then starts a fresh process with the new code).
    pub exit_on_change: Vec<PathBuf>,
    /// What SIGUSR1 does.
    pub reopen_logs: Option<ReopenLogs>,
    /// I/O threads: 0 runs everything, the accept loop included, on this thread; N a pool of
    /// N runtime threads that run everything, the accept loop included, while this thread
    /// only waits. A pool lets a handler block a thread with
    /// [`tokio::task::block_in_place`] while another thread keeps the connections going.
    pub io_threads: usize,
    /// Prefork worker: accept only while fewer requests than this are in flight.
    pub accept_below: Option<usize>,
    /// Notified when the application host gives up on this process (a wedged request):
    /// reload if `reload`, else stop.
    pub restart: Option<Arc<tokio::sync::Notify>>,
}

/// How the run ended.
#[derive(Debug)]
pub enum RunEnd {
    /// Stopped (SIGTERM, SIGINT, a watched script changed): exit 0.
    Stopped,
    /// Served `maxrequests`: exit 0, the supervisor starts a replacement.
    Retired,
    /// Reload: the caller re-executes the program with this socket.
    Reload(Listener),
}

#[derive(Clone, Copy)]
enum Why {
    Stopped,
    Retired,
    Reload,
}

fn report(s: Option<&UnixStream>, byte: u8) {
    if let Some(mut s) = s {
        // A full pipe only means the supervisor is behind; the next report supersedes.
        let _ = s.write(&[byte]);
    }
}

/// A prefork worker tells its supervisor it turned busy or idle at most this often.
const REPORT_EVERY: Duration = Duration::from_millis(20);

/// Reports `I` now, then `B` or `I` as the load changes, at most once per [`REPORT_EVERY`];
/// ends with the server.
fn report_load(
    reporter: &UnixStream,
    mut load: tokio::sync::watch::Receiver<Load>,
    rt: &tokio::runtime::Handle,
) {
    let mut busy = false;
    report(Some(reporter), b'I');
    loop {
        if (load.borrow_and_update().busy() > 0) != busy {
            busy = !busy;
            report(Some(reporter), if busy { b'B' } else { b'I' });
        }
        // One look per pause: a busy worker changes its load several times per request, and
        // waking this thread for each change cost more than the request's own work. Changes
        // meanwhile are seen (and the latest reported) after the pause.
        std::thread::sleep(REPORT_EVERY);
        match load.has_changed() {
            Ok(true) => continue,
            Ok(false) => {}
            Err(_) => return,
        }
        // Quiet: wait for the next change (no driver needed: any runtime flavour can run this).
        if rt.block_on(load.changed()).is_err() {
            return;
        }
    }
}

/// Runs `server` until the plan says stop; see [`RunEnd`].
pub fn run<H: Handler>(server: Server<H>, plan: RunPlan) -> io::Result<RunEnd> {
    let rt = if plan.io_threads == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(plan.io_threads)
            .thread_name("ferrocgi-io")
            .enable_all()
            .build()?
    };
    let end = if plan.io_threads == 0 {
        rt.block_on(drive(server, plan))
    } else {
        // On a runtime thread, not this one: every wake-up stays on the pool's threads.
        rt.block_on(async { tokio::spawn(drive(server, plan)).await })
            .unwrap_or_else(|e| Err(io::Error::other(format!("the server task failed: {e}"))))
    };
    // Tasks still blocked (a handler waiting on an application thread) must not hold the exit.
    rt.shutdown_timeout(Duration::from_millis(200));
    end
}

/// A worker's server takes only as many requests as the plan allows.
fn limit<H: Handler>(server: Server<H>, plan: &RunPlan) -> Server<H> {
    let server = match plan.accept_below {
        Some(n) => server.accept_only_below(n),
        None => server,
    };
    match plan.maxrequests {
        0 => server,
        n => server.accept_until_started(n),
    }
}

/// The signals this process acts on, installed together.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> io::Result<Self> {
        let signals = Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
        };
        // A freshly forked worker starts with these blocked (see prefork); its handlers are
        // in place now, so anything that arrived meanwhile is delivered to them.
        let _ = nix::sys::signal::pthread_sigmask(
            nix::sys::signal::SigmaskHow::SIG_UNBLOCK,
            Some(&super::prefork::worker_signals()),
            None,
        );
        Ok(signals)
    }
}

/// Load reports to the supervisor, from a thread of their own: a handler may hold the
/// runtime's thread for a whole request (the inline runner), and the supervisor must still
/// learn the worker is busy.
fn start_load_reports<H: Handler>(server: &Server<H>, status: &UnixStream) -> io::Result<()> {
    let reporter = status.try_clone()?;
    let load = server.load();
    let rt = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("ferrocgi-status".into())
        .spawn(move || report_load(&reporter, load, &rt))?;
    Ok(())
}

/// Why a process is replaced by a fresh one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recycle {
    /// It started `maxrequests` requests.
    MaxRequests(u64),
    /// Its resident memory (these bytes) passed `max_rss` after a request.
    MaxRss(u64),
}

/// How often at most the resident memory is read, after requests end.
const RSS_CHECK_EVERY: Duration = Duration::from_millis(100);

/// This process's resident memory in bytes (`/proc/self/statm`).
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok()??;
    Some(pages * u64::try_from(page).ok()?)
}

/// Watches the load for a reason to recycle the process: `maxrequests` counted as requests
/// start (so no request starts past the limit while the recycling is on its way), `max_rss`
/// read after requests end (at most every [`RSS_CHECK_EVERY`]). `None`: no limit set.
fn recycling<H: Handler>(
    server: &Server<H>,
    maxrequests: u64,
    max_rss: Option<u64>,
) -> Option<tokio::sync::watch::Receiver<Option<Recycle>>> {
    if maxrequests == 0 && max_rss.is_none() {
        return None;
    }
    let (tx, rx) = tokio::sync::watch::channel(None);
    let mut load = server.load();
    tokio::spawn(async move {
        let mut served = 0;
        let mut checked = tokio::time::Instant::now() - RSS_CHECK_EVERY;
        loop {
            let l = *load.borrow_and_update();
            if maxrequests > 0 && l.started >= maxrequests {
                let _ = tx.send(Some(Recycle::MaxRequests(maxrequests)));
                return;
            }
            if let Some(limit) = max_rss.filter(|_| l.served > served) {
                served = l.served;
                tokio::time::sleep_until(checked + RSS_CHECK_EVERY).await;
                checked = tokio::time::Instant::now();
                if let Some(rss) = rss_bytes().filter(|&rss| rss > limit) {
                    let _ = tx.send(Some(Recycle::MaxRss(rss)));
                    return;
                }
            }
            if load.changed().await.is_err() {
                return;
            }
        }
    });
    Some(rx)
}

/// Resolves with the reason when recycling is due; never without a limit.
async fn recycling_due(
    recycle: &mut Option<tokio::sync::watch::Receiver<Option<Recycle>>>,
) -> Recycle {
    if let Some(r) = recycle {
        if let Ok(why) = r.wait_for(Option::is_some).await {
            if let Some(why) = *why {
                return why;
            }
        }
    }
    std::future::pending().await
}

/// What ends a run, other than SIGINT: watched until one of them happens.
struct Watch {
    reload: bool,
    reopen: Option<ReopenLogs>,
    watch_reload: Vec<PathBuf>,
    watch_exit: Vec<PathBuf>,
    restart: Option<Arc<tokio::sync::Notify>>,
    recycle: Option<tokio::sync::watch::Receiver<Option<Recycle>>>,
    max_rss: Option<u64>,
    /// A prefork worker: recycling retires it (its supervisor forks a replacement).
    worker: bool,
}

impl Watch {
    fn new(
        plan: &RunPlan,
        recycle: Option<tokio::sync::watch::Receiver<Option<Recycle>>>,
        worker: bool,
    ) -> Self {
        Watch {
            reload: plan.reload,
            reopen: plan.reopen_logs.clone(),
            watch_reload: if plan.reload {
                plan.reload_on.clone()
            } else {
                Vec::new()
            },
            watch_exit: plan.exit_on_change.clone(),
            restart: plan.restart.clone(),
            recycle,
            max_rss: plan.max_rss,
            worker,
        }
    }

    /// Waits for the reason to end, acting on SIGUSR1 and ignored SIGHUPs meanwhile.
    async fn until_end(
        &mut self,
        term: &mut tokio::signal::unix::Signal,
        hup: &mut tokio::signal::unix::Signal,
        usr1: &mut tokio::signal::unix::Signal,
    ) -> (Why, Stop) {
        let seen_reload = mtimes(&self.watch_reload);
        let seen_exit = mtimes(&self.watch_exit);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let watching = !self.watch_reload.is_empty() || !self.watch_exit.is_empty();
        let restart = self.restart.clone();
        let mut recycle = self.recycle.clone();
        loop {
            tokio::select! {
                _ = term.recv() => {
                    info!("SIGTERM: graceful stop");
                    return (Why::Stopped, Stop::Close);
                }
                _ = hup.recv() => {
                    if self.reload {
                        info!("SIGHUP: graceful reload");
                        return (Why::Reload, Stop::KeepListener);
                    }
                    debug!("SIGHUP ignored (the supervisor reloads)");
                }
                _ = usr1.recv() => {
                    info!("SIGUSR1: reopening log files");
                    if let Some(f) = &self.reopen {
                        f();
                    }
                }
                _ = async { match &restart { Some(n) => n.notified().await, None => std::future::pending().await } } => {
                    return self.restart_end();
                }
                why = recycling_due(&mut recycle) => return self.recycle_end(why),
                _ = tick.tick(), if watching => {
                    if let Some(end) = self.files_changed(&seen_reload, &seen_exit) {
                        return end;
                    }
                }
            }
        }
    }

    /// Time for a fresh process: a worker retires, a process that may reload reloads, any
    /// other stops (a web server that spawned it starts a fresh one).
    fn recycle_end(&self, why: Recycle) -> (Why, Stop) {
        let next = if self.worker {
            "retiring"
        } else if self.reload {
            "graceful reload"
        } else {
            "stopping"
        };
        match why {
            Recycle::MaxRequests(n) => {
                crate::status::retiring(crate::status::Restart::MaxRequests);
                info!(maxrequests = n, "served maxrequests; {next}");
            }
            Recycle::MaxRss(rss) => {
                crate::status::retiring(crate::status::Restart::MaxRss);
                let max_rss = self.max_rss.unwrap_or_default();
                info!(rss, max_rss, "resident memory passed max_rss; {next}");
            }
        }
        if self.worker {
            (Why::Retired, Stop::Retire)
        } else if self.reload {
            (Why::Reload, Stop::KeepListener)
        } else {
            (Why::Stopped, Stop::Close)
        }
    }

    /// The host gave up on a wedged request: reload if this process may, else stop.
    fn restart_end(&self) -> (Why, Stop) {
        if self.reload {
            info!("restarting the process (graceful reload)");
            return (Why::Reload, Stop::KeepListener);
        }
        info!("stopping the process");
        (Why::Stopped, Stop::Close)
    }

    fn files_changed(
        &self,
        seen_reload: &[Option<SystemTime>],
        seen_exit: &[Option<SystemTime>],
    ) -> Option<(Why, Stop)> {
        if mtimes(&self.watch_reload) != seen_reload {
            info!(files = ?self.watch_reload, "a reload_on file changed: graceful reload");
            return Some((Why::Reload, Stop::KeepListener));
        }
        if mtimes(&self.watch_exit) != seen_exit {
            info!(files = ?self.watch_exit, "the script changed: finishing requests, then exiting so the web server starts the new code");
            return Some((Why::Stopped, Stop::Close));
        }
        None
    }
}

/// The run on the runtime: signals installed, then the server until the end the plan allows.
async fn drive<H: Handler>(server: Server<H>, mut plan: RunPlan) -> io::Result<RunEnd> {
    let server = limit(server, &plan);
    let worker = plan.status.is_some();
    let status = match plan.status.take() {
        Some(fd) => {
            let s = UnixStream::from(fd);
            s.set_nonblocking(true)?;
            Some(s)
        }
        None => None,
    };
    let Signals {
        mut term,
        mut int,
        mut hup,
        mut usr1,
    } = Signals::install()?;
    // Ready only now: a stop systemd sends from here on finds the handlers.
    if let Some(ready) = &plan.ready_status {
        super::notify::ready(ready);
    }
    if let Some(s) = &status {
        start_load_reports(&server, s)?;
    }
    let mut watch = Watch::new(
        &plan,
        recycling(&server, plan.maxrequests, plan.max_rss),
        worker,
    );
    let notify = plan.notify;
    // A task of its own: polled inside the server's future, every signal stream and watch
    // here would be polled again at each accepted connection.
    let ending = tokio::spawn(async move {
        let (w, how) = watch.until_end(&mut term, &mut hup, &mut usr1).await;
        report(status.as_ref(), b'R');
        if notify {
            match w {
                Why::Reload => super::notify::reloading(),
                Why::Stopped | Why::Retired => super::notify::stopping(),
            }
        }
        (w, how)
    });
    let why = Mutex::new(Why::Stopped);
    let stop = async {
        let (w, how) = ending.await.unwrap_or((Why::Stopped, Stop::Close));
        *why.lock().unwrap_or_else(|e| e.into_inner()) = w;
        how
    };
    let kept = tokio::select! {
        r = server.run_until(stop) => r?,
        _ = int.recv() => {
            info!("SIGINT: quick stop");
            if notify {
                super::notify::stopping();
            }
            return Ok(RunEnd::Stopped);
        }
    };
    let w = *why.lock().unwrap_or_else(|e| e.into_inner());
    Ok(match (w, kept) {
        (Why::Reload, Some(l)) => RunEnd::Reload(l),
        (Why::Retired, _) => RunEnd::Retired,
        _ => RunEnd::Stopped,
    })
}
