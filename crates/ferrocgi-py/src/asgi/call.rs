//! One ASGI request: the state the runtime and the loop share, and the `receive` and `send`
//! callables the application awaits.
//!
//! Everything Python here runs on the loop's thread. `receive()` and `send()` answer at once
//! when they can (an awaitable that is already done: no future, no loop iteration); only a
//! `receive()` with no body chunk at hand, or a `send()` that finds the connection's queue
//! full, returns an asyncio future, resolved later by the loop's reader callback.

use super::bridge::{Bridge, Event};
use super::LoopCtx;
use crate::response::{self, is_hop_by_hop, is_token_char, stream_err, ClientDisconnected};
use bytes::Bytes;
use ferrocgi_server::{Batch, Reservation, Responder, ResponseHead, StreamError, TrySend};
use pyo3::exceptions::{PyRuntimeError, PyStopIteration, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;
use tracing::{error, info};

/// A request between the runtime and the loop.
pub(crate) struct Call {
    pub(crate) state: Mutex<CallState>,
    /// The loop took the body chunk: the runtime may put the next.
    pub(crate) consumed: Notify,
    /// The response ended or the application returned: the runtime stops watching.
    pub(crate) finished: Notify,
    pub(crate) bridge: Arc<Bridge>,
    /// Where a send that must wait for room runs.
    pub(crate) rt: tokio::runtime::Handle,
}

/// See [`Call`]. The Python objects are only touched on the loop's thread.
pub(crate) struct CallState {
    /// The next body chunk, not yet given to the application.
    pub(crate) chunk: Option<Bytes>,
    /// More body follows `chunk`.
    pub(crate) more: bool,
    /// The application has had the last chunk.
    pub(crate) body_done: bool,
    /// The front end went away (or the body could not be read whole).
    pub(crate) disconnected: bool,
    /// `None` while a waited send has it, and once the response ended.
    pub(crate) resp: Option<Responder>,
    /// The head of `http.response.start`, sent with the first body message.
    pub(crate) head: Option<ResponseHead>,
    pub(crate) started: bool,
    /// The last body message went out (or the request failed).
    pub(crate) ended: bool,
    pub(crate) app_done: bool,
    pub(crate) recv_waiters: Vec<Py<PyAny>>,
    pub(crate) send_waiter: Option<Py<PyAny>>,
    /// The application's task, kept alive until it is done.
    pub(crate) task: Option<Py<PyAny>>,
    /// `slow_request` / `request_timeout` timers, cancelled when the task ends.
    pub(crate) timers: Vec<Py<PyAny>>,
    /// REQUEST_URI, for log lines.
    pub(crate) uri: String,
}

impl Call {
    pub(crate) fn new(
        bridge: Arc<Bridge>,
        resp: Responder,
        first: Bytes,
        more: bool,
        uri: String,
    ) -> Arc<Call> {
        Arc::new(Call {
            state: Mutex::new(CallState {
                chunk: Some(first),
                more,
                body_done: false,
                disconnected: false,
                resp: Some(resp),
                head: None,
                started: false,
                ended: false,
                app_done: false,
                recv_waiters: Vec::new(),
                send_waiter: None,
                task: None,
                timers: Vec::new(),
                uri,
            }),
            consumed: Notify::new(),
            finished: Notify::new(),
            bridge,
            rt: tokio::runtime::Handle::current(),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, CallState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The runtime side: the front end is gone; tells the loop unless the request is over.
    pub(crate) fn disconnect(self: &Arc<Self>) {
        let mut st = self.lock();
        if st.disconnected || st.app_done {
            return;
        }
        st.disconnected = true;
        drop(st);
        self.bridge.push(Event::Disconnect(self.clone()));
    }

    /// The runtime side: waits until the loop took the chunk; false if the request ended
    /// first (the application no longer reads).
    pub(crate) async fn wait_consumed(&self) -> bool {
        tokio::select! {
            () = self.consumed.notified() => true,
            () = self.finished.notified() => {
                self.finished.notify_one(); // for the next waiter
                false
            }
        }
    }

    /// The runtime side: puts the next chunk and tells the loop.
    pub(crate) fn put(self: &Arc<Self>, chunk: Bytes, more: bool) {
        {
            let mut st = self.lock();
            st.chunk = Some(chunk);
            st.more = more;
        }
        self.bridge.push(Event::Body(self.clone()));
    }
}

/// An awaitable that is already done: `await` gives its value without suspending.
#[pyclass(module = "ferrocgi._ferrocgi", name = "AsgiDone")]
pub struct Done {
    value: Option<Py<PyAny>>,
}

#[pymethods]
impl Done {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self) -> PyResult<()> {
        match self.value.take() {
            Some(v) => Err(PyStopIteration::new_err((v,))),
            None => Err(PyStopIteration::new_err(())),
        }
    }
}

impl Done {
    /// An awaitable that gives `value`.
    pub(crate) fn with(value: Py<PyAny>) -> Done {
        Done { value: Some(value) }
    }

    /// An awaitable that gives `None`; it can be awaited any number of times.
    pub(crate) fn none() -> Done {
        Done { value: None }
    }
}

fn done<'py>(py: Python<'py>, value: Option<Py<PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    Ok(Bound::new(py, Done { value })?.into_any())
}

/// The body message for `chunk`.
fn request_msg<'py>(py: Python<'py>, chunk: &[u8], more: bool) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(pyo3::intern!(py, "type"), pyo3::intern!(py, "http.request"))?;
    d.set_item(pyo3::intern!(py, "body"), PyBytes::new(py, chunk))?;
    d.set_item(pyo3::intern!(py, "more_body"), more)?;
    Ok(d)
}

