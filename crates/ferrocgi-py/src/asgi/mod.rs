//! The ASGI host: a [`Handler`] that runs ASGI 3 applications on one asyncio loop per process.
//!
//! # Theory of operation
//!
//! The loop runs on a thread of its own ([`spawn`]); the async runtime's threads never take
//! the GIL. `handle` reads the first body chunk, then hands the request to the loop through
//! the [`bridge`] (a queue and an eventfd the loop watches), and stays on the runtime to feed
//! the rest of the body one chunk at a time (the next chunk is put only once the application
//! took the previous one: memory stays bounded whatever the body's size) and to watch for the
//! front end going away (`http.disconnect`).
//!
//! On the loop, the reader callback starts a task per request and answers the events of
//! running ones ([`call`]). `send()` hands the response to the connection's queue without
//! waiting; only when that queue is full does a runtime task wait for room while the
//! application's `await send(...)` waits on a future: back-pressure without blocking either
//! side. The head of `http.response.start` goes out with the first body message, and the last
//! body message carries the request's end, so a short response is one message to the
//! connection loop.

mod bridge;
mod call;
mod lifespan;
mod outbox;
mod scope;
mod timers;

pub use lifespan::Mode as LifespanMode;

use crate::settings::HostSettings;
use bridge::{Bridge, Event, NewCall};
use bytes::Bytes;
use call::{Call, Done, Receive, Send, TaskDone};
use ferrocgi_server::{Body, Handler, Request, Responder, ResponseHead};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

/// `loop=`: the event loop implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopKind {
    /// uvloop when it is installed, else asyncio's own.
    Auto,
    /// asyncio's own loop.
    Asyncio,
    /// uvloop (an error at start-up if it is not installed).
    Uvloop,
}

impl LoopKind {
    /// The option's value.
    pub fn parse(s: &str) -> Option<LoopKind> {
        match s {
            "auto" => Some(LoopKind::Auto),
            "asyncio" => Some(LoopKind::Asyncio),
            "uvloop" => Some(LoopKind::Uvloop),
            _ => None,
        }
    }
}

/// What the loop thread is started with.
pub struct LoopConfig {
    /// `loop=`.
    pub kind: LoopKind,
    /// `lifespan=`.
    pub lifespan: LifespanMode,
    /// How long lifespan shutdown may take.
    pub shutdown_timeout: Duration,
}

/// The loop's objects the callables use.
pub(crate) struct LoopCtx {
    pub(crate) loop_: Py<PyAny>,
    create_future: Py<PyAny>,
    /// `asyncio.Task`, and its keywords: on Python 3.12+ a request's task starts eagerly, so
    /// an application that never waits (most responses) runs to its end inside the callback
    /// that started it, without a trip through the loop's queue.
    task: Py<PyAny>,
    task_kw: Py<PyDict>,
    /// An awaitable giving `None`, shared by every `send()` that did not have to wait.
    pub(crate) done_none: Py<PyAny>,
    /// Responses ended in the current pass, and `loop.call_soon(flush)`'s two parts.
    outbox: Arc<outbox::Outbox>,
    call_soon: Py<PyAny>,
    flush: Py<PyAny>,
}

