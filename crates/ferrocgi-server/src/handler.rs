//! The one interface between the serving core and an application.
//!
//! A [`Handler`] receives a [`Request`] (CGI-style params, a streamed [`Body`]) and a
//! [`Responder`] to send the response head and body through. It is the same for FastCGI, SCGI
//! and AJP13: the connection loop translates. The WSGI host implements it (running Python on
//! its own threads, through the `blocking_*` methods); so does the pure-Rust `echo` example.
//!
//! Backpressure: request body chunks and response parts travel over bounded channels, so a
//! slow application stops the connection from reading more of the body, and a slow front end
//! stops the application from producing more response.

use crate::load::Ticket;
pub use crate::protocol::Protocol;
use bytes::Bytes;
use ferrocgi_proto::{Params, ResponseHead};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// An application: called once per request, on the server's async runtime.
///
/// The future is polled by the connection's own task (no task per request), so it must not
/// block the thread. It may return before the response is finished, once it handed the
/// [`Responder`] on (to a thread of its own, say): the request counts as in flight until the
/// responder is dropped. Dropping the [`Responder`] without calling [`Responder::finish`] ends
/// the request as failed (a 500 if nothing was sent yet). When the connection ends early, a
/// handler future still pending is dropped.
pub trait Handler: Send + Sync + 'static {
    /// Serves one request.
    fn handle(&self, req: Request, resp: Responder) -> impl Future<Output = ()> + Send;
}

/// One request: its CGI-style params and its body.
#[derive(Debug)]
pub struct Request {
    /// The protocol it arrived over.
    pub protocol: Protocol,
    /// CGI variables as the front end sent them (AJP's FORWARD_REQUEST is translated).
    pub params: Params,
    /// The request body, streamed.
    pub body: Body,
    /// The front end's address (`127.0.0.1:41234`, `unix`), for logs.
    pub peer: Arc<str>,
}

/// Why reading the request body or writing the response failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamError {
    /// The front end aborted the request (FCGI_ABORT_REQUEST).
    Aborted,
    /// The connection to the front end closed or failed before the stream was complete.
    Disconnected,
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StreamError::Aborted => "request aborted by the web server",
            StreamError::Disconnected => "connection to the web server lost",
        })
    }
}

impl std::error::Error for StreamError {}

/// A message on a request's body channel.
#[derive(Debug)]
pub(crate) enum BodyMsg {
    Data(Bytes),
    End,
}

/// Per-request state shared by the connection loop, the [`Body`] and the [`Responder`].
#[derive(Debug, Default)]
pub(crate) struct Shared {
    aborted: AtomicBool,
    /// How long the request waited for an application thread, µs (the host says).
    queue_wait_us: std::sync::atomic::AtomicU64,
    /// Wakes [`AbortSignal::wait`].
    on_abort: tokio::sync::Notify,
}

impl Shared {
    pub(crate) fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        self.on_abort.notify_waiters();
    }
    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }
    pub(crate) fn queue_wait_us(&self) -> u64 {
        self.queue_wait_us.load(Ordering::Relaxed)
    }
}

/// The request body as a stream of chunks.
#[derive(Debug)]
pub struct Body {
    rx: mpsc::Receiver<BodyMsg>,
    shared: Arc<Shared>,
    declared: Option<u64>,
    done: bool,
}

impl Body {
    pub(crate) fn new(
        rx: mpsc::Receiver<BodyMsg>,
        shared: Arc<Shared>,
        declared: Option<u64>,
    ) -> Self {
        Body {
            rx,
            shared,
            declared,
            done: false,
        }
    }

    /// The length the front end declared (CONTENT_LENGTH), if it declared one.
    pub fn declared_length(&self) -> Option<u64> {
        self.declared
    }

    fn on_msg(&mut self, msg: Option<BodyMsg>) -> Result<Option<Bytes>, StreamError> {
        match msg {
            Some(BodyMsg::Data(b)) => Ok(Some(b)),
            Some(BodyMsg::End) => {
                self.done = true;
                Ok(None)
            }
            None if self.shared.is_aborted() => Err(StreamError::Aborted),
            None => Err(StreamError::Disconnected),
        }
    }

