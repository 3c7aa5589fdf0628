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
//! Each step is a method of the `Supervisor` state (`reap`, `keep_size` with `fork_spares` and
//! `retire_extra`, `on_signals`); the spare-worker and back-off decisions are pure functions
//! (`resize`, `Spares`, `crash_backoff`, `backoff`) with unit tests.
//!
//! A reload does not restart the supervisor in place: [`supervise`] returns
//! [`SupervisorExit::Reload`] after asking the current workers to finish their requests and
//! exit, and the caller re-executes the program with the listening socket inherited (see
//! [`super::reexec`]), so the application is imported afresh while the old workers drain.

use super::daemon::{exit_now, ForkFn, Forked};
use super::mtimes;
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
    /// Write end of the status pipe: the worker reports idle, busy and retiring on it (see
    /// the module doc).
    pub status: OwnedFd,
    /// This worker's number, for logs.
    pub index: u64,
    /// Its row on the status page's board, if the page is on.
    pub row: Option<usize>,
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
    /// Its row on the status page's board.
    row: Option<usize>,
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

/// Forks one worker; returns in the supervisor only (the child runs `run_worker` and exits).
fn start_worker(
    index: u64,
    fork: ForkFn<'_>,
    run_worker: RunWorker<'_>,
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
    let row = crate::status::claim_row();
    let forked = fork();
    if !matches!(forked, Ok(Forked::Child)) {
        restore_mask(&old_mask);
    }
    if forked.is_err() {
        crate::status::release_row(row, false);
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
                row,
            });
            exit_now(code);
        }
        Forked::Parent(pid) => {
            crate::status::row_pid(row, pid);
            info!(pid, worker = index, "started worker");
            Ok(Worker {
                pid,
                index,
                state: State::Starting,
                started: Instant::now(),
                status: Some(status_r),
                row,
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

/// What the pool's size calls for, given its idle and total workers (see [`resize`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resize {
    /// Fork this many workers.
    Fork(usize),
    /// Retire this many idle workers.
    Retire(usize),
    Keep,
}

/// The spare-worker rule: fork while fewer than `minspare` are idle (never past
/// `maxchildren` in all, and not while backing off), retire idle ones beyond `maxspare`.
fn resize(idle: usize, total: usize, spares: Spares, may_fork: bool) -> Resize {
    if idle < spares.min && total < spares.max_children && may_fork {
        Resize::Fork((spares.min - idle).min(spares.max_children - total))
    } else if idle > spares.max {
        Resize::Retire(idle - spares.max)
    } else {
        Resize::Keep
    }
}

/// The pool's size limits; SIGTTIN and SIGTTOU move `min` and `max` by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spares {
    min: usize,
    max: usize,
    max_children: usize,
}

impl Spares {
    fn new(settings: &PreforkSettings) -> Self {
        let max_children = settings.maxchildren.max(1);
        Spares {
            min: settings.minspare,
            max: settings.maxspare.max(1),
            max_children,
        }
    }

    /// SIGTTIN: one more spare worker, within `maxchildren`.
    fn more(&mut self) {
        self.max = (self.max + 1).min(self.max_children);
        self.min = (self.min + 1).min(self.max);
    }

    /// SIGTTOU: one fewer, keeping at least one.
    fn fewer(&mut self) {
        self.max = self.max.saturating_sub(1).max(1);
        self.min = self.min.saturating_sub(1).min(self.max);
    }
}

/// The pause after the `n`th worker in a row that died young (100 ms doubling, at most 10 s).
fn crash_backoff(n: u32) -> Duration {
    Duration::from_millis(100u64 << n.min(7)).min(Duration::from_secs(10))
}

/// What the supervisor does after handling the signals of one turn.
enum Next {
    /// Sleep until something happens.
    Wait,
    /// Go round again at once (a stop just began).
    Turn,
    /// Return this.
    Exit(SupervisorExit),
}

/// The supervisor's state, one method per step of the module doc's list.
struct Supervisor<'s> {
    settings: &'s PreforkSettings,
    flags: Flags,
    workers: Vec<Worker>,
    spares: Spares,
    old_deadline: Instant,
    next_index: u64,
    crashes: u32,
    backoff_until: Instant,
    fork_failures: u32,
    stopping: Option<Instant>,
    /// Every worker was busy and `maxchildren` were running, at the last look.
    at_max: bool,
    watched: Vec<Option<SystemTime>>,
    last_watch: Instant,
}