fn disconnect_msg(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(
        pyo3::intern!(py, "type"),
        pyo3::intern!(py, "http.disconnect"),
    )?;
    Ok(d)
}

/// Takes the pending chunk as a message, telling the runtime it may put the next.
fn take_chunk<'py>(
    py: Python<'py>,
    call: &Call,
    st: &mut CallState,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let Some(chunk) = st.chunk.take() else {
        return Ok(None);
    };
    if !st.more {
        st.body_done = true;
    }
    call.consumed.notify_one();
    request_msg(py, &chunk, st.more).map(Some)
}

/// Whether `receive()` now answers `http.disconnect`: the front end went away, or the body
/// was read and the response is over.
fn gone(st: &CallState) -> bool {
    st.chunk.is_none() && (st.disconnected || (st.body_done && st.ended))
}

/// Gives a future its result, unless it is done already (cancelled by its awaiter).
pub(crate) fn resolve(py: Python<'_>, fut: &Py<PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
    let fut = fut.bind(py);
    if !fut.call_method0(pyo3::intern!(py, "done"))?.is_truthy()? {
        fut.call_method1(pyo3::intern!(py, "set_result"), (value,))?;
    }
    Ok(())
}

/// The loop side, after an event: answers waiting `receive()` calls that can be answered.
pub(crate) fn wake_receivers(py: Python<'_>, call: &Call) -> PyResult<()> {
    let mut st = call.lock();
    if st.recv_waiters.is_empty() {
        return Ok(());
    }
    if st.chunk.is_some() {
        let fut = st.recv_waiters.remove(0);
        if let Some(msg) = take_chunk(py, call, &mut st)? {
            resolve(py, &fut, msg.as_any())?;
        }
    }
    if gone(&st) {
        let waiters = std::mem::take(&mut st.recv_waiters);
        drop(st);
        let msg = disconnect_msg(py)?;
        for fut in &waiters {
            resolve(py, fut, msg.as_any())?;
        }
    }
    Ok(())
}

/// The `receive` callable.
#[pyclass(module = "ferrocgi._ferrocgi", name = "AsgiReceive", frozen)]
pub struct Receive {
    pub(crate) call: Arc<Call>,
    pub(crate) ctx: Arc<LoopCtx>,
}

