//! The prefork supervisor: one single-threaded process that keeps a pool of worker processes
//! accepting on the shared listening socket.
//!
//! # Theory of operation
//!
//! The supervisor runs no async runtime and no thread, so forking it is always safe. Each
//! worker gets a pipe on which it reports `I` (idle: no request in flight), `B` (busy) and `R`
//! (retiring: it served `maxrequests`, or was asked to stop). The supervisor waits in `poll()`
//! on those pipes and on a self-pipe its signal handlers write to, at most a second at a time,
//! and after each wake-up it
//!
//! 1. reaps dead workers (any exit, a crash, `kill -9`), logging how each died;
//! 2. forks workers while fewer than `minspare` are idle (never more than `maxchildren` in
//!    all), with an exponential back-off when workers keep dying young;
//! 3. retires (SIGTERM, graceful) idle workers beyond `maxspare`;
//! 4. acts on signals: SIGTERM graceful stop, SIGINT quick stop, SIGHUP reload, SIGUSR1
//!    reopen logs, SIGTTIN/SIGTTOU one more/one fewer spare worker; and on `reload_on` files
//!    whose modification time changed.
//!
//! A reload does not restart the supervisor in place: [`supervise`] returns
//! [`SupervisorExit::Reload`] after asking the current workers to finish their requests and
//! exit, and the caller re-executes the program with the listening socket inherited (see
//! [`super::reexec`]), so the application is imported afresh while the old workers drain.

use super::daemon::{exit_now, ForkFn, Forked};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM, SIGTTIN, SIGTTOU, SIGUSR1};
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tracing::{error, info, warn};

/// Pool settings (Django's runfcgi words).
#[derive(Debug, Clone)]
pub struct PreforkSettings {
    /// Fewest idle workers.
    pub minspare: usize,
    /// Most idle workers.
    pub maxspare: usize,
    /// Most workers in all.
    pub maxchildren: usize,
    /// How long a graceful stop waits for workers before killing them.
    pub graceful_timeout: Duration,
    /// Files whose modification makes the supervisor reload.
    pub reload_on: Vec<PathBuf>,
}

/// How [`supervise`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum SupervisorExit {
    /// Every worker is gone; the process should exit 0.
    Stopped,
    /// The caller must re-execute the program (SIGHUP or `reload_on`); these workers were
    /// asked to finish their requests and exit, and are still children of this process.
    Reload {
        /// Pids of the draining workers.
        old_workers: Vec<i32>,
    },
}

/// What a worker process gets from the supervisor.
#[derive(Debug)]
pub struct WorkerSetup {
    /// Write end of the status pipe (see [`super::worker::StatusReporter`]).
    pub status: OwnedFd,
    /// This worker's number, for logs.
    pub index: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Forked, not reported yet: counted as idle (it is about to accept).
    Starting,
    Idle,
    Busy,
    /// Asked to stop or stopping by itself (maxrequests): not counted as spare.
    Retiring,
    /// From before a reload: draining.
    Old,
}

struct Worker {
    pid: i32,
    index: u64,
    state: State,
    started: Instant,
    status: Option<UnixStream>,
}

struct Flags {
    term: Arc<AtomicBool>,
    int: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
    usr1: Arc<AtomicBool>,
    ttin: Arc<AtomicBool>,
    ttou: Arc<AtomicBool>,
    ids: Vec<signal_hook::SigId>,
    wake: UnixStream,
}

impl Flags {
    fn install() -> io::Result<Flags> {
        let (wake, wake_w) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        wake_w.set_nonblocking(true)?;
        let mut ids = Vec::new();
        let mut flag = |sig: i32| -> io::Result<Arc<AtomicBool>> {
            let f = Arc::new(AtomicBool::new(false));
            ids.push(signal_hook::flag::register(sig, f.clone())?);
            ids.push(signal_hook::low_level::pipe::register(
                sig,
                wake_w.try_clone()?,
            )?);
            Ok(f)
        };
        let flags = Flags {
            term: flag(SIGTERM)?,
            int: flag(SIGINT)?,
            hup: flag(SIGHUP)?,
            usr1: flag(SIGUSR1)?,
            ttin: flag(SIGTTIN)?,
            ttou: flag(SIGTTOU)?,
            ids: Vec::new(),
            wake,
        };
        // SIGCHLD only wakes the loop; reaping happens every turn anyway.
        ids.push(signal_hook::low_level::pipe::register(SIGCHLD, wake_w)?);
        Ok(Flags { ids, ..flags })
    }

