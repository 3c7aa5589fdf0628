//! Responses ended on the loop, handed to their connections once per pass of the loop instead
//! of once per response.
//!
//! A batch sent from the loop's thread wakes its connection's task, and a wake from outside
//! the runtime writes the runtime's eventfd: a system call per response, and the runtime's
//! thread woken for each response of a pass while the loop is still answering the next
//! request. So the last `send()` of a response only takes room in the connection's queue
//! (whether there is room, or a connection, is known at once, as before) and leaves the batch
//! here; the first response of a pass schedules [`Flush`] with `call_soon`, which runs after
//! the pass and hands them all to one runtime task, which wakes the connections from inside
//! the runtime. Only a response's last batch waits: nothing of that request comes after it,
//! so its parts stay in order, and a streamed response's earlier batches go out at once.

use super::call::Call;
use ferrocgi_server::{Reserved, Responder};
use pyo3::prelude::*;
use std::sync::{Arc, Mutex, MutexGuard};

/// A response's last batch, its responder (dropped once the batch is in the queue: the
/// request stops counting in flight) and its request, whose runtime side then stops watching.
struct Ended {
    batch: Reserved,
    resp: Responder,
    call: Arc<Call>,
}

impl Ended {
    fn send(self) {
        self.batch.send();
        drop(self.resp);
        self.call.finished.notify_one();
    }
}

/// The responses ended in the current pass of the loop.
#[derive(Default)]
pub(crate) struct Outbox {
    ended: Mutex<Vec<Ended>>,
}

impl Outbox {
    /// Leaves a response's last batch; true if it is the pass's first (schedule a [`Flush`]).
    pub(crate) fn put(&self, call: &Arc<Call>, batch: Reserved, resp: Responder) -> bool {
        let mut ended = self.lock();
        ended.push(Ended {
            batch,
            resp,
            call: call.clone(),
        });
        ended.len() == 1
    }

    /// Hands everything over from this thread, at once.
    pub(crate) fn flush_now(&self) {
        self.take().into_iter().for_each(Ended::send);
    }

    fn take(&self) -> Vec<Ended> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Ended>> {
        self.ended.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `call_soon` callback that hands a pass's responses to the runtime.
#[pyclass(module = "ferrocgi._ferrocgi", name = "AsgiFlush", frozen)]
pub(crate) struct Flush {
    pub(crate) outbox: Arc<Outbox>,
}

#[pymethods]
impl Flush {
    fn __call__(&self) {
        let ended = self.outbox.take();
        let Some(first) = ended.first() else { return };
        let rt = first.call.rt.clone();
        rt.spawn(async move { ended.into_iter().for_each(Ended::send) });
    }
}