#[pymethods]
impl Receive {
    fn __call__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let mut st = self.call.lock();
        if let Some(msg) = take_chunk(py, &self.call, &mut st)? {
            return done(py, Some(msg.into_any().unbind()));
        }
        if gone(&st) {
            return done(py, Some(disconnect_msg(py)?.into_any().unbind()));
        }
        let fut = self.ctx.create_future(py)?;
        st.recv_waiters.push(fut.clone().unbind());
        Ok(fut)
    }
}

/// The `send` callable.
#[pyclass(module = "ferrocgi._ferrocgi", name = "AsgiSend", frozen)]
pub struct Send {
    pub(crate) call: Arc<Call>,
    pub(crate) ctx: Arc<LoopCtx>,
}

fn message_type(msg: &Bound<'_, PyDict>) -> PyResult<String> {
    let py = msg.py();
    let t = msg
        .get_item(pyo3::intern!(py, "type"))?
        .ok_or_else(|| PyValueError::new_err("ASGI message without a 'type' key"))?;
    t.extract()
        .map_err(|_| PyTypeError::new_err("ASGI message 'type' must be a str"))
}

fn as_dict<'py>(msg: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    match msg.cast::<PyDict>() {
        Ok(d) => Ok(d.clone()),
        Err(_) => PyDict::from_sequence(msg).or_else(|_| {
            let d = PyDict::new(msg.py());
            d.update(msg.cast()?)?;
            Ok(d)
        }),
    }
}