    /// Restores the default dispositions (in a new worker, before it installs its own).
    fn uninstall(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }

    fn drain_wake(&mut self) {
        let mut buf = [0u8; 64];
        while matches!(self.wake.read(&mut buf), Ok(n) if n > 0) {}
    }
}

/// The signals a worker handles itself.
pub(crate) fn worker_signals() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::empty();
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
    ] {
        set.add(sig);
    }
    set
}

fn block_signals() -> nix::sys::signal::SigSet {
    let mut old = nix::sys::signal::SigSet::empty();
    let _ = nix::sys::signal::pthread_sigmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&worker_signals()),
        Some(&mut old),
    );
    old
}

fn restore_mask(old: &nix::sys::signal::SigSet) {
    let _ = nix::sys::signal::pthread_sigmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(old),
        None,
    );
}

fn take(f: &AtomicBool) -> bool {
    f.swap(false, Ordering::AcqRel)
}

fn signal(pid: i32, sig: Signal) {
    let _ = kill(Pid::from_raw(pid), sig);
}

fn describe(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, 0) => "exited normally".into(),
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, sig, core) => {
            format!(
                "was killed by {sig}{}",
                if core { " (core dumped)" } else { "" }
            )
        }
        other => format!("{other:?}"),
    }
}

fn mtimes(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}

/// Forks one worker; returns in the supervisor only (the child runs `run_worker` and exits).
fn start_worker(
    index: u64,
    fork: ForkFn<'_>,
    run_worker: &mut dyn FnMut(WorkerSetup) -> i32,
    flags: &mut Flags,
    workers: &mut Vec<Worker>,
) -> io::Result<Worker> {
    let (status_r, status_w) = UnixStream::pair()?;
    status_r.set_nonblocking(true)?;
    // Signals stay blocked across the fork: in the child they would otherwise reach neither
    // the supervisor's handlers (removed) nor the worker's (not installed yet) and be lost.
    // The worker unblocks them once its own are in place (see runner), so a SIGTERM sent
    // right away is still obeyed.
    let old_mask = block_signals();
    let forked = fork();
    if !matches!(forked, Ok(Forked::Child)) {
        restore_mask(&old_mask);
    }
    match forked? {
        Forked::Child => {
            // The worker: nothing of the supervisor's may act here.
            flags.uninstall();
            drop(status_r);
            for w in workers.drain(..) {
                drop(w.status);
            }
            let code = run_worker(WorkerSetup {
                status: OwnedFd::from(status_w),
                index,
            });
            exit_now(code);
        }
        Forked::Parent(pid) => {
            info!(pid, worker = index, "started worker");
            Ok(Worker {
                pid,
                index,
                state: State::Starting,
                started: Instant::now(),
                status: Some(status_r),
            })
        }
    }
}

/// The wait before the `n`th retry in a row of something failing (200 ms doubling, at most
/// 10 s).
fn backoff(n: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << n.saturating_sub(1).min(6)))
        .min(Duration::from_secs(10))
}

