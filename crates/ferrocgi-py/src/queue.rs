//! The job queue between the connection loops and the Python threads.
//!
//! Built for the GIL. Only one thread runs Python at a time, so a second thread helps only
//! while the busy ones wait outside the GIL (I/O, `time.sleep`, a slow client); otherwise it
//! costs, and much more than the hand-over: two threads taking turns at the GIL turn every
//! lock they share into a convoy (Django's `asgiref.local.Local` takes an `RLock` some 40 times
//! a request, and two threads running Django in one process spend 3× the CPU per request).
//!
//! So:
//! - a thread that finishes a request takes the next queued job while it still holds the GIL
//!   (no release, no wake-up);
//! - a job that finds no request running goes straight to one idle thread, the one idle most
//!   recently (its caches are warm);
//! - a job that finds a request running is queued, and the dispatcher thread hands it to an
//!   idle thread only when that can help: when the pool's threads used less than half of the
//!   last tick's CPU time (the running requests are blocked), or when every running request
//!   has used `HOLD` of CPU time (the GIL would make them take turns anyway, and a quick
//!   request must not wait behind a long one for longer than that);
//! - a thread that finishes a request while another running request keeps a CPU busy (it
//!   used a quarter of the last tick or more) goes idle instead of taking the next job, so
//!   the pool shrinks back to one running thread. A mix of waiting and computing requests
//!   keeps one computing while the others wait.
//!
//! A tick reads only the clocks of the threads running a request when it begins: reading 64
//! idle threads' clocks every tick would cost more than the dispatch saves.
//!
//! Why CPU time and not wall time for `HOLD`: requests that take turns at the GIL take
//! longer by the wall clock, and counting that would spread the load over ever more threads.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often the dispatcher weighs handing a held job to an idle thread.
const TICK: Duration = Duration::from_micros(500);
/// The most CPU time a running request uses while it holds back queued ones: Python's
/// default switch interval, after which a thread waiting for the GIL gets it anyway.
const HOLD: Duration = Duration::from_millis(5);

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where one idle thread waits for its job.
struct Slot<T> {
    member: usize,
    job: Mutex<Option<T>>,
    ready: Condvar,
}

impl<T> Slot<T> {
    fn hand_over(&self, job: T) {
        *locked(&self.job) = Some(job);
        self.ready.notify_one();
    }
}

struct Inner<T> {
    jobs: VecDeque<T>,
    /// Idle threads, most recently idle last.
    idle: Vec<Arc<Slot<T>>>,
    members: Vec<MemberState>,
    /// Members running a request.
    running: usize,
    /// The dispatcher is watching queued jobs (a new one needs no wake-up).
    watching: bool,
    /// Counts threads going idle: a tick during which one did measured a pool that ran out
    /// of work, not one that was blocked.
    idled: u64,
}

impl<T> Inner<T> {
    fn start(&mut self, member: usize) {
        let m = &mut self.members[member];
        m.job = m.job.wrapping_add(1);
        if !m.running {
            m.running = true;
            self.running += 1;
        }
    }

    fn stop(&mut self, member: usize) {
        let m = &mut self.members[member];
        if m.running {
            m.running = false;
            self.running -= 1;
        }
    }

    /// Jobs wait while threads are idle.
    fn jobs_wait_for_idle_threads(&self) -> bool {
        !self.jobs.is_empty() && !self.idle.is_empty()
    }

    /// Jobs wait and requests run: the dispatcher has something to weigh.
    fn jobs_wait_behind_running_ones(&self) -> bool {
        !self.jobs.is_empty() && self.running > 0
    }

    /// Hands the first held job to the most recently idle thread.
    fn release_one(&mut self) -> Option<(Arc<Slot<T>>, T)> {
        if !self.jobs_wait_for_idle_threads() {
            return None;
        }
        let slot = self.idle.pop()?;
        let job = self.jobs.pop_front()?;
        self.start(slot.member);
        Some((slot, job))
    }
}

struct MemberState {
    running: bool,
    /// The dispatcher's last verdict while it runs requests: it kept a CPU at least a
    /// quarter busy (threads taking turns at the GIL each get a share). False from idle
    /// until measured.
    hot: bool,
    /// Counts the member's requests, so the dispatcher sees a new one begin.
    job: u64,
    clock: Option<CpuClock>,
}