fn header_bytes<'a>(v: &'a Bound<'_, PyAny>, what: &str) -> PyResult<&'a [u8]> {
    v.cast::<PyBytes>().map(|b| b.as_bytes()).map_err(|_| {
        PyTypeError::new_err(format!(
            "ASGI response header {what} must be bytes, not {}",
            v.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })
}

fn parse_header(item: &Bound<'_, PyAny>) -> PyResult<(Bytes, Bytes)> {
    let mut it = item.try_iter()?;
    let (Some(n), Some(v), None) = (it.next(), it.next(), it.next()) else {
        return Err(PyValueError::new_err(format!(
            "ASGI response header {item:?} must be a pair [name, value]"
        )));
    };
    let (n, v) = (n?, v?);
    let (n, v) = (header_bytes(&n, "name")?, header_bytes(&v, "value")?);
    let name = std::str::from_utf8(n).unwrap_or("");
    if name.is_empty() || !name.chars().all(is_token_char) {
        return Err(PyValueError::new_err(format!(
            "invalid ASGI response header name {:?}",
            String::from_utf8_lossy(n)
        )));
    }
    if is_hop_by_hop(name) {
        return Err(PyValueError::new_err(format!(
            "hop-by-hop header {name:?} is not allowed in a response: the web server owns the connection"
        )));
    }
    if v.iter()
        .any(|&b| (b.is_ascii_control() && b != b'\t') || b == 0x7f)
    {
        return Err(PyValueError::new_err(format!(
            "ASGI response header {name:?} has a control character in its value"
        )));
    }
    Ok((Bytes::copy_from_slice(n), Bytes::copy_from_slice(v)))
}

fn response_head(msg: &Bound<'_, PyDict>) -> PyResult<ResponseHead> {
    let py = msg.py();
    let status: u16 = msg
        .get_item(pyo3::intern!(py, "status"))?
        .ok_or_else(|| PyValueError::new_err("http.response.start without a 'status'"))?
        .extract()
        .map_err(|_| PyTypeError::new_err("http.response.start 'status' must be an int"))?;
    if !(100..=999).contains(&status) {
        return Err(PyValueError::new_err(format!(
            "http.response.start has an invalid status {status}"
        )));
    }
    let mut head = ResponseHead::new(status, ferrocgi_proto::reason(status));
    if let Some(headers) = msg.get_item(pyo3::intern!(py, "headers"))? {
        for item in headers.try_iter()? {
            head.headers.push(parse_header(&item?)?);
        }
    }
    Ok(head)
}

fn body_of(msg: &Bound<'_, PyDict>) -> PyResult<(Bytes, bool)> {
    let py = msg.py();
    let data = match msg.get_item(pyo3::intern!(py, "body"))? {
        None => Bytes::new(),
        Some(b) => match b.cast::<PyBytes>() {
            Ok(b) => response::chunk(b),
            Err(_) => {
                return Err(PyTypeError::new_err(format!(
                    "http.response.body 'body' must be bytes, not {}",
                    b.get_type().name()?
                )))
            }
        },
    };
    let more = match msg.get_item(pyo3::intern!(py, "more_body"))? {
        None => false,
        Some(m) => m.is_truthy()?,
    };
    Ok((data, more))
}

impl Send {
    fn start(&self, py: Python<'_>, msg: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        let head = response_head(msg)?;
        let mut st = self.call.lock();
        if st.started {
            return Err(PyRuntimeError::new_err(
                "http.response.start sent twice for one request",
            ));
        }
        st.started = true;
        st.head = Some(head);
        Ok(self.ctx.done_none.clone_ref(py))
    }

    /// Refuses a body message the response cannot take now.
    fn check_body(st: &CallState, kind: &str) -> PyResult<()> {
        if !st.started {
            return Err(PyRuntimeError::new_err(format!(
                "{kind} sent before http.response.start"
            )));
        }
        if st.ended {
            return Err(PyRuntimeError::new_err(format!(
                "{kind} sent after the response ended (more_body was false)"
            )));
        }
        if st.disconnected {
            return Err(ClientDisconnected::new_err(
                StreamError::Disconnected.to_string(),
            ));
        }
        if st.resp.is_none() {
            return Err(PyRuntimeError::new_err(
                "send() called again before the previous send() was awaited",
            ));
        }
        Ok(())
    }

    fn body<'py>(&self, py: Python<'py>, msg: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>> {
        let (data, more) = body_of(msg)?;
        let mut st = self.call.lock();
        Self::check_body(&st, "http.response.body")?;
        let batch = Batch {
            head: st.head.take(),
            data,
            end: !more,
        };
        let resp = st.resp.as_mut().expect("checked above");
        if more {
            return match resp.try_send(batch) {
                Ok(TrySend::Sent) => Ok(self.ctx.done_none.bind(py).clone()),
                Ok(TrySend::Full(batch)) => self.wait_for_room(py, st, batch),
                Err(e) => Err(lost(&mut st, e)),
            };
        }
        // The response's last batch: room is taken now, the batch waits in the outbox for the
        // end of the loop's pass.
        match resp.try_reserve(batch) {
            Ok(Reservation::Reserved(batch, outcome)) => {
                st.disconnected |= outcome.is_err();
                st.ended = true;
                let resp = st.resp.take().expect("checked above");
                drop(st);
                self.ctx.defer(py, &self.call, batch, resp)?;
                outcome.map_err(stream_err)?;
                Ok(self.ctx.done_none.bind(py).clone())
            }
            Ok(Reservation::Full(batch)) => self.wait_for_room(py, st, batch),
            Err(e) => Err(lost(&mut st, e)),
        }
    }

    /// The connection's queue is full: a runtime task waits for room while the application
    /// awaits a future.
    fn wait_for_room<'py>(
        &self,
        py: Python<'py>,
        mut st: MutexGuard<'_, CallState>,
        batch: Batch,
    ) -> PyResult<Bound<'py, PyAny>> {
        let resp = st.resp.take().expect("checked by the caller");
        let fut = self.ctx.create_future(py)?;
        st.send_waiter = Some(fut.clone().unbind());
        drop(st);
        send_later(&self.call, resp, batch);
        Ok(fut)
    }

    /// `http.response.pathsend`: the file is opened here (an error is the application's), then
    /// read and sent by a runtime task; `send()` is done when the last byte is queued.
    fn pathsend<'py>(
        &self,
        py: Python<'py>,
        msg: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let path: std::path::PathBuf = msg
            .get_item(pyo3::intern!(py, "path"))?
            .ok_or_else(|| PyValueError::new_err("http.response.pathsend without a 'path'"))?
            .extract()?;
        if !path.is_absolute() {
            return Err(PyValueError::new_err(format!(
                "http.response.pathsend path {path:?} must be absolute"
            )));
        }
        let mut st = self.call.lock();
        Self::check_body(&st, "http.response.pathsend")?;
        let file = std::fs::File::open(&path)?;
        let head = st.head.take();
        let resp = st.resp.take().expect("checked above");
        let fut = self.ctx.create_future(py)?;
        st.send_waiter = Some(fut.clone().unbind());
        drop(st);
        let call = self.call.clone();
        self.call.rt.spawn(async move {
            let (resp, outcome) = send_file(resp, head, file).await;
            call.bridge.push(Event::Sent(call.clone(), resp, outcome));
        });
        Ok(fut)
    }
}