/// Runs the pool until a stop or a reload. `run_worker` runs in each forked worker and returns
/// its exit status; `reopen_logs` runs on SIGUSR1. `old_workers` are draining workers of the
/// previous generation (after a reload).
pub fn supervise(
    settings: &PreforkSettings,
    fork: ForkFn<'_>,
    run_worker: &mut dyn FnMut(WorkerSetup) -> i32,
    reopen_logs: &mut dyn FnMut(),
    old_workers: &[i32],
) -> io::Result<SupervisorExit> {
    let mut flags = Flags::install()?;
    // Ready once the handlers are in place: a stop systemd sends from here on finds them.
    super::notify::ready(&format!(
        "prefork: {}..{} spare workers, at most {}",
        settings.minspare, settings.maxspare, settings.maxchildren
    ));
    let mut minspare = settings.minspare;
    let mut maxspare = settings.maxspare.max(1);
    let maxchildren = settings.maxchildren.max(1);
    let mut workers: Vec<Worker> = old_workers
        .iter()
        .map(|&pid| Worker {
            pid,
            index: 0,
            state: State::Old,
            started: Instant::now(),
            status: None,
        })
        .collect();
    let old_deadline = Instant::now() + settings.graceful_timeout;
    let mut next_index: u64 = 1;
    let mut crashes: u32 = 0;
    let mut backoff_until = Instant::now();
    let mut fork_failures: u32 = 0;
    let mut stopping: Option<Instant> = None;
    let mut watched = mtimes(&settings.reload_on);
    let mut last_watch = Instant::now();
    info!(
        minspare,
        maxspare,
        maxchildren,
        "prefork supervisor started (pid {})",
        std::process::id()
    );

    loop {
        // 1. Reap.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    let Some(pid) = status.pid().map(Pid::as_raw) else {
                        break;
                    };
                    let Some(i) = workers.iter().position(|w| w.pid == pid) else {
                        continue;
                    };
                    let w = workers.swap_remove(i);
                    let expected =
                        matches!(w.state, State::Retiring | State::Old) || stopping.is_some();
                    let clean = matches!(status, WaitStatus::Exited(_, 0));
                    if expected && clean {
                        info!(pid, worker = w.index, "worker {}", describe(status));
                    } else {
                        warn!(
                            pid,
                            worker = w.index,
                            "worker {}; replacing it",
                            describe(status)
                        );
                        if w.started.elapsed() < Duration::from_secs(5) && !expected {
                            crashes += 1;
                            let delay = Duration::from_millis(100u64 << crashes.min(7))
                                .min(Duration::from_secs(10));
                            backoff_until = Instant::now() + delay;
                            warn!(
                                crashes,
                                ?delay,
                                "workers are dying young; backing off before forking again"
                            );
                        } else {
                            crashes = 0;
                        }
                    }
                }
            }
        }
        let now = Instant::now();

        // 2. Stopping: wait for the workers, kill them at the deadline.
        if let Some(deadline) = stopping {
            if workers.is_empty() {
                info!("all workers exited; supervisor stopping");
                return Ok(SupervisorExit::Stopped);
            }
            if now >= deadline {
                warn!(
                    left = workers.len(),
                    "graceful timeout reached; killing the remaining workers"
                );
                for w in &workers {
                    signal(w.pid, Signal::SIGKILL);
                }
                stopping = Some(now + Duration::from_secs(5));
            }
        } else {
            // 3. Old generation past its time.
            if now >= old_deadline {
                for w in workers.iter().filter(|w| w.state == State::Old) {
                    warn!(
                        pid = w.pid,
                        "worker from before the reload is still running; killing it"
                    );
                    signal(w.pid, Signal::SIGKILL);
                }
            }
            // 4. Pool size.
            let current = workers
                .iter()
                .filter(|w| w.state != State::Old && w.state != State::Retiring);
            let idle = current
                .clone()
                .filter(|w| matches!(w.state, State::Idle | State::Starting))
                .count();
            let total = current.count();
            if idle < minspare && total < maxchildren && now >= backoff_until {
                for _ in 0..(minspare - idle).min(maxchildren - total) {
                    let index = next_index;
                    next_index += 1;
                    match start_worker(index, fork, run_worker, &mut flags, &mut workers) {
                        Ok(w) => {
                            fork_failures = 0;
                            workers.push(w);
                        }
                        Err(e) => {
                            // EAGAIN (a process limit), ENOMEM: the pool stays supervised and
                            // the pid file stays; forking is tried again after a back-off.
                            fork_failures += 1;
                            let delay = backoff(fork_failures);
                            error!(error = %e, retry_in = ?delay, "cannot start a worker; retrying");
                            backoff_until = Instant::now() + delay;
                            break;
                        }
                    }
                }
            } else if idle > maxspare {
                let mut extra = idle - maxspare;
                for w in workers.iter_mut().rev().filter(|w| w.state == State::Idle) {
                    if extra == 0 {
                        break;
                    }
                    info!(
                        pid = w.pid,
                        worker = w.index,
                        "more than maxspare={maxspare} idle workers; retiring one"
                    );
                    signal(w.pid, Signal::SIGTERM);
                    w.state = State::Retiring;
                    extra -= 1;
                }
            }
        }

        // 5. Signals.
        if take(&flags.term) && stopping.is_none() {
            info!(workers = workers.len(), timeout = ?settings.graceful_timeout, "SIGTERM: graceful stop");
            super::notify::stopping();
            for w in &workers {
                signal(w.pid, Signal::SIGTERM);
            }
            stopping = Some(Instant::now() + settings.graceful_timeout);
            continue;
        }
        if take(&flags.int) {
            info!("SIGINT: quick stop");
            super::notify::stopping();
            for w in &workers {
                signal(w.pid, Signal::SIGINT);
            }
            stopping = Some(Instant::now() + Duration::from_secs(2));
            continue;
        }
        let mut reload = take(&flags.hup);
        if reload {
            info!("SIGHUP: reloading");
        }
        if stopping.is_none()
            && !settings.reload_on.is_empty()
            && last_watch.elapsed() >= Duration::from_secs(1)
        {
            last_watch = Instant::now();
            let now_m = mtimes(&settings.reload_on);
            if now_m != watched {
                info!(files = ?settings.reload_on, "a reload_on file changed: reloading");
                watched = now_m;
                reload = true;
            }
        }
        if reload && stopping.is_none() {
            super::notify::reloading();
            let mut old = Vec::new();
            for w in &workers {
                signal(w.pid, Signal::SIGTERM);
                old.push(w.pid);
            }
            flags.uninstall();
            return Ok(SupervisorExit::Reload { old_workers: old });
        }
        if take(&flags.usr1) {
            info!("SIGUSR1: reopening log files");
            reopen_logs();
            for w in &workers {
                signal(w.pid, Signal::SIGUSR1);
            }
        }
        if take(&flags.ttin) {
            maxspare = (maxspare + 1).min(maxchildren);
            minspare = (minspare + 1).min(maxspare);
            info!(minspare, maxspare, "SIGTTIN: one more worker");
        }
        if take(&flags.ttou) {
            maxspare = maxspare.saturating_sub(1).max(1);
            minspare = minspare.saturating_sub(1).min(maxspare);
            info!(minspare, maxspare, "SIGTTOU: one fewer worker");
        }

        // 6. Wait for something to happen.
        wait(&mut flags, &mut workers, stopping)?;
    }
}