    /// The next chunk; `Ok(None)` once the whole body was read.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, StreamError> {
        if self.done {
            return Ok(None);
        }
        let msg = self.rx.recv().await;
        self.on_msg(msg)
    }

    /// Like [`Body::chunk`], for threads outside the async runtime (blocks the thread).
    ///
    /// # Panics
    /// When called from inside an async context (tokio forbids blocking there).
    pub fn blocking_chunk(&mut self) -> Result<Option<Bytes>, StreamError> {
        if self.done {
            return Ok(None);
        }
        let msg = self.rx.blocking_recv();
        self.on_msg(msg)
    }
}

/// A part of a response, from the application to the connection loop.
#[derive(Debug)]
pub(crate) enum Part {
    Head(ResponseHead),
    Data(Bytes),
    Stderr(Bytes),
    /// The response is complete.
    End,
    /// The response cannot be completed: tell the front end it is broken.
    Fail,
    /// Several of the above in one message (one wake-up of the connection loop).
    Batch(Batch),
}

/// Response parts sent as one message: the head (if given), a piece of body (if not empty),
/// then, with `end`, the end of the response. See [`Responder::try_send`].
#[derive(Debug, Default)]
pub struct Batch {
    /// The status and headers, when not sent yet.
    pub head: Option<ResponseHead>,
    /// A piece of the body (may be empty).
    pub data: Bytes,
    /// Completes the response (as [`Responder::finish`]).
    pub end: bool,
}

/// What [`Responder::try_send`] did.
#[derive(Debug)]
pub enum TrySend {
    /// Sent.
    Sent,
    /// The connection's queue is full: nothing was sent, the batch is handed back (send it
    /// with [`Responder::blocking_send_batch`], or wait and retry).
    Full(Batch),
}

/// What [`Responder::try_reserve`] did.
#[derive(Debug)]
pub enum Reservation {
    /// Room is taken in the connection's queue; the outcome is what sending reports (after
    /// an abort, an `end` batch still ends the request and reports the abort).
    Reserved(Reserved, Result<(), StreamError>),
    /// The connection's queue is full: nothing was reserved, the batch is handed back.
    Full(Batch),
}

/// A batch with its room in the connection's queue already taken: [`Reserved::send`] hands
/// it over without waiting and cannot fail. A host that answers from a thread outside the
/// async runtime can decide at once (room or not, connection gone or not) and hand many
/// batches over later in one go, from the runtime, where doing so wakes no other thread.
#[derive(Debug)]
pub struct Reserved {
    permit: mpsc::OwnedPermit<(u16, Part)>,
    item: (u16, Part),
}

impl Reserved {
    /// Puts the batch in the connection's queue (dropped if the connection is gone).
    pub fn send(self) {
        self.permit.send(self.item);
    }
}

/// Sends one request's response, in order: [`Responder::start`], any number of
/// [`Responder::write`], then [`Responder::finish`].
#[derive(Debug)]
pub struct Responder {
    id: u16,
    tx: mpsc::Sender<(u16, Part)>,
    shared: Arc<Shared>,
    started: bool,
    finished: bool,
    /// Keeps the request counted in flight; declared last so it drops after `Drop::drop` sent
    /// the request's end.
    _ticket: Ticket,
}

impl Responder {
    pub(crate) fn new(
        id: u16,
        tx: mpsc::Sender<(u16, Part)>,
        shared: Arc<Shared>,
        ticket: Ticket,
    ) -> Self {
        Responder {
            id,
            tx,
            shared,
            started: false,
            finished: false,
            _ticket: ticket,
        }
    }

    /// True once the front end aborted the request or its connection was lost: stop working.
    pub fn is_aborted(&self) -> bool {
        self.shared.is_aborted() || self.tx.is_closed()
    }

    /// A handle that resolves once the request is aborted or its connection is lost, for a
    /// host that must tell a running application (ASGI's `http.disconnect`).
    pub fn abort_signal(&self) -> AbortSignal {
        AbortSignal {
            shared: self.shared.clone(),
            tx: self.tx.clone(),
        }
    }

    /// Sends `batch` as [`Responder::try_send`] does, waiting for room in the connection's
    /// queue.
    pub async fn send_batch(&mut self, batch: Batch) -> Result<(), StreamError> {
        let (end, started) = (batch.end, batch.head.is_some());
        let (part, outcome) = self.batch_part(batch)?;
        self.started |= started;
        self.finished |= end;
        self.tx
            .send((self.id, part))
            .await
            .map_err(|_| StreamError::Disconnected)?;
        outcome
    }