/// Pieces a file is read and sent in.
const FILE_CHUNK: usize = 256 * 1024;

/// Sends the head (if not sent yet) and the file's bytes, then the response's end.
async fn send_file(
    mut resp: Responder,
    mut head: Option<ResponseHead>,
    file: std::fs::File,
) -> (Responder, Result<(), StreamError>) {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::from_std(file);
    loop {
        let mut buf = bytes::BytesMut::with_capacity(FILE_CHUNK);
        let end = match file.read_buf(&mut buf).await {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => {
                error!("http.response.pathsend: reading the file failed: {e}");
                return (resp, Err(StreamError::Disconnected));
            }
        };
        let batch = Batch {
            head: head.take(),
            data: buf.freeze(),
            end,
        };
        if let Err(e) = resp.send_batch(batch).await {
            return (resp, Err(e));
        }
        if end {
            return (resp, Ok(()));
        }
    }
}

/// The connection is gone: the request hears so, and so does the application.
fn lost(st: &mut CallState, e: StreamError) -> PyErr {
    st.disconnected = true;
    stream_err(e)
}

/// A send that found the connection's queue full: a task waits for room, then the loop hears
/// of it ([`Event::Sent`]).
fn send_later(call: &Arc<Call>, mut resp: Responder, batch: Batch) {
    let call = call.clone();
    let rt = call.rt.clone();
    rt.spawn(async move {
        let outcome = resp.send_batch(batch).await;
        call.bridge.push(Event::Sent(call.clone(), resp, outcome));
    });
}

/// The response is complete: the responder goes (the front end has its end), waiting
/// `receive()` calls hear `http.disconnect`, the runtime stops watching.
fn end_response(call: &Call, st: &mut CallState) {
    st.ended = true;
    st.resp = None;
    call.finished.notify_one();
}

/// The loop side of [`Event::Sent`].
pub(crate) fn on_sent(
    py: Python<'_>,
    call: &Call,
    resp: Responder,
    outcome: Result<(), StreamError>,
) -> PyResult<()> {
    let mut st = call.lock();
    let fut = st.send_waiter.take();
    match outcome {
        Ok(()) if resp.is_finished() => end_response(call, &mut st),
        Ok(()) => st.resp = Some(resp),
        Err(_) => st.disconnected = true,
    }
    if st.app_done && !st.ended {
        // The application returned while its last send waited: nothing more will come.
        st.ended = true;
        st.resp = None;
    }
    drop(st);
    if let Some(fut) = fut {
        let fut = fut.bind(py);
        if !fut.call_method0(pyo3::intern!(py, "done"))?.is_truthy()? {
            match outcome {
                Ok(()) => fut.call_method1(pyo3::intern!(py, "set_result"), (py.None(),))?,
                Err(e) => fut.call_method1(
                    pyo3::intern!(py, "set_exception"),
                    (stream_err(e).into_value(py),),
                )?,
            };
        }
    }
    wake_receivers(py, call)
}

