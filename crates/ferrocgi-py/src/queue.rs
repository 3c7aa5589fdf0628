//! The job queue between the connection loops and the Python threads.
//!
//! Built for the GIL: a thread that finishes a request takes the next queued job while it
//! still holds the GIL (no release, no wake-up), and a job that finds threads idle goes
//! straight to exactly one of them, the one idle most recently (its caches are warm), instead
//! of waking every waiter to race for it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where one idle thread waits for its job.
struct Slot<T> {
    job: Mutex<Option<T>>,
    ready: Condvar,
}

struct Inner<T> {
    jobs: VecDeque<T>,
    /// Idle threads, most recently idle last.
    idle: Vec<Arc<Slot<T>>>,
}

/// A multi-producer, multi-consumer queue of jobs for a fixed set of threads.
pub struct Queue<T> {
    inner: Mutex<Inner<T>>,
    closed: AtomicBool,
}

/// What [`Queue::take`] found.
pub enum Take<T> {
    /// A job to run.
    Job(T),
    /// None queued: wait with [`Waiter::wait`] (without the GIL).
    Wait(Waiter<T>),
    /// Closed and empty: the thread ends.
    Closed,
}

/// An idle thread's registration; [`Waiter::wait`] blocks until a job or the close.
pub struct Waiter<T> {
    slot: Arc<Slot<T>>,
    queue: Arc<Queue<T>>,
}

impl<T> Queue<T> {
    pub fn new() -> Arc<Self> {
        Arc::new(Queue {
            inner: Mutex::new(Inner {
                jobs: VecDeque::new(),
                idle: Vec::new(),
            }),
            closed: AtomicBool::new(false),
        })
    }

    /// Queues `job`, or hands it to an idle thread; `Err(job)` once closed.
    pub fn push(&self, job: T) -> Result<(), T> {
        let mut inner = locked(&self.inner);
        if self.closed.load(Ordering::Acquire) {
            return Err(job);
        }
        match inner.idle.pop() {
            Some(slot) => {
                drop(inner);
                *locked(&slot.job) = Some(job);
                slot.ready.notify_one();
            }
            None => inner.jobs.push_back(job),
        }
        Ok(())
    }

    /// The next queued job, or a registration to wait for one.
    pub fn take(self: &Arc<Self>) -> Take<T> {
        let mut inner = locked(&self.inner);
        if let Some(job) = inner.jobs.pop_front() {
            return Take::Job(job);
        }
        if self.closed.load(Ordering::Acquire) {
            return Take::Closed;
        }
        let slot = Arc::new(Slot {
            job: Mutex::new(None),
            ready: Condvar::new(),
        });
        inner.idle.push(slot.clone());
        Take::Wait(Waiter {
            slot,
            queue: self.clone(),
        })
    }

    /// No more jobs: idle threads end, busy ones end once the queue is empty.
    pub fn close(&self) {
        let idle = {
            let mut inner = locked(&self.inner);
            self.closed.store(true, Ordering::Release);
            std::mem::take(&mut inner.idle)
        };
        for slot in idle {
            let _guard = locked(&slot.job);
            slot.ready.notify_one();
        }
    }
}

impl<T> Waiter<T> {
    /// Blocks until a job arrives (`Some`) or the queue closes (`None`).
    pub fn wait(self) -> Option<T> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_reach_waiting_and_busy_threads_and_close_ends_them() {
        let q = Queue::<u32>::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                let tx = tx.clone();
                std::thread::spawn(move || loop {
                    let job = match q.take() {
                        Take::Job(j) => j,
                        Take::Wait(w) => match w.wait() {
                            Some(j) => j,
                            None => return,
                        },
                        Take::Closed => return,
                    };
                    tx.send(job).unwrap();
                })
            })
            .collect();
        for i in 0..1000 {
            q.push(i).unwrap();
        }
        let mut got: Vec<u32> = (0..1000).map(|_| rx.recv().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
        q.close();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(q.push(7), Err(7));
    }
}