impl<'s> Supervisor<'s> {
    fn new(settings: &'s PreforkSettings, old_workers: &[i32]) -> io::Result<Self> {
        let workers = old_workers
            .iter()
            .map(|&pid| Worker {
                pid,
                index: 0,
                state: State::Old,
                started: Instant::now(),
                status: None,
                row: None,
            })
            .collect();
        Ok(Supervisor {
            settings,
            flags: Flags::install()?,
            workers,
            spares: Spares::new(settings),
            old_deadline: Instant::now() + settings.graceful_timeout,
            next_index: 1,
            crashes: 0,
            backoff_until: Instant::now(),
            fork_failures: 0,
            stopping: None,
            at_max: false,
            watched: mtimes(&settings.reload_on),
            last_watch: Instant::now(),
        })
    }

    /// Step 1: reaps every dead worker, logging how it died, and backs off when workers die
    /// young.
    fn reap(&mut self) {
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(status) => status,
            };
            let Some(pid) = status.pid().map(Pid::as_raw) else {
                return;
            };
            if let Some(i) = self.workers.iter().position(|w| w.pid == pid) {
                let w = self.workers.swap_remove(i);
                self.reaped(&w, status);
            }
        }
    }

    fn reaped(&mut self, w: &Worker, status: WaitStatus) {
        let pid = w.pid;
        let expected = matches!(w.state, State::Retiring | State::Old) || self.stopping.is_some();
        let clean = expected && matches!(status, WaitStatus::Exited(_, 0));
        crate::status::release_row(w.row, !clean);
        if expected && matches!(status, WaitStatus::Exited(_, 0)) {
            info!(pid, worker = w.index, "worker {}", describe(status));
            return;
        }
        warn!(
            pid,
            worker = w.index,
            "worker {}; replacing it",
            describe(status)
        );
        if w.started.elapsed() >= Duration::from_secs(5) || expected {
            self.crashes = 0;
            return;
        }
        self.crashes += 1;
        let delay = crash_backoff(self.crashes);
        self.backoff_until = Instant::now() + delay;
        warn!(
            crashes = self.crashes,
            ?delay,
            "workers are dying young; backing off before forking again"
        );
    }

    /// While stopping: done when every worker is gone; kills the rest at the deadline.
    fn stop_step(&mut self, deadline: Instant, now: Instant) -> bool {
        if self.workers.is_empty() {
            info!("all workers exited; supervisor stopping");
            return true;
        }
        if now >= deadline {
            warn!(
                left = self.workers.len(),
                "graceful timeout reached; killing the remaining workers"
            );
            self.signal_all(Signal::SIGKILL);
            self.stopping = Some(now + Duration::from_secs(5));
        }
        false
    }

    /// Workers from before a reload that outlived the graceful timeout are killed.
    fn kill_old(&self, now: Instant) {
        if now < self.old_deadline {
            return;
        }
        for w in self.workers.iter().filter(|w| w.state == State::Old) {
            warn!(
                pid = w.pid,
                "worker from before the reload is still running; killing it"
            );
            signal(w.pid, Signal::SIGKILL);
        }
    }

    /// Steps 2 and 3: forks spares or retires extra idle workers.
    fn keep_size(&mut self, now: Instant, fork: ForkFn<'_>, run_worker: RunWorker<'_>) {
        let current = self
            .workers
            .iter()
            .filter(|w| w.state != State::Old && w.state != State::Retiring);
        let idle = current
            .clone()
            .filter(|w| matches!(w.state, State::Idle | State::Starting))
            .count();
        let total = current.count();
        let busy = self
            .workers
            .iter()
            .filter(|w| w.state == State::Busy)
            .count();
        crate::status::saw_active(busy);
        // php-fpm's "max children reached": counted once each time the pool fills up.
        let full = idle == 0 && total >= self.spares.max_children;
        if full && !self.at_max {
            crate::status::max_children_reached();
        }
        self.at_max = full;
        match resize(idle, total, self.spares, now >= self.backoff_until) {
            Resize::Fork(n) => self.fork_spares(n, fork, run_worker),
            Resize::Retire(n) => self.retire_extra(n),
            Resize::Keep => {}
        }
    }

    fn fork_spares(&mut self, n: usize, fork: ForkFn<'_>, run_worker: RunWorker<'_>) {
        for _ in 0..n {
            let index = self.next_index;
            self.next_index += 1;
            match start_worker(index, fork, run_worker, &mut self.flags, &mut self.workers) {
                Ok(w) => {
                    self.fork_failures = 0;
                    self.workers.push(w);
                }
                Err(e) => {
                    // EAGAIN (a process limit), ENOMEM: the pool stays supervised and the
                    // pid file stays; forking is tried again after a back-off.
                    self.fork_failures += 1;
                    let delay = backoff(self.fork_failures);
                    error!(error = %e, retry_in = ?delay, "cannot start a worker; retrying");
                    self.backoff_until = Instant::now() + delay;
                    return;
                }
            }
        }
    }

    fn retire_extra(&mut self, n: usize) {
        let maxspare = self.spares.max;
        let idle = self
            .workers
            .iter_mut()
            .rev()
            .filter(|w| w.state == State::Idle);
        for w in idle.take(n) {
            info!(
                pid = w.pid,
                worker = w.index,
                "more than maxspare={maxspare} idle workers; retiring one"
            );
            signal(w.pid, Signal::SIGTERM);
            w.state = State::Retiring;
        }
    }

    fn signal_all(&self, sig: Signal) {
        for w in &self.workers {
            signal(w.pid, sig);
        }
    }

    /// Step 4: the signals and the `reload_on` files.
    fn on_signals(&mut self, reopen_logs: &mut dyn FnMut()) -> Next {
        if take(&self.flags.term) && self.stopping.is_none() {
            let timeout = self.settings.graceful_timeout;
            info!(
                workers = self.workers.len(),
                ?timeout,
                "SIGTERM: graceful stop"
            );
            return self.begin_stop(Signal::SIGTERM, timeout);
        }
        if take(&self.flags.int) {
            info!("SIGINT: quick stop");
            return self.begin_stop(Signal::SIGINT, Duration::from_secs(2));
        }
        let hup = take(&self.flags.hup);
        if hup {
            info!("SIGHUP: reloading");
        }
        if (hup || self.reload_on_changed()) && self.stopping.is_none() {
            super::notify::reloading();
            self.signal_all(Signal::SIGTERM);
            let old_workers = self.workers.iter().map(|w| w.pid).collect();
            self.flags.uninstall();
            return Next::Exit(SupervisorExit::Reload { old_workers });
        }
        if take(&self.flags.usr1) {
            info!("SIGUSR1: reopening log files");
            reopen_logs();
            self.signal_all(Signal::SIGUSR1);
        }
        if take(&self.flags.ttin) {
            self.spares.more();
            info!(
                minspare = self.spares.min,
                maxspare = self.spares.max,
                "SIGTTIN: one more worker"
            );
        }
        if take(&self.flags.ttou) {
            self.spares.fewer();
            info!(
                minspare = self.spares.min,
                maxspare = self.spares.max,
                "SIGTTOU: one fewer worker"
            );
        }
        Next::Wait
    }

    fn begin_stop(&mut self, sig: Signal, timeout: Duration) -> Next {
        super::notify::stopping();
        self.signal_all(sig);
        self.stopping = Some(Instant::now() + timeout);
        Next::Turn
    }

    /// A `reload_on` file's modification time changed (checked at most once a second).
    fn reload_on_changed(&mut self) -> bool {
        let files = &self.settings.reload_on;
        if self.stopping.is_some()
            || files.is_empty()
            || self.last_watch.elapsed() < Duration::from_secs(1)
        {
            return false;
        }
        self.last_watch = Instant::now();
        let now = mtimes(files);
        if now == self.watched {
            return false;
        }
        info!(?files, "a reload_on file changed: reloading");
        self.watched = now;
        true
    }
}