impl LoopCtx {
    pub(crate) fn create_future<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.create_future.bind(py).call0()
    }

    fn new(py: Python<'_>, lp: Bound<'_, PyAny>) -> PyResult<LoopCtx> {
        let asyncio = py.import("asyncio")?;
        let task_kw = PyDict::new(py);
        task_kw.set_item("loop", &lp)?;
        let version: (u32, u32) = py
            .import("sys")?
            .getattr("version_info")?
            .extract::<(u32, u32, u32, String, u32)>()
            .map(|v| (v.0, v.1))?;
        if version >= (3, 12) {
            task_kw.set_item("eager_start", true)?;
        }
        let outbox = Arc::new(outbox::Outbox::default());
        let flush = outbox::Flush {
            outbox: outbox.clone(),
        };
        Ok(LoopCtx {
            call_soon: lp.getattr("call_soon")?.unbind(),
            flush: Bound::new(py, flush)?.into_any().unbind(),
            outbox,
            create_future: lp.getattr("create_future")?.unbind(),
            loop_: lp.unbind(),
            task: asyncio.getattr("Task")?.unbind(),
            task_kw: task_kw.unbind(),
            done_none: Bound::new(py, Done::none())?.into_any().unbind(),
        })
    }

    /// Leaves a response's last batch for the end of the loop's pass (see [`outbox`]), with
    /// the response's responder.
    pub(crate) fn defer(
        &self,
        py: Python<'_>,
        call: &Arc<Call>,
        batch: ferrocgi_server::Reserved,
        resp: Responder,
    ) -> PyResult<()> {
        if self.outbox.put(call, batch, resp) {
            if let Err(e) = self.call_soon.bind(py).call1((self.flush.bind(py),)) {
                // A loop that takes no callback (closing) would strand the batch.
                self.outbox.flush_now();
                return Err(e);
            }
        }
        Ok(())
    }

    /// A task running `coro` (started at once on Python 3.12+).
    fn start_task<'py>(
        &self,
        py: Python<'py>,
        coro: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.task
            .bind(py)
            .call((coro,), Some(self.task_kw.bind(py)))
    }
}

/// The [`Handler`] side: async, on the runtime; Python runs on the loop's thread.
pub struct AsgiHandler {
    bridge: Arc<Bridge>,
    settings: Arc<HostSettings>,
}

impl Drop for AsgiHandler {
    fn drop(&mut self) {
        // The server stopped (its requests are done): lifespan shutdown, then the loop ends.
        self.bridge.push(Event::Stop);
    }
}

/// The loop's thread, to wait for after the server stopped.
#[derive(Clone)]
pub struct LoopThread(Arc<Mutex<Option<JoinHandle<()>>>>);

impl LoopThread {
    /// Waits up to `timeout` for the loop to end (lifespan shutdown included); false if it
    /// still runs. Call without holding the GIL.
    pub fn wait_ended(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(h) = slot.as_ref() else { return true };
        while !h.is_finished() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(h) = slot.take() {
            let _ = h.join();
        }
        true
    }
}

/// Starts the loop thread for `app` and waits for its lifespan startup; an error carries the
/// message to stop with. Call without holding the GIL.
pub fn spawn(
    app: Py<PyAny>,
    settings: HostSettings,
    conf: LoopConfig,
) -> std::io::Result<(AsgiHandler, LoopThread)> {
    let bridge = Bridge::new()?;
    let settings = Arc::new(settings);
    let (tx, rx) = std::sync::mpsc::channel();
    let (b, s) = (bridge.clone(), settings.clone());
    let thread = std::thread::Builder::new()
        .name("asgi-loop".into())
        .spawn(move || Python::attach(|py| run_loop(py, app, s, b, conf, tx)))?;
    let started = rx
        .recv()
        .unwrap_or_else(|_| Err("the event loop's thread ended during start-up".into()));
    let handler = AsgiHandler { bridge, settings };
    let waiter = LoopThread(Arc::new(Mutex::new(Some(thread))));
    match started {
        Ok(()) => Ok((handler, waiter)),
        Err(msg) => {
            drop(handler);
            waiter.wait_ended(Duration::from_secs(5));
            Err(std::io::Error::other(msg))
        }
    }
}

