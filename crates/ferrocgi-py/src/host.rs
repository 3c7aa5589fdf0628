//! The WSGI host: a [`Handler`] that collects each request's body on the async side, then runs
//! the application on a bounded pool of Python threads, or inline (see below).
//!
//! # Theory of operation
//!
//! `handle` (async, no GIL) reads the body ([`crate::input::collect`]), answers 413 itself when
//! it is too large, then queues a [`Job`] for the pool and returns: the job carries the
//! request's [`Responder`], which keeps the request counted in flight until the response is
//! complete. Each pool thread holds the GIL only while Python code runs: waiting for a job and
//! every blocking send of response bytes happen with the GIL released. Whether a second
//! thread starts a request while one runs is the queue's decision ([`crate::queue`]): only
//! when the running ones wait off the CPU, or have run long.
//!
//! A process that serves one request at a time (a prefork worker with `threads=1`) runs the
//! job inline instead ([`Threads::Inline`]): in a task of its own on the runtime thread that
//! read the request, which saves the two wake-ups of a hand-over per request. Whatever could
//! hold that thread while the connection loops must run, a blocking send (the connection's
//! queue is full) or a response that streams (an iterable that is not known to be made, the
//! legacy `write()`), runs under `block_in_place`, which moves the runtime to another thread
//! meanwhile.

use crate::environ::{build_environ, EnvironBase};
use crate::input::{collect, BodyData, CollectError, InputStream, SpoolBudget};
use crate::queue::{Member, Queue, Take};
use crate::response::{self, lock, ClientDisconnected, ResponseState, StartResponse};
use crate::settings::HostSettings;
use crate::watchdog::{OnWedged, RequestTimeout, Watchdog};
use crate::wsgi::{ErrorStream, FileWrapper};
use bytes::Bytes;
use ferrocgi_server::{
    Batch, Handler, Params, Protocol, Request, Responder, ResponseHead, TrySend,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tracing::{debug, error, info, warn};

/// One request handed to the Python pool.
pub struct Job {
    /// The protocol the request came in by.
    pub protocol: Protocol,
    /// Its CGI params.
    pub params: Params,
    /// The peer, for log lines.
    pub peer: Arc<str>,
    /// The body, collected (in memory or spooled).
    pub body: BodyData,
    /// The body's length in bytes.
    pub body_len: u64,
    /// Where the response goes.
    pub resp: Responder,
    /// When the job was made: its wait for a thread counts from here.
    pub queued: std::time::Instant,
}

/// The [`Handler`] side: async; Python runs on the pool's threads, or in a task of its own
/// (inline).
pub struct WsgiHandler {
    jobs: Arc<Queue<Job>>,
    inline: Option<Arc<Inline>>,
    settings: Arc<HostSettings>,
    app_threads: AppThreads,
    /// What spooled request bodies may take on disk, together (`max_spool`).
    spool: Arc<SpoolBudget>,
}

/// Where the application runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// On a pool of this many Python threads, fed by a queue.
    Pool(usize),
    /// One request at a time, on the runtime thread that read it: no hand-over between
    /// threads, which costs two wake-ups per request. Needs a multi-thread runtime (a send
    /// that must wait for room calls `block_in_place`).
    Inline,
}

/// The inline runner's state (see [`Threads::Inline`]).
struct Inline {
    host: Arc<Host>,
    /// `threads=1` means one request at a time, even while one waits for room to send.
    gate: tokio::sync::Mutex<()>,
    live: Arc<AtomicUsize>,
}

/// Counts a thread running application code; see [`AppThreads::wait_ended`].
struct Live(Arc<AtomicUsize>);

