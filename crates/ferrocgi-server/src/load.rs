//! What every connection of a server shares: the handler, the configuration, the in-flight
//! limit and the request counts ([`Load`]), and each request's [`Ticket`] in them. Its own
//! module so that the connection loop, the handler interface and the accept loop use it
//! without using each other.

use crate::config::ServerConfig;
use std::sync::Arc;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// A running server's request counts, observable through [`crate::Server::load`].
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
}

impl<H> ServerCtx<H> {
    /// A connection stopped counting as fresh (its first request came, or its grace ended).
    pub(crate) fn fresh_ended(&self) {
        self.load.send_modify(|l| l.fresh -= 1);
    }

    /// Counts a request in flight until the returned ticket is dropped (with its responder);
    /// `was_fresh`: it is its connection's first, which stops counting as fresh (one update,
    /// one wake-up of the load's observers, instead of two).
    pub(crate) fn request_started(&self, permit: OwnedSemaphorePermit, was_fresh: bool) -> Ticket {
        self.load.send_modify(|l| {
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

impl Drop for Ticket {
    fn drop(&mut self) {
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