    /// Tells the access log how long the request waited for an application thread before it
    /// ran (`%(w)s`, `queue_wait_us`).
    pub fn note_queue_wait(&self, waited: std::time::Duration) {
        let us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.shared.queue_wait_us.store(us, Ordering::Relaxed);
    }

    /// True once the response was completed (or failed) through this responder.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// True once [`Responder::start`] was called.
    pub fn is_started(&self) -> bool {
        self.started
    }

    fn check(&self) -> Result<(), StreamError> {
        if self.shared.is_aborted() {
            Err(StreamError::Aborted)
        } else {
            Ok(())
        }
    }

    async fn send(&mut self, part: Part) -> Result<(), StreamError> {
        self.check()?;
        self.tx
            .send((self.id, part))
            .await
            .map_err(|_| StreamError::Disconnected)
    }

    fn blocking_send(&mut self, part: Part) -> Result<(), StreamError> {
        self.check()?;
        self.tx
            .blocking_send((self.id, part))
            .map_err(|_| StreamError::Disconnected)
    }

    /// Sends the status and headers.
    pub async fn start(&mut self, head: ResponseHead) -> Result<(), StreamError> {
        debug_assert!(!self.started, "response head sent twice");
        self.started = true;
        self.send(Part::Head(head)).await
    }

    /// Sends a piece of the body (an empty one is skipped).
    pub async fn write(&mut self, data: Bytes) -> Result<(), StreamError> {
        if data.is_empty() {
            return self.check();
        }
        self.send(Part::Data(data)).await
    }

    /// Sends application error output (FastCGI STDERR; the server's log for SCGI and AJP).
    pub async fn write_stderr(&mut self, data: Bytes) -> Result<(), StreamError> {
        self.send(Part::Stderr(data)).await
    }

    /// Completes the response. After an abort this still ends the request at protocol level
    /// (FastCGI wants END_REQUEST for an aborted request) and reports the abort.
    pub async fn finish(mut self) -> Result<(), StreamError> {
        self.finished = true;
        let aborted = self.check();
        self.tx
            .send((self.id, Part::End))
            .await
            .map_err(|_| StreamError::Disconnected)?;
        aborted
    }

    /// Ends the request as broken: before the head, the front end gets a 500; after it, the
    /// protocol-level end that tells the front end the response is incomplete.
    pub async fn fail(mut self) {
        self.finished = true;
        let _ = self.tx.send((self.id, Part::Fail)).await;
    }

    /// The message for `batch`, and what to report once it is sent: after an abort, an `end`
    /// batch still ends the request (as a bare end) and reports the abort; any other is refused.
    fn batch_part(&self, batch: Batch) -> Result<(Part, Result<(), StreamError>), StreamError> {
        match self.check() {
            Ok(()) => Ok((Part::Batch(batch), Ok(()))),
            Err(e) if batch.end => Ok((Part::End, Err(e))),
            Err(e) => Err(e),
        }
    }

    /// Sends `batch` without waiting. An `end` batch completes the response as
    /// [`Responder::finish`] does (after an abort it still ends the request, and reports the
    /// abort); the responder must not be used for more parts after it.
    pub fn try_send(&mut self, batch: Batch) -> Result<TrySend, StreamError> {
        let (end, started) = (batch.end, batch.head.is_some());
        let (part, outcome) = self.batch_part(batch)?;
        match self.tx.try_send((self.id, part)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full((_, part))) => {
                return Ok(TrySend::Full(unsent(part)));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(StreamError::Disconnected),
        }
        self.started |= started;
        self.finished |= end;
        outcome.map(|()| TrySend::Sent)
    }

    /// Takes room for `batch` in the connection's queue without sending it yet; see
    /// [`Reserved`]. The responder counts the batch as sent: an `end` batch finishes it.
    pub fn try_reserve(&mut self, batch: Batch) -> Result<Reservation, StreamError> {
        let (end, started) = (batch.end, batch.head.is_some());
        let (part, outcome) = self.batch_part(batch)?;
        let permit = match self.tx.clone().try_reserve_owned() {
            Ok(p) => p,
            Err(mpsc::error::TrySendError::Full(_)) => return Ok(Reservation::Full(unsent(part))),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(StreamError::Disconnected),
        };
        self.started |= started;
        self.finished |= end;
        let item = (self.id, part);
        Ok(Reservation::Reserved(Reserved { permit, item }, outcome))
    }

