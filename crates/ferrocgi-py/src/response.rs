//! `start_response`, the legacy `write()` callable, and sending the response from a Python
//! thread (the GIL is released for every blocking send).

use bytes::Bytes;
use ferrocgi_server::{Batch, Responder, ResponseHead, StreamError, TrySend};
use pyo3::exceptions::{PyAssertionError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use std::sync::{Arc, Mutex};

pyo3::create_exception!(
    _ferrocgi,
    ClientDisconnected,
    pyo3::exceptions::PyOSError,
    "The web server aborted the request or its connection was lost."
);

/// One response in the making.
pub struct ResponseState {
    /// Set by start_response; sent with the first non-empty body chunk (or at the end).
    pub head: Option<ResponseHead>,
    /// True once the head went to the front end: start_response can no longer change it.
    pub sent: bool,
    /// `None` once finished or failed.
    pub responder: Option<Responder>,
}

/// Shared between `start_response`, `write()` and the host's iteration loop. Only the Python
/// thread running the request touches it, so the lock is never contended.
pub type ResponseCell = Arc<Mutex<ResponseState>>;

/// The response state, even if a thread panicked holding it.
pub fn lock(s: &ResponseCell) -> std::sync::MutexGuard<'_, ResponseState> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// Body chunks at least this long are sent without a copy (see [`chunk`]).
pub const ZERO_COPY_MIN: usize = 8 * 1024;

/// A `bytes` object's buffer, shared with the connection loop instead of copied (`bytes` are
/// immutable). The loop drops it without the GIL, so the reference goes to [`DEFERRED`] and a
/// Python thread releases it with the GIL ([`release_deferred`], before each request).
struct PyBuf {
    obj: std::mem::ManuallyDrop<Py<PyBytes>>,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the buffer of a `bytes` object never changes and lives as long as the object, which
// `obj` keeps alive; the object itself is only released with the GIL (see `Drop`).
unsafe impl Send for PyBuf {}
// SAFETY: as for `Send`: shared access only reads the immutable buffer.
unsafe impl Sync for PyBuf {}

impl AsRef<[u8]> for PyBuf {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: see `unsafe impl Send`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for PyBuf {
    fn drop(&mut self) {
        // SAFETY: `obj` is not used again.
        let obj = unsafe { std::mem::ManuallyDrop::take(&mut self.obj) };
        DEFERRED.lock().unwrap_or_else(|e| e.into_inner()).push(obj);
    }
}

/// `bytes` objects whose buffers the connection loops are done with.
static DEFERRED: Mutex<Vec<Py<PyBytes>>> = Mutex::new(Vec::new());

/// Releases the `bytes` objects the connection loops are done with.
pub fn release_deferred(_py: Python<'_>) {
    let done = std::mem::take(&mut *DEFERRED.lock().unwrap_or_else(|e| e.into_inner()));
    drop(done); // with the GIL held: each reference is released now
}

/// A body chunk from Python: large ones share the object's buffer, small ones are copied.
pub fn chunk(b: &Bound<'_, PyBytes>) -> Bytes {
    let data = b.as_bytes();
    if data.len() < ZERO_COPY_MIN {
        return Bytes::copy_from_slice(data);
    }
    Bytes::from_owner(PyBuf {
        ptr: data.as_ptr(),
        len: data.len(),
        obj: std::mem::ManuallyDrop::new(b.clone().unbind()),
    })
}

pub(crate) fn stream_err(e: StreamError) -> PyErr {
    ClientDisconnected::new_err(e.to_string())
}

/// Runs `f` on this thread, and lets the connection loops run meanwhile: on a runtime thread
/// (the inline runner, see `host::Threads::Inline`) the runtime first moves to another thread.
/// For code that waits on a loop (a blocking send) or that streams (each chunk must go out as
/// it is made, not when the request returns). Elsewhere `f` just runs.
pub fn run_blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Runs `f`, which waits for the connection loop (a blocking send), without the GIL.
pub fn wait_for_loop<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> T {
    py.detach(|| crate::watchdog::writing(|| run_blocking(f)))
}

/// True when a head can go out with the next body chunk (start_response was called).
pub fn has_head(state: &ResponseCell) -> bool {
    let st = lock(state);
    st.sent || st.head.is_some()
}

/// The Content-Length the application declared, while its head is not sent yet.
pub fn declared_length(state: &ResponseCell) -> Option<u64> {
    let st = lock(state);
    let v = st.head.as_ref()?.get("content-length")?;
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

/// Sends `data` (head first if not yet sent) in one message; the GIL is released only when
/// the connection's queue is full and the send must wait.
pub fn send(py: Python<'_>, state: &ResponseCell, data: Bytes) -> PyResult<()> {
    // A long streamed response releases its earlier chunks as it goes.
    release_deferred(py);
    let sent = (|| {
        let mut st = lock(state);
        let st = &mut *st;
        let Some(resp) = st.responder.as_mut() else {
            return Err(StreamError::Disconnected);
        };
        let head = if st.sent {
            None
        } else {
            let head = st.head.take().ok_or(StreamError::Aborted)?;
            st.sent = true;
            Some(head)
        };
        let batch = Batch {
            head,
            data,
            end: false,
        };
        match resp.try_send(batch)? {
            TrySend::Sent => Ok(None),
            TrySend::Full(batch) => Ok(Some(batch)),
        }
    })();
    let sent = match sent {
        Ok(Some(batch)) => wait_for_loop(py, || {
            let mut st = lock(state);
            match st.responder.as_mut() {
                Some(resp) => resp.blocking_send_batch(batch),
                None => Err(StreamError::Disconnected),
            }
        }),
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    sent.map_err(|e| match e {
        StreamError::Aborted if !lock(state).sent => PyAssertionError::new_err(
            "the application sent body data before calling start_response",
        ),
        e => stream_err(e),
    })
}

/// Validates a status line: three digits, a space, a reason without control characters.
fn parse_status(status: &str) -> PyResult<(u16, String)> {
    let bad = || {
        PyValueError::new_err(format!(
            "invalid status {status:?}: expected three digits, a space and a reason, e.g. '200 OK'"
        ))
    };
    let b = status.as_bytes();
    if b.len() < 4 || !b[..3].iter().all(u8::is_ascii_digit) || b[3] != b' ' {
        return Err(bad());
    }
    if status.chars().any(|c| c.is_control() || c as u32 > 0xff) {
        return Err(bad());
    }
    let code: u16 = status[..3].parse().map_err(|_| bad())?;
    if code < 100 {
        return Err(bad());
    }
    Ok((code, status[4..].to_string()))
}

/// Header names PEP 3333 forbids applications to send: they describe the connection, which is
/// the web server's business.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

pub(crate) fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '!' | '#'
                | '$'
                | '%'
                | '&'
                | '\''
                | '*'
                | '+'
                | '-'
                | '.'
                | '^'
                | '_'
                | '`'
                | '|'
                | '~'
        )
}

pub(crate) fn is_hop_by_hop(n: &str) -> bool {
    // Most names are longer than any of these: skip the comparisons.
    n.len() <= 19 && HOP_BY_HOP.iter().any(|h| n.eq_ignore_ascii_case(h))
}

fn latin1_bytes(s: &str) -> Bytes {
    if s.is_ascii() {
        return Bytes::copy_from_slice(s.as_bytes());
    }
    Bytes::from(s.chars().map(|c| c as u8).collect::<Vec<u8>>())
}

fn parse_headers(headers: &Bound<'_, PyAny>) -> PyResult<Vec<(Bytes, Bytes)>> {
    let list = headers.cast::<PyList>().map_err(|_| {
        PyTypeError::new_err(format!(
            "response headers must be a list of (name, value) tuples, not {}",
            headers
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    let mut out = Vec::with_capacity(list.len());
    for item in list.iter() {
        let t = item.cast::<PyTuple>().map_err(|_| {
            PyTypeError::new_err(format!(
                "response header {item:?} is not a (name, value) tuple"
            ))
        })?;
        if t.len() != 2 {
            return Err(PyTypeError::new_err(format!(
                "response header {t:?} must have exactly two items"
            )));
        }
        let (n, v) = (t.get_item(0)?, t.get_item(1)?);
        let (Ok(n), Ok(v)) = (n.cast::<PyString>(), v.cast::<PyString>()) else {
            return Err(PyTypeError::new_err(format!(
                "response header {t:?}: name and value must be str"
            )));
        };
        let (n, v) = (n.to_cow()?, v.to_cow()?);
        if n.is_empty() || !n.chars().all(is_token_char) {
            return Err(PyValueError::new_err(format!(
                "invalid response header name {n:?}"
            )));
        }
        if is_hop_by_hop(&n) {
            return Err(PyAssertionError::new_err(format!(
                "hop-by-hop header {n:?} is not allowed in a WSGI response (PEP 3333)"
            )));
        }
        let bad_byte = |b: &u8| (b.is_ascii_control() && *b != b'\t') || *b >= 0x7f;
        if v.as_bytes().iter().any(bad_byte)
            && v.chars()
                .any(|c| (c.is_control() && c != '\t') || c as u32 > 0xff)
        {
            return Err(PyValueError::new_err(format!(
                "response header {n:?} has a control or non-latin-1 character in its value"
            )));
        }
        out.push((Bytes::copy_from_slice(n.as_bytes()), latin1_bytes(&v)));
    }
    Ok(out)
}

/// The `start_response` callable handed to the application.
#[pyclass(module = "ferrocgi._ferrocgi", name = "StartResponse", frozen)]
pub struct StartResponse {
    /// The request's response state.
    pub state: ResponseCell,
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__(
        &self,
        py: Python<'_>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<WriteFn>> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        {
            let st = lock(&self.state);
            if let Some(exc) = exc_info {
                if st.sent {
                    // PEP 3333: too late to change the response; re-raise the original error.
                    drop(st);
                    let value = exc.get_item(1)?;
                    return Err(PyErr::from_value(value));
                }
            } else if st.head.is_some() || st.sent {
                return Err(PyAssertionError::new_err(
                    "start_response called a second time without exc_info",
                ));
            }
        }
        let status = status
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err("status must be a str such as '200 OK'"))?;
        let (code, reason) = parse_status(&status.to_cow()?)?;
        let headers = parse_headers(headers)?;
        let mut head = ResponseHead::new(code, reason);
        head.headers = headers;
        lock(&self.state).head = Some(head);
        Py::new(
            py,
            WriteFn {
                state: self.state.clone(),
            },
        )
    }
}

/// The legacy `write(data)` callable returned by `start_response`.
#[pyclass(module = "ferrocgi._ferrocgi", name = "WriteFn", frozen)]
pub struct WriteFn {
    state: ResponseCell,
}

#[pymethods]
impl WriteFn {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let b = data
            .cast::<pyo3::types::PyBytes>()
            .map_err(|_| PyTypeError::new_err("write() takes bytes"))?;
        if b.as_bytes().is_empty() {
            return Ok(());
        }
        // The legacy write() promises the bytes are on their way when it returns.
        run_blocking(|| send(py, &self.state, chunk(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status("200 OK").unwrap(), (200, "OK".into()));
        assert_eq!(
            parse_status("404 Custom reason").unwrap(),
            (404, "Custom reason".into())
        );
        Python::initialize();
        for bad in ["200", "20 OK", "200OK", "abc OK", "200 O\nK", "099 Low"] {
            assert!(parse_status(bad).is_err(), "{bad}");
        }
    }
}
