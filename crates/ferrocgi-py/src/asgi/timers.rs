//! `slow_request` and `request_timeout` for ASGI requests: timers on the loop (`call_later`),
//! cancelled when the request's task ends. Past `slow_request` the task's stack is logged once;
//! past `request_timeout` it is logged and the task is cancelled (the client gets a 500 if
//! nothing was sent yet). A task that ignores its cancellation keeps running, but holds only
//! itself: the loop and every other request go on.

use super::call::Call;
use pyo3::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, warn};

#[derive(Clone, Copy)]
enum Kind {
    Slow,
    Timeout,
}

/// The callback of one timer.
#[pyclass(module = "ferrocgi._ferrocgi", name = "AsgiTimer", frozen)]
struct Timer {
    call: Arc<Call>,
    kind: Kind,
    after: Duration,
}

/// The task's stack, as `Task.print_stack` writes it.
fn stack_of(py: Python<'_>, task: &Bound<'_, PyAny>) -> String {
    let text = || -> PyResult<String> {
        let buf = py.import("io")?.call_method0("StringIO")?;
        let kw = pyo3::types::PyDict::new(py);
        kw.set_item("file", &buf)?;
        task.call_method("print_stack", (), Some(&kw))?;
        buf.call_method0("getvalue")?.extract()
    };
    text().unwrap_or_else(|e| format!("(no stack: {e})"))
}

#[pymethods]
impl Timer {
    fn __call__(&self, py: Python<'_>) {
        let (task, uri) = {
            let st = self.call.lock();
            (st.task.as_ref().map(|t| t.clone_ref(py)), st.uri.clone())
        };
        let Some(task) = task else { return };
        let task = task.bind(py);
        let stack = stack_of(py, task);
        match self.kind {
            Kind::Slow => {
                ferrocgi_server::status::slow_request();
                warn!(uri, elapsed = ?self.after, "slow request (past slow_request); its task's stack:\n{stack}");
            }
            Kind::Timeout => {
                ferrocgi_server::status::request_timed_out();
                error!(uri, elapsed = ?self.after, "request past request_timeout; cancelling its task. Its stack:\n{stack}");
                let _ = task.call_method0("cancel");
            }
        }
    }
}

/// Arms the timers the settings ask for; their handles, to cancel when the task ends.
pub(crate) fn arm(
    lp: &Bound<'_, PyAny>,
    call: &Arc<Call>,
    slow: Option<Duration>,
    timeout: Option<Duration>,
) -> PyResult<Vec<Py<PyAny>>> {
    let mut handles = Vec::new();
    for (after, kind) in [(slow, Kind::Slow), (timeout, Kind::Timeout)] {
        let Some(after) = after else { continue };
        let cb = Timer {
            call: call.clone(),
            kind,
            after,
        };
        let h = lp.call_method1("call_later", (after.as_secs_f64(), cb))?;
        handles.push(h.unbind());
    }
    Ok(handles)
}

/// Cancels the timers of a request whose task ended.
pub(crate) fn disarm(py: Python<'_>, handles: Vec<Py<PyAny>>) {
    for h in handles {
        if let Err(e) = h.bind(py).call_method0("cancel") {
            error!("cancelling a request timer: {e}");
        }
    }
}