/// A multi-producer queue of jobs for a fixed set of threads, its members.
pub struct Queue<T> {
    inner: Mutex<Inner<T>>,
    closed: AtomicBool,
    /// Wakes the dispatcher when a job is held.
    held: Condvar,
}

/// What [`Member::take`] found.
pub enum Take<T> {
    /// A job to run.
    Job(T),
    /// None for this thread now: wait with [`Member::wait`] (without the GIL).
    Wait,
    /// Closed and empty: the thread ends.
    Closed,
}

/// One thread of the pool; made on that thread by [`Queue::join`].
pub struct Member<T> {
    queue: Arc<Queue<T>>,
    slot: Arc<Slot<T>>,
}

impl<T: Send + 'static> Queue<T> {
    /// A queue; with `dispatcher`, a thread of its own hands held jobs to idle threads (a pool
    /// of one thread needs none).
    pub fn new(dispatcher: bool) -> std::io::Result<Arc<Self>> {
        let queue = Arc::new(Queue {
            inner: Mutex::new(Inner {
                jobs: VecDeque::new(),
                idle: Vec::new(),
                members: Vec::new(),
                running: 0,
                watching: false,
                idled: 0,
            }),
            closed: AtomicBool::new(false),
            held: Condvar::new(),
        });
        if dispatcher {
            let q = queue.clone();
            std::thread::Builder::new()
                .name("ferrocgi-dispatch".into())
                .spawn(move || q.dispatch())?;
        }
        Ok(queue)
    }
}

impl<T> Queue<T> {
    /// Registers the calling thread as a member.
    pub fn join(self: &Arc<Self>) -> Member<T> {
        let mut inner = locked(&self.inner);
        let member = inner.members.len();
        inner.members.push(MemberState {
            running: false,
            hot: false,
            job: 0,
            clock: CpuClock::of_this_thread(),
        });
        Member {
            queue: self.clone(),
            slot: Arc::new(Slot {
                member,
                job: Mutex::new(None),
                ready: Condvar::new(),
            }),
        }
    }

    /// Hands `job` to an idle thread if no request is running, else queues it; `Err(job)`
    /// once closed.
    pub fn push(&self, job: T) -> Result<(), T> {
        let mut inner = locked(&self.inner);
        if self.closed.load(Ordering::Acquire) {
            return Err(job);
        }
        if inner.running == 0 && inner.jobs.is_empty() {
            if let Some(slot) = inner.idle.pop() {
                inner.start(slot.member);
                drop(inner);
                slot.hand_over(job);
                return Ok(());
            }
        }
        inner.jobs.push_back(job);
        self.watch(&mut inner);
        Ok(())
    }

    fn watch(&self, inner: &mut Inner<T>) {
        if !inner.watching && inner.jobs_wait_behind_running_ones() {
            inner.watching = true;
            self.held.notify_one();
        }
    }

    /// No more jobs: held jobs go to idle threads, the other idle threads end, busy ones end
    /// once the queue is empty.
    pub fn close(&self) {
        let (released, idle) = {
            let mut inner = locked(&self.inner);
            self.closed.store(true, Ordering::Release);
            let released: Vec<_> = std::iter::from_fn(|| inner.release_one()).collect();
            (released, std::mem::take(&mut inner.idle))
        };
        self.held.notify_one();
        for (slot, job) in released {
            slot.hand_over(job);
        }
        for slot in idle {
            let _guard = locked(&slot.job);
            slot.ready.notify_one();
        }
    }