/// The event loop `conf` asks for, and its name for the log.
fn new_loop<'py>(
    py: Python<'py>,
    kind: LoopKind,
) -> Result<(Bound<'py, PyAny>, &'static str), String> {
    let asyncio = py.import("asyncio").map_err(|e| e.to_string())?;
    if kind != LoopKind::Asyncio {
        match py.import("uvloop") {
            Ok(uvloop) => {
                let l = uvloop
                    .call_method0("new_event_loop")
                    .map_err(|e| e.to_string())?;
                return Ok((l, "uvloop"));
            }
            Err(e) if kind == LoopKind::Uvloop => {
                return Err(format!("loop=uvloop, but uvloop cannot be imported ({e}); install it with pip install uvloop, or use loop=auto"));
            }
            Err(_) => {}
        }
    }
    let l = asyncio
        .call_method0("new_event_loop")
        .map_err(|e| e.to_string())?;
    Ok((l, "asyncio"))
}

/// The loop, its context, the scope keys every request shares, and the lifespan state.
struct Setup {
    ctx: Arc<LoopCtx>,
    base: Py<PyDict>,
    state: Option<Py<PyDict>>,
    running: Option<lifespan::Running>,
}

fn setup(
    py: Python<'_>,
    app: &Bound<'_, PyAny>,
    settings: &HostSettings,
    conf: &LoopConfig,
) -> Result<Setup, String> {
    let (lp, name) = new_loop(py, conf.kind)?;
    let py_err = |e: PyErr| e.to_string();
    py.import("asyncio")
        .and_then(|a| a.call_method1("set_event_loop", (&lp,)))
        .map_err(py_err)?;
    let ctx = Arc::new(LoopCtx::new(py, lp).map_err(py_err)?);
    info!("ASGI application on an {name} event loop");
    let state = PyDict::new(py);
    let running = lifespan::startup(py, &ctx, app, conf.lifespan, &state)?;
    let base = base_scope(py, settings).map_err(py_err)?;
    Ok(Setup {
        state: running.as_ref().map(|_| state.unbind()),
        ctx,
        base: base.unbind(),
        running,
    })
}

/// The keys every `http` scope has the same. `extensions["ferrocgi.server"]` is the WSGI
/// environ's `ferrocgi.server` mapping: how the server runs.
fn base_scope<'py>(py: Python<'py>, s: &HostSettings) -> PyResult<Bound<'py, PyDict>> {
    let scope = PyDict::new(py);
    scope.set_item("type", "http")?;
    let asgi = PyDict::new(py);
    asgi.set_item("version", "3.0")?;
    asgi.set_item("spec_version", "2.4")?;
    scope.set_item("asgi", asgi)?;
    let extensions = PyDict::new(py);
    extensions.set_item("http.response.pathsend", PyDict::new(py))?;
    extensions.set_item("ferrocgi.server", s.server.to_mapping(py)?)?;
    scope.set_item("extensions", extensions)?;
    Ok(scope)
}

fn run_loop(
    py: Python<'_>,
    app: Py<PyAny>,
    settings: Arc<HostSettings>,
    bridge: Arc<Bridge>,
    conf: LoopConfig,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) {
    let setup = match setup(py, app.bind(py), &settings, &conf) {
        Ok(s) => s,
        Err(msg) => {
            let _ = ready.send(Err(msg));
            return;
        }
    };
    let lp = setup.ctx.loop_.bind(py).clone();
    let drain = Drain {
        ctx: setup.ctx.clone(),
        bridge: bridge.clone(),
        app,
        settings,
        base: setup.base,
        state: setup.state,
    };
    let served = Bound::new(py, drain)
        .and_then(|d| lp.call_method1("add_reader", (bridge.fd(), d)))
        .map(drop);
    let _ = ready.send(served.as_ref().map(drop).map_err(ToString::to_string));
    if served.is_err() {
        return;
    }
    if let Err(e) = lp.call_method0("run_forever") {
        error!("the event loop stopped with an error: {e}");
    }
    if let Some(running) = setup.running {
        running.shutdown(py, conf.shutdown_timeout);
    }
    if let Err(e) = close_loop(py, &lp, bridge.fd()) {
        warn!("closing the event loop: {e}");
    }
}

