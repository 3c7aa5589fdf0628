//! The one way from the async runtime's threads to the asyncio loop's: a queue of [`Event`]s
//! and an eventfd the loop watches (`loop.add_reader`).
//!
//! A runtime thread never takes the GIL: it pushes an event and, when the queue was empty,
//! writes the eventfd. The loop's reader callback empties the whole queue at once, so a burst
//! of requests costs one wake-up of the loop, not one each.

use super::call::Call;
use ferrocgi_server::{Params, Protocol, Responder, StreamError};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A request the loop is to start.
pub(crate) struct NewCall {
    pub(crate) call: Arc<Call>,
    pub(crate) protocol: Protocol,
    pub(crate) params: Params,
}

/// What the runtime tells the loop.
pub(crate) enum Event {
    /// Start the application for a request (its first body chunk is in the call).
    Start(Box<NewCall>),
    /// A body chunk was put in the call.
    Body(Arc<Call>),
    /// The front end aborted the request or the connection was lost.
    Disconnect(Arc<Call>),
    /// A send that had to wait for room is done; the responder comes back with its outcome.
    Sent(Arc<Call>, Responder, Result<(), StreamError>),
    /// The server stopped: run lifespan shutdown and end the loop.
    Stop,
}

/// Most looks at the queue in one callback.
const DRAIN_PASSES: usize = 4;

/// The queue and its eventfd.
pub(crate) struct Bridge {
    queue: Mutex<Vec<Event>>,
    fd: OwnedFd,
    /// The loop is emptying the queue and looks again before it stops: no need to wake it.
    draining: AtomicBool,
}

impl Bridge {
    pub(crate) fn new() -> std::io::Result<Arc<Bridge>> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a new descriptor we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Arc::new(Bridge {
            queue: Mutex::new(Vec::new()),
            draining: AtomicBool::new(false),
            // SAFETY: `fd` was just opened and nothing else owns it.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        }))
    }

    /// The descriptor the loop watches.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Queues `ev`, waking the loop if it may be asleep.
    pub(crate) fn push(&self, ev: Event) {
        let was_empty = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.push(ev);
            q.len() == 1
        };
        if was_empty && !self.draining.load(Ordering::SeqCst) {
            self.wake();
        }
    }

    /// Runs `each` on every event queued, looking again until the queue stays empty, at most
    /// `DRAIN_PASSES` times (then the loop runs its ready tasks, and comes back at once: the
    /// eventfd is written). While it runs, pushing does not write the eventfd: a busy loop is
    /// not woken again for what it finds anyway. The flag is cleared before the last look, so
    /// an event pushed after that look writes the eventfd.
    pub(crate) fn drain(&self, mut each: impl FnMut(Event)) {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live buffer from our own descriptor; EAGAIN
        // (nothing to read) is fine.
        unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        self.draining.store(true, Ordering::SeqCst);
        for _ in 0..DRAIN_PASSES {
            let events = self.take();
            if events.is_empty() {
                break;
            }
            events.into_iter().for_each(&mut each);
        }
        self.draining.store(false, Ordering::SeqCst);
        if !self.is_empty() {
            self.wake();
        }
    }

    fn wake(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to our own descriptor. A full counter
        // (EAGAIN) already means "readable", which is all a wake-up needs.
        unsafe { libc::write(self.fd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    }

    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn is_empty(&self) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}