    /// The dispatcher thread. While jobs wait and requests run, every [`TICK`] it measures
    /// the CPU time of the pool's threads; if they spent less than half the tick on a CPU
    /// (the requests are blocked), or every running request has used [`HOLD`], it hands a
    /// held job to an idle thread. Its verdict on each running request (on a CPU or not)
    /// tells threads that finish a request whether to take the next job ([`Member::take`]).
    fn dispatch(self: Arc<Self>) {
        let mut clocks: Vec<Option<CpuClock>> = Vec::new();
        let (mut before, mut after) = (Vec::new(), Vec::new());
        // Per member: (its request, its CPU time when the dispatcher first saw that request).
        let mut seen: Vec<(u64, Duration)> = Vec::new();
        let mut inner = locked(&self.inner);
        loop {
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            if !inner.jobs_wait_behind_running_ones() {
                inner.watching = false;
                inner = self.held.wait(inner).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            inner.watching = true;
            clocks.clear();
            clocks.extend(inner.members.iter().map(|m| m.clock.filter(|_| m.running)));
            let idled = inner.idled;
            drop(inner);
            let t0 = Instant::now();
            read_clocks(&clocks, &mut before);
            std::thread::sleep(TICK);
            read_clocks(&clocks, &mut after);
            let wall = t0.elapsed();
            let used: Duration = after
                .iter()
                .zip(&before)
                .map(|(a, b)| a.saturating_sub(*b))
                .sum();
            inner = locked(&self.inner);
            let blocked = used * 2 < wall && inner.idled == idled;
            seen.resize(clocks.len(), (u64::MAX, Duration::ZERO));
            // Every running request has used HOLD: none is a quick one about to finish.
            let mut overdue = inner.running > 0;
            for (i, m) in inner.members.iter_mut().take(clocks.len()).enumerate() {
                if !m.running {
                    continue;
                }
                if clocks[i].is_none() {
                    // Started during the tick: not measured yet, so not overdue.
                    overdue = false;
                    continue;
                }
                m.hot = after[i].saturating_sub(before[i]) * 4 >= wall;
                if seen[i].0 != m.job {
                    seen[i] = (m.job, before[i]);
                }
                overdue &= after[i].saturating_sub(seen[i].1) >= HOLD;
            }
            if blocked || overdue || inner.running == 0 {
                if let Some((slot, job)) = inner.release_one() {
                    drop(inner);
                    slot.hand_over(job);
                    inner = locked(&self.inner);
                }
            }
        }
    }
}

impl<T> Member<T> {
    /// Ends this thread's running request, if any, and takes the next queued job, unless
    /// another running request keeps a CPU busy: then the thread goes idle, so that the pool
    /// shrinks back to one running thread once concurrency stopped paying.
    pub fn take(&self) -> Take<T> {
        let mut inner = locked(&self.queue.inner);
        inner.stop(self.slot.member);
        let closed = self.queue.closed.load(Ordering::Acquire);
        let computing = inner.running > 0 && inner.members.iter().any(|m| m.running && m.hot);
        if !computing || closed {
            if let Some(job) = inner.jobs.pop_front() {
                inner.start(self.slot.member);
                return Take::Job(job);
            }
        }
        if closed {
            return Take::Closed;
        }
        inner.idle.push(self.slot.clone());
        inner.members[self.slot.member].hot = false;
        inner.idled = inner.idled.wrapping_add(1);
        self.queue.watch(&mut inner);
        Take::Wait
    }