/// Cancels what still runs on the loop (the server waited for every request already), then
/// closes it.
fn close_loop(py: Python<'_>, lp: &Bound<'_, PyAny>, fd: i32) -> PyResult<()> {
    lp.call_method1("remove_reader", (fd,))?;
    let asyncio = py.import("asyncio")?;
    let tasks = asyncio.call_method1("all_tasks", (lp,))?;
    if tasks.len()? > 0 {
        for t in tasks.try_iter()? {
            t?.call_method0("cancel")?;
        }
        let kw = PyDict::new(py);
        kw.set_item("return_exceptions", true)?;
        let all = asyncio.getattr("gather")?.call(
            pyo3::types::PyTuple::new(py, tasks.try_iter()?.collect::<PyResult<Vec<_>>>()?)?,
            Some(&kw),
        )?;
        lp.call_method1("run_until_complete", (all,))?;
    }
    lp.call_method1(
        "run_until_complete",
        (lp.call_method0("shutdown_asyncgens")?,),
    )?;
    lp.call_method0("close")?;
    Ok(())
}

/// The loop's reader callback: empties the bridge.
#[pyclass(module = "ferrocgi._ferrocgi", name = "AsgiDrain", frozen)]
struct Drain {
    ctx: Arc<LoopCtx>,
    bridge: Arc<Bridge>,
    app: Py<PyAny>,
    settings: Arc<HostSettings>,
    base: Py<PyDict>,
    state: Option<Py<PyDict>>,
}

#[pymethods]
impl Drain {
    fn __call__(&self, py: Python<'_>) {
        crate::response::release_deferred(py);
        self.bridge.drain(|ev| {
            let r = match ev {
                Event::Start(nc) => self.start(py, *nc),
                Event::Body(call) | Event::Disconnect(call) => call::wake_receivers(py, &call),
                Event::Sent(call, resp, outcome) => call::on_sent(py, &call, resp, outcome),
                Event::Stop => self.ctx.loop_.bind(py).call_method0("stop").map(drop),
            };
            if let Err(e) = r {
                error!("ASGI event: {e}");
            }
        });
    }
}

impl Drain {
    fn start(&self, py: Python<'_>, nc: NewCall) -> PyResult<()> {
        let call = nc.call;
        let state = self.state.as_ref().map(|s| s.bind(py));
        let task = scope::build(
            py,
            self.base.bind(py),
            &self.settings,
            nc.protocol,
            &nc.params,
            state,
        )
        .and_then(|scope| {
            let receive = Receive {
                call: call.clone(),
                ctx: self.ctx.clone(),
            };
            let send = Send {
                call: call.clone(),
                ctx: self.ctx.clone(),
            };
            let coro = self.app.bind(py).call1((scope, receive, send))?;
            self.ctx.start_task(py, coro)
        });
        let done = TaskDone { call: call.clone() };
        match task {
            Ok(task) => {
                let running = !task.call_method0(pyo3::intern!(py, "done"))?.is_truthy()?;
                task.call_method1(pyo3::intern!(py, "add_done_callback"), (done,))?;
                let timers = if running {
                    let s = &self.settings;
                    let lp = self.ctx.loop_.bind(py);
                    timers::arm(lp, &call, s.slow_request, s.request_timeout)?
                } else {
                    Vec::new()
                };
                let mut st = call.lock();
                st.task = Some(task.unbind());
                st.timers = timers;
                Ok(())
            }
            Err(e) => done.failed(py, &e),
        }
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

/// Tells the loop when the handler's future is dropped with its connection.
struct Watch(Arc<Call>);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.disconnect();
    }
}

/// Request bodies declared up to this many bytes reach the application as one message.
const GATHER_MAX: u64 = 64 * 1024;