/// What a forked worker runs; returns its exit status.
type RunWorker<'a> = &'a mut dyn FnMut(WorkerSetup) -> i32;

/// Runs the pool until a stop or a reload. `run_worker` runs in each forked worker and returns
/// its exit status; `reopen_logs` runs on SIGUSR1. `old_workers` are draining workers of the
/// previous generation (after a reload).
pub fn supervise(
    settings: &PreforkSettings,
    fork: ForkFn<'_>,
    run_worker: RunWorker<'_>,
    reopen_logs: &mut dyn FnMut(),
    old_workers: &[i32],
    on_stop: &mut dyn FnMut(),
) -> io::Result<SupervisorExit> {
    let mut sup = Supervisor::new(settings, old_workers)?;
    // Ready once the handlers are in place: a stop systemd sends from here on finds them.
    super::notify::ready(&format!(
        "prefork: {}..{} spare workers, at most {}",
        settings.minspare, settings.maxspare, settings.maxchildren
    ));
    let s = sup.spares;
    info!(
        minspare = s.min,
        maxspare = s.max,
        maxchildren = s.max_children,
        "prefork supervisor started (pid {})",
        std::process::id()
    );
    let mut stop_said = false;
    loop {
        sup.reap();
        let now = Instant::now();
        if let Some(deadline) = sup.stopping {
            if sup.stop_step(deadline, now) {
                return Ok(SupervisorExit::Stopped);
            }
        } else {
            sup.kill_old(now);
            sup.keep_size(now, fork, run_worker);
        }
        let next = sup.on_signals(reopen_logs);
        if sup.stopping.is_some() && !std::mem::replace(&mut stop_said, true) {
            on_stop();
        }
        match next {
            Next::Exit(exit) => return Ok(exit),
            Next::Turn => continue,
            Next::Wait => wait(&mut sup.flags, &mut sup.workers, sup.stopping)?,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spares(min: usize, max: usize, max_children: usize) -> Spares {
        Spares {
            min,
            max,
            max_children,
        }
    }

    #[test]
    fn forks_up_to_minspare_idle_workers_within_maxchildren() {
        assert_eq!(resize(0, 0, spares(2, 5, 50), true), Resize::Fork(2));
        assert_eq!(resize(1, 3, spares(2, 5, 50), true), Resize::Fork(1));
        // 49 of 50 busy: only one more fits.
        assert_eq!(resize(0, 49, spares(2, 5, 50), true), Resize::Fork(1));
        assert_eq!(resize(0, 50, spares(2, 5, 50), true), Resize::Keep);
    }

    #[test]
    fn forks_nothing_while_backing_off() {
        assert_eq!(resize(0, 0, spares(2, 5, 50), false), Resize::Keep);
    }

    #[test]
    fn retires_idle_workers_beyond_maxspare() {
        assert_eq!(resize(7, 9, spares(2, 5, 50), true), Resize::Retire(2));
        assert_eq!(resize(5, 9, spares(2, 5, 50), true), Resize::Keep);
    }

    #[test]
    fn ttin_and_ttou_move_the_spares_within_bounds() {
        let mut s = spares(2, 5, 6);
        s.more();
        assert_eq!(s, spares(3, 6, 6));
        s.more();
        assert_eq!(s, spares(4, 6, 6), "maxspare never passes maxchildren");
        let mut s = spares(0, 1, 6);
        s.fewer();
        assert_eq!(s, spares(0, 1, 6), "at least one spare is kept");
    }

    #[test]
    fn crash_backoff_doubles_up_to_ten_seconds() {
        assert_eq!(crash_backoff(1), Duration::from_millis(200));
        assert_eq!(crash_backoff(2), Duration::from_millis(400));
        assert_eq!(crash_backoff(7), Duration::from_secs(10));
        assert_eq!(crash_backoff(30), Duration::from_secs(10));
    }

    #[test]
    fn fork_failure_backoff_starts_at_200ms_and_stops_at_ten_seconds() {
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(20), Duration::from_secs(10));
    }
}