    /// After [`Take::Wait`]: blocks until a job arrives (`Some`) or the queue closes (`None`).
    pub fn wait(&self) -> Option<T> {
        let mut job = locked(&self.slot.job);
        loop {
            if let Some(j) = job.take() {
                return Some(j);
            }
            if self.queue.closed.load(Ordering::Acquire) {
                return None;
            }
            job = self.slot.ready.wait(job).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A thread's CPU-time clock, readable from other threads.
#[derive(Debug, Clone, Copy)]
struct CpuClock(libc::clockid_t);

impl CpuClock {
    fn of_this_thread() -> Option<CpuClock> {
        let mut id: libc::clockid_t = 0;
        // SAFETY: pthread_self() is the calling thread, alive; `id` is a valid out-pointer.
        let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
        (rc == 0).then_some(CpuClock(id))
    }

    /// Zero once the thread is gone (the pool is closing).
    fn read(self) -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-pointer; a stale clock id only makes the call fail.
        if unsafe { libc::clock_gettime(self.0, &mut ts) } != 0 {
            return Duration::ZERO;
        }
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

/// Each clock's reading (zero where there is none) into `out`.
fn read_clocks(clocks: &[Option<CpuClock>], out: &mut Vec<Duration>) {
    out.clear();
    out.extend(
        clocks
            .iter()
            .map(|c| c.map_or(Duration::ZERO, CpuClock::read)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;

    type Job = Box<dyn FnOnce() + Send>;

    /// `n` member threads running jobs until the queue closes.
    fn pool(queue: &Arc<Queue<Job>>, n: usize) -> Vec<std::thread::JoinHandle<()>> {
        (0..n)
            .map(|_| {
                let q = queue.clone();
                std::thread::spawn(move || {
                    let member = q.join();
                    drop(q);
                    loop {
                        let job = match member.take() {
                            Take::Job(j) => j,
                            Take::Wait => match member.wait() {
                                Some(j) => j,
                                None => return,
                            },
                            Take::Closed => return,
                        };
                        job();
                    }
                })
            })
            .collect()
    }

    fn push(q: &Queue<Job>, job: impl FnOnce() + Send + 'static) {
        q.push(Box::new(job)).ok().unwrap();
    }

    fn close_and_join(q: &Queue<Job>, threads: Vec<std::thread::JoinHandle<()>>) {
        q.close();
        for t in threads {
            t.join().unwrap();
        }
    }

    /// Long enough to mean "never" for a job that must not wait on another forever.
    const HANG: Duration = Duration::from_secs(20);

    #[test]
    fn every_job_runs_once_and_close_ends_the_threads() {
        let q = Queue::<Job>::new(true).unwrap();
        let threads = pool(&q, 3);
        let (tx, rx) = mpsc::channel();
        for i in 0..1000u32 {
            let tx = tx.clone();
            push(&q, move || tx.send(i).unwrap());
        }
        let mut got: Vec<u32> = (0..1000).map(|_| rx.recv_timeout(HANG).unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
        close_and_join(&q, threads);
        assert!(q.push(Box::new(|| ())).is_err());
    }

    /// On a pool of two with a dispatcher, a first job waits (calling `wait` in a loop) until
    /// a second, queued behind it, has run; true if it saw the second run.
    fn second_job_runs_while_first_waits_for_it(wait: fn()) -> bool {
        let q = Queue::<Job>::new(true).unwrap();
        let threads = pool(&q, 2);
        let flag = Arc::new(AtomicBool::new(false));
        let (done_tx, done_rx) = mpsc::channel();
        let f = flag.clone();
        push(&q, move || {
            let t0 = Instant::now();
            while !f.load(Ordering::Acquire) && t0.elapsed() < HANG {
                wait();
            }
            done_tx.send(f.load(Ordering::Acquire)).unwrap();
        });
        push(&q, move || flag.store(true, Ordering::Release));
        let ran = done_rx.recv_timeout(HANG * 2).unwrap();
        close_and_join(&q, threads);
        ran
    }

    /// Off the CPU: the dispatcher must see the pool idle and hand the second job over.
    #[test]
    fn a_blocked_request_does_not_hold_back_the_next() {
        assert!(second_job_runs_while_first_waits_for_it(|| {
            std::thread::sleep(Duration::from_millis(1))
        }));
    }

    /// On the CPU: the second job is held back only until the first has used HOLD of CPU.
    #[test]
    fn a_busy_request_holds_back_the_next_only_for_a_while() {
        assert!(second_job_runs_while_first_waits_for_it(
            std::hint::spin_loop
        ));
    }

    /// Without a dispatcher, a job held behind a blocked one is handed out by close(), so a
    /// stopping server still answers it.
    #[test]
    fn close_hands_held_jobs_to_idle_threads() {
        let q = Queue::<Job>::new(false).unwrap();
        let threads = pool(&q, 2);
        // Both threads idle, so the first job goes straight to one of them.
        while locked(&q.inner).idle.len() < 2 {
            std::thread::yield_now();
        }
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        push(&q, move || {
            done_tx.send(go_rx.recv_timeout(HANG).is_ok()).unwrap();
            r.fetch_add(1, Ordering::AcqRel);
        });
        push(&q, move || go_tx.send(()).unwrap());
        assert_eq!(locked(&q.inner).jobs.len(), 1, "the second job is held");
        q.close();
        assert!(
            done_rx.recv_timeout(HANG).unwrap(),
            "the held job was not run"
        );
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(ran.load(Ordering::Acquire), 1);
    }
}