/// Sleeps in poll() until a signal, a worker status byte, or a second passes.
fn wait(flags: &mut Flags, workers: &mut [Worker], stopping: Option<Instant>) -> io::Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut timeout = Duration::from_secs(1);
    if let Some(d) = stopping {
        timeout =
            timeout.min(d.saturating_duration_since(Instant::now()) + Duration::from_millis(10));
    }
    let ready: Vec<bool> = {
        let mut fds = vec![PollFd::new(flags.wake.as_fd(), PollFlags::POLLIN)];
        let with_pipe: Vec<usize> = (0..workers.len())
            .filter(|&i| workers[i].status.is_some())
            .collect();
        for &i in &with_pipe {
            let s = workers[i].status.as_ref().expect("filtered above");
            fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
        }
        let ms = PollTimeout::try_from(timeout.as_millis().min(60_000) as i32)
            .unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let mut ready = vec![false; workers.len()];
        for (k, &i) in with_pipe.iter().enumerate() {
            ready[i] = fds[k + 1]
                .revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP));
        }
        ready
    };
    flags.drain_wake();
    for (w, ready) in workers.iter_mut().zip(ready) {
        if !ready {
            continue;
        }
        let Some(s) = w.status.as_mut() else { continue };
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => w.status = None, // the worker closed its end (it is exiting)
            Ok(n) => {
                // Only the last report matters.
                let new = match buf[n - 1] {
                    b'I' => State::Idle,
                    b'B' => State::Busy,
                    b'R' => State::Retiring,
                    other => {
                        error!(
                            pid = w.pid,
                            byte = other,
                            "unexpected status byte from worker"
                        );
                        w.state
                    }
                };
                if w.state != State::Retiring && w.state != State::Old {
                    w.state = new;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => w.status = None,
        }
    }
    Ok(())
}

/// Waits up to `timeout` for `pids` (children of this process) to exit, then kills the rest.
pub fn wait_for(pids: &[i32], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut left: Vec<i32> = pids.to_vec();
    while !left.is_empty() {
        left.retain(|&pid| {
            matches!(
                waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)),
                Ok(WaitStatus::StillAlive)
            )
        });
        if Instant::now() >= deadline {
            for &pid in &left {
                signal(pid, Signal::SIGKILL);
                let _ = waitpid(Pid::from_raw(pid), None);
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