impl Live {
    fn enter(n: &Arc<AtomicUsize>) -> Live {
        n.fetch_add(1, Ordering::AcqRel);
        Live(n.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The threads running application code: pool threads end once the handler (the job queue)
/// is dropped, an inline call when its request is done.
#[derive(Clone)]
pub struct AppThreads(Arc<AtomicUsize>);

impl AppThreads {
    /// Waits up to `timeout` for every thread to end; false if some are still running an
    /// application call. Call without holding the GIL.
    pub fn wait_ended(&self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while self.0.load(Ordering::Acquire) > 0 {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        true
    }
}

impl Drop for WsgiHandler {
    fn drop(&mut self) {
        self.jobs.close();
    }
}

impl WsgiHandler {
    /// A handle to wait for the Python threads after the server stopped.
    pub fn app_threads(&self) -> AppThreads {
        self.app_threads.clone()
    }
}

/// The application returned: the head (if not sent yet), the last chunk and the end in one
/// message, sent without releasing the GIL unless the connection's queue is full.
fn finish(
    py: Python<'_>,
    st: &mut ResponseState,
    mut resp: Responder,
    last: Option<Bytes>,
    uri: &str,
) {
    let head = (!st.sent).then(|| {
        st.head.take().unwrap_or_else(|| {
            error!(
                uri,
                "the application returned without calling start_response; answered 500"
            );
            plain(500, "Internal Server Error")
        })
    });
    let batch = Batch {
        head,
        data: last.unwrap_or_default(),
        end: true,
    };
    if let Ok(TrySend::Full(batch)) = resp.try_send(batch) {
        response::wait_for_loop(py, || {
            let _ = resp.blocking_send_batch(batch);
        });
    }
}

fn plain(status: u16, reason: &'static str) -> ResponseHead {
    ResponseHead::new(status, reason).header("Content-Type", "text/plain; charset=utf-8")
}

async fn answer(mut resp: Responder, head: ResponseHead, body: &'static [u8]) {
    if resp.start(head).await.is_ok() && resp.write(Bytes::from_static(body)).await.is_ok() {
        let _ = resp.finish().await;
    }
}

impl Handler for WsgiHandler {
    async fn handle(&self, mut req: Request, resp: Responder) {
        let s = &self.settings;
        let collected = collect(&mut req.body, s.spool_threshold, s.max_body, &self.spool).await;
        let (body, body_len) = match collected {
            Ok(b) => b,
            Err(CollectError::TooLarge(n)) => {
                warn!(peer = %req.peer, size = n, max_body = ?s.max_body, "request body too large; answered 413");
                return answer(
                    resp,
                    plain(413, "Payload Too Large"),
                    b"request body too large\n",
                )
                .await;
            }
            Err(CollectError::Stream(e)) => {
                info!(peer = %req.peer, "request body incomplete: {e}");
                return;
            }
            Err(CollectError::SpoolFull) => {
                warn!(peer = %req.peer, max_spool = s.max_spool, "request bodies being spooled would pass max_spool; answered 503");
                return answer(
                    resp,
                    plain(503, "Service Unavailable").header("Retry-After", "5"),
                    b"server busy with other uploads, try again\n",
                )
                .await;
            }
            Err(CollectError::Io(e)) => {
                error!(peer = %req.peer, "cannot spool the request body to a temporary file: {e}");
                return answer(
                    resp,
                    plain(500, "Internal Server Error"),
                    b"internal server error\n",
                )
                .await;
            }
        };
        let job = Job {
            protocol: req.protocol,
            params: req.params,
            peer: req.peer,
            body,
            body_len,
            resp,
            queued: std::time::Instant::now(),
        };
        if let Some(inline) = &self.inline {
            // A task of its own, not this connection's: a send that must wait for room moves
            // the runtime to another thread (`block_in_place`), and that thread must be able
            // to run this connection's loop, which drains the response.
            let inline = inline.clone();
            tokio::spawn(async move {
                let _one_at_a_time = inline.gate.lock().await;
                keep_thread_state();
                let _live = Live::enter(&inline.live);
                Python::attach(|py| {
                    response::release_deferred(py);
                    inline.host.run(py, job, thread_ident(py));
                });
            });
            return;
        }
        if let Err(job) = self.jobs.push(job) {
            error!("the Python worker pool is gone; answering 503");
            answer(
                job.resp,
                plain(503, "Service Unavailable"),
                b"server stopping\n",
            )
            .await;
        }
    }
}

/// The application and what every request shares.
pub struct Host {
    app: Py<PyAny>,
    base: EnvironBase,
    settings: Arc<HostSettings>,
    watchdog: Option<Arc<Watchdog>>,
}

impl Host {
    /// Starts serving `app` as `threads` says; returns the handler feeding it.
    pub fn start(
        py: Python<'_>,
        app: Py<PyAny>,
        settings: HostSettings,
        threads: Threads,
        on_wedged: OnWedged,
    ) -> PyResult<WsgiHandler> {
        let settings = Arc::new(settings);
        let watchdog = Watchdog::start(settings.slow_request, settings.request_timeout, on_wedged);
        let host = Arc::new(Host {
            app,
            base: EnvironBase::new(py, &settings)?,
            settings: settings.clone(),
            watchdog,
        });
        let live = Arc::new(AtomicUsize::new(0));
        let pool_threads = match threads {
            Threads::Pool(n) => n.max(1),
            Threads::Inline => 0,
        };
        let queue = Queue::new(pool_threads > 1)?;
        for i in 0..pool_threads {
            let queue = queue.clone();
            let host = host.clone();
            let live = Live::enter(&live);
            std::thread::Builder::new()
                .name(format!("ferrocgi-py-{i}"))
                .spawn(move || {
                    let member = queue.join();
                    drop(queue);
                    Python::attach(|py| host.worker(py, member, i));
                    drop(host);
                    drop(live);
                })
                .map_err(PyErr::from)?;
        }
        let inline = (threads == Threads::Inline).then(|| {
            Arc::new(Inline {
                host,
                gate: tokio::sync::Mutex::new(()),
                live: live.clone(),
            })
        });
        let spool = SpoolBudget::new(settings.max_spool);
        Ok(WsgiHandler {
            jobs: queue,
            inline,
            settings,
            app_threads: AppThreads(live),
            spool,
        })
    }

    fn worker(&self, py: Python<'_>, member: Member<Job>, index: usize) {
        let ident = thread_ident(py);
        ferrocgi_server::status::thread_ready(index);
        loop {
            // The GIL is released only to wait: a queued job is taken while holding it.
            let job = match member.take() {
                Take::Job(job) => job,
                Take::Wait => match py.detach(|| member.wait()) {
                    Some(job) => job,
                    None => break,
                },
                Take::Closed => break,
            };
            response::release_deferred(py);
            let _busy = ferrocgi_server::status::thread_busy(index, &job.params);
            self.run(py, job, ident);
        }
    }

    /// Runs one request to completion; never raises.
    /// The job, unless it is not worth running any more: its request was aborted while it
    /// waited (the answer has nowhere to go), or it waited past `queue_timeout` (answered 503
    /// here: the client has likely given up, and a server that is behind must shed load).
    fn still_wanted(&self, py: Python<'_>, job: Job) -> Option<Job> {
        if job.resp.is_aborted() {
            debug!(peer = %job.peer, "request aborted while it waited for a thread; not run");
            return None;
        }
        let waited = job.queued.elapsed();
        if self
            .settings
            .queue_timeout
            .map_or(true, |limit| waited <= limit)
        {
            return Some(job);
        }
        warn!(peer = %job.peer, waited = ?waited, "request waited longer than queue_timeout for a thread; answered 503");
        let mut resp = job.resp;
        response::wait_for_loop(py, || {
            let head = plain(503, "Service Unavailable").header("Retry-After", "1");
            let _ = resp.blocking_start(head);
            let _ = resp.blocking_write(Bytes::from_static(b"server busy, try again\n"));
            let _ = resp.blocking_finish();
        });
        None
    }

    fn run(&self, py: Python<'_>, job: Job, ident: u64) {
        let Some(job) = self.still_wanted(py, job) else {
            return;
        };
        job.resp.note_queue_wait(job.queued.elapsed());
        let Job {
            protocol,
            params,
            peer,
            body,
            body_len,
            resp,
            queued: _,
        } = job;
        let state: response::ResponseCell = Arc::new(Mutex::new(ResponseState {
            head: None,
            sent: false,
            responder: Some(resp),
        }));
        let uri =
            String::from_utf8_lossy(params.get(b"REQUEST_URI").unwrap_or_default()).into_owned();
        let watched = self.watchdog.as_ref().map(|w| w.enter(ident, &uri));
        let outcome = self.call_app(py, protocol, &params, &peer, &uri, body, body_len, &state);
        drop(watched);
        let mut st = lock(&state);
        let st = &mut *st;
        let Some(resp) = st.responder.take() else {
            return;
        };
        match outcome {
            Ok(last) => finish(py, st, resp, last, &uri),
            Err(e) => self.answer_error(py, &e, st.sent, resp, &uri, &peer),
        }
    }

    /// The application raised: a timeout (504), a client that left, or an error (500, with
    /// the traceback in debug mode); a response already started is cut short instead.
    fn answer_error(
        &self,
        py: Python<'_>,
        e: &PyErr,
        sent: bool,
        mut resp: Responder,
        uri: &str,
        peer: &str,
    ) {
        if e.is_instance_of::<ClientDisconnected>(py) {
            info!(uri, peer = %peer, "client went away: {e}");
            return response::wait_for_loop(py, || resp.blocking_fail());
        }
        let (status, reason, body) = if e.is_instance_of::<RequestTimeout>(py) {
            // The watchdog logged the stack already.
            (504, "Gateway Timeout", "request timed out\n".to_string())
        } else {
            let tb = format_traceback(py, e);
            error!(uri, peer = %peer, "application error:\n{tb}");
            let body = if self.settings.debug {
                format!("Internal Server Error\n\n{tb}")
            } else {
                "Internal Server Error\n".to_string()
            };
            (500, "Internal Server Error", body)
        };
        response::wait_for_loop(py, || {
            if sent {
                // The head is out: the front end must learn the response is cut short.
                resp.blocking_fail();
            } else {
                let _ = resp.blocking_start(plain(status, reason));
                let _ = resp.blocking_write(Bytes::from(body));
                let _ = resp.blocking_finish();
            }
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn call_app(
        &self,
        py: Python<'_>,
        protocol: Protocol,
        params: &Params,
        peer: &Arc<str>,
        uri: &str,
        body: BodyData,
        body_len: u64,
        state: &response::ResponseCell,
    ) -> PyResult<Option<Bytes>> {
        let input = Py::new(py, InputStream::new(body))?;
        let errors = Py::new(py, ErrorStream::new(uri.to_string(), peer.clone()))?;
        let environ = build_environ(
            py,
            &self.base,
            &self.settings,
            protocol,
            params,
            body_len,
            input,
            errors,
        )?;
        let sr = Py::new(
            py,
            StartResponse {
                state: state.clone(),
            },
        )?;
        let iterable = self.app.bind(py).call1((environ, sr))?;
        let plain =
            iterable.is_exact_instance_of::<PyList>() || iterable.is_exact_instance_of::<PyTuple>();
        if plain {
            // Made already: sent when the request returns. Lists and tuples have no close().
            return stream_iterable(py, &iterable, state);
        }
        let send_and_close = || {
            // The response ends before close() runs: the front end has all of it while the
            // application cleans up (Django's close() sends request_finished), so a client
            // that hangs up as soon as it has the body does not make nginx drop a kept-alive
            // upstream connection still waiting for END_REQUEST.
            let sent = stream_iterable(py, &iterable, state).map(|last| {
                end_response(py, state, last, uri);
                None
            });
            // PEP 3333: close() is called whatever happened, even after an exception.
            let closed = match iterable.getattr_opt(pyo3::intern!(py, "close")) {
                Ok(Some(close)) => close.call0().map(|_| ()),
                _ => Ok(()),
            };
            match (sent, closed) {
                (Err(e), _) => Err(e),
                // The body is complete: the client gets it whole; the error is the
                // application's to fix, so it is logged with its traceback.
                (Ok(last), Err(e)) => {
                    let tb = format_traceback(py, &e);
                    error!("the response's close() raised after a complete body:\n{tb}");
                    Ok(last)
                }
                (Ok(last), Ok(())) => Ok(last),
            }
        };
        if content_in_memory(&iterable) {
            return send_and_close();
        }
        // Anything else may take its time between chunks, which must go out as they come.
        response::run_blocking(send_and_close)
    }
}

/// Sends the end of a response whose iterable is exhausted (see [`finish`]); the request's
/// responder is gone after it.
fn end_response(py: Python<'_>, state: &response::ResponseCell, last: Option<Bytes>, uri: &str) {
    let mut st = lock(state);
    let st = &mut *st;
    if let Some(resp) = st.responder.take() {
        finish(py, st, resp, last, uri);
    }
}

/// True for a response object whose `streaming` attribute is `False`: Django's `HttpResponse`
/// (its content is in memory; `StreamingHttpResponse` and `FileResponse` say `True`).
fn content_in_memory(iterable: &Bound<'_, PyAny>) -> bool {
    let py = iterable.py();
    matches!(
        iterable.getattr_opt(pyo3::intern!(py, "streaming")),
        Ok(Some(v)) if v.is(pyo3::types::PyBool::new(py, false).as_any())
    )
}

/// Gives this (runtime) thread a Python thread state that outlives each `Python::attach`:
/// without it every attach creates and destroys one (an mmap and munmap per request). The
/// state is freed when the thread ends (idle runtime threads end after 10 s): with it go the
/// thread's `threading.local` and context data, such as a database connection.
fn keep_thread_state() {
    thread_local!(static KEPT: std::cell::RefCell<Option<KeptState>> = const { std::cell::RefCell::new(None) });
    KEPT.with(|k| {
        let mut k = k.borrow_mut();
        if k.is_none() {
            // SAFETY: this thread does not hold the GIL here; Ensure takes it (creating the
            // thread state), SaveThread releases the GIL again and keeps the state.
            *k = Some(unsafe {
                let gil = pyo3::ffi::PyGILState_Ensure();
                let tstate = pyo3::ffi::PyEval_SaveThread();
                KeptState { gil, tstate }
            });
        }
    });
}

/// A runtime thread's kept Python thread state, released when the thread ends.
struct KeptState {
    gil: pyo3::ffi::PyGILState_STATE,
    tstate: *mut pyo3::ffi::PyThreadState,
}

impl Drop for KeptState {
    fn drop(&mut self) {
        // SAFETY: runs as this thread ends, outside any `Python::attach` (the state is not
        // current); RestoreThread makes it current with the GIL, and the Release matching the
        // first Ensure deletes it, clearing its thread-local data. Skipped once the interpreter
        // is gone (a process ending).
        unsafe {
            if pyo3::ffi::Py_IsInitialized() != 0 {
                pyo3::ffi::PyEval_RestoreThread(self.tstate);
                pyo3::ffi::PyGILState_Release(self.gil);
            }
        }
    }
}

/// This thread's `threading.get_ident()`: the watchdog finds a request's Python stack by it.
fn thread_ident(py: Python<'_>) -> u64 {
    thread_local!(static IDENT: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) });
    IDENT.with(|c| {
        if let Some(ident) = c.get() {
            return ident;
        }
        let ident = py
            .import("threading")
            .and_then(|t| t.call_method0("get_ident"))
            .and_then(|i| i.extract())
            .unwrap_or(0);
        c.set(Some(ident));
        ident
    })
}

fn as_bytes<'a, 'py>(item: &'a Bound<'py, PyAny>) -> PyResult<&'a Bound<'py, PyBytes>> {
    item.cast::<PyBytes>().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "the application must yield bytes, not {}",
            item.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })
}

/// Sends every chunk of the application's iterable; `wsgi.file_wrapper` over a real file is
/// read and sent by Rust without the GIL. The last chunk of a list or tuple (whose length is
/// known, so holding it back delays nothing) is returned instead, for the caller to send
/// together with the end of the response.
fn stream_iterable(
    py: Python<'_>,
    iterable: &Bound<'_, PyAny>,
    state: &response::ResponseCell,
) -> PyResult<Option<Bytes>> {
    if let Ok(fw) = iterable.cast::<FileWrapper>() {
        if let Some(file) = fw.get().dup_file(py) {
            return send_file(py, file, fw.get().blksize, state).map(|()| None);
        }
    }
    let sized =
        iterable.is_exact_instance_of::<PyList>() || iterable.is_exact_instance_of::<PyTuple>();
    if sized {
        let n = iterable.len()?;
        for i in 0..n {
            let item = iterable.get_item(i)?;
            let b = as_bytes(&item)?;
            if b.as_bytes().is_empty() {
                continue;
            }
            // Holding back needs a head to send it with; without one, `send` raises.
            if i + 1 == n && response::has_head(state) {
                return Ok(Some(response::chunk(b)));
            }
            response::send(py, state, response::chunk(b))?;
        }
        return Ok(None);
    }
    // Each chunk goes out as it is made, except the one that completes the declared
    // Content-Length: it is returned, to travel with the end of the response in one write
    // (a front end that has the whole body and a client that hangs up must not find the
    // end still missing).
    let mut declared: Option<Option<u64>> = None;
    let (mut sent, mut held) = (0u64, None);
    for item in iterable.try_iter()? {
        let item = item?;
        let b = as_bytes(&item)?;
        if b.as_bytes().is_empty() {
            continue;
        }
        if let Some(h) = held.take() {
            response::send(py, state, h)?; // more than declared: the application's affair
        }
        let chunk = response::chunk(b);
        sent += chunk.len() as u64;
        let limit = *declared.get_or_insert_with(|| response::declared_length(state));
        if limit.is_some_and(|n| sent >= n) && response::has_head(state) {
            held = Some(chunk);
        } else {
            response::send(py, state, chunk)?;
        }
    }
    Ok(held)
}

fn send_file(
    py: Python<'_>,
    mut file: std::fs::File,
    blksize: usize,
    state: &response::ResponseCell,
) -> PyResult<()> {
    let blksize = blksize.clamp(4096, 1 << 20);
    loop {
        let chunk = py.detach(|| {
            let mut buf = vec![0u8; blksize];
            let n = file.read(&mut buf)?;
            buf.truncate(n);
            Ok::<_, std::io::Error>(buf)
        })?;
        if chunk.is_empty() {
            return Ok(());
        }
        response::send(py, state, Bytes::from(chunk))?;
    }
}

/// The traceback as Python prints it.
pub fn format_traceback(py: Python<'_>, e: &PyErr) -> String {
    let formatted = (|| -> PyResult<String> {
        let tb = py.import("traceback")?;
        let lines = tb.call_method1(
            "format_exception",
            (e.get_type(py), e.value(py), e.traceback(py)),
        )?;
        let s: String = pyo3::types::PyString::new(py, "")
            .call_method1("join", (lines,))?
            .extract()?;
        Ok(s)
    })();
    formatted
        .unwrap_or_else(|_| e.to_string())
        .trim_end()
        .to_string()
}
