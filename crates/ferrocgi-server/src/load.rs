//! What every connection of a server shares: the handler, the configuration, the in-flight
//! limit and the request counts ([`Load`]), and each request's [`Ticket`] in them. Its own
//! module so that the connection loop, the handler interface and the accept loop use it
//! without using each other.

use crate::config::ServerConfig;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// A running server's request counts, observable through [`crate::Server::load`]. Its
/// receivers are woken only when the busy count falls or leaves zero, and as requests start
/// when the server counts them ([`crate::Server::accept_until_started`]); between wakes, the
/// value read is always the current one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    /// Requests being served now.
    pub in_flight: usize,
    /// Requests served to completion since the start.
    pub served: u64,
    /// Requests started since the start (served, in flight, or abandoned).
    pub started: u64,
    /// Connections accepted whose first request has not arrived yet: a prefork worker counts
    /// them as work, or it would accept every waiting connection before parsing any.
    pub fresh: usize,
}

impl Load {
    /// Requests in flight plus connections about to bring one.
    pub fn busy(&self) -> usize {
        self.in_flight + self.fresh
    }
}

/// What every connection task shares.
pub(crate) struct ServerCtx<H> {
    pub(crate) handler: Arc<H>,
    pub(crate) config: ServerConfig,
    /// One permit per request in flight.
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) load: Arc<watch::Sender<Load>>,
    /// Wake the load's observers as requests start, too (see [`Load`]'s wake rule): set when
    /// something waits for a count of started requests (`maxrequests`).
    pub(crate) wake_on_start: AtomicBool,
}

/// Whether a change of the load wakes its observers: when the busy count falls (a request
/// ended, a fresh connection went), when it leaves zero, and, with `starts`, when a request
/// starts. Other changes are seen at the next look; waking every observer at each of them
/// (the prefork accept loop waits for the count to fall) cost a wake-up per request for
/// nothing.
fn worth_a_wake(old: &Load, new: &Load, starts: bool) -> bool {
    new.busy() < old.busy()
        || (old.busy() == 0 && new.busy() > 0)
        || (starts && new.started != old.started)
}

impl<H> ServerCtx<H> {
    /// Applies `f` to the load; wakes its observers if [`worth_a_wake`].
    fn update(&self, f: impl FnOnce(&mut Load)) {
        let starts = self.wake_on_start.load(Ordering::Relaxed);
        self.load.send_if_modified(|l| {
            let old = *l;
            f(l);
            worth_a_wake(&old, l, starts)
        });
    }

    /// A connection was accepted: it counts as fresh until its first request comes.
    pub(crate) fn fresh_started(&self) {
        self.update(|l| l.fresh += 1);
    }

    /// A connection stopped counting as fresh (its first request came, or its grace ended).
    pub(crate) fn fresh_ended(&self) {
        self.update(|l| l.fresh -= 1);
    }

    /// Counts a request in flight until the returned ticket is dropped (with its responder);
    /// `was_fresh`: it is its connection's first, which stops counting as fresh (one update,
    /// one wake-up of the load's observers, instead of two).
    pub(crate) fn request_started(&self, permit: OwnedSemaphorePermit, was_fresh: bool) -> Ticket {
        self.update(|l| {
            l.in_flight += 1;
            l.started += 1;
            l.fresh -= usize::from(was_fresh);
        });
        Ticket {
            load: self.load.clone(),
            _permit: permit,
        }
    }
}

/// A request's place in the server's load and in-flight limit, held by its [`Responder`]
/// (crate::Responder): the request counts until the responder is gone, even when the handler
/// hands it to another thread and returns early.
pub(crate) struct Ticket {
    load: Arc<watch::Sender<Load>>,
    _permit: OwnedSemaphorePermit,
}

#[cfg(test)]
impl Ticket {
    /// A ticket of a load nobody watches, for a responder in a unit test.
    pub(crate) fn detached() -> Ticket {
        let permit = Arc::new(Semaphore::new(1)).try_acquire_owned();
        Ticket {
            load: Arc::new(
                watch::channel(Load {
                    in_flight: 1,
                    ..Load::default()
                })
                .0,
            ),
            _permit: permit.expect("a fresh semaphore has a permit"),
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // The busy count falls: always a wake.
        self.load.send_modify(|l| {
            l.in_flight -= 1;
            l.served += 1;
        });
    }
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ticket")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(in_flight: usize, fresh: usize, started: u64) -> Load {
        Load {
            in_flight,
            served: 0,
            started,
            fresh,
        }
    }

    #[test]
    fn observers_wake_when_the_busy_count_falls_or_leaves_zero() {
        // Accepted while idle: leaves zero (a prefork worker reports itself busy).
        assert!(worth_a_wake(&load(0, 0, 0), &load(0, 1, 0), false));
        // Its first request: the fresh connection becomes a request, busy unchanged.
        assert!(!worth_a_wake(&load(0, 1, 0), &load(1, 0, 1), false));
        // A second request while busy: no wake.
        assert!(!worth_a_wake(&load(1, 0, 1), &load(2, 0, 2), false));
        // A request ends, a fresh connection goes: the accept gate may open.
        assert!(worth_a_wake(&load(2, 0, 2), &load(1, 0, 2), false));
        assert!(worth_a_wake(&load(1, 1, 2), &load(1, 0, 2), false));
        // Counting starts (maxrequests): every start wakes.
        assert!(worth_a_wake(&load(0, 1, 0), &load(1, 0, 1), true));
    }
}