#[pymethods]
impl Send {
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        message: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let msg = as_dict(message)?;
        match message_type(&msg)?.as_str() {
            "http.response.start" => Ok(self.start(py, &msg)?.into_bound(py)),
            "http.response.body" => {
                let r = self.body(py, &msg);
                wake_receivers(py, &self.call)?;
                r
            }
            "http.response.pathsend" => self.pathsend(py, &msg),
            other => Err(PyValueError::new_err(format!(
                "unexpected ASGI message type {other:?} for an http request"
            ))),
        }
    }
}

/// Called when the application's task is done: logs its error, and ends a response it left
/// unfinished (a 500 when nothing was sent yet).
#[pyclass(module = "ferrocgi._ferrocgi", name = "AsgiTaskDone", frozen)]
pub struct TaskDone {
    pub(crate) call: Arc<Call>,
}

fn task_error(py: Python<'_>, task: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    if task
        .call_method0(pyo3::intern!(py, "cancelled"))?
        .is_truthy()?
    {
        return Ok(Some("the request's task was cancelled".into()));
    }
    let exc = task.call_method0(pyo3::intern!(py, "exception"))?;
    if exc.is_none() {
        return Ok(None);
    }
    let tb = py.import("traceback")?.call_method1(
        "format_exception",
        (exc.get_type(), &exc, exc.getattr("__traceback__")?),
    )?;
    let text: Vec<String> = tb.extract()?;
    Ok(Some(text.concat()))
}

#[pymethods]
impl TaskDone {
    fn __call__(&self, py: Python<'_>, task: &Bound<'_, PyAny>) -> PyResult<()> {
        let err = task_error(py, task)?;
        self.finish(py, err)
    }
}

impl TaskDone {
    /// The application could not even be started for the request (its call raised).
    pub(crate) fn failed(&self, py: Python<'_>, e: &PyErr) -> PyResult<()> {
        let tb = e
            .traceback(py)
            .and_then(|t| t.format().ok())
            .unwrap_or_default();
        self.finish(py, Some(format!("{tb}{e}")))
    }

    fn finish(&self, py: Python<'_>, err: Option<String>) -> PyResult<()> {
        let mut st = self.call.lock();
        st.app_done = true;
        st.task = None;
        super::timers::disarm(py, std::mem::take(&mut st.timers));
        let uri = std::mem::take(&mut st.uri);
        let disconnected = st.disconnected;
        if let Some(tb) = &err {
            if disconnected && tb.contains("ClientDisconnected") {
                info!(uri, "the web server went away during the response");
            } else {
                error!(uri, "the application raised:\n{}", tb.trim_end());
            }
        }
        // A response that ended through the outbox stops the runtime's watch as it is handed
        // over; waking the runtime's thread for it here would come first, for nothing.
        let ended_before = st.ended;
        if !st.ended {
            if let Some(mut resp) = st.resp.take() {
                let sent_head = st.started && st.head.is_none();
                if !sent_head && !disconnected {
                    if err.is_none() {
                        error!(
                            uri,
                            "the application returned without completing its response; answered 500"
                        );
                    }
                    let _ = resp.try_send(internal_error());
                } else if err.is_none() && !disconnected {
                    error!(
                        uri,
                        "the application returned before its last body message (more_body); the response is cut short"
                    );
                }
                // Dropped unfinished: the front end is told the response is broken.
                drop(resp);
            }
            if st.send_waiter.is_none() {
                st.ended = true;
            }
        }
        if !ended_before {
            self.call.finished.notify_one();
        }
        let waiters = std::mem::take(&mut st.recv_waiters);
        drop(st);
        for fut in waiters {
            let _ = fut.bind(py).call_method0(pyo3::intern!(py, "cancel"));
        }
        Ok(())
    }
}

fn internal_error() -> Batch {
    Batch {
        head: Some(
            ResponseHead::new(500, "Internal Server Error")
                .header("Content-Type", "text/plain; charset=utf-8"),
        ),
        data: Bytes::from_static(b"Internal Server Error\n"),
        end: true,
    }
}