impl AsgiHandler {
    /// Feeds the body after the first chunk, one chunk ahead of the application at most.
    async fn pump(&self, call: &Arc<Call>, body: &mut Body, mut total: u64) {
        let declared = body.declared_length();
        loop {
            let (chunk, more) = match body.chunk().await {
                Ok(Some(b)) => {
                    total += b.len() as u64;
                    if self.settings.max_body.is_some_and(|m| total > m) {
                        warn!(max_body = ?self.settings.max_body, "request body passed max_body while streaming; the application is told the client went away");
                        call.disconnect();
                        return;
                    }
                    (b, declared != Some(total))
                }
                Ok(None) => (Bytes::new(), false),
                Err(e) => {
                    info!("request body incomplete: {e}");
                    call.disconnect();
                    return;
                }
            };
            if !call.wait_consumed().await {
                return;
            }
            call.put(chunk, more);
            if !more {
                return;
            }
        }
    }

    /// The first body message's bytes (an empty body needs no wait), and whether more follows.
    /// A body declared no longer than [`GATHER_MAX`] is gathered whole into that one message:
    /// the front end sends such a body at once, and each further message would cost a round
    /// trip between the runtime and the loop.
    async fn first_chunk(body: &mut Body) -> Result<(Bytes, bool), ferrocgi_server::StreamError> {
        let declared = body.declared_length();
        if declared == Some(0) {
            return Ok((Bytes::new(), false));
        }
        let Some(first) = body.chunk().await? else {
            return Ok((Bytes::new(), false));
        };
        let Some(len) = declared.filter(|&n| n <= GATHER_MAX && n > first.len() as u64) else {
            let more = declared != Some(first.len() as u64);
            return Ok((first, more));
        };
        let mut whole = bytes::BytesMut::with_capacity(len as usize);
        whole.extend_from_slice(&first);
        // A body longer than declared ends the loop too; `more` then says so and the rest
        // streams as before.
        while (whole.len() as u64) < len {
            match body.chunk().await? {
                Some(b) => whole.extend_from_slice(&b),
                None => break,
            }
        }
        let more = declared != Some(whole.len() as u64);
        Ok((whole.freeze(), more))
    }
}

impl Handler for AsgiHandler {
    async fn handle(&self, req: Request, resp: Responder) {
        let Request {
            protocol,
            params,
            mut body,
            peer,
        } = req;
        if let (Some(max), Some(n)) = (self.settings.max_body, body.declared_length()) {
            if n > max {
                warn!(peer = %peer, size = n, max_body = max, "request body too large; answered 413");
                let head = plain(413, "Content Too Large");
                return answer(resp, head, b"request body too large\n").await;
            }
        }
        let (first, more) = match Self::first_chunk(&mut body).await {
            Ok(c) => c,
            Err(e) => {
                info!(peer = %peer, "request body incomplete: {e}");
                return;
            }
        };
        let abort = resp.abort_signal();
        let uri = String::from_utf8_lossy(params.get(b"REQUEST_URI").unwrap_or(b"")).into_owned();
        let total = first.len() as u64;
        let call = Call::new(self.bridge.clone(), resp, first, more, uri);
        let _watch = Watch(call.clone());
        self.bridge.push(Event::Start(Box::new(NewCall {
            call: call.clone(),
            protocol,
            params,
        })));
        if more {
            self.pump(&call, &mut body, total).await;
        }
        tokio::select! {
            () = abort.wait() => call.disconnect(),
            () = call.finished.notified() => {}
        }
    }
}

/// Whether `app` is an ASGI application: its call is a coroutine function (an `async def`
/// function, or an object whose `__call__` is one: Django's `ASGIHandler`, Starlette).
pub fn is_asgi(py: Python<'_>, app: &Bound<'_, PyAny>) -> PyResult<bool> {
    let inspect = py.import("inspect")?;
    let check = |o: &Bound<'_, PyAny>| -> PyResult<bool> {
        inspect
            .call_method1("iscoroutinefunction", (o,))?
            .is_truthy()
    };
    if check(app)? {
        return Ok(true);
    }
    match app.getattr("__call__") {
        Ok(call) => check(&call),
        Err(_) => Ok(false),
    }
}