    /// [`Responder::try_send`] that waits for room, for threads outside the async runtime.
    pub fn blocking_send_batch(&mut self, batch: Batch) -> Result<(), StreamError> {
        let (end, started) = (batch.end, batch.head.is_some());
        let (part, outcome) = self.batch_part(batch)?;
        self.started |= started;
        self.finished |= end;
        self.tx
            .blocking_send((self.id, part))
            .map_err(|_| StreamError::Disconnected)?;
        outcome
    }

    /// [`Responder::start`] for threads outside the async runtime.
    pub fn blocking_start(&mut self, head: ResponseHead) -> Result<(), StreamError> {
        self.started = true;
        self.blocking_send(Part::Head(head))
    }

    /// [`Responder::write`] for threads outside the async runtime.
    pub fn blocking_write(&mut self, data: Bytes) -> Result<(), StreamError> {
        if data.is_empty() {
            return self.check();
        }
        self.blocking_send(Part::Data(data))
    }

    /// [`Responder::write_stderr`] for threads outside the async runtime.
    pub fn blocking_write_stderr(&mut self, data: Bytes) -> Result<(), StreamError> {
        self.blocking_send(Part::Stderr(data))
    }

    /// [`Responder::finish`] for threads outside the async runtime.
    pub fn blocking_finish(mut self) -> Result<(), StreamError> {
        self.finished = true;
        let aborted = self.check();
        self.tx
            .blocking_send((self.id, Part::End))
            .map_err(|_| StreamError::Disconnected)?;
        aborted
    }

    /// [`Responder::fail`] for threads outside the async runtime.
    pub fn blocking_fail(mut self) {
        self.finished = true;
        let _ = self.tx.blocking_send((self.id, Part::Fail));
    }
}

/// See [`Responder::abort_signal`].
#[derive(Debug, Clone)]
pub struct AbortSignal {
    shared: Arc<Shared>,
    tx: mpsc::Sender<(u16, Part)>,
}

impl AbortSignal {
    /// Resolves once the front end aborted the request (FCGI_ABORT_REQUEST) or the connection
    /// ended; right away if that already happened.
    pub async fn wait(&self) {
        let notified = self.shared.on_abort.notified();
        tokio::pin!(notified);
        // Registered before the flag is read, so an abort in between still wakes us.
        notified.as_mut().enable();
        if self.shared.is_aborted() {
            return;
        }
        tokio::select! {
            () = notified => {}
            () = self.tx.closed() => {}
        }
    }
}

/// The batch a part made by `batch_part` stands for, handed back when the queue is full (the
/// bare end of an aborted request is an empty `end` batch).
fn unsent(part: Part) -> Batch {
    match part {
        Part::Batch(b) => b,
        _ => Batch {
            end: true,
            ..Batch::default()
        },
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // A handler that returned (or panicked) without finishing: the request must still end,
        // or the front end waits forever. The channel may be full, so fall back to a task.
        match self.tx.try_send((self.id, Part::Fail)) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(msg)) => {
                let tx = self.tx.clone();
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        let _ = tx.send(msg).await;
                    });
                } else {
                    let _ = tx.blocking_send(msg);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Ticket;

    fn batch(data: &'static [u8], end: bool) -> Batch {
        Batch {
            head: None,
            data: Bytes::from_static(data),
            end,
        }
    }

    #[test]
    fn a_reservation_takes_room_and_sends_only_when_told() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut resp = Responder::new(1, tx, Arc::default(), Ticket::detached());
        let Ok(Reservation::Reserved(first, Ok(()))) = resp.try_reserve(batch(b"a", false)) else {
            panic!("room for one batch");
        };
        // The room is taken: the next batch is handed back whole.
        match resp.try_reserve(batch(b"b", true)) {
            Ok(Reservation::Full(b)) => assert_eq!((&b.data[..], b.end), (&b"b"[..], true)),
            other => panic!("expected a full queue, got {other:?}"),
        }
        assert!(!resp.is_finished());
        assert!(rx.try_recv().is_err(), "nothing is sent before send()");
        first.send();
        match rx.try_recv() {
            Ok((1, Part::Batch(b))) => assert_eq!(&b.data[..], b"a"),
            other => panic!("expected the reserved batch, got {other:?}"),
        }
        drop(rx);
        assert!(matches!(
            resp.try_reserve(batch(b"c", true)),
            Err(StreamError::Disconnected)
        ));
    }
}
